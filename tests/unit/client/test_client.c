/* Client library against a scripted fake vfio-user server: one end of a
 * socketpair is the client, a thread runs a script on the other end with
 * wire_recv/wire_send. Checks in the server thread record the first
 * failure (cmocka's asserts only work on the test's own thread) and the
 * test asserts on it after joining. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "vfpm/client.h"
#include "wire/wire.h"

/* ------------------------------------------------------------------ */
/* Fake server */

struct srv;
typedef void (*script_fn)(struct srv *s);

struct srv {
	int fd;
	pthread_t th;
	script_fn script;
	const char *version_json;   /* VERSION reply caps; NULL: none */
	int fail_line;
	const char *fail_expr;
	int memfd;                  /* for scripts that need one */
	int count;                  /* requests seen, for scripts that count */
};

#define SCHECK(s, cond)                                   \
	do {                                              \
		if (!(cond)) {                            \
			if (!(s)->fail_line) {            \
				(s)->fail_line = __LINE__; \
				(s)->fail_expr = #cond;   \
			}                                 \
			return;                           \
		}                                         \
	} while (0)

static int srv_recv(struct srv *s, struct wire_msg *m)
{
	return wire_recv(s->fd, m, 4u << 20, VFPM_MAX_MSG_FDS);
}

/* Receives a command of type cmd; false (message released) otherwise. */
static bool srv_expect(struct srv *s, struct wire_msg *m, uint16_t cmd)
{
	if (srv_recv(s, m) < 0)
		return false;
	if ((m->hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_COMMAND || m->hdr.cmd != cmd) {
		wire_msg_release(m);
		return false;
	}
	return true;
}

static int srv_reply(struct srv *s, const struct wire_msg *rq, const void *p, size_t len,
		     const int *fds, int nfds)
{
	struct vfu_hdr h = { .msg_id = rq->hdr.msg_id, .cmd = rq->hdr.cmd, .flags = VFU_F_TYPE_REPLY };
	return wire_send(s->fd, &h, p, len, fds, nfds);
}

static int srv_error(struct srv *s, const struct wire_msg *rq, uint32_t err)
{
	struct vfu_hdr h = {
		.msg_id = rq->hdr.msg_id,
		.cmd = rq->hdr.cmd,
		.flags = VFU_F_TYPE_REPLY | VFU_F_ERROR,
		.error = err,
	};
	return wire_send(s->fd, &h, NULL, 0, NULL, 0);
}

/* Sends a server->client command on socket fd and receives its reply. */
static bool srv_dma_on(int fd, uint16_t cmd, uint16_t id, uint64_t addr, uint64_t count,
		       const void *data, size_t dlen, struct wire_msg *rep)
{
	struct vfu_dma_access a = { .addr = addr, .count = count };
	struct vfu_hdr h = { .msg_id = id, .cmd = cmd, .flags = VFU_F_TYPE_COMMAND };
	if (wire_send2(fd, &h, &a, sizeof(a), data, dlen, NULL, 0) < 0)
		return false;
	if (wire_recv(fd, rep, 4u << 20, VFPM_MAX_MSG_FDS) < 0)
		return false;
	if ((rep->hdr.flags & VFU_F_TYPE_MASK) != VFU_F_TYPE_REPLY || rep->hdr.msg_id != id ||
	    rep->hdr.cmd != cmd) {
		wire_msg_release(rep);
		return false;
	}
	return true;
}

static bool srv_dma(struct srv *s, uint16_t cmd, uint16_t id, uint64_t addr, uint64_t count,
		    const void *data, size_t dlen, struct wire_msg *rep)
{
	return srv_dma_on(s->fd, cmd, id, addr, count, data, dlen, rep);
}

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	s->script(s);
	close(s->fd);  /* the client sees EOF once the script is done */
	return NULL;
}

/* The common first step: answer VERSION 0.2 with s->version_json. */
static void srv_version(struct srv *s)
{
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	struct vfu_version v = { 0, 2 };
	uint8_t buf[512];
	memcpy(buf, &v, sizeof(v));
	size_t n = sizeof(v);
	if (s->version_json) {
		size_t j = strlen(s->version_json) + 1;
		memcpy(buf + n, s->version_json, j);
		n += j;
	}
	int rc = srv_reply(s, &m, buf, n, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static struct srv *srv_start(script_fn fn, const char *json, int *client_fd)
{
	struct srv *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->fd = sv[1];
	s->script = fn;
	s->version_json = json;
	s->memfd = -1;
	*client_fd = sv[0];
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
	return s;
}

static void srv_finish(struct srv *s)
{
	pthread_join(s->th, NULL);
	if (s->fail_line)
		fail_msg("fake server: check failed at line %d: %s", s->fail_line, s->fail_expr);
	if (s->memfd >= 0)
		close(s->memfd);
	free(s);
}

/* A client-side result check that, on failure, also reports what the
 * fake server saw: its socket is shut down so the script cannot block,
 * then the thread is joined. */
static void expect_rc_at(struct srv *s, int got, int want, int line)
{
	if (got == want)
		return;
	shutdown(s->fd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	if (s->fail_line)
		print_error("fake server: check failed at line %d: %s\n", s->fail_line,
			    s->fail_expr);
	fail_msg("line %d: got %d (%s), want %d", line, got, strerror(got < 0 ? -got : got), want);
}
#define EXPECT_RC(s, expr, want) expect_rc_at((s), (expr), (want), __LINE__)

/* Starts a server whose script begins with VERSION and connects to it. */
static struct srv *start_connected(script_fn fn, const char *json,
				   const struct vfpm_client_opts *opts, struct vfpm_client **c)
{
	int fd;
	struct srv *s = srv_start(fn, json, &fd);
	int rc = vfpm_client_connect_fd(fd, opts, c);
	if (rc < 0)
		srv_finish(s);  /* reports the server's view first */
	assert_int_equal(rc, 0);
	return s;
}

static int make_memfd(size_t size, uint8_t seed)
{
	int fd = memfd_create("test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)size), 0);
	uint8_t *p = malloc(size);
	assert_non_null(p);
	for (size_t i = 0; i < size; i++)
		p[i] = (uint8_t)(i * 7 + seed);
	assert_int_equal(pwrite(fd, p, size, 0), (ssize_t)size);
	free(p);
	return fd;
}

/* ------------------------------------------------------------------ */
/* VERSION */

static const char *const caps_small =
	"{\"capabilities\":{\"max_msg_fds\":4,\"max_data_xfer_size\":4096,"
	"\"write_multiple\":true,\"pgsizes\":4096}}";

static void script_version_check(struct srv *s)
{
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	struct vfu_version v;
	bool ok = m.len > sizeof(v) && m.payload[m.len - 1] == '\0';
	if (ok) {
		memcpy(&v, m.payload, sizeof(v));
		ok = v.major == 0 && v.minor == 2;
	}
	struct wire_caps wc;
	const char *json = (const char *)m.payload + sizeof(v);
	if (ok)
		ok = wire_caps_parse(json, m.len - sizeof(v), &wc) == 0 && wc.max_msg_fds == 8 &&
		     wc.max_data_xfer_size == (1u << 20) && wc.write_multiple && !wc.twin_socket &&
		     strstr(json, "\"x_extra\":{\"a\":1}") != NULL;
	uint8_t buf[512];
	struct vfu_version r = { 0, 1 };  /* an older minor is acceptable */
	memcpy(buf, &r, sizeof(r));
	memcpy(buf + sizeof(r), caps_small, strlen(caps_small) + 1);
	int rc = srv_reply(s, &m, buf, sizeof(r) + strlen(caps_small) + 1, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok);
	SCHECK(s, rc == 0);
}

static void test_version_good(void **state)
{
	struct vfpm_client *c;
	struct vfpm_client_opts o = { .write_multiple = true, .extra_caps_json = "\"x_extra\":{\"a\":1}" };
	int fd;
	struct srv *s = srv_start(script_version_check, NULL, &fd);
	int rc = vfpm_client_connect_fd(fd, &o, &c);
	srv_finish(s);
	assert_int_equal(rc, 0);
	const struct vfpm_server_caps *sc = vfpm_client_server_caps(c);
	assert_int_equal(sc->major, 0);
	assert_int_equal(sc->minor, 1);
	assert_int_equal(sc->max_msg_fds, 4);
	assert_int_equal(sc->max_data_xfer_size, 4096);
	assert_true(sc->write_multiple);
	assert_false(sc->twin_socket);
	vfpm_client_close(c);
}

static void script_version_only(struct srv *s)
{
	srv_version(s);
}

static void test_version_defaults(void **state)
{
	/* No JSON in the reply: the spec's defaults; write_multiple is not
	 * granted by a server that does not state it. */
	struct vfpm_client *c;
	struct vfpm_client_opts o = { .write_multiple = true };
	struct srv *s = start_connected(script_version_only, NULL, &o, &c);
	srv_finish(s);
	const struct vfpm_server_caps *sc = vfpm_client_server_caps(c);
	assert_int_equal(sc->max_msg_fds, VFU_DEFAULT_MAX_FDS);
	assert_int_equal(sc->max_data_xfer_size, VFU_DEFAULT_MAX_DATA_XFER);
	assert_false(sc->write_multiple);
	struct vfpm_write_multi_entry e = { .region = 0, .offset = 0, .count = 4 };
	assert_int_equal(vfpm_client_region_write_multi(c, &e, 1), -ENOTSUP);
	vfpm_client_close(c);
}

/* Replies to VERSION with the raw payload in s->version_json's place:
 * version_raw/len set by the test. */
static struct {
	uint8_t buf[64];
	size_t len;
} version_raw;

static void script_version_raw(struct srv *s)
{
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	int rc = srv_reply(s, &m, version_raw.buf, version_raw.len, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static int connect_with_raw_version(const void *p, size_t len)
{
	memcpy(version_raw.buf, p, len);
	version_raw.len = len;
	int fd;
	struct vfpm_client *c = NULL;
	struct srv *s = srv_start(script_version_raw, NULL, &fd);
	int rc = vfpm_client_connect_fd(fd, NULL, &c);
	srv_finish(s);
	if (rc == 0)
		vfpm_client_close(c);
	return rc;
}

static void test_version_bad(void **state)
{
	struct vfu_version v1 = { 1, 0 };
	assert_int_equal(connect_with_raw_version(&v1, sizeof(v1)), -EPROTO);
	struct vfu_version v3 = { 0, 3 };
	assert_int_equal(connect_with_raw_version(&v3, sizeof(v3)), -EPROTO);
	/* Too short for major/minor. */
	assert_int_equal(connect_with_raw_version(&v1, 2), -EPROTO);
	/* JSON without its NUL, and JSON of the wrong type. */
	uint8_t b[64] = { 0, 0, 2, 0 };
	memcpy(b + 4, "{}", 2);
	assert_int_equal(connect_with_raw_version(b, 6), -EPROTO);
	const char *bad = "{\"capabilities\":{\"max_msg_fds\":\"x\"}}";
	memcpy(b + 4, bad, strlen(bad) + 1);
	assert_int_equal(connect_with_raw_version(b, 4 + strlen(bad) + 1), -EPROTO);
}

static void script_version_error(struct srv *s)
{
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	int rc = srv_error(s, &m, EOPNOTSUPP);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_version_error_reply(void **state)
{
	int fd;
	struct vfpm_client *c = NULL;
	struct srv *s = srv_start(script_version_error, NULL, &fd);
	assert_int_equal(vfpm_client_connect_fd(fd, NULL, &c), -EOPNOTSUPP);
	srv_finish(s);
}

/* ------------------------------------------------------------------ */
/* Error replies */

static void script_errors(struct srv *s)
{
	srv_version(s);
	static const uint32_t errs[] = { EINVAL, 0, ENODEV, 5000 };
	struct wire_msg m;
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
		int rc = srv_error(s, &m, errs[i]);
		wire_msg_release(&m);
		SCHECK(s, rc == 0);
	}
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	struct vfu_device_info di = { 16, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET, 9, 5 };
	bool ok = m.len == 16;
	int rc = srv_reply(s, &m, &di, sizeof(di), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);
}

static void test_error_reply(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_errors, NULL, NULL, &c);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), -EINVAL);  /* errno 22 */
	assert_int_equal(vfpm_client_device_info(c, &di), -EINVAL);  /* errno 0 */
	assert_int_equal(vfpm_client_device_info(c, &di), -ENODEV);
	assert_int_equal(vfpm_client_device_info(c, &di), -EINVAL);  /* errno > 4095 */
	assert_int_equal(vfpm_client_device_info(c, &di), 0);        /* stream still fine */
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);
	assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET);
	srv_finish(s);
	vfpm_client_close(c);
}

/* ------------------------------------------------------------------ */
/* Region info */

/* A reply: 32-byte info, a TYPE cap (id 2) at 32 whose next leads to a
 * sparse mmap cap with 2 areas at 48. */
static size_t build_region_info(uint8_t *buf, uint32_t argsz_needed)
{
	struct vfu_region_info ri = {
		.argsz = argsz_needed,
		.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE |
			 VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS,
		.index = 2,
		.cap_offset = 32,
		.size = 0x2000,
		.offset = 0,
	};
	memcpy(buf, &ri, sizeof(ri));
	struct vfu_cap_header th = { .id = VFIO_REGION_INFO_CAP_TYPE, .version = 1, .next = 48 };
	memcpy(buf + 32, &th, sizeof(th));
	memset(buf + 40, 0, 8);
	struct vfu_cap_sparse_mmap sp = {
		.hdr = { .id = VFIO_REGION_INFO_CAP_SPARSE_MMAP, .version = 1, .next = 0 },
		.nr_areas = 2,
	};
	memcpy(buf + 48, &sp, sizeof(sp));
	struct vfu_sparse_area a[2] = { { 0, 0x800 }, { 0x1000, 0x1000 } };
	memcpy(buf + 64, a, sizeof(a));
	return 96;
}

static void script_region_info(struct srv *s)
{
	srv_version(s);
	struct wire_msg m;
	struct vfu_region_info rq;
	uint8_t buf[128];
	size_t full = build_region_info(buf, 96);

	/* First: the client offers 32 bytes; answer the struct only. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_INFO));
	memcpy(&rq, m.payload, sizeof(rq));
	bool ok = m.len == 32 && rq.argsz == 32 && rq.index == 2;
	int rc = srv_reply(s, &m, buf, 32, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* The retry has room: caps and the descriptor. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_INFO));
	memcpy(&rq, m.payload, sizeof(rq));
	ok = rq.argsz == 96 && rq.index == 2;
	rc = srv_reply(s, &m, buf, full, &s->memfd, 1);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);
}

static void test_region_info_retry(void **state)
{
	struct vfpm_client *c;
	int fd;
	struct srv *s = srv_start(script_region_info, NULL, &fd);
	s->memfd = make_memfd(0x2000, 3);
	assert_int_equal(vfpm_client_connect_fd(fd, NULL, &c), 0);

	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(c, 2, &ri), 0);
	srv_finish(s);
	assert_int_equal(ri.size, 0x2000);
	assert_true(ri.flags & VFIO_REGION_INFO_FLAG_MMAP);
	assert_int_equal(ri.nr_areas, 2);
	assert_int_equal(ri.areas[0].offset, 0);
	assert_int_equal(ri.areas[0].size, 0x800);
	assert_int_equal(ri.areas[1].offset, 0x1000);
	assert_int_equal(ri.areas[1].size, 0x1000);
	assert_true(ri.fd >= 0);

	void *p;
	size_t len;
	assert_int_equal(vfpm_client_mmap_area(&ri, 1, &p, &len), 0);
	assert_int_equal(len, 0x1000);
	assert_int_equal(((uint8_t *)p)[5], (uint8_t)((0x1000 + 5) * 7 + 3));
	munmap(p, len);
	assert_int_equal(vfpm_client_mmap_area(&ri, 2, &p, &len), -EINVAL);
	close(ri.fd);
	vfpm_client_close(c);
}

/* Malformed chains. Each is the answer to the client's retry: its first
 * request (argsz 32) gets the struct alone with the argsz needed. */
static void script_bad_caps(struct srv *s)
{
	srv_version(s);
	for (int k = 0; k < 5; k++) {
		uint8_t buf[96];
		build_region_info(buf, 0);
		size_t len = 96;
		struct vfu_region_info ri;
		memcpy(&ri, buf, sizeof(ri));
		struct vfu_cap_header h;
		memcpy(&h, buf + 32, sizeof(h));
		switch (k) {
		case 0: /* next points past the reply */
			h.next = 200;
			break;
		case 1: /* cap_offset past the reply */
			ri.cap_offset = 1000;
			break;
		case 2: /* a cycle */
			h.next = 32;
			break;
		case 3: /* header straddles the end */
			len = 52;
			break;
		case 4: /* nr_areas larger than the data sent */
			buf[48 + 8] = 200;
			break;
		}
		ri.argsz = (uint32_t)len;
		memcpy(buf, &ri, sizeof(ri));
		memcpy(buf + 32, &h, sizeof(h));
		struct wire_msg m;
		SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_INFO));
		int rc = srv_reply(s, &m, buf, 32, NULL, 0);
		wire_msg_release(&m);
		SCHECK(s, rc == 0);
		SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_INFO));
		struct vfu_region_info rq;
		memcpy(&rq, m.payload, sizeof(rq));
		bool ok = rq.argsz == len;
		rc = srv_reply(s, &m, buf, len, &s->memfd, 1);
		wire_msg_release(&m);
		SCHECK(s, ok && rc == 0);
	}
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	struct vfu_device_info di = { 16, 0, 9, 5 };
	int rc = srv_reply(s, &m, &di, sizeof(di), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_region_info_bad_caps(void **state)
{
	struct vfpm_client *c;
	int fd;
	struct srv *s = srv_start(script_bad_caps, NULL, &fd);
	s->memfd = make_memfd(4096, 0);
	assert_int_equal(vfpm_client_connect_fd(fd, NULL, &c), 0);
	struct vfpm_region_info ri;
	for (int k = 0; k < 5; k++) {
		ri.fd = 12345;
		assert_int_equal(vfpm_client_region_info(c, 2, &ri), -EPROTO);
		assert_int_equal(ri.fd, -1);  /* the descriptor was not leaked to us */
	}
	/* A malformed reply does not break the connection. */
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), 0);
	srv_finish(s);
	vfpm_client_close(c);
}

/* ------------------------------------------------------------------ */
/* Server-initiated DMA */

#define IOVA 0x10000ull
#define DMA_SIZE 8192u

static void script_dma(struct srv *s)
{
	srv_version(s);
	struct wire_msg m, r;
	struct vfu_dma_map dm;

	SCHECK(s, srv_expect(s, &m, VFU_CMD_DMA_MAP));
	memcpy(&dm, m.payload, sizeof(dm));
	bool ok = m.len == 32 && dm.argsz == 32 &&
		  dm.flags == (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE) && dm.addr == IOVA &&
		  dm.size == DMA_SIZE && dm.offset == 0 && m.nfds == 1;
	int rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* The client's REGION_READ is answered only after DMA traffic. */
	struct wire_msg rd;
	SCHECK(s, srv_expect(s, &rd, VFU_CMD_REGION_READ));

	SCHECK(s, srv_dma(s, VFU_CMD_DMA_READ, 100, IOVA + 0x100, 64, NULL, 0, &r));
	ok = !(r.hdr.flags & VFU_F_ERROR) && r.len == 16 + 64;
	for (size_t i = 0; ok && i < 64; i++)
		ok = r.payload[16 + i] == (uint8_t)((0x100 + i) * 7 + 9);
	wire_msg_release(&r);
	SCHECK(s, ok);

	/* Crossing the end of the window. */
	SCHECK(s, srv_dma(s, VFU_CMD_DMA_READ, 101, IOVA + DMA_SIZE - 8, 64, NULL, 0, &r));
	ok = (r.hdr.flags & VFU_F_ERROR) && r.hdr.error == EFAULT && r.len == 0;
	wire_msg_release(&r);
	SCHECK(s, ok);

	/* Nowhere near any window. */
	SCHECK(s, srv_dma(s, VFU_CMD_DMA_READ, 102, 0x100, 4, NULL, 0, &r));
	ok = (r.hdr.flags & VFU_F_ERROR) && r.hdr.error == EFAULT;
	wire_msg_release(&r);
	SCHECK(s, ok);

	SCHECK(s, srv_dma(s, VFU_CMD_DMA_WRITE, 103, IOVA + 0x10, 4, "ABCD", 4, &r));
	struct vfu_dma_access a;
	ok = !(r.hdr.flags & VFU_F_ERROR) && r.len == 16;
	if (ok) {
		memcpy(&a, r.payload, sizeof(a));
		ok = a.addr == IOVA + 0x10 && a.count == 4;
	}
	wire_msg_release(&r);
	SCHECK(s, ok);

	uint8_t reply[16 + 8];
	struct vfu_region_access ra;
	memcpy(&ra, rd.payload, sizeof(ra));
	memcpy(reply, &ra, sizeof(ra));
	memcpy(reply + 16, "regdata!", 8);
	rc = srv_reply(s, &rd, reply, sizeof(reply), NULL, 0);
	wire_msg_release(&rd);
	SCHECK(s, rc == 0);

	/* Unmap, then DMA to the old window must fault. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DMA_UNMAP));
	struct vfu_dma_unmap du;
	memcpy(&du, m.payload, sizeof(du));
	ok = m.len == 24 && du.argsz == 24 && du.addr == IOVA && du.size == DMA_SIZE;
	rc = srv_reply(s, &m, &du, sizeof(du), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	SCHECK(s, srv_dma(s, VFU_CMD_DMA_READ, 104, IOVA + 0x100, 4, NULL, 0, &r));
	ok = (r.hdr.flags & VFU_F_ERROR) && r.hdr.error == EFAULT;
	wire_msg_release(&r);
	SCHECK(s, ok);

	/* Keep the socket open until the client is done. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_RESET));
	rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_dma_served_during_call(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_dma, NULL, NULL, &c);
	int mfd = make_memfd(DMA_SIZE, 9);
	void *host = NULL;
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, IOVA, DMA_SIZE,
					     VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, &host), 0);
	assert_non_null(host);

	uint8_t buf[8];
	assert_int_equal(vfpm_client_region_read(c, 0, 0x40, buf, 8), 0);
	assert_memory_equal(buf, "regdata!", 8);
	/* The DMA_WRITE landed in the memfd itself. */
	char got[4];
	assert_int_equal(pread(mfd, got, 4, 0x10), 4);
	assert_memory_equal(got, "ABCD", 4);
	assert_memory_equal((uint8_t *)host + 0x10, "ABCD", 4);

	assert_int_equal(vfpm_client_dma_unmap(c, IOVA, DMA_SIZE), 0);
	assert_int_equal(vfpm_client_serve_pending(c, 5000), 1);
	assert_int_equal(vfpm_client_reset(c), 0);
	srv_finish(s);
	vfpm_client_close(c);
	close(mfd);
}

static void script_dma_pending(struct srv *s)
{
	srv_version(s);
	struct wire_msg m, r;
	/* Two windows: 0x20000 read/write, 0x30000 read-only, no fds. */
	for (int i = 0; i < 2; i++) {
		SCHECK(s, srv_expect(s, &m, VFU_CMD_DMA_MAP));
		bool ok = m.nfds == 0 && m.len == 32;
		int rc = srv_reply(s, &m, NULL, 0, NULL, 0);
		wire_msg_release(&m);
		SCHECK(s, ok && rc == 0);
	}

	SCHECK(s, srv_dma(s, VFU_CMD_DMA_WRITE, 7, 0x20008, 8, "12345678", 8, &r));
	bool ok = !(r.hdr.flags & VFU_F_ERROR);
	wire_msg_release(&r);
	SCHECK(s, ok);
	/* The second window is read-only for the device. */
	SCHECK(s, srv_dma(s, VFU_CMD_DMA_WRITE, 8, 0x30000, 1, "x", 1, &r));
	ok = (r.hdr.flags & VFU_F_ERROR) && r.hdr.error == EPERM;
	wire_msg_release(&r);
	SCHECK(s, ok);
	/* A DMA_WRITE whose data does not match its count. */
	SCHECK(s, srv_dma(s, VFU_CMD_DMA_WRITE, 9, 0x20000, 8, "x", 1, &r));
	ok = (r.hdr.flags & VFU_F_ERROR) && r.hdr.error == EINVAL;
	wire_msg_release(&r);
	SCHECK(s, ok);

	/* Keep the socket open until the client is done. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_RESET));
	int rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_serve_pending_anon(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_dma_pending, NULL, NULL, &c);
	void *host = NULL, *ro = NULL;
	assert_int_equal(vfpm_client_dma_map(c, -1, 0, 0x20000, 4096,
					     VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE, &host), 0);
	assert_int_equal(vfpm_client_dma_map(c, -1, 0, 0x30000, 4096, VFU_DMA_FLAG_READ, &ro), 0);
	assert_non_null(host);
	assert_non_null(ro);
	/* The requests arrive one at a time: each waits for its answer. */
	int served = 0;
	while (served < 3) {
		int n = vfpm_client_serve_pending(c, 5000);
		assert_true(n > 0);
		served += n;
	}
	assert_int_equal(served, 3);
	assert_memory_equal((uint8_t *)host + 8, "12345678", 8);
	assert_int_equal(((uint8_t *)ro)[0], 0);
	assert_int_equal(vfpm_client_serve_pending(c, 50), 0);
	assert_int_equal(vfpm_client_reset(c), 0);
	srv_finish(s);
	vfpm_client_close(c);
}

/* Twin socket: server->client commands come on a second socket whose
 * client end rides on the VERSION reply. */
static void script_twin(struct srv *s)
{
	struct wire_msg m, r;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	struct wire_caps wc;
	bool ok = m.len > 4 && wire_caps_parse((const char *)m.payload + 4, m.len - 4, &wc) == 0 &&
		  wc.twin_socket;
	int tw[2];
	SCHECK(s, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tw) == 0);
	const char *j = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":1}}}";
	uint8_t buf[256] = { 0, 0, 2, 0 };
	memcpy(buf + 4, j, strlen(j) + 1);
	int fds[2] = { tw[1], tw[1] };  /* index 1 is the one named */
	int rc = srv_reply(s, &m, buf, 4 + strlen(j) + 1, fds, 2);
	close(tw[1]);
	wire_msg_release(&m);
	if (!ok || rc != 0)
		close(tw[0]);
	SCHECK(s, ok && rc == 0);

	SCHECK(s, srv_expect(s, &m, VFU_CMD_DMA_MAP));
	rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);

	struct wire_msg rd;
	SCHECK(s, srv_expect(s, &rd, VFU_CMD_REGION_READ));
	ok = srv_dma_on(tw[0], VFU_CMD_DMA_WRITE, 1, 0x40000, 4, "WXYZ", 4, &r);
	ok = ok && !(r.hdr.flags & VFU_F_ERROR);
	wire_msg_release(&r);
	/* Something that is not DMA: answered with EINVAL. */
	struct vfu_hdr h = { .msg_id = 2, .cmd = 99, .flags = VFU_F_TYPE_COMMAND };
	ok = ok && wire_send(tw[0], &h, "zz", 2, NULL, 0) == 0 &&
	     wire_recv(tw[0], &r, 1 << 16, 4) == 0 && (r.hdr.flags & VFU_F_ERROR) &&
	     r.hdr.error == EINVAL && r.hdr.msg_id == 2;
	wire_msg_release(&r);
	struct vfu_region_access ra;
	memcpy(&ra, rd.payload, sizeof(ra));
	ra.count = 0;
	rc = srv_reply(s, &rd, &ra, sizeof(ra), NULL, 0);
	wire_msg_release(&rd);
	close(tw[0]);
	SCHECK(s, ok && rc == 0);
}

static void script_twin_no_fd(struct srv *s)
{
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_VERSION));
	const char *j = "{\"capabilities\":{\"twin_socket\":{\"supported\":true,\"fd_index\":0}}}";
	uint8_t buf[256] = { 0, 0, 2, 0 };
	memcpy(buf + 4, j, strlen(j) + 1);
	int rc = srv_reply(s, &m, buf, 4 + strlen(j) + 1, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_twin_socket(void **state)
{
	struct vfpm_client *c;
	struct vfpm_client_opts o = { .twin_socket = true };
	struct srv *s = start_connected(script_twin, NULL, &o, &c);
	assert_true(vfpm_client_server_caps(c)->twin_socket);
	void *host;
	EXPECT_RC(s, vfpm_client_dma_map(c, -1, 0, 0x40000, 4096, VFU_DMA_FLAG_WRITE, &host), 0);
	EXPECT_RC(s, vfpm_client_region_read(c, 0, 0, NULL, 0), 0);
	assert_memory_equal(host, "WXYZ", 4);
	srv_finish(s);
	vfpm_client_close(c);

	/* Granted, but no descriptor came with it: the spec says drop. */
	int fd;
	s = srv_start(script_twin_no_fd, NULL, &fd);
	assert_int_equal(vfpm_client_connect_fd(fd, &o, &c), -EPROTO);
	srv_finish(s);
}

/* ------------------------------------------------------------------ */
/* Chunking */

static uint8_t pat(uint64_t off)
{
	return (uint8_t)(off * 13 + 1);
}

static void script_chunks(struct srv *s)
{
	srv_version(s);
	static const uint32_t want[] = { 4096, 4096, 1808 };
	uint64_t off = 0x100;
	for (int i = 0; i < 3; i++) {
		struct wire_msg m;
		SCHECK(s, srv_expect(s, &m, VFU_CMD_REGION_READ));
		struct vfu_region_access ra;
		memcpy(&ra, m.payload, sizeof(ra));
		bool ok = m.len == 16 && ra.offset == off && ra.region == 2 && ra.count == want[i];
		uint8_t *buf = malloc(16 + ra.count);
		memcpy(buf, &ra, sizeof(ra));
		for (uint32_t k = 0; k < ra.count; k++)
			buf[16 + k] = pat(ra.offset + k);
		int rc = srv_reply(s, &m, buf, 16 + ra.count, NULL, 0);
		free(buf);
		wire_msg_release(&m);
		SCHECK(s, ok && rc == 0);
		off += want[i];
		s->count++;
	}
	off = 0;
	for (int i = 0; i < 3; i++) {
		struct wire_msg m;
		SCHECK(s, srv_expect(s, &m, VFU_CMD_REGION_WRITE));
		struct vfu_region_access ra;
		memcpy(&ra, m.payload, sizeof(ra));
		bool ok = ra.offset == off && ra.count == want[i] && m.len == 16 + ra.count;
		for (uint32_t k = 0; ok && k < ra.count; k++)
			ok = m.payload[16 + k] == pat(ra.offset + k);
		int rc = srv_reply(s, &m, &ra, sizeof(ra), NULL, 0);
		wire_msg_release(&m);
		SCHECK(s, ok && rc == 0);
		off += want[i];
		s->count++;
	}
}

static void test_read_chunking(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_chunks, caps_small, NULL, &c);
	uint8_t *buf = malloc(10000);
	assert_non_null(buf);
	assert_int_equal(vfpm_client_region_read(c, 2, 0x100, buf, 10000), 0);
	for (uint32_t k = 0; k < 10000; k++)
		assert_int_equal(buf[k], pat(0x100 + k));
	for (uint32_t k = 0; k < 10000; k++)
		buf[k] = pat(k);
	assert_int_equal(vfpm_client_region_write(c, 2, 0, buf, 10000), 0);
	free(buf);
	srv_finish(s);
	vfpm_client_close(c);
}

/* ------------------------------------------------------------------ */
/* Broken servers */

static void script_eof(struct srv *s)
{
	srv_version(s);
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	wire_msg_release(&m);
	/* returning closes the socket with the call in flight */
}

static void test_eof_mid_call(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_eof, NULL, NULL, &c);
	struct vfpm_device_info di;
	int rc = vfpm_client_device_info(c, &di);
	assert_true(rc == -ECONNRESET || rc == -EPIPE);
	srv_finish(s);
	/* Later calls fail too, without touching the dead socket. */
	uint32_t v;
	rc = vfpm_client_region_read(c, 0, 0, &v, 4);
	assert_true(rc < 0);
	assert_true(vfpm_client_serve_pending(c, 0) < 0);
	vfpm_client_close(c);
}

static void script_partial(struct srv *s)
{
	srv_version(s);
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	/* A header announcing 100 bytes, then only 20 of them. */
	struct vfu_hdr h = { .msg_id = m.hdr.msg_id, .cmd = m.hdr.cmd, .size = 100,
			     .flags = VFU_F_TYPE_REPLY };
	uint8_t buf[36] = { 0 };
	memcpy(buf, &h, sizeof(h));
	wire_msg_release(&m);
	SCHECK(s, write(s->fd, buf, sizeof(buf)) == (ssize_t)sizeof(buf));
}

static void test_eof_partial_reply(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_partial, NULL, NULL, &c);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), -EPIPE);
	srv_finish(s);
	vfpm_client_close(c);
}

static void script_bad_replies(struct srv *s)
{
	srv_version(s);
	struct wire_msg m;
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	/* A short reply: a malformed payload, the stream stays usable. */
	int rc = srv_reply(s, &m, "abc", 3, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
	/* A reply to another request. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_GET_INFO));
	m.hdr.msg_id++;
	struct vfu_device_info di = { 16, 0, 9, 5 };
	rc = srv_reply(s, &m, &di, sizeof(di), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, rc == 0);
}

static void test_bad_replies(void **state)
{
	struct vfpm_client *c;
	struct srv *s = start_connected(script_bad_replies, NULL, NULL, &c);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), -EPROTO);
	assert_int_equal(vfpm_client_device_info(c, &di), -EPROTO);
	srv_finish(s);
	vfpm_client_close(c);
}

/* ------------------------------------------------------------------ */
/* Other commands */

static void script_misc(struct srv *s)
{
	srv_version(s);
	struct wire_msg m;
	int rc;
	bool ok;

	/* SET_IRQS with BOOL data. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_SET_IRQS));
	struct vfu_irq_set is;
	memcpy(&is, m.payload, sizeof(is));
	ok = m.len == 23 && is.argsz == 23 && is.index == 2 && is.start == 1 && is.count == 3 &&
	     is.flags == (VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER) &&
	     !memcmp(m.payload + 20, "\1\0\1", 3) && m.nfds == 0;
	rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* SET_IRQS with eventfds: fds on the message, no data. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_SET_IRQS));
	memcpy(&is, m.payload, sizeof(is));
	ok = m.len == 20 && is.argsz == 20 && is.count == 2 && m.nfds == 2;
	rc = srv_reply(s, &m, NULL, 0, NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* GET_REGION_IO_FDS: first too small, then two entries sharing one fd. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_IO_FDS));
	struct vfu_region_io_fds io;
	memcpy(&io, m.payload, sizeof(io));
	ok = io.argsz == 16 + 16 * 40 && io.index == 0;
	io.argsz = 16 + 20 * 40;
	io.count = 20;
	rc = srv_reply(s, &m, &io, sizeof(io), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);
	SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_REGION_IO_FDS));
	memcpy(&io, m.payload, sizeof(io));
	ok = io.argsz == 16 + 20 * 40;
	uint8_t buf[16 + 20 * 40] = { 0 };
	io.count = 20;
	memcpy(buf, &io, sizeof(io));
	for (uint32_t i = 0; i < 20; i++) {
		struct vfu_ioeventfd e = { .offset = 0x100 + i * 4, .size = 4, .fd_index = i % 2,
					   .flags = VFU_IOEVENTFD_FLAG_DATAMATCH, .datamatch = i };
		memcpy(buf + 16 + i * 40, &e, sizeof(e));
	}
	int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	rc = srv_reply(s, &m, buf, sizeof(buf), efd, 2);
	close(efd[0]);
	close(efd[1]);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* DEVICE_FEATURE GET: argsz leaves room for the reply. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_DEVICE_FEATURE));
	struct vfu_device_feature f;
	memcpy(&f, m.payload, sizeof(f));
	ok = m.len == 8 && f.argsz == 16 &&
	     f.flags == (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION);
	uint8_t fr[16];
	f.argsz = 16;
	memcpy(fr, &f, sizeof(f));
	uint64_t mf = 5;
	memcpy(fr + 8, &mf, 8);
	rc = srv_reply(s, &m, fr, sizeof(fr), NULL, 0);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* Raw request: payload echoed, one fd back. */
	SCHECK(s, srv_expect(s, &m, VFU_CMD_GET_IRQ_INFO));
	ok = m.len == 16;
	int efd2 = eventfd(0, EFD_CLOEXEC);
	rc = srv_reply(s, &m, m.payload, m.len, &efd2, 1);
	close(efd2);
	wire_msg_release(&m);
	SCHECK(s, ok && rc == 0);

	/* WRITE_MULTI in two batches. */
	static const uint64_t batches[] = { 1024, 476 };
	for (int b = 0; b < 2; b++) {
		SCHECK(s, srv_expect(s, &m, VFU_CMD_REGION_WRITE_MULTI));
		struct vfu_write_multi wm;
		memcpy(&wm, m.payload, sizeof(wm));
		ok = wm.wr_cnt == batches[b] && m.len == 8 + wm.wr_cnt * 24;
		struct vfu_write_multi_entry e;
		if (ok) {
			memcpy(&e, m.payload + 8 + 5 * 24, sizeof(e));
			uint64_t idx = (uint64_t)b * 1024 + 5;
			ok = e.offset == idx * 4 && e.count == 4 && e.region == 0 &&
			     !memcmp(e.data, &idx, 4);
		}
		rc = srv_reply(s, &m, &wm, sizeof(wm), NULL, 0);
		wire_msg_release(&m);
		SCHECK(s, ok && rc == 0);
	}
}

static void test_misc_commands(void **state)
{
	struct vfpm_client *c;
	struct vfpm_client_opts o = { .write_multiple = true };
	struct srv *s = start_connected(script_misc, caps_small, &o, &c);

	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_TRIGGER,
					      2, 1, 3, NULL, 0, (const uint8_t *)"\1\0\1"), 0);
	int efd[2] = { eventfd(0, EFD_CLOEXEC), eventfd(0, EFD_CLOEXEC) };
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					      2, 0, 2, efd, 2, NULL), 0);
	close(efd[0]);
	close(efd[1]);

	struct vfpm_ioeventfd io[4];
	assert_int_equal(vfpm_client_region_io_fds(c, 0, io, 4), 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(io[i].offset, 0x100 + i * 4);
		assert_int_equal(io[i].datamatch, i);
		assert_true(io[i].fd >= 0);
	}
	/* Entries sharing a server fd get distinct descriptors of one eventfd. */
	assert_int_not_equal(io[0].fd, io[2].fd);
	uint64_t one = 1, got = 0;
	assert_int_equal(write(io[0].fd, &one, 8), 8);
	assert_int_equal(read(io[2].fd, &got, 8), 8);
	assert_int_equal(got, 1);
	for (int i = 0; i < 4; i++)
		close(io[i].fd);

	uint64_t mf = 0;
	size_t rl = sizeof(mf);
	assert_int_equal(vfpm_client_feature(c, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
					     NULL, 0, -1, &mf, &rl), 0);
	assert_int_equal(rl, 8);
	assert_int_equal(mf, 5);

	struct vfu_irq_info ii = { 16, 0, 1, 0 }, back;
	size_t blen;
	int fds[1], nfds;
	assert_int_equal(vfpm_client_request(c, VFU_CMD_GET_IRQ_INFO, &ii, sizeof(ii), NULL, 0,
					     &back, sizeof(back), &blen, fds, 1, &nfds), 0);
	assert_int_equal(blen, 16);
	assert_memory_equal(&back, &ii, 16);
	assert_int_equal(nfds, 1);
	close(fds[0]);

	struct vfpm_write_multi_entry *we = calloc(1500, sizeof(*we));
	for (uint32_t i = 0; i < 1500; i++) {
		uint64_t v = i;
		we[i] = (struct vfpm_write_multi_entry){ .region = 0, .offset = i * 4, .count = 4 };
		memcpy(we[i].data, &v, 8);
	}
	assert_int_equal(vfpm_client_region_write_multi(c, we, 1500), 0);
	we[3].count = 9;
	assert_int_equal(vfpm_client_region_write_multi(c, we, 1500), -EINVAL);
	free(we);
	srv_finish(s);
	vfpm_client_close(c);
}

/* ------------------------------------------------------------------ */
/* Helpers outside the protocol */

static void test_default_socket_path(void **state)
{
	char buf[128], want[128];
	char *old_sock = getenv("VFPM_SOCKET") ? strdup(getenv("VFPM_SOCKET")) : NULL;
	char *old_xdg = getenv("XDG_RUNTIME_DIR") ? strdup(getenv("XDG_RUNTIME_DIR")) : NULL;

	setenv("VFPM_SOCKET", "/some/where.sock", 1);
	assert_int_equal(vfpm_default_socket_path(buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/some/where.sock");
	assert_int_equal(vfpm_default_socket_path(buf, 5), -ENAMETOOLONG);
	unsetenv("VFPM_SOCKET");
	setenv("XDG_RUNTIME_DIR", "/run/user/4242", 1);
	assert_int_equal(vfpm_default_socket_path(buf, sizeof(buf)), 0);
	if (geteuid() == 0) {
		assert_string_equal(buf, "/run/vfpm/demo.sock");
	} else {
		assert_string_equal(buf, "/run/user/4242/vfpm/demo.sock");
		unsetenv("XDG_RUNTIME_DIR");
		assert_int_equal(vfpm_default_socket_path(buf, sizeof(buf)), 0);
		snprintf(want, sizeof(want), "/tmp/vfpm-%u/demo.sock", (unsigned)getuid());
		assert_string_equal(buf, want);
	}

	if (old_sock)
		setenv("VFPM_SOCKET", old_sock, 1);
	else
		unsetenv("VFPM_SOCKET");
	if (old_xdg)
		setenv("XDG_RUNTIME_DIR", old_xdg, 1);
	else
		unsetenv("XDG_RUNTIME_DIR");
	free(old_sock);
	free(old_xdg);
}

static void test_lspci_format(void **state)
{
	uint8_t cfg[4096] = { 0 };
	cfg[0] = 0xf4, cfg[1] = 0x1a;   /* vendor 1af4 */
	cfg[2] = 0x41, cfg[3] = 0x10;   /* device 1041 */
	cfg[8] = 0x01;                  /* revision */
	cfg[0x0a] = 0x00, cfg[0x0b] = 0x02;  /* class 0200: Ethernet */
	cfg[0xff] = 0xab;
	cfg[0x100] = 0xcd;

	char *text = NULL;
	size_t tlen = 0;
	FILE *f = open_memstream(&text, &tlen);
	assert_non_null(f);
	assert_int_equal(vfpm_format_lspci(cfg, sizeof(cfg), f), 0);
	fclose(f);
	assert_non_null(strstr(text, "00:00.0 Class 0200: Device 1af4:1041 (rev 01)\n"));
	assert_non_null(strstr(text, "\n00: f4 1a 41 10 00 00 00 00 01 00 00 02 00 00 00 00\n"));
	assert_non_null(strstr(text, "\nf0: 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 ab\n"));
	assert_non_null(strstr(text, "\n100: cd 00"));
	assert_non_null(strstr(text, "\nff0: "));
	int lines = 0;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1 + 256 + 1);
	free(text);
	assert_int_equal(vfpm_format_lspci(cfg, 100, stdout), -EINVAL);

	/* The real reader, when installed. */
	if (access("/usr/bin/lspci", X_OK) != 0) {
		print_message("lspci not installed: format checked textually only\n");
		return;
	}
	char path[] = "/tmp/vfpm-test-lspci.XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_int_equal(vfpm_format_lspci(cfg, sizeof(cfg), f), 0);
	fclose(f);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "/usr/bin/lspci -n -F %s 2>&1", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	char out[512] = { 0 };
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	int st = pclose(p);
	unlink(path);
	out[n] = '\0';
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "00:00.0 0200: 1af4:1041 (rev 01)"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_version_good),
		cmocka_unit_test(test_version_defaults),
		cmocka_unit_test(test_version_bad),
		cmocka_unit_test(test_version_error_reply),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_region_info_retry),
		cmocka_unit_test(test_region_info_bad_caps),
		cmocka_unit_test(test_dma_served_during_call),
		cmocka_unit_test(test_serve_pending_anon),
		cmocka_unit_test(test_twin_socket),
		cmocka_unit_test(test_read_chunking),
		cmocka_unit_test(test_eof_mid_call),
		cmocka_unit_test(test_eof_partial_reply),
		cmocka_unit_test(test_bad_replies),
		cmocka_unit_test(test_misc_commands),
		cmocka_unit_test(test_default_socket_path),
		cmocka_unit_test(test_lspci_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
