/* err.c: the one-line error messages of common/err.h. */
#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"

int sigfs_seterr(char *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	vsnprintf(err, SIGFS_ERRLEN, fmt, ap);
	va_end(ap);
	for (char *p = err; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return code;
}
