#!/bin/bash
# Story: an embedded team signs SWUpdate images. The key's format is swupdate
# (docs/format-swupdate.md): sw-description copied into the inbox gives
# sw-description.sig, the detached CMS SignedData Debian's swupdate checks. A
# .swu made of sw-description, sw-description.sig and the image (cpio, crc
# and newc) passes `swupdate -c` with the key's certificate, for ECDSA P-256
# and RSA (PSS and PKCS#1 v1.5); a changed sw-description or image fails.
# A device that insists on --cert-purpose codeSigning refuses the key's own
# certificate, which has no extended key usage, and accepts one that an
# admin's CA issued for codeSigning and wrote into cert.pem. A whole unsigned
# image NAME.swu gives NAME.swu.signed with sw-description.sig inserted as its
# second member, which swupdate -c accepts (crc and newc); a changed image in
# it fails; an image signed already, one in cpio's odc format, one that does
# not start with sw-description, random bytes and a digest line get NAME.err;
# a 100 MB image is signed with the daemon's peak RSS growing by under 10 MB.
. "$(dirname "$0")/lib.sh"

command -v swupdate >/dev/null || fail "swupdate is missing: scripts/deps installs it"
command -v cpio >/dev/null || fail "cpio is missing: scripts/deps installs it"

start_sigfs
K=$MNT/.ctl/keys
mkdir -p "$T/out"
head -c 20000 /dev/urandom >"$T/rootfs.img"

# describe FILE: a sw-description for board revision 1.0 whose one file is
# rootfs.img with its sha256 (check mode installs nothing).
describe() {
	cat >"$1" <<EOF
software =
{
	version = "1.0.0";
	hardware-compatibility: [ "1.0" ];
	files: (
		{
			filename = "rootfs.img";
			path = "$T/out/rootfs.img";
			sha256 = "$(sha256sum "$T/rootfs.img" | cut -d' ' -f1)";
		}
	);
}
EOF
}

# make_swu OUT FORMAT DESC SIG IMAGE: a .swu (cpio -H FORMAT) of those three files.
make_swu() {
	rm -rf "$T/swu" && mkdir "$T/swu"
	cp "$3" "$T/swu/sw-description"
	cp "$4" "$T/swu/sw-description.sig"
	cp "$5" "$T/swu/rootfs.img"
	(cd "$T/swu" && printf 'sw-description\nsw-description.sig\nrootfs.img\n' |
		cpio -o --quiet -H "$2" >"$1")
}

# swu_ok SWU CERT [OPTIONS...]: swupdate's check mode accepts SWU with CERT.
# Judged by what it prints, not by its exit status: Debian 12's swupdate
# (2022.12) exited 1 in 1 of 20 checks of one good image that all printed
# "SWUPDATE successful" and no error (a race at its exit).
swu_ok() {
	local swu=$1 cert=$2
	shift 2
	# Its own TMPDIR: swupdate keeps its sockets and extracted files there, and
	# two swupdate runs sharing /tmp mix their messages (CI once failed so).
	mkdir -p "$T/swupdate-tmp"
	TMPDIR=$T/swupdate-tmp swupdate -c -H board:1.0 -k "$cert" "$@" -i "$swu" >"$T/swupdate.out" 2>&1 || true
	grep -q "SWUPDATE successful" "$T/swupdate.out" && ! grep -q "\[ERROR\]" "$T/swupdate.out" || {
		grep -v "^ *$" "$T/swupdate.out" | tail -n 4 | sed "s/^/  /" >&2
		return 1
	}
}

describe "$T/sw-description"
for spec in ecdsa-p256:none rsa-2048:pss rsa-2048:pkcs1; do
	alg=${spec%%:*} pad=${spec##*:} key=sw-${spec//:/-}
	make_key "$key" "$alg"
	[ "$pad" = none ] || echo "$pad" >"$K/$key/padding"
	check "$key: format swupdate" bash -c "echo swupdate >'$K/$key/format'"
	cat "$K/$key/cert.pem" >"$T/$key.pem"
	cp "$T/sw-description" "$MNT/$key/sw-description"
	check "$key: cp returns with sw-description.sig on disk" test -s "$MNT/$key/sw-description.sig"
	for cpio_format in crc newc; do
		make_swu "$T/$key-$cpio_format.swu" "$cpio_format" "$T/sw-description" \
			"$MNT/$key/sw-description.sig" "$T/rootfs.img"
		check "$key: swupdate -c accepts the .swu (cpio $cpio_format)" \
			swu_ok "$T/$key-$cpio_format.swu" "$T/$key.pem"
	done
	check "$key: sigfs wait verifies sw-description.sig" \
		"$SIGFS" wait --timeout 5 --key-dir "$K/$key" "$MNT/$key/sw-description"
done
check "swupdate installed nothing in check mode" prints_nothing ls -A "$T/out"

# What swupdate must refuse, with ecdsa-p256's signature.
key=sw-ecdsa-p256-none
sed 's/version = "1.0.0"/version = "1.0.1"/' "$T/sw-description" >"$T/sw-description.changed"
make_swu "$T/changed.swu" crc "$T/sw-description.changed" "$MNT/$key/sw-description.sig" "$T/rootfs.img"
check_fails "a changed sw-description fails" swu_ok "$T/changed.swu" "$T/$key.pem"
check "  saying the signature does not verify" grep -q "Signature verification failed" "$T/swupdate.out"
head -c 20000 /dev/urandom >"$T/other.img"
make_swu "$T/image.swu" crc "$T/sw-description" "$MNT/$key/sw-description.sig" "$T/other.img"
check_fails "a changed image fails" swu_ok "$T/image.swu" "$T/$key.pem"
check "  with a hash mismatch" grep -qi "hash mismatch" "$T/swupdate.out"
check_fails "another key's certificate fails" swu_ok "$T/$key-crc.swu" "$T/sw-rsa-2048-pss.pem"

# --cert-purpose codeSigning: the key's own certificate has no extended key
# usage and is refused; a CA-issued one with codeSigning passes.
check_fails "--cert-purpose codeSigning refuses the key's self-signed certificate" \
	swu_ok "$T/$key-crc.swu" "$T/$key.pem" --cert-purpose codeSigning
openssl ecparam -name prime256v1 -genkey -noout -out "$T/cs.key" 2>/dev/null
mkdir "$K/sw-cs"
cat "$T/cs.key" >"$K/sw-cs/import"
echo swupdate >"$K/sw-cs/format"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$T/ca.key" \
	-out "$T/ca.pem" -days 30 -subj "/CN=Example Update CA" 2>/dev/null
printf 'keyUsage = digitalSignature\nextendedKeyUsage = codeSigning\n' >"$T/cs.ext"
openssl req -new -key "$T/cs.key" -subj "/CN=Example updates" 2>/dev/null |
	openssl x509 -req -CA "$T/ca.pem" -CAkey "$T/ca.key" -set_serial 7 -days 30 \
		-extfile "$T/cs.ext" -out "$T/cs.pem" 2>/dev/null
check "the admin installs a codeSigning certificate from the CA" bash -c "cat '$T/cs.pem' >'$K/sw-cs/cert.pem'"
cp "$T/sw-description" "$MNT/sw-cs/sw-description"
make_swu "$T/cs.swu" crc "$T/sw-description" "$MNT/sw-cs/sw-description.sig" "$T/rootfs.img"
check "swupdate --cert-purpose codeSigning accepts it with the CA as trust anchor" \
	swu_ok "$T/cs.swu" "$T/ca.pem" --cert-purpose codeSigning

# Ed25519: OpenSSL 3.0 cannot verify it inside CMS, so neither can swupdate.
make_key sw-ed ed25519
check_fails_with "an Ed25519 key cannot take format swupdate: EINVAL" "Invalid argument" \
	bash -c "echo swupdate >'$K/sw-ed/format'"

# --- whole images: NAME.swu gives NAME.swu.signed, sw-description.sig inserted second ------------
# make_unsigned OUT FORMAT DESC IMAGE: a .swu (cpio -H FORMAT) of sw-description and the image.
make_unsigned() {
	rm -rf "$T/swu" && mkdir "$T/swu"
	cp "$3" "$T/swu/sw-description"
	cp "$4" "$T/swu/rootfs.img"
	(cd "$T/swu" && printf 'sw-description\nrootfs.img\n' | cpio -o --quiet -H "$2" >"$1")
}
# members SWU: the cpio member names, in order, on one line.
members() {
	cpio -it --quiet <"$1" | tr '\n' ' '
}
for spec in sw-ecdsa-p256-none:crc sw-rsa-2048-pkcs1:newc sw-rsa-2048-pss:crc; do
	key=${spec%%:*} cpio_format=${spec##*:}
	make_unsigned "$T/u-$key.swu" "$cpio_format" "$T/sw-description" "$T/rootfs.img"
	cp "$T/u-$key.swu" "$MNT/$key/update.swu"
	check "$key: update.swu (cpio $cpio_format) gives update.swu.signed, and no update.swu.sig" \
		test -s "$MNT/$key/update.swu.signed" -a ! -e "$MNT/$key/update.swu.sig"
	check "  sw-description.sig is its second member" \
		test "$(members "$MNT/$key/update.swu.signed")" = "sw-description sw-description.sig rootfs.img "
	check "  swupdate -c accepts update.swu.signed" swu_ok "$MNT/$key/update.swu.signed" "$T/$key.pem"
	check "  cpio -i --only-verify-crc finds every checksum right" \
		bash -c "cpio -i --quiet --only-verify-crc <'$MNT/$key/update.swu.signed'"
	check "  sigfs wait verifies it" \
		"$SIGFS" wait --timeout 5 --key-dir "$K/$key" "$MNT/$key/update.swu"
done
key=sw-ecdsa-p256-none
# A changed image inside the signed .swu: hash mismatch.
make_unsigned "$T/u-other.swu" crc "$T/sw-description" "$T/other.img"
python3 - "$MNT/$key/update.swu.signed" "$T/rootfs.img" "$T/other.img" "$T/swapped.swu" <<'PY'
import sys
signed, old, new, out = sys.argv[1:]
data, a, b = open(signed, "rb").read(), open(old, "rb").read(), open(new, "rb").read()
assert data.count(a) == 1 and len(a) == len(b)
open(out, "wb").write(data.replace(a, b))
PY
check_fails "a signed .swu whose image was changed fails" swu_ok "$T/swapped.swu" "$T/$key.pem"
check "  with a hash mismatch" grep -qi "hash mismatch" "$T/swupdate.out"
check_fails "another key's certificate fails it" swu_ok "$MNT/$key/update.swu.signed" "$T/sw-rsa-2048-pss.pem"
check "sigfs wait does not take the image signed by another key (exit 3)" bash -c "
	cp '$MNT/sw-rsa-2048-pss/update.swu.signed' '$T/planted.swu.signed' && cp '$MNT/$key/update.swu' '$T/planted.swu' &&
	touch -r '$T/planted.swu' '$T/planted.swu.signed'
	'$SIGFS' wait --timeout 1 --key-dir '$K/$key' '$T/planted.swu' 2>/dev/null; test \$? -eq 3"
# err_has NAME TEXT: NAME.err exists in the key's inbox, says TEXT, and NAME.signed does not exist.
err_has() {
	test -e "$MNT/$key/$1.err" -a ! -e "$MNT/$key/$1.signed" && grep -q "$2" "$MNT/$key/$1.err"
}
cp "$MNT/$key/update.swu.signed" "$MNT/$key/again.swu" 2>/dev/null || true
check "an image signed already gets again.swu.err saying so" err_has again.swu "signed already"
rm -rf "$T/swu" && mkdir "$T/swu" && cp "$T/sw-description" "$T/rootfs.img" "$T/swu/"
(cd "$T/swu" && printf 'sw-description\nrootfs.img\n' | cpio -o --quiet -H odc >"$T/odc.swu")
cp "$T/odc.swu" "$MNT/$key/odc.swu" 2>/dev/null || true
check "a .swu in cpio's odc format (SWUpdate refuses it) gets odc.swu.err" err_has odc.swu "newc and crc"
(cd "$T/swu" && printf 'rootfs.img\nsw-description\n' | cpio -o --quiet -H newc >"$T/order.swu")
cp "$T/order.swu" "$MNT/$key/order.swu" 2>/dev/null || true
check "a .swu whose first member is not sw-description gets order.swu.err" err_has order.swu "first member"
head -c 3000 /dev/urandom >"$T/junk.swu"
cp "$T/junk.swu" "$MNT/$key/junk.swu" 2>/dev/null || true
check "random bytes named .swu get junk.swu.err" err_has junk.swu "not a .swu image"
echo "$(sha256sum <"$T/u-$key.swu" | cut -d' ' -f1)  d.swu" >"$MNT/$key/d.swu.sha256" 2>/dev/null || true
check "a digest line of a .swu gets d.swu.err: the image is signed whole" \
	bash -c "grep -q 'signed file itself' '$MNT/$key/d.swu.err'"
check "and sw-description is still signed as sw-description.sig" \
	bash -c "cp '$T/sw-description' '$MNT/$key/sw-description' && test -s '$MNT/$key/sw-description.sig'"

# A 100 MB image: streamed, never held in memory.
head -c 100000000 /dev/urandom >"$T/big.img"
describe_big() {
	sed "s|$(sha256sum "$T/rootfs.img" | cut -d' ' -f1)|$(sha256sum "$T/big.img" | cut -d' ' -f1)|; s|rootfs.img|big.img|g" "$T/sw-description"
}
describe_big >"$T/sw-description.big"
rm -rf "$T/swu" && mkdir "$T/swu" && cp "$T/sw-description.big" "$T/swu/sw-description" && cp "$T/big.img" "$T/swu/"
(cd "$T/swu" && printf 'sw-description\nbig.img\n' | cpio -o --quiet -H crc >"$T/big.swu")
signs_flat "$key" "$T/big.swu" big.swu
check "  swupdate -c accepts it" swu_ok "$MNT/$key/big.swu.signed" "$T/$key.pem"
check "swupdate installed nothing in check mode" prints_nothing ls -A "$T/out"

stop_sigfs
done_testing
