/* The control plane's view of a device's power management (V2): the JSON
 * object `vfpmctl status` shows, built from the core's pm_get_status()
 * snapshot (the runtime-PM counters through rpm's own API). */
#include <json-c/json.h>

#include "core/core.h"
#include "ctl.h"

static const char *const state_names[] = { "D0", "D1", "D2", "D3hot", "D3cold" };
static const char *const promo_names[] = { "off", "nosoftrst", "always" };

static void add_bool(struct json_object *o, const char *k, bool v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_int64((int64_t)v));
}

struct json_object *ctl_pm_status_json(struct vfpm_device *dev)
{
	struct pm_status st;
	pm_get_status(dev, &st);
	struct json_object *o = json_object_new_object();
	if (!o)
		return NULL;
	json_object_object_add(o, "power_state", json_object_new_string(pm_state_name(st.power_state)));
	json_object_object_add(o, "runtime_status",
			       json_object_new_string(rpm_status_name(st.runtime_status)));
	json_object_object_add(o, "usage_count", json_object_new_int(st.usage_count));
	struct json_object *lp = json_object_new_object();
	add_bool(lp, "engaged", st.engaged);
	add_bool(lp, "wakeup_armed", st.wakeup_armed);
	json_object_object_add(o, "low_power", lp);
	add_bool(o, "client_connected", st.client_connected);
	add_bool(o, "mmap_revoked", st.mmap_revoked);

	struct json_object *s = json_object_new_object();
	add_bool(s, "platform_d3cold", st.set.platform_d3cold);
	add_bool(s, "d3cold_allowed", st.set.d3cold_allowed);
	add_bool(s, "idle_d3", st.set.idle_d3);
	json_object_object_add(s, "power_control",
			       json_object_new_string(st.rpm.power_on ? "on" : "auto"));
	json_object_object_add(s, "autosuspend_delay_ms",
			       json_object_new_int(st.set.autosuspend_delay_ms));
	json_object_object_add(s, "d3hot_promotion",
			       json_object_new_string(promo_names[st.set.d3hot_promotion]));
	json_object_object_add(s, "pm_delays", json_object_new_string(st.set.pm_delays ? "pci" : "none"));
	static const char *const power_keys[] = { "power_d0_mw", "power_d1_mw", "power_d2_mw",
						  "power_d3hot_mw", "power_d3cold_mw" };
	for (int i = 0; i <= VFPM_D3COLD; i++)
		add_u64(s, power_keys[i], st.set.power_mw[i]);
	json_object_object_add(o, "settings", s);

	struct json_object *c = json_object_new_object();
	add_u64(c, "suspends", st.rpm.suspends);
	add_u64(c, "resumes", st.rpm.resumes);
	add_u64(c, "wakeups_signalled", st.wakeups_signalled);
	add_u64(c, "usage_underflows", st.rpm.underflows);
	add_u64(c, "suspend_errors", st.rpm.suspend_errors);
	struct json_object *r = json_object_new_object();
	for (int i = 0; i <= VFPM_D3COLD; i++)
		add_u64(r, state_names[i], st.residency_ns[i] / 1000000);
	json_object_object_add(c, "residency_ms", r);
	/* the energy model: used, and saved against staying in D0 */
	add_u64(c, "energy_used_mj", st.energy_used_uj / 1000);
	add_u64(c, "energy_saved_mj", st.energy_saved_uj / 1000);
	json_object_object_add(o, "counters", c);
	return o;
}
