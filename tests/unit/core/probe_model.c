/* The probe model of the in-process core tests (probe_model.h). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "probe_model.h"

static void probe_quiesce(void *priv)
{
	((struct probe *)priv)->quiesces++;
}

static int probe_suspend(void *priv, enum vfpm_dstate target)
{
	struct probe *p = priv;
	p->suspends++;
	p->last_target = target;
	return 0;
}

static int probe_resume(void *priv)
{
	((struct probe *)priv)->resumes++;
	return 0;
}

static void probe_reset(void *priv)
{
	((struct probe *)priv)->resets++;
}

static void probe_destroy(void *priv)
{
	free(priv);
}

static const struct vfpm_model_ops probe_ops = { .size = sizeof(struct vfpm_model_ops),
						 .quiesce = probe_quiesce,
						 .suspend = probe_suspend,
						 .resume = probe_resume,
						 .reset = probe_reset,
						 .destroy = probe_destroy };

static const char *const probe_keys[] = { "nosoftrst", "d1", "bar_pages", NULL };

/* nosoftrst (default on) and d1 (default off) shape the PM capability;
 * bar_pages (default 1) sizes the memfd BAR0 in 4 KiB pages. */
static int probe_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
			const struct vfpm_model_ops **ops)
{
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10fe,
						 .class_code = 0xff0000 };
	bool nosoftrst, d1;
	int rc = vfpm_opts_bool(opts, "nosoftrst", true, &nosoftrst);
	if (rc && rc != -ENOENT)
		return rc;
	rc = vfpm_opts_bool(opts, "d1", false, &d1);
	if (rc && rc != -ENOENT)
		return rc;
	uint64_t pages;
	rc = vfpm_opts_u64(opts, "bar_pages", 1, 1, 1024, &pages);
	if (rc && rc != -ENOENT)
		return rc;
	struct probe *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_pm_cap(dev, d1, false, nosoftrst);
	if (!rc)
		rc = vfpm_dev_set_intx(dev, true);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, 0, pages * 4096, VFPM_BAR_MEMFD);
	if (!rc)
		rc = vfpm_dev_add_pcie_cap(dev);
	if (rc) {
		free(p);
		return rc;
	}
	*priv = p;
	*ops = &probe_ops;
	return 0;
}

/* what probe_create describes for a VF (the core checks each VF against it) */
static const struct vfpm_vf_bar probe_vf_bars[6] = { { 4096, VFPM_BAR_MEMFD } };

const struct vfpm_model probe_model = { .size = sizeof(struct vfpm_model),
					       .name = "probe",
					       .keys = probe_keys,
					       .create = probe_create,
					       .vf_bars = probe_vf_bars };
