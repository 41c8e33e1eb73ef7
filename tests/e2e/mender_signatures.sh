#!/bin/bash
# Story: a release team signs Mender artifacts by copying them into the inbox
# of a key whose format is mender (docs/format-mender.md): NAME.mender gives
# NAME.mender.signed, the artifact with manifest.sig added after manifest.
# Debian's mender-artifact says it is signed and verified (validate -k and
# read -k) for RSA and ECDSA P-256; with an imported RSA key it is byte for
# byte what `mender-artifact sign -k` makes with the same key. A changed
# payload or manifest fails. What mender-artifact cannot verify is refused
# at the write (Ed25519, P-384, RSA-PSS, digests other than sha256); an
# artifact that is signed already, of format version 2, not a Mender
# artifact at all, or a digest line gets NAME.err. A 100 MB artifact is
# signed without being held in memory: the daemon's peak RSS grows by less
# than a tenth of it. `sigfs wait` accepts NAME.signed; in a spool it checks
# the signature, so another key's signed artifact planted there is not taken.
. "$(dirname "$0")/lib.sh"

command -v mender-artifact >/dev/null || fail "mender-artifact is missing: scripts/deps installs it"

start_sigfs
K=$MNT/.ctl/keys


# artifact NAME [SIZE] [OPTIONS...]: $T/NAME.mender, a rootfs-image artifact
# (format version 3 unless OPTIONS say -v 2) with a random payload of SIZE bytes.
artifact() {
	local name=$1 size=${2:-300000}
	shift 2 || shift $#
	head -c "$size" /dev/urandom >"$T/$name.img"
	mender-artifact "$@" write rootfs-image -t board -n "rel-$name" -f "$T/$name.img" \
		-o "$T/$name.mender" >/dev/null 2>&1 || fail "mender-artifact write $name failed"
}

# validated PUB FILE: mender-artifact validate -k PUB says so, and read -k
# says the signature verified.
validated() {
	local out
	out=$(mender-artifact validate -k "$1" "$2" 2>&1) || { echo "  validate: $out" >&2; return 1; }
	echo "$out" | grep -q "validated successfully" || { echo "  validate: $out" >&2; return 1; }
	out=$(mender-artifact read -k "$1" "$2" 2>&1) || { echo "  read: $out" >&2; return 1; }
	echo "$out" | grep -q "signed and verified correctly" || { echo "  read: $out" >&2; return 1; }
}

# members FILE: the artifact's member names, in order, on one line.
members() {
	tar tf "$1" | tr '\n' ' '
}

# flip_member FILE MEMBER OUT: FILE with one byte of MEMBER's contents changed.
flip_member() {
	python3 - "$@" <<'PY'
import sys, tarfile
path, member, out = sys.argv[1:]
data = bytearray(open(path, "rb").read())
with tarfile.open(path) as t:
    m = t.getmember(member)
    data[m.offset_data + m.size // 2] ^= 1
open(out, "wb").write(data)
PY
}

artifact a

# --- RSA, imported: byte for byte what mender-artifact sign makes ----------------------------
openssl genrsa -traditional -out "$T/rsa.pem" 2048 2>/dev/null
mkdir "$K/mr"
cat "$T/rsa.pem" >"$K/mr/import"
echo pss >"$K/mr/padding"
attr_refused mr format mender
echo pkcs1 >"$K/mr/padding"
check "mr: with padding pkcs1, format mender is accepted" bash -c "echo mender >'$K/mr/format'"
attr_refused mr padding pss
attr_refused mr digest sha512
MR_PUB=$(pubkey mr)

cp "$T/a.mender" "$MNT/mr/a.mender"
check "cp a.mender returns with a.mender.signed on disk, and no .sig" \
	test -s "$MNT/mr/a.mender.signed" -a ! -e "$MNT/mr/a.mender.sig"
check "the signed artifact has manifest.sig right after manifest" \
	test "$(members "$MNT/mr/a.mender.signed")" = "version manifest manifest.sig header.tar.gz data/0000.tar.gz "
check "mender-artifact validate and read -k: signed and verified (RSA)" \
	validated "$MR_PUB" "$MNT/mr/a.mender.signed"
mender-artifact sign -k "$T/rsa.pem" -o "$T/ref.mender" "$T/a.mender" >/dev/null 2>&1 ||
	fail "mender-artifact sign failed"
check "a.mender.signed is byte for byte what mender-artifact sign -k makes with the same key" \
	cmp "$T/ref.mender" "$MNT/mr/a.mender.signed"
check "the unsigned artifact in the inbox is unchanged" cmp "$T/a.mender" "$MNT/mr/a.mender"

flip_member "$MNT/mr/a.mender.signed" data/0000.tar.gz "$T/bad-payload.mender"
check_fails "a changed payload fails mender-artifact's check" validated "$MR_PUB" "$T/bad-payload.mender"
flip_member "$MNT/mr/a.mender.signed" manifest "$T/bad-manifest.mender"
check_fails "a changed manifest fails mender-artifact's check" validated "$MR_PUB" "$T/bad-manifest.mender"
openssl genrsa -traditional -out "$T/other.pem" 2048 2>/dev/null
openssl pkey -in "$T/other.pem" -pubout -out "$T/other.pub.pem"
check_fails "another key's public key does not verify it" validated "$T/other.pub.pem" "$MNT/mr/a.mender.signed"

check "sigfs wait: a.mender's output is current and verifies" "$SIGFS" wait --timeout 10 "$MNT/mr/a.mender"

# --- ECDSA P-256, made on the soft backend -------------------------------------------------------
mkdir "$K/me"
check "me: algorithm ecdsa-p256" bash -c "echo ecdsa-p256 >'$K/me/algorithm'"
check "me: format mender" bash -c "echo mender >'$K/me/format'"
attr_refused me algorithm ecdsa-p384
attr_refused me algorithm ed25519
ME_PUB=$(pubkey me)
cp "$T/a.mender" "$MNT/me/a.mender"
check "mender-artifact validate and read -k: signed and verified (ECDSA P-256)" \
	validated "$ME_PUB" "$MNT/me/a.mender.signed"
check "manifest.sig holds 64 bytes, r||s, in base64" \
	test "$(tar xOf "$MNT/me/a.mender.signed" manifest.sig | base64 -d | wc -c)" = 64
check "the P-256 signature does not verify with the RSA key" \
	bash -c "! mender-artifact validate -k '$MR_PUB' '$MNT/me/a.mender.signed' >/dev/null 2>&1"
check "sigfs wait verifies the ECDSA output" "$SIGFS" wait --timeout 10 "$MNT/me/a.mender"

mkdir "$K/med"
check "med: ed25519" bash -c "echo ed25519 >'$K/med/algorithm'"
attr_refused med format mender

# --- what is not an unsigned Mender artifact of version 3: NAME.err -------------------------------
# err_has NAME TEXT: NAME.err (key mr) exists, says TEXT, and NAME.signed does not exist.
err_has() {
	test -e "$MNT/mr/$1.err" -a ! -e "$MNT/mr/$1.signed" && grep -q "$2" "$MNT/mr/$1.err"
}
cp "$MNT/mr/a.mender.signed" "$T/signed-again.mender"
cp "$T/signed-again.mender" "$MNT/mr/b.mender" 2>/dev/null || true
check "an artifact that is signed already gets b.mender.err saying so" err_has b.mender "signed already"
mender-artifact write rootfs-image -v 2 -t board -n rel-v2 -f "$T/a.img" -o "$T/v2.mender" >/dev/null 2>&1 ||
	fail "mender-artifact write -v 2 failed"
cp "$T/v2.mender" "$MNT/mr/v2.mender" 2>/dev/null || true
check "a version 2 artifact gets v2.mender.err naming the version" err_has v2.mender "version 2"
head -c 5000 /dev/urandom >"$T/junk.mender"
cp "$T/junk.mender" "$MNT/mr/junk.mender" 2>/dev/null || true
check "random bytes get junk.mender.err: not a Mender artifact" err_has junk.mender "not a Mender artifact"
(cd "$T" && tar cf other.mender a.img)
cp "$T/other.mender" "$MNT/mr/other.mender" 2>/dev/null || true
check "a tar file of something else gets other.mender.err: no version member" \
	err_has other.mender "not a Mender artifact"
gzip -c "$T/a.mender" >"$T/gz.mender"
cp "$T/gz.mender" "$MNT/mr/gz.mender" 2>/dev/null || true
check "a compressed artifact gets gz.mender.err" err_has gz.mender "not a Mender artifact"
echo "$(sha256sum <"$T/a.mender" | cut -d' ' -f1)  d.mender" >"$MNT/mr/d.mender.sha256" 2>/dev/null || true
check "a digest line gets d.mender.err: the output is the artifact itself" \
	bash -c "test -e '$MNT/mr/d.mender.err' && grep -q 'signed file itself' '$MNT/mr/d.mender.err'"
check "the key still signs after all that" bash -c "cp '$T/a.mender' '$MNT/mr/c.mender' && cmp '$T/ref.mender' '$MNT/mr/c.mender.signed'"

# --- 100 MB: streamed, never held in memory ---------------------------------------------------------
artifact big 100000000 --compression none
signs_flat mr "$T/big.mender" big.mender
mender-artifact sign -k "$T/rsa.pem" -o "$T/ref-big.mender" "$T/big.mender" >/dev/null 2>&1 ||
	fail "mender-artifact sign big failed"
check "  byte for byte mender-artifact sign's" cmp "$T/ref-big.mender" "$MNT/mr/big.mender.signed"
check "  and mender-artifact validates it" validated "$MR_PUB" "$MNT/mr/big.mender.signed"

# --- rewritten while its output is made: never an output over old or mixed bytes -----------------
# The format reads the artifact itself, not a private copy, and the kernel
# copies the payload into the output (decision 79). A writer copies the
# 100 MB artifact in as rw.mender; once its close() has begun and the status
# shows its job signing, another writer rewrites rw.mender with a.mender
# (if the job ended first, right after). A poller keeps every distinct
# rw.mender.signed it sees: each must be one of the two outputs
# mender-artifact makes (PKCS#1 v1.5 is deterministic; a mixed output would
# be neither), the last one a.mender's, and no rw.mender.err appears. A
# close() whose job was cut short says so (ECANCELED) instead of 0.
# rewrite_during_signing STATUS TARGET BIG NEW: "hit" when the rewrite came
# while the job ran and the first close() said ECANCELED, "close=0" when
# the job ended first, "late" when it was never seen running.
rewrite_during_signing() {
	python3 - "$@" <<'PY'
import errno, os, re, sys, threading, time
status, target, big, new = sys.argv[1:]
def queue():
    return re.search(r"^queue: (\d+) waiting, (\d+) signing", open(status).read(), re.M).groups()
end = time.time() + 60
while queue() != ("0", "0") and time.time() < end:
    time.sleep(0.01)
written, result = threading.Event(), {}
def writer():
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with open(big, "rb") as f:
        while chunk := f.read(1 << 20):
            os.write(fd, chunk)
    written.set()
    try:
        os.close(fd)
        result["close"] = 0
    except OSError as e:
        result["close"] = e.errno
t = threading.Thread(target=writer)
t.start()
written.wait()
seen = False
while t.is_alive() and not seen:
    seen = queue()[1] != "0"
with open(new, "rb") as f, open(target, "wb") as out:
    out.write(f.read())
t.join()
if not seen:
    print("late")
elif result["close"] == errno.ECANCELED:
    print("hit")
else:
    print("close=%d" % result["close"])
PY
}
hits=0
for round in 1 2 3 4; do
	rm -f "$T/stop-rw"
	poll_sigs "$T/poll-rw$round" "$T/stop-rw" cp "$MNT/mr/rw.mender.signed" &
	poller=$!
	at_exit "touch '$T/stop-rw'; wait $poller 2>/dev/null"
	how=$(rewrite_during_signing "$MNT/.ctl/status" "$MNT/mr/rw.mender" "$T/big.mender" "$T/a.mender")
	echo "# round $round: $how" >&2
	[ "$how" = hit ] && hits=$((hits + 1))
	check "round $round: rw.mender.signed is a.mender's, byte for byte mender-artifact sign's" \
		wait_until cmp "$T/ref.mender" "$MNT/mr/rw.mender.signed"
	touch "$T/stop-rw"
	wait $poller
	seen=0
	for f in "$T/poll-rw$round"/[0-9]*.sig; do
		[ -e "$f" ] || continue
		seen=$((seen + 1))
		check "round $round: output $(basename "$f") the poller saw is one of mender-artifact's two" \
			bash -c "cmp -s '$f' '$T/ref.mender' || cmp -s '$f' '$T/ref-big.mender'"
	done
	check "round $round: the poller saw an output ($seen)" test "$seen" -ge 1
	check "round $round: no rw.mender.err" test ! -e "$MNT/mr/rw.mender.err"
	rm -f "$MNT/mr/rw.mender" "$MNT/mr/rw.mender.signed"
done
check "fixture: the rewrite cut the 100 MB job short (its close said ECANCELED) in $hits of 4 rounds" \
	test "$hits" -ge 1
check "the log has no error for the jobs cut short" bash -c "! grep -q 'rw.mender' '$LOG'"
check "the daemon is still there and signs" \
	bash -c "cp '$T/a.mender' '$MNT/mr/after.mender' && cmp '$T/ref.mender' '$MNT/mr/after.mender.signed'"

# --- in a spool: sigfs wait verifies the signature, so a planted output is not taken ---------------
stop_sigfs
. "$(dirname "$0")/spoollib.sh"
start_sigfs --spool "$SPOOL"
check "the spool has mr's inbox" wait_until test -d "$SPOOL/mr"
cp "$T/a.mender" "$SPOOL/mr/s.mender"
check "a.mender copied into the spool's mr inbox gets s.mender.signed" wait_for "$SPOOL/mr/s.mender.signed" 20
check "  byte for byte mender-artifact sign's" cmp "$T/ref.mender" "$SPOOL/mr/s.mender.signed"
check "  sigfs wait verifies it with the spool's published key" \
	sh -c "'$SIGFS' wait -v '$SPOOL/mr/s.mender' | grep -q 'signature verified'"
# Another key's signed artifact, with the input's owner and mtime, put in its place.
mender-artifact sign -k "$T/other.pem" -o "$T/other-signed.mender" "$T/a.mender" >/dev/null 2>&1 ||
	fail "mender-artifact sign with the other key failed"
rm -f "$SPOOL/mr/s.mender.signed"
cp "$T/other-signed.mender" "$SPOOL/mr/s.mender.signed"
touch -r "$SPOOL/mr/s.mender" "$SPOOL/mr/s.mender.signed"
check "  another key's signed artifact planted as s.mender.signed is not taken: exit 3 after the timeout" \
	sh -c "'$SIGFS' wait --timeout 1 '$SPOOL/mr/s.mender' 2>'$T/wait.err'; test \$? -eq 3"
check "  saying it did not verify" grep -q "did not verify" "$T/wait.err"
stop_sigfs

done_testing
