#!/bin/bash
# Story: a team shares an inbox. Each member's signature covers exactly the
# bytes that member wrote and belongs to them; no member can crash the daemon,
# replace or shadow another member's signature, make another member's close()
# report a signature that never came, or keep the others waiting; the audit log
# names who asked for each signature and whose file it was.
# The team ($TEAM: ann and ben, not mal) is matrixlib.sh's.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/matrixlib.sh"

matrix_users
ANN=$(id -u sf-ann)
BEN=$(id -u sf-ben)
K=$MNT/.ctl/keys

conf_set sigfs workers 1
start_sigfs
# A world-readable copy of the test's files, for the users.
mkdir -m 0755 "$T/pub"
head -c 40000 /dev/urandom >"$T/pub/fw.bin"
head -c 30000 /dev/urandom >"$T/pub/other.bin"
head -c 20000 /dev/urandom >"$T/pub/fw2.bin"
chmod 0644 "$T/pub"/*

# shared KEY MODE [ALGORITHM]: a key whose inbox the team shares with mode MODE.
shared() {
	make_key "$1" "${3:-}"
	chgrp "$TEAM" "$MNT/$1"
	chmod "$2" "$MNT/$1"
}

# signing_now: a job is being signed (one worker).
signing_now() {
	grep -q '^queue: .* 1 signing' "$MNT/.ctl/status"
}

# --- 1. truncating a file while it is signed does not take the daemon down --------------------
# Ed25519 signs the whole file; the daemon used to map it, and a member who
# truncates it meanwhile killed the daemon (SIGBUS) and the mount with it.
shared ed 1770 ed25519
as sf-ann truncate -s 1G "$MNT/ed/.big"
as sf-ann mv "$MNT/ed/.big" "$MNT/ed/big.bin"
check "fixture: the 1 GiB file is being signed" wait_until signing_now
sleep 0.5
# truncate(1)'s close() signs the now empty file, which fails (EIO): that is fine.
as sf-ann truncate -s 0 "$MNT/ed/big.bin" 2>/dev/null || true
check "ann truncated it while it was signed" test ! -s "$MNT/ed/big.bin"
check "the daemon is still there" same_daemon
check "the mount still answers" test -r "$MNT/.ctl/status"
check "the truncated file gets its .err (empty file)" wait_for "$MNT/ed/big.bin.err" 60
check "which says the file is empty" grep -q "the file is empty" "$MNT/ed/big.bin.err"
check "no signature over the 1 GiB that are gone" test ! -e "$MNT/ed/big.bin.sig"
cp "$T/pub/fw.bin" "$MNT/ed/after.bin"
check "signing goes on" verify_raw ed "$T/pub/fw.bin" "$MNT/ed/after.bin.sig"
# Past 16 MiB the private copy is a file, not memory; with a hole in the middle.
head -c 12M /dev/urandom >"$T/large.bin"
truncate -s 30M "$T/large.bin"
head -c 4M /dev/urandom >>"$T/large.bin"
cp "$T/large.bin" "$MNT/ed/large.bin"
check "a 34 MiB file with a hole is signed from its private copy, and verifies" \
	verify_raw ed "$T/large.bin" "$MNT/ed/large.bin.sig"

# --- 2. in a sticky inbox an output belongs to the artifact that made it -------------------------
shared team 1770
check "ann signs fw.bin in the sticky team inbox" as sf-ann cp "$T/pub/fw.bin" "$MNT/team/fw.bin"
check "the .sig is ann's" stat_is "$MNT/team/fw.bin.sig" "sf-ann:$(id -gn sf-ann) 444"
cp "$MNT/team/fw.bin.sig" "$T/ann.sig"
check_fails_with "ben cannot remove ann's .sig (the sticky bit)" "Operation not permitted" \
	as sf-ben rm -f "$MNT/team/fw.bin.sig"
check_fails_with "nor remove it by touching fw.bin.sha256" "Operation not permitted" \
	as sf-ben touch "$MNT/team/fw.bin.sha256"
(cd "$T/pub" && sha256sum other.bin | sed 's/other.bin/fw.bin/') >"$T/pub/evil.sha256"
check_fails_with "nor replace it with a digest line of other bytes" "Operation not permitted" \
	as sf-ben cp "$T/pub/evil.sha256" "$MNT/team/fw.bin.sha256"
printf '{"version":"1","required":{"input":{"type":"sha256","value":"%s"},"output":{"type":"sigfs-raw"}}}' \
	"$(sha256sum "$T/pub/other.bin" | cut -d' ' -f1)" >"$T/pub/evil.sigreq"
check_fails_with "nor with a signing request for fw.bin" "Operation not permitted" \
	as sf-ben cp "$T/pub/evil.sigreq" "$MNT/team/fw.bin.sigreq"
as sf-ben cp "$T/pub/evil.sha256" "$MNT/team/.evil"
check_fails_with "nor by renaming a file of his onto fw.bin.sha256" "Operation not permitted" \
	as sf-ben mv "$MNT/team/.evil" "$MNT/team/fw.bin.sha256"
check "ann's .sig is untouched" cmp -s "$T/ann.sig" "$MNT/team/fw.bin.sig"
check "and verifies against ann's bytes" verify_raw team "$T/pub/fw.bin" "$MNT/team/fw.bin.sig"
check "no fw.bin.sha256 or .sigreq of ben's exists" \
	test ! -e "$MNT/team/fw.bin.sha256" -a ! -e "$MNT/team/fw.bin.sigreq"
check "the refusal is logged with the file in the way" \
	grep -q "uid $BEN: team/fw.bin.sha256 shares its outputs with fw.bin, which belongs to uid $ANN" "$LOG"
as sf-ann chgrp "$TEAM" "$MNT/team/fw.bin"
as sf-ann chmod 0664 "$MNT/team/fw.bin"
check_fails_with "ben cannot rewrite ann's group-writable fw.bin: its .sig is ann's" \
	"Operation not permitted" as sf-ben bash -c "echo x >> '$MNT/team/fw.bin'"
check "ann's .sig is still there" cmp -s "$T/ann.sig" "$MNT/team/fw.bin.sig"
check "ben signs a name of his own" as sf-ben cp "$T/pub/other.bin" "$MNT/team/ben.bin"
check "ben's .sig is ben's" stat_is "$MNT/team/ben.bin.sig" "sf-ben:$(id -gn sf-ben) 444"
check "ann may replace her own .sig with a digest line of hers" \
	as sf-ann bash -c "cd '$T/pub' && sha256sum fw.bin > '$MNT/team/fw.bin.sha256'"
check "the new .sig is ann's and verifies" verify_raw team "$T/pub/fw.bin" "$MNT/team/fw.bin.sig"
check_fails_with "a non-member cannot even look" "Permission denied" as sf-mal ls "$MNT/team"

# --- 3. close() returns 0 only when the writer's bytes were signed ------------------------------
# In an inbox without the sticky bit every member may remove every file; ben
# does, while ann's copy waits in the queue behind ann's own large job.
shared open 0770
as sf-ann truncate -s 8G "$MNT/open/.big"
as sf-ann mv "$MNT/open/.big" "$MNT/open/big.bin"
check "fixture: ann's 8 GiB job is being signed" wait_until signing_now
as sf-ann cp "$T/pub/fw2.bin" "$MNT/open/fw2.bin" 2>"$T/ann.cp.err" &
ann_cp=$!
check "fixture: ann's fw2.bin waits behind it" wait_until grep -q '^queue: 1 waiting' "$MNT/.ctl/status"
check "ben touches fw2.bin.sha256 (allowed: no sticky bit)" as sf-ben touch "$MNT/open/fw2.bin.sha256"
rc=0
wait "$ann_cp" || rc=$?
check "ann's cp fails instead of reporting a signature that never came" test "$rc" -ne 0
check "with 'Operation canceled'" grep -q "Operation canceled" "$T/ann.cp.err"
check "and no .sig over ann's bytes appeared" test ! -e "$MNT/open/fw2.bin.sig"
check "the big job still ends with its signature" wait_for "$MNT/open/big.bin.sig" 120

# --- 4. one member's stream does not starve another -----------------------------------------------
# One worker; ann renames a large file in (it is hashed by the worker, not
# while written). ben's small file is signed while ann's is still being read.
as sf-ann truncate -s 8G "$MNT/open/.big2"
as sf-ann mv "$MNT/open/.big2" "$MNT/open/big2.bin"
check "fixture: ann's second 8 GiB job is being signed" wait_until signing_now
start=$(date +%s%N)
check "ben's cp returns with its signature" as sf-ben cp "$T/pub/other.bin" "$MNT/open/ben.bin"
ms=$((($(date +%s%N) - start) / 1000000))
echo "  ben's file was signed in $ms ms while ann's 8 GiB were being read"
check "ben's signature verifies" verify_raw open "$T/pub/other.bin" "$MNT/open/ben.bin.sig"
check "ben did not wait for ann's job (it is still running)" test ! -e "$MNT/open/big2.bin.sig"
check "ben waited less than 5 s (one turn of ann's job is 50 ms)" test "$ms" -lt 5000
check "ann's job ends with a good signature" wait_for "$MNT/open/big2.bin.sig" 120
truncate -s 8G "$T/zero8g"
check "which is over the 8 GiB she renamed in" verify_raw open "$T/zero8g" "$MNT/open/big2.bin.sig"
rm -f "$T/zero8g"

# --- 5. the audit log names who asked, and whose file it was ------------------------------------
make_key benpriv
chown sf-ben "$MNT/benpriv"
chmod 0700 "$MNT/benpriv"
check "ann signs a.bin in the open inbox" as sf-ann cp "$T/pub/fw.bin" "$MNT/open/a.bin"
check "ben moves ann's file into his private inbox" as sf-ben mv "$MNT/open/a.bin" "$MNT/benpriv/a.bin"
check "it is signed there" wait_for "$MNT/benpriv/a.bin.sig"
check "the audit line names ben as the one who asked and ann as the owner" \
	grep -q " sign key=benpriv uid=$BEN owner=$ANN .* name=a.bin " "$STATE/audit.log"
check "ann's own signature named ann twice" \
	grep -q " sign key=open uid=$ANN owner=$ANN .* name=a.bin " "$STATE/audit.log"

# --- 6. mknod (how NFS servers create files) makes old outputs void -------------------------------
as sf-ann cp "$T/pub/fw.bin" "$MNT/team/m.bin"
as sf-ann rm "$MNT/team/m.bin"
check "fixture: m.bin is gone, its .sig stayed" test -e "$MNT/team/m.bin.sig" -a ! -e "$MNT/team/m.bin"
check "ann creates m.bin again with mknod" as sf-ann /usr/bin/python3 -c "import os; os.mknod('$MNT/team/m.bin', 0o644)"
check "the old .sig went with it (it was not over the new file)" test ! -e "$MNT/team/m.bin.sig"
as sf-ann cp "$T/pub/fw.bin" "$MNT/team/n.bin"
as sf-ann rm "$MNT/team/n.bin"
check_fails_with "ben cannot mknod over the name of ann's .sig in the sticky inbox" \
	"Operation not permitted" as sf-ben /usr/bin/python3 -c "import os; os.mknod('$MNT/team/n.bin', 0o644)"

# --- 7. O_TRUNC empties a file only once its old outputs are void --------------------------------
# The daemon's system calls show the order: the write is journaled (and the
# outputs removed) before the file loses its content.
as sf-ann cp "$T/pub/fw.bin" "$MNT/team/t.bin"
strace -f -qq -s 512 -p "$SIGFS_WORKER" -e trace=openat,ftruncate,write -o "$T/strace" &
STRACE_PID=$!
at_exit "kill $STRACE_PID 2>/dev/null; wait $STRACE_PID 2>/dev/null"
check "fixture: strace is attached (it sees the daemon answer a read of .ctl/status)" \
	wait_until bash -c "cat '$MNT/.ctl/status' >/dev/null; test -s '$T/strace'"
as sf-ann bash -c ": > '$MNT/team/t.bin'"
sleep 0.5
kill "$STRACE_PID"
wait "$STRACE_PID" 2>/dev/null || true
hexname=$(printf t.bin | od -An -tx1 | tr -d ' \n')
check "the journal record of the rewrite comes before the truncation" python3 - "$T/strace" "$hexname" <<'PY'
import re, sys
lines = open(sys.argv[1]).read().splitlines()
w = next((i for i, l in enumerate(lines) if re.search(r'write\(\d+, "W \d+ \d+ [0-9a-f]+ ' + sys.argv[2], l)), None)
t = next((i for i, l in enumerate(lines)
          if ('t.bin' in l and 'O_TRUNC' in l) or re.search(r'ftruncate\(\d+, 0\)', l)), None)
print(f"  journal W at line {w}, truncation at line {t}", file=sys.stderr)
sys.exit(0 if w is not None and t is not None and w < t else 1)
PY
check "and the file is truncated through a descriptor checked to be t.bin, not by open(O_TRUNC)" \
	no_match 't.bin.*O_TRUNC' "$T/strace"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
