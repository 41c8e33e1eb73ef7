/*
 * clients.c: the appliance's clients file (clients.h): lines of NAME, key and
 * roles, read with the permission rule of every sigfs credential file. The
 * parser is pure (text in, entries out) so tests/unit/test_appliance_proto.c
 * runs it on every kind of line; keys are wiped wherever they were copied.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "appliance/clients.h"
#include "common/err.h"
#include "common/log.h"
#include "common/sbuf.h"

#define CLIENTS_MAX_BYTES (1 << 20)

/* The one table of roles: the word in the file, and what it lets a client do. */
static const struct {
	const char *word;
	unsigned role;
	const char *what;
} roles[] = {
	{ "sign", CLIENT_SIGN, "sign" },
	{ "manage", CLIENT_MANAGE, "manage keys" },
};
#define N_ROLES (sizeof(roles) / sizeof(roles[0]))

/* One comma-separated item; -EINVAL if it is not a role word. */
static int role_word(const char *s, size_t n, unsigned *role)
{
	for (size_t i = 0; i < N_ROLES; i++) {
		if (strlen(roles[i].word) == n && memcmp(roles[i].word, s, n) == 0) {
			*role = roles[i].role;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * The role bits of s (comma-separated role words) in *out; -EINVAL at the
 * first item that is not a role word, which *bad (if not NULL) then views.
 */
static int roles_of(struct sbuf s, unsigned *out, struct sbuf *bad)
{
	struct sbuf item;
	unsigned r = 0, one;
	bool last;

	do {
		last = sbuf_get_token(&s, ",", &item) < 0;
		if (last)
			sbuf_get_view(&s, sbuf_avail(&s), &item);
		if (role_word((const char *)sbuf_ptr(&item), sbuf_avail(&item), &one) < 0) {
			if (bad)
				*bad = item;
			return -EINVAL;
		}
		r |= one;
	} while (!last);
	*out = r;
	return 0;
}

int clients_roles(const char *s, unsigned *out)
{
	struct sbuf b;

	sbuf_view(&b, s, strlen(s));
	return roles_of(b, out, NULL);
}

const char *clients_role_word(unsigned r)
{
	for (size_t i = 0; i < N_ROLES; i++)
		if (roles[i].role == r)
			return roles[i].word;
	return "?";
}

const char *clients_role_what(unsigned r)
{
	for (size_t i = 0; i < N_ROLES; i++)
		if (roles[i].role == r)
			return roles[i].what;
	return "?";
}

/* A bad role item, escaped for a message (cut at 63 bytes). */
static const char *bad_role(const struct sbuf *item, char *out, size_t size)
{
	char cut[64];
	struct sbuf b = *item;
	size_t n = sbuf_avail(&b) < sizeof(cut) - 1 ? sbuf_avail(&b) : sizeof(cut) - 1;

	sbuf_get(&b, cut, n);
	cut[n] = '\0';
	return sigfs_escape(cut, out, size);
}

/* The next word of line (bytes other than " \t\r", after any of them); -ENOENT at its end. */
static int next_word(struct sbuf *line, struct sbuf *word)
{
	sbuf_get(line, NULL, sbuf_span(line, " \t\r"));
	if (sbuf_avail(line) == 0)
		return -ENOENT;
	if (sbuf_get_token(line, " \t\r", word) < 0)
		sbuf_get_view(line, sbuf_avail(line), word);
	return 0;
}

const struct client *clients_find(const struct client *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* Parse one non-comment line into c; v (n entries) are the lines before it. */
static int parse_line(const char *path, size_t lineno, struct sbuf line, const struct client *v,
		      size_t n, struct client *c, char *err)
{
	char name[sizeof(c->name)], esc[SIGFS_ESCAPED_MAX];
	struct sbuf nm = { 0 }, hex = { 0 }, rl = { 0 }, rest, bad;
	bool has_rl;

	next_word(&line, &nm);
	has_rl = next_word(&line, &hex) == 0 && next_word(&line, &rl) == 0;
	if (!proto_keyid_ok((const char *)sbuf_ptr(&nm), sbuf_avail(&nm)) ||
	    sbuf_avail(&hex) != 2 * PROTO_PSK_LEN || next_word(&line, &rest) == 0)
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: want NAME HEX [ROLES] "
				    "(a name of A-Z a-z 0-9 . _ -, 64 hex characters, and sign, "
				    "manage or sign,manage)", path, lineno);
	/* A key id: at most PROTO_MAX_KEYID bytes, so it fits. */
	name[sbuf_avail(&nm)] = '\0';
	sbuf_get(&nm, name, sbuf_avail(&nm));
	if (clients_find(v, n, name))
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: client %s appears "
				    "twice", path, lineno, name);
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (sbuf_get_hex(&hex, c->key, PROTO_PSK_LEN, NULL) < 0) {
		OPENSSL_cleanse(c, sizeof(*c));
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: the key must be 64 hex "
				    "characters", path, lineno);
	}
	c->roles = CLIENT_SIGN;
	c->roles_given = has_rl;
	if (has_rl && roles_of(rl, &c->roles, &bad) < 0) {
		OPENSSL_cleanse(c, sizeof(*c));
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: unknown role '%s' "
				    "(roles are sign and manage, comma-separated: sign,manage)", path,
				    lineno, bad_role(&bad, esc, sizeof(esc)));
	}
	return 0;
}

int clients_parse(const char *path, char *text, struct client **out, size_t *nout, char *err)
{
	struct client *v = NULL, *nv;
	size_t n = 0, lineno = 0;
	struct sbuf b, line;
	int r = 0;

	/* Line by line, blank lines counted; the text ends at its first NUL. */
	sbuf_view(&b, text, strlen(text));
	while (sbuf_get_line_or_rest(&b, &line) == 0) {
		lineno++;
		sbuf_get(&line, NULL, sbuf_span(&line, " \t\r"));
		if (sbuf_avail(&line) == 0 || *sbuf_ptr(&line) == '#')
			continue;
		/* Not realloc(): it could leave a copy of the keys behind unwiped. */
		nv = malloc((n + 1) * sizeof(*v));
		if (!nv) {
			r = sigfs_seterr(err, -ENOMEM, "clients file %s: out of memory", path);
			break;
		}
		if (n)
			memcpy(nv, v, n * sizeof(*v));
		clients_free(v, n);
		v = nv;
		r = parse_line(path, lineno, line, v, n, &v[n], err);
		if (r < 0)
			break;
		n++;
	}
	if (r < 0) {
		clients_free(v, n);
		return r;
	}
	*out = v;
	*nout = n;
	return 0;
}

int clients_load(const char *path, struct client **out, size_t *nout, char *err)
{
	struct stat st;
	char *text = NULL;
	ssize_t got = 0, rd;
	int fd, r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sigfs_seterr(err, -errno, "cannot open clients file %s: %s", path,
				    strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = sigfs_seterr(err, -EINVAL, "clients file %s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 0177)) {
		r = sigfs_seterr(err, -EPERM, "refusing clients file %s: it must be owned by uid %u "
				 "with mode 0600 or 0400 (it is uid %u, mode %04o); chown and chmod "
				 "0600 it", path, (unsigned)geteuid(), (unsigned)st.st_uid,
				 (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if (st.st_size > CLIENTS_MAX_BYTES) {
		r = sigfs_seterr(err, -EFBIG, "clients file %s is larger than %d bytes", path,
				 CLIENTS_MAX_BYTES);
		goto out;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		r = sigfs_seterr(err, -ENOMEM, "clients file %s: out of memory", path);
		goto out;
	}
	while (got < st.st_size && (rd = read(fd, text + got, (size_t)(st.st_size - got))) > 0)
		got += rd;
	text[got] = '\0';
	r = clients_parse(path, text, out, nout, err);
	OPENSSL_cleanse(text, (size_t)st.st_size + 1);
	free(text);
out:
	close(fd);
	return r;
}

void clients_free(struct client *v, size_t n)
{
	if (v)
		OPENSSL_cleanse(v, n * sizeof(*v));
	free(v);
}
