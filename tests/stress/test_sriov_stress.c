/* SR-IOV concurrency stress (kernel spec B33, B34, Race 2): PMCSR
 * transitions of a PF race its VF Enable and disable, and the PF must
 * never be below D0 while any of its VFs exists.
 *
 * One real vfpmd with two PFs (demo, pm_delays=none):
 *   pf0  total_vfs=8;
 *   pf1  total_vfs=4, nosoftrst=off: every D3hot -> D0 resets the device
 *        and restores the config saved at D3hot entry (undoing writes made
 *        in D3hot, as on hardware) -- but never the SR-IOV capability,
 *        which is the host's, under the enable too.
 * Threads, per PF:
 *   guest    a PF client writing PMCSR D3hot then D0 (the PF's user; B34
 *            refuses D3hot while VFs exist), reconnecting now and then
 *            (its disconnect resets the PF), now and then a DEVICE_RESET
 *            and a VF Enable write of its own: none of these may touch
 *            the VFs, which are the host's (its SR-IOV capability is
 *            read-only);
 *   cycler   the host's VF Enable / disable, by turns through sriov_numvfs
 *            and through a raw config-write of NumVFs and Control (NumVFs
 *            random 1..TotalVFs). It is the only one enabling this PF's
 *            VFs, so once its disable returns, no VF of the PF may exist
 *            and VF Enable must read 0.
 * Shared:
 *   host     PMCSR D3hot / D0 through the control plane's config-write,
 *            both PFs;
 *   vfuser   a client on pf0-vf0 whenever it exists, with a REQ eventfd:
 *            config and BAR0 traffic until REQ fires, then it lets go (so
 *            removals wait on a real client, briefly);
 *   observer status in a loop: whenever a PF has VFs (its num_vfs > 0, or
 *            a device lists it as "pf"), the PF is in D0, runtime-active,
 *            holding a usage reference; num_vfs equals the VFs listed; no
 *            usage count underflows on any device.
 * At the end: VFs disabled, clients gone, the PFs back to usage 0 and
 * suspended, usage_underflows 0 everywhere, vfpmd exits cleanly, and its
 * log holds no ThreadSanitizer report (`make check-tsan` builds vfpmd with
 * -fsanitize=thread; this test is in the "concurrency" suite).
 *
 * VFPM_STRESS_SECONDS (default 6) is how long the threads run. */
#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <poll.h>
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

#define NPF 2
#define MAX_DEVS 32
#define DEMO_ID 0x4d504656u
#define REG_ID 0x00
#define BAR0 VFIO_PCI_BAR0_REGION_INDEX

struct pf {
	unsigned idx;
	char name[8];
	unsigned total_vfs;
	unsigned cap;   /* SR-IOV capability */
	unsigned pm;    /* PM capability */
	/* guest thread */
	uint64_t d3_writes, d3_refused, d3_honoured, reconnects, resets;
	/* cycler thread */
	uint64_t enables, disables, enable_refused;
};

static struct vfpmd_proc proc;
static struct pf pfs[NPF];
static atomic_ulong samples, samples_with_vfs, host_writes, vf_sessions, vf_reqs, vf_requests;

/* --- control plane --- */

struct dev_sample {
	char name[64], pf[64];
	char power_state[8], runtime_status[12];
	int usage, num_vfs;
	long long underflows, violations, suspends;
};

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static long long jint(struct json_object *o, const char *k, long long dflt)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : dflt;
}

/* Every device in one status reply; returns the count or -errno. */
static int sample(struct dev_sample *s, int max)
{
	struct json_object *o = pmt_ctl_json(&proc, "{\"cmd\":\"status\"}"), *arr, *c;
	int rc = pmt_reply_errno(o);
	if (!rc && !json_object_object_get_ex(o, "devices", &arr))
		rc = -EPROTO;
	int n = 0;
	for (size_t i = 0; !rc && i < json_object_array_length(arr) && n < max; i++) {
		struct json_object *x = json_object_array_get_idx(arr, i);
		struct dev_sample *d = &s[n++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", jstr(x, "name"));
		snprintf(d->pf, sizeof(d->pf), "%s", jstr(x, "pf"));
		snprintf(d->power_state, sizeof(d->power_state), "%s", jstr(x, "power_state"));
		snprintf(d->runtime_status, sizeof(d->runtime_status), "%s",
			 jstr(x, "runtime_status"));
		d->usage = (int)jint(x, "usage_count", -100);
		d->num_vfs = (int)jint(x, "sriov_numvfs", -1);
		d->violations = jint(x, "model_violations", 0);
		d->underflows = json_object_object_get_ex(x, "counters", &c)
					? jint(c, "usage_underflows", -1)
					: -1;
		d->suspends = json_object_object_get_ex(x, "counters", &c) ? jint(c, "suspends", -1)
									   : -1;
	}
	json_object_put(o);
	return rc ? rc : n;
}

/* The invariants of one status sample. */
static void check_sample(const struct dev_sample *s, int n, const char *when)
{
	for (int i = 0; i < n; i++) {
		if (s[i].underflows != 0 || s[i].usage < 0 || s[i].violations != 0)
			stress_fail("%s: %s: usage %d, usage_underflows %lld, model_violations %lld",
				    when, s[i].name, s[i].usage, s[i].underflows, s[i].violations);
	}
	for (unsigned p = 0; p < NPF; p++) {
		const struct dev_sample *pf = NULL;
		int listed = 0;
		for (int i = 0; i < n; i++) {
			if (!strcmp(s[i].name, pfs[p].name))
				pf = &s[i];
			listed += !strcmp(s[i].pf, pfs[p].name);
		}
		if (!pf) {
			stress_fail("%s: %s missing from status", when, pfs[p].name);
			continue;
		}
		if (pf->num_vfs != listed)
			stress_fail("%s: %s: num_vfs %d but %d VFs listed", when, pf->name, pf->num_vfs,
				    listed);
		if (pf->num_vfs > 0 || listed > 0) {
			atomic_fetch_add(&samples_with_vfs, 1);
			/* B33/B34: never below D0, held active, with its reference */
			if (strcmp(pf->power_state, "D0") || strcmp(pf->runtime_status, "active") ||
			    pf->usage < 1)
				stress_fail("%s: %s has %d VFs but is %s, %s, usage %d", when, pf->name,
					    listed > pf->num_vfs ? listed : pf->num_vfs, pf->power_state,
					    pf->runtime_status, pf->usage);
		}
	}
}

/* --- threads --- */

/* The PF's user: PMCSR D3hot then D0, reconnecting now and then. */
static void *guest_main(void *arg)
{
	struct pf *p = arg;
	uint32_t seed = 0x9e3779b9u * (p->idx + 1);
	struct vfpm_client *c = NULL;
	unsigned csr = p->pm + PCI_PM_CTRL;
	unsigned until_reconnect = 0;
	while (running()) {
		if (!c) {
			int rc = vfpm_client_connect(proc.sock[p->idx], NULL, &c);
			if (rc) {
				stress_fail("%s: guest connect: %s", p->name, strerror(-rc));
				break;
			}
			until_reconnect = 50 + rnd(&seed) % 400;
		}
		if (rnd(&seed) % 32 == 0) {
			/* DEVICE_RESET: keeps VF Enable and the VFs (the host's),
			 * racing the cycler's enable and disable */
			int rc = vfpm_client_reset(c);
			if (rc) {
				stress_fail("%s: DEVICE_RESET: %s", p->name, strerror(-rc));
				break;
			}
			p->resets++;
		}
		if (rnd(&seed) % 16 == 0) {
			/* the PF's user tries VF Enable itself: dropped */
			uint16_t num = 1, vfe = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE;
			int rc = pmt_cfg_write(c, p->cap + PCI_SRIOV_NUM_VF, &num, 2);
			if (!rc)
				rc = pmt_cfg_write(c, p->cap + PCI_SRIOV_CTRL, &vfe, 2);
			if (rc) {
				stress_fail("%s: guest VF Enable write: %s", p->name, strerror(-rc));
				break;
			}
		}
		uint16_t v = 3, back = 0xffff;
		int rc = pmt_cfg_write(c, csr, &v, 2);
		if (!rc)
			rc = pmt_cfg_read(c, csr, &back, 2);
		if (rc) {
			stress_fail("%s: guest PMCSR D3hot: %s", p->name, strerror(-rc));
			break;
		}
		p->d3_writes++;
		/* the host writes PMCSR too, so either value may be current; a
		 * D3hot read back was honoured, D0 refused (VFs, B34) or undone */
		if ((back & PCI_PM_CTRL_STATE_MASK) == 3)
			p->d3_honoured++;
		else if ((back & PCI_PM_CTRL_STATE_MASK) == 0)
			p->d3_refused++;
		else
			stress_fail("%s: PMCSR reads 0x%04x (only D0 and D3hot are written)", p->name,
				    back);
		if (rnd(&seed) % 2)
			sleep_us(rnd(&seed) % 500);
		v = 0;
		rc = pmt_cfg_write(c, csr, &v, 2);
		if (!rc)
			rc = pmt_cfg_read(c, csr, &back, 2);
		if (rc) {
			stress_fail("%s: guest PMCSR D0: %s", p->name, strerror(-rc));
			break;
		}
		if ((back & PCI_PM_CTRL_STATE_MASK) != 0 && (back & PCI_PM_CTRL_STATE_MASK) != 3)
			stress_fail("%s: PMCSR reads 0x%04x (only D0 and D3hot are written)", p->name,
				    back);
		if (--until_reconnect == 0) {
			/* the disconnect resets the PF; the VFs stay */
			vfpm_client_close(c);
			c = NULL;
			p->reconnects++;
		}
		if (rnd(&seed) % 4 == 0)
			sleep_us(rnd(&seed) % 300);
	}
	if (c)
		vfpm_client_close(c);
	return NULL;
}

/* VF Enable / disable by the host: sriov_numvfs, or raw config writes. */
static void *cycler_main(void *arg)
{
	struct pf *p = arg;
	uint32_t seed = 0x85ebca6bu * (p->idx + 3);
	for (unsigned round = 0; running(); round++) {
		uint32_t n = 1 + rnd(&seed) % p->total_vfs, zero = 0, back;
		/* VF MSE too: the VFs decode memory by it */
		uint32_t vfe = PCI_SRIOV_CTRL_VFE | PCI_SRIOV_CTRL_MSE;
		bool numvfs = round % 2 == 0;
		char count[16];
		snprintf(count, sizeof(count), "%u", n);
		int rc;
		if (numvfs) {
			rc = pmt_set(&proc, p->name, "sriov_numvfs", count);
		} else {
			rc = pmt_ctl_config_rw(&proc, p->name, p->cap + PCI_SRIOV_NUM_VF, 2, &n, true);
			if (!rc)
				rc = pmt_ctl_config_rw(&proc, p->name, p->cap + PCI_SRIOV_CTRL, 2, &vfe,
						       true);
		}
		if (rc) {
			stress_fail("%s: VF Enable: %s", p->name, strerror(-rc));
			break;
		}
		p->enables++;
		sleep_us(rnd(&seed) % 3000);
		/* raw: VF Enable off, VF MSE kept until the VFs are gone (the
		 * VF client may read BAR0 until its REQ), then off too */
		uint32_t mse = PCI_SRIOV_CTRL_MSE;
		rc = numvfs ? pmt_set(&proc, p->name, "sriov_numvfs", "0")
			    : pmt_ctl_config_rw(&proc, p->name, p->cap + PCI_SRIOV_CTRL, 2, &mse, true);
		if (!rc && !numvfs)
			rc = pmt_ctl_config_rw(&proc, p->name, p->cap + PCI_SRIOV_CTRL, 2, &zero, true);
		if (rc) {
			stress_fail("%s: VF Enable clear: %s", p->name, strerror(-rc));
			break;
		}
		p->disables++;
		/* nobody else enables this PF's VFs: none may be left */
		rc = pmt_ctl_config_rw(&proc, p->name, p->cap + PCI_SRIOV_CTRL, 2, &back, false);
		struct dev_sample s[MAX_DEVS];
		int ns = rc ? rc : sample(s, MAX_DEVS);
		if (ns < 0) {
			stress_fail("%s: status after disable: %s", p->name, strerror(-ns));
			break;
		}
		int left = 0, num = -1;
		for (int i = 0; i < ns; i++) {
			left += !strcmp(s[i].pf, p->name);
			if (!strcmp(s[i].name, p->name))
				num = s[i].num_vfs;
		}
		/* the SR-IOV capability is the host's: no restore of the
		 * NoSoftRst- PF's config brings VF Enable back */
		if (left || num != 0 || (back & PCI_SRIOV_CTRL_VFE))
			stress_fail("%s: after clearing VF Enable: %d VFs listed, num_vfs %d, "
				    "VF Enable reads %u",
				    p->name, left, num, back & PCI_SRIOV_CTRL_VFE);
		sleep_us(rnd(&seed) % 1000);
	}
	return NULL;
}

/* The host's PMCSR writes on both PFs. */
static void *host_main(void *arg)
{
	(void)arg;
	uint32_t seed = 0xc2b2ae35u;
	while (running()) {
		struct pf *p = &pfs[rnd(&seed) % NPF];
		uint32_t v = rnd(&seed) % 2 ? 3 : 0;
		int rc = pmt_ctl_config_rw(&proc, p->name, p->pm + PCI_PM_CTRL, 2, &v, true);
		if (rc) {
			stress_fail("%s: host PMCSR write: %s", p->name, strerror(-rc));
			break;
		}
		atomic_fetch_add(&host_writes, 1);
		sleep_us(rnd(&seed) % 700);
	}
	return NULL;
}

static bool conn_error(int rc)
{
	return rc == -EPIPE || rc == -ECONNRESET || rc == -ENOTCONN || rc == -EPROTO ||
	       rc == -ECONNREFUSED || rc == -ENOENT;
}

/* A client on pf0-vf0 whenever it exists; it lets go on REQ. */
static void *vfuser_main(void *arg)
{
	(void)arg;
	char path[400];
	snprintf(path, sizeof(path), "%s/%s-vf0.sock", proc.dir, pfs[0].name);
	int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (efd < 0) {
		stress_fail("eventfd: %s", strerror(errno));
		return NULL;
	}
	while (running()) {
		struct vfpm_client *c = NULL;
		int rc = vfpm_client_connect(path, NULL, &c);
		if (rc) {
			if (!conn_error(rc) && rc != -EBUSY)
				stress_fail("pf0-vf0: connect: %s", strerror(-rc));
			sleep_us(500);
			continue;
		}
		atomic_fetch_add(&vf_sessions, 1);
		(void)pmt_eventfd_count(efd);
		rc = vfpm_client_set_irqs(c, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
					  VFIO_PCI_REQ_IRQ_INDEX, 0, 1, &efd, 1, NULL);
		uint16_t cmd = PCI_COMMAND_MEMORY;
		if (!rc)
			rc = pmt_cfg_write(c, PCI_COMMAND, &cmd, 2);
		while (!rc && running()) {
			struct pollfd pf = { .fd = efd, .events = POLLIN };
			if (poll(&pf, 1, 0) == 1) {
				atomic_fetch_add(&vf_reqs, 1);
				break;   /* asked to let go */
			}
			uint32_t v = 0;
			rc = vfpm_client_region_read(c, BAR0, REG_ID, &v, 4);
			if (!rc && v != DEMO_ID)
				stress_fail("pf0-vf0: BAR0 ID 0x%08x", v);
			if (!rc)
				rc = pmt_cfg_read(c, PCI_VENDOR_ID, &v, 4);
			if (!rc)
				atomic_fetch_add(&vf_requests, 1);
			sleep_us(200);
		}
		/* the server closes a connection it removes; anything else fails */
		if (rc && !conn_error(rc))
			stress_fail("pf0-vf0: request: %s", strerror(-rc));
		vfpm_client_close(c);
	}
	close(efd);
	return NULL;
}

static void *observer_main(void *arg)
{
	(void)arg;
	while (running()) {
		struct dev_sample s[MAX_DEVS];
		int n = sample(s, MAX_DEVS);
		if (n < 0) {
			stress_fail("status: %s", strerror(-n));
			break;
		}
		check_sample(s, n, "sample");
		atomic_fetch_add(&samples, 1);
	}
	return NULL;
}

/* --- set-up and verdict --- */

static unsigned find_caps(struct pf *p)
{
	/* SR-IOV: extended list from 0x100, host side */
	unsigned off = PCI_CFG_SPACE_SIZE;
	for (unsigned n = 0; off && n < 64 && !p->cap; n++) {
		uint32_t h = 0;
		if (pmt_ctl_config_rw(&proc, p->name, off, 4, &h, false) || !h)
			break;
		if (PCI_EXT_CAP_ID(h) == PCI_EXT_CAP_ID_SRIOV)
			p->cap = off;
		off = PCI_EXT_CAP_NEXT(h);
	}
	p->pm = pmt_ctl_find_cap(&proc, p->name, PCI_CAP_ID_PM);
	return p->cap && p->pm;
}

static void sriov_stress(void **state)
{
	(void)state;
	int seconds = 6;
	const char *env = getenv("VFPM_STRESS_SECONDS");
	if (env && atoi(env) > 0)
		seconds = atoi(env);

	static const char *const specs[] = {
		"demo,name=pf0,pm_delays=none,total_vfs=8",
		"demo,name=pf1,pm_delays=none,nosoftrst=off,total_vfs=4",
		NULL,
	};
	assert_int_equal(vfpmd_start(&proc, specs, NULL), 0);
	for (unsigned i = 0; i < NPF; i++) {
		struct pf *p = &pfs[i];
		memset(p, 0, sizeof(*p));
		p->idx = i;
		snprintf(p->name, sizeof(p->name), "pf%u", i);
		p->total_vfs = i == 0 ? 8 : 4;
		if (!find_caps(p)) {
			vfpmd_stop(&proc);
			fail_msg("%s: SR-IOV or PM capability not found", p->name);
		}
	}

	stress_begin("sriov-stress", seconds);
	pthread_t th[2 * NPF + 3];
	unsigned nth = 0;
	for (unsigned i = 0; i < NPF; i++) {
		assert_int_equal(pthread_create(&th[nth++], NULL, guest_main, &pfs[i]), 0);
		assert_int_equal(pthread_create(&th[nth++], NULL, cycler_main, &pfs[i]), 0);
	}
	assert_int_equal(pthread_create(&th[nth++], NULL, host_main, NULL), 0);
	assert_int_equal(pthread_create(&th[nth++], NULL, vfuser_main, NULL), 0);
	assert_int_equal(pthread_create(&th[nth++], NULL, observer_main, NULL), 0);
	/* A deadlocked vfpmd leaves requests waiting forever: past a
	 * generous grace (a VF removal may wait 10 s for a client), kill it
	 * so that the threads see EOF and the log is still printed. */
	bool hung = stress_join(th, nth, seconds + 40 + seconds * 2, proc.pid);
	if (hung) {
		vfpmd_terminate(&proc);
		log_has_sanitizer_report(proc.log);
		print_log_tail(proc.log);
		vfpmd_cleanup(&proc);
		fail_msg("sriov-stress: %s", stress_first_failure());
	}

	/* Quiet now: VF Enable and the VFs agree (a reset racing an enable
	 * must not leave VFs behind a cleared VF Enable). */
	for (unsigned i = 0; i < NPF; i++) {
		uint32_t ctrl = 0, num = 0;
		struct dev_sample q[MAX_DEVS];
		int rc = pmt_ctl_config_rw(&proc, pfs[i].name, pfs[i].cap + PCI_SRIOV_CTRL, 2, &ctrl, false);
		if (!rc)
			rc = pmt_ctl_config_rw(&proc, pfs[i].name, pfs[i].cap + PCI_SRIOV_NUM_VF, 2, &num, false);
		int nq = rc ? rc : sample(q, MAX_DEVS);
		if (nq < 0) {
			stress_fail("%s: final reads: %s", pfs[i].name, strerror(-nq));
			continue;
		}
		int listed = 0;
		for (int k = 0; k < nq; k++)
			listed += !strcmp(q[k].pf, pfs[i].name);
		int want = (ctrl & PCI_SRIOV_CTRL_VFE) ? (int)num : 0;
		if (listed != want)
			stress_fail("%s: at rest VF Enable %u, NumVFs %u, but %d VFs exist", pfs[i].name,
				    ctrl & PCI_SRIOV_CTRL_VFE, num, listed);
	}

	/* VFs off, the guests are gone; each PF returns to usage 0 and
	 * suspends (the B33 reference was given back every time). */
	for (unsigned i = 0; i < NPF; i++) {
		uint32_t zero = 0;
		int rc = pmt_ctl_config_rw(&proc, pfs[i].name, pfs[i].cap + PCI_SRIOV_CTRL, 2, &zero, true);
		if (rc)
			stress_fail("%s: final VF Enable clear: %s", pfs[i].name, strerror(-rc));
	}
	struct dev_sample s[MAX_DEVS];
	int n = 0;
	bool settled = false;
	for (int t = 0; t < 1000 && !settled; t++) {
		n = sample(s, MAX_DEVS);
		settled = n == NPF;
		for (int i = 0; settled && i < n; i++)
			settled = s[i].usage == 0 && !strcmp(s[i].runtime_status, "suspended");
		if (!settled)
			sleep_us(5000);
	}
	if (n < 0) {
		stress_fail("final status: %s", strerror(-n));
	} else {
		check_sample(s, n, "final");
		if (!settled) {
			for (int i = 0; i < n; i++)
				fprintf(stderr, "sriov-stress: %s after the run: usage=%d %s %s\n", s[i].name,
					s[i].usage, s[i].runtime_status, s[i].power_state);
			stress_fail("the PFs did not return to usage 0 / suspended");
		}
	}

	for (unsigned i = 0; i < NPF; i++) {
		struct pf *p = &pfs[i];
		fprintf(stderr,
			"sriov-stress: %s: enables=%llu disables=%llu guest_d3hot=%llu "
			"(refused=%llu honoured=%llu) reconnects=%llu resets=%llu\n",
			p->name, (unsigned long long)p->enables, (unsigned long long)p->disables,
			(unsigned long long)p->d3_writes, (unsigned long long)p->d3_refused,
			(unsigned long long)p->d3_honoured, (unsigned long long)p->reconnects,
			(unsigned long long)p->resets);
		if (!p->enables || !p->d3_writes)
			stress_fail("%s: the stress did not stress (no enable or no PMCSR write)",
				    p->name);
	}
	fprintf(stderr,
		"sriov-stress: %d s, status samples=%lu (with VFs %lu), host PMCSR writes=%lu, "
		"VF sessions=%lu (REQ seen %lu, requests %lu)\n",
		seconds, atomic_load(&samples), atomic_load(&samples_with_vfs),
		atomic_load(&host_writes), atomic_load(&vf_sessions), atomic_load(&vf_reqs),
		atomic_load(&vf_requests));
	if (!atomic_load(&samples_with_vfs))
		stress_fail("no status sample ever saw a VF");

	int exit_status = vfpmd_terminate(&proc);
	bool report = log_has_sanitizer_report(proc.log);
	if (stress_failures() || exit_status != 0)
		print_log_tail(proc.log);
	vfpmd_cleanup(&proc);
	if (stress_failures())
		fprintf(stderr, "sriov-stress: %d failure(s), first: %s\n", stress_failures(),
			stress_first_failure());
	assert_false(report);
	assert_int_equal(stress_failures(), 0);
	assert_int_equal(exit_status, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sriov_stress),
	};
	return cmocka_run_group_tests_name("sriov-stress", tests, NULL, NULL);
}
