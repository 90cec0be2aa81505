#include <string.h>

#include "models.h"

static const struct vfpm_model *const all_models[] = { &vfpm_model_demo, NULL };

const struct vfpm_model *const *vfpm_models(void)
{
	return all_models;
}

const struct vfpm_model *vfpm_model_find(const char *name)
{
	for (const struct vfpm_model *const *m = all_models; *m; m++)
		if (!strcmp((*m)->name, name))
			return *m;
	return NULL;
}
