/* log.c: one line per event, to stderr or syslog (see log.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "common/hex.h"
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

/* Byte c as it appears in a message: itself, or \xHH; the length written to out. */
static size_t escape_byte(unsigned char c, char out[4])
{
	char h[3];

	if (c >= 0x20 && c < 0x7f && c != '\\') {
		out[0] = (char)c;
		return 1;
	}
	sigfs_hex_encode(&c, 1, h);
	out[0] = '\\';
	out[1] = 'x';
	out[2] = h[0];
	out[3] = h[1];
	return 4;
}

const char *sigfs_escape(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	if (outlen == 0)
		return out;
	for (; *s && o + 5 <= outlen; s++)
		o += escape_byte((unsigned char)*s, out + o);
	out[o] = '\0';
	return out;
}

const char *sigfs_quote(const void *p, size_t len, char out[SIGFS_QUOTE_LEN])
{
	const unsigned char *b = p;
	size_t o = 0, n = len < SIGFS_QUOTE_MAX ? len : SIGFS_QUOTE_MAX;

	for (size_t i = 0; i < n; i++)
		o += escape_byte(b[i], out + o);
	if (n < len) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}
