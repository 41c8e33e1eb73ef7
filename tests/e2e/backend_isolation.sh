#!/bin/bash
# Story: one backend goes down (a NetHSM here) while others keep signing.
# Jobs that wait for it hold only its own workers: files for keys on the local
# key store are signed meanwhile. Changing or deleting a key on it while it is
# down holds up nothing else (the key store is not locked while the backend
# retries), and a delete that fails gives the inbox back exactly as the admins
# left it (owner, group, mode). A daemon stopped while a close() waits for
# such a job answers that close() before it goes.
. "$(dirname "$0")/lib.sh"

TEAM=sigfs-e2e-team
ensure_group "$TEAM"
ensure_user sf-ann
usermod -a -G "$TEAM" sf-ann
K=$MNT/.ctl/keys
at_exit stop_nethsm

mkdir -m 0755 "$T/pub"
head -c 30000 /dev/urandom >"$T/pub/doc.bin"
chmod 0644 "$T/pub/doc.bin"

start_nethsm
nethsm_backend nh ops 6
conf_set sigfs workers 1
start_sigfs
check "mkdir hsm@nh creates a key on the NetHSM" mkdir "$K/hsm@nh"
make_key local
check "fixture: hsm signs while the NetHSM is up" bash -c "cp '$T/pub/doc.bin' '$MNT/hsm/up.bin'"
check "fixture: hsm's signature verifies" verify_raw hsm "$T/pub/doc.bin" "$MNT/hsm/up.bin.sig"
rm -f "$MNT/hsm"/up.bin*
chgrp "$TEAM" "$MNT/hsm"
chmod 1750 "$MNT/hsm"
stop_nethsm

# --- a down backend holds only its own workers ---------------------------------------------------
cp "$T/pub/doc.bin" "$MNT/hsm/wait.bin" 2>"$T/hsm.cp.err" &
hsm_cp=$!
check "fixture: the NetHSM job is being retried" bash -c \
	"for i in \$(seq 100); do grep -q '^queue: 0 waiting, 1 signing' '$MNT/.ctl/status' && exit 0; sleep 0.05; done; exit 1"
start=$(date +%s%N)
check "a file for a local key is signed meanwhile" cp "$T/pub/doc.bin" "$MNT/local/doc.bin"
ms=$((($(date +%s%N) - start) / 1000000))
echo "  the local key signed in $ms ms while the NetHSM job waited"
check "its signature verifies" verify_raw local "$T/pub/doc.bin" "$MNT/local/doc.bin.sig"
check "the NetHSM job is still waiting (one worker, but a lane of its own)" kill -0 "$hsm_cp"
rc=0
wait "$hsm_cp" || rc=$?
check "the NetHSM job fails after retry_seconds" test "$rc" -ne 0
check "with a .err naming the NetHSM" grep -q "NetHSM" "$MNT/hsm/wait.bin.err"
rm -f "$MNT/hsm"/wait.bin*

# --- changing a key on a down backend locks nothing else -----------------------------------------
rmdir "$K/hsm" 2>"$T/rmdir.err" &
rmdir_pid=$!
sleep 1
start=$(date +%s%N)
check "while rmdir retries the NetHSM, a local key signs" cp "$T/pub/doc.bin" "$MNT/local/doc2.bin"
ms=$((($(date +%s%N) - start) / 1000000))
echo "  the local key signed in $ms ms during the rmdir"
check "and lists its attributes" test "$(cat "$K/local/algorithm")" = ecdsa-p256
check "the rmdir is still going (it did not hold the key store up)" kill -0 "$rmdir_pid"
rc=0
wait "$rmdir_pid" || rc=$?
check "the rmdir fails: the NetHSM is down" test "$rc" -ne 0
check "the key is still there" test -d "$K/hsm"
check "and its inbox is back as the admins left it (group and sticky mode kept)" \
	stat_is "$MNT/hsm" "root:$TEAM 1750"
check "last-error says why" grep -q "rmdir: .*NetHSM" "$K/hsm/last-error"

# --- stopping the daemon answers a waiting close() first -----------------------------------------
start_nethsm
check "the NetHSM is back: hsm signs again" cp "$T/pub/doc.bin" "$MNT/hsm/back.bin"
stop_nethsm
cp "$T/pub/doc.bin" "$MNT/hsm/stop.bin" 2>"$T/stop.cp.err" &
stop_cp=$!
check "fixture: the NetHSM job is being retried" bash -c \
	"for i in \$(seq 100); do grep -q '^queue: 0 waiting, 1 signing' '$MNT/.ctl/status' && exit 0; sleep 0.05; done; exit 1"
pid=$SIGFS_PID
SIGFS_PID=
kill -TERM "$pid"
rc=0
wait "$stop_cp" || rc=$?
check "the waiting close() gets an answer before the mount goes (EIO: the .err is there)" \
	grep -q "Input/output error" "$T/stop.cp.err"
check "the .err was written" test -s "$STATE/inbox/hsm/stop.bin.err"
check "sigfsd exits cleanly (status 0, no sanitizer report)" exited_cleanly "$pid" "$LOG"
check "no sanitizer report in the log" no_match -E 'ERROR: AddressSanitizer|runtime error' "$LOG"
done_testing
