/* Unit tests for the runtime-PM core (lib/pm/rpm.c) on the threaded work
 * queue: status machine, usage count, idle work queue, autosuspend delay,
 * power_control and teardown. A fake ops table records every callback in
 * a global event log with a sequence number and a monotonic timestamp.
 *
 * No sleeps. A callback that must be caught in progress blocks on a gate
 * the test opens. Waits are for a state (the rpm's own condition
 * variable) with a deadline that only bounds a broken run. "Nothing
 * happened" is checked after settle(): the queue has emptied and a second
 * device's idle suspend, queued behind everything, has run on the single
 * worker, so every idle check queued before has had its turn. The same
 * rules on a stepped queue and a fake clock are test_rpm_step.c's. */
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
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pm/rpm.h"

/* --- event log --- */

enum ev_kind { EV_SUSPEND_START, EV_SUSPEND_END, EV_RESUME_START, EV_RESUME_END };

struct ev {
	int dev;
	enum ev_kind kind;
	uint64_t seq;
	uint64_t ns;
};

#define MAX_EV 256

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ev ev_log[MAX_EV];
static unsigned ev_n;
static uint64_t ev_seq;

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void log_ev(int dev, enum ev_kind k)
{
	pthread_mutex_lock(&log_mu);
	if (ev_n < MAX_EV)
		ev_log[ev_n++] = (struct ev){ dev, k, ev_seq, now_ns() };
	ev_seq++;
	pthread_mutex_unlock(&log_mu);
}

static void log_clear(void)
{
	pthread_mutex_lock(&log_mu);
	ev_n = 0;
	pthread_mutex_unlock(&log_mu);
}

/* Copies the log; returns the number of events. */
static unsigned log_get(struct ev *out)
{
	pthread_mutex_lock(&log_mu);
	unsigned n = ev_n;
	memcpy(out, ev_log, n * sizeof(*out));
	pthread_mutex_unlock(&log_mu);
	return n;
}

/* --- fake device --- */

struct fake {
	int id;
	struct rpm rpm;
	atomic_int suspend_calls, resume_calls;
	atomic_int suspend_rc, resume_rc;
	atomic_int suspend_gated;   /* the suspend callback waits for gate_open */
	atomic_int entered;         /* callbacks entered so far */
	atomic_int in_cb;          /* a callback of this device is running */
	atomic_int overlaps;       /* a callback started while another ran */
	atomic_int finished;       /* rpm_fini returned */
	atomic_int after_fini;     /* callbacks called after rpm_fini */
	bool gated;                /* suspend waits for gate_open (gate_mu) */
};

/* The gate a gated suspend callback waits at (one test at a time). */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static bool gate_open;

static void gate_wait(void)
{
	pthread_mutex_lock(&gate_mu);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void gate_set(bool open)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = open;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

/* Per device, a gate the test controls: a gated device's suspend callback blocks in
 * it until the test opens it (a model whose suspend is stuck). */

static void fgate_close(struct fake *f)
{
	pthread_mutex_lock(&gate_mu);
	f->gated = true;
	pthread_mutex_unlock(&gate_mu);
}

static void fgate_open(struct fake *f)
{
	pthread_mutex_lock(&gate_mu);
	f->gated = false;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

static void fgate_pass(struct fake *f)
{
	pthread_mutex_lock(&gate_mu);
	while (f->gated)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void cb_enter(struct fake *f, enum ev_kind k)
{
	if (atomic_load(&f->finished))
		atomic_fetch_add(&f->after_fini, 1);
	if (atomic_exchange(&f->in_cb, 1))
		atomic_fetch_add(&f->overlaps, 1);
	log_ev(f->id, k);
	atomic_fetch_add(&f->entered, 1);
}

static void cb_leave(struct fake *f, enum ev_kind k)
{
	log_ev(f->id, k);
	atomic_store(&f->in_cb, 0);
}

static int fake_suspend(void *ctx)
{
	struct fake *f = ctx;
	cb_enter(f, EV_SUSPEND_START);
	atomic_fetch_add(&f->suspend_calls, 1);
	if (atomic_load(&f->suspend_gated))
		gate_wait();
	fgate_pass(f);
	int rc = atomic_load(&f->suspend_rc);
	cb_leave(f, EV_SUSPEND_END);
	return rc;
}

static int fake_resume(void *ctx)
{
	struct fake *f = ctx;
	cb_enter(f, EV_RESUME_START);
	atomic_fetch_add(&f->resume_calls, 1);
	int rc = atomic_load(&f->resume_rc);
	cb_leave(f, EV_RESUME_END);
	return rc;
}

static const struct rpm_ops fake_ops = { .suspend = fake_suspend, .resume = fake_resume };

/* --- fixture: one work queue and two devices --- */

struct fx {
	struct rpm_wq *wq;
	struct fake dev[2];
	bool fini_done[2];
	atomic_int fini_in_cb;
};

/* The queue of the ordered fixture has one worker, so idle checks run one
 * after another in due order: settle() relies on it. The pool fixture has
 * the default bound, for the tests of suspends running side by side. */
static int setup_workers(void **state, unsigned workers)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	log_clear();
	gate_set(false);
	assert_int_equal(rpm_wq_create_bounded(&x->wq, workers), 0);
	for (int i = 0; i < 2; i++) {
		x->dev[i].id = i;
		rpm_init(&x->dev[i].rpm, &fake_ops, &x->dev[i], x->wq);
	}
	*state = x;
	return 0;
}

static int setup(void **state)
{
	return setup_workers(state, 1);
}

static int setup_pool(void **state)
{
	return setup_workers(state, RPM_WQ_MAX_WORKERS);
}

static void fini_dev(struct fx *x, int i)
{
	if (x->fini_done[i])
		return;
	rpm_fini(&x->dev[i].rpm);
	atomic_store(&x->dev[i].finished, 1);
	x->fini_done[i] = true;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	gate_set(true);   /* a failed test leaves no callback waiting */
	fgate_open(&x->dev[0]);
	fgate_open(&x->dev[1]);
	fini_dev(x, 0);
	fini_dev(x, 1);
	rpm_wq_destroy(x->wq);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(atomic_load(&x->dev[i].overlaps), 0);
		assert_int_equal(atomic_load(&x->dev[i].after_fini), 0);
	}
	free(x);
	return 0;
}

/* --- helpers --- */

/* Counters are written under the PM lock, after the status store: read
 * them under the lock too. */
static uint64_t ctr(struct rpm *r, const uint64_t *field)
{
	pthread_mutex_lock(&r->lock);
	uint64_t v = *field;
	pthread_mutex_unlock(&r->lock);
	return v;
}

/* Every status change is broadcast on r->cv (CLOCK_REALTIME) under r->lock. */
static bool wait_status(struct rpm *r, enum rpm_status st, int timeout_ms)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += timeout_ms / 1000;
	t.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&r->lock);
	while (rpm_status(r) != st)
		if (pthread_cond_timedwait(&r->cv, &r->lock, &t) == ETIMEDOUT)
			break;
	bool ok = rpm_status(r) == st;
	pthread_mutex_unlock(&r->lock);
	return ok;
}

/* Polls (yielding the CPU) until cond(arg) holds or timeout_ms passes:
 * for states with no condition variable to wait on. */
static bool wait_for(bool (*cond)(void *), void *arg, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000u;
	while (!cond(arg)) {
		if (now_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

static bool entered_once(void *arg)
{
	return atomic_load(&((struct fake *)arg)->entered) >= 1;
}

static bool queue_empty(void *arg)
{
	uint64_t due;
	return !rpm_wq_next_due(arg, &due);
}

static bool usage_is_one(void *arg)
{
	return rpm_usage(arg) == 1;
}

static bool is_dead(void *arg)
{
	struct rpm *r = arg;
	pthread_mutex_lock(&r->lock);
	bool dead = r->dead;
	pthread_mutex_unlock(&r->lock);
	return dead;
}

/* Every idle check queued so far has run (see the top of the file):
 * dev[1] is the marker, so a test that uses settle() checks dev[0]. */
static void settle(struct fx *x)
{
	struct fake *m = &x->dev[1];
	assert_true(wait_for(queue_empty, x->wq, 5000));
	if (rpm_status(&m->rpm) == RPM_SUSPENDED) {
		assert_int_equal(rpm_get(&m->rpm), 0);
		rpm_put_noidle(&m->rpm);
	}
	assert_int_equal(rpm_usage(&m->rpm), 0);
	rpm_idle(&m->rpm);
	assert_true(wait_status(&m->rpm, RPM_SUSPENDED, 5000));
}

static bool workers_are(void *arg)
{
	struct { struct rpm_wq *wq; unsigned want; } *w = arg;
	return rpm_wq_workers(w->wq) == w->want;
}

static bool wait_workers(struct rpm_wq *wq, unsigned want, int timeout_ms)
{
	struct { struct rpm_wq *wq; unsigned want; } w = { wq, want };
	return wait_for(workers_are, &w, timeout_ms);
}

static bool int_is(void *arg)
{
	struct { atomic_int *v; int want; } *w = arg;
	return atomic_load(w->v) == w->want;
}

static bool wait_int(atomic_int *v, int want, int timeout_ms)
{
	struct { atomic_int *v; int want; } w = { v, want };
	return wait_for(int_is, &w, timeout_ms);
}

/* Suspends an idle device through the work queue and checks it. */
static void suspend_now(struct fake *f)
{
	int before = atomic_load(&f->suspend_calls);
	rpm_idle(&f->rpm);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&f->suspend_calls), before + 1);
	assert_int_equal(rpm_usage(&f->rpm), 0);
}

/* --- tests --- */

static uint64_t find_ev(int dev, enum ev_kind k)
{
	struct ev ev[MAX_EV];
	unsigned n = log_get(ev);
	for (unsigned i = 0; i < n; i++)
		if (ev[i].dev == dev && ev[i].kind == k)
			return ev[i].ns;
	return 0;
}

static unsigned count_ev(int dev)
{
	struct ev ev[MAX_EV];
	unsigned n = log_get(ev), k = 0;
	for (unsigned i = 0; i < n; i++)
		k += ev[i].dev == dev;
	return k;
}

static void test_initial_state(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(rpm_usage(r), 0);
	assert_false(r->power_on);
	assert_int_equal(r->autosuspend_delay_ms, 0);
	/* nothing is queued by init: the device stays active until rpm_idle */
	assert_true(queue_empty(x->wq));
	settle(x);
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(atomic_load(&x->dev[0].suspend_calls), 0);
	assert_string_equal(rpm_status_name(RPM_ACTIVE), "active");
	assert_string_equal(rpm_status_name(RPM_SUSPENDING), "suspending");
	assert_string_equal(rpm_status_name(RPM_SUSPENDED), "suspended");
	assert_string_equal(rpm_status_name(RPM_RESUMING), "resuming");
	assert_string_equal(rpm_status_name((enum rpm_status)7), "unknown");
}

static void test_idle_suspends_async(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	atomic_store(&f->suspend_gated, 1);
	rpm_idle(&f->rpm);
	/* asynchronous: rpm_idle returned, the callback runs on the worker
	 * and cannot end before the gate opens */
	assert_true(wait_for(entered_once, f, 5000));
	assert_int_equal(rpm_status(&f->rpm), RPM_SUSPENDING);
	assert_int_equal(find_ev(0, EV_SUSPEND_END), 0);
	gate_set(true);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 5000));
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
	assert_int_equal(atomic_load(&f->resume_calls), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.suspends), 1);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	/* idle again on a suspended device: no second suspend */
	rpm_idle(&f->rpm);
	settle(x);
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
}

static void test_get_resumes_sync(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	assert_int_equal(rpm_get(&f->rpm), 0);
	/* synchronous: already done when rpm_get returns */
	assert_int_equal(atomic_load(&f->resume_calls), 1);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.resumes), 1);
	rpm_put_noidle(&f->rpm);
}

static void test_put_to_zero_suspends(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	assert_int_equal(rpm_get(&f->rpm), 0);
	assert_int_equal(rpm_get(&f->rpm), 0);
	assert_int_equal(atomic_load(&f->resume_calls), 1);
	rpm_put(&f->rpm);
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);   /* still 1 */
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
	rpm_put(&f->rpm);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&f->suspend_calls), 2);
	assert_int_equal(ctr(&f->rpm, &f->rpm.suspends), 2);
	assert_int_equal(rpm_usage(&f->rpm), 0);
}

static void test_active_get_put_no_callbacks(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	assert_int_equal(rpm_get(&f->rpm), 0);
	for (int i = 0; i < 10000; i++) {
		assert_int_equal(rpm_get(&f->rpm), 0);
		rpm_put(&f->rpm);
	}
	assert_int_equal(rpm_usage(&f->rpm), 1);
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(atomic_load(&f->suspend_calls), 0);
	assert_int_equal(atomic_load(&f->resume_calls), 0);
	assert_int_equal(count_ev(0), 0);   /* (settle's marker is device 1) */
	rpm_put_noidle(&f->rpm);
}

static void test_put_noidle_no_suspend(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	assert_int_equal(rpm_get(&f->rpm), 0);
	rpm_put_noidle(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(atomic_load(&f->suspend_calls), 0);
	/* an explicit idle check still works afterwards */
	suspend_now(f);
}

static void test_get_noresume(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	rpm_get_noresume(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_SUSPENDED);
	assert_int_equal(atomic_load(&f->resume_calls), 0);
	rpm_put_noidle(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 0);
}

static void test_resume_and_get_failure(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	atomic_store(&f->resume_rc, -EIO);
	assert_int_equal(rpm_resume_and_get(&f->rpm), -EIO);
	assert_int_equal(rpm_usage(&f->rpm), 0);   /* reference dropped */
	assert_int_equal(rpm_status(&f->rpm), RPM_SUSPENDED);
	assert_int_equal(atomic_load(&f->resume_calls), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.resume_errors), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.resumes), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 0);
	/* it works once the callback does */
	atomic_store(&f->resume_rc, 0);
	assert_int_equal(rpm_resume_and_get(&f->rpm), 0);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	rpm_put_noidle(&f->rpm);
}

static void test_get_failure_keeps_ref(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	atomic_store(&f->resume_rc, -EIO);
	assert_int_equal(rpm_get(&f->rpm), -EIO);
	assert_int_equal(rpm_usage(&f->rpm), 1);   /* reference kept */
	assert_int_equal(rpm_status(&f->rpm), RPM_SUSPENDED);
	assert_int_equal(ctr(&f->rpm, &f->rpm.resume_errors), 1);
	rpm_put(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 0);
}

static void test_suspend_failure(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	atomic_store(&f->suspend_rc, -EBUSY);
	rpm_idle(&f->rpm);
	settle(x);
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.suspend_errors), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.suspends), 0);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	/* still usable, and a later idle may succeed */
	assert_int_equal(rpm_get(&f->rpm), 0);
	assert_int_equal(atomic_load(&f->resume_calls), 0);
	atomic_store(&f->suspend_rc, 0);
	rpm_put(&f->rpm);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&f->suspend_calls), 2);
}

static void test_autosuspend_delay(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	rpm_set_autosuspend_delay(&f->rpm, 300);
	assert_int_equal(rpm_get(&f->rpm), 0);
	uint64_t t0 = now_ns();
	rpm_put(&f->rpm);
	/* the worker waits for the due time: the suspend starts no earlier
	 * (a lower bound, which a loaded machine cannot break); that nothing
	 * happens before it is test_rpm_step.c's, on a clock it controls */
	uint64_t due;
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 5000));
	uint64_t ts = find_ev(0, EV_SUSPEND_START);
	assert_true(ts >= t0 + 300000000u);   /* not before the delay */
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
}

static void test_autosuspend_get_cancels(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	rpm_set_autosuspend_delay(&f->rpm, 300);
	assert_int_equal(rpm_get(&f->rpm), 0);
	rpm_put(&f->rpm);
	assert_int_equal(rpm_get(&f->rpm), 0);   /* during the delay */
	/* the check queued by the put runs at its due time and finds the
	 * reference: wait until it has run (the queue empties), then settle */
	assert_true(wait_for(queue_empty, x->wq, 5000));
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(atomic_load(&f->suspend_calls), 0);
	assert_int_equal(atomic_load(&f->resume_calls), 0);
	/* the next put restarts the delay from its own time */
	uint64_t t0 = now_ns();
	rpm_put(&f->rpm);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 1000));
	assert_true(find_ev(0, EV_SUSPEND_START) >= t0 + 300000000u);
}

static void test_negative_delay_never_suspends(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	rpm_set_autosuspend_delay(&f->rpm, -1);
	assert_int_equal(rpm_get(&f->rpm), 0);
	rpm_put(&f->rpm);
	rpm_idle(&f->rpm);
	rpm_put(&f->rpm);   /* underflow, counted, no effect */
	assert_true(queue_empty(x->wq));   /* nothing queued: nothing can run */
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(atomic_load(&f->suspend_calls), 0);
	/* back to 0: an idle suspends at once */
	rpm_set_autosuspend_delay(&f->rpm, 0);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
}

static void test_power_control(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	assert_int_equal(rpm_set_power_on(&f->rpm, true), 0);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	assert_int_equal(atomic_load(&f->resume_calls), 1);
	/* on again: no second reference */
	assert_int_equal(rpm_set_power_on(&f->rpm, true), 0);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	/* no suspend while on, even after get/put and idle */
	assert_int_equal(rpm_get(&f->rpm), 0);
	rpm_put(&f->rpm);
	rpm_idle(&f->rpm);
	settle(x);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
	/* auto: the reference goes and the device suspends */
	assert_int_equal(rpm_set_power_on(&f->rpm, false), 0);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&f->suspend_calls), 2);
	assert_int_equal(rpm_set_power_on(&f->rpm, false), 0);   /* no change */
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 0);
}

static void test_underflow(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	rpm_put(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 1);
	rpm_put_noidle(&f->rpm);
	rpm_put(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 3);
	/* the count still works normally */
	assert_int_equal(rpm_get(&f->rpm), 0);
	assert_int_equal(rpm_usage(&f->rpm), 1);
	rpm_put(&f->rpm);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.underflows), 3);
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
}

struct getter {
	struct rpm *r;
	uint64_t t_call;
	int rc;
};

static void *getter_main(void *arg)
{
	struct getter *g = arg;
	g->t_call = now_ns();
	g->rc = rpm_get(g->r);
	return NULL;
}

static void test_resume_waits_for_suspend(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	atomic_store(&f->suspend_gated, 1);
	rpm_idle(&f->rpm);
	assert_true(wait_for(entered_once, f, 5000));   /* suspend callback running */
	assert_int_equal(rpm_status(&f->rpm), RPM_SUSPENDING);

	struct getter g = { .r = &f->rpm };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, getter_main, &g), 0);
	/* the get has counted its reference: it waits for the suspend now */
	assert_true(wait_for(usage_is_one, &f->rpm, 5000));
	gate_set(true);
	pthread_join(t, NULL);
	assert_int_equal(g.rc, 0);
	assert_int_equal(rpm_status(&f->rpm), RPM_ACTIVE);
	assert_int_equal(rpm_usage(&f->rpm), 1);

	struct ev ev[MAX_EV];
	unsigned n = log_get(ev);
	assert_int_equal(n, 4);
	assert_int_equal(ev[0].kind, EV_SUSPEND_START);
	assert_int_equal(ev[1].kind, EV_SUSPEND_END);
	assert_int_equal(ev[2].kind, EV_RESUME_START);
	assert_int_equal(ev[3].kind, EV_RESUME_END);
	for (unsigned i = 1; i < n; i++) {
		assert_true(ev[i].seq > ev[i - 1].seq);
		assert_true(ev[i].ns >= ev[i - 1].ns);
	}
	/* the get really arrived while the suspend callback ran */
	assert_true(g.t_call > ev[0].ns && g.t_call < ev[1].ns);
	assert_int_equal(atomic_load(&f->overlaps), 0);
	assert_int_equal(ctr(&f->rpm, &f->rpm.suspends), 1);
	assert_int_equal(ctr(&f->rpm, &f->rpm.resumes), 1);
	rpm_put_noidle(&f->rpm);
}

static void test_fini_with_queued_suspend(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	rpm_set_autosuspend_delay(&f->rpm, 300);
	assert_int_equal(rpm_get(&f->rpm), 0);
	rpm_put(&f->rpm);   /* suspend queued for +300 ms */
	assert_false(queue_empty(x->wq));
	fini_dev(x, 0);
	/* removed from the queue, not waited for: nothing is left to run */
	assert_true(queue_empty(x->wq));
	settle(x);
	assert_int_equal(atomic_load(&f->suspend_calls), 0);
	assert_int_equal(atomic_load(&f->after_fini), 0);
	/* the queue still serves other devices (settle's suspend was one) */
	assert_int_equal(rpm_status(&x->dev[1].rpm), RPM_SUSPENDED);
}

static void *fini_main(void *arg)
{
	struct fx *x = arg;
	fini_dev(x, 0);
	/* what rpm_fini's return found: was a callback still running? */
	atomic_store(&x->fini_in_cb, atomic_load(&x->dev[0].in_cb));
	return NULL;
}

static void test_fini_waits_for_running_suspend(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	atomic_store(&f->suspend_gated, 1);
	rpm_idle(&f->rpm);
	assert_true(wait_for(entered_once, f, 5000));
	/* rpm_fini on another thread; the gate opens only once it has marked
	 * the device dead, after which it can only wait for the callback */
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, fini_main, x), 0);
	assert_true(wait_for(is_dead, &f->rpm, 5000));
	assert_int_equal(atomic_load(&f->in_cb), 1);
	gate_set(true);
	pthread_join(t, NULL);
	/* the callback in flight completed before rpm_fini returned */
	assert_int_equal(atomic_load(&x->fini_in_cb), 0);
	assert_true(find_ev(0, EV_SUSPEND_END) != 0);
	settle(x);
	assert_int_equal(atomic_load(&f->suspend_calls), 1);
	assert_int_equal(atomic_load(&f->after_fini), 0);
}

static void test_rpm_resume_host(void **state)
{
	struct fx *x = *state;
	struct fake *f = &x->dev[0];
	suspend_now(f);
	assert_int_equal(rpm_resume(&f->rpm), 0);
	assert_int_equal(atomic_load(&f->resume_calls), 1);
	assert_int_equal(rpm_usage(&f->rpm), 0);
	/* no reference kept: idle again, it suspends */
	assert_true(wait_status(&f->rpm, RPM_SUSPENDED, 2000));
	assert_int_equal(atomic_load(&f->suspend_calls), 2);
}

/* One device's stuck suspend holds up no other device's idle suspend:
 * A's suspend blocks in the gate; B goes idle and suspends meanwhile. */
static void test_blocked_suspend_does_not_stop_others(void **state)
{
	struct fx *x = *state;
	struct fake *a = &x->dev[0], *b = &x->dev[1];
	fgate_close(a);
	rpm_idle(&a->rpm);
	assert_true(wait_int(&a->in_cb, 1, 5000));   /* A's suspend is in the gate */
	assert_int_equal(rpm_status(&a->rpm), RPM_SUSPENDING);

	rpm_idle(&b->rpm);
	assert_true(wait_status(&b->rpm, RPM_SUSPENDED, 10000));
	assert_int_equal(atomic_load(&b->suspend_calls), 1);
	assert_int_equal(ctr(&b->rpm, &b->rpm.suspends), 1);
	assert_int_equal(rpm_status(&a->rpm), RPM_SUSPENDING);   /* still stuck */
	assert_int_equal(ctr(&a->rpm, &a->rpm.suspends), 0);

	/* B wakes and idles again: it suspends a second time, A still stuck */
	assert_int_equal(rpm_get(&b->rpm), 0);
	assert_int_equal(atomic_load(&b->resume_calls), 1);
	rpm_put(&b->rpm);
	assert_true(wait_int(&b->suspend_calls, 2, 10000));
	assert_true(wait_status(&b->rpm, RPM_SUSPENDED, 10000));
	assert_int_equal(rpm_status(&a->rpm), RPM_SUSPENDING);

	assert_true(rpm_wq_workers(x->wq) >= 2);   /* B's ran beside A's */

	fgate_open(a);
	assert_true(wait_status(&a->rpm, RPM_SUSPENDED, 10000));
	assert_int_equal(atomic_load(&a->suspend_calls), 1);
	assert_int_equal(ctr(&a->rpm, &a->rpm.suspends), 1);
	/* nothing in flight: the pool is back to one thread */
	assert_true(wait_workers(x->wq, 1, 10000));
}

/* rpm_fini of a device returns while another device's suspend is stuck
 * (it waits for its own device only), and the stuck one's fini waits for
 * its callback. */
static void test_fini_beside_blocked_suspend(void **state)
{
	struct fx *x = *state;
	struct fake *a = &x->dev[0], *b = &x->dev[1];
	fgate_close(a);
	rpm_idle(&a->rpm);
	assert_true(wait_int(&a->in_cb, 1, 5000));
	rpm_set_autosuspend_delay(&b->rpm, 60000);   /* B queued, not due */
	fini_dev(x, 1);                              /* returns: A is not B */
	assert_int_equal(atomic_load(&b->suspend_calls), 0);
	assert_int_equal(rpm_status(&a->rpm), RPM_SUSPENDING);
	fgate_open(a);
	fini_dev(x, 0);
	assert_int_equal(atomic_load(&a->in_cb), 0);
	assert_int_equal(rpm_status(&a->rpm), RPM_SUSPENDED);
}

/* The bound: with two workers and two stuck suspends a third device's due
 * suspend waits in the queue, and runs once one worker is free. */
static void test_worker_bound(void **state)
{
	(void)state;
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create_bounded(&wq, 0), -EINVAL);
	assert_int_equal(rpm_wq_create_bounded(&wq, 2), 0);
	struct fake f[3];
	memset(f, 0, sizeof(f));
	for (int i = 0; i < 3; i++) {
		f[i].id = 10 + i;
		rpm_init(&f[i].rpm, &fake_ops, &f[i], wq);
	}
	fgate_close(&f[0]);
	fgate_close(&f[1]);
	rpm_idle(&f[0].rpm);
	rpm_idle(&f[1].rpm);
	assert_true(wait_int(&f[0].in_cb, 1, 5000));
	assert_true(wait_int(&f[1].in_cb, 1, 5000));
	rpm_idle(&f[2].rpm);   /* due now, but both workers are stuck */
	/* a worker is started (or not, at the bound) inside rpm_idle's
	 * queueing, and none is free to take it: no wait needed to see it */
	uint64_t due;
	assert_true(rpm_wq_next_due(wq, &due));
	assert_int_equal(atomic_load(&f[2].suspend_calls), 0);
	assert_int_equal(rpm_status(&f[2].rpm), RPM_ACTIVE);
	assert_true(rpm_wq_next_due(wq, &due));   /* still queued */
	assert_int_equal(rpm_wq_workers(wq), 2);   /* the bound */

	fgate_open(&f[1]);   /* a worker frees up and takes it */
	assert_true(wait_status(&f[2].rpm, RPM_SUSPENDED, 10000));
	assert_true(wait_status(&f[1].rpm, RPM_SUSPENDED, 10000));
	assert_int_equal(rpm_status(&f[0].rpm), RPM_SUSPENDING);
	assert_false(rpm_wq_next_due(wq, &due));
	fgate_open(&f[0]);
	assert_true(wait_workers(wq, 1, 10000));
	for (int i = 0; i < 3; i++) {
		rpm_fini(&f[i].rpm);
		assert_int_equal(rpm_status(&f[i].rpm), RPM_SUSPENDED);
		assert_int_equal(atomic_load(&f[i].suspend_calls), 1);
		assert_int_equal(atomic_load(&f[i].overlaps), 0);
	}
	rpm_wq_destroy(wq);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_initial_state),
		T(test_idle_suspends_async),
		T(test_get_resumes_sync),
		T(test_put_to_zero_suspends),
		T(test_active_get_put_no_callbacks),
		T(test_put_noidle_no_suspend),
		T(test_get_noresume),
		T(test_resume_and_get_failure),
		T(test_get_failure_keeps_ref),
		T(test_suspend_failure),
		T(test_autosuspend_delay),
		T(test_autosuspend_get_cancels),
		T(test_negative_delay_never_suspends),
		T(test_power_control),
		T(test_underflow),
		T(test_resume_waits_for_suspend),
		T(test_fini_with_queued_suspend),
		T(test_fini_waits_for_running_suspend),
		T(test_rpm_resume_host),
		cmocka_unit_test_setup_teardown(test_blocked_suspend_does_not_stop_others, setup_pool,
						teardown),
		cmocka_unit_test_setup_teardown(test_fini_beside_blocked_suspend, setup_pool,
						teardown),
		cmocka_unit_test(test_worker_bound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
