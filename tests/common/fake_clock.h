/* A pm_clock the test moves (lib/pm/clock.h): now_ns() reads a counter
 * that only fake_clock_advance() and the clock's own sleep move, so a
 * transition delay costs no real time and is visible as elapsed time. */
#ifndef VFPM_TEST_FAKE_CLOCK_H
#define VFPM_TEST_FAKE_CLOCK_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "pm/clock.h"

struct fake_clock {
	struct pm_clock clock;   /* first: the callbacks cast back */
	atomic_uint_fast64_t now;
	atomic_uint_fast64_t slept;   /* total of the sleeps asked for */
};

static inline uint64_t fake_clock_now_ns(const struct pm_clock *c)
{
	return atomic_load(&((struct fake_clock *)(uintptr_t)c)->now);
}

static inline void fake_clock_sleep_ns(const struct pm_clock *c, uint64_t ns)
{
	struct fake_clock *f = (struct fake_clock *)(uintptr_t)c;
	atomic_fetch_add(&f->slept, ns);
	atomic_fetch_add(&f->now, ns);
}

/* Starts at 1 s: a due time of 0 would not tell "now" from "never set". */
static inline void fake_clock_init(struct fake_clock *f)
{
	f->clock.now_ns = fake_clock_now_ns;
	f->clock.sleep_ns = fake_clock_sleep_ns;
	atomic_init(&f->now, 1000000000u);
	atomic_init(&f->slept, 0);
}

static inline void fake_clock_advance_ms(struct fake_clock *f, uint64_t ms)
{
	atomic_fetch_add(&f->now, ms * 1000000u);
}

static inline uint64_t fake_clock_ms(struct fake_clock *f)
{
	return atomic_load(&f->now) / 1000000u;
}

#endif
