#!/bin/bash
# Story: a build host copies an artifact into an inbox and gets NAME.sig,
# which openssl verifies, for every algorithm, every digest and both RSA
# paddings; and a sha256sum-style digest line is signed as if it were the file.
. "$(dirname "$0")/lib.sh"

start_sigfs
head -c 300000 /dev/urandom >"$T/fw.bin"
digests="sha224 sha256 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512 sha1"

sign_all_digests() {
	local key=$1 d name
	for d in $digests; do
		if [ "$d" = sha1 ]; then
			check "$key: sha1 refused until allowed" bash -c "! echo sha1 > '$MNT/.ctl/keys/$key/digest'"
			echo yes >"$MNT/.ctl/keys/$key/allow_sha1"
		fi
		echo "$d" >"$MNT/.ctl/keys/$key/digest"
		name=fw-$d.bin
		cp "$T/fw.bin" "$MNT/$key/$name"
		check "$key/$d: cp returns with $name.sig on disk" test -s "$MNT/$key/$name.sig"
		check "$key/$d: openssl verifies $name.sig" verify_raw "$key" "$T/fw.bin" "$MNT/$key/$name.sig" "$d"
		check_fails "$key/$d: openssl rejects it for other bytes" verify_raw "$key" "$T/$key.pub.pem" "$MNT/$key/$name.sig" "$d"
		# A digest line made by the usual tool, signed without the data.
		(cd "$T" && openssl dgst "-$d" -r fw.bin | sed "s/ \*fw.bin/  dl-$d.bin/") >"$T/line"
		cp "$T/line" "$MNT/$key/dl-$d.bin.$d"
		check "$key/$d: digest line gives dl-$d.bin.sig" test -s "$MNT/$key/dl-$d.bin.sig"
		check "$key/$d: digest-line signature verifies against the file" \
			verify_raw "$key" "$T/fw.bin" "$MNT/$key/dl-$d.bin.sig" "$d"
		echo no >"$MNT/.ctl/keys/$key/allow_sha1" 2>/dev/null || true
	done
	echo sha256 >"$MNT/.ctl/keys/$key/digest"
}

for alg in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	key=k-$alg
	make_key "$key" "$alg"
	check "$key: algorithm reads back" test "$(cat "$MNT/.ctl/keys/$key/algorithm")" = "$alg"
	if [ "${alg%%-*}" = rsa ]; then
		sign_all_digests "$key"
		echo pkcs1 >"$MNT/.ctl/keys/$key/padding"
		cp "$T/fw.bin" "$MNT/$key/pkcs1.bin"
		check "$key: PKCS#1 v1.5 signature verifies" verify_raw "$key" "$T/fw.bin" "$MNT/$key/pkcs1.bin.sig"
		check_fails "$key: PKCS#1 v1.5 signature is not PSS" openssl dgst -sha256 -verify "$T/$key.pub.pem" \
			-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2 -signature "$MNT/$key/pkcs1.bin.sig" "$T/fw.bin"
		echo pss >"$MNT/.ctl/keys/$key/padding"
		echo pkcs1 >"$MNT/.ctl/keys/$key/padding"
		sign_all_digests "$key"
	else
		sign_all_digests "$key"
	fi
	check "$key: count counts every signature" test "$(cat "$MNT/.ctl/keys/$key/count")" -gt 20
done

# Ed25519 signs the whole file (pure EdDSA); a digest line gets a clear .err.
make_key ed ed25519
cp "$T/fw.bin" "$MNT/ed/fw.bin"
check "ed25519: signature verifies with openssl pkeyutl -rawin" verify_raw ed "$T/fw.bin" "$MNT/ed/fw.bin.sig"
(cd "$T" && sha256sum fw.bin | sed 's/fw.bin/fw2.bin/') >"$T/line"
check_fails "ed25519: close() of a digest line fails with EIO" cp "$T/line" "$MNT/ed/fw2.bin.sha256"
check "ed25519: digest line leaves fw2.bin.err" grep -q "signs whole files" "$MNT/ed/fw2.bin.err"
check "ed25519: and no .sig" test ! -e "$MNT/ed/fw2.bin.sig"

# The signature is there the moment cp returns: cp && cat works.
check "cp && cat of the signature works" bash -c "cp '$T/fw.bin' '$MNT/ed/again.bin' && cat '$MNT/ed/again.bin.sig' >/dev/null"
check "status shows the keys" grep -q "key ed: ed25519" "$MNT/.ctl/status"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
