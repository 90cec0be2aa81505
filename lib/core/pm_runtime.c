/* Power management, the runtime side: the runtime-PM callbacks a device's
 * idle suspend and resume run (B8, B9, B17-B19, V1), the low-power features
 * (B1-B16), the request wrapper (contract §3), the session's open and close
 * halves, and the settings and status the control plane sees (V2). The
 * D-state machine underneath is pm_state.c.
 *
 * Locks: as pm_state.c; every change of PM state is inside
 * pm_trans_begin/end, and the waiting rpm calls are made outside them.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pm.h"

/* --- runtime PM callbacks --- */

static int target_state(struct vfpm_device *dev)
{
	if (!dev->pm_cap)
		return VFPM_D0;
	/* a VF has no platform power resource of its own: never D3cold */
	if (dev->pm.set.platform_d3cold && dev->pm.set.d3cold_allowed && !dev->is_vf)
		return VFPM_D3COLD;
	return VFPM_D3HOT;
}

/* Undoes the INTx mask a suspend set (B17). B19: an assertion it held
 * back fires once, and the line stays (auto)masked until the client
 * unmasks. Takes dev->lock. */
static void intx_unmask_by_pm(struct vfpm_device *dev)
{
	mutex_lock(&dev->lock);
	if (dev->pm.intx_masked_by_pm) {
		dev->pm.intx_masked_by_pm = false;
		dev->intx_masked = false;
		irq_intx_update_locked(dev);
	}
	mutex_unlock(&dev->lock);
}

static int rt_suspend(void *ctx)
{
	struct vfpm_device *dev = ctx;
	struct dev_pm *pm = &dev->pm;

	pm_trans_begin(dev);
	/* B8: through D0 first (restores pm_save after a user D3hot) */
	int rc = pm_set_state(dev, VFPM_D0, "runtime suspend goes through D0");
	if (rc) {
		pm_trans_end(dev);
		return rc;
	}
	/* B17/B18/B20: mask INTx if it is in use and the client has not */
	mutex_lock(&dev->lock);
	if (irq_intx_in_use_locked(dev) && !dev->intx_masked) {
		dev->intx_masked = true;
		pm->intx_masked_by_pm = true;
	}
	mutex_unlock(&dev->lock);
	free(pm->rt_save);
	pm->rt_save = pm_cfg_snapshot(dev);

	int target = target_state(dev);
	/* no PM capability: "suspended" in D0, the model still parks */
	rc = pm_model_park(dev, target);
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
		pm_mem_drop(dev);
		pm_transition_delay(dev, VFPM_D0, VFPM_D3HOT);
		pm_mem_retake(dev);
		pm_set_state_raw(dev, VFPM_D3HOT, "runtime suspend");
		if (target == VFPM_D3COLD) {
			pm_set_state_raw(dev, VFPM_D3COLD, "runtime suspend, platform removes power");
			region_drop_all(dev);   /* memory really returned */
		}
	}
	region_mmap_update(dev);
	pm_trans_end(dev);
	return 0;
}

/* memory_lock held for write: T6 and B11, and the silent exit (T7, T10). */
static void pm_lowpower_exit_locked(struct vfpm_device *dev, bool signal, const char *cause)
	REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock)
{
	struct dev_pm *pm = &dev->pm;
	if (!pm->engaged)
		return;
	DLOG(dev, VFPM_LOG_INFO, "low-power exit (%s)", cause);
	dev_event(dev, EV_LOW_POWER_EXIT, -1, -1, cause);
	pm->engaged = false;
	pm_open_ref_sync(dev);   /* the reference ENTRY dropped */
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
	pm_mem_drop(dev);
	pm_transition_delay(dev, from, VFPM_D0);
	pm_mem_retake(dev);
	/* Only a device that lost its state (D3cold, or D3hot with
	 * NoSoftRst-) needs the PCI core's restore: a NoSoftRst+ device in
	 * D3hot kept its config space, including host-side writes made while
	 * it was suspended, which a restore would silently undo. */
	if (from == VFPM_D3COLD || (from == VFPM_D3HOT && pm->needs_pm_restore)) {
		pm_lost_state(dev);
		if (pm->rt_save)
			pm_cfg_restore(dev, pm->rt_save);
	}
	free(pm->rt_save);
	pm->rt_save = NULL;
	pm_set_state_raw(dev, VFPM_D0, "runtime resume");    /* B9 */
	pm_model_unpark(dev);

	intx_unmask_by_pm(dev);

	/* B11: the armed wakeup fires once and disengages */
	if (pm->engaged && pm->wake_fd >= 0)
		pm_lowpower_exit_locked(dev, true, "device resumed: wakeup signalled");
	/* engaged-awake after D3cold: BAR contents are gone; a revoked BAR
	 * with no copy reads zeros through pm_bar_shadow, which allocates
	 * the zeroed copy on first use (not here: see there) */
	region_mmap_update(dev);
	pm_trans_end(dev);
	return 0;
}

/* The runtime-PM core has counted the transition: subscribers that show
 * counters (the metrics file) look again. */
static void rt_settled(void *ctx)
{
	events_poke(ctx);
}

static const struct rpm_ops rt_ops = { .suspend = rt_suspend,
				       .resume = rt_resume,
				       .settled = rt_settled };

/* --- low-power features (kernel §1.2 steps 15-16; session.c checks the
 * payload and the eventfd, steps 11-14) --- */

int pm_feature_entry(struct vfpm_device *dev, int wake_fd)
{
	struct dev_pm *pm = &dev->pm;
	pm_trans_begin(dev);
	/* mappings are zapped before the engaged test, as in the kernel */
	region_revoke_all(dev);
	if (pm->engaged) {
		region_mmap_update(dev);
		pm_trans_end(dev);
		return -EINVAL;   /* the caller closes wake_fd (B2) */
	}
	pm->engaged = true;
	pm->wake_fd = wake_fd;
	DLOG(dev, VFPM_LOG_INFO, "low-power entry%s", wake_fd >= 0 ? " (wakeup armed)" : "");
	dev_event(dev, EV_LOW_POWER_ENTRY, -1, -1, wake_fd >= 0 ? "wakeup armed" : NULL);
	pm_open_ref_sync(dev);   /* the open reference; the wrapper's put idles */
	pm_trans_end(dev);
	return 0;
}

int pm_feature_exit(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
	pm_lowpower_exit_locked(dev, false, "LOW_POWER_EXIT");   /* T7: no signal */
	region_mmap_update(dev);
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
	/* kernel §2.2: with idle_d3=off the probe reference stands for the open
	 * one (open and close take none). req_lock: against set_idle_d3. */
	mutex_lock(&dev->req_lock);
	/* a BAR the last close could not give a new file still has a former
	 * client's: no client shares it (region_scrub_all) */
	if (region_any_stale(dev)) {
		pm_trans_begin(dev);
		int rc = region_renew_stale(dev);
		pm_trans_end(dev);
		if (rc) {
			mutex_unlock(&dev->req_lock);
			return rc;
		}
	}
	if (!pm->probe_ref) {
		int rc = rpm_resume_and_get(&pm->rpm);
		if (rc) {
			mutex_unlock(&dev->req_lock);
			return rc;
		}
		pm->open_ref = true;
	}
	rwlock_wrlock(&pm->memory_lock);
	pm->client_connected = true;
	rwlock_unlock(&pm->memory_lock);
	mutex_unlock(&dev->req_lock);
	return 0;
}

/* Client gone (T2, T10), before the device is reset (device_close):
 * low power ends silently (B15) and a reference holds the device in D0 for
 * the reset (B31). */
void pm_close_begin(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	pm_trans_begin(dev);
	pm_lowpower_exit_locked(dev, false, "client gone");   /* B15: no signal */
	pm_trans_end(dev);
	rpm_get(&pm->rpm);
}

/* After the reset: nothing of the client's survives in BAR memory (each
 * memfd BAR gets a new file: the client may keep the old descriptor), the
 * open reference and the close's own go, and the device may idle (B35). */
void pm_close_end(struct vfpm_device *dev)
{
	struct dev_pm *pm = &dev->pm;
	pm_trans_begin(dev);
	pm->client_connected = false;
	free(pm->pm_save);
	pm->pm_save = NULL;
	region_scrub_all(dev);
	region_mmap_update(dev);
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
				       "d3hot_promotion", "pm_delays",	    "power_d0_mw",
				       "power_d1_mw",	  "power_d2_mw",    "power_d3hot_mw",
				       "power_d3cold_mw", NULL };

/* --- energy model (docs/operating.md, "Energy") --- */

/* The defaults resemble a small PCIe x1 device (a NIC or an NVMe drive),
 * in milliwatts; docs/operating.md gives their sources. */
static const uint32_t power_mw_default[5] = { 3000, 1500, 750, 330, 66 };
#define POWER_MW_MAX 1000000u   /* 1 kW: more than any PCIe slot gives */

static const char *const power_keys[5] = { "power_d0_mw", "power_d1_mw", "power_d2_mw",
					   "power_d3hot_mw", "power_d3cold_mw" };

static int power_key(const char *key)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(key, power_keys[i]))
			return i;
	return -1;
}

static int parse_mw(const char *val, uint32_t *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(val, &end, 10);
	if (errno || *end || !*val || *val == '-' || *val == '+' || v > POWER_MW_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* No state draws more than D0: what is saved against D0 never shrinks. */
static bool power_mw_valid(const uint32_t mw[5])
{
	for (int i = 1; i < 5; i++)
		if (mw[i] > mw[0])
			return false;
	return true;
}

/* memory_lock held. Every state's residency up to now. */
static void residency_now(struct dev_pm *pm, uint64_t out[5])
{
	uint64_t now = pm_clock_now(pm->clock);
	uint64_t since = (uint64_t)pm->state_since.tv_sec * 1000000000ull +
			 (uint64_t)pm->state_since.tv_nsec;
	for (int i = 0; i <= VFPM_D3COLD; i++)
		out[i] = pm->residency_ns[i] + (i == pm->power_state ? now - since : 0);
}

/* memory_lock held. Energy (pJ = mW x ns) used and what D0 would have
 * used, at residency res: the total up to the mark plus the residency
 * since the mark at the power now set. */
static void energy_at(const struct dev_pm *pm, const uint64_t res[5], unsigned __int128 *used,
		      unsigned __int128 *d0)
{
	*used = pm->energy_pj;
	*d0 = pm->energy_d0_pj;
	for (int i = 0; i < 5; i++) {
		unsigned __int128 dt = res[i] - pm->energy_mark_ns[i];
		*used += dt * pm->set.power_mw[i];
		*d0 += dt * pm->set.power_mw[VFPM_D0];
	}
}

/* The control plane's power_dX_mw=N: the energy so far is counted at the
 * old figure, from now on at the new one. */
static int set_power_mw(struct vfpm_device *dev, int state, const char *val)
{
	struct dev_pm *pm = &dev->pm;
	uint32_t mw;
	if (parse_mw(val, &mw))
		return -EINVAL;
	rwlock_wrlock(&pm->memory_lock);
	uint32_t next[5];
	memcpy(next, pm->set.power_mw, sizeof(next));
	next[state] = mw;
	int rc = power_mw_valid(next) ? 0 : -EINVAL;
	if (!rc) {
		uint64_t res[5];
		residency_now(pm, res);
		energy_at(pm, res, &pm->energy_pj, &pm->energy_d0_pj);
		memcpy(pm->energy_mark_ns, res, sizeof(res));
		pm->set.power_mw[state] = mw;
	}
	rwlock_unlock(&pm->memory_lock);
	return rc;
}

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
	mutex_lock(&dev->req_lock);
	rwlock_wrlock(&pm->memory_lock);
	bool was = pm->set.idle_d3;
	pm->set.idle_d3 = on;
	bool open = pm->client_connected;
	rwlock_unlock(&pm->memory_lock);
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
	mutex_unlock(&dev->req_lock);
	return 0;
}

int pm_set(struct vfpm_device *dev, const char *key, const char *val)
{
	struct dev_pm *pm = &dev->pm;
	bool b;
	int pk = power_key(key);
	if (pk >= 0)
		return set_power_mw(dev, pk, val);
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
		rwlock_wrlock(&pm->memory_lock);
		pm->set.autosuspend_delay_ms = (int)ms;
		rwlock_unlock(&pm->memory_lock);
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
		rwlock_wrlock(&pm->memory_lock);
		pm->set.d3hot_promotion = p;
		rwlock_unlock(&pm->memory_lock);
		return 0;
	}
	if (!strcmp(key, "pm_delays")) {
		if (strcmp(val, "pci") && strcmp(val, "none"))
			return -EINVAL;
		rwlock_wrlock(&pm->memory_lock);
		__atomic_store_n(&pm->set.pm_delays, !strcmp(val, "pci"), __ATOMIC_RELAXED);
		rwlock_unlock(&pm->memory_lock);
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
	rwlock_wrlock(&pm->memory_lock);
	bool was = *field;
	*field = b;
	rwlock_unlock(&pm->memory_lock);
	/* As the kernel's d3cold_allowed_store: a change resumes the device
	 * (a host-side resume: an armed wakeup fires, B16), which then suspends again, to the
	 * target the new setting gives. */
	if (was != b && dev->pm_ready)   /* not while pm_init parses options */
		rpm_resume(&pm->rpm);
	return 0;
}

int pm_inject_intx(struct vfpm_device *dev)
{
	if (!dev->has_intx)
		return -ENODEV;
	mutex_lock(&dev->lock);
	dev->intx_level = true;
	dev->intx_pulse = true;
	int rc = irq_intx_update_locked(dev);
	mutex_unlock(&dev->lock);
	return rc == -EAGAIN ? 0 : rc;   /* held back by a mask: pending */
}

/* A consistent view of the device's PM for the control plane (V2). */
void pm_get_status(struct vfpm_device *dev, struct pm_status *st)
{
	struct dev_pm *pm = &dev->pm;
	rwlock_rdlock(&pm->memory_lock);
	*st = (struct pm_status){
		.power_state = pm->power_state,
		.runtime_status = rpm_status(&pm->rpm),
		.usage_count = rpm_usage(&pm->rpm),
		.engaged = pm->engaged,
		.wakeup_armed = pm->engaged && pm->wake_fd >= 0,
		.client_connected = pm->client_connected,
		.mmap_revoked = region_any_revoked(dev),
		.set = pm->set,
		.wakeups_signalled = pm->wakeups_signalled,
	};
	residency_now(pm, st->residency_ns);
	unsigned __int128 used, d0;
	energy_at(pm, st->residency_ns, &used, &d0);
	rwlock_unlock(&pm->memory_lock);
	/* d0 >= used: no state draws more than D0 (power_mw_valid) */
	st->energy_used_uj = (uint64_t)(used / 1000000u);
	st->energy_saved_uj = (uint64_t)((d0 - used) / 1000000u);
	rpm_get_stats(&pm->rpm, &st->rpm);
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
	pm->clock = rpm_wq_clock(wq);
	uint64_t t0 = pm_clock_now(pm->clock);
	pm->state_since = (struct timespec){ (time_t)(t0 / 1000000000ull), (long)(t0 % 1000000000ull) };
	pm->set = (struct pm_settings){ .platform_d3cold = false, .d3cold_allowed = true,
					.idle_d3 = true, .pm_delays = true };
	memcpy(pm->set.power_mw, power_mw_default, sizeof(power_mw_default));
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
		} else if (power_key(opts->kv[i].key) >= 0) {
			/* checked together below: the keys come in any order */
			rc = parse_mw(opts->kv[i].val, &pm->set.power_mw[power_key(opts->kv[i].key)]);
		} else if (!strcmp(opts->kv[i].key, "idle_d3")) {
			bool b = false;
			rc = opts_parse_bool(opts->kv[i].val, &b);
			if (!rc)
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
	if (!power_mw_valid(pm->set.power_mw)) {
		core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, dev->name,
			 "power_d0_mw (%u) must be at least the power of every other state",
			 pm->set.power_mw[VFPM_D0]);
		return -EINVAL;
	}
	if (power_control)
		rpm_set_power_on(&pm->rpm, true);   /* ACTIVE: takes the reference, no resume */
	return 0;
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
