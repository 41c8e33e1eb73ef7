#!/bin/bash
# bench/spool_settle.sh [BUILD_DIR]: (h) a large batch through a spool with
# settle_ms (an NFS export: every file waits settle_ms without a write before
# it is signed). The aim is that a batch costs what its files cost: files/s
# for a large batch (BENCH_SETTLE_LARGE files, default 32000) against a small
# one (BENCH_SETTLE_SMALL, default 2000), measured in the same run, same
# daemon, same inbox.
#
#  - each run: bench/spoolload with 2 x CPUs writer threads and 4 KiB files
#    into the spool inbox of an ed25519 key, timed from the first open() to
#    the last .sig (spoolload watches the inbox; every .sig is checked).
#    The large batch also overflows inotify's default queue (16384 events),
#    so the daemon's rescan after IN_Q_OVERFLOW is part of it.
#  - the figure: files/s large / files/s small, medians of BENCH_REPEAT (3)
#    interleaved runs. Aim: >= 0.70 (near 1: linear; the settle list used to
#    be searched and walked whole for every event, 0.52 at 32000 files).
#
# It prints PASS or FAIL against the aim and exits 0 whenever every run
# worked; non-zero only when the benchmark itself failed. Run as root. It
# builds nothing: sigfsd and bench/spoolload from BUILD_DIR (default build/).
#
# Environment: BENCH_SETTLE_SMALL, BENCH_SETTLE_LARGE, BENCH_SETTLE_MS (100),
# BENCH_REPEAT (3), BENCH_THREADS (2 x CPUs), BENCH_BASE (/var/lib).
set -euo pipefail
BENCH_NAME=spool_settle
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
SMALL=${BENCH_SETTLE_SMALL:-2000}
LARGE=${BENCH_SETTLE_LARGE:-32000}
SETTLE=${BENCH_SETTLE_MS:-100}
REPEAT=${BENCH_REPEAT:-3}
THREADS=${BENCH_THREADS:-$((2 * $(nproc)))}
SIGFSD=$BUILD/sigfsd
SPOOLLOAD=$BUILD/bench/spoolload

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mount with allow_other)"
for bin in "$SIGFSD" "$SPOOLLOAD"; do
	[ -x "$bin" ] || die "$bin is missing; build first (ninja -C $BUILD)"
done

bench_workdir sigfs-settle
SPOOL=$W/spool
mkdir -m 0755 "$SPOOL"
trap 'bench_finish $?' EXIT
trap 'exit 130' INT TERM

cat >"$CONF" <<CONF
; sigfs settle benchmark: a spool exported over NFS.
[sigfs]
wait_on_close = no
settle_ms = $SETTLE
fsync = no
[keys]
digest = sha256
format = raw
CONF

start_sigfs --spool "$SPOOL"
make_key settle-ed25519 ed25519
for _ in $(seq 1 200); do
	[ -d "$SPOOL/settle-ed25519" ] && break
	sleep 0.05
done
[ -d "$SPOOL/settle-ed25519" ] || die "sigfsd made no spool directory"

echo "== (h) spool with settle_ms: a large batch against a small one"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo "host:     $(uname -n), $(nproc) CPUs; fs $(findmnt -n -o FSTYPE -T "$W") ($W)"
echo "load:     $SMALL and $LARGE files of 4 KiB, $THREADS writers, settle_ms $SETTLE, median of $REPEAT"

run() { # N PREFIX -> files/s (dies if a file went unsigned)
	local out
	out=$("$SPOOLLOAD" -t "$THREADS" -n "$1" -p "$2" "$SPOOL/settle-ed25519") ||
		die "spoolload ($1 files) failed: $out"
	echo "  $1 files ($2): $out" >&2
	sed -n 's/.*files_per_s=\([0-9.]*\).*/\1/p' <<<"$out"
}

"$SPOOLLOAD" -t "$THREADS" -n "$SMALL" -p warm "$SPOOL/settle-ed25519" >/dev/null || die "warm-up failed"
s=() l=()
for i in $(seq 1 "$REPEAT"); do
	s+=("$(run "$SMALL" "s$i")")
	l+=("$(run "$LARGE" "l$i")")
	# Each run leaves its files: the next starts from an inbox as large.
done
ms=$(printf '%s\n' "${s[@]}" | median)
ml=$(printf '%s\n' "${l[@]}" | median)
r=$(ratio "$ml" "$ms")
echo
echo "== results"
printf '  %-32s %10s  [%s]\n' "files/s, $SMALL files" "$ms" "${s[*]}"
printf '  %-32s %10s  [%s]\n' "files/s, $LARGE files" "$ml" "${l[*]}"
printf '  %-32s %10s  aim >= 0.70: %s\n' "ratio large/small" "$r" \
	"$(awk -v r="$r" 'BEGIN {print (r >= 0.70) ? "PASS" : "FAIL"}')"
