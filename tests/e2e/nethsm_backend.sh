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
# .ctl/status counts the keys on each backend, and says at once when the
# NetHSM is unreachable. A backend with `tags = t1` restricts the keys it
# generates to Operators carrying tag t1, as the NetHSM enforces: without the
# tag, signing fails with a NAME.err naming HTTP 403; with it, it signs.
. "$(dirname "$0")/lib.sh"

# The server and its users: start_nethsm, stop_nethsm, NH_PORT ... (lib.sh).
OPW=$NH_OPW
APW=$NH_APW
K=$MNT/.ctl/keys

# A "NetHSM" that accepts connections and never answers, for the status timeouts.
SILENT_PID=
stop_silent() {
	stop_pid "$SILENT_PID"
	SILENT_PID=
}

at_exit stop_nethsm
at_exit stop_silent

# api USER:PASSWORD METHOD PATH [JSON]: a direct call; prints the body, then the status.
api() {
	local auth=$1 method=$2 path=$3 body=${4:-}
	curl -s --cacert "$T/nethsm/cert.pem" -u "$auth" -X "$method" -w '\n%{http_code}\n' \
		${body:+-H 'Content-Type: application/json' -d "$body"} \
		"https://127.0.0.1:$NH_PORT/api/v1$path"
}

key_ids() {
	api "ops~admin:$APW" GET /keys | head -n 1
}

# status_keys BACKEND: the key count .ctl/status gives for BACKEND.
status_keys() {
	sed -n "s/^backend $1: [a-z0-9]*, \([0-9]*\) keys\?\$/\1/p" "$MNT/.ctl/status"
}

# json_get PYTHON-EXPRESSION: evaluate it on the JSON on stdin (as j).
json_get() {
	/usr/bin/python3 -c "import json, sys; j = json.load(sys.stdin); print($1)"
}

start_nethsm
# Long enough for a waiting job to find the server restarted below (about 2 s later).
nethsm_backend nh ops 5
nethsm_backend nht tg 3
echo "tags = t1" >>"$CONF" # in [backend nht], the last section

start_sigfs

check "status: nh holds no keys yet" grep -qx "backend nh: nethsm, 0 keys" "$MNT/.ctl/status"
check "status: nht too" grep -qx "backend nht: nethsm, 0 keys" "$MNT/.ctl/status"
check "status: the built-in soft backend is listed first" \
	test "$(grep '^backend ' "$MNT/.ctl/status" | head -n 1)" = "backend soft: soft, 0 keys"
check "mkdir ed@nh creates key ed" mkdir "$K/ed@nh"
check "ed lives on nh" test "$(cat "$K/ed/backend")" = nh
check "GET /keys shows ed" grep -q '"id": "ed"' <(key_ids)
check "status: nh holds 1 key" grep -qx "backend nh: nethsm, 1 key" "$MNT/.ctl/status"
check "status: nht and soft unchanged" test "$(status_keys nht) $(status_keys soft)" = "0 0"
sign_on ed ed25519
sign_on_ec_and_rsa nh

# rmdir deletes the key on the NetHSM.
check "rmdir p384" rmdir "$K/p384"
check "GET /keys no longer shows p384" bash -c "! grep -q '\"p384\"' <<<'$(key_ids)'"
check "GET /keys still shows p256" grep -q '"id": "p256"' <(key_ids)
check "status: nh holds 4 keys after 4 mkdir and 1 rmdir" test "$(status_keys nh)" = 4

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

# Tags: nht generates keys restricted to tag t1; its Operator tg~op has no tag yet.
check "mkdir tk@nht creates key tk" mkdir "$K/tk@nht"
check "status: nht holds 1 key" grep -qx "backend nht: nethsm, 1 key" "$MNT/.ctl/status"
api "tg~admin:$APW" GET /keys/tk >"$T/r"
check "GET /keys/tk: 200" test "$(tail -n 1 "$T/r")" = 200
check "GET /keys/tk: restrictions.tags is [t1]" \
	test "$(head -n 1 "$T/r" | json_get 'j["restrictions"]["tags"]')" = "['t1']"
api "ops~admin:$APW" GET /keys/ed >"$T/r"
check "GET /keys/ed (on nh, no tags): no restrictions" \
	test "$(head -n 1 "$T/r" | json_get 'j.get("restrictions", {}).get("tags", [])')" = "[]"
check_fails_with "an Operator without tag t1: the copy fails" "Input/output error" \
	cp "$T/s.bin" "$MNT/tk/notag.bin"
check "... with notag.bin.err" wait_for "$MNT/tk/notag.bin.err" 30
check "... naming HTTP 403 and the NetHSM's reason" \
	grep -q "nethsm backend nht: POST /keys/tk/sign: HTTP 403: tags restriction not met (1 tries); .*tags" \
	"$MNT/tk/notag.bin.err"
check "... no signature" test ! -e "$MNT/tk/notag.bin.sig"
api "tg~op:$OPW" GET "/keys?filter=1" >"$T/r"
check "GET /keys?filter: the untagged Operator does not see tk" \
	test "$(head -n 1 "$T/r" | json_get '[k["id"] for k in j]')" = "[]"
api "tg~admin:$APW" PUT /users/tg~op/tags/t1 >"$T/r"
check "PUT /users/tg~op/tags/t1: 204" test "$(tail -n 1 "$T/r")" = 204
api "tg~admin:$APW" PUT /users/tg~op/tags/t1 >"$T/r"
check "PUT it again: 304" test "$(tail -n 1 "$T/r")" = 304
api "tg~admin:$APW" PUT /users/tg~admin/tags/t1 >"$T/r"
check "a tag on an Administrator: 400" test "$(tail -n 1 "$T/r")" = 400
api "ops~admin:$APW" PUT /users/tg~op/tags/t2 >"$T/r"
check "a tag on a user of another namespace: 403" test "$(tail -n 1 "$T/r")" = 403
api "tg~admin:$APW" PUT '/users/tg~op/tags/no%20good' >"$T/r"
check "a tag outside the spec's pattern: 400" test "$(tail -n 1 "$T/r")" = 400
api "tg~op:$OPW" GET /users/tg~op/tags >"$T/r"
check "GET /users/tg~op/tags: [t1]" test "$(head -n 1 "$T/r" | json_get 'j')" = "['t1']"
sign_on tk ecdsa-p256
check "tk: the Operator with tag t1 signed" test "$(cat "$K/tk/count")" = 1
api "tg~admin:$APW" DELETE /users/tg~op/tags/t1 >"$T/r"
check "DELETE /users/tg~op/tags/t1: 204" test "$(tail -n 1 "$T/r")" = 204
check_fails_with "tag removed: the copy fails again" "Input/output error" \
	cp "$T/s.bin" "$MNT/tk/untagged.bin"
check "... with HTTP 403 in untagged.bin.err" grep -q "HTTP 403: tags restriction not met" \
	"$MNT/tk/untagged.bin.err"
rm -f "$MNT/tk"/*
check "rmdir tk deletes it on the NetHSM" rmdir "$K/tk"
check "status: nht holds 0 keys" grep -qx "backend nht: nethsm, 0 keys" "$MNT/.ctl/status"

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
	grep -q "nethsm backend nh: POST /keys/p256/sign: .*check that the NetHSM at https://127.0.0.1:$NH_PORT is up" \
	"$MNT/p256/c.bin.err"
check "NetHSM down: the log says so" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'nethsm backend nh'"
cp "$T/s.bin" "$MNT/soft1/c.bin"
check "NetHSM down: soft keys still sign" wait_for "$MNT/soft1/c.bin.sig" 30
t0=$(date +%s%N)
cat "$MNT/.ctl/status" >"$T/status"
t1=$(date +%s%N)
check "NetHSM down: .ctl/status answers at once (no retries)" test $(((t1 - t0) / 1000000)) -lt 1500
check "NetHSM down: status says nh is unreachable, and why" \
	grep -q "^backend nh: nethsm, unreachable: nethsm backend nh: GET /keys: .*(1 tries in [0-9]* ms); check that the NetHSM at https://127.0.0.1:$NH_PORT is up" \
	"$T/status"
check "NetHSM down: status still counts soft" grep -qx "backend soft: soft, 1 key" "$T/status"
check "NetHSM down: status still shows the queue" grep -q "^queue: " "$T/status"
check "the daemon is still running" same_daemon

# Back within retry_seconds: the waiting job completes.
cp "$T/s.bin" "$MNT/p256/d.bin" &
cp_pid=$!
sleep 1
start_nethsm
check "NetHSM back within the retry window: the copy completes" wait "$cp_pid"
check "... and its signature verifies" verify_raw p256 "$T/s.bin" "$MNT/p256/d.bin.sig"
check "NetHSM back: status counts nh's keys again" test "$(status_keys nh)" = 4

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
check "wrong password: the daemon is still running" same_daemon

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

# Down when sigfsd starts: a job waits, and completes once the NetHSM is up
# within retry_seconds.
stop_sigfs
stop_nethsm
start_sigfs
cp "$T/s.bin" "$MNT/p256/start.bin" &
cp_pid=$!
sleep 1
start_nethsm
check "NetHSM down at start: the copy completes once it is up" wait "$cp_pid"
check "... and its signature verifies" verify_raw p256 "$T/s.bin" "$MNT/p256/start.bin.sig"

# Down mid-batch: the NetHSM is killed while 100 files sign and is back a
# second later; every file ends with a signature, none with .err.
batch_copy p256 100
wait_sigs p256 20
kill -9 "$NH_PID"
wait "$NH_PID" 2>/dev/null || true
NH_PID=
done_at_kill=$(sigs_of p256)
check "the kill came mid-batch ($done_at_kill of 100 signed)" test "$done_at_kill" -lt 100
sleep 1
start_nethsm
batch_signed p256 100 "NetHSM back mid-batch"

# The passwords are nowhere in the mount or the log.
for pw in "$OPW" "$APW"; do
	check "grep -r over the mount does not find a password" bash -c "! grep -r -s -q -F '$pw' '$MNT'"
	check "the log does not hold a password" no_match -F -- "$pw" "$LOG"
done

# A NetHSM that does not answer at all: a status read waits for the status
# connection's 2 s connect timeout (the TLS handshake never completes), once,
# not retry_seconds, and not once per lookup, getattr and open of the file.
stop_sigfs
/usr/bin/python3 -c '
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
held = []
while True:
    held.append(s.accept()[0])
' >"$T/silent.port" &
SILENT_PID=$!
for _ in $(seq 1 50); do
	[ -s "$T/silent.port" ] && break
	sleep 0.1
done
cat >>"$CONF" <<EOF

[backend nhgone]
type = nethsm
url = https://127.0.0.1:$(cat "$T/silent.port")
user = ops~op
password_file = $T/op.pw
admin_user = ops~admin
admin_password_file = $T/admin.pw
ca_file = $T/nethsm/cert.pem
retry_seconds = 60
EOF
start_sigfs
t0=$(date +%s%N)
cat "$MNT/.ctl/status" >"$T/status"
t1=$(date +%s%N)
check "a silent NetHSM: cat .ctl/status takes one connect timeout (2 s), not more" \
	test $(((t1 - t0) / 1000000)) -lt 3500
check "... and says nhgone is unreachable: timeout" \
	grep -q "^backend nhgone: nethsm, unreachable: nethsm backend nhgone: GET /keys: Timeout was reached (1 tries in 2[0-9]* ms)" \
	"$T/status"
check "... while nh is counted" grep -qx "backend nh: nethsm, 4 keys" "$T/status"

stop_sigfs
stop_silent
stop_nethsm
done_testing
