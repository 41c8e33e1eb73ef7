#!/bin/bash
# Story: an admin sets a key's format to sshsig or minisign; users copy an
# artifact into the inbox and check NAME.sig with `ssh-keygen -Y verify` and
# NAME.minisig with `minisign -V`, using only the public key files of
# .ctl/keys/KEY/ (pubkey.ssh, pubkey.minisign). Namespaces, SHA-512 digest
# lines, and every format x algorithm pair that cannot work are refused clearly.
. "$(dirname "$0")/lib.sh"

start_sigfs
K=$MNT/.ctl/keys
head -c 300000 /dev/urandom >"$T/fw.bin"
head -c 1000 /dev/urandom >"$T/other.bin"

# ssh_verify KEY NAMESPACE FILE SIG: what a user runs, with the key's pubkey.ssh as the signer.
ssh_verify() {
	echo "ci@example.org namespaces=\"$2\" $(cat "$K/$1/pubkey.ssh")" >"$T/allowed_signers"
	ssh-keygen -Y verify -f "$T/allowed_signers" -I ci@example.org -n "$2" -s "$4" <"$3" >/dev/null 2>&1
}

# --- sshsig, every algorithm ------------------------------------------------------------------
declare -A sshtype=([ed25519]=ssh-ed25519 [ecdsa-p256]=ecdsa-sha2-nistp256
	[ecdsa-p384]=ecdsa-sha2-nistp384 [ecdsa-p521]=ecdsa-sha2-nistp521
	[rsa-2048]=ssh-rsa [rsa-3072]=ssh-rsa [rsa-4096]=ssh-rsa)
for alg in ed25519 ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	key=s-$alg
	make_key "$key" "$alg"
	check "$key: format sshsig accepted" bash -c "echo sshsig > '$K/$key/format'"
	check "$key: format reads back" test "$(cat "$K/$key/format")" = sshsig
	check "$key: pubkey.ssh is one '${sshtype[$alg]} BASE64 $key' line" \
		grep -qxE "${sshtype[$alg]} [A-Za-z0-9+/]+=* $key" "$K/$key/pubkey.ssh"
	check "$key: ssh-keygen reads pubkey.ssh" ssh-keygen -l -f "$K/$key/pubkey.ssh"
	cp "$T/fw.bin" "$MNT/$key/fw.bin"
	check "$key: fw.bin.sig is an SSH signature" \
		grep -qx -- "-----BEGIN SSH SIGNATURE-----" "$MNT/$key/fw.bin.sig"
	check "$key: ssh-keygen -Y verify accepts it" ssh_verify "$key" file "$T/fw.bin" "$MNT/$key/fw.bin.sig"
	check_fails "$key: ssh-keygen rejects it for other bytes" \
		ssh_verify "$key" file "$T/other.bin" "$MNT/$key/fw.bin.sig"
	check_fails "$key: ssh-keygen rejects it in another namespace" \
		ssh_verify "$key" git "$T/fw.bin" "$MNT/$key/fw.bin.sig"
done

# The key's digest setting does not matter: the file is hashed with SHA-512.
echo sha3-256 >"$K/s-ecdsa-p384/digest"
cp "$T/fw.bin" "$MNT/s-ecdsa-p384/sha3.bin"
check "a sha3-256 key's sshsig verifies" ssh_verify s-ecdsa-p384 file "$T/fw.bin" "$MNT/s-ecdsa-p384/sha3.bin.sig"

# RSA PSS keys still make rsa-sha2-512 (PKCS#1 v1.5) SSH signatures.
echo pss >"$K/s-rsa-2048/padding"
cp "$T/fw.bin" "$MNT/s-rsa-2048/pss.bin"
check "a PSS RSA key's sshsig verifies" ssh_verify s-rsa-2048 file "$T/fw.bin" "$MNT/s-rsa-2048/pss.bin.sig"

# --- namespaces -------------------------------------------------------------------------------
check "namespace defaults to file" test "$(cat "$K/s-ed25519/namespace")" = file
check "namespace can be set" bash -c "echo release@example.org > '$K/s-ed25519/namespace'"
cp "$T/fw.bin" "$MNT/s-ed25519/ns.bin"
check "a signature in the new namespace verifies there" \
	ssh_verify s-ed25519 release@example.org "$T/fw.bin" "$MNT/s-ed25519/ns.bin.sig"
check_fails "and not in the old one" ssh_verify s-ed25519 file "$T/fw.bin" "$MNT/s-ed25519/ns.bin.sig"
check_fails_with "a namespace with a space: EINVAL" "Invalid argument" \
	bash -c "echo 'a b' > '$K/s-ed25519/namespace'"

# --- digest lines -----------------------------------------------------------------------------
for key in s-ed25519 s-ecdsa-p256; do
	ns=$(cat "$K/$key/namespace")
	(cd "$T" && sha512sum fw.bin | sed 's/ fw.bin$/ dl.bin/') >"$T/line"
	cp "$T/line" "$MNT/$key/dl.bin.sha512"
	check "$key: a .sha512 digest line gives dl.bin.sig" test -s "$MNT/$key/dl.bin.sig"
	check "$key: which ssh-keygen verifies against the file" \
		ssh_verify "$key" "$ns" "$T/fw.bin" "$MNT/$key/dl.bin.sig"
	(cd "$T" && sha256sum fw.bin | sed 's/ fw.bin$/ dl2.bin/') >"$T/line"
	check_fails "$key: close() of a .sha256 digest line fails" cp "$T/line" "$MNT/$key/dl2.bin.sha256"
	check "$key: dl2.bin.err says sshsig needs SHA-512" grep -q "sshsig signs a SHA-512" "$MNT/$key/dl2.bin.err"
	check "$key: and no dl2.bin.sig" test ! -e "$MNT/$key/dl2.bin.sig"
done

# --- a signing request asking for sshsig (the build host hashes, a few hundred bytes travel) ---
SIGFS=${SIGFS:-$(dirname "$SIGFSD")/sigfs}
"$SIGFS" request "$T/fw.bin" --format sshsig -o "$T/req.sigreq"
cp "$T/req.sigreq" "$MNT/s-rsa-3072/rq.bin.sigreq"
check "a request for sshsig gives rq.bin.sig, an SSH signature" \
	grep -qx -- "-----BEGIN SSH SIGNATURE-----" "$MNT/s-rsa-3072/rq.bin.sig"
check "which ssh-keygen verifies against the file" \
	ssh_verify s-rsa-3072 file "$T/fw.bin" "$MNT/s-rsa-3072/rq.bin.sig"

# --- minisign ---------------------------------------------------------------------------------
make_key m ed25519
check "minisign on an ed25519 key: accepted" bash -c "echo minisign > '$K/m/format'"
check "pubkey.minisign has the comment line and the key line" \
	grep -qxE "untrusted comment: minisign public key [0-9A-F]{16}" "$K/m/pubkey.minisign"
check "pubkey.minisign's key line is 'Ed' || key id || key, base64" \
	test "$(sed -n 2p "$K/m/pubkey.minisign" | base64 -d | head -c 2)" = Ed
cp "$K/m/pubkey.minisign" "$T/m.pub"
before=$(date +%s)
cp "$T/fw.bin" "$MNT/m/fw.bin"
after=$(date +%s)
check "cp returns with fw.bin.minisig on disk" test -s "$MNT/m/fw.bin.minisig"
check "no fw.bin.sig next to it" test ! -e "$MNT/m/fw.bin.sig"
check "minisign -V accepts it" bash -c "minisign -Vm '$T/fw.bin' -x '$MNT/m/fw.bin.minisig' -p '$T/m.pub' >'$T/mv.out'"
tc=$(sed -n 's/^Trusted comment: //p' "$T/mv.out")
tc_names_file() { [[ $tc =~ ^timestamp:[0-9]+$'\t'file:fw\.bin$'\t'hashed$ ]]; }
check "and prints the trusted comment naming the file" tc_names_file
ts=${tc#timestamp:}
ts=${ts%%$'\t'*}
check "with the time it was signed" test "$ts" -ge "$before" -a "$ts" -le "$after"
check_fails "minisign -V rejects other bytes" \
	minisign -Vqm "$T/other.bin" -x "$MNT/m/fw.bin.minisig" -p "$T/m.pub"
cp "$T/fw.bin" "$T/sigfs-copy.bin"
cp "$MNT/m/fw.bin.minisig" "$T/sigfs-copy.bin.minisig"
check "minisign -Vm FILE finds FILE.minisig next to it" minisign -Vqm "$T/sigfs-copy.bin" -p "$T/m.pub"

(cd "$T" && sha512sum fw.bin | sed 's/ fw.bin$/ dl.bin/') >"$T/line"
check_fails "minisign: close() of a digest line fails" cp "$T/line" "$MNT/m/dl.bin.sha512"
check "dl.bin.err says minisign needs the file" grep -q "BLAKE2b-512 of the file" "$MNT/m/dl.bin.err"

# Every other algorithm is refused when the admin sets the format.
for alg in ecdsa-p256 ecdsa-p384 ecdsa-p521 rsa-2048 rsa-3072 rsa-4096; do
	mark=$(log_mark)
	check_fails_with "minisign on an $alg key: EINVAL" "Invalid argument" \
		bash -c "echo minisign > '$K/s-$alg/format'"
	check "  the log says why" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'minisign signs with ed25519 keys only, not $alg'"
	check "  the format stays sshsig" test "$(cat "$K/s-$alg/format")" = sshsig
	check_fails "  and there is no pubkey.minisign to read" cat "$K/s-$alg/pubkey.minisign"
done

# A minisign key that has not signed yet may get another algorithm, but not one minisign lacks.
make_key m2 ed25519
echo minisign >"$K/m2/format"
mark=$(log_mark)
check_fails_with "a minisign key cannot become rsa-2048: EINVAL" "Invalid argument" \
	bash -c "echo rsa-2048 > '$K/m2/algorithm'"
check "  the log says why" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'minisign signs with ed25519 keys only, not rsa-2048'"
check "  it stays ed25519" test "$(cat "$K/m2/algorithm")" = ed25519

# The key id, and so the public key file, never changes: a restart renders the same file.
stop_sigfs
start_sigfs
check "pubkey.minisign is the same after a restart" cmp -s "$K/m/pubkey.minisign" "$T/m.pub"
# A settings change drops what formats rendered: the file is rendered afresh, identically.
echo "Release <rel@example.org>" >"$K/m/uid"
check "and after it is rendered again" cmp -s "$K/m/pubkey.minisign" "$T/m.pub"
cp "$T/fw.bin" "$MNT/m/again.bin"
check "and a new signature verifies with the old file" \
	minisign -Vqm "$T/fw.bin" -x "$MNT/m/again.bin.minisig" -p "$T/m.pub"
cp "$T/fw.bin" "$MNT/s-ed25519/again.bin"
check "pubkey.ssh still verifies signatures after a restart" \
	ssh_verify s-ed25519 release@example.org "$T/fw.bin" "$MNT/s-ed25519/again.bin.sig"

stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
