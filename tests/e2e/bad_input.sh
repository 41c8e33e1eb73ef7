#!/bin/bash
# Story: clients send everything wrong that can be sent: empty files, broken
# digest lines, names that are too long or hold a newline, links, fifos,
# directories, bad key names, signing requests this version does not know.
# Each gets a clear error (errno and/or a one-line NAME.err), and the daemon
# keeps serving: a normal copy afterwards is signed and the audit log is intact.
. "$(dirname "$0")/lib.sh"

start_sigfs
make_key k
IN=$MNT/k
head -c 100000 /dev/urandom >"$T/fw.bin"
SUM=$(sha256sum "$T/fw.bin" | cut -d' ' -f1)

# serving: the daemon is alive, mounted and answering.
serving() {
	same_daemon && mountpoint -q "$MNT" && grep -q '^queue:' "$MNT/.ctl/status"
}

# err_is NAME TEXT: NAME.err appears (at once or at the release), is one line and holds TEXT.
err_is() {
	wait_for "$IN/$1.err" 10 || { echo "  no $1.err" >&2; return 1; }
	[ "$(wc -l <"$IN/$1.err")" = 1 ] || { echo "  $1.err is not one line" >&2; return 1; }
	grep -qF -- "$2" "$IN/$1.err" || { echo "  $1.err: $(cat "$IN/$1.err")" >&2; return 1; }
	[ ! -e "$IN/$1.sig" ] || { echo "  $1.sig exists too" >&2; return 1; }
}

# --- empty files ---------------------------------------------------------------------------
# Empty artifacts are an error, but close() returns 0 for them (docs/decisions.md #5:
# a descriptor that never wrote does not sign at its close).
: >"$T/empty"
check "cp of an empty file returns (decisions.md #5)" cp "$T/empty" "$IN/empty.bin"
check "empty file: empty.bin.err says the file is empty" err_is empty.bin "the file is empty"
check "touch of a new file: .err too" bash -c "touch '$IN/touched.bin'"
check "touched.bin.err says the file is empty" err_is touched.bin "the file is empty"
check "0-byte digest file returns" cp "$T/empty" "$IN/zero.bin.sha256"
check "0-byte digest file: zero.bin.err says empty digest file" err_is zero.bin "empty digest file"
printf '\n' >"$T/nl"
check_fails_with "digest file with only a newline: EIO" "Input/output error" cp "$T/nl" "$IN/nl.bin.sha256"
check "nl.bin.err says empty digest file" err_is nl.bin "empty digest file"
check "serving after empty files" serving

# --- broken digest lines: NAME.err with a reason ---------------------------------------------
printf '%s  short.bin\n' "${SUM:0:63}" >"$T/l"
check_fails_with "digest line with 63 hex digits: EIO" "Input/output error" cp "$T/l" "$IN/short.bin.sha256"
check "short.bin.err: needs 64 hex digits, found 63" err_is short.bin "sha256 needs 64 hex digits, found 63"
printf '%s0  long.bin\n' "$SUM" >"$T/l"
check_fails_with "digest line with 65 hex digits: EIO" "Input/output error" cp "$T/l" "$IN/long.bin.sha256"
check "long.bin.err: found 65" err_is long.bin "found 65"
printf '%s  sha512.bin\n' "$SUM" >"$T/l"
check_fails_with "a sha256 line in a .sha512 file: EIO" "Input/output error" cp "$T/l" "$IN/sha512.bin.sha512"
check "sha512.bin.err: needs 128 hex digits" err_is sha512.bin "sha512 needs 128 hex digits, found 64"
printf '%sg%s  nonhex.bin\n' "${SUM:0:5}" "${SUM:6}" >"$T/l"
check_fails_with "non-hex digit in the line: EIO" "Input/output error" cp "$T/l" "$IN/nonhex.bin.sha256"
check "nonhex.bin.err: not a hex digit at position" err_is nonhex.bin "not a hex digit at position"
printf '%s  other.bin\n' "$SUM" >"$T/l"
check_fails_with "digest line naming another file: EIO" "Input/output error" cp "$T/l" "$IN/named.bin.sha256"
check "named.bin.err: the line names other.bin" err_is named.bin "the line names other.bin, not named.bin"
printf '%s xjunk.bin\n' "$SUM" >"$T/l"
check_fails_with "one space and no '*' before the name: EIO" "Input/output error" cp "$T/l" "$IN/junk.bin.sha256"
check "junk.bin.err: after the digest expected" err_is junk.bin "after the digest expected"
check "no .sig for any broken digest line" bash -c "! ls '$IN' | grep -q '\.sig$'"
check "serving after broken digest lines" serving

# --- .<digest> files that are not digest lines are signed as files ---------------------------
sha256sum "$T/fw.bin" "$T/empty" >"$T/multi"
cp "$T/multi" "$IN/multi.sha256"
check "several lines: signed as a file (multi.sha256.sig)" verify_raw k "$T/multi" "$IN/multi.sha256.sig"
check "several lines: no multi.sig and no .err" bash -c "test ! -e '$IN/multi.sig' && test ! -e '$IN/multi.sha256.err'"
head -c 3000 /dev/urandom >"$T/bin"
printf '\0' >>"$T/bin"
cp "$T/bin" "$IN/blob.sha256"
check "binary content: signed as a file (blob.sha256.sig)" verify_raw k "$T/bin" "$IN/blob.sha256.sig"
printf 'SHA256 (fw.bin) = %s\n' "$SUM" >"$T/bsd"
cp "$T/bsd" "$IN/fw.bin.sha256"
check "a BSD-style (--tag) line: signed as a file" verify_raw k "$T/bsd" "$IN/fw.bin.sha256.sig"
printf '%s  good.bin\n' "$SUM" >"$T/l"
cp "$T/l" "$IN/good.bin.sha256"
check "a correct digest line after all that: good.bin.sig verifies against the file" \
	verify_raw k "$T/fw.bin" "$IN/good.bin.sig"

# --- names -----------------------------------------------------------------------------------
# NAME.minisig (8 bytes, the longest suffix) must fit in 255 bytes: names are at most 247.
n247=$(printf 'a%.0s' $(seq 247))
for len in 248 253 255; do
	name=$(printf 'b%.0s' $(seq "$len"))
	check "a $len-byte name: ENAMETOOLONG" test "$(py_errno "open('$IN/$name', 'wb').write(b'x')")" = ENAMETOOLONG
	check "  and no such file" test ! -e "$STATE/inbox/k/$name"
done
check_fails_with "cp to a 254-byte name: File name too long" "File name too long" \
	cp "$T/fw.bin" "$IN/$(printf 'c%.0s' $(seq 254))"
check "a 247-byte name works" cp "$T/fw.bin" "$IN/$n247"
check "and gets its .sig, a 251-byte name in the listing" test "$(python3 -c "
import os, sys
print([n for n in os.listdir(sys.argv[1]) if len(n) == 251] == [sys.argv[2] + '.sig'])" "$IN" "$n247")" = True
check "that verifies" verify_raw k "$T/fw.bin" "$IN/$n247.sig"
check "rename to a 247-byte name works" \
	bash -c "cp '$T/fw.bin' '$IN/.tmp' && mv '$IN/.tmp' '$IN/${n247:0:246}x'"
check "and the renamed file gets its .sig (signing after a rename does not wait)" wait_for "$IN/${n247:0:246}x.sig" 10
check "which verifies" verify_raw k "$T/fw.bin" "$IN/${n247:0:246}x.sig"
check "rename to a 248-byte name: ENAMETOOLONG" test "$(py_errno "
open('$IN/.tmp2', 'wb').write(b'x')
os.rename('$IN/.tmp2', '$IN/$(printf 'd%.0s' $(seq 248))')")" = ENAMETOOLONG
check "a name with a newline: EINVAL" test "$(py_errno "open('$IN/new\nline', 'wb').write(b'x')")" = EINVAL
check "a name ending in a newline: EINVAL" test "$(py_errno "open('$IN/trail\n', 'wb').write(b'x')")" = EINVAL
check "rename to a name with a newline: EINVAL" test "$(py_errno "os.rename('$IN/.tmp2', '$IN/x\ny')")" = EINVAL
check "no file with a newline in its name" prints_nothing find "$STATE/inbox/k" -name "*
*"
check "serving after bad names" serving

# --- links, fifos, devices, directories: EPERM -------------------------------------------------
check_fails_with "ln -s in an inbox: EPERM" "Operation not permitted" ln -s /etc/passwd "$IN/sym"
check_fails_with "ln (hard link) in an inbox: EPERM" "Operation not permitted" ln "$IN/good.bin.sha256" "$IN/hard"
check_fails_with "mkfifo in an inbox: EPERM" "Operation not permitted" mkfifo "$IN/fifo"
check_fails_with "mknod (char device) in an inbox: EPERM" "Operation not permitted" mknod "$IN/null" c 1 3
check_fails_with "mknod (block device) in an inbox: EPERM" "Operation not permitted" mknod "$IN/blk" b 7 0
check "unix socket in an inbox: EPERM" test "$(py_errno "
import socket
socket.socket(socket.AF_UNIX).bind('$IN/sock')")" = EPERM
check_fails_with "mkdir in an inbox: EPERM" "Operation not permitted" mkdir "$IN/sub"
check_fails_with "ln -s at the top: EPERM" "Operation not permitted" ln -s k "$MNT/alias"
check "none of them exists in the inbox" bash -c \
	"cd '$STATE/inbox/k' && for f in sym hard fifo null blk sock sub; do test ! -e \$f && test ! -L \$f || exit 1; done"
check "serving after links and special files" serving

# --- bad key names ---------------------------------------------------------------------------
K=$MNT/.ctl/keys
check_fails_with "key name '..': refused" "File exists" mkdir "$K/.."
check_fails_with "key name '.': refused" "File exists" mkdir "$K/."
check_fails_with "key name with a leading '.': EINVAL" "Invalid argument" mkdir "$K/.hidden"
check_fails_with "key name with '..' inside: EINVAL" "Invalid argument" mkdir "$K/a..b"
check_fails_with "key name ending in '..': EINVAL" "Invalid argument" mkdir "$K/ab.."
check_fails_with "key name with '/' (a path): no such key dir" "No such file or directory" mkdir "$K/x/y"
check_fails_with "key name with a newline: EINVAL" "Invalid argument" mkdir "$K/a
b"
check "python mkdir of a key name with a space: EINVAL" test "$(py_errno "os.mkdir('$K/a b')")" = EINVAL
check "no such keys were made" test "$(ls -A "$K")" = k
check "and no such inboxes" test "$(ls -A "$MNT" | tr '\n' ' ')" = ".ctl k "
check "serving after bad key names" serving

# --- a malformed signing request (docs/requests.md; more in signing_requests.sh) ----------------
printf '{"version": "1", "required": {"input": {"type": "sha256", "value": "%s"}}}\n' "$SUM" >"$T/req"
check_fails_with "cp of NAME.sigreq: EIO" "Input/output error" cp "$T/req" "$IN/pkg.sigreq"
check "pkg.sigreq: pkg.err says the version is malformed" err_is pkg "the request's version \"1\" is not MAJOR.MINOR.PATCH"
check "and no .sig, no pkg.sigreq.err" bash -c "test ! -e '$IN/pkg.sig' && test ! -e '$IN/pkg.sigreq.sig' && test ! -e '$IN/pkg.sigreq.err'"
check "serving after a signing request" serving

# --- and after all of that, a normal copy is signed ----------------------------------------------
check "a normal cp returns with its .sig" bash -c "cp '$T/fw.bin' '$IN/final.bin' && test -s '$IN/final.bin.sig'"
check "which verifies" verify_raw k "$T/fw.bin" "$IN/final.bin.sig"
errs=$(find "$IN" -maxdepth 1 -name '*.err' | wc -l)
check "status counts every failure: $errs, one per .err" \
	test "$(sed -n 's/^failed: //p' "$MNT/.ctl/status")" -eq "$errs"
lines=$(wc -l <"$LOG")
check "the daemon exits cleanly (status 0)" sigfs_exits_cleanly
# First start: a message left by a lookup that was allowed to fail must not be logged at the stop.
check "its stop logs no error" no_match "error:" <(tail -n "+$((lines + 1))" "$LOG")
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
