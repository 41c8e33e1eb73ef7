/*
 * p11_sign_loop.c: a PKCS#11 token's own signing rate, the baseline of figure
 * (c) in bench/backends.sh.
 *
 *   p11_sign_loop -m MODULE -l TOKEN_LABEL -p PIN_FILE -k KEY_LABEL [-t THREADS] [-d SECONDS]
 *
 * Loads MODULE with dlopen, finds the token by label, logs in with the PIN
 * (first line of PIN_FILE), finds the private key whose CKA_LABEL is
 * KEY_LABEL, then THREADS threads (default 1), each with its own session,
 * C_SignInit + C_Sign a fixed SHA-256-sized digest in a loop for SECONDS
 * (default 5). RSA keys sign with CKM_RSA_PKCS_PSS (SHA-256, MGF1-SHA-256,
 * salt 32: what sigfs does for an rsa key with the default digest and
 * padding), EC keys with CKM_ECDSA. This is what the pkcs11 backend does per
 * signature, minus FUSE, the engine and the output file.
 *
 * Output: `signatures/s: X` (and `signatures: N seconds: S threads: T`).
 */
#include <dlfcn.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

#include "loop.h"

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static const char *key_label;
static CK_KEY_TYPE key_type;

static int die(const char *call, CK_RV rv)
{
	fprintf(stderr, "p11_sign_loop: %s failed: CKR 0x%lx\n", call, (unsigned long)rv);
	return 1;
}

/* The token's label is 32 bytes padded with spaces. */
static bool label_is(const CK_UTF8CHAR *field, const char *want)
{
	size_t n = strlen(want);

	if (n > 32 || memcmp(field, want, n) != 0)
		return false;
	for (size_t i = n; i < 32; i++)
		if (field[i] != ' ')
			return false;
	return true;
}

static CK_RV find_slot(const char *label)
{
	CK_SLOT_ID slots[64];
	CK_ULONG n = 64;
	CK_RV rv = f->C_GetSlotList(CK_TRUE, slots, &n);

	if (rv != CKR_OK)
		return rv;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_TOKEN_INFO ti;

		if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && label_is(ti.label, label)) {
			slot = slots[i];
			return CKR_OK;
		}
	}
	return CKR_TOKEN_NOT_PRESENT;
}

static CK_RV find_key(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *key)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)key_label, strlen(key_label) },
	};
	CK_ULONG n = 0;
	CK_RV rv = f->C_FindObjectsInit(s, tmpl, 2);

	if (rv != CKR_OK)
		return rv;
	rv = f->C_FindObjects(s, key, 1, &n);
	f->C_FindObjectsFinal(s);
	if (rv == CKR_OK && n != 1)
		rv = CKR_KEY_HANDLE_INVALID;
	return rv;
}

/* A thread's own session and key handle. */
struct sess {
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
};

static int p11_fail(char *err, const char *call, CK_RV rv)
{
	snprintf(err, BENCH_ERRLEN, "%s failed: CKR 0x%lx", call, (unsigned long)rv);
	return -EIO;
}

/* C_SignInit + C_Sign of a fixed digest, in the thread's session (opened on first use). */
static int sign_once(unsigned thread, void **state, char *err)
{
	static const CK_BYTE digest[32] = { 0x5a, 0x17, 0x42 };  /* any 32 bytes */
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, sizeof(digest) };
	CK_MECHANISM mech = key_type == CKK_RSA ?
		(CK_MECHANISM){ CKM_RSA_PKCS_PSS, &pss, sizeof(pss) } :
		(CK_MECHANISM){ CKM_ECDSA, NULL, 0 };
	struct sess *ss = *state;
	CK_BYTE sig[1024];
	CK_ULONG siglen = sizeof(sig);
	CK_RV rv;

	(void)thread;
	if (!ss) {
		ss = calloc(1, sizeof(*ss));
		if (!ss) {
			snprintf(err, BENCH_ERRLEN, "out of memory");
			return -ENOMEM;
		}
		*state = ss;
		rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &ss->s);
		if (rv != CKR_OK) {
			ss->s = CK_INVALID_HANDLE;
			return p11_fail(err, "C_OpenSession", rv);
		}
		rv = find_key(ss->s, &ss->key);
		if (rv != CKR_OK)
			return p11_fail(err, "finding the key", rv);
	}
	rv = f->C_SignInit(ss->s, &mech, ss->key);
	if (rv != CKR_OK)
		return p11_fail(err, "C_SignInit", rv);
	rv = f->C_Sign(ss->s, (CK_BYTE_PTR)digest, sizeof(digest), sig, &siglen);
	return rv == CKR_OK ? 0 : p11_fail(err, "C_Sign", rv);
}

static void sess_close(unsigned thread, void *state)
{
	struct sess *ss = state;

	(void)thread;
	if (ss && ss->s != CK_INVALID_HANDLE)
		f->C_CloseSession(ss->s);
	free(ss);
}

static int read_pin(const char *path, char *pin, size_t size)
{
	FILE *fp = fopen(path, "r");

	if (!fp || !fgets(pin, (int)size, fp)) {
		fprintf(stderr, "p11_sign_loop: cannot read the PIN from %s\n", path);
		if (fp)
			fclose(fp);
		return -EIO;
	}
	fclose(fp);
	pin[strcspn(pin, "\r\n")] = '\0';
	return 0;
}

static void usage(FILE *out)
{
	fprintf(out, "usage: p11_sign_loop -m MODULE -l TOKEN_LABEL -p PIN_FILE -k KEY_LABEL "
		     "[-t THREADS] [-d SECONDS]\n");
}

int main(int argc, char **argv)
{
	const char *module = NULL, *token = NULL, *pin_file = NULL;
	unsigned nthreads = 1;
	double duration = 5;
	CK_C_INITIALIZE_ARGS init = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList getfl;
	CK_SESSION_HANDLE login;
	CK_OBJECT_HANDLE key;
	CK_ATTRIBUTE kt = { CKA_KEY_TYPE, &key_type, sizeof(key_type) };
	char pin[256];
	void *dl;
	CK_RV rv;
	int c;

	while ((c = getopt(argc, argv, "m:l:p:k:t:d:h")) != -1) {
		switch (c) {
		case 'm': module = optarg; break;
		case 'l': token = optarg; break;
		case 'p': pin_file = optarg; break;
		case 'k': key_label = optarg; break;
		case 't': nthreads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'd': duration = strtod(optarg, NULL); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!module || !token || !pin_file || !key_label || optind != argc || nthreads == 0 ||
	    nthreads > 1024 || duration <= 0) {
		usage(stderr);
		return 2;
	}
	dl = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	getfl = dl ? (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList") : NULL;
	if (!getfl) {
		fprintf(stderr, "p11_sign_loop: cannot load %s: %s\n", module, dlerror());
		return 1;
	}
	if ((rv = getfl(&f)) != CKR_OK)
		return die("C_GetFunctionList", rv);
	if ((rv = f->C_Initialize(&init)) != CKR_OK)
		return die("C_Initialize", rv);
	if ((rv = find_slot(token)) != CKR_OK)
		return die("finding the token", rv);
	/* Login state belongs to the application: one login covers every session. */
	if ((rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL,
				   &login)) != CKR_OK)
		return die("C_OpenSession", rv);
	if (read_pin(pin_file, pin, sizeof(pin)) < 0)
		return 1;
	rv = f->C_Login(login, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
	memset(pin, 0, sizeof(pin));
	if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
		return die("C_Login", rv);
	if ((rv = find_key(login, &key)) != CKR_OK)
		return die("finding the key", rv);
	if ((rv = f->C_GetAttributeValue(login, key, &kt, 1)) != CKR_OK)
		return die("C_GetAttributeValue(CKA_KEY_TYPE)", rv);
	if (key_type != CKK_RSA && key_type != CKK_EC) {
		fprintf(stderr, "p11_sign_loop: key %s is neither RSA nor EC\n", key_label);
		return 1;
	}

	const struct bench_loop loop = {
		.prog = "p11_sign_loop", .threads = nthreads, .seconds = duration,
		.sign = sign_once, .done = sess_close,
	};
	int status = bench_loop_run(&loop);

	f->C_Logout(login);
	f->C_CloseSession(login);
	f->C_Finalize(NULL);
	dlclose(dl);
	return status;
}
