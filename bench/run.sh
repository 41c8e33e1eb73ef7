#!/usr/bin/env bash
# bench/run.sh: sigfs benchmarks, from a fresh clone. Run as root: bash bench/run.sh
#
#  (a) small files signed per second through the mount (ed25519, rsa-2048),
#      as a ratio of `openssl speed` on one core for the same algorithm.
#      Aim: >= 0.50.
#  (b) time from the start of `cp BIG INBOX/` until BIG.sig exists, divided by
#      the time of `cp BIG STATEFS/ && sha256sum STATEFS/BIG` (copy then hash).
#      Aim: < 1.0. Default key (ecdsa-p256, sha256); ed25519 as a second line.
#  (c) (d) (e) per backend (pkcs11, nethsm, appliance): bench/backends.sh, run
#      at the end with this build.
#  (f) one user's stream of large files vs another user's small files:
#      bench/fairness.sh, run with this build.
#  (g) small files through the spool (sigfsd --spool) vs openssl on one core
#      and vs the mount: bench/spool.sh, run with this build.
#  (h) a large batch through a spool with settle_ms vs a small one:
#      bench/spool_settle.sh, run last with this build.
#
# Every figure is the median of REPEAT runs; baselines are measured in the
# same run. See bench/README.md.
#
# Environment (all optional):
#   BENCH_SECONDS  length of each small-file and openssl run (default 10)
#   BENCH_THREADS  load generator threads (default 2 x CPUs)
#   BENCH_SIZE_KB  small-file payload in KiB (default 1)
#   BENCH_BIG_MB   size of the big file for (b) in MiB (default 1024)
#   BENCH_REPEAT   repetitions per figure (default 3)
#   BENCH_BASE     parent directory of the temporary work dir (default /var/lib)
#   BENCH_NO_BUILD set to 1 to skip the meson build (use build-bench as is)
#   BENCH_BACKENDS set to 0 to skip bench/backends.sh (its own knobs: see there)
#   BENCH_FAIRNESS set to 0 to skip bench/fairness.sh (its own knobs: see there)
#   BENCH_SPOOL    set to 0 to skip bench/spool.sh (its own knobs: see there)
#   BENCH_SETTLE   set to 0 to skip bench/spool_settle.sh (its own knobs: see there)
set -euo pipefail
BENCH_NAME=bench
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$SRC/build-bench
SECONDS_PER_RUN=${BENCH_SECONDS:-10}
NCPU=$(nproc)
THREADS=${BENCH_THREADS:-$((2 * NCPU))}
SIZE_KB=${BENCH_SIZE_KB:-1}
BIG_MB=${BENCH_BIG_MB:-1024}
REPEAT=${BENCH_REPEAT:-3}

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mount with allow_other, drop_caches)"
[ -e /dev/fuse ] || die "/dev/fuse is missing"
for tool in meson ninja openssl sha256sum fusermount3 mountpoint findmnt; do
	command -v "$tool" >/dev/null || die "$tool not found"
done

# --- build ---------------------------------------------------------------------
if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
	echo "== building in $BUILD (release, werror, no tests)"
	if [ -f "$BUILD/build.ninja" ]; then
		meson setup --reconfigure "$BUILD" "$SRC" --buildtype=release -Dwerror=true \
			-Dtests=false >/dev/null
	else
		meson setup "$BUILD" "$SRC" --buildtype=release -Dwerror=true -Dtests=false >/dev/null
	fi
	ninja -C "$BUILD" >/dev/null
fi
SIGFSD=$BUILD/sigfsd
SMALLFILES=$BUILD/bench/smallfiles
[ -x "$SIGFSD" ] && [ -x "$SMALLFILES" ] || die "build did not produce sigfsd and smallfiles"

# --- work dir, on the filesystem of /var/lib (not tmpfs) -------------------------
bench_workdir sigfs-bench
SCRATCH=$W/scratch          # baseline copies: same filesystem as the state dir
BIG=$W/big.bin              # source of (b): same filesystem too
mkdir -p "$SCRATCH" "$SCRATCH/small"

trap 'bench_finish $?' EXIT
trap 'exit 130' INT TERM

FSTYPE=$(findmnt -n -o FSTYPE -T "$W")
FSSRC=$(findmnt -n -o SOURCE -T "$W")
FSNOTE=
if [ "$FSTYPE" = ext4 ] && [ -r "/sys/fs/ext4/$(basename "$FSSRC")/journal_task" ] &&
	case $(cat "/sys/fs/ext4/$(basename "$FSSRC")/journal_task") in "" | "<none>") true ;; *) false ;; esac; then
	# ext4 without a journal skips inodes freed in the last 60-300 s when it
	# allocates, scanning them one by one: deletions slow later creates a lot.
	FSNOTE=" (NO JOURNAL: creates after recent deletes are slow; see bench/README.md)"
fi
case $FSTYPE in
tmpfs | ramfs) die "$W is on $FSTYPE; set BENCH_BASE to a disk-backed directory" ;;
esac

# A small config: the shipped defaults, with the settings that decide the
# figures spelled out so a change of default does not silently change them.
cat >"$CONF" <<'EOF'
; sigfs benchmark configuration: defaults, the relevant ones written out.
[sigfs]
workers = 0
wait_on_close = yes
fsync = no
[keys]
algorithm = ecdsa-p256
digest = sha256
format = raw
EOF

start_sigfs

make_key bench-ed25519 ed25519
make_key bench-rsa2048 rsa-2048
make_key bench-ecdsa          # defaults: ecdsa-p256, sha256
make_key bench-ed25519-big ed25519

WORKERS=$(awk '/^workers:/ {print $2}' "$MNT/.ctl/status")
CPU_MODEL=$(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo)

echo "== machine"
echo "date:          $(date -u +%Y-%m-%dT%H:%MZ)"
echo "host:          $(uname -n), kernel $(uname -r)"
echo "nproc:         $NCPU"
echo "cpu:           $CPU_MODEL"
echo "memory:        $(awk '/^MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "state fs:      $FSTYPE on $FSSRC ($W)$FSNOTE"
echo "sigfsd:        $($SIGFSD --version), $WORKERS workers, build $BUILD"
echo "openssl:       $(openssl version)"
echo "load:          $THREADS threads, ${SIZE_KB} KiB files, ${SECONDS_PER_RUN} s per run, median of $REPEAT"

# --- (a) small files per second vs openssl speed on one core ------------------
openssl_rate() { # ALG(openssl speed name) -> sign/s on one core
	local out
	out=$(taskset -c 0 openssl speed -seconds "$SECONDS_PER_RUN" "$1" 2>/dev/null)
	# Last line: "... <sign s> <verify s> <sign/s> <verify/s>"
	awk '/sign\/s/ {getline; print $(NF-1)}' <<<"$out" | tail -n 1
}

# Files are kept (-k) until the end: deleting them between runs would make the
# next run measure the filesystem's inode allocator, not sigfs.
sigfs_rate() { # KEY RUN -> files/s
	local out
	out=$("$SMALLFILES" -q -k -t "$THREADS" -d "$SECONDS_PER_RUN" -s $((SIZE_KB * 1024)) \
		-p "r$2" "$MNT/$1")
	echo "  $1 run $2: $out" >&2
	files_per_s <<<"$out"
}

declare -A A_SIGFS A_SSL A_SIGFS_ALL A_SSL_ALL
echo
echo "== (a) small files through the mount"
for pair in ed25519:bench-ed25519:ed25519 rsa-2048:bench-rsa2048:rsa2048; do
	IFS=: read -r alg key sslname <<<"$pair"
	# warm up: the key is loaded, the inbox exists, threads are started
	"$SMALLFILES" -q -k -t "$THREADS" -d 1 -p warm "$MNT/$key" >/dev/null
	s=() o=()
	for i in $(seq 1 "$REPEAT"); do
		s+=("$(sigfs_rate "$key" "$i")")
		o+=("$(openssl_rate "$sslname")")
		echo "  openssl speed $sslname run $i: ${o[-1]} sign/s" >&2
	done
	A_SIGFS[$alg]=$(printf '%s\n' "${s[@]}" | median)
	A_SSL[$alg]=$(printf '%s\n' "${o[@]}" | median)
	A_SIGFS_ALL[$alg]="${s[*]}"
	A_SSL_ALL[$alg]="${o[*]}"
done

# Reference, not a figure: the same load straight on the state filesystem
# (no FUSE, no signing), to show what the filesystem alone allows here.
RAW=$("$SMALLFILES" -q -k -t "$THREADS" -n 20000 -s $((SIZE_KB * 1024)) \
	"$SCRATCH/small" 2>/dev/null | files_per_s || true)
[ -n "$RAW" ] || RAW=0
# Reference: the same load through the mount under names sigfs ignores (".ref*"),
# so everything but signing: the FUSE round trips' ceiling on this machine.
FUSE_ONLY=$("$SMALLFILES" -q -k -t "$THREADS" -d "$SECONDS_PER_RUN" -s $((SIZE_KB * 1024)) \
	-p .ref "$MNT/bench-ed25519" 2>/dev/null | files_per_s || true)
[ -n "$FUSE_ONLY" ] || FUSE_ONLY=0

# --- (b) cp of a big file into an inbox vs cp + sha256sum ------------------------
drop_caches() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}

now() { echo "$EPOCHREALTIME"; }

echo
echo "== (b) ${BIG_MB} MiB file: cp into an inbox until .sig exists, vs cp + sha256sum"
head -c $((BIG_MB * 1024 * 1024)) /dev/urandom >"$BIG"
sync

baseline_once() {
	rm -f "$SCRATCH/big.bin"
	drop_caches
	local t0 t1
	t0=$(now)
	cp "$BIG" "$SCRATCH/big.bin"
	sha256sum "$SCRATCH/big.bin" >/dev/null
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

inbox_once() { # KEY
	local t0 t1 sig=$MNT/$1/big.bin.sig
	rm -f "$MNT/$1/big.bin" "$sig"
	drop_caches
	t0=$(now)
	cp "$BIG" "$MNT/$1/"
	# close() returned only when the signature was on disk (wait_on_close); the
	# poll is a safety net that costs nothing when it is already there.
	for _ in $(seq 1 6000); do
		[ -s "$sig" ] && break
		sleep 0.01
	done
	t1=$(now)
	[ -s "$sig" ] || die "$sig did not appear"
	awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}

declare -A B_TIME B_ALL
base=() ec=() ed=()
for i in $(seq 1 "$REPEAT"); do
	# Interleave so that drift (thermal, other load) hits all three alike.
	base+=("$(baseline_once)")
	ec+=("$(inbox_once bench-ecdsa)")
	ed+=("$(inbox_once bench-ed25519-big)")
	echo "  run $i: cp+sha256sum ${base[-1]} s, ecdsa-p256 ${ec[-1]} s, ed25519 ${ed[-1]} s" >&2
done
rm -f "$SCRATCH/big.bin" "$MNT/bench-ecdsa/big.bin" "$MNT/bench-ed25519-big/big.bin"
B_TIME[base]=$(printf '%s\n' "${base[@]}" | median)
B_TIME[ecdsa]=$(printf '%s\n' "${ec[@]}" | median)
B_TIME[ed25519]=$(printf '%s\n' "${ed[@]}" | median)
B_ALL[base]="${base[*]}"
B_ALL[ecdsa]="${ec[*]}"
B_ALL[ed25519]="${ed[*]}"

# --- table ------------------------------------------------------------------------
verdict() { # RATIO OP LIMIT
	awk -v r="$1" -v l="$3" -v op="$2" 'BEGIN {
		ok = (op == ">=") ? (r >= l) : (r < l); print ok ? "met" : "MISSED" }'
}

echo
echo "== results (median of $REPEAT; raw runs in brackets)"
printf '%-34s %-28s %-30s %7s  %-10s\n' figure sigfs baseline ratio aim
for alg in ed25519 rsa-2048; do
	r=$(ratio "${A_SIGFS[$alg]}" "${A_SSL[$alg]}")
	printf '%-34s %-28s %-30s %7s  %-10s\n' "(a) $alg small files/s" \
		"${A_SIGFS[$alg]} [${A_SIGFS_ALL[$alg]// /,}]" \
		"${A_SSL[$alg]} sign/s 1 core" "$r" ">=0.50 $(verdict "$r" ">=" 0.5)"
	printf '%-34s %-28s %-30s\n' "" "" "[${A_SSL_ALL[$alg]// /,}]"
done
printf '%-34s %-28s %-30s\n' "(ref) same load, no FUSE/signing" "$RAW files/s on $FSTYPE" "(not a ratio: the fs alone)"
printf '%-34s %-28s %-30s\n' "(ref) same load via FUSE, unsigned" "$FUSE_ONLY files/s" "(ignored .names: FUSE's ceiling)"
for k in ecdsa ed25519; do
	label="(b) ecdsa-p256/sha256 cp->.sig s"
	[ "$k" = ed25519 ] && label="(b) ed25519 cp->.sig s"
	r=$(ratio "${B_TIME[$k]}" "${B_TIME[base]}")
	printf '%-34s %-28s %-30s %7s  %-10s\n' "$label" \
		"${B_TIME[$k]} [${B_ALL[$k]// /,}]" \
		"${B_TIME[base]} cp+sha256sum" "$r" "<1.0 $(verdict "$r" "<" 1.0)"
done
printf '%-34s %-28s %-30s\n' "" "" "[${B_ALL[base]// /,}]"
echo
echo "(b) ed25519: pure Ed25519 signs the message, not a digest, so sigfs must read"
echo "    the whole file again after close (twice through SHA-512 inside the signature)."
echo "sigfsd status at the end:"
sed 's/^/  /' "$MNT/.ctl/status"

# --- (c) (d) (e): the backends, with their own mounts and peers ------------------------
if [ "${BENCH_BACKENDS:-1}" != 0 ]; then
	echo
	bash "$SRC/bench/backends.sh" "$BUILD" || die "bench/backends.sh failed (its output is above)"
fi

# --- (f): fairness between users, with its own mount and users -----------------------
if [ "${BENCH_FAIRNESS:-1}" != 0 ]; then
	echo
	bash "$SRC/bench/fairness.sh" "$BUILD" || die "bench/fairness.sh failed (its output is above)"
fi

# --- (g): the spool, with its own daemon and work dir ------------------------------------
if [ "${BENCH_SPOOL:-1}" != 0 ]; then
	echo
	bash "$SRC/bench/spool.sh" "$BUILD" || die "bench/spool.sh failed (its output is above)"
fi

# --- (h): a large batch through a spool with settle_ms -----------------------------------
if [ "${BENCH_SETTLE:-1}" != 0 ]; then
	echo
	bash "$SRC/bench/spool_settle.sh" "$BUILD" || die "bench/spool_settle.sh failed (its output is above)"
fi
