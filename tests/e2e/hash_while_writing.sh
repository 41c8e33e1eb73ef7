#!/bin/bash
# Story: an artifact is hashed while it is being written, so a large copy is
# signed as soon as it is closed; when the writes do not come in order (seek,
# pwrite, two writers, append, rewrite in place) the daemon notices and reads
# the file again. Either way the signature covers exactly the bytes on disk.
. "$(dirname "$0")/lib.sh"

conf_set sigfs log_level debug
start_sigfs
make_key hw
make_key hw384
echo sha384 >"$MNT/.ctl/keys/hw384/digest"
IN=$MNT/hw

# hashed KIND MARK: since MARK the log says the digest came from KIND
# (stream: computed while written; read: the file was read again), and never the other.
hashed() {
	local kind=$1 mark=$2 yes no
	if [ "$kind" = stream ]; then
		yes="digest computed while the file was written"
		no="reading the file to hash it"
	else
		yes="reading the file to hash it"
		no="digest computed while the file was written"
	fi
	log_since "$mark" | grep -q "key hw[0-9]*: job [0-9]*: $yes" &&
		! log_since "$mark" | grep -q "$no"
}

# signed_as NAME LOCALFILE: NAME.sig exists in the inbox and verifies against
# LOCALFILE (the bytes we expect) and against what the mount serves.
signed_as() {
	test -s "$IN/$1.sig" && verify_raw hw "$2" "$IN/$1.sig" && cmp -s "$2" "$IN/$1"
}

# --- sequential copies: the digest is computed while the file is written ------------------
for spec in 1:1 4k:4096 1m1:1048577 50m:52428800; do
	name=seq-${spec%%:*}.bin
	head -c "${spec#*:}" /dev/urandom >"$T/$name"
	m=$(log_mark)
	check "cp $name (${spec#*:} bytes) returns with the .sig on disk" \
		bash -c "cp '$T/$name' '$IN/$name' && test -s '$IN/$name.sig'"
	check "$name: signature verifies" signed_as "$name" "$T/$name"
	check_fails "$name: signature does not verify other bytes" verify_raw hw "$T/hw.pub.pem" "$IN/$name.sig"
	check "$name: the log says the digest was computed while it was written" hashed stream "$m"
done

# The streamed digest is the key's digest, not always sha256.
m=$(log_mark)
cp "$T/seq-1m1.bin" "$MNT/hw384/seq.bin"
check "sha384 key: streamed signature verifies with sha384" \
	verify_raw hw384 "$T/seq-1m1.bin" "$MNT/hw384/seq.bin.sig" sha384
check "sha384 key: digest computed while written" hashed stream "$m"

# A streamed sequence that is not read back by the daemon: python writes
# small chunks in order with write().
python3 - "$T/chunks.bin" "$IN/chunks.bin" <<'PY'
import os, sys
data = os.urandom(3 * 1024 * 1024 + 7)
open(sys.argv[1], "wb").write(data)
with open(sys.argv[2], "wb", buffering=0) as f:
    for i in range(0, len(data), 12345):
        f.write(data[i:i + 12345])
PY
check "in-order writes of odd-sized chunks: signature verifies" signed_as chunks.bin "$T/chunks.bin"

# --- writes out of order: the file is read again --------------------------------------------
# Python writes 64 KiB chunks in shuffled order with pwrite.
m=$(log_mark)
python3 - "$T/shuf.bin" "$IN/shuf.bin" <<'PY'
import os, random, sys
data = os.urandom(2 * 1024 * 1024 + 100)
open(sys.argv[1], "wb").write(data)
offs = list(range(0, len(data), 65536))
random.shuffle(offs)
if offs[0] == 0:
    offs.append(offs.pop(0))
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
for o in offs:
    os.pwrite(fd, data[o:o + 65536], o)
os.close(fd)
PY
check "shuffled pwrite chunks: signature verifies" signed_as shuf.bin "$T/shuf.bin"
check "shuffled pwrite chunks: the file was read again" hashed read "$m"

# dd with seek: a hole first, then data.
head -c 300000 /dev/urandom >"$T/dd-src"
dd if="$T/dd-src" of="$T/seek.bin" bs=4096 seek=5 status=none
m=$(log_mark)
check "dd with seek=5 succeeds" dd if="$T/dd-src" of="$IN/seek.bin" bs=4096 seek=5 status=none
check "dd with seek: signature verifies (hole included)" signed_as seek.bin "$T/seek.bin"
check "dd with seek: the file was read again" hashed read "$m"

# The tail first, then the head.
m=$(log_mark)
python3 - "$T/tail.bin" "$IN/tail.bin" <<'PY'
import os, sys
data = os.urandom(1000003)
open(sys.argv[1], "wb").write(data)
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
h = len(data) // 2
os.pwrite(fd, data[h:], h)
os.pwrite(fd, data[:h], 0)
os.close(fd)
PY
check "tail written first: signature verifies" signed_as tail.bin "$T/tail.bin"
check "tail written first: the file was read again" hashed read "$m"

# Two writers on the same file: the second half through one descriptor, then
# the first half through another; only the last close signs.
m=$(log_mark)
check "two writers: the first close leaves no .sig, the last one signs" python3 - "$T/two.bin" "$IN/two.bin" <<'PY'
import os, sys
data = os.urandom(777777)
open(sys.argv[1], "wb").write(data)
a = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
b = os.open(sys.argv[2], os.O_WRONLY)
h = len(data) // 3
os.pwrite(b, data[h:], h)
os.close(b)
if os.path.exists(sys.argv[2] + ".sig"):
    sys.exit("signed while a writer still had it open")
os.pwrite(a, data[:h], 0)
os.close(a)
if not os.path.exists(sys.argv[2] + ".sig"):
    sys.exit("no .sig after the last close")
PY
check "two writers: signature verifies" signed_as two.bin "$T/two.bin"
check "two writers: the file was read again" hashed read "$m"

# Reopen and append: the old signature goes, the new one covers both parts.
head -c 500000 /dev/urandom >"$T/app1"
head -c 70000 /dev/urandom >"$T/app2"
cp "$T/app1" "$IN/app.bin"
check "append: first version signed" signed_as app.bin "$T/app1"
cp "$IN/app.bin.sig" "$T/app.sig.old"
m=$(log_mark)
check "append with >> returns with the new .sig" bash -c "cat '$T/app2' >> '$IN/app.bin' && test -s '$IN/app.bin.sig'"
cat "$T/app1" "$T/app2" >"$T/app.all"
check "append: new signature verifies the whole file" signed_as app.bin "$T/app.all"
check_fails "append: new signature does not verify the first part alone" verify_raw hw "$T/app1" "$IN/app.bin.sig"
check "append: the signature was replaced" bash -c "! cmp -s '$T/app.sig.old' '$IN/app.bin.sig'"
check "append: the file was read again" hashed read "$m"

# A rewrite in place without truncation: the bytes in the middle change.
head -c 400000 /dev/urandom >"$T/rw.bin"
cp "$T/rw.bin" "$IN/rw.bin"
m=$(log_mark)
python3 - "$T/rw.bin" "$IN/rw.bin" <<'PY'
import sys
patch = b"PATCHED!" * 100
for p in sys.argv[1:]:
    with open(p, "r+b") as f:
        f.seek(1000)
        f.write(patch)
PY
check "rewrite in place: signature verifies the patched bytes" signed_as rw.bin "$T/rw.bin"
check "rewrite in place: the file was read again" hashed read "$m"

# Rewrite from the start without truncation (offset 0, shorter than the file):
# sequential from 0, but the old tail stays, so the stream cannot be used.
head -c 300000 /dev/urandom >"$T/ow.bin"
cp "$T/ow.bin" "$IN/ow.bin"
m=$(log_mark)
head -c 1000 /dev/urandom >"$T/ow-head"
dd if="$T/ow-head" of="$T/ow.bin" conv=notrunc status=none
check "overwrite of the head without truncation succeeds" \
	dd if="$T/ow-head" of="$IN/ow.bin" conv=notrunc status=none
check "head overwritten: signature covers the new head and the old tail" signed_as ow.bin "$T/ow.bin"
check "head overwritten: the file was read again" hashed read "$m"

# --- truncated and rewritten: the new content is what is signed ---------------------------------
head -c 900000 /dev/urandom >"$T/tr-old"
head -c 123456 /dev/urandom >"$T/tr-new"
cp "$T/tr-old" "$IN/tr.bin"
check "truncate: old content signed" signed_as tr.bin "$T/tr-old"
m=$(log_mark)
check "cp over the file (O_TRUNC) returns with a .sig" bash -c "cp '$T/tr-new' '$IN/tr.bin' && test -s '$IN/tr.bin.sig'"
check "cp over: the new content is signed" signed_as tr.bin "$T/tr-new"
check_fails "cp over: the old content no longer verifies" verify_raw hw "$T/tr-old" "$IN/tr.bin.sig"
check "cp over: a truncated file is hashed while written again" hashed stream "$m"

# ftruncate(0) on an open descriptor, then new bytes.
head -c 654321 /dev/urandom >"$T/ft-new"
m=$(log_mark)
python3 - "$T/ft-new" "$IN/tr.bin" <<'PY'
import sys
new = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "r+b") as f:
    f.truncate(0)
    f.write(new)
PY
check "ftruncate(0) and rewrite: the new content is signed" signed_as tr.bin "$T/ft-new"
check_fails "ftruncate(0) and rewrite: the previous content no longer verifies" verify_raw hw "$T/tr-new" "$IN/tr.bin.sig"

# truncate(1) to a smaller size, with no writer open: the shorter file is signed.
head -c 5000 "$T/ft-new" >"$T/ft-short"
check "truncate -s 5000 succeeds" truncate -s 5000 "$IN/tr.bin"
check "truncate -s: a new .sig follows" wait_for "$IN/tr.bin.sig" 30
check "truncate -s: the shortened content is signed" signed_as tr.bin "$T/ft-short"

check "the daemon still serves" mountpoint -q "$MNT"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
