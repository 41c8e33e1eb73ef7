#!/bin/bash
# Story: an admin manages keys through the control tree: mkdir creates a key
# and its inbox, the attribute files show and change its settings (and refuse
# bad values), import brings in an existing key, rmdir deletes it; status
# (keys, and how many keys the soft backend holds) and the audit log follow
# along.
. "$(dirname "$0")/lib.sh"

A=$ADMIN_GROUP
K=$MNT/.ctl/keys

# soft_keys: how many keys .ctl/status says the soft backend holds.
soft_keys() {
	sed -n 's/^backend soft: soft, \([0-9]*\) keys\?$/\1/p' "$MNT/.ctl/status"
}
start_sigfs
head -c 100000 /dev/urandom >"$T/fw.bin"

# --- the tree -----------------------------------------------------------------------------
check "empty mount lists only .ctl" test "$(ls -A "$MNT")" = .ctl
check ".ctl is root:admin 0750" stat_is "$MNT/.ctl" "root:$A 750"
check ".ctl/keys is root:admin 0770" stat_is "$K" "root:$A 770"
check ".ctl/status is root:admin 0440" stat_is "$MNT/.ctl/status" "root:$A 440"
check ".ctl holds keys and status" test "$(ls -A "$MNT/.ctl" | tr '\n' ' ')" = "keys status "
check "no keys yet" prints_nothing ls -A "$K"
check "status: the soft backend holds no keys" grep -qx "backend soft: soft, 0 keys" "$MNT/.ctl/status"

check "mkdir .ctl/keys/rel creates a key" mkdir "$K/rel"
check "its inbox appears at the top" test -d "$MNT/rel"
check "inbox is root:admin 1770 (sticky)" stat_is "$MNT/rel" "root:$A 1770"
check "key dir is root:admin 0750" stat_is "$K/rel" "root:$A 750"
check "key dir lists exactly the attributes" test "$(ls "$K/rel" | tr '\n' ' ')" = \
	"algorithm allow_sha1 backend cert.asc cert.pem cert.pgp count created digest digest_files format import last-error namespace padding pubkey.minisign pubkey.pem pubkey.ssh uid "
for a in algorithm digest format padding allow_sha1 digest_files uid namespace; do
	check "attribute $a is settable (0660)" stat_is "$K/rel/$a" "root:$A 660"
done
for a in pubkey.pem count backend created; do
	check "attribute $a is read-only (0440)" stat_is "$K/rel/$a" "root:$A 440"
done
check "import is write-only (0220)" stat_is "$K/rel/import" "root:$A 220"
check "default algorithm ecdsa-p256" test "$(cat "$K/rel/algorithm")" = ecdsa-p256
check "default digest sha256" test "$(cat "$K/rel/digest")" = sha256
check "default format raw" test "$(cat "$K/rel/format")" = raw
check "backend is soft" test "$(cat "$K/rel/backend")" = soft
check "count starts at 0" test "$(cat "$K/rel/count")" = 0
check "created is a recent timestamp" test $(($(date +%s) - $(cat "$K/rel/created"))) -lt 600
check "pubkey.pem is an EC P-256 public key" bash -c \
	"openssl pkey -pubin -in '$K/rel/pubkey.pem' -noout -text | grep -q 'NIST CURVE: P-256'"
check "read-only attribute cannot be written" bash -c "! echo 5 > '$K/rel/count'"
check "count unchanged" test "$(cat "$K/rel/count")" = 0
check_fails_with "mkdir of an existing key: EEXIST" "File exists" mkdir "$K/rel"
check "audit log has the keygen line" grep -q " keygen key=rel uid=0 .*name=ecdsa-p256" "$STATE/audit.log"
check "status lists the key with count 0" grep -qx "key rel: ecdsa-p256 sha256 raw backend=soft count=0" \
	"$MNT/.ctl/status"
check "status: the soft backend holds 1 key" grep -qx "backend soft: soft, 1 key" "$MNT/.ctl/status"
check "status: the backend line comes after the key lines" \
	test "$(tail -n 1 "$MNT/.ctl/status")" = "backend soft: soft, 1 key"

# --- mkdir elsewhere, bad names -------------------------------------------------------------
check_fails_with "mkdir at the top: EPERM" "Operation not permitted" mkdir "$MNT/newdir"
check_fails_with "mkdir in an inbox: EPERM" "Operation not permitted" mkdir "$MNT/rel/sub"
check_fails_with "mkdir in .ctl: EPERM" "Operation not permitted" mkdir "$MNT/.ctl/other"
check_fails_with "mkdir in a key dir: EPERM" "Operation not permitted" mkdir "$K/rel/sub"
check_fails_with "key name with '..' inside: EINVAL" "Invalid argument" mkdir "$K/a..b"
check_fails_with "key name with a leading '.': EINVAL" "Invalid argument" mkdir "$K/.hidden"
check_fails_with "key name of 65 characters: EINVAL" "Invalid argument" mkdir "$K/$(printf 'k%.0s' $(seq 65))"
check "key name of 64 characters works" mkdir "$K/$(printf 'k%.0s' $(seq 64))"
check "and gets its inbox" test -d "$MNT/$(printf 'k%.0s' $(seq 64))"
check "and can be removed" rmdir "$K/$(printf 'k%.0s' $(seq 64))"
check_fails_with "key name with a space: EINVAL" "Invalid argument" mkdir "$K/a b"
check_fails_with "key name with a colon: EINVAL" "Invalid argument" mkdir "$K/a:b"
check_fails_with "key name with a non-ASCII letter: EINVAL" "Invalid argument" mkdir "$K/schlüssel"
check "key name with a newline: EINVAL" test "$(py_errno "os.mkdir('$K/a\\nb')")" = EINVAL
check "key name of letters, digits, '.', '_', '-' works" mkdir "$K/Rel_2.0-x"
check "no directory was made for refused names" test "$(ls "$K" | tr '\n' ' ')" = "Rel_2.0-x rel "
check "no inbox was made for refused names" test "$(ls -A "$MNT" | tr '\n' ' ')" = ".ctl Rel_2.0-x rel "
check "status: 2 keys on soft (refused names made none, 64 characters came and went)" \
	test "$(soft_keys)" = 2

# --- algorithm rewrite regenerates until the first signature ---------------------------------
pub0=$(cat "$K/rel/pubkey.pem")
check "writing algorithm ed25519 works" bash -c "echo ed25519 > '$K/rel/algorithm'"
check "algorithm reads back ed25519" test "$(cat "$K/rel/algorithm")" = ed25519
check "pubkey.pem changed" test "$(cat "$K/rel/pubkey.pem")" != "$pub0"
check "pubkey.pem is now Ed25519" bash -c "openssl pkey -pubin -in '$K/rel/pubkey.pem' -noout -text | grep -q ED25519"
pub1=$(cat "$K/rel/pubkey.pem")
check "rewriting the same algorithm is accepted" bash -c "echo ed25519 > '$K/rel/algorithm'"
check "and keeps the key (a setup script can be re-run)" test "$(cat "$K/rel/pubkey.pem")" = "$pub1"
check "writing algorithm rsa-2048 works" bash -c "echo rsa-2048 > '$K/rel/algorithm'"
check "padding of an RSA key defaults to pss" test "$(cat "$K/rel/padding")" = pss
check "writing algorithm ecdsa-p384 works" bash -c "echo ecdsa-p384 > '$K/rel/algorithm'"
check "padding of a non-RSA key is none" test "$(cat "$K/rel/padding")" = none
check "pubkey.pem is now P-384" bash -c "openssl pkey -pubin -in '$K/rel/pubkey.pem' -noout -text | grep -q 'NIST CURVE: P-384'"
check "status follows the algorithm, and the digest follows it to sha384 (never set by an admin)" \
	grep -qx "key rel: ecdsa-p384 sha384 raw backend=soft count=0" "$MNT/.ctl/status"
check "so format openpgp works for the P-384 key (it refuses digests shorter than the curve)" \
	bash -c "echo openpgp > '$K/rel/format' && echo raw > '$K/rel/format'"
signed0=$(sed -n 's/^signed: //p' "$MNT/.ctl/status")
cp "$T/fw.bin" "$MNT/rel/fw.bin"
check "a signature with the regenerated key verifies" verify_raw rel "$T/fw.bin" "$MNT/rel/fw.bin.sig" sha384
check_fails "the first key's pubkey does not verify it" openssl dgst -sha256 -verify <(echo "$pub0") \
	-signature "$MNT/rel/fw.bin.sig" "$T/fw.bin"
check "count is 1" test "$(cat "$K/rel/count")" = 1
check "status shows count=1" grep -qx "key rel: ecdsa-p384 sha384 raw backend=soft count=1" "$MNT/.ctl/status"
check "status total signed went up by one" test "$(sed -n 's/^signed: //p' "$MNT/.ctl/status")" = $((signed0 + 1))
pub2=$(cat "$K/rel/pubkey.pem")
check_fails_with "algorithm after the first signature: EPERM" "Operation not permitted" \
	bash -c "echo ecdsa-p256 > '$K/rel/algorithm'"
check "algorithm unchanged" test "$(cat "$K/rel/algorithm")" = ecdsa-p384
check "pubkey.pem unchanged" test "$(cat "$K/rel/pubkey.pem")" = "$pub2"
check "the old signature still verifies" verify_raw rel "$T/fw.bin" "$MNT/rel/fw.bin.sig" sha384

# --- validation of the other attributes -----------------------------------------------------
check_fails_with "unknown algorithm: EINVAL" "Invalid argument" bash -c "echo ecdsa-p999 > '$K/Rel_2.0-x/algorithm'"
check "algorithm unchanged after a bad value" test "$(cat "$K/Rel_2.0-x/algorithm")" = ecdsa-p256
check_fails_with "unknown digest: EINVAL" "Invalid argument" bash -c "echo md5 > '$K/rel/digest'"
check_fails_with "digest in upper case: EINVAL" "Invalid argument" bash -c "echo SHA256 > '$K/rel/digest'"
check_fails_with "two words: EINVAL" "Invalid argument" bash -c "echo 'sha256 sha512' > '$K/rel/digest'"
check_fails_with "format minisign for an ECDSA key: EINVAL" "Invalid argument" bash -c "echo minisign > '$K/rel/format'"
check_fails_with "format bogus: EINVAL" "Invalid argument" bash -c "echo bogus > '$K/rel/format'"
check "format unchanged" test "$(cat "$K/rel/format")" = raw
check "format raw can be written" bash -c "echo raw > '$K/rel/format'"
check_fails_with "padding on an EC key: EINVAL" "Invalid argument" bash -c "echo pss > '$K/rel/padding'"
check_fails_with "padding pkcs1 on an EC key: EINVAL" "Invalid argument" bash -c "echo pkcs1 > '$K/rel/padding'"
check "padding unchanged" test "$(cat "$K/rel/padding")" = none
check_fails_with "digest sha1 without allow_sha1: EPERM" "Operation not permitted" bash -c "echo sha1 > '$K/rel/digest'"
check "digest unchanged" test "$(cat "$K/rel/digest")" = sha384
check_fails_with "allow_sha1 = maybe: EINVAL" "Invalid argument" bash -c "echo maybe > '$K/rel/allow_sha1'"
check "allow_sha1 = yes works" bash -c "echo yes > '$K/rel/allow_sha1'"
check "allow_sha1 reads yes" test "$(cat "$K/rel/allow_sha1")" = yes
check "then digest sha1 works" bash -c "echo sha1 > '$K/rel/digest'"
check_fails_with "allow_sha1 = no while the digest is sha1: EINVAL" "Invalid argument" bash -c "echo no > '$K/rel/allow_sha1'"
check "digest sha512 works" bash -c "echo sha512 > '$K/rel/digest'"
check "allow_sha1 = no works again" bash -c "echo no > '$K/rel/allow_sha1'"
check "digest reads sha512" test "$(cat "$K/rel/digest")" = sha512
cp "$T/fw.bin" "$MNT/rel/fw512.bin"
check "signature with digest sha512 verifies" verify_raw rel "$T/fw.bin" "$MNT/rel/fw512.bin.sig" sha512
check_fails "and not as sha256" verify_raw rel "$T/fw.bin" "$MNT/rel/fw512.bin.sig" sha256
echo sha256 >"$K/rel/digest"
check_fails_with "digest_files = perhaps: EINVAL" "Invalid argument" bash -c "echo perhaps > '$K/rel/digest_files'"

# --- a digest an admin chose stays ----------------------------------------------------------
echo sha256 >"$K/Rel_2.0-x/digest"
echo ecdsa-p521 >"$K/Rel_2.0-x/algorithm"
check "a digest an admin wrote is kept when the algorithm changes" \
	test "$(cat "$K/Rel_2.0-x/digest")" = sha256

# --- padding on RSA -------------------------------------------------------------------------
echo rsa-2048 >"$K/Rel_2.0-x/algorithm"
check "padding pkcs1 on an RSA key works" bash -c "echo pkcs1 > '$K/Rel_2.0-x/padding'"
check_fails_with "padding bogus on an RSA key: EINVAL" "Invalid argument" bash -c "echo oaep > '$K/Rel_2.0-x/padding'"
check "padding reads pkcs1" test "$(cat "$K/Rel_2.0-x/padding")" = pkcs1
cp "$T/fw.bin" "$MNT/Rel_2.0-x/p1.bin"
check "PKCS#1 signature verifies" openssl dgst -sha256 -verify "$(pubkey Rel_2.0-x)" -signature "$MNT/Rel_2.0-x/p1.bin.sig" "$T/fw.bin"

# --- digest_files ---------------------------------------------------------------------------
(cd "$T" && sha256sum fw.bin) >"$T/fw.bin.sha256"
cp "$T/fw.bin.sha256" "$MNT/rel/fw.bin.sha256"
check "digest_files = yes: fw.bin.sha256 signs fw.bin" verify_raw rel "$T/fw.bin" "$MNT/rel/fw.bin.sig"
check "digest_files = yes: no fw.bin.sha256.sig" test ! -e "$MNT/rel/fw.bin.sha256.sig"
check "digest_files = no works" bash -c "echo no > '$K/rel/digest_files'"
check "digest_files reads no" test "$(cat "$K/rel/digest_files")" = no
mkdir "$T/df" && cp "$T/fw.bin.sha256" "$T/df/gw.bin.sha256" && sed -i 's/fw.bin/gw.bin/' "$T/df/gw.bin.sha256"
cp "$T/df/gw.bin.sha256" "$MNT/rel/gw.bin.sha256"
check "digest_files = no: gw.bin.sha256.sig appears" test -s "$MNT/rel/gw.bin.sha256.sig"
check "digest_files = no: no gw.bin.sig" test ! -e "$MNT/rel/gw.bin.sig"
check "the .sha256 file itself was signed" verify_raw rel "$T/df/gw.bin.sha256" "$MNT/rel/gw.bin.sha256.sig"
check_fails "not the digest it holds" verify_raw rel "$T/fw.bin" "$MNT/rel/gw.bin.sha256.sig"

# --- import ---------------------------------------------------------------------------------
import_one() { # NAME GENKEY-ARGS... ; expected algorithm in $want
	local name=$1
	shift
	openssl genpkey "$@" -out "$T/$name.key" 2>/dev/null
	mkdir "$K/$name"
	check "$name: import accepted" bash -c "cat '$T/$name.key' > '$K/$name/import'"
	check "$name: algorithm follows the key ($want)" test "$(cat "$K/$name/algorithm")" = "$want"
	check "$name: pubkey.pem is the imported key's public key" \
		cmp -s <(openssl pkey -in "$T/$name.key" -pubout) "$K/$name/pubkey.pem"
	cp "$T/fw.bin" "$MNT/$name/fw.bin"
	check "$name: the digest follows the key (${wantdg:-sha256})" \
		test "$(cat "$K/$name/digest")" = "${wantdg:-sha256}"
	check "$name: a signature verifies with the imported key" \
		verify_raw "$name" "$T/fw.bin" "$MNT/$name/fw.bin.sig" "${wantdg:-sha256}"
	check "$name: audit log has the import line" grep -q " import key=$name uid=0 .*name=$want" "$STATE/audit.log"
}
want=rsa-2048 import_one imp-rsa2048 -algorithm RSA -pkeyopt rsa_keygen_bits:2048
want=rsa-3072 import_one imp-rsa3072 -algorithm RSA -pkeyopt rsa_keygen_bits:3072
want=ecdsa-p256 import_one imp-p256 -algorithm EC -pkeyopt ec_paramgen_curve:P-256
want=ecdsa-p384 wantdg=sha384 import_one imp-p384 -algorithm EC -pkeyopt ec_paramgen_curve:P-384
want=ecdsa-p521 wantdg=sha512 import_one imp-p521 -algorithm EC -pkeyopt ec_paramgen_curve:P-521
want=ed25519 import_one imp-ed -algorithm ED25519
# A traditional-format key (BEGIN EC PRIVATE KEY) is fine too.
openssl ecparam -name prime256v1 -genkey -noout -out "$T/trad.key"
mkdir "$K/imp-trad"
check "traditional EC PEM import accepted" bash -c "cat '$T/trad.key' > '$K/imp-trad/import'"
check "traditional EC PEM: pubkey matches" cmp -s <(openssl pkey -in "$T/trad.key" -pubout) "$K/imp-trad/pubkey.pem"
pubp=$(cat "$K/imp-p256/pubkey.pem")
check_fails_with "import after the first signature: EPERM" "Operation not permitted" \
	bash -c "cat '$T/imp-p384.key' > '$K/imp-p256/import'"
check "pubkey.pem unchanged after refused import" test "$(cat "$K/imp-p256/pubkey.pem")" = "$pubp"
check "algorithm unchanged after refused import" test "$(cat "$K/imp-p256/algorithm")" = ecdsa-p256
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out "$T/k1.key" 2>/dev/null
mkdir "$K/imp-bad"
check_fails "import of a secp256k1 key is refused" bash -c "cat '$T/k1.key' > '$K/imp-bad/import'"
check_fails "import of garbage is refused" bash -c "echo 'not a key' | cat > '$K/imp-bad/import'"
check "import reads back nothing" bash -c "out=\$(cat '$K/imp-ed/import') && [ -z \"\$out\" ]"
check "the private key is nowhere in the key dir" bash -c "! cat '$K'/imp-ed/* 2>/dev/null | grep -q PRIVATE"

# --- rmdir ----------------------------------------------------------------------------------
check_fails_with "rmdir of a key with a non-empty inbox: ENOTEMPTY" "not empty" rmdir "$K/rel"
check "the key is still there" test -d "$K/rel" -a -d "$MNT/rel"
check_fails_with "rmdir of the inbox itself: EPERM" "Operation not permitted" rmdir "$MNT/Rel_2.0-x"
check_fails_with "rmdir of .ctl/keys: EPERM" "Operation not permitted" rmdir "$K"
rm -f "$MNT/rel"/*
n0=$(soft_keys)
check "rmdir after emptying the inbox works" rmdir "$K/rel"
check "status: soft holds one key less" test "$(soft_keys)" = $((n0 - 1))
check "the key dir is gone" test ! -e "$K/rel"
check "the inbox is gone (within the kernel's 1 s entry cache)" wait_gone "$MNT/rel"
check "status no longer lists it" no_match '^key rel:' "$MNT/.ctl/status"
check "audit log has the keydel line" grep -q " keydel key=rel uid=0" "$STATE/audit.log"
check "a new key of the same name is a new key" mkdir "$K/rel"
check "status: soft holds it again" test "$(soft_keys)" = "$n0"
check "with a fresh count" test "$(cat "$K/rel/count")" = 0
check "and a different public key" test "$(cat "$K/rel/pubkey.pem")" != "$pub2"

stop_sigfs
conf_set sigfs allow_key_delete no
start_sigfs
check "keys survived the restart" test -d "$K/imp-ed" -a -d "$MNT/imp-ed"
rm -f "$MNT/imp-ed"/*
check_fails_with "allow_key_delete = no: rmdir is EPERM" "Operation not permitted" rmdir "$K/imp-ed"
check "the key is still there" test -s "$K/imp-ed/pubkey.pem"
check "mkdir still works with allow_key_delete = no" mkdir "$K/late"

# --- the daemon keeps serving ---------------------------------------------------------------
cp "$T/fw.bin" "$MNT/late/fw.bin"
check "still signing after all those errors" verify_raw late "$T/fw.bin" "$MNT/late/fw.bin.sig"
check "status still readable" grep -q "^key late: " "$MNT/.ctl/status"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
