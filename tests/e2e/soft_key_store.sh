#!/bin/bash
# Story: with the default soft backend, private keys live only in
# STATE/soft/KEY.pem (0600, root, in a 0700 directory), are never visible
# in the mount, go away with rmdir, and survive a restart unchanged.
. "$(dirname "$0")/lib.sh"

K=$MNT/.ctl/keys
start_sigfs
head -c 50000 /dev/urandom >"$T/fw.bin"

make_key gen-ec
make_key gen-ed ed25519
make_key gen-rsa rsa-2048
openssl genrsa -traditional -out "$T/trad-rsa.key" 2048 2>/dev/null
check "fixture: a traditional RSA key" grep -q "BEGIN RSA PRIVATE KEY" "$T/trad-rsa.key"
mkdir "$K/imp-rsa"
check "traditional RSA key imported" bash -c "cat '$T/trad-rsa.key' > '$K/imp-rsa/import'"
keys="gen-ec gen-ed gen-rsa imp-rsa"

check "soft dir is root:root 0700" stat_is "$STATE/soft" "root:root 700"
for k in $keys; do
	check "$k: key file is root:root 0600" stat_is "$STATE/soft/$k.pem" "root:root 600"
	check "$k: key file is PKCS#8 PEM" grep -q "^-----BEGIN PRIVATE KEY-----" "$STATE/soft/$k.pem"
	check "$k: key file matches pubkey.pem" \
		cmp -s <(openssl pkey -in "$STATE/soft/$k.pem" -pubout) "$K/$k/pubkey.pem"
done
check "soft dir holds exactly the four key files" test "$(ls -A "$STATE/soft" | tr '\n' ' ')" = \
	"gen-ec.pem gen-ed.pem gen-rsa.pem imp-rsa.pem "

for k in $keys; do
	cp "$T/fw.bin" "$MNT/$k/fw.bin"
	check "$k: signature verifies" verify_raw "$k" "$T/fw.bin" "$MNT/$k/fw.bin.sig"
	cp "$K/$k/pubkey.pem" "$T/$k.before.pem"
done

# Nothing in the mount shows a private key: read every file there as root.
find "$MNT" -type f >"$T/files"
check "the mount has files to read (inboxes and attributes)" test "$(wc -l <"$T/files")" -gt 40
# A format's file that does not apply to a key (pubkey.minisign of an RSA key)
# answers ENODATA; everything else must read.
check "every file in the mount can be read by root" bash -c \
	"while IFS= read -r f; do cat \"\$f\" >/dev/null 2>'$T/cat.err' || grep -q 'No data available' '$T/cat.err' || exit 1; done < '$T/files'"
check "only files that do not apply to a key answer ENODATA" bash -c \
	"while IFS= read -r f; do cat \"\$f\" >/dev/null 2>/dev/null || case \$f in */pubkey.minisign) ;; *) exit 1;; esac; done < '$T/files'"
check "grep -r 'PRIVATE KEY' over the mount finds nothing" bash -c "! grep -r -q 'PRIVATE KEY' '$MNT'"
check "grep -r 'PRIVATE' over .ctl finds nothing" bash -c "! grep -r -q PRIVATE '$MNT/.ctl'"
# Neither does any line of a key's base64 body. Early lines hold the public
# modulus, which public files (pubkey.ssh) rightly contain: take a line from
# the private part (d, p, q) in the middle of the key.
sed -n 15p "$STATE/soft/imp-rsa.pem" >"$T/keyline"
check "fixture: a line of the stored private key" test "$(wc -c <"$T/keyline")" -gt 60
check "no line of the private key appears in the mount" bash -c "! grep -r -q -F -f '$T/keyline' '$MNT'"
sed -n 15p "$T/trad-rsa.key" >"$T/keyline2"
check "no line of the imported PEM appears in the mount" bash -c "! grep -r -q -F -f '$T/keyline2' '$MNT'"
for k in $keys; do
	check "$k: import reads back empty" bash -c "out=\$(cat '$K/$k/import') && [ -z \"\$out\" ]"
done
check "import is write-only for the admin group (0220)" stat_is "$K/imp-rsa/import" "root:$ADMIN_GROUP 220"

# rmdir deletes the key file.
check "rmdir gen-rsa (inbox emptied first)" bash -c "rm -f '$MNT/gen-rsa'/* && rmdir '$K/gen-rsa'"
check "gen-rsa key file is gone" test ! -e "$STATE/soft/gen-rsa.pem"
ls -A "$STATE/soft" >"$T/soft.ls"
check "no leftover temporary key files" no_match -v '\.pem$' "$T/soft.ls"
check "the other key files stay" test -e "$STATE/soft/gen-ec.pem" -a -e "$STATE/soft/imp-rsa.pem"
keys="gen-ec gen-ed imp-rsa"

# Keys survive a restart.
stop_sigfs
# A state dir left group-readable is tightened, a crash's .new-* leftover removed.
chmod 0750 "$STATE/soft"
echo junk >"$STATE/soft/.new-gen-ec.pem.123"
start_sigfs
check "soft dir is reset to 0700 at start" stat_is "$STATE/soft" "root:root 700"
check "leftover .new-* file removed at start" test ! -e "$STATE/soft/.new-gen-ec.pem.123"
check "a deleted key stays deleted after restart" test ! -e "$K/gen-rsa" -a ! -e "$MNT/gen-rsa"
for k in $keys; do
	check "$k: pubkey.pem unchanged after restart" cmp -s "$T/$k.before.pem" "$K/$k/pubkey.pem"
	check "$k: key file still 0600 root" stat_is "$STATE/soft/$k.pem" "root:root 600"
	check "$k: signature from before still verifies" verify_raw "$k" "$T/fw.bin" "$MNT/$k/fw.bin.sig"
	head -c 7777 /dev/urandom >"$T/after.bin"
	cp "$T/after.bin" "$MNT/$k/after.bin"
	check "$k: new signature verifies with the old public key" verify_raw "$k" "$T/after.bin" "$MNT/$k/after.bin.sig"
done
check "algorithm of the imported key survives" test "$(cat "$K/imp-rsa/algorithm")" = rsa-2048
check "count survives the restart" test "$(cat "$K/gen-ec/count")" = 2
check "still no private key in the mount" bash -c "! grep -r -q 'PRIVATE KEY' '$MNT'"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
