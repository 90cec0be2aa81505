/* Must NOT compile under clang -Wthread-safety -Werror: each function
 * breaks one lock rule the annotations in lib/ state. The 'tsa-bites'
 * test compiles each case alone and expects every one to be refused, so a
 * lost annotation (or -Wthread-safety dropped from the build) fails it. */
#include "core/core.h"
#include "core/pm.h"

#if CASE == 1   /* memory_lock not held */
void misuse(struct vfpm_device *dev)
{
	region_mmap_update(dev);
}
#elif CASE == 2   /* dev->lock not held */
void misuse(struct vfpm_device *dev)
{
	irq_intx_update_locked(dev);
}
#elif CASE == 3   /* a transition left open */
void misuse(struct vfpm_device *dev)
{
	pm_trans_begin(dev);
}
#elif CASE == 4   /* trans_lock missing around the model's calls */
void misuse(struct vfpm_device *dev)
{
	mutex_lock(&dev->lock);
	pm_set_d0_locked(dev, "test");
	mutex_unlock(&dev->lock);
}
#elif CASE == 5   /* unlocking what is not held */
void misuse(struct vfpm_device *dev)
{
	mutex_unlock(&dev->req_lock);
}
#endif
