#!/bin/bash
# Story: sigfsd is killed (kill -9) in the middle of a batch of 1,000 files.
# After a restart every artifact whose close() succeeded gets its signature,
# every job the journal accepted is finished, an artifact that was still being
# written gets NAME.err, and the journal does not keep growing.
. "$(dirname "$0")/lib.sh"

NFILES=${NFILES:-1000}
WRITERS=4

# pending_names KEY: names of KEY's artifacts whose last journal record is A
# (accepted, not done), from the journal as the killed daemon left it.
pending() {
	python3 - "$STATE/journal" "$1" "$2" <<'PY'
import sys
path, key, op = sys.argv[1:]
last = {}
for line in open(path, errors="replace"):
    f = line.split()
    if not f:
        continue
    if f[0] == "D" and len(f) in (2, 3):
        last.pop(f[1], None)
    elif f[0] in "WA" and len(f) in (5, 6, 7):
        last[f[1]] = (f[0], bytes.fromhex(f[3]).decode(), bytes.fromhex(f[4]).decode())
for o, k, n in last.values():
    if o == op and k == key:
        print(n)
PY
}

# batch TAG KEY...: WRITERS parallel writers copy NFILES files (round-robin
# over the keys' inboxes); $T/TAG.ok.KEY lists the copies whose cp succeeded.
# Starts them in the background; their pids are in $BATCH_PIDS.
batch() {
	local tag=$1 w
	shift
	local keys=("$@")
	BATCH_PIDS=
	for w in $(seq 0 $((WRITERS - 1))); do
		(
			i=$w
			while [ "$i" -lt "$NFILES" ]; do
				k=${keys[$((i % ${#keys[@]}))]}
				head -c $((1000 + i * 7)) "$T/src" >"$T/tmp.$w"
				if cp "$T/tmp.$w" "$MNT/$k/$tag-$i.bin" 2>/dev/null; then
					echo "$tag-$i.bin" >>"$T/$tag.ok.$k"
				fi
				i=$((i + WRITERS))
			done
		) &
		BATCH_PIDS="$BATCH_PIDS $!"
	done
}

# ok_count TAG: how many copies have succeeded so far.
ok_count() {
	cat "$T/$1".ok.* 2>/dev/null | wc -l
}

# wait_sigs KEY NAMEFILE SECONDS: every name listed has NAME.sig.
wait_sigs() {
	local key=$1 list=$2 t=$(($3 * 10)) n missing
	while :; do
		missing=0
		while read -r n; do
			[ -e "$MNT/$key/$n.sig" ] || { missing=1; break; }
		done <"$list"
		[ $missing = 0 ] && return 0
		t=$((t - 1))
		[ $t -gt 0 ] || { echo "  $key: $n has no .sig" >&2; return 1; }
		sleep 0.1
	done
}

# outputs_verify KEY NAMEFILE: every listed .sig verifies, and is of the content we wrote.
outputs_verify() {
	local key=$1 list=$2 n i bad=0
	while read -r n; do
		i=${n##*-}
		i=${i%.bin}
		head -c $((1000 + i * 7)) "$T/src" | cmp -s - "$MNT/$key/$n" || { echo "  $n: wrong content" >&2; bad=1; }
	done <"$list"
	[ $bad = 0 ] || return 1
	# shellcheck disable=SC2046
	verify_many "$key" "$MNT/$key" $(cat "$list")
}

# kill_mid_batch TAG AT [KEY]: kill sigfsd once AT copies succeeded. With KEY,
# first rename a 512 MiB file into KEY's inbox and wait until copies queue
# behind it (one worker reads it): jobs are then surely waiting at the kill.
kill_mid_batch() {
	local tag=$1 at=$2 key=${3:-}
	for _ in $(seq 1 1200); do
		[ "$(ok_count "$tag")" -ge "$at" ] && break
		sleep 0.05
	done
	if [ -n "$key" ]; then
		truncate -s 512M "$MNT/$key/.hold"
		mv "$MNT/$key/.hold" "$MNT/$key/hold.bin"
		for _ in $(seq 1 200); do
			grep -qE '^queue: ([3-9]|[1-9][0-9]+) waiting' "$MNT/.ctl/status" && break
			sleep 0.025
		done
	fi
	echo "  killing sigfsd after $(ok_count "$tag") successful copies"
	kill9_sigfs
	# shellcheck disable=SC2086
	wait $BATCH_PIDS
	echo "  $(ok_count "$tag") of $NFILES copies succeeded in all"
}

head -c 20000 /dev/urandom >"$T/src"

# --- (a) wait_on_close = no: close() returns once the job is journaled ---------------------------
conf_set sigfs wait_on_close no
conf_set sigfs workers 1
conf_set sigfs log_level info
start_sigfs
make_key rsa rsa-4096
make_key ed ed25519
batch a rsa ed
kill_mid_batch a $((NFILES / 3)) rsa
check "(a) the batch was interrupted: some copies failed" test "$(ok_count a)" -lt "$NFILES"
check "(a) and some succeeded" test "$(ok_count a)" -gt 0
for k in rsa ed; do
	touch "$T/a.ok.$k"
	pending "$k" A >"$T/a.pending.$k"
	echo "  $k: $(wc -l <"$T/a.pending.$k") accepted jobs unfinished at the kill"
	grep -qxFf "$T/a.pending.$k" "$T/a.ok.$k" 2>/dev/null && echo "  ($k: some of them are copies that succeeded)"
done
check "(a) jobs were still queued at the kill (one worker)" \
	bash -c "test -s '$T/a.pending.rsa' || test -s '$T/a.pending.ed'"
check "(a) some copies that succeeded had no signature yet at the kill" bash -c \
	"for n in \$(cat '$T/a.ok.rsa'); do test -e '$STATE/inbox/rsa/'\$n.sig || exit 0; done; exit 1"
journal_at_kill=$(stat -c %s "$STATE/journal")
cp "$STATE/journal" "$T/journal.a"
m=$(log_mark)
start_sigfs
check "(a) restart: the log says it resumed the accepted jobs" bash -c \
	"sleep 0.2; grep -q 'journal: resumed [1-9][0-9]* accepted jobs' <(tail -n +$((m + 1)) '$LOG')"
for k in rsa ed; do
	check "(a) $k: every copy that succeeded gets its .sig" wait_sigs "$k" "$T/a.ok.$k" 150
	check "(a) $k: and every one verifies" outputs_verify "$k" "$T/a.ok.$k"
	check "(a) $k: every job accepted before the kill got its .sig" wait_sigs "$k" "$T/a.pending.$k" 30
done
check "(a) no .err for a copy that succeeded" bash -c \
	"cd '$MNT' && for k in rsa ed; do for n in \$(cat '$T/a.ok.'\$k); do test ! -e \$k/\$n.err || exit 1; done; done"
check "(a) the file that held the worker at the kill is signed too" wait_for "$MNT/rsa/hold.bin.sig" 120
# Every signature in the inboxes (also those of copies the kill interrupted) verifies.
for k in rsa ed; do
	(cd "$MNT/$k" && for f in *.sig; do echo "${f%.sig}"; done) >"$T/a.all.$k"
	# shellcheck disable=SC2046
	check "(a) $k: every .sig in the inbox ($(wc -l <"$T/a.all.$k")) verifies" \
		verify_many "$k" "$MNT/$k" $(cat "$T/a.all.$k")
done
# Nothing left behind: no artifact that has neither a .sig nor an .err.
orphans=$(cd "$MNT" && for k in rsa ed; do for f in "$k"/*.bin; do
	[ -e "$f.sig" ] || [ -e "$f.err" ] || echo "$f"; done; done)
for o in $orphans; do
	echo "  $o has neither .sig nor .err; its journal records at the kill:" \
		"$(grep -c " $(printf %s "${o#*/}" | od -An -tx1 | tr -d ' \n')\$" "$T/journal.a")," \
		"size $(stat -c %s "$MNT/$o")"
done
check "(a) every artifact has a .sig or an .err (nothing left without an answer)" test -z "$orphans"
check "(a) the queue drains" bash -c \
	"for i in \$(seq 300); do grep -q '^queue: 0 waiting, 0 signing' '$MNT/.ctl/status' && exit 0; sleep 0.1; done; exit 1"
echo "  journal: $journal_at_kill bytes at the kill, $(stat -c %s "$STATE/journal") after the recovery"
stop_sigfs
start_sigfs
check "(a) after a clean restart the journal is empty again (was $journal_at_kill bytes)" \
	test "$(stat -c %s "$STATE/journal")" -lt 1024

# --- (b) wait_on_close = yes: plus a file being written at the kill -----------------------------
stop_sigfs
conf_set sigfs wait_on_close yes
conf_set sigfs workers 1
start_sigfs
make_key ec
make_key rsb rsa-4096
# A writer that holds a file open, half written, when the daemon dies.
python3 - "$MNT/ec/open.bin" "$T/open.ready" <<'PY' &
import os, sys, time
f = open(sys.argv[1], "wb", buffering=0)
f.write(os.urandom(100000))
open(sys.argv[2], "w").close()
time.sleep(3600)
PY
holder=$!
check "(b) a writer holds ec/open.bin open" wait_for "$T/open.ready" 10
make_key edb ed25519
batch b ec rsb
for _ in $(seq 1 1200); do
	[ "$(ok_count b)" -ge $((NFILES / 4)) ] && break
	sleep 0.05
done
# A slow job (Ed25519 signs the whole 512 MiB file; one worker) whose close() is
# waiting at the kill, while the batch goes on.
python3 - "$MNT/edb/big.bin" <<'PY' &
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
buf = bytes(1 << 20)
for _ in range(512):
    os.write(fd, buf)
try:
    os.close(fd)
    print("  big.bin: close() returned before the kill")
except OSError as e:
    print("  big.bin: close() failed:", e)
PY
bigw=$!
for _ in $(seq 1 600); do
	pending edb A | grep -qx big.bin && break
	sleep 0.05
done
kill_mid_batch b 0
wait "$bigw" || true
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
check "(b) the batch was interrupted: some copies failed" test "$(ok_count b)" -lt "$NFILES"
check "(b) and some succeeded" test "$(ok_count b)" -gt 0
for k in ec rsb; do
	touch "$T/b.ok.$k"
	pending "$k" A >"$T/b.pending.$k"
	echo "  $k: $(wc -l <"$T/b.pending.$k") accepted jobs unfinished at the kill"
done
pending edb A >"$T/b.pending.edb"
check "(b) the slow job was accepted but unfinished at the kill" grep -qx big.bin "$T/b.pending.edb"
check "(b) and its close() had not returned: no big.bin.sig" test ! -e "$STATE/inbox/edb/big.bin.sig"
pending ec W >"$T/b.writing.ec"
check "(b) the journal says open.bin was being written" grep -qx open.bin "$T/b.writing.ec"
check "(b) every copy that succeeded had its .sig at once (wait_on_close = yes)" bash -c \
	"for k in ec rsb; do for n in \$(cat '$T/b.ok.'\$k); do test -e '$STATE/inbox/'\$k/\$n.sig || exit 1; done; done"
start_sigfs
for k in ec rsb; do
	check "(b) $k: every copy that succeeded has its .sig after the restart" wait_sigs "$k" "$T/b.ok.$k" 60
	check "(b) $k: and every one verifies" outputs_verify "$k" "$T/b.ok.$k"
	check "(b) $k: every job accepted before the kill got its .sig" wait_sigs "$k" "$T/b.pending.$k" 60
	(cd "$MNT/$k" && for f in *.sig; do echo "${f%.sig}"; done) >"$T/b.all.$k"
	# shellcheck disable=SC2046
	check "(b) $k: every .sig in the inbox ($(wc -l <"$T/b.all.$k")) verifies" \
		verify_many "$k" "$MNT/$k" $(cat "$T/b.all.$k")
done
check "(b) the slow job accepted before the kill gets its .sig after the restart" wait_for "$MNT/edb/big.bin.sig" 120
head -c $((512 * 1048576)) /dev/zero >"$T/zeros"
check "(b) and it verifies" verify_raw edb "$T/zeros" "$MNT/edb/big.bin.sig"
rm -f "$T/zeros"
check "(b) open.bin gets open.bin.err after the restart" wait_for "$MNT/ec/open.bin.err" 10
check "(b) saying sigfsd stopped while it was being written" \
	grep -q "sigfsd stopped while this file was being written" "$MNT/ec/open.bin.err"
check "(b) open.bin.err is one line" test "$(wc -l <"$MNT/ec/open.bin.err")" = 1
check "(b) and open.bin has no .sig" test ! -e "$MNT/ec/open.bin.sig"
check "(b) writing open.bin again signs it" bash -c "cp '$T/src' '$MNT/ec/open.bin' && test -s '$MNT/ec/open.bin.sig' && test ! -e '$MNT/ec/open.bin.err'"
check "(b) and it verifies" verify_raw ec "$T/src" "$MNT/ec/open.bin.sig"

# --- the journal stays small ---------------------------------------------------------------------
check "the queue drains" bash -c \
	"for i in \$(seq 300); do grep -q '^queue: 0 waiting, 0 signing' '$MNT/.ctl/status' && exit 0; sleep 0.1; done; exit 1"
size=$(stat -c %s "$STATE/journal")
echo "  journal after two crashes and $NFILES x 2 files: $size bytes"
check "the journal after recovery is small (< 1 MiB)" test "$size" -lt 1048576
stop_sigfs
start_sigfs
check "after a clean restart it is empty again" test "$(stat -c %s "$STATE/journal")" -lt 1024
check "a normal copy still signs" bash -c "cp '$T/src' '$MNT/ed/after.bin' && test -s '$MNT/ed/after.bin.sig'"
check "and verifies" verify_raw ed "$T/src" "$MNT/ed/after.bin.sig"
stop_sigfs
check "audit log chain verifies after two crashes" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
