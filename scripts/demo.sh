#!/bin/sh
# make demo: start vfpmd with the default device on a private socket, show
# it with vfpmctl and lspci, drive a DMA copy, then stop the server.
set -eu
BUILD=${1:-build}
dir=$(mktemp -d /tmp/vfpm-demo.XXXXXX)
sock="$dir/demo.sock"
log="$dir/vfpmd.log"

cleanup() {
	[ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

ctl="$dir/vfpmd.ctl"
pf="$dir/pf.sock"
echo "== vfpmd --ctl $ctl --device demo,socket=$sock,platform_d3cold=on,nosoftrst=off"
echo "         --device demo,name=pf,socket=$pf,total_vfs=4"
"$BUILD/tools/vfpmd" --ctl "$ctl" \
	--device "demo,socket=$sock,platform_d3cold=on,nosoftrst=off" \
	--device "demo,name=pf,socket=$pf,total_vfs=4" 2>"$log" &
pid=$!
i=0
while [ ! -S "$sock" ]; do
	i=$((i + 1))
	[ "$i" -gt 100 ] && { cat "$log"; echo "vfpmd did not start" >&2; exit 1; }
	sleep 0.05
done

echo "== vfpmctl info"
"$BUILD/tools/vfpmctl/vfpmctl" --socket "$sock" info
echo
echo "== config space, decoded by lspci -vvv -F"
"$BUILD/tools/vfpmctl/vfpmctl" --socket "$sock" dump > "$dir/config.dump"
if command -v lspci >/dev/null 2>&1; then
	lspci -vvv -F "$dir/config.dump" 2>/dev/null   # (no kernel modules to name here)
else
	cat "$dir/config.dump"
fi
echo
echo "== vfpm-demo: BAR access, mmap, DMA with MSI-X, power management, SR-IOV"
"$BUILD/tools/vfpm-demo" --ctl "$ctl" --pf "$pf" pf "$sock"
echo
echo "== vfpmctl status"
"$BUILD/tools/vfpmctl/vfpmctl" --ctl "$ctl" status
echo
echo "== vfpmctl events demo: what the tour did to the demo device's power"
"$BUILD/tools/vfpmctl/vfpmctl" --ctl "$ctl" events demo
echo
# the tour's power history as a picture, kept after the demo (beside the
# build, or where VFPM_DEMO_TIMELINE says: .svg or .png)
timeline=${VFPM_DEMO_TIMELINE:-$BUILD/demo-timeline.svg}
echo "== vfpmctl timeline -o $timeline: every device's D-states, wakeups, resets, clients"
if "$BUILD/tools/vfpmctl/vfpmctl" --ctl "$ctl" timeline -o "$timeline" 2>"$dir/timeline.err"; then
	drawn=yes
else
	cat "$dir/timeline.err" >&2
	drawn=
fi
echo
echo "== stopping vfpmd (SIGTERM)"
kill "$pid"
wait "$pid"
pid=
[ -e "$sock" ] && { echo "socket file left behind" >&2; exit 1; }
echo "vfpmd exited cleanly and removed $sock"
if [ -n "$drawn" ]; then
	echo "the timeline of this tour is in $(cd "$(dirname "$timeline")" && pwd)/$(basename "$timeline")"
else
	echo "no timeline: vfpmctl could not draw it (see above)"
fi
