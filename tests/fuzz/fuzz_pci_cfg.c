/* libFuzzer target: the config-space layer (lib/pci) alone, through
 * pci_cfg_write and pci_cfg_read with arbitrary offsets, lengths and
 * values, on a config space with every capability the demo device can
 * have: BARs 0, 2 (64-bit prefetchable) and 4, INTx, PM, MSI, MSI-X,
 * PCI Express, the Device Serial Number and SR-IOV extended capabilities,
 * and a write hook on each register the device core hooks.
 *
 * Input layout (see make_corpus.py): accesses, each
 *   u8 kind     bit 0: write (else read); bit 1: reset the space first
 *   u16 offset  little-endian, any value (past 4095 must be refused)
 *   u8 length   0..255 (an access may span many registers)
 *   bytes       the value of a write, as many as length (zeros past the end)
 *
 * Checked after every access, so that a wrong result aborts as a crash:
 * a refused access changes nothing and is refused exactly when it leaves
 * the space; a write changes only its own bytes, each as the byte's masks
 * say (rw bits take the value, write-1-to-clear bits clear, the rest keep),
 * except NumVFs, which its own hook may restore; hooks see naturally
 * aligned pieces of 1, 2 or 4 bytes that overlap their register; NumVFs
 * never exceeds TotalVFs; every capability stays reachable from its list;
 * a read returns the stored bytes.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pci/pci.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct pci_cfg g_cfg;
static unsigned g_pm, g_msi, g_msix, g_pcie, g_dsn, g_sriov;
static unsigned g_hook_calls;

static void fail(const char *what, unsigned off, size_t len)
{
	fprintf(stderr, "fuzz_pci_cfg: %s (access at 0x%x, %zu bytes)\n", what, off, len);
	abort();
}

/* Every hook checks what it is given and changes nothing. */
static void check_hook(void *opaque, struct pci_cfg *cfg, unsigned reg, unsigned len, uint32_t old,
		       const struct pci_access *acc)
{
	(void)opaque;
	(void)old;
	g_hook_calls++;
	if (cfg != &g_cfg || !acc->fx)
		fail("hook called with a wrong space or no effects", acc->off, acc->len);
	if ((acc->len != 1 && acc->len != 2 && acc->len != 4) || acc->off % acc->len ||
	    acc->off + acc->len > VPCI_CFG_SIZE)
		fail("hook saw a piece that is not naturally aligned", acc->off, acc->len);
	if (!(reg < acc->off + acc->len && acc->off < reg + len))
		fail("hook saw a piece that misses its register", acc->off, acc->len);
	uint32_t mask;
	uint32_t v = pci_access_reg_val(acc, reg, len < 4 ? len : 4, &mask);
	if ((len <= 4 && !mask) || (v & ~mask))
		fail("pci_access_reg_val gave bits the access did not cover", acc->off, acc->len);
}

static void must(int rc, const char *what)
{
	if (rc < 0) {
		fprintf(stderr, "fuzz_pci_cfg: set-up %s: %s\n", what, strerror(-rc));
		abort();
	}
}

static void setup_once(void)
{
	struct pci_cfg *c = &g_cfg;
	pci_cfg_init(c, 0x1b36, 0x1234, 0xff0000, 1, 0x1b36, 0x0001);
	must(pci_cfg_set_bar(c, 0, 4096, 0), "BAR0");
	must(pci_cfg_set_bar(c, 2, 1u << 20, PCI_BARF_MEM64 | PCI_BARF_PREFETCH), "BAR2");
	must(pci_cfg_set_bar(c, 4, 8192, 0), "BAR4");
	must(pci_cfg_set_rom(c, 4096), "ROM");
	pci_cfg_set_intx_pin(c, 1);
	int off;
	must(off = pci_cap_pm(c, PCI_PM_CAP_D1 | PCI_PM_CAP_D2 | PCI_PM_CAP_PME_D0 |
				      PCI_PM_CAP_PME_D3hot, true), "PM");
	g_pm = (unsigned)off;
	must(off = pci_cap_msi(c, 4), "MSI");
	g_msi = (unsigned)off;
	must(off = pci_cap_msix(c, 4, 4, 0x0, 4, 0x1000), "MSI-X");
	g_msix = (unsigned)off;
	must(off = pci_cap_pcie(c), "PCIe");
	g_pcie = (unsigned)off;
	must(off = pci_cfg_add_ext_cap(c, PCI_EXT_CAP_ID_DSN, 1, 12), "DSN");
	g_dsn = (unsigned)off;
	struct pci_sriov_desc d = { .total_vfs = 4, .initial_vfs = 4, .first_offset = 1,
				    .stride = 1, .vf_device_id = 0x1235, .supported_pgsz = 0x553 };
	d.vf_bars[0] = (struct pci_bar){ .size = 4096 };
	d.vf_bars[2] = (struct pci_bar){ .size = 1u << 16, .flags = PCI_BARF_MEM64 };
	must(off = pci_cap_sriov(c, &d), "SR-IOV");
	g_sriov = (unsigned)off;
	/* the registers the device core hooks (irq.c, pm.c, sriov.c, device.c) */
	const struct { unsigned reg, len; } hooks[] = {
		{ PCI_COMMAND, 2 },
		{ g_msix + PCI_MSIX_FLAGS, 2 },
		{ g_msi + PCI_MSI_FLAGS, 2 },
		{ g_msi + PCI_MSI_MASK_64, 4 },
		{ g_pm + PCI_PM_CTRL, 2 },
		{ g_sriov + PCI_SRIOV_CTRL, 2 },
		{ g_pcie + PCI_EXP_DEVCTL, 2 },
		{ 0x10, 24 },   /* all six BARs: a hook longer than 4 bytes */
	};
	for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
		must(pci_cfg_hook(c, hooks[i].reg, hooks[i].len, check_hook, NULL), "hook");
	pci_cfg_seal(c);
}

static bool in_numvfs(unsigned o)
{
	return o == g_sriov + PCI_SRIOV_NUM_VF || o == g_sriov + PCI_SRIOV_NUM_VF + 1;
}

static void check_invariants(unsigned off, size_t len)
{
	const unsigned std[] = { g_pm, g_msi, g_msix, g_pcie };
	const uint8_t ids[] = { PCI_CAP_ID_PM, PCI_CAP_ID_MSI, PCI_CAP_ID_MSIX, PCI_CAP_ID_EXP };
	for (size_t i = 0; i < 4; i++)
		if (pci_cfg_find_cap(&g_cfg, ids[i]) != std[i])
			fail("a capability fell off the list", off, len);
	if (pci_cfg_find_ext_cap(&g_cfg, PCI_EXT_CAP_ID_DSN) != g_dsn ||
	    pci_cfg_find_ext_cap(&g_cfg, PCI_EXT_CAP_ID_SRIOV) != g_sriov)
		fail("an extended capability fell off the list", off, len);
	if (pci_cfg_get16(&g_cfg, g_sriov + PCI_SRIOV_NUM_VF) >
	    pci_cfg_get16(&g_cfg, g_sriov + PCI_SRIOV_TOTAL_VF))
		fail("NumVFs above TotalVFs", off, len);
}

static void do_write(unsigned off, size_t len, const uint8_t *val)
{
	static uint8_t before[VPCI_CFG_SIZE];
	memcpy(before, g_cfg.data, sizeof(before));
	struct pci_effects fx;
	int rc = pci_cfg_write(&g_cfg, off, val, len, &fx);
	bool fits = off <= VPCI_CFG_SIZE && len <= VPCI_CFG_SIZE - off;
	if (rc != (fits ? 0 : -EINVAL))
		fail("write refused or accepted wrongly", off, len);
	if (!fits) {
		if (memcmp(before, g_cfg.data, sizeof(before)))
			fail("a refused write changed the space", off, len);
		return;
	}
	for (unsigned o = 0; o < VPCI_CFG_SIZE; o++) {
		if (in_numvfs(o))
			continue;
		uint8_t want = before[o];
		if (o >= off && o < off + len) {
			uint8_t v = val[o - off];
			want = (uint8_t)(((want & ~g_cfg.wmask[o]) | (v & g_cfg.wmask[o])) &
					 ~(g_cfg.w1cmask[o] & v));
		}
		if (g_cfg.data[o] != want) {
			fprintf(stderr, "fuzz_pci_cfg: byte 0x%x is 0x%02x, expected 0x%02x\n", o,
				g_cfg.data[o], want);
			fail("a write stored the wrong byte", off, len);
		}
	}
}

static void do_read(unsigned off, size_t len)
{
	uint8_t buf[256];
	memset(buf, 0xa5, sizeof(buf));
	int rc = pci_cfg_read(&g_cfg, off, buf, len);
	bool fits = off <= VPCI_CFG_SIZE && len <= VPCI_CFG_SIZE - off;
	if (rc != (fits ? 0 : -EINVAL))
		fail("read refused or accepted wrongly", off, len);
	if (fits && memcmp(buf, &g_cfg.data[off], len))
		fail("a read returned other bytes than stored", off, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!g_cfg.nhooks)
		setup_once();
	pci_cfg_reset(&g_cfg);
	while (size >= 4) {
		uint8_t kind = data[0];
		unsigned off = (unsigned)data[1] | (unsigned)data[2] << 8;
		size_t len = data[3];
		data += 4;
		size -= 4;
		if (kind & 2)
			pci_cfg_reset(&g_cfg);
		if (kind & 1) {
			uint8_t val[256] = { 0 };
			size_t n = len < size ? len : size;
			memcpy(val, data, n);
			data += n;
			size -= n;
			do_write(off, len, val);
		} else {
			do_read(off, len);
		}
		check_invariants(off, len);
	}
	return 0;
}
