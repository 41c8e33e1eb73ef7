/*
 * audit.h: the audit log. Every signature, key creation and key deletion is
 * appended as one line. Each line carries the SHA-256 of the previous line
 * (a hash chain), so editing, removing or reordering a line is detected by
 * sigfs_audit_verify() (`sigfsd --verify-audit FILE`). Format: docs/audit.md.
 *
 *   <seq> <unix-time> <event> key=<key> uid=<uid> owner=<uid> digest=<alg>:<hex>
 *     name=<escaped-name> prev=<hex sha256 of previous line>
 *
 * (one line; fields that do not apply are "-"). uid= is the user whose request
 * caused the event, owner= the owner of the file signed. Lines of versions
 * before owner= existed have no owner= field; verify accepts both shapes.
 */
#ifndef SIGFS_AUDIT_H
#define SIGFS_AUDIT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct sigfs_audit;

/*
 * Open (create, mode 0600) the log name in directory dirfd, read its last
 * line to continue the chain. It must be a regular file of the daemon's
 * (common/safedir.h: no link, one hard link, not group/other-writable).
 */
int sigfs_audit_open(int dirfd, const char *name, struct sigfs_audit **out, char *err);
void sigfs_audit_close(struct sigfs_audit *a);

/*
 * Append one event ("sign", "keygen", "keydel", "import"...): uid caused it,
 * owner owns the file it is about ((uid_t)-1 for "-"). digest_name and digest
 * may be NULL. Thread-safe. name is escaped before it is written.
 */
int sigfs_audit_append(struct sigfs_audit *a, const char *event, const char *key, uid_t uid,
		       uid_t owner, const char *digest_name, const uint8_t *digest,
		       size_t digest_len, const char *name);

/*
 * Check the chain of the log at path. Returns 0 when intact (and *lines, if
 * not NULL, is the number of lines), or -EBADMSG with the first bad line
 * number and why in err.
 */
int sigfs_audit_verify(const char *path, size_t *lines, char *err);

#endif
