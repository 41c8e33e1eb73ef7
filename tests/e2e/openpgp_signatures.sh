#!/bin/bash
# Story: an admin sets a key's format to openpgp (or openpgp-armor); a build
# host copies an artifact into the inbox and gets NAME.sig (NAME.asc), which
# both `gpg --verify` and `sq verify` accept against the key's certificate
# from .ctl/keys/KEY/cert.pgp or cert.asc, for every algorithm and every
# OpenPGP digest. The certificate keeps its fingerprint across restarts and
# user ID changes; pairs that cannot verify are refused when set, and digest
# lines get a clear .err.
. "$(dirname "$0")/lib.sh"

start_sigfs
head -c 200000 /dev/urandom >"$T/fw.bin"

# gpg_home KEY FILE: a fresh GNUPGHOME with the certificate file FILE of KEY imported.
gpg_home() {
	local home=$T/gpg-$1-$2
	rm -rf "$home"
	mkdir -m 700 "$home"
	cat "$MNT/.ctl/keys/$1/$2" >"$T/$1.$2"
	GNUPGHOME=$home gpg --batch --quiet --import "$T/$1.$2" 2>/dev/null
	echo "$home"
}

# gpg_ok HOME SIG FILE HASH_ID: gpg reports a good and valid signature made
# with OpenPGP hash algorithm HASH_ID.
gpg_ok() {
	local out
	out=$(GNUPGHOME=$1 gpg --batch --status-fd 1 --verify "$2" "$3" 2>/dev/null) || return 1
	grep -q '^\[GNUPG:\] GOODSIG ' <<<"$out" || return 1
	# VALIDSIG fpr date time expire version reserved pubkey-algo hash-algo ...
	[ "$(awk '$2 == "VALIDSIG" { print $10 }' <<<"$out")" = "$4" ]
}

# sq_ok CERT SIG FILE
sq_ok() {
	sq verify --signer-cert "$1" --detached "$2" "$3" >/dev/null 2>&1
}

# notation_is SIG FILE DIGEST: the data-digest@archlinux.org notation holds FILE's digest.
notation_is() {
	python3 - "$1" "$2" "$3" <<'PY'
import base64, hashlib, sys
sig, path, digest = sys.argv[1:]
b = open(sig, "rb").read()
if b.startswith(b"-----BEGIN"):
    lines = b.decode().splitlines()
    b = base64.b64decode("".join(l for l in lines[2:] if l and not l.startswith(("=", "-----"))))
assert b[0] == 0xC2, "not a new-format signature packet"
off = 2 if b[1] < 192 else 3
body = b[off:]
hlen = int.from_bytes(body[4:6], "big")
sp, found = body[6:6 + hlen], None
while sp:
    n = sp[0]
    assert n < 192
    if sp[1] == 20:
        nl, vl = int.from_bytes(sp[6:8], "big"), int.from_bytes(sp[8:10], "big")
        if sp[10:10 + nl] == b"data-digest@archlinux.org":
            found = sp[10 + nl:10 + nl + vl]
    sp = sp[1 + n:]
want = hashlib.new(digest, open(path, "rb").read()).digest()
sys.exit(0 if found == want else 1)
PY
}

declare -A HASH_ID=([sha224]=11 [sha256]=8 [sha384]=9 [sha512]=10)

for alg in ed25519 ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	key=pgp-$alg
	K=$MNT/.ctl/keys/$key
	make_key "$key" "$alg"
	# From the longest digest down: every ECDSA curve accepts sha512.
	echo sha512 >"$K/digest"
	echo openpgp >"$K/format"
	check "$key: format reads back" test "$(cat "$K/format")" = openpgp
	bin_home=$(gpg_home "$key" cert.pgp)
	asc_home=$(gpg_home "$key" cert.asc)
	check "$key: cert.pgp imports into gpg" bash -c "GNUPGHOME='$bin_home' gpg --batch --list-keys '$key (sigfs)' >/dev/null 2>&1"
	check "$key: cert.asc is armored" grep -q '^-----BEGIN PGP PUBLIC KEY BLOCK-----$' "$T/$key.cert.asc"
	check "$key: cert.pgp and cert.asc are the same key" test \
		"$(gpg --batch --with-colons --show-keys "$T/$key.cert.pgp" | grep '^fpr' | head -1)" = \
		"$(gpg --batch --with-colons --show-keys "$T/$key.cert.asc" | grep '^fpr' | head -1)"
	for d in sha512 sha384 sha256 sha224; do
		case $alg:$d in
		ecdsa-p256:sha224 | ecdsa-p384:sha256 | ecdsa-p384:sha224 | ecdsa-p521:sha[23]*)
			check_fails "$key: digest $d refused (gpg rejects $alg over a shorter hash)" \
				bash -c "echo $d > '$K/digest'"
			continue
			;;
		esac
		echo "$d" >"$K/digest"
		echo openpgp >"$K/format"
		cp "$T/fw.bin" "$MNT/$key/fw-$d.bin"
		sig=$MNT/$key/fw-$d.bin.sig
		check "$key/$d: gpg verifies $d signature (cert.pgp)" gpg_ok "$bin_home" "$sig" "$T/fw.bin" "${HASH_ID[$d]}"
		check "$key/$d: sq verifies it" sq_ok "$T/$key.cert.pgp" "$sig" "$T/fw.bin"
		check "$key/$d: the notation carries the file's $d" notation_is "$sig" "$T/fw.bin" "$d"
		check_fails "$key/$d: gpg rejects it for other bytes" gpg_ok "$bin_home" "$sig" "$T/$key.cert.pgp" "${HASH_ID[$d]}"
		check_fails "$key/$d: sq rejects it for other bytes" sq_ok "$T/$key.cert.pgp" "$sig" "$T/$key.cert.pgp"

		echo openpgp-armor >"$K/format"
		cp "$T/fw.bin" "$MNT/$key/fw-$d-armor.bin"
		asc=$MNT/$key/fw-$d-armor.bin.asc
		check "$key/$d: openpgp-armor gives an armored NAME.asc" \
			grep -q '^-----BEGIN PGP SIGNATURE-----$' "$asc"
		check "$key/$d: gpg verifies the .asc (cert.asc)" gpg_ok "$asc_home" "$asc" "$T/fw.bin" "${HASH_ID[$d]}"
		check "$key/$d: sq verifies the .asc (cert.asc)" sq_ok "$T/$key.cert.asc" "$asc" "$T/fw.bin"
	done
	echo openpgp >"$K/format"
done

# A damaged signature fails with both tools.
key=pgp-rsa-2048
home=$(gpg_home "$key" cert.pgp)
cp "$MNT/$key/fw-sha256.bin.sig" "$T/bad.sig"
python3 -c "import sys; b = bytearray(open(sys.argv[1], 'rb').read()); b[-5] ^= 1; open(sys.argv[1], 'wb').write(b)" "$T/bad.sig"
check_fails "a corrupted signature: gpg rejects it" gpg_ok "$home" "$T/bad.sig" "$T/fw.bin" 8
check_fails "a corrupted signature: sq rejects it" sq_ok "$T/$key.cert.pgp" "$T/bad.sig" "$T/fw.bin"
check_fails "a signature of another key: sq rejects it" \
	sq_ok "$T/pgp-rsa-3072.cert.pgp" "$MNT/$key/fw-sha256.bin.sig" "$T/fw.bin"

# Digests OpenPGP v4 has no id for are refused when set, with the reason in the log.
make_key other ecdsa-p256
echo sha3-256 >"$MNT/.ctl/keys/other/digest"
mark=$(log_mark)
check_fails_with "format openpgp with digest sha3-256: EINVAL" "Invalid argument" \
	bash -c "echo openpgp > '$MNT/.ctl/keys/other/format'"
check "the log says which digests work" \
	grep -q 'sha224, sha256, sha384 or sha512, not sha3-256' <(log_since "$mark")
check_fails_with "openpgp-armor with sha3-256: EINVAL" "Invalid argument" \
	bash -c "echo openpgp-armor > '$MNT/.ctl/keys/other/format'"
check "the key keeps its format" test "$(cat "$MNT/.ctl/keys/other/format")" = raw
check_fails_with "sha3-256 on an openpgp key: EINVAL" "Invalid argument" \
	bash -c "echo sha3-256 > '$MNT/.ctl/keys/pgp-ed25519/digest'"
echo yes >"$MNT/.ctl/keys/pgp-ed25519/allow_sha1"
check_fails_with "sha1 on an openpgp key, even with allow_sha1: EINVAL" "Invalid argument" \
	bash -c "echo sha1 > '$MNT/.ctl/keys/pgp-ed25519/digest'"

# A digest line cannot become an OpenPGP signature: a clear .err.
key=pgp-ecdsa-p256
echo sha256 >"$MNT/.ctl/keys/$key/digest"
(cd "$T" && sha256sum fw.bin | sed 's/fw.bin/dl.bin/') >"$T/line"
check_fails "a digest line into an openpgp key: close() fails" cp "$T/line" "$MNT/$key/dl.bin.sha256"
check "it leaves dl.bin.err saying to copy the file or send a request" \
	bash -c "grep -q 'copy the file itself' '$MNT/$key/dl.bin.err' && grep -q 'sigreq' '$MNT/$key/dl.bin.err'"
check "and no dl.bin.sig" test ! -e "$MNT/$key/dl.bin.sig"

# The fingerprint survives a restart; a new user ID changes the cert, not the key.
fpr_of() {
	gpg --batch --with-colons --show-keys "$1" 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }'
}
uid_of() {
	gpg --batch --list-packets "$1" 2>/dev/null | sed -n 's/^:user ID packet: "\(.*\)"$/\1/p'
}
key=pgp-ecdsa-p384
cat "$MNT/.ctl/keys/$key/cert.pgp" >"$T/before.pgp"
fpr=$(fpr_of "$T/before.pgp")
check "cert.pgp has a v4 fingerprint" test ${#fpr} -eq 40
stop_sigfs
start_sigfs
cat "$MNT/.ctl/keys/$key/cert.pgp" >"$T/after.pgp"
check "after a restart the fingerprint is the same" test "$(fpr_of "$T/after.pgp")" = "$fpr"
check "the user ID is the default" test "$(uid_of "$T/after.pgp")" = "$key (sigfs)"
echo "Release Signing <release@example.org>" >"$MNT/.ctl/keys/$key/uid"
cat "$MNT/.ctl/keys/$key/cert.pgp" >"$T/newuid.pgp"
cat "$MNT/.ctl/keys/$key/cert.asc" >"$T/newuid.asc"
check "a new uid shows in cert.pgp" test "$(uid_of "$T/newuid.pgp")" = "Release Signing <release@example.org>"
check "and in cert.asc" bash -c "gpg --batch --dearmor <'$T/newuid.asc' | gpg --batch --list-packets 2>/dev/null | grep -q 'Release Signing'"
check "the fingerprint did not change" test "$(fpr_of "$T/newuid.pgp")" = "$fpr"
home=$(gpg_home "$key" cert.pgp)
check "a signature from before the restart verifies with the new cert (gpg)" \
	gpg_ok "$home" "$MNT/$key/fw-sha512.bin.sig" "$T/fw.bin" 10
check "and with sq" sq_ok "$T/newuid.pgp" "$MNT/$key/fw-sha512.bin.sig" "$T/fw.bin"
cp "$T/fw.bin" "$MNT/$key/late.bin"
# The loop above left this key at sha384, its shortest allowed digest.
check "a new signature verifies with the new cert (gpg)" gpg_ok "$home" "$MNT/$key/late.bin.sig" "$T/fw.bin" 9
check "and with sq" sq_ok "$T/newuid.pgp" "$MNT/$key/late.bin.sig" "$T/fw.bin"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
