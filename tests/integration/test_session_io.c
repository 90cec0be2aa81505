/* The session's receive side against a real vfpmd: the poll window
 * (poll_us), its option and its counters in status, and an idle device
 * whose session went back to sleep. Nothing here is timed: every check
 * is a value (a counter, a thread state, an exit status). */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "harness.h"
#include "wire/wire.h"

static struct vfpmd_proc proc;

/* --- helpers --- */

/* The device's object in a status reply (o owns it). */
static struct json_object *dev_status(struct json_object **o, const char *name)
{
	static char rep[65536];
	assert_int_equal(ctl_request(proc.ctl, "{\"cmd\":\"status\"}", rep, sizeof(rep)), 0);
	*o = json_tokener_parse(rep);
	assert_non_null(*o);
	struct json_object *devs, *v;
	assert_true(json_object_object_get_ex(*o, "devices", &devs));
	for (size_t i = 0; i < json_object_array_length(devs); i++) {
		struct json_object *d = json_object_array_get_idx(devs, i);
		assert_true(json_object_object_get_ex(d, "name", &v));
		if (!strcmp(json_object_get_string(v), name))
			return d;
	}
	fail_msg("no device %s in status", name);
	return NULL;
}

struct sess {
	int64_t poll_us, messages, polled, blocking_reads, reads, sends, dma_mapped;
	char runtime_status[32];
};

static void sess_status(const char *name, struct sess *s)
{
	struct json_object *o, *ss, *v;
	struct json_object *d = dev_status(&o, name);
	assert_true(json_object_object_get_ex(d, "session", &ss));
	assert_true(json_object_object_get_ex(ss, "poll_us", &v));
	s->poll_us = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(ss, "messages", &v));
	s->messages = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(ss, "polled", &v));
	s->polled = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(ss, "blocking_reads", &v));
	s->blocking_reads = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(ss, "reads", &v));
	s->reads = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(ss, "sends", &v));
	s->sends = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(d, "dma_mapped", &v));
	s->dma_mapped = json_object_get_int64(v);
	assert_true(json_object_object_get_ex(d, "runtime_status", &v));
	snprintf(s->runtime_status, sizeof(s->runtime_status), "%s", json_object_get_string(v));
	json_object_put(o);
}

static int64_t poll_us_of(const char *name)
{
	struct sess s;
	sess_status(name, &s);
	return s.poll_us;
}

/* A 4-byte config read (the vendor ID) with message id id. */
static void send_cfg_read(int fd, uint16_t id)
{
	struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_REGION_READ, .flags = VFU_F_TYPE_COMMAND };
	struct vfu_region_access ra = { .offset = 0, .region = VFU_PCI_CONFIG, .count = 4 };
	assert_int_equal(wire_send(fd, &h, &ra, sizeof(ra), NULL, 0), 0);
}

static void recv_reply(int fd, uint16_t id, uint16_t cmd)
{
	struct wire_msg m;
	assert_int_equal(wire_recv(fd, &m, 1 << 16, 0), 0);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.cmd, cmd);
	assert_int_equal(m.hdr.flags & (VFU_F_TYPE_MASK | VFU_F_ERROR), VFU_F_TYPE_REPLY);
	wire_msg_release(&m);
}

static void low_power_entry(int fd, uint16_t id)
{
	struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_DEVICE_FEATURE,
			     .flags = VFU_F_TYPE_COMMAND };
	struct vfu_device_feature f = { .argsz = sizeof(f),
					.flags = VFIO_DEVICE_FEATURE_SET |
						 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY };
	assert_int_equal(wire_send(fd, &h, &f, sizeof(f), NULL, 0), 0);
	recv_reply(fd, id, VFU_CMD_DEVICE_FEATURE);
}

/* The vfpm-session threads of vfpmd: how many, and the tid of one. */
static int session_tids(pid_t pid, int *tid_out);

/* The vfpm-session thread of vfpmd (our one client's): its tid. A session
 * thread of vfpmd_start's readiness probe (it connects and closes) may
 * still be on its way out: wait (bounded) until only ours is left. */
static int session_tid(pid_t pid)
{
	int tid = -1;
	for (int i = 0; i < 10000; i++) {
		if (session_tids(pid, &tid) == 1)
			return tid;
		usleep(500);
	}
	/* what each of vfpmd's threads is, and where it waits */
	char cmd[200];
	snprintf(cmd, sizeof(cmd),
		 "for t in /proc/%d/task/*; do echo $t $(cat $t/comm) $(cat $t/wchan); done >&2",
		 (int)pid);
	int shown = system(cmd);
	(void)shown;
	fail_msg("vfpmd never had exactly one session thread");
	return -1;
}

static int session_tids(pid_t pid, int *tid_out)
{
	pid_t tid = -1;
	int n = proc_threads_named(pid, "vfpm-session", &tid);
	assert_true(n >= 0);
	*tid_out = tid;
	return n;
}

/* A thread's scheduler state letter and its context switches. */
static char thread_state(pid_t pid, int tid, long long *switches)
{
	char path[128], buf[1024];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, tid);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	assert_non_null(p);
	char st = p[2];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, tid);
	f = fopen(path, "r");
	assert_non_null(f);
	*switches = 0;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		long long v;
		if (sscanf(line, "voluntary_ctxt_switches: %lld", &v) == 1 ||
		    sscanf(line, "nonvoluntary_ctxt_switches: %lld", &v) == 1)
			*switches += v;
	}
	fclose(f);
	return st;
}

/* Runs vfpmd with args and returns its exit status; its stderr in err.
 * nofile > 0: its descriptor limit (soft and hard). */
static int run_vfpmd_limited(const char *const *args, char *err, size_t len, long nofile)
{
	int pe[2];
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	const char *argv[16];
	int argc = 0;
	argv[argc++] = vfpmd_path();
	for (int i = 0; args[i] && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(pe[1], 2);
		struct rlimit rl = { (rlim_t)nofile, (rlim_t)nofile };
		if (nofile > 0 && setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(126);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pe[1]);
	size_t got = 0;
	ssize_t n;
	while ((n = read(pe[0], err + got, len - 1 - got)) > 0)
		got += (size_t)n;
	err[got] = '\0';
	close(pe[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int run_vfpmd(const char *const *args, char *err, size_t len)
{
	return run_vfpmd_limited(args, err, len, 0);
}

/* --- tests --- */

static void poll_us_option_errors(void **state)
{
	(void)state;
	char err[8192], spec[300];
	char dir[64];
	assert_int_equal(harness_tmpdir(dir, sizeof(dir), "sessio"), 0);
	static const char *const bad[] = { "-1", "abc", "1000001", "", "5x" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(spec, sizeof(spec), "demo,socket=%s/x.sock,poll_us=%s", dir, bad[i]);
		const char *const args[] = { "--ctl", "none", "--device", spec, NULL };
		int st = run_vfpmd(args, err, sizeof(err));
		if (st != 1 || (*bad[i] && !strstr(err, "poll_us must be a number of microseconds")))
			fail_msg("poll_us=%s: exit %d, stderr: %s", bad[i], st, err);
	}
	static const char *const badopt[] = { "-1", "abc", "1000001", "" };
	for (size_t i = 0; i < sizeof(badopt) / sizeof(badopt[0]); i++) {
		snprintf(spec, sizeof(spec), "demo,socket=%s/x.sock", dir);
		const char *const args[] = { "--ctl", "none", "--poll-us", badopt[i], "--device", spec,
					     NULL };
		int st = run_vfpmd(args, err, sizeof(err));
		if (st != 2 || !strstr(err, "--poll-us"))
			fail_msg("--poll-us %s: exit %d, stderr: %s", badopt[i], st, err);
	}
	/* given twice: an error like any key */
	snprintf(spec, sizeof(spec), "demo,socket=%s/x.sock,poll_us=1,poll_us=2", dir);
	const char *const args[] = { "--ctl", "none", "--device", spec, NULL };
	assert_int_equal(run_vfpmd(args, err, sizeof(err)), 1);
	assert_non_null(strstr(err, "given twice"));
	rmdir(dir);
}

/* Past the descriptor limit vfpmd says which limit it ran into, with its
 * value (with 1100 devices it used to exit with status 1 and print
 * nothing; the device table has no fixed size any more). */
static void descriptor_limit_is_named(void **state)
{
	(void)state;
	char dir[64];
	assert_int_equal(harness_tmpdir(dir, sizeof(dir), "sessio"), 0);
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/devices.conf", dir);
	FILE *f = fopen(conf, "w");
	assert_non_null(f);
	for (int i = 0; i < 40; i++)
		fprintf(f, "device demo,name=d%d,socket=%s/d%d.sock\n", i, dir, i);
	fclose(f);
	static char err[16384];
	const char *const args[] = { "--ctl", "none", "--config", conf, NULL };
	int st = run_vfpmd_limited(args, err, sizeof(err), 64);
	if (st != 1 || !strstr(err, "Too many open files (the descriptor limit RLIMIT_NOFILE, 64 here"))
		fail_msg("exit %d, stderr: %s", st, err);
	assert_non_null(strstr(err, "devices.conf:"));   /* and which line */
	for (int i = 0; i < 40; i++) {
		char p[96];
		snprintf(p, sizeof(p), "%s/d%d.sock", dir, i);
		unlink(p);
	}
	unlink(conf);
	rmdir(dir);
}

static void poll_us_values_in_status(void **state)
{
	(void)state;
	/* the built-in default, a device's own value, and the bounds */
	const char *specs[] = { "demo,name=dflt", "demo,name=own,poll_us=7",
				"demo,name=off,poll_us=0", "demo,name=max,poll_us=1000000", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	assert_int_equal(poll_us_of("dflt"), 50);
	assert_int_equal(poll_us_of("own"), 7);
	assert_int_equal(poll_us_of("off"), 0);
	assert_int_equal(poll_us_of("max"), 1000000);
	assert_int_equal(vfpmd_stop(&proc), 0);

	/* the server-wide default; a device's own value wins */
	const char *const extra[] = { "--poll-us", "123", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, extra), 0);
	assert_int_equal(poll_us_of("dflt"), 123);
	assert_int_equal(poll_us_of("own"), 7);
	assert_int_equal(poll_us_of("off"), 0);
	assert_int_equal(vfpmd_stop(&proc), 0);

	/* --poll-us 0: no polling unless a device asks */
	const char *const extra0[] = { "--poll-us", "0", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, extra0), 0);
	assert_int_equal(poll_us_of("dflt"), 0);
	assert_int_equal(poll_us_of("own"), 7);
	assert_int_equal(vfpmd_stop(&proc), 0);
}

static int connect_dev(unsigned k)
{
	int fd = raw_connect_negotiated(proc.sock[k]);
	for (int t = 0; fd < 0 && t < 500; t++) {   /* the harness's probe may hold the slot */
		usleep(10000);
		fd = raw_connect_negotiated(proc.sock[k]);
	}
	assert_true(fd >= 0);
	return fd;
}

/* Eight requests in one send are taken with one read and answered with
 * one send, with and without a poll window. Deterministic: they arrive
 * together, while the session has no request of its own to serve. */
static void burst_is_batched(void **state)
{
	(void)state;
	const char *specs[] = { "demo,name=p,poll_us=1000000", "demo,name=b,poll_us=0", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	for (unsigned k = 0; k < 2; k++) {
		const char *name = k ? "b" : "p";
		int fd = connect_dev(k);
		send_cfg_read(fd, 10);
		recv_reply(fd, 10, VFU_CMD_REGION_READ);
		struct sess a, b;
		sess_status(name, &a);
		uint8_t burst[8][16 + sizeof(struct vfu_region_access)];
		for (int i = 0; i < 8; i++) {
			struct vfu_hdr h = { .msg_id = (uint16_t)(20 + i), .cmd = VFU_CMD_REGION_READ,
					     .flags = VFU_F_TYPE_COMMAND,
					     .size = sizeof(burst[0]) };
			struct vfu_region_access ra = { .region = VFU_PCI_CONFIG, .count = 4 };
			memcpy(burst[i], &h, 16);
			memcpy(burst[i] + 16, &ra, sizeof(ra));
		}
		assert_int_equal(send(fd, burst, sizeof(burst), MSG_NOSIGNAL), (ssize_t)sizeof(burst));
		for (int i = 0; i < 8; i++)
			recv_reply(fd, (uint16_t)(20 + i), VFU_CMD_REGION_READ);
		sess_status(name, &b);
		assert_int_equal(b.messages - a.messages, 8);
		assert_int_equal(b.reads - a.reads, 1);
		assert_int_equal(b.sends - a.sends, 1);
		/* a batch whose last request wants no reply: the replies of
		 * the others still go out (together) */
		for (int i = 0; i < 3; i++) {
			struct vfu_hdr h;
			memcpy(&h, burst[i], 16);
			h.msg_id = (uint16_t)(40 + i);
			if (i == 2)
				h.flags |= VFU_F_NO_REPLY;
			memcpy(burst[i], &h, 16);
		}
		assert_int_equal(send(fd, burst, 3 * sizeof(burst[0]), MSG_NOSIGNAL),
				 (ssize_t)(3 * sizeof(burst[0])));
		recv_reply(fd, 40, VFU_CMD_REGION_READ);
		recv_reply(fd, 41, VFU_CMD_REGION_READ);
		struct sess c;
		sess_status(name, &c);
		assert_int_equal(c.messages - b.messages, 3);
		assert_int_equal(c.sends - b.sends, 1);
		if (!k) {
			/* read in the window, or after it in the kernel */
			assert_int_equal((b.polled - a.polled) + (b.blocking_reads - a.blocking_reads), 1);
		} else {
			assert_int_equal(b.polled, 0);
			assert_int_equal(b.blocking_reads - a.blocking_reads, 1);
		}
		close(fd);
	}
	assert_int_equal(vfpmd_stop(&proc), 0);
}

/* A request that arrives while the previous one is being served is read
 * in the poll window, without a blocking read; with poll_us=0 the same
 * read is a blocking one. Deterministic: the first request's reply (1 MiB
 * of BAR2) does not fit the socket, so the session is still sending it
 * when the second request is sent, and finishes only once the client
 * reads it. */
static void request_queued_while_serving_is_polled(void **state)
{
	(void)state;
	FILE *f = fopen("/proc/sys/net/core/wmem_default", "r");
	long wmem = 0;
	if (f) {
		if (fscanf(f, "%ld", &wmem) != 1)
			wmem = 0;
		fclose(f);
	}
	if (wmem <= 0 || wmem >= (1 << 20))
		skip();   /* a 1 MiB reply would fit the socket */
	const char *specs[] = { "demo,name=p,poll_us=1000000", "demo,name=b,poll_us=0", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	for (unsigned k = 0; k < 2; k++) {
		const char *name = k ? "b" : "p";
		int fd = connect_dev(k);
		/* COMMAND.MEM on */
		struct vfu_hdr h = { .msg_id = 5, .cmd = VFU_CMD_REGION_WRITE, .flags = VFU_F_TYPE_COMMAND };
		struct vfu_region_access ra = { .offset = 4, .region = VFU_PCI_CONFIG, .count = 2 };
		uint16_t cmd = 0x2;
		assert_int_equal(wire_send2(fd, &h, &ra, sizeof(ra), &cmd, 2, NULL, 0), 0);
		recv_reply(fd, 5, VFU_CMD_REGION_WRITE);
		struct sess a, b;
		sess_status(name, &a);

		h = (struct vfu_hdr){ .msg_id = 30, .cmd = VFU_CMD_REGION_READ, .flags = VFU_F_TYPE_COMMAND };
		ra = (struct vfu_region_access){ .offset = 0, .region = VFU_PCI_BAR0 + 2, .count = 1u << 20 };
		assert_int_equal(wire_send(fd, &h, &ra, sizeof(ra), NULL, 0), 0);
		/* the reply has started: request 30 was read */
		struct pollfd p = { .fd = fd, .events = POLLIN };
		assert_int_equal(poll(&p, 1, -1), 1);
		send_cfg_read(fd, 31);
		struct wire_msg m;
		assert_int_equal(wire_recv(fd, &m, 2u << 20, 0), 0);
		assert_int_equal(m.hdr.msg_id, 30);
		assert_int_equal(m.hdr.flags & VFU_F_ERROR, 0);
		assert_int_equal(m.len, sizeof(ra) + (1u << 20));
		wire_msg_release(&m);
		recv_reply(fd, 31, VFU_CMD_REGION_READ);
		sess_status(name, &b);
		assert_int_equal(b.messages - a.messages, 2);
		assert_int_equal(b.reads - a.reads, 2);
		if (!k) {
			/* request 31: in the window; request 30 either way */
			assert_true(b.polled - a.polled >= 1);
			assert_true(b.blocking_reads - a.blocking_reads <= 1);
		} else {
			assert_int_equal(b.polled, 0);
			assert_int_equal(b.blocking_reads - a.blocking_reads, 2);
		}
		close(fd);
	}
	assert_int_equal(vfpmd_stop(&proc), 0);
}

static void send_dma_map(int fd, uint16_t id, uint64_t iova, uint64_t size, int mfd)
{
	struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_DMA_MAP, .flags = VFU_F_TYPE_COMMAND };
	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
				  .offset = 0, .addr = iova, .size = size };
	assert_int_equal(wire_send(fd, &h, &dm, sizeof(dm), &mfd, 1), 0);
}

/* A burst of requests, some carrying a descriptor (DMA_MAP with a file),
 * sent one sendmsg each without waiting: every descriptor reaches its own
 * message. Were one given to a neighbour, that REGION_READ would fail
 * (EINVAL: a descriptor it does not take) and its DMA_MAP would map no
 * file (dma_mapped would miss its size). */
static void burst_with_descriptors(void **state)
{
	(void)state;
	const char *specs[] = { "demo,name=p", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	int fd = connect_dev(0);
	int fa = memfd_create("a", MFD_CLOEXEC), fb = memfd_create("b", MFD_CLOEXEC);
	assert_int_equal(ftruncate(fa, 8192), 0);
	assert_int_equal(ftruncate(fb, 4096), 0);
	for (int round = 0; round < 20; round++) {
		uint16_t id = (uint16_t)(100 + round * 10);
		send_cfg_read(fd, id);
		send_dma_map(fd, (uint16_t)(id + 1), 0x100000, 8192, fa);
		send_cfg_read(fd, (uint16_t)(id + 2));
		send_cfg_read(fd, (uint16_t)(id + 3));
		send_dma_map(fd, (uint16_t)(id + 4), 0x200000, 4096, fb);
		send_cfg_read(fd, (uint16_t)(id + 5));
		recv_reply(fd, id, VFU_CMD_REGION_READ);
		recv_reply(fd, (uint16_t)(id + 1), VFU_CMD_DMA_MAP);
		recv_reply(fd, (uint16_t)(id + 2), VFU_CMD_REGION_READ);
		recv_reply(fd, (uint16_t)(id + 3), VFU_CMD_REGION_READ);
		recv_reply(fd, (uint16_t)(id + 4), VFU_CMD_DMA_MAP);
		recv_reply(fd, (uint16_t)(id + 5), VFU_CMD_REGION_READ);
		struct sess s;
		sess_status("p", &s);
		assert_int_equal(s.dma_mapped, 8192 + 4096);
		/* unmap all for the next round */
		struct vfu_hdr h = { .msg_id = (uint16_t)(id + 6), .cmd = VFU_CMD_DMA_UNMAP,
				     .flags = VFU_F_TYPE_COMMAND };
		struct vfu_dma_unmap du = { .argsz = sizeof(du), .flags = VFU_DMA_UNMAP_FLAG_ALL };
		assert_int_equal(wire_send(fd, &h, &du, sizeof(du), NULL, 0), 0);
		recv_reply(fd, (uint16_t)(id + 6), VFU_CMD_DMA_UNMAP);
	}
	close(fa);
	close(fb);
	close(fd);
	assert_int_equal(vfpmd_stop(&proc), 0);
}

/* With a poll window, an idle device still suspends, and once the window
 * has passed its session thread sleeps in the kernel and is not woken:
 * its context switches do not move while the control plane is queried. */
static void idle_session_sleeps(void **state)
{
	(void)state;
	const char *specs[] = { "demo,name=d,pm_delays=none,poll_us=20000", NULL };
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	int fd = connect_dev(0);
	low_power_entry(fd, 2);
	for (uint16_t i = 0; i < 4; i++) {
		send_cfg_read(fd, (uint16_t)(3 + i));
		recv_reply(fd, (uint16_t)(3 + i), VFU_CMD_REGION_READ);
	}
	int tid = session_tid(proc.pid);
	assert_true(tid > 0);

	/* wait (no deadline asserted: the loop only bounds a broken build)
	 * until the device is suspended and the session thread sleeps */
	struct sess s;
	long long sw0 = 0;
	char st = 0;
	for (int i = 0; i < 20000; i++) {
		sess_status("d", &s);
		st = thread_state(proc.pid, tid, &sw0);
		if (st == 'S' && !strcmp(s.runtime_status, "suspended"))
			break;
		usleep(500);
	}
	assert_int_equal(st, 'S');
	assert_string_equal(s.runtime_status, "suspended");
	assert_int_equal(s.messages, 6);   /* VERSION, the feature, four reads */

	/* 50 status requests later (each one a wakeup of another thread):
	 * the session thread has not run */
	for (int i = 0; i < 50; i++) {
		struct sess t;
		sess_status("d", &t);
		assert_string_equal(t.runtime_status, "suspended");
		assert_int_equal(t.messages, s.messages);
		assert_int_equal(t.blocking_reads, s.blocking_reads);
	}
	long long sw1;
	assert_int_equal(thread_state(proc.pid, tid, &sw1), 'S');
	assert_int_equal(sw1, sw0);

	/* and it still serves the next request */
	send_cfg_read(fd, 9);
	recv_reply(fd, 9, VFU_CMD_REGION_READ);
	close(fd);
	assert_int_equal(vfpmd_stop(&proc), 0);
}

/* A failed test leaves its vfpmd running: stop it. */
static int teardown(void **state)
{
	(void)state;
	if (proc.pid > 0)
		vfpmd_stop(&proc);
	return 0;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(poll_us_option_errors, teardown),
		cmocka_unit_test_teardown(poll_us_values_in_status, teardown),
		cmocka_unit_test_teardown(descriptor_limit_is_named, teardown),
		cmocka_unit_test_teardown(burst_is_batched, teardown),
		cmocka_unit_test_teardown(request_queued_while_serving_is_polled, teardown),
		cmocka_unit_test_teardown(burst_with_descriptors, teardown),
		cmocka_unit_test_teardown(idle_session_sleeps, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
