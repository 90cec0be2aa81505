/* The channel: a device's link to its client for what the server sends.
 *
 * It owns the sending side of the session socket (one writer at a time,
 * every send under the send deadline) and the table of server-to-client
 * requests in flight (message DMA: DMA_READ/DMA_WRITE), keyed by message
 * id. Any number of threads may each have a request outstanding; the
 * session thread, which reads the socket, hands each reply to its waiter
 * with channel_deliver. A waiter sleeps on its own condition variable and
 * is woken by its reply, by a cancel, by the peer going away, or by the
 * reply deadline; never by a polling tick.
 *
 * A request ends with (channel_dma):
 *   0             the reply came and was well-formed
 *   -ECANCELED    a cancel window was open (channel_cancel_begin) when the
 *                 request started or while it waited
 *   -ENOTCONN     no client, or the client went away (channel_hangup)
 *   -ETIMEDOUT    no reply within CHANNEL_REPLY_MS, or the send deadline
 *                 passed (the session is then torn down)
 *   -EPROTO       a reply with the request's id that is not a valid answer
 *                 (another command, a DMA_READ reply that does not echo
 *                 the address and count or is short)
 *   -EDEADLK      called on the thread that reads the replies
 *   -errno        the client's error reply (1..4095; other values -EIO),
 *                 or the send's error (-EPIPE, ...)
 * A cancelled or timed-out request is forgotten: its id is remembered
 * (CHANNEL_ABANDONED of them) so that its late reply is dropped quietly
 * and the id is not reused while a reply may still come.
 *
 * The channel lives as long as its device; a session attaches to it.
 * Locks: send_lock and mu are leaves, never held together, and no other
 * lock is taken under either. A thread waiting for a reply holds no lock.
 */
#ifndef VFPM_CHANNEL_H
#define VFPM_CHANNEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/lock.h"

#include "wire/wire.h"

#define CHANNEL_REPLY_MS 10000
#define CHANNEL_ABANDONED 16

struct vfpm_device;
struct chan_waiter;

struct channel {
	struct vfpm_device *dev;       /* for logging */
	mutex_t send_lock;
	int fd;                        /* send_lock; -1: detached */
	mutex_t mu;            /* all below */
	bool connected;                /* a client can answer requests */
	unsigned cancel_depth;         /* open cancel windows */
	uint32_t max_xfer;             /* bytes per DMA message */
	uint16_t next_id;
	pthread_t reader;              /* the thread that reads replies */
	bool has_reader;
	struct chan_waiter *waiters;   /* outstanding requests */
	uint16_t abandoned[CHANNEL_ABANDONED];   /* ids whose reply may still come */
	unsigned nabandoned;
	unsigned abandoned_next;       /* ring slot to overwrite when full */
};

void channel_init(struct channel *c, struct vfpm_device *dev);
/* No session attached any more. */
void channel_destroy(struct channel *c);

/* A session starts on fd: sends go there, requests may be made.
 * -EBUSY when a session is attached already. */
int channel_attach(struct channel *c, int fd);
/* The session ends: waiters are woken with -ENOTCONN, and once this
 * returns no thread writes to fd any more. */
void channel_detach(struct channel *c);
/* The peer is gone or the session stopped reading: waiters are woken with
 * -ENOTCONN and new requests fail so; sends still go to fd. */
void channel_hangup(struct channel *c);
/* The calling thread reads the replies from now on (session_run). */
void channel_set_reader(struct channel *c);
/* No thread reads replies for now (the session went idle): a request is
 * no longer refused for the thread that used to. */
void channel_clear_reader(struct channel *c);
/* The client's max_data_xfer_size (VERSION); a DMA message carries at
 * most that many bytes, and at most what the server receives. */
void channel_set_max_xfer(struct channel *c, uint32_t n);

/* Sends one message under the send lock. -ENOTCONN when detached;
 * -ETIMEDOUT when the send deadline passed, after which the socket is
 * shut down (the session's thread sees EOF). */
int channel_send(struct channel *c, struct vfu_hdr *h, const void *p1, size_t l1,
		 const void *p2, size_t l2, const int *fds, int nfds);

/* Sends len bytes of whole, framed messages without descriptors (a
 * session's batched replies) under the send lock; errors as channel_send. */
int channel_send_bytes(struct channel *c, const void *buf, size_t len);

/* Message DMA: len bytes at addr, in as many requests as the transfer size
 * needs, one after the other. Returns 0 or a negative errno (see top). */
int channel_dma(struct channel *c, bool write, uint64_t addr, void *buf, size_t len);

/* A reply-type message from the client (the channel takes m's payload and
 * descriptors). Unknown ids are dropped and logged. */
void channel_deliver(struct channel *c, struct wire_msg *m);

/* A cancel window (quiesce): requests waiting now and those started until
 * the matching channel_cancel_end fail with -ECANCELED. Windows nest. */
void channel_cancel_begin(struct channel *c);
void channel_cancel_end(struct channel *c);

#endif
