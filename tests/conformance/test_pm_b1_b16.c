/* Conformance: kernel behaviours B1..B16 and B35, contract §3 (which
 * messages wake the device) and V2 (control-plane visibility), each test
 * named after the behaviour it checks.
 *
 * Every test drives a real vfpmd (demo device, pm_delays=none unless the
 * test says otherwise) over its socket with the client library, and
 * observes the device through the control plane: runtime status, power
 * state, usage count, low-power state, counters. Every wait has a
 * deadline, and an alarm bounds each test as a whole, so a broken server
 * fails a test instead of hanging the suite.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"
#include "wire/proto.h"
#include "wire/wire.h"

#define WAIT_MS 5000       /* deadline for any state we wait for */
#define TEST_ALARM_S 60    /* deadline for one whole test */

#define F_SET VFIO_DEVICE_FEATURE_SET
#define F_GET VFIO_DEVICE_FEATURE_GET
#define F_PROBE VFIO_DEVICE_FEATURE_PROBE
#define F_ENTRY VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY
#define F_WAKEUP VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP
#define F_EXIT VFIO_DEVICE_FEATURE_LOW_POWER_EXIT

/* PowerState values and residency_ms indices */
enum { PS_D0 = 0, PS_D3HOT = 3 };

#define DEMO_VENDOR 0x1b36
#define DEMO_SCRATCH 0x08   /* BAR0 scratch register of the demo device */

/* ------------------------------------------------------------------ */
/* Fixture: one vfpmd and at most one client per test. */

static struct vfpmd_proc g_p;
static bool g_up;
static struct vfpm_client *g_c;
static int g_fds[32];
static int g_nfds;

static int setup(void **state)
{
	(void)state;
	g_up = false;
	g_c = NULL;
	g_nfds = 0;
	pmt_watchdog_arm("test_pm_b1_b16", TEST_ALARM_S);
	return 0;
}

static void dump_log(void)
{
	vfpmd_log_dump(&g_p);
}

static int teardown(void **state)
{
	(void)state;
	int rc = 0;
	if (g_c) {
		vfpm_client_close(g_c);
		g_c = NULL;
	}
	for (int i = 0; i < g_nfds; i++)
		if (g_fds[i] >= 0)
			close(g_fds[i]);
	g_nfds = 0;
	if (g_up) {
		/* V5: whatever the test did, the count never went negative */
		struct pm_status st;
		if (pmt_status(&g_p, NULL, &st) == 0 && st.underflows != 0) {
			fprintf(stderr, "usage count underflowed %llu times\n",
				(unsigned long long)st.underflows);
			rc = -1;
		}
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
	pmt_watchdog_disarm();
	return rc;
}

static void up(const char *keys)
{
	assert_int_equal(pmt_start(&g_p, keys), 0);
	g_up = true;
	pmt_watch(g_p.pid);
}

static void conn(void)
{
	assert_null(g_c);
	assert_int_equal(vfpm_client_connect(g_p.sock[0], NULL, &g_c), 0);
}

static void disconn(void)
{
	vfpm_client_close(g_c);
	g_c = NULL;
}

static int keep_fd(int fd)
{
	assert_true(fd >= 0);
	assert_true(g_nfds < (int)(sizeof(g_fds) / sizeof(g_fds[0])));
	g_fds[g_nfds++] = fd;
	return fd;
}

/* Closes a descriptor registered with keep_fd before the teardown. */
static void drop_fd(int fd)
{
	for (int i = 0; i < g_nfds; i++)
		if (g_fds[i] == fd)
			g_fds[i] = -1;
	close(fd);
}

static int new_efd(void)
{
	return keep_fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}

/* Status of the device; on failure says why before the test fails. */
static int status_or_explain(struct pm_status *st)
{
	int rc = pmt_status(&g_p, NULL, st);
	if (rc) {
		int alive = kill(g_p.pid, 0) == 0;
		fprintf(stderr, "status failed: %s (vfpmd pid %d %s)\n", strerror(-rc), (int)g_p.pid,
			alive ? "alive" : "gone");
		dump_log();
	}
	return rc;
}

#define STATUS(s) assert_int_equal(status_or_explain(&(s)), 0)
#define WAIT(want) assert_int_equal(pmt_wait_status(&g_p, NULL, (want), WAIT_MS), 0)

static uint64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

/* Waits until the control plane reports no client (the server has run
 * its close path). */
static void wait_disconnected(void)
{
	uint64_t end = now_ms() + WAIT_MS;
	for (;;) {
		struct pm_status s;
		STATUS(s);
		if (!s.client_connected)
			return;
		assert_true(now_ms() < end);
		pmt_sleep_ms(5);
	}
}

/* Number of eventfds vfpmd holds open: a wakeup eventfd the server keeps
 * shows up here. */
static int server_eventfds(void)
{
	int n = proc_count_fds_to(g_p.pid, "[eventfd]");
	assert_true(n >= 0);
	return n;
}

/* A descriptor the server did not take is closed when it releases the
 * message, which may be just after the reply: "not retained" means the
 * count comes back to n within the deadline. */
static int settle_server_eventfds(int n)
{
	uint64_t end = now_ms() + WAIT_MS;
	int got;
	while ((got = server_eventfds()) != n && now_ms() < end)
		pmt_sleep_ms(2);
	return got;
}

static uint16_t cfg16(unsigned off)
{
	uint16_t v = 0;
	assert_int_equal(pmt_cfg_read(g_c, off, &v, 2), 0);
	return v;
}

static uint8_t cfg8(unsigned off)
{
	uint8_t v = 0;
	assert_int_equal(pmt_cfg_read(g_c, off, &v, 1), 0);
	return v;
}

static void cfg_write16(unsigned off, uint16_t v)
{
	assert_int_equal(pmt_cfg_write(g_c, off, &v, 2), 0);
}

static void cfg_write8(unsigned off, uint8_t v)
{
	assert_int_equal(pmt_cfg_write(g_c, off, &v, 1), 0);
}

/* PMCSR PowerState through config space. */
static unsigned pm_cap(void)
{
	unsigned cap = pmt_pm_cap(g_c);
	assert_true(cap >= 0x40);
	return cap;
}

static unsigned pmcsr_state(unsigned cap)
{
	return cfg16(cap + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK;
}

static void pmcsr_write_state(unsigned cap, unsigned state)
{
	uint16_t csr = cfg16(cap + PCI_PM_CTRL);
	cfg_write16(cap + PCI_PM_CTRL, (uint16_t)((csr & ~PCI_PM_CTRL_STATE_MASK) | state));
}

/* DEVICE_FEATURE with a raw header: {argsz, flags} then data, and at
 * most one descriptor. Returns 0 or the errno of the error reply. */
static int feat_raw(uint32_t argsz, uint32_t flags, const void *data, size_t dlen, int fd)
{
	uint8_t buf[64];
	struct vfu_device_feature h = { .argsz = argsz, .flags = flags };
	assert_true(dlen <= sizeof(buf) - sizeof(h));
	memcpy(buf, &h, sizeof(h));
	if (dlen)
		memcpy(buf + sizeof(h), data, dlen);
	uint8_t rep[64];
	size_t rlen;
	return vfpm_client_request(g_c, VFU_CMD_DEVICE_FEATURE, buf, sizeof(h) + dlen,
				   fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, rep, sizeof(rep), &rlen,
				   NULL, 0, NULL);
}

/* Feature 4 payload: {s32 wakeup_eventfd (descriptor index), u32 reserved}. */
static int wakeup_raw(uint32_t argsz, int32_t idx, uint32_t reserved, int fd)
{
	uint8_t data[8];
	memcpy(data, &idx, 4);
	memcpy(data + 4, &reserved, 4);
	return feat_raw(argsz, F_SET | F_WAKEUP, data, sizeof(data), fd);
}

/* A config read through the client: a wrapped access (REGION_READ). */
static void touch(void)
{
	assert_int_equal(cfg16(PCI_VENDOR_ID), DEMO_VENDOR);
}

/* Connected, plain ENTRY, suspended. */
static void engage_plain_suspended(void)
{
	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
}

/* Connected, feature 4 with efd, suspended. */
static void engage_wakeup_suspended(int efd)
{
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd), 0);
	WAIT("suspended");
	struct pm_status s;
	STATUS(s);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
}

/* A started device is idle (B35); connecting resumes it. */
static void up_and_connect(const char *keys)
{
	up(keys);
	WAIT("suspended");
	conn();
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.usage_count, 1);
}

/* ------------------------------------------------------------------ */
/* B1: ENTRY returns 0 and the device suspends asynchronously. */

static void b1_entry_engages_and_suspends(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s;
	STATUS(s0);
	assert_false(s0.engaged);
	assert_string_equal(s0.power_state, "D0");

	assert_int_equal(pmt_lp_entry(g_c), 0);
	STATUS(s);
	assert_true(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(s.usage_count, 0);

	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3hot");
	assert_true(s.engaged);
	assert_int_equal(s.usage_count, 0);
	assert_int_equal(s.suspends, s0.suspends + 1);
	assert_true(s.client_connected);
}

static void b1_entry_suspends_to_d3cold_with_platform_d3cold(void **state)
{
	(void)state;
	up_and_connect("platform_d3cold=on");
	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.power_state, "D3cold");
	assert_true(s.engaged);

	/* d3cold_allowed=off: the target falls back to D3hot */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmt_set(&g_p, NULL, "d3cold_allowed", "off"), 0);
	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3hot");
}

/* ------------------------------------------------------------------ */
/* B2: a second ENTRY while engaged fails, and leaves the state as it was. */

static void b2_second_entry_while_engaged_fails(void **state)
{
	(void)state;
	up_and_connect(NULL);
	engage_plain_suspended();
	struct pm_status s0, s;
	STATUS(s0);

	assert_int_equal(pmt_lp_entry(g_c), -EINVAL);
	STATUS(s);
	assert_true(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(s.usage_count, 0);
	/* the request itself woke the device (wrapper), nothing else changed:
	 * it goes back to sleep */
	WAIT("suspended");
	STATUS(s);
	assert_true(s.engaged);
	assert_int_equal(s.usage_count, 0);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_int_equal(s.suspends, s0.suspends + 1);
	assert_string_equal(s.power_state, "D3hot");
}

static void b2_rejected_wakeup_fd_is_not_retained(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	engage_plain_suspended();

	/* efd is the copy we send and then close; watch observes the same
	 * eventfd */
	int efd = new_efd();
	int watch = keep_fd(fcntl(efd, F_DUPFD_CLOEXEC, 0));

	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd), -EINVAL);
	drop_fd(efd);   /* our copy is gone: only watch, and a copy the server kept, remain */
	struct pm_status s;
	STATUS(s);
	assert_true(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(settle_server_eventfds(base), base);

	/* wakes of the still-engaged device never signal the refused fd */
	WAIT("suspended");
	touch();
	WAIT("suspended");
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	assert_int_equal(pmt_eventfd_count(watch), 0);
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.wakeups_signalled, 0);
	assert_int_equal(settle_server_eventfds(base), base);
}

/* ------------------------------------------------------------------ */
/* B3: EXIT while not engaged is a no-op that returns 0. */

static void b3_exit_is_idempotent(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s;
	STATUS(s0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(pmt_lp_exit(g_c), 0);
		STATUS(s);
		assert_false(s.engaged);
		assert_int_equal(s.usage_count, s0.usage_count);
		assert_string_equal(s.runtime_status, "active");
	}
	assert_int_equal(s.suspends, s0.suspends);
	assert_int_equal(s.resumes, s0.resumes);
}

/* ------------------------------------------------------------------ */
/* B4: EXIT gives back the count ENTRY took exactly once. */

static void b4_exit_restores_count_once(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s;
	STATUS(s0);
	engage_plain_suspended();

	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.usage_count, s0.usage_count);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, s0.usage_count);

	pmt_quiet_ms(200);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_string_equal(s.power_state, "D0");
	assert_int_equal(s.usage_count, s0.usage_count);
	assert_int_equal(s.suspends, s0.suspends + 1);
}

static void b4_exit_restores_count_once_with_eventfd(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s;
	STATUS(s0);
	int base = server_eventfds();

	/* engaged-suspended with an eventfd: EXIT's wrapper resume fires it
	 * (T6), then EXIT has nothing left to do */
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, s0.usage_count);
	assert_false(s.engaged);
	assert_int_equal(pmt_eventfd_count(efd), 1);

	/* engaged-active with an eventfd (held awake by power_control=on):
	 * EXIT releases it silently, and the second EXIT changes nothing */
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	int efd2 = new_efd();
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd2), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, s0.usage_count);   /* +1 power_control, -1 ENTRY */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, s0.usage_count + 1);
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
	pmt_quiet_ms(200);
	STATUS(s);
	assert_int_equal(s.usage_count, s0.usage_count);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(pmt_eventfd_count(efd2), 0);
	assert_int_equal(s.wakeups_signalled, 1);
	assert_int_equal(settle_server_eventfds(base), base);
}

/* ------------------------------------------------------------------ */
/* B5 (with the descriptor rules of contract §4). */

static void expect_not_engaged(int base_efds)
{
	struct pm_status s;
	STATUS(s);
	assert_false(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(s.usage_count, 1);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(settle_server_eventfds(base_efds), base_efds);
}

static void b5_wakeup_entry_requires_an_eventfd(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	int efd = new_efd();

	/* wakeup_eventfd < 0: EINVAL, with or without a descriptor */
	assert_int_equal(wakeup_raw(16, -1, 0, -1), -EINVAL);
	expect_not_engaged(base);
	assert_int_equal(wakeup_raw(16, -1, 0, efd), -EINVAL);
	expect_not_engaged(base);

	/* no descriptor at the index: EBADF */
	assert_int_equal(wakeup_raw(16, 0, 0, -1), -EBADF);
	expect_not_engaged(base);
	assert_int_equal(wakeup_raw(16, 1, 0, efd), -EBADF);
	expect_not_engaged(base);

	/* a descriptor that is not an eventfd: EINVAL */
	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	keep_fd(pfd[0]);
	keep_fd(pfd[1]);
	assert_int_equal(wakeup_raw(16, 0, 0, pfd[0]), -EINVAL);
	expect_not_engaged(base);
	int mfd = keep_fd(memfd_create("b5", MFD_CLOEXEC));
	assert_int_equal(wakeup_raw(16, 0, 0, mfd), -EINVAL);
	expect_not_engaged(base);

	/* argsz below 16: EINVAL, whether or not the payload is shorter too */
	int32_t idx = 0;
	assert_int_equal(feat_raw(12, F_SET | F_WAKEUP, &idx, sizeof(idx), efd), -EINVAL);
	expect_not_engaged(base);
	assert_int_equal(wakeup_raw(12, 0, 0, efd), -EINVAL);
	expect_not_engaged(base);
	assert_int_equal(feat_raw(8, F_SET | F_WAKEUP, NULL, 0, efd), -EINVAL);
	expect_not_engaged(base);

	assert_int_equal(pmt_eventfd_count(efd), 0);

	/* reserved is not checked */
	assert_int_equal(wakeup_raw(16, 0, 0xFFFFFFFFu, efd), 0);
	struct pm_status s;
	STATUS(s);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
	assert_int_equal(settle_server_eventfds(base + 1), base + 1);
	WAIT("suspended");
	touch();
	assert_int_equal(pmt_eventfd_count(efd), 1);
	expect_not_engaged(base);

	/* a longer argsz (extra bytes) is accepted as in the kernel */
	uint8_t big[16] = { 0 };
	assert_int_equal(feat_raw(24, F_SET | F_WAKEUP, big, sizeof(big), efd), 0);
	STATUS(s);
	assert_true(s.wakeup_armed);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	expect_not_engaged(base);
}

/* ------------------------------------------------------------------ */
/* B6: PROBE never changes state; GET is refused. */

static void b6_probe_never_changes_state(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s;
	STATUS(s0);
	const uint32_t feats[] = { F_ENTRY, F_WAKEUP, F_EXIT };
	for (unsigned i = 0; i < 3; i++) {
		assert_int_equal(feat_raw(8, F_PROBE | F_SET | feats[i], NULL, 0, -1), 0);
		assert_int_equal(feat_raw(8, F_PROBE | feats[i], NULL, 0, -1), 0);
		assert_int_equal(feat_raw(8, F_PROBE | F_GET | feats[i], NULL, 0, -1), -EINVAL);
		assert_int_equal(feat_raw(8, F_PROBE | F_GET | F_SET | feats[i], NULL, 0, -1),
				 -EINVAL);
		assert_int_equal(feat_raw(8, F_GET | feats[i], NULL, 0, -1), -EINVAL);
		/* neither GET nor SET */
		assert_int_equal(feat_raw(8, feats[i], NULL, 0, -1), -EINVAL);
		STATUS(s);
		assert_false(s.engaged);
		assert_int_equal(s.usage_count, s0.usage_count);
	}
	pmt_quiet_ms(100);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.suspends, s0.suspends);

	/* engaged: probing ENTRY is not the "already engaged" EINVAL, and
	 * probing EXIT does not disengage */
	engage_plain_suspended();
	assert_int_equal(feat_raw(8, F_PROBE | F_SET | F_ENTRY, NULL, 0, -1), 0);
	assert_int_equal(feat_raw(8, F_PROBE | F_SET | F_EXIT, NULL, 0, -1), 0);
	STATUS(s);
	assert_true(s.engaged);
	assert_int_equal(s.usage_count, 0);
	WAIT("suspended");
}

/* ------------------------------------------------------------------ */
/* Kernel spec §1.2 (contract §4): the checks of DEVICE_FEATURE run in the
 * kernel's order and the first failure wins. */

static void feature_errno_order_s1_2(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	int efd = new_efd();
	uint8_t zero8[8] = { 0 };

	/* 4: argsz < 8 */
	assert_int_equal(feat_raw(4, F_SET | F_ENTRY, zero8, sizeof(zero8), -1), -EINVAL);
	/* 5 before 7: unknown flag bits on an unknown feature */
	assert_int_equal(feat_raw(8, 0x80000000u | F_SET | 0x7f, NULL, 0, -1), -EINVAL);
	/* 6 before 7: GET and SET without PROBE on an unknown feature */
	assert_int_equal(feat_raw(8, F_GET | F_SET | 0x7f, NULL, 0, -1), -EINVAL);
	/* 7: no handler */
	assert_int_equal(feat_raw(8, F_SET | 0x7f, NULL, 0, -1), -ENOTTY);
	/* 7 before 8: GET on an unknown feature is ENOTTY, on a known one EINVAL */
	assert_int_equal(feat_raw(8, F_PROBE | F_GET | 0x7f, NULL, 0, -1), -ENOTTY);
	assert_int_equal(feat_raw(8, F_PROBE | F_GET | F_ENTRY, NULL, 0, -1), -EINVAL);
	/* 9 before 11: PROBE of feature 4 with no payload */
	assert_int_equal(feat_raw(8, F_PROBE | F_SET | F_WAKEUP, NULL, 0, -1), 0);
	/* 11 */
	assert_int_equal(feat_raw(8, F_SET | F_WAKEUP, NULL, 0, -1), -EINVAL);
	/* features 3 and 5 take no descriptor (contract §4): EINVAL, and the
	 * descriptor is closed */
	assert_int_equal(feat_raw(8, F_SET | F_ENTRY, NULL, 0, efd), -EINVAL);
	assert_int_equal(feat_raw(8, F_SET | F_EXIT, NULL, 0, efd), -EINVAL);
	assert_int_equal(settle_server_eventfds(base), base);
	/* 3 and 5: extra payload bytes are ignored */
	assert_int_equal(feat_raw(16, F_SET | F_EXIT, zero8, sizeof(zero8), -1), 0);

	struct pm_status s;
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.usage_count, 1);

	/* engaged: the descriptor checks (13, 14) come before "already
	 * engaged" (15) */
	engage_plain_suspended();
	assert_int_equal(wakeup_raw(16, -1, 0, efd), -EINVAL);
	assert_int_equal(wakeup_raw(16, 0, 0, -1), -EBADF);
	assert_int_equal(wakeup_raw(16, 0, 0, efd), -EINVAL);   /* 15 */
	/* 16: EXIT always succeeds */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(settle_server_eventfds(base), base);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

/* ------------------------------------------------------------------ */
/* B7: the wrapper's reference, not ENTRY, decides when the device may
 * suspend: ENTRY drops only the open reference. */

static void b7_wrapper_reference_defers_suspend(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0, s1, s2;
	STATUS(s0);
	assert_int_equal(s0.usage_count, 1);

	assert_int_equal(pmt_lp_entry(g_c), 0);   /* the reply came from an awake device */
	STATUS(s1);
	/* wrapper +1, ENTRY -1 (the open reference), wrapper -1 */
	assert_int_equal(s1.usage_count, 0);
	assert_true(s1.engaged);
	/* ENTRY did not need a resume: it ran on the active device */
	assert_int_equal(s1.resumes, s0.resumes);
	/* the suspend is asynchronous: right after the reply the device may
	 * still be active, or already on its way down */
	assert_true(!strcmp(s1.runtime_status, "active") ||
		    !strcmp(s1.runtime_status, "suspending") ||
		    !strcmp(s1.runtime_status, "suspended"));
	WAIT("suspended");
	STATUS(s2);
	assert_int_equal(s2.suspends, s0.suspends + 1);
	assert_int_equal(s2.resumes, s0.resumes);
	assert_int_equal(s2.usage_count, 0);

	/* a request on the suspended device runs on an awake device and its
	 * reference keeps it so until the reply: exactly one resume and one
	 * re-suspend per request */
	for (int i = 0; i < 3; i++) {
		struct vfpm_device_info di;
		assert_int_equal(vfpm_client_device_info(g_c, &di), 0);
		assert_int_equal(di.num_regions, VFU_PCI_NUM_REGIONS);
		WAIT("suspended");
	}
	STATUS(s2);
	assert_int_equal(s2.resumes, s0.resumes + 3);
	assert_int_equal(s2.suspends, s0.suspends + 4);
	assert_int_equal(s2.usage_count, 0);
}

/* ------------------------------------------------------------------ */
/* B8: the suspend path goes through D0 even when the user left the device
 * in D3hot. With pm_delays=pci the D0->D3hot step takes 10 ms in D0,
 * which the D0 residency counter shows although the user never put the
 * device back in D0. */

static void b8_suspend_goes_through_d0(void **state)
{
	(void)state;
	up_and_connect(NULL);
	unsigned cap = pm_cap();
	assert_int_equal(pmt_set(&g_p, NULL, "pm_delays", "pci"), 0);
	pmcsr_write_state(cap, PS_D3HOT);
	assert_int_equal(pmcsr_state(cap), PS_D3HOT);

	struct pm_status s1, s2;
	STATUS(s1);
	assert_string_equal(s1.power_state, "D3hot");
	assert_string_equal(s1.runtime_status, "active");   /* T11 */

	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
	STATUS(s2);
	assert_string_equal(s2.power_state, "D3hot");
	assert_int_equal(s2.suspends, s1.suspends + 1);
	/* D3hot -> D0 (10 ms spent in D3hot) -> D3hot (10 ms spent in D0) */
	assert_true(s2.residency_ms[PS_D0] >= s1.residency_ms[PS_D0] + 10);
	assert_true(s2.residency_ms[PS_D3HOT] >= s1.residency_ms[PS_D3HOT] + 10);

	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmcsr_state(cap), PS_D0);
}

/* Same with a NoSoftRst- device: the D0 step restores the config the user
 * had before D3hot, and it survives suspend and resume. */
static void b8_suspend_restores_user_d3hot_snapshot(void **state)
{
	(void)state;
	up_and_connect("nosoftrst=off");
	unsigned cap = pm_cap();
	cfg_write8(PCI_INTERRUPT_LINE, 0x5a);
	pmcsr_write_state(cap, PS_D3HOT);
	assert_int_equal(pmcsr_state(cap), PS_D3HOT);
	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmcsr_state(cap), PS_D0);
	assert_int_equal(cfg8(PCI_INTERRUPT_LINE), 0x5a);
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.power_state, "D0");
}

/* ------------------------------------------------------------------ */
/* B9: after any runtime resume the device is in D0 and PMCSR says so. */

static void b9_resume_leaves_device_in_d0(void **state)
{
	(void)state;
	up_and_connect(NULL);
	unsigned cap = pm_cap();
	struct pm_status s;

	/* user D3hot, ENTRY, suspended, EXIT */
	pmcsr_write_state(cap, PS_D3HOT);
	engage_plain_suspended();
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmcsr_state(cap), PS_D0);
	STATUS(s);
	assert_string_equal(s.power_state, "D0");

	/* a wrapped access resumes: what it reads is the D0 device */
	engage_plain_suspended();
	assert_int_equal(pmcsr_state(cap), PS_D0);
	WAIT("suspended");
	assert_int_equal(pmt_lp_exit(g_c), 0);

	/* and from D3cold */
	assert_int_equal(pmt_set(&g_p, NULL, "platform_d3cold", "on"), 0);
	pmcsr_write_state(cap, PS_D3HOT);
	engage_plain_suspended();
	STATUS(s);
	assert_string_equal(s.power_state, "D3cold");
	assert_int_equal(pmcsr_state(cap), PS_D0);
	WAIT("suspended");
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmcsr_state(cap), PS_D0);
	STATUS(s);
	assert_string_equal(s.power_state, "D0");
	assert_string_equal(s.runtime_status, "active");
}

/* ------------------------------------------------------------------ */
/* B10: plain ENTRY re-enters low power after every access. */

static void b10_plain_entry_resuspends_after_access(void **state)
{
	(void)state;
	up_and_connect(NULL);
	/* memory decoding on: mappings would work if low power were not engaged */
	cfg_write16(PCI_COMMAND, (uint16_t)(cfg16(PCI_COMMAND) | PCI_COMMAND_MEMORY));
	engage_plain_suspended();
	struct pm_status s0, s;
	STATUS(s0);
	for (int i = 1; i <= 3; i++) {
		uint32_t id = 0;
		assert_int_equal(pmt_cfg_read(g_c, PCI_VENDOR_ID, &id, 4), 0);
		assert_int_equal(id & 0xffff, DEMO_VENDOR);
		STATUS(s);
		assert_int_equal(s.resumes, s0.resumes + (uint64_t)i);
		assert_true(s.engaged);
		WAIT("suspended");
		STATUS(s);
		assert_int_equal(s.suspends, s0.suspends + (uint64_t)i);
		assert_true(s.engaged);
		assert_false(s.wakeup_armed);
		assert_true(s.mmap_revoked);
		assert_int_equal(s.usage_count, 0);
		assert_string_equal(s.power_state, "D3hot");
	}
	assert_int_equal(s.wakeups_signalled, 0);
}

/* ------------------------------------------------------------------ */
/* B11: the wakeup is one-shot. */

static void b11_wakeup_is_one_shot(void **state)
{
	(void)state;
	up_and_connect(NULL);
	/* memory decoding on, so that "mmaps work again" is observable */
	cfg_write16(PCI_COMMAND, (uint16_t)(cfg16(PCI_COMMAND) | PCI_COMMAND_MEMORY));
	int base = server_eventfds();
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);
	assert_true(s0.mmap_revoked);
	assert_int_equal(settle_server_eventfds(base + 1), base + 1);

	touch();
	assert_int_equal(pmt_eventfd_count(efd), 1);
	STATUS(s);
	assert_false(s.engaged);
	assert_false(s.wakeup_armed);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_int_equal(s.wakeups_signalled, 1);
	assert_false(s.mmap_revoked);
	assert_int_equal(settle_server_eventfds(base), base);   /* the fd is dropped */

	/* it stays awake: more accesses, no more signals */
	touch();
	pmt_quiet_ms(200);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.suspends, s0.suspends);
	assert_int_equal(pmt_eventfd_count(efd), 0);

	/* a later EXIT returns 0 and does nothing */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, 1);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.wakeups_signalled, 1);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

/* ------------------------------------------------------------------ */
/* B12: without a real suspend there is no signal. */

static void b12_no_signal_without_real_suspend(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	int efd = new_efd();
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd), 0);
	struct pm_status s0, s;
	STATUS(s0);
	assert_true(s0.engaged);
	assert_true(s0.wakeup_armed);
	assert_int_equal(s0.usage_count, 1);   /* power_control's reference */

	pmt_quiet_ms(200);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.suspends, s0.suspends);

	/* an access: no signal, still engaged and armed */
	touch();
	assert_int_equal(pmt_eventfd_count(efd), 0);
	STATUS(s);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);

	/* EXIT releases the fd silently */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	STATUS(s);
	assert_false(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(s.wakeups_signalled, 0);
	assert_int_equal(s.usage_count, 2);   /* power_control + open */
	assert_int_equal(settle_server_eventfds(base), base);

	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
	pmt_quiet_ms(100);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(s.suspends, s0.suspends);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

/* ------------------------------------------------------------------ */
/* B13: any device command wakes the device, even an invalid one. */

static void expect_woken_by(int efd, uint64_t resumes_before)
{
	assert_int_equal(pmt_eventfd_count(efd), 1);
	struct pm_status s;
	STATUS(s);
	assert_false(s.engaged);
	assert_false(s.wakeup_armed);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(s.resumes, resumes_before + 1);
}

static void b13_any_request_wakes_even_invalid(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0;

	/* DEVICE_FEATURE with unknown flag bits: its own EINVAL, and a wake */
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	assert_int_equal(feat_raw(8, F_SET | F_ENTRY | 0x80000000u, NULL, 0, -1), -EINVAL);
	expect_woken_by(efd, s0.resumes);

	/* DEVICE_FEATURE with an unknown feature index: ENOTTY, and a wake */
	efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	assert_int_equal(feat_raw(8, F_SET | 0x7f, NULL, 0, -1), -ENOTTY);
	expect_woken_by(efd, s0.resumes);

	/* DEVICE_FEATURE shorter than its header: EINVAL, and a wake (the
	 * reference is taken before the payload is validated, contract §3) */
	efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	uint32_t half = 8;
	assert_int_equal(vfpm_client_request(g_c, VFU_CMD_DEVICE_FEATURE, &half, sizeof(half), NULL,
					     0, NULL, 0, NULL, NULL, 0, NULL),
			 -EINVAL);
	expect_woken_by(efd, s0.resumes);

	/* REGION_READ carrying a descriptor it does not take: EINVAL, and a
	 * wake */
	efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	struct vfu_region_access ra = { .offset = 0, .region = VFU_PCI_CONFIG, .count = 2 };
	int stray = new_efd();
	uint8_t rep[64];
	size_t rl;
	assert_int_equal(vfpm_client_request(g_c, VFU_CMD_REGION_READ, &ra, sizeof(ra), &stray, 1,
					     rep, sizeof(rep), &rl, NULL, 0, NULL),
			 -EINVAL);
	expect_woken_by(efd, s0.resumes);

	/* SET_IRQS with more descriptors than the server accepts (17 > 16):
	 * refused as the message arrives, and still a wake */
	efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	enum { N = VFPM_MAX_MSG_FDS + 1 };
	int many[N];
	for (int i = 0; i < N; i++)
		many[i] = new_efd();
	struct {
		struct vfu_hdr h;
		struct vfu_irq_set is;
	} __attribute__((packed)) req = {
		.h = { .msg_id = 0x7ff0, .cmd = VFU_CMD_SET_IRQS, .size = sizeof(req),
		       .flags = VFU_F_TYPE_COMMAND },
		.is = { .argsz = sizeof(struct vfu_irq_set),
			.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			.index = VFU_IRQ_MSIX, .start = 0, .count = N },
	};
	union {
		char buf[CMSG_SPACE(sizeof(many))];
		struct cmsghdr align;
	} ctl;
	memset(&ctl, 0, sizeof(ctl));
	struct iovec iov = { &req, sizeof(req) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(many));
	memcpy(CMSG_DATA(cm), many, sizeof(many));
	int sock = vfpm_client_fd(g_c);
	assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t)sizeof(req));
	struct wire_msg m;
	assert_int_equal(wire_recv(sock, &m, 1u << 20, 0), 0);
	assert_int_equal(m.hdr.msg_id, 0x7ff0);
	assert_true(m.hdr.flags & VFU_F_ERROR);
	assert_int_equal(m.hdr.error, EINVAL);
	wire_msg_release(&m);
	expect_woken_by(efd, s0.resumes);
}

static void b13_get_info_wakes(void **state)
{
	(void)state;
	up_and_connect(NULL);
	struct pm_status s0;

	int efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(g_c, &di), 0);
	assert_int_equal(di.num_regions, VFU_PCI_NUM_REGIONS);
	expect_woken_by(efd, s0.resumes);

	/* an invalid GET_INFO (argsz too small) as well */
	efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	struct vfu_device_info bad = { .argsz = 4 };
	assert_int_equal(vfpm_client_request(g_c, VFU_CMD_DEVICE_GET_INFO, &bad, sizeof(bad), NULL,
					     0, NULL, 0, NULL, NULL, 0, NULL),
			 -EINVAL);
	expect_woken_by(efd, s0.resumes);
}

/* The kernel gives unknown ioctl numbers the PM get/put and then ENOTTY.
 * In vfio-user an unknown command number is not a device command (contract
 * §3 lists them), so vfpm rejects it in the dispatcher with EINVAL before
 * any PM action: the device is not woken. This asserts that design. */
static void b13_unknown_command_is_not_a_device_command(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);
	uint8_t junk[16] = { 0 };
	const uint16_t cmds[] = { 14, 19, 200, VFU_CMD_DMA_READ, VFU_CMD_DMA_WRITE };
	for (unsigned i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		assert_int_equal(vfpm_client_request(g_c, cmds[i], junk, sizeof(junk), NULL, 0, NULL,
						     0, NULL, NULL, 0, NULL),
				 -EINVAL);
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.resumes, s0.resumes);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

/* ------------------------------------------------------------------ */
/* B14: ENTRY on a device whose armed wakeup the request itself fires
 * succeeds and re-arms. */

static void b14_entry_after_wake_succeeds(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	int efd1 = new_efd(), efd2 = new_efd();
	engage_wakeup_suspended(efd1);

	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd2), 0);
	assert_int_equal(pmt_eventfd_count(efd1), 1);
	struct pm_status s;
	STATUS(s);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
	assert_int_equal(s.usage_count, 0);
	assert_int_equal(settle_server_eventfds(base + 1), base + 1);
	WAIT("suspended");

	/* re-armed: the next wake fires the new eventfd, once */
	touch();
	assert_int_equal(pmt_eventfd_count(efd2), 1);
	assert_int_equal(pmt_eventfd_count(efd1), 0);
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.wakeups_signalled, 2);

	/* plain ENTRY after a wake succeeds the same way */
	int efd3 = new_efd();
	engage_wakeup_suspended(efd3);
	assert_int_equal(pmt_lp_entry(g_c), 0);
	assert_int_equal(pmt_eventfd_count(efd3), 1);
	STATUS(s);
	assert_true(s.engaged);
	assert_false(s.wakeup_armed);
	WAIT("suspended");
	assert_int_equal(pmt_lp_exit(g_c), 0);

	/* contrast (B2): engaged with an eventfd but never suspended, a
	 * second ENTRY fails and the first eventfd stays armed */
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	int efd4 = new_efd(), efd5 = new_efd();
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd4), 0);
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd5), -EINVAL);
	assert_int_equal(pmt_lp_entry(g_c), -EINVAL);
	STATUS(s);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
	assert_int_equal(settle_server_eventfds(base + 1), base + 1);
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
	WAIT("suspended");
	touch();
	assert_int_equal(pmt_eventfd_count(efd4), 1);
	assert_int_equal(pmt_eventfd_count(efd5), 0);
}

/* ------------------------------------------------------------------ */
/* B15: close while engaged and suspended: no signal, the fd is released,
 * the device resumes, is reset and goes idle. */

static void b15_close_while_engaged_is_silent_and_resets(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int base = server_eventfds();
	uint8_t line0 = cfg8(PCI_INTERRUPT_LINE);
	cfg_write8(PCI_INTERRUPT_LINE, (uint8_t)(line0 ^ 0x5a));
	uint16_t cmd = cfg16(PCI_COMMAND);
	cfg_write16(PCI_COMMAND, (uint16_t)(cmd | PCI_COMMAND_MEMORY));
	uint32_t v = 0x12345678;
	assert_int_equal(vfpm_client_region_write(g_c, 0, DEMO_SCRATCH, &v, 4), 0);

	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);

	disconn();
	wait_disconnected();
	WAIT("suspended");
	STATUS(s);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	assert_int_equal(s.wakeups_signalled, 0);
	assert_false(s.engaged);
	assert_false(s.wakeup_armed);
	assert_int_equal(s.usage_count, 0);
	assert_int_equal(s.resumes, s0.resumes + 1);    /* resumed for the reset */
	assert_int_equal(s.suspends, s0.suspends + 1);  /* and idle again */
	assert_string_equal(s.power_state, "D3hot");
	assert_int_equal(settle_server_eventfds(base), base);      /* the fd is released */

	/* the reset is visible to the next client */
	conn();
	assert_int_equal(cfg8(PCI_INTERRUPT_LINE), line0);
	assert_int_equal(cfg16(PCI_COMMAND), cmd);   /* back to its power-on value */
	cfg_write16(PCI_COMMAND, (uint16_t)(cfg16(PCI_COMMAND) | PCI_COMMAND_MEMORY));
	v = 0xffffffff;
	assert_int_equal(vfpm_client_region_read(g_c, 0, DEMO_SCRATCH, &v, 4), 0);
	assert_int_equal(v, 0);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

/* ------------------------------------------------------------------ */
/* B16: host-side resumes (power_control=on, control-plane config access in
 * D3cold) fire an armed wakeup; a config access in D3hot does not
 * resume. */

static void b16_power_control_on_fires_wakeup(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);

	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_false(s.engaged);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_int_equal(s.wakeups_signalled, 1);
	assert_int_equal(s.usage_count, 2);   /* power_control + open */
	assert_string_equal(s.power_control, "on");

	/* once: setting it again, or back to auto, signals nothing */
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
	pmt_quiet_ms(100);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	assert_int_equal(s.wakeups_signalled, 1);
}

/* Changing d3cold_allowed (or platform_d3cold) resumes the device, as the
 * kernel's d3cold_allowed_store does: an armed wakeup fires, and the device
 * suspends again to the new target. */
static void b16_d3cold_allowed_change_resumes_and_resuspends(void **state)
{
	(void)state;
	up_and_connect("platform_d3cold=on");
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3cold");
	assert_int_equal(pmt_set(&g_p, NULL, "d3cold_allowed", "off"), 0);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	STATUS(s);
	assert_false(s.engaged);
	assert_int_equal(s.resumes, s0.resumes + 1);
	/* the client's open reference is back (the wakeup disengaged it):
	 * it stays up; after it leaves the device suspends to D3hot now */
	assert_string_equal(s.runtime_status, "active");
	disconn();
	wait_disconnected();
	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3hot");
	/* allowed again: resumed and down to D3cold */
	STATUS(s0);
	assert_int_equal(pmt_set(&g_p, NULL, "d3cold_allowed", "on"), 0);
	WAIT("suspended");
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_string_equal(s.power_state, "D3cold");
	/* setting the same value again is no change: nothing resumes */
	STATUS(s0);
	assert_int_equal(pmt_set(&g_p, NULL, "d3cold_allowed", "on"), 0);
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes);
}

/* A host config write racing a runtime suspend (pm_delays=pci: the D3hot
 * delay runs with the suspend's snapshot already taken) is not lost: the
 * access waits for the suspend, resumes the device from D3cold, and the
 * next suspend saves the write, as pci_config_pm_runtime_get does. */
static void b16_ctl_config_write_during_a_suspend_is_kept(void **state)
{
	(void)state;
	up("platform_d3cold=on");
	WAIT("suspended");
	assert_int_equal(pmt_set(&g_p, NULL, "pm_delays", "pci"), 0);
	for (uint32_t i = 1; i <= 5; i++) {
		assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
		assert_int_equal(pmt_set(&g_p, NULL, "power_control", "auto"), 0);
		/* the idle suspend starts now; the write lands during it */
		uint32_t v = 0x40 + i;
		assert_int_equal(pmt_ctl_config_rw(&g_p, NULL, PCI_INTERRUPT_LINE, 1, &v, true), 0);
		WAIT("suspended");
		v = 0;
		assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_INTERRUPT_LINE, 1, &v), 0);
		assert_int_equal(v, 0x40 + i);
		WAIT("suspended");
	}
}

/* A host PMCSR write to a runtime-suspended device resumes it first: the
 * power state and the runtime status never disagree, and the model is not
 * unparked behind the runtime-PM core. */
static void b16_ctl_pmcsr_write_resumes_a_suspended_device(void **state)
{
	(void)state;
	up("nosoftrst=off");
	WAIT("suspended");
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3hot");
	unsigned pm = pmt_ctl_find_cap(&g_p, NULL, PCI_CAP_ID_PM);
	assert_true(pm);
	uint32_t d0 = 0;
	assert_int_equal(pmt_ctl_config_rw(&g_p, NULL, pm + PCI_PM_CTRL, 2, &d0, true), 0);
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
	/* after the access the device is idle again: it suspends, and the
	 * two views agree at every step */
	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3hot");
	assert_int_equal(s.underflows, 0);
}

/* The case the host PMCSR write used to break: a NoSoftRst- device its
 * client programmed (BAR0, COMMAND) and left engaged in low power is
 * runtime-suspended in D3hot; the host writes D0 to PMCSR. The device
 * resumes through the runtime-PM core (status and power state agree, D0
 * and active right after the write), and the resume restores the client's
 * config: BAR0 and COMMAND read back what the client wrote. */
static void b16_ctl_pmcsr_d0_keeps_the_clients_config(void **state)
{
	(void)state;
	up_and_connect("nosoftrst=off");
	uint32_t bar0 = 0xfe000000;
	assert_int_equal(pmt_cfg_write(g_c, PCI_BASE_ADDRESS_0, &bar0, 4), 0);
	cfg_write16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	uint32_t bar0_read = 0;
	assert_int_equal(pmt_cfg_read(g_c, PCI_BASE_ADDRESS_0, &bar0_read, 4), 0);
	engage_plain_suspended();
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3hot");
	unsigned pm = pmt_ctl_find_cap(&g_p, NULL, PCI_CAP_ID_PM);
	assert_true(pm);
	uint32_t d0 = 0;
	assert_int_equal(pmt_ctl_config_rw(&g_p, NULL, pm + PCI_PM_CTRL, 2, &d0, true), 0);
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
	/* never "D0 / suspended": the resume came first */
	assert_false(!strcmp(s.power_state, "D0") && !strcmp(s.runtime_status, "suspended"));
	/* the host's view: the client's config, not power-on values */
	uint32_t v = 0;
	assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_COMMAND, 2, &v), 0);
	assert_int_equal(v, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	v = 0;
	assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_BASE_ADDRESS_0, 4, &v), 0);
	assert_int_equal(v, bar0_read);
	/* and the client's, once it exits low power */
	assert_int_equal(pmt_lp_exit(g_c), 0);
	assert_int_equal(cfg16(PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	v = 0;
	assert_int_equal(pmt_cfg_read(g_c, PCI_BASE_ADDRESS_0, &v, 4), 0);
	assert_int_equal(v, bar0_read);
	STATUS(s);
	assert_int_equal(s.underflows, 0);
}

/* A NoSoftRst+ device in D3hot keeps its config space (no restore on the
 * way back: docs/power-management.md), so a host write made while it was
 * suspended is still there after the next resume. */
static void b16_ctl_write_in_d3hot_survives_a_nosoftrst_plus_resume(void **state)
{
	(void)state;
	up("nosoftrst=on");
	WAIT("suspended");
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3hot");
	uint32_t v = 0x5a;
	assert_int_equal(pmt_ctl_config_rw(&g_p, NULL, PCI_INTERRUPT_LINE, 1, &v, true), 0);
	WAIT("suspended");
	/* a client's access resumes it from D3hot */
	conn();
	STATUS(s);
	assert_true(s.resumes > s0.resumes);
	assert_int_equal(cfg8(PCI_INTERRUPT_LINE), 0x5a);
}

static void b16_ctl_config_access_in_d3cold_resumes_and_fires(void **state)
{
	(void)state;
	up("platform_d3cold=on");
	WAIT("suspended");
	struct pm_status i0, i1;
	STATUS(i0);
	assert_string_equal(i0.power_state, "D3cold");
	/* an idle device: the host access resumes it, then it goes back */
	uint32_t id = 0;
	assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_VENDOR_ID, 2, &id), 0);
	assert_int_equal(id, DEMO_VENDOR);
	STATUS(i1);
	assert_int_equal(i1.resumes, i0.resumes + 1);
	WAIT("suspended");
	STATUS(i1);
	assert_int_equal(i1.suspends, i0.suspends + 1);
	assert_string_equal(i1.power_state, "D3cold");
	assert_int_equal(i1.usage_count, 0);

	conn();
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3cold");

	uint32_t val = 0;
	assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_VENDOR_ID, 2, &val), 0);
	assert_int_equal(val, DEMO_VENDOR);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_false(s.engaged);
	assert_string_equal(s.runtime_status, "active");
	assert_string_equal(s.power_state, "D0");
	assert_int_equal(s.usage_count, 1);

	/* a control-plane config write in D3cold as well */
	int efd2 = new_efd();
	engage_wakeup_suspended(efd2);
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3cold");
	char req[256], rep[1024];
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"config-write\",\"device\":\"dev\",\"offset\":%d,\"len\":1,\"value\":7}",
		 PCI_INTERRUPT_LINE);
	assert_int_equal(ctl_request(g_p.ctl, req, rep, sizeof(rep)), 0);
	assert_non_null(strstr(rep, "\"ok\":true"));
	assert_int_equal(pmt_eventfd_count(efd2), 1);
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
	assert_false(s.engaged);
	assert_string_equal(s.runtime_status, "active");
	assert_int_equal(cfg8(PCI_INTERRUPT_LINE), 7);
}

static void b16_ctl_config_read_in_d3hot_does_not_resume(void **state)
{
	(void)state;
	up_and_connect(NULL);
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3hot");

	for (int i = 0; i < 5; i++) {
		uint32_t val = 0;
		assert_int_equal(pmt_ctl_config_read(&g_p, NULL, PCI_VENDOR_ID, 2, &val), 0);
		assert_int_equal(val, DEMO_VENDOR);
	}
	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_string_equal(s.power_state, "D3hot");
	assert_int_equal(s.resumes, s0.resumes);
	assert_true(s.engaged);
	assert_true(s.wakeup_armed);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	assert_int_equal(s.wakeups_signalled, 0);
}

/* ------------------------------------------------------------------ */
/* B35: an unused device runtime-suspends; a client resumes it. */

static void b35_unused_device_suspends(void **state)
{
	(void)state;
	up(NULL);
	WAIT("suspended");
	struct pm_status s0, s;
	STATUS(s0);
	assert_string_equal(s0.power_state, "D3hot");
	assert_int_equal(s0.usage_count, 0);
	assert_false(s0.client_connected);
	assert_int_equal(s0.suspends, 1);

	conn();
	STATUS(s);
	assert_true(s.client_connected);
	assert_string_equal(s.runtime_status, "active");
	assert_string_equal(s.power_state, "D0");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(s.resumes, s0.resumes + 1);

	disconn();
	wait_disconnected();
	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3hot");
	assert_int_equal(s.usage_count, 0);
	assert_int_equal(s.suspends, s0.suspends + 1);
}

static void b35_unused_device_suspends_to_d3cold(void **state)
{
	(void)state;
	up("platform_d3cold=on");
	WAIT("suspended");
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.power_state, "D3cold");
	conn();
	STATUS(s);
	assert_string_equal(s.power_state, "D0");
	assert_string_equal(s.runtime_status, "active");
	disconn();
	wait_disconnected();
	WAIT("suspended");
	STATUS(s);
	assert_string_equal(s.power_state, "D3cold");
}

static void b35_idle_d3_off_keeps_device_active(void **state)
{
	(void)state;
	up("idle_d3=off");
	pmt_quiet_ms(200);
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_string_equal(s.power_state, "D0");
	assert_int_equal(s.usage_count, 1);
	assert_int_equal(s.suspends, 0);

	/* open takes no reference of its own: still 1 */
	conn();
	STATUS(s);
	assert_true(s.client_connected);
	assert_int_equal(s.usage_count, 1);

	/* ENTRY still reaches 0 (kernel §2.2) */
	assert_int_equal(pmt_lp_entry(g_c), 0);
	WAIT("suspended");
	assert_int_equal(pmt_lp_exit(g_c), 0);
	STATUS(s);
	assert_int_equal(s.usage_count, 1);

	disconn();
	wait_disconnected();
	pmt_quiet_ms(200);
	STATUS(s);
	assert_string_equal(s.runtime_status, "active");
	assert_string_equal(s.power_state, "D0");
	assert_int_equal(s.usage_count, 1);
}

/* ------------------------------------------------------------------ */
/* Contract §3: IOMMU-side messages, zero-length accesses and bad region
 * indices never wake the device. */

static void contract3_version_dma_map_unmap_do_not_wake(void **state)
{
	(void)state;
	up_and_connect(NULL);
	engage_plain_suspended();
	struct pm_status s0, s;
	STATUS(s0);

	int mfd = keep_fd(memfd_create("dma", MFD_CLOEXEC));
	assert_int_equal(ftruncate(mfd, 16384), 0);
	assert_int_equal(vfpm_client_dma_map(g_c, mfd, 0, 0x100000, 8192,
					     VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, NULL),
			 0);
	assert_int_equal(vfpm_client_dma_map(g_c, mfd, 8192, 0x200000, 4096, VFU_DMA_FLAG_READ,
					     NULL),
			 0);
	assert_int_equal(vfpm_client_dma_unmap(g_c, 0x100000, 4096), -EINVAL);   /* splits a map */
	assert_int_equal(vfpm_client_dma_unmap(g_c, 0x100000, 8192), 0);
	assert_int_equal(vfpm_client_dma_unmap(g_c, 0x300000, 4096), 0);   /* nothing there */
	assert_int_equal(vfpm_client_dma_unmap(g_c, 0x200000, 4096), 0);

	/* a VERSION inside the session is refused, without a wake */
	struct vfu_version ver = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
	uint8_t rep[256];
	size_t rl;
	assert_int_equal(vfpm_client_request(g_c, VFU_CMD_VERSION, &ver, sizeof(ver), NULL, 0, rep,
					     sizeof(rep), &rl, NULL, 0, NULL),
			 -EINVAL);

	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.resumes, s0.resumes);
	assert_true(s.engaged);
	assert_int_equal(s.usage_count, 0);

	/* the session is still usable */
	touch();
}

static void contract3_zero_length_and_bad_region_do_not_wake(void **state)
{
	(void)state;
	up_and_connect(NULL);
	engage_plain_suspended();
	struct pm_status s0, s;
	STATUS(s0);

	uint8_t b[4] = { 0 };
	assert_int_equal(vfpm_client_region_read(g_c, VFU_PCI_CONFIG, 0, b, 0), 0);
	assert_int_equal(vfpm_client_region_write(g_c, VFU_PCI_CONFIG, 0, b, 0), 0);
	assert_int_equal(vfpm_client_region_read(g_c, 0, 0, b, 0), 0);
	assert_int_equal(vfpm_client_region_read(g_c, VFU_PCI_NUM_REGIONS, 0, b, 4), -EINVAL);
	assert_int_equal(vfpm_client_region_write(g_c, VFU_PCI_NUM_REGIONS, 0, b, 4), -EINVAL);
	assert_int_equal(vfpm_client_region_read(g_c, 0xffffffffu, 0, b, 4), -EINVAL);

	/* (no wait: a resume or a wakeup signal would have come before the reply) */
	STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.resumes, s0.resumes);
	assert_true(s.engaged);

	/* a real access does wake (the contrast) */
	touch();
	STATUS(s);
	assert_int_equal(s.resumes, s0.resumes + 1);
}

/* ------------------------------------------------------------------ */
/* V2: visibility through the control plane. */

static struct json_object *need(struct json_object *o, const char *key, json_type type)
{
	struct json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v)) {
		fprintf(stderr, "status lacks \"%s\"\n", key);
		fail();
	}
	if (!json_object_is_type(v, type)) {
		fprintf(stderr, "status field \"%s\" has type %s\n", key,
			json_type_to_name(json_object_get_type(v)));
		fail();
	}
	return v;
}

static void v2_status_lists_every_field(void **state)
{
	(void)state;
	up(NULL);
	WAIT("suspended");
	char buf[65536];
	assert_int_equal(ctl_request(g_p.ctl, "{\"cmd\":\"status\"}", buf, sizeof(buf)), 0);
	struct json_object *root = json_tokener_parse(buf);
	assert_non_null(root);
	assert_true(json_object_get_boolean(need(root, "ok", json_type_boolean)));
	struct json_object *devs = need(root, "devices", json_type_array);
	assert_int_equal(json_object_array_length(devs), 1);
	struct json_object *d = json_object_array_get_idx(devs, 0);

	assert_string_equal(json_object_get_string(need(d, "name", json_type_string)), "dev");
	assert_string_equal(json_object_get_string(need(d, "socket", json_type_string)),
			    g_p.sock[0]);
	assert_string_equal(json_object_get_string(need(d, "power_state", json_type_string)),
			    "D3hot");
	assert_string_equal(json_object_get_string(need(d, "runtime_status", json_type_string)),
			    "suspended");
	assert_int_equal(json_object_get_int(need(d, "usage_count", json_type_int)), 0);
	struct json_object *lp = need(d, "low_power", json_type_object);
	assert_false(json_object_get_boolean(need(lp, "engaged", json_type_boolean)));
	assert_false(json_object_get_boolean(need(lp, "wakeup_armed", json_type_boolean)));
	assert_false(json_object_get_boolean(need(d, "client_connected", json_type_boolean)));

	struct json_object *set = need(d, "settings", json_type_object);
	assert_false(json_object_get_boolean(need(set, "platform_d3cold", json_type_boolean)));
	assert_true(json_object_get_boolean(need(set, "d3cold_allowed", json_type_boolean)));
	assert_true(json_object_get_boolean(need(set, "idle_d3", json_type_boolean)));
	assert_string_equal(json_object_get_string(need(set, "power_control", json_type_string)),
			    "auto");
	assert_int_equal(json_object_get_int(need(set, "autosuspend_delay_ms", json_type_int)), 0);
	assert_string_equal(json_object_get_string(need(set, "d3hot_promotion", json_type_string)),
			    "off");
	assert_string_equal(json_object_get_string(need(set, "pm_delays", json_type_string)),
			    "none");

	struct json_object *cnt = need(d, "counters", json_type_object);
	assert_int_equal(json_object_get_int64(need(cnt, "suspends", json_type_int)), 1);
	assert_int_equal(json_object_get_int64(need(cnt, "resumes", json_type_int)), 0);
	assert_int_equal(json_object_get_int64(need(cnt, "wakeups_signalled", json_type_int)), 0);
	struct json_object *res = need(cnt, "residency_ms", json_type_object);
	static const char *const names[] = { "D0", "D1", "D2", "D3hot", "D3cold" };
	for (unsigned i = 0; i < 5; i++)
		assert_true(json_object_get_int64(need(res, names[i], json_type_int)) >= 0);
	json_object_put(root);

	/* the same fields follow the state of a connected, armed device */
	conn();
	int efd = new_efd();
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "on"), 0);
	assert_int_equal(pmt_lp_entry_wakeup(g_c, efd), 0);
	assert_int_equal(ctl_request(g_p.ctl, "{\"cmd\":\"status\"}", buf, sizeof(buf)), 0);
	root = json_tokener_parse(buf);
	assert_non_null(root);
	d = json_object_array_get_idx(need(root, "devices", json_type_array), 0);
	assert_non_null(d);
	lp = need(d, "low_power", json_type_object);
	assert_true(json_object_get_boolean(need(lp, "engaged", json_type_boolean)));
	assert_true(json_object_get_boolean(need(lp, "wakeup_armed", json_type_boolean)));
	assert_true(json_object_get_boolean(need(d, "client_connected", json_type_boolean)));
	set = need(d, "settings", json_type_object);
	assert_string_equal(json_object_get_string(need(set, "power_control", json_type_string)),
			    "on");
	assert_string_equal(json_object_get_string(need(d, "runtime_status", json_type_string)),
			    "active");
	json_object_put(root);
	assert_int_equal(pmt_lp_exit(g_c), 0);
}

static void v2_status_never_wakes(void **state)
{
	(void)state;
	up(NULL);
	WAIT("suspended");
	struct pm_status s0, s;
	STATUS(s0);
	for (int i = 0; i < 20; i++)
		STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.resumes, s0.resumes);

	/* nor on an engaged device with an armed wakeup */
	conn();
	int efd = new_efd();
	engage_wakeup_suspended(efd);
	STATUS(s0);
	for (int i = 0; i < 20; i++)
		STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.resumes, s0.resumes);
	assert_int_equal(pmt_eventfd_count(efd), 0);
}

static void v2_set_rejects_unknown_key_and_bad_value(void **state)
{
	(void)state;
	up(NULL);
	WAIT("suspended");
	assert_int_equal(pmt_set(&g_p, NULL, "no_such_setting", "on"), -ENOENT);
	assert_int_equal(pmt_set(&g_p, NULL, "power_control", "maybe"), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "idle_d3", "perhaps"), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "platform_d3cold", ""), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "autosuspend_delay_ms", "abc"), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "autosuspend_delay_ms", "-5"), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "d3hot_promotion", "sometimes"), -EINVAL);
	assert_int_equal(pmt_set(&g_p, NULL, "pm_delays", "slow"), -EINVAL);

	/* the raw reply carries the errno */
	char rep[1024];
	assert_int_equal(ctl_request(g_p.ctl,
				     "{\"cmd\":\"set\",\"device\":\"dev\",\"key\":\"bogus\","
				     "\"value\":\"1\"}",
				     rep, sizeof(rep)),
			 0);
	struct json_object *o = json_tokener_parse(rep);
	assert_non_null(o);
	assert_false(json_object_get_boolean(need(o, "ok", json_type_boolean)));
	assert_int_equal(json_object_get_int(need(o, "errno", json_type_int)), ENOENT);
	json_object_put(o);

	/* nothing changed, nothing woke */
	struct pm_status s;
	STATUS(s);
	assert_string_equal(s.runtime_status, "suspended");
	assert_string_equal(s.power_control, "auto");
	assert_int_equal(s.resumes, 0);
}

static void v2_autosuspend_delay_defers_idle_suspend(void **state)
{
	(void)state;
	up_and_connect(NULL);
	assert_int_equal(pmt_set(&g_p, NULL, "autosuspend_delay_ms", "300"), 0);
	struct pm_status s;
	disconn();
	uint64_t t0 = now_ms();
	/* The delay counts from the close's put, which comes after t0: a
	 * suspend seen at t0 + dt happened no earlier than t0 + 300, so
	 * dt >= 300 also says it was active before (a sleep and a look at
	 * t0 + 100 would fail on a machine that oversleeps). */
	assert_int_equal(pmt_wait_status(&g_p, NULL, "suspended", 1500 - (int)(now_ms() - t0)), 0);
	uint64_t dt = now_ms() - t0;
	assert_true(dt >= 300);
	assert_true(dt <= 1500);
	STATUS(s);
	assert_false(s.client_connected);
	assert_int_equal(s.usage_count, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
		T(b1_entry_engages_and_suspends),
		T(b1_entry_suspends_to_d3cold_with_platform_d3cold),
		T(b2_second_entry_while_engaged_fails),
		T(b2_rejected_wakeup_fd_is_not_retained),
		T(b3_exit_is_idempotent),
		T(b4_exit_restores_count_once),
		T(b4_exit_restores_count_once_with_eventfd),
		T(b5_wakeup_entry_requires_an_eventfd),
		T(b6_probe_never_changes_state),
		T(feature_errno_order_s1_2),
		T(b7_wrapper_reference_defers_suspend),
		T(b8_suspend_goes_through_d0),
		T(b8_suspend_restores_user_d3hot_snapshot),
		T(b9_resume_leaves_device_in_d0),
		T(b10_plain_entry_resuspends_after_access),
		T(b11_wakeup_is_one_shot),
		T(b12_no_signal_without_real_suspend),
		T(b13_any_request_wakes_even_invalid),
		T(b13_get_info_wakes),
		T(b13_unknown_command_is_not_a_device_command),
		T(b14_entry_after_wake_succeeds),
		T(b15_close_while_engaged_is_silent_and_resets),
		T(b16_power_control_on_fires_wakeup),
		T(b16_d3cold_allowed_change_resumes_and_resuspends),
		T(b16_ctl_config_access_in_d3cold_resumes_and_fires),
		T(b16_ctl_config_write_during_a_suspend_is_kept),
		T(b16_ctl_pmcsr_d0_keeps_the_clients_config),
		T(b16_ctl_write_in_d3hot_survives_a_nosoftrst_plus_resume),
		T(b16_ctl_pmcsr_write_resumes_a_suspended_device),
		T(b16_ctl_config_read_in_d3hot_does_not_resume),
		T(b35_unused_device_suspends),
		T(b35_unused_device_suspends_to_d3cold),
		T(b35_idle_d3_off_keeps_device_active),
		T(contract3_version_dma_map_unmap_do_not_wake),
		T(contract3_zero_length_and_bad_region_do_not_wake),
		T(v2_status_lists_every_field),
		T(v2_status_never_wakes),
		T(v2_set_rejects_unknown_key_and_bad_value),
		T(v2_autosuspend_delay_defers_idle_suspend),
#undef T
	};
	return cmocka_run_group_tests_name("pm-b1-b16", tests, NULL, NULL);
}
