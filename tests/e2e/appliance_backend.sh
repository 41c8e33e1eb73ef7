#!/bin/bash
# Story: an admin adds two sigfs-appliance daemons holding the same keys as
# [backend app] and creates keys on them with `mkdir .ctl/keys/KEY@app`: the
# key is on both appliances, files copied into KEY's inbox are signed there
# (Ed25519, ECDSA P-256/384/521, RSA PSS and PKCS#1 v1.5) and verify with
# openssl; rmdir deletes it from both. Four workers spread a batch over both
# appliances; when one is killed mid-batch the others carry on and every file
# still gets a good signature; the killed one is used again once it is back.
# Appliances down at start, or both killed mid-batch, are waited for within
# retry_seconds; after that the job's .err names every appliance. A secret the
# appliances do not know fails at once with a clear .err; a secret file others
# can read is refused; the secret appears nowhere in the mount or the log.
# Links the appliances close when idle are replaced at once, with no failover
# and no appliance marked down; a file too large for Ed25519 on the appliances
# fails at once with a .err naming their --max-frame; when sigfsd's client may
# only sign (its clients-file line has no `manage`), mkdir and rmdir of a key
# fail at once with a log line saying what to add, and signing goes on.
. "$(dirname "$0")/lib.sh"

APP=$(dirname "$SIGFSD")/sigfs-appliance
[ -x "$APP" ] || fail "$APP is missing: build sigfs-appliance (meson builds it beside sigfsd)"
K=$MNT/.ctl/keys
APID=(- "" "")
SECRET=$(openssl rand -hex 32)
WRONG=$(openssl rand -hex 32)

PORT=$(port_free_on_both 127.0.0.2 127.0.0.3)
[ -n "$PORT" ] || fail "no port free on both 127.0.0.2 and 127.0.0.3"
ADDR=(- "127.0.0.2:$PORT" "127.0.0.3:$PORT")

# Each appliance has its own key store and clients file; both know client sigfs,
# which creates and deletes keys, so it may sign and manage.
for i in 1 2; do
	mkdir -p "$T/app$i"
	chmod 0700 "$T/app$i"
	printf 'sigfs %s sign,manage\n' "$SECRET" >"$T/app$i.clients"
	chmod 0600 "$T/app$i.clients"
done
printf '%s\n' "$SECRET" >"$T/app.secret"
chmod 0600 "$T/app.secret"

# start_app I: start appliance I (same address, store and clients as before,
# and the options in APP_OPTS), wait for it.
APP_OPTS=()
start_app() {
	local i=$1 n
	"$APP" --listen "${ADDR[$i]}" --store "$T/app$i/store" --clients "$T/app$i.clients" \
		--verbose "${APP_OPTS[@]}" >>"$T/app$i.log" 2>&1 &
	APID[$i]=$!
	for n in $(seq 1 100); do
		ctl "$i" listkeys >/dev/null 2>&1 && return 0
		kill -0 "${APID[$i]}" 2>/dev/null || fail "appliance $i exited: $(tail -n 5 "$T/app$i.log")"
		sleep 0.1
	done
	fail "appliance $i did not answer on ${ADDR[$i]}"
}

# stop_app I [SIGNAL]: stop appliance I (SIGTERM, or e.g. KILL) and reap it.
stop_app() {
	local i=$1 pid=${APID[$1]}
	[ -n "$pid" ] || return 0
	APID[$i]=
	kill -"${2:-TERM}" "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# ctl I COMMAND...: the appliance's own client, as sigfs.
ctl() {
	local i=$1
	shift
	"$APP" ctl "${ADDR[$i]}" --client sigfs --secret-file "$T/app.secret" "$@"
}

# on_app I KEY: appliance I lists KEY; on_both KEY, on_neither KEY.
on_app() {
	ctl "$1" listkeys | grep -qw -- "$2"
}

on_both() {
	on_app 1 "$1" && on_app 2 "$1"
}

off_app() {
	! on_app "$@"
}

on_neither() {
	! on_app 1 "$1" && ! on_app 2 "$1"
}

# Signing requests appliance I has logged so far.
signs() {
	grep -c 'op SIGN ' "$T/app$1.log" || true
}

at_exit stop_app 1
at_exit stop_app 2

start_app 1
start_app 2
conf_set sigfs workers 4
cat >>"$CONF" <<EOF
[backend app]
type = appliance
appliances = ${ADDR[1]}, ${ADDR[2]}
secret_file = $T/app.secret
retry_seconds = 3
timeout_seconds = 10
[backend solo]
type = appliance
appliances = ${ADDR[1]}
secret_file = $T/app.secret
retry_seconds = 3
EOF
start_sigfs

# --- 1. keys on both appliances, every algorithm -----------------------------------
check "mkdir ed@app creates key ed" mkdir "$K/ed@app"
check "ed lives on app" test "$(cat "$K/ed/backend")" = app
sign_on ed ed25519
sign_on_ec_and_rsa app
mkdir "$K/rsa3@app"
sign_on rsa3 rsa-3072
for key in ed p256 p384 p521 rsa rsa3; do
	for i in 1 2; do
		ctl "$i" pubkey "$key" >"$T/$key.$i.pub" 2>&1 || fail "ctl $i pubkey $key: $(cat "$T/$key.$i.pub")"
		openssl pkey -pubin -in "$T/$key.$i.pub" -outform DER -out "$T/$key.$i.der" 2>/dev/null ||
			openssl pkey -pubin -inform DER -in "$T/$key.$i.pub" -outform DER -out "$T/$key.$i.der"
	done
	openssl pkey -pubin -in "$K/$key/pubkey.pem" -outform DER -out "$T/$key.mount.der"
	check "$key: both appliances list it" on_both "$key"
	check "$key: both hold the public key the mount shows" \
		bash -c "cmp -s '$T/$key.1.der' '$T/$key.mount.der' && cmp -s '$T/$key.2.der' '$T/$key.mount.der'"
done

# Import: a PEM key goes into both appliances (through sigfs's staging id).
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/imp.pem" 2>/dev/null
mkdir "$K/imp@app"
check "import a P-256 PEM key into both appliances" bash -c "cat '$T/imp.pem' >'$K/imp/import'"
openssl pkey -in "$T/imp.pem" -pubout -outform DER -out "$T/imp.want.der"
openssl pkey -pubin -in "$K/imp/pubkey.pem" -outform DER -out "$T/imp.mount.der"
check "the mount shows the imported key" cmp -s "$T/imp.want.der" "$T/imp.mount.der"
head -c 3000 /dev/urandom >"$T/imp.bin"
cp "$T/imp.bin" "$MNT/imp/doc.bin"
check "the imported key signs" verify_raw imp "$T/imp.bin" "$MNT/imp/doc.bin.sig"
check "no staging id is left on the appliances" on_neither 'imp\.\.import'

check "rmdir p384" rmdir "$K/p384"
check "p384 is gone from both appliances" on_neither p384
check "p256 is still on both" on_both p256

# One appliance: the key is generated inside it (KEYGEN).
check "mkdir one@solo" mkdir "$K/one@solo"
sign_on one rsa-2048 pss
check "one is on appliance 1" on_app 1 one
check "... and not on appliance 2" off_app 2 one
check "appliance 1 made it (KEYGEN)" grep -q "op KEYGEN key one status 0" "$T/app1.log"
check "rmdir one" rmdir "$K/one"
check "one is gone from appliance 1" off_app 1 one

# All or nothing: an id taken on appliance 2 fails the mkdir and leaves nothing on appliance 1.
check "ctl keygen dup on appliance 2 only" ctl 2 keygen dup ed25519 255
check_fails "mkdir dup@app fails: dup exists on appliance 2" mkdir "$K/dup@app"
check "the log names appliance 2" grep -q "key 'dup' exists on ${ADDR[2]}" "$LOG"
check "dup was taken back from appliance 1" off_app 1 dup
check "appliance 2's own dup is untouched" on_app 2 dup

# A replaced board may lack a key: the other appliance signs.
check "ctl keydel p521 on appliance 1" ctl 1 keydel p521
for n in $(seq 1 8); do
	head -c 1000 /dev/urandom >"$T/nk$n"
	cp "$T/nk$n" "$MNT/p521/nk$n"
done
check "p521 missing on appliance 1: all 8 files signed by appliance 2" \
	verify_many p521 "$MNT/p521" nk1 nk2 nk3 nk4 nk5 nk6 nk7 nk8
check "appliance 1 was asked and said no such key" grep -q "op SIGN key p521 status 4" "$T/app1.log"
check "ctl keydel p521 on appliance 2" ctl 2 keydel p521
check_fails_with "p521 on no appliance: the copy fails" "Input/output error" \
	cp "$T/nk1" "$MNT/p521/none"
check "... and the .err names the key" grep -q "no appliance holds key 'p521'" "$MNT/p521/none.err"
rm -f "$MNT"/p521/*
check "rmdir p521 (on no appliance any more)" rmdir "$K/p521"

# --- 2. load spreading and failover ------------------------------------------------
N=500
s1=$(signs 1)
s2=$(signs 2)
mark=$(log_mark)
t0=$(date +%s.%N)
batch_copy p256 $N
wait_sigs p256 100
s1k=$(($(signs 1) - s1))
s2k=$(($(signs 2) - s2))
echo "# before the kill: appliance 1 signed $s1k, appliance 2 signed $s2k"
check "four workers keep both appliances busy (1: $s1k, 2: $s2k)" test "$s1k" -gt 10 -a "$s2k" -gt 10
stop_app 1 KILL
done_at_kill=$(sigs_of p256)
check "the kill came mid-batch ($done_at_kill of $N signed)" test "$done_at_kill" -lt $((N - 100))
t1=$(date +%s.%N)
batch_signed p256 $N "one appliance killed"
t2=$(date +%s.%N)
echo "# $N files: $(awk "BEGIN{print $t2 - $t0}") s in all, $(awk "BEGIN{print $t2 - $t1}") s after the kill"
check "sigfsd logged the appliance going down" \
	bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'appliance ${ADDR[1]} is down'"
rm -f "$MNT"/p256/f*

start_app 1
s1=$(signs 1)
for n in $(seq 1 100); do
	cp "$T/batch/f$n" "$MNT/p256/g$n"
	[ "$(signs 1)" -gt "$s1" ] && break
	sleep 0.1
done
check "the restarted appliance signs again" test "$(signs 1)" -gt "$s1"
check "sigfsd logged it back" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'appliance ${ADDR[1]} is back'"
rm -f "$MNT"/p256/g*

# --- 3. both down at start -----------------------------------------------------------
stop_sigfs
stop_app 1
stop_app 2
start_sigfs
head -c 5000 /dev/urandom >"$T/s.bin"
t0=$(date +%s%N)
check_fails_with "both down: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/a.bin"
t1=$(date +%s%N)
check "both down: the job gives a.bin.err" wait_for "$MNT/p256/a.bin.err" 30
check "both down: it waited retry_seconds ($(((t1 - t0) / 1000000)) ms)" \
	test $(((t1 - t0) / 1000000)) -ge 2900
echo "# $(cat "$MNT/p256/a.bin.err")"
check "both down: the .err names both appliances" \
	grep -q "no appliance answered.*${ADDR[1]}: .*${ADDR[2]}: " "$MNT/p256/a.bin.err"
cp "$T/s.bin" "$MNT/p256/b.bin" &
cp_pid=$!
sleep 1
start_app 2
check "one appliance back within the window: the copy completes" wait "$cp_pid"
check "... and its signature verifies" verify_raw p256 "$T/s.bin" "$MNT/p256/b.bin.sig"
# Down again: now the signing request itself waits and gives up.
stop_app 2
check_fails_with "both down again: the copy fails" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/c.bin"
echo "# $(cat "$MNT/p256/c.bin.err")"
check "both down again: the .err names SIGN and both appliances" \
	grep -q "SIGN of key 'p256': no appliance answered.*${ADDR[1]}: .*${ADDR[2]}: " "$MNT/p256/c.bin.err"
start_app 1
start_app 2

# --- 4. both killed mid-batch, one back within the window ---------------------------
N=200
rm -f "$MNT"/p256/*.bin*
batch_copy p256 $N
wait_sigs p256 20
stop_app 1 KILL
stop_app 2 KILL
done_at_kill=$(sigs_of p256)
check "both were killed mid-batch ($done_at_kill of $N signed)" test "$done_at_kill" -lt $((N - 20))
sleep 1
start_app 2
batch_signed p256 $N "both killed mid-batch"
rm -f "$MNT"/p256/f*
start_app 1

# --- 5. credentials ------------------------------------------------------------------
stop_sigfs
printf '%s\n' "$WRONG" >"$T/app.secret"
start_sigfs
mark=$(log_mark)
t0=$(date +%s%N)
check_fails_with "unknown secret: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/w.bin"
t1=$(date +%s%N)
check "unknown secret: fails at once ($(((t1 - t0) / 1000000)) ms), not after retry_seconds" \
	test $(((t1 - t0) / 1000000)) -lt 2000
echo "# $(cat "$MNT/p256/w.bin.err")"
check "unknown secret: the .err says the appliance refused us and what to check" \
	grep -q "refused client sigfs.*check client and secret_file" "$MNT/p256/w.bin.err"
check "unknown secret: no signature" test ! -e "$MNT/p256/w.bin.sig"
check "unknown secret: the log says so" \
	bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'refused client sigfs'"

stop_sigfs
printf '%s\n' "$SECRET" >"$T/app.secret"
chmod 0644 "$T/app.secret"
start_sigfs
check_fails_with "secret_file 0644: the copy fails" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/m.bin"
check "secret_file 0644: the .err says why" \
	grep -q "refusing secret_file.*mode 0644" "$MNT/p256/m.bin.err"
chmod 0600 "$T/app.secret"
cp "$T/s.bin" "$MNT/p256/ok.bin"
check "secret_file fixed: p256 signs again (no restart)" \
	verify_raw p256 "$T/s.bin" "$MNT/p256/ok.bin.sig"

# Configuration errors are clear.
cat >>"$CONF" <<EOF
[backend bad]
type = appliance
appliances = 127.0.0.2
secret_file = $T/app.secret
EOF
stop_sigfs
start_sigfs
check_fails "mkdir x@bad with an appliance without a port fails" mkdir "$K/x@bad"
check "the log says appliances must be HOST:PORT" grep -q "appliance '127.0.0.2' is not HOST:PORT" "$LOG"

# --- 6. links the appliances close when idle are replaced at once ---------------------
# One worker: its two links (one per appliance) are the ones that go idle.
stop_sigfs
stop_app 1
stop_app 2
APP_OPTS=(--idle-seconds 1)
start_app 1
start_app 2
conf_set sigfs workers 1
start_sigfs
for n in 1 2 3 4; do
	head -c 3000 /dev/urandom >"$T/idle$n.bin"
done
cp "$T/idle1.bin" "$MNT/p256/idle1.bin"
cp "$T/idle2.bin" "$MNT/p256/idle2.bin"
check "the worker has a link to each appliance (jobs alternate)" \
	bash -c "grep -q 'client sigfs connected' '$T/app1.log' && grep -q 'client sigfs connected' '$T/app2.log'"
closed() {
	cat "$T/app1.log" "$T/app2.log" | grep -c 'client sigfs from .*: idle for 1 s: closing the connection' || true
}
c0=$(closed)
sleep 2.5
check "both appliances closed the idle links" test "$(closed)" -ge $((c0 + 2))
mark=$(log_mark)
for n in 3 4; do
	s1=$(signs 1)
	s2=$(signs 2)
	t0=$(date +%s%N)
	cp "$T/idle$n.bin" "$MNT/p256/idle$n.bin"
	ms=$((($(date +%s%N) - t0) / 1000000))
	check "after the idle close, copy $((n - 2)) signs at once ($ms ms)" test $ms -lt 1000
	check "... with one SIGN request in all (no failover, no retry)" \
		test $(($(signs 1) + $(signs 2) - s1 - s2)) -eq 1
done
check "the signatures verify" verify_many p256 "$MNT/p256" idle1.bin idle2.bin idle3.bin idle4.bin
check "no appliance was marked down" bash -c "! tail -n +$((mark + 1)) '$LOG' | grep -q 'is down'"
check ".ctl/status lists backend app with its keys" grep -q '^backend app: appliance, [0-9]* keys$' "$MNT/.ctl/status"
rm -f "$MNT"/p256/idle*

# --- 7. a file too large for Ed25519 on the appliances ----------------------------------
head -c 1500000 /dev/urandom >"$T/huge.bin"
mark=$(log_mark)
t0=$(date +%s%N)
check_fails_with "a 1500000-byte file for Ed25519 key ed: the copy fails" "Input/output error" \
	cp "$T/huge.bin" "$MNT/ed/huge.bin"
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# $(cat "$MNT/ed/huge.bin.err")"
check "the .err names the limit and what to do" \
	grep -q "appliance backend app: a 1500000-byte file is too large for Ed25519 on its appliances (at most 1048560 bytes: their --max-frame is 1048576); use an ECDSA or RSA key, or raise --max-frame" \
	"$MNT/ed/huge.bin.err"
check "... in one line" test "$(wc -l <"$MNT/ed/huge.bin.err")" -le 1
check "it failed at once ($ms ms), not after retry_seconds" test $ms -lt 2000
check "... without marking an appliance down" bash -c "! tail -n +$((mark + 1)) '$LOG' | grep -q 'is down'"
rm -f "$MNT"/ed/huge*
head -c 100000 /dev/urandom >"$T/ed.bin"
cp "$T/ed.bin" "$MNT/ed/ed.bin"
check "a 100000-byte file still signs with Ed25519" verify_raw ed "$T/ed.bin" "$MNT/ed/ed.bin.sig"
rm -f "$MNT"/ed/ed.bin*

# --- 8. a client that may only sign cannot create or delete keys ------------------------
check "mkdir solokey@solo (sigfs may manage keys)" mkdir "$K/solokey@solo"
# A line without roles: sign only.
printf 'sigfs %s\n' "$SECRET" >"$T/app1.clients"
kill -HUP "${APID[1]}"
sign_only() {
	local out
	out=$(ctl 1 keydel nosuch 2>&1) || true
	case $out in *"may not manage keys"*) return 0 ;; esac
	return 1
}
for n in $(seq 1 50); do
	sign_only && break
	sleep 0.1
done
check "appliance 1 reloaded its clients file: sigfs may only sign" sign_only
mark=$(log_mark)
t0=$(date +%s%N)
check_fails "mkdir newkey@solo fails" mkdir "$K/newkey@solo"
ms=$((($(date +%s%N) - t0) / 1000000))
check "... at once ($ms ms), not retried for retry_seconds" test $ms -lt 2000
check "sigfsd's log says appliance 1 refused KEYGEN and what to add" \
	bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'appliance ${ADDR[1]} refused KEYGEN: client sigfs may not manage keys; add manage to its line in the clients file'"
check "newkey is not on appliance 1" off_app 1 newkey
mark=$(log_mark)
check_fails "rmdir solokey fails" rmdir "$K/solokey"
check "sigfsd's log says appliance 1 refused KEYDEL and what to add" \
	bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'appliance ${ADDR[1]} refused KEYDEL: client sigfs may not manage keys; add manage to its line in the clients file'"
check "solokey is still on appliance 1" on_app 1 solokey
check "appliance 1 logged the refusals" grep -q "client sigfs op KEYDEL key - status 10" "$T/app1.log"
sign_on solokey ecdsa-p256
check "no appliance was marked down" bash -c "! tail -n +$((mark + 1)) '$LOG' | grep -q 'is down'"
printf 'sigfs %s sign,manage\n' "$SECRET" >"$T/app1.clients"
kill -HUP "${APID[1]}"
for n in $(seq 1 50); do
	sign_only || break
	sleep 0.1
done
check "with manage again, rmdir solokey works" rmdir "$K/solokey"
check "solokey is gone from appliance 1" off_app 1 solokey

for s in "$SECRET" "$WRONG"; do
	check "grep -r over the mount does not find a secret" bash -c "! grep -r -s -q -i -F '$s' '$MNT'"
	check "the log does not hold a secret" no_match -i -F -- "$s" "$LOG"
done

grep 'appliance backend' "$LOG" | sort | uniq -c | sort -rn | head -n 12 | sed 's/^/# log: /'
stop_sigfs
stop_app 1
stop_app 2
done_testing
