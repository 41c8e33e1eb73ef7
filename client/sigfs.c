/*
 * sigfs: the client. `sigfs wait FILE...` waits for the outputs of files
 * written into an inbox (client/wait.c). `sigfs request FILE` hashes FILE
 * here and writes a signing request (docs/requests.md), so a build host
 * copies a few hundred bytes into an inbox instead of the artifact:
 *
 *   sigfs request fw.bin && cp fw.bin.sigreq /srv/sigfs/release/   -> fw.bin.sig
 *
 * For OpenPGP it writes a Signstar v1 request carrying the SHA-512 state
 * after the whole file (what Signstar's own client sends): OpenPGP signs a
 * hash of the file followed by the signature's trailer, so the server must
 * continue the hash, not receive its final value. For every other format it
 * writes our digest request. Before writing, it checks the request with the
 * daemon's own parser, so what it writes is what this version accepts.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "client/wait.h"
#include "common/alg.h"
#include "common/err.h"
#include "common/hex.h"
#include "signer/format.h"
#include "signer/hasher.h"
#include "signer/request.h"
#include "signer/sha512.h"

#define DEFAULT_FORMAT "openpgp"
/* Every format that signs a digest takes SHA-512 (sshsig takes nothing else). */
#define DEFAULT_DIGEST "sha512"
#define READ_CHUNK (1 << 20)

static void usage(FILE *to)
{
	fprintf(to,
		"usage: sigfs request FILE [--format F] [--digest D] [-o OUT]\n"
		"  Hash FILE and write a signing request to OUT (default: ./FILE.sigreq,\n"
		"  '-' for standard output). Copy it into an inbox to get FILE's signature.\n"
		"  --format F  output format: openpgp (default), openpgp-armor, raw, sshsig, cms ...\n"
		"  --digest D  hash for formats that sign a digest (default " DEFAULT_DIGEST ")\n");
	sigfs_wait_usage(to);
}

/* Feed the whole of path into h. 0, or -1 after a message. */
static int hash_file(const char *path, struct sigfs_hasher *h)
{
	uint8_t *buf = malloc(READ_CHUNK);
	int fd = open(path, O_RDONLY | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0 || !buf) {
		fprintf(stderr, "sigfs: cannot read %s: %s\n", path, strerror(fd < 0 ? errno : ENOMEM));
		free(buf);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while ((n = read(fd, buf, READ_CHUNK)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || sigfs_hasher_update(h, buf, (size_t)n) < 0) {
			fprintf(stderr, "sigfs: cannot hash %s: %s\n", path,
				strerror(n < 0 ? errno : EIO));
			r = -1;
			break;
		}
	}
	close(fd);
	free(buf);
	return r;
}

/* {"type":"sha2-0.11-SHA512-state","content":[208 numbers]} of the whole file. */
static json_t *state_input(const char *path)
{
	struct sigfs_hasher *h = sigfs_sha512_new();
	uint8_t st[SIGFS_SHA512_STATE_LEN];
	json_t *content = json_array();

	if (!h || !content || hash_file(path, h) < 0 || sigfs_sha512_state(h, st) < 0) {
		sigfs_hasher_free(h);
		json_decref(content);
		return NULL;
	}
	sigfs_hasher_free(h);
	for (size_t i = 0; i < sizeof(st); i++)
		json_array_append_new(content, json_integer(st[i]));
	return json_pack("{s:s, s:o}", "type", "sha2-0.11-SHA512-state", "content", content);
}

/* {"type":"sigfs-digest-v1","algorithm":D,"digest":"<hex>"} of the whole file. */
static json_t *digest_input(const char *path, const struct sigfs_digest *d)
{
	struct sigfs_hasher *h = sigfs_hasher_new(sigfs_digest_md(d));
	uint8_t v[SIGFS_MAX_DIGEST];
	char hex[2 * SIGFS_MAX_DIGEST + 1];

	if (!h || hash_file(path, h) < 0 || sigfs_hasher_final(h, v) < 0) {
		sigfs_hasher_free(h);
		return NULL;
	}
	sigfs_hasher_free(h);
	sigfs_hex_encode(v, d->len, hex);
	return json_pack("{s:s, s:s, s:s}", "type", "sigfs-digest-v1", "algorithm", d->name,
			 "digest", hex);
}

/* Write all of text to out ("-": stdout); close() reports a signing failure in an inbox. */
static int write_out(const char *out, const char *text)
{
	size_t len = strlen(text), done = 0;
	int fd = strcmp(out, "-") == 0 ? STDOUT_FILENO :
		 open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0) {
		fprintf(stderr, "sigfs: cannot create %s: %s\n", out, strerror(errno));
		return -1;
	}
	while (done < len) {
		ssize_t n = write(fd, text + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "sigfs: cannot write %s: %s\n", out, strerror(errno));
			if (fd != STDOUT_FILENO)
				close(fd);
			return -1;
		}
		done += (size_t)n;
	}
	if (fd != STDOUT_FILENO && close(fd) < 0) {
		fprintf(stderr, "sigfs: %s: %s (inside a sigfs inbox: signing failed, see the "
			".err file next to it)\n", out, strerror(errno));
		return -1;
	}
	return 0;
}

/* What `sigfs request` was asked for. */
struct request_args {
	const char *format, *digest;  /* digest: NULL unless --digest */
	const char *out, *path;       /* out: NULL for the default */
	const struct sigfs_digest *d; /* --digest's, or the default one */
};

/* Read the command line into a: -1 to go on, or the exit status (help, usage errors). */
static int request_args(int argc, char **argv, struct request_args *a)
{
	static const struct option opts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "digest", required_argument, NULL, 'd' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*a = (struct request_args){ .format = DEFAULT_FORMAT };
	while ((c = getopt_long(argc, argv, "f:d:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			a->format = optarg;
			break;
		case 'd':
			a->digest = optarg;
			break;
		case 'o':
			a->out = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return 2;
	}
	a->path = argv[optind];
	if (!sigfs_format_by_name(a->format)) {
		fprintf(stderr, "sigfs: unknown format \"%s\"; see sigfs request --help\n", a->format);
		return 2;
	}
	a->d = sigfs_digest_by_name(a->digest ? a->digest : DEFAULT_DIGEST);
	if (!a->d) {
		fprintf(stderr, "sigfs: unknown digest \"%s\" (sha256, sha512, sha3-256 ...)\n",
			a->digest ? a->digest : DEFAULT_DIGEST);
		return 2;
	}
	return -1;
}

/* The request for input (whose reference it takes) as JSON text to free, NULL if out of memory. */
static char *request_text(const char *format, json_t *input, const char *file_name)
{
	json_t *req = json_pack("{s:s, s:{s:o, s:{s:s+}}, s:{s:I, s:s}}",
				"version", "1.0.0",
				"required", "input", input, "output", "type",
				strcmp(format, DEFAULT_FORMAT) == 0 ? "OpenPGPv4" : "sigfs-",
				strcmp(format, DEFAULT_FORMAT) == 0 ? "" : format,
				"optional", "request-time", (json_int_t)time(NULL),
				"file-name", file_name);
	char *text = req ? json_dumps(req, JSON_INDENT(2)) : NULL;

	json_decref(req);
	return text;
}

static int cmd_request(int argc, char **argv)
{
	char *base_copy, *text, default_out[PATH_MAX], err[SIGFS_ERRLEN] = "";
	struct sigfs_request check;
	struct request_args a;
	json_t *input;
	int rc = request_args(argc, argv, &a);

	if (rc >= 0)
		return rc;
	rc = 1;
	/* OpenPGP formats need a hash state (see the top of this file); --digest overrides. */
	if (!a.digest && strncmp(a.format, "openpgp", strlen("openpgp")) == 0)
		input = state_input(a.path);
	else
		input = digest_input(a.path, a.d);
	if (!input)
		return 1;
	base_copy = strdup(a.path);
	if (!base_copy) {
		json_decref(input);
		fprintf(stderr, "sigfs: out of memory\n");
		return 1;
	}
	text = request_text(a.format, input, basename(base_copy));
	if (text && !a.out) {
		snprintf(default_out, sizeof(default_out), "%s.sigreq", basename(base_copy));
		a.out = default_out;
	}
	free(base_copy);
	if (!text) {
		fprintf(stderr, "sigfs: out of memory\n");
		return 1;
	}
	if (sigfs_request_parse((const uint8_t *)text, strlen(text), &check, err) < 0)
		fprintf(stderr, "sigfs: the request would be refused: %s\n", err);
	else if (write_out(a.out, text) == 0)
		rc = 0;
	sigfs_request_free(&check);
	free(text);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "request") == 0)
		return cmd_request(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "wait") == 0)
		return sigfs_wait_cmd(argc - 1, argv + 1);
	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return 2;
}
