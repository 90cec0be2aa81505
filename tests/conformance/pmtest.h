/* Shared helpers for the PM conformance suites: a real vfpmd, the
 * client library, and observations through the control plane. */
#ifndef VFPM_PMTEST_H
#define VFPM_PMTEST_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "harness.h"
#include "vfpm/client.h"

/* A snapshot of one device's status as the control plane reports it. */
struct pm_status {
	char power_state[8];      /* "D0".."D3cold" */
	char runtime_status[12];  /* "active", "suspended", ... */
	int usage_count;
	bool engaged, wakeup_armed, client_connected, mmap_revoked;
	char power_control[8];
	uint64_t suspends, resumes, wakeups_signalled, underflows;
	uint64_t residency_ms[5];
};

/* Starts vfpmd with one demo device named "dev" with pm_delays=none plus
 * the extra comma-separated keys (may be NULL or ""). */
int pmt_start(struct vfpmd_proc *p, const char *keys);
/* Reads the status of device name (NULL: the first device). */
int pmt_status(struct vfpmd_proc *p, const char *name, struct pm_status *st);
/* Waits up to timeout_ms for runtime_status == want. Returns 0 or -ETIMEDOUT. */
int pmt_wait_status(struct vfpmd_proc *p, const char *name, const char *want, int timeout_ms);
/* Control-plane set; returns 0 or -errno from the reply. */
int pmt_set(struct vfpmd_proc *p, const char *name, const char *key, const char *value);
/* One control-plane request; the parsed reply (json_object_put it) or
 * NULL. The reply buffer fits the status of hundreds of devices. */
struct json_object *pmt_ctl_json(struct vfpmd_proc *p, const char *request);
/* 0 for {"ok":true}, else -errno from the reply (-EPROTO if malformed). */
int pmt_reply_errno(struct json_object *reply);
/* Control-plane config read (write with wr) of device name. */
int pmt_ctl_config_rw(struct vfpmd_proc *p, const char *name, unsigned off, unsigned len,
		      uint32_t *val, bool wr);
/* Offset of capability id of device name, walked through the control
 * plane's config reads (0 if absent or on error). */
unsigned pmt_ctl_find_cap(struct vfpmd_proc *p, const char *name, uint8_t id);
/* Control-plane config access (B16). */
int pmt_ctl_config_read(struct vfpmd_proc *p, const char *name, unsigned off, unsigned len,
			uint32_t *val);

/* Low-power features through DEVICE_FEATURE (contract §4). */
int pmt_lp_entry(struct vfpm_client *c);
int pmt_lp_entry_wakeup(struct vfpm_client *c, int efd);   /* index 0 */
int pmt_lp_exit(struct vfpm_client *c);

/* Config-space helpers through REGION_READ/WRITE. */
int pmt_cfg_read(struct vfpm_client *c, unsigned off, void *buf, unsigned len);
int pmt_cfg_write(struct vfpm_client *c, unsigned off, const void *buf, unsigned len);
/* Offset of the PM capability (0 if none). */
unsigned pmt_pm_cap(struct vfpm_client *c);
/* Non-blocking read of an eventfd counter (0 if nothing pending). */
uint64_t pmt_eventfd_count(int efd);
/* A per-test deadline, so that a hung server fails a test instead of the
 * whole run: after seconds, name's message is printed, the watched server
 * (pmt_watch, 0 for none) is killed and the process exits with 124. */
void pmt_watchdog_arm(const char *name, int seconds);
void pmt_watch(pid_t pid);
void pmt_watchdog_disarm(void);
/* The pause between two polls of a wait loop that has a deadline. Never a
 * wait on its own. */
void pmt_sleep_ms(int ms);
/* A window of ms in which the test shows that nothing happens: no idle
 * suspend of a device held by a reference or a setting, no DMA from a
 * device that may not master. vfpmd's work queue and device threads run
 * in another process, which a test cannot step, and an absence has no
 * event to wait for: the window is the only way to look. The same rules
 * are asserted by stepping in process (tests/unit/core, test_rpm_step). */
void pmt_quiet_ms(int ms);

#endif
