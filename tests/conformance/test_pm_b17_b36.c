/* Conformance: kernel behaviours B17..B32 (INTx across suspend, memory
 * access while engaged or in D3hot, PMCSR virtualisation, NoSoftRst-
 * save/restore, resets) and vfpm's V1, V3 and V4 (contract §7).
 *
 * Every test drives a real vfpmd through the client library and observes
 * it through the control plane. One test per behaviour, named after it;
 * several behaviours have more than one test (a variant in D3cold, or with
 * the device engaged but awake).
 *
 * B33, B34 and B36 (SR-IOV) are covered by the SR-IOV suite; B1..B16 and
 * B35 by test_pm_b1_b16.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
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
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"

/* demo device (models/demo.c) */
#define DEMO_VENDOR 0x1b36
#define DEMO_ID 0x4d504656u
#define REG_ID 0x00
#define REG_SCRATCH 0x08
#define REG_DOORBELL 0x10
#define REG_DMA_SRC_LO 0x20
#define REG_DMA_SRC_HI 0x24
#define REG_DMA_DST_LO 0x28
#define REG_DMA_DST_HI 0x2c
#define REG_DMA_LEN 0x30
#define REG_DMA_COUNT 0x38
#define BAR0 VFIO_PCI_BAR0_REGION_INDEX
#define BAR2 VFIO_PCI_BAR2_REGION_INDEX
#define BAR4 VFIO_PCI_BAR4_REGION_INDEX
#define MSIX_PBA_OFF 0x1000
#define BAR0_ADDR 0xfebf1000u   /* an address a guest might program */

/* PMCSR PowerState values */
enum { PS_D0 = 0, PS_D1 = 1, PS_D2 = 2, PS_D3HOT = 3 };

#define DMA_READ 0x1u           /* vfio-user DMA_MAP flags */
#define DMA_WRITE 0x2u
#define DMA_IOVA 0x40000000ull

#define WAIT_MS 5000            /* every wait for the server ends after this */
#define QUIET_MS 250            /* "nothing happens" windows */
#define WATCHDOG_S 90           /* a whole test; a hang fails the run */

enum touch { TOUCH_OK, TOUCH_SIGBUS, TOUCH_OTHER };

#define MAX_MAPS 4
#define MAX_FDS 8

/* The current test's server, client and resources, released by teardown
 * even when an assertion fails half-way. */
static struct {
	struct vfpmd_proc p;
	bool started;
	struct vfpm_client *c;
	unsigned pm;            /* PM capability offset */
	struct { void *addr; size_t len; } maps[MAX_MAPS];
	int fds[MAX_FDS];
} g;

/* ------------------------------------------------------------------ */
/* Watchdog and fixtures */

static int setup(void **state)
{
	(void)state;
	memset(&g, 0, sizeof(g));
	for (int i = 0; i < MAX_FDS; i++)
		g.fds[i] = -1;
	pmt_watchdog_arm("test_pm_b17_b36", WATCHDOG_S);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int i = 0; i < MAX_MAPS; i++)
		if (g.maps[i].addr)
			munmap(g.maps[i].addr, g.maps[i].len);
	for (int i = 0; i < MAX_FDS; i++)
		if (g.fds[i] >= 0)
			close(g.fds[i]);
	if (g.c)
		vfpm_client_close(g.c);
	int rc = 0;
	if (g.started) {
		struct pm_status st;
		/* the usage count never went below zero */
		if (!pmt_status(&g.p, NULL, &st) && st.underflows) {
			fprintf(stderr, "usage count underflows: %llu\n",
				(unsigned long long)st.underflows);
			rc = -1;
		}
		int ex = vfpmd_terminate(&g.p);
		if (ex != 0) {
			/* a sanitizer report or a crash: show the server's log */
			char cmd[400];
			snprintf(cmd, sizeof(cmd), "cat %s >&2", g.p.log);
			if (system(cmd) < 0) {
				/* the log stays in the directory */
			}
			rc = -1;
		}
		vfpmd_cleanup(&g.p);
	}
	pmt_watchdog_disarm();
	memset(&g, 0, sizeof(g));
	return rc;
}

static int keep_fd(int fd)
{
	for (int i = 0; i < MAX_FDS; i++)
		if (g.fds[i] < 0) {
			g.fds[i] = fd;
			return fd;
		}
	fail_msg("too many descriptors kept");
	return -1;
}

/* ------------------------------------------------------------------ */
/* Server, client and status */

static void wait_status_at(const char *name, const char *want, int line);

static void connect_client(void)
{
	assert_int_equal(vfpm_client_connect(g.p.sock[0], NULL, &g.c), 0);
	g.pm = pmt_pm_cap(g.c);
	assert_true(g.pm != 0);
}

/* One demo device "dev" with pm_delays=none plus keys, and a client. */
static void start(const char *keys)
{
	assert_int_equal(pmt_start(&g.p, keys), 0);
	pmt_watch(g.p.pid);
	g.started = true;
	connect_client();
	wait_status_at("dev", "active", __LINE__);
}

/* On a failed control-plane observation: what the control socket says. */
static void ctl_diag(const char *name, int line)
{
	char rep[4096] = "";
	int rc = ctl_request(g.p.ctl, "{\"cmd\":\"status\"}", rep, sizeof(rep));
	print_message("line %d: device %s: status request rc %d: %.600s\n", line,
		      name ? name : "-", rc, rep);
	if (rc) {
		char cmd[800];
		snprintf(cmd, sizeof(cmd), "ls -la %s >&2; ps -o pid,stat,etime,args -p %d >&2; tail -5 %s >&2",
			 g.p.dir, (int)g.p.pid, g.p.log);
		if (system(cmd) < 0)
			print_message("no diagnostics\n");
	}
}

static struct pm_status status_at(int line)
{
	struct pm_status st;
	int rc = pmt_status(&g.p, "dev", &st);
	if (rc)
		ctl_diag("dev", line);
	assert_int_equal(rc, 0);
	return st;
}
#define status() status_at(__LINE__)

static void wait_status_at(const char *name, const char *want, int line)
{
	int rc = pmt_wait_status(&g.p, name, want, WAIT_MS);
	if (rc)
		ctl_diag(name, line);
	assert_int_equal(rc, 0);
}
#define wait_suspended() wait_status_at("dev", "suspended", __LINE__)

static void assert_power_state(const char *want)
{
	struct pm_status st = status();
	assert_string_equal(st.power_state, want);
}

static double now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* ------------------------------------------------------------------ */
/* Config space */

static uint8_t cfg8(unsigned off)
{
	uint8_t v = 0;
	assert_int_equal(pmt_cfg_read(g.c, off, &v, 1), 0);
	return v;
}

static uint16_t cfg16(unsigned off)
{
	uint16_t v = 0;
	assert_int_equal(pmt_cfg_read(g.c, off, &v, 2), 0);
	return v;
}

static uint32_t cfg32(unsigned off)
{
	uint32_t v = 0;
	assert_int_equal(pmt_cfg_read(g.c, off, &v, 4), 0);
	return v;
}

static void cfg_w8(unsigned off, uint8_t v)
{
	assert_int_equal(pmt_cfg_write(g.c, off, &v, 1), 0);
}

static void cfg_w16(unsigned off, uint16_t v)
{
	assert_int_equal(pmt_cfg_write(g.c, off, &v, 2), 0);
}

static void cfg_w32(unsigned off, uint32_t v)
{
	assert_int_equal(pmt_cfg_write(g.c, off, &v, 4), 0);
}

static unsigned pmcsr(void)
{
	return g.pm + PCI_PM_CTRL;
}

static unsigned power_state_bits(void)
{
	return cfg16(pmcsr()) & PCI_PM_CTRL_STATE_MASK;
}

/* A 2-byte PMCSR write of PowerState (B27: starts at PMCSR). */
static void set_ps(unsigned state)
{
	cfg_w16(pmcsr(), (uint16_t)state);
}

static void command_bits(uint16_t bits, bool on)
{
	uint16_t cmd = cfg16(PCI_COMMAND);
	cmd = on ? (uint16_t)(cmd | bits) : (uint16_t)(cmd & ~bits);
	cfg_w16(PCI_COMMAND, cmd);
}

static void mem_enable(bool on)
{
	command_bits(PCI_COMMAND_MEMORY, on);
}

static unsigned find_cap(uint8_t id)
{
	uint8_t ptr = cfg8(PCI_CAPABILITY_LIST);
	for (unsigned n = 0; ptr && n < 48; n++) {
		if (cfg8(ptr) == id)
			return ptr;
		ptr = cfg8(ptr + 1u);
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* BARs */

static uint32_t bar0_r32(unsigned off)
{
	uint32_t v = 0;
	assert_int_equal(vfpm_client_region_read(g.c, BAR0, off, &v, 4), 0);
	return v;
}

static void bar0_w32(unsigned off, uint32_t v)
{
	assert_int_equal(vfpm_client_region_write(g.c, BAR0, off, &v, 4), 0);
}

/* mmaps BAR2's sparse area 0; the region's fd is returned (kept). */
static uint8_t *map_bar2(int *fd_out)
{
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(g.c, BAR2, &ri), 0);
	assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_true(ri.fd >= 0);
	keep_fd(ri.fd);
	void *addr = NULL;
	size_t len = 0;
	assert_int_equal(vfpm_client_mmap_area(&ri, 0, &addr, &len), 0);
	assert_true(len >= 4096);
	int i = 0;
	while (i < MAX_MAPS && g.maps[i].addr)
		i++;
	assert_true(i < MAX_MAPS);
	g.maps[i].addr = addr;
	g.maps[i].len = len;
	if (fd_out)
		*fd_out = ri.fd;
	return addr;
}

/* Touches one byte of a mapping in a forked child, so that a SIGBUS does
 * not take the test down. Waits up to WAIT_MS for the child. */
static enum touch child_touch(volatile uint8_t *addr, bool write_it)
{
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* the default action, whatever a sanitizer installed */
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGBUS, &sa, NULL);
		pmt_watchdog_disarm();
		if (write_it)
			*addr = 0x5a;
		else
			(void)*addr;
		_exit(0);
	}
	int st = 0;
	pid_t r = 0;
	for (int t = 0; t < WAIT_MS && r == 0; t += 5) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == 0)
			pmt_sleep_ms(5);
	}
	if (r != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return TOUCH_OTHER;
	}
	if (WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS)
		return TOUCH_SIGBUS;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return TOUCH_OK;
	return TOUCH_OTHER;
}

/* ------------------------------------------------------------------ */
/* Interrupts */

static int new_eventfd(void)
{
	int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(fd >= 0);
	return keep_fd(fd);
}

/* Waits up to ms for the eventfd to be signalled; returns its counter
 * (consumed), 0 if nothing came. */
static uint64_t efd_wait(int efd, int ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	if (poll(&p, 1, ms) != 1)
		return 0;
	return pmt_eventfd_count(efd);
}

/* INTx trigger eventfd (index 0); MSI/MSI-X stay off. */
static int intx_setup(void)
{
	int efd = new_eventfd();
	assert_int_equal(vfpm_client_set_irqs(g.c,
					      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &efd, 1, NULL),
			 0);
	return efd;
}

static void intx_action(uint32_t action)
{
	assert_int_equal(vfpm_client_set_irqs(g.c, VFIO_IRQ_SET_DATA_NONE | action,
					      VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL, 0, NULL),
			 0);
}

/* The device asserts INTx (host-side injection through the control plane;
 * it does not wake the device). */
static void inject_intx(void)
{
	char rep[512];
	assert_int_equal(ctl_request(g.p.ctl, "{\"cmd\":\"inject-intx\",\"device\":\"dev\"}", rep,
				     sizeof(rep)),
			 0);
	assert_non_null(strstr(rep, "\"ok\":true"));
}

/* ================================================================== */
/* INTx (B17-B20) */

/* B17: an unmasked INTx in use is masked while the device is suspended: an
 * assertion then signals nothing, and does not wake the device. */
static void b17_intx_masked_across_suspend(void **state)
{
	(void)state;
	start(NULL);
	int efd = intx_setup();
	/* baseline: delivered while active, then automasked until unmasked */
	inject_intx();
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
	intx_action(VFIO_IRQ_SET_ACTION_UNMASK);
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	uint64_t resumes = status().resumes;
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	struct pm_status st = status();
	assert_string_equal(st.runtime_status, "suspended");
	assert_int_equal(st.resumes, resumes);
}

/* B17: on resume the mask taken for the suspend is dropped again: with
 * nothing pending, the next assertion is delivered. */
static void b17_intx_unmasked_after_resume(void **state)
{
	(void)state;
	start(NULL);
	int efd = intx_setup();
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_string_equal(status().runtime_status, "active");
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);   /* nothing was pending */
	inject_intx();
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
}

/* B19: an assertion held back by the suspend mask is delivered exactly
 * once on resume, and the line stays (auto)masked until the client
 * unmasks it. */
static void b19_pending_intx_delivered_once_on_resume(void **state)
{
	(void)state;
	start(NULL);
	int efd = intx_setup();
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);

	/* a config read resumes the device for the access (B10) */
	assert_int_equal(cfg16(PCI_VENDOR_ID), DEMO_VENDOR);
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);   /* exactly once */

	/* still engaged: it suspends again; the line stays masked */
	wait_suspended();
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	assert_int_equal(cfg16(PCI_VENDOR_ID), DEMO_VENDOR);   /* another resume */
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	/* only the client's unmask delivers the held assertion */
	intx_action(VFIO_IRQ_SET_ACTION_UNMASK);
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
}

/* B19 in D3cold: the device has no power, so an assertion made while it is
 * in D3cold is lost with its state: nothing is delivered on resume or on
 * the client's unmask. */
static void b19_intx_asserted_in_d3cold_is_lost(void **state)
{
	(void)state;
	start("platform_d3cold=on");
	int efd = intx_setup();
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state("D3cold");
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	assert_int_equal(cfg16(PCI_VENDOR_ID), DEMO_VENDOR);   /* resumes (B10) */
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	intx_action(VFIO_IRQ_SET_ACTION_UNMASK);
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
}

static void client_mask_preserved(const char *keys, const char *suspended_state)
{
	start(keys);
	int efd = intx_setup();
	intx_action(VFIO_IRQ_SET_ACTION_MASK);
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state(suspended_state);
	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_string_equal(status().runtime_status, "active");
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);   /* still masked */
	intx_action(VFIO_IRQ_SET_ACTION_UNMASK);
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
}

/* B18: the client's SET_IRQS mask survives suspend and resume. */
static void b18_client_intx_mask_preserved(void **state)
{
	(void)state;
	client_mask_preserved(NULL, "D3hot");
}

/* B18 in D3cold: the mask is host-side state, not device state; the
 * power loss does not clear it. */
static void b18_client_intx_mask_preserved_d3cold(void **state)
{
	(void)state;
	client_mask_preserved("platform_d3cold=on", "D3cold");
}

static void disintx_preserved(const char *keys, const char *suspended_state)
{
	start(keys);
	int efd = intx_setup();
	uint16_t cmd = cfg16(PCI_COMMAND);
	cfg_w16(PCI_COMMAND, (uint16_t)(cmd | PCI_COMMAND_INTX_DISABLE));
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state(suspended_state);
	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_true(cfg16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE);
	inject_intx();
	assert_int_equal(efd_wait(efd, QUIET_MS), 0);
	/* the guest clears DisINTx: the held assertion is delivered */
	cfg_w16(PCI_COMMAND, (uint16_t)(cmd & ~PCI_COMMAND_INTX_DISABLE));
	assert_int_equal(efd_wait(efd, WAIT_MS), 1);
}

/* B18: COMMAND.INTX_DISABLE set by the guest survives suspend and resume. */
static void b18_disintx_preserved(void **state)
{
	(void)state;
	disintx_preserved(NULL, "D3hot");
}

static void b18_disintx_preserved_d3cold(void **state)
{
	(void)state;
	disintx_preserved("platform_d3cold=on", "D3cold");
}

static void msix_untouched(const char *keys, const char *suspended_state)
{
	start(keys);
	mem_enable(true);
	unsigned cap = find_cap(PCI_CAP_ID_MSIX);
	assert_true(cap != 0);
	int efds[2] = { new_eventfd(), new_eventfd() };
	assert_int_equal(vfpm_client_set_irqs(g.c,
					      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, efds, 2, NULL),
			 0);
	/* vector 0: programmed and unmasked; vector 1: programmed, masked */
	const uint32_t ent[2][4] = { { 0xfee00000u, 0, 0x41, 0 }, { 0xfee01000u, 0, 0x42, 1 } };
	for (unsigned v = 0; v < 2; v++)
		assert_int_equal(vfpm_client_region_write(g.c, BAR4, v * 16, ent[v], 16), 0);
	cfg_w16(cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	uint16_t flags = cfg16(cap + PCI_MSIX_FLAGS);
	assert_true(flags & PCI_MSIX_FLAGS_ENABLE);
	uint8_t before[64], after[64];
	assert_int_equal(vfpm_client_region_read(g.c, BAR4, 0, before, sizeof(before)), 0);
	assert_memory_equal(before, ent, sizeof(ent));

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state(suspended_state);
	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_string_equal(status().runtime_status, "active");

	assert_int_equal(cfg16(cap + PCI_MSIX_FLAGS), flags);
	assert_int_equal(vfpm_client_region_read(g.c, BAR4, 0, after, sizeof(after)), 0);
	assert_memory_equal(after, before, sizeof(before));
	/* and the vectors still behave as configured */
	assert_int_equal(efd_wait(efds[0], 0), 0);
	assert_int_equal(vfpm_client_set_irqs(g.c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 2, NULL, 0, NULL),
			 0);
	assert_int_equal(efd_wait(efds[0], WAIT_MS), 1);
	assert_int_equal(efd_wait(efds[1], QUIET_MS), 0);   /* masked: pending */
	uint64_t pba = 0;
	assert_int_equal(vfpm_client_region_read(g.c, BAR4, MSIX_PBA_OFF, &pba, 8), 0);
	assert_int_equal(pba, 0x2);
}

/* B20: MSI-X in use: suspend and resume leave the enable bit, the table
 * and the vector masks as they were. */
static void b20_msix_untouched_by_suspend(void **state)
{
	(void)state;
	msix_untouched(NULL, "D3hot");
}

static void b20_msix_untouched_by_suspend_d3cold(void **state)
{
	(void)state;
	msix_untouched("platform_d3cold=on", "D3cold");
}

/* ================================================================== */
/* Memory access (B21-B25) */

/* B21: engaged and suspended: touching a BAR mapping raises SIGBUS. */
static void b21_mmap_sigbus_while_engaged(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	volatile uint8_t *m = map_bar2(NULL);
	m[0] = 0x11;
	assert_int_equal(m[0], 0x11);
	assert_int_equal(child_touch(m, false), TOUCH_OK);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	struct pm_status st = status();
	assert_true(st.engaged);
	assert_true(st.mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);
	assert_int_equal(child_touch(m + 4096, true), TOUCH_SIGBUS);

	/* mmap() itself keeps working while revoked; touching faults */
	volatile uint8_t *m2 = map_bar2(NULL);
	assert_int_equal(child_touch(m2, false), TOUCH_SIGBUS);
	assert_true(status().engaged);

	/* after EXIT both mappings work again */
	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_false(status().mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	assert_int_equal(child_touch(m2, false), TOUCH_OK);
	assert_int_equal(m2[0], 0x11);
}

/* B21: engaged but ACTIVE (power_control=on holds it awake): SIGBUS too. */
static void b21_mmap_sigbus_while_engaged_active(void **state)
{
	(void)state;
	start(NULL);
	assert_int_equal(pmt_set(&g.p, "dev", "power_control", "on"), 0);
	mem_enable(true);
	volatile uint8_t *m = map_bar2(NULL);
	assert_int_equal(child_touch(m, true), TOUCH_OK);
	assert_int_equal(m[0], 0x5a);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	pmt_quiet_ms(QUIET_MS);   /* it would have suspended by now */
	struct pm_status st = status();
	assert_string_equal(st.runtime_status, "active");
	assert_string_equal(st.power_state, "D0");
	assert_true(st.engaged);
	assert_true(st.mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);
	volatile uint8_t *m2 = map_bar2(NULL);   /* mmap succeeds */
	assert_int_equal(child_touch(m2, false), TOUCH_SIGBUS);

	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	assert_int_equal(m[0], 0x5a);
}

/* B22: a page already mapped and touched before ENTRY faults afterwards
 * (the child populates its own page-table entry first). */
static void b22_entry_zaps_existing_mappings(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	volatile uint8_t *m = map_bar2(NULL);
	m[8] = 0x22;
	int to_child[2], to_parent[2];
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGBUS, &sa, NULL);
		pmt_watchdog_disarm();
		close(to_child[1]);
		close(to_parent[0]);
		uint8_t v = m[8];   /* populates the PTE */
		m[9] = 0x33;
		if (write(to_parent[1], &v, 1) != 1)
			_exit(3);
		struct pollfd p = { .fd = to_child[0], .events = POLLIN };
		char go;
		if (poll(&p, 1, WAIT_MS * 2) != 1 || read(to_child[0], &go, 1) != 1)
			_exit(4);
		(void)m[8];         /* the same page, after ENTRY */
		_exit(0);
	}
	close(to_child[0]);
	close(to_parent[1]);
	struct pollfd p = { .fd = to_parent[0], .events = POLLIN };
	uint8_t seen = 0;
	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_int_equal(read(to_parent[0], &seen, 1), 1);
	assert_int_equal(seen, 0x22);
	assert_int_equal(m[9], 0x33);   /* the child's write went to the BAR */

	int rc = pmt_lp_entry(g.c);
	char go = 'g';
	assert_int_equal(write(to_child[1], &go, 1), 1);
	int st = 0;
	pid_t r = 0;
	for (int t = 0; t < WAIT_MS && r == 0; t += 5) {
		r = waitpid(pid, &st, WNOHANG);
		if (r == 0)
			pmt_sleep_ms(5);
	}
	if (r != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
	close(to_child[1]);
	close(to_parent[0]);
	assert_int_equal(rc, 0);
	assert_int_equal(r, pid);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGBUS);
}

/* B23: REGION_READ/WRITE of BARs works while engaged (it resumes the
 * device, B10), with the bytes written before ENTRY; after EXIT the
 * mapping works and holds every byte (D3hot keeps contents, §5). */
static void b23_region_access_works_while_engaged(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	uint8_t *m = map_bar2(NULL);
	uint8_t a[64], b[64], buf[64];
	for (unsigned i = 0; i < 64; i++) {
		a[i] = (uint8_t)(0xa0 + i);
		b[i] = (uint8_t)(0x30 ^ i);
	}
	memcpy(m, a, sizeof(a));
	bar0_w32(REG_SCRATCH, 0x12345678u);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state("D3hot");
	assert_int_equal(vfpm_client_region_read(g.c, BAR2, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, a, sizeof(a));
	assert_int_equal(vfpm_client_region_write(g.c, BAR2, 4096, b, sizeof(b)), 0);
	assert_int_equal(vfpm_client_region_read(g.c, BAR2, 4096, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, b, sizeof(b));
	assert_int_equal(bar0_r32(REG_ID), DEMO_ID);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0x12345678u);
	bar0_w32(REG_SCRATCH, 0xcafef00du);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0xcafef00du);

	/* still engaged, suspends again, mappings still fault */
	wait_suspended();
	struct pm_status st = status();
	assert_true(st.engaged);
	assert_true(st.mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);

	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	assert_memory_equal(m, a, sizeof(a));
	assert_memory_equal(m + 4096, b, sizeof(b));
	assert_int_equal(bar0_r32(REG_SCRATCH), 0xcafef00du);
}

/* B23 with D3cold: region access still works while engaged, but BAR RAM
 * and device state did not survive the power loss (contract §5). */
static void b23_d3cold_contents_lost(void **state)
{
	(void)state;
	start("platform_d3cold=on");
	mem_enable(true);
	uint8_t *m = map_bar2(NULL);
	uint8_t zero[64] = { 0 }, buf[64];
	memset(m, 0xa5, 8192);
	bar0_w32(REG_SCRATCH, 0x12345678u);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state("D3cold");
	assert_int_equal(vfpm_client_region_read(g.c, BAR2, 0, buf, sizeof(buf)), 0);
	assert_memory_equal(buf, zero, sizeof(buf));
	assert_int_equal(bar0_r32(REG_ID), DEMO_ID);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0);
	/* (bytes written now would not survive either: still engaged, the
	 * device goes back to D3cold after each access, B10) */

	assert_int_equal(pmt_lp_exit(g.c), 0);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	for (unsigned off = 0; off < 8192; off += 64)
		assert_memory_equal(m + off, zero, sizeof(zero));
	assert_int_equal(bar0_r32(REG_SCRATCH), 0);
}

/* B24: a user-set D3hot: memory BARs give -EIO, mappings fault, config
 * space stays accessible; D0 brings access back. */
static void b24_user_d3hot_blocks_bar_access(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	volatile uint8_t *m = map_bar2(NULL);
	m[0] = 0x42;
	bar0_w32(REG_SCRATCH, 0xabcdu);

	set_ps(PS_D3HOT);
	struct pm_status st = status();
	assert_string_equal(st.power_state, "D3hot");
	assert_string_equal(st.runtime_status, "active");
	assert_false(st.engaged);
	assert_true(st.mmap_revoked);

	uint32_t v = 0;
	uint8_t buf[16];
	assert_int_equal(vfpm_client_region_read(g.c, BAR0, REG_ID, &v, 4), -EIO);
	assert_int_equal(vfpm_client_region_write(g.c, BAR0, REG_SCRATCH, &v, 4), -EIO);
	assert_int_equal(vfpm_client_region_read(g.c, BAR2, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(vfpm_client_region_write(g.c, BAR2, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(vfpm_client_region_read(g.c, BAR4, 0, buf, sizeof(buf)), -EIO);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);
	/* config space stays accessible */
	assert_int_equal(cfg16(PCI_VENDOR_ID), DEMO_VENDOR);
	assert_int_equal(power_state_bits(), PS_D3HOT);
	/* ROM reads would be -EIO too (B24), but no vfpm device has a ROM:
	 * region 6 has size 0, so that part is not applicable here. */
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(g.c, VFIO_PCI_ROM_REGION_INDEX, &ri), 0);
	assert_int_equal(ri.size, 0);
	if (ri.fd >= 0)
		close(ri.fd);

	set_ps(PS_D0);
	assert_int_equal(power_state_bits(), PS_D0);
	assert_power_state("D0");
	assert_int_equal(bar0_r32(REG_ID), DEMO_ID);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0xabcdu);   /* NoSoftRst+ */
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	assert_int_equal(m[0], 0x42);
	assert_false(status().mmap_revoked);
}

/* B25 helpers: the doorbell ioeventfd and a DMA job copying 64 bytes. */
struct dma_job {
	int doorbell;
	uint8_t *host;   /* client's view of the DMA memory */
};

static void b25_setup(struct dma_job *j, const char *keys)
{
	start(keys);
	struct vfpm_ioeventfd io[8];
	int n = vfpm_client_region_io_fds(g.c, BAR0, io, 8);
	assert_int_equal(n, 1);
	keep_fd(io[0].fd);
	assert_int_equal(io[0].offset, REG_DOORBELL);
	assert_int_equal(io[0].size, 4);
	j->doorbell = io[0].fd;

	int mfd = memfd_create("b25-dma", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	keep_fd(mfd);
	assert_int_equal(ftruncate(mfd, 8192), 0);
	void *host = NULL;
	assert_int_equal(vfpm_client_dma_map(g.c, mfd, 0, DMA_IOVA, 8192, DMA_READ | DMA_WRITE,
					     &host),
			 0);
	j->host = host;
	for (unsigned i = 0; i < 64; i++)
		j->host[i] = (uint8_t)(i * 7 + 1);
	/* the copy engine is a bus master */
	command_bits(PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, true);
	bar0_w32(REG_DMA_SRC_LO, (uint32_t)DMA_IOVA);
	bar0_w32(REG_DMA_SRC_HI, 0);
	bar0_w32(REG_DMA_DST_LO, (uint32_t)(DMA_IOVA + 4096));
	bar0_w32(REG_DMA_DST_HI, 0);
	bar0_w32(REG_DMA_LEN, 64);
	assert_int_equal(bar0_r32(REG_DMA_COUNT), 0);
}

static void ring(struct dma_job *j)
{
	uint64_t one = 1;
	assert_int_equal(write(j->doorbell, &one, sizeof(one)), sizeof(one));
}

/* Waits until the device has taken the doorbell off the ioeventfd. */
static void wait_doorbell_consumed(struct dma_job *j)
{
	for (int t = 0; t < WAIT_MS; t += 5) {
		struct pollfd p = { .fd = j->doorbell, .events = POLLIN };
		if (poll(&p, 1, 0) == 0)
			return;
		pmt_sleep_ms(5);
	}
	fail_msg("the device never consumed the doorbell");
}

static void assert_job_ran(struct dma_job *j, uint32_t count)
{
	uint32_t c = 0;
	for (int t = 0; t < WAIT_MS && (c = bar0_r32(REG_DMA_COUNT)) < count; t += 5)
		pmt_sleep_ms(5);
	assert_int_equal(c, count);
	assert_memory_equal(j->host + 4096, j->host, 64);
}

/* B25: with MEM=1 in D0 an ioeventfd write runs the job. */
static void b25_ioeventfd_runs_job_when_memory_enabled(void **state)
{
	(void)state;
	struct dma_job j;
	b25_setup(&j, NULL);
	ring(&j);
	assert_job_ran(&j, 1);
}

/* B25: MEM=0: the write is dropped, not deferred. */
static void b25_ioeventfd_dropped_when_mem_off(void **state)
{
	(void)state;
	struct dma_job j;
	b25_setup(&j, NULL);
	mem_enable(false);
	ring(&j);
	wait_doorbell_consumed(&j);
	pmt_quiet_ms(50);
	mem_enable(true);
	pmt_quiet_ms(QUIET_MS);
	assert_int_equal(bar0_r32(REG_DMA_COUNT), 0);
	assert_int_equal(j.host[4096], 0);
	ring(&j);   /* and the device still works */
	assert_job_ran(&j, 1);
}

/* B25: in a user-set D3hot the write is dropped too. */
static void b25_ioeventfd_dropped_in_d3hot(void **state)
{
	(void)state;
	struct dma_job j;
	b25_setup(&j, NULL);
	set_ps(PS_D3HOT);
	ring(&j);
	pmt_quiet_ms(QUIET_MS);
	set_ps(PS_D0);
	pmt_quiet_ms(QUIET_MS);
	assert_int_equal(bar0_r32(REG_DMA_COUNT), 0);
	assert_int_equal(j.host[4096], 0);
	ring(&j);
	assert_job_ran(&j, 1);
}

/* B25: an ioeventfd takes no PM reference: it never wakes a suspended
 * device, and the write is dropped. */
static void b25_ioeventfd_does_not_wake(void **state)
{
	(void)state;
	struct dma_job j;
	b25_setup(&j, NULL);
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	struct pm_status before = status();
	ring(&j);
	pmt_quiet_ms(QUIET_MS);
	struct pm_status after = status();
	assert_string_equal(after.runtime_status, "suspended");
	assert_int_equal(after.resumes, before.resumes);
	assert_int_equal(after.usage_count, before.usage_count);
	assert_int_equal(pmt_lp_exit(g.c), 0);
	pmt_quiet_ms(QUIET_MS);
	assert_int_equal(bar0_r32(REG_DMA_COUNT), 0);
	ring(&j);
	assert_job_ran(&j, 1);
}

/* ================================================================== */
/* PM capability virtualisation (B26-B30) */

/* B26: PME_Support reads 0; PME_En and PME_Status are not writable. */
static void b26_pme_hidden(void **state)
{
	(void)state;
	start(NULL);
	uint16_t pmc = cfg16(g.pm + PCI_PM_PMC);
	assert_int_equal(pmc & PCI_PM_CAP_PME_MASK, 0);
	cfg_w16(g.pm + PCI_PM_PMC, 0xffff);   /* read-only */
	assert_int_equal(cfg16(g.pm + PCI_PM_PMC), pmc);

	assert_int_equal(cfg16(pmcsr()) & (PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS), 0);
	cfg_w16(pmcsr(), PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);   /* PowerState D0 */
	uint16_t csr = cfg16(pmcsr());
	assert_int_equal(csr & (PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS), 0);
	assert_int_equal(csr & PCI_PM_CTRL_STATE_MASK, PS_D0);
	/* the high byte alone (PME_Status is w1c on hardware, PME_En rw) */
	cfg_w8(pmcsr() + 1, 0x81);
	assert_int_equal(cfg16(pmcsr()) & (PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS), 0);
	assert_power_state("D0");
}

/* B27: PowerState changes only for an access that starts at PMCSR. */
static void b27_power_state_only_at_pmcsr(void **state)
{
	(void)state;
	start(NULL);
	cfg_w8(pmcsr(), PS_D3HOT);   /* byte at cap+4 */
	assert_power_state("D3hot");
	assert_int_equal(power_state_bits(), PS_D3HOT);
	cfg_w8(pmcsr(), PS_D0);
	assert_power_state("D0");

	/* dword at cap+4: PMCSR, PMCSR_BSE and Data */
	cfg_w32(pmcsr(), PS_D3HOT);
	assert_power_state("D3hot");
	assert_int_equal(power_state_bits(), PS_D3HOT);
	cfg_w32(pmcsr(), PS_D0);
	assert_power_state("D0");

	/* byte at cap+5: not a PowerState write */
	cfg_w8(pmcsr() + 1, PS_D3HOT);
	assert_power_state("D0");
	assert_int_equal(power_state_bits(), PS_D0);
	/* a word at cap+6 neither */
	cfg_w16(pmcsr() + 2, PS_D3HOT);
	assert_power_state("D0");
	assert_int_equal(power_state_bits(), PS_D0);
}

/* B28: refused transitions succeed silently; PowerState reads the real
 * state. Without D1/D2 support both are refused. */
static void b28_refused_transitions_silent(void **state)
{
	(void)state;
	start(NULL);
	uint16_t pmc = cfg16(g.pm + PCI_PM_PMC);
	assert_int_equal(pmc & (PCI_PM_CAP_D1 | PCI_PM_CAP_D2), 0);
	set_ps(PS_D1);   /* rc 0 asserted inside */
	assert_int_equal(power_state_bits(), PS_D0);
	assert_power_state("D0");
	set_ps(PS_D2);
	assert_int_equal(power_state_bits(), PS_D0);
	assert_power_state("D0");
}

/* B28 with d1=on: D0->D1 works, D3hot->D1 is refused (reads back 3). */
static void b28_d1_supported_d3hot_to_d1_refused(void **state)
{
	(void)state;
	start("d1=on");
	assert_true(cfg16(g.pm + PCI_PM_PMC) & PCI_PM_CAP_D1);
	set_ps(PS_D1);
	assert_int_equal(power_state_bits(), PS_D1);
	assert_power_state("D1");
	set_ps(PS_D2);   /* D2 still unsupported */
	assert_int_equal(power_state_bits(), PS_D1);
	set_ps(PS_D3HOT);   /* deeper: fine */
	assert_int_equal(power_state_bits(), PS_D3HOT);
	assert_power_state("D3hot");
	set_ps(PS_D1);   /* shallower, not D0: refused */
	assert_int_equal(power_state_bits(), PS_D3HOT);
	assert_power_state("D3hot");
	set_ps(PS_D0);
	assert_int_equal(power_state_bits(), PS_D0);
	assert_power_state("D0");
}

/* B29: a PMCSR write of D3hot revokes the mappings. */
static void b29_d3hot_write_revokes_mmaps(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	volatile uint8_t *m = map_bar2(NULL);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
	assert_false(status().mmap_revoked);
	set_ps(PS_D3HOT);
	assert_true(status().mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);
	set_ps(PS_D0);
	assert_false(status().mmap_revoked);
	assert_int_equal(child_touch(m, false), TOUCH_OK);
}

/* B29: writing the current state is a no-op. Observed on a NoSoftRst-
 * device: D0->D0 does not reset it, and D3hot->D3hot takes no new
 * snapshot (config changed in D3hot is not what D0 restores). */
static void b29_writing_current_state_is_noop(void **state)
{
	(void)state;
	start("nosoftrst=off");
	mem_enable(true);
	bar0_w32(REG_SCRATCH, 0x55u);
	set_ps(PS_D0);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0x55u);   /* no reset */

	cfg_w32(PCI_BASE_ADDRESS_0, BAR0_ADDR);
	set_ps(PS_D3HOT);   /* snapshot with BAR0_ADDR */
	cfg_w32(PCI_BASE_ADDRESS_0, 0xfe000000u);
	assert_int_equal(cfg32(PCI_BASE_ADDRESS_0), 0xfe000000u);
	set_ps(PS_D3HOT);   /* no-op: no new snapshot */
	assert_power_state("D3hot");
	set_ps(PS_D0);
	assert_int_equal(cfg32(PCI_BASE_ADDRESS_0), BAR0_ADDR);
}

/* B30: NoSoftRst-: config space is saved on D0->D3hot and restored on
 * D3hot->D0, while the device itself resets (SCRATCH is 0). */
static void b30_nosoftrst_minus_restores_config(void **state)
{
	(void)state;
	start("nosoftrst=off");
	assert_int_equal(cfg16(pmcsr()) & PCI_PM_CTRL_NO_SOFT_RESET, 0);
	cfg_w32(PCI_BASE_ADDRESS_0, BAR0_ADDR);
	uint16_t cmd = (uint16_t)(cfg16(PCI_COMMAND) | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_w16(PCI_COMMAND, cmd);
	bar0_w32(REG_SCRATCH, 0x1234u);
	uint8_t before[256];
	assert_int_equal(pmt_cfg_read(g.c, 0, before, sizeof(before)), 0);

	set_ps(PS_D3HOT);
	assert_power_state("D3hot");
	set_ps(PS_D0);
	assert_power_state("D0");
	assert_int_equal(cfg32(PCI_BASE_ADDRESS_0), BAR0_ADDR);
	assert_int_equal(cfg16(PCI_COMMAND), cmd);
	uint8_t after[256];
	assert_int_equal(pmt_cfg_read(g.c, 0, after, sizeof(after)), 0);
	assert_memory_equal(after, before, sizeof(before));
	assert_int_equal(bar0_r32(REG_SCRATCH), 0);   /* the device reset */
	assert_int_equal(bar0_r32(REG_ID), DEMO_ID);
}

/* B30: NoSoftRst+ (default): never snapshotted, the device keeps its
 * state across D3hot->D0. */
static void b30_nosoftrst_plus_keeps_state(void **state)
{
	(void)state;
	start(NULL);
	assert_true(cfg16(pmcsr()) & PCI_PM_CTRL_NO_SOFT_RESET);
	mem_enable(true);
	cfg_w32(PCI_BASE_ADDRESS_0, BAR0_ADDR);
	bar0_w32(REG_SCRATCH, 0x1234u);
	set_ps(PS_D3HOT);
	set_ps(PS_D0);
	assert_int_equal(bar0_r32(REG_SCRATCH), 0x1234u);
	assert_int_equal(cfg32(PCI_BASE_ADDRESS_0), BAR0_ADDR);
	assert_true(cfg16(pmcsr()) & PCI_PM_CTRL_NO_SOFT_RESET);
}

/* ================================================================== */
/* Resets and lifecycle (B31, B32) */

/* B31: DEVICE_RESET in a user-set D3hot goes to D0 first, then resets.
 * As vfio-pci's reset, config space is saved (in D0) and restored around
 * it: COMMAND still decodes, the function's registers are reset. */
static void b31_reset_in_d3hot(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	bar0_w32(REG_SCRATCH, 0x77u);
	set_ps(PS_D3HOT);
	assert_power_state("D3hot");
	assert_int_equal(vfpm_client_reset(g.c), 0);
	assert_int_equal(power_state_bits(), PS_D0);
	assert_int_equal(cfg16(PCI_COMMAND) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
	assert_power_state("D0");
	assert_int_equal(bar0_r32(REG_SCRATCH), 0);
	assert_int_equal(bar0_r32(REG_ID), DEMO_ID);
}

/* B31 for a NoSoftRst- device (the D0 step restores its snapshot). */
static void b31_reset_in_d3hot_nosoftrst_minus(void **state)
{
	(void)state;
	start("nosoftrst=off");
	mem_enable(true);
	set_ps(PS_D3HOT);
	assert_int_equal(vfpm_client_reset(g.c), 0);
	assert_int_equal(power_state_bits(), PS_D0);
	/* the D0 step restored the D3hot snapshot; the reset kept it */
	assert_int_equal(cfg16(PCI_COMMAND) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
	assert_power_state("D0");
}

/* B31: closing the session in D3hot: the next client finds D0. */
static void b31_close_in_d3hot(void **state)
{
	(void)state;
	start(NULL);
	mem_enable(true);
	set_ps(PS_D3HOT);
	assert_power_state("D3hot");
	vfpm_client_close(g.c);
	g.c = NULL;
	/* the closed session is torn down and the device goes idle (B35) */
	bool gone = false;
	for (int t = 0; t < WAIT_MS && !gone; t += 5) {
		gone = !status().client_connected;
		if (!gone)
			pmt_sleep_ms(5);
	}
	assert_true(gone);
	wait_suspended();
	connect_client();
	wait_status_at("dev", "active", __LINE__);
	assert_power_state("D0");
	assert_int_equal(power_state_bits(), PS_D0);
	assert_int_equal(cfg16(PCI_COMMAND), 0);
}

/* B32 does not apply: the kernel's hot reset resets every device of a
 * bus/slot "device set" and resumes its siblings; vfio-user has no bus,
 * no device sets and no VFIO_DEVICE_PCI_HOT_RESET, and vfpm serves each
 * device on its own socket. A client can only see this through
 * DEVICE_GET_INFO: the device offers function reset and nothing else. */
static void b32_not_applicable(void **state)
{
	(void)state;
	start(NULL);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(g.c, &di), 0);
	assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
}

/* ================================================================== */
/* V1 real savings */

static int read_cpu_ticks(pid_t pid, unsigned long long *ticks)
{
	char path[64], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -errno;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	unsigned long utime, stime;
	/* fields 3.. after the command name: utime is 14, stime 15 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
			 &stime) != 2)
		return -EPROTO;
	*ticks = (unsigned long long)utime + stime;
	return 0;
}

static long long read_ctxt_switches(pid_t pid)
{
	char path[128];
	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -1;
	long long sum = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char sp[300], line[256];
		snprintf(sp, sizeof(sp), "/proc/%d/task/%s/status", (int)pid, e->d_name);
		FILE *f = fopen(sp, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			long long v;
			if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1)
				sum += v;
		}
		fclose(f);
	}
	closedir(d);
	return sum;
}

/* Until every thread of pid is asleep (state S): a control connection's
 * thread, woken by our close, runs until it exits. */
static void wait_threads_asleep(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
	for (int t = 0; t < WAIT_MS; t += 5) {
		DIR *d = opendir(dir);
		assert_non_null(d);
		bool all = true;
		struct dirent *e;
		while ((e = readdir(d)) && all) {
			if (e->d_name[0] == '.')
				continue;
			char sp[352], line[512];
			snprintf(sp, sizeof(sp), "%.63s/%.255s/stat", dir, e->d_name);
			FILE *f = fopen(sp, "r");
			if (!f)
				continue;   /* exited meanwhile */
			char *rp = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
			all = rp && rp[1] == ' ' && rp[2] == 'S';
			fclose(f);
		}
		closedir(d);
		if (all)
			return;
		pmt_sleep_ms(5);
	}
	fail_msg("vfpmd's threads never all slept");
}

/* Waits (bounded) until no thread of pid is named comm. */
static void wait_no_thread_named(pid_t pid, const char *comm)
{
	for (int t = 0; t < WAIT_MS && proc_threads_named(pid, comm, NULL) != 0; t += 5)
		pmt_sleep_ms(5);
	if (proc_threads_named(pid, comm, NULL) != 0)
		fail_msg("vfpmd still has a thread named %s", comm);
}

/* ThreadSanitizer's runtime keeps a background thread of its own in every
 * instrumented process, which wakes about ten times a second: in a TSan
 * build (the test and vfpmd are built alike) those wakeups are not vfpm's.
 * Everything else in vfpmd must still sleep. */
#if defined(__SANITIZE_THREAD__)
#define SANITIZER_WAKEUPS_2S 30
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SANITIZER_WAKEUPS_2S 30
#endif
#endif
#ifndef SANITIZER_WAKEUPS_2S
#define SANITIZER_WAKEUPS_2S 0
#endif

/* V1: a server whose devices are all suspended does no work at all: no
 * CPU time and no thread wakeups over 2 s (a measurement window: what is
 * measured is the absence of work, which only a window can show). */
static void v1_suspended_server_is_idle(void **state)
{
	(void)state;
	static const char *const names[] = { "a", "b", "c", "d" };
	const char *specs[] = { "demo,name=a,pm_delays=none", "demo,name=b,pm_delays=none",
				"demo,name=c,pm_delays=none", "demo,name=d,pm_delays=none", NULL };
	assert_int_equal(vfpmd_start(&g.p, specs, NULL), 0);
	pmt_watch(g.p.pid);
	g.started = true;
	/* one of them was used and left: it suspends again (B35) */
	struct vfpm_client *c = NULL;
	assert_int_equal(vfpm_client_connect(g.p.sock[2], NULL, &c), 0);
	vfpm_client_close(c);
	for (unsigned i = 0; i < 4; i++) {
		wait_status_at(names[i], "suspended", __LINE__);
		struct pm_status st;
		assert_int_equal(pmt_status(&g.p, names[i], &st), 0);
		if (strcmp(st.power_state, "D3hot"))
			print_message("device %s: %s %s usage %d\n", names[i], st.power_state,
				      st.runtime_status, st.usage_count);
		assert_string_equal(st.power_state, "D3hot");
	}
	/* the demo's workers end DEMO_LINGER_MS (1 s) after their device
	 * suspended, and the control thread that served our last connection
	 * has gone */
	wait_no_thread_named(g.p.pid, "vfpm-demo");
	wait_threads_asleep(g.p.pid);

	unsigned long long t0, t1;
	assert_int_equal(read_cpu_ticks(g.p.pid, &t0), 0);
	long long s0 = read_ctxt_switches(g.p.pid);
	assert_true(s0 >= 0);
	pmt_sleep_ms(2000);
	assert_int_equal(read_cpu_ticks(g.p.pid, &t1), 0);
	long long s1 = read_ctxt_switches(g.p.pid);
	assert_true(s1 >= 0);
	print_message("V1: %llu ticks, %lld voluntary context switches in 2 s\n", t1 - t0, s1 - s0);
	assert_true(t1 - t0 <= 2);
	assert_true(s1 - s0 <= 5 + SANITIZER_WAKEUPS_2S);
	for (unsigned i = 0; i < 4; i++) {
		struct pm_status st;
		int rc = pmt_status(&g.p, names[i], &st);
		if (rc)
			ctl_diag(names[i], __LINE__);
		assert_int_equal(rc, 0);
		assert_string_equal(st.runtime_status, "suspended");
	}
}

/* V1: in D3cold the BAR backing is returned to the system: the memfd is
 * truncated to nothing and an old mapping faults. */
static void v1_d3cold_releases_bar_memory(void **state)
{
	(void)state;
	start("platform_d3cold=on");
	mem_enable(true);
	int fd = -1;
	uint8_t *m = map_bar2(&fd);
	memset(m, 0x3c, 65536);
	struct stat sb;
	assert_int_equal(fstat(fd, &sb), 0);
	assert_true(sb.st_size >= 65536);
	assert_true(sb.st_blocks > 0);

	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	struct pm_status st = status();
	assert_string_equal(st.power_state, "D3cold");
	assert_true(st.mmap_revoked);
	assert_int_equal(fstat(fd, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(sb.st_blocks, 0);
	assert_int_equal(child_touch(m, false), TOUCH_SIGBUS);
	assert_int_equal(child_touch(m + 32768, true), TOUCH_SIGBUS);
}

/* ================================================================== */
/* V3 guest-driven runtime PM */

/* V3 nosoftrst on a NoSoftRst- device: the guest's D3hot becomes a
 * runtime suspend (to D3cold here) while PMCSR reads D3hot; D0 takes the
 * reference back. */
static void v3_d3hot_promotion(void **state)
{
	(void)state;
	start("d3hot_promotion=nosoftrst,nosoftrst=off,platform_d3cold=on");
	assert_int_equal(status().usage_count, 1);
	set_ps(PS_D3HOT);
	wait_suspended();
	struct pm_status st = status();
	assert_string_equal(st.power_state, "D3cold");
	assert_int_equal(st.usage_count, 0);
	/* the guest sees the D3hot it asked for (this read wakes it briefly) */
	assert_int_equal(power_state_bits(), PS_D3HOT);
	wait_suspended();
	assert_power_state("D3cold");

	set_ps(PS_D0);
	st = status();
	assert_string_equal(st.runtime_status, "active");
	assert_string_equal(st.power_state, "D0");
	assert_int_equal(st.usage_count, 1);
	assert_int_equal(power_state_bits(), PS_D0);
	pmt_quiet_ms(QUIET_MS);
	assert_string_equal(status().runtime_status, "active");
}

/* V3 off (default): the kernel's synchronous D3hot. */
static void v3_d3hot_promotion_off(void **state)
{
	(void)state;
	start("nosoftrst=off,platform_d3cold=on");
	set_ps(PS_D3HOT);
	pmt_quiet_ms(QUIET_MS);
	struct pm_status st = status();
	assert_string_equal(st.runtime_status, "active");
	assert_string_equal(st.power_state, "D3hot");
	assert_int_equal(st.usage_count, 1);
	assert_int_equal(power_state_bits(), PS_D3HOT);
	set_ps(PS_D0);
	assert_power_state("D0");
}

/* V3 nosoftrst on a NoSoftRst+ device: no promotion. */
static void v3_d3hot_promotion_nosoftrst_plus(void **state)
{
	(void)state;
	start("d3hot_promotion=nosoftrst,platform_d3cold=on");
	set_ps(PS_D3HOT);
	pmt_quiet_ms(QUIET_MS);
	struct pm_status st = status();
	assert_string_equal(st.runtime_status, "active");
	assert_string_equal(st.power_state, "D3hot");
	assert_int_equal(st.usage_count, 1);
	set_ps(PS_D0);
	assert_power_state("D0");
}

/* V3 always: promotes a NoSoftRst+ device as well. */
static void v3_d3hot_promotion_always(void **state)
{
	(void)state;
	start("d3hot_promotion=always");
	set_ps(PS_D3HOT);
	wait_suspended();
	assert_power_state("D3hot");
	assert_int_equal(status().usage_count, 0);
	set_ps(PS_D0);
	struct pm_status st = status();
	assert_string_equal(st.runtime_status, "active");
	assert_int_equal(st.usage_count, 1);
	assert_int_equal(power_state_bits(), PS_D0);
}

/* ================================================================== */
/* V4 realistic timing */

static double timed_set_ps(unsigned state)
{
	double t0 = now_ms();
	set_ps(state);
	return now_ms() - t0;
}

/* V4: pm_delays=pci: D0<->D3hot take at least 10 ms each way. Only the
 * lower bound is asserted (plus a generous upper one); with
 * pm_delays=none nothing about timing is asserted. */
static void v4_pm_delays_pci(void **state)
{
	(void)state;
	start(NULL);
	assert_int_equal(pmt_set(&g.p, "dev", "pm_delays", "pci"), 0);
	double down = timed_set_ps(PS_D3HOT);
	assert_power_state("D3hot");
	double up = timed_set_ps(PS_D0);
	assert_power_state("D0");
	print_message("V4: D0->D3hot %.1f ms, D3hot->D0 %.1f ms\n", down, up);
	assert_true(down >= 10.0 && down < 2000.0);
	assert_true(up >= 10.0 && up < 2000.0);
}

/* V4: D3cold -> D0 takes at least 100 ms. */
static void v4_pm_delays_pci_d3cold(void **state)
{
	(void)state;
	start("platform_d3cold=on");
	assert_int_equal(pmt_set(&g.p, "dev", "pm_delays", "pci"), 0);
	assert_int_equal(pmt_lp_entry(g.c), 0);
	wait_suspended();
	assert_power_state("D3cold");
	double t0 = now_ms();
	assert_int_equal(pmt_lp_exit(g.c), 0);   /* resumes first */
	double up = now_ms() - t0;
	assert_power_state("D0");
	print_message("V4: D3cold->D0 %.1f ms\n", up);
	assert_true(up >= 100.0 && up < 2000.0);
}

/* ================================================================== */

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(b17_intx_masked_across_suspend),
		T(b17_intx_unmasked_after_resume),
		T(b18_client_intx_mask_preserved),
		T(b18_client_intx_mask_preserved_d3cold),
		T(b19_intx_asserted_in_d3cold_is_lost),
		T(b18_disintx_preserved),
		T(b18_disintx_preserved_d3cold),
		T(b19_pending_intx_delivered_once_on_resume),
		T(b20_msix_untouched_by_suspend),
		T(b20_msix_untouched_by_suspend_d3cold),
		T(b21_mmap_sigbus_while_engaged),
		T(b21_mmap_sigbus_while_engaged_active),
		T(b22_entry_zaps_existing_mappings),
		T(b23_region_access_works_while_engaged),
		T(b23_d3cold_contents_lost),
		T(b24_user_d3hot_blocks_bar_access),
		T(b25_ioeventfd_runs_job_when_memory_enabled),
		T(b25_ioeventfd_dropped_when_mem_off),
		T(b25_ioeventfd_dropped_in_d3hot),
		T(b25_ioeventfd_does_not_wake),
		T(b26_pme_hidden),
		T(b27_power_state_only_at_pmcsr),
		T(b28_refused_transitions_silent),
		T(b28_d1_supported_d3hot_to_d1_refused),
		T(b29_d3hot_write_revokes_mmaps),
		T(b29_writing_current_state_is_noop),
		T(b30_nosoftrst_minus_restores_config),
		T(b30_nosoftrst_plus_keeps_state),
		T(b31_reset_in_d3hot),
		T(b31_reset_in_d3hot_nosoftrst_minus),
		T(b31_close_in_d3hot),
		T(b32_not_applicable),
		T(v1_suspended_server_is_idle),
		T(v1_d3cold_releases_bar_memory),
		T(v3_d3hot_promotion),
		T(v3_d3hot_promotion_off),
		T(v3_d3hot_promotion_nosoftrst_plus),
		T(v3_d3hot_promotion_always),
		T(v4_pm_delays_pci),
		T(v4_pm_delays_pci_d3cold),
	};
	/* a dead child must not kill us with SIGPIPE on a socket write */
	signal(SIGPIPE, SIG_IGN);
	const char *filter = getenv("PMT_FILTER");   /* e.g. PMT_FILTER='b2*' */
	if (filter && *filter)
		cmocka_set_test_filter(filter);
	return cmocka_run_group_tests_name("pm-b17-b36", tests, NULL, NULL);
}
