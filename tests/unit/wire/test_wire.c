/* Unit tests for the wire layer: message framing with descriptors over a
 * socketpair, and VERSION capability JSON. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>

#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "wire/wire.h"

#define HDR 16u

/* --- helpers --- */

static void sock_pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

/* Open descriptors of this process; compared before and after to prove
 * nothing leaked. */
static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	assert_non_null(d);
	int n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* A fresh file per call, so each descriptor has its own inode and the
 * order of received descriptors can be checked. */
static int new_file(void)
{
	int fd = memfd_create("wire-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static ino_t ino_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* Writes bytes with optional SCM_RIGHTS, bypassing wire_send so tests can
 * forge headers, split messages, and pass more descriptors than allowed. */
static void raw_send(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(64 * sizeof(int))];
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	assert_true(nfds >= 0 && nfds <= 64);
	if (nfds) {
		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	assert_int_equal(n, (ssize_t)len);
}

static void fill_hdr(struct vfu_hdr *h, uint16_t id, uint16_t cmd, uint32_t size)
{
	memset(h, 0, sizeof(*h));
	h->msg_id = id;
	h->cmd = cmd;
	h->size = size;
}

static void pattern(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31u + seed);
}

static bool has_pattern(const uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != (uint8_t)(i * 31u + seed))
			return false;
	return true;
}

/* Sends a small message and checks it reads back: proves the stream is in
 * sync after an error. */
static void expect_next_ok(int tx, int rx, uint16_t id)
{
	uint8_t body[8];
	pattern(body, sizeof(body), id);
	struct vfu_hdr h = { .msg_id = id, .cmd = VFU_CMD_DEVICE_RESET };
	assert_int_equal(wire_send(tx, &h, body, sizeof(body), NULL, 0), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(rx, &m, 4096, VFPM_MAX_MSG_FDS), 0);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.size, HDR + sizeof(body));
	assert_int_equal(m.len, sizeof(body));
	assert_true(has_pattern(m.payload, m.len, id));
	assert_int_equal(m.nfds, 0);
	wire_msg_release(&m);
}

/* --- message round trips --- */

static void test_roundtrip_payload(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	uint8_t body[100];
	pattern(body, sizeof(body), 7);
	struct vfu_hdr h = { .msg_id = 0x1234, .cmd = VFU_CMD_REGION_WRITE,
			     .size = 999 /* overwritten */, .flags = VFU_F_NO_REPLY,
			     .error = 0x55 };
	assert_int_equal(wire_send(sv[0], &h, body, sizeof(body), NULL, 0), 0);
	assert_int_equal(h.size, HDR + 100);

	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 4), 0);
	assert_int_equal(m.hdr.msg_id, 0x1234);
	assert_int_equal(m.hdr.cmd, VFU_CMD_REGION_WRITE);
	assert_int_equal(m.hdr.size, HDR + 100);
	assert_int_equal(m.hdr.flags, VFU_F_NO_REPLY);
	assert_int_equal(m.hdr.error, 0x55);
	assert_int_equal(m.len, 100);
	assert_non_null(m.payload);
	assert_memory_equal(m.payload, body, sizeof(body));
	assert_int_equal(m.nfds, 0);
	wire_msg_release(&m);
	assert_null(m.payload);
	assert_int_equal(m.len, 0);
	close(sv[0]);
	close(sv[1]);
}

static void test_roundtrip_empty(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	struct vfu_hdr h = { .msg_id = 9, .cmd = VFU_CMD_DEVICE_RESET, .flags = VFU_F_TYPE_REPLY };
	assert_int_equal(wire_send(sv[0], &h, NULL, 0, NULL, 0), 0);
	assert_int_equal(h.size, HDR);
	struct wire_msg m;
	/* max_size == 16 is the tightest limit that still admits a header */
	assert_int_equal(wire_recv(sv[1], &m, HDR, 0), 0);
	assert_int_equal(m.hdr.msg_id, 9);
	assert_int_equal(m.hdr.flags, VFU_F_TYPE_REPLY);
	assert_int_equal(m.hdr.size, HDR);
	assert_int_equal(m.len, 0);
	assert_null(m.payload);
	assert_int_equal(m.nfds, 0);
	wire_msg_release(&m);
	close(sv[0]);
	close(sv[1]);
}

static void test_send2_pieces(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	struct vfu_region_access ra = { .offset = 0x40, .region = 7, .count = 12 };
	uint8_t data[12];
	pattern(data, sizeof(data), 3);
	struct vfu_hdr h = { .msg_id = 2, .cmd = VFU_CMD_REGION_READ, .flags = VFU_F_TYPE_REPLY };
	assert_int_equal(wire_send2(sv[0], &h, &ra, sizeof(ra), data, sizeof(data), NULL, 0), 0);
	assert_int_equal(h.size, HDR + sizeof(ra) + sizeof(data));

	/* first piece only, second piece only */
	struct vfu_hdr h2 = { .msg_id = 3 };
	assert_int_equal(wire_send2(sv[0], &h2, &ra, sizeof(ra), NULL, 0, NULL, 0), 0);
	struct vfu_hdr h3 = { .msg_id = 4 };
	assert_int_equal(wire_send2(sv[0], &h3, NULL, 0, data, sizeof(data), NULL, 0), 0);

	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), 0);
	assert_int_equal(m.len, sizeof(ra) + sizeof(data));
	assert_memory_equal(m.payload, &ra, sizeof(ra));
	assert_memory_equal(m.payload + sizeof(ra), data, sizeof(data));
	wire_msg_release(&m);

	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), 0);
	assert_int_equal(m.hdr.msg_id, 3);
	assert_int_equal(m.len, sizeof(ra));
	assert_memory_equal(m.payload, &ra, sizeof(ra));
	wire_msg_release(&m);

	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), 0);
	assert_int_equal(m.hdr.msg_id, 4);
	assert_int_equal(m.len, sizeof(data));
	assert_memory_equal(m.payload, data, sizeof(data));
	wire_msg_release(&m);
	close(sv[0]);
	close(sv[1]);
}

static void roundtrip_fds(int nfds)
{
	int sv[2];
	sock_pair(sv);
	int fds[VFPM_MAX_MSG_FDS];
	for (int i = 0; i < nfds; i++)
		fds[i] = new_file();
	int before = count_fds();

	uint8_t body[32];
	pattern(body, sizeof(body), (unsigned)nfds);
	struct vfu_hdr h = { .msg_id = (uint16_t)nfds, .cmd = VFU_CMD_DMA_MAP };
	assert_int_equal(wire_send(sv[0], &h, body, sizeof(body), nfds ? fds : NULL, nfds), 0);

	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, VFPM_MAX_MSG_FDS), 0);
	assert_int_equal(m.hdr.msg_id, nfds);
	assert_int_equal(m.len, sizeof(body));
	assert_true(has_pattern(m.payload, m.len, (unsigned)nfds));
	assert_int_equal(m.nfds, nfds);
	assert_int_equal(count_fds(), before + nfds);
	for (int i = 0; i < nfds; i++) {
		assert_true(m.fds[i] >= 0);
		assert_int_not_equal(m.fds[i], fds[i]);
		/* same open file, in the same order */
		assert_int_equal(ino_of(m.fds[i]), ino_of(fds[i]));
		/* MSG_CMSG_CLOEXEC */
		assert_int_equal(fcntl(m.fds[i], F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
	}
	for (int i = nfds; i < VFPM_MAX_MSG_FDS; i++)
		assert_int_equal(m.fds[i], -1);
	wire_msg_release(&m);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	close(sv[0]);
	close(sv[1]);
}

static void test_fds_0(void **state)
{
	(void)state;
	roundtrip_fds(0);
}

static void test_fds_1(void **state)
{
	(void)state;
	roundtrip_fds(1);
}

static void test_fds_3(void **state)
{
	(void)state;
	roundtrip_fds(3);
}

static void test_fds_max(void **state)
{
	(void)state;
	roundtrip_fds(VFPM_MAX_MSG_FDS);
}

/* --- messages in pieces --- */

/* --- waiting for the other thread without sleeping: each wait polls a
 * state with a 5 s deadline that only bounds a broken run --- */

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

#define WAIT_NS (5ull * 1000000000u)

/* Until the peer has read every byte written to it. */
static bool wait_consumed(int peer)
{
	uint64_t end = mono_ns() + WAIT_NS;
	for (;;) {
		int unread = -1;
		if (ioctl(peer, FIONREAD, &unread) == 0 && unread == 0)
			return true;
		if (mono_ns() > end)
			return false;
		sched_yield();
	}
}

/* The system call thread tid is in (-1 while it runs in user space). */
static long syscall_of(pid_t tid)
{
	char path[64], line[64];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	FILE *f = fopen(path, "re");
	if (!f)
		return -1;
	long nr = -1;
	if (!fgets(line, sizeof(line), f) || sscanf(line, "%ld", &nr) != 1)
		nr = -1;
	fclose(f);
	return nr;
}

/* Until thread tid is inside system call nr (blocked there, as nothing
 * can complete it yet). */
static bool wait_in_syscall(pid_t tid, long nr)
{
	uint64_t end = mono_ns() + WAIT_NS;
	while (syscall_of(tid) != nr) {
		if (mono_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

/* wire_send never blocks inside sendmsg: a sender waiting for room waits
 * in poll (ppoll where the C library has no poll system call). */
#ifdef SYS_poll
#define SYS_SEND_WAIT SYS_poll
#else
#define SYS_SEND_WAIT SYS_ppoll
#endif

struct piece_writer {
	int sock;
	int peer;   /* the reader's end: each byte is read before the next goes */
	const uint8_t *buf;
	size_t len;
	/* descriptors attached to the byte at these offsets (SIZE_MAX: none) */
	size_t fd_at[2];
	int fd[2];
};

static void *piece_writer_main(void *arg)
{
	struct piece_writer *w = arg;
	for (size_t i = 0; i < w->len; i++) {
		int fd = -1;
		for (int k = 0; k < 2; k++)
			if (w->fd_at[k] == i)
				fd = w->fd[k];
		struct iovec iov = { .iov_base = (void *)(uintptr_t)(w->buf + i), .iov_len = 1 };
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (fd >= 0) {
			memset(cbuf, 0, sizeof(cbuf));
			mh.msg_control = cbuf;
			mh.msg_controllen = sizeof(cbuf);
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		if (sendmsg(w->sock, &mh, MSG_NOSIGNAL) != 1)
			return (void *)1;
		if (!wait_consumed(w->peer))
			return (void *)1;
	}
	return NULL;
}

static void test_bytewise_from_thread(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	uint8_t msg[HDR + 40];
	struct vfu_hdr h;
	fill_hdr(&h, 77, VFU_CMD_SET_IRQS, sizeof(msg));
	memcpy(msg, &h, HDR);
	pattern(msg + HDR, 40, 5);
	int f0 = new_file(), f1 = new_file();

	/* one descriptor rides on a header byte, one on a body byte */
	struct piece_writer w = { .sock = sv[0], .peer = sv[1], .buf = msg, .len = sizeof(msg),
				  .fd_at = { 5, HDR + 20 }, .fd = { f0, f1 } };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, piece_writer_main, &w), 0);
	struct wire_msg m;
	int rc = wire_recv(sv[1], &m, 4096, 4);
	void *tr;
	assert_int_equal(pthread_join(t, &tr), 0);
	assert_null(tr);
	assert_int_equal(rc, 0);
	assert_int_equal(m.hdr.msg_id, 77);
	assert_int_equal(m.hdr.cmd, VFU_CMD_SET_IRQS);
	assert_int_equal(m.len, 40);
	assert_true(has_pattern(m.payload, 40, 5));
	assert_int_equal(m.nfds, 2);
	assert_int_equal(ino_of(m.fds[0]), ino_of(f0));
	assert_int_equal(ino_of(m.fds[1]), ino_of(f1));
	wire_msg_release(&m);
	close(f0);
	close(f1);
	close(sv[0]);
	close(sv[1]);
}

static void test_fds_with_later_pieces(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	uint8_t msg[HDR + 64];
	struct vfu_hdr h;
	fill_hdr(&h, 5, VFU_CMD_SET_IRQS, sizeof(msg));
	memcpy(msg, &h, HDR);
	pattern(msg + HDR, 64, 9);
	int f[3] = { new_file(), new_file(), new_file() };

	/* header bare; the body in three pieces, fds on the 2nd and 3rd */
	raw_send(sv[0], msg, HDR, NULL, 0);
	raw_send(sv[0], msg + HDR, 10, NULL, 0);
	raw_send(sv[0], msg + HDR + 10, 30, &f[0], 1);
	raw_send(sv[0], msg + HDR + 40, 24, &f[1], 2);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 3), 0);
	assert_int_equal(m.len, 64);
	assert_true(has_pattern(m.payload, 64, 9));
	assert_int_equal(m.nfds, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(ino_of(m.fds[i]), ino_of(f[i]));
	wire_msg_release(&m);

	/* a descriptor sent with the second half of a header */
	raw_send(sv[0], msg, 7, NULL, 0);
	raw_send(sv[0], msg + 7, sizeof(msg) - 7, &f[2], 1);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 3), 0);
	assert_int_equal(m.nfds, 1);
	assert_int_equal(ino_of(m.fds[0]), ino_of(f[2]));
	wire_msg_release(&m);

	for (int i = 0; i < 3; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

/* --- too many descriptors --- */

static void test_too_many_fds(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f[3] = { new_file(), new_file(), new_file() };
	int before = count_fds();

	uint8_t body[24];
	pattern(body, sizeof(body), 1);
	struct vfu_hdr h = { .msg_id = 42, .cmd = VFU_CMD_DMA_MAP };
	assert_int_equal(wire_send(sv[0], &h, body, sizeof(body), f, 3), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 2), -EINVAL);
	/* header kept for the error reply; nothing else held */
	assert_int_equal(m.hdr.msg_id, 42);
	assert_int_equal(m.hdr.cmd, VFU_CMD_DMA_MAP);
	assert_int_equal(m.hdr.size, HDR + sizeof(body));
	assert_null(m.payload);
	assert_int_equal(m.len, 0);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);
	wire_msg_release(&m);   /* harmless after an error */
	assert_int_equal(count_fds(), before);

	expect_next_ok(sv[0], sv[1], 43);
	for (int i = 0; i < 3; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

static void test_too_many_fds_split(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f[2] = { new_file(), new_file() };
	int before = count_fds();
	uint8_t msg[HDR + 8] = { 0 };
	struct vfu_hdr h;
	fill_hdr(&h, 50, VFU_CMD_DMA_MAP, sizeof(msg));
	memcpy(msg, &h, HDR);
	/* one fd with the header, one with the body: two in all, limit 1 */
	raw_send(sv[0], msg, HDR, &f[0], 1);
	raw_send(sv[0], msg + HDR, 8, &f[1], 1);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -EINVAL);
	assert_int_equal(m.hdr.msg_id, 50);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);
	expect_next_ok(sv[0], sv[1], 51);

	/* max_fds 0 refuses even one */
	raw_send(sv[0], msg, sizeof(msg), &f[0], 1);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 0), -EINVAL);
	assert_int_equal(count_fds(), before);
	expect_next_ok(sv[0], sv[1], 52);

	close(f[0]);
	close(f[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_fds_beyond_array(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	enum { N = 40 };   /* more than the control buffer holds: MSG_CTRUNC */
	int f[N];
	for (int i = 0; i < N; i++)
		f[i] = new_file();
	int before = count_fds();
	uint8_t msg[HDR + 4] = { 0 };
	struct vfu_hdr h;
	fill_hdr(&h, 60, VFU_CMD_SET_IRQS, sizeof(msg));
	memcpy(msg, &h, HDR);
	raw_send(sv[0], msg, sizeof(msg), f, N);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, VFPM_MAX_MSG_FDS), -EINVAL);
	assert_int_equal(m.hdr.msg_id, 60);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);
	expect_next_ok(sv[0], sv[1], 61);

	/* 17: fits the control buffer but not the array */
	raw_send(sv[0], msg, sizeof(msg), f, VFPM_MAX_MSG_FDS + 1);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 64), -EINVAL);
	assert_int_equal(count_fds(), before);
	expect_next_ok(sv[0], sv[1], 62);

	for (int i = 0; i < N; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

/* --- bad sizes and EOF --- */

static void test_size_too_small(void **state)
{
	(void)state;
	static const uint32_t sizes[] = { 0, 1, 15 };
	int f = new_file();
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int sv[2];
		sock_pair(sv);
		int before = count_fds();
		struct vfu_hdr h;
		fill_hdr(&h, 1, VFU_CMD_VERSION, sizes[i]);
		raw_send(sv[0], &h, HDR, &f, 1);
		struct wire_msg m;
		assert_int_equal(wire_recv(sv[1], &m, 4096, 4), -EMSGSIZE);
		assert_int_equal(m.hdr.size, sizes[i]);
		assert_null(m.payload);
		assert_int_equal(m.nfds, 0);
		assert_int_equal(count_fds(), before);
		close(sv[0]);
		close(sv[1]);
	}
	close(f);
}

static void test_size_too_big(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	const size_t max = 256;
	uint8_t body[256 - HDR];
	pattern(body, sizeof(body), 4);

	/* exactly max is fine */
	struct vfu_hdr h = { .msg_id = 1 };
	assert_int_equal(wire_send(sv[0], &h, body, sizeof(body), NULL, 0), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, max, 1), 0);
	assert_int_equal(m.len, max - HDR);
	assert_true(has_pattern(m.payload, m.len, 4));
	wire_msg_release(&m);

	/* one more byte is not */
	fill_hdr(&h, 2, VFU_CMD_REGION_WRITE, (uint32_t)max + 1);
	raw_send(sv[0], &h, HDR, NULL, 0);
	assert_int_equal(wire_recv(sv[1], &m, max, 1), -EMSGSIZE);
	assert_int_equal(m.hdr.size, max + 1);
	assert_null(m.payload);

	/* nor is the largest size the header can state */
	int sv2[2];
	sock_pair(sv2);
	fill_hdr(&h, 3, VFU_CMD_REGION_WRITE, UINT32_MAX);
	raw_send(sv2[0], &h, HDR, NULL, 0);
	assert_int_equal(wire_recv(sv2[1], &m, VFPM_MAX_MSG_SIZE, 1), -EMSGSIZE);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
}

static void test_eof_before_header(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	close(sv[0]);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -ECONNRESET);
	assert_null(m.payload);
	assert_int_equal(m.nfds, 0);
	close(sv[1]);

	/* also right after a whole message */
	sock_pair(sv);
	struct vfu_hdr h = { .msg_id = 1 };
	assert_int_equal(wire_send(sv[0], &h, NULL, 0, NULL, 0), 0);
	close(sv[0]);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), 0);
	wire_msg_release(&m);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -ECONNRESET);
	close(sv[1]);
}

static void test_eof_mid_header(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f = new_file();
	int before = count_fds();
	struct vfu_hdr h;
	fill_hdr(&h, 1, VFU_CMD_DMA_MAP, HDR + 8);
	raw_send(sv[0], &h, 7, &f, 1);
	close(sv[0]);
	before--;   /* sv[0] is gone */
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -EPIPE);
	assert_null(m.payload);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);
	close(sv[1]);
	close(f);
}

static void test_eof_mid_body(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f = new_file();
	int before = count_fds();
	uint8_t msg[HDR + 100];
	struct vfu_hdr h;
	fill_hdr(&h, 1, VFU_CMD_REGION_WRITE, sizeof(msg));
	memcpy(msg, &h, HDR);
	memset(msg + HDR, 0xab, 100);
	raw_send(sv[0], msg, HDR + 50, &f, 1);
	close(sv[0]);
	before--;
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -EPIPE);
	assert_null(m.payload);
	assert_int_equal(m.len, 0);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);

	/* EOF exactly at the header/body boundary is mid-message too */
	int sv2[2];
	sock_pair(sv2);
	raw_send(sv2[0], msg, HDR, NULL, 0);
	close(sv2[0]);
	assert_int_equal(wire_recv(sv2[1], &m, 4096, 1), -EPIPE);
	close(sv2[1]);
	close(sv[1]);
	close(f);
}

/* --- sending --- */

static void test_send_closed_peer(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	close(sv[1]);

	/* Block SIGPIPE so that one raised would stay pending and be seen. */
	sigset_t set, old, pend;
	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	assert_int_equal(pthread_sigmask(SIG_BLOCK, &set, &old), 0);
	uint8_t body[64] = { 0 };
	int f = new_file();
	struct vfu_hdr h = { .msg_id = 1 };
	int rc1 = wire_send(sv[0], &h, body, sizeof(body), NULL, 0);
	int rc2 = wire_send(sv[0], &h, body, sizeof(body), &f, 1);
	assert_int_equal(sigpending(&pend), 0);
	int pending = sigismember(&pend, SIGPIPE);
	if (pending) {
		int sig;
		sigwait(&set, &sig);
	}
	assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
	assert_int_equal(rc1, -EPIPE);
	assert_int_equal(rc2, -EPIPE);
	assert_int_equal(pending, 0);
	/* the caller's descriptor is still its own */
	assert_int_equal(fcntl(f, F_GETFD) >= 0, 1);
	close(f);
	close(sv[0]);
}

static void test_send_bad_args(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f[VFPM_MAX_MSG_FDS + 1];
	for (int i = 0; i <= VFPM_MAX_MSG_FDS; i++)
		f[i] = new_file();
	uint8_t byte = 0;
	struct vfu_hdr h = { .msg_id = 1, .size = 1234 };

	assert_int_equal(wire_send(sv[0], &h, NULL, 0, f, VFPM_MAX_MSG_FDS + 1), -EINVAL);
	assert_int_equal(wire_send(sv[0], &h, NULL, 0, f, -1), -EINVAL);
	assert_int_equal(wire_send(sv[0], &h, NULL, 0, NULL, 1), -EINVAL);
	assert_int_equal(wire_send(sv[0], &h, NULL, 5, NULL, 0), -EINVAL);
	assert_int_equal(wire_send2(sv[0], &h, NULL, 0, NULL, 5, NULL, 0), -EINVAL);
	/* total over 32 bits; the lengths are checked before any byte is read */
	assert_int_equal(wire_send(sv[0], &h, &byte, (size_t)UINT32_MAX - HDR + 1, NULL, 0),
			 -EMSGSIZE);
	assert_int_equal(wire_send2(sv[0], &h, &byte, (size_t)UINT32_MAX / 2, &byte,
				    (size_t)UINT32_MAX / 2, NULL, 0), -EMSGSIZE);
	assert_int_equal(wire_send2(sv[0], &h, &byte, SIZE_MAX, &byte, 2, NULL, 0), -EMSGSIZE);
	/* hdr untouched, nothing written */
	assert_int_equal(h.size, 1234);
	char c;
	assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);

	for (int i = 0; i <= VFPM_MAX_MSG_FDS; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

struct big_sender {
	int sock;
	const uint8_t *buf;
	size_t len;
	const int *fds;
	int nfds;
	int rc;
	_Atomic pid_t tid;   /* the sender thread's, once it runs */
};

static void *big_sender_main(void *arg)
{
	struct big_sender *s = arg;
	s->tid = (pid_t)syscall(SYS_gettid);
	struct vfu_hdr h = { .msg_id = 0xbeef, .cmd = VFU_CMD_DMA_WRITE };
	s->rc = wire_send(s->sock, &h, s->buf, s->len, s->fds, s->nfds);
	return NULL;
}

/* A non-blocking sender with a payload far beyond the socket buffer: partial
 * writes and EAGAIN, descriptors only once. */
static void test_large_nonblocking(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
	const size_t len = VFPM_MAX_DATA_XFER;
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	pattern(buf, len, 11);
	int f[2] = { new_file(), new_file() };
	int before = count_fds();
	struct big_sender s = { .sock = sv[0], .buf = buf, .len = len, .fds = f, .nfds = 2 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, big_sender_main, &s), 0);
	struct wire_msg m;
	int rc = wire_recv(sv[1], &m, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(s.rc, 0);
	assert_int_equal(rc, 0);
	assert_int_equal(m.hdr.msg_id, 0xbeef);
	assert_int_equal(m.len, len);
	assert_true(has_pattern(m.payload, len, 11));
	assert_int_equal(m.nfds, 2);
	assert_int_equal(ino_of(m.fds[0]), ino_of(f[0]));
	assert_int_equal(ino_of(m.fds[1]), ino_of(f[1]));
	assert_int_equal(count_fds(), before + 2);
	wire_msg_release(&m);
	assert_int_equal(count_fds(), before);
	expect_next_ok(sv[0], sv[1], 3);
	free(buf);
	close(f[0]);
	close(f[1]);
	close(sv[0]);
	close(sv[1]);
}

static void test_nonblocking_recv(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	struct wire_msg m;
	/* nothing pending: come back later */
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -EAGAIN);
	assert_null(m.payload);

	/* a started message is finished even if the rest is late */
	uint8_t msg[HDR + 30];
	struct vfu_hdr h;
	fill_hdr(&h, 8, VFU_CMD_REGION_WRITE, sizeof(msg));
	memcpy(msg, &h, HDR);
	pattern(msg + HDR, 30, 8);
	raw_send(sv[0], msg, 10, NULL, 0);
	struct piece_writer w = { .sock = sv[0], .peer = sv[1], .buf = msg + 10,
				  .len = sizeof(msg) - 10, .fd_at = { SIZE_MAX, SIZE_MAX },
				  .fd = { -1, -1 } };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, piece_writer_main, &w), 0);
	int rc = wire_recv(sv[1], &m, 4096, 1);
	void *tr;
	assert_int_equal(pthread_join(t, &tr), 0);
	assert_null(tr);
	assert_int_equal(rc, 0);
	assert_int_equal(m.hdr.msg_id, 8);
	assert_int_equal(m.len, 30);
	assert_true(has_pattern(m.payload, 30, 8));
	wire_msg_release(&m);
	close(sv[0]);
	close(sv[1]);
}

/* --- interrupted system calls --- */

static volatile sig_atomic_t usr1_count;

static void on_usr1(int sig)
{
	(void)sig;
	usr1_count++;
}

/* SIGUSR1 without SA_RESTART, so blocking socket calls fail with EINTR. */
static void catch_usr1(struct sigaction *old)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0;
	assert_int_equal(sigaction(SIGUSR1, &sa, old), 0);
}

/* Until the handler has run n times in all. */
static bool wait_usr1(int n)
{
	uint64_t end = mono_ns() + WAIT_NS;
	while (usr1_count < n) {
		if (mono_ns() > end)
			return false;
		sched_yield();
	}
	return true;
}

struct eintr_writer {
	int sock;
	int peer;          /* the reader's end */
	pid_t target_tid;  /* the reader */
	pthread_t target;
	const uint8_t *buf;
	size_t len;
	size_t split;
};

static void *eintr_writer_main(void *arg)
{
	struct eintr_writer *w = arg;
	/* the reader is interrupted blocked before the message starts, and
	 * again blocked inside it (the first piece read) */
	if (!wait_in_syscall(w->target_tid, SYS_recvmsg))
		return (void *)1;
	pthread_kill(w->target, SIGUSR1);
	if (!wait_usr1(1) || !wait_in_syscall(w->target_tid, SYS_recvmsg))
		return (void *)1;
	if (send(w->sock, w->buf, w->split, MSG_NOSIGNAL) != (ssize_t)w->split)
		return (void *)1;
	if (!wait_consumed(w->peer) || !wait_in_syscall(w->target_tid, SYS_recvmsg))
		return (void *)1;
	pthread_kill(w->target, SIGUSR1);
	if (!wait_usr1(2))
		return (void *)1;
	if (send(w->sock, w->buf + w->split, w->len - w->split, MSG_NOSIGNAL) !=
	    (ssize_t)(w->len - w->split))
		return (void *)1;
	return NULL;
}

static void test_eintr_recv(void **state)
{
	(void)state;
	struct sigaction old;
	catch_usr1(&old);
	usr1_count = 0;
	int sv[2];
	sock_pair(sv);
	uint8_t msg[HDR + 20];
	struct vfu_hdr h;
	fill_hdr(&h, 31, VFU_CMD_REGION_WRITE, sizeof(msg));
	memcpy(msg, &h, HDR);
	pattern(msg + HDR, 20, 31);
	struct eintr_writer w = { .sock = sv[0], .peer = sv[1], .target_tid = (pid_t)syscall(SYS_gettid),
				  .target = pthread_self(), .buf = msg, .len = sizeof(msg), .split = 9 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, eintr_writer_main, &w), 0);
	struct wire_msg m;
	int rc = wire_recv(sv[1], &m, 4096, 1);
	void *tr;
	assert_int_equal(pthread_join(t, &tr), 0);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	assert_null(tr);
	assert_int_equal(usr1_count, 2);
	assert_int_equal(rc, 0);
	assert_int_equal(m.hdr.msg_id, 31);
	assert_int_equal(m.len, 20);
	assert_true(has_pattern(m.payload, 20, 31));
	wire_msg_release(&m);
	close(sv[0]);
	close(sv[1]);
}

/* A blocking sender stuck on a full socket is interrupted: the partial
 * write (or EINTR) must be resumed, not reported. */
static void test_eintr_send(void **state)
{
	(void)state;
	struct sigaction old;
	catch_usr1(&old);
	usr1_count = 0;
	int sv[2];
	sock_pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	/* a broken sender then fails the test instead of hanging it */
	struct timeval tv = { .tv_sec = 5 };
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	const size_t len = 256 * 1024;
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	pattern(buf, len, 13);
	int f = new_file();
	struct big_sender s = { .sock = sv[0], .buf = buf, .len = len, .fds = &f, .nfds = 1 };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, big_sender_main, &s), 0);
	/* each signal finds the sender waiting for room on the full socket */
	uint64_t end = mono_ns() + WAIT_NS;
	while (!s.tid && mono_ns() < end)
		sched_yield();
	for (int i = 0; i < 3; i++) {
		assert_true(wait_in_syscall(s.tid, SYS_SEND_WAIT));
		pthread_kill(t, SIGUSR1);
		assert_true(wait_usr1(i + 1));
	}
	struct wire_msg m;
	int rc = wire_recv(sv[1], &m, VFPM_MAX_MSG_SIZE, 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
	assert_int_equal(usr1_count, 3);
	assert_int_equal(s.rc, 0);
	assert_int_equal(rc, 0);
	assert_int_equal(m.hdr.msg_id, 0xbeef);
	assert_int_equal(m.len, len);
	assert_true(has_pattern(m.payload, len, 13));
	assert_int_equal(m.nfds, 1);
	assert_int_equal(ino_of(m.fds[0]), ino_of(f));
	wire_msg_release(&m);
	expect_next_ok(sv[0], sv[1], 4);
	free(buf);
	close(f);
	close(sv[0]);
	close(sv[1]);
}

/* Blocking sockets with a timeout: -EAGAIN before a message, -ETIMEDOUT
 * inside one. */
static void test_timeouts(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	struct timeval tv = { .tv_usec = 50000 };
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -EAGAIN);

	int f = new_file();
	int before = count_fds();
	uint8_t msg[HDR + 10] = { 0 };
	struct vfu_hdr h;
	fill_hdr(&h, 1, VFU_CMD_REGION_WRITE, sizeof(msg));
	memcpy(msg, &h, HDR);
	raw_send(sv[0], msg, HDR + 3, &f, 1);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 1), -ETIMEDOUT);
	assert_null(m.payload);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(count_fds(), before);

	/* a sender that cannot get rid of its message in time */
	int sv2[2];
	sock_pair(sv2);
	int small = 4096;
	assert_int_equal(setsockopt(sv2[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(sv2[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	const size_t len = 256 * 1024;
	uint8_t *buf = calloc(1, len);
	assert_non_null(buf);
	struct vfu_hdr h2 = { .msg_id = 2 };
	assert_int_equal(wire_send(sv2[0], &h2, buf, len, NULL, 0), -ETIMEDOUT);
	free(buf);
	close(f);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
}

struct trickle_reader {
	int sock;
	atomic_bool stop;
	size_t got;
};

/* Takes 4 KiB every 20 ms until told to stop. */
static void *trickle_reader_main(void *arg)
{
	struct trickle_reader *r = arg;
	static uint8_t b[4096];
	while (!atomic_load(&r->stop)) {
		ssize_t n = recv(r->sock, b, sizeof(b), MSG_DONTWAIT);
		if (n > 0)
			r->got += (size_t)n;
		else if (n == 0)
			break;
		struct timespec t = { 0, 20000000 };
		nanosleep(&t, NULL);
	}
	return NULL;
}

/* SO_SNDTIMEO bounds the whole message: a reader that takes a little at a
 * time (each bit of progress would restart a blocking sendmsg's timeout)
 * cannot hold the sender past it. The reader needs more than 1.2 s to take
 * 256 KiB; the bound is 200 ms, so the send fails before it is all out.
 * (Before the bound covered the whole message, this send succeeded.) */
static void test_send_timeout_bounds_the_whole_message(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	struct timeval tv = { .tv_usec = 200000 };
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)), 0);
	const size_t len = 256 * 1024;
	uint8_t *buf = calloc(1, len);
	assert_non_null(buf);
	struct trickle_reader r = { .sock = sv[1] };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, trickle_reader_main, &r), 0);
	struct vfu_hdr h = { .msg_id = 3 };
	assert_int_equal(wire_send(sv[0], &h, buf, len, NULL, 0), -ETIMEDOUT);
	atomic_store(&r.stop, true);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_true(r.got < len + HDR);   /* the message was not all out */
	free(buf);
	close(sv[0]);
	close(sv[1]);
}

/* --- descriptor ownership --- */

static void test_take_fd(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	int f[3] = { new_file(), new_file(), new_file() };
	int before = count_fds();
	struct vfu_hdr h = { .msg_id = 1 };
	uint8_t b = 0;
	assert_int_equal(wire_send(sv[0], &h, &b, 1, f, 3), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 3), 0);
	assert_int_equal(m.nfds, 3);

	int t1 = wire_msg_take_fd(&m, 1);
	assert_true(t1 >= 0);
	assert_int_equal(ino_of(t1), ino_of(f[1]));
	/* taken once only; indices of the others do not move */
	assert_int_equal(wire_msg_take_fd(&m, 1), -1);
	assert_int_equal(m.nfds, 3);
	assert_int_equal(m.fds[1], -1);
	assert_int_equal(ino_of(m.fds[2]), ino_of(f[2]));
	/* out of range */
	assert_int_equal(wire_msg_take_fd(&m, -1), -1);
	assert_int_equal(wire_msg_take_fd(&m, 3), -1);
	assert_int_equal(wire_msg_take_fd(&m, VFPM_MAX_MSG_FDS), -1);
	assert_int_equal(wire_msg_take_fd(NULL, 0), -1);

	/* release closes the two still held, not the taken one */
	wire_msg_release(&m);
	assert_int_equal(count_fds(), before + 1);
	assert_int_equal(ino_of(t1), ino_of(f[1]));
	close(t1);
	assert_int_equal(count_fds(), before);
	/* release twice is harmless */
	wire_msg_release(&m);
	wire_msg_release(NULL);
	assert_int_equal(count_fds(), before);
	for (int i = 0; i < 3; i++)
		close(f[i]);
	close(sv[0]);
	close(sv[1]);
}

/* --- capabilities --- */

static int parse_str(const char *s, struct wire_caps *c)
{
	return wire_caps_parse(s, strlen(s) + 1, c);
}

static void assert_defaults(const struct wire_caps *c)
{
	assert_int_equal(c->max_msg_fds, 1);
	assert_int_equal(c->max_data_xfer_size, 1048576);
	assert_int_equal(c->pgsizes, 4096);
	assert_int_equal(c->max_dma_maps, 65535);
	assert_false(c->twin_socket);
	assert_false(c->write_multiple);
	assert_int_equal(c->twin_fd_index, -1);
}

static void test_caps_default(void **state)
{
	(void)state;
	struct wire_caps c;
	memset(&c, 0x5a, sizeof(c));
	wire_caps_default(&c);
	assert_defaults(&c);
}

static void test_caps_empty(void **state)
{
	(void)state;
	struct wire_caps c;
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(wire_caps_parse(NULL, 0, &c), 0);
	assert_defaults(&c);
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(wire_caps_parse("garbage", 0, &c), 0);
	assert_defaults(&c);
	/* an empty document and an empty object */
	assert_int_equal(parse_str("", &c), -EINVAL);
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(parse_str("{}", &c), 0);
	assert_defaults(&c);
	memset(&c, 0x5a, sizeof(c));
	assert_int_equal(parse_str("{\"capabilities\":{}}", &c), 0);
	assert_defaults(&c);
	assert_int_equal(wire_caps_parse("{}", 3, NULL), -EINVAL);
	assert_int_equal(wire_caps_parse(NULL, 3, &c), -EINVAL);
}

static void test_caps_libvfio_user_reply(void **state)
{
	(void)state;
	struct wire_caps c;
	assert_int_equal(parse_str("{\"capabilities\":{\"max_msg_fds\":8,"
				   "\"max_data_xfer_size\":1048576,"
				   "\"migration\":{\"pgsize\":4096}}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 8);
	assert_int_equal(c.max_data_xfer_size, 1048576);
	assert_int_equal(c.pgsizes, 4096);
	assert_int_equal(c.max_dma_maps, 65535);
	assert_false(c.twin_socket);
	assert_false(c.write_multiple);
}

static void test_caps_qemu_offer(void **state)
{
	(void)state;
	struct wire_caps c;
	/* QEMU's client offer, in the order its dict serializes */
	assert_int_equal(parse_str("{\"capabilities\": {\"max_data_xfer_size\": 1048576, "
				   "\"pgsizes\": 4096, \"write_multiple\": true, "
				   "\"migration\": {\"pgsize\": 4096, \"max_bitmap_size\": 268435456}, "
				   "\"max_dma_maps\": 65535, \"max_msg_fds\": 16}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 16);
	assert_int_equal(c.max_data_xfer_size, 1048576);
	assert_int_equal(c.pgsizes, 4096);
	assert_int_equal(c.max_dma_maps, 65535);
	assert_true(c.write_multiple);
	assert_false(c.twin_socket);

	/* with twin socket asked for, pretty-printed */
	assert_int_equal(parse_str("{\n  \"capabilities\": {\n    \"max_msg_fds\": 4,\n"
				   "    \"pgsizes\": 2101248,\n"
				   "    \"twin_socket\": { \"supported\": true }\n  }\n}\n", &c), 0);
	assert_int_equal(c.max_msg_fds, 4);
	assert_int_equal(c.pgsizes, 4096u | (2u << 20));
	assert_true(c.twin_socket);
	assert_int_equal(c.twin_fd_index, -1);
	assert_false(c.write_multiple);
}

static void test_caps_missing_nul(void **state)
{
	(void)state;
	struct wire_caps c;
	const char *s = "{\"capabilities\":{\"max_msg_fds\":8}}";
	assert_int_equal(wire_caps_parse(s, strlen(s), &c), -EINVAL);
	assert_int_equal(wire_caps_parse(s, 1, &c), -EINVAL);
	/* complete even without its last byte, but still no NUL */
	const char *sp = "{\"capabilities\":{\"max_msg_fds\":8}} ";
	assert_int_equal(wire_caps_parse(sp, strlen(sp), &c), -EINVAL);
	/* NUL in the middle cuts the document short */
	static const char cut[] = "{\"capabilities\":\0{}}";
	assert_int_equal(wire_caps_parse(cut, sizeof(cut), &c), -EINVAL);
	/* bytes after the terminating NUL are not looked at */
	static const char pad[] = "{\"capabilities\":{\"max_msg_fds\":3}}\0xyz";
	assert_int_equal(wire_caps_parse(pad, sizeof(pad), &c), 0);
	assert_int_equal(c.max_msg_fds, 3);
}

/* An apostrophe inside a string, and escaped quotes, are plain JSON. */
static void test_caps_quotes_in_strings(void **state)
{
	(void)state;
	struct wire_caps c;
	assert_int_equal(parse_str("{\"note\":\"it's \\\"fine\\\"\",\"capabilities\":"
				   "{\"max_msg_fds\":5}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 5);
}

static void test_caps_not_object(void **state)
{
	(void)state;
	static const char *const docs[] = {
		"[]", "[{\"capabilities\":{}}]", "5", "\"capabilities\"", "null", "true",
		" ", "{", "{\"capabilities\":}", "{\"capabilities\" {}}", "{capabilities:{}}",
		"{\"capabilities\":{},}", "{\"capabilities\":{\"max_msg_fds\":01}}",
		/* single quotes are not JSON (json-c's strict mode takes them) */
		"{'capabilities':{}}", "{\"capabilities\":{'max_msg_fds':8}}",
	};
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		struct wire_caps c;
		memset(&c, 0x5a, sizeof(c));
		int rc = parse_str(docs[i], &c);
		if (rc != -EINVAL)
			fail_msg("'%s' gave %d", docs[i], rc);
		/* out untouched on failure */
		assert_int_equal(c.max_msg_fds, 0x5a5a5a5a);
	}
}

static void test_caps_trailing(void **state)
{
	(void)state;
	static const char *const bad[] = {
		"{} x", "{}{}", "{\"capabilities\":{}} {}", "{}}", "{},", "{}\x01",
	};
	struct wire_caps c;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse_str(bad[i], &c);
		if (rc != -EINVAL)
			fail_msg("'%s' gave %d", bad[i], rc);
	}
	assert_int_equal(parse_str(" \t{\"capabilities\":{\"max_msg_fds\":2}} \r\n\t ", &c), 0);
	assert_int_equal(c.max_msg_fds, 2);
}

static void test_caps_wrong_types(void **state)
{
	(void)state;
	static const char *const int_keys[] = {
		"max_msg_fds", "max_data_xfer_size", "pgsizes", "max_dma_maps",
	};
	static const char *const not_int[] = {
		"\"8\"", "8.0", "4096.5", "1e3", "true", "false", "null", "{}", "[]", "[8]",
	};
	static const char *const not_bool[] = {
		"1", "0", "\"true\"", "null", "{}", "[]", "[true]",
	};
	char doc[256];
	struct wire_caps c;

	for (size_t k = 0; k < sizeof(int_keys) / sizeof(int_keys[0]); k++) {
		for (size_t v = 0; v < sizeof(not_int) / sizeof(not_int[0]); v++) {
			snprintf(doc, sizeof(doc), "{\"capabilities\":{\"%s\":%s}}",
				 int_keys[k], not_int[v]);
			int rc = parse_str(doc, &c);
			if (rc != -EINVAL)
				fail_msg("'%s' gave %d", doc, rc);
		}
	}
	for (size_t v = 0; v < sizeof(not_bool) / sizeof(not_bool[0]); v++) {
		snprintf(doc, sizeof(doc), "{\"capabilities\":{\"write_multiple\":%s}}", not_bool[v]);
		assert_int_equal(parse_str(doc, &c), -EINVAL);
		snprintf(doc, sizeof(doc), "{\"capabilities\":{\"twin_socket\":%s}}", not_bool[v]);
		/* {} is a valid twin_socket (supported absent = false) */
		if (strcmp(not_bool[v], "{}") != 0)
			assert_int_equal(parse_str(doc, &c), -EINVAL);
		snprintf(doc, sizeof(doc),
			 "{\"capabilities\":{\"twin_socket\":{\"supported\":%s}}}", not_bool[v]);
		assert_int_equal(parse_str(doc, &c), -EINVAL);
	}
	/* capabilities itself and migration must be objects */
	static const char *const not_obj[] = { "1", "true", "null", "[]", "\"x\"" };
	for (size_t v = 0; v < sizeof(not_obj) / sizeof(not_obj[0]); v++) {
		snprintf(doc, sizeof(doc), "{\"capabilities\":%s}", not_obj[v]);
		assert_int_equal(parse_str(doc, &c), -EINVAL);
		snprintf(doc, sizeof(doc), "{\"capabilities\":{\"migration\":%s}}", not_obj[v]);
		assert_int_equal(parse_str(doc, &c), -EINVAL);
	}
	/* fd_index must be an integer */
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":"
				   "{\"supported\":true,\"fd_index\":\"0\"}}}", &c), -EINVAL);
}

struct range_case {
	const char *doc;
	int rc;
};

static void test_caps_ranges(void **state)
{
	(void)state;
	static const struct range_case cases[] = {
		{ "{\"capabilities\":{\"max_msg_fds\":-1}}", -EINVAL },
		{ "{\"capabilities\":{\"max_msg_fds\":1025}}", -EINVAL },
		{ "{\"capabilities\":{\"max_msg_fds\":4294967297}}", -EINVAL },
		{ "{\"capabilities\":{\"max_msg_fds\":99999999999999999999999}}", -EINVAL },
		{ "{\"capabilities\":{\"max_data_xfer_size\":0}}", -EINVAL },
		{ "{\"capabilities\":{\"max_data_xfer_size\":-1048576}}", -EINVAL },
		{ "{\"capabilities\":{\"max_data_xfer_size\":1073741825}}", -EINVAL },
		{ "{\"capabilities\":{\"max_data_xfer_size\":4294967296}}", -EINVAL },
		{ "{\"capabilities\":{\"pgsizes\":0}}", -EINVAL },
		{ "{\"capabilities\":{\"pgsizes\":-4096}}", -EINVAL },
		{ "{\"capabilities\":{\"pgsizes\":2048}}", -EINVAL },
		{ "{\"capabilities\":{\"pgsizes\":4097}}", -EINVAL },
		{ "{\"capabilities\":{\"pgsizes\":99999999999999999999999}}", -EINVAL },
		{ "{\"capabilities\":{\"max_dma_maps\":0}}", -EINVAL },
		{ "{\"capabilities\":{\"max_dma_maps\":-5}}", -EINVAL },
		{ "{\"capabilities\":{\"max_dma_maps\":2147483648}}", -EINVAL },
		{ "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":-1}}}", -EINVAL },
		{ "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":1024}}}", -EINVAL },
	};
	struct wire_caps c;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc = parse_str(cases[i].doc, &c);
		if (rc != cases[i].rc)
			fail_msg("'%s' gave %d, want %d", cases[i].doc, rc, cases[i].rc);
	}

	/* the edges that are allowed */
	assert_int_equal(parse_str("{\"capabilities\":{\"max_msg_fds\":0,\"max_data_xfer_size\":1,"
				   "\"pgsizes\":4096,\"max_dma_maps\":1}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 0);
	assert_int_equal(c.max_data_xfer_size, 1);
	assert_int_equal(c.pgsizes, 4096);
	assert_int_equal(c.max_dma_maps, 1);
	assert_int_equal(parse_str("{\"capabilities\":{\"max_msg_fds\":1024,"
				   "\"max_data_xfer_size\":1073741824,"
				   "\"pgsizes\":18446744073709547520,"
				   "\"max_dma_maps\":2147483647}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 1024);
	assert_int_equal(c.max_data_xfer_size, 1u << 30);
	assert_int_equal(c.pgsizes, 0xfffffffffffff000ull);
	assert_int_equal(c.max_dma_maps, 2147483647u);
}

static void test_caps_twin_socket(void **state)
{
	(void)state;
	struct wire_caps c;
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}", &c), 0);
	assert_true(c.twin_socket);
	assert_int_equal(c.twin_fd_index, -1);
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":{\"supported\":false}}}", &c), 0);
	assert_false(c.twin_socket);
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":true}}", &c), 0);
	assert_true(c.twin_socket);
	assert_int_equal(c.twin_fd_index, -1);
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":false}}", &c), 0);
	assert_false(c.twin_socket);
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":{}}}", &c), 0);
	assert_false(c.twin_socket);
	/* a server's answer names the descriptor */
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":"
				   "{\"supported\":true,\"fd_index\":0,\"future\":[1]}}}", &c), 0);
	assert_true(c.twin_socket);
	assert_int_equal(c.twin_fd_index, 0);
	assert_int_equal(parse_str("{\"capabilities\":{\"twin_socket\":"
				   "{\"fd_index\":3,\"supported\":true}}}", &c), 0);
	assert_true(c.twin_socket);
	assert_int_equal(c.twin_fd_index, 3);
}

static void test_caps_unknown_keys(void **state)
{
	(void)state;
	struct wire_caps c;
	assert_int_equal(parse_str("{\"version\":\"x\",\"extra\":[1,2,{\"a\":null}],"
				   "\"capabilities\":{\"max_msg_fds\":5,\"frobnicate\":true,"
				   "\"nested\":{\"deeper\":{\"max_msg_fds\":\"no\"}},"
				   "\"float\":1.5,\"neg\":-1,"
				   "\"migration\":{\"pgsize\":\"ignored\",\"other\":[]},"
				   "\"write_multiple\":false}}", &c), 0);
	assert_int_equal(c.max_msg_fds, 5);
	assert_int_equal(c.max_data_xfer_size, 1048576);
	assert_false(c.write_multiple);
	/* a top-level key of the same name as a capability is not one */
	assert_int_equal(parse_str("{\"max_msg_fds\":9}", &c), 0);
	assert_int_equal(c.max_msg_fds, 1);
}

static void test_caps_limits_of_json(void **state)
{
	(void)state;
	struct wire_caps c;
	/* invalid UTF-8, even in an ignored string */
	assert_int_equal(parse_str("{\"capabilities\":{\"x\":\"\xff\xfe\"}}", &c), -EINVAL);
	/* valid UTF-8 is fine */
	assert_int_equal(parse_str("{\"capabilities\":{\"x\":\"\xc3\xa9\"}}", &c), 0);
	/* nesting past the parser's depth */
	char deep[128];
	strcpy(deep, "{\"a\":");
	for (int i = 0; i < 30; i++)
		strcat(deep, "[");
	for (int i = 0; i < 30; i++)
		strcat(deep, "]");
	strcat(deep, "}");
	assert_int_equal(parse_str(deep, &c), -EINVAL);
}

static void test_caps_format(void **state)
{
	(void)state;
	struct wire_caps c;
	wire_caps_default(&c);
	char *s = wire_caps_format(&c);
	assert_non_null(s);
	assert_string_equal(s, "{\"capabilities\":{\"max_msg_fds\":1,\"max_data_xfer_size\":1048576,"
			       "\"pgsizes\":4096,\"max_dma_maps\":65535}}");
	free(s);

	c.max_msg_fds = 16;
	c.write_multiple = true;
	c.twin_socket = true;
	s = wire_caps_format(&c);
	assert_non_null(s);
	assert_string_equal(s, "{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":1048576,"
			       "\"pgsizes\":4096,\"max_dma_maps\":65535,\"write_multiple\":true,"
			       "\"twin_socket\":{\"supported\":true}}}");
	free(s);

	c.twin_fd_index = 0;
	s = wire_caps_format(&c);
	assert_non_null(s);
	assert_non_null(strstr(s, ",\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}"));
	free(s);

	/* fd_index without twin_socket is not sent */
	c.twin_socket = false;
	s = wire_caps_format(&c);
	assert_non_null(s);
	assert_null(strstr(s, "twin_socket"));
	free(s);
	assert_null(wire_caps_format(NULL));
}

static void test_caps_roundtrip(void **state)
{
	(void)state;
	struct wire_caps in[4];
	wire_caps_default(&in[0]);
	wire_caps_default(&in[1]);
	in[1].max_msg_fds = 1024;
	in[1].max_data_xfer_size = 1u << 30;
	in[1].pgsizes = 0xfffffffffffff000ull;
	in[1].max_dma_maps = INT32_MAX;
	in[1].write_multiple = true;
	in[1].twin_socket = true;
	wire_caps_default(&in[2]);
	in[2].max_msg_fds = 0;
	in[2].max_data_xfer_size = 1;
	in[2].max_dma_maps = 1;
	in[2].pgsizes = 4096u | (2u << 20) | (1u << 30);
	in[2].twin_socket = true;
	in[2].twin_fd_index = 7;
	wire_caps_default(&in[3]);
	in[3].write_multiple = true;
	for (int i = 0; i < 4; i++) {
		char *s = wire_caps_format(&in[i]);
		assert_non_null(s);
		struct wire_caps out;
		memset(&out, 0x5a, sizeof(out));
		assert_int_equal(parse_str(s, &out), 0);
		assert_int_equal(out.max_msg_fds, in[i].max_msg_fds);
		assert_int_equal(out.max_data_xfer_size, in[i].max_data_xfer_size);
		assert_int_equal(out.pgsizes, in[i].pgsizes);
		assert_int_equal(out.max_dma_maps, in[i].max_dma_maps);
		assert_int_equal(out.twin_socket, in[i].twin_socket);
		assert_int_equal(out.write_multiple, in[i].write_multiple);
		assert_int_equal(out.twin_fd_index, in[i].twin_fd_index);
		free(s);
	}
}

/* --- the buffered reader --- */

/* One message: header + body of n bytes (seeded pattern), in buf. */
static size_t frame(uint8_t *buf, uint16_t id, size_t n)
{
	struct vfu_hdr h;
	fill_hdr(&h, id, VFU_CMD_DMA_MAP, (uint32_t)(HDR + n));
	memcpy(buf, &h, HDR);
	pattern(buf + HDR, n, id);
	return HDR + n;
}

/* Takes the next message and checks its id, body and descriptors
 * (inodes, in order; nino 0: none). */
static void expect_reader_msg(struct wire_reader *r, int sock, uint16_t id, size_t n,
			      const ino_t *ino, int nino)
{
	struct wire_msg m;
	assert_int_equal(wire_reader_next(r, sock, &m), 0);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.len, n);
	assert_true(has_pattern(m.payload, m.len, id));
	assert_int_equal(m.nfds, nino);
	for (int i = 0; i < nino; i++)
		assert_int_equal(ino_of(m.fds[i]), ino[i]);
	wire_msg_release(&m);
}

/* A burst of ten messages, each with its own sendmsg, all queued before
 * the first read; messages 2, 3 (two descriptors) and 7 carry
 * descriptors. Each descriptor reaches its own message, and a read stops
 * right after the data of a sendmsg that carried descriptors (the kernel's
 * rule the reader relies on): reads end after messages 2, 3 and 7. */
static void test_reader_burst_fds(void **state)
{
	(void)state;
	int before = count_fds();
	int sv[2];
	sock_pair(sv);
	int f2 = new_file(), f3a = new_file(), f3b = new_file(), f7 = new_file();
	ino_t i2 = ino_of(f2), i3[2] = { ino_of(f3a), ino_of(f3b) }, i7 = ino_of(f7);
	uint8_t buf[256];
	for (uint16_t id = 0; id < 10; id++) {
		size_t len = frame(buf, id, 8 + id);
		if (id == 2)
			raw_send(sv[0], buf, len, &f2, 1);
		else if (id == 3)
			raw_send(sv[0], buf, len, (int[]){ f3a, f3b }, 2);
		else if (id == 7)
			raw_send(sv[0], buf, len, &f7, 1);
		else
			raw_send(sv[0], buf, len, NULL, 0);
	}
	close(f2);
	close(f3a);
	close(f3b);
	close(f7);

	struct wire_reader r;
	assert_int_equal(wire_reader_init(&r, 4096, 4096, VFPM_MAX_MSG_FDS), 0);
	/* read 1: messages 0..2 */
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 0, 8, NULL, 0);
	expect_reader_msg(&r, sv[1], 1, 9, NULL, 0);
	assert_true(wire_reader_whole(&r));
	expect_reader_msg(&r, sv[1], 2, 10, &i2, 1);
	assert_false(wire_reader_whole(&r));
	struct wire_msg m;
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	/* read 2: message 3 alone */
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 3, 11, i3, 2);
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	/* read 3: messages 4..7 */
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	for (uint16_t id = 4; id < 7; id++)
		expect_reader_msg(&r, sv[1], id, 8 + id, NULL, 0);
	expect_reader_msg(&r, sv[1], 7, 15, &i7, 1);
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	/* read 4: the rest */
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 8, 16, NULL, 0);
	expect_reader_msg(&r, sv[1], 9, 17, NULL, 0);
	assert_int_equal(r.reads, 4);
	assert_int_equal(wire_reader_fill(&r, sv[1], MSG_DONTWAIT), -EAGAIN);
	close(sv[0]);
	assert_int_equal(wire_reader_fill(&r, sv[1], 0), -ECONNRESET);
	wire_reader_fini(&r);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

/* Descriptors sent with the second piece of a message (header first, as
 * wire_recv accepts) belong to that message, whether its header was read
 * earlier or in the same read; a message larger than the buffer gets the
 * descriptors of any of its pieces. */
static void test_reader_fds_pieces(void **state)
{
	(void)state;
	int before = count_fds();
	int sv[2];
	sock_pair(sv);
	struct wire_reader r;
	assert_int_equal(wire_reader_init(&r, 4096, 1 << 20, VFPM_MAX_MSG_FDS), 0);
	uint8_t buf[256];

	/* message 1 whole, then 2's header: read; then 2's body with an fd */
	size_t l1 = frame(buf, 1, 20);
	raw_send(sv[0], buf, l1, NULL, 0);
	size_t l2 = frame(buf, 2, 20);
	raw_send(sv[0], buf, HDR, NULL, 0);
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 1, 20, NULL, 0);
	struct wire_msg m;
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	int f = new_file();
	ino_t fi = ino_of(f);
	raw_send(sv[0], buf + HDR, l2 - HDR, &f, 1);
	close(f);
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 2, 20, &fi, 1);

	/* message 3 whole, message 4's header, then 4's body with an fd: one
	 * read takes all; the fd goes to 4 */
	l1 = frame(buf, 3, 20);
	raw_send(sv[0], buf, l1, NULL, 0);
	l2 = frame(buf, 4, 30);
	raw_send(sv[0], buf, HDR, NULL, 0);
	f = new_file();
	fi = ino_of(f);
	raw_send(sv[0], buf + HDR, l2 - HDR, &f, 1);
	close(f);
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 3, 20, NULL, 0);
	expect_reader_msg(&r, sv[1], 4, 30, &fi, 1);

	/* a message of 100000 bytes (the buffer is 4096) whose fd comes with
	 * its second piece, then a small one */
	size_t big = 100000;
	uint8_t *p = malloc(HDR + big);
	assert_non_null(p);
	size_t lb = frame(p, 5, big);
	raw_send(sv[0], p, 1000, NULL, 0);
	f = new_file();
	fi = ino_of(f);
	/* the socket does not hold 100000 bytes at once: a child sends the
	 * rest while next() reads it straight into the payload */
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[1]);
		raw_send(sv[0], p + 1000, lb - 1000, &f, 1);
		l1 = frame(buf, 6, 8);
		raw_send(sv[0], buf, l1, NULL, 0);
		_exit(0);
	}
	close(f);
	expect_reader_msg(&r, sv[1], 5, big, &fi, 1);
	if (!wire_reader_whole(&r))
		assert_true(wire_reader_fill(&r, sv[1], 0) > 0);
	expect_reader_msg(&r, sv[1], 6, 8, NULL, 0);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	free(p);
	wire_reader_fini(&r);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

/* Too many descriptors for one message: it is refused with -EINVAL
 * (header kept, descriptors closed), the next one is read normally;
 * descriptors of messages never taken are closed by fini. */
static void test_reader_too_many_fds(void **state)
{
	(void)state;
	int before = count_fds();
	int sv[2];
	sock_pair(sv);
	struct wire_reader r;
	assert_int_equal(wire_reader_init(&r, 4096, 4096, 2), 0);
	uint8_t buf[256];
	int fds[3] = { new_file(), new_file(), new_file() };
	size_t l = frame(buf, 1, 8);
	raw_send(sv[0], buf, l, fds, 3);
	l = frame(buf, 2, 8);
	raw_send(sv[0], buf, l, NULL, 0);
	l = frame(buf, 3, 8);
	raw_send(sv[0], buf, l, fds, 1);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	struct wire_msg m;
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EINVAL);
	assert_int_equal(m.hdr.msg_id, 1);
	assert_int_equal(m.nfds, 0);
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	assert_true(wire_reader_fill(&r, sv[1], MSG_DONTWAIT) > 0);
	expect_reader_msg(&r, sv[1], 2, 8, NULL, 0);
	/* message 3 and its fd stay buffered: fini closes it */
	wire_reader_fini(&r);
	close(sv[0]);
	close(sv[1]);
	assert_int_equal(count_fds(), before);
}

/* A bad size fails the stream (-EMSGSIZE); EOF inside a message is -EPIPE. */
static void test_reader_bad_size_and_eof(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	struct wire_reader r;
	assert_int_equal(wire_reader_init(&r, 4096, 4096, 0), 0);
	struct vfu_hdr h;
	fill_hdr(&h, 1, VFU_CMD_VERSION, 8);
	raw_send(sv[0], &h, HDR, NULL, 0);
	assert_int_equal(wire_reader_fill(&r, sv[1], 0), HDR);
	assert_false(wire_reader_whole(&r));
	struct wire_msg m;
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EMSGSIZE);
	wire_reader_fini(&r);
	assert_int_equal(wire_reader_init(&r, 4096, 4096, 0), 0);
	fill_hdr(&h, 2, VFU_CMD_VERSION, HDR + 100);
	raw_send(sv[0], &h, HDR, NULL, 0);
	close(sv[0]);
	wire_reader_fini(&r);
	assert_int_equal(wire_reader_init(&r, 4096, 4096, 0), 0);
	assert_int_equal(wire_reader_fill(&r, sv[1], 0), HDR);
	assert_int_equal(wire_reader_next(&r, sv[1], &m), -EAGAIN);
	assert_int_equal(wire_reader_fill(&r, sv[1], 0), -EPIPE);
	wire_reader_fini(&r);
	close(sv[1]);
}

/* wire_send_bytes: two framed messages in one call read back as two. */
static void test_send_bytes(void **state)
{
	(void)state;
	int sv[2];
	sock_pair(sv);
	uint8_t buf[512];
	size_t l = frame(buf, 1, 10);
	l += frame(buf + l, 2, 20);
	assert_int_equal(wire_send_bytes(sv[0], buf, l), 0);
	struct wire_msg m;
	assert_int_equal(wire_recv(sv[1], &m, 4096, 0), 0);
	assert_int_equal(m.hdr.msg_id, 1);
	wire_msg_release(&m);
	assert_int_equal(wire_recv(sv[1], &m, 4096, 0), 0);
	assert_int_equal(m.hdr.msg_id, 2);
	assert_true(has_pattern(m.payload, m.len, 2));
	wire_msg_release(&m);
	close(sv[0]);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip_payload),
		cmocka_unit_test(test_reader_burst_fds),
		cmocka_unit_test(test_reader_fds_pieces),
		cmocka_unit_test(test_reader_too_many_fds),
		cmocka_unit_test(test_reader_bad_size_and_eof),
		cmocka_unit_test(test_send_bytes),
		cmocka_unit_test(test_roundtrip_empty),
		cmocka_unit_test(test_send2_pieces),
		cmocka_unit_test(test_fds_0),
		cmocka_unit_test(test_fds_1),
		cmocka_unit_test(test_fds_3),
		cmocka_unit_test(test_fds_max),
		cmocka_unit_test(test_bytewise_from_thread),
		cmocka_unit_test(test_fds_with_later_pieces),
		cmocka_unit_test(test_too_many_fds),
		cmocka_unit_test(test_too_many_fds_split),
		cmocka_unit_test(test_fds_beyond_array),
		cmocka_unit_test(test_size_too_small),
		cmocka_unit_test(test_size_too_big),
		cmocka_unit_test(test_eof_before_header),
		cmocka_unit_test(test_eof_mid_header),
		cmocka_unit_test(test_eof_mid_body),
		cmocka_unit_test(test_send_closed_peer),
		cmocka_unit_test(test_send_bad_args),
		cmocka_unit_test(test_large_nonblocking),
		cmocka_unit_test(test_nonblocking_recv),
		cmocka_unit_test(test_eintr_recv),
		cmocka_unit_test(test_eintr_send),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_send_timeout_bounds_the_whole_message),
		cmocka_unit_test(test_take_fd),
		cmocka_unit_test(test_caps_default),
		cmocka_unit_test(test_caps_empty),
		cmocka_unit_test(test_caps_libvfio_user_reply),
		cmocka_unit_test(test_caps_qemu_offer),
		cmocka_unit_test(test_caps_missing_nul),
		cmocka_unit_test(test_caps_not_object),
		cmocka_unit_test(test_caps_quotes_in_strings),
		cmocka_unit_test(test_caps_trailing),
		cmocka_unit_test(test_caps_wrong_types),
		cmocka_unit_test(test_caps_ranges),
		cmocka_unit_test(test_caps_twin_socket),
		cmocka_unit_test(test_caps_unknown_keys),
		cmocka_unit_test(test_caps_limits_of_json),
		cmocka_unit_test(test_caps_format),
		cmocka_unit_test(test_caps_roundtrip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
