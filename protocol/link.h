/*
 * link.h: one TLS 1.3 PSK connection carrying protocol frames (proto.h),
 * shared by the appliance daemon (server side) and the appliance backend
 * (client side). TLS 1.3 only, cipher TLS_AES_128_GCM_SHA256, external PSK:
 * the client offers identity = its name; the server looks the name up in its
 * clients file. No certificates anywhere.
 *
 * All functions return 0 or a negative errno code, and fill err
 * (SIGFS_ERRLEN bytes) with one line saying what failed.
 */
#ifndef SIGFS_PROTOCOL_LINK_H
#define SIGFS_PROTOCOL_LINK_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "common/sbuf.h"
#include "protocol/proto.h"

/* Server side: look up a client's 32-byte key by name; 0 if found. */
typedef int (*link_psk_lookup)(void *arg, const char *client, uint8_t key[PROTO_PSK_LEN]);

SSL_CTX *link_server_ctx(link_psk_lookup lookup, void *arg, char *err);
/* Client side: the ctx carries name and key (copied; the caller wipes its own). */
SSL_CTX *link_client_ctx(const char *client, const uint8_t key[PROTO_PSK_LEN], char *err);
void link_ctx_free(SSL_CTX *ctx);

struct link {
	int fd;
	SSL *ssl;
	char peer[128];          /* "host:port" for messages */
	char client[PROTO_MAX_STR + 1];  /* server side: the authenticated client name */
	uint32_t max_frame;      /* client side: the largest frame the appliance takes (HELLO) */
};

/*
 * Server: listen on "host:port" (IPv4/IPv6 literal or name; port 0 picks one)
 * into *fd; bound gets the real "addr:port" (boundlen bytes).
 */
int link_listen(const char *hostport, int *fd, char *bound, size_t boundlen, char *err);

/*
 * Client: connect to "host:port" (IPv4/IPv6 literal or name) within
 * timeout_ms, run the TLS handshake and HELLO. -ECONNREFUSED, -ETIMEDOUT,
 * -EACCES (the appliance refused our key), -EPROTO (no common version). A
 * connection the appliance closes before the handshake ends (its budget for
 * handshakes from our address was full at that moment) is tried again, up to
 * 6 times in all, after jittered pauses from 10 ms, doubling; then -ECONNRESET.
 */
int link_connect(struct link *l, SSL_CTX *ctx, const char *hostport, int timeout_ms, char *err);
/*
 * Server: TLS handshake on an accepted fd (the link owns fd afterwards),
 * finished within timeout_ms (-ETIMEDOUT). -EACCES: the client's name or key
 * is not in the clients file.
 */
int link_accept(struct link *l, SSL_CTX *ctx, int fd, int timeout_ms, char *err);
/*
 * Client: whether a link kept open between requests can carry the next one.
 * Nothing may arrive on an idle link, so anything readable (the appliance's
 * close_notify when it closed the link for idleness, a reset, stray bytes)
 * means it cannot: -ECONNRESET, else 0. It does not wait.
 */
int link_idle_ok(struct link *l);
/*
 * Close l; closing twice is harmless. Only for a link that link_connect or
 * link_accept has had (both leave it closed, fd -1, when they fail): a
 * zero-filled struct has fd 0, which this would close.
 */
void link_close(struct link *l);

/* Send one finished frame (proto_end done). */
int link_send(struct link *l, const struct sbuf *frame, char *err);
/*
 * Receive one frame into buf (sbuf_init'd by the caller; buf->max - 4 is the
 * largest frame taken, at most PROTO_MAX_FRAME; emptied first) and parse it
 * into f (a view into buf). buf grows only with the bytes that arrive. The
 * whole frame must arrive within timeout_ms (< 0: wait forever), else
 * -ETIMEDOUT, buf->len 0 if not even its length field came. -ECONNRESET
 * when the peer went away. -EMSGSIZE for a frame over the limit: nothing of
 * it is buffered, but its header is read so f's ver, op and id (and f->len)
 * say what it was, for a reply.
 */
int link_recv(struct link *l, struct sbuf *buf, struct proto_frame *f, int timeout_ms, char *err);

/*
 * Client: send request frame req and wait for its reply (same id, op |
 * PROTO_REPLY). On a reply with status != 0 returns -EREMOTEIO with the
 * appliance's message in err and *status set (PROTO_E_DENIED reads
 * "appliance HOST:PORT refused OP: MESSAGE"); on PROTO_OK, f->body is
 * positioned after the status byte. A request over the appliance's
 * max_frame is not sent: -EMSGSIZE, err naming the limit.
 */
int link_call(struct link *l, const struct sbuf *req, struct sbuf *buf, struct proto_frame *f,
	      uint8_t *status, int timeout_ms, char *err);

#endif
