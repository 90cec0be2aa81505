/* Interrupts: INTx (level, automasked), MSI and MSI-X through the client's
 * eventfds, with the masks and pending bits of the PCI spec honoured.
 *
 * MSI-X masking has two sources, as on a host where vfio-pci owns the
 * hardware table and the VMM emulates the guest's (docs/protocol.md):
 *  - the client's own mask, SET_IRQS MASK/UNMASK on the MSI-X index
 *    (msix_irq_mask), and the absence of an eventfd for the vector;
 *  - the Vector Control mask bits of the server's table, which count only
 *    once the client has written the table since the last reset
 *    (msix_table_written). A client that emulates the table (QEMU) never
 *    writes it, so the mask bits the table holds from reset never block it;
 *    a client that programs the table gets the PCI semantics.
 * A vector masked by either, or with no eventfd while MSI-X is enabled,
 * sets its PBA bit; the interrupt is delivered once when nothing holds it
 * back any more (unmask, table write, function unmask, eventfd assigned). */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <string.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

static void signal_fd(int fd)
{
	uint64_t one = 1;
	/* EAGAIN means the counter is saturated: the client has a wakeup
	 * pending already, nothing is lost. */
	ssize_t r = write(fd, &one, sizeof(one));
	(void)r;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

int irq_count(struct vfpm_device *dev, uint32_t index)
{
	switch (index) {
	case VFU_IRQ_INTX:
		return dev->has_intx ? 1 : 0;
	case VFU_IRQ_MSI:
		return (int)dev->msi_nvec;
	case VFU_IRQ_MSIX:
		return (int)dev->msix_nvec;
	case VFU_IRQ_ERR:
	case VFU_IRQ_REQ:
		return 1;
	default:
		return -EINVAL;
	}
}

/* --- state helpers, dev->lock held --- */

static bool msix_enabled(struct vfpm_device *dev)
{
	return dev->msix_cap &&
	       (pci_cfg_get16(&dev->cfg, dev->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_ENABLE);
}

static bool msix_func_masked(struct vfpm_device *dev)
{
	return pci_cfg_get16(&dev->cfg, dev->msix_cap + PCI_MSIX_FLAGS) & PCI_MSIX_FLAGS_MASKALL;
}

static bool msix_irq_masked(struct vfpm_device *dev, unsigned v)
{
	return dev->msix_irq_mask[v / 64] >> (v % 64) & 1;
}

static bool msix_vec_masked(struct vfpm_device *dev, unsigned v)
{
	if (msix_irq_masked(dev, v))
		return true;
	return dev->msix_table_written &&
	       (dev->msix_table[v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL] & PCI_MSIX_ENTRY_CTRL_MASKBIT);
}

static bool msi_enabled(struct vfpm_device *dev)
{
	return dev->msi_cap &&
	       (pci_cfg_get16(&dev->cfg, dev->msi_cap + PCI_MSI_FLAGS) & PCI_MSI_FLAGS_ENABLE);
}

static unsigned msi_enabled_vecs(struct vfpm_device *dev)
{
	uint16_t f = pci_cfg_get16(&dev->cfg, dev->msi_cap + PCI_MSI_FLAGS);
	unsigned n = 1u << ((f & PCI_MSI_FLAGS_QSIZE) >> 4);
	return n < dev->msi_nvec ? n : dev->msi_nvec;
}

static uint32_t msi_mask(struct vfpm_device *dev)
{
	/* 64-bit MSI with per-vector masking: mask bits at cap+0x10 */
	return pci_cfg_get32(&dev->cfg, dev->msi_cap + PCI_MSI_MASK_64);
}

static void pba_set(struct vfpm_device *dev, unsigned v, bool on)
{
	if (on)
		dev->msix_pba[v / 64] |= 1ull << (v % 64);
	else
		dev->msix_pba[v / 64] &= ~(1ull << (v % 64));
}

static bool pba_get(struct vfpm_device *dev, unsigned v)
{
	return dev->msix_pba[v / 64] >> (v % 64) & 1;
}

/* MSI-X is enabled (dev->lock held). */
static int msix_fire(struct vfpm_device *dev, unsigned v)
{
	if (msix_func_masked(dev) || msix_vec_masked(dev, v) || dev->msix_fds[v] < 0) {
		pba_set(dev, v, true);
		return -EAGAIN;
	}
	signal_fd(dev->msix_fds[v]);
	return 0;
}

static int msi_fire(struct vfpm_device *dev, unsigned v)
{
	if (msi_mask(dev) & (1u << v)) {
		dev->msi_pending |= 1u << v;
		pci_cfg_set32(&dev->cfg, dev->msi_cap + PCI_MSI_PENDING_64, dev->msi_pending);
		return -EAGAIN;
	}
	if (dev->msi_fds[v] < 0)
		return -ENODEV;
	signal_fd(dev->msi_fds[v]);
	return 0;
}

/* INTx is level-triggered and automasked, as vfio-pci reports it: a
 * delivered assertion masks the line until the client unmasks. */
static int intx_update(struct vfpm_device *dev)
{
	pci_cfg_set_intx_status(&dev->cfg, dev->intx_level);
	if (!dev->intx_level)
		return 0;
	if (dev->intx_masked || pci_cfg_intx_disabled(&dev->cfg))
		return -EAGAIN;
	if (dev->intx_fd < 0)
		return -ENODEV;
	signal_fd(dev->intx_fd);
	dev->intx_masked = true;
	if (dev->intx_pulse) {
		dev->intx_pulse = false;
		dev->intx_level = false;
		pci_cfg_set_intx_status(&dev->cfg, false);
	}
	return 0;
}

int irq_intx_update_locked(struct vfpm_device *dev)
{
	return intx_update(dev);
}

bool irq_intx_in_use_locked(struct vfpm_device *dev)
{
	return dev->has_intx && dev->intx_fd >= 0 && !msix_enabled(dev) && !msi_enabled(dev);
}

static void msix_deliver_pending(struct vfpm_device *dev)
{
	if (!msix_enabled(dev) || msix_func_masked(dev))
		return;
	for (unsigned v = 0; v < dev->msix_nvec; v++) {
		if (pba_get(dev, v) && !msix_vec_masked(dev, v) && dev->msix_fds[v] >= 0) {
			pba_set(dev, v, false);
			signal_fd(dev->msix_fds[v]);
		}
	}
}

static void msi_deliver_pending(struct vfpm_device *dev)
{
	if (!msi_enabled(dev))
		return;
	uint32_t ready = dev->msi_pending & ~msi_mask(dev);
	for (unsigned v = 0; v < dev->msi_nvec; v++) {
		if ((ready >> v & 1) && dev->msi_fds[v] >= 0) {
			dev->msi_pending &= ~(1u << v);
			signal_fd(dev->msi_fds[v]);
		}
	}
	pci_cfg_set32(&dev->cfg, dev->msi_cap + PCI_MSI_PENDING_64, dev->msi_pending);
}

/* --- config space hooks (dev->lock held by the config write path) --- */

static void hook_command(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			 uint32_t old, const struct pci_access *acc)
{
	struct vfpm_device *dev = opaque;
	if ((old & PCI_COMMAND_INTX_DISABLE) && !pci_cfg_intx_disabled(cfg))
		intx_update(dev);
}

static void hook_msix_ctrl(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			   uint32_t old, const struct pci_access *acc)
{
	msix_deliver_pending(opaque);
}

static void hook_msi(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
		     uint32_t old, const struct pci_access *acc)
{
	msi_deliver_pending(opaque);
}

void irq_install_cfg_hooks(struct vfpm_device *dev)
{
	pci_cfg_hook(&dev->cfg, PCI_COMMAND, 2, hook_command, dev);
	if (dev->msix_cap)
		pci_cfg_hook(&dev->cfg, dev->msix_cap + PCI_MSIX_FLAGS, 2, hook_msix_ctrl, dev);
	if (dev->msi_cap) {
		pci_cfg_hook(&dev->cfg, dev->msi_cap + PCI_MSI_FLAGS, 2, hook_msi, dev);
		pci_cfg_hook(&dev->cfg, dev->msi_cap + PCI_MSI_MASK_64, 4, hook_msi, dev);
	}
}

void irq_reset_device_state(struct vfpm_device *dev)
{
	dev->intx_level = false;
	dev->intx_pulse = false;
	dev->msi_pending = 0;
	if (dev->msix_cap)
		memset(dev->msix_pba, 0, ((dev->msix_nvec + 63) / 64) * 8);
}

void irq_reset_state(struct vfpm_device *dev)
{
	irq_reset_device_state(dev);
	dev->intx_masked = false;
	if (dev->msix_cap) {
		/* the client's SET_IRQS masks are host-side setup, like its
		 * eventfds: they stay */
		dev->msix_table_written = false;
		memset(dev->msix_table, 0, (size_t)dev->msix_nvec * 16);
		for (unsigned v = 0; v < dev->msix_nvec; v++)
			dev->msix_table[v * 16 + PCI_MSIX_ENTRY_VECTOR_CTRL] = PCI_MSIX_ENTRY_CTRL_MASKBIT;
	}
}

/* --- INTx unmask through an eventfd (the kernel's irqfd unmask) --- */

static void *unmask_main(void *arg)
{
	struct vfpm_device *dev = arg;
	/* a thread starts with its creator's name (here a session's) */
	pthread_setname_np(pthread_self(), "vfpm-intx");
	struct pollfd p[2] = { { .fd = dev->intx_unmask_fd, .events = POLLIN },
			       { .fd = dev->unmask_stop_fd, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		uint64_t n;
		if ((p[0].revents & POLLIN) && read(p[0].fd, &n, sizeof(n)) == sizeof(n)) {
			mutex_lock(&dev->lock);
			/* a line masked by a suspend stays masked: its resume unmasks
			 * it (B17), and this unmask takes no PM reference (it is no
			 * device command) */
			if (!dev->pm.intx_masked_by_pm) {
				dev->intx_masked = false;
				intx_update(dev);   /* still asserted: fires, masks again */
			}
			mutex_unlock(&dev->lock);
		}
	}
	return NULL;
}

/* irq_lock held: stops the thread and closes the unmask eventfd. */
static void unmask_stop(struct vfpm_device *dev)
{
	if (dev->unmask_thread_running) {
		uint64_t one = 1;
		if (write(dev->unmask_stop_fd, &one, sizeof(one)) < 0) {
			/* cannot fail on a fresh eventfd */
		}
		pthread_join(dev->unmask_thread, NULL);
		close(dev->unmask_stop_fd);
		dev->unmask_stop_fd = -1;
		dev->unmask_thread_running = false;
	}
	close_fd(&dev->intx_unmask_fd);
}

/* irq_lock held: fd (an eventfd, now owned here) unmasks INTx when
 * signalled; -1 removes it. */
static int unmask_set(struct vfpm_device *dev, int fd)
{
	unmask_stop(dev);
	if (fd < 0)
		return 0;
	dev->unmask_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (dev->unmask_stop_fd < 0) {
		close(fd);
		return -errno;
	}
	dev->intx_unmask_fd = fd;
	int rc = pthread_create(&dev->unmask_thread, NULL, unmask_main, dev);
	if (rc) {
		close_fd(&dev->intx_unmask_fd);
		close(dev->unmask_stop_fd);
		dev->unmask_stop_fd = -1;
		return -rc;
	}
	dev->unmask_thread_running = true;
	return 0;
}

void irq_release_all(struct vfpm_device *dev)
{
	mutex_lock(&dev->irq_lock);
	unmask_stop(dev);
	mutex_unlock(&dev->irq_lock);
	mutex_lock(&dev->lock);
	close_fd(&dev->intx_fd);
	close_fd(&dev->err_fd);
	close_fd(&dev->req_fd);
	for (unsigned i = 0; i < CORE_MAX_MSI; i++)
		close_fd(&dev->msi_fds[i]);
	for (unsigned i = 0; i < dev->msix_nvec; i++)
		close_fd(&dev->msix_fds[i]);
	if (dev->msix_cap)
		memset(dev->msix_irq_mask, 0, ((dev->msix_nvec + 63) / 64) * 8);
	mutex_unlock(&dev->lock);
}

void irq_signal_req(struct vfpm_device *dev)
{
	mutex_lock(&dev->lock);
	if (dev->req_fd >= 0)
		signal_fd(dev->req_fd);
	mutex_unlock(&dev->lock);
}

/* --- model API --- */

VFPM_EXPORT int vfpm_dev_irq(struct vfpm_device *dev, unsigned vec)
{
	if (!dev)
		return -EINVAL;
	/* the vectors the model declared (fixed after create()): a vector
	 * past every mechanism's count is the model's error whatever the
	 * client enabled */
	unsigned declared = dev->has_intx ? 1 : 0;
	if (dev->msi_nvec > declared)
		declared = dev->msi_nvec;
	if (dev->msix_nvec > declared)
		declared = dev->msix_nvec;
	if (!declared)
		return -ENODEV;
	if (vec >= declared)
		return -EINVAL;
	int rc;
	mutex_lock(&dev->lock);
	if (msix_enabled(dev))
		rc = vec < dev->msix_nvec ? msix_fire(dev, vec) : -EINVAL;
	else if (msi_enabled(dev))
		rc = vec < msi_enabled_vecs(dev) ? msi_fire(dev, vec) : -EINVAL;
	else if (dev->has_intx) {
		dev->intx_level = true;
		rc = intx_update(dev);
	} else
		rc = -ENODEV;
	mutex_unlock(&dev->lock);
	return rc;
}

VFPM_EXPORT void vfpm_dev_intx(struct vfpm_device *dev, bool level)
{
	if (!dev || !dev->has_intx)
		return;
	mutex_lock(&dev->lock);
	dev->intx_level = level;
	intx_update(dev);
	mutex_unlock(&dev->lock);
}

/* --- MSI-X table and PBA inside their BAR --- */

bool irq_msix_overlaps(struct vfpm_device *dev, unsigned bar, uint64_t off, uint64_t len)
{
	if (!dev->msix_cap || bar != dev->msix_bar)
		return false;
	uint64_t t0 = dev->msix_table_off, t1 = t0 + (uint64_t)dev->msix_nvec * 16;
	uint64_t p0 = dev->msix_pba_off, p1 = p0 + ((dev->msix_nvec + 63) / 64) * 8;
	return (off < t1 && t0 < off + len) || (off < p1 && p0 < off + len);
}

int irq_msix_rw(struct vfpm_device *dev, uint64_t off, void *buf, uint32_t len, bool is_write)
{
	uint64_t t0 = dev->msix_table_off, t1 = t0 + (uint64_t)dev->msix_nvec * 16;
	uint64_t p0 = dev->msix_pba_off, p1 = p0 + ((dev->msix_nvec + 63) / 64) * 8;
	int rc = 0;
	mutex_lock(&dev->lock);
	if (off >= t0 && off + len <= t1) {
		uint8_t *p = dev->msix_table + (off - t0);
		if (is_write) {
			memcpy(p, buf, len);
			dev->msix_table_written = true;   /* the table now counts */
			/* An unmasked vector with its pending bit set fires now. */
			msix_deliver_pending(dev);
		} else {
			memcpy(buf, p, len);
		}
	} else if (off >= p0 && off + len <= p1) {
		if (!is_write)
			memcpy(buf, (uint8_t *)dev->msix_pba + (off - p0), len);
		/* the PBA is read-only: writes are dropped */
	} else {
		rc = -EINVAL;   /* straddles the table or PBA boundary */
	}
	mutex_unlock(&dev->lock);
	return rc;
}

/* --- SET_IRQS --- */

bool core_is_eventfd(int fd)
{
	char path[64], target[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, target, sizeof(target) - 1);
	if (n < 0)
		return false;
	target[n] = '\0';
	return !strcmp(target, "anon_inode:[eventfd]");
}

static int *irq_fd_slot(struct vfpm_device *dev, uint32_t index, uint32_t i)
{
	switch (index) {
	case VFU_IRQ_INTX:
		return &dev->intx_fd;
	case VFU_IRQ_MSI:
		return &dev->msi_fds[i];
	case VFU_IRQ_MSIX:
		return &dev->msix_fds[i];
	case VFU_IRQ_ERR:
		return &dev->err_fd;
	default:
		return &dev->req_fd;
	}
}

static void irq_mask(struct vfpm_device *dev, uint32_t index, uint32_t v, bool mask)
{
	switch (index) {
	case VFU_IRQ_INTX:
		dev->intx_masked = mask;
		if (!mask)
			intx_update(dev);
		break;
	case VFU_IRQ_MSI: {
		uint32_t m = msi_mask(dev);
		m = mask ? m | (1u << v) : m & ~(1u << v);
		pci_cfg_set32(&dev->cfg, dev->msi_cap + PCI_MSI_MASK_64, m);
		if (!mask)
			msi_deliver_pending(dev);
		break;
	}
	case VFU_IRQ_MSIX:
		/* the client's own mask: the server's table is left alone */
		if (mask)
			dev->msix_irq_mask[v / 64] |= 1ull << (v % 64);
		else
			dev->msix_irq_mask[v / 64] &= ~(1ull << (v % 64));
		if (!mask)
			msix_deliver_pending(dev);
		break;
	}
}

static void irq_trigger(struct vfpm_device *dev, uint32_t index, uint32_t v)
{
	switch (index) {
	case VFU_IRQ_INTX:
		dev->intx_level = true;
		intx_update(dev);
		dev->intx_level = false;  /* a client-made pulse, not a held line */
		break;
	case VFU_IRQ_MSI:
		msi_fire(dev, v);
		break;
	case VFU_IRQ_MSIX:
		if (msix_enabled(dev))
			msix_fire(dev, v);
		break;
	default: {
		int fd = *irq_fd_slot(dev, index, 0);
		if (fd >= 0)
			signal_fd(fd);
	}
	}
}

/* Validation follows the spec's list: one data type, one action, index
 * and range in bounds with overflow-safe sums, ERR/REQ trigger-only,
 * descriptors only with DATA_EVENTFD and then one per vector. */
int irq_set(struct vfpm_device *dev, uint32_t flags, uint32_t index, uint32_t start,
	    uint32_t count, const uint8_t *data, int *fds, int nfds)
{
	uint32_t dtype = flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
	uint32_t action = flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
	if (flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK))
		return -EINVAL;
	if (dtype != VFIO_IRQ_SET_DATA_NONE && dtype != VFIO_IRQ_SET_DATA_BOOL &&
	    dtype != VFIO_IRQ_SET_DATA_EVENTFD)
		return -EINVAL;
	if (action != VFIO_IRQ_SET_ACTION_MASK && action != VFIO_IRQ_SET_ACTION_UNMASK &&
	    action != VFIO_IRQ_SET_ACTION_TRIGGER)
		return -EINVAL;
	if (index >= VFU_IRQ_NUM)
		return -EINVAL;
	if (nfds && dtype != VFIO_IRQ_SET_DATA_EVENTFD)
		return -EINVAL;
	int n = irq_count(dev, index);
	if (count == 0) {
		if (start != 0 || dtype != VFIO_IRQ_SET_DATA_NONE ||
		    action != VFIO_IRQ_SET_ACTION_TRIGGER)
			return -EINVAL;
		/* disable the whole index (for INTx, its unmask eventfd too) */
		if (index == VFU_IRQ_INTX) {
			mutex_lock(&dev->irq_lock);
			unmask_set(dev, -1);
			mutex_unlock(&dev->irq_lock);
		}
		mutex_lock(&dev->lock);
		for (int i = 0; i < n; i++)
			close_fd(irq_fd_slot(dev, index, (uint32_t)i));
		if (index == VFU_IRQ_MSIX)
			memset(dev->msix_irq_mask, 0, ((dev->msix_nvec + 63) / 64) * 8);
		mutex_unlock(&dev->lock);
		return 0;
	}
	if (n <= 0 || start >= (uint32_t)n || count > (uint32_t)n - start)
		return -EINVAL;
	if ((index == VFU_IRQ_ERR || index == VFU_IRQ_REQ) &&
	    (action != VFIO_IRQ_SET_ACTION_TRIGGER || count > 1))
		return -EINVAL;
	if (dtype == VFIO_IRQ_SET_DATA_EVENTFD) {
		if (nfds != 0 && (uint32_t)nfds != count)
			return -EINVAL;
		for (int i = 0; i < nfds; i++)
			if (!core_is_eventfd(fds[i]))
				return -EINVAL;
		if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
			/* As vfio-pci: only INTx takes an unmask eventfd (signalling it
			 * unmasks the line); a mask eventfd, or one for MSI/MSI-X,
			 * has no handler. */
			if (index != VFU_IRQ_INTX || action != VFIO_IRQ_SET_ACTION_UNMASK)
				return -ENOTTY;
			mutex_lock(&dev->irq_lock);
			int rc = unmask_set(dev, nfds ? fds[0] : -1);
			mutex_unlock(&dev->irq_lock);
			if (nfds)
				fds[0] = -1;   /* owned (or closed) by unmask_set */
			return rc;
		}
		mutex_lock(&dev->lock);
		for (uint32_t i = 0; i < count; i++) {
			int *slot = irq_fd_slot(dev, index, start + i);
			close_fd(slot);
			if (nfds) {
				*slot = fds[i];
				fds[i] = -1;  /* now owned here */
			}
		}
		/* a vector that went pending while it had no eventfd fires now
		 * (QEMU disables and re-enables every MSI-X vector to add one) */
		if (index == VFU_IRQ_INTX)
			intx_update(dev);
		else if (index == VFU_IRQ_MSIX)
			msix_deliver_pending(dev);
		mutex_unlock(&dev->lock);
		return 0;
	}
	mutex_lock(&dev->lock);
	for (uint32_t i = 0; i < count; i++) {
		if (dtype == VFIO_IRQ_SET_DATA_BOOL && !data[i])
			continue;
		if (action == VFIO_IRQ_SET_ACTION_TRIGGER)
			irq_trigger(dev, index, start + i);
		else
			irq_mask(dev, index, start + i, action == VFIO_IRQ_SET_ACTION_MASK);
	}
	mutex_unlock(&dev->lock);
	return 0;
}
