/* The sizes at the head of struct vfpm_model and struct vfpm_model_ops:
 * an older (smaller) structure works, with the fields past its size taken
 * as absent; a newer (larger) one or a missing size is refused with a
 * precise errno, and what create() made is destroyed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static struct {
	unsigned creates, quiesces, destroys;
	struct vfpm_model_ops ops;   /* what create() hands back */
	size_t ops_size;             /* written into ops.size */
} g;

static void t_quiesce(void *priv)
{
	g.quiesces++;
}

static void t_destroy(void *priv)
{
	g.destroys++;
}

static uint64_t t_violations(void *priv)
{
	return 7;
}

static int t_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		    const struct vfpm_model_ops **ops)
{
	g.creates++;
	g.ops = (struct vfpm_model_ops){ .size = g.ops_size,
					 .quiesce = t_quiesce,
					 .destroy = t_destroy,
					 .violations = t_violations };
	*priv = &g;
	*ops = &g.ops;
	return vfpm_dev_add_pm_cap(dev, false, false, true);
}

/* A model built against a header whose struct vfpm_model has one more
 * field at its end. */
struct newer_model {
	struct vfpm_model m;
	void *added;
};

static int make(const struct vfpm_model *m, struct vfpm_device **dev)
{
	struct vfpm_opts opts = { 0 };
	return device_create(m, "t", &opts, NULL, -1, dev);
}

static void reset(size_t ops_size)
{
	memset(&g, 0, sizeof(g));
	g.ops_size = ops_size;
}

static void current_sizes_work(void **state)
{
	static const struct vfpm_model m = { .size = sizeof(m), .name = "t", .create = t_create };
	struct vfpm_device *dev = NULL;
	reset(sizeof(struct vfpm_model_ops));
	assert_int_equal(make(&m, &dev), 0);
	assert_non_null(dev->ops->violations);
	assert_int_equal(dev->ops->violations(dev->priv), 7);
	device_destroy(dev);
	assert_int_equal(g.destroys, 1);
}

static void larger_model_is_refused_before_create(void **state)
{
	static const struct newer_model nm = {
		.m = { .size = sizeof(nm), .name = "t", .create = t_create } };
	struct vfpm_device *dev = NULL;
	reset(sizeof(struct vfpm_model_ops));
	assert_int_equal(core_model_check(&nm.m), -E2BIG);
	assert_int_equal(make(&nm.m, &dev), -E2BIG);
	assert_null(dev);
	assert_int_equal(g.creates, 0);
}

static void model_without_size_name_or_create_is_einval(void **state)
{
	static const struct vfpm_model nosize = { .name = "t", .create = t_create };
	static const struct vfpm_model noname = { .size = sizeof(noname), .create = t_create };
	static const struct vfpm_model nocreate = { .size = sizeof(nocreate), .name = "t" };
	/* smaller than version 0.1's struct: create() would be past its end */
	static const struct vfpm_model short_ = { .size = offsetof(struct vfpm_model, create),
						  .name = "t",
						  .create = t_create };
	struct vfpm_device *dev = NULL;
	reset(sizeof(struct vfpm_model_ops));
	assert_int_equal(make(&nosize, &dev), -EINVAL);
	assert_int_equal(make(&noname, &dev), -EINVAL);
	assert_int_equal(make(&nocreate, &dev), -EINVAL);
	assert_int_equal(make(&short_, &dev), -EINVAL);
	assert_int_equal(core_model_check(NULL), -EINVAL);
	assert_null(dev);
	assert_int_equal(g.creates, 0);
}

/* An ops table from an older header, which ended before violations: the
 * core does not read past its size, even though the bytes there (here,
 * the rest of a full structure) hold a function. */
static void smaller_ops_works_and_fields_past_its_size_are_null(void **state)
{
	static const struct vfpm_model m = { .size = sizeof(m), .name = "t", .create = t_create };
	struct vfpm_device *dev = NULL;
	reset(offsetof(struct vfpm_model_ops, violations));
	assert_int_equal(make(&m, &dev), 0);
	assert_ptr_equal(dev->ops->quiesce, t_quiesce);
	assert_ptr_equal(dev->ops->destroy, t_destroy);
	assert_null(dev->ops->violations);
	device_destroy(dev);
	assert_int_equal(g.destroys, 1);
}

static void larger_ops_is_refused_and_the_model_destroyed(void **state)
{
	static const struct vfpm_model m = { .size = sizeof(m), .name = "t", .create = t_create };
	struct vfpm_device *dev = NULL;
	reset(sizeof(struct vfpm_model_ops) + sizeof(void *));
	assert_int_equal(make(&m, &dev), -E2BIG);
	assert_null(dev);
	assert_int_equal(g.creates, 1);
	assert_int_equal(g.quiesces, 1);
	assert_int_equal(g.destroys, 1);
}

static void ops_without_size_is_einval_and_the_model_destroyed(void **state)
{
	static const struct vfpm_model m = { .size = sizeof(m), .name = "t", .create = t_create };
	struct vfpm_device *dev = NULL;
	reset(0);
	assert_int_equal(make(&m, &dev), -EINVAL);
	assert_null(dev);
	assert_int_equal(g.creates, 1);
	assert_int_equal(g.destroys, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(current_sizes_work),
		cmocka_unit_test(larger_model_is_refused_before_create),
		cmocka_unit_test(model_without_size_name_or_create_is_einval),
		cmocka_unit_test(smaller_ops_works_and_fields_past_its_size_are_null),
		cmocka_unit_test(larger_ops_is_refused_and_the_model_destroyed),
		cmocka_unit_test(ops_without_size_is_einval_and_the_model_destroyed),
	};
	return cmocka_run_group_tests_name("model-abi", tests, NULL, NULL);
}
