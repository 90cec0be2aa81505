/* PM event ring and subscriber queues (events.c), in process: exact
 * sequence numbers, what the ring keeps when it wraps, per-subscriber
 * loss accounting at the place of the loss, device filters, the eventfd. */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static struct vfpm_device *fake_dev(const char *name, struct vfpm_device *pf)
{
	struct vfpm_device *d = calloc(1, sizeof(*d));
	assert_non_null(d);
	d->name = strdup(name);
	events_init(d, pf);
	return d;
}

static void free_dev(struct vfpm_device *d)
{
	events_fini(d);
	free(d->name);
	free(d);
}

static bool readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1;
}

static void ring_keeps_the_last_events(void **state)
{
	(void)state;
	struct vfpm_device *d = fake_dev("d", NULL);
	struct dev_event *a;
	uint64_t dropped = 99;
	assert_int_equal(events_read(d, &a, &dropped), 0);
	assert_int_equal(dropped, 0);
	free(a);
	for (int i = 0; i < EV_RING_SIZE + 44; i++)
		dev_event(d, EV_POWER, i % 4, (i + 1) % 4, "x");
	int n = events_read(d, &a, &dropped);
	assert_int_equal(n, EV_RING_SIZE);
	assert_int_equal(dropped, 44);
	for (int i = 0; i < n; i++) {
		assert_int_equal(a[i].seq, 45 + i);   /* oldest first, no gap */
		assert_int_equal(a[i].from, (44 + i) % 4);
		if (i)
			assert_true(a[i].mono_ns >= a[i - 1].mono_ns);
	}
	assert_string_equal(a[0].cause, "x");
	free(a);
	free_dev(d);
}

static void subscriber_gets_events_in_order_with_filter(void **state)
{
	(void)state;
	struct ev_hub *hub;
	assert_int_equal(ev_hub_create(&hub), 0);
	struct vfpm_device *a = fake_dev("a", NULL), *b = fake_dev("b", NULL);
	dev_event(a, EV_RESET, -1, -1, "before");   /* no hub yet: ring only */
	events_attach(a, hub);
	events_attach(b, hub);
	struct vfpm_device *vf = fake_dev("a-vf0", a);   /* inherits a's hub */
	struct ev_sub *all, *only_b;
	assert_int_equal(ev_sub_create(hub, NULL, &all), 0);
	assert_int_equal(ev_sub_create(hub, "b", &only_b), 0);
	assert_false(readable(ev_sub_fd(all)));
	dev_event(a, EV_CLIENT_CONNECT, -1, -1, NULL);
	dev_event(b, EV_SRIOV_ENABLE, -1, 3, NULL);
	dev_event(vf, EV_POWER, VFPM_D0, VFPM_D3HOT, "runtime suspend");
	assert_true(readable(ev_sub_fd(all)));
	struct dev_event_rec r[8];
	size_t k = ev_sub_take(all, r, 8);
	assert_int_equal(k, 3);
	assert_string_equal(r[0].device, "a");
	assert_int_equal(r[0].ev.type, EV_CLIENT_CONNECT);
	assert_int_equal(r[0].ev.seq, 2);   /* the ring's seq: "before" was 1 */
	assert_string_equal(r[1].device, "b");
	assert_int_equal(r[1].ev.to, 3);
	assert_string_equal(r[2].device, "a-vf0");
	assert_string_equal(r[2].ev.cause, "runtime suspend");
	assert_false(readable(ev_sub_fd(all)));   /* emptied: cleared */
	k = ev_sub_take(only_b, r, 8);
	assert_int_equal(k, 1);
	assert_string_equal(r[0].device, "b");
	assert_int_equal(r[0].lost_after, 0);
	ev_sub_destroy(only_b);
	ev_sub_destroy(all);
	free_dev(vf);
	free_dev(a);
	free_dev(b);
	ev_hub_destroy(hub);
}

/* A subscriber that falls behind loses events, counted after the last one
 * it got; another subscriber loses nothing. */
static void slow_subscriber_loses_with_a_count(void **state)
{
	(void)state;
	struct ev_hub *hub;
	assert_int_equal(ev_hub_create(&hub), 0);
	struct vfpm_device *d = fake_dev("d", NULL);
	events_attach(d, hub);
	struct ev_sub *slow, *fast;
	assert_int_equal(ev_sub_create(hub, NULL, &slow), 0);
	assert_int_equal(ev_sub_create(hub, NULL, &fast), 0);
	struct dev_event_rec *r = calloc(EV_SUB_QUEUE, sizeof(*r));
	assert_non_null(r);
	uint64_t fast_seen = 0;
	for (int i = 0; i < EV_SUB_QUEUE + 10; i++) {
		dev_event(d, EV_WAKEUP, -1, -1, NULL);
		fast_seen += ev_sub_take(fast, r, 1);
	}
	assert_int_equal(fast_seen, EV_SUB_QUEUE + 10);
	size_t k = ev_sub_take(slow, r, EV_SUB_QUEUE);
	assert_int_equal(k, EV_SUB_QUEUE);
	assert_int_equal(r[0].ev.seq, 1);
	assert_int_equal(r[k - 1].ev.seq, EV_SUB_QUEUE);
	assert_int_equal(r[k - 1].lost_after, 10);
	for (size_t i = 0; i + 1 < k; i++)
		assert_int_equal(r[i].lost_after, 0);
	/* room again: the next event is queued after the gap */
	dev_event(d, EV_WAKEUP, -1, -1, NULL);
	assert_int_equal(ev_sub_take(slow, r, 4), 1);
	assert_int_equal(r[0].ev.seq, EV_SUB_QUEUE + 11);
	assert_int_equal(r[0].lost_after, 0);
	free(r);
	ev_sub_destroy(slow);
	ev_sub_destroy(fast);
	free_dev(d);
	ev_hub_destroy(hub);
}

static void names_and_limits(void **state)
{
	(void)state;
	assert_string_equal(dev_event_type_name(EV_POWER), "power");
	assert_string_equal(dev_event_type_name(EV_SRIOV_DISABLE), "sriov_disable");
	assert_string_equal(dev_event_type_name(EV_TYPES), "unknown");
	struct ev_hub *hub;
	assert_int_equal(ev_hub_create(&hub), 0);
	char longname[EV_NAME_MAX + 1];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[EV_NAME_MAX] = '\0';
	struct ev_sub *s;
	assert_int_equal(ev_sub_create(hub, longname, &s), -ENAMETOOLONG);
	/* a cause longer than the field is cut, not overrun */
	struct vfpm_device *d = fake_dev("d", NULL);
	char cause[200];
	memset(cause, 'c', sizeof(cause) - 1);
	cause[sizeof(cause) - 1] = '\0';
	dev_event(d, EV_RESET, -1, -1, cause);
	struct dev_event *a;
	uint64_t dropped;
	assert_int_equal(events_read(d, &a, &dropped), 1);
	assert_int_equal(strlen(a[0].cause), EV_CAUSE_MAX - 1);
	free(a);
	free_dev(d);
	ev_hub_destroy(hub);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ring_keeps_the_last_events),
		cmocka_unit_test(subscriber_gets_events_in_order_with_filter),
		cmocka_unit_test(slow_subscriber_loses_with_a_count),
		cmocka_unit_test(names_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
