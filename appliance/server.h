/*
 * server.h: the appliance's request handling, one frame in, one reply frame
 * out, with no sockets, TLS or threads of its own. main.c calls it for every
 * frame a connection reads; tests/fuzz/fuzz_appliance.c calls it with frames
 * made of fuzzer input, which is why it is apart from main.c.
 */
#ifndef SIGFS_APPLIANCE_SERVER_H
#define SIGFS_APPLIANCE_SERVER_H

#include <semaphore.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "appliance/clients.h"
#include "appliance/store.h"
#include "common/sbuf.h"
#include "protocol/proto.h"

/* What every request sees; set up once, shared by all connections. */
struct server {
	const char *name;     /* this appliance's name in HELLO and logs */
	bool verbose;         /* one log line per request, not only per failure */
	FILE *log;            /* where log lines go */
	struct store *store;
	sem_t *engines;       /* one count per signature computed at once */
	uint32_t max_frame;   /* the largest frame taken (--max-frame), announced in HELLO */
};

/* Write "sigfs-appliance NAME: message" as one line to s->log. */
void server_vlog(const struct server *s, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/*
 * Answer request frame f from client (its TLS identity), whose clients-file
 * roles are roles (enum client_role bits, read afresh for every request so
 * SIGHUP applies at once), into out: sbuf_init'd with max s->max_frame + 4,
 * emptied first; the reply is built in it directly, so a connection holds one
 * reply, never a copy. An op the roles do not allow is refused with
 * PROTO_E_DENIED before its body is read. *greeted is the connection's HELLO
 * state, false on a new one. Returns false when the connection must close
 * after the reply (wrong frame version, or a first request that is not HELLO).
 */
bool server_serve(const struct server *s, const char *client, unsigned roles,
		  const struct proto_frame *f, bool *greeted, struct sbuf *out);

#endif
