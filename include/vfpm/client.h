/* vfpm client library: a vfio-user client for one device socket.
 *
 * Every call returns 0 (or a non-negative count) on success and a negative
 * errno on failure: the errno of the server's error reply unchanged, or a
 * local one (-EPIPE, -ECONNRESET, -EPROTO for a malformed reply).
 *
 * A client is used by one thread at a time, except that server-initiated
 * DMA_READ/DMA_WRITE requests arriving while a call waits for its reply
 * are served from the client's DMA table (memfd-backed mappings) and
 * answered automatically.
 */
#ifndef VFPM_CLIENT_H
#define VFPM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#ifndef VFPM_EXPORT
#define VFPM_EXPORT __attribute__((visibility("default")))
#endif

struct vfpm_client;

struct vfpm_client_opts {
	uint32_t max_msg_fds;        /* 0: default 8 */
	uint32_t max_data_xfer_size; /* 0: default 1 MiB */
	bool write_multiple;         /* offer write_multiple */
	bool twin_socket;            /* offer twin_socket */
	const char *extra_caps_json; /* NULL, or raw JSON object members to add */
};

/* Connects to the device socket at path and negotiates VERSION. opts may be
 * NULL. */
VFPM_EXPORT int vfpm_client_connect(const char *path, const struct vfpm_client_opts *opts,
				    struct vfpm_client **out);
/* Same over an already connected stream socket (e.g. one end of a
 * socketpair). Takes ownership of fd: it is closed on failure too. */
VFPM_EXPORT int vfpm_client_connect_fd(int fd, const struct vfpm_client_opts *opts,
				       struct vfpm_client **out);
VFPM_EXPORT void vfpm_client_close(struct vfpm_client *c);
/* The underlying socket (for poll, or to send raw bytes in tests). */
VFPM_EXPORT int vfpm_client_fd(const struct vfpm_client *c);

/* What the server granted in its VERSION reply. */
struct vfpm_server_caps {
	uint16_t major, minor;
	uint32_t max_msg_fds;
	uint32_t max_data_xfer_size;
	uint64_t pgsizes;
	uint32_t max_dma_maps;
	bool write_multiple;
	bool twin_socket;
};
VFPM_EXPORT const struct vfpm_server_caps *vfpm_client_server_caps(const struct vfpm_client *c);

struct vfpm_device_info {
	uint32_t flags;
	uint32_t num_regions;
	uint32_t num_irqs;
};
VFPM_EXPORT int vfpm_client_device_info(struct vfpm_client *c, struct vfpm_device_info *info);

#define VFPM_CLIENT_MAX_AREAS 16
struct vfpm_region_info {
	uint32_t index;
	uint32_t flags;   /* VFIO_REGION_INFO_FLAG_READ/WRITE/MMAP/CAPS */
	uint64_t size;
	uint64_t offset;  /* mmap offset on fd */
	int fd;           /* -1 if not mmap-able; owned by the caller */
	uint32_t nr_areas;
	struct { uint64_t offset, size; } areas[VFPM_CLIENT_MAX_AREAS];
};
/* Region info with the truncate-and-retry pattern handled inside.
 * nr_areas is 0 when the server sent no sparse mmap capability; if fd is
 * valid the whole region is then mmap-able (vfpm_client_mmap_area index 0).
 * More than VFPM_CLIENT_MAX_AREAS areas gives -E2BIG. */
VFPM_EXPORT int vfpm_client_region_info(struct vfpm_client *c, uint32_t index,
					struct vfpm_region_info *info);

struct vfpm_irq_info {
	uint32_t flags;
	uint32_t count;
};
VFPM_EXPORT int vfpm_client_irq_info(struct vfpm_client *c, uint32_t index,
				     struct vfpm_irq_info *info);

/* SET_IRQS. flags are VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*.
 * For DATA_EVENTFD, fds holds count descriptors (nfds may be 0 to
 * de-assign); for DATA_BOOL, data holds count bytes. */
VFPM_EXPORT int vfpm_client_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index,
				     uint32_t start, uint32_t count, const int *fds, int nfds,
				     const uint8_t *data);

VFPM_EXPORT int vfpm_client_region_read(struct vfpm_client *c, uint32_t region,
					uint64_t offset, void *buf, uint32_t count);
VFPM_EXPORT int vfpm_client_region_write(struct vfpm_client *c, uint32_t region,
					 uint64_t offset, const void *buf, uint32_t count);

struct vfpm_write_multi_entry {
	uint32_t region;
	uint64_t offset;
	uint32_t count;   /* 1..8 */
	uint8_t data[8];
};
VFPM_EXPORT int vfpm_client_region_write_multi(struct vfpm_client *c,
					       const struct vfpm_write_multi_entry *e, size_t n);

/* mmaps sparse area area_idx of a region (info from vfpm_client_region_info).
 * Returns the mapping in *addr and its length in *len. The protection
 * follows the region's READ/WRITE flags. */
VFPM_EXPORT int vfpm_client_mmap_area(const struct vfpm_region_info *info, unsigned area_idx,
				      void **addr, size_t *len);

/* GET_REGION_IO_FDS: returns the number of entries (up to max) written to
 * out; each entry's fd is duplicated for the caller (caller closes). */
struct vfpm_ioeventfd {
	uint64_t offset, size;
	uint32_t flags;
	uint64_t datamatch;
	int fd;
};
VFPM_EXPORT int vfpm_client_region_io_fds(struct vfpm_client *c, uint32_t index,
					  struct vfpm_ioeventfd *out, size_t max);

/* DMA: maps size bytes of memfd fd at offset to IOVA iova (the library
 * keeps its own mapping to serve message-based DMA). With fd == -1 the
 * client maps anonymous memory it allocates and returns in *host (if not
 * NULL), and the server must use DMA_READ/WRITE messages. */
VFPM_EXPORT int vfpm_client_dma_map(struct vfpm_client *c, int fd, uint64_t offset,
				    uint64_t iova, uint64_t size, uint32_t prot, void **host);
VFPM_EXPORT int vfpm_client_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size);

/* Waits up to timeout_ms (< 0: forever) for server->client DMA requests
 * and serves them: for DMA the device does while no call is in flight.
 * Returns the number served (0 on timeout) or a negative errno. */
VFPM_EXPORT int vfpm_client_serve_pending(struct vfpm_client *c, int timeout_ms);

VFPM_EXPORT int vfpm_client_reset(struct vfpm_client *c);

/* DEVICE_FEATURE: sends {argsz, flags, data[len]} with an optional
 * descriptor (fd < 0: none). On success with GET, up to *reply_len bytes of
 * returned data are copied to reply and *reply_len is updated to the
 * number copied. argsz is 8 + len, or 8 + *reply_len for a GET whose
 * reply buffer is larger than the data sent. */
VFPM_EXPORT int vfpm_client_feature(struct vfpm_client *c, uint32_t flags, const void *data,
				    size_t len, int fd, void *reply, size_t *reply_len);

/* Sends an arbitrary request and waits for its reply (raw tests). The reply
 * payload (up to reply_max bytes) is copied to reply; *reply_len gets its
 * full length. Received descriptors (up to max_fds) go to fds_out and
 * *nfds_out. Returns 0 or the negative errno of an error reply. */
VFPM_EXPORT int vfpm_client_request(struct vfpm_client *c, uint16_t cmd, const void *payload,
				    size_t len, const int *fds, int nfds, void *reply,
				    size_t reply_max, size_t *reply_len, int *fds_out,
				    int max_fds, int *nfds_out);

/* Default device socket: $VFPM_SOCKET, else /run/vfpm/demo.sock for root,
 * else $XDG_RUNTIME_DIR/vfpm/demo.sock, else /tmp/vfpm-$UID/demo.sock.
 * Returns 0 or -ENAMETOOLONG (buf too small, or too long for a socket). */
VFPM_EXPORT int vfpm_default_socket_path(char *buf, size_t len);

/* Writes len bytes of config space (64..4096, a multiple of 16) as a dump
 * that `lspci -F FILE` reads: a device line, then "OO: xx xx ..." lines. */
VFPM_EXPORT int vfpm_format_lspci(const uint8_t *cfg, size_t len, FILE *out);

#ifdef __cplusplus
}
#endif
#endif
