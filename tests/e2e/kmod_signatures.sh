#!/bin/bash
# Story: a release team signs Linux kernel modules by copying them into the
# inbox of a key whose format is kmod (docs/format-kmod.md): MOD.ko gives
# MOD.ko.signed, the module with the signature the kernel checks appended.
# modinfo shows its signer, sig_key and sig_hashalgo; the PKCS#7 verifies with
# openssl cms over the module part; with an imported RSA key the result is
# byte for byte what the kernel's scripts/sign-file makes with the same key
# and certificate, for the key's own certificate and for one an admin had
# issued by a CA. A changed byte fails. ECDSA P-256 and P-384 sign too. What
# Linux cannot verify is refused at the write (Ed25519, P-521, RSA-PSS,
# digests other than sha256, sha384, sha512); a digest line and a module
# that is signed already get NAME.err. A module larger than any signature
# (3 MiB) is signed whole. `sigfs wait` verifies NAME.signed.
. "$(dirname "$0")/lib.sh"

SIGN_FILE=/usr/lib/linux-kbuild-6.1/scripts/sign-file
[ -x "$SIGN_FILE" ] || fail "$SIGN_FILE is missing: scripts/deps installs linux-kbuild-6.1"
command -v modinfo >/dev/null || fail "modinfo is missing: scripts/deps installs kmod"

start_sigfs
K=$MNT/.ctl/keys

# modfield FILE FIELD: what modinfo says of FIELD. modinfo takes a path for
# a file only when it ends in .ko (else it looks for a module of that name):
# FILE is read as a copy named so, as it is installed.
modfield() {
	cp "$1" "$T/modfield.ko" && modinfo -F "$2" "$T/modfield.ko"
}

# serial_hex CERT: the certificate's serial number as modinfo prints sig_key: hex, colons.
serial_hex() {
	openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | sed 's/../&:/g; s/:$//'
}


# flip FILE OUT: FILE with one byte of its first 200 changed.
flip() {
	python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[100] ^= 1; open(sys.argv[2], "wb").write(d)' "$1" "$2"
}

make_module m
make_module big 3

# --- RSA, imported: byte for byte what sign-file makes ------------------------------------
openssl genrsa -out "$T/rsa.key" 2048 2>/dev/null
mkdir "$K/kr"
cat "$T/rsa.key" >"$K/kr/import"
echo pss >"$K/kr/padding"
attr_refused kr format kmod
echo pkcs1 >"$K/kr/padding"
check "kr: with padding pkcs1, format kmod is accepted" bash -c "echo kmod >'$K/kr/format'"
attr_refused kr padding pss
cat "$K/kr/cert.pem" >"$T/kr.pem"

cp "$T/m.ko" "$MNT/kr/m.ko"
check "cp m.ko returns with m.ko.signed on disk, and no .sig" \
	test -s "$MNT/kr/m.ko.signed" -a ! -e "$MNT/kr/m.ko.sig"
check "modinfo: sig_id PKCS#7" test "$(modfield "$MNT/kr/m.ko.signed" sig_id)" = "PKCS#7"
check "modinfo: the signer is the certificate's issuer CN, kr (self-signed)" test "$(modfield "$MNT/kr/m.ko.signed" signer)" = kr
check "modinfo: sig_key is the certificate's serial number" \
	test "$(modfield "$MNT/kr/m.ko.signed" sig_key)" = "$(serial_hex "$T/kr.pem")"
check "modinfo: sig_hashalgo sha256" test "$(modfield "$MNT/kr/m.ko.signed" sig_hashalgo)" = sha256
check "modinfo still reads the module's own fields" \
	test "$(modfield "$MNT/kr/m.ko.signed" description)" = "sigfs test module m"
check "the module part is m.ko, and openssl cms verifies the signature over it" \
	kmod_ok "$MNT/kr/m.ko.signed" "$T/kr.pem" "$T/m.ko"
cp "$T/m.ko" "$T/ref.ko"
"$SIGN_FILE" sha256 "$T/rsa.key" "$T/kr.pem" "$T/ref.ko"
check "m.ko.signed is byte for byte what sign-file makes with the same key and certificate" \
	cmp "$T/ref.ko" "$MNT/kr/m.ko.signed"
flip "$MNT/kr/m.ko.signed" "$T/tampered.ko"
check_fails "a byte changed in the module: the signature does not verify" kmod_ok "$T/tampered.ko" "$T/kr.pem"
check "sigfs wait verifies m.ko.signed with the key's public files" \
	"$SIGFS" wait --timeout 5 --key-dir "$K/kr" "$MNT/kr/m.ko"

for d in sha384 sha512; do
	echo "$d" >"$K/kr/digest"
	cp "$T/m.ko" "$MNT/kr/m-$d.ko"
	check "$d: modinfo says sig_hashalgo $d" test "$(modfield "$MNT/kr/m-$d.ko.signed" sig_hashalgo)" = "$d"
	cp "$T/m.ko" "$T/ref-$d.ko"
	"$SIGN_FILE" "$d" "$T/rsa.key" "$T/kr.pem" "$T/ref-$d.ko"
	check "$d: byte for byte sign-file's" cmp "$T/ref-$d.ko" "$MNT/kr/m-$d.ko.signed"
done
echo yes >"$K/kr/allow_sha1"
for d in sha1 sha224 sha3-256 sha512-256; do
	attr_refused kr digest "$d"
done
echo sha256 >"$K/kr/digest"

cp "$T/big.ko" "$MNT/kr/big.ko"
check "a 3 MiB module is signed whole" kmod_ok "$MNT/kr/big.ko.signed" "$T/kr.pem" "$T/big.ko"
cp "$T/big.ko" "$T/ref-big.ko"
"$SIGN_FILE" sha256 "$T/rsa.key" "$T/kr.pem" "$T/ref-big.ko"
check "  byte for byte sign-file's" cmp "$T/ref-big.ko" "$MNT/kr/big.ko.signed"

# --- a certificate an admin had issued by a CA --------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/ca.key" -out "$T/ca.pem" -days 30 \
	-subj "/CN=Example Module CA/O=Example" 2>/dev/null
openssl req -new -key "$T/rsa.key" -subj "/CN=Example release modules/O=Example" 2>/dev/null |
	openssl x509 -req -CA "$T/ca.pem" -CAkey "$T/ca.key" -set_serial 0x51f5 -days 30 \
		-out "$T/issued.pem" 2>/dev/null
check "the admin installs the CA-issued certificate" bash -c "cat '$T/issued.pem' >'$K/kr/cert.pem'"
cp "$T/m.ko" "$MNT/kr/ca.ko"
# A module signature names its signer by issuer and serial number only, so
# modinfo's "signer" is the issuer's CN (for a self-signed certificate, its own).
check "modinfo: the signer is the CA that issued the certificate" \
	test "$(modfield "$MNT/kr/ca.ko.signed" signer)" = "Example Module CA"
check "modinfo: sig_key is its serial, 51:F5" test "$(modfield "$MNT/kr/ca.ko.signed" sig_key)" = "51:F5"
cat "$T/issued.pem" "$T/ca.pem" >"$T/chain.pem"
check "openssl cms verifies it against the CA" bash -c "$(declare -f kmod_split); T='$T'
	kmod_split '$MNT/kr/ca.ko.signed' '$T/ca-part.ko' '$T/ca-part.p7s' &&
	openssl cms -verify -binary -inform DER -in '$T/ca-part.p7s' -content '$T/ca-part.ko' \
		-certfile '$T/issued.pem' -CAfile '$T/ca.pem' -purpose any -out /dev/null 2>/dev/null"
cp "$T/m.ko" "$T/ref-ca.ko"
"$SIGN_FILE" sha256 "$T/rsa.key" "$T/issued.pem" "$T/ref-ca.ko"
check "  byte for byte sign-file's with that certificate" cmp "$T/ref-ca.ko" "$MNT/kr/ca.ko.signed"

# --- what gets NAME.err -------------------------------------------------------------------
check_fails_with "cp of a module that is signed already fails at close()" "Input/output error" \
	cp "$T/ref.ko" "$MNT/kr/s.ko"
check "  and s.ko.err says why" test -s "$MNT/kr/s.ko.err"
check "  that it is signed already" grep -q "signed already" "$MNT/kr/s.ko.err"
check "  and no s.ko.signed" test ! -e "$MNT/kr/s.ko.signed"
echo "$(sha256sum <"$T/m.ko" | cut -d' ' -f1)  d.ko" >"$T/d.ko.sha256"
check_fails_with "cp of a digest line fails at close()" "Input/output error" \
	cp "$T/d.ko.sha256" "$MNT/kr/d.ko.sha256"
check "  d.ko.err says the output holds the module itself" grep -q "signed file itself" "$MNT/kr/d.ko.err"
check "  and no d.ko.signed" test ! -e "$MNT/kr/d.ko.signed"

# --- ECDSA ----------------------------------------------------------------------------------
for alg in ecdsa-p256 ecdsa-p384; do
	key=ke-$alg
	make_key "$key" "$alg"
	check "$key: format kmod is accepted" bash -c "echo kmod >'$K/$key/format'"
	cat "$K/$key/cert.pem" >"$T/$key.pem"
	cp "$T/m.ko" "$MNT/$key/m.ko"
	check "$key: modinfo: signer $key" test "$(modfield "$MNT/$key/m.ko.signed" signer)" = "$key"
	check "$key: openssl cms verifies it over m.ko" kmod_ok "$MNT/$key/m.ko.signed" "$T/$key.pem" "$T/m.ko"
	flip "$MNT/$key/m.ko.signed" "$T/tampered-$key.ko"
	check_fails "$key: a changed byte does not verify" kmod_ok "$T/tampered-$key.ko" "$T/$key.pem"
	check "$key: sigfs wait verifies it" "$SIGFS" wait --timeout 5 --key-dir "$K/$key" "$MNT/$key/m.ko"
done

# --- what Linux cannot verify is refused at the write --------------------------------------
make_key k-ed ed25519
attr_refused k-ed format kmod
make_key k-521 ecdsa-p521
attr_refused k-521 format kmod

stop_sigfs
done_testing
