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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

struct worker {
	pthread_t tid;
	uint64_t done;
	CK_RV rv;                     /* first failure, CKR_OK if none */
	const char *call;             /* ... and the call that failed */
};

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static const char *key_label;
static CK_KEY_TYPE key_type;
static atomic_bool stop;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

static void *run(void *arg)
{
	struct worker *w = arg;
	static const CK_BYTE digest[32] = { 0x5a, 0x17, 0x42 };  /* any 32 bytes */
	CK_RSA_PKCS_PSS_PARAMS pss = { CKM_SHA256, CKG_MGF1_SHA256, sizeof(digest) };
	CK_MECHANISM mech = key_type == CKK_RSA ?
		(CK_MECHANISM){ CKM_RSA_PKCS_PSS, &pss, sizeof(pss) } :
		(CK_MECHANISM){ CKM_ECDSA, NULL, 0 };
	CK_SESSION_HANDLE s;
	CK_OBJECT_HANDLE key;
	CK_BYTE sig[1024];
	CK_ULONG siglen;

	w->call = "C_OpenSession";
	w->rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
	if (w->rv != CKR_OK)
		return NULL;
	w->call = "finding the key";
	w->rv = find_key(s, &key);
	while (w->rv == CKR_OK && !atomic_load(&stop)) {
		w->call = "C_SignInit";
		w->rv = f->C_SignInit(s, &mech, key);
		if (w->rv != CKR_OK)
			break;
		siglen = sizeof(sig);
		w->call = "C_Sign";
		w->rv = f->C_Sign(s, (CK_BYTE_PTR)digest, sizeof(digest), sig, &siglen);
		if (w->rv == CKR_OK)
			w->done++;
	}
	f->C_CloseSession(s);
	return NULL;
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

	struct worker *ws = calloc(nthreads, sizeof(*ws));

	if (!ws) {
		perror("p11_sign_loop: calloc");
		return 1;
	}
	double t0 = now();

	for (unsigned i = 0; i < nthreads; i++) {
		int r = pthread_create(&ws[i].tid, NULL, run, &ws[i]);

		if (r) {
			fprintf(stderr, "p11_sign_loop: pthread_create: %s\n", strerror(r));
			return 1;
		}
	}
	struct timespec ts = { (time_t)duration, (long)((duration - (double)(time_t)duration) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	atomic_store(&stop, true);

	uint64_t total = 0;
	int status = 0;

	for (unsigned i = 0; i < nthreads; i++) {
		pthread_join(ws[i].tid, NULL);
		total += ws[i].done;
		if (ws[i].rv != CKR_OK) {
			die(ws[i].call, ws[i].rv);
			status = 1;
		}
	}
	double secs = now() - t0;

	printf("signatures: %llu seconds: %.3f threads: %u\n", (unsigned long long)total, secs,
	       nthreads);
	printf("signatures/s: %.1f\n", (double)total / secs);
	free(ws);
	f->C_Logout(login);
	f->C_CloseSession(login);
	f->C_Finalize(NULL);
	dlclose(dl);
	return status;
}
