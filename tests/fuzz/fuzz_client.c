/* libFuzzer target: the client library (libvfpm-client) against a hostile
 * server. A VMM linking the library must survive any bytes and descriptors
 * the server sends: replies of any size and content, wrong ids, server
 * commands (DMA_READ/DMA_WRITE) at any point, descriptors where none are
 * expected.
 *
 * Input layout (see make_corpus.py, which writes the seeds):
 *
 *   u8 options    bit 0: offer write_multiple; bit 1: offer twin_socket
 *   then chunks   u8 how, u16 length (little-endian), a 16-byte vfu_hdr,
 *                 then length payload bytes (fewer if the input ends)
 *
 * A thread plays the server on one end of a socketpair; the library runs a
 * fixed sequence of calls on the other (connect and VERSION, device and
 * region info, mmap of what region info returns, irq info, region
 * read/write, write_multiple, io fds, SET_IRQS, DMA maps served by
 * descriptor and by message, pending DMA, DEVICE_FEATURE, a raw request,
 * reset, unmap). Per chunk the server:
 *   how bit 0: first waits (briefly) for the next message from the client
 *              and reads it;
 *   how bit 1: makes the chunk a well-formed reply to that message (its
 *              msg_id and cmd, type REPLY; the ERROR bit and error kept);
 *   how bit 2: sets the header's size to the bytes actually sent (else it
 *              is sent as given, framing errors included);
 *   how bit 3: attaches a 64 KiB memfd; bit 4: an eventfd; bit 5: both
 *              ends of a socketpair;
 * then sends the header and payload. When the chunks run out it closes its
 * end, so every call the library still makes fails instead of waiting.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
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

#include "vfpm/client.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MEMFD_SIZE (64u << 10)

struct script {
	int sock;
	const uint8_t *data;
	size_t size;
};

static void die(const char *what, int err)
{
	fprintf(stderr, "fuzz_client: %s: %s\n", what, strerror(err));
	abort();
}

static int new_memfd(void)
{
	int fd = memfd_create("fuzz-client", MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, MEMFD_SIZE) < 0)
		die("memfd", errno);
	return fd;
}

/* Sends all of buf (descriptors with the first byte), giving up when the
 * client does not read for a while: it may be blocked on us. */
static void send_chunk(int s, const uint8_t *buf, size_t len, const int *fds, int nfds)
{
	union {
		struct cmsghdr align;
		char b[CMSG_SPACE(4 * sizeof(int))];
	} cb;
	size_t done = 0;
	while (done < len) {
		struct iovec iov = { .iov_base = (void *)(buf + done), .iov_len = len - done };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (done == 0 && nfds) {
			memset(&cb, 0, sizeof(cb));
			mh.msg_control = cb.b;
			mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
			struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
			memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
		}
		ssize_t n = sendmsg(s, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		struct pollfd p = { .fd = s, .events = POLLOUT };
		if (n == 0 || errno != EAGAIN || poll(&p, 1, 100) != 1)
			return;
	}
}

static void *server_main(void *arg)
{
	struct script *sc = arg;
	struct vfu_hdr last = { 0 };
	while (sc->size >= 3 + sizeof(struct vfu_hdr)) {
		uint8_t how = sc->data[0];
		size_t len = (size_t)sc->data[1] | (size_t)sc->data[2] << 8;
		struct vfu_hdr h;
		memcpy(&h, sc->data + 3, sizeof(h));
		sc->data += 3 + sizeof(h);
		sc->size -= 3 + sizeof(h);
		if (len > sc->size)
			len = sc->size;

		if (how & 1) {
			struct pollfd p = { .fd = sc->sock, .events = POLLIN };
			if (poll(&p, 1, 20) == 1) {
				struct wire_msg m;
				int rc = wire_recv(sc->sock, &m, 1u << 24, VFPM_MAX_MSG_FDS);
				if (rc == 0 || rc == -EINVAL || rc == -ENOMEM)
					last = m.hdr;
				wire_msg_release(&m);
				if (rc == -ECONNRESET || rc == -EPIPE || rc == -EMSGSIZE)
					break;   /* the client is gone or out of step */
			}
		}
		if (how & 2) {
			h.msg_id = last.msg_id;
			h.cmd = last.cmd;
			h.flags = (h.flags & ~VFU_F_TYPE_MASK) | VFU_F_TYPE_REPLY;
		}
		if (how & 4)
			h.size = (uint32_t)(sizeof(h) + len);

		int fds[4], nfds = 0;
		if (how & 8)
			fds[nfds++] = new_memfd();
		if (how & 16) {
			fds[nfds] = eventfd(0, EFD_CLOEXEC);
			if (fds[nfds++] < 0)
				die("eventfd", errno);
		}
		if (how & 32) {
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds + nfds) < 0)
				die("socketpair", errno);
			nfds += 2;
		}
		uint8_t *buf = malloc(sizeof(h) + len);
		if (!buf)
			die("malloc", ENOMEM);
		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), sc->data, len);
		send_chunk(sc->sock, buf, sizeof(h) + len, fds, nfds);
		free(buf);
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		sc->data += len;
		sc->size -= len;
	}
	/* no more script: the client sees EOF on its next wait */
	shutdown(sc->sock, SHUT_RDWR);
	return NULL;
}

static void map_and_unmap(struct vfpm_region_info *ri)
{
	unsigned n = ri->nr_areas ? ri->nr_areas : 1;
	for (unsigned a = 0; a < n && a < VFPM_CLIENT_MAX_AREAS; a++) {
		uint64_t sz = ri->nr_areas ? ri->areas[a].size : ri->size;
		if (sz > MEMFD_SIZE)
			continue;   /* mapping is not parsing; keep the address space small */
		void *p;
		size_t len;
		if (vfpm_client_mmap_area(ri, a, &p, &len) == 0)
			munmap(p, len);
	}
}

static void client_calls(struct vfpm_client *c)
{
	struct vfpm_device_info di;
	vfpm_client_device_info(c, &di);
	for (uint32_t r = 0; r < 3; r++) {
		struct vfpm_region_info ri;
		memset(&ri, 0, sizeof(ri));
		ri.fd = -1;
		if (vfpm_client_region_info(c, r == 2 ? VFIO_PCI_CONFIG_REGION_INDEX : r * 2, &ri) == 0 &&
		    ri.fd >= 0) {
			map_and_unmap(&ri);
			close(ri.fd);
		}
	}
	struct vfpm_irq_info ii;
	vfpm_client_irq_info(c, VFIO_PCI_MSIX_IRQ_INDEX, &ii);
	uint8_t buf[256];
	vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, 0, buf, sizeof(buf));
	uint32_t v = 0x6;
	vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, 4, &v, 2);
	struct vfpm_write_multi_entry we[2] = { { .region = 0, .offset = 8, .count = 4 },
						{ .region = 0, .offset = 0x10, .count = 8 } };
	vfpm_client_region_write_multi(c, we, 2);
	struct vfpm_ioeventfd io[4];
	int n = vfpm_client_region_io_fds(c, 0, io, 4);
	for (int i = 0; i < n && i < 4; i++)
		if (io[i].fd >= 0)
			close(io[i].fd);
	int efd = eventfd(0, EFD_CLOEXEC);
	if (efd >= 0) {
		vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				     VFIO_PCI_MSIX_IRQ_INDEX, 0, 1, &efd, 1, NULL);
		close(efd);
	}
	/* guest memory by descriptor and by message: the server may then
	 * send DMA_READ/DMA_WRITE into both */
	int mfd = new_memfd();
	vfpm_client_dma_map(c, mfd, 0, 0x100000, MEMFD_SIZE, 3, NULL);
	close(mfd);
	void *host;
	vfpm_client_dma_map(c, -1, 0, 0x200000, 2 * 4096, 3, &host);
	vfpm_client_serve_pending(c, 0);
	uint8_t feat[64];
	size_t flen = sizeof(feat);
	vfpm_client_feature(c, VFIO_DEVICE_FEATURE_GET | 3, NULL, 0, -1, feat, &flen);
	size_t rlen;
	int rfds[4], rn = 0;
	vfpm_client_request(c, VFU_CMD_DEVICE_GET_INFO, NULL, 0, NULL, 0, buf, sizeof(buf), &rlen,
			    rfds, 4, &rn);
	for (int i = 0; i < rn && i < 4; i++)
		close(rfds[i]);
	vfpm_client_reset(c);
	vfpm_client_dma_unmap(c, 0x100000, MEMFD_SIZE);
	vfpm_client_dma_unmap(c, 0x200000, 2 * 4096);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct vfpm_client_opts o = { .write_multiple = data[0] & 1, .twin_socket = data[0] & 2 };
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair", errno);
	struct script sc = { .sock = sv[1], .data = data + 1, .size = size - 1 };
	pthread_t t;
	if (pthread_create(&t, NULL, server_main, &sc))
		die("pthread_create", EAGAIN);
	struct vfpm_client *c;
	if (vfpm_client_connect_fd(sv[0], &o, &c) == 0) {
		client_calls(c);
		vfpm_client_close(c);
	}
	/* the client closed its end (on failure too): the server's waits and
	 * sends end */
	pthread_join(t, NULL);
	close(sv[1]);
	return 0;
}
