#!/bin/sh
# End-to-end checks of the command-line tools: vfpmd options, vfpmctl's
# device commands and control-plane commands, and lspci decoding the dump.
# Usage: test_cli.sh VFPMD VFPMCTL
set -u
VFPMD=$1
VFPMCTL=$2
dir=$(mktemp -d /tmp/vfpm-cli.XXXXXX)
pass=0
fail=0
pid=

cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
check() { # NAME COMMAND... : passes when the command succeeds
	name=$1
	shift
	if "$@" >"$dir/out" 2>&1; then ok "$name"; else bad "$name"; sed 's/^/    /' "$dir/out"; fi
}

wait_sock() {
	i=0
	while [ ! -S "$1" ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i + 1)); done
	[ -S "$1" ]
}

# --- vfpmd option errors ---
"$VFPMD" --device nosuchmodel --ctl none >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "unknown device model 'nosuchmodel'" "$dir/out" && ok "unknown model: exit 1 and a clear message" || bad "unknown model"
"$VFPMD" --device demo,bogus=1,socket="$dir/x.sock" --ctl none >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "no option 'bogus'" "$dir/out" && ok "unknown model key: exit 1" || bad "unknown model key"
"$VFPMD" --device demo,platform_d3cold=maybe,socket="$dir/x.sock" --ctl none >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "platform_d3cold" "$dir/out" && ok "bad PM value: exit 1" || bad "bad PM value"
for v in 0 4095 129T 1X -1 1KB; do
	"$VFPMD" --device demo,dma_max=$v,socket="$dir/x.sock" --ctl none >"$dir/out" 2>&1
	[ $? -eq 1 ] && grep -q "dma_max must be" "$dir/out" && ok "dma_max=$v: exit 1" || bad "dma_max=$v"
done
"$VFPMD" --bogus >"$dir/out" 2>&1
[ $? -eq 2 ] && ok "unknown option: exit 2" || bad "unknown option"
"$VFPMD" --help >"$dir/out" 2>&1 && grep -q -- "--device" "$dir/out" && grep -q -- "--ctl" "$dir/out" && ok "vfpmd --help" || bad "vfpmd --help"
"$VFPMD" --list-models >"$dir/out" 2>&1 && grep -q "^demo" "$dir/out" && grep -q nosoftrst "$dir/out" && ok "vfpmd --list-models" || bad "vfpmd --list-models"
"$VFPMCTL" --help >"$dir/out" 2>&1 && grep -q "status" "$dir/out" && grep -q "set DEVICE" "$dir/out" && ok "vfpmctl --help" || bad "vfpmctl --help"
"$VFPMCTL" nosuchcommand >"$dir/out" 2>&1
[ $? -eq 2 ] && ok "vfpmctl unknown command: exit 2" || bad "vfpmctl unknown command"

# --- a running server ---
"$VFPMD" --ctl "$dir/ctl" --device "demo,name=a,socket=$dir/a.sock,pm_delays=none" \
	--device "demo,name=b,socket=$dir/b.sock,pm_delays=none,platform_d3cold=on" 2>"$dir/log" &
pid=$!
wait_sock "$dir/b.sock" && wait_sock "$dir/ctl" && ok "vfpmd serves two devices and a control socket" || bad "vfpmd start"
sleep 0.2
mode=$(stat -c %a "$dir/a.sock")
[ "$mode" = 600 ] && ok "device socket mode 0600" || bad "device socket mode is $mode"

check "status table" "$VFPMCTL" --ctl "$dir/ctl" status
grep -q "^a  *D3hot  *suspended" "$dir/out" && ok "idle device a suspended to D3hot" || { bad "device a state"; cat "$dir/out"; }
grep -q "^b  *D3cold  *suspended" "$dir/out" && ok "idle device b (platform_d3cold) in D3cold" || { bad "device b state"; cat "$dir/out"; }
check "status --json" "$VFPMCTL" --ctl "$dir/ctl" status --json b
for f in '"power_state": "D3cold"' '"runtime_status": "suspended"' '"usage_count": 0' '"engaged": false' \
	'"wakeup_armed": false' '"client_connected": false' '"platform_d3cold": true' '"d3cold_allowed": true' \
	'"idle_d3": true' '"power_control": "auto"' '"autosuspend_delay_ms": 0' '"d3hot_promotion": "off"' \
	'"pm_delays": "none"' '"suspends": 1' '"resumes": 0' '"wakeups_signalled": 0' '"D3cold":' '"socket":' \
	'"dma_mapped": 0' '"dma_max": 1099511627776'; do
	grep -q "$f" "$dir/out" && ok "status --json has $f" || bad "status --json lacks $f"
done
grep -q '"name": "a"' "$dir/out" && bad "status --json b lists only b" || ok "status --json b lists only b"

check "set power_control=on" "$VFPMCTL" --ctl "$dir/ctl" set a power_control=on
"$VFPMCTL" --ctl "$dir/ctl" status a >"$dir/out"
grep -q "^a  *D0  *active  *1 " "$dir/out" && ok "power_control=on resumes a (D0, active, usage 1)" || { bad "power_control=on"; cat "$dir/out"; }
"$VFPMCTL" --ctl "$dir/ctl" set a power_control=auto
sleep 0.2
"$VFPMCTL" --ctl "$dir/ctl" status a >"$dir/out"
grep -q "^a  *D3hot  *suspended  *0 " "$dir/out" && ok "power_control=auto lets a suspend" || { bad "power_control=auto"; cat "$dir/out"; }
"$VFPMCTL" --ctl "$dir/ctl" set a nosuchkey=1 >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "unknown setting" "$dir/out" && ok "set unknown key: exit 1, 'unknown setting'" || bad "set unknown key"
"$VFPMCTL" --ctl "$dir/ctl" set a pm_delays=sometimes >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "invalid value" "$dir/out" && ok "set bad value: exit 1, 'invalid value'" || bad "set bad value"
"$VFPMCTL" --ctl "$dir/ctl" set nosuchdev power_control=on >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "no such device" "$dir/out" && ok "set unknown device: exit 1" || bad "set unknown device"
"$VFPMCTL" --ctl "$dir/ctl" set a noequals >"$dir/out" 2>&1
[ $? -eq 2 ] && ok "set without '=': exit 2" || bad "set without '='"

# --- PM events ---
wait_grep() { # PATTERN FILE: waits up to 5 s for a line
	i=0
	while ! grep -q "$1" "$2" && [ $i -lt 250 ]; do sleep 0.02; i=$((i + 1)); done
	grep -q "$1" "$2"
}
check "events a" "$VFPMCTL" --ctl "$dir/ctl" events a
grep -q " a  *power  *D0 -> D3hot (runtime suspend)$" "$dir/out" &&
	grep -q " a  *power  *D3hot -> D0 (runtime resume)$" "$dir/out" && ! grep -q " b " "$dir/out" &&
	ok "events a: a's suspend and the resume power_control=on caused, nothing of b" ||
	{ bad "events a"; cat "$dir/out"; }
"$VFPMCTL" --ctl "$dir/ctl" events nosuchdev >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "no such device" "$dir/out" && ok "events of an unknown device: exit 1" || bad "events nosuchdev"
"$VFPMCTL" --ctl "$dir/ctl" events --follow --json b >"$dir/follow" 2>&1 &
fpid=$!
wait_grep '"device":"b".*"to":"D3cold"' "$dir/follow" && ok "events --follow prints the events held" ||
	{ bad "events --follow held"; cat "$dir/follow"; }
"$VFPMCTL" --ctl "$dir/ctl" set b power_control=on
wait_grep '"device":"b","seq":3,.*"type":"power","from":"D3cold","to":"D0","cause":"runtime resume"' "$dir/follow" &&
	ok "events --follow: a resume is pushed as it happens" || { bad "events --follow push"; cat "$dir/follow"; }
kill "$fpid"; wait "$fpid" 2>/dev/null
"$VFPMCTL" --ctl "$dir/ctl" set b power_control=auto

# --- device commands ---
check "info" "$VFPMCTL" --socket "$dir/a.sock" info
grep -q "region 2 (BAR2): size 0x100000" "$dir/out" && ok "info shows BAR2 of 1 MiB" || bad "info BAR2"
check "cfg-read vendor" "$VFPMCTL" --socket "$dir/a.sock" cfg-read 0 2
grep -qi "0x1b36" "$dir/out" && ok "vendor id 0x1b36" || { bad "vendor id"; cat "$dir/out"; }
check "cfg-write COMMAND.MEM" "$VFPMCTL" --socket "$dir/a.sock" cfg-write 4 2 2
# every vfpmctl call is a new session: the device was reset in between
check "dump" "$VFPMCTL" --socket "$dir/a.sock" dump
if command -v lspci >/dev/null 2>&1; then
	lspci -vvv -F "$dir/out" >"$dir/lspci" 2>&1
	grep -q "Power Management version 3" "$dir/lspci" && grep -q "MSI-X: Enable- Count=4" "$dir/lspci" &&
		grep -q "Express (v2) Endpoint" "$dir/lspci" && grep -q "Device Serial Number" "$dir/lspci" &&
		ok "lspci -vvv -F decodes the dump" || { bad "lspci decode"; cat "$dir/lspci"; }
else
	echo "ok - lspci decode # SKIP lspci not installed"
fi

# --- shutdown ---
kill "$pid"
wait "$pid"
rc=$?
pid=
[ $rc -eq 0 ] && ok "SIGTERM: exit 0" || bad "SIGTERM exit status $rc"
[ ! -e "$dir/a.sock" ] && [ ! -e "$dir/b.sock" ] && [ ! -e "$dir/ctl" ] && ok "socket files removed" || bad "socket files left"

# --- permissions: the control socket keeps its own mode; only the
# server's user, root or --ctl-group members change settings; the default
# directory must be private ---
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
	as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
	pub=$(mktemp -d /tmp/vfpm-cli-pub.XXXXXX)
	chmod 755 "$pub"
	"$VFPMD" --ctl "$pub/ctl" --socket-mode 0666 --device "demo,name=p,socket=$pub/p.sock,pm_delays=none" \
		2>"$dir/log2" &
	pid=$!
	wait_sock "$pub/ctl" && sleep 0.1
	[ "$(stat -c %a "$pub/p.sock")" = 666 ] && [ "$(stat -c %a "$pub/ctl")" = 600 ] &&
		ok "--socket-mode opens device sockets, not the control socket (0600)" ||
		bad "socket modes: $(stat -c '%n %a' "$pub/p.sock" "$pub/ctl")"
	kill "$pid"; wait "$pid"; pid=
	"$VFPMD" --ctl "$pub/ctl" --ctl-mode 0666 --device "demo,name=p,socket=$pub/p.sock,pm_delays=none" \
		2>"$dir/log2" &
	pid=$!
	wait_sock "$pub/ctl" && sleep 0.1
	as_nobody "$VFPMCTL" --ctl "$pub/ctl" status p >"$dir/out" 2>&1 &&
		ok "another user reads the status" || { bad "status as another user"; cat "$dir/out"; }
	as_nobody "$VFPMCTL" --ctl "$pub/ctl" set p power_control=on >"$dir/out" 2>&1
	[ $? -eq 1 ] && grep -q "not permitted" "$dir/out" && ok "another user may not change settings (EPERM)" ||
		{ bad "set as another user"; cat "$dir/out"; }
	"$VFPMCTL" --ctl "$pub/ctl" status p | grep -q "suspended" &&
		ok "the refused set changed nothing" || bad "refused set changed the device"
	kill "$pid"; wait "$pid"; pid=
	"$VFPMD" --ctl "$pub/ctl" --ctl-group 65534 --device "demo,name=p,socket=$pub/p.sock,pm_delays=none" \
		2>"$dir/log2" &
	pid=$!
	wait_sock "$pub/ctl" && sleep 0.1
	[ "$(stat -c '%a %g' "$pub/ctl")" = "660 65534" ] && ok "--ctl-group: socket 0660 in that group" ||
		bad "ctl-group socket: $(stat -c '%a %g' "$pub/ctl")"
	as_nobody "$VFPMCTL" --ctl "$pub/ctl" set p power_control=on >"$dir/out" 2>&1 &&
		ok "a --ctl-group member changes settings" || { bad "set as group member"; cat "$dir/out"; }
	kill "$pid"; wait "$pid"; pid=
	rm -rf "$pub"
	# the default directory of a user without XDG_RUNTIME_DIR: planted by
	# another user (root here), or a symlink, is refused
	priv=/tmp/vfpm-65534
	rm -rf "$priv"
	mkdir -m 777 "$priv"
	as_nobody env -u XDG_RUNTIME_DIR -u VFPM_SOCKET timeout 5 "$VFPMD" >"$dir/out" 2>&1
	[ $? -eq 1 ] && grep -q "not a private directory" "$dir/out" && [ -z "$(ls -A "$priv")" ] &&
		ok "a default directory owned by another user is refused" || { bad "planted dir"; cat "$dir/out"; }
	rm -rf "$priv"
	ln -s "$dir" "$priv"
	as_nobody env -u XDG_RUNTIME_DIR -u VFPM_SOCKET timeout 5 "$VFPMD" >"$dir/out" 2>&1
	[ $? -eq 1 ] && grep -q "not a private directory" "$dir/out" &&
		ok "a default directory that is a symlink is refused" || { bad "symlinked dir"; cat "$dir/out"; }
	rm -f "$priv"
else
	echo "ok - permissions # SKIP needs root and setpriv"
fi

# --- vfpmd --config FILE ---
cat >"$dir/good.conf" <<EOF2
# two devices and the server's options

ctl $dir/cctl
   # an indented comment
device demo,name=c1,socket=$dir/c1.sock,pm_delays=none,platform_d3cold=on
device	demo,name=c2,socket=$dir/c2.sock,pm_delays=none,idle_d3=off
quiet
EOF2
"$VFPMD" --config "$dir/good.conf" 2>"$dir/log3" &
pid=$!
wait_sock "$dir/cctl" && wait_sock "$dir/c2.sock" && ok "--config: serves the devices and control socket it names" ||
	{ bad "--config start"; cat "$dir/log3"; }
i=0
while ! "$VFPMCTL" --ctl "$dir/cctl" status c1 2>/dev/null | grep -q "^c1  *D3cold  *suspended" && [ $i -lt 250 ]; do
	sleep 0.02; i=$((i + 1))
done
"$VFPMCTL" --ctl "$dir/cctl" status >"$dir/out"
grep -q "^c1  *D3cold  *suspended" "$dir/out" && grep -q "^c2  *D0  *active" "$dir/out" &&
	ok "--config: each device has its keys (platform_d3cold=on, idle_d3=off)" || { bad "--config keys"; cat "$dir/out"; }
grep -q "info" "$dir/log3" && bad "--config: quiet ignored" || ok "--config: quiet applies"
kill "$pid"; wait "$pid"; pid=
# the command line after --config overrides it
"$VFPMD" --config "$dir/good.conf" --ctl "$dir/cctl2" 2>"$dir/log3" &
pid=$!
wait_sock "$dir/cctl2" && [ ! -e "$dir/cctl" ] && ok "--ctl after --config overrides the file's" || bad "--config override"
kill "$pid"; wait "$pid"; pid=
conf_error() { # NAME EXIT PATTERN LINE...: a config with LINEs fails so
	name=$1 want=$2 pat=$3
	shift 3
	printf '%s\n' "$@" >"$dir/bad.conf"
	"$VFPMD" --config "$dir/bad.conf" >"$dir/out" 2>&1
	rc=$?
	[ $rc -eq "$want" ] && grep -q -- "$pat" "$dir/out" && ok "--config: $name" ||
		{ bad "--config: $name (exit $rc)"; cat "$dir/out"; }
}
conf_error "unknown option: exit 2, FILE:LINE" 2 "bad.conf:3: unknown option 'bogus'" \
	"# c" "ctl $dir/x.ctl" "bogus 1"
conf_error "option without its value" 2 "bad.conf:1: 'device' needs a value" "device"
conf_error "value of an option that takes none" 2 "bad.conf:2: 'quiet' takes no value" "" "quiet yes"
conf_error "bad value" 2 "bad.conf:1: --ctl-mode 'rw': expected octal" "ctl-mode rw"
conf_error "no nesting" 2 "bad.conf:1: unknown option 'config'" "config /etc/x"
conf_error "bad device: exit 1 and its line" 1 "bad.conf:2: this device" \
	"ctl $dir/x.ctl" "device demo,name=z,socket=$dir/z.sock,idle_d3=maybe"
"$VFPMD" --config "$dir/nonexistent.conf" >"$dir/out" 2>&1
[ $? -eq 1 ] && grep -q "nonexistent.conf: No such file" "$dir/out" && ok "--config: a missing file: exit 1" ||
	{ bad "--config missing file"; cat "$dir/out"; }

# --- --session-idle-ms: a number of milliseconds, 0 for never ---
for v in -1 x 3600001; do
	"$VFPMD" --session-idle-ms "$v" --ctl none >"$dir/out" 2>&1
	[ $? -eq 2 ] && grep -q "session-idle-ms '$v': expected 0..3600000 ms" "$dir/out" &&
		ok "--session-idle-ms $v: exit 2 and the range" || { bad "--session-idle-ms $v"; cat "$dir/out"; }
done

# --- --ctl-timeout: each request line has a deadline however slowly bytes
# trickle in (a byte every 100 ms without a newline used to hold the
# connection for ever); a whole line in time is served. ---
"$VFPMD" --ctl-timeout 0 --ctl none >"$dir/out" 2>&1
[ $? -eq 2 ] && grep -q "ctl-timeout '0'" "$dir/out" && ok "--ctl-timeout 0: exit 2" || bad "--ctl-timeout 0"
"$VFPMD" --device demo,socket="$dir/t.sock" --ctl "$dir/t.ctl" --ctl-timeout 2000 -q 2>"$dir/log4" &
pid=$!
wait_sock "$dir/t.ctl"
python3 - "$dir/t.ctl" >"$dir/out" 2>&1 <<'PY'
import socket, sys, time
path = sys.argv[1]
# a trickling peer: must be closed, bounded by 10 s (5 x the deadline)
s = socket.socket(socket.AF_UNIX)
s.connect(path)
t0 = time.monotonic()
closed = False
while time.monotonic() - t0 < 10:
    try:
        s.send(b"{")
    except OSError:
        closed = True
        break
    s.settimeout(0.1)
    try:
        if s.recv(1) == b"":
            closed = True
            break
    except socket.timeout:
        pass
print("trickler closed" if closed else "trickler still open after 10 s")
# a peer that sends a whole line, then waits, then another: each in time
c = socket.socket(socket.AF_UNIX)
c.connect(path)
c.settimeout(5)
ok = True
for _ in range(3):
    c.send(b'{"cmd":"status"}\n')
    buf = b""
    while not buf.endswith(b"\n"):
        d = c.recv(65536)
        if not d:
            ok = False
            break
        buf += d
    if not ok or b'"ok":true' not in buf:
        ok = False
        break
    time.sleep(0.3)   # under the deadline: the clock restarts at each reply
print("lines in time served" if ok else "a line in time was refused")
PY
grep -q "^trickler closed" "$dir/out" && ok "--ctl-timeout: a trickling control peer is closed" ||
	{ bad "--ctl-timeout: trickling peer"; cat "$dir/out"; }
grep -q "^lines in time served" "$dir/out" && ok "--ctl-timeout: whole lines in time are served, the clock restarts at each reply" ||
	{ bad "--ctl-timeout: lines in time"; cat "$dir/out"; }
kill "$pid"; wait "$pid" 2>/dev/null; pid=

# --- out of descriptors: the acceptor takes a pending connection with its
# reserved descriptor and closes it, logs once, and does not spin on the
# readable socket (CPU ticks stay near 0 while connections keep coming) ---
if command -v prlimit >/dev/null 2>&1; then
	prlimit --nofile=24:24 "$VFPMD" --device demo,socket="$dir/f.sock" --ctl "$dir/f.ctl" -q \
		2>"$dir/log5" &
	pid=$!
	wait_sock "$dir/f.sock"
	python3 - "$dir/f.sock" "$pid" >"$dir/out" 2>&1 <<'PY'
import socket, sys, time
path, pid = sys.argv[1], sys.argv[2]
def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
socks = []
for i in range(40):
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    socks.append(s)
time.sleep(0.3)
t0 = ticks()
time.sleep(1.0)   # a measurement window: what is measured is the absence of spinning
t1 = ticks()
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        if s.recv(1) == b"":
            closed += 1
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print("closed %d ticks %d" % (closed, t1 - t0))
PY
	set -- $(cat "$dir/out")
	[ "${1:-}" = closed ] && [ "${2:-0}" -gt 0 ] && [ "${4:-99}" -le 5 ] &&
		grep -q "out of descriptors: closing new connections" "$dir/log5" &&
		[ "$(grep -c 'out of descriptors' "$dir/log5")" -eq 1 ] &&
		ok "out of descriptors: connections closed, logged once, no spinning" ||
		{ bad "out of descriptors"; cat "$dir/out"; head -3 "$dir/log5"; }
	kill "$pid"; wait "$pid" 2>/dev/null; pid=
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
