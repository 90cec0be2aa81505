/* Control plane: a UNIX socket speaking JSON lines (V2).
 *
 * Requests, one JSON object per line:
 *   {"cmd":"status"}
 *   {"cmd":"set","device":NAME,"key":KEY,"value":VALUE}
 *     (KEY sriov_numvfs on a PF creates or removes its VFs)
 *   {"cmd":"config-read","device":NAME,"offset":N,"len":1|2|4}
 *   {"cmd":"config-write","device":NAME,"offset":N,"len":1|2|4,"value":N}
 *   {"cmd":"inject-intx","device":NAME}
 *   {"cmd":"events"[,"device":NAME]}, {"cmd":"subscribe"[,"device":NAME]}
 *     (ctl_events.c)
 *   {"cmd":"metrics"} (metrics.c)
 * Each gets one line: {"ok":true,...} or {"ok":false,"errno":N,"error":TEXT}.
 * Status never wakes a device; config access wakes one only from D3cold,
 * and a PMCSR write from any suspended state (B16).
 */
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
#include "metrics.h"

#define CTL_MAX_LINE 4096

static struct json_object *error_reply(int err, const char *what)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(false));
	json_object_object_add(o, "errno", json_object_new_int(-err));
	json_object_object_add(o, "error", json_object_new_string(what ? what : strerror(-err)));
	return o;
}

static struct json_object *ok_reply(void)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "ok", json_object_new_boolean(true));
	return o;
}

static const char *get_str(struct json_object *req, const char *key)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int get_int(struct json_object *req, const char *key, int64_t *out)
{
	struct json_object *v;
	if (!json_object_object_get_ex(req, key, &v) || !json_object_is_type(v, json_type_int))
		return -EINVAL;
	*out = json_object_get_int64(v);
	return 0;
}

static struct json_object *do_status(const struct ctl_ops *ops, void *ctx)
{
	unsigned n = 0;
	struct ctl_entry *e = ops->snapshot(ctx, &n);
	if (!e)
		return error_reply(-ENOMEM, NULL);
	struct json_object *o = ok_reply();
	struct json_object *arr = json_object_new_array();
	for (unsigned i = 0; i < n; i++) {
		struct vfpm_device *dev = e[i].dev;
		struct json_object *d = ctl_pm_status_json(dev);
		if (d) {
			json_object_object_add(d, "name", json_object_new_string(dev->name));
			json_object_object_add(d, "model", json_object_new_string(dev->model->name));
			json_object_object_add(d, "socket", json_object_new_string(e[i].socket));
			if (e[i].pf)
				json_object_object_add(d, "pf", json_object_new_string(e[i].pf));
			/* the client's account: bytes of its files vfpmd maps
			 * for DMA, and their bound */
			json_object_object_add(
				d, "dma_mapped",
				json_object_new_int64((int64_t)atomic_load(&dev->dma_mapped)));
			json_object_object_add(d, "dma_max",
					       json_object_new_int64((int64_t)dev->dma_max));
			/* the session's receive side (docs/performance.md) */
			struct json_object *ss = json_object_new_object();
			json_object_object_add(ss, "poll_us", json_object_new_int64(dev->poll_us));
			json_object_object_add(ss, "messages",
					       json_object_new_int64((int64_t)atomic_load(&dev->rx_msgs)));
			json_object_object_add(ss, "polled",
					       json_object_new_int64((int64_t)atomic_load(&dev->rx_polled)));
			json_object_object_add(
				ss, "blocking_reads",
				json_object_new_int64((int64_t)atomic_load(&dev->rx_blocking)));
			json_object_object_add(ss, "reads",
					       json_object_new_int64((int64_t)atomic_load(&dev->rx_reads)));
			json_object_object_add(ss, "sends",
					       json_object_new_int64((int64_t)atomic_load(&dev->tx_sends)));
			json_object_object_add(
				ss, "poll_calls",
				json_object_new_int64((int64_t)atomic_load(&dev->rx_poll_calls)));
			json_object_object_add(d, "session", ss);
			if (dev->sriov_cap) {   /* the PF's sysfs names */
				json_object_object_add(d, "sriov_totalvfs",
						       json_object_new_int((int)dev->total_vfs));
				json_object_object_add(d, "sriov_numvfs",
						       json_object_new_int((int)e[i].nvfs));
			}
			/* debug check of V5 (models that count it): device work
			 * done while parked by a suspend; read without waking */
			if (dev->ops && dev->ops->violations)
				json_object_object_add(
					d, "model_violations",
					json_object_new_int64((int64_t)dev->ops->violations(dev->priv)));
			json_object_array_add(arr, d);
		}
		ops->put(ctx, e[i].handle);
	}
	free(e);
	json_object_object_add(o, "devices", arr);
	return o;
}

/* sriov_numvfs=N, as the PCI core's sysfs attribute: a decimal count;
 * the errors say exactly what was wrong. */
static struct json_object *set_numvfs(struct vfpm_device *dev, const char *val)
{
	char msg[160];
	char *end;
	errno = 0;
	unsigned long n = strtoul(val, &end, 10);
	if (!dev->sriov_cap)
		return error_reply(-ENOENT, "unknown setting (the device is not an SR-IOV PF)");
	if ((errno && errno != ERANGE) || *end || !*val || *val == '-' || *val == '+')
		return error_reply(-EINVAL, "invalid value (sriov_numvfs takes a decimal count)");
	if (errno == ERANGE || n > VFPM_MAX_VFS)
		n = VFPM_MAX_VFS + 1;   /* above any TotalVFs: ERANGE below */
	int rc = device_sriov_configure(dev, (unsigned)n);
	if (rc == -ERANGE) {
		snprintf(msg, sizeof(msg), "sriov_numvfs %s exceeds sriov_totalvfs %u", val,
			 dev->total_vfs);
		return error_reply(rc, msg);
	}
	if (rc == -EBUSY)
		return error_reply(rc, "VFs are enabled: set sriov_numvfs=0 before another count");
	if (rc) {
		snprintf(msg, sizeof(msg), "cannot enable %lu VFs: %s", n, strerror(-rc));
		return error_reply(rc, msg);
	}
	return ok_reply();
}

/* *follow is set (a malloc'ed device name, "" for all) for a subscribe,
 * which has no reply here: ctl_follow serves the rest of the connection. */
static struct json_object *handle(const struct ctl_ops *ops, void *ctx, const char *line,
				  bool may_mutate, char **follow)
{
	struct json_object *req = json_tokener_parse(line);
	if (!req || !json_object_is_type(req, json_type_object)) {
		json_object_put(req);
		return error_reply(-EINVAL, "request is not a JSON object");
	}
	const char *cmd = get_str(req, "cmd");
	struct json_object *rep;
	if (!cmd) {
		rep = error_reply(-EINVAL, "missing \"cmd\"");
	} else if (!strcmp(cmd, "status")) {
		rep = do_status(ops, ctx);
	} else if (!strcmp(cmd, "metrics")) {
		rep = ctl_metrics(ops, ctx);
	} else if (!strcmp(cmd, "events")) {
		rep = ctl_events(ops, ctx, get_str(req, "device"));
	} else if (!strcmp(cmd, "subscribe")) {
		const char *only = get_str(req, "device");
		*follow = strdup(only ? only : "");
		rep = *follow ? NULL : error_reply(-ENOMEM, NULL);
	} else if (!may_mutate && strcmp(cmd, "config-read") != 0) {
		rep = error_reply(-EPERM, "not permitted for this user (see vfpmd --ctl-group)");
	} else {
		const char *name = get_str(req, "device");
		void *handle = NULL;
		struct vfpm_device *dev = name ? ops->get(ctx, name, &handle) : NULL;
		if (!name) {
			rep = error_reply(-EINVAL, "missing \"device\"");
		} else if (!dev) {
			rep = error_reply(-ENODEV, "no such device");
		} else if (!strcmp(cmd, "set")) {
			const char *key = get_str(req, "key"), *val = get_str(req, "value");
			if (key && val && !strcmp(key, "sriov_numvfs")) {
				rep = set_numvfs(dev, val);
			} else {
				int rc = key && val ? pm_set(dev, key, val) : -EINVAL;
				rep = rc == -ENOENT ? error_reply(rc, "unknown setting")
				      : rc	    ? error_reply(rc, "invalid value")
						    : ok_reply();
			}
		} else if (!strcmp(cmd, "config-read") || !strcmp(cmd, "config-write")) {
			bool wr = !strcmp(cmd, "config-write");
			int64_t off, len, val = 0;
			int rc = get_int(req, "offset", &off);
			if (!rc)
				rc = get_int(req, "len", &len);
			if (!rc && wr)
				rc = get_int(req, "value", &val);
			if (!rc && (off < 0 || off > VPCI_CFG_SIZE || (len != 1 && len != 2 && len != 4) ||
				    off + len > VPCI_CFG_SIZE))
				rc = -EINVAL;
			uint32_t v = (uint32_t)val;
			if (!rc)
				rc = device_ctl_config_rw(dev, (unsigned)off, &v, (unsigned)len, wr);
			if (rc) {
				rep = error_reply(rc, NULL);
			} else {
				rep = ok_reply();
				if (!wr) {
					if (len < 4)
						v &= (1u << (8 * len)) - 1;
					json_object_object_add(rep, "value", json_object_new_int64(v));
				}
			}
		} else if (!strcmp(cmd, "inject-intx")) {
			int rc = pm_inject_intx(dev);
			rep = rc ? error_reply(rc, NULL) : ok_reply();
		} else {
			rep = error_reply(-EINVAL, "unknown command");
		}
		if (handle)
			ops->put(ctx, handle);
	}
	json_object_put(req);
	return rep;
}

char *ctl_handle_line(const struct ctl_ops *ops, void *ctx, const char *line, bool may_mutate,
		      char **follow)
{
	*follow = NULL;
	struct json_object *rep = handle(ops, ctx, line, may_mutate, follow);
	if (!rep)
		return NULL;
	const char *out = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
	char *dup = out ? strdup(out) : NULL;
	json_object_put(rep);
	return dup;
}

/* One reply line: the text and its newline in one send, bounded as a
 * whole by the connection's send timeout (however slowly the peer reads). */
bool ctl_send_line(int fd, const char *text)
{
	size_t len = strlen(text);
	char *line = malloc(len + 1);
	if (!line)
		return false;
	memcpy(line, text, len);
	line[len] = '\n';
	bool ok = wire_send_bytes(fd, line, len + 1) == 0;
	free(line);
	return ok;
}

static uint64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

void ctl_serve_conn(const struct ctl_ops *ops, void *ctx, int fd, bool may_mutate, int stop_fd,
		    int line_ms)
{
	char *buf = malloc(CTL_MAX_LINE + 1);
	size_t have = 0;
	if (!buf)
		return;
	/* each whole line has line_ms from the connection or the previous
	 * reply: a peer trickling bytes cannot hold its slot for ever */
	uint64_t deadline = mono_ms() + (uint64_t)line_ms;
	for (;;) {
		char *nl = memchr(buf, '\n', have);
		if (!nl) {
			if (have >= CTL_MAX_LINE) {
				static const char msg[] =
					"{\"ok\":false,\"errno\":7,\"error\":\"line too long\"}\n";
				if (send(fd, msg, sizeof(msg) - 1, MSG_NOSIGNAL) < 0) {
					/* the client is gone */
				}
				break;
			}
			uint64_t now = mono_ms();
			if (now >= deadline)
				break;
			struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
					       { .fd = stop_fd, .events = POLLIN } };
			if (poll(p, 2, (int)(deadline - now)) < 1 || p[1].revents)
				break;
			ssize_t n = read(fd, buf + have, CTL_MAX_LINE - have);
			if (n <= 0)
				break;
			have += (size_t)n;
			continue;
		}
		*nl = '\0';
		char *follow = NULL;
		char *out = ctl_handle_line(ops, ctx, buf, may_mutate, &follow);
		if (follow) {
			ctl_follow(ops, ctx, fd, stop_fd, follow[0] ? follow : NULL);
			free(follow);
			break;
		}
		bool ok = out && ctl_send_line(fd, out);
		free(out);
		if (!ok)
			break;
		size_t used = (size_t)(nl - buf) + 1;
		memmove(buf, buf + used, have - used);
		have -= used;
		deadline = mono_ms() + (uint64_t)line_ms;
	}
	free(buf);
}
