/* Errors, not surprises: every row of the errors table of
 * include/vfpm/device.h (and docs/device-api.md, "Errors") and the
 * embedding API's argument checks. Each refused set-up call runs inside a
 * real create() and is checked to have changed nothing: the whole config
 * space (bytes, write masks, BAR and capability bookkeeping) and the
 * device's own record of BARs, capabilities, vectors and ioeventfds are
 * compared before and after. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "vfpm/server.h"

/* --- what a refused call must leave alone --- */

struct snap {
	struct pci_cfg cfg;
	struct core_bar bars[PCI_NUM_BARS];
	bool has_intx;
	unsigned pm_cap, msi_cap, msix_cap, pcie_cap, msi_nvec, msix_nvec, msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	unsigned nioeventfds;
	uint32_t msi_pending;
	uint64_t pba0;
};

static struct snap g_before, g_after;

static void snap_take(struct vfpm_device *dev, struct snap *s)
{
	memset(s, 0, sizeof(*s));
	memcpy(&s->cfg, &dev->cfg, sizeof(s->cfg));
	memcpy(s->bars, dev->bars, sizeof(s->bars));
	s->has_intx = dev->has_intx;
	s->pm_cap = dev->pm_cap;
	s->msi_cap = dev->msi_cap;
	s->msix_cap = dev->msix_cap;
	s->pcie_cap = dev->pcie_cap;
	s->msi_nvec = dev->msi_nvec;
	s->msix_nvec = dev->msix_nvec;
	s->msix_bar = dev->msix_bar;
	s->msix_table_off = dev->msix_table_off;
	s->msix_pba_off = dev->msix_pba_off;
	s->nioeventfds = dev->nioeventfds;
	s->msi_pending = dev->msi_pending;
	s->pba0 = dev->msix_pba ? dev->msix_pba[0] : 0;
}

static void snap_same(struct vfpm_device *dev, const char *what)
{
	snap_take(dev, &g_after);
	if (memcmp(g_before.cfg.data, g_after.cfg.data, sizeof(g_before.cfg.data))) {
		for (unsigned i = 0; i < VPCI_CFG_SIZE; i++)
			if (g_before.cfg.data[i] != g_after.cfg.data[i])
				print_error("%s: config byte 0x%x changed: 0x%02x -> 0x%02x\n", what, i,
					    g_before.cfg.data[i], g_after.cfg.data[i]);
		fail_msg("%s changed config space", what);
	}
	if (memcmp(&g_before, &g_after, sizeof(g_before)))
		fail_msg("%s changed the device (masks, BARs, capabilities or vectors)", what);
}

/* call must return want and change nothing */
#define REFUSED(dev, want, call)                                   \
	do {                                                       \
		snap_take((dev), &g_before);                       \
		assert_int_equal((call), (want));                  \
		snap_same((dev), #call);                           \
	} while (0)

/* --- a model whose create() runs the test's scenario --- */

static void (*g_scenario)(struct vfpm_device *dev);
static unsigned g_scenarios_run;

static const struct vfpm_model_ops e_ops = { .size = sizeof(e_ops) };

static int e_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		    const struct vfpm_model_ops **ops)
{
	if (g_scenario)
		g_scenario(dev);
	g_scenarios_run++;
	*priv = NULL;
	*ops = &e_ops;
	return 0;
}

static const struct vfpm_model e_model = { .size = sizeof(e_model), .name = "e",
					   .create = e_create };

static struct vfpm_device *make(void (*scenario)(struct vfpm_device *dev))
{
	struct vfpm_opts opts = { 0 };
	struct vfpm_device *dev = NULL;
	g_scenario = scenario;
	g_scenarios_run = 0;
	assert_int_equal(device_create(&e_model, "e", &opts, NULL, -1, &dev), 0);
	assert_int_equal(g_scenarios_run, 1);
	assert_non_null(dev);
	return dev;
}

static void run(void (*scenario)(struct vfpm_device *dev))
{
	device_destroy(make(scenario));
}

/* --- no device: -EINVAL (false / NULL / nothing for the calls that
 * return no errno) --- */

static void null_device(void **state)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36 };
	static const uint8_t body[4];
	uint8_t buf[4] = { 0 };
	assert_int_equal(vfpm_dev_set_ids(NULL, &ids), -EINVAL);
	assert_int_equal(vfpm_dev_add_bar(NULL, 0, 4096, 0), -EINVAL);
	assert_int_equal(vfpm_dev_set_intx(NULL, true), -EINVAL);
	assert_int_equal(vfpm_dev_add_pm_cap(NULL, false, false, false), -EINVAL);
	assert_int_equal(vfpm_dev_add_msi_cap(NULL, 1), -EINVAL);
	assert_int_equal(vfpm_dev_add_msix_cap(NULL, 1, 0, 0, 0x800), -EINVAL);
	assert_int_equal(vfpm_dev_add_pcie_cap(NULL), -EINVAL);
	assert_int_equal(vfpm_dev_add_ext_cap(NULL, 3, 1, body, sizeof(body)), -EINVAL);
	assert_int_equal(vfpm_dev_add_ioeventfd(NULL, 0, 0, 4), -EINVAL);
	assert_false(vfpm_dev_is_vf(NULL));
	assert_int_equal(vfpm_dev_irq(NULL, 0), -EINVAL);
	vfpm_dev_intx(NULL, true);   /* ignored */
	assert_int_equal(vfpm_dev_dma_read(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(vfpm_dev_dma_write(NULL, 0, buf, sizeof(buf)), -EINVAL);
	assert_null(vfpm_dev_bar_mem(NULL, 0));
	assert_false(vfpm_dev_mem_decode(NULL));
	assert_null(vfpm_dev_name(NULL));
	vfpm_dev_log(NULL, VFPM_LOG_DEBUG, "ignored: below the default verbosity");
}

/* --- -EPERM: a set-up call outside create() --- */

static void full_setup(struct vfpm_device *dev)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10fe,
						 .class_code = 0xff0000 };
	assert_int_equal(vfpm_dev_set_ids(dev, &ids), 0);
	assert_int_equal(vfpm_dev_set_intx(dev, true), 0);
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 8192, 0), 0);
	assert_int_equal(vfpm_dev_add_bar(dev, 2, 4096, VFPM_BAR_64 | VFPM_BAR_MEMFD), 0);
	assert_int_equal(vfpm_dev_add_pm_cap(dev, false, false, true), 0);
	assert_int_equal(vfpm_dev_add_msi_cap(dev, 4), 0);
	assert_int_equal(vfpm_dev_add_msix_cap(dev, 4, 0, 0x1000, 0x1800), 0);
	assert_int_equal(vfpm_dev_add_pcie_cap(dev), 0);
	assert_true(vfpm_dev_add_ioeventfd(dev, 0, 0x10, 4) >= 0);
}

static void setup_outside_create_is_eperm(void **state)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x8086, .device = 1 };
	static const uint8_t body[4];
	struct vfpm_device *dev = make(full_setup);
	REFUSED(dev, -EPERM, vfpm_dev_set_ids(dev, &ids));
	REFUSED(dev, -EPERM, vfpm_dev_set_intx(dev, false));
	REFUSED(dev, -EPERM, vfpm_dev_add_bar(dev, 4, 4096, 0));
	REFUSED(dev, -EPERM, vfpm_dev_add_pm_cap(dev, true, true, false));
	REFUSED(dev, -EPERM, vfpm_dev_add_msi_cap(dev, 1));
	REFUSED(dev, -EPERM, vfpm_dev_add_msix_cap(dev, 1, 2, 0, 0x800));
	REFUSED(dev, -EPERM, vfpm_dev_add_pcie_cap(dev));
	REFUSED(dev, -EPERM, vfpm_dev_add_ext_cap(dev, 3, 1, body, sizeof(body)));
	REFUSED(dev, -EPERM, vfpm_dev_add_ioeventfd(dev, 0, 0x20, 4));
	/* the context is checked before the arguments */
	REFUSED(dev, -EPERM, vfpm_dev_set_ids(dev, NULL));
	REFUSED(dev, -EPERM, vfpm_dev_add_bar(dev, 9, 3, 0xff));
	device_destroy(dev);
}

/* --- vfpm_dev_set_ids --- */

static void ids_rows(struct vfpm_device *dev)
{
	const struct vfpm_pci_ids ffff = { .vendor = 0xffff, .device = 1 };
	const struct vfpm_pci_ids class25 = { .vendor = 0x1b36, .class_code = 0x1000000 };
	const struct vfpm_pci_ids good = { .vendor = 0x1b36, .device = 0x10fe, .revision = 7,
					   .subsys_vendor = 0x1af4, .subsys_id = 0x1100,
					   .class_code = 0x020000 };
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 4096, 0), 0);
	assert_int_equal(vfpm_dev_add_pm_cap(dev, false, false, false), 0);
	REFUSED(dev, -EINVAL, vfpm_dev_set_ids(dev, NULL));
	REFUSED(dev, -EINVAL, vfpm_dev_set_ids(dev, &ffff));
	REFUSED(dev, -EINVAL, vfpm_dev_set_ids(dev, &class25));
	/* after BARs and capabilities: the ID registers change, nothing else */
	snap_take(dev, &g_before);
	assert_int_equal(vfpm_dev_set_ids(dev, &good), 0);
	assert_int_equal(pci_cfg_get32(&dev->cfg, PCI_VENDOR_ID), 0x10fe1b36);
	assert_int_equal(pci_cfg_get32(&dev->cfg, PCI_CLASS_REVISION), 0x02000007);
	assert_int_equal(pci_cfg_get32(&dev->cfg, PCI_SUBSYSTEM_VENDOR_ID), 0x11001af4);
	const unsigned changed[][2] = { { PCI_VENDOR_ID, 4 }, { PCI_CLASS_REVISION, 4 },
				       { PCI_SUBSYSTEM_VENDOR_ID, 4 } };
	for (unsigned i = 0; i < 3; i++)
		memcpy(&g_before.cfg.data[changed[i][0]], &dev->cfg.data[changed[i][0]],
		       changed[i][1]);
	snap_same(dev, "vfpm_dev_set_ids after add_bar and add_pm_cap (beyond the IDs)");
	assert_int_equal(pci_cfg_find_cap(&dev->cfg, PCI_CAP_ID_PM), dev->pm_cap);
}

static void set_ids_rows(void **state)
{
	run(ids_rows);
}

/* --- vfpm_dev_add_bar --- */

static void bar_rows(struct vfpm_device *dev)
{
	/* index, flags */
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 6, 4096, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, UINT32_MAX, 4096, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 4096, 0x10));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 16, VFPM_BAR_IO | VFPM_BAR_64));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 16, VFPM_BAR_IO | VFPM_BAR_PREFETCH));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 4096, VFPM_BAR_IO | VFPM_BAR_MEMFD));
	/* sizes: a power of two within each kind's bounds */
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 0, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 3000, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 8, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 1ull << 32, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 2, VFPM_BAR_IO));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 512, VFPM_BAR_IO));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 2048, VFPM_BAR_MEMFD));
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 0, 1ull << 41, VFPM_BAR_64 | VFPM_BAR_MEMFD));
	/* a 64-bit BAR needs idx + 1 */
	REFUSED(dev, -EINVAL, vfpm_dev_add_bar(dev, 5, 4096, VFPM_BAR_64));
	/* the largest of each kind works */
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 1ull << 31, 0), 0);
	assert_int_equal(vfpm_dev_add_bar(dev, 1, 256, VFPM_BAR_IO), 0);
	/* conflicts with what is declared: -EEXIST */
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 0, 4096, 0));
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 0, 4096, VFPM_BAR_64));
	assert_int_equal(vfpm_dev_add_bar(dev, 2, 4096, VFPM_BAR_64 | VFPM_BAR_MEMFD), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 3, 4096, 0));   /* BAR2's upper half */
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 3, 4096, VFPM_BAR_MEMFD));
	assert_int_equal(vfpm_dev_add_bar(dev, 5, 4096, 0), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 4, 4096, VFPM_BAR_64));   /* over BAR5 */
	REFUSED(dev, -EEXIST, vfpm_dev_add_bar(dev, 1, 4096, VFPM_BAR_64));   /* over BAR1 */
	assert_int_equal(vfpm_dev_add_bar(dev, 4, 4096, VFPM_BAR_PREFETCH), 0);
	assert_non_null(vfpm_dev_bar_mem(dev, 2));
}

static void add_bar_rows(void **state)
{
	run(bar_rows);
}

/* --- capabilities: once each, arguments, space --- */

static void cap_rows(struct vfpm_device *dev)
{
	assert_int_equal(vfpm_dev_add_pm_cap(dev, true, false, false), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_pm_cap(dev, true, false, false));
	REFUSED(dev, -EEXIST, vfpm_dev_add_pm_cap(dev, false, true, true));

	REFUSED(dev, -EINVAL, vfpm_dev_add_msi_cap(dev, 0));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msi_cap(dev, 3));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msi_cap(dev, 64));
	assert_int_equal(vfpm_dev_add_msi_cap(dev, 32), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_msi_cap(dev, 32));
	REFUSED(dev, -EEXIST, vfpm_dev_add_msi_cap(dev, 1));

	assert_int_equal(vfpm_dev_add_pcie_cap(dev), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_pcie_cap(dev));

	/* every standard capability fits: the list ends where it should */
	assert_int_equal(pci_cfg_find_cap(&dev->cfg, PCI_CAP_ID_PM), dev->pm_cap);
	assert_int_equal(pci_cfg_find_cap(&dev->cfg, PCI_CAP_ID_MSI), dev->msi_cap);
	assert_int_equal(pci_cfg_find_cap(&dev->cfg, PCI_CAP_ID_EXP), dev->pcie_cap);
}

static void capability_rows(void **state)
{
	run(cap_rows);
}

static void msix_rows(struct vfpm_device *dev)
{
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 4096, 0), 0);
	assert_int_equal(vfpm_dev_add_bar(dev, 1, 16, VFPM_BAR_IO), 0);
	assert_int_equal(vfpm_dev_add_bar(dev, 2, 8192, VFPM_BAR_MEMFD), 0);
	assert_true(vfpm_dev_add_ioeventfd(dev, 0, 0x100, 4) >= 0);
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 0, 0, 0, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 2049, 0, 0, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 6, 0, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 3, 0, 0x800));   /* no BAR3 */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 1, 1, 0, 8));       /* I/O BAR */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x204, 0x800));   /* misaligned */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x200, 0x804));
	/* table or PBA (partly) outside the BAR */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 4096 - 48, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x2000, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, UINT32_MAX & ~7u, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x200, 4096));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 2048, 0, 0, 0x800));   /* 32 KiB table */
	/* table and PBA overlap */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x200, 0x230));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x200, 0x200));
	/* the table over a declared ioeventfd */
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 16, 0, 0x100, 0x800));
	REFUSED(dev, -EINVAL, vfpm_dev_add_msix_cap(dev, 4, 0, 0x200, 0x100));
	/* back to back works, in a memfd BAR too */
	assert_int_equal(vfpm_dev_add_msix_cap(dev, 4, 2, 0x1000, 0x1040), 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_msix_cap(dev, 4, 2, 0x1000, 0x1040));
	REFUSED(dev, -EEXIST, vfpm_dev_add_msix_cap(dev, 1, 0, 0x200, 0x800));
}

static void msix_cap_rows(void **state)
{
	run(msix_rows);
}

#define EXT_SPACE (VPCI_CFG_SIZE - 0x100)

static void ext_rows(struct vfpm_device *dev)
{
	static uint8_t big[EXT_SPACE];
	static const uint8_t body[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	REFUSED(dev, -EINVAL, vfpm_dev_add_ext_cap(dev, 3, 1, NULL, 8));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ext_cap(dev, 3, 16, body, sizeof(body)));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ext_cap(dev, 0, 1, body, sizeof(body)));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ext_cap(dev, PCI_EXT_CAP_ID_SRIOV, 1, body, 8));
	/* does not fit in extended config space */
	REFUSED(dev, -ENOSPC, vfpm_dev_add_ext_cap(dev, 3, 1, big, SIZE_MAX));
	REFUSED(dev, -ENOSPC, vfpm_dev_add_ext_cap(dev, 3, 1, big, EXT_SPACE - 3));
	/* a header-only capability (NULL body, length 0) is fine */
	assert_int_equal(vfpm_dev_add_ext_cap(dev, 0x0b, 1, NULL, 0), 0);
	REFUSED(dev, -ENOSPC, vfpm_dev_add_ext_cap(dev, 3, 1, big, EXT_SPACE - 4));
	/* fill the rest exactly: then nothing more fits */
	assert_int_equal(vfpm_dev_add_ext_cap(dev, 3, 1, big, EXT_SPACE - 8), 0);
	REFUSED(dev, -ENOSPC, vfpm_dev_add_ext_cap(dev, 3, 1, NULL, 0));
	assert_int_equal(pci_cfg_find_ext_cap(&dev->cfg, 3), 0x104);
}

static void ext_cap_rows(void **state)
{
	run(ext_rows);
}

static void ioeventfd_rows(struct vfpm_device *dev)
{
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 4096, 0), 0);
	assert_int_equal(vfpm_dev_add_msix_cap(dev, 4, 0, 0x800, 0xc00), 0);
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 6, 0, 4));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 1, 0, 4));   /* no BAR1 */
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 0, 3));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 0, 16));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 4096, 4));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 4094, 4));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, UINT64_MAX - 1, 4));
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 0x83c, 8));   /* MSI-X table */
	REFUSED(dev, -EINVAL, vfpm_dev_add_ioeventfd(dev, 0, 0xc00, 1));   /* PBA */
	assert_true(vfpm_dev_add_ioeventfd(dev, 0, 0x0, 8) >= 0);
	REFUSED(dev, -EEXIST, vfpm_dev_add_ioeventfd(dev, 0, 0x4, 4));
	REFUSED(dev, -EEXIST, vfpm_dev_add_ioeventfd(dev, 0, 0x0, 1));
	for (unsigned i = 1; i < CORE_MAX_IOEVENTFDS; i++)
		assert_true(vfpm_dev_add_ioeventfd(dev, 0, 0x10 * i, 4) >= 0);
	REFUSED(dev, -ENOSPC, vfpm_dev_add_ioeventfd(dev, 0, 0x200, 4));
}

static void add_ioeventfd_rows(void **state)
{
	run(ioeventfd_rows);
}

/* --- runtime calls --- */

static void cfg_w16(struct vfpm_device *dev, unsigned off, uint16_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, true), 0);
}

static void none_setup(struct vfpm_device *dev)
{
	assert_int_equal(vfpm_dev_add_bar(dev, 0, 4096, 0), 0);
}

static void intx_only(struct vfpm_device *dev)
{
	assert_int_equal(vfpm_dev_set_intx(dev, true), 0);
}

static void irq_vector_rows(void **state)
{
	/* no interrupt declared: -ENODEV, whatever the vector */
	struct vfpm_device *dev = make(none_setup);
	REFUSED(dev, -ENODEV, vfpm_dev_irq(dev, 0));
	REFUSED(dev, -ENODEV, vfpm_dev_irq(dev, 7));
	/* INTx on a device without INTx: ignored */
	REFUSED(dev, 0, (vfpm_dev_intx(dev, true), 0));
	device_destroy(dev);

	/* INTx only: vector 0 */
	dev = make(intx_only);
	REFUSED(dev, -EINVAL, vfpm_dev_irq(dev, 1));
	assert_false(dev->intx_level);
	device_destroy(dev);

	/* MSI 4 and MSI-X 4 declared (full_setup) */
	dev = make(full_setup);
	REFUSED(dev, -EINVAL, vfpm_dev_irq(dev, 4));
	REFUSED(dev, -EINVAL, vfpm_dev_irq(dev, UINT32_MAX));
	/* MSI enabled by the client with one vector of the four */
	cfg_w16(dev, dev->msi_cap + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE);
	REFUSED(dev, -EINVAL, vfpm_dev_irq(dev, 1));
	cfg_w16(dev, dev->msi_cap + PCI_MSI_FLAGS, 0);
	/* MSI-X enabled, the whole function masked: the vector pends */
	cfg_w16(dev, dev->msix_cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	REFUSED(dev, -EINVAL, vfpm_dev_irq(dev, 4));
	assert_int_equal(vfpm_dev_irq(dev, 3), -EAGAIN);
	assert_int_equal(dev->msix_pba[0], 1u << 3);
	device_destroy(dev);
}

static void dma_rows(void **state)
{
	struct vfpm_device *dev = make(full_setup);
	uint8_t buf[8] = { 0 };
	REFUSED(dev, -EINVAL, vfpm_dev_dma_read(dev, 0x1000, NULL, 8));
	REFUSED(dev, -EINVAL, vfpm_dev_dma_write(dev, 0x1000, NULL, 8));
	REFUSED(dev, -EFAULT, vfpm_dev_dma_read(dev, UINT64_MAX - 3, buf, 8));
	REFUSED(dev, -EPERM, vfpm_dev_dma_read(dev, 0x1000, buf, 8));   /* bus master off */
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MASTER);
	REFUSED(dev, -EFAULT, vfpm_dev_dma_read(dev, 0x1000, buf, 8));  /* nothing mapped */
	REFUSED(dev, -EFAULT, vfpm_dev_dma_write(dev, 0x1000, buf, 8));
	REFUSED(dev, 0, vfpm_dev_dma_read(dev, 0x1000, NULL, 0));
	device_destroy(dev);
}

static void log_fmt_null(const struct vfpm_device *dev)
{
	/* through a pointer: the format attribute would flag a NULL format */
	void (*logf)(const struct vfpm_device *, enum vfpm_log_level, const char *, ...) = vfpm_dev_log;
	logf(dev, VFPM_LOG_ERR, NULL);
	logf(dev, (enum vfpm_log_level)99, "%s", "level out of range: ignored");
}

static void other_runtime_rows(void **state)
{
	struct vfpm_device *dev = make(full_setup);
	assert_null(vfpm_dev_bar_mem(dev, 6));
	assert_null(vfpm_dev_bar_mem(dev, 0));   /* not memfd-backed */
	assert_null(vfpm_dev_bar_mem(dev, 3));   /* upper half of BAR2 */
	assert_non_null(vfpm_dev_bar_mem(dev, 2));
	assert_string_equal(vfpm_dev_name(dev), "e");
	assert_false(vfpm_dev_is_vf(dev));
	REFUSED(dev, 0, (log_fmt_null(dev), 0));
	device_destroy(dev);
}

static void opts_rows(void **state)
{
	struct vfpm_kv kv[] = { { .key = (char *)"n", .val = (char *)"12" },
				     { .key = (char *)"b", .val = (char *)"maybe" } };
	struct vfpm_opts o = { .kv = kv, .n = 2 };
	uint64_t u = 5;
	bool b = true;
	assert_null(vfpm_opts_get(NULL, "n"));
	assert_null(vfpm_opts_get(&o, NULL));
	assert_string_equal(vfpm_opts_get(&o, "n"), "12");
	assert_int_equal(vfpm_opts_u64(&o, NULL, 1, 0, 100, &u), -EINVAL);
	assert_int_equal(vfpm_opts_u64(&o, "n", 1, 0, 100, NULL), -EINVAL);
	assert_int_equal(vfpm_opts_u64(&o, "n", 1, 100, 0, &u), -EINVAL);
	assert_int_equal(u, 5);   /* untouched by a refused call */
	assert_int_equal(vfpm_opts_u64(&o, "n", 1, 0, 10, &u), -ERANGE);
	assert_int_equal(vfpm_opts_u64(&o, "x", 1, 0, 10, &u), -ENOENT);
	assert_int_equal(u, 1);   /* the default */
	assert_int_equal(vfpm_opts_u64(&o, "n", 1, 0, 100, &u), 0);
	assert_int_equal(u, 12);
	assert_int_equal(vfpm_opts_bool(&o, NULL, false, &b), -EINVAL);
	assert_int_equal(vfpm_opts_bool(&o, "b", false, NULL), -EINVAL);
	assert_true(b);
	assert_int_equal(vfpm_opts_bool(&o, "b", false, &b), -EINVAL);   /* malformed */
	assert_false(b);   /* the default */
	assert_int_equal(vfpm_opts_bool(NULL, "b", true, &b), -ENOENT);
	assert_true(b);
}

/* --- the embedding API's argument and state checks --- */

static void server_rows(void **state)
{
	struct vfpm_server *srv = (struct vfpm_server *)&srv;
	struct {
		struct vfpm_server_opts o;
		int added;
	} newer = { .o = { .size = sizeof(newer) } };
	const struct vfpm_server_opts old = { .size = offsetof(struct vfpm_server_opts, send_ms) };
	const struct vfpm_server_opts loud = { .size = sizeof(loud), .verbosity = 5 };
	const struct vfpm_server_opts mode = { .size = sizeof(mode), .socket_mode = 010000 };
	assert_int_equal(vfpm_server_new(NULL, NULL), -EINVAL);
	assert_int_equal(vfpm_server_new(&newer.o, &srv), -E2BIG);
	assert_null(srv);
	assert_int_equal(vfpm_server_new(&old, &srv), -EINVAL);
	assert_int_equal(vfpm_server_new(&loud, &srv), -EINVAL);
	assert_int_equal(vfpm_server_new(&mode, &srv), -EINVAL);
	assert_int_equal(vfpm_server_add_model(NULL, &e_model), -EINVAL);
	assert_int_equal(vfpm_server_add_device(NULL, "e", NULL), -EINVAL);
	assert_int_equal(vfpm_server_start(NULL), -EINVAL);
	assert_int_equal(vfpm_server_run(NULL), -EINVAL);
	assert_int_equal(vfpm_server_stop(NULL), -EINVAL);
	assert_int_equal(vfpm_server_fd(NULL), -EINVAL);
	assert_null(vfpm_server_model(NULL, 0));
	assert_null(vfpm_server_device_socket(NULL, 0));
	assert_null(vfpm_server_ctl_path(NULL));
	vfpm_server_request_stop(NULL);
	vfpm_server_free(NULL);

	assert_int_equal(vfpm_server_new(NULL, &srv), 0);
	assert_int_equal(vfpm_server_add_model(srv, NULL), -EINVAL);
	static const struct vfpm_model nameless = { .size = sizeof(nameless), .create = e_create };
	assert_int_equal(vfpm_server_add_model(srv, &nameless), -EINVAL);
	assert_int_equal(vfpm_server_add_model(srv, &e_model), 0);
	assert_int_equal(vfpm_server_add_model(srv, &e_model), -EEXIST);
	assert_int_equal(vfpm_server_add_device(srv, NULL, NULL), -EINVAL);
	assert_int_equal(vfpm_server_add_device(srv, "nosuchmodel", "/tmp/x.sock"), -ENOENT);
	assert_null(vfpm_server_device_socket(srv, 0));   /* nothing was added */
	assert_int_equal(vfpm_server_stop(srv), -EPERM);   /* not started */
	assert_true(vfpm_server_fd(srv) >= 0);
	vfpm_server_free(srv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(null_device),
		cmocka_unit_test(setup_outside_create_is_eperm),
		cmocka_unit_test(set_ids_rows),
		cmocka_unit_test(add_bar_rows),
		cmocka_unit_test(capability_rows),
		cmocka_unit_test(msix_cap_rows),
		cmocka_unit_test(ext_cap_rows),
		cmocka_unit_test(add_ioeventfd_rows),
		cmocka_unit_test(irq_vector_rows),
		cmocka_unit_test(dma_rows),
		cmocka_unit_test(other_runtime_rows),
		cmocka_unit_test(opts_rows),
		cmocka_unit_test(server_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
