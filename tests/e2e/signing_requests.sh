#!/bin/bash
# Story: a build host sends a signing request instead of the artifact.
# Signstar's real sample request gives NAME.sig that `gpg --verify` accepts
# over "this is sample text"; requests `sigfs request` writes for files of
# many sizes give OpenPGP signatures gpg accepts, and digest requests give raw
# signatures openssl accepts; malformed requests give a one-line NAME.err and
# the daemon goes on serving; unknown "optional" fields are ignored.
. "$(dirname "$0")/lib.sh"

SIGFS=${SIGFS:-$(dirname "$SIGFSD")/sigfs}
[ -x "$SIGFS" ] || fail "no sigfs client at $SIGFS (build it, or set SIGFS)"
SAMPLE=$SIGFS_SRC/tests/fuzz/corpus-request/signstar-sample.json
export GNUPGHOME=$T/gnupg
mkdir -m 700 "$GNUPGHOME"

start_sigfs

# gpg_ok KEY FILE SIG: gpg, with only KEY's certificate, says the signature is good.
gpg_ok() {
	local status
	status=$(gpg --batch --status-fd 1 --verify "$3" "$2" 2>"$T/gpg.err") ||
		{ cat "$T/gpg.err" >&2; return 1; }
	grep -q "^\[GNUPG:\] GOODSIG" <<<"$status" &&
		grep -q "^\[GNUPG:\] VALIDSIG $(fpr "$1")" <<<"$status"
}

fpr() {
	gpg --batch --with-colons --show-keys "$MNT/.ctl/keys/$1/cert.pgp" |
		awk -F: '$1 == "fpr" { print $10; exit }'
}

# err_is DIR NAME TEXT: DIR/NAME.err is one line holding TEXT.
err_is() {
	wait_for "$1/$2.err" 10 || { echo "  no $2.err" >&2; return 1; }
	[ "$(wc -l <"$1/$2.err")" = 1 ] || { echo "  $2.err is not one line" >&2; return 1; }
	grep -qF -- "$3" "$1/$2.err" || { echo "  $2.err: $(cat "$1/$2.err")" >&2; return 1; }
}

# send FILE DIR NAME: copy a request in; close() fails when signing fails, so ignore it.
send() {
	cp "$1" "$2/$3.sigreq" 2>/dev/null || true
}

for alg in ed25519 rsa-3072 ecdsa-p256; do
	key=k-$alg
	make_key "$key" "$alg"
	check "$key: cert.pgp imports into gpg" gpg --batch --quiet --import "$MNT/.ctl/keys/$key/cert.pgp"
	# The key's own format stays raw: the request asks for OpenPGPv4.
	printf 'this is sample text' >"$T/sample.txt"
	cp "$SAMPLE" "$MNT/$key/sample.sigreq"
	check "$key: Signstar's sample request gives sample.sig at once" test -s "$MNT/$key/sample.sig"
	check "$key: gpg --verify accepts sample.sig over 'this is sample text'" \
		gpg_ok "$key" "$T/sample.txt" "$MNT/$key/sample.sig"
	printf 'this is sample text.' >"$T/other.txt"
	check_fails "$key: gpg rejects it over other bytes" gpg_ok "$key" "$T/other.txt" "$MNT/$key/sample.sig"
done

# Requests from our client for the sizes around SHA-512's block boundaries.
key=k-ed25519
IN=$MNT/$key
mkdir "$T/files"
for n in 0 1 111 112 127 128 129 4096 1048576; do
	head -c "$n" /dev/urandom >"$T/files/f$n.bin"
	(cd "$T/files" && "$SIGFS" request "f$n.bin")
	check "$n bytes: the client wrote f$n.bin.sigreq (a Signstar request)" \
		grep -q '"sha2-0.11-SHA512-state"' "$T/files/f$n.bin.sigreq"
	check "$n bytes: the request is small" test "$(stat -c %s "$T/files/f$n.bin.sigreq")" -lt 4096
	cp "$T/files/f$n.bin.sigreq" "$IN/"
	check "$n bytes: gpg --verify accepts f$n.bin.sig" gpg_ok "$key" "$T/files/f$n.bin" "$IN/f$n.bin.sig"
done
check_fails "a signature is not valid for the neighbouring size" \
	gpg_ok "$key" "$T/files/f128.bin" "$IN/f129.bin.sig"

# The workflow of the docs: sigfs request fw.bin && cp fw.bin.sigreq MNT/release/.
head -c 300000 /dev/urandom >"$T/fw.bin"
check "sigfs request -o writes straight into the inbox" \
	"$SIGFS" request "$T/fw.bin" -o "$IN/fw.bin.sigreq"
check "fw.bin.sig verifies with gpg" gpg_ok "$key" "$T/fw.bin" "$IN/fw.bin.sig"
check "-o - writes the request to stdout" \
	bash -c "'$SIGFS' request '$T/fw.bin' -o - | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r[\"optional\"][\"file-name\"] == \"fw.bin\" and r[\"optional\"][\"request-time\"] > 0'"
check_fails_with "unknown format: a clear error" 'unknown format "pgp"' "$SIGFS" request "$T/fw.bin" --format pgp -o -
check_fails_with "missing file: a clear error" "cannot read" "$SIGFS" request "$T/nosuch" -o -
check_fails_with "minisign hashes with BLAKE2b: the client refuses before writing" \
	"the minisign format cannot sign a sha512 hash" "$SIGFS" request "$T/fw.bin" --format minisign -o -

# Unknown optional fields are ignored (Signstar's grease key, and others).
python3 - "$T/files/f129.bin.sigreq" "$T/grease.sigreq" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
r["optional"].update({"zGr3ase": "x", "nested": {"a": [1, 2, {"b": None}]}, "file-name": 7})
json.dump(r, open(sys.argv[2], "w"))
PY
cp "$T/grease.sigreq" "$IN/grease.sigreq"
check "unknown optional fields ignored: grease.sig verifies" gpg_ok "$key" "$T/files/f129.bin" "$IN/grease.sig"

# Malformed requests: one-line .err each.
python3 - "$SAMPLE" "$T/bad" <<'PY'
import json, os, sys, copy
sample = json.load(open(sys.argv[1]))
out = sys.argv[2]
os.makedirs(out)
def put(name, obj):
    with open(os.path.join(out, name), "w") as f:
        f.write(obj if isinstance(obj, str) else json.dumps(obj, separators=(",", ":")))
def mut(fn):
    r = copy.deepcopy(sample); fn(r); return r
put("badjson", '{"version": "1.0.0", "required": {')
put("dupkey", '{"version":"1.0.0","version":"1.0.0","required":{}}')
put("required-field", mut(lambda r: r["required"].update({"policy": "strict"})))
put("input-field", mut(lambda r: r["required"]["input"].update({"salt": 1})))
put("major2", mut(lambda r: r.update({"version": "2.0.0"})))
put("padding", mut(lambda r: r["required"]["input"]["content"].__setitem__(207, 1)))
put("pos128", mut(lambda r: r["required"]["input"]["content"].__setitem__(80, 128)))
put("short", mut(lambda r: r["required"]["input"]["content"].pop()))
put("old210", mut(lambda r: r["required"]["input"]["content"].extend([0, 0])))
put("huge", mut(lambda r: r["required"]["input"].update({"content": [0] * 30000})))
put("byte256", mut(lambda r: r["required"]["input"]["content"].__setitem__(3, 256)))
put("output", mut(lambda r: r["required"]["output"].update({"type": "OpenPGPv6"})))
put("toolarge", " " * 70000)
PY
while read -r name text; do
	send "$T/bad/$name" "$IN" "$name"
	check "$name: $name.err says: $text" err_is "$IN" "$name" "$text"
	check "$name: no $name.sig" test ! -e "$IN/$name.sig"
done <<'LIST'
badjson the request is not valid JSON
dupkey duplicate object key
required-field has the field "policy", which this sigfsd does not know
input-field has the field "salt"
major2 this sigfsd understands version 1 only
padding non-zero byte at offset 207
pos128 128 bytes are buffered
short has 207 bytes, not 208
old210 pre-release of sha2 0.11
huge has 30000 bytes, not 208
byte256 byte 3 of the request's SHA-512 state is not an integer from 0 to 255
output output type "OpenPGPv6" is unknown
toolarge larger than 65536 bytes
LIST
check "the daemon still serves after the malformed requests" same_daemon
cp "$T/files/f1.bin.sigreq" "$IN/after.sigreq"
check "a good request after them still verifies" gpg_ok "$key" "$T/files/f1.bin" "$IN/after.sig"

# Digest requests: raw signatures checked by openssl, for the digests asked.
key=k-ecdsa-p256
for d in sha256 sha512 sha3-256; do
	"$SIGFS" request "$T/fw.bin" --format raw --digest "$d" -o "$T/fw-$d.sigreq"
	check "$d: the client wrote a digest request" grep -q '"sigfs-digest-v1"' "$T/fw-$d.sigreq"
	cp "$T/fw-$d.sigreq" "$MNT/$key/fw-$d.sigreq"
	check "$d: openssl dgst -verify accepts the raw signature" \
		verify_raw "$key" "$T/fw.bin" "$MNT/$key/fw-$d.sig" "$d"
	check_fails "$d: not valid for other bytes" verify_raw "$key" "$T/other.txt" "$MNT/$key/fw-$d.sig" "$d"
done
key=k-rsa-3072
"$SIGFS" request "$T/fw.bin" --format raw -o "$T/fw-rsa.sigreq"
cp "$T/fw-rsa.sigreq" "$MNT/$key/fw.sigreq"
check "RSA: openssl accepts the digest request's signature (sha512 by default)" \
	verify_raw "$key" "$T/fw.bin" "$MNT/$key/fw.sig" sha512
# Ed25519 signs whole files only: a digest request is refused clearly.
"$SIGFS" request "$T/fw.bin" --format raw -o "$T/fw-ed.sigreq"
send "$T/fw-ed.sigreq" "$MNT/k-ed25519" fw-ed
check "Ed25519: a digest request gives a clear .err" err_is "$MNT/k-ed25519" fw-ed "Ed25519 cannot sign a digest"

stop_sigfs
done_testing
