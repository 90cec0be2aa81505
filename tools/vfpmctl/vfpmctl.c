/* vfpmctl: shell front of the vfpm client library.
 *
 * Each command is one entry of the table `commands`; its handler gets the
 * words after the command name and returns the exit status. Device
 * commands get their connection from ctl_client(), which connects on first
 * use, so commands that talk to another socket (a control plane) simply
 * never call it. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctlplane.h"
#include "vfpm/client.h"

#define PROG "vfpmctl"
#define CFG_DUMP_SIZE 4096

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

struct ctl {
	const char *socket;           /* device socket (--socket or the default) */
	struct vfpm_client *client;   /* connected on first use */
	const char *ctl_path;         /* control socket (--ctl or the default) */
};

struct command {
	const char *name;
	const char *args;   /* synopsis of the arguments */
	const char *help;   /* one line */
	int min_args, max_args;
	int (*run)(struct ctl *ctl, int argc, char **argv);
};

static const struct command commands[];

/* ------------------------------------------------------------------ */
/* Helpers */

/* "vfpmctl: <what>: <strerror>", exit status 1. err is a negative errno. */
static int fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int err, const char *fmt, ...)
{
	va_list ap;
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", strerror(err < 0 ? -err : err));
	return EXIT_ERR;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry '" PROG " --help'.\n", stderr);
	return EXIT_USAGE;
}

static struct vfpm_client *ctl_client(struct ctl *ctl)
{
	if (!ctl->client) {
		int rc = vfpm_client_connect(ctl->socket, NULL, &ctl->client);
		if (rc < 0) {
			fail(rc, "connect %s", ctl->socket);
			ctl->client = NULL;
		}
	}
	return ctl->client;
}

/* A number in C syntax (0x.., 0.., decimal) that must use the whole word. */
static bool parse_u64(const char *s, uint64_t *out)
{
	if (!*s || *s == '-')
		return false;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 0);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* An access width: one of the bits set in allowed (1, 2, 4, 8). */
static bool parse_width(const char *s, unsigned allowed, unsigned *out)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > 8 || !(allowed & v) || (v & (v - 1)))
		return false;
	*out = (unsigned)v;
	return true;
}

/* Region access of 1..8 bytes; the wire is little-endian like the host. */
static int rd(struct vfpm_client *c, uint32_t region, uint64_t off, unsigned len, uint64_t *v)
{
	*v = 0;
	return vfpm_client_region_read(c, region, off, v, len);
}

static int wr(struct vfpm_client *c, uint32_t region, uint64_t off, unsigned len, uint64_t v)
{
	return vfpm_client_region_write(c, region, off, &v, len);
}

static const char *region_name(uint32_t i)
{
	static const char *const names[] = {
		"BAR0", "BAR1", "BAR2", "BAR3", "BAR4", "BAR5", "ROM", "config", "VGA",
	};
	return i < sizeof(names) / sizeof(names[0]) ? names[i] : "other";
}

static const char *irq_name(uint32_t i)
{
	static const char *const names[] = { "INTx", "MSI", "MSI-X", "ERR", "REQ" };
	return i < sizeof(names) / sizeof(names[0]) ? names[i] : "other";
}

/* Prints the names of the flags set in v, as " [A B]". */
static void print_flags(uint32_t v, const uint32_t *bits, const char *const *names, size_t n)
{
	bool any = false;
	for (size_t i = 0; i < n; i++)
		if (v & bits[i]) {
			printf("%s%s", any ? " " : " [", names[i]);
			any = true;
		}
	if (any)
		putchar(']');
}

/* ------------------------------------------------------------------ */
/* Commands */

static int cmd_info(struct ctl *ctl, int argc, char **argv)
{
	struct vfpm_client *c = ctl_client(ctl);
	if (!c)
		return EXIT_ERR;
	const struct vfpm_server_caps *sc = vfpm_client_server_caps(c);
	printf("socket %s: protocol %u.%u, max_msg_fds %u, max_data_xfer_size %u%s%s\n",
	       ctl->socket, sc->major, sc->minor, sc->max_msg_fds, sc->max_data_xfer_size,
	       sc->write_multiple ? ", write_multiple" : "", sc->twin_socket ? ", twin_socket" : "");

	struct vfpm_device_info di;
	int rc = vfpm_client_device_info(c, &di);
	if (rc < 0)
		return fail(rc, "device info");
	static const uint32_t dbits[] = { VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_FLAGS_PCI };
	static const char *const dnames[] = { "RESET", "PCI" };
	printf("device: flags 0x%x", di.flags);
	print_flags(di.flags, dbits, dnames, 2);
	printf(", %u regions, %u irq indexes\n", di.num_regions, di.num_irqs);

	static const uint32_t rbits[] = { VFIO_REGION_INFO_FLAG_READ, VFIO_REGION_INFO_FLAG_WRITE,
					  VFIO_REGION_INFO_FLAG_MMAP, VFIO_REGION_INFO_FLAG_CAPS };
	static const char *const rnames[] = { "READ", "WRITE", "MMAP", "CAPS" };
	for (uint32_t i = 0; i < di.num_regions; i++) {
		struct vfpm_region_info ri;
		rc = vfpm_client_region_info(c, i, &ri);
		if (rc < 0)
			return fail(rc, "region %u info", i);
		if (ri.fd >= 0)
			close(ri.fd);
		printf("region %u (%s): size 0x%" PRIx64 ", flags 0x%x", i, region_name(i), ri.size,
		       ri.flags);
		print_flags(ri.flags, rbits, rnames, 4);
		putchar('\n');
		for (uint32_t a = 0; a < ri.nr_areas; a++)
			printf("  mmap area %u: offset 0x%" PRIx64 ", size 0x%" PRIx64 "\n", a,
			       ri.areas[a].offset, ri.areas[a].size);
		if ((ri.flags & VFIO_REGION_INFO_FLAG_MMAP) && ri.nr_areas == 0 && ri.size)
			printf("  mmap: whole region\n");
	}

	static const uint32_t ibits[] = { VFIO_IRQ_INFO_EVENTFD, VFIO_IRQ_INFO_MASKABLE,
					  VFIO_IRQ_INFO_AUTOMASKED, VFIO_IRQ_INFO_NORESIZE };
	static const char *const inames[] = { "EVENTFD", "MASKABLE", "AUTOMASKED", "NORESIZE" };
	for (uint32_t i = 0; i < di.num_irqs; i++) {
		struct vfpm_irq_info ii;
		rc = vfpm_client_irq_info(c, i, &ii);
		if (rc < 0)
			return fail(rc, "irq %u info", i);
		printf("irq %u (%s): count %u, flags 0x%x", i, irq_name(i), ii.count, ii.flags);
		print_flags(ii.flags, ibits, inames, 4);
		putchar('\n');
	}
	return EXIT_OK;
}

/* Shared by cfg-read and bar-read: argv = OFF [LEN]. */
static int do_read(struct ctl *ctl, uint32_t region, int argc, char **argv, unsigned allowed)
{
	uint64_t off;
	unsigned len = 4;
	if (!parse_u64(argv[0], &off))
		return usage_error("bad offset '%s'", argv[0]);
	if (argc > 1 && !parse_width(argv[1], allowed, &len))
		return usage_error("bad length '%s'", argv[1]);
	struct vfpm_client *c = ctl_client(ctl);
	if (!c)
		return EXIT_ERR;
	uint64_t v;
	int rc = rd(c, region, off, len, &v);
	if (rc < 0)
		return fail(rc, "read %s at 0x%" PRIx64, region_name(region), off);
	printf("0x%0*" PRIx64 "\n", (int)len * 2, v);
	return EXIT_OK;
}

/* Shared by cfg-write and bar-write: argv = OFF LEN VALUE. */
static int do_write(struct ctl *ctl, uint32_t region, char **argv, unsigned allowed)
{
	uint64_t off, v;
	unsigned len;
	if (!parse_u64(argv[0], &off))
		return usage_error("bad offset '%s'", argv[0]);
	if (!parse_width(argv[1], allowed, &len))
		return usage_error("bad length '%s'", argv[1]);
	if (!parse_u64(argv[2], &v) || (len < 8 && v >> (len * 8)))
		return usage_error("bad value '%s' for %u bytes", argv[2], len);
	struct vfpm_client *c = ctl_client(ctl);
	if (!c)
		return EXIT_ERR;
	int rc = wr(c, region, off, len, v);
	if (rc < 0)
		return fail(rc, "write %s at 0x%" PRIx64, region_name(region), off);
	return EXIT_OK;
}

static int cmd_cfg_read(struct ctl *ctl, int argc, char **argv)
{
	return do_read(ctl, VFIO_PCI_CONFIG_REGION_INDEX, argc, argv, 1 | 2 | 4);
}

static int cmd_cfg_write(struct ctl *ctl, int argc, char **argv)
{
	return do_write(ctl, VFIO_PCI_CONFIG_REGION_INDEX, argv, 1 | 2 | 4);
}

static bool parse_bar(const char *s, uint32_t *bar)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > VFIO_PCI_BAR5_REGION_INDEX)
		return false;
	*bar = (uint32_t)v;
	return true;
}

static int cmd_bar_read(struct ctl *ctl, int argc, char **argv)
{
	uint32_t bar;
	if (!parse_bar(argv[0], &bar))
		return usage_error("bad BAR '%s' (0-5)", argv[0]);
	return do_read(ctl, bar, argc - 1, argv + 1, 1 | 2 | 4 | 8);
}

static int cmd_bar_write(struct ctl *ctl, int argc, char **argv)
{
	uint32_t bar;
	if (!parse_bar(argv[0], &bar))
		return usage_error("bad BAR '%s' (0-5)", argv[0]);
	return do_write(ctl, bar, argv + 1, 1 | 2 | 4 | 8);
}

/* Runs `lspci -vvv -F path`; its output goes straight to ours. */
static int run_lspci(const char *path)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return fail(-errno, "fork");
	if (pid == 0) {
		execlp("lspci", "lspci", "-vvv", "-F", path, (char *)NULL);
		fprintf(stderr, PROG ": lspci: %s\n", strerror(errno));
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return fail(-errno, "waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, PROG ": lspci failed\n");
		return EXIT_ERR;
	}
	return EXIT_OK;
}

static int cmd_dump(struct ctl *ctl, int argc, char **argv)
{
	bool lspci = false;
	if (argc > 0) {
		if (strcmp(argv[0], "--lspci"))
			return usage_error("dump: unknown option '%s'", argv[0]);
		lspci = true;
	}
	struct vfpm_client *c = ctl_client(ctl);
	if (!c)
		return EXIT_ERR;
	struct vfpm_region_info ri;
	int rc = vfpm_client_region_info(c, VFIO_PCI_CONFIG_REGION_INDEX, &ri);
	if (rc < 0)
		return fail(rc, "config region info");
	if (ri.fd >= 0)
		close(ri.fd);
	/* A conventional device has 256 bytes; lspci reads 64 at least. */
	size_t len = ri.size < CFG_DUMP_SIZE ? (size_t)ri.size & ~(size_t)15 : CFG_DUMP_SIZE;
	if (len < 64)
		return fail(-EINVAL, "config region of %" PRIu64 " bytes", ri.size);
	uint8_t cfg[CFG_DUMP_SIZE];
	rc = vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, cfg, (uint32_t)len);
	if (rc < 0)
		return fail(rc, "read config space");

	if (!lspci) {
		rc = vfpm_format_lspci(cfg, len, stdout);
		if (rc < 0 || fflush(stdout))
			return fail(rc < 0 ? rc : -errno, "write dump");
		return EXIT_OK;
	}
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX];
	if (snprintf(path, sizeof(path), "%s/vfpmctl-dump.XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
	    (int)sizeof(path))
		return fail(-ENAMETOOLONG, "temporary file");
	int fd = mkstemp(path);
	if (fd < 0)
		return fail(-errno, "create %s", path);
	FILE *f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		unlink(path);
		return fail(rc, "fdopen");
	}
	rc = vfpm_format_lspci(cfg, len, f);
	if (fclose(f) && rc == 0)
		rc = -errno;
	int ret = rc < 0 ? fail(rc, "write %s", path) : run_lspci(path);
	unlink(path);
	return ret;
}

static int cmd_reset(struct ctl *ctl, int argc, char **argv)
{
	struct vfpm_client *c = ctl_client(ctl);
	if (!c)
		return EXIT_ERR;
	int rc = vfpm_client_reset(c);
	if (rc < 0)
		return fail(rc, "reset");
	return EXIT_OK;
}

static int cmd_help(struct ctl *ctl, int argc, char **argv);

/* Control-plane commands (ctlplane.c): they use the control socket only. */
static int cmd_status(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_status(ctl->ctl_path, argc, argv);
}

static int cmd_set(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_set(ctl->ctl_path, argc, argv);
}

static int cmd_inject_intx(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_inject_intx(ctl->ctl_path, argc, argv);
}

static int cmd_events(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_events(ctl->ctl_path, argc, argv);
}

static int cmd_metrics(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_metrics(ctl->ctl_path, argc, argv);
}

static int cmd_timeline(struct ctl *ctl, int argc, char **argv)
{
	return ctlplane_timeline(ctl->ctl_path, argc, argv);
}

static const struct command commands[] = {
	{ "info", "", "device info, regions (size, flags, mmap areas), IRQ indexes", 0, 0,
	  cmd_info },
	{ "cfg-read", "OFF [LEN]", "read config space (LEN 1, 2, 4; default 4), print hex", 1, 2,
	  cmd_cfg_read },
	{ "cfg-write", "OFF LEN VALUE", "write config space (LEN 1, 2, 4)", 3, 3, cmd_cfg_write },
	{ "bar-read", "BAR OFF [LEN]", "read BAR 0-5 (LEN 1, 2, 4, 8; default 4), print hex", 2, 3,
	  cmd_bar_read },
	{ "bar-write", "BAR OFF LEN VALUE", "write BAR 0-5 (LEN 1, 2, 4, 8)", 4, 4, cmd_bar_write },
	{ "dump", "[--lspci]",
	  "config space as an `lspci -F` dump; --lspci decodes it with lspci -vvv", 0, 1,
	  cmd_dump },
	{ "reset", "", "reset the device (DEVICE_RESET)", 0, 0, cmd_reset },
	{ "status", "[--json] [DEVICE]",
	  "power state of every device (control socket; never wakes a device)", 0, 2, cmd_status },
	{ "set", "DEVICE KEY=VALUE...", "change power settings, or a PF's sriov_numvfs, at run time (control socket)", 2, 16,
	  cmd_set },
	{ "inject-intx", "DEVICE", "assert INTx from the host side (control socket; tests)", 1, 1,
	  cmd_inject_intx },
	{ "events", "[--json] [--follow] [DEVICE]",
	  "PM events held by vfpmd; --follow prints new ones as they happen", 0, 3, cmd_events },
	{ "metrics", "", "Prometheus text exposition of every device (control socket)", 0, 0,
	  cmd_metrics },
	{ "timeline", "[DEVICE...] [--since SECONDS] -o FILE.svg|FILE.png",
	  "draw each device's D-states, wakeups, resets and clients over time (cairo)", 0, 64,
	  cmd_timeline },
	{ "help", "", "this text", 0, 0, cmd_help },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
	char def[108];
	if (vfpm_default_socket_path(def, sizeof(def)) < 0)
		snprintf(def, sizeof(def), "(none: path too long)");
	fprintf(out,
		"Usage: " PROG " [--socket PATH] [--ctl PATH] COMMAND [ARGS]\n"
		"\n"
		"Options:\n"
		"  --socket PATH  device socket (default: $VFPM_SOCKET, /run/vfpm/demo.sock as\n"
		"                 root, $XDG_RUNTIME_DIR/vfpm/demo.sock, /tmp/vfpm-$UID/demo.sock;\n"
		"                 here %s)\n"
		"  --ctl PATH     vfpmd's control socket, for status, set, events, metrics,\n"
		"                 timeline and inject-intx\n"
		"                 (default: vfpmd.ctl beside the default device socket)\n"
		"  -h, --help     this text\n"
		"\n"
		"Commands:\n",
		def);
	/* help texts aligned after the synopses that fit; a longer synopsis
	 * gets a line of its own, its help text below it */
	enum { WIDTH = 34 };
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char syn[96];
		snprintf(syn, sizeof(syn), "%s %s", commands[i].name, commands[i].args);
		if (strlen(syn) <= WIDTH)
			fprintf(out, "  %-*s  %s\n", WIDTH, syn, commands[i].help);
		else
			fprintf(out, "  %s\n  %-*s  %s\n", syn, WIDTH, "", commands[i].help);
	}
	fprintf(out, "\nNumbers may be decimal, 0x hex or 0 octal. Exit status: 0 ok, 1 error, "
		     "2 bad usage.\n");
}

static int cmd_help(struct ctl *ctl, int argc, char **argv)
{
	usage(stdout);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct ctl ctl = { 0 };
	char defpath[108];
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return EXIT_OK;
		} else if (!strcmp(a, "--socket")) {
			if (++i >= argc)
				return usage_error("--socket needs a path");
			ctl.socket = argv[i];
		} else if (!strncmp(a, "--socket=", 9)) {
			ctl.socket = a + 9;
		} else if (!strcmp(a, "--ctl")) {
			if (++i >= argc)
				return usage_error("--ctl needs a path");
			ctl.ctl_path = argv[i];
		} else if (!strncmp(a, "--ctl=", 6)) {
			ctl.ctl_path = a + 6;
		} else if (!strcmp(a, "--")) {
			i++;
			break;
		} else {
			return usage_error("unknown option '%s'", a);
		}
	}
	if (i >= argc)
		return usage_error("no command");
	if (!ctl.socket) {
		int rc = vfpm_default_socket_path(defpath, sizeof(defpath));
		if (rc < 0)
			return fail(rc, "default socket path");
		ctl.socket = defpath;
	}
	if (!*ctl.socket)
		return usage_error("empty socket path");
	char defctl[300];
	if (!ctl.ctl_path) {
		int rc = ctlplane_default_path(defctl, sizeof(defctl));
		if (rc < 0)
			return fail(rc, "default control socket path");
		ctl.ctl_path = defctl;
	}

	const char *name = argv[i];
	const struct command *cmd = NULL;
	for (size_t k = 0; k < NCOMMANDS; k++)
		if (!strcmp(commands[k].name, name))
			cmd = &commands[k];
	if (!cmd)
		return usage_error("unknown command '%s'", name);
	int nargs = argc - i - 1;
	if (nargs < cmd->min_args || nargs > cmd->max_args)
		return usage_error("usage: %s %s", cmd->name, cmd->args);

	int ret = cmd->run(&ctl, nargs, argv + i + 1);
	vfpm_client_close(ctl.client);
	return ret;
}
