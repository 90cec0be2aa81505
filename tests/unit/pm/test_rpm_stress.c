/* Concurrency stress for the runtime-PM core, meant to run under
 * ThreadSanitizer too (suite "concurrency").
 *
 * Four getter threads do get / device work / put pairs while one thread
 * toggles power_control and one calls rpm_idle. The callbacks and the
 * device work check, with atomic flags, that:
 *   - suspend and resume callbacks never overlap;
 *   - no callback runs while a getter is inside its device work;
 *   - device work only runs on a powered device whose status is ACTIVE.
 *
 * One nuance of the lock-free fast path (see rpm.h): a suspender that loses
 * the race publishes SUSPENDING, re-reads the usage count, sees the getter
 * and puts ACTIVE back without calling the callback. A getter that won
 * that race can therefore observe SUSPENDING, for a few instructions,
 * while it already owns an active device. Those sightings are counted and
 * printed, not failed; SUSPENDED or RESUMING, a callback in flight or an
 * unpowered device during device work are failures.
 *
 * RPM_STRESS_ITERS (default 200000) sets the pairs per getter thread. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pm/rpm.h"

#define NGETTERS 4

struct dev {
	struct rpm rpm;
	atomic_int in_cb;          /* 0, or 1 suspend / 2 resume running */
	atomic_int powered;        /* the fake hardware's state */
	atomic_int in_work;        /* getters inside device work */
	atomic_long cb_overlap;    /* a callback began while another ran */
	atomic_long cb_during_work;
	atomic_long cb_bad_status; /* callback saw a status it cannot have */
	atomic_long work_bad;      /* device work on SUSPENDED/RESUMING */
	atomic_long work_unpowered;
	atomic_long work_in_cb;
	atomic_long work_transient; /* SUSPENDING seen by an owner (allowed) */
	atomic_long get_errors;
	atomic_long suspends, resumes;
	atomic_int stop;
	long iters;
};

static void sleep_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000L };
	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void cb_check(struct dev *d, int which, enum rpm_status expect)
{
	if (atomic_exchange(&d->in_cb, which))
		atomic_fetch_add(&d->cb_overlap, 1);
	if (atomic_load(&d->in_work))
		atomic_fetch_add(&d->cb_during_work, 1);
	if (rpm_status(&d->rpm) != expect)
		atomic_fetch_add(&d->cb_bad_status, 1);
}

static void cb_done(struct dev *d)
{
	if (atomic_load(&d->in_work))
		atomic_fetch_add(&d->cb_during_work, 1);
	atomic_store(&d->in_cb, 0);
}

static int dev_suspend(void *ctx)
{
	struct dev *d = ctx;
	cb_check(d, 1, RPM_SUSPENDING);
	atomic_store(&d->powered, 0);
	for (volatile int i = 0; i < 200; i++)   /* "save state" */
		;
	atomic_fetch_add(&d->suspends, 1);
	cb_done(d);
	return 0;
}

static int dev_resume(void *ctx)
{
	struct dev *d = ctx;
	cb_check(d, 2, RPM_RESUMING);
	for (volatile int i = 0; i < 200; i++)   /* "restore state" */
		;
	atomic_store(&d->powered, 1);
	atomic_fetch_add(&d->resumes, 1);
	cb_done(d);
	return 0;
}

static const struct rpm_ops dev_ops = { .suspend = dev_suspend, .resume = dev_resume };

/* What a driver does between get and put: touch the hardware. */
static void device_work(struct dev *d)
{
	atomic_fetch_add(&d->in_work, 1);
	enum rpm_status st = rpm_status(&d->rpm);
	if (st == RPM_SUSPENDED || st == RPM_RESUMING)
		atomic_fetch_add(&d->work_bad, 1);
	else if (st == RPM_SUSPENDING)
		atomic_fetch_add(&d->work_transient, 1);
	if (!atomic_load(&d->powered))
		atomic_fetch_add(&d->work_unpowered, 1);
	if (atomic_load(&d->in_cb))
		atomic_fetch_add(&d->work_in_cb, 1);
	atomic_fetch_sub(&d->in_work, 1);
}

static void *getter_main(void *arg)
{
	struct dev *d = arg;
	for (long i = 0; i < d->iters; i++) {
		if (rpm_get(&d->rpm))
			atomic_fetch_add(&d->get_errors, 1);
		device_work(d);
		rpm_put(&d->rpm);
		if ((i & 4095) == 4095)
			sleep_us(20);   /* let the count reach 0 now and then */
	}
	return NULL;
}

static void *power_main(void *arg)
{
	struct dev *d = arg;
	while (!atomic_load(&d->stop)) {
		if (rpm_set_power_on(&d->rpm, true))
			atomic_fetch_add(&d->get_errors, 1);
		sleep_us(50);
		rpm_set_power_on(&d->rpm, false);
		sleep_us(50);
	}
	return NULL;
}

static void *idle_main(void *arg)
{
	struct dev *d = arg;
	while (!atomic_load(&d->stop)) {
		rpm_idle(&d->rpm);
		sleep_us(30);
	}
	return NULL;
}

static uint64_t ctr(struct rpm *r, const uint64_t *field)
{
	pthread_mutex_lock(&r->lock);
	uint64_t v = *field;
	pthread_mutex_unlock(&r->lock);
	return v;
}

static bool wait_status(struct rpm *r, enum rpm_status st, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (rpm_status(r) != st) {
		if (now_ns() > end)
			return false;
		sleep_us(1000);
	}
	return true;
}

static long iters_from_env(void)
{
	const char *s = getenv("RPM_STRESS_ITERS");
	long n = s ? strtol(s, NULL, 10) : 0;
	return n > 0 ? n : 200000;
}

static void test_stress(void **state)
{
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create(&wq), 0);
	struct dev *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	atomic_store(&d->powered, 1);
	d->iters = iters_from_env();
	rpm_init(&d->rpm, &dev_ops, d, wq);
	rpm_idle(&d->rpm);

	uint64_t t0 = now_ns();
	pthread_t g[NGETTERS], pw, id;
	for (int i = 0; i < NGETTERS; i++)
		assert_int_equal(pthread_create(&g[i], NULL, getter_main, d), 0);
	assert_int_equal(pthread_create(&pw, NULL, power_main, d), 0);
	assert_int_equal(pthread_create(&id, NULL, idle_main, d), 0);
	for (int i = 0; i < NGETTERS; i++)
		pthread_join(g[i], NULL);
	atomic_store(&d->stop, 1);
	pthread_join(pw, NULL);
	pthread_join(id, NULL);
	double secs = (double)(now_ns() - t0) / 1e9;

	rpm_idle(&d->rpm);
	bool suspended = wait_status(&d->rpm, RPM_SUSPENDED, 2000);

	printf("rpm-stress: %d getters x %ld pairs in %.2f s; suspends %ld resumes %ld; "
	       "transient SUSPENDING seen by owners %ld\n",
	       NGETTERS, d->iters, secs, atomic_load(&d->suspends), atomic_load(&d->resumes),
	       atomic_load(&d->work_transient));
	printf("rpm-stress: cb_overlap %ld cb_during_work %ld cb_bad_status %ld work_bad %ld "
	       "work_unpowered %ld work_in_cb %ld get_errors %ld\n",
	       atomic_load(&d->cb_overlap), atomic_load(&d->cb_during_work),
	       atomic_load(&d->cb_bad_status), atomic_load(&d->work_bad),
	       atomic_load(&d->work_unpowered), atomic_load(&d->work_in_cb),
	       atomic_load(&d->get_errors));

	assert_true(suspended);
	assert_int_equal(rpm_usage(&d->rpm), 0);
	assert_int_equal(ctr(&d->rpm, &d->rpm.underflows), 0);
	assert_int_equal(ctr(&d->rpm, &d->rpm.suspend_errors), 0);
	assert_int_equal(ctr(&d->rpm, &d->rpm.resume_errors), 0);
	assert_int_equal(atomic_load(&d->cb_overlap), 0);
	assert_int_equal(atomic_load(&d->cb_during_work), 0);
	assert_int_equal(atomic_load(&d->cb_bad_status), 0);
	assert_int_equal(atomic_load(&d->work_bad), 0);
	assert_int_equal(atomic_load(&d->work_unpowered), 0);
	assert_int_equal(atomic_load(&d->work_in_cb), 0);
	assert_int_equal(atomic_load(&d->get_errors), 0);
	assert_int_equal((uint64_t)atomic_load(&d->suspends), ctr(&d->rpm, &d->rpm.suspends));
	assert_int_equal((uint64_t)atomic_load(&d->resumes), ctr(&d->rpm, &d->rpm.resumes));
	assert_true(atomic_load(&d->suspends) >= 1);

	rpm_fini(&d->rpm);
	rpm_wq_destroy(wq);
	free(d);
}

/* Two threads flipping power_control: whatever the interleaving, "on"
 * holds exactly one reference and "auto" none. */
struct toggler {
	struct dev *d;
	int n;
};

static void *toggle_main(void *arg)
{
	struct toggler *t = arg;
	for (int i = 0; i < t->n; i++) {
		rpm_set_power_on(&t->d->rpm, true);
		rpm_set_power_on(&t->d->rpm, false);
	}
	return NULL;
}

static void test_power_control_concurrent(void **state)
{
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create(&wq), 0);
	struct dev *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	atomic_store(&d->powered, 1);
	rpm_init(&d->rpm, &dev_ops, d, wq);
	long n = iters_from_env();
	struct toggler t = { d, (int)n };
	pthread_t a, b;
	assert_int_equal(pthread_create(&a, NULL, toggle_main, &t), 0);
	assert_int_equal(pthread_create(&b, NULL, toggle_main, &t), 0);
	pthread_join(a, NULL);
	pthread_join(b, NULL);
	assert_false(d->rpm.power_on);
	assert_int_equal(rpm_usage(&d->rpm), 0);
	assert_int_equal(ctr(&d->rpm, &d->rpm.underflows), 0);
	rpm_idle(&d->rpm);
	assert_true(wait_status(&d->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&d->cb_overlap), 0);
	rpm_fini(&d->rpm);
	rpm_wq_destroy(wq);
	free(d);
}

/* rpm_fini racing a queued or running idle suspend, with nothing else
 * ordering the two threads: the callback is never called after rpm_fini
 * has returned (and, under TSan, no data race on the teardown path). */
static atomic_int fini_done, after_fini, fini_suspends;

static int fr_suspend(void *ctx)
{
	if (atomic_load(&fini_done))
		atomic_fetch_add(&after_fini, 1);
	atomic_fetch_add(&fini_suspends, 1);
	sleep_us(200);   /* widen the window for rpm_fini */
	return 0;
}

static const struct rpm_ops fr_ops = { .suspend = fr_suspend };

static void test_fini_race(void **state)
{
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create(&wq), 0);
	struct rpm *r = calloc(1, sizeof(*r));
	assert_non_null(r);
	for (int i = 0; i < 1000; i++) {
		atomic_store(&fini_done, 0);
		rpm_init(r, &fr_ops, NULL, wq);
		rpm_idle(r);
		if (i % 8)
			sleep_us((i % 8) * 40);   /* before, during or after the callback */
		rpm_fini(r);
		atomic_store(&fini_done, 1);
	}
	sleep_us(20000);
	assert_int_equal(atomic_load(&after_fini), 0);
	printf("rpm-stress: fini race: %d of 1000 suspends ran before fini\n",
	       atomic_load(&fini_suspends));
	rpm_wq_destroy(wq);
	free(r);
}

/* Several devices on one bounded pool (3 workers for 6 devices), each
 * with a getter thread, and suspends slow enough to overlap: workers are
 * started and exit all the time. Every device keeps the invariants above,
 * the pool never passes its bound, every device suspends once idle, and
 * the pool is back to one worker afterwards. */
#define POOL_DEVS 6
#define POOL_MAX 3

static struct rpm_wq *pool_wq;
static atomic_long pool_over_bound;

static int slow_suspend(void *ctx)
{
	if (rpm_wq_workers(pool_wq) > POOL_MAX)
		atomic_fetch_add(&pool_over_bound, 1);
	sleep_us(100);
	return dev_suspend(ctx);
}

static const struct rpm_ops slow_ops = { .suspend = slow_suspend, .resume = dev_resume };

static void *pool_getter_main(void *arg)
{
	struct dev *d = arg;
	for (long i = 0; i < d->iters; i++) {
		if (rpm_get(&d->rpm))
			atomic_fetch_add(&d->get_errors, 1);
		device_work(d);
		rpm_put(&d->rpm);
		if ((i & 255) == 255)
			sleep_us(150);   /* idle long enough to suspend */
	}
	return NULL;
}

static bool wait_workers(struct rpm_wq *wq, unsigned want, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (rpm_wq_workers(wq) != want) {
		if (now_ns() > end)
			return false;
		sleep_us(1000);
	}
	return true;
}

static void test_many_devices_one_pool(void **state)
{
	assert_int_equal(rpm_wq_create_bounded(&pool_wq, POOL_MAX), 0);
	struct dev *d = calloc(POOL_DEVS, sizeof(*d));
	assert_non_null(d);
	long iters = iters_from_env() / 20;
	for (int k = 0; k < POOL_DEVS; k++) {
		atomic_store(&d[k].powered, 1);
		d[k].iters = iters;
		rpm_init(&d[k].rpm, &slow_ops, &d[k], pool_wq);
	}
	pthread_t g[POOL_DEVS];
	for (int k = 0; k < POOL_DEVS; k++)
		assert_int_equal(pthread_create(&g[k], NULL, pool_getter_main, &d[k]), 0);
	for (int k = 0; k < POOL_DEVS; k++)
		pthread_join(g[k], NULL);
	long suspends = 0;
	for (int k = 0; k < POOL_DEVS; k++) {
		assert_true(wait_status(&d[k].rpm, RPM_SUSPENDED, 10000));
		assert_int_equal(atomic_load(&d[k].powered), 0);
		assert_int_equal(rpm_usage(&d[k].rpm), 0);
		assert_int_equal(atomic_load(&d[k].cb_overlap), 0);
		assert_int_equal(atomic_load(&d[k].cb_during_work), 0);
		assert_int_equal(atomic_load(&d[k].cb_bad_status), 0);
		assert_int_equal(atomic_load(&d[k].work_bad), 0);
		assert_int_equal(atomic_load(&d[k].work_unpowered), 0);
		assert_int_equal(atomic_load(&d[k].work_in_cb), 0);
		assert_int_equal(atomic_load(&d[k].get_errors), 0);
		assert_int_equal(ctr(&d[k].rpm, &d[k].rpm.suspends), atomic_load(&d[k].suspends));
		suspends += atomic_load(&d[k].suspends);
	}
	assert_int_equal(atomic_load(&pool_over_bound), 0);
	assert_true(wait_workers(pool_wq, 1, 10000));
	printf("rpm-stress: pool: %ld suspends of %d devices on %d workers\n", suspends, POOL_DEVS,
	       POOL_MAX);
	for (int k = 0; k < POOL_DEVS; k++)
		rpm_fini(&d[k].rpm);
	rpm_wq_destroy(pool_wq);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
		cmocka_unit_test(test_power_control_concurrent),
		cmocka_unit_test(test_fini_race),
		cmocka_unit_test(test_many_devices_one_pool),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
