#!/bin/bash
# Story: an admin keeps keys on a networked PKCS#11 token that can go away and
# come back, as a YubiHSM 2 behind yubihsm-connector can. Keys made with
# `mkdir .ctl/keys/KEY@hsm` sign and verify. When the token is down as sigfsd
# starts, a job waits retry_seconds for it, then gets NAME.err (and a log line)
# saying the token is unreachable; a job written while it is down completes
# when it is back within the window. When it goes away in the middle of a
# batch and comes back a second later, every file still gets a signature. A
# wrong PIN fails at once, is not sent to the token again (its PIN is not
# locked), and a fixed pin_file is used without a restart.
#
# The token: SoftHSM2 served by `p11-kit server` on a unix socket, used by
# sigfsd through p11-kit-client.so; killing the server is the device going.
. "$(dirname "$0")/lib.sh"

CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so
PIN=4321
LABEL=sigfs-net
K=$MNT/.ctl/keys
SOCK=$T/p11-kit.sock
SERVER_PID=

# The server loads SoftHSM2 (p11-kit's softhsm2.module) with the token's config.
softhsm_token "$T" $LABEL $PIN
export P11_KIT_SERVER_ADDRESS=unix:path=$SOCK
# p11-kit-client leaks inside itself when its server dies mid-call
# (tests/lsan-p11-kit.supp); sanitizer builds only.
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$SIGFS_SRC/tests/lsan-p11-kit.supp
cat >>"$CONF" <<EOF
[backend hsm]
type = pkcs11
module = $CLIENT
token_label = $LABEL
pin_file = $T/pin
retry_seconds = 3
EOF

# p11-kit server forks a p11-kit-remote per connection, which goes on serving
# its client when only the server dies; the device is gone when the whole
# process group is. setsid (not a group leader here, so it does not fork)
# gives the server a group of its own, numbered by its PID.
server_start() {
	rm -f "$SOCK"
	setsid p11-kit server -f -n "$SOCK" "pkcs11:token=$LABEL" >>"$T/server.log" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 1 200); do
		if [ -S "$SOCK" ]; then
			[ "$(ps -o pgid= -p "$SERVER_PID" | tr -d ' ')" = "$SERVER_PID" ] ||
				fail "p11-kit server $SERVER_PID is not in a process group of its own"
			return 0
		fi
		sleep 0.05
	done
	fail "p11-kit server did not create $SOCK: $(cat "$T/server.log")"
}

server_kill() {
	local pid=$SERVER_PID
	[ -n "$pid" ] || return 0
	SERVER_PID=
	kill -9 -- "-$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# The token server goes when the test ends, whatever its result.
at_exit server_kill

p11() {
	pkcs11-tool --module "$CLIENT" --token-label $LABEL --login --pin $PIN "$@" 2>/dev/null
}

# The user PIN logs in on the token, through the server.
pin_works() {
	p11 --list-objects >/dev/null
}

log_has() {
	log_since "$1" | grep -q -- "$2"
}

# 1. Keys made on the token through the mount sign, and openssl verifies.
server_start
start_sigfs
check "mkdir ec@hsm creates a key on the token" mkdir "$K/ec@hsm"
check "mkdir rsa@hsm creates a key on the token" mkdir "$K/rsa@hsm"
sign_on ec ecdsa-p256
sign_on rsa rsa-2048 pss
check "both keys are on the token, seen through the server" \
	test "$(p11 --list-objects --type privkey | grep -c 'label: *\(ec\|rsa\)$')" -eq 2
head -c 5000 /dev/urandom >"$T/d.bin"

# 2. Down at start: the job waits retry_seconds (3), then fails, saying so.
stop_sigfs
server_kill
mark=$(log_mark)
start_sigfs
t0=$(date +%s%N)
check_fails_with "token down: close of the copy reports the failure" "Input/output error" \
	cp "$T/d.bin" "$MNT/ec/down.bin"
ms=$((($(date +%s%N) - t0) / 1000000))
check "token down: the job waited about retry_seconds (${ms} ms)" test $ms -ge 2500 -a $ms -lt 20000
check "token down: the job gives down.bin.err" wait_for "$MNT/ec/down.bin.err" 10
check "token down: the .err names the token and says it is unreachable" \
	grep -q "pkcs11 backend hsm: token $LABEL unreachable for 3 s: .*is the device/connector up?" \
	"$MNT/ec/down.bin.err"
check "token down: no signature" test ! -e "$MNT/ec/down.bin.sig"
check "token down: the log says the token is unreachable" \
	log_has "$mark" "pkcs11 backend hsm: token $LABEL is unreachable"
check "token down: the log has the job's failure" log_has "$mark" "down.bin: .*unreachable for 3 s"
check "token down: the daemon is still running" same_daemon

# ... and a file written while it is down is signed once it is back within the window.
cp "$T/d.bin" "$MNT/ec/late.bin" &
cp_pid=$!
sleep 1
check "token down: the second job is still waiting" test ! -e "$MNT/ec/late.bin.sig"
server_start
check "token back: the copy made while it was down succeeds" wait "$cp_pid"
check "token back: late.bin.sig verifies" verify_raw ec "$T/d.bin" "$MNT/ec/late.bin.sig"
check "token back: no late.bin.err" test ! -e "$MNT/ec/late.bin.err"
check "token back: the log says it is back" log_has "$mark" "pkcs11 backend hsm: token $LABEL is back"

# 3. Down mid-batch: 200 files, the server killed after some are signed and
# started again a second later; every file gets a signature that verifies.
stop_sigfs
conf_set "backend hsm" retry_seconds 10
mark=$(log_mark)
start_sigfs
batch_copy rsa 200
wait_sigs rsa 20
server_kill
signed=$(sigs_of rsa)
check "mid-batch: the token went away after some files ($signed) were signed" \
	test "$signed" -ge 20 -a "$signed" -lt 200
sleep 1
server_start
batch_signed rsa 200 "mid-batch"
check "mid-batch: the log says the token went away" \
	log_has "$mark" "pkcs11 backend hsm: token $LABEL is unreachable"
check "mid-batch: ... and came back" log_has "$mark" "pkcs11 backend hsm: token $LABEL is back"

# 4. Wrong PIN: fails at once, not retried, the PIN not sent again.
stop_sigfs
printf '9999\n' >"$T/pin"
mark=$(log_mark)
start_sigfs
t0=$(date +%s%N)
check_fails_with "wrong PIN: close of the copy reports the failure" "Input/output error" \
	cp "$T/d.bin" "$MNT/ec/w1.bin"
ms=$((($(date +%s%N) - t0) / 1000000))
check "wrong PIN: it fails at once (${ms} ms, retry_seconds is 10)" test $ms -lt 3000
check "wrong PIN: w1.bin.err names C_Login and CKR_PIN_INCORRECT" \
	grep -q "C_Login failed: CKR_PIN_INCORRECT.*check the PIN in pin_file" "$MNT/ec/w1.bin.err"
check "wrong PIN: the log says so" log_has "$mark" "w1.bin: .*CKR_PIN_INCORRECT"
check_fails_with "wrong PIN: a second copy fails too" "Input/output error" \
	cp "$T/d.bin" "$MNT/ec/w2.bin"
check "wrong PIN: ... without sending the PIN again" \
	grep -q "not tried again until pin_file changes" "$MNT/ec/w2.bin.err"
check "wrong PIN: no signatures" test ! -e "$MNT/ec/w1.bin.sig" -a ! -e "$MNT/ec/w2.bin.sig"
check "wrong PIN: the token's user PIN still works (not locked)" pin_works
check "wrong PIN: the token does not report a locked or low-count user PIN" \
	bash -c "! pkcs11-tool --module '$CLIENT' -L 2>/dev/null | grep -q -i 'user PIN \(locked\|count low\|final try\)'"
printf '%s\n' $PIN >"$T/pin.new"
chmod 0600 "$T/pin.new"
mv "$T/pin.new" "$T/pin"
cp "$T/d.bin" "$MNT/ec/w3.bin"
check "pin_file fixed without a restart: w3.bin.sig verifies" \
	verify_raw ec "$T/d.bin" "$MNT/ec/w3.bin.sig"
check "the PIN is nowhere in the log" no_match -w "$PIN" "$LOG"

stop_sigfs
done_testing
