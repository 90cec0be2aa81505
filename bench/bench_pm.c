/* Power-management costs of a real vfpmd (the build's, or $VFPMD_PATH).
 *
 * idle (V1): one vfpmd with N demo devices (default 64), left alone until
 *   the control plane shows every device suspended; then the process is
 *   sampled over a window (default 10 s) with nothing talking to it: CPU
 *   time (utime + stime of /proc/PID/stat) and context switches (voluntary
 *   + involuntary, summed over /proc/PID/task/<tid>/status). A server
 *   whose devices all sleep should make no periodic wakeups: ~0 for both.
 *
 * wake: one demo device, pm_delays=none, a client connected that engaged
 *   plain LOW_POWER_ENTRY, so after every access the device idles back to
 *   suspended (B10). Each sample waits (polling status, which wakes
 *   nothing) until the device is suspended and times one 4-byte config
 *   REGION_READ through the client library: a resume, the read, the put.
 *   The same read with power_control=on (device held active) is the
 *   baseline, taken two ways: after the same status request as the
 *   suspended samples (like for like: the session thread slept in
 *   between; ratio=), and back to back (the hot round trip; ratio_b2b=).
 *   Suspended and active samples are taken in alternating blocks so that
 *   background load affects both alike. Target: the suspended median
 *   under 2x the active one.
 *
 * Results are reported, never asserted. Last lines, machine-readable:
 *   pm-idle: devices=64 seconds=10 cpu_ms=X ctxsw=Y ...
 *   pm-wake: suspended_median_us=X active_median_us=Y ratio=Z ...
 *
 * Options: -m idle|wake|all (all), -d DEVICES (64), -s SECONDS (10),
 * -n SAMPLES per kind (2000), -b BLOCK (100), -a AUTOSUSPEND_MS (diagnosis:
 * an autosuspend delay for the wake test; default none, i.e. 0 as in
 * vfio-pci), -k KEYS (extra device keys for the wake test, e.g.
 * platform_d3cold=on). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <linux/vfio.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pmtest.h"
#include "procstat.h"
#include "vfpm/client.h"

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* --- idle cost --- */

struct server {
	pid_t pid;
	char dir[64];
	char ctl[128];
	char log[128];
};

/* Starts vfpmd with ndev demo devices d00.. (the harness's vfpmd_start
 * takes at most 8). Waits until the control socket answers. */
static int start_many(struct server *srv, unsigned ndev)
{
	snprintf(srv->dir, sizeof(srv->dir), "/tmp/vfpm-bench-XXXXXX");
	if (!mkdtemp(srv->dir))
		return -errno;
	snprintf(srv->ctl, sizeof(srv->ctl), "%s/ctl.sock", srv->dir);
	snprintf(srv->log, sizeof(srv->log), "%s/vfpmd.log", srv->dir);
	size_t argc = 0, max = 2 * (size_t)ndev + 4;
	char **argv = calloc(max, sizeof(*argv));
	if (!argv)
		return -ENOMEM;
	argv[argc++] = strdup(vfpmd_path());
	for (unsigned i = 0; i < ndev; i++) {
		char spec[256];
		snprintf(spec, sizeof(spec), "demo,name=d%02u,socket=%s/d%02u.sock", i, srv->dir, i);
		argv[argc++] = strdup("--device");
		argv[argc++] = strdup(spec);
	}
	argv[argc++] = strdup("--ctl");
	argv[argc++] = strdup(srv->ctl);
	argv[argc] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		int fd = open(srv->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (fd >= 0) {
			dup2(fd, 2);
			close(fd);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	for (size_t i = 0; i < argc; i++)
		free(argv[i]);
	free(argv);
	if (pid < 0)
		return -errno;
	srv->pid = pid;
	for (int t = 0; t < 1000; t++) {
		int fd = raw_connect(srv->ctl);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (waitpid(pid, NULL, WNOHANG) == pid) {
			srv->pid = 0;
			return -ECHILD;
		}
		usleep(10000);
	}
	return -ETIMEDOUT;
}

static void stop_many(struct server *srv, unsigned ndev)
{
	if (srv->pid > 0) {
		kill(srv->pid, SIGTERM);
		int st;
		for (int t = 0; t < 500 && waitpid(srv->pid, &st, WNOHANG) != srv->pid; t++)
			usleep(10000);
		if (kill(srv->pid, 0) == 0) {
			kill(srv->pid, SIGKILL);
			waitpid(srv->pid, NULL, 0);
		}
	}
	char p[200];
	for (unsigned i = 0; i < ndev; i++) {
		snprintf(p, sizeof(p), "%s/d%02u.sock", srv->dir, i);
		unlink(p);
	}
	unlink(srv->ctl);
	unlink(srv->log);
	rmdir(srv->dir);
}

/* Number of devices whose runtime_status is "suspended", or -errno. */
static int count_suspended(const char *ctl)
{
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	int rc = ctl_request(ctl, "{\"cmd\":\"status\"}", buf, cap);
	struct json_object *o = rc ? NULL : json_tokener_parse(buf);
	free(buf);
	struct json_object *arr, *v;
	if (!o || !json_object_object_get_ex(o, "devices", &arr)) {
		json_object_put(o);
		return rc ? rc : -EPROTO;
	}
	int n = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);
		if (json_object_object_get_ex(d, "runtime_status", &v) &&
		    !strcmp(json_object_get_string(v), "suspended"))
			n++;
	}
	json_object_put(o);
	return n;
}

static int bench_idle(unsigned ndev, int seconds)
{
	struct server srv = { 0 };
	int rc = start_many(&srv, ndev);
	if (rc) {
		fprintf(stderr, "bench_pm: cannot start vfpmd with %u devices: %s\n", ndev,
			strerror(-rc));
		stop_many(&srv, ndev);
		return 1;
	}
	uint64_t t0 = now_ns();
	int n = 0;
	while ((n = count_suspended(srv.ctl)) >= 0 && (unsigned)n < ndev &&
	       now_ns() - t0 < 30000000000ull)
		usleep(20000);
	if (n < 0 || (unsigned)n < ndev) {
		fprintf(stderr, "bench_pm: only %d of %u devices suspended after 30 s\n", n, ndev);
		stop_many(&srv, ndev);
		return 1;
	}
	printf("idle: %u devices suspended %.0f ms after the control socket answered\n", ndev,
	       (double)(now_ns() - t0) / 1e6);
	/* let the last status connection and suspend settle, and the demo's
	 * workers end (1 s after their device suspended), then sample */
	usleep(1200000);
	struct proc_sample a, b;
	if (sample_proc(srv.pid, &a)) {
		stop_many(&srv, ndev);
		return 1;
	}
	uint64_t w0 = now_ns();
	sleep((unsigned)seconds);
	uint64_t w1 = now_ns();
	if (sample_proc(srv.pid, &b)) {
		stop_many(&srv, ndev);
		return 1;
	}
	long hz = sysconf(_SC_CLK_TCK);
	uint64_t ticks = b.ticks - a.ticks;
	double cpu_ms = (double)ticks * 1000.0 / (double)hz;
	uint64_t vol = b.vol - a.vol, invol = b.invol - a.invol;
	/* still all suspended at the end? (a status read wakes nothing) */
	int after = count_suspended(srv.ctl);
	printf("idle: window %.3f s, %u threads, cpu %llu ticks (%.1f ms, %ld Hz), "
	       "context switches %llu voluntary + %llu involuntary, %d/%u still suspended\n",
	       (double)(w1 - w0) / 1e9, b.threads, (unsigned long long)ticks, cpu_ms, hz,
	       (unsigned long long)vol, (unsigned long long)invol, after, ndev);
	printf("pm-idle: devices=%u seconds=%d cpu_ms=%.1f ctxsw=%llu cpu_ticks=%llu "
	       "ctxsw_voluntary=%llu ctxsw_involuntary=%llu threads=%u\n",
	       ndev, seconds, cpu_ms, (unsigned long long)(vol + invol),
	       (unsigned long long)ticks, (unsigned long long)vol, (unsigned long long)invol,
	       b.threads);
	stop_many(&srv, ndev);
	return 0;
}

/* --- wake latency --- */

struct stats {
	double median_us, p99_us, min_us, mean_us;
};

static struct stats summarize(uint64_t *v, size_t n)
{
	struct stats s = { 0 };
	if (!n)
		return s;
	qsort(v, n, sizeof(*v), cmp_u64);
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += (double)v[i];
	s.min_us = (double)v[0] / 1e3;
	s.median_us = (double)v[n / 2] / 1e3;
	s.p99_us = (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e3;
	s.mean_us = sum / (double)n / 1e3;
	return s;
}

static int timed_read(struct vfpm_client *c, uint64_t *ns)
{
	uint32_t v = 0;
	uint64_t t0 = now_ns();
	int rc = pmt_cfg_read(c, 0, &v, 4);
	*ns = now_ns() - t0;
	if (!rc && v != 0x10f01b36u)
		rc = -EPROTO;
	return rc;
}

static int bench_wake(size_t samples, size_t block, const char *autosuspend_ms, const char *keys)
{
	struct vfpmd_proc p;
	int rc = pmt_start(&p, keys);
	if (rc) {
		fprintf(stderr, "bench_pm: cannot start vfpmd: %s\n", strerror(-rc));
		return 1;
	}
	struct vfpm_client *c = NULL;
	uint64_t *susp = calloc(samples, sizeof(uint64_t));
	uint64_t *act = calloc(samples, sizeof(uint64_t));
	uint64_t *b2b = calloc(samples, sizeof(uint64_t));
	size_t ns = 0, na = 0, nb = 0;
	uint64_t polls = 0, polls_active = 0;
	rc = susp && act && b2b ? vfpm_client_connect(p.sock[0], NULL, &c) : -ENOMEM;
	if (!rc)
		rc = pmt_lp_entry(c);
	/* diagnosis: with a delay the suspend after each access no longer
	 * runs at once, next to the reply (vfio-pci's default is 0) */
	if (!rc && autosuspend_ms)
		rc = pmt_set(&p, "dev", "autosuspend_delay_ms", autosuspend_ms);
	if (rc)
		fprintf(stderr, "bench_pm: set-up: %s\n", strerror(-rc));
	/* warm-up: both paths, caches and the allocator */
	for (int i = 0; !rc && i < 50; i++) {
		uint64_t t;
		rc = timed_read(c, &t);
	}
	while (!rc && (ns < samples || na < samples)) {
		/* a block held active */
		rc = pmt_set(&p, "dev", "power_control", "on");
		for (size_t i = 0; !rc && i < block && na < samples; i++) {
			/* the same status request before each read as in the
			 * suspended block: both reads start from the same state
			 * of caches and CPUs (the session thread slept meanwhile) */
			struct pm_status st;
			rc = pmt_status(&p, "dev", &st);
			polls_active++;
			if (!rc)
				rc = timed_read(c, &act[na++]);
		}
		/* and back to back: the session thread is still running or
		 * about to sleep when the next request comes (the hot round
		 * trip of bench_rtt) */
		for (size_t i = 0; !rc && i < block && nb < samples; i++)
			rc = timed_read(c, &b2b[nb++]);
		if (!rc)
			rc = pmt_set(&p, "dev", "power_control", "auto");
		/* a block from suspended */
		for (size_t i = 0; !rc && i < block && ns < samples; i++) {
			struct pm_status st;
			for (;;) {
				rc = pmt_status(&p, "dev", &st);
				polls++;
				if (rc || !strcmp(st.runtime_status, "suspended"))
					break;
			}
			if (!rc && !st.engaged)
				rc = -EPROTO;   /* low power must stay engaged (B10) */
			if (!rc)
				rc = timed_read(c, &susp[ns++]);
		}
	}
	struct pm_status fin;
	if (!rc)
		rc = pmt_status(&p, "dev", &fin);
	if (rc)
		fprintf(stderr, "bench_pm: wake: %s\n", strerror(-rc));
	vfpm_client_close(c);
	vfpmd_stop(&p);
	if (!rc) {
		struct stats s = summarize(susp, ns), a = summarize(act, na), h = summarize(b2b, nb);
		printf("wake: suspended read: min %.1f median %.1f mean %.1f p99 %.1f us (%zu samples, "
		       "%llu status polls)\n",
		       s.min_us, s.median_us, s.mean_us, s.p99_us, ns, (unsigned long long)polls);
		printf("wake: active read:    min %.1f median %.1f mean %.1f p99 %.1f us (%zu samples, "
		       "%llu status polls)\n",
		       a.min_us, a.median_us, a.mean_us, a.p99_us, na, (unsigned long long)polls_active);
		printf("wake: active read, back to back: min %.1f median %.1f mean %.1f p99 %.1f us "
		       "(%zu samples)\n",
		       h.min_us, h.median_us, h.mean_us, h.p99_us, nb);
		printf("wake: server counters: suspends=%llu resumes=%llu\n",
		       (unsigned long long)fin.suspends, (unsigned long long)fin.resumes);
		if (autosuspend_ms)
			printf("wake: autosuspend_delay_ms=%s (default 0)\n", autosuspend_ms);
		if (keys)
			printf("wake: device keys %s\n", keys);
		printf("pm-wake: suspended_median_us=%.1f active_median_us=%.1f ratio=%.2f "
		       "suspended_p99_us=%.1f active_p99_us=%.1f active_b2b_median_us=%.1f "
		       "ratio_b2b=%.2f samples=%zu\n",
		       s.median_us, a.median_us, a.median_us > 0 ? s.median_us / a.median_us : 0,
		       s.p99_us, a.p99_us, h.median_us, h.median_us > 0 ? s.median_us / h.median_us : 0,
		       ns);
	}
	free(susp);
	free(act);
	free(b2b);
	return rc ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_pm [-m idle|wake|all] [-d DEVICES] [-s SECONDS] "
			"[-n SAMPLES] [-b BLOCK] [-a AUTOSUSPEND_MS] [-k KEYS]\n");
}

int main(int argc, char **argv)
{
	const char *mode = "all", *autosuspend_ms = NULL, *keys = NULL;
	unsigned ndev = 64;
	int seconds = 10;
	size_t samples = 2000, block = 100;
	int opt;
	while ((opt = getopt(argc, argv, "m:d:s:n:b:a:k:h")) != -1) {
		switch (opt) {
		case 'm': mode = optarg; break;
		case 'd': ndev = (unsigned)strtoul(optarg, NULL, 0); break;
		case 's': seconds = atoi(optarg); break;
		case 'n': samples = strtoul(optarg, NULL, 0); break;
		case 'b': block = strtoul(optarg, NULL, 0); break;
		case 'a': autosuspend_ms = optarg; break;
		case 'k': keys = optarg; break;
		default: usage(); return opt == 'h' ? 0 : 2;
		}
	}
	bool idle = !strcmp(mode, "idle") || !strcmp(mode, "all");
	bool wake = !strcmp(mode, "wake") || !strcmp(mode, "all");
	if ((!idle && !wake) || !ndev || ndev > 1000 || seconds < 1 || !samples || !block) {
		usage();
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int rc = 0;
	if (wake)
		rc |= bench_wake(samples, block, autosuspend_ms, keys);
	if (idle)
		rc |= bench_idle(ndev, seconds);
	return rc;
}
