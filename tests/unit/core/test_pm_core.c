/* Device power management in process, deterministic: a device built from
 * a probe model, on a stepped work queue (rpm_wq_create_manual) and a fake
 * clock (tests/common/fake_clock.h). An idle suspend happens only when the
 * test steps the queue, an autosuspend delay passes only when the test
 * advances the clock, and a PCI transition delay advances the clock by
 * exactly its length instead of sleeping. "Nothing happened" is a step
 * that runs nothing and a state that did not move -- never a wait.
 *
 * The session's part is played by the calls it makes: pm_open/pm_close
 * for connect and disconnect, pm_request_begin/end around each request,
 * pm_feature_entry/exit for DEVICE_FEATURE, device_region_rw for region
 * access. Behaviour ids (B*) are those of the kernel spec. */
#include <errno.h>
#include <fcntl.h>
#include <linux/pci_regs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "fake_clock.h"
#include "probe_model.h"

#define MS 1000000ull   /* ns */

/* PMCSR PowerState values */
enum { PS_D0 = 0, PS_D1 = 1, PS_D2 = 2, PS_D3HOT = 3 };


/* --- fixture --- */

struct fx {
	struct fake_clock clk;
	struct rpm_wq *wq;
	struct vfpm_device *dev;
	struct probe *p;
	bool open;
};

static struct fx *fx_make(const char *options)
{
	struct fx *x = calloc(1, sizeof(*x));
	assert_non_null(x);
	fake_clock_init(&x->clk);
	assert_int_equal(rpm_wq_create_manual(&x->wq, &x->clk.clock), 0);
	struct vfpm_opts o = { 0 };
	if (options)
		assert_int_equal(opts_parse(options, &o), 0);
	assert_int_equal(device_create(&probe_model, "probe", &o, x->wq, -1, &x->dev), 0);
	x->p = x->dev->priv;
	return x;
}

static void fx_close(struct fx *x)
{
	pthread_mutex_lock(&x->dev->req_lock);
	device_close(x->dev);
	pthread_mutex_unlock(&x->dev->req_lock);
	x->open = false;
}

static void fx_free(struct fx *x)
{
	if (x->open)
		fx_close(x);
	device_destroy(x->dev);
	rpm_wq_destroy(x->wq);
	free(x);
}

static int step(struct fx *x)
{
	return rpm_wq_step(x->wq);
}

static uint64_t now(struct fx *x)
{
	return fake_clock_now_ns(&x->clk.clock);
}

static enum rpm_status rst(struct fx *x)
{
	return rpm_status(&x->dev->pm.rpm);
}

static int usage(struct fx *x)
{
	return rpm_usage(&x->dev->pm.rpm);
}

/* A client connects to a device that suspended while unused (B35). */
static void fx_open_suspended(struct fx *x)
{
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(pm_open(x->dev), 0);
	x->open = true;
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(usage(x), 1);
	assert_int_equal(step(x), 0);   /* an open device does not idle */
}

static uint16_t cfg_r16(struct vfpm_device *dev, unsigned off)
{
	uint16_t v = 0;
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, false), 0);
	return v;
}

static void cfg_w16(struct vfpm_device *dev, unsigned off, uint16_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 2, true), 0);
}

static void cfg_w8(struct vfpm_device *dev, unsigned off, uint8_t v)
{
	assert_int_equal(device_region_rw(dev, VFU_PCI_CONFIG, off, &v, 1, true), 0);
}

static unsigned pmcsr(struct vfpm_device *dev)
{
	return dev->pm_cap + PCI_PM_CTRL;
}

static unsigned power_bits(struct vfpm_device *dev)
{
	return cfg_r16(dev, pmcsr(dev)) & PCI_PM_CTRL_STATE_MASK;
}

static int bar0_read(struct vfpm_device *dev)
{
	uint32_t v;
	return device_region_rw(dev, 0, 0, &v, 4, false);
}

/* The eventfd's count, consumed (0 when nothing was signalled). */
static uint64_t efd_count(int efd)
{
	uint64_t n = 0;
	if (read(efd, &n, sizeof(n)) != sizeof(n))
		return 0;
	return n;
}

static int new_efd(void)
{
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	assert_true(efd >= 0);
	return efd;
}

static int64_t residency_ms(struct vfpm_device *dev, int state)
{
	struct pm_status st;
	pm_get_status(dev, &st);
	return (int64_t)(st.residency_ns[state] / 1000000);
}

static int64_t rpm_counter(struct vfpm_device *dev, bool resumes)
{
	struct pm_status st;
	pm_get_status(dev, &st);
	return (int64_t)(resumes ? st.rpm.resumes : st.rpm.suspends);
}

/* --- the energy model (docs/operating.md, "Energy") --- */

static void energy(struct vfpm_device *dev, uint64_t *used_uj, uint64_t *saved_uj)
{
	struct pm_status st;
	pm_get_status(dev, &st);
	*used_uj = st.energy_used_uj;
	*saved_uj = st.energy_saved_uj;
}

/* Energy is residency times the power of each state; a change of a
 * state's power counts from then on; saved is what D0 would have used
 * for the same time minus what was used. */
static void energy_follows_residency_and_the_power_settings(void **state)
{
	(void)state;
	uint64_t used, saved;
	struct fx *x = fx_make("pm_delays=none,power_d3hot_mw=500,power_d0_mw=2000");
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 0);
	assert_int_equal(saved, 0);
	fake_clock_advance_ms(&x->clk, 1000);             /* 1 s in D0 at 2 W */
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 2000000);
	assert_int_equal(saved, 0);
	assert_int_equal(step(x), 1);                     /* idle: D0 -> D3hot, no delay */
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	fake_clock_advance_ms(&x->clk, 2000);             /* 2 s in D3hot at 0.5 W */
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 3000000);
	assert_int_equal(saved, 3000000);                 /* 2 s x 1.5 W */
	assert_int_equal(pm_set(x->dev, "power_d3hot_mw", "250"), 0);
	energy(x->dev, &used, &saved);                    /* the past keeps its figure */
	assert_int_equal(used, 3000000);
	assert_int_equal(saved, 3000000);
	fake_clock_advance_ms(&x->clk, 4000);             /* 4 s at 0.25 W */
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 4000000);
	assert_int_equal(saved, 10000000);                /* + 4 s x 1.75 W */
	/* no state may draw more than D0; a refused value changes nothing */
	assert_int_equal(pm_set(x->dev, "power_d3hot_mw", "2001"), -EINVAL);
	assert_int_equal(pm_set(x->dev, "power_d0_mw", "249"), -EINVAL);
	assert_int_equal(pm_set(x->dev, "power_d0_mw", "-1"), -EINVAL);
	assert_int_equal(pm_set(x->dev, "power_d1_mw", "1000001"), -EINVAL);
	assert_int_equal(pm_set(x->dev, "power_d2_mw", "1x"), -EINVAL);
	assert_int_equal(pm_set(x->dev, "power_d3cold_mw", ""), -EINVAL);
	assert_int_equal(x->dev->pm.set.power_mw[VFPM_D3HOT], 250);
	assert_int_equal(x->dev->pm.set.power_mw[VFPM_D0], 2000);
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 4000000);
	assert_int_equal(saved, 10000000);
	/* the resume: D0 again at 2 W, nothing saved for that time */
	assert_int_equal(pm_request_begin(x->dev), 0);
	fake_clock_advance_ms(&x->clk, 500);
	energy(x->dev, &used, &saved);
	assert_int_equal(used, 5000000);
	assert_int_equal(saved, 10000000);
	pm_request_end(x->dev);
	/* lowering D0 to a value no state exceeds is taken */
	assert_int_equal(pm_set(x->dev, "power_d1_mw", "250"), 0);
	assert_int_equal(pm_set(x->dev, "power_d2_mw", "250"), 0);
	assert_int_equal(pm_set(x->dev, "power_d0_mw", "250"), 0);
	fx_free(x);
}

static void energy_defaults_and_creation_keys(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	static const uint32_t def[5] = { 3000, 1500, 750, 330, 66 };
	for (int i = 0; i < 5; i++)
		assert_int_equal(x->dev->pm.set.power_mw[i], def[i]);
	fx_free(x);
	/* the keys are checked together, in any order */
	x = fx_make("power_d3hot_mw=4000,power_d0_mw=5000,power_d3cold_mw=0");
	assert_int_equal(x->dev->pm.set.power_mw[VFPM_D0], 5000);
	assert_int_equal(x->dev->pm.set.power_mw[VFPM_D3HOT], 4000);
	assert_int_equal(x->dev->pm.set.power_mw[VFPM_D3COLD], 0);
	fx_free(x);
	struct rpm_wq *wq;
	struct fake_clock clk;
	fake_clock_init(&clk);
	assert_int_equal(rpm_wq_create_manual(&wq, &clk.clock), 0);
	static const char *const bad[] = { "power_d3hot_mw=4000", "power_d0_mw=x",
					   "power_d1_mw=1000001", "power_d0_mw=10,power_d2_mw=11" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vfpm_opts o = { 0 };
		struct vfpm_device *dev = NULL;
		assert_int_equal(opts_parse(bad[i], &o), 0);
		assert_int_equal(device_create(&probe_model, "probe", &o, wq, -1, &dev), -EINVAL);
		opts_free(&o);
	}
	rpm_wq_destroy(wq);
}

/* A request that enters low power (with a copy of efd as the wakeup, or
 * none for -1), then the step that suspends the device. */
static void engage_and_suspend(struct fx *x, int efd)
{
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, efd >= 0 ? dup(efd) : -1), 0);
	pm_request_end(x->dev);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
}

/* --- the request wrapper (contract §3, B7, B35) --- */

static void request_resumes_and_holds_and_only_a_step_suspends(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	/* created idle: the suspend is queued, not done */
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(x->p->suspends, 0);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	assert_int_equal(x->p->quiesces, 1);
	assert_int_equal(x->p->suspends, 1);
	assert_int_equal(x->p->last_target, VFPM_D3HOT);

	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(usage(x), 1);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(x->p->resumes, 1);
	/* held: however long nothing happens */
	fake_clock_advance_ms(&x->clk, 3600 * 1000);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	/* nested: the inner end leaves the outer reference */
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(usage(x), 2);
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 1);
	uint64_t due;
	assert_false(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(step(x), 0);
	/* the last end queues the idle suspend; it runs at the step */
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, now(x));
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(x->p->suspends, 2);
	assert_int_equal(x->dev->pm.rpm.resumes, 1);
	assert_int_equal(x->dev->pm.rpm.suspends, 2);
	fx_free(x);
}

static void autosuspend_delay_counts_from_the_last_request(void **state)
{
	(void)state;
	struct fx *x = fx_make("autosuspend_delay_ms=200");
	uint64_t t0 = now(x), due;
	assert_true(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(due, t0 + 200 * MS);
	assert_int_equal(step(x), 0);
	fake_clock_advance_ms(&x->clk, 199);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(x->p->suspends, 0);
	fake_clock_advance_ms(&x->clk, 1);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);

	/* a request at t1; another at t1+100 restarts the delay */
	assert_int_equal(pm_request_begin(x->dev), 0);
	pm_request_end(x->dev);
	fake_clock_advance_ms(&x->clk, 100);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(x->p->resumes, 1);   /* still active: no second resume */
	pm_request_end(x->dev);
	uint64_t t2 = now(x);
	fake_clock_advance_ms(&x->clk, 199);   /* past the first end's due time */
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	fake_clock_advance_ms(&x->clk, 1);
	assert_int_equal(now(x), t2 + 200 * MS);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(x->p->suspends, 2);
	fx_free(x);
}

static void deferred_end_leaves_the_idle_to_pm_idle(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	assert_int_equal(step(x), 1);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_false(pm_request_end_deferred(x->dev));   /* not the last */
	assert_true(pm_request_end_deferred(x->dev));
	uint64_t due;
	assert_false(rpm_wq_next_due(x->wq, &due));
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	pm_idle(x->dev);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	fx_free(x);
}

/* The transition delays run on the clock: D-state residency and the
 * delays are exact. */
static void transition_delays_and_residency_follow_the_clock(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);   /* pm_delays=pci (the default) */
	fake_clock_advance_ms(&x->clk, 5);
	assert_int_equal(step(x), 1);   /* D0 -> D3hot: 10 ms */
	assert_int_equal(atomic_load(&x->clk.slept), 10 * MS);
	fake_clock_advance_ms(&x->clk, 1000);
	assert_int_equal(residency_ms(x->dev, VFPM_D0), 15);
	assert_int_equal(residency_ms(x->dev, VFPM_D3HOT), 1000);
	assert_int_equal(pm_request_begin(x->dev), 0);   /* D3hot -> D0: 10 ms */
	assert_int_equal(atomic_load(&x->clk.slept), 20 * MS);
	assert_int_equal(residency_ms(x->dev, VFPM_D3HOT), 1010);
	assert_int_equal(residency_ms(x->dev, VFPM_D0), 15);
	assert_int_equal(rpm_counter(x->dev, false), 1);
	assert_int_equal(rpm_counter(x->dev, true), 1);
	pm_request_end(x->dev);
	fx_free(x);

	/* D3cold: 100 ms on the way back (V4) */
	x = fx_make("platform_d3cold=on");
	assert_int_equal(step(x), 1);
	assert_int_equal(x->dev->pm.power_state, VFPM_D3COLD);
	assert_int_equal(x->p->last_target, VFPM_D3COLD);
	assert_int_equal(atomic_load(&x->clk.slept), 10 * MS);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(atomic_load(&x->clk.slept), 110 * MS);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(x->p->resets, 1);   /* the power loss reset it */
	pm_request_end(x->dev);
	fx_free(x);

	/* pm_delays=none: no time passes */
	x = fx_make("pm_delays=none");
	assert_int_equal(step(x), 1);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(atomic_load(&x->clk.slept), 0);
	pm_request_end(x->dev);
	fx_free(x);
}

/* --- low-power features (B1-B16) --- */

static void b1_b7_b10_entry_suspends_after_the_request_and_reenters(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_false(x->dev->bars[0].revoked);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, -1), 0);
	assert_true(x->dev->pm.engaged);
	assert_int_equal(usage(x), 1);   /* the open reference is lent, B7 */
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_true(x->dev->bars[0].revoked);   /* B22 */
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);   /* not before the step */
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);   /* B1 */
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	/* B10: an access resumes, stays engaged, and suspends again */
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_true(x->dev->pm.engaged);
	assert_int_equal(bar0_read(x->dev), 0);   /* B23: region access works */
	assert_true(x->dev->bars[0].revoked);     /* B21: mmaps still fault */
	pm_request_end(x->dev);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(x->p->suspends, 3);
	/* B4: EXIT gives the open reference back once */
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_exit(x->dev), 0);
	assert_false(x->dev->pm.engaged);
	assert_int_equal(usage(x), 2);
	assert_int_equal(pm_feature_exit(x->dev), 0);   /* B3 */
	assert_int_equal(usage(x), 2);
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 1);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_false(x->dev->bars[0].revoked);
	fx_free(x);
}

/* Pages of the memfd holding data, from a description of our own. */
static unsigned data_pages(int memfd, size_t size, size_t *first)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	unsigned n = 0;
	*first = size;
	off_t off = 0;
	for (;;) {
		off_t d = lseek(fd, off, SEEK_DATA);
		if (d < 0 || (size_t)d >= size)
			break;
		off_t h = lseek(fd, d, SEEK_HOLE);
		if ((size_t)d < *first)
			*first = (size_t)d;
		n += (unsigned)((h - d) / 4096);
		off = h;
	}
	close(fd);
	return n;
}

/* The copy kept while BAR memory is revoked holds only what the BAR holds:
 * its untouched pages are not resident (mincore), and once access comes
 * back the memfd holds data where it did before, and nowhere else. */
static void revoked_bar_copy_costs_only_its_data(void **state)
{
	(void)state;
	struct fx *x = fx_make("bar_pages=64");
	fx_open_suspended(x);
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
	struct core_bar *b = &x->dev->bars[0];
	assert_false(b->revoked);
	assert_int_equal(b->size, 64 * 4096);
	uint8_t *mem = b->mem;
	memset(mem + 5 * 4096, 0xa5, 4096);
	mem[40 * 4096 + 7] = 0x3c;
	size_t first;
	assert_int_equal(data_pages(b->memfd, b->size, &first), 2);
	assert_int_equal(first, 5 * 4096);

	/* B22: LOW_POWER_ENTRY revokes the mapping and keeps the copy */
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, -1), 0);
	assert_true(b->revoked);
	assert_non_null(b->shadow);
	unsigned char vec[64];
	assert_int_equal(mincore(b->shadow, b->size, vec), 0);
	unsigned resident = 0;
	for (int i = 0; i < 64; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, 2);
	assert_true(vec[5] & 1);
	assert_true(vec[40] & 1);
	assert_int_equal(((uint8_t *)b->shadow)[5 * 4096 + 100], 0xa5);
	assert_int_equal(((uint8_t *)b->shadow)[40 * 4096 + 7], 0x3c);
	assert_int_equal(data_pages(b->memfd, b->size, &first), 0);   /* truncated */

	/* EXIT: the data is back, in the same two pages only */
	assert_int_equal(pm_feature_exit(x->dev), 0);
	pm_request_end(x->dev);
	assert_false(b->revoked);
	assert_null(b->shadow);
	mem = b->mem;
	assert_int_equal(mem[5 * 4096 + 4095], 0xa5);
	assert_int_equal(mem[40 * 4096 + 7], 0x3c);
	assert_int_equal(mem[40 * 4096 + 8], 0);
	assert_int_equal(data_pages(b->memfd, b->size, &first), 2);
	assert_int_equal(first, 5 * 4096);
	fx_free(x);
}

static void b2_second_entry_is_einval_and_changes_nothing(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	int efd = new_efd();
	int first = dup(efd), second = dup(efd);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, first), 0);
	assert_int_equal(pm_feature_entry(x->dev, second), -EINVAL);
	assert_int_equal(pm_feature_entry(x->dev, -1), -EINVAL);
	close(second);   /* not retained: the caller closes it */
	assert_int_equal(x->dev->pm.wake_fd, first);
	assert_true(x->dev->pm.engaged);
	assert_int_equal(usage(x), 1);   /* the open reference dropped once */
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 0);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(efd_count(efd), 0);
	fx_free(x);
	close(efd);
}

static void b11_b14_wakeup_fires_once_then_entry_rearms(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	int efd = new_efd();
	engage_and_suspend(x, efd);
	assert_int_equal(efd_count(efd), 0);   /* suspending does not signal */
	/* B11: the next access wakes the device: one signal, disengaged */
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(efd_count(efd), 1);
	assert_false(x->dev->pm.engaged);
	assert_int_equal(x->dev->pm.wake_fd, -1);
	assert_int_equal(x->dev->pm.wakeups_signalled, 1);
	assert_int_equal(usage(x), 2);   /* the request's and the open one, back */
	/* B14: ENTRY after a wake succeeds and re-arms */
	assert_int_equal(pm_feature_entry(x->dev, dup(efd)), 0);
	assert_true(x->dev->pm.engaged);
	assert_int_equal(usage(x), 1);
	pm_request_end(x->dev);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(efd_count(efd), 1);
	assert_int_equal(x->dev->pm.wakeups_signalled, 2);
	/* B11: stays active afterwards, and a later EXIT does nothing */
	pm_request_end(x->dev);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_exit(x->dev), 0);
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 1);
	assert_int_equal(efd_count(efd), 0);
	fx_free(x);
	close(efd);
}

static void b12_no_signal_without_a_real_suspend(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	assert_int_equal(pm_set(x->dev, "power_control", "on"), 0);
	int efd = new_efd();
	int fd = dup(efd);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, fd), 0);
	pm_request_end(x->dev);
	assert_int_equal(usage(x), 1);   /* power_control=on's */
	fake_clock_advance_ms(&x->clk, 1000);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(efd_count(efd), 0);
	assert_true(x->dev->pm.engaged);
	assert_int_equal(pm_feature_exit(x->dev), 0);
	pm_request_end(x->dev);
	assert_int_equal(efd_count(efd), 0);   /* EXIT releases it silently */
	assert_int_equal(x->dev->pm.wake_fd, -1);
	assert_int_equal(x->dev->pm.wakeups_signalled, 0);
	assert_int_equal(fcntl(fd, F_GETFD), -1);   /* closed by the core */
	assert_int_equal(errno, EBADF);
	fx_free(x);
	close(efd);
}

static void b15_close_while_engaged_does_not_signal_and_goes_idle(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	int efd = new_efd();
	engage_and_suspend(x, efd);
	unsigned resets = x->p->resets;
	fx_close(x);
	assert_int_equal(efd_count(efd), 0);
	assert_false(x->dev->pm.engaged);
	assert_int_equal(x->dev->pm.wake_fd, -1);
	assert_int_equal(x->p->resets, resets + 1);   /* resumed, then reset */
	assert_int_equal(usage(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(step(x), 1);                 /* then idle (B35) */
	assert_int_equal(rst(x), RPM_SUSPENDED);
	fx_free(x);
	close(efd);
}

static void b16_power_control_on_fires_an_armed_wakeup(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	int efd = new_efd();
	assert_int_equal(pm_request_begin(x->dev), 0);
	assert_int_equal(pm_feature_entry(x->dev, dup(efd)), 0);
	pm_request_end(x->dev);
	assert_int_equal(step(x), 1);
	assert_int_equal(pm_set(x->dev, "power_control", "on"), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(efd_count(efd), 1);
	assert_false(x->dev->pm.engaged);
	assert_int_equal(pm_set(x->dev, "power_control", "auto"), 0);
	assert_int_equal(usage(x), 1);   /* the open reference is back */
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	fx_free(x);
	close(efd);
}

/* --- PMCSR (B26-B30) --- */

static void pmcsr_d0_d3hot_d0_parks_the_model_and_gates_memory(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	unsigned sus = x->p->suspends, res = x->p->resumes;
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(bar0_read(x->dev), 0);
	uint64_t t = now(x);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	assert_int_equal(power_bits(x->dev), PS_D3HOT);
	assert_int_equal(x->p->suspends, sus + 1);
	assert_int_equal(now(x), t + 10 * MS);   /* the D3hot delay, on the clock */
	assert_int_equal(bar0_read(x->dev), -EIO);   /* B24 */
	assert_true(x->dev->bars[0].revoked);        /* B29 */
	assert_int_equal(rst(x), RPM_ACTIVE);   /* a user D3hot is not a runtime suspend */
	assert_int_equal(usage(x), 1);
	/* B29: the current state again is a no-op, with no delay */
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	assert_int_equal(now(x), t + 10 * MS);
	assert_int_equal(x->p->suspends, sus + 1);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D0);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(power_bits(x->dev), PS_D0);
	assert_int_equal(x->p->resumes, res + 1);
	assert_int_equal(now(x), t + 20 * MS);
	assert_int_equal(bar0_read(x->dev), 0);
	assert_false(x->dev->bars[0].revoked);
	assert_int_equal(x->p->resets, 0);   /* NoSoftRst+: kept its state */
	fx_free(x);
}

static void b30_nosoftrst_minus_resets_and_restores_config(void **state)
{
	(void)state;
	struct fx *x = fx_make("nosoftrst=off");
	fx_open_suspended(x);
	unsigned resets = x->p->resets;
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_w8(x->dev, PCI_INTERRUPT_LINE, 0x0b);
	uint8_t before[VPCI_CFG_SIZE];
	memcpy(before, x->dev->cfg.data, sizeof(before));
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	assert_int_equal(x->p->resets, resets);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D0);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(x->p->resets, resets + 1);   /* the device reset itself */
	assert_int_equal(cfg_r16(x->dev, PCI_COMMAND), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	assert_memory_equal(before, x->dev->cfg.data, sizeof(before));   /* restored */
	assert_null(x->dev->pm.pm_save);
	fx_free(x);
}

static void b27_b28_invalid_transitions_are_ignored(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);   /* no D1, no D2 */
	fx_open_suspended(x);
	uint64_t t = now(x);
	unsigned sus = x->p->suspends;
	cfg_w16(x->dev, pmcsr(x->dev), PS_D1);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D2);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(power_bits(x->dev), PS_D0);
	/* B27: a write that starts past PMCSR is no PowerState write */
	cfg_w8(x->dev, pmcsr(x->dev) + 1, PS_D3HOT);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(x->p->suspends, sus);
	assert_int_equal(now(x), t);
	fx_free(x);

	x = fx_make("d1=on");
	fx_open_suspended(x);
	sus = x->p->suspends;
	cfg_w16(x->dev, pmcsr(x->dev), PS_D1);   /* supported: no model park */
	assert_int_equal(x->dev->pm.power_state, VFPM_D1);
	assert_int_equal(power_bits(x->dev), PS_D1);
	assert_int_equal(x->p->suspends, sus);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	assert_int_equal(x->p->suspends, sus + 1);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D1);   /* D3hot -> D1: -EINVAL inside */
	assert_int_equal(x->dev->pm.power_state, VFPM_D3HOT);
	assert_int_equal(power_bits(x->dev), PS_D3HOT);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D2);   /* unsupported: -EIO inside */
	assert_int_equal(power_bits(x->dev), PS_D3HOT);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D0);
	assert_int_equal(power_bits(x->dev), PS_D0);
	assert_int_equal(x->p->resumes, 2);   /* the open's and this D0's */
	fx_free(x);
}

/* --- resets --- */

static void reset_from_d3hot_goes_to_d0_and_keeps_config(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	fx_open_suspended(x);
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_w8(x->dev, PCI_INTERRUPT_LINE, 0x0b);
	uint8_t before[VPCI_CFG_SIZE];
	memcpy(before, x->dev->cfg.data, sizeof(before));
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	unsigned res = x->p->resumes;
	pthread_mutex_lock(&x->dev->req_lock);
	device_reset(x->dev, "test", true);
	pthread_mutex_unlock(&x->dev->req_lock);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);   /* B31: D0 first */
	assert_int_equal(x->p->resumes, res + 1);
	assert_int_equal(x->p->resets, 1);
	assert_memory_equal(before, x->dev->cfg.data, sizeof(before));
	assert_int_equal(usage(x), 1);
	assert_int_equal(step(x), 0);
	fx_free(x);
}

static void disconnect_returns_config_to_power_on_values(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	uint8_t power_on[VPCI_CFG_SIZE];
	memcpy(power_on, x->dev->cfg.data, sizeof(power_on));
	fx_open_suspended(x);
	cfg_w16(x->dev, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	cfg_w8(x->dev, PCI_INTERRUPT_LINE, 0x0b);
	cfg_w16(x->dev, x->dev->pcie_cap + PCI_EXP_DEVCTL, PCI_EXP_DEVCTL_RELAX_EN);
	cfg_w16(x->dev, pmcsr(x->dev), PS_D3HOT);
	assert_memory_not_equal(power_on, x->dev->cfg.data, sizeof(power_on));
	pthread_mutex_lock(&x->dev->req_lock);
	device_disconnect(x->dev);
	pthread_mutex_unlock(&x->dev->req_lock);
	assert_int_equal(x->dev->pm.power_state, VFPM_D0);
	assert_int_equal(x->p->resets, 1);
	assert_memory_equal(power_on, x->dev->cfg.data, sizeof(power_on));
	assert_true(x->dev->bars[0].revoked);   /* COMMAND.MEM is off again */
	fx_free(x);
}

/* --- SR-IOV (B33, B34, B36) --- */

struct vf_host {
	struct rpm_wq *wq;
	struct vfpm_device *vfs[4];
	unsigned n, creates, destroys;
};

static int host_create_vfs(void *ctx, struct vfpm_device *pf, unsigned n)
{
	struct vf_host *h = ctx;
	if (n > 4)
		return -ENOSPC;
	for (unsigned i = 0; i < n; i++) {
		int rc = device_create_vf(pf, i, h->wq, &h->vfs[i]);
		if (rc) {
			while (i--)
				device_destroy(h->vfs[i]);
			return rc;
		}
	}
	h->n = n;
	h->creates++;
	return 0;
}

static void host_destroy_vfs(void *ctx, struct vfpm_device *pf)
{
	struct vf_host *h = ctx;
	(void)pf;
	for (unsigned i = 0; i < h->n; i++)
		device_destroy(h->vfs[i]);
	h->n = 0;
	h->destroys++;
}

static const struct sriov_host fake_host = { .create_vfs = host_create_vfs,
					     .destroy_vfs = host_destroy_vfs };

static void b33_b34_b36_pf_with_vfs_stays_in_d0_and_vfs_suspend_alone(void **state)
{
	(void)state;
	struct fx *x = fx_make("total_vfs=2");
	struct vf_host h = { .wq = x->wq };
	x->dev->host = &fake_host;
	x->dev->host_ctx = &h;
	struct vfpm_device *pf = x->dev;
	assert_true(pf->sriov_cap != 0);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	unsigned sus = x->p->suspends;

	/* the host enables them (sriov_numvfs), as in Linux */
	assert_int_equal(device_sriov_configure(pf, 2), 0);
	assert_int_equal(h.creates, 1);
	assert_int_equal(h.n, 2);
	assert_int_equal(pf->num_vfs, 2);
	/* B33: the PF resumed and is held */
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(usage(x), 1);
	assert_int_equal(pf->pm.power_state, VFPM_D0);
	/* B36: the VFs suspend on their own; the PF does not */
	assert_int_equal(step(x), 2);
	for (unsigned i = 0; i < 2; i++) {
		assert_int_equal(rpm_status(&h.vfs[i]->pm.rpm), RPM_SUSPENDED);
		assert_true(h.vfs[i]->is_vf);
	}
	assert_int_equal(rst(x), RPM_ACTIVE);
	/* B34: PMCSR D3hot is refused, silently */
	cfg_w16(pf, pmcsr(pf), PS_D3HOT);
	assert_int_equal(pf->pm.power_state, VFPM_D0);
	assert_int_equal(power_bits(pf), PS_D0);
	assert_int_equal(x->p->suspends, sus);
	/* B34: ENTRY on the PF succeeds but never suspends it */
	assert_int_equal(pm_open(pf), 0);
	x->open = true;
	assert_int_equal(pm_request_begin(pf), 0);
	assert_int_equal(pm_feature_entry(pf, -1), 0);
	assert_true(pf->pm.engaged);
	pm_request_end(pf);
	fake_clock_advance_ms(&x->clk, 3600 * 1000);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	assert_int_equal(pm_request_begin(pf), 0);
	assert_int_equal(pm_feature_exit(pf), 0);
	pm_request_end(pf);
	fx_close(x);
	/* the VFs are the host's: they outlive the PF's client */
	assert_int_equal(h.destroys, 0);
	assert_int_equal(pf->num_vfs, 2);
	assert_int_equal(usage(x), 1);
	assert_int_equal(step(x), 0);
	assert_int_equal(rst(x), RPM_ACTIVE);
	/* the host removes them: the PF idles */
	assert_int_equal(device_sriov_configure(pf, 0), 0);
	assert_int_equal(h.destroys, 1);
	assert_int_equal(pf->num_vfs, 0);
	assert_int_equal(usage(x), 0);
	assert_int_equal(step(x), 1);
	assert_int_equal(rst(x), RPM_SUSPENDED);
	assert_int_equal(pf->pm.power_state, VFPM_D3HOT);
	fx_free(x);
}

/* --- BAR memory across sessions: a new file per session --- */

static ino_t ino_of(int fd)
{
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

/* What a client of dev would hold: its copy of BAR0's memfd. */
static int client_copy(struct vfpm_device *dev)
{
	int fd = dup(dev->bars[0].memfd);
	assert_true(fd >= 0);
	return fd;
}

static void bar_w32(struct vfpm_device *dev, uint64_t off, uint32_t v)
{
	assert_int_equal(device_region_rw(dev, 0, off, &v, 4, true), 0);
}

static uint32_t bar_r32(struct vfpm_device *dev, uint64_t off)
{
	uint32_t v = 0xffffffff;
	assert_int_equal(device_region_rw(dev, 0, off, &v, 4, false), 0);
	return v;
}

/* One session of dev: open, memory decode on, write v at 0x10 (seen
 * through the client's copy of the memfd), returned in *copy. */
static void session_writes(struct vfpm_device *dev, uint32_t v, int *copy)
{
	assert_int_equal(pm_open(dev), 0);
	cfg_w16(dev, PCI_COMMAND, PCI_COMMAND_MEMORY);
	assert_int_equal(bar_r32(dev, 0x10), 0);   /* power-on zeros */
	bar_w32(dev, 0x10, v);
	*copy = client_copy(dev);
	uint32_t seen = 0;
	assert_int_equal(pread(*copy, &seen, 4, 0x10), 4);
	assert_int_equal(seen, v);
}

static void dev_close(struct vfpm_device *dev)
{
	pthread_mutex_lock(&dev->req_lock);
	device_close(dev);
	pthread_mutex_unlock(&dev->req_lock);
}

/* The former client's copy reaches neither the next session's BAR nor the
 * model's view; the model's pointer (vfpm_dev_bar_mem) keeps its address. */
static void close_gives_each_memfd_bar_a_new_file(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	struct vfpm_device *dev = x->dev;
	assert_int_equal(step(x), 1);
	int old;
	session_writes(dev, 0x11111111, &old);
	void *model_view = vfpm_dev_bar_mem(dev, 0);
	assert_non_null(model_view);
	dev_close(dev);
	assert_false(dev->bars[0].stale);
	assert_true(ino_of(old) != ino_of(dev->bars[0].memfd));
	/* the hostile former client grows its file back and writes */
	assert_int_equal(ftruncate(old, 4096), 0);
	uint32_t evil = 0xdeadbeef;
	assert_int_equal(pwrite(old, &evil, 4, 0x20), 4);

	int now_fd;
	session_writes(dev, 0x22222222, &now_fd);   /* starts from zeros */
	assert_true(vfpm_dev_bar_mem(dev, 0) == model_view);
	assert_int_equal(*(volatile uint32_t *)model_view, 0);
	assert_int_equal(((volatile uint32_t *)model_view)[4], 0x22222222);
	assert_int_equal(bar_r32(dev, 0x20), 0);   /* the former client's write */
	uint32_t seen = 0;
	assert_int_equal(pread(old, &seen, 4, 0x10), 4);
	assert_int_equal(seen, 0);                 /* not 0x22222222 */
	assert_int_equal(pread(old, &seen, 4, 0x20), 4);
	assert_int_equal(seen, evil);              /* its own file, its own bytes */
	close(old);
	close(now_fd);
	x->open = true;
	fx_free(x);
}

/* No new file at close (no descriptor left): the old one is emptied and
 * marked stale; the next open retries and refuses the client while it
 * still fails, then succeeds with a new file. */
static void close_without_a_new_file_refuses_the_next_open(void **state)
{
	(void)state;
	struct fx *x = fx_make(NULL);
	struct vfpm_device *dev = x->dev;
	assert_int_equal(step(x), 1);
	int old;
	session_writes(dev, 0x33333333, &old);
	struct rlimit rl, low;
	assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
	int lowest = dup(0);   /* the descriptor memfd_create would get */
	assert_true(lowest >= 0);
	close(lowest);
	low = (struct rlimit){ (rlim_t)lowest, rl.rlim_max };
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
	dev_close(dev);
	assert_true(dev->bars[0].stale);
	assert_int_equal(ino_of(old), ino_of(dev->bars[0].memfd));
	uint32_t seen = 1;
	assert_int_equal(pread(old, &seen, 4, 0x10), 0);   /* emptied */
	assert_int_equal(pm_open(dev), -EMFILE);           /* still no file: refused */
	assert_false(dev->pm.client_connected);
	assert_true(dev->bars[0].stale);
	assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
	int now_fd;
	session_writes(dev, 0x44444444, &now_fd);
	assert_false(dev->bars[0].stale);
	assert_true(ino_of(old) != ino_of(now_fd));
	assert_int_equal(pread(old, &seen, 4, 0x10), 0);
	close(old);
	close(now_fd);
	x->open = true;
	fx_free(x);
}

/* A VF's memfd BAR gets a new file at its client's close too. */
static void vf_close_gives_its_bar_a_new_file(void **state)
{
	(void)state;
	struct fx *x = fx_make("total_vfs=1");
	struct vf_host h = { .wq = x->wq };
	x->dev->host = &fake_host;
	x->dev->host_ctx = &h;
	assert_int_equal(device_sriov_configure(x->dev, 1), 0);
	struct vfpm_device *vf = h.vfs[0];
	assert_true(vf->is_vf && vf->bars[0].memfd >= 0);
	assert_int_equal(pm_open(vf), 0);
	/* the host's VF MSE (set with VF Enable) decodes the VF's memory, and
	 * the VF's reset at close does not clear it: the BAR stays mapped */
	bar_w32(vf, 0x10, 0x55555555);
	int old = client_copy(vf);
	void *model_view = vfpm_dev_bar_mem(vf, 0);
	dev_close(vf);
	assert_false(vf->bars[0].revoked);
	assert_false(vf->bars[0].stale);
	assert_true(ino_of(old) != ino_of(vf->bars[0].memfd));
	struct stat st;
	assert_int_equal(fstat(vf->bars[0].memfd, &st), 0);
	assert_int_equal(st.st_size, 4096);        /* the BAR's size, mapped */
	assert_true(vfpm_dev_bar_mem(vf, 0) == model_view);
	assert_int_equal(((volatile uint32_t *)model_view)[4], 0);
	assert_int_equal(bar_r32(vf, 0x10), 0);
	bar_w32(vf, 0x10, 0x66666666);             /* the model's side now */
	uint32_t seen = 0;
	assert_int_equal(pread(old, &seen, 4, 0x10), 4);
	assert_int_equal(seen, 0x55555555);        /* the old file: untouched */
	close(old);
	assert_int_equal(device_sriov_configure(x->dev, 0), 0);
	fx_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(request_resumes_and_holds_and_only_a_step_suspends),
		cmocka_unit_test(autosuspend_delay_counts_from_the_last_request),
		cmocka_unit_test(deferred_end_leaves_the_idle_to_pm_idle),
		cmocka_unit_test(transition_delays_and_residency_follow_the_clock),
		cmocka_unit_test(energy_follows_residency_and_the_power_settings),
		cmocka_unit_test(energy_defaults_and_creation_keys),
		cmocka_unit_test(b1_b7_b10_entry_suspends_after_the_request_and_reenters),
		cmocka_unit_test(revoked_bar_copy_costs_only_its_data),
		cmocka_unit_test(b2_second_entry_is_einval_and_changes_nothing),
		cmocka_unit_test(b11_b14_wakeup_fires_once_then_entry_rearms),
		cmocka_unit_test(b12_no_signal_without_a_real_suspend),
		cmocka_unit_test(b15_close_while_engaged_does_not_signal_and_goes_idle),
		cmocka_unit_test(b16_power_control_on_fires_an_armed_wakeup),
		cmocka_unit_test(pmcsr_d0_d3hot_d0_parks_the_model_and_gates_memory),
		cmocka_unit_test(b30_nosoftrst_minus_resets_and_restores_config),
		cmocka_unit_test(b27_b28_invalid_transitions_are_ignored),
		cmocka_unit_test(reset_from_d3hot_goes_to_d0_and_keeps_config),
		cmocka_unit_test(disconnect_returns_config_to_power_on_values),
		cmocka_unit_test(b33_b34_b36_pf_with_vfs_stays_in_d0_and_vfs_suspend_alone),
		cmocka_unit_test(close_gives_each_memfd_bar_a_new_file),
		cmocka_unit_test(close_without_a_new_file_refuses_the_next_open),
		cmocka_unit_test(vf_close_gives_its_bar_a_new_file),
	};
	return cmocka_run_group_tests_name("pm-core", tests, NULL, NULL);
}
