/*
 * test_authenticode.c: the authenticode format's PE checks
 * (signer/format_authenticode.c). Debian's systemd-boot (package
 * systemd-boot-efi) is parsed to its known offsets; PE32 and PE32+ headers
 * built here are taken or refused as format_authenticode.h says. sbverify
 * and osslsigncode check whole signed images, and the PE checksum, in
 * tests/e2e/authenticode_signatures.sh.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/format_authenticode.h"

#define BOOT "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *d;
	long n;

	if (!f)
		fail_msg("%s: cannot open it (bash scripts/deps installs systemd-boot-efi)", path);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n > 0);
	rewind(f);
	d = malloc((size_t)n);
	assert_non_null(d);
	assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return d;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/*
 * A minimal image of 4096 bytes: MZ, PE at 0x80, optional header of the
 * given magic, 16 directories, SizeOfHeaders 0x200, two sections at
 * 0x200 (0x400 bytes) and 0x600 (0x400 bytes), then trailing data.
 */
static void make_pe(uint8_t *d, uint16_t magic)
{
	const uint32_t lfanew = 0x80, oh = lfanew + 24;
	const uint16_t optsize = magic == 0x10b ? 96 + 128 : 112 + 128;
	const uint32_t table = oh + optsize;

	memset(d, 0, 4096);
	d[0] = 'M';
	d[1] = 'Z';
	put32(d + 0x3c, lfanew);
	memcpy(d + lfanew, "PE\0\0", 4);
	put16(d + lfanew + 6, 2);
	put16(d + lfanew + 20, optsize);
	put16(d + oh, magic);
	put32(d + oh + 60, 0x200);
	put32(d + oh + (magic == 0x10b ? 92 : 108), 16);
	put32(d + table + 16, 0x400);
	put32(d + table + 20, 0x200);
	put32(d + table + 40 + 16, 0x400);
	put32(d + table + 40 + 20, 0x600);
}

static void test_systemd_boot(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_pe pe;
	size_t len;
	uint8_t *d = read_all(BOOT, &len);

	(void)state;
	assert_int_equal(sigfs_pe_parse(d, len, len, &pe, err), 0);
	assert_int_equal(pe.checksum_off, 0x80 + 24 + 64);
	assert_int_equal(pe.certdir_off, 0x80 + 24 + 112 + 32);
	assert_int_equal(pe.headers, 0x400);
	assert_true(pe.sections_end > pe.headers && pe.sections_end <= len);
	/* Only the headers in memory, the file larger: the same answer. */
	assert_int_equal(sigfs_pe_parse(d, 0x400, len, &pe, err), 0);
	/* Too few bytes for the headers: refused, not read past. */
	assert_int_equal(sigfs_pe_parse(d, 0x3ff, len, &pe, err), -EBADMSG);
	/* A certificate table: signed already. */
	put32(d + 0x80 + 24 + 112 + 32, (uint32_t)len);
	put32(d + 0x80 + 24 + 112 + 32 + 4, 8);
	assert_int_equal(sigfs_pe_parse(d, len, len, &pe, err), -EEXIST);
	assert_non_null(strstr(err, "signed already"));
	free(d);
}

static void test_built(void **state)
{
	static const uint16_t magics[] = { 0x10b, 0x20b };
	char err[SIGFS_ERRLEN];
	struct sigfs_pe pe;
	uint8_t d[4096];

	(void)state;
	for (size_t m = 0; m < 2; m++) {
		const uint32_t oh = 0x80 + 24, table = oh + (magics[m] == 0x10b ? 96 : 112) + 128;

		make_pe(d, magics[m]);
		assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), 0);
		assert_int_equal(pe.certdir_off, oh + (magics[m] == 0x10b ? 96 : 112) + 32);
		assert_int_equal(pe.sections_end, 0xa00);
		/* A gap between the sections. */
		put32(d + table + 40 + 20, 0x700);
		assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
		assert_non_null(strstr(err, "without gaps"));
		/* A section past the end of the file. */
		make_pe(d, magics[m]);
		put32(d + table + 40 + 16, 0x1000);
		assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
		/* Fewer than 5 data directories: no certificate table entry. */
		make_pe(d, magics[m]);
		put32(d + oh + (magics[m] == 0x10b ? 92 : 108), 4);
		assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
		/* More directories than the optional header holds. */
		put32(d + oh + (magics[m] == 0x10b ? 92 : 108), 17);
		assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
	}
	/* Not PE: no MZ, a PE offset past the bytes, an unknown optional header. */
	make_pe(d, 0x20b);
	d[0] = 'X';
	assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
	make_pe(d, 0x20b);
	put32(d + 0x3c, 0xfffffff0);
	assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
	make_pe(d, 0x107);
	assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
	assert_non_null(strstr(err, "unknown kind"));
	/* SizeOfHeaders larger than the file. */
	make_pe(d, 0x20b);
	put32(d + 0x80 + 24 + 60, 0x2000);
	assert_int_equal(sigfs_pe_parse(d, sizeof(d), sizeof(d), &pe, err), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_systemd_boot),
		cmocka_unit_test(test_built),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
