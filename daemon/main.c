/*
 * main.c: sigfsd, the sigfs daemon.
 *
 *   sigfsd [--config FILE] [--state-dir DIR] [--spool DIR] [--foreground] [-o OPT] [MOUNTPOINT]
 *   sigfsd --verify-audit FILE
 *
 * With a MOUNTPOINT it runs as two processes (fs/keeper.h): the keeper
 * mounts and holds the mount; the worker, this program started again with
 * --keeper-fds, loads the configuration, opens the audit log, the key store
 * and the engine (which finishes what the journal says was left), then
 * serves the mount, and the spool if there is one (spool/spool.h), until it
 * is unmounted or gets SIGINT/SIGTERM/SIGHUP. The keeper stops on
 * SIGINT/SIGTERM or when the mount is gone, and starts a new worker on the
 * same mount when one ends otherwise, or on SIGHUP.
 *
 * Without a MOUNTPOINT (--spool DIR, or [spool] dir) there is no FUSE and no
 * keeper: one process serves the spool until SIGINT/SIGTERM, and starts
 * again in place on SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>

#include "common/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/safedir.h"
#include "fs/fuse_ops.h"
#include "fs/keeper.h"
#include "signer/audit.h"
#include "signer/engine.h"
#include "signer/keys.h"
#include "spool/spool.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sigfsd [--config FILE] [--state-dir DIR] [--spool DIR] [--foreground] [-o OPT] "
		"[MOUNTPOINT]\n"
		"       sigfsd --verify-audit FILE\n"
		"  (a MOUNTPOINT, a spool directory, or both)\n"
		"  -c, --config FILE     configuration (default " SIGFS_DEFAULT_CONFIG ")\n"
		"  -s, --state-dir DIR   where keys' settings, inboxes and the journal live\n"
		"  --spool DIR           also sign in DIR/KEY/, watched with inotify ([spool] dir)\n"
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

/*
 * Open the state directory by the path-safety rule (common/safedir.h), once,
 * and everything in it relative to that descriptor: the audit log, the key
 * store and the engine with its journal (the store and the journal keep their
 * own copies of the descriptor).
 */
/* What a run of the daemon opens in its state directory. */
struct state {
	struct sigfs_audit *audit;
	struct sigfs_keys *ks;
	struct sigfs_engine *eng;
};

static int open_state(const struct sigfs_config *cfg, struct state *st, char *err)
{
	int sfd, r;

	*st = (struct state){ 0 };
	r = sigfs_safedir_open(cfg->state_dir, "state directory", &sfd, err);
	if (r < 0)
		return r;
	r = sigfs_audit_open(sfd, "audit.log", &st->audit, err);
	if (r == 0)
		r = sigfs_keys_open(cfg, sfd, st->audit, &st->ks, err);
	if (r == 0)
		r = sigfs_engine_start(cfg, st->ks, st->audit, &st->eng, err);
	close(sfd);
	return r;
}

/* Stop the engine (if st->eng: serve() stops it itself) and close the rest. */
static void close_state(struct state *st)
{
	sigfs_engine_stop(st->eng);
	sigfs_keys_close(st->ks);
	sigfs_audit_close(st->audit);
	*st = (struct state){ 0 };
}

struct options {
	const char *config, *state_dir, *mnt;   /* mnt NULL: the spool alone */
	const char *spool;
	bool foreground;
	bool worker;                  /* started by the keeper, with its descriptors */
	struct keeper_fds keeper;
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
		{ "spool", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'v' },
		{ KEEPER_FDS_OPTION, required_argument, NULL, 'K' },
		{ NULL, 0, NULL, 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:s:fo:hv", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 's': o->state_dir = optarg; break;
		case 'S': o->spool = optarg; break;
		case 'f': o->foreground = true; break;
		case 'o': break;        /* taken below, once the command line is known good */
		case 'V': return verify_audit(optarg);
		case 'h': usage(stdout); return 0;
		case 'v': printf("sigfsd " SIGFS_VERSION "\n"); return 0;
		case 'K':
			o->worker = true;
			if (keeper_parse_fds(optarg, &o->keeper) == 0)
				break;
			fprintf(stderr, "sigfsd: bad --" KEEPER_FDS_OPTION "\n");
			return 2;
		default: usage(stderr); return 2;
		}
	}
	/* No MOUNTPOINT: the spool alone, if the configuration names one (spool_main). */
	if (optind < argc - 1 || (optind == argc && o->worker)) {
		usage(stderr);
		return 2;
	}
	if (optind == argc)
		return -1;
	o->mnt = argv[optind];
	mount_options(argv, optind, args);
	return -1;
}

/* Tell the keeper the mount is served, and run the session's loop; 0, or 1 if it failed. */
static int run(struct fuse_session *se, const struct sigfs_config *cfg, const struct options *o)
{
	struct fuse_loop_config *loop;
	int r;

	log_info("serving %s (state in %s, %u workers)", o->mnt, cfg->state_dir, cfg->workers);
	keeper_ready(&o->keeper);
	if (!o->foreground) {
		keeper_leave_terminal();
		sigfs_log_init(true, (enum sigfs_log_level)cfg->log_level);
	}
	loop = fuse_loop_cfg_create();
	fuse_loop_cfg_set_max_threads(loop, 64);
	fuse_loop_cfg_set_idle_threads(loop, 16);
	r = fuse_session_loop_mt(se, loop);
	fuse_loop_cfg_destroy(loop);
	return r < 0 ? 1 : 0;
}

/*
 * Serve the keeper's mount with fs; then stop the engine and free fs. The
 * exit code, or -1 with err set when it could not attach to the mount.
 */
static int serve(const struct sigfs_config *cfg, struct sigfs_engine *eng, struct sigfs_fs *fs,
		 struct sigfs_spool *sp, struct fuse_args *args, const struct options *o, char *err)
{
	struct fuse_session *se;
	int r = -1;

	se = fuse_session_new(args, &sigfs_fuse_ops, sizeof(sigfs_fuse_ops), fs);
	if (!se) {
		snprintf(err, SIGFS_ERRLEN, "bad FUSE options");
		sigfs_spool_stop(sp);
		sigfs_engine_stop(eng);
		sigfs_fs_free(fs);
		return -1;
	}
	sigfs_fs_set_session(fs, se);
	if (fuse_set_signal_handlers(se) < 0)
		snprintf(err, SIGFS_ERRLEN, "cannot set the signal handlers");
	else if ((r = keeper_attach(se, &o->keeper, err)) >= 0) {
		/* On a new mount nobody can still be writing what the last run left. */
		sigfs_engine_unfinished(eng, r == 1 ? sigfs_fs_take_write : NULL, fs);
		r = run(se, cfg, o);
	}
	/*
	 * The engine stops while the session exists: a worker that finishes a
	 * job answers the close() waiting for it through the session, and so
	 * does the close() timer. Nothing is handed to the engine any more
	 * (sigfs_fs_stop). The keeper unmounts, not the worker.
	 */
	sigfs_fs_stop(fs);
	sigfs_spool_stop(sp);
	sigfs_engine_stop(eng);
	sigfs_fs_free(fs);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	return r;
}

/*
 * Load the configuration and apply --state-dir. 0, or -1 after a log line.
 * quiet: only errors (the keeper checks what the worker loads and warns about).
 */
static int load_config(const struct options *o, struct sigfs_config *cfg, bool quiet)
{
	char err[SIGFS_ERRLEN] = "";

	sigfs_log_init(false, quiet ? SIGFS_LOG_ERR : SIGFS_LOG_INFO);
	if (sigfs_config_load(o->config, cfg, err) < 0) {
		log_err("%s", err);
		return -1;
	}
	if (o->state_dir)
		snprintf(cfg->state_dir, sizeof(cfg->state_dir), "%s", o->state_dir);
	if (o->spool && (o->spool[0] != '/' || strlen(o->spool) >= sizeof(cfg->spool_dir))) {
		log_err("--spool %s: not an absolute path", o->spool);
		sigfs_config_free(cfg);
		return -1;
	}
	if (o->spool)
		snprintf(cfg->spool_dir, sizeof(cfg->spool_dir), "%s", o->spool);
	sigfs_log_init(false, (enum sigfs_log_level)cfg->log_level);
	return 0;
}

/*
 * The keeper: a configuration that does not load fails here, before
 * anything is mounted; the worker loads it again (an upgrade reads it anew).
 */
static int keeper_main(int argc, char **argv, const struct options *o, struct fuse_args *args)
{
	struct sigfs_config cfg;
	int report_fd = -1;

	if (load_config(o, &cfg, true) < 0)
		return 1;
	sigfs_log_init(false, (enum sigfs_log_level)cfg.log_level);
	sigfs_config_free(&cfg);
	if (!o->foreground) {
		report_fd = detach();
		if (report_fd < 0) {
			log_err("cannot detach: %s", strerror(errno));
			return 1;
		}
	}
	return keeper_run(argc, argv, args, o->mnt, report_fd);
}

/* The worker: open the state, start the engine, serve. The exit code. */
static int worker_main(const struct options *o, struct fuse_args *args)
{
	struct sigfs_spool *sp = NULL;
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_config cfg;
	struct sigfs_fs *fs;
	struct state st;
	int r;

	if (load_config(o, &cfg, false) < 0)
		return 1;
	if (open_state(&cfg, &st, err) < 0)
		goto out_err;
	if (cfg.spool_dir[0] && sigfs_spool_start(&cfg, st.ks, st.eng, &sp, err) < 0)
		goto out_err;
	r = sigfs_fs_new(&cfg, st.ks, st.eng, &fs);
	if (r < 0) {
		sigfs_seterr(err, r, "cannot start: %s", strerror(-r));
		sigfs_spool_stop(sp);
		goto out_err;
	}
	r = serve(&cfg, st.eng, fs, sp, args, o, err);
	st.eng = NULL;                      /* serve() stopped it */
	close_state(&st);
	/* err holds a message only when serve failed; calls that succeed may leave text there. */
	if (r < 0)
		log_err("%s", err);
	sigfs_config_free(&cfg);
	log_info("stopped");
	return r < 0 ? 1 : r;
out_err:
	log_err("%s", err);
	close_state(&st);
	sigfs_config_free(&cfg);
	return 1;
}

/* The spool's process is ready: tell whoever started it (report_fd, systemd). */
static void spool_ready(const struct sigfs_config *cfg, int *report_fd)
{
	if (*report_fd >= 0) {
		if (write(*report_fd, "", 1) != 1)
			log_warn("cannot report readiness to the starting process");
		close(*report_fd);
		*report_fd = -1;
		keeper_leave_terminal();
		sigfs_log_init(true, (enum sigfs_log_level)cfg->log_level);
	}
	sd_notify(0, "READY=1");
}

/*
 * One run of the spool alone: open the state, start the engine and the
 * spool, wait for a signal in sigs (blocked in every thread), stop. 0 and
 * the signal in *sig, or 1 if it could not start.
 */
static int spool_run(const struct options *o, const sigset_t *sigs, int *report_fd, int *sig)
{
	struct state st = { 0 };
	struct sigfs_spool *sp = NULL;
	char err[SIGFS_ERRLEN] = "";
	struct sigfs_config cfg;
	int r = 1;

	if (load_config(o, &cfg, false) < 0)
		return 1;
	if (!cfg.spool_dir[0])
		snprintf(err, sizeof(err), "nothing to serve: give a MOUNTPOINT, --spool DIR, "
			 "or [spool] dir in the configuration");
	else if (open_state(&cfg, &st, err) == 0) {
		/* No mount: nobody can still be writing what the last run left in its inboxes. */
		sigfs_engine_unfinished(st.eng, NULL, NULL);
		r = sigfs_spool_start(&cfg, st.ks, st.eng, &sp, err) < 0;
	}
	if (r == 0) {
		log_info("serving the spool %s (state in %s, %u workers)", cfg.spool_dir,
			 cfg.state_dir, cfg.workers);
		spool_ready(&cfg, report_fd);
		while (sigwait(sigs, sig) != 0)
			;
		log_info("%s", *sig == SIGHUP ? "SIGHUP: starting again" : "stopping");
		sigfs_spool_stop(sp);
	} else {
		log_err("%s", err);
	}
	close_state(&st);
	sigfs_config_free(&cfg);
	return r;
}

/* The spool alone, without a mount: one process, SIGHUP starts it again in place. */
static int spool_main(const struct options *o)
{
	int report_fd = -1, sig = SIGHUP, r = 0;
	sigset_t sigs;

	/* Before any thread exists: they all inherit the mask, sigwait() takes the signals. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (!o->foreground) {
		report_fd = detach();
		if (report_fd < 0) {
			log_err("cannot detach: %s", strerror(errno));
			return 1;
		}
	}
	while (r == 0 && sig == SIGHUP)
		r = spool_run(o, &sigs, &report_fd, &sig);
	sd_notify(0, "STOPPING=1");
	log_info("stopped");
	return r;
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct options o = { 0 };
	int r;

	r = parse_options(argc, argv, &o, &args);
	if (r >= 0)
		return r;
	if (!o.mnt)
		r = spool_main(&o);
	else
		r = o.worker ? worker_main(&o, &args) : keeper_main(argc, argv, &o, &args);
	fuse_opt_free_args(&args);
	return r;
}
