/*
 * test_soft.c: the soft backend. Every algorithm signs every digest (both RSA
 * paddings) and the signature verifies with OpenSSL against public_key(); a
 * few cases are also checked with the `openssl` command line, the way users
 * verify. Also: file modes, import of keys made by openssl, error paths,
 * concurrent signing and the list of key ids.
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
#include <unistd.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "testlib.h"

static char tmpdir[4096];
static struct sigfs_backend *be;

static const uint8_t msg[] = "sigfs soft backend test message\n";

static const char *key_cache_setting;     /* [backend soft] key_cache, NULL: unset */

static const char *conf_get(const struct sigfs_backend_conf *c, const char *key, const char *def)
{
	if (c->priv && strcmp(key, "dir") == 0)
		return c->priv;
	if (key_cache_setting && strcmp(key, "key_cache") == 0)
		return key_cache_setting;
	return def;
}

static struct sigfs_backend *open_backend(const char *dir_override)
{
	struct sigfs_backend_conf conf = {
		.name = "soft", .state_dir = tmpdir, .get = conf_get,
		.priv = dir_override, .workers = 4,
	};
	const struct sigfs_backend_ops *ops = sigfs_backend_type("soft");
	struct sigfs_backend *b = NULL;
	char err[SIGFS_ERRLEN] = "";

	assert_non_null(ops);
	assert_int_equal(ops->open(&conf, &b, err), 0);
	assert_non_null(b);
	return b;
}

static void path_of(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(out, len, "%s/", tmpdir);

	va_start(ap, fmt);
	vsnprintf(out + n, len - (size_t)n, fmt, ap);
	va_end(ap);
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = malloc(65536);

	assert_non_null(f);
	assert_non_null(p);
	*len = fread(p, 1, 65536, f);
	fclose(f);
	return p;
}

/* Sign msg with key id: digest mode with d, or message mode when d is NULL. */
static int sign_msg(const char *id, const struct sigfs_alg *alg, const struct sigfs_digest *d,
		    enum sigfs_padding pad, uint8_t *sig, size_t *siglen, char *err)
{
	uint8_t dig[SIGFS_MAX_DIGEST];
	unsigned dlen = 0;
	struct sigfs_sign_input in = { .alg = alg, .padding = pad, .digest = d };

	if (d) {
		assert_int_equal(EVP_Digest(msg, sizeof(msg), dig, &dlen, sigfs_digest_md(d), NULL), 1);
		assert_int_equal(dlen, d->len);
		in.data = dig;
		in.len = dlen;
	} else {
		in.data = msg;
		in.len = sizeof(msg);
	}
	*siglen = SIGFS_MAX_SIG;
	return be->ops->sign(be, id, &in, sig, siglen, err);
}

/* Verify over the message itself, so OpenSSL makes the digest independently. */
static int verify_msg(EVP_PKEY *pub, const struct sigfs_digest *d, enum sigfs_padding pad,
		      const uint8_t *sig, size_t siglen)
{
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md = d ? sigfs_digest_md(d) : NULL;
	int ok;

	assert_non_null(m);
	assert_int_equal(EVP_DigestVerifyInit(m, &pctx, md, NULL, pub), 1);
	if (pad == SIGFS_PAD_PSS) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		/* Pin the salt length the backend promises: the digest length. */
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md), 1);
	} else if (pad == SIGFS_PAD_PKCS1) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING), 1);
	}
	ok = EVP_DigestVerify(m, sig, siglen, msg, sizeof(msg)) == 1;
	EVP_MD_CTX_free(m);
	return ok;
}

static EVP_PKEY *pubkey(const char *id)
{
	EVP_PKEY *pub = NULL;
	char err[SIGFS_ERRLEN] = "";

	assert_int_equal(be->ops->public_key(be, id, &pub, err), 0);
	assert_non_null(pub);
	return pub;
}

static void sign_and_verify(const char *id, const struct sigfs_alg *alg,
			    const struct sigfs_digest *d, enum sigfs_padding pad)
{
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	char err[SIGFS_ERRLEN] = "";
	EVP_PKEY *pub = pubkey(id);

	if (sign_msg(id, alg, d, pad, sig, &siglen, err) != 0)
		fail_msg("%s %s %s: %s", alg->name, d ? d->name : "-", sigfs_padding_name(pad), err);
	assert_int_equal(ERR_peek_error(), 0);
	assert_true(siglen > 0 && siglen <= alg->max_sig);
	if (!verify_msg(pub, d, pad, sig, siglen))
		fail_msg("%s %s %s: signature does not verify", alg->name, d ? d->name : "-",
			 sigfs_padding_name(pad));
	sig[siglen / 2] ^= 0x01;
	assert_false(verify_msg(pub, d, pad, sig, siglen));
	/* That failure is ours; the backend's calls must leave the queue empty. */
	ERR_clear_error();
	EVP_PKEY_free(pub);
}

static int setup(void **state)
{
	const struct sigfs_alg *a;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	if (t_mkdtemp(tmpdir, sizeof(tmpdir), "soft") != 0)
		return -1;
	be = open_backend(NULL);
	/* One key per algorithm, named after it. */
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++)
		if (be->ops->generate(be, a->name, a, err) != 0) {
			fprintf(stderr, "generate %s: %s\n", a->name, err);
			return -1;
		}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	be->ops->close(be);
	t_run("rm -rf '%s'", tmpdir);
	return 0;
}

static void test_backend_table(void **state)
{
	(void)state;
	assert_string_equal(sigfs_backend_type("soft")->type, "soft");
	assert_null(sigfs_backend_type("nosuch"));
}

static void test_all_algs_digests_paddings(void **state)
{
	const struct sigfs_alg *a;
	const struct sigfs_digest *d;
	int n = 0;

	(void)state;
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		if (a->kind == SIGFS_KIND_ED25519) {
			sign_and_verify(a->name, a, NULL, SIGFS_PAD_NONE);
			n++;
			continue;
		}
		for (size_t j = 0; (d = sigfs_digest_at(j)); j++) {
			if (a->kind == SIGFS_KIND_RSA) {
				sign_and_verify(a->name, a, d, SIGFS_PAD_PSS);
				sign_and_verify(a->name, a, d, SIGFS_PAD_PKCS1);
				n += 2;
			} else {
				sign_and_verify(a->name, a, d, SIGFS_PAD_NONE);
				n++;
			}
		}
	}
	/* 1 Ed25519 + 3 curves x 11 digests + 3 RSA sizes x 11 digests x 2 paddings */
	assert_int_equal(n, 100);
}

/* Sign with the backend, then verify with the openssl command line. */
static void cli_case(const char *id, const char *digest, enum sigfs_padding pad)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(id);
	const struct sigfs_digest *d = digest ? sigfs_digest_by_name(digest) : NULL;
	char pub[4200], data[4200], sigf[4200], err[SIGFS_ERRLEN] = "";
	const char *sigopt = pad == SIGFS_PAD_PSS ?
		"-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:-2" : "";
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	EVP_PKEY *pk = pubkey(id);
	FILE *f;

	path_of(pub, sizeof(pub), "cli-%s.pub.pem", id);
	path_of(data, sizeof(data), "cli-%s.data", id);
	path_of(sigf, sizeof(sigf), "cli-%s.data.sig", id);
	f = fopen(pub, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PUBKEY(f, pk), 1);
	fclose(f);
	EVP_PKEY_free(pk);
	t_write_file(data, msg, sizeof(msg));

	assert_int_equal(sign_msg(id, a, d, pad, sig, &siglen, err), 0);
	t_write_file(sigf, sig, siglen);
	if (d) {
		assert_int_equal(t_run("openssl dgst %s -verify '%s' %s -signature '%s' '%s' >/dev/null",
				     d->cli, pub, sigopt, sigf, data), 0);
		sig[siglen - 1] ^= 0x01;
		t_write_file(sigf, sig, siglen);
		assert_int_not_equal(t_run("openssl dgst %s -verify '%s' %s -signature '%s' '%s' >/dev/null 2>&1",
					 d->cli, pub, sigopt, sigf, data), 0);
	} else {
		assert_int_equal(t_run("openssl pkeyutl -verify -pubin -inkey '%s' -rawin -in '%s' -sigfile '%s' >/dev/null",
				     pub, data, sigf), 0);
		sig[siglen - 1] ^= 0x01;
		t_write_file(sigf, sig, siglen);
		assert_int_not_equal(t_run("openssl pkeyutl -verify -pubin -inkey '%s' -rawin -in '%s' -sigfile '%s' >/dev/null 2>&1",
					 pub, data, sigf), 0);
	}
}

static void test_openssl_cli_verifies(void **state)
{
	(void)state;
	cli_case("ed25519", NULL, SIGFS_PAD_NONE);
	cli_case("ecdsa-p256", "sha256", SIGFS_PAD_NONE);
	cli_case("ecdsa-p521", "sha3-512", SIGFS_PAD_NONE);
	cli_case("rsa-2048", "sha256", SIGFS_PAD_PSS);
	cli_case("rsa-3072", "sha512-224", SIGFS_PAD_PKCS1);
	cli_case("rsa-4096", "sha384", SIGFS_PAD_PSS);
}

static void test_file_modes(void **state)
{
	char p[4200];
	struct stat st;
	size_t len;
	uint8_t *pem;
	const char *hdr = "-----BEGIN PRIVATE KEY-----";

	(void)state;
	path_of(p, sizeof(p), "soft");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	path_of(p, sizeof(p), "soft/rsa-2048.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_uid, geteuid());
	/* Stored as PKCS#8. */
	pem = read_file(p, &len);
	assert_true(len > strlen(hdr));
	assert_memory_equal(pem, hdr, strlen(hdr));
	free(pem);
}

static void test_dir_override(void **state)
{
	char dir[4200], p[4200], err[SIGFS_ERRLEN] = "";
	struct sigfs_backend *b;
	struct stat st;

	(void)state;
	path_of(dir, sizeof(dir), "elsewhere");
	b = open_backend(dir);
	assert_int_equal(b->ops->generate(b, "k", sigfs_alg_by_name("ed25519"), err), 0);
	path_of(p, sizeof(p), "elsewhere/k.pem");
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	path_of(p, sizeof(p), "soft/k.pem");
	assert_int_not_equal(stat(p, &st), 0);
	b->ops->close(b);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* list: the ids of the key files and nothing else of the directory. */
static void test_list(void **state)
{
	char dir[4200], id[16], err[SIGFS_ERRLEN] = "", **ids = NULL;
	struct sigfs_backend *b;
	size_t n = 99;

	(void)state;
	path_of(dir, sizeof(dir), "listed");
	b = open_backend(dir);
	assert_int_equal(b->ops->list(b, &ids, &n, err), 0);
	assert_int_equal(n, 0);
	sigfs_backend_list_free(ids, n);
	/* More than the list's first allocation. */
	for (int i = 0; i < 20; i++) {
		snprintf(id, sizeof(id), "k%02d", i);
		assert_int_equal(b->ops->generate(b, id, sigfs_alg_by_name("ed25519"), err), 0);
	}
	/* Not keys: a key file being written, other names. */
	t_run("cd '%s' && touch .new-1-2.pem .pem notes.txt pem k99.pem.bak", dir);
	assert_int_equal(b->ops->list(b, &ids, &n, err), 0);
	assert_int_equal(n, 20);
	qsort(ids, n, sizeof(*ids), cmp_str);
	assert_string_equal(ids[0], "k00");
	assert_string_equal(ids[19], "k19");
	sigfs_backend_list_free(ids, n);
	assert_int_equal(b->ops->remove(b, "k07", err), 0);
	assert_int_equal(b->ops->list(b, &ids, &n, err), 0);
	assert_int_equal(n, 19);
	for (size_t i = 0; i < n; i++)
		assert_string_not_equal(ids[i], "k07");
	sigfs_backend_list_free(ids, n);
	b->ops->close(b);
}

/* Import a key that `openssl` made with cmd (">" FILE appended). */
static void import_case(const char *cmd, const char *want)
{
	char p[4200], err[SIGFS_ERRLEN] = "";
	const struct sigfs_alg *alg = NULL;
	const struct sigfs_digest *d = sigfs_digest_by_name("sha256");
	uint8_t *pem;
	size_t len;
	char id[64];

	snprintf(id, sizeof(id), "imp-%s", want);
	path_of(p, sizeof(p), "%s.in.pem", id);
	assert_int_equal(t_run("%s > '%s' 2>/dev/null", cmd, p), 0);
	pem = read_file(p, &len);
	if (be->ops->import_pem(be, id, pem, len, &alg, err) != 0)
		fail_msg("import %s: %s", want, err);
	free(pem);
	/* Nothing left on OpenSSL's error queue to confuse the next caller. */
	assert_int_equal(ERR_peek_error(), 0);
	assert_non_null(alg);
	assert_string_equal(alg->name, want);
	if (alg->kind == SIGFS_KIND_ED25519)
		sign_and_verify(id, alg, NULL, SIGFS_PAD_NONE);
	else if (alg->kind == SIGFS_KIND_RSA)
		sign_and_verify(id, alg, d, SIGFS_PAD_PKCS1);
	else
		sign_and_verify(id, alg, d, SIGFS_PAD_NONE);
}

static void test_import_openssl_keys(void **state)
{
	(void)state;
	import_case("openssl genrsa -traditional 2048", "rsa-2048");
	import_case("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:3072", "rsa-3072");
	import_case("openssl ecparam -name prime256v1 -genkey -noout", "ecdsa-p256");
	import_case("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384", "ecdsa-p384");
	import_case("openssl ecparam -name secp521r1 -genkey -noout", "ecdsa-p521");
	import_case("openssl genpkey -algorithm ed25519", "ed25519");
}

static void import_fails(const char *id, const uint8_t *pem, size_t len)
{
	char p[4200], err[SIGFS_ERRLEN] = "";
	const struct sigfs_alg *alg = NULL;
	struct stat st;

	assert_int_equal(be->ops->import_pem(be, id, pem, len, &alg, err), -EINVAL);
	assert_true(strlen(err) > 0);
	assert_int_equal(ERR_peek_error(), 0);
	assert_null(alg);
	path_of(p, sizeof(p), "soft/%s.pem", id);
	assert_int_not_equal(stat(p, &st), 0);
}

static void import_cmd_fails(const char *id, const char *cmd)
{
	char p[4200];
	uint8_t *pem;
	size_t len;

	path_of(p, sizeof(p), "%s.in.pem", id);
	assert_int_equal(t_run("%s > '%s' 2>/dev/null", cmd, p), 0);
	pem = read_file(p, &len);
	import_fails(id, pem, len);
	free(pem);
}

static void test_import_rejects(void **state)
{
	static const uint8_t garbage[] = "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n";

	(void)state;
	import_fails("bad-garbage", garbage, sizeof(garbage) - 1);
	import_fails("bad-empty", garbage, 0);
	import_cmd_fails("bad-k1", "openssl ecparam -name secp256k1 -genkey -noout");
	import_cmd_fails("bad-rsa1024", "openssl genrsa 1024");
	import_cmd_fails("bad-ed448", "openssl genpkey -algorithm ed448");
	/* Must fail, not prompt for a passphrase. */
	import_cmd_fails("bad-encrypted",
			 "openssl genpkey -algorithm ed25519 -aes256 -pass pass:secret </dev/null");
}

static void test_remove(void **state)
{
	const struct sigfs_alg *a = sigfs_alg_by_name("ecdsa-p256");
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	char err[SIGFS_ERRLEN] = "";
	EVP_PKEY *pub = NULL;

	(void)state;
	assert_int_equal(be->ops->generate(be, "gone", a, err), 0);
	assert_int_equal(sign_msg("gone", a, sigfs_digest_by_name("sha256"), SIGFS_PAD_NONE,
				  sig, &siglen, err), 0);
	assert_int_equal(be->ops->remove(be, "gone", err), 0);
	err[0] = '\0';
	assert_int_equal(sign_msg("gone", a, sigfs_digest_by_name("sha256"), SIGFS_PAD_NONE,
				  sig, &siglen, err), -ENOENT);
	assert_true(strlen(err) > 0);
	assert_int_equal(be->ops->public_key(be, "gone", &pub, err), -ENOENT);
	assert_null(pub);
	assert_int_equal(be->ops->remove(be, "gone", err), -ENOENT);
	/* The id is free again. */
	assert_int_equal(be->ops->generate(be, "gone", a, err), 0);
}

static void test_generate_existing(void **state)
{
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_int_equal(be->ops->generate(be, "ed25519", sigfs_alg_by_name("ed25519"), err), -EEXIST);
	assert_true(strlen(err) > 0);
	/* The old key still signs. */
	sign_and_verify("ed25519", sigfs_alg_by_name("ed25519"), NULL, SIGFS_PAD_NONE);
}

static void test_ed25519_digest_mode(void **state)
{
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_int_equal(sign_msg("ed25519", sigfs_alg_by_name("ed25519"), sigfs_digest_by_name("sha512"),
				  SIGFS_PAD_NONE, sig, &siglen, err), -EINVAL);
	assert_non_null(strstr(err, "whole file"));
}

static void test_wrong_inputs(void **state)
{
	const struct sigfs_digest *d = sigfs_digest_by_name("sha256");
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_sign_input in = { .alg = sigfs_alg_by_name("rsa-2048"), .digest = d,
				       .data = sig, .len = d->len, .padding = SIGFS_PAD_PSS };

	(void)state;
	/* Key file is P-256, caller says P-384. */
	assert_int_equal(sign_msg("ecdsa-p256", sigfs_alg_by_name("ecdsa-p384"), d, SIGFS_PAD_NONE,
				  sig, &siglen, err), -EINVAL);
	assert_non_null(strstr(err, "ecdsa-p256"));
	/* ECDSA cannot sign a message without a digest. */
	err[0] = '\0';
	assert_int_equal(sign_msg("ecdsa-p256", sigfs_alg_by_name("ecdsa-p256"), NULL, SIGFS_PAD_NONE,
				  sig, &siglen, err), -EINVAL);
	assert_true(strlen(err) > 0);
	/* RSA without a padding. */
	err[0] = '\0';
	assert_int_equal(sign_msg("rsa-2048", in.alg, d, SIGFS_PAD_NONE, sig, &siglen, err), -EINVAL);
	assert_true(strlen(err) > 0);
	/* Digest of the wrong length. */
	memset(sig, 0, sizeof(sig));
	in.len = 20;
	siglen = sizeof(sig);
	assert_int_equal(be->ops->sign(be, "rsa-2048", &in, sig, &siglen, err), -EINVAL);
	/* Output buffer too small. */
	in.len = d->len;
	siglen = 100;
	assert_int_not_equal(be->ops->sign(be, "rsa-2048", &in, sig, &siglen, err), 0);
}

static void test_bad_ids(void **state)
{
	static const char *const ids[] = { "a/b", "../x", ".hidden", "" };
	const struct sigfs_alg *a = sigfs_alg_by_name("ed25519");
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	EVP_PKEY *pub = NULL;
	char err[SIGFS_ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		err[0] = '\0';
		assert_int_equal(be->ops->generate(be, ids[i], a, err), -EINVAL);
		assert_true(strlen(err) > 0);
		assert_int_equal(sign_msg(ids[i], a, NULL, SIGFS_PAD_NONE, sig, &siglen, err), -EINVAL);
		assert_int_equal(be->ops->remove(be, ids[i], err), -EINVAL);
		assert_int_equal(be->ops->public_key(be, ids[i], &pub, err), -EINVAL);
	}
}

struct job {
	const char *id;
	const char *digest;
	enum sigfs_padding pad;
	int ok;
};

static void *sign_many(void *arg)
{
	struct job *j = arg;
	const struct sigfs_alg *a = sigfs_alg_by_name(j->id);
	const struct sigfs_digest *d = j->digest ? sigfs_digest_by_name(j->digest) : NULL;
	EVP_PKEY *pub = NULL;
	uint8_t sig[SIGFS_MAX_SIG];
	size_t siglen;
	char err[SIGFS_ERRLEN];

	if (be->ops->public_key(be, j->id, &pub, err) != 0)
		return NULL;
	for (int i = 0; i < 40; i++)
		if (sign_msg(j->id, a, d, j->pad, sig, &siglen, err) == 0 &&
		    verify_msg(pub, d, j->pad, sig, siglen))
			j->ok++;
	EVP_PKEY_free(pub);
	return NULL;
}

/* A cached key never outlives its file: regenerating and removing act at once. */
static void test_key_cache_follows_changes(void **state)
{
	const struct sigfs_alg *ed = sigfs_alg_by_name("ed25519");
	uint8_t sig[SIGFS_MAX_SIG];
	char err[SIGFS_ERRLEN] = "";
	EVP_PKEY *before, *after;
	size_t siglen;

	(void)state;
	assert_int_equal(be->ops->generate(be, "cached", ed, err), 0);
	/* Now in the cache, with a signing context each later signature reuses. */
	for (int i = 0; i < 3; i++)
		sign_and_verify("cached", ed, NULL, SIGFS_PAD_NONE);
	before = pubkey("cached");
	assert_int_equal(be->ops->remove(be, "cached", err), 0);
	assert_int_equal(be->ops->generate(be, "cached", ed, err), 0);
	after = pubkey("cached");
	assert_int_not_equal(EVP_PKEY_eq(before, after), 1);
	/* Neither the key nor a signing context of the old one is used again. */
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sign_msg("cached", ed, NULL, SIGFS_PAD_NONE, sig, &siglen, err), 0);
		assert_true(verify_msg(after, NULL, SIGFS_PAD_NONE, sig, siglen));
		assert_false(verify_msg(before, NULL, SIGFS_PAD_NONE, sig, siglen));
	}
	ERR_clear_error();
	assert_int_equal(be->ops->remove(be, "cached", err), 0);
	assert_int_equal(sign_msg("cached", ed, NULL, SIGFS_PAD_NONE, sig, &siglen, err), -ENOENT);
	EVP_PKEY_free(before);
	EVP_PKEY_free(after);
}

/* key_cache = 0 reads the key file for every signature; bad values stop the backend. */
static void test_key_cache_setting(void **state)
{
	struct sigfs_backend_conf conf = { .name = "soft", .state_dir = tmpdir, .get = conf_get };
	const struct sigfs_backend_ops *ops = sigfs_backend_type("soft");
	static const char *const bad[] = { "abc", "-1", "3601", "", "5s" };
	const struct sigfs_alg *ec = sigfs_alg_by_name("ecdsa-p256");
	struct sigfs_backend *saved = be, *b = NULL;
	char err[SIGFS_ERRLEN];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		key_cache_setting = bad[i];
		err[0] = '\0';
		assert_int_equal(ops->open(&conf, &b, err), -EINVAL);
		assert_non_null(strstr(err, "key_cache"));
	}
	key_cache_setting = "0";
	assert_int_equal(ops->open(&conf, &b, err), 0);
	be = b;
	sign_and_verify("ecdsa-p256", ec, sigfs_digest_by_name("sha256"), SIGFS_PAD_NONE);
	sign_and_verify("ecdsa-p256", ec, sigfs_digest_by_name("sha384"), SIGFS_PAD_NONE);
	be = saved;
	ops->close(b);
	key_cache_setting = NULL;
}

static void test_concurrent_signing(void **state)
{
	struct job jobs[4] = {
		{ "ed25519", NULL, SIGFS_PAD_NONE, 0 },
		{ "ecdsa-p256", "sha256", SIGFS_PAD_NONE, 0 },
		{ "rsa-2048", "sha256", SIGFS_PAD_PSS, 0 },
		{ "ecdsa-p256", "sha384", SIGFS_PAD_NONE, 0 },
	};
	pthread_t t[4];

	(void)state;
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, sign_many, &jobs[i]), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(jobs[i].ok, 40);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_table),
		cmocka_unit_test(test_all_algs_digests_paddings),
		cmocka_unit_test(test_openssl_cli_verifies),
		cmocka_unit_test(test_file_modes),
		cmocka_unit_test(test_dir_override),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_import_openssl_keys),
		cmocka_unit_test(test_import_rejects),
		cmocka_unit_test(test_remove),
		cmocka_unit_test(test_generate_existing),
		cmocka_unit_test(test_ed25519_digest_mode),
		cmocka_unit_test(test_wrong_inputs),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_key_cache_follows_changes),
		cmocka_unit_test(test_key_cache_setting),
		cmocka_unit_test(test_concurrent_signing),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
