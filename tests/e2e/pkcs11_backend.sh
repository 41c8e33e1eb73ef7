#!/bin/bash
# Story: an admin adds a PKCS#11 token as [backend hsm] and creates keys on it
# with `mkdir .ctl/keys/KEY@hsm`; files copied into KEY's inbox are signed on
# the token (Ed25519, ECDSA P-256/384/521, RSA PSS and PKCS#1 v1.5; kernel
# modules with P-256 and RSA) and verify with openssl; the private keys are
# on the token, not extractable, and go away with rmdir. A PIN file others
# can read, or a wrong PIN, is refused with a clear log line and NAME.err; the
# soft backend keeps working beside it; the PIN appears nowhere in the mount
# or the log. SoftHSM2 plays the token.
. "$(dirname "$0")/lib.sh"

MODULE=/usr/lib/softhsm/libsofthsm2.so
PIN=4321
K=$MNT/.ctl/keys

# SoftHSM2 leaks inside itself (tests/lsan-softhsm.supp); sanitizer builds only.
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0
export LSAN_OPTIONS=${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$SIGFS_SRC/tests/lsan-softhsm.supp
softhsm_token "$T" sigfs-test $PIN
cat >>"$CONF" <<EOF
[backend hsm]
type = pkcs11
module = $MODULE
token_label = sigfs-test
pin_file = $T/pin
EOF

p11() {
	pkcs11-tool --module "$MODULE" --token-label sigfs-test --login --pin $PIN "$@" 2>/dev/null
}

start_sigfs

# Named backends: KEY@BACKEND, unknown backends refused.
check "mkdir ed@hsm creates key ed" mkdir "$K/ed@hsm"
check "the key dir is named ed" test -d "$K/ed"
check "no key dir named ed@hsm" test ! -e "$K/ed@hsm"
check "ed's inbox exists" test -d "$MNT/ed"
check "ed lives on hsm" test "$(cat "$K/ed/backend")" = hsm
mark=$(log_mark)
check_fails_with "mkdir on an unknown backend is refused" "No such file or directory" \
	mkdir "$K/x@nope"
check "the log says which backend is missing" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'backend nope is not configured'"
check "no key x was left behind" test ! -e "$K/x" -a ! -e "$MNT/x"

sign_on ed ed25519
sign_on_ec_and_rsa hsm
mkdir "$K/rsa3@hsm"
sign_on rsa3 rsa-3072 pss

# The soft default backend alongside.
make_key soft1
check "soft1 lives on soft" test "$(cat "$K/soft1/backend")" = soft
check "mkdir soft2@soft names the default backend explicitly" mkdir "$K/soft2@soft"
check "soft2 lives on soft" test "$(cat "$K/soft2/backend")" = soft
check_fails_with "mkdir of an existing key on another backend is refused" "File exists" \
	mkdir "$K/soft2@hsm"
check "soft1's key file is in the soft store" test -e "$STATE/soft/soft1.pem"
head -c 1000 /dev/urandom >"$T/s.bin"
cp "$T/s.bin" "$MNT/soft1/s.bin"
check "soft1: signature verifies" verify_raw soft1 "$T/s.bin" "$MNT/soft1/s.bin.sig"
check "hsm keys have no soft key file" test ! -e "$STATE/soft/p256.pem"

# The keys are on the token, private halves not extractable.
p11 --list-objects >"$T/objects"
for k in ed p256 p384 p521 rsa rsa3; do
	check "$k: private and public object on the token" \
		test "$(grep -c "label: *$k\$" "$T/objects")" -eq 2
done
check "every private key is sensitive and never extractable" \
	test "$(grep -c 'Access: *sensitive.*never extractable' "$T/objects")" -eq 6

# rmdir removes the key from the token.
check "rmdir p384" rmdir "$K/p384"
p11 --list-objects >"$T/objects"
check "p384 is gone from the token" no_match 'label: *p384$' "$T/objects"
check "the other keys stay" test "$(grep -c "label: *p256\$" "$T/objects")" -eq 2

# Wrong PIN: the backend refuses, jobs give NAME.err, the daemon lives on.
stop_sigfs
printf '9999\n' >"$T/pin"
start_sigfs
mark=$(log_mark)
check_fails_with "wrong PIN: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/w.bin"
check "wrong PIN: the job gives w.bin.err" wait_for "$MNT/p256/w.bin.err" 30
check "wrong PIN: the .err names C_Login and CKR_PIN_INCORRECT" \
	grep -q "C_Login failed: CKR_PIN_INCORRECT" "$MNT/p256/w.bin.err"
check "wrong PIN: no signature" test ! -e "$MNT/p256/w.bin.sig"
check "wrong PIN: the log says so" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q CKR_PIN_INCORRECT"
cp "$T/s.bin" "$MNT/soft1/w.bin"
check "wrong PIN: soft keys still sign" wait_for "$MNT/soft1/w.bin.sig" 30
check "the daemon is still running" same_daemon

# A PIN file others can read is refused.
stop_sigfs
printf '%s\n' $PIN >"$T/pin"
chmod 0644 "$T/pin"
start_sigfs
mark=$(log_mark)
check_fails_with "pin_file 0644: close of the copy reports the failure" "Input/output error" \
	cp "$T/s.bin" "$MNT/p256/m.bin"
check "pin_file 0644: the job gives m.bin.err" wait_for "$MNT/p256/m.bin.err" 30
check "pin_file 0644: the .err says why" grep -q "refusing pin_file.*mode 0644" "$MNT/p256/m.bin.err"
check "pin_file 0644: the log says so" bash -c "tail -n +$((mark + 1)) '$LOG' | grep -q 'refusing pin_file'"
check "pin_file 0644: no signature" test ! -e "$MNT/p256/m.bin.sig"

# Fixed: signing works again after a restart.
stop_sigfs
chmod 0600 "$T/pin"
start_sigfs
cp "$T/s.bin" "$MNT/p256/ok.bin"
check "pin_file fixed: p256 signs again" verify_raw p256 "$T/s.bin" "$MNT/p256/ok.bin.sig"

# The PIN is nowhere in the mount or the log.
check "grep -r $PIN over the mount finds nothing" bash -c "! grep -r -q -w $PIN '$MNT'"
check "the log does not hold the PIN" no_match -w "$PIN" "$LOG"

stop_sigfs
done_testing
