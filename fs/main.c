/*
 * main.c: sigfsd, the sigfs daemon.
 *
 *   sigfsd [--config FILE] [--state-dir DIR] [--foreground] [-o OPT] MOUNTPOINT
 *   sigfsd --verify-audit FILE
 *
 * Loads the configuration, opens the audit log, the key store and the engine
 * (which finishes what the journal says was left), then serves the mount
 * until it is unmounted or the daemon gets SIGINT/SIGTERM/SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/safedir.h"
#include "fs/fuse_ops.h"
#include "signer/audit.h"
#include "signer/engine.h"
#include "signer/keys.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigfsd [--config FILE] [--state-dir DIR] [--foreground] [-o OPT] MOUNTPOINT\n"
		"       sigfsd --verify-audit FILE\n"
		"  -c, --config FILE     configuration (default " SIGFS_DEFAULT_CONFIG ")\n"
		"  -s, --state-dir DIR   where keys' settings, inboxes and the journal live\n"
		"  -f, --foreground      do not daemonize; log to stderr\n"
		"  -o OPT[,OPT...]       FUSE mount options\n"
		"  --verify-audit FILE   check the audit log's hash chain and exit\n");
}

static int verify_audit(const char *path)
{
	char err[SIGFS_ERRLEN];
	size_t lines;

	if (sigfs_audit_verify(path, &lines, err) < 0) {
		fprintf(stderr, "sigfsd: %s: %s\n", path, err);
		return 1;
	}
	printf("%s: %zu lines, chain intact\n", path, lines);
	return 0;
}

/*
 * Detach from the terminal before any thread starts (threads do not survive
 * fork). The parent waits until the child reports the mount ready (one zero
 * byte) or fails (the pipe closes), and exits 0 or 1 accordingly, so whoever
 * started sigfsd learns whether it is serving. Returns the pipe to report on.
 */
static int detach(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(p[1]);
		_exit(read(p[0], &c, 1) == 1 && c == 0 ? 0 : 1);
	}
	close(p[0]);
	setsid();
	if (chdir("/") < 0)
		log_warn("cannot change to /: %s", strerror(errno));
	return p[1];
}

/* Tell the waiting parent that the mount is ready; stop using its terminal. */
static void detached_ready(int fd)
{
	int null = open("/dev/null", O_RDWR);

	if (write(fd, "", 1) != 1)
		log_warn("cannot report readiness to the starting process");
	close(fd);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
}

/* A previous daemon that died leaves a dead mount ("Transport endpoint is not connected"). */
static void clear_dead_mount(const char *mnt)
{
	struct stat st;

	if (stat(mnt, &st) < 0 && errno == ENOTCONN) {
		log_warn("%s: a dead sigfs mount is in the way; unmounting it", mnt);
		umount2(mnt, MNT_DETACH);
	}
}

/*
 * Open the state directory by the path-safety rule (common/safedir.h), once,
 * and everything in it relative to that descriptor: the audit log, the key
 * store and the engine with its journal (the store and the journal keep their
 * own copies of the descriptor).
 */
static int open_state(const struct sigfs_config *cfg, struct sigfs_audit **audit,
		      struct sigfs_keys **ks, struct sigfs_engine **eng, char *err)
{
	int sfd, r;

	r = sigfs_safedir_open(cfg->state_dir, "state directory", &sfd, err);
	if (r < 0)
		return r;
	r = sigfs_audit_open(sfd, "audit.log", audit, err);
	if (r == 0)
		r = sigfs_keys_open(cfg, sfd, *audit, ks, err);
	if (r == 0)
		r = sigfs_engine_start(cfg, *ks, *audit, eng, err);
	close(sfd);
	return r;
}

struct options {
	const char *config, *state_dir, *mnt;
	bool foreground;
};

/* The FUSE mount options: ours, then every -o of the command line (argv[1..last)). */
static void mount_options(char **argv, int last, struct fuse_args *args)
{
	fuse_opt_add_arg(args, argv[0]);
	fuse_opt_add_arg(args, "-o");
	fuse_opt_add_arg(args, "default_permissions,allow_other,fsname=sigfs,subtype=sigfs");
	for (int i = 1; i < last; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < last) {
			fuse_opt_add_arg(args, "-o");
			fuse_opt_add_arg(args, argv[++i]);
		} else if (strncmp(argv[i], "-o", 2) == 0) {
			fuse_opt_add_arg(args, "-o");
			fuse_opt_add_arg(args, argv[i] + 2);
		}
	}
}

/*
 * Read the command line into o and args. -1 to go on and serve, or the exit
 * code of what it asked instead (help, version, --verify-audit, a usage error).
 */
static int parse_options(int argc, char **argv, struct options *o, struct fuse_args *args)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "verify-audit", required_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:s:fo:hv", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 'f': o->foreground = true; break;
		case 'o': break;        /* taken below, once the command line is known good */
		case 'V': return verify_audit(optarg);
		case 'h': usage(stdout); return 0;
		case 'v': printf("sigfsd " SIGFS_VERSION "\n"); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	o->mnt = argv[optind];
	mount_options(argv, optind, args);
	return -1;
}

/* Report ready and run the session's loop until unmount or a signal; 0, or 1 if it failed. */
static int run(struct fuse_session *se, const struct sigfs_config *cfg, const char *mnt,
	       int ready_fd)
{
	struct fuse_loop_config *loop;
	int r;

	log_info("serving %s (state in %s, %u workers)", mnt, cfg->state_dir, cfg->workers);
	if (ready_fd >= 0) {
		detached_ready(ready_fd);
		sigfs_log_init(true, (enum sigfs_log_level)cfg->log_level);
	}
	sd_notify(0, "READY=1");
	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 16);
	r = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	sd_notify(0, "STOPPING=1");
	return r < 0 ? 1 : 0;
}

/*
 * Mount fs on mnt and serve; then stop the engine and free fs. The exit
 * code, or -1 with err set when it could not mount.
 */
static int serve(const struct sigfs_config *cfg, struct sigfs_engine *eng, struct sigfs_fs *fs,
		 struct fuse_args *args, const char *mnt, int ready_fd, char *err)
{
	struct fuse_session *se;
	int r = -1;

	clear_dead_mount(mnt);
	se = fuse_session_new(args, &sigfs_fuse_ops, sizeof(sigfs_fuse_ops), fs);
	if (!se) {
		snprintf(err, SIGFS_ERRLEN, "bad FUSE options");
		sigfs_engine_stop(eng);
		sigfs_fs_free(fs);
		return -1;
	}
	sigfs_fs_set_session(fs, se);
	if (fuse_set_signal_handlers(se) < 0 || fuse_session_mount(se, mnt) < 0)
		snprintf(err, SIGFS_ERRLEN, "cannot mount on %s", mnt);
	else
		r = run(se, cfg, mnt, ready_fd);
	/*
	 * The engine stops while the session exists: a worker that finishes a
	 * job answers the close() waiting for it through the session, and so
	 * does the close() timer. Nothing is handed to the engine any more.
	 */
	sigfs_fs_stop(fs);
	sigfs_engine_stop(eng);
	sigfs_fs_free(fs);
	if (r >= 0)
		fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct sigfs_audit *audit = NULL;
	struct sigfs_engine *eng = NULL;
	struct sigfs_keys *ks = NULL;
	struct options o = { 0 };
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_config cfg;
	struct sigfs_fs *fs;
	int r, ready_fd = -1;

	r = parse_options(argc, argv, &o, &args);
	if (r >= 0)
		return r;
	sigfs_log_init(false, SIGFS_LOG_INFO);
	r = sigfs_config_load(o.config, &cfg, err);
	if (r < 0) {
		log_err("%s", err);
		fuse_opt_free_args(&args);
		return 1;
	}
	if (o.state_dir)
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", o.state_dir);
	sigfs_log_init(false, (enum sigfs_log_level)cfg.log_level);
	if (!o.foreground) {
		ready_fd = detach();
		if (ready_fd < 0) {
			snprintf(err, sizeof(err), "cannot detach: %s", strerror(errno));
			goto out_err;
		}
	}
	if (open_state(&cfg, &audit, &ks, &eng, err) < 0)
		goto out_err;
	r = sigfs_fs_new(&cfg, ks, eng, &fs);
	if (r < 0) {
		sigfs_seterr(err, r, "cannot start: %s", strerror(-r));
		goto out_err;
	}
	r = serve(&cfg, eng, fs, &args, o.mnt, ready_fd, err);
	sigfs_keys_close(ks);
	sigfs_audit_close(audit);
	/* err holds a message only when serve failed; calls that succeed may leave text there. */
	if (r < 0)
		log_err("%s", err);
	fuse_opt_free_args(&args);
	sigfs_config_free(&cfg);
	log_info("stopped");
	return r < 0 ? 1 : r;
out_err:
	log_err("%s", err);
	sigfs_engine_stop(eng);
	sigfs_keys_close(ks);
	sigfs_audit_close(audit);
	sigfs_config_free(&cfg);
	fuse_opt_free_args(&args);
	return 1;
}
