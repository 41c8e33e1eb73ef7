#!/bin/bash
# Story: an admin may set any format, algorithm and digest on a key; every
# combination either works — a signature is produced that the format's own
# verifier accepts (openssl, gpg, ssh-keygen, minisign) — or is refused at the
# write with EINVAL and a logged reason, and the old setting stays. Never a
# signature that will not verify. The formats are the ones this sigfs offers
# (read from its own error message), so a new format row is covered at once;
# a format this test has no verifier for fails it.
. "$(dirname "$0")/lib.sh"

start_sigfs
K=$MNT/.ctl/keys
head -c 100000 /dev/urandom >"$T/fw.bin"
algs="ed25519 ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096"
digests="sha1 sha224 sha256 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"

log_has() {
	log_since "$1" | grep -q "$2"
}

# What this sigfs offers: the refusal of an unknown format lists them.
make_key probe ecdsa-p256
mark=$(log_mark)
echo no-such-format >"$K/probe/format" 2>/dev/null || true
formats=$(log_since "$mark" | sed -n 's/.*this version offers: \([^)]*\)).*/\1/p' | tr -d ',')
check "sigfs lists the formats it offers" test -n "$formats"
echo "formats: $formats"

suffix_of() {
	case $1 in
	openpgp-armor) echo .asc ;;
	minisign) echo .minisig ;;
	cms) echo .p7s ;;
	*) echo .sig ;;
	esac
}

# verify KEY FORMAT DIGEST SIG: the format's own verifier accepts SIG for fw.bin.
verify() {
	local key=$1 f=$2 d=$3 sig=$4 home
	case $f in
	raw) verify_raw "$key" "$T/fw.bin" "$sig" "$d" ;;
	openpgp | openpgp-armor)
		home=$T/gpg-$key
		if [ ! -d "$home" ]; then
			mkdir -m 700 "$home"
			GNUPGHOME=$home gpg --batch --quiet --import "$K/$key/cert.pgp" 2>/dev/null
		fi
		GNUPGHOME=$home gpg --batch --verify "$sig" "$T/fw.bin" 2>/dev/null
		;;
	sshsig)
		echo "ci@example.org namespaces=\"file\" $(cat "$K/$key/pubkey.ssh")" >"$T/allowed"
		ssh-keygen -Y verify -f "$T/allowed" -I ci@example.org -n file -s "$sig" \
			<"$T/fw.bin" >/dev/null 2>&1
		;;
	minisign) minisign -Vq -p "$K/$key/pubkey.minisign" -m "$T/fw.bin" -x "$sig" ;;
	cms)
		cat "$K/$key/cert.pem" >"$T/cert.pem"
		openssl cms -verify -binary -inform DER -in "$sig" -content "$T/fw.bin" \
			-CAfile "$T/cert.pem" -purpose any -out /dev/null 2>/dev/null
		;;
	*)
		echo "  no verifier for format $f: add one to this test" >&2
		return 1
		;;
	esac
}

# refused KEY ATTR VALUE OLD: writing VALUE fails with EINVAL, a reason is
# logged, and ATTR still reads OLD.
refused() {
	local key=$1 attr=$2 value=$3 old=$4 mark
	mark=$(log_mark)
	check_fails_with "$key: $attr $value refused: EINVAL" "Invalid argument" \
		bash -c "echo $value > '$K/$key/$attr'"
	check "$key: the log says why $attr $value is refused" log_has "$mark" "key $key: $attr: ."
	check "$key: $attr still reads $old" test "$(cat "$K/$key/$attr")" = "$old"
}

ok_pairs=0
refused_pairs=0
for alg in $algs; do
	key=k-$alg
	make_key "$key" "$alg"
	echo yes >"$K/$key/allow_sha1"
	for f in $formats; do
		echo raw >"$K/$key/format"
		echo sha256 >"$K/$key/digest"
		mark=$(log_mark)
		if ! echo "$f" >"$K/$key/format" 2>/dev/null; then
			check "$key: format $f refused with a reason" log_has "$mark" "key $key: format: ."
			check "$key: format stays raw" test "$(cat "$K/$key/format")" = raw
			refused_pairs=$((refused_pairs + 1))
			continue
		fi
		for d in $digests; do
			mark=$(log_mark)
			if ! echo "$d" >"$K/$key/digest" 2>/dev/null; then
				check "$key/$f: digest $d refused with a reason" log_has "$mark" "key $key: digest: ."
				check "$key/$f: digest stays" test "$(cat "$K/$key/digest")" != "$d"
				# The same pair is refused when the format comes last.
				echo raw >"$K/$key/format"
				echo "$d" >"$K/$key/digest"
				refused "$key" format "$f" raw
				echo sha256 >"$K/$key/digest"
				echo "$f" >"$K/$key/format"
				refused_pairs=$((refused_pairs + 1))
				continue
			fi
			name=fw-$f-$d.bin
			cp "$T/fw.bin" "$MNT/$key/$name"
			out=$MNT/$key/$name$(suffix_of "$f")
			check "$key/$f/$d: accepted, so $(basename "$out") verifies" verify "$key" "$f" "$d" "$out"
			ok_pairs=$((ok_pairs + 1))
		done
	done
done
echo "pairs that sign and verify: $ok_pairs; refused: $refused_pairs"

# Known refusals, named (each must hold whatever else the table allows).
for f in $formats; do
	case $f in
	minisign)
		make_key m-ed ed25519
		echo minisign >"$K/m-ed/format"
		refused m-ed algorithm rsa-2048 ed25519
		refused m-ed algorithm ecdsa-p256 ed25519
		make_key m-rsa rsa-2048
		refused m-rsa format minisign raw
		make_key m-ec ecdsa-p384
		refused m-ec format minisign raw
		;;
	openpgp)
		make_key p-rsa rsa-2048
		echo openpgp >"$K/p-rsa/format"
		refused p-rsa digest sha3-256 sha256
		refused p-rsa digest sha512-224 sha256
		;;
	cms)
		make_key c-ed ed25519
		refused c-ed format cms raw
		make_key c-ec ecdsa-p256
		echo cms >"$K/c-ec/format"
		refused c-ec digest sha512-224 sha256
		refused c-ec digest sha512-256 sha256
		refused c-ec algorithm ed25519 ecdsa-p256
		;;
	esac
done

stop_sigfs
done_testing
