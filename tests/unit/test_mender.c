/*
 * test_mender.c: the mender format (signer/format_mender.c) on artifacts
 * built here: the header it adds is Go's archive/tar's to the byte (the
 * checksum below is the one mender-artifact 3.9 wrote for a 344-byte
 * manifest.sig), libarchive reads it back; the output is the input with
 * manifest.sig inserted after manifest, the same streamed from a file and
 * made in memory; the signature verifies over the manifest (RSA and
 * P-256 r||s); and what is not an unsigned version 3 artifact is refused
 * with the reason. mender-artifact itself checks outputs in
 * tests/e2e/mender_signatures.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "common/sbuf.h"
#include "signer/format.h"
#include "signer/format_mender.h"
#include "testlib.h"

extern const struct sigfs_format sigfs_format_mender;

static char tmpdir[4096];

static int setup(void **state)
{
	(void)state;
	return t_soft_setup(tmpdir, sizeof(tmpdir), "mender");
}

static int teardown(void **state)
{
	(void)state;
	t_soft_teardown(tmpdir);
	return 0;
}

/* Append member name with n bytes of data (a header, the data, zeros to a block). */
static void add_member(struct sbuf *a, const char *name, const void *data, size_t n)
{
	uint8_t h[512], zero[512] = { 0 };

	sigfs_mender_header(name, n, h);
	assert_int_equal(sbuf_put(a, h, sizeof(h)), 0);
	assert_int_equal(sbuf_put(a, data, n), 0);
	if (n % 512)
		assert_int_equal(sbuf_put(a, zero, 512 - n % 512), 0);
}

static const char manifest[] =
	"0c4b2e6f3a64a41fb7bcd5a8c3e4c1f0aa29ab0d1ed8f5f71f2d1e6f54c0d6c1  data/0000.tar.gz\n"
	"a8f5f167f44f4964e6c998dee827110c0f5a4cd0f8bd0b2a6d7c1c2d1b1b7c33  header.tar.gz\n"
	"3d1c7e7e4fb7a2f4f3b1d0e4a7a3c9b2f1c7e2d4b5a6c7d8e9f0a1b2c3d4e5f6  version\n";

/* An artifact: version (with the given JSON), manifest, and what follows. */
static void make_artifact(struct sbuf *a, const char *version, bool signed_already)
{
	uint8_t payload[3000], zero[1024] = { 0 };

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	sbuf_init(a, 1 << 20);
	add_member(a, "version", version, strlen(version));
	add_member(a, "manifest", manifest, strlen(manifest));
	if (signed_already)
		add_member(a, "manifest.sig", "AAAA", 4);
	add_member(a, "header.tar.gz", payload, 700);
	add_member(a, "data/0000.tar.gz", payload, sizeof(payload));
	assert_int_equal(sbuf_put(a, zero, sizeof(zero)), 0);
}

static const char v3[] = "{\"format\":\"mender\",\"version\":3}";

static struct sigfs_format_key make_key(const char *id, const char *alg_name, EVP_PKEY **pub)
{
	const struct sigfs_alg *alg = sigfs_alg_by_name(alg_name);
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_format_key k = { .name = id, .alg = alg,
				      .digest = sigfs_digest_by_name("sha256") };

	assert_int_equal(t_be->ops->generate(t_be, id, alg, err), 0);
	assert_int_equal(t_be->ops->public_key(t_be, id, pub, err), 0);
	k.pub = *pub;
	k.padding = alg->kind == SIGFS_KIND_RSA ? SIGFS_PAD_PKCS1 : SIGFS_PAD_NONE;
	return k;
}

static int produce(const struct sigfs_format_key *k, const char *id, const struct sbuf *a,
		   struct sbuf *out, char *err)
{
	struct sigfs_format_input in = { .key = k, .message = a->d, .message_len = a->len,
					 .message_fd = -1, .name = "a.mender" };

	sbuf_init(out, a->len + 65536);
	err[0] = '\0';
	return sigfs_format_produce(&sigfs_format_mender, &in, t_soft_sign, (void *)id, out, err);
}

/* Go's header for manifest.sig of 344 bytes, field by field, as mender-artifact wrote it. */
static void test_header_is_gos(void **state)
{
	uint8_t h[512], want[512] = { 0 };

	(void)state;
	memcpy(want, "manifest.sig", 12);
	memcpy(want + 100, "0000644", 8);
	memcpy(want + 108, "0000000", 8);
	memcpy(want + 116, "0000000", 8);
	memcpy(want + 124, "00000000530", 12);
	memcpy(want + 136, "00000000000", 12);
	memcpy(want + 148, "011515\0 ", 8);
	want[156] = '0';
	memcpy(want + 257, "ustar\0" "00", 8);
	memcpy(want + 329, "0000000", 8);
	memcpy(want + 337, "0000000", 8);
	sigfs_mender_header("manifest.sig", 344, h);
	assert_memory_equal(h, want, 512);
}

/* libarchive reads the artifacts built with the header: name, size, mode, time. */
static void test_header_reads_back(void **state)
{
	struct archive *ar = archive_read_new();
	struct archive_entry *ae;
	struct sbuf a;

	(void)state;
	make_artifact(&a, v3, false);
	assert_int_equal(archive_read_support_format_tar(ar), ARCHIVE_OK);
	assert_int_equal(archive_read_open_memory(ar, a.d, a.len), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(ar, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "version");
	assert_int_equal(archive_entry_size(ae), (la_int64_t)strlen(v3));
	assert_int_equal(archive_entry_perm(ae), 0644);
	assert_int_equal(archive_entry_mtime(ae), 0);
	assert_int_equal(archive_read_next_header(ar, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "manifest");
	assert_int_equal(archive_read_next_header(ar, &ae), ARCHIVE_OK);
	assert_int_equal(archive_read_next_header(ar, &ae), ARCHIVE_OK);
	assert_string_equal(archive_entry_pathname(ae), "data/0000.tar.gz");
	assert_int_equal(archive_entry_size(ae), 3000);
	assert_int_equal(archive_read_next_header(ar, &ae), ARCHIVE_EOF);
	archive_read_free(ar);
	sbuf_free(&a);
}

/* The signature in out (manifest.sig at off, base64) verifies over the manifest with pub. */
static void check_signature(const struct sigfs_format_key *k, const struct sbuf *out, size_t off)
{
	char size[13];
	size_t len;
	uint8_t raw[600], der[600], *p = der;
	const uint8_t *sig = raw;
	int n, siglen;
	EVP_MD_CTX *md = EVP_MD_CTX_new();

	memcpy(size, out->d + off + 124, 12);
	size[12] = '\0';
	len = strtoul(size, NULL, 8);
	assert_true(len > 0 && len < sizeof(raw));
	n = EVP_DecodeBlock(raw, out->d + off + 512, (int)len);
	assert_true(n > 0);
	siglen = n - (out->d[off + 512 + len - 1] == '=') - (out->d[off + 512 + len - 2] == '=');
	if (k->alg->kind == SIGFS_KIND_EC) {
		ECDSA_SIG *es = ECDSA_SIG_new();

		assert_int_equal(siglen, 64);
		assert_int_equal(ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL)), 1);
		siglen = i2d_ECDSA_SIG(es, &p);
		ECDSA_SIG_free(es);
		sig = der;
	}
	assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pub), 1);
	assert_int_equal(EVP_DigestVerify(md, sig, (size_t)siglen, (const uint8_t *)manifest,
					  strlen(manifest)), 1);
	/* One changed byte of the manifest: no longer. */
	{
		char bad[sizeof(manifest)];

		memcpy(bad, manifest, sizeof(manifest));
		bad[5] ^= 1;
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k->pub), 1);
		assert_int_not_equal(EVP_DigestVerify(md, sig, (size_t)siglen, (const uint8_t *)bad,
						      strlen(bad)), 1);
	}
	EVP_MD_CTX_free(md);
}

static int sink_sbuf(void *ctx, const void *p, size_t n)
{
	return sbuf_put(ctx, p, n);
}

/*
 * The daemon's file sink (sigfs_sink_fd), and one whose copy lets the kernel
 * copy half of each piece and then says it cannot: sigfs_format_copy must
 * copy the rest through memory, to the same bytes.
 */
struct file_sink {
	int fd;
	struct sigfs_sink real;
	int halves;
};

static int file_sink_write(void *ctx, const void *p, size_t n)
{
	struct file_sink *fs = ctx;

	return fs->real.write(fs->real.ctx, p, n);
}

static int file_sink_half_copy(void *ctx, int fd, uint64_t off, uint64_t n, uint64_t *done)
{
	struct file_sink *fs = ctx;
	int r = fs->real.copy(fs->real.ctx, fd, off, n / 2, done);

	fs->halves++;
	return r < 0 ? r : -EXDEV;
}

/* The whole file at path into out (initialised here). */
static void slurp(const char *path, struct sbuf *out)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0 && fstat(fd, &st) == 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	sbuf_init(out, (size_t)st.st_size + 1);
	assert_int_equal(sbuf_put(out, buf, (size_t)st.st_size), 0);
	free(buf);
	close(fd);
}

static void signs(const char *alg)
{
	char err[SIGFS_ERRLEN], id[64], path[4200];
	const size_t at = 512 + 512 + 512 + 512;     /* version, manifest: one block each */
	struct sbuf a, out, streamed;
	struct sigfs_format_key k;
	EVP_PKEY *pub = NULL;
	uint8_t h[512];
	int fd;

	snprintf(id, sizeof(id), "mender-%s", alg);
	k = make_key(id, alg, &pub);
	make_artifact(&a, v3, false);
	assert_int_equal(produce(&k, id, &a, &out, err), 0);
	/* The input up to the member after manifest, manifest.sig, then the rest as it was. */
	assert_memory_equal(out.d, a.d, at);
	memcpy(h, out.d + at, 512);
	assert_memory_equal(h, "manifest.sig", 13);
	{
		char size[13];
		size_t len, padded;

		memcpy(size, h + 124, 12);
		size[12] = '\0';
		len = strtoul(size, NULL, 8);
		padded = (len + 511) / 512 * 512;
		assert_int_equal(out.len, a.len + 512 + padded);
		assert_memory_equal(out.d + at + 512 + padded, a.d + at, a.len - at);
	}
	check_signature(&k, &out, at);

	/* Streamed from a file (the engine's large-artifact path): the same bytes for RSA. */
	snprintf(path, sizeof(path), "%s/%s.mender", tmpdir, id);
	t_write_file(path, a.d, a.len);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	{
		struct sigfs_format_input in = { .key = &k, .message_file = true, .message_fd = fd,
						 .message_len = a.len, .name = "a.mender" };
		const struct sigfs_sink sink = { sink_sbuf, &streamed, NULL };

		sbuf_init(&streamed, a.len + 65536);
		assert_int_equal(sigfs_format_mender.produce_stream(&in, t_soft_sign, id, &sink, err), 0);
	}
	assert_int_equal(streamed.len, out.len);
	if (k.alg->kind == SIGFS_KIND_RSA)
		assert_memory_equal(streamed.d, out.d, out.len);   /* PKCS#1 v1.5 is deterministic */
	else
		assert_memory_equal(streamed.d, out.d, at + 124);  /* up to manifest.sig's size */
	check_signature(&k, &streamed, at);
	sbuf_free(&streamed);

	/* Into a file, as the daemon streams: payloads copied by the kernel, or half by it. */
	for (int half = 0; half < 2; half++) {
		struct sigfs_format_input in = { .key = &k, .message_file = true, .message_fd = fd,
						 .message_len = a.len, .name = "a.mender" };
		char opath[sizeof(path) + 16];
		struct file_sink fs;
		const struct sigfs_sink halfsink = { file_sink_write, &fs, file_sink_half_copy };
		const struct sigfs_sink *sink = half ? &halfsink : &fs.real;

		snprintf(opath, sizeof(opath), "%s.out%d", path, half);
		fs.fd = open(opath, O_RDWR | O_CREAT | O_TRUNC, 0600);
		assert_true(fs.fd >= 0);
		fs.real = sigfs_sink_fd(&fs.fd);
		fs.halves = 0;
		assert_int_equal(sigfs_format_mender.produce_stream(&in, t_soft_sign, id, sink, err), 0);
		close(fs.fd);
		if (half)
			assert_int_equal(fs.halves, 2);   /* the two ranges mender copies */
		slurp(opath, &streamed);
		assert_int_equal(streamed.len, out.len);
		if (k.alg->kind == SIGFS_KIND_RSA)
			assert_memory_equal(streamed.d, out.d, out.len);
		else
			assert_memory_equal(streamed.d, out.d, at + 124);
		check_signature(&k, &streamed, at);
		sbuf_free(&streamed);
	}
	close(fd);
	sbuf_free(&out);
	sbuf_free(&a);
	EVP_PKEY_free(pub);
}

static void test_signs_rsa(void **state)
{
	(void)state;
	signs("rsa-2048");
}

static void test_signs_p256(void **state)
{
	(void)state;
	signs("ecdsa-p256");
}

/* What is not an unsigned Mender artifact of version 3: refused, with the reason. */
static void test_refusals(void **state)
{
	static const struct {
		const char *version;
		bool signed_already;
		int want;
		const char *says;
	} cases[] = {
		{ "{\"format\":\"mender\",\"version\":2}", false, -EPROTONOSUPPORT, "version 2" },
		{ "{\"format\":\"other\",\"version\":3}", false, -EBADMSG, "not a Mender artifact" },
		{ "{\"format\":\"mender\"}", false, -EBADMSG, "no version number" },
		{ "not json", false, -EBADMSG, "not a Mender artifact" },
		{ "{\"format\":\"mender\",\"version\":3}", true, -EEXIST, "signed already" },
	};
	char err[SIGFS_ERRLEN];
	struct sigfs_format_key k;
	EVP_PKEY *pub = NULL;
	struct sbuf a, out;
	uint8_t junk[4096];

	(void)state;
	k = make_key("mender-refusals", "ecdsa-p256", &pub);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_artifact(&a, cases[i].version, cases[i].signed_already);
		assert_int_equal(produce(&k, "mender-refusals", &a, &out, err), cases[i].want);
		if (!strstr(err, cases[i].says))
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].says);
		assert_int_equal(out.len, 0);
		sbuf_free(&out);
		sbuf_free(&a);
	}
	/* Not a tar file; a tar file cut inside its manifest; one that ends after it. */
	memset(junk, 0x5a, sizeof(junk));
	sbuf_init(&a, sizeof(junk));
	assert_int_equal(sbuf_put(&a, junk, sizeof(junk)), 0);
	assert_int_equal(produce(&k, "mender-refusals", &a, &out, err), -EBADMSG);
	assert_non_null(strstr(err, "not a Mender artifact"));
	sbuf_free(&out);
	sbuf_free(&a);
	make_artifact(&a, v3, false);
	a.len = 512 + 512 + 512 + 100;
	assert_int_equal(produce(&k, "mender-refusals", &a, &out, err), -EBADMSG);
	sbuf_free(&out);
	a.len = 512 * 4;
	assert_int_equal(produce(&k, "mender-refusals", &a, &out, err), -EBADMSG);
	assert_non_null(strstr(err, "nothing follows its manifest"));
	sbuf_free(&out);
	sbuf_free(&a);
	/* A digest (no message): the output is the artifact itself. */
	{
		struct sigfs_format_input in = { .key = &k, .message_fd = -1, .name = "a.mender" };

		sbuf_init(&out, 4096);
		assert_int_equal(sigfs_format_produce(&sigfs_format_mender, &in, t_soft_sign,
						      "mender-refusals", &out, err), -EINVAL);
		sbuf_free(&out);
	}
	EVP_PKEY_free(pub);
}

/* What mender-artifact cannot verify is refused by check and check_padding. */
static void test_checks(void **state)
{
	char err[SIGFS_ERRLEN];
	const struct sigfs_digest *sha256 = sigfs_digest_by_name("sha256");

	(void)state;
	assert_int_equal(sigfs_format_mender.check(sigfs_alg_by_name("ecdsa-p256"), sha256, err), 0);
	assert_int_equal(sigfs_format_mender.check(sigfs_alg_by_name("rsa-3072"), sha256, err), 0);
	assert_int_equal(sigfs_format_mender.check(sigfs_alg_by_name("ed25519"), sha256, err), -EINVAL);
	assert_int_equal(sigfs_format_mender.check(sigfs_alg_by_name("ecdsa-p384"), sha256, err), -EINVAL);
	assert_int_equal(sigfs_format_mender.check(sigfs_alg_by_name("ecdsa-p256"),
						   sigfs_digest_by_name("sha512"), err), -EINVAL);
	assert_int_equal(sigfs_format_mender.check_padding(sigfs_alg_by_name("rsa-2048"),
							   SIGFS_PAD_PSS, err), -EINVAL);
	assert_int_equal(sigfs_format_mender.check_padding(sigfs_alg_by_name("rsa-2048"),
							   SIGFS_PAD_PKCS1, err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_is_gos),
		cmocka_unit_test(test_header_reads_back),
		cmocka_unit_test(test_signs_rsa),
		cmocka_unit_test(test_signs_p256),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_checks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
