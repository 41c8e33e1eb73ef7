#!/bin/bash
# Story: an admin exports the sigfs mount over NFS. An NFS server (ganesha's
# FSAL_VFS, the kernel's nfsd) keeps file handles, not paths: handles of
# inbox files and inboxes must keep working after the kernel forgot the
# inodes and after sigfsd restarts, a handle of a deleted file must be stale
# (never another file), and setattr (times, mode, owner) must work. The NFS
# server itself comes in a later story; this one uses the handles directly.
. "$(dirname "$0")/lib.sh"

FHTOOL=${FHTOOL:?set FHTOOL to the fhtool helper (tests/e2e/fhtool.c)}
H=$T/handles
mkdir -p "$H"

drop_caches() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

# opens_as HANDLE LOCALFILE: the handle opens, and reads LOCALFILE's bytes.
opens_as() {
	"$FHTOOL" open "$MNT" "$H/$1" >"$T/got" && cmp -s "$T/got" "$2"
}

# lists_as HANDLE DIR: the directory handle opens and lists what DIR (a path) lists.
lists_as() {
	"$FHTOOL" open "$MNT" "$H/$1" | sort >"$T/got" && ls -A "$2" | sort >"$T/want" &&
		test -s "$T/want" && cmp -s "$T/got" "$T/want"
}

# stale HANDLE: open_by_handle_at fails with ESTALE.
stale() {
	local out
	if out=$("$FHTOOL" open "$MNT" "$H/$1" 2>&1 >/dev/null); then
		echo "  handle $1 opened" >&2
		return 1
	fi
	case $out in *ESTALE*) return 0 ;; esac
	echo "  $out" >&2
	return 1
}

inos() {
	stat -c '%n %i' "$MNT/nfs" "$MNT/nfs/a.bin" "$MNT/nfs/a.bin.sig" "$MNT/nfs/b.bin" "$MNT/other/c.bin"
}

start_sigfs
make_key nfs
make_key other
head -c 300000 /dev/urandom >"$T/a.bin"
head -c 5000 /dev/urandom >"$T/b.bin"
head -c 7000 /dev/urandom >"$T/c.bin"
cp "$T/a.bin" "$MNT/nfs/a.bin"
cp "$T/b.bin" "$MNT/nfs/b.bin"
cp "$T/c.bin" "$MNT/other/c.bin"
cp "$MNT/nfs/a.bin.sig" "$T/a.bin.sig"

# --- node ids are the backing inode numbers ----------------------------------------------------
for p in nfs nfs/a.bin nfs/a.bin.sig other/c.bin; do
	check "$p: inode number on the mount = backing inode number" \
		test "$(stat -c %i "$MNT/$p")" = "$(stat -c %i "$STATE/inbox/$p")"
done
check "readdir's inode numbers are the same as stat's" bash -c \
	"test \"\$(ls -i '$MNT/nfs' | sort -k2)\" = \"\$(cd '$MNT/nfs' && stat -c '%i %n' * | sort -k2)\""

# --- handles survive the kernel forgetting the inodes --------------------------------------------
check "name_to_handle_at on an inbox file" "$FHTOOL" save "$MNT/nfs/a.bin" "$H/a"
check "name_to_handle_at on a signature" "$FHTOOL" save "$MNT/nfs/a.bin.sig" "$H/asig"
check "name_to_handle_at on a file of another inbox" "$FHTOOL" save "$MNT/other/c.bin" "$H/c"
check "name_to_handle_at on an inbox" "$FHTOOL" save "$MNT/nfs" "$H/nfs"
check "handles of different files differ" bash -c "! cmp -s '$H/a' '$H/c'"
check "open_by_handle_at on the file while it is cached" opens_as a "$T/a.bin"
drop_caches
check "after drop_caches: the file handle opens the same bytes" opens_as a "$T/a.bin"
check "after drop_caches: the signature handle opens the signature" opens_as asig "$T/a.bin.sig"
check "after drop_caches: the other inbox's file" opens_as c "$T/c.bin"
drop_caches
check "after drop_caches: the inbox handle opens and lists the inbox (LOOKUP '..')" lists_as nfs "$MNT/nfs"
check "the signature still verifies through the mount" verify_raw nfs "$T/a.bin" "$MNT/nfs/a.bin.sig"

# --- a deleted file's handle is stale, even when its inode number comes back ------------------
cp "$T/b.bin" "$MNT/nfs/gone.bin"
"$FHTOOL" save "$MNT/nfs/gone.bin" "$H/gone"
gone_ino=$(stat -c %i "$MNT/nfs/gone.bin")
check "the handle of gone.bin opens before it is removed" opens_as gone "$T/b.bin"
rm "$MNT/nfs/gone.bin" "$MNT/nfs/gone.bin.sig"
check "a removed file's handle fails with ESTALE" stale gone
drop_caches
check "and after drop_caches too" stale gone
# Make files until one gets the removed file's inode number back (ext4 reuses them).
reused=
for i in $(seq 1 40); do
	head -c 3000 /dev/urandom >"$T/new.bin"
	cp "$T/new.bin" "$MNT/nfs/new$i.bin"
	for f in "$MNT/nfs/new$i.bin" "$MNT/nfs/new$i.bin.sig"; do
		[ "$(stat -c %i "$f")" = "$gone_ino" ] && reused=$f
	done
	[ -n "$reused" ] && break
done
if [ -n "$reused" ]; then
	echo "  inode $gone_ino came back as ${reused#"$MNT"/}"
	check "a reused inode number: the old handle is still stale" stale gone
	drop_caches
	check "a reused inode number after drop_caches: still stale, not the new file" stale gone
else
	echo "  (inode $gone_ino was not reused by 80 new files; that check is skipped)"
fi

# --- setattr: times, mode, owner ---------------------------------------------------------------
check "touch -d sets the mtime through the mount" touch -d "2001-02-03 04:05:06 UTC" "$MNT/nfs/b.bin"
check "and stat reads it back" test "$(stat -c %Y "$MNT/nfs/b.bin")" = 981173106
check "atime too" test "$(stat -c %X "$MNT/nfs/b.bin")" = 981173106
check "utimes with nanoseconds" python3 -c "
import os, sys
p = sys.argv[1]
os.utime(p, ns=(1234567890123456789, 1111111111987654321))
st = os.stat(p)
sys.exit(0 if (st.st_atime_ns, st.st_mtime_ns) == (1234567890123456789, 1111111111987654321) else 1)
" "$MNT/nfs/b.bin"
check "touch -a changes only the atime" bash -c \
	"touch -a -d '2010-01-01 UTC' '$MNT/nfs/b.bin' && test \"\$(stat -c '%X %Y' '$MNT/nfs/b.bin')\" = '1262304000 1111111111'"
check "touch (now) sets the mtime to now" bash -c \
	"touch '$MNT/nfs/b.bin' && test \$((\$(date +%s) - \$(stat -c %Y '$MNT/nfs/b.bin'))) -lt 5"
check "times are the backing file's" test "$(stat -c %Y "$MNT/nfs/b.bin")" = "$(stat -c %Y "$STATE/inbox/nfs/b.bin")"
check "changing times does not touch the signature" verify_raw nfs "$T/b.bin" "$MNT/nfs/b.bin.sig"
# NFSv4 exclusive create: create, set the times on the open file, then write.
check "exclusive create + futimens + write + close" python3 -c "
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.utime(fd, ns=(1000000000000000000, 1000000000000000000))
st = os.fstat(fd)
if st.st_mtime_ns != 1000000000000000000:
    sys.exit('times not set on the open file')
os.write(fd, open(sys.argv[2], 'rb').read())
os.close(fd)
" "$MNT/nfs/excl.bin" "$T/c.bin"
check "and the file is signed" verify_raw nfs "$T/c.bin" "$MNT/nfs/excl.bin.sig"
check "chmod 640 on a file" chmod 640 "$MNT/nfs/b.bin"
check "reads back 640" test "$(stat -c %a "$MNT/nfs/b.bin")" = 640
check "chown nobody:nogroup on a file" chown nobody:nogroup "$MNT/nfs/b.bin"
check "reads back nobody:nogroup" stat_is "$MNT/nfs/b.bin" "nobody:nogroup 640"
check "on the backing file too" stat_is "$STATE/inbox/nfs/b.bin" "nobody:nogroup 640"
check "chmod 750 and chgrp on the inbox" bash -c "chmod 750 '$MNT/other' && chgrp nogroup '$MNT/other'"
check "inbox reads back root:nogroup 750" stat_is "$MNT/other" "root:nogroup 750"
check "chmod does not touch the signature" verify_raw nfs "$T/b.bin" "$MNT/nfs/b.bin.sig"

# --- a restart: same inode numbers, the old handles still open the same files -------------------
inos >"$T/inos.before"
b_mtime=$(stat -c %Y "$MNT/nfs/b.bin")
stop_sigfs
start_sigfs
# The handles first, before any path lookup could teach the new daemon's kernel the inodes.
check "after a restart: the file handle opens the same bytes" opens_as a "$T/a.bin"
check "after a restart: the signature handle" opens_as asig "$T/a.bin.sig"
check "after a restart: the other inbox's file" opens_as c "$T/c.bin"
check "after a restart: the inbox handle lists the inbox" lists_as nfs "$MNT/nfs"
check "after a restart: the removed file's handle is still stale" stale gone
drop_caches
check "after a restart and drop_caches: the file handle" opens_as a "$T/a.bin"
check "after a restart and drop_caches: the inbox handle" lists_as nfs "$MNT/nfs"
inos >"$T/inos.after"
check "stat's inode numbers are the same before and after the restart" cmp "$T/inos.before" "$T/inos.after"
check "owner and mode survive the restart" stat_is "$MNT/nfs/b.bin" "nobody:nogroup 640"
check "the inbox's group and mode survive the restart" stat_is "$MNT/other" "root:nogroup 750"
check "mtime survives the restart" test "$(stat -c %Y "$MNT/nfs/b.bin")" = "$b_mtime"
check "a handle taken after the restart opens too" bash -c \
	"'$FHTOOL' save '$MNT/nfs/excl.bin' '$H/excl' && '$FHTOOL' open '$MNT' '$H/excl' | cmp -s - '$T/c.bin'"
check "signing still works" bash -c "cp '$T/a.bin' '$MNT/nfs/after.bin' && test -s '$MNT/nfs/after.bin.sig'"
check "and verifies" verify_raw nfs "$T/a.bin" "$MNT/nfs/after.bin.sig"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
