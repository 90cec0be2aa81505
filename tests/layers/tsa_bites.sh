#!/bin/sh
# The lock annotations bite: every case of tsa_misuse.c must be refused by
# clang -Wthread-safety -Werror (and the file itself compiles without a
# case, so a refusal is the analysis, not a typo). Usage: CC SRCDIR
cc=$1 src=$2
flags="-std=gnu11 -D_GNU_SOURCE -fsyntax-only -Wthread-safety -Werror -I$src/include -I$src/lib"
if ! $cc $flags $(pkg-config --cflags json-c 2>/dev/null) -DCASE=0 "$src/tests/layers/tsa_misuse.c"; then
	echo "FAIL: tsa_misuse.c does not compile without a case"
	exit 1
fi
fail=0
for c in 1 2 3 4 5; do
	if $cc $flags $(pkg-config --cflags json-c 2>/dev/null) -DCASE=$c "$src/tests/layers/tsa_misuse.c" 2>/dev/null; then
		echo "not ok - case $c compiled: the analysis missed it"
		fail=1
	else
		echo "ok - case $c refused"
	fi
done
exit $fail
