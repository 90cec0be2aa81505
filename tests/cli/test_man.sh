#!/bin/sh
# The man pages render without a single warning, by groff's own check and
# by man's, and have the sections every man page has.
# Usage: test_man.sh PAGE...
set -u
fail=0
for page in "$@"; do
	name=$(basename "$page")
	out=$(groff -ww -z -man "$page" 2>&1)
	if [ -n "$out" ]; then
		echo "not ok - groff -ww -z -man $name: $out"; fail=1
	else
		echo "ok - groff -ww -z -man $name: no warning"
	fi
	if command -v man >/dev/null 2>&1; then
		out=$(MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
		if [ -n "$out" ]; then
			echo "not ok - man --warnings -l $name: $out"; fail=1
		else
			echo "ok - man --warnings -l $name: no warning"
		fi
	fi
	for sec in NAME SYNOPSIS DESCRIPTION "SEE ALSO"; do
		if grep -q "^\.SH \"*$sec\"*\$" "$page"; then
			echo "ok - $name has $sec"
		else
			echo "not ok - $name lacks $sec"; fail=1
		fi
	done
done
exit $fail
