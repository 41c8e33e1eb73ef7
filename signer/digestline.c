/*
 * digestline.c: recognise and parse NAME.<digest> files (digestline.h,
 * docs/inbox.md). The content comes from any user who may write into an
 * inbox, so every index below is checked against len, and every reason to
 * refuse it becomes one line in NAME.err.
 */
#include <string.h>

#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "signer/digestline.h"

/* Larger files are artifacts: a digest line is at most ~128 hex + a name. */
#define DL_MAX_CONTENT 4096

const struct sigfs_digest *sigfs_dl_suffix(const char *name, size_t *base_len)
{
	const struct sigfs_digest *best = NULL, *d;
	size_t nlen = strlen(name), best_slen = 0;

	/*
	 * Keep the longest suffix that matches, so that no future row whose
	 * name ends like another's (sha512-256 / sha256) can shadow it.
	 */
	for (size_t i = 0; (d = sigfs_digest_at(i)) != NULL; i++) {
		size_t slen = strlen(d->name) + 1;

		if (nlen <= slen || slen <= best_slen)
			continue;
		if (name[nlen - slen] != '.' || strcmp(name + nlen - slen + 1, d->name) != 0)
			continue;
		best = d;
		best_slen = slen;
	}
	if (best && base_len)
		*base_len = nlen - best_slen;
	return best;
}

enum sigfs_dl_result sigfs_dl_parse(const struct sigfs_digest *d, const char *base,
				    const uint8_t *content, size_t len,
				    uint8_t value[SIGFS_MAX_DIGEST], char *err)
{
	char q[SIGFS_QUOTE_LEN];
	size_t hexlen = 2 * d->len, tok, nhex, name_at;
	const uint8_t *line, *name, *slash;
	uint8_t sep;

	if (len == 0)
		goto empty;
	if (len > DL_MAX_CONTENT || memchr(content, '\0', len))
		return SIGFS_DL_NOT_A_LINE;

	/* Drop one line ending; any newline left means several lines. */
	if (content[len - 1] == '\n') {
		len--;
		if (len > 0 && content[len - 1] == '\r')
			len--;
	}
	if (memchr(content, '\n', len))
		return SIGFS_DL_NOT_A_LINE;
	if (len == 0)
		goto empty;

	line = content;
	for (tok = 0; tok < len && line[tok] != ' '; tok++)
		;
	for (nhex = 0; nhex < tok && sigfs_hex_digit(line[nhex]) >= 0; nhex++)
		;
	/* Only a line that looks like a digest is held to the digest rules. */
	if (!(tok > 0 && nhex == tok) && tok != hexlen)
		return SIGFS_DL_NOT_A_LINE;

	if (tok != hexlen) {
		return sigfs_seterr(err, SIGFS_DL_BAD,
				    "%s.%s: %s needs %zu hex digits, found %zu",
				    base, d->name, d->name, hexlen, tok);
	}
	if (nhex != tok) {
		return sigfs_seterr(err, SIGFS_DL_BAD,
				    "%s.%s: not a hex digit at position %zu of the digest",
				    base, d->name, nhex + 1);
	}

	if (tok < len) {
		/* sha256sum style: "<hex>  NAME" (text) or "<hex> *NAME" (binary). */
		name_at = tok + 2;
		sep = tok + 1 < len ? line[tok + 1] : '\0';
		if (name_at >= len || (sep != ' ' && sep != '*')) {
			return sigfs_seterr(err, SIGFS_DL_BAD,
					    "%s.%s: after the digest expected \"  %s\" or \" *%s\" or nothing",
					    base, d->name, base, base);
		}
		name = line + name_at;
		/* A path as sha256sum prints it (dir/fw.bin): its last component counts. */
		slash = memrchr(name, '/', len - name_at);
		slash = slash ? slash + 1 : name;
		if ((size_t)(line + len - slash) != strlen(base) ||
		    memcmp(slash, base, strlen(base)) != 0) {
			return sigfs_seterr(err, SIGFS_DL_BAD,
					    "%s.%s: the line names %s, not %s",
					    base, d->name, sigfs_quote(name, len - name_at, q), base);
		}
	}

	/* The digits were checked above. */
	if (sigfs_hex_decode((const char *)line, value, d->len, NULL) < 0)
		return sigfs_seterr(err, SIGFS_DL_BAD, "%s.%s: not a digest", base, d->name);
	return SIGFS_DL_OK;

empty:
	return sigfs_seterr(err, SIGFS_DL_BAD,
			    "%s.%s: empty digest file; write one line \"<hex>  %s\" into it",
			    base, d->name, base);
}
