/* The built-in device models. */
#ifndef VFPM_MODELS_H
#define VFPM_MODELS_H

#include "vfpm/device.h"

extern const struct vfpm_model vfpm_model_demo;

/* NULL-terminated list of every built-in model, the default first. */
const struct vfpm_model *const *vfpm_models(void);
const struct vfpm_model *vfpm_model_find(const char *name);

#endif
