/*
 * test_pkcs11.c: the pkcs11 backend against a SoftHSM2 token made in a
 * temporary directory. Every algorithm generates, gives its public key and
 * signs (both RSA paddings); signatures verify with OpenSSL. Also: removal,
 * existing keys, listing, PIN file checks, a wrong PIN (tried once, again when
 * pin_file changes), retry_seconds, a token that is not there (open succeeds,
 * calls wait retry_seconds for it, list does not wait), and four workers
 * signing at once on their own sessions.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "testlib.h"

#define MODULE "/usr/lib/softhsm/libsofthsm2.so"
#define PIN "4321"

static char tmpdir[4096];
static char pin_path[4200];
static struct sigfs_backend *be;
static const char *label_setting = "sigfs-unit";
static const char *retry_setting;

static const uint8_t msg[] = "sigfs pkcs11 backend test message\n";

static const char *conf_get(const struct sigfs_backend_conf *c, const char *key, const char *def)
{
	(void)c;
	if (strcmp(key, "module") == 0)
		return MODULE;
	if (strcmp(key, "token_label") == 0)
		return label_setting;
	if (strcmp(key, "pin_file") == 0)
		return pin_path;
	if (strcmp(key, "retry_seconds") == 0 && retry_setting)
		return retry_setting;
	return def;
}

static int open_backend(struct sigfs_backend **b, char *err)
{
	struct sigfs_backend_conf conf = {
		.name = "hsm", .state_dir = tmpdir, .get = conf_get, .workers = 4,
	};
	const struct sigfs_backend_ops *ops = sigfs_backend_type("pkcs11");

	assert_non_null(ops);
	return ops->open(&conf, b, err);
}

static void write_pin(const char *pin, mode_t mode)
{
	unlink(pin_path);
	t_write_file(pin_path, pin, strlen(pin));
	assert_int_equal(chmod(pin_path, mode), 0);
}

static int setup(void **state)
{
	char conf[4200], err[SIGFS_ERRLEN] = "";
	FILE *f;

	(void)state;
	if (t_mkdtemp(tmpdir, sizeof(tmpdir), "pkcs11") < 0)
		return -1;
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", tmpdir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
		tmpdir);
	fclose(f);
	setenv("SOFTHSM2_CONF", conf, 1);
	if (t_run("mkdir %s/tokens && softhsm2-util --init-token --free --label sigfs-unit "
		  "--so-pin 1234 --pin " PIN " >/dev/null", tmpdir) != 0)
		return -1;
	snprintf(pin_path, sizeof(pin_path), "%s/pin", tmpdir);
	write_pin(PIN "\n", 0600);
	if (open_backend(&be, err) < 0) {
		fprintf(stderr, "open: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (be)
		be->ops->close(be);
	t_run("rm -rf %s", tmpdir);
	return 0;
}

/* Sign msg (or its digest d) with key id and verify the result against public_key(). */
static void sign_verify(const char *id, const struct sigfs_alg *alg, const char *digest,
			enum sigfs_padding pad, unsigned worker)
{
	const struct sigfs_digest *d = digest ? sigfs_digest_by_name(digest) : NULL;
	uint8_t dig[SIGFS_MAX_DIGEST], sig[SIGFS_MAX_SIG];
	size_t siglen = sizeof(sig);
	unsigned diglen = 0;
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_sign_input in = { .alg = alg, .padding = pad, .digest = d, .worker = worker };
	EVP_PKEY *pk = NULL;
	EVP_PKEY_CTX *ctx;
	EVP_MD_CTX *mctx;

	if (d) {
		assert_int_equal(EVP_Digest(msg, sizeof(msg), dig, &diglen, sigfs_digest_md(d), NULL), 1);
		in.data = dig;
		in.len = diglen;
	} else {
		in.data = msg;
		in.len = sizeof(msg);
	}
	if (be->ops->sign(be, id, &in, sig, &siglen, err) != 0)
		fail_msg("sign %s %s: %s", id, digest ? digest : "-", err);
	assert_int_equal(be->ops->public_key(be, id, &pk, err), 0);
	if (!d) {
		mctx = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestVerifyInit(mctx, NULL, NULL, NULL, pk), 1);
		assert_int_equal(EVP_DigestVerify(mctx, sig, siglen, msg, sizeof(msg)), 1);
		EVP_MD_CTX_free(mctx);
	} else {
		ctx = EVP_PKEY_CTX_new(pk, NULL);
		assert_int_equal(EVP_PKEY_verify_init(ctx), 1);
		assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, sigfs_digest_md(d)), 1);
		if (pad == SIGFS_PAD_PSS) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)d->len), 1);
		} else if (pad == SIGFS_PAD_PKCS1) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
		}
		if (EVP_PKEY_verify(ctx, sig, siglen, dig, diglen) != 1)
			fail_msg("verify %s %s failed", id, digest);
		EVP_PKEY_CTX_free(ctx);
	}
	EVP_PKEY_free(pk);
}

static void gen(const char *id, const char *alg)
{
	char err[SIGFS_ERRLEN] = "";

	if (be->ops->generate(be, id, sigfs_alg_by_name(alg), err) != 0)
		fail_msg("generate %s %s: %s", id, alg, err);
}

static void test_every_algorithm(void **state)
{
	char err[SIGFS_ERRLEN];

	(void)state;
	gen("ed", "ed25519");
	sign_verify("ed", sigfs_alg_by_name("ed25519"), NULL, SIGFS_PAD_NONE, 0);
	gen("p256", "ecdsa-p256");
	sign_verify("p256", sigfs_alg_by_name("ecdsa-p256"), "sha256", SIGFS_PAD_NONE, 1);
	gen("p384", "ecdsa-p384");
	sign_verify("p384", sigfs_alg_by_name("ecdsa-p384"), "sha384", SIGFS_PAD_NONE, 2);
	gen("p521", "ecdsa-p521");
	sign_verify("p521", sigfs_alg_by_name("ecdsa-p521"), "sha512", SIGFS_PAD_NONE, 3);
	sign_verify("p521", sigfs_alg_by_name("ecdsa-p521"), "sha3-256", SIGFS_PAD_NONE, 0);
	gen("rsa", "rsa-2048");
	for (size_t i = 0; sigfs_digest_at(i); i++) {
		const char *dn = sigfs_digest_at(i)->name;

		sign_verify("rsa", sigfs_alg_by_name("rsa-2048"), dn, SIGFS_PAD_PKCS1, (unsigned)i);
	}
	sign_verify("rsa", sigfs_alg_by_name("rsa-2048"), "sha256", SIGFS_PAD_PSS, 1);
	sign_verify("rsa", sigfs_alg_by_name("rsa-2048"), "sha512", SIGFS_PAD_PSS, 2);
	gen("rsa3", "rsa-3072");
	sign_verify("rsa3", sigfs_alg_by_name("rsa-3072"), "sha384", SIGFS_PAD_PSS, 0);
	sign_verify("rsa3", sigfs_alg_by_name("rsa-3072"), "sha384", SIGFS_PAD_PKCS1, 0);
	for (const char *const *id = (const char *const[]){ "ed", "p256", "p384", "p521", "rsa",
							     "rsa3", NULL }; *id; id++)
		assert_int_equal(be->ops->remove(be, *id, err), 0);
}

static void test_pss_without_mechanism_params(void **state)
{
	const struct sigfs_digest *d = sigfs_digest_by_name("sha3-256");
	uint8_t dig[32] = { 0 }, sig[SIGFS_MAX_SIG];
	size_t siglen = sizeof(sig);
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_sign_input in = {
		.alg = sigfs_alg_by_name("rsa-2048"), .padding = SIGFS_PAD_PSS, .digest = d,
		.data = dig, .len = sizeof(dig),
	};

	(void)state;
	gen("pss3", "rsa-2048");
	assert_int_equal(be->ops->sign(be, "pss3", &in, sig, &siglen, err), -EOPNOTSUPP);
	assert_non_null(strstr(err, "pkcs1"));
	assert_int_equal(be->ops->remove(be, "pss3", err), 0);
}

static void test_remove_and_exists(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	EVP_PKEY *pk = NULL;

	(void)state;
	gen("k1", "ecdsa-p256");
	sign_verify("k1", sigfs_alg_by_name("ecdsa-p256"), "sha256", SIGFS_PAD_NONE, 0);
	assert_int_equal(be->ops->generate(be, "k1", sigfs_alg_by_name("ed25519"), err), -EEXIST);
	assert_int_equal(be->ops->remove(be, "k1", err), 0);
	assert_int_equal(be->ops->remove(be, "k1", err), -ENOENT);
	assert_int_equal(be->ops->public_key(be, "k1", &pk, err), -ENOENT);
	assert_null(pk);
	/* The same id again, now Ed25519: worker 0 must not sign with the old key's handle. */
	gen("k1", "ed25519");
	sign_verify("k1", sigfs_alg_by_name("ed25519"), NULL, SIGFS_PAD_NONE, 0);
	assert_int_equal(be->ops->remove(be, "k1", err), 0);
}

static void test_import_unsupported(void **state)
{
	(void)state;
	assert_null(be->ops->import_pem);
}

static void test_pin_file_checks(void **state)
{
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	/* Logging in is per process and token: with be open, any PIN would pass. */
	be->ops->close(be);
	be = NULL;
	write_pin(PIN "\n", 0644);
	assert_int_equal(open_backend(&b, err), -EPERM);
	assert_non_null(strstr(err, "pin_file"));
	assert_null(strstr(err, PIN));
	/*
	 * A wrong PIN: the backend opens, its calls fail at once without
	 * sending the PIN again (a token locks it after a few tries) until
	 * pin_file changes.
	 */
	write_pin("9999\n", 0600);
	if (open_backend(&b, err) != 0)
		fail_msg("open: %s", err);
	assert_int_equal(b->ops->generate(b, "w", sigfs_alg_by_name("ecdsa-p256"), err), -EACCES);
	assert_non_null(strstr(err, "C_Login failed: CKR_PIN_INCORRECT"));
	assert_non_null(strstr(err, "not tried again until pin_file changes"));
	assert_null(strstr(err, "9999"));
	assert_int_equal(b->ops->remove(b, "w", err), -EACCES);
	write_pin(PIN "\n", 0400);
	assert_int_equal(b->ops->remove(b, "w", err), -ENOENT);
	b->ops->close(b);
	if (open_backend(&b, err) != 0)
		fail_msg("open: %s", err);
	b->ops->close(b);
	write_pin(PIN "\n", 0600);
	assert_int_equal(open_backend(&be, err), 0);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A token that is not there: open succeeds, calls wait retry_seconds for it, list does not. */
static void test_token_missing(void **state)
{
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN] = "", **ids = NULL;
	size_t n = 0;
	double t;

	(void)state;
	label_setting = "no-such-token";
	retry_setting = "0.6";
	if (open_backend(&b, err) != 0)
		fail_msg("open: %s", err);
	t = now_s();
	assert_int_equal(b->ops->generate(b, "m", sigfs_alg_by_name("ed25519"), err), -EHOSTUNREACH);
	t = now_s() - t;
	assert_true(t > 0.5 && t < 3);
	assert_non_null(strstr(err, "token no-such-token unreachable for 1 s"));
	assert_non_null(strstr(err, "is the device/connector up?"));
	t = now_s();
	assert_int_equal(b->ops->list(b, &ids, &n, err), -EHOSTUNREACH);
	assert_true(now_s() - t < 0.25);
	assert_non_null(strstr(err, "token no-such-token unreachable: "));
	b->ops->close(b);
	label_setting = "sigfs-unit";
	retry_setting = NULL;
}

static void test_retry_seconds_setting(void **state)
{
	static const char *const bad[] = { "", "x", "-1", "3601", "5s", "nan", NULL };
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	for (const char *const *v = bad; *v; v++) {
		retry_setting = *v;
		assert_int_equal(open_backend(&b, err), -EINVAL);
		assert_non_null(strstr(err, "retry_seconds"));
	}
	for (const char *const *v = (const char *const[]){ "0", "2.5", "3600", NULL }; *v; v++) {
		retry_setting = *v;
		if (open_backend(&b, err) != 0)
			fail_msg("open with retry_seconds %s: %s", *v, err);
		b->ops->close(b);
	}
	retry_setting = NULL;
	label_setting = "a-label-longer-than-thirty-two-bytes";
	assert_int_equal(open_backend(&b, err), -EINVAL);
	assert_non_null(strstr(err, "token_label"));
	label_setting = "sigfs-unit";
}

static void test_list(void **state)
{
	char err[SIGFS_ERRLEN] = "", **ids = NULL;
	size_t n = 0;

	(void)state;
	gen("l-rsa", "rsa-2048");
	gen("l-ed", "ed25519");
	gen("l-ec", "ecdsa-p256");
	if (be->ops->list(be, &ids, &n, err) != 0)
		fail_msg("list: %s", err);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], "l-ec");
	assert_string_equal(ids[1], "l-ed");
	assert_string_equal(ids[2], "l-rsa");
	sigfs_backend_list_free(ids, n);
	assert_int_equal(be->ops->remove(be, "l-ed", err), 0);
	assert_int_equal(be->ops->list(be, &ids, &n, err), 0);
	assert_int_equal(n, 2);
	sigfs_backend_list_free(ids, n);
	assert_int_equal(be->ops->remove(be, "l-rsa", err), 0);
	assert_int_equal(be->ops->remove(be, "l-ec", err), 0);
	assert_int_equal(be->ops->list(be, &ids, &n, err), 0);
	assert_int_equal(n, 0);
	sigfs_backend_list_free(ids, n);
}

struct worker {
	unsigned id;
	const char *key;
	const char *alg;
	const char *digest;
	enum sigfs_padding pad;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 50; i++)
		sign_verify(w->key, sigfs_alg_by_name(w->alg), w->digest, w->pad, w->id);
	return NULL;
}

static void test_concurrent_signing(void **state)
{
	struct worker ws[4] = {
		{ 0, "c-ed", "ed25519", NULL, SIGFS_PAD_NONE },
		{ 1, "c-ec", "ecdsa-p256", "sha256", SIGFS_PAD_NONE },
		{ 2, "c-rsa", "rsa-2048", "sha256", SIGFS_PAD_PSS },
		{ 3, "c-ec", "ecdsa-p256", "sha384", SIGFS_PAD_NONE },
	};
	pthread_t t[4];
	char err[SIGFS_ERRLEN];

	(void)state;
	gen("c-ed", "ed25519");
	gen("c-ec", "ecdsa-p256");
	gen("c-rsa", "rsa-2048");
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &ws[i]), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(be->ops->remove(be, "c-ed", err), 0);
	assert_int_equal(be->ops->remove(be, "c-ec", err), 0);
	assert_int_equal(be->ops->remove(be, "c-rsa", err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_algorithm),
		cmocka_unit_test(test_pss_without_mechanism_params),
		cmocka_unit_test(test_remove_and_exists),
		cmocka_unit_test(test_import_unsupported),
		cmocka_unit_test(test_pin_file_checks),
		cmocka_unit_test(test_token_missing),
		cmocka_unit_test(test_retry_seconds_setting),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_concurrent_signing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
