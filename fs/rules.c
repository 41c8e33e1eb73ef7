/* rules.c: the front end's rules of rules.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "fs/rules.h"
#include "signer/engine.h"

int fs_path(char *buf, const char *dir, const char *name)
{
	int n = name ? snprintf(buf, FS_PATH_MAX, "%s/%s", dir, name) :
		snprintf(buf, FS_PATH_MAX, "%s", dir);

	return n < 0 || n >= FS_PATH_MAX ? -ENAMETOOLONG : 0;
}

bool fs_name_hidden(const char *name)
{
	return strncmp(name, SIGFS_TMP_PREFIX, strlen(SIGFS_TMP_PREFIX)) == 0;
}

bool fs_flags_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

int fs_close_errno(int result)
{
	switch (result) {
	case 0:
		return 0;
	case -ECANCELED:
	case -ENOSPC:
	case -EDQUOT:
	case -ETIMEDOUT:
		return -result;
	default:
		return EIO;
	}
}

bool fs_owner_only(uid_t uid, const struct stat *inbox)
{
	return uid != 0 && (inbox->st_mode & S_ISVTX) && uid != inbox->st_uid;
}

void fs_key_split(const char *name, char *key, const char **backend)
{
	const char *at = strchr(name, '@');

	snprintf(key, NAME_MAX + 1, "%.*s", at ? (int)(at - name) : (int)strlen(name), name);
	*backend = at ? at + 1 : NULL;
}
