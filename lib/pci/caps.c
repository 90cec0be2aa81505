/* Capability builders: PM, MSI, MSI-X, PCI Express. Each capability is
 * described by a table of initial register values and a table of
 * permissions, both relative to the capability offset. */
#include "pci/pci.h"

#include <errno.h>
#include <linux/pci_regs.h>

/* Initial value of a 1/2/4-byte register, relative to a capability. */
struct cap_init {
	uint16_t off;
	uint8_t len;
	uint32_t val;
};

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Fields of the uAPI masks (contiguous runs of bits), usable in constant
 * tables: multiplying/dividing by the mask's lowest bit shifts into place. */
#define FIELD_LSB(mask) ((uint32_t)(mask) & (0u - (uint32_t)(mask)))
#define FIELD_PREP(mask, v) (((uint32_t)(v) * FIELD_LSB(mask)) & (uint32_t)(mask))
#define FIELD_GET(mask, v) (((uint32_t)(v) & (uint32_t)(mask)) / FIELD_LSB(mask))

static void cap_set(struct pci_cfg *cfg, unsigned base, unsigned off, unsigned len, uint32_t v)
{
	if (len == 1)
		pci_cfg_set8(cfg, base + off, (uint8_t)v);
	else if (len == 2)
		pci_cfg_set16(cfg, base + off, (uint16_t)v);
	else
		pci_cfg_set32(cfg, base + off, v);
}

/* Adds the capability, fills its initial values and applies its permissions. */
static int build_cap(struct pci_cfg *cfg, uint8_t id, unsigned len, const struct cap_init *init,
		     size_t ninit, const struct pci_perm *perms, size_t nperms)
{
	int off = pci_cfg_add_cap(cfg, id, len);
	if (off < 0)
		return off;
	for (size_t i = 0; i < ninit; i++)
		cap_set(cfg, (unsigned)off, init[i].off, init[i].len, init[i].val);
	int rc = pci_cfg_perm_at(cfg, (unsigned)off, perms, nperms);
	return rc < 0 ? rc : off;
}

/* --- Power Management --- */

/* The spec revision this PMC advertises (PCI PM 1.2). */
#define PM_CAP_VERSION 3

/* PMC bits a caller may advertise; PME clock is hardwired to 0 on PCIe. */
#define PM_CAP_ALLOWED                                                                      \
	(PCI_PM_CAP_DSI | PCI_PM_CAP_AUX_POWER | PCI_PM_CAP_D1 | PCI_PM_CAP_D2 |             \
	 PCI_PM_CAP_PME_MASK)

/* PowerState and PME_En are plain storage (the PM layer virtualises
 * PowerState through a hook); PME_Status is cleared by writing 1. NoSoftRst,
 * Data_Select, Data_Scale and the Data byte stay read-only. */
static const struct pci_perm pm_perms[] = {
	{ PCI_PM_CTRL, 2, PCI_PM_CTRL_STATE_MASK | PCI_PM_CTRL_PME_ENABLE, PCI_PM_CTRL_PME_STATUS },
};

int pci_cap_pm(struct pci_cfg *cfg, uint16_t pmc, bool no_soft_reset)
{
	const struct cap_init init[] = {
		{ PCI_PM_PMC, 2,
		  (pmc & PM_CAP_ALLOWED) | FIELD_PREP(PCI_PM_CAP_VER_MASK, PM_CAP_VERSION) },
		{ PCI_PM_CTRL, 2, no_soft_reset ? PCI_PM_CTRL_NO_SOFT_RESET : 0 },
	};
	return build_cap(cfg, PCI_CAP_ID_PM, PCI_PM_SIZEOF, init, ARRAY_LEN(init), pm_perms,
			 ARRAY_LEN(pm_perms));
}

/* --- MSI --- */

#define MSI_MAX_VECTORS 32

/* The message address is dword aligned, so its low 2 bits are RO 0. The
 * per-vector mask bits are added per device (only implemented vectors);
 * pending bits belong to the device. */
static const struct pci_perm msi_perms[] = {
	{ PCI_MSI_FLAGS, 2, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE, 0 },
	{ PCI_MSI_ADDRESS_LO, 4, ~3u, 0 },
	{ PCI_MSI_ADDRESS_HI, 4, ~0u, 0 },
	{ PCI_MSI_DATA_64, 2, 0xffff, 0 },
};

int pci_cap_msi(struct pci_cfg *cfg, unsigned nvec)
{
	if (!nvec || nvec > MSI_MAX_VECTORS || (nvec & (nvec - 1)))
		return -EINVAL;
	const struct cap_init init[] = {
		{ PCI_MSI_FLAGS, 2,
		  PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT |
			  FIELD_PREP(PCI_MSI_FLAGS_QMASK, (uint32_t)__builtin_ctz(nvec)) },
	};
	int off = build_cap(cfg, PCI_CAP_ID_MSI, PCI_MSI_PENDING_64 + 4, init, ARRAY_LEN(init),
			    msi_perms, ARRAY_LEN(msi_perms));
	if (off < 0)
		return off;
	const struct pci_perm mask = {
		PCI_MSI_MASK_64, 4, nvec == MSI_MAX_VECTORS ? ~0u : (1u << nvec) - 1, 0
	};
	int rc = pci_cfg_perm_at(cfg, (unsigned)off, &mask, 1);
	return rc < 0 ? rc : off;
}

/* --- MSI-X --- */

#define MSIX_MAX_VECTORS 2048
#define MSIX_PBA_BITS_PER_QWORD 64

static const struct pci_perm msix_perms[] = {
	{ PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 0 },
};

/* A structure of len bytes at off must lie inside an implemented memory BAR. */
static bool fits_mem_bar(const struct pci_cfg *cfg, unsigned bar, uint64_t off, uint64_t len)
{
	if (bar >= PCI_NUM_BARS)
		return false;
	const struct pci_bar *b = &cfg->bars[bar];
	return b->size && !(b->flags & PCI_BARF_IO) && off <= b->size && len <= b->size - off;
}

int pci_cap_msix(struct pci_cfg *cfg, unsigned nvec, unsigned table_bar, uint32_t table_off,
		 unsigned pba_bar, uint32_t pba_off)
{
	if (!nvec || nvec > MSIX_MAX_VECTORS || (table_off & ~PCI_MSIX_TABLE_OFFSET) ||
	    (pba_off & ~PCI_MSIX_PBA_OFFSET))
		return -EINVAL;
	uint64_t tlen = (uint64_t)nvec * PCI_MSIX_ENTRY_SIZE;
	uint64_t plen = (uint64_t)(nvec + MSIX_PBA_BITS_PER_QWORD - 1) / MSIX_PBA_BITS_PER_QWORD * 8;
	if (!fits_mem_bar(cfg, table_bar, table_off, tlen) ||
	    !fits_mem_bar(cfg, pba_bar, pba_off, plen))
		return -EINVAL;
	if (table_bar == pba_bar && table_off < pba_off + plen && pba_off < table_off + tlen)
		return -EINVAL;

	const struct cap_init init[] = {
		{ PCI_MSIX_FLAGS, 2, FIELD_PREP(PCI_MSIX_FLAGS_QSIZE, nvec - 1) },
		{ PCI_MSIX_TABLE, 4, table_off | table_bar },
		{ PCI_MSIX_PBA, 4, pba_off | pba_bar },
	};
	return build_cap(cfg, PCI_CAP_ID_MSIX, PCI_CAP_MSIX_SIZEOF, init, ARRAY_LEN(init),
			 msix_perms, ARRAY_LEN(msix_perms));
}

/* --- PCI Express --- */

#define PCIE_CAP_VERSION 2
/* The whole version 2 structure, slot registers included. */
#define PCIE_CAP_LEN (PCI_EXP_SLTSTA2 + 2)

/* A x1 2.5 GT/s endpoint with 256-byte max payload and FLR. DEVCAP encodes
 * the payload size like DEVCTL does. DEVCTL starts at the spec's reset
 * values: relaxed ordering and no snoop enabled, 512-byte read requests. */
static const struct cap_init pcie_init[] = {
	{ PCI_EXP_FLAGS, 2,
	  FIELD_PREP(PCI_EXP_FLAGS_VERS, PCIE_CAP_VERSION) |
		  FIELD_PREP(PCI_EXP_FLAGS_TYPE, PCI_EXP_TYPE_ENDPOINT) },
	{ PCI_EXP_DEVCAP, 4,
	  FIELD_PREP(PCI_EXP_DEVCAP_PAYLOAD,
		     FIELD_GET(PCI_EXP_DEVCTL_PAYLOAD, PCI_EXP_DEVCTL_PAYLOAD_256B)) |
		  PCI_EXP_DEVCAP_EXT_TAG | PCI_EXP_DEVCAP_RBER | PCI_EXP_DEVCAP_FLR },
	{ PCI_EXP_DEVCTL, 2,
	  PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ_512B },
	{ PCI_EXP_LNKCAP, 4, PCI_EXP_LNKCAP_SLS_2_5GB | FIELD_PREP(PCI_EXP_LNKCAP_MLW, 1) },
	{ PCI_EXP_LNKSTA, 2, PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1 },
	{ PCI_EXP_DEVCAP2, 4, PCI_EXP_DEVCAP2_COMP_TMOUT_DIS },
	{ PCI_EXP_LNKCAP2, 4, PCI_EXP_LNKCAP2_SLS_2_5GB },
	{ PCI_EXP_LNKCTL2, 2, PCI_EXP_LNKCTL2_TLS_2_5GT },
};

/* BCR_FLR is deliberately not writable: it always reads 0, and the device
 * core sees a requested FLR in the raw access passed to its DEVCTL hook. */
static const struct pci_perm pcie_perms[] = {
	{ PCI_EXP_DEVCTL, 2,
	  PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE | PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE |
		  PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_EXT_TAG |
		  PCI_EXP_DEVCTL_NOSNOOP_EN | PCI_EXP_DEVCTL_READRQ,
	  0 },
	{ PCI_EXP_DEVSTA, 2, 0,
	  PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_NFED | PCI_EXP_DEVSTA_FED | PCI_EXP_DEVSTA_URD },
	{ PCI_EXP_LNKCTL, 2, PCI_EXP_LNKCTL_RCB | PCI_EXP_LNKCTL_CCC | PCI_EXP_LNKCTL_ES, 0 },
	{ PCI_EXP_DEVCTL2, 2, PCI_EXP_DEVCTL2_COMP_TMOUT_DIS, 0 },
};

int pci_cap_pcie(struct pci_cfg *cfg)
{
	return build_cap(cfg, PCI_CAP_ID_EXP, PCIE_CAP_LEN, pcie_init, ARRAY_LEN(pcie_init),
			 pcie_perms, ARRAY_LEN(pcie_perms));
}

/* --- SR-IOV (extended capability 0x10) --- */

/* NumVFs is writable only while VF Enable is clear, and never above
 * TotalVFs: a refused write leaves the old value (hardware ignores it). */
static void sriov_numvfs_hook(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			      uint32_t old, const struct pci_access *acc)
{
	unsigned base = reg - PCI_SRIOV_NUM_VF;
	uint16_t now = pci_cfg_get16(cfg, reg);
	/* Control (0x08) and NumVFs (0x10) never share an aligned access, so
	 * VF Enable as stored is its value before this write. */
	bool enabled = pci_cfg_get16(cfg, base + PCI_SRIOV_CTRL) & PCI_SRIOV_CTRL_VFE;
	if (now != (uint16_t)old &&
	    (enabled || now > pci_cfg_get16(cfg, base + PCI_SRIOV_TOTAL_VF)))
		pci_cfg_set16(cfg, reg, (uint16_t)old);
}

static void set_bar_mask(struct pci_cfg *cfg, unsigned off, uint64_t size, unsigned flags)
{
	uint64_t mask = ~(size - 1);
	uint32_t lo = (uint32_t)mask & PCI_BASE_ADDRESS_MEM_MASK;
	uint32_t type = (flags & PCI_BARF_MEM64 ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
			(flags & PCI_BARF_PREFETCH ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
	pci_cfg_set32(cfg, off, type);
	const struct pci_perm p = { .off = (uint16_t)off, .len = 4, .rw = lo };
	pci_cfg_perm(cfg, &p, 1);
	if (flags & PCI_BARF_MEM64) {
		const struct pci_perm hi = { .off = (uint16_t)(off + 4), .len = 4,
					     .rw = (uint32_t)(mask >> 32) };
		pci_cfg_perm(cfg, &hi, 1);
	}
}

int pci_cap_sriov(struct pci_cfg *cfg, const struct pci_sriov_desc *d)
{
	if (!d->total_vfs || d->initial_vfs > d->total_vfs || !d->supported_pgsz ||
	    !(d->supported_pgsz & 1))
		return -EINVAL;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar *b = &d->vf_bars[i];
		if (!b->size)
			continue;
		/* VF BARs are memory BARs, power-of-two sized, at least 4 KiB
		 * here since each VF's BAR is a page of the system page size */
		if ((b->flags & PCI_BARF_IO) || (b->size & (b->size - 1)) || b->size < 4096 ||
		    ((b->flags & PCI_BARF_MEM64) && i == PCI_NUM_BARS - 1) ||
		    (!(b->flags & PCI_BARF_MEM64) && b->size > (1ull << 31)))
			return -EINVAL;
		if (b->flags & PCI_BARF_MEM64)
			i++;
	}
	int base = pci_cfg_add_ext_cap(cfg, PCI_EXT_CAP_ID_SRIOV, 1, PCI_EXT_CAP_SRIOV_SIZEOF);
	if (base < 0)
		return base;
	unsigned b = (unsigned)base;
	pci_cfg_set32(cfg, b + PCI_SRIOV_CAP, 0);
	pci_cfg_set16(cfg, b + PCI_SRIOV_CTRL, 0);
	pci_cfg_set16(cfg, b + PCI_SRIOV_INITIAL_VF, d->initial_vfs);
	pci_cfg_set16(cfg, b + PCI_SRIOV_TOTAL_VF, d->total_vfs);
	pci_cfg_set16(cfg, b + PCI_SRIOV_NUM_VF, 0);
	pci_cfg_set16(cfg, b + PCI_SRIOV_VF_OFFSET, d->first_offset);
	pci_cfg_set16(cfg, b + PCI_SRIOV_VF_STRIDE, d->stride);
	pci_cfg_set16(cfg, b + PCI_SRIOV_VF_DID, d->vf_device_id);
	pci_cfg_set32(cfg, b + PCI_SRIOV_SUP_PGSIZE, d->supported_pgsz);
	pci_cfg_set32(cfg, b + PCI_SRIOV_SYS_PGSIZE, 1);   /* 4 KiB until software says */
	const struct pci_perm perms[] = {
		{ PCI_SRIOV_CTRL, 2, PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE | PCI_SRIOV_CTRL_ARI, 0 },
		{ PCI_SRIOV_NUM_VF, 2, 0xffff, 0 },
		{ PCI_SRIOV_SYS_PGSIZE, 4, d->supported_pgsz, 0 },
	};
	int rc = pci_cfg_perm_at(cfg, b, perms, ARRAY_LEN(perms));
	if (rc)
		return rc;
	for (unsigned i = 0; i < PCI_NUM_BARS; i++) {
		const struct pci_bar *vb = &d->vf_bars[i];
		if (!vb->size)
			continue;
		set_bar_mask(cfg, b + PCI_SRIOV_BAR + 4 * i, vb->size, vb->flags);
		if (vb->flags & PCI_BARF_MEM64)
			i++;
	}
	rc = pci_cfg_hook(cfg, b + PCI_SRIOV_NUM_VF, 2, sriov_numvfs_hook, NULL);
	return rc ? rc : (int)b;
}
