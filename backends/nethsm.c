/*
 * nethsm.c: keys on a Nitrokey NetHSM, through its REST API v1 over HTTPS
 * (specs/nethsm-api.yaml). Settings of [backend NAME]: url (https://HOST:PORT),
 * user (`namespace~user` for a namespaced one) with password_file, and the
 * Administrator's admin_user / admin_password_file for generate and delete
 * (a NetHSM user has one role, and only an Operator may sign); defaults to
 * user. TLS trust: ca_file, or pinned_pubkey (sha256//BASE64 of the server's
 * public key). Password files are read as pkcs11's pin_file is: owned by the
 * daemon's user, mode 0600 or 0400, wiped after curl has a copy. tags: the
 * NetHSM tags every generated key is restricted to (only an Operator carrying
 * one of them may sign with it).
 *
 * Each signer worker has its own curl handle, admin calls one more and the
 * key list of .ctl/status one more, each under a mutex, so TLS connections
 * stay open between signatures. 412 (not Operational), 5xx and transport
 * errors are retried with exponential backoff for at most retry_seconds;
 * 401/403/404 fail at once, naming the status and the NetHSM's message. The
 * status connection never retries and has short timeouts, so a NetHSM that is
 * down does not hold up .ctl/status. docs/backend-nethsm.md has the modes per
 * key type; nethsm_reply.c parses what comes back.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "backends/backend.h"
#include "backends/nethsm_reply.h"
#include "common/err.h"
#include "common/sbuf.h"
#include "common/secret.h"

extern const struct sigfs_backend_ops sigfs_backend_nethsm;

#define PASS_MAX 256
#define REPLY_MAX (1 << 20)
#define ID_MAX 128
#define MAX_TAGS 32
/* The status connection: a NetHSM that is down must not hold up .ctl/status. */
#define STATUS_CONNECT_MS 2000L
#define STATUS_TIMEOUT_MS 4000L

struct conn {
	pthread_mutex_t lock;
	CURL *h;
	bool authed;                  /* credentials are set on h */
	bool admin;                   /* uses admin_user */
	bool status;                  /* for .ctl/status: one attempt, short timeouts */
};

struct nh {
	char name[64];
	char url[1024];
	char user[256], pass_file[4096];
	char admin_user[256], admin_pass_file[4096];
	char ca_file[4096], pinned[256];
	char *tags[MAX_TAGS];         /* restrictions of generated keys */
	size_t ntags;
	long retry_ms;
	unsigned nworkers;
	unsigned nconn;               /* nworkers, then admin calls, then status */
	struct conn *conn;
};

/* One HTTP exchange. */
struct req {
	const char *method;           /* GET, POST, DELETE */
	char path[256];               /* after /api/v1 */
	const char *body;             /* JSON or NULL */
	const char *accept;
	long status;
	struct sbuf rep;              /* the answer, at most REPLY_MAX bytes */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* --- credentials ------------------------------------------------------------- */

/* A reply past REPLY_MAX makes curl fail the transfer (CURLE_WRITE_ERROR). */
static size_t on_data(char *data, size_t size, size_t n, void *arg)
{
	return sbuf_put(arg, data, size * n) < 0 ? 0 : size * n;
}

/* Set up c's handle and credentials unless done. Called with c->lock held. */
static int conn_ready(struct nh *p, struct conn *c, char *err)
{
	char pw[PASS_MAX];
	size_t pwlen;
	int r;

	if (!c->h) {
		c->h = curl_easy_init();
		if (!c->h)
			return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: curl_easy_init failed",
					    p->name);
		c->authed = false;
	}
	if (c->authed)
		return 0;
	r = sigfs_read_secret("nethsm", p->name, c->admin ? "admin_password_file" : "password_file",
			      "password", c->admin ? p->admin_pass_file : p->pass_file, pw,
			      sizeof(pw), &pwlen, err);
	if (r < 0)
		return r;
	curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	curl_easy_setopt(c->h, CURLOPT_USERNAME, c->admin ? p->admin_user : p->user);
	/* curl keeps its own copy for the connection's life; ours goes now. */
	curl_easy_setopt(c->h, CURLOPT_PASSWORD, pw);
	OPENSSL_cleanse(pw, sizeof(pw));
	if (p->ca_file[0])
		curl_easy_setopt(c->h, CURLOPT_CAINFO, p->ca_file);
	if (p->pinned[0])
		curl_easy_setopt(c->h, CURLOPT_PINNEDPUBLICKEY, p->pinned);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, c->status ? STATUS_CONNECT_MS : 5000L);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, c->status ? STATUS_TIMEOUT_MS : 30000L);
	curl_easy_setopt(c->h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c->h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_data);
	c->authed = true;
	return 0;
}

/* --- HTTP with retries ----------------------------------------------------------- */

/* One attempt. Returns 0 with q->status set, or a curl error (transport failure). */
static CURLcode attempt(struct nh *p, struct conn *c, struct req *q)
{
	struct curl_slist *hdr = NULL, *h2;
	char url[1400], accept[128];
	CURLcode rc;

	sbuf_free(&q->rep);
	sbuf_init(&q->rep, REPLY_MAX);
	q->status = 0;
	snprintf(url, sizeof(url), "%s/api/v1%s", p->url, q->path);
	snprintf(accept, sizeof(accept), "Accept: %s", q->accept);
	h2 = curl_slist_append(hdr, accept);
	if (h2)
		hdr = h2;
	if (q->body && (h2 = curl_slist_append(hdr, "Content-Type: application/json")))
		hdr = h2;
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &q->rep);
	curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, NULL);
	if (strcmp(q->method, "POST") == 0) {
		curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, q->body ? q->body : "");
	} else {
		curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
		if (strcmp(q->method, "GET") != 0)
			curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, q->method);
	}
	rc = curl_easy_perform(c->h);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &q->status);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdr);
	return rc;
}

static int status_errno(long status)
{
	switch (status) {
	case 400: return -EINVAL;
	case 401: return -EACCES;
	case 403: return -EPERM;
	case 404: return -ENOENT;
	case 412: return -EAGAIN;
	default: return -EIO;
	}
}

/*
 * Run q on connection idx: retry 412, 5xx and transport errors with backoff
 * (0.1 s doubling up to 2 s) until retry_seconds have passed (never on the
 * status connection). On success q->status is 2xx; otherwise err says what
 * the NetHSM (or the network) said.
 */
static int call(struct nh *p, unsigned idx, struct req *q, char *err)
{
	struct conn *c = &p->conn[idx % p->nconn];
	long start = sigfs_backend_now_ms(), delay = 100;
	char msg[160];
	const char *hint = "";
	CURLcode rc = CURLE_OK;
	bool ok = false;
	int r, tries = 0;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		r = conn_ready(p, c, err);
		if (r < 0)
			break;
		tries++;
		rc = attempt(p, c, q);
		if (rc == CURLE_OK && q->status >= 200 && q->status < 300) {
			ok = true;
			break;
		}
		if (rc == CURLE_OK && q->status == 401)
			c->authed = false;  /* read password_file again next time */
		if ((rc == CURLE_OK && q->status != 412 && q->status < 500) ||
		    rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_PINNEDPUBKEYNOTMATCH ||
		    rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_URL_MALFORMAT || c->status ||
		    sigfs_backend_now_ms() - start >= p->retry_ms)
			break;
		delay = sigfs_backend_backoff(delay, start + p->retry_ms);
	}
	if (r == 0 && !ok && rc == CURLE_OK) {
		nethsm_reply_message(&q->rep, msg, sizeof(msg));
		if (q->status == 401)
			hint = "; check user and password_file";
		else if (q->status == 403)
			hint = "; the user may not do this (signing needs an Operator carrying one "
			       "of the key's tags if it has any, generate and delete an "
			       "Administrator: see admin_user and tags)";
		else if ((q->status == 412 || q->status >= 500) && !c->status)
			hint = "; gave up after retry_seconds";
		r = sigfs_seterr(err, status_errno(q->status), "nethsm backend %s: %s %s: HTTP %ld%s%s "
				 "(%d tries)%s", p->name, q->method, q->path, q->status, msg[0] ? ": " : "",
				 msg, tries, hint);
	} else if (r == 0 && !ok) {
		r = sigfs_seterr(err, rc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EHOSTUNREACH,
				 "nethsm backend %s: %s %s: %s (%d tries in %ld ms); check that the "
				 "NetHSM at %s is up and trusted", p->name, q->method, q->path,
				 curl_easy_strerror(rc), tries, sigfs_backend_now_ms() - start, p->url);
	}
	pthread_mutex_unlock(&c->lock);
	return r;
}

static unsigned admin_conn(const struct nh *p)
{
	return p->nworkers;
}

static unsigned status_conn(const struct nh *p)
{
	return p->nworkers + 1;
}

/* Key ids go into URLs as they are: the spec's ID pattern, nothing to escape. */
static int check_id(const struct nh *p, const char *id, char *err)
{
	size_t n = strlen(id);

	if (n == 0 || n > ID_MAX || strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
					   "0123456789_.-") != n || id[0] == '_' || id[0] == '.' ||
	    id[0] == '-')
		return sigfs_seterr(err, -EINVAL, "nethsm backend %s: key name '%s' is not a NetHSM "
				    "key id (letters, digits, _ . -, starting with a letter or digit)",
				    p->name, id);
	return 0;
}

static void req_free(struct req *q)
{
	sbuf_free(&q->rep);
}

/* --- keys ---------------------------------------------------------------------------- */

static int fetch_pem(struct nh *p, unsigned idx, const char *id, EVP_PKEY **out, char *err)
{
	struct req q = { .method = "GET", .accept = "application/x-pem-file" };
	int r;

	snprintf(q.path, sizeof(q.path), "/keys/%s/public.pem", id);
	r = call(p, idx, &q, err);
	if (r == 0 && nethsm_reply_public_pem(&q.rep, out) < 0)
		r = sigfs_seterr(err, -EIO, "nethsm backend %s: public.pem of key '%s' is not "
				 "a PEM public key", p->name, id);
	req_free(&q);
	return r;
}

static int nh_public_key(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err)
{
	struct nh *p = b->priv;
	int r = check_id(p, id, err);

	return r < 0 ? r : fetch_pem(p, admin_conn(p), id, out, err);
}

/* j (which it consumes; NULL when building it failed) as a request body to free. */
static int json_body(const struct nh *p, json_t *j, char **body, char *err)
{
	*body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	if (!*body)
		return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory", p->name);
	return 0;
}

/* The tags setting as JSON, for restrictions.tags. */
static json_t *tag_list(const struct nh *p)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < p->ntags; i++) {
		if (json_array_append_new(a, json_string(p->tags[i])) < 0) {
			json_decref(a);
			a = NULL;
		}
	}
	return a;
}

static int nh_generate(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg,
		       char *err)
{
	struct nh *p = b->priv;
	struct req q = { .method = "POST", .accept = "application/json" };
	json_t *j = NULL, *mechs;
	EVP_PKEY *pk = NULL;
	char *body = NULL;
	const char *type;
	char e2[SIGFS_ERRLEN];
	int r = check_id(p, id, err);

	if (r < 0)
		return r;
	r = fetch_pem(p, admin_conn(p), id, &pk, e2);
	EVP_PKEY_free(pk);
	if (r == 0)
		return sigfs_seterr(err, -EEXIST, "nethsm backend %s: key '%s' exists on the NetHSM",
				    p->name, id);
	if (r != -ENOENT)
		return sigfs_seterr(err, r, "%s", e2);
	switch (alg->kind) {
	case SIGFS_KIND_RSA:
		type = "RSA";
		mechs = json_pack("[ssss]", "RSA_Signature_PKCS1", "RSA_Signature_PSS_SHA256",
				  "RSA_Signature_PSS_SHA384", "RSA_Signature_PSS_SHA512");
		if (mechs) {
			json_array_append_new(mechs, json_string("RSA_Signature_PSS_SHA1"));
			json_array_append_new(mechs, json_string("RSA_Signature_PSS_SHA224"));
			json_array_append_new(mechs, json_string("RSA_Signature_PSS_MD5"));
		}
		j = json_pack("{s:o,s:s,s:i,s:s}", "mechanisms", mechs, "type", type,
			      "length", alg->bits, "id", id);
		break;
	case SIGFS_KIND_EC:
		type = strcmp(alg->group, "P-256") == 0 ? "EC_P256" :
		       strcmp(alg->group, "P-384") == 0 ? "EC_P384" :
		       strcmp(alg->group, "P-521") == 0 ? "EC_P521" : NULL;
		if (!type)
			return sigfs_seterr(err, -EOPNOTSUPP, "nethsm backend %s: the NetHSM has no "
					    "curve %s; choose ecdsa-p256, -p384 or -p521",
					    p->name, alg->group);
		j = json_pack("{s:[s],s:s,s:s}", "mechanisms", "ECDSA_Signature", "type", type,
			      "id", id);
		break;
	default:
		j = json_pack("{s:[s],s:s,s:s}", "mechanisms", "EdDSA_Signature", "type",
			      "Curve25519", "id", id);
		break;
	}
	if (j && p->ntags &&
	    json_object_set_new(j, "restrictions", json_pack("{s:o}", "tags", tag_list(p))) < 0) {
		json_decref(j);
		j = NULL;
	}
	r = json_body(p, j, &body, err);
	if (r < 0)
		return r;
	q.body = body;
	snprintf(q.path, sizeof(q.path), "/keys/generate");
	r = call(p, admin_conn(p), &q, err);
	req_free(&q);
	free(body);
	return r;
}

static int nh_remove(struct sigfs_backend *b, const char *id, char *err)
{
	struct nh *p = b->priv;
	struct req q = { .method = "DELETE", .accept = "application/json" };
	int r = check_id(p, id, err);

	if (r < 0)
		return r;
	snprintf(q.path, sizeof(q.path), "/keys/%s", id);
	r = call(p, admin_conn(p), &q, err);
	req_free(&q);
	return r;
}

/* As the Administrator sees them: every key of the namespace, whatever its tags. */
static int nh_list(struct sigfs_backend *b, char ***ids, size_t *n, char *err)
{
	struct nh *p = b->priv;
	struct req q = { .method = "GET", .path = "/keys", .accept = "application/json" };
	int r = call(p, status_conn(p), &q, err);

	if (r == 0 && (r = nethsm_reply_key_ids(&q.rep, ids, n)) < 0)
		r = sigfs_seterr(err, r == -ENOMEM ? r : -EIO, "nethsm backend %s: GET /keys: the "
				 "reply is not a list of key ids", p->name);
	req_free(&q);
	return r;
}

/* --- signing ---------------------------------------------------------------------------- */

/* The NetHSM's PSS modes, by sigfs digest name. */
static const struct {
	const char *digest;
	const char *mode;
} pss_modes[] = {
	{ "md5", "PSS_MD5" }, { "sha1", "PSS_SHA1" }, { "sha224", "PSS_SHA224" },
	{ "sha256", "PSS_SHA256" }, { "sha384", "PSS_SHA384" }, { "sha512", "PSS_SHA512" },
};

/*
 * The NetHSM's mode for in and the bytes it signs: the digest, cut for ECDSA;
 * for RSA PKCS#1 the DigestInfo, malloc'd into *di (OPENSSL_free it).
 */
static int sign_mode(const struct nh *p, const struct sigfs_sign_input *in, const char **mode,
		     const uint8_t **msg, size_t *msglen, uint8_t **di, char *err)
{
	*msg = in->data;
	*msglen = in->len;
	*mode = NULL;
	switch (in->alg->kind) {
	case SIGFS_KIND_RSA:
		if (in->padding == SIGFS_PAD_PKCS1) {
			*mode = "PKCS1";
			if (sigfs_digest_info(in->digest, in->data, in->len, di, msglen) < 0)
				return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory",
						    p->name);
			*msg = *di;
			return 0;
		}
		for (size_t i = 0; i < sizeof(pss_modes) / sizeof(pss_modes[0]); i++)
			if (strcmp(pss_modes[i].digest, in->digest->name) == 0)
				*mode = pss_modes[i].mode;
		if (!*mode)
			return sigfs_seterr(err, -EOPNOTSUPP, "nethsm backend %s: the NetHSM has no PSS "
					    "mode for %s; use sha256, sha384 or sha512, or padding "
					    "pkcs1", p->name, in->digest->name);
		return 0;
	case SIGFS_KIND_EC:
		*mode = "ECDSA";
		/* ECDSA uses the digest's leftmost group-size bits; the NetHSM wants no more. */
		if (*msglen * 8 > (size_t)in->alg->bits)
			*msglen = ((size_t)in->alg->bits + 7) / 8;
		return 0;
	default:
		*mode = "EdDSA";
		return 0;
	}
}

/* The sign request: {"mode": mode, "message": base64 of msg}. */
static int sign_body(const struct nh *p, const char *mode, const uint8_t *msg, size_t msglen,
		     char **body, char *err)
{
	char *b64 = malloc(4 * ((msglen + 2) / 3) + 1);
	json_t *j;

	if (!b64)
		return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory", p->name);
	EVP_EncodeBlock((unsigned char *)b64, msg, (int)msglen);
	j = json_pack("{s:s,s:s}", "mode", mode, "message", b64);
	free(b64);
	return json_body(p, j, body, err);
}

static int nh_sign(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		   uint8_t *sig, size_t *siglen, char *err)
{
	struct nh *p = b->priv;
	struct req q = { .method = "POST", .accept = "application/json" };
	const uint8_t *msg;
	size_t msglen;
	uint8_t *di = NULL;
	char *body = NULL;
	const char *mode;
	size_t n;
	int r = check_id(p, id, err);

	if (r < 0)
		return r;
	r = sigfs_backend_check_input("nethsm", p->name, id, in, err);
	if (r < 0)
		return r;
	r = sign_mode(p, in, &mode, &msg, &msglen, &di, err);
	if (r == 0)
		r = sign_body(p, mode, msg, msglen, &body, err);
	if (r < 0)
		goto out;
	q.body = body;
	snprintf(q.path, sizeof(q.path), "/keys/%s/sign", id);
	r = call(p, in->worker % p->nworkers, &q, err);
	if (r < 0)
		goto out;
	n = *siglen;
	r = nethsm_reply_signature(&q.rep, sig, &n);
	if (r == -ENOSPC)
		r = sigfs_seterr(err, r, "nethsm backend %s: a %zu-byte signature does not fit key "
				 "'%s''s %zu bytes", p->name, n, id, *siglen);
	else if (r < 0)
		r = sigfs_seterr(err, -EIO, "nethsm backend %s: the sign reply for key '%s' has no "
				 "valid base64 signature", p->name, id);
	else if (in->alg->kind == SIGFS_KIND_ED25519 && n != 64)
		r = sigfs_seterr(err, -EIO, "nethsm backend %s: the sign reply for key '%s' holds "
				 "%zu bytes, not a 64-byte Ed25519 signature", p->name, id, n);
	else
		*siglen = n;
out:
	req_free(&q);
	free(body);
	OPENSSL_free(di);
	return r;
}

/* --- open, close ------------------------------------------------------------------------- */

static void nh_free(struct nh *p)
{
	for (unsigned i = 0; p->conn && i < p->nconn; i++) {
		if (p->conn[i].h)
			curl_easy_cleanup(p->conn[i].h);
		pthread_mutex_destroy(&p->conn[i].lock);
	}
	for (size_t i = 0; i < p->ntags; i++)
		free(p->tags[i]);
	free(p->conn);
	free(p);
}

static void nh_close(struct sigfs_backend *b)
{
	nh_free(b->priv);
	free(b);
}

static int copy_setting(const struct nh *p, char *dst, size_t size, const char *key,
			const char *v, char *err)
{
	if ((size_t)snprintf(dst, size, "%s", v ? v : "") >= size)
		return sigfs_seterr(err, -ENAMETOOLONG, "nethsm backend %s: %s is too long",
				    p->name, key);
	return 0;
}

/*
 * tags = a, b: each a NetHSM tag (the spec's ID: letters, digits, _ . -,
 * starting with a letter or digit, at most 128), checked here so a typo
 * fails at open instead of as a 400 at the first mkdir.
 */
static int parse_tags(struct nh *p, const char *v, char *err)
{
	const char *s = v;

	while (v && *s) {
		size_t lead = strspn(s, " \t"), n = strcspn(s + lead, ","), len = n;

		while (len && (s[lead + len - 1] == ' ' || s[lead + len - 1] == '\t'))
			len--;
		if (len == 0 || len > ID_MAX ||
		    strspn(s + lead, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			   "0123456789_.-") < len || strchr("_.-", s[lead]))
			return sigfs_seterr(err, -EINVAL, "nethsm backend %s: tags = %s: '%.*s' is "
					    "not a NetHSM tag (1 to %d letters, digits, _ . -, "
					    "starting with a letter or digit; tags are separated by "
					    "commas)", p->name, v, (int)len, s + lead, ID_MAX);
		if (p->ntags == MAX_TAGS)
			return sigfs_seterr(err, -EINVAL, "nethsm backend %s: tags: at most %d",
					    p->name, MAX_TAGS);
		p->tags[p->ntags] = strndup(s + lead, len);
		if (!p->tags[p->ntags])
			return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory", p->name);
		p->ntags++;
		s += lead + n;
		if (*s == ',' && *++s == '\0')
			return sigfs_seterr(err, -EINVAL, "nethsm backend %s: tags = %s ends with a "
					    "comma", p->name, v);
	}
	return 0;
}

static int nh_open(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err)
{
	const char *url = conf->get(conf, "url", NULL);
	const char *user = conf->get(conf, "user", NULL);
	const char *pass = conf->get(conf, "password_file", NULL);
	const char *auser = conf->get(conf, "admin_user", user);
	const char *apass = conf->get(conf, "admin_password_file", pass);
	struct nh *p;
	size_t ulen;
	long retry_ms;
	int r;

	if (!url || !user || !pass)
		return sigfs_seterr(err, -EINVAL, "nethsm backend %s: set url, user and password_file "
				    "in [backend %s]", conf->name, conf->name);
	if (strncmp(url, "https://", 8) != 0)
		return sigfs_seterr(err, -EINVAL, "nethsm backend %s: url %s must start with https://",
				    conf->name, url);
	r = sigfs_backend_seconds(conf, "nethsm", "retry_seconds", "10", 0, &retry_ms, err);
	if (r < 0)
		return r;
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return sigfs_seterr(err, -EIO, "nethsm backend %s: curl_global_init failed: %s",
				    conf->name, curl_easy_strerror(curl_init_rc));
	p = calloc(1, sizeof(*p));
	if (!p)
		return sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory", conf->name);
	snprintf(p->name, sizeof(p->name), "%s", conf->name);
	p->retry_ms = retry_ms;
	r = copy_setting(p, p->url, sizeof(p->url), "url", url, err);
	if (r == 0)
		r = copy_setting(p, p->user, sizeof(p->user), "user", user, err);
	if (r == 0)
		r = copy_setting(p, p->pass_file, sizeof(p->pass_file), "password_file", pass, err);
	if (r == 0)
		r = copy_setting(p, p->admin_user, sizeof(p->admin_user), "admin_user", auser, err);
	if (r == 0)
		r = copy_setting(p, p->admin_pass_file, sizeof(p->admin_pass_file),
				 "admin_password_file", apass, err);
	if (r == 0)
		r = copy_setting(p, p->ca_file, sizeof(p->ca_file), "ca_file",
				 conf->get(conf, "ca_file", NULL), err);
	if (r == 0)
		r = copy_setting(p, p->pinned, sizeof(p->pinned), "pinned_pubkey",
				 conf->get(conf, "pinned_pubkey", NULL), err);
	if (r == 0)
		r = parse_tags(p, conf->get(conf, "tags", NULL), err);
	if (r < 0)
		goto fail;
	ulen = strlen(p->url);
	while (ulen > 8 && p->url[ulen - 1] == '/')
		p->url[--ulen] = '\0';
	p->nworkers = conf->workers ? conf->workers : 1;
	p->nconn = p->nworkers + 2;
	p->conn = calloc(p->nconn, sizeof(*p->conn));
	if (!p->conn) {
		r = sigfs_seterr(err, -ENOMEM, "nethsm backend %s: out of memory", p->name);
		goto fail;
	}
	for (unsigned i = 0; i < p->nconn; i++)
		pthread_mutex_init(&p->conn[i].lock, NULL);
	p->conn[admin_conn(p)].admin = true;
	p->conn[status_conn(p)].admin = true;
	p->conn[status_conn(p)].status = true;
	r = sigfs_backend_new(&sigfs_backend_nethsm, conf, p, out, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	nh_free(p);
	return r;
}

const struct sigfs_backend_ops sigfs_backend_nethsm = {
	.type = "nethsm",
	.open = nh_open,
	.close = nh_close,
	.generate = nh_generate,
	/* No import: keys are made on the NetHSM, so they never existed outside it. */
	.import_pem = NULL,
	.remove = nh_remove,
	.public_key = nh_public_key,
	.sign = nh_sign,
	.list = nh_list,
};
