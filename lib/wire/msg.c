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

/* Sends the left bytes of iov (and mh's descriptors, with the first ones)
 * whole. It never blocks in the kernel: wait_writable bounds the wait by
 * the socket's SO_SNDTIMEO for the whole message. */
static int sendmsg_all(int sock, struct msghdr *mh, struct iovec *iov, size_t niov, size_t left)
{
	int64_t deadline = -1;   /* set by wait_writable once the socket is full */
	while (left) {
		mh->msg_iov = iov;
		mh->msg_iovlen = niov;
		ssize_t n = sendmsg(sock, mh, MSG_NOSIGNAL | MSG_DONTWAIT);
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
		mh->msg_control = NULL;
		mh->msg_controllen = 0;
		left -= (size_t)n;
		iov_advance(&iov, &niov, (size_t)n);
	}
	return 0;
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

	return sendmsg_all(sock, &mh, vec, niov, hdr->size);
}

int wire_send(int sock, struct vfu_hdr *hdr, const void *payload, size_t len,
	      const int *fds, int nfds)
{
	return wire_send2(sock, hdr, payload, len, NULL, 0, fds, nfds);
}

/* --- the buffered reader --- */

int wire_reader_init(struct wire_reader *r, size_t cap, size_t max_size, int max_fds)
{
	memset(r, 0, sizeof(*r));
	if (cap < 4096)
		cap = 4096;
	r->buf = malloc(cap);
	if (!r->buf)
		return -ENOMEM;
	r->cap = cap;
	r->max_size = max_size;
	r->max_fds = max_fds < 0 ? 0 : max_fds > VFPM_MAX_MSG_FDS ? VFPM_MAX_MSG_FDS : max_fds;
	return 0;
}

static void fdset_close(struct wire_rx_fdset *set)
{
	for (int i = 0; i < set->n; i++)
		close(set->fds[i]);
	set->n = 0;
}

void wire_reader_fini(struct wire_reader *r)
{
	for (int i = 0; i < r->nsets; i++)
		fdset_close(&r->sets[i]);
	r->nsets = 0;
	free(r->buf);
	r->buf = NULL;
	r->cap = r->off = r->len = 0;
}

static uint32_t size_at(const struct wire_reader *r, size_t pos)
{
	struct vfu_hdr h;
	memcpy(&h, r->buf + pos, HDR_SIZE);
	return h.size;
}

bool wire_reader_whole(const struct wire_reader *r)
{
	size_t avail = r->len - r->off;
	if (avail < HDR_SIZE)
		return false;
	uint32_t size = size_at(r, r->off);
	return size >= HDR_SIZE && size <= r->max_size && size <= avail;
}

/* The last message with a byte in buf[off..len): the owner of the
 * descriptors a read just brought (see wire.h). */
static size_t last_start(const struct wire_reader *r)
{
	size_t p = r->off, last = r->off;
	while (p < r->len) {
		last = p;
		if (r->len - p < HDR_SIZE)
			break;
		uint32_t size = size_at(r, p);
		if (size < HDR_SIZE)
			break;   /* next() fails the stream at it */
		p += size;
	}
	return last;
}

/* Adds the descriptors of one read to the set of their owner. */
static void add_fds(struct wire_reader *r, size_t owner, struct msghdr *mh)
{
	struct wire_rx_fdset *set = NULL;
	for (int i = 0; i < r->nsets; i++)
		if (r->sets[i].owner == owner)
			set = &r->sets[i];
	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
		    c->cmsg_len < CMSG_LEN(0))
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		const unsigned char *data = CMSG_DATA(c);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, data + i * sizeof(int), sizeof(fd));
			if (!set && r->nsets < 2) {
				set = &r->sets[r->nsets++];
				*set = (struct wire_rx_fdset){ .owner = owner };
			}
			/* Only the message in progress before the read and
			 * the last one can have descriptors pending (every
			 * whole message is taken before the next read), so a
			 * third set cannot happen; should it, the
			 * descriptors are closed and the stream fails. */
			if (set && !set->bad && set->n < r->max_fds) {
				set->fds[set->n++] = fd;
			} else {
				close(fd);
				if (set)
					set->bad = true;
				else
					r->broken = true;
			}
		}
	}
	if ((mh->msg_flags & MSG_CTRUNC) && set)
		set->bad = true;
}

int wire_reader_fill(struct wire_reader *r, int sock, int flags)
{
	if (r->off) {
		/* keep the unread bytes at the front (a partial message is
		 * at most cap bytes: larger ones are read by next) */
		size_t n = r->len - r->off;
		memmove(r->buf, r->buf + r->off, n);
		for (int i = 0; i < r->nsets; i++)
			r->sets[i].owner -= r->off;
		r->off = 0;
		r->len = n;
	}
	if (r->len == r->cap)
		return -ENOBUFS;   /* next() takes such a message: not reached */
	union cmsg_space cb;
	struct iovec iov = { .iov_base = r->buf + r->len, .iov_len = r->cap - r->len };
	for (;;) {
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
				     .msg_controllen = sizeof(cb.buf) };
		ssize_t n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC | flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		}
		r->reads++;
		if (n > 0)
			r->len += (size_t)n;
		if (mh.msg_controllen)
			add_fds(r, last_start(r), &mh);
		if (n == 0)
			return r->len > r->off ? -EPIPE : -ECONNRESET;
		return (int)(n > INT32_MAX ? INT32_MAX : n);
	}
}

/* The descriptors of the message at pos go to m; st->bad when they were
 * too many or truncated. */
static void take_fds(struct wire_reader *r, size_t pos, struct wire_msg *m, struct rx_fds *st)
{
	for (int i = 0; i < r->nsets; i++) {
		struct wire_rx_fdset *set = &r->sets[i];
		if (set->owner != pos)
			continue;
		for (int k = 0; k < set->n; k++) {
			if (m->nfds < st->max_fds)
				m->fds[m->nfds++] = set->fds[k];
			else
				close(set->fds[k]), st->bad = true;
		}
		st->bad |= set->bad;
		r->sets[i] = r->sets[--r->nsets];
		return;
	}
}

int wire_reader_next(struct wire_reader *r, int sock, struct wire_msg *m)
{
	msg_clear(m);
	if (r->broken)
		return -EPROTO;
	size_t avail = r->len - r->off;
	if (avail < HDR_SIZE)
		return -EAGAIN;
	memcpy(&m->hdr, r->buf + r->off, HDR_SIZE);
	uint32_t size = m->hdr.size;
	if (size < HDR_SIZE || size > r->max_size)
		return -EMSGSIZE;
	if (size > avail && size <= r->cap)
		return -EAGAIN;
	struct rx_fds st = { .m = m, .max_fds = r->max_fds, .bad = false };
	size_t pos = r->off;
	take_fds(r, pos, m, &st);
	size_t len = size - HDR_SIZE;
	int rc = 0;
	if (len)
		m->payload = malloc(len);
	if (size <= avail) {
		if (m->payload)
			memcpy(m->payload, r->buf + pos + HDR_SIZE, len);
		r->off += size;
	} else {
		/* larger than the buffer: the rest straight into the
		 * payload (or drained when it could not be allocated) */
		size_t have = avail - HDR_SIZE;
		if (m->payload)
			memcpy(m->payload, r->buf + pos + HDR_SIZE, have);
		r->off = r->len = 0;
		rc = read_full(sock, m->payload ? m->payload + have : NULL, len - have, true, &st);
	}
	if (!rc && len && !m->payload)
		rc = -ENOMEM;
	if (!rc && st.bad)
		rc = -EINVAL;
	if (rc) {
		free(m->payload);
		m->payload = NULL;
		close_held_fds(m);
		return rc;
	}
	m->len = len;
	return 0;
}

int wire_send_bytes(int sock, const void *buf, size_t len)
{
	if (len && !buf)
		return -EINVAL;
	/* sendmsg does not write through iov_base; the cast only drops const */
	struct iovec iov = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
	struct msghdr mh = { 0 };
	return sendmsg_all(sock, &mh, &iov, 1, len);
}
