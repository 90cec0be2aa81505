#include "stress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
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

bool stress_join(pthread_t *th, unsigned n, int grace_s, pid_t pid)
{
	struct timespec limit;
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += grace_s;
	bool hung = false;
	for (unsigned i = 0; i < n; i++) {
		if (!hung && pthread_timedjoin_np(th[i], NULL, &limit) == 0)
			continue;
		if (!hung) {
			hung = true;
			stress_fail("vfpmd stopped answering (deadlock?): killing pid %d", (int)pid);
			kill(pid, SIGKILL);
		}
		pthread_join(th[i], NULL);
	}
	return hung;
}

bool log_has_sanitizer_report(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: cannot read %s\n", run_name, path);
		return false;
	}
	char line[1024];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		if (strstr(line, "WARNING: ThreadSanitizer") || strstr(line, "ERROR: AddressSanitizer") ||
		    strstr(line, "runtime error:")) {
			if (!found)
				fprintf(stderr, "%s: sanitizer report in vfpmd's log:\n", run_name);
			found = true;
		}
		if (found)
			fputs(line, stderr);
	}
	fclose(f);
	return found;
}

void print_log_tail(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char buf[8192];
	if (fseek(f, 0, SEEK_END) == 0) {
		long sz = ftell(f);
		if (sz > (long)sizeof(buf) - 1 && fseek(f, sz - (long)sizeof(buf) + 1, SEEK_SET)) {
			/* cannot seek: read from wherever we are */
		} else if (sz <= (long)sizeof(buf) - 1) {
			rewind(f);
		}
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	fprintf(stderr, "%s: tail of vfpmd's log:\n%s\n", run_name, buf);
}
