#!/usr/bin/python3
"""vfpmd --config FILE reloads its devices on SIGHUP: a device whose line
is new is added and served, a device whose line is gone is removed (its
socket file too), a device whose line changed is removed and added again
(new settings, a new event ring), and a device whose line is unchanged is
not touched: its client keeps its connection (the same socket still gets
replies) and its state (power_control=on, its counters, its events). A
config with errors changes nothing. A device given on the command line is
never touched by a reload.

Usage: test_reload.py VFPMD VFPMCTL"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile

from clitap import done, ok, wait_for

VFPMD, VFPMCTL = sys.argv[1], sys.argv[2]



def ctl(*args):
    return subprocess.run([VFPMCTL, "--ctl", ctlp] + list(args), capture_output=True, text=True)


def status():
    return {x["name"]: x for x in json.loads(ctl("status", "--json").stdout)["devices"]}


def events(name):
    return [json.loads(x) for x in ctl("events", "--json", name).stdout.splitlines()]



def vfu(sock, msg_id, cmd, payload):
    """One vfio-user request and its reply: (cmd, flags, error, payload)."""
    sock.sendall(struct.pack("<HHIII", msg_id, cmd, 16 + len(payload), 0, 0) + payload)
    hdr = b""
    while len(hdr) < 16:
        chunk = sock.recv(16 - len(hdr))
        if not chunk:
            raise EOFError("connection closed")
        hdr += chunk
    rid, rcmd, size, flags, err = struct.unpack("<HHIII", hdr)
    body = b""
    while len(body) < size - 16:
        body += sock.recv(size - 16 - len(body))
    return rid, rcmd, flags, err, body


def device_info(sock, msg_id):
    _, cmd, flags, err, body = vfu(sock, msg_id, 4, struct.pack("<IIII", 16, 0, 0, 0))
    return cmd == 4 and err == 0 and len(body) >= 16 and struct.unpack("<IIII", body[:16])[2] > 0


d = tempfile.mkdtemp(prefix="vfpm-reload.")
ctlp, conf = os.path.join(d, "ctl"), os.path.join(d, "devices.conf")
sock = lambda n: os.path.join(d, n + ".sock")


def write_conf(*lines):
    with open(conf + ".new", "w") as f:
        f.write("ctl %s\n" % ctlp)
        for line in lines:
            f.write(line + "\n")
    os.rename(conf + ".new", conf)


line = lambda n, extra="": "device demo,name=%s,socket=%s,pm_delays=none%s" % (n, sock(n), extra)
write_conf(line("a"), line("b"), line("c"), line("e", ",autosuspend_delay_ms=100"))
srv = subprocess.Popen([VFPMD, "--config", conf, "--device",
                        "demo,name=cli,socket=%s,pm_delays=none" % sock("cli")],
                       stderr=open(os.path.join(d, "log"), "w"))
try:
    wait_for(lambda: os.path.exists(ctlp) and os.path.exists(sock("e")), "the sockets")
    # a client on a, holding its connection across the reload
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(sock("a"))
    client.settimeout(10)   # a deadline, not a timing assertion
    caps = b'{"capabilities":{"max_msg_fds":8,"max_data_xfer_size":1048576}}\0'
    _, cmd, flags, err, _ = vfu(client, 1, 1, struct.pack("<HH", 0, 1) + caps)
    ok(cmd == 1 and err == 0, "a client completes VERSION on a")
    ok(device_info(client, 2), "a answers DEVICE_GET_INFO")
    ok(ctl("set", "b", "power_control=on").returncode == 0, "b: power_control=on")
    wait_for(lambda: status()["a"]["client_connected"] and
             status()["b"]["runtime_status"] == "active", "a's client and b active")
    # e: suspend, resume, suspend: three events in its ring
    wait_for(lambda: len(events("e")) == 1, "e's idle suspend")
    ctl("set", "e", "power_control=on")
    ctl("set", "e", "power_control=auto")
    wait_for(lambda: len(events("e")) == 3, "e's third event")
    before = status()
    ev_a, ev_b = events("a"), events("b")

    # c is gone, d is new, e's line changed, a and b are the same lines
    write_conf(line("a"), line("b"), line("e", ",autosuspend_delay_ms=250"), line("d"))
    srv.send_signal(signal.SIGHUP)
    wait_for(lambda: os.path.exists(sock("d")) and not os.path.exists(sock("c")),
             "d's socket to appear and c's to go")
    wait_for(lambda: "SIGHUP: reloaded" in open(os.path.join(d, "log")).read(),
             "the reload's log line")
    log = open(os.path.join(d, "log")).read()
    ok("SIGHUP: reloaded %s: 2 devices added, 2 removed, 2 unchanged" % conf in log,
       "the log line counts 2 added (d, e), 2 removed (c, e), 2 unchanged (a, b)")
    after = status()
    ok(sorted(after) == ["a", "b", "cli", "d", "e"], "status lists a b cli d e: %s" % sorted(after))
    ok(not os.path.exists(sock("c")), "c's socket file is gone")
    r = ctl("status", "c")
    ok(r.returncode == 1 and "no device named 'c'" in r.stderr, "vfpmctl status c: no such device")
    r = subprocess.run([VFPMCTL, "--socket", sock("d"), "info"], capture_output=True, text=True)
    ok(r.returncode == 0 and "region 2 (BAR2)" in r.stdout, "the new device d serves a client")
    wait_for(lambda: status()["e"]["runtime_status"] == "suspended", "the new e to suspend")
    ok(status()["e"]["settings"]["autosuspend_delay_ms"] == 250 and
       [(x["seq"], x["type"]) for x in events("e")] == [(1, "power")],
       "e's changed line: e was added again (autosuspend_delay_ms 250, a new event ring)")
    # a and b were not touched
    ok(after["a"]["client_connected"], "a still has its client")
    ok(device_info(client, 3), "a's client's connection still gets replies")
    ok(after["b"]["settings"]["power_control"] == "on" and after["b"]["power_state"] == "D0" and
       after["b"]["usage_count"] == before["b"]["usage_count"], "b keeps power_control=on, D0")
    for n in ("a", "b"):
        ok(after[n]["counters"]["suspends"] == before[n]["counters"]["suspends"] and
           after[n]["counters"]["resumes"] == before[n]["counters"]["resumes"],
           "%s's counters are the same" % n)
    ok(events("a") == ev_a and events("b") == ev_b, "a and b have no new event")

    # a config with an error changes nothing
    with open(conf, "a") as f:
        f.write("bogus 1\n")
    srv.send_signal(signal.SIGHUP)
    wait_for(lambda: "has errors: the devices stay as they are" in
             open(os.path.join(d, "log")).read(), "the refused reload's log line")
    ok(sorted(status()) == ["a", "b", "cli", "d", "e"] and status()["a"]["client_connected"],
       "a config with errors: the devices and a's client stay")
    # a file without devices removes the file's devices only
    write_conf()
    srv.send_signal(signal.SIGHUP)
    wait_for(lambda: sorted(status()) == ["cli"], "only the command line's device to remain")
    ok(sorted(status()) == ["cli"], "an empty config leaves the command line's device")
    try:
        gone = client.recv(16) == b""
    except OSError:
        gone = True
    ok(gone, "the removed device's client sees its connection close")
    for n in ("a", "b", "d", "e"):
        ok(not os.path.exists(sock(n)), "%s's socket is gone" % n)
    client.close()
finally:
    srv.terminate()
    rc = srv.wait(timeout=20)
ok(rc == 0, "vfpmd exits 0")
ok(not os.path.exists(sock("cli")), "the remaining socket is removed at exit")
subprocess.run(["rm", "-rf", d])
done()
