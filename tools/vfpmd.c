/* vfpmd: the vfpm device server, a user of the embedding API
 * (include/vfpm/server.h) like any other program linked with libvfpm. */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vfpm/client.h"
#include "vfpm/server.h"

#ifndef VFPM_VERSION
#define VFPM_VERSION "unknown"
#endif

static void usage(FILE *f)
{
	char def[256] = "?";
	vfpm_default_socket_path(def, sizeof(def));
	fprintf(f,
		"Usage: vfpmd [OPTION]...\n"
		"Serve emulated PCI devices to vfio-user clients (QEMU vfio-user-pci, ...).\n"
		"\n"
		"With no --device, serves one 'demo' device at the default socket\n"
		"  %s\n"
		"\n"
		"Options:\n"
		"  -s, --socket PATH        socket of the default device (or of the first\n"
		"                           --device that has no socket= key)\n"
		"  -d, --device MODEL[,key=value...]\n"
		"                           serve a device; repeatable. Keys for every model:\n"
		"                             name=NAME     device name (default: MODEL, MODEL1, ...)\n"
		"                             socket=PATH   socket (default: <dir>/NAME.sock)\n"
		"                             poll_us=US    poll window after a request\n"
		"                                           (default: --poll-us)\n"
		"                           power management keys (docs/power-management.md):\n"
		"                             platform_d3cold=on|off (off)  d3cold_allowed=on|off (on)\n"
		"                             idle_d3=on|off (on)  power_control=auto|on (auto)\n"
		"                             autosuspend_delay_ms=N (0)  pm_delays=pci|none (pci)\n"
		"                             d3hot_promotion=off|nosoftrst|always (off)\n"
		"                           dma_max=SIZE: bound on the client's mapped DMA memory\n"
		"                             (K/M/G/T suffixes, default 1T)\n"
		"                           energy model, mW drawn per state (none above D0):\n"
		"                             power_d0_mw=3000 power_d1_mw=1500 power_d2_mw=750\n"
		"                             power_d3hot_mw=330 power_d3cold_mw=66\n"
		"                           plus the model's own keys (see --list-models)\n"
		"  -m, --socket-mode MODE   permission bits of socket files (octal, default 0600)\n"
		"  -c, --ctl PATH           control socket (JSON lines; vfpmctl --ctl PATH ...);\n"
		"                           default <dir>/vfpmd.ctl, 'none' disables it\n"
		"      --ctl-mode MODE      permission bits of the control socket (octal;\n"
		"                           default 0600, 0660 with --ctl-group)\n"
		"      --ctl-group GROUP    the control socket's group: its members may change\n"
		"                           settings; other users may only read status\n"
		"      --config FILE        read options from FILE: one per line, a long option's\n"
		"                           name and its value ('device demo,name=a'); '#'\n"
		"                           comments (man 5 vfpm-devices)\n"
		"      --metrics-file PATH  keep a Prometheus textfile-collector file up to\n"
		"                           date (rewritten on every change, removed at exit)\n"
		"  -v, --verbose            also log each session's set-up (capabilities, DMA\n"
		"                           maps, interrupts); -vv: also every failed request\n"
		"  -q, --quiet              errors and warnings only\n"
		"      --handshake-timeout MS\n"
		"                           close a connection that sends no VERSION within MS\n"
		"                           milliseconds (default 10000; 0: never)\n"
		"      --ctl-timeout MS     close a control connection that has not sent a whole\n"
		"                           request line within MS milliseconds of connecting\n"
		"                           or of the previous reply (default 30000)\n"
		"      --send-timeout MS    close a connection whose client has not read a\n"
		"                           message within MS milliseconds (default 10000;\n"
		"                           0: never)\n"
"      --poll-us US         default of the device key poll_us=US: after a\n"
		"                           request a session reads without blocking for up\n"
		"                           to US microseconds before it sleeps (0: never)\n"
		"      --session-idle-ms MS\n"
		"                           a connected client that sends nothing for MS\n"
		"                           milliseconds gives its session thread back; its\n"
		"                           next message starts one (default 1000; 0: never)\n"
		"      --model PATH.so      load a device model from a shared object that\n"
		"                           defines vfpm_model_entry() (docs/device-api.md);\n"
		"                           repeatable\n"
		"      --list-models        list device models and their keys\n"
		"  -h, --help               this help\n"
		"  -V, --version            version\n"
		"\n"
		"SIGINT or SIGTERM stops the server: clients see the connection close and\n"
		"socket files are removed. The default socket directory is $VFPM_SOCKET's\n"
		"directory, /run/vfpm as root, else $XDG_RUNTIME_DIR/vfpm or /tmp/vfpm-UID.\n",
		def);
}

/* systemd readiness (Type=notify) when built with libsystemd: ready once
 * every socket listens, so clients started after vfpmd find them. */
#ifdef HAVE_LIBSYSTEMD
#include <systemd/sd-daemon.h>
static void notify_ready(void)
{
	sd_notify(0, "READY=1");
}
static void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}
static void notify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}
#else
static void notify_reloading(void)
{
}
static void notify_ready(void)
{
}
static void notify_stopping(void)
{
}
#endif

static void list_models(const struct vfpm_server *srv)
{
	const struct vfpm_model *m;
	for (unsigned i = 0; (m = vfpm_server_model(srv, i)); i++) {
		printf("%-10s %s\n", m->name, m->summary ? m->summary : "");
		printf("           keys:");
		for (const char *const *k = m->keys; k && *k; k++)
			printf(" %s", *k);
		printf("\n");
	}
}

/* Loads the model of a shared object (its vfpm_model_entry()) into srv.
 * The object stays loaded until the process ends. */
static int load_model(struct vfpm_server *srv, const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "vfpmd: --model %s: %s\n", path, dlerror());
		return -ENOENT;
	}
	const struct vfpm_model *(*entry)(void);
	*(void **)&entry = dlsym(h, VFPM_MODEL_ENTRY_SYMBOL);
	if (!entry) {
		fprintf(stderr, "vfpmd: --model %s: no %s() in it (not a vfpm model)\n", path,
			VFPM_MODEL_ENTRY_SYMBOL);
		dlclose(h);
		return -ENOENT;
	}
	const struct vfpm_model *m = entry();
	int rc = m ? vfpm_server_add_model(srv, m) : -EINVAL;
	if (rc) {
		fprintf(stderr, "vfpmd: --model %s: %s\n", path,
			!m		? "its vfpm_model_entry() returned NULL"
			: rc == -E2BIG	? "built against a newer libvfpm than this one (struct vfpm_model is larger)"
			: rc == -EEXIST ? "a model of that name is already loaded"
			: rc == -EINVAL ? "its struct vfpm_model has no size, name or create()"
					: strerror(-rc));
		dlclose(h);
		return rc;
	}
	return 0;
}

static const struct option long_opts[] = {
	{ "socket", required_argument, NULL, 's' },
	{ "device", required_argument, NULL, 'd' },
	{ "socket-mode", required_argument, NULL, 'm' },
	{ "ctl", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "list-models", no_argument, NULL, 'L' },
	{ "handshake-timeout", required_argument, NULL, 'H' },
	{ "send-timeout", required_argument, NULL, 'T' },
	{ "ctl-timeout", required_argument, NULL, 'K' },
	{ "poll-us", required_argument, NULL, 'U' },
	{ "session-idle-ms", required_argument, NULL, 'I' },
	{ "ctl-mode", required_argument, NULL, 'M' },
	{ "ctl-group", required_argument, NULL, 'G' },
	{ "metrics-file", required_argument, NULL, 'P' },
	{ "model", required_argument, NULL, 'X' },
	{ "config", required_argument, NULL, 'C' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 },
};

/* A --device spec and where it was given (a config file's FILE:LINE, or
 * NULL for the command line). */
struct spec {
	char *text;
	char *where;
	bool from_config;
};

struct settings {
	struct vfpm_server_opts so;
	const char *socket_path;
	struct spec *specs;
	unsigned nspecs, cap;
	const char **models;        /* --model PATH.so, in order */
	unsigned nmodels, models_cap;
	bool list;
	const char *config;         /* the --config FILE, reloaded on SIGHUP */
	/* strings the options point into (config file values) */
	char **owned;
	unsigned nowned, owned_cap;
};

static char *keep(struct settings *st, char *s)
{
	if (!s)
		return NULL;
	if (st->nowned == st->owned_cap) {
		unsigned nc = st->owned_cap ? 2 * st->owned_cap : 16;
		char **n = realloc(st->owned, nc * sizeof(*n));
		if (!n) {
			free(s);
			return NULL;
		}
		st->owned = n;
		st->owned_cap = nc;
	}
	return st->owned[st->nowned++] = s;
}

/* Exit statuses of apply_opt besides 0: 2 bad usage, 1 other failure;
 * -1: done (help, version, list-models printed), exit 0. */
enum { OPT_DONE = -1 };

static int read_config(struct settings *st, const char *path);

/* Applies option c with its argument. where: "FILE:LINE: " for an option
 * from a config file, "" for the command line. */
static int apply_opt(struct settings *st, int c, const char *arg, const char *where)
{
	struct vfpm_server_opts *so = &st->so;
	switch (c) {
	case 's': st->socket_path = arg; return 0;
	case 'c':
		so->ctl = strcmp(arg, "none") != 0;
		so->ctl_path = arg;
		return 0;
	case 'X':
		if (st->nmodels == st->models_cap) {
			unsigned nc = st->models_cap ? 2 * st->models_cap : 4;
			const char **n = realloc(st->models, nc * sizeof(*n));
			if (!n)
				return 1;
			st->models = n;
			st->models_cap = nc;
		}
		st->models[st->nmodels++] = arg;
		return 0;
	case 'P': so->metrics_path = arg; return 0;
	case 'd': {
		if (st->nspecs == st->cap) {
			unsigned nc = st->cap ? 2 * st->cap : 8;
			struct spec *n = realloc(st->specs, nc * sizeof(*n));
			if (!n)
				return 1;
			st->specs = n;
			st->cap = nc;
		}
		struct spec *sp = &st->specs[st->nspecs];
		sp->text = strdup(arg);
		sp->where = *where ? strdup(where) : NULL;
		sp->from_config = *where != '\0';
		if (!sp->text || (*where && !sp->where)) {
			free(sp->text);
			free(sp->where);
			return 1;
		}
		st->nspecs++;
		return 0;
	}
	case 'm':
	case 'M': {
		char *end;
		errno = 0;
		unsigned long m = strtoul(arg, &end, 8);
		if (errno || *end || !*arg || m > 0777 || (c == 'M' && !m)) {
			fprintf(stderr, "vfpmd: %s--%s '%s': expected octal bits like 0600\n", where,
				c == 'm' ? "socket-mode" : "ctl-mode", arg);
			return 2;
		}
		*(c == 'm' ? &so->socket_mode : &so->ctl_mode) = (mode_t)m;
		return 0;
	}
	case 'v': so->verbosity = so->verbosity < 4 ? so->verbosity + 1 : so->verbosity; return 0;
	case 'q': so->verbosity = 1; return 0;
	case 'L': st->list = true; return 0;
	case 'G': {
		struct group *g = getgrnam(arg);
		char *end;
		errno = 0;
		unsigned long id = strtoul(arg, &end, 10);
		if (g) {
			so->ctl_group = g->gr_gid;
		} else if (!errno && !*end && *arg) {
			so->ctl_group = (gid_t)id;
		} else {
			fprintf(stderr, "vfpmd: %s--ctl-group '%s': no such group\n", where, arg);
			return 2;
		}
		so->has_ctl_group = true;
		return 0;
	}
	case 'H':
	case 'T':
	case 'I': {
		/* milliseconds, 0: none (never) */
		const char *name = c == 'H'   ? "handshake-timeout"
				   : c == 'T' ? "send-timeout"
					      : "session-idle-ms";
		int *ms_out = c == 'H'	 ? &so->handshake_ms
			      : c == 'T' ? &so->send_ms
					 : &so->session_idle_ms;
		char *end;
		errno = 0;
		long ms = strtol(arg, &end, 10);
		if (errno || *end || !*arg || ms < 0 || ms > 3600000) {
			fprintf(stderr, "vfpmd: %s--%s '%s': expected 0..3600000 ms\n", where, name,
				arg);
			return 2;
		}
		*ms_out = ms ? (int)ms : -1;
		return 0;
	}
	case 'K': {
		char *end;
		errno = 0;
		long ms = strtol(arg, &end, 10);
		if (errno || *end || !*arg || ms < 1 || ms > 3600000) {
			fprintf(stderr, "vfpmd: %s--ctl-timeout '%s': expected 1..3600000 ms\n",
				where, arg);
			return 2;
		}
		so->ctl_line_ms = (int)ms;
		return 0;
	}
	case 'U': {
		char *end;
		errno = 0;
		long us = strtol(arg, &end, 10);
		if (errno || *end || !*arg || us < 0 || us > 1000000) {
			fprintf(stderr, "vfpmd: %s--poll-us '%s': expected 0..1000000 us\n", where, arg);
			return 2;
		}
		so->poll_us = us ? (int)us : -1;
		return 0;
	}
	case 'C':
		if (*where) {
			fprintf(stderr, "vfpmd: %sa config file cannot include another\n", where);
			return 2;
		}
		st->config = arg;
		return read_config(st, arg);
	case 'h': usage(stdout); return OPT_DONE;
	case 'V': printf("vfpmd %s\n", VFPM_VERSION); return OPT_DONE;
	default: usage(stderr); return 2;
	}
}

/* The config file: one option per line, the long option's name and its
 * value separated by white space ("device demo,name=a"); '#' starts a
 * comment line; blank lines are skipped (docs/vfpm-devices.5.scd). */
static int read_config(struct settings *st, const char *path)
{
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "vfpmd: --config %s: %s\n", path, strerror(errno));
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	unsigned lineno = 0;
	int rc = 0;
	while (!rc && getline(&line, &cap, f) >= 0) {
		lineno++;
		char where[512];
		snprintf(where, sizeof(where), "%s:%u: ", path, lineno);
		char *p = line;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t n = strlen(p);
		while (n && (p[n - 1] == '\n' || p[n - 1] == '\r' || p[n - 1] == ' ' || p[n - 1] == '\t'))
			p[--n] = '\0';
		if (!*p || *p == '#')
			continue;
		char *key = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
		if (*p)
			*p++ = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		const struct option *o = NULL;
		for (const struct option *k = long_opts; k->name && !o; k++)
			if (!strcmp(k->name, key))
				o = k;
		if (!o || o->val == 'C' || o->val == 'h' || o->val == 'V' || o->val == 'L') {
			fprintf(stderr, "vfpmd: %sunknown option '%s'\n", where, key);
			rc = 2;
		} else if (o->has_arg == required_argument && !*p) {
			fprintf(stderr, "vfpmd: %s'%s' needs a value\n", where, key);
			rc = 2;
		} else if (o->has_arg == no_argument && *p) {
			fprintf(stderr, "vfpmd: %s'%s' takes no value\n", where, key);
			rc = 2;
		} else {
			const char *val = *p ? keep(st, strdup(p)) : NULL;
			rc = *p && !val ? 1 : apply_opt(st, o->val, val, where);
		}
	}
	if (!rc && ferror(f)) {
		fprintf(stderr, "vfpmd: --config %s: %s\n", path, strerror(errno));
		rc = 1;
	}
	free(line);
	fclose(f);
	return rc;
}

static void settings_free(struct settings *st)
{
	for (unsigned i = 0; i < st->nspecs; i++) {
		free(st->specs[i].text);
		free(st->specs[i].where);
	}
	free(st->specs);
	for (unsigned i = 0; i < st->nowned; i++)
		free(st->owned[i]);
	free(st->owned);
	free(st->models);
}

/* --- SIGHUP: the config file's devices again --- */

/* A device that a config line made, by the line's text. */
struct live {
	char *text;
	char *name;
};

static char *last_device_name(const struct vfpm_server *srv)
{
	const char *n = NULL, *x;
	for (unsigned i = 0; (x = vfpm_server_device_name(srv, i)); i++)
		n = x;
	return n ? strdup(n) : NULL;
}

/* Reads the config file again and brings the devices it names in line:
 * a device whose line is gone is removed; a line that is new is added; a
 * device whose line is unchanged (the same text) is not touched, client
 * and state included. A changed line is a line gone and a new one: that
 * device is removed, then added again. Other options are not reloaded. A
 * file that does not parse changes nothing. */
static void reload(struct vfpm_server *srv, const char *path, struct live **livep,
		   unsigned *nlivep, int verbosity)
{
	struct settings nst = { .so = { .size = sizeof(nst.so), .verbosity = verbosity } };
	struct live *live = *livep;
	unsigned nlive = *nlivep;
	if (read_config(&nst, path)) {
		fprintf(stderr, "vfpmd: SIGHUP: %s has errors: the devices stay as they are\n", path);
		settings_free(&nst);
		return;
	}
	bool *kept = calloc(nlive + 1, sizeof(*kept)), *seen = calloc(nst.nspecs + 1, sizeof(*seen));
	struct live *grown = realloc(live, (nlive + nst.nspecs + 1) * sizeof(*live));
	if (!kept || !seen || !grown) {
		fprintf(stderr, "vfpmd: SIGHUP: out of memory: the devices stay as they are\n");
		free(kept);
		free(seen);
		if (grown)
			*livep = grown;
		settings_free(&nst);
		return;
	}
	live = grown;
	/* each live device keeps at most one identical line */
	for (unsigned i = 0; i < nlive; i++)
		for (unsigned k = 0; k < nst.nspecs && !kept[i]; k++)
			if (!seen[k] && !strcmp(live[i].text, nst.specs[k].text))
				kept[i] = seen[k] = true;
	unsigned removed = 0, added = 0, n = 0;
	/* removals first: a changed line may keep its name= or socket= */
	for (unsigned i = 0; i < nlive; i++) {
		if (kept[i]) {
			live[n++] = live[i];
			continue;
		}
		int rc = vfpm_server_remove_device(srv, live[i].name);
		if (rc)
			fprintf(stderr, "vfpmd: SIGHUP: cannot remove %s: %s\n", live[i].name,
				strerror(-rc));
		else
			removed++;
		free(live[i].text);
		free(live[i].name);
	}
	unsigned unchanged = n;
	for (unsigned k = 0; k < nst.nspecs; k++) {
		if (seen[k])
			continue;
		int rc = vfpm_server_serve_device(srv, nst.specs[k].text, NULL);
		if (rc) {
			fprintf(stderr, "vfpmd: SIGHUP: %sthis device was not added: %s\n",
				nst.specs[k].where, strerror(-rc));
			continue;
		}
		live[n].text = strdup(nst.specs[k].text);
		live[n].name = last_device_name(srv);
		if (!live[n].text || !live[n].name) {
			free(live[n].text);
			free(live[n].name);
			continue;   /* served, but a later reload cannot remove it */
		}
		n++;
		added++;
	}
	if (verbosity >= 2)
		fprintf(stderr,
			"vfpmd: info: -: SIGHUP: reloaded %s: %u devices added, %u removed, %u "
			"unchanged\n",
			path, added, removed, unchanged);
	free(kept);
	free(seen);
	settings_free(&nst);
	*livep = live;
	*nlivep = n;
}

int main(int argc, char **argv)
{
	struct settings st = { .so = { .size = sizeof(st.so),
				       .verbosity = 2,   /* info */
				       .socket_mode = 0600,
				       .ctl = true } };
	int c, rc = 0;
	while (!rc && (c = getopt_long(argc, argv, "s:d:m:c:vqhV", long_opts, NULL)) != -1)
		rc = apply_opt(&st, c, optarg, "");
	if (!rc && optind < argc) {
		fprintf(stderr, "vfpmd: unexpected argument '%s' (see vfpmd --help)\n", argv[optind]);
		rc = 2;
	}
	if (!rc && !st.nspecs && !st.list)
		rc = apply_opt(&st, 'd', "demo", "");
	if (rc) {
		settings_free(&st);
		return rc == OPT_DONE ? 0 : rc;
	}

	/* Signals are taken synchronously by the main thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct vfpm_server *srv;
	rc = vfpm_server_new(&st.so, &srv);
	if (rc) {
		fprintf(stderr, "vfpmd: %s\n", strerror(-rc));
		settings_free(&st);
		return 1;
	}
	for (unsigned i = 0; i < st.nmodels && !rc; i++)
		rc = load_model(srv, st.models[i]);
	if (!rc && st.list) {
		list_models(srv);
		vfpm_server_free(srv);
		settings_free(&st);
		return 0;
	}
	for (unsigned i = 0; i < st.nspecs && !rc; i++) {
		/* --socket applies to the first device that names none */
		const char *spec = st.specs[i].text;
		bool named = strstr(spec, ",socket=") != NULL;
		rc = vfpm_server_add_device(srv, spec, named ? NULL : st.socket_path);
		if (!named)
			st.socket_path = NULL;
		if (rc && st.specs[i].where)
			fprintf(stderr, "vfpmd: %sthis device\n", st.specs[i].where);
	}
	if (!rc)
		rc = vfpm_server_start(srv);
	if (rc) {
		vfpm_server_free(srv);
		settings_free(&st);
		return 1;
	}
	/* the devices of the config file's lines, for SIGHUP (device i is
	 * spec i: each spec made one device, in order) */
	struct live *live = calloc(st.nspecs + 1, sizeof(*live));
	unsigned nlive = 0;
	for (unsigned i = 0; live && i < st.nspecs; i++) {
		if (!st.specs[i].from_config)
			continue;
		const char *name = vfpm_server_device_name(srv, i);
		live[nlive].text = strdup(st.specs[i].text);
		live[nlive].name = name ? strdup(name) : NULL;
		if (live[nlive].text && live[nlive].name)
			nlive++;
		else {
			free(live[nlive].text);
			free(live[nlive].name);
		}
	}
	notify_ready();
	int sig = 0;
	for (;;) {
		sigwait(&set, &sig);
		if (sig != SIGHUP)
			break;
		if (!st.config) {
			if (st.so.verbosity >= 2)
				fprintf(stderr, "vfpmd: info: -: SIGHUP: no --config to reload\n");
			continue;
		}
		notify_reloading();
		reload(srv, st.config, &live, &nlive, st.so.verbosity);
		notify_ready();
	}
	for (unsigned i = 0; i < nlive; i++) {
		free(live[i].text);
		free(live[i].name);
	}
	free(live);
	if (st.so.verbosity >= 2)
		fprintf(stderr, "vfpmd: info: -: %s: shutting down\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
	notify_stopping();
	vfpm_server_stop(srv);
	vfpm_server_free(srv);
	settings_free(&st);
	return 0;
}
