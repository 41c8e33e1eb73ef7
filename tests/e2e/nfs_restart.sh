#!/bin/bash
# Story: sigfsd restarts (an upgrade, a crash, kill -9 under systemd) while
# nfs-ganesha exports its inboxes and NFS clients hold open files: the clients
# notice nothing. sigfsd is a keeper process that holds the FUSE connection
# (so the mount, its device number and node ids stay) and a worker, its only
# child, that serves it; when the worker ends (SIGTERM or SIGKILL) the keeper
# starts a new one on the same mount within about 2 s. Over NFSv3 and NFSv4 a
# client holds a file handle (nfsclient hold), writes, the worker is killed,
# and the client's next read and write through that same handle succeed, a
# new client works, and the file is signed over its final content.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nfslib.sh"

conf_set sigfs wait_on_close no
conf_set sigfs settle_ms 1000
start_sigfs
make_key nfs
nfs_start nfs
IN=$MNT/nfs
KEEPER=$SIGFS_PID
HOLD_PID=

# the_worker: the keeper's only child (fails unless there is exactly one).
the_worker() {
	local kids
	kids=$(pgrep -P "$KEEPER") || { echo "  the keeper $KEEPER has no child" >&2; return 1; }
	[ "$(wc -l <<<"$kids")" = 1 ] || { echo "  the keeper has several children: $kids" >&2; return 1; }
	echo "$kids"
}

# new_worker OLD: wait up to 5 s for a worker other than OLD; prints it.
new_worker() {
	local w
	for _ in $(seq 1 100); do
		w=$(pgrep -P "$KEEPER" || true)
		if [ -n "$w" ] && [ "$w" != "$1" ] && [ "$(wc -l <<<"$w")" = 1 ]; then
			echo "$w"
			return 0
		fi
		sleep 0.05
	done
	echo "  no new worker within 5 s (children of $KEEPER: ${w:-none})" >&2
	return 1
}

# hold_start URL: a client that opens URL and keeps its handle; commands go to
# fd 7 (a FIFO), its answers to $T/hold.out.
hold_start() {
	rm -f "$T/hold.fifo"
	mkfifo "$T/hold.fifo"
	: >"$T/hold.out"
	# Opened read-write, this end never blocks, whether or not the client got
	# as far as opening the FIFO; not nc, whose PID would be a subshell's.
	exec 7<>"$T/hold.fifo"
	ip netns exec "$NFS_NS" "$NFSCLIENT" hold "$1" "$T/hold.fifo" >"$T/hold.out" 2>&1 &
	HOLD_PID=$!
	wait_line 1 ready
}

hold_stop() {
	[ -z "$HOLD_PID" ] && return 0
	exec 7>&-
	stop_pid "$HOLD_PID"
	HOLD_PID=
}
at_exit hold_stop

# wait_line N PREFIX: line N of the client's answers arrives (30 s) and starts with PREFIX.
wait_line() {
	local line
	for _ in $(seq 1 600); do
		line=$(sed -n "$1p" "$T/hold.out")
		if [ -n "$line" ]; then
			[[ $line == "$2"* ]] && return 0
			echo "  the client answered: $line" >&2
			return 1
		fi
		sleep 0.05
	done
	echo "  no answer from the client within 30 s: $(cat "$T/hold.out")" >&2
	return 1
}

# hold_do COMMAND: send one command to the holding client; its answer is "ok ...".
hold_do() {
	local n
	n=$(wc -l <"$T/hold.out")
	printf '%s\n' "$1" >&7
	wait_line $((n + 1)) ok
}

for V in 3 4; do
	for sig in TERM KILL; do
		name=held-v$V-$sig.bin
		url=$(nfs_url nfs "$name" "$V")
		dev=$(stat -c %d "$MNT")
		check "v$V $sig: a client opens $name and holds the handle" hold_start "$url"
		check "v$V $sig: it writes through the handle" hold_do "pwrite 0 before-the-restart;"
		check "v$V $sig: and commits" hold_do fsync
		worker=$(the_worker) || fail "v$V $sig: no single worker under the keeper $KEEPER"
		kill "-$sig" "$worker"
		check "v$V $sig: the keeper starts a new worker" new_worker "$worker"
		check "v$V $sig: the keeper still runs" kill -0 "$KEEPER"
		check "v$V $sig: the mount is the same (device number)" test "$(stat -c %d "$MNT")" = "$dev"
		check "v$V $sig: the held handle reads what was written" hold_do "read $T/read-back"
		check "v$V $sig: the bytes are those written before the restart" \
			test "$(cat "$T/read-back")" = "before-the-restart;"
		check "v$V $sig: the held handle writes" hold_do "pwrite 19 after-the-restart"
		check "v$V $sig: and commits" hold_do fsync
		n=$(wc -l <"$T/hold.out")
		printf 'close\n' >&7
		check "v$V $sig: the client closes the handle" wait_line $((n + 1)) "ok close"
		wait "$HOLD_PID" 2>/dev/null || true
		HOLD_PID=
		exec 7>&-
		printf 'before-the-restart;after-the-restart' >"$T/want"
		check "v$V $sig: a new client lists the inbox" nc ls "$(nfs_url nfs "" "$V")"
		check "v$V $sig: $name.sig appears" nc wait-for "$(nfs_url nfs "$name.sig" "$V")" --timeout 30
		check "v$V $sig: the file holds both writes" cmp -s "$IN/$name" "$T/want"
		nc get "$(nfs_url nfs "$name.sig" "$V")" "$T/got.sig"
		check "v$V $sig: the signature verifies over the final content" verify_raw nfs "$T/want" "$T/got.sig"
	done
done

check "ganesha logged no error: the restarts were invisible to it" nfs_log_clean
nfs_stop
# The keeper's exit status remembers the workers killed above (fs/keeper.h).
pid=$SIGFS_PID
SIGFS_PID=
fusermount3 -u "$MNT"
rc=0
wait "$pid" || rc=$?
check "at the end the keeper exits 1: two workers were killed while it ran" test "$rc" -eq 1
check "and says so" grep -q "2 workers ended abnormally while sigfsd ran" "$LOG"
done_testing
