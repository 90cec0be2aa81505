/* vfpmd: the vfpm device server. */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "models.h"
#include "server.h"
#include "vfpm/client.h"

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
		"      --metrics-file PATH  keep a Prometheus textfile-collector file up to\n"
		"                           date (rewritten on every change, removed at exit)\n"
		"  -v, --verbose            also log each session's set-up (capabilities, DMA\n"
		"                           maps, interrupts); -vv: also every failed request\n"
		"  -q, --quiet              errors and warnings only\n"
		"      --handshake-timeout MS\n"
		"                           close a connection that sends no VERSION within MS\n"
		"                           milliseconds (default 10000; 0: never)\n"
		"      --send-timeout MS    close a connection whose client has not read a\n"
		"                           message within MS milliseconds (default 10000)\n"
		"      --list-models        list device models and their keys\n"
		"  -h, --help               this help\n"
		"  -V, --version            version\n"
		"\n"
		"SIGINT or SIGTERM stops the server: clients see the connection close and\n"
		"socket files are removed. The default socket directory is $VFPM_SOCKET's\n"
		"directory, /run/vfpm as root, else $XDG_RUNTIME_DIR/vfpm or /tmp/vfpm-UID.\n",
		def);
}

static void list_models(void)
{
	for (const struct vfpm_model *const *m = vfpm_models(); *m; m++) {
		printf("%-10s %s\n", (*m)->name, (*m)->summary);
		printf("           keys:");
		for (const char *const *k = (*m)->keys; k && *k; k++)
			printf(" %s", *k);
		printf("\n");
	}
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
		{ "handshake-timeout", required_argument, NULL, 'H' },
		{ "send-timeout", required_argument, NULL, 'T' },
		{ "ctl-mode", required_argument, NULL, 'M' },
		{ "ctl-group", required_argument, NULL, 'G' },
		{ "metrics-file", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	const char *socket_path = NULL;
	const char **specs = calloc((size_t)argc + 1, sizeof(*specs));
	unsigned nspecs = 0;
	struct server_opts so = { .verbosity = VFPM_LOG_INFO, .socket_mode = 0600 };
	int c;
	if (!specs)
		return 1;
	while ((c = getopt_long(argc, argv, "s:d:m:c:vqhV", lo, NULL)) != -1) {
		switch (c) {
		case 's': socket_path = optarg; break;
		case 'd': specs[nspecs++] = optarg; break;
		case 'c': so.ctl_path = optarg; break;
		case 'P': so.metrics_path = optarg; break;
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
		case 'v': so.verbosity = so.verbosity < CORE_VERBOSITY_MAX ? so.verbosity + 1 : so.verbosity; break;
		case 'q': so.verbosity = VFPM_LOG_WARN; break;
		case 'L': list_models(); free(specs); return 0;
		case 'M': {
			char *end;
			errno = 0;
			unsigned long m = strtoul(optarg, &end, 8);
			if (errno || *end || !*optarg || m > 0777 || !m) {
				fprintf(stderr, "vfpmd: --ctl-mode '%s': expected octal bits like 0600\n",
					optarg);
				free(specs);
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
				return 2;
			}
			*(c == 'H' ? &so.handshake_ms : &so.send_ms) = ms ? (int)ms : -1;
			break;
		}
		case 'h': usage(stdout); free(specs); return 0;
		case 'V': printf("vfpmd %s\n", VFPM_VERSION); free(specs); return 0;
		default: usage(stderr); free(specs); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "vfpmd: unexpected argument '%s' (see vfpmd --help)\n", argv[optind]);
		free(specs);
		return 2;
	}
	if (!nspecs)
		specs[nspecs++] = "demo";

	/* Signals are taken synchronously by the main thread only. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct vfpm_server *srv;
	int rc = server_create(&so, &srv);
	if (rc) {
		fprintf(stderr, "vfpmd: %s\n", strerror(-rc));
		free(specs);
		return 1;
	}
	for (unsigned i = 0; i < nspecs && !rc; i++) {
		/* --socket applies to the first device that names none */
		rc = server_add_device(srv, specs[i], &socket_path);
	}
	free(specs);
	if (!rc)
		rc = server_start(srv);
	if (rc) {
		server_stop(srv);
		server_destroy(srv);
		return 1;
	}
	int sig = 0;
	sigwait(&set, &sig);
	core_log(so.verbosity, VFPM_LOG_INFO, NULL, "%s: shutting down",
		 sig == SIGINT ? "SIGINT" : "SIGTERM");
	server_stop(srv);
	server_destroy(srv);
	return 0;
}
