/* DMA: the table of the client's guest-memory mappings, and the model API
 * that reads and writes guest memory through it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

/* dma_lock held for write */
static void ent_release(struct vfpm_device *dev, struct dma_map_ent *e)
{
	if (e->host) {
		munmap(e->host, e->maplen);
		atomic_store(&dev->dma_mapped, atomic_load(&dev->dma_mapped) - e->maplen);
	}
	e->host = NULL;
}

/* dma_lock held for write */
static struct dma_map_ent *find_overlap(struct vfpm_device *dev, uint64_t iova, uint64_t size)
{
	for (size_t i = 0; i < dev->nmaps; i++) {
		struct dma_map_ent *e = &dev->maps[i];
		if (iova < e->iova + e->size && e->iova < iova + size)
			return e;
	}
	return NULL;
}

int dma_map(struct vfpm_device *dev, const struct vfu_dma_map *m, int fd)
{
	uint32_t prot = m->flags & (VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE);
	if (m->flags & ~(VFU_DMA_FLAG_READ | VFU_DMA_FLAG_WRITE))
		return -EINVAL;
	if (!m->size || m->addr + m->size < m->addr || m->size > (1ull << 43))
		return -EINVAL;
	/* the page size we advertise is 4 KiB: maps are page-aligned */
	if ((m->addr | m->size) & 4095)
		return -EINVAL;
	if (fd >= 0 && (m->offset & 4095))
		return -EINVAL;
	if (fd >= 0) {
		/* A window past the end of a file (memfd, tmpfs, hugetlbfs)
		 * maps, but the device's first copy there would raise SIGBUS
		 * and take the whole server down: refuse it now. (A client
		 * that shrinks the file later can still do that.) */
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -EINVAL;
		/* Guest memory is a file (memfd, shm, hugetlbfs): a device
		 * such as /dev/zero would give vfpmd private memory the client
		 * could make it fill. */
		if (!S_ISREG(st.st_mode))
			return -EINVAL;
		if (m->offset > (uint64_t)st.st_size || m->size > (uint64_t)st.st_size - m->offset)
			return -EINVAL;
	}

	void *host = NULL;
	if (fd >= 0) {
		int p = (prot & VFU_DMA_FLAG_READ ? PROT_READ : 0) |
			(prot & VFU_DMA_FLAG_WRITE ? PROT_WRITE : 0);
		host = mmap(NULL, m->size, p ? p : PROT_NONE, MAP_SHARED, fd, (off_t)m->offset);
		if (host == MAP_FAILED)
			return errno == EACCES ? -EACCES : -EINVAL;
	}

	int rc = 0;
	rwlock_wrlock(&dev->dma_lock);
	if (find_overlap(dev, m->addr, m->size)) {
		rc = -EEXIST;
	} else if (dev->nmaps >= VFPM_MAX_DMA_MAPS) {
		rc = -ENOSPC;
	} else if (host && m->size > dev->dma_max - atomic_load(&dev->dma_mapped)) {
		/* the bound on what one client makes vfpmd map (dma_max) */
		rc = -ENOSPC;
	} else {
		struct dma_map_ent *n = realloc(dev->maps, (dev->nmaps + 1) * sizeof(*n));
		if (!n) {
			rc = -ENOMEM;
		} else {
			dev->maps = n;
			n[dev->nmaps++] = (struct dma_map_ent){ .iova = m->addr, .size = m->size,
								 .prot = prot, .host = host,
								 .maplen = host ? m->size : 0 };
			if (host)
				atomic_store(&dev->dma_mapped,
					     atomic_load(&dev->dma_mapped) + m->size);
			host = NULL;
		}
	}
	rwlock_unlock(&dev->dma_lock);
	if (host)
		munmap(host, m->size);
	return rc;
}

/* As the kernel's type1 (v2) IOMMU driver: every mapping inside
 * [iova, iova + size) goes, a range that holds none is no error (QEMU
 * unmaps the whole IOVA space in chunks on every guest IOMMU domain
 * change), and a range that would split a mapping is refused. */
int dma_unmap(struct vfpm_device *dev, uint64_t iova, uint64_t size, bool all)
{
	if (all) {
		dma_unmap_all(dev);
		return 0;
	}
	if (!size || ((iova | size) & 4095) || iova + size - 1 < iova)
		return -EINVAL;
	uint64_t last = iova + size - 1;
	int rc = 0;
	/* The write lock waits for copies in flight through the mappings. */
	rwlock_wrlock(&dev->dma_lock);
	for (size_t i = 0; i < dev->nmaps; i++) {
		const struct dma_map_ent *e = &dev->maps[i];
		uint64_t elast = e->iova + e->size - 1;
		bool inside = e->iova >= iova && elast <= last;
		if (!inside && e->iova <= last && iova <= elast) {
			rc = -EINVAL;   /* would split a mapping */
			break;
		}
	}
	for (size_t i = 0; !rc && i < dev->nmaps;) {
		struct dma_map_ent *e = &dev->maps[i];
		if (e->iova >= iova && e->iova + e->size - 1 <= last) {
			ent_release(dev, e);
			dev->maps[i] = dev->maps[--dev->nmaps];
		} else {
			i++;
		}
	}
	rwlock_unlock(&dev->dma_lock);
	return rc;
}

void dma_unmap_all(struct vfpm_device *dev)
{
	rwlock_wrlock(&dev->dma_lock);
	for (size_t i = 0; i < dev->nmaps; i++)
		ent_release(dev, &dev->maps[i]);
	dev->nmaps = 0;
	rwlock_unlock(&dev->dma_lock);
}

/* Copies len bytes between buf and guest memory at iova, one mapping at a
 * time. Message-based mappings go through the channel, outside dma_lock
 * (the session thread that reads the reply may need the lock itself). */
static int dma_rw(struct vfpm_device *dev, uint64_t iova, void *buf, size_t len, bool write)
{
	if (iova + len < iova)
		return -EFAULT;
	mutex_lock(&dev->lock);
	bool bme = pci_cfg_bus_master(&dev->cfg);
	mutex_unlock(&dev->lock);
	if (!bme)
		return -EPERM;
	uint8_t *p = buf;
	while (len) {
		rwlock_rdlock(&dev->dma_lock);
		struct dma_map_ent *e = NULL;
		for (size_t i = 0; i < dev->nmaps; i++) {
			if (iova >= dev->maps[i].iova && iova - dev->maps[i].iova < dev->maps[i].size) {
				e = &dev->maps[i];
				break;
			}
		}
		uint32_t need = write ? VFU_DMA_FLAG_WRITE : VFU_DMA_FLAG_READ;
		if (!e || !(e->prot & need)) {
			rwlock_unlock(&dev->dma_lock);
			return -EFAULT;
		}
		uint64_t in = e->size - (iova - e->iova);
		size_t chunk = len < in ? len : (size_t)in;
		if (e->host) {
			uint8_t *h = (uint8_t *)e->host + (iova - e->iova);
			/* the client may have shrunk the file it mapped */
			int rc = write ? core_copy(h, p, chunk) : core_copy(p, h, chunk);
			rwlock_unlock(&dev->dma_lock);
			if (rc)
				return rc;
		} else {
			rwlock_unlock(&dev->dma_lock);
			/* from the model's access callback on the control plane's
			 * thread, the session thread may be waiting for that very
			 * request to end (req_lock) before it reads the reply */
			if (region_in_access_callback(dev))
				return -EDEADLK;
			int rc = channel_dma(&dev->chan, write, iova, p, chunk);
			if (rc)
				return rc;
		}
		p += chunk;
		iova += chunk;
		len -= chunk;
	}
	return 0;
}

/* The file-backed mapping holding all of [iova, iova+len) with perm, or
 * NULL (dma_lock held). */
static struct dma_map_ent *host_range(struct vfpm_device *dev, uint64_t iova, size_t len,
				      uint32_t perm, int *err)
{
	for (size_t i = 0; i < dev->nmaps; i++) {
		struct dma_map_ent *e = &dev->maps[i];
		if (iova < e->iova || iova - e->iova >= e->size)
			continue;
		if (!(e->prot & perm)) {
			*err = -EFAULT;
			return NULL;
		}
		if (!e->host || len > e->size - (iova - e->iova)) {
			*err = -EOPNOTSUPP;   /* messages, or more than this window */
			return NULL;
		}
		return e;
	}
	*err = -EFAULT;
	return NULL;
}

VFPM_EXPORT int vfpm_dev_dma_copy(struct vfpm_device *dev, uint64_t dst, uint64_t src, size_t len)
{
	if (src + len < src || dst + len < dst)
		return -EFAULT;
	mutex_lock(&dev->lock);
	bool bme = pci_cfg_bus_master(&dev->cfg);
	mutex_unlock(&dev->lock);
	if (!bme)
		return -EPERM;
	if (!len)
		return 0;
	int rc = 0;
	rwlock_rdlock(&dev->dma_lock);
	struct dma_map_ent *s = host_range(dev, src, len, VFU_DMA_FLAG_READ, &rc);
	struct dma_map_ent *d = s ? host_range(dev, dst, len, VFU_DMA_FLAG_WRITE, &rc) : NULL;
	if (s && d) {
		uint8_t *from = (uint8_t *)s->host + (src - s->iova);
		uint8_t *to = (uint8_t *)d->host + (dst - d->iova);
		/* the client may have shrunk a file it mapped: core_copy */
		rc = s == d ? core_move(to, from, len) : core_copy(to, from, len);
	}
	rwlock_unlock(&dev->dma_lock);
	return rc;
}

VFPM_EXPORT int vfpm_dev_dma_read(struct vfpm_device *dev, uint64_t iova, void *buf, size_t len)
{
	if (!dev || (len && !buf))
		return -EINVAL;
	return dma_rw(dev, iova, buf, len, false);
}

VFPM_EXPORT int vfpm_dev_dma_write(struct vfpm_device *dev, uint64_t iova, const void *buf,
				   size_t len)
{
	if (!dev || (len && !buf))
		return -EINVAL;
	return dma_rw(dev, iova, (void *)buf, len, true);
}
