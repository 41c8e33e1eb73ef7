# spoollib.sh: helpers of the spool stories (sigfsd --spool DIR, issue 11).
# Source it after lib.sh.
#
# The spool is $SPOOL ($T/spool): sigfsd makes SPOOL/KEY/ for every key. Keys
# are made through a mount's .ctl (the key store is shared), so a story first
# runs sigfsd with both --spool and a mount point (start_sigfs --spool "$SPOOL",
# SIGFS_PID as for any mount), makes its keys, keeps a copy of their public
# side (save_keys), and may then run the spool alone on the same state
# directory (start_spool_only: no FUSE, SPOOL_PID). Signatures are verified
# against the saved copies (sverify, sverify_many), mount or not.
#
# Readiness of a spool without a mount: the key "probe" (made by the story
# with its other keys) gets a new file; the daemon is ready when its .sig
# verifies (spool_probe). That proves the watches or the start-up scan work,
# whichever came first, without relying on a log line.

SPOOL=$T/spool
SPOOL_KEYS=$T/spool-keys
SPOOL_PID=
SPOOL_PROBES=0
mkdir -p "$SPOOL" "$SPOOL_KEYS/.ctl/keys"
chmod 0755 "$SPOOL"

# save_keys KEY...: copy each key's public side from the mount's .ctl to
# $SPOOL_KEYS, where sverify finds it once no mount runs.
save_keys() {
	local k f
	for k in "$@"; do
		mkdir -p "$SPOOL_KEYS/.ctl/keys/$k"
		for f in pubkey.pem algorithm digest padding format; do
			[ ! -e "$MNT/.ctl/keys/$k/$f" ] || cat "$MNT/.ctl/keys/$k/$f" >"$SPOOL_KEYS/.ctl/keys/$k/$f"
		done
		[ -s "$SPOOL_KEYS/.ctl/keys/$k/pubkey.pem" ] || fail "save_keys: no public key of $k"
	done
}

# sverify KEY FILE SIG: verify_raw (openssl) with the saved public key.
sverify() {
	MNT=$SPOOL_KEYS verify_raw "$@"
}

# sverify_many KEY DIR NAME...: verify_many with the saved public key.
sverify_many() {
	MNT=$SPOOL_KEYS verify_many "$@"
}

# signed_over KEY LOCAL SIG [SECONDS]: wait (default 30 s) until SIG exists
# and verifies over LOCAL's bytes; quiet until the last try.
signed_over() {
	for _ in $(seq 1 $((${4:-30} * 20))); do
		[ -e "$3" ] && sverify "$1" "$2" "$3" 2>/dev/null && return 0
		sleep 0.05
	done
	[ -e "$3" ] || { echo "  $3 did not appear" >&2; return 1; }
	sverify "$1" "$2" "$3"
}

# spool_probe: a new file in SPOOL/probe/ gets its .sig within 20 s (the
# daemon runs and signs in its spool). Fails if SPOOL_PID (when set) exits.
spool_probe() {
	local p
	SPOOL_PROBES=$((SPOOL_PROBES + 1))
	p=$SPOOL/probe/probe-$SPOOL_PROBES.bin
	head -c 100 /dev/urandom >"$T/probe.src"
	cp "$T/probe.src" "$p" 2>/dev/null || true
	for _ in $(seq 1 400); do
		if [ -e "$p.sig" ] && sverify probe "$T/probe.src" "$p.sig" 2>/dev/null; then
			return 0
		fi
		if [ -n "$SPOOL_PID" ] && ! kill -0 "$SPOOL_PID" 2>/dev/null; then
			echo "  the spool daemon exited: $(tail -n 5 "$LOG")" >&2
			return 1
		fi
		# Until the daemon made SPOOL/probe, the copy above failed.
		[ -e "$p" ] || cp "$T/probe.src" "$p" 2>/dev/null || true
		sleep 0.05
	done
	echo "  $p.sig did not appear within 20 s" >&2
	return 1
}

# start_spool_only [ARGS...]: sigfsd with the spool and no mount point, on
# $STATE, $CONF, output appended to $LOG; ARGS are e.g. --spool "$SPOOL" (or
# nothing, with [spool] dir in the config). Returns once it signs (spool_probe).
start_spool_only() {
	[ -z "$SPOOL_PID" ] || fail "start_spool_only: a spool daemon runs already ($SPOOL_PID)"
	"$SIGFSD" --foreground --config "$CONF" --state-dir "$STATE" "$@" >>"$LOG" 2>&1 &
	SPOOL_PID=$!
	spool_probe || fail "sigfsd $* (spool only) did not start signing: $(tail -n 5 "$LOG")"
}

# spool_children: the processes sigfsd started (a keeper's worker, if any).
spool_children() {
	[ -z "$SPOOL_PID" ] || pgrep -P "$SPOOL_PID" || true
}

# stop_spool_only: SIGTERM to the spool daemon; true if it exits with status
# 0 within 20 s (SIGKILL after that, and false).
stop_spool_only() {
	local pid=$SPOOL_PID
	SPOOL_PID=
	[ -n "$pid" ] || { echo "  no spool daemon runs" >&2; return 1; }
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 400); do
		kill -0 "$pid" 2>/dev/null || break
		# A zombie is gone as far as we care: wait reaps it below.
		[ "$(ps -o stat= -p "$pid" 2>/dev/null | cut -c1)" = Z ] && break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null && [ "$(ps -o stat= -p "$pid" | cut -c1)" != Z ]; then
		echo "  sigfsd $pid ignored SIGTERM for 20 s: SIGKILL" >&2
		# shellcheck disable=SC2046
		kill -KILL "$pid" $(pgrep -P "$pid" || true) 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		return 1
	fi
	exited_cleanly "$pid" "$LOG"
}

# kill9_spool_only: SIGKILL to the spool daemon and the processes it started,
# all at once (a keeper would otherwise start a new worker).
kill9_spool_only() {
	local pid=$SPOOL_PID kids
	[ -n "$pid" ] || return 0
	SPOOL_PID=
	kids=$(pgrep -P "$pid" || true)
	# shellcheck disable=SC2086
	kill -9 "$pid" $kids 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# At the end of the story a spool daemon still running is stopped (by its PID).
at_exit '[ -z "$SPOOL_PID" ] || stop_spool_only >/dev/null 2>&1'

# python_inotify: a Python snippet (ctypes, no module to install) defining
# watch(dir, mask) -> fd and events(fd, timeout) -> [(mask, name)], for
# helpers that must see the spool's events themselves.
python_inotify() {
	cat <<'PY'
import ctypes, os, select, struct
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
IN_MODIFY, IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW = 0x2, 0x8, 0x80, 0x100, 0x4000
def watch(d, mask):
    fd = _libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0 or _libc.inotify_add_watch(fd, d.encode(), mask) < 0:
        raise OSError(ctypes.get_errno(), "inotify " + d)
    return fd
def events(fd, timeout):
    if not select.select([fd], [], [], timeout)[0]:
        return []
    buf, out, i = os.read(fd, 1 << 16), [], 0
    while i < len(buf):
        _, mask, _, n = struct.unpack_from("iIII", buf, i)
        out.append((mask, buf[i + 16:i + 16 + n].rstrip(b"\0").decode(errors="replace")))
        i += 16 + n
    return out
PY
}
