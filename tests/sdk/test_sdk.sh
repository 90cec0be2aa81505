#!/bin/sh
# The SDK as a newcomer uses it: install vfpm into a temporary directory
# (meson install --destdir), build the samples from a copy outside the
# source tree with nothing but the installed headers, libraries and
# pkg-config file, then serve null.so with the installed vfpmd (--model)
# and the timer sample with the embedding program serve.c, and check them
# with the installed vfpmctl: IDs and capabilities in config space, power
# states, runtime suspend, a clean stop.
# Usage: test_sdk.sh BUILD_ROOT SAMPLES_DIR PREFIX LIBDIR BINDIR CC SANITIZE
# (SANITIZE: the build's b_sanitize; a sanitized libvfpm needs the samples
# built with the same -fsanitize)
set -u
BUILD=$1
SAMPLES=$2
PREFIX=$3
LIBDIR=$4
BINDIR=$5
CC=$6
[ "$7" = none ] || CC="$CC -fsanitize=$7"
dir=$(mktemp -d /tmp/vfpm-sdk.XXXXXX)
pass=0
fail=0
pids=

cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
	rm -rf "$dir"
}
trap cleanup EXIT

ok() { pass=$((pass + 1)); echo "ok - $1"; }
bad() { fail=$((fail + 1)); echo "not ok - $1"; }
expect() { # NAME EXPECTED COMMAND...: passes when the output is EXPECTED
	name=$1 want=$2
	shift 2
	got=$("$@" 2>&1)
	if [ "$got" = "$want" ]; then ok "$name"; else bad "$name: got '$got', want '$want'"; fi
}
wait_for() { # COMMAND...: up to 10 s for it to succeed
	i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -gt 500 ] && return 1
		sleep 0.02
	done
}
state() { # CTL DEVICE: "STATE RUNTIME" from vfpmctl status
	"$vfpmctl" --ctl "$1" status "$2" | awk -v d="$2" '$1 == d { print $2, $3 }'
}

# --- install ---
dest="$dir/dest"
if meson install -C "$BUILD" --destdir "$dest" --no-rebuild --quiet >"$dir/install.log" 2>&1; then
	ok "meson install --destdir"
else
	bad "meson install"; cat "$dir/install.log"; exit 1
fi
P="$dest$PREFIX"
L="$dest$LIBDIR"
vfpmd="$dest$BINDIR/vfpmd"
vfpmctl="$dest$BINDIR/vfpmctl"
for f in "$P/include/vfpm/device.h" "$P/include/vfpm/server.h" "$P/include/vfpm/client.h" \
	"$L/libvfpm.so.0" "$L/libvfpm.so" "$L/libvfpm-client.so.0" "$L/pkgconfig/vfpm.pc" \
	"$L/pkgconfig/vfpm-client.pc" "$vfpmd" "$vfpmctl"; do
	[ -e "$f" ] && ok "installed ${f#$dest}" || bad "not installed: ${f#$dest}"
done
soname=$(readelf -d "$L/libvfpm.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = libvfpm.so.0 ] && ok "soname libvfpm.so.0" || bad "soname is '$soname'"

# --- build the samples out of tree, with pkg-config only ---
export PKG_CONFIG_PATH="$L/pkgconfig"
unset PKG_CONFIG_LIBDIR PKG_CONFIG_SYSROOT_DIR
pc="pkg-config --define-variable=prefix=$P"
cflags=$($pc --cflags vfpm) && libs=$($pc --libs vfpm) && ok "pkg-config --cflags --libs vfpm" ||
	bad "pkg-config vfpm"
case "$cflags $libs" in
*"$P/include"*"-L$L"*"-lvfpm"*) ok "flags point into the installed tree: $cflags $libs" ;;
*) bad "flags: $cflags $libs" ;;
esac
[ "$($pc --modversion vfpm)" = "$($pc --modversion vfpm-client)" ] && ok "vfpm-client.pc" ||
	bad "vfpm-client.pc"
work="$dir/work"
mkdir "$work"
cp "$SAMPLES/null.c" "$SAMPLES/timer.c" "$SAMPLES/serve.c" "$work/"
cd "$work" || exit 1
# shellcheck disable=SC2086
if $CC -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -shared -fPIC -o null.so null.c \
	$cflags $libs >build.log 2>&1 &&
	$CC -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -o serve serve.c timer.c \
		$cflags $libs -pthread >>build.log 2>&1; then
	ok "null.so and serve+timer build out of tree"
else
	bad "out-of-tree build"; cat build.log; exit 1
fi
export LD_LIBRARY_PATH="$L"
ldd ./null.so | grep -q "libvfpm.so.0 => $L/libvfpm.so.0" && ok "null.so uses the installed libvfpm" ||
	bad "null.so resolves libvfpm elsewhere: $(ldd ./null.so | grep vfpm)"
ldd "$vfpmd" | grep -q "libvfpm.so.0 => $L/libvfpm.so.0" && ok "vfpmd uses the installed libvfpm" ||
	bad "vfpmd resolves libvfpm elsewhere"

# --- vfpmd --model null.so ---
"$vfpmd" --model ./null.so --list-models >out 2>&1 && grep -q "^null " out &&
	ok "vfpmd --model null.so --list-models" || { bad "--list-models"; cat out; }
"$vfpmd" --model ./null.so --device "null,socket=$dir/null.sock,pm_delays=none" \
	--ctl "$dir/vfpmd.ctl" -q 2>"$dir/vfpmd.log" &
pids="$pids $!"
vpid=$!
wait_for test -S "$dir/null.sock" && wait_for test -S "$dir/vfpmd.ctl" && ok "vfpmd serves null" ||
	{ bad "vfpmd start"; cat "$dir/vfpmd.log"; exit 1; }
n="--socket $dir/null.sock"
expect "null: vendor and device ID" 0x10f11b36 "$vfpmctl" $n cfg-read 0x0 4
expect "null: class ff0000, revision 0" 0xff000000 "$vfpmctl" $n cfg-read 0x8 4
expect "null: capability list starts at 0x40" 0x40 "$vfpmctl" $n cfg-read 0x34 1
expect "null: 0x40 is PM (id 1), the last capability" 0x0001 "$vfpmctl" $n cfg-read 0x40 2
expect "null: PMC: no D1, no D2, version 3" 0x0003 "$vfpmctl" $n cfg-read 0x42 2
expect "null: no extended capability" 0x00000000 "$vfpmctl" $n cfg-read 0x100 4
"$vfpmctl" $n info >out 2>&1 && grep -q "region 0" out && ok "null: info lists BAR0" ||
	{ bad "null: info"; cat out; }
wait_for sh -c "[ \"\$(\"$vfpmctl\" --ctl \"$dir/vfpmd.ctl\" status null | awk '\$1 == \"null\" { print \$2, \$3 }')\" = 'D3hot suspended' ]"
expect "null: idle device runtime-suspended to D3hot" "D3hot suspended" state "$dir/vfpmd.ctl" null
"$vfpmctl" --ctl "$dir/vfpmd.ctl" set null power_control=on >/dev/null
expect "null: power_control=on resumes it to D0" "D0 active" state "$dir/vfpmd.ctl" null
"$vfpmctl" --ctl "$dir/vfpmd.ctl" set null power_control=auto >/dev/null
wait_for sh -c "[ \"\$(\"$vfpmctl\" --ctl \"$dir/vfpmd.ctl\" status null | awk '\$1 == \"null\" { print \$2, \$3 }')\" = 'D3hot suspended' ]"
expect "null: power_control=auto lets it suspend again" "D3hot suspended" state "$dir/vfpmd.ctl" null
kill -TERM "$vpid"
wait "$vpid"
rc=$?
[ $rc -eq 0 ] && [ ! -e "$dir/null.sock" ] && ok "vfpmd stops cleanly (exit 0, socket removed)" ||
	{ bad "vfpmd stop: exit $rc"; cat "$dir/vfpmd.log"; }

# --- the embedding program serving the timer sample ---
./serve "$dir/timer.sock" "$dir/serve.ctl" 2>"$dir/serve.log" &
pids="$pids $!"
spid=$!
wait_for test -S "$dir/timer.sock" && wait_for test -S "$dir/serve.ctl" && ok "serve serves timer" ||
	{ bad "serve start"; cat "$dir/serve.log"; exit 1; }
t="--socket $dir/timer.sock"
expect "timer: vendor and device ID" 0x10f21b36 "$vfpmctl" $t cfg-read 0x0 4
expect "timer: first capability at 0x40" 0x40 "$vfpmctl" $t cfg-read 0x34 1
"$vfpmctl" $t dump --lspci >out 2>&1
grep -q "Power Management version 3" out && grep -q "MSI: Enable- Count=1/1" out &&
	ok "timer: lspci shows PM and one MSI vector" || { bad "timer: lspci"; cat out; }
wait_for sh -c "[ \"\$(\"$vfpmctl\" --ctl \"$dir/serve.ctl\" status timer | awk '\$1 == \"timer\" { print \$2, \$3 }')\" = 'D3hot suspended' ]"
expect "timer: idle device runtime-suspended to D3hot" "D3hot suspended" state "$dir/serve.ctl" timer
"$vfpmctl" --ctl "$dir/serve.ctl" status --json timer >out 2>&1
grep -q '"model": "timer"' out && grep -q '"model_violations": 0' out &&
	ok "timer: status --json names the model, no violations" || { bad "timer: status --json"; cat out; }
kill -TERM "$spid"
wait "$spid"
rc=$?
[ $rc -eq 0 ] && [ ! -e "$dir/timer.sock" ] && [ ! -e "$dir/serve.ctl" ] &&
	ok "serve stops on SIGTERM (exit 0, sockets removed)" || { bad "serve stop: exit $rc"; cat "$dir/serve.log"; }
pids=

echo "# $pass passed, $fail failed"
[ $fail -eq 0 ]
