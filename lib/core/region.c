/* Regions: BAR access (memory decode, the model's bar_rw, memfd-backed
 * memory), the revocation of a client's BAR mappings (contract §5: the
 * memfd is truncated so a mapping faults, and the server keeps a copy), the
 * client's view of config writes, and region descriptions.
 *
 * A leaf of the core: it reads the PM state (power state, promotion,
 * engaged) but changes none of it; pm_state.c decides when mappings follow
 * and calls region_mmap_update under its locks.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core.h"

/* --- mmap revocation (contract §5) --- */

/* The copy lives in its own anonymous mapping: pages never written cost
 * no memory (they read as the zero page), so an idle device whose BAR
 * holds nothing keeps nothing while suspended. A suspended demo device
 * held a whole 1 MiB copy of its BAR2 before (docs/performance.md). */
void *region_shadow_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	/* one written byte must not cost a 2 MiB huge page */
	madvise(p, size, MADV_NOHUGEPAGE);
	return p;
}

void region_shadow_free(struct core_bar *b)
{
	if (b->shadow)
		munmap(b->shadow, b->size);
	b->shadow = NULL;
}

/* Copies the memfd's data into the fresh copy, skipping its holes (never
 * written, they read as zeros, as the copy already does). The holes are
 * found with SEEK_DATA/SEEK_HOLE on a file description of our own: the
 * memfd's is shared with the client, whose file offset must not move.
 * Without one (no /proc), everything is copied. Returns core_copy's. */
static int copy_data(struct core_bar *b)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", b->memfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return core_copy(b->shadow, b->mem, b->size);
	int rc = 0;
	off_t off = 0, size = (off_t)b->size;
	while (!rc && off < size) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0) {
			/* ENXIO: no data past off; else copy the rest */
			if (errno != ENXIO)
				rc = core_copy((uint8_t *)b->shadow + off, (uint8_t *)b->mem + off,
					       (size_t)(size - off));
			break;
		}
		if (d >= size)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if (h < 0 || h > size)
			h = size;
		rc = core_copy((uint8_t *)b->shadow + d, (uint8_t *)b->mem + d, (size_t)(h - d));
		off = h;
	}
	close(fd);
	return rc;
}

static bool page_is_zero(const uint8_t *p, size_t n)
{
	const uint64_t *w = (const uint64_t *)p;
	for (size_t i = 0; i < n / sizeof(*w); i++)
		if (w[i])
			return false;
	return true;
}

/* Writes back the copy's non-zero pages into the re-grown memfd (zeros
 * already): the BAR's memory is allocated again only where it holds
 * data. Reading a page of the copy never written maps the zero page. */
static void restore_data(struct core_bar *b)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), size = (size_t)b->size;
	const uint8_t *s = b->shadow;
	uint8_t *m = b->mem;
	for (size_t off = 0; off < size;) {
		size_t n = size - off < pg ? size - off : pg;
		if (page_is_zero(s + off, n)) {
			off += n;
			continue;
		}
		size_t end = off + n;   /* a run of non-zero pages, one copy */
		while (end < size && !page_is_zero(s + end, size - end < pg ? size - end : pg))
			end += size - end < pg ? size - end : pg;
		if (core_copy(m + off, s + off, end - off))
			return;   /* only a racing shrink by the client */
		off = end;
	}
}

static void bar_revoke(struct core_bar *b)
{
	if (b->memfd < 0 || b->revoked)
		return;
	/* Keep a copy: contents survive D3hot and an engaged-awake device. */
	b->shadow = region_shadow_alloc(b->size);
	if (b->shadow && copy_data(b)) {
		/* the client shrank the memfd: lost */
		region_shadow_free(b);
		b->shadow = region_shadow_alloc(b->size);
	}
	if (ftruncate(b->memfd, 0) < 0) {
		region_shadow_free(b);
		return;
	}
	b->revoked = true;
}

static void bar_restore(struct core_bar *b)
{
	if (!b->revoked)
		return;
	if (ftruncate(b->memfd, (off_t)b->size) < 0)
		return;
	if (b->shadow)
		restore_data(b);
	region_shadow_free(b);
	b->revoked = false;
}

/* A new, empty memfd for BAR idx (its name shows in /proc/PID/maps and in
 * the client's fd table). Returns the descriptor or a negative errno. */
int region_bar_memfd(struct vfpm_device *dev, unsigned idx)
{
	char nm[64];
	snprintf(nm, sizeof(nm), "vfpm-%s-bar%u", dev->name, idx);
	int fd = memfd_create(nm, MFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Nothing a client did to BAR memory outlives its session: the client was
 * given the memfd and may keep it after it disconnects, grow it, map it,
 * read and write it. So the BAR gets a new file: mapped over the old one
 * at the same address in the server (a model's pointer from
 * vfpm_dev_bar_mem stays valid and now reaches the new file), the old
 * descriptor closed. The former client's copy then reaches only the old
 * file, which nobody else uses; the next client and the model start from
 * power-on zeros at the BAR's size. A revoked BAR's new file is empty, as
 * the old one was (bar_restore extends it). A reset within a session keeps
 * BAR memory, as RAM behind a BAR keeps its bytes across a function reset.
 * memory_lock held for write. */
static int bar_renew(struct vfpm_device *dev, unsigned idx)
{
	struct core_bar *b = &dev->bars[idx];
	if (b->memfd < 0)
		return 0;
	int fd = region_bar_memfd(dev, idx);
	if (fd < 0)
		return fd;
	int rc = 0;
	if (!b->revoked && ftruncate(fd, (off_t)b->size) < 0)
		rc = -errno;
	/* MAP_FIXED replaces the old mapping in one step: no instant where a
	 * model thread's access finds the range unmapped */
	if (!rc && mmap(b->mem, b->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) ==
			   MAP_FAILED) {
		rc = -errno;
		/* a failed MAP_FIXED may have removed the old mapping: put it back */
		mmap(b->mem, b->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, b->memfd, 0);
	}
	if (rc) {
		close(fd);
		return rc;
	}
	close(b->memfd);
	b->memfd = fd;
	region_shadow_free(b);
	b->stale = false;
	return 0;
}

/* No new file could be made: the old one is emptied (what the former
 * client grew it to is freed, its data gone) and the BAR is marked stale,
 * so that the next open retries and refuses the client if it fails again
 * (region_renew_stale). memory_lock held for write. */
static void bar_scrub(struct core_bar *b)
{
	region_shadow_free(b);
	b->stale = true;
	if (ftruncate(b->memfd, 0) < 0)
		return;
	if (!b->revoked && ftruncate(b->memfd, (off_t)b->size) < 0)
		b->revoked = true;   /* no memory for it: it reads zeros, revoked */
}

/* D3cold: the device lost power, and its BAR memory with it. */
static void bar_drop(struct core_bar *b)
{
	if (b->memfd < 0)
		return;
	bar_revoke(b);
	region_shadow_free(b);
}

/* V3: a promoted device is in D3hot for its client whether or not it has
 * really suspended (power_control=on, say): its memory does not decode.
 * A VF decodes memory by its PF's VF MSE, not by its own COMMAND.MEM (a
 * VF's is hard-wired to 0; vfio-pci's no_command_memory case). */
bool region_mem_enabled(struct vfpm_device *dev)
{
	bool mem;
	if (dev->is_vf) {
		mem = sriov_vf_mse(dev->pf);
	} else {
		mutex_lock(&dev->lock);
		mem = pci_cfg_mem_enabled(&dev->cfg);
		mutex_unlock(&dev->lock);
	}
	return dev->pm.power_state < VFPM_D3HOT && !dev->pm.promoted && mem;
}

/* memory_lock held for write: mmap_allowed = memory_enabled && !engaged */
void region_mmap_update(struct vfpm_device *dev)
{
	bool allow = region_mem_enabled(dev) && !dev->pm.engaged;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (allow)
			bar_restore(&dev->bars[i]);
		else
			bar_revoke(&dev->bars[i]);
	}
}

/* memory_lock held for write: every memfd BAR revoked / dropped (D3cold:
 * the copy goes too) / scrubbed (the client is gone). */
void region_revoke_all(struct vfpm_device *dev)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		bar_revoke(&dev->bars[i]);
}

void region_drop_all(struct vfpm_device *dev)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		bar_drop(&dev->bars[i]);
}

int region_scrub_all(struct vfpm_device *dev)
{
	int first = 0;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		int rc = bar_renew(dev, i);
		if (rc) {
			bar_scrub(&dev->bars[i]);
			DLOG(dev, VFPM_LOG_ERR, "BAR%u: no new memory file for the next client: %s", i,
			     strerror(-rc));
			first = first ? first : rc;
		}
	}
	return first;
}

bool region_any_stale(struct vfpm_device *dev)
{
	bool stale = false;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		stale |= dev->bars[i].stale;
	return stale;
}

int region_renew_stale(struct vfpm_device *dev)
{
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (!dev->bars[i].stale)
			continue;
		int rc = bar_renew(dev, i);
		if (rc) {
			DLOG(dev, VFPM_LOG_ERR,
			     "BAR%u: still no new memory file: client refused: %s", i,
			     strerror(-rc));
			return rc;
		}
	}
	return 0;
}

bool region_any_revoked(struct vfpm_device *dev)
{
	bool revoked = false;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		revoked |= dev->bars[i].revoked;
	return revoked;
}

/* A model asks from its own threads, perhaps holding its own locks, which
 * it also holds in callbacks a BAR access makes under memory_lock: so no
 * memory_lock here (an order inversion with it, even between readers, is a
 * deadlock once a writer queues). The power state and the promotion are
 * stored atomically; COMMAND is read under dev->lock, a leaf lock. */
VFPM_EXPORT bool vfpm_dev_mem_decode(struct vfpm_device *dev)
{
	if (!dev)
		return false;
	int state = __atomic_load_n(&dev->pm.power_state, __ATOMIC_ACQUIRE);
	bool promoted = __atomic_load_n(&dev->pm.promoted, __ATOMIC_ACQUIRE);
	mutex_lock(&dev->lock);
	bool mem = pci_cfg_mem_enabled(&dev->cfg);
	mutex_unlock(&dev->lock);
	return state < VFPM_D3HOT && !promoted && mem;
}

/* The copy is made on first use, not when a resume from D3cold leaves
 * the device engaged-awake with its BAR memory gone: a calloc of the whole
 * BAR (1 MiB for the demo's BAR2, up to 1 GiB) was most of the resume
 * path in D3cold (~11 us of ~12, docs/performance.md), paid on every wake
 * although an engaged client rarely reads a BAR. Callers hold memory_lock
 * for read (region access) or nothing (vfpm_dev_bar_mem from a model
 * thread), so two of them may race here: the first copy installed wins. */
void *region_bar_shadow(struct vfpm_device *dev, unsigned bar)
{
	struct core_bar *b = &dev->bars[bar];
	void *s = __atomic_load_n(&b->shadow, __ATOMIC_ACQUIRE);
	if (s)
		return s;
	void *fresh = region_shadow_alloc(b->size);   /* lost in D3cold: reads zeros */
	if (!fresh)
		return NULL;
	if (__atomic_compare_exchange_n(&b->shadow, &s, fresh, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE))
		return fresh;
	munmap(fresh, b->size);
	return s;
}

VFPM_EXPORT void *vfpm_dev_bar_mem(struct vfpm_device *dev, unsigned bar)
{
	if (!dev || bar >= PCI_NUM_BARS || !dev->bars[bar].mem)
		return NULL;
	/* while access is revoked the bytes live in the server's copy */
	return dev->bars[bar].revoked ? region_bar_shadow(dev, bar) : dev->bars[bar].mem;
}

/* --- region access --- */

void region_desc(struct vfpm_device *dev, uint32_t region, uint64_t *size,
			uint32_t *flags)
{
	*size = 0;
	*flags = 0;
	if (region < PCI_NUM_BARS) {
		struct core_bar *b = &dev->bars[region];
		if (!b->size)
			return;
		*size = b->size;
		*flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
		if (b->memfd >= 0)
			*flags |= VFIO_REGION_INFO_FLAG_MMAP | VFIO_REGION_INFO_FLAG_CAPS;
	} else if (region == VFU_PCI_CONFIG) {
		*size = VPCI_CFG_SIZE;
		*flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
	}   /* the ROM, VGA and migration regions are absent: size 0 */
}

unsigned region_areas(struct vfpm_device *dev, uint32_t region,
			     struct vfu_sparse_area *areas, unsigned max)
{
	if (region >= PCI_NUM_BARS || dev->bars[region].memfd < 0 || !max)
		return 0;
	uint64_t size = dev->bars[region].size;
	if (!dev->msix_cap || dev->msix_bar != region) {
		areas[0] = (struct vfu_sparse_area){ 0, size };
		return 1;
	}
	/* Carve the MSI-X table and PBA (page-rounded) out of the area. */
	uint64_t holes[2][2] = {
		{ dev->msix_table_off, dev->msix_table_off + (uint64_t)dev->msix_nvec * 16 },
		{ dev->msix_pba_off, dev->msix_pba_off + ((dev->msix_nvec + 63) / 64) * 8 },
	};
	if (holes[0][0] > holes[1][0]) {
		uint64_t t0 = holes[0][0], t1 = holes[0][1];
		holes[0][0] = holes[1][0], holes[0][1] = holes[1][1];
		holes[1][0] = t0, holes[1][1] = t1;
	}
	unsigned n = 0;
	uint64_t pos = 0;
	for (int h = 0; h < 2 && n < max; h++) {
		uint64_t start = holes[h][0] & ~4095ull, end = (holes[h][1] + 4095) & ~4095ull;
		if (start > pos)
			areas[n++] = (struct vfu_sparse_area){ pos, start - pos };
		if (end > pos)
			pos = end;
	}
	if (pos < size && n < max)
		areas[n++] = (struct vfu_sparse_area){ pos, size - pos };
	return n;
}

/* The model's access callbacks run on the thread that serves the access;
 * message DMA asked from them could never see its reply. */
void region_cb_enter(struct vfpm_device *dev)
{
	__atomic_store_n(&dev->access_cb_thread, pthread_self(), __ATOMIC_RELAXED);
	atomic_store(&dev->access_cb_active, true);
}

void region_cb_exit(struct vfpm_device *dev)
{
	atomic_store(&dev->access_cb_active, false);
}

bool region_in_access_callback(struct vfpm_device *dev)
{
	return atomic_load(&dev->access_cb_active) &&
	       pthread_equal(__atomic_load_n(&dev->access_cb_thread, __ATOMIC_RELAXED),
			     pthread_self());
}

/* memory_lock read-held for memory BARs */
static int bar_rw_locked(struct vfpm_device *dev, unsigned idx, uint64_t off, void *buf,
			 uint32_t count, bool is_write)
{
	struct core_bar *b = &dev->bars[idx];
	if (dev->msix_cap && idx == dev->msix_bar && irq_msix_overlaps(dev, idx, off, count))
		return irq_msix_rw(dev, off, buf, count, is_write);
	if (b->memfd >= 0) {
		/* revoked: the server's copy holds the bytes (B23) */
		uint8_t *base = b->revoked ? region_bar_shadow(dev, idx) : b->mem;
		if (!base)
			return -ENOMEM;
		/* the client holds the memfd and may shrink it: -EFAULT, not SIGBUS */
		return is_write ? core_copy(base + off, buf, count) : core_copy(buf, base + off, count);
	}
	if (!dev->ops->bar_rw) {
		/* no backing: reads as zeros, writes ignored, like unclaimed space */
		if (!is_write)
			memset(buf, 0, count);
		return 0;
	}
	region_cb_enter(dev);
	int rc = dev->ops->bar_rw(dev->priv, idx, off, buf, count, is_write);
	region_cb_exit(dev);
	return rc;
}

int region_bar_rw(struct vfpm_device *dev, unsigned idx, uint64_t off, void *buf, uint32_t count,
		  bool is_write)
{
	struct core_bar *b = &dev->bars[idx];
	if (!b->size)
		return -EINVAL;
	if (off > b->size || count > b->size - off)
		return -EINVAL;
	if (b->flags & VFPM_BAR_IO)
		return bar_rw_locked(dev, idx, off, buf, count, is_write);
	/* As vfio-pci: a memory BAR does not decode while COMMAND.MEM is off
	 * or the device is in D3hot/D3cold (B24). Engaged is not part of it:
	 * region access still works while low power is engaged (B23). */
	rwlock_rdlock(&dev->pm.memory_lock);
	int rc = region_mem_enabled(dev) ? bar_rw_locked(dev, idx, off, buf, count, is_write) : -EIO;
	rwlock_unlock(&dev->pm.memory_lock);
	return rc;
}

/* vfio-pci gives the SR-IOV capability no writable bits: its user reads
 * the host's values and its writes there are dropped. The write is done
 * around the capability, the effects of both parts merged. */
int region_cfg_client_write_locked(struct vfpm_device *dev, unsigned off, const void *buf,
				   unsigned len, struct pci_effects *fx)
{
	unsigned cap = dev->sriov_cap, end = cap + PCI_EXT_CAP_SRIOV_SIZEOF;
	if (!cap || off >= end || off + len <= cap)
		return pci_cfg_write(&dev->cfg, off, buf, len, fx);
	struct pci_effects a = { 0 }, b = { 0 };
	int rc = 0;
	if (off < cap)
		rc = pci_cfg_write(&dev->cfg, off, buf, cap - off, &a);
	if (!rc && off + len > end)
		rc = pci_cfg_write(&dev->cfg, end, (const uint8_t *)buf + (end - off),
				   off + len - end, &b);
	if (fx) {
		/* COMMAND is below every extended capability: only a changes it */
		*fx = a;
		fx->flags = a.flags | b.flags;
		if (!(a.flags & PCI_FX_POWER))
			fx->power_state = b.power_state;
	}
	return rc;
}
