/* Integration tests: the client library against a real vfpmd serving the
 * demo device (models/demo.c, docs/demo-device.md), plus the daemon's
 * command line and socket handling. Every wait has a timeout, and a watchdog
 * fails the run if anything hangs anyway. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
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
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "vfpm/client.h"

#define WATCHDOG_S 60
#define IRQ_TIMEOUT_MS 5000

/* regions and interrupt indices (vfio numbering) */
enum { R_BAR0 = 0, R_BAR1, R_BAR2, R_BAR3, R_BAR4, R_BAR5, R_ROM, R_CFG, R_VGA };
enum { IRQ_INTX = 0, IRQ_MSI, IRQ_MSIX, IRQ_ERR, IRQ_REQ };

/* demo device (models/demo.c) */
#define DEMO_VENDOR 0x1b36
#define DEMO_DEVICE 0x10f0
#define DEMO_ID 0x4d504656u   /* "VFPM" */
#define DEMO_VERSION 0x00010000u
#define DEMO_NVEC 4
#define BAR0_SIZE 4096u
#define BAR2_SIZE (1u << 20)
#define BAR4_SIZE 8192u
#define MSIX_PBA_OFF 0x1000u
#define REG_ID 0x00
#define REG_VERSION 0x04
#define REG_SCRATCH 0x08
#define REG_STATUS 0x0c
#define REG_DOORBELL 0x10
#define REG_INT_STATUS 0x14
#define REG_INT_MASK 0x18
#define REG_DMA_SRC_LO 0x20
#define REG_DMA_SRC_HI 0x24
#define REG_DMA_DST_LO 0x28
#define REG_DMA_DST_HI 0x2c
#define REG_DMA_LEN 0x30
#define REG_DMA_RESULT 0x34
#define REG_DMA_COUNT 0x38
#define REG_IRQ_VECTOR 0x3c
#define STATUS_DONE 0x2u
#define INT_DMA_DONE 0x1u

#define DMA_FLAGS_RW 3u   /* VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE */
#define GUEST_IOVA 0x100000ull
#define GUEST_SIZE (2u << 20)

static struct vfpmd_proc g_proc;   /* the default demo device, for the group */

/* ------------------------------------------------------------------ */
/* Resources a test holds: a failed assertion leaves the test early, so the
 * teardown releases what is left (clients, extra daemons, a temp dir). */

#define MAX_CLIENTS 4
#define MAX_EXTRA 3
static struct vfpm_client *g_clients[MAX_CLIENTS];
static struct vfpmd_proc g_extra[MAX_EXTRA];
static bool g_extra_used[MAX_EXTRA];
static char g_tmpdir[128];

static struct vfpm_client *cl_connect(const char *path, const struct vfpm_client_opts *o)
{
	int slot = -1;
	for (int i = 0; i < MAX_CLIENTS && slot < 0; i++)
		if (!g_clients[i])
			slot = i;
	if (slot < 0)
		fail_msg("too many clients in one test");
	struct vfpm_client *c = NULL;
	int rc = vfpm_client_connect(path, o, &c);
	if (rc)
		fail_msg("vfpm_client_connect(%s): %s", path, strerror(-rc));
	g_clients[slot] = c;
	return c;
}

static void cl_close(struct vfpm_client *c)
{
	for (int i = 0; i < MAX_CLIENTS; i++)
		if (g_clients[i] == c)
			g_clients[i] = NULL;
	vfpm_client_close(c);
}

static struct vfpm_client *connect_default(void)
{
	return cl_connect(g_proc.sock[0], NULL);
}

static struct vfpmd_proc *extra_start(const char *const *specs, const char *const *extra)
{
	for (int i = 0; i < MAX_EXTRA; i++) {
		if (g_extra_used[i])
			continue;
		int rc = vfpmd_start(&g_extra[i], specs, extra);
		if (rc)
			fail_msg("vfpmd_start(%s): %s", specs[0], strerror(-rc));
		g_extra_used[i] = true;
		harness_watch(g_extra[i].pid);   /* killed if the test hangs */
		return &g_extra[i];
	}
	fail_msg("too many daemons in one test");
	return NULL;
}

/* SIGTERM and reap; the socket files stay for the test to inspect. */
static int extra_terminate(struct vfpmd_proc *p)
{
	harness_unwatch(p->pid);
	return vfpmd_terminate(p);
}

static void extra_release(struct vfpmd_proc *p)
{
	vfpmd_cleanup(p);
	for (int i = 0; i < MAX_EXTRA; i++)
		if (&g_extra[i] == p)
			g_extra_used[i] = false;
}

static int extra_stop(struct vfpmd_proc *p)
{
	int rc = extra_terminate(p);
	extra_release(p);
	return rc;
}

static const char *make_tmpdir(void)
{
	snprintf(g_tmpdir, sizeof(g_tmpdir), "/tmp/vfpm-itest-XXXXXX");
	if (!mkdtemp(g_tmpdir))
		fail_msg("mkdtemp: %s", strerror(errno));
	return g_tmpdir;
}

static void remove_tmpdir(void)
{
	if (!g_tmpdir[0])
		return;
	DIR *d = opendir(g_tmpdir);
	if (d) {
		struct dirent *e;
		char p[512];
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", g_tmpdir, e->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(g_tmpdir);
	g_tmpdir[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* Region and register access */

static uint32_t rd(struct vfpm_client *c, uint32_t region, uint64_t off, uint32_t len)
{
	uint32_t v = 0;
	int rc = vfpm_client_region_read(c, region, off, &v, len);
	if (rc)
		fail_msg("read region %u offset 0x%llx (%u bytes): %s", region,
			 (unsigned long long)off, len, strerror(-rc));
	return v;
}

static void wr(struct vfpm_client *c, uint32_t region, uint64_t off, uint32_t v, uint32_t len)
{
	int rc = vfpm_client_region_write(c, region, off, &v, len);
	if (rc)
		fail_msg("write 0x%x to region %u offset 0x%llx (%u bytes): %s", v, region,
			 (unsigned long long)off, len, strerror(-rc));
}

static uint32_t cfg_rd(struct vfpm_client *c, unsigned off, unsigned len)
{
	return rd(c, R_CFG, off, len);
}

static void cfg_wr(struct vfpm_client *c, unsigned off, uint32_t v, unsigned len)
{
	wr(c, R_CFG, off, v, len);
}

static uint32_t reg_rd(struct vfpm_client *c, unsigned off)
{
	return rd(c, R_BAR0, off, 4);
}

static void reg_wr(struct vfpm_client *c, unsigned off, uint32_t v)
{
	wr(c, R_BAR0, off, v, 4);
}

static void set_command(struct vfpm_client *c, uint16_t cmd)
{
	cfg_wr(c, PCI_COMMAND, cmd, 2);
	assert_int_equal(cfg_rd(c, PCI_COMMAND, 2), cmd);
}

static int client_cfg_read(void *ctx, unsigned off, unsigned len, uint32_t *val)
{
	*val = cfg_rd(ctx, off, len);
	return 0;
}

/* The offset of capability id, or 0. */
static unsigned find_cap(struct vfpm_client *c, uint8_t id)
{
	return cfg_find_cap(client_cfg_read, c, id);
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until register off of BAR0 reads val. */
static void wait_reg_at(struct vfpm_client *c, unsigned off, uint32_t val, int line)
{
	int64_t end = now_ms() + IRQ_TIMEOUT_MS;
	uint32_t v;
	while ((v = reg_rd(c, off)) != val) {
		if (now_ms() > end)
			fail_msg("line %d: register 0x%x reads 0x%x, expected 0x%x", line, off, v, val);
		usleep(1000);
	}
}
#define wait_reg(c, off, val) wait_reg_at(c, off, val, __LINE__)

/* Waits for eventfd efd to be signalled and returns its counter (0 on
 * timeout). With a client, serves its DMA requests meanwhile. */
static uint64_t wait_irq(int efd, struct vfpm_client *c, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	for (;;) {
		uint64_t v;
		if (read(efd, &v, sizeof(v)) == (ssize_t)sizeof(v))
			return v;
		int64_t left = end - now_ms();
		if (left <= 0)
			return 0;
		if (c) {
			int rc = vfpm_client_serve_pending(c, left < 10 ? (int)left : 10);
			if (rc < 0)
				fail_msg("serve_pending: %s", strerror(-rc));
		} else {
			struct pollfd p = { .fd = efd, .events = POLLIN };
			poll(&p, 1, (int)left);
		}
	}
}

static void expect_no_irq_at(int efd, int ms, int line)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	if (poll(&p, 1, ms) != 0)
		fail_msg("line %d: unexpected interrupt", line);
}
#define expect_no_irq(efd, ms) expect_no_irq_at(efd, ms, __LINE__)

static int new_eventfd(void)
{
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	assert_true(e >= 0);
	return e;
}

static void set_irq_eventfd(struct vfpm_client *c, uint32_t index, uint32_t vec, int efd)
{
	int rc = vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				      index, vec, 1, &efd, 1, NULL);
	if (rc)
		fail_msg("SET_IRQS eventfd index %u vector %u: %s", index, vec, strerror(-rc));
}

static void irq_action(struct vfpm_client *c, uint32_t action, uint32_t index, uint32_t vec)
{
	int rc = vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE | action, index, vec, 1, NULL, 0,
				      NULL);
	if (rc)
		fail_msg("SET_IRQS action 0x%x index %u: %s", action, index, strerror(-rc));
}

static void irq_disable(struct vfpm_client *c, uint32_t index)
{
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_NONE |
						 VFIO_IRQ_SET_ACTION_TRIGGER,
					      index, 0, 0, NULL, 0, NULL),
			 0);
}

/* MSI-X message control: enable and function mask. */
static void msix_control(struct vfpm_client *c, bool enable, bool maskall)
{
	unsigned cap = find_cap(c, PCI_CAP_ID_MSIX);
	assert_int_not_equal(cap, 0);
	uint16_t ctl = (uint16_t)cfg_rd(c, cap + PCI_MSIX_FLAGS, 2);
	ctl &= (uint16_t)~(PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL);
	ctl |= (enable ? PCI_MSIX_FLAGS_ENABLE : 0) | (maskall ? PCI_MSIX_FLAGS_MASKALL : 0);
	cfg_wr(c, cap + PCI_MSIX_FLAGS, ctl, 2);
	assert_int_equal(cfg_rd(c, cap + PCI_MSIX_FLAGS, 2), ctl);
}

/* Vector control word of MSI-X table entry vec (bit 0: masked). */
static void msix_vector_ctrl(struct vfpm_client *c, unsigned vec, uint32_t ctrl)
{
	wr(c, R_BAR4, vec * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, ctrl, 4);
	assert_int_equal(rd(c, R_BAR4, vec * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4), ctrl);
}

static uint64_t msix_pba(struct vfpm_client *c)
{
	uint64_t v = 0;
	assert_int_equal(vfpm_client_region_read(c, R_BAR4, MSIX_PBA_OFF, &v, 8), 0);
	return v;
}

static void dma_program(struct vfpm_client *c, uint64_t src, uint64_t dst, uint32_t len)
{
	reg_wr(c, REG_DMA_SRC_LO, (uint32_t)src);
	reg_wr(c, REG_DMA_SRC_HI, (uint32_t)(src >> 32));
	reg_wr(c, REG_DMA_DST_LO, (uint32_t)dst);
	reg_wr(c, REG_DMA_DST_HI, (uint32_t)(dst >> 32));
	reg_wr(c, REG_DMA_LEN, len);
	assert_int_equal(reg_rd(c, REG_DMA_SRC_LO), (uint32_t)src);
	assert_int_equal(reg_rd(c, REG_DMA_DST_LO), (uint32_t)dst);
	assert_int_equal(reg_rd(c, REG_DMA_LEN), len);
}

/* A memfd standing in for guest RAM, mapped here too. */
static uint8_t *guest_mem(int *fd, size_t size)
{
	*fd = memfd_create("itest-guest", MFD_CLOEXEC);
	assert_true(*fd >= 0);
	assert_int_equal(ftruncate(*fd, (off_t)size), 0);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
	assert_true(p != MAP_FAILED);
	return p;
}

static void fill(uint8_t *p, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 7 + seed + (i >> 8));
}

/* ------------------------------------------------------------------ */
/* Running vfpmd to completion (for start-up failures and --help) */

struct run_result {
	int status;        /* exit code, or -1 for a signal / timeout */
	char out[16384];
	char err[16384];
};

static void run_vfpmd(const char *const *args, struct run_result *r)
{
	memset(r, 0, sizeof(*r));
	int po[2], pe[2];
	assert_int_equal(pipe2(po, O_CLOEXEC), 0);
	assert_int_equal(pipe2(pe, O_CLOEXEC), 0);
	const char *argv[32];
	int argc = 0;
	argv[argc++] = vfpmd_path();
	for (int i = 0; args[i] && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	harness_watch(pid);   /* killed if the test hangs */
	close(po[1]);
	close(pe[1]);
	struct pollfd p[2] = { { .fd = po[0], .events = POLLIN }, { .fd = pe[0], .events = POLLIN } };
	size_t lo = 0, le = 0;
	int open_ends = 2;
	int64_t end = now_ms() + 5000;
	while (open_ends && now_ms() < end) {
		if (poll(p, 2, 100) <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !p[i].revents)
				continue;
			char *buf = i ? r->err : r->out;
			size_t *l = i ? &le : &lo;
			size_t room = sizeof(r->out) - 1 - *l;
			char trash[256];   /* output past the buffer is drained */
			ssize_t n = room ? read(p[i].fd, buf + *l, room)
					 : read(p[i].fd, trash, sizeof(trash));
			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				open_ends--;
			} else if (room) {
				*l += (size_t)n;
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (p[i].fd >= 0)
			close(p[i].fd);
	int st = 0;
	pid_t w = 0;
	while (now_ms() < end + 1000 && (w = waitpid(pid, &st, WNOHANG)) == 0)
		usleep(10000);
	if (w != pid) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		harness_unwatch(pid);
		fail_msg("vfpmd %s did not exit (stderr: %s)", args[0], r->err);
	}
	harness_unwatch(pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
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
	harness_watchdog_arm("test_integration", WATCHDOG_S);
	harness_fds_mark();
	return 0;
}

static int test_teardown(void **state)
{
	(void)state;
	harness_watchdog_disarm();
	int bad = 0;
	for (int i = 0; i < MAX_CLIENTS; i++) {
		if (g_clients[i]) {
			vfpm_client_close(g_clients[i]);
			g_clients[i] = NULL;
			bad = 1;
		}
	}
	for (int i = 0; i < MAX_EXTRA; i++) {
		if (g_extra_used[i]) {
			extra_stop(&g_extra[i]);
			bad = 1;
		}
	}
	remove_tmpdir();
	if (bad) {
		fprintf(stderr, "the test left clients or daemons behind\n");
		return -1;
	}
	if (harness_fds_check())
		return -1;
	return harness_check_alive(&g_proc);
}

/* ------------------------------------------------------------------ */
/* Connection and information */

static void test_connect_caps(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	const struct vfpm_server_caps *k = vfpm_client_server_caps(c);
	assert_non_null(k);
	assert_int_equal(k->major, 0);
	assert_int_equal(k->minor, 2);
	assert_int_equal(k->max_msg_fds, 16);
	assert_int_equal(k->max_data_xfer_size, 1u << 20);
	assert_int_equal(k->pgsizes, 4096);
	assert_int_equal(k->max_dma_maps, 1024);
	assert_false(k->write_multiple);   /* not offered */
	assert_false(k->twin_socket);
	assert_true(vfpm_client_fd(c) >= 0);
	cl_close(c);

	/* write_multiple is granted when offered; twin_socket is declined */
	struct vfpm_client_opts o = { .write_multiple = true, .twin_socket = true };
	c = cl_connect(g_proc.sock[0], &o);
	k = vfpm_client_server_caps(c);
	assert_true(k->write_multiple);
	assert_false(k->twin_socket);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), 0);
	cl_close(c);
}

static void test_device_and_irq_info(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), 0);
	assert_int_equal(di.flags, VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI);
	assert_int_equal(di.num_regions, 9);
	assert_int_equal(di.num_irqs, 5);

	static const struct {
		uint32_t index, flags, count;
	} irqs[] = {
		{ IRQ_INTX, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED, 1 },
		{ IRQ_MSI, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE, 0 },
		{ IRQ_MSIX, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_NORESIZE,
		  DEMO_NVEC },
		{ IRQ_ERR, VFIO_IRQ_INFO_EVENTFD, 1 },
		{ IRQ_REQ, VFIO_IRQ_INFO_EVENTFD, 1 },
	};
	for (size_t i = 0; i < sizeof(irqs) / sizeof(irqs[0]); i++) {
		struct vfpm_irq_info ii;
		assert_int_equal(vfpm_client_irq_info(c, irqs[i].index, &ii), 0);
		assert_int_equal(ii.flags, irqs[i].flags);
		assert_int_equal(ii.count, irqs[i].count);
	}
	struct vfpm_irq_info ii;
	assert_int_equal(vfpm_client_irq_info(c, 5, &ii), -EINVAL);
	cl_close(c);
}

static void test_region_info(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	const uint32_t rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	static const struct {
		uint32_t index;
		uint64_t size;
		uint32_t flags;
	} want[] = {
		{ R_BAR0, BAR0_SIZE, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE },
		{ R_BAR1, 0, 0 },
		{ R_BAR3, 0, 0 },   /* upper half of 64-bit BAR2 */
		{ R_BAR4, BAR4_SIZE, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE },
		{ R_BAR5, 0, 0 },
		{ R_ROM, 0, 0 },
		{ R_CFG, 4096, VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE },
		{ R_VGA, 0, 0 },
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		struct vfpm_region_info ri;
		assert_int_equal(vfpm_client_region_info(c, want[i].index, &ri), 0);
		assert_int_equal(ri.index, want[i].index);
		assert_int_equal(ri.size, want[i].size);
		assert_int_equal(ri.flags, want[i].flags);
		assert_int_equal(ri.fd, -1);
		assert_int_equal(ri.nr_areas, 0);
	}
	/* BAR2: memory-backed, one sparse area covering it, and its fd */
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(c, R_BAR2, &ri), 0);
	assert_int_equal(ri.index, R_BAR2);
	assert_int_equal(ri.size, BAR2_SIZE);
	assert_int_equal(ri.flags, rw | VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS);
	assert_true(ri.fd >= 0);
	assert_int_equal(ri.offset, 0);
	assert_int_equal(ri.nr_areas, 1);
	assert_int_equal(ri.areas[0].offset, 0);
	assert_int_equal(ri.areas[0].size, BAR2_SIZE);
	close(ri.fd);

	assert_int_equal(vfpm_client_region_info(c, 9, &ri), -EINVAL);
	cl_close(c);
}

/* ------------------------------------------------------------------ */
/* Config space */

static void test_config_space(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	uint8_t cfg[4096];
	assert_int_equal(vfpm_client_region_read(c, R_CFG, 0, cfg, sizeof(cfg)), 0);
#define CFG16(o) ((uint16_t)(cfg[o] | cfg[(o) + 1] << 8))
#define CFG32(o) ((uint32_t)CFG16(o) | (uint32_t)CFG16((o) + 2) << 16)
	assert_int_equal(CFG16(PCI_VENDOR_ID), DEMO_VENDOR);
	assert_int_equal(CFG16(PCI_DEVICE_ID), DEMO_DEVICE);
	assert_int_equal(CFG16(PCI_COMMAND), 0);
	assert_true(CFG16(PCI_STATUS) & PCI_STATUS_CAP_LIST);
	assert_int_equal(cfg[PCI_REVISION_ID], 1);
	assert_int_equal(CFG32(PCI_CLASS_REVISION) >> 8, 0x088000);
	assert_int_equal(cfg[PCI_HEADER_TYPE] & 0x7f, PCI_HEADER_TYPE_NORMAL);
	assert_int_equal(CFG16(PCI_SUBSYSTEM_VENDOR_ID), DEMO_VENDOR);
	assert_int_equal(CFG16(PCI_SUBSYSTEM_ID), 0x0001);
	assert_int_equal(cfg[PCI_INTERRUPT_PIN], 1);

	/* the capability list: well-formed, PM, MSI-X and PCIe, no MSI */
	unsigned pm = 0, msix = 0, exp = 0, msi = 0, n = 0;
	for (unsigned off = cfg[PCI_CAPABILITY_LIST]; off; off = cfg[off + PCI_CAP_LIST_NEXT]) {
		assert_true(off >= 0x40 && off <= 0xfc && !(off & 3));
		assert_true(++n <= 16);
		switch (cfg[off]) {
		case PCI_CAP_ID_PM: pm = off; break;
		case PCI_CAP_ID_MSIX: msix = off; break;
		case PCI_CAP_ID_EXP: exp = off; break;
		case PCI_CAP_ID_MSI: msi = off; break;
		default: fail_msg("unexpected capability 0x%02x at 0x%02x", cfg[off], off);
		}
	}
	assert_int_equal(n, 3);
	assert_int_not_equal(pm, 0);
	assert_int_not_equal(msix, 0);
	assert_int_not_equal(exp, 0);
	assert_int_equal(msi, 0);
	assert_int_equal(find_cap(c, PCI_CAP_ID_MSIX), msix);
	/* PM: version 3, D0, NoSoftRst (the demo default) */
	assert_int_equal(CFG16(pm + PCI_PM_PMC) & PCI_PM_CAP_VER_MASK, 3);
	assert_int_equal(CFG16(pm + PCI_PM_CTRL) & PCI_PM_CTRL_STATE_MASK, 0);
	assert_true(CFG16(pm + PCI_PM_CTRL) & PCI_PM_CTRL_NO_SOFT_RESET);
	/* MSI-X: 4 vectors, disabled; table in BAR4 at 0, PBA in BAR4 at 0x1000 */
	assert_int_equal(CFG16(msix + PCI_MSIX_FLAGS), DEMO_NVEC - 1);
	assert_int_equal(CFG32(msix + PCI_MSIX_TABLE), 0x00000000u | 4);
	assert_int_equal(CFG32(msix + PCI_MSIX_PBA), MSIX_PBA_OFF | 4);
	/* PCIe: capability version 2, an endpoint */
	assert_int_equal(CFG16(exp + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_VERS, 2);
	assert_int_equal((CFG16(exp + PCI_EXP_FLAGS) & PCI_EXP_FLAGS_TYPE) >> 4, PCI_EXP_TYPE_ENDPOINT);

	/* extended capabilities: the Device Serial Number at 0x100, alone */
	uint32_t eh = CFG32(0x100);
	assert_int_equal(PCI_EXT_CAP_ID(eh), PCI_EXT_CAP_ID_DSN);
	assert_int_equal(PCI_EXT_CAP_VER(eh), 1);
	assert_int_equal(PCI_EXT_CAP_NEXT(eh), 0);
	assert_int_equal(CFG32(0x104), 0x00000001u);
	assert_int_equal(CFG32(0x108), 0x5646504du);
#undef CFG16
#undef CFG32

	/* read-only registers ignore writes */
	cfg_wr(c, PCI_VENDOR_ID, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, PCI_VENDOR_ID, 4), DEMO_VENDOR | DEMO_DEVICE << 16);
	cfg_wr(c, msix + PCI_MSIX_TABLE, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, msix + PCI_MSIX_TABLE, 4), 4);
	cfg_wr(c, 0x100, 0, 4);
	assert_int_equal(cfg_rd(c, 0x100, 4), eh);
	/* out of range */
	uint32_t v;
	assert_int_equal(vfpm_client_region_read(c, R_CFG, 4096, &v, 4), -EINVAL);
	assert_int_equal(vfpm_client_region_read(c, R_CFG, 4094, &v, 4), -EINVAL);
	cl_close(c);
}

static void test_bar_sizing(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	/* BAR0: 4 KiB 32-bit memory, not prefetchable */
	uint32_t bar0 = cfg_rd(c, PCI_BASE_ADDRESS_0, 4);
	assert_int_equal(bar0 & 0xf, PCI_BASE_ADDRESS_SPACE_MEMORY | PCI_BASE_ADDRESS_MEM_TYPE_32);
	cfg_wr(c, PCI_BASE_ADDRESS_0, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0, 4), 0xfffff000u);
	/* BAR1 is absent on the demo: reads 0, ignores writes */
	cfg_wr(c, PCI_BASE_ADDRESS_1, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_1, 4), 0);
	/* BAR2: 1 MiB, 64-bit prefetchable (BAR3 is its upper half) */
	uint32_t bar2 = cfg_rd(c, PCI_BASE_ADDRESS_2, 4);
	assert_int_equal(bar2 & 0xf, PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	cfg_wr(c, PCI_BASE_ADDRESS_2, 0xffffffffu, 4);
	cfg_wr(c, PCI_BASE_ADDRESS_3, 0xffffffffu, 4);
	uint32_t lo = cfg_rd(c, PCI_BASE_ADDRESS_2, 4), hi = cfg_rd(c, PCI_BASE_ADDRESS_3, 4);
	assert_int_equal(lo, 0xfff00000u | (bar2 & 0xf));
	assert_int_equal(lo, 0xfff0000cu);
	assert_int_equal(hi, 0xffffffffu);
	uint64_t mask = (uint64_t)hi << 32 | (lo & ~0xfu);
	assert_int_equal(~mask + 1, BAR2_SIZE);
	/* BAR4: 8 KiB 32-bit memory */
	cfg_wr(c, PCI_BASE_ADDRESS_4, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_4, 4), 0xffffe000u);
	cfg_wr(c, PCI_BASE_ADDRESS_5, 0xffffffffu, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_5, 4), 0);
	/* no expansion ROM */
	cfg_wr(c, PCI_ROM_ADDRESS, 0xfffff801u, 4);
	assert_int_equal(cfg_rd(c, PCI_ROM_ADDRESS, 4), 0);
	/* addresses stick, masked to the BAR size */
	cfg_wr(c, PCI_BASE_ADDRESS_0, 0xfebf1234u, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0, 4), 0xfebf1000u);
	cfg_wr(c, PCI_BASE_ADDRESS_2, 0xd0000000u, 4);
	cfg_wr(c, PCI_BASE_ADDRESS_3, 0x1u, 4);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_2, 4), 0xd000000cu);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_3, 4), 0x1u);
	cl_close(c);
}

/* ------------------------------------------------------------------ */
/* BAR0 registers and BAR2 memory */

static void test_bar0_registers(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	uint32_t v = 0;
	/* memory decoding off (COMMAND.MEM = 0): memory BARs answer EIO */
	assert_int_equal(cfg_rd(c, PCI_COMMAND, 2), 0);
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, REG_ID, &v, 4), -EIO);
	assert_int_equal(vfpm_client_region_write(c, R_BAR0, REG_SCRATCH, &v, 4), -EIO);
	assert_int_equal(vfpm_client_region_read(c, R_BAR2, 0, &v, 4), -EIO);
	assert_int_equal(vfpm_client_region_read(c, R_BAR4, 0, &v, 4), -EIO);

	set_command(c, PCI_COMMAND_MEMORY);
	assert_int_equal(reg_rd(c, REG_ID), DEMO_ID);
	char id[4];
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, REG_ID, id, 4), 0);
	assert_memory_equal(id, "VFPM", 4);
	assert_int_equal(reg_rd(c, REG_VERSION), DEMO_VERSION);
	uint64_t both = 0;   /* an 8-byte read spans two registers */
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, REG_ID, &both, 8), 0);
	assert_int_equal(both, (uint64_t)DEMO_VERSION << 32 | DEMO_ID);
	uint8_t b = 0;       /* byte lanes on reads */
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, REG_ID + 1, &b, 1), 0);
	assert_int_equal(b, 'F');

	assert_int_equal(reg_rd(c, REG_SCRATCH), 0);
	reg_wr(c, REG_SCRATCH, 0xdeadbeef);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0xdeadbeef);
	reg_wr(c, REG_SCRATCH, 0x01234567);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0x01234567);
	/* registers are written 32 bits at a time */
	uint16_t half = 0xffff;
	assert_int_equal(vfpm_client_region_write(c, R_BAR0, REG_SCRATCH, &half, 2), -EINVAL);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0x01234567);
	/* reserved space reads 0; past the end is refused */
	assert_int_equal(reg_rd(c, BAR0_SIZE - 4), 0);
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, BAR0_SIZE, &v, 4), -EINVAL);
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, BAR0_SIZE - 2, &v, 4), -EINVAL);
	/* ID and VERSION are read-only */
	reg_wr(c, REG_ID, 0);
	assert_int_equal(reg_rd(c, REG_ID), DEMO_ID);

	/* decoding off again: EIO, and the registers kept their values */
	set_command(c, 0);
	assert_int_equal(vfpm_client_region_read(c, R_BAR0, REG_SCRATCH, &v, 4), -EIO);
	set_command(c, PCI_COMMAND_MEMORY);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0x01234567);
	cl_close(c);
}

static void test_bar2_mmap(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	struct vfpm_region_info ri;
	assert_int_equal(vfpm_client_region_info(c, R_BAR2, &ri), 0);
	assert_true(ri.fd >= 0);
	/* the mapping is only backed while memory decoding is on */
	set_command(c, PCI_COMMAND_MEMORY);
	void *addr = NULL;
	size_t len = 0;
	assert_int_equal(vfpm_client_mmap_area(&ri, 0, &addr, &len), 0);
	assert_int_equal(len, BAR2_SIZE);
	uint8_t *m = addr;

	/* through the mapping, read back with REGION_READ */
	uint8_t pat[512], back[512];
	fill(pat, sizeof(pat), 11);
	memcpy(m + 0x1000, pat, sizeof(pat));
	assert_int_equal(vfpm_client_region_read(c, R_BAR2, 0x1000, back, sizeof(back)), 0);
	assert_memory_equal(back, pat, sizeof(pat));
	m[BAR2_SIZE - 1] = 0xa5;
	assert_int_equal(rd(c, R_BAR2, BAR2_SIZE - 4, 4) >> 24, 0xa5);

	/* with REGION_WRITE, seen through the mapping */
	fill(pat, sizeof(pat), 99);
	assert_int_equal(vfpm_client_region_write(c, R_BAR2, 0x80000, pat, sizeof(pat)), 0);
	assert_memory_equal(m + 0x80000, pat, sizeof(pat));
	wr(c, R_BAR2, 0, 0x11223344, 4);
	assert_int_equal(m[0], 0x44);
	assert_int_equal(m[3], 0x11);

	/* a large transfer in one call */
	uint8_t *big = malloc(BAR2_SIZE);
	assert_non_null(big);
	assert_int_equal(vfpm_client_region_read(c, R_BAR2, 0, big, BAR2_SIZE), 0);
	assert_memory_equal(big, m, BAR2_SIZE);
	free(big);

	assert_int_equal(munmap(addr, len), 0);
	close(ri.fd);
	cl_close(c);
}

/* ------------------------------------------------------------------ */
/* DMA and interrupts */

/* One DMA copy by the demo engine, completed through each interrupt type
 * a client can pick (irq_cases): the same body programs and checks the
 * copy, and each type adds its own set-up, what it does with a second
 * completion (another edge, an automasked line, a masked vector) and its
 * tear-down. */

struct irq_run {
	struct vfpm_client *c;
	uint8_t *mem;
	uint32_t len;
	unsigned msi;    /* MSI capability offset */
	int efd;         /* the eventfd the completion signals */
	int other;       /* MSI: vector 0's eventfd, which must stay quiet; else -1 */
};

struct irq_case {
	const char *spec;    /* a device of its own, or NULL for the group's demo */
	uint32_t index;      /* IRQ_MSIX, IRQ_INTX or IRQ_MSI */
	uint32_t len;
	unsigned seed;
	void (*enable)(struct irq_run *r);
	void (*first_done)(struct irq_run *r);
	void (*more)(struct irq_run *r);
	void (*disable)(struct irq_run *r);
};

/* MSI-X vector 0, with table entry 0 as a guest would program it. */
static void msix_enable(struct irq_run *r)
{
	struct vfpm_client *c = r->c;
	msix_control(c, true, false);
	wr(c, R_BAR4, 0, 0xfee00000u, 4);
	wr(c, R_BAR4, 4, 0, 4);
	wr(c, R_BAR4, 8, 0x4021, 4);
	assert_int_equal(rd(c, R_BAR4, 8, 4), 0x4021);
	msix_vector_ctrl(c, 0, 0);
	r->efd = new_eventfd();
	set_irq_eventfd(c, IRQ_MSIX, 0, r->efd);
	reg_wr(c, REG_IRQ_VECTOR, 0);
}

static void msix_first_done(struct irq_run *r)
{
	assert_int_equal(r->mem[0x100000 + r->len], 0);   /* not one byte more */
	assert_int_equal(reg_rd(r->c, REG_DMA_RESULT), 0);
	assert_int_equal(msix_pba(r->c), 0);
	expect_no_irq(r->efd, 100);
}

/* a second job: another edge */
static void msix_more(struct irq_run *r)
{
	fill(r->mem + 0x1000, r->len, 77);
	reg_wr(r->c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(r->efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_memory_equal(r->mem + 0x100000, r->mem + 0x1000, r->len);
	assert_int_equal(reg_rd(r->c, REG_DMA_COUNT), 2);
}

static void msix_disable(struct irq_run *r)
{
	irq_disable(r->c, IRQ_MSIX);
}

/* INTx: level-triggered and automasked; MSI-X stays off. */
static void intx_enable(struct irq_run *r)
{
	r->efd = new_eventfd();
	set_irq_eventfd(r->c, IRQ_INTX, 0, r->efd);
}

/* the line rose with STATUS.INTERRUPT; the guest clears the cause (line
 * drops), then unmasks: no event */
static void intx_first_done(struct irq_run *r)
{
	struct vfpm_client *c = r->c;
	assert_true(cfg_rd(c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	reg_wr(c, REG_INT_STATUS, INT_DMA_DONE);
	assert_int_equal(reg_rd(c, REG_INT_STATUS), 0);
	assert_false(cfg_rd(c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	irq_action(c, VFIO_IRQ_SET_ACTION_UNMASK, IRQ_INTX, 0);
	expect_no_irq(r->efd, 100);
}

static void intx_more(struct irq_run *r)
{
	struct vfpm_client *c = r->c;
	/* job 2 after the unmask: fires again */
	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(r->efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_int_equal(reg_rd(c, REG_DMA_COUNT), 2);
	reg_wr(c, REG_INT_STATUS, INT_DMA_DONE);

	/* job 3 while still automasked: held back, delivered on the unmask */
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 3);
	assert_int_equal(reg_rd(c, REG_INT_STATUS), INT_DMA_DONE);
	expect_no_irq(r->efd, 200);   /* (the line rises just after DMA_COUNT) */
	assert_true(cfg_rd(c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
	irq_action(c, VFIO_IRQ_SET_ACTION_UNMASK, IRQ_INTX, 0);
	assert_int_equal(wait_irq(r->efd, NULL, IRQ_TIMEOUT_MS), 1);
	reg_wr(c, REG_INT_STATUS, INT_DMA_DONE);
	irq_action(c, VFIO_IRQ_SET_ACTION_UNMASK, IRQ_INTX, 0);
	expect_no_irq(r->efd, 100);
}

static void intx_disable(struct irq_run *r)
{
	irq_disable(r->c, IRQ_INTX);
}

/* MSI (demo with msi_vectors=4, MSI-X left off): completion on the vector
 * IRQ_VECTOR names, only vectors the MME field enables. */
static void msi_enable(struct irq_run *r)
{
	struct vfpm_client *c = r->c;
	struct vfpm_irq_info ii;
	assert_int_equal(vfpm_client_irq_info(c, IRQ_MSI, &ii), 0);
	assert_int_equal(ii.count, 4);
	r->msi = find_cap(c, PCI_CAP_ID_MSI);
	assert_true(r->msi != 0);
	uint16_t flags = (uint16_t)cfg_rd(c, r->msi + PCI_MSI_FLAGS, 2);
	assert_int_equal((flags & PCI_MSI_FLAGS_QMASK) >> 1, 2);   /* 4 vectors capable */
	assert_true(flags & PCI_MSI_FLAGS_MASKBIT);
	/* enable MSI with 2 vectors (MME = 1) */
	cfg_wr(c, r->msi + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | (1u << 4), 2);
	r->other = new_eventfd();
	r->efd = new_eventfd();
	set_irq_eventfd(c, IRQ_MSI, 0, r->other);
	set_irq_eventfd(c, IRQ_MSI, 1, r->efd);
	reg_wr(c, REG_IRQ_VECTOR, 1);
}

static void msi_first_done(struct irq_run *r)
{
	expect_no_irq(r->other, 50);   /* vector 1 only */
	assert_false(cfg_rd(r->c, PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);   /* not INTx */
}

/* per-vector masking: the completion goes pending, fires on unmask */
static void msi_more(struct irq_run *r)
{
	struct vfpm_client *c = r->c;
	cfg_wr(c, r->msi + PCI_MSI_MASK_64, 1u << 1, 4);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 2);
	expect_no_irq(r->efd, 150);
	assert_int_equal(cfg_rd(c, r->msi + PCI_MSI_PENDING_64, 4) & 2, 2);
	cfg_wr(c, r->msi + PCI_MSI_MASK_64, 0, 4);
	assert_int_equal(wait_irq(r->efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_int_equal(cfg_rd(c, r->msi + PCI_MSI_PENDING_64, 4) & 2, 0);
}

/* MSI off, its eventfds released */
static void msi_disable(struct irq_run *r)
{
	irq_disable(r->c, IRQ_MSI);
	cfg_wr(r->c, r->msi + PCI_MSI_FLAGS, 0, 2);
}

static const struct irq_case irq_cases[] = {
	{ NULL, IRQ_MSIX, 0x10000, 3, msix_enable, msix_first_done, msix_more, msix_disable },
	{ NULL, IRQ_INTX, 0x2000, 5, intx_enable, intx_first_done, intx_more, intx_disable },
	{ "demo,name=msi,msi_vectors=4,pm_delays=none", IRQ_MSI, 0x200, 9, msi_enable,
	  msi_first_done, msi_more, msi_disable },
};

static void test_dma_irq(void **state)
{
	const struct irq_case *k = *state;
	struct vfpmd_proc *p = NULL;
	struct irq_run r = { .len = k->len, .efd = -1, .other = -1 };
	if (k->spec) {
		const char *specs[] = { k->spec, NULL };
		p = extra_start(specs, NULL);
		r.c = cl_connect(p->sock[0], NULL);
	} else {
		r.c = connect_default();
	}
	struct vfpm_client *c = r.c;
	int mfd;
	r.mem = guest_mem(&mfd, GUEST_SIZE);
	fill(r.mem + 0x1000, r.len, k->seed);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, GUEST_IOVA, GUEST_SIZE, DMA_FLAGS_RW, NULL),
			 0);
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	k->enable(&r);
	reg_wr(c, REG_INT_MASK, INT_DMA_DONE);
	dma_program(c, GUEST_IOVA + 0x1000, GUEST_IOVA + 0x100000, r.len);

	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(r.efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_memory_equal(r.mem + 0x100000, r.mem + 0x1000, r.len);
	assert_int_equal(reg_rd(c, REG_DMA_COUNT), 1);
	assert_int_equal(reg_rd(c, REG_STATUS), STATUS_DONE);
	assert_int_equal(reg_rd(c, REG_INT_STATUS), INT_DMA_DONE);
	k->first_done(&r);
	k->more(&r);

	k->disable(&r);
	close(r.efd);
	if (r.other >= 0)
		close(r.other);
	assert_int_equal(vfpm_client_dma_unmap(c, GUEST_IOVA, GUEST_SIZE), 0);
	munmap(r.mem, GUEST_SIZE);
	close(mfd);
	cl_close(c);
	if (p)
		assert_int_equal(extra_stop(p), 0);
}

/* INTx unmask through an eventfd (SET_IRQS EVENTFD|UNMASK), as the
 * kernel's irqfd unmask: signalling it unmasks the automasked line, and a
 * line still asserted fires again at once. A mask eventfd has no handler. */
static void test_intx_unmask_eventfd(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	int mfd;
	uint8_t *mem = guest_mem(&mfd, GUEST_SIZE);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, GUEST_IOVA, GUEST_SIZE, DMA_FLAGS_RW, NULL),
			 0);
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	int efd = new_eventfd(), unmask = new_eventfd();
	set_irq_eventfd(c, IRQ_INTX, 0, efd);
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
					      IRQ_INTX, 0, 1, &unmask, 1, NULL),
			 0);
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_MASK,
					      IRQ_INTX, 0, 1, &unmask, 1, NULL),
			 -ENOTTY);
	reg_wr(c, REG_INT_MASK, INT_DMA_DONE);
	dma_program(c, GUEST_IOVA + 0x1000, GUEST_IOVA + 0x100000, 0x100);
	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);   /* fired, automasked */
	/* the cause stays set (line asserted): unmasking by eventfd re-fires */
	uint64_t one = 1;
	assert_int_equal(write(unmask, &one, sizeof(one)), (ssize_t)sizeof(one));
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);
	/* cleared cause: the next unmask by eventfd is silent */
	reg_wr(c, REG_INT_STATUS, INT_DMA_DONE);
	assert_int_equal(write(unmask, &one, sizeof(one)), (ssize_t)sizeof(one));
	expect_no_irq(efd, 100);
	/* a second job after that unmask fires normally */
	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);
	reg_wr(c, REG_INT_STATUS, INT_DMA_DONE);
	/* de-assigned (no descriptor): signalling the old eventfd does nothing */
	assert_int_equal(vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK,
					      IRQ_INTX, 0, 1, NULL, 0, NULL),
			 0);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 3);
	assert_int_equal(write(unmask, &one, sizeof(one)), (ssize_t)sizeof(one));
	expect_no_irq(efd, 150);   /* still automasked after job 2 */
	irq_disable(c, IRQ_INTX);
	assert_int_equal(vfpm_client_dma_unmap(c, GUEST_IOVA, GUEST_SIZE), 0);
	close(unmask);
	close(efd);
	munmap(mem, GUEST_SIZE);
	close(mfd);
	cl_close(c);
}

/* A copy over message-based DMA: the server sends DMA_READ/DMA_WRITE and
 * the library serves them from its own memory. */
static void dma_over_messages(const struct vfpm_client_opts *o, uint32_t len)
{
	struct vfpm_client *c = cl_connect(g_proc.sock[0], o);
	void *host = NULL;
	assert_int_equal(vfpm_client_dma_map(c, -1, 0, GUEST_IOVA, GUEST_SIZE, DMA_FLAGS_RW, &host),
			 0);
	assert_non_null(host);
	uint8_t *mem = host;
	fill(mem + 0x1000, len, 9);
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	msix_control(c, true, false);
	msix_vector_ctrl(c, 0, 0);
	int efd = new_eventfd();
	set_irq_eventfd(c, IRQ_MSIX, 0, efd);
	reg_wr(c, REG_INT_MASK, INT_DMA_DONE);
	dma_program(c, GUEST_IOVA + 0x1000, GUEST_IOVA + 0x100000, len);
	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(efd, c, IRQ_TIMEOUT_MS), 1);
	assert_memory_equal(mem + 0x100000, mem + 0x1000, len);
	assert_int_equal(mem[0x100000 + len], 0);
	assert_int_equal(reg_rd(c, REG_DMA_COUNT), 1);
	assert_int_equal(reg_rd(c, REG_STATUS), STATUS_DONE);
	assert_int_equal(reg_rd(c, REG_DMA_RESULT), 0);

	/* after an unmap the device faults instead of reaching the memory */
	assert_int_equal(vfpm_client_dma_unmap(c, GUEST_IOVA, GUEST_SIZE), 0);
	reg_wr(c, REG_INT_MASK, 0);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 2);
	assert_int_equal(reg_rd(c, REG_DMA_RESULT), EFAULT);
	assert_int_equal(reg_rd(c, REG_STATUS) & STATUS_DONE, 0);
	irq_disable(c, IRQ_MSIX);
	close(efd);
	cl_close(c);
}

static void test_dma_message_based(void **state)
{
	(void)state;
	dma_over_messages(NULL, 0x3000);
	/* a client that takes 4 KiB per message: the server splits the copy */
	struct vfpm_client_opts o = { .max_data_xfer_size = 4096 };
	dma_over_messages(&o, 0x5000);
}

/* A client that programs the server's table: a masked MSI-X vector's
 * interrupt becomes the PBA bit, delivered on unmask; the same with the
 * function mask and with SET_IRQS MASK/UNMASK. */
static void test_msix_masking(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	set_command(c, PCI_COMMAND_MEMORY);
	msix_control(c, true, false);
	/* after reset every vector is masked */
	for (unsigned v = 0; v < DEMO_NVEC; v++)
		assert_int_equal(rd(c, R_BAR4, v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL, 4),
				 PCI_MSIX_ENTRY_CTRL_MASKBIT);
	/* programming the table (mask still set) makes its mask bits count */
	msix_vector_ctrl(c, 0, PCI_MSIX_ENTRY_CTRL_MASKBIT);
	int efd = new_eventfd();
	set_irq_eventfd(c, IRQ_MSIX, 0, efd);
	reg_wr(c, REG_INT_MASK, INT_DMA_DONE);
	/* a zero-length job completes without DMA and raises the interrupt */
	dma_program(c, 0, 0, 0);

	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 1);
	expect_no_irq(efd, 200);
	assert_int_equal(msix_pba(c), 1);
	msix_vector_ctrl(c, 0, 0);   /* unmask: fires, pending bit drops */
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_int_equal(msix_pba(c), 0);

	/* function mask */
	msix_control(c, true, true);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 2);
	expect_no_irq(efd, 200);
	assert_int_equal(msix_pba(c), 1);
	msix_control(c, true, false);
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_int_equal(msix_pba(c), 0);

	/* masking through SET_IRQS is the client's own mask: the table's
	 * mask bit is left as the client wrote it */
	irq_action(c, VFIO_IRQ_SET_ACTION_MASK, IRQ_MSIX, 0);
	assert_int_equal(rd(c, R_BAR4, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 3);
	expect_no_irq(efd, 200);
	assert_int_equal(msix_pba(c), 1);
	irq_action(c, VFIO_IRQ_SET_ACTION_UNMASK, IRQ_MSIX, 0);
	assert_int_equal(wait_irq(efd, NULL, IRQ_TIMEOUT_MS), 1);
	assert_int_equal(msix_pba(c), 0);
	assert_int_equal(rd(c, R_BAR4, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), 0);

	/* the PBA is read-only */
	wr(c, R_BAR4, MSIX_PBA_OFF, 0xffffffffu, 4);
	assert_int_equal(msix_pba(c), 0);

	/* another vector: the IRQ_VECTOR register routes the completion */
	int efd2 = new_eventfd();
	set_irq_eventfd(c, IRQ_MSIX, 2, efd2);
	msix_vector_ctrl(c, 2, 0);
	reg_wr(c, REG_IRQ_VECTOR, 2);
	assert_int_equal(reg_rd(c, REG_IRQ_VECTOR), 2);
	reg_wr(c, REG_DOORBELL, 1);
	assert_int_equal(wait_irq(efd2, NULL, IRQ_TIMEOUT_MS), 1);
	expect_no_irq(efd, 100);

	irq_disable(c, IRQ_MSIX);
	close(efd);
	close(efd2);
	cl_close(c);
}

/* ------------------------------------------------------------------ */
/* REGION_WRITE_MULTI, ioeventfds, reset, reconnect */

static void test_write_multi(void **state)
{
	(void)state;
	struct vfpm_client_opts o = { .write_multiple = true };
	struct vfpm_client *c = cl_connect(g_proc.sock[0], &o);
	assert_true(vfpm_client_server_caps(c)->write_multiple);
	/* COMMAND.MEM, then two scratch writes (the last one wins), in one
	 * message */
	struct vfpm_write_multi_entry e[3] = {
		{ .region = R_CFG, .offset = PCI_COMMAND, .count = 2, .data = { 0x02, 0x00 } },
		{ .region = R_BAR0, .offset = REG_SCRATCH, .count = 4, .data = { 1, 2, 3, 4 } },
		{ .region = R_BAR0, .offset = REG_SCRATCH, .count = 4, .data = { 0x0d, 0xf0, 0xfe, 0xca } },
	};
	assert_int_equal(vfpm_client_region_write_multi(c, e, 3), 0);
	assert_int_equal(cfg_rd(c, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0xcafef00d);
	/* a bad entry is refused */
	struct vfpm_write_multi_entry badent = { .region = 9, .offset = 0, .count = 4 };
	assert_int_equal(vfpm_client_region_write_multi(c, &badent, 1), -EINVAL);
	cl_close(c);

	/* not negotiated: the server refuses the command */
	c = connect_default();
	set_command(c, PCI_COMMAND_MEMORY);
	assert_true(vfpm_client_region_write_multi(c, &e[1], 1) < 0);
	struct {
		uint64_t wr_cnt;
		uint64_t offset;
		uint32_t region, count;
		uint8_t data[8];
	} __attribute__((packed)) msg = { 1, REG_SCRATCH, R_BAR0, 4, { 1, 2, 3, 4 } };
	assert_int_equal(vfpm_client_request(c, 15 /* REGION_WRITE_MULTI */, &msg, sizeof(msg), NULL,
					     0, NULL, 0, NULL, NULL, 0, NULL),
			 -EINVAL);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0);
	cl_close(c);
}

static void test_ioeventfd_doorbell(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	struct vfpm_ioeventfd ev[4];
	assert_int_equal(vfpm_client_region_io_fds(c, R_BAR0, ev, 4), 1);
	assert_int_equal(ev[0].offset, REG_DOORBELL);
	assert_int_equal(ev[0].size, 4);
	assert_int_equal(ev[0].flags, 0);
	assert_true(ev[0].fd >= 0);
	struct vfpm_ioeventfd none[2];
	assert_int_equal(vfpm_client_region_io_fds(c, R_BAR2, none, 2), 0);
	assert_int_equal(vfpm_client_region_io_fds(c, R_CFG, none, 2), 0);
	assert_int_equal(vfpm_client_region_io_fds(c, 9, none, 2), -EINVAL);

	set_command(c, PCI_COMMAND_MEMORY);
	assert_int_equal(reg_rd(c, REG_DMA_COUNT), 0);
	uint64_t one = 1;
	assert_int_equal(write(ev[0].fd, &one, 8), 8);   /* instead of a BAR0 write */
	wait_reg(c, REG_DMA_COUNT, 1);
	assert_int_equal(reg_rd(c, REG_STATUS), STATUS_DONE);
	assert_int_equal(write(ev[0].fd, &one, 8), 8);
	wait_reg(c, REG_DMA_COUNT, 2);
	close(ev[0].fd);
	cl_close(c);
}

static void test_device_reset(void **state)
{
	(void)state;
	struct vfpm_client *c = connect_default();
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	msix_control(c, true, false);
	reg_wr(c, REG_SCRATCH, 0x5a5a1234);
	reg_wr(c, REG_INT_MASK, INT_DMA_DONE);
	reg_wr(c, REG_DMA_LEN, 0x40);
	cfg_wr(c, PCI_BASE_ADDRESS_0, 0xfe000000u, 4);
	reg_wr(c, REG_DOORBELL, 1);   /* a job that fails (nothing mapped) */
	wait_reg(c, REG_DMA_COUNT, 1);

	/* as vfio-pci's reset (pci_try_reset_function): config space is
	 * saved and restored around it, the function's own state is reset */
	assert_int_equal(vfpm_client_reset(c), 0);
	assert_int_equal(cfg_rd(c, PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(cfg_rd(c, PCI_BASE_ADDRESS_0, 4), 0xfe000000u);
	assert_int_equal(cfg_rd(c, find_cap(c, PCI_CAP_ID_MSIX) + PCI_MSIX_FLAGS, 2),
			 PCI_MSIX_FLAGS_ENABLE | (DEMO_NVEC - 1));
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0);
	assert_int_equal(reg_rd(c, REG_INT_MASK), 0);
	assert_int_equal(reg_rd(c, REG_DMA_LEN), 0);
	assert_int_equal(reg_rd(c, REG_DMA_COUNT), 0);
	assert_int_equal(reg_rd(c, REG_STATUS), 0);
	assert_int_equal(rd(c, R_BAR4, PCI_MSIX_ENTRY_VECTOR_CTRL, 4), PCI_MSIX_ENTRY_CTRL_MASKBIT);
	cl_close(c);
}

static void test_reconnect_resets(void **state)
{
	(void)state;
	int mfd;
	uint8_t *mem = guest_mem(&mfd, GUEST_SIZE);
	struct vfpm_client *c = connect_default();
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	reg_wr(c, REG_SCRATCH, 0x77777777);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, GUEST_IOVA, GUEST_SIZE, DMA_FLAGS_RW, NULL),
			 0);
	cl_close(c);

	/* reconnecting at once is served (not refused as a second client) */
	c = connect_default();
	assert_int_equal(cfg_rd(c, PCI_COMMAND, 2), 0);
	set_command(c, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_int_equal(reg_rd(c, REG_SCRATCH), 0);
	/* the old DMA map is gone: the device cannot reach the old memory,
	 * and mapping the range again works (an overlap would be EEXIST) */
	mem[0x1000] = 0x42;
	reg_wr(c, REG_INT_MASK, 0);
	dma_program(c, GUEST_IOVA + 0x1000, GUEST_IOVA + 0x2000, 16);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 1);
	assert_int_equal(reg_rd(c, REG_DMA_RESULT), EFAULT);
	assert_int_equal(mem[0x2000], 0);
	assert_int_equal(vfpm_client_dma_map(c, mfd, 0, GUEST_IOVA, GUEST_SIZE, DMA_FLAGS_RW, NULL),
			 0);
	reg_wr(c, REG_DOORBELL, 1);
	wait_reg(c, REG_DMA_COUNT, 2);
	assert_int_equal(reg_rd(c, REG_DMA_RESULT), 0);
	assert_int_equal(mem[0x2000], 0x42);
	cl_close(c);
	munmap(mem, GUEST_SIZE);
	close(mfd);
}

/* ------------------------------------------------------------------ */
/* The daemon */

static void test_sigterm_cleanup(void **state)
{
	(void)state;
	static const char *const specs[] = { "demo", NULL };
	struct vfpmd_proc *p = extra_start(specs, NULL);
	struct vfpm_client *c = cl_connect(p->sock[0], NULL);
	int req = new_eventfd();
	set_irq_eventfd(c, IRQ_REQ, 0, req);
	assert_int_equal(access(p->sock[0], F_OK), 0);

	/* a clean exit with a client connected */
	assert_int_equal(extra_terminate(p), 0);
	/* the client was asked to let go (REQ), then its stream closed */
	assert_int_equal(wait_irq(req, NULL, 1000), 1);
	struct vfpm_device_info di;
	assert_true(vfpm_client_device_info(c, &di) < 0);
	/* the socket files are gone */
	errno = 0;
	assert_int_equal(access(p->sock[0], F_OK), -1);
	assert_int_equal(errno, ENOENT);
	errno = 0;
	assert_int_equal(access(p->ctl, F_OK), -1);
	assert_int_equal(errno, ENOENT);
	extra_release(p);
	close(req);
	cl_close(c);
}

static void test_two_devices(void **state)
{
	(void)state;
	static const char *const specs[] = { "demo,name=a", "demo,name=b", NULL };
	struct vfpmd_proc *p = extra_start(specs, NULL);
	struct vfpm_client *a = cl_connect(p->sock[0], NULL);
	struct vfpm_client *b = cl_connect(p->sock[1], NULL);   /* both at once */
	set_command(a, PCI_COMMAND_MEMORY);
	set_command(b, PCI_COMMAND_MEMORY);
	reg_wr(a, REG_SCRATCH, 0xaaaa0001);
	assert_int_equal(reg_rd(b, REG_SCRATCH), 0);
	reg_wr(b, REG_SCRATCH, 0xbbbb0002);
	assert_int_equal(reg_rd(a, REG_SCRATCH), 0xaaaa0001);
	assert_int_equal(reg_rd(b, REG_SCRATCH), 0xbbbb0002);
	/* config space too */
	cfg_wr(a, PCI_BASE_ADDRESS_0, 0xfe000000u, 4);
	assert_int_equal(cfg_rd(b, PCI_BASE_ADDRESS_0, 4), 0);
	/* BAR2 memory too */
	wr(a, R_BAR2, 0x100, 0x12345678, 4);
	assert_int_equal(rd(b, R_BAR2, 0x100, 4), 0);
	/* a reset of one leaves the other alone */
	assert_int_equal(vfpm_client_reset(a), 0);
	assert_int_equal(reg_rd(b, REG_SCRATCH), 0xbbbb0002);
	cl_close(a);
	cl_close(b);
	assert_int_equal(extra_stop(p), 0);
}

static void make_stale_socket(const char *path)
{
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	assert_true(strlen(path) < sizeof(a.sun_path));
	memcpy(a.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s);   /* the file stays; nobody listens */
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
}

static void test_stale_socket_replaced(void **state)
{
	(void)state;
	char path[256], spec[300];
	snprintf(path, sizeof(path), "%s/stale.sock", make_tmpdir());
	make_stale_socket(path);
	snprintf(spec, sizeof(spec), "demo,socket=%s", path);
	const char *const specs[] = { spec, NULL };
	struct vfpmd_proc *p = extra_start(specs, NULL);
	struct vfpm_client *c = cl_connect(path, NULL);
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), 0);
	assert_int_equal(di.num_regions, 9);
	cl_close(c);
	assert_int_equal(extra_stop(p), 0);
	assert_int_equal(access(path, F_OK), -1);
}

static bool contains(const char *hay, const char *needle)
{
	return strstr(hay, needle) != NULL;
}

static void test_regular_file_kept(void **state)
{
	(void)state;
	char path[256], spec[300];
	snprintf(path, sizeof(path), "%s/file.sock", make_tmpdir());
	static const char content[] = "not a socket\n";
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(content, f);
	fclose(f);
	snprintf(spec, sizeof(spec), "demo,socket=%s", path);
	const char *const args[] = { "--ctl", "none", "--device", spec, NULL };
	struct run_result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_vfpmd(args, r);
	if (r->status != 1 || !contains(r->err, "not a socket"))
		fail_msg("exit %d, stderr: %s", r->status, r->err);
	char back[64] = { 0 };
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(back, 1, sizeof(back) - 1, f) == strlen(content));
	fclose(f);
	assert_string_equal(back, content);
	free(r);
}

static void test_live_socket_kept(void **state)
{
	(void)state;
	/* a socket another vfpmd listens on is not taken over */
	char spec[360];
	static const char *const specs[] = { "demo", NULL };
	struct vfpmd_proc *p = extra_start(specs, NULL);
	snprintf(spec, sizeof(spec), "demo,socket=%s", p->sock[0]);
	const char *const args[] = { "--ctl", "none", "--device", spec, NULL };
	struct run_result *r = malloc(sizeof(*r));
	assert_non_null(r);
	run_vfpmd(args, r);
	if (r->status != 1 || !contains(r->err, "another server is listening"))
		fail_msg("exit %d, stderr: %s", r->status, r->err);
	free(r);
	struct vfpm_client *c = cl_connect(p->sock[0], NULL);   /* still the first one */
	struct vfpm_device_info di;
	assert_int_equal(vfpm_client_device_info(c, &di), 0);
	cl_close(c);
	assert_int_equal(extra_stop(p), 0);
}

static void test_socket_mode(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat(g_proc.sock[0], &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	static const char *const specs[] = { "demo", NULL };
	static const char *const extra[] = { "--socket-mode", "0660", NULL };
	struct vfpmd_proc *p = extra_start(specs, extra);
	assert_int_equal(stat(p->sock[0], &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0660);
	assert_int_equal(extra_stop(p), 0);
}

static void test_bad_model_and_key(void **state)
{
	(void)state;
	char path[256], spec[300];
	snprintf(path, sizeof(path), "%s/x.sock", make_tmpdir());
	struct run_result *r = malloc(sizeof(*r));
	assert_non_null(r);

	snprintf(spec, sizeof(spec), "nosuchmodel,socket=%s", path);
	const char *const a1[] = { "--ctl", "none", "--device", spec, NULL };
	run_vfpmd(a1, r);
	if (r->status != 1 || !contains(r->err, "unknown device model 'nosuchmodel'"))
		fail_msg("unknown model: exit %d, stderr: %s", r->status, r->err);
	assert_int_equal(access(path, F_OK), -1);

	snprintf(spec, sizeof(spec), "demo,bogus_key=1,socket=%s", path);
	const char *const a2[] = { "--ctl", "none", "--device", spec, NULL };
	run_vfpmd(a2, r);
	if (r->status != 1 || !contains(r->err, "has no option 'bogus_key'"))
		fail_msg("unknown key: exit %d, stderr: %s", r->status, r->err);
	assert_int_equal(access(path, F_OK), -1);
	free(r);
}

static void test_help(void **state)
{
	(void)state;
	struct run_result *r = malloc(sizeof(*r));
	assert_non_null(r);
	const char *const args[] = { "--help", NULL };
	run_vfpmd(args, r);
	assert_int_equal(r->status, 0);
	assert_true(contains(r->out, "Usage: vfpmd"));
	assert_true(contains(r->out, "--device"));
	assert_true(contains(r->out, "--socket-mode"));
	assert_string_equal(r->err, "");
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, test_setup, test_teardown)
		T(test_connect_caps),
		T(test_device_and_irq_info),
		T(test_region_info),
		T(test_config_space),
		T(test_bar_sizing),
		T(test_bar0_registers),
		T(test_bar2_mmap),
		{ "test_dma_irq(msix)", test_dma_irq, test_setup, test_teardown, (void *)&irq_cases[0] },
		{ "test_dma_irq(intx)", test_dma_irq, test_setup, test_teardown, (void *)&irq_cases[1] },
		T(test_intx_unmask_eventfd),
		{ "test_dma_irq(msi)", test_dma_irq, test_setup, test_teardown, (void *)&irq_cases[2] },
		T(test_dma_message_based),
		T(test_msix_masking),
		T(test_write_multi),
		T(test_ioeventfd_doorbell),
		T(test_device_reset),
		T(test_reconnect_resets),
		T(test_sigterm_cleanup),
		T(test_two_devices),
		T(test_stale_socket_replaced),
		T(test_regular_file_kept),
		T(test_live_socket_kept),
		T(test_socket_mode),
		T(test_bad_model_and_key),
		T(test_help),
#undef T
	};
	return cmocka_run_group_tests_name("integration", tests, group_setup, group_teardown);
}
