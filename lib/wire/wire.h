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
