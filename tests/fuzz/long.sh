#!/bin/bash
# long.sh [TEST...]: the long fuzz run, not part of CI (docs/fuzzing.md).
#
# Runs every fuzz test meson knows in the build directory SIGFS_BUILD (build),
# or only the TESTs named (fuzz-config ...), the way the test runs it
# (tests/fuzz/run.sh with the same target, seeds and sources), but for
# SIGFS_FUZZ_RUNS executions (10000000) instead of seconds, SIGFS_FUZZ_JOBS
# (1) at a time, each in BUILD/fuzz-long/NAME. The targets come from
# `meson introspect --tests`, so one added to tests/meson.build is included.
#
# Then it merges (libFuzzer -merge=1) the inputs that add coverage into the
# target's seed corpus in the source tree, smallest first, as long as that
# holds at most 300 files and 1 MiB, and prints one line per target:
# executions, seconds, exec/s, coverage (libFuzzer's cov: and ft:), corpus
# files and size, result. The table is kept in BUILD/fuzz-long/summary.txt.
# SIGFS_FUZZ_MAX_LEN (16384) bounds the inputs of the run (run.sh); the merge
# keeps inputs up to 16384 bytes either way.
# Fails when a target had a finding (the input is in BUILD/fuzz-long/NAME/).
set -euo pipefail
cd "$(dirname "$0")/../.."
src=$PWD
build=${SIGFS_BUILD:-build}
runs=${SIGFS_FUZZ_RUNS:-10000000}
jobs=${SIGFS_FUZZ_JOBS:-1}
max_files=300
max_bytes=$((1 << 20))
# An absolute SIGFS_BUILD is taken as it is, a relative one below the source tree.
case $build in /*) long=$build/fuzz-long ;; *) long=$src/$build/fuzz-long ;; esac

[ -f "$build/build.ninja" ] || { echo "long.sh: no build in $build (meson setup $build)" >&2; exit 1; }
mkdir -p "$long"

# One script per fuzz test: run.sh with the test's environment and arguments,
# its output directory moved to $long/NAME. Prints the names.
meson introspect "$build" --tests >"$long/tests.json"
names=$(python3 - "$long" "$runs" "$@" <<'PY'
import json, shlex, sys
long, runs, wanted = sys.argv[1], sys.argv[2], sys.argv[3:]
tests = [t for t in json.load(open(f"{long}/tests.json"))
         if any(s.endswith(":fuzz") for s in t["suite"])]
if not tests:
    sys.exit("long.sh: the build has no fuzz tests (they are defined only without b_sanitize)")
unknown = set(wanted) - {t["name"] for t in tests}
if unknown:
    sys.exit("long.sh: no fuzz test " + " ".join(sorted(unknown)))
for t in tests:
    if wanted and t["name"] not in wanted:
        continue
    name = t["name"][len("fuzz-"):]
    cmd = list(t["cmd"])
    # cmd: bash run.sh TARGET CORPUS OUTDIR SOURCE...
    cmd[4] = f"{long}/{name}"
    env = dict(t["env"], SIGFS_FUZZ_RUNS=runs)
    with open(f"{long}/{name}.run", "w") as f:
        f.write("env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " +
                " ".join(shlex.quote(a) for a in cmd) + "\n")
    with open(f"{long}/{name}.target", "w") as f:
        f.write(f"{cmd[2]} {cmd[3]}\n")
    print(name)
PY
)

# The number after "$1: " where libFuzzer's log $2 last has it (or "?").
logval() {
	local v
	v=$(grep -oE "(^| )$1: *[0-9]+" "$2" | tail -n 1 | grep -oE '[0-9]+$' || true)
	echo "${v:-?}"
}

# Merge the new inputs of target $1 (binary $2) into its seed corpus $3.
merge() {
	local name=$1 bin=$2 seeds=$3 out=$long/$1 tmp=$long/$1/merged
	local nfiles nbytes size f added=0 left=0

	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp -a "$seeds/." "$tmp/"
	if ! "$bin" -merge=1 -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
		"$tmp" "$out/corpus" >"$out/merge.log" 2>&1; then
		echo "merge failed (see $out/merge.log)"
		return 1
	fi
	nfiles=$(find "$seeds" -type f | wc -l)
	nbytes=$(find "$seeds" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	while read -r size f; do
		if [ $((nfiles + 1)) -gt $max_files ] || [ $((nbytes + size)) -gt $max_bytes ]; then
			left=$((left + 1))
			continue
		fi
		cp "$tmp/$f" "$seeds/$f"
		nfiles=$((nfiles + 1))
		nbytes=$((nbytes + size))
		added=$((added + 1))
	done < <(cd "$tmp" && shopt -s nullglob && for f in *; do
			[ -e "$seeds/$f" ] || printf '%s %s\n' "$(stat -c %s -- "$f")" "$f"
		done | sort -n)
	if [ $left -gt 0 ]; then
		echo "$nfiles files, $((nbytes / 1024)) KiB (+$added, $left left out)"
	else
		echo "$nfiles files, $((nbytes / 1024)) KiB (+$added)"
	fi
}

# Run one target and write its line of the table to $long/NAME.row.
one() {
	local name=$1 out=$long/$1 log=$long/$1/fuzz.log rc=0 result corpus target seeds secs

	rm -rf "$out"
	mkdir -p "$out"
	bash "$long/$name.run" >"$long/$name.out" 2>&1 || rc=$?
	read -r target seeds <"$long/$name.target"
	if [ $rc -eq 0 ]; then
		result=ok
		corpus=$(merge "$name" "$out/$target" "$src/tests/fuzz/$seeds") || result="merge failed"
	elif [ -f "$log" ] && ls "$out" | grep -qE '^(crash|leak|timeout|oom|slow-unit)-'; then
		result="FINDING: $(ls "$out" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -n 1)"
		corpus=-
	else
		result="failed (see $long/$name.out)"
		corpus=-
	fi
	[ -f "$log" ] || log=/dev/null
	secs=$(grep -oE '^Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' |
		grep -oE '[0-9]+' || echo '?')
	printf '%-18s %11s %8s %7s %6s %7s  %-36s %s\n' "fuzz-$name" \
		"$(logval stat::number_of_executed_units "$log")" "$secs" \
		"$(logval stat::average_exec_per_sec "$log")" "$(logval cov "$log")" \
		"$(logval ft "$log")" "$corpus" "$result" >"$long/$name.row"
}

running=0
for name in $names; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	echo "long.sh: fuzz-$name, $runs runs ($long/$name)"
	one "$name" &
	running=$((running + 1))
done
wait

{
	printf '%-18s %11s %8s %7s %6s %7s  %-36s %s\n' target executions seconds exec/s cov ft \
		"corpus (after merge)" result
	for name in $names; do
		cat "$long/$name.row"
	done
} | tee "$long/summary.txt"
! grep -qv ' ok$' <(tail -n +2 "$long/summary.txt")
