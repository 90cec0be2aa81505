/* The probe model of the in-process core tests: a device with a PM
 * capability, INTx, a memfd BAR0 and a PCIe capability (FLR), whose
 * callbacks only count themselves. Keys: nosoftrst (default on) and d1
 * (default off) shape the PM capability; bar_pages (default 1) sizes BAR0
 * in 4 KiB pages. */
#ifndef VFPM_TEST_PROBE_MODEL_H
#define VFPM_TEST_PROBE_MODEL_H

#include "vfpm/device.h"

struct probe {
	unsigned quiesces, suspends, resumes, resets;
	enum vfpm_dstate last_target;   /* of the last suspend */
};

/* "probe"; a device's priv is its struct probe */
extern const struct vfpm_model probe_model;

#endif
