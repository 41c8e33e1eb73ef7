/*
 * format.c: the table of output formats. Adding a format is one row here and
 * one file signer/format_NAME.c; nothing else switches on a format name.
 */
#include <string.h>

#include "signer/format.h"

extern const struct sigfs_format sigfs_format_raw;
extern const struct sigfs_format sigfs_format_openpgp;
extern const struct sigfs_format sigfs_format_openpgp_armor;
extern const struct sigfs_format sigfs_format_sshsig;
extern const struct sigfs_format sigfs_format_minisign;
extern const struct sigfs_format sigfs_format_cms;
extern const struct sigfs_format sigfs_format_kmod;
extern const struct sigfs_format sigfs_format_swupdate;

static const struct sigfs_format *const formats[] = {
	&sigfs_format_raw,
	&sigfs_format_openpgp,
	&sigfs_format_openpgp_armor,
	&sigfs_format_sshsig,
	&sigfs_format_minisign,
	&sigfs_format_cms,
	&sigfs_format_kmod,
	&sigfs_format_swupdate,
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
