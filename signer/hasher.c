/* hasher.c: the EVP kind of hasher.h, and the calls common to every kind. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "signer/hasher.h"

static int evp_update(struct sigfs_hasher *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->priv, p, n) == 1 ? 0 : -EIO;
}

static int evp_final(struct sigfs_hasher *h, uint8_t *out)
{
	return EVP_DigestFinal_ex(h->priv, out, NULL) == 1 ? 0 : -EIO;
}

static void evp_free(struct sigfs_hasher *h)
{
	EVP_MD_CTX_free(h->priv);
	free(h);
}

static struct sigfs_hasher *evp_dup(const struct sigfs_hasher *h);

static const struct sigfs_hasher_ops evp_ops = {
	.update = evp_update,
	.final = evp_final,
	.dup = evp_dup,
	.free = evp_free,
};

static struct sigfs_hasher *evp_wrap(EVP_MD_CTX *ctx)
{
	struct sigfs_hasher *h = calloc(1, sizeof(*h));
	const EVP_MD *md = EVP_MD_CTX_get0_md(ctx);

	if (!h) {
		EVP_MD_CTX_free(ctx);
		return NULL;
	}
	h->ops = &evp_ops;
	h->name = EVP_MD_get0_name(md);
	h->len = (size_t)EVP_MD_get_size(md);
	h->priv = ctx;
	return h;
}

static struct sigfs_hasher *evp_dup(const struct sigfs_hasher *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || !EVP_MD_CTX_copy_ex(c, h->priv)) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	return evp_wrap(c);
}

struct sigfs_hasher *sigfs_hasher_new(const EVP_MD *md)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();

	if (!c || !EVP_DigestInit_ex(c, md, NULL)) {
		EVP_MD_CTX_free(c);
		return NULL;
	}
	return evp_wrap(c);
}

struct sigfs_hasher *sigfs_hasher_dup(const struct sigfs_hasher *h)
{
	return h->ops->dup(h);
}

int sigfs_hasher_update(struct sigfs_hasher *h, const void *p, size_t n)
{
	return h->ops->update(h, p, n);
}

int sigfs_hasher_peek(const struct sigfs_hasher *h, uint8_t *out)
{
	struct sigfs_hasher *c = sigfs_hasher_dup(h);
	int r;

	if (!c)
		return -ENOMEM;
	r = c->ops->final(c, out);
	c->ops->free(c);
	return r;
}

int sigfs_hasher_final(struct sigfs_hasher *h, uint8_t *out)
{
	return h->ops->final(h, out);
}

void sigfs_hasher_free(struct sigfs_hasher *h)
{
	if (h)
		h->ops->free(h);
}

int sigfs_hasher_is(const struct sigfs_hasher *h, const EVP_MD *md)
{
	return EVP_MD_is_a(md, h->name);
}
