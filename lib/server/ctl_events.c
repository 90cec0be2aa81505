/* Control plane: PM events (docs/operating.md).
 *
 *   {"cmd":"events"[,"device":NAME]}
 *     -> {"ok":true,"events":[EVENT...],"dropped":{NAME:N...}}
 *   {"cmd":"subscribe"[,"device":NAME]}
 *     -> {"ok":true}, then one EVENT per line as it happens, the events
 *        held at the time first; {"type":"lost","count":N} where N events
 *        were not delivered (the connection fell EV_SUB_QUEUE behind).
 *
 * EVENT: {"device","seq","mono_ns","time","type"[,"from","to"][,"num_vfs"]
 * [,"cause"]}. Held events of several devices are merged by mono_ns. */
#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "ctl.h"

struct json_object *ctl_event_json(const struct dev_event *e, const char *device)
{
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "device", json_object_new_string(device));
	json_object_object_add(o, "seq", json_object_new_int64((int64_t)e->seq));
	json_object_object_add(o, "mono_ns", json_object_new_int64((int64_t)e->mono_ns));
	time_t sec = (time_t)(e->wall_ns / 1000000000ull);
	struct tm tm;
	char t[64] = "";
	if (gmtime_r(&sec, &tm)) {
		size_t n = strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(t + n, sizeof(t) - n, ".%06uZ", (unsigned)(e->wall_ns % 1000000000ull / 1000));
	}
	json_object_object_add(o, "time", json_object_new_string(t));
	json_object_object_add(o, "type", json_object_new_string(dev_event_type_name(e->type)));
	if (dev_event_has_states(e->type)) {
		json_object_object_add(o, "from", json_object_new_string(pm_state_name(e->from)));
		json_object_object_add(o, "to", json_object_new_string(pm_state_name(e->to)));
	}
	if (e->type == EV_SRIOV_ENABLE)
		json_object_object_add(o, "num_vfs", json_object_new_int(e->to));
	if (e->cause[0])
		json_object_object_add(o, "cause", json_object_new_string(e->cause));
	return o;
}

struct held {
	struct dev_event ev;
	const char *device;
	unsigned order;   /* device order, for equal times */
};

static int held_cmp(const void *a, const void *b)
{
	const struct held *x = a, *y = b;
	if (x->ev.mono_ns != y->ev.mono_ns)
		return x->ev.mono_ns < y->ev.mono_ns ? -1 : 1;
	if (x->order != y->order)
		return x->order < y->order ? -1 : 1;
	return x->ev.seq < y->ev.seq ? -1 : x->ev.seq > y->ev.seq;
}

/* The events held by every device (or only), oldest first. On success,
 * last[i] is the last held event of snapshot entry i (seq 0: none). */
struct held_set {
	struct held *h;
	size_t n;
	struct json_object *dropped;
};

static int collect(struct ctl_entry *e, unsigned n, const char *only, struct held_set *out,
		   struct dev_event *last)
{
	out->h = NULL;
	out->n = 0;
	out->dropped = json_object_new_object();
	size_t cap = 0;
	for (unsigned i = 0; i < n; i++) {
		last[i].seq = 0;
		if (only && strcmp(e[i].dev->name, only))
			continue;
		struct dev_event *a;
		uint64_t dropped;
		int k = events_read(e[i].dev, &a, &dropped);
		if (k < 0)
			return k;
		if (out->n + (size_t)k > cap) {
			size_t nc = (out->n + (size_t)k) * 2;
			struct held *nh = realloc(out->h, nc * sizeof(*nh));
			if (!nh) {
				free(a);
				return -ENOMEM;
			}
			out->h = nh;
			cap = nc;
		}
		for (int j = 0; j < k; j++)
			out->h[out->n++] = (struct held){ .ev = a[j], .device = e[i].dev->name, .order = i };
		if (k)
			last[i] = a[k - 1];
		free(a);
		json_object_object_add(out->dropped, e[i].dev->name,
				       json_object_new_int64((int64_t)dropped));
	}
	if (out->n)
		qsort(out->h, out->n, sizeof(*out->h), held_cmp);
	return 0;
}

static struct json_object *err_json(int err, const char *what)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(false));
	json_object_object_add(o, "errno", json_object_new_int(-err));
	json_object_object_add(o, "error", json_object_new_string(what ? what : strerror(-err)));
	return o;
}

/* only: a device name that must exist (ENODEV otherwise), or NULL. */
static int check_only(struct ctl_entry *e, unsigned n, const char *only)
{
	if (!only)
		return 0;
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(e[i].dev->name, only))
			return 0;
	return -ENODEV;
}

static void put_all(const struct ctl_ops *ops, void *ctx, struct ctl_entry *e, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ops->put(ctx, e[i].handle);
	free(e);
}

struct json_object *ctl_events(const struct ctl_ops *ops, void *ctx, const char *only)
{
	unsigned n = 0;
	struct ctl_entry *e = ops->snapshot(ctx, &n);
	if (!e)
		return err_json(-ENOMEM, NULL);
	struct json_object *rep;
	struct dev_event *last = calloc(n ? n : 1, sizeof(*last));
	struct held_set hs = { 0 };
	int rc = check_only(e, n, only);
	if (!rc)
		rc = last ? collect(e, n, only, &hs, last) : -ENOMEM;
	if (rc) {
		rep = err_json(rc, rc == -ENODEV ? "no such device" : NULL);
	} else {
		rep = json_object_new_object();
		json_object_object_add(rep, "ok", json_object_new_boolean(true));
		struct json_object *arr = json_object_new_array();
		for (size_t i = 0; i < hs.n; i++)
			json_object_array_add(arr, ctl_event_json(&hs.h[i].ev, hs.h[i].device));
		json_object_object_add(rep, "events", arr);
		json_object_object_add(rep, "dropped", hs.dropped);
		hs.dropped = NULL;
	}
	json_object_put(hs.dropped);
	free(hs.h);
	free(last);
	put_all(ops, ctx, e, n);
	return rep;
}

static bool send_json(int fd, struct json_object *o)
{
	if (!o)
		return false;
	bool ok = ctl_send_line(fd, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return ok;
}

/* Devices whose held events were sent: live events up to that seq are
 * the same events again. */
struct seen {
	char name[EV_NAME_MAX];
	uint64_t seq, mono_ns;   /* of the last event sent */
};

/* A VF removed and created again under its name counts from seq 1 again,
 * but its events are newer than any the old one had. */
static bool already_sent(const struct seen *s, unsigned n, const struct dev_event_rec *r)
{
	for (unsigned i = 0; i < n; i++)
		if (!strcmp(s[i].name, r->device))
			return r->ev.seq <= s[i].seq && r->ev.mono_ns <= s[i].mono_ns;
	return false;
}

void ctl_follow(const struct ctl_ops *ops, void *ctx, int fd, int stop_fd, const char *only)
{
	struct ev_hub *hub = ops->hub ? ops->hub(ctx) : NULL;
	struct ev_sub *sub = NULL;
	int rc = hub ? ev_sub_create(hub, only, &sub) : -EOPNOTSUPP;
	/* subscribed first, then the held events read: every event is either
	 * held or queued (or both: the seen list drops the copy) */
	unsigned n = 0;
	struct ctl_entry *e = rc ? NULL : ops->snapshot(ctx, &n);
	if (!rc && !e)
		rc = -ENOMEM;
	if (!rc)
		rc = check_only(e, n, only);
	struct dev_event *last = rc ? NULL : calloc(n ? n : 1, sizeof(*last));
	struct seen *seen = rc ? NULL : calloc(n ? n : 1, sizeof(*seen));
	struct held_set hs = { 0 };
	if (!rc && (!last || !seen))
		rc = -ENOMEM;
	if (!rc)
		rc = collect(e, n, only, &hs, last);
	unsigned nseen = 0;
	for (unsigned i = 0; !rc && i < n; i++) {
		if (!last[i].seq)
			continue;
		snprintf(seen[nseen].name, sizeof(seen[nseen].name), "%s", e[i].dev->name);
		seen[nseen].seq = last[i].seq;
		seen[nseen++].mono_ns = last[i].mono_ns;
	}
	bool ok;
	if (rc) {
		send_json(fd, err_json(rc, rc == -ENODEV ? "no such device" : NULL));
		ok = false;
	} else {
		struct json_object *r = json_object_new_object();
		json_object_object_add(r, "ok", json_object_new_boolean(true));
		ok = send_json(fd, r);
		for (size_t i = 0; ok && i < hs.n; i++)
			ok = send_json(fd, ctl_event_json(&hs.h[i].ev, hs.h[i].device));
	}
	json_object_put(hs.dropped);
	free(hs.h);
	free(last);
	if (e)
		put_all(ops, ctx, e, n);
	struct dev_event_rec batch[32];
	while (ok) {
		struct pollfd p[3] = { { .fd = fd, .events = POLLIN },
				       { .fd = stop_fd, .events = POLLIN },
				       { .fd = ev_sub_fd(sub), .events = POLLIN } };
		if (poll(p, 3, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		if (p[0].revents) {
			/* the peer says nothing more: read and ignore, EOF ends */
			char junk[256];
			ssize_t r = read(fd, junk, sizeof(junk));
			if (r <= 0)
				break;
		}
		if (!(p[2].revents & POLLIN))
			continue;
		size_t k = ev_sub_take(sub, batch, sizeof(batch) / sizeof(batch[0]));
		for (size_t i = 0; ok && i < k; i++) {
			if (!already_sent(seen, nseen, &batch[i]))
				ok = send_json(fd, ctl_event_json(&batch[i].ev, batch[i].device));
			if (ok && batch[i].lost_after) {
				struct json_object *l = json_object_new_object();
				json_object_object_add(l, "type", json_object_new_string("lost"));
				json_object_object_add(l, "count",
						       json_object_new_int64((int64_t)batch[i].lost_after));
				ok = send_json(fd, l);
			}
		}
	}
	free(seen);
	ev_sub_destroy(sub);
}
