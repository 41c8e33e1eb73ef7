#!/bin/bash
# Story: spool mode (docs/spool.md). `sigfsd --spool DIR` signs in DIR/KEY/,
# a plain directory watched with inotify, by the mount's naming rules: a file
# closed after writing (cp) or renamed in, a digest line, a request; dotfiles
# are ignored, bad input gets NAME.err, a rewrite replaces the output, files
# that arrived while the daemon was down are signed at start. The daemon is
# root in a directory users write: symlinks, FIFOs and hard links are refused
# and never followed, a planted x.sig (or a symlink named so) is replaced, and
# a file whose owner may not write the inbox is refused. Keys are made through
# a mount's .ctl; the spool makes their inboxes. The daemon runs as a spool
# alone through spoollib.sh (start_spool_only: ready once its probe key signs;
# stop_spool_only: SIGTERM, exit status 0).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/spoollib.sh"

SIGFS=${SIGFS:?set SIGFS to the sigfs client}
SPOOLERS=sigfs-e2e-spoolers
ensure_group "$SPOOLERS"
for u in alice bob dave; do ensure_user "$u"; done
usermod -a -G "$SPOOLERS" alice
usermod -a -G "$SPOOLERS" dave
gpasswd -d bob "$SPOOLERS" >/dev/null 2>&1 || true

# spoollib.sh made $SPOOL for the other stories: here the daemon must make it.
rmdir "$SPOOL"

# serves_since MARK: the log says, after its line MARK, that the spool is served.
serves_since() {
	log_since "$1" | grep -q 'serving the spool'
}

# ed_ok PUB FILE SIG / ec_ok PUB FILE SIG: openssl verifies a raw signature.
ed_ok() {
	openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$2" -sigfile "$3" >/dev/null
}
ec_ok() {
	openssl dgst -sha256 -verify "$1" -signature "$3" "$2" >/dev/null
}
# all_rsa_ok PUB DIR N: fI.bin.sig in DIR verifies fI.bin for I = 1..N (RSA-PSS, sha256).
all_rsa_ok() {
	local i
	for i in $(seq 1 "$3"); do
		openssl dgst -sha256 -verify "$1" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2 \
			-signature "$2/f$i.bin.sig" "$2/f$i.bin" >/dev/null || {
			echo "  f$i.bin: no valid signature" >&2
			return 1
		}
	done
}

# --- with a mount: keys made in .ctl get their spool inboxes -----------------------
start_sigfs --spool "$SPOOL"
make_key rel ed25519
make_key ec
make_key slow rsa-4096
make_key probe
check "the spool directory was made, root's, 0755" stat_is "$SPOOL" "root:root 755"
check "the new key rel gets DIR/rel/" wait_until test -d "$SPOOL/rel"
check "the new key ec gets DIR/ec/" wait_until test -d "$SPOOL/ec"
check "DIR/rel/ is made like a mount's inbox: root, the inbox group, mode 1770" \
	stat_is "$SPOOL/rel" "root:$ADMIN_GROUP 1770"
save_keys probe
cp "$MNT/.ctl/keys/rel/pubkey.pem" "$T/rel.pem"
cp "$MNT/.ctl/keys/ec/pubkey.pem" "$T/ec.pem"
cp "$MNT/.ctl/keys/slow/pubkey.pem" "$T/slow.pem"
echo "through the mount too" >"$T/m.txt"
cp "$T/m.txt" "$SPOOL/rel/m.txt"
check "with a mount, the spool signs as well" wait_for "$SPOOL/rel/m.txt.sig" 10
check "  and openssl verifies it" ed_ok "$T/rel.pem" "$T/m.txt" "$SPOOL/rel/m.txt.sig"
# The keys' public side, for `sigfs wait` to verify with (spool/pubdir.c).
check "DIR/.keys/rel/ is the daemon's: root, 0755, under DIR/.keys (0755)" \
	sh -c "stat -c '%U:%G %a' '$SPOOL/.keys' '$SPOOL/.keys/rel' | sort -u | grep -qx 'root:root 755'"
check "  its pubkey.pem is the key's, mode 0444" \
	sh -c "cmp -s '$SPOOL/.keys/rel/pubkey.pem' '$T/rel.pem' && test \"\$(stat -c '%U %a' '$SPOOL/.keys/rel/pubkey.pem')\" = 'root 444'"
check "  format, digest and algorithm are those of .ctl" \
	sh -c "for f in format digest algorithm; do cmp -s '$SPOOL/.keys/rel/'\$f '$MNT/.ctl/keys/rel/'\$f || exit 1; done"
check "  nothing an admin alone may read is published, nor other formats' files" \
	sh -c "! ls '$SPOOL/.keys/rel' | grep -qE '^(count|backend|last-error|import|cert.pgp|cert.pem|pubkey.ssh)\$'"
echo cms >"$MNT/.ctl/keys/ec/format"
check "a format change reaches .keys/ec/ (format cms, and its cert.pem)" \
	wait_until sh -c "grep -qx cms '$SPOOL/.keys/ec/format' && cmp -s '$SPOOL/.keys/ec/cert.pem' '$MNT/.ctl/keys/ec/cert.pem'"
echo raw >"$MNT/.ctl/keys/ec/format"
check "  and back to raw: cert.pem is gone again" \
	wait_until sh -c "grep -qx raw '$SPOOL/.keys/ec/format' && test ! -e '$SPOOL/.keys/ec/cert.pem'"
# kmod signs with cert.pem without rendering a file of its own: published too,
# and a module signed in the spool verifies with .keys/ec/ (sigfs wait's trust).
echo kmod >"$MNT/.ctl/keys/ec/format"
check "format kmod publishes the certificate it signs with" \
	wait_until sh -c "grep -qx kmod '$SPOOL/.keys/ec/format' && cmp -s '$SPOOL/.keys/ec/cert.pem' '$MNT/.ctl/keys/ec/cert.pem'"
make_module spooled
cp "$T/spooled.ko" "$SPOOL/ec/spooled.ko"
check "  a module copied into the spool gets spooled.ko.signed" wait_for "$SPOOL/ec/spooled.ko.signed" 10
check "  which sigfs wait verifies with .keys/ec/" "$SIGFS" wait --timeout 10 "$SPOOL/ec/spooled.ko"
check "  and openssl cms too" kmod_ok "$SPOOL/ec/spooled.ko.signed" "$SPOOL/.keys/ec/cert.pem" "$T/spooled.ko"
rm -f "$SPOOL/ec/spooled.ko" "$SPOOL/ec/spooled.ko.signed"
echo raw >"$MNT/.ctl/keys/ec/format"
check "  back to raw" wait_until grep -qx raw "$SPOOL/.keys/ec/format"
stop_sigfs

# Admins give the inboxes to the signers (chgrp, as on the mount).
chgrp "$SPOOLERS" "$SPOOL/rel" "$SPOOL/ec"

# --- files that arrived while no daemon ran -------------------------------------------
head -c 100000 /dev/urandom >"$T/early.bin"
cp "$T/early.bin" "$SPOOL/rel/early.bin"
chown alice "$SPOOL/rel/early.bin"
# Outputs of other formats (and an .err) left beside files that have none of
# this key's: stale, removed when the start-up scan signs the files. The scan
# lists names in hash order, so some of these come before their file and some
# after; the daemon must know of all of them before it signs the first.
for i in $(seq 1 12); do
	echo "early $i" >"$SPOOL/rel/e$i.bin"
	for sfx in p7s minisig err; do echo planted >"$SPOOL/rel/e$i.bin.$sfx"; done
done
# Older than the files: not taken for outputs of their content (decision 63).
touch -d @1000000000 "$SPOOL"/rel/e*.bin.*

mark=$(log_mark)
start_spool_only --spool "$SPOOL"
check "the spool alone signs (probe) and says it serves the spool" serves_since "$mark"
check "a file present at start is signed" wait_for "$SPOOL/rel/early.bin.sig" 10
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/early.bin" "$SPOOL/rel/early.bin.sig"
check "  the signature belongs to the file's owner and group, mode 0444" \
	stat_is "$SPOOL/rel/early.bin.sig" "alice:root 444"
check "  and has the file's mtime (sigfs wait's contract)" \
	test "$(stat -c %y "$SPOOL/rel/early.bin.sig")" = "$(stat -c %y "$SPOOL/rel/early.bin")"
check "the 12 files present at start with other formats' outputs are signed" \
	wait_until sh -c 'for i in $(seq 1 12); do test -e "$1/e$i.bin.sig" || exit 1; done' - "$SPOOL/rel"
check "  and not one of their 36 stale outputs (.p7s, .minisig, .err) is left" \
	prints_nothing find "$SPOOL/rel" -name 'e*.bin.p7s' -o -name 'e*.bin.minisig' -o -name 'e*.bin.err'
old_ino=$(stat -c %i "$SPOOL/rel/m.txt.sig")

# --- a file written where outputs of other formats were planted ---------------------------
# The ec inbox has had no such output: the events of the planted names are
# what tells the daemon to look for them when o.bin arrives.
for sfx in asc minisig err; do as alice sh -c "echo planted >'$SPOOL/ec/o.bin.$sfx'"; done
as alice sh -c "echo 'o content' >'$SPOOL/ec/o.bin'"
check "o.bin, written after its planted .asc, .minisig and .err, is signed" wait_for "$SPOOL/ec/o.bin.sig" 10
check "  and the planted outputs are gone" \
	prints_nothing find "$SPOOL/ec" -name 'o.bin.asc' -o -name 'o.bin.minisig' -o -name 'o.bin.err'

# --- cp (close after writing), as a member of the inbox's group ----------------------------
head -c 5000 /dev/urandom >"$T/a.bin"
chmod 644 "$T/a.bin"
as alice cp "$T/a.bin" "$SPOOL/rel/a.bin"
check "cp as alice: a.bin.sig appears" wait_for "$SPOOL/rel/a.bin.sig" 10
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/a.bin" "$SPOOL/rel/a.bin.sig"
check "  it belongs to alice" stat_is "$SPOOL/rel/a.bin.sig" "alice:$(id -gn alice) 444"
check_fails "  and does not verify other bytes" ed_ok "$T/rel.pem" "$T/early.bin" "$SPOOL/rel/a.bin.sig"
check "sigfs wait accepts the spool's output (verified with DIR/.keys/rel/)" \
	sh -c "'$SIGFS' wait -v '$SPOOL/rel/a.bin' | grep -qx '$SPOOL/rel/a.bin: $SPOOL/rel/a.bin.sig (signature verified)'"
# A planted output with the file's owner and mtime (what sigfs wait took for
# sigfs's before it verified): the owner swaps the signature for junk.
as alice sh -c "rm -f '$SPOOL/rel/a.bin.sig' && head -c 64 /dev/urandom >'$SPOOL/rel/a.bin.sig' &&
	touch -r '$SPOOL/rel/a.bin' '$SPOOL/rel/a.bin.sig'"
check "  a planted a.bin.sig of alice with a.bin's mtime is not taken: exit 3 after the timeout" \
	sh -c "'$SIGFS' wait --timeout 1 '$SPOOL/rel/a.bin' 2>'$T/wait.err'; test \$? -eq 3"
check "  saying an output was there but did not verify" grep -q "did not verify" "$T/wait.err"
as alice cp "$T/a.bin" "$SPOOL/rel/a.bin"
check "  a.bin written again is signed again, and sigfs wait accepts it" "$SIGFS" wait "$SPOOL/rel/a.bin"
check "  openssl agrees" ed_ok "$T/rel.pem" "$T/a.bin" "$SPOOL/rel/a.bin.sig"

# --- rename into the inbox ------------------------------------------------------------
head -c 3000 /dev/urandom >"$T/r.bin"
as alice sh -c "cat '$T/r.bin' >'$SPOOL/rel/.r.bin.tmp' && mv '$SPOOL/rel/.r.bin.tmp' '$SPOOL/rel/r.bin'"
check "a file renamed in is signed" wait_for "$SPOOL/rel/r.bin.sig" 10
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/r.bin" "$SPOOL/rel/r.bin.sig"
check "  its dot name before the rename got nothing" \
	test ! -e "$SPOOL/rel/.r.bin.tmp.sig" -a ! -e "$SPOOL/rel/.r.bin.tmp.err"

# --- dotfiles are ignored -----------------------------------------------------------------
echo hidden >"$SPOOL/rel/.hidden"
echo marker >"$SPOOL/rel/after-hidden"
wait_for "$SPOOL/rel/after-hidden.sig" 10
check "a dotfile gets no output" test ! -e "$SPOOL/rel/.hidden.sig" -a ! -e "$SPOOL/rel/.hidden.err"

# --- a digest line and a request (ECDSA key) ---------------------------------------------------
head -c 7000 /dev/urandom >"$T/d.bin"
(cd "$T" && sha256sum d.bin) >"$SPOOL/ec/d.bin.sha256"
check "a digest line is signed as its file" wait_for "$SPOOL/ec/d.bin.sig" 10
check "  openssl verifies it over d.bin" ec_ok "$T/ec.pem" "$T/d.bin" "$SPOOL/ec/d.bin.sig"
"$SIGFS" request "$T/d.bin" --format raw --digest sha256 -o "$T/q.sigreq"
cp "$T/q.sigreq" "$SPOOL/ec/q.sigreq"
check "a request gives q.sig" wait_for "$SPOOL/ec/q.sig" 10
check "  openssl verifies it over the requested file" ec_ok "$T/ec.pem" "$T/d.bin" "$SPOOL/ec/q.sig"

# --- bad input: NAME.err -----------------------------------------------------------------
: >"$SPOOL/rel/empty.bin"
check "an empty file gets empty.bin.err" wait_for "$SPOOL/rel/empty.bin.err" 10
check "  saying why" grep -q "empty" "$SPOOL/rel/empty.bin.err"
echo "0123" >"$SPOOL/ec/bad.bin.sha256"
check "a bad digest line gets bad.bin.err" wait_for "$SPOOL/ec/bad.bin.err" 10
check "  saying why" grep -q "64 hex digits" "$SPOOL/ec/bad.bin.err"
check "  and no signature" test ! -e "$SPOOL/ec/bad.bin.sig"

# --- a rewrite replaces the output ----------------------------------------------------------
echo "first content" >"$T/w1"
echo "second, longer content" >"$T/w2"
cp "$T/w1" "$SPOOL/rel/w.txt"
wait_for "$SPOOL/rel/w.txt.sig" 10
check "the first content is signed" ed_ok "$T/rel.pem" "$T/w1" "$SPOOL/rel/w.txt.sig"
cp "$T/w2" "$SPOOL/rel/w.txt"
check "after a rewrite the signature is over the new content" \
	wait_until ed_ok "$T/rel.pem" "$T/w2" "$SPOOL/rel/w.txt.sig"
check "  and has the new mtime" \
	wait_until sh -c "test \"\$(stat -c %y '$SPOOL/rel/w.txt.sig')\" = \"\$(stat -c %y '$SPOOL/rel/w.txt')\""

# --- what is refused, and never followed -------------------------------------------------------
echo "secret" >"$T/secret"
chmod 600 "$T/secret"
ln -s "$T/secret" "$SPOOL/rel/link"
check "a symlink gets link.err" wait_for "$SPOOL/rel/link.err" 10
check "  saying symbolic links are refused" grep -q "symbolic links are refused" "$SPOOL/rel/link.err"
check "  and no signature" test ! -e "$SPOOL/rel/link.sig"
mkfifo "$SPOOL/rel/fifo"
check "a FIFO gets fifo.err" wait_for "$SPOOL/rel/fifo.err" 10
check "  saying it is not a regular file" grep -q "not a regular file" "$SPOOL/rel/fifo.err"
head -c 100 /dev/urandom >"$T/alice-file"
chown alice "$T/alice-file"
as alice ln "$T/alice-file" "$SPOOL/rel/hard"
check "a hard link gets hard.err" wait_for "$SPOOL/rel/hard.err" 10
check "  saying hard links are refused" grep -q "hard links are refused" "$SPOOL/rel/hard.err"
check "  and no signature" test ! -e "$SPOOL/rel/hard.sig"
check "the linked file was not changed" stat_is "$T/alice-file" "alice:root 644"
# A file of a user who may not write the inbox, moved in by someone who may.
head -c 100 /dev/urandom >"$T/bobs"
chown bob "$T/bobs"
mv "$T/bobs" "$SPOOL/rel/bobs"
check "a file of bob (no write access to the inbox) gets bobs.err" wait_for "$SPOOL/rel/bobs.err" 10
check "  saying its owner may not write there" grep -q "may not write" "$SPOOL/rel/bobs.err"
check "  and no signature" test ! -e "$SPOOL/rel/bobs.sig"
check "the secret behind the symlink is untouched" stat_is "$T/secret" "root:root 600"
check "  and holds what it held" grep -qx secret "$T/secret"

# --- a burst: refused names among many files, read from inotify together -------------------------
# A creation that a later event of the same read brings complete (a close, a
# rename) is not looked at by itself: that event looks (decision 81). A
# symlink, FIFO or hard link made in the middle of a burst has no such event
# and must still be refused; every file is signed once.
python3 - "$SPOOL/rel" "$T/alice-file" <<'PY'
import os, sys
inbox, target = sys.argv[1:3]
for i in range(300):
    with open(os.path.join(inbox, "burst%d.bin" % i), "wb") as f:
        f.write(b"burst %d\n" % i)
    if i % 30 == 7:
        os.symlink(target, os.path.join(inbox, "burst-link%d" % i))
    if i % 30 == 17:
        os.mkfifo(os.path.join(inbox, "burst-fifo%d" % i))
    if i % 30 == 27:
        os.link(target, os.path.join(inbox, "burst-hard%d" % i))
PY
# burst_has SUFFIX N: there are N burst outputs with SUFFIX (counted anew at each call).
burst_has() {
	test "$(find "$SPOOL/rel" -maxdepth 1 -name "burst*$1" | wc -l)" -eq "$2"
}
check "a burst of 300 files: every one gets its .sig" wait_until burst_has .bin.sig 300
check "  and each verifies over its own file" sh -c '
	for i in $(seq 0 299); do
		openssl pkeyutl -verify -pubin -inkey "$1" -rawin -in "$2/burst$i.bin" \
			-sigfile "$2/burst$i.bin.sig" >/dev/null || exit 1
	done' sh "$T/rel.pem" "$SPOOL/rel"
check "  each signed once (300 audit lines, 300 names)" test \
	"$(grep -o " sign key=rel .* name=burst[0-9]*\.bin " "$STATE/audit.log" | grep -o "name=.*" | sort -u | wc -l) $(grep -c " sign key=rel .* name=burst[0-9]*\.bin " "$STATE/audit.log")" = "300 300"
check "  the 10 symlinks, 10 FIFOs and 10 hard links among them each get .err" \
	wait_until burst_has .err 30
check "  saying why" test "$(grep -l "symbolic links are refused" "$SPOOL"/rel/burst-link*.err | wc -l) \
$(grep -l "not a regular file" "$SPOOL"/rel/burst-fifo*.err | wc -l) \
$(grep -l "hard links are refused" "$SPOOL"/rel/burst-hard*.err | wc -l)" = "10 10 10"
check "  and none of them a signature" prints_nothing find "$SPOOL/rel" -maxdepth 1 -name "burst-*.sig"

# --- planted outputs are replaced, never followed ------------------------------------------------
echo "victim" >"$T/victim"
as alice ln -s "$T/victim" "$SPOOL/rel/p.bin.sig"
as alice sh -c "echo forged >'$SPOOL/rel/q.bin.sig'"
head -c 2000 /dev/urandom >"$T/p.bin"
chmod 644 "$T/p.bin"
as alice cp "$T/p.bin" "$SPOOL/rel/p.bin"
as alice cp "$T/p.bin" "$SPOOL/rel/q.bin"
check "a planted symlink p.bin.sig is replaced by a signature" \
	wait_until sh -c "test -f '$SPOOL/rel/p.bin.sig' && ! test -L '$SPOOL/rel/p.bin.sig'"
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/p.bin" "$SPOOL/rel/p.bin.sig"
check "  the symlink's target is untouched" grep -qx victim "$T/victim"
check "a planted regular q.bin.sig is replaced" wait_until ed_ok "$T/rel.pem" "$T/p.bin" "$SPOOL/rel/q.bin.sig"

# --- a shared sticky inbox: a member cannot take another member's outputs -------------------------
head -c 4000 /dev/urandom >"$T/s.bin"
chmod 644 "$T/s.bin"
as alice cp "$T/s.bin" "$SPOOL/ec/s.bin"
wait_for "$SPOOL/ec/s.bin.sig" 10
check "alice's s.bin is signed in the shared inbox" ec_ok "$T/ec.pem" "$T/s.bin" "$SPOOL/ec/s.bin.sig"
mark=$(log_mark)
head -c 4000 /dev/urandom >"$T/other.bin"
(cd "$T" && sha256sum other.bin) | sed 's/other.bin/s.bin/' >"$T/s.bin.sha256"
chmod 644 "$T/s.bin.sha256"
as dave cp "$T/s.bin.sha256" "$SPOOL/ec/s.bin.sha256"
echo marker >"$SPOOL/ec/after-dave"
wait_for "$SPOOL/ec/after-dave.sig" 10
check "dave's s.bin.sha256 (sticky inbox, alice's outputs) is refused: the log says why" \
	sh -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'refused: key ec: s.bin.sha256 of uid $(id -u dave)'"
check "  alice's s.bin.sig stays, over alice's bytes" ec_ok "$T/ec.pem" "$T/s.bin" "$SPOOL/ec/s.bin.sig"
check "  and is still alice's" stat_is "$SPOOL/ec/s.bin.sig" "alice:$(id -gn alice) 444"
check "  no s.bin.err" test ! -e "$SPOOL/ec/s.bin.err"

# --- a chmod while the file is read: no event follows, so the job starts again ------------------
# Ed25519 reads and copies the whole file, then signs the copy: a wide window. The
# chmod must come once the engine reads (relatime moves the atime past the mtime at the
# first read) and before the signature is placed; tried again if the signer was faster.
head -c 300M /dev/urandom >"$T/big.bin"
chmodded=no
for _ in 1 2 3; do
	rm -f "$SPOOL/rel/big.bin" "$SPOOL/rel/big.bin.sig"
	cp "$T/big.bin" "$SPOOL/rel/big.bin"
	wait_until python3 -c "import os, sys; s = os.stat(sys.argv[1]); sys.exit(s.st_atime_ns < s.st_mtime_ns)" \
		"$SPOOL/rel/big.bin"
	chmod 640 "$SPOOL/rel/big.bin"
	[ -e "$SPOOL/rel/big.bin.sig" ] || {
		chmodded=yes
		break
	}
done
check "  (the chmod came while the file was read)" test "$chmodded" = yes
check "a file chmod'ed while it was read is still signed" wait_for "$SPOOL/rel/big.bin.sig" 60
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/big.bin" "$SPOOL/rel/big.bin.sig"
rm -f "$T/big.bin" "$SPOOL/rel/big.bin" "$SPOOL/rel/big.bin.sig"

# --- the spool goes on after all that, and stops cleanly ---------------------------------------------
echo "still here" >"$T/last"
cp "$T/last" "$SPOOL/rel/last"
check "the daemon still signs" wait_for "$SPOOL/rel/last.sig" 10
check "  openssl verifies it" ed_ok "$T/rel.pem" "$T/last" "$SPOOL/rel/last.sig"
check "the audit log has a line for the spool's signature" grep -q "last" "$STATE/audit.log"
check "m.txt.sig of the first run was left alone (up to date: not signed again at start)" \
	test "$(stat -c %i "$SPOOL/rel/m.txt.sig")" = "$old_ino"
check "the spool stops cleanly on SIGTERM" stop_spool_only

# --- files written while it was down are signed at the next start; outputs stay -------------------
echo "while down" >"$T/down"
cp "$T/down" "$SPOOL/ec/down.txt"
mark=$(log_mark)
start_spool_only --spool "$SPOOL"
check "started again, it signs (probe) and says it serves the spool" serves_since "$mark"
check "a file written while the daemon was down is signed at start" wait_for "$SPOOL/ec/down.txt.sig" 10
check "  openssl verifies it" ec_ok "$T/ec.pem" "$T/down" "$SPOOL/ec/down.txt.sig"
check "  the refusals stand (link.err is still there)" test -f "$SPOOL/rel/link.err"
mark=$(log_mark)
kill -HUP "$SPOOL_PID"
check "SIGHUP starts the spool again in the same process" \
	wait_until serves_since "$mark"
check "  which still runs" kill -0 "$SPOOL_PID"
echo "after hup" >"$T/hup"
cp "$T/hup" "$SPOOL/ec/hup.txt"
check "  and signs" wait_for "$SPOOL/ec/hup.txt.sig" 10
check "  openssl verifies it" ec_ok "$T/ec.pem" "$T/hup" "$SPOOL/ec/hup.txt.sig"
check "the spool stops cleanly again" stop_spool_only

# --- kill -9 in the middle of a batch loses nothing ---------------------------------------------
mkdir "$T/batch"
for i in $(seq 1 300); do head -c 2000 /dev/urandom >"$T/batch/f$i.bin"; done
mark=$(log_mark)
start_spool_only --spool "$SPOOL"
check "the batch's spool signs (probe) and says it serves the spool" serves_since "$mark"
cp "$T"/batch/*.bin "$SPOOL/slow/"
kill9_spool_only
at_kill=$(find "$SPOOL/slow" -name 'f*.bin.sig' | wc -l)
echo "  $at_kill of 300 signed at the kill"
check "the kill came in the middle of the batch" test "$at_kill" -lt 300
mark=$(log_mark)
start_spool_only --spool "$SPOOL"
check "after the kill, it signs (probe) and says it serves the spool" serves_since "$mark"
check "after the restart all 300 are signed" \
	wait_until sh -c "test \$(find '$SPOOL/slow' -name 'f*.bin.sig' | wc -l) = 300"
check "  every signature verifies (openssl, RSA-PSS)" all_rsa_ok "$T/slow.pem" "$SPOOL/slow" 300
check "  no .err" test -z "$(find "$SPOOL/slow" -name '*.err')"
check "  no temporary output left behind" test -z "$(find "$SPOOL/slow" -name '.sigfs-tmp.*')"
check "the spool stops cleanly after the recovery" stop_spool_only

# --- a deleted key: its inbox stays, unsigned ---------------------------------------------------
start_sigfs --spool "$SPOOL"
make_key gone
check "the key gone gets DIR/gone/" wait_until test -d "$SPOOL/gone"
rmdir "$MNT/.ctl/keys/gone"
sleep 2
echo late >"$SPOOL/gone/late"
sleep 2
check "after the key is deleted its inbox stays" test -d "$SPOOL/gone"
check "  and nothing is signed there" test ! -e "$SPOOL/gone/late.sig" -a ! -e "$SPOOL/gone/late.err"
stop_sigfs

done_testing
