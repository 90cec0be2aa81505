/* The runtime-PM core on a stepped work queue and a fake clock: idle
 * suspends run only when the test steps the queue, and an autosuspend
 * delay passes only when the test advances the clock. "Nothing happened"
 * is a step that runs nothing, not a wait. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "fake_clock.h"
#include "pm/rpm.h"

struct counted {
	struct rpm rpm;
	unsigned suspends, resumes;
	int suspend_rc;
};

static int c_suspend(void *ctx)
{
	struct counted *c = ctx;
	if (c->suspend_rc)
		return c->suspend_rc;
	c->suspends++;
	return 0;
}

static int c_resume(void *ctx)
{
	((struct counted *)ctx)->resumes++;
	return 0;
}

static const struct rpm_ops c_ops = { .suspend = c_suspend, .resume = c_resume };

struct fx {
	struct fake_clock clk;
	struct rpm_wq *wq;
	struct counted dev[2];
};

static int setup(void **state)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	fake_clock_init(&x->clk);
	assert_int_equal(rpm_wq_create_manual(&x->wq, &x->clk.clock), 0);
	for (int i = 0; i < 2; i++)
		rpm_init(&x->dev[i].rpm, &c_ops, &x->dev[i], x->wq);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	for (int i = 0; i < 2; i++)
		rpm_fini(&x->dev[i].rpm);
	rpm_wq_destroy(x->wq);
	free(x);
	return 0;
}

static void idle_suspends_only_when_the_queue_is_stepped(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	assert_int_equal(rpm_wq_step(x->wq), 0);   /* nothing queued yet */
	rpm_idle(r);
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(x->dev[0].suspends, 0);
	uint64_t due = 0;
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, fake_clock_now_ns(&x->clk.clock));   /* delay 0: due now */
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(r), RPM_SUSPENDED);
	assert_int_equal(x->dev[0].suspends, 1);
	assert_false(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(rpm_wq_step(x->wq), 0);
	assert_int_equal(x->dev[0].suspends, 1);
}

static void autosuspend_delay_passes_only_on_the_clock(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	rpm_set_autosuspend_delay(r, 100);
	uint64_t t0 = fake_clock_now_ns(&x->clk.clock), due = 0;
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, t0 + 100000000u);
	assert_int_equal(rpm_wq_step(x->wq), 0);
	fake_clock_advance_ms(&x->clk, 99);
	assert_int_equal(rpm_wq_step(x->wq), 0);   /* 1 ms early: nothing */
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(x->dev[0].suspends, 0);
	fake_clock_advance_ms(&x->clk, 1);
	assert_int_equal(rpm_wq_step(x->wq), 1);   /* due exactly now */
	assert_int_equal(rpm_status(r), RPM_SUSPENDED);
}

static void a_new_idle_restarts_the_delay(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	rpm_set_autosuspend_delay(r, 50);
	fake_clock_advance_ms(&x->clk, 40);
	assert_int_equal(rpm_get(r), 0);
	rpm_put(r);   /* idle again at +40: due at +90 */
	fake_clock_advance_ms(&x->clk, 49);
	assert_int_equal(rpm_wq_step(x->wq), 0);
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	fake_clock_advance_ms(&x->clk, 1);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(r), RPM_SUSPENDED);
	assert_int_equal(x->dev[0].suspends, 1);
}

static void a_reference_taken_before_the_step_keeps_the_device_active(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	rpm_idle(r);
	assert_int_equal(rpm_get(r), 0);
	assert_int_equal(rpm_wq_step(x->wq), 1);   /* ran, found usage 1 */
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(x->dev[0].suspends, 0);
	rpm_put(r);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(r), RPM_SUSPENDED);
}

static void negative_delay_queues_nothing(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	rpm_set_autosuspend_delay(r, -1);
	uint64_t due;
	assert_false(rpm_wq_next_due(x->wq, &due));
	fake_clock_advance_ms(&x->clk, 3600 * 1000);
	assert_int_equal(rpm_wq_step(x->wq), 0);
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
}

static void earliest_due_runs_first_and_later_ones_wait(void **state)
{
	struct fx *x = *state;
	struct rpm *a = &x->dev[0].rpm, *b = &x->dev[1].rpm;
	rpm_set_autosuspend_delay(a, 30);
	rpm_set_autosuspend_delay(b, 10);
	uint64_t t0 = fake_clock_now_ns(&x->clk.clock), due = 0;
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, t0 + 10000000u);
	fake_clock_advance_ms(&x->clk, 10);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(b), RPM_SUSPENDED);
	assert_int_equal(rpm_status(a), RPM_ACTIVE);
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, t0 + 30000000u);
	fake_clock_advance_ms(&x->clk, 20);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(a), RPM_SUSPENDED);
}

static void a_refused_suspend_is_counted_and_not_retried_by_itself(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	x->dev[0].suspend_rc = -EBUSY;
	rpm_idle(r);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(r), RPM_ACTIVE);
	assert_int_equal(r->suspend_errors, 1);
	assert_int_equal(rpm_wq_step(x->wq), 0);   /* the next idle retries, not the queue */
	x->dev[0].suspend_rc = 0;
	rpm_idle(r);
	assert_int_equal(rpm_wq_step(x->wq), 1);
	assert_int_equal(rpm_status(r), RPM_SUSPENDED);
}

static void fini_removes_a_queued_suspend(void **state)
{
	struct fx *x = *state;
	struct rpm *r = &x->dev[0].rpm;
	rpm_idle(r);
	rpm_fini(r);
	assert_int_equal(rpm_wq_step(x->wq), 0);
	assert_int_equal(x->dev[0].suspends, 0);
	rpm_init(r, &c_ops, &x->dev[0], x->wq);   /* for teardown */
}

static void threaded_queue_refuses_to_be_stepped(void **state)
{
	(void)state;
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create(&wq), 0);
	assert_int_equal(rpm_wq_step(wq), -EINVAL);
	assert_ptr_equal(rpm_wq_clock(wq), &pm_clock_monotonic);
	assert_ptr_equal(rpm_wq_clock(NULL), &pm_clock_monotonic);
	rpm_wq_destroy(wq);
	assert_int_equal(rpm_wq_create_manual(&wq, NULL), -EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(idle_suspends_only_when_the_queue_is_stepped),
		T(autosuspend_delay_passes_only_on_the_clock),
		T(a_new_idle_restarts_the_delay),
		T(a_reference_taken_before_the_step_keeps_the_device_active),
		T(negative_delay_queues_nothing),
		T(earliest_due_runs_first_and_later_ones_wait),
		T(a_refused_suspend_is_counted_and_not_retried_by_itself),
		T(fini_removes_a_queued_suspend),
		cmocka_unit_test(threaded_queue_refuses_to_be_stepped),
	};
	return cmocka_run_group_tests_name("rpm-step", tests, NULL, NULL);
}
