#!/bin/bash
# bench/spool.sh [BUILD_DIR]: (g) small files through the spool (sigfsd --spool,
# issue 11), next to openssl on one core and to the same load through the mount.
#
#  - files/s: BENCH_SPOOL_FILES files of BENCH_SIZE_KB KiB written by
#    BENCH_THREADS threads (bench/spoolload) into the spool inbox of an ed25519
#    key, then of an rsa-2048 key, timed from the first open() to the last
#    .sig (an inotify watch on the inbox sees each .sig renamed into place);
#    the same load into the same key's inbox in the mount (wait_on_close: the
#    time to the last close(), which returns once its .sig is on disk).
#  - baseline: `openssl speed -seconds S ed25519` (or rsa2048) pinned to CPU 0
#    with taskset: the sign/s of one core, as bench/run.sh's (a), measured in
#    the same run, interleaved with the spool and mount runs so drift hits all
#    three alike. Not `-multi 1`: OpenSSL 3.0.19's speed reports about half
#    the single-process rate with it on the 2-vCPU test VM (ed25519 13 000-16 500
#    vs 24 800-26 500 sign/s, rsa2048 1 883 vs 3 975, taskset -c 0 both), which
#    would make the aims twice as easy; BENCH_SSL_MULTI=1 uses it anyway.
#  - ratios spool/openssl and mount/openssl. Aims (issue 11): spool >= 0.50
#    for ed25519, >= 0.80 for rsa-2048. The mount has no aim here (FUSE round
#    trips cap it near 0.14 for ed25519 on 2 CPUs, bench/README.md (a)).
#  - latency: one writer writes BENCH_SPOOL_LAT_FILES files one at a time; for
#    each, the time from just before close() until its .sig is seen (inotify on
#    the inbox, a stat every 100 ms as a safety net). p50 and p99, spool and
#    mount (where close() itself waits for the signature).
#
# Reading the output: the table prints each figure as the median of
# BENCH_REPEAT runs with the raw runs in brackets, and PASS or FAIL against
# the aims. PASS/FAIL are the figures, not the run: the script exits 0 when
# every run worked (every file signed, every tool answered), whatever the
# figures; non-zero only when the benchmark itself failed. See bench/README.md.
#
# Run as root (FUSE mount). It builds nothing: sigfsd and bench/spoolload from
# BUILD_DIR (default: build/ of this tree); bench/run.sh may pass build-bench.
#
# Environment (all optional):
#   BENCH_SPOOL_FILES      files per throughput run (default 2000)
#   BENCH_SPOOL_LAT_FILES  files of the latency run (default 500)
#   BENCH_SIZE_KB          file size in KiB (default 4)
#   BENCH_THREADS          writer threads (default 2 x CPUs)
#   BENCH_SSL_SECONDS      length of each openssl speed run (default 3)
#   BENCH_SSL_MULTI        1: openssl speed -multi 1 (default 0, see above)
#   BENCH_REPEAT           repetitions per figure (default 3)
#   BENCH_WORKERS          sigfsd workers (default 0: one per CPU)
#   BENCH_BASE             parent directory of the temporary work dir (default /var/lib)
set -euo pipefail
BENCH_NAME=spool
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
FILES=${BENCH_SPOOL_FILES:-2000}
LAT_FILES=${BENCH_SPOOL_LAT_FILES:-500}
SIZE_KB=${BENCH_SIZE_KB:-4}
NCPU=$(nproc)
THREADS=${BENCH_THREADS:-$((2 * NCPU))}
SSL_SECONDS=${BENCH_SSL_SECONDS:-3}
REPEAT=${BENCH_REPEAT:-3}
WORKERS=${BENCH_WORKERS:-0}
SIGFSD=$BUILD/sigfsd
SPOOLLOAD=$BUILD/bench/spoolload

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mount with allow_other)"
[ -e /dev/fuse ] || die "/dev/fuse is missing"
for tool in openssl taskset fusermount3 mountpoint findmnt; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
for bin in "$SIGFSD" "$SPOOLLOAD"; do
	[ -x "$bin" ] || die "$bin is missing; build first (ninja -C $BUILD)"
done

bench_workdir sigfs-spool
SPOOL=$W/spool
mkdir -m 0755 "$SPOOL"
trap 'bench_finish $?' EXIT
trap 'exit 130' INT TERM

FSTYPE=$(findmnt -n -o FSTYPE -T "$W")
case $FSTYPE in
tmpfs | ramfs) die "$W is on $FSTYPE; set BENCH_BASE to a disk-backed directory" ;;
esac

cat >"$CONF" <<EOF
; sigfs spool benchmark: defaults, the settings that decide the figures written out.
[sigfs]
workers = $WORKERS
wait_on_close = yes
fsync = no
[keys]
digest = sha256
format = raw
rsa_padding = pss
EOF

# The mount and the spool in one daemon: the keys are made through the mount's .ctl.
start_sigfs --spool "$SPOOL"
make_key spool-ed25519 ed25519
make_key spool-rsa2048 rsa-2048
for k in spool-ed25519 spool-rsa2048; do
	for _ in $(seq 1 200); do
		[ -d "$SPOOL/$k" ] && break
		sleep 0.05
	done
	[ -d "$SPOOL/$k" ] || die "sigfsd made no spool directory $SPOOL/$k"
done
NW=$(awk '/^workers:/ {print $2}' "$MNT/.ctl/status")

echo "== (g) spool: small files through sigfsd --spool, next to openssl on one core and the mount"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo "host:     $(uname -n), kernel $(uname -r), $NCPU CPUs ($(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo))"
echo "fs:       $FSTYPE on $(findmnt -n -o SOURCE -T "$W") ($W)"
echo "sigfsd:   $($SIGFSD --version), $NW workers, build $BUILD"
echo "openssl:  $(openssl version)"
echo "baseline: taskset -c 0 openssl speed${BENCH_SSL_MULTI:+ (BENCH_SSL_MULTI=$BENCH_SSL_MULTI)} -seconds $SSL_SECONDS"
echo "load:     $FILES files of $SIZE_KB KiB, $THREADS threads; openssl speed $SSL_SECONDS s; median of $REPEAT"

openssl_rate() { # NAME -> sign/s on one core
	local out
	local multi=()
	[ "${BENCH_SSL_MULTI:-0}" != 1 ] || multi=(-multi 1)
	out=$(taskset -c 0 openssl speed "${multi[@]}" -seconds "$SSL_SECONDS" "$1" 2>/dev/null) ||
		die "openssl speed $1 failed"
	# The table's last row: "... <sign s> <verify s> <sign/s> <verify/s>"
	awk '/sign\/s/ {getline; print $(NF-1)}' <<<"$out" | tail -n 1
}

field() { # NAME < spoolload line
	sed -n "s/.* *\\<$1=\\([0-9.]*\\).*/\\1/p"
}

load_rate() { # DIR PREFIX [-c] -> files/s (dies if a file went unsigned)
	local out
	out=$("$SPOOLLOAD" -t "$THREADS" -n "$FILES" -s $((SIZE_KB * 1024)) -p "$2" ${3:+"$3"} "$1") ||
		die "spoolload into $1 failed: $out"
	echo "  $1 ($2): $out" >&2
	field files_per_s <<<"$out"
}

declare -A R_SPOOL R_MOUNT R_SSL ALL_SPOOL ALL_MOUNT ALL_SSL LAT_SPOOL LAT_MOUNT
for pair in ed25519:spool-ed25519:ed25519 rsa-2048:spool-rsa2048:rsa2048; do
	IFS=: read -r alg key sslname <<<"$pair"
	# Warm-up, not counted: one run of the full size into each. The key is
	# loaded and cached, and the first run after the keys were made was slow
	# to write (measured: 4000 files in 2.7 s instead of 0.1 s; the cause was
	# not found).
	"$SPOOLLOAD" -t "$THREADS" -n "$FILES" -p warm "$SPOOL/$key" >/dev/null || die "warm-up of $SPOOL/$key failed"
	"$SPOOLLOAD" -c -t "$THREADS" -n "$FILES" -p warm "$MNT/$key" >/dev/null || die "warm-up of $MNT/$key failed"
	s=() m=() o=()
	for i in $(seq 1 "$REPEAT"); do
		s+=("$(load_rate "$SPOOL/$key" "s$i")")
		m+=("$(load_rate "$MNT/$key" "m$i" -c)")
		o+=("$(openssl_rate "$sslname")")
		echo "  openssl speed $sslname run $i: ${o[-1]} sign/s" >&2
	done
	R_SPOOL[$alg]=$(printf '%s\n' "${s[@]}" | median)
	R_MOUNT[$alg]=$(printf '%s\n' "${m[@]}" | median)
	R_SSL[$alg]=$(printf '%s\n' "${o[@]}" | median)
	ALL_SPOOL[$alg]="${s[*]}"
	ALL_MOUNT[$alg]="${m[*]}"
	ALL_SSL[$alg]="${o[*]}"
	# Latency: one writer, one file at a time.
	out=$("$SPOOLLOAD" -l -n "$LAT_FILES" -s $((SIZE_KB * 1024)) -p lat "$SPOOL/$key") ||
		die "latency run into $SPOOL/$key failed: $out"
	echo "  latency $SPOOL/$key: $out" >&2
	LAT_SPOOL[$alg]="$(field p50_ms <<<"$out") $(field p99_ms <<<"$out")"
	out=$("$SPOOLLOAD" -l -c -n "$LAT_FILES" -s $((SIZE_KB * 1024)) -p lat "$MNT/$key") ||
		die "latency run into $MNT/$key failed: $out"
	echo "  latency $MNT/$key: $out" >&2
	LAT_MOUNT[$alg]="$(field p50_ms <<<"$out") $(field p99_ms <<<"$out")"
done

verdict() { # RATIO LIMIT
	awk -v r="$1" -v l="$2" 'BEGIN {print (r >= l) ? "PASS" : "FAIL"}'
}

declare -A AIM=([ed25519]=0.50 [rsa-2048]=0.80)
echo
echo "== results (median of $REPEAT; raw runs in brackets; ${SIZE_KB} KiB files, $THREADS writers, $NW workers)"
for alg in ed25519 rsa-2048; do
	rs=$(ratio "${R_SPOOL[$alg]}" "${R_SSL[$alg]}")
	rm_=$(ratio "${R_MOUNT[$alg]}" "${R_SSL[$alg]}")
	echo "(g) $alg:"
	printf '  %-28s %10s  [%s]\n' "files/s spool" "${R_SPOOL[$alg]}" "${ALL_SPOOL[$alg]// /, }"
	printf '  %-28s %10s  [%s]\n' "files/s mount" "${R_MOUNT[$alg]}" "${ALL_MOUNT[$alg]// /, }"
	printf '  %-28s %10s  [%s]\n' "openssl sign/s, 1 core" "${R_SSL[$alg]}" "${ALL_SSL[$alg]// /, }"
	printf '  %-28s %10s  aim >= %s: %s\n' "ratio spool/openssl" "$rs" "${AIM[$alg]}" "$(verdict "$rs" "${AIM[$alg]}")"
	printf '  %-28s %10s  (no aim: FUSE round trips)\n' "ratio mount/openssl" "$rm_"
	read -r p50 p99 <<<"${LAT_SPOOL[$alg]}"
	printf '  %-28s %10s  p99 %s ms (%s files, one writer, close -> .sig)\n' "latency spool p50 ms" "$p50" "$p99" "$LAT_FILES"
	read -r p50 p99 <<<"${LAT_MOUNT[$alg]}"
	printf '  %-28s %10s  p99 %s ms (close() waits for the .sig)\n' "latency mount p50 ms" "$p50" "$p99"
done
echo "sigfsd status at the end:"
sed 's/^/  /' "$MNT/.ctl/status"
