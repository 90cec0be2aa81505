/* The DMA channel in process: a device served by a real session thread on
 * one end of a socketpair; the test is the client on the other end and
 * answers the server's DMA_READ/DMA_WRITE requests itself, in any order.
 * Device threads are plain threads calling vfpm_dev_dma_read/write.
 *
 * No sleeps: the test knows a request is outstanding because it received
 * it (the channel files a request before sending it). Receives and joins
 * are bounded (SAFETY_MS) only so that a broken channel fails the test
 * instead of hanging it; the channel's own reply deadline (10 s) is longer,
 * so a request that returns within the bound was woken, not timed out. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

#define SAFETY_MS 5000
#define IOVA 0x100000ull
#define IOVA_SIZE 0x10000ull
#define XFER 1024u             /* what libvfio-user's client announces */
#define MSIX_BAR 4
#define PBA_OFF 0x1000
#define DEADLK_REG 0x800       /* a probe register whose write does DMA */

/* --- the probe model: its quiesce waits for DMA in flight, as a real
 * device's does; a write to DEADLK_REG does DMA from the session thread --- */

struct probe {
	struct vfpm_device *dev;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned inflight;     /* device threads inside a DMA call */
	bool quiesce_gave_up;  /* the safety bound passed: the cancel failed */
	int bar_dma_rc;        /* what DMA from bar_rw returned */
};

static struct probe g_probe = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

static struct timespec after_ms(clockid_t clk, int ms)
{
	struct timespec t;
	clock_gettime(clk, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (long)(ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static void probe_quiesce(void *priv)
{
	struct probe *p = priv;
	struct timespec dl = after_ms(CLOCK_REALTIME, SAFETY_MS);
	pthread_mutex_lock(&p->mu);
	while (p->inflight && !p->quiesce_gave_up)
		if (pthread_cond_timedwait(&p->cv, &p->mu, &dl) == ETIMEDOUT)
			p->quiesce_gave_up = true;
	pthread_mutex_unlock(&p->mu);
}

static int probe_suspend(void *priv, enum vfpm_dstate target)
{
	return 0;
}

static int probe_bar_rw(void *priv, unsigned bar, uint64_t off, void *buf, size_t len,
			bool is_write)
{
	struct probe *p = priv;
	if (is_write && off == DEADLK_REG) {
		uint8_t b[8];
		int rc = vfpm_dev_dma_read(p->dev, IOVA, b, sizeof(b));
		pthread_mutex_lock(&p->mu);
		p->bar_dma_rc = rc;
		pthread_mutex_unlock(&p->mu);
	}
	if (!is_write)
		memset(buf, 0, len);
	return 0;
}

static int probe_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
			const struct vfpm_model_ops **ops)
{
	static const struct vfpm_model_ops ops_ = { .size = sizeof(ops_),
						    .quiesce = probe_quiesce,
						    .suspend = probe_suspend,
						    .bar_rw = probe_bar_rw };
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10ff,
						 .class_code = 0xff0000 };
	g_probe.dev = dev;
	g_probe.inflight = 0;
	g_probe.quiesce_gave_up = false;
	g_probe.bar_dma_rc = 1;
	int rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_pm_cap(dev, false, false, true);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, MSIX_BAR, 8192, 0);
	if (!rc)
		rc = vfpm_dev_add_msix_cap(dev, 4, MSIX_BAR, 0, PBA_OFF);
	if (!rc)
		rc = vfpm_dev_add_pcie_cap(dev);
	*priv = &g_probe;
	*ops = &ops_;
	return rc;
}

static const struct vfpm_model probe_model = { .size = sizeof(struct vfpm_model),
					       .name = "probe",
					       .create = probe_create };

/* --- the fixture: device, session thread, client end --- */

struct fx {
	struct vfpm_device *dev;
	struct core_session s;
	int sv[2];             /* [0] the server's end, [1] the client's */
	pthread_t session;
	bool session_joined;
	int run_rc;
	uint16_t next_id;      /* the client's own message ids */
};

static struct fx g;

static void *session_main(void *arg)
{
	struct fx *f = arg;
	f->run_rc = session_run(&f->s);
	return NULL;
}

/* The next message the server sends (bounded by SO_RCVTIMEO). */
static void next_msg(struct wire_msg *m)
{
	assert_int_equal(wire_recv(g.sv[1], m, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS), 0);
}

/* Nothing from the server is waiting on the client's end. */
static void expect_silence(void)
{
	struct pollfd p = { .fd = g.sv[1], .events = POLLIN };
	assert_int_equal(poll(&p, 1, 0), 0);
}

/* A command from the client and its successful reply's payload length. */
static size_t call(uint16_t cmd, const void *p1, size_t l1, const void *p2, size_t l2)
{
	struct vfu_hdr h = { .msg_id = g.next_id++, .cmd = cmd, .flags = VFU_F_TYPE_COMMAND };
	assert_int_equal(wire_send2(g.sv[1], &h, p1, l1, p2, l2, NULL, 0), 0);
	struct wire_msg m;
	next_msg(&m);
	assert_int_equal(m.hdr.flags & VFU_F_TYPE_MASK, VFU_F_TYPE_REPLY);
	assert_int_equal(m.hdr.msg_id, h.msg_id);
	assert_int_equal(m.hdr.flags & VFU_F_ERROR, 0);
	size_t len = m.len;
	wire_msg_release(&m);
	return len;
}

static void region_write(uint32_t region, uint64_t off, const void *data, uint32_t len)
{
	struct vfu_region_access ra = { .offset = off, .region = region, .count = len };
	call(VFU_CMD_REGION_WRITE, &ra, sizeof(ra), data, len);
}

static void cfg_w16(unsigned off, uint16_t v)
{
	region_write(VFU_PCI_CONFIG, off, &v, 2);
}

/* A device whose client announced XFER and mapped [IOVA, IOVA+IOVA_SIZE)
 * without a descriptor (message DMA), with bus mastering on. */
static int fx_up(void **state)
{
	struct vfpm_opts opts = { 0 };
	assert_int_equal(opts_parse("pm_delays=none", &opts), 0);
	memset(&g, 0, sizeof(g));
	assert_int_equal(device_create(&probe_model, "probe", &opts, NULL, -1, &g.dev), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g.sv), 0);
	struct timeval tv = { SAFETY_MS / 1000, 0 };
	assert_int_equal(setsockopt(g.sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(session_init(&g.s, g.dev, g.sv[0]), 0);
	assert_int_equal(pthread_create(&g.session, NULL, session_main, &g), 0);

	char json[96];
	int n = snprintf(json, sizeof(json), "{\"capabilities\":{\"max_data_xfer_size\":%u}}", XFER);
	struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
	call(VFU_CMD_VERSION, &v, sizeof(v), json, (size_t)n + 1);
	struct vfu_dma_map dm = { .argsz = sizeof(dm), .flags = VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE,
				  .addr = IOVA, .size = IOVA_SIZE };
	call(VFU_CMD_DMA_MAP, &dm, sizeof(dm), NULL, 0);
	cfg_w16(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	return 0;
}

static void fx_hangup(void)
{
	if (g.sv[1] >= 0)
		close(g.sv[1]);
	g.sv[1] = -1;
	if (!g.session_joined) {
		struct timespec dl = after_ms(CLOCK_REALTIME, SAFETY_MS);
		assert_int_equal(pthread_timedjoin_np(g.session, NULL, &dl), 0);
		g.session_joined = true;
	}
}

static int fx_down(void **state)
{
	fx_hangup();
	assert_int_equal(g.run_rc, 0);
	session_fini(&g.s);
	close(g.sv[0]);
	assert_false(g_probe.quiesce_gave_up);
	device_destroy(g.dev);
	return 0;
}

/* --- device threads doing DMA --- */

struct job {
	bool write;
	uint64_t iova;
	size_t len;
	uint8_t buf[4096];
	int rc;
	pthread_t t;
};

static void *job_main(void *arg)
{
	struct job *j = arg;
	pthread_mutex_lock(&g_probe.mu);
	g_probe.inflight++;
	pthread_mutex_unlock(&g_probe.mu);
	j->rc = j->write ? vfpm_dev_dma_write(g.dev, j->iova, j->buf, j->len)
			 : vfpm_dev_dma_read(g.dev, j->iova, j->buf, j->len);
	pthread_mutex_lock(&g_probe.mu);
	g_probe.inflight--;
	pthread_cond_broadcast(&g_probe.cv);
	pthread_mutex_unlock(&g_probe.mu);
	return NULL;
}

static void job_start(struct job *j, bool write, uint64_t iova, size_t len)
{
	j->write = write;
	j->iova = iova;
	j->len = len;
	j->rc = 1;
	if (!write)
		memset(j->buf, 0, sizeof(j->buf));
	assert_int_equal(pthread_create(&j->t, NULL, job_main, j), 0);
}

static int job_join(struct job *j)
{
	struct timespec dl = after_ms(CLOCK_REALTIME, SAFETY_MS);
	assert_int_equal(pthread_timedjoin_np(j->t, NULL, &dl), 0);
	return j->rc;
}

/* Guest memory as the test's client holds it: a byte per address. */
static uint8_t guest(uint64_t a)
{
	return (uint8_t)(a * 31 + (a >> 8));
}

static bool is_guest(const uint8_t *b, uint64_t a, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i] != guest(a + i))
			return false;
	return true;
}

/* The next server request, which must be cmd; returns its address and
 * count (and keeps the message for its id and data). */
static struct vfu_dma_access next_req(uint16_t cmd, struct wire_msg *m)
{
	next_msg(m);
	assert_int_equal(m->hdr.flags & VFU_F_TYPE_MASK, VFU_F_TYPE_COMMAND);
	assert_int_equal(m->hdr.cmd, cmd);
	struct vfu_dma_access a;
	assert_true(m->len >= sizeof(a));
	memcpy(&a, m->payload, sizeof(a));
	assert_int_equal(m->len, sizeof(a) + (cmd == VFU_CMD_DMA_WRITE ? a.count : 0));
	return a;
}

static void send_reply(uint16_t id, uint16_t cmd, uint32_t error, const void *p1, size_t l1,
		       const void *p2, size_t l2)
{
	struct vfu_hdr h = { .msg_id = id, .cmd = cmd,
			     .flags = VFU_F_TYPE_REPLY | (error ? VFU_F_ERROR : 0), .error = error };
	assert_int_equal(wire_send2(g.sv[1], &h, p1, l1, p2, l2, NULL, 0), 0);
}

/* The well-formed DMA_READ reply: address, count, guest bytes. */
static void answer_read(uint16_t id, struct vfu_dma_access a)
{
	uint8_t *data = malloc(a.count);
	assert_non_null(data);
	for (uint64_t i = 0; i < a.count; i++)
		data[i] = guest(a.addr + i);
	send_reply(id, VFU_CMD_DMA_READ, 0, &a, sizeof(a), data, a.count);
	free(data);
}

/* One read by a device thread, answered in full. */
static void read_roundtrip(uint64_t iova, size_t len)
{
	struct job j;
	job_start(&j, false, iova, len);
	struct wire_msg m;
	struct vfu_dma_access a = next_req(VFU_CMD_DMA_READ, &m);
	assert_int_equal(a.addr, iova);
	assert_int_equal(a.count, len);
	answer_read(m.hdr.msg_id, a);
	wire_msg_release(&m);
	assert_int_equal(job_join(&j), 0);
	assert_true(is_guest(j.buf, iova, len));
}

/* --- tests --- */

/* Two device threads have a read outstanding at once; the client answers
 * the later request first. Each gets its own data. */
static void two_reads_outstanding_complete_when_answered_in_reverse(void **state)
{
	struct job a, b;
	job_start(&a, false, IOVA + 0x100, 64);
	job_start(&b, false, IOVA + 0x2000, 200);
	struct wire_msg m1, m2;
	struct vfu_dma_access r1 = next_req(VFU_CMD_DMA_READ, &m1);
	struct vfu_dma_access r2 = next_req(VFU_CMD_DMA_READ, &m2);
	assert_int_not_equal(m1.hdr.msg_id, m2.hdr.msg_id);
	/* both requests are out before either is answered */
	assert_true((r1.addr == a.iova && r2.addr == b.iova) ||
		    (r1.addr == b.iova && r2.addr == a.iova));
	answer_read(m2.hdr.msg_id, r2);
	answer_read(m1.hdr.msg_id, r1);
	wire_msg_release(&m1);
	wire_msg_release(&m2);
	assert_int_equal(job_join(&a), 0);
	assert_int_equal(job_join(&b), 0);
	assert_true(is_guest(a.buf, a.iova, a.len));
	assert_true(is_guest(b.buf, b.iova, b.len));
}

/* A read larger than the announced transfer size goes out in chunks of
 * that size, one after the other. */
static void large_transfers_are_split_into_announced_chunks(void **state)
{
	struct job j;
	job_start(&j, false, IOVA + 0x10, 2 * XFER + 512);
	static const uint64_t want[][2] = { { IOVA + 0x10, XFER },
					    { IOVA + 0x10 + XFER, XFER },
					    { IOVA + 0x10 + 2 * XFER, 512 } };
	for (unsigned i = 0; i < 3; i++) {
		struct wire_msg m;
		struct vfu_dma_access a = next_req(VFU_CMD_DMA_READ, &m);
		assert_int_equal(a.addr, want[i][0]);
		assert_int_equal(a.count, want[i][1]);
		/* the next chunk is not asked for before this one is answered */
		expect_silence();
		answer_read(m.hdr.msg_id, a);
		wire_msg_release(&m);
	}
	assert_int_equal(job_join(&j), 0);
	assert_true(is_guest(j.buf, j.iova, j.len));
}

/* A large write likewise, each chunk with its share of the data; a
 * DMA_WRITE reply may be a bare header. */
static void large_write_is_split_and_carries_its_data(void **state)
{
	struct job j;
	for (unsigned i = 0; i < sizeof(j.buf); i++)
		j.buf[i] = (uint8_t)(i ^ 0x5a);
	job_start(&j, true, IOVA + 0x3000, XFER + 476);
	size_t done = 0;
	for (unsigned i = 0; i < 2; i++) {
		struct wire_msg m;
		struct vfu_dma_access a = next_req(VFU_CMD_DMA_WRITE, &m);
		assert_int_equal(a.addr, IOVA + 0x3000 + done);
		assert_int_equal(a.count, i == 0 ? XFER : 476);
		assert_memory_equal(m.payload + sizeof(a), j.buf + done, a.count);
		done += a.count;
		send_reply(m.hdr.msg_id, VFU_CMD_DMA_WRITE, 0, NULL, 0, NULL, 0);
		wire_msg_release(&m);
	}
	assert_int_equal(job_join(&j), 0);
}

/* A cancel window wakes a waiting request with ECANCELED; a request made
 * while it is open fails at once and sends nothing; the late reply to the
 * cancelled request is dropped and the next request is served. */
static void cancel_wakes_a_waiter_with_ecanceled(void **state)
{
	struct job j;
	job_start(&j, false, IOVA, 32);
	struct wire_msg m;
	struct vfu_dma_access a = next_req(VFU_CMD_DMA_READ, &m);
	channel_cancel_begin(&g.dev->chan);
	assert_int_equal(job_join(&j), -ECANCELED);

	uint8_t b[8];
	assert_int_equal(vfpm_dev_dma_read(g.dev, IOVA, b, sizeof(b)), -ECANCELED);
	assert_int_equal(vfpm_dev_dma_write(g.dev, IOVA, b, sizeof(b)), -ECANCELED);
	expect_silence();
	channel_cancel_end(&g.dev->chan);

	answer_read(m.hdr.msg_id, a);   /* late: dropped */
	wire_msg_release(&m);
	read_roundtrip(IOVA + 0x40, 48);
}

/* Cancel windows nest: the inner end leaves the outer window open. */
static void cancel_windows_nest(void **state)
{
	uint8_t b[8];
	channel_cancel_begin(&g.dev->chan);
	channel_cancel_begin(&g.dev->chan);
	channel_cancel_end(&g.dev->chan);
	assert_int_equal(vfpm_dev_dma_read(g.dev, IOVA, b, sizeof(b)), -ECANCELED);
	channel_cancel_end(&g.dev->chan);
	expect_silence();
	read_roundtrip(IOVA, 8);
}

/* The real path: DEVICE_RESET quiesces the model on the session thread,
 * and the model's quiesce waits for its DMA thread, whose reply only that
 * session thread could read. The cancel breaks the wait. */
static void device_reset_cancels_dma_the_model_waits_for(void **state)
{
	struct job j;
	job_start(&j, false, IOVA, 16);
	struct wire_msg m;
	next_req(VFU_CMD_DMA_READ, &m);
	call(VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0);
	assert_int_equal(job_join(&j), -ECANCELED);
	assert_false(g_probe.quiesce_gave_up);
	wire_msg_release(&m);
}

/* The same through the power path (pm.c: a guest's D3hot parks the
 * model). */
static void d3hot_write_cancels_dma_the_model_waits_for(void **state)
{
	struct job j;
	job_start(&j, false, IOVA, 16);
	struct wire_msg m;
	next_req(VFU_CMD_DMA_READ, &m);
	cfg_w16(g.dev->pm_cap + PCI_PM_CTRL, VFPM_D3HOT);
	assert_int_equal(job_join(&j), -ECANCELED);
	assert_false(g_probe.quiesce_gave_up);
	uint16_t pmcsr = 0;
	struct vfu_region_access ra = { .offset = g.dev->pm_cap + PCI_PM_CTRL,
					.region = VFU_PCI_CONFIG, .count = 2 };
	struct vfu_hdr h = { .msg_id = g.next_id++, .cmd = VFU_CMD_REGION_READ,
			     .flags = VFU_F_TYPE_COMMAND };
	assert_int_equal(wire_send(g.sv[1], &h, &ra, sizeof(ra), NULL, 0), 0);
	struct wire_msg r;
	next_msg(&r);
	assert_int_equal(r.hdr.msg_id, h.msg_id);
	assert_int_equal(r.len, sizeof(ra) + 2);
	memcpy(&pmcsr, r.payload + sizeof(ra), 2);
	assert_int_equal(pmcsr & PCI_PM_CTRL_STATE_MASK, VFPM_D3HOT);
	wire_msg_release(&r);
	wire_msg_release(&m);
}

/* The client going away wakes every waiter with ENOTCONN; DMA after the
 * session ended fails the same way. */
static void peer_close_wakes_every_waiter_with_enotconn(void **state)
{
	struct job a, b;
	memset(b.buf, 0x11, 16);
	job_start(&a, false, IOVA, 16);
	job_start(&b, true, IOVA + 0x1000, 16);
	struct wire_msg m1, m2;
	next_msg(&m1);
	next_msg(&m2);
	wire_msg_release(&m1);
	wire_msg_release(&m2);
	fx_hangup();
	assert_int_equal(job_join(&a), -ENOTCONN);
	assert_int_equal(job_join(&b), -ENOTCONN);
	uint8_t x[4];
	assert_int_equal(vfpm_dev_dma_read(g.dev, IOVA, x, sizeof(x)), -ENOTCONN);
}

/* Replies that do not answer the request: EPROTO for a short read, a
 * wrong echo or another command; the client's errno, or EIO for one that
 * is not an errno. Each ends only its own request. */
static void malformed_replies_fail_with_eproto(void **state)
{
	static const struct {
		int64_t addr_delta, count_delta;  /* echoed address, count */
		size_t data_short;               /* data bytes missing */
		uint16_t cmd;
		uint32_t error;
		int want;
	} cases[] = {
		{ 0, 0, 1, VFU_CMD_DMA_READ, 0, -EPROTO },
		{ 0, 0, 64, VFU_CMD_DMA_READ, 0, -EPROTO },
		{ 8, 0, 0, VFU_CMD_DMA_READ, 0, -EPROTO },
		{ 0, -8, 8, VFU_CMD_DMA_READ, 0, -EPROTO },
		{ 0, 0, 0, VFU_CMD_DMA_WRITE, 0, -EPROTO },
		{ 0, 0, 64, VFU_CMD_DMA_READ, EFAULT, -EFAULT },
		{ 0, 0, 64, VFU_CMD_DMA_READ, 5000, -EIO },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct job j;
		job_start(&j, false, IOVA + 0x200, 64);
		struct wire_msg m;
		struct vfu_dma_access a = next_req(VFU_CMD_DMA_READ, &m);
		struct vfu_dma_access echo = { a.addr + (uint64_t)cases[i].addr_delta,
					       a.count + (uint64_t)cases[i].count_delta };
		uint8_t data[64];
		for (unsigned k = 0; k < sizeof(data); k++)
			data[k] = guest(a.addr + k);
		if (cases[i].error)
			send_reply(m.hdr.msg_id, cases[i].cmd, cases[i].error, NULL, 0, NULL, 0);
		else
			send_reply(m.hdr.msg_id, cases[i].cmd, 0, &echo, sizeof(echo), data,
				   sizeof(data) - cases[i].data_short);
		wire_msg_release(&m);
		assert_int_equal(job_join(&j), cases[i].want);
	}
	read_roundtrip(IOVA + 0x200, 64);   /* the session went on */
}

/* A reply with an id no request has, and a second reply to an answered
 * request, are dropped: the waiter gets only its own reply and the
 * session goes on. */
static void unknown_and_duplicate_replies_are_dropped(void **state)
{
	struct job j;
	job_start(&j, false, IOVA + 0x500, 32);
	struct wire_msg m;
	struct vfu_dma_access a = next_req(VFU_CMD_DMA_READ, &m);
	uint8_t junk[32];
	memset(junk, 0xee, sizeof(junk));
	send_reply((uint16_t)(m.hdr.msg_id + 100), VFU_CMD_DMA_READ, 0, &a, sizeof(a), junk,
		   sizeof(junk));
	answer_read(m.hdr.msg_id, a);
	assert_int_equal(job_join(&j), 0);
	assert_true(is_guest(j.buf, j.iova, j.len));
	send_reply(m.hdr.msg_id, VFU_CMD_DMA_READ, 0, &a, sizeof(a), junk, sizeof(junk));
	wire_msg_release(&m);

	/* still served: a command, then another DMA */
	struct vfu_device_info di = { .argsz = sizeof(di) };
	assert_int_equal(call(VFU_CMD_DEVICE_GET_INFO, &di, sizeof(di), NULL, 0), sizeof(di));
	read_roundtrip(IOVA + 0x500, 32);
}

/* DMA from the session thread itself (here a model's bar_rw) could never
 * see its reply: it fails at once with EDEADLK and sends nothing. */
static void dma_on_the_session_thread_fails_with_edeadlk(void **state)
{
	uint32_t v = 1;
	region_write(VFU_PCI_BAR0 + MSIX_BAR, DEADLK_REG, &v, sizeof(v));
	pthread_mutex_lock(&g_probe.mu);
	int rc = g_probe.bar_dma_rc;
	pthread_mutex_unlock(&g_probe.mu);
	assert_int_equal(rc, -EDEADLK);
	expect_silence();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_up, fx_down)
		T(two_reads_outstanding_complete_when_answered_in_reverse),
		T(large_transfers_are_split_into_announced_chunks),
		T(large_write_is_split_and_carries_its_data),
		T(cancel_wakes_a_waiter_with_ecanceled),
		T(cancel_windows_nest),
		T(device_reset_cancels_dma_the_model_waits_for),
		T(d3hot_write_cancels_dma_the_model_waits_for),
		T(peer_close_wakes_every_waiter_with_enotconn),
		T(malformed_replies_fail_with_eproto),
		T(unknown_and_duplicate_replies_are_dropped),
		T(dma_on_the_session_thread_fails_with_edeadlk),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
