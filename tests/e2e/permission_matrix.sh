#!/bin/bash
# Story: who may do what to a team's inbox, every cell of the matrix asserted.
# Roles: the owner of an artifact (ann), another member of a group inbox
# without the sticky bit (ben, mode 0770), another member of a sticky group
# inbox (ben, mode 1770), a non-member (mal), a member of the admin group who
# is not in the team (adm), and root. Actions: sign a new file, overwrite
# ann's file (mode 0644, and 0664), remove ann's .sig, write a digest line for
# ann's name, rename a file into the inbox, rename ann's file away, chmod
# ann's file, read the key's pubkey.pem, and mkdir/rmdir a key. Where the
# action is refused, ann's signature is untouched and still verifies; where
# it is allowed, what it made verifies and belongs to the right user.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/matrixlib.sh"

matrix_users
ensure_user sf-adm
usermod -a -G "$ADMIN_GROUP" sf-adm
gpasswd -d sf-adm "$TEAM" >/dev/null 2>&1 || true
for u in sf-ann sf-ben sf-mal; do gpasswd -d "$u" "$ADMIN_GROUP" >/dev/null 2>&1 || true; done
K=$MNT/.ctl/keys

start_sigfs
for inbox in plain sticky; do
	make_key "$inbox"
	chgrp "$TEAM" "$MNT/$inbox"
done
chmod 0770 "$MNT/plain"
chmod 1770 "$MNT/sticky"
check "fixture: plain is root:team 0770" stat_is "$MNT/plain" "root:$TEAM 770"
check "fixture: sticky is root:team 1770" stat_is "$MNT/sticky" "root:$TEAM 1770"
mkdir -m 0755 "$T/pub"

#             owner   member  sticky  nonmem  admin   root
MATRIX="
sign          OK      OK      OK      EACCES  EACCES  OK
overwrite     OK      EACCES  EACCES  EACCES  EACCES  OK
overwrite664  OK      OK      EPERM   EACCES  EACCES  OK
rmsig         OK      OK      EPERM   EACCES  EACCES  OK
digest        OK      OK      EPERM   EACCES  EACCES  OK
renamein      OK      OK      OK      EACCES  EACCES  OK
renameout     OK      OK      EPERM   EACCES  EACCES  OK
chmod         OK      EPERM   EPERM   EACCES  EACCES  OK
pubkey        EACCES  EACCES  EACCES  EACCES  OK      OK
keydir        EACCES  EACCES  EACCES  EACCES  OK      OK
"
ROLES=(owner member sticky nonmem admin root)

# cell: the action of one cell of the matrix (matrixlib.sh's variables), and
# its checks. On the mount ann's cp returned once her .sig was there.
cell() {
	case $action in
	overwrite664)
		as sf-ann chgrp "$TEAM" "$I/$c"
		as sf-ann chmod 0664 "$I/$c"
		;;
	renamein)
		cp "$T/pub/b$n" "$I/.in$n"
		chown "$u:$(id -gn "$u")" "$I/.in$n"
		;;
	esac
	case $action in
	sign) code="open('$I/new$n.bin', 'wb').write(open('$T/pub/b$n', 'rb').read())" ;;
	overwrite | overwrite664) code="open('$I/$c', 'wb').write(open('$T/pub/b$n', 'rb').read())" ;;
	rmsig) code="os.unlink('$I/$c.sig')" ;;
	digest)
		line="$(sha256sum "$T/pub/b$n" | cut -d' ' -f1)  $c"
		code="open('$I/$c.sha256', 'w').write('$line\\n')"
		;;
	renamein) code="os.rename('$I/.in$n', '$I/in$n.bin')" ;;
	renameout) code="os.rename('$I/$c', '$I/moved$n.bin')" ;;
	chmod) code="os.chmod('$I/$c', 0o600)" ;;
	pubkey) code="open('$K/$in/pubkey.pem').read()" ;;
	keydir) code="os.mkdir('$K/x$n'); os.rmdir('$K/x$n')" ;;
	esac
	got=$(try "$u" "$code")
	check "$what: $want" test "$got" = "$want"
	if [ "$want" != OK ]; then
		check "$what: ann's .sig is untouched" cmp -s "$T/ann$n.sig" "$I/$c.sig"
		check "$what: and still verifies against ann's bytes" verify_raw "$in" "$T/pub/a$n" "$I/$c.sig"
		case $action in
		sign) check "$what: nothing was created" test ! -e "$I/new$n.bin" ;;
		digest) check "$what: no digest file was created" test ! -e "$I/$c.sha256" ;;
		renamein) check "$what: nothing was renamed" test ! -e "$I/in$n.bin" ;;
		keydir) check "$what: no key was made" test ! -e "$K/x$n" ;;
		esac
		return 0
	fi
	owner="$u:$(id -gn "$u") 444"
	case $action in
	sign)
		check "$what: the signature verifies" verify_raw "$in" "$T/pub/b$n" "$I/new$n.bin.sig"
		check "$what: and belongs to $u" stat_is "$I/new$n.bin.sig" "$owner"
		;;
	overwrite | overwrite664)
		check "$what: the new .sig covers the new bytes" wait_for "$I/$c.sig" 10
		check "$what: and verifies" verify_raw "$in" "$T/pub/b$n" "$I/$c.sig"
		check "$what: it belongs to the file's owner, ann (and the file's group)" \
			stat_is "$I/$c.sig" "sf-ann:$(stat -c %G "$I/$c") 444"
		;;
	rmsig) check "$what: the .sig is gone" test ! -e "$I/$c.sig" ;;
	digest)
		check "$what: the .sig covers the digest's bytes" verify_raw "$in" "$T/pub/b$n" "$I/$c.sig"
		check "$what: and belongs to $u" stat_is "$I/$c.sig" "$owner"
		;;
	renamein)
		check "$what: the renamed file gets its .sig" wait_for "$I/in$n.bin.sig" 10
		check "$what: which verifies" verify_raw "$in" "$T/pub/b$n" "$I/in$n.bin.sig"
		check "$what: and belongs to $u" stat_is "$I/in$n.bin.sig" "$owner"
		;;
	renameout)
		check "$what: the moved file gets its .sig" wait_for "$I/moved$n.bin.sig" 10
		check "$what: which verifies against ann's bytes" verify_raw "$in" "$T/pub/a$n" "$I/moved$n.bin.sig"
		;;
	chmod) check "$what: the mode changed" test "$(stat -c %a "$I/$c")" = 600 ;;
	pubkey) check "$what: it is the key's public key" cmp -s "$K/$in/pubkey.pem" "$(pubkey "$in")" ;;
	keydir) check "$what: the key is gone again" test ! -e "$K/x$n" ;;
	esac
}
matrix_run "$MNT" verify_raw cell <<<"$MATRIX"
check "every cell of the matrix was tried" test "$n" -eq 60
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
