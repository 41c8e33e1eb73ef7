/*
 * fuzz_config.c: libFuzzer target for sigfs.conf (common/config.c, read with
 * iniparser): each input is a configuration file, loaded by
 * sigfs_config_load() from a memfd (/proc/self/fd/N), then every
 * [backend NAME] section is listed with sigfs_config_backend_at() and its
 * settings looked up through sigfs_config_backend() as the backends do, and
 * everything is freed (LeakSanitizer stays on).
 *
 * Besides ASan, UBSan and LeakSanitizer findings, it aborts when a loaded
 * configuration holds a value no setting allows (config.h's ranges), a
 * backend lookup breaks its contract, or a refused file lacks a one-line
 * error naming the file. Built by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"

/* Every setting a backend reads (the backends/ sources). */
static const char *const backend_keys[] = {
	"type", "dir", "key_cache", "module", "token_label", "pin_file", "url", "user",
	"password_file", "admin_user", "admin_password_file", "ca_file", "pinned_pubkey", "tags",
	"appliances", "client", "secret_file", "retry_seconds", "timeout_seconds",
};
/* More sections than a file of -max_len bytes can hold. */
#define MAX_BACKENDS 10000

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fd = memfd_create("sigfs.conf", MFD_CLOEXEC);
	if (fd < 0) {
		perror("fuzz_config: memfd_create");
		exit(1);
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	/* A missing admin_group is a warning per load; the run needs none of them. */
	sigfs_log_init(false, SIGFS_LOG_ERR);
	return 0;
}

static void check_backends(const struct sigfs_config *cfg)
{
	struct sigfs_backend_conf conf;
	const char *name;
	size_t i;

	for (i = 0; (name = sigfs_config_backend_at(cfg, i)) != NULL; i++) {
		if (!name[0] || i == MAX_BACKENDS)
			abort();
		sigfs_config_backend(cfg, name, &conf);
		if (conf.name != name || strcmp(conf.state_dir, cfg->state_dir) != 0 ||
		    conf.workers != cfg->workers || !conf.get)
			abort();
		for (size_t k = 0; k < sizeof(backend_keys) / sizeof(backend_keys[0]); k++) {
			if (!conf.get(&conf, backend_keys[k], "default"))
				abort();
		}
		if (conf.get(&conf, "no_such_key", NULL) != NULL)
			abort();
	}
	/* A name no section has: every lookup gives the default. */
	sigfs_config_backend(cfg, "no such backend", &conf);
	if (strcmp(conf.get(&conf, "type", "soft"), "soft") != 0)
		abort();
}

static void check_loaded(const struct sigfs_config *cfg)
{
	if (cfg->state_dir[0] != '/' || !memchr(cfg->state_dir, '\0', sizeof(cfg->state_dir)) ||
	    !memchr(cfg->admin_group, '\0', sizeof(cfg->admin_group)) ||
	    !memchr(cfg->inbox_group, '\0', sizeof(cfg->inbox_group)) ||
	    cfg->workers < 1 || cfg->workers > 1024 || cfg->close_timeout > 86400 ||
	    cfg->log_level < SIGFS_LOG_ERR || cfg->log_level > SIGFS_LOG_DEBUG ||
	    !cfg->default_algorithm || !cfg->default_digest ||
	    sigfs_digest_is_weak(cfg->default_digest) || !cfg->default_format[0] ||
	    !memchr(cfg->default_format, '\0', sizeof(cfg->default_format)) ||
	    !cfg->default_backend[0] ||
	    !memchr(cfg->default_backend, '\0', sizeof(cfg->default_backend)) ||
	    (cfg->inbox_mode & ~(mode_t)01777) != 0 || !cfg->ini)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_config cfg;

	if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
		perror("fuzz_config: writing the memfd");
		exit(1);
	}
	if (sigfs_config_load(path, &cfg, err) < 0) {
		if (!err[0] || strchr(err, '\n') || !strstr(err, path) || cfg.ini)
			abort();
		return 0;
	}
	check_loaded(&cfg);
	check_backends(&cfg);
	sigfs_config_free(&cfg);
	if (cfg.ini)
		abort();
	return 0;
}
