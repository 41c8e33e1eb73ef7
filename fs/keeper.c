/*
 * keeper.c: the process that holds the mount while workers come and go
 * (fs/keeper.h; docs/nfs.md#restarts).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/fuse.h>
#include <systemd/sd-daemon.h>

#include "common/err.h"
#include "common/log.h"
#include "common/sbuf.h"
#include "fs/keeper.h"

/* Workers that end this soon after starting count as failing to start. */
#define QUICK_EXIT_SECONDS 10
/* So many quick ends in a row and the keeper gives up (and unmounts). */
#define MAX_QUICK_EXITS 5
/* The INIT request is a header and struct fuse_init_in: far below this. */
#define INIT_MAX 4096

int keeper_parse_fds(const char *s, struct keeper_fds *k)
{
	struct sbuf b;
	uint64_t v[3];

	sbuf_view(&b, s, strlen(s));
	for (int i = 0; i < 3; i++) {
		uint8_t comma = ',';

		if (sbuf_get_u64dec(&b, &v[i]) < 0 || v[i] > INT_MAX ||
		    (i < 2 && sbuf_get_u8(&b, &comma) < 0) || comma != ',')
			return -EINVAL;
	}
	if (sbuf_avail(&b) != 0)
		return -EINVAL;
	k->fuse = (int)v[0];
	k->init = (int)v[1];
	k->ready = (int)v[2];
	return 0;
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

/* Has the connection of /dev/fuse descriptor fd ended (unmounted, aborted)? */
static bool mount_gone(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

void keeper_leave_terminal(void)
{
	int null = open("/dev/null", O_RDWR);

	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
}

/* Report readiness to whoever started a detached sigfsd, and leave its terminal. */
static void report_ready(int fd)
{
	if (write(fd, "", 1) != 1)
		log_warn("cannot report readiness to the starting process");
	close(fd);
	keeper_leave_terminal();
}

struct keeper {
	const char *exe;
	int argc;
	char **argv;
	int fuse, init;
	sigset_t sigs;
	pid_t worker;
	time_t started;
};

/* In the child: become a worker, with the keeper's descriptors and signals unblocked. */
static void exec_worker(const struct keeper *kp, pid_t keeper, int ready)
{
	char fds[64], opt[80];
	char **argv = calloc((size_t)kp->argc + 2, sizeof(*argv));

	sigprocmask(SIG_UNBLOCK, &kp->sigs, NULL);
	/* The worker dies with the keeper: without it, nobody holds the mount. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != keeper || !argv || fcntl(kp->fuse, F_SETFD, 0) < 0 || fcntl(kp->init, F_SETFD, 0) < 0)
		_exit(127);
	snprintf(fds, sizeof(fds), "%d,%d,%d", kp->fuse, kp->init, ready);
	snprintf(opt, sizeof(opt), "--" KEEPER_FDS_OPTION "=%s", fds);
	argv[0] = kp->argv[0];
	argv[1] = opt;
	for (int i = 1; i < kp->argc; i++)
		argv[i + 1] = kp->argv[i];
	execv(kp->exe, argv);
	_exit(127);
}

/*
 * Start a worker and wait until it serves. 0, or -1 when it ended first
 * (it was reaped; *status says how).
 */
static int start_worker(struct keeper *kp, int *status)
{
	pid_t keeper = getpid();
	int p[2];
	char c;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	kp->worker = fork();
	if (kp->worker == 0) {
		close(p[0]);
		if (fcntl(p[1], F_SETFD, 0) < 0)
			_exit(127);
		exec_worker(kp, keeper, p[1]);
	}
	close(p[1]);
	kp->started = time(NULL);
	if (kp->worker < 0) {
		close(p[0]);
		*status = -1;
		return -1;
	}
	do
		n = read(p[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n == 1)
		return 0;
	while (waitpid(kp->worker, status, 0) < 0 && errno == EINTR)
		;
	return -1;
}

static void log_end(pid_t pid, int status)
{
	if (WIFSIGNALED(status))
		log_warn("worker %ld was killed by signal %d", (long)pid, WTERMSIG(status));
	else
		log_info("worker %ld exited with status %d", (long)pid, WEXITSTATUS(status));
}

/*
 * The exit code at the end: the last worker's, or 1 when an earlier one
 * crashed (or failed), so that a crash the keeper got over is not lost on
 * whoever waits for sigfsd (a service manager, the tests under ASan).
 */
static int stopped(int status, int crashed)
{
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
	if (crashed)
		log_warn("%d workers ended abnormally while sigfsd ran", crashed);
	return crashed ? 1 : 0;
}

/*
 * Serve until asked to stop or the mount is gone: wait for signals, pass a
 * stop to the worker, start a new worker when one ended otherwise. The
 * exit code.
 */
static int watch(struct keeper *kp)
{
	bool stopping = false;
	int quick = 0, crashed = 0, status;
	siginfo_t si;

	for (;;) {
		int sig = sigwaitinfo(&kp->sigs, &si);

		if (sig == SIGTERM || sig == SIGINT) {
			stopping = true;
			kill(kp->worker, SIGTERM);
		} else if (sig == SIGHUP) {
			log_info("restarting worker %ld", (long)kp->worker);
			kill(kp->worker, SIGTERM);
		}
		if (sig != SIGCHLD && !(sig < 0 && errno == EINTR))
			continue;
		if (waitpid(kp->worker, &status, WNOHANG) != kp->worker)
			continue;
		log_end(kp->worker, status);
		if (stopping || mount_gone(kp->fuse))
			return stopped(status, crashed);
		crashed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		quick = time(NULL) - kp->started < QUICK_EXIT_SECONDS ? quick + 1 : 0;
		while (quick < MAX_QUICK_EXITS) {
			if (quick > 0)
				sleep(1);
			if (start_worker(kp, &status) == 0)
				break;
			log_end(kp->worker, status);
			quick++;
		}
		if (quick >= MAX_QUICK_EXITS) {
			log_err("the worker failed %d times in a row; giving up", quick);
			return 1;
		}
		log_info("worker %ld serves the mount again", (long)kp->worker);
	}
}

/* Mount, start the first worker, report ready. 0, or -1 after a log line. */
static int keeper_start(struct keeper *kp, struct fuse_session *se, const char *mnt,
			int report_fd, int *status)
{
	clear_dead_mount(mnt);
	if (fuse_session_mount(se, mnt) < 0) {
		log_err("cannot mount on %s", mnt);
		return -1;
	}
	kp->fuse = fuse_session_fd(se);
	kp->init = memfd_create("sigfs-fuse-init", MFD_CLOEXEC);
	if (kp->init < 0) {
		log_err("cannot make the INIT memfd: %s", strerror(errno));
		return -1;
	}
	if (start_worker(kp, status) < 0)
		return -1;
	if (report_fd >= 0) {
		report_ready(report_fd);
		sigfs_log_init(true, SIGFS_LOG_INFO);
	}
	sd_notify(0, "READY=1");
	return 0;
}

int keeper_run(int argc, char **argv, struct fuse_args *args, const char *mnt, int report_fd)
{
	static const struct fuse_lowlevel_ops none;
	char exe[PATH_MAX];
	struct keeper kp = { .exe = exe, .argc = argc, .argv = argv, .fuse = -1, .init = -1 };
	struct fuse_session *se;
	ssize_t n;
	int status = 0, rc;

	/* The path, not /proc/self/exe: after an upgrade the new binary is started. */
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0) {
		log_err("cannot find my own program: %s", strerror(errno));
		return 1;
	}
	exe[n] = 0;
	sigemptyset(&kp.sigs);
	sigaddset(&kp.sigs, SIGTERM);
	sigaddset(&kp.sigs, SIGINT);
	sigaddset(&kp.sigs, SIGHUP);
	sigaddset(&kp.sigs, SIGCHLD);
	sigprocmask(SIG_BLOCK, &kp.sigs, NULL);
	se = fuse_session_new(args, &none, sizeof(none), NULL);
	if (!se) {
		log_err("bad FUSE options");
		return 1;
	}
	if (keeper_start(&kp, se, mnt, report_fd, &status) < 0)
		rc = 1;
	else
		rc = watch(&kp);
	sd_notify(0, "STOPPING=1");
	if (kp.init >= 0)
		close(kp.init);
	fuse_session_unmount(se);
	fuse_session_destroy(se);
	return rc;
}

/* The first worker: take the kernel's INIT, keep a copy in the memfd, answer it. */
static int first_init(struct fuse_session *se, int init, char *err)
{
	struct fuse_buf b = { 0 };
	const struct fuse_in_header *h;
	int n;

	/* A signal (EINTR) is no answer; 0: the mount went away (or we were told to stop). */
	do
		n = fuse_session_receive_buf(se, &b);
	while (n == -EINTR || n == -EAGAIN);
	h = b.mem;
	if (n <= 0) {
		free(b.mem);
		return sigfs_seterr(err, n < 0 ? n : -ENODEV, "the mount went away before it was "
				    "served%s%s", n < 0 ? ": " : "", n < 0 ? strerror(-n) : "");
	}
	if (n < (int)sizeof(*h) || h->opcode != FUSE_INIT) {
		free(b.mem);
		return sigfs_seterr(err, -EPROTO, "the mount did not start with FUSE_INIT");
	}
	if (n > INIT_MAX || pwrite(init, b.mem, (size_t)n, 0) != n) {
		free(b.mem);
		return sigfs_seterr(err, -EIO, "cannot keep the FUSE_INIT request");
	}
	fuse_session_process_buf(se, &b);
	free(b.mem);
	return 0;
}

/*
 * A later worker: replay the kept INIT so libfuse negotiates as the first one
 * did. Its unique id is odd, which the kernel reads as an interrupt's: with
 * no request of this id in the new descriptor's queue (it has read nothing
 * yet), the kernel refuses the answer with ENOENT, which libfuse ignores.
 */
static int replay_init(struct fuse_session *se, int init, char *err)
{
	static uint8_t buf[INIT_MAX];
	struct fuse_in_header *h = (struct fuse_in_header *)buf;
	ssize_t n = pread(init, buf, sizeof(buf), 0);
	struct fuse_buf b = { .mem = buf };

	if (n < (ssize_t)sizeof(*h) || h->opcode != FUSE_INIT || h->len != (uint32_t)n)
		return sigfs_seterr(err, -EPROTO, "the kept FUSE_INIT request is damaged");
	h->unique = 1;
	b.size = (size_t)n;
	fuse_session_process_buf(se, &b);
	return 0;
}

int keeper_attach(struct fuse_session *se, const struct keeper_fds *k, char *err)
{
	char dev[32];
	uint32_t master = (uint32_t)k->fuse;
	struct stat st;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	/* A clone of its own: what this worker has read ends with it, not the mount. */
	if (fd < 0 || ioctl(fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
		sigfs_seterr(err, -errno, "cannot attach to the mount: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(k->fuse);
	snprintf(dev, sizeof(dev), "/dev/fd/%d", fd);
	if (fuse_session_mount(se, dev) < 0 || fstat(k->init, &st) < 0) {
		sigfs_seterr(err, -EIO, "cannot attach to the mount");
		return -1;
	}
	if (st.st_size == 0)
		return first_init(se, k->init, err) < 0 ? -1 : 0;
	return replay_init(se, k->init, err) < 0 ? -1 : 1;
}

void keeper_ready(const struct keeper_fds *k)
{
	if (write(k->ready, "", 1) != 1)
		log_warn("cannot tell the keeper that the mount is served");
	close(k->ready);
}
