/*
 * testlib.c: fixture helpers shared by the unit tests (see testlib.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "common/err.h"
#include "testlib.h"

struct sigfs_backend *t_be;

int t_mkdtemp(char *dir, size_t len, const char *tag)
{
	const char *base = getenv("SIGFS_TEST_TMP");

	snprintf(dir, len, "%s/%s-XXXXXX", base ? base : "/tmp", tag);
	return mkdtemp(dir) ? 0 : -1;
}

const char *t_conf_default(const struct sigfs_backend_conf *c, const char *key, const char *def)
{
	(void)c;
	(void)key;
	return def;
}

int t_soft_open(const char *state_dir)
{
	struct sigfs_backend_conf conf = { .name = "soft", .get = t_conf_default };
	char err[SIGFS_ERRLEN] = "";

	conf.state_dir = state_dir;
	if (sigfs_backend_type("soft")->open(&conf, &t_be, err) != 0) {
		fprintf(stderr, "open soft backend: %s\n", err);
		return -1;
	}
	return 0;
}

int t_soft_setup(char *dir, size_t len, const char *tag)
{
	if (t_mkdtemp(dir, len, tag) != 0)
		return -1;
	return t_soft_open(dir);
}

void t_soft_teardown(const char *dir)
{
	t_be->ops->close(t_be);
	t_run("rm -rf '%s'", dir);
}

int t_soft_sign(void *ctx, const struct sigfs_sign_input *in, uint8_t *sig, size_t *siglen,
		char *err)
{
	return t_be->ops->sign(t_be, ctx, in, sig, siglen, err);
}

int t_run(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	assert_true(st != -1 && WIFEXITED(st));
	return WEXITSTATUS(st);
}

void t_write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(p, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}
