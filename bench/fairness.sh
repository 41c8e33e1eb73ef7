#!/bin/bash
# bench/fairness.sh [BUILD_DIR]: (f) one user's stream does not starve another.
#
# User A renames large sparse files (BENCH_FAIR_GB GiB each, one after the
# other) into a shared inbox: the workers must read each of them to hash it.
# Meanwhile user B copies small files (4 KiB) one at a time and measures each
# close(), i.e. the time until B's signature is on disk. The figure is B's
# latency under A's load as a ratio of B's latency on the idle daemon,
# measured in the same run (p50 and p99 of BENCH_FAIR_FILES files each).
# Aim: B's p99 under load below 0.5 s (one 50 ms turn of A's job plus B's
# own signature; bench/README.md), whatever the ratio.
#
# Run as root (FUSE mount, test users). It uses sigfsd from BUILD_DIR (default:
# build/ of this tree); bench/run.sh calls it with its own build directory.
#
# Environment (all optional):
#   BENCH_FAIR_FILES  small files per measurement (default 200)
#   BENCH_FAIR_GB     size of A's files in GiB (default 8)
#   BENCH_WORKERS     sigfsd workers (default 0: one per CPU)
#   BENCH_BASE        parent directory of the temporary work dir (default /var/lib)
set -euo pipefail
BENCH_NAME=bench
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
FILES=${BENCH_FAIR_FILES:-200}
GB=${BENCH_FAIR_GB:-8}
WORKERS=${BENCH_WORKERS:-0}
SIGFSD=$BUILD/sigfsd
GROUP=sigfs-bench
UA=sigfs-bench-a
UB=sigfs-bench-b

[ "$(id -u)" -eq 0 ] || die "run as root"
[ -x "$SIGFSD" ] || die "$SIGFSD is missing: build first"

ensure_group "$GROUP"
for u in "$UA" "$UB"; do
	ensure_user "$u"
	usermod -a -G "$GROUP" "$u"
done

bench_workdir sigfs-fair
A_PID=

cleanup() {
	local rc=$?
	stop_pid "$A_PID"
	bench_finish $rc
}
trap cleanup EXIT

cat >"$CONF" <<EOF
[sigfs]
workers = $WORKERS
wait_on_close = yes
[keys]
algorithm = ecdsa-p256
digest = sha256
EOF
start_sigfs
make_key fair
chgrp "$GROUP" "$MNT/fair"
chmod 1770 "$MNT/fair"
NW=$(awk '/^workers:/ {print $2}' "$MNT/.ctl/status")

# B's latencies: N small files, one at a time; prints one line "p50 p99" (seconds).
b_latency() { # TAG
	as "$UB" /usr/bin/python3 - \
		"$MNT/fair" "$1" "$FILES" <<'PY'
import os, sys, time
d, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = os.urandom(4096)
lat = []
for i in range(n):
    p = os.path.join(d, f"{tag}-{i}.bin")
    t = time.monotonic()
    with open(p, "wb") as f:
        f.write(data)
    lat.append(time.monotonic() - t)
    if not os.path.exists(p + ".sig"):
        sys.exit(f"{p}.sig missing after close")
lat.sort()
print(f"{lat[len(lat) // 2]:.4f} {lat[min(len(lat) - 1, (len(lat) * 99) // 100)]:.4f}")
PY
}

# A's stream: large sparse files renamed in, each removed once signed.
a_stream() {
	local i=0
	while :; do
		i=$((i + 1))
		as "$UA" bash -c "
			truncate -s ${GB}G '$MNT/fair/.a$i' && mv '$MNT/fair/.a$i' '$MNT/fair/a$i.bin'"
		while [ ! -e "$MNT/fair/a$i.bin.sig" ] && [ ! -e "$MNT/fair/a$i.bin.err" ]; do
			# keep NW of A's files in the queue, so every worker has one to read
			[ "$(ls "$MNT/fair" | grep -c '^a[0-9]*\.bin$')" -lt $((NW + 1)) ] && break
			sleep 0.05
		done
		for f in "$MNT/fair"/a*.bin.sig; do
			[ -e "$f" ] && rm -f "${f%.sig}" "$f"
		done
	done
}

echo "== (f) fairness: ${FILES} small files of user B, one at a time, idle and while user A"
echo "   renames ${GB} GiB files in (sigfsd $($SIGFSD --version), $NW workers, $(nproc) CPUs)"
idle=$(b_latency idle)
a_stream &
A_PID=$!
# until every worker is reading one of A's files
for _ in $(seq 1 200); do
	grep -q "^queue: .* $NW signing" "$MNT/.ctl/status" && break
	sleep 0.05
done
grep -q "^queue: .* $NW signing" "$MNT/.ctl/status" || die "A's files did not keep the workers busy"
load=$(b_latency load)
stop_pid "$A_PID"
A_PID=
read -r i50 i99 <<<"$idle"
read -r l50 l99 <<<"$load"
r50=$(awk -v a="$l50" -v b="$i50" 'BEGIN {printf "%.1f", a / b}')
r99=$(awk -v a="$l99" -v b="$i99" 'BEGIN {printf "%.1f", a / b}')
verdict=$(awk -v p="$l99" 'BEGIN {print (p < 0.5) ? "met" : "MISSED"}')
printf '%-40s %-22s %-22s %s\n' figure "B under A's load" "B, daemon idle" ratio
printf '%-40s %-22s %-22s %s\n' "(f) B's close() latency p50" "${l50} s" "${i50} s" "$r50"
printf '%-40s %-22s %-22s %s\n' "(f) B's close() latency p99" "${l99} s" "${i99} s" "$r99"
echo "aim: p99 under load < 0.5 s: $verdict"
