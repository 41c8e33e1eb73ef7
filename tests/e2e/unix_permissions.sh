#!/bin/bash
# Story: who may sign with a key is plain Unix permissions on its inbox
# (chgrp/chmod/chown, kept across restarts); files and signatures belong to
# their writer; only root and the admin group see and change the control tree.
. "$(dirname "$0")/lib.sh"

SIGNERS=sigfs-e2e-signers
ensure_group "$SIGNERS"
for u in alice bob carol; do ensure_user "$u"; done
usermod -a -G "$SIGNERS" alice
usermod -a -G "$ADMIN_GROUP" carol
for g in "$SIGNERS" "$ADMIN_GROUP"; do gpasswd -d bob "$g" >/dev/null 2>&1 || true; done
gpasswd -d carol "$SIGNERS" >/dev/null 2>&1 || true
gpasswd -d alice "$ADMIN_GROUP" >/dev/null 2>&1 || true
check "fixture: alice is in the signers group" bash -c "id -nG alice | grep -qw $SIGNERS"
check "fixture: bob is in neither group" bash -c "! id -nG bob | grep -qwE '$SIGNERS|$ADMIN_GROUP'"
check "fixture: carol is an admin, not a signer" bash -c \
	"id -nG carol | grep -qw $ADMIN_GROUP && ! id -nG carol | grep -qw $SIGNERS"
ALICE_G=$(id -gn alice)

head -c 40000 /dev/urandom >"$T/fw.bin"
chmod 644 "$T/fw.bin"
start_sigfs
K=$MNT/.ctl/keys
make_key rel
check "chgrp of the inbox to the signers group works" chgrp "$SIGNERS" "$MNT/rel"
check "chmod 0770 of the inbox works" chmod 0770 "$MNT/rel"
check "inbox is root:signers 0770" stat_is "$MNT/rel" "root:$SIGNERS 770"

# --- alice signs --------------------------------------------------------------------------
check "alice's cp into the inbox works" as alice cp "$T/fw.bin" "$MNT/rel/alice.bin"
check "the signature is there when cp returns and verifies" verify_raw rel "$T/fw.bin" "$MNT/rel/alice.bin.sig"
check "the artifact belongs to alice and her group" stat_is "$MNT/rel/alice.bin" "alice:$ALICE_G 644"
check "the .sig belongs to alice and her group, 0444" stat_is "$MNT/rel/alice.bin.sig" "alice:$ALICE_G 444"
check "alice can read her signature" as alice cat "$MNT/rel/alice.bin.sig" >/dev/null
check "alice can list the inbox" as alice ls "$MNT/rel" >/dev/null
check "the audit log records alice's uid for the signature" \
	grep -q " sign key=rel uid=$(id -u alice) .*name=alice.bin " "$STATE/audit.log"
check_fails_with "alice cannot overwrite her .sig (0444)" "Permission denied" as alice bash -c "echo x > '$MNT/rel/alice.bin.sig'"
as alice chmod u+w "$MNT/rel/alice.bin.sig" 2>/dev/null || true
check_fails_with "nor after chmod u+w: outputs are read-only (EPERM)" "Operation not permitted" \
	as alice bash -c "echo x > '$MNT/rel/alice.bin.sig'"
chmod 0444 "$MNT/rel/alice.bin.sig"
check_fails_with "alice cannot chmod the inbox (owned by root)" "Operation not permitted" as alice chmod 0777 "$MNT/rel"
check_fails_with "alice cannot chgrp the inbox" "Operation not permitted" as alice chgrp "$ALICE_G" "$MNT/rel"

# --- bob may not ----------------------------------------------------------------------------
signed=$(sed -n 's/^signed: //p' "$MNT/.ctl/status")
check_fails_with "bob's cp into the inbox: Permission denied" "Permission denied" as bob cp "$T/fw.bin" "$MNT/rel/bob.bin"
check_fails_with "bob's shell redirect: Permission denied" "Permission denied" as bob bash -c "echo hi > '$MNT/rel/bob2.bin'"
check_fails_with "bob cannot list the inbox" "Permission denied" as bob ls "$MNT/rel"
check_fails_with "bob cannot read alice's signature" "Permission denied" as bob cat "$MNT/rel/alice.bin.sig"
check_fails_with "bob cannot delete alice's artifact" "Permission denied" as bob rm -f "$MNT/rel/alice.bin"
check_fails_with "bob cannot rename into the inbox" "Permission denied" as bob mv "$T/fw.bin" "$MNT/rel/bob3.bin"
check "nothing of bob's was created" bash -c "! ls -a '$MNT/rel' | grep -q bob"
check "nothing was signed for bob" test "$(sed -n 's/^signed: //p' "$MNT/.ctl/status")" = "$signed"
check "no audit line with bob's uid" no_match " uid=$(id -u bob) " "$STATE/audit.log"
check "alice's files are intact" verify_raw rel "$MNT/rel/alice.bin" "$MNT/rel/alice.bin.sig"

# --- the control tree: root and admins only -------------------------------------------------
for u in alice bob; do
	check_fails_with "$u cannot list .ctl" "Permission denied" as $u ls "$MNT/.ctl"
	check_fails_with "$u cannot read .ctl/status" "Permission denied" as $u cat "$MNT/.ctl/status"
	check_fails_with "$u cannot mkdir a key" "Permission denied" as $u mkdir "$K/$u-key"
	check_fails_with "$u cannot rmdir a key" "Permission denied" as $u rmdir "$K/rel"
	check_fails_with "$u cannot read pubkey.pem" "Permission denied" as $u cat "$K/rel/pubkey.pem"
	check_fails_with "$u cannot read the algorithm" "Permission denied" as $u cat "$K/rel/algorithm"
	check_fails_with "$u cannot change the digest" "Permission denied" as $u bash -c "echo sha512 > '$K/rel/digest'"
	check_fails_with "$u cannot import a key" "Permission denied" as $u bash -c "echo x > '$K/rel/import'"
done
check "no key was made by alice or bob" test ! -e "$K/alice-key" -a ! -e "$K/bob-key" -a ! -e "$MNT/alice-key"
check "digest unchanged" test "$(cat "$K/rel/digest")" = sha256
check "rel is still there" test -d "$K/rel"

check "carol (admin) can list .ctl/keys" as carol ls "$K"
check "carol can read status" as carol grep -q "^key rel:" "$MNT/.ctl/status"
check "carol can read pubkey.pem" as carol cmp -s "$K/rel/pubkey.pem" "$(pubkey rel)"
check "carol can mkdir a key" as carol mkdir "$K/carolkey"
check "carol's key has an inbox, root:admin 1770" stat_is "$MNT/carolkey" "root:$ADMIN_GROUP 1770"
check "carol's key dir is root:admin" stat_is "$K/carolkey" "root:$ADMIN_GROUP 750"
check "the audit log records carol's uid for keygen" grep -q " keygen key=carolkey uid=$(id -u carol) " "$STATE/audit.log"
check "carol can set the algorithm" as carol bash -c "echo ed25519 > '$K/carolkey/algorithm'"
check "algorithm was set" test "$(cat "$K/carolkey/algorithm")" = ed25519
check_fails_with "carol cannot read import (write-only)" "Permission denied" as carol cat "$K/carolkey/import"
check_fails_with "carol cannot write pubkey.pem" "Permission denied" as carol bash -c "echo x > '$K/carolkey/pubkey.pem'"
check_fails_with "carol (not a signer) cannot sign with rel" "Permission denied" as carol cp "$T/fw.bin" "$MNT/rel/carol.bin"
check_fails_with "alice cannot sign with carol's new key (admin group inbox)" "Permission denied" \
	as alice cp "$T/fw.bin" "$MNT/carolkey/alice.bin"
check "carol can rmdir her key" as carol rmdir "$K/carolkey"
check "the key dir is gone" test ! -e "$K/carolkey"
check "the inbox is gone (within the kernel's 1 s entry cache)" wait_gone "$MNT/carolkey"
check "the audit log records carol's uid for keydel" grep -q " keydel key=carolkey uid=$(id -u carol)" "$STATE/audit.log"

# --- chown: a per-user inbox ----------------------------------------------------------------
make_key bobs
check "chown bob:bob of an inbox works" chown "bob:$(id -gn bob)" "$MNT/bobs"
check "chmod 0700 of it works" chmod 0700 "$MNT/bobs"
check "bob can sign in his inbox" as bob cp "$T/fw.bin" "$MNT/bobs/b.bin"
check "bob's signature verifies" verify_raw bobs "$T/fw.bin" "$MNT/bobs/b.bin.sig"
check_fails_with "alice cannot sign in bob's inbox" "Permission denied" as alice cp "$T/fw.bin" "$MNT/bobs/a.bin"
check "bob (the owner) can chmod his inbox" as bob chmod 0750 "$MNT/bobs"
check "bob's chmod took" stat_is "$MNT/bobs" "bob:$(id -gn bob) 750"
check_fails_with "bob cannot give his inbox away (chown)" "Operation not permitted" as bob chown alice "$MNT/bobs"
check_fails_with "nobody can chmod .ctl, not even root" "Operation not permitted" chmod 0777 "$MNT/.ctl"

# --- everything survives a restart ------------------------------------------------------------
stop_sigfs
start_sigfs
check "after restart the rel inbox is still root:signers 0770" stat_is "$MNT/rel" "root:$SIGNERS 770"
check "after restart bob's inbox is still bob's, 0750" stat_is "$MNT/bobs" "bob:$(id -gn bob) 750"
check "after restart alice's files still belong to her" stat_is "$MNT/rel/alice.bin.sig" "alice:$ALICE_G 444"
check "after restart alice can still sign" as alice cp "$T/fw.bin" "$MNT/rel/alice2.bin"
check "that signature verifies" verify_raw rel "$T/fw.bin" "$MNT/rel/alice2.bin.sig"
check "and belongs to alice" stat_is "$MNT/rel/alice2.bin.sig" "alice:$ALICE_G 444"
check_fails_with "after restart bob is still refused" "Permission denied" as bob cp "$T/fw.bin" "$MNT/rel/bob.bin"
check_fails_with "after restart alice still cannot read .ctl" "Permission denied" as alice ls "$MNT/.ctl"
check "after restart bob can still sign in his inbox" as bob cp "$T/fw.bin" "$MNT/bobs/b2.bin"
stop_sigfs
check "audit log chain verifies" "$SIGFSD" --verify-audit "$STATE/audit.log"
done_testing
