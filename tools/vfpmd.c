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
		"                           power management keys (docs/power-management.md):\n"
		"                             platform_d3cold=on|off (off)  d3cold_allowed=on|off (on)\n"
		"                             idle_d3=on|off (on)  power_control=auto|on (auto)\n"
		"                             autosuspend_delay_ms=N (0)  pm_delays=pci|none (pci)\n"
		"                             d3hot_promotion=off|nosoftrst|always (off)\n"
		"                           plus the model's own keys (see --list-models)\n"
		"  -m, --socket-mode MODE   permission bits of socket files (octal, default 0600)\n"
		"  -c, --ctl PATH           control socket (JSON lines; vfpmctl --ctl PATH ...);\n"
		"                           default <dir>/vfpmd.ctl, 'none' disables it\n"
		"      --ctl-mode MODE      permission bits of the control socket (octal;\n"
		"                           default 0600, 0660 with --ctl-group)\n"
		"      --ctl-group GROUP    the control socket's group: its members may change\n"
		"                           settings; other users may only read status\n"
		"  -v, --verbose            also log each session's set-up (capabilities, DMA\n"
		"                           maps, interrupts); -vv: also every failed request\n"
		"  -q, --quiet              errors and warnings only\n"
		"      --handshake-timeout MS\n"
		"                           close a connection that sends no VERSION within MS\n"
		"                           milliseconds (default 10000; 0: never)\n"
		"      --send-timeout MS    close a connection whose client has not read a\n"
		"                           message within MS milliseconds (default 10000)\n"
		"      --model PATH.so      load a device model from a shared object that\n"
		"                           defines vfpm_model_entry() (docs/device-api.md);\n"
		"                           repeatable; before --device uses it\n"
		"      --list-models        list device models and their keys\n"
		"  -h, --help               this help\n"
		"  -V, --version            version\n"
		"\n"
		"SIGINT or SIGTERM stops the server: clients see the connection close and\n"
		"socket files are removed. The default socket directory is $VFPM_SOCKET's\n"
		"directory, /run/vfpm as root, else $XDG_RUNTIME_DIR/vfpm or /tmp/vfpm-UID.\n",
		def);
}

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

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "device", required_argument, NULL, 'd' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "ctl", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "list-models", no_argument, NULL, 'L' },
		{ "model", required_argument, NULL, 'P' },
		{ "handshake-timeout", required_argument, NULL, 'H' },
		{ "send-timeout", required_argument, NULL, 'T' },
		{ "ctl-mode", required_argument, NULL, 'M' },
		{ "ctl-group", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *socket_path = NULL;
	const char **specs = calloc((size_t)argc + 1, sizeof(*specs));
	const char **plugins = calloc((size_t)argc + 1, sizeof(*plugins));
	unsigned nspecs = 0, nplugins = 0;
	bool list = false;
	struct vfpm_server_opts so = { .size = sizeof(so), .verbosity = 2, .socket_mode = 0600,
				       .ctl = true };
	int c;
	if (!specs || !plugins)
		return 1;
	while ((c = getopt_long(argc, argv, "s:d:m:c:vqhV", lo, NULL)) != -1) {
		switch (c) {
		case 's': socket_path = optarg; break;
		case 'd': specs[nspecs++] = optarg; break;
		case 'c':
			so.ctl = strcmp(optarg, "none") != 0;
			so.ctl_path = optarg;
			break;
		case 'm': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || m > 0777) {
				fprintf(stderr, "vfpmd: --socket-mode '%s': expected octal bits like 0600\n",
					optarg);
				return 2;
			}
			so.socket_mode = (mode_t)m;
			break;
		}
		case 'v': so.verbosity = so.verbosity < 4 ? so.verbosity + 1 : so.verbosity; break;
		case 'q': so.verbosity = 1; break;
		case 'L': list = true; break;
		case 'P': plugins[nplugins++] = optarg; break;
		case 'M': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || m > 0777 || !m) {
				fprintf(stderr, "vfpmd: --ctl-mode '%s': expected octal bits like 0600\n",
					optarg);
				free(specs);
				free(plugins);
				return 2;
			}
			so.ctl_mode = (mode_t)m;
			break;
		}
		case 'G': {
			struct group *g = getgrnam(optarg);
			char *end;
			errno = 0;
			unsigned long id = strtoul(optarg, &end, 10);
			if (g) {
				so.ctl_group = g->gr_gid;
			} else if (!errno && !*end && *optarg) {
				so.ctl_group = (gid_t)id;
			} else {
				fprintf(stderr, "vfpmd: --ctl-group '%s': no such group\n", optarg);
				free(specs);
				free(plugins);
				return 2;
			}
			so.has_ctl_group = true;
			break;
		}
		case 'H':
		case 'T': {
			char *end;
			errno = 0;
			long ms = strtol(optarg, &end, 10);
			if (errno || *end || !*optarg || ms < 0 || ms > 3600000) {
				fprintf(stderr, "vfpmd: --%s '%s': expected 0..3600000 ms\n",
					c == 'H' ? "handshake-timeout" : "send-timeout", optarg);
				free(specs);
				free(plugins);
				return 2;
			}
			*(c == 'H' ? &so.handshake_ms : &so.send_ms) = ms ? (int)ms : -1;
			break;
		}
		case 'h': usage(stdout); free(specs); free(plugins); return 0;
		case 'V': printf("vfpmd %s\n", VFPM_VERSION); free(specs); free(plugins); return 0;
		default: usage(stderr); free(specs); free(plugins); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfpmd: unexpected argument '%s' (see vfpmd --help)\n", argv[optind]);
		free(specs);
		free(plugins);
		return 2;
	}

	/* Signals are taken synchronously by the main thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct vfpm_server *srv;
	int rc = vfpm_server_new(&so, &srv);
	if (rc) {
		fprintf(stderr, "vfpmd: %s\n", strerror(-rc));
		free(specs);
		free(plugins);
		return 1;
	}
	for (unsigned i = 0; i < nplugins && !rc; i++)
		rc = load_model(srv, plugins[i]);
	free(plugins);
	if (!rc && list) {
		list_models(srv);
		vfpm_server_free(srv);
		free(specs);
		return 0;
	}
	if (!nspecs)
		specs[nspecs++] = "demo";
	for (unsigned i = 0; i < nspecs && !rc; i++) {
		/* --socket applies to the first device that names none */
		const char *spec = specs[i];
		bool named = strstr(spec, ",socket=") != NULL;
		rc = vfpm_server_add_device(srv, spec, named ? NULL : socket_path);
		if (!named)
			socket_path = NULL;
	}
	free(specs);
	if (!rc)
		rc = vfpm_server_start(srv);
	if (rc) {
		vfpm_server_free(srv);
		return 1;
	}
	int sig = 0;
	sigwait(&set, &sig);
	if (so.verbosity >= 2)
		fprintf(stderr, "vfpmd: info: -: %s: shutting down\n",
			sig == SIGINT ? "SIGINT" : "SIGTERM");
	vfpm_server_stop(srv);
	vfpm_server_free(srv);
	return 0;
}
