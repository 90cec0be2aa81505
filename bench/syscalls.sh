#!/bin/sh
# System calls per request of each server in bench_rtt's pipelined run
# (32 in flight), counted by strace -c -f attached to the serving process
# only (all its threads): the vfpm device with the poll window, the one
# without, and the floor responder. strace slows what it traces, so the
# throughput printed here is not the bench's; the counts are what matter.
#
# usage: bench/syscalls.sh [BUILD_DIR] [REQUESTS] [WINDOW]
# (docs/performance.md, "Batched I/O")
set -eu
B=${1:-build}
N=${2:-100000}
W=${3:-32}
command -v strace >/dev/null || { echo "syscalls.sh: strace is not installed" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for t in poll nopoll floor; do
	mkfifo "$tmp/go"
	"$B/bench/bench_rtt" -T "$t" -P -n "$N" -w "$W" -r 1 -W 1000 <"$tmp/go" >"$tmp/out" &
	bench=$!
	exec 3>"$tmp/go"
	until grep -q '^server_pid=' "$tmp/out" 2>/dev/null; do
		kill -0 "$bench" 2>/dev/null || { cat "$tmp/out" >&2; exit 1; }
		sleep 0.1
	done
	pid=$(sed -n 's/^server_pid=//p' "$tmp/out")
	strace -c -f -p "$pid" -o "$tmp/strace" 2>"$tmp/strace.err" &
	st=$!
	sleep 1   # strace attaches to every thread
	echo go >&3
	exec 3>&-
	wait "$bench"
	# the traced process has usually exited with the bench: strace with it
	kill -INT "$st" 2>/dev/null || true
	wait "$st" || true
	rm -f "$tmp/go"
	# every request of the run, the 1000 warm-up ones included (strace
	# counts from before them)
	req=$((N + 1000))
	# strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall
	awk -v req="$req" -v t="$t" '
		$1 ~ /^[0-9.]+$/ && $NF != "total" { calls[$NF] = $4; total += $4 }
		END {
			printf "syscalls: server=%s requests=%d total=%d per_request=%.3f\n", t, req, total, total / req
			printf "  "
			for (k in calls) printf "%s=%d (%.3f) ", k, calls[k], calls[k] / req
			printf "\n"
		}' "$tmp/strace"
done
