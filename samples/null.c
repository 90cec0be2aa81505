/* null: the smallest vfpm device model.
 *
 * One 4 KiB memory BAR with two registers and the PCI power-management
 * capability, nothing else. vfpm does the rest: config space, the
 * vfio-user protocol, runtime suspend to D3hot when no client uses the
 * device, D3hot/D0 from the guest, resets.
 *
 * Build it against the installed SDK and serve it with vfpmd:
 *
 *	cc -shared -fPIC -o null.so null.c $(pkg-config --cflags --libs vfpm)
 *	vfpmd --model ./null.so --device null,socket=/tmp/null.sock
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <vfpm/device.h>

#define NULL_ID 0x4c4c554eu   /* "NULL" in little-endian bytes */
#define REG_ID 0x0            /* read-only */
#define REG_SCRATCH 0x4       /* read-write, 0 after a reset */

struct null_dev {
	uint32_t scratch;
};

/* A BAR access: the core has checked that [off, off + len) is inside the
 * BAR and that the BAR decodes (COMMAND.MEM set, D0). Accesses of 4 bytes
 * at a register reach a register; anything else reads 0 and is ignored. */
static int null_bar_rw(void *priv, unsigned bar, uint64_t off, void *buf, size_t len,
		       bool is_write)
{
	struct null_dev *n = priv;
	uint32_t v = 0;
	if (len != 4 || (off != REG_ID && off != REG_SCRATCH)) {
		if (!is_write)
			memset(buf, 0, len);
		return 0;
	}
	if (is_write) {
		memcpy(&v, buf, 4);
		if (off == REG_SCRATCH)
			n->scratch = v;
		return 0;
	}
	v = off == REG_ID ? NULL_ID : n->scratch;
	memcpy(buf, &v, 4);
	return 0;
}

/* Function reset, and the state lost in D3hot with NoSoftRst clear. */
static void null_reset(void *priv)
{
	((struct null_dev *)priv)->scratch = 0;
}

static void null_destroy(void *priv)
{
	free(priv);
}

/* No threads, no timers, no DMA: nothing to quiesce, suspend or resume,
 * so those callbacks are left NULL. */
static const struct vfpm_model_ops null_ops = {
	.size = sizeof(null_ops),
	.bar_rw = null_bar_rw,
	.reset = null_reset,
	.destroy = null_destroy,
};

static int null_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		       const struct vfpm_model_ops **ops)
{
	static const struct vfpm_pci_ids ids = {
		.vendor = 0x1b36, .device = 0x10f1,        /* QEMU's ID space, unassigned */
		.subsys_vendor = 0x1b36, .subsys_id = 0x0001,
		.class_code = 0xff0000,                    /* unclassified */
	};
	struct null_dev *n = calloc(1, sizeof(*n));
	if (!n)
		return -ENOMEM;
	int rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, 0, 4096, 0);
	if (!rc)   /* D1 and D2 not supported, NoSoftRst clear */
		rc = vfpm_dev_add_pm_cap(dev, false, false, false);
	if (rc) {
		free(n);
		return rc;
	}
	*priv = n;
	*ops = &null_ops;
	return 0;
}

static const struct vfpm_model null_model = {
	.size = sizeof(null_model),
	.name = "null",
	.summary = "one BAR and the PM capability: the smallest model",
	.create = null_create,
};

/* The entry point vfpmd --model looks up. */
const struct vfpm_model *vfpm_model_entry(void)
{
	return &null_model;
}
