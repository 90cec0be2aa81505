/* Prometheus metrics (docs/operating.md): the text exposition format
 * (version 0.0.4) of every device's power-management state, served on the
 * control plane ({"cmd":"metrics"}) and kept in a node_exporter textfile
 * collector file (vfpmd --metrics-file), rewritten on every PM event.
 *
 * Everything is read through the control plane's status view, which never
 * wakes a device. */
#include <errno.h>
#include <json-c/json.h>
#include <libgen.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "ctl.h"
#include "metrics.h"

static const char *const dstates[] = { "D0", "D1", "D2", "D3hot", "D3cold" };
static const char *const rstates[] = { "active", "suspending", "suspended", "resuming" };

/* A label value as the exposition format quotes it. */
static void label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

static struct json_object *sub(struct json_object *o, const char *k)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static const char *sstr(struct json_object *o, const char *k)
{
	struct json_object *v = sub(o, k);
	return v ? json_object_get_string(v) : "";
}

static int64_t sint(struct json_object *o, const char *k)
{
	struct json_object *v = sub(o, k);
	return v ? json_object_get_int64(v) : 0;
}

struct mdev {
	const char *name, *model, *pf;
	struct json_object *st;   /* pm_status_json */
};

static void family(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample_start(FILE *f, const char *name, const struct mdev *d)
{
	fprintf(f, "%s{device=\"", name);
	label(f, d->name);
	fputc('"', f);
}

/* One sample per device of an integer the status has (obj.key). */
static void per_device(FILE *f, const struct mdev *d, unsigned n, const char *name,
		       const char *type, const char *help, const char *obj, const char *key)
{
	family(f, name, type, help);
	for (unsigned i = 0; i < n; i++) {
		struct json_object *o = obj ? sub(d[i].st, obj) : d[i].st;
		struct json_object *v = sub(o, key);
		int64_t x = !v ? 0 : json_object_is_type(v, json_type_boolean) ? json_object_get_boolean(v)
									    : json_object_get_int64(v);
		sample_start(f, name, &d[i]);
		fprintf(f, "} %lld\n", (long long)x);
	}
}

static void one_of(FILE *f, const struct mdev *d, unsigned n, const char *name, const char *help,
		   const char *lname, const char *key, const char *const *vals, unsigned nvals)
{
	family(f, name, "gauge", help);
	for (unsigned i = 0; i < n; i++) {
		const char *cur = sstr(d[i].st, key);
		for (unsigned k = 0; k < nvals; k++) {
			sample_start(f, name, &d[i]);
			fprintf(f, ",%s=\"%s\"} %d\n", lname, vals[k], !strcmp(cur, vals[k]));
		}
	}
}

static void write_families(FILE *f, const struct mdev *d, unsigned n)
{
	family(f, "vfpm_device_info", "gauge",
	       "A device vfpmd serves (1); its model, and its PF for a VF.");
	for (unsigned i = 0; i < n; i++) {
		sample_start(f, "vfpm_device_info", &d[i]);
		fputs(",model=\"", f);
		label(f, d[i].model);
		fputs("\",pf=\"", f);
		label(f, d[i].pf ? d[i].pf : "");
		fputs("\"} 1\n", f);
	}
	one_of(f, d, n, "vfpm_power_state", "The device's power state (1 for the current state).",
	       "state", "power_state", dstates, 5);
	one_of(f, d, n, "vfpm_runtime_status",
	       "The device's runtime-PM status (1 for the current status).", "status",
	       "runtime_status", rstates, 4);
	per_device(f, d, n, "vfpm_usage_count", "gauge",
		   "Runtime-PM usage count: references that keep the device awake.", NULL,
		   "usage_count");
	per_device(f, d, n, "vfpm_client_connected", "gauge",
		   "Whether a vfio-user client has the device open.", NULL, "client_connected");
	per_device(f, d, n, "vfpm_low_power_engaged", "gauge",
		   "Whether the client's LOW_POWER_ENTRY is in force.", "low_power", "engaged");
	per_device(f, d, n, "vfpm_wakeup_armed", "gauge",
		   "Whether a wakeup eventfd is armed by LOW_POWER_ENTRY_WITH_WAKEUP.", "low_power",
		   "wakeup_armed");
	per_device(f, d, n, "vfpm_suspends_total", "counter", "Runtime suspends completed.",
		   "counters", "suspends");
	per_device(f, d, n, "vfpm_resumes_total", "counter", "Runtime resumes completed.",
		   "counters", "resumes");
	per_device(f, d, n, "vfpm_wakeups_signalled_total", "counter",
		   "Wakeup eventfds signalled (low power ended by a resume).", "counters",
		   "wakeups_signalled");
	per_device(f, d, n, "vfpm_suspend_errors_total", "counter",
		   "Runtime suspends the device model refused.", "counters", "suspend_errors");
	family(f, "vfpm_residency_seconds_total", "counter",
	       "Time spent in each power state since the device was created.");
	for (unsigned i = 0; i < n; i++) {
		struct json_object *r = sub(sub(d[i].st, "counters"), "residency_ms");
		for (unsigned k = 0; k < 5; k++) {
			int64_t ms = sint(r, dstates[k]);
			sample_start(f, "vfpm_residency_seconds_total", &d[i]);
			fprintf(f, ",state=\"%s\"} %lld.%03lld\n", dstates[k], (long long)(ms / 1000),
				(long long)(ms % 1000));
		}
	}
}

/* A millisecond or millijoule count as a decimal of seconds or joules. */
static void milli(FILE *f, int64_t m)
{
	fprintf(f, "%lld.%03lld\n", (long long)(m / 1000), (long long)(m % 1000));
}

static void energy(FILE *f, const struct mdev *d, unsigned n, const char *name, const char *help,
		   const char *key)
{
	family(f, name, "counter", help);
	for (unsigned i = 0; i < n; i++) {
		sample_start(f, name, &d[i]);
		fputs("} ", f);
		milli(f, sint(sub(d[i].st, "counters"), key));
	}
}

static void power_watts(FILE *f, const struct mdev *d, unsigned n)
{
	static const char *const keys[] = { "power_d0_mw", "power_d1_mw", "power_d2_mw",
					    "power_d3hot_mw", "power_d3cold_mw" };
	family(f, "vfpm_state_power_watts", "gauge",
	       "The energy model: the power the device draws in each power state.");
	for (unsigned i = 0; i < n; i++) {
		struct json_object *s = sub(d[i].st, "settings");
		for (unsigned k = 0; k < 5; k++) {
			sample_start(f, "vfpm_state_power_watts", &d[i]);
			fprintf(f, ",state=\"%s\"} ", dstates[k]);
			milli(f, sint(s, keys[k]));
		}
	}
}

char *metrics_text(const struct ctl_ops *ops, void *ctx)
{
	unsigned n = 0;
	struct ctl_entry *e = ops->snapshot(ctx, &n);
	if (!e)
		return NULL;
	struct mdev *d = calloc(n ? n : 1, sizeof(*d));
	char *text = NULL;
	size_t len = 0;
	FILE *f = d ? open_memstream(&text, &len) : NULL;
	unsigned k = 0;
	for (unsigned i = 0; f && i < n; i++) {
		struct json_object *st = ctl_pm_status_json(e[i].dev);
		if (!st)
			continue;
		d[k++] = (struct mdev){ .name = e[i].dev->name, .model = e[i].dev->model->name,
					.pf = e[i].pf, .st = st };
	}
	if (f) {
		write_families(f, d, k);
		power_watts(f, d, k);
		energy(f, d, k, "vfpm_energy_joules_total",
		       "Energy the device used since it was created (the energy model).",
		       "energy_used_mj");
		energy(f, d, k, "vfpm_energy_saved_joules_total",
		       "Energy saved against staying in D0 since the device was created.",
		       "energy_saved_mj");
		if (fclose(f)) {
			free(text);
			text = NULL;
		}
	}
	for (unsigned i = 0; i < k; i++)
		json_object_put(d[i].st);
	free(d);
	for (unsigned i = 0; i < n; i++)
		ops->put(ctx, e[i].handle);
	free(e);
	return text;
}

struct json_object *ctl_metrics(const struct ctl_ops *ops, void *ctx)
{
	char *t = metrics_text(ops, ctx);
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(t != NULL));
	if (t)
		json_object_object_add(o, "text", json_object_new_string(t));
	else {
		json_object_object_add(o, "errno", json_object_new_int(ENOMEM));
		json_object_object_add(o, "error", json_object_new_string(strerror(ENOMEM)));
	}
	free(t);
	return o;
}

/* --- the textfile collector file --- */

struct metrics_file {
	const struct ctl_ops *ops;
	void *ctx;
	char *path;
	int stop_fd;
	int verbosity;
	struct ev_sub *sub;
	pthread_t thread;
	char *last;        /* what the file holds */
	int last_err;      /* the last error logged, so a lasting one is logged once */
};

/* Writes text to a temporary file beside path (not *.prom: the collector
 * ignores it) and renames it over path, so a reader sees the old file or
 * the new one, never a part. 0644: node_exporter runs as its own user. */
static int write_atomic(const char *path, const char *text)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (!tmp)
		return -ENOMEM;
	snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		int e = -errno;
		free(tmp);
		return e;
	}
	size_t len = strlen(text), off = 0;
	int rc = 0;
	while (off < len) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)w;
	}
	if (!rc && fchmod(fd, 0644) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, path) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

static void refresh(struct metrics_file *m)
{
	char *t = metrics_text(m->ops, m->ctx);
	if (!t)
		return;
	if (m->last && !strcmp(m->last, t)) {
		free(t);
		return;   /* unchanged: not rewritten */
	}
	int rc = write_atomic(m->path, t);
	if (rc && rc != m->last_err)
		core_log(m->verbosity, VFPM_LOG_WARN, NULL, "cannot write metrics file %s: %s",
			 m->path, strerror(-rc));
	m->last_err = rc;
	if (rc) {
		free(t);
		return;
	}
	free(m->last);
	m->last = t;
}

static void *metrics_main(void *arg)
{
	struct metrics_file *m = arg;
	struct dev_event_rec batch[64];
	for (;;) {
		struct pollfd p[2] = { { .fd = ev_sub_fd(m->sub), .events = POLLIN },
				       { .fd = m->stop_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		/* every waiting event at once: one rewrite for a burst */
		while (ev_sub_take(m->sub, batch, sizeof(batch) / sizeof(batch[0])) > 0)
			;
		refresh(m);
	}
	return NULL;
}

int metrics_file_start(const char *path, const struct ctl_ops *ops, void *ctx, struct ev_hub *hub,
		       int stop_fd, int verbosity, struct metrics_file **out)
{
	struct metrics_file *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	*m = (struct metrics_file){ .ops = ops, .ctx = ctx, .stop_fd = stop_fd,
				    .verbosity = verbosity };
	m->path = strdup(path);
	int rc = m->path ? ev_sub_create(hub, NULL, &m->sub) : -ENOMEM;
	if (!rc)
		refresh(m);   /* subscribed first: no event falls between; there when vfpmd is ready */
	if (!rc)
		rc = -pthread_create(&m->thread, NULL, metrics_main, m);
	if (rc) {
		ev_sub_destroy(m->sub);
		if (m->last)
			unlink(m->path);
		free(m->last);
		free(m->path);
		free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void metrics_file_kick(struct metrics_file *m)
{
	/* the subscriber's eventfd: the writer wakes, takes no event and
	 * refreshes */
	uint64_t one = 1;
	if (write(ev_sub_fd(m->sub), &one, sizeof(one)) < 0) {
		/* EAGAIN: it is far from empty, the writer wakes anyway */
	}
}

void metrics_file_stop(struct metrics_file *m)
{
	if (!m)
		return;
	pthread_join(m->thread, NULL);   /* stop_fd is readable by now */
	ev_sub_destroy(m->sub);
	if (m->last)
		unlink(m->path);   /* no stale metrics of a server that is gone */
	free(m->last);
	free(m->path);
	free(m);
}
