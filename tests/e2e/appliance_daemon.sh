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

# Stop the appliance; its exit status must be 0.
stop_appliance() {
	local pid=$A_PID rc=0
	[ -n "$pid" ] || return 0
	A_PID=
	kill "$pid"
	wait "$pid" || rc=$?
	[ $rc -eq 0 ] || fail "sigfs-appliance exited with status $rc: $(tail -n 20 "$A_LOG")"
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

# Start the appliance on a free port; ADDR gets 127.0.0.1:PORT from its first line.
start_appliance() {
	local i port=
	STARTS=$((STARTS + 1))
	A_LOG=$T/appliance.$STARTS.log
	# Created here: the background job's redirection may come after the first read.
	: >"$A_LOG"
	"$APPL" --listen 127.0.0.1:0 --store "$STORE" --clients "$CLIENTS" --name box1 \
		--engines 2 --verbose 2>"$A_LOG" &
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
printf '%s\n' "$ALICE" >"$T/alice.key"
printf '%s\n' "$BOB" >"$T/bob.key"
openssl rand -hex 32 >"$T/wrong.key"
chmod 0600 "$T/alice.key" "$T/bob.key" "$T/wrong.key"
printf '# sigfs-appliance clients\nalice %s\n\nbob %s\n' "$ALICE" "$BOB" >"$CLIENTS"

# --- a clients file others can read: no start --------------------------------
chmod 0644 "$CLIENTS"
check_fails_with "clients file with mode 0644: the daemon refuses to start" \
	"refusing clients file $CLIENTS" timeout 20 "$APPL" --listen 127.0.0.1:0 --store "$STORE" \
	--clients "$CLIENTS"
chmod 0600 "$CLIENTS"

start_appliance
check "store created 0700" stat_is "$STORE" "root:root 700"
check "listkeys on an empty store prints nothing" test -z "$(ctl listkeys)"

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
printf 'alice %s\n' "$ALICE" >"$CLIENTS"
kill -HUP "$A_PID"
check "after SIGHUP without bob's line, bob is refused" wait_refused
check "alice still signs after SIGHUP" ctl sign p256 ecdsa sha256 "$D32"
printf 'alice %s\nbob %s\n' "$ALICE" "$BOB" >"$CLIENTS"

# --- restart, delete --------------------------------------------------------------
stop_appliance
check "SIGTERM: the appliance stopped with status 0" true
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
	grep -q '^sigfs-appliance box1: client alice op SIGN key rsa3072 status 0$' "$T/appliance.2.log"
check "refused handshakes are logged" grep -q 'refused client carol from 127.0.0.1' "$T/appliance.1.log"
for s in "$ALICE" "$BOB" "PRIVATE KEY"; do
	check "no secret in the logs (${s:0:6}...)" bash -c "! grep -q -- '$s' '$T'/appliance.*.log"
done
check "no sanitizer report in the logs" \
	bash -c "! grep -q -E 'ERROR: (Address|Leak)Sanitizer|runtime error' '$T'/appliance.*.log"

done_testing
