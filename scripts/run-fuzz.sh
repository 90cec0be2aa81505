#!/bin/sh
# Bounded fuzzing: runs every libFuzzer target of a fuzz build, one after
# another, sharing SECONDS between them (at least 5 s each), each on a
# scratch copy of its seed corpus tests/fuzz/corpus/TARGET (TARGET: the
# program's name without "fuzz_"; the checked-in seeds are never modified).
#
#   scripts/run-fuzz.sh BUILD_DIR SECONDS
#
# For long runs of one target (hours, corpus kept) see docs/security.md.
#
# Prints "fuzz: OK <target> (<execs> execs)" or "fuzz: FAILED <target>" per
# target and exits non-zero if any target crashed (or did not run). Crash
# reproducers are kept in $FUZZ_ARTIFACTS (default BUILD_DIR/fuzz-artifacts).
set -u

if [ $# -ne 2 ]; then
	echo "usage: $0 BUILD_DIR SECONDS" >&2
	exit 2
fi
build=$1
secs=$2
case $secs in
	''|*[!0-9]*) echo "$0: SECONDS must be a whole number" >&2; exit 2 ;;
esac

src=$(cd "$(dirname "$0")/.." && pwd)
targets=$(find "$build/tests/fuzz" -maxdepth 1 -type f -name 'fuzz_*' -perm -u+x 2>/dev/null | sort)
if [ -z "$targets" ]; then
	echo "fuzz: FAILED no fuzz targets in $build/tests/fuzz (configure with CC=clang -Dfuzz=true)"
	exit 1
fi
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
mkdir -p "$artifacts" && artifacts=$(cd "$artifacts" && pwd) || exit 1

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vfpm-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# UB and leaks are failures too; libFuzzer reports them as crashes.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"

ntargets=$(echo "$targets" | wc -l)
each=$((secs / ntargets))
[ "$each" -ge 5 ] || each=5

failed=0
for bin in $targets; do
	name=$(basename "$bin")
	seeds=$src/tests/fuzz/corpus/${name#fuzz_}
	work=$tmp/$name
	mkdir -p "$work/corpus"
	if [ -d "$seeds" ]; then
		cp "$seeds"/* "$work/corpus/" 2>/dev/null
	fi
	log=$work/log
	"$bin" "$work/corpus" -max_total_time="$each" -timeout=25 -rss_limit_mb=4096 \
		-print_final_stats=1 -artifact_prefix="$artifacts/$name-" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	if [ $rc -eq 0 ] && [ -n "$execs" ]; then
		echo "fuzz: OK $name ($execs execs)"
	else
		echo "fuzz: FAILED $name (exit $rc; log follows, reproducers in $artifacts)"
		tail -n 60 "$log"
		failed=1
	fi
done
exit $failed
