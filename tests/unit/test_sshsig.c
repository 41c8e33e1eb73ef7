/*
 * test_sshsig.c: the "sshsig" format. A fake signer pins what is handed to a
 * backend and the blob is parsed back field by field with the bounded sbuf
 * getters (PROTOCOL.sshsig); the soft backend plus `ssh-keygen -Y verify`
 * pin that NAME.sig verifies the way users check it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>

#include "backends/backend.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "testlib.h"

static const uint8_t msg[] = "an artifact to sign with the sshsig format\n";

static const struct sigfs_format *sshsig(void)
{
	const struct sigfs_format *f = sigfs_format_by_name("sshsig");

	assert_non_null(f);
	return f;
}

/* What the fake signer saw, and what it answers. */
struct fake {
	struct sigfs_sign_input in;
	uint8_t seen[4096];
	size_t seen_len;
	const uint8_t *answer;
	size_t answer_len;
	int calls;
};

static int fake_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		     char *err)
{
	struct fake *f = ctx;

	(void)err;
	f->in = *in;
	assert_true(in->len <= sizeof(f->seen));
	memcpy(f->seen, in->data, in->len);
	f->seen_len = in->len;
	f->calls++;
	assert_true(*siglen >= f->answer_len);
	memcpy(sig, f->answer, f->answer_len);
	*siglen = f->answer_len;
	return 0;
}

static EVP_PKEY *keygen(const char *alg)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(alg);
	EVP_PKEY *pk;

	if (a->kind == SIGFS_KIND_ED25519)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	else if (a->kind == SIGFS_KIND_EC)
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", a->group);
	else
		pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)a->bits);
	assert_non_null(pk);
	return pk;
}

/* Armored text -> blob. */
static size_t dearmor(const struct sbuf *out, uint8_t *blob, size_t cap)
{
	static const char begin[] = "-----BEGIN SSH SIGNATURE-----\n";
	static const char end[] = "\n-----END SSH SIGNATURE-----\n";
	char *text = strndup((const char *)out->d, out->len), *b64, *w;
	size_t n, pad = 0;
	int len;

	assert_non_null(text);
	assert_int_equal(strncmp(text, begin, strlen(begin)), 0);
	n = strlen(text);
	assert_true(n > strlen(begin) + strlen(end));
	assert_string_equal(text + n - strlen(end), end);
	text[n - strlen(end)] = '\0';
	b64 = w = text + strlen(begin);
	/* ssh-keygen wraps at 70 columns: every line but the last is 70 long. */
	for (char *line = b64, *nl; (nl = strchr(line, '\n')); line = nl + 1)
		assert_int_equal(nl - line, 70);
	for (char *p = b64; *p; p++)
		if (*p != '\n')
			*w++ = *p;
	*w = '\0';
	n = strlen(b64);
	pad = (n >= 1 && b64[n - 1] == '=') + (n >= 2 && b64[n - 2] == '=');
	assert_true(n / 4 * 3 <= cap);
	len = EVP_DecodeBlock(blob, (unsigned char *)b64, (int)n);
	assert_true(len >= 0);
	free(text);
	return (size_t)len - pad;
}

/* string: uint32 length || bytes; *p points into b's storage. */
static void get_string(struct sbuf *b, const uint8_t **p, size_t *n)
{
	uint32_t len;

	assert_int_equal(sbuf_get_u32be(b, &len), 0);
	assert_true(len <= sbuf_avail(b));
	*p = sbuf_ptr(b);
	*n = len;
	assert_int_equal(sbuf_get(b, NULL, len), 0);
}

static void get_cstring_is(struct sbuf *b, const char *want)
{
	const uint8_t *p;
	size_t n;

	get_string(b, &p, &n);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(p, want, n);
}

/* The fields of a parsed SSHSIG blob. */
struct parsed {
	uint8_t blob[8192];
	struct sbuf b;
	const uint8_t *pub, *sig;
	size_t pub_len, sig_len;
};

static void parse(const struct sbuf *out, const char *ns, struct parsed *ps)
{
	uint8_t magic[6];
	uint32_t version;
	size_t n = dearmor(out, ps->blob, sizeof(ps->blob));

	sbuf_view(&ps->b, ps->blob, n);
	assert_int_equal(sbuf_get(&ps->b, magic, 6), 0);
	assert_memory_equal(magic, "SSHSIG", 6);
	assert_int_equal(sbuf_get_u32be(&ps->b, &version), 0);
	assert_int_equal(version, 1);
	get_string(&ps->b, &ps->pub, &ps->pub_len);
	get_cstring_is(&ps->b, ns);
	get_cstring_is(&ps->b, "");
	get_cstring_is(&ps->b, "sha512");
	get_string(&ps->b, &ps->sig, &ps->sig_len);
	assert_int_equal(sbuf_avail(&ps->b), 0);
}

/* What the key must sign: MAGIC || string ns || string "" || string "sha512" || string H. */
static size_t want_tbs(const char *ns, const uint8_t h[64], uint8_t *out)
{
	struct sbuf b;
	size_t n;

	sbuf_init(&b, 1024);
	assert_int_equal(sbuf_put(&b, "SSHSIG", 6), 0);
	assert_int_equal(sbuf_put_u32be(&b, (uint32_t)strlen(ns)), 0);
	assert_int_equal(sbuf_put(&b, ns, strlen(ns)), 0);
	assert_int_equal(sbuf_put_u32be(&b, 0), 0);
	assert_int_equal(sbuf_put_u32be(&b, 6), 0);
	assert_int_equal(sbuf_put(&b, "sha512", 6), 0);
	assert_int_equal(sbuf_put_u32be(&b, 64), 0);
	assert_int_equal(sbuf_put(&b, h, 64), 0);
	memcpy(out, b.d, b.len);
	n = b.len;
	sbuf_free(&b);
	return n;
}

static void sha512_of_msg(uint8_t h[64])
{
	assert_int_equal(EVP_Digest(msg, sizeof(msg), h, NULL, EVP_sha512(), NULL), 1);
}

static struct sigfs_hasher *msg_state(const char *digest)
{
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_digest_md(sigfs_digest_by_name(digest)));

	assert_non_null(h);
	assert_int_equal(sigfs_hasher_update(h, msg, sizeof(msg)), 0);
	return h;
}

static void test_table_and_check(void **state)
{
	const struct sigfs_alg *a;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	assert_string_equal(sshsig()->suffix, ".sig");
	assert_int_equal(sshsig()->nattrs, 1);
	assert_string_equal(sshsig()->attrs[0].name, "pubkey.ssh");
	assert_false(sshsig()->attrs[0].writable);
	for (size_t i = 0; (a = sigfs_alg_at(i)); i++) {
		/* Every algorithm; the file is hashed with SHA-512 whatever the key's digest. */
		assert_int_equal(sshsig()->check(a, sigfs_digest_by_name("sha3-256"), err), 0);
		assert_false(sshsig()->needs_message(a));
		assert_true(EVP_MD_is_a(sigfs_format_file_md(sshsig(), a, sigfs_digest_by_name("sha256")),
					"SHA2-512"));
	}
}

/* Ed25519 signs the to-t_be-signed blob itself (message mode); the blob parses back. */
static void test_ed25519_blob(void **state)
{
	static const uint8_t answer[64] = { 1, 2, 3 };
	EVP_PKEY *pk = keygen("ed25519");
	struct sigfs_hasher *h = msg_state("sha512");
	struct fake f = { .answer = answer, .answer_len = sizeof(answer) };
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519"), .pub = pk,
				      .ssh_namespace = "file" };
	struct sigfs_format_input in = { .key = &k, .state = h, .name = "fw.bin" };
	uint8_t hv[64], tbs[1024], raw[32];
	size_t tbs_len, raw_len = sizeof(raw);
	struct parsed ps;
	struct sbuf out, pub, sig;
	char err[SIGFS_ERRLEN] = "";
	const uint8_t *p;
	size_t n;

	(void)state;
	sha512_of_msg(hv);
	tbs_len = want_tbs("file", hv, tbs);
	sbuf_init(&out, 1 << 16);
	assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_int_equal(f.calls, 1);
	assert_null(f.in.digest);
	assert_int_equal(f.seen_len, tbs_len);
	assert_memory_equal(f.seen, tbs, tbs_len);

	parse(&out, "file", &ps);
	sbuf_view(&pub, ps.pub, ps.pub_len);
	get_cstring_is(&pub, "ssh-ed25519");
	get_string(&pub, &p, &n);
	assert_int_equal(EVP_PKEY_get_raw_public_key(pk, raw, &raw_len), 1);
	assert_int_equal(n, 32);
	assert_memory_equal(p, raw, 32);
	assert_int_equal(sbuf_avail(&pub), 0);
	sbuf_view(&sig, ps.sig, ps.sig_len);
	get_cstring_is(&sig, "ssh-ed25519");
	get_string(&sig, &p, &n);
	assert_int_equal(n, 64);
	assert_memory_equal(p, answer, 64);
	assert_int_equal(sbuf_avail(&sig), 0);

	/* The hash state goes on after produce (peeked, not finished). */
	assert_int_equal(sigfs_hasher_update(h, "x", 1), 0);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(pk);
}

/* RSA: rsa-sha2-512, PKCS#1 v1.5 over SHA-512 of the blob even for a PSS key; e and n as mpint. */
static void test_rsa_blob(void **state)
{
	static const uint8_t answer[256] = { 0xaa };
	EVP_PKEY *pk = keygen("rsa-2048");
	struct fake f = { .answer = answer, .answer_len = sizeof(answer) };
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("rsa-2048"), .pub = pk,
				      .padding = SIGFS_PAD_PSS, .ssh_namespace = "release@example.org" };
	uint8_t hv[64], tbs[1024], want[64];
	struct sigfs_format_input in = { .key = &k, .digest = sigfs_digest_by_name("sha512"),
					 .digest_value = hv, .name = "fw.bin" };
	size_t tbs_len;
	struct parsed ps;
	struct sbuf out, pub, sig;
	char err[SIGFS_ERRLEN] = "";
	const uint8_t *p;
	size_t n;

	(void)state;
	sha512_of_msg(hv);
	tbs_len = want_tbs("release@example.org", hv, tbs);
	assert_int_equal(EVP_Digest(tbs, tbs_len, want, NULL, EVP_sha512(), NULL), 1);
	sbuf_init(&out, 1 << 16);
	assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_ptr_equal(f.in.digest, sigfs_digest_by_name("sha512"));
	assert_int_equal(f.in.padding, SIGFS_PAD_PKCS1);
	assert_int_equal(f.seen_len, 64);
	assert_memory_equal(f.seen, want, 64);

	parse(&out, "release@example.org", &ps);
	sbuf_view(&pub, ps.pub, ps.pub_len);
	get_cstring_is(&pub, "ssh-rsa");
	get_string(&pub, &p, &n);                 /* e = 65537 */
	assert_int_equal(n, 3);
	assert_memory_equal(p, "\x01\x00\x01", 3);
	get_string(&pub, &p, &n);                 /* n: top bit set, so a 0 byte first */
	assert_int_equal(n, 257);
	assert_int_equal(p[0], 0);
	assert_true(p[1] & 0x80);
	assert_int_equal(sbuf_avail(&pub), 0);
	sbuf_view(&sig, ps.sig, ps.sig_len);
	get_cstring_is(&sig, "rsa-sha2-512");
	get_string(&sig, &p, &n);
	assert_int_equal(n, 256);
	assert_memory_equal(p, answer, 256);
	sbuf_free(&out);
	EVP_PKEY_free(pk);
}

/* ECDSA: DER from the backend becomes mpint r || mpint s; zeros and high bits handled. */
static void ecdsa_case(const char *alg, const char *digest, const uint8_t *der, size_t der_len,
		       const uint8_t *r, size_t rlen, const uint8_t *s, size_t slen)
{
	EVP_PKEY *pk = keygen(alg);
	struct sigfs_hasher *h = msg_state("sha512");
	struct fake f = { .answer = der, .answer_len = der_len };
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name(alg), .pub = pk,
				      .ssh_namespace = "file" };
	struct sigfs_format_input in = { .key = &k, .state = h, .name = "fw.bin" };
	uint8_t hv[64], tbs[1024], want[64], point[200];
	size_t tbs_len, point_len;
	unsigned wlen = 0;
	const struct sigfs_digest *d = sigfs_digest_by_name(digest);
	char type[32], curve[16];
	struct parsed ps;
	struct sbuf out, pub, sig, inner;
	char err[SIGFS_ERRLEN] = "";
	const uint8_t *p;
	size_t n;

	snprintf(curve, sizeof(curve), "nistp%d", sigfs_alg_by_name(alg)->bits);
	snprintf(type, sizeof(type), "ecdsa-sha2-%s", curve);
	sha512_of_msg(hv);
	tbs_len = want_tbs("file", hv, tbs);
	assert_int_equal(EVP_Digest(tbs, tbs_len, want, &wlen, sigfs_digest_md(d), NULL), 1);
	sbuf_init(&out, 1 << 16);
	assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), 0);
	assert_ptr_equal(f.in.digest, d);
	assert_int_equal(f.seen_len, wlen);
	assert_memory_equal(f.seen, want, wlen);

	parse(&out, "file", &ps);
	sbuf_view(&pub, ps.pub, ps.pub_len);
	get_cstring_is(&pub, type);
	get_cstring_is(&pub, curve);
	get_string(&pub, &p, &n);
	assert_int_equal(EVP_PKEY_get_octet_string_param(pk, "encoded-pub-key", point, sizeof(point),
							 &point_len), 1);
	assert_int_equal(n, point_len);
	assert_memory_equal(p, point, n);
	sbuf_view(&sig, ps.sig, ps.sig_len);
	get_cstring_is(&sig, type);
	get_string(&sig, &p, &n);
	assert_int_equal(sbuf_avail(&sig), 0);
	sbuf_view(&inner, p, n);
	get_string(&inner, &p, &n);
	assert_int_equal(n, rlen);
	assert_memory_equal(p, r, rlen);
	get_string(&inner, &p, &n);
	assert_int_equal(n, slen);
	assert_memory_equal(p, s, slen);
	assert_int_equal(sbuf_avail(&inner), 0);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(pk);
}

static void test_ecdsa_der_to_mpint(void **state)
{
	/* r = 0x80 01 ... (high bit: DER and mpint both carry a 0 byte first), s = 0x0102. */
	uint8_t der[8 + 33 + 2], r[33], s[2] = { 0x01, 0x02 };
	/* r = 0x7f ... (no padding), s = 0x00ff: DER pads it, mpint too (top bit set). */
	uint8_t der2[6 + 32 + 2] = { 0x30, 38, 0x02, 32 }, r2[32], s2[2] = { 0x00, 0xff };
	/* Malformed: trailing garbage after the SEQUENCE. */
	uint8_t bad[] = { 0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00 };

	(void)state;
	r[0] = 0x00;
	r[1] = 0x80;
	for (int i = 2; i < 33; i++)
		r[i] = (uint8_t)i;
	memcpy(der, "\x30\x27\x02\x21", 4);
	memcpy(der + 4, r, 33);
	memcpy(der + 37, "\x02\x02\x01\x02", 4);
	ecdsa_case("ecdsa-p256", "sha256", der, 41, r, 33, s, 2);

	r2[0] = 0x7f;
	for (int i = 1; i < 32; i++)
		r2[i] = (uint8_t)(0xf0 + i % 16);
	memcpy(der2 + 4, r2, 32);
	memcpy(der2 + 36, "\x02\x02\x00\xff", 4);
	ecdsa_case("ecdsa-p384", "sha384", der2, 40, r2, 32, s2, 2);
	/* P-521 hashes the blob with SHA-512. */
	ecdsa_case("ecdsa-p521", "sha512", der2, 40, r2, 32, s2, 2);

	{
		EVP_PKEY *pk = keygen("ecdsa-p256");
		struct sigfs_hasher *h = msg_state("sha512");
		struct fake f = { .answer = bad, .answer_len = sizeof(bad) };
		struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ecdsa-p256"),
					      .pub = pk, .ssh_namespace = "file" };
		struct sigfs_format_input in = { .key = &k, .state = h, .name = "fw.bin" };
		struct sbuf out;
		char err[SIGFS_ERRLEN] = "";

		sbuf_init(&out, 1 << 16);
		assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), -EBADMSG);
		assert_non_null(strstr(err, "not DER"));
		assert_int_equal(out.len, 0);
		sbuf_free(&out);
		sigfs_hasher_free(h);
		EVP_PKEY_free(pk);
	}
}

/* Only SHA-512 of the file can go into the blob: other digests and states are refused. */
static void test_other_hashes_refused(void **state)
{
	static const uint8_t answer[64] = { 0 };
	EVP_PKEY *pk = keygen("ed25519");
	struct sigfs_hasher *h = msg_state("sha256");
	uint8_t dv[32] = { 0 };
	struct fake f = { .answer = answer, .answer_len = sizeof(answer) };
	struct sigfs_format_key k = { .name = "rel", .alg = sigfs_alg_by_name("ed25519"), .pub = pk,
				      .ssh_namespace = "file" };
	struct sigfs_format_input in = { .key = &k, .digest = sigfs_digest_by_name("sha256"),
					 .digest_value = dv, .name = "fw.bin" };
	struct sbuf out;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	sbuf_init(&out, 1 << 16);
	assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), -EINVAL);
	assert_non_null(strstr(err, "SHA-512"));
	assert_non_null(strstr(err, "sha256"));
	in.digest = NULL;
	in.state = h;
	err[0] = '\0';
	assert_int_equal(sshsig()->produce(&in, fake_sign, &f, &out, err), -EINVAL);
	assert_non_null(strstr(err, "SHA-512"));
	assert_int_equal(f.calls, 0);
	assert_int_equal(out.len, 0);
	sbuf_free(&out);
	sigfs_hasher_free(h);
	EVP_PKEY_free(pk);
}

/* End to end with the soft backend and ssh-keygen. */

static char tmpdir[1024];

static int setup(void **state)
{
	(void)state;
	return t_soft_setup(tmpdir, sizeof(tmpdir), "sshsig");
}

static int teardown(void **state)
{
	(void)state;
	t_soft_teardown(tmpdir);
	return 0;
}

static void cli_case(const char *alg, const char *ns)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(alg);
	char id[64], data[1200], sigf[1200], signers[1200], verify[4096], err[SIGFS_ERRLEN] = "";
	EVP_PKEY *pk = NULL;
	struct sigfs_hasher *h = msg_state("sha512");
	struct sbuf out, line;
	struct sigfs_format_key k = { .alg = a, .padding = SIGFS_PAD_PSS, .ssh_namespace = ns };
	struct sigfs_format_input in = { .key = &k, .state = h, .name = "artifact" };
	FILE *f;

	snprintf(id, sizeof(id), "ssh-%s", alg);
	k.name = id;
	assert_int_equal(t_be->ops->generate(t_be, id, a, err), 0);
	assert_int_equal(t_be->ops->public_key(t_be, id, &pk, err), 0);
	k.pub = pk;
	snprintf(data, sizeof(data), "%s/%s", tmpdir, id);
	snprintf(sigf, sizeof(sigf), "%s/%s.sig", tmpdir, id);
	snprintf(signers, sizeof(signers), "%s/%s.allowed", tmpdir, id);
	t_write_file(data, msg, sizeof(msg));

	sbuf_init(&line, 1 << 16);
	assert_int_equal(sshsig()->attrs[0].render(&k, t_soft_sign, id, &line, err), 0);
	assert_int_equal(line.d[line.len - 1], '\n');
	f = fopen(signers, "w");
	assert_non_null(f);
	fprintf(f, "builder@example.org namespaces=\"%s\" %.*s", ns, (int)line.len, line.d);
	fclose(f);
	/* The line ends in the key name as its comment. */
	assert_int_equal(t_run("grep -q ' %s$' '%s'", id, signers), 0);

	sbuf_init(&out, 1 << 16);
	if (sshsig()->produce(&in, t_soft_sign, id, &out, err) != 0)
		fail_msg("%s: %s", id, err);
	t_write_file(sigf, out.d, out.len);
	snprintf(verify, sizeof(verify),
		 "ssh-keygen -Y verify -f '%s' -I builder@example.org -n '%%s' -s '%s' < '%%s' >/dev/null 2>&1",
		 signers, sigf);
	assert_int_equal(t_run(verify, ns, data), 0);
	/* Another namespace, other bytes: refused. */
	assert_int_not_equal(t_run(verify, "git", data), 0);
	assert_int_not_equal(t_run(verify, ns, signers), 0);
	sbuf_free(&out);
	sbuf_free(&line);
	sigfs_hasher_free(h);
	EVP_PKEY_free(pk);
}

static void test_ssh_keygen_verifies(void **state)
{
	(void)state;
	cli_case("ed25519", "file");
	cli_case("ecdsa-p256", "file");
	cli_case("ecdsa-p384", "release@example.org");
	cli_case("ecdsa-p521", "file");
	cli_case("rsa-2048", "file");
	cli_case("rsa-3072", "file");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_and_check),
		cmocka_unit_test(test_ed25519_blob),
		cmocka_unit_test(test_rsa_blob),
		cmocka_unit_test(test_ecdsa_der_to_mpint),
		cmocka_unit_test(test_other_hashes_refused),
		cmocka_unit_test(test_ssh_keygen_verifies),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
