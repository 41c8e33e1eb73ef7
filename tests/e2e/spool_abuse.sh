#!/bin/bash
# Story: the abuse matrix of the mount (permission_matrix.sh, shared_inboxes.sh),
# against the spool. sigfsd runs as root in a plain directory its users write
# (sigfsd --spool DIR, issue 11), so the kernel, not sigfs, decides what users
# may do to each other's files there, and the daemon must not be turned
# against them: it never follows a symlink, never opens a FIFO or a device,
# refuses hard links and files whose owner may not write the inbox, writes its
# outputs under its own names and renames them into place (a planted x.sig or
# a symlink named x.sig is replaced, never written through), and places
# nothing for content that changed while it was signed.
#
# Roles, as in permission_matrix.sh: the owner of an artifact (ann, in the
# sticky inbox), another member of a group inbox without the sticky bit (ben,
# mode 0770), another member of a sticky group inbox (ben, mode 1770), a
# non-member (mal), and root. Every cell is asserted exactly: what the kernel
# answered the user, then what the daemon did (or must not have done). The
# team, the roles' users and inboxes, `try` and the walk over the matrix
# (ann's artifact of each cell) are matrixlib.sh's, shared with
# permission_matrix.sh; the table and the cell's checks are this story's.
#
# Cell values: OK (allowed; the daemon's answer is checked), EACCES / EPERM
# (the kernel refused), REFUSED (the kernel allowed it, the daemon signs
# nothing for it and ann's outputs are untouched), ERR (the kernel allowed it,
# the daemon answers NAME.err and no .sig).
#
# Then, outside the matrix: files chowned by root to a user who may not write
# the inbox, a device node, rewrites of a large file while it is signed (no
# output over the old content), and a restart as a spool alone (no mount):
# what arrived while it was down is scanned with the same rules.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/spoollib.sh"
. "$(dirname "$0")/matrixlib.sh"

matrix_users

# One worker: jobs of one user are done in the order their events came, so a
# marker file signed after an action means the action was dealt with (barrier).
conf_set sigfs workers 1
start_sigfs --spool "$SPOOL"
for k in probe plain sticky big; do make_key "$k"; done
check "each key has its directory in the spool" wait_until \
	test -d "$SPOOL/probe" -a -d "$SPOOL/plain" -a -d "$SPOOL/sticky" -a -d "$SPOOL/big"
check "a key's spool directory has the owner, group and mode of its inbox in the mount" \
	stat_is "$SPOOL/probe" "$(stat -c '%U:%G %a' "$MNT/probe")"
save_keys probe plain sticky big
check "the spool signs (probe)" spool_probe
chgrp "$TEAM" "$SPOOL/plain" "$SPOOL/sticky"
chmod 0770 "$SPOOL/plain"
chmod 1770 "$SPOOL/sticky"
chmod 0777 "$SPOOL/big"
check "fixture: plain is root:team 0770" stat_is "$SPOOL/plain" "root:$TEAM 770"
check "fixture: sticky is root:team 1770" stat_is "$SPOOL/sticky" "root:$TEAM 1770"

# World-readable sources for the users; a root-only secret (old atime: any
# read would move it, the file system is mounted relatime at most); a copy of
# /etc/passwd as the target of planted symlinks (root's, writable by root: the
# daemon could write through a link to it); ann's files to hard-link from.
mkdir -m 0755 "$T/pub" "$T/hsrc"
install -m 0600 /dev/null "$T/secret"
echo "root-only secret $RANDOM$RANDOM" >"$T/secret"
cp -p "$T/secret" "$T/secret.orig"
touch -a -d 2000-01-01 "$T/secret"
SECRET_ATIME=$(stat -c %X "$T/secret")
cp /etc/passwd "$T/pub/passwd-copy"
chmod 0644 "$T/pub/passwd-copy"
cp -p "$T/pub/passwd-copy" "$T/passwd.orig"
touch -d 2001-01-01 "$T/pub/passwd-copy"
PASSWD_MTIME=$(stat -c %Y "$T/pub/passwd-copy")

secret_untouched() {
	[ "$(stat -c %X "$T/secret")" = "$SECRET_ATIME" ] || {
		echo "  the secret was read (atime $(stat -c %X "$T/secret"), was $SECRET_ATIME)" >&2
		return 1
	}
}

passwd_untouched() {
	[ "$(stat -c %Y "$T/pub/passwd-copy")" = "$PASSWD_MTIME" ] && cmp -s "$T/passwd.orig" "$T/pub/passwd-copy" &&
		test ! -L "$T/pub/passwd-copy"
}

# barrier USER INBOX: USER (root if USER may not write INBOX) and ann each
# write a marker and wait for its .sig: with one worker, whatever the daemon
# was going to do about earlier events of theirs is done.
MARKS=0
barrier() {
	local u=$1 in=$2 w
	[ "$u" != sf-mal ] || u=root
	for w in "$u" sf-ann; do
		MARKS=$((MARKS + 1))
		head -c $((300 + MARKS)) /dev/urandom >"$T/pub/mark$MARKS"
		chmod 0644 "$T/pub/mark$MARKS"
		as "$w" cp "$T/pub/mark$MARKS" "$SPOOL/$in/mark$MARKS.bin" || return 1
		signed_over "$in" "$T/pub/mark$MARKS" "$SPOOL/$in/mark$MARKS.bin.sig" || return 1
	done
}

# one_line FILE: FILE exists and is one line (a .err).
one_line() {
	[ -f "$1" ] && [ "$(wc -l <"$1")" = 1 ]
}

#             owner    member   sticky   nonmem  root
MATRIX="
sign          OK       OK       OK       EACCES  OK
overwrite     OK       EACCES   EACCES   EACCES  OK
overwrite664  OK       OK       OK       EACCES  OK
rmsig         OK       OK       EPERM    EACCES  OK
replacesig    OK       OK       EPERM    EACCES  OK
digest        OK       OK       REFUSED  EACCES  OK
plantsig      OK       OK       OK       EACCES  OK
plantlink     OK       OK       OK       EACCES  OK
linkartifact  REFUSED  REFUSED  REFUSED  EACCES  REFUSED
fifo          REFUSED  REFUSED  REFUSED  EACCES  REFUSED
hardlink      ERR      ERR      ERR      EACCES  ERR
"
ROLES=(owner member sticky nonmem root)

# cell: the action of one cell of the matrix (matrixlib.sh's variables), then
# what the kernel answered and what the daemon did.
cell() {
	# Kernel-level preparations of the action (as root or ann).
	case $action in
	overwrite664)
		as sf-ann chgrp "$TEAM" "$I/$c"
		as sf-ann chmod 0664 "$I/$c"
		# chmod is no write: the daemon must not sign again (the .sig stays ann's first)
		;;
	hardlink)
		cp "$T/pub/b$n" "$T/hsrc/h$n"
		chown "sf-ann:$TEAM" "$T/hsrc/h$n"
		chmod 0664 "$T/hsrc/h$n"
		;;
	esac
	echo "junk planted by $u" >"$T/pub/junk$n"
	chmod 0644 "$T/pub/junk$n"
	case $action in
	sign) code="open('$I/new$n.bin', 'wb').write(open('$T/pub/b$n', 'rb').read())" ;;
	overwrite | overwrite664)
		# No O_CREAT, so fs.protected_regular cannot decide instead of the mode.
		code="fd = os.open('$I/$c', os.O_WRONLY | os.O_TRUNC); os.write(fd, open('$T/pub/b$n', 'rb').read()); os.close(fd)"
		;;
	rmsig) code="os.unlink('$I/$c.sig')" ;;
	replacesig)
		code="open('$I/.r$n', 'w').write(open('$T/pub/junk$n').read()); os.rename('$I/.r$n', '$I/$c.sig')"
		;;
	digest)
		line="$(sha256sum "$T/pub/b$n" | cut -d' ' -f1)  $c"
		code="open('$I/$c.sha256', 'w').write('$line\\n')"
		;;
	plantsig) code="open('$I/p$n.bin.sig', 'w').write(open('$T/pub/junk$n').read())" ;;
	plantlink) code="os.symlink('$T/pub/passwd-copy', '$I/p$n.bin.sig')" ;;
	linkartifact)
		# Renamed in (IN_MOVED_TO) and made in place (IN_CREATE only).
		code="os.symlink('$T/secret', '$I/.l$n'); os.rename('$I/.l$n', '$I/l$n.bin'); os.symlink('$T/secret', '$I/m$n.bin')"
		;;
	fifo)
		# Renamed in, and one written through O_RDWR and closed (IN_CLOSE_WRITE
		# on a FIFO: a daemon that opened it to read would block for ever).
		code="os.mkfifo('$I/.f$n', 0o644); os.rename('$I/.f$n', '$I/f$n.bin'); os.mkfifo('$I/g$n.bin', 0o666)
    fd = os.open('$I/g$n.bin', os.O_RDWR | os.O_NONBLOCK); os.write(fd, b'x' * 100); os.close(fd)"
		;;
	hardlink)
		# Linked in place (IN_CREATE only), then opened for writing and closed
		# (IN_CLOSE_WRITE, no byte changed). Not renamed in: in the sticky
		# inbox only ann, who owns the inode, or root could rename it.
		code="os.link('$T/hsrc/h$n', '$I/h$n.bin'); os.close(os.open('$I/h$n.bin', os.O_WRONLY))"
		;;
	esac
	got=$(try "$u" "$code")
	case $want in
	OK | EACCES | EPERM) check "$what: $want" test "$got" = "$want" ;;
	*) check "$what: the kernel allows it (OK)" test "$got" = OK ;;
	esac
	# plantsig/plantlink: ann now signs the name whose output was planted.
	if [ "$got" = OK ] && { [ "$action" = plantsig ] || [ "$action" = plantlink ]; }; then
		as sf-ann cp "$T/pub/b$n" "$I/p$n.bin" || fail "$what: ann's cp of p$n.bin failed"
	fi
	barrier "$u" "$in" || fail "$what: the daemon stopped signing (barrier)"
	check "$what: the daemon did not crash (same worker)" same_daemon
	if [ "$want" != OK ]; then
		check "$what: ann's .sig is untouched" cmp -s "$T/ann$n.sig" "$I/$c.sig"
		check "$what: and still verifies against ann's bytes" sverify "$in" "$T/pub/a$n" "$I/$c.sig"
	fi
	case $want:$action in
	EACCES:sign) check "$what: nothing was created" test ! -e "$I/new$n.bin" ;;
	EACCES:digest) check "$what: no digest file was created" test ! -e "$I/$c.sha256" ;;
	EACCES:plant*) check "$what: nothing was planted" test ! -e "$I/p$n.bin.sig" -a ! -L "$I/p$n.bin.sig" ;;
	EACCES:linkartifact) check "$what: no link was made" test ! -L "$I/l$n.bin" -a ! -L "$I/m$n.bin" ;;
	EACCES:fifo) check "$what: no FIFO was made" test ! -e "$I/f$n.bin" -a ! -e "$I/g$n.bin" ;;
	EACCES:hardlink) check "$what: no link was made" test ! -e "$I/h$n.bin" ;;
	EACCES:* | EPERM:*) ;;
	REFUSED:digest)
		REFUSED_DIGEST+=("$in $n")
		check "$what: no .err in the name of ann's artifact either" test ! -e "$I/$c.err"
		check "$what: nor a signature of the digest line itself" test ! -e "$I/$c.sha256.sig"
		;;
	REFUSED:linkartifact)
		check "$what: the renamed-in link gets no .sig" test ! -e "$I/l$n.bin.sig"
		check "$what: nor the link made in place" test ! -e "$I/m$n.bin.sig"
		check "$what: the links are still links (not replaced by what they point to)" \
			test -L "$I/l$n.bin" -a -L "$I/m$n.bin"
		check "$what: the root-only target was not read (atime)" secret_untouched
		;;
	REFUSED:fifo)
		check "$what: the renamed-in FIFO gets no .sig" test ! -e "$I/f$n.bin.sig"
		check "$what: nor the FIFO written and closed in place" test ! -e "$I/g$n.bin.sig"
		;;
	ERR:hardlink)
		check "$what: the link gets h$n.bin.err" wait_for "$I/h$n.bin.err" 20
		check "$what: one line" one_line "$I/h$n.bin.err"
		check "$what: and no .sig" test ! -e "$I/h$n.bin.sig"
		check "$what: the linked file itself is untouched" cmp -s "$T/pub/b$n" "$T/hsrc/h$n"
		;;
	OK:sign)
		check "$what: the signature verifies" signed_over "$in" "$T/pub/b$n" "$I/new$n.bin.sig"
		check "$what: and belongs to $u" stat_is "$I/new$n.bin.sig" "$u:$(id -gn "$u") 444"
		;;
	OK:overwrite | OK:overwrite664)
		check "$what: the new .sig covers the new bytes" signed_over "$in" "$T/pub/b$n" "$I/$c.sig"
		check "$what: it belongs to the file's owner, ann (and the file's group)" \
			stat_is "$I/$c.sig" "sf-ann:$(stat -c %G "$I/$c") 444"
		;;
	OK:rmsig) check "$what: the .sig is gone" test ! -e "$I/$c.sig" ;;
	OK:replacesig)
		check "$what: $c.sig is what $u put there (the kernel allowed it)" cmp -s "$T/pub/junk$n" "$I/$c.sig"
		check "$what: the daemon took it for no input (no $c.sig.sig, no $c.sig.err)" \
			test ! -e "$I/$c.sig.sig" -a ! -e "$I/$c.sig.err"
		;;
	OK:digest)
		check "$what: the .sig covers the digest's bytes" signed_over "$in" "$T/pub/b$n" "$I/$c.sig"
		check "$what: and belongs to $u, who wrote the digest line" stat_is "$I/$c.sig" "$u:$(id -gn "$u") 444"
		;;
	OK:plantsig | OK:plantlink)
		check "$what: ann's p$n.bin gets the daemon's .sig, which verifies" \
			signed_over "$in" "$T/pub/b$n" "$I/p$n.bin.sig"
		check "$what: it is a regular file now, not what was planted" \
			test -f "$I/p$n.bin.sig" -a ! -L "$I/p$n.bin.sig"
		check "$what: it belongs to ann" stat_is "$I/p$n.bin.sig" "sf-ann:$(id -gn sf-ann) 444"
		[ "$action" = plantsig ] ||
			check "$what: the link's target is untouched" passwd_untouched
		;;
	*) fail "no checks for $want:$action" ;;
	esac
}
REFUSED_DIGEST=()
matrix_run "$SPOOL" signed_over cell <<<"$MATRIX"
check "every cell of the matrix was tried" test "$n" -eq 55
check "after the matrix the passwd copy is untouched" passwd_untouched
check "and the root-only secret was never read" secret_untouched

# --- files whose owner may not write the inbox -----------------------------------------------------
# Root places a file and chowns it before it is renamed in (as a restore from
# a backup could): the daemon signs only for users who may write the inbox.
for in in sticky plain; do
	head -c 5000 /dev/urandom >"$T/own-$in"
	cp "$T/own-$in" "$SPOOL/$in/.o"
	chown sf-mal:sf-mal "$SPOOL/$in/.o"
	mv "$SPOOL/$in/.o" "$SPOOL/$in/mal-owned.bin"
	check "$in: a file owned by mal (no write access to the inbox) gets .err" \
		wait_for "$SPOOL/$in/mal-owned.bin.err" 20
	check "$in: and no .sig" test ! -e "$SPOOL/$in/mal-owned.bin.sig"
	cp "$T/own-$in" "$SPOOL/$in/.o"
	chown sf-ben:sf-ben "$SPOOL/$in/.o"
	mv "$SPOOL/$in/.o" "$SPOOL/$in/ben-owned.bin"
	check "$in: the same file owned by ben (a member) is signed" \
		signed_over "$in" "$T/own-$in" "$SPOOL/$in/ben-owned.bin.sig"
	check "$in: and its .sig is ben's" stat_is "$SPOOL/$in/ben-owned.bin.sig" "sf-ben:sf-ben 444"
done

# --- a device node -----------------------------------------------------------------------------------
# /dev/zero's numbers: a daemon that read it would hash for ever.
mknod "$SPOOL/sticky/.z" c 1 5
mv "$SPOOL/sticky/.z" "$SPOOL/sticky/zero.bin"
mknod "$SPOOL/sticky/null.bin" c 1 3
check "after a device node was renamed in, the daemon still signs" barrier root sticky
check "the device node gets no .sig" test ! -e "$SPOOL/sticky/zero.bin.sig" -a ! -e "$SPOOL/sticky/null.bin.sig"

# --- rewritten while it is signed -----------------------------------------------------------------
# A 1 GiB file renamed in takes the one worker seconds to hash; it is
# rewritten meanwhile. A poller keeps every distinct .sig it ever sees; each
# must verify over the final content: nothing is ever placed for the old one
# (poll_sigs and all_verify of lib.sh, as for the NFS stories' slow writer).
signing_now() {
	grep -q '^queue: .* 1 signing' "$MNT/.ctl/status"
}

B=$SPOOL/big
for how in truncate inplace; do
	truncate -s 1G "$B/.$how"
	mv "$B/.$how" "$B/$how.bin"
	rm -f "$T/stop-$how"
	poll_sigs "$T/poll-$how" "$T/stop-$how" cp "$B/$how.bin.sig" &
	poller=$!
	at_exit "touch '$T/stop-$how'; wait $poller"
	check "$how: fixture: the 1 GiB file is being signed" wait_until signing_now
	sleep 0.3
	check "$how: fixture: no .sig yet when it is rewritten" test ! -e "$B/$how.bin.sig"
	if [ $how = truncate ]; then
		echo "new content" >"$B/$how.bin"
		cp "$B/$how.bin" "$T/final-$how"
	else
		# Same size: only the content (and mtime, ctime) changes.
		printf 'X' | dd of="$B/$how.bin" bs=1 seek=4096 conv=notrunc status=none
	fi
	if [ $how = truncate ]; then
		check "$how: the rewritten file gets a .sig over its new content" \
			signed_over big "$T/final-$how" "$B/$how.bin.sig" 120
	else
		check "$how: the rewritten file gets its .sig" wait_for "$B/$how.bin.sig" 120
		check "$how: over the new content" sverify big "$B/$how.bin" "$B/$how.bin.sig"
		cp "$B/$how.bin" "$T/final-$how"
	fi
	sleep 1
	touch "$T/stop-$how"
	wait "$poller"
	check "$how: every .sig the poller saw verifies over the new content" \
		all_verify sverify big "$T/poll-$how" "$T/final-$how"
	check "$how: no .err" test ! -e "$B/$how.bin.err"
	rm -f "$B/$how.bin" "$B/$how.bin.sig" "$T/final-$how"
done

# --- a restart as a spool alone: what came while it was down -------------------------------------
stop_sigfs
S=$SPOOL/sticky
head -c 7000 /dev/urandom >"$T/scan.bin"
cp "$T/scan.bin" "$S/scan.bin"
ln -s "$T/secret" "$S/down-link.bin"
mkfifo "$S/down-fifo.bin"
cp "$T/scan.bin" "$T/hsrc/down"
ln "$T/hsrc/down" "$S/down-hard.bin"
cp "$T/scan.bin" "$S/down-mal.bin"
chown sf-mal:sf-mal "$S/down-mal.bin"
cp "$T/scan.bin" "$S/down-planted.bin"
ln -s "$T/pub/passwd-copy" "$S/down-planted.bin.sig"
start_spool_only --spool "$SPOOL"
check "spool alone: the daemon started without a mount and signs (probe)" true
check "spool alone: no mount was made" bash -c "! mountpoint -q '$MNT'"
check "spool alone: a file that came while it was down is signed at start" \
	signed_over sticky "$T/scan.bin" "$S/scan.bin.sig"
check "spool alone: a planted symlink x.sig is replaced by the daemon's signature" \
	signed_over sticky "$T/scan.bin" "$S/down-planted.bin.sig"
check "spool alone: which is a regular file" test -f "$S/down-planted.bin.sig" -a ! -L "$S/down-planted.bin.sig"
check "spool alone: and the link's target is untouched" passwd_untouched
check "spool alone: the hard link gets .err" wait_for "$S/down-hard.bin.err" 20
check "spool alone: and no .sig" test ! -e "$S/down-hard.bin.sig"
check "spool alone: mal's file gets .err" wait_for "$S/down-mal.bin.err" 20
check "spool alone: and no .sig" test ! -e "$S/down-mal.bin.sig"
check "spool alone: the scan did not block on the FIFO (a new file is signed)" spool_probe
check "spool alone: the FIFO gets no .sig" test ! -e "$S/down-fifo.bin.sig"
check "spool alone: the symlink gets no .sig" test ! -e "$S/down-link.bin.sig"
check "spool alone: the symlink is still a symlink" test -L "$S/down-link.bin"
check "spool alone: the root-only secret was never read (atime)" secret_untouched
check "spool alone: the device nodes got no .sig" test ! -e "$S/zero.bin.sig" -a ! -e "$S/null.bin.sig"
check "spool alone: the scan is through for ben and ann (barrier)" barrier sf-ben sticky
for cell in "${REFUSED_DIGEST[@]}"; do
	read -r in m <<<"$cell"
	check "spool alone: the scan refuses ben's c$m.bin.sha256 again: ann's .sig untouched" \
		cmp -s "$T/ann$m.sig" "$SPOOL/$in/c$m.bin.sig"
	check "spool alone: and no c$m.bin.err" test ! -e "$SPOOL/$in/c$m.bin.err"
done
check "spool alone: it stops cleanly on SIGTERM" stop_spool_only
check "the secret's content is unchanged" cmp -s "$T/secret.orig" "$T/secret"
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
