# lib.sh: shared helpers for the end-to-end tests. Source it from a test.
#
# Each test gets a fresh temporary directory with a mount point, a state
# directory and a config file, starts its own sigfsd, and stops it (and
# everything else it started) on exit. Checks count; the test ends with
# "N passed, 0 failed" or exits non-zero at the first failure.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/base.sh"

SIGFSD=${SIGFSD:?set SIGFSD to the sigfsd binary}
SIGFS_SRC=${SIGFS_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
T=$(work_dir /tmp sigfs-e2e)
sigfs_dirs "$T"
PASSED=0
ADMIN_GROUP=sigfs-e2e-admin

export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

cat >"$CONF" <<CONF
[sigfs]
admin_group = $ADMIN_GROUP
close_timeout = 60
CONF

# at_exit CMD: run CMD when the test ends (last registered first), before the
# mount goes; the test's exit status is kept whatever CMD returns.
_at_exit=()
at_exit() {
	_at_exit=("$*" "${_at_exit[@]}")
}

_cleanup() {
	local rc=$? pid=$SIGFS_PID cmd
	trap - EXIT
	for cmd in "${_at_exit[@]}"; do
		eval "$cmd" || true
	done
	if [ -n "$pid" ]; then
		SIGFS_PID=
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	# A daemon the test started detached (not our child) goes with its mount.
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	fi
	if [ $rc -ne 0 ] && [ -f "$LOG" ]; then
		echo "--- sigfsd log (last 40 lines) ---"
		tail -n 40 "$LOG"
		if grep -q -E "ERROR: (Address|Leak)Sanitizer|runtime error" "$LOG"; then
			echo "--- sanitizer report ---"
			grep -E -A40 "ERROR: (Address|Leak)Sanitizer|runtime error" "$LOG" | head -80
		fi
	fi
	rm -rf "$T"
	exit $rc
}
trap _cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

# A check that fails ends the test, unless SIGFS_E2E_KEEP_GOING=1 (to list every
# check an older sigfsd fails: SIGFSD=old/sigfsd SIGFS_E2E_KEEP_GOING=1 bash T.sh).
FAILED=0
check_failed() {
	if [ "${SIGFS_E2E_KEEP_GOING:-0}" = 1 ]; then
		FAILED=$((FAILED + 1))
		echo "FAIL: $*" >&2
		return 0
	fi
	fail "$@"
}

# check DESCRIPTION COMMAND...: the command must succeed.
check() {
	local desc=$1
	shift
	if "$@"; then
		PASSED=$((PASSED + 1))
		echo "ok $PASSED - $desc"
	else
		check_failed "$desc (command: $*)"
	fi
}

# check_fails DESCRIPTION COMMAND...: the command must fail.
check_fails() {
	local desc=$1
	shift
	if "$@"; then
		check_failed "$desc: succeeded, should have failed (command: $*)"
	else
		PASSED=$((PASSED + 1))
		echo "ok $PASSED - $desc"
	fi
}

done_testing() {
	echo "$PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
}

# gpg only imports and verifies here, which needs no agent: without
# --no-autostart it would leave a gpg-agent running per GNUPGHOME.
gpg() {
	command gpg --no-autostart "$@"
}
export -f gpg

# A batch for "backend gone mid-batch" stories.
# batch_copy KEY N: copy N random files, f1..fN (2000 bytes, made once in
# $T/batch), into KEY's inbox four at a time, in the background; BATCH_PID is
# the copying job.
batch_copy() {
	local key=$1 n=$2 i
	mkdir -p "$T/batch"
	for i in $(seq 1 "$n"); do
		[ -e "$T/batch/f$i" ] || head -c 2000 /dev/urandom >"$T/batch/f$i"
	done
	seq 1 "$n" | (cd "$T/batch" && xargs -P4 -I{} cp f{} "$MNT/$key/f{}") &
	BATCH_PID=$!
}

# sigs_of KEY: how many batch files of KEY's inbox have their signature.
sigs_of() {
	find "$MNT/$1" -maxdepth 1 -name 'f*.sig' | wc -l
}

# wait_sigs KEY COUNT: wait (up to 30 s) until COUNT batch files are signed.
wait_sigs() {
	local i
	for i in $(seq 1 600); do
		[ "$(sigs_of "$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# batch_signed KEY N WHAT: the batch ends, every file with a signature that
# verifies, none with .err (three checks, named after WHAT).
batch_signed() {
	local key=$1 n=$2 what=$3
	check "$what: the batch finishes (every copy succeeds)" wait "$BATCH_PID"
	check "$what: all $n files have a .sig" test "$(sigs_of "$key")" -eq "$n"
	check "$what: no .err" prints_nothing find "$MNT/$key" -maxdepth 1 -name 'f*.err'
	check "$what: all $n signatures verify" verify_many "$key" "$MNT/$key" $(seq -f 'f%g' 1 "$n")
}

# Add settings to the config: conf_set SECTION KEY VALUE (section must be sigfs or keys).
conf_set() {
	python3 - "$CONF" "$1" "$2" "$3" <<'PY'
import sys
path, sec, key, val = sys.argv[1:]
lines = open(path).read().splitlines()
out, cur, done = [], None, False
for l in lines:
    s = l.strip()
    if s.startswith('[') and s.endswith(']'):
        if cur == sec and not done:
            out.append(f"{key} = {val}"); done = True
        cur = s[1:-1]
    if cur == sec and s.split('=')[0].strip() == key:
        continue
    out.append(l)
if not done:
    if cur != sec:
        out.append(f"[{sec}]")
    out.append(f"{key} = {val}")
open(path, 'w').write("\n".join(out) + "\n")
PY
}

# try_start_sigfs STATE OUT [ARGS...]: start sigfsd in the foreground (in the
# background of this shell) on state directory STATE, its output appended to
# OUT, and wait for the mount: 0 if it mounted (SIGFS_PID runs: stop_sigfs), 1 if
# it exited (SIGFS_PID empty). Fails the test if neither happens within 10 s.
try_start_sigfs() {
	local state=$1 out=$2
	shift 2
	"$SIGFSD" --foreground --config "$CONF" --state-dir "$state" "$@" "$MNT" >>"$out" 2>&1 &
	SIGFS_PID=$!
	local rc=0
	wait_mount "$SIGFS_PID" "$MNT" || rc=$?
	case $rc in
	0)
		# The keeper mounts before its worker has checked the state directory
		# (fs/keeper.h): started once the worker answers a request. A worker
		# that refuses to start ends, and the keeper with it (status 1).
		if ! timeout 20 stat "$MNT/.ctl" >/dev/null 2>&1; then
			for _ in $(seq 1 200); do
				kill -0 "$SIGFS_PID" 2>/dev/null || break
				sleep 0.05
			done
			kill -0 "$SIGFS_PID" 2>/dev/null &&
				fail "sigfsd mounted $MNT on $state but does not answer"
			wait "$SIGFS_PID" 2>/dev/null || true
			SIGFS_PID=
			return 1
		fi
		# The keeper's only child serves the mount.
		SIGFS_WORKER=$(pgrep -P "$SIGFS_PID" || true)
		return 0
		;;
	1)
		SIGFS_PID=
		return 1
		;;
	esac
	fail "sigfsd neither mounted nor exited within 10 s on $state"
}

# same_daemon: sigfsd runs, with the worker it started with (a crashed
# worker is replaced by the keeper: kill -0 of the keeper would not see it).
same_daemon() {
	[ -n "$SIGFS_WORKER" ] && kill -0 "$SIGFS_PID" &&
		[ "$(pgrep -P "$SIGFS_PID" || true)" = "$SIGFS_WORKER" ]
}

# Start sigfsd on $STATE (output in $LOG) and wait for the mount.
start_sigfs() {
	try_start_sigfs "$STATE" "$LOG" "$@" || fail "sigfsd exited at start: $(tail -n 5 "$LOG")"
}

# exited_cleanly PID LOG: wait for PID (a child of this shell) to end; true if
# its exit status is 0 (sanitizers report there), else says the status and
# LOG's last lines (false, too, for no PID: nothing was running).
# A check of a daemon's stop: check "..." exited_cleanly ...
exited_cleanly() {
	local rc=0
	[ -n "$1" ] || {
		echo "  not running" >&2
		return 1
	}
	wait "$1" || rc=$?
	[ $rc -eq 0 ] || echo "  process $1 exited with status $rc: $(tail -n 20 "$2")" >&2
	return $rc
}

# sigfs_exits_cleanly: unmount and wait for sigfsd; true if it exited with
# status 0 (false, too, if none was running).
sigfs_exits_cleanly() {
	local pid=$SIGFS_PID
	SIGFS_PID=
	[ -z "$pid" ] || fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	exited_cleanly "$pid" "$LOG"
}

# Unmount and wait for sigfsd, if running; its exit status must be 0.
stop_sigfs() {
	[ -z "$SIGFS_PID" ] || sigfs_exits_cleanly || fail "sigfsd did not stop cleanly"
}

# Kill sigfsd with SIGKILL and clear the dead mount.
kill9_sigfs() {
	local pid=$SIGFS_PID
	[ -n "$pid" ] || return 0
	SIGFS_PID=
	kill -9 "$pid"
	wait "$pid" 2>/dev/null || true
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
}

pubkey() {
	cat "$MNT/.ctl/keys/$1/pubkey.pem" >"$T/$1.pub.pem"
	echo "$T/$1.pub.pem"
}

# make_module NAME [MIB]: $T/NAME.ko, a relocatable ELF object with a
# .modinfo section (what modinfo reads of a module), MIB MiB larger.
make_module() {
	cat >"$T/$1.c" <<EOF
static const char modinfo[] __attribute__((section(".modinfo"), used, aligned(1))) =
	"license=GPL\0description=sigfs test module $1\0author=sigfs\0";
static const char pad[${2:-0} * 1048576 + 16] __attribute__((used)) = { 1 };
int init_module(void) { return 0; }
EOF
	gcc -c -O2 -o "$T/$1.ko" "$T/$1.c"
}

# format_signs KEY FORMAT SRC NAME CHECKER WHAT: with format FORMAT (and
# padding pkcs1 for RSA), SRC copied into KEY's inbox as NAME gives
# NAME.signed, which `CHECKER KEY SIGNED` accepts (one check each, saying
# WHAT). KEY's format and padding are set back after.
format_signs() {
	local k=$1 c=$MNT/.ctl/keys/$1 format padding
	format=$(cat "$c/format")
	padding=$(cat "$c/padding")
	[ "$padding" = none ] || echo pkcs1 >"$c/padding"
	check "$k: format $2" bash -c "echo $2 >'$c/format'"
	cp "$3" "$MNT/$k/$4"
	check "$k: $4.signed: $6" "$5" "$k" "$MNT/$k/$4.signed"
	echo "$format" >"$c/format"
	[ "$padding" = none ] || echo "$padding" >"$c/padding"
}

# kmod_signs KEY: a kernel module signed with format kmod verifies (openssl
# cms, KEY's cert.pem) over the module (format_signs).
kmod_signs() {
	[ -e "$T/kmod-test.ko" ] || make_module kmod-test
	format_signs "$1" kmod "$T/kmod-test.ko" kmod-test.ko kmod_checked \
		"verifies (openssl cms, the key's cert.pem)"
}
kmod_checked() {
	cat "$MNT/.ctl/keys/$1/cert.pem" >"$T/$1-cert.pem"
	kmod_ok "$2" "$T/$1-cert.pem" "$T/kmod-test.ko"
}

# mender_signs KEY: a Mender artifact signed with format mender is validated
# by mender-artifact with KEY's pubkey.pem (format_signs).
mender_signs() {
	if [ ! -e "$T/mender-test.mender" ]; then
		head -c 20000 /dev/urandom >"$T/mender-test.img"
		mender-artifact write rootfs-image -t board -n mender-test -f "$T/mender-test.img" \
			-o "$T/mender-test.mender" >/dev/null 2>&1 || fail "mender-artifact write failed"
	fi
	format_signs "$1" mender "$T/mender-test.mender" mender-test.mender mender_checked \
		"mender-artifact validates it (the key's pubkey.pem)"
}
mender_checked() {
	cat "$MNT/.ctl/keys/$1/pubkey.pem" >"$T/$1-pub.pem"
	mender-artifact validate -k "$T/$1-pub.pem" "$2" 2>&1 | grep -q 'validated successfully'
}

# authenticode_signs KEY: systemd-boot signed with format authenticode is
# checked by sbverify with KEY's cert.pem (format_signs).
authenticode_signs() {
	format_signs "$1" authenticode /usr/lib/systemd/boot/efi/systemd-bootx64.efi boot.efi \
		authenticode_checked "sbverify checks it (the key's cert.pem)"
}
authenticode_checked() {
	cat "$MNT/.ctl/keys/$1/cert.pem" >"$T/$1-cert.pem"
	sbverify --cert "$T/$1-cert.pem" "$2" 2>&1 | grep -q 'Signature verification OK'
}

# swu_signs KEY: a .swu image signed whole with format swupdate has a
# sw-description.sig second that openssl cms verifies over sw-description
# with KEY's cert.pem (format_signs).
swu_signs() {
	if [ ! -e "$T/swu-test.swu" ]; then
		rm -rf "$T/swu-test" && mkdir "$T/swu-test"
		printf 'software = { version = "1.0"; };\n' >"$T/swu-test/sw-description"
		head -c 3000 /dev/urandom >"$T/swu-test/image.bin"
		(cd "$T/swu-test" && printf 'sw-description\nimage.bin\n' |
			cpio -o --quiet -H crc >"$T/swu-test.swu") || fail "cpio failed"
	fi
	format_signs "$1" swupdate "$T/swu-test.swu" swu-test.swu swu_checked \
		"its sw-description.sig verifies (openssl cms, the key's cert.pem)"
}
swu_checked() {
	rm -rf "$T/swu-out" && mkdir "$T/swu-out"
	(cd "$T/swu-out" && cpio -i --quiet <"$2") || return 1
	cat "$MNT/.ctl/keys/$1/cert.pem" >"$T/$1-cert.pem"
	openssl cms -verify -binary -inform DER -in "$T/swu-out/sw-description.sig" \
		-content "$T/swu-test/sw-description" -CAfile "$T/$1-cert.pem" -purpose any \
		-out /dev/null 2>/dev/null
}

# attr_refused KEY ATTR VALUE: writing VALUE to .ctl/keys/KEY/ATTR fails with
# EINVAL and the log says why (two checks).
attr_refused() {
	local mark
	mark=$(log_mark)
	check_fails_with "$1: $2 $3 refused: EINVAL" "Invalid argument" \
		bash -c "echo $3 > '$MNT/.ctl/keys/$1/$2'"
	check "$1: the log says why" bash -c "tail -n +\$(($mark + 1)) '$LOG' | grep -q 'key $1: $2: .'"
}

# signs_flat KEY SRC NAME: SRC (large) copied into KEY's inbox as NAME gives
# NAME.signed while the daemon's peak RSS grows by less than 10 MB: the
# artifact is streamed, never held in memory (checks, and the figures).
signs_flat() {
	local before after
	before=$(peak_rss_kb "$SIGFS_PID")
	cp "$2" "$MNT/$1/$3"
	after=$(peak_rss_kb "$SIGFS_PID")
	echo "  peak RSS of the daemon before $3 ($(($(stat -c %s "$2") >> 20)) MiB): $before KiB, after: $after KiB"
	check "$3.signed is made" test -s "$MNT/$1/$3.signed"
	check "  the daemon's peak RSS grew by less than 10 MB" test $((after - before)) -lt 10000
}

# kmod_split SIGNED MODULE P7S: a signed kernel module's parts, as the kernel
# reads them: the trailer "~Module signature appended~\n" (28 bytes), before it
# struct module_signature (12 bytes, id_type 2, the PKCS#7's length big-endian
# in its last 4), before that the PKCS#7 (DER) and the module. Fails on
# anything else.
kmod_split() {
	python3 - "$@" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
magic = b"~Module signature appended~\n"
if len(data) < 40 or not data.endswith(magic):
    sys.exit("no module signature at the end of " + sys.argv[1])
info = data[-40:-28]
sig_len = struct.unpack(">I", info[8:12])[0]
if info[2] != 2 or sig_len == 0 or sig_len > len(data) - 40:
    sys.exit("not a PKCS#7 module signature")
end = len(data) - 40
open(sys.argv[2], "wb").write(data[:end - sig_len])
open(sys.argv[3], "wb").write(data[end - sig_len:end])
PY
}

# kmod_ok SIGNED CERT [MODULE]: the PKCS#7 of the signed module SIGNED
# verifies with openssl cms against CERT (trusted as its own CA) over its
# module part, which is MODULE's bytes when MODULE is given.
kmod_ok() {
	kmod_split "$1" "$T/kmod-part.ko" "$T/kmod-part.p7s" || return 1
	[ -z "${3:-}" ] || cmp -s "$T/kmod-part.ko" "$3" || {
		echo "  the module part of $1 is not $3" >&2
		return 1
	}
	openssl cms -verify -binary -inform DER -in "$T/kmod-part.p7s" -content "$T/kmod-part.ko" \
		-certfile "$2" -CAfile "$2" -purpose any -out /dev/null 2>"$T/kmod-verify.err" || {
		sed 's/^/  /' "$T/kmod-verify.err" >&2
		return 1
	}
}

# verify_raw KEY FILE SIG [DIGEST]: verify a raw signature with the openssl CLI.
verify_raw() {
	local key=$1 file=$2 sig=$3 digest=${4:-sha256} pub alg
	pub=$(pubkey "$key")
	alg=$(cat "$MNT/.ctl/keys/$key/algorithm")
	case $alg in
	ed25519)
		openssl pkeyutl -verify -pubin -inkey "$pub" -rawin -in "$file" -sigfile "$sig" >/dev/null
		;;
	rsa-*)
		if [ "$(cat "$MNT/.ctl/keys/$key/padding")" = pss ]; then
			openssl dgst "-$digest" -verify "$pub" -sigopt rsa_padding_mode:pss \
				-sigopt rsa_pss_saltlen:-2 -signature "$sig" "$file" >/dev/null
		else
			openssl dgst "-$digest" -verify "$pub" -signature "$sig" "$file" >/dev/null
		fi
		;;
	*)
		openssl dgst "-$digest" -verify "$pub" -signature "$sig" "$file" >/dev/null
		;;
	esac
}

# wait_for PATH [SECONDS]: wait until a file exists.
wait_for() {
	local i
	for i in $(seq 1 $((${2:-30} * 20))); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

ensure_group "$ADMIN_GROUP"

# prints_nothing COMMAND...: COMMAND succeeds and prints nothing. A failing
# COMMAND fails too, which test -z "$(COMMAND)" would pass.
prints_nothing() {
	local out
	out=$("$@") || {
		echo "  failed: $*" >&2
		return 1
	}
	[ -z "$out" ] || {
		echo "  printed: $out" >&2
		return 1
	}
}

# no_match GREP-ARGS...: grep finds nothing (status 1). A match fails, and so
# does an error (a missing or unreadable file), which "! grep" would pass.
no_match() {
	local rc=0
	grep -q "$@" || rc=$?
	case $rc in
	1) return 0 ;;
	0) echo "  grep found a match" >&2 ;;
	*) echo "  grep failed (status $rc): grep $*" >&2 ;;
	esac
	return 1
}

# check_fails_with DESCRIPTION MESSAGE COMMAND...: the command must fail and
# its stderr must contain MESSAGE (e.g. "Operation not permitted").
check_fails_with() {
	local desc=$1 msg=$2 out
	shift 2
	if out=$(LC_ALL=C "$@" 2>&1 >/dev/null); then
		check_failed "$desc: succeeded, should have failed with '$msg' (command: $*)"
		return 0
	fi
	case $out in
	*"$msg"*)
		PASSED=$((PASSED + 1))
		echo "ok $PASSED - $desc"
		;;
	*) check_failed "$desc: failed, but not with '$msg': $out (command: $*)" ;;
	esac
}

# stat_is PATH 'OWNER:GROUP MODE' [-L]: owner, group and octal mode of PATH.
stat_is() {
	local got
	got=$(stat -c '%U:%G %a' "$1")
	[ "$got" = "$2" ] || {
		echo "  $1: got '$got', want '$2'" >&2
		return 1
	}
}

# py_errno PYTHON-STATEMENTS...: run them (os imported) and print the errno name
# of the first OSError, or OK.
py_errno() {
	python3 -c "
import os, errno, sys
try:
    exec(sys.argv[1])
    print('OK')
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
" "$1"
}

# log_mark: the current length of $LOG (in lines); log_since MARK: what came after.
log_mark() {
	wc -l <"$LOG"
}

log_since() {
	tail -n +$(($1 + 1)) "$LOG"
}

# verify_many KEY DIR NAME...: verify DIR/NAME.sig against DIR/NAME for every
# NAME with KEY's public key (raw format, the key's digest and padding) in one
# process; prints the names that fail (none: all verify) and fails if any does.
verify_many() {
	local key=$1 dir=$2
	shift 2
	python3 - "$(cat "$MNT/.ctl/keys/$key/pubkey.pem")" "$(cat "$MNT/.ctl/keys/$key/algorithm")" \
		"$(cat "$MNT/.ctl/keys/$key/digest")" "$(cat "$MNT/.ctl/keys/$key/padding" 2>/dev/null || echo pss)" \
		"$dir" "$@" <<'PY'
import sys, os
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, ed25519
pem, alg, dg, pad, d = sys.argv[1:6]
pub = serialization.load_pem_public_key(pem.encode())
h = {"sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384,
     "sha512": hashes.SHA512, "sha512-224": hashes.SHA512_224, "sha512-256": hashes.SHA512_256,
     "sha3-224": hashes.SHA3_224, "sha3-256": hashes.SHA3_256, "sha3-384": hashes.SHA3_384,
     "sha3-512": hashes.SHA3_512, "sha1": hashes.SHA1}[dg]
bad = 0
for n in sys.argv[6:]:
    try:
        data = open(os.path.join(d, n), "rb").read()
        sig = open(os.path.join(d, n + ".sig"), "rb").read()
        if alg == "ed25519":
            pub.verify(sig, data)
        elif alg.startswith("rsa"):
            p = padding.PKCS1v15() if pad == "pkcs1" else \
                padding.PSS(mgf=padding.MGF1(h()), salt_length=padding.PSS.DIGEST_LENGTH)
            pub.verify(sig, data, p, h())
        else:
            pub.verify(sig, data, ec.ECDSA(h()))
    except Exception as e:
        print(f"  {n}: {type(e).__name__} {e}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
}

# wait_gone PATH [SECONDS]: wait until a path no longer exists (the kernel may
# cache a directory entry of the mount for up to a second).
wait_gone() {
	local i
	for i in $(seq 1 $((${2:-3} * 20))); do
		[ ! -e "$1" ] && return 0
		sleep 0.05
	done
	return 1
}

# poll_sigs DIR STOPFILE FETCH...: until STOPFILE exists, run `FETCH... DIR/cur`
# (cp SIG, an NFS get of SIG ...) as often as possible and keep each distinct
# non-empty result in DIR as 1.sig, 2.sig ...: every signature a reader could
# have seen while a file was written. Run it in the background; all_verify
# checks what it kept.
poll_sigs() {
	local dir=$1 stop=$2 n=0
	shift 2
	mkdir -p "$dir"
	while [ ! -e "$stop" ]; do
		if "$@" "$dir/cur" 2>/dev/null && [ -s "$dir/cur" ] &&
			! { [ "$n" -gt 0 ] && cmp -s "$dir/cur" "$dir/$n.sig"; }; then
			n=$((n + 1))
			cp "$dir/cur" "$dir/$n.sig"
		fi
	done
}

# all_verify VERIFY KEY DIR LOCAL: poll_sigs kept at least one signature in DIR
# and each verifies over LOCAL (`VERIFY KEY LOCAL SIG`: verify_raw, sverify);
# says which do not, and how many it saw.
all_verify() {
	local verify=$1 key=$2 dir=$3 s bad=0 count=0
	for s in "$dir"/[0-9]*.sig; do
		[ -e "$s" ] || continue
		count=$((count + 1))
		"$verify" "$key" "$4" "$s" 2>/dev/null || {
			echo "  $(basename "$s") of those the poller saw does not verify over the final content" >&2
			bad=$((bad + 1))
		}
	done
	echo "# the poller saw $count distinct .sig" >&2
	[ "$count" -ge 1 ] && [ "$bad" = 0 ]
}

# sign_on KEY ALG [PADDING]: set the key's algorithm (a key that has signed keeps
# it; the padding may change), sign 30 KB through its inbox, verify with openssl.
# Uses $K (the test's .ctl/keys directory).
sign_on() {
	local key=$1 alg=$2 pad=${3:-}
	[ "$(cat "$K/$key/algorithm")" = "$alg" ] ||
		check "$key: algorithm set to $alg (regenerated on its backend)" \
			bash -c "echo $alg >'$K/$key/algorithm'"
	[ -z "$pad" ] || check "$key: padding $pad" bash -c "echo $pad >'$K/$key/padding'"
	head -c 30000 /dev/urandom >"$T/$key.bin"
	cp "$T/$key.bin" "$MNT/$key/doc.bin"
	check "$key ($alg${pad:+ $pad}): signature verifies with openssl" \
		verify_raw "$key" "$T/$key.bin" "$MNT/$key/doc.bin.sig" "$(cat "$K/$key/digest")"
	rm -f "$MNT/$key"/doc.bin*
}

# sign_on_ec_and_rsa BACKEND: keys p256, p384, p521 and rsa made on BACKEND
# sign and verify (rsa with pss, then pkcs1), and p256 and rsa sign a kernel
# module (kmod), a Mender artifact (mender), a UEFI image (authenticode) and a
# .swu image (swupdate): what every backend must do.
sign_on_ec_and_rsa() {
	mkdir "$K/p256@$1" "$K/p384@$1" "$K/p521@$1" "$K/rsa@$1"
	sign_on p256 ecdsa-p256
	sign_on p384 ecdsa-p384
	sign_on p521 ecdsa-p521
	sign_on rsa rsa-2048 pss
	sign_on rsa rsa-2048 pkcs1
	# A kernel module (format kmod): the backend signs the module's digest;
	# a Mender artifact (format mender): the manifest's; a UEFI image
	# (format authenticode): the signed attributes'.
	kmod_signs p256
	kmod_signs rsa
	mender_signs p256
	mender_signs rsa
	authenticode_signs p256
	authenticode_signs rsa
	swu_signs p256
	swu_signs rsa
}

# The NetHSM-compatible test server (tests/nethsm/server.py), for stories with
# keys on a NetHSM. NH_PORT is its port (0 before the first start: any free
# one; later starts reuse it); NH_OPW and NH_APW are the Operator's and the
# Administrator's passwords of namespaces ops and tg (users ops~op, ops~admin ...).
NH_OPW=op-Secret-7781
NH_APW=admin-Secret-4410
NH_PID=
NH_PORT=0

# start_nethsm [FAULT OPTIONS...]: start the server (same port and keys as before).
start_nethsm() {
	run_nethsm "$T" "$NH_PORT" --verbose \
		--user "ops~op:Operator:$NH_OPW" --user "ops~admin:Administrator:$NH_APW" \
		--user "tg~op:Operator:$NH_OPW" --user "tg~admin:Administrator:$NH_APW" "$@" ||
		fail "the NetHSM test server did not start: $(cat "$T/nethsm.log")"
}

stop_nethsm() {
	stop_pid "$NH_PID"
	NH_PID=
}

# nethsm_backend NAME NAMESPACE RETRY_SECONDS: a [backend NAME] section for the
# server's namespace NAMESPACE (password files in $T), appended to the config.
nethsm_backend() {
	printf '%s\n' "$NH_OPW" >"$T/op.pw"
	printf '%s\n' "$NH_APW" >"$T/admin.pw"
	chmod 0600 "$T/op.pw" "$T/admin.pw"
	cat >>"$CONF" <<EOF
[backend $1]
type = nethsm
url = https://127.0.0.1:$NH_PORT
user = $2~op
password_file = $T/op.pw
admin_user = $2~admin
admin_password_file = $T/admin.pw
ca_file = $T/nethsm/cert.pem
retry_seconds = $3
EOF
}
