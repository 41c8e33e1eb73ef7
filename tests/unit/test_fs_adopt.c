/*
 * test_fs_adopt.c: the FUSE front end (fs/fuse_ops.c) given file handles it
 * did not issue, as a daemon restarted on a kept FUSE connection is: the
 * kernel's open files (an NFS server's cached fds) carry the previous
 * process's fi->fh. The test is the kernel: it speaks the FUSE protocol to a
 * real libfuse session over a socket (fuse_session_custom_io), so it can send
 * any fh, which no mount lets a test do. The engine signs with the in-memory
 * backend of testenv.h.
 *
 * What must hold (docs/decisions.md, 64): an unknown fh is never
 * dereferenced; on an inbox file it is adopted (reads work, a write is a
 * modification like any other and its close or release signs, once); on a
 * .ctl file read and write fail with EBADF; a listing is made again; the
 * release of an unknown handle succeeds; a node that is gone is ESTALE.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "common/err.h"
#include "fs/fuse_ops.h"
#include "signer/engine.h"
#include "testenv.h"
#include "testlib.h"

/* A handle of "the daemon before": another tag than any this process draws, most likely. */
#define OLD_FH 0x5eedf00d00000007ULL
#define ID_STATUS 0xFF00000000000003ULL

static struct t_store st;
static struct sigfs_engine *eng;
static struct sigfs_fs *fs;
static struct fuse_session *se;
static pthread_t loop_thread;
static int kfd = -1;            /* the kernel's end of the connection */
static uint64_t unique;

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	return writev(fd, iov, count);
}

/* The kernel's end closed: the session ends, as at an unmount. */
static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	ssize_t n = read(fd, buf, len);

	(void)userdata;
	if (n == 0)
		fuse_session_exit(se);
	return n;
}

static void *loop_main(void *arg)
{
	(void)arg;
	fuse_session_loop(se);
	return NULL;
}

/*
 * Send request op on node (arg, then tail) and read its reply into out
 * (cap bytes, *olen set when olen). The reply's error: 0 or -errno.
 */
static int call(uint32_t op, uint64_t node, const void *arg, size_t alen, const void *tail,
		size_t tlen, void *out, size_t cap, size_t *olen)
{
	struct fuse_in_header h = {
		.len = (uint32_t)(sizeof(h) + alen + tlen), .opcode = op, .unique = ++unique,
		.nodeid = node, .pid = (uint32_t)getpid(),
	};
	struct iovec iov[3] = {
		{ &h, sizeof(h) }, { (void *)arg, alen }, { (void *)tail, tlen },
	};
	static char buf[1 << 17];
	struct fuse_out_header *oh = (void *)buf;
	ssize_t n;

	assert_int_equal(writev(kfd, iov, 3), h.len);
	n = read(kfd, buf, sizeof(buf));
	assert_true(n >= (ssize_t)sizeof(*oh));
	assert_int_equal(oh->len, n);
	assert_int_equal(oh->unique, h.unique);
	n -= (ssize_t)sizeof(*oh);
	assert_true((size_t)n <= cap || oh->error != 0);
	if (oh->error == 0 && out)
		memcpy(out, buf + sizeof(*oh), (size_t)n);
	if (olen)
		*olen = (size_t)n;
	return oh->error;
}

static void path_of(char *path, size_t len, const char *name)
{
	snprintf(path, len, "%s/inbox/k/%s", st.dir, name);
}

/* The node id of inbox k, looked up from the root. */
static uint64_t inbox_node(void)
{
	struct fuse_entry_out e;

	assert_int_equal(call(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 0, "k", 2, &e, sizeof(e), NULL), 0);
	return e.nodeid;
}

/* Put name in the inbox behind sigfsd's back (as if written before the restart); its node id. */
static uint64_t put(const char *name, const char *content)
{
	struct fuse_entry_out e;
	char path[600];

	path_of(path, sizeof(path), name);
	t_write_file(path, content, strlen(content));
	assert_int_equal(call(FUSE_LOOKUP, inbox_node(), NULL, 0, name, strlen(name) + 1,
			      &e, sizeof(e), NULL), 0);
	return e.nodeid;
}

static int do_read(uint64_t node, uint64_t fh, char *out, size_t cap, size_t *len)
{
	struct fuse_read_in r = { .fh = fh, .offset = 0, .size = (uint32_t)cap };

	return call(FUSE_READ, node, &r, sizeof(r), NULL, 0, out, cap, len);
}

static int do_write(uint64_t node, uint64_t fh, uint64_t off, const char *data)
{
	struct fuse_write_in w = { .fh = fh, .offset = off, .size = (uint32_t)strlen(data) };
	struct fuse_write_out o;
	int r;

	r = call(FUSE_WRITE, node, &w, sizeof(w), data, strlen(data), &o, sizeof(o), NULL);
	if (r == 0)
		assert_int_equal(o.size, strlen(data));
	return r;
}

static int do_release(uint32_t op, uint64_t node, uint64_t fh)
{
	struct fuse_release_in r = { .fh = fh };

	return call(op, node, &r, sizeof(r), NULL, 0, NULL, 0, NULL);
}

static int do_flush(uint64_t node, uint64_t fh)
{
	struct fuse_flush_in f = { .fh = fh };

	return call(FUSE_FLUSH, node, &f, sizeof(f), NULL, 0, NULL, 0, NULL);
}

/* Output name of k into buf; its length, or -1 if it does not exist. */
static long output(const char *name, char *buf, size_t cap)
{
	char path[600];

	path_of(path, sizeof(path), name);
	return t_read_file(path, buf, cap);
}

/* Wait up to 10 s for output name; its length. */
static long wait_output(const char *name, char *buf, size_t cap)
{
	struct timespec ms = { 0, 10 * 1000 * 1000 };
	long n = -1;

	for (int i = 0; i < 1000 && n < 0; i++) {
		n = output(name, buf, cap);
		if (n < 0)
			nanosleep(&ms, NULL);
	}
	return n;
}

/* "MEM" and the sha256 of content: the in-memory backend's signature of it. */
static void assert_signed(const char *name, const char *content)
{
	char sig[128], out[64];
	unsigned int n = 0;

	snprintf(sig, sizeof(sig), "%s.sig", name);
	assert_int_equal(wait_output(sig, out, sizeof(out)), 35);
	memcpy(out + 40, "MEM", 3);
	assert_int_equal(EVP_Digest(content, strlen(content), (unsigned char *)out + 43, &n,
				    EVP_sha256(), NULL), 1);
	assert_memory_equal(out, out + 40, 35);
}

static int setup(void **state)
{
	static const struct fuse_custom_io io = { .writev = io_writev, .read = io_read };
	char *argv[] = { "test_fs_adopt", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_init_in init = { .major = FUSE_KERNEL_VERSION,
				     .minor = FUSE_KERNEL_MINOR_VERSION,
				     .flags = FUSE_EXPORT_SUPPORT | FUSE_ATOMIC_O_TRUNC };
	struct fuse_init_out out;
	char err[SIGFS_ERRLEN] = "";
	int sv[2];

	(void)state;
	t_store_open(&st, "adopt");
	if (sigfs_keys_create(st.ks, "k", NULL, 0, err) != 0)
		fail_msg("create k: %s", err);
	if (sigfs_engine_start(&st.cfg, st.ks, st.audit, &eng, err) != 0)
		fail_msg("start: %s", err);
	assert_int_equal(sigfs_fs_new(&st.cfg, st.ks, eng, &fs), 0);
	se = fuse_session_new(&args, &sigfs_fuse_ops, sizeof(sigfs_fuse_ops), fs);
	fuse_opt_free_args(&args);
	assert_non_null(se);
	sigfs_fs_set_session(fs, se);
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	kfd = sv[0];
	assert_int_equal(fuse_session_custom_io(se, &io, sv[1]), 0);
	assert_int_equal(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
	assert_int_equal(call(FUSE_INIT, 0, &init, sizeof(init), NULL, 0, &out, sizeof(out),
			      NULL), 0);
	assert_int_equal(out.major, FUSE_KERNEL_VERSION);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	close(kfd);
	pthread_join(loop_thread, NULL);
	/* As sigfsd stops: the engine, then the front end, then the session. */
	sigfs_engine_stop(eng);
	sigfs_fs_free(fs);
	fuse_session_destroy(se);
	t_store_close(&st);
	return 0;
}

/* The ids this process issues: its tag on top, a counter below, never a pointer. */
static void test_own_ids(void **state)
{
	struct fuse_open_in oi = { .flags = O_RDONLY };
	struct fuse_open_out a, b;
	uint64_t node = put("own.bin", "own\n");
	char buf[64];
	size_t n;

	(void)state;
	assert_int_equal(call(FUSE_OPEN, node, &oi, sizeof(oi), NULL, 0, &a, sizeof(a), NULL), 0);
	assert_int_equal(call(FUSE_OPEN, node, &oi, sizeof(oi), NULL, 0, &b, sizeof(b), NULL), 0);
	assert_int_not_equal(a.fh >> 32, 0);
	assert_int_equal(a.fh >> 32, b.fh >> 32);
	assert_true((a.fh & 0xffffffffu) >= 1 && (a.fh & 0xffffffffu) < 100);
	assert_int_equal(b.fh, a.fh + 1);
	assert_int_equal(do_read(node, a.fh, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 4);
	assert_memory_equal(buf, "own\n", 4);
	assert_int_equal(do_release(FUSE_RELEASE, node, a.fh), 0);
	/* Released, the id is unknown: a late op on it opens the file again, never touches the freed handle. */
	assert_int_equal(do_read(node, a.fh, buf, sizeof(buf), &n), 0);
	assert_int_equal(do_release(FUSE_RELEASE, node, a.fh), 0);
	assert_int_equal(do_release(FUSE_RELEASE, node, b.fh), 0);
}

/* NFSv3 writes through a cached fd and closes it later: the release signs what was written. */
static void test_adopted_writer_signs_at_release(void **state)
{
	uint64_t node = put("a.bin", "");
	struct sigfs_key k;
	char buf[64];
	size_t n;

	(void)state;
	assert_int_equal(do_write(node, OLD_FH, 0, "firmware "), 0);
	assert_int_equal(do_write(node, OLD_FH, 9, "2.0\n"), 0);
	assert_int_equal(do_read(node, OLD_FH, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 13);
	assert_memory_equal(buf, "firmware 2.0\n", 13);
	assert_int_equal(output("a.bin.sig", buf, sizeof(buf)), -1);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	assert_signed("a.bin", "firmware 2.0\n");
	assert_int_equal(output("a.bin.err", buf, sizeof(buf)), -1);
	assert_int_equal(sigfs_keys_get(st.ks, "k", &k), 0);
	assert_int_equal(k.count, 1);
}

/* A close through an adopted handle that wrote waits for its signature, made once. */
static void test_adopted_writer_close_waits(void **state)
{
	uint64_t node = put("b.bin", "");
	struct sigfs_key k;
	char buf[64];

	(void)state;
	assert_int_equal(do_write(node, OLD_FH, 0, "beta\n"), 0);
	assert_int_equal(do_flush(node, OLD_FH), 0);
	/* wait_on_close: the flush was answered once the output was there. */
	assert_int_equal(output("b.bin.sig", buf, sizeof(buf)), 35);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	assert_signed("b.bin", "beta\n");
	assert_int_equal(sigfs_keys_get(st.ks, "k", &k), 0);
	assert_int_equal(k.count, 1);
}

/* ftruncate through an old handle, then writes: one version, signed once at release. */
static void test_adopted_truncate(void **state)
{
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_FH, .fh = OLD_FH, .size = 0 };
	uint64_t node = put("t.bin", "old content\n");
	struct fuse_attr_out ao;
	struct sigfs_key k;
	char buf[64];

	(void)state;
	assert_int_equal(call(FUSE_SETATTR, node, &sa, sizeof(sa), NULL, 0, &ao, sizeof(ao), NULL),
			 0);
	assert_int_equal(ao.attr.size, 0);
	/*
	 * The truncating handle is a writer still open: nothing is signed. Had
	 * the truncation been signed at once, as a truncate(2) with no writer
	 * is, its output would be there after this pause (an empty file's is
	 * NAME.err).
	 */
	nanosleep(&(struct timespec){ 0, 500 * 1000 * 1000 }, NULL);
	assert_int_equal(output("t.bin.sig", buf, sizeof(buf)), -1);
	assert_int_equal(output("t.bin.err", buf, sizeof(buf)), -1);
	assert_int_equal(do_write(node, OLD_FH, 0, "new\n"), 0);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	assert_signed("t.bin", "new\n");
	assert_int_equal(sigfs_keys_get(st.ks, "k", &k), 0);
	assert_int_equal(k.count, 1);
}

/* An adopted handle that only reads signs nothing; fsync and flush work. */
static void test_adopted_reader(void **state)
{
	uint64_t node = put("c.bin", "content\n");
	struct fuse_fsync_in fi = { .fh = OLD_FH };
	char buf[64];
	size_t n;

	(void)state;
	assert_int_equal(do_read(node, OLD_FH, buf, sizeof(buf), &n), 0);
	assert_int_equal(n, 8);
	assert_memory_equal(buf, "content\n", 8);
	assert_int_equal(call(FUSE_FSYNC, node, &fi, sizeof(fi), NULL, 0, NULL, 0, NULL), 0);
	assert_int_equal(do_flush(node, OLD_FH), 0);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	assert_int_equal(output("c.bin.sig", buf, sizeof(buf)), -1);
}

/* Flush and release of a handle never used in this process: nothing to do, no error. */
static void test_unknown_release(void **state)
{
	uint64_t node = put("d.bin", "d\n");
	char buf[64];

	(void)state;
	assert_int_equal(do_flush(node, OLD_FH), 0);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	assert_int_equal(do_release(FUSE_RELEASEDIR, inbox_node(), OLD_FH), 0);
	assert_int_equal(output("d.bin.sig", buf, sizeof(buf)), -1);
}

/* What a .ctl handle held went with the old process: EBADF, and its close succeeds. */
static void test_ctl_handle(void **state)
{
	char buf[4096];
	size_t n;

	(void)state;
	assert_int_equal(do_read(ID_STATUS, OLD_FH, buf, sizeof(buf), &n), -EBADF);
	assert_int_equal(do_write(ID_STATUS, OLD_FH, 0, "x"), -EBADF);
	assert_int_equal(do_flush(ID_STATUS, OLD_FH), 0);
	assert_int_equal(do_release(FUSE_RELEASE, ID_STATUS, OLD_FH), 0);
}

/* Does the READDIR reply buf (len bytes) list name? */
static bool lists(const char *buf, size_t len, const char *name)
{
	for (size_t at = 0; at + FUSE_NAME_OFFSET <= len;) {
		const struct fuse_dirent *d = (const void *)(buf + at);

		if (d->namelen == strlen(name) && !memcmp(d->name, name, d->namelen))
			return true;
		at += FUSE_DIRENT_SIZE(d);
	}
	return false;
}

/* A listing the old process was giving is made again, then found under its id. */
static void test_unknown_dir_handle(void **state)
{
	struct fuse_read_in r = { .fh = OLD_FH, .offset = 0, .size = 4096 };
	uint64_t inbox = inbox_node();
	char buf[4096];
	size_t n;

	(void)state;
	put("e.bin", "e\n");
	assert_int_equal(call(FUSE_READDIR, inbox, &r, sizeof(r), NULL, 0, buf, sizeof(buf), &n),
			 0);
	assert_true(lists(buf, n, "."));
	assert_true(lists(buf, n, "e.bin"));
	/* The listing is the handle's now: a name added later is not in it. */
	put("f.bin", "f\n");
	assert_int_equal(call(FUSE_READDIR, inbox, &r, sizeof(r), NULL, 0, buf, sizeof(buf), &n),
			 0);
	assert_true(lists(buf, n, "e.bin"));
	assert_false(lists(buf, n, "f.bin"));
	assert_int_equal(do_release(FUSE_RELEASEDIR, inbox, OLD_FH), 0);
	/* Released, so the next READDIR on the id makes a new listing. */
	assert_int_equal(call(FUSE_READDIR, inbox, &r, sizeof(r), NULL, 0, buf, sizeof(buf), &n),
			 0);
	assert_true(lists(buf, n, "f.bin"));
	assert_int_equal(do_release(FUSE_RELEASEDIR, inbox, OLD_FH), 0);
}

/* A node that is gone, or whose name now holds another file: ESTALE, and release succeeds. */
static void test_stale(void **state)
{
	uint64_t node = put("g.bin", "g\n");
	char buf[64], path[600], other[600];
	size_t n;
	int keep;

	(void)state;
	assert_int_equal(do_read(987654321, OLD_FH, buf, sizeof(buf), &n), -ESTALE);
	assert_int_equal(do_write(987654321, OLD_FH, 0, "x"), -ESTALE);
	assert_int_equal(do_release(FUSE_RELEASE, 987654321, OLD_FH), 0);
	/* Replace g.bin under its name; the old inode stays alive, so its number is not reused. */
	path_of(path, sizeof(path), "g.bin");
	path_of(other, sizeof(other), "g.new");
	keep = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(keep >= 0);
	t_write_file(other, "other\n", 6);
	assert_int_equal(rename(other, path), 0);
	assert_int_equal(do_read(node, OLD_FH, buf, sizeof(buf), &n), -ESTALE);
	assert_int_equal(do_write(node, OLD_FH, 0, "x"), -ESTALE);
	assert_int_equal(do_release(FUSE_RELEASE, node, OLD_FH), 0);
	close(keep);
	assert_int_equal(t_read_file(path, buf, sizeof(buf)), 6);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_own_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopted_writer_signs_at_release, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_adopted_writer_close_waits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopted_truncate, setup, teardown),
		cmocka_unit_test_setup_teardown(test_adopted_reader, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ctl_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_dir_handle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
