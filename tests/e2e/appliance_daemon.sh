#!/bin/bash
# Story: an admin runs sigfs-appliance, our SEGGER-style signing appliance, and
# drives it with `sigfs-appliance ctl`: keys of every type (RSA 1024 to 8192,
# EC P-256/384/521, Ed25519) are generated or loaded, every scheme signs every
# digest (sha1 .. sha3-512) and openssl verifies each signature; public keys
# match, keys survive a restart, keydel removes them, bad requests get the
# right status, a wrong or unknown client key is refused (also after SIGHUP
# drops a client), and a clients file others can read stops the daemon from
# starting. Neither PSKs nor private keys reach the log.
#
# Roles: a client without `manage` in its clients-file line (a line without
# roles is `sign` only) signs but is refused KEYGEN, KEYLOAD and KEYDEL with a
# line saying what to add, and SIGHUP changes roles. Limits: an attacker
# holding ~200 idle TCP connections from 127.0.0.2, reopening them as they
# close, does not keep ctl from 127.0.0.1 from signing; an idle authenticated
# connection and a silent TCP connection are closed after their limits; a
# frame over --max-frame is refused with a clear reply, and the appliance's
# RSS (/proc) stays within what the limits allow while many clients send
# large frames, and falls back when they idle.
#
# The appliance binary is built beside sigfsd: $(dirname "$SIGFSD")/sigfs-appliance.
. "$(dirname "$0")/lib.sh"

APPL=$(dirname "$SIGFSD")/sigfs-appliance
[ -x "$APPL" ] || fail "$APPL is missing: it is built beside sigfsd (meson target sigfs-appliance)"
STORE=$T/store
CLIENTS=$T/clients
A_PID=
A_LOG=
ADDR=
STARTS=0
BG_PID=
A_ASAN_OPTIONS=${ASAN_OPTIONS:-}

# appliance_exits_cleanly: SIGTERM to the appliance; true if it exited with
# status 0 (false, too, if none was running).
appliance_exits_cleanly() {
	local pid=$A_PID
	A_PID=
	[ -z "$pid" ] || kill "$pid"
	exited_cleanly "$pid" "$A_LOG"
}

# Stop the appliance, if running; its exit status must be 0.
stop_appliance() {
	[ -z "$A_PID" ] || appliance_exits_cleanly || fail "sigfs-appliance did not stop cleanly"
}

# Everything this test started goes before lib.sh's cleanup, which must see
# the test's exit status.
on_exit() {
	local rc=$?
	if [ -n "$BG_PID" ]; then
		kill "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	if [ -n "$A_PID" ]; then
		kill "$A_PID" 2>/dev/null || true
		wait "$A_PID" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ] && [ -n "$A_LOG" ]; then
		echo "--- appliance log (last 40 lines) ---"
		tail -n 40 "$A_LOG"
	fi
	if [ $rc -eq 0 ]; then
		_cleanup
	else
		(exit $rc) || _cleanup
	fi
}
trap on_exit EXIT

# start_appliance [OPTION...]: start the appliance on a free port (with the
# options given); ADDR gets 127.0.0.1:PORT from its first line.
start_appliance() {
	local i port=
	STARTS=$((STARTS + 1))
	A_LOG=$T/appliance.$STARTS.log
	# Created here: the background job's redirection may come after the first read.
	: >"$A_LOG"
	ASAN_OPTIONS=$A_ASAN_OPTIONS "$APPL" --listen 127.0.0.1:0 --store "$STORE" --clients "$CLIENTS" --name box1 \
		--engines 2 --verbose "$@" 2>"$A_LOG" &
	A_PID=$!
	for i in $(seq 1 100); do
		port=$(sed -n 's/^sigfs-appliance box1: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$A_LOG")
		[ -n "$port" ] && break
		kill -0 "$A_PID" 2>/dev/null || { wait "$A_PID" || true; A_PID=; fail "sigfs-appliance did not start: $(cat "$A_LOG")"; }
		sleep 0.05
	done
	[ -n "$port" ] || fail "sigfs-appliance printed no listening line: $(cat "$A_LOG")"
	ADDR=127.0.0.1:$port
}

# ctl [--as CLIENT KEYFILE] CMD...: run a ctl command (as alice by default).
ctl() {
	local client=alice key=$T/alice.key
	if [ "$1" = --as ]; then
		client=$2 key=$3
		shift 3
	fi
	"$APPL" ctl "$ADDR" --client "$client" --secret-file "$key" "$@"
}

ctl_quiet() {
	ctl "$@" >/dev/null
}

# SIGHUP is handled asynchronously: wait until bob's connections are refused.
wait_refused() {
	local i
	for i in $(seq 1 50); do
		ctl --as bob "$T/bob.key" listkeys >/dev/null 2>&1 || return 0
		sleep 0.1
	done
	return 1
}

hex() { od -An -v -tx1 "$1" | tr -d ' \n'; }

# sign_verify KEY SCHEME DIGEST: sign a digest of a fresh file and verify it with
# openssl, against KEY's public key as first fetched (so also across restarts).
sign_verify() {
	local key=$1 scheme=$2 dg=$3 in=$T/data.bin sig=$T/sig.bin
	[ -s "$T/$key.pub" ] || ctl pubkey "$key" >"$T/$key.pub"
	head -c 1000 /dev/urandom >"$T/msg"
	if [ "$scheme" = ed25519 ]; then
		ctl sign "$key" ed25519 none "$(hex "$T/msg")" | xxd -r -p >"$sig"
		openssl pkeyutl -verify -pubin -inkey "$T/$key.pub" -rawin -in "$T/msg" \
			-sigfile "$sig" >/dev/null
		return
	fi
	openssl dgst "-$dg" -binary "$T/msg" >"$in"
	ctl sign "$key" "$scheme" "$dg" "$(hex "$in")" | xxd -r -p >"$sig"
	case $scheme in
	rsa-pss)
		openssl pkeyutl -verify -pubin -inkey "$T/$key.pub" -in "$in" -sigfile "$sig" \
			-pkeyopt "digest:$dg" -pkeyopt rsa_padding_mode:pss \
			-pkeyopt rsa_pss_saltlen:digest >/dev/null ;;
	*)
		openssl pkeyutl -verify -pubin -inkey "$T/$key.pub" -in "$in" -sigfile "$sig" \
			-pkeyopt "digest:$dg" >/dev/null ;;
	esac
}

DIGESTS="sha1 sha224 sha256 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"
ALICE=$(openssl rand -hex 32)
BOB=$(openssl rand -hex 32)
ERIN=$(openssl rand -hex 32)
DAVE=$(openssl rand -hex 32)
printf '%s\n' "$ALICE" >"$T/alice.key"
printf '%s\n' "$BOB" >"$T/bob.key"
printf '%s\n' "$ERIN" >"$T/erin.key"
printf '%s\n' "$DAVE" >"$T/dave.key"
openssl rand -hex 32 >"$T/wrong.key"
chmod 0600 "$T/alice.key" "$T/bob.key" "$T/erin.key" "$T/dave.key" "$T/wrong.key"
# alice administers; bob's line has no roles (sign only); erin signs; dave manages keys.
clients_file() {
	printf '# sigfs-appliance clients\nalice %s sign,manage\n\nbob %s%s\nerin %s sign\ndave %s manage\n' \
		"$ALICE" "$BOB" "${1:+ $1}" "$ERIN" "$DAVE" >"$CLIENTS"
}
clients_file

# --- a clients file others can read: no start --------------------------------
chmod 0644 "$CLIENTS"
check_fails_with "clients file with mode 0644: the daemon refuses to start" \
	"refusing clients file $CLIENTS" timeout 20 "$APPL" --listen 127.0.0.1:0 --store "$STORE" \
	--clients "$CLIENTS"
chmod 0600 "$CLIENTS"

start_appliance
check "store created 0700" stat_is "$STORE" "root:root 700"
check "listkeys on an empty store prints nothing" prints_nothing ctl listkeys

# --- keys of every type --------------------------------------------------------
# RSA-8192 takes seconds: generated in the background while the others are made
# and used, which also shows keygen does not hold the store for its duration.
ctl keygen rsa8192 rsa 8192 >"$T/keygen8192.out" 2>&1 &
BG_PID=$!
for spec in "rsa1024 rsa 1024" "rsa2048 rsa 2048" "rsa3072 rsa 3072" "p256 ec-p256 256" \
	"p384 ec-p384 384" "p521 ec-p521 521" "ed ed25519 255"; do
	set -- $spec
	check "keygen $1 ($2 $3)" ctl keygen "$1" "$2" "$3"
done
check "sign with rsa2048 while RSA-8192 is being generated" sign_verify rsa2048 rsa-pss sha256
check "keygen rsa8192 (rsa 8192) finishes" wait "$BG_PID"
BG_PID=

openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$T/imp-rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$T/imp-ed.pem"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$T/imp-ec.pem"
check "keyload imprsa reports rsa 2048" test "$(ctl keyload imprsa "$T/imp-rsa.pem")" = "imprsa rsa 2048"
check "keyload imped reports ed25519 255" test "$(ctl keyload imped "$T/imp-ed.pem")" = "imped ed25519 255"
check "keyload impec reports ec-p384 384" test "$(ctl keyload impec "$T/imp-ec.pem")" = "impec ec-p384 384"
for k in imprsa imped impec; do
	src=$T/imp-${k#imp}.pem
	check "pubkey $k matches the loaded key" \
		cmp <(ctl pubkey "$k") <(openssl pkey -in "$src" -pubout)
done

cat >"$T/want-keys" <<EOF
ed ed25519 255
impec ec-p384 384
imped ed25519 255
imprsa rsa 2048
p256 ec-p256 256
p384 ec-p384 384
p521 ec-p521 521
rsa1024 rsa 1024
rsa2048 rsa 2048
rsa3072 rsa 3072
rsa8192 rsa 8192
EOF
check "listkeys lists every key with type and bits" cmp "$T/want-keys" <(ctl listkeys)
check "one 0600 PKCS#8 PEM per key in the store" \
	test "$(stat -c '%a' "$STORE"/*.pem | sort -u)" = 600 -a "$(ls "$STORE" | wc -l)" = 11
check "key files are PKCS#8" grep -q "BEGIN PRIVATE KEY" "$STORE/p256.pem"

for k in $(cut -d' ' -f1 "$T/want-keys"); do
	ctl pubkey "$k" >"$T/$k.pub"
	check "pubkey $k is the store's key" cmp "$T/$k.pub" <(openssl pkey -in "$STORE/$k.pem" -pubout)
done

# --- every scheme with every digest, verified by openssl -------------------------
for k in rsa1024 rsa2048 rsa3072 rsa8192 imprsa; do
	for dg in $DIGESTS; do
		check "$k rsa-pkcs1 $dg verifies" sign_verify "$k" rsa-pkcs1 "$dg"
		case $k/$dg in
		# EMSA-PSS needs 2 * 64 + 2 bytes: more than RSA-1024 has.
		rsa1024/sha512 | rsa1024/sha3-512)
			check_fails_with "$k rsa-pss $dg: too small for a digest-length salt" \
				"too small for PSS" sign_verify "$k" rsa-pss "$dg" ;;
		*) check "$k rsa-pss $dg verifies" sign_verify "$k" rsa-pss "$dg" ;;
		esac
	done
done
for k in p256 p384 p521 impec; do
	for dg in $DIGESTS; do
		check "$k ecdsa $dg verifies" sign_verify "$k" ecdsa "$dg"
	done
done
for k in ed imped; do
	check "$k ed25519 (pure, over the message) verifies" sign_verify "$k" ed25519 none
done

# --- bad requests get the right status ----------------------------------------
D32=$(printf '%064d' 0)
check_fails_with "sign with an unknown key: no such key" "(no such key)" \
	ctl sign nosuch rsa-pss sha256 "$D32"
check_fails_with "ecdsa on an RSA key: mismatch" "(does not match the key or digest)" \
	ctl sign rsa2048 ecdsa sha256 "$D32"
check_fails_with "rsa-pss on an EC key: mismatch" "(does not match the key or digest)" \
	ctl sign p256 rsa-pss sha256 "$D32"
check_fails_with "ed25519 scheme with a digest: mismatch" "(does not match the key or digest)" \
	ctl sign ed ed25519 sha256 "$D32"
check_fails_with "a 31-byte sha256 digest: mismatch" "(does not match the key or digest)" \
	ctl sign rsa2048 rsa-pss sha256 "${D32:2}"
check_fails_with "a sha256-long digest said to be sha512: mismatch" "(does not match the key or digest)" \
	ctl sign p256 ecdsa sha512 "$D32"
check_fails_with "keygen RSA-512: not supported" "(not supported)" ctl keygen r512 rsa 512
check_fails_with "keygen RSA-2047: not supported" "(not supported)" ctl keygen r2047 rsa 2047
check_fails_with "keygen RSA-16384: not supported" "(not supported)" ctl keygen r16k rsa 16384
check_fails_with "keygen ec-p256 with 384 bits: not supported" "(not supported)" \
	ctl keygen pbad ec-p256 384
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:512 -out "$T/rsa512.pem" 2>/dev/null
check_fails_with "keyload RSA-512: not supported" "(not supported)" ctl keyload r512 "$T/rsa512.pem"
openssl genpkey -algorithm ED448 -out "$T/ed448.pem"
check_fails_with "keyload Ed448: not supported" "(not supported)" ctl keyload e448 "$T/ed448.pem"
check_fails_with "keygen an existing id: key exists" "(key exists)" ctl keygen p256 ec-p256 256
check_fails_with "key id with a slash: malformed" "(malformed request)" ctl keygen a/b ed25519 255
check_fails_with "key id of 129 bytes: malformed" "(malformed request)" \
	ctl pubkey "$(printf 'k%.0s' $(seq 1 129))"
check_fails_with "empty key id: malformed" "(malformed request)" ctl keydel ""
check "refused requests left no key behind" cmp "$T/want-keys" <(ctl listkeys)

# --- authentication ------------------------------------------------------------
check_fails_with "alice with a wrong key is refused" \
	"appliance $ADDR refused client alice: wrong or unknown key" \
	ctl --as alice "$T/wrong.key" listkeys
check_fails_with "an unknown client is refused" \
	"appliance $ADDR refused client carol: wrong or unknown key" \
	ctl --as carol "$T/alice.key" listkeys
chmod 0644 "$T/bob.key"
check_fails_with "a secret file others can read is refused by ctl" "refusing secret file" \
	ctl --as bob "$T/bob.key" listkeys
chmod 0600 "$T/bob.key"
check "bob signs with his own key" ctl --as bob "$T/bob.key" sign p256 ecdsa sha256 "$D32"
check "bench prints signatures/s" \
	bash -c "'$APPL' ctl '$ADDR' --client bob --secret-file '$T/bob.key' bench p256 ecdsa sha256 1 2 | grep -qE '^signatures/s: [0-9]+\.[0-9]$'"
printf 'alice %s sign,manage\n' "$ALICE" >"$CLIENTS"
kill -HUP "$A_PID"
check "after SIGHUP without bob's line, bob is refused" wait_refused
check "alice still signs after SIGHUP" ctl sign p256 ecdsa sha256 "$D32"
clients_file
kill -HUP "$A_PID"
check "after SIGHUP with bob's line again, bob signs" \
	wait_until ctl --as bob "$T/bob.key" sign p256 ecdsa sha256 "$D32"

# --- roles: who may sign, who may manage keys -------------------------------------
# manage_refused DESC CLIENT OP CMD...: CMD as CLIENT fails with the line that says what to add.
manage_refused() {
	local desc=$1 who=$2 op=$3
	shift 3
	check_fails_with "$desc" \
		"appliance $ADDR refused $op: client $who may not manage keys; add manage to its line in the clients file" \
		ctl --as "$who" "$T/$who.key" "$@"
}
check "bob (no roles: sign only) signs" ctl --as bob "$T/bob.key" sign p256 ecdsa sha256 "$D32"
check "bob reads a public key" cmp "$T/p256.pub" <(ctl --as bob "$T/bob.key" pubkey p256)
check "bob lists the keys" cmp "$T/want-keys" <(ctl --as bob "$T/bob.key" listkeys)
manage_refused "bob may not KEYGEN" bob KEYGEN keygen bobkey ed25519 255
manage_refused "bob may not KEYLOAD" bob KEYLOAD keyload bobkey "$T/imp-ed.pem"
manage_refused "bob may not KEYDEL" bob KEYDEL keydel p256
check "erin (sign) signs" ctl --as erin "$T/erin.key" sign p256 ecdsa sha256 "$D32"
manage_refused "erin (sign) may not KEYDEL" erin KEYDEL keydel p256
check "dave (manage) makes a key" ctl --as dave "$T/dave.key" keygen davekey ec-p256 256
check_fails_with "dave (manage) may not sign" \
	"appliance $ADDR refused SIGN: client dave may not sign; add sign to its line in the clients file" \
	ctl --as dave "$T/dave.key" sign davekey ecdsa sha256 "$D32"
check "dave deletes his key" ctl --as dave "$T/dave.key" keydel davekey
check "refused requests changed no key" cmp "$T/want-keys" <(ctl listkeys)
check "the appliance logs a refusal with its status and reason" \
	grep -q "client bob op KEYDEL key - status 10: client bob may not manage keys" "$A_LOG"
clients_file sign,manage
kill -HUP "$A_PID"
check "SIGHUP reloads roles: bob with sign,manage makes a key" \
	wait_until ctl --as bob "$T/bob.key" keygen bobkey ed25519 255
check "... and deletes it" ctl --as bob "$T/bob.key" keydel bobkey
clients_file sgn
kill -HUP "$A_PID"
check "SIGHUP with an unknown role: logged, the clients loaded before are kept" \
	wait_until grep -q "clients file $CLIENTS, line 4: unknown role 'sgn'" "$A_LOG"
check "... so bob still manages keys" ctl --as bob "$T/bob.key" keygen bobkey ed25519 255
check "... and deletes them" ctl --as bob "$T/bob.key" keydel bobkey
clients_file
kill -HUP "$A_PID"
check "bob without roles again: refused KEYGEN" \
	wait_until bash -c "! '$APPL' ctl '$ADDR' --client bob --secret-file '$T/bob.key' keygen bobkey ed25519 255 2>/dev/null"
stop_appliance
clients_file sign,,manage
check_fails_with "an empty role: the daemon refuses to start" \
	"clients file $CLIENTS, line 4: unknown role ''" \
	timeout 20 "$APPL" --listen 127.0.0.1:0 --store "$STORE" --clients "$CLIENTS"
clients_file

# --- limits: an attacker's idle connections do not lock clients out ---------------
# With the default limits: 16 connections in their handshake, 4 from one address.
start_appliance
# attack SECONDS: ~200 idle TCP connections from 127.0.0.2, each reopened when the
# appliance closes it, for SECONDS; prints "opened closed open-at-end".
attack() {
	python3 - "${ADDR%:*}" "${ADDR##*:}" 200 "$1" <<'PY'
import selectors, socket, sys, time
host, port, n, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
opened = closed = 0
def open_one():
    global opened
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.0.2", 0))
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    sel.register(s, selectors.EVENT_READ)
    opened += 1
for _ in range(n):
    open_one()
end = time.monotonic() + secs
# Bounded in time and in count.
while time.monotonic() < end and opened < 2000000:
    for key, _ in sel.select(timeout=0.1):
        s = key.fileobj
        sel.unregister(s)
        try:
            s.recv(1)
        except OSError:
            pass
        s.close()
        closed += 1
        open_one()
print(opened, closed, len(sel.get_map()))
for key in list(sel.get_map().values()):
    key.fileobj.close()
PY
}
# timed_sign: sign once with ctl; MS gets how long it took.
timed_sign() {
	local t0 r=0
	t0=$(date +%s%N)
	ctl_quiet sign p256 ecdsa sha256 "$D32" || r=$?
	MS=$((($(date +%s%N) - t0) / 1000000))
	return $r
}
calm=0
for i in 1 2 3; do
	timed_sign
	[ $MS -le $calm ] || calm=$MS
done
attack 12 >"$T/attack.out" &
BG_PID=$!
sleep 1
worst=0
for i in $(seq 1 10); do
	check "under attack from 127.0.0.2: ctl from 127.0.0.1 signs ($i of 10)" timed_sign
	[ $MS -le $worst ] || worst=$MS
	sleep 0.5
done
# Each ctl run starts, connects, does its TLS handshake and HELLO and signs while
# the attacker keeps both cores busy churning connections. Measured: at most
# 180 to 330 ms (calm: 60 to 150 ms), under ASan 710 to 1150 ms (calm: 190 to 400
# ms). The bound: 1.5 s more than the slowest of three runs before the attack.
echo "# slowest ctl sign under attack: $worst ms; before it: $calm ms"
check "under attack: every ctl sign took at most $calm + 1500 ms (slowest $worst ms)" \
	test $worst -le $((calm + 1500))
check "the attack ran to its end" wait "$BG_PID"
BG_PID=
read -r opened closed held <"$T/attack.out"
echo "# attacker: $opened connections opened, $closed closed by the appliance, $held open at the end"
check "the attacker really held ~200 connections and had thousands closed" \
	test "$held" -ge 190 -a "$closed" -ge 1000
check "the appliance logged the budget it enforced" \
	grep -q "from 127.0.0.2: 4 handshakes from that address in progress (--max-handshakes-per-address 4)" "$A_LOG"
grep 'handshake' "$A_LOG" | sed 's/^/# log: /'
check "budget log lines are rate-limited (at most one per 5 s, plus timeouts: $(grep -c 'handshake' "$A_LOG") lines)" \
	test "$(grep -c 'handshake' "$A_LOG")" -le 12

# One address may have 4 handshakes in progress; a client opening 16 connections
# at once (as sigfsd's workers may) has the ones closed over that budget retried.
check "bench with 16 connections opened at once from one address" \
	bash -c "'$APPL' ctl '$ADDR' --client bob --secret-file '$T/bob.key' bench p256 ecdsa sha256 1 16 | grep -q '^signatures/s: '"

# --- limits: frames and memory ------------------------------------------------------
# Many s_client connections at once from 127.0.0.1 (s_client does not retry): the
# handshake budget is not what this part tests.
# Under ASan freed memory waits in a quarantine (256 MiB) and RSS never falls: for
# the RSS bounds the appliance runs without one (everything else keeps it).
# (grep reads all of ldd's output: with -q it would stop early, ldd would die of
# SIGPIPE, and under pipefail the test would never see libasan.)
stop_appliance
if ldd "$APPL" | grep libasan >/dev/null; then
	A_ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=0:thread_local_quarantine_size_kb=0
fi
start_appliance --max-handshakes 64 --max-handshakes-per-address 64
A_ASAN_OPTIONS=${ASAN_OPTIONS:-}
LIMIT=1048576
ctl keygen big ed25519 255
ctl pubkey big >"$T/big.pub"
# The largest message one frame carries: the frame after its length field is
# header 6, str "big" 5, scheme 1, digest 1, blob length 4, message.
head -c $((LIMIT - 17)) /dev/urandom >"$T/atlimit.msg"
head -c $((LIMIT - 16)) /dev/urandom >"$T/overlimit.msg"
check "ctl signs a message read from @FILE that fills a frame to --max-frame" \
	bash -c "'$APPL' ctl '$ADDR' --client alice --secret-file '$T/alice.key' sign big ed25519 none @'$T/atlimit.msg' | xxd -r -p >'$T/atlimit.sig'"
check "... and the signature verifies" openssl pkeyutl -verify -pubin -inkey "$T/big.pub" -rawin \
	-in "$T/atlimit.msg" -sigfile "$T/atlimit.sig"
check_fails_with "one byte more: ctl refuses it before sending, naming the limit" \
	"appliance $ADDR accepts frames of at most $LIMIT bytes (its --max-frame); this SIGN request is $((LIMIT + 1)) bytes" \
	ctl sign big ed25519 none @"$T/overlimit.msg"

# Frames by hand, through openssl s_client with alice's PSK.
# u32 N: N as 4 bytes, big-endian. frame OP ID LEN: a frame header announcing
# LEN bytes after the length field. (printf, not python: many run at once.)
u32() {
	printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) \
		$(($1 >> 8 & 255)) $(($1 & 255)))"
}
frame() {
	u32 "$3"
	printf '\x01'
	printf "$(printf '\\x%02x' "$1")"
	u32 "$2"
}
hello() {
	frame 1 1 $((10 + 5))
	printf '\x01\x01\x00\x05alice'
}
# sign_big: a SIGN of a message that fills the frame to LIMIT, for key big.
sign_big() {
	frame 6 2 "$LIMIT"
	printf '\x00\x03big\x04\x00'
	u32 $((LIMIT - 17))
	cat "$T/atlimit.msg"
}
# raw: a TLS connection as alice (at most 30 s), stdin to the appliance, its replies to
# stdout; it ends at the end of stdin (-nocommands: bytes are never s_client commands).
raw() {
	timeout 30 openssl s_client -connect "$ADDR" -tls1_3 -psk_identity alice -psk "$ALICE" \
		-ciphersuites TLS_AES_128_GCM_SHA256 -quiet -no_ign_eof -nocommands 2>/dev/null
}
{ hello; frame 6 2 $((16 << 20)); sleep 3; } | raw >"$T/toobig.out" || true
check "a frame over --max-frame gets a 'frame too large' reply naming the limit" \
	grep -a -q "this appliance accepts at most $LIMIT (--max-frame)" "$T/toobig.out"
check "... and the appliance logged it" \
	grep -q "client alice: sent a frame of $((16 << 20)) bytes; this appliance accepts at most $LIMIT (--max-frame): closing the connection" "$A_LOG"

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$A_PID/status"; }
N=24
# Per connection the appliance holds at most one frame, growing by doubling
# while it arrives (so 1.5 x LIMIT at the moment of the last copy), plus its
# TLS state and thread (measured well under 512 KiB).
PER_CONN_KB=$((LIMIT * 3 / 2 / 1024 + 512))
base=$(status_kb VmRSS)
echo 5 >"/proc/$A_PID/clear_refs"
# N clients at once announce 16 MiB frames and push 4 MiB of them, then wait.
pids=()
for i in $(seq 1 $N); do
	{ hello; frame 6 2 $((16 << 20)); head -c $((4 << 20)) /dev/zero; sleep 3; } |
		raw >/dev/null 2>&1 &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
peak=$(($(status_kb VmHWM) - base))
echo "# $N clients sending 4 MiB of 16 MiB frames: RSS peak $peak KiB above the $base KiB before"
check "oversized frames are not buffered: peak RSS +$peak KiB <= $N x $PER_CONN_KB KiB" \
	test $peak -le $((N * PER_CONN_KB))
# idle_clients WHAT LINE: N clients at once send HELLO and WHAT's frames, then stay
# connected, idle, for 10 s; returns once the appliance logged LINE for each.
idle_clients() {
	local what=$1 line=$2 before i
	before=$(grep -c "$line" "$A_LOG" || true)
	IDLE_PIDS=()
	for i in $(seq 1 $N); do
		{ hello; $what; sleep 10; } | raw >/dev/null 2>&1 &
		IDLE_PIDS+=($!)
	done
	for i in $(seq 1 200); do
		[ "$(grep -c "$line" "$A_LOG" || true)" -ge $((before + N)) ] && return 0
		sleep 0.1
	done
	return 1
}
idle_end() {
	local p
	for p in "${IDLE_PIDS[@]}"; do wait "$p" || true; done
}
# What N idle connections cost without any large frame (threads, TLS state, and
# under ASan its own bookkeeping): the reference for the idle bound below.
base=$(status_kb VmRSS)
check "$N clients connected and idle" idle_clients true 'client alice op HELLO key - status 0'
plain=$(($(status_kb VmRSS) - base))
idle_end
base=$(status_kb VmRSS)
echo 5 >"/proc/$A_PID/clear_refs"
check "$N clients at once send a SIGN that fills a frame, and it is answered" \
	idle_clients sign_big 'client alice op SIGN key big status 0'
idle=$(($(status_kb VmRSS) - base))
idle_end
peak=$(($(status_kb VmHWM) - base))
echo "# $N clients each sending a $LIMIT-byte frame: RSS peak $peak KiB, $idle KiB while they idle ($plain KiB for $N idle clients that sent none)"
check "$N full frames at once: peak RSS +$peak KiB <= $N x $PER_CONN_KB KiB" \
	test $peak -le $((N * PER_CONN_KB))
# A buffer of up to 64 KiB may stay with a connection (see main.c, KEEP_BYTES).
check "after a large frame an idle connection holds no frame: +$idle KiB <= $plain + $N x 64 KiB" \
	test $idle -le $((plain + N * 64))
ctl keydel big
stop_appliance

# --- limits: idle and silent connections are closed ------------------------------------
start_appliance --idle-seconds 1 --handshake-seconds 1
# The pipeline lasts as long as its sleep; the time that counts is when s_client ends.
t0=$(date +%s%N)
{ hello; sleep 5; } | { raw >"$T/idle.out" || true; date +%s%N >"$T/idle.end"; }
ms=$((($(cat "$T/idle.end") - t0) / 1000000))
check "an authenticated connection idle for --idle-seconds 1 is closed ($ms ms)" \
	test $ms -ge 900 -a $ms -le 3000
check "... and the log says why" \
	grep -q "client alice from 127.0.0.1:[0-9]*: idle for 1 s: closing the connection" "$A_LOG"
silent() {
	python3 - "${ADDR%:*}" "${ADDR##*:}" <<'PY'
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.3", 0))
s.settimeout(10)
s.connect((sys.argv[1], int(sys.argv[2])))
t0 = time.monotonic()
try:
    s.recv(1)
except OSError:
    pass
print(int((time.monotonic() - t0) * 1000))
PY
}
ms=$(silent)
check "a TCP connection that never starts TLS is closed after --handshake-seconds 1 ($ms ms)" \
	test "$ms" -ge 900 -a "$ms" -le 3000
check "ctl still signs with these limits" ctl sign p256 ecdsa sha256 "$D32"
stop_appliance

# --- restart, delete --------------------------------------------------------------
start_appliance
check "SIGTERM: the appliance stops with status 0" appliance_exits_cleanly
start_appliance
check "keys survive a restart" cmp "$T/want-keys" <(ctl listkeys)
check "rsa3072 signs after the restart" sign_verify rsa3072 rsa-pss sha384
check "ed signs after the restart" sign_verify ed ed25519 none
check "keydel p384" ctl keydel p384
check "p384 is gone from listkeys" bash -c "! '$APPL' ctl '$ADDR' --client alice --secret-file '$T/alice.key' listkeys | grep -q '^p384 '"
check "p384's file is gone" test ! -e "$STORE/p384.pem"
check_fails_with "pubkey p384 after keydel: no such key" "(no such key)" ctl pubkey p384
check_fails_with "keydel p384 again: no such key" "(no such key)" ctl keydel p384
stop_appliance
start_appliance
check "p384 stays deleted after a restart" bash -c "! '$APPL' ctl '$ADDR' --client alice --secret-file '$T/alice.key' listkeys | grep -q '^p384 '"
stop_appliance

# --- the logs -------------------------------------------------------------------
check "verbose log: one line per request" \
	grep -q '^sigfs-appliance box1: client alice op SIGN key rsa3072 status 0$' "$T"/appliance.*.log
check "refused handshakes are logged" grep -q 'refused client carol from 127.0.0.1' "$T/appliance.1.log"
for s in "$ALICE" "$BOB" "$ERIN" "$DAVE" "PRIVATE KEY"; do
	check "no secret in the logs (${s:0:6}...)" no_match -- "$s" "$T"/appliance.*.log
done
check "no sanitizer report in the logs" \
	no_match -E 'ERROR: (Address|Leak)Sanitizer|runtime error' "$T"/appliance.*.log

done_testing
