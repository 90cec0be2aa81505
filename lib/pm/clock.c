/* The monotonic pm_clock (clock.h). */
#include "clock.h"

#include <errno.h>
#include <time.h>

static uint64_t mono_now_ns(const struct pm_clock *c)
{
	(void)c;
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void mono_sleep_ns(const struct pm_clock *c, uint64_t ns)
{
	(void)c;
	struct timespec t = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
}

const struct pm_clock pm_clock_monotonic = { .now_ns = mono_now_ns, .sleep_ns = mono_sleep_ns };
