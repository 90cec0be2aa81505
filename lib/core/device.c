/* Device core: construction from a model, regions and BAR backing, reset. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

/* --- setup API ---
 *
 * Every call checks, in this order: dev (NULL: -EINVAL), the calling
 * context (outside the device's create(): -EPERM), its arguments, then
 * conflicts with what is already declared; a refused call changes nothing
 * (config space, the device's fields). The table of errors is in
 * include/vfpm/device.h and docs/device-api.md; tests/unit/core/
 * test_setup_errors.c checks each row. */

#define SETUP_CONTEXT(dev)                   \
	do {                                 \
		if (!(dev))                  \
			return -EINVAL;      \
		if (!(dev)->creating)        \
			return -EPERM;       \
	} while (0)

VFPM_EXPORT int vfpm_dev_set_ids(struct vfpm_device *dev, const struct vfpm_pci_ids *ids)
{
	SETUP_CONTEXT(dev);
	/* vendor 0xffff is what a read from an absent function returns */
	if (!ids || ids->vendor == 0xffff || ids->class_code > 0xffffff)
		return -EINVAL;
	/* the ID registers only: BARs and capabilities declared before stay */
	pci_cfg_set16(&dev->cfg, PCI_VENDOR_ID, ids->vendor);
	pci_cfg_set16(&dev->cfg, PCI_DEVICE_ID, ids->device);
	pci_cfg_set8(&dev->cfg, PCI_REVISION_ID, ids->revision);
	pci_cfg_set8(&dev->cfg, PCI_CLASS_PROG, (uint8_t)ids->class_code);
	pci_cfg_set16(&dev->cfg, PCI_CLASS_DEVICE, (uint16_t)(ids->class_code >> 8));
	pci_cfg_set16(&dev->cfg, PCI_SUBSYSTEM_VENDOR_ID, ids->subsys_vendor);
	pci_cfg_set16(&dev->cfg, PCI_SUBSYSTEM_ID, ids->subsys_id);
	return 0;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* The sizes a BAR of these flags may have (pci_cfg_set_bar's rules, and
 * a memfd the client can mmap: whole pages, within off_t). */
static bool bar_size_ok(uint64_t size, unsigned flags)
{
	if (!is_pow2(size))
		return false;
	if (flags & VFPM_BAR_IO)
		return size >= 4 && size <= 256;
	if (size < 16 || (!(flags & VFPM_BAR_64) && size > (1ull << 31)))
		return false;
	return !(flags & VFPM_BAR_MEMFD) || (size >= 4096 && size <= (1ull << 40));
}

/* BAR idx, or the upper half of a 64-bit BAR at idx - 1, is declared. */
static bool bar_slot_taken(const struct vfpm_device *dev, unsigned idx)
{
	return dev->bars[idx].size ||
	       (idx > 0 && dev->bars[idx - 1].size && (dev->bars[idx - 1].flags & VFPM_BAR_64));
}

VFPM_EXPORT int vfpm_dev_add_bar(struct vfpm_device *dev, unsigned idx, uint64_t size,
				 unsigned flags)
{
	SETUP_CONTEXT(dev);
	if (idx >= PCI_NUM_BARS ||
	    (flags & ~(VFPM_BAR_IO | VFPM_BAR_64 | VFPM_BAR_PREFETCH | VFPM_BAR_MEMFD)))
		return -EINVAL;
	if ((flags & VFPM_BAR_IO) && (flags & (VFPM_BAR_64 | VFPM_BAR_PREFETCH | VFPM_BAR_MEMFD)))
		return -EINVAL;
	if (!bar_size_ok(size, flags) || ((flags & VFPM_BAR_64) && idx == PCI_NUM_BARS - 1))
		return -EINVAL;
	if (bar_slot_taken(dev, idx) || ((flags & VFPM_BAR_64) && bar_slot_taken(dev, idx + 1)))
		return -EEXIST;
	struct core_bar nb = { .size = size, .flags = flags, .memfd = -1 };
	if (flags & VFPM_BAR_MEMFD) {
		nb.memfd = region_bar_memfd(dev, idx);
		if (nb.memfd < 0)
			return nb.memfd;
		if (ftruncate(nb.memfd, (off_t)size) < 0 ||
		    (nb.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, nb.memfd, 0)) ==
			    MAP_FAILED) {
			int rc = -errno;
			close(nb.memfd);
			return rc;
		}
	}
	unsigned pf = (flags & VFPM_BAR_IO ? PCI_BARF_IO : 0) |
		      (flags & VFPM_BAR_64 ? PCI_BARF_MEM64 : 0) |
		      (flags & VFPM_BAR_PREFETCH ? PCI_BARF_PREFETCH : 0);
	int rc = pci_cfg_set_bar(&dev->cfg, idx, size, pf);
	if (rc) {
		/* not reached: the checks above are pci_cfg_set_bar's */
		if (nb.mem)
			munmap(nb.mem, size);
		if (nb.memfd >= 0)
			close(nb.memfd);
		return rc;
	}
	dev->bars[idx] = nb;
	return 0;
}

VFPM_EXPORT int vfpm_dev_set_intx(struct vfpm_device *dev, bool present)
{
	SETUP_CONTEXT(dev);
	dev->has_intx = present;
	pci_cfg_set_intx_pin(&dev->cfg, present ? 1 : 0);
	return 0;
}

VFPM_EXPORT int vfpm_dev_add_pm_cap(struct vfpm_device *dev, bool d1, bool d2,
				    bool no_soft_reset)
{
	SETUP_CONTEXT(dev);
	if (dev->pm_cap)
		return -EEXIST;
	uint16_t pmc = (d1 ? PCI_PM_CAP_D1 : 0) | (d2 ? PCI_PM_CAP_D2 : 0) |
		       PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot;
	int off = pci_cap_pm(&dev->cfg, pmc, no_soft_reset);
	if (off < 0)
		return off;
	dev->pm_cap = (unsigned)off;
	return 0;
}

VFPM_EXPORT int vfpm_dev_add_msi_cap(struct vfpm_device *dev, unsigned nvec)
{
	SETUP_CONTEXT(dev);
	if (!nvec || nvec > CORE_MAX_MSI || !is_pow2(nvec))
		return -EINVAL;
	if (dev->msi_cap)
		return -EEXIST;
	int off = pci_cap_msi(&dev->cfg, nvec);
	if (off < 0)
		return off;
	dev->msi_cap = (unsigned)off;
	dev->msi_nvec = nvec;
	return 0;
}

static bool ranges_overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

VFPM_EXPORT int vfpm_dev_add_msix_cap(struct vfpm_device *dev, unsigned nvec, unsigned bar,
				      uint32_t table_off, uint32_t pba_off)
{
	SETUP_CONTEXT(dev);
	if (!nvec || nvec > CORE_MAX_MSIX || bar >= PCI_NUM_BARS || !dev->bars[bar].size ||
	    (dev->bars[bar].flags & VFPM_BAR_IO) || (table_off & 7) || (pba_off & 7))
		return -EINVAL;
	uint64_t size = dev->bars[bar].size;
	uint64_t tlen = (uint64_t)nvec * 16, plen = ((nvec + 63) / 64) * 8;
	if (table_off > size || tlen > size - table_off || pba_off > size ||
	    plen > size - pba_off || ranges_overlap(table_off, tlen, pba_off, plen))
		return -EINVAL;
	/* the client's eventfd would take writes the core emulates */
	for (unsigned i = 0; i < dev->nioeventfds; i++) {
		const struct core_ioeventfd *e = &dev->ioeventfds[i];
		if (e->bar == bar && (ranges_overlap(e->offset, e->size, table_off, tlen) ||
				      ranges_overlap(e->offset, e->size, pba_off, plen)))
			return -EINVAL;
	}
	if (dev->msix_cap)
		return -EEXIST;
	uint8_t *table = calloc(nvec, 16);
	uint64_t *pba = calloc((nvec + 63) / 64, 8);
	uint64_t *irq_mask = calloc((nvec + 63) / 64, 8);
	int *fds = malloc(nvec * sizeof(int));
	int off = table && pba && irq_mask && fds ? pci_cap_msix(&dev->cfg, nvec, bar, table_off,
								  bar, pba_off)
						  : -ENOMEM;
	if (off < 0) {
		free(table);
		free(pba);
		free(irq_mask);
		free(fds);
		return off;
	}
	for (unsigned i = 0; i < nvec; i++)
		fds[i] = -1;
	dev->msix_table = table;
	dev->msix_pba = pba;
	dev->msix_irq_mask = irq_mask;
	dev->msix_fds = fds;
	dev->msix_cap = (unsigned)off;
	dev->msix_nvec = nvec;
	dev->msix_bar = bar;
	dev->msix_table_off = table_off;
	dev->msix_pba_off = pba_off;
	return 0;
}

VFPM_EXPORT int vfpm_dev_add_pcie_cap(struct vfpm_device *dev)
{
	SETUP_CONTEXT(dev);
	if (dev->pcie_cap)
		return -EEXIST;
	int off = pci_cap_pcie(&dev->cfg);
	if (off < 0)
		return off;
	dev->pcie_cap = (unsigned)off;
	return 0;
}

VFPM_EXPORT int vfpm_dev_add_ext_cap(struct vfpm_device *dev, uint16_t id, uint8_t ver,
				     const void *body, size_t len)
{
	SETUP_CONTEXT(dev);
	/* 0 is the null capability (a list's end); SR-IOV is the core's own
	 * (total_vfs=N), built from vf_bars */
	if ((len && !body) || ver > 15 || !id || id == PCI_EXT_CAP_ID_SRIOV)
		return -EINVAL;
	if (len > VPCI_CFG_SIZE)
		return -ENOSPC;
	int off = pci_cfg_add_ext_cap(&dev->cfg, id, ver, (unsigned)len + 4);
	if (off < 0)
		return off;
	for (size_t i = 0; i < len; i++)
		pci_cfg_set8(&dev->cfg, (unsigned)off + 4 + (unsigned)i, ((const uint8_t *)body)[i]);
	return 0;
}

VFPM_EXPORT int vfpm_dev_add_ioeventfd(struct vfpm_device *dev, unsigned bar, uint64_t offset,
				       uint32_t size)
{
	SETUP_CONTEXT(dev);
	if (bar >= PCI_NUM_BARS || !dev->bars[bar].size ||
	    (size != 1 && size != 2 && size != 4 && size != 8) || offset > dev->bars[bar].size ||
	    size > dev->bars[bar].size - offset)
		return -EINVAL;
	if (dev->msix_cap && bar == dev->msix_bar &&
	    (ranges_overlap(offset, size, dev->msix_table_off, (uint64_t)dev->msix_nvec * 16) ||
	     ranges_overlap(offset, size, dev->msix_pba_off, ((dev->msix_nvec + 63) / 64) * 8)))
		return -EINVAL;
	for (unsigned i = 0; i < dev->nioeventfds; i++) {
		const struct core_ioeventfd *e = &dev->ioeventfds[i];
		if (e->bar == bar && ranges_overlap(e->offset, e->size, offset, size))
			return -EEXIST;
	}
	if (dev->nioeventfds >= CORE_MAX_IOEVENTFDS)
		return -ENOSPC;
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (fd < 0)
		return -errno;
	dev->ioeventfds[dev->nioeventfds++] =
		(struct core_ioeventfd){ .bar = bar, .offset = offset, .size = size, .fd = fd };
	return fd;
}

/* dev->lock held (a config-space hook): Initiate FLR is not stored (it
 * reads 0); a write that sets it asks for a reset, done by the writer once
 * dev->lock drops. */
static void hook_devctl(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			uint32_t old, const struct pci_access *acc)
{
	uint32_t covered;
	uint32_t v = pci_access_reg_val(acc, reg, len, &covered);
	if (covered & v & PCI_EXP_DEVCTL_BCR_FLR)
		acc->fx->flags |= PCI_FX_FLR;
}

/* --- lifecycle --- */

/* A byte count with an optional K, M, G or T suffix (powers of 1024),
 * within [min, max]. */
static int parse_size(const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!v || *v < '0' || *v > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	if (*end) {
		const char *units = "KMGT";
		const char *u = strchr(units, *end);
		if (!u || end[1])
			return -EINVAL;
		shift = 10 * (unsigned)(u - units + 1);
	}
	if (x > (max >> shift) || (x << shift) < min)
		return -ERANGE;
	*out = (uint64_t)x << shift;
	return 0;
}

int core_model_check(const struct vfpm_model *model)
{
	if (!model || model->size < CORE_MODEL_SIZE_MIN)
		return -EINVAL;
	if (model->size > sizeof(struct vfpm_model))
		return -E2BIG;
	if (!model->name || !model->name[0] || !model->create)
		return -EINVAL;
	return 0;
}

/* Takes the ops table create() returned: a smaller (older) one is copied
 * into a full one whose missing callbacks are NULL. */
static int take_ops(struct vfpm_device *dev, const struct vfpm_model_ops *ops)
{
	if (!ops)
		return -EINVAL;
	if (ops->size < sizeof(ops->size) || ops->size > sizeof(*ops))
		return ops->size ? -E2BIG : -EINVAL;
	memset(&dev->ops_copy, 0, sizeof(dev->ops_copy));
	memcpy(&dev->ops_copy, ops, ops->size);
	dev->ops_copy.size = sizeof(dev->ops_copy);
	dev->ops = &dev->ops_copy;
	return 0;
}

static int create_common(const struct vfpm_model *model, const char *name, struct vfpm_opts *opts,
			 struct rpm_wq *wq, int verbosity, struct vfpm_device *pf, unsigned vf_index,
			 struct vfpm_device **out)
{
	int rc = core_model_check(model);
	if (rc) {
		core_log(verbosity, VFPM_LOG_ERR, name, "model %s refused: %s",
			 model && model->size >= CORE_MODEL_SIZE_MIN && model->name ? model->name : "?",
			 rc == -E2BIG ? "built against a newer vfpm/device.h (struct vfpm_model is larger)"
				      : "struct vfpm_model has no size, name or create");
		return rc;
	}
	struct vfpm_device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return -ENOMEM;
	dev->name = strdup(name);
	dev->model = model;
	dev->opts = *opts;
	opts->n = 0;
	opts->kv = NULL;
	dev->intx_fd = dev->err_fd = dev->req_fd = -1;
	dev->intx_unmask_fd = dev->unmask_stop_fd = -1;
	pthread_mutex_init(&dev->irq_lock, NULL);
	/* set before anything can log: the first idle suspend runs on the
	 * work queue as soon as the device exists */
	dev->verbosity = verbosity;
	for (unsigned i = 0; i < CORE_MAX_MSI; i++)
		dev->msi_fds[i] = -1;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++)
		dev->bars[i].memfd = -1;
	pthread_mutex_init(&dev->req_lock, NULL);
	pthread_mutex_init(&dev->lock, NULL);
	pthread_mutex_init(&dev->sriov_lock, NULL);
	pthread_rwlock_init(&dev->dma_lock, NULL);
	channel_init(&dev->chan, dev);
	events_init(dev, pf);
	dev->is_vf = pf != NULL;
	dev->pf = pf;
	dev->vf_index = vf_index;
	if (!dev->name) {
		device_destroy(dev);
		return -ENOMEM;
	}
	/* A model that forgets IDs still gets a valid header. */
	pci_cfg_init(&dev->cfg, 0x1b36, 0x0000, 0xff0000, 0, 0, 0);

	if (pm_init(dev, &dev->opts, wq)) {
		device_destroy(dev);
		return -EINVAL;
	}
	dev->pm_ready = true;
	if (pf) {
		/* a VF runs with its PF's power settings */
		dev->pm.set = pf->pm.set;
	}
	/* total_vfs=N makes any model a PF (the core's key, not the model's) */
	uint64_t total_vfs = 0;
	int trc = vfpm_opts_u64(&dev->opts, "total_vfs", 0, 0, VFPM_MAX_VFS, &total_vfs);
	if (trc && trc != -ENOENT) {
		core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name, "total_vfs must be 0..%d", VFPM_MAX_VFS);
		device_destroy(dev);
		return -EINVAL;
	}
	for (size_t i = 0; i < dev->opts.n; i++) {
		if (!strcmp(dev->opts.kv[i].key, "total_vfs")) {
			free(dev->opts.kv[i].key);
			free(dev->opts.kv[i].val);
			dev->opts.kv[i] = dev->opts.kv[--dev->opts.n];
			break;
		}
	}
	if (pf && total_vfs) {
		device_destroy(dev);
		return -EINVAL;   /* a VF is not a PF */
	}
	/* dma_max=SIZE bounds what the client's DMA_MAPs make vfpmd map
	 * (the core's key too); a VF takes its PF's */
	dev->dma_max = pf ? pf->dma_max : CORE_DMA_MAX_DEFAULT;
	for (size_t i = 0; i < dev->opts.n; i++) {
		if (strcmp(dev->opts.kv[i].key, "dma_max"))
			continue;
		if (parse_size(dev->opts.kv[i].val, 4096, CORE_DMA_MAX_LIMIT, &dev->dma_max)) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name,
				 "dma_max must be a size from 4K to 128T (K, M, G, T: powers of 1024)");
			device_destroy(dev);
			return -EINVAL;
		}
		free(dev->opts.kv[i].key);
		free(dev->opts.kv[i].val);
		dev->opts.kv[i] = dev->opts.kv[--dev->opts.n];
		break;
	}
	/* poll_us=N: after serving a request the session keeps reading
	 * without blocking for up to N us before it sleeps (the core's key
	 * too; a VF takes its PF's) */
	dev->poll_us = pf ? pf->poll_us : CORE_POLL_US_DEFAULT;
	for (size_t i = 0; i < dev->opts.n; i++) {
		if (strcmp(dev->opts.kv[i].key, "poll_us"))
			continue;
		uint64_t us;
		if (vfpm_opts_u64(&dev->opts, "poll_us", 0, 0, CORE_POLL_US_MAX, &us)) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name,
				 "poll_us must be a number of microseconds from 0 to %u",
				 CORE_POLL_US_MAX);
			device_destroy(dev);
			return -EINVAL;
		}
		dev->poll_us = (uint32_t)us;
		free(dev->opts.kv[i].key);
		free(dev->opts.kv[i].val);
		dev->opts.kv[i] = dev->opts.kv[--dev->opts.n];
		break;
	}
	/* Reject keys the model does not understand: a typo must not be
	 * silently ignored. */
	for (size_t i = 0; i < dev->opts.n; i++) {
		bool known = false;
		for (const char *const *k = model->keys; k && *k; k++)
			known |= !strcmp(*k, dev->opts.kv[i].key);
		if (!known) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name, "model %s has no option '%s'",
				 model->name, dev->opts.kv[i].key);
			device_destroy(dev);
			return -EINVAL;
		}
	}

	dev->creating = true;
	const struct vfpm_model_ops *ops = NULL;
	rc = model->create(dev, &dev->opts, &dev->priv, &ops);
	dev->creating = false;
	if (rc) {
		device_destroy(dev);
		return rc;
	}
	rc = take_ops(dev, ops);
	if (rc) {
		core_log(verbosity, VFPM_LOG_ERR, name, "model %s refused: %s", model->name,
			 rc == -E2BIG ? "built against a newer vfpm/device.h (struct vfpm_model_ops "
					"is larger)"
				      : "its struct vfpm_model_ops has no size");
		/* undo what create() made: the table's prefix has this
		 * library's layout (tables only grow at their end) */
		if (ops && ops->quiesce)
			ops->quiesce(dev->priv);
		if (ops && ops->destroy)
			ops->destroy(dev->priv);
		device_destroy(dev);
		return rc;
	}
	if (pf) {
		/* VF rules: IDs from the PF's SR-IOV capability, no INTx */
		mutex_lock(&pf->lock);
		uint16_t vendor = pci_cfg_get16(&pf->cfg, PCI_VENDOR_ID);
		uint16_t vfdid = pci_cfg_get16(&pf->cfg, pf->sriov_cap + PCI_SRIOV_VF_DID);
		uint16_t ssv = pci_cfg_get16(&pf->cfg, PCI_SUBSYSTEM_VENDOR_ID);
		uint16_t ssid = pci_cfg_get16(&pf->cfg, PCI_SUBSYSTEM_ID);
		mutex_unlock(&pf->lock);
		pci_cfg_set16(&dev->cfg, PCI_VENDOR_ID, vendor);
		pci_cfg_set16(&dev->cfg, PCI_DEVICE_ID, vfdid);
		pci_cfg_set16(&dev->cfg, PCI_SUBSYSTEM_VENDOR_ID, ssv);
		pci_cfg_set16(&dev->cfg, PCI_SUBSYSTEM_ID, ssid);
		dev->has_intx = false;
		pci_cfg_set_intx_pin(&dev->cfg, 0);
		/* the PF's capability was built from the model's vf_bars */
		if (!sriov_vf_layout_ok(dev)) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name,
				 "model %s created a VF whose BARs differ from its vf_bars table",
				 model->name);
			device_destroy(dev);
			return -EINVAL;
		}
	}
	pm_start(dev);
	if (total_vfs) {
		rc = sriov_setup(dev, (unsigned)total_vfs, wq);
		if (rc) {
			core_log(VFPM_LOG_ERR, VFPM_LOG_ERR, name, "SR-IOV set-up failed: %s",
				 strerror(-rc));
			device_destroy(dev);
			return rc;
		}
	}
	irq_install_cfg_hooks(dev);
	if (dev->pcie_cap)
		pci_cfg_hook(&dev->cfg, dev->pcie_cap + PCI_EXP_DEVCTL, 2, hook_devctl, dev);
	mutex_lock(&dev->lock);   /* no other thread yet: for the analysis */
	irq_reset_state(dev);
	mutex_unlock(&dev->lock);
	pci_cfg_seal(&dev->cfg);
	if (wq)
		pm_go_idle(dev);
	*out = dev;
	return 0;
}

int device_create(const struct vfpm_model *model, const char *name, struct vfpm_opts *opts,
		  struct rpm_wq *wq, int verbosity, struct vfpm_device **out)
{
	return create_common(model, name, opts, wq, verbosity, NULL, 0, out);
}

int device_create_vf(struct vfpm_device *pf, unsigned index, struct rpm_wq *wq,
		     struct vfpm_device **out)
{
	char name[300];
	snprintf(name, sizeof(name), "%s-vf%u", pf->name, index);
	struct vfpm_opts none = { 0 };
	return create_common(pf->model, name, &none, wq, pf->verbosity, pf, index, out);
}

VFPM_EXPORT bool vfpm_dev_is_vf(const struct vfpm_device *dev)
{
	return dev && dev->is_vf;
}

void device_destroy(struct vfpm_device *dev)
{
	if (!dev)
		return;
	device_sriov_disable(dev);     /* VFs never outlive their PF */
	if (dev->pm_ready)
		pm_fini(dev);   /* no suspend or resume runs after this */
	if (dev->ops && dev->ops->quiesce)
		dev->ops->quiesce(dev->priv);
	if (dev->ops && dev->ops->destroy)
		dev->ops->destroy(dev->priv);
	dma_unmap_all(dev);
	irq_release_all(dev);
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		if (dev->bars[i].mem)
			munmap(dev->bars[i].mem, dev->bars[i].size);
		if (dev->bars[i].memfd >= 0)
			close(dev->bars[i].memfd);
		region_shadow_free(&dev->bars[i]);   /* the copy kept while revoked */
	}
	for (unsigned i = 0; i < dev->nioeventfds; i++)
		close(dev->ioeventfds[i].fd);
	free(dev->msix_table);
	free(dev->msix_pba);
	free(dev->msix_irq_mask);
	free(dev->msix_fds);
	free(dev->maps);
	opts_free(&dev->opts);
	pthread_mutex_destroy(&dev->req_lock);
	pthread_mutex_destroy(&dev->lock);
	pthread_mutex_destroy(&dev->sriov_lock);
	pthread_mutex_destroy(&dev->irq_lock);
	pthread_rwlock_destroy(&dev->dma_lock);
	channel_destroy(&dev->chan);
	events_fini(dev);
	free(dev->name);
	free(dev);
}

/* Stops device-initiated work. A model thread waiting for a message-DMA
 * reply is cancelled: the session thread that would read that reply may be
 * the one waiting here. */
static void device_quiesce(struct vfpm_device *dev)
{
	channel_cancel_begin(&dev->chan);
	if (dev->ops->quiesce)
		dev->ops->quiesce(dev->priv);
	channel_cancel_end(&dev->chan);
}

void device_reset(struct vfpm_device *dev, const char *cause, bool keep_config)
{
	DLOG(dev, VFPM_LOG_INFO, "reset (%s)", cause);
	/* VFs and the SR-IOV capability are the host's: a reset of the PF
	 * keeps them (the PCI core restores its SR-IOV state after a reset),
	 * so they outlive the PF's client. B31: D0 (restoring a NoSoftRst-
	 * snapshot) before the reset; the model's quiesce and reset run under
	 * trans_lock alone */
	dev_event(dev, EV_RESET, -1, -1, cause);
	pm_trans_begin(dev);
	pm_set_d0_locked(dev, "reset");
	rwlock_unlock(&dev->pm.memory_lock);
	device_quiesce(dev);
	if (dev->ops->reset)
		dev->ops->reset(dev->priv);
	mutex_lock(&dev->lock);
	/* A user's reset is pci_try_reset_function: config is saved before and
	 * restored after, with the MSI-X table (host-side setup), so the client
	 * sees its config unchanged and only the function's own state resets:
	 * here config space is simply left as it is. The close reset returns
	 * everything to power-on values. */
	if (keep_config) {
		irq_reset_device_state(dev);
		dev->intx_masked = false;   /* as before: a reset unmasks INTx */
		pci_cfg_set_intx_status(&dev->cfg, dev->intx_level);   /* the line dropped */
	} else {
		struct sriov_keep keep;
		sriov_keep_save(dev, &keep);
		pci_cfg_reset(&dev->cfg);
		sriov_keep_restore(dev, &keep);
		irq_reset_state(dev);
	}
	mutex_unlock(&dev->lock);
	mutex_unlock(&dev->pm.trans_lock);
	/* mappings follow memory_enabled again (revoked while COMMAND.MEM
	 * is clear after a close reset) */
	pm_sync_mappings(dev);
}

/* Initiate Function Level Reset written to DEVCTL: as vfio-pci turns a
 * user's FLR write into a reset of the function, with the mappings
 * revoked for its duration, through the DEVICE_RESET path and under a PM
 * reference (the device resumes first if it was suspended). Caller holds
 * req_lock. */
static void device_flr(struct vfpm_device *dev)
{
	if (pm_request_begin(dev))
		return;   /* logged; a device that cannot resume is not reset */
	pm_revoke_mappings(dev);
	device_reset(dev, "FLR", true);
	pm_request_end(dev);
}

void device_disconnect(struct vfpm_device *dev)
{
	mutex_lock(&dev->pm.trans_lock);
	device_quiesce(dev);
	mutex_unlock(&dev->pm.trans_lock);
	dma_unmap_all(dev);
	irq_release_all(dev);
	device_reset(dev, "client disconnected", false);
}

void device_close(struct vfpm_device *dev)
{
	pm_close_begin(dev);      /* B15: silent exit; held in D0 */
	device_disconnect(dev);   /* D0 first, then the reset (B31) */
	pm_close_end(dev);        /* BARs scrubbed; may idle (B35) */
}

/* --- config space and its effects --- */

static int config_rw(struct vfpm_device *dev, uint64_t off, void *buf, uint32_t count,
		     bool is_write, bool host);
static void device_sriov_sync(struct vfpm_device *dev);

int device_region_rw(struct vfpm_device *dev, uint32_t region, uint64_t off, void *buf,
		     uint32_t count, bool is_write)
{
	if (region == VFU_PCI_CONFIG)
		return config_rw(dev, off, buf, count, is_write, false);
	if (region < PCI_NUM_BARS)
		return region_bar_rw(dev, region, off, buf, count, is_write);
	return -EINVAL;   /* no expansion ROM (a model cannot declare one), VGA, migration */
}

int device_host_config_rw(struct vfpm_device *dev, unsigned off, void *buf, unsigned len,
			  bool is_write)
{
	return config_rw(dev, off, buf, len, is_write, true);
}

/* host: a control-plane access (raw, as setpci); else the client's. */
static int config_rw(struct vfpm_device *dev, uint64_t off, void *buf, uint32_t count,
		     bool is_write, bool host)
{
	if (off > VPCI_CFG_SIZE || count > VPCI_CFG_SIZE - off)
		return -EINVAL;
	struct pci_effects fx = { 0 };
	mutex_lock(&dev->lock);
	int rc = !is_write ? pci_cfg_read(&dev->cfg, (unsigned)off, buf, count)
		 : host	   ? pci_cfg_write(&dev->cfg, (unsigned)off, buf, count, &fx)
			   : region_cfg_client_write_locked(dev, (unsigned)off, buf, count, &fx);
	mutex_unlock(&dev->lock);
	bool changed = fx.flags & PCI_FX_COMMAND;
	bool mem_changed = changed && ((fx.command ^ fx.command_old) & PCI_COMMAND_MEMORY);
	/* The write's effects, acted on once and outside dev->lock:
	 * PowerState transitions sleep and take memory_lock, VF Enable
	 * creates devices, the model may raise interrupts. */
	if (is_write) {
		pm_after_config_write(dev, fx.flags & PCI_FX_POWER ? fx.power_state : -1,
				      mem_changed);
		if (fx.flags & PCI_FX_SRIOV_CTRL)
			device_sriov_sync(dev);
	}
	if (changed && dev->ops->command_changed) {
		region_cb_enter(dev);
		dev->ops->command_changed(dev->priv, fx.command);
		region_cb_exit(dev);
	}
	if (fx.flags & PCI_FX_FLR)
		device_flr(dev);
	return rc;
}

/* A host (control-plane) config access, as the PCI core's
 * pci_config_pm_runtime_get: a reference that waits for a suspend or resume
 * in flight (so a write cannot land between a suspend's snapshot and
 * its D3cold and be undone by the resume), and a resume from D3cold only
 * (B16). A PMCSR write resumes from any suspended state, so the power state
 * and the runtime-PM state never disagree. */
int device_ctl_config_rw(struct vfpm_device *dev, unsigned off, void *buf, unsigned len, bool write)
{
	struct dev_pm *pm = &dev->pm;
	enum rpm_status st = rpm_get_settled(&pm->rpm);
	if (st == RPM_SUSPENDED) {
		rwlock_rdlock(&pm->memory_lock);
		bool cold = pm->power_state == VFPM_D3COLD;
		rwlock_unlock(&pm->memory_lock);
		bool pmcsr = write && dev->pm_cap && off < dev->pm_cap + PCI_PM_CTRL + 2 &&
			     dev->pm_cap + PCI_PM_CTRL < off + len;
		if ((cold || pmcsr) && rpm_get(&pm->rpm)) {
			rpm_put_noidle(&pm->rpm);
			rpm_put(&pm->rpm);
			return -EIO;
		}
		if (cold || pmcsr)
			rpm_put_noidle(&pm->rpm);   /* the settled reference now holds it up */
	}
	/* req_lock: a write may reset the device (FLR), which is serialised
	 * against the session's requests */
	mutex_lock(&dev->req_lock);
	int rc = device_host_config_rw(dev, off, buf, len, write);
	mutex_unlock(&dev->req_lock);
	rpm_put(&pm->rpm);
	return rc;
}

/* --- SR-IOV: the PF's power around its VFs (B33, B34, seed 004) --- */

/* sriov_lock held */
static int sriov_enable_pf(struct vfpm_device *dev, unsigned n, bool host)
{
	if (dev->num_vfs || !n)
		return 0;
	if (!dev->host)
		return -ENODEV;
	/* B33: resume and hold the PF active until the VFs are gone. A PF
	 * engaged in low power with a wakeup armed is resumed here, which
	 * fires the wakeup once (B11). */
	int rc = rpm_resume_and_get(&dev->pm.rpm);
	if (rc)
		return rc;
	/* Seed 004: trans_lock (and memory_lock, but around the model's
	 * callbacks) is held from the D0 transition until the VFs exist, so
	 * no PMCSR write can put the PF back above D0 in between. */
	pm_trans_begin(dev);
	pm_set_d0_locked(dev, "VF Enable: a PF with VFs stays in D0");
	rc = sriov_create_vfs(dev, n, host);
	pm_trans_end(dev);
	if (rc)
		rpm_put(&dev->pm.rpm);
	return rc;
}

/* sriov_lock held */
static void sriov_disable_pf(struct vfpm_device *dev, bool host)
{
	if (!dev->num_vfs)
		return;
	sriov_destroy_vfs(dev, host);
	rpm_put(&dev->pm.rpm);
}

int device_sriov_configure(struct vfpm_device *dev, unsigned n)
{
	if (!dev->sriov_cap)
		return -ENOENT;   /* not a PF: no such setting */
	if (n > dev->total_vfs)
		return -ERANGE;
	mutex_lock(&dev->sriov_lock);
	int rc = 0;
	if (n == dev->num_vfs) {
		/* nothing to do (as the kernel: the same count succeeds) */
	} else if (!n) {
		sriov_disable_pf(dev, true);
		DLOG(dev, VFPM_LOG_INFO, "VFs disabled (sriov_numvfs=0)");
	} else if (dev->num_vfs) {
		rc = -EBUSY;   /* N -> M needs a 0 in between, as sriov_numvfs_store */
	} else {
		rc = sriov_enable_pf(dev, n, true);
		if (rc)
			DLOG(dev, VFPM_LOG_ERR, "cannot enable %u VFs: %s", n, strerror(-rc));
		else
			DLOG(dev, VFPM_LOG_INFO, "%u VFs enabled (sriov_numvfs)", n);
	}
	mutex_unlock(&dev->sriov_lock);
	return rc;
}

/* A host config write of the SR-IOV Control: the VFs follow VF Enable as
 * the register holds it now. */
static void device_sriov_sync(struct vfpm_device *dev)
{
	if (!dev->sriov_cap)
		return;
	mutex_lock(&dev->sriov_lock);
	bool vfe;
	unsigned n;
	sriov_read_ctrl(dev, &vfe, &n);
	if (vfe && !dev->num_vfs) {
		int rc = sriov_enable_pf(dev, n, false);
		if (rc)
			DLOG(dev, VFPM_LOG_ERR, "cannot enable %u VFs: %s", n, strerror(-rc));
		else if (dev->num_vfs)
			DLOG(dev, VFPM_LOG_INFO, "%u VFs enabled", n);
	} else if (!vfe && dev->num_vfs) {
		sriov_disable_pf(dev, false);
		DLOG(dev, VFPM_LOG_INFO, "VFs disabled");
	} else if (dev->num_vfs && dev->host->sync_vfs) {
		/* VF MSE may have changed: VF mappings follow it */
		dev->host->sync_vfs(dev->host_ctx, dev);
	}
	mutex_unlock(&dev->sriov_lock);
}

void device_sriov_disable(struct vfpm_device *dev)
{
	if (!dev->sriov_cap)
		return;
	mutex_lock(&dev->sriov_lock);
	sriov_disable_pf(dev, false);
	mutex_unlock(&dev->sriov_lock);
}
