/* Wire behaviours as the real peers exercise them (tests/peers/peer.h):
 * QEMU's vfio-user-pci and libvfio-user's sample client, against a real
 * vfpmd. One behaviour per test, named after it. */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "peer.h"
#include "pmtest.h"
#include "wire/proto.h"
#include "wire/wire.h"

/* demo BAR0 registers (docs/demo-device.md) */
#define REG_SCRATCH 0x08
#define REG_DOORBELL 0x10
#define REG_INT_STATUS 0x14
#define REG_INT_MASK 0x18
#define REG_DMA_SRC 0x20
#define REG_DMA_DST 0x28
#define REG_DMA_LEN 0x30
#define REG_DMA_COUNT 0x38
#define REG_IRQ_VECTOR 0x3c
#define INT_DMA_DONE 1u
#define PCI_D0 0u      /* PMCSR PowerState */
#define PCI_D3hot 3u
#define IRQ_MS 2000
#define QUIET_MS 150
#define WAIT_MS 5000

static struct vfpmd_proc g_proc;
static bool g_running;
static struct peer g_p;

static long ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static void start(const char *keys, const char *const *extra)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "demo,name=dev,pm_delays=none%s%s", keys && *keys ? "," : "",
		 keys ? keys : "");
	const char *specs[] = { spec, NULL };
	assert_int_equal(vfpmd_start(&g_proc, specs, extra), 0);
	pmt_watch(g_proc.pid);
	g_running = true;
}

static void stop(void)
{
	if (g_p.c)
		peer_close(&g_p);
	if (g_running) {
		assert_int_equal(vfpmd_stop(&g_proc), 0);
		g_running = false;
	}
}

static int setup(void **state)
{
	(void)state;
	pmt_watchdog_arm("real-peers", 60);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (g_p.c)
		peer_close(&g_p);
	if (g_running) {
		vfpmd_stop(&g_proc);
		g_running = false;
	}
	pmt_watchdog_disarm();
	return 0;
}

static void connect_peer(void)
{
	assert_int_equal(peer_connect(&g_p, g_proc.sock[0]), 0);
	assert_true(g_p.pm_cap && g_p.msix_cap && g_p.pcie_cap);
}

static void status(struct pm_status *st)
{
	assert_int_equal(pmt_status(&g_proc, "dev", st), 0);
}

static uint32_t cfg(unsigned off, unsigned len)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(peer_cfg_read(&g_p, off, len, &v), 0);
	return v;
}

static int peer_cfg_reader(void *ctx, unsigned off, unsigned len, uint32_t *val)
{
	return peer_cfg_read(ctx, off, len, val);
}

static void cfg_set(unsigned off, unsigned len, uint32_t v)
{
	assert_int_equal(peer_cfg_write(&g_p, off, len, v), 0);
}

static uint32_t reg(unsigned off)
{
	uint32_t v = 0xdeadbeef;
	assert_int_equal(peer_bar_read(&g_p, 0, off, 4, &v), 0);
	return v;
}

static void reg_set(unsigned off, uint32_t v)
{
	assert_int_equal(peer_bar_write(&g_p, 0, off, 4, v), 0);
}

static void wait_reg(unsigned off, uint32_t want)
{
	for (int t = 0; t < WAIT_MS; t += 2) {
		if (reg(off) == want)
			return;
		pmt_sleep_ms(2);
	}
	fail_msg("register 0x%x never read %u", off, want);
}

/* A zero-length job: completes without DMA and raises the completion
 * interrupt on vector vec (the demo's IRQ_VECTOR). Returns DMA_COUNT. */
static uint32_t run_job(unsigned vec)
{
	uint32_t before = reg(REG_DMA_COUNT);
	reg_set(REG_INT_STATUS, 3);
	reg_set(REG_INT_MASK, INT_DMA_DONE);
	reg_set(REG_IRQ_VECTOR, vec);
	reg_set(REG_DMA_LEN, 0);
	reg_set(REG_DOORBELL, 1);
	wait_reg(REG_DMA_COUNT, before + 1);
	return before + 1;
}

static void mem_on(void)
{
	cfg_set(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
}

static bool log_has(const char *needle)
{
	return vfpmd_log_has(&g_proc, needle);
}

static void wait_log(const char *needle)
{
	for (int t = 0; t < WAIT_MS; t += 10) {
		if (log_has(needle))
			return;
		pmt_sleep_ms(10);
	}
	fail_msg("vfpmd's log (%s) never had \"%s\"", g_proc.log, needle);
}

/* ------------------------------------------------------------------ */
/* MSI-X with a client that emulates the table */

static void msix_table_emulating_client_gets_completion_interrupts(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	assert_int_equal(peer_msix_enable(&g_p), 0);
	/* the table holds its reset mask bits: they must not block a client
	 * that never wrote the table */
	for (unsigned v = 0; v < g_p.msix_nvec; v++) {
		run_job(v);
		assert_int_equal(peer_wait_guest_irq(&g_p, v, IRQ_MS), 1);
	}
	pmt_sleep_ms(QUIET_MS);
	for (unsigned v = 0; v < g_p.msix_nvec; v++)
		assert_int_equal(peer_guest_irqs(&g_p, v), 0);   /* one each, no more */
	uint32_t probe = 0;
	assert_int_equal(peer_bar_read(&g_p, g_p.msix_bar, g_p.msix_table_off, 4, &probe), -EPERM);
	stop();
}

static void msix_masked_by_eventfd_swap_is_delivered_once_by_the_vmm(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	assert_int_equal(peer_msix_enable(&g_p), 0);
	assert_int_equal(peer_msix_mask_by_swap(&g_p, 1), 0);
	run_job(1);
	run_job(1);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(peer_guest_irqs(&g_p, 1), 0);   /* went to the VMM's fd */
	assert_int_equal(peer_msix_unmask_by_swap(&g_p, 1), 0);
	assert_int_equal(peer_guest_irqs(&g_p, 1), 1);
	run_job(1);
	assert_int_equal(peer_wait_guest_irq(&g_p, 1, IRQ_MS), 1);
	stop();
}

static void msix_set_irqs_mask_pends_and_unmask_delivers_once(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	assert_int_equal(peer_msix_enable(&g_p), 0);
	uint8_t one = 1;
	assert_int_equal(vfpm_client_set_irqs(g_p.c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
					      VFIO_PCI_MSIX_IRQ_INDEX, 2, 1, NULL, 0, &one),
			 0);
	run_job(2);
	run_job(2);   /* a second interrupt while pending is the same one */
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(peer_guest_irqs(&g_p, 2), 0);
	/* other vectors are not held back */
	run_job(0);
	assert_int_equal(peer_wait_guest_irq(&g_p, 0, IRQ_MS), 1);
	assert_int_equal(vfpm_client_set_irqs(g_p.c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_MSIX_IRQ_INDEX, 2, 1, NULL, 0, NULL),
			 0);
	assert_int_equal(peer_wait_guest_irq(&g_p, 2, IRQ_MS), 1);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(peer_guest_irqs(&g_p, 2), 0);
	/* unmasking again delivers nothing more */
	assert_int_equal(vfpm_client_set_irqs(g_p.c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
					      VFIO_PCI_MSIX_IRQ_INDEX, 2, 1, NULL, 0, NULL),
			 0);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(peer_guest_irqs(&g_p, 2), 0);
	stop();
}

/* QEMU grows a NORESIZE index by disabling it and setting every vector
 * again: an interrupt in between is pending, then delivered once. */
static void msix_interrupt_without_eventfd_is_delivered_when_one_is_set(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	assert_int_equal(peer_msix_enable(&g_p), 0);
	assert_int_equal(vfpm_client_set_irqs(g_p.c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 0, NULL, 0, NULL),
			 0);
	run_job(3);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(peer_guest_irqs(&g_p, 3), 0);
	assert_int_equal(peer_msix_enable(&g_p), 0);   /* every vector's eventfd again */
	assert_int_equal(peer_wait_guest_irq(&g_p, 3, IRQ_MS), 1);
	pmt_sleep_ms(QUIET_MS);
	for (unsigned v = 0; v < g_p.msix_nvec; v++)
		assert_int_equal(peer_guest_irqs(&g_p, v), 0);
	stop();
}

/* vfpm's own client programs the server's table: then its mask bits, and
 * the function mask, hold interrupts back as the PCI spec says. */
static void msix_table_programming_client_gets_table_masking(void **state)
{
	(void)state;
	start(NULL, NULL);
	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(g_proc.sock[0], NULL, &c), 0);
	/* the register helpers go through it, with no MSI-X fence */
	memset(&g_p, 0, sizeof(g_p));
	g_p.c = c;
	for (unsigned v = 0; v < PEER_MAX_VEC; v++)
		g_p.guest_fd[v] = g_p.pend_fd[v] = -1;
	mem_on();
	unsigned cap = cfg_find_cap(peer_cfg_reader, &g_p, PCI_CAP_ID_MSIX);
	assert_true(cap);
	cfg_set(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL),
			 0);
	/* entry 0: address, data, still masked */
	uint32_t entry[4] = { 0xfee00000, 0, 0x41, PCI_MSIX_ENTRY_CTRL_MASKBIT };
	assert_int_equal(vfpm_client_region_write(c, 4, 0, entry, sizeof(entry)), 0);
	run_job(0);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	uint64_t pba = 0;
	assert_int_equal(vfpm_client_region_read(c, 4, 0x1000, &pba, 8), 0);
	assert_int_equal(pba, 1);
	uint32_t ctrl = 0;
	assert_int_equal(vfpm_client_region_write(c, 4, 12, &ctrl, 4), 0);
	pmt_sleep_ms(20);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	assert_int_equal(vfpm_client_region_read(c, 4, 0x1000, &pba, 8), 0);
	assert_int_equal(pba, 0);
	/* the function mask */
	cfg_set(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	run_job(0);
	pmt_sleep_ms(QUIET_MS);
	assert_int_equal(pmt_eventfd_count(efd), 0);
	cfg_set(cap + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	pmt_sleep_ms(20);
	assert_int_equal(pmt_eventfd_count(efd), 1);
	close(efd);
	stop();
}

/* ------------------------------------------------------------------ */
/* FLR */

static void flr_is_advertised_and_resets_the_function(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	assert_true(cfg(g_p.pcie_cap + PCI_EXP_DEVCAP, 4) & PCI_EXP_DEVCAP_FLR);
	mem_on();
	reg_set(REG_SCRATCH, 0x5ca1ab1e);
	reg_set(REG_INT_MASK, INT_DMA_DONE);
	cfg_set(g_p.pcie_cap + PCI_EXP_DEVCTL, 2,
		cfg(g_p.pcie_cap + PCI_EXP_DEVCTL, 2) | PCI_EXP_DEVCTL_RELAX_EN);
	assert_int_equal(peer_flr(&g_p), 0);
	/* the bit reads back 0; the function's registers are reset, config
	 * space is as before (vfio-pci saves and restores it around the
	 * reset, pci_try_reset_function) */
	uint32_t devctl = cfg(g_p.pcie_cap + PCI_EXP_DEVCTL, 2);
	assert_int_equal(devctl & PCI_EXP_DEVCTL_BCR_FLR, 0);
	assert_int_equal(devctl & PCI_EXP_DEVCTL_RELAX_EN, PCI_EXP_DEVCTL_RELAX_EN);
	assert_int_equal(cfg(PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(reg(REG_SCRATCH), 0);
	assert_int_equal(reg(REG_INT_MASK), 0);
	wait_log("dev: reset (FLR)");
	/* a guest may write DEVCTL's upper byte alone */
	reg_set(REG_SCRATCH, 0x0ddba11);
	cfg_set(g_p.pcie_cap + PCI_EXP_DEVCTL + 1, 1, PCI_EXP_DEVCTL_BCR_FLR >> 8);
	assert_int_equal(reg(REG_SCRATCH), 0);
	/* a DEVCTL write without the bit resets nothing */
	reg_set(REG_SCRATCH, 0x0ddba11);
	cfg_set(g_p.pcie_cap + PCI_EXP_DEVCTL, 2, cfg(g_p.pcie_cap + PCI_EXP_DEVCTL, 2));
	assert_int_equal(reg(REG_SCRATCH), 0x0ddba11);
	stop();
}

/* Mappings are revoked for the reset's duration and follow memory decode
 * afterwards: back at once while COMMAND.MEM is kept, and faulting when
 * the client had decoding off. */
static void flr_mappings_follow_memory_decode_after_the_reset(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	static uint8_t out[4096], in[4096];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i ^ 0xa5);
	assert_int_equal(vfpm_client_region_write(g_p.c, 2, 0, out, sizeof(out)), 0);
	struct pm_status st;
	assert_int_equal(peer_flr(&g_p), 0);
	status(&st);
	assert_false(st.mmap_revoked);
	assert_int_equal(vfpm_client_region_read(g_p.c, 2, 0, in, sizeof(in)), 0);
	assert_memory_equal(in, out, sizeof(in));   /* BAR memory is the device's RAM */
	cfg_set(PCI_COMMAND, 2, 0);
	assert_int_equal(peer_flr(&g_p), 0);
	status(&st);
	assert_true(st.mmap_revoked);
	mem_on();
	status(&st);
	assert_false(st.mmap_revoked);
	stop();
}

/* A reset holds a PM reference: an FLR written by the host (control plane)
 * to a suspended device resumes it for the reset. */
static void flr_on_a_suspended_device_resumes_it_for_the_reset(void **state)
{
	(void)state;
	start("platform_d3cold=on", NULL);
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	struct pm_status s0, s1;
	status(&s0);
	assert_string_equal(s0.power_state, "D3cold");
	/* the PCIe capability's offset, read through the control plane */
	unsigned pos = pmt_ctl_find_cap(&g_proc, "dev", PCI_CAP_ID_EXP);
	assert_true(pos);
	uint32_t v = PCI_EXP_DEVCTL_BCR_FLR;
	assert_int_equal(pmt_ctl_config_rw(&g_proc, "dev", pos + PCI_EXP_DEVCTL, 2, &v, true), 0);
	wait_log("dev: reset (FLR)");
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	status(&s1);
	assert_true(s1.resumes > s0.resumes);
	assert_true(s1.suspends > s0.suspends);
	stop();
}

/* ------------------------------------------------------------------ */
/* Transfer sizes */

static void region_access_is_bounded_by_the_servers_xfer_size(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();   /* announces 1 KiB */
	mem_on();
	static uint8_t out[16384], in[16384];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 1);
	/* libvfio-user's sample client writes 4 KiB and more */
	assert_int_equal(vfpm_client_region_write(g_p.c, 2, 0x1000, out, 4096), 0);
	assert_int_equal(vfpm_client_region_write(g_p.c, 2, 0x2000, out + 4096, 12288), 0);
	assert_int_equal(vfpm_client_region_read(g_p.c, 2, 0x1000, in, sizeof(in)), 0);
	assert_memory_equal(in, out, sizeof(in));
	stop();
}

/* ------------------------------------------------------------------ */
/* DMA unmap of ranges never mapped */

static void dma_unmap_of_unmapped_space_succeeds_and_removes_maps_inside(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	int mfd = memfd_create("peer-dma", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 0x10000), 0);
	/* QEMU's domain change with nothing mapped: no error anywhere */
	assert_int_equal(peer_unmap_space(&g_p, 39, 32), 0);
	assert_int_equal(vfpm_client_dma_map(g_p.c, mfd, 0, 0x40000000, 0x10000,
					     VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, NULL),
			 0);
	/* a job through the map works */
	reg_set(REG_DMA_SRC, 0x40000000);
	reg_set(REG_DMA_SRC + 4, 0);
	reg_set(REG_DMA_DST, 0x40008000);
	reg_set(REG_DMA_DST + 4, 0);
	reg_set(REG_DMA_LEN, 64);
	uint32_t n = reg(REG_DMA_COUNT);
	reg_set(REG_DOORBELL, 1);
	wait_reg(REG_DMA_COUNT, n + 1);
	assert_int_equal(reg(0x34), 0);
	/* the chunked unmap removes it: the same job now faults */
	assert_int_equal(peer_unmap_space(&g_p, 39, 32), 0);
	reg_set(REG_DOORBELL, 1);
	wait_reg(REG_DMA_COUNT, n + 2);
	assert_int_equal(reg(0x34), EFAULT);
	/* a range that would split a map is refused, as type1 refuses it */
	assert_int_equal(vfpm_client_dma_map(g_p.c, mfd, 0, 0x40000000, 0x10000,
					     VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, NULL),
			 0);
	assert_int_equal(vfpm_client_dma_unmap(g_p.c, 0x40000000, 0x1000), -EINVAL);
	close(mfd);
	stop();
}

/* ------------------------------------------------------------------ */
/* V3: a promoted device answers config space without waking */

static void promoted_suspended_device_answers_config_space_asleep(void **state)
{
	(void)state;
	start("platform_d3cold=on,d3hot_promotion=always", NULL);
	connect_peer();
	mem_on();
	cfg_set(PCI_INTERRUPT_LINE, 1, 0x0b);
	/* the guest's D3hot: the device suspends to D3cold underneath */
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D3hot);
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	struct pm_status s0, s1;
	status(&s0);
	assert_string_equal(s0.power_state, "D3cold");
	/* a full hex dump as lspci makes it, and setpci-style reads in 1, 2
	 * and 4-byte pieces */
	uint8_t dump[4096];
	assert_int_equal(peer_cfg_dump(&g_p, dump), 0);
	assert_int_equal(dump[0], 0x36);
	assert_int_equal(dump[1], 0x1b);
	assert_int_equal(cfg(g_p.pm_cap + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, PCI_D3hot);
	assert_int_equal(cfg(PCI_VENDOR_ID, 2), 0x1b36);
	assert_int_equal(cfg(PCI_INTERRUPT_LINE, 1), 0x0b);
	/* a write that reaches neither the model nor the power state */
	cfg_set(PCI_INTERRUPT_LINE, 1, 0x0c);
	assert_int_equal(cfg(PCI_INTERRUPT_LINE, 1), 0x0c);
	status(&s1);
	assert_string_equal(s1.power_state, "D3cold");
	assert_int_equal(s1.resumes, s0.resumes);
	assert_int_equal(s1.suspends, s0.suspends);
	/* leaving D3hot wakes it, and the write made asleep survived */
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D0);
	status(&s1);
	assert_string_equal(s1.power_state, "D0");
	assert_int_equal(s1.resumes, s0.resumes + 1);
	assert_int_equal(cfg(PCI_INTERRUPT_LINE, 1), 0x0c);
	assert_int_equal(cfg(PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	stop();
}

static void promoted_config_write_that_reaches_the_model_wakes(void **state)
{
	(void)state;
	start("platform_d3cold=on,d3hot_promotion=always", NULL);
	connect_peer();
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D3hot);
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	struct pm_status s0, s1;
	status(&s0);
	cfg_set(PCI_COMMAND, 2, PCI_COMMAND_MEMORY);   /* command_changed reaches the model */
	status(&s1);
	assert_int_equal(s1.resumes, s0.resumes + 1);
	assert_int_equal(cfg(PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
	/* the guest still sees D3hot, and the device may sleep again */
	assert_int_equal(cfg(g_p.pm_cap + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, PCI_D3hot);
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	stop();
}

/* A promoted D3hot is D3hot for the guest even when the device cannot
 * really suspend (power_control=on): memory does not decode, mappings
 * fault, and a NoSoftRst- device resets on the way back to D0 (B24, B30). */
static void promoted_d3hot_that_cannot_suspend_still_behaves_as_d3hot(void **state)
{
	(void)state;
	start("d3hot_promotion=always,nosoftrst=off,power_control=on", NULL);
	connect_peer();
	mem_on();
	reg_set(REG_SCRATCH, 0xfeedf00d);
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D3hot);
	struct pm_status st;
	status(&st);
	assert_string_equal(st.power_state, "D0");   /* held active by power_control */
	assert_string_equal(st.runtime_status, "active");
	assert_true(st.mmap_revoked);
	assert_int_equal(cfg(g_p.pm_cap + PCI_PM_CTRL, 2) & PCI_PM_CTRL_STATE_MASK, PCI_D3hot);
	uint32_t v;
	assert_int_equal(peer_bar_read(&g_p, 0, REG_SCRATCH, 4, &v), -EIO);
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D0);
	/* NoSoftRst-: the device reset, the config saved at D3hot is back */
	assert_int_equal(cfg(PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(reg(REG_SCRATCH), 0);
	status(&st);
	assert_false(st.mmap_revoked);
	assert_int_equal(st.underflows, 0);
	stop();
}

/* The low-power features keep the kernel's contract (B10, B11, B13): any
 * access wakes an engaged device, promoted or not. */
static void promoted_and_engaged_config_access_still_wakes(void **state)
{
	(void)state;
	start("platform_d3cold=on,d3hot_promotion=always", NULL);
	connect_peer();
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D3hot);
	assert_int_equal(pmt_lp_entry_wakeup(g_p.c, efd), 0);
	assert_int_equal(pmt_wait_status(&g_proc, "dev", "suspended", WAIT_MS), 0);
	struct pm_status s0, s1;
	status(&s0);
	(void)cfg(PCI_VENDOR_ID, 2);
	status(&s1);
	assert_int_equal(s1.resumes, s0.resumes + 1);
	assert_int_equal(pmt_eventfd_count(efd), 1);   /* the wakeup fired */
	close(efd);
	stop();
}

/* ------------------------------------------------------------------ */
/* Nothing a client does outlives it */

static void bar_memory_does_not_outlive_its_client(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(g_p.c, 2, &ri), 0);
	assert_true(ri.fd >= 0);
	static uint8_t pat[4096], in[4096];
	memset(pat, 0x5c, sizeof(pat));
	assert_int_equal(vfpm_client_region_write(g_p.c, 2, 0, pat, sizeof(pat)), 0);
	/* the client holds the memfd: it grows it (pinning memory) */
	assert_int_equal(ftruncate(ri.fd, 64 << 20), 0);
	peer_close(&g_p);
	wait_log("dev: reset (client disconnected)");
	struct stat st;
	for (int t = 0; t < WAIT_MS; t += 10) {   /* the scrub follows the reset */
		assert_int_equal(fstat(ri.fd, &st), 0);
		if (st.st_size <= (1 << 20))
			break;
		pmt_sleep_ms(10);
	}
	assert_true(st.st_size <= (1 << 20));
	close(ri.fd);
	/* the next client: BAR2 at its size, power-on contents */
	connect_peer();
	mem_on();
	assert_int_equal(vfpm_client_region_info(g_p.c, 2, &ri), 0);
	assert_true(ri.fd >= 0);
	assert_int_equal(fstat(ri.fd, &st), 0);
	assert_int_equal(st.st_size, 1 << 20);
	close(ri.fd);
	assert_int_equal(vfpm_client_region_read(g_p.c, 2, 0, in, sizeof(in)), 0);
	for (size_t i = 0; i < sizeof(in); i++)
		assert_int_equal(in[i], 0);
	stop();
}

/* ------------------------------------------------------------------ */
/* A peer that never says VERSION */

static void silent_connection_is_closed_at_the_handshake_deadline(void **state)
{
	(void)state;
	static const char *const extra[] = { "--handshake-timeout", "300", NULL };
	start(NULL, extra);
	int fd = raw_connect(g_proc.sock[0]);
	assert_true(fd >= 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 5000), 1);
	char b;
	assert_int_equal(recv(fd, &b, 1, 0), 0);   /* closed by the server */
	assert_true(ms_since(&t0) >= 250);
	close(fd);
	wait_log("no VERSION within 300 ms");
	/* the device is free again, and a client past the deadline is fine */
	connect_peer();
	pmt_sleep_ms(400);
	assert_int_equal(cfg(PCI_VENDOR_ID, 2), 0x1b36);
	stop();
}

/* A client that sends requests and never reads the replies: once the
 * socket is full the server's send has a deadline, then the session ends
 * and the device is free for the next client. */
static void client_that_stops_reading_is_closed_at_the_send_deadline(void **state)
{
	(void)state;
	static const char *const extra[] = { "--send-timeout", "300", NULL };
	start(NULL, extra);
	int fd = raw_connect_negotiated(g_proc.sock[0]);
	assert_true(fd >= 0);
	/* 4 KiB config reads, pipelined, replies never read: megabytes */
	struct vfu_region_access ra = { .offset = 0, .region = VFU_PCI_CONFIG, .count = 4096 };
	int sent = 0;
	for (uint16_t id = 1; id <= 4000; id++) {
		struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_REGION_READ,
				     .flags = VFU_F_TYPE_COMMAND };
		struct pollfd pf = { .fd = fd, .events = POLLOUT };
		if (poll(&pf, 1, 2000) != 1 || !(pf.revents & POLLOUT))
			break;   /* the server stopped reading too: it is blocked in a send */
		if (wire_send(fd, &h, &ra, sizeof(ra), NULL, 0))
			break;   /* or it closed already */
		sent++;
	}
	assert_true(sent > 0);
	wait_log("client stopped reading (send timed out): closing");
	wait_log("dev: reset (client disconnected)");
	close(fd);
	/* the device serves the next client */
	connect_peer();
	assert_int_equal(cfg(PCI_VENDOR_ID, 2), 0x1b36);
	stop();
}

/* The control plane serves everyone: a control client that floods requests
 * and never reads the replies, and one that connects and says nothing,
 * delay neither another client nor the server's shutdown. */
static void control_plane_survives_a_flooding_and_a_silent_client(void **state)
{
	(void)state;
	start(NULL, NULL);
	int flood = raw_connect(g_proc.ctl), silent = raw_connect(g_proc.ctl);
	assert_true(flood >= 0 && silent >= 0);
	static const char req[] = "{\"cmd\":\"status\"}\n";
	int lines = 0;
	for (int i = 0; i < 100000; i++) {
		if (send(flood, req, sizeof(req) - 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
			break;   /* its socket is full: the server is blocked on it, or dropped it */
		lines++;
	}
	assert_true(lines > 0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	struct pm_status st;
	status(&st);   /* a third client is served at once */
	assert_true(ms_since(&t0) < 1500);
	/* shutdown is not held by either */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(vfpmd_stop(&g_proc), 0);
	g_running = false;
	assert_true(ms_since(&t0) < 4000);
	close(flood);
	close(silent);
}

/* ------------------------------------------------------------------ */
/* Operators see what happens */

static void transitions_resets_and_low_power_requests_are_logged_by_default(void **state)
{
	(void)state;
	start(NULL, NULL);
	connect_peer();
	mem_on();
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D3hot);
	wait_log("dev: power D0 -> D3hot (PMCSR write)");
	cfg_set(g_p.pm_cap + PCI_PM_CTRL, 2, PCI_D0);
	wait_log("dev: power D3hot -> D0 (PMCSR write)");
	assert_int_equal(vfpm_client_reset(g_p.c), 0);
	wait_log("dev: reset (DEVICE_RESET)");
	assert_int_equal(pmt_lp_entry(g_p.c), 0);
	wait_log("dev: low-power entry");
	wait_log("dev: power D0 -> D3hot (runtime suspend)");
	assert_int_equal(pmt_lp_exit(g_p.c), 0);
	wait_log("dev: power D3hot -> D0 (runtime resume)");
	wait_log("dev: low-power exit (LOW_POWER_EXIT)");
	peer_close(&g_p);
	wait_log("dev: reset (client disconnected)");
	/* nothing below info by default */
	assert_false(log_has(": verbose: "));
	assert_false(log_has(": debug: "));
	stop();
}

static void verbosity_levels_match_the_documentation(void **state)
{
	(void)state;
	static const char *const v1[] = { "-v", NULL }, *const v2[] = { "-vv", NULL };
	const char *const *levels[] = { NULL, v1, v2 };
	for (int lvl = 0; lvl < 3; lvl++) {
		start(NULL, levels[lvl]);
		connect_peer();
		assert_int_equal(peer_unmap_space(&g_p, 20, 20), 0);
		uint32_t bad = 0;
		/* a failed request: a BAR access with decoding off */
		assert_int_equal(vfpm_client_region_read(g_p.c, 0, 0, &bad, 4), -EIO);
		peer_close(&g_p);
		wait_log("dev: reset (client disconnected)");
		assert_true(log_has(": info: dev: client connected"));
		assert_int_equal(log_has(": verbose: dev: session: version"), lvl >= 1);
		assert_int_equal(log_has(": verbose: dev: DMA unmap 0x0+0x100000"), lvl >= 1);
		assert_int_equal(log_has(": debug: dev: REGION_READ"), lvl >= 2);
		stop();
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(msix_table_emulating_client_gets_completion_interrupts,
						setup, teardown),
		cmocka_unit_test_setup_teardown(msix_masked_by_eventfd_swap_is_delivered_once_by_the_vmm,
						setup, teardown),
		cmocka_unit_test_setup_teardown(msix_set_irqs_mask_pends_and_unmask_delivers_once, setup,
						teardown),
		cmocka_unit_test_setup_teardown(msix_interrupt_without_eventfd_is_delivered_when_one_is_set,
						setup, teardown),
		cmocka_unit_test_setup_teardown(msix_table_programming_client_gets_table_masking, setup,
						teardown),
		cmocka_unit_test_setup_teardown(flr_is_advertised_and_resets_the_function, setup,
						teardown),
		cmocka_unit_test_setup_teardown(flr_mappings_follow_memory_decode_after_the_reset,
						setup, teardown),
		cmocka_unit_test_setup_teardown(flr_on_a_suspended_device_resumes_it_for_the_reset, setup,
						teardown),
		cmocka_unit_test_setup_teardown(region_access_is_bounded_by_the_servers_xfer_size, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			dma_unmap_of_unmapped_space_succeeds_and_removes_maps_inside, setup, teardown),
		cmocka_unit_test_setup_teardown(promoted_suspended_device_answers_config_space_asleep,
						setup, teardown),
		cmocka_unit_test_setup_teardown(promoted_config_write_that_reaches_the_model_wakes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(promoted_and_engaged_config_access_still_wakes, setup,
						teardown),
		cmocka_unit_test_setup_teardown(promoted_d3hot_that_cannot_suspend_still_behaves_as_d3hot,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			transitions_resets_and_low_power_requests_are_logged_by_default, setup, teardown),
		cmocka_unit_test_setup_teardown(silent_connection_is_closed_at_the_handshake_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(bar_memory_does_not_outlive_its_client, setup,
						teardown),
		cmocka_unit_test_setup_teardown(client_that_stops_reading_is_closed_at_the_send_deadline,
						setup, teardown),
		cmocka_unit_test_setup_teardown(control_plane_survives_a_flooding_and_a_silent_client,
						setup, teardown),
		cmocka_unit_test_setup_teardown(verbosity_levels_match_the_documentation, setup,
						teardown),
	};
	return cmocka_run_group_tests_name("real-peers", tests, NULL, NULL);
}
