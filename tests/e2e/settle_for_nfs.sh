#!/bin/bash
# Story: the mount is exported over NFS (settle_ms = 1000). NFSv3 has no close:
# the server closes its descriptors when it likes, in the middle of a slow
# client's writes or never. So a file is signed once nothing has modified it
# for settle_ms, whether or not it is still open, and a close() signs nothing
# and returns at once: a slow writer gets one signature over the whole file,
# a writer that keeps its descriptor open still gets one, a rewrite replaces
# it, and a file still settling when sigfsd stops is handled at the next start
# as the journal says (NAME.err: its writer may not have finished).
. "$(dirname "$0")/lib.sh"

SETTLE_MS=1000
TEAM=sigfs-e2e-team
ensure_group "$TEAM"
for u in sf-ann sf-ben; do
	ensure_user "$u"
	usermod -a -G "$TEAM" "$u"
done
ANN=$(id -u sf-ann)
BEN=$(id -u sf-ben)

conf_set sigfs settle_ms "$SETTLE_MS"
# wait_on_close = yes (the default): with settle_ms it must not make close() wait.
conf_set sigfs wait_on_close yes
start_sigfs
make_key nfs
IN=$MNT/nfs

now() {
	date +%s.%N
}

# elapsed_ms T0 T1: milliseconds from T0 to T1 (date +%s.%N values).
elapsed_ms() {
	echo "($2 - $1) * 1000 / 1" | bc
}

# signatures NAME: how many signatures of NAME the audit log records.
signatures() {
	grep -c " sign key=nfs .* name=$1 " "$STATE/audit.log" || true
}

# signed_as NAME LOCALFILE: NAME.sig verifies with openssl against LOCALFILE,
# which is what the mount serves as NAME.
signed_as() {
	verify_raw nfs "$2" "$IN/$1.sig" && cmp -s "$2" "$IN/$1"
}

# --- 1. a slow writer gets one signature, over the whole file -----------------------------
# slow_write MODE NAME: write $T/NAME into the inbox in 16 chunks of 64 KiB, 300 ms
# apart, while a poller looks for NAME.sig every 50 ms. MODE one-fd: one descriptor
# held open throughout; reopen: each chunk through a descriptor of its own, closed
# after it (what ganesha's descriptor cache does to a slow NFSv3 client's writes).
# $T/NAME.early exists if the poller saw NAME.sig before the writer was done;
# $T/NAME.seen holds when it first saw it after.
slow_write() {
	local mode=$1 name=$2 poller
	head -c $((16 * 65536)) /dev/urandom >"$T/$name"
	(
		while [ ! -e "$T/$name.stop" ] && [ ! -e "$T/$name.seen" ]; do
			if [ -e "$IN/$name.sig" ]; then
				if [ -e "$T/$name.done" ]; then
					now >"$T/$name.seen"
				else
					touch "$T/$name.early"
				fi
			fi
			sleep 0.05
		done
	) &
	poller=$!
	at_exit "touch '$T/$name.stop'; wait $poller 2>/dev/null"
	python3 - "$mode" "$T/$name" "$IN/$name" "$T/$name.done" <<'PY'
import os, sys, time
mode, src, dst, done = sys.argv[1:]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for i in range(0, len(data), 65536):
    if i:
        time.sleep(0.3)
        if mode == "reopen":
            fd = os.open(dst, os.O_WRONLY)
    os.pwrite(fd, data[i:i + 65536], i)
    if mode == "reopen" and i + 65536 < len(data):
        os.close(fd)
# Written down before the last close: the close may not be what signs.
with open(done + ".tmp", "w") as f:
    f.write("%.6f\n" % time.time())
os.rename(done + ".tmp", done)
os.close(fd)
PY
	check "$mode: the poller sees $name.sig after the last write" wait_for "$T/$name.seen" 10
	touch "$T/$name.stop"
	wait "$poller"
	check "$mode: the poller never saw $name.sig before the writer was done" \
		test ! -e "$T/$name.early"
	ms=$(elapsed_ms "$(cat "$T/$name.done")" "$(cat "$T/$name.seen")")
	echo "  $name.sig seen $ms ms after the last write"
	check "$mode: it came settle_ms (~$SETTLE_MS ms) after the last write, not before" \
		test "$ms" -ge $((SETTLE_MS - 100))
	check "$mode: the signature verifies (openssl) against the whole file" \
		signed_as "$name" "$T/$name"
	check "$mode: exactly one signature was made (audit log)" test "$(signatures "$name")" -eq 1
	check "$mode: no .err" test ! -e "$IN/$name.err"
}
slow_write one-fd slow.bin
slow_write reopen reopened.bin

# --- 2. a writer that keeps its descriptor open is signed all the same -------------------
echo "data written, descriptor kept open" >"$T/open.txt"
exec 7>"$IN/open.txt"
# Descriptor 7 stays open (no RELEASE, as when ganesha keeps its descriptor);
# bash's redirection of the builtin closes only a duplicate of it (a FLUSH).
echo "data written, descriptor kept open" >&7
t0=$(now)
check "open descriptor: the signature comes while it is open" \
	wait_for "$IN/open.txt.sig" $((SETTLE_MS / 1000 + 3))
ms=$(elapsed_ms "$t0" "$(now)")
check "open descriptor: settle_ms after the write ($ms ms)" test "$ms" -ge $((SETTLE_MS - 100))
check "open descriptor: the descriptor is still open" test -e /proc/$$/fd/7
check "open descriptor: the signature verifies" signed_as open.txt "$T/open.txt"
cp "$IN/open.txt.sig" "$T/open.txt.sig"
exec 7>&-
sleep $((SETTLE_MS / 1000 + 1))
check "open descriptor: its close signs nothing more (one signature)" \
	test "$(signatures open.txt)" -eq 1
check "open descriptor: the signature is the same after the close" \
	cmp -s "$T/open.txt.sig" "$IN/open.txt.sig"

# --- 3. close() returns at once; the signature follows settle_ms later -------------------
head -c 1048576 /dev/urandom >"$T/fast.bin"
t0=$(now)
cp "$T/fast.bin" "$IN/fast.bin"
t1=$(now)
ms=$(elapsed_ms "$t0" "$t1")
echo "  cp of 1 MiB took $ms ms"
check "cp of 1 MiB returns in well under settle_ms ($ms ms < $((SETTLE_MS / 2)))" \
	test "$ms" -lt $((SETTLE_MS / 2))
check "right after cp there is no signature yet" test ! -e "$IN/fast.bin.sig"
check "the signature follows" wait_for "$IN/fast.bin.sig" 10
ms=$(elapsed_ms "$t1" "$(now)")
check "about settle_ms after the close ($ms ms)" test "$ms" -ge $((SETTLE_MS - 100))
check "it verifies" signed_as fast.bin "$T/fast.bin"

# --- 4. a rewrite removes the signature; a new one follows for the new content ------------
head -c 300000 /dev/urandom >"$T/fast2.bin"
cp "$T/fast2.bin" "$IN/fast.bin"
check "rewrite: the old signature is gone at once" test ! -e "$IN/fast.bin.sig"
check "rewrite: a new signature follows" wait_for "$IN/fast.bin.sig" 10
check "rewrite: it verifies against the new content" signed_as fast.bin "$T/fast2.bin"
check_fails "rewrite: not against the old content" verify_raw nfs "$T/fast.bin" "$IN/fast.bin.sig"
check "rewrite: two signatures in all" test "$(signatures fast.bin)" -eq 2

# A truncate is a modification too: truncate(1) opens the file and truncates it through
# the descriptor; the signature follows settle_ms later, over what is left.
head -c 1000 "$T/fast2.bin" >"$T/fast3.bin"
truncate -s 1000 "$IN/fast.bin"
check "truncate: the signature is gone at once" test ! -e "$IN/fast.bin.sig"
check "truncate: a new one follows" wait_for "$IN/fast.bin.sig" 10
check "truncate: over the 1000 bytes left" signed_as fast.bin "$T/fast3.bin"

# --- 5. a digest line and an empty file -------------------------------------------------
head -c 5000 /dev/urandom >"$T/d.bin"
(cd "$T" && sha256sum d.bin) >"$IN/d.bin.sha256"
check "digest line: signed after settle_ms" wait_for "$IN/d.bin.sig" 10
check "digest line: the signature verifies against the file it names" \
	verify_raw nfs "$T/d.bin" "$IN/d.bin.sig"
: >"$IN/empty.bin"
check "empty file: gets its .err" wait_for "$IN/empty.bin.err" 10
check "empty file: which says it is empty" grep -q "the file is empty" "$IN/empty.bin.err"
check "empty file: no .sig" test ! -e "$IN/empty.bin.sig"

# --- 6. the signature's uid is the last modifier's ----------------------------------------
make_key team
chgrp "$TEAM" "$MNT/team"
chmod 0770 "$MNT/team"
echo "ann's first version" >"$T/team.txt"
chmod 0644 "$T/team.txt"
as sf-ann bash -c "cat '$T/team.txt' >'$MNT/team/t.txt' && chgrp $TEAM '$MNT/team/t.txt' &&
	chmod 0660 '$MNT/team/t.txt'"
as sf-ben bash -c "echo 'ben adds a line' >>'$MNT/team/t.txt'"
cat "$T/team.txt" >"$T/team2.txt"
echo 'ben adds a line' >>"$T/team2.txt"
check "uid: ann's file, appended to by ben, is signed once" wait_for "$MNT/team/t.txt.sig" 10
check "uid: over both writes" verify_raw team "$T/team2.txt" "$MNT/team/t.txt.sig"
check "uid: the audit line names ben (the last writer) as the one who asked, ann as owner" \
	grep -q " sign key=team uid=$BEN owner=$ANN .* name=t.txt " "$STATE/audit.log"
check "uid: one signature" test "$(grep -c " sign key=team .* name=t.txt " "$STATE/audit.log")" -eq 1

# --- 7. removed while it settles: nothing is signed -------------------------------------
echo gone >"$IN/gone.bin"
rm "$IN/gone.bin"
sleep $((SETTLE_MS / 1000 + 1))
check "removed while settling: no .sig, no .err" \
	prints_nothing find "$IN" -maxdepth 1 -name 'gone.bin.*'
check "removed while settling: no signature in the audit log" test "$(signatures gone.bin)" -eq 0

# --- 8. sigfsd stops while a file settles: the next start follows the journal --------------
# The file must still be settling when sigfsd has stopped: a mount namespace
# (ip netns exec ...) made meanwhile holds a copy of the mount, and keeps sigfsd
# serving it after the unmount for as long as it lives. So this run settles
# for the longest time allowed.
check "sigfsd stops cleanly" sigfs_exits_cleanly
conf_set sigfs settle_ms 600000
start_sigfs
head -c 70000 /dev/urandom >"$T/pending.bin"
cp "$T/pending.bin" "$IN/pending.bin"
check "pending: sigfsd stops cleanly while pending.bin settles" sigfs_exits_cleanly
check "pending: no signature was made" test "$(signatures pending.bin)" -eq 0
check "pending: its write is still journaled (W, not done)" \
	python3 - "$STATE/journal" pending.bin <<'PY'
import sys
path, name = sys.argv[1:]
last = {}
for line in open(path, errors="replace"):
    f = line.split()
    if f and f[0] == "D" and len(f) in (2, 3):
        last.pop(f[1], None)
    elif f and f[0] in "WA" and len(f) in (5, 6, 7):
        last[f[1]] = (f[0], bytes.fromhex(f[4]).decode())
sys.exit(0 if [o for o, n in last.values() if n == name] == ["W"] else 1)
PY
conf_set sigfs settle_ms "$SETTLE_MS"
start_sigfs
# The writer may not have finished (NFS gives no close to tell): it must write again.
check "pending: after the restart it gets .err" wait_for "$IN/pending.bin.err" 10
check "pending: which says sigfsd stopped while it was written" \
	grep -q "sigfsd stopped while this file was being written" "$IN/pending.bin.err"
sleep $((SETTLE_MS / 1000 + 1))
check "pending: and no .sig" test ! -e "$IN/pending.bin.sig"
check "pending: the earlier signatures are still there" signed_as fast.bin "$T/fast3.bin"
check "pending: written again, it is signed" cp "$T/pending.bin" "$IN/pending.bin"
check "pending: signature follows" wait_for "$IN/pending.bin.sig" 10
check "pending: it verifies" signed_as pending.bin "$T/pending.bin"
check "pending: the .err is gone" test ! -e "$IN/pending.bin.err"
check "sigfsd stops cleanly" sigfs_exits_cleanly

done_testing
