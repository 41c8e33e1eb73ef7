#!/bin/bash
# Story: an admin may set any format, algorithm and digest on a key; every
# combination either works — a signature is produced that the format's own
# verifier accepts (openssl, gpg, ssh-keygen, minisign) — or is refused at the
# write with EINVAL and a logged reason, and the old setting stays. Never a
# signature that will not verify. Which combinations are refused is the table
# below, exactly; its formats, algorithms and digests must be the ones sigfsd
# and docs/admin-guide.md offer, so a new one fails this test until the table
# has it (and this test a verifier for a new format).
. "$(dirname "$0")/lib.sh"

FORMATS="raw openpgp openpgp-armor sshsig minisign cms kmod swupdate mender authenticode"
ALGS="ed25519 ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096"
DIGESTS="sha1 sha224 sha256 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"

# The refusals, all of them: REFUSE[ALG/FORMAT] is "*" where the format is
# refused for the algorithm whatever the digest, else the digests refused with
# the pair. Every (algorithm, format, digest) not named here signs and verifies.
declare -A REFUSE
refuse() { # FORMAT "ALGS" "*" | "DIGESTS"
	local a
	for a in $2; do REFUSE[$a/$1]=$3; done
}
# OpenPGP v4 (docs/format-openpgp.md): sha224 to sha512 only; ECDSA with a hash
# at least as long as the curve, as gpg wants.
pgp_no="sha1 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"
for f in openpgp openpgp-armor; do
	refuse $f "ed25519 rsa-2048 rsa-3072 rsa-4096" "$pgp_no"
	refuse $f ecdsa-p256 "sha224 $pgp_no"
	refuse $f ecdsa-p384 "sha224 sha256 $pgp_no"
	refuse $f ecdsa-p521 "sha224 sha256 sha384 $pgp_no"
done
refuse minisign "ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096" "*"
for f in cms swupdate; do   # swupdate is cms's SignedData as sw-description.sig
	refuse $f ed25519 "*"
	refuse $f "ecdsa-p256 ecdsa-p384 ecdsa-p521" "sha512-224 sha512-256"
done
# kmod (docs/format-kmod.md): what Linux verifies, RSA PKCS#1 v1.5 or ECDSA
# P-256/P-384 with sha256, sha384 or sha512. The RSA keys here keep the default
# padding, pss, so kmod is refused for them (kmod_signatures signs with pkcs1).
refuse kmod "ed25519 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096" "*"
refuse kmod "ecdsa-p256 ecdsa-p384" "sha1 sha224 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"
# mender (docs/format-mender.md): what mender-artifact verifies, RSA PKCS#1
# v1.5 or ECDSA P-256, over SHA-256; RSA keys here have padding pss.
refuse mender "ed25519 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096" "*"
refuse mender ecdsa-p256 "sha1 sha224 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"
# authenticode (docs/format-authenticode.md): RSA PKCS#1 v1.5 or ECDSA over a
# SHA-256 image hash (sbverify checks SHA-256 only); RSA keys here have pss.
refuse authenticode "ed25519 rsa-2048 rsa-3072 rsa-4096" "*"
refuse authenticode "ecdsa-p256 ecdsa-p384 ecdsa-p521" "sha1 sha224 sha384 sha512 sha512-224 sha512-256 sha3-224 sha3-256 sha3-384 sha3-512"

# table_refuses ALG FORMAT DIGEST: true if the table refuses the three together.
table_refuses() {
	local no=${REFUSE[$1/$2]:-}
	[ "$no" = "*" ] || case " $no " in *" $3 "*) true ;; *) false ;; esac
}

# first_allowed ALG FORMAT: the first digest the table allows with the pair.
first_allowed() {
	local d
	for d in $DIGESTS; do
		table_refuses "$1" "$2" "$d" || {
			echo "$d"
			return
		}
	done
}

same_set() { # WHAT "WANT" "GOT"
	[ "$(tr ' ,' '\n\n' <<<"$2" | grep . | sort)" = "$(tr ' ,' '\n\n' <<<"$3" | grep . | sort)" ] || {
		echo "  $1: the table has '$2', sigfs offers '$3'" >&2
		return 1
	}
}

# admin_row FILE: the names docs/admin-guide.md gives for .ctl/keys/KEY/FILE:
# the backquoted words of its row, up to the first sentence's end or "(".
admin_row() {
	grep "^| \`$1\` |" "$SIGFS_SRC/docs/admin-guide.md" | cut -d'|' -f4 | sed 's/ (.*//; s/\. .*//' |
		grep -o '`[^`]*`' | tr -d '`' | tr ' ' '\n' | grep -vx allow_sha1 | tr '\n' ' '
}

start_sigfs
K=$MNT/.ctl/keys
head -c 100000 /dev/urandom >"$T/fw.bin"

log_has() {
	log_since "$1" | grep -q "$2"
}

# What this sigfs offers: the refusal of an unknown name lists them.
make_key probe ecdsa-p256
mark=$(log_mark)
check_fails "fixture: an unknown format is refused" bash -c "echo no-such-format 2>/dev/null >'$K/probe/format'"
check "the formats sigfsd offers are the table's" same_set formats "$FORMATS" \
	"$(log_since "$mark" | sed -n 's/.*this version offers: \([^)]*\)).*/\1/p')"
mark=$(log_mark)
check_fails "fixture: an unknown algorithm is refused" bash -c "echo no-such-alg 2>/dev/null >'$K/probe/algorithm'"
check "the algorithms sigfsd offers are the table's" same_set algorithms "$ALGS" \
	"$(log_since "$mark" | sed -n 's/.*unknown algorithm no-such-alg (\([^)]*\)).*/\1/p')"
check "docs/admin-guide.md's format row lists the table's" \
	same_set "admin guide format" "$FORMATS" "$(admin_row format)"
check "docs/admin-guide.md's algorithm row lists the table's" \
	same_set "admin guide algorithm" "$ALGS" "$(admin_row algorithm)"
check "docs/admin-guide.md's digest row lists the table's" \
	same_set "admin guide digest" "$DIGESTS" "$(admin_row digest)"

suffix_of() {
	case $1 in
	openpgp-armor) echo .asc ;;
	minisign) echo .minisig ;;
	cms) echo .p7s ;;
	kmod | mender | authenticode) echo .signed ;;
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
	cms | swupdate)
		cat "$K/$key/cert.pem" >"$T/cert.pem"
		openssl cms -verify -binary -inform DER -in "$sig" -content "$T/fw.bin" \
			-CAfile "$T/cert.pem" -purpose any -out /dev/null 2>/dev/null
		;;
	kmod)
		cat "$K/$key/cert.pem" >"$T/cert.pem"
		kmod_ok "$sig" "$T/cert.pem" "$T/fw.bin"
		;;
	authenticode)
		cat "$K/$key/cert.pem" >"$T/cert.pem"
		sbverify --cert "$T/cert.pem" "$sig" 2>&1 | grep -q "Signature verification OK"
		;;
	mender)
		cat "$K/$key/pubkey.pem" >"$T/pub.pem"
		mender-artifact validate -k "$T/pub.pem" "$sig" 2>&1 | grep -q "validated successfully"
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

# triple KEY ALG FORMAT DIGEST: with DIGEST set, writing FORMAT is refused (then
# also DIGEST after FORMAT, if the format takes another digest) as the table
# says, or the signature verifies.
triple() {
	local key=$1 alg=$2 f=$3 d=$4 name out anchor
	echo raw >"$K/$key/format"
	echo "$d" >"$K/$key/digest"
	if table_refuses "$alg" "$f" "$d"; then
		refused "$key" format "$f" raw
		anchor=$(first_allowed "$alg" "$f")
		if [ -n "$anchor" ]; then
			echo "$anchor" >"$K/$key/digest"
			echo "$f" >"$K/$key/format"
			refused "$key" digest "$d" "$anchor"
		fi
		REFUSED=$((REFUSED + 1))
		return
	fi
	check "$key: format $f with digest $d accepted" bash -c "echo $f >'$K/$key/format'"
	name=fw-$f-$d.bin
	# A Mender artifact for mender (its payload is fw.bin): random bytes are no artifact.
	if [ "$f" = mender ]; then
		[ -e "$T/fw.mender" ] || mender-artifact write rootfs-image -t board -n fw \
			-f "$T/fw.bin" -o "$T/fw.mender" >/dev/null 2>&1 || fail "mender-artifact write failed"
		cp "$T/fw.mender" "$MNT/$key/$name"
	elif [ "$f" = authenticode ]; then
		cp /usr/lib/systemd/boot/efi/systemd-bootx64.efi "$MNT/$key/$name"
	else
		cp "$T/fw.bin" "$MNT/$key/$name"
	fi
	out=$MNT/$key/$name$(suffix_of "$f")
	check "$key/$f/$d: accepted, so $(basename "$out") verifies" verify "$key" "$f" "$d" "$out"
	SIGNED=$((SIGNED + 1))
}

SIGNED=0
REFUSED=0
for alg in $ALGS; do
	key=k-$alg
	make_key "$key" "$alg"
	echo yes >"$K/$key/allow_sha1"
	for f in $FORMATS; do
		for d in $DIGESTS; do
			triple "$key" "$alg" "$f" "$d"
		done
	done
done
echo "(algorithm, format, digest) that sign and verify: $SIGNED; refused: $REFUSED"

# A refused pair is refused too when the algorithm comes after the format.
make_key m-ed ed25519
echo minisign >"$K/m-ed/format"
refused m-ed algorithm rsa-2048 ed25519
refused m-ed algorithm ecdsa-p256 ed25519
make_key c-ec ecdsa-p256
echo cms >"$K/c-ec/format"
refused c-ec algorithm ed25519 ecdsa-p256

stop_sigfs
done_testing
