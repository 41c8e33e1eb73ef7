/*
 * admit.h: the appliance's budget for connections whose TLS handshake has not
 * finished. Anyone who reaches the port can open TCP connections, and before
 * the handshake proves a client's key nothing tells an attacker from a
 * client; so such a connection takes one of max_total slots, at most
 * max_per_src of them from one source, and one beyond either is closed at
 * once. A source is an IPv4 address, or an IPv6 /64 (one host commonly holds
 * a whole /64). Authenticated connections have a budget of their own
 * (main.c). Pure bookkeeping, no locks: main.c calls it under its lock.
 */
#ifndef SIGFS_APPLIANCE_ADMIT_H
#define SIGFS_APPLIANCE_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct admit_slot {
	uint8_t src[16];
	bool used;
};

struct admit {
	unsigned max_total, max_per_src;
	unsigned n;                    /* slots in use */
	struct admit_slot *slot;       /* max_total of them */
};

/* An empty budget; -EINVAL unless 1 <= max_per_src <= max_total, -ENOMEM. */
int admit_init(struct admit *a, unsigned max_total, unsigned max_per_src);
void admit_free(struct admit *a);

/* The source of sa as 16 bytes: IPv4 as ::ffff:A.B.C.D, IPv6 cut to its /64. */
void admit_source(const struct sockaddr *sa, uint8_t src[16]);
/* The source of sa for messages: "192.0.2.7", "[2001:db8:1:2::]/64". */
void admit_source_name(const struct sockaddr *sa, char *out, size_t len);

/*
 * Take a slot for a new connection from sa: its index; -ENOSPC when
 * max_total are taken, -EDQUOT when sa's source holds max_per_src.
 */
int admit_take(struct admit *a, const struct sockaddr *sa);
/* Give back a slot admit_take returned. */
void admit_release(struct admit *a, int slot);

#endif
