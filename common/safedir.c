/*
 * safedir.c: the path-safety rule of safedir.h. The walk holds an O_PATH
 * descriptor of the last directory that passed and opens the next component
 * relative to it with O_NOFOLLOW, then checks what it opened (fstat on the
 * descriptor, not on the name), so a rename between check and use cannot
 * slip another directory in.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/safedir.h"

/* The kernel's own limit on links followed in one lookup. */
#define MAX_LINKS 40

static bool trusted(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* What to do about a directory on the way that failed. */
static const char *way_advice(char *buf, size_t len)
{
	if (geteuid() == 0)
		return "make it root-owned and not group/other-writable";
	snprintf(buf, len, "make it owned by root or uid %u and not group/other-writable",
		 (unsigned)geteuid());
	return buf;
}

/* Does the directory shown (st from its descriptor) pass as a directory on the way? */
static int check_way(const struct stat *st, const char *what, const char *path,
		     const char *shown, char *err)
{
	char adv[96];

	if (!trusted(st->st_uid))
		return sigfs_seterr(err, -EPERM, "refusing %s %s: %s is owned by uid %u; %s", what,
				    path, shown, (unsigned)st->st_uid, way_advice(adv, sizeof(adv)));
	/* In a sticky directory only an entry's owner may remove or rename it. */
	if (!(st->st_mode & (S_IWGRP | S_IWOTH)) || (st->st_mode & S_ISVTX))
		return 0;
	if (st->st_mode & S_IWGRP)
		return sigfs_seterr(err, -EPERM,
				    "refusing %s %s: %s is writable by group %u (mode %04o); %s", what,
				    path, shown, (unsigned)st->st_gid,
				    (unsigned)(st->st_mode & 07777), way_advice(adv, sizeof(adv)));
	return sigfs_seterr(err, -EPERM, "refusing %s %s: %s is writable by others (mode %04o); %s",
			    what, path, shown, (unsigned)(st->st_mode & 07777),
			    way_advice(adv, sizeof(adv)));
}

/* shown + "/" + name, or shown without its last component for "..". */
static void shown_step(char *shown, size_t len, const char *name)
{
	size_t n = strlen(shown);

	if (strcmp(name, "..") == 0) {
		char *slash = strrchr(shown, '/');

		if (slash && slash != shown)
			*slash = '\0';
		else
			strcpy(shown, "/");
		return;
	}
	snprintf(shown + n, len - n, "%s%s", n > 1 ? "/" : "", name);
}

/* Replace *fd with a descriptor of / and shown with "/"; check /. */
static int restart_at_root(int *fd, char *shown, const char *what, const char *path, char *err)
{
	struct stat st;
	int r;

	if (*fd >= 0)
		close(*fd);
	*fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &st) < 0) {
		r = -errno;
		return sigfs_seterr(err, r, "%s %s: cannot open /: %s", what, path, strerror(-r));
	}
	strcpy(shown, "/");
	return check_way(&st, what, path, shown, err);
}

/*
 * Follow the link name in directory fd (it passed): its target, then what was
 * left of the path, becomes the rest to walk.
 */
static int follow(int *fd, const char *name, char *rest, size_t restlen, const char *left,
		  char *shown, const char *what, const char *path, char *err)
{
	char target[PATH_MAX], tmp[PATH_MAX];
	ssize_t n = readlinkat(*fd, name, target, sizeof(target) - 1);
	int r;

	if (n < 0) {
		r = -errno;
		return sigfs_seterr(err, r, "%s %s: cannot read the link %s/%s: %s", what, path,
				    shown, name, strerror(-r));
	}
	target[n] = '\0';
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/%s", target, left) >= sizeof(tmp) ||
	    strlen(tmp) >= restlen)
		return sigfs_seterr(err, -ENAMETOOLONG, "%s %s: the path is too long once links "
				    "are followed", what, path);
	strcpy(rest, tmp);
	return target[0] == '/' ? restart_at_root(fd, shown, what, path, err) : 0;
}

/* Open the last component, name in directory fd (which passed), by the rule for it. */
static int open_last(int fd, const char *name, const char *what, const char *path,
		     const char *shown, int *out, char *err)
{
	struct stat st;
	bool link = false;
	int dfd, r;

	if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		link = S_ISLNK(st.st_mode);
	} else {
		if (errno != ENOENT) {
			r = -errno;
			return sigfs_seterr(err, r, "%s %s: %s", what, path, strerror(-r));
		}
		if (mkdirat(fd, name, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			return sigfs_seterr(err, r, "cannot create %s %s: %s", what, path, strerror(-r));
		}
	}
	dfd = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	/* With O_DIRECTORY, Linux says ENOTDIR for a link. */
	if (dfd < 0 && (errno == ELOOP || (errno == ENOTDIR && link)))
		return sigfs_seterr(err, -ELOOP, "refusing %s %s: %s is a symbolic link; name the "
				    "real directory instead", what, path, shown);
	if (dfd < 0) {
		r = -errno;
		return sigfs_seterr(err, r, "refusing %s %s: %s: %s", what, path, shown,
				    strerror(-r));
	}
	if (fstat(dfd, &st) < 0) {
		r = -errno;
		close(dfd);
		return sigfs_seterr(err, r, "%s %s: %s", what, path, strerror(-r));
	}
	/* Never take over, chown or chmod what another user owns: they could still steer it. */
	if (st.st_uid != geteuid()) {
		close(dfd);
		return sigfs_seterr(err, -EPERM, "refusing %s %s: %s is owned by uid %u; remove it, "
				    "or chown it to uid %u if you trust what is in it", what, path,
				    shown, (unsigned)st.st_uid, (unsigned)geteuid());
	}
	if ((st.st_mode & 07777) != 0700 && fchmod(dfd, 0700) < 0) {
		r = -errno;
		close(dfd);
		return sigfs_seterr(err, r, "%s %s: cannot set mode 0700: %s", what, path,
				    strerror(-r));
	}
	*out = dfd;
	return 0;
}

/* Where a walk of sigfs_safedir_open is. */
struct walk {
	const char *path, *what;      /* as given, for messages */
	char rest[PATH_MAX];          /* the path still to walk, from p on */
	char *p;
	char shown[PATH_MAX];         /* the directory fd is, for messages */
	char name[NAME_MAX + 1];      /* the component at hand */
	unsigned links;               /* followed so far */
	int fd;                       /* the last directory that passed */
	char *err;
};

/* The next component into w->name; *last when nothing follows it. */
static int next_name(struct walk *w, bool *last)
{
	size_t len;
	char *end;

	while (*w->p == '/')
		w->p++;
	end = strchrnul(w->p, '/');
	len = (size_t)(end - w->p);
	for (w->p = end; *w->p == '/'; w->p++)
		;
	if (len > NAME_MAX)
		return sigfs_seterr(w->err, -ENAMETOOLONG, "%s %s: a name on the way is too long",
				    w->what, w->path);
	memcpy(w->name, end - len, len);
	w->name[len] = '\0';
	/* Links are expanded in front of the rest: the last component is always path's own. */
	*last = *w->p == '\0';
	if (*last && (len == 0 || strcmp(w->name, ".") == 0 || strcmp(w->name, "..") == 0))
		return sigfs_seterr(w->err, -EINVAL, "refusing %s %s: name the directory itself "
				    "(a path not ending in . or ..)", w->what, w->path);
	return 0;
}

/* Follow the link w->name (st: its own stat) if a trusted user owns it. */
static int step_link(struct walk *w, const struct stat *st)
{
	int r;

	shown_step(w->shown, sizeof(w->shown), w->name);
	if (!trusted(st->st_uid))
		return sigfs_seterr(w->err, -EPERM, "refusing %s %s: %s is a symbolic link owned "
				    "by uid %u; name the real path instead", w->what, w->path,
				    w->shown, (unsigned)st->st_uid);
	if (++w->links > MAX_LINKS)
		return sigfs_seterr(w->err, -ELOOP, "refusing %s %s: more than %d symbolic links "
				    "on the way", w->what, w->path, MAX_LINKS);
	/* The link's own directory is where a relative target starts. */
	shown_step(w->shown, sizeof(w->shown), "..");
	r = follow(&w->fd, w->name, w->rest, sizeof(w->rest), w->p, w->shown, w->what, w->path,
		   w->err);
	w->p = w->rest;
	return r;
}

/* Step into the directory w->name, which must pass as a directory on the way. */
static int step_dir(struct walk *w)
{
	struct stat st;
	int nfd = openat(w->fd, w->name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int r = nfd < 0 ? -errno : 0;

	shown_step(w->shown, sizeof(w->shown), w->name);
	if (r == -ENOENT)
		return sigfs_seterr(w->err, r, "refusing %s %s: %s does not exist; create it "
				    "(not group/other-writable)", w->what, w->path, w->shown);
	if (r < 0)
		return sigfs_seterr(w->err, r, "refusing %s %s: %s: %s", w->what, w->path, w->shown,
				    strerror(-r));
	close(w->fd);
	w->fd = nfd;
	if (fstat(w->fd, &st) < 0) {
		r = -errno;
		return sigfs_seterr(w->err, r, "%s %s: %s: %s", w->what, w->path, w->shown,
				    strerror(-r));
	}
	return check_way(&st, w->what, w->path, w->shown, w->err);
}

int sigfs_safedir_open(const char *path, const char *what, int *out, char *err)
{
	struct walk w = { .path = path, .what = what, .fd = -1, .err = err };
	struct stat st;
	bool last;
	int r;

	if (path[0] != '/')
		return sigfs_seterr(err, -EINVAL, "refusing %s %s: not an absolute path; give the "
				    "full path", what, path);
	if (strlen(path) >= sizeof(w.rest))
		return sigfs_seterr(err, -ENAMETOOLONG, "%s %s: path too long", what, path);
	strcpy(w.rest, path);
	w.p = w.rest;
	r = restart_at_root(&w.fd, w.shown, what, path, err);
	while (r == 0) {
		r = next_name(&w, &last);
		if (r < 0)
			break;
		if (last) {
			shown_step(w.shown, sizeof(w.shown), w.name);
			r = open_last(w.fd, w.name, what, path, w.shown, out, err);
			break;
		}
		if (strcmp(w.name, ".") == 0)
			continue;
		if (strcmp(w.name, "..") != 0 && fstatat(w.fd, w.name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			r = step_link(&w, &st);
		else
			r = step_dir(&w);
	}
	if (w.fd >= 0)
		close(w.fd);
	return r;
}

const char *sigfs_safedir_shown(int dirfd, const char *name, char *buf, size_t len)
{
	char proc[64], dir[PATH_MAX];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dirfd);
	n = readlink(proc, dir, sizeof(dir) - 1);
	if (n <= 0) {
		snprintf(buf, len, "%s", name);
		return buf;
	}
	dir[n] = '\0';
	snprintf(buf, len, "%s%s%s", dir, strcmp(dir, "/") ? "/" : "", name);
	return buf;
}

int sigfs_safedir_subdir(int dirfd, const char *name, mode_t mode, int *out, char *err)
{
	char shown[PATH_MAX];
	struct stat st;
	int fd, r;

	sigfs_safedir_shown(dirfd, name, shown, sizeof(shown));
	if (mkdirat(dirfd, name, mode) < 0 && errno != EEXIST) {
		r = -errno;
		return sigfs_seterr(err, r, "cannot create %s: %s", shown, strerror(-r));
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		/* With O_DIRECTORY, Linux says ENOTDIR for a link. */
		if (r == -ELOOP || (r == -ENOTDIR &&
				    fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISLNK(st.st_mode)))
			return sigfs_seterr(err, -ELOOP, "refusing %s: it is a symbolic link; remove it "
					    "(sigfsd makes its own directories here)", shown);
		return sigfs_seterr(err, r, "cannot open %s: %s", shown, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		close(fd);
		return sigfs_seterr(err, r, "%s: %s", shown, strerror(-r));
	}
	if (st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(fd);
		return sigfs_seterr(err, -EPERM, "refusing %s: owner uid %u, mode %04o; it must "
				    "be uid %u's and not group/other-writable", shown,
				    (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777),
				    (unsigned)geteuid());
	}
	*out = fd;
	return 0;
}

int sigfs_safedir_file(int dirfd, const char *name, int flags, mode_t mode, int *out, char *err)
{
	char shown[PATH_MAX];
	struct stat st;
	int fd, r;

	sigfs_safedir_shown(dirfd, name, shown, sizeof(shown));
	/* O_NONBLOCK: a FIFO planted here cannot hang the open; regular files ignore it. */
	fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
	if (fd < 0) {
		r = -errno;
		if (r == -ELOOP)
			return sigfs_seterr(err, r, "refusing %s: it is a symbolic link; remove it "
					    "(sigfsd makes its own files here)", shown);
		return sigfs_seterr(err, r, "cannot open %s: %s", shown, strerror(-r));
	}
	if (fstat(fd, &st) < 0)
		r = sigfs_seterr(err, -errno, "%s: %s", shown, strerror(errno));
	else if (!S_ISREG(st.st_mode))
		r = sigfs_seterr(err, -EPERM, "refusing %s: it is not a regular file; remove it",
				 shown);
	else if (st.st_uid != geteuid())
		r = sigfs_seterr(err, -EPERM, "refusing %s: it is owned by uid %u; check it and "
				 "chown it to uid %u", shown, (unsigned)st.st_uid, (unsigned)geteuid());
	else if (st.st_nlink != 1)
		r = sigfs_seterr(err, -EPERM, "refusing %s: it has %lu hard links; sigfsd would "
				 "write a file that is also elsewhere: copy it to a file of its own",
				 shown, (unsigned long)st.st_nlink);
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		r = sigfs_seterr(err, -EPERM, "refusing %s: it is writable by group or others "
				 "(mode %04o); chmod go-w it if nobody else wrote it", shown,
				 (unsigned)(st.st_mode & 07777));
	else
		r = 0;
	if (r < 0) {
		close(fd);
		return r;
	}
	*out = fd;
	return 0;
}
