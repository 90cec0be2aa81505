/* Power management inside the core: what pm_state.c gives pm_runtime.c.
 * Internal to lib/core/pm_*.c; the rest of the core uses core.h. Every
 * function here runs inside pm_trans_begin/end (trans_lock held, memory_lock
 * write-held) unless it says otherwise.
 */
#ifndef VFPM_CORE_PM_H
#define VFPM_CORE_PM_H

#include "core.h"

/* Records a new power state (the PMCSR PowerState field follows it); a
 * change is logged with its cause (NULL: only PMCSR is refreshed). */
void pm_set_state_raw(struct vfpm_device *dev, int state, const char *cause)
	REQUIRES(dev->pm.memory_lock);
/* The PCI delay of a transition (V4); none with pm_delays=none. Call with
 * memory_lock dropped (pm_mem_drop). */
void pm_transition_delay(struct vfpm_device *dev, int from, int to);
/* A user's or the suspend path's transition (B26-B30): 0 or the errno the
 * kernel would return internally (PMCSR writes stay silent about it). */
int pm_set_state(struct vfpm_device *dev, int target, const char *cause)
	REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);
/* memory_lock dropped and retaken around the model's callbacks and delays
 * (trans_lock stays held). */
void pm_mem_drop(struct vfpm_device *dev) REQUIRES(dev->pm.trans_lock) RELEASE(dev->pm.memory_lock);
void pm_mem_retake(struct vfpm_device *dev) REQUIRES(dev->pm.trans_lock) ACQUIRE(dev->pm.memory_lock);
/* Config space, saved and put back (PowerState excepted). */
uint8_t *pm_cfg_snapshot(struct vfpm_device *dev);
void pm_cfg_restore(struct vfpm_device *dev, const uint8_t *s);
/* The device lost its state: the model resets, config returns to power-on
 * values (the host's SR-IOV state kept). */
void pm_lost_state(struct vfpm_device *dev) REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);
/* The model quiesces and suspends (a refusal is returned after resume()
 * undid the quiesce) / resumes. */
int pm_model_park(struct vfpm_device *dev, int target)
	REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);
void pm_model_unpark(struct vfpm_device *dev) REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);
/* The client's open reference, lent while low power is engaged or a guest
 * D3hot is promoted (V3), taken back when neither holds. */
void pm_open_ref_sync(struct vfpm_device *dev) REQUIRES(dev->pm.trans_lock, dev->pm.memory_lock);

#endif
