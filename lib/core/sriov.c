/* SR-IOV: a PF's capability, VF Enable, and the PF power rules.
 *
 * B33: enabling VFs resumes the PF and holds a usage reference on it until
 * the VFs are disabled; the D0 transition and the creation of the VFs
 * happen under the PF's memory_lock, so a PMCSR write racing the enable
 * either lands first (and is overridden to D0) or after (and is refused,
 * B34: set_power_state refuses any state above D0 while sriov_active).
 * B36: VFs are separate devices with their own runtime PM; they are not
 * children of the PF and hold no reference on it.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "core.h"

/* dev->lock held (a config-space hook): the write reports that it touched
 * Control, and the writer acts on it (sriov_sync) once dev->lock drops.
 * The writer acts on the register as it is then, under sriov_lock, so the
 * VFs follow the last VF Enable written whatever order the writers get the
 * lock in, and a control-plane write returns after its VFs exist. */
static void hook_sriov_ctrl(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			    uint32_t old, const struct pci_access *acc)
{
	struct vfpm_device *dev = opaque;
	dev->sriov_ctrl_writes++;
	acc->fx->flags |= PCI_FX_SRIOV_CTRL;
}

int sriov_setup(struct vfpm_device *dev, unsigned total_vfs, struct rpm_wq *wq)
{
	/* The VF BARs of the capability describe what a VF of this model
	 * declares: build one VF, unserved, to learn its layout. */
	dev->sriov_cap = 0;
	struct vfpm_device *probe;
	int rc = device_create_vf(dev, 0, NULL, &probe);
	if (rc)
		return rc;
	struct pci_sriov_desc d = {
		.total_vfs = (uint16_t)total_vfs,
		.initial_vfs = (uint16_t)total_vfs,
		.first_offset = 1,
		.stride = 1,
		.vf_device_id = (uint16_t)(pci_cfg_get16(&dev->cfg, PCI_DEVICE_ID) + 1),
		.supported_pgsz = 0x553,   /* 4K, 8K, 64K, 256K, 1M, 4M as PCIe devices often do */
	};
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		d.vf_bars[i].size = probe->bars[i].size;
		d.vf_bars[i].flags = (probe->bars[i].flags & VFPM_BAR_64 ? PCI_BARF_MEM64 : 0) |
				     (probe->bars[i].flags & VFPM_BAR_PREFETCH ? PCI_BARF_PREFETCH : 0);
		if (probe->bars[i].flags & VFPM_BAR_IO)
			d.vf_bars[i].size = 0;   /* VFs have no I/O BARs */
	}
	device_destroy(probe);
	rc = pci_cap_sriov(&dev->cfg, &d);
	if (rc < 0)
		return rc;
	dev->sriov_cap = (unsigned)rc;
	dev->total_vfs = total_vfs;
	(void)wq;
	return pci_cfg_hook(&dev->cfg, dev->sriov_cap + PCI_SRIOV_CTRL, 2, hook_sriov_ctrl, dev);
}

/* A VF Enable that could not be honoured reads back clear. */
static void clear_vfe(struct vfpm_device *dev)
{
	pthread_mutex_lock(&dev->lock);
	unsigned ctrl = dev->sriov_cap + PCI_SRIOV_CTRL;
	pci_cfg_set16(&dev->cfg, ctrl,
		      pci_cfg_get16(&dev->cfg, ctrl) & (uint16_t)~PCI_SRIOV_CTRL_VFE);
	pthread_mutex_unlock(&dev->lock);
}

/* sriov_lock held; seq: sriov_ctrl_writes when VF Enable was read set */
static int enable_locked(struct vfpm_device *dev, unsigned n, unsigned seq)
{
	if (dev->num_vfs || !n)
		return 0;
	if (!dev->host)
		return -ENODEV;
	/* B33: resume and hold the PF active until the VFs are gone */
	int rc = rpm_resume_and_get(&dev->pm.rpm);
	if (rc)
		return rc;
	pm_trans_begin(dev);
	pm_set_d0_locked(dev, "VF Enable: a PF with VFs stays in D0");
	/* A NoSoftRst- PF coming out of D3hot (runtime-suspended, or put
	 * there by its user) loses its config space on the way to D0, and
	 * the resume or the D0 transition restores a snapshot taken before
	 * this VF Enable write. The enable being honoured must stay visible
	 * (VF Enable reads 1 with the VFs present) -- unless Control was
	 * written again since, in which case that writer acts on the
	 * register after us. */
	pthread_mutex_lock(&dev->lock);
	unsigned ctrl_reg = dev->sriov_cap + PCI_SRIOV_CTRL;
	if (dev->sriov_ctrl_writes == seq)
		pci_cfg_set16(&dev->cfg, ctrl_reg,
			      pci_cfg_get16(&dev->cfg, ctrl_reg) | PCI_SRIOV_CTRL_VFE);
	bool still = pci_cfg_get16(&dev->cfg, ctrl_reg) & PCI_SRIOV_CTRL_VFE;
	if (still)
		pci_cfg_set16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF, (uint16_t)n);
	pthread_mutex_unlock(&dev->lock);
	if (!still) {
		/* cleared meanwhile: nothing to create */
		pm_trans_end(dev);
		rpm_put(&dev->pm.rpm);
		return 0;
	}
	atomic_store(&dev->sriov_active, true);
	rc = dev->host->create_vfs(dev->host_ctx, dev, n);
	if (rc)
		atomic_store(&dev->sriov_active, false);
	else
		dev->num_vfs = n;
	pm_trans_end(dev);
	if (rc)
		rpm_put(&dev->pm.rpm);
	return rc;
}

/* sriov_lock held */
static void disable_locked(struct vfpm_device *dev)
{
	if (!dev->num_vfs)
		return;
	dev->host->destroy_vfs(dev->host_ctx, dev);
	dev->num_vfs = 0;
	dev_event(dev, EV_SRIOV_DISABLE, -1, -1, NULL);
	/* cleared outside memory_lock: at worst a racing transition gets a
	 * spurious EBUSY, never a PF below D0 with VFs */
	atomic_store(&dev->sriov_active, false);
	rpm_put(&dev->pm.rpm);
}

void sriov_sync(struct vfpm_device *dev)
{
	if (!dev->sriov_cap)
		return;
	pthread_mutex_lock(&dev->sriov_lock);
	pthread_mutex_lock(&dev->lock);
	bool vfe = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE;
	unsigned n = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF);
	unsigned seq = dev->sriov_ctrl_writes;
	pthread_mutex_unlock(&dev->lock);
	if (vfe && !dev->num_vfs) {
		int rc = enable_locked(dev, n, seq);
		if (rc) {
			DLOG(dev, VFPM_LOG_ERR, "cannot enable %u VFs: %s", n, strerror(-rc));
			clear_vfe(dev);
		} else if (dev->num_vfs) {
			DLOG(dev, VFPM_LOG_INFO, "%u VFs enabled", n);
			dev_event(dev, EV_SRIOV_ENABLE, -1, (int)n, NULL);
		}
	} else if (!vfe && dev->num_vfs) {
		disable_locked(dev);
		DLOG(dev, VFPM_LOG_INFO, "VFs disabled");
	}
	pthread_mutex_unlock(&dev->sriov_lock);
}

void sriov_disable(struct vfpm_device *dev)
{
	if (!dev->sriov_cap)
		return;
	pthread_mutex_lock(&dev->sriov_lock);
	disable_locked(dev);
	pthread_mutex_unlock(&dev->sriov_lock);
}
