/*
 * fuzz_digestline.c: libFuzzer target for digest files (signer/digestline.c),
 * whose name and content come from anyone who may write into an inbox. An
 * input is the file name, a newline, then the file's content. The name goes
 * through sigfs_dl_suffix(); a digest file name's content through
 * sigfs_dl_parse() with the digest and base the suffix gave, for every
 * digest of the table.
 *
 * Besides ASan and UBSan findings, it aborts when the code and the rules
 * written in signer/digestline.h disagree: the suffix must be the longest
 * row name the file name ends in after a '.', with a base before it; the
 * result (OK, BAD or NOT_A_LINE) must be the one the rules give, an OK
 * result's digest must be the hex at the start of the line, and a BAD one
 * must come with one line naming the file. Built by tests/fuzz/run.sh.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/hex.h"
#include "signer/digestline.h"

/* The rules of digestline.h: the longest content that can be a digest line. */
#define DL_MAX_CONTENT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does name end in ".<row name>" with at least one byte before the dot? */
static bool ends_in(const char *name, const struct sigfs_digest *d)
{
	size_t n = strlen(name), s = strlen(d->name);

	return n > s + 1 && name[n - s - 1] == '.' && strcmp(name + n - s, d->name) == 0;
}

static void check_suffix(const char *name, const struct sigfs_digest *got, size_t base_len)
{
	const struct sigfs_digest *d;

	for (size_t i = 0; (d = sigfs_digest_at(i)) != NULL; i++) {
		if (!ends_in(name, d))
			continue;
		/* A matching row and no answer, or a shorter answer than this row. */
		if (!got || strlen(got->name) < strlen(d->name))
			abort();
	}
	if (!got)
		return;
	if (!ends_in(name, got) || base_len + 1 + strlen(got->name) != strlen(name))
		abort();
}

/* The result digestline.h's rules give for content c (len bytes) of file base.d->name. */
static enum sigfs_dl_result expected(const struct sigfs_digest *d, const char *base,
				     const uint8_t *c, size_t len)
{
	size_t hexlen = 2 * d->len, tok, nhex, last;

	if (len == 0)
		return SIGFS_DL_BAD;
	if (len > DL_MAX_CONTENT || memchr(c, '\0', len))
		return SIGFS_DL_NOT_A_LINE;
	if (c[len - 1] == '\n') {
		len--;
		if (len > 0 && c[len - 1] == '\r')
			len--;
	}
	if (memchr(c, '\n', len))
		return SIGFS_DL_NOT_A_LINE;
	if (len == 0)
		return SIGFS_DL_BAD;
	for (tok = 0; tok < len && c[tok] != ' '; tok++)
		;
	for (nhex = 0; nhex < tok && sigfs_hex_digit(c[nhex]) >= 0; nhex++)
		;
	if (!(tok > 0 && nhex == tok) && tok != hexlen)
		return SIGFS_DL_NOT_A_LINE;
	if (tok != hexlen || nhex != tok)
		return SIGFS_DL_BAD;
	if (tok == len)
		return SIGFS_DL_OK;
	if (len < tok + 3 || (c[tok + 1] != ' ' && c[tok + 1] != '*'))
		return SIGFS_DL_BAD;
	for (last = len; last > tok + 2 && c[last - 1] != '/'; last--)
		;
	if (len - last != strlen(base) || memcmp(c + last, base, len - last) != 0)
		return SIGFS_DL_BAD;
	return SIGFS_DL_OK;
}

static void check_parse(const struct sigfs_digest *d, const char *name, size_t base_len,
			const uint8_t *content, size_t len)
{
	char base[256], err[SIGFS_ERRLEN] = "";
	uint8_t value[SIGFS_MAX_DIGEST];
	enum sigfs_dl_result r;

	memcpy(base, name, base_len);
	base[base_len] = '\0';
	memset(value, 0xa5, sizeof(value));
	r = sigfs_dl_parse(d, base, content, len, value, err);
	if (r != expected(d, base, content, len))
		abort();
	switch (r) {
	case SIGFS_DL_OK:
		for (size_t i = 0; i < d->len; i++)
			if (value[i] != (sigfs_hex_digit(content[2 * i]) << 4 |
					 sigfs_hex_digit(content[2 * i + 1])))
				abort();
		break;
	case SIGFS_DL_BAD:
		/*
		 * One line that starts with the file's name (when the name fits),
		 * where sigfs_seterr() made a '\r' of the name a space.
		 */
		if (!err[0] || strpbrk(err, "\r\n"))
			abort();
		for (size_t i = 0; name[i] && i + 1 < sizeof(err); i++)
			if (err[i] != (name[i] == '\r' ? ' ' : name[i]))
				abort();
		if (strlen(name) + 1 < sizeof(err) && err[strlen(name)] != ':')
			abort();
		break;
	case SIGFS_DL_NOT_A_LINE:
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const struct sigfs_digest *d;
	char name[256];
	size_t nlen, base_len = 0;

	/* A file name: one component, 1 to 255 bytes, no NUL. */
	if (!nl)
		return 0;
	nlen = (size_t)(nl - data);
	if (nlen == 0 || nlen >= sizeof(name) || memchr(data, '\0', nlen) ||
	    memchr(data, '/', nlen))
		return 0;
	memcpy(name, data, nlen);
	name[nlen] = '\0';

	d = sigfs_dl_suffix(name, &base_len);
	check_suffix(name, d, base_len);
	if (d)
		check_parse(d, name, base_len, nl + 1, size - nlen - 1);
	return 0;
}
