/* The model contract (include/vfpm/device.h), checked: a model calls every
 * runtime function from every callback, and from a worker thread of its
 * own while the core drives the device through every kind of power
 * transition (guest PMCSR D3hot and D0 with NoSoftRst-, runtime suspend and
 * resume, low-power entry and exit, a user's reset, a close). In every
 * callback no core lock may be held but the ones the contract names
 * (memory_lock read-held around bar_rw), and every runtime call must return
 * one of its documented values. Runs in the concurrency suite, under TSan
 * in make check.
 */
#include <errno.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"

enum where { W_BAR_RW, W_RESET, W_QUIESCE, W_SUSPEND, W_RESUME, W_COMMAND, W_WORKER, W_N };
static const char *const where_names[] = { "bar_rw",  "reset",		 "quiesce", "suspend",
					   "resume",  "command_changed", "worker" };

struct cmodel {
	struct vfpm_device *dev;
	atomic_uint calls[W_N];
	atomic_uint lock_held[W_N];    /* a core lock was held in that callback */
	atomic_uint bad_result[W_N];   /* a runtime call returned an undocumented value */
	atomic_bool stop;
	atomic_bool destroying;   /* device_destroy: the runtime-PM core is gone */
	pthread_t worker;
};

static struct cmodel g;

/* A lock the caller holds can never be taken by it; one another thread
 * holds for a moment can. So a lock counts as held only if every one of
 * many tries fails. */
static bool mutex_held(pthread_mutex_t *m)
{
	for (int i = 0; i < 2000; i++) {
		if (pthread_mutex_trylock(m) == 0) {
			pthread_mutex_unlock(m);
			return false;
		}
		sched_yield();
	}
	return true;
}

static bool rwlock_write_held(pthread_rwlock_t *l)
{
	for (int i = 0; i < 2000; i++) {
		if (pthread_rwlock_tryrdlock(l) == 0) {
			pthread_rwlock_unlock(l);
			return false;
		}
		sched_yield();
	}
	return true;
}

static void exercise(struct cmodel *c, enum where w)
{
	struct vfpm_device *dev = c->dev;
	atomic_fetch_add(&c->calls[w], 1);
	/* memory_lock may be read-held around bar_rw (a BAR access is what a
	 * power transition waits for), never write-held; dev->lock, dma_lock,
	 * the runtime-PM lock and the channel's locks never. trans_lock is
	 * held by design around the PM callbacks and a user's reset (it is what keeps them from
	 * overlapping): no runtime function takes it. */
	const char *held = rwlock_write_held(&dev->pm.memory_lock) ? "memory_lock"
			   : mutex_held(&dev->lock)		   ? "dev->lock"
			   : rwlock_write_held(&dev->dma_lock)	   ? "dma_lock"
			   : !atomic_load(&c->destroying) && mutex_held(&dev->pm.rpm.lock)
				   ? "rpm.lock"
			   : mutex_held(&dev->chan.mu)		   ? "chan.mu"
			   : mutex_held(&dev->chan.send_lock)	   ? "chan.send_lock"
							   : NULL;
	if (held) {
		atomic_fetch_add(&c->lock_held[w], 1);
		print_message("%s: %s held\n", where_names[w], held);
	}

	bool ok = true;
	bool decode = vfpm_dev_mem_decode(dev);
	ok &= decode == true || decode == false;
	int rc = vfpm_dev_irq(dev, 0);
	ok &= rc == 0 || rc == -EAGAIN || rc == -ENODEV;
	vfpm_dev_intx(dev, true);
	vfpm_dev_intx(dev, false);
	uint8_t buf[8] = { 0 };
	rc = vfpm_dev_dma_read(dev, 0x1000, buf, sizeof(buf));
	ok &= rc == -EFAULT || rc == -EPERM;   /* nothing is mapped */
	rc = vfpm_dev_dma_write(dev, 0x1000, buf, sizeof(buf));
	ok &= rc == -EFAULT || rc == -EPERM;
	ok &= vfpm_dev_bar_mem(dev, 0) == NULL;   /* BAR0 is callback-backed */
	ok &= !strcmp(vfpm_dev_name(dev), "contract");
	vfpm_dev_log(dev, VFPM_LOG_DEBUG, "contract check from %s", where_names[w]);
	if (!ok)
		atomic_fetch_add(&c->bad_result[w], 1);
}

static int c_bar_rw(void *priv, unsigned bar, uint64_t off, void *buf, size_t len, bool is_write)
{
	exercise(priv, W_BAR_RW);
	if (!is_write)
		memset(buf, 0xa5, len);
	return 0;
}

static void c_reset(void *priv)
{
	exercise(priv, W_RESET);
}

static void c_quiesce(void *priv)
{
	exercise(priv, W_QUIESCE);
}

static int c_suspend(void *priv, enum vfpm_dstate target)
{
	exercise(priv, W_SUSPEND);
	return 0;
}

static int c_resume(void *priv)
{
	exercise(priv, W_RESUME);
	return 0;
}

static void c_command(void *priv, uint16_t cmd)
{
	exercise(priv, W_COMMAND);
}

static void *worker_main(void *arg)
{
	struct cmodel *c = arg;
	while (!atomic_load(&c->stop)) {
		exercise(c, W_WORKER);
		sched_yield();
	}
	return NULL;
}

static int c_create(struct vfpm_device *dev, const struct vfpm_opts *opts, void **priv,
		    const struct vfpm_model_ops **ops)
{
	static const struct vfpm_model_ops ops_ = { .size = sizeof(ops_),
						    .bar_rw = c_bar_rw,
						    .reset = c_reset,
						    .quiesce = c_quiesce,
						    .suspend = c_suspend,
						    .resume = c_resume,
						    .command_changed = c_command };
	static const struct vfpm_pci_ids ids = { .vendor = 0x1b36, .device = 0x10fe,
						 .class_code = 0xff0000 };
	g.dev = dev;
	int rc = vfpm_dev_set_ids(dev, &ids);
	if (!rc)
		rc = vfpm_dev_add_bar(dev, 0, 4096, 0);
	if (!rc)   /* NoSoftRst-: D3hot->D0 resets the model */
		rc = vfpm_dev_add_pm_cap(dev, false, false, false);
	if (!rc)
		rc = vfpm_dev_set_intx(dev, true);
	if (!rc)
		rc = vfpm_dev_add_msi_cap(dev, 1);
	*priv = &g;
	*ops = &ops_;
	return rc;
}

static const struct vfpm_model contract_model = { .size = sizeof(struct vfpm_model),
						    .name = "contract",
						    .create = c_create };

static void cfg_w16(struct vfpm_device *dev, unsigned off, uint16_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, true), 0);
}

static uint16_t cfg_r16(struct vfpm_device *dev, unsigned off)
{
	uint16_t v = 0;
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, false), 0);
	return v;
}

/* The work queue suspends the idle device on its own thread: wait (bounded)
 * for the status it reaches. */
static void wait_status(struct vfpm_device *dev, enum rpm_status want)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (rpm_status(&dev->pm.rpm) != want) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		assert_true(t.tv_sec - t0.tv_sec < 20);
		sched_yield();
	}
}

/* One request: the wrapper's reference around fn's accesses. */
static void request_pmcsr(struct vfpm_device *dev, uint16_t state)
{
	assert_int_equal(pm_request_begin(dev), 0);
	cfg_w16(dev, dev->pm_cap + PCI_PM_CTRL, state);
	pm_request_end(dev);
}

static void every_callback_may_call_every_runtime_function(void **state)
{
	(void)state;
	memset(&g, 0, sizeof(g));
	struct rpm_wq *wq;
	assert_int_equal(rpm_wq_create(&wq), 0);
	struct vfpm_opts opts = { 0 };
	assert_int_equal(opts_parse("pm_delays=none", &opts), 0);
	struct vfpm_device *dev = NULL;
	assert_int_equal(device_create(&contract_model, "contract", &opts, wq, -1, &dev), 0);
	assert_int_equal(pthread_create(&g.worker, NULL, worker_main, &g), 0);

	for (int round = 0; round < 4; round++) {
		/* runtime suspend with no client (idle), resumed by a client */
		wait_status(dev, RPM_SUSPENDED);
		assert_int_equal(pm_open(dev), 0);
		assert_int_equal(rpm_status(&dev->pm.rpm), RPM_ACTIVE);

		assert_int_equal(pm_request_begin(dev), 0);
		cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
		uint32_t v = 0;
		assert_int_equal(device_region_rw(dev, 0, 0, &v, 4, false), 0);
		assert_int_equal(v, 0xa5a5a5a5);
		pm_request_end(dev);

		/* guest D3hot and back (NoSoftRst-: the model resets) */
		request_pmcsr(dev, 3);
		assert_int_equal(cfg_r16(dev, dev->pm_cap + PCI_PM_CTRL) & 3, 3);
		request_pmcsr(dev, 0);
		assert_int_equal(cfg_r16(dev, dev->pm_cap + PCI_PM_CTRL) & 3, 0);

		/* a user's reset */
		assert_int_equal(pm_request_begin(dev), 0);
		pthread_mutex_lock(&dev->req_lock);
		device_reset(dev, "contract test", true);
		pthread_mutex_unlock(&dev->req_lock);
		pm_request_end(dev);

		/* low power: the device runtime-suspends with the client there */
		assert_int_equal(pm_request_begin(dev), 0);
		assert_int_equal(pm_feature_entry(dev, -1), 0);
		pm_request_end(dev);
		wait_status(dev, RPM_SUSPENDED);
		assert_int_equal(pm_request_begin(dev), 0);
		assert_int_equal(pm_feature_exit(dev), 0);
		pm_request_end(dev);

		/* the client goes */
		pthread_mutex_lock(&dev->req_lock);
		device_close(dev);
		pthread_mutex_unlock(&dev->req_lock);
	}

	/* the worker has run beside the transitions at least once (on a busy
	 * machine it may not have been scheduled yet: wait, bounded) */
	struct timespec w0, wn;
	clock_gettime(CLOCK_MONOTONIC, &w0);
	while (!atomic_load(&g.calls[W_WORKER])) {
		clock_gettime(CLOCK_MONOTONIC, &wn);
		assert_true(wn.tv_sec - w0.tv_sec < 20);
		sched_yield();
	}
	atomic_store(&g.stop, true);
	pthread_join(g.worker, NULL);
	atomic_store(&g.destroying, true);
	device_destroy(dev);
	rpm_wq_destroy(wq);

	for (int w = 0; w < W_N; w++) {
		print_message("%-16s calls %u, lock held %u, bad results %u\n", where_names[w],
			      atomic_load(&g.calls[w]), atomic_load(&g.lock_held[w]),
			      atomic_load(&g.bad_result[w]));
		assert_true(atomic_load(&g.calls[w]) > 0);
		assert_int_equal(atomic_load(&g.lock_held[w]), 0);
		assert_int_equal(atomic_load(&g.bad_result[w]), 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_callback_may_call_every_runtime_function),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
