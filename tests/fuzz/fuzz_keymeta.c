/*
 * fuzz_keymeta.c: libFuzzer target for the key settings file
 * <state>/keys/NAME/meta, parsed by sigfs_key_meta_parse() (signer/keys.c)
 * when the store opens: each input is such a file, as a crash, a full disk
 * or an admin's editor may have left it.
 *
 * Besides ASan and UBSan findings, it aborts when the parser breaks its
 * contract (signer/keys.h): an accepted file must give a complete key (an
 * algorithm, digest, format and backend; strings within their fields; a uid
 * and namespace, by default if not set) that reads back the same when
 * written by the store's own sigfs_key_meta_format(); a refused one must come with one
 * printable line naming the key. Built by tests/fuzz/run.sh.
 */
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "signer/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse(const uint8_t *data, size_t size, struct sigfs_key *k, bool *auto_seen, int *r,
		  char *err)
{
	memset(k, 0, sizeof(*k));
	strcpy(k->name, "fw");
	err[0] = '\0';
	*r = sigfs_key_meta_parse(data, size, k, auto_seen, err);
}

static void check_key(const struct sigfs_key *k)
{
	if (!k->alg || !k->digest || !k->format || !k->backend[0] ||
	    !memchr(k->backend, '\0', sizeof(k->backend)) || !k->uid[0] ||
	    !memchr(k->uid, '\0', sizeof(k->uid)) || !k->ssh_namespace[0] ||
	    !memchr(k->ssh_namespace, '\0', sizeof(k->ssh_namespace)))
		abort();
}

static int same(const struct sigfs_key *a, const struct sigfs_key *b)
{
	return a->alg == b->alg && a->digest == b->digest && a->digest_auto == b->digest_auto &&
	       a->format == b->format &&
	       a->padding == b->padding && a->allow_sha1 == b->allow_sha1 &&
	       a->digest_files == b->digest_files && strcmp(a->backend, b->backend) == 0 &&
	       a->created == b->created && strcmp(a->uid, b->uid) == 0 &&
	       strcmp(a->ssh_namespace, b->ssh_namespace) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[SIGFS_ERRLEN], buf[SIGFS_KEY_META_MAX];
	struct sigfs_key k, again;
	bool seen;
	int r, n;

	parse(data, size, &k, &seen, &r, err);
	if (r < 0) {
		if (strncmp(err, "key fw: ", 8) != 0)
			abort();
		for (const char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				abort();
		return 0;
	}
	check_key(&k);
	/* Without digest_auto= the store decides (keys.c read_meta); the parser leaves it false. */
	if (!seen && k.digest_auto)
		abort();
	n = sigfs_key_meta_format(&k, buf, sizeof(buf));
	if (n < 0)
		abort();
	parse((const uint8_t *)buf, (size_t)n, &again, &seen, &r, err);
	if (r < 0 || !seen || !same(&k, &again))
		abort();
	return 0;
}
