/* The session's own checks, in process and deterministic: a device on a
 * stepped work queue and a fake clock (as test_pm_core.c), whose session
 * is driven message by message. The test is the client on one end of a
 * socketpair; it writes a message, has the server end read it
 * (wire_recv) and dispatch it (session_dispatch) on the test's own
 * thread, then reads the reply. When session_dispatch returns, the
 * request's PM reference is dropped and any idle suspend it causes is
 * queued, so "it stays asleep" or "it stays awake" is a step of the queue
 * that runs nothing -- never a wait. There is no session thread.
 *
 * What is checked here is what only the session checks (the PM core's
 * own rules are test_pm_core.c's): the low-power features' payload and
 * descriptor checks (B5, B2), the request wrapper around real messages
 * (contract §3, B13), DEVICE_RESET and an FLR through a config write
 * (B31), and descriptors beyond what the server takes (B13 again). Every
 * errno is read from the reply header. */
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "fake_clock.h"
#include "probe_model.h"
#include "harness.h"

#define BAR0_SIZE 4096   /* the probe model's default */

/* PMCSR PowerState values */
enum { PS_D0 = 0, PS_D3HOT = 3 };


/* --- fixture: device, session, the two ends of the socket --- */

struct fx {
	struct fake_clock clk;
	struct rpm_wq *wq;
	struct vfpm_device *dev;
	struct probe *p;
	struct core_session s;
	int sv[2];          /* [0] the server's end, [1] the client's */
	uint16_t next_id;   /* the client's message ids */
	bool session_up;
};

static struct fx g;

static int step(void)
{
	return rpm_wq_step(g.wq);
}

static enum rpm_status rst(void)
{
	return rpm_status(&g.dev->pm.rpm);
}

static int usage(void)
{
	return rpm_usage(&g.dev->pm.rpm);
}

/* The client sends a command; returns its id. fds may be NULL. */
static uint16_t send_cmd(uint16_t cmd, const void *p1, size_t l1, const void *p2, size_t l2,
			 const int *fds, int nfds)
{
	struct vfu_hdr h = { .msg_id = g.next_id++, .cmd = cmd, .flags = VFU_F_TYPE_COMMAND };
	assert_int_equal(wire_send2(g.sv[1], &h, p1, l1, p2, l2, fds, nfds), 0);
	return h.msg_id;
}

/* The server end reads the message and dispatches it, here and now. */
static void serve(void)
{
	struct wire_msg m;
	assert_int_equal(wire_recv(g.sv[0], &m, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS), 0);
	assert_int_equal(session_dispatch(&g.s, &m), 0);
}

/* The reply to id: its errno (0 on success); the payload is copied to out
 * (at most out_len bytes) when out is not NULL. */
static int reply(uint16_t id, uint16_t cmd, void *out, size_t out_len)
{
	struct wire_msg m;
	assert_int_equal(wire_recv(g.sv[1], &m, VFPM_MAX_MSG_SIZE, VFPM_MAX_MSG_FDS), 0);
	assert_int_equal(m.hdr.flags & VFU_F_TYPE_MASK, VFU_F_TYPE_REPLY);
	assert_int_equal(m.hdr.msg_id, id);
	assert_int_equal(m.hdr.cmd, cmd);
	int err = (m.hdr.flags & VFU_F_ERROR) ? (int)m.hdr.error : 0;
	if (err)
		assert_int_equal(m.len, 0);
	if (out && m.len)
		memcpy(out, m.payload, m.len < out_len ? m.len : out_len);
	wire_msg_release(&m);
	return err;
}

/* One command, served; the errno of its reply. */
static int call(uint16_t cmd, const void *p1, size_t l1, const void *p2, size_t l2,
		const int *fds, int nfds, void *out, size_t out_len)
{
	uint16_t id = send_cmd(cmd, p1, l1, p2, l2, fds, nfds);
	serve();
	return reply(id, cmd, out, out_len);
}

static int region_read(uint32_t region, uint64_t off, void *data, uint32_t len)
{
	struct vfu_region_access ra = { .offset = off, .region = region, .count = len };
	uint8_t out[sizeof(ra) + 64];
	assert_true(len <= 64);
	int err = call(VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0, NULL, 0, out, sizeof(out));
	if (!err) {
		struct vfu_region_access echo;
		memcpy(&echo, out, sizeof(echo));
		assert_int_equal(echo.count, len);
		memcpy(data, out + sizeof(ra), len);
	}
	return err;
}

static int region_write(uint32_t region, uint64_t off, const void *data, uint32_t len)
{
	struct vfu_region_access ra = { .offset = off, .region = region, .count = len };
	return call(VFU_CMD_REGION_WRITE, &ra, sizeof(ra), data, len, NULL, 0, NULL, 0);
}

static uint16_t cfg_r16(unsigned off)
{
	uint16_t v = 0;
	assert_int_equal(region_read(VFU_PCI_CONFIG, off, &v, 2), 0);
	return v;
}

static void cfg_w16(unsigned off, uint16_t v)
{
	assert_int_equal(region_write(VFU_PCI_CONFIG, off, &v, 2), 0);
}

static unsigned pmcsr(void)
{
	return g.dev->pm_cap + PCI_PM_CTRL;
}

/* DEVICE_FEATURE with flags and an optional body. */
static int feature(uint32_t argsz, uint32_t flags, const void *body, size_t body_len,
		   const int *fds, int nfds)
{
	struct vfu_device_feature f = { .argsz = argsz, .flags = flags };
	return call(VFU_CMD_DEVICE_FEATURE, &f, sizeof(f), body, body_len, fds, nfds, NULL, 0);
}

static int lp_entry(void)
{
	return feature(8, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, NULL, 0,
		       NULL, 0);
}

/* LOW_POWER_ENTRY_WITH_WAKEUP naming descriptor idx, sending the given ones. */
static int lp_entry_wakeup(uint32_t argsz, int32_t idx, uint32_t reserved, const int *fds,
			   int nfds)
{
	struct {
		int32_t idx;
		uint32_t reserved;
	} body = { idx, reserved };
	return feature(argsz,
		       VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
		       &body, sizeof(body), fds, nfds);
}

static int lp_exit(void)
{
	return feature(8, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, NULL, 0,
		       NULL, 0);
}

/* The eventfd's count, consumed (0 when nothing was signalled). */
static uint64_t efd_count(int efd)
{
	uint64_t n = 0;
	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static int new_efd(void)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	return efd;
}

/* A connected client: VERSION done, so the device is open (T1) and held
 * ACTIVE by the open reference. The device suspended while unused first
 * (B35), so the open resumed it. */
static int fx_up(void **state)
{
	(void)state;
	memset(&g, 0, sizeof(g));
	fake_clock_init(&g.clk);
	assert_int_equal(rpm_wq_create_manual(&g.wq, &g.clk.clock), 0);
	struct vfpm_opts o = { 0 };
	assert_int_equal(opts_parse("pm_delays=none", &o), 0);
	assert_int_equal(device_create(&probe_model, "probe", &o, g.wq, -1, &g.dev), 0);
	g.p = g.dev->priv;
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, g.sv), 0);
	/* a broken test fails instead of hanging: every receive here expects
	 * a message that is already written */
	struct timeval tv = { 5, 0 };
	for (int i = 0; i < 2; i++)
		assert_int_equal(setsockopt(g.sv[i], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	assert_int_equal(session_init(&g.s, g.dev, g.sv[0]), 0);
	g.session_up = true;
	channel_set_reader(&g.dev->chan);   /* this thread reads the replies */

	struct vfu_version v = { VFU_VERSION_MAJOR, VFU_VERSION_MINOR };
	static const char json[] = "{}";
	assert_int_equal(call(VFU_CMD_VERSION, &v, sizeof(v), json, sizeof(json), NULL, 0, NULL, 0), 0);
	assert_int_equal(rst(), RPM_ACTIVE);
	assert_int_equal(usage(), 1);
	assert_int_equal(g.p->resumes, 1);
	assert_int_equal(step(), 0);   /* an open device does not idle */
	cfg_w16(PCI_COMMAND, PCI_COMMAND_MEMORY);
	return 0;
}

static int fx_down(void **state)
{
	(void)state;
	if (g.session_up)
		session_fini(&g.s);   /* the client's close: device_close */
	close(g.sv[0]);
	close(g.sv[1]);
	/* closed and unused: it idles (B35) at the next step */
	assert_int_equal(usage(), 0);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	device_destroy(g.dev);
	rpm_wq_destroy(g.wq);
	return 0;
}

/* LOW_POWER_ENTRY without wakeup, then the step that suspends (B1, B7). */
static void enter_and_suspend(void)
{
	assert_int_equal(lp_entry(), 0);
	assert_true(g.dev->pm.engaged);
	assert_int_equal(usage(), 0);
	assert_int_equal(rst(), RPM_ACTIVE);   /* not before the step */
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(g.dev->pm.power_state, VFPM_D3HOT);
}

/* LOW_POWER_ENTRY_WITH_WAKEUP on efd (a copy travels), then the suspend. */
static void enter_wakeup_and_suspend(int efd)
{
	assert_int_equal(lp_entry_wakeup(16, 0, 0, &efd, 1), 0);
	assert_true(g.dev->pm.engaged);
	assert_true(g.dev->pm.wake_fd >= 0);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(efd_count(efd), 0);
}

/* The device is open, awake and not engaged, with nothing queued. */
static void assert_open_and_awake(void)
{
	assert_false(g.dev->pm.engaged);
	assert_int_equal(g.dev->pm.wake_fd, -1);
	assert_int_equal(rst(), RPM_ACTIVE);
	assert_int_equal(usage(), 1);
	assert_int_equal(step(), 0);
	assert_int_equal(rst(), RPM_ACTIVE);
}

/* --- B5: feature 4's payload and descriptor --- */

/* fd -1, a descriptor index with no descriptor behind it (the message's
 * "closed fd"), a pipe, argsz 12: EINVAL, EBADF, EINVAL, EINVAL; nothing
 * engaged, the open device stays awake and the descriptor that came is
 * not kept. reserved = 0xffffffff is accepted. */
static void b5_wakeup_needs_an_eventfd(void **state)
{
	(void)state;
	int efd = new_efd();
	int pfd[2];
	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	int fds0 = count_open_fds();
	assert_true(fds0 > 0);

	assert_int_equal(lp_entry_wakeup(16, -1, 0, NULL, 0), EINVAL);
	assert_open_and_awake();
	assert_int_equal(lp_entry_wakeup(16, -1, 0, &efd, 1), EINVAL);
	assert_open_and_awake();
	assert_int_equal(count_open_fds(), fds0);   /* the eventfd's copy closed */
	assert_int_equal(lp_entry_wakeup(16, 0, 0, NULL, 0), EBADF);
	assert_open_and_awake();
	assert_int_equal(lp_entry_wakeup(16, 1, 0, &efd, 1), EBADF);
	assert_open_and_awake();
	assert_int_equal(count_open_fds(), fds0);
	assert_int_equal(lp_entry_wakeup(16, 0, 0, &pfd[0], 1), EINVAL);
	assert_open_and_awake();
	assert_int_equal(count_open_fds(), fds0);   /* the pipe's copy closed */
	assert_int_equal(lp_entry_wakeup(12, 0, 0, &efd, 1), EINVAL);
	assert_open_and_awake();
	assert_int_equal(count_open_fds(), fds0);
	assert_int_equal(efd_count(efd), 0);

	/* reserved is not checked: entry with an armed wakeup */
	assert_int_equal(lp_entry_wakeup(16, 0, 0xffffffffu, &efd, 1), 0);
	assert_true(g.dev->pm.engaged);
	assert_true(g.dev->pm.wake_fd >= 0);
	assert_int_equal(count_open_fds(), fds0 + 1);   /* the server keeps its copy */
	assert_int_equal(usage(), 0);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	/* B12/T7: EXIT wakes through the wrapper: the wakeup fires once (B11) */
	assert_int_equal(lp_exit(), 0);
	assert_int_equal(efd_count(efd), 1);
	assert_int_equal(count_open_fds(), fds0);   /* released */
	assert_open_and_awake();
	close(pfd[0]);
	close(pfd[1]);
	close(efd);
}

/* B2: a second entry while engaged and awake fails, and the eventfd it
 * carried is not retained; the first entry's state is unchanged. */
static void b2_second_entry_fails_and_drops_its_eventfd(void **state)
{
	(void)state;
	int efd = new_efd();
	int fds0 = count_open_fds();
	assert_int_equal(lp_entry(), 0);
	assert_int_equal(usage(), 0);
	/* still awake (no step yet): the wrapper's resume finds it ACTIVE */
	assert_int_equal(lp_entry_wakeup(16, 0, 0, &efd, 1), EINVAL);
	assert_true(g.dev->pm.engaged);
	assert_int_equal(g.dev->pm.wake_fd, -1);
	assert_int_equal(count_open_fds(), fds0);
	assert_int_equal(usage(), 0);
	assert_int_equal(lp_entry(), EINVAL);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(lp_exit(), 0);
	assert_int_equal(efd_count(efd), 0);
	assert_open_and_awake();
	close(efd);
}

/* B6: PROBE never changes state; PROBE|GET is EINVAL. */
static void b6_probe_changes_nothing(void **state)
{
	(void)state;
	for (uint32_t id = VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY;
	     id <= VFIO_DEVICE_FEATURE_LOW_POWER_EXIT; id++) {
		assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | id,
					 NULL, 0, NULL, 0),
				 0);
		assert_open_and_awake();
		assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | id,
					 NULL, 0, NULL, 0),
				 EINVAL);
		assert_open_and_awake();
	}
	/* a feature with no handler */
	assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_SET | 0x3f, NULL, 0, NULL, 0), ENOTTY);
	assert_open_and_awake();
}

/* --- B13: any request wakes the device, an invalid one too --- */

/* bad feature flags, a feature with no handler, GET_INFO with a short
 * payload, descriptors a command does not take (REGION_READ with one),
 * descriptors the feature does not take (LOW_POWER_ENTRY with one): each
 * gets its own errno, and each fires the armed wakeup once and disengages. */
static void b13_invalid_requests_wake_and_fire(void **state)
{
	(void)state;
	int efd = new_efd();
	int extra = new_efd();
	unsigned resumes = g.p->resumes;

	enter_wakeup_and_suspend(efd);
	assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_SET | 0x80000000u, NULL, 0, NULL, 0),
			 EINVAL);
	assert_int_equal(efd_count(efd), 1);
	assert_int_equal(g.p->resumes, ++resumes);
	assert_open_and_awake();

	enter_wakeup_and_suspend(efd);
	assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_SET | 0x3f, NULL, 0, NULL, 0), ENOTTY);
	assert_int_equal(efd_count(efd), 1);
	assert_open_and_awake();

	enter_wakeup_and_suspend(efd);
	struct vfu_device_info short_info = { .argsz = 4 };
	assert_int_equal(call(VFU_CMD_DEVICE_GET_INFO, &short_info, 4, NULL, 0, NULL, 0, NULL, 0),
			 EINVAL);
	assert_int_equal(efd_count(efd), 1);
	assert_open_and_awake();

	enter_wakeup_and_suspend(efd);
	struct vfu_region_access ra = { .offset = 0, .region = 0, .count = 4 };
	assert_int_equal(call(VFU_CMD_REGION_READ, &ra, sizeof(ra), NULL, 0, &extra, 1, NULL, 0),
			 EINVAL);
	assert_int_equal(efd_count(efd), 1);
	assert_open_and_awake();

	enter_wakeup_and_suspend(efd);
	assert_int_equal(feature(8, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
				 NULL, 0, &extra, 1),
			 EINVAL);
	assert_int_equal(efd_count(efd), 1);
	assert_open_and_awake();
	assert_int_equal(g.p->resumes, resumes + 4);
	assert_int_equal(efd_count(extra), 0);
	close(extra);
	close(efd);
}

/* More descriptors than any message may carry (wire_recv refuses them,
 * the server answers from the header alone): EINVAL, and the request
 * still took its reference first, so the suspended device woke and the
 * armed wakeup fired once. Served by session_run on this thread: the
 * client shuts its sending side after the message, so the loop answers
 * it and returns at the end of the stream. */
static void b13_too_many_descriptors_still_wake(void **state)
{
	(void)state;
	int efd = new_efd();
	enter_wakeup_and_suspend(efd);
	int fds0 = count_open_fds();

	enum { N = VFPM_MAX_MSG_FDS + 1 };
	int fds[N];
	for (int i = 0; i < N; i++)
		fds[i] = efd;
	struct {
		struct vfu_hdr h;
		struct vfu_region_access ra;
	} msg = { .h = { .msg_id = g.next_id++, .cmd = VFU_CMD_REGION_READ,
			 .flags = VFU_F_TYPE_COMMAND, .size = sizeof(msg) },
		  .ra = { .offset = 0, .region = 0, .count = 4 } };
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} cm;
	struct iovec iov = { &msg, sizeof(msg) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cm.buf,
			     .msg_controllen = sizeof(cm.buf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(sendmsg(g.sv[1], &mh, 0), (ssize_t)sizeof(msg));
	assert_int_equal(shutdown(g.sv[1], SHUT_WR), 0);

	assert_int_equal(session_run(&g.s), 0);
	assert_int_equal(reply(msg.h.msg_id, VFU_CMD_REGION_READ, NULL, 0), EINVAL);
	assert_int_equal(efd_count(efd), 1);
	assert_false(g.dev->pm.engaged);
	assert_int_equal(rst(), RPM_ACTIVE);
	assert_int_equal(usage(), 1);
	assert_int_equal(step(), 0);
	/* the descriptors that came were all closed, and the wakeup's copy
	 * was released when it fired */
	assert_int_equal(count_open_fds(), fds0 - 1);
	close(efd);
}

/* --- a quiet client (idle_ms): the session gives its thread back --- */

/* With idle_ms set, session_run returns SESSION_IDLE once the client has
 * sent nothing for that long, the channel has no reader meanwhile, and a
 * later call goes on where it was: a message that came in two pieces
 * across an idle return is served whole, and the end of the stream ends
 * the session as ever. */
static void quiet_session_returns_idle_and_goes_on(void **state)
{
	(void)state;
	g.s.idle_ms = 20;
	assert_int_equal(session_run(&g.s), SESSION_IDLE);
	assert_false(g.dev->chan.has_reader);

	struct {
		struct vfu_hdr h;
		struct vfu_region_access ra;
	} msg = { .h = { .msg_id = g.next_id++, .cmd = VFU_CMD_REGION_READ,
			 .flags = VFU_F_TYPE_COMMAND, .size = sizeof(msg) },
		  .ra = { .offset = PCI_COMMAND, .region = VFU_PCI_CONFIG, .count = 2 } };
	const size_t part = 10;   /* within the header */
	assert_int_equal(send(g.sv[1], &msg, part, 0), (ssize_t)part);
	assert_int_equal(session_run(&g.s), SESSION_IDLE);   /* half a message kept */
	assert_int_equal(send(g.sv[1], (char *)&msg + part, sizeof(msg) - part, 0),
			 (ssize_t)(sizeof(msg) - part));
	assert_int_equal(session_run(&g.s), SESSION_IDLE);   /* served, then quiet */
	uint8_t out[sizeof(struct vfu_region_access) + 2];
	assert_int_equal(reply(msg.h.msg_id, VFU_CMD_REGION_READ, out, sizeof(out)), 0);
	uint16_t cmd;
	memcpy(&cmd, out + sizeof(struct vfu_region_access), 2);
	assert_int_equal(cmd, PCI_COMMAND_MEMORY);
	assert_int_equal(usage(), 1);   /* the open reference only: the request's went */

	assert_int_equal(shutdown(g.sv[1], SHUT_WR), 0);
	assert_int_equal(session_run(&g.s), 0);   /* the end of the stream */
}

/* --- the request wrapper around real region messages (contract §3) --- */

/* A BAR access to a suspended, engaged device resumes it for the request
 * and lets it idle after: it is asleep again only at the next step. A
 * zero-length access and one naming no region are refused before the PM
 * get (vfio_pci_rw): the device does not wake. */
static void region_messages_resume_hold_and_release(void **state)
{
	(void)state;
	const uint32_t pattern = 0x5a5aa5a5;
	assert_int_equal(region_write(0, 0x40, &pattern, 4), 0);
	enter_and_suspend();
	unsigned resumes = g.p->resumes, suspends = g.p->suspends;

	uint32_t v = 0;
	assert_int_equal(region_read(0, 0x40, &v, 4), 0);
	assert_int_equal(v, pattern);   /* D3hot with NoSoftRst+: contents kept */
	assert_int_equal(g.p->resumes, resumes + 1);
	assert_int_equal(rst(), RPM_ACTIVE);   /* the reference is gone, the suspend queued */
	assert_int_equal(usage(), 0);
	assert_true(g.dev->pm.engaged);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(g.p->suspends, suspends + 1);

	const uint32_t w = 0x01020304;
	assert_int_equal(region_write(0, 0x44, &w, 4), 0);
	assert_int_equal(g.p->resumes, resumes + 2);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(region_read(0, 0x44, &v, 4), 0);
	assert_int_equal(v, w);
	assert_int_equal(step(), 1);

	/* refused before the PM get: asleep throughout, nothing queued */
	struct vfu_region_access zero = { .offset = 0, .region = 0, .count = 0 };
	uint8_t out[sizeof(zero)];
	assert_int_equal(call(VFU_CMD_REGION_READ, &zero, sizeof(zero), NULL, 0, NULL, 0, out,
			      sizeof(out)),
			 0);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(region_read(VFU_PCI_NUM_REGIONS, 0, &v, 4), EINVAL);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(region_read(0, BAR0_SIZE, &v, 4), EINVAL);   /* beyond BAR0: woke */
	assert_int_equal(g.p->resumes, resumes + 4);
	assert_int_equal(step(), 1);
	assert_int_equal(step(), 0);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(g.p->resumes, resumes + 4);

	assert_int_equal(lp_exit(), 0);
	assert_open_and_awake();
}

/* --- resets --- */

/* DEVICE_RESET on a device the client put in D3hot and then engaged: the
 * wrapper resumes it, the reset brings it to D0 (B31) and the model is
 * quiesced and reset once; the client's COMMAND survives (a user reset
 * keeps config); afterwards the device idles again. */
static void device_reset_message_wakes_resets_and_releases(void **state)
{
	(void)state;
	cfg_w16(pmcsr(), PS_D3HOT);
	assert_int_equal(cfg_r16(pmcsr()) & PCI_PM_CTRL_STATE_MASK, PS_D3HOT);
	enter_and_suspend();
	unsigned resets = g.p->resets, quiesces = g.p->quiesces, resumes = g.p->resumes;

	assert_int_equal(call(VFU_CMD_DEVICE_RESET, NULL, 0, NULL, 0, NULL, 0, NULL, 0), 0);
	assert_int_equal(g.p->resets, resets + 1);
	assert_int_equal(g.p->quiesces, quiesces + 1);
	assert_int_equal(g.p->resumes, resumes + 1);
	assert_int_equal(g.dev->pm.power_state, VFPM_D0);
	assert_int_equal(rst(), RPM_ACTIVE);
	assert_int_equal(usage(), 0);
	assert_true(g.dev->pm.engaged);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);

	assert_int_equal(lp_exit(), 0);
	assert_open_and_awake();
	assert_int_equal(cfg_r16(pmcsr()) & PCI_PM_CTRL_STATE_MASK, PS_D0);
	assert_int_equal(cfg_r16(PCI_COMMAND) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
}

/* Initiate FLR written to DEVCTL through a REGION_WRITE: one reset of the
 * model under the request's reference (the FLR's own reference nests: no
 * second resume), the bit reads back 0, the rest of DEVCTL is kept. A
 * DEVCTL write without the bit resets nothing. */
static void flr_through_a_config_write(void **state)
{
	(void)state;
	unsigned devctl = g.dev->pcie_cap + PCI_EXP_DEVCTL;
	uint16_t before = cfg_r16(devctl);
	unsigned resets = g.p->resets;
	cfg_w16(devctl, before | PCI_EXP_DEVCTL_URRE);
	assert_int_equal(g.p->resets, resets);
	assert_int_equal(cfg_r16(devctl), before | PCI_EXP_DEVCTL_URRE);

	enter_and_suspend();
	unsigned resumes = g.p->resumes, quiesces = g.p->quiesces;
	cfg_w16(devctl, before | PCI_EXP_DEVCTL_URRE | PCI_EXP_DEVCTL_BCR_FLR);
	assert_int_equal(g.p->resets, resets + 1);
	assert_int_equal(g.p->quiesces, quiesces + 1);
	assert_int_equal(g.p->resumes, resumes + 1);
	assert_int_equal(rst(), RPM_ACTIVE);
	assert_int_equal(usage(), 0);
	assert_int_equal(step(), 1);
	assert_int_equal(rst(), RPM_SUSPENDED);
	assert_int_equal(lp_exit(), 0);
	assert_open_and_awake();
	assert_int_equal(cfg_r16(devctl), before | PCI_EXP_DEVCTL_URRE);
	assert_int_equal(cfg_r16(PCI_COMMAND) & PCI_COMMAND_MEMORY, PCI_COMMAND_MEMORY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(b5_wakeup_needs_an_eventfd, fx_up, fx_down),
		cmocka_unit_test_setup_teardown(b2_second_entry_fails_and_drops_its_eventfd, fx_up,
						fx_down),
		cmocka_unit_test_setup_teardown(b6_probe_changes_nothing, fx_up, fx_down),
		cmocka_unit_test_setup_teardown(b13_invalid_requests_wake_and_fire, fx_up, fx_down),
		cmocka_unit_test_setup_teardown(b13_too_many_descriptors_still_wake, fx_up, fx_down),
		cmocka_unit_test_setup_teardown(region_messages_resume_hold_and_release, fx_up,
						fx_down),
		cmocka_unit_test_setup_teardown(device_reset_message_wakes_resets_and_releases, fx_up,
						fx_down),
		cmocka_unit_test_setup_teardown(flr_through_a_config_write, fx_up, fx_down),
		cmocka_unit_test_setup_teardown(quiet_session_returns_idle_and_goes_on, fx_up, fx_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
