#!/bin/bash
# Story: a build host whose close() reports nothing (NFS, wait_on_close = no,
# a rename into an inbox) copies its files in and runs `sigfs wait FILE...`:
# it returns 0 once every file has its signature for its current content (an
# artifact, a digest line, a request, several at once, one still being
# signed when wait starts), 1 with the .err line when signing failed or the
# file is missing, 3 at its timeout, 2 on a usage error. Every output
# carries its input's modification time, to the nanosecond; an output with
# another time (an old version's, as an NFS cache may show it) is never
# taken, which a plain directory outside the mount shows. With the key's
# public files (--key-dir, or a spool's D/.keys/KEY/) only a valid signature
# counts: a planted one is waited past (decision 68).
. "$(dirname "$0")/lib.sh"

SIGFS=${SIGFS:-$(dirname "$SIGFSD")/sigfs}
[ -x "$SIGFS" ] || fail "no sigfs client at $SIGFS (build it, or set SIGFS)"
BIG_MB=${BIG_MB:-512}     # a job that takes seconds: an Ed25519 key signs the whole file

# status_is WANT CMD...: CMD exits with status WANT (its stderr in $T/wait.err).
status_is() {
	local want=$1 rc=0
	shift
	"$@" 2>"$T/wait.err" >"$T/wait.out" || rc=$?
	[ "$rc" = "$want" ] || {
		echo "  exit status $rc, want $want: $(cat "$T/wait.err")" >&2
		return 1
	}
}

# said TEXT: the last command's stderr is exactly TEXT (one line).
said() {
	[ "$(cat "$T/wait.err")" = "$1" ] || {
		echo "  stderr: '$(cat "$T/wait.err")', want '$1'" >&2
		return 1
	}
}

# same_times INPUT OUTPUT [atime]: OUTPUT's mtime (and atime, if asked: a read
# moves it) is INPUT's mtime, to the nanosecond.
same_times() {
	local in out_m out_a
	in=$(stat -c %y "$1")
	out_m=$(stat -c %y "$2")
	out_a=$(stat -c %x "$2")
	[ "$in" = "$out_m" ] && { [ -z "${3:-}" ] || [ "$in" = "$out_a" ]; } || {
		echo "  $1: mtime $in; $2: mtime $out_m, atime $out_a" >&2
		return 1
	}
}

# copy_old SRC DEST: copy with an old time kept (cp -p sets it before close()).
# A fast job's output would often get the same clock tick as its input
# anyway; a time long past tells "the output took the input's time" from
# "the output was written at about the same time".
copy_old() {
	touch -d '2024-02-03 04:05:06.123456789' "$1"
	cp -p "$1" "$2"
}

# quick CMD...: CMD succeeds within a second.
quick() {
	local t0 t1
	t0=$(date +%s%N)
	"$@" || return 1
	t1=$(date +%s%N)
	[ $(((t1 - t0) / 1000000)) -lt 1000 ] || {
		echo "  took $(((t1 - t0) / 1000000)) ms" >&2
		return 1
	}
}

# Close reports nothing here, as over NFS: `sigfs wait` is the only way to know.
conf_set sigfs wait_on_close no
start_sigfs
make_key rel
make_key ed ed25519
IN=$MNT/rel

# --- an artifact ------------------------------------------------------------------------------
head -c 300000 /dev/urandom >"$T/fw.bin"
copy_old "$T/fw.bin" "$IN/fw.bin"
check "an artifact: wait exits 0" status_is 0 "$SIGFS" wait "$IN/fw.bin"
check "and prints nothing" test ! -s "$T/wait.out" -a ! -s "$T/wait.err"
check "fw.bin kept its old time" test "$(stat -c %y "$IN/fw.bin")" = "$(stat -c %y "$T/fw.bin")"
check "fw.bin.sig has fw.bin's mtime (and it as atime), to the nanosecond" \
	same_times "$IN/fw.bin" "$IN/fw.bin.sig" atime
check "its .sig verifies with openssl" verify_raw rel "$T/fw.bin" "$IN/fw.bin.sig"
check "-v prints the file and its signature" status_is 0 "$SIGFS" wait -v "$IN/fw.bin"
check "as 'FILE: OUTPUT'" test "$(cat "$T/wait.out")" = "$IN/fw.bin: $IN/fw.bin.sig"

# --- an overwritten artifact: the new .sig carries the new time -------------------------------
old=$(stat -c %y "$IN/fw.bin.sig")
sleep 0.05
head -c 300000 /dev/urandom >"$T/fw2.bin"
cp "$T/fw2.bin" "$IN/fw.bin"
check "rewritten: wait exits 0" status_is 0 "$SIGFS" wait "$IN/fw.bin"
check "the new .sig verifies against the new content" verify_raw rel "$T/fw2.bin" "$IN/fw.bin.sig"
check "it has the new content's mtime" same_times "$IN/fw.bin" "$IN/fw.bin.sig"
check "which is not the old one's" test "$(stat -c %y "$IN/fw.bin.sig")" != "$old"

# --- a digest line ----------------------------------------------------------------------------
head -c 5000 /dev/urandom >"$T/dl.bin"
(cd "$T" && sha256sum dl.bin) >"$T/dl.bin.sha256"
copy_old "$T/dl.bin.sha256" "$IN/dl.bin.sha256"
check "a digest line: wait exits 0" status_is 0 "$SIGFS" wait -v "$IN/dl.bin.sha256"
check "its output is dl.bin.sig" test "$(cat "$T/wait.out")" = "$IN/dl.bin.sha256: $IN/dl.bin.sig"
check "which verifies over dl.bin" verify_raw rel "$T/dl.bin" "$IN/dl.bin.sig"
check "dl.bin.sig has the digest line's mtime" same_times "$IN/dl.bin.sha256" "$IN/dl.bin.sig"
# Two lines: not a digest line, signed as a file, as NAME.sha256.sig.
(cd "$T" && sha256sum dl.bin fw.bin) >"$T/multi"
copy_old "$T/multi" "$IN/multi.sha256"
check "a .sha256 that is not a digest line: wait exits 0" status_is 0 "$SIGFS" wait -v "$IN/multi.sha256"
check "its output is multi.sha256.sig" \
	test "$(cat "$T/wait.out")" = "$IN/multi.sha256: $IN/multi.sha256.sig"
check "which verifies over the file" verify_raw rel "$T/multi" "$IN/multi.sha256.sig"
check "multi.sha256.sig has multi.sha256's mtime" same_times "$IN/multi.sha256" "$IN/multi.sha256.sig"

# --- a signing request ------------------------------------------------------------------------
head -c 70000 /dev/urandom >"$T/rq.bin"
check "sigfs request writes rq.bin.sigreq" "$SIGFS" request "$T/rq.bin" --format raw -o "$T/rq.bin.sigreq"
copy_old "$T/rq.bin.sigreq" "$IN/rq.bin.sigreq"
check "a request: wait exits 0" status_is 0 "$SIGFS" wait "$IN/rq.bin.sigreq"
check "rq.bin.sig verifies with openssl (sha512)" verify_raw rel "$T/rq.bin" "$IN/rq.bin.sig" sha512
check "rq.bin.sig has the request's mtime" same_times "$IN/rq.bin.sigreq" "$IN/rq.bin.sig"

# --- a bad digest line: the .err line ---------------------------------------------------------
echo "0123456789abcdef  bad.bin" >"$T/bad.bin.sha256"
copy_old "$T/bad.bin.sha256" "$IN/bad.bin.sha256"
check "a bad digest line: wait exits 1" status_is 1 "$SIGFS" wait "$IN/bad.bin.sha256"
check "bad.bin.err is there" test -s "$IN/bad.bin.err"
check "wait printed 'sigfs: FILE: ' and the .err's line" \
	said "sigfs: $IN/bad.bin.sha256: $(head -n 1 "$IN/bad.bin.err")"
check "the line says what is wrong" grep -q "64 hex digits" "$T/wait.err"
check "bad.bin.err has the digest line's mtime" same_times "$IN/bad.bin.sha256" "$IN/bad.bin.err"
: >"$T/empty.bin"
copy_old "$T/empty.bin" "$IN/empty.bin"
check "an empty file: wait exits 1" status_is 1 "$SIGFS" wait "$IN/empty.bin"
check "with empty.bin.err's line" said "sigfs: $IN/empty.bin: $(cat "$IN/empty.bin.err")"
check "empty.bin.err has empty.bin's mtime" same_times "$IN/empty.bin" "$IN/empty.bin.err"

# --- several files at once --------------------------------------------------------------------
names=()
for i in 1 2 3 4 5 6; do
	head -c $((i * 20011)) /dev/urandom >"$T/m$i"
	names+=("$IN/m$i")
done
(cd "$T" && cp m1 m2 m3 m4 m5 m6 "$IN/")
check "six files at once: wait exits 0" status_is 0 "$SIGFS" wait "${names[@]}"
check "all six signatures verify" verify_many rel "$IN" m1 m2 m3 m4 m5 m6
check "one signed and one failed: wait exits 1" \
	status_is 1 "$SIGFS" wait "$IN/m1" "$IN/bad.bin.sha256" "$IN/m2"
check "and names only the failed one" said "sigfs: $IN/bad.bin.sha256: $(cat "$IN/bad.bin.err")"

# --- missing files and usage ------------------------------------------------------------------
check "a missing file: wait exits 1" status_is 1 "$SIGFS" wait "$IN/nope.bin"
check "saying so" said "sigfs: $IN/nope.bin: No such file or directory"
check "no FILE: usage error 2" status_is 2 "$SIGFS" wait
check "a bad --timeout: 2" status_is 2 "$SIGFS" wait --timeout soon "$IN/fw.bin"
check "an output's name: 2" status_is 2 "$SIGFS" wait "$IN/fw.bin.sig"
check "a dotfile (never signed): 2" status_is 2 "$SIGFS" wait "$IN/.fw.bin.tmp"
check "a directory: 1" status_is 1 "$SIGFS" wait "$T"
check "saying so" said "sigfs: $T: not a regular file"
check "--help: 0, on stdout" status_is 0 "$SIGFS" wait --help
check "the usage names --timeout" grep -q -- "--timeout S" "$T/wait.out"
check "sigfs --help names wait" bash -c "'$SIGFS' --help | grep -q 'sigfs wait'"

# --- a file still being signed when wait starts -----------------------------------------------
head -c $((BIG_MB << 20)) /dev/zero >"$MNT/ed/big.bin"
(
	rc=0
	"$SIGFS" wait --timeout 300 "$MNT/ed/big.bin" 2>"$T/big.err" || rc=$?
	echo "$rc" >"$T/big.rc"
) &
WAIT_PID=$!
at_exit "kill \$(pgrep -P $WAIT_PID) $WAIT_PID 2>/dev/null"
sleep 0.3
check "$BIG_MB MiB for an Ed25519 key: no .sig yet when wait has started" test ! -e "$MNT/ed/big.bin.sig"
check "and wait has not returned" test ! -e "$T/big.rc"
check "wait ends once it is signed" wait "$WAIT_PID"
check "with status 0" test "$(cat "$T/big.rc")" = 0
check "big.bin.sig is there" test -s "$MNT/ed/big.bin.sig"
check "and verifies with openssl" openssl pkeyutl -verify -pubin -inkey "$(pubkey ed)" -rawin \
	-in "$MNT/ed/big.bin" -sigfile "$MNT/ed/big.bin.sig"
check "big.bin.sig has big.bin's mtime" same_times "$MNT/ed/big.bin" "$MNT/ed/big.bin.sig"
rm -f "$MNT/ed/big.bin"

# --- stale outputs, as an NFS cache may show them: a plain directory --------------------------
P=$T/plain
mkdir "$P"
cp -p "$IN/fw.bin" "$IN/fw.bin.sig" "$P/"
check "a copy with times kept (cp -p): wait exits 0 in a plain directory" \
	quick status_is 0 "$SIGFS" wait --timeout 0 "$P/fw.bin"
touch -d '2020-01-01 00:00:00.123456789' "$P/fw.bin.sig"
check "a .sig with another mtime is not taken: timeout 3" \
	status_is 3 "$SIGFS" wait --timeout 0.5 "$P/fw.bin"
check "saying so" said "sigfs: $P/fw.bin: timed out after 0.5 s: no signature and no .err for its current content yet"
touch -r "$P/fw.bin" "$P/fw.bin.sig"
cp "$T/fw.bin" "$P/fw.bin"
check "the artifact rewritten under its old .sig: not taken (3)" \
	status_is 3 "$SIGFS" wait --timeout 0.3 "$P/fw.bin"
check "--timeout 0 looks once: 3 at once" quick status_is 3 "$SIGFS" wait --timeout 0 "$P/fw.bin"
echo "planted failure" >"$P/fw.bin.err"
touch -d '2020-01-01' "$P/fw.bin.err"
check "an .err with another mtime is not taken either (3)" \
	status_is 3 "$SIGFS" wait --timeout 0 "$P/fw.bin"
touch -r "$P/fw.bin" "$P/fw.bin.err"
check "one with the file's mtime is: 1" status_is 1 "$SIGFS" wait --timeout 0 "$P/fw.bin"
check "with its line" said "sigfs: $P/fw.bin: planted failure"
rm "$P/fw.bin.err"
: >"$P/fw.bin.sig.tmp"
mv -f "$P/fw.bin.sig.tmp" "$P/fw.bin.sig"
touch -r "$P/fw.bin" "$P/fw.bin.sig"
check "an empty .sig with the file's mtime is not a signature (3)" \
	status_is 3 "$SIGFS" wait --timeout 0 "$P/fw.bin"
ensure_user sw-mallory
cp -p "$IN/fw.bin" "$P/own.bin"
echo "forged" >"$P/own.bin.sig"
chown sw-mallory "$P/own.bin.sig"
touch -r "$P/own.bin" "$P/own.bin.sig"
check "a .sig with the file's mtime but another owner is not taken (3)" \
	status_is 3 "$SIGFS" wait --timeout 0 "$P/own.bin"
chown --reference="$P/own.bin" "$P/own.bin.sig"
touch -r "$P/own.bin" "$P/own.bin.sig"
check "the same .sig, given the file's owner, is (0)" \
	status_is 0 "$SIGFS" wait --timeout 0 "$P/own.bin"
echo x >"$P/other.bin"
echo sig >"$P/other.bin.minisig"
touch -r "$P/other.bin" "$P/other.bin.minisig"
check "any format's suffix counts (.minisig): 0" status_is 0 "$SIGFS" wait --timeout 0 "$P/other.bin"
check "a file appearing while wait waits: 0" bash -c "
	( sleep 0.5; echo s >'$P/late.bin.sig'; touch -r '$P/other.bin' '$P/late.bin.sig' ) &
	cp -p '$P/other.bin' '$P/late.bin'
	'$SIGFS' wait --timeout 10 '$P/late.bin'; rc=\$?; wait; exit \$rc"

# --- verification (decision 68): planted outputs in a plain directory users write -------------
# Anyone who can write the directory can plant an output with FILE's time for
# a FILE of their own. With the key's public files (a copy of .ctl/keys/KEY/,
# or a spool's root-owned D/.keys/KEY/) only a valid signature counts.
# copy_key KEY DIR: the key's public files, as an admin would hand them out.
copy_key() {
	mkdir -p "$2"
	for f in format algorithm digest padding namespace pubkey.pem cert.pgp cert.asc \
		pubkey.ssh pubkey.minisign cert.pem; do
		cat "$MNT/.ctl/keys/$1/$f" >"$2/$f" 2>/dev/null || rm -f "$2/$f"
	done
}
V=$T/verify
mkdir "$V"
for spec in vraw:raw:ecdsa-p256 vpgp:openpgp:ed25519 vasc:openpgp-armor:rsa-2048 \
	vssh:sshsig:ecdsa-p256 vmini:minisign:ed25519 vcms:cms:rsa-2048 vred:raw:ed25519; do
	IFS=: read -r key fmt alg <<<"$spec"
	make_key "$key" "$alg"
	echo "$fmt" >"$MNT/.ctl/keys/$key/format"
	copy_key "$key" "$T/keys/$key"
	head -c 100000 /dev/urandom >"$T/v.bin"
	copy_old "$T/v.bin" "$MNT/$key/x.bin"
	head -c 1000 /dev/urandom >"$MNT/$key/y.bin"
	check "$key ($fmt, $alg): signed in the mount" \
		status_is 0 "$SIGFS" wait -v "$MNT/$key/x.bin" "$MNT/$key/y.bin"
	# The format's suffix, from the output -v names: x.bin.sig, x.bin.minisig ...
	sfx=$(sed -n "s|^$MNT/$key/x.bin: $MNT/$key/x.bin||p" "$T/wait.out")
	check "$key: its output is x.bin$sfx" test -n "$sfx" -a -s "$MNT/$key/x.bin$sfx"
	check "$key: in the mount, --key-dir verifies sigfs's own output: 0" \
		status_is 0 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/$key" "$MNT/$key/x.bin"
	mkdir "$V/$key"
	cp -p "$MNT/$key/x.bin" "$V/$key/x.bin"
	head -c 600 /dev/urandom >"$V/$key/x.bin$sfx"
	touch -r "$V/$key/x.bin" "$V/$key/x.bin$sfx"
	check "$key: a planted $sfx (x.bin's time and owner): taken without --key-dir (0)" \
		status_is 0 "$SIGFS" wait --timeout 0 "$V/$key/x.bin"
	check "$key: with --key-dir it is not: timeout 3" \
		status_is 3 "$SIGFS" wait --timeout 0.3 --key-dir "$T/keys/$key" "$V/$key/x.bin"
	check "$key: saying an output was there but did not verify" \
		grep -q "timed out after 0.3 s: an output was present but did not verify" "$T/wait.err"
	cp "$MNT/$key/y.bin$sfx" "$V/$key/x.bin$sfx"
	touch -r "$V/$key/x.bin" "$V/$key/x.bin$sfx"
	check "$key: a real signature of another file, planted: 3" \
		status_is 3 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/$key" "$V/$key/x.bin"
	check "$key: -v says why it is passed over" bash -c "
		'$SIGFS' wait -v --timeout 0 --key-dir '$T/keys/$key' '$V/$key/x.bin' 2>&1 |
		grep -q 'x.bin$sfx does not verify (.*): waiting for sigfs.s'"
	cp -p "$MNT/$key/x.bin$sfx" "$V/$key/x.bin$sfx"
	check "$key: the real signature, copied from the mount: 0" \
		status_is 0 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/$key" "$V/$key/x.bin"
done
check "the raw key's .sig is another key's to the ed25519 key (3)" \
	status_is 3 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/vred" "$V/vraw/x.bin"
check "a planted output replaced by the real one while wait waits: 0" bash -c "
	echo forged >'$V/vssh/x.bin.sig'; touch -r '$V/vssh/x.bin' '$V/vssh/x.bin.sig'
	( sleep 0.5; cp -p '$MNT/vssh/x.bin.sig' '$V/vssh/x.bin.sig.tmp'
	  mv '$V/vssh/x.bin.sig.tmp' '$V/vssh/x.bin.sig' ) &
	'$SIGFS' wait --timeout 10 --key-dir '$T/keys/vssh' '$V/vssh/x.bin'; rc=\$?; wait; exit \$rc"
check "--key-dir that is not a key directory: 2" \
	status_is 2 "$SIGFS" wait --timeout 0 --key-dir "$T" "$V/vraw/x.bin"
check "saying which file is missing" grep -q -- "--key-dir $T: format: No such file" "$T/wait.err"
# Digest lines: raw ECDSA signs the digest, so it is verified; a request cannot be.
(cd "$T" && sha256sum v.bin) >"$T/v.bin.sha256"
copy_old "$T/v.bin.sha256" "$MNT/vraw/v.bin.sha256"
check "a digest line, signed in the mount" status_is 0 "$SIGFS" wait "$MNT/vraw/v.bin.sha256"
cp -p "$MNT/vraw/v.bin.sha256" "$V/vraw/"
cp -p "$MNT/vraw/x.bin.sig" "$V/vraw/v.bin.sig"
touch -r "$V/vraw/v.bin.sha256" "$V/vraw/v.bin.sig"
check "a digest line's planted .sig: 3" \
	status_is 3 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/vraw" "$V/vraw/v.bin.sha256"
cp -p "$MNT/vraw/v.bin.sig" "$V/vraw/v.bin.sig"
check "its real .sig verifies from the line: 0" \
	status_is 0 "$SIGFS" wait -v --timeout 0 --key-dir "$T/keys/vraw" "$V/vraw/v.bin.sha256"
check "without a 'not verified' note" test ! -s "$T/wait.err"
# An Ed25519 raw key signs whole files: sigfs answers a digest line with .err,
# so a .sig beside one can only be planted, even a real signature by the key.
copy_old "$T/v.bin.sha256" "$MNT/vred/v.bin.sha256"
check "Ed25519 raw: a digest line gets .err in the mount (1)" \
	status_is 1 "$SIGFS" wait "$MNT/vred/v.bin.sha256"
cp -p "$MNT/vred/v.bin.sha256" "$V/vred/"
cp "$MNT/vred/x.bin.sig" "$V/vred/v.bin.sig"
touch -r "$V/vred/v.bin.sha256" "$V/vred/v.bin.sig"
check "a .sig planted beside it: taken without --key-dir (0)" \
	status_is 0 "$SIGFS" wait --timeout 0 "$V/vred/v.bin.sha256"
check "not with it (3)" \
	status_is 3 "$SIGFS" wait --timeout 0 --key-dir "$T/keys/vred" "$V/vred/v.bin.sha256"
check "saying sigfs signs no such line" grep -q "sigfs signs no such digest line" "$T/wait.err"
"$SIGFS" request "$T/rq.bin" --format raw -o "$T/rq2.sigreq"
copy_old "$T/rq2.sigreq" "$V/vraw/rq2.sigreq"
echo forged >"$V/vraw/rq2.sig"
touch -r "$V/vraw/rq2.sigreq" "$V/vraw/rq2.sig"
check "a request's output cannot be verified: time and owner, as before (0)" \
	status_is 0 "$SIGFS" wait -v --timeout 0 --key-dir "$T/keys/vraw" "$V/vraw/rq2.sigreq"
check "-v says it was not verified" grep -q "rq2.sig not verified (.*): accepted by its time and owner" "$T/wait.err"

# A spool's published keys, D/.keys/KEY/: used without --key-dir, trusted only if root's.
D=$T/spool
mkdir -m 0755 "$D" "$D/.keys"
# publish KEY FILE...: as the spool does (spool/pubdir.c): its settings, pubkey.pem and
# its format's own files, root's, 0444 in a 0755 directory.
publish() {
	local key=$1 f
	shift
	mkdir -m 0755 "$D/.keys/$key"
	for f in algorithm digest format padding namespace uid pubkey.pem "$@"; do
		cat "$MNT/.ctl/keys/$key/$f" >"$D/.keys/$key/$f"
	done
	chmod 0444 "$D/.keys/$key"/*
}
publish vraw
publish vpgp cert.pgp cert.asc
publish vssh pubkey.ssh
publish vmini pubkey.minisign
publish vcms cert.pem
for key in vpgp vssh vmini vcms; do
	mkdir -m 0777 "$D/$key"
	cp -p "$V/$key/x.bin" "$V/$key"/x.bin.* "$D/$key/"
	check "spool: $key's real output verifies with what the spool publishes: 0" \
		status_is 0 "$SIGFS" wait -v --timeout 0 "$D/$key/x.bin"
	check "spool: $key: with nothing said on stderr" test ! -s "$T/wait.err"
	# -v names the output and says it was verified with D/.keys/KEY/.
	out=$(sed -n "s|^$D/$key/x.bin: \(.*\) (signature verified)\$|\1|p" "$T/wait.out")
	check "spool: $key: -v says the signature was verified" test -n "$out"
	cp "$MNT/$key/y.bin${out#"$D/$key/x.bin"}" "$out"
	touch -r "$D/$key/x.bin" "$out"
	check "spool: $key: another file's signature in its place: 3" \
		status_is 3 "$SIGFS" wait --timeout 0 "$D/$key/x.bin"
done
mkdir -m 0777 "$D/vraw"
cp -p "$V/vraw/x.bin" "$D/vraw/"
echo forged >"$D/vraw/x.bin.sig"
touch -r "$D/vraw/x.bin" "$D/vraw/x.bin.sig"
check "spool: a planted .sig is not taken (D/.keys/vraw used): 3" \
	status_is 3 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
cp -p "$MNT/vraw/x.bin.sig" "$D/vraw/x.bin.sig"
check "spool: the real one is: 0" status_is 0 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
chmod o+w "$D/.keys"
check "spool: .keys writable by others: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
check "naming it and why" said "sigfs: $D/vraw/x.bin: cannot trust the spool's published key: $D/.keys: not owned by root, or writable by group or others"
chmod o-w "$D/.keys"
chmod g+w "$D/.keys/vraw/pubkey.pem"
check "spool: a group-writable pubkey.pem: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
check "naming it" grep -q "$D/.keys/vraw/pubkey.pem: not owned by root or writable by others" "$T/wait.err"
chmod g-w "$D/.keys/vraw/pubkey.pem"
chown sw-mallory "$D/.keys/vraw/format"
check "spool: a format file not root's: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
chown root "$D/.keys/vraw/format"
check "spool: all root's again: 0" status_is 0 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
mv "$D/.keys/vraw" "$D/.keys/real"
ln -s real "$D/.keys/vraw"
check "spool: D/.keys/KEY a symbolic link: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
check "saying so" said "sigfs: $D/vraw/x.bin: cannot trust the spool's published key: $D/.keys/vraw: not a directory (or a symbolic link)"
rm "$D/.keys/vraw"
mv "$D/.keys/real" "$D/.keys/vraw"
mv "$D/.keys/vraw/pubkey.pem" "$D/.keys/vraw/pubkey.real"
ln -s pubkey.real "$D/.keys/vraw/pubkey.pem"
check "spool: a symbolic link among the key's files: 2" \
	status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
check "saying so" grep -q "pubkey.pem: a symbolic link" "$T/wait.err"
rm -rf "$D/.keys"
ln -s "$T/keys" "$D/.keys"
check "spool: D/.keys a symbolic link: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
rm "$D/.keys"
check "no D/.keys: time and owner only, as in a mount (0)" \
	status_is 0 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
mkdir -m 0755 "$D/.keys"
chown sw-mallory "$D"
check "spool: D not root's: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"
chown root "$D"
check "spool: D/.keys without the key: 2" status_is 2 "$SIGFS" wait --timeout 0 "$D/vraw/x.bin"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
