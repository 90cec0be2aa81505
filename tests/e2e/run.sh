#!/bin/bash
# vfpm end-to-end test: a Linux guest under QEMU (>= 10.1) drives a vfpm demo
# device through QEMU's vfio-user-pci client and an emulated intel-iommu, and
# every check is asserted from both sides: the guest's output on the serial
# console and vfpmd's control plane. See docs/e2e.md.
#
#   tests/e2e/run.sh                     (QEMU=/path/to/qemu-system-x86_64 in the environment)
#   make check-e2e QEMU=/path/to/qemu-system-x86_64
#
# Environment: QEMU (required, else SKIP), BUILD (default build), E2E_TIMEOUT
# (seconds for the whole guest run, default 300), E2E_FIRMWARE_DIR (colon
# separated -L directories; default: Debian's seabios and qemu-system-data),
# E2E_VERBOSE=1 (guest kernel messages on the console, QEMU command shown),
# E2E_GUEST_RAM=memfd|private (default memfd, see below), E2E_VFPMD_WRAP (a
# command prefix for vfpmd, e.g. "strace -f -o FILE").
#
# Output: one line per check (PASS name / FAIL name: why), then
# "N passed, N failed". Exit status 0 when everything passed or the suite was
# skipped (no QEMU, QEMU older than 10.1, no vfio-user-pci), 1 otherwise.
set -u
set -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
WORK=$BUILD/e2e
LOGS=$WORK/logs
QEMU=${QEMU:-}
E2E_TIMEOUT=${E2E_TIMEOUT:-300}
E2E_VERBOSE=${E2E_VERBOSE:-0}
T_START=$(date +%s)

say() { echo "e2e: $*" >&2; }
die() { echo "e2e: error: $*" >&2; exit 1; }
skip() { echo "SKIP: $*"; exit 0; }

# ---------------------------------------------------------------- QEMU gate
[ -n "$QEMU" ] || skip "no QEMU given: run 'make check-e2e QEMU=/path/to/qemu-system-x86_64' (QEMU >= 10.1 with vfio-user-pci)"
if [ ! -x "$QEMU" ]; then
	q=$(command -v "$QEMU" 2>/dev/null) || skip "QEMU '$QEMU' is not an executable"
	QEMU=$q
fi
QEMU_VERSION=$("$QEMU" --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)\?\).*/\1/p' | head -n1)
[ -n "$QEMU_VERSION" ] || skip "cannot tell the version of $QEMU"
qmaj=${QEMU_VERSION%%.*}
qmin=${QEMU_VERSION#*.}; qmin=${qmin%%.*}
if [ "$qmaj" -lt 10 ] || { [ "$qmaj" -eq 10 ] && [ "$qmin" -lt 1 ]; }; then
	skip "$QEMU is QEMU $QEMU_VERSION; vfio-user-pci needs QEMU >= 10.1"
fi
QEMU_DEVICES=$("$QEMU" -device help 2>/dev/null)
grep -q '"vfio-user-pci"' <<<"$QEMU_DEVICES" ||
	skip "$QEMU (QEMU $QEMU_VERSION) has no vfio-user-pci device (QEMU >= 10.1 built for x86_64 Linux hosts with the default CONFIG_VFIO_USER has it)"

# ---------------------------------------------------------------- packages
# cpio (initramfs), seabios + qemu-system-data (firmware for a hand-built QEMU
# without installed blobs), gcc (static guest program), python3 (JSON).
APT_UPDATED=0
need_pkgs() {
	local missing="" p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" -eq 0 ]; then
		say "installing:$missing"
		if [ $APT_UPDATED = 0 ]; then apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1; fi
		# shellcheck disable=SC2086
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
			die "apt-get install$missing failed"
	else
		die "missing packages:$missing; install them with: sudo apt-get install$missing"
	fi
}
need_pkgs cpio gzip gcc libc6-dev linux-libc-dev binutils python3 dpkg
if [ -z "${E2E_FIRMWARE_DIR:-}" ]; then
	need_pkgs seabios qemu-system-data
	E2E_FIRMWARE_DIR=/usr/share/seabios:/usr/share/qemu
fi

# ---------------------------------------------------------------- vfpm
VFPMD=$BUILD/tools/vfpmd
VFPMCTL=$BUILD/tools/vfpmctl/vfpmctl
mkdir -p "$WORK/debs" "$LOGS"
if command -v ninja >/dev/null && [ -f "$BUILD/build.ninja" ]; then
	ninja -C "$BUILD" >"$LOGS/ninja.log" 2>&1 || { cat "$LOGS/ninja.log" >&2; die "ninja -C $BUILD failed"; }
fi
if [ ! -x "$VFPMD" ] || [ ! -x "$VFPMCTL" ]; then die "$VFPMD or $VFPMCTL missing: run 'make build' first"; fi

# ---------------------------------------------------------------- guest pieces (Debian packages)
apt_download() { # PKG: fetch PKG's .deb into $WORK/debs unless present
	local pkg=$1
	ls "$WORK/debs/${pkg}_"*.deb >/dev/null 2>&1 && return 0
	if ! (cd "$WORK/debs" && apt-get download "$pkg" >"$LOGS/apt-download.log" 2>&1); then
		# a stale package list names a version the mirror no longer has
		if [ $APT_UPDATED = 1 ] || [ "$(id -u)" -ne 0 ]; then
			die "apt-get download $pkg failed (see $LOGS/apt-download.log)"
		fi
		apt-get update -qq >/dev/null 2>&1
		APT_UPDATED=1
		(cd "$WORK/debs" && apt-get download "$pkg" >"$LOGS/apt-download.log" 2>&1) ||
			die "apt-get download $pkg failed (see $LOGS/apt-download.log)"
	fi
}
# the current Debian 12 kernel: what linux-image-amd64 depends on
KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
if [ -z "$KPKG" ] && [ "$(id -u)" -eq 0 ]; then
	apt-get update -qq >/dev/null 2>&1; APT_UPDATED=1
	KPKG=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1)
fi
[ -n "$KPKG" ] || die "cannot find the kernel package linux-image-amd64 depends on (apt-get update?)"
KVER=${KPKG#linux-image-}
apt_download "$KPKG"
apt_download busybox-static

GROOT=$WORK/root
if [ ! -f "$GROOT/boot/vmlinuz-$KVER" ] || [ ! -x "$GROOT/bin/busybox" ]; then
	rm -rf "$GROOT"
	mkdir -p "$GROOT"
	for deb in "$WORK/debs/${KPKG}_"*.deb "$WORK/debs/busybox-static_"*.deb; do
		dpkg-deb -x "$deb" "$GROOT" || die "dpkg-deb -x $deb failed"
	done
fi
KERNEL=$GROOT/boot/vmlinuz-$KVER
MODDIR=$GROOT/lib/modules/$KVER
if [ ! -f "$KERNEL" ] || [ ! -d "$MODDIR" ]; then die "no kernel or modules in $GROOT"; fi

# ---------------------------------------------------------------- initramfs
STAGE=$WORK/initramfs
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/modules" "$STAGE/dev" "$STAGE/proc" "$STAGE/sys" "$STAGE/tmp"
cp "$GROOT/bin/busybox" "$STAGE/bin/busybox"
ln -s busybox "$STAGE/bin/sh"
install -m 0755 "$HERE/guest/init.sh" "$STAGE/init"
gcc -static -O2 -Wall -Wextra -o "$STAGE/e2e-guest" "$HERE/guest/e2e-guest.c" ||
	die "building the guest program failed"

# the vfio modules and what they depend on (modules.dep is made by depmod at
# install time, so the dependencies are read from each module's .modinfo)
declare -A MOD_DONE=()
MOD_ORDER=()
mod_file() { # NAME -> path of its .ko[.xz|.zst|.gz], '-' and '_' alike
	local n
	# shellcheck disable=SC2001 # bash's ${//} cannot turn both into [-_]
	n=$(sed 's/[-_]/[-_]/g' <<<"$1")
	find "$MODDIR/kernel" -regextype posix-extended -regex ".*/${n}\.ko(\.xz|\.zst|\.gz)?" | head -n1
}
mod_plain() { # FILE -> an uncompressed copy in the stage, echo its name
	local f=$1 b
	b=$(basename "$f"); b=${b%.xz}; b=${b%.zst}; b=${b%.gz}
	case $f in
	*.xz) xz -dc "$f" >"$STAGE/modules/$b" ;;
	*.zst) zstd -qdc "$f" >"$STAGE/modules/$b" ;;
	*.gz) gzip -dc "$f" >"$STAGE/modules/$b" ;;
	*) cp "$f" "$STAGE/modules/$b" ;;
	esac || die "cannot decompress $f"
	echo "$b"
}
mod_add() { # NAME: add NAME after its dependencies
	local name=${1//-/_} f b dep deps
	[ -n "${MOD_DONE[$name]:-}" ] && return 0
	MOD_DONE[$name]=1
	f=$(mod_file "$1")
	[ -n "$f" ] || die "kernel module $1 not found under $MODDIR"
	b=$(mod_plain "$f")
	deps=$(strings -a "$STAGE/modules/$b" | sed -n 's/^depends=//p' | head -n1)
	for dep in ${deps//,/ }; do mod_add "$dep"; done
	MOD_ORDER+=("$b")
}
mod_add vfio
mod_add vfio_iommu_type1
[ -n "$(mod_file iommufd)" ] && mod_add iommufd
mod_add vfio-pci
printf '%s\n' "${MOD_ORDER[@]}" >"$STAGE/modules.list"

INITRD=$WORK/initramfs.cpio.gz
(cd "$STAGE" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$INITRD" ||
	die "building the initramfs failed"
say "guest: $KPKG, busybox-static, modules: ${MOD_ORDER[*]}"

# ---------------------------------------------------------------- run state and cleanup
RUN=$(mktemp -d /tmp/vfpm-e2e.XXXXXX)
SOCK=$RUN/demo.sock
CTL=$RUN/vfpmd.ctl
SERIAL=$LOGS/serial.log
VLOG=$LOGS/vfpmd.log
QLOG=$LOGS/qemu.log
rm -f "$SERIAL" "$VLOG" "$QLOG"
VFPMD_PID="" QEMU_PID="" TAIL_PID=""
alive() { # PID: running (not merely a zombie)
	[ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}
cleanup() {
	[ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null && sleep 0.5 && kill -9 "$QEMU_PID" 2>/dev/null
	[ -n "$TAIL_PID" ] && kill "$TAIL_PID" 2>/dev/null
	if [ -n "$VFPMD_PID" ]; then   # with E2E_VFPMD_WRAP, vfpmd is the wrapper's child
		for c in $(pgrep -P "$VFPMD_PID" 2>/dev/null); do kill "$c" 2>/dev/null; done
	fi
	if [ -n "$VFPMD_PID" ] && kill "$VFPMD_PID" 2>/dev/null; then
		# SIGTERM: vfpmd signals REQ, closes the sessions, removes its sockets
		for _ in $(seq 50); do alive "$VFPMD_PID" || break; sleep 0.1; done
		kill -9 "$VFPMD_PID" 2>/dev/null
		wait "$VFPMD_PID" 2>/dev/null
	fi
	exec 3>&- 4<&- 2>/dev/null
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- results
NPASS=0 NFAIL=0
declare -A SEEN=()
pass() { SEEN[$1]=1; NPASS=$((NPASS + 1)); echo "PASS $1"; }
fail() { SEEN[$1]=1; NFAIL=$((NFAIL + 1)); echo "FAIL $1: $2"; }
result() { if [ "$2" = ok ]; then pass "$1"; else fail "$1" "$3"; fi; }

# ---------------------------------------------------------------- control plane
ctl() { # JSON request line -> reply line
	python3 - "$CTL" "$1" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    d = s.recv(65536)
    if not d:
        break
    buf += d
print(buf.decode().strip())
EOF
}
# status of device demo as "key=value" lines (power_state, runtime_status,
# client_connected, usage_count, usage_underflows, suspends, resumes)
dev_status() {
	ctl '{"cmd":"status"}' | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
d = [x for x in r["devices"] if x["name"] == "demo"][0]
c = d["counters"]
print("power_state=%s runtime_status=%s client_connected=%s usage_count=%d usage_underflows=%d suspends=%d resumes=%d"
      % (d["power_state"], d["runtime_status"], str(d["client_connected"]).lower(), d["usage_count"],
         c["usage_underflows"], c["suspends"], c["resumes"]))'
}
cfg_read() { # OFF LEN -> value (control plane config access: never resumes a D3hot device)
	ctl "{\"cmd\":\"config-read\",\"device\":\"demo\",\"offset\":$1,\"len\":$2}" |
		python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); print(r["value"] if r.get("ok") else "error:%s" % r.get("error"))'
}
field() { # STATUS KEY -> value
	local kv
	for kv in $1; do [ "${kv%%=*}" = "$2" ] && { echo "${kv#*=}"; return; }; done
}
# wait_status NAME SECONDS CONDITION... : CONDITION is key=value (value may be a|b)
wait_status() {
	local name=$1 secs=$2 st cond ok k v i
	shift 2
	for ((i = 0; i <= secs * 10; i++)); do
		st=$(dev_status 2>/dev/null) || st=""
		ok=1
		for cond in "$@"; do
			k=${cond%%=*} v=${cond#*=}
			[[ "|$v|" == *"|$(field "$st" "$k")|"* ]] || { ok=0; break; }
		done
		[ $ok = 1 ] && { pass "$name"; return 0; }
		sleep 0.1
	done
	fail "$name" "control plane shows '${st:-no answer}' after ${secs}s, expected $*"
	return 1
}

# ---------------------------------------------------------------- vfpmd
# shellcheck disable=SC2086 # E2E_VFPMD_WRAP: a command prefix, e.g. "strace -f -o /tmp/t"
${E2E_VFPMD_WRAP:-} "$VFPMD" --socket "$SOCK" --ctl "$CTL" -vv 2>"$VLOG" &
VFPMD_PID=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && [ -S "$CTL" ] && break; sleep 0.1; done
if [ ! -S "$SOCK" ] || [ ! -S "$CTL" ]; then cat "$VLOG" >&2; die "vfpmd did not start"; fi
wait_status host-idle-before-boot 5 client_connected=false runtime_status=suspended power_state=D3hot

# ---------------------------------------------------------------- QEMU
mkfifo "$RUN/qemu.in"
exec 3<>"$RUN/qemu.in"
FWOPTS=()
IFS=: read -r -a fwdirs <<<"$E2E_FIRMWARE_DIR"
for d in "${fwdirs[@]}"; do [ -n "$d" ] && FWOPTS+=(-L "$d"); done
LOGLEVEL=1
[ "$E2E_VERBOSE" = 1 ] && LOGLEVEL=7
# Guest RAM is a shared memfd by default, as vfio-user deployments have it:
# QEMU passes its descriptor with DMA_MAP and vfpmd reaches guest memory
# directly. E2E_GUEST_RAM=private leaves RAM anonymous, so every DMA of the
# device travels as DMA_READ/DMA_WRITE messages through QEMU (docs/e2e.md).
# TCG: no /dev/kvm needed. (Under KVM the vIOMMU's interrupt remapping would
# need -M q35,kernel-irqchip=split.)
ACCEL=tcg MACHINE=q35
# shellcheck disable=SC2054 # the commas are QEMU's
case ${E2E_GUEST_RAM:-memfd} in
memfd) MEMOPTS=(-object memory-backend-memfd,id=ram0,size=1G,share=on -M "$MACHINE",memory-backend=ram0) ;;
private) MEMOPTS=(-M "$MACHINE") ;;
*) die "E2E_GUEST_RAM must be memfd or private" ;;
esac
# shellcheck disable=SC2054 # the commas are QEMU's
QEMU_ARGS=("${FWOPTS[@]}" -accel "$ACCEL" "${MEMOPTS[@]}" -cpu max -smp 1 -m 1G
	-nographic -no-reboot -vga none -nic none
	-device intel-iommu,intremap=on,caching-mode=on
	-kernel "$KERNEL" -initrd "$INITRD"
	-append "console=ttyS0 intel_iommu=on panic=-1 loglevel=$LOGLEVEL"
	-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"path\":\"$SOCK\",\"type\":\"unix\"}}")
[ "$E2E_VERBOSE" = 1 ] && say "$QEMU ${QEMU_ARGS[*]}"
"$QEMU" "${QEMU_ARGS[@]}" <&3 >"$SERIAL" 2>"$QLOG" &
QEMU_PID=$!

# ---------------------------------------------------------------- host side of each guest hold
host_check() { # TAG
	case $1 in
	enum) wait_status host-client-connected 5 client_connected=true runtime_status=active power_state=D0 ;;
	pmcsr-d3hot) wait_status pmcsr-d3hot-host 5 power_state=D3hot client_connected=true ;;
	pmcsr-d0) wait_status pmcsr-d0-host 5 power_state=D0 client_connected=true ;;
	rpm-suspended) wait_status rpm-host-d3hot 5 power_state=D3hot client_connected=true ;;
	rpm-resumed) wait_status rpm-host-d0 5 power_state=D0 client_connected=true ;;
	*) say "unknown hold '$1'" ;;
	esac
}

# every check the guest reports (a missing one is a failure)
GUEST_CHECKS="enum-id enum-pm-cap enum-msix-cap enum-pcie-cap enum-intx-pin guest-iommu-dma guest-bind-vfio-pci
dma-msix-setup dma-msix-irq-1 dma-msix-copy-1 dma-msix-irq-2 dma-msix-copy-2
dma-intx-setup dma-intx-irq-1 dma-intx-copy-1 dma-intx-irq-2 dma-intx-copy-2 dma-intx-deasserted
pmcsr-d3hot-guest pmcsr-d0-guest pmcsr-d0-bar-access
flr-method flr-vfio flr-sysfs
rpm-guest-suspended rpm-guest-d3hot rpm-guest-resumed poweroff-prepare"

# ---------------------------------------------------------------- follow the serial console
mkfifo "$RUN/serial.pipe"
tail -n +1 -F "$SERIAL" >"$RUN/serial.pipe" 2>/dev/null &
TAIL_PID=$!
exec 4<"$RUN/serial.pipe"
DEADLINE=$(($(date +%s) + E2E_TIMEOUT))
BOOTED=0 POWEROFF=0 INDMESG=0 LAST="" PARTIAL=""
while :; do
	# the console arrives a byte at a time: a read that times out keeps its
	# partial line, to be completed by the next one
	if ! IFS= read -r -t 2 -u 4 chunk; then
		PARTIAL+=$chunk
		kill -0 "$QEMU_PID" 2>/dev/null || break
		if [ "$(date +%s)" -ge "$DEADLINE" ]; then
			fail guest-run "timeout: the guest did not finish within ${E2E_TIMEOUT}s (last line: ${LAST:-none})"
			break
		fi
		continue
	fi
	line=$PARTIAL$chunk
	PARTIAL=""
	line=${line//$'\r'/}
	[ -n "$line" ] && LAST=$line
	[ "$E2E_VERBOSE" = 1 ] && echo "guest| $line" >&2
	case $line in
	*E2E-DMESG-BEGIN*) INDMESG=1; continue ;;
	*E2E-DMESG-END*) INDMESG=0; continue ;;
	esac
	[ $INDMESG = 1 ] && continue
	case $line in
	*"E2E-BOOT "*) BOOTED=1 ;;
	*"E2E: PASS "*) n=${line#*E2E: PASS }; pass "${n%% *}" ;;
	*"E2E: FAIL "*) n=${line#*E2E: FAIL }; fail "${n%%:*}" "${n#*: }" ;;
	*"E2E: info "*) [ "$E2E_VERBOSE" = 1 ] || echo "  guest: ${line#*E2E: info }" ;;
	*"E2E-HOLD "*) tag=${line#*E2E-HOLD }; tag=${tag%% *}; host_check "$tag"; echo "ack $tag" >&3 ;;
	*E2E-POWEROFF*) POWEROFF=1 ;;
	esac
done

# QEMU exits on the guest's poweroff
for _ in $(seq 300); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
	fail guest-poweroff "QEMU still running 30 s after the guest's last output"
	kill "$QEMU_PID" 2>/dev/null
	wait "$QEMU_PID" 2>/dev/null
	QRC=killed
else
	wait "$QEMU_PID"
	QRC=$?
fi
QEMU_PID=""
[ $BOOTED = 1 ] || fail guest-boot "the guest never ran /init (QEMU exit $QRC): $(tail -n 5 "$QLOG" "$SERIAL" 2>/dev/null | tr '\n' ' ')"
for c in $GUEST_CHECKS; do
	[ -n "${SEEN[$c]:-}" ] || fail "$c" "not reported by the guest (last guest line: ${LAST:-none})"
done
if [ $POWEROFF = 1 ] && [ "$QRC" = 0 ]; then
	pass guest-poweroff
elif [ -z "${SEEN[guest-poweroff]:-}" ]; then
	fail guest-poweroff "poweroff reached: $POWEROFF, QEMU exit status $QRC ($(tail -n 3 "$QLOG" | tr '\n' ' '))"
fi

# ---------------------------------------------------------------- after the guest: reset and suspended
wait_status poweroff-host-suspended 10 client_connected=false runtime_status=suspended "power_state=D3hot|D3cold"
cmd=$(cfg_read 4 2)
if grep -q 'demo: reset (client disconnected)' "$VLOG" && [[ $cmd =~ ^[0-9]+$ ]] && (((cmd & 6) == 0)); then
	pass poweroff-host-reset
else
	fail poweroff-host-reset "COMMAND reads '$cmd' (MEM|MASTER must be clear), vfpmd log: $(grep -c 'reset (client disconnected)' "$VLOG") 'reset (client disconnected)' line(s)"
fi
st=$(dev_status 2>/dev/null)
result host-no-usage-underflow "$([ "$(field "$st" usage_underflows)" = 0 ] && echo ok)" "usage_underflows $(field "$st" usage_underflows)"

# ---------------------------------------------------------------- summary
T_END=$(date +%s)
echo "QEMU $QEMU_VERSION ($QEMU, $ACCEL, guest RAM ${E2E_GUEST_RAM:-memfd}), guest kernel $KVER, $((T_END - T_START)) s; logs in $LOGS"
if [ $NFAIL -gt 0 ]; then
	echo "vfpmd warnings/errors:"
	grep -E 'vfpmd: (warning|error)' "$VLOG" | sort | uniq -c | sort -rn | head -n 20 | sed 's/^/  /'
fi
echo "$NPASS passed, $NFAIL failed"
[ $NFAIL -eq 0 ]
