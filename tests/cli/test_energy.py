#!/usr/bin/python3
"""The energy model through vfpmd and vfpmctl: the power of each D-state as
device keys and `vfpmctl set` settings, and the energy used and saved in
`status --json`, the status table and `vfpmctl metrics`.

The values are exact: with 1000 mW in D0 and 0 mW in every other state, a
millisecond of D0 is a millijoule used and a millisecond elsewhere a
millijoule saved, so the energy equals the residency the same status
reply shows, whatever the real clock did.

Usage: test_energy.py VFPMD VFPMCTL"""
import json
import os
import re
import subprocess
import sys
import tempfile

from clitap import done, ok, wait_for

VFPMD, VFPMCTL = sys.argv[1], sys.argv[2]



def run(*args):
    return subprocess.run([VFPMCTL, "--ctl", ctlp] + list(args), capture_output=True, text=True)


def status(name):
    r = run("status", "--json", name)
    return json.loads(r.stdout)["devices"][0]



d = tempfile.mkdtemp(prefix="vfpm-energy.")
ctlp = os.path.join(d, "ctl")
unit = "power_d0_mw=1000,power_d1_mw=0,power_d2_mw=0,power_d3hot_mw=0,power_d3cold_mw=0"
srv = subprocess.Popen([VFPMD, "--ctl", ctlp,
                        "--device", "demo,name=e,socket=%s/e.sock,pm_delays=none,%s" % (d, unit),
                        "--device", "demo,name=def,socket=%s/def.sock,pm_delays=none" % d],
                       stderr=open(os.path.join(d, "log"), "w"))
try:
    wait_for(lambda: os.path.exists(ctlp), "the control socket")
    wait_for(lambda: status("e")["runtime_status"] == "suspended", "e to suspend")

    st = status("def")["settings"]
    ok([st[k] for k in ("power_d0_mw", "power_d1_mw", "power_d2_mw", "power_d3hot_mw",
                        "power_d3cold_mw")] == [3000, 1500, 750, 330, 66],
       "the default power of each state: 3000 1500 750 330 66 mW")

    e = status("e")
    c, s = e["counters"], e["settings"]
    ok(s["power_d0_mw"] == 1000 and s["power_d3hot_mw"] == 0, "device keys set the power")
    ok(e["power_state"] == "D3hot" and c["residency_ms"]["D3cold"] == 0, "e is in D3hot")
    ok(c["energy_used_mj"] == c["residency_ms"]["D0"],
       "used (%d mJ) = D0 residency x 1 W (%d ms)" % (c["energy_used_mj"], c["residency_ms"]["D0"]))
    ok(c["energy_saved_mj"] == c["residency_ms"]["D3hot"],
       "saved (%d mJ) = D3hot residency x 1 W (%d ms)"
       % (c["energy_saved_mj"], c["residency_ms"]["D3hot"]))

    # in D3hot at 0 W the energy used stands still: metrics show the same
    m = run("metrics").stdout
    mm = re.search(r'^vfpm_energy_joules_total\{device="e"\} (\S+)$', m, re.M)
    ok(mm is not None and round(float(mm.group(1)) * 1000) == c["energy_used_mj"],
       "vfpm_energy_joules_total of e = status's energy_used_mj / 1000 (%s)"
       % (mm.group(1) if mm else None))
    ok(re.search(r'^# TYPE vfpm_energy_saved_joules_total counter$', m, re.M) is not None and
       re.search(r'^vfpm_energy_saved_joules_total\{device="e"\} \d+\.\d{3}$', m, re.M) is not None,
       "vfpm_energy_saved_joules_total is a counter with a sample per device")
    ok(re.search(r'^vfpm_state_power_watts\{device="def",state="D3hot"\} 0\.330$', m, re.M)
       is not None, "vfpm_state_power_watts gives the model in watts")

    table = run("status", "e").stdout.splitlines()
    ok(table[0].split()[12:14] == ["ENERGY_J", "SAVED_J"], "the table has ENERGY_J and SAVED_J")
    row = table[1].split()
    ok(row[0] == "e" and row[12] == "%d.%03d" % divmod(c["energy_used_mj"], 1000),
       "the table shows the energy used in joules (%s)" % row[12:14])

    # vfpmctl set: the new figure counts from now on, the past keeps its own
    r = run("set", "e", "power_d3hot_mw=500")
    ok(r.returncode == 0, "set e power_d3hot_mw=500")
    ok(status("e")["settings"]["power_d3hot_mw"] == 500, "status shows power_d3hot_mw 500")
    before = status("e")["counters"]["energy_used_mj"]
    wait_for(lambda: status("e")["counters"]["energy_used_mj"] > before,
             "energy used to grow in D3hot at 0.5 W")
    for bad in ("power_d3hot_mw=1001", "power_d0_mw=499", "power_d1_mw=-5",
                "power_d2_mw=1000001", "power_d3cold_mw=many"):
        r = run("set", "e", bad)
        ok(r.returncode == 1 and "invalid value" in r.stderr, "set %s: exit 1, invalid value" % bad)
    s = status("e")["settings"]
    ok((s["power_d0_mw"], s["power_d3hot_mw"], s["power_d1_mw"]) == (1000, 500, 0),
       "the refused values changed nothing")
finally:
    srv.terminate()
    rc = srv.wait(timeout=10)
ok(rc == 0, "vfpmd exits 0")

# a device key out of order is still checked against D0; one above it fails
r = subprocess.run([VFPMD, "--ctl", "none", "--device",
                    "demo,name=x,socket=%s/x.sock,power_d3hot_mw=4000" % d],
                   capture_output=True, text=True, timeout=10)
ok(r.returncode == 1 and "power_d0_mw" in r.stderr,
   "a state above D0 at creation: exit 1, names power_d0_mw")
subprocess.run(["rm", "-rf", d])
done()
