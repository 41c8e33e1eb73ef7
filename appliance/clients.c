/*
 * clients.c: the appliance's clients file (clients.h): lines of NAME, key and
 * roles, read with the permission rule of every sigfs credential file. The
 * parser is pure (text in, entries out) so tests/unit/test_appliance_proto.c
 * runs it on every kind of line; keys are wiped wherever they were copied.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "appliance/clients.h"
#include "common/err.h"
#include "common/log.h"

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

int clients_roles(const char *s, unsigned *out)
{
	unsigned r = 0, one;
	const char *end;

	for (;;) {
		end = strchr(s, ',');
		if (role_word(s, end ? (size_t)(end - s) : strlen(s), &one) < 0)
			return -EINVAL;
		r |= one;
		if (!end)
			break;
		s = end + 1;
	}
	*out = r;
	return 0;
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

/* The first item of s that is not a role word, escaped for a message. */
static const char *bad_role(const char *s, char *out, size_t size)
{
	char item[64];
	unsigned one;
	size_t n;

	for (;;) {
		n = strcspn(s, ",");
		if (role_word(s, n, &one) < 0 || !s[n])
			break;
		s += n + 1;
	}
	snprintf(item, sizeof(item), "%.*s", (int)(n < sizeof(item) - 1 ? n : sizeof(item) - 1), s);
	return sigfs_escape(item, out, size);
}

const struct client *clients_find(const struct client *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return &v[i];
	return NULL;
}

/* Parse one non-comment line into c; v (n entries) are the lines before it. */
static int parse_line(const char *path, size_t lineno, char *line, const struct client *v,
		      size_t n, struct client *c, char *err)
{
	char *name, *hex, *rl, *rest, *save = NULL, esc[SIGFS_ESCAPED_MAX];
	size_t keylen;

	name = strtok_r(line, " \t\r", &save);
	hex = strtok_r(NULL, " \t\r", &save);
	rl = strtok_r(NULL, " \t\r", &save);
	rest = strtok_r(NULL, " \t\r", &save);
	if (!proto_keyid_ok(name, strlen(name)) || !hex || rest || strlen(hex) != 64)
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: want NAME HEX [ROLES] "
				    "(a name of A-Z a-z 0-9 . _ -, 64 hex characters, and sign, "
				    "manage or sign,manage)", path, lineno);
	if (clients_find(v, n, name))
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: client %s appears "
				    "twice", path, lineno, name);
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), "%s", name);
	if (OPENSSL_hexstr2buf_ex(c->key, PROTO_PSK_LEN, &keylen, hex, '\0') != 1 ||
	    keylen != PROTO_PSK_LEN) {
		ERR_clear_error();
		OPENSSL_cleanse(c, sizeof(*c));
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: the key must be 64 hex "
				    "characters", path, lineno);
	}
	c->roles = CLIENT_SIGN;
	c->roles_given = rl != NULL;
	if (rl && clients_roles(rl, &c->roles) < 0) {
		OPENSSL_cleanse(c, sizeof(*c));
		return sigfs_seterr(err, -EINVAL, "clients file %s, line %zu: unknown role '%s' "
				    "(roles are sign and manage, comma-separated: sign,manage)", path,
				    lineno, bad_role(rl, esc, sizeof(esc)));
	}
	return 0;
}

int clients_parse(const char *path, char *text, struct client **out, size_t *nout, char *err)
{
	struct client *v = NULL, *nv;
	size_t n = 0, lineno = 0;
	char *line = text, *next, *first;
	int r = 0;

	/* Line by line (not strtok on "\n", which would skip blank lines in the count). */
	for (; line && *line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		first = line + strspn(line, " \t\r");
		if (!*first || *first == '#')
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
		r = parse_line(path, lineno, first, v, n, &v[n], err);
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
