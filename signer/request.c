/*
 * request.c: NAME.sigreq, a JSON signing request (signer/request.h,
 * docs/requests.md). jansson turns the bytes into a tree (and refuses
 * duplicate keys); every check of what the tree holds is here: the envelope,
 * the version, each field of "required", the range of every byte. Anything
 * in "required" this file does not define is refused, so a request asking for
 * more than this sigfsd can do never yields a signature over something else;
 * "optional" is read for "file-name" and otherwise ignored, as Signstar's
 * client expects (it adds a random key there on purpose).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/err.h"
#include "common/hex.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "signer/request.h"
#include "signer/sha512.h"

#define STATE_TYPE "sha2-0.11-SHA512-state"
#define DIGEST_TYPE "sigfs-digest-v1"
/* Signstar's output type, and the format that makes it. */
#define SIGNSTAR_OUTPUT "OpenPGPv4"
#define SIGNSTAR_FORMAT "openpgp"
/* Our output types: this prefix and a format's name ("sigfs-raw"). */
#define OUR_OUTPUT_PREFIX "sigfs-"
/* The pre-release sha2 0.11 layout shown in Signstar's request.md (docs/requests.md). */
#define OLD_STATE_LEN 210

/* Refuse every key of obj that is not in allowed (NULL-terminated). */
static int only_keys(json_t *obj, const char *const *allowed, const char *where, char *err)
{
	char q[SIGFS_QUOTE_LEN];
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		size_t i;

		for (i = 0; allowed[i] && strcmp(allowed[i], key) != 0; i++)
			;
		if (!allowed[i])
			return sigfs_seterr(err, -EPROTONOSUPPORT, "the request's %s has the "
					    "field \"%s\", which this sigfsd does not know; it "
					    "cannot honour the request (see docs/requests.md)",
					    where, sigfs_quote(key, strlen(key), q));
	}
	return 0;
}

/* The member key of obj as a JSON object, or an error. */
static int get_object(json_t *obj, const char *key, const char *where, json_t **out, char *err)
{
	*out = json_object_get(obj, key);
	if (!*out)
		return sigfs_seterr(err, -EINVAL, "the request has no \"%s\" in %s", key, where);
	if (!json_is_object(*out))
		return sigfs_seterr(err, -EINVAL, "\"%s\" in the request's %s is not an object",
				    key, where);
	return 0;
}

/* The member key of obj as a string, or an error. */
static int get_string(json_t *obj, const char *key, const char *where, const char **out,
		      char *err)
{
	json_t *v = json_object_get(obj, key);

	if (!v)
		return sigfs_seterr(err, -EINVAL, "the request has no \"%s\" in %s", key, where);
	if (!json_is_string(v))
		return sigfs_seterr(err, -EINVAL, "\"%s\" in the request's %s is not a string",
				    key, where);
	*out = json_string_value(v);
	return 0;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * "MAJOR.MINOR.PATCH", optionally with a semver pre-release or build suffix.
 * Only major 1 is understood: a later major may change what "required" means.
 */
static int check_version(const char *v, char *err)
{
	char q[SIGFS_QUOTE_LEN];
	const char *p = v;
	size_t major_len;

	for (int part = 0; part < 3; part++) {
		const char *start = p;

		while (is_digit(*p) && p - start < 9)
			p++;
		if (p == start || is_digit(*p) || (part < 2 && *p++ != '.'))
			return sigfs_seterr(err, -EINVAL, "the request's version \"%s\" is not "
					    "MAJOR.MINOR.PATCH", sigfs_quote(v, strlen(v), q));
	}
	if (*p && *p != '-' && *p != '+')
		return sigfs_seterr(err, -EINVAL, "the request's version \"%s\" is not "
				    "MAJOR.MINOR.PATCH", sigfs_quote(v, strlen(v), q));
	major_len = strspn(v, "0123456789");
	if (major_len != 1 || v[0] != '1')
		return sigfs_seterr(err, -EPROTONOSUPPORT, "the request has version \"%s\"; "
				    "this sigfsd understands version 1 only",
				    sigfs_quote(v, strlen(v), q));
	return 0;
}

/* The 208 numbers of a Signstar state into a resumable SHA-512 hasher. */
static int parse_state(json_t *input, struct sigfs_request *req, char *err)
{
	static const char *const keys[] = { "type", "content", NULL };
	uint8_t st[SIGFS_SHA512_STATE_LEN];
	json_t *content, *v;
	size_t n, i;
	int r;

	r = only_keys(input, keys, "input", err);
	if (r < 0)
		return r;
	content = json_object_get(input, "content");
	if (!content || !json_is_array(content))
		return sigfs_seterr(err, -EINVAL, "the request's input has no \"content\" array "
				    "of bytes");
	/* The length first: a huge array is refused without looking at its elements. */
	n = json_array_size(content);
	if (n == OLD_STATE_LEN)
		return sigfs_seterr(err, -EINVAL, "the request's SHA-512 state has %d bytes, the "
				    "layout of a pre-release of sha2 0.11, which sigfs does not "
				    "accept; make the request with a released Signstar client or "
				    "`sigfs request`", OLD_STATE_LEN);
	if (n != SIGFS_SHA512_STATE_LEN)
		return sigfs_seterr(err, -EINVAL, "the request's SHA-512 state has %zu bytes, "
				    "not %d; make the request with Signstar's client or "
				    "`sigfs request`", n, SIGFS_SHA512_STATE_LEN);
	json_array_foreach(content, i, v) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 255)
			return sigfs_seterr(err, -EINVAL, "byte %zu of the request's SHA-512 state "
					    "is not an integer from 0 to 255", i);
		st[i] = (uint8_t)json_integer_value(v);
	}
	r = sigfs_sha512_from_state(st, sizeof(st), &req->state, err);
	OPENSSL_cleanse(st, sizeof(st));
	return r;
}

/* {"type":"sigfs-digest-v1","algorithm":"sha256","digest":"<hex>"} */
static int parse_digest(json_t *input, struct sigfs_request *req, char *err)
{
	static const char *const keys[] = { "type", "algorithm", "digest", NULL };
	const char *alg = NULL, *hex = NULL;
	char q[SIGFS_QUOTE_LEN];
	size_t len, bad;
	int r;

	r = only_keys(input, keys, "input", err);
	if (r == 0)
		r = get_string(input, "algorithm", "input", &alg, err);
	if (r == 0)
		r = get_string(input, "digest", "input", &hex, err);
	if (r < 0)
		return r;
	req->digest = sigfs_digest_by_name(alg);
	if (!req->digest)
		return sigfs_seterr(err, -EPROTONOSUPPORT, "the request's digest algorithm \"%s\" "
				    "is not one sigfs knows (sha256, sha512, sha3-256 ...)",
				    sigfs_quote(alg, strlen(alg), q));
	len = json_string_length(json_object_get(input, "digest"));
	if (len != 2 * req->digest->len)
		return sigfs_seterr(err, -EINVAL, "the request's %s digest has %zu hex digits, "
				    "not %zu", req->digest->name, len, 2 * req->digest->len);
	if (sigfs_hex_decode(hex, req->digest_value, req->digest->len, &bad) < 0)
		return sigfs_seterr(err, -EINVAL, "the request's digest is not hexadecimal "
				    "(at digit %zu)", bad);
	return 0;
}

/* The names of all formats, for an error line. */
static void format_names(char *buf, size_t size)
{
	const struct sigfs_format *f;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; (f = sigfs_format_at(i)) && used < size; i++) {
		int n = snprintf(buf + used, size - used, "%s" OUR_OUTPUT_PREFIX "%s",
				 i ? ", " : "", f->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static int parse_output(json_t *output, struct sigfs_request *req, char *err)
{
	static const char *const keys[] = { "type", NULL };
	const char *type = NULL;
	char q[SIGFS_QUOTE_LEN], names[128];
	int r;

	r = only_keys(output, keys, "output", err);
	if (r == 0)
		r = get_string(output, "type", "output", &type, err);
	if (r < 0)
		return r;
	if (strcmp(type, SIGNSTAR_OUTPUT) == 0) {
		req->format = sigfs_format_by_name(SIGNSTAR_FORMAT);
		if (!req->format)
			return sigfs_seterr(err, -EPROTONOSUPPORT, "the request asks for output "
					    SIGNSTAR_OUTPUT ", but this sigfsd has no "
					    SIGNSTAR_FORMAT " format; ask for another output type");
		return 0;
	}
	if (strncmp(type, OUR_OUTPUT_PREFIX, strlen(OUR_OUTPUT_PREFIX)) == 0)
		req->format = sigfs_format_by_name(type + strlen(OUR_OUTPUT_PREFIX));
	if (!req->format) {
		format_names(names, sizeof(names));
		return sigfs_seterr(err, -EPROTONOSUPPORT, "the request's output type \"%s\" is "
				    "unknown; this sigfsd makes " SIGNSTAR_OUTPUT ", %s",
				    sigfs_quote(type, strlen(type), q), names);
	}
	return 0;
}

/*
 * Can format f sign a finished hash of kind d (for some key algorithm)? Not
 * when it hashes files with its own algorithm (minisign: BLAKE2b), whatever
 * the request carries. Which algorithm signs is the key's, checked later.
 */
static bool format_takes(const struct sigfs_format *f, const struct sigfs_digest *d)
{
	const struct sigfs_alg *alg;

	if (!f->file_md)
		return true;
	for (size_t i = 0; (alg = sigfs_alg_at(i)); i++) {
		const EVP_MD *md = f->file_md(alg, d);

		if (md && EVP_MD_is_a(md, d->ossl))
			return true;
	}
	return false;
}

/* "file-name" from "optional": kept when it is a plain name, else ignored like any hint. */
static void read_optional(json_t *optional, struct sigfs_request *req)
{
	json_t *v = json_object_get(optional, "file-name");
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= sizeof(req->file_name) || strlen(s) != n || strchr(s, '/'))
		return;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return;
	memcpy(req->file_name, s, n + 1);
}

static int parse_tree(json_t *root, struct sigfs_request *req, char *err)
{
	static const char *const top_keys[] = { "version", "required", "optional", NULL };
	static const char *const required_keys[] = { "input", "output", NULL };
	json_t *required = NULL, *input = NULL, *output = NULL, *optional;
	const struct sigfs_digest *signed_kind;
	const char *version = NULL, *type = NULL;
	char q[SIGFS_QUOTE_LEN];
	int r;

	r = only_keys(root, top_keys, "top level", err);
	if (r == 0)
		r = get_string(root, "version", "the top level", &version, err);
	if (r == 0)
		r = check_version(version, err);
	if (r == 0)
		r = get_object(root, "required", "the top level", &required, err);
	if (r == 0)
		r = only_keys(required, required_keys, "\"required\"", err);
	if (r == 0)
		r = get_object(required, "input", "\"required\"", &input, err);
	if (r == 0)
		r = get_object(required, "output", "\"required\"", &output, err);
	if (r == 0)
		r = get_string(input, "type", "input", &type, err);
	if (r < 0)
		return r;
	optional = json_object_get(root, "optional");
	if (optional && !json_is_object(optional))
		return sigfs_seterr(err, -EINVAL, "\"optional\" in the request is not an object");
	if (strcmp(type, STATE_TYPE) == 0)
		r = parse_state(input, req, err);
	else if (strcmp(type, DIGEST_TYPE) == 0)
		r = parse_digest(input, req, err);
	else
		r = sigfs_seterr(err, -EPROTONOSUPPORT, "the request's input type \"%s\" is "
				 "unknown; this sigfsd reads " STATE_TYPE " and " DIGEST_TYPE,
				 sigfs_quote(type, strlen(type), q));
	if (r == 0)
		r = parse_output(output, req, err);
	if (r < 0)
		return r;
	signed_kind = req->state ? sigfs_digest_by_ossl(req->state->name) : req->digest;
	if (!signed_kind || !format_takes(req->format, signed_kind))
		return sigfs_seterr(err, -EPROTONOSUPPORT, "the %s format cannot sign a %s hash "
				    "of the file (it hashes files its own way): copy the file "
				    "itself, or ask for another output type", req->format->name,
				    signed_kind ? signed_kind->name : req->state->name);
	if (optional)
		read_optional(optional, req);
	return 0;
}

int sigfs_request_parse(const uint8_t *json, size_t len, struct sigfs_request *out, char *err)
{
	json_error_t jerr;
	json_t *root;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > SIGFS_REQUEST_MAX)
		return sigfs_seterr(err, -EFBIG, "the request is larger than %d bytes",
				    SIGFS_REQUEST_MAX);
	/* No JSON_DECODE_ANY: the top level must be an object (checked below). */
	root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		char q[SIGFS_QUOTE_LEN];

		/* jansson's text quotes the offending token: keep its start, printable. */
		return sigfs_seterr(err, -EINVAL, "the request is not valid JSON (line %d, column "
				    "%d: %s); make it with `sigfs request` or Signstar's client",
				    jerr.line, jerr.column,
				    sigfs_quote(jerr.text, strlen(jerr.text), q));
	}
	if (!json_is_object(root))
		r = sigfs_seterr(err, -EINVAL, "the request is not a JSON object");
	else
		r = parse_tree(root, out, err);
	json_decref(root);
	if (r < 0)
		sigfs_request_free(out);
	return r;
}

void sigfs_request_free(struct sigfs_request *r)
{
	sigfs_hasher_free(r->state);
	OPENSSL_cleanse(r, sizeof(*r));
}
