#!/bin/bash
# Story: a platform team signs UEFI images for Secure Boot by copying them into
# the inbox of a key whose format is authenticode (docs/format-authenticode.md):
# NAME gives NAME.signed, the PE image with an Authenticode signature, which
# sbverify and osslsigncode verify with the key's cert.pem, for Debian's own
# systemd-boot and kernel EFI stub, with RSA and ECDSA P-256 keys. The image
# part is sbsign's byte for byte (but for the checksum and the table's size),
# and the PE checksum is right. A changed byte fails. What the verifiers
# cannot check is refused at the write (Ed25519, RSA-PSS, digests other than
# sha256); an image that is signed already, a file that is no PE image, a
# truncated one, one whose sections overlap and a digest line get NAME.err.
# An image with 100 MB of trailing data is signed with flat memory.
. "$(dirname "$0")/lib.sh"

BOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi
STUB=/usr/lib/systemd/boot/efi/linuxx64.efi.stub
[ -r "$BOOT" ] && [ -r "$STUB" ] || fail "systemd-boot-efi is missing: scripts/deps installs it"
for tool in sbverify sbsign osslsigncode; do
	command -v $tool >/dev/null || fail "$tool is missing: scripts/deps installs sbsigntool and osslsigncode"
done

start_sigfs
K=$MNT/.ctl/keys


# verified IMAGE CERT: sbverify and osslsigncode both say the signature verifies.
verified() {
	local out
	out=$(sbverify --cert "$2" "$1" 2>&1) || { echo "  sbverify: $out" >&2; return 1; }
	echo "$out" | grep -q "Signature verification OK" || { echo "  sbverify: $out" >&2; return 1; }
	out=$(osslsigncode verify -CAfile "$2" -in "$1" 2>&1) || { echo "  osslsigncode: $(echo "$out" | tail -n 3)" >&2; return 1; }
	echo "$out" | grep -q "Signature verification: ok" || { echo "  osslsigncode: $out" >&2; return 1; }
	! echo "$out" | grep -qi "mismatch" || { echo "  osslsigncode: $(echo "$out" | grep -i mismatch)" >&2; return 1; }
}

# pe_checksum_ok IMAGE: the CheckSum field is the PE checksum of the file.
pe_checksum_ok() {
	python3 - "$1" <<'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
oh = struct.unpack_from("<I", d, 0x3c)[0] + 24
at = oh + 64
field = struct.unpack_from("<I", d, at)[0]
b = d[:at] + b"\0\0\0\0" + d[at + 4:]
if len(b) % 2:
    b += b"\0"
s = 0
for (w,) in struct.iter_unpack("<H", b):
    s += w
    s = (s & 0xffff) + (s >> 16)
s = ((s & 0xffff) + (s >> 16)) + len(d)
if s != field:
    sys.exit(f"  checksum field {field:#x}, computed {s:#x}")
PY
}

# flip FILE OFFSET OUT: FILE with the byte at OFFSET changed.
flip() {
	python3 -c 'import sys; d = bytearray(open(sys.argv[1], "rb").read()); d[int(sys.argv[2])] ^= 1; open(sys.argv[3], "wb").write(d)' "$@"
}

# --- RSA, imported: sbsign's image with our signature ------------------------------------------
openssl genrsa -out "$T/db.key" 2048 2>/dev/null
mkdir "$K/uefi"
cat "$T/db.key" >"$K/uefi/import"
echo pss >"$K/uefi/padding"
attr_refused uefi format authenticode
echo pkcs1 >"$K/uefi/padding"
check "uefi: with padding pkcs1, format authenticode is accepted" bash -c "echo authenticode >'$K/uefi/format'"
attr_refused uefi padding pss
attr_refused uefi digest sha384
cat "$K/uefi/cert.pem" >"$T/uefi.pem"

cp "$BOOT" "$MNT/uefi/systemd-bootx64.efi"
check "cp systemd-bootx64.efi returns with systemd-bootx64.efi.signed on disk" \
	test -s "$MNT/uefi/systemd-bootx64.efi.signed"
check "sbverify and osslsigncode verify it with the key's cert.pem (RSA)" \
	verified "$MNT/uefi/systemd-bootx64.efi.signed" "$T/uefi.pem"
check "its PE checksum is right" pe_checksum_ok "$MNT/uefi/systemd-bootx64.efi.signed"
sbsign --key "$T/db.key" --cert "$T/uefi.pem" --output "$T/ref.efi" "$BOOT" >/dev/null 2>&1 ||
	fail "sbsign failed"
same_image_as_sbsign() {
	python3 - "$T/ref.efi" "$MNT/uefi/systemd-bootx64.efi.signed" <<'PY'
import struct, sys
a, b = (open(p, "rb").read() for p in sys.argv[1:])
oh = struct.unpack_from("<I", a, 0x3c)[0] + 24
cks, cdir = oh + 64, oh + 112 + 32
ta, tb = struct.unpack_from("<I", a, cdir)[0], struct.unpack_from("<I", b, cdir)[0]
if ta != tb:
    sys.exit(f"  the certificate tables start at {ta} (sbsign) and {tb}")
mask = lambda d: d[:cks] + d[cks + 4:cdir + 4] + d[cdir + 8:ta]
if mask(a) != mask(b):
    sys.exit("  the image parts differ")
if b[tb + 4:tb + 8] != a[ta + 4:ta + 8]:
    sys.exit("  the WIN_CERTIFICATE revision and type differ from sbsign's")
PY
}
check "the image part (padded to 8) is sbsign's, but for the checksum and the table's size" same_image_as_sbsign
check "the unsigned image in the inbox is unchanged" cmp "$BOOT" "$MNT/uefi/systemd-bootx64.efi"

cp "$STUB" "$MNT/uefi/linuxx64.efi.stub"
check "the kernel's EFI stub is signed and verifies too" \
	verified "$MNT/uefi/linuxx64.efi.stub.signed" "$T/uefi.pem"

flip "$MNT/uefi/systemd-bootx64.efi.signed" 5000 "$T/bad-text.efi"
check_fails "a changed byte in .text fails" verified "$T/bad-text.efi" "$T/uefi.pem"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/other.key" -out "$T/other.pem" -days 30 \
	-subj "/CN=other" 2>/dev/null
check_fails "another certificate does not verify it" verified "$MNT/uefi/systemd-bootx64.efi.signed" "$T/other.pem"
check "sigfs wait: the output is current and verifies (--key-dir)" \
	"$SIGFS" wait --timeout 10 --key-dir "$K/uefi" "$MNT/uefi/systemd-bootx64.efi"
sbsign --key "$T/other.key" --cert "$T/other.pem" --output "$T/planted.efi.signed" "$BOOT" >/dev/null 2>&1
cp "$BOOT" "$T/planted.efi"
touch -r "$T/planted.efi" "$T/planted.efi.signed"
check "sigfs wait does not take an image another key signed (exit 3)" bash -c "
	'$SIGFS' wait --timeout 1 --key-dir '$K/uefi' '$T/planted.efi' 2>/dev/null; test \$? -eq 3"

# --- ECDSA P-256, made on the soft backend -------------------------------------------------
make_key ue ecdsa-p256
check "ue: format authenticode" bash -c "echo authenticode >'$K/ue/format'"
cat "$K/ue/cert.pem" >"$T/ue.pem"
cp "$BOOT" "$MNT/ue/boot.efi"
check "sbverify and osslsigncode verify it (ECDSA P-256)" verified "$MNT/ue/boot.efi.signed" "$T/ue.pem"
make_key ued ed25519
attr_refused ued format authenticode

# --- NAME.err ----------------------------------------------------------------------------------
err_has() {
	test -e "$MNT/uefi/$1.err" -a ! -e "$MNT/uefi/$1.signed" && grep -q "$2" "$MNT/uefi/$1.err"
}
cp "$MNT/uefi/systemd-bootx64.efi.signed" "$MNT/uefi/again.efi" 2>/dev/null || true
check "an image that is signed already gets again.efi.err saying so" err_has again.efi "signed already"
head -c 5000 /dev/urandom >"$T/junk.efi"
cp "$T/junk.efi" "$MNT/uefi/junk.efi" 2>/dev/null || true
check "random bytes get junk.efi.err: not a PE/COFF image" err_has junk.efi "not a PE/COFF image"
head -c 600 "$BOOT" >"$T/cut.efi"
cp "$T/cut.efi" "$MNT/uefi/cut.efi" 2>/dev/null || true
check "an image cut after 600 bytes gets cut.efi.err" test -e "$MNT/uefi/cut.efi.err" -a ! -e "$MNT/uefi/cut.efi.signed"
# The second section's PointerToRawData moved 512 bytes back: it overlaps the first.
python3 - "$BOOT" "$T/overlap.efi" <<'PY'
import struct, sys
d = bytearray(open(sys.argv[1], "rb").read())
e = struct.unpack_from("<I", d, 0x3c)[0]
table = e + 24 + struct.unpack_from("<H", d, e + 20)[0]
ptr = struct.unpack_from("<I", d, table + 40 + 20)[0]
struct.pack_into("<I", d, table + 40 + 20, ptr - 512)
open(sys.argv[2], "wb").write(d)
PY
cp "$T/overlap.efi" "$MNT/uefi/overlap.efi" 2>/dev/null || true
check "an image whose sections overlap gets overlap.efi.err" err_has overlap.efi "without gaps or overlaps"
echo "$(sha256sum <"$BOOT" | cut -d' ' -f1)  d.efi" >"$MNT/uefi/d.efi.sha256" 2>/dev/null || true
check "a digest line gets d.efi.err: the output is the image itself" \
	bash -c "grep -q 'signed file itself' '$MNT/uefi/d.efi.err'"
check "the key still signs after all that" bash -c "cp '$BOOT' '$MNT/uefi/c.efi' && test -s '$MNT/uefi/c.efi.signed'"

# --- 100 MB of trailing data: streamed ------------------------------------------------------
cp "$BOOT" "$T/big.efi"
head -c 100000000 /dev/urandom >>"$T/big.efi"
signs_flat uefi "$T/big.efi" big.efi
check "  sbverify and osslsigncode verify it" verified "$MNT/uefi/big.efi.signed" "$T/uefi.pem"
check "  its PE checksum is right" pe_checksum_ok "$MNT/uefi/big.efi.signed"

stop_sigfs
done_testing
