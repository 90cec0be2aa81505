/* vfpmctl timeline: one lane per device, coloured by D-state over time,
 * with markers for wakeups, resets and client connects and disconnects,
 * drawn with cairo from the control plane's event ring (`events`) and
 * status (the current state, the energy). docs/operating.md, "Timeline".
 *
 * The colours are fixed (the docs list them, tests/cli/test_timeline.py
 * counts lanes and markers in the SVG by them): each lane's background and
 * each kind of marker has a colour used for nothing else. */
#include "ctlplane.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#ifdef HAVE_CAIRO
#include <cairo-svg.h>
#include <cairo.h>

struct rgb {
	unsigned char r, g, b;
};

/* D0 .. D3cold: warm (drawing power) to cold */
static const struct rgb state_rgb[5] = {
	{ 0xd8, 0x43, 0x15 }, { 0xf4, 0x8f, 0x3b }, { 0xf9, 0xc7, 0x4f },
	{ 0x42, 0x85, 0xf4 }, { 0x1a, 0x23, 0x7e },
};
static const char *const state_names[5] = { "D0", "D1", "D2", "D3hot", "D3cold" };
static const struct rgb lane_bg = { 0xee, 0xee, 0xee };
static const struct rgb unknown_rgb = { 0xbd, 0xbd, 0xbd };   /* no state known */
static const struct rgb wakeup_rgb = { 0x00, 0xa8, 0x3e };
static const struct rgb reset_rgb = { 0xc6, 0x00, 0x3a };
static const struct rgb connect_rgb = { 0x7b, 0x1f, 0xa2 };
static const struct rgb disconnect_rgb = { 0x5d, 0x40, 0x37 };

#define W 1200.0
#define LEFT 250.0
#define RIGHT 30.0
#define TOP 58.0
#define LANE_H 34.0
#define LANE_GAP 10.0
#define LEGEND_H 56.0

static void color(cairo_t *cr, struct rgb c)
{
	cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

static struct json_object *sub(struct json_object *o, const char *k)
{
	struct json_object *v;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static const char *str(struct json_object *o, const char *k)
{
	struct json_object *v = sub(o, k);
	return v ? json_object_get_string(v) : "";
}

static int state_index(const char *s)
{
	for (int i = 0; i < 5; i++)
		if (!strcmp(s, state_names[i]))
			return i;
	return -1;
}

static int64_t ev_mono(struct json_object *e)
{
	struct json_object *v = sub(e, "mono_ns");
	return v ? json_object_get_int64(v) : 0;
}

static double xpos(int64_t t, int64_t t0, int64_t t1)
{
	return LEFT + (W - LEFT - RIGHT) * (double)(t - t0) / (double)(t1 - t0);
}

static void text(cairo_t *cr, double x, double y, double size, bool bold, const char *s)
{
	cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
			       bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
	cairo_set_font_size(cr, size);
	cairo_move_to(cr, x, y);
	cairo_show_text(cr, s);
}

/* The markers: a filled triangle above the lane (wakeup), a line across
 * it (reset), a filled diamond below it (connect), an open one
 * (disconnect). */
static void marker(cairo_t *cr, const char *type, double x, double y)
{
	cairo_new_path(cr);
	if (!strcmp(type, "wakeup")) {
		color(cr, wakeup_rgb);
		cairo_move_to(cr, x - 6, y - 9);
		cairo_line_to(cr, x + 6, y - 9);
		cairo_line_to(cr, x, y + 1);
		cairo_close_path(cr);
		cairo_fill(cr);
	} else if (!strcmp(type, "reset")) {
		color(cr, reset_rgb);
		cairo_set_line_width(cr, 2.5);
		cairo_move_to(cr, x, y - 3);
		cairo_line_to(cr, x, y + LANE_H + 3);
		cairo_stroke(cr);
	} else if (!strcmp(type, "client_connect") || !strcmp(type, "client_disconnect")) {
		bool on = !strcmp(type, "client_connect");
		double cy = y + LANE_H + 1;
		color(cr, on ? connect_rgb : disconnect_rgb);
		cairo_move_to(cr, x, cy - 6);
		cairo_line_to(cr, x + 6, cy);
		cairo_line_to(cr, x, cy + 6);
		cairo_line_to(cr, x - 6, cy);
		cairo_close_path(cr);
		if (on) {
			cairo_fill(cr);
		} else {
			cairo_set_line_width(cr, 1.5);
			cairo_stroke(cr);
		}
	}
}

static bool is_marker(const char *type)
{
	return !strcmp(type, "wakeup") || !strcmp(type, "reset") ||
	       !strcmp(type, "client_connect") || !strcmp(type, "client_disconnect");
}

/* One device's lane at y over [t0, t1]. */
static void lane(cairo_t *cr, double y, struct json_object *dev, struct json_object *evs,
		 int64_t t0, int64_t t1)
{
	const char *name = str(dev, "name");
	size_t n = json_object_array_length(evs);
	/* the state at t0: the last change before it, else the first change's
	 * "from", else (nothing changed in the ring) the state now */
	int cur = -1, first_from = -1;
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(evs, i);
		if (strcmp(str(e, "device"), name) || strcmp(str(e, "type"), "power"))
			continue;
		if (ev_mono(e) <= t0)
			cur = state_index(str(e, "to"));
		else if (first_from < 0)
			first_from = state_index(str(e, "from"));
	}
	if (cur < 0)
		cur = first_from >= 0 ? first_from : state_index(str(dev, "power_state"));

	color(cr, lane_bg);
	cairo_rectangle(cr, LEFT - 4, y - 4, W - LEFT - RIGHT + 8, LANE_H + 8);
	cairo_fill(cr);
	int64_t from = t0;
	for (size_t i = 0; i <= n; i++) {
		struct json_object *e = i < n ? json_object_array_get_idx(evs, i) : NULL;
		int64_t t = e ? ev_mono(e) : t1;
		if (e && (strcmp(str(e, "device"), name) || strcmp(str(e, "type"), "power") ||
			  t <= t0 || t > t1))
			continue;
		double x0 = xpos(from, t0, t1), x1 = xpos(t, t0, t1);
		color(cr, cur >= 0 ? state_rgb[cur] : unknown_rgb);
		cairo_rectangle(cr, x0, y, fmax(x1 - x0, 0.75), LANE_H);
		cairo_fill(cr);
		if (e) {
			cur = state_index(str(e, "to"));
			from = t;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(evs, i);
		int64_t t = ev_mono(e);
		if (strcmp(str(e, "device"), name) || t < t0 || t > t1 || !is_marker(str(e, "type")))
			continue;
		marker(cr, str(e, "type"), xpos(t, t0, t1), y);
	}

	cairo_set_source_rgb(cr, 0, 0, 0);
	text(cr, 12, y + 14, 13, true, name);
	struct json_object *c = sub(dev, "counters");
	struct json_object *u = sub(c, "energy_used_mj"), *s = sub(c, "energy_saved_mj");
	if (u && s) {
		int64_t um = json_object_get_int64(u), sm = json_object_get_int64(s);
		char buf[128];
		snprintf(buf, sizeof(buf), "%" PRId64 ".%03" PRId64 " J used, %" PRId64 ".%03" PRId64
					   " J saved",
			 um / 1000, um % 1000, sm / 1000, sm % 1000);
		cairo_set_source_rgb(cr, 0.3, 0.3, 0.3);
		text(cr, 12, y + 30, 11, false, buf);
	}
}

/* A tick step of 1, 2 or 5 times a power of ten seconds, for about 8 ticks. */
static double tick_step(double span_s)
{
	double raw = span_s / 8, p = pow(10, floor(log10(raw)));
	return raw <= p ? p : raw <= 2 * p ? 2 * p : raw <= 5 * p ? 5 * p : 10 * p;
}

static void axis(cairo_t *cr, double y_end, int64_t t0, int64_t t1)
{
	double span = (double)(t1 - t0) / 1e9, step = tick_step(span);
	cairo_set_line_width(cr, 1);
	/* ticks at whole steps before the end: "-10 s" ... "now" */
	for (double k = 0; k * step <= span + 1e-9; k++) {
		double x = xpos(t1 - (int64_t)(k * step * 1e9), t0, t1);
		cairo_set_source_rgb(cr, 0.8, 0.8, 0.8);
		cairo_move_to(cr, x, TOP - 6);
		cairo_line_to(cr, x, y_end);
		cairo_stroke(cr);
		char buf[32];
		if (k == 0)
			snprintf(buf, sizeof(buf), "now");
		else
			snprintf(buf, sizeof(buf), "-%g s", k * step);
		cairo_text_extents_t te;
		cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
		cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
				       CAIRO_FONT_WEIGHT_NORMAL);
		cairo_set_font_size(cr, 11);
		cairo_text_extents(cr, buf, &te);
		cairo_move_to(cr, x - te.width / 2, TOP - 10);
		cairo_show_text(cr, buf);
	}
}

static void legend(cairo_t *cr, double y)
{
	double x = LEFT;
	for (int i = 0; i < 5; i++) {
		color(cr, state_rgb[i]);
		cairo_rectangle(cr, x, y, 18, 12);
		cairo_fill(cr);
		cairo_set_source_rgb(cr, 0, 0, 0);
		text(cr, x + 23, y + 11, 11, false, state_names[i]);
		x += 80;
	}
	static const char *const kinds[] = { "wakeup", "reset", "client_connect",
					     "client_disconnect" };
	static const char *const labels[] = { "wakeup", "reset", "client connect",
					      "client disconnect" };
	x += 20;
	for (int i = 0; i < 4; i++) {
		/* marker() draws about a lane whose top is its y */
		double my = !strcmp(kinds[i], "wakeup") ? y + 10
			    : !strcmp(kinds[i], "reset")  ? y + 1
							  : y + 6 - LANE_H - 1;
		if (!strcmp(kinds[i], "reset")) {
			color(cr, reset_rgb);
			cairo_set_line_width(cr, 2.5);
			cairo_move_to(cr, x, y - 2);
			cairo_line_to(cr, x, y + 14);
			cairo_stroke(cr);
		} else {
			marker(cr, kinds[i], x, my);
		}
		cairo_set_source_rgb(cr, 0, 0, 0);
		text(cr, x + 12, y + 11, 11, false, labels[i]);
		x += 130;
	}
}

static int64_t mono_now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);
	return n >= m && !strcasecmp(s + n - m, suf);
}

static int fetch(const char *path, const char *cmd, const char *key, struct json_object **rep)
{
	struct json_object *req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string(cmd));
	int rc = ctlplane_request(path, req, rep);
	json_object_put(req);
	if (rc) {
		fprintf(stderr, "vfpmctl: control socket %s: %s\n", path, strerror(-rc));
		return 1;
	}
	if (ctlplane_check_reply(*rep, cmd) || !sub(*rep, key)) {
		json_object_put(*rep);
		*rep = NULL;
		return 1;
	}
	return 0;
}

static int draw(const char *out, bool png, struct json_object *devs, struct json_object *evs,
		int64_t t0, int64_t t1, double since)
{
	size_t nd = json_object_array_length(devs);
	double h = TOP + (double)nd * (LANE_H + LANE_GAP + 8) + LEGEND_H;
	cairo_surface_t *sf = png ? cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)W, (int)h)
				  : cairo_svg_surface_create(out, W, h);
	cairo_t *cr = cairo_create(sf);
	cairo_set_source_rgb(cr, 1, 1, 1);
	cairo_paint(cr);
	double y_end = TOP + (double)nd * (LANE_H + LANE_GAP + 8);
	axis(cr, y_end - LANE_GAP, t0, t1);
	char title[160];
	snprintf(title, sizeof(title), "vfpm power timeline: %s %.3f s", since > 0 ? "last" : "the events held,",
		 (double)(t1 - t0) / 1e9);
	cairo_set_source_rgb(cr, 0, 0, 0);
	text(cr, 12, 22, 15, true, title);
	for (size_t i = 0; i < nd; i++)
		lane(cr, TOP + 4 + (double)i * (LANE_H + LANE_GAP + 8),
		     json_object_array_get_idx(devs, i), evs, t0, t1);
	legend(cr, y_end + 14);
	cairo_destroy(cr);
	cairo_status_t st;
	if (png) {
		st = cairo_surface_write_to_png(sf, out);
	} else {
		cairo_surface_finish(sf);
		st = cairo_surface_status(sf);
	}
	cairo_surface_destroy(sf);
	if (st != CAIRO_STATUS_SUCCESS) {
		fprintf(stderr, "vfpmctl: timeline: cannot write %s: %s\n", out,
			cairo_status_to_string(st));
		return 1;
	}
	return 0;
}

int ctlplane_timeline(const char *path, int argc, char **argv)
{
	const char *out = NULL;
	double since = 0;
	char **names = calloc((size_t)argc + 1, sizeof(*names));
	int nnames = 0;
	if (!names)
		return 1;
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--since")) {
			if (i + 1 == argc) {
				fprintf(stderr, "vfpmctl: timeline: %s needs a value\n", argv[i]);
				free(names);
				return 2;
			}
			if (argv[i][1] == 'o') {
				out = argv[++i];
				continue;
			}
			char *end;
			errno = 0;
			since = strtod(argv[++i], &end);
			if (errno || *end || !(since > 0) || since > 1e7) {
				fprintf(stderr, "vfpmctl: timeline: --since '%s': expected seconds > 0\n",
					argv[i]);
				free(names);
				return 2;
			}
		} else if (argv[i][0] == '-') {
			fprintf(stderr, "vfpmctl: timeline: unknown option '%s'\n", argv[i]);
			free(names);
			return 2;
		} else {
			names[nnames++] = argv[i];
		}
	}
	bool png = out && ends_with(out, ".png");
	if (!out || (!png && !ends_with(out, ".svg"))) {
		fprintf(stderr, "vfpmctl: timeline: -o FILE.svg or -o FILE.png is required\n");
		free(names);
		return 2;
	}
	struct json_object *st = NULL, *ev = NULL;
	int ret = fetch(path, "status", "devices", &st);
	if (!ret)
		ret = fetch(path, "events", "events", &ev);
	int64_t now = mono_now();
	struct json_object *devs = NULL;
	if (!ret) {
		struct json_object *all = sub(st, "devices");
		devs = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(all); i++) {
			struct json_object *d = json_object_array_get_idx(all, i);
			bool take = !nnames;
			for (int k = 0; k < nnames && !take; k++)
				take = !strcmp(names[k], str(d, "name"));
			if (take)
				json_object_array_add(devs, json_object_get(d));
		}
		for (int k = 0; k < nnames && !ret; k++) {
			bool found = false;
			for (size_t i = 0; i < json_object_array_length(devs) && !found; i++)
				found = !strcmp(names[k], str(json_object_array_get_idx(devs, i), "name"));
			if (!found) {
				fprintf(stderr, "vfpmctl: timeline: no device named '%s'\n", names[k]);
				ret = 1;
			}
		}
	}
	if (!ret) {
		struct json_object *evs = sub(ev, "events");
		/* the window ends now (same host: vfpmd's CLOCK_MONOTONIC is ours)
		 * and starts --since before, or at the first event drawn */
		int64_t t1 = now, t0 = INT64_MAX;
		for (size_t i = 0; i < json_object_array_length(evs); i++) {
			struct json_object *e = json_object_array_get_idx(evs, i);
			bool mine = false;
			for (size_t k = 0; k < json_object_array_length(devs) && !mine; k++)
				mine = !strcmp(str(e, "device"),
					       str(json_object_array_get_idx(devs, k), "name"));
			if (!mine)
				continue;
			t1 = ev_mono(e) > t1 ? ev_mono(e) : t1;
			t0 = ev_mono(e) < t0 ? ev_mono(e) : t0;
		}
		if (since > 0)
			t0 = t1 - (int64_t)(since * 1e9);
		else if (t0 == INT64_MAX || t1 - t0 < 1000000)
			t0 = t1 - 1000000000;   /* nothing to span: the last second */
		else
			t0 -= (t1 - t0) / 50;   /* a margin before the first event */
		ret = draw(out, png, devs, evs, t0, t1, since);
		if (!ret)
			printf("timeline of %zu device%s written to %s\n", json_object_array_length(devs),
			       json_object_array_length(devs) == 1 ? "" : "s", out);
	}
	json_object_put(devs);
	json_object_put(st);
	json_object_put(ev);
	free(names);
	return ret;
}

#else

int ctlplane_timeline(const char *path, int argc, char **argv)
{
	(void)path;
	(void)argc;
	(void)argv;
	fprintf(stderr, "vfpmctl: timeline: this vfpmctl was built without cairo "
			"(Debian: libcairo2-dev; then rebuild)\n");
	return 1;
}

#endif
