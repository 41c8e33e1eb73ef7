#!/bin/bash
# Story: an admin adds a NetHSM as [backend nh] (a namespaced Operator to sign,
# a namespaced Administrator for keys, the NetHSM's certificate as ca_file) and
# creates keys on it with `mkdir .ctl/keys/KEY@nh`; files copied into KEY's
# inbox are signed on the NetHSM (Ed25519, ECDSA P-256/384/521, RSA PSS and
# PKCS#1 v1.5) and verify with openssl; rmdir deletes the key on the NetHSM.
# A NetHSM that answers 412 or 500, or drops connections, is retried; one that
# is down gives NAME.err and the daemon serves on, and signs again once it is
# back; a wrong password gives a clear NAME.err. The password appears nowhere
# in the mount or the log. tests/nethsm/server.py plays the NetHSM and checks
# every request against the official spec.
. "$(dirname "$0")/lib.sh"

SERVER=$SIGFS_SRC/tests/nethsm/server.py
OPW=op-Secret-7781
APW=admin-Secret-4410
K=$MNT/.ctl/keys
NH_PID=
PORT=0

# start_nethsm [FAULT OPTIONS...]: start the server (same port and keys as before).
start_nethsm() {
	/usr/bin/python3 "$SERVER" --state "$T/nethsm" --port "$PORT" --verbose \
		--user "ops~op:Operator:$OPW" --user "ops~admin:Administrator:$APW" "$@" \
		>"$T/nethsm.out" 2>>"$T/nethsm.log" &
	NH_PID=$!
	local i
	for i in $(seq 1 100); do
		grep -q '^port ' "$T/nethsm.out" 2>/dev/null && break
		sleep 0.1
	done
	PORT=$(awk '/^port /{print $2}' "$T/nethsm.out")
	[ -n "$PORT" ] || fail "the NetHSM test server did not start: $(cat "$T/nethsm.log")"
}

stop_nethsm() {
	if [ -n "$NH_PID" ]; then
		kill "$NH_PID" 2>/dev/null || true
		wait "$NH_PID" 2>/dev/null || true
		NH_PID=
	fi
}

# The server goes before lib.sh's cleanup runs.
trap 'stop_nethsm; _cleanup' EXIT

# api USER:PASSWORD METHOD PATH [JSON]: a direct call; prints the body, then the status.
api() {
	local auth=$1 method=$2 path=$3 body=${4:-}
	curl -s --cacert "$T/nethsm/cert.pem" -u "$auth" -X "$method" -w '\n%{http_code}\n' \
		${body:+-H 'Content-Type: application/json' -d "$body"} \
		"https://127.0.0.1:$PORT/api/v1$path"
}

key_ids() {
	api "ops~admin:$APW" GET /keys | head -n 1
}

start_nethsm
printf '%s\n' "$OPW" >"$T/op.pw"
printf '%s\n' "$APW" >"$T/admin.pw"
chmod 0600 "$T/op.pw" "$T/admin.pw"
cat >>"$CONF" <<EOF
[backend nh]
type = nethsm
url = https://127.0.0.1:$PORT
user = ops~op
password_file = $T/op.pw
admin_user = ops~admin
admin_password_file = $T/admin.pw
ca_file = $T/nethsm/cert.pem
retry_seconds = 3
EOF

# sign_on KEY ALGORITHM [PADDING]: set the key's algorithm (and padding), sign a file, verify.
start_sigfs

check "mkdir ed@nh creates key ed" mkdir "$K/ed@nh"
check "ed lives on nh" test "$(cat "$K/ed/backend")" = nh
check "GET /keys shows ed" grep -q '"id": "ed"' <(key_ids)
sign_on ed ed25519
mkdir "$K/p256@nh" "$K/p384@nh" "$K/p521@nh" "$K/rsa@nh"
sign_on p256 ecdsa-p256
sign_on p384 ecdsa-p384
sign_on p521 ecdsa-p521
sign_on rsa rsa-2048 pss
sign_on rsa rsa-2048 pkcs1

# rmdir deletes the key on the NetHSM.
check "rmdir p384" rmdir "$K/p384"
check "GET /keys no longer shows p384" bash -c "! grep -q '\"p384\"' <<<'$(key_ids)'"
check "GET /keys still shows p256" grep -q '"id": "p256"' <(key_ids)

# The validator: a request with a property the spec does not have is refused.
api "ops~op:$OPW" POST /keys/p256/sign \
	'{"mode":"ECDSA","message":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","extra":1}' >"$T/r"
check "an additional property gets 400" test "$(tail -n 1 "$T/r")" = 400
check "... with a message naming it" grep -q "Additional properties.*extra" "$T/r"
api "ops~op:$OPW" POST /keys/p256/sign '{"mode":"ECDSA"}' >"$T/r"
check "a missing property gets 400" test "$(tail -n 1 "$T/r")" = 400
api "ops~op:$OPW" GET /keys/nosuchkey/public.pem >"$T/r"
check "an unknown key gets 404" test "$(tail -n 1 "$T/r")" = 404
api "ops~op:$OPW" DELETE /keys/p256 >"$T/r"
check "an Operator may not delete: 403" test "$(tail -n 1 "$T/r")" = 403
api "ops~op:wrong" GET /keys >"$T/r"
check "a wrong password gets 401" test "$(tail -n 1 "$T/r")" = 401

head -c 5000 /dev/urandom >"$T/s.bin"

# 412 twice, then Operational: the job still signs.
stop_nethsm
start_nethsm --fail-412 2
cp "$T/s.bin" "$MNT/p256/a.bin"
check "412 twice: the job signs after retrying" verify_raw p256 "$T/s.bin" "$MNT/p256/a.bin.sig"
check "the server did answer 412 twice" test "$(grep -c '" 412 ' "$T/nethsm.log")" -eq 2

# 500 and a dropped connection: retried.
stop_nethsm
start_nethsm --fail-500 1 --drop 1
cp "$T/s.bin" "$MNT/p256/b.bin"
check "500 and a dropped connection: the job signs" \
	verify_raw p256 "$T/s.bin" "$MNT/p256/b.bin.sig"
check "the server did answer 500" grep -q '" 500 ' "$T/nethsm.log"

# The NetHSM goes away: NAME.err after retry_seconds, the daemon serves on.
make_key soft1
stop_nethsm
mark=$(log_mark)
check_fails_with "NetHSM down: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/c.bin"
check "NetHSM down: the job gives c.bin.err" wait_for "$MNT/p256/c.bin.err" 30
check "NetHSM down: the .err says the NetHSM is unreachable" \
	grep -q "nethsm backend nh: POST /keys/p256/sign: .*check that the NetHSM at https://127.0.0.1:$PORT is up" \
	"$MNT/p256/c.bin.err"
check "NetHSM down: the log says so" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'nethsm backend nh'"
cp "$T/s.bin" "$MNT/soft1/c.bin"
check "NetHSM down: soft keys still sign" wait_for "$MNT/soft1/c.bin.sig" 30
check "the daemon is still running" kill -0 "$SIGFS_PID"

# Back within retry_seconds: the waiting job completes.
cp "$T/s.bin" "$MNT/p256/d.bin" &
cp_pid=$!
sleep 1
start_nethsm
check "NetHSM back within the retry window: the copy completes" wait "$cp_pid"
check "... and its signature verifies" verify_raw p256 "$T/s.bin" "$MNT/p256/d.bin.sig"

# Wrong password: a clear NAME.err, no crash.
stop_sigfs
printf 'not-the-password\n' >"$T/op.pw"
start_sigfs
mark=$(log_mark)
check_fails_with "wrong password: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/w.bin"
check "wrong password: the job gives w.bin.err" wait_for "$MNT/p256/w.bin.err" 30
check "wrong password: the .err names HTTP 401 and the fix" \
	grep -q "HTTP 401.*check user and password_file" "$MNT/p256/w.bin.err"
check "wrong password: no signature" test ! -e "$MNT/p256/w.bin.sig"
check "wrong password: the log says so" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'HTTP 401'"
check "wrong password: the daemon is still running" kill -0 "$SIGFS_PID"

# A password file others can read is refused.
printf '%s\n' "$OPW" >"$T/op.pw"
chmod 0644 "$T/op.pw"
stop_sigfs
start_sigfs
check_fails_with "password_file 0644: the copy fails" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/m.bin"
check "password_file 0644: the .err says why" \
	grep -q "refusing password_file.*mode 0644" "$MNT/p256/m.bin.err"
chmod 0600 "$T/op.pw"
stop_sigfs
start_sigfs
cp "$T/s.bin" "$MNT/p256/ok.bin"
check "password fixed: p256 signs again" verify_raw p256 "$T/s.bin" "$MNT/p256/ok.bin.sig"

# The passwords are nowhere in the mount or the log.
for pw in "$OPW" "$APW"; do
	check "grep -r over the mount does not find a password" bash -c "! grep -r -s -q -F '$pw' '$MNT'"
	check "the log does not hold a password" bash -c "! grep -q -F '$pw' '$LOG'"
done

stop_sigfs
stop_nethsm
done_testing
