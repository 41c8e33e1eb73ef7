/*
 * Logging: one line per event, to stderr in the foreground (systemd's journal
 * picks it up) or to syslog when daemonized. Names from users are escaped with
 * sigfs_escape() before they reach a log line, so a newline in a file name
 * cannot forge a log entry. Secrets are never passed here.
 */
#ifndef SIGFS_LOG_H
#define SIGFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum sigfs_log_level { SIGFS_LOG_ERR = 0, SIGFS_LOG_WARN, SIGFS_LOG_INFO, SIGFS_LOG_DEBUG };

/* use_syslog: log to syslog instead of stderr. level: most verbose level shown. */
void sigfs_log_init(bool use_syslog, enum sigfs_log_level level);
/* Parse "error", "warning", "info", "debug"; return 0 or -EINVAL. */
int sigfs_log_level_parse(const char *s, enum sigfs_log_level *out);
void sigfs_log(enum sigfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) sigfs_log(SIGFS_LOG_ERR, __VA_ARGS__)
#define log_warn(...) sigfs_log(SIGFS_LOG_WARN, __VA_ARGS__)
#define log_info(...) sigfs_log(SIGFS_LOG_INFO, __VA_ARGS__)
#define log_debug(...) sigfs_log(SIGFS_LOG_DEBUG, __VA_ARGS__)

/*
 * Copy `s` into out (outlen bytes, always NUL-terminated), replacing control
 * characters, backslash and non-ASCII bytes by \xHH. Returns out.
 */
const char *sigfs_escape(const char *s, char *out, size_t outlen);
#define SIGFS_ESCAPED_MAX (255 * 4 + 1)

/*
 * The one quoting rule for untrusted text in a message (NAME.err, a log
 * line): the first SIGFS_QUOTE_MAX of the len bytes at p, escaped as
 * sigfs_escape does (a NUL too), and "..." when some were left out.
 * Returns out, which holds SIGFS_QUOTE_LEN bytes.
 */
#define SIGFS_QUOTE_MAX 64
#define SIGFS_QUOTE_LEN (SIGFS_QUOTE_MAX * 4 + 4)
const char *sigfs_quote(const void *p, size_t len, char out[SIGFS_QUOTE_LEN]);

#endif
