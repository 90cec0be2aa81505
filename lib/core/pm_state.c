/* Power management, the state machine: D-states and their transitions as
 * vfio_pci_set_power_state and pci_set_power_state decide them, the PMCSR
 * virtualisation (B26-B30), the config snapshots of NoSoftRst- and runtime
 * suspend, the V3 promotion of a guest D3hot, and when BAR mappings follow
 * memory decode. pm_runtime.c builds the runtime-PM callbacks, low-power
 * features and the request wrapper on it.
 *
 * Locks (core.h has the whole table): trans_lock serialises every change
 * of a device's PM state and is held across the model's callbacks, which
 * is what keeps them from overlapping; memory_lock (write) excludes
 * readers only while state is changed and is dropped around every model
 * callback: mark under it, drop it, call the model, retake it, commit.
 * No runtime function a model may call takes trans_lock, and no thread
 * holding trans_lock waits for the runtime-PM core (rpm_get, rpm_resume):
 * only the _noresume/_noidle calls are made under it.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <stdlib.h>
#include <string.h>

#include "pm.h"

static const char *const state_names[] = { "D0", "D1", "D2", "D3hot", "D3cold" };

const char *pm_state_name(int state)
{
	return state >= 0 && state <= VFPM_D3COLD ? state_names[state] : "unknown";
}

/* memory_lock held for write. A change of state is logged with its cause
 * (NULL: only PMCSR is refreshed, the state is unchanged). */
void pm_set_state_raw(struct vfpm_device *dev, int state, const char *cause)
{
	struct dev_pm *pm = &dev->pm;
	if (state != pm->power_state && cause)
		DLOG(dev, VFPM_LOG_INFO, "power %s -> %s (%s)", pm_state_name(pm->power_state),
		     pm_state_name(state), cause);
	if (state != pm->power_state && cause)
		dev_event(dev, EV_POWER, pm->power_state, state, cause);
	uint64_t now = pm_clock_now(pm->clock);
	uint64_t since = (uint64_t)pm->state_since.tv_sec * 1000000000ull +
			 (uint64_t)pm->state_since.tv_nsec;
	pm->residency_ns[pm->power_state] += now - since;
	pm->state_since.tv_sec = (time_t)(now / 1000000000ull);
	pm->state_since.tv_nsec = (long)(now % 1000000000ull);
	__atomic_store_n(&pm->power_state, state, __ATOMIC_RELEASE);   /* vfpm_dev_mem_decode */
	if (dev->pm_cap) {
		mutex_lock(&dev->lock);
		uint16_t csr = pci_cfg_get16(&dev->cfg, dev->pm_cap + PCI_PM_CTRL);
		/* D3cold reads as D3hot: PMCSR can only express D0-D3hot */
		int ps = state == VFPM_D3COLD ? VFPM_D3HOT : state;
		if (pm->promoted)
			ps = VFPM_D3HOT;   /* V3: the guest sees the D3hot it asked for */
		csr = (uint16_t)((csr & ~PCI_PM_CTRL_STATE_MASK) | ps);
		pci_cfg_set16(&dev->cfg, dev->pm_cap + PCI_PM_CTRL, csr);
		mutex_unlock(&dev->lock);
	}
}

/* The PCI spec delays as Linux applies them (V4); none with pm_delays=none. */
void pm_transition_delay(struct vfpm_device *dev, int from, int to)
{
	/* read without memory_lock: the delays run outside it */
	if (!__atomic_load_n(&dev->pm.set.pm_delays, __ATOMIC_RELAXED))
		return;
	if (from == VFPM_D3COLD && to == VFPM_D0)
		pm_clock_sleep_us(dev->pm.clock, 100000);
	else if (from == VFPM_D3HOT || to == VFPM_D3HOT)
		pm_clock_sleep_us(dev->pm.clock, 10000);
	else if (from == VFPM_D2 || to == VFPM_D2)
		pm_clock_sleep_us(dev->pm.clock, 200);
}

uint8_t *pm_cfg_snapshot(struct vfpm_device *dev)
{
	uint8_t *s = malloc(VPCI_CFG_SIZE);
	if (!s)
		return NULL;
	mutex_lock(&dev->lock);
	memcpy(s, dev->cfg.data, VPCI_CFG_SIZE);
	mutex_unlock(&dev->lock);
	return s;
}

/* Restores a snapshot but keeps PowerState (the caller sets it) and the
 * SR-IOV capability (host state, sriov.c: VF Enable and VF MSE set since
 * the snapshot stay). */
void pm_cfg_restore(struct vfpm_device *dev, const uint8_t *s)
{
	struct sriov_keep keep;
	mutex_lock(&dev->lock);
	sriov_keep_save(dev, &keep);
	memcpy(dev->cfg.data, s, VPCI_CFG_SIZE);
	sriov_keep_restore(dev, &keep);
	mutex_unlock(&dev->lock);
}

void pm_trans_begin(struct vfpm_device *dev)
{
	mutex_lock(&dev->pm.trans_lock);
	rwlock_wrlock(&dev->pm.memory_lock);
}

void pm_trans_end(struct vfpm_device *dev)
{
	rwlock_unlock(&dev->pm.memory_lock);
	mutex_unlock(&dev->pm.trans_lock);
}

/* trans_lock held and memory_lock write-held: the model's callbacks run
 * with memory_lock dropped (trans_lock keeps every other transition out)
 * and it is retaken before returning. */
void pm_mem_drop(struct vfpm_device *dev)
{
	rwlock_unlock(&dev->pm.memory_lock);
}

void pm_mem_retake(struct vfpm_device *dev)
{
	rwlock_wrlock(&dev->pm.memory_lock);
}

/* The device lost its state (D3cold, or D3hot->D0 with NoSoftRst-): the
 * model resets; config space returns to its power-on values. trans_lock
 * held, memory_lock write-held (dropped for the model's reset()). */
void pm_lost_state(struct vfpm_device *dev)
{
	if (dev->ops->reset) {
		pm_mem_drop(dev);
		dev->ops->reset(dev->priv);
		pm_mem_retake(dev);
	}
	struct sriov_keep keep;
	mutex_lock(&dev->lock);
	sriov_keep_save(dev, &keep);   /* the host's SR-IOV state is restored with it */
	pci_cfg_reset(&dev->cfg);
	sriov_keep_restore(dev, &keep);
	/* B18, B20: the client's INTx mask and the MSI-X vector table are
	 * host-side interrupt setup (the PCI core restores MSI-X with the
	 * config space): only the device's own interrupt state (level,
	 * pending bits) is lost with its power. */
	irq_reset_device_state(dev);
	mutex_unlock(&dev->lock);
}

/* Quiesces the model and asks it to suspend. A refusal (a negative errno
 * from suspend()) is returned after resume() has undone the quiesce: the
 * model runs on, as a driver whose runtime_suspend fails keeps its device
 * active. trans_lock held, no other core lock. */
static int model_park_call(struct vfpm_device *dev, int target)
{
	channel_cancel_begin(&dev->chan);
	if (dev->ops->quiesce)
		dev->ops->quiesce(dev->priv);
	int rc = dev->ops->suspend ? dev->ops->suspend(dev->priv, (enum vfpm_dstate)target) : 0;
	channel_cancel_end(&dev->chan);
	if (rc) {
		if (rc > 0 || rc < -4095)
			rc = -EIO;   /* not an errno: a refusal all the same */
		DLOG(dev, VFPM_LOG_WARN, "model refused to suspend to %s: %s", pm_state_name(target),
		     strerror(-rc));
		if (dev->ops->resume)
			dev->ops->resume(dev->priv);
	}
	return rc;
}

/* trans_lock held, memory_lock write-held (dropped for the model's calls:
 * model_parked is trans_lock's to change). */
int pm_model_park(struct vfpm_device *dev, int target)
{
	if (dev->pm.model_parked)
		return 0;
	pm_mem_drop(dev);
	int rc = model_park_call(dev, target);
	pm_mem_retake(dev);
	if (!rc)
		dev->pm.model_parked = true;
	return rc;
}

void pm_model_unpark(struct vfpm_device *dev)
{
	if (!dev->pm.model_parked)
		return;
	dev->pm.model_parked = false;
	if (dev->ops->resume) {
		pm_mem_drop(dev);
		dev->ops->resume(dev->priv);
		pm_mem_retake(dev);
	}
}

/* The power-state change of a user (PMCSR) or of the suspend path, as
 * vfio_pci_set_power_state + pci_set_power_state decide it. trans_lock
 * held, memory_lock write-held (dropped for the model and the delay). Returns 0 or the errno the kernel would return
 * internally (the PMCSR write stays silent about it, B28). */
int pm_set_state(struct vfpm_device *dev, int target, const char *cause)
{
	struct dev_pm *pm = &dev->pm;
	int cur = pm->power_state;
	if (target == cur)
		return 0;   /* no-op, no delay (B29) */
	if (!dev->pm_cap)
		return target == VFPM_D0 ? 0 : -EIO;
	if ((target == VFPM_D1 && !pm->d1) || (target == VFPM_D2 && !pm->d2))
		return -EIO;
	/* from a low-power state only D0 or a deeper state can follow */
	if (cur != VFPM_D0 && target != VFPM_D0 && target < cur)
		return -EINVAL;
	if (target > VFPM_D0 && atomic_load(&dev->sriov_active))
		return -EBUSY;   /* a PF with VFs stays in D0 (B34) */

	if (target >= VFPM_D3HOT && cur < VFPM_D3HOT) {
		/* B30: NoSoftRst- snapshot, replacing any older one */
		if (pm->needs_pm_restore) {
			free(pm->pm_save);
			pm->pm_save = pm_cfg_snapshot(dev);
		}
		/* V1: no device work in D3hot; a model that refuses keeps the
		 * device in D0 (the write is silent about it, B28) */
		int rc = pm_model_park(dev, target);
		if (rc) {
			free(pm->pm_save);
			pm->pm_save = NULL;
			return rc;
		}
	}
	pm_mem_drop(dev);   /* trans_lock keeps other transitions out */
	pm_transition_delay(dev, cur, target);
	pm_mem_retake(dev);
	pm_set_state_raw(dev, target, cause);
	if (target == VFPM_D0 && cur >= VFPM_D3HOT) {
		if (pm->needs_pm_restore) {
			/* the device reset itself on D3hot->D0: the model resets,
			 * the saved config comes back */
			pm_lost_state(dev);
			if (pm->pm_save) {
				pm_cfg_restore(dev, pm->pm_save);
				free(pm->pm_save);
				pm->pm_save = NULL;
			}
			pm_set_state_raw(dev, VFPM_D0, NULL);
		}
		pm_model_unpark(dev);
	}
	region_mmap_update(dev);
	return 0;
}

/* Low power engaged (B1) and a promoted D3hot (V3) each let the device
 * suspend while a client is connected by dropping the client's open
 * reference. It is one reference: dropped while either holds, taken back
 * when neither does, so the two together never drop it twice.
 * trans_lock held, memory_lock held for write. */
void pm_open_ref_sync(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	bool want = pm->engaged || pm->promoted;
	if (want && !pm->open_ref_lent)
		rpm_put_noidle(&pm->rpm);   /* the request's own put runs the idle */
	else if (!want && pm->open_ref_lent)
		rpm_get_noresume(&pm->rpm); /* a request resumed it already */
	pm->open_ref_lent = want;
}

/* V3: the guest's D3hot ends. The reference it dropped comes back, and
 * (B30) a NoSoftRst- device resets with the config saved at the D3hot
 * restored, also when it never really suspended. memory_lock held for
 * write; mappings are the caller's to update. */
static void pm_promotion_end_locked(struct vfpm_device *dev, const char *cause)
	REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock)
{
	struct dev_pm *pm = &dev->pm;
	__atomic_store_n(&pm->promoted, false, __ATOMIC_RELAXED);
	if (pm->needs_pm_restore) {
		pm_lost_state(dev);
		if (pm->pm_save)
			pm_cfg_restore(dev, pm->pm_save);
		free(pm->pm_save);
		pm->pm_save = NULL;
	}
	pm_set_state_raw(dev, pm->power_state, NULL);   /* PMCSR reads the real state */
	pm_open_ref_sync(dev);
	DLOG(dev, VFPM_LOG_INFO, "guest PMCSR D3hot -> D0 (%s; promotion ends)", cause);
	dev_event(dev, EV_GUEST_D0, VFPM_D3HOT, VFPM_D0, cause);
}

void pm_set_d0_locked(struct vfpm_device *dev, const char *cause)
{
	if (dev->pm.promoted) {
		pm_promotion_end_locked(dev, cause);
		region_mmap_update(dev);
	}
	pm_set_state(dev, VFPM_D0, cause);
}

void pm_sync_mappings(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	region_mmap_update(dev);
	pm_trans_end(dev);
}

void pm_revoke_mappings(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	region_revoke_all(dev);
	pm_trans_end(dev);
}

static void hook_pmcsr(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
		       uint32_t old, const struct pci_access *acc)
{
	struct vfpm_device *dev = opaque;
	/* B27: only an access that starts at PMCSR is a PowerState write */
	(void)dev;
	if (acc->off != reg)
		return;
	acc->fx->flags |= PCI_FX_POWER;
	acc->fx->power_state = (int)(acc->val & PCI_PM_CTRL_STATE_MASK);
}

/* V3: may this PMCSR write be a runtime-PM reference instead? */
static bool promotable(struct vfpm_device *dev)
{
	switch (dev->pm.set.d3hot_promotion) {
	case PM_PROMOTE_ALWAYS:
		return true;
	case PM_PROMOTE_NOSOFTRST:
		return dev->pm.needs_pm_restore;
	default:
		return false;
	}
}

void pm_after_config_write(struct vfpm_device *dev, int req, bool mem_changed)
{
	struct dev_pm *pm = &dev->pm;
	if (req < 0 && !mem_changed)
		return;

	pm_trans_begin(dev);
	bool promotion_changed = false;
	if (req == VFPM_D3HOT && !pm->promoted && pm->power_state == VFPM_D0 && promotable(dev) &&
	    !atomic_load(&dev->sriov_active)) {
		/* V3: the guest's D3hot becomes a dropped reference; the
		 * device suspends (perhaps to D3cold) once the request ends.
		 * Whether or not it can, the guest sees D3hot: memory does not
		 * decode, and a NoSoftRst- device keeps the B30 snapshot. */
		if (pm->needs_pm_restore) {
			free(pm->pm_save);
			pm->pm_save = pm_cfg_snapshot(dev);
		}
		promotion_changed = true;
		__atomic_store_n(&pm->promoted, true, __ATOMIC_RELAXED);
		pm_set_state_raw(dev, pm->power_state, NULL);   /* PMCSR reads D3hot */
		pm_open_ref_sync(dev);
		DLOG(dev, VFPM_LOG_INFO,
		     "guest PMCSR D0 -> D3hot (promoted: the device suspends when idle)");
		dev_event(dev, EV_GUEST_D3HOT, VFPM_D0, VFPM_D3HOT, "PMCSR write");
	} else if (req == VFPM_D0 && pm->promoted) {
		promotion_changed = true;
		pm_promotion_end_locked(dev, "PMCSR write");
	} else if (req >= 0 && !pm->promoted) {
		/* refused transitions are silent (B28): PowerState reads back
		 * the real state */
		pm_set_state(dev, req, "PMCSR write");
	}
	if (mem_changed || promotion_changed)
		region_mmap_update(dev);
	pm_trans_end(dev);
}

/* A cheap unlocked hint for the session: may pm_config_asleep serve? */
bool pm_maybe_asleep(struct vfpm_device *dev)
{
	return __atomic_load_n(&dev->pm.promoted, __ATOMIC_RELAXED);
}

static bool overlaps(unsigned off, unsigned len, unsigned reg, unsigned rlen)
{
	return off < reg + rlen && reg < off + len;
}

/* Writes that reach beyond config space's own bytes: COMMAND (memory
 * decode, the model's command_changed), PMCSR (a power transition) and
 * DEVCTL (FLR). The SR-IOV capability is read-only to the client. */
static bool config_write_wakes(struct vfpm_device *dev, unsigned off, unsigned len)
{
	return overlaps(off, len, PCI_COMMAND, 2) ||
	       (dev->pm_cap && overlaps(off, len, dev->pm_cap + PCI_PM_CTRL, 2)) ||
	       (dev->pcie_cap && overlaps(off, len, dev->pcie_cap + PCI_EXP_DEVCTL, 2));
}

/* V3: the guest of a promoted device believes it is in D3hot, where config
 * space answers without a transition. While such a device is suspended
 * (D3hot or D3cold underneath), a config access is served from the core's
 * config space and the device stays asleep. A write also updates the
 * snapshot a resume restores, so it is not lost. Returns -EAGAIN when the
 * access must wake the device: not promoted or not suspended, low power
 * engaged (B10, B11, B13: any access wakes), or a write that reaches the
 * model or the power state (config_write_wakes). */
int pm_config_asleep(struct vfpm_device *dev, unsigned off, void *buf, unsigned len, bool write)
{
	struct dev_pm *pm = &dev->pm;
	if (write && config_write_wakes(dev, off, len))
		return -EAGAIN;
	pm_trans_begin(dev);
	if (!pm->promoted || pm->engaged || pm->power_state < VFPM_D3HOT) {
		pm_trans_end(dev);
		return -EAGAIN;
	}
	mutex_lock(&dev->lock);
	/* config_write_wakes() let through no write with effects to act on */
	int rc = write ? region_cfg_client_write_locked(dev, off, buf, len, NULL)
		       : pci_cfg_read(&dev->cfg, off, buf, len);
	if (!rc && write && pm->rt_save)
		memcpy(pm->rt_save, dev->cfg.data, VPCI_CFG_SIZE);
	mutex_unlock(&dev->lock);
	pm_trans_end(dev);
	return rc;
}

/* After the model is built: virtualise the PM capability and let the
 * device go idle (B35). */
void pm_start(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	if (dev->pm_cap) {
		unsigned pmc = dev->pm_cap + PCI_PM_PMC, csr = dev->pm_cap + PCI_PM_CTRL;
		uint16_t cap = pci_cfg_get16(&dev->cfg, pmc);
		pm->d1 = cap & PCI_PM_CAP_D1;
		pm->d2 = cap & PCI_PM_CAP_D2;
		/* B26: PME support, PME_En and PME_Status are hidden */
		pci_cfg_set16(&dev->cfg, pmc, cap & (uint16_t)~PCI_PM_CAP_PME_MASK);
		uint16_t v = pci_cfg_get16(&dev->cfg, csr);
		pm->needs_pm_restore = !(v & PCI_PM_CTRL_NO_SOFT_RESET);
		pci_cfg_set16(&dev->cfg, csr,
			      v & (uint16_t)~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS |
					      PCI_PM_CTRL_STATE_MASK));
		/* B27: PowerState is not written directly: the hook turns a
		 * write that starts at PMCSR into a transition */
		const struct pci_perm perm = { .off = (uint16_t)csr, .len = 2, .rw = 0, .w1c = 0 };
		pci_cfg_perm(&dev->cfg, &perm, 1);
		pci_cfg_hook(&dev->cfg, csr, 2, hook_pmcsr, dev);
	}
}
