/* vfpmctl's control-plane commands: they talk JSON lines to vfpmd's
 * control socket (vfpmd --ctl), never to a device socket, so they never
 * wake a device. */
#include "ctlplane.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vfpm/client.h"

int ctlplane_default_path(char *buf, size_t len)
{
	char p[256];
	int rc = vfpm_default_socket_path(p, sizeof(p));
	if (rc < 0)
		return rc;
	if (snprintf(buf, len, "%s/vfpmd.ctl", dirname(p)) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int connect_ctl(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Sends one request line and parses the one-line reply. */
int ctlplane_request(const char *path, struct json_object *req, struct json_object **out)
{
	int fd = connect_ctl(path);
	if (fd < 0)
		return fd;
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t n = strlen(s);
	int rc = 0;
	if (send(fd, s, n, MSG_NOSIGNAL) != (ssize_t)n || send(fd, "\n", 1, MSG_NOSIGNAL) != 1)
		rc = -errno;
	size_t cap = 1 << 16, have = 0;
	char *buf = rc ? NULL : malloc(cap);
	if (!rc && !buf)
		rc = -ENOMEM;
	while (!rc) {
		if (have + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		ssize_t r = read(fd, buf + have, cap - 1 - have);
		if (r <= 0) {
			rc = r < 0 ? -errno : -EPROTO;
			break;
		}
		have += (size_t)r;
		buf[have] = '\0';
		if (strchr(buf, '\n'))
			break;
	}
	close(fd);
	if (!rc) {
		*out = json_tokener_parse(buf);
		if (!*out)
			rc = -EPROTO;
	}
	free(buf);
	return rc;
}

int ctlplane_check_reply(struct json_object *rep, const char *what)
{
	struct json_object *v;
	if (json_object_object_get_ex(rep, "ok", &v) && json_object_get_boolean(v))
		return 0;
	int err = json_object_object_get_ex(rep, "errno", &v) ? json_object_get_int(v) : EPROTO;
	const char *msg = json_object_object_get_ex(rep, "error", &v) ? json_object_get_string(v)
								       : strerror(err);
	fprintf(stderr, "vfpmctl: %s: %s\n", what, msg);
	return err ? -err : -EPROTO;
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "-";
}

static struct json_object *sub(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? v : NULL;
}

/* A byte count as the largest whole binary unit: 0, 4K, 16M, 1G, ... */
static const char *size_str(struct json_object *o, const char *k, char *buf, size_t len)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, k, &v))
		return "-";
	uint64_t n = (uint64_t)json_object_get_int64(v);
	const char *u = "KMGTPE";
	int i = -1;
	while (n >= 1024 && !(n & 1023) && i < 5) {
		n >>= 10;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, n);
	else
		snprintf(buf, len, "%" PRIu64 "%c", n, u[i]);
	return buf;
}

/* A millijoule counter as joules with three decimals. */
static const char *joules_str(struct json_object *c, const char *k, char *buf, size_t len)
{
	struct json_object *v;
	if (!c || !json_object_object_get_ex(c, k, &v))
		return "-";
	int64_t mj = json_object_get_int64(v);
	snprintf(buf, len, "%" PRId64 ".%03" PRId64, mj / 1000, mj % 1000);
	return buf;
}

static void print_table(struct json_object *devs)
{
	printf("%-12s %-7s %-10s %5s %-7s %-6s %-6s %8s %8s %7s %7s %6s %11s %11s  %s\n", "DEVICE",
	       "STATE", "RUNTIME", "USAGE", "ENGAGED", "ARMED", "CLIENT", "SUSPENDS", "RESUMES",
	       "WAKEUPS", "VFS", "DMA", "ENERGY_J", "SAVED_J", "SOCKET");
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		struct json_object *lp = sub(d, "low_power"), *c = sub(d, "counters");
		/* a PF: sriov_numvfs/sriov_totalvfs */
		char vfs[32] = "-";
		if (sub(d, "sriov_totalvfs"))
			snprintf(vfs, sizeof(vfs), "%s/%s", str(d, "sriov_numvfs"),
				 str(d, "sriov_totalvfs"));
		char dma[32], used[32], saved[32];
		printf("%-12s %-7s %-10s %5s %-7s %-6s %-6s %8s %8s %7s %7s %6s %11s %11s  %s\n",
		       str(d, "name"),
		       str(d, "power_state"), str(d, "runtime_status"), str(d, "usage_count"),
		       lp ? str(lp, "engaged") : "-", lp ? str(lp, "wakeup_armed") : "-",
		       str(d, "client_connected"), c ? str(c, "suspends") : "-",
		       c ? str(c, "resumes") : "-", c ? str(c, "wakeups_signalled") : "-", vfs,
		       size_str(d, "dma_mapped", dma, sizeof(dma)),
		       joules_str(c, "energy_used_mj", used, sizeof(used)),
		       joules_str(c, "energy_saved_mj", saved, sizeof(saved)), str(d, "socket"));
	}
}

int ctlplane_status(const char *path, int argc, char **argv)
{
	bool json = false;
	const char *only = NULL;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "vfpmctl: status: unknown option '%s'\n", argv[i]);
			return 2;
		} else
			only = argv[i];
	}
	struct json_object *req = json_object_new_object(), *rep = NULL;
	json_object_object_add(req, "cmd", json_object_new_string("status"));
	int rc = ctlplane_request(path, req, &rep);
	json_object_put(req);
	if (rc) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
		return 1;
	}
	if (ctlplane_check_reply(rep, "status")) {
		json_object_put(rep);
		return 1;
	}
	struct json_object *devs = sub(rep, "devices");
	if (only && devs) {
		struct json_object *sel = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *d = json_object_array_get_idx(devs, i);
			if (!strcmp(str(d, "name"), only))
				json_object_array_add(sel, json_object_get(d));
		}
		if (!json_object_array_length(sel)) {
			fprintf(stderr, "vfpmctl: status: no device named '%s'\n", only);
			json_object_put(sel);
			json_object_put(rep);
			return 1;
		}
		json_object_object_add(rep, "devices", sel);
		devs = sel;
	}
	if (json)
		printf("%s\n", json_object_to_json_string_ext(
				       rep, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						    JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (devs)
		print_table(devs);
	json_object_put(rep);
	return 0;
}

int ctlplane_set(const char *path, int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "vfpmctl: usage: set DEVICE key=value...\n");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i]) {
			fprintf(stderr, "vfpmctl: set: expected key=value, got '%s'\n", argv[i]);
			return 2;
		}
	}
	for (int i = 1; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		char key[64];
		snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[i]), argv[i]);
		struct json_object *req = json_object_new_object(), *rep = NULL;
		json_object_object_add(req, "cmd", json_object_new_string("set"));
		json_object_object_add(req, "device", json_object_new_string(argv[0]));
		json_object_object_add(req, "key", json_object_new_string(key));
		json_object_object_add(req, "value", json_object_new_string(eq + 1));
		int rc = ctlplane_request(path, req, &rep);
		json_object_put(req);
		if (rc) {
			fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
			return 1;
		}
		char what[128];
		snprintf(what, sizeof(what), "set %s %s", argv[0], argv[i]);
		rc = ctlplane_check_reply(rep, what);
		json_object_put(rep);
		if (rc)
			return 1;
	}
	return 0;
}

int ctlplane_inject_intx(const char *path, int argc, char **argv)
{
	struct json_object *req = json_object_new_object(), *rep = NULL;
	json_object_object_add(req, "cmd", json_object_new_string("inject-intx"));
	json_object_object_add(req, "device", json_object_new_string(argv[0]));
	int rc = ctlplane_request(path, req, &rep);
	json_object_put(req);
	if (rc) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
		return 1;
	}
	rc = ctlplane_check_reply(rep, "inject-intx");
	json_object_put(rep);
	return rc ? 1 : 0;
}

/* --- events --- */

/* "TIME DEVICE TYPE DETAILS", one line per event. */
static void print_event(struct json_object *ev)
{
	struct json_object *v;
	char details[160] = "";
	size_t n = 0;
	if (json_object_object_get_ex(ev, "from", &v))
		n += (size_t)snprintf(details, sizeof(details), "%s -> %s", json_object_get_string(v),
				      str(ev, "to"));
	if (json_object_object_get_ex(ev, "num_vfs", &v))
		n += (size_t)snprintf(details + n, sizeof(details) - n, "%s%d VFs", n ? " " : "",
				      json_object_get_int(v));
	if (n < sizeof(details) && json_object_object_get_ex(ev, "cause", &v))
		snprintf(details + n, sizeof(details) - n, n ? " (%s)" : "%s",
			 json_object_get_string(v));
	if (!strcmp(str(ev, "type"), "lost"))
		snprintf(details, sizeof(details), "%s events not delivered (this client fell behind)",
			 str(ev, "count"));
	if (details[0])
		printf("%-27s %-12s %-17s %s\n", str(ev, "time"), str(ev, "device"), str(ev, "type"),
		       details);
	else
		printf("%-27s %-12s %s\n", str(ev, "time"), str(ev, "device"), str(ev, "type"));
}

static void emit_event(struct json_object *ev, bool json)
{
	if (json)
		printf("%s\n", json_object_to_json_string_ext(ev, JSON_C_TO_STRING_PLAIN |
									   JSON_C_TO_STRING_NOSLASHESCAPE));
	else
		print_event(ev);
}


/* Subscribes and prints every line the server pushes until it closes the
 * connection (vfpmd stopped) or vfpmctl is interrupted. */
static int follow(const char *path, const char *only, bool json)
{
	int fd = connect_ctl(path);
	if (fd < 0) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-fd));
		return 1;
	}
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("subscribe"));
	if (only)
		json_object_object_add(req, "device", json_object_new_string(only));
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
	size_t len = strlen(s);
	bool sent = send(fd, s, len, MSG_NOSIGNAL) == (ssize_t)len &&
		    send(fd, "\n", 1, MSG_NOSIGNAL) == 1;
	json_object_put(req);
	if (!sent) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	static char buf[1 << 16];
	size_t have = 0;
	bool first = true;
	int ret = 0;
	for (;;) {
		char *nl = memchr(buf, '\n', have);
		if (!nl) {
			if (have == sizeof(buf)) {
				fprintf(stderr, "vfpmctl: events: line too long\n");
				ret = 1;
				break;
			}
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			if (r <= 0) {
				if (first) {
					fprintf(stderr, "vfpmctl: events: connection closed\n");
					ret = 1;
				}
				break;   /* vfpmd stopped */
			}
			have += (size_t)r;
			continue;
		}
		*nl = '\0';
		struct json_object *o = json_tokener_parse(buf);
		size_t used = (size_t)(nl - buf) + 1;
		memmove(buf, buf + used, have - used);
		have -= used;
		if (!o) {
			fprintf(stderr, "vfpmctl: events: malformed line from vfpmd\n");
			ret = 1;
			break;
		}
		if (first) {
			first = false;
			if (ctlplane_check_reply(o, "events")) {
				json_object_put(o);
				ret = 1;
				break;
			}
		} else {
			emit_event(o, json);
			fflush(stdout);
		}
		json_object_put(o);
	}
	close(fd);
	return ret;
}

int ctlplane_events(const char *path, int argc, char **argv)
{
	bool json = false, follow_on = false;
	const char *only = NULL;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!strcmp(argv[i], "--follow") || !strcmp(argv[i], "-f"))
			follow_on = true;
		else if (argv[i][0] == '-') {
			fprintf(stderr, "vfpmctl: events: unknown option '%s'\n", argv[i]);
			return 2;
		} else if (only) {
			fprintf(stderr, "vfpmctl: events: one DEVICE at most\n");
			return 2;
		} else
			only = argv[i];
	}
	if (follow_on)
		return follow(path, only, json);
	struct json_object *req = json_object_new_object(), *rep = NULL;
	json_object_object_add(req, "cmd", json_object_new_string("events"));
	if (only)
		json_object_object_add(req, "device", json_object_new_string(only));
	int rc = ctlplane_request(path, req, &rep);
	json_object_put(req);
	if (rc) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
		return 1;
	}
	if (ctlplane_check_reply(rep, "events")) {
		json_object_put(rep);
		return 1;
	}
	struct json_object *evs = sub(rep, "events");
	for (size_t i = 0; evs && i < json_object_array_length(evs); i++)
		emit_event(json_object_array_get_idx(evs, i), json);
	json_object_put(rep);
	return 0;
}

int ctlplane_metrics(const char *path, int argc, char **argv)
{
	struct json_object *req = json_object_new_object(), *rep = NULL;
	json_object_object_add(req, "cmd", json_object_new_string("metrics"));
	int rc = ctlplane_request(path, req, &rep);
	json_object_put(req);
	if (rc) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
		return 1;
	}
	if (ctlplane_check_reply(rep, "metrics")) {
		json_object_put(rep);
		return 1;
	}
	fputs(str(rep, "text"), stdout);
	json_object_put(rep);
	return 0;
}
