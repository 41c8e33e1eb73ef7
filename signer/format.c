/*
 * format.c: the table of output formats. Adding a format is one row here and
 * one file signer/format_NAME.c; nothing else switches on a format name.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/dirutil.h"
#include "signer/format.h"

extern const struct sigfs_format sigfs_format_raw;
extern const struct sigfs_format sigfs_format_openpgp;
extern const struct sigfs_format sigfs_format_openpgp_armor;
extern const struct sigfs_format sigfs_format_sshsig;
extern const struct sigfs_format sigfs_format_minisign;
extern const struct sigfs_format sigfs_format_cms;
extern const struct sigfs_format sigfs_format_kmod;
extern const struct sigfs_format sigfs_format_swupdate;
extern const struct sigfs_format sigfs_format_mender;
extern const struct sigfs_format sigfs_format_authenticode;

static const struct sigfs_format *const formats[] = {
	&sigfs_format_raw,
	&sigfs_format_openpgp,
	&sigfs_format_openpgp_armor,
	&sigfs_format_sshsig,
	&sigfs_format_minisign,
	&sigfs_format_cms,
	&sigfs_format_kmod,
	&sigfs_format_swupdate,
	&sigfs_format_mender,
	&sigfs_format_authenticode,
};
#define N_FORMATS (sizeof(formats) / sizeof(formats[0]))

/* Failed jobs leave NAME.err, so its suffix bounds names like any format's. */
#define ERR_SUFFIX ".err"

const struct sigfs_format *sigfs_format_by_name(const char *name)
{
	for (size_t i = 0; i < N_FORMATS; i++)
		if (strcmp(formats[i]->name, name) == 0)
			return formats[i];
	return NULL;
}

const struct sigfs_format *sigfs_format_for(const struct sigfs_format *f, const char *name)
{
	const struct sigfs_format *g = f && f->for_input ? f->for_input(name) : NULL;

	return g ? g : f;
}

const struct sigfs_format *sigfs_format_at(size_t i)
{
	return i < N_FORMATS ? formats[i] : NULL;
}

size_t sigfs_format_max_suffix(void)
{
	size_t max = strlen(ERR_SUFFIX);

	for (size_t i = 0; i < N_FORMATS; i++)
		if (strlen(formats[i]->suffix) > max)
			max = strlen(formats[i]->suffix);
	return max;
}

const EVP_MD *sigfs_format_file_md(const struct sigfs_format *f, const struct sigfs_alg *alg,
				   const struct sigfs_digest *d)
{
	return f->file_md ? f->file_md(alg, d) : sigfs_digest_md(d);
}

const struct sigfs_format_attr *sigfs_format_attr_at(size_t i)
{
	for (size_t f = 0; f < N_FORMATS; f++) {
		if (i < formats[f]->nattrs)
			return &formats[f]->attrs[i];
		i -= formats[f]->nattrs;
	}
	return NULL;
}

int sigfs_format_read(const struct sigfs_format_input *in, void *buf, size_t n, uint64_t off)
{
	uint8_t *p = buf;

	if (off > in->message_len || n > in->message_len - off)
		return -EBADMSG;
	if (!in->message_file) {
		if (!in->message)
			return n ? -EBADMSG : 0;
		memcpy(buf, in->message + off, n);
		return 0;
	}
	while (n > 0) {
		ssize_t got = pread(in->message_fd, p, n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return got < 0 ? -errno : -EBADMSG;
		p += got;
		n -= (size_t)got;
		off += (uint64_t)got;
	}
	return 0;
}

static int sink_sbuf(void *ctx, const void *p, size_t n)
{
	return sbuf_put(ctx, p, n);
}

int sigfs_format_produce(const struct sigfs_format *f, const struct sigfs_format_input *in,
			 sigfs_sign_fn sign, void *sign_ctx, struct sbuf *out, char *err)
{
	const struct sigfs_sink sink = { sink_sbuf, out, NULL };

	if (f->produce)
		return f->produce(in, sign, sign_ctx, out, err);
	return f->produce_stream(in, sign, sign_ctx, &sink, err);
}

#define COPY_CHUNK (1u << 20)

static int sink_fd_write(void *ctx, const void *p, size_t n)
{
	return sigfs_write_all(*(int *)ctx, p, n);
}

/* The artifact's bytes copied by the kernel: no trip through user space (decision 79). */
static int sink_fd_copy(void *ctx, int fd, uint64_t off, uint64_t n, uint64_t *done)
{
	loff_t from = (loff_t)off;

	*done = 0;
	while (n > 0) {
		ssize_t c = copy_file_range(fd, &from, *(int *)ctx, NULL,
					    n < SSIZE_MAX ? (size_t)n : SSIZE_MAX, 0);

		if (c < 0 && errno == EINTR)
			continue;
		if (c <= 0)
			return c < 0 ? -errno : -EBADMSG;      /* 0: the file ended first */
		*done += (uint64_t)c;
		n -= (uint64_t)c;
	}
	return 0;
}

struct sigfs_sink sigfs_sink_fd(int *fd)
{
	return (struct sigfs_sink){ sink_fd_write, fd, sink_fd_copy };
}

int sigfs_format_copy(const struct sigfs_format_input *in, uint64_t off, uint64_t n,
		      const struct sigfs_sink *out)
{
	uint8_t *buf;
	uint64_t done = 0;
	int r = 0;

	if (off > in->message_len || n > in->message_len - off)
		return -EBADMSG;
	if (!in->message_file)
		return n && in->message ? out->write(out->ctx, in->message + off, (size_t)n) :
			n ? -EBADMSG : 0;
	if (out->copy && n > 0) {
		r = out->copy(out->ctx, in->message_fd, off, n, &done);
		if (r != -EXDEV && r != -EINVAL && r != -ENOSYS && r != -EOPNOTSUPP)
			return r;
		off += done;    /* the kernel cannot: the rest through memory */
		n -= done;
		r = 0;
	}
	buf = malloc(n < COPY_CHUNK ? (size_t)n + 1 : COPY_CHUNK);
	if (!buf)
		return -ENOMEM;
	while (r == 0 && n > 0) {
		size_t piece = n < COPY_CHUNK ? (size_t)n : COPY_CHUNK;

		r = sigfs_format_read(in, buf, piece, off);
		if (r == 0)
			r = out->write(out->ctx, buf, piece);
		off += piece;
		n -= piece;
	}
	free(buf);
	return r;
}
