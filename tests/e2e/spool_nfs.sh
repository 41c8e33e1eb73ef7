#!/bin/bash
# Story: a plain directory signed by the spool (sigfsd --spool DIR, no mount;
# issue 11) is exported over NFS by nfs-ganesha (FSAL_VFS), as the shipped
# etc/ganesha-sigfs.conf exports the inboxes of a mount (one export per key,
# Pseudo /sigfs/KEY; tests/e2e/nfslib.sh, with the spool directory in place of
# the mount point). libnfs clients (nfsclient.c) write over NFSv3 and NFSv4:
# a copy, a digest line, a dot file renamed in and an overwrite each get a .sig
# that openssl verifies, read back over NFS.
#
# The point of the story is the slow writer. On a plain directory ganesha's fd
# cache (the snippet's MDCACHE block) closes the file about once a second,
# whether or not the client has finished: over NFSv3 (no close in the
# protocol) the spool sees IN_CLOSE_WRITE in the middle of the file (measured
# with ganesha 4.3 and 64 KiB writes 300 ms apart: five times per 1 MiB, plus
# once after the end; over NFSv4 only at the client's CLOSE and once more from
# the cache). The story records the inotify events to show it happened, and
# asserts that no signature over a prefix ever existed: every .sig a poller
# saw over NFS verifies over the finished file, and every audit line of the
# file carries the finished file's digest (the audit log has a line for every
# signature made, placed or not seen). The writer and the poller are
# nfslib.sh's (nfs_slow_writer), shared with nfs_ganesha.sh.
#
# The spool runs with settle_ms = 1000, as docs/nfs.md recommends for a mount
# exported over NFS (a file is signed once nothing wrote to it for that long).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nfslib.sh"
. "$(dirname "$0")/spoollib.sh"

STORY_START=$(date +%s.%N)
conf_set sigfs settle_ms 1000

start_sigfs --spool "$SPOOL"
make_key probe
make_key nfs
make_key other ed25519
check "the spool has the keys' directories" wait_until test -d "$SPOOL/nfs" -a -d "$SPOOL/other"
check "the key nfs signs sha256 digests (the audit lines name them)" \
	test "$(cat "$MNT/.ctl/keys/nfs/digest")" = sha256
save_keys probe nfs other
stop_sigfs
start_spool_only --spool "$SPOOL"
# ganesha exports SPOOL/KEY as it would export MNT/KEY.
MNT=$SPOOL nfs_start nfs other
IN=$SPOOL/nfs
mkdir -p "$T/files"

# Every inotify event on the nfs inbox, with the time: what ganesha did.
python3 -c "$(python_inotify)
import sys, time
names = {IN_MODIFY: 'MODIFY', IN_CLOSE_WRITE: 'CLOSE_WRITE', IN_MOVED_TO: 'MOVED_TO', IN_CREATE: 'CREATE'}
fd = watch(sys.argv[1], IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE)
out = open(sys.argv[2], 'a', buffering=1)
out.write('ready\n')
while True:
    for mask, name in events(fd, 1.0):
        out.write('%.3f %s %s\n' % (time.time(), '|'.join(v for k, v in names.items() if mask & k), name))
" "$IN" "$T/events.log" &
WATCHER=$!
at_exit "kill $WATCHER 2>/dev/null; wait $WATCHER 2>/dev/null"
check "fixture: the inotify recorder runs" wait_until grep -q '^ready$' "$T/events.log"

url() {
	nfs_url nfs "$1" "$V"
}

# sig_verifies NAME LOCAL: NAME.sig, read over NFS, verifies over LOCAL (openssl).
sig_verifies() {
	sig_over_nfs sverify nfs "$1" "$V" "$2"
}

# audit_digests NAME: the digests of the audit's sign lines of key nfs for NAME, one a line.
audit_digests() {
	awk -v n="name=$1" '$3 == "sign" && $4 == "key=nfs" && $(NF-1) == n {
		sub(/^digest=sha256:/, "", $(NF-2)); print $(NF-2) }' "$STATE/audit.log"
}

# audited_only_over NAME LOCAL: NAME was signed at least once, and every
# signature the audit log records for it is over LOCAL's digest.
audited_only_over() {
	local want got
	want=$(sha256sum "$2" | cut -d' ' -f1)
	got=$(audit_digests "$1")
	[ -n "$got" ] || { echo "  no audit line for $1" >&2; return 1; }
	if grep -qv -x "$want" <<<"$got"; then
		echo "  $1 was signed over other bytes too: $(grep -v -x "$want" <<<"$got" | tr '\n' ' ')(want $want)" >&2
		return 1
	fi
}

# --- copies, digest lines, renames, overwrites over NFSv3 and NFSv4 ----------------------------
head -c 1048576 /dev/urandom >"$T/files/1m.bin"
head -c 5000 /dev/urandom >"$T/o.bin"
declare -A TIMES
for V in 3 4; do
	check "v$V: a file copied into the second export is signed by its key (ed25519)" \
		nc put "nfs://$NFS_HOST/sigfs/other/o-v$V.bin?version=$V" "$T/o.bin" --wait-for "o-v$V.bin.sig"
	check "v$V: and verifies" sverify other "$T/o.bin" "$SPOOL/other/o-v$V.bin.sig"
	check "v$V: nothing came into the first inbox" test ! -e "$IN/o-v$V.bin"

	out=$(nc put "$(url "1m-v$V.bin")" "$T/files/1m.bin" --wait-for "1m-v$V.bin.sig" --timeout 60) ||
		fail "v$V: 1m-v$V.bin: no .sig over NFS: $out"
	TIMES[$V]=$(awk '/visible after/ {print $3}' <<<"$out")
	echo "# v$V: end of the 1 MiB copy to a visible .sig: ${TIMES[$V]} s"
	check "v$V 1 MiB: the .sig read over NFS verifies (openssl)" sig_verifies "1m-v$V.bin" "$T/files/1m.bin"
	check "v$V 1 MiB: the file in the spool is the original" cmp -s "$IN/1m-v$V.bin" "$T/files/1m.bin"
	check "v$V 1 MiB: signed only over the whole file (audit)" audited_only_over "1m-v$V.bin" "$T/files/1m.bin"

	head -c 200000 /dev/urandom >"$T/files/d-v$V.bin"
	(cd "$T/files" && sha256sum "d-v$V.bin" >"d-v$V.bin.sha256")
	check "v$V digest line: d-v$V.bin.sig appears" \
		nc put "$(url "d-v$V.bin.sha256")" "$T/files/d-v$V.bin.sha256" --wait-for "d-v$V.bin.sig"
	check "v$V digest line: the .sig verifies against the artifact" sig_verifies "d-v$V.bin" "$T/files/d-v$V.bin"

	head -c 500000 /dev/urandom >"$T/files/m-v$V.bin"
	nfs_rename_in sverify nfs "$V" "m-v$V.bin" "$T/files/m-v$V.bin" "$IN"

	head -c 700000 /dev/urandom >"$T/files/w-v$V.old"
	head -c 600000 /dev/urandom >"$T/files/w-v$V.new"
	nc put "$(url "w-v$V.bin")" "$T/files/w-v$V.old" --wait-for "w-v$V.bin.sig" >/dev/null
	check "v$V overwrite: the first .sig verifies" sig_verifies "w-v$V.bin" "$T/files/w-v$V.old"
	check "v$V overwrite: the new content is written over it" nc put "$(url "w-v$V.bin")" "$T/files/w-v$V.new"
	check "v$V overwrite: a .sig over the new content comes" \
		signed_over nfs "$T/files/w-v$V.new" "$IN/w-v$V.bin.sig" 30
	check "v$V overwrite: read over NFS it verifies over the new content" sig_verifies "w-v$V.bin" "$T/files/w-v$V.new"
	check "v$V overwrite: no .err" test ! -e "$IN/w-v$V.bin.err"
done

# --- a slow writer and a poller ---------------------------------------------------------------------
# nfslib.sh's nfs_slow_writer: the writer, the poller, and their checks; then
# what the spool saw of it (inotify) and what it signed (audit log).

# closes_between NAME FROM TO: IN_CLOSE_WRITE events of NAME between two times.
closes_between() {
	awk -v n="$1" -v a="$2" -v b="$3" '$3 == n && $2 ~ /CLOSE_WRITE/ && $1 >= a && $1 < b' "$T/events.log" | wc -l
}

head -c 1048576 /dev/urandom >"$T/files/slow.bin"
for V in 3 4; do
	name=slow-v$V.bin
	nfs_slow_writer sverify nfs "$name" "$V" "$T/files/slow.bin"
	mid=$(closes_between "$name" "$NFS_SLOW_T0" "$(awk -v t="$NFS_SLOW_T1" 'BEGIN {printf "%.3f", t - 0.35}')")
	echo "# v$V slow writer: ganesha closed $name $mid times before the writer's last write" \
		"($(closes_between "$name" "$NFS_SLOW_T0" 9999999999) IN_CLOSE_WRITE in all)"
	[ "$V" != 3 ] || check "v3 slow writer: fixture: the spool saw IN_CLOSE_WRITE mid-file (ganesha's fd cache)" \
		test "$mid" -ge 1
	check "v$V slow writer: every signature made of it is over the finished file (audit log)" \
		audited_only_over "$name" "$T/files/slow.bin"
	echo "# v$V slow writer: $(audit_digests "$name" | wc -l) audit line(s) for $name"
	check "v$V slow writer: no .err" test ! -e "$IN/$name.err"
done

echo "# end of a 1 MiB copy to a visible .sig: v3 ${TIMES[3]} s, v4 ${TIMES[4]} s"
echo "# the story took $(awk -v s="$STORY_START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s"
check "ganesha logged no error while serving" nfs_log_clean
nfs_stop
check "the spool stops cleanly on SIGTERM" stop_spool_only
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
