#!/bin/bash
# Story: build hosts use an inbox over NFS. nfs-ganesha (FSAL_VFS) exports each
# inbox of the sigfs mount as the shipped etc/ganesha-sigfs.conf says (one
# export per inbox, Pseudo /sigfs/KEY), inside a network namespace holding
# only lo (nfslib.sh); libnfs clients (nfsclient.c) work over NFSv3 and NFSv4.
# Two inboxes, two exports: each gets its own files; .ctl is not reachable
# through the server. Over NFSv3 and NFSv4: 1 MiB and 100 MiB copies get a
# .sig that openssl verifies against the original (the time from the end of
# the copy to the visible .sig is printed), and so do a digest line, a .sigreq
# and a rename into the inbox; an overwrite never shows the old .sig once the
# copy ended; a bad digest line and an empty file get their .err.
# Last, a slow writer (64 KiB every 300 ms; over NFSv4 each 64 KiB is a burst of
# 2 KiB WRITEs, the most libnfs 4.0 can send) with a second client polling: every
# .sig the poller ever sees must verify against the file as the writer
# finished it (NFSv3 has no close: a signature at each release of ganesha's
# fd cache would be over a prefix). The writer and the poller are nfslib.sh's
# (nfs_slow_writer), shared with spool_nfs.sh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nfslib.sh"

SIGFS=${SIGFS:-$(dirname "$SIGFSD")/sigfs}
[ -x "$SIGFS" ] || fail "no sigfs client at $SIGFS (build it, or set SIGFS)"
STORY_START=$(date +%s.%N)

# The settings docs/nfs.md recommends: NFS has no close() to wait on, and a
# file is signed once nothing wrote to it for settle_ms.
conf_set sigfs wait_on_close no
conf_set sigfs settle_ms 1000

start_sigfs
make_key nfs
make_key other ed25519
nfs_start nfs other
IN=$MNT/nfs
mkdir -p "$T/files"

# url NAME: NAME in the inbox over NFS version $V.
url() {
	nfs_url nfs "$1" "$V"
}

# sig_right_after NAME LOCAL: NAME.sig, if a client can read it, verifies over
# LOCAL; if it cannot, the inbox's listing over NFS does not show it.
sig_right_after() {
	if nc get "$(url "$1.sig")" "$T/right-after.sig" 2>/dev/null; then
		verify_raw nfs "$2" "$T/right-after.sig"
	else
		nc ls "$(url "")" >"$T/right-after.ls" && no_match -x "$1.sig" "$T/right-after.ls"
	fi
}

# sig_verifies NAME LOCAL: NAME.sig, read over NFS, verifies over LOCAL (openssl).
sig_verifies() {
	sig_over_nfs verify_raw nfs "$1" "$V" "$2"
}

# put_signed NAME LOCAL [PUT OPTIONS...]: copy LOCAL in as NAME and wait for
# NAME.sig over NFS; prints nfsclient's "visible after S s".
put_signed() {
	local name=$1 local=$2
	shift 2
	nc put "$(url "$name")" "$local" --wait-for "$name.sig" --timeout 60 "$@"
}

# err_over_nfs NAME TEXT: NAME.err appears over NFS, is one line, and holds TEXT.
err_over_nfs() {
	nc wait-for "$(url "$1.err")" --timeout 30 >/dev/null || return 1
	nc get "$(url "$1.err")" "$T/got.err" || return 1
	[ "$(wc -l <"$T/got.err")" = 1 ] && grep -qF -- "$2" "$T/got.err" ||
		{ echo "  $1.err: $(cat "$T/got.err")" >&2; return 1; }
}

# fuse_wait STATUS NAME...: `sigfs wait` on the inbox's NAME... through the
# mount exits with STATUS (0: outputs there and current; 1: a .err).
fuse_wait() {
	local want=$1 rc=0 name files=()
	shift
	for name in "$@"; do
		files+=("$IN/$name")
	done
	"$SIGFS" wait --timeout 30 "${files[@]}" >"$T/wait.out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || { echo "  sigfs wait: status $rc, want $want: $(cat "$T/wait.out")" >&2; return 1; }
}

check_fuse_wait() {
	check "$1: sigfs wait through the mount exits $2" fuse_wait "$2" "${@:3}"
}

# --- .ctl is not exported -------------------------------------------------------------------------
for V in 3 4; do
	check_fails "v$V: the pseudo path /sigfs/.ctl does not mount" \
		in_ns nfs-ls "nfs://$NFS_HOST/sigfs/.ctl?version=$V"
	check_fails "v$V: the mount point's own path does not mount" \
		in_ns nfs-ls "nfs://$NFS_HOST$MNT?version=$V"
	check_fails "v$V: nor its .ctl" in_ns nfs-ls "nfs://$NFS_HOST$MNT/.ctl/keys?version=$V"
	check_fails "v$V: no key file by a path through the inbox's export and .." \
		nc get "nfs://$NFS_HOST/sigfs/nfs/../.ctl/keys/nfs/algorithm?version=$V" "$T/alg"
done
check "v4: the pseudo root holds /sigfs only" \
	test "$(in_ns nfs-ls "nfs://$NFS_HOST/?version=4" | awk '{print $NF}')" = sigfs
check "v4: /sigfs holds the two exported inboxes only" \
	test "$(in_ns nfs-ls "nfs://$NFS_HOST/sigfs?version=4" | awk '{print $NF}' | sort | tr '\n' ' ')" = "nfs other "

# --- each export is its own inbox ------------------------------------------------------------------
head -c 5000 /dev/urandom >"$T/o.bin"
for V in 3 4; do
	check "v$V: a file copied into the second export is signed" \
		in_ns "$NFSCLIENT" put "nfs://$NFS_HOST/sigfs/other/o-v$V.bin?version=$V" "$T/o.bin" --wait-for "o-v$V.bin.sig"
	check "v$V: by the second key (ed25519), in its inbox" verify_raw other "$T/o.bin" "$MNT/other/o-v$V.bin.sig"
	check "v$V: and nothing came into the first inbox" test ! -e "$IN/o-v$V.bin"
done

# --- copies, inputs and outputs, over NFSv3 and NFSv4 ------------------------------------------
head -c 1048576 /dev/urandom >"$T/files/1m.bin"
head -c 104857600 /dev/urandom >"$T/files/100m.bin"
declare -A TIMES
for V in 3 4; do
	for size in 1m 100m; do
		name=$size-v$V.bin
		out=$(put_signed "$name" "$T/files/$size.bin") || fail "v$V: $name: no .sig: $out"
		TIMES[$size-v$V]=$(awk '/visible after/ {print $3}' <<<"$out")
		echo "# v$V $size: end of the copy to a visible $name.sig: ${TIMES[$size-v$V]} s"
		check "v$V $size: $name.sig verifies (openssl) against the original" \
			sig_verifies "$name" "$T/files/$size.bin"
		check "v$V $size: the file in the inbox is the original" cmp -s "$IN/$name" "$T/files/$size.bin"
		check_fuse_wait "v$V $size" 0 "$name"
	done

	# A digest line: NAME.sha256 as sha256sum prints it.
	head -c 200000 /dev/urandom >"$T/files/d-v$V.bin"
	(cd "$T/files" && sha256sum "d-v$V.bin" >"d-v$V.bin.sha256")
	check "v$V digest line: d-v$V.bin.sig appears" \
		nc put "$(url "d-v$V.bin.sha256")" "$T/files/d-v$V.bin.sha256" --wait-for "d-v$V.bin.sig"
	check "v$V digest line: the .sig verifies against the artifact" \
		sig_verifies "d-v$V.bin" "$T/files/d-v$V.bin"
	check_fuse_wait "v$V digest line" 0 "d-v$V.bin.sha256"

	# A signing request from the sigfs client.
	head -c 300000 /dev/urandom >"$T/files/r-v$V.bin"
	"$SIGFS" request "$T/files/r-v$V.bin" --format raw --digest sha256 -o "$T/files/r-v$V.bin.sigreq"
	nc put "$(url "r-v$V.bin.sigreq")" "$T/files/r-v$V.bin.sigreq" --wait-for "r-v$V.bin.sig" >/dev/null
	check "v$V .sigreq: r-v$V.bin.sig verifies against the artifact" \
		sig_verifies "r-v$V.bin" "$T/files/r-v$V.bin"
	check_fuse_wait "v$V .sigreq" 0 "r-v$V.bin.sigreq"

	# Rename into the inbox: a dotfile (never signed), then its real name.
	head -c 500000 /dev/urandom >"$T/files/m-v$V.bin"
	nfs_rename_in verify_raw nfs "$V" "m-v$V.bin" "$T/files/m-v$V.bin" "$IN"
	check_fuse_wait "v$V rename" 0 "m-v$V.bin"

	# Overwrite: once the new copy ended, the old .sig is gone; then the new one comes.
	head -c 700000 /dev/urandom >"$T/files/o-v$V.old"
	head -c 600000 /dev/urandom >"$T/files/o-v$V.new"
	put_signed "o-v$V.bin" "$T/files/o-v$V.old" >/dev/null
	check "v$V overwrite: the first .sig verifies" sig_verifies "o-v$V.bin" "$T/files/o-v$V.old"
	check "v$V overwrite: the new content is written over it" nc put "$(url "o-v$V.bin")" "$T/files/o-v$V.new"
	# Right after the copy: no .sig, or one over the new bytes (never the old one).
	check "v$V overwrite: right after the copy, no .sig or one over the new bytes" \
		sig_right_after "o-v$V.bin" "$T/files/o-v$V.new"
	check "v$V overwrite: the new .sig appears" nc wait-for "$(url "o-v$V.bin.sig")" --timeout 30
	check "v$V overwrite: it verifies against the new content" sig_verifies "o-v$V.bin" "$T/files/o-v$V.new"
	check_fails "v$V overwrite: and not against the old" sig_verifies "o-v$V.bin" "$T/files/o-v$V.old"
	check_fuse_wait "v$V overwrite" 0 "o-v$V.bin"

	# A bad digest line and an empty file get their .err, and no .sig.
	# A digest line with a typo (63 hex digits) is an error, not a file to sign.
	printf '%s  b-v%s.bin\n' "$(head -c 63 /dev/zero | tr '\0' a)" "$V" >"$T/files/b-v$V.bin.sha256"
	nc put "$(url "b-v$V.bin.sha256")" "$T/files/b-v$V.bin.sha256"
	check "v$V bad digest line: b-v$V.bin.err arrives (one line)" \
		err_over_nfs "b-v$V.bin" "sha256 needs 64 hex digits, found 63"
	check "v$V bad digest line: no .sig (of the artifact or of the line)" \
		bash -c "test ! -e '$IN/b-v$V.bin.sig' && test ! -e '$IN/b-v$V.bin.sha256.sig'"
	check_fuse_wait "v$V bad digest line" 1 "b-v$V.bin.sha256"
	: >"$T/files/empty"
	check "v$V empty file: written" nc put "$(url "e-v$V.bin")" "$T/files/empty"
	check "v$V empty file: e-v$V.bin.err says it is empty" err_over_nfs "e-v$V.bin" "empty"
	check "v$V empty file: no .sig" test ! -e "$IN/e-v$V.bin.sig"
	check_fuse_wait "v$V empty file" 1 "e-v$V.bin"
done

# --- a slow writer and a poller ------------------------------------------------------------------
# nfslib.sh's nfs_slow_writer: the writer, the poller, and their checks.
head -c 1048576 /dev/urandom >"$T/files/slow.bin"
for V in 3 4; do
	nfs_slow_writer verify_raw nfs "slow-v$V.bin" "$V" "$T/files/slow.bin"
	check "v$V slow writer: no .err" test ! -e "$IN/slow-v$V.bin.err"
	check_fuse_wait "v$V slow writer" 0 "slow-v$V.bin"
done

for k in 1m-v3 100m-v3 1m-v4 100m-v4; do
	echo "# end of the copy to a visible .sig, $k: ${TIMES[$k]} s"
done
echo "# the story took $(awk -v s="$STORY_START" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s"
check "ganesha logged no error while serving" nfs_log_clean
nfs_stop
stop_sigfs
done_testing
