#include "peer.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "harness.h"
#include "wire/proto.h"

static int cfg_piece(struct peer *p, unsigned off, unsigned len, uint32_t *val, bool wr)
{
	uint8_t b[4] = { 0 };
	int rc;
	if (wr) {
		for (unsigned i = 0; i < len; i++)
			b[i] = (uint8_t)(*val >> (8 * i));
		rc = vfpm_client_region_write(p->c, VFU_PCI_CONFIG, off, b, len);
	} else {
		rc = vfpm_client_region_read(p->c, VFU_PCI_CONFIG, off, b, len);
		*val = 0;
		for (unsigned i = 0; i < len; i++)
			*val |= (uint32_t)b[i] << (8 * i);
	}
	return rc;
}

/* Splits an access into the naturally aligned pieces a CPU would issue. */
static int cfg_access(struct peer *p, unsigned off, unsigned len, uint32_t *val, bool wr)
{
	if (len != 1 && len != 2 && len != 4)
		return -EINVAL;
	if (!(off & (len - 1)))
		return cfg_piece(p, off, len, val, wr);
	uint32_t v = wr ? *val : 0;
	for (unsigned i = 0; i < len; i++) {
		uint32_t byte = (v >> (8 * i)) & 0xff;
		int rc = cfg_piece(p, off + i, 1, &byte, wr);
		if (rc)
			return rc;
		if (!wr)
			v |= byte << (8 * i);
	}
	if (!wr)
		*val = v;
	return 0;
}

int peer_cfg_read(struct peer *p, unsigned off, unsigned len, uint32_t *val)
{
	return cfg_access(p, off, len, val, false);
}

int peer_cfg_write(struct peer *p, unsigned off, unsigned len, uint32_t val)
{
	return cfg_access(p, off, len, &val, true);
}

int peer_cfg_dump(struct peer *p, uint8_t out[4096])
{
	for (unsigned off = 0; off < 4096; off += 4) {
		uint32_t v;
		int rc = peer_cfg_read(p, off, 4, &v);
		if (rc)
			return rc;
		memcpy(out + off, &v, 4);
	}
	return 0;
}

static int peer_cfg_reader(void *ctx, unsigned off, unsigned len, uint32_t *val)
{
	return peer_cfg_read(ctx, off, len, val);
}

static unsigned find_cap(struct peer *p, uint8_t id)
{
	return cfg_find_cap(peer_cfg_reader, p, id);
}

int peer_connect(struct peer *p, const char *sock)
{
	memset(p, 0, sizeof(*p));
	for (unsigned v = 0; v < PEER_MAX_VEC; v++)
		p->guest_fd[v] = p->pend_fd[v] = -1;
	struct vfpm_client_opts o = { .max_data_xfer_size = PEER_XFER_SIZE, .max_msg_fds = 8 };
	int rc = vfpm_client_connect(sock, &o, &p->c);
	if (rc)
		return rc;
	p->pm_cap = find_cap(p, PCI_CAP_ID_PM);
	p->pcie_cap = find_cap(p, PCI_CAP_ID_EXP);
	p->msix_cap = find_cap(p, PCI_CAP_ID_MSIX);
	if (p->msix_cap) {
		uint32_t flags, table, pba;
		if (peer_cfg_read(p, p->msix_cap + PCI_MSIX_FLAGS, 2, &flags) ||
		    peer_cfg_read(p, p->msix_cap + PCI_MSIX_TABLE, 4, &table) ||
		    peer_cfg_read(p, p->msix_cap + PCI_MSIX_PBA, 4, &pba))
			return -EIO;
		p->msix_nvec = (flags & PCI_MSIX_FLAGS_QSIZE) + 1;
		if (p->msix_nvec > PEER_MAX_VEC)
			p->msix_nvec = PEER_MAX_VEC;
		p->msix_bar = table & PCI_MSIX_TABLE_BIR;
		p->msix_table_off = table & PCI_MSIX_TABLE_OFFSET;
		p->msix_pba_off = pba & PCI_MSIX_PBA_OFFSET;
	}
	return 0;
}

void peer_close(struct peer *p)
{
	if (p->c)
		vfpm_client_close(p->c);
	p->c = NULL;
	for (unsigned v = 0; v < PEER_MAX_VEC; v++) {
		if (p->guest_fd[v] >= 0)
			close(p->guest_fd[v]);
		if (p->pend_fd[v] >= 0)
			close(p->pend_fd[v]);
		p->guest_fd[v] = p->pend_fd[v] = -1;
	}
}

static bool touches_msix(struct peer *p, unsigned bar, uint64_t off, unsigned len)
{
	if (!p->msix_cap || bar != p->msix_bar)
		return false;
	uint64_t t0 = p->msix_table_off, t1 = t0 + (uint64_t)p->msix_nvec * 16;
	uint64_t p0 = p->msix_pba_off, p1 = p0 + 8 * ((p->msix_nvec + 63) / 64);
	return (off < t1 && t0 < off + len) || (off < p1 && p0 < off + len);
}

int peer_bar_read(struct peer *p, unsigned bar, uint64_t off, unsigned len, uint32_t *val)
{
	if (touches_msix(p, bar, off, len))
		return -EPERM;   /* the VMM serves these itself */
	*val = 0;
	return vfpm_client_region_read(p->c, bar, off, val, len);
}

int peer_bar_write(struct peer *p, unsigned bar, uint64_t off, unsigned len, uint32_t val)
{
	if (touches_msix(p, bar, off, len))
		return -EPERM;
	return vfpm_client_region_write(p->c, bar, off, &val, len);
}

static int set_vector_fd(struct peer *p, unsigned v, int fd)
{
	return vfpm_client_set_irqs(p->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				    VFIO_PCI_MSIX_IRQ_INDEX, v, 1, &fd, 1, NULL);
}

int peer_msix_enable(struct peer *p)
{
	if (!p->msix_cap)
		return -ENODEV;
	uint32_t flags;
	int rc = peer_cfg_read(p, p->msix_cap + PCI_MSIX_FLAGS, 2, &flags);
	if (!rc)
		rc = peer_cfg_write(p, p->msix_cap + PCI_MSIX_FLAGS, 2, flags | PCI_MSIX_FLAGS_ENABLE);
	if (rc)
		return rc;
	int fds[PEER_MAX_VEC];
	for (unsigned v = 0; v < p->msix_nvec; v++) {
		if (p->guest_fd[v] < 0)
			p->guest_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->pend_fd[v] < 0)
			p->pend_fd[v] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (p->guest_fd[v] < 0 || p->pend_fd[v] < 0)
			return -errno;
		fds[v] = p->guest_fd[v];
		p->masked[v] = false;
	}
	return vfpm_client_set_irqs(p->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				    VFIO_PCI_MSIX_IRQ_INDEX, 0, p->msix_nvec, fds,
				    (int)p->msix_nvec, NULL);
}

static uint64_t take(int fd)
{
	uint64_t n = 0;
	if (fd < 0 || read(fd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

int peer_msix_mask_by_swap(struct peer *p, unsigned v)
{
	if (v >= p->msix_nvec)
		return -EINVAL;
	p->masked[v] = true;
	return set_vector_fd(p, v, p->pend_fd[v]);
}

int peer_msix_unmask_by_swap(struct peer *p, unsigned v)
{
	if (v >= p->msix_nvec)
		return -EINVAL;
	int rc = set_vector_fd(p, v, p->guest_fd[v]);
	if (rc)
		return rc;
	p->masked[v] = false;
	/* the VMM's emulated PBA: what fired while masked goes to the guest
	 * once */
	if (take(p->pend_fd[v]))
		p->pba |= 1ull << v;
	if (p->pba >> v & 1) {
		p->pba &= ~(1ull << v);
		uint64_t one = 1;
		if (write(p->guest_fd[v], &one, sizeof(one)) != sizeof(one))
			return -errno;
	}
	return 0;
}

uint64_t peer_guest_irqs(struct peer *p, unsigned v)
{
	if (v >= p->msix_nvec)
		return 0;
	if (p->masked[v] && take(p->pend_fd[v]))
		p->pba |= 1ull << v;
	return take(p->guest_fd[v]);
}

uint64_t peer_wait_guest_irq(struct peer *p, unsigned v, int ms)
{
	if (v >= p->msix_nvec)
		return 0;
	struct pollfd pf = { .fd = p->guest_fd[v], .events = POLLIN };
	if (poll(&pf, 1, ms) <= 0)
		return 0;
	return take(p->guest_fd[v]);
}

int peer_flr(struct peer *p)
{
	if (!p->pcie_cap)
		return -ENODEV;
	uint32_t ctl;
	int rc = peer_cfg_read(p, p->pcie_cap + PCI_EXP_DEVCTL, 2, &ctl);
	return rc ? rc : peer_cfg_write(p, p->pcie_cap + PCI_EXP_DEVCTL, 2, ctl | PCI_EXP_DEVCTL_BCR_FLR);
}

int peer_unmap_space(struct peer *p, unsigned bits, unsigned chunk_bits)
{
	uint64_t end = bits >= 64 ? 0 : 1ull << bits, chunk = 1ull << chunk_bits;
	for (uint64_t a = 0; a < end; a += chunk) {
		int rc = vfpm_client_dma_unmap(p->c, a, chunk);
		if (rc)
			return rc;
	}
	return 0;
}
