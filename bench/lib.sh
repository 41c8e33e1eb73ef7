# bench/lib.sh: what the benchmark scripts share; source it after setting
# BENCH_NAME (the prefix of messages). Helpers the end-to-end tests use as well
# (make_key, run_nethsm, softhsm_token, wait_mount, stop_pid, as ...) come from
# tests/e2e/base.sh, so each is written once.
. "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e/base.sh"

die() {
	echo "${BENCH_NAME:-bench}: $*" >&2
	exit 1
}

median() { # numbers on stdin -> median
	sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b > 0) ? a / b : 0}'; }

# bench_workdir PREFIX: a fresh work dir W under BENCH_BASE (default /var/lib,
# a disk, not tmpfs) with MNT, STATE, CONF and LOG in it; SIGFS_PID empty.
bench_workdir() {
	W=$(work_dir "${BENCH_BASE:-/var/lib}" "$1")
	sigfs_dirs "$W"
}

# start_sigfs [ARGS...]: sigfsd ($SIGFSD) on $CONF, $STATE and $MNT (ARGS
# before the mount point, e.g. --spool DIR), output in $LOG, in the
# background; returns once mounted, dies if it is not.
start_sigfs() {
	"$SIGFSD" --foreground --config "$CONF" --state-dir "$STATE" "$@" "$MNT" >>"$LOG" 2>&1 &
	SIGFS_PID=$!
	local rc=0
	wait_mount "$SIGFS_PID" "$MNT" || rc=$?
	case $rc in
	0) return 0 ;;
	1) die "sigfsd exited at start: $(tail -n 5 "$LOG")" ;;
	esac
	die "sigfsd did not mount $MNT"
}

# stop_sigfs: stop the sigfsd this script started: unmount (it exits with its
# mount), give it 10 s, then SIGTERM and SIGKILL by its PID.
stop_sigfs() {
	local pid=$SIGFS_PID
	[ -n "$pid" ] || return 0
	SIGFS_PID=
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" 2>/dev/null || umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
	fi
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "${BENCH_NAME:-bench}: sigfsd $pid still running, sending SIGTERM" >&2
		kill -TERM "$pid" 2>/dev/null || true
		sleep 1
		kill -KILL "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
}

# bench_finish RC: the end of a benchmark (its EXIT trap, after it stopped its
# own peers): sigfsd stopped, on failure the logs' last lines, the work dir
# removed unless something is still mounted there; exits with RC.
bench_finish() {
	local rc=$1 f
	set +e
	stop_sigfs
	if [ "$rc" -ne 0 ]; then
		for f in "$W"/*.log; do
			[ -s "$f" ] || continue
			echo "--- $f (last 15 lines) ---" >&2
			tail -n 15 "$f" >&2
		done
	fi
	if mountpoint -q "$MNT" 2>/dev/null; then
		echo "${BENCH_NAME:-bench}: $MNT is still mounted; leaving $W in place" >&2
	else
		rm -rf "$W"
	fi
	exit "$rc"
}

# files_per_s: the files/s figure of bench/smallfiles' output on stdin (none: empty).
files_per_s() {
	sed -n 's/.*files_per_s=\([0-9.]*\).*/\1/p'
}
