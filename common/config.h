/*
 * config.h: /etc/sigfs/sigfs.conf (INI, read with iniparser). Every setting
 * has a working default, so a missing file is not an error; etc/sigfs.conf
 * lists them all at their defaults. A bad value is an error that names the
 * setting and stops the daemon at start (never a silent fallback).
 */
#ifndef SIGFS_CONFIG_H
#define SIGFS_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#include "common/alg.h"

#define SIGFS_DEFAULT_CONFIG "/etc/sigfs/sigfs.conf"

struct sigfs_config {
	/* [sigfs] */
	char state_dir[4096];           /* state_dir = /var/lib/sigfs */
	char admin_group[64];           /* admin_group = sigfs-admin ("" or missing group: root only) */
	gid_t admin_gid;                /* resolved at load; 0 if the group does not exist */
	unsigned workers;               /* workers = 0 (0: one per CPU) */
	bool wait_on_close;             /* wait_on_close = yes */
	unsigned close_timeout;         /* close_timeout = 60 (seconds) */
	unsigned settle_ms;             /* settle_ms = 0 (0: sign at close; else when quiet that long) */
	bool allow_key_delete;          /* allow_key_delete = yes */
	bool fsync;                     /* fsync = no */
	int log_level;                  /* log_level = info (enum sigfs_log_level) */
	/* [keys]: defaults for keys created by mkdir */
	const struct sigfs_alg *default_algorithm;      /* algorithm = ecdsa-p256 */
	const struct sigfs_digest *default_digest;      /* digest = sha256 */
	char default_format[32];                         /* format = raw */
	enum sigfs_padding default_padding;              /* rsa_padding = pss */
	char default_backend[64];                        /* backend = soft */
	mode_t inbox_mode;              /* inbox_mode = 1770 */
	char inbox_group[64];           /* inbox_group = "" (empty: the admin group) */
	gid_t inbox_gid;                /* resolved */

	/* [spool] (docs/spool.md) */
	char spool_dir[4096];           /* dir = "" (empty: no spool; sigfsd --spool DIR sets it) */
	void *ini;                      /* the parsed dictionary (iniparser), for backends */
};

/*
 * Settings of one configured backend (backends/backend.h opens it with
 * them); values come from the config file.
 */
struct sigfs_backend_conf {
	const char *name;                   /* "soft" or the NAME of [backend NAME] */
	const char *state_dir;              /* the daemon's state directory */
	/* Look up a setting of this backend; returns def when unset. */
	const char *(*get)(const struct sigfs_backend_conf *c, const char *key, const char *def);
	const void *priv;                   /* for get() */
	unsigned workers;                   /* number of signer workers */
};

/*
 * Load path (NULL: SIGFS_DEFAULT_CONFIG). A missing file gives the defaults
 * only when path is NULL; an explicitly named file must exist.
 * Returns 0 or a negative errno with the reason in err.
 */
int sigfs_config_load(const char *path, struct sigfs_config *cfg, char *err);
void sigfs_config_free(struct sigfs_config *cfg);

/*
 * The one boolean rule of sigfs (sigfs.conf, .ctl attributes): yes/no,
 * true/false, on/off, 1/0, in any case. 0, or -EINVAL for anything else.
 */
int sigfs_parse_bool(const char *s, bool *out);

/* Fill conf for backend `name` (its settings are [backend NAME] in the file). */
void sigfs_config_backend(const struct sigfs_config *cfg, const char *name,
			  struct sigfs_backend_conf *conf);
/*
 * The NAME of the i-th [backend NAME] section, in file order (lower case, as
 * iniparser keeps section names); NULL past the last.
 */
const char *sigfs_config_backend_at(const struct sigfs_config *cfg, size_t i);

#endif
