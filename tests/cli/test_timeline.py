#!/usr/bin/python3
"""vfpmctl timeline: an SVG and a PNG of a vfpmd driven through a PM
sequence (vfpm-demo's tour of the demo device: connect, low power with a
wakeup, resets, disconnect; a power_control=on/auto on another device).

Checked: the file types (PNG signature and IHDR, SVG root element); one
lane per device (the lane background colour, which nothing else uses,
once per device; the PNG's height grows by one lane per device); each
lane ends in the colour of the device's current D-state; the markers
(wakeup, reset, client connect and disconnect, each a colour of its own)
are as many as the events of that type vfpmd holds, plus one in the
legend; the errors. Exit 77 (skip) when vfpmctl was built without cairo.

Usage: test_timeline.py VFPMD VFPMCTL VFPM_DEMO"""
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

from clitap import done, ok, wait_for

VFPMD, VFPMCTL, DEMO = sys.argv[1], sys.argv[2], sys.argv[3]

# the colours docs/operating.md lists (tools/vfpmctl/timeline.c)
STATE = {"D0": (0xd8, 0x43, 0x15), "D1": (0xf4, 0x8f, 0x3b), "D2": (0xf9, 0xc7, 0x4f),
         "D3hot": (0x42, 0x85, 0xf4), "D3cold": (0x1a, 0x23, 0x7e)}
LANE_BG = (0xee, 0xee, 0xee)
MARK = {"wakeup": ("fill", (0x00, 0xa8, 0x3e)), "reset": ("stroke", (0xc6, 0x00, 0x3a)),
        "client_connect": ("fill", (0x7b, 0x1f, 0xa2)),
        "client_disconnect": ("stroke", (0x5d, 0x40, 0x37))}
LANE_Y0, LANE_STEP, PLOT_END = 62, 52, 1170   # first lane's top, lane pitch, right edge



def ctl(*args):
    return subprocess.run([VFPMCTL, "--ctl", ctlp] + list(args), capture_output=True, text=True)



def rgb(style, prop):
    """The colour of prop (fill or stroke) in an SVG style, as 8-bit RGB."""
    m = re.search(prop + r":rgb\(([\d.]+)%,([\d.]+)%,([\d.]+)%\)", style or "")
    return tuple(round(float(x) * 255 / 100) for x in m.groups()) if m else None


def svg_paths(path):
    root = ET.parse(path).getroot()
    ok(root.tag == "{http://www.w3.org/2000/svg}svg", "%s: the root element is svg" % path)
    # paths outside <defs> (the glyphs of the text live there)
    defs = {id(p) for d in root.iter("{http://www.w3.org/2000/svg}defs") for p in d.iter()}
    return [(p.get("style"), p.get("d")) for p in root.iter("{http://www.w3.org/2000/svg}path")
            if id(p) not in defs]


def png_size(path):
    b = open(path, "rb").read(24)
    ok(b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR", "%s: PNG signature and IHDR" % path)
    return struct.unpack(">II", b[16:24])


d = tempfile.mkdtemp(prefix="vfpm-timeline.")
ctlp = os.path.join(d, "ctl")
r = subprocess.run([VFPMCTL, "--ctl", ctlp, "timeline", "-o", os.path.join(d, "t.svg")],
                   capture_output=True, text=True)
if "built without cairo" in r.stderr:
    print("SKIP: vfpmctl was built without cairo")
    sys.exit(77)
srv = subprocess.Popen([VFPMD, "--ctl", ctlp,
                        "--device", "demo,socket=%s/demo.sock,platform_d3cold=on,nosoftrst=off" % d,
                        "--device", "demo,name=b,socket=%s/b.sock,pm_delays=none" % d,
                        "--device", "demo,name=c,socket=%s/c.sock,pm_delays=none" % d],
                       stderr=open(os.path.join(d, "log"), "w"))
try:
    wait_for(lambda: os.path.exists(ctlp), "the control socket")
    tour = subprocess.run([DEMO, "--ctl", ctlp, os.path.join(d, "demo.sock")],
                          capture_output=True, text=True, timeout=60)
    ok(tour.returncode == 0, "vfpm-demo's tour of the demo device")
    ok(ctl("set", "c", "power_control=on").returncode == 0 and
       ctl("set", "c", "power_control=auto").returncode == 0, "c resumed and released")

    def settled():
        st = json.loads(ctl("status", "--json").stdout)["devices"]
        return all(x["runtime_status"] == "suspended" for x in st)
    wait_for(settled, "every device to suspend")
    status = json.loads(ctl("status", "--json").stdout)["devices"]
    names = [x["name"] for x in status]

    svg, png = os.path.join(d, "all.svg"), os.path.join(d, "all.png")
    r = ctl("timeline", "-o", svg)
    ok(r.returncode == 0 and ("written to " + svg) in r.stdout, "timeline -o all.svg says where")
    ok(ctl("timeline", "-o", png).returncode == 0, "timeline -o all.png")
    events = [json.loads(x) for x in ctl("events", "--json").stdout.splitlines()]

    paths = svg_paths(svg)
    lanes = [p for p in paths if rgb(p[0], "fill") == LANE_BG]
    ok(len(lanes) == len(names) == 3, "the SVG has one lane per device (%d)" % len(lanes))
    for kind, (prop, colour) in MARK.items():
        n = sum(1 for p in paths if rgb(p[0], prop) == colour)
        want = sum(1 for e in events if e["type"] == kind)
        ok(want > 0 and n == want + 1,
           "%s markers: %d events, %d drawn + 1 in the legend" % (kind, want, n - 1))
    # each lane ends (at the plot's right edge) in the device's current state
    for i, dev in enumerate(status):
        y = LANE_Y0 + i * LANE_STEP
        ends = [rgb(s, "fill") for s, dd in paths
                if rgb(s, "fill") in STATE.values() and dd and
                re.match(r"M [\d.]+ %d L %d %d " % (y, PLOT_END, y), dd)]
        ok(ends == [STATE[dev["power_state"]]],
           "lane %s ends in %s" % (dev["name"], dev["power_state"]))
    ok(STATE["D3cold"] in [rgb(s, "fill") for s, _ in paths] and
       STATE["D0"] in [rgb(s, "fill") for s, _ in paths], "D0 and D3cold are drawn")

    w, h = png_size(png)
    ok(w == 1200, "PNG width 1200")
    one = os.path.join(d, "one.png")
    ok(ctl("timeline", "demo", "--since", "30", "-o", one).returncode == 0,
       "timeline demo --since 30 -o one.png")
    w1, h1 = png_size(one)
    ok(h - h1 == 2 * LANE_STEP, "the PNG of 3 devices is two lanes taller than of 1 (%d, %d)"
       % (h, h1))
    two = os.path.join(d, "two.svg")
    ok(ctl("timeline", "b", "c", "-o", two).returncode == 0, "timeline b c -o two.svg")
    ok(sum(1 for p in svg_paths(two) if rgb(p[0], "fill") == LANE_BG) == 2,
       "timeline b c draws two lanes")
    # a device with no event in the window is drawn in its current state
    r = ctl("timeline", "b", "--since", "0.001", "-o", os.path.join(d, "quiet.svg"))
    q = svg_paths(os.path.join(d, "quiet.svg"))
    ok(r.returncode == 0 and [rgb(s, "fill") for s, dd in q if rgb(s, "fill") in STATE.values()
                              and dd and dd.startswith("M 250 %d " % LANE_Y0)]
       == [STATE[status[1]["power_state"]]],
       "a quiet window shows the state the device is in")

    for args, code, what in ((["-o", os.path.join(d, "x.jpg")], 2, "-o FILE.svg or -o FILE.png"),
                             ([], 2, "-o FILE.svg"),
                             (["--since", "0", "-o", svg], 2, "expected seconds"),
                             (["nosuch", "-o", svg], 1, "no device named 'nosuch'")):
        r = ctl("timeline", *args)
        ok(r.returncode == code and what in r.stderr,
           "timeline %s: exit %d, %r" % (" ".join(args), code, what))
finally:
    srv.terminate()
    rc = srv.wait(timeout=10)
ok(rc == 0, "vfpmd exits 0")
subprocess.run(["rm", "-rf", d])
done()
