#!/bin/bash
# Story: a build host copies an artifact into an inbox and gets NAME.sig,
# which openssl verifies, for every algorithm, every digest and both RSA
# paddings; and a sha256sum-style digest line is signed as if it were the file.
. "$(dirname "$0")/lib.sh"

start_sigfs
head -c 300000 /dev/urandom >"$T/fw.bin"
digests="sha224 sha256 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512 sha1"

# Per pass of sign_all_digests: every digest signs a file and a digest line.
SIGS_PER_PASS=$((2 * $(wc -w <<<"$digests")))

# sign_all_digests KEY TAG: with every digest, sign a file and a digest line
# (names carry TAG) and verify both with openssl; SIGS_PER_PASS signatures.
sign_all_digests() {
	local key=$1 tag=$2 d name
	for d in $digests; do
		if [ "$d" = sha1 ]; then
			check "$key: sha1 refused until allowed" bash -c "! echo sha1 > '$MNT/.ctl/keys/$key/digest'"
			echo yes >"$MNT/.ctl/keys/$key/allow_sha1"
		fi
		echo "$d" >"$MNT/.ctl/keys/$key/digest"
		name=fw-$tag-$d.bin
		cp "$T/fw.bin" "$MNT/$key/$name"
		check "$key/$tag/$d: cp returns with $name.sig on disk" test -s "$MNT/$key/$name.sig"
		check "$key/$tag/$d: openssl verifies $name.sig" verify_raw "$key" "$T/fw.bin" "$MNT/$key/$name.sig" "$d"
		check_fails "$key/$tag/$d: openssl rejects it for other bytes" verify_raw "$key" "$T/$key.pub.pem" "$MNT/$key/$name.sig" "$d"
		# A digest line made by the usual tool, signed without the data.
		(cd "$T" && openssl dgst "-$d" -r fw.bin | sed "s/ \*fw.bin/  dl-$tag-$d.bin/") >"$T/line"
		cp "$T/line" "$MNT/$key/dl-$tag-$d.bin.$d"
		check "$key/$tag/$d: digest line gives dl-$tag-$d.bin.sig" test -s "$MNT/$key/dl-$tag-$d.bin.sig"
		check "$key/$tag/$d: digest-line signature verifies against the file" \
			verify_raw "$key" "$T/fw.bin" "$MNT/$key/dl-$tag-$d.bin.sig" "$d"
		# Refused while the key uses sha1 (the last digest): it keeps yes.
		[ "$d" = sha1 ] || echo no >"$MNT/.ctl/keys/$key/allow_sha1"
	done
	echo sha256 >"$MNT/.ctl/keys/$key/digest"
}

# verify_as_padding KEY PADDING FILE SIG: openssl verifies SIG (sha256) of FILE
# as RSA PADDING (pss or pkcs1), whatever the key's padding.
verify_as_padding() {
	local opts=()
	[ "$2" = pkcs1 ] || opts=(-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2)
	openssl dgst -sha256 -verify "$T/$1.pub.pem" "${opts[@]}" -signature "$4" "$3" >/dev/null
}

for alg in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	key=k-$alg
	make_key "$key" "$alg"
	check "$key: algorithm reads back" test "$(cat "$MNT/.ctl/keys/$key/algorithm")" = "$alg"
	if [ "${alg%%-*}" = rsa ]; then
		check "$key: padding is pss by default" test "$(cat "$MNT/.ctl/keys/$key/padding")" = pss
		for pad in pss pkcs1; do
			check "$key: padding set to $pad" bash -c "echo $pad >'$MNT/.ctl/keys/$key/padding'"
			sign_all_digests "$key" "$pad"
			other=pkcs1
			[ $pad = pss ] || other=pss
			check "$key: a $pad signature verifies as $pad" \
				verify_as_padding "$key" $pad "$T/fw.bin" "$MNT/$key/fw-$pad-sha256.bin.sig"
			check_fails "$key: a $pad signature is not $other" \
				verify_as_padding "$key" $other "$T/fw.bin" "$MNT/$key/fw-$pad-sha256.bin.sig"
		done
		want=$((2 * SIGS_PER_PASS))
	else
		sign_all_digests "$key" ec
		want=$SIGS_PER_PASS
	fi
	check "$key: count counts every signature ($want)" test "$(cat "$MNT/.ctl/keys/$key/count")" -eq "$want"
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
