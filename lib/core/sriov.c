/* SR-IOV: a PF's capability, the host's sriov_numvfs, and the PF power
 * rules.
 *
 * VFs are the host's, as in Linux where sysfs sriov_numvfs calls the
 * driver's sriov_configure: device_sriov_configure() creates and removes
 * them, with or without a client on the PF and whatever its power state.
 * The PF's client sees the capability read-only (device.c drops its writes
 * there, as vfio-pci gives the SR-IOV capability no writable bits). The
 * control plane's config-write stays a raw register access, as setpci is:
 * VF Enable written there makes the VFs follow it (device.c), and nothing
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
 * B34: pm_set_state refuses any state above D0 while sriov_active). That
 * orchestration is device.c's (device_sriov_*); this file is the leaf that
 * keeps the capability and asks the host for VFs.
 * B36: VFs are separate devices with their own runtime PM; they are not
 * children of the PF and hold no reference on it.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#include "core.h"

/* dev->lock held (a config-space hook, reached only by a host config
 * write): the writer acts on Control (device.c) once dev->lock drops. */
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
	mutex_lock(&pf->lock);
	bool on = pci_cfg_get16(&pf->cfg, pf->sriov_cap + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_MSE;
	mutex_unlock(&pf->lock);
	return on;
}

/* Sets and clears Control bits; NumVFs too unless num < 0. */
static void ctrl_update(struct vfpm_device *dev, uint16_t set, uint16_t clear, int num)
{
	mutex_lock(&dev->lock);
	unsigned reg = dev->sriov_cap + PCI_SRIOV_CTRL;
	pci_cfg_set16(&dev->cfg, reg, (uint16_t)((pci_cfg_get16(&dev->cfg, reg) & ~clear) | set));
	if (num >= 0)
		pci_cfg_set16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF, (uint16_t)num);
	mutex_unlock(&dev->lock);
}

/* The PF is in D0 and held there, under its trans_lock (device.c). host:
 * sriov_numvfs, which also writes NumVFs and sets VF Enable with VF MSE (as
 * the kernel's sriov_enable does); else a raw VF Enable already in the
 * register. On failure VF Enable reads back clear. */
int sriov_create_vfs(struct vfpm_device *dev, unsigned n, bool host)
{
	if (host)
		ctrl_update(dev, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE, 0, (int)n);
	atomic_store(&dev->sriov_active, true);
	int rc = dev->host->create_vfs(dev->host_ctx, dev, n);
	if (rc) {
		atomic_store(&dev->sriov_active, false);
		ctrl_update(dev, 0, PCI_SRIOV_CTRL_VFE | (host ? PCI_SRIOV_CTRL_MSE : 0),
			    host ? 0 : -1);
	} else {
		dev->num_vfs = n;
		dev_event(dev, EV_SRIOV_ENABLE, -1, (int)n, host ? "sriov_numvfs" : "VF Enable");
	}
	return rc;
}

void sriov_destroy_vfs(struct vfpm_device *dev, bool host)
{
	dev->host->destroy_vfs(dev->host_ctx, dev);
	dev->num_vfs = 0;
	dev_event(dev, EV_SRIOV_DISABLE, -1, -1, NULL);
	/* cleared after the VFs are gone: at worst a racing transition gets a
	 * spurious EBUSY, never a PF below D0 with VFs */
	atomic_store(&dev->sriov_active, false);
	if (host)
		ctrl_update(dev, 0, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE, 0);
}

void sriov_read_ctrl(struct vfpm_device *dev, bool *vfe, unsigned *num)
{
	mutex_lock(&dev->lock);
	*vfe = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE;
	*num = pci_cfg_get16(&dev->cfg, dev->sriov_cap + PCI_SRIOV_NUM_VF);
	mutex_unlock(&dev->lock);
}
