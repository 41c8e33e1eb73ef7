#!/bin/bash
# Story: nobody but root (the daemon's user) can steer sigfsd's state directory.
# A user who owns the state directory, or a directory above it, or a link on
# the way, could plant a journal record and an artifact and get it signed with
# a key whose inbox they cannot write: sigfsd refuses to start on such a
# path. The audit log, the journal and its key must be the daemon's own
# regular files (a symlink or hard link planted there is refused and its
# target left alone), and a journal record sigfsd did not write (no MAC, or a
# wrong one) is never acted upon; a journal of the previous version, written
# before journal.key existed, is recovered once.
. "$(dirname "$0")/lib.sh"

ensure_user mallory
MUID=$(id -u mallory)
MGID=$(id -g mallory)
check "fixture: mallory is not in the admin group" bash -c "! id -nG mallory | grep -qw $ADMIN_GROUP"
conf_set sigfs workers 1

# hexs STRING: STRING as lowercase hex, as journal records carry key and name.
hexs() {
	printf %s "$1" | od -An -tx1 | tr -d ' \n'
}

# try_start DIR: start sigfsd on state directory DIR (config $CONF). 0 if it
# mounted (it keeps running: stop_sigfs), 1 if it exited; what it said is in
# $T/start.out (and appended to the log).
try_start() {
	: >"$T/start.out"
	if try_start_sigfs "$1" "$T/start.out"; then
		return 0
	fi
	cat "$T/start.out" >>"$LOG"
	return 1
}

# refused DESCRIPTION MESSAGE DIR: sigfsd must refuse to start on DIR and say MESSAGE.
refused() {
	local desc=$1 msg=$2 dir=$3
	if try_start "$dir"; then
		stop_sigfs
		cat "$T/start.out" >>"$LOG"
		fail "$desc: sigfsd started on $dir"
	fi
	if ! grep -qF -- "$msg" "$T/start.out"; then
		fail "$desc: sigfsd did not say '$msg': $(cat "$T/start.out")"
	fi
	PASSED=$((PASSED + 1))
	echo "ok $PASSED - $desc"
}

# --- a good state directory with a key mallory may not use ----------------------------------
start_sigfs
make_key release
check_fails_with "fixture: mallory cannot copy into release's inbox" "Permission denied" \
	as mallory cp /etc/hostname "$MNT/release/m.bin"
PUB=$(pubkey release)
stop_sigfs
check "the state directory sigfsd created is root:root 0700" stat_is "$STATE" "root:root 700"

# --- the exploit: a state directory that mallory owns -----------------------------------------
# The same state, in a directory owned by mallory (as if she had created the
# path before the admin first started sigfsd there). She cannot write
# release's inbox, but she can swap inbox/ for her own, plant an artifact and
# a journal record saying sigfsd accepted it.
MSTATE=$T/mstate
cp -a "$STATE" "$MSTATE"
chown mallory "$MSTATE"
chmod 0750 "$MSTATE"
rm -f "$MSTATE/journal.key"
as mallory bash -c "
	cd '$MSTATE' && mv inbox inbox.orig && mkdir -p inbox/release &&
	echo 'mallory wants this signed' >inbox/release/evil.bin &&
	rm -f journal &&
	echo \"A 1 \$(stat -c %i inbox/release/evil.bin) $(hexs release) $(hexs evil.bin) $MUID\" >journal"
check "fixture: mallory planted evil.bin and an A record for it" \
	grep -q "^A 1 [0-9]* $(hexs release) $(hexs evil.bin) $MUID\$" "$MSTATE/journal"
if try_start "$MSTATE"; then
	wait_for "$MSTATE/inbox/release/evil.bin.sig" 10 || true
	stop_sigfs
fi
if [ -e "$MSTATE/inbox/release/evil.bin.sig" ]; then
	echo "  mallory got $MSTATE/inbox/release/evil.bin.sig; it verifies with release's key:" \
		"$(openssl dgst -sha256 -verify "$PUB" -signature "$MSTATE/inbox/release/evil.bin.sig" \
			"$MSTATE/inbox/release/evil.bin" 2>&1)"
fi
check "exploit: the artifact mallory planted is not signed" test ! -e "$MSTATE/inbox/release/evil.bin.sig"
check "exploit: sigfsd refused the state directory mallory owns" grep -qF \
	"refusing state directory $MSTATE: $MSTATE is owned by uid $MUID" "$T/start.out"
check "and changed nothing in it (still mallory's, her mode)" stat_is "$MSTATE" "mallory:root 750"

# --- paths other users could steer ---------------------------------------------------------------
SHARED=$T/shared
mkdir -m 1777 "$SHARED"
as mallory mkdir "$SHARED/state"
refused "a state directory pre-created by mallory (in a sticky shared directory) is refused" \
	"refusing state directory $SHARED/state: $SHARED/state is owned by uid $MUID; " "$SHARED/state"
check "and sigfsd created nothing in it" prints_nothing ls -A "$SHARED/state"
check "nor changed its owner or mode" stat_is "$SHARED/state" "mallory:$(id -gn mallory) 755"

ln -s "$STATE" "$T/link"
refused "a state directory that is a symlink (even to a good directory) is refused" \
	"refusing state directory $T/link: $T/link is a symbolic link; " "$T/link"
ln -s "$SHARED/state" "$T/mlink"
refused "a symlink to mallory's directory is refused" \
	"refusing state directory $T/mlink: $T/mlink is a symbolic link; " "$T/mlink"

mkdir -m 0775 "$T/anc"
chgrp "$MGID" "$T/anc"
refused "an ancestor writable by mallory's group is refused" \
	"refusing state directory $T/anc/state: $T/anc is writable by group $MGID (mode 0775); make it root-owned and not group/other-writable" \
	"$T/anc/state"
check "and nothing was created below it" test ! -e "$T/anc/state"
chmod 0757 "$T/anc"
refused "an ancestor writable by others is refused" \
	"$T/anc is writable by others (mode 0757); " "$T/anc/state"
chmod 1777 "$T/anc"
chown mallory "$T/anc"
refused "a sticky ancestor owned by mallory is refused" "$T/anc is owned by uid $MUID; " "$T/anc/state"
chmod 0755 "$T/anc"
refused "an ancestor owned by mallory (mode 0755) is refused" "$T/anc is owned by uid $MUID; " \
	"$T/anc/state/deeper"

# Links on the way: one owned by root in a good directory is followed (like
# /var/run -> /run); one mallory owns is not.
mkdir -m 0755 "$T/real"
ln -s real "$T/rlink"
check "a root-owned link on the way is followed: sigfsd starts" try_start "$T/rlink/state"
stop_sigfs
check "  and the state directory is the link's target" test -d "$T/real/state/keys"
as mallory ln -s "$T/real" "$SHARED/mlink"
refused "a link on the way owned by mallory is refused" \
	"$SHARED/mlink is a symbolic link owned by uid $MUID; " "$SHARED/mlink/state2"
check "and nothing was created through it" test ! -e "$T/real/state2"

# A root-owned state directory directly in /tmp (root-owned, sticky): fine.
TMPSTATE=$(mktemp -d /tmp/sigfs-e2e-state.XXXXXX)
at_exit "rm -rf '$TMPSTATE'"
chmod 0755 "$TMPSTATE"
check "a root-owned state directory in /tmp (sticky) is accepted" try_start "$TMPSTATE"
stop_sigfs
check "  and set to 0700" stat_is "$TMPSTATE" "root:root 700"

# --- files in the state directory: planted links are refused, their targets untouched -------
check "journal.key is root:root 0600" stat_is "$STATE/journal.key" "root:root 600"
check "journal.key holds 32 bytes" test "$(stat -c %s "$STATE/journal.key")" -eq 32
echo "root's precious file" >"$T/victim"
cp -p "$T/victim" "$T/victim.orig"
victim_untouched() {
	cmp -s "$T/victim" "$T/victim.orig" && test "$(stat -c '%Y %a' "$T/victim")" = \
		"$(stat -c '%Y %a' "$T/victim.orig")"
}
for f in audit.log journal journal.key; do
	mv "$STATE/$f" "$T/$f.saved"
	ln -s "$T/victim" "$STATE/$f"
	refused "$f as a symlink is refused" "refusing $STATE/$f: it is a symbolic link; " "$STATE"
	check "  its target is untouched" victim_untouched
	rm "$STATE/$f"
	ln "$T/victim" "$STATE/$f"
	refused "$f as a hard link is refused" "refusing $STATE/$f: it has 2 hard links; " "$STATE"
	check "  its target is untouched" victim_untouched
	rm "$STATE/$f"
	mv "$T/$f.saved" "$STATE/$f"
done
chmod 0640 "$STATE/journal.key"
refused "journal.key readable by the group is refused" \
	"refusing $STATE/journal.key: it is readable or writable by group or others (mode 0640); " "$STATE"
chmod 0600 "$STATE/journal.key"
chown mallory "$STATE/audit.log"
refused "an audit.log owned by mallory is refused" \
	"refusing $STATE/audit.log: it is owned by uid $MUID; " "$STATE"
chown root "$STATE/audit.log"
chmod 0622 "$STATE/journal"
refused "a journal writable by others is refused" \
	"refusing $STATE/journal: it is writable by group or others (mode 0622); " "$STATE"
chmod 0600 "$STATE/journal"
check "the good state directory still starts" try_start "$STATE"
stop_sigfs

# --- the soft backend's key directory follows the same rule -------------------------------------
cp "$CONF" "$T/soft.conf"
printf '[backend soft]\ndir = %s\n' "$SHARED/state/soft" >>"$T/soft.conf"
CONF=$T/soft.conf refused "a soft key directory below mallory's directory is refused" \
	"refusing soft backend key directory $SHARED/state/soft: $SHARED/state is owned by uid $MUID; " \
	"$STATE"
check "and no key directory was made there" test ! -e "$SHARED/state/soft"

# --- the journal acts only on records sigfsd wrote -------------------------------------------
echo forged >"$STATE/inbox/release/forged1.bin"
echo forged >"$STATE/inbox/release/forged2.bin"
ino1=$(stat -c %i "$STATE/inbox/release/forged1.bin")
ino2=$(stat -c %i "$STATE/inbox/release/forged2.bin")
{
	echo "A 9001 $ino1 $(hexs release) $(hexs forged1.bin) 0"
	echo "A 9002 $ino2 $(hexs release) $(hexs forged2.bin) 0 $(printf '%064d' 0)"
} >>"$STATE/journal"
m=$(log_mark)
start_sigfs
echo control >"$T/control.bin"
cp "$T/control.bin" "$MNT/release/control.bin"
check "a job after the forged records is signed (the queue has run)" \
	verify_raw release "$T/control.bin" "$MNT/release/control.bin.sig"
check "a forged A record without a MAC is not signed" test ! -e "$STATE/inbox/release/forged1.bin.sig"
check "a forged A record with a wrong MAC is not signed" test ! -e "$STATE/inbox/release/forged2.bin.sig"
check "the log says why" bash -c "tail -n +$((m + 1)) '$LOG' | grep -q \
	'journal: ignored 2 records not written by this sigfsd'"
stop_sigfs

# --- upgrade: a journal of the previous version (no MAC, no journal.key) is recovered once ---
echo legacy >"$T/legacy.bin"
cp "$T/legacy.bin" "$STATE/inbox/release/legacy.bin"
rm "$STATE/journal.key"
echo "A 9100 $(stat -c %i "$STATE/inbox/release/legacy.bin") $(hexs release) $(hexs legacy.bin) 0" \
	>>"$STATE/journal"
m=$(log_mark)
start_sigfs
check "upgrade: the accepted job of the previous version is signed" \
	wait_for "$MNT/release/legacy.bin.sig" 30
check "upgrade: and the signature verifies" verify_raw release "$T/legacy.bin" "$MNT/release/legacy.bin.sig"
check "upgrade: the log says so" bash -c "tail -n +$((m + 1)) '$LOG' | grep -q \
	'journal: first start with journal.key: accepted 1 records of an earlier version (no MAC)'"
check "upgrade: journal.key was created, root:root 0600" stat_is "$STATE/journal.key" "root:root 600"
check "upgrade: the forged records are still not signed" test ! -e "$STATE/inbox/release/forged1.bin.sig"
stop_sigfs
rm "$STATE/inbox/release/legacy.bin.sig"
echo "A 9101 $(stat -c %i "$STATE/inbox/release/legacy.bin") $(hexs release) $(hexs legacy.bin) 0" \
	>>"$STATE/journal"
m=$(log_mark)
start_sigfs
cp "$T/control.bin" "$MNT/release/control2.bin"
check "after the upgrade: a job after it is signed" wait_for "$MNT/release/control2.bin.sig" 30
check "after the upgrade: a record without a MAC is no longer recovered" \
	test ! -e "$STATE/inbox/release/legacy.bin.sig"
check "after the upgrade: the log says it was ignored" bash -c "tail -n +$((m + 1)) '$LOG' | grep -q \
	'journal: ignored 1 records not written by this sigfsd'"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"

done_testing
