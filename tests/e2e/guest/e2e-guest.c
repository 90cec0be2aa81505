/*
 * e2e-guest: the guest side of vfpm's end-to-end test (tests/e2e/run.sh).
 *
 * Runs inside a Linux guest booted by QEMU with a vfpm demo device attached
 * through QEMU's vfio-user-pci client. It drives the device the way a guest
 * user-space driver does: through the guest kernel's own vfio-pci (group,
 * type1 container, region reads/writes, SET_IRQS, DEVICE_RESET) and through
 * sysfs (config, resource0, reset, power/).
 *
 * Built statically on the host (gcc -static) and put in the initramfs.
 *
 * Output, one line each, on the serial console (stdout):
 *   E2E: PASS name
 *   E2E: FAIL name: why
 *   E2E: info ...
 *   E2E-HOLD tag      the guest holds a state for the host to check; it waits
 *                     (at most HOLD_TIMEOUT_S) for "ack tag" on stdin.
 *
 * Usage: e2e-guest find | enum BDF | dma BDF msix|intx | pm BDF | flr BDF |
 *        rpm BDF | dirty BDF
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define VENDOR 0x1b36
#define DEVICE 0x10f0

/* demo BAR0 registers (docs/demo-device.md) */
#define R_ID 0x00
#define R_SCRATCH 0x08
#define R_STATUS 0x0c
#define R_DOORBELL 0x10
#define R_INT_STATUS 0x14
#define R_INT_MASK 0x18
#define R_DMA_SRC 0x20
#define R_DMA_DST 0x28
#define R_DMA_LEN 0x30
#define R_DMA_RESULT 0x34
#define R_DMA_COUNT 0x38
#define R_IRQ_VECTOR 0x3c
#define DEMO_ID 0x4d504656u

#define IRQ_TIMEOUT_MS 10000
#define HOLD_TIMEOUT_S 60
#define DMA_IOVA 0x100000ull
#define DMA_LEN 4096u

static int nfail;

static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

static void pass(const char *name)
{
	say("E2E: PASS %s", name);
}

static void fail(const char *name, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	say("E2E: FAIL %s: %s", name, buf);
	nfail++;
}

static void check(bool ok, const char *name, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	if (ok) {
		pass(name);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fail(name, "%s", buf);
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Tell the host we hold a state, wait for "ack TAG" on stdin. */
static void hold(const char *tag)
{
	char want[128], buf[1024];
	size_t len = 0;
	long long end = now_ms() + HOLD_TIMEOUT_S * 1000LL;

	snprintf(want, sizeof(want), "ack %s", tag);
	say("E2E-HOLD %s", tag);
	for (;;) {
		long long left = end - now_ms();
		struct pollfd p = { .fd = 0, .events = POLLIN };
		if (left <= 0) {
			say("E2E: info no ack from the host for %s after %d s", tag, HOLD_TIMEOUT_S);
			return;
		}
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		ssize_t n = read(0, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0) {
			usleep(100000);
			continue;
		}
		len += (size_t)n;
		buf[len] = 0;
		if (strstr(buf, want))
			return;
		if (len > sizeof(buf) / 2) { /* keep the tail */
			memmove(buf, buf + len - 128, 128);
			len = 128;
		}
	}
}

/* ---- sysfs helpers ---- */

static int sysfs_read(const char *bdf, const char *attr, char *out, size_t sz)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, out, sz - 1);
	int e = errno;
	close(fd);
	if (n < 0)
		return -e;
	out[n] = 0;
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = 0;
	return 0;
}

static int sysfs_write(const char *bdf, const char *attr, const char *val)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/%s", bdf, attr);
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, val, strlen(val));
	int e = errno;
	close(fd);
	return n < 0 ? -e : 0;
}

static int cfg_fd_open(const char *bdf, int flags)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/config", bdf);
	return open(path, flags);
}

/* Walk the standard capability list of a 256+ byte config image. */
static int find_cap(const uint8_t *cfg, size_t len, uint8_t id)
{
	if (len < 64 || !(cfg[PCI_STATUS] & PCI_STATUS_CAP_LIST))
		return 0;
	int pos = cfg[PCI_CAPABILITY_LIST] & ~3;
	for (int n = 0; pos >= 0x40 && pos + 2 <= (int)len && n < 48; n++) {
		if (cfg[pos] == id)
			return pos;
		pos = cfg[pos + 1] & ~3;
	}
	return 0;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t le32(const uint8_t *p) { return (uint32_t)le16(p) | (uint32_t)le16(p + 2) << 16; }

/* ---- find ---- */

static int cmd_find(void)
{
	DIR *d = opendir("/sys/bus/pci/devices");
	struct dirent *e;
	if (!d)
		return 1;
	while ((e = readdir(d))) {
		char v[32], dv[32];
		if (e->d_name[0] == '.')
			continue;
		if (sysfs_read(e->d_name, "vendor", v, sizeof(v)) ||
		    sysfs_read(e->d_name, "device", dv, sizeof(dv)))
			continue;
		if (strtoul(v, NULL, 0) == VENDOR && strtoul(dv, NULL, 0) == DEVICE) {
			printf("%s\n", e->d_name);
			closedir(d);
			return 0;
		}
	}
	closedir(d);
	return 1;
}

/* ---- enum ---- */

static int cmd_enum(const char *bdf)
{
	uint8_t cfg[4096];
	char v[32], dv[32];
	int fd = cfg_fd_open(bdf, O_RDONLY);
	if (fd < 0) {
		fail("enum-config", "open config: %s", strerror(errno));
		return 1;
	}
	ssize_t n = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	if (n < 256) {
		fail("enum-config", "read config: %zd bytes (%s)", n, strerror(errno));
		return 1;
	}
	sysfs_read(bdf, "vendor", v, sizeof(v));
	sysfs_read(bdf, "device", dv, sizeof(dv));
	say("E2E: info %s vendor %s device %s class %02x%02x%02x, config %zd bytes", bdf, v, dv,
	    cfg[PCI_CLASS_PROG + 2], cfg[PCI_CLASS_PROG + 1], cfg[PCI_CLASS_PROG], n);
	check(le16(cfg) == VENDOR && le16(cfg + 2) == DEVICE && strtoul(v, NULL, 0) == VENDOR &&
		      strtoul(dv, NULL, 0) == DEVICE,
	      "enum-id", "config reads %04x:%04x, sysfs %s:%s", le16(cfg), le16(cfg + 2), v, dv);

	int pm = find_cap(cfg, (size_t)n, PCI_CAP_ID_PM);
	if (pm) {
		uint16_t pmc = le16(cfg + pm + PCI_PM_PMC), pmcsr = le16(cfg + pm + PCI_PM_CTRL);
		say("E2E: info PM cap at 0x%x: PMC 0x%04x PMCSR 0x%04x", pm, pmc, pmcsr);
		check((pmc & PCI_PM_CAP_VER_MASK) == 3, "enum-pm-cap", "PM version %d, expected 3",
		      pmc & PCI_PM_CAP_VER_MASK);
	} else {
		fail("enum-pm-cap", "no PM capability in the capability list");
	}
	int msix = find_cap(cfg, (size_t)n, PCI_CAP_ID_MSIX);
	if (msix) {
		uint16_t ctl = le16(cfg + msix + PCI_MSIX_FLAGS);
		uint32_t tbl = le32(cfg + msix + PCI_MSIX_TABLE), pba = le32(cfg + msix + PCI_MSIX_PBA);
		say("E2E: info MSI-X cap at 0x%x: %d vectors, table BAR%u+0x%x, PBA BAR%u+0x%x", msix,
		    (ctl & PCI_MSIX_FLAGS_QSIZE) + 1, tbl & 7, tbl & ~7u, pba & 7, pba & ~7u);
		check((ctl & PCI_MSIX_FLAGS_QSIZE) + 1 == 4 && (tbl & 7) == 4, "enum-msix-cap",
		      "%d vectors, table in BAR%u (expected 4 vectors in BAR4)",
		      (ctl & PCI_MSIX_FLAGS_QSIZE) + 1, tbl & 7);
	} else {
		fail("enum-msix-cap", "no MSI-X capability in the capability list");
	}
	int exp = find_cap(cfg, (size_t)n, PCI_CAP_ID_EXP);
	if (exp) {
		uint16_t flags = le16(cfg + exp + PCI_EXP_FLAGS);
		uint32_t devcap = le32(cfg + exp + PCI_EXP_DEVCAP);
		say("E2E: info PCIe cap at 0x%x: flags 0x%04x (type %d) DEVCAP 0x%08x (FLR %s)", exp,
		    flags, (flags & PCI_EXP_FLAGS_TYPE) >> 4, devcap,
		    devcap & PCI_EXP_DEVCAP_FLR ? "yes" : "no");
		check((flags & PCI_EXP_FLAGS_VERS) == 2, "enum-pcie-cap", "PCIe cap version %d",
		      flags & PCI_EXP_FLAGS_VERS);
	} else {
		fail("enum-pcie-cap", "no PCI Express capability in the capability list");
	}
	check(cfg[PCI_INTERRUPT_PIN] == 1, "enum-intx-pin", "interrupt pin %d", cfg[PCI_INTERRUPT_PIN]);
	return nfail ? 1 : 0;
}

/* ---- the guest's vfio-pci ---- */

struct vdev {
	int container, group, fd;
	struct vfio_device_info info;
	struct vfio_region_info cfg, bar0;
	const char *bdf;
};

static int vdev_open(struct vdev *v, const char *bdf, const char *check_name)
{
	char link[256], path[300], target[256];
	memset(v, 0, sizeof(*v));
	v->container = v->group = v->fd = -1;
	v->bdf = bdf;

	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n < 0) {
		fail(check_name, "no IOMMU group for %s (%s): is the vIOMMU on?", bdf, strerror(errno));
		return -1;
	}
	target[n] = 0;
	snprintf(path, sizeof(path), "/dev/vfio/%s", basename(target));

	v->container = open("/dev/vfio/vfio", O_RDWR);
	if (v->container < 0) {
		fail(check_name, "open /dev/vfio/vfio: %s", strerror(errno));
		return -1;
	}
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0) {
		fail(check_name, "container: no VFIO API %d / TYPE1v2", VFIO_API_VERSION);
		return -1;
	}
	v->group = open(path, O_RDWR);
	if (v->group < 0) {
		fail(check_name, "open %s: %s", path, strerror(errno));
		return -1;
	}
	struct vfio_group_status st = { .argsz = sizeof(st) };
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &st) || !(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		fail(check_name, "group %s not viable (flags 0x%x)", path, st.flags);
		return -1;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container)) {
		fail(check_name, "VFIO_GROUP_SET_CONTAINER: %s", strerror(errno));
		return -1;
	}
	if (ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
		fail(check_name, "VFIO_SET_IOMMU(TYPE1v2): %s", strerror(errno));
		return -1;
	}
	v->fd = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->fd < 0) {
		fail(check_name, "VFIO_GROUP_GET_DEVICE_FD(%s): %s", bdf, strerror(errno));
		return -1;
	}
	v->info.argsz = sizeof(v->info);
	if (ioctl(v->fd, VFIO_DEVICE_GET_INFO, &v->info)) {
		fail(check_name, "VFIO_DEVICE_GET_INFO: %s", strerror(errno));
		return -1;
	}
	v->cfg.argsz = v->bar0.argsz = sizeof(v->cfg);
	v->cfg.index = VFIO_PCI_CONFIG_REGION_INDEX;
	v->bar0.index = VFIO_PCI_BAR0_REGION_INDEX;
	if (ioctl(v->fd, VFIO_DEVICE_GET_REGION_INFO, &v->cfg) ||
	    ioctl(v->fd, VFIO_DEVICE_GET_REGION_INFO, &v->bar0)) {
		fail(check_name, "VFIO_DEVICE_GET_REGION_INFO: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void vdev_close(struct vdev *v)
{
	if (v->fd >= 0)
		close(v->fd);
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	v->fd = v->group = v->container = -1;
}

static int cfg_rd(struct vdev *v, unsigned off, unsigned len, uint32_t *val)
{
	uint32_t x = 0;
	if (pread(v->fd, &x, len, (off_t)(v->cfg.offset + off)) != (ssize_t)len)
		return errno ? -errno : -EIO;
	*val = x;
	return 0;
}

static int cfg_wr(struct vdev *v, unsigned off, unsigned len, uint32_t val)
{
	if (pwrite(v->fd, &val, len, (off_t)(v->cfg.offset + off)) != (ssize_t)len)
		return errno ? -errno : -EIO;
	return 0;
}

static int bar_rd(struct vdev *v, unsigned reg, uint32_t *val)
{
	uint32_t x;
	if (pread(v->fd, &x, 4, (off_t)(v->bar0.offset + reg)) != 4)
		return errno ? -errno : -EIO;
	*val = x;
	return 0;
}

static int bar_wr(struct vdev *v, unsigned reg, uint32_t val)
{
	if (pwrite(v->fd, &val, 4, (off_t)(v->bar0.offset + reg)) != 4)
		return errno ? -errno : -EIO;
	return 0;
}

static uint32_t bar_get(struct vdev *v, unsigned reg)
{
	uint32_t x = 0xffffffffu;
	int rc = bar_rd(v, reg, &x);
	if (rc)
		say("E2E: info BAR0 read 0x%x failed: %s", reg, strerror(-rc));
	return x;
}

static int set_command(struct vdev *v, uint16_t bits)
{
	uint32_t cmd;
	int rc = cfg_rd(v, PCI_COMMAND, 2, &cmd);
	if (!rc)
		rc = cfg_wr(v, PCI_COMMAND, 2, (cmd | bits) & 0xffff);
	return rc;
}

static int vdev_find_cap(struct vdev *v, uint8_t id)
{
	uint8_t cfg[256];
	if (pread(v->fd, cfg, sizeof(cfg), (off_t)v->cfg.offset) != (ssize_t)sizeof(cfg))
		return 0;
	return find_cap(cfg, sizeof(cfg), id);
}

static int set_irqs(struct vdev *v, uint32_t flags, uint32_t index, uint32_t count, const int *fds)
{
	char buf[sizeof(struct vfio_irq_set) + 8 * sizeof(int)];
	struct vfio_irq_set *s = (struct vfio_irq_set *)buf;
	size_t dlen = (flags & VFIO_IRQ_SET_DATA_EVENTFD) ? count * sizeof(int) : 0;
	memset(buf, 0, sizeof(buf));
	s->argsz = (uint32_t)(sizeof(*s) + dlen);
	s->flags = flags;
	s->index = index;
	s->start = 0;
	s->count = count;
	if (dlen)
		memcpy(s->data, fds, dlen);
	return ioctl(v->fd, VFIO_DEVICE_SET_IRQS, s) ? -errno : 0;
}

/* Wait for the eventfd; returns the counter read, 0 on timeout. */
static uint64_t wait_efd(int efd, int timeout_ms)
{
	struct pollfd p = { .fd = efd, .events = POLLIN };
	uint64_t cnt = 0;
	if (poll(&p, 1, timeout_ms) == 1 && read(efd, &cnt, sizeof(cnt)) == sizeof(cnt))
		return cnt;
	return 0;
}

/* ---- dma ---- */

static int cmd_dma(const char *bdf, const char *mode)
{
	bool msix = !strcmp(mode, "msix");
	char name_open[64], name_irq[64], name_copy[64];
	struct vdev v;
	int rc;

	snprintf(name_open, sizeof(name_open), "dma-%s-setup", mode);
	if (vdev_open(&v, bdf, name_open))
		return 1;

	unsigned index = msix ? VFIO_PCI_MSIX_IRQ_INDEX : VFIO_PCI_INTX_IRQ_INDEX;
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = index };
	if (ioctl(v.fd, VFIO_DEVICE_GET_IRQ_INFO, &ii) || ii.count < 1) {
		fail(name_open, "GET_IRQ_INFO(%s): count %u (%s)", mode, ii.count, strerror(errno));
		goto out;
	}
	say("E2E: info %s: %u vector(s), flags 0x%x", mode, ii.count, ii.flags);

	uint8_t *buf = mmap(NULL, 2 * DMA_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED) {
		fail(name_open, "mmap: %s", strerror(errno));
		goto out;
	}
	uint8_t *src = buf, *dst = buf + DMA_LEN;
	struct vfio_iommu_type1_dma_map map = {
		.argsz = sizeof(map),
		.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
		.vaddr = (uintptr_t)buf,
		.iova = DMA_IOVA,
		.size = 2 * DMA_LEN,
	};
	if (ioctl(v.container, VFIO_IOMMU_MAP_DMA, &map)) {
		fail(name_open, "VFIO_IOMMU_MAP_DMA: %s", strerror(errno));
		goto out;
	}
	if ((rc = set_command(&v, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER))) {
		fail(name_open, "COMMAND write: %s", strerror(-rc));
		goto out;
	}
	uint32_t id = bar_get(&v, R_ID);
	if (id != DEMO_ID) {
		fail(name_open, "BAR0 ID reads 0x%08x, expected 0x%08x", id, DEMO_ID);
		goto out;
	}
	int efd = eventfd(0, EFD_CLOEXEC);
	rc = set_irqs(&v, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, index, 1, &efd);
	if (rc) {
		fail(name_open, "SET_IRQS %s eventfd: %s", mode, strerror(-rc));
		goto out;
	}
	pass(name_open);

	bar_wr(&v, R_INT_STATUS, 3);
	bar_wr(&v, R_INT_MASK, 3);  /* done and error: the interrupt does not depend on the copy */
	bar_wr(&v, R_IRQ_VECTOR, 0);
	bar_wr(&v, R_DMA_SRC, (uint32_t)DMA_IOVA);
	bar_wr(&v, R_DMA_SRC + 4, (uint32_t)(DMA_IOVA >> 32));
	bar_wr(&v, R_DMA_DST, (uint32_t)(DMA_IOVA + DMA_LEN));
	bar_wr(&v, R_DMA_DST + 4, (uint32_t)((DMA_IOVA + DMA_LEN) >> 32));
	bar_wr(&v, R_DMA_LEN, DMA_LEN);

	for (int job = 1; job <= 2; job++) {
		snprintf(name_irq, sizeof(name_irq), "dma-%s-irq-%d", mode, job);
		snprintf(name_copy, sizeof(name_copy), "dma-%s-copy-%d", mode, job);
		for (unsigned i = 0; i < DMA_LEN; i++)
			src[i] = (uint8_t)(i * 7 + job * 13 + (msix ? 1 : 0x80));
		memset(dst, 0, DMA_LEN);
		uint32_t count0 = bar_get(&v, R_DMA_COUNT);

		long long t0 = now_ms();
		if ((rc = bar_wr(&v, R_DOORBELL, 1))) {
			fail(name_irq, "DOORBELL write: %s", strerror(-rc));
			fail(name_copy, "no job started");
			continue;
		}
		uint64_t got = wait_efd(efd, IRQ_TIMEOUT_MS);
		long long dt = now_ms() - t0;
		uint32_t st = bar_get(&v, R_STATUS), is = bar_get(&v, R_INT_STATUS);
		uint32_t res = bar_get(&v, R_DMA_RESULT), count = bar_get(&v, R_DMA_COUNT);
		say("E2E: info %s job %d: eventfd %s after %lld ms; STATUS 0x%x INT_STATUS 0x%x "
		    "DMA_RESULT %u DMA_COUNT %u (was %u)",
		    mode, job, got ? "signalled" : "NOT signalled", dt, st, is, res, count, count0);
		if (!got) {
			/* maybe the job is merely slow: give the copy the same time */
			for (int i = 0; i < 50 && !(bar_get(&v, R_STATUS) & 2); i++)
				usleep(100000);
			st = bar_get(&v, R_STATUS);
			res = bar_get(&v, R_DMA_RESULT);
			count = bar_get(&v, R_DMA_COUNT);
			is = bar_get(&v, R_INT_STATUS);
		}
		check(got != 0, name_irq, "%s eventfd not signalled within %d ms (STATUS 0x%x, "
		      "INT_STATUS 0x%x: the job %s)", mode, IRQ_TIMEOUT_MS, st, is,
		      (st & 2) ? "completed" : "did not complete");
		bool same = !memcmp(src, dst, DMA_LEN);
		unsigned firstdiff = 0;
		while (firstdiff < DMA_LEN && src[firstdiff] == dst[firstdiff])
			firstdiff++;
		check(same && res == 0 && count == count0 + 1 && (is & 1), name_copy,
		      "copy %s (first difference at byte %u: 0x%02x vs 0x%02x), DMA_RESULT %u, "
		      "DMA_COUNT %u -> %u, INT_STATUS 0x%x", same ? "ok" : "WRONG", firstdiff,
		      firstdiff < DMA_LEN ? src[firstdiff] : 0, firstdiff < DMA_LEN ? dst[firstdiff] : 0,
		      res, count0, count, is);
		/* acknowledge: clear the cause (drops INTx), then unmask INTx */
		bar_wr(&v, R_INT_STATUS, 3);
		if (!msix) {
			rc = set_irqs(&v, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, index, 1, NULL);
			if (rc)
				say("E2E: info INTx unmask: %s", strerror(-rc));
		}
	}
	/* the level must be gone: no further interrupt once acknowledged */
	if (!msix) {
		uint64_t extra = wait_efd(efd, 500);
		check(!extra, "dma-intx-deasserted", "INTx fired again after INT_STATUS was cleared");
	}
	set_irqs(&v, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, index, 0, NULL);
out:
	vdev_close(&v);
	return nfail ? 1 : 0;
}

/* ---- pm: PMCSR D3hot / D0 written through the VFIO config region ---- */

static const char *dstate(unsigned s)
{
	static const char *n[] = { "D0", "D1", "D2", "D3hot" };
	return n[s & 3];
}

static int cmd_pm(const char *bdf)
{
	struct vdev v;
	uint32_t pmcsr = 0, id;
	int rc;

	if (vdev_open(&v, bdf, "pmcsr-setup"))
		return 1;
	int pm = vdev_find_cap(&v, PCI_CAP_ID_PM);
	if (!pm) {
		fail("pmcsr-setup", "no PM capability through VFIO");
		goto out;
	}
	set_command(&v, PCI_COMMAND_MEMORY);
	bar_wr(&v, R_SCRATCH, 0x5ca1ab1e);
	cfg_rd(&v, pm + PCI_PM_CTRL, 2, &pmcsr);
	say("E2E: info PMCSR at 0x%x reads 0x%04x (%s) before the test", pm + PCI_PM_CTRL, pmcsr,
	    dstate(pmcsr));

	rc = cfg_wr(&v, pm + PCI_PM_CTRL, 2, (pmcsr & ~PCI_PM_CTRL_STATE_MASK) | 3);
	cfg_rd(&v, pm + PCI_PM_CTRL, 2, &pmcsr);
	char sys[32] = "?";
	sysfs_read(bdf, "power_state", sys, sizeof(sys));
	check(!rc && (pmcsr & 3) == 3, "pmcsr-d3hot-guest", "write D3hot: %s, PMCSR reads 0x%04x (%s)",
	      rc ? strerror(-rc) : "ok", pmcsr, dstate(pmcsr));
	say("E2E: info guest power_state %s", sys);
	hold("pmcsr-d3hot");

	rc = cfg_wr(&v, pm + PCI_PM_CTRL, 2, pmcsr & ~PCI_PM_CTRL_STATE_MASK);
	cfg_rd(&v, pm + PCI_PM_CTRL, 2, &pmcsr);
	check(!rc && (pmcsr & 3) == 0, "pmcsr-d0-guest", "write D0: %s, PMCSR reads 0x%04x (%s)",
	      rc ? strerror(-rc) : "ok", pmcsr, dstate(pmcsr));
	set_command(&v, PCI_COMMAND_MEMORY);
	id = bar_get(&v, R_ID);
	uint32_t scratch = bar_get(&v, R_SCRATCH);
	/* nosoftrst=on (the demo's default): D3hot -> D0 keeps internal state */
	check(id == DEMO_ID && scratch == 0x5ca1ab1e, "pmcsr-d0-bar-access",
	      "after D3hot->D0: ID 0x%08x SCRATCH 0x%08x (expected 0x%08x, 0x5ca1ab1e: NoSoftRst+)",
	      id, scratch, DEMO_ID);
	hold("pmcsr-d0");
out:
	vdev_close(&v);
	return nfail ? 1 : 0;
}

/* ---- flr ---- */

static int mmap_bar0(const char *bdf, volatile uint32_t **regs, int *fdp)
{
	char path[256];
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/resource0", bdf);
	int fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		return -errno;
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		int e = errno;
		close(fd);
		return -e;
	}
	*regs = p;
	*fdp = fd;
	return 0;
}

static int sysfs_set_command(const char *bdf, uint16_t bits)
{
	uint16_t cmd;
	int fd = cfg_fd_open(bdf, O_RDWR);
	if (fd < 0)
		return -errno;
	int rc = 0;
	if (pread(fd, &cmd, 2, PCI_COMMAND) != 2)
		rc = -errno;
	cmd |= bits;
	if (!rc && pwrite(fd, &cmd, 2, PCI_COMMAND) != 2)
		rc = -errno;
	close(fd);
	return rc;
}

static int cmd_flr(const char *bdf)
{
	char methods[128] = "";
	int rc = sysfs_read(bdf, "reset_method", methods, sizeof(methods));
	say("E2E: info guest reset_method: %s", rc ? strerror(-rc) : methods);
	check(!rc && strstr(methods, "flr"), "flr-method", "guest reset_method is \"%s\", no flr",
	      methods);

	/* 1. VFIO_DEVICE_RESET from the guest's vfio-pci */
	struct vdev v;
	if (!vdev_open(&v, bdf, "flr-vfio")) {
		uint32_t before, after, id;
		set_command(&v, PCI_COMMAND_MEMORY);
		bar_wr(&v, R_SCRATCH, 0xa5a5f00d);
		before = bar_get(&v, R_SCRATCH);
		if (!(v.info.flags & VFIO_DEVICE_FLAGS_RESET)) {
			fail("flr-vfio", "the guest's vfio-pci offers no reset (flags 0x%x)", v.info.flags);
		} else if (before != 0xa5a5f00d) {
			fail("flr-vfio", "SCRATCH reads 0x%08x after writing 0xa5a5f00d", before);
		} else {
			rc = ioctl(v.fd, VFIO_DEVICE_RESET) ? -errno : 0;
			set_command(&v, PCI_COMMAND_MEMORY);
			after = bar_get(&v, R_SCRATCH);
			id = bar_get(&v, R_ID);
			check(!rc && after == 0 && id == DEMO_ID, "flr-vfio",
			      "VFIO_DEVICE_RESET: %s; SCRATCH 0x%08x -> 0x%08x (expected 0), ID 0x%08x",
			      rc ? strerror(-rc) : "ok", before, after, id);
		}
		vdev_close(&v);
	}

	/* 2. sysfs reset, BAR0 through resource0 (nobody has the VFIO device open) */
	volatile uint32_t *regs;
	int fd;
	if ((rc = sysfs_set_command(bdf, PCI_COMMAND_MEMORY))) {
		fail("flr-sysfs", "COMMAND.MEM through sysfs config: %s", strerror(-rc));
		return 1;
	}
	if ((rc = mmap_bar0(bdf, &regs, &fd))) {
		fail("flr-sysfs", "mmap resource0: %s", strerror(-rc));
		return 1;
	}
	regs[R_SCRATCH / 4] = 0x600dcafe;
	uint32_t before = regs[R_SCRATCH / 4];
	rc = sysfs_write(bdf, "reset", "1");
	uint16_t cmd = 0;
	int cfd = cfg_fd_open(bdf, O_RDONLY);
	if (cfd >= 0) {
		if (pread(cfd, &cmd, 2, PCI_COMMAND) != 2)
			cmd = 0;
		close(cfd);
	}
	if (!(cmd & PCI_COMMAND_MEMORY))
		sysfs_set_command(bdf, PCI_COMMAND_MEMORY);
	uint32_t after = regs[R_SCRATCH / 4], id = regs[R_ID / 4];
	check(!rc && before == 0x600dcafe && after == 0 && id == DEMO_ID, "flr-sysfs",
	      "write reset: %s; SCRATCH 0x%08x -> 0x%08x (expected 0x600dcafe -> 0), ID 0x%08x",
	      rc ? strerror(-rc) : "ok", before, after, id);
	munmap((void *)regs, 4096);
	close(fd);
	return nfail ? 1 : 0;
}

/* ---- rpm: the guest's vfio-pci runtime-suspends the unused device ---- */

static int wait_runtime_status(const char *bdf, const char *want, int timeout_ms, char *got, size_t sz)
{
	long long end = now_ms() + timeout_ms;
	do {
		if (!sysfs_read(bdf, "power/runtime_status", got, sz) && !strcmp(got, want))
			return 0;
		usleep(50000);
	} while (now_ms() < end);
	return -1;
}

static int cfg_pmcsr_sysfs(const char *bdf, uint16_t *pmcsr)
{
	uint8_t cfg[256];
	int fd = cfg_fd_open(bdf, O_RDONLY);
	if (fd < 0)
		return -errno;
	ssize_t n = pread(fd, cfg, sizeof(cfg), 0);
	close(fd);
	int pm = n == (ssize_t)sizeof(cfg) ? find_cap(cfg, sizeof(cfg), PCI_CAP_ID_PM) : 0;
	if (!pm)
		return -ENOENT;
	*pmcsr = le16(cfg + pm + PCI_PM_CTRL);
	return 0;
}

static int cmd_rpm(const char *bdf)
{
	char st[64] = "", drv[256] = "", ps[32] = "?";
	char link[256];
	snprintf(link, sizeof(link), "/sys/bus/pci/devices/%s/driver", bdf);
	ssize_t n = readlink(link, drv, sizeof(drv) - 1);
	drv[n > 0 ? n : 0] = 0;
	sysfs_read(bdf, "power/runtime_status", st, sizeof(st));
	say("E2E: info driver %s, runtime_status %s before power/control=auto",
	    n > 0 ? basename(drv) : "(none)", st);

	int rc = sysfs_write(bdf, "power/control", "auto");
	if (rc) {
		fail("rpm-guest-suspended", "write power/control=auto: %s", strerror(-rc));
		return 1;
	}
	rc = wait_runtime_status(bdf, "suspended", 10000, st, sizeof(st));
	sysfs_read(bdf, "power_state", ps, sizeof(ps));
	check(!rc, "rpm-guest-suspended", "power/runtime_status is \"%s\" 10 s after control=auto "
	      "(power_state %s)", st, ps);
	uint16_t pmcsr = 0xffff;
	rc = cfg_pmcsr_sysfs(bdf, &pmcsr);
	check(!rc && (pmcsr & 3) == 3 && !strcmp(ps, "D3hot"), "rpm-guest-d3hot",
	      "guest power_state %s, PMCSR 0x%04x (%s)", ps, pmcsr, rc ? strerror(-rc) : "read ok");
	hold("rpm-suspended");

	rc = sysfs_write(bdf, "power/control", "on");
	if (!rc)
		rc = wait_runtime_status(bdf, "active", 10000, st, sizeof(st));
	sysfs_read(bdf, "power_state", ps, sizeof(ps));
	check(!rc && !strcmp(ps, "D0"), "rpm-guest-resumed",
	      "after power/control=on: runtime_status \"%s\", power_state %s", st, ps);
	hold("rpm-resumed");
	return nfail ? 1 : 0;
}

/* ---- dirty: leave state behind for the poweroff check ---- */

static int cmd_dirty(const char *bdf)
{
	volatile uint32_t *regs;
	int fd, rc;
	if ((rc = sysfs_set_command(bdf, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER)) ||
	    (rc = mmap_bar0(bdf, &regs, &fd))) {
		fail("poweroff-prepare", "%s", strerror(-rc));
		return 1;
	}
	regs[R_SCRATCH / 4] = 0xdeadbeef;
	regs[R_INT_MASK / 4] = 3;
	uint32_t s = regs[R_SCRATCH / 4];
	check(s == 0xdeadbeef, "poweroff-prepare", "SCRATCH reads 0x%08x", s);
	munmap((void *)regs, 4096);
	close(fd);
	return nfail ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "find"))
		return cmd_find();
	if (argc >= 3 && !strcmp(argv[1], "enum"))
		return cmd_enum(argv[2]);
	if (argc >= 4 && !strcmp(argv[1], "dma") &&
	    (!strcmp(argv[3], "msix") || !strcmp(argv[3], "intx")))
		return cmd_dma(argv[2], argv[3]);
	if (argc >= 3 && !strcmp(argv[1], "pm"))
		return cmd_pm(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "flr"))
		return cmd_flr(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "rpm"))
		return cmd_rpm(argv[2]);
	if (argc >= 3 && !strcmp(argv[1], "dirty"))
		return cmd_dirty(argv[2]);
	if (argc >= 2 && !strcmp(argv[1], "hold"))
		return hold(argc >= 3 ? argv[2] : "x"), 0;
	fprintf(stderr, "usage: e2e-guest find | enum BDF | dma BDF msix|intx | pm BDF | flr BDF | "
			"rpm BDF | dirty BDF | hold TAG\n");
	return 2;
}
