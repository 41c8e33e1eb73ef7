#!/bin/bash
# Story: an embedded team signs SWUpdate images. The key's format is swupdate
# (docs/format-swupdate.md): sw-description copied into the inbox gives
# sw-description.sig, the detached CMS SignedData Debian's swupdate checks. A
# .swu made of sw-description, sw-description.sig and the image (cpio, crc
# and newc) passes `swupdate -c` with the key's certificate, for ECDSA P-256
# and RSA (PSS and PKCS#1 v1.5); a changed sw-description or image fails.
# A device that insists on --cert-purpose codeSigning refuses the key's own
# certificate, which has no extended key usage, and accepts one that an
# admin's CA issued for codeSigning and wrote into cert.pem.
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
	swupdate -c -H board:1.0 -k "$cert" "$@" -i "$swu" >"$T/swupdate.out" 2>&1 || true
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

stop_sigfs
done_testing
