/* PCI configuration space: storage, permission masks, write hooks, BARs and
 * the capability lists. See pci.h for the contract. */
#include "pci/pci.h"

#include <errno.h>
#include <linux/pci_regs.h>
#include <string.h>

#define CAP_STD_FIRST PCI_STD_HEADER_SIZEOF
#define CAP_EXT_FIRST 0x100u /* the spec fixes the first extended cap here */
#define CAP_EXT_NEXT_SHIFT 20
#define CAP_EXT_VER_SHIFT 16

/* Type 0 header permissions. Everything not listed (IDs, class, revision,
 * header type, BIST, capabilities pointer, interrupt pin) is read-only. The
 * BARs and ROM get their masks from pci_cfg_set_bar/pci_cfg_set_rom. */
static const struct pci_perm header_perms[] = {
	{ PCI_COMMAND, 2,
	  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
		  PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE,
	  0 },
	{ PCI_STATUS, 2, 0,
	  PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |
		  PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR |
		  PCI_STATUS_DETECTED_PARITY },
	{ PCI_CACHE_LINE_SIZE, 1, 0xff, 0 },
	{ PCI_LATENCY_TIMER, 1, 0xff, 0 },
	{ PCI_INTERRUPT_LINE, 1, 0xff, 0 },
};

static bool in_space(unsigned off, size_t len)
{
	return off <= VPCI_CFG_SIZE && len <= VPCI_CFG_SIZE - off;
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* --- raw little-endian access --- */

static uint32_t get_le(const uint8_t *p, unsigned len)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static void put_le(uint8_t *p, unsigned len, uint32_t v)
{
	for (unsigned i = 0; i < len; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Device-side accessors: out-of-range offsets read 0 and drop writes rather
 * than touch memory outside the space. */
uint8_t pci_cfg_get8(const struct pci_cfg *cfg, unsigned off)
{
	return in_space(off, 1) ? cfg->data[off] : 0;
}

uint16_t pci_cfg_get16(const struct pci_cfg *cfg, unsigned off)
{
	return in_space(off, 2) ? (uint16_t)get_le(&cfg->data[off], 2) : 0;
}

uint32_t pci_cfg_get32(const struct pci_cfg *cfg, unsigned off)
{
	return in_space(off, 4) ? get_le(&cfg->data[off], 4) : 0;
}

void pci_cfg_set8(struct pci_cfg *cfg, unsigned off, uint8_t v)
{
	if (in_space(off, 1))
		cfg->data[off] = v;
}

void pci_cfg_set16(struct pci_cfg *cfg, unsigned off, uint16_t v)
{
	if (in_space(off, 2))
		put_le(&cfg->data[off], 2, v);
}

void pci_cfg_set32(struct pci_cfg *cfg, unsigned off, uint32_t v)
{
	if (in_space(off, 4))
		put_le(&cfg->data[off], 4, v);
}

/* --- permissions and hooks --- */

int pci_cfg_perm_at(struct pci_cfg *cfg, unsigned base, const struct pci_perm *tbl, size_t n)
{
	/* Validate first so a bad table leaves the masks untouched. */
	for (size_t i = 0; i < n; i++) {
		const struct pci_perm *e = &tbl[i];
		if ((e->len != 1 && e->len != 2 && e->len != 4) || base > VPCI_CFG_SIZE ||
		    !in_space(base + e->off, e->len))
			return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pci_perm *e = &tbl[i];
		unsigned off = base + e->off;
		put_le(&cfg->wmask[off], e->len, e->rw);
		put_le(&cfg->w1cmask[off], e->len, e->w1c);
	}
	return 0;
}

void pci_cfg_perm(struct pci_cfg *cfg, const struct pci_perm *tbl, size_t n)
{
	/* The void contract skips bad entries instead of rejecting the table. */
	for (size_t i = 0; i < n; i++)
		(void)pci_cfg_perm_at(cfg, 0, &tbl[i], 1);
}

int pci_cfg_hook(struct pci_cfg *cfg, unsigned reg, unsigned len, pci_write_hook fn,
		 void *opaque)
{
	if (!fn || !len || len > UINT8_MAX || !in_space(reg, len))
		return -EINVAL;
	if (cfg->nhooks >= PCI_MAX_HOOKS)
		return -ENOSPC;
	cfg->hooks[cfg->nhooks++] = (struct pci_hook){
		.reg = (uint16_t)reg,
		.len = (uint8_t)len,
		.fn = fn,
		.opaque = opaque,
	};
	return 0;
}

uint32_t pci_access_reg_val(const struct pci_access *acc, unsigned reg, unsigned len,
			    uint32_t *mask)
{
	uint32_t v = 0, m = 0;
	if (len > 4)
		len = 4;
	for (unsigned i = 0; i < len; i++) {
		unsigned b = reg + i;
		if (b < acc->off || b - acc->off >= acc->len)
			continue;
		v |= ((acc->val >> (8 * (b - acc->off))) & 0xffu) << (8 * i);
		m |= 0xffu << (8 * i);
	}
	if (mask)
		*mask = m;
	return v;
}

static bool hook_overlaps(const struct pci_hook *h, unsigned off, unsigned len)
{
	return h->reg < off + len && off < (unsigned)h->reg + h->len;
}

static unsigned hook_val_len(const struct pci_hook *h)
{
	return h->len < 4 ? h->len : 4;
}

/* One naturally aligned access of 1, 2 or 4 bytes, as a device sees it. */
static void write_piece(struct pci_cfg *cfg, unsigned off, unsigned len, uint32_t val,
			struct pci_effects *fx)
{
	/* A hook may register further hooks; only those present now run. */
	unsigned nhooks = cfg->nhooks;
	uint32_t old[PCI_MAX_HOOKS];

	for (unsigned i = 0; i < nhooks; i++) {
		const struct pci_hook *h = &cfg->hooks[i];
		if (hook_overlaps(h, off, len))
			old[i] = get_le(&cfg->data[h->reg], hook_val_len(h));
	}

	for (unsigned i = 0; i < len; i++) {
		unsigned o = off + i;
		uint8_t v = (uint8_t)(val >> (8 * i));
		uint8_t nb = (uint8_t)((cfg->data[o] & ~cfg->wmask[o]) | (v & cfg->wmask[o]));
		cfg->data[o] = (uint8_t)(nb & ~(cfg->w1cmask[o] & v));
	}

	const struct pci_access acc = { .off = off, .len = len, .val = val, .fx = fx };
	for (unsigned i = 0; i < nhooks; i++) {
		const struct pci_hook *h = &cfg->hooks[i];
		if (hook_overlaps(h, off, len))
			h->fn(h->opaque, cfg, h->reg, h->len, old[i], &acc);
	}
}

/* Largest naturally aligned piece (4, 2 or 1 bytes) starting at off. */
static unsigned piece_len(unsigned off, size_t left)
{
	if (!(off & 3) && left >= 4)
		return 4;
	if (!(off & 1) && left >= 2)
		return 2;
	return 1;
}

int pci_cfg_write(struct pci_cfg *cfg, unsigned off, const void *buf, size_t len,
		  struct pci_effects *fx)
{
	struct pci_effects ignored;
	if (!fx)
		fx = &ignored;
	*fx = (struct pci_effects){ 0 };
	if (!in_space(off, len) || (len && !buf))
		return -EINVAL;
	uint16_t cmd = pci_cfg_get16(cfg, PCI_COMMAND);
	const uint8_t *p = buf;
	while (len) {
		unsigned n = piece_len(off, len);
		write_piece(cfg, off, n, get_le(p, n), fx);
		off += n;
		p += n;
		len -= n;
	}
	uint16_t now = pci_cfg_get16(cfg, PCI_COMMAND);
	if (now != cmd) {
		fx->flags |= PCI_FX_COMMAND;
		fx->command_old = cmd;
		fx->command = now;
	}
	return 0;
}

int pci_cfg_read(const struct pci_cfg *cfg, unsigned off, void *buf, size_t len)
{
	if (!in_space(off, len) || (len && !buf))
		return -EINVAL;
	/* Reads have no side effects, so splitting into aligned pieces would
	 * return the same bytes as one copy. */
	if (len)
		memcpy(buf, &cfg->data[off], len);
	return 0;
}

/* --- header, BARs, ROM --- */

void pci_cfg_init(struct pci_cfg *cfg, uint16_t vendor, uint16_t device,
		  uint32_t class_code, uint8_t revision, uint16_t subsys_vendor,
		  uint16_t subsys_id)
{
	memset(cfg, 0, sizeof(*cfg));
	pci_cfg_set16(cfg, PCI_VENDOR_ID, vendor);
	pci_cfg_set16(cfg, PCI_DEVICE_ID, device);
	pci_cfg_set8(cfg, PCI_REVISION_ID, revision);
	pci_cfg_set8(cfg, PCI_CLASS_PROG, (uint8_t)class_code);
	pci_cfg_set16(cfg, PCI_CLASS_DEVICE, (uint16_t)(class_code >> 8));
	pci_cfg_set8(cfg, PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
	pci_cfg_set16(cfg, PCI_SUBSYSTEM_VENDOR_ID, subsys_vendor);
	pci_cfg_set16(cfg, PCI_SUBSYSTEM_ID, subsys_id);
	pci_cfg_perm(cfg, header_perms, sizeof(header_perms) / sizeof(header_perms[0]));
	cfg->next_cap = CAP_STD_FIRST;
	cfg->next_ext_cap = CAP_EXT_FIRST;
}

static unsigned bar_off(unsigned idx)
{
	return PCI_BASE_ADDRESS_0 + 4 * idx;
}

/* True when idx is the upper dword of a declared 64-bit BAR. */
static bool bar_is_upper_half(const struct pci_cfg *cfg, unsigned idx)
{
	return idx > 0 && cfg->bars[idx - 1].size && (cfg->bars[idx - 1].flags & PCI_BARF_MEM64);
}

int pci_cfg_set_bar(struct pci_cfg *cfg, unsigned idx, uint64_t size, unsigned flags)
{
	if (idx >= PCI_NUM_BARS || !is_pow2(size) ||
	    (flags & ~(PCI_BARF_IO | PCI_BARF_MEM64 | PCI_BARF_PREFETCH)) ||
	    cfg->bars[idx].size || bar_is_upper_half(cfg, idx))
		return -EINVAL;

	uint32_t low, wlow, whigh = 0;
	if (flags & PCI_BARF_IO) {
		if ((flags & (PCI_BARF_MEM64 | PCI_BARF_PREFETCH)) || size < 4 || size > 256)
			return -EINVAL;
		/* Bit 1 is reserved (RO 0); every address bit above the size,
		 * the upper 16 included, is writable. */
		low = PCI_BASE_ADDRESS_SPACE_IO;
		wlow = (uint32_t)~(size - 1) & (uint32_t)PCI_BASE_ADDRESS_IO_MASK;
	} else {
		if (size < 16)
			return -EINVAL;
		low = (flags & PCI_BARF_PREFETCH) ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0;
		if (flags & PCI_BARF_MEM64) {
			if (idx + 1 >= PCI_NUM_BARS || cfg->bars[idx + 1].size)
				return -EINVAL;
			low |= PCI_BASE_ADDRESS_MEM_TYPE_64;
			whigh = (uint32_t)(~(size - 1) >> 32);
		} else if (size > (1ull << 31)) {
			return -EINVAL;
		}
		wlow = (uint32_t)~(size - 1) & (uint32_t)PCI_BASE_ADDRESS_MEM_MASK;
	}

	cfg->bars[idx] = (struct pci_bar){ .size = size, .flags = flags };
	pci_cfg_set32(cfg, bar_off(idx), low);
	put_le(&cfg->wmask[bar_off(idx)], 4, wlow);
	put_le(&cfg->w1cmask[bar_off(idx)], 4, 0);
	if (flags & PCI_BARF_MEM64) {
		pci_cfg_set32(cfg, bar_off(idx + 1), 0);
		put_le(&cfg->wmask[bar_off(idx + 1)], 4, whigh);
		put_le(&cfg->w1cmask[bar_off(idx + 1)], 4, 0);
	}
	return 0;
}

int pci_cfg_set_rom(struct pci_cfg *cfg, uint32_t size)
{
	if (!is_pow2(size) || size < 2048 || size > (16u << 20))
		return -EINVAL;
	cfg->rom_size = size;
	pci_cfg_set32(cfg, PCI_ROM_ADDRESS, 0);
	put_le(&cfg->wmask[PCI_ROM_ADDRESS], 4,
	       (~(size - 1) & PCI_ROM_ADDRESS_MASK) | PCI_ROM_ADDRESS_ENABLE);
	return 0;
}

void pci_cfg_set_intx_pin(struct pci_cfg *cfg, uint8_t pin)
{
	if (pin <= 4)
		cfg->data[PCI_INTERRUPT_PIN] = pin;
}

/* --- capability lists --- */

static void clear_masks(struct pci_cfg *cfg, unsigned off, unsigned len)
{
	memset(&cfg->wmask[off], 0, len);
	memset(&cfg->w1cmask[off], 0, len);
}

int pci_cfg_add_cap(struct pci_cfg *cfg, uint8_t id, unsigned len)
{
	if (len < 2)
		return -EINVAL;
	if (len > VPCI_CFG_SIZE)
		return -ENOSPC;
	unsigned off = cfg->next_cap;
	unsigned alen = (len + 3) & ~3u; /* keeps every cap 4-byte aligned */
	if (off < CAP_STD_FIRST || alen > CAP_EXT_FIRST - off)
		return -ENOSPC;

	memset(&cfg->data[off], 0, alen);
	clear_masks(cfg, off, alen);
	cfg->data[off + PCI_CAP_LIST_ID] = id;
	cfg->data[off + PCI_CAP_LIST_NEXT] = 0;
	if (cfg->last_cap)
		cfg->data[cfg->last_cap + PCI_CAP_LIST_NEXT] = (uint8_t)off;
	else
		cfg->data[PCI_CAPABILITY_LIST] = (uint8_t)off;
	pci_cfg_set16(cfg, PCI_STATUS, pci_cfg_get16(cfg, PCI_STATUS) | PCI_STATUS_CAP_LIST);
	cfg->last_cap = (uint8_t)off;
	cfg->next_cap = (uint16_t)(off + alen);
	return (int)off;
}

int pci_cfg_add_ext_cap(struct pci_cfg *cfg, uint16_t id, uint8_t ver, unsigned len)
{
	if (len < 4 || ver > 0xf)
		return -EINVAL;
	if (len > VPCI_CFG_SIZE)
		return -ENOSPC;
	unsigned off = cfg->next_ext_cap;
	unsigned alen = (len + 3) & ~3u;
	if (off < CAP_EXT_FIRST || alen > VPCI_CFG_SIZE - off)
		return -ENOSPC;

	memset(&cfg->data[off], 0, alen);
	clear_masks(cfg, off, alen);
	pci_cfg_set32(cfg, off, (uint32_t)id | ((uint32_t)ver << CAP_EXT_VER_SHIFT));
	if (cfg->last_ext_cap) {
		uint32_t prev = pci_cfg_get32(cfg, cfg->last_ext_cap);
		prev = (prev & ((1u << CAP_EXT_NEXT_SHIFT) - 1)) | ((uint32_t)off << CAP_EXT_NEXT_SHIFT);
		pci_cfg_set32(cfg, cfg->last_ext_cap, prev);
	}
	cfg->last_ext_cap = (uint16_t)off;
	cfg->next_ext_cap = (uint16_t)(off + alen);
	return (int)off;
}

unsigned pci_cfg_find_cap(const struct pci_cfg *cfg, uint8_t id)
{
	if (!(pci_cfg_get16(cfg, PCI_STATUS) & PCI_STATUS_CAP_LIST))
		return 0;
	unsigned off = cfg->data[PCI_CAPABILITY_LIST] & ~3u;
	/* Bounded by the number of slots, so a looped list cannot hang us. */
	for (unsigned n = 0; n < (CAP_EXT_FIRST - CAP_STD_FIRST) / 4; n++) {
		if (off < CAP_STD_FIRST)
			return 0;
		if (cfg->data[off + PCI_CAP_LIST_ID] == id)
			return off;
		off = cfg->data[off + PCI_CAP_LIST_NEXT] & ~3u;
	}
	return 0;
}

unsigned pci_cfg_find_ext_cap(const struct pci_cfg *cfg, uint16_t id)
{
	unsigned off = CAP_EXT_FIRST;
	for (unsigned n = 0; n < (VPCI_CFG_SIZE - CAP_EXT_FIRST) / 4; n++) {
		uint32_t hdr = pci_cfg_get32(cfg, off);
		if (!hdr || hdr == 0xffffffffu)
			return 0;
		if (PCI_EXT_CAP_ID(hdr) == id)
			return off;
		off = PCI_EXT_CAP_NEXT(hdr);
		if (off < CAP_EXT_FIRST)
			return 0;
	}
	return 0;
}

/* --- reset --- */

void pci_cfg_seal(struct pci_cfg *cfg)
{
	memcpy(cfg->reset_data, cfg->data, sizeof(cfg->data));
}

void pci_cfg_reset(struct pci_cfg *cfg)
{
	memcpy(cfg->data, cfg->reset_data, sizeof(cfg->data));
}

/* --- COMMAND / STATUS --- */

bool pci_cfg_mem_enabled(const struct pci_cfg *cfg)
{
	return pci_cfg_get16(cfg, PCI_COMMAND) & PCI_COMMAND_MEMORY;
}

bool pci_cfg_io_enabled(const struct pci_cfg *cfg)
{
	return pci_cfg_get16(cfg, PCI_COMMAND) & PCI_COMMAND_IO;
}

bool pci_cfg_bus_master(const struct pci_cfg *cfg)
{
	return pci_cfg_get16(cfg, PCI_COMMAND) & PCI_COMMAND_MASTER;
}

bool pci_cfg_intx_disabled(const struct pci_cfg *cfg)
{
	return pci_cfg_get16(cfg, PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE;
}

void pci_cfg_set_intx_status(struct pci_cfg *cfg, bool asserted)
{
	uint16_t st = pci_cfg_get16(cfg, PCI_STATUS);
	st = asserted ? (uint16_t)(st | PCI_STATUS_INTERRUPT) : (uint16_t)(st & ~PCI_STATUS_INTERRUPT);
	pci_cfg_set16(cfg, PCI_STATUS, st);
}
