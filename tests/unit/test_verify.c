/*
 * test_verify.c: client/verify.c. For every format and the algorithms
 * ed25519, ecdsa-p256 and rsa-2048 where the format takes them, the soft
 * backend signs with the real format code, the key's public files are
 * written as .ctl/keys/KEY/ renders them, and sigfs_verify_output() must
 * accept exactly the right signature: not one over other bytes, not one
 * with any byte flipped, not another key's, not a truncated or garbage one.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "client/verify.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "testlib.h"

static char tmpdir[4096];
static const char msg[] = "an artifact for sigfs wait to verify\n";
static const char other[] = "an artifact for sigfs wait to verifz\n";

/* One key of the soft backend, with what a format needs to know of it. */
struct tkey {
	char id[64];
	char dir[4096];                      /* its public files, as .ctl/keys/KEY/ */
	struct sigfs_format_key fk;
	const struct sigfs_format *f;
	EVP_PKEY *pub;
	uint8_t *cert;
};

static void path_of(char *out, size_t len, const char *a, const char *b)
{
	assert_true((size_t)snprintf(out, len, "%s/%s", a, b) < len);
}

static void write_str(const char *dir, const char *name, const char *s)
{
	char p[4200];

	path_of(p, sizeof(p), dir, name);
	t_write_file(p, s, strlen(s));
}

/* cert.pem (rendered for cms) as DER for the format key. */
static void set_cert(struct tkey *t, const struct sbuf *pem)
{
	BIO *bio = BIO_new_mem_buf(pem->d, (int)pem->len);
	X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	int n;

	assert_non_null(x);
	t->cert = NULL;
	n = i2d_X509(x, &t->cert);
	assert_true(n > 0);
	t->fk.cert = t->cert;
	t->fk.cert_len = (size_t)n;
	X509_free(x);
	BIO_free(bio);
}

/* Every attribute file that applies to the key, as the mount renders them. */
static void write_attrs(struct tkey *t)
{
	const struct sigfs_format_attr *a;
	char err[SIGFS_ERRLEN] = "", p[4200];
	struct sbuf out;
	int r;

	for (size_t i = 0; (a = sigfs_format_attr_at(i)); i++) {
		sbuf_init(&out, 256 * 1024);
		r = a->render(&t->fk, t_soft_sign, t->id, &out, err);
		assert_true(r == 0 || r == -ENODATA);
		if (r == 0) {
			path_of(p, sizeof(p), t->dir, a->name);
			t_write_file(p, out.d, out.len);
			if (!strcmp(a->name, "cert.pem"))
				set_cert(t, &out);
		}
		sbuf_free(&out);
	}
}

/* pubkey.pem and the settings files. */
static void write_settings(struct tkey *t, const char *alg)
{
	char p[4200], line[64];
	BIO *bio = BIO_new(BIO_s_mem());
	char *pem;
	long n;

	assert_int_equal(PEM_write_bio_PUBKEY(bio, t->pub), 1);
	n = BIO_get_mem_data(bio, &pem);
	path_of(p, sizeof(p), t->dir, "pubkey.pem");
	t_write_file(p, pem, (size_t)n);
	BIO_free(bio);
	snprintf(line, sizeof(line), "%s\n", t->f->name);
	write_str(t->dir, "format", line);
	snprintf(line, sizeof(line), "%s\n", alg);
	write_str(t->dir, "algorithm", line);
	snprintf(line, sizeof(line), "%s\n", t->fk.digest->name);
	write_str(t->dir, "digest", line);
	write_str(t->dir, "namespace", "\n");
	snprintf(line, sizeof(line), "%s\n", sigfs_padding_name(t->fk.padding));
	write_str(t->dir, "padding", line);
}

static void make_key(struct tkey *t, const char *format, const char *alg, const char *tag)
{
	char err[SIGFS_ERRLEN] = "";

	memset(t, 0, sizeof(*t));
	snprintf(t->id, sizeof(t->id), "%s-%s-%s", format, alg, tag);
	path_of(t->dir, sizeof(t->dir), tmpdir, t->id);
	assert_int_equal(mkdir(t->dir, 0755), 0);
	t->f = sigfs_format_by_name(format);
	assert_non_null(t->f);
	assert_int_equal(t_be->ops->generate(t_be, t->id, sigfs_alg_by_name(alg), err), 0);
	assert_int_equal(t_be->ops->public_key(t_be, t->id, &t->pub, err), 0);
	t->fk = (struct sigfs_format_key){ .name = t->id, .alg = sigfs_alg_by_name(alg),
		.digest = sigfs_digest_by_name("sha256"), .pub = t->pub, .created = 1700000000,
		.uid = "Verify Test <verify@example.org>", .ssh_namespace = "" };
	t->fk.padding = t->fk.alg->kind == SIGFS_KIND_RSA ? SIGFS_PAD_PSS : SIGFS_PAD_NONE;
	/* kmod: Linux verifies PKCS#1 v1.5 only. */
	if (t->f->check_padding && t->f->check_padding(t->fk.alg, t->fk.padding, err) < 0)
		t->fk.padding = SIGFS_PAD_PKCS1;
	write_attrs(t);
	write_settings(t, alg);
}

static void free_key(struct tkey *t)
{
	EVP_PKEY_free(t->pub);
	OPENSSL_free(t->cert);
}

/* t's output over the len bytes m, as the engine makes it for a file named "art". */
static void sign_bytes(struct tkey *t, const char *m, size_t len, struct sbuf *out)
{
	const EVP_MD *md = sigfs_format_file_md(t->f, t->fk.alg, t->fk.digest);
	struct sigfs_hasher *h = sigfs_hasher_new(md);
	struct sigfs_format_input in = { .key = &t->fk, .state = h, .name = "art",
					 .now = 1750000000 };
	char err[SIGFS_ERRLEN] = "";

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, m, len), 0);
	if (t->f->needs_message && t->f->needs_message(t->fk.alg)) {
		/* Both for a format whose output is the signed artifact (kmod). */
		if (!t->f->whole_artifact)
			in.state = NULL;
		in.message = (const uint8_t *)m;
		in.message_len = len;
	}
	sbuf_init(out, 256 * 1024 + len);
	assert_int_equal(sigfs_format_produce(t->f, &in, t_soft_sign, t->id, out, err), 0);
	sigfs_hasher_free(h);
}

static void sign_file(struct tkey *t, const char *m, struct sbuf *out)
{
	sign_bytes(t, m, strlen(m), out);
}

static int open_file(const char *name, const char *content)
{
	char p[4200];
	int fd;

	path_of(p, sizeof(p), tmpdir, name);
	t_write_file(p, content, strlen(content));
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	return fd;
}

static struct sigfs_vkey *load(const struct tkey *t, bool strict, int expect)
{
	struct sigfs_vkey *k = NULL;
	char err[SIGFS_ERRLEN] = "";
	int dfd = open(t->dir, O_RDONLY | O_DIRECTORY);

	assert_true(dfd >= 0);
	assert_int_equal(sigfs_vkey_load(dfd, t->id, strict, &k, err), expect);
	close(dfd);
	return k;
}

static int verify(const struct sigfs_vkey *k, int fd, enum sigfs_vinput kind, const char *name,
		  const uint8_t *p, size_t n)
{
	char err[SIGFS_ERRLEN] = "";

	return sigfs_verify_output(k, fd, kind, name, p, n, err);
}

#define MINISIGN_PREFIX "untrusted comment: signature from sigfs key "

/* Is byte i of out in the key name of a minisign output's untrusted comment? */
static bool in_minisign_name(const struct sbuf *out, size_t i)
{
	size_t n = strlen(MINISIGN_PREFIX);
	const uint8_t *nl = memchr(out->d, '\n', out->len);

	return out->len > n && !memcmp(out->d, MINISIGN_PREFIX, n) && nl &&
	       i >= n && i < (size_t)(nl - out->d);
}

/* Every byte of out flipped in turn, then cut short, extended, and replaced by garbage. */
static void check_damaged(const struct sigfs_vkey *k, int fd, const struct sbuf *out)
{
	uint8_t *p = malloc(out->len + 1);

	assert_non_null(p);
	for (size_t i = 0; i < out->len; i++) {
		/*
		 * minisign's untrusted comment is signed by nobody, by design
		 * (minisign -V ignores it): verify.c takes the key name it carries
		 * as it is, so a changed name is the one change that still verifies.
		 */
		if (in_minisign_name(out, i))
			continue;
		memcpy(p, out->d, out->len);
		p[i] ^= 0x01;
		if (verify(k, fd, SIGFS_VIN_FILE, "art", p, out->len) != -EBADMSG)
			fail_msg("byte %zu of %zu flipped: still verifies", i, out->len);
	}
	memcpy(p, out->d, out->len);
	p[out->len] = '\n';
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", p, out->len + 1), -EBADMSG);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", p, out->len - 1), -EBADMSG);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", p, out->len / 2), -EBADMSG);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", p, 0), -EBADMSG);
	for (size_t i = 0; i < out->len; i++)
		p[i] = (uint8_t)(i * 131 + 7);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", p, out->len), -EBADMSG);
	free(p);
}

static void check_combo(const char *format, const char *alg)
{
	struct tkey a, b;
	struct sbuf sa, sb, so;
	struct sigfs_vkey *k;
	int fd, fd_other;

	make_key(&a, format, alg, "a");
	make_key(&b, format, alg, "b");
	sign_file(&a, msg, &sa);
	sign_file(&b, msg, &sb);
	sign_file(&a, other, &so);
	fd = open_file("art", msg);
	fd_other = open_file("art-other", other);
	k = load(&a, false, 0);
	assert_ptr_equal(sigfs_vkey_format(k), a.f);
	/* The right signature; then other bytes, another key's, a damaged one. */
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sa.d, sa.len), 0);
	assert_int_equal(verify(k, fd_other, SIGFS_VIN_FILE, "art", sa.d, sa.len), -EBADMSG);
	assert_int_equal(verify(k, fd_other, SIGFS_VIN_FILE, "art", so.d, so.len), 0);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", so.d, so.len), -EBADMSG);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sb.d, sb.len), -EBADMSG);
	check_damaged(k, fd, &sa);
	/* A signing request is never checked here: the caller falls back. */
	assert_int_equal(verify(k, fd, SIGFS_VIN_REQUEST, "art.sigreq", sa.d, sa.len), -ENOTSUP);
	sigfs_vkey_free(k);
	close(fd);
	close(fd_other);
	sbuf_free(&sa);
	sbuf_free(&sb);
	sbuf_free(&so);
	free_key(&a);
	free_key(&b);
}

/*
 * Every algorithm of ed25519, ecdsa-p256 and rsa-2048 the format (*state)
 * takes: minisign only ed25519, cms no ed25519 (OpenSSL 3.0 cannot verify it),
 * kmod no ed25519 (Linux cannot verify it).
 */
static void test_format(void **state)
{
	static const char *const algs[] = { "ed25519", "ecdsa-p256", "rsa-2048" };
	const struct sigfs_format *f = sigfs_format_by_name(*state);
	char err[SIGFS_ERRLEN];
	int n = 0;

	assert_non_null(f);
	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++) {
		if (f->check(sigfs_alg_by_name(algs[i]), sigfs_digest_by_name("sha256"), err))
			continue;
		check_combo(f->name, algs[i]);
		n++;
	}
	assert_int_equal(n, !strcmp(f->name, "minisign") ? 1 :
			    !strcmp(f->name, "cms") || !strcmp(f->name, "kmod") ||
			    !strcmp(f->name, "swupdate") ? 2 : 3);
}

/* A digest line "<hex>  art" of m for d, written to art.<d>; its fd. */
static int digest_line(const struct sigfs_digest *d, const char *m, uint8_t *dv)
{
	char line[300], name[64];
	unsigned len = 0;
	int n = 0;

	assert_int_equal(EVP_Digest(m, strlen(m), dv, &len, sigfs_digest_md(d), NULL), 1);
	for (unsigned i = 0; i < len; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", dv[i]);
	snprintf(line + n, sizeof(line) - (size_t)n, "  art\n");
	snprintf(name, sizeof(name), "art.%s", d->name);
	return open_file(name, line);
}

/*
 * A digest line: verified where the format signs from the digest alone
 * (expect_ok); else -EBADMSG even for the key's real signature of the file,
 * since sigfs refuses such a line (NAME.err) and never signs it.
 */
static void check_digest_line(const char *format, const char *alg, const char *digest,
			      bool expect_ok)
{
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	uint8_t dv[SIGFS_MAX_DIGEST], dv2[SIGFS_MAX_DIGEST];
	struct sigfs_format_input in = { .digest = d, .digest_value = dv, .name = "art",
					 .now = 1750000000 };
	char err[SIGFS_ERRLEN] = "", name[64];
	struct sbuf out, file_sig;
	struct sigfs_vkey *k;
	struct tkey t;
	int fd, fd2;

	make_key(&t, format, alg, digest);
	in.key = &t.fk;
	snprintf(name, sizeof(name), "art.%s", digest);
	k = load(&t, false, 0);
	/* The same name holds one line, then the other: each checked while it is there. */
	close(digest_line(d, msg, dv));
	sbuf_init(&out, 256 * 1024);
	assert_int_equal(sigfs_format_produce(t.f, &in, t_soft_sign, t.id, &out, err),
			 expect_ok ? 0 : -EINVAL);
	fd2 = digest_line(d, other, dv2);
	if (expect_ok)
		assert_int_equal(verify(k, fd2, SIGFS_VIN_DIGESTLINE, name, out.d, out.len), -EBADMSG);
	fd = digest_line(d, msg, dv);
	if (expect_ok) {
		assert_int_equal(verify(k, fd, SIGFS_VIN_DIGESTLINE, name, out.d, out.len), 0);
	} else {
		sign_file(&t, msg, &file_sig);
		assert_int_equal(verify(k, fd, SIGFS_VIN_DIGESTLINE, name, file_sig.d, file_sig.len),
				 -EBADMSG);
		sbuf_free(&file_sig);
	}
	sigfs_vkey_free(k);
	sbuf_free(&out);
	close(fd);
	close(fd2);
	free_key(&t);
}

static void test_digest_lines(void **state)
{
	static const struct { const char *format, *alg, *digest; bool ok; } cases[] = {
		{ "raw", "ecdsa-p256", "sha256", true },
		{ "raw", "rsa-2048", "sha384", true },
		{ "sshsig", "ed25519", "sha512", true },
		{ "sshsig", "rsa-2048", "sha512", true },
		{ "cms", "ecdsa-p256", "sha256", true },
		{ "cms", "rsa-2048", "sha512", true },
		/* Pure Ed25519 signs the file; OpenPGP hashes after it; minisign BLAKE2b. */
		{ "raw", "ed25519", "sha256", false },
		{ "openpgp", "ecdsa-p256", "sha256", false },
		{ "minisign", "ed25519", "sha512", false },
		/* kmod's output is the module itself. */
		{ "kmod", "ecdsa-p256", "sha256", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		check_digest_line(cases[i].format, cases[i].alg, cases[i].digest, cases[i].ok);
}

/*
 * OpenPGP without a certificate (a spool publishes none for openpgp-armor
 * keys): the `created` file gives the key's creation time, which the
 * signature's issuer fingerprint depends on; a wrong one fails.
 */
static void test_openpgp_created(void **state)
{
	char p[4200];
	struct sigfs_vkey *k;
	struct sbuf sig;
	struct tkey t;
	int fd;

	(void)state;
	make_key(&t, "openpgp-armor", "ecdsa-p256", "created");
	sign_file(&t, msg, &sig);
	fd = open_file("art", msg);
	path_of(p, sizeof(p), t.dir, "cert.pgp");
	assert_int_equal(unlink(p), 0);
	k = load(&t, false, 0);   /* cert.asc */
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d, sig.len), 0);
	sigfs_vkey_free(k);
	path_of(p, sizeof(p), t.dir, "cert.asc");
	assert_int_equal(unlink(p), 0);
	assert_null(load(&t, false, -ENOENT));
	write_str(t.dir, "created", "soon\n");
	assert_null(load(&t, false, -EINVAL));
	write_str(t.dir, "created", "1700000000\n");
	k = load(&t, false, 0);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d, sig.len), 0);
	sigfs_vkey_free(k);
	write_str(t.dir, "created", "1700000001\n");
	k = load(&t, false, 0);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d, sig.len), -EBADMSG);
	sigfs_vkey_free(k);
	close(fd);
	sbuf_free(&sig);
	free_key(&t);
}

/*
 * kmod's output holds the module: a module larger than any signature (400
 * KiB) verifies, and an output larger than the module plus a signature
 * could be is refused unread.
 */
static void test_kmod_large(void **state)
{
	const size_t len = 400 * 1024;
	char *m = malloc(len + 1), p[4200];
	struct sigfs_vkey *k;
	struct sbuf sig;
	struct tkey t;
	int fd;

	(void)state;
	assert_non_null(m);
	for (size_t i = 0; i < len; i++)
		m[i] = (char)('a' + i % 26);
	m[len] = '\0';
	make_key(&t, "kmod", "rsa-2048", "large");
	sign_bytes(&t, m, len, &sig);
	assert_true(sig.len > len && sig.len > SIGFS_VERIFY_OUTPUT_MAX);
	fd = open_file("art-large", m);
	k = load(&t, false, 0);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d, sig.len), 0);
	sig.d[len / 2] ^= 1;
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d, sig.len), -EBADMSG);
	assert_true(sigfs_vkey_output_max(k, "art", (off_t)len) < len + SIGFS_VERIFY_OUTPUT_MAX + 1);
	assert_int_equal(verify(k, fd, SIGFS_VIN_FILE, "art", sig.d,
				len + SIGFS_VERIFY_OUTPUT_MAX + 1), -EBADMSG);
	sigfs_vkey_free(k);
	close(fd);
	path_of(p, sizeof(p), tmpdir, "art-large");
	unlink(p);
	sbuf_free(&sig);
	free_key(&t);
	free(m);
}

/* The spool's published keys: root's, writable by nobody else, no symbolic link. */
static void test_strict_load(void **state)
{
	char p[4200], q[4200];
	struct sigfs_vkey *k;
	struct tkey t;

	(void)state;
	make_key(&t, "raw", "ecdsa-p256", "strict");
	path_of(p, sizeof(p), t.dir, "pubkey.pem");
	assert_int_equal(chmod(p, 0444), 0);
	k = load(&t, true, 0);
	sigfs_vkey_free(k);
	assert_int_equal(chmod(p, 0666), 0);
	assert_null(load(&t, true, -EPERM));
	k = load(&t, false, 0);   /* --key-dir: the user's own copy */
	sigfs_vkey_free(k);
	assert_int_equal(chmod(p, 0444), 0);
	assert_int_equal(chown(p, 1, 0), 0);
	assert_null(load(&t, true, -EPERM));
	assert_int_equal(chown(p, 0, 0), 0);
	path_of(q, sizeof(q), t.dir, "pubkey.real");
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink("pubkey.real", p), 0);
	assert_null(load(&t, true, -ELOOP));
	assert_null(load(&t, false, -ELOOP));
	/* A key directory of another format's files is refused, not half-read. */
	assert_int_equal(unlink(p), 0);
	assert_null(load(&t, false, -ENOENT));
	free_key(&t);
}

static int setup(void **state)
{
	(void)state;
	return t_soft_setup(tmpdir, sizeof(tmpdir), "verify");
}

static int teardown(void **state)
{
	(void)state;
	t_soft_teardown(tmpdir);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(test_format, "raw"),
		cmocka_unit_test_prestate(test_format, "openpgp"),
		cmocka_unit_test_prestate(test_format, "openpgp-armor"),
		cmocka_unit_test_prestate(test_format, "sshsig"),
		cmocka_unit_test_prestate(test_format, "minisign"),
		cmocka_unit_test_prestate(test_format, "cms"),
		cmocka_unit_test_prestate(test_format, "kmod"),
		cmocka_unit_test_prestate(test_format, "swupdate"),
		cmocka_unit_test(test_kmod_large),
		cmocka_unit_test(test_digest_lines),
		cmocka_unit_test(test_openpgp_created),
		cmocka_unit_test(test_strict_load),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
