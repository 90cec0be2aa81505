/* V5 concurrency stress: one real vfpmd with four demo devices, hammered
 * at once by client requests, low-power feature cycles, guest PMCSR
 * transitions, control-plane power_control toggles and status readers.
 * Meant to run under ThreadSanitizer (suite "concurrency"): `make
 * check-tsan` builds vfpmd itself with -fsanitize=thread, so its reports
 * land in vfpmd's stderr log, which this test reads at the end.
 *
 * Devices (all pm_delays=none):
 *   d0, d1  plain demo devices (NoSoftRst+, D3hot): state survives suspend;
 *   d2      nosoftrst=off: the model resets on every D3hot -> D0;
 *   d3      platform_d3cold=on: runtime suspends go to D3cold.
 *
 * Per device, one client connection shared by two threads (the client
 * library is single-threaded per handle; each request is one critical
 * section of the device's mutex):
 *   requester  REGION_READ/WRITE of config (IDs, PMCSR, cache line size)
 *              and BAR0 (ID, scratch, doorbell, interrupt registers), with
 *              an INTx eventfd installed; asserts the values;
 *   pm cycler  LOW_POWER_ENTRY_WITH_WAKEUP / EXIT, LOW_POWER_ENTRY / EXIT
 *              (the device suspends and resumes around the requester's
 *              accesses, B10/B11), and PMCSR D3hot -> D0 (B24/B29).
 * Shared threads:
 *   control    power_control on/auto, config-read and status, any device;
 *   observer   status in a loop: usage_count >= 0, usage_underflows == 0
 *              and model_violations == 0 on every sample.
 * At the end: no underflow, no model callback while parked, every wakeup
 * the server counted reached the eventfd and no arming fired twice, the
 * usage counts return to 0 once the clients leave, vfpmd exits cleanly,
 * and its log holds no ThreadSanitizer report.
 *
 * VFPM_STRESS_SECONDS (default 6) is how long the threads run. */
#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pmtest.h"
#include "stress.h"

#define NDEV 4

/* demo BAR0 registers (docs/demo-device.md) */
#define REG_ID 0x00
#define REG_SCRATCH 0x08
#define REG_DOORBELL 0x10
#define REG_INT_STATUS 0x14
#define REG_INT_MASK 0x18
#define REG_DMA_LEN 0x30
#define DEMO_ID 0x4d504656u
#define DEMO_IDS 0x10f01b36u   /* device << 16 | vendor */
#define BAR0 VFIO_PCI_BAR0_REGION_INDEX

struct sdev {
	unsigned idx;
	char name[8];
	bool keeps_state;          /* false: a suspend may reset the model */
	struct vfpm_client *c;
	pthread_mutex_t mu;        /* one request (or PM sequence) at a time on c */
	unsigned pm_cap;
	int wake_efd;              /* reused for every arming */
	int intx_efd;
	/* pm cycler results */
	uint64_t wake_signals;     /* eventfd increments, all armings */
	uint64_t armings, fired_armings;
	uint64_t lp_cycles, d3hot_cycles;
	/* requester results */
	uint64_t requests, doorbells;
};

static struct vfpmd_proc proc;
static struct sdev devs[NDEV];
static atomic_ulong status_samples, ctl_cycles, setting_changes;

static int bar0_read(struct sdev *d, unsigned off, uint32_t *v)
{
	return vfpm_client_region_read(d->c, BAR0, off, v, 4);
}

static int bar0_write(struct sdev *d, unsigned off, uint32_t v)
{
	return vfpm_client_region_write(d->c, BAR0, off, &v, 4);
}

#define CHECK_RC(d, what, rc)                                                               \
	do {                                                                                \
		if ((rc) != 0) {                                                            \
			stress_fail("%s: %s: %s", (d)->name, (what), strerror(-(rc)));             \
			return;                                                             \
		}                                                                           \
	} while (0)

/* --- requester: config and BAR0 traffic --- */

static void requester_step(struct sdev *d, uint32_t *seed, uint32_t *scratch)
{
	uint32_t v = 0;
	int rc;
	switch (rnd(seed) % 6) {
	case 0: /* IDs through config space */
		rc = pmt_cfg_read(d->c, PCI_VENDOR_ID, &v, 4);
		CHECK_RC(d, "config read IDs", rc);
		if (v != DEMO_IDS)
			stress_fail("%s: config IDs read 0x%08x", d->name, v);
		break;
	case 1: { /* after any resume the device is in D0 (B9) */
		uint16_t csr = 0xffff;
		rc = pmt_cfg_read(d->c, d->pm_cap + PCI_PM_CTRL, &csr, 2);
		CHECK_RC(d, "PMCSR read", rc);
		if (csr & PCI_PM_CTRL_STATE_MASK)
			stress_fail("%s: PMCSR reads D%u during a request", d->name,
			     csr & PCI_PM_CTRL_STATE_MASK);
		break;
	}
	case 2: { /* a writable config byte: written, read back */
		uint8_t cls = (uint8_t)rnd(seed), back = 0;
		rc = pmt_cfg_write(d->c, PCI_CACHE_LINE_SIZE, &cls, 1);
		CHECK_RC(d, "config write", rc);
		rc = pmt_cfg_read(d->c, PCI_CACHE_LINE_SIZE, &back, 1);
		CHECK_RC(d, "config read", rc);
		/* config space is restored across every suspend, even D3cold */
		if (back != cls)
			stress_fail("%s: cache line size wrote 0x%02x read 0x%02x", d->name, cls, back);
		break;
	}
	case 3: { /* scratch register: the model's state */
		uint32_t w = rnd(seed);
		rc = bar0_write(d, REG_SCRATCH, w);
		CHECK_RC(d, "scratch write", rc);
		rc = bar0_read(d, REG_SCRATCH, &v);
		CHECK_RC(d, "scratch read", rc);
		/* a device that loses state may have suspended in between */
		if (v != w && (d->keeps_state || v != 0))
			stress_fail("%s: scratch wrote 0x%08x read 0x%08x", d->name, w, v);
		*scratch = w;
		rc = bar0_read(d, REG_ID, &v);
		CHECK_RC(d, "ID read", rc);
		if (v != DEMO_ID)
			stress_fail("%s: BAR0 ID read 0x%08x", d->name, v);
		break;
	}
	case 4: /* a zero-length job: the worker thread runs, INTx fires */
		rc = bar0_write(d, REG_DMA_LEN, 0);
		if (!rc)
			rc = bar0_write(d, REG_INT_MASK, 1);
		if (!rc)
			rc = bar0_write(d, REG_DOORBELL, 1);
		CHECK_RC(d, "doorbell", rc);
		d->doorbells++;
		break;
	default: /* acknowledge: clear the cause, unmask INTx */
		rc = bar0_write(d, REG_INT_STATUS, 3);
		if (!rc)
			rc = vfpm_client_set_irqs(d->c, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK,
						  VFIO_PCI_INTX_IRQ_INDEX, 0, 1, NULL, 0, NULL);
		CHECK_RC(d, "INTx acknowledge", rc);
		(void)pmt_eventfd_count(d->intx_efd);
		break;
	}
	d->requests++;
}

static void *requester_main(void *arg)
{
	struct sdev *d = arg;
	uint32_t seed = 0x9e3779b9u * (d->idx + 1), scratch = 0;
	while (running()) {
		pthread_mutex_lock(&d->mu);
		requester_step(d, &seed, &scratch);
		pthread_mutex_unlock(&d->mu);
		if (rnd(&seed) % 4 == 0)
			sleep_us(rnd(&seed) % 300);
	}
	return NULL;
}

/* --- pm cycler: low-power features and guest D3hot --- */

static void lp_cycle(struct sdev *d, uint32_t *seed, bool wakeup)
{
	int rc;
	pthread_mutex_lock(&d->mu);
	rc = wakeup ? pmt_lp_entry_wakeup(d->c, d->wake_efd) : pmt_lp_entry(d->c);
	pthread_mutex_unlock(&d->mu);
	if (rc) {
		stress_fail("%s: LOW_POWER_ENTRY%s: %s", d->name, wakeup ? "_WITH_WAKEUP" : "",
		     strerror(-rc));
		return;
	}
	/* engaged: the requester's accesses resume it (and fire the wakeup);
	 * between them the device idles back to suspended */
	sleep_us(200 + rnd(seed) % 3000);
	pthread_mutex_lock(&d->mu);
	rc = pmt_lp_exit(d->c);
	/* EXIT waits for any resume in flight (memory_lock): after its reply
	 * the arming's count on the eventfd is final */
	uint64_t n = wakeup ? pmt_eventfd_count(d->wake_efd) : 0;
	pthread_mutex_unlock(&d->mu);
	if (rc) {
		stress_fail("%s: LOW_POWER_EXIT: %s", d->name, strerror(-rc));
		return;
	}
	d->lp_cycles++;
	if (wakeup) {
		d->armings++;
		d->wake_signals += n;
		if (n)
			d->fired_armings++;
		if (n > 1)
			stress_fail("%s: one arming signalled the wakeup eventfd %llu times", d->name,
			     (unsigned long long)n);
	}
}

static void d3hot_cycle(struct sdev *d)
{
	unsigned csr = d->pm_cap + PCI_PM_CTRL;
	uint16_t v = 3 /* D3hot */, back = 0;
	uint32_t r;
	int rc;
	/* one critical section: the requester never sees the guest's D3hot */
	pthread_mutex_lock(&d->mu);
	rc = pmt_cfg_write(d->c, csr, &v, 2);
	if (!rc)
		rc = pmt_cfg_read(d->c, csr, &back, 2);
	if (!rc && (back & PCI_PM_CTRL_STATE_MASK) != 3 /* D3hot */)
		stress_fail("%s: PMCSR reads 0x%04x after a D3hot write", d->name, back);
	if (!rc) {
		/* B24: BARs do not decode in D3hot */
		int brc = bar0_read(d, REG_ID, &r);
		if (brc != -EIO)
			stress_fail("%s: BAR0 read in D3hot returned %d, not -EIO", d->name, brc);
	}
	v = 0; /* D0 */
	if (!rc)
		rc = pmt_cfg_write(d->c, csr, &v, 2);
	if (!rc)
		rc = pmt_cfg_read(d->c, csr, &back, 2);
	if (!rc && (back & PCI_PM_CTRL_STATE_MASK) != 0)
		stress_fail("%s: PMCSR reads 0x%04x after a D0 write", d->name, back);
	if (!rc)
		rc = bar0_read(d, REG_ID, &r);
	if (!rc && r != DEMO_ID)
		stress_fail("%s: BAR0 ID 0x%08x after D3hot -> D0", d->name, r);
	pthread_mutex_unlock(&d->mu);
	if (rc)
		stress_fail("%s: D3hot/D0 cycle: %s", d->name, strerror(-rc));
	d->d3hot_cycles++;
}

static void *cycler_main(void *arg)
{
	struct sdev *d = arg;
	uint32_t seed = 0x85ebca6bu * (d->idx + 7);
	while (running()) {
		switch (rnd(&seed) % 5) {
		case 0:
		case 1:
			lp_cycle(d, &seed, true);
			break;
		case 2:
		case 3:
			lp_cycle(d, &seed, false);
			break;
		default:
			d3hot_cycle(d);
			break;
		}
		sleep_us(rnd(&seed) % 500);
	}
	return NULL;
}

/* --- control plane --- */

static struct json_object *ctl_json(const char *req)
{
	char *buf = malloc(65536);
	if (!buf)
		return NULL;
	struct json_object *o = NULL;
	if (!ctl_request(proc.ctl, req, buf, 65536))
		o = json_tokener_parse(buf);
	free(buf);
	return o;
}

static bool reply_ok(struct json_object *o)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
}

static int64_t jpath_int(struct json_object *o, const char *a, const char *b, bool *found)
{
	struct json_object *v;
	if (!json_object_object_get_ex(o, a, &v) || (b && !json_object_object_get_ex(v, b, &v))) {
		*found = false;
		return 0;
	}
	*found = true;
	return json_object_get_int64(v);
}

struct dev_sample {
	int64_t usage, underflows, violations, wakeups, suspends, resumes;
	char runtime_status[16];
};

/* One status request; fills s[0..NDEV-1] by device name. */
static int sample_status(struct dev_sample *s)
{
	struct json_object *o = ctl_json("{\"cmd\":\"status\"}");
	struct json_object *arr;
	if (!reply_ok(o) || !json_object_object_get_ex(o, "devices", &arr)) {
		json_object_put(o);
		return -EPROTO;
	}
	unsigned seen = 0;
	int rc = 0;
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *x = json_object_array_get_idx(arr, i), *v;
		if (!json_object_object_get_ex(x, "name", &v))
			continue;
		const char *name = json_object_get_string(v);
		if (name[0] != 'd' || name[1] < '0' || name[1] >= '0' + NDEV || name[2])
			continue;
		struct dev_sample *d = &s[name[1] - '0'];
		bool f1, f2, f3, f4, f5, f6;
		d->usage = jpath_int(x, "usage_count", NULL, &f1);
		d->underflows = jpath_int(x, "counters", "usage_underflows", &f2);
		d->violations = jpath_int(x, "model_violations", NULL, &f3);
		d->wakeups = jpath_int(x, "counters", "wakeups_signalled", &f4);
		d->suspends = jpath_int(x, "counters", "suspends", &f5);
		d->resumes = jpath_int(x, "counters", "resumes", &f6);
		snprintf(d->runtime_status, sizeof(d->runtime_status), "%s",
			 json_object_object_get_ex(x, "runtime_status", &v) ? json_object_get_string(v)
									     : "?");
		if (!(f1 && f2 && f3 && f4 && f5 && f6))
			rc = -ENOENT;   /* model_violations missing: the demo reports it */
		seen++;
	}
	json_object_put(o);
	return rc ? rc : seen == NDEV ? 0 : -ENODEV;
}

static bool check_sample(const struct dev_sample *s, const char *when)
{
	bool ok = true;
	for (unsigned i = 0; i < NDEV; i++) {
		if (s[i].usage < 0) {
			stress_fail("%s: d%u usage_count %lld", when, i, (long long)s[i].usage);
			ok = false;
		}
		if (s[i].underflows != 0) {
			stress_fail("%s: d%u usage_underflows %lld", when, i, (long long)s[i].underflows);
			ok = false;
		}
		if (s[i].violations != 0) {
			stress_fail("%s: d%u model_violations %lld (model work while suspended)", when, i,
			     (long long)s[i].violations);
			ok = false;
		}
	}
	return ok;
}

static void *observer_main(void *arg)
{
	(void)arg;
	while (running()) {
		struct dev_sample s[NDEV];
		int rc = sample_status(s);
		if (rc) {
			stress_fail("observer: status: %s", strerror(-rc));
			break;
		}
		if (!check_sample(s, "observer"))
			break;
		atomic_fetch_add(&status_samples, 1);
		sleep_us(1000);
	}
	return NULL;
}

static bool ctl_set(unsigned i, const char *key, const char *val)
{
	char req[256];
	snprintf(req, sizeof(req),
		 "{\"cmd\":\"set\",\"device\":\"d%u\",\"key\":\"%s\",\"value\":\"%s\"}", i, key, val);
	struct json_object *o = ctl_json(req);
	bool ok = reply_ok(o);
	json_object_put(o);
	if (!ok)
		stress_fail("control: set d%u %s=%s failed", i, key, val);
	return ok;
}

static void *control_main(void *arg)
{
	(void)arg;
	uint32_t seed = 0xc2b2ae35u;
	while (running()) {
		unsigned i = rnd(&seed) % NDEV;
		/* a host-side resume (B16): fires an armed wakeup */
		if (!ctl_set(i, "power_control", "on"))
			break;
		if (rnd(&seed) % 2) {
			char req[128];
			snprintf(req, sizeof(req),
				 "{\"cmd\":\"config-read\",\"device\":\"d%u\",\"offset\":0,\"len\":4}", i);
			struct json_object *o = ctl_json(req);
			struct json_object *v;
			if (!reply_ok(o) || !json_object_object_get_ex(o, "value", &v) ||
			    (uint32_t)json_object_get_int64(v) != DEMO_IDS)
				stress_fail("control: config-read d%u IDs failed", i);
			json_object_put(o);
		}
		sleep_us(rnd(&seed) % 1500);
		if (!ctl_set(i, "power_control", "auto"))
			break;
		struct dev_sample s[NDEV];
		if (sample_status(s) || !check_sample(s, "control"))
			break;
		atomic_fetch_add(&ctl_cycles, 1);
		sleep_us(rnd(&seed) % 1500);
	}
	return NULL;
}

/* Run-time settings changed under the clients' feet (issue: races between
 * control-plane set and runtime suspends): idle_d3 with clients connected,
 * d3cold_allowed (a resume that fires an armed wakeup), the autosuspend
 * delay and the transition delays. Each is put back at the end. */
static void *settings_main(void *arg)
{
	(void)arg;
	static const struct {
		const char *key, *a, *b;
	} knobs[] = {
		{ "idle_d3", "off", "on" },
		{ "d3cold_allowed", "off", "on" },
		{ "autosuspend_delay_ms", "3", "0" },
		{ "pm_delays", "pci", "none" },
	};
	uint32_t seed = 0x27d4eb2fu;
	while (running()) {
		unsigned i = rnd(&seed) % NDEV, k = rnd(&seed) % 4;
		if (!ctl_set(i, knobs[k].key, knobs[k].a))
			break;
		sleep_us(rnd(&seed) % 3000);
		if (!ctl_set(i, knobs[k].key, knobs[k].b))
			break;
		atomic_fetch_add(&setting_changes, 1);
		sleep_us(rnd(&seed) % 2000);
	}
	return NULL;
}

/* --- set-up and the test --- */

static int connect_dev(struct sdev *d)
{
	int rc = vfpm_client_connect(proc.sock[d->idx], NULL, &d->c);
	if (rc)
		return rc;
	uint16_t cmd = PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
	rc = pmt_cfg_write(d->c, PCI_COMMAND, &cmd, 2);
	if (rc)
		return rc;
	d->pm_cap = pmt_pm_cap(d->c);
	if (!d->pm_cap)
		return -ENODEV;
	d->wake_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	d->intx_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (d->wake_efd < 0 || d->intx_efd < 0)
		return -errno;
	return vfpm_client_set_irqs(d->c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
				    VFIO_PCI_INTX_IRQ_INDEX, 0, 1, &d->intx_efd, 1, NULL);
}

static void stress_v5(void **state)
{
	(void)state;
	int seconds = 6;
	const char *env = getenv("VFPM_STRESS_SECONDS");
	if (env && atoi(env) > 0)
		seconds = atoi(env);

	static const char *const specs[] = {
		"demo,name=d0,pm_delays=none",
		"demo,name=d1,pm_delays=none",
		"demo,name=d2,pm_delays=none,nosoftrst=off",
		"demo,name=d3,pm_delays=none,platform_d3cold=on",
		NULL,
	};
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	for (unsigned i = 0; i < NDEV; i++) {
		struct sdev *d = &devs[i];
		d->idx = i;
		snprintf(d->name, sizeof(d->name), "d%u", i);
		d->keeps_state = i < 2;
		d->wake_efd = d->intx_efd = -1;
		pthread_mutex_init(&d->mu, NULL);
		int rc = connect_dev(d);
		if (rc)
			fprintf(stderr, "pm-stress: %s: set-up: %s\n", d->name, strerror(-rc));
		assert_int_equal(rc, 0);
	}

	stress_begin("pm-stress", seconds);
	pthread_t th[2 * NDEV + 3];
	unsigned nth = 0;
	for (unsigned i = 0; i < NDEV; i++) {
		assert_int_equal(pthread_create(&th[nth++], NULL, requester_main, &devs[i]), 0);
		assert_int_equal(pthread_create(&th[nth++], NULL, cycler_main, &devs[i]), 0);
	}
	assert_int_equal(pthread_create(&th[nth++], NULL, control_main, NULL), 0);
	assert_int_equal(pthread_create(&th[nth++], NULL, observer_main, NULL), 0);
	assert_int_equal(pthread_create(&th[nth++], NULL, settings_main, NULL), 0);
	/* A deadlocked vfpmd leaves client calls waiting forever: past a
	 * generous grace, kill it so the threads see EOF and the log (with
	 * TSan's lock-order report, if any) is still printed. */
	bool hung = stress_join(th, nth, seconds + 30 + seconds * 2, proc.pid);
	if (hung) {
		/* nothing more to learn from a dead server than its log */
		vfpmd_terminate(&proc);
		log_has_sanitizer_report(proc.log);
		print_log_tail(proc.log);
		vfpmd_cleanup(&proc);
		fail_msg("pm-stress: %s", stress_first_failure());
	}

	/* Quiet now (power_control back to auto, every engagement exited):
	 * the server's wakeup count must be what the eventfds received. */
	struct dev_sample s[NDEV];
	int src = sample_status(s);
	if (src)
		stress_fail("final status: %s", strerror(-src));
	else
		check_sample(s, "final");
	uint64_t tot_susp = 0, tot_res = 0;
	for (unsigned i = 0; !src && i < NDEV; i++) {
		struct sdev *d = &devs[i];
		fprintf(stderr,
			"pm-stress: %s: requests=%llu doorbells=%llu lp_cycles=%llu d3hot_cycles=%llu "
			"armings=%llu fired=%llu signals=%llu | server: suspends=%lld resumes=%lld "
			"wakeups_signalled=%lld usage=%lld\n",
			d->name, (unsigned long long)d->requests, (unsigned long long)d->doorbells,
			(unsigned long long)d->lp_cycles, (unsigned long long)d->d3hot_cycles,
			(unsigned long long)d->armings, (unsigned long long)d->fired_armings,
			(unsigned long long)d->wake_signals, (long long)s[i].suspends,
			(long long)s[i].resumes, (long long)s[i].wakeups, (long long)s[i].usage);
		if ((uint64_t)s[i].wakeups != d->wake_signals)
			stress_fail("%s: server counted %lld wakeups, the eventfd got %llu", d->name,
			     (long long)s[i].wakeups, (unsigned long long)d->wake_signals);
		tot_susp += (uint64_t)s[i].suspends;
		tot_res += (uint64_t)s[i].resumes;
	}
	fprintf(stderr, "pm-stress: %d s, status samples=%lu, control cycles=%lu, settings changed=%lu\n",
		seconds, atomic_load(&status_samples), atomic_load(&ctl_cycles),
		atomic_load(&setting_changes));
	if (!src && (tot_susp == 0 || tot_res == 0))
		stress_fail("no runtime suspend/resume happened: the stress did not stress");

	/* Clients leave: every reference must come back (usage 0, suspended). */
	for (unsigned i = 0; i < NDEV; i++) {
		vfpm_client_close(devs[i].c);
		devs[i].c = NULL;
	}
	bool settled = false;
	for (int t = 0; t < 1000 && !settled; t++) {
		settled = !sample_status(s);
		for (unsigned i = 0; settled && i < NDEV; i++)
			settled = s[i].usage == 0 && !strcmp(s[i].runtime_status, "suspended");
		if (!settled)
			sleep_us(5000);
	}
	if (!settled) {
		for (unsigned i = 0; i < NDEV; i++)
			fprintf(stderr, "pm-stress: d%u after close: usage=%lld %s\n", i,
				(long long)s[i].usage, s[i].runtime_status);
		stress_fail("devices did not return to usage 0 / suspended after the clients left");
	} else {
		check_sample(s, "after close");
	}

	int exit_status = vfpmd_terminate(&proc);
	bool tsan = log_has_sanitizer_report(proc.log);
	vfpmd_cleanup(&proc);
	for (unsigned i = 0; i < NDEV; i++) {
		close(devs[i].wake_efd);
		close(devs[i].intx_efd);
		pthread_mutex_destroy(&devs[i].mu);
	}
	if (stress_failures())
		fprintf(stderr, "pm-stress: %d failure(s), first: %s\n", stress_failures(),
			stress_first_failure());
	assert_false(tsan);
	assert_int_equal(stress_failures(), 0);
	assert_int_equal(exit_status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(stress_v5),
	};
	return cmocka_run_group_tests_name("pm-stress", tests, NULL, NULL);
}
