#!/bin/sh
# vfpmd.service passes systemd-analyze verify with no complaint (a key it
# does not know is only a warning there, so any output fails), and has the
# readiness type and the hardening docs/operating.md promise.
# Usage: test_unit.sh UNIT VFPMD TYPE. Skipped (77) without systemd-analyze.
set -u
unit=$1 vfpmd=$2 type=$3
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is not installed"
	exit 77
fi
dir=$(mktemp -d /tmp/vfpm-unit.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail=0
# verify checks that ExecStart's program exists: point it at the build's
sed "s|^ExecStart=[^ ]*|ExecStart=$vfpmd|" "$unit" >"$dir/vfpmd.service"
out=$(systemd-analyze verify --man=no "$dir/vfpmd.service" 2>&1)
rc=$?
if [ $rc -eq 0 ] && [ -z "$out" ]; then
	echo "ok - systemd-analyze verify: clean"
else
	echo "not ok - systemd-analyze verify (exit $rc): $out"; fail=1
fi
for line in "Type=$type" "RuntimeDirectory=vfpm" "NoNewPrivileges=yes" "ProtectSystem=strict" \
	"PrivateTmp=yes" "UMask=0077" "RestrictAddressFamilies=AF_UNIX"; do
	if grep -qx "$line" "$unit"; then echo "ok - $line"; else echo "not ok - no $line"; fail=1; fi
done
grep -q "^ExecStart=.*/vfpmd --config .*/vfpm/devices.conf\$" "$unit" &&
	echo "ok - ExecStart reads the config file" || { echo "not ok - ExecStart"; fail=1; }
exit $fail
