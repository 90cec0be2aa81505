/* libFuzzer target: the vfio-user message dispatcher (session_dispatch).
 *
 * Input layout (see make_corpus.py, which writes the seeds):
 *
 *   u32 control      bit 0: the session starts as if VERSION was done
 *                    bit 1: ... and with write_multiple negotiated
 *                    bits 2..31: two bits per message for the first 15
 *                    messages, the descriptors the harness attaches:
 *                    0 none, 1 an eventfd, 2 a memfd (guest memory),
 *                    3 four eventfds
 *   then messages    a 16-byte vfu_hdr followed by hdr.size - 16 payload
 *                    bytes, the length clamped to what is left of the input
 *
 * Each input is one client connection: session_init, the messages through
 * session_dispatch, then session_fini (which disconnects the device: DMA
 * maps, interrupt eventfds and device state do not carry over). The demo
 * device (with its runtime-PM work queue) and the socketpair are created
 * once. Whatever the server sends
 * back is drained from the peer end after every message, descriptors
 * included. A message that rings a doorbell is followed by a short wait
 * for the device's worker (settle_device).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/core.h"
#include "models.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Guest memory handed over with DMA_MAP; maps must lie inside it (see
 * pick_fds). Sparse: only what the device writes is ever allocated. */
#define GUEST_MEM_SIZE (16u << 20)
/* Replies up to a 1 MiB REGION_READ must fit the socket buffer, since the
 * peer end is drained only between messages. */
#define WANT_SNDBUF (4u << 20)

enum { FD_NONE = 0, FD_EVENTFD = 1, FD_MEMFD = 2, FD_EVENTFD4 = 3 };

static struct vfpm_device *g_dev;
static struct rpm_wq *g_wq;
static int g_sv[2] = { -1, -1 };   /* [0] server end, [1] peer end */
static int g_memfd = -1;
static int g_efd = -1;

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz_dispatch: %s: %s\n", what, strerror(err));
	abort();
}

/* Fallback when the send buffer cannot be made big enough: a thread keeps
 * the peer end empty so the server never blocks in a send. */
static void drain_peer(void);

static void *drain_thread(void *arg)
{
	(void)arg;
	for (;;) {
		struct pollfd p = { .fd = g_sv[1], .events = POLLIN };
		if (poll(&p, 1, -1) > 0)
			drain_peer();
	}
	return NULL;
}

static void setup_once(void)
{
	struct vfpm_opts opts = { 0 };
	/* As vfpmd runs it: idle suspends on a work queue, so runtime suspend
	 * and resume happen between and during inputs. */
	int rc = rpm_wq_create(&g_wq);
	if (rc)
		die("rpm_wq_create", -rc);
	/* Malformed input is the norm here: no log line per rejected message
	 * unless asked for. */
	rc = device_create(&vfpm_model_demo, "fuzz", &opts, g_wq,
			   getenv("FUZZ_VERBOSE") ? CORE_VERBOSITY_MAX : -1, &g_dev);
	if (rc)
		die("device_create", -rc);
	/* The PCI transition delays are plain sleeps (up to 100 ms for
	 * D3cold); they would only slow the fuzzer down. */
	rc = pm_set(g_dev, "pm_delays", "none");
	if (rc)
		die("pm_set pm_delays", -rc);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g_sv) < 0)
		die("socketpair", errno);
	int want = (int)WANT_SNDBUF, got = 0;
	socklen_t gl = sizeof(got);
	if (setsockopt(g_sv[0], SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
		(void)setsockopt(g_sv[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
	if (getsockopt(g_sv[0], SOL_SOCKET, SO_SNDBUF, &got, &gl) < 0 || got < (int)WANT_SNDBUF) {
		pthread_t t;
		if (pthread_create(&t, NULL, drain_thread, NULL))
			die("pthread_create", EAGAIN);
		pthread_detach(t);
	}

	g_memfd = memfd_create("fuzz-guest", MFD_CLOEXEC);
	if (g_memfd < 0)
		die("memfd_create", errno);
	if (ftruncate(g_memfd, GUEST_MEM_SIZE) < 0)
		die("ftruncate", errno);
	g_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g_efd < 0)
		die("eventfd", errno);
}

/* Reads and discards everything pending on the peer end, closing any
 * descriptors that came with it. */
static void drain_peer(void)
{
	uint8_t buf[1 << 15];
	for (;;) {
		union {
			struct cmsghdr align;
			char b[CMSG_SPACE(64 * sizeof(int))];
		} cb;
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
				     .msg_controllen = sizeof(cb.b) };
		ssize_t n = recvmsg(g_sv[1], &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
				continue;
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;
				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
				close(fd);
			}
		}
	}
}

static int dup_or_die(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (d < 0)
		die("dup", errno);
	return d;
}

/* Fills m->fds per the control bits. The guest memory memfd goes only with
 * a DMA_MAP that lies inside it: a client that maps past the end of its own
 * file makes the server fault on access (SIGBUS), which is a property of
 * shared memory and not something the dispatcher can be fuzzed into
 * avoiding. Other maps get an eventfd instead, which mmap refuses. */
static void pick_fds(struct wire_msg *m, unsigned kind)
{
	m->nfds = 0;
	switch (kind) {
	case FD_NONE:
		break;
	case FD_EVENTFD:
		m->fds[m->nfds++] = dup_or_die(g_efd);
		break;
	case FD_MEMFD: {
		bool fits = false;
		if (m->hdr.cmd == VFU_CMD_DMA_MAP && m->len >= sizeof(struct vfu_dma_map)) {
			struct vfu_dma_map dm;
			memcpy(&dm, m->payload, sizeof(dm));
			fits = dm.offset <= GUEST_MEM_SIZE && dm.size <= GUEST_MEM_SIZE - dm.offset;
		} else if (m->hdr.cmd != VFU_CMD_DMA_MAP) {
			fits = true;   /* never mmap'ed by anything else */
		}
		m->fds[m->nfds++] = dup_or_die(fits ? g_memfd : g_efd);
		break;
	}
	case FD_EVENTFD4:
		for (int i = 0; i < 4; i++)
			m->fds[m->nfds++] = dup_or_die(g_efd);
		break;
	}
}

/* A doorbell rung through an ioeventfd wakes a device worker thread; it is
 * given a bounded chance to run so that device-initiated paths (DMA through
 * the maps or by message, interrupts) are reached too. Only messages that
 * leave a doorbell pending pay for the wait. */
static void settle_device(void)
{
	for (unsigned i = 0; i < g_dev->nioeventfds; i++) {
		struct pollfd p = { .fd = g_dev->ioeventfds[i].fd, .events = POLLIN };
		if (poll(&p, 1, 0) != 1)
			continue;
		for (int t = 0; t < 20 && poll(&p, 1, 0) == 1; t++)
			usleep(100);
		usleep(50);   /* the job itself */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_dev)
		setup_once();
	if (size < 4)
		return 0;
	uint32_t control;
	memcpy(&control, data, 4);
	data += 4;
	size -= 4;

	struct core_session s;
	session_init(&s, g_dev, g_sv[0]);
	if (control & 1) {
		s.version_done = true;
		s.peer.write_multiple = (control & 2) != 0;
	}

	for (unsigned idx = 0; size >= sizeof(struct vfu_hdr); idx++) {
		struct wire_msg m;
		memset(&m, 0, sizeof(m));
		for (int i = 0; i < VFPM_MAX_MSG_FDS; i++)
			m.fds[i] = -1;
		memcpy(&m.hdr, data, sizeof(m.hdr));
		data += sizeof(m.hdr);
		size -= sizeof(m.hdr);

		size_t len = m.hdr.size >= sizeof(m.hdr) ? m.hdr.size - sizeof(m.hdr) : 0;
		if (len > size)
			len = size;
		if (len > VFPM_MAX_MSG_SIZE - sizeof(m.hdr))
			len = VFPM_MAX_MSG_SIZE - sizeof(m.hdr);
		/* As wire_recv delivers it: the size field matches the body. */
		m.hdr.size = (uint32_t)(sizeof(m.hdr) + len);
		if (len) {
			m.payload = malloc(len);
			if (!m.payload)
				die("malloc", ENOMEM);
			memcpy(m.payload, data, len);
			m.len = len;
			data += len;
			size -= len;
		}
		pick_fds(&m, idx < 15 ? (control >> (2 + 2 * idx)) & 3 : FD_NONE);

		int rc = session_dispatch(&s, &m);
		settle_device();
		drain_peer();
		if (rc)
			break;   /* the server would close the connection */
	}

	session_fini(&s);
	drain_peer();
	return 0;
}
