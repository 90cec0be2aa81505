/* Shared scaffolding of the stress tests: a bounded run that any thread
 * can stop with a failure, and a cheap per-thread random generator. One
 * run per test process. */
#ifndef VFPM_STRESS_H
#define VFPM_STRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Starts the clock: running() turns false after seconds. name prefixes
 * the failure messages. */
void stress_begin(const char *name, int seconds);
/* Records a failure (the first one is kept) and stops every thread. */
void stress_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* True until the time is up or a failure stopped the run. */
bool running(void);
int stress_failures(void);
const char *stress_first_failure(void);
void sleep_us(long us);
/* Joins the n threads; if they are not all done grace_s seconds from now
 * (a deadlocked server leaves client calls waiting forever), records a
 * failure and kills pid so that they see EOF. Returns whether it had to. */
bool stress_join(pthread_t *th, unsigned n, int grace_s, pid_t pid);
/* Whether the server's log holds a sanitizer report (printed from the
 * first one on). */
bool log_has_sanitizer_report(const char *path);
/* Prints the last 8 KiB of the server's log. */
void print_log_tail(const char *path);
/* xorshift32: each thread keeps its own state */
uint32_t rnd(uint32_t *state);

#endif
