#include "pmtest.h"

#include <errno.h>
#include <json-c/json.h>
#include <linux/pci_regs.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

/* The harness's watchdog, watching one server at a time. */
void pmt_watchdog_arm(const char *name, int seconds)
{
	harness_unwatch_all();
	harness_watchdog_arm(name, (unsigned)seconds);
}

void pmt_watch(pid_t pid)
{
	harness_unwatch_all();
	harness_watch(pid);
}

void pmt_watchdog_disarm(void)
{
	harness_watchdog_disarm();
	harness_unwatch_all();
}

void pmt_sleep_ms(int ms)
{
	struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&t, &t) && errno == EINTR)
		;
}

void pmt_quiet_ms(int ms)
{
	pmt_sleep_ms(ms);
}

int pmt_start(struct vfpmd_proc *p, const char *keys)
{
	char spec[512];
	snprintf(spec, sizeof(spec), "demo,name=dev,pm_delays=none%s%s", keys && *keys ? "," : "",
		 keys ? keys : "");
	const char *specs[] = { spec, NULL };
	return vfpmd_start(p, specs, NULL);
}

#define CTL_REPLY_MAX (1u << 20)   /* the status of 256+ devices is large */

struct json_object *pmt_ctl_json(struct vfpmd_proc *p, const char *req)
{
	char *buf = malloc(CTL_REPLY_MAX);
	struct json_object *o = NULL;
	if (buf && ctl_request(p->ctl, req, buf, CTL_REPLY_MAX) == 0)
		o = json_tokener_parse(buf);
	free(buf);
	return o;
}

int pmt_reply_errno(struct json_object *o)
{
	struct json_object *v;
	if (!o)
		return -EPROTO;
	if (json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v))
		return 0;
	if (json_object_object_get_ex(o, "errno", &v))
		return -json_object_get_int(v);
	return -EPROTO;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_string(v) : "";
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : -1;
}

static bool jbool(struct json_object *o, const char *k)
{
	struct json_object *v;
	return json_object_object_get_ex(o, k, &v) && json_object_get_boolean(v);
}

int pmt_status(struct vfpmd_proc *p, const char *name, struct pm_status *st)
{
	struct json_object *o = pmt_ctl_json(p, "{\"cmd\":\"status\"}");
	int rc = pmt_reply_errno(o);
	struct json_object *devs, *d = NULL;
	if (!rc && json_object_object_get_ex(o, "devices", &devs)) {
		for (size_t i = 0; i < json_object_array_length(devs); i++) {
			struct json_object *x = json_object_array_get_idx(devs, i);
			if (!name || !strcmp(jstr(x, "name"), name)) {
				d = x;
				break;
			}
		}
	}
	if (!rc && !d)
		rc = -ENODEV;
	if (!rc) {
		memset(st, 0, sizeof(*st));
		snprintf(st->power_state, sizeof(st->power_state), "%s", jstr(d, "power_state"));
		snprintf(st->runtime_status, sizeof(st->runtime_status), "%s", jstr(d, "runtime_status"));
		st->usage_count = (int)jint(d, "usage_count");
		struct json_object *lp, *set, *cnt, *res;
		if (json_object_object_get_ex(d, "low_power", &lp)) {
			st->engaged = jbool(lp, "engaged");
			st->wakeup_armed = jbool(lp, "wakeup_armed");
		}
		st->client_connected = jbool(d, "client_connected");
		st->mmap_revoked = jbool(d, "mmap_revoked");
		if (json_object_object_get_ex(d, "settings", &set))
			snprintf(st->power_control, sizeof(st->power_control), "%s",
				 jstr(set, "power_control"));
		if (json_object_object_get_ex(d, "counters", &cnt)) {
			st->suspends = (uint64_t)jint(cnt, "suspends");
			st->resumes = (uint64_t)jint(cnt, "resumes");
			st->wakeups_signalled = (uint64_t)jint(cnt, "wakeups_signalled");
			st->underflows = (uint64_t)jint(cnt, "usage_underflows");
			static const char *const n[] = { "D0", "D1", "D2", "D3hot", "D3cold" };
			if (json_object_object_get_ex(cnt, "residency_ms", &res))
				for (int i = 0; i < 5; i++)
					st->residency_ms[i] = (uint64_t)jint(res, n[i]);
		}
	}
	json_object_put(o);
	return rc;
}

int pmt_wait_status(struct vfpmd_proc *p, const char *name, const char *want, int timeout_ms)
{
	for (int t = 0; t <= timeout_ms; t += 5) {
		struct pm_status st;
		if (!pmt_status(p, name, &st) && !strcmp(st.runtime_status, want))
			return 0;
		pmt_sleep_ms(5);
	}
	return -ETIMEDOUT;
}

int pmt_set(struct vfpmd_proc *p, const char *name, const char *key, const char *value)
{
	char req[512];
	snprintf(req, sizeof(req), "{\"cmd\":\"set\",\"device\":\"%s\",\"key\":\"%s\",\"value\":\"%s\"}",
		 name ? name : "dev", key, value);
	struct json_object *o = pmt_ctl_json(p, req);
	int rc = pmt_reply_errno(o);
	json_object_put(o);
	return rc;
}

int pmt_ctl_config_rw(struct vfpmd_proc *p, const char *name, unsigned off, unsigned len,
		      uint32_t *val, bool wr)
{
	char req[512];
	if (wr)
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-write\",\"device\":\"%s\",\"offset\":%u,\"len\":%u,"
			 "\"value\":%u}",
			 name ? name : "dev", off, len, *val);
	else
		snprintf(req, sizeof(req),
			 "{\"cmd\":\"config-read\",\"device\":\"%s\",\"offset\":%u,\"len\":%u}",
			 name ? name : "dev", off, len);
	struct json_object *o = pmt_ctl_json(p, req);
	int rc = pmt_reply_errno(o);
	if (!rc && !wr)
		*val = (uint32_t)jint(o, "value");
	json_object_put(o);
	return rc;
}

struct ctl_cfg {
	struct vfpmd_proc *p;
	const char *name;
};

static int ctl_cfg_read(void *ctx, unsigned off, unsigned len, uint32_t *val)
{
	struct ctl_cfg *c = ctx;
	return pmt_ctl_config_rw(c->p, c->name, off, len, val, false);
}

unsigned pmt_ctl_find_cap(struct vfpmd_proc *p, const char *name, uint8_t id)
{
	struct ctl_cfg c = { p, name };
	return cfg_find_cap(ctl_cfg_read, &c, id);
}

int pmt_ctl_config_read(struct vfpmd_proc *p, const char *name, unsigned off, unsigned len,
			uint32_t *val)
{
	return pmt_ctl_config_rw(p, name, off, len, val, false);
}

int pmt_lp_entry(struct vfpm_client *c)
{
	return vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
				   NULL, 0, -1, NULL, NULL);
}

int pmt_lp_entry_wakeup(struct vfpm_client *c, int efd)
{
	int32_t data[2] = { 0, 0 };   /* descriptor index 0, reserved */
	return vfpm_client_feature(c,
				   VFIO_DEVICE_FEATURE_SET |
					   VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
				   data, sizeof(data), efd, NULL, NULL);
}

int pmt_lp_exit(struct vfpm_client *c)
{
	return vfpm_client_feature(c, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
				   NULL, 0, -1, NULL, NULL);
}

int pmt_cfg_read(struct vfpm_client *c, unsigned off, void *buf, unsigned len)
{
	return vfpm_client_region_read(c, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

int pmt_cfg_write(struct vfpm_client *c, unsigned off, const void *buf, unsigned len)
{
	return vfpm_client_region_write(c, VFIO_PCI_CONFIG_REGION_INDEX, off, buf, len);
}

static int client_cfg_read(void *ctx, unsigned off, unsigned len, uint32_t *val)
{
	*val = 0;
	return pmt_cfg_read(ctx, off, val, len);   /* little-endian host */
}

unsigned pmt_pm_cap(struct vfpm_client *c)
{
	return cfg_find_cap(client_cfg_read, c, PCI_CAP_ID_PM);
}

uint64_t pmt_eventfd_count(int efd)
{
	uint64_t v = 0;
	/* eventfds in these tests are created with EFD_NONBLOCK */
	if (read(efd, &v, sizeof(v)) != sizeof(v))
		return 0;
	return v;
}
