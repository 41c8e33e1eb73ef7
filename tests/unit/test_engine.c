/*
 * test_engine.c: the engine (signer/engine.c) without a mount: jobs handed
 * to it as the FUSE front end does, on the in-memory backend and the test
 * clocks of testenv.h, with the outputs read from the inbox directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <openssl/evp.h>

#include "common/dirutil.h"
#include "common/err.h"
#include "common/hex.h"
#include "signer/engine.h"
#include "testenv.h"
#include "testlib.h"

static struct t_store st;
static struct sigfs_engine *eng;

/* What done() reported for a job. */
struct outcome {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void on_done(void *arg, int result)
{
	struct outcome *o = arg;

	pthread_mutex_lock(&o->lock);
	o->done = true;
	o->result = result;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

static int setup(void **state)
{
	char err[SIGFS_ERRLEN] = "";

	(void)state;
	t_wall_now = 1700000000;
	t_store_open(&st, "engine");
	if (sigfs_keys_create(st.ks, "k", NULL, 0, err) != 0)
		fail_msg("create k: %s", err);
	if (sigfs_engine_start(&st.cfg, st.ks, st.audit, &eng, err) != 0)
		fail_msg("start: %s", err);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sigfs_engine_stop(eng);
	t_store_close(&st);
	return 0;
}

static void path_of(char *path, size_t len, const char *key, const char *name)
{
	snprintf(path, len, "%s/inbox/%s/%s", st.dir, key, name);
}

/* Write name into key's inbox; its inode. */
static uint64_t put(const char *key, const char *name, const char *content)
{
	char path[600];
	struct stat sb;

	path_of(path, sizeof(path), key, name);
	t_write_file(path, content, strlen(content));
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_ino;
}

static void submit(const char *key, const char *name, uint64_t ino, struct outcome *o)
{
	struct sigfs_submit s = { .key = key, .name = name, .ino = ino, .uid = 1000,
				  .done = on_done, .arg = o };

	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	assert_int_equal(sigfs_engine_submit(eng, &s), 0);
}

static int wait_done(struct outcome *o)
{
	pthread_mutex_lock(&o->lock);
	while (!o->done)
		pthread_cond_wait(&o->cond, &o->lock);
	pthread_mutex_unlock(&o->lock);
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
	return o->result;
}

/* Submit name of key k and wait for its result. */
static int sign_now(const char *name, const char *content)
{
	struct outcome o;

	submit("k", name, put("k", name, content), &o);
	return wait_done(&o);
}

/* The content of output name of key k, or NULL if there is none. */
static const char *output(const char *name, long *len)
{
	static char buf[4096];
	char path[600];

	path_of(path, sizeof(path), "k", name);
	*len = t_read_file(path, buf, sizeof(buf));
	return *len < 0 ? NULL : buf;
}

/* "MEM" and the sha256 of content: the in-memory backend's signature of it. */
static void mem_sig(const char *content, uint8_t out[35])
{
	unsigned int n = 0;

	memcpy(out, "MEM", 3);
	assert_int_equal(EVP_Digest(content, strlen(content), out + 3, &n, EVP_sha256(), NULL), 1);
	assert_int_equal(n, 32);
}

/* The in-memory backend's signature of content (want), and its SHA-256 in hex. */
static void mem_sig_hex(const char *content, uint8_t want[35], char hex[65])
{
	mem_sig(content, want);
	sigfs_hex_encode(want + 3, 32, hex);
}

/* A request (docs/requests.md) for the raw signature of the SHA-256 hex. */
static void request_of(const char *hex, char *req, size_t len)
{
	snprintf(req, len, "{\"version\": \"1.0.0\", \"required\": {\"input\": "
		 "{\"type\": \"sigfs-digest-v1\", \"algorithm\": \"sha256\", \"digest\": "
		 "\"%s\"}, \"output\": {\"type\": \"sigfs-raw\"}}}", hex);
}

static void test_file_signed(void **state)
{
	uint8_t want[35];
	struct sigfs_key k;
	long len;

	(void)state;
	assert_int_equal(sign_now("fw.bin", "firmware 1.0\n"), 0);
	mem_sig("firmware 1.0\n", want);
	assert_non_null(output("fw.bin.sig", &len));
	assert_int_equal(len, 35);
	assert_memory_equal(output("fw.bin.sig", &len), want, 35);
	assert_null(output("fw.bin.err", &len));
	assert_int_equal(sigfs_keys_get(st.ks, "k", &k), 0);
	assert_int_equal(k.count, 1);
}

/* A digest line is signed as its artifact: the output is NAME.sig, of the line's value. */
static void test_digest_line(void **state)
{
	char line[128], hex[65];
	uint8_t want[35];
	long len;

	(void)state;
	mem_sig_hex("the real file", want, hex);
	snprintf(line, sizeof(line), "%s  fw.bin\n", hex);
	assert_int_equal(sign_now("fw.bin.sha256", line), 0);
	assert_non_null(output("fw.bin.sig", &len));
	assert_int_equal(len, 35);
	assert_memory_equal(output("fw.bin.sig", &len), want, 35);
	assert_null(output("fw.bin.sha256.sig", &len));

	/* A line naming another file is refused in fw.bin.err. */
	snprintf(line, sizeof(line), "%s  other.bin\n", hex);
	assert_int_equal(sign_now("fw.bin.sha256", line), -EINVAL);
	assert_null(output("fw.bin.sig", &len));
	assert_string_equal(output("fw.bin.err", &len),
			    "fw.bin.sha256: the line names other.bin, not fw.bin\n");

	/* Not meant as a digest line: signed as the file it is, under its own name. */
	assert_int_equal(sign_now("notes.sha256", "just some notes\n"), 0);
	mem_sig("just some notes\n", want);
	assert_memory_equal(output("notes.sha256.sig", &len), want, 35);
	assert_null(output("notes.sig", &len));
}

/* A request is signed as the artifact it names: NAME.sigreq gives NAME.sig, of its digest. */
static void test_request(void **state)
{
	char req[512], hex[65];
	uint8_t want[35];
	long len;

	(void)state;
	mem_sig_hex("built elsewhere", want, hex);
	request_of(hex, req, sizeof(req));
	assert_int_equal(sign_now("fw.bin.sigreq", req), 0);
	assert_non_null(output("fw.bin.sig", &len));
	assert_int_equal(len, 35);
	assert_memory_equal(output("fw.bin.sig", &len), want, 35);
	assert_null(output("fw.bin.sigreq.sig", &len));

	/* A request of another version: fw.bin.err, named after the artifact too. */
	assert_int_equal(sign_now("fw.bin.sigreq", "{\"version\": \"2.0.0\"}"),
			 -EPROTONOSUPPORT);
	assert_null(output("fw.bin.sig", &len));
	assert_string_equal(output("fw.bin.err", &len), "the request has version \"2.0.0\"; "
			    "this sigfsd understands version 1 only\n");
}

/* A backend that fails gives NAME.err, with its reason, and no signature. */
static void test_backend_down(void **state)
{
	struct sigfs_key k;
	long len;

	(void)state;
	t_mem.sign_err = -EIO;
	assert_int_equal(sign_now("fw.bin", "firmware\n"), -EIO);
	assert_string_equal(output("fw.bin.err", &len), T_MEM_DOWN "\n");
	assert_null(output("fw.bin.sig", &len));
	assert_int_equal(sigfs_keys_get(st.ks, "k", &k), 0);
	assert_int_equal(k.count, 0);

	/* Up again: the next signature replaces the .err. */
	t_mem.sign_err = 0;
	assert_int_equal(sign_now("fw.bin", "firmware\n"), 0);
	assert_null(output("fw.bin.err", &len));
	assert_int_equal(output("fw.bin.sig", &len) != NULL, true);
	assert_int_equal(len, 35);
}

static void test_empty_file(void **state)
{
	long len;

	(void)state;
	assert_int_equal(sign_now("empty", ""), -ENODATA);
	assert_string_equal(output("empty.err", &len),
			    "the file is empty: there is nothing to sign\n");
}

/* A file replaced before its job ran (another inode) is not signed: the new one has its own job. */
static void test_replaced_file(void **state)
{
	struct outcome o;
	uint64_t ino;
	long len;

	(void)state;
	ino = put("k", "fw.bin", "old");
	submit("k", "fw.bin", ino + 1000000, &o);
	assert_int_equal(wait_done(&o), -ECANCELED);
	assert_null(output("fw.bin.sig", &len));
	assert_null(output("fw.bin.err", &len));
}

/*
 * Submit name (an input whose outputs are fw.bin's), begin fw.bin anew while
 * the backend holds the job's signature, and check that the job ends stale:
 * nothing placed.
 */
static void stale_while_held(const char *name, const char *content)
{
	struct outcome o;
	uint64_t id = 0;
	long len;

	t_mem.hold = true;
	submit("k", name, put("k", name, content), &o);
	t_mem_wait_held();
	assert_int_equal(sigfs_engine_begin(eng, "k", "fw.bin", 0, 1000, &id), 0);
	assert_true(id != 0);
	t_mem_release();
	assert_int_equal(wait_done(&o), -ECANCELED);
	assert_null(output("fw.bin.sig", &len));
	assert_null(output("fw.bin.err", &len));
	sigfs_engine_drop(eng, id);
}

/*
 * A job whose artifact is rewritten while the backend signs it is stale: its
 * signature is not placed (begin() marks it under the output lock, the job
 * checks under the same lock before it renames).
 */
static void test_stale_job(void **state)
{
	(void)state;
	stale_while_held("fw.bin", "version 1");
}

/* What take() was handed. */
struct taken {
	int n;
	uint64_t id, ino;
	char name[64];
};

static void take(void *arg, const struct sigfs_submit *s)
{
	struct taken *t = arg;

	t->n++;
	t->id = s->id;
	t->ino = s->ino;
	snprintf(t->name, sizeof(t->name), "%s", s->name);
}

/* Stop with fw.bin begun (journaled W, never submitted) and start again. */
static void restart_with_unfinished_write(uint64_t *ino)
{
	char err[SIGFS_ERRLEN] = "";
	uint64_t id = 0;

	*ino = put("k", "fw.bin", "half of it");
	assert_int_equal(sigfs_engine_begin(eng, "k", "fw.bin", *ino, 1000, &id), 0);
	sigfs_engine_stop(eng);
	if (sigfs_engine_start(&st.cfg, st.ks, st.audit, &eng, err) != 0)
		fail_msg("start: %s", err);
}

/* A write the last run left unfinished gets NAME.err, as after a crash. */
static void test_unfinished_marked(void **state)
{
	uint64_t ino;
	long len;

	(void)state;
	restart_with_unfinished_write(&ino);
	assert_null(output("fw.bin.err", &len));        /* not before the front end says */
	sigfs_engine_unfinished(eng, NULL, NULL);
	assert_non_null(output("fw.bin.err", &len));
	assert_null(output("fw.bin.sig", &len));
}

/* After a restart on a kept mount the front end takes it over, and may sign it. */
static void test_unfinished_taken(void **state)
{
	struct taken t = { 0 };
	struct outcome o;
	struct sigfs_submit s = { .key = "k", .name = "fw.bin", .done = on_done, .arg = &o };
	uint8_t want[35];
	const char *out;
	uint64_t ino;
	long len;

	(void)state;
	restart_with_unfinished_write(&ino);
	sigfs_engine_unfinished(eng, take, &t);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.name, "fw.bin");
	assert_int_equal(t.ino, ino);
	assert_true(t.id != 0);
	assert_null(output("fw.bin.err", &len));
	/* The writer finished: the front end submits it under the journaled id. */
	put("k", "fw.bin", "all of it");
	pthread_mutex_init(&o.lock, NULL);
	pthread_cond_init(&o.cond, NULL);
	o.done = false;
	s.ino = ino;
	s.id = t.id;
	assert_int_equal(sigfs_engine_submit(eng, &s), 0);
	assert_int_equal(wait_done(&o), 0);
	out = output("fw.bin.sig", &len);
	mem_sig("all of it", want);
	assert_non_null(out);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* Set name's times in key k's inbox to t (mtime and atime); its inode. */
static uint64_t put_at(const char *name, const char *content, struct timespec t)
{
	const struct timespec times[2] = { t, t };
	char path[600];
	uint64_t ino = put("k", name, content);

	path_of(path, sizeof(path), "k", name);
	assert_int_equal(utimensat(AT_FDCWD, path, times, 0), 0);
	return ino;
}

/* Output name of key k has mtime and atime t, to the nanosecond. */
static void assert_times(const char *name, struct timespec t)
{
	char path[600];
	struct stat sb;

	path_of(path, sizeof(path), "k", name);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mtim.tv_sec, t.tv_sec);
	assert_int_equal(sb.st_mtim.tv_nsec, t.tv_nsec);
	assert_int_equal(sb.st_atim.tv_sec, t.tv_sec);
	assert_int_equal(sb.st_atim.tv_nsec, t.tv_nsec);
}

/* Every output carries its input's mtime, the signature and the .err alike (decision 63). */
static void test_output_time(void **state)
{
	const struct timespec t1 = { 1600000000, 123456789 }, t2 = { 1600000001, 987654321 };
	struct outcome o;

	(void)state;
	submit("k", "fw.bin", put_at("fw.bin", "firmware 1.0\n", t1), &o);
	assert_int_equal(wait_done(&o), 0);
	assert_times("fw.bin.sig", t1);
	submit("k", "empty", put_at("empty", "", t2), &o);
	assert_int_equal(wait_done(&o), -ENODATA);
	assert_times("empty.err", t2);
}

/* The signature's time is the store's wall clock; its file name the artifact's. */
static void test_signature_time(void **state)
{
	char err[SIGFS_ERRLEN] = "";
	const char *out;
	long len;
	int i;

	(void)state;
	i = sigfs_key_attr_find("algorithm");
	assert_int_equal(sigfs_keys_attr_write(st.ks, "k", (size_t)i, (const uint8_t *)"ed25519",
					       7, 0, err), 0);
	i = sigfs_key_attr_find("format");
	assert_int_equal(sigfs_keys_attr_write(st.ks, "k", (size_t)i, (const uint8_t *)"minisign",
					       8, 0, err), 0);
	t_wall_now = 1234567890;
	assert_int_equal(sign_now("a.txt", "hello\n"), 0);
	out = output("a.txt.minisig", &len);
	assert_non_null(out);
	assert_non_null(strstr(out, "\ntrusted comment: timestamp:1234567890\tfile:a.txt\thashed\n"));
	assert_memory_equal(out, "untrusted comment: signature from sigfs key k\n", 46);
}

/*
 * A digest line or a request whose job is still signing when its artifact
 * is begun anew is stale as well: all three name their outputs NAME.*, and
 * forget looks for NAME.<digest> and NAME.sigreq jobs while any such job
 * lives (a count kept as jobs come and go, decision 81). Twice each, so that
 * the count is still right after the first jobs have ended.
 */
static void test_stale_derived_job(void **state)
{
	const char *names[] = { "fw.bin.sha256", "fw.bin.sigreq", "fw.bin.sha256", "fw.bin.sigreq" };
	char line[128], req[512], hex[65];
	uint8_t sig[35];
	long len;

	(void)state;
	mem_sig_hex("the real file", sig, hex);
	snprintf(line, sizeof(line), "%s  fw.bin\n", hex);
	request_of(hex, req, sizeof(req));
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *content = strstr(names[i], "sigreq") ? req : line;

		stale_while_held(names[i], content);
		/* Not begun again: the same input is signed. */
		assert_int_equal(sign_now(names[i], content), 0);
		assert_non_null(output("fw.bin.sig", &len));
		assert_int_equal(len, 35);
		assert_memory_equal(output("fw.bin.sig", &len), sig, 35);
		sigfs_engine_forget(eng, "k", "fw.bin");
		assert_null(output("fw.bin.sig", &len));
	}
}

/* Submit name of key k as a spool job in directory d. */
static void submit_spool(struct sigfs_dirref *d, const char *name, uint64_t ino,
			 struct outcome *o)
{
	struct sigfs_submit s = { .key = "k", .name = name, .ino = ino, .uid = 1000,
				  .done = on_done, .arg = o, .spool = true, .dir = d };

	memset(o, 0, sizeof(*o));
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
	assert_int_equal(sigfs_engine_submit(eng, &s), 0);
}

/*
 * In a spool, forget removes the outputs a job placed even when the spool
 * has not yet seen their names (sigfs_engine_output_seen: here it is never
 * called): a job puts its output's suffix and base into the key's filter
 * before the name exists (decision 81). A rewrite read from inotify before
 * the IN_CREATE of the .sig it made would otherwise leave the old .sig.
 */
static void test_spool_forget_placed(void **state)
{
	char path[600];
	struct sigfs_dirref *d;
	struct outcome o;
	long len;
	int fd;

	(void)state;
	path_of(path, sizeof(path), "k", "");
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	d = sigfs_dirref_new(fd);
	assert_non_null(d);
	submit_spool(d, "fw.bin", put("k", "fw.bin", "firmware\n"), &o);
	assert_int_equal(wait_done(&o), 0);
	submit_spool(d, "empty", put("k", "empty", ""), &o);
	assert_int_equal(wait_done(&o), -ENODATA);
	assert_non_null(output("fw.bin.sig", &len));
	assert_non_null(output("empty.err", &len));

	sigfs_engine_forget_at(eng, "k", sigfs_dirref_fd(d), "fw.bin");
	assert_null(output("fw.bin.sig", &len));
	assert_non_null(output("empty.err", &len));
	sigfs_engine_forget_at(eng, "k", sigfs_dirref_fd(d), "empty");
	assert_null(output("empty.err", &len));
	sigfs_dirref_put(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_file_signed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_digest_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backend_down, setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replaced_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_signature_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unfinished_marked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unfinished_taken, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_time, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_derived_job, setup, teardown),
		cmocka_unit_test_setup_teardown(test_spool_forget_placed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
