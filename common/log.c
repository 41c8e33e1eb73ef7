/* log.c: one line per event, to stderr or syslog (see log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "common/log.h"

static bool use_syslog;
static enum sigfs_log_level max_level = SIGFS_LOG_INFO;

static const char *const level_names[] = { "error", "warning", "info", "debug" };
static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

void sigfs_log_init(bool syslog_on, enum sigfs_log_level level)
{
	use_syslog = syslog_on;
	max_level = level;
	if (use_syslog)
		openlog("sigfsd", LOG_PID, LOG_DAEMON);
}

int sigfs_log_level_parse(const char *s, enum sigfs_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum sigfs_log_level)i;
			return 0;
		}
	}
	return -EINVAL;
}

void sigfs_log(enum sigfs_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (level > max_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(syslog_prio[level], "%s", line);
	else
		fprintf(stderr, "sigfsd: %s: %s\n", level_names[level], line);
}

const char *sigfs_escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (; *s && o + 5 <= outlen; s++) {
		unsigned char c = (unsigned char)*s;

		if (c < 0x20 || c >= 0x7f || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
	return out;
}
