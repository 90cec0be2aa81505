/* The device core in process: a device built from a small test model,
 * driven through the core's own entry points (no vfpmd, no socket, no
 * sleeps: idle suspends run when the test steps a manual work queue). */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "fake_clock.h"

#define NVEC 4
#define MSIX_BAR 4
#define PBA_OFF 0x1000

struct probe {
	struct vfpm_device *dev;
	int refuse;          /* what suspend() returns */
	unsigned quiesces, suspends, resumes;
};

static struct probe g_probe;

static void probe_quiesce(void *priv)
{
	((struct probe *)priv)->quiesces++;
}

static int probe_suspend(void *priv, enum vfpm_dstate target)
{
	struct probe *p = priv;
	(void)target;
	if (p->refuse)
		return p->refuse;
	p->suspends++;
	return 0;
}

static int probe_resume(void *priv)
{
	((struct probe *)priv)->resumes++;
	return 0;
}

static int probe_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
			const struct vfpm_model_ops **ops)
{
	static const struct vfpm_model_ops ops_ = { .size = sizeof(ops_),
						    .quiesce = probe_quiesce,
						    .suspend = probe_suspend,
						    .resume = probe_resume };
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10ff,
						 .class_code = 0xff0000 };
	g_probe = (struct probe){ .dev = dev };
	int rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_pm_cap(dev, false, false, true);
	if (!rc)
		rc = vfpm_dev_set_intx(dev, true);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, MSIX_BAR, 8192, 0);
	if (!rc)
		rc = vfpm_dev_add_msix_cap(dev, NVEC, MSIX_BAR, 0, PBA_OFF);
	if (!rc)
		rc = vfpm_dev_add_pcie_cap(dev);
	*priv = &g_probe;
	*ops = &ops_;
	return rc;
}

static const struct vfpm_model probe_model = { .size = sizeof(struct vfpm_model),
						 .name = "probe",
						 .create = probe_create };

static struct vfpm_device *make(void)
{
	struct vfpm_opts opts = { 0 };
	struct vfpm_device *dev = NULL;
	assert_int_equal(device_create(&probe_model, "probe", &opts, NULL, -1, &dev), 0);
	return dev;
}

/* Setup calls outside create() change nothing and say so. */
static void setup_calls_outside_create_return_eperm(void **state)
{
	(void)state;
	struct vfpm_device *dev = make();
	uint8_t before[VPCI_CFG_SIZE];
	memcpy(before, dev->cfg.data, sizeof(before));
	static const struct vfpm_pci_ids ids = { .vendor = 0x8086, .device = 0x1234 };
	static const uint8_t body[8];
	assert_int_equal(vfpm_dev_set_ids(dev, &ids), -EPERM);
	assert_int_equal(vfpm_dev_set_intx(dev, false), -EPERM);
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 4096, 0), -EPERM);
	assert_int_equal(vfpm_dev_add_pm_cap(dev, false, false, true), -EPERM);
	assert_int_equal(vfpm_dev_add_msi_cap(dev, 1), -EPERM);
	assert_int_equal(vfpm_dev_add_msix_cap(dev, 1, MSIX_BAR, 0, PBA_OFF), -EPERM);
	assert_int_equal(vfpm_dev_add_pcie_cap(dev), -EPERM);
	assert_int_equal(vfpm_dev_add_ext_cap(dev, 3, 1, body, sizeof(body)), -EPERM);
	assert_int_equal(vfpm_dev_add_ioeventfd(dev, MSIX_BAR, 0x1800, 4), -EPERM);
	assert_memory_equal(before, dev->cfg.data, sizeof(before));
	assert_true(dev->has_intx);
	assert_int_equal(dev->bars[0].size, 0);
	device_destroy(dev);
}

/* --- MSI-X delivery (docs/protocol.md) --- */

static uint64_t count(int efd)
{
	uint64_t n = 0;
	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static void cfg_w16(struct vfpm_device *dev, unsigned off, uint16_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, true), 0);
}

static void msix_on(struct vfpm_device *dev, bool maskall)
{
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
	cfg_w16(dev, dev->msix_cap + PCI_MSIX_FLAGS,
		PCI_MSIX_FLAGS_ENABLE | (maskall ? PCI_MSIX_FLAGS_MASKALL : 0));
}

static int set_fd(struct vfpm_device *dev, unsigned v, int fd)
{
	int fds[1] = { fd };
	int rc = irq_set(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
			 VFU_IRQ_MSIX, v, 1, NULL, fds, fd >= 0 ? 1 : 0);
	return rc;
}

static int mask(struct vfpm_device *dev, unsigned v, bool on)
{
	return irq_set(dev,
		       VFIO_IRQ_SET_DATA_NONE |
			       (on ? VFIO_IRQ_SET_ACTION_MASK : VFIO_IRQ_SET_ACTION_UNMASK),
		       VFU_IRQ_MSIX, v, 1, NULL, NULL, 0);
}

static uint64_t pba(struct vfpm_device *dev)
{
	uint64_t p = 0;
	assert_int_equal(irq_msix_rw(dev, PBA_OFF, &p, 8, false), 0);
	return p;
}

/* A device with MSI-X enabled (function mask as given) and an eventfd on
 * vector vec; *efd is the test's end of it. */
static struct vfpm_device *msix_dev(bool maskall, unsigned vec, int *efd)
{
	struct vfpm_device *dev = make();
	msix_on(dev, maskall);
	*efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(*efd >= 0);
	assert_int_equal(set_fd(dev, vec, dup(*efd)), 0);
	return dev;
}

static void msix_reset_mask_bits_do_not_hold_back_a_table_emulating_client(void **state)
{
	(void)state;
	int efd;
	struct vfpm_device *dev = msix_dev(false, 1, &efd);
	/* the table's mask bits are set from reset, the client never wrote it */
	uint32_t ctrl = 0;
	assert_int_equal(irq_msix_rw(dev, 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, &ctrl, 4, false), 0);
	assert_int_equal(ctrl, PCI_MSIX_ENTRY_CTRL_MASKBIT);
	assert_int_equal(vfpm_dev_irq(dev, 1), 0);
	assert_int_equal(count(efd), 1);
	assert_int_equal(pba(dev), 0);
	device_destroy(dev);
	close(efd);
}

static void msix_set_irqs_mask_pends_and_unmask_delivers_once(void **state)
{
	(void)state;
	int efd;
	struct vfpm_device *dev = msix_dev(false, 0, &efd);
	assert_int_equal(mask(dev, 0, true), 0);
	assert_int_equal(vfpm_dev_irq(dev, 0), -EAGAIN);
	assert_int_equal(vfpm_dev_irq(dev, 0), -EAGAIN);
	assert_int_equal(count(efd), 0);
	assert_int_equal(pba(dev), 1);
	assert_int_equal(mask(dev, 0, false), 0);
	assert_int_equal(count(efd), 1);
	assert_int_equal(pba(dev), 0);
	assert_int_equal(mask(dev, 0, false), 0);
	assert_int_equal(count(efd), 0);
	/* the client's mask left the table alone */
	uint32_t ctrl = 0;
	assert_int_equal(irq_msix_rw(dev, PCI_MSIX_ENTRY_VECTOR_CTRL, &ctrl, 4, false), 0);
	assert_int_equal(ctrl, PCI_MSIX_ENTRY_CTRL_MASKBIT);
	device_destroy(dev);
	close(efd);
}

static void msix_table_mask_bits_count_once_the_client_writes_the_table(void **state)
{
	(void)state;
	int efd;
	struct vfpm_device *dev = msix_dev(false, 2, &efd);
	uint32_t addr = 0xfee00000;
	assert_int_equal(irq_msix_rw(dev, 2 * 16, &addr, 4, true), 0);   /* programs entry 2 */
	assert_int_equal(vfpm_dev_irq(dev, 2), -EAGAIN);
	assert_int_equal(count(efd), 0);
	assert_int_equal(pba(dev), 1u << 2);
	uint32_t ctrl = 0;
	assert_int_equal(irq_msix_rw(dev, 2 * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, &ctrl, 4, true), 0);
	assert_int_equal(count(efd), 1);
	assert_int_equal(pba(dev), 0);
	/* a reset puts the table back to masked and no longer written */
	pthread_mutex_lock(&dev->req_lock);
	device_reset(dev, "test", false);
	pthread_mutex_unlock(&dev->req_lock);
	msix_on(dev, false);
	assert_int_equal(vfpm_dev_irq(dev, 2), 0);
	assert_int_equal(count(efd), 1);
	device_destroy(dev);
	close(efd);
}

static void msix_function_mask_and_missing_eventfd_pend_until_released(void **state)
{
	(void)state;
	int efd;
	struct vfpm_device *dev = msix_dev(true, 3, &efd);
	assert_int_equal(vfpm_dev_irq(dev, 3), -EAGAIN);
	cfg_w16(dev, dev->msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE);
	assert_int_equal(count(efd), 1);
	/* no eventfd: pending, delivered when one is set */
	assert_int_equal(set_fd(dev, 3, -1), 0);
	assert_int_equal(vfpm_dev_irq(dev, 3), -EAGAIN);
	assert_int_equal(pba(dev), 1u << 3);
	assert_int_equal(set_fd(dev, 3, dup(efd)), 0);
	assert_int_equal(count(efd), 1);
	assert_int_equal(pba(dev), 0);
	/* MSI-X disabled: the model's interrupt goes to INTx instead */
	cfg_w16(dev, dev->msix_cap + PCI_MSIX_FLAGS, 0);
	assert_int_equal(vfpm_dev_irq(dev, 3), -ENODEV);   /* no INTx eventfd */
	assert_int_equal(count(efd), 0);
	device_destroy(dev);
	close(efd);
}

/* --- DMA --- */

static void map_window(struct vfpm_device *dev, int fd, uint64_t iova, uint64_t size,
		       uint64_t offset)
{
	struct vfu_dma_map m = { .argsz = sizeof(m),
				 .flags = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
				 .offset = offset, .addr = iova, .size = size };
	assert_int_equal(dma_map(dev, &m, fd), 0);
}

/* vfpm_dev_dma_copy: straight between file-backed windows, as memmove
 * within one; EOPNOTSUPP for message windows and spans (the model copies
 * through a buffer then), EFAULT unmapped, EPERM without bus mastering. */
static void dma_copy_between_windows(void **state)
{
	(void)state;
	struct vfpm_device *dev = make();
	int fd = memfd_create("guest", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, 4 * 4096), 0);
	uint8_t *g = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(g != MAP_FAILED);
	map_window(dev, fd, 0x10000, 2 * 4096, 0);        /* file pages 0-1 */
	map_window(dev, fd, 0x20000, 2 * 4096, 2 * 4096); /* file pages 2-3 */
	map_window(dev, -1, 0x30000, 4096, 0);            /* messages */
	for (int i = 0; i < 4096; i++)
		g[i] = (uint8_t)(i * 7);

	assert_int_equal(vfpm_dev_dma_copy(dev, 0x20000, 0x10000, 4096), -EPERM);
	pthread_mutex_lock(&dev->req_lock);
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MASTER);
	pthread_mutex_unlock(&dev->req_lock);

	/* window to window */
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x20000 + 100, 0x10000, 4096), 0);
	assert_memory_equal(g + 2 * 4096 + 100, g, 4096);
	/* overlapping within one window: memmove */
	uint8_t want[4096];
	memcpy(want, g, sizeof(want));
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x10000 + 10, 0x10000, 4096), 0);
	assert_memory_equal(g + 10, want, 4096);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x10000, 0x10000, 0), 0);

	/* a message window, a span over two windows, unmapped */
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x30000, 0x10000, 16), -EOPNOTSUPP);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x10000, 0x30000, 16), -EOPNOTSUPP);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x20000, 0x10000 + 4096, 8192), -EOPNOTSUPP);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x50000, 0x10000, 16), -EFAULT);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x10000, 0x50000, 16), -EFAULT);
	assert_int_equal(vfpm_dev_dma_copy(dev, 0x10000, UINT64_MAX - 4, 16), -EFAULT);

	munmap(g, 4 * 4096);
	close(fd);
	device_destroy(dev);
}

/* --- FLR --- */

static void flr_write_keeps_config_space_and_reads_back_zero(void **state)
{
	(void)state;
	struct vfpm_device *dev = make();
	pthread_mutex_lock(&dev->req_lock);
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	uint8_t line = 0x0b;
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, PCI_INTERRUPT_LINE, &line, 1, true), 0);
	uint16_t devctl = PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_RELAX_EN;
	cfg_w16(dev, dev->pcie_cap + PCI_EXP_DEVCTL, devctl);
	pthread_mutex_unlock(&dev->req_lock);
	/* saved and restored around the reset, as pci_try_reset_function */
	assert_int_equal(pci_cfg_get16(&dev->cfg, PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(pci_cfg_get8(&dev->cfg, PCI_INTERRUPT_LINE), 0x0b);
	assert_int_equal(pci_cfg_get16(&dev->cfg, dev->pcie_cap + PCI_EXP_DEVCTL) &
				 PCI_EXP_DEVCTL_RELAX_EN,
			 PCI_EXP_DEVCTL_RELAX_EN);
	assert_int_equal(pci_cfg_get16(&dev->cfg, dev->pcie_cap + PCI_EXP_DEVCTL) &
				 PCI_EXP_DEVCTL_BCR_FLR,
			 0);
	device_destroy(dev);
}

/* --- a model that refuses to suspend --- */

static void refused_suspend_keeps_the_device_active_and_counts_the_error(void **state)
{
	(void)state;
	struct fake_clock clk;
	fake_clock_init(&clk);
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create_manual(&wq, &clk.clock), 0);
	struct vfpm_opts opts = { 0 };
	struct vfpm_device *dev = NULL;
	assert_int_equal(device_create(&probe_model, "probe", &opts, wq, -1, &dev), 0);
	/* the first idle suspend is accepted; then refuse */
	assert_int_equal(rpm_wq_step(wq), 1);
	assert_int_equal(rpm_status(&dev->pm.rpm), RPM_SUSPENDED);
	g_probe.refuse = -EBUSY;
	assert_int_equal(pm_request_begin(dev), 0);   /* resumes */
	unsigned q = g_probe.quiesces, r = g_probe.resumes;
	pm_request_end(dev);                          /* idles: the suspend is refused */
	assert_int_equal(rpm_wq_step(wq), 1);
	assert_int_equal(dev->pm.rpm.suspend_errors, 1);
	assert_int_equal(rpm_status(&dev->pm.rpm), RPM_ACTIVE);
	assert_int_equal(dev->pm.power_state, VFPM_D0);
	assert_false(dev->pm.model_parked);
	/* the quiesce was undone by resume() */
	assert_int_equal(g_probe.quiesces, q + 1);
	assert_int_equal(g_probe.resumes, r + 1);
	/* not retried by itself: the next idle does */
	assert_int_equal(rpm_wq_step(wq), 0);
	/* accepted again, the next idle suspends */
	g_probe.refuse = 0;
	assert_int_equal(pm_request_begin(dev), 0);
	pm_request_end(dev);
	assert_int_equal(rpm_wq_step(wq), 1);
	assert_int_equal(rpm_status(&dev->pm.rpm), RPM_SUSPENDED);
	assert_int_equal(dev->pm.power_state, VFPM_D3HOT);
	device_destroy(dev);
	rpm_wq_destroy(wq);
}

static void refused_suspend_keeps_a_pmcsr_d3hot_in_d0(void **state)
{
	(void)state;
	struct vfpm_opts opts = { 0 };
	struct vfpm_device *dev = NULL;
	assert_int_equal(opts_parse("pm_delays=none", &opts), 0);   /* no real 10 ms sleep */
	assert_int_equal(device_create(&probe_model, "probe", &opts, NULL, -1, &dev), 0);
	g_probe.refuse = -EIO;
	cfg_w16(dev, dev->pm_cap + PCI_PM_CTRL, 3);   /* D3hot */
	assert_int_equal(dev->pm.power_state, VFPM_D0);
	assert_int_equal(pci_cfg_get16(&dev->cfg, dev->pm_cap + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK,
			 0);
	assert_int_equal(g_probe.resumes, 1);   /* the quiesce undone */
	g_probe.refuse = 0;
	cfg_w16(dev, dev->pm_cap + PCI_PM_CTRL, 3);
	assert_int_equal(dev->pm.power_state, VFPM_D3HOT);
	assert_int_equal(g_probe.suspends, 1);
	device_destroy(dev);
}

/* VF geometry comes from the model without creating a device: a PF with
 * total_vfs costs one create() (its own), its SR-IOV capability's VF BARs
 * are the model's vf_bars table, a model without the table cannot be a PF,
 * and a VF that does not match the table is refused. */
static unsigned g_creates;
static bool g_vf_bar_wrong;

static int vfmodel_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
			  const struct vfpm_model_ops **ops)
{
	static const struct vfpm_model_ops ops_ = { .size = sizeof(ops_) };
	g_creates++;
	int rc = vfpm_dev_add_bar(dev, 0, vfpm_dev_is_vf(dev) && g_vf_bar_wrong ? 8192 : 4096, 0);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, 2, 1 << 16, VFPM_BAR_64 | VFPM_BAR_PREFETCH);
	*priv = NULL;
	*ops = &ops_;
	return rc;
}

static const struct vfpm_vf_bar vfmodel_bars[6] = {
	[0] = { 4096, 0 },
	[2] = { 1 << 16, VFPM_BAR_64 | VFPM_BAR_PREFETCH },
};
static const struct vfpm_model vfmodel = { .size = sizeof(struct vfpm_model),
					   .name = "vfm",
					   .create = vfmodel_create,
					   .vf_bars = vfmodel_bars };
static const struct vfpm_model vfmodel_no_table = { .size = sizeof(struct vfpm_model),
						    .name = "vfn",
						    .create = vfmodel_create };

static void vf_geometry_comes_from_the_model_without_creating_a_device(void **state)
{
	(void)state;
	struct vfpm_opts opts;
	struct vfpm_device *pf = NULL, *vf = NULL;
	g_creates = 0;
	assert_int_equal(opts_parse("total_vfs=4", &opts), 0);
	assert_int_equal(device_create(&vfmodel, "pf", &opts, NULL, -1, &pf), 0);
	assert_int_equal(g_creates, 1);
	assert_true(pf->sriov_cap >= PCI_CFG_SPACE_SIZE);
	/* VF BAR0: 4 KiB, 32-bit; VF BAR2: 64 KiB, 64-bit prefetchable */
	unsigned bar = pf->sriov_cap + PCI_SRIOV_BAR;
	uint32_t ones = 0xffffffffu, v = 0;
	struct pci_effects fx;
	assert_int_equal(pci_cfg_write(&pf->cfg, bar, &ones, 4, &fx), 0);
	assert_int_equal(pci_cfg_read(&pf->cfg, bar, &v, 4), 0);
	assert_int_equal(v, 0xfffff000u);
	assert_int_equal(pci_cfg_write(&pf->cfg, bar + 8, &ones, 4, &fx), 0);
	assert_int_equal(pci_cfg_read(&pf->cfg, bar + 8, &v, 4), 0);
	assert_int_equal(v, 0xffff0000u | PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(pci_cfg_read(&pf->cfg, bar + 16, &v, 4), 0);
	assert_int_equal(v, 0);

	/* a VF made as the table says is created; one that differs is not */
	assert_int_equal(device_create_vf(pf, 0, NULL, &vf), 0);
	assert_int_equal(g_creates, 2);
	device_destroy(vf);
	g_vf_bar_wrong = true;
	vf = NULL;
	assert_int_equal(device_create_vf(pf, 1, NULL, &vf), -EINVAL);
	assert_null(vf);
	g_vf_bar_wrong = false;
	device_destroy(pf);

	/* no table: not a PF */
	assert_int_equal(opts_parse("total_vfs=2", &opts), 0);
	pf = NULL;
	assert_int_equal(device_create(&vfmodel_no_table, "pf2", &opts, NULL, -1, &pf), -EOPNOTSUPP);
	assert_null(pf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(setup_calls_outside_create_return_eperm),
		cmocka_unit_test(dma_copy_between_windows),
		cmocka_unit_test(msix_reset_mask_bits_do_not_hold_back_a_table_emulating_client),
		cmocka_unit_test(msix_set_irqs_mask_pends_and_unmask_delivers_once),
		cmocka_unit_test(msix_table_mask_bits_count_once_the_client_writes_the_table),
		cmocka_unit_test(msix_function_mask_and_missing_eventfd_pend_until_released),
		cmocka_unit_test(flr_write_keeps_config_space_and_reads_back_zero),
		cmocka_unit_test(refused_suspend_keeps_the_device_active_and_counts_the_error),
		cmocka_unit_test(refused_suspend_keeps_a_pmcsr_d3hot_in_d0),
		cmocka_unit_test(vf_geometry_comes_from_the_model_without_creating_a_device),
	};
	return cmocka_run_group_tests_name("core", tests, NULL, NULL);
}
