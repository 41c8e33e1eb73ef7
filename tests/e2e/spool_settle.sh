#!/bin/bash
# Story: the spool with settle_ms (docs/spool.md, decision 69), on the local
# file system, without NFS: a writer that closes in the middle of its file
# and goes on writing (what nfs-ganesha's fd cache does to an NFSv3 writer,
# tests/e2e/spool_nfs.sh) gets one signature, over the finished file, about
# settle_ms after its last write; writes through a descriptor held open bring
# no event but still hold the signature back (the spool looks at the ctime);
# an mtime set back with touch -d does not make a file look settled; and a
# poller never sees a .sig over a prefix.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/spoollib.sh"

SETTLE_MS=1000
start_sigfs --spool "$SPOOL"
make_key probe
make_key st ed25519
check "the spool has the key's directory" wait_until test -d "$SPOOL/st"
save_keys probe st
stop_sigfs
conf_set sigfs settle_ms "$SETTLE_MS"
start_spool_only --spool "$SPOOL"
IN=$SPOOL/st

# signs NAME: the number of audit sign lines of key st for NAME.
signs() {
	awk -v n="name=$1" '$3 == "sign" && $4 == "key=st" && $(NF-1) == n' "$STATE/audit.log" | wc -l
}

# A poller keeps every distinct .sig it sees in the inbox (by content) in
# $T/seen.d/K.sig and lists "NAME TIME FILE" in $T/seen, until $T/stop-poll exists.
poll_sigs() {
	mkdir -p "$T/seen.d"
	python3 - "$IN" "$T/seen" "$T/stop-poll" "$T/seen.d" <<'PY' &
import hashlib, os, sys, time
inbox, out, stop, keep = sys.argv[1:5]
seen = {}
while not os.path.exists(stop):
    for n in os.listdir(inbox):
        if n.endswith(".sig"):
            try:
                d = open(os.path.join(inbox, n), "rb").read()
            except OSError:
                continue
            seen.setdefault((n, hashlib.sha256(d).hexdigest()), (time.time(), d))
    time.sleep(0.02)
with open(out, "w") as f:
    for k, ((n, h), (t, d)) in enumerate(sorted(seen.items(), key=lambda kv: kv[1][0])):
        open("%s/%d.sig" % (keep, k), "wb").write(d)
        f.write("%s %.3f %s/%d.sig\n" % (n, t, keep, k))
PY
	POLLER=$!
}
at_exit 'touch "$T/stop-poll"; [ -z "${POLLER:-}" ] || wait "$POLLER" 2>/dev/null'
rm -f "$T/stop-poll"
poll_sigs

# --- closes in the middle, and writes through a descriptor held open -------------------------
head -c 40000 /dev/urandom >"$T/w.bin"
python3 - "$T/w.bin" "$IN/w.bin" "$T/w.last" <<'PY'
import os, sys, time
src, dst, last = sys.argv[1:4]
data = open(src, "rb").read()
# 1) a first part, closed (IN_CLOSE_WRITE in the middle of the file)
with open(dst, "wb") as f:
    f.write(data[:10000])
# 2) reopened: written 300 ms apart through one descriptor held open (no event)
time.sleep(0.3)
fd = os.open(dst, os.O_WRONLY | os.O_APPEND)
for i in range(1, 4):
    time.sleep(0.3)
    os.write(fd, data[i * 10000:(i + 1) * 10000])
open(last, "w").write("%.3f\n" % time.time())
time.sleep(0.3)
os.close(fd)
PY
check "the file written in parts is signed" signed_over st "$T/w.bin" "$IN/w.bin.sig" 20
check "  once: one audit line for w.bin" test "$(signs w.bin)" -eq 1
sig_at=$(python3 -c "import os; print('%.3f' % os.stat('$IN/w.bin.sig').st_ctime)")
check "  and not before settle_ms after the last write ($(cat "$T/w.last") + 1 s <= $sig_at)" \
	python3 -c "import sys; sys.exit(not ($sig_at + 0.05 >= $(cat "$T/w.last") + $SETTLE_MS / 1000))"

# --- an mtime set back does not make a file look quiet ---------------------------------------------
# Writes 600 ms apart for longer than settle_ms, through a descriptor held
# open: an mtime-based quiet time would sign a prefix at 1 s.
head -c 40000 /dev/urandom >"$T/t.bin"
python3 - "$T/t.bin" "$IN/t.bin" <<'PY'
import os, sys, time
src, dst = sys.argv[1:3]
data = open(src, "rb").read()
with open(dst, "wb") as f:
    f.write(data[:10000])
fd = os.open(dst, os.O_WRONLY | os.O_APPEND)
for i in range(1, 4):
    # the mtime says 2001 (os.utime, as touch -d): only the ctime is the truth
    os.utime(dst, (978307200, 978307200))
    time.sleep(0.6)
    os.write(fd, data[i * 10000:(i + 1) * 10000])
    os.utime(dst, (978307200, 978307200))
os.close(fd)
PY
check "a file whose mtime is set back while written is signed over all of it" \
	signed_over st "$T/t.bin" "$IN/t.bin.sig" 20
check "  once" test "$(signs t.bin)" -eq 1

# --- a rename in is settled too (the start of a quiet time is the event) -----------------------------
head -c 5000 /dev/urandom >"$T/r.bin"
cp "$T/r.bin" "$IN/.r.tmp"
mv "$IN/.r.tmp" "$IN/r.bin"
check "a file renamed in is signed" signed_over st "$T/r.bin" "$IN/r.bin.sig" 20

touch "$T/stop-poll"
wait "$POLLER"
POLLER=
check "the poller saw the signatures" test -s "$T/seen"
# Every .sig the poller ever saw verifies over the finished file of its name.
every_seen_verifies() {
	local name t file
	while read -r name t file; do
		sverify st "$T/${name%.sig}" "$file" || {
			echo "  $name seen at $t does not verify over the finished file" >&2
			return 1
		}
	done <"$T/seen"
}
check "every .sig the poller saw verifies over the finished file (no prefix was ever signed)" \
	every_seen_verifies
# --- a rewrite takes the old signature away at once --------------------------------------------
# Its old outputs go when the rewrite's event comes, settle_ms before the new
# signature: no poller takes the old one for the new content meanwhile. (The
# spool looks for outputs only under names it saw or placed one for,
# decision 81: this one it placed.)
head -c 3000 /dev/urandom >"$T/f1.bin"
head -c 3000 /dev/urandom >"$T/f2.bin"
cp "$T/f1.bin" "$IN/f.bin"
check "f.bin is signed" signed_over st "$T/f1.bin" "$IN/f.bin.sig" 20
cp "$T/f2.bin" "$IN/f.bin"
start=$(date +%s%N)
gone_ms=
for _ in $(seq 1 400); do
	[ -e "$IN/f.bin.sig" ] || { gone_ms=$((($(date +%s%N) - start) / 1000000)); break; }
	sleep 0.002
done
check "  a rewrite removes its .sig at once (gone after ${gone_ms:-never} ms; settle_ms $SETTLE_MS)" \
	test -n "$gone_ms" -a "${gone_ms:-0}" -lt $((SETTLE_MS / 2))
check "  and the new one is over the new content" signed_over st "$T/f2.bin" "$IN/f.bin.sig" 20
check "the spool stops cleanly" stop_spool_only
done_testing
