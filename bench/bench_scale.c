/* Many idle devices in one vfpmd: what each costs, and where it stops.
 *
 * Starts the build's vfpmd (or $VFPMD_PATH) with N devices from a config
 * file (device MODEL,name=dI,socket=DIR/dI.sock[,KEYS]), and reports:
 *  - start: from the spawn until the last device's socket accepts a
 *    connection, then until every device is suspended (status);
 *  - threads, RSS (VmRSS) and descriptors of vfpmd, and per device the
 *    difference to a vfpmd with one device, measured the same way first;
 *  - idle: CPU time and context switches of all of vfpmd's threads over
 *    S seconds with nothing talking to it.
 * If vfpmd exits during the start, its exit status and the last line it
 * printed are reported (the limit it hit). Nothing is asserted.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "procstat.h"

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct run {
	unsigned n;
	double listen_s, suspended_s;   /* < 0: not reached */
	unsigned threads, fds;
	long rss_kb;
	int exit_status;                /* vfpmd exited during the start: its status, else -1 */
	char last_line[1024];   /* the last two lines vfpmd printed */
	struct proc_sample idle0, idle1;
	double idle_s;
	/* -c: with a quiet client connected to every device */
	int clients;                    /* connected, or -errno of the first failure */
	unsigned c_threads, c_sessions;
	struct proc_sample c0, c1;
	double c_s;
};

static long vm_rss_kb(pid_t pid)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static bool can_connect(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Devices in status, and how many are suspended; -1 on error. */
static int count_suspended(const char *ctl, unsigned *total)
{
	int fd = raw_connect(ctl);
	if (fd < 0)
		return -1;
	static const char req[] = "{\"cmd\":\"status\"}\n";
	if (write(fd, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
		close(fd);
		return -1;
	}
	size_t cap = 1 << 20, len = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (len + 1 >= cap) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
		ssize_t r = read(fd, buf + len, cap - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		if (buf[len - 1] == '\n')
			break;
	}
	close(fd);
	buf[len] = '\0';
	struct json_object *o = json_tokener_parse(buf), *devs, *v;
	free(buf);
	int n = -1;
	if (o && json_object_object_get_ex(o, "devices", &devs)) {
		n = 0;
		*total = (unsigned)json_object_array_length(devs);
		for (size_t i = 0; i < *total; i++) {
			struct json_object *d = json_object_array_get_idx(devs, i);
			if (json_object_object_get_ex(d, "runtime_status", &v) &&
			    !strcmp(json_object_get_string(v), "suspended"))
				n++;
		}
	}
	json_object_put(o);
	return n;
}

/* where the run's directory (sockets, config, log) is made: -d, else
 * $TMPDIR, else /tmp. Binding N sockets creates N inodes there: on a disk
 * file system that is most of the start (ext4's inode allocation), on
 * tmpfs (/run, where vfpmd's sockets live as root) it is not. */
static const char *g_base = "/tmp";
static const char *g_model_so;   /* -M: a model loaded from this file */
static bool g_clients;           /* -c: then a quiet client on every device */

/* A client (VERSION done) on every device, quiet for longer than
 * vfpmd's --session-idle-ms (1 s); then its threads, and CPU and context
 * switches over idle_s. The clients hang up before the return. */
static void quiet_clients(pid_t pid, const char *dir, unsigned n, unsigned idle_s, struct run *r)
{
	int *fds = calloc(n, sizeof(int));
	if (!fds) {
		r->clients = -ENOMEM;
		return;
	}
	unsigned c = 0;
	for (; c < n; c++) {
		char p[160];
		snprintf(p, sizeof(p), "%s/d%u.sock", dir, c);
		if ((fds[c] = raw_connect_negotiated(p)) < 0) {
			r->clients = fds[c];
			break;
		}
	}
	if (c == n)
		r->clients = (int)n;
	sleep(2);
	struct proc_sample ps;
	if (sample_proc(pid, &ps) == 0)
		r->c_threads = ps.threads;
	int ns = proc_threads_named(pid, "vfpm-session", NULL);
	r->c_sessions = ns > 0 ? (unsigned)ns : 0;
	sample_proc(pid, &r->c0);
	double a = now_s();
	sleep(idle_s ? idle_s : 1);
	sample_proc(pid, &r->c1);
	r->c_s = now_s() - a;
	for (unsigned i = 0; i < c; i++)
		close(fds[i]);
	free(fds);
}

static int run_one(unsigned n, const char *model, const char *keys, unsigned idle_s,
		   struct run *r)
{
	memset(r, 0, sizeof(*r));
	r->n = n;
	r->listen_s = r->suspended_s = -1;
	r->exit_status = -1;
	char dir[96];
	if (snprintf(dir, sizeof(dir), "%s/vfpm-scale-XXXXXX", g_base) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	if (!mkdtemp(dir))
		return -errno;
	char conf[128], log[128], ctl[128], last[160];
	snprintf(conf, sizeof(conf), "%s/devices.conf", dir);
	snprintf(log, sizeof(log), "%s/vfpmd.log", dir);
	snprintf(ctl, sizeof(ctl), "%s/ctl.sock", dir);
	snprintf(last, sizeof(last), "%s/d%u.sock", dir, n - 1);
	FILE *f = fopen(conf, "w");
	if (!f)
		return -errno;
	if (g_model_so)
		fprintf(f, "model %s\n", g_model_so);
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "device %s,name=d%u,socket=%s/d%u.sock%s%s\n", model, i, dir, i,
			*keys ? "," : "", keys);
	fclose(f);

	double t0 = now_s();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (lfd >= 0)
			dup2(lfd, 2);
		execl(vfpmd_path(), vfpmd_path(), "-q", "--ctl", ctl, "--config", conf, (char *)NULL);
		_exit(127);
	}
	int st;
	bool exited = false;
	while (!exited) {
		if (waitpid(pid, &st, WNOHANG) == pid) {
			exited = true;
			break;
		}
		if (can_connect(last)) {
			r->listen_s = now_s() - t0;
			break;
		}
		if (now_s() - t0 > 120)
			break;
		usleep(2000);
	}
	if (!exited && r->listen_s >= 0) {
		for (;;) {
			unsigned total = 0;
			int s = count_suspended(ctl, &total);
			if (s >= 0 && (unsigned)s == n) {
				r->suspended_s = now_s() - t0;
				break;
			}
			if (now_s() - t0 > 300 || waitpid(pid, &st, WNOHANG) == pid)
				break;
			usleep(20000);
		}
		/* settled: the demo's workers end 1 s after a suspend, the
		 * status requests' control threads after their replies */
		if (r->suspended_s >= 0)
			sleep(2);
		struct proc_sample ps;
		if (sample_proc(pid, &ps) == 0) {
			r->threads = ps.threads;
			r->fds = ps.fds;
		}
		r->rss_kb = vm_rss_kb(pid);
		if (idle_s && r->suspended_s >= 0) {
			sample_proc(pid, &r->idle0);
			double a = now_s();
			sleep(idle_s);
			sample_proc(pid, &r->idle1);
			r->idle_s = now_s() - a;
		}
		if (g_clients && n > 1 && r->suspended_s >= 0)
			quiet_clients(pid, dir, n, idle_s, r);
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
	} else if (!exited) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	} else {
		r->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	/* the last two lines vfpmd printed */
	f = fopen(log, "r");
	char line[2][480] = { "", "" };
	unsigned nl = 0;
	while (f && fgets(line[nl % 2], sizeof(line[0]), f)) {
		line[nl % 2][strcspn(line[nl % 2], "\n")] = '\0';
		nl++;
	}
	if (nl >= 2)
		snprintf(r->last_line, sizeof(r->last_line), "%s | %s", line[nl % 2], line[(nl + 1) % 2]);
	else if (nl == 1)
		snprintf(r->last_line, sizeof(r->last_line), "%s", line[0]);
	if (f)
		fclose(f);
	for (unsigned i = 0; i < n; i++) {
		char p[160];
		snprintf(p, sizeof(p), "%s/d%u.sock", dir, i);
		unlink(p);
	}
	unlink(conf);
	unlink(log);
	unlink(ctl);
	rmdir(dir);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned n = 1000, idle = 10;
	const char *model = "demo", *keys = "pm_delays=none";
	int opt;
	const char *tmp = getenv("TMPDIR");
	if (tmp && *tmp)
		g_base = tmp;
	while ((opt = getopt(argc, argv, "n:s:m:M:k:d:ch")) != -1) {
		switch (opt) {
		case 'n': n = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': idle = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'm': model = optarg; break;
		case 'k': keys = optarg; break;
		case 'd': g_base = optarg; break;
		case 'M': g_model_so = optarg; break;
		case 'c': g_clients = true; break;
		default:
			fprintf(opt == 'h' ? stdout : stderr,
				"usage: %s [-n DEVICES] [-s IDLE_SECONDS] [-m MODEL [-M PATH.so]] [-k KEYS] [-d DIR] [-c]\n"
				"  N devices of MODEL (default 1000 demo) with KEYS (default\n"
				"  pm_delays=none) in one vfpmd; idle sampled for S s (default 10);\n"
				"  sockets in a new directory under DIR (default $TMPDIR or /tmp);\n"
				"  -M: MODEL is loaded from PATH.so (vfpmd --model);\n"
				"  -c: then a quiet client on every device (threads, idle cost)\n",
				argv[0]);
			return opt == 'h' ? 0 : 2;
		}
	}
	if (!n || n > 1000000)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	struct run one, many;
	if (run_one(1, model, keys, 0, &one) || run_one(n, model, keys, idle, &many)) {
		perror("bench_scale");
		return 1;
	}
	printf("%u %s devices (%s) in one vfpmd\n\n", n, model, keys);
	if (many.exit_status >= 0) {
		printf("vfpmd exited during the start with status %d; its last lines: %s\n",
		       many.exit_status, many.last_line[0] ? many.last_line : "(nothing)");
		printf("scale: devices=%u failed=1 exit_status=%d\n", n, many.exit_status);
		return 0;
	}
	if (many.listen_s < 0) {
		printf("vfpmd did not listen on the last socket within 120 s\n");
		return 1;
	}
	double per_dev_kb = (double)(many.rss_kb - one.rss_kb) / (double)(n > 1 ? n - 1 : 1);
	printf("start: all sockets listening after %.3f s; all suspended after %.3f s\n",
	       many.listen_s, many.suspended_s);
	printf("threads: %u (1 device: %u); descriptors: %u (1 device: %u)\n", many.threads,
	       one.threads, many.fds, one.fds);
	printf("RSS: %ld KiB (1 device: %ld KiB): %.1f KiB per device\n", many.rss_kb, one.rss_kb,
	       per_dev_kb);
	uint64_t cpu_ns = many.idle1.run_ns - many.idle0.run_ns;
	uint64_t sw = (many.idle1.vol + many.idle1.invol) - (many.idle0.vol + many.idle0.invol);
	if (many.idle_s > 0)
		printf("idle %.1f s: %.3f ms of CPU, %llu context switches\n", many.idle_s,
		       (double)cpu_ns / 1e6, (unsigned long long)sw);
	if (g_clients && many.clients < 0)
		printf("quiet clients: connecting failed: %s\n", strerror(-many.clients));
	if (g_clients && many.clients > 0) {
		uint64_t c_ns = many.c1.run_ns - many.c0.run_ns;
		uint64_t c_sw = (many.c1.vol + many.c1.invol) - (many.c0.vol + many.c0.invol);
		printf("with %d quiet clients: threads %u, of them session threads %u; "
		       "%.1f s: %.3f ms of CPU, %llu context switches\n",
		       many.clients, many.c_threads, many.c_sessions, many.c_s, (double)c_ns / 1e6,
		       (unsigned long long)c_sw);
		printf("clients: n=%d threads=%u session_threads=%u cpu_ms=%.3f ctxsw=%llu\n",
		       many.clients, many.c_threads, many.c_sessions, (double)c_ns / 1e6,
		       (unsigned long long)c_sw);
	}
	printf("scale: devices=%u failed=0 listen_s=%.3f suspended_s=%.3f threads=%u "
	       "threads_1=%u rss_kb=%ld rss_per_device_kb=%.1f idle_cpu_ms=%.3f idle_ctxsw=%llu\n",
	       n, many.listen_s, many.suspended_s, many.threads, one.threads, many.rss_kb,
	       per_dev_kb, (double)cpu_ns / 1e6, (unsigned long long)sw);
	return 0;
}
