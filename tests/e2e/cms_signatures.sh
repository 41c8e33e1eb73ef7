#!/bin/bash
# Story: an admin sets a key's format to cms; an artifact copied into the inbox
# gives NAME.p7s, a detached CMS SignedData (DER) that `openssl cms -verify`
# accepts against the key's certificate .ctl/keys/KEY/cert.pem — self-signed
# by the backend key by default, or one the admin had issued by their own CA
# and wrote into cert.pem. A sha256sum-style digest line gives a .p7s too.
. "$(dirname "$0")/lib.sh"

start_sigfs
K=$MNT/.ctl/keys
head -c 300000 /dev/urandom >"$T/fw.bin"

# cms_ok P7S FILE CAFILE [openssl cms options]: openssl accepts P7S for FILE.
cms_ok() {
	local p7s=$1 file=$2 ca=$3
	shift 3
	openssl cms -verify -binary -inform DER -in "$p7s" -content "$file" -CAfile "$ca" \
		"$@" -out /dev/null 2>"$T/verify.err" || {
		sed 's/^/  /' "$T/verify.err" >&2
		return 1
	}
}

# log_has MARK TEXT: the daemon logged TEXT after MARK.
log_has() {
	log_since "$1" | grep -q "$2"
}

# embedded_cert P7S: the certificate inside P7S, PEM.
embedded_cert() {
	openssl pkcs7 -inform DER -in "$1" -print_certs | sed -n '/BEGIN/,/END/p'
}

# sign_with KEY DIGEST: NAME.p7s for fw.bin, checked both ways.
sign_with() {
	local key=$1 d=$2 name
	echo "$d" >"$K/$key/digest"
	name=fw-$d-$(cat "$K/$key/padding").bin
	cp "$T/fw.bin" "$MNT/$key/$name"
	check "$key/$d: cp returns with $name.p7s on disk, no .sig" \
		test -s "$MNT/$key/$name.p7s" -a ! -e "$MNT/$key/$name.sig"
	check "$key/$d: openssl cms -verify accepts it" \
		cms_ok "$MNT/$key/$name.p7s" "$T/fw.bin" "$T/$key.pem" -purpose any
	check_fails "$key/$d: and rejects it for other bytes" \
		cms_ok "$MNT/$key/$name.p7s" "$T/$key.pem" "$T/$key.pem" -purpose any
	check "$key/$d: digestAlgorithm is $d" bash -c "openssl cms -cmsout -print -inform DER \
		-in '$MNT/$key/$name.p7s' | grep -A1 digestAlgorithm: | grep -q 'algorithm: $d ('"
}

for alg in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	key=c-$alg
	make_key "$key" "$alg"
	check "$key: format cms can be set" bash -c "echo cms > '$K/$key/format'"
	check "$key: format reads cms" test "$(cat "$K/$key/format")" = cms
	cat "$K/$key/cert.pem" >"$T/$key.pem"
	check "$key: cert.pem is an X.509 v3 certificate for CN=$key, O=sigfs" bash -c \
		"openssl x509 -in '$T/$key.pem' -noout -subject -issuer -text | tee '$T/$key.txt' |
		 grep -qx 'subject=CN = $key, O = sigfs' && grep -qx 'issuer=CN = $key, O = sigfs' '$T/$key.txt' &&
		 grep -q 'Version: 3' '$T/$key.txt' && grep -q 'CA:FALSE' '$T/$key.txt' &&
		 grep -q 'Digital Signature' '$T/$key.txt' && grep -q 'Subject Key Identifier' '$T/$key.txt'"
	check "$key: cert.pem holds the key's public key" test \
		"$(openssl x509 -in "$T/$key.pem" -noout -pubkey)" = "$(cat "$K/$key/pubkey.pem")"
	check "$key: openssl verify accepts the self-signed certificate" \
		openssl verify -CAfile "$T/$key.pem" "$T/$key.pem"
	check "$key: reading cert.pem again gives the same certificate" \
		test "$(cat "$K/$key/cert.pem")" = "$(cat "$T/$key.pem")"
	if [ "${alg%%-*}" = rsa ]; then
		check "$key: the certificate is signed with the key's padding ($(cat "$K/$key/padding"))" \
			grep -q "Signature Algorithm: $([ "$(cat "$K/$key/padding")" = pss ] && echo rsassaPss ||
				echo sha256WithRSAEncryption)" "$T/$key.txt"
		for pad in pss pkcs1; do
			echo "$pad" >"$K/$key/padding"
			check "$key/$pad: cert.pem stays the same bytes" \
				test "$(cat "$K/$key/cert.pem")" = "$(cat "$T/$key.pem")"
			for d in sha256 sha384 sha512 sha3-256 sha512-256; do
				sign_with "$key" "$d"
			done
		done
	else
		for d in sha256 sha384 sha512 sha224 sha3-256 sha3-512; do
			sign_with "$key" "$d"
		done
	fi
done

# Without -purpose any too: the self-signed leaf is a valid S/MIME signer.
key=c-ecdsa-p256
cp "$T/fw.bin" "$MNT/$key/plain.bin"
check "default purpose (smimesign) accepts the self-signed certificate" \
	cms_ok "$MNT/$key/plain.bin.p7s" "$T/fw.bin" "$T/$key.pem"
check "the signature embeds cert.pem" test "$(embedded_cert "$MNT/$key/plain.bin.p7s")" = \
	"$(cat "$T/$key.pem")"
check "signingTime is set" bash -c "openssl cms -cmsout -print -inform DER \
	-in '$MNT/$key/plain.bin.p7s' | grep -q 'object: signingTime'"

# A digest line (sha256sum output) gives NAME.p7s without the data.
(cd "$T" && sha256sum fw.bin | sed 's/ fw.bin/ dl.bin/') >"$T/line"
cp "$T/line" "$MNT/$key/dl.bin.sha256"
check "digest line dl.bin.sha256 gives dl.bin.p7s" test -s "$MNT/$key/dl.bin.p7s"
check "which verifies against the file" cms_ok "$MNT/$key/dl.bin.p7s" "$T/fw.bin" "$T/$key.pem" -purpose any
echo sha384 >"$K/$key/digest"
(cd "$T" && sha512sum fw.bin | sed 's/ fw.bin/ dl5.bin/') >"$T/line"
cp "$T/line" "$MNT/$key/dl5.bin.sha512"
check "a sha512 line on a sha384 key verifies too" \
	cms_ok "$MNT/$key/dl5.bin.p7s" "$T/fw.bin" "$T/$key.pem" -purpose any
echo sha256 >"$K/$key/digest"

# --- an admin's certificate, issued by their CA for the sigfs key ------------------------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$T/ca.key" \
	-out "$T/ca.pem" -subj "/CN=sigfs e2e test CA" -days 2 2>/dev/null
key=c-rsa-2048
echo pss >"$K/$key/padding"
openssl x509 -new -force_pubkey "$K/$key/pubkey.pem" -subj "/CN=Release Signing/O=Example" \
	-CA "$T/ca.pem" -CAkey "$T/ca.key" -days 2 -out "$T/issued.pem" 2>/dev/null
check "the admin writes the CA-issued certificate into cert.pem" \
	bash -c "cat '$T/issued.pem' > '$K/$key/cert.pem'"
check "cert.pem reads back the admin's certificate" test "$(cat "$K/$key/cert.pem")" = "$(cat "$T/issued.pem")"
cp "$T/fw.bin" "$MNT/$key/issued.bin"
check "the signature embeds the CA-issued certificate" \
	test "$(embedded_cert "$MNT/$key/issued.bin.p7s")" = "$(cat "$T/issued.pem")"
check "openssl cms -verify -CAfile ca.pem accepts it" \
	cms_ok "$MNT/$key/issued.bin.p7s" "$T/fw.bin" "$T/ca.pem" -purpose any
check_fails "the old self-signed certificate is no trust anchor for it" \
	cms_ok "$MNT/$key/issued.bin.p7s" "$T/fw.bin" "$T/$key.pem" -purpose any

openssl x509 -new -force_pubkey "$K/c-ecdsa-p256/pubkey.pem" -subj "/CN=someone else" \
	-CA "$T/ca.pem" -CAkey "$T/ca.key" -days 2 -out "$T/other.pem" 2>/dev/null
mark=$(log_mark)
check_fails_with "a certificate for another key is refused: EINVAL" "Invalid argument" \
	bash -c "cat '$T/other.pem' > '$K/$key/cert.pem'"
check "the log says why" log_has "$mark" "the certificate is for another key"
# cert.pem is judged at close(), which cat reports and the shell's echo does not.
check_fails_with "garbage in cert.pem is refused: EINVAL" "Invalid argument" \
	bash -c "echo 'not a certificate' | cat > '$K/$key/cert.pem'"
check "cert.pem still holds the admin's certificate" \
	test "$(cat "$K/$key/cert.pem")" = "$(cat "$T/issued.pem")"

check "an empty write goes back to the self-signed certificate" bash -c "echo > '$K/$key/cert.pem'"
cat "$K/$key/cert.pem" >"$T/back.pem"
check "cert.pem is self-signed again" bash -c \
	"openssl x509 -in '$T/back.pem' -noout -subject | grep -qx 'subject=CN = $key, O = sigfs'"
cp "$T/fw.bin" "$MNT/$key/back.bin"
check "new signatures verify with it" cms_ok "$MNT/$key/back.bin.p7s" "$T/fw.bin" "$T/back.pem" -purpose any
check_fails "and no longer chain to the CA" cms_ok "$MNT/$key/back.bin.p7s" "$T/fw.bin" "$T/ca.pem" -purpose any
check "the CA-issued signature still verifies" \
	cms_ok "$MNT/$key/issued.bin.p7s" "$T/fw.bin" "$T/ca.pem" -purpose any

# --- Ed25519: OpenSSL 3.0 cannot verify an Ed25519 SignedData, so cms refuses it ----------
make_key ed ed25519
mark=$(log_mark)
check_fails_with "format cms on an Ed25519 key: EINVAL" "Invalid argument" \
	bash -c "echo cms > '$K/ed/format'"
check "the log says why" log_has "$mark" "cms cannot sign with Ed25519"
check "the format stays raw" test "$(cat "$K/ed/format")" = raw
check "cert.pem of an Ed25519 key is still a valid self-signed certificate" \
	bash -c "cat '$K/ed/cert.pem' > '$T/ed.pem' && openssl verify -CAfile '$T/ed.pem' '$T/ed.pem'"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
