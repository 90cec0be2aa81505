/* REGION_READ round trip: vfpm against the transport floor.
 *
 * vfpm: a real vfpmd (the build's, or $VFPMD_PATH) serving the demo device
 * on a temporary socket; a negotiated raw connection reads the 4-byte
 * scratch register of BAR0 after COMMAND.MEM is set.
 *
 * floor: a forked responder on an AF_UNIX stream socketpair that receives
 * each request with the same wire_recv and answers with a reply of the
 * same size (header + 16-byte region access + 4 data bytes) with wire_send:
 * what any vfio-user server over this transport costs at the least.
 *
 * Both are driven by the same client code: per-request latency (min,
 * median, p99) with one request outstanding, and throughput with a window
 * of outstanding requests. The two servers are measured in alternating
 * rounds so that background load and scheduler placement affect both
 * alike. Nothing is pinned. Results are reported, never asserted.
 */
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "harness.h"
#include "procstat.h"
#include "wire/wire.h"

#define REG_SCRATCH 0x08
#define SCRATCH_VALUE 0x5ca1ab1eu
#define PCI_COMMAND_OFF 0x04
#define PCI_COMMAND_MEM 0x2

struct result {
	double min_us, median_us, p99_us, mps;
	double lat_cpu_us, pipe_cpu_us;   /* server CPU per request */
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static int send_read(int fd, uint16_t id, uint32_t region, uint64_t off, uint32_t count)
{
	struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_REGION_READ,
			     .flags = VFU_F_TYPE_COMMAND };
	struct vfu_region_access ra = { .offset = off, .region = region, .count = count };
	return wire_send(fd, &h, &ra, sizeof(ra), NULL, 0);
}

/* Receives the reply to request id and copies its data (count bytes). */
static int recv_read(int fd, uint16_t id, void *data, uint32_t count)
{
	struct wire_msg m;
	int rc = wire_recv(fd, &m, 1u << 16, 0);
	if (rc)
		return rc;
	if ((m.hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_REPLY || m.hdr.msg_id != id)
		rc = -EPROTO;
	else if (m.hdr.flags & VFU_F_ERROR)
		rc = m.hdr.error ? -(int)m.hdr.error : -EIO;
	else if (m.len != sizeof(struct vfu_region_access) + count)
		rc = -EPROTO;
	else if (data)
		memcpy(data, m.payload + sizeof(struct vfu_region_access), count);
	wire_msg_release(&m);
	return rc;
}

static int region_read(int fd, uint32_t region, uint64_t off, void *buf, uint32_t count)
{
	int rc = send_read(fd, 1, region, off, count);
	return rc ? rc : recv_read(fd, 1, buf, count);
}

static int region_write(int fd, uint32_t region, uint64_t off, const void *buf, uint32_t count)
{
	struct vfu_hdr h = { .msg_id = 2, .cmd = VFU_CMD_REGION_WRITE,
			     .flags = VFU_F_TYPE_COMMAND };
	struct vfu_region_access ra = { .offset = off, .region = region, .count = count };
	int rc = wire_send2(fd, &h, &ra, sizeof(ra), buf, count, NULL, 0);
	if (rc)
		return rc;
	struct wire_msg m;
	rc = wire_recv(fd, &m, 1u << 16, 0);
	if (rc)
		return rc;
	if (m.hdr.flags & VFU_F_ERROR)
		rc = m.hdr.error ? -(int)m.hdr.error : -EIO;
	wire_msg_release(&m);
	return rc;
}

/* COMMAND.MEM on, and a known value in the scratch register. */
static int prepare_device(int fd)
{
	uint16_t cmd;
	int rc = region_read(fd, VFU_PCI_CONFIG, PCI_COMMAND_OFF, &cmd, sizeof(cmd));
	if (rc)
		return rc;
	cmd |= PCI_COMMAND_MEM;
	rc = region_write(fd, VFU_PCI_CONFIG, PCI_COMMAND_OFF, &cmd, sizeof(cmd));
	if (rc)
		return rc;
	uint32_t v = SCRATCH_VALUE;
	rc = region_write(fd, VFU_PCI_BAR0, REG_SCRATCH, &v, sizeof(v));
	if (rc)
		return rc;
	v = 0;
	rc = region_read(fd, VFU_PCI_BAR0, REG_SCRATCH, &v, sizeof(v));
	if (!rc && v != SCRATCH_VALUE)
		rc = -EPROTO;
	return rc;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* One server under test: its connection and what was measured on it. */
struct target {
	const char *name;
	int fd;
	pid_t pid;           /* the serving process, for its CPU time */
	uint16_t next_id;
	uint64_t *samples;   /* per-request latency, ns */
	unsigned nsamples;
	uint64_t pipe_ns;    /* time spent in pipelined runs */
	unsigned pipe_n;     /* requests in them */
	uint64_t lat_cpu_ns; /* server CPU time over the latency runs */
	uint64_t pipe_cpu_ns;   /* and over the pipelined runs */
	const char *dev;     /* vfpmd's device name (session counters), or NULL */
	const char *ctl;     /* vfpmd's control socket */
	uint64_t pipe_reads, pipe_sends, pipe_msgs, pipe_polls;   /* session counters, pipelined */
	bool skip;           /* -T: not measured */
};

#define NTARGETS 3

static bool pipeline_only;   /* -T: the pipelined runs alone */

/* The session counters of a vfpmd device (status): receive calls, reply
 * sends, messages, poll() calls of the poll window. 0 or -1. */
static int session_counters(const struct target *t, uint64_t c[4])
{
	static char rep[65536];
	if (!t->dev || ctl_request(t->ctl, "{\"cmd\":\"status\"}", rep, sizeof(rep)))
		return -1;
	struct json_object *o = json_tokener_parse(rep), *devs, *v, *ss;
	int rc = -1;
	if (o && json_object_object_get_ex(o, "devices", &devs)) {
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *d = json_object_array_get_idx(devs, i);
			if (!json_object_object_get_ex(d, "name", &v) ||
			    strcmp(json_object_get_string(v), t->dev) ||
			    !json_object_object_get_ex(d, "session", &ss))
				continue;
			static const char *const keys[4] = { "reads", "sends", "messages",
							     "poll_calls" };
			rc = 0;
			for (int k = 0; k < 4; k++) {
				if (json_object_object_get_ex(ss, keys[k], &v))
					c[k] = (uint64_t)json_object_get_int64(v);
				else
					rc = -1;
			}
		}
	}
	json_object_put(o);
	return rc;
}
/* CPU time of every thread of the serving process (schedstat, ns). */
static uint64_t server_cpu_ns(const struct target *t)
{
	struct proc_sample ps;
	return sample_proc(t->pid, &ps) ? 0 : ps.run_ns;
}

/* One request outstanding at a time; record: keep the latencies. */
static int run_latency(struct target *t, unsigned n, bool record)
{
	for (unsigned i = 0; i < n; i++) {
		uint16_t id = t->next_id++;
		uint32_t v;
		uint64_t t0 = now_ns();
		int rc = send_read(t->fd, id, VFU_PCI_BAR0, REG_SCRATCH, 4);
		if (!rc)
			rc = recv_read(t->fd, id, &v, 4);
		uint64_t t1 = now_ns();
		if (!rc && v != SCRATCH_VALUE)
			rc = -EPROTO;
		if (rc)
			return rc;
		if (record)
			t->samples[t->nsamples++] = t1 - t0;
	}
	return 0;
}

/* Keeps window requests in flight (replies come back in order). */
static int run_pipeline(struct target *t, unsigned n, unsigned window, bool record)
{
	unsigned sent = 0, done = 0;
	uint16_t base = t->next_id;
	uint64_t t0 = now_ns();
	while (done < n) {
		while (sent < n && sent - done < window) {
			int rc = send_read(t->fd, (uint16_t)(base + sent), VFU_PCI_BAR0, REG_SCRATCH,
					   4);
			if (rc)
				return rc;
			sent++;
		}
		int rc = recv_read(t->fd, (uint16_t)(base + done), NULL, 4);
		if (rc)
			return rc;
		done++;
	}
	uint64_t t1 = now_ns();
	t->next_id = (uint16_t)(base + n);
	if (record) {
		t->pipe_ns += t1 - t0;
		t->pipe_n += n;
	}
	return 0;
}

static void summarize(struct target *t, struct result *r)
{
	r->lat_cpu_us = (double)t->lat_cpu_ns / 1000.0 / (double)t->nsamples;
	r->pipe_cpu_us = (double)t->pipe_cpu_ns / 1000.0 / (double)t->pipe_n;
	qsort(t->samples, t->nsamples, sizeof(t->samples[0]), cmp_u64);
	r->min_us = (double)t->samples[0] / 1000.0;
	r->median_us = (double)t->samples[t->nsamples / 2] / 1000.0;
	r->p99_us = (double)t->samples[(size_t)((double)(t->nsamples - 1) * 0.99)] / 1000.0;
	r->mps = (double)t->pipe_n * 1e9 / (double)t->pipe_ns;
}

/* The servers are measured in alternating rounds (the order rotating each
 * round), so that whatever else the machine does affects all alike. */
static int measure(struct target *tg, unsigned n, unsigned warm, unsigned window,
		   unsigned rounds)
{
	int rc = 0;
	for (int k = 0; k < NTARGETS && !rc; k++) {
		if (tg[k].skip)
			continue;
		rc = pipeline_only ? 0 : run_latency(&tg[k], warm, false);
		if (!rc)
			rc = run_pipeline(&tg[k], warm, window, false);
	}
	for (unsigned r = 0; r < rounds && !rc; r++) {
		unsigned chunk = n / rounds + (r < n % rounds);
		for (int j = 0; j < NTARGETS && !rc; j++) {
			struct target *t = &tg[(r + (unsigned)j) % NTARGETS];
			if (t->skip)
				continue;
			uint64_t c0 = server_cpu_ns(t);
			rc = pipeline_only ? 0 : run_latency(t, chunk, true);
			uint64_t k0[4] = { 0 }, k1[4] = { 0 };
			bool counted = session_counters(t, k0) == 0;
			uint64_t c1 = server_cpu_ns(t);
			if (!rc)
				rc = run_pipeline(t, chunk, window, true);
			uint64_t c2 = server_cpu_ns(t);
			if (counted && session_counters(t, k1) == 0) {
				t->pipe_reads += k1[0] - k0[0];
				t->pipe_sends += k1[1] - k0[1];
				t->pipe_msgs += k1[2] - k0[2];
				t->pipe_polls += k1[3] - k0[3];
			}
			t->lat_cpu_ns += c1 - c0;
			t->pipe_cpu_ns += c2 - c1;
			if (rc)
				fprintf(stderr, "bench_rtt: %s: %s\n", t->name, strerror(-rc));
		}
	}
	return rc;
}

/* The floor: answers every message with a header + 16 + 4 byte reply. */
static void responder(int fd)
{
	uint32_t value = SCRATCH_VALUE;
	for (;;) {
		struct wire_msg m;
		if (wire_recv(fd, &m, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS))
			break;
		struct vfu_hdr h = { .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd,
				     .flags = VFU_F_TYPE_REPLY };
		struct vfu_region_access ra = { 0 };
		if (m.len >= sizeof(ra))
			memcpy(&ra, m.payload, sizeof(ra));
		wire_msg_release(&m);
		if (wire_send2(fd, &h, &ra, sizeof(ra), &value, sizeof(value), NULL, 0))
			break;
	}
	_exit(0);
}

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [-n ITERATIONS] [-w WINDOW] [-W WARMUP] [-r ROUNDS] [-p POLL_US]\n"
		"  -n  measured requests per measurement (default 200000)\n"
		"  -w  requests in flight for the throughput run (default 32)\n"
		"  -W  warm-up requests before measuring (default n/10, max 20000)\n"
		"  -r  rounds alternating the servers (default 10)\n"
		"  -p  poll_us of the polling vfpm device (default 50)\n"
		"  -s  split: servers on CPU 1, this client on CPU 0 (default: not pinned)\n"
		"  -T  one server only (poll, nopoll or floor), pipelined runs only\n"
		"      (for bench/syscalls.sh)\n"
		"  -P  print \"server_pid=N\" once set up, then wait for a line on stdin\n"
		"vfpmd is the build's, or $VFPMD_PATH.\n",
		argv0);
}

static unsigned parse_count(const char *s, const char *what)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || !*s || v > 100000000ul) {
		fprintf(stderr, "bench_rtt: bad %s '%s'\n", what, s);
		exit(2);
	}
	return (unsigned)v;
}

static void print_row(const char *name, const struct result *r)
{
	printf("%-24s %9.2f %12.2f %10.2f %12.0f %12.2f %12.2f\n", name, r->min_us, r->median_us,
	       r->p99_us, r->mps, r->lat_cpu_us, r->pipe_cpu_us);
}

static void print_ratio(const char *name, const struct result *a, const struct result *b)
{
	printf("%-24s %9.2f %12.3f %10.2f %12.2f %12.2f %12.2f\n", name, a->min_us / b->min_us,
	       a->median_us / b->median_us, a->p99_us / b->p99_us, a->mps / b->mps,
	       a->lat_cpu_us / b->lat_cpu_us, a->pipe_cpu_us / b->pipe_cpu_us);
}

int main(int argc, char **argv)
{
	unsigned n = 200000, window = 32, warm = ~0u, rounds = 10, poll_us = 50;
	int opt;
	bool split = false, pause_for_stdin = false;
	const char *only = NULL;
	while ((opt = getopt(argc, argv, "n:w:W:r:p:sT:Ph")) != -1) {
		switch (opt) {
		case 'n': n = parse_count(optarg, "-n"); break;
		case 'w': window = parse_count(optarg, "-w"); break;
		case 'W': warm = parse_count(optarg, "-W"); break;
		case 'r': rounds = parse_count(optarg, "-r"); break;
		case 'p': poll_us = parse_count(optarg, "-p"); break;
		case 's': split = true; break;
		case 'T': only = optarg; pipeline_only = true; break;
		case 'P': pause_for_stdin = true; break;
		case 'h': usage(stdout, argv[0]); return 0;
		default: usage(stderr, argv[0]); return 2;
		}
	}
	if (!n || !window || !rounds || rounds > n || !poll_us || poll_us > 1000000) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (only && strcmp(only, "poll") && strcmp(only, "nopoll") && strcmp(only, "floor")) {
		usage(stderr, argv[0]);
		return 2;
	}
	if (warm == ~0u)
		warm = n / 10 < 20000 ? n / 10 : 20000;
	signal(SIGPIPE, SIG_IGN);

	/* 0: vfpm polling, 1: vfpm blocking (poll_us=0), 2: the floor */
	struct target tg[NTARGETS] = { { .name = "vfpm-poll", .fd = -1 },
				       { .name = "vfpm", .fd = -1 },
				       { .name = "floor", .fd = -1 } };
	for (int k = 0; k < NTARGETS; k++) {
		tg[k].samples = calloc(n, sizeof(uint64_t));
		if (!tg[k].samples) {
			fprintf(stderr, "bench_rtt: out of memory\n");
			return 1;
		}
	}

	/* -s: the servers inherit CPU 1, the client moves to CPU 0 after */
	cpu_set_t cpus;
	if (split) {
		CPU_ZERO(&cpus);
		CPU_SET(1, &cpus);
		if (sched_setaffinity(0, sizeof(cpus), &cpus)) {
			perror("bench_rtt: sched_setaffinity");
			return 1;
		}
	}
	/* the floor, forked first so that it does not inherit vfpmd's socket */
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("bench_rtt: socketpair");
		return 1;
	}
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		perror("bench_rtt: fork");
		return 1;
	}
	if (pid == 0) {
		close(sv[0]);
		responder(sv[1]);
	}
	close(sv[1]);
	tg[2].fd = sv[0];
	tg[2].pid = pid;

	/* vfpm: two demo devices in one vfpmd, one polling */
	struct vfpmd_proc proc;
	char pollspec[64];
	snprintf(pollspec, sizeof(pollspec), "demo,name=poll,poll_us=%u", poll_us);
	const char *const specs[] = { pollspec, "demo,name=block,poll_us=0", NULL };
	int rc = vfpmd_start(&proc, specs, NULL);
	if (rc) {
		fprintf(stderr, "bench_rtt: cannot start %s: %s\n", vfpmd_path(), strerror(-rc));
		vfpmd_cleanup(&proc);   /* its log and directory, if still there */
	} else {
		if (split) {
			CPU_ZERO(&cpus);
			CPU_SET(0, &cpus);
			rc = sched_setaffinity(0, sizeof(cpus), &cpus) ? -errno : 0;
		}
		for (int k = 0; k < 2 && !rc; k++) {
			tg[k].pid = proc.pid;
			tg[k].dev = k ? "block" : "poll";
			tg[k].ctl = proc.ctl;
			/* the harness's readiness probe may still hold the one client slot */
			for (int t = 0; t < 100 && tg[k].fd < 0; t++) {
				tg[k].fd = raw_connect_negotiated(proc.sock[k]);
				if (tg[k].fd < 0)
					usleep(10000);
			}
			rc = tg[k].fd < 0 ? tg[k].fd : prepare_device(tg[k].fd);
			if (rc)
				fprintf(stderr, "bench_rtt: vfpmd connection: %s\n", strerror(-rc));
		}
		if (only) {
			static const char *const names[NTARGETS] = { "poll", "nopoll", "floor" };
			for (int k = 0; k < NTARGETS; k++)
				tg[k].skip = strcmp(only, names[k]) != 0;
		}
		if (!rc && pause_for_stdin) {
			for (int k = 0; k < NTARGETS; k++)
				if (!tg[k].skip)
					printf("server_pid=%d\n", (int)tg[k].pid);
			fflush(stdout);
			char line[16];
			if (!fgets(line, sizeof(line), stdin))
				rc = -EIO;
		}
		if (!rc)
			rc = measure(tg, n, warm, window, rounds);
		for (int k = 0; k < 2; k++)
			if (tg[k].fd >= 0)
				close(tg[k].fd);
		int st = vfpmd_stop(&proc);
		if (st)
			fprintf(stderr, "bench_rtt: warning: vfpmd did not exit cleanly (%d)\n", st);
	}
	close(tg[2].fd);
	waitpid(pid, NULL, 0);
	if (rc) {
		for (int k = 0; k < NTARGETS; k++)
			free(tg[k].samples);
		return 1;
	}

	if (only) {
		for (int k = 0; k < NTARGETS; k++) {
			if (tg[k].skip)
				continue;
			printf("rtt-only: target=%s requests=%u mps=%.0f\n", only, tg[k].pipe_n,
			       (double)tg[k].pipe_n * 1e9 / (double)tg[k].pipe_ns);
		}
		for (int k = 0; k < NTARGETS; k++)
			free(tg[k].samples);
		return 0;
	}
	struct result res[NTARGETS];
	for (int k = 0; k < NTARGETS; k++) {
		summarize(&tg[k], &res[k]);
		free(tg[k].samples);
	}

	printf("REGION_READ round trip: 4-byte BAR0 read; %u requests per measurement (+%u "
	       "warm-up),\n%u rotating rounds; throughput with %u requests in flight; server CPU "
	       "is\nthe serving process's schedstat time per request\n\n",
	       n, warm, rounds, window);
	printf("%-24s %9s %12s %10s %12s %12s %12s\n", "", "min (us)", "median (us)", "p99 (us)",
	       "msgs/s", "cpu/req lat", "cpu/req pipe");
	char name[48];
	snprintf(name, sizeof(name), "vfpm, poll_us=%u", poll_us);
	print_row(name, &res[0]);
	print_row("vfpm, poll_us=0", &res[1]);
	print_row("floor (blocking)", &res[2]);
	print_ratio("ratio poll/floor", &res[0], &res[2]);
	print_ratio("ratio nopoll/floor", &res[1], &res[2]);
	printf("\n(latency and CPU ratio > 1: vfpm slower or costlier; throughput ratio < 1: "
	       "vfpm slower)\n");
	for (int k = 0; k < 2; k++)
		if (tg[k].pipe_msgs)
			printf("%s pipelined, per request: recvmsg %.3f, sendmsg %.3f, poll %.3f "
			       "(session counters; the floor: 2 + 1 + 0)\n",
			       k ? "vfpm, poll_us=0 " : "vfpm, polling  ",
			       (double)tg[k].pipe_reads / (double)tg[k].pipe_msgs,
			       (double)tg[k].pipe_sends / (double)tg[k].pipe_msgs,
			       (double)tg[k].pipe_polls / (double)tg[k].pipe_msgs);
	printf("rtt: poll_us=%u window=%u poll_median_us=%.2f nopoll_median_us=%.2f "
	       "floor_median_us=%.2f poll_ratio=%.3f nopoll_ratio=%.3f poll_cpu_us=%.2f "
	       "nopoll_cpu_us=%.2f floor_cpu_us=%.2f poll_mps=%.0f nopoll_mps=%.0f floor_mps=%.0f "
	       "mps_ratio=%.3f pipe_cpu_ratio=%.3f nopoll_mps_ratio=%.3f nopoll_pipe_cpu_ratio=%.3f\n",
	       poll_us, window, res[0].median_us, res[1].median_us, res[2].median_us,
	       res[0].median_us / res[2].median_us, res[1].median_us / res[2].median_us,
	       res[0].lat_cpu_us, res[1].lat_cpu_us, res[2].lat_cpu_us, res[0].mps, res[1].mps,
	       res[2].mps, res[0].mps / res[2].mps, res[0].pipe_cpu_us / res[2].pipe_cpu_us,
	       res[1].mps / res[2].mps, res[1].pipe_cpu_us / res[2].pipe_cpu_us);
	return 0;
}
