/* The channel: the sending side of a device's session and its
 * server-to-client requests in flight (channel.h). */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core.h"

/* One outstanding request, on the stack of the thread that waits for it.
 * Linked in c->waiters while outstanding; done once it left the table. */
struct chan_waiter {
	struct chan_waiter *next;
	uint16_t id;
	uint16_t cmd;
	pthread_cond_t cv;     /* waits with c->mu */
	bool done;
	int rc;                /* done without a reply: why */
	bool got;              /* done with a reply */
	struct wire_msg reply;
};

void channel_init(struct channel *c, struct vfpm_device *dev)
{
	memset(c, 0, sizeof(*c));
	c->dev = dev;
	c->fd = -1;
	c->max_xfer = VFU_DEFAULT_MAX_DATA_XFER;
	pthread_mutex_init(&c->send_lock, NULL);
	pthread_mutex_init(&c->mu, NULL);
}

void channel_destroy(struct channel *c)
{
	pthread_mutex_destroy(&c->send_lock);
	pthread_mutex_destroy(&c->mu);
}

/* --- the table (c->mu held) --- */

static void unlink_waiter(struct channel *c, struct chan_waiter *w)
{
	for (struct chan_waiter **p = &c->waiters; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			w->next = NULL;
			return;
		}
	}
}

static struct chan_waiter *find_waiter(struct channel *c, uint16_t id)
{
	for (struct chan_waiter *w = c->waiters; w; w = w->next)
		if (w->id == id)
			return w;
	return NULL;
}

static int find_abandoned(const struct channel *c, uint16_t id)
{
	for (unsigned i = 0; i < c->nabandoned; i++)
		if (c->abandoned[i] == id)
			return (int)i;
	return -1;
}

/* A request's reply may still come: keep its id out of reuse. When the
 * list is full, the slots are overwritten in turn. */
static void abandon(struct channel *c, uint16_t id)
{
	if (c->nabandoned < CHANNEL_ABANDONED) {
		c->abandoned[c->nabandoned++] = id;
		return;
	}
	c->abandoned[c->abandoned_next] = id;
	c->abandoned_next = (c->abandoned_next + 1) % CHANNEL_ABANDONED;
}

static uint16_t alloc_id(struct channel *c)
{
	/* at most (waiters + CHANNEL_ABANDONED) ids are taken: this ends */
	for (;;) {
		uint16_t id = c->next_id++;
		if (!find_waiter(c, id) && find_abandoned(c, id) < 0)
			return id;
	}
}

/* Ends w without a reply. */
static void finish(struct channel *c, struct chan_waiter *w, int rc)
{
	unlink_waiter(c, w);
	w->rc = rc;
	w->done = true;
	pthread_cond_signal(&w->cv);
}

static void finish_all(struct channel *c, int rc, bool reply_may_come)
{
	while (c->waiters) {
		struct chan_waiter *w = c->waiters;
		if (reply_may_come)
			abandon(c, w->id);
		finish(c, w, rc);
	}
}

/* --- session side --- */

int channel_attach(struct channel *c, int fd)
{
	mutex_lock(&c->send_lock);
	bool busy = c->fd >= 0;
	if (!busy)
		c->fd = fd;
	mutex_unlock(&c->send_lock);
	if (busy)
		return -EBUSY;
	mutex_lock(&c->mu);
	c->connected = true;
	c->max_xfer = VFU_DEFAULT_MAX_DATA_XFER;
	c->has_reader = false;
	c->nabandoned = 0;
	c->abandoned_next = 0;
	mutex_unlock(&c->mu);
	return 0;
}

void channel_hangup(struct channel *c)
{
	mutex_lock(&c->mu);
	c->connected = false;
	finish_all(c, -ENOTCONN, false);
	mutex_unlock(&c->mu);
}

void channel_detach(struct channel *c)
{
	channel_hangup(c);
	mutex_lock(&c->mu);
	c->has_reader = false;
	c->nabandoned = 0;
	mutex_unlock(&c->mu);
	/* waits for a send in progress (bounded by the send deadline) */
	mutex_lock(&c->send_lock);
	c->fd = -1;
	mutex_unlock(&c->send_lock);
}

void channel_set_reader(struct channel *c)
{
	mutex_lock(&c->mu);
	c->reader = pthread_self();
	c->has_reader = true;
	mutex_unlock(&c->mu);
}

void channel_clear_reader(struct channel *c)
{
	mutex_lock(&c->mu);
	c->has_reader = false;
	mutex_unlock(&c->mu);
}

void channel_set_max_xfer(struct channel *c, uint32_t n)
{
	/* a DMA_READ's reply is a message this server receives */
	if (n > VFPM_MAX_DATA_XFER)
		n = VFPM_MAX_DATA_XFER;
	if (!n)
		return;
	mutex_lock(&c->mu);
	c->max_xfer = n;
	mutex_unlock(&c->mu);
}

int channel_send(struct channel *c, struct vfu_hdr *h, const void *p1, size_t l1,
		 const void *p2, size_t l2, const int *fds, int nfds)
{
	int rc = -ENOTCONN;
	mutex_lock(&c->send_lock);
	if (c->fd >= 0) {
		rc = wire_send2(c->fd, h, p1, l1, p2, l2, fds, nfds);
		if (rc == -ETIMEDOUT) {
			/* the client stopped reading; part of a message may be
			 * out, so the stream is lost: end the session (its
			 * thread sees EOF) */
			DLOG(c->dev, VFPM_LOG_WARN, "client stopped reading (send timed out): closing");
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	mutex_unlock(&c->send_lock);
	return rc;
}

int channel_send_bytes(struct channel *c, const void *buf, size_t len)
{
	int rc = -ENOTCONN;
	mutex_lock(&c->send_lock);
	if (c->fd >= 0) {
		rc = wire_send_bytes(c->fd, buf, len);
		if (rc == -ETIMEDOUT) {
			DLOG(c->dev, VFPM_LOG_WARN, "client stopped reading (send timed out): closing");
			shutdown(c->fd, SHUT_RDWR);
		}
	}
	mutex_unlock(&c->send_lock);
	return rc;
}

void channel_deliver(struct channel *c, struct wire_msg *m)
{
	enum { TAKEN, LATE, UNKNOWN } what = UNKNOWN;
	uint16_t id = m->hdr.msg_id;
	mutex_lock(&c->mu);
	struct chan_waiter *w = find_waiter(c, id);
	int a;
	if (w) {
		unlink_waiter(c, w);
		w->reply = *m;
		memset(m, 0, sizeof(*m));
		w->got = true;
		w->done = true;
		pthread_cond_signal(&w->cv);
		what = TAKEN;
	} else if ((a = find_abandoned(c, id)) >= 0) {
		c->abandoned[a] = c->abandoned[--c->nabandoned];
		what = LATE;
	}
	mutex_unlock(&c->mu);
	if (what == LATE)
		DLOG(c->dev, VFPM_LOG_DEBUG, "dropping the late reply to cancelled request id %u", id);
	else if (what == UNKNOWN)
		DLOG(c->dev, VFPM_LOG_WARN, "dropping a reply to no outstanding request (id %u, %s)",
		     id, vfu_cmd_name(m->hdr.cmd));
	wire_msg_release(m);
}

void channel_cancel_begin(struct channel *c)
{
	mutex_lock(&c->mu);
	c->cancel_depth++;
	finish_all(c, -ECANCELED, true);
	mutex_unlock(&c->mu);
}

void channel_cancel_end(struct channel *c)
{
	mutex_lock(&c->mu);
	if (c->cancel_depth)
		c->cancel_depth--;
	mutex_unlock(&c->mu);
}

/* --- requests --- */

static struct timespec deadline_after_ms(int ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

/* Checks a reply against its request and copies a read's data. */
static int take_reply(const struct wire_msg *rep, uint16_t cmd, uint64_t addr, void *buf,
		      size_t len)
{
	if (rep->hdr.cmd != cmd)
		return -EPROTO;
	if (rep->hdr.flags & VFU_F_ERROR)
		return rep->hdr.error && rep->hdr.error < 4096 ? -(int)rep->hdr.error : -EIO;
	/* A DMA_WRITE reply may be a bare header (QEMU) or echo the 16-byte
	 * address and count (spec): both are accepted. */
	if (cmd == VFU_CMD_DMA_WRITE)
		return 0;
	struct vfu_dma_access a;
	if (rep->len < sizeof(a) + len)
		return -EPROTO;
	memcpy(&a, rep->payload, sizeof(a));
	if (a.addr != addr || a.count != len)
		return -EPROTO;
	memcpy(buf, rep->payload + sizeof(a), len);
	return 0;
}

/* One DMA_READ or DMA_WRITE of at most max_xfer bytes, and its reply. */
static int request(struct channel *c, bool write, uint64_t addr, void *buf, size_t len)
{
	struct vfu_dma_access req = { .addr = addr, .count = len };
	struct chan_waiter w = { .cmd = write ? VFU_CMD_DMA_WRITE : VFU_CMD_DMA_READ };
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w.cv, &ca);
	pthread_condattr_destroy(&ca);

	int rc = 0;
	mutex_lock(&c->mu);
	if (c->has_reader && pthread_equal(c->reader, pthread_self()))
		rc = -EDEADLK;   /* the reply would wait for this very thread */
	else if (!c->connected)
		rc = -ENOTCONN;
	else if (c->cancel_depth)
		rc = -ECANCELED;
	if (!rc) {
		/* in the table before it is sent: the reply may come at once */
		w.id = alloc_id(c);
		w.next = c->waiters;
		c->waiters = &w;
	}
	mutex_unlock(&c->mu);
	if (rc) {
		pthread_cond_destroy(&w.cv);
		return rc;
	}

	struct vfu_hdr h = { .msg_id = w.id, .cmd = w.cmd, .flags = VFU_F_TYPE_COMMAND };
	int src = channel_send(c, &h, &req, sizeof(req), write ? buf : NULL, write ? len : 0, NULL,
			       0);

	mutex_lock(&c->mu);
	if (src) {
		/* nothing (whole) went out: no reply will come */
		if (!w.done)
			finish(c, &w, src);
		else if (w.got)
			wire_msg_release(&w.reply);
		w.got = false;
		w.rc = src;
	}
	/* one deadline for the reply (a client that never answers must not
	 * hold the device's thread), not a polling interval */
	struct timespec deadline = deadline_after_ms(CHANNEL_REPLY_MS);
	bool late = false;
	while (!w.done) {
		int e = pthread_cond_timedwait(&w.cv, &c->mu, &deadline);
		if (e == ETIMEDOUT && !w.done) {
			abandon(c, w.id);
			finish(c, &w, -ETIMEDOUT);
			late = true;
		}
	}
	mutex_unlock(&c->mu);
	pthread_cond_destroy(&w.cv);
	if (late)
		DLOG(c->dev, VFPM_LOG_WARN, "no reply to %s id %u within %d ms", vfu_cmd_name(w.cmd),
		     w.id, CHANNEL_REPLY_MS);

	if (!w.got)
		return w.rc;
	rc = take_reply(&w.reply, w.cmd, addr, buf, len);
	wire_msg_release(&w.reply);
	return rc;
}

int channel_dma(struct channel *c, bool write, uint64_t addr, void *buf, size_t len)
{
	mutex_lock(&c->mu);
	uint32_t lim = c->max_xfer;
	mutex_unlock(&c->mu);
	uint8_t *p = buf;
	while (len) {
		size_t n = len < lim ? len : lim;
		int rc = request(c, write, addr, p, n);
		if (rc)
			return rc;
		p += n;
		addr += n;
		len -= n;
	}
	return 0;
}
