/* vfio-user framing: whole messages with their descriptors, and VERSION
 * capability negotiation. Knows nothing above the wire. */
#ifndef VFPM_WIRE_H
#define VFPM_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* One received message. payload is malloc'ed (NULL when len == 0). */
struct wire_msg {
	struct vfu_hdr hdr;
	uint8_t *payload;
	size_t len;                    /* payload bytes: hdr.size - 16 */
	int fds[VFPM_MAX_MSG_FDS];
	int nfds;
};

/* Reads one whole message from a stream socket, collecting SCM_RIGHTS
 * descriptors that arrive with any part of it (at most max_fds; more are
 * closed and the message fails with -EINVAL after its body is consumed).
 * Loops over short reads, so a message that arrives in pieces is whole.
 *
 * Returns 0; -ECONNRESET on orderly EOF before a header; -EPIPE on EOF in the
 * middle of a message; -EMSGSIZE if hdr.size is < 16 or > max_size (the
 * stream is then unusable: the caller must close); -EINVAL when too many
 * descriptors came (message consumed, fds closed, header kept in m->hdr so
 * the caller can answer); -ENOMEM if the body could not be allocated (body
 * drained, header kept, stream still usable); -EAGAIN when no byte of a
 * message is pending on a non-blocking socket (or SO_RCVTIMEO expired before
 * one came); once a message has started, a non-blocking socket waits for
 * the rest and SO_RCVTIMEO expiring gives -ETIMEDOUT (stream unusable);
 * other negative errno from recvmsg.
 * max_fds is clamped to 0..VFPM_MAX_MSG_FDS. Received fds are close-on-exec.
 * On any error m holds no buffer and no descriptor (wire_msg_release on it
 * is harmless).
 */
int wire_recv(int sock, struct wire_msg *m, size_t max_size, int max_fds);

/* A buffered reader: one recvmsg takes whatever the socket holds (up to
 * the buffer's size), and every whole message in it is handed out without
 * another system call.
 *
 * Descriptors: the kernel attaches SCM_RIGHTS descriptors to the first
 * byte of the sendmsg that carried them, and a recvmsg on a stream socket
 * stops right after the data of a sendmsg that carried descriptors. So
 * descriptors received by a read came with the last piece of data of that
 * read, and they are given to the last message that has a byte in the
 * buffer after it: the message that starts in that piece, or the one in
 * progress when no message starts in it. That is exact for every client
 * whose sendmsg carrying descriptors starts at most one message, and then
 * the one they belong to (each message with its own sendmsg, or a header
 * first and the rest with the descriptors, as wire_recv accepts); the
 * descriptors of a sendmsg that ends one message and starts the next go
 * to the next. Messages larger than the
 * buffer are read into their own payload with as many reads as needed.
 *
 * Not thread-safe: one reader per socket and thread. */
struct wire_rx_fdset {
	size_t owner;                  /* buffer offset of the message's start */
	int fds[VFPM_MAX_MSG_FDS];
	int n;
	bool bad;                      /* too many, or truncated: all closed */
};

struct wire_reader {
	uint8_t *buf;
	size_t cap, off, len;          /* unread bytes are buf[off..len) */
	size_t max_size;
	int max_fds;
	struct wire_rx_fdset sets[2];  /* descriptors of buffered messages */
	int nsets;
	bool broken;                   /* descriptors without a set: -EPROTO */
	uint64_t reads;                /* recvmsg calls that returned data or EOF */
};

/* cap: the buffer (>= 4096); max_size and max_fds as for wire_recv.
 * 0 or -ENOMEM. */
int wire_reader_init(struct wire_reader *r, size_t cap, size_t max_size, int max_fds);
/* Frees the buffer and closes descriptors of messages never taken. */
void wire_reader_fini(struct wire_reader *r);
/* True when a whole, well-formed message is buffered: taking it will not
 * read. */
bool wire_reader_whole(const struct wire_reader *r);
/* One recvmsg into the buffer; flags MSG_DONTWAIT or 0. Returns the bytes
 * read (> 0), -EAGAIN (nothing there, or SO_RCVTIMEO expired),
 * -ECONNRESET on EOF with no partial message buffered, -EPIPE on EOF in
 * the middle of one, or another negative errno. */
int wire_reader_fill(struct wire_reader *r, int sock, int flags);
/* Takes the next whole message out of the buffer into m (m as from
 * wire_recv: malloc'ed payload, its descriptors). Returns 0; -EAGAIN when
 * no whole message is buffered (fill first); -EMSGSIZE (bad size: the
 * stream is unusable); -EPROTO (descriptors that could not be kept for
 * their message, which cannot happen with whole messages taken before
 * each fill: the stream is unusable); -EINVAL when too many descriptors came with it
 * (message consumed, descriptors closed, header kept in m->hdr); -ENOMEM
 * (payload not allocated: message consumed, header kept). A message larger
 * than the buffer is completed from sock with blocking reads (errors then
 * as wire_recv's, after its start). */
int wire_reader_next(struct wire_reader *r, int sock, struct wire_msg *m);

/* Sends len bytes of whole, already framed messages (no descriptors) with
 * as few sendmsg calls as the socket allows (one when it has room). A
 * blocking socket's SO_SNDTIMEO bounds the whole buffer, however slowly
 * the peer reads. Returns 0 or a negative errno as wire_send. */
int wire_send_bytes(int sock, const void *buf, size_t len);

/* Frees the payload and closes any descriptors still held by m. */
void wire_msg_release(struct wire_msg *m);

/* Takes descriptor i out of m (the caller now owns it); -1 if absent or
 * already taken. The indices of the other descriptors do not change. */
int wire_msg_take_fd(struct wire_msg *m, int i);

/* Sends header + payload (+ fds) with one sendmsg (looping on short
 * writes; descriptors ride on the first byte). hdr->size is set here.
 * Returns 0 or negative errno. MSG_NOSIGNAL is used: a closed peer gives
 * -EPIPE, never SIGPIPE. -EINVAL if nfds is not 0..VFPM_MAX_MSG_FDS;
 * -EMSGSIZE if the message would not fit msg_size; -ETIMEDOUT if a
 * blocking socket's SO_SNDTIMEO passed (the stream may hold part of the
 * message): it bounds the whole message, counted from the first time the
 * socket was full, however the peer reads meanwhile. A non-blocking
 * socket is waited on until the whole message is out. The
 * caller keeps its descriptors. Concurrent senders on one socket must
 * serialize. */
int wire_send(int sock, struct vfu_hdr *hdr, const void *payload, size_t len,
	      const int *fds, int nfds);

/* Same, with the payload in two pieces (fixed struct + data) to avoid a
 * copy for reads. */
int wire_send2(int sock, struct vfu_hdr *hdr, const void *p1, size_t l1,
	       const void *p2, size_t l2, const int *fds, int nfds);

/* Negotiated session parameters (what the peer can receive). */
struct wire_caps {
	uint32_t max_msg_fds;
	uint32_t max_data_xfer_size;
	uint64_t pgsizes;
	uint32_t max_dma_maps;
	bool twin_socket;
	bool write_multiple;
	/* twin_socket's "fd_index" (the server's answer: which descriptor of
	 * the VERSION reply is the client's end); -1 when absent. */
	int twin_fd_index;
};

void wire_caps_default(struct wire_caps *c);

/* Parses a VERSION JSON document ("{\"capabilities\":{...}}"). json points
 * at len bytes that must hold a NUL within them (the spec includes it).
 * Unknown keys are ignored; known keys with a wrong type or an insane
 * value give -EINVAL. len == 0 means no JSON: defaults. Bytes after the
 * first NUL are ignored. *out is written only on success. */
int wire_caps_parse(const char *json, size_t len, struct wire_caps *out);

/* Formats caps as a JSON document into a malloc'ed NUL-terminated string. */
char *wire_caps_format(const struct wire_caps *c);

#endif
