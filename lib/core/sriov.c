/* SR-IOV: a PF's capability, the host's sriov_numvfs, and the PF power
 * rules.
 *
 * VFs are the host's, as in Linux where sysfs sriov_numvfs calls the
 * driver's sriov_configure: sriov_configure() below creates and removes
 * them, with or without a client on the PF and whatever its power state.
 * The PF's client sees the capability read-only (device.c drops its writes
 * there, as vfio-pci gives the SR-IOV capability no writable bits). The
 * control plane's config-write stays a raw register access, as setpci is:
 * VF Enable written there makes the VFs follow it (sriov_sync), and nothing
 * else is set for the writer.
 *
 * The capability is host state: resets of the PF (DEVICE_RESET, FLR, the
 * reset when its client disconnects) and the config restores of power
 * management keep it (sriov_keep_*), as the PCI core restores its own SR-IOV
 * state after a reset or a loss of power. So VFs outlive the PF's client
 * and VF MSE survives a NoSoftRst- PF's D3hot -> D0.
 *
 * B33: enabling VFs resumes the PF and holds a usage reference on it until
 * the VFs are disabled; the D0 transition and the creation of the VFs
 * happen under the PF's trans_lock, so a PMCSR write racing the enable
 * either lands first (and is overridden to D0) or after (and is refused,
 * B34: set_power_state refuses any state above D0 while sriov_active).
 * B36: VFs are separate devices with their own runtime PM; they are not
 * children of the PF and hold no reference on it.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "core.h"

/* dev->lock held (a config-space hook, reached only by a host config
 * write): the writer acts on Control (sriov_sync) once dev->lock drops. */
static void hook_sriov_ctrl(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			    uint32_t old, const struct pci_access *acc)
{
	acc->fx->flags |= PCI_FX_SRIOV_CTRL;
}

/* The VF BARs of the capability come from the model's table: no VF is
 * built to learn them. Each VF is checked against it (sriov_vf_layout_ok). */
int sriov_setup(struct vfpm_device *dev, unsigned total_vfs, struct rpm_wq *wq)
{
	(void)wq;
	dev->sriov_cap = 0;
	const struct vfpm_vf_bar *vb = dev->model->vf_bars;
	if (!vb) {
		DLOG(dev, VFPM_LOG_ERR, "model %s declares no VF BARs (vf_bars): it cannot be a PF",
		     dev->model->name);
		return -EOPNOTSUPP;
	}
	struct pci_sriov_desc d = {
		.total_vfs = (uint16_t)total_vfs,
		.initial_vfs = (uint16_t)total_vfs,
		.first_offset = 1,
		.stride = 1,
		.vf_device_id = (uint16_t)(pci_cfg_get16(&dev->cfg, PCI_DEVICE_ID) + 1),
		.supported_pgsz = 0x553,   /* 4K, 8K, 64K, 256K, 1M, 4M as PCIe devices often do */
	};
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (vb[i].flags & VFPM_BAR_IO)
			return -EINVAL;   /* VFs have no I/O BARs */
		d.vf_bars[i].size = vb[i].size;
		d.vf_bars[i].flags = (vb[i].flags & VFPM_BAR_64 ? PCI_BARF_MEM64 : 0) |
				     (vb[i].flags & VFPM_BAR_PREFETCH ? PCI_BARF_PREFETCH : 0);
	}
	int rc = pci_cap_sriov(&dev->cfg, &d);
	if (rc < 0)
		return rc;
	dev->sriov_cap = (unsigned)rc;
	dev->total_vfs = total_vfs;
	return pci_cfg_hook(&dev->cfg, dev->sriov_cap + PCI_SRIOV_CTRL, 2, hook_sriov_ctrl, dev);
}

bool sriov_vf_layout_ok(const struct vfpm_device *vf)
{
	const struct vfpm_vf_bar *vb = vf->model->vf_bars;
	const unsigned kind = VFPM_BAR_IO | VFPM_BAR_64 | VFPM_BAR_PREFETCH | VFPM_BAR_MEMFD;
	for (unsigned i = 0; vb && i < PCI_NUM_BARS; i++)
		if (vf->bars[i].size != vb[i].size ||
		    (vf->bars[i].size && (vf->bars[i].flags & kind) != (vb[i].flags & kind)))
			return false;
	return vb != NULL;
}

/* dev->lock held */
void sriov_keep_save(const struct vfpm_device *dev, struct sriov_keep *k)
{
	if (dev->sriov_cap)
		memcpy(k->bytes, dev->cfg.data + dev->sriov_cap, sizeof(k->bytes));
}

/* dev->lock held */
void sriov_keep_restore(struct vfpm_device *dev, const struct sriov_keep *k)
{
	if (dev->sriov_cap)
		memcpy(dev->cfg.data + dev->sriov_cap, k->bytes, sizeof(k->bytes));
}

bool sriov_vf_mse(struct vfpm_device *pf)
{
	pthread_mutex_lock(&pf->lock);
	bool on = pci_cfg_get16(&pf->cfg, pf->sriov_cap + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_MSE;
	pthread_mutex_unlock(&pf->lock);
	return on;
}

/* Sets and clears Control bits; NumVFs too unless num < 0. */
static void ctrl_update(struct vfpm_device *dev, uint16_t set, uint16_t clear, int num)
{
	pthread_mutex_lock(&dev->lock);
	unsigned reg = dev->sriov_cap + PCI_SRIOV_CTRL;
	pci_cfg_set16(&dev->cfg, reg, (uint16_t)((pci_cfg_get16(&dev->cfg, reg) & ~clear) | set));
	if (num >= 0)
		pci_cfg_set16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF, (uint16_t)num);
	pthread_mutex_unlock(&dev->lock);
}

/* sriov_lock held. host: sriov_numvfs, which also writes NumVFs and sets
 * VF Enable with VF MSE (as the kernel's sriov_enable does); else a raw VF
 * Enable already in the register. */
static int enable_locked(struct vfpm_device *dev, unsigned n, bool host)
{
	if (dev->num_vfs || !n)
		return 0;
	if (!dev->host)
		return -ENODEV;
	/* B33: resume and hold the PF active until the VFs are gone. A PF
	 * engaged in low power with a wakeup armed is resumed here, which
	 * fires the wakeup once (B11). */
	int rc = rpm_resume_and_get(&dev->pm.rpm);
	if (rc)
		return rc;
	/* Seed 004: trans_lock (and memory_lock, but around the model's
	 * callbacks) is held from the D0 transition until the VFs
	 * exist, so no PMCSR write can put the PF back above D0 in between. */
	pm_trans_begin(dev);
	pm_set_d0_locked(dev, "VF Enable: a PF with VFs stays in D0");
	if (host)
		ctrl_update(dev, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE, 0, (int)n);
	atomic_store(&dev->sriov_active, true);
	rc = dev->host->create_vfs(dev->host_ctx, dev, n);
	if (rc)
		atomic_store(&dev->sriov_active, false);
	else
		dev->num_vfs = n;
	pm_trans_end(dev);
	if (rc) {
		/* a VF Enable that could not be honoured reads back clear */
		ctrl_update(dev, 0, PCI_SRIOV_CTRL_VFE | (host ? PCI_SRIOV_CTRL_MSE : 0),
			    host ? 0 : -1);
		rpm_put(&dev->pm.rpm);
	}
	return rc;
}

/* sriov_lock held */
static void disable_locked(struct vfpm_device *dev)
{
	if (!dev->num_vfs)
		return;
	dev->host->destroy_vfs(dev->host_ctx, dev);
	dev->num_vfs = 0;
	/* cleared outside memory_lock: at worst a racing transition gets a
	 * spurious EBUSY, never a PF below D0 with VFs */
	atomic_store(&dev->sriov_active, false);
	rpm_put(&dev->pm.rpm);
}

int sriov_configure(struct vfpm_device *dev, unsigned n)
{
	if (!dev->sriov_cap)
		return -ENOENT;   /* not a PF: no such setting */
	if (n > dev->total_vfs)
		return -ERANGE;
	pthread_mutex_lock(&dev->sriov_lock);
	int rc = 0;
	if (n == dev->num_vfs) {
		/* nothing to do (as the kernel: the same count succeeds) */
	} else if (!n) {
		disable_locked(dev);
		ctrl_update(dev, 0, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE, 0);
		DLOG(dev, VFPM_LOG_INFO, "VFs disabled (sriov_numvfs=0)");
	} else if (dev->num_vfs) {
		rc = -EBUSY;   /* N -> M needs a 0 in between, as sriov_numvfs_store */
	} else {
		rc = enable_locked(dev, n, true);
		if (rc)
			DLOG(dev, VFPM_LOG_ERR, "cannot enable %u VFs: %s", n, strerror(-rc));
		else
			DLOG(dev, VFPM_LOG_INFO, "%u VFs enabled (sriov_numvfs)", n);
	}
	pthread_mutex_unlock(&dev->sriov_lock);
	return rc;
}

void sriov_sync(struct vfpm_device *dev)
{
	if (!dev->sriov_cap)
		return;
	pthread_mutex_lock(&dev->sriov_lock);
	pthread_mutex_lock(&dev->lock);
	uint16_t ctrl = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_CTRL);
	unsigned n = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF);
	pthread_mutex_unlock(&dev->lock);
	bool vfe = ctrl & PCI_SRIOV_CTRL_VFE;
	if (vfe && !dev->num_vfs) {
		int rc = enable_locked(dev, n, false);
		if (rc)
			DLOG(dev, VFPM_LOG_ERR, "cannot enable %u VFs: %s", n, strerror(-rc));
		else if (dev->num_vfs)
			DLOG(dev, VFPM_LOG_INFO, "%u VFs enabled", n);
	} else if (!vfe && dev->num_vfs) {
		disable_locked(dev);
		DLOG(dev, VFPM_LOG_INFO, "VFs disabled");
	} else if (dev->num_vfs && dev->host->sync_vfs) {
		/* VF MSE may have changed: VF mappings follow it (4 of #9) */
		dev->host->sync_vfs(dev->host_ctx, dev);
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
