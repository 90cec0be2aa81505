#!/usr/bin/python3
"""vfpmctl metrics and vfpmd --metrics-file, parsed by the Prometheus
client library's text parser: every family has HELP and TYPE, names follow
the conventions, values match `vfpmctl status --json`, the file follows a
power change and is replaced by rename, and is removed at exit.

With TYPE notify (vfpmd built with libsystemd), also the sd_notify
readiness: READY=1 once the sockets listen, STOPPING=1 at SIGTERM.

Usage: test_metrics.py VFPMD VFPMCTL TYPE. Exit 77 (skip) without
prometheus_client (Debian: python3-prometheus-client)."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile

from clitap import done, ok, wait_for

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    print("SKIP: python3-prometheus-client is not installed")
    sys.exit(77)

VFPMD, VFPMCTL, UNIT_TYPE = sys.argv[1], sys.argv[2], sys.argv[3]



def parse(text):
    """{(sample name, frozenset(labels)): value} and {family: (type, doc)}."""
    samples, fams = {}, {}
    for fam in text_string_to_metric_families(text):
        fams[fam.name] = (fam.type, fam.documentation)
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, fams


def val(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]



def ctl(*args):
    return subprocess.run([VFPMCTL, "--ctl", ctlp] + list(args), check=True,
                          capture_output=True, text=True).stdout


d = tempfile.mkdtemp(prefix="vfpm-metrics.")
ctlp, prom = os.path.join(d, "ctl"), os.path.join(d, "vfpm.prom")
notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
notify.bind(os.path.join(d, "notify"))
notify.settimeout(5)   # a deadline, not a timing assertion
env = dict(os.environ, NOTIFY_SOCKET=os.path.join(d, "notify"))
srv = subprocess.Popen([VFPMD, "--ctl", ctlp, "--metrics-file", prom,
                        "--device", "demo,name=a,socket=%s/a.sock,pm_delays=none" % d,
                        "--device", 'demo,name=q"x\\,socket=%s/q.sock,pm_delays=none,'
                        "platform_d3cold=on,total_vfs=2" % d],
                       stderr=open(os.path.join(d, "log"), "w"), env=env)
try:
    if UNIT_TYPE == "notify":
        msg = notify.recv(4096).decode()
        ok(msg == "READY=1" and os.path.exists(ctlp) and os.path.exists(prom),
           "sd_notify READY=1 once the sockets and the metrics file exist (%r)" % msg)
    wait_for(lambda: os.path.exists(ctlp), "the control socket")

    def settled():
        st = json.loads(ctl("status", "--json"))["devices"]
        return all(x["runtime_status"] == "suspended" for x in st)
    wait_for(settled, "both devices to suspend")

    text = ctl("metrics")
    samples, fams = parse(text)
    ok(all(t and doc for t, doc in fams.values()), "every family has a TYPE and a HELP")
    ok(all(n.startswith("vfpm_") for n in fams), "every family is vfpm_-prefixed")
    for name, (typ, _) in fams.items():
        if typ == "counter":
            ok(re.search(r"^# TYPE %s_total counter$" % name, text, re.M) is not None,
               "counter %s is exposed as %s_total" % (name, name))
    ok(fams.get("vfpm_residency_seconds") == ("counter", fams["vfpm_residency_seconds"][1]),
       "residency is a counter in seconds")
    ok(fams["vfpm_power_state"][0] == "gauge", "power state is a gauge")

    status = {x["name"]: x for x in json.loads(ctl("status", "--json"))["devices"]}
    names = sorted(status)
    ok(names == ["a", 'q"x\\'], "status lists a and the oddly named device: %s" % names)
    for n in names:
        st = status[n]
        for state in ("D0", "D1", "D2", "D3hot", "D3cold"):
            ok(val(samples, "vfpm_power_state", device=n, state=state) ==
               (1.0 if st["power_state"] == state else 0.0),
               "%s: vfpm_power_state{state=%s} matches status" % (n, state))
        ok(val(samples, "vfpm_runtime_status", device=n, status="suspended") == 1.0,
           "%s: runtime status suspended" % n)
        ok(val(samples, "vfpm_usage_count", device=n) == st["usage_count"], "%s: usage" % n)
        ok(val(samples, "vfpm_client_connected", device=n) == 0.0, "%s: no client" % n)
        c = st["counters"]
        ok(val(samples, "vfpm_suspends_total", device=n) == c["suspends"], "%s: suspends" % n)
        ok(val(samples, "vfpm_resumes_total", device=n) == c["resumes"], "%s: resumes" % n)
        ok(val(samples, "vfpm_wakeups_signalled_total", device=n) == c["wakeups_signalled"],
           "%s: wakeups" % n)
        d0 = val(samples, "vfpm_residency_seconds_total", device=n, state="D0")
        ok(0 <= d0 <= c["residency_ms"]["D0"] / 1000.0 + 0.001, "%s: D0 residency %s" % (n, d0))
    ok(status['q"x\\']["power_state"] == "D3cold", "the quoted device is in D3cold")
    ok(val(samples, "vfpm_device_info", device='q"x\\', model="demo", pf="") == 1.0,
       "a label with a quote and a backslash survives escaping")

    # the textfile: there from the start, world-readable, parses alike
    ok(os.path.exists(prom), "--metrics-file exists")
    ok(os.stat(prom).st_mode & 0o777 == 0o644, "metrics file is 0644")
    fsamples, _ = parse(open(prom).read())
    ok(val(fsamples, "vfpm_power_state", device="a", state="D3hot") == 1.0,
       "file: a in D3hot")
    # no event, no rewrite: status and metrics requests leave the file alone
    # kept open, the first file's inode cannot be reused by a later one
    held = open(prom)
    ino = os.fstat(held.fileno()).st_ino
    ctl("status")
    ctl("metrics")
    ok(os.stat(prom).st_ino == ino, "status requests do not rewrite the file")
    # a power change does
    ctl("set", "a", "power_control=on")

    def file_shows_d0():
        s, _ = parse(open(prom).read())
        return val(s, "vfpm_power_state", device="a", state="D0") == 1.0
    ok(wait_for(file_shows_d0, "the file to show a in D0"), "file follows a resume")
    # the power event comes from inside the resume; the counter moves when
    # the runtime-PM core has counted it, which rewrites the file again
    def file_counts_resume():
        s, _ = parse(open(prom).read())
        return val(s, "vfpm_resumes_total", device="a") == 1.0
    ok(wait_for(file_counts_resume, "the file to count the resume"), "file: one resume of a")
    s, _ = parse(open(prom).read())
    ok(val(s, "vfpm_usage_count", device="a") == 1.0, "file: power_control=on holds a reference")
    ok(os.stat(prom).st_ino != ino, "the file was replaced (rename), not rewritten in place")
    old, _ = parse(held.read())
    held.close()
    ok(val(old, "vfpm_power_state", device="a", state="D3hot") == 1.0,
       "the replaced file still holds what it said (a reader never sees a part)")
finally:
    srv.terminate()
    rc = srv.wait(timeout=10)
    if UNIT_TYPE == "notify":
        ok(notify.recv(4096).decode() == "STOPPING=1", "sd_notify STOPPING=1 at SIGTERM")
ok(rc == 0, "vfpmd exits 0")
ok(not os.path.exists(prom), "the metrics file is removed at exit")
ok([f for f in os.listdir(d) if ".tmp." in f] == [], "no temporary file left")
subprocess.run(["rm", "-rf", d])
done()
