/* The usage-count ledger under every combination of settings, promotion,
 * low-power features, resets and sessions (kernel §2.2, V3, V5): a random
 * walk over those operations against a real vfpmd, with a model of the
 * count checked after every step. VFPM_LEDGER_SEED and VFPM_LEDGER_STEPS
 * replay or lengthen a walk. */
#include <errno.h>
#include <linux/pci_regs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pmtest.h"
#include "wire/proto.h"

enum op {
	OP_CONNECT,
	OP_DISCONNECT,
	OP_ENTRY,
	OP_EXIT,
	OP_D3HOT,
	OP_D0,
	OP_IDLE_D3_ON,
	OP_IDLE_D3_OFF,
	OP_POWER_ON,
	OP_POWER_AUTO,
	OP_RESET,
	OP_REQUEST,
	OP_PROMOTION_TOGGLE,
	OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"connect", "disconnect", "entry", "exit", "pmcsr-d3hot", "pmcsr-d0", "idle_d3=on",
	"idle_d3=off", "power_control=on", "power_control=auto", "reset", "request",
	"promotion-toggle",
};

/* What the ledger must hold, from the operations alone. */
struct model {
	bool connected, engaged, promoted, idle_d3, power_on, promotion;
	bool plain_d3hot;   /* a D3hot written without promotion: the real state */
};

static int expected_usage(const struct model *m)
{
	/* the probe reference (idle_d3=off) or the open one, never both */
	int n = m->connected || !m->idle_d3 ? 1 : 0;
	if (m->connected && (m->engaged || m->promoted))
		n--;   /* one reference lent to low power, however many ask */
	return n + (m->power_on ? 1 : 0);
}

static uint64_t g_rng;

static unsigned next_rand(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (unsigned)(g_rng >> 11);
}

static struct vfpmd_proc g_p;
static struct vfpm_client *g_c;
static unsigned g_pm_cap;
static char g_trail[4096];

static void trail(const char *what)
{
	size_t n = strlen(g_trail);
	if (n + strlen(what) + 2 < sizeof(g_trail))
		snprintf(g_trail + n, sizeof(g_trail) - n, "%s%s", n ? " " : "", what);
}

static void pmcsr(uint16_t state)
{
	uint16_t v = state;
	assert_int_equal(pmt_cfg_write(g_c, g_pm_cap + PCI_PM_CTRL, &v, 2), 0);
}

/* Applies op to the server and to the model; false when op does not apply
 * in this state (no client for a client operation, say). */
static bool apply(enum op op, struct model *m)
{
	switch (op) {
	case OP_CONNECT:
		if (m->connected)
			return false;
		assert_int_equal(vfpm_client_connect(g_p.sock[0], NULL, &g_c), 0);
		g_pm_cap = pmt_pm_cap(g_c);
		assert_true(g_pm_cap);
		m->connected = true;
		return true;
	case OP_DISCONNECT:
		if (!m->connected)
			return false;
		vfpm_client_close(g_c);
		g_c = NULL;
		/* the server's close is asynchronous: wait until it is seen */
		for (int t = 0; t < 5000; t += 5) {
			struct pm_status st;
			assert_int_equal(pmt_status(&g_p, "dev", &st), 0);
			if (!st.client_connected)
				break;
			pmt_sleep_ms(5);
		}
		m->connected = m->engaged = m->promoted = m->plain_d3hot = false;
		return true;
	case OP_ENTRY:
		if (!m->connected)
			return false;
		assert_int_equal(pmt_lp_entry(g_c), m->engaged ? -EINVAL : 0);
		m->engaged = true;
		return true;
	case OP_EXIT:
		if (!m->connected)
			return false;
		assert_int_equal(pmt_lp_exit(g_c), 0);
		m->engaged = false;
		return true;
	case OP_D3HOT:
		if (!m->connected)
			return false;
		pmcsr(3);
		/* with promotion a D3hot from D0 is a dropped reference;
		 * without it, a synchronous D3hot that moves no reference */
		if (m->promotion && !m->promoted && !m->plain_d3hot)
			m->promoted = true;
		else if (!m->promoted)
			m->plain_d3hot = true;
		return true;
	case OP_D0:
		if (!m->connected)
			return false;
		pmcsr(0);
		m->promoted = m->plain_d3hot = false;
		return true;
	case OP_IDLE_D3_ON:
	case OP_IDLE_D3_OFF:
		m->idle_d3 = op == OP_IDLE_D3_ON;
		assert_int_equal(pmt_set(&g_p, "dev", "idle_d3", m->idle_d3 ? "on" : "off"), 0);
		return true;
	case OP_POWER_ON:
	case OP_POWER_AUTO:
		m->power_on = op == OP_POWER_ON;
		assert_int_equal(pmt_set(&g_p, "dev", "power_control", m->power_on ? "on" : "auto"),
				 0);
		return true;
	case OP_RESET:
		if (!m->connected)
			return false;
		assert_int_equal(vfpm_client_reset(g_c), 0);
		m->promoted = m->plain_d3hot = false;   /* the reset goes to D0 first (B31) */
		return true;
	case OP_REQUEST: {
		if (!m->connected)
			return false;
		uint16_t v = 0;
		assert_int_equal(pmt_cfg_read(g_c, PCI_VENDOR_ID, &v, 2), 0);
		assert_int_equal(v, 0x1b36);
		return true;
	}
	case OP_PROMOTION_TOGGLE:
		/* a setting change applies to the next D3hot write */
		m->promotion = !m->promotion;
		assert_int_equal(pmt_set(&g_p, "dev", "d3hot_promotion", m->promotion ? "always" : "off"),
				 0);
		return true;
	default:
		return false;
	}
}

static void check(struct model *m, unsigned step)
{
	int want = expected_usage(m);
	struct pm_status st;
	if (want == 0) {
		m->plain_d3hot = false;   /* a runtime suspend and resume pass D0 (B8, B9) */
		/* nothing holds it: it suspends (a plain D3hot device goes
		 * through D0 first, B8) */
		int rc = pmt_wait_status(&g_p, "dev", "suspended", 5000);
		if (rc)
			fail_msg("step %u: not suspended with nothing holding it; walk: %s", step,
				 g_trail);
	}
	assert_int_equal(pmt_status(&g_p, "dev", &st), 0);
	if (st.usage_count != want || st.underflows != 0)
		fail_msg("step %u: usage_count %d (want %d), underflows %llu; walk: %s", step,
			 st.usage_count, want, (unsigned long long)st.underflows, g_trail);
	if (want > 0 && strcmp(st.runtime_status, "active") != 0)
		fail_msg("step %u: %s with %d references; walk: %s", step, st.runtime_status, want,
			 g_trail);
	if (st.engaged != (m->connected && m->engaged))
		fail_msg("step %u: engaged %d; walk: %s", step, st.engaged, g_trail);
	/* the power state agrees with the ledger: suspended is D3hot (no
	 * platform D3cold here); an active device is in D0 unless its client
	 * wrote a plain (not promoted) D3hot, which holds it there awake */
	const char *state = want == 0 || m->plain_d3hot ? "D3hot" : "D0";
	if (strcmp(st.power_state, state) != 0)
		fail_msg("step %u: power state %s (want %s, %s); walk: %s", step, st.power_state,
			 state, st.runtime_status, g_trail);
}

static void ledger_stays_balanced_under_random_walks(void **state)
{
	(void)state;
	const char *env = getenv("VFPM_LEDGER_SEED");
	uint64_t seed = env ? strtoull(env, NULL, 0) : 0x9e3779b97f4a7c15ull;
	g_rng = seed ? seed : 1;
	env = getenv("VFPM_LEDGER_STEPS");
	unsigned steps = env && atoi(env) > 0 ? (unsigned)atoi(env) : 300;
	pmt_watchdog_arm("ledger", 120);
	assert_int_equal(pmt_start(&g_p, "nosoftrst=off"), 0);
	pmt_watch(g_p.pid);
	struct model m = { .idle_d3 = true };
	assert_int_equal(pmt_wait_status(&g_p, "dev", "suspended", 5000), 0);
	check(&m, 0);
	unsigned applied = 0;
	for (unsigned i = 1; i <= steps; i++) {
		enum op op = (enum op)(next_rand() % OP_COUNT);
		if (!apply(op, &m))
			continue;
		applied++;
		trail(op_names[op]);
		if (strlen(g_trail) > sizeof(g_trail) - 64)
			memmove(g_trail, g_trail + 1024, strlen(g_trail + 1024) + 1);
		check(&m, i);
	}
	printf("ledger: seed 0x%llx, %u steps, %u operations applied\n", (unsigned long long)seed,
	       steps, applied);
	/* back to nothing held: the device sleeps, the count is 0 */
	if (m.connected)
		apply(OP_DISCONNECT, &m);
	apply(OP_POWER_AUTO, &m);
	apply(OP_IDLE_D3_ON, &m);
	check(&m, steps + 1);
	assert_int_equal(vfpmd_stop(&g_p), 0);
	g_p.pid = 0;
}

/* The two cases the walk found first, spelt out. */
static void idle_d3_toggled_under_a_client_neither_suspends_it_nor_underflows(void **state)
{
	(void)state;
	pmt_watchdog_arm("ledger", 60);
	assert_int_equal(pmt_start(&g_p, NULL), 0);
	pmt_watch(g_p.pid);
	assert_int_equal(vfpm_client_connect(g_p.sock[0], NULL, &g_c), 0);
	struct model m = { .connected = true, .idle_d3 = true };
	apply(OP_IDLE_D3_OFF, &m);
	check(&m, 1);
	apply(OP_IDLE_D3_ON, &m);
	pmt_quiet_ms(50);
	check(&m, 2);   /* still 1: the open device did not suspend */
	apply(OP_ENTRY, &m);
	check(&m, 3);
	apply(OP_EXIT, &m);
	apply(OP_DISCONNECT, &m);
	check(&m, 4);
	assert_int_equal(vfpmd_stop(&g_p), 0);
	g_p.pid = 0;
}

static void promotion_then_low_power_entry_lends_one_reference(void **state)
{
	(void)state;
	pmt_watchdog_arm("ledger", 60);
	assert_int_equal(pmt_start(&g_p, "d3hot_promotion=always"), 0);
	pmt_watch(g_p.pid);
	struct model m = { .idle_d3 = true, .promotion = true };
	apply(OP_CONNECT, &m);
	apply(OP_D3HOT, &m);
	check(&m, 1);
	apply(OP_ENTRY, &m);
	check(&m, 2);
	apply(OP_D0, &m);
	check(&m, 3);
	apply(OP_EXIT, &m);
	check(&m, 4);
	apply(OP_DISCONNECT, &m);
	check(&m, 5);
	assert_int_equal(vfpmd_stop(&g_p), 0);
	g_p.pid = 0;
}

/* After a failed step too: no vfpmd outlives its test. */
static int teardown(void **state)
{
	(void)state;
	if (g_c)
		vfpm_client_close(g_c);
	g_c = NULL;
	if (g_p.pid > 0)
		vfpmd_stop(&g_p);
	memset(&g_p, 0, sizeof(g_p));
	g_trail[0] = '\0';
	pmt_watchdog_disarm();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(
			idle_d3_toggled_under_a_client_neither_suspends_it_nor_underflows, teardown),
		cmocka_unit_test_teardown(promotion_then_low_power_entry_lends_one_reference, teardown),
		cmocka_unit_test_teardown(ledger_stays_balanced_under_random_walks, teardown),
	};
	return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
