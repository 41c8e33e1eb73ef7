/*
 * config.c: read sigfs.conf (config.h, docs/configuration.md). Each setting
 * is one row of a table: its section, key, default and parser. The defaults
 * are applied by parsing the default strings with the same parsers, so the
 * defaults, the shipped etc/sigfs.conf and the file format cannot drift apart.
 * Unknown sections and keys are errors, so that a typo never silently leaves
 * a setting at its default.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <iniparser.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"

#define MAX_WORKERS 1024
#define MAX_CLOSE_TIMEOUT 86400
#define MAX_SETTLE_MS 600000
#define BACKEND_SECTION "backend "

struct setting {
	const char *section;
	const char *key;
	const char *def;
	/* Parse s into cfg; on a bad value return -EINVAL with what is allowed in why. */
	int (*parse)(struct sigfs_config *cfg, const char *s, char *why);
};

int sigfs_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_bool(const char *s, bool *out, char *why)
{
	if (sigfs_parse_bool(s, out) < 0)
		return sigfs_seterr(why, -EINVAL, "not a boolean (yes or no)");
	return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out, char *why)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return sigfs_seterr(why, -EINVAL, "not a number");
	errno = 0;
	v = strtoul(s, &end, 10);
	if (*end != '\0')
		return sigfs_seterr(why, -EINVAL, "not a number");
	if (errno == ERANGE || v > max)
		return sigfs_seterr(why, -EINVAL, "larger than %u", max);
	*out = (unsigned)v;
	return 0;
}

static int copy_str(char *dst, size_t dstlen, const char *s, bool empty_ok, char *why)
{
	size_t n = strlen(s);

	if (n == 0 && !empty_ok)
		return sigfs_seterr(why, -EINVAL, "must not be empty");
	if (n >= dstlen)
		return sigfs_seterr(why, -EINVAL, "longer than %zu characters", dstlen - 1);
	memcpy(dst, s, n + 1);
	return 0;
}

static int set_state_dir(struct sigfs_config *cfg, const char *s, char *why)
{
	/* The daemon changes directory and forks; a relative path would move. */
	if (s[0] != '/')
		return sigfs_seterr(why, -EINVAL, "not an absolute path");
	return copy_str(cfg->state_dir, sizeof(cfg->state_dir), s, false, why);
}

static int set_spool_dir(struct sigfs_config *cfg, const char *s, char *why)
{
	/* Empty: no spool. Absolute like state_dir: the daemon changes directory. */
	if (s[0] != '\0' && s[0] != '/')
		return sigfs_seterr(why, -EINVAL, "not an absolute path");
	return copy_str(cfg->spool_dir, sizeof(cfg->spool_dir), s, true, why);
}

static int set_admin_group(struct sigfs_config *cfg, const char *s, char *why)
{
	return copy_str(cfg->admin_group, sizeof(cfg->admin_group), s, true, why);
}

static int set_workers(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_uint(s, MAX_WORKERS, &cfg->workers, why);
}

static int set_wait_on_close(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_bool(s, &cfg->wait_on_close, why);
}

static int set_close_timeout(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_uint(s, MAX_CLOSE_TIMEOUT, &cfg->close_timeout, why);
}

static int set_settle_ms(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_uint(s, MAX_SETTLE_MS, &cfg->settle_ms, why);
}

static int set_allow_key_delete(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_bool(s, &cfg->allow_key_delete, why);
}

static int set_fsync(struct sigfs_config *cfg, const char *s, char *why)
{
	return parse_bool(s, &cfg->fsync, why);
}

static int set_log_level(struct sigfs_config *cfg, const char *s, char *why)
{
	enum sigfs_log_level level;

	if (sigfs_log_level_parse(s, &level) < 0)
		return sigfs_seterr(why, -EINVAL, "not one of error, warning, info, debug");
	cfg->log_level = level;
	return 0;
}

static int set_algorithm(struct sigfs_config *cfg, const char *s, char *why)
{
	const struct sigfs_alg *a = sigfs_alg_by_name(s);
	char list[SIGFS_ERRLEN] = "";

	if (a) {
		cfg->default_algorithm = a;
		return 0;
	}
	for (size_t i = 0; (a = sigfs_alg_at(i)) != NULL; i++) {
		size_t o = strlen(list);

		snprintf(list + o, sizeof(list) - o, "%s%s", i ? " " : "", a->name);
	}
	return sigfs_seterr(why, -EINVAL, "unknown algorithm (one of: %s)", list);
}

static int set_digest(struct sigfs_config *cfg, const char *s, char *why)
{
	const struct sigfs_digest *d = sigfs_digest_by_name(s);
	char list[SIGFS_ERRLEN] = "";

	if (d && sigfs_digest_is_weak(d))
		return sigfs_seterr(why, -EINVAL,
				    "too weak as the default; sha1 can only be allowed per key");
	if (d) {
		cfg->default_digest = d;
		return 0;
	}
	for (size_t i = 0; (d = sigfs_digest_at(i)) != NULL; i++) {
		size_t o = strlen(list);

		if (!sigfs_digest_is_weak(d))
			snprintf(list + o, sizeof(list) - o, "%s%s", o ? " " : "", d->name);
	}
	return sigfs_seterr(why, -EINVAL, "unknown digest (one of: %s)", list);
}

static int set_format(struct sigfs_config *cfg, const char *s, char *why)
{
	/* Which formats exist is the format table's business (signer/format.c). */
	return copy_str(cfg->default_format, sizeof(cfg->default_format), s, false, why);
}

static int set_padding(struct sigfs_config *cfg, const char *s, char *why)
{
	if (sigfs_padding_parse(s, &cfg->default_padding) < 0)
		return sigfs_seterr(why, -EINVAL, "not pss or pkcs1");
	return 0;
}

static int set_backend(struct sigfs_config *cfg, const char *s, char *why)
{
	return copy_str(cfg->default_backend, sizeof(cfg->default_backend), s, false, why);
}

static int set_inbox_mode(struct sigfs_config *cfg, const char *s, char *why)
{
	unsigned long v;

	if (*s == '\0' || strlen(s) > 5 || strspn(s, "01234567") != strlen(s))
		return sigfs_seterr(why, -EINVAL, "not an octal mode like 1770");
	v = strtoul(s, NULL, 8);
	/*
	 * The sticky bit is what keeps members of a shared inbox from removing or
	 * replacing each other's files and signatures; setuid and setgid make no
	 * sense on an inbox.
	 */
	if (v & ~(mode_t)01777)
		return sigfs_seterr(why, -EINVAL, "only permission bits and the sticky bit "
				    "(at most 1777)");
	cfg->inbox_mode = (mode_t)v;
	return 0;
}

static int set_inbox_group(struct sigfs_config *cfg, const char *s, char *why)
{
	return copy_str(cfg->inbox_group, sizeof(cfg->inbox_group), s, true, why);
}

/* The one list of settings; etc/sigfs.conf and docs/configuration.md mirror it. */
static const struct setting settings[] = {
	{ "sigfs", "state_dir", "/var/lib/sigfs", set_state_dir },
	{ "sigfs", "admin_group", "sigfs-admin", set_admin_group },
	{ "sigfs", "workers", "0", set_workers },
	{ "sigfs", "wait_on_close", "yes", set_wait_on_close },
	{ "sigfs", "close_timeout", "60", set_close_timeout },
	{ "sigfs", "settle_ms", "0", set_settle_ms },
	{ "sigfs", "allow_key_delete", "yes", set_allow_key_delete },
	{ "sigfs", "fsync", "no", set_fsync },
	{ "sigfs", "log_level", "info", set_log_level },
	{ "keys", "algorithm", "ecdsa-p256", set_algorithm },
	{ "keys", "digest", "sha256", set_digest },
	{ "keys", "format", "raw", set_format },
	{ "keys", "rsa_padding", "pss", set_padding },
	{ "keys", "backend", "soft", set_backend },
	{ "keys", "inbox_mode", "1770", set_inbox_mode },
	{ "keys", "inbox_group", "", set_inbox_group },
	{ "spool", "dir", "", set_spool_dir },
};
#define N_SETTINGS (sizeof(settings) / sizeof(settings[0]))

/*
 * iniparser reports syntax errors through a callback only; keep the first
 * one for err. Loading happens once, at start, before any thread exists.
 */
static char ini_error[SIGFS_ERRLEN];

static int ini_error_cb(const char *fmt, ...)
{
	va_list ap;

	if (ini_error[0])
		return 0;
	va_start(ap, fmt);
	vsnprintf(ini_error, sizeof(ini_error), fmt, ap);
	va_end(ap);
	/* Its messages end in a newline; sigfs_seterr() turns the inner ones into spaces. */
	for (size_t n = strlen(ini_error); n > 0 && isspace((unsigned char)ini_error[n - 1]); n--)
		ini_error[n - 1] = '\0';
	return 0;
}

/* Reject what no code would read: unknown sections, unknown keys, keys outside a section. */
static int check_names(const dictionary *ini, const char *path, char *err)
{
	for (ssize_t i = 0; i < ini->size; i++) {
		const char *k = ini->key[i], *colon;
		size_t seclen;
		bool known = false;

		if (!k)
			continue;
		colon = strchr(k, ':');
		/* iniparser keeps a section as a key without a value and joins section and
		 * setting with ':', so "[sigfs:workers]" would read as a setting with no value. */
		if (!ini->val[i] && colon)
			return sigfs_seterr(err, -EINVAL, "%s: [%s]: a section name with ':'", path,
					    k);
		seclen = colon ? (size_t)(colon - k) : strlen(k);
		if (seclen > strlen(BACKEND_SECTION) &&
		    strncmp(k, BACKEND_SECTION, strlen(BACKEND_SECTION)) == 0)
			continue;
		if (seclen == 0 && !colon)
			return sigfs_seterr(err, -EINVAL, "%s: []: a section without a name", path);
		if (seclen == 0)
			return sigfs_seterr(err, -EINVAL, "%s: %s: a setting outside any section",
					    path, colon + 1);
		for (size_t j = 0; j < N_SETTINGS && !known; j++) {
			if (strlen(settings[j].section) != seclen ||
			    strncmp(settings[j].section, k, seclen) != 0)
				continue;
			known = !colon || strcmp(settings[j].key, colon + 1) == 0;
		}
		if (known)
			continue;
		if (!colon)
			return sigfs_seterr(err, -EINVAL,
					    "%s: [%s]: unknown section (known: [sigfs], [keys], [backend NAME])",
					    path, k);
		return sigfs_seterr(err, -EINVAL, "%s: [%.*s] %s: unknown setting", path,
				    (int)seclen, k, colon + 1);
	}
	return 0;
}

/* A group that does not exist gives gid 0: only root then has the rights. */
static gid_t resolve_group(const char *name, const char *what)
{
	struct group gr, *res = NULL;
	size_t len = 1024;
	gid_t gid = 0;
	char *buf;
	int r;

	if (!*name)
		return 0;
	for (;;) {
		buf = malloc(len);
		if (!buf)
			break;
		r = getgrnam_r(name, &gr, buf, len, &res);
		if (r != ERANGE)
			break;
		free(buf);
		len *= 2;
	}
	if (res)
		gid = res->gr_gid;
	else
		log_warn("%s group %s not found: only root has its rights", what, name);
	free(buf);
	return gid;
}

/*
 * Load path into cfg. A missing file gives the defaults when missing_ok,
 * else it is an error. sigfs_config_load() is this with missing_ok = !path;
 * tests call it directly (they cannot rely on /etc/sigfs/sigfs.conf).
 */
int sigfs_config_load_file(const char *path, bool missing_ok, struct sigfs_config *cfg,
			   char *err);

int sigfs_config_load_file(const char *path, bool missing_ok, struct sigfs_config *cfg,
			   char *err)
{
	char why[SIGFS_ERRLEN];
	dictionary *ini = NULL;
	long cpus;
	FILE *f;
	int r;

	memset(cfg, 0, sizeof(*cfg));
	f = fopen(path, "re");
	if (f) {
		fclose(f);
		ini_error[0] = '\0';
		iniparser_set_error_callback(ini_error_cb);
		ini = iniparser_load(path);
		iniparser_set_error_callback(NULL);
		/* iniparser's message names the file and the line. */
		if (!ini && ini_error[0])
			return sigfs_seterr(err, -EINVAL, "%s", ini_error);
		if (!ini)
			return sigfs_seterr(err, -ENOMEM, "%s: out of memory while reading it", path);
		r = check_names(ini, path, err);
		if (r < 0)
			goto fail;
	} else if (errno != ENOENT || !missing_ok) {
		return sigfs_seterr(err, -errno, "cannot read the configuration %s: %s", path,
				    strerror(errno));
	}

	for (size_t i = 0; i < N_SETTINGS; i++) {
		const struct setting *s = &settings[i];
		char key[128];
		const char *v;

		snprintf(key, sizeof(key), "%s:%s", s->section, s->key);
		v = iniparser_getstring(ini, key, s->def);
		r = s->parse(cfg, v, why);
		if (r < 0) {
			sigfs_seterr(err, r, "%s: [%s] %s = %s: %s", path, s->section, s->key, v,
				     why);
			goto fail;
		}
	}

	if (cfg->workers == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg->workers = cpus > 0 ? (cpus > MAX_WORKERS ? MAX_WORKERS : (unsigned)cpus) : 1;
	}
	cfg->admin_gid = resolve_group(cfg->admin_group, "admin");
	if (cfg->inbox_group[0])
		cfg->inbox_gid = resolve_group(cfg->inbox_group, "inbox");
	else
		cfg->inbox_gid = cfg->admin_gid;
	cfg->ini = ini;
	return 0;
fail:
	iniparser_freedict(ini);
	return r;
}

int sigfs_config_load(const char *path, struct sigfs_config *cfg, char *err)
{
	return sigfs_config_load_file(path ? path : SIGFS_DEFAULT_CONFIG, !path, cfg, err);
}

void sigfs_config_free(struct sigfs_config *cfg)
{
	if (cfg->ini)
		iniparser_freedict(cfg->ini);
	cfg->ini = NULL;
}

static const char *backend_get(const struct sigfs_backend_conf *c, const char *key,
			       const char *def)
{
	const struct sigfs_config *cfg = c->priv;
	char k[1024];

	/* iniparser lowercases section and key names; getstring does the same to k. */
	if (snprintf(k, sizeof(k), BACKEND_SECTION "%s:%s", c->name, key) >= (int)sizeof(k))
		return def;
	return iniparser_getstring(cfg->ini, k, def);
}

void sigfs_config_backend(const struct sigfs_config *cfg, const char *name,
			  struct sigfs_backend_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->name = name;
	conf->state_dir = cfg->state_dir;
	conf->get = backend_get;
	conf->priv = cfg;
	conf->workers = cfg->workers;
}

const char *sigfs_config_backend_at(const struct sigfs_config *cfg, size_t i)
{
	int nsec = cfg->ini ? iniparser_getnsec(cfg->ini) : 0;

	for (int k = 0; k < nsec; k++) {
		const char *sec = iniparser_getsecname(cfg->ini, k);

		if (sec && strlen(sec) > strlen(BACKEND_SECTION) &&
		    strncmp(sec, BACKEND_SECTION, strlen(BACKEND_SECTION)) == 0 && i-- == 0)
			return sec + strlen(BACKEND_SECTION);
	}
	return NULL;
}
