/* Device power management: the vfio-pci runtime-PM design on one device.
 *
 * D-states and the PMCSR virtualisation (B26-B30), runtime suspend and
 * resume callbacks (B8, B9, B17-B19, V1), the low-power features (B1-B16),
 * mmap revocation through memfd truncation (contract §5), the request
 * wrapper (contract §3) and the control-plane view (V2).
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
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

static const char *const state_names[] = { "D0", "D1", "D2", "D3hot", "D3cold" };

const char *pm_state_name(int state)
{
	return state >= 0 && state <= VFPM_D3COLD ? state_names[state] : "unknown";
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000 };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

/* memory_lock held for write. A change of state is logged with its cause
 * (NULL: only PMCSR is refreshed, the state is unchanged). */
static void set_power_state_raw(struct vfpm_device *dev, int state, const char *cause)
{
	struct dev_pm *pm = &dev->pm;
	if (state != pm->power_state && cause)
		DLOG(dev, VFPM_LOG_INFO, "power %s -> %s (%s)", pm_state_name(pm->power_state),
		     pm_state_name(state), cause);
	if (state != pm->power_state && cause)
		dev_event(dev, EV_POWER, pm->power_state, state, cause);
	uint64_t now = now_ns();
	uint64_t since = (uint64_t)pm->state_since.tv_sec * 1000000000ull +
			 (uint64_t)pm->state_since.tv_nsec;
	pm->residency_ns[pm->power_state] += now - since;
	pm->state_since.tv_sec = (time_t)(now / 1000000000ull);
	pm->state_since.tv_nsec = (long)(now % 1000000000ull);
	__atomic_store_n(&pm->power_state, state, __ATOMIC_RELEASE);   /* vfpm_dev_mem_decode */
	if (dev->pm_cap) {
		pthread_mutex_lock(&dev->lock);
		uint16_t csr = pci_cfg_get16(&dev->cfg, dev->pm_cap + PCI_PM_CTRL);
		/* D3cold reads as D3hot: PMCSR can only express D0-D3hot */
		int ps = state == VFPM_D3COLD ? VFPM_D3HOT : state;
		if (pm->promoted)
			ps = VFPM_D3HOT;   /* V3: the guest sees the D3hot it asked for */
		csr = (uint16_t)((csr & ~PCI_PM_CTRL_STATE_MASK) | ps);
		pci_cfg_set16(&dev->cfg, dev->pm_cap + PCI_PM_CTRL, csr);
		pthread_mutex_unlock(&dev->lock);
	}
}

/* The PCI spec delays as Linux applies them (V4); none with pm_delays=none. */
static void transition_delay(struct vfpm_device *dev, int from, int to)
{
	/* read without memory_lock: the delays run outside it */
	if (!__atomic_load_n(&dev->pm.set.pm_delays, __ATOMIC_RELAXED))
		return;
	if (from == VFPM_D3COLD && to == VFPM_D0)
		sleep_us(100000);
	else if (from == VFPM_D3HOT || to == VFPM_D3HOT)
		sleep_us(10000);
	else if (from == VFPM_D2 || to == VFPM_D2)
		sleep_us(200);
}

/* --- mmap revocation (contract §5) --- */

static void bar_revoke(struct core_bar *b)
{
	if (b->memfd < 0 || b->revoked)
		return;
	/* Keep a copy: contents survive D3hot and an engaged-awake device. */
	b->shadow = malloc(b->size);
	if (b->shadow && core_copy(b->shadow, b->mem, b->size))
		memset(b->shadow, 0, b->size);   /* the client shrank the memfd: lost */
	if (ftruncate(b->memfd, 0) < 0) {
		free(b->shadow);
		b->shadow = NULL;
		return;
	}
	b->revoked = true;
}

static void bar_restore(struct core_bar *b)
{
	if (!b->revoked)
		return;
	if (ftruncate(b->memfd, (off_t)b->size) < 0)
		return;
	if (b->shadow)
		core_copy(b->mem, b->shadow, b->size);   /* only a racing shrink can fail it */
	free(b->shadow);
	b->shadow = NULL;
	b->revoked = false;
}

/* Nothing a client did to BAR memory outlives its session: the client holds
 * the memfd and may have grown it (pinning memory) or left data in it. The
 * next client finds power-on contents (zeros) and the BAR's size. A reset
 * within a session keeps BAR memory, as RAM behind a BAR keeps its bytes
 * across a function reset. memory_lock held for write. */
static void bar_scrub(struct core_bar *b)
{
	if (b->memfd < 0)
		return;
	free(b->shadow);
	b->shadow = NULL;
	if (ftruncate(b->memfd, 0) < 0)
		return;
	if (!b->revoked && ftruncate(b->memfd, (off_t)b->size) < 0)
		b->revoked = true;   /* no memory for it: it reads zeros, revoked */
}

/* D3cold: the device lost power, and its BAR memory with it. */
static void bar_drop(struct core_bar *b)
{
	if (b->memfd < 0)
		return;
	bar_revoke(b);
	free(b->shadow);
	b->shadow = NULL;
}

/* V3: a promoted device is in D3hot for its client whether or not it has
 * really suspended (power_control=on, say): its memory does not decode. */
bool pm_memory_enabled(struct vfpm_device *dev)
{
	pthread_mutex_lock(&dev->lock);
	bool mem = pci_cfg_mem_enabled(&dev->cfg);
	pthread_mutex_unlock(&dev->lock);
	return dev->pm.power_state < VFPM_D3HOT && !dev->pm.promoted && mem;
}

/* memory_lock held for write: mmap_allowed = memory_enabled && !engaged */
static void mmap_update(struct vfpm_device *dev)
{
	bool allow = pm_memory_enabled(dev) && !dev->pm.engaged;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (allow)
			bar_restore(&dev->bars[i]);
		else
			bar_revoke(&dev->bars[i]);
	}
}

void pm_sync_mappings(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	mmap_update(dev);
	pm_trans_end(dev);
}

void pm_revoke_mappings(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		bar_revoke(&dev->bars[i]);
	pm_trans_end(dev);
}

/* A model asks from its own threads, perhaps holding its own locks, which
 * it also holds in callbacks a BAR access makes under memory_lock: so no
 * memory_lock here (an order inversion with it, even between readers, is a
 * deadlock once a writer queues). The power state and the promotion are
 * stored atomically; COMMAND is read under dev->lock, a leaf lock. */
VFPM_EXPORT bool vfpm_dev_mem_decode(struct vfpm_device *dev)
{
	int state = __atomic_load_n(&dev->pm.power_state, __ATOMIC_ACQUIRE);
	bool promoted = __atomic_load_n(&dev->pm.promoted, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&dev->lock);
	bool mem = pci_cfg_mem_enabled(&dev->cfg);
	pthread_mutex_unlock(&dev->lock);
	return state < VFPM_D3HOT && !promoted && mem;
}

/* The copy is made on first use, not when a resume from D3cold leaves
 * the device engaged-awake with its BAR memory gone: a calloc of the whole
 * BAR (1 MiB for the demo's BAR2, up to 1 GiB) was most of the resume
 * path in D3cold (~11 us of ~12, docs/performance.md), paid on every wake
 * although an engaged client rarely reads a BAR. Callers hold memory_lock
 * for read (region access) or nothing (vfpm_dev_bar_mem from a model
 * thread), so two of them may race here: the first copy installed wins. */
void *pm_bar_shadow(struct vfpm_device *dev, unsigned bar)
{
	struct core_bar *b = &dev->bars[bar];
	void *s = __atomic_load_n(&b->shadow, __ATOMIC_ACQUIRE);
	if (s)
		return s;
	void *fresh = calloc(1, b->size);   /* lost in D3cold: reads zeros */
	if (!fresh)
		return NULL;
	if (__atomic_compare_exchange_n(&b->shadow, &s, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fresh;
	free(fresh);
	return s;
}

/* --- config snapshots --- */

static uint8_t *cfg_snapshot(struct vfpm_device *dev)
{
	uint8_t *s = malloc(VPCI_CFG_SIZE);
	if (!s)
		return NULL;
	pthread_mutex_lock(&dev->lock);
	memcpy(s, dev->cfg.data, VPCI_CFG_SIZE);
	pthread_mutex_unlock(&dev->lock);
	return s;
}

/* Restores a snapshot but keeps PowerState (the caller sets it). */
static void cfg_restore(struct vfpm_device *dev, const uint8_t *s)
{
	pthread_mutex_lock(&dev->lock);
	memcpy(dev->cfg.data, s, VPCI_CFG_SIZE);
	dev->last_command = pci_cfg_get16(&dev->cfg, PCI_COMMAND);
	pthread_mutex_unlock(&dev->lock);
}

void pm_trans_begin(struct vfpm_device *dev)
{
	pthread_mutex_lock(&dev->pm.trans_lock);
	pthread_rwlock_wrlock(&dev->pm.memory_lock);
}

void pm_trans_end(struct vfpm_device *dev)
{
	pthread_rwlock_unlock(&dev->pm.memory_lock);
	pthread_mutex_unlock(&dev->pm.trans_lock);
}

/* trans_lock held and memory_lock write-held: the model's callbacks run
 * with memory_lock dropped (trans_lock keeps every other transition out)
 * and it is retaken before returning. */
static void mem_drop(struct vfpm_device *dev)
{
	pthread_rwlock_unlock(&dev->pm.memory_lock);
}

static void mem_retake(struct vfpm_device *dev)
{
	pthread_rwlock_wrlock(&dev->pm.memory_lock);
}

/* The device lost its state (D3cold, or D3hot->D0 with NoSoftRst-): the
 * model resets; config space returns to its power-on values. trans_lock
 * held, memory_lock write-held (dropped for the model's reset()). */
static void device_lost_state(struct vfpm_device *dev)
{
	if (dev->ops->reset) {
		mem_drop(dev);
		dev->ops->reset(dev->priv);
		mem_retake(dev);
	}
	pthread_mutex_lock(&dev->lock);
	pci_cfg_reset(&dev->cfg);
	/* B18, B20: the client's INTx mask and the MSI-X vector table are
	 * host-side interrupt setup (the PCI core restores MSI-X with the
	 * config space): only the device's own interrupt state (level,
	 * pending bits) is lost with its power. */
	irq_reset_device_state(dev);
	pthread_mutex_unlock(&dev->lock);
}

/* Quiesces the model and asks it to suspend. A refusal (a negative errno
 * from suspend()) is returned after resume() has undone the quiesce: the
 * model runs on, as a driver whose runtime_suspend fails keeps its device
 * active. trans_lock held, no other core lock. */
static int model_park_call(struct vfpm_device *dev, int target)
{
	atomic_store(&dev->dma_cancel, true);
	if (dev->ops->quiesce)
		dev->ops->quiesce(dev->priv);
	int rc = dev->ops->suspend ? dev->ops->suspend(dev->priv, (enum vfpm_dstate)target) : 0;
	atomic_store(&dev->dma_cancel, false);
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
static int model_park(struct vfpm_device *dev, int target)
{
	if (dev->pm.model_parked)
		return 0;
	mem_drop(dev);
	int rc = model_park_call(dev, target);
	mem_retake(dev);
	if (!rc)
		dev->pm.model_parked = true;
	return rc;
}

static void model_unpark(struct vfpm_device *dev)
{
	if (!dev->pm.model_parked)
		return;
	dev->pm.model_parked = false;
	if (dev->ops->resume) {
		mem_drop(dev);
		dev->ops->resume(dev->priv);
		mem_retake(dev);
	}
}

/* The power-state change of a user (PMCSR) or of the suspend path, as
 * vfio_pci_set_power_state + pci_set_power_state decide it. trans_lock
 * held, memory_lock write-held (dropped for the model and the delay). Returns 0 or the errno the kernel would return
 * internally (the PMCSR write stays silent about it, B28). */
static int set_power_state(struct vfpm_device *dev, int target, const char *cause)
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
			pm->pm_save = cfg_snapshot(dev);
		}
		/* V1: no device work in D3hot; a model that refuses keeps the
		 * device in D0 (the write is silent about it, B28) */
		int rc = model_park(dev, target);
		if (rc) {
			free(pm->pm_save);
			pm->pm_save = NULL;
			return rc;
		}
	}
	mem_drop(dev);   /* trans_lock keeps other transitions out */
	transition_delay(dev, cur, target);
	mem_retake(dev);
	set_power_state_raw(dev, target, cause);
	if (target == VFPM_D0 && cur >= VFPM_D3HOT) {
		if (pm->needs_pm_restore) {
			/* the device reset itself on D3hot->D0: the model resets,
			 * the saved config comes back */
			device_lost_state(dev);
			if (pm->pm_save) {
				cfg_restore(dev, pm->pm_save);
				free(pm->pm_save);
				pm->pm_save = NULL;
			}
			set_power_state_raw(dev, VFPM_D0, NULL);
		}
		model_unpark(dev);
	}
	mmap_update(dev);
	return 0;
}

/* Low power engaged (B1) and a promoted D3hot (V3) each let the device
 * suspend while a client is connected by dropping the client's open
 * reference. It is one reference: dropped while either holds, taken back
 * when neither does, so the two together never drop it twice.
 * memory_lock held for write. */
static void open_ref_sync(struct dev_pm *pm)
{
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
static void promotion_end_locked(struct vfpm_device *dev, const char *cause)
{
	struct dev_pm *pm = &dev->pm;
	__atomic_store_n(&pm->promoted, false, __ATOMIC_RELAXED);
	if (pm->needs_pm_restore) {
		device_lost_state(dev);
		if (pm->pm_save)
			cfg_restore(dev, pm->pm_save);
		free(pm->pm_save);
		pm->pm_save = NULL;
	}
	set_power_state_raw(dev, pm->power_state, NULL);   /* PMCSR reads the real state */
	open_ref_sync(pm);
	DLOG(dev, VFPM_LOG_INFO, "guest PMCSR D3hot -> D0 (%s; promotion ends)", cause);
	dev_event(dev, EV_GUEST_D0, VFPM_D3HOT, VFPM_D0, cause);
}

void pm_set_d0_locked(struct vfpm_device *dev, const char *cause)
{
	if (dev->pm.promoted) {
		promotion_end_locked(dev, cause);
		mmap_update(dev);
	}
	set_power_state(dev, VFPM_D0, cause);
}

/* --- runtime PM callbacks --- */

static int target_state(struct vfpm_device *dev)
{
	if (!dev->pm_cap)
		return VFPM_D0;
	if (dev->pm.set.platform_d3cold && dev->pm.set.d3cold_allowed)
		return VFPM_D3COLD;
	return VFPM_D3HOT;
}

/* Undoes the INTx mask a suspend set (B17). B19: an assertion it held
 * back fires once, and the line stays (auto)masked until the client
 * unmasks. Takes dev->lock. */
static void intx_unmask_by_pm(struct vfpm_device *dev)
{
	pthread_mutex_lock(&dev->lock);
	if (dev->pm.intx_masked_by_pm) {
		dev->pm.intx_masked_by_pm = false;
		dev->intx_masked = false;
		irq_intx_update_locked(dev);
	}
	pthread_mutex_unlock(&dev->lock);
}

static int rt_suspend(void *ctx)
{
	struct vfpm_device *dev = ctx;
	struct dev_pm *pm = &dev->pm;

	pm_trans_begin(dev);
	/* B8: through D0 first (restores pm_save after a user D3hot) */
	int rc = set_power_state(dev, VFPM_D0, "runtime suspend goes through D0");
	if (rc) {
		pm_trans_end(dev);
		return rc;
	}
	/* B17/B18/B20: mask INTx if it is in use and the client has not */
	pthread_mutex_lock(&dev->lock);
	if (irq_intx_in_use_locked(dev) && !dev->intx_masked) {
		dev->intx_masked = true;
		pm->intx_masked_by_pm = true;
	}
	pthread_mutex_unlock(&dev->lock);
	free(pm->rt_save);
	pm->rt_save = cfg_snapshot(dev);

	int target = target_state(dev);
	/* no PM capability: "suspended" in D0, the model still parks */
	rc = model_park(dev, target);
	if (rc) {
		/* as a failing runtime_suspend: the device stays active, the
		 * error is counted (suspend_errors) and the next idle retries */
		intx_unmask_by_pm(dev);
		free(pm->rt_save);
		pm->rt_save = NULL;
		pm_trans_end(dev);
		return rc;
	}
	if (target != VFPM_D0) {
		/* As in the kernel, memory_lock covers the D0 step, not the
		 * transition's delay: nothing can reach a device that is
		 * suspending, and the control plane's status must not wait
		 * 10 ms behind it. */
		mem_drop(dev);
		transition_delay(dev, VFPM_D0, VFPM_D3HOT);
		mem_retake(dev);
		set_power_state_raw(dev, VFPM_D3HOT, "runtime suspend");
		if (target == VFPM_D3COLD) {
			set_power_state_raw(dev, VFPM_D3COLD, "runtime suspend, platform removes power");
			for (unsigned i = 0; i < PCI_NUM_BARS; i++)
				bar_drop(&dev->bars[i]);   /* memory really returned */
		}
	}
	mmap_update(dev);
	pm_trans_end(dev);
	return 0;
}

/* memory_lock held for write: T6 and B11, and the silent exit (T7, T10). */
static void lowpower_exit_locked(struct vfpm_device *dev, bool signal, const char *cause)
{
	struct dev_pm *pm = &dev->pm;
	if (!pm->engaged)
		return;
	DLOG(dev, VFPM_LOG_INFO, "low-power exit (%s)", cause);
	dev_event(dev, EV_LOW_POWER_EXIT, -1, -1, cause);
	pm->engaged = false;
	open_ref_sync(pm);   /* the reference ENTRY dropped */
	if (pm->wake_fd >= 0) {
		if (signal) {
			uint64_t one = 1;
			if (write(pm->wake_fd, &one, sizeof(one)) == sizeof(one)) {
				pm->wakeups_signalled++;
				dev_event(dev, EV_WAKEUP, -1, -1, NULL);
			}
		}
		close(pm->wake_fd);
		pm->wake_fd = -1;
	}
}

static int rt_resume(void *ctx)
{
	struct vfpm_device *dev = ctx;
	struct dev_pm *pm = &dev->pm;

	/* the delay (up to 100 ms from D3cold) runs without memory_lock, as
	 * the suspend's does */
	pm_trans_begin(dev);
	int from = pm->power_state;
	mem_drop(dev);
	transition_delay(dev, from, VFPM_D0);
	mem_retake(dev);
	/* Only a device that lost its state (D3cold, or D3hot with
	 * NoSoftRst-) needs the PCI core's restore: a NoSoftRst+ device in
	 * D3hot kept its config space, including host-side writes made while
	 * it was suspended, which a restore would silently undo. */
	if (from == VFPM_D3COLD || (from == VFPM_D3HOT && pm->needs_pm_restore)) {
		device_lost_state(dev);
		if (pm->rt_save)
			cfg_restore(dev, pm->rt_save);
	}
	free(pm->rt_save);
	pm->rt_save = NULL;
	set_power_state_raw(dev, VFPM_D0, "runtime resume");    /* B9 */
	model_unpark(dev);

	intx_unmask_by_pm(dev);

	/* B11: the armed wakeup fires once and disengages */
	if (pm->engaged && pm->wake_fd >= 0)
		lowpower_exit_locked(dev, true, "device resumed: wakeup signalled");
	/* engaged-awake after D3cold: BAR contents are gone; a revoked BAR
	 * with no copy reads zeros through pm_bar_shadow, which allocates
	 * the zeroed copy on first use (not here: see there) */
	mmap_update(dev);
	pm_trans_end(dev);
	return 0;
}

static const struct rpm_ops rt_ops = { .suspend = rt_suspend, .resume = rt_resume };

/* --- PMCSR virtualisation (B26-B30) --- */

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
			pm->pm_save = cfg_snapshot(dev);
		}
		promotion_changed = true;
		__atomic_store_n(&pm->promoted, true, __ATOMIC_RELAXED);
		set_power_state_raw(dev, pm->power_state, NULL);   /* PMCSR reads D3hot */
		open_ref_sync(pm);
		DLOG(dev, VFPM_LOG_INFO,
		     "guest PMCSR D0 -> D3hot (promoted: the device suspends when idle)");
		dev_event(dev, EV_GUEST_D3HOT, VFPM_D0, VFPM_D3HOT, "PMCSR write");
	} else if (req == VFPM_D0 && pm->promoted) {
		promotion_changed = true;
		promotion_end_locked(dev, "PMCSR write");
	} else if (req >= 0 && !pm->promoted) {
		/* refused transitions are silent (B28): PowerState reads back
		 * the real state */
		set_power_state(dev, req, "PMCSR write");
	}
	if (mem_changed || promotion_changed)
		mmap_update(dev);
	pm_trans_end(dev);
}

/* --- V3: config space of a promoted device, served asleep --- */

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
 * decode, the model's command_changed), PMCSR (a power transition), DEVCTL
 * (FLR) and the SR-IOV control (VFs). */
static bool config_write_wakes(struct vfpm_device *dev, unsigned off, unsigned len)
{
	return overlaps(off, len, PCI_COMMAND, 2) ||
	       (dev->pm_cap && overlaps(off, len, dev->pm_cap + PCI_PM_CTRL, 2)) ||
	       (dev->pcie_cap && overlaps(off, len, dev->pcie_cap + PCI_EXP_DEVCTL, 2)) ||
	       (dev->sriov_cap && overlaps(off, len, dev->sriov_cap + PCI_SRIOV_CTRL, 2));
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
	pthread_mutex_lock(&dev->lock);
	/* config_write_wakes() let through no write with effects to act on */
	int rc = write ? pci_cfg_write(&dev->cfg, off, buf, len, NULL)
		       : pci_cfg_read(&dev->cfg, off, buf, len);
	if (!rc && write && pm->rt_save)
		memcpy(pm->rt_save, dev->cfg.data, VPCI_CFG_SIZE);
	pthread_mutex_unlock(&dev->lock);
	pm_trans_end(dev);
	return rc;
}

/* --- low-power features (kernel spec §1.2 steps 11-16) --- */

int pm_feature_entry(struct vfpm_device *dev, int wake_fd)
{
	struct dev_pm *pm = &dev->pm;
	pm_trans_begin(dev);
	/* mappings are zapped before the engaged test, as in the kernel */
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		bar_revoke(&dev->bars[i]);
	if (pm->engaged) {
		mmap_update(dev);
		pm_trans_end(dev);
		return -EINVAL;   /* the caller closes wake_fd (B2) */
	}
	pm->engaged = true;
	pm->wake_fd = wake_fd;
	DLOG(dev, VFPM_LOG_INFO, "low-power entry%s", wake_fd >= 0 ? " (wakeup armed)" : "");
	dev_event(dev, EV_LOW_POWER_ENTRY, -1, -1, wake_fd >= 0 ? "wakeup armed" : NULL);
	open_ref_sync(pm);   /* the open reference; the wrapper's put idles */
	pm_trans_end(dev);
	return 0;
}

int pm_feature_exit(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	lowpower_exit_locked(dev, false, "LOW_POWER_EXIT");   /* T7: no signal */
	mmap_update(dev);
	pm_trans_end(dev);
	return 0;   /* always 0, even when not engaged (B3) */
}

/* --- request wrapper, open and close --- */

int pm_request_begin(struct vfpm_device *dev)
{
	/* the real error is logged; the client sees EIO (kernel §1.2 step 2) */
	int rc = rpm_resume_and_get(&dev->pm.rpm);
	if (rc) {
		DLOG(dev, VFPM_LOG_ERR, "resume failed: %s", strerror(-rc));
		return -EIO;
	}
	return 0;
}

void pm_request_end(struct vfpm_device *dev)
{
	rpm_put(&dev->pm.rpm);
}

bool pm_request_end_deferred(struct vfpm_device *dev)
{
	return rpm_put_deferred(&dev->pm.rpm);
}

void pm_idle(struct vfpm_device *dev)
{
	rpm_idle(&dev->pm.rpm);
}

int pm_open(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	/* §2.2: with idle_d3=off the probe reference stands for the open
	 * one (open and close take none). req_lock: against set_idle_d3. */
	pthread_mutex_lock(&dev->req_lock);
	if (!pm->probe_ref) {
		int rc = rpm_resume_and_get(&pm->rpm);
		if (rc) {
			pthread_mutex_unlock(&dev->req_lock);
			return rc;
		}
		pm->open_ref = true;
	}
	pthread_rwlock_wrlock(&pm->memory_lock);
	pm->client_connected = true;
	pthread_rwlock_unlock(&pm->memory_lock);
	pthread_mutex_unlock(&dev->req_lock);
	return 0;
}

/* Client gone (T2, T10): exit low power silently, resume, put the device
 * back to D0 and reset it, then let it go idle. Caller holds req_lock. */
void pm_close(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	pm_trans_begin(dev);
	lowpower_exit_locked(dev, false, "client gone");   /* B15: no signal */
	pm_trans_end(dev);

	rpm_get(&pm->rpm);
	device_disconnect(dev);             /* D0 first, then the reset (B31) */
	pm_trans_begin(dev);
	pm->client_connected = false;
	free(pm->pm_save);
	pm->pm_save = NULL;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		bar_scrub(&dev->bars[i]);
	mmap_update(dev);
	pm_trans_end(dev);
	bool had_open = pm->open_ref;
	pm->open_ref = false;
	if (had_open)
		rpm_put_noidle(&pm->rpm);
	rpm_put(&pm->rpm);                  /* idle: suspends (B35) */
}

/* --- settings and control plane (V2) --- */

static const char *const pm_keys[] = { "platform_d3cold", "d3cold_allowed", "idle_d3",
				       "power_control",	  "autosuspend_delay_ms",
				       "d3hot_promotion", "pm_delays",	    NULL };

/* idle_d3=off holds the probe reference, as disable_idle_d3 does. While a
 * client is connected the one reference that keeps the open device awake
 * changes roles instead (probe <-> open), so the count never moves under
 * the session: an open device cannot suspend behind its client's back, and
 * its LOW_POWER_ENTRY/EXIT and close stay balanced (the kernel latches
 * disable_idle_d3 per device for the same reason). req_lock orders it
 * against open and close. */
static int set_idle_d3(struct vfpm_device *dev, bool on)
{
	struct dev_pm *pm = &dev->pm;
	pthread_mutex_lock(&dev->req_lock);
	pthread_rwlock_wrlock(&pm->memory_lock);
	bool was = pm->set.idle_d3;
	pm->set.idle_d3 = on;
	bool open = pm->client_connected;
	pthread_rwlock_unlock(&pm->memory_lock);
	if (was != on) {
		if (open && on && pm->probe_ref) {
			pm->probe_ref = false;
			pm->open_ref = true;
		} else if (open && !on && pm->open_ref) {
			pm->open_ref = false;
			pm->probe_ref = true;
		} else if (!open && !on && !pm->probe_ref) {
			pm->probe_ref = true;
			rpm_get(&pm->rpm);
		} else if (!open && on && pm->probe_ref) {
			pm->probe_ref = false;
			rpm_put(&pm->rpm);
		}
	}
	pthread_mutex_unlock(&dev->req_lock);
	return 0;
}

int pm_set(struct vfpm_device *dev, const char *key, const char *val)
{
	struct dev_pm *pm = &dev->pm;
	bool b;
	if (!strcmp(key, "power_control")) {
		if (strcmp(val, "on") && strcmp(val, "auto"))
			return -EINVAL;
		/* on resumes the device and fires an armed wakeup (B16) */
		rpm_set_power_on(&pm->rpm, !strcmp(val, "on"));
		return 0;
	}
	if (!strcmp(key, "autosuspend_delay_ms")) {
		char *end;
		errno = 0;
		long ms = strtol(val, &end, 10);
		if (errno || *end || !*val || ms < -1 || ms > 3600000)
			return -EINVAL;
		pthread_rwlock_wrlock(&pm->memory_lock);
		pm->set.autosuspend_delay_ms = (int)ms;
		pthread_rwlock_unlock(&pm->memory_lock);
		rpm_set_autosuspend_delay(&pm->rpm, (int)ms);
		return 0;
	}
	if (!strcmp(key, "d3hot_promotion")) {
		enum pm_promotion p;
		if (!strcmp(val, "off"))
			p = PM_PROMOTE_OFF;
		else if (!strcmp(val, "nosoftrst"))
			p = PM_PROMOTE_NOSOFTRST;
		else if (!strcmp(val, "always"))
			p = PM_PROMOTE_ALWAYS;
		else
			return -EINVAL;
		pthread_rwlock_wrlock(&pm->memory_lock);
		pm->set.d3hot_promotion = p;
		pthread_rwlock_unlock(&pm->memory_lock);
		return 0;
	}
	if (!strcmp(key, "pm_delays")) {
		if (strcmp(val, "pci") && strcmp(val, "none"))
			return -EINVAL;
		pthread_rwlock_wrlock(&pm->memory_lock);
		__atomic_store_n(&pm->set.pm_delays, !strcmp(val, "pci"), __ATOMIC_RELAXED);
		pthread_rwlock_unlock(&pm->memory_lock);
		return 0;
	}
	bool *field = !strcmp(key, "platform_d3cold")  ? &pm->set.platform_d3cold
		      : !strcmp(key, "d3cold_allowed") ? &pm->set.d3cold_allowed
		      : !strcmp(key, "idle_d3")	       ? &pm->set.idle_d3
						       : NULL;
	if (!field)
		return -ENOENT;
	if (opts_parse_bool(val, &b))
		return -EINVAL;
	if (field == &pm->set.idle_d3)
		return set_idle_d3(dev, b);
	pthread_rwlock_wrlock(&pm->memory_lock);
	bool was = *field;
	*field = b;
	pthread_rwlock_unlock(&pm->memory_lock);
	/* As the kernel's d3cold_allowed_store: a change resumes the device
	 * (an armed wakeup fires, B11), which then suspends again, to the
	 * target the new setting gives. */
	if (was != b && dev->pm_ready)   /* not while pm_init parses options */
		rpm_resume(&pm->rpm);
	return 0;
}

/* A host (control-plane) config access, as the PCI core's
 * pci_config_pm_runtime_get: a reference that waits for a suspend or resume
 * in flight (a write can no longer land between a suspend's snapshot and
 * its D3cold and be undone by the resume), and a resume from D3cold only
 * (B16). A PMCSR write resumes from any suspended state, so the power state
 * and the runtime-PM state never disagree. */
int pm_ctl_config_rw(struct vfpm_device *dev, unsigned off, void *buf, unsigned len, bool write)
{
	struct dev_pm *pm = &dev->pm;
	enum rpm_status st = rpm_get_settled(&pm->rpm);
	if (st == RPM_SUSPENDED) {
		pthread_rwlock_rdlock(&pm->memory_lock);
		bool cold = pm->power_state == VFPM_D3COLD;
		pthread_rwlock_unlock(&pm->memory_lock);
		bool pmcsr = write && dev->pm_cap && off < dev->pm_cap + PCI_PM_CTRL + 2 &&
			     dev->pm_cap + PCI_PM_CTRL < off + len;
		if ((cold || pmcsr) && rpm_get(&pm->rpm)) {
			rpm_put_noidle(&pm->rpm);
			rpm_put(&pm->rpm);
			return -EIO;
		}
		if (cold || pmcsr)
			rpm_put_noidle(&pm->rpm);   /* the settled reference now holds it up */
	}
	/* req_lock: a write may reset the device (FLR), which is serialised
	 * against the session's requests */
	pthread_mutex_lock(&dev->req_lock);
	int rc = device_region_rw(dev, VFU_PCI_CONFIG, off, buf, len, write);
	pthread_mutex_unlock(&dev->req_lock);
	rpm_put(&pm->rpm);
	return rc;
}

int pm_inject_intx(struct vfpm_device *dev)
{
	if (!dev->has_intx)
		return -ENODEV;
	pthread_mutex_lock(&dev->lock);
	dev->intx_level = true;
	dev->intx_pulse = true;
	int rc = irq_intx_update_locked(dev);
	pthread_mutex_unlock(&dev->lock);
	return rc == -EAGAIN ? 0 : rc;   /* held back by a mask: pending */
}

struct json_object *pm_status_json(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	pthread_rwlock_rdlock(&pm->memory_lock);
	uint64_t now = now_ns();
	uint64_t since = (uint64_t)pm->state_since.tv_sec * 1000000000ull +
			 (uint64_t)pm->state_since.tv_nsec;
	json_object_object_add(o, "power_state",
			       json_object_new_string(pm_state_name(pm->power_state)));
	json_object_object_add(o, "runtime_status",
			       json_object_new_string(rpm_status_name(rpm_status(&pm->rpm))));
	json_object_object_add(o, "usage_count", json_object_new_int(rpm_usage(&pm->rpm)));
	struct json_object *lp = json_object_new_object();
	json_object_object_add(lp, "engaged", json_object_new_boolean(pm->engaged));
	json_object_object_add(lp, "wakeup_armed",
			       json_object_new_boolean(pm->engaged && pm->wake_fd >= 0));
	json_object_object_add(o, "low_power", lp);
	json_object_object_add(o, "client_connected", json_object_new_boolean(pm->client_connected));
	bool revoked = false;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		revoked |= dev->bars[i].revoked;
	json_object_object_add(o, "mmap_revoked", json_object_new_boolean(revoked));
	struct json_object *st = json_object_new_object();
	json_object_object_add(st, "platform_d3cold", json_object_new_boolean(pm->set.platform_d3cold));
	json_object_object_add(st, "d3cold_allowed", json_object_new_boolean(pm->set.d3cold_allowed));
	json_object_object_add(st, "idle_d3", json_object_new_boolean(pm->set.idle_d3));
	pthread_mutex_lock(&pm->rpm.lock);
	bool on = pm->rpm.power_on;
	uint64_t susp = pm->rpm.suspends, res = pm->rpm.resumes, under = pm->rpm.underflows;
	uint64_t susp_err = pm->rpm.suspend_errors;
	pthread_mutex_unlock(&pm->rpm.lock);
	json_object_object_add(st, "power_control", json_object_new_string(on ? "on" : "auto"));
	json_object_object_add(st, "autosuspend_delay_ms",
			       json_object_new_int(pm->set.autosuspend_delay_ms));
	static const char *const promo[] = { "off", "nosoftrst", "always" };
	json_object_object_add(st, "d3hot_promotion",
			       json_object_new_string(promo[pm->set.d3hot_promotion]));
	json_object_object_add(st, "pm_delays", json_object_new_string(pm->set.pm_delays ? "pci" : "none"));
	json_object_object_add(o, "settings", st);
	struct json_object *c = json_object_new_object();
	json_object_object_add(c, "suspends", json_object_new_int64((int64_t)susp));
	json_object_object_add(c, "resumes", json_object_new_int64((int64_t)res));
	json_object_object_add(c, "wakeups_signalled", json_object_new_int64((int64_t)pm->wakeups_signalled));
	json_object_object_add(c, "usage_underflows", json_object_new_int64((int64_t)under));
	json_object_object_add(c, "suspend_errors", json_object_new_int64((int64_t)susp_err));
	struct json_object *r = json_object_new_object();
	for (int i = 0; i <= VFPM_D3COLD; i++) {
		uint64_t ns = pm->residency_ns[i] + (i == pm->power_state ? now - since : 0);
		json_object_object_add(r, state_names[i], json_object_new_int64((int64_t)(ns / 1000000)));
	}
	json_object_object_add(c, "residency_ms", r);
	json_object_object_add(o, "counters", c);
	pthread_rwlock_unlock(&pm->memory_lock);
	return o;
}

/* --- lifecycle --- */

/* Takes the PM keys out of opts (the model never sees them). */
int pm_init(struct vfpm_device *dev, struct vfpm_opts *opts, struct rpm_wq *wq)
{
	struct dev_pm *pm = &dev->pm;
	pthread_rwlock_init(&pm->memory_lock, NULL);
	pthread_mutex_init(&pm->trans_lock, NULL);
	rpm_init(&pm->rpm, &rt_ops, dev, wq);
	pm->wake_fd = -1;
	pm->power_state = VFPM_D0;
	clock_gettime(CLOCK_MONOTONIC, &pm->state_since);
	pm->set = (struct pm_settings){ .platform_d3cold = false, .d3cold_allowed = true,
					.idle_d3 = true, .pm_delays = true };
	const char *power_control = NULL;
	for (size_t i = 0; i < opts->n;) {
		bool mine = false;
		for (const char *const *k = pm_keys; *k; k++)
			mine |= !strcmp(*k, opts->kv[i].key);
		if (!mine) {
			i++;
			continue;
		}
		int rc;
		if (!strcmp(opts->kv[i].key, "power_control")) {
			rc = strcmp(opts->kv[i].val, "on") && strcmp(opts->kv[i].val, "auto") ? -EINVAL : 0;
			power_control = !strcmp(opts->kv[i].val, "on") ? "on" : NULL;
		} else if (!strcmp(opts->kv[i].key, "idle_d3")) {
			bool b;
			rc = opts_parse_bool(opts->kv[i].val, &b);
			pm->set.idle_d3 = b;
		} else {
			rc = pm_set(dev, opts->kv[i].key, opts->kv[i].val);
		}
		if (rc) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, dev->name, "bad value '%s' for %s",
				 opts->kv[i].val, opts->kv[i].key);
			return -EINVAL;
		}
		free(opts->kv[i].key);
		free(opts->kv[i].val);
		opts->kv[i] = opts->kv[--opts->n];
	}
	if (power_control)
		rpm_get_noresume(&pm->rpm), pm->rpm.power_on = true;
	return 0;
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

void pm_go_idle(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	if (!pm->set.idle_d3) {
		pm->probe_ref = true;
		rpm_get_noresume(&pm->rpm);   /* the probe reference */
	}
	rpm_idle(&pm->rpm);
}

void pm_fini(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	rpm_fini(&pm->rpm);
	if (pm->wake_fd >= 0)
		close(pm->wake_fd);
	free(pm->pm_save);
	free(pm->rt_save);
	pthread_rwlock_destroy(&pm->memory_lock);
	pthread_mutex_destroy(&pm->trans_lock);
}
