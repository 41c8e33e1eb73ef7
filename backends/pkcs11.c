/*
 * pkcs11.c: keys on a PKCS#11 token (YubiHSM 2, Nitrokey HSM, SoftHSM2 ...).
 * The vendor module is loaded with dlopen ([backend NAME] module), the token
 * is found by its label (token_label) and the user PIN is read from pin_file,
 * which must be owned by the daemon's user and readable by it alone; the PIN
 * is wiped as soon as C_Login has it and read again for the next login.
 *
 * A key is a private/public object pair whose CKA_LABEL (and CKA_ID) is the
 * key id; the private half is sensitive and not extractable. Each signer
 * worker has its own logged-in R/W session, opened on first use; administrative
 * calls (generate, remove, public key, list) use one more session. A mutex per
 * session keeps PKCS#11's one-operation-per-session rule. Which mechanisms are
 * used is in docs/backend-pkcs11.md.
 *
 * A token can go away (a YubiHSM's connector stops, a network HSM's link
 * drops) and come back. When a call says so, the module is re-initialized
 * (C_Finalize, C_Initialize, the slot found again by label) and the call
 * retried with backoff for at most retry_seconds; opening the backend does
 * not wait for the token. A PIN the token refuses is not sent again until
 * pin_file changes: tokens lock the PIN after a few wrong tries.
 */
#include <dlfcn.h>
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

#include <p11-kit/pkcs11.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "backends/backend.h"
#include "common/err.h"
#include "common/log.h"
#include "common/secret.h"

extern const struct sigfs_backend_ops sigfs_backend_pkcs11;

#define PIN_MAX 256
#define LABEL_MAX 128
#define MAX_MODULES 16
/* PKCS#11 token labels are 32 bytes, blank padded. */
#define TOKEN_LABEL_MAX 32

/*
 * A loaded module, shared by the backends that name it (two tokens of one
 * HSM). PKCS#11 calls hold lock shared (module_enter); re-initializing the
 * module after an outage holds it exclusive. gen counts C_Initialize calls:
 * sessions and slots found under an older gen are gone.
 *
 * A serial module gets one call at a time, lock always exclusive: Debian 12's
 * p11-kit-client (0.24) leaves a second call in flight waiting forever when
 * its server dies under the first (docs/backend-pkcs11.md), and since it sends
 * every call down one socket, serializing costs it nothing.
 */
struct module {
	CK_FUNCTION_LIST_PTR f;
	unsigned refs;
	bool serial;
	pthread_rwlock_t lock;
	unsigned long gen;
	CK_RV init_rv;                /* of the last C_Initialize; CKR_OK: initialized */
};

struct sess {
	pthread_mutex_t lock;
	CK_SESSION_HANDLE h;
	bool open;
	unsigned long mod_gen;        /* the module's gen when the session was opened */
	/* The private key last used, valid while the backend's generation is unchanged. */
	char key_id[LABEL_MAX];
	CK_OBJECT_HANDLE key;
	unsigned long key_gen;
};

struct p11 {
	char name[64];
	char label[TOKEN_LABEL_MAX + 1];
	char pin_file[4096];
	long retry_ms;
	void *dl;
	CK_FUNCTION_LIST_PTR f;
	struct module *m;
	/* The token's slot and mechanisms, found under module gen slot_gen (0: not yet). */
	pthread_mutex_t slot_lock;
	unsigned long slot_gen;
	CK_SLOT_ID slot;
	CK_MECHANISM_TYPE *mechs;
	CK_ULONG nmechs;
	unsigned nsess;               /* workers + 1; the last one is for admin calls */
	struct sess *sess;
	unsigned long gen;            /* bumped when keys are created or destroyed */
	/* One C_Login at a time; a refused PIN is remembered with pin_file's stat. */
	pthread_mutex_t pin_lock;
	bool pin_bad;
	struct stat pin_st;
	char pin_err[SIGFS_ERRLEN];
	/* Whether the token is away, to log its going and coming back once. */
	pthread_mutex_t state_lock;
	bool down;
	long down_since;
};

/* The last failure of one attempt at an operation, to decide on a retry. */
struct call {
	const char *fn;               /* the PKCS#11 function that failed, or NULL */
	CK_RV rv;
	bool unreachable;             /* the token is gone or not there (yet) */
};

/* --- CKR names and errnos ---------------------------------------------------- */

static const struct {
	CK_RV rv;
	const char *name;
	int code;
} ckrs[] = {
	{ CKR_OK, "CKR_OK", 0 },
	{ CKR_HOST_MEMORY, "CKR_HOST_MEMORY", -ENOMEM },
	{ CKR_SLOT_ID_INVALID, "CKR_SLOT_ID_INVALID", -ENODEV },
	{ CKR_GENERAL_ERROR, "CKR_GENERAL_ERROR", -EIO },
	{ CKR_FUNCTION_FAILED, "CKR_FUNCTION_FAILED", -EIO },
	{ CKR_ARGUMENTS_BAD, "CKR_ARGUMENTS_BAD", -EINVAL },
	{ CKR_ATTRIBUTE_VALUE_INVALID, "CKR_ATTRIBUTE_VALUE_INVALID", -EINVAL },
	{ CKR_ATTRIBUTE_TYPE_INVALID, "CKR_ATTRIBUTE_TYPE_INVALID", -EINVAL },
	{ CKR_ATTRIBUTE_SENSITIVE, "CKR_ATTRIBUTE_SENSITIVE", -EPERM },
	{ CKR_DATA_INVALID, "CKR_DATA_INVALID", -EINVAL },
	{ CKR_DATA_LEN_RANGE, "CKR_DATA_LEN_RANGE", -EINVAL },
	{ CKR_DEVICE_ERROR, "CKR_DEVICE_ERROR", -EIO },
	{ CKR_DEVICE_MEMORY, "CKR_DEVICE_MEMORY", -ENOSPC },
	{ CKR_DEVICE_REMOVED, "CKR_DEVICE_REMOVED", -ENODEV },
	{ CKR_FUNCTION_CANCELED, "CKR_FUNCTION_CANCELED", -ECANCELED },
	{ CKR_FUNCTION_NOT_SUPPORTED, "CKR_FUNCTION_NOT_SUPPORTED", -EOPNOTSUPP },
	{ CKR_KEY_HANDLE_INVALID, "CKR_KEY_HANDLE_INVALID", -ENOENT },
	{ CKR_KEY_SIZE_RANGE, "CKR_KEY_SIZE_RANGE", -EOPNOTSUPP },
	{ CKR_KEY_TYPE_INCONSISTENT, "CKR_KEY_TYPE_INCONSISTENT", -EINVAL },
	{ CKR_KEY_FUNCTION_NOT_PERMITTED, "CKR_KEY_FUNCTION_NOT_PERMITTED", -EPERM },
	{ CKR_MECHANISM_INVALID, "CKR_MECHANISM_INVALID", -EOPNOTSUPP },
	{ CKR_MECHANISM_PARAM_INVALID, "CKR_MECHANISM_PARAM_INVALID", -EOPNOTSUPP },
	{ CKR_OBJECT_HANDLE_INVALID, "CKR_OBJECT_HANDLE_INVALID", -ENOENT },
	{ CKR_OPERATION_ACTIVE, "CKR_OPERATION_ACTIVE", -EBUSY },
	{ CKR_PIN_INCORRECT, "CKR_PIN_INCORRECT", -EACCES },
	{ CKR_PIN_INVALID, "CKR_PIN_INVALID", -EACCES },
	{ CKR_PIN_LEN_RANGE, "CKR_PIN_LEN_RANGE", -EACCES },
	{ CKR_PIN_EXPIRED, "CKR_PIN_EXPIRED", -EACCES },
	{ CKR_PIN_LOCKED, "CKR_PIN_LOCKED", -EACCES },
	{ CKR_SESSION_CLOSED, "CKR_SESSION_CLOSED", -EIO },
	{ CKR_SESSION_COUNT, "CKR_SESSION_COUNT", -EAGAIN },
	{ CKR_SESSION_HANDLE_INVALID, "CKR_SESSION_HANDLE_INVALID", -EIO },
	{ CKR_SESSION_READ_ONLY, "CKR_SESSION_READ_ONLY", -EROFS },
	{ CKR_TEMPLATE_INCOMPLETE, "CKR_TEMPLATE_INCOMPLETE", -EINVAL },
	{ CKR_TEMPLATE_INCONSISTENT, "CKR_TEMPLATE_INCONSISTENT", -EINVAL },
	{ CKR_TOKEN_NOT_PRESENT, "CKR_TOKEN_NOT_PRESENT", -ENODEV },
	{ CKR_TOKEN_NOT_RECOGNIZED, "CKR_TOKEN_NOT_RECOGNIZED", -ENODEV },
	{ CKR_TOKEN_WRITE_PROTECTED, "CKR_TOKEN_WRITE_PROTECTED", -EROFS },
	{ CKR_USER_NOT_LOGGED_IN, "CKR_USER_NOT_LOGGED_IN", -EACCES },
	{ CKR_USER_PIN_NOT_INITIALIZED, "CKR_USER_PIN_NOT_INITIALIZED", -EACCES },
	{ CKR_USER_TYPE_INVALID, "CKR_USER_TYPE_INVALID", -EINVAL },
	{ CKR_DOMAIN_PARAMS_INVALID, "CKR_DOMAIN_PARAMS_INVALID", -EOPNOTSUPP },
	{ CKR_CURVE_NOT_SUPPORTED, "CKR_CURVE_NOT_SUPPORTED", -EOPNOTSUPP },
	{ CKR_BUFFER_TOO_SMALL, "CKR_BUFFER_TOO_SMALL", -ENOSPC },
	{ CKR_CRYPTOKI_NOT_INITIALIZED, "CKR_CRYPTOKI_NOT_INITIALIZED", -EIO },
	{ CKR_CRYPTOKI_ALREADY_INITIALIZED, "CKR_CRYPTOKI_ALREADY_INITIALIZED", -EIO },
	{ CKR_FUNCTION_REJECTED, "CKR_FUNCTION_REJECTED", -EPERM },
};

static const char *ckr_name(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(ckrs) / sizeof(ckrs[0]); i++)
		if (ckrs[i].rv == rv)
			return ckrs[i].name;
	return "an unknown CKR code";
}

static int ckr_errno(CK_RV rv)
{
	for (size_t i = 0; i < sizeof(ckrs) / sizeof(ckrs[0]); i++)
		if (ckrs[i].rv == rv)
			return ckrs[i].code;
	return -EIO;
}

/*
 * Codes that say the token, or the way to it, is gone. p11-kit-client, for
 * one, answers CKR_DEVICE_ERROR to every call once its server is gone, and
 * sees the token again only after C_Finalize and C_Initialize.
 */
static bool unreachable(CK_RV rv)
{
	return rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED || rv == CKR_TOKEN_NOT_PRESENT ||
	       rv == CKR_SESSION_HANDLE_INVALID || rv == CKR_SESSION_CLOSED ||
	       rv == CKR_GENERAL_ERROR || rv == CKR_CRYPTOKI_NOT_INITIALIZED ||
	       rv == CKR_SLOT_ID_INVALID;
}

/* Record a failed call fn and say so in err; returns the errno. */
static int ckerr(const struct p11 *p, struct call *c, const char *fn, CK_RV rv, char *err)
{
	const char *hint = "";

	if (c) {
		c->fn = fn;
		c->rv = rv;
		c->unreachable = unreachable(rv);
	}
	if (ckr_errno(rv) == -EACCES)
		hint = "; check the PIN in pin_file";
	else if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED)
		hint = "; check that the token is connected";
	return sigfs_seterr(err, ckr_errno(rv), "pkcs11 backend %s: %s failed: %s (0x%lx)%s",
			    p->name, fn, ckr_name(rv), (unsigned long)rv, hint);
}

/* --- module loading ------------------------------------------------------------ */

/*
 * C_Initialize once per module in the process, C_Finalize when its last
 * backend closes: two backends may share a module (two tokens of one HSM).
 */
static pthread_mutex_t modules_lock = PTHREAD_MUTEX_INITIALIZER;
static struct module modules[MAX_MODULES];

static CK_RV module_init(struct module *m)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_RV rv = m->f->C_Initialize(&args);

	return rv == CKR_CRYPTOKI_ALREADY_INITIALIZED ? CKR_OK : rv;
}

/*
 * Share p->f's module, initializing it if p is its first backend. A failing
 * C_Initialize is not an error here: a module that cannot reach its device
 * may say so there, and the calls that need the token retry it.
 */
static int module_ref(struct p11 *p, bool serial, char *err)
{
	pthread_rwlockattr_t attr;
	struct module *m = NULL;
	int r = 0;

	pthread_mutex_lock(&modules_lock);
	for (int i = 0; i < MAX_MODULES; i++) {
		if (modules[i].f == p->f) {
			modules[i].refs++;
			p->m = &modules[i];
			goto out;
		}
		if (!modules[i].f && !m)
			m = &modules[i];
	}
	if (!m) {
		r = sigfs_seterr(err, -ENOSPC, "pkcs11 backend %s: too many PKCS#11 modules (at most %d)",
				 p->name, MAX_MODULES);
		goto out;
	}
	/* Writers first: a re-initialization must not wait for a gap between busy workers. */
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&m->lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	m->f = p->f;
	m->refs = 1;
	m->serial = serial;
	m->gen = 1;
	m->init_rv = module_init(m);
	p->m = m;
out:
	pthread_mutex_unlock(&modules_lock);
	return r;
}

/* Hold m for PKCS#11 calls: shared, or alone for a serial module. */
static void module_enter(struct module *m)
{
	if (m->serial)
		pthread_rwlock_wrlock(&m->lock);
	else
		pthread_rwlock_rdlock(&m->lock);
}

static void module_unref(struct p11 *p)
{
	struct module *m = p->m;

	pthread_mutex_lock(&modules_lock);
	if (--m->refs == 0) {
		if (m->init_rv == CKR_OK)
			m->f->C_Finalize(NULL);
		pthread_rwlock_destroy(&m->lock);
		m->f = NULL;
	}
	pthread_mutex_unlock(&modules_lock);
}

/*
 * Start p's module afresh after the token went away, unless another call did
 * since it saw gen seen: C_Finalize ends every session, C_Initialize connects
 * again. The calls of every backend on the module wait meanwhile.
 */
static void module_reinit(struct p11 *p, unsigned long seen)
{
	struct module *m = p->m;

	pthread_rwlock_wrlock(&m->lock);
	if (m->gen == seen) {
		if (m->init_rv == CKR_OK)
			m->f->C_Finalize(NULL);
		m->init_rv = module_init(m);
		m->gen++;
	}
	pthread_rwlock_unlock(&m->lock);
}

/* The slot whose token is labelled p->label (blank-padded to 32 bytes by the token). */
static int find_slot(struct p11 *p, struct call *c, char *err)
{
	CK_SLOT_ID *slots = NULL;
	CK_ULONG n = 0;
	CK_TOKEN_INFO ti;
	size_t len = strlen(p->label);
	int r;
	CK_RV rv;

	rv = p->f->C_GetSlotList(CK_TRUE, NULL, &n);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_GetSlotList", rv, err);
	slots = calloc(n ? n : 1, sizeof(*slots));
	if (!slots)
		return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
	rv = p->f->C_GetSlotList(CK_TRUE, slots, &n);
	if (rv != CKR_OK) {
		r = ckerr(p, c, "C_GetSlotList", rv, err);
		goto out;
	}
	/* A networked token that is down shows no slot at all: wait for it like for one that fails. */
	c->unreachable = true;
	r = sigfs_seterr(err, -ENODEV, "pkcs11 backend %s: no token labelled '%s' among %lu; "
			 "check token_label and that the token is connected", p->name, p->label,
			 (unsigned long)n);
	for (CK_ULONG i = 0; i < n; i++) {
		if (p->f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (memcmp(ti.label, p->label, len) != 0)
			continue;
		bool match = true;
		for (size_t j = len; j < sizeof(ti.label); j++)
			if (ti.label[j] != ' ' && ti.label[j] != '\0')
				match = false;
		if (match) {
			p->slot = slots[i];
			c->unreachable = false;
			r = 0;
			break;
		}
	}
out:
	free(slots);
	return r;
}

static int load_mechs(struct p11 *p, struct call *c, char *err)
{
	CK_ULONG n = 0;
	CK_RV rv;

	free(p->mechs);
	p->mechs = NULL;
	p->nmechs = 0;
	rv = p->f->C_GetMechanismList(p->slot, NULL, &n);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_GetMechanismList", rv, err);
	/*
	 * One more than asked for: p11-kit-client up to 0.24 reads one entry
	 * past the list while it drops mechanisms it cannot forward.
	 */
	p->mechs = calloc(n + 1, sizeof(*p->mechs));
	if (!p->mechs)
		return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
	rv = p->f->C_GetMechanismList(p->slot, p->mechs, &n);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_GetMechanismList", rv, err);
	p->nmechs = n;
	return 0;
}

/*
 * The module is initialized and p's slot and mechanisms are known for its
 * current gen. Called with the module's lock shared: gen cannot change.
 */
static int slot_ready(struct p11 *p, struct call *c, char *err)
{
	int r = 0;

	if (p->m->init_rv != CKR_OK) {
		r = ckerr(p, c, "C_Initialize", p->m->init_rv, err);
		c->unreachable = true;
		return r;
	}
	pthread_mutex_lock(&p->slot_lock);
	if (p->slot_gen != p->m->gen) {
		r = find_slot(p, c, err);
		if (r == 0)
			r = load_mechs(p, c, err);
		if (r == 0)
			p->slot_gen = p->m->gen;
	}
	pthread_mutex_unlock(&p->slot_lock);
	return r;
}

static bool has_mech(const struct p11 *p, CK_MECHANISM_TYPE m)
{
	for (CK_ULONG i = 0; i < p->nmechs; i++)
		if (p->mechs[i] == m)
			return true;
	return false;
}

static int need_mech(const struct p11 *p, CK_MECHANISM_TYPE m, const char *mname,
		     const char *what, char *err)
{
	if (has_mech(p, m))
		return 0;
	return sigfs_seterr(err, -EOPNOTSUPP, "pkcs11 backend %s: the token does not offer %s, "
			    "needed %s; choose another algorithm or padding", p->name, mname, what);
}

/* --- PIN and sessions ------------------------------------------------------------- */

/* Close s; a session opened before the module was re-initialized is gone already. */
static void sess_drop(struct p11 *p, struct sess *s)
{
	if (s->open && s->mod_gen == p->m->gen)
		p->f->C_CloseSession(s->h);
	s->open = false;
	s->key_id[0] = '\0';
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/*
 * Log s in as the user. A PIN the token refused is not sent again until
 * pin_file changes: tokens lock the PIN after a few wrong tries, and every
 * job would be one. Logins take turns, so workers starting together with a
 * wrong PIN try it once.
 */
static int login(struct p11 *p, struct sess *s, struct call *c, char *err)
{
	char pin[PIN_MAX], e[SIGFS_ERRLEN];
	size_t len = 0;
	struct stat st = { 0 };
	int r;
	CK_RV rv;

	pthread_mutex_lock(&p->pin_lock);
	if (stat(p->pin_file, &st) == 0 && p->pin_bad && same_file(&st, &p->pin_st)) {
		r = sigfs_seterr(err, -EACCES, "%s", p->pin_err);
		goto out;
	}
	p->pin_bad = false;
	r = sigfs_read_secret("pkcs11", p->name, "pin_file", "PIN", p->pin_file, pin,
			      sizeof(pin), &len, err);
	if (r == 0) {
		rv = p->f->C_Login(s->h, CKU_USER, (CK_UTF8CHAR_PTR)pin, len);
		/* Logging in is per application: other sessions may have done it already. */
		if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			r = ckerr(p, c, "C_Login", rv, e);
			if (r == -EACCES) {
				p->pin_bad = true;
				p->pin_st = st;
				sigfs_seterr(p->pin_err, r, "%s; it is not tried again until "
					     "pin_file changes", e);
				sigfs_seterr(err, r, "%s", p->pin_err);
			} else {
				sigfs_seterr(err, r, "%s", e);
			}
		}
	}
	OPENSSL_cleanse(pin, sizeof(pin));
out:
	pthread_mutex_unlock(&p->pin_lock);
	return r;
}

/* Open and log in s unless it is open. Called with s->lock and the module's lock held. */
static int sess_open(struct p11 *p, struct sess *s, struct call *c, char *err)
{
	int r;
	CK_RV rv;

	if (s->open && s->mod_gen != p->m->gen)
		sess_drop(p, s);
	if (s->open)
		return 0;
	rv = p->f->C_OpenSession(p->slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s->h);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_OpenSession", rv, err);
	s->open = true;
	s->mod_gen = p->m->gen;
	r = login(p, s, c, err);
	if (r < 0)
		sess_drop(p, s);
	return r;
}

/* --- retries ---------------------------------------------------------------------- */

typedef int (*sess_fn)(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err);

/* What made the token unreachable, for log lines and errors. */
static void cause(const struct call *c, char *buf, size_t size)
{
	if (c->fn)
		snprintf(buf, size, "%s: %s", c->fn, ckr_name(c->rv));
	else
		snprintf(buf, size, "no slot of the module holds it");
}

/* Say once that the token went away ... */
static void token_down(struct p11 *p, const struct call *c)
{
	char why[96];

	pthread_mutex_lock(&p->state_lock);
	if (!p->down) {
		__atomic_store_n(&p->down, true, __ATOMIC_RELAXED);
		p->down_since = sigfs_backend_now_ms();
		cause(c, why, sizeof(why));
		log_warn("pkcs11 backend %s: token %s is unreachable (%s); re-initializing the module, "
			 "jobs wait up to %g s for it", p->name, p->label, why,
			 (double)p->retry_ms / 1000);
	}
	pthread_mutex_unlock(&p->state_lock);
}

/* ... and once that it is back. */
static void token_up(struct p11 *p)
{
	if (!__atomic_load_n(&p->down, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&p->state_lock);
	if (p->down) {
		__atomic_store_n(&p->down, false, __ATOMIC_RELAXED);
		log_info("pkcs11 backend %s: token %s is back after %.1f s", p->name, p->label,
			 (double)(sigfs_backend_now_ms() - p->down_since) / 1000);
	}
	pthread_mutex_unlock(&p->state_lock);
}

/*
 * One try of fn on session s, with the module's lock shared; *seen is the
 * module's gen it ran under. A cached key handle the token no longer knows
 * is looked up again once.
 */
static int attempt(struct p11 *p, struct sess *s, sess_fn fn, void *arg, unsigned long *seen,
		   struct call *c, char *err)
{
	int r;

	module_enter(p->m);
	*seen = p->m->gen;
	*c = (struct call){ NULL, CKR_OK, false };
	r = slot_ready(p, c, err);
	if (r == 0) {
		pthread_mutex_lock(&s->lock);
		for (int i = 0; i < 2; i++) {
			*c = (struct call){ NULL, CKR_OK, false };
			r = sess_open(p, s, c, err);
			if (r == 0)
				r = fn(p, s, arg, c, err);
			if (r == 0 || (c->rv != CKR_KEY_HANDLE_INVALID &&
				       c->rv != CKR_OBJECT_HANDLE_INVALID))
				break;
			s->key_id[0] = '\0';
		}
		pthread_mutex_unlock(&s->lock);
	}
	pthread_rwlock_unlock(&p->m->lock);
	return r;
}

/*
 * Run fn on session idx. While the token is unreachable, re-initialize the
 * module and try again: at once, then after 0.1 s doubling up to 2 s, until
 * retry_seconds have passed. Without retry (calls that must not wait) the
 * immediate second try is the last.
 */
static int run(struct p11 *p, unsigned idx, sess_fn fn, void *arg, bool retry, char *err)
{
	struct sess *s = &p->sess[idx % p->nsess];
	long start = sigfs_backend_now_ms(), delay = 100, budget = retry ? p->retry_ms : 0, spent;
	unsigned long seen;
	struct call c;
	char why[96];
	int r;

	for (int tries = 0;; tries++) {
		r = attempt(p, s, fn, arg, &seen, &c, err);
		if (!c.unreachable)
			break;
		token_down(p, &c);
		if (tries > 0) {
			spent = sigfs_backend_now_ms() - start;
			if (spent >= budget) {
				cause(&c, why, sizeof(why));
				if (!retry)
					return sigfs_seterr(err, -EHOSTUNREACH, "pkcs11 backend %s: token "
							    "%s unreachable: %s; is the device/connector "
							    "up?", p->name, p->label, why);
				return sigfs_seterr(err, -EHOSTUNREACH, "pkcs11 backend %s: token %s "
						    "unreachable for %ld s: %s; is the device/connector "
						    "up?", p->name, p->label, (spent + 500) / 1000, why);
			}
			delay = sigfs_backend_backoff(delay, start + budget);
		}
		module_reinit(p, seen);
	}
	/* The token answered, whatever it said. */
	if (r == 0 || c.fn)
		token_up(p);
	return r;
}

static unsigned admin_session(const struct p11 *p)
{
	return p->nsess - 1;
}

/* --- objects ------------------------------------------------------------------------ */

/* Up to max objects of class cls labelled id; *n is how many. */
static int find_objs(struct p11 *p, struct sess *s, const char *id, CK_OBJECT_CLASS cls,
		     CK_OBJECT_HANDLE *out, CK_ULONG max, CK_ULONG *n, struct call *c, char *err)
{
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_LABEL, (void *)id, strlen(id) },
	};
	CK_RV rv;

	rv = p->f->C_FindObjectsInit(s->h, tmpl, 2);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_FindObjectsInit", rv, err);
	rv = p->f->C_FindObjects(s->h, out, max, n);
	p->f->C_FindObjectsFinal(s->h);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_FindObjects", rv, err);
	return 0;
}

static int find_one(struct p11 *p, struct sess *s, const char *id, CK_OBJECT_CLASS cls,
		    CK_OBJECT_HANDLE *out, struct call *c, char *err)
{
	CK_ULONG n = 0;
	int r = find_objs(p, s, id, cls, out, 1, &n, c, err);

	if (r < 0)
		return r;
	if (n == 0)
		return sigfs_seterr(err, -ENOENT, "pkcs11 backend %s: no %s key '%s' on the token",
				    p->name, cls == CKO_PRIVATE_KEY ? "private" : "public", id);
	return 0;
}

/* Attribute type of object o, malloc'd into *val (free it). */
static int get_attr(struct p11 *p, struct sess *s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE type,
		    uint8_t **val, size_t *len, struct call *c, char *err)
{
	CK_ATTRIBUTE a = { type, NULL, 0 };
	CK_RV rv;

	rv = p->f->C_GetAttributeValue(s->h, o, &a, 1);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_GetAttributeValue", rv, err);
	if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 65536)
		return sigfs_seterr(err, -EIO, "pkcs11 backend %s: the token gives no attribute 0x%lx",
				    p->name, (unsigned long)type);
	a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
	if (!a.pValue)
		return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
	rv = p->f->C_GetAttributeValue(s->h, o, &a, 1);
	if (rv != CKR_OK) {
		free(a.pValue);
		return ckerr(p, c, "C_GetAttributeValue", rv, err);
	}
	*val = a.pValue;
	*len = a.ulValueLen;
	return 0;
}

/* --- generate ---------------------------------------------------------------------- */

/* DER OID of Ed25519 (RFC 8410) and the printable-string form older tokens expect. */
static const uint8_t ed25519_oid[] = { 0x06, 0x03, 0x2b, 0x65, 0x70 };
static const uint8_t ed25519_name[] = { 0x13, 0x0c, 'e', 'd', 'w', 'a', 'r', 'd', 's',
					'2', '5', '5', '1', '9' };

struct gen_arg {
	const char *id;
	const struct sigfs_alg *alg;
};

static int ec_params(const struct sigfs_alg *alg, uint8_t *buf, size_t size, size_t *len)
{
	int nid = EC_curve_nist2nid(alg->group);
	ASN1_OBJECT *obj = nid != NID_undef ? OBJ_nid2obj(nid) : NULL;
	int n = obj ? i2d_ASN1_OBJECT(obj, NULL) : -1;
	uint8_t *q = buf;

	if (n <= 0 || (size_t)n > size)
		return -EINVAL;
	*len = (size_t)i2d_ASN1_OBJECT(obj, &q);
	return 0;
}

/* The key-pair mechanism per kind of key, indexed by enum sigfs_key_kind. */
static const struct keygen {
	CK_MECHANISM_TYPE mech;
	const char *mname, *what;
} keygens[] = {
	[SIGFS_KIND_RSA] = { CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN",
			     "to create RSA keys" },
	[SIGFS_KIND_EC] = { CKM_EC_KEY_PAIR_GEN, "CKM_EC_KEY_PAIR_GEN", "to create ECDSA keys" },
	[SIGFS_KIND_ED25519] = { CKM_EC_EDWARDS_KEY_PAIR_GEN, "CKM_EC_EDWARDS_KEY_PAIR_GEN",
				 "to create Ed25519 keys" },
};

/* The templates of a key pair; the attributes point into it. */
struct gen_tmpl {
	CK_BBOOL yes, no;
	CK_ULONG bits;
	uint8_t exp[3], params[32];
	CK_MECHANISM mech;
	CK_ATTRIBUTE pub[6], priv[7];
	CK_ULONG npub;
};

/* -EEXIST if either half of a key labelled id is on the token already. */
static int key_absent(struct p11 *p, struct sess *s, const char *id, struct call *c, char *err)
{
	CK_OBJECT_HANDLE found;
	CK_ULONG n = 0;
	int r = find_objs(p, s, id, CKO_PRIVATE_KEY, &found, 1, &n, c, err);

	if (r == 0 && n == 0)
		r = find_objs(p, s, id, CKO_PUBLIC_KEY, &found, 1, &n, c, err);
	if (r < 0)
		return r;
	if (n > 0)
		return sigfs_seterr(err, -EEXIST, "pkcs11 backend %s: key '%s' exists on the token",
				    p->name, id);
	return 0;
}

/* Token objects labelled and identified by the key id; the private half never leaves. */
static int gen_template(struct p11 *p, const struct gen_arg *g, struct gen_tmpl *t, char *err)
{
	size_t idlen = strlen(g->id), plen = 0;

	*t = (struct gen_tmpl){ .yes = CK_TRUE, .no = CK_FALSE, .bits = (CK_ULONG)g->alg->bits,
				.exp = { 0x01, 0x00, 0x01 }, .npub = 4 };
	t->mech = (CK_MECHANISM){ keygens[g->alg->kind].mech, NULL, 0 };
	t->pub[0] = (CK_ATTRIBUTE){ CKA_TOKEN, &t->yes, sizeof(t->yes) };
	t->pub[1] = (CK_ATTRIBUTE){ CKA_LABEL, (void *)g->id, idlen };
	t->pub[2] = (CK_ATTRIBUTE){ CKA_ID, (void *)g->id, idlen };
	t->pub[3] = (CK_ATTRIBUTE){ CKA_VERIFY, &t->yes, sizeof(t->yes) };
	memcpy(t->priv, t->pub, 3 * sizeof(t->pub[0]));
	t->priv[3] = (CK_ATTRIBUTE){ CKA_SIGN, &t->yes, sizeof(t->yes) };
	t->priv[4] = (CK_ATTRIBUTE){ CKA_PRIVATE, &t->yes, sizeof(t->yes) };
	t->priv[5] = (CK_ATTRIBUTE){ CKA_SENSITIVE, &t->yes, sizeof(t->yes) };
	t->priv[6] = (CK_ATTRIBUTE){ CKA_EXTRACTABLE, &t->no, sizeof(t->no) };
	switch (g->alg->kind) {
	case SIGFS_KIND_RSA:
		t->pub[t->npub++] = (CK_ATTRIBUTE){ CKA_MODULUS_BITS, &t->bits, sizeof(t->bits) };
		t->pub[t->npub++] = (CK_ATTRIBUTE){ CKA_PUBLIC_EXPONENT, t->exp, sizeof(t->exp) };
		break;
	case SIGFS_KIND_EC:
		if (ec_params(g->alg, t->params, sizeof(t->params), &plen) < 0)
			return sigfs_seterr(err, -EINVAL, "pkcs11 backend %s: no OID for curve %s",
					    p->name, g->alg->group);
		t->pub[t->npub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, t->params, plen };
		break;
	case SIGFS_KIND_ED25519:
		t->pub[t->npub++] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)ed25519_oid,
						    sizeof(ed25519_oid) };
		break;
	}
	return 0;
}

static int do_generate(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	struct gen_arg *g = arg;
	const struct keygen *kg = &keygens[g->alg->kind];
	CK_OBJECT_HANDLE pub, priv;
	struct gen_tmpl t;
	CK_ULONG nprivt = sizeof(t.priv) / sizeof(t.priv[0]);
	CK_RV rv;
	int r;

	r = need_mech(p, kg->mech, kg->mname, kg->what, err);
	if (r == 0)
		r = key_absent(p, s, g->id, c, err);
	if (r == 0)
		r = gen_template(p, g, &t, err);
	if (r < 0)
		return r;
	rv = p->f->C_GenerateKeyPair(s->h, &t.mech, t.pub, t.npub, t.priv, nprivt, &pub, &priv);
	/* Tokens that predate RFC 8410 know the curve by its printable name only. */
	if (g->alg->kind == SIGFS_KIND_ED25519 &&
	    (rv == CKR_DOMAIN_PARAMS_INVALID || rv == CKR_CURVE_NOT_SUPPORTED ||
	     rv == CKR_ATTRIBUTE_VALUE_INVALID)) {
		t.pub[t.npub - 1] = (CK_ATTRIBUTE){ CKA_EC_PARAMS, (void *)ed25519_name,
						    sizeof(ed25519_name) };
		rv = p->f->C_GenerateKeyPair(s->h, &t.mech, t.pub, t.npub, t.priv, nprivt, &pub,
					     &priv);
	}
	if (rv != CKR_OK)
		return ckerr(p, c, "C_GenerateKeyPair", rv, err);
	__atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static int p11_generate(struct sigfs_backend *b, const char *id, const struct sigfs_alg *alg,
			char *err)
{
	struct p11 *p = b->priv;
	struct gen_arg g = { id, alg };

	if (strlen(id) >= LABEL_MAX)
		return sigfs_seterr(err, -ENAMETOOLONG, "pkcs11 backend %s: key id too long", p->name);
	return run(p, admin_session(p), do_generate, &g, true, err);
}

/* --- remove ------------------------------------------------------------------------- */

static int do_remove(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	static const CK_OBJECT_CLASS classes[] = { CKO_PRIVATE_KEY, CKO_PUBLIC_KEY };
	const char *id = arg;
	CK_OBJECT_HANDLE objs[8];
	unsigned destroyed = 0;
	CK_ULONG n;
	CK_RV rv;
	int r;

	for (size_t i = 0; i < 2; i++) {
		r = find_objs(p, s, id, classes[i], objs, 8, &n, c, err);
		if (r < 0)
			return r;
		for (CK_ULONG j = 0; j < n; j++) {
			rv = p->f->C_DestroyObject(s->h, objs[j]);
			if (rv != CKR_OK)
				return ckerr(p, c, "C_DestroyObject", rv, err);
			destroyed++;
		}
	}
	__atomic_add_fetch(&p->gen, 1, __ATOMIC_SEQ_CST);
	if (destroyed == 0)
		return sigfs_seterr(err, -ENOENT, "pkcs11 backend %s: no key '%s' on the token",
				    p->name, id);
	return 0;
}

static int p11_remove(struct sigfs_backend *b, const char *id, char *err)
{
	struct p11 *p = b->priv;

	return run(p, admin_session(p), do_remove, (void *)id, true, err);
}

/* --- public key -------------------------------------------------------------------- */

struct pub_arg {
	const char *id;
	EVP_PKEY *pkey;
};

static int pkey_from(struct p11 *p, const char *type, OSSL_PARAM_BLD *bld, EVP_PKEY **out,
		     char *err)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	int r = 0;

	if (!ctx || !params || EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		r = sigfs_seterr(err, -EIO, "pkcs11 backend %s: the token's %s public key is not valid",
				 p->name, type);
	OSSL_PARAM_free(params);
	EVP_PKEY_CTX_free(ctx);
	return r;
}

/* CKA_EC_POINT is a DER OCTET STRING around the point; some tokens give the bare point. */
static void unwrap_point(const uint8_t *v, size_t len, const uint8_t **pt, size_t *ptlen)
{
	const uint8_t *q = v;
	ASN1_OCTET_STRING *os = d2i_ASN1_OCTET_STRING(NULL, &q, (long)len);

	*pt = v;
	*ptlen = len;
	if (os && q == v + len) {
		size_t hdr = len - (size_t)ASN1_STRING_length(os);

		*pt = v + hdr;
		*ptlen = (size_t)ASN1_STRING_length(os);
	}
	ASN1_OCTET_STRING_free(os);
}

/* An RSA public key from the object's modulus and exponent. */
static int pub_rsa(struct p11 *p, struct sess *s, CK_OBJECT_HANDLE o, struct pub_arg *a,
		   struct call *c, char *err)
{
	uint8_t *v1 = NULL, *v2 = NULL;
	size_t l1, l2;
	OSSL_PARAM_BLD *bld = NULL;
	BIGNUM *n = NULL, *e = NULL;
	int r;

	r = get_attr(p, s, o, CKA_MODULUS, &v1, &l1, c, err);
	if (r == 0)
		r = get_attr(p, s, o, CKA_PUBLIC_EXPONENT, &v2, &l2, c, err);
	if (r < 0)
		goto out;
	bld = OSSL_PARAM_BLD_new();
	n = BN_bin2bn(v1, (int)l1, NULL);
	e = BN_bin2bn(v2, (int)l2, NULL);
	if (!bld || !n || !e || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
		r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
		goto out;
	}
	r = pkey_from(p, "RSA", bld, &a->pkey, err);
out:
	BN_free(n);
	BN_free(e);
	OSSL_PARAM_BLD_free(bld);
	free(v1);
	free(v2);
	return r;
}

/* An ECDSA public key from the object's curve OID and point. */
static int pub_ec(struct p11 *p, struct sess *s, CK_OBJECT_HANDLE o, struct pub_arg *a,
		  struct call *c, char *err)
{
	uint8_t *v1 = NULL, *v2 = NULL;
	size_t l1, l2, ptlen;
	const uint8_t *pt, *q;
	OSSL_PARAM_BLD *bld = NULL;
	ASN1_OBJECT *oid = NULL;
	int r;

	r = get_attr(p, s, o, CKA_EC_PARAMS, &v1, &l1, c, err);
	if (r == 0)
		r = get_attr(p, s, o, CKA_EC_POINT, &v2, &l2, c, err);
	if (r < 0)
		goto out;
	q = v1;
	oid = d2i_ASN1_OBJECT(NULL, &q, (long)l1);
	if (!oid || OBJ_obj2nid(oid) == NID_undef) {
		r = sigfs_seterr(err, -EOPNOTSUPP, "pkcs11 backend %s: key '%s' is on a curve "
				 "sigfs does not know", p->name, a->id);
		goto out;
	}
	unwrap_point(v2, l2, &pt, &ptlen);
	bld = OSSL_PARAM_BLD_new();
	if (!bld || !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
						     OBJ_nid2sn(OBJ_obj2nid(oid)), 0) ||
	    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen)) {
		r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
		goto out;
	}
	r = pkey_from(p, "EC", bld, &a->pkey, err);
out:
	ASN1_OBJECT_free(oid);
	OSSL_PARAM_BLD_free(bld);
	free(v1);
	free(v2);
	return r;
}

/* An Ed25519 public key from the object's point. */
static int pub_ed25519(struct p11 *p, struct sess *s, CK_OBJECT_HANDLE o, struct pub_arg *a,
		       struct call *c, char *err)
{
	uint8_t *v = NULL;
	const uint8_t *pt;
	size_t len, ptlen;
	int r = get_attr(p, s, o, CKA_EC_POINT, &v, &len, c, err);

	if (r < 0)
		return r;
	unwrap_point(v, len, &pt, &ptlen);
	a->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pt, ptlen);
	if (!a->pkey)
		r = sigfs_seterr(err, -EIO, "pkcs11 backend %s: key '%s' is not an Ed25519 key "
				 "(%zu-byte point)", p->name, a->id, ptlen);
	free(v);
	return r;
}

/* The public half of key a->id (or, on tokens that keep none, the private one's attributes). */
static int do_public_key(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	struct pub_arg *a = arg;
	uint8_t *kt = NULL;
	size_t ktlen;
	CK_KEY_TYPE type;
	CK_OBJECT_HANDLE o;
	int r;

	r = find_one(p, s, a->id, CKO_PUBLIC_KEY, &o, c, err);
	if (r == -ENOENT)
		r = find_one(p, s, a->id, CKO_PRIVATE_KEY, &o, c, err);
	if (r < 0)
		return r;
	r = get_attr(p, s, o, CKA_KEY_TYPE, &kt, &ktlen, c, err);
	if (r < 0)
		return r;
	if (ktlen != sizeof(type)) {
		free(kt);
		return sigfs_seterr(err, -EIO, "pkcs11 backend %s: bad CKA_KEY_TYPE", p->name);
	}
	memcpy(&type, kt, sizeof(type));
	free(kt);
	if (type == CKK_RSA)
		return pub_rsa(p, s, o, a, c, err);
	if (type == CKK_EC)
		return pub_ec(p, s, o, a, c, err);
	if (type == CKK_EC_EDWARDS)
		return pub_ed25519(p, s, o, a, c, err);
	return sigfs_seterr(err, -EOPNOTSUPP, "pkcs11 backend %s: key '%s' has key type 0x%lx, "
			    "which sigfs does not use", p->name, a->id, (unsigned long)type);
}

static int p11_public_key(struct sigfs_backend *b, const char *id, EVP_PKEY **out, char *err)
{
	struct p11 *p = b->priv;
	struct pub_arg a = { id, NULL };
	int r = run(p, admin_session(p), do_public_key, &a, true, err);

	if (r == 0)
		*out = a.pkey;
	else
		EVP_PKEY_free(a.pkey);
	return r;
}

/* --- sign ------------------------------------------------------------------------------ */

/* PSS hash and MGF for a digest row; PKCS#11 2.40 names SHA-1 and SHA-2 only. */
static const struct {
	const char *digest;
	CK_MECHANISM_TYPE hash;
	CK_RSA_PKCS_MGF_TYPE mgf;
} pss_hashes[] = {
	{ "sha1", CKM_SHA_1, CKG_MGF1_SHA1 },
	{ "sha224", CKM_SHA224, CKG_MGF1_SHA224 },
	{ "sha256", CKM_SHA256, CKG_MGF1_SHA256 },
	{ "sha384", CKM_SHA384, CKG_MGF1_SHA384 },
	{ "sha512", CKM_SHA512, CKG_MGF1_SHA512 },
};

struct sign_arg {
	const char *id;
	CK_MECHANISM mech;
	CK_RSA_PKCS_PSS_PARAMS pss;   /* mech's parameter for RSA PSS */
	const char *mname, *what;     /* the mechanism's name and use, if the token lacks it */
	const uint8_t *data;
	size_t len;
	uint8_t *di;                  /* RSA PKCS#1: the DigestInfo data points to */
	uint8_t raw[SIGFS_MAX_SIG];
	CK_ULONG rawlen;
};

static int do_sign(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	struct sign_arg *a = arg;
	unsigned long gen = __atomic_load_n(&p->gen, __ATOMIC_SEQ_CST);
	CK_RV rv;
	int r;

	r = need_mech(p, a->mech.mechanism, a->mname, a->what, err);
	if (r < 0)
		return r;
	if (strcmp(s->key_id, a->id) != 0 || s->key_gen != gen) {
		r = find_one(p, s, a->id, CKO_PRIVATE_KEY, &s->key, c, err);
		if (r < 0)
			return r;
		snprintf(s->key_id, sizeof(s->key_id), "%s", a->id);
		s->key_gen = gen;
	}
	rv = p->f->C_SignInit(s->h, &a->mech, s->key);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_SignInit", rv, err);
	a->rawlen = sizeof(a->raw);
	rv = p->f->C_Sign(s->h, (CK_BYTE_PTR)a->data, a->len, a->raw, &a->rawlen);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_Sign", rv, err);
	return 0;
}

/* r || s from the token to DER SEQUENCE(r, s). */
static int ecdsa_der(const uint8_t *raw, size_t len, uint8_t *sig, size_t *siglen)
{
	ECDSA_SIG *es = ECDSA_SIG_new();
	BIGNUM *r = BN_bin2bn(raw, (int)(len / 2), NULL);
	BIGNUM *s = BN_bin2bn(raw + len / 2, (int)(len / 2), NULL);
	int n = -1;

	if (es && r && s && ECDSA_SIG_set0(es, r, s)) {
		r = s = NULL;
		n = i2d_ECDSA_SIG(es, NULL);
		if (n > 0 && (size_t)n <= *siglen) {
			uint8_t *q = sig;

			n = i2d_ECDSA_SIG(es, &q);
		} else {
			n = -1;
		}
	}
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	if (n <= 0)
		return -ENOSPC;
	*siglen = (size_t)n;
	return 0;
}

/* RSA: PKCS#1 v1.5 signs the DigestInfo, PSS the digest with a salt of its length. */
static int rsa_mech(struct p11 *p, const struct sigfs_sign_input *in, struct sign_arg *a,
		    char *err)
{
	size_t dilen;

	if (in->padding == SIGFS_PAD_PKCS1) {
		if (sigfs_digest_info(in->digest, in->data, in->len, &a->di, &dilen) < 0)
			return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
		a->mech = (CK_MECHANISM){ CKM_RSA_PKCS, NULL, 0 };
		a->mname = "CKM_RSA_PKCS";
		a->what = "for RSA PKCS#1 v1.5";
		a->data = a->di;
		a->len = dilen;
		return 0;
	}
	for (size_t i = 0; i < sizeof(pss_hashes) / sizeof(pss_hashes[0]); i++) {
		if (strcmp(pss_hashes[i].digest, in->digest->name) == 0) {
			a->pss.hashAlg = pss_hashes[i].hash;
			a->pss.mgf = pss_hashes[i].mgf;
			a->pss.sLen = in->digest->len;
			a->mech = (CK_MECHANISM){ CKM_RSA_PKCS_PSS, &a->pss, sizeof(a->pss) };
			a->mname = "CKM_RSA_PKCS_PSS";
			a->what = "for RSA PSS";
			return 0;
		}
	}
	return sigfs_seterr(err, -EOPNOTSUPP, "pkcs11 backend %s: PKCS#11 has no PSS parameters "
			    "for %s; use sha256, sha384 or sha512, or rsa_padding pkcs1",
			    p->name, in->digest->name);
}

/* The mechanism for in, and the data it signs. */
static int sign_mech(struct p11 *p, const struct sigfs_sign_input *in, struct sign_arg *a,
		     char *err)
{
	a->data = in->data;
	a->len = in->len;
	switch (in->alg->kind) {
	case SIGFS_KIND_RSA:
		return rsa_mech(p, in, a, err);
	case SIGFS_KIND_EC:
		a->mech = (CK_MECHANISM){ CKM_ECDSA, NULL, 0 };
		a->mname = "CKM_ECDSA";
		a->what = "for ECDSA";
		break;
	default:
		a->mech = (CK_MECHANISM){ CKM_EDDSA, NULL, 0 };
		a->mname = "CKM_EDDSA";
		a->what = "for Ed25519";
		break;
	}
	return 0;
}

/* The token's signature in backend.h's form: ECDSA as DER, the others as they are. */
static int sign_result(struct p11 *p, const char *id, const struct sigfs_sign_input *in,
		       const struct sign_arg *a, uint8_t *sig, size_t *siglen, char *err)
{
	if (in->alg->kind == SIGFS_KIND_EC) {
		if (a->rawlen % 2 || ecdsa_der(a->raw, a->rawlen, sig, siglen) < 0)
			return sigfs_seterr(err, -EIO, "pkcs11 backend %s: the token's ECDSA signature "
					    "(%lu bytes) does not fit", p->name,
					    (unsigned long)a->rawlen);
		return 0;
	}
	if (a->rawlen > *siglen)
		return sigfs_seterr(err, -ENOSPC, "pkcs11 backend %s: signature buffer of %zu bytes "
				    "is too small for key '%s'", p->name, *siglen, id);
	memcpy(sig, a->raw, a->rawlen);
	*siglen = a->rawlen;
	return 0;
}

static int p11_sign(struct sigfs_backend *b, const char *id, const struct sigfs_sign_input *in,
		    uint8_t *sig, size_t *siglen, char *err)
{
	struct p11 *p = b->priv;
	struct sign_arg *a;
	int r;

	r = sigfs_backend_check_input("pkcs11", p->name, id, in, err);
	if (r < 0)
		return r;
	a = calloc(1, sizeof(*a));
	if (!a)
		return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
	a->id = id;
	r = sign_mech(p, in, a, err);
	if (r == 0)
		r = run(p, in->worker % (p->nsess - 1), do_sign, a, true, err);
	if (r == 0)
		r = sign_result(p, id, in, a, sig, siglen, err);
	OPENSSL_free(a->di);
	free(a);
	return r;
}

/* --- list ------------------------------------------------------------------------------ */

struct list_arg {
	char **ids;
	size_t n;
};

static int cmp_ids(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every handle of a private key that may sign; *objs is malloc'd. */
static int find_signing_keys(struct p11 *p, struct sess *s, CK_OBJECT_HANDLE **objs, CK_ULONG *n,
			     struct call *c, char *err)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE tmpl[] = {
		{ CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_SIGN, &yes, sizeof(yes) },
	};
	CK_OBJECT_HANDLE *o = NULL, *no;
	CK_ULONG cap = 0, got = 0;
	CK_RV rv;
	int r = 0;

	*n = 0;
	rv = p->f->C_FindObjectsInit(s->h, tmpl, 2);
	if (rv != CKR_OK)
		return ckerr(p, c, "C_FindObjectsInit", rv, err);
	for (;;) {
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			no = realloc(o, cap * sizeof(*o));
			if (!no) {
				r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
				break;
			}
			o = no;
		}
		rv = p->f->C_FindObjects(s->h, o + *n, cap - *n, &got);
		if (rv != CKR_OK) {
			r = ckerr(p, c, "C_FindObjects", rv, err);
			break;
		}
		if (got == 0)
			break;
		*n += got;
	}
	p->f->C_FindObjectsFinal(s->h);
	if (r < 0)
		free(o);
	else
		*objs = o;
	return r;
}

/* The labels of the token's signing keys of a type sigfs uses, sorted. */
static int do_list(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	struct list_arg *a = arg;
	CK_OBJECT_HANDLE *objs = NULL;
	CK_KEY_TYPE type;
	CK_ULONG n = 0;
	uint8_t *kt, *label;
	size_t ktlen, len;
	char **ids = NULL;
	size_t nids = 0;
	int r;

	r = find_signing_keys(p, s, &objs, &n, c, err);
	if (r < 0)
		return r;
	ids = calloc(n ? n : 1, sizeof(*ids));
	if (!ids)
		r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
	for (CK_ULONG i = 0; r == 0 && i < n; i++) {
		r = get_attr(p, s, objs[i], CKA_KEY_TYPE, &kt, &ktlen, c, err);
		if (r < 0)
			break;
		type = CKK_VENDOR_DEFINED;
		if (ktlen == sizeof(type))
			memcpy(&type, kt, sizeof(type));
		free(kt);
		if (type != CKK_RSA && type != CKK_EC && type != CKK_EC_EDWARDS)
			continue;
		r = get_attr(p, s, objs[i], CKA_LABEL, &label, &len, c, err);
		if (r < 0)
			break;
		/* Keys are found by label: one sigfs could not name is of no use to it. */
		if (len > 0 && len < LABEL_MAX && !memchr(label, '\0', len)) {
			ids[nids] = strndup((const char *)label, len);
			if (!ids[nids])
				r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory",
						 p->name);
			else
				nids++;
		}
		free(label);
	}
	free(objs);
	if (r < 0) {
		sigfs_backend_list_free(ids, nids);
		return r;
	}
	qsort(ids, nids, sizeof(*ids), cmp_ids);
	a->ids = ids;
	a->n = nids;
	return 0;
}

static int p11_list(struct sigfs_backend *b, char ***ids, size_t *n, char *err)
{
	struct p11 *p = b->priv;
	struct list_arg a = { NULL, 0 };
	int r = run(p, admin_session(p), do_list, &a, false, err);

	if (r == 0) {
		*ids = a.ids;
		*n = a.n;
	}
	return r;
}

/* --- open, close ----------------------------------------------------------------------- */

static int do_connect(struct p11 *p, struct sess *s, void *arg, struct call *c, char *err)
{
	(void)p, (void)s, (void)arg, (void)c, (void)err;
	return 0;
}

static void p11_free(struct p11 *p)
{
	if (p->m) {
		module_enter(p->m);
		for (unsigned i = 0; p->sess && i < p->nsess; i++)
			sess_drop(p, &p->sess[i]);
		pthread_rwlock_unlock(&p->m->lock);
		module_unref(p);
	}
	for (unsigned i = 0; p->sess && i < p->nsess; i++)
		pthread_mutex_destroy(&p->sess[i].lock);
	pthread_mutex_destroy(&p->slot_lock);
	pthread_mutex_destroy(&p->pin_lock);
	pthread_mutex_destroy(&p->state_lock);
	if (p->dl)
		dlclose(p->dl);
	free(p->sess);
	free(p->mechs);
	free(p);
}

static void p11_close(struct sigfs_backend *b)
{
	p11_free(b->priv);
	free(b);
}

/* p's settings and sessions; the PIN file is read once to refuse a bad one now. */
static int p11_new(const struct sigfs_backend_conf *conf, const char *label, const char *pin_file,
		   long retry_ms, struct p11 **out, char *err)
{
	char pin[PIN_MAX];
	size_t pinlen;
	struct p11 *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (!p)
		return sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", conf->name);
	pthread_mutex_init(&p->slot_lock, NULL);
	pthread_mutex_init(&p->pin_lock, NULL);
	pthread_mutex_init(&p->state_lock, NULL);
	snprintf(p->name, sizeof(p->name), "%s", conf->name);
	snprintf(p->label, sizeof(p->label), "%s", label);
	p->retry_ms = retry_ms;
	if ((size_t)snprintf(p->pin_file, sizeof(p->pin_file), "%s", pin_file) >= sizeof(p->pin_file)) {
		r = sigfs_seterr(err, -ENAMETOOLONG, "pkcs11 backend %s: pin_file path too long", p->name);
		goto fail;
	}
	/* A pin_file sigfs refuses is a configuration error: say so now, token or not. */
	r = sigfs_read_secret("pkcs11", p->name, "pin_file", "PIN", p->pin_file, pin, sizeof(pin),
			      &pinlen, err);
	OPENSSL_cleanse(pin, sizeof(pin));
	if (r < 0)
		goto fail;
	p->nsess = (conf->workers ? conf->workers : 1) + 1;
	p->sess = calloc(p->nsess, sizeof(*p->sess));
	if (!p->sess) {
		r = sigfs_seterr(err, -ENOMEM, "pkcs11 backend %s: out of memory", p->name);
		goto fail;
	}
	for (unsigned i = 0; i < p->nsess; i++)
		pthread_mutex_init(&p->sess[i].lock, NULL);
	*out = p;
	return 0;
fail:
	p11_free(p);
	return r;
}

/* Load the vendor module and share its initialization (module_ref). */
static int load_module(struct p11 *p, const char *module, char *err)
{
	const char *base;
	CK_C_GetFunctionList getfl;
	CK_RV rv;

	/*
	 * Never unmapped: modules may leave threads or atexit handlers behind
	 * after C_Finalize, and leak checkers can then still name the module.
	 */
	p->dl = dlopen(module, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
	if (!p->dl)
		return sigfs_seterr(err, -ENOENT, "pkcs11 backend %s: cannot load module %s: %s",
				    p->name, module, dlerror());
	getfl = (CK_C_GetFunctionList)dlsym(p->dl, "C_GetFunctionList");
	if (!getfl)
		return sigfs_seterr(err, -EINVAL, "pkcs11 backend %s: %s is not a PKCS#11 module "
				    "(no C_GetFunctionList)", p->name, module);
	rv = getfl(&p->f);
	if (rv != CKR_OK || !p->f)
		return ckerr(p, NULL, "C_GetFunctionList", rv, err);
	base = strrchr(module, '/');
	base = base ? base + 1 : module;
	return module_ref(p, strncmp(base, "p11-kit-client", 14) == 0, err);
}

static int p11_open(const struct sigfs_backend_conf *conf, struct sigfs_backend **out, char *err)
{
	const char *module = conf->get(conf, "module", NULL);
	const char *label = conf->get(conf, "token_label", NULL);
	const char *pin_file = conf->get(conf, "pin_file", NULL);
	struct p11 *p;
	long retry_ms;
	int r;

	if (!module || !label || !pin_file)
		return sigfs_seterr(err, -EINVAL, "pkcs11 backend %s: set module, token_label and "
				    "pin_file in [backend %s]", conf->name, conf->name);
	if (strlen(label) == 0 || strlen(label) > TOKEN_LABEL_MAX)
		return sigfs_seterr(err, -EINVAL, "pkcs11 backend %s: token_label '%s' must have 1 to "
				    "%d characters", conf->name, label, TOKEN_LABEL_MAX);
	r = sigfs_backend_seconds(conf, "pkcs11", "retry_seconds", "10", 0, &retry_ms, err);
	if (r < 0)
		return r;
	r = p11_new(conf, label, pin_file, retry_ms, &p, err);
	if (r < 0)
		return r;
	r = load_module(p, module, err);
	if (r < 0)
		goto fail;
	/*
	 * Log in now, so the log says at once whether the token answers. A
	 * token that is down is waited for by the jobs, and a PIN it refuses
	 * fails them (without another C_Login until pin_file changes).
	 */
	r = run(p, admin_session(p), do_connect, NULL, false, err);
	if (r < 0 && r != -EHOSTUNREACH && r != -EACCES)
		goto fail;
	r = sigfs_backend_new(&sigfs_backend_pkcs11, conf, p, out, err);
	if (r < 0)
		goto fail;
	return 0;
fail:
	p11_free(p);
	return r;
}

const struct sigfs_backend_ops sigfs_backend_pkcs11 = {
	.type = "pkcs11",
	.open = p11_open,
	.close = p11_close,
	.generate = p11_generate,
	/* No import: keys are made on the token, so they never existed outside it. */
	.import_pem = NULL,
	.remove = p11_remove,
	.public_key = p11_public_key,
	.sign = p11_sign,
	.list = p11_list,
};
