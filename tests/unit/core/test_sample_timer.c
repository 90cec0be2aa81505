/* samples/timer.c in process: its MSI fires each period while it runs,
 * and once the guest puts it in D3hot its thread makes no wakeup and no
 * interrupt is raised (the sample's claim: suspended costs nothing); D0
 * (NoSoftRst-) resets it, and it runs again once re-enabled. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

static void cfg_w16(struct vfpm_device *dev, unsigned off, uint16_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, true), 0);
}

static int bar_rw32(struct vfpm_device *dev, unsigned off, uint32_t *v, bool write)
{
	return device_region_rw(dev, 0, off, v, 4, write);
}

/* Blocks until the eventfd has counted at least n interrupts in all. */
static void wait_irqs(int efd, uint64_t n)
{
	uint64_t total = 0, c;
	struct pollfd p = { .fd = efd, .events = POLLIN };
	while (total < n) {
		assert_int_equal(poll(&p, 1, 10000), 1);
		if (read(efd, &c, sizeof(c)) == sizeof(c))
			total += c;
	}
}

static void timer_interrupts_stop_in_d3hot(void **state)
{
	struct vfpm_opts opts = { 0 };
	assert_int_equal(opts_parse("period_ms=1", &opts), 0);
	struct vfpm_device *dev = NULL;
	assert_int_equal(device_create(vfpm_model_entry(), "timer", &opts, NULL, -1, &dev), 0);
	opts_free(&opts);
	assert_non_null(dev->msi_cap);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int fds[1] = { efd };
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_w16(dev, dev->msi_cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	assert_int_equal(irq_set(dev, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				 VFU_IRQ_MSI, 0, 1, NULL, fds, 1),
			 0);
	uint32_t v = 1;
	assert_int_equal(bar_rw32(dev, 0x4, &v, true), 0);   /* CTRL: run */
	wait_irqs(efd, 3);
	assert_int_equal(bar_rw32(dev, 0xc, &v, false), 0);
	assert_true(v >= 3);   /* TICKS counts them */

	cfg_w16(dev, dev->pm_cap + PCI_PM_CTRL, 3);   /* D3hot: suspend() parks it */
	assert_int_equal(dev->pm.power_state, VFPM_D3HOT);
	uint64_t c;
	if (read(efd, &c, sizeof(c)) < 0) {
		/* nothing fired between the last wait and the suspend */
	}
	/* 100 periods: no interrupt, no wakeup of the model's thread */
	struct pollfd p = { .fd = efd, .events = POLLIN };
	assert_int_equal(poll(&p, 1, 100), 0);
	assert_int_equal(dev->ops->violations(dev->priv), 0);
	assert_int_equal(bar_rw32(dev, 0xc, &v, false), -EIO);   /* no decode in D3hot */

	cfg_w16(dev, dev->pm_cap + PCI_PM_CTRL, 0);   /* D0, NoSoftRst-: reset */
	assert_int_equal(dev->pm.power_state, VFPM_D0);
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(bar_rw32(dev, 0x4, &v, false), 0);
	assert_int_equal(v, 0);   /* CTRL reset */
	assert_int_equal(bar_rw32(dev, 0xc, &v, false), 0);
	assert_int_equal(v, 0);   /* TICKS reset */
	cfg_w16(dev, dev->msi_cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	v = 1;
	assert_int_equal(bar_rw32(dev, 0x4, &v, true), 0);
	wait_irqs(efd, 2);
	device_destroy(dev);
	close(efd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timer_interrupts_stop_in_d3hot),
	};
	return cmocka_run_group_tests_name("sample-timer", tests, NULL, NULL);
}
