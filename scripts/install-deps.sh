#!/bin/sh
# Installs the Debian 12 packages vfpm needs to build, test and run.
# Idempotent: does nothing when everything is present. As root it uses
# apt-get; otherwise it names what is missing and how to install it.
set -eu

# build: gcc clang make meson ninja-build pkg-config and the -dev libraries;
# tests: pciutils (lspci decodes config dumps), python3 and
# python3-prometheus-client (metrics, energy, timeline, reload tests and the
# core-layers check), util-linux (setpriv for the permission tests), groff-base
# and man-db (man pages checked for warnings), systemd (systemd-analyze verify
# of the unit); libclang-rt-14-dev: the sanitizer and libFuzzer runtimes.
PKGS="gcc clang make meson ninja-build pkg-config libjson-c-dev libcmocka-dev \
linux-libc-dev pciutils libclang-rt-14-dev python3 python3-prometheus-client \
scdoc libsystemd-dev libcairo2-dev util-linux groff-base man-db systemd"

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "vfpm: installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
	echo "vfpm: missing packages:$missing" >&2
	echo "vfpm: install them with: sudo apt-get install$missing" >&2
	exit 1
fi
