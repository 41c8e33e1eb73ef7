/*
 * digestline.c: recognise and parse NAME.<digest> files (digestline.h,
 * docs/inbox.md). The content comes from any user who may write into an
 * inbox, so it is read through sbuf getters, which never pass its end, and every
 * reason to refuse it becomes one line in NAME.err.
 */
#include <stdbool.h>
#include <string.h>

#include "common/err.h"
#include "common/sbuf.h"
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

/* The digest's hex digits; each outside byte is checked against this set. */
#define DL_HEX "0123456789abcdefABCDEF"

/*
 * The one line of content (its ending, \n or \r\n, dropped) as a view in line:
 * SIGFS_DL_NOT_A_LINE for what cannot be a digest line (too large, a NUL, a
 * byte after the line's end).
 */
static enum sigfs_dl_result one_line(const uint8_t *content, size_t len, struct sbuf *line)
{
	struct sbuf b;
	size_t n;

	sbuf_view(&b, content, len);
	if (len > DL_MAX_CONTENT || sbuf_find(&b, '\0', NULL) == 0)
		return SIGFS_DL_NOT_A_LINE;
	if (sbuf_find(&b, '\n', &n) < 0)
		n = len;
	else if (n != len - 1)
		return SIGFS_DL_NOT_A_LINE;
	else if (n > 0 && content[n - 1] == '\r')
		n--;
	return sbuf_get_view(&b, n, line) < 0 ? SIGFS_DL_NOT_A_LINE : SIGFS_DL_OK;
}

/* After "<hex> ": " NAME" or "*NAME", where NAME (or its last path component) is base. */
static enum sigfs_dl_result check_name(const struct sigfs_digest *d, const char *base,
				       struct sbuf *rest, char *err)
{
	char q[SIGFS_QUOTE_LEN];
	struct sbuf name, part;
	uint8_t sep;

	/* sha256sum style: "<hex>  NAME" (text) or "<hex> *NAME" (binary). */
	if (sbuf_get_u8(rest, &sep) < 0 || (sep != ' ' && sep != '*') || sbuf_avail(rest) == 0) {
		return sigfs_seterr(err, SIGFS_DL_BAD,
				    "%s.%s: after the digest expected \"  %s\" or \" *%s\" or nothing",
				    base, d->name, base, base);
	}
	name = *rest;
	/* A path as sha256sum prints it (dir/fw.bin): its last component counts. */
	while (sbuf_get_token(rest, "/", &part) == 0)
		;
	if (!sbuf_eq(rest, base)) {
		return sigfs_seterr(err, SIGFS_DL_BAD, "%s.%s: the line names %s, not %s",
				    base, d->name,
				    sigfs_quote(sbuf_ptr(&name), sbuf_avail(&name), q), base);
	}
	return SIGFS_DL_OK;
}

enum sigfs_dl_result sigfs_dl_parse(const struct sigfs_digest *d, const char *base,
				    const uint8_t *content, size_t len,
				    uint8_t value[SIGFS_MAX_DIGEST], char *err)
{
	size_t hexlen = 2 * d->len, ntok, nhex;
	struct sbuf line, tok;
	bool named;

	if (len == 0)
		goto empty;
	if (one_line(content, len, &line) != SIGFS_DL_OK)
		return SIGFS_DL_NOT_A_LINE;
	if (sbuf_avail(&line) == 0)
		goto empty;

	named = sbuf_get_token(&line, " ", &tok) == 0;
	if (!named)
		sbuf_get_view(&line, sbuf_avail(&line), &tok);
	ntok = sbuf_avail(&tok);
	nhex = sbuf_span(&tok, DL_HEX);
	/* Only a line that looks like a digest is held to the digest rules. */
	if (!(ntok > 0 && nhex == ntok) && ntok != hexlen)
		return SIGFS_DL_NOT_A_LINE;

	if (ntok != hexlen) {
		return sigfs_seterr(err, SIGFS_DL_BAD,
				    "%s.%s: %s needs %zu hex digits, found %zu",
				    base, d->name, d->name, hexlen, ntok);
	}
	if (nhex != ntok) {
		return sigfs_seterr(err, SIGFS_DL_BAD,
				    "%s.%s: not a hex digit at position %zu of the digest",
				    base, d->name, nhex + 1);
	}
	if (named && check_name(d, base, &line, err) != SIGFS_DL_OK)
		return SIGFS_DL_BAD;

	/* The digits were checked above. */
	if (sbuf_get_hex(&tok, value, d->len, NULL) < 0)
		return sigfs_seterr(err, SIGFS_DL_BAD, "%s.%s: not a digest", base, d->name);
	return SIGFS_DL_OK;

empty:
	return sigfs_seterr(err, SIGFS_DL_BAD,
			    "%s.%s: empty digest file; write one line \"<hex>  %s\" into it",
			    base, d->name, base);
}
