/*
 * test_config.c: common/config.c: the documented defaults, the shipped
 * etc/sigfs.conf giving exactly those, every bad value refused with an error
 * naming its setting, and the settings of [backend NAME] sections.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <iniparser.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"

/* Not in config.h: the daemon only ever needs sigfs_config_load(). */
int sigfs_config_load_file(const char *path, bool missing_ok, struct sigfs_config *cfg,
			   char *err);

static char conf_path[512];

static void write_conf(const char *text)
{
	const char *dir = getenv("SIGFS_TEST_TMP");
	FILE *f;

	snprintf(conf_path, sizeof(conf_path), "%s/config-%d.conf", dir ? dir : "/tmp",
		 (int)getpid());
	f = fopen(conf_path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void missing_path(char *out, size_t len)
{
	const char *dir = getenv("SIGFS_TEST_TMP");

	snprintf(out, len, "%s/no-such-dir-%d/sigfs.conf", dir ? dir : "/tmp", (int)getpid());
}

static void assert_defaults(const struct sigfs_config *c)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_string_equal(c->state_dir, "/var/lib/sigfs");
	assert_string_equal(c->admin_group, "sigfs-admin");
	assert_int_equal(c->workers, cpus > 0 ? (unsigned)cpus : 1);
	assert_true(c->wait_on_close);
	assert_int_equal(c->close_timeout, 60);
	assert_int_equal(c->settle_ms, 0);
	assert_true(c->allow_key_delete);
	assert_false(c->fsync);
	assert_int_equal(c->log_level, SIGFS_LOG_INFO);
	assert_ptr_equal(c->default_algorithm, sigfs_alg_by_name("ecdsa-p256"));
	assert_ptr_equal(c->default_digest, sigfs_digest_by_name("sha256"));
	assert_string_equal(c->default_format, "raw");
	assert_int_equal(c->default_padding, SIGFS_PAD_PSS);
	assert_string_equal(c->default_backend, "soft");
	assert_int_equal(c->inbox_mode, 01770);
	assert_string_equal(c->inbox_group, "");
	assert_string_equal(c->spool_dir, "");
	/* The inbox group defaults to the admin group, however that resolved. */
	assert_int_equal(c->inbox_gid, c->admin_gid);
}

/* The fields of two configurations, without the dictionary pointer. */
static void assert_same(const struct sigfs_config *a, const struct sigfs_config *b)
{
	struct sigfs_config x = *a, y = *b;

	x.ini = y.ini = NULL;
	assert_memory_equal(&x, &y, sizeof(x));
}

static void test_missing_file_gives_defaults(void **state)
{
	struct sigfs_config c;
	char path[512], err[SIGFS_ERRLEN] = "";

	(void)state;
	missing_path(path, sizeof(path));
	assert_int_equal(sigfs_config_load_file(path, true, &c, err), 0);
	assert_defaults(&c);
	sigfs_config_free(&c);
}

static void test_explicit_missing_file_fails(void **state)
{
	struct sigfs_config c;
	char path[512], err[SIGFS_ERRLEN] = "";

	(void)state;
	missing_path(path, sizeof(path));
	assert_int_equal(sigfs_config_load(path, &c, err), -ENOENT);
	assert_non_null(strstr(err, path));
	assert_int_equal(sigfs_config_load_file(path, false, &c, err), -ENOENT);
}

static void test_null_path(void **state)
{
	struct sigfs_config c;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	/* Only meaningful where no system-wide file is installed. */
	if (access(SIGFS_DEFAULT_CONFIG, F_OK) == 0)
		skip();
	assert_int_equal(sigfs_config_load(NULL, &c, err), 0);
	assert_defaults(&c);
	sigfs_config_free(&c);
}

static void test_shipped_file_is_the_defaults(void **state)
{
	struct sigfs_config shipped, none;
	char path[PATH_MAX], missing[512], err[SIGFS_ERRLEN] = "";
	const char *tmp = getenv("SIGFS_TEST_TMP");
	const char *src = __FILE__;
	size_t len = strlen(src) - strlen("tests/unit/test_config.c");

	(void)state;
	/* Meson compiles with paths relative to the build root, the parent of SIGFS_TEST_TMP. */
	assert_non_null(tmp);
	if (src[0] == '/')
		snprintf(path, sizeof(path), "%.*setc/sigfs.conf", (int)len, src);
	else
		snprintf(path, sizeof(path), "%s/../%.*setc/sigfs.conf", tmp, (int)len, src);
	if (sigfs_config_load(path, &shipped, err) != 0)
		fail_msg("%s: %s", path, err);
	/* It must set something: a file of comments only would prove nothing. */
	assert_non_null(shipped.ini);
	assert_int_equal(iniparser_getsecnkeys(shipped.ini, "sigfs"), 9);
	assert_int_equal(iniparser_getsecnkeys(shipped.ini, "keys"), 7);
	assert_int_equal(iniparser_getsecnkeys(shipped.ini, "spool"), 1);
	missing_path(missing, sizeof(missing));
	assert_int_equal(sigfs_config_load_file(missing, true, &none, err), 0);
	assert_defaults(&shipped);
	assert_same(&shipped, &none);
	sigfs_config_free(&shipped);
	sigfs_config_free(&none);
}

static void test_every_setting_changed(void **state)
{
	struct sigfs_config c;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	write_conf("; a comment\n"
		   "# another\n"
		   "[sigfs]\n"
		   "state_dir = /srv/state\n"
		   "admin_group = sigfs-test-no-such-group\n"
		   "workers = 3 ; inline comments are fine\n"
		   "wait_on_close = no\n"
		   "close_timeout = 0\n"
		   "settle_ms = 600000\n"
		   "allow_key_delete = off\n"
		   "fsync = YES\n"
		   "log_level = debug\n"
		   "[Keys]\n"
		   "Algorithm = ed25519\n"
		   "digest = sha3-256\n"
		   "format = openpgp\n"
		   "rsa_padding = pkcs1\n"
		   "backend = hsm1\n"
		   "inbox_mode = 750\n"
		   "inbox_group = \"\"\n"
		   "[spool]\n"
		   "dir = /srv/spool\n");
	if (sigfs_config_load(conf_path, &c, err) != 0)
		fail_msg("%s", err);
	assert_string_equal(c.state_dir, "/srv/state");
	/* A group that does not exist means root only, and the name is kept. */
	assert_string_equal(c.admin_group, "sigfs-test-no-such-group");
	assert_int_equal(c.admin_gid, 0);
	assert_int_equal(c.workers, 3);
	assert_false(c.wait_on_close);
	assert_int_equal(c.close_timeout, 0);
	assert_int_equal(c.settle_ms, 600000);
	assert_false(c.allow_key_delete);
	assert_true(c.fsync);
	assert_int_equal(c.log_level, SIGFS_LOG_DEBUG);
	assert_string_equal(c.default_algorithm->name, "ed25519");
	assert_string_equal(c.default_digest->name, "sha3-256");
	assert_string_equal(c.default_format, "openpgp");
	assert_int_equal(c.default_padding, SIGFS_PAD_PKCS1);
	assert_string_equal(c.default_backend, "hsm1");
	assert_int_equal(c.inbox_mode, 0750);
	assert_int_equal(c.inbox_gid, 0);
	assert_string_equal(c.spool_dir, "/srv/spool");
	sigfs_config_free(&c);
}

static void test_groups_resolve(void **state)
{
	struct sigfs_config c;
	char err[SIGFS_ERRLEN] = "", text[256];
	struct group *g;
	char name[64] = "";
	gid_t gid = 0;

	(void)state;
	/* Any existing group other than root shows the lookup really happens. */
	setgrent();
	while ((g = getgrent()) != NULL) {
		if (g->gr_gid != 0 && strlen(g->gr_name) < sizeof(name)) {
			snprintf(name, sizeof(name), "%s", g->gr_name);
			gid = g->gr_gid;
			break;
		}
	}
	endgrent();
	if (!name[0])
		skip();
	snprintf(text, sizeof(text), "[sigfs]\nadmin_group = %s\n", name);
	write_conf(text);
	assert_int_equal(sigfs_config_load(conf_path, &c, err), 0);
	assert_int_equal(c.admin_gid, gid);
	assert_int_equal(c.inbox_gid, gid);
	sigfs_config_free(&c);

	snprintf(text, sizeof(text), "[sigfs]\nadmin_group =\n[keys]\ninbox_group = %s\n", name);
	write_conf(text);
	assert_int_equal(sigfs_config_load(conf_path, &c, err), 0);
	assert_string_equal(c.admin_group, "");
	assert_int_equal(c.admin_gid, 0);
	assert_int_equal(c.inbox_gid, gid);
	sigfs_config_free(&c);
}

static void test_booleans(void **state)
{
	static const struct {
		const char *text;
		bool want;
	} cases[] = {
		{ "yes", true }, { "no", false }, { "true", true }, { "false", false },
		{ "on", true }, { "off", false }, { "1", true }, { "0", false },
		{ "Yes", true }, { "NO", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sigfs_config c;
		char text[64], err[SIGFS_ERRLEN] = "";

		snprintf(text, sizeof(text), "[sigfs]\nfsync = %s\n", cases[i].text);
		write_conf(text);
		if (sigfs_config_load(conf_path, &c, err) != 0)
			fail_msg("%s: %s", cases[i].text, err);
		assert_int_equal(c.fsync, cases[i].want);
		sigfs_config_free(&c);
	}
	/* The same rule everywhere a boolean is read (.ctl attributes too). */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bool b = !cases[i].want;

		assert_int_equal(sigfs_parse_bool(cases[i].text, &b), 0);
		assert_int_equal(b, cases[i].want);
	}
	{
		bool b;

		assert_int_equal(sigfs_parse_bool("yess", &b), -EINVAL);
		assert_int_equal(sigfs_parse_bool("", &b), -EINVAL);
	}
}

static void test_bad_values(void **state)
{
	static const struct {
		const char *section, *key, *value;
	} cases[] = {
		{ "sigfs", "state_dir", "relative/path" },
		{ "sigfs", "state_dir", "" },
		{ "sigfs", "admin_group",
		  "a-group-name-that-is-far-too-long-for-any-system-to-have-it-at-all" },
		{ "sigfs", "workers", "many" },
		{ "sigfs", "workers", "-1" },
		{ "sigfs", "workers", "4x" },
		{ "sigfs", "workers", " " },
		{ "sigfs", "workers", "100000" },
		{ "sigfs", "workers", "99999999999999999999999" },
		{ "sigfs", "wait_on_close", "maybe" },
		{ "sigfs", "wait_on_close", "yess" },
		{ "sigfs", "wait_on_close", "" },
		{ "sigfs", "close_timeout", "1.5" },
		{ "sigfs", "close_timeout", "0x10" },
		{ "sigfs", "close_timeout", "86401" },
		{ "sigfs", "settle_ms", "600001" },
		{ "sigfs", "settle_ms", "-1" },
		{ "sigfs", "settle_ms", "1s" },
		{ "sigfs", "settle_ms", "" },
		{ "sigfs", "allow_key_delete", "2" },
		{ "sigfs", "fsync", "nope" },
		{ "sigfs", "log_level", "verbose" },
		{ "sigfs", "log_level", "INFO" },
		{ "keys", "algorithm", "rsa-1024" },
		{ "keys", "algorithm", "dsa" },
		{ "keys", "algorithm", "" },
		{ "keys", "digest", "md5" },
		{ "keys", "digest", "sha1" },
		{ "keys", "digest", "sha-256" },
		{ "keys", "format", "" },
		{ "keys", "format", "a-format-name-far-longer-than-32-chars" },
		{ "keys", "rsa_padding", "none" },
		{ "keys", "rsa_padding", "oaep" },
		{ "keys", "backend", "" },
		{ "keys", "inbox_mode", "0778" },
		{ "keys", "inbox_mode", "2770" },
		{ "keys", "inbox_mode", "4755" },
		{ "keys", "inbox_mode", "07770" },
		{ "keys", "inbox_mode", "011770" },
		{ "keys", "inbox_mode", "rwxrwx---" },
		{ "keys", "inbox_mode", "" },
		{ "keys", "inbox_mode", "-770" },
		{ "keys", "inbox_group",
		  "a-group-name-that-is-far-too-long-for-any-system-to-have-it-at-all" },
		{ "spool", "dir", "relative/spool" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sigfs_config c;
		char text[256], want[160], err[SIGFS_ERRLEN] = "";
		int r;

		snprintf(text, sizeof(text), "[%s]\n%s = %s\n", cases[i].section, cases[i].key,
			 cases[i].value);
		write_conf(text);
		r = sigfs_config_load(conf_path, &c, err);
		if (r != -EINVAL)
			fail_msg("[%s] %s = \"%s\": got %d, want -EINVAL", cases[i].section,
				 cases[i].key, cases[i].value, r);
		/* The error names the file, the section and the key, and stays one line. */
		snprintf(want, sizeof(want), "[%s] %s = ", cases[i].section, cases[i].key);
		if (!strstr(err, want) || !strstr(err, conf_path))
			fail_msg("err \"%s\" does not name \"%s\"", err, want);
		assert_null(strchr(err, '\n'));
		assert_null(c.ini);
	}
}

static void test_unknown_names(void **state)
{
	static const struct {
		const char *text, *err;
	} cases[] = {
		{ "[sigfs]\nstatedir = /x\n", "[sigfs] statedir: unknown setting" },
		{ "[sigfs]\nalgorithm = ed25519\n", "[sigfs] algorithm: unknown setting" },
		{ "[keys]\nalgo = ed25519\n", "[keys] algo: unknown setting" },
		{ "[keys]\nworkers = 2\n", "[keys] workers: unknown setting" },
		{ "[sigf]\nworkers = 2\n", "[sigf]: unknown section" },
		{ "[backend]\ntype = pkcs11\n", "[backend]: unknown section" },
		{ "workers = 2\n[sigfs]\n", "workers: a setting outside any section" },
		/* Found by fuzz_config: the empty section name crashed the check. */
		{ "[]\n", "[]: a section without a name" },
		{ "[]\nworkers = 2\n", "[]: a section without a name" },
		/* Found by fuzz_config in CI: a section named like a setting ("sigfs:workers")
		 * is a key with no value, and the setting read NULL. */
		{ "[sigfs:workers]\n", "[sigfs:workers]: a section name with ':'" },
		{ "[sigfs]\n[sigfs:state_dir]\n", "[sigfs:state_dir]: a section name with ':'" },
		{ "[backend x:y]\ntype = soft\n", "[backend x:y]: a section name with ':'" },
		{ "[sigfs]\nworkers\n", "syntax error" },
		{ "[sigfs\nworkers = 2\n", "syntax error" },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sigfs_config c;
		char err[SIGFS_ERRLEN] = "";

		write_conf(cases[i].text);
		assert_int_equal(sigfs_config_load(conf_path, &c, err), -EINVAL);
		if (!strstr(err, cases[i].err) || !strstr(err, conf_path))
			fail_msg("err \"%s\" lacks \"%s\"", err, cases[i].err);
		assert_null(strchr(err, '\n'));
	}
}

static void test_backend_sections(void **state)
{
	struct sigfs_config c;
	struct sigfs_backend_conf b;
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	write_conf("[sigfs]\nstate_dir = /srv/s\nworkers = 5\n"
		   "[keys]\nbackend = HSM1\n"
		   "[backend HSM1]\nType = pkcs11\nmodule = /usr/lib/softhsm/libsofthsm2.so\n"
		   "pin_file = /etc/sigfs/hsm1.pin\nanything_goes = 1\n"
		   "[backend lab]\ntype = appliance\n");
	if (sigfs_config_load(conf_path, &c, err) != 0)
		fail_msg("%s", err);
	sigfs_config_backend(&c, "HSM1", &b);
	assert_string_equal(b.name, "HSM1");
	assert_string_equal(b.state_dir, "/srv/s");
	assert_int_equal(b.workers, 5);
	assert_string_equal(b.get(&b, "type", NULL), "pkcs11");
	assert_string_equal(b.get(&b, "module", NULL), "/usr/lib/softhsm/libsofthsm2.so");
	assert_string_equal(b.get(&b, "pin_file", "x"), "/etc/sigfs/hsm1.pin");
	assert_string_equal(b.get(&b, "url", "dflt"), "dflt");
	assert_null(b.get(&b, "url", NULL));
	sigfs_config_backend(&c, "lab", &b);
	assert_string_equal(b.get(&b, "type", NULL), "appliance");
	assert_null(b.get(&b, "module", NULL));
	/* A backend with no section gets only defaults. */
	sigfs_config_backend(&c, "soft", &b);
	assert_string_equal(b.get(&b, "type", "soft"), "soft");
	sigfs_config_free(&c);
	assert_null(c.ini);
}

static void test_backend_without_file(void **state)
{
	struct sigfs_config c;
	struct sigfs_backend_conf b;
	char path[512], err[SIGFS_ERRLEN] = "";

	(void)state;
	missing_path(path, sizeof(path));
	assert_int_equal(sigfs_config_load_file(path, true, &c, err), 0);
	sigfs_config_backend(&c, "soft", &b);
	assert_string_equal(b.state_dir, "/var/lib/sigfs");
	assert_true(b.workers >= 1);
	assert_int_equal(b.workers, c.workers);
	assert_string_equal(b.get(&b, "keys_dir", "keys"), "keys");
	sigfs_config_free(&c);
}

static int teardown(void **state)
{
	(void)state;
	if (conf_path[0])
		unlink(conf_path);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_file_gives_defaults),
		cmocka_unit_test(test_explicit_missing_file_fails),
		cmocka_unit_test(test_null_path),
		cmocka_unit_test(test_shipped_file_is_the_defaults),
		cmocka_unit_test(test_every_setting_changed),
		cmocka_unit_test(test_groups_resolve),
		cmocka_unit_test(test_booleans),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_unknown_names),
		cmocka_unit_test(test_backend_sections),
		cmocka_unit_test(test_backend_without_file),
	};

	/* A group that is looked up but missing is worth a warning, not test noise. */
	sigfs_log_init(false, SIGFS_LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, teardown);
}
