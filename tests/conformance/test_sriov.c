/* Conformance: SR-IOV (docs/sriov.md) and the PF power rules of the
 * kernel spec (B12, B28, B33, B34, B36, Race 2), one test per behaviour.
 *
 * Every test runs a real vfpmd whose demo device "dev" is a PF
 * (total_vfs=N). The PF is driven through the control plane's
 * config-read/config-write (host side: it works with no client), or
 * through a PF client where the test says so. VFs are created and removed
 * by the host's sriov_numvfs (enable_vfs, disable_vfs); a raw host write of
 * VF Enable still makes them follow the register. The PF's client sees
 * the SR-IOV capability read-only, and its disconnect keeps the VFs. Observations come from the control plane's status
 * (every device, VFs after their PF with "pf", the PF's "sriov_numvfs") and
 * from the socket files in vfpmd's directory.
 *
 * Every wait has a deadline and an alarm bounds each test, so a broken
 * server fails a test instead of hanging the suite.
 */
#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"

#define WAIT_MS 5000          /* deadline for any state we wait for */
#define TEST_ALARM_S 60       /* deadline for one whole test */
#define GRACE_ALARM_S 90      /* the test that waits out the 10 s VF release grace */
#define QUIET_MS 300          /* "nothing happens" observation window */

#define MAX_DEVS 300
#define MAX_CLIENTS 8
#define MAX_FDS 16

#define DEMO_ID 0x4d504656u   /* BAR0 register 0: "VFPM" */
#define REG_ID 0x00
#define REG_SCRATCH 0x08
#define BAR0 VFIO_PCI_BAR0_REGION_INDEX

/* ------------------------------------------------------------------ */
/* Fixture: one vfpmd, clients and descriptors released by the teardown. */

static struct vfpmd_proc g_p;
static bool g_up;
static struct vfpm_client *g_cl[MAX_CLIENTS];
static int g_fds[MAX_FDS];
static int g_nfds;
static char g_extra_dir[400];         /* a socket directory a test added */
static char g_extra_base[300];        /* and the temporary directory holding it */

static int setup(void **state)
{
	(void)state;
	g_up = false;
	g_nfds = 0;
	g_extra_dir[0] = '\0';
	g_extra_base[0] = '\0';
	memset(g_cl, 0, sizeof(g_cl));
	pmt_watchdog_arm("test_sriov", TEST_ALARM_S);
	return 0;
}

static void dump_log(void)
{
	vfpmd_log_dump(&g_p);
}

/* ------------------------------------------------------------------ */
/* Control plane */

/* Host-side config read/write of any device, asserting success. */
static uint32_t hrd(const char *dev, unsigned off, unsigned len)
{
	uint32_t v = 0;
	assert_int_equal(pmt_ctl_config_rw(&g_p, dev, off, len, &v, false), 0);
	return v;
}

static void hwr(const char *dev, unsigned off, unsigned len, uint32_t v)
{
	assert_int_equal(pmt_ctl_config_rw(&g_p, dev, off, len, &v, true), 0);
}

/* One device as the control plane lists it. */
struct sdev {
	char name[64];
	char pf[64];              /* "" for a PF or a plain device */
	char model[16];
	char socket[300];
	char power_state[8];
	char runtime_status[12];
	int usage;
	int total_vfs, num_vfs;   /* -1 when absent (not a PF) */
	bool has_pf_key;
	bool engaged, mmap_revoked, client_connected;
	long long suspends, resumes, wakeups, underflows, violations;
};

struct snap {
	unsigned n;
	struct sdev d[MAX_DEVS];
};

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static long long jint(struct json_object *o, const char *k, long long dflt)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : dflt;
}

static bool jbool(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

static int snapshot(struct snap *s)
{
	struct json_object *o = pmt_ctl_json(&g_p, "{\"cmd\":\"status\"}");
	int rc = pmt_reply_errno(o);
	struct json_object *arr;
	memset(s, 0, sizeof(*s));
	if (!rc && !json_object_object_get_ex(o, "devices", &arr))
		rc = -EPROTO;
	for (size_t i = 0; !rc && i < json_object_array_length(arr) && s->n < MAX_DEVS; i++) {
		struct json_object *x = json_object_array_get_idx(arr, i), *v;
		struct sdev *d = &s->d[s->n++];
		snprintf(d->name, sizeof(d->name), "%s", jstr(x, "name"));
		snprintf(d->pf, sizeof(d->pf), "%s", jstr(x, "pf"));
		d->has_pf_key = json_object_object_get_ex(x, "pf", &v);
		snprintf(d->model, sizeof(d->model), "%s", jstr(x, "model"));
		snprintf(d->socket, sizeof(d->socket), "%s", jstr(x, "socket"));
		snprintf(d->power_state, sizeof(d->power_state), "%s", jstr(x, "power_state"));
		snprintf(d->runtime_status, sizeof(d->runtime_status), "%s",
			 jstr(x, "runtime_status"));
		d->usage = (int)jint(x, "usage_count", -100);
		d->total_vfs = (int)jint(x, "sriov_totalvfs", -1);
		d->num_vfs = (int)jint(x, "sriov_numvfs", -1);
		d->violations = jint(x, "model_violations", 0);
		d->client_connected = jbool(x, "client_connected");
		d->mmap_revoked = jbool(x, "mmap_revoked");
		if (json_object_object_get_ex(x, "low_power", &v))
			d->engaged = jbool(v, "engaged");
		if (json_object_object_get_ex(x, "counters", &v)) {
			d->suspends = jint(v, "suspends", -1);
			d->resumes = jint(v, "resumes", -1);
			d->wakeups = jint(v, "wakeups_signalled", -1);
			d->underflows = jint(v, "usage_underflows", -1);
		}
	}
	json_object_put(o);
	return rc;
}

static void snap_or_fail(struct snap *s)
{
	int rc = snapshot(s);
	if (rc) {
		fprintf(stderr, "status failed: %s (vfpmd pid %d %s)\n", strerror(-rc), (int)g_p.pid,
			kill(g_p.pid, 0) == 0 ? "alive" : "gone");
		dump_log();
	}
	assert_int_equal(rc, 0);
}

static const struct sdev *find(const struct snap *s, const char *name)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->d[i].name, name))
			return &s->d[i];
	return NULL;
}

/* The status of one device, which must exist. */
static struct sdev dev_status(const char *name)
{
	struct snap s;
	snap_or_fail(&s);
	const struct sdev *d = find(&s, name);
	if (!d)
		fail_msg("device %s not in status", name);
	return *d;
}

/* Number of devices listed with "pf": pf. */
static unsigned vfs_of(const struct snap *s, const char *pf)
{
	unsigned n = 0;
	for (unsigned i = 0; i < s->n; i++)
		n += !strcmp(s->d[i].pf, pf);
	return n;
}

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void wait_rt(const char *name, const char *want)
{
	int rc = pmt_wait_status(&g_p, name, want, WAIT_MS);
	if (rc) {
		struct sdev d = dev_status(name);
		fail_msg("%s: runtime_status %s, waited for %s", name, d.runtime_status, want);
	}
}

/* A client's close finishes in the server after vfpm_client_close returns:
 * wait (bounded) for name's usage count to reach want. */
static void wait_usage(const char *name, int want)
{
	for (uint64_t end = now_ms() + WAIT_MS; now_ms() < end;) {
		if (dev_status(name).usage == want)
			return;
		pmt_sleep_ms(5);
	}
	struct sdev d = dev_status(name);
	if (d.usage != want)
		fail_msg("%s: usage %d, waited for %d", name, (int)d.usage, want);
}

static int teardown(void **state)
{
	(void)state;
	int rc = 0;
	/* VF clients first: a PF client's close removes the VFs, which would
	 * wait for a VF client still connected */
	for (int i = MAX_CLIENTS - 1; i >= 0; i--) {
		if (g_cl[i])
			vfpm_client_close(g_cl[i]);
		g_cl[i] = NULL;
	}
	for (int i = 0; i < g_nfds; i++)
		if (g_fds[i] >= 0)
			close(g_fds[i]);
	g_nfds = 0;
	if (g_up) {
		/* whatever the test did, no usage count went negative and no
		 * model worked while parked, on the PF and on every VF */
		struct snap s;
		if (snapshot(&s) == 0) {
			for (unsigned i = 0; i < s.n; i++) {
				if (s.d[i].underflows != 0 || s.d[i].violations != 0) {
					fprintf(stderr, "%s: usage_underflows %lld, model_violations %lld\n",
						s.d[i].name, s.d[i].underflows, s.d[i].violations);
					rc = -1;
				}
			}
		} else {
			fprintf(stderr, "final status failed\n");
			rc = -1;
		}
		/* stopping with VFs (and VF clients) still present is clean */
		int ex = vfpmd_terminate(&g_p);
		if (ex != 0) {
			fprintf(stderr, "vfpmd exited with %d\n", ex);
			rc = -1;
		}
		if (rc)
			dump_log();
		vfpmd_cleanup(&g_p);
		g_up = false;
		pmt_watch(0);
	}
	if (g_extra_dir[0]) {
		char path[700];
		DIR *d = opendir(g_extra_dir);
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", g_extra_dir, e->d_name);
			unlink(path);
		}
		if (d)
			closedir(d);
		rmdir(g_extra_dir);
	}
	if (g_extra_base[0])
		rmdir(g_extra_base);
	pmt_watchdog_disarm();
	return rc;
}

static int keep_fd(int fd)
{
	assert_true(fd >= 0);
	assert_true(g_nfds < MAX_FDS);
	g_fds[g_nfds++] = fd;
	return fd;
}

static int new_efd(void)
{
	return keep_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

/* vfpmd with the PF "dev" (demo, pm_delays=none, total_vfs=N) plus keys. */
static void up(unsigned total_vfs, const char *keys)
{
	char k[256];
	snprintf(k, sizeof(k), "total_vfs=%u%s%s", total_vfs, keys && *keys ? "," : "",
		 keys ? keys : "");
	int rc = pmt_start(&g_p, k);
	if (rc)
		fprintf(stderr, "vfpmd did not start: %s\n", strerror(-rc));
	assert_int_equal(rc, 0);
	g_up = true;
	pmt_watch(g_p.pid);
}

/* Client slot i on the socket at path. */
static struct vfpm_client *conn(int i, const char *path)
{
	assert_null(g_cl[i]);
	int rc = vfpm_client_connect(path, NULL, &g_cl[i]);
	if (rc)
		fprintf(stderr, "connect %s: %s\n", path, strerror(-rc));
	assert_int_equal(rc, 0);
	return g_cl[i];
}


/* Closes client i; with gone set (a PF's or VF's device name), waits
 * (bounded) until the server has processed the close. */
static void disconn_wait(int i, const char *gone)
{
	vfpm_client_close(g_cl[i]);
	g_cl[i] = NULL;
	if (!gone)
		return;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (dev_status(gone).client_connected) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec > 10)
			fail_msg("%s: the server never saw the client go", gone);
		struct timespec ms = { 0, 1000000 };
		nanosleep(&ms, NULL);
	}
}

static void disconn(int i)
{
	disconn_wait(i, NULL);
}

/* Path of VF k's socket: <directory of the PF's socket>/<pf>-vf<k>.sock */
static const char *vf_sock(const char *dir, const char *pf, unsigned k)
{
	static char buf[4][400];
	static unsigned next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof(buf[0]), "%s/%s-vf%u.sock", dir, pf, k);
	return b;
}

static const char *vf_name(const char *pf, unsigned k)
{
	static char buf[4][80];
	static unsigned next;
	char *b = buf[next++ % 4];
	snprintf(b, sizeof(buf[0]), "%s-vf%u", pf, k);
	return b;
}

static bool is_socket(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* ------------------------------------------------------------------ */
/* Config space: client and host side */

static uint32_t crd(struct vfpm_client *c, unsigned off, unsigned len)
{
	uint32_t v = 0;
	assert_int_equal(pmt_cfg_read(c, off, &v, len), 0);
	return v;
}

static void cwr(struct vfpm_client *c, unsigned off, unsigned len, uint32_t v)
{
	assert_int_equal(pmt_cfg_write(c, off, &v, len), 0);
}

/* SR-IOV extended capability of a device, walked host-side from 0x100;
 * 0 if absent. */
static unsigned sriov_cap_of(const char *dev)
{
	unsigned off = PCI_CFG_SPACE_SIZE;
	for (unsigned n = 0; off && n < 64; n++) {
		uint32_t h = hrd(dev, off, 4);
		if (h == 0 || h == 0xffffffffu)
			return 0;
		if (PCI_EXT_CAP_ID(h) == PCI_EXT_CAP_ID_SRIOV)
			return off;
		off = PCI_EXT_CAP_NEXT(h);
	}
	return 0;
}

/* Same walk through a client. */
static unsigned client_ext_cap(struct vfpm_client *c, unsigned id)
{
	unsigned off = PCI_CFG_SPACE_SIZE;
	for (unsigned n = 0; off && n < 64; n++) {
		uint32_t h = crd(c, off, 4);
		if (h == 0 || h == 0xffffffffu)
			return 0;
		if (PCI_EXT_CAP_ID(h) == id)
			return off;
		off = PCI_EXT_CAP_NEXT(h);
	}
	return 0;
}

static unsigned client_cap(struct vfpm_client *c, unsigned id)
{
	uint8_t ptr = (uint8_t)crd(c, PCI_CAPABILITY_LIST, 1);
	for (unsigned n = 0; ptr && n < 48; n++) {
		if (crd(c, ptr, 1) == id)
			return ptr;
		ptr = (uint8_t)crd(c, ptr + 1u, 1);
	}
	return 0;
}

static unsigned g_cap;   /* the PF's SR-IOV capability */

static unsigned pf_cap(void)
{
	g_cap = sriov_cap_of("dev");
	assert_true(g_cap >= PCI_CFG_SPACE_SIZE);
	return g_cap;
}

#define SR(reg) (g_cap + (reg))

/* The host's sriov_numvfs=n (vfpmctl set dev sriov_numvfs=N), as Linux's
 * sysfs attribute: returns 0 or -errno. */
static int set_numvfs(const char *pf, unsigned n)
{
	char v[16];
	snprintf(v, sizeof(v), "%u", n);
	return pmt_set(&g_p, pf, "sriov_numvfs", v);
}

/* sriov_numvfs=n on "dev": it returns once the VFs exist, with NumVFs = n
 * and VF Enable and VF MSE set in the capability. */
static void enable_vfs(unsigned n)
{
	assert_int_equal(set_numvfs("dev", n), 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), n);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & (PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE),
			 PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), n);
	assert_int_equal(find(&s, "dev")->num_vfs, (int)n);
}

/* sriov_numvfs=0: the VFs are gone, VF Enable and VF MSE clear. */
static void disable_vfs(void)
{
	assert_int_equal(set_numvfs("dev", 0), 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & (PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE), 0);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 0);
	assert_int_equal(find(&s, "dev")->num_vfs, 0);
}

/* Size and type bits of the BARs in six dwords at base, by writing all
 * ones (restoring afterwards), through wr/rd on either side. A 64-bit BAR
 * reports its size at its index and 0 at the upper half. */
struct bar_sizing {
	uint64_t size[6];
	uint32_t type[6];   /* low 4 bits */
};

typedef uint32_t (*rd_fn)(void *ctx, unsigned off);
typedef void (*wr_fn)(void *ctx, unsigned off, uint32_t v);

static void size_bars(void *ctx, rd_fn rd, wr_fn wr, unsigned base, struct bar_sizing *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < 6; i++) {
		unsigned off = base + 4 * i;
		uint32_t old = rd(ctx, off);
		wr(ctx, off, 0xffffffffu);
		uint32_t lo = rd(ctx, off);
		wr(ctx, off, old);
		out->type[i] = lo & 0xf;
		if (lo & PCI_BASE_ADDRESS_SPACE_IO) {
			uint32_t m = lo & PCI_BASE_ADDRESS_IO_MASK;
			out->size[i] = m ? (uint64_t)(~m + 1u) & 0xffffffffu : 0;
			continue;
		}
		uint64_t mask = lo & PCI_BASE_ADDRESS_MEM_MASK;
		bool is64 = (lo & PCI_BASE_ADDRESS_MEM_TYPE_MASK) == PCI_BASE_ADDRESS_MEM_TYPE_64;
		if (is64 && i < 5) {
			unsigned hoff = off + 4;
			uint32_t hold = rd(ctx, hoff);
			wr(ctx, hoff, 0xffffffffu);
			uint32_t hi = rd(ctx, hoff);
			wr(ctx, hoff, hold);
			mask |= (uint64_t)hi << 32;
			out->size[i] = mask ? ~mask + 1 : 0;
			i++;   /* the upper half: size 0, type 0 */
			continue;
		}
		out->size[i] = mask ? (uint64_t)(uint32_t)(~(uint32_t)mask + 1u) : 0;
	}
}

static uint32_t host_rd(void *ctx, unsigned off)
{
	return hrd(ctx, off, 4);
}

static void host_wr(void *ctx, unsigned off, uint32_t v)
{
	hwr(ctx, off, 4, v);
}

static uint32_t cli_rd(void *ctx, unsigned off)
{
	return crd(ctx, off, 4);
}

static void cli_wr(void *ctx, unsigned off, uint32_t v)
{
	cwr(ctx, off, 4, v);
}

static unsigned ps_bits(struct vfpm_client *c, unsigned pm)
{
	return crd(c, pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK;
}

/* A PMCSR write of PowerState (2 bytes at PMCSR), keeping the other bits. */
static void set_ps(struct vfpm_client *c, unsigned pm, unsigned state)
{
	uint16_t v = (uint16_t)crd(c, pm + PCI_PM_CTRL, 2);
	v = (uint16_t)((v & ~PCI_PM_CTRL_STATE_MASK) | state);
	cwr(c, pm + PCI_PM_CTRL, 2, v);
}

static void mem_enable(struct vfpm_client *c)
{
	uint16_t cmd = (uint16_t)crd(c, PCI_COMMAND, 2);
	cwr(c, PCI_COMMAND, 2, cmd | PCI_COMMAND_MEMORY);
}

/* Number of entries in a /proc/PID directory (descriptors, threads). */
static int vfpmd_count(const char *what)
{
	int n = proc_count(g_p.pid, what);
	assert_true(n >= 0);
	return n;
}

/* ================================================================== */
/* The capability */

/* TotalVFs/InitialVFs = N, NumVFs 0, First VF Offset 1, Stride 1, VF
 * Device ID = the PF's + 1, 4K among the supported page sizes, System
 * Page Size 1; the VF BARs, sized with all-ones writes, are the BARs a VF
 * has (sized on the VF itself, and as its regions). */
static void sriov_cap_fields(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	uint32_t hdr = hrd("dev", g_cap, 4);
	assert_int_equal(PCI_EXT_CAP_ID(hdr), PCI_EXT_CAP_ID_SRIOV);
	assert_int_equal(PCI_EXT_CAP_VER(hdr), 1);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_TOTAL_VF), 2), 4);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_INITIAL_VF), 2), 4);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2), 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_VF_OFFSET), 2), 1);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_VF_STRIDE), 2), 1);
	uint32_t pf_did = hrd("dev", PCI_DEVICE_ID, 2);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_VF_DID), 2), (pf_did + 1) & 0xffff);
	assert_true(hrd("dev", SR(PCI_SRIOV_SUP_PGSIZE), 4) & 1);   /* 4 KiB */
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_SYS_PGSIZE), 4), 1);
	struct sdev pf = dev_status("dev");
	assert_int_equal(pf.total_vfs, 4);
	assert_int_equal(pf.num_vfs, 0);
	assert_false(pf.has_pf_key);

	struct bar_sizing vfbars;
	size_bars("dev", host_rd, host_wr, SR(PCI_SRIOV_BAR), &vfbars);
	unsigned nbars = 0;
	for (unsigned i = 0; i < 6; i++) {
		nbars += vfbars.size[i] != 0;
		/* VF BARs are memory BARs, at least a 4 KiB page each */
		assert_false(vfbars.type[i] & PCI_BASE_ADDRESS_SPACE_IO);
		if (vfbars.size[i])
			assert_true(vfbars.size[i] >= 4096);
	}
	assert_true(nbars >= 1);

	/* one VF: its own BARs must be what the capability declared */
	struct vfpm_client *pfc = conn(0, g_p.sock[0]);   /* keeps the VFs */
	(void)pfc;
	enable_vfs(1);
	struct vfpm_client *vf = conn(1, vf_sock(g_p.dir, "dev", 0));
	struct bar_sizing own;
	size_bars(vf, cli_rd, cli_wr, PCI_BASE_ADDRESS_0, &own);
	for (unsigned i = 0; i < 6; i++) {
		struct vfpm_region_info ri;
		assert_int_equal(vfpm_client_region_info(vf, VFIO_PCI_BAR0_REGION_INDEX + i, &ri), 0);
		if (ri.fd >= 0)
			close(ri.fd);
		if (vfbars.size[i] != own.size[i] || vfbars.size[i] != ri.size)
			fail_msg("BAR%u: capability says %#llx, VF config %#llx, VF region %#llx", i,
				 (unsigned long long)vfbars.size[i], (unsigned long long)own.size[i],
				 (unsigned long long)ri.size);
		if (vfbars.size[i])
			assert_int_equal(vfbars.type[i], own.type[i]);
	}
	/* the all-ones writes were restored: the VF BAR registers read 0
	 * outside their type bits */
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(hrd("dev", SR(PCI_SRIOV_BAR) + 4 * i, 4) & ~0xfu, 0);
}

/* Read-only fields ignore writes; NumVFs above TotalVFs is refused (the
 * old value stays); NumVFs cannot change while VF Enable is set; toggling
 * VF Enable 20 times creates and removes the VFs every time, with their
 * sockets, and leaks no device, thread or descriptor. */
static void sriov_write_rules(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	static const struct { unsigned reg, len; } ro[] = {
		{ PCI_SRIOV_CAP, 4 },	    { PCI_SRIOV_INITIAL_VF, 2 }, { PCI_SRIOV_TOTAL_VF, 2 },
		{ PCI_SRIOV_FUNC_LINK, 1 }, { PCI_SRIOV_VF_OFFSET, 2 },	 { PCI_SRIOV_VF_STRIDE, 2 },
		{ PCI_SRIOV_VF_DID, 2 },    { PCI_SRIOV_SUP_PGSIZE, 4 }, { PCI_SRIOV_VFM, 4 },
	};
	for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
		uint32_t before = hrd("dev", SR(ro[i].reg), ro[i].len);
		hwr("dev", SR(ro[i].reg), ro[i].len, 0xffffffffu >> (32 - 8 * ro[i].len));
		assert_int_equal(hrd("dev", SR(ro[i].reg), ro[i].len), before);
		hwr("dev", SR(ro[i].reg), ro[i].len, 0);
		assert_int_equal(hrd("dev", SR(ro[i].reg), ro[i].len), before);
	}
	/* the capability header is read-only too */
	uint32_t hdr = hrd("dev", g_cap, 4);
	hwr("dev", g_cap, 4, 0);
	assert_int_equal(hrd("dev", g_cap, 4), hdr);

	/* Control: only VF Enable, VF MSE and ARI are writable */
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0xffff & ~PCI_SRIOV_CTRL_VFE);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2), PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI);
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2), 0);
	/* System Page Size: a supported size is accepted */
	hwr("dev", SR(PCI_SRIOV_SYS_PGSIZE), 4, 2);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_SYS_PGSIZE), 4), 2);
	hwr("dev", SR(PCI_SRIOV_SYS_PGSIZE), 4, 1);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_SYS_PGSIZE), 4), 1);

	/* NumVFs above TotalVFs: refused, the old value stays */
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 3);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 3);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 5);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 3);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 0xffff);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 3);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 1, 0x80);   /* a byte write too */
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 3);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 4);      /* TotalVFs itself is fine */
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 4);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 0);

	/* VF Enable with NumVFs 0 creates nothing */
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(s.n, 1);
	assert_int_equal(find(&s, "dev")->num_vfs, 0);
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);

	/* NumVFs changed while enabled: refused, the VFs stay as they are */
	enable_vfs(2);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 3);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 1);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	/* writing VF Enable again (already set) changes nothing either */
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(find(&s, "dev")->num_vfs, 2);
	disable_vfs();
	/* and once disabled, NumVFs is writable again */
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 1);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 1);

	/* VF Enable toggled 20 times (3 VFs) */
	int fds0 = vfpmd_count("fd"), threads0 = vfpmd_count("task");
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 3);
	for (int round = 0; round < 20; round++) {
		hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
		assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE,
				 PCI_SRIOV_CTRL_VFE);
		snap_or_fail(&s);
		assert_int_equal(s.n, 4);
		assert_int_equal(vfs_of(&s, "dev"), 3);
		assert_int_equal(find(&s, "dev")->num_vfs, 3);
		for (unsigned k = 0; k < 3; k++) {
			assert_non_null(find(&s, vf_name("dev", k)));
			if (!is_socket(vf_sock(g_p.dir, "dev", k)))
				fail_msg("round %d: %s missing", round, vf_sock(g_p.dir, "dev", k));
		}
		assert_false(is_socket(vf_sock(g_p.dir, "dev", 3)));
		if (round % 5 == 0) {
			/* a VF really serves: VERSION over its socket */
			int fd = raw_connect_negotiated(vf_sock(g_p.dir, "dev", round % 3));
			assert_true(fd >= 0);
			close(fd);
		}
		hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);
		assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2), 0);
		snap_or_fail(&s);
		assert_int_equal(s.n, 1);
		assert_int_equal(find(&s, "dev")->num_vfs, 0);
		for (unsigned k = 0; k < 3; k++)
			if (is_socket(vf_sock(g_p.dir, "dev", k)))
				fail_msg("round %d: %s still there", round, vf_sock(g_p.dir, "dev", k));
	}
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 3);
	/* nothing of the 60 VFs is left in the server (its idle-suspend
	 * worker may settle a moment later) */
	int fds1 = 0, threads1 = 0;
	for (int t = 0; t < 100; t++) {
		fds1 = vfpmd_count("fd");
		threads1 = vfpmd_count("task");
		if (fds1 <= fds0 && threads1 <= threads0)
			break;
		pmt_sleep_ms(20);
	}
	if (fds1 > fds0 || threads1 > threads0)
		fail_msg("leak after 20 VF Enable cycles: fds %d -> %d, threads %d -> %d", fds0, fds1,
			 threads0, threads1);
	/* the PF gave back the B33 reference every time */
	wait_rt("dev", "suspended");
	assert_int_equal(dev_status("dev").usage, 0);
}

/* ================================================================== */
/* PF power rules */

/* The PF idle after a user: a client comes and goes (its close resets the
 * PF), then the PF runtime-suspends to D3hot. */
static void idle_pf_after_a_user(void)
{
	conn(0, g_p.sock[0]);
	disconn(0);
	wait_rt("dev", "suspended");
	struct sdev pf = dev_status("dev");
	assert_int_equal(pf.usage, 0);
	assert_string_equal(pf.power_state, "D3hot");
}

/* B33: enabling VFs resumes an idle-suspended PF and holds a usage
 * reference on it (it never suspends while the VFs exist); disabling
 * gives the reference back and the PF suspends again. */
static void b33_enable_resumes_pf_and_holds_reference(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	idle_pf_after_a_user();
	struct sdev pf = dev_status("dev");
	long long resumes0 = pf.resumes;

	enable_vfs(2);
	pf = dev_status("dev");
	assert_string_equal(pf.runtime_status, "active");
	assert_string_equal(pf.power_state, "D0");
	assert_int_equal(pf.usage, 1);
	assert_true(pf.resumes > resumes0);
	/* held: nothing suspends it while the VFs exist */
	pmt_quiet_ms(QUIET_MS);
	pf = dev_status("dev");
	assert_string_equal(pf.runtime_status, "active");
	assert_string_equal(pf.power_state, "D0");
	assert_int_equal(pf.usage, 1);
	long long susp = pf.suspends;

	/* the reference is +1 on top of a client's too */
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	assert_int_equal(dev_status("dev").usage, 2);
	(void)c;
	disable_vfs();
	assert_int_equal(dev_status("dev").usage, 1);
	enable_vfs(3);
	assert_int_equal(dev_status("dev").usage, 2);
	/* the client leaves: the VFs are the host's and stay, and so does
	 * their reference; sriov_numvfs=0 gives it back, then the PF suspends */
	disconn(0);
	wait_usage("dev", 1);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 3);
	assert_int_equal(find(&s, "dev")->usage, 1);
	assert_string_equal(find(&s, "dev")->runtime_status, "active");
	disable_vfs();
	wait_rt("dev", "suspended");
	snap_or_fail(&s);
	assert_int_equal(find(&s, "dev")->usage, 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, 0);

	/* and host-side only: enable, then disable -> suspends again */
	enable_vfs(2);
	assert_int_equal(dev_status("dev").usage, 1);
	disable_vfs();
	wait_rt("dev", "suspended");
	pf = dev_status("dev");
	assert_int_equal(pf.usage, 0);
	assert_true(pf.suspends > susp);
	assert_string_equal(pf.power_state, "D3hot");
}

/* B33 and Race 2: a PF that its user put in D3hot through PMCSR is
 * brought to D0 by the host's enable (PowerState reads D0 afterwards), and
 * its user sees VF Enable and NumVFs in its read-only view. */
static void b33_pmcsr_d3hot_overridden_by_enable(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	unsigned pm = client_cap(c, PCI_CAP_ID_PM);
	assert_true(pm != 0);

	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	assert_string_equal(dev_status("dev").power_state, "D3hot");
	enable_vfs(2);   /* host side */
	assert_int_equal(ps_bits(c, pm), 0);
	struct sdev pf = dev_status("dev");
	assert_string_equal(pf.power_state, "D0");
	assert_string_equal(pf.runtime_status, "active");
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
	disable_vfs();
	assert_string_equal(dev_status("dev").power_state, "D0");   /* no way back to D3hot */

	/* the host enables 3 VFs while the PF's user holds it in D3hot
	 * (moved from a client VF Enable write, which is now dropped) */
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	enable_vfs(3);
	assert_int_equal(ps_bits(c, pm), 0);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 3);
	assert_string_equal(find(&s, "dev")->power_state, "D0");
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
	assert_int_equal(crd(c, SR(PCI_SRIOV_NUM_VF), 2), 3);
	disable_vfs();
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 0);
}

/* B33 on a NoSoftRst- PF: the D3hot -> D0 transition of the enable resets
 * the device and restores its saved config. The VF Enable and NumVFs that
 * were just written must survive it: the VFs exist, so VF Enable reads 1
 * (and clearing it removes them). Both from the user's D3hot (pm_save)
 * and from an idle runtime suspend (the resume's restore). */
static void b33_enable_on_nosoftrst_minus_pf_keeps_vf_enable(void **state)
{
	(void)state;
	up(4, "nosoftrst=off");
	pf_cap();
	/* idle-suspended in D3hot: the host enables the VFs */
	idle_pf_after_a_user();
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, 2);
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_string_equal(find(&s, "dev")->power_state, "D0");
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	disable_vfs();

	/* the user's D3hot (its pm_save snapshot has VF Enable clear); the
	 * host enables (moved from a client VF Enable write) */
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	unsigned pm = client_cap(c, PCI_CAP_ID_PM);
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	enable_vfs(3);
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 3);
	assert_string_equal(find(&s, "dev")->power_state, "D0");
	assert_int_equal(ps_bits(c, pm), 0);
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
	assert_int_equal(crd(c, SR(PCI_SRIOV_NUM_VF), 2), 3);
	disable_vfs();
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 0);
}

/* B34 (and B28): while VFs exist, a PMCSR write of D1, D2 or D3hot on the
 * PF succeeds, PowerState reads back D0 and the PF stays in D0 -- from the
 * PF's user and from the host. Without VFs the same write is honoured. */
static void b34_pf_stays_d0_with_vfs(void **state)
{
	(void)state;
	up(4, "d1=on,d2=on");
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	unsigned pm = client_cap(c, PCI_CAP_ID_PM);
	enable_vfs(2);
	for (unsigned ps = 1; ps <= 3; ps++) {
		uint16_t v = (uint16_t)((crd(c, pm + PCI_PM_CTRL, 2) & ~PCI_PM_CTRL_STATE_MASK) | ps);
		assert_int_equal(pmt_cfg_write(c, pm + PCI_PM_CTRL, &v, 2), 0);
		assert_int_equal(ps_bits(c, pm), 0);
		struct sdev pf = dev_status("dev");
		assert_string_equal(pf.power_state, "D0");
		assert_string_equal(pf.runtime_status, "active");
		/* host side: a 1-byte write at PMCSR is a PowerState write too */
		hwr("dev", pm + PCI_PM_CTRL, 1, ps);
		assert_int_equal(hrd("dev", pm + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, 0);
		assert_string_equal(dev_status("dev").power_state, "D0");
	}
	/* a 4-byte write at PMCSR, too */
	hwr("dev", pm + PCI_PM_CTRL, 4, 3);
	assert_int_equal(ps_bits(c, pm), 0);
	/* the PF never left D0 while it had VFs: its VFs are still there */
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_string_equal(find(&s, "dev")->power_state, "D0");

	/* the refusal was the VFs': without them D3hot is honoured */
	disable_vfs();
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	assert_string_equal(dev_status("dev").power_state, "D3hot");
	set_ps(c, pm, 0);
	assert_int_equal(ps_bits(c, pm), 0);
	/* and the enable brings it back (B33), after which D3hot is refused */
	set_ps(c, pm, 3);
	enable_vfs(1);
	assert_int_equal(ps_bits(c, pm), 0);
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 0);
	assert_string_equal(dev_status("dev").power_state, "D0");
}

/* V3 with B34: with d3hot_promotion on, a guest's D3hot on a PF that has
 * VFs is not promoted either: it is refused as any D3hot is (PowerState
 * reads D0), no reference is dropped, the PF stays in D0 with its VFs and
 * its BARs decode. Without the VFs the same write is promoted. */
static void v3_promotion_on_pf_with_vfs_is_refused(void **state)
{
	(void)state;
	up(2, "d3hot_promotion=always");
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	unsigned pm = client_cap(c, PCI_CAP_ID_PM);
	mem_enable(c);
	enable_vfs(2);
	int usage = dev_status("dev").usage;
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 0);
	struct sdev pf = dev_status("dev");
	assert_string_equal(pf.power_state, "D0");
	assert_string_equal(pf.runtime_status, "active");
	assert_int_equal(pf.usage, usage);   /* no reference lent */
	assert_false(pf.mmap_revoked);
	assert_int_equal(pf.underflows, 0);
	uint32_t v = 0;
	assert_int_equal(vfpm_client_region_read(c, 0, 0, &v, 4), 0);   /* BAR0 still decodes */
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);

	/* without VFs the write is promoted: it reads D3hot, memory stops */
	disable_vfs();
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	assert_int_equal(vfpm_client_region_read(c, 0, 0, &v, 4), -EIO);
	set_ps(c, pm, 0);
	assert_int_equal(ps_bits(c, pm), 0);
	assert_int_equal(dev_status("dev").underflows, 0);
}

/* B34 with B12: LOW_POWER_ENTRY_WITH_WAKEUP on a PF with VFs succeeds and
 * engages (BAR mappings revoked), but the PF never suspends: an access
 * does not fire the eventfd, and EXIT releases it silently. */
static void b34_lowpower_on_pf_engages_never_suspends(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	mem_enable(c);   /* mappings allowed: revocation is then the engagement's */
	enable_vfs(2);
	struct sdev pf = dev_status("dev");
	assert_false(pf.mmap_revoked);
	assert_int_equal(pf.usage, 2);   /* the client and the VFs */
	long long susp = pf.suspends;

	int efd = new_efd();
	assert_int_equal(pmt_lp_entry_wakeup(c, efd), 0);
	pf = dev_status("dev");
	assert_true(pf.engaged);
	assert_true(pf.mmap_revoked);
	/* the VFs' reference holds it: never suspends */
	pmt_quiet_ms(QUIET_MS);
	pf = dev_status("dev");
	assert_string_equal(pf.runtime_status, "active");
	assert_string_equal(pf.power_state, "D0");
	assert_int_equal(pf.suspends, susp);
	assert_int_equal(pf.usage, 1);   /* only the VFs' */

	/* an access: the device never really suspended, so no signal */
	assert_int_equal(crd(c, PCI_VENDOR_ID, 2), 0x1b36);
	uint32_t id = 0;
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_ID, &id, 4), 0);
	assert_int_equal(id, DEMO_ID);
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	assert_int_equal(pmt_eventfd_count(efd), 0);
	pf = dev_status("dev");
	assert_true(pf.engaged);
	assert_int_equal(pf.wakeups, 0);
	assert_string_equal(pf.runtime_status, "active");

	/* EXIT: silent release */
	assert_int_equal(pmt_lp_exit(c), 0);
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	assert_int_equal(pmt_eventfd_count(efd), 0);
	pf = dev_status("dev");
	assert_false(pf.engaged);
	assert_false(pf.mmap_revoked);
	assert_int_equal(pf.wakeups, 0);
	assert_int_equal(pf.usage, 2);
	assert_int_equal(pf.suspends, susp);

	/* plain ENTRY (feature 3) likewise: engaged, never suspended */
	assert_int_equal(pmt_lp_entry(c), 0);
	pmt_quiet_ms(QUIET_MS);
	pf = dev_status("dev");
	assert_true(pf.engaged);
	assert_string_equal(pf.runtime_status, "active");
	assert_int_equal(pf.suspends, susp);
	/* ... until the VFs go: then nothing holds it and it suspends */
	disable_vfs();
	wait_rt("dev", "suspended");
	assert_int_equal(pmt_lp_exit(c), 0);
	assert_false(dev_status("dev").engaged);
}

/* ================================================================== */
/* VFs */

/* B36: VFs runtime-suspend on their own while the PF stays active;
 * a client on VF0 resumes VF0 only: VF1 stays suspended and the PF's
 * state, usage and counters do not move. */
static void b36_vfs_suspend_independently(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *pfc = conn(0, g_p.sock[0]);
	(void)pfc;
	enable_vfs(2);
	wait_rt(vf_name("dev", 0), "suspended");
	wait_rt(vf_name("dev", 1), "suspended");
	struct snap s;
	snap_or_fail(&s);
	const struct sdev *pf = find(&s, "dev");
	assert_string_equal(pf->runtime_status, "active");
	assert_string_equal(pf->power_state, "D0");
	int pf_usage = pf->usage;
	long long pf_res = pf->resumes, pf_susp = pf->suspends;
	for (unsigned k = 0; k < 2; k++) {
		const struct sdev *vf = find(&s, vf_name("dev", k));
		assert_int_equal(vf->usage, 0);
		assert_string_equal(vf->power_state, "D3hot");
	}
	long long vf1_res = find(&s, vf_name("dev", 1))->resumes;

	struct vfpm_client *vc = conn(1, vf_sock(g_p.dir, "dev", 0));
	snap_or_fail(&s);
	const struct sdev *vf0 = find(&s, vf_name("dev", 0));
	const struct sdev *vf1 = find(&s, vf_name("dev", 1));
	assert_string_equal(vf0->runtime_status, "active");
	assert_string_equal(vf0->power_state, "D0");
	assert_int_equal(vf0->usage, 1);
	assert_string_equal(vf1->runtime_status, "suspended");
	assert_int_equal(vf1->resumes, vf1_res);
	pf = find(&s, "dev");
	assert_string_equal(pf->runtime_status, "active");
	assert_int_equal(pf->usage, pf_usage);
	assert_int_equal(pf->resumes, pf_res);
	assert_int_equal(pf->suspends, pf_susp);

	/* VF0 enters low power on its own: it suspends, the PF does not */
	assert_int_equal(pmt_lp_entry(vc), 0);
	wait_rt(vf_name("dev", 0), "suspended");
	snap_or_fail(&s);
	pf = find(&s, "dev");
	assert_string_equal(pf->runtime_status, "active");
	assert_int_equal(pf->usage, pf_usage);
	assert_string_equal(find(&s, vf_name("dev", 1))->runtime_status, "suspended");
	assert_int_equal(pmt_lp_exit(vc), 0);
	assert_string_equal(dev_status(vf_name("dev", 0)).runtime_status, "active");

	/* the VF client leaves: VF0 suspends again; nothing else moved */
	disconn(1);
	wait_rt(vf_name("dev", 0), "suspended");
	snap_or_fail(&s);
	pf = find(&s, "dev");
	assert_string_equal(pf->runtime_status, "active");
	assert_int_equal(pf->usage, pf_usage);
	assert_int_equal(pf->resumes, pf_res);
	assert_int_equal(find(&s, vf_name("dev", 1))->resumes, vf1_res);
}

/* A VF is a full device: IDs from the PF's capability (vendor of the PF,
 * VF Device ID, the PF's subsystem IDs), interrupt pin 0 and no INTx,
 * MSI-X, its BAR0 registers, its own PM capability (PMCSR D3hot/D0 of its
 * own), no SR-IOV capability of its own. */
static void vf_is_a_full_device(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *pfc = conn(0, g_p.sock[0]);
	(void)pfc;
	enable_vfs(2);
	struct vfpm_client *vf = conn(1, vf_sock(g_p.dir, "dev", 1));

	assert_int_equal(crd(vf, PCI_VENDOR_ID, 2), hrd("dev", PCI_VENDOR_ID, 2));
	assert_int_equal(crd(vf, PCI_DEVICE_ID, 2), hrd("dev", SR(PCI_SRIOV_VF_DID), 2));
	assert_int_equal(crd(vf, PCI_SUBSYSTEM_VENDOR_ID, 2), hrd("dev", PCI_SUBSYSTEM_VENDOR_ID, 2));
	assert_int_equal(crd(vf, PCI_SUBSYSTEM_ID, 2), hrd("dev", PCI_SUBSYSTEM_ID, 2));
	assert_int_equal(crd(vf, PCI_INTERRUPT_PIN, 1), 0);
	/* the host sees the same */
	assert_int_equal(hrd(vf_name("dev", 1), PCI_DEVICE_ID, 2), hrd("dev", SR(PCI_SRIOV_VF_DID), 2));

	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(vf, &di), 0);
	assert_true(di.flags & VFIO_DEVICE_FLAGS_PCI);
	assert_true(di.num_irqs >= VFIO_PCI_REQ_IRQ_INDEX + 1);
	struct vfpm_irq_info ii;
	assert_int_equal(vfpm_client_irq_info(vf, VFIO_PCI_INTX_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 0);
	assert_int_equal(vfpm_client_irq_info(vf, VFIO_PCI_MSIX_IRQ_INDEX, &ii), 0);
	assert_true(ii.count >= 1);
	assert_int_equal(vfpm_client_irq_info(vf, VFIO_PCI_REQ_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 1);
	/* no INTx to set up */
	int efd = new_efd();
	assert_int_not_equal(vfpm_client_set_irqs(vf,
						  VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
						  VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd, 1, NULL),
			     0);
	/* MSI-X works: vector 0 set up */
	assert_int_equal(vfpm_client_set_irqs(vf, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL),
			 0);
	assert_true(client_cap(vf, PCI_CAP_ID_MSIX) != 0);
	unsigned pm = client_cap(vf, PCI_CAP_ID_PM);
	assert_true(pm != 0);
	assert_int_equal(client_ext_cap(vf, PCI_EXT_CAP_ID_SRIOV), 0);

	/* BAR0 registers */
	mem_enable(vf);
	uint32_t v = 0;
	assert_int_equal(vfpm_client_region_read(vf, BAR0, REG_ID, &v, 4), 0);
	assert_int_equal(v, DEMO_ID);
	char id[5] = { 0 };
	memcpy(id, &v, 4);
	assert_string_equal(id, "VFPM");
	v = 0xa5a5f00d;
	assert_int_equal(vfpm_client_region_write(vf, BAR0, REG_SCRATCH, &v, 4), 0);
	v = 0;
	assert_int_equal(vfpm_client_region_read(vf, BAR0, REG_SCRATCH, &v, 4), 0);
	assert_int_equal(v, 0xa5a5f00d);
	/* BAR2 is mmap-able memory */
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(vf, VFIO_PCI_BAR2_REGION_INDEX, &ri), 0);
	assert_true(ri.size >= 4096);
	assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	if (ri.fd >= 0)
		close(ri.fd);

	/* its own PM: D3hot on the VF is honoured (the PF stays in D0) */
	set_ps(vf, pm, 3);
	assert_int_equal(ps_bits(vf, pm), 3);
	struct snap s;
	snap_or_fail(&s);
	assert_string_equal(find(&s, vf_name("dev", 1))->power_state, "D3hot");
	assert_string_equal(find(&s, "dev")->power_state, "D0");
	assert_int_equal(vfpm_client_region_read(vf, BAR0, REG_ID, &v, 4), -EIO);   /* B24 */
	set_ps(vf, pm, 0);
	assert_int_equal(ps_bits(vf, pm), 0);
	assert_int_equal(vfpm_client_region_read(vf, BAR0, REG_ID, &v, 4), 0);
	assert_int_equal(v, DEMO_ID);
}

/* Socket names and the control plane's view: VF k of PF NAME is NAME-vfK
 * on <directory of the PF's socket>/NAME-vfK.sock, listed right after its
 * PF with "pf": NAME; the PF shows total_vfs and num_vfs. Two PFs, the
 * second with its socket in a directory of its own. */
static void vf_naming_and_status(void **state)
{
	(void)state;
	char base[64], nicdir[128], nicsock[160], spec2[512];
	/* the second PF's socket lives in a directory of its own, which
	 * vfpmd creates (its last component) */
	snprintf(base, sizeof(base), "/tmp/vfpm-sriov-XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(g_extra_base, sizeof(g_extra_base), "%s", base);
	snprintf(nicdir, sizeof(nicdir), "%s/nics", base);
	snprintf(g_extra_dir, sizeof(g_extra_dir), "%s", nicdir);
	snprintf(nicsock, sizeof(nicsock), "%s/nic.sock", nicdir);
	snprintf(spec2, sizeof(spec2), "demo,name=nic,pm_delays=none,total_vfs=2,socket=%s", nicsock);
	const char *specs[] = { "demo,name=dev,pm_delays=none,total_vfs=4", spec2, NULL };
	assert_int_equal(vfpmd_start(&g_p, specs, NULL), 0);
	g_up = true;
	pmt_watch(g_p.pid);

	pf_cap();
	unsigned nic_cap = sriov_cap_of("nic");
	assert_true(nic_cap != 0);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(s.n, 2);
	assert_int_equal(find(&s, "dev")->num_vfs, 0);
	assert_int_equal(find(&s, "dev")->total_vfs, 4);
	assert_int_equal(find(&s, "nic")->total_vfs, 2);

	enable_vfs(3);
	hwr("nic", nic_cap + PCI_SRIOV_NUM_VF, 2, 2);
	hwr("nic", nic_cap + PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE);
	snap_or_fail(&s);
	static const char *const order[] = { "dev", "dev-vf0", "dev-vf1", "dev-vf2",
					     "nic", "nic-vf0", "nic-vf1" };
	assert_int_equal(s.n, 7);
	for (unsigned i = 0; i < 7; i++) {
		const struct sdev *d = &s.d[i];
		if (strcmp(d->name, order[i]))
			fail_msg("status entry %u is %s, expected %s", i, d->name, order[i]);
		assert_string_equal(d->model, "demo");
		bool is_vf = strchr(order[i], '-') != NULL;
		const char *pf = is_vf ? (order[i][0] == 'd' ? "dev" : "nic") : NULL;
		if (is_vf) {
			unsigned k = (unsigned)(order[i][strlen(order[i]) - 1] - '0');
			const char *dir = pf[0] == 'd' ? g_p.dir : nicdir;
			assert_true(d->has_pf_key);
			assert_string_equal(d->pf, pf);
			assert_string_equal(d->socket, vf_sock(dir, pf, k));
			assert_true(is_socket(d->socket));
			assert_int_equal(d->num_vfs, -1);   /* PF fields only on PFs */
			assert_int_equal(d->total_vfs, -1);
			/* it serves */
			assert_int_equal(vfpm_client_connect(d->socket, NULL, &g_cl[0]), 0);
			assert_int_equal(crd(g_cl[0], PCI_DEVICE_ID, 2), 0x10f1);
			disconn(0);
		} else {
			assert_false(d->has_pf_key);
			assert_int_equal(d->num_vfs, d->name[0] == 'd' ? 3 : 2);
		}
	}
	assert_string_equal(find(&s, "nic")->socket, nicsock);
	assert_string_equal(find(&s, "dev")->socket, g_p.sock[0]);
	/* nothing else appeared in the directories */
	assert_false(is_socket(vf_sock(g_p.dir, "dev", 3)));
	assert_false(is_socket(vf_sock(g_p.dir, "nic", 0)));
	assert_false(is_socket(vf_sock(nicdir, "dev", 0)));

	/* each PF's VFs go with their own VF Enable only */
	hwr("nic", nic_cap + PCI_SRIOV_CTRL, 2, 0);
	snap_or_fail(&s);
	assert_int_equal(s.n, 5);
	assert_int_equal(vfs_of(&s, "dev"), 3);
	assert_int_equal(vfs_of(&s, "nic"), 0);
	assert_int_equal(find(&s, "nic")->num_vfs, 0);
	assert_false(is_socket(vf_sock(nicdir, "nic", 0)));
	/* a VF's name addresses it on the control plane; the PF's name of a
	 * VF that is gone does not */
	assert_int_equal(hrd("dev-vf2", PCI_VENDOR_ID, 2), 0x1b36);
	uint32_t v = 0;
	assert_int_equal(pmt_ctl_config_rw(&g_p, "nic-vf0", 0, 2, &v, false), -ENODEV);
	/* vfpmd is stopped with dev's VFs present (teardown: exit 0) */
}

/* A control-plane write from another thread: the VF Enable clear blocks
 * while a VF client holds on. */
struct ctl_job {
	unsigned off;
	uint32_t val;
	int rc;
	uint64_t t0, t1;
};

static void *ctl_write_main(void *arg)
{
	struct ctl_job *j = arg;
	j->t0 = now_ms();
	j->rc = pmt_ctl_config_rw(&g_p, "dev", j->off, 2, &j->val, true);
	j->t1 = now_ms();
	return NULL;
}

/* A client on VF vf (client slot 1 + vf) with a REQ eventfd (SET_IRQS
 * index 4). */
static int vf_client_with_req(unsigned vf)
{
	struct vfpm_client *vc = conn(1 + (int)vf, vf_sock(g_p.dir, "dev", vf));
	struct vfpm_irq_info ii;
	assert_int_equal(vfpm_client_irq_info(vc, VFIO_PCI_REQ_IRQ_INDEX, &ii), 0);
	assert_int_equal(ii.count, 1);
	int efd = new_efd();
	assert_int_equal(vfpm_client_set_irqs(vc, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd, 1, NULL),
			 0);
	return efd;
}

static int vf0_client_with_req(void)
{
	return vf_client_with_req(0);
}

static void assert_vfs_gone(unsigned n)
{
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 0);
	assert_int_equal(find(&s, "dev")->num_vfs, 0);
	for (unsigned k = 0; k < n; k++)
		assert_false(is_socket(vf_sock(g_p.dir, "dev", k)));
}

/* Removing a VF with a client: the VF's REQ eventfd fires, the client
 * lets go on seeing it, and the VF Enable clear completes promptly. */
static void vf_removal_with_client_connected(void **state)
{
	(void)state;
	up(2, NULL);
	pf_cap();
	struct vfpm_client *pfc = conn(0, g_p.sock[0]);
	(void)pfc;
	enable_vfs(2);
	int efd = vf0_client_with_req();
	assert_int_equal(pmt_eventfd_count(efd), 0);

	struct ctl_job job = { .off = SR(PCI_SRIOV_CTRL), .val = 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ctl_write_main, &job), 0);
	struct pollfd pfd = { .fd = efd, .events = POLLIN };
	int pr = poll(&pfd, 1, WAIT_MS);
	uint64_t t_req = now_ms();
	uint64_t req = pr == 1 ? pmt_eventfd_count(efd) : 0;
	disconn(1);   /* the client lets go */
	pthread_join(th, NULL);
	if (req == 0)
		fail_msg("REQ eventfd never fired");
	assert_int_equal(job.rc, 0);
	/* the removal waited for the client, and no longer than needed */
	assert_true(job.t1 + 1 >= t_req);
	if (job.t1 - job.t0 > 3000)
		fail_msg("VF removal took %llu ms with a cooperating client",
			 (unsigned long long)(job.t1 - job.t0));
	assert_vfs_gone(2);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, 0);
	/* and the PF can enable again */
	enable_vfs(2);
	disable_vfs();
}

/* Clients that ignore REQ: each is asked again every second, and after
 * one 10 s grace shared by all (not one per VF) the server closes their
 * connections and the removal completes. */
static void vf_removal_client_ignoring_req_is_disconnected(void **state)
{
	(void)state;
	alarm(GRACE_ALARM_S);
	up(2, NULL);
	pf_cap();
	struct vfpm_client *pfc = conn(0, g_p.sock[0]);
	(void)pfc;
	enable_vfs(2);
	int efd = vf0_client_with_req();
	int fd = vfpm_client_fd(g_cl[1]);
	int efd1 = vf_client_with_req(1);
	int fd1 = vfpm_client_fd(g_cl[2]);

	struct ctl_job job = { .off = SR(PCI_SRIOV_CTRL), .val = 0 };
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, ctl_write_main, &job), 0);
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 40;
	int jr = pthread_timedjoin_np(th, NULL, &limit);
	if (jr) {
		kill(g_p.pid, SIGKILL);   /* unblocks the control-plane request */
		pthread_join(th, NULL);
		fail_msg("VF removal still blocked after 40 s");
	}
	assert_int_equal(job.rc, 0);
	uint64_t dt = job.t1 - job.t0;
	fprintf(stderr, "removal with a client ignoring REQ: %llu ms\n", (unsigned long long)dt);
	if (dt < 9000 || dt > 15000)
		fail_msg("removal took %llu ms, expected one 10 s grace for both VFs",
			 (unsigned long long)dt);
	/* asked repeatedly (about once a second) */
	uint64_t reqs = pmt_eventfd_count(efd);
	uint64_t reqs1 = pmt_eventfd_count(efd1);
	if (reqs < 5 || reqs1 < 5)
		fail_msg("REQ signalled %llu and %llu times in %llu ms", (unsigned long long)reqs,
			 (unsigned long long)reqs1, (unsigned long long)dt);
	char b1;
	ssize_t r1 = recv(fd1, &b1, 1, MSG_DONTWAIT);
	if (!(r1 == 0 || (r1 < 0 && errno == ECONNRESET)))
		fail_msg("VF1's client connection still open after removal");
	/* the client's connection was closed by the server */
	char b;
	ssize_t r = recv(fd, &b, 1, MSG_DONTWAIT);
	if (!(r == 0 || (r < 0 && errno == ECONNRESET)))
		fail_msg("client connection still open after removal (recv %zd, %s)", r,
			 r < 0 ? strerror(errno) : "data");
	uint32_t v;
	assert_true(pmt_cfg_read(g_cl[1], PCI_VENDOR_ID, &v, 4) < 0);
	assert_vfs_gone(2);
	/* the PF and its client carry on */
	assert_int_equal(crd(pfc, PCI_VENDOR_ID, 2), 0x1b36);
	enable_vfs(1);
}


/* Scale: 256 VFs of one PF, with vfpmd started under the usual soft limit
 * of 1024 descriptors (each demo VF holds three: vfpmd raises its soft
 * limit to the hard one). All 256 are listed and listening, the last one
 * serves, and they all go away again. */
static void sriov_256_vfs_under_a_1024_descriptor_limit(void **state)
{
	(void)state;
	struct rlimit old;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < 2048) {
		skip();   /* the hard limit itself is too low for 256 VFs */
		return;
	}
	struct rlimit low = { .rlim_cur = 1024, .rlim_max = old.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	int rc = pmt_start(&g_p, "total_vfs=256");   /* vfpmd inherits the limit */
	setrlimit(RLIMIT_NOFILE, &old);
	assert_int_equal(rc, 0);
	g_up = true;
	pmt_watch(g_p.pid);
	pf_cap();
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_TOTAL_VF), 2), 256);
	uint64_t t0 = now_ms();
	enable_vfs(256);
	uint64_t dt = now_ms() - t0;
	fprintf(stderr, "256 VFs enabled and listed in %llu ms\n", (unsigned long long)dt);
	struct snap *s = malloc(sizeof(*s));
	assert_non_null(s);
	snap_or_fail(s);
	assert_int_equal(s->n, 257);
	for (unsigned k = 0; k < 256; k++) {
		const struct sdev *d = &s->d[1 + k];
		if (strcmp(d->name, vf_name("dev", k)) || strcmp(d->socket, vf_sock(g_p.dir, "dev", k)) ||
		    !is_socket(d->socket))
			fail_msg("VF %u: %s on %s", k, d->name, d->socket);
	}
	free(s);
	int fd = raw_connect_negotiated(vf_sock(g_p.dir, "dev", 255));
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(hrd("dev-vf255", PCI_DEVICE_ID, 2), hrd("dev", SR(PCI_SRIOV_VF_DID), 2));
	disable_vfs();
	assert_false(is_socket(vf_sock(g_p.dir, "dev", 0)));
	assert_false(is_socket(vf_sock(g_p.dir, "dev", 255)));
	wait_rt("dev", "suspended");
}

/* ================================================================== */
/* SR-IOV the way the kernel drives it (#9): the host's sriov_numvfs */

/* The reply to set sriov_numvfs=val on dev: errno (0 or negative) and the
 * error text (or ""). */
static int set_numvfs_reply(const char *dev, const char *val, char *err, size_t errlen)
{
	char req[256];
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"set\",\"device\":\"%s\",\"key\":\"sriov_numvfs\",\"value\":\"%s\"}", dev,
		 val);
	struct json_object *o = pmt_ctl_json(&g_p, req);
	int rc = pmt_reply_errno(o);
	snprintf(err, errlen, "%s", rc ? jstr(o, "error") : "");
	json_object_put(o);
	return rc;
}

/* vfpmctl (VFPMCTL from the test's environment) run against vfpmd's control
 * socket; its standard output in out. Returns its exit status. */
static int run_vfpmctl(const char *args, char *out, size_t len)
{
	const char *bin = getenv("VFPMCTL");
	assert_non_null(bin);
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "%s --ctl %s %s", bin, g_p.ctl, args);
	FILE *f = popen(cmd, "r");
	assert_non_null(f);
	size_t n = fread(out, 1, len - 1, f);
	out[n] = '\0';
	return pclose(f);
}

/* The line of a vfpmctl status table that starts with name. */
static const char *table_line(const char *out, const char *name, char *line, size_t len)
{
	for (const char *p = out; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		size_t nlen = strlen(name);
		if (l > nlen && !strncmp(p, name, nlen) && p[nlen] == ' ') {
			snprintf(line, len, "%.*s", (int)l, p);
			return line;
		}
		p = nl ? nl + 1 : NULL;
	}
	fail_msg("no status line for %s in:\n%s", name, out);
	return NULL;
}

/* sriov_numvfs as Linux's sriov_numvfs_store: above TotalVFs -> ERANGE
 * with a message naming both numbers; not a number -> EINVAL; N -> M with
 * both non-zero -> EBUSY and the VFs stay; the same N again succeeds; 0
 * removes them; a VF (not a PF) has no such setting. sriov_totalvfs and
 * sriov_numvfs in vfpmctl status, as text and as JSON. */
static void sriov_numvfs_set_rules_and_status(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	char err[200];
	struct sdev pf = dev_status("dev");
	assert_int_equal(pf.total_vfs, 4);
	assert_int_equal(pf.num_vfs, 0);

	assert_int_equal(set_numvfs_reply("dev", "5", err, sizeof(err)), -ERANGE);
	assert_string_equal(err, "sriov_numvfs 5 exceeds sriov_totalvfs 4");
	assert_int_equal(set_numvfs_reply("dev", "99999999999999999999", err, sizeof(err)), -ERANGE);
	for (unsigned i = 0; i < 4; i++) {
		static const char *const bad[] = { "two", "-1", "", "2x" };
		assert_int_equal(set_numvfs_reply("dev", bad[i], err, sizeof(err)), -EINVAL);
	}
	assert_int_equal(dev_status("dev").num_vfs, 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 0);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2), 0);

	enable_vfs(2);
	long long vf0_resumes = dev_status("dev-vf0").resumes;
	assert_int_equal(set_numvfs("dev", 2), 0);   /* the same count: nothing happens */
	assert_int_equal(set_numvfs_reply("dev", "3", err, sizeof(err)), -EBUSY);
	assert_non_null(strstr(err, "sriov_numvfs=0"));
	assert_int_equal(set_numvfs("dev", 1), -EBUSY);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(find(&s, "dev")->num_vfs, 2);
	assert_int_equal(find(&s, "dev-vf0")->resumes, vf0_resumes);   /* the same VF */
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	assert_int_equal(set_numvfs("dev-vf0", 1), -ENOENT);

	char out[8192], line[512];
	assert_int_equal(run_vfpmctl("status", out, sizeof(out)), 0);
	assert_non_null(strstr(out, " VFS "));
	assert_non_null(strstr(table_line(out, "dev", line, sizeof(line)), " 2/4 "));
	assert_null(strstr(table_line(out, "dev-vf0", line, sizeof(line)), "/4"));
	assert_int_equal(run_vfpmctl("status --json dev", out, sizeof(out)), 0);
	assert_non_null(strstr(out, "\"sriov_totalvfs\": 4"));
	assert_non_null(strstr(out, "\"sriov_numvfs\": 2"));
	assert_int_equal(run_vfpmctl("set dev sriov_numvfs=3 2>/dev/null", out, sizeof(out)) != 0, 1);
	assert_int_equal(run_vfpmctl("set dev sriov_numvfs=0", out, sizeof(out)), 0);
	assert_int_equal(dev_status("dev").num_vfs, 0);
	assert_int_equal(run_vfpmctl("set dev sriov_numvfs=4", out, sizeof(out)), 0);
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 4);
	disable_vfs();
}

/* sriov_numvfs on a PF suspended with no client, in D3hot and (with
 * platform_d3cold=on) in D3cold: the PF resumes to D0 and stays active
 * with the VFs' reference; removing them lets it suspend again. */
static void sriov_numvfs_on_suspended_pf_without_client(void **state)
{
	(void)state;
	static const char *const keys[] = { NULL, "platform_d3cold=on" };
	static const char *const asleep[] = { "D3hot", "D3cold" };
	for (unsigned k = 0; k < 2; k++) {
		if (k) {
			assert_int_equal(vfpmd_stop(&g_p), 0);
			g_up = false;
		}
		up(4, keys[k]);
		pf_cap();
		wait_rt("dev", "suspended");
		struct sdev pf = dev_status("dev");
		assert_string_equal(pf.power_state, asleep[k]);
		assert_false(pf.client_connected);
		long long res0 = pf.resumes;
		enable_vfs(2);
		pf = dev_status("dev");
		assert_string_equal(pf.power_state, "D0");
		assert_string_equal(pf.runtime_status, "active");
		assert_int_equal(pf.usage, 1);
		assert_int_equal(pf.resumes, res0 + 1);
		pmt_quiet_ms(QUIET_MS);
		assert_string_equal(dev_status("dev").runtime_status, "active");
		/* the VFs serve */
		struct vfpm_client *vc = conn(1, vf_sock(g_p.dir, "dev", 1));
		uint32_t id = 0;
		assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), 0);
		assert_int_equal(id, DEMO_ID);
		disconn(1);
		disable_vfs();
		wait_rt("dev", "suspended");
		assert_string_equal(dev_status("dev").power_state, asleep[k]);
	}
}

/* sriov_numvfs on a PF its client put in D3hot through PMCSR (no
 * promotion: the client's reference holds it active in D3hot): the enable
 * brings it to D0 (PowerState reads 0), the client's config survives
 * (NoSoftRst+), and D3hot is refused while the VFs exist. */
static void sriov_numvfs_on_pf_in_client_d3hot(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	unsigned pm = client_cap(c, PCI_CAP_ID_PM);
	mem_enable(c);
	uint32_t scratch = 0x5a5a1234;
	assert_int_equal(vfpm_client_region_write(c, BAR0, REG_SCRATCH, &scratch, 4), 0);
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
	struct sdev pf = dev_status("dev");
	assert_string_equal(pf.power_state, "D3hot");
	uint32_t v = 0;
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_ID, &v, 4), -EIO);   /* D3hot */
	enable_vfs(2);
	assert_int_equal(ps_bits(c, pm), 0);
	pf = dev_status("dev");
	assert_string_equal(pf.power_state, "D0");
	assert_int_equal(pf.usage, 2);
	assert_true(crd(c, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_SCRATCH, &v, 4), 0);
	assert_int_equal(v, scratch);
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 0);
	assert_string_equal(dev_status("dev").power_state, "D0");
	disable_vfs();
	set_ps(c, pm, 3);
	assert_int_equal(ps_bits(c, pm), 3);
}

/* sriov_numvfs on a PF engaged in low power with a wakeup armed and
 * runtime-suspended: the enable resumes it, which fires the wakeup exactly
 * once and disengages (B11); the PF then holds the client's and the VFs'
 * references. */
static void sriov_numvfs_on_pf_engaged_with_wakeup_fires_once(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	int efd = new_efd();
	assert_int_equal(pmt_lp_entry_wakeup(c, efd), 0);
	wait_rt("dev", "suspended");
	struct sdev pf = dev_status("dev");
	assert_true(pf.engaged);
	assert_int_equal(pf.wakeups, 0);
	enable_vfs(2);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	pf = dev_status("dev");
	assert_false(pf.engaged);
	assert_int_equal(pf.wakeups, 1);
	assert_string_equal(pf.power_state, "D0");
	assert_string_equal(pf.runtime_status, "active");
	assert_int_equal(pf.usage, 2);   /* the client's open reference and the VFs' */
	/* once: nothing more fires, whatever follows */
	assert_int_equal(crd(c, PCI_VENDOR_ID, 2), 0x1b36);
	disable_vfs();
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	assert_int_equal(pmt_eventfd_count(efd), 0);
	pf = dev_status("dev");
	assert_int_equal(pf.wakeups, 1);
	assert_int_equal(pf.usage, 1);
	assert_string_equal(pf.runtime_status, "active");
}

/* sriov_numvfs on a PF in use: its client's BAR contents and config are
 * untouched by the enable and the disable, and it keeps working. */
static void sriov_numvfs_on_pf_in_use(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	mem_enable(c);
	uint32_t scratch = 0xc0ffee01, v = 0;
	assert_int_equal(vfpm_client_region_write(c, BAR0, REG_SCRATCH, &scratch, 4), 0);
	long long res0 = dev_status("dev").resumes;
	enable_vfs(3);
	struct sdev pf = dev_status("dev");
	assert_int_equal(pf.usage, 2);
	assert_int_equal(pf.resumes, res0);   /* it was active: no resume */
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_SCRATCH, &v, 4), 0);
	assert_int_equal(v, scratch);
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_ID, &v, 4), 0);
	assert_int_equal(v, DEMO_ID);
	disable_vfs();
	assert_int_equal(vfpm_client_region_read(c, BAR0, REG_SCRATCH, &v, 4), 0);
	assert_int_equal(v, scratch);
	assert_int_equal(dev_status("dev").usage, 1);
}

/* VFs outlive the PF client's connection: the VFs are the host's. A PF
 * client that disconnects (which resets the PF) or resets it leaves the
 * VFs, their clients, VF Enable, VF MSE and NumVFs as they were. */
static void vfs_outlive_pf_client(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	conn(0, g_p.sock[0]);
	enable_vfs(2);
	struct vfpm_client *vc = conn(1, vf_sock(g_p.dir, "dev", 0));
	uint32_t scratch = 0x600d600d, v = 0;
	assert_int_equal(vfpm_client_region_write(vc, BAR0, REG_SCRATCH, &scratch, 4), 0);
	disconn_wait(0, "dev");
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(find(&s, "dev")->num_vfs, 2);
	assert_int_equal(find(&s, "dev")->usage, 1);
	assert_string_equal(find(&s, "dev")->power_state, "D0");
	assert_true(is_socket(vf_sock(g_p.dir, "dev", 1)));
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2) & (PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE),
			 PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_SCRATCH, &v, 4), 0);
	assert_int_equal(v, scratch);
	/* a new PF client sees them, and its DEVICE_RESET keeps them */
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2) & PCI_SRIOV_CTRL_VFE, PCI_SRIOV_CTRL_VFE);
	assert_int_equal(vfpm_client_reset(c), 0);
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2) & (PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE),
			 PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	disconn(0);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &v, 4), 0);
	assert_int_equal(v, DEMO_ID);
	disconn(1);
	disable_vfs();
	wait_rt("dev", "suspended");
}

/* The PF client's view of the SR-IOV capability is read-only, as vfio-pci
 * presents it: it reads the host's values; writes to any of its bytes
 * (NumVFs, Control, System Page Size, VF BARs) are dropped and create no
 * VF; after the host enables VFs it reads VF Enable and NumVFs, and its
 * clearing of VF Enable removes nothing. */
static void client_view_of_sriov_cap_read_only(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	struct vfpm_client *c = conn(0, g_p.sock[0]);
	assert_int_equal(client_ext_cap(c, PCI_EXT_CAP_ID_SRIOV), g_cap);
	uint32_t before[16];
	for (unsigned i = 0; i < 16; i++) {
		before[i] = crd(c, g_cap + 4 * i, 4);
		assert_int_equal(before[i], hrd("dev", g_cap + 4 * i, 4));
	}
	cwr(c, SR(PCI_SRIOV_NUM_VF), 2, 2);
	cwr(c, SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI);
	cwr(c, SR(PCI_SRIOV_SYS_PGSIZE), 4, 2);
	cwr(c, SR(PCI_SRIOV_BAR), 4, 0xffffffffu);
	for (unsigned i = 0; i < 16; i++) {
		/* a write as wide as the whole capability, too */
		cwr(c, g_cap + 4 * i, 4, 0xffffffffu);
	}
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(crd(c, g_cap + 4 * i, 4), before[i]);
		assert_int_equal(hrd("dev", g_cap + 4 * i, 4), before[i]);
	}
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(s.n, 1);
	assert_int_equal(find(&s, "dev")->num_vfs, 0);
	/* the bytes around it are still written: COMMAND in the same session */
	mem_enable(c);
	assert_true(crd(c, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);

	enable_vfs(2);
	assert_int_equal(crd(c, SR(PCI_SRIOV_NUM_VF), 2), 2);
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2), PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	cwr(c, SR(PCI_SRIOV_CTRL), 2, 0);
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), 2);
	assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2), PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	disable_vfs();
}

/* VF Enable and VF MSE (and NumVFs = n) written raw by the host, as a
 * config write through the control plane (setpci): the register rules. */
static void raw_enable(unsigned n, uint16_t ctrl)
{
	hwr("dev", SR(PCI_SRIOV_NUM_VF), 2, n);
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, ctrl);
	struct snap s;
	snap_or_fail(&s);
	assert_int_equal(vfs_of(&s, "dev"), n);
}

/* A VF's memory decode follows its PF's VF MSE, not the VF's own
 * COMMAND.MEM (vfio-pci's no_command_memory): a VF client reads BAR0 with
 * COMMAND.MEM clear while VF MSE is set, and gets EIO (with its mappings
 * revoked) while VF MSE is clear, COMMAND.MEM set or not. */
static void vf_memory_decode_follows_pf_vf_mse(void **state)
{
	(void)state;
	up(4, NULL);
	pf_cap();
	raw_enable(1, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	struct vfpm_client *vc = conn(1, vf_sock(g_p.dir, "dev", 0));
	uint32_t id = 0;
	assert_false(crd(vc, PCI_COMMAND, 2) & PCI_COMMAND_MEMORY);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), 0);
	assert_int_equal(id, DEMO_ID);
	assert_false(dev_status("dev-vf0").mmap_revoked);

	hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE);   /* VF MSE off */
	assert_int_equal(dev_status("dev").num_vfs, 1);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), -EIO);
	assert_true(dev_status("dev-vf0").mmap_revoked);
	mem_enable(vc);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), -EIO);
	assert_true(dev_status("dev-vf0").mmap_revoked);

	hwr("dev", SR(PCI_SRIOV_CTRL), 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	id = 0;
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), 0);
	assert_int_equal(id, DEMO_ID);
	assert_false(dev_status("dev-vf0").mmap_revoked);
	uint16_t cmd = (uint16_t)crd(vc, PCI_COMMAND, 2);
	cwr(vc, PCI_COMMAND, 2, cmd & ~PCI_COMMAND_MEMORY);
	assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), 0);
	assert_false(dev_status("dev-vf0").mmap_revoked);
	disconn(1);
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);
}

/* VFs are never in D3cold: with platform_d3cold=on (which the PF honours)
 * an idle VF runtime-suspends to D3hot. */
static void vf_never_d3cold(void **state)
{
	(void)state;
	up(4, "platform_d3cold=on");
	pf_cap();
	wait_rt("dev", "suspended");
	assert_string_equal(dev_status("dev").power_state, "D3cold");
	raw_enable(2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
	for (unsigned k = 0; k < 2; k++) {
		wait_rt(vf_name("dev", k), "suspended");
		assert_string_equal(dev_status(vf_name("dev", k)).power_state, "D3hot");
	}
	/* a client comes and goes: suspended again, to D3hot again */
	conn(1, vf_sock(g_p.dir, "dev", 0));
	assert_string_equal(dev_status("dev-vf0").power_state, "D0");
	disconn(1);
	wait_rt("dev-vf0", "suspended");
	assert_string_equal(dev_status("dev-vf0").power_state, "D3hot");
	hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);
	wait_rt("dev", "suspended");
	assert_string_equal(dev_status("dev").power_state, "D3cold");
}

/* VF MSE is kept when a NoSoftRst- PF is resumed under an enable: from an
 * idle runtime suspend (the resume restores config saved before) and from
 * its client's D3hot (the D0 transition restores the B30 snapshot), VF
 * Enable and VF MSE read back set and the VF decodes memory. */
static void vf_mse_kept_when_nosoftrst_minus_pf_resumes(void **state)
{
	(void)state;
	up(4, "nosoftrst=off");
	pf_cap();
	for (unsigned round = 0; round < 2; round++) {
		struct vfpm_client *c = NULL;
		unsigned pm = 0;
		if (round == 0) {
			idle_pf_after_a_user();
		} else {
			c = conn(0, g_p.sock[0]);
			pm = client_cap(c, PCI_CAP_ID_PM);
			set_ps(c, pm, 3);
			assert_int_equal(ps_bits(c, pm), 3);
		}
		raw_enable(2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
		assert_string_equal(dev_status("dev").power_state, "D0");
		assert_int_equal(hrd("dev", SR(PCI_SRIOV_CTRL), 2),
				 PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
		assert_int_equal(hrd("dev", SR(PCI_SRIOV_NUM_VF), 2), 2);
		if (c) {
			assert_int_equal(ps_bits(c, pm), 0);
			assert_int_equal(crd(c, SR(PCI_SRIOV_CTRL), 2),
					 PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
		}
		struct vfpm_client *vc = conn(1, vf_sock(g_p.dir, "dev", 1));
		uint32_t id = 0;
		assert_int_equal(vfpm_client_region_read(vc, BAR0, REG_ID, &id, 4), 0);
		assert_int_equal(id, DEMO_ID);
		disconn(1);
		hwr("dev", SR(PCI_SRIOV_CTRL), 2, 0);
		if (c)
			disconn(0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(sriov_cap_fields),
		T(sriov_write_rules),
		T(b33_enable_resumes_pf_and_holds_reference),
		T(b33_pmcsr_d3hot_overridden_by_enable),
		T(b33_enable_on_nosoftrst_minus_pf_keeps_vf_enable),
		T(b34_pf_stays_d0_with_vfs),
		T(v3_promotion_on_pf_with_vfs_is_refused),
		T(b34_lowpower_on_pf_engages_never_suspends),
		T(b36_vfs_suspend_independently),
		T(vf_is_a_full_device),
		T(vf_naming_and_status),
		T(vf_removal_with_client_connected),
		T(vf_removal_client_ignoring_req_is_disconnected),
		T(sriov_256_vfs_under_a_1024_descriptor_limit),
		T(sriov_numvfs_set_rules_and_status),
		T(sriov_numvfs_on_suspended_pf_without_client),
		T(sriov_numvfs_on_pf_in_client_d3hot),
		T(sriov_numvfs_on_pf_engaged_with_wakeup_fires_once),
		T(sriov_numvfs_on_pf_in_use),
		T(vfs_outlive_pf_client),
		T(client_view_of_sriov_cap_read_only),
		T(vf_memory_decode_follows_pf_vf_mse),
		T(vf_never_d3cold),
		T(vf_mse_kept_when_nosoftrst_minus_pf_resumes),
#undef T
	};
	return cmocka_run_group_tests_name("sriov", tests, NULL, NULL);
}
