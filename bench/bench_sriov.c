/* SR-IOV at scale: how long enabling and disabling 256 VFs takes, and what
 * 256 idle VFs cost.
 *
 * One real vfpmd (the build's) with a demo PF (total_vfs=N, default PM
 * settings, so the PCI delays apply: the idle PF's resume is a 10 ms
 * D3hot -> D0). Everything goes through the control plane, as an
 * administrator's tooling would:
 *   enable   NumVFs = N, then a config-write of VF Enable; the time runs
 *            until a status reply lists N VFs of the PF (the write itself
 *            returns once they exist; the status is the observer's proof).
 *            Each run starts from an idle-suspended PF.
 *   disable  with the N VFs idle-suspended, a config-write clearing VF
 *            Enable, until a status reply lists no VF.
 *   idle     N VFs enabled, every one runtime-suspended (D3hot), the PF
 *            held active by them (B33) but with no client; after 1 s of
 *            settling, vfpmd is sampled for S seconds with no request at
 *            all: CPU time (schedstat of every thread, ns; utime+stime as a
 *            cross-check) and context switches (voluntary + involuntary,
 *            summed over /proc/PID/task/<tid>/status).
 * Medians over R runs for enable and disable. The last line is
 * machine-readable:
 *   sriov: vfs=N enable_ms=X disable_ms=Y idle_cpu_ms=Z idle_ctxsw=W
 *
 * usage: bench_sriov [-n VFS] [-r RUNS] [-s SECONDS] [-k KEYS]   (256, 5, 10)
 * (-k adds device keys to the PF, e.g. -k pm_delays=none; its VFs inherit
 * the PF's PM settings.)
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procstat.h"

#define REPLY_MAX (8u << 20)

static struct vfpmd_proc g_p;
static char *g_buf;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* --- control plane --- */

static struct json_object *ctl(const char *req)
{
	if (ctl_request(g_p.ctl, req, g_buf, REPLY_MAX))
		return NULL;
	struct json_object *o = json_tokener_parse(g_buf), *v;
	if (o && (!json_object_object_get_ex(o, "ok", &v) || !json_object_get_boolean(v))) {
		fprintf(stderr, "bench_sriov: %s -> %s\n", req, g_buf);
		json_object_put(o);
		return NULL;
	}
	return o;
}

static int cfg(unsigned off, unsigned len, uint32_t *val, bool wr)
{
	char req[256];
	if (wr)
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-write\",\"device\":\"pf\",\"offset\":%u,\"len\":%u,"
			 "\"value\":%u}",
			 off, len, *val);
	else
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-read\",\"device\":\"pf\",\"offset\":%u,\"len\":%u}", off,
			 len);
	struct json_object *o = ctl(req), *v;
	if (!o)
		return -EIO;
	if (!wr)
		*val = json_object_object_get_ex(o, "value", &v) ? (uint32_t)json_object_get_int64(v) : 0;
	json_object_put(o);
	return 0;
}

struct census {
	int vfs;             /* devices listed with "pf": "pf" */
	int vfs_suspended;
	int num_vfs;         /* the PF's own count */
	char pf_status[16];
};

static int census(struct census *c)
{
	memset(c, 0, sizeof(*c));
	struct json_object *o = ctl("{\"cmd\":\"status\"}"), *arr, *v;
	if (!o)
		return -EIO;
	if (!json_object_object_get_ex(o, "devices", &arr)) {
		json_object_put(o);
		return -EPROTO;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);
		const char *rs = json_object_object_get_ex(d, "runtime_status", &v)
					 ? json_object_get_string(v)
					 : "";
		if (json_object_object_get_ex(d, "pf", &v)) {
			c->vfs++;
			c->vfs_suspended += !strcmp(rs, "suspended");
		} else {
			snprintf(c->pf_status, sizeof(c->pf_status), "%s", rs);
			c->num_vfs = json_object_object_get_ex(d, "sriov_numvfs", &v) ? json_object_get_int(v)
										 : -1;
		}
	}
	json_object_put(o);
	return 0;
}

/* Polls status until ok(c) holds; returns 0, or -ETIMEDOUT after ms. */
static int wait_for(bool (*ok)(const struct census *, int), int arg, int ms, struct census *c)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
	for (;;) {
		int rc = census(c);
		if (rc)
			return rc;
		if (ok(c, arg))
			return 0;
		if (now_ns() > end)
			return -ETIMEDOUT;
		sleep_ms(2);
	}
}

static bool has_vfs(const struct census *c, int n)
{
	return c->vfs == n && c->num_vfs == n;
}

static bool all_suspended(const struct census *c, int n)
{
	return c->vfs == n && c->vfs_suspended == n;
}

static bool pf_suspended(const struct census *c, int n)
{
	(void)n;
	return c->vfs == 0 && !strcmp(c->pf_status, "suspended");
}

/* --- the benchmark --- */

static unsigned find_sriov_cap(void)
{
	unsigned off = PCI_CFG_SPACE_SIZE;
	for (unsigned n = 0; off && n < 64; n++) {
		uint32_t h = 0;
		if (cfg(off, 4, &h, false) || !h)
			return 0;
		if (PCI_EXT_CAP_ID(h) == PCI_EXT_CAP_ID_SRIOV)
			return off;
		off = PCI_EXT_CAP_NEXT(h);
	}
	return 0;
}

static int fail(const char *what, int rc)
{
	fprintf(stderr, "bench_sriov: %s: %s\n", what, strerror(rc < 0 ? -rc : rc));
	vfpmd_stop(&g_p);
	return 1;
}

int main(int argc, char **argv)
{
	int nvfs = 256, runs = 5, seconds = 10, opt;
	const char *keys = "";
	while ((opt = getopt(argc, argv, "n:r:s:k:")) != -1) {
		switch (opt) {
		case 'k': keys = optarg; break;
		case 'n': nvfs = atoi(optarg); break;
		case 'r': runs = atoi(optarg); break;
		case 's': seconds = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-n VFS] [-r RUNS] [-s SECONDS] [-k KEY=VALUE,...]\n",
				argv[0]);
			return 2;
		}
	}
	if (nvfs < 1 || nvfs > 256 || runs < 1 || runs > 100 || seconds < 1) {
		fprintf(stderr, "bench_sriov: -n 1..256, -r 1..100, -s >= 1\n");
		return 2;
	}
	g_buf = malloc(REPLY_MAX);
	if (!g_buf)
		return 1;
	char spec[256];
	snprintf(spec, sizeof(spec), "demo,name=pf,total_vfs=%d%s%s", nvfs, *keys ? "," : "", keys);
	const char *specs[] = { spec, NULL };
	int rc = vfpmd_start(&g_p, specs, NULL);
	if (rc) {
		fprintf(stderr, "bench_sriov: vfpmd did not start: %s\n", strerror(-rc));
		return 1;
	}
	unsigned cap = find_sriov_cap();
	if (!cap)
		return fail("no SR-IOV capability", EPROTO);
	uint32_t n = (uint32_t)nvfs, vfe = PCI_SRIOV_CTRL_VFE, zero = 0;
	if ((rc = cfg(cap + PCI_SRIOV_NUM_VF, 2, &n, true)))
		return fail("NumVFs", rc);
	struct proc_sample base;
	if ((rc = sample_proc(g_p.pid, &base)))
		return fail("/proc", rc);

	double *en = calloc((size_t)runs, sizeof(double));
	double *en_write = calloc((size_t)runs, sizeof(double));
	double *dis = calloc((size_t)runs, sizeof(double));
	if (!en || !en_write || !dis)
		return fail("memory", ENOMEM);
	struct census c;
	for (int r = 0; r < runs; r++) {
		if ((rc = wait_for(pf_suspended, 0, 10000, &c)))
			return fail("PF idle before the enable", rc);
		uint64_t t0 = now_ns();
		if ((rc = cfg(cap + PCI_SRIOV_CTRL, 2, &vfe, true)))
			return fail("VF Enable", rc);
		uint64_t t1 = now_ns();
		if ((rc = wait_for(has_vfs, nvfs, 30000, &c)))
			return fail("VFs listed", rc);
		uint64_t t2 = now_ns();
		en_write[r] = (double)(t1 - t0) / 1e6;
		en[r] = (double)(t2 - t0) / 1e6;
		if ((rc = wait_for(all_suspended, nvfs, 30000, &c)))
			return fail("VFs idle-suspended", rc);
		uint64_t t3 = now_ns();
		if ((rc = cfg(cap + PCI_SRIOV_CTRL, 2, &zero, true)))
			return fail("VF Enable clear", rc);
		if ((rc = wait_for(has_vfs, 0, 30000, &c)))
			return fail("VFs gone", rc);
		dis[r] = (double)(now_ns() - t3) / 1e6;
		printf("run %d: enable %.1f ms (config-write %.1f ms), disable %.1f ms\n", r + 1, en[r],
		       en_write[r], dis[r]);
		fflush(stdout);
	}

	/* idle: N VFs suspended, nothing asked of the server */
	if ((rc = wait_for(pf_suspended, 0, 10000, &c)))
		return fail("PF idle", rc);
	if ((rc = cfg(cap + PCI_SRIOV_CTRL, 2, &vfe, true)))
		return fail("VF Enable", rc);
	uint64_t t_en = now_ns();
	if ((rc = wait_for(all_suspended, nvfs, 30000, &c)))
		return fail("VFs idle-suspended", rc);
	double settle_ms = (double)(now_ns() - t_en) / 1e6;
	sleep_ms(1000);
	struct proc_sample a, b;
	if ((rc = sample_proc(g_p.pid, &a)))
		return fail("/proc", rc);
	sleep_ms(1000L * seconds);
	if ((rc = sample_proc(g_p.pid, &b)))
		return fail("/proc", rc);
	if ((rc = census(&c)))
		return fail("status", rc);
	bool still = c.vfs == nvfs && c.vfs_suspended == nvfs && !strcmp(c.pf_status, "active");
	long tck = sysconf(_SC_CLK_TCK);
	double cpu_ms = (double)(b.run_ns - a.run_ns) / 1e6;
	double tick_ms = (double)(b.ticks - a.ticks) * 1000.0 / (double)(tck > 0 ? tck : 100);
	uint64_t ctxsw = (b.vol + b.invol) - (a.vol + a.invol);
	printf("idle: %d VFs suspended (all %d within %.0f ms of the enable), PF %s; vfpmd %u threads "
	       "(%u before the VFs), %u fds (%u before); over %d s: cpu %.3f ms "
	       "(utime+stime %.0f ms; %.1f ms used since start), context switches %llu "
	       "(voluntary %llu, involuntary %llu)%s\n",
	       c.vfs_suspended, nvfs, settle_ms, c.pf_status, b.threads, base.threads, b.fds,
	       base.fds, seconds, cpu_ms, tick_ms, (double)b.run_ns / 1e6, (unsigned long long)ctxsw,
	       (unsigned long long)(b.vol - a.vol), (unsigned long long)(b.invol - a.invol),
	       still ? "" : " [NOT ALL STILL SUSPENDED]");
	printf("sriov: vfs=%d enable_ms=%.1f disable_ms=%.1f idle_cpu_ms=%.3f idle_ctxsw=%llu\n", nvfs,
	       median(en, runs), median(dis, runs), cpu_ms, (unsigned long long)ctxsw);
	free(en);
	free(en_write);
	free(dis);
	int ex = vfpmd_stop(&g_p);   /* with the VFs present */
	free(g_buf);
	if (ex != 0) {
		fprintf(stderr, "bench_sriov: vfpmd exited with %d\n", ex);
		return 1;
	}
	return still ? 0 : 1;
}
