/* Unit tests for the PCI configuration space layer (lib/pci). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <linux/pci_regs.h>

#include "pci/pci.h"

#define TEST_VENDOR 0x1b36
#define TEST_DEVICE 0x0011
#define TEST_CLASS 0xff0000u
#define TEST_REV 0x02
#define TEST_SVID 0x1af4
#define TEST_SSID 0x1100

#define STATUS_ERR_BITS                                                                      \
	(PCI_STATUS_PARITY | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_REC_TARGET_ABORT |     \
	 PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_SIG_SYSTEM_ERROR | PCI_STATUS_DETECTED_PARITY)

/* --- client-side access helpers (through the permission path) --- */

static void wr(struct pci_cfg *cfg, unsigned off, unsigned len, uint32_t v)
{
	uint8_t b[4];
	for (unsigned i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_int_equal(pci_cfg_write(cfg, off, b, len, NULL), 0);
}

static uint32_t rd(const struct pci_cfg *cfg, unsigned off, unsigned len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;
	assert_int_equal(pci_cfg_read(cfg, off, b, len), 0);
	for (unsigned i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

static struct pci_cfg *new_cfg(void)
{
	struct pci_cfg *cfg = malloc(sizeof(*cfg));
	assert_non_null(cfg);
	pci_cfg_init(cfg, TEST_VENDOR, TEST_DEVICE, TEST_CLASS, TEST_REV, TEST_SVID, TEST_SSID);
	return cfg;
}

/* Offsets of a fully described device. */
struct full_dev {
	struct pci_cfg *cfg;
	int pm, msi, msix, pcie, dsn, vndr;
};

#define MSIX_BAR 0
#define MSIX_TABLE_OFF 0x800
#define MSIX_PBA_OFF 0xc00
#define MSIX_NVEC 8
#define MSI_NVEC 4

static struct full_dev new_full_dev(void)
{
	struct full_dev d = { .cfg = new_cfg() };
	struct pci_cfg *cfg = d.cfg;
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, 0), 0);
	assert_int_equal(pci_cfg_set_bar(cfg, 2, 8ull << 30, PCI_BARF_MEM64 | PCI_BARF_PREFETCH), 0);
	assert_int_equal(pci_cfg_set_bar(cfg, 4, 32, PCI_BARF_IO), 0);
	assert_int_equal(pci_cfg_set_rom(cfg, 64 * 1024), 0);
	pci_cfg_set_intx_pin(cfg, 1);
	d.pm = pci_cap_pm(cfg, PCI_PM_CAP_D1 | PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot, true);
	d.msi = pci_cap_msi(cfg, MSI_NVEC);
	d.msix = pci_cap_msix(cfg, MSIX_NVEC, MSIX_BAR, MSIX_TABLE_OFF, MSIX_BAR, MSIX_PBA_OFF);
	d.pcie = pci_cap_pcie(cfg);
	d.dsn = pci_cfg_add_ext_cap(cfg, PCI_EXT_CAP_ID_DSN, 1, PCI_EXT_CAP_DSN_SIZEOF);
	d.vndr = pci_cfg_add_ext_cap(cfg, PCI_EXT_CAP_ID_VNDR, 1, 10);
	assert_true(d.pm > 0 && d.msi > 0 && d.msix > 0 && d.pcie > 0);
	assert_true(d.dsn > 0 && d.vndr > 0);
	pci_cfg_set32(cfg, (unsigned)d.dsn + 4, 0x89abcdef);
	pci_cfg_set32(cfg, (unsigned)d.dsn + 8, 0x01234567);
	/* VSEC header: ID 0x1234, rev 1, length 10. */
	pci_cfg_set32(cfg, (unsigned)d.vndr + 4, 0x1234 | (1u << 16) | (10u << 20));
	pci_cfg_seal(cfg);
	return d;
}

/* --- hook recorder --- */

#define MAX_CALLS 8

struct hook_call {
	unsigned reg, len;
	uint32_t old;
	struct pci_access acc;
	uint32_t now; /* register value seen by the hook: bytes are stored first */
};

struct hook_rec {
	unsigned ncalls;
	struct hook_call calls[MAX_CALLS];
};

static void record_hook(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			uint32_t old, const struct pci_access *acc)
{
	struct hook_rec *r = opaque;
	if (r->ncalls < MAX_CALLS)
		r->calls[r->ncalls] = (struct hook_call){
			.reg = reg,
			.len = len,
			.old = old,
			.acc = *acc,
			.now = len == 1 ? pci_cfg_get8(cfg, reg)
			       : len == 2 ? pci_cfg_get16(cfg, reg)
					  : pci_cfg_get32(cfg, reg),
		};
	r->ncalls++;
}

/* --- header --- */

static void test_ids_read_only(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(rd(cfg, PCI_VENDOR_ID, 2), TEST_VENDOR);
	assert_int_equal(rd(cfg, PCI_DEVICE_ID, 2), TEST_DEVICE);
	assert_int_equal(rd(cfg, PCI_CLASS_REVISION, 4), (TEST_CLASS << 8) | TEST_REV);
	assert_int_equal(rd(cfg, PCI_SUBSYSTEM_VENDOR_ID, 2), TEST_SVID);
	assert_int_equal(rd(cfg, PCI_SUBSYSTEM_ID, 2), TEST_SSID);
	assert_int_equal(rd(cfg, PCI_HEADER_TYPE, 1), PCI_HEADER_TYPE_NORMAL);

	wr(cfg, PCI_VENDOR_ID, 4, 0xdeadbeef);
	wr(cfg, PCI_CLASS_REVISION, 4, 0xffffffff);
	wr(cfg, PCI_SUBSYSTEM_VENDOR_ID, 4, 0x12345678);
	wr(cfg, PCI_CAPABILITY_LIST, 1, 0x80);
	wr(cfg, PCI_INTERRUPT_PIN, 1, 0x03);
	assert_int_equal(rd(cfg, PCI_VENDOR_ID, 2), TEST_VENDOR);
	assert_int_equal(rd(cfg, PCI_DEVICE_ID, 2), TEST_DEVICE);
	assert_int_equal(rd(cfg, PCI_CLASS_REVISION, 4), (TEST_CLASS << 8) | TEST_REV);
	assert_int_equal(rd(cfg, PCI_SUBSYSTEM_VENDOR_ID, 2), TEST_SVID);
	assert_int_equal(rd(cfg, PCI_SUBSYSTEM_ID, 2), TEST_SSID);
	assert_int_equal(rd(cfg, PCI_CAPABILITY_LIST, 1), 0);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 0);
	free(cfg);
}

static void test_command_rw_bits(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	const uint16_t rw = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
			    PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), 0);
	wr(cfg, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), rw);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2) & PCI_COMMAND_SPECIAL, 0);
	assert_true(pci_cfg_mem_enabled(cfg));
	assert_true(pci_cfg_io_enabled(cfg));
	assert_true(pci_cfg_bus_master(cfg));
	assert_true(pci_cfg_intx_disabled(cfg));

	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_SPECIAL | PCI_COMMAND_FAST_BACK);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
	assert_true(pci_cfg_mem_enabled(cfg));
	assert_false(pci_cfg_io_enabled(cfg));
	assert_false(pci_cfg_bus_master(cfg));
	assert_false(pci_cfg_intx_disabled(cfg));

	/* Byte write to the high half touches only SERR/INTX_DISABLE. */
	wr(cfg, PCI_COMMAND + 1, 1, 0xff);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2),
			 PCI_COMMAND_MEMORY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	free(cfg);
}

/* A write that changes COMMAND says so in its effects, with both values;
 * one that stores the same value, or touches no COMMAND bit that sticks,
 * does not. */
static void test_command_effect(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	struct pci_effects fx;
	uint16_t v = PCI_COMMAND_MEMORY;
	assert_int_equal(pci_cfg_write(cfg, PCI_COMMAND, &v, 2, &fx), 0);
	assert_true(fx.flags & PCI_FX_COMMAND);
	assert_int_equal(fx.command_old, 0);
	assert_int_equal(fx.command, PCI_COMMAND_MEMORY);
	/* the same value again: no change */
	assert_int_equal(pci_cfg_write(cfg, PCI_COMMAND, &v, 2, &fx), 0);
	assert_false(fx.flags & PCI_FX_COMMAND);
	/* only read-only bits: nothing sticks, no change */
	v = PCI_COMMAND_MEMORY | PCI_COMMAND_SPECIAL;
	assert_int_equal(pci_cfg_write(cfg, PCI_COMMAND, &v, 2, &fx), 0);
	assert_false(fx.flags & PCI_FX_COMMAND);
	/* a dword write over COMMAND and STATUS */
	uint32_t d = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	assert_int_equal(pci_cfg_write(cfg, PCI_COMMAND, &d, 4, &fx), 0);
	assert_true(fx.flags & PCI_FX_COMMAND);
	assert_int_equal(fx.command_old, PCI_COMMAND_MEMORY);
	assert_int_equal(fx.command, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	/* a write elsewhere */
	uint8_t b = 0x10;
	assert_int_equal(pci_cfg_write(cfg, PCI_LATENCY_TIMER, &b, 1, &fx), 0);
	assert_false(fx.flags & PCI_FX_COMMAND);
	free(cfg);
}

static void test_status_w1c(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	pci_cfg_set16(cfg, PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_PARITY);
	/* Writing 0 leaves error bits alone. */
	wr(cfg, PCI_STATUS, 2, 0);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_REC_MASTER_ABORT | PCI_STATUS_PARITY);
	/* Writing 1 clears only that bit. */
	wr(cfg, PCI_STATUS, 2, PCI_STATUS_REC_MASTER_ABORT);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_PARITY);
	/* Writing 1 to a clear bit does not set it. */
	wr(cfg, PCI_STATUS, 2, PCI_STATUS_SIG_SYSTEM_ERROR);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_PARITY);

	pci_cfg_set16(cfg, PCI_STATUS, STATUS_ERR_BITS);
	wr(cfg, PCI_STATUS, 2, 0xffff);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), 0);
	free(cfg);
}

static void test_status_ro_bits(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cap_pm(cfg, 0, false) > 0, 1);
	pci_cfg_set_intx_status(cfg, true);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_INTERRUPT | PCI_STATUS_CAP_LIST);
	wr(cfg, PCI_STATUS, 2, 0xffff);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_INTERRUPT | PCI_STATUS_CAP_LIST);
	wr(cfg, PCI_STATUS, 2, 0);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_INTERRUPT | PCI_STATUS_CAP_LIST);
	pci_cfg_set_intx_status(cfg, false);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_CAP_LIST);
	free(cfg);
}

/* Linux's config restore writes 0x0c as one dword. */
static void test_header_dword_0c(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	wr(cfg, PCI_CACHE_LINE_SIZE, 4, 0xffffffff);
	assert_int_equal(rd(cfg, PCI_CACHE_LINE_SIZE, 1), 0xff);
	assert_int_equal(rd(cfg, PCI_LATENCY_TIMER, 1), 0xff);
	assert_int_equal(rd(cfg, PCI_HEADER_TYPE, 1), 0);
	assert_int_equal(rd(cfg, PCI_BIST, 1), 0);
	wr(cfg, PCI_CACHE_LINE_SIZE, 4, 0x00801040);
	assert_int_equal(rd(cfg, PCI_CACHE_LINE_SIZE, 4), 0x00001040);

	wr(cfg, PCI_INTERRUPT_LINE, 4, 0xffffffff);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_LINE, 1), 0xff);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 0);
	assert_int_equal(rd(cfg, PCI_MIN_GNT, 2), 0);
	free(cfg);
}

static void test_command_status_dword(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cap_pm(cfg, 0, false) > 0, 1);
	pci_cfg_set16(cfg, PCI_STATUS,
		      PCI_STATUS_CAP_LIST | PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_DETECTED_PARITY);
	/* COMMAND gets its rw bits, STATUS clears just SIG_TARGET_ABORT. */
	wr(cfg, PCI_COMMAND, 4,
	   ((uint32_t)(PCI_STATUS_SIG_TARGET_ABORT | PCI_STATUS_CAP_LIST) << 16) |
		   PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY | PCI_COMMAND_SPECIAL);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
	assert_int_equal(rd(cfg, PCI_STATUS, 2), PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY);
	assert_int_equal(rd(cfg, PCI_COMMAND, 4),
			 ((uint32_t)(PCI_STATUS_CAP_LIST | PCI_STATUS_DETECTED_PARITY) << 16) |
				 PCI_COMMAND_MASTER | PCI_COMMAND_MEMORY);
	free(cfg);
}

static void test_intx_pin(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	pci_cfg_set_intx_pin(cfg, 1);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 1);
	pci_cfg_set_intx_pin(cfg, 9);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 1);
	pci_cfg_set_intx_pin(cfg, 0);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 0);
	free(cfg);
}

/* --- BARs --- */

static uint32_t size_bar(struct pci_cfg *cfg, unsigned off)
{
	wr(cfg, off, 4, 0xffffffff);
	return rd(cfg, off, 4);
}

static void test_bar_mem32(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, 0), 0);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_0, 4), 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_0), 0xfffff000);
	wr(cfg, PCI_BASE_ADDRESS_0, 4, 0xfebc1234);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_0, 4), 0xfebc1000);

	assert_int_equal(pci_cfg_set_bar(cfg, 1, 16, PCI_BARF_PREFETCH), 0);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_1, 4), PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_1), 0xfffffff0 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	/* Sub-dword write of the address byte. */
	wr(cfg, PCI_BASE_ADDRESS_1, 1, 0x00);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_1, 4), 0xffffff00 | PCI_BASE_ADDRESS_MEM_PREFETCH);
	assert_int_equal(cfg->bars[0].size, 4096);
	free(cfg);
}

static void test_bar_mem64_prefetch(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_set_bar(cfg, 2, 8ull << 30, PCI_BARF_MEM64 | PCI_BARF_PREFETCH), 0);
	const uint32_t type = PCI_BASE_ADDRESS_MEM_TYPE_64 | PCI_BASE_ADDRESS_MEM_PREFETCH;
	assert_int_equal(type, 0x0c);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_2, 4), type);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_2), type);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_3), 0xfffffffe);
	wr(cfg, PCI_BASE_ADDRESS_3, 4, 0x00000012);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_3, 4), 0x00000012);

	/* 64-bit BAR smaller than 4 GiB: the low dword sizes too. */
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 1u << 20, PCI_BARF_MEM64), 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_0), 0xfff00000 | PCI_BASE_ADDRESS_MEM_TYPE_64);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_1), 0xffffffff);
	free(cfg);
}

static void test_bar_io(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_set_bar(cfg, 4, 32, PCI_BARF_IO), 0);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_4, 4), PCI_BASE_ADDRESS_SPACE_IO);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_4), 0xffffffe1);
	wr(cfg, PCI_BASE_ADDRESS_4, 4, 0xc002);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_4, 4), 0xc001);
	assert_int_equal(pci_cfg_set_bar(cfg, 5, 4, PCI_BARF_IO), 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_5), 0xfffffffd);
	free(cfg);
}

static void test_bar_rom(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	/* No ROM: reads 0, enable bit ignored. */
	assert_int_equal(size_bar(cfg, PCI_ROM_ADDRESS), 0);
	assert_int_equal(pci_cfg_set_rom(cfg, 64 * 1024), 0);
	assert_int_equal(rd(cfg, PCI_ROM_ADDRESS, 4), 0);
	wr(cfg, PCI_ROM_ADDRESS, 4, PCI_ROM_ADDRESS_MASK);
	assert_int_equal(rd(cfg, PCI_ROM_ADDRESS, 4), 0xffff0000);
	assert_int_equal(size_bar(cfg, PCI_ROM_ADDRESS), 0xffff0000 | PCI_ROM_ADDRESS_ENABLE);
	wr(cfg, PCI_ROM_ADDRESS, 4, 0xfe000001);
	assert_int_equal(rd(cfg, PCI_ROM_ADDRESS, 4), 0xfe000001);
	assert_int_equal(cfg->rom_size, 64 * 1024);

	assert_int_equal(pci_cfg_set_rom(cfg, 1024), -EINVAL);
	assert_int_equal(pci_cfg_set_rom(cfg, 3 * 4096), -EINVAL);
	assert_int_equal(pci_cfg_set_rom(cfg, 32u << 20), -EINVAL);
	free(cfg);
}

static void test_bar_unimplemented(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, 0), 0);
	for (unsigned i = 1; i < PCI_NUM_BARS; i++) {
		unsigned off = PCI_BASE_ADDRESS_0 + 4 * i;
		assert_int_equal(size_bar(cfg, off), 0);
		wr(cfg, off, 2, 0x1234);
		assert_int_equal(rd(cfg, off, 4), 0);
	}
	assert_int_equal(size_bar(cfg, PCI_CARDBUS_CIS), 0);
	free(cfg);
}

static void test_bar_validation(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_set_bar(cfg, 6, 4096, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 0, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 3000, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 8, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4ull << 30, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, 0x80), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 5, 4096, PCI_BARF_MEM64), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 2, PCI_BARF_IO), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 512, PCI_BARF_IO), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 16, PCI_BARF_IO | PCI_BARF_PREFETCH), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 16, PCI_BARF_IO | PCI_BARF_MEM64), -EINVAL);
	/* Taken BARs and upper halves. */
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, PCI_BARF_MEM64), 0);
	assert_int_equal(pci_cfg_set_bar(cfg, 1, 4096, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 0, 4096, 0), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 3, 4096, 0), 0);
	assert_int_equal(pci_cfg_set_bar(cfg, 2, 4096, PCI_BARF_MEM64), -EINVAL);
	assert_int_equal(pci_cfg_set_bar(cfg, 4, 256, PCI_BARF_IO), 0);
	/* Nothing of the failed attempts reached the bytes. */
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_2, 4), 0);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_2), 0);
	free(cfg);
}

/* --- access splitting and ranges --- */

static void test_read_sizes(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(rd(cfg, 0x00, 4), 0x00111b36);
	assert_int_equal(rd(cfg, 0x00, 2), 0x1b36);
	assert_int_equal(rd(cfg, 0x02, 2), 0x0011);
	assert_int_equal(rd(cfg, 0x01, 1), 0x1b);
	assert_int_equal(rd(cfg, 0x08, 4), 0xff000002);
	assert_int_equal(rd(cfg, 0x0a, 2), 0xff00);
	assert_int_equal(rd(cfg, 0x0b, 1), 0xff);
	assert_int_equal(rd(cfg, 0x2c, 4), 0x11001af4);
	/* Unaligned 3-byte read. */
	uint8_t b[3];
	assert_int_equal(pci_cfg_read(cfg, 0x01, b, 3), 0);
	assert_int_equal(b[0], 0x1b);
	assert_int_equal(b[1], 0x11);
	assert_int_equal(b[2], 0x00);
	/* Last byte and whole space. */
	assert_int_equal(rd(cfg, VPCI_CFG_SIZE - 1, 1), 0);
	uint8_t *all = malloc(VPCI_CFG_SIZE);
	assert_non_null(all);
	assert_int_equal(pci_cfg_read(cfg, 0, all, VPCI_CFG_SIZE), 0);
	assert_memory_equal(all, cfg->data, VPCI_CFG_SIZE);
	free(all);
	free(cfg);
}

static void test_write_split(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	struct hook_rec rec = { 0 };
	assert_int_equal(pci_cfg_hook(cfg, 0x00, 8, record_hook, &rec), 0);
	/* 3 bytes at 0x01 arrive as 1 byte at 0x01 and 2 bytes at 0x02. */
	const uint8_t b3[3] = { 0xaa, 0xbb, 0xcc };
	assert_int_equal(pci_cfg_write(cfg, 0x01, b3, 3, NULL), 0);
	assert_int_equal(rec.ncalls, 2);
	assert_int_equal(rec.calls[0].acc.off, 0x01);
	assert_int_equal(rec.calls[0].acc.len, 1);
	assert_int_equal(rec.calls[0].acc.val, 0xaa);
	assert_int_equal(rec.calls[1].acc.off, 0x02);
	assert_int_equal(rec.calls[1].acc.len, 2);
	assert_int_equal(rec.calls[1].acc.val, 0xccbb);

	/* 7 bytes at 0x01: 1 @1, 2 @2, 4 @4. */
	rec.ncalls = 0;
	const uint8_t b7[7] = { 1, 2, 3, PCI_COMMAND_MEMORY, 0, 0, 0 };
	assert_int_equal(pci_cfg_write(cfg, 0x01, b7, 7, NULL), 0);
	assert_int_equal(rec.ncalls, 3);
	assert_int_equal(rec.calls[0].acc.off, 0x01);
	assert_int_equal(rec.calls[1].acc.off, 0x02);
	assert_int_equal(rec.calls[1].acc.len, 2);
	assert_int_equal(rec.calls[2].acc.off, 0x04);
	assert_int_equal(rec.calls[2].acc.len, 4);
	assert_int_equal(rec.calls[2].acc.val, PCI_COMMAND_MEMORY);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), PCI_COMMAND_MEMORY);
	assert_int_equal(rd(cfg, 0, 4), 0x00111b36);

	/* Zero-length accesses succeed and do nothing. */
	rec.ncalls = 0;
	assert_int_equal(pci_cfg_write(cfg, 0, b3, 0, NULL), 0);
	assert_int_equal(rec.ncalls, 0);
	free(cfg);
}

static void test_range_errors(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	uint8_t b[8] = { 0 };
	assert_int_equal(pci_cfg_read(cfg, 4096, b, 1), -EINVAL);
	assert_int_equal(pci_cfg_read(cfg, 4094, b, 4), -EINVAL);
	assert_int_equal(pci_cfg_read(cfg, 4092, b, 4), 0);
	assert_int_equal(pci_cfg_read(cfg, 0xffffffffu, b, 2), -EINVAL);
	assert_int_equal(pci_cfg_read(cfg, 4, b, SIZE_MAX), -EINVAL);
	assert_int_equal(pci_cfg_read(cfg, 1, b, SIZE_MAX - 0), -EINVAL);
	assert_int_equal(pci_cfg_write(cfg, 4096, b, 1, NULL), -EINVAL);
	assert_int_equal(pci_cfg_write(cfg, 4095, b, 2, NULL), -EINVAL);
	assert_int_equal(pci_cfg_write(cfg, 0xfffffffeu, b, 4, NULL), -EINVAL);
	assert_int_equal(pci_cfg_write(cfg, 8, b, SIZE_MAX - 3, NULL), -EINVAL);
	assert_int_equal(pci_cfg_write(cfg, 0, NULL, 4, NULL), -EINVAL);
	/* A rejected write changes nothing. */
	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_IO);
	uint8_t ones[8];
	memset(ones, 0xff, sizeof(ones));
	assert_int_equal(pci_cfg_write(cfg, VPCI_CFG_SIZE - 4, ones, 8, NULL), -EINVAL);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), PCI_COMMAND_IO);

	/* Device-side accessors ignore out-of-range offsets. */
	assert_int_equal(pci_cfg_get32(cfg, 4094), 0);
	pci_cfg_set32(cfg, 4094, 0xffffffff);
	assert_int_equal(pci_cfg_get8(cfg, 4095), 0);
	free(cfg);
}

/* --- capabilities --- */

static void test_cap_chain(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	assert_int_equal(d.pm, 0x40);
	assert_int_equal(d.msi, 0x48);
	assert_int_equal(d.msix, 0x60);
	assert_int_equal(d.pcie, 0x6c);
	assert_true(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	assert_int_equal(rd(cfg, PCI_CAPABILITY_LIST, 1), d.pm);
	assert_int_equal(rd(cfg, d.pm + PCI_CAP_LIST_ID, 1), PCI_CAP_ID_PM);
	assert_int_equal(rd(cfg, d.pm + PCI_CAP_LIST_NEXT, 1), d.msi);
	assert_int_equal(rd(cfg, d.msi + PCI_CAP_LIST_ID, 1), PCI_CAP_ID_MSI);
	assert_int_equal(rd(cfg, d.msi + PCI_CAP_LIST_NEXT, 1), d.msix);
	assert_int_equal(rd(cfg, d.msix + PCI_CAP_LIST_ID, 1), PCI_CAP_ID_MSIX);
	assert_int_equal(rd(cfg, d.msix + PCI_CAP_LIST_NEXT, 1), d.pcie);
	assert_int_equal(rd(cfg, d.pcie + PCI_CAP_LIST_ID, 1), PCI_CAP_ID_EXP);
	assert_int_equal(rd(cfg, d.pcie + PCI_CAP_LIST_NEXT, 1), 0);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_PM), d.pm);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_MSI), d.msi);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_MSIX), d.msix);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_EXP), d.pcie);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_VNDR), 0);

	/* Headers are read-only. */
	wr(cfg, d.msi, 2, 0xffff);
	assert_int_equal(rd(cfg, d.msi + PCI_CAP_LIST_ID, 1), PCI_CAP_ID_MSI);
	assert_int_equal(rd(cfg, d.msi + PCI_CAP_LIST_NEXT, 1), d.msix);

	/* A looped list (device-side corruption) does not hang the walk. */
	pci_cfg_set8(cfg, d.pcie + PCI_CAP_LIST_NEXT, (uint8_t)d.pm);
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_VNDR), 0);
	free(cfg);
}

static void test_cap_alloc(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_find_cap(cfg, PCI_CAP_ID_PM), 0);
	assert_int_equal(rd(cfg, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 1), -EINVAL);
	/* Odd lengths keep the next cap 4-byte aligned. */
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 3), 0x40);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 2), 0x44);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 0xb4), 0x48);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 8), -ENOSPC);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 4), 0xfc);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 2), -ENOSPC);
	assert_int_equal(pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 0xffffffffu), -ENOSPC);
	/* Cap bodies are read-only by default. */
	wr(cfg, 0x4a, 2, 0xffff);
	assert_int_equal(rd(cfg, 0x4a, 2), 0);
	free(cfg);
}

static void test_ext_caps(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	assert_int_equal(d.dsn, 0x100);
	assert_int_equal(d.vndr, 0x100 + PCI_EXT_CAP_DSN_SIZEOF);
	uint32_t h0 = rd(cfg, 0x100, 4);
	assert_int_equal(PCI_EXT_CAP_ID(h0), PCI_EXT_CAP_ID_DSN);
	assert_int_equal(PCI_EXT_CAP_VER(h0), 1);
	assert_int_equal(PCI_EXT_CAP_NEXT(h0), d.vndr);
	uint32_t h1 = rd(cfg, (unsigned)d.vndr, 4);
	assert_int_equal(PCI_EXT_CAP_ID(h1), PCI_EXT_CAP_ID_VNDR);
	assert_int_equal(PCI_EXT_CAP_NEXT(h1), 0);
	assert_int_equal(pci_cfg_find_ext_cap(cfg, PCI_EXT_CAP_ID_DSN), 0x100);
	assert_int_equal(pci_cfg_find_ext_cap(cfg, PCI_EXT_CAP_ID_VNDR), d.vndr);
	assert_int_equal(pci_cfg_find_ext_cap(cfg, PCI_EXT_CAP_ID_ERR), 0);
	/* 10 bytes round up to 12. */
	int n = pci_cfg_add_ext_cap(cfg, PCI_EXT_CAP_ID_ERR, 2, 4);
	assert_int_equal(n, d.vndr + 12);
	assert_int_equal(pci_cfg_find_ext_cap(cfg, PCI_EXT_CAP_ID_ERR), n);
	/* Header read-only. */
	wr(cfg, 0x100, 4, 0);
	assert_int_equal(rd(cfg, 0x100, 4), h0);

	assert_int_equal(pci_cfg_add_ext_cap(cfg, 0x30, 16, 8), -EINVAL);
	assert_int_equal(pci_cfg_add_ext_cap(cfg, 0x30, 1, 3), -EINVAL);
	assert_int_equal(pci_cfg_add_ext_cap(cfg, 0x30, 1, 4096), -ENOSPC);
	assert_int_equal(pci_cfg_add_ext_cap(cfg, 0x30, 1, 0xffffffffu), -ENOSPC);

	/* A looped list does not hang the walk. */
	pci_cfg_set32(cfg, (unsigned)n, PCI_EXT_CAP_ID_ERR | (2u << 16) | (0x100u << 20));
	assert_int_equal(pci_cfg_find_ext_cap(cfg, PCI_EXT_CAP_ID_PTM), 0);
	free(cfg);

	struct pci_cfg *empty = new_cfg();
	assert_int_equal(pci_cfg_find_ext_cap(empty, PCI_EXT_CAP_ID_DSN), 0);
	/* The first extended capability is always at 0x100. */
	assert_int_equal(pci_cfg_add_ext_cap(empty, PCI_EXT_CAP_ID_VNDR, 1, 8), 0x100);
	assert_int_equal(pci_cfg_add_ext_cap(empty, PCI_EXT_CAP_ID_VNDR, 1, 0xef8), 0x108);
	assert_int_equal(pci_cfg_add_ext_cap(empty, PCI_EXT_CAP_ID_VNDR, 1, 4), -ENOSPC);
	free(empty);
}

static void test_pm_cap(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	unsigned pmc_off = (unsigned)d.pm + PCI_PM_PMC, csr = (unsigned)d.pm + PCI_PM_CTRL;
	uint16_t pmc = (uint16_t)rd(cfg, pmc_off, 2);
	assert_int_equal(pmc & PCI_PM_CAP_VER_MASK, 3);
	assert_int_equal(pmc, 3 | PCI_PM_CAP_D1 | PCI_PM_CAP_PME_D0 | PCI_PM_CAP_PME_D3hot);
	wr(cfg, pmc_off, 2, 0);
	assert_int_equal(rd(cfg, pmc_off, 2), pmc);

	assert_int_equal(rd(cfg, csr, 2), PCI_PM_CTRL_NO_SOFT_RESET);
	/* PowerState and PME_En rw; NoSoftRst and Data_Select RO. */
	wr(cfg, csr, 2, 0xffff & ~PCI_PM_CTRL_PME_STATUS);
	assert_int_equal(rd(cfg, csr, 2),
			 3 | PCI_PM_CTRL_NO_SOFT_RESET | PCI_PM_CTRL_PME_ENABLE);
	wr(cfg, csr, 2, 0);
	assert_int_equal(rd(cfg, csr, 2), PCI_PM_CTRL_NO_SOFT_RESET);

	/* PME_Status is w1c. */
	pci_cfg_set16(cfg, csr, PCI_PM_CTRL_NO_SOFT_RESET | PCI_PM_CTRL_PME_STATUS);
	wr(cfg, csr, 2, PCI_PM_CTRL_PME_ENABLE);
	assert_int_equal(rd(cfg, csr, 2),
			 PCI_PM_CTRL_NO_SOFT_RESET | PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_PME_ENABLE);
	wr(cfg, csr, 2, PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_PME_ENABLE | 3);
	assert_int_equal(rd(cfg, csr, 2), PCI_PM_CTRL_NO_SOFT_RESET | PCI_PM_CTRL_PME_ENABLE | 3);
	/* Bridge extensions and Data bytes are RO 0. */
	wr(cfg, csr + 2, 2, 0xffff);
	assert_int_equal(rd(cfg, csr + 2, 2), 0);
	free(cfg);

	/* Without NoSoftRst; PME clock is not advertised. */
	struct pci_cfg *c2 = new_cfg();
	int off = pci_cap_pm(c2, PCI_PM_CAP_PME_CLOCK | PCI_PM_CAP_D2 | 0x7, false);
	assert_int_equal(off, 0x40);
	assert_int_equal(rd(c2, (unsigned)off + PCI_PM_PMC, 2), PCI_PM_CAP_D2 | 3);
	assert_int_equal(rd(c2, (unsigned)off + PCI_PM_CTRL, 2), 0);
	wr(c2, (unsigned)off + PCI_PM_CTRL, 2, PCI_PM_CTRL_NO_SOFT_RESET);
	assert_int_equal(rd(c2, (unsigned)off + PCI_PM_CTRL, 2), 0);
	free(c2);
}

static void test_msi_cap(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	unsigned base = (unsigned)d.msi;
	uint16_t flags = (uint16_t)rd(cfg, base + PCI_MSI_FLAGS, 2);
	assert_int_equal(flags, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT | (2 << 1));
	wr(cfg, base + PCI_MSI_FLAGS, 2, 0xffff);
	assert_int_equal(rd(cfg, base + PCI_MSI_FLAGS, 2),
			 flags | PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
	wr(cfg, base + PCI_MSI_FLAGS, 2, 0x0020);
	assert_int_equal(rd(cfg, base + PCI_MSI_FLAGS, 2), flags | 0x0020);

	wr(cfg, base + PCI_MSI_ADDRESS_LO, 4, 0xfee01003);
	assert_int_equal(rd(cfg, base + PCI_MSI_ADDRESS_LO, 4), 0xfee01000);
	wr(cfg, base + PCI_MSI_ADDRESS_HI, 4, 0x12345678);
	assert_int_equal(rd(cfg, base + PCI_MSI_ADDRESS_HI, 4), 0x12345678);
	wr(cfg, base + PCI_MSI_DATA_64, 4, 0xffff4041);
	assert_int_equal(rd(cfg, base + PCI_MSI_DATA_64, 4), 0x4041);
	/* 4 vectors: only mask bits 3:0 exist. */
	wr(cfg, base + PCI_MSI_MASK_64, 4, 0xffffffff);
	assert_int_equal(rd(cfg, base + PCI_MSI_MASK_64, 4), 0xf);
	wr(cfg, base + PCI_MSI_MASK_64, 4, 0x5);
	assert_int_equal(rd(cfg, base + PCI_MSI_MASK_64, 4), 0x5);
	/* Pending is device-owned. */
	wr(cfg, base + PCI_MSI_PENDING_64, 4, 0xffffffff);
	assert_int_equal(rd(cfg, base + PCI_MSI_PENDING_64, 4), 0);
	pci_cfg_set32(cfg, base + PCI_MSI_PENDING_64, 0x2);
	wr(cfg, base + PCI_MSI_PENDING_64, 4, 0x2);
	assert_int_equal(rd(cfg, base + PCI_MSI_PENDING_64, 4), 0x2);
	free(cfg);

	struct pci_cfg *c = new_cfg();
	assert_int_equal(pci_cap_msi(c, 0), -EINVAL);
	assert_int_equal(pci_cap_msi(c, 3), -EINVAL);
	assert_int_equal(pci_cap_msi(c, 64), -EINVAL);
	int o1 = pci_cap_msi(c, 1);
	assert_int_equal(o1, 0x40);
	wr(c, (unsigned)o1 + PCI_MSI_MASK_64, 4, 0xffffffff);
	assert_int_equal(rd(c, (unsigned)o1 + PCI_MSI_MASK_64, 4), 0x1);
	assert_int_equal(rd(c, (unsigned)o1 + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK, 0);
	int o32 = pci_cap_msi(c, 32);
	assert_int_equal(o32, 0x58);
	wr(c, (unsigned)o32 + PCI_MSI_MASK_64, 4, 0xffffffff);
	assert_int_equal(rd(c, (unsigned)o32 + PCI_MSI_MASK_64, 4), 0xffffffff);
	assert_int_equal(rd(c, (unsigned)o32 + PCI_MSI_FLAGS, 2) & PCI_MSI_FLAGS_QMASK, 5 << 1);
	free(c);
}

static void test_msix_cap(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	unsigned base = (unsigned)d.msix;
	assert_int_equal(rd(cfg, base + PCI_MSIX_FLAGS, 2), MSIX_NVEC - 1);
	wr(cfg, base + PCI_MSIX_FLAGS, 2, 0xffff);
	assert_int_equal(rd(cfg, base + PCI_MSIX_FLAGS, 2),
			 PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL | (MSIX_NVEC - 1));
	wr(cfg, base + PCI_MSIX_FLAGS + 1, 1, PCI_MSIX_FLAGS_ENABLE >> 8);
	assert_int_equal(rd(cfg, base + PCI_MSIX_FLAGS, 2), PCI_MSIX_FLAGS_ENABLE | (MSIX_NVEC - 1));
	assert_int_equal(rd(cfg, base + PCI_MSIX_TABLE, 4), MSIX_TABLE_OFF | MSIX_BAR);
	assert_int_equal(rd(cfg, base + PCI_MSIX_PBA, 4), MSIX_PBA_OFF | MSIX_BAR);
	wr(cfg, base + PCI_MSIX_TABLE, 4, 0);
	wr(cfg, base + PCI_MSIX_PBA, 4, 0xffffffff);
	assert_int_equal(rd(cfg, base + PCI_MSIX_TABLE, 4), MSIX_TABLE_OFF | MSIX_BAR);
	assert_int_equal(rd(cfg, base + PCI_MSIX_PBA, 4), MSIX_PBA_OFF | MSIX_BAR);
	free(cfg);

	struct pci_cfg *c = new_cfg();
	assert_int_equal(pci_cfg_set_bar(c, 0, 4096, 0), 0);
	assert_int_equal(pci_cfg_set_bar(c, 1, 16, PCI_BARF_IO), 0);
	assert_int_equal(pci_cfg_set_bar(c, 2, 1u << 20, PCI_BARF_MEM64), 0);
	assert_int_equal(pci_cap_msix(c, 0, 0, 0, 0, 0x800), -EINVAL);
	assert_int_equal(pci_cap_msix(c, 2049, 2, 0, 2, 0x10000), -EINVAL);
	assert_int_equal(pci_cap_msix(c, 4, 0, 0x4, 0, 0x800), -EINVAL);
	assert_int_equal(pci_cap_msix(c, 4, 0, 0, 0, 0x804), -EINVAL);
	assert_int_equal(pci_cap_msix(c, 4, 6, 0, 0, 0x800), -EINVAL);
	assert_int_equal(pci_cap_msix(c, 4, 1, 0, 0, 0x800), -EINVAL);  /* I/O BAR */
	assert_int_equal(pci_cap_msix(c, 4, 3, 0, 0, 0x800), -EINVAL);  /* upper half */
	assert_int_equal(pci_cap_msix(c, 4, 0, 0xfc8, 0, 0x800), -EINVAL); /* table leaves BAR */
	assert_int_equal(pci_cap_msix(c, 4, 0, 0, 0, 0xff8 + 8), -EINVAL); /* PBA leaves BAR */
	assert_int_equal(pci_cap_msix(c, 4, 0, 0, 0, 0x30), -EINVAL);   /* overlap */
	assert_int_equal(rd(c, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, 0);
	/* 2048 vectors in the 64-bit BAR, PBA in another BAR. */
	int o = pci_cap_msix(c, 2048, 2, 0x8000, 0, 0xf00);
	assert_int_equal(o, 0x40);
	assert_int_equal(rd(c, (unsigned)o + PCI_MSIX_FLAGS, 2), 2047);
	assert_int_equal(rd(c, (unsigned)o + PCI_MSIX_TABLE, 4), 0x8002);
	assert_int_equal(rd(c, (unsigned)o + PCI_MSIX_PBA, 4), 0xf00);
	free(c);
}

static void test_pcie_cap(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	unsigned base = (unsigned)d.pcie;
	assert_int_equal(d.msix + PCI_CAP_MSIX_SIZEOF, d.pcie);
	assert_int_equal(cfg->next_cap - base, 0x3c);
	assert_int_equal(rd(cfg, base + PCI_EXP_FLAGS, 2), 0x0002);
	uint32_t devcap = rd(cfg, base + PCI_EXP_DEVCAP, 4);
	assert_int_equal(devcap & PCI_EXP_DEVCAP_PAYLOAD, 1); /* 256 bytes */
	assert_true(devcap & PCI_EXP_DEVCAP_FLR);
	assert_int_equal(rd(cfg, base + PCI_EXP_LNKCAP, 4) & (PCI_EXP_LNKCAP_SLS | PCI_EXP_LNKCAP_MLW),
			 0x11);
	assert_int_equal(rd(cfg, base + PCI_EXP_LNKSTA, 2),
			 PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1);
	wr(cfg, base + PCI_EXP_LNKSTA, 2, 0);
	assert_int_equal(rd(cfg, base + PCI_EXP_LNKSTA, 2),
			 PCI_EXP_LNKSTA_CLS_2_5GB | PCI_EXP_LNKSTA_NLW_X1);
	wr(cfg, base + PCI_EXP_DEVCAP, 4, 0);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCAP, 4), devcap);

	/* DEVCTL: every defined control bit but FLR and the reserved phantom /
	 * aux-PM ones is rw; FLR reads back 0. */
	const uint16_t devctl_rw = PCI_EXP_DEVCTL_CERE | PCI_EXP_DEVCTL_NFERE |
				   PCI_EXP_DEVCTL_FERE | PCI_EXP_DEVCTL_URRE |
				   PCI_EXP_DEVCTL_RELAX_EN | PCI_EXP_DEVCTL_PAYLOAD |
				   PCI_EXP_DEVCTL_EXT_TAG | PCI_EXP_DEVCTL_NOSNOOP_EN |
				   PCI_EXP_DEVCTL_READRQ;
	wr(cfg, base + PCI_EXP_DEVCTL, 2, 0xffff);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCTL, 2), devctl_rw);
	wr(cfg, base + PCI_EXP_DEVCTL, 2, PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD_256B);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCTL, 2), PCI_EXP_DEVCTL_PAYLOAD_256B);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCTL, 2) & PCI_EXP_DEVCTL_BCR_FLR, 0);

	/* DEVSTA error bits w1c, the rest RO. */
	pci_cfg_set16(cfg, base + PCI_EXP_DEVSTA,
		      PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_URD | PCI_EXP_DEVSTA_TRPND);
	wr(cfg, base + PCI_EXP_DEVSTA, 2, PCI_EXP_DEVSTA_URD | PCI_EXP_DEVSTA_TRPND);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVSTA, 2), PCI_EXP_DEVSTA_CED | PCI_EXP_DEVSTA_TRPND);

	/* DEVCAP2/DEVCTL2: completion timeout disable only. */
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCAP2, 4), PCI_EXP_DEVCAP2_COMP_TMOUT_DIS);
	wr(cfg, base + PCI_EXP_DEVCTL2, 2, 0xffff);
	assert_int_equal(rd(cfg, base + PCI_EXP_DEVCTL2, 2), PCI_EXP_DEVCTL2_COMP_TMOUT_DIS);
	free(cfg);
}

/* --- hooks --- */

static void effect_hook(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			uint32_t old, const struct pci_access *acc)
{
	(void)opaque, (void)cfg, (void)len, (void)old;
	acc->fx->flags |= PCI_FX_POWER;
	acc->fx->power_state = (int)(pci_access_reg_val(acc, reg, 1, NULL) & 3);
}

/* A write reports what its hooks asked for, and only that write: the
 * effects start empty on every pci_cfg_write; NULL discards them. */
static void test_write_reports_effects(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	assert_int_equal(pci_cfg_hook(cfg, PCI_LATENCY_TIMER, 1, effect_hook, NULL), 0);
	struct pci_effects fx = { .flags = PCI_FX_FLR, .power_state = 9 };
	uint8_t b[4] = { 0x10, 0x22, 0, 0 };
	assert_int_equal(pci_cfg_write(cfg, PCI_CACHE_LINE_SIZE, b, 2, &fx), 0);
	assert_int_equal(fx.flags, PCI_FX_POWER);
	assert_int_equal(fx.power_state, 2);
	assert_int_equal(pci_cfg_write(cfg, PCI_INTERRUPT_LINE, b, 1, &fx), 0);
	assert_int_equal(fx.flags, 0);
	assert_int_equal(pci_cfg_write(cfg, PCI_LATENCY_TIMER, b, 1, NULL), 0);
	assert_int_equal(pci_cfg_write(cfg, 4096, b, 1, &fx), -EINVAL);
	assert_int_equal(fx.flags, 0);
	free(cfg);
}

static void test_hook_values(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	struct hook_rec cmd = { 0 }, sta = { 0 };
	assert_int_equal(pci_cfg_hook(cfg, PCI_COMMAND, 2, record_hook, &cmd), 0);
	assert_int_equal(pci_cfg_hook(cfg, PCI_STATUS, 2, record_hook, &sta), 0);
	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_IO);
	pci_cfg_set16(cfg, PCI_STATUS, PCI_STATUS_REC_MASTER_ABORT);

	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_SPECIAL);
	assert_int_equal(cmd.ncalls, 2);
	assert_int_equal(sta.ncalls, 0);
	assert_int_equal(cmd.calls[1].reg, PCI_COMMAND);
	assert_int_equal(cmd.calls[1].len, 2);
	assert_int_equal(cmd.calls[1].old, PCI_COMMAND_IO);
	assert_int_equal(cmd.calls[1].now, PCI_COMMAND_MEMORY);
	assert_int_equal(cmd.calls[1].acc.off, PCI_COMMAND);
	assert_int_equal(cmd.calls[1].acc.len, 2);
	assert_int_equal(cmd.calls[1].acc.val, PCI_COMMAND_MEMORY | PCI_COMMAND_SPECIAL);

	/* A dword at 0x04 runs both, each with its own old value. */
	wr(cfg, PCI_COMMAND, 4, ((uint32_t)PCI_STATUS_REC_MASTER_ABORT << 16) | PCI_COMMAND_MASTER);
	assert_int_equal(cmd.ncalls, 3);
	assert_int_equal(sta.ncalls, 1);
	assert_int_equal(cmd.calls[2].old, PCI_COMMAND_MEMORY);
	assert_int_equal(cmd.calls[2].now, PCI_COMMAND_MASTER);
	assert_int_equal(sta.calls[0].reg, PCI_STATUS);
	assert_int_equal(sta.calls[0].old, PCI_STATUS_REC_MASTER_ABORT);
	assert_int_equal(sta.calls[0].now, 0);
	assert_int_equal(sta.calls[0].acc.off, PCI_COMMAND);
	assert_int_equal(sta.calls[0].acc.len, 4);

	/* Byte write to STATUS high byte runs only the STATUS hook. */
	wr(cfg, PCI_STATUS + 1, 1, 0);
	assert_int_equal(cmd.ncalls, 3);
	assert_int_equal(sta.ncalls, 2);
	assert_int_equal(sta.calls[1].acc.off, PCI_STATUS + 1);
	assert_int_equal(sta.calls[1].acc.len, 1);

	/* Extract a register's bits from the raw access. */
	uint32_t mask;
	const struct pci_access a = { .off = 4, .len = 4, .val = 0xaabbccdd };
	assert_int_equal(pci_access_reg_val(&a, PCI_STATUS, 2, &mask), 0xaabb);
	assert_int_equal(mask, 0xffff);
	const struct pci_access b = { .off = 7, .len = 1, .val = 0x80 };
	assert_int_equal(pci_access_reg_val(&b, PCI_STATUS, 2, &mask), 0x8000);
	assert_int_equal(mask, 0xff00);
	assert_int_equal(pci_access_reg_val(&b, PCI_COMMAND, 2, &mask), 0);
	assert_int_equal(mask, 0);

	/* Registration limits. */
	assert_int_equal(pci_cfg_hook(cfg, 4095, 2, record_hook, &cmd), -EINVAL);
	assert_int_equal(pci_cfg_hook(cfg, 0, 0, record_hook, &cmd), -EINVAL);
	assert_int_equal(pci_cfg_hook(cfg, 0, 4, NULL, &cmd), -EINVAL);
	while (cfg->nhooks < PCI_MAX_HOOKS)
		assert_int_equal(pci_cfg_hook(cfg, 0x200, 4, record_hook, &cmd), 0);
	assert_int_equal(pci_cfg_hook(cfg, 0x200, 4, record_hook, &cmd), -ENOSPC);
	free(cfg);
}

static void test_hook_pmcsr_access(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	unsigned csr = (unsigned)d.pm + PCI_PM_CTRL;
	struct hook_rec rec = { 0 };
	assert_int_equal(pci_cfg_hook(cfg, csr, 2, record_hook, &rec), 0);

	wr(cfg, csr, 2, 3);
	assert_int_equal(rec.ncalls, 1);
	assert_int_equal(rec.calls[0].reg, csr);
	assert_int_equal(rec.calls[0].len, 2);
	assert_int_equal(rec.calls[0].old, PCI_PM_CTRL_NO_SOFT_RESET);
	assert_int_equal(rec.calls[0].now, PCI_PM_CTRL_NO_SOFT_RESET | 3);
	assert_int_equal(rec.calls[0].acc.off, csr);
	assert_int_equal(rec.calls[0].acc.len, 2);
	assert_int_equal(rec.calls[0].acc.val, 3);

	wr(cfg, csr, 4, 0xff000000);
	assert_int_equal(rec.ncalls, 2);
	assert_int_equal(rec.calls[1].old, PCI_PM_CTRL_NO_SOFT_RESET | 3);
	assert_int_equal(rec.calls[1].now, PCI_PM_CTRL_NO_SOFT_RESET);
	assert_int_equal(rec.calls[1].acc.off, csr);
	assert_int_equal(rec.calls[1].acc.len, 4);
	assert_int_equal(rec.calls[1].acc.val, 0xff000000);

	/* cap+6 lies outside PMCSR: no call. */
	wr(cfg, csr + 2, 2, 0xffff);
	assert_int_equal(rec.ncalls, 2);
	/* Byte writes inside it do call. */
	wr(cfg, csr + 1, 1, PCI_PM_CTRL_PME_ENABLE >> 8);
	assert_int_equal(rec.ncalls, 3);
	assert_int_equal(rec.calls[2].acc.off, csr + 1);
	assert_int_equal(rec.calls[2].acc.len, 1);
	free(cfg);
}

/* A hook that virtualises a field by rewriting the stored bytes. */
static void clamp_d_state(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len,
			  uint32_t old, const struct pci_access *acc)
{
	uint16_t v = pci_cfg_get16(cfg, reg);
	if ((v & PCI_PM_CTRL_STATE_MASK) == 1) /* D1 unsupported: keep old state */
		pci_cfg_set16(cfg, reg,
			      (uint16_t)((v & ~PCI_PM_CTRL_STATE_MASK) | (old & PCI_PM_CTRL_STATE_MASK)));
}

static void test_hook_virtualises(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	int pm = pci_cap_pm(cfg, 0, false);
	unsigned csr = (unsigned)pm + PCI_PM_CTRL;
	assert_int_equal(pci_cfg_hook(cfg, csr, 2, clamp_d_state, NULL), 0);
	wr(cfg, csr, 2, 3);
	assert_int_equal(rd(cfg, csr, 2), 3);
	wr(cfg, csr, 2, 1);
	assert_int_equal(rd(cfg, csr, 2), 3);
	wr(cfg, csr, 2, 0);
	assert_int_equal(rd(cfg, csr, 2), 0);
	free(cfg);
}

/* --- reset --- */

static void test_reset(void **state)
{
	struct full_dev d = new_full_dev();
	struct pci_cfg *cfg = d.cfg;
	struct hook_rec rec = { 0 };
	assert_int_equal(pci_cfg_hook(cfg, PCI_COMMAND, 2, record_hook, &rec), 0);
	uint8_t *snap = malloc(VPCI_CFG_SIZE);
	assert_non_null(snap);
	memcpy(snap, cfg->data, VPCI_CFG_SIZE);

	wr(cfg, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	wr(cfg, PCI_BASE_ADDRESS_0, 4, 0xfe000000);
	wr(cfg, PCI_ROM_ADDRESS, 4, 0xfd000001);
	wr(cfg, (unsigned)d.pm + PCI_PM_CTRL, 2, 3);
	wr(cfg, (unsigned)d.msix + PCI_MSIX_FLAGS, 2, PCI_MSIX_FLAGS_ENABLE);
	pci_cfg_set16(cfg, PCI_STATUS, pci_cfg_get16(cfg, PCI_STATUS) | PCI_STATUS_PARITY);
	assert_memory_not_equal(snap, cfg->data, VPCI_CFG_SIZE);

	pci_cfg_reset(cfg);
	assert_memory_equal(snap, cfg->data, VPCI_CFG_SIZE);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2), 0);
	assert_int_equal(rd(cfg, (unsigned)d.pm + PCI_PM_CTRL, 2), PCI_PM_CTRL_NO_SOFT_RESET);
	assert_int_equal(rd(cfg, PCI_BASE_ADDRESS_0, 4), 0);

	/* Masks and hooks survive. */
	unsigned before = rec.ncalls;
	wr(cfg, PCI_COMMAND, 2, 0xffff);
	assert_int_equal(rec.ncalls, before + 1);
	assert_int_equal(rd(cfg, PCI_COMMAND, 2),
			 PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER |
				 PCI_COMMAND_PARITY | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE);
	assert_int_equal(size_bar(cfg, PCI_BASE_ADDRESS_0), 0xfffff000);
	free(snap);
	free(cfg);
}

static void test_perm_table(void **state)
{
	struct pci_cfg *cfg = new_cfg();
	int off = pci_cfg_add_cap(cfg, PCI_CAP_ID_VNDR, 12);
	const struct pci_perm ok[] = {
		{ 4, 4, 0x00ff00ff, 0 },
		{ 8, 2, 0, 0x8001 },
		{ 10, 1, 0x0f, 0 },
	};
	assert_int_equal(pci_cfg_perm_at(cfg, (unsigned)off, ok, 3), 0);
	wr(cfg, (unsigned)off + 4, 4, 0xffffffff);
	assert_int_equal(rd(cfg, (unsigned)off + 4, 4), 0x00ff00ff);
	pci_cfg_set16(cfg, (unsigned)off + 8, 0x8101);
	wr(cfg, (unsigned)off + 8, 4, 0xffffffff);
	assert_int_equal(rd(cfg, (unsigned)off + 8, 4), 0x000f0100);

	/* A bad entry rejects the whole table. */
	const struct pci_perm bad[] = {
		{ 0, 2, 0xffff, 0 },
		{ 4, 3, 0xffffff, 0 },
	};
	assert_int_equal(pci_cfg_perm_at(cfg, PCI_INTERRUPT_LINE, bad, 2), -EINVAL);
	const struct pci_perm past_end[] = { { 4094, 4, ~0u, 0 } };
	assert_int_equal(pci_cfg_perm_at(cfg, 0, past_end, 1), -EINVAL);
	wr(cfg, PCI_INTERRUPT_PIN, 1, 0xff);
	assert_int_equal(rd(cfg, PCI_INTERRUPT_PIN, 1), 0);
	free(cfg);
}

/* --- lspci decodes what the builders produce --- */

static void dump_lspci(const struct pci_cfg *cfg, FILE *f)
{
	fprintf(f, "00:00.0 Unclassified device: vfpm test device\n");
	for (unsigned off = 0; off < VPCI_CFG_SIZE; off += 16) {
		fprintf(f, "%02x:", off);
		for (unsigned i = 0; i < 16; i++)
			fprintf(f, " %02x", pci_cfg_get8(cfg, off + i));
		fputc('\n', f);
	}
	fputc('\n', f);
}

static void test_lspci_decodes(void **state)
{
	struct full_dev d = new_full_dev();
	char path[] = "/tmp/vfpm-pci-dump-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	dump_lspci(d.cfg, f);
	assert_int_equal(fclose(f), 0);
	free(d.cfg);

	/* The dump itself: 4096 bytes in 256 lines after the header. */
	f = fopen(path, "r");
	assert_non_null(f);
	char line[128];
	unsigned lines = 0;
	while (fgets(line, sizeof(line), f))
		lines++;
	fclose(f);
	assert_int_equal(lines, 1 + VPCI_CFG_SIZE / 16 + 1);

	if (access("/usr/bin/lspci", X_OK) != 0) {
		unlink(path);
		skip();
	}
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "/usr/bin/lspci -vvv -F %s", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	size_t cap = 65536, n = 0;
	char *out = calloc(1, cap);
	assert_non_null(out);
	size_t got;
	while (n < cap - 1 && (got = fread(out + n, 1, cap - 1 - n, p)) > 0)
		n += got;
	int st = pclose(p);
	unlink(path);
	fputs(out, stdout); /* print_message truncates at 1 KiB */
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "Power Management version 3"));
	assert_non_null(strstr(out, "MSI-X: Enable- Count=8"));
	assert_non_null(strstr(out, "MSI: Enable- Count=1/4 Maskable+ 64bit+"));
	assert_non_null(strstr(out, "Express (v2) Endpoint"));
	assert_non_null(strstr(out, "Device Serial Number 01-23-45-67-89-ab-cd-ef"));
	assert_non_null(strstr(out, "Vendor Specific Information: ID=1234 Rev=1 Len=00a"));
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_read_only),
		cmocka_unit_test(test_command_rw_bits),
		cmocka_unit_test(test_command_effect),
		cmocka_unit_test(test_status_w1c),
		cmocka_unit_test(test_status_ro_bits),
		cmocka_unit_test(test_header_dword_0c),
		cmocka_unit_test(test_command_status_dword),
		cmocka_unit_test(test_intx_pin),
		cmocka_unit_test(test_bar_mem32),
		cmocka_unit_test(test_bar_mem64_prefetch),
		cmocka_unit_test(test_bar_io),
		cmocka_unit_test(test_bar_rom),
		cmocka_unit_test(test_bar_unimplemented),
		cmocka_unit_test(test_bar_validation),
		cmocka_unit_test(test_read_sizes),
		cmocka_unit_test(test_write_split),
		cmocka_unit_test(test_range_errors),
		cmocka_unit_test(test_cap_chain),
		cmocka_unit_test(test_cap_alloc),
		cmocka_unit_test(test_ext_caps),
		cmocka_unit_test(test_pm_cap),
		cmocka_unit_test(test_msi_cap),
		cmocka_unit_test(test_msix_cap),
		cmocka_unit_test(test_pcie_cap),
		cmocka_unit_test(test_hook_values),
		cmocka_unit_test(test_write_reports_effects),
		cmocka_unit_test(test_hook_pmcsr_access),
		cmocka_unit_test(test_hook_virtualises),
		cmocka_unit_test(test_reset),
		cmocka_unit_test(test_perm_table),
		cmocka_unit_test(test_lspci_decodes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
