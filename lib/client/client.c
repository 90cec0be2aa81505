/* vfio-user client: VERSION negotiation, a synchronous request/reply core
 * that serves server-initiated DMA while it waits, and one function per
 * command of include/vfpm/client.h. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vfpm/client.h"
#include "wire/wire.h"

#define CLIENT_DEFAULT_MAX_FDS 8u
#define CLIENT_MAX_XFER_LIMIT (64u << 20)  /* largest max_data_xfer_size we offer */
#define INFO_MAX_ARGSZ (64u << 10)          /* bound for truncate-and-retry replies */
#define INFO_MAX_TRIES 4
#define CAP_CHAIN_MAX 64                    /* capability headers walked at most */
#define IOFDS_INITIAL 16

/* A DMA window the client mapped, kept to serve DMA_READ/DMA_WRITE. */
struct dma_ent {
	uint64_t iova, size;
	uint32_t prot;       /* VFU_DMA_FLAG_* granted to the device */
	uint8_t *host;       /* host address of iova */
	void *base;          /* page-aligned start, for munmap */
	size_t map_len;
};

struct vfpm_client {
	int sock;
	int twin;                  /* server->client command socket, or -1 */
	uint16_t msg_id;
	int dead;                  /* 0, or the negative errno that broke the stream */
	size_t recv_max;           /* largest message we accept */
	struct wire_caps mine;     /* what we offered (what we can receive) */
	struct vfpm_server_caps srv;
	struct dma_ent *maps;
	size_t nmaps, maps_cap;
};

/* ------------------------------------------------------------------ */
/* Receiving */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits (timeout_ms < 0: forever) until the main or twin socket is
 * readable. Returns that socket, -ETIMEDOUT, or a negative errno. */
static int wait_readable(struct vfpm_client *c, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = c->twin, .events = POLLIN },  /* twin first: the server may block on it */
		{ .fd = c->sock, .events = POLLIN },
	};
	struct pollfd *p = c->twin >= 0 ? pfd : pfd + 1;
	nfds_t n = c->twin >= 0 ? 2 : 1;
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;

	for (;;) {
		int left = -1;
		if (timeout_ms >= 0) {
			int64_t d = deadline - now_ms();
			left = d > 0 ? (int)d : 0;
		}
		int rc = poll(p, n, left);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc == 0)
			return -ETIMEDOUT;
		for (nfds_t i = 0; i < n; i++)
			if (p[i].revents)  /* HUP/ERR too: the read reports it */
				return p[i].fd;
	}
}

/* Marks the stream unusable for errors after which message framing or
 * request/reply pairing can no longer be trusted. */
static int fail(struct vfpm_client *c, int rc)
{
	if (!c->dead)
		c->dead = rc;
	return rc;
}

static int send_error(int s, const struct vfu_hdr *req, uint32_t err)
{
	struct vfu_hdr h = {
		.msg_id = req->msg_id,
		.cmd = req->cmd,
		.flags = VFU_F_TYPE_REPLY | VFU_F_ERROR,
		.error = err,
	};
	return wire_send(s, &h, NULL, 0, NULL, 0);
}

/* Finds [addr, addr+count) inside one DMA window. Returns the host
 * address, or NULL with *err set (EFAULT: unmapped, EPERM: the window does
 * not grant need). */
static uint8_t *dma_lookup(const struct vfpm_client *c, uint64_t addr, uint64_t count,
			   uint32_t need, uint32_t *err)
{
	for (size_t i = 0; i < c->nmaps; i++) {
		const struct dma_ent *e = &c->maps[i];
		if (addr < e->iova || addr - e->iova > e->size || count > e->size - (addr - e->iova))
			continue;
		if ((e->prot & need) != need) {
			*err = EPERM;
			return NULL;
		}
		return e->host + (addr - e->iova);
	}
	*err = EFAULT;
	return NULL;
}

/* Answers one server->client command (DMA_READ/DMA_WRITE; anything else
 * gets EINVAL). Returns 0, or a negative errno if the answer could not be
 * sent. */
static int serve_cmd(struct vfpm_client *c, int s, const struct wire_msg *m)
{
	const struct vfu_hdr *rq = &m->hdr;
	bool want_reply = !(rq->flags & VFU_F_NO_REPLY);
	struct vfu_dma_access acc = { 0 };
	uint8_t *host = NULL;
	uint32_t err = 0;

	if (m->nfds > 0) {
		err = EINVAL;  /* DMA requests never carry descriptors */
	} else if (rq->cmd == VFU_CMD_DMA_READ || rq->cmd == VFU_CMD_DMA_WRITE) {
		bool rd = rq->cmd == VFU_CMD_DMA_READ;
		if (m->len < sizeof(acc)) {
			err = EINVAL;
		} else {
			memcpy(&acc, m->payload, sizeof(acc));
			if (acc.count > c->mine.max_data_xfer_size)
				err = EINVAL;
			else if (rd ? m->len != sizeof(acc) : m->len - sizeof(acc) != acc.count)
				err = EINVAL;
			else if (acc.count)
				/* The device reads guest memory on DMA_READ, so the
				 * window must be readable by the device. */
				host = dma_lookup(c, acc.addr, acc.count,
						  rd ? VFU_DMA_FLAG_READ : VFU_DMA_FLAG_WRITE, &err);
			if (!err && !rd && acc.count)
				memcpy(host, m->payload + sizeof(acc), acc.count);
		}
	} else {
		err = EINVAL;
	}

	if (!want_reply)
		return 0;
	if (err)
		return send_error(s, rq, err);
	struct vfu_hdr h = { .msg_id = rq->msg_id, .cmd = rq->cmd, .flags = VFU_F_TYPE_REPLY };
	if (rq->cmd == VFU_CMD_DMA_READ)
		return wire_send2(s, &h, &acc, sizeof(acc), host, acc.count, NULL, 0);
	return wire_send(s, &h, &acc, sizeof(acc), NULL, 0);
}

/* Receives one message from whichever socket is readable first.
 *
 * Returns 0 with the message in *m and its socket in *sock; 1 when a
 * message was consumed but is unusable and nothing is left to do (a server
 * command with too many descriptors or no memory for its body, which was
 * answered here); -ETIMEDOUT; or a negative errno. The wire layer keeps the
 * header of such a message: if it is the reply to in-flight request
 * `expect` (-1: none), its error is returned and the stream stays usable. */
static int recv_one(struct vfpm_client *c, int timeout_ms, int expect, struct wire_msg *m,
		    int *sock)
{
	int s, rc;
	do {
		s = wait_readable(c, timeout_ms);
		if (s < 0)
			return s == -ETIMEDOUT ? s : fail(c, s);
		rc = wire_recv(s, m, c->recv_max, (int)c->mine.max_msg_fds);
		if (rc == -ECONNRESET && s == c->twin) {
			/* The server closed the twin between messages: no more
			 * DMA requests, but replies may still be queued on
			 * the main socket. */
			close(c->twin);
			c->twin = -1;
			rc = -EAGAIN;
		}
		/* -EAGAIN: a non-blocking socket woke up with nothing to read. */
	} while (rc == -EAGAIN);
	if (rc == -EINVAL || rc == -ENOMEM) {
		uint32_t type = m->hdr.flags & VFU_F_TYPE_MASK;
		if (type == VFU_F_TYPE_COMMAND) {
			if (!(m->hdr.flags & VFU_F_NO_REPLY)) {
				int e = send_error(s, &m->hdr, (uint32_t)-rc);
				if (e < 0)
					return fail(c, e);
			}
			return 1;
		}
		if (type == VFU_F_TYPE_REPLY && s == c->sock && expect >= 0 &&
		    m->hdr.msg_id == (uint16_t)expect)
			return rc == -EINVAL ? -EPROTO : rc;
		return fail(c, -EPROTO);
	}
	if (rc < 0)
		return fail(c, rc);  /* EOF, bad framing: nothing more can be read */
	*sock = s;
	return 0;
}

/* Sends a request and waits for its reply, serving server commands that
 * arrive first. On success *reply holds the reply (caller releases). */
static int call(struct vfpm_client *c, uint16_t cmd, const void *p1, size_t l1, const void *p2,
		size_t l2, const int *fds, int nfds, struct wire_msg *reply)
{
	if (c->dead)
		return c->dead;
	struct vfu_hdr h = { .msg_id = ++c->msg_id, .cmd = cmd, .flags = VFU_F_TYPE_COMMAND };
	int rc = wire_send2(c->sock, &h, p1, l1, p2, l2, fds, nfds);
	if (rc == -EINVAL || rc == -EMSGSIZE)
		return rc;  /* refused before anything was sent */
	if (rc < 0)
		return fail(c, rc);  /* a partial message may be on the wire */

	for (;;) {
		struct wire_msg m;
		int s;
		rc = recv_one(c, -1, h.msg_id, &m, &s);
		if (rc == 1)
			continue;
		if (rc < 0)
			return rc;
		uint32_t type = m.hdr.flags & VFU_F_TYPE_MASK;
		if (type == VFU_F_TYPE_COMMAND) {
			rc = serve_cmd(c, s, &m);
			wire_msg_release(&m);
			if (rc < 0)
				return fail(c, rc);
			continue;
		}
		if (type != VFU_F_TYPE_REPLY || s != c->sock || m.hdr.msg_id != h.msg_id ||
		    m.hdr.cmd != cmd) {
			wire_msg_release(&m);
			return fail(c, -EPROTO);
		}
		if (m.hdr.flags & VFU_F_ERROR) {
			uint32_t e = m.hdr.error;
			wire_msg_release(&m);
			/* An errno of 0 or out of range says "failed" without why. */
			return e == 0 || e > 4095 ? -EINVAL : -(int)e;
		}
		*reply = m;
		return 0;
	}
}

/* call() for requests whose reply carries at least min_len bytes. */
static int call_min(struct vfpm_client *c, uint16_t cmd, const void *p1, size_t l1,
		    const void *p2, size_t l2, const int *fds, int nfds, size_t min_len,
		    struct wire_msg *reply)
{
	int rc = call(c, cmd, p1, l1, p2, l2, fds, nfds, reply);
	if (rc < 0)
		return rc;
	if (reply->len < min_len) {
		wire_msg_release(reply);
		return -EPROTO;
	}
	return 0;
}

VFPM_EXPORT int vfpm_client_serve_pending(struct vfpm_client *c, int timeout_ms)
{
	if (!c)
		return -EINVAL;
	if (c->dead)
		return c->dead;
	int served = 0;
	for (;;) {
		struct wire_msg m;
		int s;
		/* After the first request, drain only what is already queued. */
		int rc = recv_one(c, served ? 0 : timeout_ms, -1, &m, &s);
		if (rc == 1) {
			served++;
			continue;
		}
		if (rc == -ETIMEDOUT)
			return served;
		if (rc < 0)
			return served ? served : rc;  /* the next call reports it */
		if ((m.hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_COMMAND) {
			wire_msg_release(&m);
			return fail(c, -EPROTO);  /* a reply with no request in flight */
		}
		rc = serve_cmd(c, s, &m);
		wire_msg_release(&m);
		if (rc < 0)
			return fail(c, rc);
		served++;
	}
}

/* ------------------------------------------------------------------ */
/* Connection and VERSION */

/* Inserts extra members into the "capabilities" object of a document
 * made by wire_caps_format, i.e. before its last-but-one '}'. */
static char *splice_caps(const char *doc, const char *extra)
{
	size_t n = strlen(doc);
	size_t i = n;
	int seen = 0;
	while (i > 0) {
		i--;
		if (doc[i] == '}' && ++seen == 2)
			break;
	}
	if (seen != 2)
		return NULL;
	size_t j = i;  /* does the object already have members? */
	while (j > 0 && (doc[j - 1] == ' ' || doc[j - 1] == '\n' || doc[j - 1] == '\t'))
		j--;
	bool empty = j > 0 && doc[j - 1] == '{';
	size_t el = strlen(extra);
	char *out = malloc(n + el + 2);
	if (!out)
		return NULL;
	memcpy(out, doc, i);
	size_t o = i;
	if (!empty)
		out[o++] = ',';
	memcpy(out + o, extra, el);
	o += el;
	memcpy(out + o, doc + i, n - i + 1);
	return out;
}

static int negotiate(struct vfpm_client *c, const char *extra)
{
	char *doc = wire_caps_format(&c->mine);
	if (!doc)
		return -ENOMEM;
	if (extra && *extra) {
		char *d2 = splice_caps(doc, extra);
		free(doc);
		if (!d2)
			return -ENOMEM;
		doc = d2;
	}
	struct vfu_version v = { .major = VFU_VERSION_MAJOR, .minor = VFU_VERSION_MINOR };
	struct wire_msg m;
	int rc = call(c, VFU_CMD_VERSION, &v, sizeof(v), doc, strlen(doc) + 1, NULL, 0, &m);
	free(doc);
	if (rc < 0)
		return rc;

	rc = -EPROTO;
	if (m.len < sizeof(v))
		goto out;
	memcpy(&v, m.payload, sizeof(v));
	if (v.major != VFU_VERSION_MAJOR || v.minor > VFU_VERSION_MINOR)
		goto out;
	const char *json = (const char *)m.payload + sizeof(v);
	size_t jlen = m.len - sizeof(v);
	struct wire_caps sc;
	if (wire_caps_parse(jlen ? json : NULL, jlen, &sc) < 0)
		goto out;
	if (sc.max_data_xfer_size == 0)
		goto out;
	c->srv = (struct vfpm_server_caps){
		.major = v.major,
		.minor = v.minor,
		.max_msg_fds = sc.max_msg_fds,
		.max_data_xfer_size = sc.max_data_xfer_size,
		.pgsizes = sc.pgsizes,
		.max_dma_maps = sc.max_dma_maps,
		/* A capability we did not offer is not granted. */
		.write_multiple = sc.write_multiple && c->mine.write_multiple,
		.twin_socket = sc.twin_socket && c->mine.twin_socket,
	};
	if (c->srv.twin_socket) {
		/* Granted twin socket without a usable fd: the spec says drop. */
		int i = sc.twin_fd_index;
		if (i < 0 || i >= m.nfds)
			goto out;
		c->twin = wire_msg_take_fd(&m, i);
		if (c->twin < 0)
			goto out;
	}
	rc = 0;
out:
	wire_msg_release(&m);
	return rc;
}

VFPM_EXPORT int vfpm_client_connect_fd(int fd, const struct vfpm_client_opts *opts,
				       struct vfpm_client **out)
{
	struct vfpm_client_opts o = { 0 };
	if (opts)
		o = *opts;
	if (fd < 0 || !out || o.max_msg_fds > VFPM_MAX_MSG_FDS ||
	    o.max_data_xfer_size > CLIENT_MAX_XFER_LIMIT) {
		if (fd >= 0)
			close(fd);
		return -EINVAL;
	}
	struct vfpm_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return -ENOMEM;
	}
	c->sock = fd;
	c->twin = -1;
	wire_caps_default(&c->mine);
	c->mine.max_msg_fds = o.max_msg_fds ? o.max_msg_fds : CLIENT_DEFAULT_MAX_FDS;
	c->mine.max_data_xfer_size = o.max_data_xfer_size ? o.max_data_xfer_size
							  : VFU_DEFAULT_MAX_DATA_XFER;
	c->mine.write_multiple = o.write_multiple;
	c->mine.twin_socket = o.twin_socket;
	/* Room for the largest data transfer and for retried info replies. */
	size_t body = c->mine.max_data_xfer_size > INFO_MAX_ARGSZ ? c->mine.max_data_xfer_size
								   : INFO_MAX_ARGSZ;
	c->recv_max = body + 4096;

	int rc = negotiate(c, o.extra_caps_json);
	if (rc < 0) {
		vfpm_client_close(c);
		return rc;
	}
	*out = c;
	return 0;
}

VFPM_EXPORT int vfpm_client_connect(const char *path, const struct vfpm_client_opts *opts,
				    struct vfpm_client **out)
{
	if (!path || !out)
		return -EINVAL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(path);
	if (n == 0)
		return -EINVAL;
	if (n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, path, n + 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return vfpm_client_connect_fd(fd, opts, out);
}

VFPM_EXPORT void vfpm_client_close(struct vfpm_client *c)
{
	if (!c)
		return;
	if (c->sock >= 0)
		close(c->sock);
	if (c->twin >= 0)
		close(c->twin);
	for (size_t i = 0; i < c->nmaps; i++)
		munmap(c->maps[i].base, c->maps[i].map_len);
	free(c->maps);
	free(c);
}

VFPM_EXPORT int vfpm_client_fd(const struct vfpm_client *c)
{
	return c ? c->sock : -EINVAL;
}

VFPM_EXPORT const struct vfpm_server_caps *vfpm_client_server_caps(const struct vfpm_client *c)
{
	return c ? &c->srv : NULL;
}

/* ------------------------------------------------------------------ */
/* Info queries */

VFPM_EXPORT int vfpm_client_device_info(struct vfpm_client *c, struct vfpm_device_info *info)
{
	if (!c || !info)
		return -EINVAL;
	struct vfu_device_info req = { .argsz = sizeof(req) }, rep;
	struct wire_msg m;
	int rc = call_min(c, VFU_CMD_DEVICE_GET_INFO, &req, sizeof(req), NULL, 0, NULL, 0,
			  sizeof(rep), &m);
	if (rc < 0)
		return rc;
	memcpy(&rep, m.payload, sizeof(rep));
	wire_msg_release(&m);
	info->flags = rep.flags;
	info->num_regions = rep.num_regions;
	info->num_irqs = rep.num_irqs;
	return 0;
}

VFPM_EXPORT int vfpm_client_irq_info(struct vfpm_client *c, uint32_t index,
				     struct vfpm_irq_info *info)
{
	if (!c || !info)
		return -EINVAL;
	struct vfu_irq_info req = { .argsz = sizeof(req), .index = index }, rep;
	struct wire_msg m;
	int rc = call_min(c, VFU_CMD_GET_IRQ_INFO, &req, sizeof(req), NULL, 0, NULL, 0,
			  sizeof(rep), &m);
	if (rc < 0)
		return rc;
	memcpy(&rep, m.payload, sizeof(rep));
	wire_msg_release(&m);
	info->flags = rep.flags;
	info->count = rep.count;
	return 0;
}

/* Walks the region-info capability chain in buf[0..len) and fills the
 * sparse mmap areas. Offsets count from the start of buf. */
static int parse_region_caps(const uint8_t *buf, size_t len, uint32_t first,
			     struct vfpm_region_info *info)
{
	bool have_sparse = false;
	uint64_t off = first;
	for (int n = 0; off != 0; n++) {
		struct vfu_cap_header ch;
		if (n >= CAP_CHAIN_MAX)
			return -EPROTO;  /* a cycle, or absurdly long */
		if (off < sizeof(struct vfu_region_info) || off > len || len - off < sizeof(ch))
			return -EPROTO;
		memcpy(&ch, buf + off, sizeof(ch));
		if (ch.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP && !have_sparse) {
			struct vfu_cap_sparse_mmap sp;
			if (len - off < sizeof(sp))
				return -EPROTO;
			memcpy(&sp, buf + off, sizeof(sp));
			uint64_t need = (uint64_t)sp.nr_areas * sizeof(struct vfu_sparse_area);
			if (need > len - off - sizeof(sp))
				return -EPROTO;
			if (sp.nr_areas > VFPM_CLIENT_MAX_AREAS)
				return -E2BIG;  /* does not fit the API's array */
			for (uint32_t i = 0; i < sp.nr_areas; i++) {
				struct vfu_sparse_area a;
				memcpy(&a, buf + off + sizeof(sp) + i * sizeof(a), sizeof(a));
				info->areas[i].offset = a.offset;
				info->areas[i].size = a.size;
			}
			info->nr_areas = sp.nr_areas;
			have_sparse = true;
		}
		off = ch.next;
	}
	return 0;
}

/* A request whose reply may need more room than asked for (the
 * truncate-and-retry pattern): req starts with its u32 argsz; while the
 * reply's argsz is larger, ask again with it (bounded). */
static int call_retry_argsz(struct vfpm_client *c, uint16_t cmd, void *req, size_t req_len,
			    size_t min_reply, struct wire_msg *m)
{
	uint32_t argsz;
	memcpy(&argsz, req, sizeof(argsz));
	for (int tries = 0;; tries++) {
		int rc = call_min(c, cmd, req, req_len, NULL, 0, NULL, 0, min_reply, m);
		if (rc < 0)
			return rc;
		uint32_t need;
		memcpy(&need, m->payload, sizeof(need));
		if (need <= argsz)
			return 0;
		wire_msg_release(m);
		if (need > INFO_MAX_ARGSZ || tries + 1 >= INFO_MAX_TRIES)
			return -EPROTO;
		argsz = need;
		memcpy(req, &argsz, sizeof(argsz));
	}
}

VFPM_EXPORT int vfpm_client_region_info(struct vfpm_client *c, uint32_t index,
					struct vfpm_region_info *info)
{
	if (!c || !info)
		return -EINVAL;
	struct vfu_region_info rep, req = { .argsz = sizeof(req), .index = index };
	struct wire_msg m;
	int crc = call_retry_argsz(c, VFU_CMD_GET_REGION_INFO, &req, sizeof(req), sizeof(rep), &m);
	if (crc < 0)
		return crc;
	memcpy(&rep, m.payload, sizeof(rep));

	memset(info, 0, sizeof(*info));
	info->index = rep.index;
	info->flags = rep.flags;
	info->size = rep.size;
	info->offset = rep.offset;
	info->fd = -1;
	int rc = 0;
	if ((rep.flags & VFIO_REGION_INFO_FLAG_CAPS) && rep.cap_offset)
		rc = parse_region_caps(m.payload, m.len, rep.cap_offset, info);
	if (rc == 0 && (rep.flags & VFIO_REGION_INFO_FLAG_MMAP) && m.nfds > 0)
		info->fd = wire_msg_take_fd(&m, 0);
	wire_msg_release(&m);
	if (rc < 0) {
		memset(info->areas, 0, sizeof(info->areas));
		info->nr_areas = 0;
	}
	return rc;
}

VFPM_EXPORT int vfpm_client_mmap_area(const struct vfpm_region_info *info, unsigned area_idx,
				      void **addr, size_t *len)
{
	if (!info || !addr || !len)
		return -EINVAL;
	if (info->fd < 0)
		return -EBADF;
	uint64_t aoff, asz;
	if (info->nr_areas == 0) {
		/* No sparse cap: vfio's rule is that the whole region maps. */
		if (area_idx != 0)
			return -EINVAL;
		aoff = 0;
		asz = info->size;
	} else {
		if (area_idx >= info->nr_areas || info->nr_areas > VFPM_CLIENT_MAX_AREAS)
			return -EINVAL;
		aoff = info->areas[area_idx].offset;
		asz = info->areas[area_idx].size;
	}
	if (asz == 0 || asz > SIZE_MAX || aoff > INT64_MAX - info->offset)
		return -EINVAL;
	int prot = 0;
	if (info->flags & VFIO_REGION_INFO_FLAG_READ)
		prot |= PROT_READ;
	if (info->flags & VFIO_REGION_INFO_FLAG_WRITE)
		prot |= PROT_WRITE;
	if (!prot)
		prot = PROT_READ | PROT_WRITE;
	void *p = mmap(NULL, (size_t)asz, prot, MAP_SHARED, info->fd,
		       (off_t)(info->offset + aoff));
	if (p == MAP_FAILED)
		return -errno;
	*addr = p;
	*len = (size_t)asz;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Region access */

VFPM_EXPORT int vfpm_client_region_read(struct vfpm_client *c, uint32_t region,
					uint64_t offset, void *buf, uint32_t count)
{
	if (!c || (count && !buf) || offset + count < offset)
		return -EINVAL;
	/* The reply carries the data, so both sides' limits apply. */
	uint32_t max = c->srv.max_data_xfer_size;
	if (max > c->mine.max_data_xfer_size)
		max = c->mine.max_data_xfer_size;
	uint32_t done = 0;
	do {
		uint32_t n = count - done > max ? max : count - done;
		struct vfu_region_access req = { .offset = offset + done, .region = region, .count = n };
		struct wire_msg m;
		int rc = call_min(c, VFU_CMD_REGION_READ, &req, sizeof(req), NULL, 0, NULL, 0,
				  sizeof(req), &m);
		if (rc < 0)
			return rc;
		struct vfu_region_access rep;
		memcpy(&rep, m.payload, sizeof(rep));
		if (rep.count != n || m.len - sizeof(rep) != n) {
			wire_msg_release(&m);
			return -EPROTO;
		}
		if (n)
			memcpy((uint8_t *)buf + done, m.payload + sizeof(rep), n);
		wire_msg_release(&m);
		done += n;
	} while (done < count);
	return 0;
}

VFPM_EXPORT int vfpm_client_region_write(struct vfpm_client *c, uint32_t region,
					 uint64_t offset, const void *buf, uint32_t count)
{
	if (!c || (count && !buf) || offset + count < offset)
		return -EINVAL;
	uint32_t max = c->srv.max_data_xfer_size;
	uint32_t done = 0;
	do {
		uint32_t n = count - done > max ? max : count - done;
		struct vfu_region_access req = { .offset = offset + done, .region = region, .count = n };
		struct wire_msg m;
		int rc = call_min(c, VFU_CMD_REGION_WRITE, &req, sizeof(req),
				  n ? (const uint8_t *)buf + done : NULL, n, NULL, 0, sizeof(req), &m);
		if (rc < 0)
			return rc;
		wire_msg_release(&m);
		done += n;
	} while (done < count);
	return 0;
}

VFPM_EXPORT int vfpm_client_region_write_multi(struct vfpm_client *c,
					       const struct vfpm_write_multi_entry *e, size_t n)
{
	if (!c || (n && !e))
		return -EINVAL;
	if (!c->srv.write_multiple)
		return -ENOTSUP;
	for (size_t i = 0; i < n; i++)
		if (e[i].count < 1 || e[i].count > VFU_WRITE_MULTI_DATA)
			return -EINVAL;

	struct vfu_write_multi_entry *w = calloc(n < VFPM_MAX_WRITE_MULTI ? (n ? n : 1)
							: VFPM_MAX_WRITE_MULTI, sizeof(*w));
	if (!w)
		return -ENOMEM;
	int rc = 0;
	for (size_t at = 0; at < n && rc == 0;) {
		size_t k = n - at > VFPM_MAX_WRITE_MULTI ? VFPM_MAX_WRITE_MULTI : n - at;
		for (size_t i = 0; i < k; i++) {
			const struct vfpm_write_multi_entry *s = &e[at + i];
			memset(&w[i], 0, sizeof(w[i]));
			w[i].offset = s->offset;
			w[i].region = s->region;
			w[i].count = s->count;
			memcpy(w[i].data, s->data, s->count);
		}
		struct vfu_write_multi hd = { .wr_cnt = k }, rep;
		struct wire_msg m;
		rc = call_min(c, VFU_CMD_REGION_WRITE_MULTI, &hd, sizeof(hd), w, k * sizeof(*w),
			      NULL, 0, sizeof(rep), &m);
		if (rc < 0)
			break;
		memcpy(&rep, m.payload, sizeof(rep));
		wire_msg_release(&m);
		if (rep.wr_cnt != k)
			rc = -EPROTO;
		at += k;
	}
	free(w);
	return rc;
}

/* ------------------------------------------------------------------ */
/* IRQs and ioeventfds */

VFPM_EXPORT int vfpm_client_set_irqs(struct vfpm_client *c, uint32_t flags, uint32_t index,
				     uint32_t start, uint32_t count, const int *fds, int nfds,
				     const uint8_t *data)
{
	if (!c || nfds < 0 || (nfds && !fds))
		return -EINVAL;
	size_t dlen = 0;
	if ((flags & VFIO_IRQ_SET_DATA_TYPE_MASK) == VFIO_IRQ_SET_DATA_BOOL) {
		if (count && !data)
			return -EINVAL;
		dlen = count;
		if (dlen > UINT32_MAX - sizeof(struct vfu_irq_set))
			return -EINVAL;
	}
	struct vfu_irq_set req = {
		.argsz = (uint32_t)(sizeof(req) + dlen),  /* SET_IRQS: argsz is the request size */
		.flags = flags,
		.index = index,
		.start = start,
		.count = count,
	};
	struct wire_msg m;
	int rc = call(c, VFU_CMD_SET_IRQS, &req, sizeof(req), dlen ? data : NULL, dlen, fds, nfds,
		      &m);
	if (rc < 0)
		return rc;
	wire_msg_release(&m);
	return 0;
}

VFPM_EXPORT int vfpm_client_region_io_fds(struct vfpm_client *c, uint32_t index,
					  struct vfpm_ioeventfd *out, size_t max)
{
	if (!c || (max && !out))
		return -EINVAL;
	const size_t esz = sizeof(struct vfu_ioeventfd);
	struct vfu_region_io_fds rep, req = {
		.argsz = (uint32_t)(sizeof(req) + IOFDS_INITIAL * esz), .index = index };
	struct wire_msg m;
	int crc = call_retry_argsz(c, VFU_CMD_GET_REGION_IO_FDS, &req, sizeof(req), sizeof(rep), &m);
	if (crc < 0)
		return crc;
	memcpy(&rep, m.payload, sizeof(rep));

	size_t body = m.len - sizeof(rep);
	size_t stride = esz;
	int rc = 0;
	if (rep.count) {
		/* Entries are 40 bytes per the spec; libvfio-user sends 48, so
		 * accept any larger uniform stride. */
		if (body % rep.count == 0 && body / rep.count >= esz)
			stride = body / rep.count;
		else if (body / esz < rep.count)
			rc = -EPROTO;
	}
	size_t n = rep.count < max ? rep.count : max;
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct vfu_ioeventfd ent;
		memcpy(&ent, m.payload + sizeof(rep) + i * stride, sizeof(ent));
		if (ent.fd_index >= (uint32_t)m.nfds)
			rc = -EPROTO;
	}
	size_t i;
	for (i = 0; rc == 0 && i < n; i++) {
		struct vfu_ioeventfd ent;
		memcpy(&ent, m.payload + sizeof(rep) + i * stride, sizeof(ent));
		/* One server fd may back several entries: each gets its own. */
		int fd = fcntl(m.fds[ent.fd_index], F_DUPFD_CLOEXEC, 0);
		if (fd < 0) {
			rc = -errno;
			break;
		}
		out[i] = (struct vfpm_ioeventfd){
			.offset = ent.offset,
			.size = ent.size,
			.flags = ent.flags,
			.datamatch = ent.datamatch,
			.fd = fd,
		};
	}
	wire_msg_release(&m);
	if (rc < 0) {
		while (i > 0)
			close(out[--i].fd);
		return rc;
	}
	return (int)n;
}

/* ------------------------------------------------------------------ */
/* DMA */

static void dma_drop(struct vfpm_client *c, size_t i)
{
	munmap(c->maps[i].base, c->maps[i].map_len);
	c->maps[i] = c->maps[--c->nmaps];
}

VFPM_EXPORT int vfpm_client_dma_map(struct vfpm_client *c, int fd, uint64_t offset,
				    uint64_t iova, uint64_t size, uint32_t prot, void **host)
{
	if (!c || size == 0 || size > SIZE_MAX || iova + size - 1 < iova)
		return -EINVAL;
	if (c->dead)
		return c->dead;
	/* Make room first so that a mapping the server accepted is always
	 * recorded. */
	if (c->nmaps == c->maps_cap) {
		size_t nc = c->maps_cap ? c->maps_cap * 2 : 8;
		struct dma_ent *nm = realloc(c->maps, nc * sizeof(*nm));
		if (!nm)
			return -ENOMEM;
		c->maps = nm;
		c->maps_cap = nc;
	}

	struct dma_ent ent = { .iova = iova, .size = size, .prot = prot };
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -errno;
		/* Serving DMA past the end of a file would raise SIGBUS. */
		if (S_ISREG(st.st_mode) &&
		    (offset > (uint64_t)st.st_size || size > (uint64_t)st.st_size - offset))
			return -EINVAL;
		uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
		uint64_t delta = offset % pg;
		if (offset > INT64_MAX || size > SIZE_MAX - delta)
			return -EINVAL;
		ent.map_len = (size_t)(size + delta);
		ent.base = mmap(NULL, ent.map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
				(off_t)(offset - delta));
		if (ent.base == MAP_FAILED && (errno == EACCES || errno == EPERM) &&
		    !(prot & VFU_DMA_FLAG_WRITE))
			/* A read-only backing is enough when the device only reads. */
			ent.base = mmap(NULL, ent.map_len, PROT_READ, MAP_SHARED, fd,
					(off_t)(offset - delta));
		if (ent.base == MAP_FAILED)
			return -errno;
		ent.host = (uint8_t *)ent.base + delta;
	} else {
		ent.map_len = (size_t)size;
		ent.base = mmap(NULL, ent.map_len, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (ent.base == MAP_FAILED)
			return -errno;
		ent.host = ent.base;
	}

	struct vfu_dma_map req = {
		.argsz = sizeof(req),
		.flags = prot,
		.offset = fd >= 0 ? offset : 0,
		.addr = iova,
		.size = size,
	};
	struct wire_msg m;
	int rc = call(c, VFU_CMD_DMA_MAP, &req, sizeof(req), NULL, 0, fd >= 0 ? &fd : NULL,
		      fd >= 0 ? 1 : 0, &m);
	if (rc < 0) {
		munmap(ent.base, ent.map_len);
		return rc;
	}
	wire_msg_release(&m);
	/* The server treats an identical map as the same one: replace it. */
	for (size_t i = 0; i < c->nmaps; i++)
		if (c->maps[i].iova == iova && c->maps[i].size == size) {
			dma_drop(c, i);
			break;
		}
	c->maps[c->nmaps++] = ent;
	if (host)
		*host = ent.host;
	return 0;
}

VFPM_EXPORT int vfpm_client_dma_unmap(struct vfpm_client *c, uint64_t iova, uint64_t size)
{
	if (!c)
		return -EINVAL;
	struct vfu_dma_unmap req = { .argsz = sizeof(req), .addr = iova, .size = size };
	struct wire_msg m;
	/* Our copy stays until the reply: the server may still DMA before it. */
	int rc = call(c, VFU_CMD_DMA_UNMAP, &req, sizeof(req), NULL, 0, NULL, 0, &m);
	if (rc < 0)
		return rc;
	/* The spec echoes the 24 bytes; a bare reply is tolerated. */
	if (m.len != 0 && m.len < sizeof(req))
		rc = -EPROTO;
	wire_msg_release(&m);
	/* the server removed every map inside the range (type1 semantics) */
	for (size_t i = c->nmaps; rc == 0 && i-- > 0;)
		if (c->maps[i].iova >= iova && c->maps[i].iova - iova < size &&
		    c->maps[i].size <= size - (c->maps[i].iova - iova))
			dma_drop(c, i);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reset, features, raw requests */

VFPM_EXPORT int vfpm_client_reset(struct vfpm_client *c)
{
	if (!c)
		return -EINVAL;
	struct wire_msg m;
	int rc = call(c, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, &m);
	if (rc < 0)
		return rc;
	wire_msg_release(&m);
	return 0;
}

VFPM_EXPORT int vfpm_client_feature(struct vfpm_client *c, uint32_t flags, const void *data,
				    size_t len, int fd, void *reply, size_t *reply_len)
{
	if (!c || (len && !data) || (reply_len && *reply_len && !reply))
		return -EINVAL;
	size_t want = len;
	/* argsz is the largest reply accepted: for GET leave room for the
	 * caller's buffer even when the request carries less. */
	if ((flags & VFIO_DEVICE_FEATURE_GET) && reply_len && *reply_len > want)
		want = *reply_len;
	if (want > UINT32_MAX - sizeof(struct vfu_device_feature))
		return -EINVAL;
	struct vfu_device_feature req = {
		.argsz = (uint32_t)(sizeof(req) + want),
		.flags = flags,
	};
	struct wire_msg m;
	int rc = call_min(c, VFU_CMD_DEVICE_FEATURE, &req, sizeof(req), len ? data : NULL, len,
			  fd >= 0 ? &fd : NULL, fd >= 0 ? 1 : 0, sizeof(req), &m);
	if (rc < 0)
		return rc;
	if (reply_len) {
		size_t got = m.len - sizeof(req);
		size_t n = got < *reply_len ? got : *reply_len;
		if (n)
			memcpy(reply, m.payload + sizeof(req), n);
		*reply_len = n;
	}
	wire_msg_release(&m);
	return 0;
}

VFPM_EXPORT int vfpm_client_request(struct vfpm_client *c, uint16_t cmd, const void *payload,
				    size_t len, const int *fds, int nfds, void *reply,
				    size_t reply_max, size_t *reply_len, int *fds_out,
				    int max_fds, int *nfds_out)
{
	if (reply_len)
		*reply_len = 0;
	if (nfds_out)
		*nfds_out = 0;
	if (!c || (len && !payload) || nfds < 0 || (nfds && !fds) ||
	    (reply_max && !reply) || (max_fds > 0 && !fds_out))
		return -EINVAL;
	struct wire_msg m;
	int rc = call(c, cmd, len ? payload : NULL, len, NULL, 0, fds, nfds, &m);
	if (rc < 0)
		return rc;
	size_t n = m.len < reply_max ? m.len : reply_max;
	if (n)
		memcpy(reply, m.payload, n);
	if (reply_len)
		*reply_len = m.len;
	int k = 0;
	for (int i = 0; i < m.nfds && k < max_fds; i++) {
		int fd = wire_msg_take_fd(&m, i);
		if (fd >= 0)
			fds_out[k++] = fd;
	}
	if (nfds_out)
		*nfds_out = k;
	wire_msg_release(&m);  /* closes descriptors the caller had no room for */
	return 0;
}
