#!/bin/bash
# bench/artifacts.sh [BUILD_DIR]: (i) whole-artifact formats stream (issue 12,
# decision 76): a 2 GiB Mender artifact and a 2 GiB .swu image are signed
# without being held in memory. For each format the daemon's peak RSS growth
# while it signs a large artifact (BENCH_ART_LARGE_MB, default 2048) is set
# against its growth for a small one (BENCH_ART_SMALL_MB, 64), in the same
# run and daemon (the peak is reset between them: /proc/PID/clear_refs 5),
# and the time of `cp` into the mount against `cp` of the same file to the
# same file system.
#
#  - figures: RSS growth large / small (aim <= 2: flat; held in memory it
#    would be 32), RSS growth / artifact size (aim <= 1%), and seconds per
#    GiB through sigfs / through a plain cp (reported, no aim: the signer
#    copies the artifact privately and writes the output, three passes).
#
# It prints PASS or FAIL against the aims and exits 0 whenever every run
# worked. Run as root. It builds nothing: sigfsd from BUILD_DIR (build/).
# Needs mender-artifact and cpio (bash scripts/deps), and about 5 times
# the large size free under BENCH_BASE (/var/lib).
set -euo pipefail
BENCH_NAME=artifacts
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
SMALL=${BENCH_ART_SMALL_MB:-64}
LARGE=${BENCH_ART_LARGE_MB:-2048}
SIGFSD=$BUILD/sigfsd

[ "$(id -u)" -eq 0 ] || die "run as root (FUSE mount with allow_other)"
[ -x "$SIGFSD" ] || die "$SIGFSD is missing; build first (ninja -C $BUILD)"
for tool in mender-artifact cpio; do
	command -v $tool >/dev/null || die "$tool is missing (bash scripts/deps)"
done

bench_workdir sigfs-artifacts
trap 'bench_finish $?' EXIT
trap 'exit 130' INT TERM
cat >"$CONF" <<CONF
; sigfs artifacts benchmark
[sigfs]
fsync = no
CONF
start_sigfs
K=$MNT/.ctl/keys
make_key ba-mender rsa-2048
echo pkcs1 >"$K/ba-mender/padding"
echo mender >"$K/ba-mender/format"
make_key ba-swu ecdsa-p256
echo swupdate >"$K/ba-swu/format"

reset_peak() {
	local p
	for p in "$SIGFS_PID" $(pgrep -P "$SIGFS_PID" || true); do
		echo 5 >"/proc/$p/clear_refs"
	done
}
now() { date +%s.%N; }

# make MB: $W/art-MB.mender and $W/art-MB.swu with an MB MiB random payload.
make() {
	local mb=$1 d=$W/swu-$1
	head -c $((mb << 20)) /dev/urandom >"$W/payload-$mb.img"
	mender-artifact --compression none write rootfs-image -t board -n "bench-$mb" \
		-f "$W/payload-$mb.img" -o "$W/art-$mb.mender" >/dev/null 2>&1 || die "mender-artifact write failed"
	mkdir -p "$d"
	printf 'software = { version = "1.0"; images: ( { filename = "payload.img"; sha256 = "%s"; } ); }\n' \
		"$(sha256sum "$W/payload-$mb.img" | cut -d' ' -f1)" >"$d/sw-description"
	mv "$W/payload-$mb.img" "$d/payload.img"
	(cd "$d" && printf 'sw-description\npayload.img\n' | cpio -o --quiet -H newc >"$W/art-$mb.swu")
	rm -rf "$d"
}

# measure KEY FILE NAME: "growth_kb seconds" of cp FILE into KEY's inbox as NAME.
measure() {
	local before t0 t1 after
	sync
	echo 3 >/proc/sys/vm/drop_caches
	reset_peak
	before=$(peak_rss_kb "$SIGFS_PID")
	t0=$(now)
	cp "$2" "$MNT/$1/$3"
	t1=$(now)
	after=$(peak_rss_kb "$SIGFS_PID")
	[ -s "$MNT/$1/$3.signed" ] || die "$3.signed was not made: $(tail -n 3 "$LOG")"
	rm -f "$MNT/$1/$3" "$MNT/$1/$3.signed"
	echo "$((after - before)) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}

# plain FILE: seconds of cp FILE to the same file system.
plain() {
	local t0 t1
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t0=$(now)
	cp "$1" "$W/plain-copy"
	sync
	t1=$(now)
	rm -f "$W/plain-copy"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }'
}

echo "== (i) whole-artifact formats stream: $LARGE MiB against $SMALL MiB"
echo "date:     $(date -u +%Y-%m-%dT%H:%MZ)"
echo "host:     $(uname -n), $(nproc) CPUs; fs $(findmnt -n -o FSTYPE -T "$W") ($W)"
make "$SMALL"
make "$LARGE"

for kind in mender swu; do
	key=ba-mender
	[ $kind = swu ] && key=ba-swu
	read -r g_small t_small <<<"$(measure $key "$W/art-$SMALL.$kind" "s.$kind")"
	read -r g_large t_large <<<"$(measure $key "$W/art-$LARGE.$kind" "l.$kind")"
	t_plain=$(plain "$W/art-$LARGE.$kind")
	size_kb=$(($(stat -c %s "$W/art-$LARGE.$kind") / 1024))
	# A growth under 1 MiB counts as 1 MiB: the ratio of two noises says nothing.
	r_growth=$(ratio "$(( g_large > 1024 ? g_large : 1024 ))" "$(( g_small > 1024 ? g_small : 1024 ))")
	r_size=$(awk -v g="$g_large" -v s="$size_kb" 'BEGIN { printf "%.4f", g / s }')
	echo "$kind: peak RSS growth $g_small KiB ($SMALL MiB), $g_large KiB ($LARGE MiB): large/small $r_growth, growth/size $r_size"
	echo "$kind: $LARGE MiB in ${t_large} s through sigfs, ${t_plain} s by plain cp: ratio $(ratio "$t_large" "$t_plain")"
	if awk -v r="$r_growth" -v s="$r_size" 'BEGIN { exit !(r <= 2 && s <= 0.01) }'; then
		echo "$kind: PASS (aims: large/small <= 2, growth/size <= 0.01)"
	else
		echo "$kind: FAIL (aims: large/small <= 2, growth/size <= 0.01)"

	fi
done
rm -f "$W"/art-*
exit 0
