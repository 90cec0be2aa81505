/* A client session: message dispatch with one handler per command, error
 * replies with the handler's errno, and server-initiated DMA messages. */
#include <errno.h>
#include <inttypes.h>
#include <linux/vfio.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* A reply under construction. */
struct reply {
	uint8_t small[256];
	uint8_t *buf;       /* small, or the session's large buffer */
	size_t len;
	const void *data;   /* optional second piece sent after buf (no copy) */
	size_t data_len;
	int fds[CORE_MAX_IOEVENTFDS];
	int nfds;           /* fds are borrowed: the device keeps them */
};

typedef int (*cmd_fn)(struct core_session *s, struct wire_msg *m, struct reply *r);

struct cmd_desc {
	cmd_fn fn;
	uint32_t min_len;   /* smallest valid payload */
	uint8_t max_fds;    /* descriptors the command may carry */
	bool device_cmd;    /* a device command (contract §3), not IOMMU-side */
	/* true when the request is rejected before any PM action */
	bool (*pm_skip)(const struct wire_msg *m);
	/* serves the request without a PM reference when the device may stay
	 * asleep for it (V3); -EAGAIN: take the normal path */
	cmd_fn asleep;
};

static int reply_put(struct reply *r, const void *p, size_t len)
{
	if (r->len + len > sizeof(r->small))
		return -ENOMEM;  /* handlers size their replies; never reached */
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	return 0;
}

/* --- VERSION --- */

static int h_version(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_version v;
	memcpy(&v, m->payload, sizeof(v));
	if (s->version_done)
		return -EINVAL;
	if (v.major != VFU_VERSION_MAJOR)
		return -EINVAL;
	struct wire_caps offered;
	size_t jlen = m->len - sizeof(v);
	if (jlen > VFPM_MAX_VERSION_JSON)
		return -E2BIG;
	int rc = wire_caps_parse(jlen ? (const char *)m->payload + sizeof(v) : NULL, jlen, &offered);
	if (rc)
		return rc;
	s->peer = offered;
	/* What we can receive; write_multiple only when the client asked. */
	struct wire_caps mine;
	wire_caps_default(&mine);
	mine.max_msg_fds = VFPM_MAX_MSG_FDS;
	mine.max_data_xfer_size = VFPM_MAX_DATA_XFER;
	mine.max_dma_maps = VFPM_MAX_DMA_MAPS;
	mine.write_multiple = offered.write_multiple;
	mine.twin_socket = false;   /* declined: DMA messages share the socket */
	char *json = wire_caps_format(&mine);
	if (!json)
		return -ENOMEM;
	size_t n = strlen(json) + 1;
	struct vfu_version out = { VFU_VERSION_MAJOR,
				   v.minor < VFU_VERSION_MINOR ? v.minor : VFU_VERSION_MINOR };
	rc = reply_put(r, &out, sizeof(out));
	if (!rc)
		rc = reply_put(r, json, n);
	free(json);
	/* The session is established: like an open of the device fd, it
	 * resumes the device and holds a reference (T1). */
	if (!rc)
		rc = pm_open(s->dev);
	if (!rc) {
		s->version_done = true;
		dev_event(s->dev, EV_CLIENT_CONNECT, -1, -1, NULL);
		s->peer.write_multiple = mine.write_multiple;
		channel_set_max_xfer(&s->dev->chan, offered.max_data_xfer_size);
		DLOG(s->dev, CORE_LOG_VERBOSE,
		     "session: version 0.%u, client max_data_xfer_size %u, max_msg_fds %u%s",
		     out.minor, offered.max_data_xfer_size, offered.max_msg_fds,
		     mine.write_multiple ? ", write_multiple" : "");
	}
	return rc;
}

/* --- DMA map/unmap (IOMMU side: never wake the device) --- */

static int h_dma_map(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_dma_map dm;
	memcpy(&dm, m->payload, sizeof(dm));
	if (dm.argsz < sizeof(dm))
		return -EINVAL;
	int fd = m->nfds ? m->fds[0] : -1;
	int rc = dma_map(s->dev, &dm, fd);   /* the fd is closed with m: mmap keeps its own ref */
	if (!rc)
		DLOG(s->dev, CORE_LOG_VERBOSE, "DMA map 0x%" PRIx64 "+0x%" PRIx64 " %s%s, %s", dm.addr,
		     dm.size, dm.flags & VFU_DMA_FLAG_READ ? "r" : "", dm.flags & VFU_DMA_FLAG_WRITE ? "w" : "",
		     fd >= 0 ? "file" : "messages");
	return rc;
}

static int h_dma_unmap(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_dma_unmap du;
	memcpy(&du, m->payload, sizeof(du));
	if (du.argsz < sizeof(du))
		return -EINVAL;
	bool all = du.flags == VFU_DMA_UNMAP_FLAG_ALL;
	if (du.flags && !all)
		return -EINVAL;
	if (all && (du.addr || du.size))
		return -EINVAL;
	int rc = dma_unmap(s->dev, du.addr, du.size, all);
	if (rc)
		return rc;
	if (all)
		DLOG(s->dev, CORE_LOG_VERBOSE, "DMA unmap all");
	else
		DLOG(s->dev, CORE_LOG_VERBOSE, "DMA unmap 0x%" PRIx64 "+0x%" PRIx64, du.addr, du.size);
	du.argsz = sizeof(du);
	return reply_put(r, &du, sizeof(du));
}

/* --- device info --- */

static int h_device_info(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_device_info di;
	memcpy(&di, m->payload, sizeof(di));
	if (di.argsz < sizeof(di))
		return -EINVAL;
	di = (struct vfu_device_info){ .argsz = sizeof(di),
				       .flags = VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI,
				       .num_regions = VFU_PCI_NUM_REGIONS,
				       .num_irqs = VFU_IRQ_NUM };
	return reply_put(r, &di, sizeof(di));
}

static int h_region_info(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_region_info ri;
	memcpy(&ri, m->payload, sizeof(ri));
	if (ri.argsz < sizeof(ri) || ri.index >= VFU_PCI_NUM_REGIONS)
		return -EINVAL;
	struct vfpm_device *dev = s->dev;
	uint32_t argsz = ri.argsz;
	uint64_t size;
	uint32_t flags;
	region_desc(dev, ri.index, &size, &flags);
	struct vfu_sparse_area areas[4];
	unsigned nareas = region_areas(dev, ri.index, areas, 4);
	size_t caps_len = nareas ? sizeof(struct vfu_cap_sparse_mmap) + nareas * sizeof(areas[0]) : 0;
	ri = (struct vfu_region_info){ .argsz = (uint32_t)(sizeof(ri) + caps_len),
				       .flags = flags,
				       .index = ri.index,
				       .size = size,
				       .offset = 0 };
	bool full = argsz >= ri.argsz;
	/* cap_offset points where the capabilities are (or would be) even in
	 * a truncated reply: QEMU's client rejects a CAPS reply whose
	 * cap_offset is below the struct before it retries with the bigger
	 * argsz (the kernel would send 0 here). */
	if (caps_len)
		ri.cap_offset = sizeof(ri);
	int rc = reply_put(r, &ri, sizeof(ri));
	if (rc || !full || !caps_len)
		return rc;
	/* Caps and the descriptor only with a reply that has room for them:
	 * a client retrying with the bigger argsz gets both together. */
	struct vfu_cap_sparse_mmap cap = { .hdr = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP,
						    .version = 1,
						    .next = 0 },
					   .nr_areas = nareas };
	rc = reply_put(r, &cap, sizeof(cap));
	if (!rc)
		rc = reply_put(r, areas, nareas * sizeof(areas[0]));
	if (!rc && s->peer.max_msg_fds >= 1) {
		r->fds[0] = dev->bars[ri.index].memfd;
		r->nfds = 1;
	}
	return rc;
}

static int h_region_io_fds(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_region_io_fds req;
	memcpy(&req, m->payload, sizeof(req));
	if (req.argsz < sizeof(req) || req.index >= VFU_PCI_NUM_REGIONS || req.flags || req.count)
		return -EINVAL;
	struct vfpm_device *dev = s->dev;
	struct vfu_ioeventfd ents[CORE_MAX_IOEVENTFDS];
	uint32_t n = 0;
	for (unsigned i = 0; i < dev->nioeventfds; i++) {
		struct core_ioeventfd *io = &dev->ioeventfds[i];
		if (io->bar != req.index)
			continue;
		ents[n] = (struct vfu_ioeventfd){ .offset = io->offset, .size = io->size,
						  .fd_index = n, .type = VFU_IO_FD_TYPE_IOEVENTFD };
		r->fds[n] = io->fd;
		n++;
	}
	struct vfu_region_io_fds out = { .argsz = (uint32_t)(sizeof(out) + n * sizeof(ents[0])),
					 .flags = 0, .index = req.index, .count = n };
	if (req.argsz < out.argsz) {
		r->nfds = 0;   /* truncated: the client retries with out.argsz */
		return reply_put(r, &out, sizeof(out));
	}
	if (n > s->peer.max_msg_fds)
		return -E2BIG;
	r->nfds = (int)n;
	int rc = reply_put(r, &out, sizeof(out));
	return rc ? rc : reply_put(r, ents, n * sizeof(ents[0]));
}

static int h_irq_info(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_irq_info ii;
	memcpy(&ii, m->payload, sizeof(ii));
	if (ii.argsz < sizeof(ii) || ii.index >= VFU_IRQ_NUM)
		return -EINVAL;
	static const uint32_t flags[VFU_IRQ_NUM] = {
		[VFU_IRQ_INTX] = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				 VFIO_IRQ_INFO_AUTOMASKED,
		[VFU_IRQ_MSI] = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				VFIO_IRQ_INFO_NORESIZE,
		[VFU_IRQ_MSIX] = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE |
				 VFIO_IRQ_INFO_NORESIZE,
		[VFU_IRQ_ERR] = VFIO_IRQ_INFO_EVENTFD,
		[VFU_IRQ_REQ] = VFIO_IRQ_INFO_EVENTFD,
	};
	ii = (struct vfu_irq_info){ .argsz = sizeof(ii), .flags = flags[ii.index],
				    .index = ii.index,
				    .count = (uint32_t)irq_count(s->dev, ii.index) };
	return reply_put(r, &ii, sizeof(ii));
}

static int h_set_irqs(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_irq_set is;
	memcpy(&is, m->payload, sizeof(is));
	if (is.argsz < sizeof(is))
		return -EINVAL;
	size_t dlen = m->len - sizeof(is);
	if ((is.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) == VFIO_IRQ_SET_DATA_BOOL && dlen != is.count)
		return -EINVAL;
	int rc = irq_set(s->dev, is.flags, is.index, is.start, is.count, m->payload + sizeof(is),
			 m->fds, m->nfds);
	if (!rc)
		DLOG(s->dev, CORE_LOG_VERBOSE, "SET_IRQS index %u start %u count %u flags 0x%x, %d fds",
		     is.index, is.start, is.count, is.flags, m->nfds);
	return rc;
}

/* --- region access --- */

/* A request's count is bounded by what its receiver announced: for
 * REGION_READ/WRITE that is the server's max_data_xfer_size, never the
 * client's (libvfio-user's sample client announces 1 KiB and writes 4 KiB).
 * The client's value bounds only the server's DMA_READ/WRITE requests. */
#define REGION_XFER_MAX VFPM_MAX_DATA_XFER

/* A region access, or with asleep the same access served from the core's
 * config space while a promoted device stays suspended (-EAGAIN when it
 * cannot be). */
static int region_access(struct core_session *s, uint32_t region, uint64_t off, void *buf,
			 uint32_t count, bool write, bool asleep)
{
	if (!asleep)
		return device_region_rw(s->dev, region, off, buf, count, write);
	if (!count || region != VFU_PCI_CONFIG || off > VPCI_CFG_SIZE ||
	    count > VPCI_CFG_SIZE - off)
		return -EAGAIN;
	return pm_config_asleep(s->dev, (unsigned)off, buf, count, write);
}

static int region_read(struct core_session *s, struct wire_msg *m, struct reply *r, bool asleep)
{
	struct vfu_region_access ra;
	memcpy(&ra, m->payload, sizeof(ra));
	if (ra.region >= VFU_PCI_NUM_REGIONS || ra.count > REGION_XFER_MAX)
		return asleep ? -EAGAIN : -EINVAL;
	if (ra.count > sizeof(r->small) - sizeof(ra)) {
		uint8_t *big = malloc(sizeof(ra) + ra.count);
		if (!big)
			return -ENOMEM;
		r->buf = big;
	}
	int rc = ra.count ? region_access(s, ra.region, ra.offset, r->buf + sizeof(ra), ra.count,
					  false, asleep)
			  : 0;
	if (rc)
		return rc;
	memcpy(r->buf, &ra, sizeof(ra));
	r->len = sizeof(ra) + ra.count;
	return 0;
}

static int region_write(struct core_session *s, struct wire_msg *m, struct reply *r, bool asleep)
{
	struct vfu_region_access ra;
	memcpy(&ra, m->payload, sizeof(ra));
	if (ra.region >= VFU_PCI_NUM_REGIONS || ra.count > REGION_XFER_MAX ||
	    m->len - sizeof(ra) != ra.count)
		return asleep ? -EAGAIN : -EINVAL;
	int rc = ra.count ? region_access(s, ra.region, ra.offset, m->payload + sizeof(ra),
					  ra.count, true, asleep)
			  : 0;
	if (rc)
		return rc;
	return reply_put(r, &ra, sizeof(ra));
}

static int h_region_read(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	return region_read(s, m, r, false);
}

static int h_region_write(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	return region_write(s, m, r, false);
}

/* Only a valid config access to a promoted, suspended device is served
 * asleep; anything else (an invalid request included) takes the normal
 * path and its answer. */
static int a_region_read(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	return region_read(s, m, r, true);
}

static int a_region_write(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	return region_write(s, m, r, true);
}

static int h_region_write_multi(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	if (!s->peer.write_multiple)
		return -EINVAL;   /* not negotiated */
	struct vfu_write_multi wm;
	memcpy(&wm, m->payload, sizeof(wm));
	if (!wm.wr_cnt || wm.wr_cnt > VFPM_MAX_WRITE_MULTI ||
	    m->len - sizeof(wm) != wm.wr_cnt * sizeof(struct vfu_write_multi_entry))
		return -EINVAL;
	const uint8_t *p = m->payload + sizeof(wm);
	for (uint64_t i = 0; i < wm.wr_cnt; i++, p += sizeof(struct vfu_write_multi_entry)) {
		struct vfu_write_multi_entry e;
		memcpy(&e, p, sizeof(e));
		if (e.region >= VFU_PCI_NUM_REGIONS || !e.count || e.count > VFU_WRITE_MULTI_DATA)
			return -EINVAL;
		int rc = device_region_rw(s->dev, e.region, e.offset, e.data, e.count, true);
		if (rc)
			return rc;
	}
	return reply_put(r, &wm, sizeof(wm));
}

static int h_reset(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	device_reset(s->dev, "DEVICE_RESET", true);
	return 0;
}

/* --- DEVICE_FEATURE: a table of features; the rest answered as the
 * kernel answers a feature with no handler (ENOTTY). --- */

#define FEATURE_FLAG_BITS \
	(VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | \
	 VFIO_DEVICE_FEATURE_PROBE)

struct feature_desc {
	uint16_t id;
	uint32_t ops;       /* VFIO_DEVICE_FEATURE_GET and/or _SET */
	uint8_t max_fds;
	int (*fn)(struct core_session *s, struct wire_msg *m, struct reply *r);
};

/* LOW_POWER_ENTRY (3) and LOW_POWER_EXIT (5): no payload. */
static int f_lp_entry(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	int rc = pm_feature_entry(s->dev, -1);
	return rc ? rc : reply_put(r, m->payload, sizeof(struct vfu_device_feature));
}

static int f_lp_exit(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	int rc = pm_feature_exit(s->dev);
	return rc ? rc : reply_put(r, m->payload, sizeof(struct vfu_device_feature));
}

/* LOW_POWER_ENTRY_WITH_WAKEUP (4): {s32 wakeup_eventfd, u32 reserved};
 * wakeup_eventfd is the index of the eventfd in the message's descriptor
 * array (contract §4). reserved is not checked, as in the kernel. */
static int f_lp_entry_wakeup(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_device_feature f;
	memcpy(&f, m->payload, sizeof(f));
	if (f.argsz < sizeof(f) + 8 || m->len < sizeof(f) + 8)
		return -EINVAL;
	int32_t idx;
	memcpy(&idx, m->payload + sizeof(f), sizeof(idx));
	if (idx < 0)
		return -EINVAL;
	if (idx >= m->nfds)
		return -EBADF;
	if (!core_is_eventfd(m->fds[idx]))
		return -EINVAL;
	int fd = wire_msg_take_fd(m, idx);
	int rc = pm_feature_entry(s->dev, fd);
	if (rc) {
		close(fd);   /* not retained (B2) */
		return rc;
	}
	return reply_put(r, m->payload, sizeof(f) + 8);
}

static const struct feature_desc features[] = {
	{ VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VFIO_DEVICE_FEATURE_SET, 0, f_lp_entry },
	{ VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP, VFIO_DEVICE_FEATURE_SET, 1,
	  f_lp_entry_wakeup },
	{ VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, VFIO_DEVICE_FEATURE_SET, 0, f_lp_exit },
};

static int h_feature(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	struct vfu_device_feature f;
	memcpy(&f, m->payload, sizeof(f));
	int rc = 0;
	if (f.argsz < sizeof(f) || (f.flags & ~FEATURE_FLAG_BITS))
		rc = -EINVAL;
	else if ((f.flags & VFIO_DEVICE_FEATURE_GET) && (f.flags & VFIO_DEVICE_FEATURE_SET) &&
		 !(f.flags & VFIO_DEVICE_FEATURE_PROBE))
		rc = -EINVAL;
	const struct feature_desc *d = NULL;
	for (size_t i = 0; !rc && i < sizeof(features) / sizeof(features[0]); i++)
		if (features[i].fn && features[i].id == (f.flags & VFIO_DEVICE_FEATURE_MASK))
			d = &features[i];
	if (!rc && !d)
		rc = -ENOTTY;
	if (!rc && m->nfds > d->max_fds)
		rc = -EINVAL;   /* descriptors the feature does not take (contract §4) */
	if (!rc) {
		/* the kernel's vfio_check_feature order */
		uint32_t asked = f.flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
		if (asked & ~d->ops)
			rc = -EINVAL;
		else if (f.flags & VFIO_DEVICE_FEATURE_PROBE)
			return reply_put(r, &f, sizeof(f));   /* nothing done (B6) */
		else if (!asked)
			rc = -EINVAL;
		else
			rc = d->fn(s, m, r);
	}
	return rc;
}

static int h_mig_data(struct core_session *s, struct wire_msg *m, struct reply *r)
{
	return -EINVAL;   /* no migration support: never in a migration state */
}

/* A zero-length region access, or one naming no region, returns before
 * the PM get, as vfio_pci_rw does. */
static bool region_pm_skip(const struct wire_msg *m)
{
	struct vfu_region_access ra;
	if (m->len < sizeof(ra))
		return false;
	memcpy(&ra, m->payload, sizeof(ra));
	return ra.count == 0 || ra.region >= VFU_PCI_NUM_REGIONS;
}

static const struct cmd_desc cmds[VFU_CMD_MAX + 1] = {
	[VFU_CMD_VERSION] = { h_version, sizeof(struct vfu_version), 0, false },
	[VFU_CMD_DMA_MAP] = { h_dma_map, sizeof(struct vfu_dma_map), 1, false },
	[VFU_CMD_DMA_UNMAP] = { h_dma_unmap, sizeof(struct vfu_dma_unmap), 0, false },
	[VFU_CMD_DEVICE_GET_INFO] = { h_device_info, sizeof(struct vfu_device_info), 0, true },
	[VFU_CMD_GET_REGION_INFO] = { h_region_info, sizeof(struct vfu_region_info), 0, true },
	[VFU_CMD_GET_REGION_IO_FDS] = { h_region_io_fds, sizeof(struct vfu_region_io_fds), 0, true },
	[VFU_CMD_GET_IRQ_INFO] = { h_irq_info, sizeof(struct vfu_irq_info), 0, true },
	[VFU_CMD_SET_IRQS] = { h_set_irqs, sizeof(struct vfu_irq_set), VFPM_MAX_MSG_FDS, true },
	[VFU_CMD_REGION_READ] = { h_region_read, sizeof(struct vfu_region_access), 0, true,
				  region_pm_skip, a_region_read },
	[VFU_CMD_REGION_WRITE] = { h_region_write, sizeof(struct vfu_region_access), 0, true,
				   region_pm_skip, a_region_write },
	[VFU_CMD_DEVICE_RESET] = { h_reset, 0, 0, true },
	[VFU_CMD_REGION_WRITE_MULTI] = { h_region_write_multi, sizeof(struct vfu_write_multi), 0,
					 true },
	[VFU_CMD_DEVICE_FEATURE] = { h_feature, sizeof(struct vfu_device_feature), 1, true },
	[VFU_CMD_MIG_DATA_READ] = { h_mig_data, sizeof(struct vfu_mig_data), 0, true },
	[VFU_CMD_MIG_DATA_WRITE] = { h_mig_data, sizeof(struct vfu_mig_data), 0, true },
};

/* --- sending --- */

/* Sends the replies waiting in tx with one send, then runs the idle check
 * that waited for them. */
static int tx_flush(struct core_session *s)
{
	int rc = 0;
	if (s->tx_len) {
		/* counted before: the client may look once it has them */
		atomic_fetch_add_explicit(&s->dev->tx_sends, 1, memory_order_relaxed);
		rc = channel_send_bytes(&s->dev->chan, s->tx, s->tx_len);
		s->tx_len = 0;
	}
	if (s->idle_due) {
		s->idle_due = false;
		pm_idle(s->dev);
	}
	return rc;
}

/* The idle check after a request's reference is dropped: after its reply,
 * which may be waiting in tx with others (a device busy with a batch is
 * not suspended between two of its requests). */
static void session_idle(struct core_session *s)
{
	if (s->tx_len)
		s->idle_due = true;
	else
		pm_idle(s->dev);
}

/* Replies go out through the device's channel, which serialises them
 * with the requests of message DMA sent from other threads. While another
 * request is already buffered (s->defer), a reply without descriptors
 * waits in tx; the reply of the last request of a batch takes the waiting
 * ones with it. A reply with descriptors is sent alone, after those
 * waiting: descriptors ride on the first byte of a sendmsg, and a client
 * reading header by header would give them to the first message of it. */
static int session_send(struct core_session *s, struct vfu_hdr *h, const void *p1, size_t l1,
			const void *p2, size_t l2, const int *fds, int nfds)
{
	size_t size = sizeof(*h) + l1 + l2;
	if (s->tx && !nfds && (s->defer || s->tx_len) && size <= s->tx_cap - s->tx_len) {
		h->size = (uint32_t)size;
		uint8_t *p = s->tx + s->tx_len;
		memcpy(p, h, sizeof(*h));
		if (l1)
			memcpy(p + sizeof(*h), p1, l1);
		if (l2)
			memcpy(p + sizeof(*h) + l1, p2, l2);
		s->tx_len += size;
		return s->defer ? 0 : tx_flush(s);
	}
	int rc = tx_flush(s);
	if (rc)
		return rc;
	atomic_fetch_add_explicit(&s->dev->tx_sends, 1, memory_order_relaxed);
	return channel_send(&s->dev->chan, h, p1, l1, p2, l2, fds, nfds);
}

static int send_error(struct core_session *s, const struct vfu_hdr *req, int err)
{
	if (req->flags & VFU_F_NO_REPLY)
		return 0;
	struct vfu_hdr h = { .msg_id = req->msg_id, .cmd = req->cmd,
			     .flags = VFU_F_TYPE_REPLY | VFU_F_ERROR, .error = (uint32_t)-err };
	return session_send(s, &h, NULL, 0, NULL, 0, NULL, 0);
}

/* --- dispatch --- */

static int reply_or_error(struct core_session *s, struct wire_msg *m, struct reply *r, int rc);

int session_dispatch(struct core_session *s, struct wire_msg *m)
{
	struct vfpm_device *dev = s->dev;
	uint32_t type = m->hdr.flags & VFU_F_TYPE_MASK;
	int rc, ret;
	bool idle = false;

	if (type == VFU_F_TYPE_REPLY) {
		channel_deliver(&dev->chan, m);   /* a reply to message DMA */
		return 0;
	}
	const struct cmd_desc *d = m->hdr.cmd <= VFU_CMD_MAX ? &cmds[m->hdr.cmd] : NULL;
	if (type != VFU_F_TYPE_COMMAND || (m->hdr.flags & VFU_F_ERROR) ||
	    (m->hdr.flags & ~(VFU_F_TYPE_MASK | VFU_F_NO_REPLY | VFU_F_ERROR)))
		rc = -EINVAL;
	else if (!d || !d->fn)
		rc = -EINVAL;   /* unknown command, or a server->client one */
	else if (!s->version_done && m->hdr.cmd != VFU_CMD_VERSION)
		rc = -EINVAL;   /* VERSION must come first */
	else
		rc = 1;

	struct reply r = { .buf = NULL };
	r.buf = r.small;
	if (rc == 1 && d->asleep && !m->nfds && m->len >= d->min_len && pm_maybe_asleep(dev)) {
		/* V3: a promoted device answers config space without waking */
		mutex_lock(&dev->req_lock);
		int a = d->asleep(s, m, &r);
		if (a != -EAGAIN)
			atomic_fetch_add_explicit(&dev->requests, 1, memory_order_relaxed);
		mutex_unlock(&dev->req_lock);
		if (a != -EAGAIN) {
			rc = a;
		} else {
			if (r.buf != r.small)
				free(r.buf);
			r.buf = r.small;
			r.len = 0;
		}
	}
	if (rc == 1) {
		/* Contract §3: a device command holds a PM reference for its
		 * whole handling, taken before its payload is validated (an
		 * invalid request still wakes the device, B13), except a
		 * zero-length or bad-region access, which the kernel rejects
		 * first. */
		bool pm = d->device_cmd && !(d->pm_skip && d->pm_skip(m));
		if (pm && pm_request_begin(dev))
			rc = -EIO;
		if (rc == 1 && m->nfds > d->max_fds)
			rc = -EINVAL;   /* stray descriptors: closed below with the message */
		else if (rc == 1 && m->len < d->min_len)
			rc = -EINVAL;
		if (rc == 1 && d->device_cmd) {
			mutex_lock(&dev->req_lock);
			atomic_fetch_add_explicit(&dev->requests, 1, memory_order_relaxed);
			rc = d->fn(s, m, &r);
			mutex_unlock(&dev->req_lock);
		} else if (rc == 1) {
			rc = d->fn(s, m, &r);
		}
		/* The count drops before the reply, as the ioctl's put comes
		 * before it returns: a client that sees the reply sees the
		 * count without this request. The idle suspend it may cause is
		 * queued after the reply, off the reply's path. */
		if (pm)
			idle = pm_request_end_deferred(dev);
	}

	ret = reply_or_error(s, m, &r, rc);
	if (idle)
		session_idle(s);
	if (r.buf != r.small)
		free(r.buf);
	wire_msg_release(m);
	return ret;
}

static int reply_or_error(struct core_session *s, struct wire_msg *m, struct reply *r, int rc)
{
	struct vfpm_device *dev = s->dev;
	const struct cmd_desc *d = m->hdr.cmd <= VFU_CMD_MAX ? &cmds[m->hdr.cmd] : NULL;
	int ret = 0;
	if (rc) {
		DLOG(dev, VFPM_LOG_DEBUG, "%s (id %u): error %d", vfu_cmd_name(m->hdr.cmd),
		     m->hdr.msg_id, -rc);
		ret = send_error(s, &m->hdr, rc);
		/* A failed VERSION leaves nothing both sides accept: close. */
		if (!ret && m->hdr.cmd == VFU_CMD_VERSION && !s->version_done && d && d->fn)
			ret = -EPROTO;
	} else if (!(m->hdr.flags & VFU_F_NO_REPLY)) {
		struct vfu_hdr h = { .msg_id = m->hdr.msg_id, .cmd = m->hdr.cmd,
				     .flags = VFU_F_TYPE_REPLY };
		ret = session_send(s, &h, r->buf, r->len, r->data, r->data_len, r->fds, r->nfds);
	}
	return ret;
}

int session_set_send_timeout(struct core_session *s, int ms)
{
	struct timeval tv = { 0, 0 };
	if (ms > 0) {
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	}
	return setsockopt(s->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

int session_init(struct core_session *s, struct vfpm_device *dev, int fd)
{
	memset(s, 0, sizeof(*s));
	s->dev = dev;
	s->fd = fd;
	s->handshake_ms = SESSION_HANDSHAKE_MS;
	s->poll_us = dev->poll_us;
	session_set_send_timeout(s, SESSION_SEND_MS);   /* a socketpair in tests may refuse */
	wire_caps_default(&s->peer);
	return channel_attach(&dev->chan, fd);
}

/* A message that came with more descriptors than the server takes (they
 * are closed, the body is gone): EINVAL. A device command still takes its
 * PM reference first, as every invalid device request does (B13: it wakes
 * the device and fires an armed wakeup). */
static int reject_fd_overflow(struct core_session *s, struct wire_msg *m)
{
	struct vfpm_device *dev = s->dev;
	if ((m->hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_COMMAND)
		return 0;
	const struct cmd_desc *d = m->hdr.cmd <= VFU_CMD_MAX ? &cmds[m->hdr.cmd] : NULL;
	bool pm = s->version_done && d && d->fn && d->device_cmd;
	int err = -EINVAL;
	if (pm && pm_request_begin(dev))
		err = -EIO;
	bool idle = pm && pm_request_end_deferred(dev);
	int rc = send_error(s, &m->hdr, err);
	if (idle)
		session_idle(s);
	return rc;
}

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Bounds the next receive by what is left of the handshake deadline (none
 * once VERSION is done). Returns 0, or -ETIMEDOUT when it has passed. */
static int handshake_bound(struct core_session *s, int64_t deadline, bool *bounded)
{
	if (s->handshake_ms <= 0 || (s->version_done && !*bounded))
		return 0;
	struct timeval tv = { 0, 0 };   /* 0: no timeout */
	if (!s->version_done) {
		int64_t left = deadline - mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		tv.tv_sec = (time_t)(left / 1000);
		tv.tv_usec = (suseconds_t)(left % 1000) * 1000;
	}
	if (setsockopt(s->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		return -errno;
	*bounded = !s->version_done;
	return 0;
}

static uint64_t mono_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Waits, without blocking, until the socket is readable (or at EOF or in
 * error, which the read then reports) or poll_us have passed: true when
 * the next read will not block. Between two looks the thread yields its
 * CPU: on a machine with fewer CPUs than runnable threads the client may
 * be waiting for this very CPU to send the request polled for, and a
 * plain spin would keep it out for a whole time slice. With nothing else
 * to run, sched_yield returns at once. poll() looks at the queue without
 * taking the socket's locks, which the client's send needs (a recv with
 * MSG_PEEK takes them: polled that way, pipelined throughput fell to a
 * third). */
static bool poll_window(struct core_session *s)
{
	uint64_t end = mono_ns() + (uint64_t)s->poll_us * 1000u;
	unsigned long calls = 0;
	bool ready;
	for (;;) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int n = poll(&p, 1, 0);
		calls++;
		if (n > 0 || (n < 0 && errno != EINTR)) {
			ready = true;
			break;
		}
		if (mono_ns() >= end) {
			ready = false;
			break;
		}
		sched_yield();
	}
	atomic_fetch_add_explicit(&s->dev->rx_poll_calls, calls, memory_order_relaxed);
	return ready;
}

/* One read into the session's buffer. After a request the client's next
 * one is often on its way: it is polled for (poll_us) rather than slept
 * for. The handshake is never polled (its deadline is SO_RCVTIMEO). */
static int session_read(struct core_session *s, struct wire_reader *rd, bool served)
{
	struct vfpm_device *dev = s->dev;
	int rc;
	if (s->version_done && s->poll_us && served) {
		rc = wire_reader_fill(rd, s->fd, MSG_DONTWAIT);
		if (rc == -EAGAIN) {
			/* that look found nothing: a call of the window */
			atomic_fetch_add_explicit(&dev->rx_poll_calls, 1, memory_order_relaxed);
			if (poll_window(s))
				rc = wire_reader_fill(rd, s->fd, MSG_DONTWAIT);
		}
		if (rc != -EAGAIN) {
			atomic_fetch_add_explicit(&dev->rx_reads, 1, memory_order_relaxed);
			if (rc > 0)
				atomic_fetch_add_explicit(&dev->rx_polled, 1, memory_order_relaxed);
			return rc;
		}
	}
	/* An idle client gives its thread back: nothing within idle_ms
	 * (not even EOF), and the caller watches the socket instead. Never
	 * during the handshake, whose deadline is the receive timeout. */
	if (s->version_done && s->idle_ms > 0) {
		struct pollfd p = { .fd = s->fd, .events = POLLIN };
		int n;
		while ((n = poll(&p, 1, s->idle_ms)) < 0 && errno == EINTR)
			;
		if (n == 0)
			return -ETIME;   /* no read returns it: "idle" */
	}
	/* counted once it returns: a client that has its replies sees
	 * every read that brought its requests, and no other */
	rc = wire_reader_fill(rd, s->fd, 0);
	atomic_fetch_add_explicit(&dev->rx_blocking, 1, memory_order_relaxed);
	if (rc != -EAGAIN)
		atomic_fetch_add_explicit(&dev->rx_reads, 1, memory_order_relaxed);
	return rc;
}

/* Receive buffer and reply buffer of a session (batched I/O). */
#define SESSION_RX_BUF (64u << 10)
#define SESSION_TX_BUF (16u << 10)

/* The first call: buffers, the handshake's deadline. */
static int session_start(struct core_session *s)
{
	/* A connection that never completes VERSION must not hold the device
	 * (a second client is refused while it is connected): the handshake
	 * has a deadline from the connection on. */
	s->deadline = mono_ms() + s->handshake_ms;
	s->bounded = false;
	s->served = false;
	int rc = wire_reader_init(&s->rd, SESSION_RX_BUF, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS);
	s->tx = rc ? NULL : malloc(SESSION_TX_BUF);
	if (!s->tx) {
		if (!rc)
			wire_reader_fini(&s->rd);
		return -ENOMEM;
	}
	s->tx_cap = SESSION_TX_BUF;
	s->tx_len = 0;
	s->running = true;
	return 0;
}

/* The last: replies still waiting go out, the buffers go. */
static void session_stop(struct core_session *s)
{
	/* replies of requests served before an error still go out */
	s->defer = false;
	tx_flush(s);
	/* Nobody reads replies any more: a device thread waiting for one
	 * fails now (ENOTCONN) rather than at its deadline. */
	channel_hangup(&s->dev->chan);
	wire_reader_fini(&s->rd);
	free(s->tx);
	s->tx = NULL;
	s->tx_cap = 0;
	s->running = false;
}

int session_run(struct core_session *s)
{
	int rc;
	if (!s->running && (rc = session_start(s)))
		return rc;
	/* this thread reads the replies of message DMA now (a session that
	 * was idle goes on in another thread than the one it left) */
	channel_set_reader(&s->dev->chan);
	struct wire_reader *rd = &s->rd;
	for (;;) {
		struct wire_msg m;
		rc = handshake_bound(s, s->deadline, &s->bounded);
		if (rc)
			break;
		rc = wire_reader_next(rd, s->fd, &m);
		if (rc == -EAGAIN) {
			/* nothing whole buffered: every reply is out (the
			 * last request of a batch is never deferred) */
			rc = session_read(s, rd, s->served);
			if (rc == -ETIME) {
				/* this thread ends; its id may be reused by
				 * a thread that does DMA before a new reader
				 * is set, and must not get EDEADLK */
				channel_clear_reader(&s->dev->chan);
				return SESSION_IDLE;
			}
			if (rc > 0)
				continue;
		}
		if ((rc == -EAGAIN || rc == -ETIMEDOUT) && !s->version_done) {
			DLOG(s->dev, VFPM_LOG_WARN, "no VERSION within %d ms: closing the connection",
			     s->handshake_ms);
			rc = -ETIMEDOUT;
			break;
		}
		if (rc == -EAGAIN)
			rc = -EIO;   /* a blocking read cannot say "nothing yet" */
		if (rc == 0 || rc == -EINVAL || rc == -ENOMEM)
			atomic_fetch_add_explicit(&s->dev->rx_msgs, 1, memory_order_relaxed);
		s->served = true;
		/* the reply may wait when the next request is already here */
		s->defer = wire_reader_whole(rd);
		if (rc == -EINVAL) {
			/* too many descriptors: they are closed; answer and go on */
			rc = reject_fd_overflow(s, &m);
			wire_msg_release(&m);
		} else if (!rc) {
			rc = session_dispatch(s, &m);
		}
		s->defer = false;
		if (!rc && !wire_reader_whole(rd))
			rc = tx_flush(s);   /* the last request had no reply (NO_REPLY) */
		if (rc)
			break;
	}
	session_stop(s);
	if (rc == -ECONNRESET)
		rc = 0;
	return rc;
}

void session_fini(struct core_session *s)
{
	struct vfpm_device *dev = s->dev;
	if (s->running)
		session_stop(s);   /* ended while idle, never called again */
	/* Wake any device thread waiting on a DMA reply: none will come
	 * (the model's quiesce in device_close may wait for that thread). */
	channel_hangup(&dev->chan);
	mutex_lock(&dev->req_lock);
	/* A connection that never finished VERSION never opened the device
	 * and could not configure anything (every other command needs
	 * VERSION first): there is nothing to undo, and the device may be
	 * runtime-suspended, where a reset would touch it asleep (it left an
	 * idle device "suspended" in D0 with its model unparked: V1, V5). */
	if (s->version_done)
		dev_event(dev, EV_CLIENT_DISCONNECT, -1, -1, NULL);
	if (s->version_done)
		device_close(dev);   /* T2/T10: silent exit, D0, reset, idle */
	mutex_unlock(&dev->req_lock);
	channel_detach(&dev->chan);
}
