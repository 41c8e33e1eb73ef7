#!/bin/bash
# Story: the state directory's filesystem fills up in the middle of a batch.
# What did not fit fails clearly (cp and close() report "No space left on
# device"; a file whose bytes did not all arrive gets NAME.err, never a
# signature); no output is ever truncated or corrupt; no accepted job is lost:
# once there is room again, every one of them is signed without anybody
# writing anything again; the audit log's chain stays intact.
. "$(dirname "$0")/lib.sh"

K=$MNT/.ctl/keys
mkdir -p "$STATE"
mount -t tmpfs -o size=24m,mode=0700 sigfs-e2e-full "$STATE"
at_exit "umount -l '$STATE'"
conf_set sigfs workers 1
start_sigfs
make_key k
mkdir -m 0755 "$T/src"
for i in $(seq 1 12); do head -c $((3000 + i)) /dev/urandom >"$T/src/f$i"; done
head -c $((1 << 20)) /dev/urandom >"$T/src/big"
cp "$T/src/f1" "$MNT/k/f1"
check "fixture: signing works before the disk fills" verify_raw k "$T/src/f1" "$MNT/k/f1.sig"

# fill: take every free byte of the state directory's filesystem.
fill() {
	dd if=/dev/zero of="$STATE/filler" bs=64k 2>/dev/null || true
	sync
}

# --- jobs waiting in the queue when the disk fills: deferred, not lost --------------------------
# One worker, held by a large renamed-in file; ten copies queue behind it.
truncate -s 4G "$MNT/k/.big"
mv "$MNT/k/.big" "$MNT/k/big4g"
pids=
for i in $(seq 2 11); do
	cp "$T/src/f$i" "$MNT/k/f$i" 2>"$T/cp$i.err" &
	pids="$pids $!"
done
check "fixture: ten copies wait behind the large file" bash -c \
	"for i in \$(seq 200); do grep -q '^queue: 10 waiting, 1 signing' '$MNT/.ctl/status' && exit 0; sleep 0.05; done; exit 1"
fill
check "the disk is full" test "$(df --output=avail "$STATE" | tail -n 1)" -lt 64
# shellcheck disable=SC2086
wait $pids || true
for i in $(seq 2 11); do
	check "f$i: close() says there is no space (the job stays accepted)" \
		grep -q "No space left on device" "$T/cp$i.err"
done
check "status shows deferred jobs" grep -qE "^lane soft: .* [1-9][0-9]* deferred \(no space\)" "$MNT/.ctl/status"
check "the log says, once for each of the 11 jobs, that it is signed when there is room" \
	test "$(grep -c "no space left for its output" "$LOG")" = 11
check "no output appeared for them" bash -c "! ls '$MNT/k' | grep -qE '^f([2-9]|1[01])\\.(sig|err)\$'"

# --- what does not fit fails clearly -----------------------------------------------------------
check_fails_with "a new copy fails with ENOSPC" "No space left on device" cp "$T/src/f12" "$MNT/k/f12"
rm -f "$STATE/filler"
head -c $((23 << 20)) /dev/zero >"$STATE/filler" 2>/dev/null || true
avail=$(df --output=avail -B1 "$STATE" | tail -n 1)
head -c $((avail - 65536)) /dev/zero >>"$STATE/filler" 2>/dev/null || true
check_fails_with "a 1 MiB copy into the last 64 KiB fails" "No space left on device" cp "$T/src/big" "$MNT/k/part"

# --- room again: everything accepted is signed, nothing is corrupt ------------------------------
rm -f "$STATE/filler"
for i in $(seq 2 11); do
	check "f$i is signed once there is room" wait_for "$MNT/k/f$i.sig" 20
done
check "the large file is signed too" wait_for "$MNT/k/big4g.sig" 60
# shellcheck disable=SC2046
check "every signature verifies against its file" verify_many k "$MNT/k" f1 $(seq -f 'f%g' 2 11)
check "the file whose write failed gets NAME.err, not a signature" wait_for "$MNT/k/part.err" 20
check "which says a write failed" grep -q "a write to this file failed" "$MNT/k/part.err"
check "and is one line" test "$(wc -l <"$MNT/k/part.err")" = 1
check "no signature over the incomplete file" test ! -e "$MNT/k/part.sig"
check "no temporary output was left behind" bash -c "! ls -a '$STATE/inbox/k' | grep -q sigfs-tmp"
check "the queue drains" bash -c \
	"for i in \$(seq 100); do grep -q '^queue: 0 waiting, 0 signing' '$MNT/.ctl/status' && exit 0; sleep 0.1; done; exit 1"
cp "$T/src/f12" "$MNT/k/f12"
check "and signing goes on as before" verify_raw k "$T/src/f12" "$MNT/k/f12.sig"
stop_sigfs
check "the audit log's chain is intact" "$SIGFSD" --verify-audit "$STATE/audit.log"
check "it has a line for each of the 13 signatures" test "$(grep -c ' sign key=k ' "$STATE/audit.log")" = 13
start_sigfs
check "sigfsd starts again on the same state directory" test -d "$MNT/k"
done_testing
