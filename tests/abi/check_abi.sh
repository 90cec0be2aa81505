#!/bin/sh
# The ABI check: the dynamic symbols libvfpm.so defines (name@@version,
# from nm -D --defined-only) must be exactly tests/abi/libvfpm.symbols, every
# function declared VFPM_EXPORT in the SDK headers must be among them, and
# the linkage test must call each of them.
# Usage: check_abi.sh LIBVFPM.so SYMBOLS_FILE INCLUDE_DIR LINKAGE_TEST.c
set -u
LIB=$1
LIST=$2
INC=$3
LINKAGE=$4
dir=$(mktemp -d /tmp/vfpm-abi.XXXXXX)
trap 'rm -rf "$dir"' EXIT
fail=0

nm -D --defined-only "$LIB" | awk '$2 != "A" { print $3 }' | LC_ALL=C sort >"$dir/built"
LC_ALL=C sort "$LIST" >"$dir/want"
if diff -u "$dir/want" "$dir/built" >"$dir/diff"; then
	echo "ok - exports match $(basename "$LIST") ($(wc -l <"$dir/built") symbols)"
else
	echo "not ok - exports differ from $(basename "$LIST") (- committed, + built):"
	sed 's/^/    /' "$dir/diff"
	echo "    (a new symbol goes in a new node of lib/libvfpm.sym and in the list; a released one never goes away)"
	fail=1
fi

# VFPM_EXPORT declarations in the library's headers (not vfpm_model_entry,
# which a model defines, nor client.h, which is libvfpm-client's)
sed -n 's/^VFPM_EXPORT [^(]*[ *]\(vfpm_[a-z0-9_]*\)(.*/\1/p' "$INC/vfpm/device.h" "$INC/vfpm/server.h" |
	grep -v '^vfpm_model_entry$' | LC_ALL=C sort >"$dir/declared"
sed 's/@.*//' "$dir/built" | LC_ALL=C sort >"$dir/names"
missing=$(LC_ALL=C comm -23 "$dir/declared" "$dir/names")
extra=$(LC_ALL=C comm -13 "$dir/declared" "$dir/names")
if [ -z "$missing$extra" ]; then
	echo "ok - every VFPM_EXPORT declaration is exported, nothing else is"
else
	echo "not ok - declared but not exported: [$missing]; exported but not declared: [$extra]"
	fail=1
fi
grep -v '@@LIBVFPM_[0-9.]*$' "$dir/built" >"$dir/unversioned"
if [ -s "$dir/unversioned" ]; then
	echo "not ok - symbols without a LIBVFPM_ version:"; cat "$dir/unversioned"; fail=1
else
	echo "ok - every symbol has a LIBVFPM_x.y version"
fi
uncalled=
for s in $(cat "$dir/names"); do
	grep -q "\\b$s(" "$LINKAGE" || uncalled="$uncalled $s"
done
if [ -z "$uncalled" ]; then
	echo "ok - the linkage test calls every exported symbol"
else
	echo "not ok - the linkage test does not call:$uncalled"
	fail=1
fi
exit $fail
