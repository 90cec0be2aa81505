/* Raw protocol tests: hand-made vfio-user messages, most of them wrong, sent
 * to a real vfpmd. Every bad request must be answered with an error reply
 * carrying the exact errno (header only, ERROR flag, msg_id echoed), and the
 * connection must keep working afterwards; the few inputs after which the
 * server closes the stream must leave the server able to take a new client.
 *
 * Expected errnos follow lib/core/session.c, irq.c and dma.c; where they
 * differ from libvfio-user the comment says so. */
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "wire/wire.h"

#define RX_TIMEOUT_MS 5000
#define WATCHDOG_S 60

/* demo device layout (models/demo.c) */
#define BAR0_SIZE 4096u
#define BAR2_SIZE (1u << 20)
#define BAR4_SIZE 8192u
#define REG_ID 0x00
#define REG_SCRATCH 0x08
#define DEMO_ID 0x4d504656u
#define DEMO_MSIX_VECTORS 4

#define REPLY_ERR (VFU_F_TYPE_REPLY | VFU_F_ERROR)

static struct vfpmd_proc g_proc;
static uint16_t g_id = 0x100;

static const char *sock_path(void)
{
	return g_proc.sock[0];
}

/* vfpmd's stderr, for a failure that needs the server's side of it */
static void dump_server_log(void)
{
	FILE *f = fopen(g_proc.log, "r");
	if (!f)
		return;
	char line[512];
	fprintf(stderr, "--- %s ---\n", g_proc.log);
	while (fgets(line, sizeof(line), f))
		if (!strstr(line, "client connected") && !strstr(line, "client disconnected"))
			fputs(line, stderr);
	fclose(f);
}

/* ------------------------------------------------------------------ */
/* Message helpers */

static void set_timeouts(int fd)
{
	struct timeval tv = { RX_TIMEOUT_MS / 1000, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* Receives one message, waiting at most RX_TIMEOUT_MS for it to start. */
static int rx(int fd, struct wire_msg *m)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, RX_TIMEOUT_MS);
	if (r == 0)
		return -ETIMEDOUT;
	if (r < 0)
		return -errno;
	return wire_recv(fd, m, 4u << 20, VFPM_MAX_MSG_FDS);
}

static uint16_t tx_flags(int fd, uint16_t cmd, uint32_t flags, const void *p, size_t len,
			 const int *fds, int nfds)
{
	struct vfu_hdr h = { .msg_id = ++g_id, .cmd = cmd, .flags = flags };
	int rc = wire_send(fd, &h, p, len, fds, nfds);
	if (rc)
		fail_msg("wire_send(cmd %u): %s", cmd, strerror(-rc));
	return h.msg_id;
}

static uint16_t tx(int fd, uint16_t cmd, const void *p, size_t len, const int *fds, int nfds)
{
	return tx_flags(fd, cmd, VFU_F_TYPE_COMMAND, p, len, fds, nfds);
}

/* The next message must be the error reply to (id, cmd) with errno err. */
static void expect_error_at(int fd, uint16_t id, uint16_t cmd, uint32_t err, int line)
{
	struct wire_msg m;
	int rc = rx(fd, &m);
	if (rc)
		fail_msg("line %d: no reply to cmd %u id %u: %s", line, cmd, id, strerror(-rc));
	struct vfu_hdr h = m.hdr;
	int nfds = m.nfds;
	wire_msg_release(&m);
	if (h.msg_id != id || h.cmd != cmd || h.flags != REPLY_ERR || h.error != err ||
	    h.size != sizeof(h) || nfds != 0)
		fail_msg("line %d: expected error reply id %u cmd %u flags 0x%x errno %u (%s), "
			 "size 16, no fds; got id %u cmd %u flags 0x%x errno %u (%s) size %u fds %d",
			 line, id, cmd, REPLY_ERR, err, strerror((int)err), h.msg_id, h.cmd, h.flags,
			 h.error, strerror((int)h.error), h.size, nfds);
}
#define expect_error(fd, id, cmd, err) expect_error_at(fd, id, cmd, err, __LINE__)

/* The next message must be the successful reply to (id, cmd). */
static void expect_reply_at(int fd, uint16_t id, uint16_t cmd, struct wire_msg *out, int line)
{
	struct wire_msg m;
	int rc = rx(fd, &m);
	if (rc)
		fail_msg("line %d: no reply to cmd %u id %u: %s", line, cmd, id, strerror(-rc));
	if (m.hdr.msg_id != id || m.hdr.cmd != cmd || m.hdr.flags != VFU_F_TYPE_REPLY) {
		struct vfu_hdr h = m.hdr;
		wire_msg_release(&m);
		fail_msg("line %d: expected reply id %u cmd %u; got id %u cmd %u flags 0x%x "
			 "errno %u (%s)",
			 line, id, cmd, h.msg_id, h.cmd, h.flags, h.error, strerror((int)h.error));
	}
	if (out)
		*out = m;
	else
		wire_msg_release(&m);
}
#define expect_reply(fd, id, cmd, out) expect_reply_at(fd, id, cmd, out, __LINE__)

/* A good request after a bad one: DEVICE_GET_INFO must be answered in full,
 * and its reply must be the very next message. */
static void check_alive_at(int fd, int line)
{
	struct vfu_device_info di = { .argsz = sizeof(di) };
	uint16_t id = tx(fd, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0);
	struct wire_msg m;
	expect_reply_at(fd, id, VFU_CMD_DEVICE_GET_INFO, &m, line);
	if (m.len != sizeof(di) || m.nfds != 0) {
		size_t len = m.len;
		wire_msg_release(&m);
		fail_msg("line %d: DEVICE_GET_INFO reply of %zu bytes", line, len);
	}
	memcpy(&di, m.payload, sizeof(di));
	wire_msg_release(&m);
	if (di.argsz != sizeof(di) || di.flags != (VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI) ||
	    di.num_regions != 9 || di.num_irqs != 5)
		fail_msg("line %d: DEVICE_GET_INFO: argsz %u flags 0x%x regions %u irqs %u", line,
			 di.argsz, di.flags, di.num_regions, di.num_irqs);
}
#define check_alive(fd) check_alive_at(fd, __LINE__)

/* Sends a request that must fail with err, then checks the session. */
static void bad_at(int fd, uint16_t cmd, const void *p, size_t len, const int *fds, int nfds,
		   uint32_t err, int line)
{
	uint16_t id = tx(fd, cmd, p, len, fds, nfds);
	expect_error_at(fd, id, cmd, err, line);
	check_alive_at(fd, line);
}
#define bad(fd, cmd, p, len, err) bad_at(fd, cmd, p, len, NULL, 0, err, __LINE__)
#define bad_fds(fd, cmd, p, len, fds, nfds, err) bad_at(fd, cmd, p, len, fds, nfds, err, __LINE__)

/* The server must close the stream: EOF (or ECONNRESET when it left bytes
 * of ours unread) and no message before it. */
static void expect_closed_at(int fd, int line)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, RX_TIMEOUT_MS);
	if (r != 1)
		fail_msg("line %d: server did not close the connection", line);
	char b[64];
	ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
	if (n > 0)
		fail_msg("line %d: expected EOF, got %zd bytes", line, n);
	if (n < 0 && errno != ECONNRESET)
		fail_msg("line %d: expected EOF, got %s", line, strerror(errno));
}
#define expect_closed(fd) expect_closed_at(fd, __LINE__)

static int send_version(int fd, uint16_t major, uint16_t minor, const void *json, size_t jlen,
			const int *fds, int nfds, uint16_t *id)
{
	uint8_t *body = malloc(4 + jlen);
	assert_non_null(body);
	struct vfu_version v = { major, minor };
	memcpy(body, &v, 4);
	if (jlen)
		memcpy(body + 4, json, jlen);
	struct vfu_hdr h = { .msg_id = ++g_id, .cmd = VFU_CMD_VERSION };
	int rc = wire_send(fd, &h, body, 4 + jlen, fds, nfds);
	free(body);
	*id = h.msg_id;
	return rc;
}

/* Connections a test holds: a failing assertion leaves the test early, so
 * the teardown closes what is left and the next test finds the device free. */
#define MAX_SOCKS 8
static int g_socks[MAX_SOCKS];
static int g_nsocks;

static int track(int fd)
{
	if (g_nsocks == MAX_SOCKS)
		fail_msg("too many connections in one test");
	g_socks[g_nsocks++] = fd;
	set_timeouts(fd);
	return fd;
}

static void sclose(int fd)
{
	for (int i = 0; i < g_nsocks; i++) {
		if (g_socks[i] == fd) {
			g_socks[i] = g_socks[--g_nsocks];
			break;
		}
	}
	close(fd);
}

static int connect_raw(void)
{
	int fd = raw_connect(sock_path());
	if (fd < 0)
		fail_msg("connect %s: %s", sock_path(), strerror(-fd));
	return track(fd);
}

static int connect_neg(void)
{
	int fd = raw_connect_negotiated(sock_path());
	if (fd < 0) {
		dump_server_log();
		fail_msg("connect+VERSION %s: %s", sock_path(), strerror(-fd));
	}
	return track(fd);
}

/* Connects and negotiates with the given JSON document (NUL included). */
static int connect_with_caps(const char *json)
{
	int fd = connect_raw();
	uint16_t id;
	assert_int_equal(send_version(fd, 0, 2, json, strlen(json) + 1, NULL, 0, &id), 0);
	expect_reply(fd, id, VFU_CMD_VERSION, NULL);
	return fd;
}

static int server_fd_count(void)
{
	return proc_count(g_proc.pid, "fd");
}

/* After the server dropped its copies of a pipe's write end and we closed
 * ours, the read end sees EOF. */
static void expect_pipe_released_at(int rfd, int line)
{
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	int r = poll(&p, 1, RX_TIMEOUT_MS);
	if (r != 1 || !(p.revents & POLLHUP))
		fail_msg("line %d: the server still holds a descriptor it should have closed", line);
}
#define expect_pipe_released(rfd) expect_pipe_released_at(rfd, __LINE__)

/* Config and BAR0 access through raw messages. */
static void region_write32(int fd, uint32_t region, uint64_t off, uint32_t v, uint32_t count)
{
	uint8_t buf[sizeof(struct vfu_region_access) + 4];
	struct vfu_region_access ra = { .offset = off, .region = region, .count = count };
	memcpy(buf, &ra, sizeof(ra));
	memcpy(buf + sizeof(ra), &v, 4);
	uint16_t id = tx(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + count, NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_REGION_WRITE, &m);
	assert_int_equal(m.len, sizeof(ra));
	struct vfu_region_access echo;
	memcpy(&echo, m.payload, sizeof(echo));
	wire_msg_release(&m);
	assert_int_equal(echo.offset, off);
	assert_int_equal(echo.region, region);
	assert_int_equal(echo.count, count);
}

static uint32_t region_read32(int fd, uint32_t region, uint64_t off)
{
	struct vfu_region_access ra = { .offset = off, .region = region, .count = 4 };
	uint16_t id = tx(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_REGION_READ, &m);
	assert_int_equal(m.len, sizeof(ra) + 4);
	uint32_t v;
	memcpy(&v, m.payload + sizeof(ra), 4);
	wire_msg_release(&m);
	return v;
}

static void mem_enable(int fd)
{
	region_write32(fd, VFU_PCI_CONFIG, 0x04, 0x0002, 2);   /* COMMAND.MEM */
	assert_int_equal(region_read32(fd, VFU_PCI_CONFIG, 0x04) & 0xffff, 0x0002);
}

/* ------------------------------------------------------------------ */
/* Fixtures */

static int group_setup(void **state)
{
	(void)state;
	static const char *const specs[] = { "demo", NULL };
	return harness_group_start(&g_proc, specs);
}

static int group_teardown(void **state)
{
	(void)state;
	return harness_group_stop(&g_proc);
}

static int test_setup(void **state)
{
	(void)state;
	harness_watchdog_arm("test_raw", WATCHDOG_S);
	harness_fds_mark();
	return 0;
}

/* Every test closes what it opened: a client-side descriptor leak (e.g. an
 * fd received with a reply and never closed) fails the test here. */
static int test_teardown(void **state)
{
	(void)state;
	harness_watchdog_disarm();
	int left = g_nsocks;
	while (g_nsocks)
		sclose(g_socks[0]);
	if (left) {
		fprintf(stderr, "%d connection(s) left open by the test\n", left);
		return -1;
	}
	if (harness_fds_check())
		return -1;
	return harness_check_alive(&g_proc);
}

/* ------------------------------------------------------------------ */
/* Lengths */

/* Payload shorter than the command's fixed struct: EINVAL for every
 * command (dispatch checks min_len before any handler runs). */
static void test_short_payloads(void **state)
{
	(void)state;
	static const struct {
		uint16_t cmd;
		uint32_t min;
	} cmds[] = {
		{ VFU_CMD_DMA_MAP, sizeof(struct vfu_dma_map) },
		{ VFU_CMD_DMA_UNMAP, sizeof(struct vfu_dma_unmap) },
		{ VFU_CMD_DEVICE_GET_INFO, sizeof(struct vfu_device_info) },
		{ VFU_CMD_GET_REGION_INFO, sizeof(struct vfu_region_info) },
		{ VFU_CMD_GET_REGION_IO_FDS, sizeof(struct vfu_region_io_fds) },
		{ VFU_CMD_GET_IRQ_INFO, sizeof(struct vfu_irq_info) },
		{ VFU_CMD_SET_IRQS, sizeof(struct vfu_irq_set) },
		{ VFU_CMD_REGION_READ, sizeof(struct vfu_region_access) },
		{ VFU_CMD_REGION_WRITE, sizeof(struct vfu_region_access) },
		{ VFU_CMD_REGION_WRITE_MULTI, sizeof(struct vfu_write_multi) },
		{ VFU_CMD_DEVICE_FEATURE, sizeof(struct vfu_device_feature) },
		{ VFU_CMD_MIG_DATA_READ, sizeof(struct vfu_mig_data) },
		{ VFU_CMD_MIG_DATA_WRITE, sizeof(struct vfu_mig_data) },
	};
	int fd = connect_neg();
	uint8_t buf[64];
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		/* a plausible prefix: argsz = the full struct size */
		memset(buf, 0, sizeof(buf));
		memcpy(buf, &cmds[i].min, 4);
		bad(fd, cmds[i].cmd, NULL, 0, EINVAL);
		bad(fd, cmds[i].cmd, buf, 1, EINVAL);
		bad(fd, cmds[i].cmd, buf, cmds[i].min - 1, EINVAL);
	}
	sclose(fd);
}

/* argsz below the fixed struct: EINVAL. */
static void test_argsz_too_small(void **state)
{
	(void)state;
	int fd = connect_neg();

	struct vfu_dma_map dm = { .argsz = sizeof(dm) - 1, .flags = 3, .addr = 0x10000,
				  .size = 0x1000 };
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EINVAL);
	dm.argsz = 0;
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EINVAL);

	struct vfu_dma_unmap du = { .argsz = sizeof(du) - 1 };
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);

	struct vfu_device_info di = { .argsz = sizeof(di) - 1 };
	bad(fd, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);
	di.argsz = 0;
	bad(fd, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), EINVAL);

	struct vfu_region_info ri = { .argsz = sizeof(ri) - 1, .index = VFU_PCI_CONFIG };
	bad(fd, VFU_CMD_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);

	struct vfu_region_io_fds io = { .argsz = sizeof(io) - 1, .index = 0 };
	bad(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);

	struct vfu_irq_info ii = { .argsz = sizeof(ii) - 1, .index = VFU_IRQ_MSIX };
	bad(fd, VFU_CMD_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);

	struct vfu_irq_set is = { .argsz = sizeof(is) - 1,
				  .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  .index = VFU_IRQ_MSIX, .start = 0, .count = 1 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);

	struct vfu_device_feature f = { .argsz = sizeof(f) - 1,
					.flags = VFIO_DEVICE_FEATURE_PROBE |
						 VFIO_DEVICE_FEATURE_SET |
						 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY };
	bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), EINVAL);
	sclose(fd);
}

/* REGION_WRITE whose count disagrees with the data it carries: EINVAL, and
 * nothing is written. */
static void test_region_write_count_mismatch(void **state)
{
	(void)state;
	int fd = connect_neg();
	mem_enable(fd);
	region_write32(fd, 0, REG_SCRATCH, 0x11111111, 4);

	uint8_t buf[sizeof(struct vfu_region_access) + 8];
	struct vfu_region_access ra = { .offset = REG_SCRATCH, .region = 0 };
	memset(buf, 0x22, sizeof(buf));
	ra.count = 8;   /* says 8, carries 4 */
	memcpy(buf, &ra, sizeof(ra));
	bad(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + 4, EINVAL);
	ra.count = 4;   /* says 4, carries 8 */
	memcpy(buf, &ra, sizeof(ra));
	bad(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + 8, EINVAL);
	ra.count = 4;   /* says 4, carries none */
	memcpy(buf, &ra, sizeof(ra));
	bad(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra), EINVAL);
	ra.count = 0;   /* says 0, carries 4 */
	memcpy(buf, &ra, sizeof(ra));
	bad(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + 4, EINVAL);

	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0x11111111);

	/* count 0 with no data is a valid no-op; a read of count 0 too */
	ra.count = 0;
	uint16_t id = tx(fd, VFU_CMD_REGION_WRITE, &ra, sizeof(ra), NULL, 0);
	expect_reply(fd, id, VFU_CMD_REGION_WRITE, NULL);
	id = tx(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_REGION_READ, &m);
	assert_int_equal(m.len, sizeof(ra));
	wire_msg_release(&m);
	sclose(fd);
}

/* SET_IRQS DATA_BOOL carries exactly count bytes. */
static void test_set_irqs_bool_length(void **state)
{
	(void)state;
	int fd = connect_neg();
	uint8_t buf[sizeof(struct vfu_irq_set) + 4] = { 0 };
	struct vfu_irq_set is = { .argsz = sizeof(is) + 1,
				  .flags = VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
				  .index = VFU_IRQ_MSIX, .start = 0, .count = 1 };
	memcpy(buf, &is, sizeof(is));
	bad(fd, VFU_CMD_SET_IRQS, buf, sizeof(is), EINVAL);       /* no data */
	bad(fd, VFU_CMD_SET_IRQS, buf, sizeof(is) + 2, EINVAL);   /* 2 bytes for count 1 */
	is.count = 2;
	memcpy(buf, &is, sizeof(is));
	bad(fd, VFU_CMD_SET_IRQS, buf, sizeof(is) + 1, EINVAL);   /* 1 byte for count 2 */
	/* the consistent request is accepted: no reply payload */
	is.count = 1;
	memcpy(buf, &is, sizeof(is));
	buf[sizeof(is)] = 1;
	uint16_t id = tx(fd, VFU_CMD_SET_IRQS, buf, sizeof(is) + 1, NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_SET_IRQS, &m);
	assert_int_equal(m.len, 0);
	wire_msg_release(&m);
	check_alive(fd);
	sclose(fd);
}

static void put_entry(uint8_t *p, uint32_t region, uint64_t off, uint32_t count, uint32_t val)
{
	struct vfu_write_multi_entry e = { .offset = off, .region = region, .count = count };
	memcpy(e.data, &val, 4);
	memcpy(p, &e, sizeof(e));
}

/* REGION_WRITE_MULTI: entry count must match the payload; each entry must be
 * valid; and the command only exists once negotiated. */
static void test_write_multi(void **state)
{
	(void)state;
	const size_t es = sizeof(struct vfu_write_multi_entry);
	uint8_t *buf = calloc(1, 8 + 1026 * es);
	assert_non_null(buf);
	uint64_t cnt;

	/* not negotiated: EINVAL even for a well-formed request */
	int fd = connect_neg();
	mem_enable(fd);
	cnt = 1;
	memcpy(buf, &cnt, 8);
	put_entry(buf + 8, 0, REG_SCRATCH, 4, 0x5a5a5a5a);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0);
	sclose(fd);

	fd = connect_with_caps("{\"capabilities\":{\"max_msg_fds\":8,\"write_multiple\":true}}");
	mem_enable(fd);
	cnt = 2;   /* says 2, carries 1 */
	memcpy(buf, &cnt, 8);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);
	cnt = 1;   /* says 1, carries 2 */
	memcpy(buf, &cnt, 8);
	put_entry(buf + 8 + es, 0, REG_SCRATCH, 4, 0x6b6b6b6b);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + 2 * es, EINVAL);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es + 3, EINVAL);   /* ragged */
	cnt = 0;
	memcpy(buf, &cnt, 8);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8, EINVAL);
	cnt = VFPM_MAX_WRITE_MULTI + 1;   /* consistent, but over the limit */
	memcpy(buf, &cnt, 8);
	for (uint64_t i = 0; i < cnt; i++)
		put_entry(buf + 8 + i * es, 0, REG_SCRATCH, 4, 0x7c7c7c7c);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + cnt * es, EINVAL);
	cnt = 0x100000000ull + 1;   /* wraps to 1 entry if truncated to 32 bits */
	memcpy(buf, &cnt, 8);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0);

	/* bad entries */
	cnt = 1;
	memcpy(buf, &cnt, 8);
	put_entry(buf + 8, 0, REG_SCRATCH, 0, 0x1);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);        /* count 0 */
	put_entry(buf + 8, 0, REG_SCRATCH, 9, 0x1);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);        /* count 9 > 8 */
	put_entry(buf + 8, 9, REG_SCRATCH, 4, 0x1);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);        /* region 9 */
	put_entry(buf + 8, 0xffffffffu, REG_SCRATCH, 4, 0x1);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);        /* region ~0 */
	put_entry(buf + 8, 0, 0xfffffffffffffffcull, 8, 0x1);
	bad(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + es, EINVAL);        /* offset wraps */
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0);

	/* a good one: the reply echoes wr_cnt */
	cnt = 2;
	memcpy(buf, &cnt, 8);
	put_entry(buf + 8, 0, REG_SCRATCH, 4, 0x01020304);
	put_entry(buf + 8 + es, 0, REG_SCRATCH, 4, 0x0a0b0c0d);
	uint16_t id = tx(fd, VFU_CMD_REGION_WRITE_MULTI, buf, 8 + 2 * es, NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_REGION_WRITE_MULTI, &m);
	assert_int_equal(m.len, 8);
	memcpy(&cnt, m.payload, 8);
	wire_msg_release(&m);
	assert_int_equal(cnt, 2);
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0x0a0b0c0d);
	sclose(fd);
	free(buf);
}

/* ------------------------------------------------------------------ */
/* Indices, offsets, counts */

static void test_bad_indices(void **state)
{
	(void)state;
	int fd = connect_neg();
	mem_enable(fd);
	static const uint32_t bad_regions[] = { 9, 10, 0x80000000u, 0xffffffffu };
	for (size_t i = 0; i < sizeof(bad_regions) / sizeof(bad_regions[0]); i++) {
		uint32_t r = bad_regions[i];
		struct vfu_region_info ri = { .argsz = 256, .index = r };
		bad(fd, VFU_CMD_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
		struct vfu_region_io_fds io = { .argsz = 256, .index = r };
		bad(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);
		struct vfu_region_access ra = { .offset = 0, .region = r, .count = 4 };
		bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);
		uint8_t wb[sizeof(ra) + 4] = { 0 };
		memcpy(wb, &ra, sizeof(ra));
		bad(fd, VFU_CMD_REGION_WRITE, wb, sizeof(wb), EINVAL);
	}
	/* regions that exist in the numbering but not on this device: BAR1,
	 * BAR3 (upper half of 64-bit BAR2), BAR5, the ROM and VGA */
	static const uint32_t absent[] = { 1, 3, 5, VFU_PCI_ROM, VFU_PCI_VGA };
	for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++) {
		struct vfu_region_access ra = { .offset = 0, .region = absent[i], .count = 4 };
		bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);
		uint8_t wb[sizeof(ra) + 4] = { 0 };
		memcpy(wb, &ra, sizeof(ra));
		bad(fd, VFU_CMD_REGION_WRITE, wb, sizeof(wb), EINVAL);
	}

	static const uint32_t bad_irqs[] = { 5, 6, 0xffffffffu };
	for (size_t i = 0; i < sizeof(bad_irqs) / sizeof(bad_irqs[0]); i++) {
		struct vfu_irq_info ii = { .argsz = sizeof(ii), .index = bad_irqs[i] };
		bad(fd, VFU_CMD_GET_IRQ_INFO, &ii, sizeof(ii), EINVAL);
		struct vfu_irq_set is = { .argsz = sizeof(is),
					  .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
					  .index = bad_irqs[i], .start = 0, .count = 1 };
		bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
		is.count = 0;   /* "disable the index" form */
		bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	}

	/* sub-indices out of range */
	struct vfu_irq_set is = { .argsz = sizeof(is),
				  .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  .index = VFU_IRQ_MSIX, .start = DEMO_MSIX_VECTORS, .count = 1 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	is.start = 0;
	is.count = DEMO_MSIX_VECTORS + 1;
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	is = (struct vfu_irq_set){ .argsz = sizeof(is),
				   .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
				   .index = VFU_IRQ_INTX, .start = 1, .count = 1 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	/* the demo device has no MSI capability: MSI has 0 vectors */
	is = (struct vfu_irq_set){ .argsz = sizeof(is),
				   .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
				   .index = VFU_IRQ_MSI, .start = 0, .count = 1 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	/* ERR and REQ: TRIGGER only, one vector */
	is = (struct vfu_irq_set){ .argsz = sizeof(is),
				   .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				   .index = VFU_IRQ_ERR, .start = 0, .count = 1 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	is.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;
	is.index = VFU_IRQ_REQ;
	is.count = 2;
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	/* flags: two data types, two actions, none, unknown bits */
	static const uint32_t bad_flags[] = {
		VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_MASK,
		VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK,
		VFIO_IRQ_SET_DATA_NONE,
		VFIO_IRQ_SET_ACTION_MASK,
		0,
		VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK | 0x40,
	};
	for (size_t i = 0; i < sizeof(bad_flags) / sizeof(bad_flags[0]); i++) {
		is = (struct vfu_irq_set){ .argsz = sizeof(is), .flags = bad_flags[i],
					   .index = VFU_IRQ_MSIX, .start = 0, .count = 1 };
		bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	}
	/* count 0 needs start 0 and DATA_NONE|TRIGGER */
	is = (struct vfu_irq_set){ .argsz = sizeof(is),
				   .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
				   .index = VFU_IRQ_MSIX, .start = 1, .count = 0 };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	is.start = 0;
	is.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK;
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);

	/* GET_REGION_IO_FDS: flags and count must be 0 in the request */
	struct vfu_region_io_fds io = { .argsz = 256, .flags = 1, .index = 0 };
	bad(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);
	io.flags = 0;
	io.count = 1;
	bad(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), EINVAL);
	sclose(fd);
}

/* offset + count past the end, including sums that wrap around 2^64. */
static void test_overflowing_offsets(void **state)
{
	(void)state;
	int fd = connect_neg();
	mem_enable(fd);
	static const struct {
		uint32_t region;
		uint64_t size;
	} regs[] = { { 0, BAR0_SIZE }, { 2, BAR2_SIZE }, { 4, BAR4_SIZE }, { VFU_PCI_CONFIG, 4096 } };
	uint8_t wb[sizeof(struct vfu_region_access) + 32] = { 0 };
	for (size_t i = 0; i < sizeof(regs) / sizeof(regs[0]); i++) {
		const struct {
			uint64_t off;
			uint32_t count;
		} cases[] = {
			{ 0xfffffffffffffff0ull, 32 },   /* wraps to 0x10 */
			{ 0xffffffffffffffffull, 1 },
			{ regs[i].size, 1 },
			{ regs[i].size - 4, 8 },
			{ regs[i].size + 4096, 4 },
		};
		for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
			struct vfu_region_access ra = { .offset = cases[k].off, .region = regs[i].region,
							.count = cases[k].count };
			bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);
			memcpy(wb, &ra, sizeof(ra));
			bad(fd, VFU_CMD_REGION_WRITE, wb, sizeof(ra) + ra.count, EINVAL);
		}
	}
	/* the last dword of config space is fine */
	(void)region_read32(fd, VFU_PCI_CONFIG, 4092);

	/* SET_IRQS start + count wrapping */
	struct vfu_irq_set is = { .argsz = sizeof(is),
				  .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_MASK,
				  .index = VFU_IRQ_MSIX, .start = 1, .count = 0xffffffffu };
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);
	is.start = 0xffffffffu;
	is.count = 2;
	bad(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), EINVAL);

	/* DMA_MAP addr + size wrapping */
	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = 3, .addr = 0xfffffffffffff000ull,
				  .size = 0x2000 };
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EINVAL);
	sclose(fd);
}

/* count above max_data_xfer_size: the server's own 1 MiB is the bound of
 * a request; a smaller limit the client stated in VERSION is not. */
static void test_count_above_max_xfer(void **state)
{
	(void)state;
	int fd = connect_neg();
	mem_enable(fd);
	struct vfu_region_access ra = { .offset = 0, .region = 2, .count = (1u << 20) + 1 };
	bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);
	ra.count = 0xffffffffu;
	bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);

	/* a write of 1 MiB + 1 with all its data (the message itself is
	 * within the server's frame limit) */
	uint8_t *buf = calloc(1, sizeof(ra) + (1u << 20) + 1);
	assert_non_null(buf);
	ra.count = (1u << 20) + 1;
	memcpy(buf, &ra, sizeof(ra));
	bad(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + ra.count, EINVAL);

	/* exactly 1 MiB: all of BAR2 in one reply */
	ra.count = 1u << 20;
	uint16_t id = tx(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_REGION_READ, &m);
	assert_int_equal(m.len, sizeof(ra) + (1u << 20));
	wire_msg_release(&m);
	free(buf);
	sclose(fd);

	/* the client's own max_data_xfer_size bounds only what the server
	 * sends it unasked (DMA_READ/WRITE), not its requests: libvfio-user's
	 * sample client announces 1 KiB and writes 4 KiB */
	fd = connect_with_caps("{\"capabilities\":{\"max_data_xfer_size\":1024}}");
	mem_enable(fd);
	ra = (struct vfu_region_access){ .offset = 0, .region = 2, .count = 4096 };
	id = tx(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0);
	expect_reply(fd, id, VFU_CMD_REGION_READ, &m);
	assert_int_equal(m.len, sizeof(ra) + 4096);
	wire_msg_release(&m);
	buf = calloc(1, sizeof(ra) + 4096);
	assert_non_null(buf);
	memcpy(buf, &ra, sizeof(ra));
	id = tx(fd, VFU_CMD_REGION_WRITE, buf, sizeof(ra) + 4096, NULL, 0);
	expect_reply(fd, id, VFU_CMD_REGION_WRITE, &m);
	assert_int_equal(m.len, sizeof(ra));
	wire_msg_release(&m);
	free(buf);
	ra.count = (1u << 20) + 1;   /* the server's own bound still holds */
	bad(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), EINVAL);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* Descriptors */

static void test_descriptor_counts(void **state)
{
	(void)state;
	int fd = connect_neg();
	int srv_fds = server_fd_count();
	assert_true(srv_fds > 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);

	/* a descriptor on a command that takes none */
	struct vfu_device_info di = { .argsz = sizeof(di) };
	bad_fds(fd, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), &p[1], 1, EINVAL);
	struct vfu_region_access ra = { .offset = 0, .region = VFU_PCI_CONFIG, .count = 4 };
	bad_fds(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), &p[1], 1, EINVAL);
	struct vfu_dma_unmap du = { .argsz = sizeof(du), .flags = VFU_DMA_UNMAP_FLAG_ALL };
	bad_fds(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), &p[1], 1, EINVAL);
	bad_fds(fd, VFU_CMD_DEVICE_RESET, NULL, 0, &p[1], 1, EINVAL);

	/* DMA_MAP takes at most one */
	int m1 = memfd_create("raw-dma", MFD_CLOEXEC), m2 = memfd_create("raw-dma2", MFD_CLOEXEC);
	assert_true(m1 >= 0 && m2 >= 0);
	assert_int_equal(ftruncate(m1, 0x10000), 0);
	assert_int_equal(ftruncate(m2, 0x10000), 0);
	int two[2] = { m1, m2 };
	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = 3, .offset = 0, .addr = 0x200000,
				  .size = 0x10000 };
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), two, 2, EINVAL);
	/* nothing was mapped: the same range maps now, then unmaps */
	uint16_t id = tx(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &m1, 1);
	expect_reply(fd, id, VFU_CMD_DMA_MAP, NULL);
	struct vfu_dma_unmap du1 = { .argsz = sizeof(du1), .addr = 0x200000, .size = 0x10000 };
	id = tx(fd, VFU_CMD_DMA_UNMAP, &du1, sizeof(du1), NULL, 0);
	expect_reply(fd, id, VFU_CMD_DMA_UNMAP, NULL);
	/* a descriptor that cannot be mapped (an eventfd has no mmap) */
	int ev = eventfd(0, EFD_CLOEXEC);
	assert_true(ev >= 0);
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &ev, 1, EINVAL);
	close(ev);
	/* a descriptor that is no file (a pipe; /dev/zero alike): EINVAL */
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &p[1], 1, EINVAL);
	int zero = open("/dev/zero", O_RDWR | O_CLOEXEC);
	assert_true(zero >= 0);
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &zero, 1, EINVAL);
	close(zero);
	/* a write-only descriptor for a read/write map: EACCES, as mmap says */
	char self[64];
	snprintf(self, sizeof(self), "/proc/self/fd/%d", m1);
	int wo = open(self, O_WRONLY | O_CLOEXEC);
	assert_true(wo >= 0);
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &wo, 1, EACCES);
	close(wo);

	/* SET_IRQS eventfds: one per vector, eventfds only */
	int e1 = eventfd(0, EFD_CLOEXEC), e2 = eventfd(0, EFD_CLOEXEC);
	assert_true(e1 >= 0 && e2 >= 0);
	int efds[2] = { e1, e2 };
	struct vfu_irq_set is = { .argsz = sizeof(is),
				  .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				  .index = VFU_IRQ_MSIX, .start = 0, .count = 2 };
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), efds, 1, EINVAL);   /* 1 fd, count 2 */
	is.count = 1;
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), efds, 2, EINVAL);   /* 2 fds, count 1 */
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), &p[1], 1, EINVAL);  /* a pipe */
	int mixed[2] = { e1, p[1] };
	is.count = 2;
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), mixed, 2, EINVAL);  /* eventfd + pipe */
	is.count = 1;
	is.flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER;   /* fd without EVENTFD */
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), &e1, 1, EINVAL);
	/* mask/unmask notification eventfds are not offered: ENOTTY, as
	 * vfio-pci answers for MSI/MSI-X (libvfio-user would accept them) */
	is.flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK;
	bad_fds(fd, VFU_CMD_SET_IRQS, &is, sizeof(is), &e1, 1, ENOTTY);

	/* DEVICE_FEATURE takes at most one */
	struct vfu_device_feature f = { .argsz = sizeof(f),
					.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
						 VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY };
	bad_fds(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), efds, 2, EINVAL);

	/* more descriptors than the server takes in one message (16) */
	int many[VFPM_MAX_MSG_FDS + 1];
	for (int i = 0; i <= VFPM_MAX_MSG_FDS; i++) {
		many[i] = fcntl(p[1], F_DUPFD_CLOEXEC, 0);
		assert_true(many[i] >= 0);
	}
	{
		struct vfu_hdr h = { .msg_id = ++g_id, .cmd = VFU_CMD_DEVICE_GET_INFO,
				     .size = sizeof(h) + sizeof(di) };
		struct iovec iov[2] = { { &h, sizeof(h) }, { &di, sizeof(di) } };
		union {
			struct cmsghdr align;
			char buf[CMSG_SPACE(sizeof(many))];
		} cb;
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2, .msg_control = cb.buf,
				     .msg_controllen = sizeof(cb.buf) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(many));
		memcpy(CMSG_DATA(c), many, sizeof(many));
		assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)(sizeof(h) + sizeof(di)));
		expect_error(fd, h.msg_id, VFU_CMD_DEVICE_GET_INFO, EINVAL);
		check_alive(fd);
	}
	for (int i = 0; i <= VFPM_MAX_MSG_FDS; i++)
		close(many[i]);

	/* every descriptor the server was handed has been closed again */
	close(p[1]);
	expect_pipe_released(p[0]);
	close(p[0]);
	close(m1);
	close(m2);
	close(e1);
	close(e2);
	check_alive(fd);
	assert_int_equal(server_fd_count(), srv_fds);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* Commands, flags, message types */

static void test_unknown_commands(void **state)
{
	(void)state;
	int fd = connect_neg();
	/* 0, the removed 14, server->client 11/12 sent by a client, 19 (past
	 * the last), and the far end of the range */
	static const uint16_t cmds[] = { 0, 14, VFU_CMD_DMA_READ, VFU_CMD_DMA_WRITE, 19, 20,
					 0x7fff, 0xffff };
	uint8_t pl[32] = { 0 };
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		bad(fd, cmds[i], NULL, 0, EINVAL);
		bad(fd, cmds[i], pl, sizeof(pl), EINVAL);
	}
	sclose(fd);
}

static void test_bad_flags(void **state)
{
	(void)state;
	int fd = connect_neg();
	struct vfu_device_info di = { .argsz = sizeof(di) };
	/* message types other than command/reply */
	static const uint32_t flags[] = { 0x2, 0xf, VFU_F_ERROR, 0x40, 0x100, 0x80000000u };
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		uint16_t id = tx_flags(fd, VFU_CMD_DEVICE_GET_INFO, flags[i], &di, sizeof(di), NULL,
				       0);
		expect_error(fd, id, VFU_CMD_DEVICE_GET_INFO, EINVAL);
		check_alive(fd);
	}
	sclose(fd);
}

/* A reply the server never asked for (no DMA request in flight) is dropped
 * without an answer; its descriptors are closed. */
static void test_stray_reply_ignored(void **state)
{
	(void)state;
	int fd = connect_neg();
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct vfu_dma_access acc = { .addr = 0x1000, .count = 4 };
	uint8_t pl[sizeof(acc) + 4] = { 0 };
	memcpy(pl, &acc, sizeof(acc));

	struct vfu_hdr h = { .msg_id = 0xbeef, .cmd = VFU_CMD_DMA_READ, .flags = VFU_F_TYPE_REPLY };
	assert_int_equal(wire_send(fd, &h, pl, sizeof(pl), NULL, 0), 0);
	h = (struct vfu_hdr){ .msg_id = 0xbef0, .cmd = VFU_CMD_DMA_WRITE,
			      .flags = VFU_F_TYPE_REPLY | VFU_F_ERROR, .error = EFAULT };
	assert_int_equal(wire_send(fd, &h, NULL, 0, NULL, 0), 0);
	h = (struct vfu_hdr){ .msg_id = 0xbef1, .cmd = VFU_CMD_DEVICE_GET_INFO,
			      .flags = VFU_F_TYPE_REPLY };
	assert_int_equal(wire_send(fd, &h, pl, sizeof(pl), &p[1], 1), 0);
	/* the next message from the server is the reply to this request */
	check_alive(fd);
	close(p[1]);
	expect_pipe_released(p[0]);
	close(p[0]);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* VERSION */

static void test_request_before_version(void **state)
{
	(void)state;
	int fd = connect_raw();
	struct vfu_device_info di = { .argsz = sizeof(di) };
	uint16_t id = tx(fd, VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0);
	expect_error(fd, id, VFU_CMD_DEVICE_GET_INFO, EINVAL);
	struct vfu_region_access ra = { .offset = 0, .region = VFU_PCI_CONFIG, .count = 4 };
	id = tx(fd, VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0);
	expect_error(fd, id, VFU_CMD_REGION_READ, EINVAL);
	id = tx(fd, 0, NULL, 0, NULL, 0);
	expect_error(fd, id, 0, EINVAL);
	id = tx(fd, VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0);
	expect_error(fd, id, VFU_CMD_DEVICE_RESET, EINVAL);

	/* the connection is still usable for VERSION */
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":4}}";
	assert_int_equal(send_version(fd, 0, 2, json, sizeof(json), NULL, 0, &id), 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_VERSION, &m);
	assert_true(m.len > sizeof(struct vfu_version));
	struct vfu_version v;
	memcpy(&v, m.payload, sizeof(v));
	assert_int_equal(v.major, 0);
	assert_int_equal(v.minor, 2);
	wire_msg_release(&m);
	check_alive(fd);
	sclose(fd);
}

/* The VERSION reply: major echoed, minor min(proposed, 2), and the server's
 * receive limits as JSON (NUL included). */
static void test_version_reply(void **state)
{
	(void)state;
	static const struct {
		uint16_t minor_in, minor_out;
		const char *json;   /* NULL: no JSON at all */
		bool wm;
	} cases[] = {
		{ 2, 2, "{\"capabilities\":{}}", false },
		{ 0, 0, NULL, false },
		{ 1, 1, "{}", false },
		{ 0xffff, 2, "{\"capabilities\":{\"write_multiple\":true,\"unknown_key\":[1,2]}}", true },
		{ 2, 2, "{\"capabilities\":{\"twin_socket\":{\"supported\":true}}}", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int fd = connect_raw();
		uint16_t id;
		size_t jl = cases[i].json ? strlen(cases[i].json) + 1 : 0;
		assert_int_equal(send_version(fd, 0, cases[i].minor_in, cases[i].json, jl, NULL, 0, &id),
				 0);
		struct wire_msg m;
		expect_reply(fd, id, VFU_CMD_VERSION, &m);
		assert_int_equal(m.nfds, 0);   /* no twin socket granted */
		assert_true(m.len > sizeof(struct vfu_version));
		struct vfu_version v;
		memcpy(&v, m.payload, sizeof(v));
		assert_int_equal(v.major, 0);
		assert_int_equal(v.minor, cases[i].minor_out);
		const char *js = (const char *)m.payload + sizeof(v);
		size_t jlen = m.len - sizeof(v);
		assert_int_equal(js[jlen - 1], '\0');
		struct wire_caps c;
		assert_int_equal(wire_caps_parse(js, jlen, &c), 0);
		assert_int_equal(c.max_msg_fds, VFPM_MAX_MSG_FDS);
		assert_int_equal(c.max_data_xfer_size, VFPM_MAX_DATA_XFER);
		assert_int_equal(c.pgsizes, 4096);
		assert_int_equal(c.max_dma_maps, VFPM_MAX_DMA_MAPS);
		assert_int_equal(c.write_multiple, cases[i].wm);
		assert_false(c.twin_socket);
		wire_msg_release(&m);
		check_alive(fd);
		sclose(fd);
	}
}

static void test_second_version(void **state)
{
	(void)state;
	int fd = connect_neg();
	static const char json[] = "{\"capabilities\":{\"max_msg_fds\":8}}";
	uint16_t id;
	assert_int_equal(send_version(fd, 0, 2, json, sizeof(json), NULL, 0, &id), 0);
	expect_error(fd, id, VFU_CMD_VERSION, EINVAL);
	check_alive(fd);
	/* not even a short one closes an established session */
	id = tx(fd, VFU_CMD_VERSION, "\0", 1, NULL, 0);
	expect_error(fd, id, VFU_CMD_VERSION, EINVAL);
	check_alive(fd);
	sclose(fd);
}

/* A VERSION the server cannot accept: error reply with errno err, then the
 * server closes; a new client is served afterwards. */
static void version_refused_at(const void *body, size_t len, const int *fds, int nfds,
			       uint32_t err, int line)
{
	int fd = connect_raw();
	struct vfu_hdr h = { .msg_id = ++g_id, .cmd = VFU_CMD_VERSION };
	assert_int_equal(wire_send(fd, &h, body, len, fds, nfds), 0);
	expect_error_at(fd, h.msg_id, VFU_CMD_VERSION, err, line);
	expect_closed_at(fd, line);
	sclose(fd);
	fd = connect_neg();
	check_alive_at(fd, line);
	sclose(fd);
}
#define version_refused(body, len, err) version_refused_at(body, len, NULL, 0, err, __LINE__)

static void version_json_refused_at(const char *json, size_t jlen, uint32_t err, int line)
{
	uint8_t *body = malloc(4 + jlen);
	assert_non_null(body);
	struct vfu_version v = { 0, 2 };
	memcpy(body, &v, 4);
	memcpy(body + 4, json, jlen);
	version_refused_at(body, 4 + jlen, NULL, 0, err, line);
	free(body);
}
/* with the terminating NUL */
#define json_refused(lit, err) version_json_refused_at(lit, sizeof(lit), err, __LINE__)

static void test_version_bad_major(void **state)
{
	(void)state;
	static const char json[] = "{}";
	uint8_t body[4 + sizeof(json)];
	struct vfu_version v = { 1, 0 };
	memcpy(body, &v, 4);
	memcpy(body + 4, json, sizeof(json));
	version_refused(body, sizeof(body), EINVAL);
	version_refused(body, 4, EINVAL);
	v.major = 0xffff;
	memcpy(body, &v, 4);
	version_refused(body, 4, EINVAL);
	/* shorter than major + minor */
	version_refused(body, 2, EINVAL);
	version_refused(NULL, 0, EINVAL);
}

static void test_version_bad_json(void **state)
{
	(void)state;
	/* no NUL anywhere in the JSON bytes */
	static const char nonul[] = { '{', '}' };
	version_json_refused_at(nonul, sizeof(nonul), EINVAL, __LINE__);
	/* not an object */
	json_refused("[1,2]", EINVAL);
	json_refused("42", EINVAL);
	json_refused("\"capabilities\"", EINVAL);
	json_refused("", EINVAL);
	/* malformed */
	json_refused("{", EINVAL);
	json_refused("{\"capabilities\":{}} trailing", EINVAL);
	/* (single-quoted strings are not tested: json-c 0.16 accepts them
	 * even in strict mode) */
	/* wrong types and insane values */
	json_refused("{\"capabilities\":5}", EINVAL);
	json_refused("{\"capabilities\":{\"max_msg_fds\":\"8\"}}", EINVAL);
	json_refused("{\"capabilities\":{\"max_msg_fds\":-1}}", EINVAL);
	json_refused("{\"capabilities\":{\"max_msg_fds\":1.5}}", EINVAL);
	json_refused("{\"capabilities\":{\"max_data_xfer_size\":0}}", EINVAL);
	json_refused("{\"capabilities\":{\"max_data_xfer_size\":true}}", EINVAL);
	json_refused("{\"capabilities\":{\"pgsizes\":4095}}", EINVAL);
	json_refused("{\"capabilities\":{\"write_multiple\":1}}", EINVAL);
	json_refused("{\"capabilities\":{\"twin_socket\":\"yes\"}}", EINVAL);
	json_refused("{\"capabilities\":{\"migration\":4096}}", EINVAL);

	/* bigger than the server takes: E2BIG (a limit, not a parse error) */
	size_t big = VFPM_MAX_VERSION_JSON + 100;
	char *doc = malloc(big);
	assert_non_null(doc);
	int n = snprintf(doc, big, "{\"capabilities\":{},\"pad\":\"");
	memset(doc + n, 'x', big - (size_t)n - 3);
	memcpy(doc + big - 3, "\"}", 3);
	version_json_refused_at(doc, big, E2BIG, __LINE__);
	free(doc);

	/* VERSION carries no descriptors */
	int e = eventfd(0, EFD_CLOEXEC);
	assert_true(e >= 0);
	static const char ok[] = "{}";
	uint8_t body[4 + sizeof(ok)] = { 0, 0, 2, 0 };
	memcpy(body + 4, ok, sizeof(ok));
	version_refused_at(body, sizeof(body), &e, 1, EINVAL, __LINE__);
	close(e);
}

/* ------------------------------------------------------------------ */
/* Framing */

static void send_header_only(int fd, uint32_t size)
{
	struct vfu_hdr h = { .msg_id = ++g_id, .cmd = VFU_CMD_DEVICE_GET_INFO, .size = size };
	assert_int_equal(send(fd, &h, sizeof(h), MSG_NOSIGNAL), (ssize_t)sizeof(h));
}

/* msg_size < 16 or above the server's frame limit: the stream cannot be
 * resynchronised, so the server closes it; the next client is served. */
static void test_bad_header_size(void **state)
{
	(void)state;
	static const uint32_t sizes[] = { 0, 8, 15, (2u << 20) + 1, 0xffffffffu };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		int fd = connect_neg();
		send_header_only(fd, sizes[i]);
		expect_closed(fd);
		sclose(fd);
		/* before VERSION as well */
		fd = connect_raw();
		send_header_only(fd, sizes[i]);
		expect_closed(fd);
		sclose(fd);
		fd = connect_neg();
		check_alive(fd);
		sclose(fd);
	}
}

/* A message cut short by the client going away: the server survives. */
static void test_truncated_message(void **state)
{
	(void)state;
	/* cut in the body */
	int fd = connect_neg();
	struct {
		struct vfu_hdr h;
		struct vfu_region_access ra;
		uint32_t data;
	} msg = { .h = { .msg_id = ++g_id, .cmd = VFU_CMD_REGION_WRITE, .size = sizeof(msg) },
		  .ra = { .offset = REG_SCRATCH, .region = 0, .count = 4 },
		  .data = 0x12345678 };
	assert_int_equal(send(fd, &msg, sizeof(msg.h) + 10, MSG_NOSIGNAL),
			 (ssize_t)sizeof(msg.h) + 10);
	sclose(fd);
	fd = connect_neg();
	check_alive(fd);
	mem_enable(fd);
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0);   /* never applied */
	sclose(fd);

	/* cut in the header */
	fd = connect_neg();
	assert_int_equal(send(fd, &msg, 7, MSG_NOSIGNAL), 7);
	sclose(fd);
	/* cut in the header before VERSION */
	fd = connect_raw();
	assert_int_equal(send(fd, &msg, 3, MSG_NOSIGNAL), 3);
	sclose(fd);
	/* a body that arrives in pieces is fine */
	fd = connect_neg();
	mem_enable(fd);
	msg.h.msg_id = ++g_id;
	const uint8_t *b = (const uint8_t *)&msg;
	for (size_t off = 0; off < sizeof(msg); off += 5) {
		size_t n = sizeof(msg) - off < 5 ? sizeof(msg) - off : 5;
		assert_int_equal(send(fd, b + off, n, MSG_NOSIGNAL), (ssize_t)n);
		usleep(2000);
	}
	expect_reply(fd, msg.h.msg_id, VFU_CMD_REGION_WRITE, NULL);
	assert_int_equal(region_read32(fd, 0, REG_SCRATCH), 0x12345678);
	sclose(fd);
	assert_int_equal(kill(g_proc.pid, 0), 0);
}

/* ------------------------------------------------------------------ */
/* Clients */

static void test_second_client_refused(void **state)
{
	(void)state;
	int a = connect_neg();
	mem_enable(a);
	region_write32(a, 0, REG_SCRATCH, 0xa1a1a1a1, 4);

	int b = connect_raw();
	static const char json[] = "{}";
	uint16_t id;
	assert_int_equal(send_version(b, 0, 2, json, sizeof(json), NULL, 0, &id), 0);
	expect_error(b, id, VFU_CMD_VERSION, EBUSY);
	expect_closed(b);
	sclose(b);

	/* the first client is undisturbed */
	check_alive(a);
	assert_int_equal(region_read32(a, 0, REG_ID), DEMO_ID);
	assert_int_equal(region_read32(a, 0, REG_SCRATCH), 0xa1a1a1a1);
	sclose(a);

	/* and once it is gone, the next client is served at once */
	a = connect_neg();
	check_alive(a);
	sclose(a);
}

/* A client that closes and reconnects at once is served, not refused as a
 * second client while the old session winds down. */
static void test_immediate_reconnect(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		int fd = raw_connect_negotiated(sock_path());
		if (fd < 0) {
			dump_server_log();
			fail_msg("reconnect %d: %s", i, strerror(-fd));
		}
		sclose(fd);
	}
	int fd = connect_neg();
	check_alive(fd);
	sclose(fd);
}

/* NO_REPLY: nothing is sent back, not even for a failure. */
static void test_no_reply_flag(void **state)
{
	(void)state;
	int fd = connect_neg();
	const uint32_t nr = VFU_F_TYPE_COMMAND | VFU_F_NO_REPLY;
	struct vfu_region_access ra = { .offset = 0, .region = 9, .count = 4 };
	tx_flags(fd, VFU_CMD_REGION_READ, nr, &ra, sizeof(ra), NULL, 0);
	tx_flags(fd, 0, nr, NULL, 0, NULL, 0);
	tx_flags(fd, VFU_CMD_DEVICE_GET_INFO, nr, NULL, 0, NULL, 0);
	struct vfu_dma_unmap du = { .argsz = sizeof(du), .addr = 0x1000, .size = 0x1000 };
	tx_flags(fd, VFU_CMD_DMA_UNMAP, nr, &du, sizeof(du), NULL, 0);
	check_alive(fd);   /* its reply is the very next message */

	/* a successful NO_REPLY write takes effect silently */
	uint8_t wb[sizeof(ra) + 4];
	ra = (struct vfu_region_access){ .offset = 0x04, .region = VFU_PCI_CONFIG, .count = 2 };
	uint32_t cmd = 0x0002;
	memcpy(wb, &ra, sizeof(ra));
	memcpy(wb + sizeof(ra), &cmd, 4);
	tx_flags(fd, VFU_CMD_REGION_WRITE, nr, wb, sizeof(ra) + 2, NULL, 0);
	assert_int_equal(region_read32(fd, VFU_PCI_CONFIG, 0x04) & 0xffff, 0x0002);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* DEVICE_FEATURE and migration */

static void test_device_feature(void **state)
{
	(void)state;
	int fd = connect_neg();
	struct vfu_device_feature f = { .argsz = sizeof(f) };
	/* flag bits above PROBE */
	f.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY | (1u << 19);
	bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), EINVAL);
	f.flags = VFIO_DEVICE_FEATURE_GET | 0x80000000u | 1;
	bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), EINVAL);
	/* GET and SET together need PROBE */
	f.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET |
		  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
	bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), EINVAL);
	f.flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIGRATION;
	bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), EINVAL);
	/* features this server does not implement: ENOTTY as vfio-pci answers
	 * (libvfio-user says EINVAL) */
	static const uint32_t unsupported[] = {
		VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
		VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
		VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION,
		VFIO_DEVICE_FEATURE_SET | 6 /* DMA_LOGGING_START */,
		VFIO_DEVICE_FEATURE_GET | 0,
		VFIO_DEVICE_FEATURE_GET | 0xffff,
	};
	for (size_t i = 0; i < sizeof(unsupported) / sizeof(unsupported[0]); i++) {
		f.flags = unsupported[i];
		bad(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), ENOTTY);
	}
	/* a supported feature probes fine: the reply echoes the request */
	f.flags = VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET |
		  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT;
	uint16_t id = tx(fd, VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_DEVICE_FEATURE, &m);
	assert_int_equal(m.len, sizeof(f));
	struct vfu_device_feature echo;
	memcpy(&echo, m.payload, sizeof(echo));
	wire_msg_release(&m);
	assert_int_equal(echo.flags, f.flags);
	sclose(fd);
}

static void test_mig_data(void **state)
{
	(void)state;
	int fd = connect_neg();
	struct vfu_mig_data md = { .argsz = sizeof(md) + 64, .size = 64 };
	bad(fd, VFU_CMD_MIG_DATA_READ, &md, sizeof(md), EINVAL);
	uint8_t wb[sizeof(md) + 16] = { 0 };
	md = (struct vfu_mig_data){ .argsz = sizeof(wb), .size = 16 };
	memcpy(wb, &md, sizeof(md));
	bad(fd, VFU_CMD_MIG_DATA_WRITE, wb, sizeof(wb), EINVAL);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* DMA map/unmap */

static void dma_map_ok(int fd, uint64_t addr, uint64_t size, uint64_t off, int mfd)
{
	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = 3, .offset = off, .addr = addr,
				  .size = size };
	uint16_t id = tx(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), mfd >= 0 ? &mfd : NULL,
			 mfd >= 0 ? 1 : 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_DMA_MAP, &m);
	assert_int_equal(m.len, 0);
	wire_msg_release(&m);
}

static void dma_unmap_ok(int fd, uint32_t flags, uint64_t addr, uint64_t size)
{
	struct vfu_dma_unmap du = { .argsz = sizeof(du), .flags = flags, .addr = addr, .size = size };
	uint16_t id = tx(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_DMA_UNMAP, &m);
	/* the reply echoes the 24 bytes */
	assert_int_equal(m.len, sizeof(du));
	struct vfu_dma_unmap echo;
	memcpy(&echo, m.payload, sizeof(echo));
	wire_msg_release(&m);
	assert_int_equal(echo.argsz, sizeof(du));
	assert_int_equal(echo.flags, flags);
	assert_int_equal(echo.addr, addr);
	assert_int_equal(echo.size, size);
}

static void test_dma_map_unmap(void **state)
{
	(void)state;
	int fd = connect_neg();
	int srv_fds = server_fd_count();
	int mfd = memfd_create("raw-dma", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	assert_int_equal(ftruncate(mfd, 0x100000), 0);

	dma_map_ok(fd, 0x10000, 0x10000, 0, mfd);
	dma_map_ok(fd, 0x40000, 0x1000, 0, -1);   /* message-based */

	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = 3, .offset = 0 };
	/* overlaps: EEXIST as the spec says (libvfio-user answers EINVAL) */
	static const struct {
		uint64_t addr, size;
	} overlaps[] = {
		{ 0x10000, 0x10000 },   /* the same range again */
		{ 0x18000, 0x10000 },   /* straddles the end */
		{ 0x8000, 0x9000 },     /* straddles the start */
		{ 0x11000, 0x1000 },    /* inside */
		{ 0x0, 0x100000 },      /* covers both maps */
		{ 0x40000, 0x1000 },    /* the message-based one */
	};
	for (size_t i = 0; i < sizeof(overlaps) / sizeof(overlaps[0]); i++) {
		dm.addr = overlaps[i].addr;
		dm.size = overlaps[i].size;
		bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EEXIST);
		bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EEXIST);
	}
	/* unaligned to the 4 KiB page size, empty, unknown flags */
	dm = (struct vfu_dma_map){ .argsz = sizeof(dm), .flags = 3, .addr = 0x80800, .size = 0x1000 };
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.addr = 0x80000;
	dm.size = 0x800;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EINVAL);
	dm.size = 0x1000;
	dm.offset = 0x100;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.offset = 0;
	dm.size = 0;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.size = 0x1000;
	dm.flags = 0x4;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.flags = 0x80000003u;
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EINVAL);

	/* a window past the end of the descriptor's file: a DMA there would
	 * fault in the server (SIGBUS), so the map itself is refused */
	dm = (struct vfu_dma_map){ .argsz = sizeof(dm), .flags = 3, .offset = 0, .addr = 0x200000,
				   .size = 0x200000 };   /* the memfd has 1 MiB */
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.offset = 0xf0000;
	dm.size = 0x20000;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);
	dm.offset = 0x101000;
	dm.size = 0x1000;
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EINVAL);

	/* unmap, as the kernel's type1 IOMMU: a range that would split a map
	 * is refused, a range with nothing in it is no error */
	struct vfu_dma_unmap du = { .argsz = sizeof(du), .addr = 0x10000, .size = 0x1000 };
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* part of a map */
	du.addr = 0x18000;
	du.size = 0x10000;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* crosses its end */
	du.addr = 0x8000;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* crosses its start */
	du.addr = 0xfffffffffffff000ull;
	du.size = 0x2000;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* wraps around */
	du.addr = 0x90000;
	du.size = 0;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* empty */
	du.size = 0x800;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* not page-sized */
	dma_unmap_ok(fd, 0, 0x90000, 0x1000);                   /* never mapped: no error */
	/* UNMAP_ALL takes no range; other flags are refused */
	du = (struct vfu_dma_unmap){ .argsz = sizeof(du), .flags = VFU_DMA_UNMAP_FLAG_ALL,
				     .addr = 0x10000 };
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);
	du.addr = 0;
	du.size = 0x10000;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);
	du = (struct vfu_dma_unmap){ .argsz = sizeof(du), .flags = 1, .addr = 0x10000,
				     .size = 0x10000 };
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);   /* legacy dirty bitmap */
	du.flags = 3;
	bad(fd, VFU_CMD_DMA_UNMAP, &du, sizeof(du), EINVAL);

	/* the failures changed nothing: both maps are still there (a map
	 * over either of them is refused) */
	dm = (struct vfu_dma_map){ .argsz = sizeof(dm), .flags = 3, .addr = 0x10000, .size = 0x1000 };
	bad_fds(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), &mfd, 1, EEXIST);
	dm.addr = 0x40000;
	bad(fd, VFU_CMD_DMA_MAP, &dm, sizeof(dm), EEXIST);
	dma_unmap_ok(fd, 0, 0x10000, 0x10000);
	dma_map_ok(fd, 0x10000, 0x10000, 0x10000, mfd);         /* the range is free again */
	/* a range holding several whole maps removes them all */
	dma_unmap_ok(fd, 0, 0, 0x100000);
	dma_map_ok(fd, 0x10000, 0x10000, 0, mfd);               /* both ranges are free */
	dma_map_ok(fd, 0x40000, 0x1000, 0, mfd);
	dma_unmap_ok(fd, VFU_DMA_UNMAP_FLAG_ALL, 0, 0);
	dma_map_ok(fd, 0x10000, 0x10000, 0, mfd);               /* ALL removed them */
	dma_map_ok(fd, 0x40000, 0x1000, 0, mfd);

	close(mfd);
	/* the server keeps a mapping, never the descriptor itself (it drops a
	 * request's descriptors after replying: one more round trip first) */
	check_alive(fd);
	assert_int_equal(server_fd_count(), srv_fds);
	sclose(fd);
}

/* ------------------------------------------------------------------ */
/* Replies that carry descriptors: received and closed, nothing leaks. */

static void test_info_truncation_and_fds(void **state)
{
	(void)state;
	int fd = connect_neg();
	/* BAR2: argsz 32 gets the needed size, no caps and no fd */
	struct vfu_region_info ri = { .argsz = sizeof(ri), .index = 2 };
	uint16_t id = tx(fd, VFU_CMD_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0);
	struct wire_msg m;
	expect_reply(fd, id, VFU_CMD_GET_REGION_INFO, &m);
	assert_int_equal(m.len, sizeof(ri));
	assert_int_equal(m.nfds, 0);
	memcpy(&ri, m.payload, sizeof(ri));
	wire_msg_release(&m);
	uint32_t need = (uint32_t)(sizeof(ri) + sizeof(struct vfu_cap_sparse_mmap) +
				   sizeof(struct vfu_sparse_area));
	assert_int_equal(ri.argsz, need);
	/* where the caps would be (QEMU insists on it before it retries) */
	assert_int_equal(ri.cap_offset, sizeof(ri));
	assert_int_equal(ri.size, BAR2_SIZE);

	/* with room: the sparse cap and one descriptor */
	ri = (struct vfu_region_info){ .argsz = need, .index = 2 };
	id = tx(fd, VFU_CMD_GET_REGION_INFO, &ri, sizeof(ri), NULL, 0);
	expect_reply(fd, id, VFU_CMD_GET_REGION_INFO, &m);
	assert_int_equal(m.len, need);
	assert_int_equal(m.nfds, 1);
	memcpy(&ri, m.payload, sizeof(ri));
	assert_int_equal(ri.cap_offset, sizeof(ri));
	struct vfu_cap_sparse_mmap cap;
	memcpy(&cap, m.payload + sizeof(ri), sizeof(cap));
	assert_int_equal(cap.hdr.id, VFIO_REGION_INFO_CAP_SPARSE_MMAP);
	assert_int_equal(cap.hdr.version, 1);
	assert_int_equal(cap.hdr.next, 0);
	assert_int_equal(cap.nr_areas, 1);
	wire_msg_release(&m);   /* closes the received descriptor */

	/* GET_REGION_IO_FDS on BAR0: truncated, then whole */
	struct vfu_region_io_fds io = { .argsz = sizeof(io), .index = 0 };
	id = tx(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), NULL, 0);
	expect_reply(fd, id, VFU_CMD_GET_REGION_IO_FDS, &m);
	assert_int_equal(m.len, sizeof(io));
	assert_int_equal(m.nfds, 0);
	memcpy(&io, m.payload, sizeof(io));
	wire_msg_release(&m);
	assert_int_equal(io.count, 1);
	assert_int_equal(io.argsz, sizeof(io) + sizeof(struct vfu_ioeventfd));
	io = (struct vfu_region_io_fds){ .argsz = io.argsz, .index = 0 };
	id = tx(fd, VFU_CMD_GET_REGION_IO_FDS, &io, sizeof(io), NULL, 0);
	expect_reply(fd, id, VFU_CMD_GET_REGION_IO_FDS, &m);
	assert_int_equal(m.len, sizeof(io) + sizeof(struct vfu_ioeventfd));
	assert_int_equal(m.nfds, 1);
	struct vfu_ioeventfd ev;
	memcpy(&ev, m.payload + sizeof(io), sizeof(ev));
	assert_int_equal(ev.offset, 0x10);
	assert_int_equal(ev.size, 4);
	assert_int_equal(ev.fd_index, 0);
	assert_int_equal(ev.type, VFU_IO_FD_TYPE_IOEVENTFD);
	wire_msg_release(&m);
	/* error replies never carry descriptors (checked in expect_error) */
	ri = (struct vfu_region_info){ .argsz = 1024, .index = 9 };
	bad(fd, VFU_CMD_GET_REGION_INFO, &ri, sizeof(ri), EINVAL);
	sclose(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
		T(test_short_payloads),
		T(test_argsz_too_small),
		T(test_region_write_count_mismatch),
		T(test_set_irqs_bool_length),
		T(test_write_multi),
		T(test_bad_indices),
		T(test_overflowing_offsets),
		T(test_count_above_max_xfer),
		T(test_descriptor_counts),
		T(test_unknown_commands),
		T(test_bad_flags),
		T(test_stray_reply_ignored),
		T(test_request_before_version),
		T(test_version_reply),
		T(test_second_version),
		T(test_version_bad_major),
		T(test_version_bad_json),
		T(test_bad_header_size),
		T(test_truncated_message),
		T(test_second_client_refused),
		T(test_immediate_reconnect),
		T(test_no_reply_flag),
		T(test_device_feature),
		T(test_mig_data),
		T(test_dma_map_unmap),
		T(test_info_truncation_and_fds),
#undef T
	};
	return cmocka_run_group_tests_name("raw", tests, group_setup, group_teardown);
}
