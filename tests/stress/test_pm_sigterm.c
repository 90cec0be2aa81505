/* Random SIGTERM under load: vfpmd must stop cleanly whatever it is doing.
 *
 * Each round starts a vfpmd with three demo devices (d0, d1, and pf, an
 * SR-IOV PF with two VFs) and runs at once:
 *   clients   one per device: config reads and writes, BAR0 scratch and
 *             doorbell traffic, guest PMCSR D3hot -> D0, LOW_POWER entry
 *             with a wakeup eventfd and exit; every request must succeed
 *             until SIGTERM is sent;
 *   settings  the control plane toggles every run-time setting of every
 *             device (power_control, autosuspend_delay_ms, platform_d3cold,
 *             d3cold_allowed, idle_d3, pm_delays, d3hot_promotion, and the
 *             energy figures power_d0_mw ... power_d3cold_mw, within the
 *             rule that no state draws more than D0);
 *   sriov     the control plane enables and disables the PF's VFs (their
 *             sockets come and go) and reads status, in which no device's
 *             energy used or saved may ever go back;
 * then sends SIGTERM at a random point (seeded). vfpmd must exit with
 * status 0 within 15 s, leave no socket file behind (devices, VFs,
 * control socket), and its log must hold no sanitizer report: under
 * `make check-tsan` it is TSan-instrumented (suite "concurrency").
 *
 * VFPM_STRESS_SEED sets the seed (default: from the clock; printed either
 * way, so a failing round can be replayed), VFPM_SIGTERM_ROUNDS the number
 * of rounds (default 4); each round's SIGTERM comes 0.2 to 2.5 s after the
 * load starts. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"
#include "stress.h"

#define NDEV 3
#define EXIT_BOUND_S 15
#define DEMO_IDS 0x10f01b36u   /* device << 16 | vendor */
#define REG_SCRATCH 0x08
#define REG_DOORBELL 0x10
#define REG_INT_MASK 0x18
#define REG_DMA_LEN 0x30
#define SRIOV_CAP 0x10c        /* after the demo's 12-byte DSN capability */

static const char *const names[NDEV] = { "d0", "d1", "pf" };

static struct vfpmd_proc proc;
/* set once SIGTERM is on its way: errors are expected from then on */
static atomic_bool sigterm_sent;
/* the round is over (vfpmd exited): threads stop */
static atomic_bool round_over;
static atomic_ulong client_requests, ctl_requests;

struct cdev {
	unsigned idx;
	uint32_t seed;
};

static bool going(void)
{
	return running() && !atomic_load(&round_over);
}

/* A failure before SIGTERM is one; after it, anything may fail. */
static bool failed(int rc, const char *who, const char *what)
{
	if (!rc)
		return false;
	if (!atomic_load(&sigterm_sent))
		stress_fail("%s: %s: %s", who, what, strerror(-rc));
	return true;
}

static int bar0_write(struct vfpm_client *c, unsigned off, uint32_t v)
{
	return vfpm_client_region_write(c, VFIO_PCI_BAR0_REGION_INDEX, off, &v, 4);
}

static void *client_main(void *arg)
{
	struct cdev *cd = arg;
	const char *name = names[cd->idx];
	struct vfpm_client *c = NULL;
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = vfpm_client_connect(proc.sock[cd->idx], NULL, &c);
	if (failed(rc, name, "connect") || efd < 0)
		goto out;
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	if (failed(pmt_cfg_write(c, PCI_COMMAND, &cmd, 2), name, "enable"))
		goto out;
	unsigned pm = pmt_pm_cap(c);
	if (!pm) {
		failed(-ENODEV, name, "PM capability");
		goto out;
	}
	while (going()) {
		uint32_t v = 0;
		switch (rnd(&cd->seed) % 5) {
		case 0:
			rc = pmt_cfg_read(c, PCI_VENDOR_ID, &v, 4);
			if (!rc && v != DEMO_IDS && !atomic_load(&sigterm_sent))
				stress_fail("%s: IDs read 0x%08x", name, v);
			break;
		case 1: {
			uint8_t cls = (uint8_t)rnd(&cd->seed);
			rc = pmt_cfg_write(c, PCI_CACHE_LINE_SIZE, &cls, 1);
			break;
		}
		case 2:
			rc = bar0_write(c, REG_SCRATCH, rnd(&cd->seed));
			if (!rc)
				rc = bar0_write(c, REG_DMA_LEN, 0);
			if (!rc)
				rc = bar0_write(c, REG_INT_MASK, 1);
			if (!rc)
				rc = bar0_write(c, REG_DOORBELL, 1);
			break;
		case 3: { /* guest D3hot and back; BAR access needs MEM again */
			uint16_t csr = 3;   /* D3hot */
			rc = pmt_cfg_write(c, pm + PCI_PM_CTRL, &csr, 2);
			csr = 0;   /* D0 */
			if (!rc)
				rc = pmt_cfg_write(c, pm + PCI_PM_CTRL, &csr, 2);
			if (!rc)
				rc = pmt_cfg_write(c, PCI_COMMAND, &cmd, 2);
			break;
		}
		default:
			rc = rnd(&cd->seed) % 2 ? pmt_lp_entry_wakeup(c, efd) : pmt_lp_entry(c);
			if (!rc)
				rc = pmt_lp_exit(c);
			(void)pmt_eventfd_count(efd);
			break;
		}
		if (failed(rc, name, "request"))
			break;
		atomic_fetch_add(&client_requests, 1);
	}
out:
	/* after SIGTERM the connection is closed under us: the library
	 * reports errors, it must not hang or crash */
	if (c)
		vfpm_client_close(c);
	if (efd >= 0)
		close(efd);
	return NULL;
}

static int ctl(const char *req)
{
	struct json_object *o = pmt_ctl_json(&proc, req);
	int rc = o ? pmt_reply_errno(o) : -ECONNREFUSED;
	json_object_put(o);
	if (!rc)
		atomic_fetch_add(&ctl_requests, 1);
	return rc;
}

static void *settings_main(void *arg)
{
	uint32_t seed = *(uint32_t *)arg;
	static const struct {
		const char *key;
		const char *vals[3];
	} knobs[] = {
		{ "power_control", { "on", "auto", NULL } },
		{ "autosuspend_delay_ms", { "5", "0", NULL } },
		{ "platform_d3cold", { "on", "off", NULL } },
		{ "d3cold_allowed", { "off", "on", NULL } },
		{ "idle_d3", { "off", "on", NULL } },
		{ "pm_delays", { "pci", "none", NULL } },
		{ "d3hot_promotion", { "nosoftrst", "always", "off" } },
		/* energy: every value of another state is at most the least
		 * D0 value, so any mix keeps "no state draws more than D0"
		 * (docs/operating.md) and every set must succeed */
		{ "power_d0_mw", { "3000", "2000", NULL } },
		{ "power_d1_mw", { "1500", "1000", NULL } },
		{ "power_d2_mw", { "750", "2000", NULL } },
		{ "power_d3hot_mw", { "330", "0", NULL } },
		{ "power_d3cold_mw", { "66", "1", NULL } },
	};
	const unsigned nknobs = sizeof(knobs) / sizeof(knobs[0]);
	while (going()) {
		unsigned d = rnd(&seed) % NDEV, k = rnd(&seed) % nknobs;
		for (unsigned v = 0; v < 3 && knobs[k].vals[v] && going(); v++) {
			char req[256];
			snprintf(req, sizeof(req),
				 "{\"cmd\":\"set\",\"device\":\"%s\",\"key\":\"%s\",\"value\":\"%s\"}",
				 names[d], knobs[k].key, knobs[k].vals[v]);
			if (failed(ctl(req), "settings", req))
				return NULL;
			sleep_us(rnd(&seed) % 2000);
		}
	}
	return NULL;
}

/* Reads status and checks each device's energy counters against the last
 * read: used and saved never go back, whatever the energy figures are set
 * to meanwhile (a change counts from its moment; no state draws more than
 * D0). Returns 0 or the request's error. */
static int status_energy_check(uint64_t used[NDEV], uint64_t saved[NDEV])
{
	struct json_object *o = pmt_ctl_json(&proc, "{\"cmd\":\"status\"}");
	int rc = o ? pmt_reply_errno(o) : -ECONNREFUSED;
	struct json_object *devs, *d, *v, *c;
	if (!rc && json_object_object_get_ex(o, "devices", &devs)) {
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			d = json_object_array_get_idx(devs, i);
			if (!json_object_object_get_ex(d, "name", &v) ||
			    !json_object_object_get_ex(d, "counters", &c))
				continue;
			for (unsigned k = 0; k < NDEV; k++) {
				if (strcmp(json_object_get_string(v), names[k]))
					continue;
				struct json_object *u, *sv;
				if (!json_object_object_get_ex(c, "energy_used_mj", &u) ||
				    !json_object_object_get_ex(c, "energy_saved_mj", &sv)) {
					stress_fail("%s: status has no energy counters", names[k]);
					break;
				}
				uint64_t nu = (uint64_t)json_object_get_int64(u);
				uint64_t ns = (uint64_t)json_object_get_int64(sv);
				if (nu < used[k] || ns < saved[k])
					stress_fail("%s: energy went back: used %llu -> %llu mJ, saved "
						    "%llu -> %llu mJ",
						    names[k], (unsigned long long)used[k],
						    (unsigned long long)nu, (unsigned long long)saved[k],
						    (unsigned long long)ns);
				used[k] = nu;
				saved[k] = ns;
			}
		}
	}
	json_object_put(o);
	if (!rc)
		atomic_fetch_add(&ctl_requests, 1);
	return rc;
}

static void *sriov_main(void *arg)
{
	uint32_t seed = *(uint32_t *)arg;
	char req[256];
	uint32_t hdr = 0;
	uint64_t used[NDEV] = { 0 }, saved[NDEV] = { 0 };
	if (failed(pmt_ctl_config_read(&proc, "pf", SRIOV_CAP, 4, &hdr), "sriov", "header"))
		return NULL;
	if ((hdr & 0xffff) != PCI_EXT_CAP_ID_SRIOV) {
		stress_fail("sriov: no SR-IOV capability at 0x%x (0x%08x)", SRIOV_CAP, hdr);
		return NULL;
	}
	while (going()) {
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-write\",\"device\":\"pf\",\"offset\":%d,\"len\":2,"
			 "\"value\":2}",
			 SRIOV_CAP + PCI_SRIOV_NUM_VF);
		if (failed(ctl(req), "sriov", "NumVFs=2"))
			return NULL;
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-write\",\"device\":\"pf\",\"offset\":%d,\"len\":2,"
			 "\"value\":%d}",
			 SRIOV_CAP + PCI_SRIOV_CTRL, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE);
		if (failed(ctl(req), "sriov", "VF Enable"))
			return NULL;
		/* enabled most of the time, so that SIGTERM mostly finds VFs */
		sleep_us(rnd(&seed) % 200000);
		if (failed(status_energy_check(used, saved), "sriov", "status"))
			return NULL;
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-write\",\"device\":\"pf\",\"offset\":%d,\"len\":2,"
			 "\"value\":0}",
			 SRIOV_CAP + PCI_SRIOV_CTRL);
		if (failed(ctl(req), "sriov", "VF disable"))
			return NULL;
		sleep_us(rnd(&seed) % 20000);
	}
	return NULL;
}

/* Socket files in vfpmd's directory (device, VF and control sockets all
 * live there); with report, their names go to stderr. */
static unsigned sockets_in_dir(bool report)
{
	unsigned n = 0;
	DIR *d = opendir(proc.dir);
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISSOCK(st.st_mode)) {
			if (report)
				fprintf(stderr, "pm-sigterm: socket left behind: %s/%s\n", proc.dir,
					e->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* One round; returns false once it failed. */
static bool round_run(unsigned r, uint32_t *seed)
{
	static const char *const specs[] = {
		"demo,name=d0,pm_delays=none",
		"demo,name=d1,pm_delays=none,nosoftrst=off",
		"demo,name=pf,pm_delays=none,total_vfs=2",
		NULL,
	};
	atomic_store(&sigterm_sent, false);
	atomic_store(&round_over, false);
	atomic_store(&client_requests, 0);
	atomic_store(&ctl_requests, 0);
	if (vfpmd_start(&proc, specs, NULL)) {
		stress_fail("round %u: vfpmd did not start", r);
		return false;
	}
	struct cdev cds[NDEV];
	uint32_t s_settings = rnd(seed) | 1, s_sriov = rnd(seed) | 1;
	pthread_t th[NDEV + 2];
	unsigned nth = 0;
	for (unsigned i = 0; i < NDEV; i++) {
		cds[i] = (struct cdev){ .idx = i, .seed = rnd(seed) | 1 };
		pthread_create(&th[nth++], NULL, client_main, &cds[i]);
	}
	pthread_create(&th[nth++], NULL, settings_main, &s_settings);
	pthread_create(&th[nth++], NULL, sriov_main, &s_sriov);

	long delay_ms = 200 + (long)(rnd(seed) % 2300);
	fprintf(stderr, "pm-sigterm: round %u: SIGTERM after %ld ms\n", r, delay_ms);
	sleep_us(delay_ms * 1000);
	unsigned long before = atomic_load(&client_requests) + atomic_load(&ctl_requests);

	unsigned nsock = sockets_in_dir(false);
	atomic_store(&sigterm_sent, true);
	pid_t pid = proc.pid;
	int64_t t0 = now_ms();
	kill(pid, SIGTERM);
	int st = 0;
	bool exited = false;
	while (now_ms() - t0 < EXIT_BOUND_S * 1000) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			exited = true;
			break;
		}
		sleep_us(10000);
	}
	int64_t took = now_ms() - t0;
	if (!exited) {
		stress_fail("round %u: vfpmd did not exit within %d s of SIGTERM", r, EXIT_BOUND_S);
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	proc.pid = 0;
	atomic_store(&round_over, true);
	/* the threads see errors (EOF, no control socket) and stop */
	bool hung = stress_join(th, nth, 30, 0);
	if (exited && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
		stress_fail("round %u: vfpmd exit status %s %d", r,
			    WIFEXITED(st) ? "exit" : "signal",
			    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	unsigned left = sockets_in_dir(true);
	if (left)
		stress_fail("round %u: %u socket file(s) left behind", r, left);
	if (log_has_sanitizer_report(proc.log))
		stress_fail("round %u: sanitizer report in vfpmd's log", r);
	if (!before)
		stress_fail("round %u: no request succeeded before SIGTERM", r);
	fprintf(stderr,
		"pm-sigterm: round %u: %lu requests and %u socket files (%s) before SIGTERM, exit "
		"after %lld ms\n",
		r, before, nsock, nsock > NDEV + 1 ? "VFs enabled" : "no VFs", (long long)took);
	if (stress_failures() || hung)
		print_log_tail(proc.log);
	/* remove whatever is left so that the next round starts clean */
	DIR *d = opendir(proc.dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			    strcmp(proc.log + strlen(proc.dir) + 1, e->d_name))
				unlinkat(dirfd(d), e->d_name, 0);
		closedir(d);
	}
	vfpmd_cleanup(&proc);
	return !stress_failures();
}

static void random_sigterm(void **state)
{
	(void)state;
	uint32_t seed = (uint32_t)time(NULL) ^ (uint32_t)getpid() << 16;
	const char *env = getenv("VFPM_STRESS_SEED");
	if (env && *env)
		seed = (uint32_t)strtoul(env, NULL, 0);
	if (!seed)
		seed = 1;
	unsigned rounds = 4;
	env = getenv("VFPM_SIGTERM_ROUNDS");
	if (env && atoi(env) > 0)
		rounds = (unsigned)atoi(env);
	fprintf(stderr, "pm-sigterm: seed %u (VFPM_STRESS_SEED=%u replays it), %u rounds\n", seed,
		seed, rounds);
	/* the overall bound of running(); rounds end by themselves */
	stress_begin("pm-sigterm", (int)rounds * (EXIT_BOUND_S + 40));
	uint32_t rs = seed;
	for (unsigned r = 0; r < rounds; r++)
		if (!round_run(r, &rs))
			break;
	if (stress_failures())
		fprintf(stderr, "pm-sigterm: seed %u: %d failure(s), first: %s\n", seed,
			stress_failures(), stress_first_failure());
	assert_int_equal(stress_failures(), 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_sigterm),
	};
	return cmocka_run_group_tests_name("pm-sigterm", tests, NULL, NULL);
}
