#!/bin/bash
# Story: an operator configures sigfsd with the INI file: the shipped
# etc/sigfs.conf works as is, a typo or a bad value stops sigfsd at start
# with a message naming the setting (and nothing is mounted), and the [keys]
# and [sigfs] settings shape new keys, inboxes and the control tree.
. "$(dirname "$0")/lib.sh"

SHIPPED=$SIGFS_SRC/etc/sigfs.conf
head -c 30000 /dev/urandom >"$T/fw.bin"

# start_plain CONF: start sigfsd with only --config (no --state-dir).
start_plain() {
	"$SIGFSD" --foreground --config "$1" "$MNT" >>"$LOG" 2>&1 &
	SIGFS_PID=$!
	for _ in $(seq 1 200); do
		mountpoint -q "$MNT" && return 0
		kill -0 "$SIGFS_PID" 2>/dev/null || fail "sigfsd exited at start: $(tail -n 5 "$LOG")"
		sleep 0.05
	done
	fail "sigfsd did not mount $MNT"
}

# bad_config NAME MESSAGE BODY: sigfsd must refuse to start with a config
# holding BODY, name MESSAGE on stderr, and mount nothing.
bad_config() {
	local name=$1 msg=$2 body=$3 rc=0
	printf '%b\n' "$body" >"$T/$name.conf"
	timeout 20 "$SIGFSD" --foreground --config "$T/$name.conf" --state-dir "$T/st-$name" "$MNT" \
		>"$T/$name.out" 2>&1 || rc=$?
	check "$name: sigfsd exits non-zero at start" test "$rc" -ne 0 -a "$rc" -ne 124
	check "$name: the message names it ($msg)" grep -qF -- "$msg" "$T/$name.out"
	check "$name: the message names the file" grep -qF "$T/$name.conf" "$T/$name.out"
	check "$name: nothing is mounted" bash -c "! mountpoint -q '$MNT'"
	check "$name: no state directory was made" test ! -e "$T/st-$name"
}

# --- the shipped file ---------------------------------------------------------------------
check "the shipped etc/sigfs.conf exists" test -s "$SHIPPED"
cp "$SHIPPED" "$CONF"
start_sigfs
check "sigfsd runs with the shipped file (and --state-dir)" mountpoint -q "$MNT"
check "sigfsd says it is serving" grep -q "serving $MNT" "$LOG"
mkdir "$MNT/.ctl/keys/def"
check "shipped defaults: algorithm ecdsa-p256" test "$(cat "$MNT/.ctl/keys/def/algorithm")" = ecdsa-p256
check "shipped defaults: digest sha256" test "$(cat "$MNT/.ctl/keys/def/digest")" = sha256
check "shipped defaults: format raw" test "$(cat "$MNT/.ctl/keys/def/format")" = raw
check "shipped defaults: backend soft" test "$(cat "$MNT/.ctl/keys/def/backend")" = soft
check "shipped defaults: inbox mode 1770 (sticky)" test "$(stat -c %a "$MNT/def")" = 1770
if getent group sigfs-admin >/dev/null; then
	check "shipped admin_group sigfs-admin owns .ctl" test "$(stat -c %G "$MNT/.ctl")" = sigfs-admin
else
	check "shipped admin_group sigfs-admin does not exist here: .ctl is root's" stat_is "$MNT/.ctl" "root:root 750"
	check "and a warning says so" grep -q "sigfs-admin" "$LOG"
fi
cp "$T/fw.bin" "$MNT/def/fw.bin"
check "shipped defaults: a signature verifies" verify_raw def "$T/fw.bin" "$MNT/def/fw.bin.sig"
check "--state-dir is used" test -s "$STATE/soft/def.pem"
stop_sigfs

# state_dir from the file when there is no --state-dir; --state-dir overrides it.
cp "$SHIPPED" "$T/own.conf"
CONF=$T/own.conf conf_set sigfs state_dir "$T/state-from-conf"
check "fixture: state_dir set in the copy" grep -q "^state_dir = $T/state-from-conf" "$T/own.conf"
start_plain "$T/own.conf"
mkdir "$MNT/.ctl/keys/k1"
check "state_dir from the file holds the key" test -s "$T/state-from-conf/soft/k1.pem"
check "and the audit log" grep -q "keygen key=k1" "$T/state-from-conf/audit.log"
stop_sigfs
CONF=$T/own.conf start_sigfs
check "--state-dir overrides state_dir: k1 is not there" test ! -e "$MNT/.ctl/keys/k1"
mkdir "$MNT/.ctl/keys/k2"
check "--state-dir overrides state_dir: k2 lands in --state-dir" test -s "$STATE/soft/k2.pem"
check "and not in the file's state_dir" test ! -e "$T/state-from-conf/soft/k2.pem"
stop_sigfs

# --- bad files stop sigfsd at start ------------------------------------------------------
bad_config unknown-setting "colour" "[sigfs]\ncolour = blue"
bad_config unknown-keys-setting "algoritm" "[keys]\nalgoritm = ed25519"
bad_config unknown-section "[nosuch]" "[nosuch]\na = b"
bad_config bad-algorithm "algorithm = rsa-1024" "[keys]\nalgorithm = rsa-1024"
bad_config bad-digest "digest = md5" "[keys]\ndigest = md5"
bad_config sha1-default "digest = sha1" "[keys]\ndigest = sha1"
bad_config bad-boolean "wait_on_close = maybe" "[sigfs]\nwait_on_close = maybe"
bad_config bad-boolean2 "allow_key_delete = 2" "[sigfs]\nallow_key_delete = 2"
bad_config bad-mode "inbox_mode = 02770" "[keys]\ninbox_mode = 02770"
bad_config bad-workers "workers = 2000" "[sigfs]\nworkers = 2000"
bad_config bad-padding "rsa_padding = oaep" "[keys]\nrsa_padding = oaep"
bad_config bad-log-level "log_level = verbose" "[sigfs]\nlog_level = verbose"
bad_config relative-state "state_dir = relative/dir" "[sigfs]\nstate_dir = relative/dir"
bad_config outside-section "x" "x = 1\n[sigfs]"
rc=0
timeout 20 "$SIGFSD" --foreground --config "$T/missing.conf" --state-dir "$T/st-missing" "$MNT" \
	>"$T/missing.out" 2>&1 || rc=$?
check "a missing --config file: non-zero exit" test "$rc" -ne 0 -a "$rc" -ne 124
check "a missing --config file: the message names it" grep -qF "$T/missing.conf" "$T/missing.out"
check "a missing --config file: nothing is mounted" bash -c "! mountpoint -q '$MNT'"

# --- [keys] defaults shape new keys -----------------------------------------------------------
ensure_group sigfs-e2e-admin2
ensure_group sigfs-e2e-signers
cat >"$CONF" <<CONF
; a comment
[sigfs]
admin_group = sigfs-e2e-admin2   ; another group
workers = 3
[Keys]
Algorithm = ed25519
digest = sha512
rsa_padding = pkcs1
inbox_mode = 0750
CONF
start_sigfs
check "admin_group: .ctl belongs to the configured group" stat_is "$MNT/.ctl" "root:sigfs-e2e-admin2 750"
check "admin_group: .ctl/keys too" stat_is "$MNT/.ctl/keys" "root:sigfs-e2e-admin2 770"
check "admin_group: status too" stat_is "$MNT/.ctl/status" "root:sigfs-e2e-admin2 440"
check "workers = 3 shows in status" grep -qx "workers: 3" "$MNT/.ctl/status"
mkdir "$MNT/.ctl/keys/n1"
check "[keys] algorithm = ed25519: new key is ed25519" test "$(cat "$MNT/.ctl/keys/n1/algorithm")" = ed25519
check "its pubkey.pem is an Ed25519 key" bash -c \
	"openssl pkey -pubin -in '$MNT/.ctl/keys/n1/pubkey.pem' -noout -text | grep -q ED25519"
check "[keys] digest = sha512: new key's digest is sha512" test "$(cat "$MNT/.ctl/keys/n1/digest")" = sha512
check "key dir belongs to the configured admin group" stat_is "$MNT/.ctl/keys/n1" "root:sigfs-e2e-admin2 750"
check "inbox_mode = 0750 and admin_group apply to the new inbox" stat_is "$MNT/n1" "root:sigfs-e2e-admin2 750"
check "status shows the defaults" grep -qx "key n1: ed25519 sha512 raw backend=soft count=0" "$MNT/.ctl/status"
cp "$T/fw.bin" "$MNT/n1/fw.bin"
check "an Ed25519 signature verifies" verify_raw n1 "$T/fw.bin" "$MNT/n1/fw.bin.sig"
mkdir "$MNT/.ctl/keys/n2"
echo ecdsa-p256 >"$MNT/.ctl/keys/n2/algorithm"
check "digest stays sha512 when the algorithm changes" test "$(cat "$MNT/.ctl/keys/n2/digest")" = sha512
cp "$T/fw.bin" "$MNT/n2/fw.bin"
check "ECDSA signature over SHA-512 verifies" verify_raw n2 "$T/fw.bin" "$MNT/n2/fw.bin.sig" sha512
check_fails "and not over SHA-256" verify_raw n2 "$T/fw.bin" "$MNT/n2/fw.bin.sig" sha256
mkdir "$MNT/.ctl/keys/n3"
echo rsa-2048 >"$MNT/.ctl/keys/n3/algorithm"
check "[keys] rsa_padding = pkcs1 applies to a key switched to RSA" test "$(cat "$MNT/.ctl/keys/n3/padding")" = pkcs1
cp "$T/fw.bin" "$MNT/n3/fw.bin"
check "and its signature is PKCS#1 v1.5 over SHA-512" openssl dgst -sha512 -verify "$(pubkey n3)" \
	-signature "$MNT/n3/fw.bin.sig" "$T/fw.bin"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/imp.key" 2>/dev/null
mkdir "$MNT/.ctl/keys/n5"
cat "$T/imp.key" >"$MNT/.ctl/keys/n5/import"
check "[keys] rsa_padding = pkcs1 applies to an imported RSA key" test "$(cat "$MNT/.ctl/keys/n5/padding")" = pkcs1
stop_sigfs
conf_set keys algorithm ecdsa-p384
conf_set keys inbox_group sigfs-e2e-signers
conf_set keys inbox_mode 0700
start_sigfs
check "existing key keeps its algorithm after the default changes" test "$(cat "$MNT/.ctl/keys/n1/algorithm")" = ed25519
check "existing inbox keeps its mode after inbox_mode changes" stat_is "$MNT/n1" "root:sigfs-e2e-admin2 750"
mkdir "$MNT/.ctl/keys/n4"
check "new default algorithm applies to the next key" test "$(cat "$MNT/.ctl/keys/n4/algorithm")" = ecdsa-p384
check "inbox_group and inbox_mode apply to the next inbox" stat_is "$MNT/n4" "root:sigfs-e2e-signers 700"
stop_sigfs

# -o passes FUSE options through; our own mount options stay.
start_sigfs -o fsname=sigfs-e2e-name
check "-o fsname= reaches the mount" test "$(findmnt -n -o SOURCE "$MNT")" = sigfs-e2e-name
check "default_permissions and allow_other are kept" bash -c \
	"findmnt -n -o OPTIONS '$MNT' | grep -q default_permissions && findmnt -n -o OPTIONS '$MNT' | grep -q allow_other"
stop_sigfs

# systemd: with NOTIFY_SOCKET set, sigfsd sends READY=1 once the mount is up.
cat >"$T/notify.py" <<'PY'
import os, socket, sys
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
msg = s.recv(4096).decode()
mounted = os.path.ismount(sys.argv[2])
print(msg.strip().replace("\n", " "), "mounted" if mounted else "not-mounted")
PY
python3 "$T/notify.py" "$T/notify.sock" "$MNT" >"$T/notify.out" &
npid=$!
for _ in $(seq 1 100); do [ -S "$T/notify.sock" ] && break; sleep 0.05; done
NOTIFY_SOCKET=$T/notify.sock start_sigfs
wait "$npid" || true
check "sigfsd tells systemd READY=1, after the mount is up" grep -q "READY=1.*mounted$" "$T/notify.out"
check_fails "and not before" grep -q "not-mounted" "$T/notify.out"
stop_sigfs

# Without --foreground: the command returns once the mount is ready, and the
# detached daemon signs (its workers started after the fork).
check "sigfsd without --foreground returns 0 once mounted" \
	"$SIGFSD" --config "$CONF" --state-dir "$STATE" "$MNT"
check "the mount is there when it returns" mountpoint -q "$MNT"
mkdir -p "$MNT/.ctl/keys/bg"
cp "$T/fw.bin" "$MNT/bg/fw.bin"
check "the detached daemon signs" verify_raw bg "$T/fw.bin" "$MNT/bg/fw.bin.sig" "$(cat "$MNT/.ctl/keys/bg/digest")"
daemon_running() { # is a sigfsd serving this test's state directory still running?
	for c in /proc/[0-9]*/cmdline; do
		tr '\0' ' ' <"$c" 2>/dev/null | grep -q -- "--state-dir $STATE " && return 0
	done
	return 1
}
check "it runs detached" daemon_running
fusermount3 -u "$MNT"
for _ in $(seq 1 100); do daemon_running || break; sleep 0.1; done
check_fails "it exits when unmounted" daemon_running
check_fails "a detached start that cannot mount exits non-zero" \
	"$SIGFSD" --config "$CONF" --state-dir "$STATE" "$T/no-such-dir"
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
