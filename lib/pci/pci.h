/* PCI configuration space emulation: bytes, declarative per-register
 * permissions, BAR sizing, COMMAND/STATUS semantics and capability builders.
 *
 * Not thread-safe: the device core serialises access with its cfg lock.
 * Knows nothing above it: side effects reach the device through write hooks.
 */
#ifndef VFPM_PCI_H
#define VFPM_PCI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* PCIe config space; pci_regs.h names this PCI_CFG_SPACE_EXP_SIZE */
#define VPCI_CFG_SIZE 4096
#define PCI_NUM_BARS 6

/* One register permission entry: bits of a (1, 2 or 4 byte) register at
 * off that a write may change (rw) or clears by writing 1 (w1c). Bits in
 * neither are read-only. Tables of these are applied with pci_cfg_perm(). */
struct pci_perm {
	uint16_t off;
	uint8_t len;
	uint32_t rw;
	uint32_t w1c;
};

/* What a config write asks of the device beyond the bytes it stores. Write
 * hooks report it here; the device acts on it once, after its config lock
 * drops, never from inside a hook. */
struct pci_effects {
	unsigned flags;        /* PCI_FX_* */
	int power_state;       /* PCI_FX_POWER: the PowerState written (0..3) */
	uint16_t command_old, command;   /* PCI_FX_COMMAND: before and after */
};
#define PCI_FX_POWER 0x1u      /* a write that starts at PMCSR (a transition) */
#define PCI_FX_FLR 0x2u        /* DEVCTL Initiate FLR was set */
#define PCI_FX_SRIOV_CTRL 0x4u /* the SR-IOV Control register was written */
#define PCI_FX_COMMAND 0x8u    /* the COMMAND register's value changed */

/* The raw client access that caused a write hook to run. */
struct pci_access {
	unsigned off;      /* access start, aligned to len */
	unsigned len;      /* 1, 2 or 4 */
	uint32_t val;      /* value written, before any masking, little-endian */
	struct pci_effects *fx;   /* where the hook reports effects (never NULL) */
};

struct pci_cfg;

/* Runs after the masked bytes of an access that overlaps [reg, reg+len)
 * have been stored. old is the register's value before the access. The hook
 * may change cfg bytes (e.g. apply a virtualised field itself). */
typedef void (*pci_write_hook)(void *opaque, struct pci_cfg *cfg, unsigned reg,
			       unsigned len, uint32_t old, const struct pci_access *acc);

#define PCI_MAX_HOOKS 32

struct pci_hook {
	uint16_t reg;
	uint8_t len;
	pci_write_hook fn;
	void *opaque;
};

/* BAR flags */
#define PCI_BARF_IO 0x1u
#define PCI_BARF_MEM64 0x2u
#define PCI_BARF_PREFETCH 0x4u

struct pci_bar {
	uint64_t size;     /* 0: no BAR here (absent, or the upper half of a 64-bit BAR) */
	unsigned flags;
};

struct pci_cfg {
	uint8_t data[VPCI_CFG_SIZE];
	uint8_t wmask[VPCI_CFG_SIZE];
	uint8_t w1cmask[VPCI_CFG_SIZE];
	/* Snapshot of data taken at the end of device construction: what a
	 * reset returns to. */
	uint8_t reset_data[VPCI_CFG_SIZE];
	struct pci_bar bars[PCI_NUM_BARS];
	uint32_t rom_size;
	struct pci_hook hooks[PCI_MAX_HOOKS];
	unsigned nhooks;
	uint8_t last_cap;      /* offset of the last standard capability, 0 if none */
	uint16_t next_cap;     /* next free offset for a standard capability */
	uint16_t last_ext_cap; /* offset of the last extended capability, 0 if none */
	uint16_t next_ext_cap; /* next free offset in extended space */
};

/* Initialises a type 0 header with the standard permissions (COMMAND bits
 * IO/MEM/BME/PARITY/SERR/INTX_DISABLE rw, STATUS error bits w1c,
 * cache line size and latency timer rw, interrupt line rw). */
void pci_cfg_init(struct pci_cfg *cfg, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id);

/* Applies a permission table. Each entry replaces the rw/w1c masks of the
 * bytes it covers; entries leaving the space are ignored. */
void pci_cfg_perm(struct pci_cfg *cfg, const struct pci_perm *tbl, size_t n);
/* Applies a table whose offsets are relative to base (a capability).
 * Nothing is applied unless every entry has len 1, 2 or 4 and fits in the
 * space: returns 0 or -EINVAL. */
int pci_cfg_perm_at(struct pci_cfg *cfg, unsigned base, const struct pci_perm *tbl, size_t n);

/* The part of an access that lands in the register [reg, reg+len) (len <=
 * 4), shifted to the register's bit 0; *mask (if not NULL) gets the bits the
 * access covered. For hooks that act on the raw value, e.g. FLR. */
uint32_t pci_access_reg_val(const struct pci_access *acc, unsigned reg, unsigned len,
			    uint32_t *mask);

/* Registers a write hook on [reg, reg+len). Hooks run in registration order;
 * for len > 4 old holds the first 4 bytes. Returns 0, -ENOSPC, or -EINVAL
 * (len 0 or > 255, range leaving the space, fn NULL). */
int pci_cfg_hook(struct pci_cfg *cfg, unsigned reg, unsigned len, pci_write_hook fn,
		 void *opaque);

/* Declares BAR idx (a 64-bit BAR also takes idx+1). size is a power of two
 * (16..2 GiB for 32-bit memory, >= 16 for 64-bit memory, 4..256 for I/O).
 * Returns 0 or -EINVAL (also when the BAR or its upper half is taken). */
int pci_cfg_set_bar(struct pci_cfg *cfg, unsigned idx, uint64_t size, unsigned flags);
/* Declares an expansion ROM of size bytes (power of two, 2 KiB..16 MiB as
 * the PCI spec allows). Returns 0 or -EINVAL. */
int pci_cfg_set_rom(struct pci_cfg *cfg, uint32_t size);

/* Sets the interrupt pin (1 = INTA, 0 = none); values above 4 (INTD) are
 * ignored. */
void pci_cfg_set_intx_pin(struct pci_cfg *cfg, uint8_t pin);

/* Adds a standard capability of len bytes (>= 2; id and next filled in)
 * linked at the end of the list; sets STATUS.CAP_LIST. Returns its offset
 * or -ENOSPC. The capability's bytes are read-only until permissions say
 * otherwise; the header (id, next) is always read-only. */
int pci_cfg_add_cap(struct pci_cfg *cfg, uint8_t id, unsigned len);
/* Adds an extended capability (header at off, version ver) of len bytes
 * (>= 4). Returns its offset (>= 0x100) or -ENOSPC; -EINVAL for len < 4 or
 * ver > 15. */
int pci_cfg_add_ext_cap(struct pci_cfg *cfg, uint16_t id, uint8_t ver, unsigned len);
/* Finds a standard / extended capability; returns offset or 0. */
unsigned pci_cfg_find_cap(const struct pci_cfg *cfg, uint8_t id);
unsigned pci_cfg_find_ext_cap(const struct pci_cfg *cfg, uint16_t id);

/* Capability builders. Each returns the capability offset or negative errno. */
/* PM: pmc holds the PMC register bits to advertise (version 3 is forced,
 * D1/D2 support and PME support as given); no_soft_reset sets PMCSR
 * NoSoftRst. PowerState bits are rw (a hook may virtualise them). */
int pci_cap_pm(struct pci_cfg *cfg, uint16_t pmc, bool no_soft_reset);
/* MSI with nvec (1,2,4..32) vectors, 64-bit address, per-vector masking. */
int pci_cap_msi(struct pci_cfg *cfg, unsigned nvec);
/* MSI-X with nvec (1..2048) vectors; table and PBA inside BARs. The BARs
 * must already be declared as memory BARs holding the (8-byte aligned,
 * non-overlapping) table and PBA; -EINVAL otherwise. */
int pci_cap_msix(struct pci_cfg *cfg, unsigned nvec, unsigned table_bar, uint32_t table_off,
		 unsigned pba_bar, uint32_t pba_off);
/* PCI Express endpoint capability (version 2), with device control rw bits.
 * DEVCTL.BCR_FLR is not stored (reads 0): a hook on DEVCTL sees it in the
 * raw access (pci_access_reg_val). */
int pci_cap_pcie(struct pci_cfg *cfg);

/* SR-IOV extended capability of a PF. vf_bars describe one VF's BARs
 * (memory only); NumVFs is writable only while VF Enable is clear and never
 * above total_vfs; VF Enable, VF MSE and ARI Capable Hierarchy are rw; the
 * rest is read-only. supported_pgsz must include 4 KiB (bit 0). */
struct pci_sriov_desc {
	uint16_t total_vfs, initial_vfs;
	uint16_t first_offset, stride;
	uint16_t vf_device_id;
	uint32_t supported_pgsz;
	struct pci_bar vf_bars[PCI_NUM_BARS];
};
int pci_cap_sriov(struct pci_cfg *cfg, const struct pci_sriov_desc *d);

/* Takes the reset snapshot (call once the device is fully described). */
void pci_cfg_seal(struct pci_cfg *cfg);
/* Restores every byte to the reset snapshot (function reset). */
void pci_cfg_reset(struct pci_cfg *cfg);

/* Config accesses of any length at any offset within 0..4095; split into
 * naturally aligned pieces of 1, 2 or 4 bytes as hardware sees them. A
 * write's hooks add their effects to *fx (cleared first; fx may be NULL
 * when the caller acts on none). Returns 0 or -EINVAL when [off, off+len)
 * leaves the space. */
int pci_cfg_read(const struct pci_cfg *cfg, unsigned off, void *buf, size_t len);
int pci_cfg_write(struct pci_cfg *cfg, unsigned off, const void *buf, size_t len,
		  struct pci_effects *fx);

/* Little-endian accessors that bypass permissions (device-side). */
uint8_t pci_cfg_get8(const struct pci_cfg *cfg, unsigned off);
uint16_t pci_cfg_get16(const struct pci_cfg *cfg, unsigned off);
uint32_t pci_cfg_get32(const struct pci_cfg *cfg, unsigned off);
void pci_cfg_set8(struct pci_cfg *cfg, unsigned off, uint8_t v);
void pci_cfg_set16(struct pci_cfg *cfg, unsigned off, uint16_t v);
void pci_cfg_set32(struct pci_cfg *cfg, unsigned off, uint32_t v);

/* COMMAND/STATUS helpers. */
bool pci_cfg_mem_enabled(const struct pci_cfg *cfg);
bool pci_cfg_io_enabled(const struct pci_cfg *cfg);
bool pci_cfg_bus_master(const struct pci_cfg *cfg);
bool pci_cfg_intx_disabled(const struct pci_cfg *cfg);
/* Sets STATUS.INTERRUPT (bit 3, read-only to the client). */
void pci_cfg_set_intx_status(struct pci_cfg *cfg, bool asserted);

#endif
