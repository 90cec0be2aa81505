/* vfio-user framing: whole messages and their SCM_RIGHTS descriptors over
 * an AF_UNIX stream socket. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "wire.h"

#define HDR_SIZE sizeof(struct vfu_hdr)

/* Room for the most descriptors we ever take plus one SCM_CREDENTIALS, so a
 * caller that enabled SO_PASSCRED does not see spurious truncation. */
union cmsg_space {
	struct cmsghdr align;
	char buf[CMSG_SPACE(VFPM_MAX_MSG_FDS * sizeof(int)) +
		 CMSG_SPACE(sizeof(struct ucred))];
};

/* Descriptor collection state for one message being received. */
struct rx_fds {
	struct wire_msg *m;
	int max_fds;
	bool bad;   /* truncated or too many: everything gets closed */
};

static void close_held_fds(struct wire_msg *m)
{
	for (int i = 0; i < m->nfds; i++) {
		if (m->fds[i] >= 0)
			close(m->fds[i]);
		m->fds[i] = -1;
	}
	m->nfds = 0;
}

static void take_cmsg_fds(struct msghdr *mh, struct rx_fds *st)
{
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		/* Anything else (credentials, security labels) carries no
		 * resources to release: skip it. */
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		if (c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int fd;
			/* CMSG_DATA need not be int-aligned on every ABI. */
			memcpy(&fd, data + i * sizeof(int), sizeof(fd));
			if (!st->bad && st->m->nfds < st->max_fds) {
				st->m->fds[st->m->nfds++] = fd;
			} else {
				st->bad = true;
				close(fd);
			}
		}
	}
	/* The kernel closed the descriptors that did not fit: the set is
	 * incomplete, so the message is refused like one with too many. */
	if (mh->msg_flags & MSG_CTRUNC)
		st->bad = true;
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Called on EAGAIN in the middle of a message being read, which must not be
 * abandoned half-read. A non-blocking socket just ran dry: wait for it. A
 * blocking one timed out (SO_RCVTIMEO): the caller asked for a bound, so
 * give up with -ETIMEDOUT. (Sends wait in wait_writable.) */
static int wait_ready(int sock, short events)
{
	int fl = fcntl(sock, F_GETFL);
	if (fl < 0)
		return -errno;
	if (!(fl & O_NONBLOCK))
		return -ETIMEDOUT;
	struct pollfd p = { .fd = sock, .events = events };
	for (;;) {
		int r = poll(&p, 1, -1);
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* The socket is full in the middle of a message. A non-blocking socket, or
 * a blocking one without SO_SNDTIMEO, is waited on until it takes more. A
 * blocking one with SO_SNDTIMEO gets that long in all, counted from the
 * first time it was full (*deadline_ms, -1 until then): a blocking sendmsg
 * would restart its timeout at every bit of progress, so a reader taking a
 * little at a time could hold the sender without end. Returns 0 (try
 * again) or -ETIMEDOUT. */
static int wait_writable(int sock, int64_t *deadline_ms)
{
	int fl = fcntl(sock, F_GETFL);
	if (fl < 0)
		return -errno;
	struct timeval tv = { 0, 0 };
	socklen_t tl = sizeof(tv);
	if (!(fl & O_NONBLOCK) && getsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, &tl) < 0)
		return -errno;
	bool bounded = !(fl & O_NONBLOCK) && (tv.tv_sec || tv.tv_usec);
	if (bounded && *deadline_ms < 0)
		*deadline_ms = now_ms() + (int64_t)tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000;
	struct pollfd p = { .fd = sock, .events = POLLOUT };
	for (;;) {
		int left = -1;
		if (bounded) {
			int64_t l = *deadline_ms - now_ms();
			if (l <= 0)
				return -ETIMEDOUT;
			left = l > INT32_MAX ? INT32_MAX : (int)l;
		}
		int r = poll(&p, 1, left);
		if (r > 0)
			return 0;   /* writable, or an error sendmsg will report */
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Reads exactly len bytes into buf (or discards them when buf is NULL),
 * collecting descriptors from every piece. started says whether some of the
 * message was already consumed, which decides how EOF and EAGAIN are
 * reported. */
static int read_full(int sock, void *buf, size_t len, bool started, struct rx_fds *st)
{
	unsigned char scratch[4096];
	size_t got = 0;

	while (got < len) {
		union cmsg_space cb;
		struct iovec iov;
		if (buf) {
			iov.iov_base = (unsigned char *)buf + got;
			iov.iov_len = len - got;
		} else {
			iov.iov_base = scratch;
			iov.iov_len = len - got < sizeof(scratch) ? len - got : sizeof(scratch);
		}
		struct msghdr mh = {
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cb.buf,
			.msg_controllen = sizeof(cb.buf),
		};
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			if (err == EAGAIN || err == EWOULDBLOCK) {
				/* Nothing of this message yet: let the caller's
				 * event loop come back later. */
				if (!started && got == 0)
					return -EAGAIN;
				int rc = wait_ready(sock, POLLIN);
				if (rc)
					return rc;
				continue;
			}
			return -err;
		}
		take_cmsg_fds(&mh, st);
		if (n == 0)
			return (started || got) ? -EPIPE : -ECONNRESET;
		got += (size_t)n;
	}
	return 0;
}

static void msg_clear(struct wire_msg *m)
{
	memset(&m->hdr, 0, sizeof(m->hdr));
	m->payload = NULL;
	m->len = 0;
	for (int i = 0; i < VFPM_MAX_MSG_FDS; i++)
		m->fds[i] = -1;
	m->nfds = 0;
}

int wire_recv(int sock, struct wire_msg *m, size_t max_size, int max_fds)
{
	if (!m)
		return -EINVAL;
	msg_clear(m);
	/* m->fds bounds what can be held whatever the caller asks for. */
	if (max_fds < 0)
		max_fds = 0;
	if (max_fds > VFPM_MAX_MSG_FDS)
		max_fds = VFPM_MAX_MSG_FDS;
	struct rx_fds st = { .m = m, .max_fds = max_fds, .bad = false };

	int rc = read_full(sock, &m->hdr, HDR_SIZE, false, &st);
	if (rc)
		goto fail;
	if (m->hdr.size < HDR_SIZE || m->hdr.size > max_size) {
		rc = -EMSGSIZE;
		goto fail;
	}
	size_t len = m->hdr.size - HDR_SIZE;
	if (len) {
		m->payload = malloc(len);
		/* Without a buffer the body is still drained, so the stream
		 * stays in sync and the caller may answer with an error. */
		rc = read_full(sock, m->payload, len, true, &st);
		if (!rc && !m->payload)
			rc = -ENOMEM;
		if (rc)
			goto fail;
		m->len = len;
	}
	if (st.bad) {
		rc = -EINVAL;
		goto fail;
	}
	return 0;

fail:
	/* On every error m owns nothing; hdr is kept for the caller's answer. */
	free(m->payload);
	m->payload = NULL;
	m->len = 0;
	close_held_fds(m);
	return rc;
}

void wire_msg_release(struct wire_msg *m)
{
	if (!m)
		return;
	free(m->payload);
	m->payload = NULL;
	m->len = 0;
	close_held_fds(m);
}

int wire_msg_take_fd(struct wire_msg *m, int i)
{
	if (!m || i < 0 || i >= m->nfds || i >= VFPM_MAX_MSG_FDS)
		return -1;
	int fd = m->fds[i];
	/* Keep nfds: indices of the other descriptors must not move. */
	m->fds[i] = -1;
	return fd;
}

/* Skips n sent bytes in the iovec array. */
static void iov_advance(struct iovec **iov, size_t *niov, size_t n)
{
	while (n && *niov) {
		if (n < (*iov)->iov_len) {
			(*iov)->iov_base = (unsigned char *)(*iov)->iov_base + n;
			(*iov)->iov_len -= n;
			return;
		}
		n -= (*iov)->iov_len;
		(*iov)++;
		(*niov)--;
	}
}

int wire_send2(int sock, struct vfu_hdr *hdr, const void *p1, size_t l1,
	       const void *p2, size_t l2, const int *fds, int nfds)
{
	if (!hdr || nfds < 0 || nfds > VFPM_MAX_MSG_FDS || (nfds && !fds) ||
	    (l1 && !p1) || (l2 && !p2))
		return -EINVAL;
	if (l1 > UINT32_MAX - HDR_SIZE || l2 > UINT32_MAX - HDR_SIZE - l1)
		return -EMSGSIZE;
	hdr->size = (uint32_t)(HDR_SIZE + l1 + l2);

	struct iovec vec[3];
	size_t niov = 0;
	vec[niov++] = (struct iovec){ .iov_base = hdr, .iov_len = HDR_SIZE };
	/* sendmsg does not write through iov_base; the casts only drop const. */
	if (l1)
		vec[niov++] = (struct iovec){ .iov_base = (void *)(uintptr_t)p1, .iov_len = l1 };
	if (l2)
		vec[niov++] = (struct iovec){ .iov_base = (void *)(uintptr_t)p2, .iov_len = l2 };

	union cmsg_space cb;
	struct msghdr mh = { .msg_iov = vec, .msg_iovlen = niov };
	if (nfds) {
		memset(&cb, 0, sizeof(cb));
		mh.msg_control = cb.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}

	struct iovec *iov = vec;
	size_t left = hdr->size;
	int64_t deadline = -1;   /* set by wait_writable once the socket is full */
	while (left) {
		mh.msg_iov = iov;
		mh.msg_iovlen = niov;
		/* never blocks in the kernel: wait_writable bounds the wait */
		ssize_t n = sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int err = errno;
			if (err == EINTR)
				continue;
			if (err == EAGAIN || err == EWOULDBLOCK) {
				int rc = wait_writable(sock, &deadline);
				if (rc)
					return rc;
				continue;
			}
			return -err;
		}
		if (n == 0)
			return -EIO;   /* no progress and no error: do not spin */
		/* The descriptors went with the first bytes; never resend. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		left -= (size_t)n;
		iov_advance(&iov, &niov, (size_t)n);
	}
	return 0;
}

int wire_send(int sock, struct vfu_hdr *hdr, const void *payload, size_t len,
	      const int *fds, int nfds)
{
	return wire_send2(sock, hdr, payload, len, NULL, 0, fds, nfds);
}
