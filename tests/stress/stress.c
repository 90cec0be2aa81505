#include "stress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static const char *run_name = "stress";
static atomic_bool stop_flag;
static atomic_int failures;
static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char first_failure[512];
static struct timespec deadline;

void stress_begin(const char *name, int seconds)
{
	run_name = name;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += seconds;
}

void stress_fail(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&fail_mu);
	if (atomic_fetch_add(&failures, 1) == 0)
		snprintf(first_failure, sizeof(first_failure), "%s", msg);
	pthread_mutex_unlock(&fail_mu);
	fprintf(stderr, "%s: FAIL: %s\n", run_name, msg);
	atomic_store(&stop_flag, true);
}

bool running(void)
{
	if (atomic_load(&stop_flag))
		return false;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec > deadline.tv_sec ||
	    (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec)) {
		atomic_store(&stop_flag, true);
		return false;
	}
	return true;
}

int stress_failures(void)
{
	return atomic_load(&failures);
}

const char *stress_first_failure(void)
{
	pthread_mutex_lock(&fail_mu);
	const char *s = first_failure;   /* written once, under the lock */
	pthread_mutex_unlock(&fail_mu);
	return s;
}

void sleep_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000L };
	nanosleep(&t, NULL);
}

uint32_t rnd(uint32_t *s)
{
	uint32_t x = *s;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}
