# base.sh: helpers with no side effects, for the end-to-end tests (lib.sh
# sources it) and the benchmarks (bench/lib.sh sources it), so that each is
# written once. Sourcing it defines functions and nothing else.

SIGFS_NETHSM_SERVER=$(cd "$(dirname "${BASH_SOURCE[0]}")/../nethsm" && pwd)/server.py

# work_dir PARENT PREFIX: make a fresh directory PARENT/PREFIX.XXXXXX that
# users the tests run as may enter (mode 0755), and print its path.
work_dir() {
	local d
	d=$(mktemp -d "$1/$2.XXXXXX")
	chmod 755 "$d"
	echo "$d"
}

# sigfs_dirs DIR: where a sigfsd run keeps its files: MNT (made), STATE, CONF
# and LOG in DIR; SIGFS_PID (none yet) is the sigfsd started on them.
sigfs_dirs() {
	MNT=$1/mnt
	STATE=$1/state
	CONF=$1/sigfs.conf
	LOG=$1/sigfsd.log
	mkdir -p "$MNT"
	SIGFS_PID=
	SIGFS_WORKER=
}

# wait_until CMD...: retry CMD (quietly) for up to 20 s; its last status.
wait_until() {
	local i
	for i in $(seq 1 400); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	"$@"
}

# wait_mount PID MOUNTPOINT: wait up to 10 s for PID to mount MOUNTPOINT: 0 when
# mounted, 1 when PID exited first (reaped), 2 when neither happened.
wait_mount() {
	for _ in $(seq 1 200); do
		mountpoint -q "$2" && return 0
		if ! kill -0 "$1" 2>/dev/null; then
			wait "$1" 2>/dev/null || true
			return 1
		fi
		sleep 0.05
	done
	return 2
}

# stop_pid PID: SIGTERM to PID, if any, and wait for it whatever its status.
stop_pid() {
	[ -n "$1" ] || return 0
	kill -TERM "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# make_key NAME [ALGORITHM]: create a key through the control tree of $MNT.
make_key() {
	mkdir "$MNT/.ctl/keys/$1"
	if [ -n "${2:-}" ]; then
		echo "$2" >"$MNT/.ctl/keys/$1/algorithm"
	fi
}

# Create a system user (and group) for permission tests, once per machine.
ensure_user() {
	id -u "$1" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$1"
}

ensure_group() {
	getent group "$1" >/dev/null || groupadd --system "$1"
}

# as USER CMD...: run a command as USER with USER's groups.
as() {
	local u=$1
	shift
	setpriv --reuid="$u" --regid="$(id -g "$u")" --init-groups -- "$@"
}

# softhsm_token DIR LABEL PIN: a SoftHSM2 token in DIR/tokens (SOFTHSM2_CONF is
# exported) and its user PIN in DIR/pin, mode 0600, as a pkcs11 backend reads it.
softhsm_token() {
	mkdir -p "$1/tokens"
	cat >"$1/softhsm2.conf" <<EOF
directories.tokendir = $1/tokens
objectstore.backend = file
log.level = ERROR
EOF
	export SOFTHSM2_CONF=$1/softhsm2.conf
	softhsm2-util --init-token --free --label "$2" --so-pin 1234 --pin "$3" >/dev/null
	install -m 0600 /dev/null "$1/pin"
	printf '%s\n' "$3" >"$1/pin"
}

# run_nethsm DIR PORT [SERVER OPTIONS...]: start tests/nethsm/server.py with its
# state in DIR/nethsm on PORT (0: any free one), output in DIR/nethsm.out and
# DIR/nethsm.log; NH_PID is the server, NH_PORT its port. 1 if it did not start.
run_nethsm() {
	local dir=$1 port=$2
	shift 2
	# Emptied here, not only by the redirection below, which the background
	# child makes later: the loop must not read the last server's port.
	: >"$dir/nethsm.out"
	/usr/bin/python3 "$SIGFS_NETHSM_SERVER" --state "$dir/nethsm" --port "$port" "$@" \
		>"$dir/nethsm.out" 2>>"$dir/nethsm.log" &
	NH_PID=$!
	for _ in $(seq 1 100); do
		grep -q '^port ' "$dir/nethsm.out" 2>/dev/null && break
		kill -0 "$NH_PID" 2>/dev/null || break
		sleep 0.1
	done
	NH_PORT=$(awk '/^port / {print $2}' "$dir/nethsm.out")
	[ -n "$NH_PORT" ]
}

# port_free_on_both ADDR1 ADDR2: a TCP port free on both addresses (none: empty).
port_free_on_both() {
	/usr/bin/python3 - "$1" "$2" <<'PY'
import socket, sys
for _ in range(100):
    a = socket.socket(); a.bind((sys.argv[1], 0)); port = a.getsockname()[1]
    b = socket.socket()
    try:
        b.bind((sys.argv[2], port))
    except OSError:
        continue
    print(port); break
PY
}

# peak_rss_kb PID: the largest peak RSS (VmHWM, KiB) of PID and its children
# (a keeper's worker).
peak_rss_kb() {
	local p max=0 v
	for p in "$1" $(pgrep -P "$1" || true); do
		v=$(awk '/^VmHWM:/ { print $2 }' "/proc/$p/status" 2>/dev/null || echo 0)
		[ "${v:-0}" -gt "$max" ] && max=$v
	done
	echo "$max"
}
