/* PM events through a real vfpmd (docs/operating.md): the exact sequence
 * a client's PM paths leave in the ring, and a subscribed control
 * connection that gets the same events pushed as they happen, filtered by
 * device. Every wait has a deadline; nothing is timed. */
#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"

#define WAIT_MS 5000

static struct vfpmd_proc g_p;
static bool g_up;

static int setup(void **state)
{
	(void)state;
	g_up = false;
	pmt_watchdog_arm("test_events", 60);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	int rc = 0;
	if (g_up) {
		rc = vfpmd_terminate(&g_p) == 0 ? 0 : -1;
		vfpmd_cleanup(&g_p);
		g_up = false;
	}
	pmt_watchdog_disarm();
	return rc;
}

/* One expected event: type, then from/to (NULL: none), then cause (NULL:
 * none). */
struct want {
	const char *type, *from, *to, *cause;
};

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : NULL;
}

static void print_event(struct json_object *e)
{
	fprintf(stderr, "  %s %s %s -> %s (%s)\n", jstr(e, "device"), jstr(e, "type"),
		jstr(e, "from") ? jstr(e, "from") : "-", jstr(e, "to") ? jstr(e, "to") : "-",
		jstr(e, "cause") ? jstr(e, "cause") : "");
}

static bool event_is(struct json_object *e, const struct want *w)
{
	const char *f = jstr(e, "from"), *t = jstr(e, "to"), *c = jstr(e, "cause");
	return !strcmp(jstr(e, "type"), w->type) && !w->from == !f && (!f || !strcmp(f, w->from)) &&
	       !w->to == !t && (!t || !strcmp(t, w->to)) && !w->cause == !c &&
	       (!c || !strcmp(c, w->cause));
}

static void assert_sequence(struct json_object *evs, const struct want *w, size_t n)
{
	size_t have = json_object_array_length(evs);
	bool same = have == n;
	for (size_t i = 0; same && i < n; i++)
		same = event_is(json_object_array_get_idx(evs, i), &w[i]);
	if (!same) {
		fprintf(stderr, "events held (%zu):\n", have);
		for (size_t i = 0; i < have; i++)
			print_event(json_object_array_get_idx(evs, i));
	}
	assert_true(same);
	for (size_t i = 1; i < have; i++) {
		struct json_object *a = json_object_array_get_idx(evs, i - 1),
				   *b = json_object_array_get_idx(evs, i), *v;
		json_object_object_get_ex(a, "seq", &v);
		int64_t sa = json_object_get_int64(v);
		json_object_object_get_ex(b, "seq", &v);
		assert_int_equal(json_object_get_int64(v), sa + 1);   /* one device: no gap */
		json_object_object_get_ex(a, "mono_ns", &v);
		int64_t ma = json_object_get_int64(v);
		json_object_object_get_ex(b, "mono_ns", &v);
		assert_true(json_object_get_int64(v) >= ma);
		assert_non_null(jstr(b, "time"));
		assert_int_equal(strlen(jstr(b, "time")), strlen("2025-01-01T00:00:00.000000Z"));
	}
}

static void wait_suspends(const char *name, uint64_t n)
{
	struct pm_status st;
	for (int i = 0; i < WAIT_MS / 10; i++) {
		assert_int_equal(pmt_status(&g_p, name, &st), 0);
		if (st.suspends >= n && !strcmp(st.runtime_status, "suspended"))
			return;
		pmt_sleep_ms(10);
	}
	fail_msg("%s: %llu suspends, wanted %llu", name, (unsigned long long)st.suspends,
		 (unsigned long long)n);
}

/* Idle suspend, open, low-power entry with wakeup, the suspend it allows,
 * the wake a request causes (wakeup signalled), DEVICE_RESET, a guest's
 * PMCSR D3hot and D0, close: each leaves exactly its events, in order. */
static void events_exact_sequence_of_pm_paths(void **state)
{
	(void)state;
	assert_int_equal(pmt_start(&g_p, ""), 0);
	g_up = true;
	pmt_watch(g_p.pid);
	wait_suspends("dev", 1);
	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(g_p.sock[0], NULL, &c), 0);
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(efd >= 0);
	assert_int_equal(pmt_lp_entry_wakeup(c, efd), 0);
	wait_suspends("dev", 2);
	uint32_t v;
	assert_int_equal(pmt_cfg_read(c, 0, &v, 4), 0);   /* wakes it: B11 */
	assert_int_equal(pmt_eventfd_count(efd), 1);
	assert_int_equal(vfpm_client_reset(c), 0);
	unsigned pm = pmt_pm_cap(c);
	assert_true(pm != 0);
	uint16_t csr = 3;
	assert_int_equal(pmt_cfg_write(c, pm + PCI_PM_CTRL, &csr, 2), 0);
	csr = 0;
	assert_int_equal(pmt_cfg_write(c, pm + PCI_PM_CTRL, &csr, 2), 0);
	vfpm_client_close(c);
	close(efd);
	wait_suspends("dev", 3);

	static const struct want w[] = {
		{ "power", "D0", "D3hot", "runtime suspend" },
		{ "power", "D3hot", "D0", "runtime resume" },
		{ "client_connect", NULL, NULL, NULL },
		{ "low_power_entry", NULL, NULL, "wakeup armed" },
		{ "power", "D0", "D3hot", "runtime suspend" },
		{ "power", "D3hot", "D0", "runtime resume" },
		{ "low_power_exit", NULL, NULL, "device resumed: wakeup signalled" },
		{ "wakeup", NULL, NULL, NULL },
		{ "reset", NULL, NULL, "DEVICE_RESET" },
		{ "power", "D0", "D3hot", "PMCSR write" },
		{ "power", "D3hot", "D0", "PMCSR write" },
		{ "client_disconnect", NULL, NULL, NULL },
		{ "reset", NULL, NULL, "client disconnected" },
		{ "power", "D0", "D3hot", "runtime suspend" },
	};
	struct json_object *rep = pmt_ctl_json(&g_p, "{\"cmd\":\"events\",\"device\":\"dev\"}");
	assert_non_null(rep);
	assert_int_equal(pmt_reply_errno(rep), 0);
	struct json_object *evs, *dropped, *v2;
	assert_true(json_object_object_get_ex(rep, "events", &evs));
	assert_sequence(evs, w, sizeof(w) / sizeof(w[0]));
	assert_true(json_object_object_get_ex(rep, "dropped", &dropped));
	assert_true(json_object_object_get_ex(dropped, "dev", &v2));
	assert_int_equal(json_object_get_int64(v2), 0);
	json_object_put(rep);

	rep = pmt_ctl_json(&g_p, "{\"cmd\":\"events\",\"device\":\"nosuch\"}");
	assert_int_equal(pmt_reply_errno(rep), -ENODEV);
	json_object_put(rep);
}

/* Reads one line (deadline WAIT_MS) and parses it. */
static struct json_object *read_event(int fd, char *buf, size_t *have, size_t cap)
{
	for (;;) {
		char *nl = memchr(buf, '\n', *have);
		if (nl) {
			*nl = '\0';
			struct json_object *o = json_tokener_parse(buf);
			size_t used = (size_t)(nl - buf) + 1;
			memmove(buf, buf + used, *have - used);
			*have -= used;
			assert_non_null(o);
			return o;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&p, 1, WAIT_MS), 1);
		ssize_t r = read(fd, buf + *have, cap - *have);
		assert_true(r > 0);
		*have += (size_t)r;
	}
}

struct follower {
	int fd;
	char buf[8192];
	size_t have;
};

static void follow_open(struct follower *f, const char *device)
{
	f->have = 0;
	f->fd = raw_connect(g_p.ctl);
	assert_true(f->fd >= 0);
	char req[128];
	int n = device ? snprintf(req, sizeof(req), "{\"cmd\":\"subscribe\",\"device\":\"%s\"}\n", device)
		       : snprintf(req, sizeof(req), "{\"cmd\":\"subscribe\"}\n");
	assert_int_equal(write(f->fd, req, (size_t)n), n);
	struct json_object *ok = read_event(f->fd, f->buf, &f->have, sizeof(f->buf));
	assert_int_equal(pmt_reply_errno(ok), 0);
	json_object_put(ok);
}

static void expect(struct follower *f, const char *device, const struct want *w)
{
	struct json_object *e = read_event(f->fd, f->buf, &f->have, sizeof(f->buf));
	if (strcmp(jstr(e, "device"), device) || !event_is(e, w)) {
		fprintf(stderr, "wanted %s %s, got:\n", device, w->type);
		print_event(e);
		fail();
	}
	json_object_put(e);
}

/* A subscriber gets the events held, then each new one pushed as it
 * happens; a device filter keeps the other device's out. */
static void events_follow_pushes_new_events(void **state)
{
	(void)state;
	const char *specs[] = { "demo,name=dev,pm_delays=none", "demo,name=other,pm_delays=none",
				NULL };
	assert_int_equal(vfpmd_start(&g_p, specs, NULL), 0);
	g_up = true;
	pmt_watch(g_p.pid);
	wait_suspends("dev", 1);
	wait_suspends("other", 1);

	static const struct follower zero;
	struct follower *all = malloc(sizeof(*all)), *oth = malloc(sizeof(*oth));
	assert_non_null(all);
	assert_non_null(oth);
	*all = zero;
	*oth = zero;
	follow_open(all, NULL);
	follow_open(oth, "other");
	static const struct want suspend = { "power", "D0", "D3hot", "runtime suspend" },
				 resume = { "power", "D3hot", "D0", "runtime resume" },
				 connect = { "client_connect", NULL, NULL, NULL },
				 disconnect = { "client_disconnect", NULL, NULL, NULL },
				 reset = { "reset", NULL, NULL, "client disconnected" };
	/* held: one idle suspend each (their order is the order they happened) */
	struct json_object *h1 = read_event(all->fd, all->buf, &all->have, sizeof(all->buf));
	struct json_object *h2 = read_event(all->fd, all->buf, &all->have, sizeof(all->buf));
	assert_true(event_is(h1, &suspend) && event_is(h2, &suspend));
	assert_true((!strcmp(jstr(h1, "device"), "dev") && !strcmp(jstr(h2, "device"), "other")) ||
		    (!strcmp(jstr(h1, "device"), "other") && !strcmp(jstr(h2, "device"), "dev")));
	json_object_put(h1);
	json_object_put(h2);
	expect(oth, "other", &suspend);

	struct vfpm_client *c;
	assert_int_equal(vfpm_client_connect(g_p.sock[0], NULL, &c), 0);
	expect(all, "dev", &resume);
	expect(all, "dev", &connect);
	vfpm_client_close(c);
	expect(all, "dev", &disconnect);
	expect(all, "dev", &reset);
	expect(all, "dev", &suspend);
	/* none of dev's events reached the filtered subscriber: its next
	 * event is other's */
	assert_int_equal(pmt_set(&g_p, "other", "power_control", "on"), 0);
	expect(oth, "other", &resume);
	expect(all, "other", &resume);
	close(all->fd);
	close(oth->fd);
	free(all);
	free(oth);
	/* the server keeps serving after its followers go */
	struct pm_status st;
	assert_int_equal(pmt_status(&g_p, "other", &st), 0);
	assert_string_equal(st.power_state, "D0");

	int fd = raw_connect(g_p.ctl);
	assert_true(fd >= 0);
	static const char bad[] = "{\"cmd\":\"subscribe\",\"device\":\"nosuch\"}\n";
	assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
	char buf[512];
	size_t have = 0;
	struct json_object *e = read_event(fd, buf, &have, sizeof(buf));
	assert_int_equal(pmt_reply_errno(e), -ENODEV);
	json_object_put(e);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(events_exact_sequence_of_pm_paths, setup, teardown),
		cmocka_unit_test_setup_teardown(events_follow_pushes_new_events, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
