/* The time the power-management code reads and waits on: the due time of
 * an idle suspend (rpm.c), D-state residency and the PCI transition
 * delays (core/pm_state.c). vfpmd uses the monotonic clock; the in-process core
 * tests use a clock they advance themselves, whose sleep moves it forward
 * instead of waiting (tests/common/fake_clock.h), so that time-dependent
 * behaviour is tested without sleeping. */
#ifndef VFPM_PM_CLOCK_H
#define VFPM_PM_CLOCK_H

#include <stdint.h>

struct pm_clock {
	/* Nanoseconds on a monotonic scale (its origin is the clock's). */
	uint64_t (*now_ns)(const struct pm_clock *c);
	/* Waits ns nanoseconds, or makes now_ns() that much later. */
	void (*sleep_ns)(const struct pm_clock *c, uint64_t ns);
};

/* CLOCK_MONOTONIC and nanosleep (restarted after a signal). */
extern const struct pm_clock pm_clock_monotonic;

static inline uint64_t pm_clock_now(const struct pm_clock *c)
{
	return c->now_ns(c);
}

static inline void pm_clock_sleep_us(const struct pm_clock *c, uint64_t us)
{
	c->sleep_ns(c, us * 1000u);
}

#endif
