/*  auth: CurveZMQ identity — the ZAP handler, certificate directory and
 *  key helpers (see auth.h). czmq's zcert reads and writes the zcert
 *  format; the handler itself runs in the daemon's own poll loop.
 */
#include <czmq.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <zmq.h>

#include "amity/auth.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"

/*  A draft option in libzmq 4.3 headers, but built into Debian's library:
 *  without it a failing or missing handler would admit unknown keys. */
#ifndef ZMQ_ZAP_ENFORCE_DOMAIN
#define ZMQ_ZAP_ENFORCE_DOMAIN 93
#endif

#define ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define ZAP_FRAMES_MAX 16

typedef struct {
    const char *domain;      /* AMITY_ZAP_CLIENTS or AMITY_ZAP_SERVICES */
    char *dir;               /* certificate directory (NULL: none loaded) */
    amity_peer_t *peers;     /* admitted peers, sorted by public key */
    size_t n_peers;          /* entries in peers */
} s_domain_t;

struct amity_auth {
    void *zap;               /* REP bound at ZAP_ENDPOINT */
    s_domain_t domains[2];   /* clients, services */
    uint64_t admitted;       /* handshakes admitted */
    uint64_t refused;        /* handshakes refused */
};

static s_domain_t *
s_domain(const amity_auth_t *self, const char *name, size_t len)
{
    for (int i = 0; i < 2; i++) {
        const s_domain_t *d = &self->domains[i];
        if (strlen(d->domain) == len && memcmp(d->domain, name, len) == 0) {
            return (s_domain_t *) (uintptr_t) d;
        }
    }
    return NULL;
}

static int
s_peer_cmp(const void *a, const void *b)
{
    return strcmp(((const amity_peer_t *) a)->public_txt, ((const amity_peer_t *) b)->public_txt);
}

static bool
s_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s);
    size_t k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/*  Reads one public certificate into peer. */
static int
s_load_peer(const char *path, amity_peer_t *peer)
{
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        amity_log_error("auth: %s: not a readable zcert certificate", path);
        return AMITY_EINVAL;
    }
    memset(peer, 0, sizeof *peer);
    int rc = AMITY_EINVAL;
    const char *pub = zcert_public_txt(cert);
    const char *office = zcert_meta(cert, "office");
    const char *name = zcert_meta(cert, "name");
    const char *prefixes = zcert_meta(cert, "prefixes");
    if (!pub || strlen(pub) != AMITY_KEY_TXT - 1 || strcmp(pub, "0000000000000000000000000000000000000000") == 0) {
        amity_log_error("auth: %s: no curve public-key", path);
        goto out;
    }
    memcpy(peer->public_txt, pub, AMITY_KEY_TXT);
    if (office && *office) {
        if (!amity_office_valid(office, strlen(office))) {
            amity_log_error("auth: %s: office '%.64s' is not a valid office id", path, office);
            goto out;
        }
        peer->is_office = true;
        snprintf(peer->name, sizeof peer->name, "%s", office);
    } else if (name && *name && strlen(name) < sizeof peer->name) {
        snprintf(peer->name, sizeof peer->name, "%s", name);
    } else {
        amity_log_error("auth: %s: metadata names neither an office nor a name", path);
        goto out;
    }
    if (prefixes) {
        if (strlen(prefixes) >= sizeof peer->prefixes) {
            amity_log_error("auth: %s: prefixes longer than %zu bytes", path, sizeof peer->prefixes - 1);
            goto out;
        }
        snprintf(peer->prefixes, sizeof peer->prefixes, "%s", prefixes);
    }
    rc = 0;
out:
    zcert_destroy(&cert);
    return rc;
}

/*  Loads the whole directory into a fresh sorted array. */
static int
s_load_dir(const char *dir, amity_peer_t **peers_out, size_t *n_out)
{
    DIR *d = opendir(dir);
    if (!d) {
        amity_log_errno("auth: cannot read certificate directory %s", dir);
        return AMITY_EINVAL;
    }
    amity_peer_t *peers = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || s_has_suffix(e->d_name, "_secret")) {
            continue;
        }
        char path[4096];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int) sizeof path) {
            continue;
        }
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            amity_peer_t *p = realloc(peers, ncap * sizeof *p);
            if (!p) {
                rc = AMITY_ENOMEM;
                goto fail;
            }
            peers = p;
            cap = ncap;
        }
        rc = s_load_peer(path, &peers[n]);
        if (rc) {
            goto fail;
        }
        n++;
    }
    closedir(d);
    if (n > 1) {
        qsort(peers, n, sizeof *peers, s_peer_cmp);
    }
    for (size_t i = 1; i < n; i++) {
        if (strcmp(peers[i - 1].public_txt, peers[i].public_txt) == 0) {
            amity_log_error("auth: %s: public key %s appears twice", dir, peers[i].public_txt);
            free(peers);
            return AMITY_EINVAL;
        }
    }
    *peers_out = peers;
    *n_out = n;
    return 0;
fail:
    closedir(d);
    free(peers);
    return rc;
}

int
amity_auth_new(amity_auth_t **out, void *ctx)
{
    AMITY_ASSERT(out && ctx);
    *out = NULL;
    amity_auth_t *self = calloc(1, sizeof *self);
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->domains[0].domain = AMITY_ZAP_CLIENTS;
    self->domains[1].domain = AMITY_ZAP_SERVICES;
    self->zap = zmq_socket(ctx, ZMQ_REP);
    if (!self->zap) {
        amity_auth_destroy(&self);
        return AMITY_EIO;
    }
    int linger = 0;
    zmq_setsockopt(self->zap, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(self->zap, ZAP_ENDPOINT) != 0) {
        amity_log_error("auth: cannot bind the ZAP handler: %s", zmq_strerror(errno));
        amity_auth_destroy(&self);
        return AMITY_EIO;
    }
    *out = self;
    return 0;
}

int
amity_auth_load(amity_auth_t *self, const char *domain, const char *certs_dir)
{
    AMITY_ASSERT(self && domain && certs_dir);
    s_domain_t *d = s_domain(self, domain, strlen(domain));
    AMITY_ASSERT(d);
    amity_peer_t *peers = NULL;
    size_t n = 0;
    int rc = s_load_dir(certs_dir, &peers, &n);
    if (rc) {
        return rc;
    }
    char *dir = strdup(certs_dir);
    if (!dir) {
        free(peers);
        return AMITY_ENOMEM;
    }
    free(d->dir);
    free(d->peers);
    d->dir = dir;
    d->peers = peers;
    d->n_peers = n;
    amity_log_info("auth: %zu certificate(s) for %s loaded from %s", n, domain, certs_dir);
    return 0;
}

int
amity_auth_check_dir(const char *certs_dir, size_t *n_out)
{
    AMITY_ASSERT(certs_dir);
    amity_peer_t *peers = NULL;
    size_t n = 0;
    int rc = s_load_dir(certs_dir, &peers, &n);
    free(peers);
    if (rc == 0 && n_out) {
        *n_out = n;
    }
    return rc;
}

void
amity_auth_destroy(amity_auth_t **self_p)
{
    AMITY_ASSERT(self_p);
    amity_auth_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->zap) {
        zmq_close(self->zap);
    }
    for (int i = 0; i < 2; i++) {
        free(self->domains[i].peers);
        free(self->domains[i].dir);
    }
    free(self);
    *self_p = NULL;
}

void *
amity_auth_socket(amity_auth_t *self)
{
    AMITY_ASSERT(self);
    return self->zap;
}

static const amity_peer_t *
s_find(const s_domain_t *d, const char *public_txt)
{
    amity_peer_t probe;
    if (!d || d->n_peers == 0 || strlen(public_txt) != AMITY_KEY_TXT - 1) {
        return NULL;
    }
    memcpy(probe.public_txt, public_txt, AMITY_KEY_TXT);
    return bsearch(&probe, d->peers, d->n_peers, sizeof probe, s_peer_cmp);
}

static void
s_reply(void *zap, zmq_msg_t *req_id, const char *code, const char *text, const char *user)
{
    zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(zap, zmq_msg_data(req_id), zmq_msg_size(req_id), ZMQ_SNDMORE);
    zmq_send(zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(zap, "", 0, 0);
}

/*  Handles one request already waiting on the socket. */
static int
s_handle_one(amity_auth_t *self)
{
    zmq_msg_t frames[ZAP_FRAMES_MAX];
    int n = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = n < ZAP_FRAMES_MAX ? &frames[n] : &scratch;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, self->zap, n == 0 ? ZMQ_DONTWAIT : 0) < 0) {
            zmq_msg_close(m);
            if (n == 0) {
                return 0;
            }
            break;
        }
        more = zmq_msg_more(m);
        if (n < ZAP_FRAMES_MAX) {
            n++;
        } else {
            zmq_msg_close(m);
        }
    }
    /* version, request id, domain, address, identity, mechanism, credentials... */
    const char *why = NULL;
    char key_txt[AMITY_KEY_TXT] = "";
    char addr[64] = "?";
    char mech[16] = "?";
    const s_domain_t *dom = NULL;
    if (n < 6) {
        why = "malformed ZAP request";
    } else {
        size_t alen = zmq_msg_size(&frames[3]);
        snprintf(addr, sizeof addr, "%.*s", (int) (alen < 63 ? alen : 63),
                 (const char *) zmq_msg_data(&frames[3]));
        size_t mlen = zmq_msg_size(&frames[5]);
        snprintf(mech, sizeof mech, "%.*s", (int) (mlen < 15 ? mlen : 15),
                 (const char *) zmq_msg_data(&frames[5]));
        if (zmq_msg_size(&frames[0]) != 3 || memcmp(zmq_msg_data(&frames[0]), "1.0", 3) != 0) {
            why = "unsupported ZAP version";
        } else if (!(dom = s_domain(self, zmq_msg_data(&frames[2]), zmq_msg_size(&frames[2])))) {
            why = "unknown ZAP domain";
        } else if (strcmp(mech, "CURVE") != 0) {
            why = "mechanism is not CURVE";
        } else if (n < 7 || zmq_msg_size(&frames[6]) != 32) {
            why = "no client key";
        } else {
            zmq_z85_encode(key_txt, zmq_msg_data(&frames[6]), 32);
            if (!s_find(dom, key_txt)) {
                why = "unknown key";
            }
        }
    }
    if (n >= 2) {
        if (why) {
            s_reply(self->zap, &frames[1], "400", why, "");
        } else {
            s_reply(self->zap, &frames[1], "200", "OK", key_txt);
        }
    } else {
        /* a REP socket must answer whatever it received */
        zmq_msg_t empty;
        zmq_msg_init(&empty);
        s_reply(self->zap, &empty, "500", "malformed ZAP request", "");
        zmq_msg_close(&empty);
    }
    if (why) {
        self->refused++;
        amity_log_warn("auth: refused %s client from %s: %s%s%s", mech, addr, why,
                       key_txt[0] ? " key=" : "", key_txt);
    } else {
        self->admitted++;
        const amity_peer_t *p = s_find(dom, key_txt);
        amity_log_info("auth: admitted %s (%s) from %s", p ? p->name : "?", dom->domain, addr);
    }
    for (int i = 0; i < n; i++) {
        zmq_msg_close(&frames[i]);
    }
    return 1;
}

int
amity_auth_process(amity_auth_t *self)
{
    AMITY_ASSERT(self);
    int handled = 0;
    while (handled < 256 && s_handle_one(self) == 1) {
        handled++;
    }
    return handled;
}

int
amity_auth_reload(amity_auth_t *self)
{
    AMITY_ASSERT(self);
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        s_domain_t *d = &self->domains[i];
        if (!d->dir) {
            continue;
        }
        amity_peer_t *peers = NULL;
        size_t n = 0;
        int r = s_load_dir(d->dir, &peers, &n);
        if (r) {
            amity_log_error("auth: reload of %s failed; keeping the %zu certificate(s) in force",
                            d->dir, d->n_peers);
            rc = r;
            continue;
        }
        free(d->peers);
        d->peers = peers;
        d->n_peers = n;
        amity_log_info("auth: reloaded %zu certificate(s) for %s from %s", n, d->domain, d->dir);
    }
    return rc;
}

const amity_peer_t *
amity_auth_peer(const amity_auth_t *self, const char *domain, const char *user_id)
{
    AMITY_ASSERT(self && domain);
    if (!user_id) {
        return NULL;
    }
    return s_find(s_domain(self, domain, strlen(domain)), user_id);
}

static bool
s_under(const char *key, size_t key_len, const char *prefix, size_t prefix_len)
{
    return prefix_len <= key_len && memcmp(key, prefix, prefix_len) == 0;
}

bool
amity_auth_allows(const amity_peer_t *peer, const char *key, size_t key_len)
{
    if (!peer) {
        return false;
    }
    if (peer->prefixes[0]) {
        const char *p = peer->prefixes;
        while (*p) {
            while (*p == ' ' || *p == ',') {
                p++;
            }
            const char *end = p;
            while (*end && *end != ',') {
                end++;
            }
            size_t len = (size_t) (end - p);
            while (len > 0 && p[len - 1] == ' ') {
                len--;
            }
            if (len == 1 && p[0] == '*') {
                return true;
            }
            if (len > 0 && s_under(key, key_len, p, len)) {
                return true;
            }
            p = end;
        }
        return false;
    }
    if (!peer->is_office) {
        return false;
    }
    /* PERIOD/OFFICE/...: an office reads its own totals and the "all" ones */
    const char *slash = memchr(key, '/', key_len);
    if (!slash) {
        return false;
    }
    const char *office = slash + 1;
    size_t rest = key_len - (size_t) (office - key);
    size_t own = strlen(peer->name);
    if (rest > own && memcmp(office, peer->name, own) == 0 && office[own] == '/') {
        return true;
    }
    return rest > 3 && memcmp(office, "all/", 4) == 0;
}

/*  True when a and b agree on their common length: one is a prefix of the
 *  other, so some string starts with both. */
static bool
s_overlap(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    return n == 0 || memcmp(a, b, n) == 0;
}

bool
amity_auth_may_read(const amity_peer_t *peer, const char *prefix, size_t prefix_len)
{
    if (!peer) {
        return false;
    }
    if (peer->prefixes[0]) {
        const char *p = peer->prefixes;
        while (*p) {
            while (*p == ' ' || *p == ',') {
                p++;
            }
            const char *end = p;
            while (*end && *end != ',') {
                end++;
            }
            size_t len = (size_t) (end - p);
            while (len > 0 && p[len - 1] == ' ') {
                len--;
            }
            if ((len == 1 && p[0] == '*') || (len > 0 && s_overlap(prefix, prefix_len, p, len))) {
                return true;
            }
            p = end;
        }
        return false;
    }
    if (!peer->is_office) {
        return false;
    }
    /* PERIOD/OFFICE/...: any prefix still inside the period, or whose
     * office part agrees with "<own>/" or "all/" */
    const char *slash = memchr(prefix, '/', prefix_len);
    if (!slash) {
        return true;
    }
    const char *office = slash + 1;
    size_t rest = prefix_len - (size_t) (office - prefix);
    char own[sizeof peer->name + 1];
    size_t own_len = (size_t) snprintf(own, sizeof own, "%s/", peer->name);
    return s_overlap(office, rest, own, own_len) || s_overlap(office, rest, "all/", 4);
}

void
amity_auth_stats(const amity_auth_t *self, uint64_t *admitted, uint64_t *refused)
{
    AMITY_ASSERT(self);
    if (admitted) {
        *admitted = self->admitted;
    }
    if (refused) {
        *refused = self->refused;
    }
}

size_t
amity_auth_count(const amity_auth_t *self, const char *domain)
{
    AMITY_ASSERT(self && domain);
    const s_domain_t *d = s_domain(self, domain, strlen(domain));
    return d ? d->n_peers : 0;
}

int
amity_keypair_load(const char *path, amity_keypair_t *out)
{
    AMITY_ASSERT(path && out);
    memset(out, 0, sizeof *out);
    zcert_t *cert = zcert_load(path);
    if (!cert) {
        amity_log_error("auth: %s: not a readable zcert certificate", path);
        return AMITY_EINVAL;
    }
    snprintf(out->public_txt, sizeof out->public_txt, "%s", zcert_public_txt(cert));
    const char *sec = zcert_secret_txt(cert);
    if (sec && strcmp(sec, "0000000000000000000000000000000000000000") != 0) {
        snprintf(out->secret_txt, sizeof out->secret_txt, "%s", sec);
    }
    zcert_destroy(&cert);
    if (strlen(out->public_txt) != AMITY_KEY_TXT - 1 ||
        strcmp(out->public_txt, "0000000000000000000000000000000000000000") == 0) {
        amity_log_error("auth: %s: no curve public-key", path);
        return AMITY_EINVAL;
    }
    return 0;
}

int
amity_curve_server(void *sock, const amity_keypair_t *server, const char *domain)
{
    AMITY_ASSERT(sock && server && domain);
    int on = 1;
    if (!server->secret_txt[0]) {
        amity_log_error("auth: the server key has no secret part");
        return AMITY_EINVAL;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &on, sizeof on) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, server->secret_txt, AMITY_KEY_TXT - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, domain, strlen(domain)) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &on, sizeof on) != 0) {
        amity_log_error("auth: cannot make a CURVE server socket: %s", zmq_strerror(errno));
        return AMITY_EIO;
    }
    return 0;
}

int
amity_curve_client(void *sock, const amity_keypair_t *own, const char *server_public_txt)
{
    AMITY_ASSERT(sock && own && server_public_txt);
    if (!own->secret_txt[0] || strlen(server_public_txt) != AMITY_KEY_TXT - 1) {
        amity_log_error("auth: a CURVE client needs its secret key and the server's public key");
        return AMITY_EINVAL;
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public_txt, AMITY_KEY_TXT - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, own->public_txt, AMITY_KEY_TXT - 1) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own->secret_txt, AMITY_KEY_TXT - 1) != 0) {
        amity_log_error("auth: cannot make a CURVE client socket: %s", zmq_strerror(errno));
        return AMITY_EIO;
    }
    return 0;
}

/*  ------------------------------------------------------------------
 *  Connection monitor
 */

#define S_MON_BURST   8     /* connection lines one monitor logs per second at most */
#define S_MON_EVENTS  256   /* events handled per amity_monitor_process call */
#define S_MON_CHUNK   64    /* events read before any is handled */
#define S_MON_FDS_MAX 65536 /* fds tracked (beyond: lines name the endpoint) */
#define S_MON_EVENTS_ON                                                                            \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_CONNECTED |       \
     ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED)

/*  One event as read from the PAIR socket. */
typedef struct {
    uint16_t event; /* ZMQ_EVENT_* */
    uint32_t value; /* an fd, an errno, an interval, depending on event */
    char ep[256];   /* the endpoint (cut to fit) */
} s_event_t;

/*  One connection the monitor knows, by its fd. */
typedef struct {
    char *peer;    /* the peer's address (heap; NULL: slot unused) */
    bool accepted; /* on a bound socket (peer from getpeername, when it had one) */
    bool up;       /* counted as connected (accepted, or its handshake completed) */
} s_conn_t;

struct amity_monitor {
    void *pair;                   /* PAIR connected to the monitor endpoint */
    char name[64];                /* the socket's name, first on every line */
    s_conn_t *conns;              /* fd -> connection */
    size_t n_conns;               /* slots in conns */
    size_t n_waiting;             /* connecting socket: connections before their handshake */
    long long fail_last_ms;       /* handshake failures: last line (1 per second) */
    unsigned long fail_n;         /* ... suppressed since */
    int64_t window_ms;            /* connection lines: start of the current second */
    unsigned n_window;            /* ... lines logged in it */
    unsigned long n_suppressed;   /* ... lines suppressed since the last one logged */
    amity_monitor_stats_t stats;  /* counters */
    s_event_t batch[S_MON_CHUNK]; /* events read, being handled */
};

static int64_t
s_mon_now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*  True when a connection line may be logged now: up to S_MON_BURST a
 *  second for this monitor; the first line after a gap says how many were
 *  left out. */
static bool
s_mon_allow(amity_monitor_t *self)
{
    int64_t now = s_mon_now_ms();

    if (now - self->window_ms >= 1000) {
        if (self->n_suppressed > 0) {
            amity_log_info("%s: %lu connection events not logged (rate limit)", self->name,
                           self->n_suppressed);
            self->n_suppressed = 0;
        }
        self->window_ms = now;
        self->n_window = 0;
    }
    if (self->n_window >= S_MON_BURST) {
        self->n_suppressed++;
        return false;
    }
    self->n_window++;
    return true;
}

/*  The slot of fd, growing the table; NULL when fd is out of range or
 *  memory is short (the line then names the endpoint). */
static s_conn_t *
s_mon_slot(amity_monitor_t *self, uint32_t fd)
{
    if (fd >= S_MON_FDS_MAX) {
        return NULL;
    }
    if (fd >= self->n_conns) {
        size_t n = self->n_conns ? self->n_conns : 64;
        s_conn_t *grown;
        while (n <= fd) {
            n *= 2;
        }
        grown = realloc(self->conns, n * sizeof *grown);
        if (!grown) {
            return NULL;
        }
        memset(grown + self->n_conns, 0, (n - self->n_conns) * sizeof *grown);
        self->conns = grown;
        self->n_conns = n;
    }
    return &self->conns[fd];
}

static void
s_mon_forget(amity_monitor_t *self, s_conn_t *c)
{
    if (c) {
        if (c->peer && !c->up && self->n_waiting > 0) {
            self->n_waiting--;
        }
        free(c->peer);
        c->peer = NULL;
        c->accepted = false;
        c->up = false;
    }
}

/*  The address of the peer at the other end of fd ("127.0.0.1:PORT",
 *  "[::1]:PORT"), or "" when it is not TCP or no longer open. */
static void
s_peer_name(int fd, char *out, size_t out_len)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN];

    out[0] = '\0';
    memset(&ss, 0, sizeof ss);
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host)) {
            (void)snprintf(out, out_len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
        }
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host)) {
            (void)snprintf(out, out_len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
        }
    }
}

amity_monitor_t *
amity_monitor_new(void *ctx, void *sock, const char *name)
{
    AMITY_ASSERT(ctx && sock && name);
    static unsigned long n_made;
    amity_monitor_t *self = calloc(1, sizeof *self);
    char ep[128];
    int linger = 0;

    if (!self) {
        amity_log_error("auth: cannot monitor %s: out of memory", name);
        return NULL;
    }
    (void)snprintf(self->name, sizeof self->name, "%s", name);
    /* unique per process: the socket's address alone could be reused */
    (void)snprintf(ep, sizeof ep, "inproc://amity-monitor-%p-%lu", sock, ++n_made);
    if (zmq_socket_monitor(sock, ep, S_MON_EVENTS_ON) != 0) {
        amity_log_error("auth: cannot monitor %s: %s", name, zmq_strerror(errno));
        free(self);
        return NULL;
    }
    self->pair = zmq_socket(ctx, ZMQ_PAIR);
    if (!self->pair) {
        amity_log_error("auth: cannot monitor %s: %s", name, zmq_strerror(errno));
        (void)zmq_socket_monitor(sock, NULL, 0);
        free(self);
        return NULL;
    }
    (void)zmq_setsockopt(self->pair, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_connect(self->pair, ep) != 0) {
        amity_log_error("auth: cannot monitor %s: %s", name, zmq_strerror(errno));
        (void)zmq_socket_monitor(sock, NULL, 0);
        zmq_close(self->pair);
        free(self);
        return NULL;
    }
    return self;
}

void
amity_monitor_destroy(amity_monitor_t **self_p)
{
    AMITY_ASSERT(self_p);
    amity_monitor_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->pair) {
        zmq_close(self->pair);
    }
    for (size_t i = 0; i < self->n_conns; i++) {
        free(self->conns[i].peer);
    }
    free(self->conns);
    free(self);
    *self_p = NULL;
}

void *
amity_monitor_socket(const amity_monitor_t *self)
{
    AMITY_ASSERT(self);
    return self->pair;
}

void
amity_monitor_stats(const amity_monitor_t *self, amity_monitor_stats_t *out)
{
    AMITY_ASSERT(self && out);
    *out = self->stats;
}

/*  A connection began: ACCEPTED on a bound socket (peer from getpeername,
 *  unless closed: its disconnect was read already, so fd may be another
 *  connection's by now), CONNECTED on a connecting one (peer = the
 *  endpoint). */
static void
s_mon_opened(amity_monitor_t *self, uint16_t event, uint32_t fd, const char *ep, bool closed)
{
    s_conn_t *c = s_mon_slot(self, fd);
    char peer[AMITY_PEER_TXT];

    if (!c) {
        return;
    }
    if (c->peer && c->up && self->stats.live > 0) {
        self->stats.live--; /* its fd was reused: that connection is gone */
    }
    s_mon_forget(self, c);
    peer[0] = '\0';
    if (event == ZMQ_EVENT_ACCEPTED) {
        if (!closed) {
            s_peer_name((int)fd, peer, sizeof peer);
        }
        if (!peer[0] && strncmp(ep, "tcp://", 6) == 0) {
            (void)snprintf(peer, sizeof peer, "?"); /* already closed: see auth.h */
        }
        self->stats.connects++;
        self->stats.live++;
        c->accepted = true;
        c->up = true;
    }
    c->peer = strdup(peer[0] ? peer : ep);
    if (c->peer && !c->up) {
        self->n_waiting++;
    }
}

/*  ZMQ_EVENT_HANDSHAKE_SUCCEEDED carries no fd: on a connecting socket its
 *  endpoint names the connection (one per endpoint at a time). */
static void
s_mon_handshake_ok(amity_monitor_t *self, const char *ep)
{
    s_conn_t *found = NULL;
    size_t n_waiting = 0;

    /* a bound socket has none waiting (and ep is its own endpoint) */
    for (size_t i = 0; i < self->n_conns && self->n_waiting > 0; i++) {
        s_conn_t *c = &self->conns[i];
        if (!c->peer || c->up || c->accepted) {
            continue;
        }
        if (strcmp(c->peer, ep) == 0) {
            found = c;
            break;
        }
        n_waiting++;
        if (n_waiting == 1) {
            found = c; /* the only connection waiting is this one */
        } else {
            found = NULL;
        }
    }
    if (!found) {
        /* a bound socket (ep is ours), or no CONNECTED event was seen */
        return;
    }
    found->up = true;
    self->n_waiting--;
    self->stats.connects++;
    self->stats.live++;
    if (s_mon_allow(self)) {
        amity_log_info("%s: connected peer=%s", self->name, found->peer);
    }
}

static void
s_mon_closed(amity_monitor_t *self, uint32_t fd, const char *ep)
{
    s_conn_t *c = fd < self->n_conns ? &self->conns[fd] : NULL;
    const char *peer = c && c->peer ? c->peer : ep;
    bool named = c && c->accepted && strcmp(peer, ep) != 0; /* by getpeername */

    if (c && c->peer && !c->up) {
        /* a connecting socket's attempt whose handshake failed (logged as
         * such): not a link that died */
        amity_log_debug("%s: connection closed before its handshake completed peer=%s", self->name,
                        peer);
        s_mon_forget(self, c);
        return;
    }
    self->stats.disconnects++;
    if (self->stats.live > 0) {
        self->stats.live--;
    }
    (void)snprintf(self->stats.last_peer, sizeof self->stats.last_peer, "%s", peer);
    if (s_mon_allow(self)) {
        if (named) {
            amity_log_info("%s: peer disconnected peer=%s on=%s (closed, or silent past the "
                           "heartbeat timeout)",
                           self->name, peer, ep);
        } else {
            amity_log_info("%s: peer disconnected peer=%s (closed, or silent past the heartbeat "
                           "timeout)",
                           self->name, peer);
        }
    }
    s_mon_forget(self, c);
}

/*  Reads up to S_MON_CHUNK waiting events into self->batch; returns how
 *  many. */
static size_t
s_mon_read(amity_monitor_t *self)
{
    size_t n = 0;

    while (n < S_MON_CHUNK) {
        s_event_t *e = &self->batch[n];
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, self->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev)) {
            (void)zmq_msg_recv(&addr, self->pair, 0);
        }
        if (zmq_msg_size(&ev) >= 6) {
            size_t len =
                zmq_msg_size(&addr) < sizeof e->ep - 1 ? zmq_msg_size(&addr) : sizeof e->ep - 1;
            memcpy(&e->event, zmq_msg_data(&ev), 2);
            memcpy(&e->value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
            memcpy(e->ep, zmq_msg_data(&addr), len);
            e->ep[len] = '\0';
            n++;
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
    }
    return n;
}

int
amity_monitor_process(amity_monitor_t *self)
{
    AMITY_ASSERT(self);
    int failures = 0;
    size_t n;
    size_t done = 0;

    /* a batch first: an accepted fd whose disconnect is already in it is
     * closed (or reused) by now, and getpeername must not be asked */
    while (done < S_MON_EVENTS && (n = s_mon_read(self)) > 0) {
        done += n;
        for (size_t i = 0; i < n; i++) {
            const s_event_t *e = &self->batch[i];
            const char *what = NULL;
            bool closed = false;
            switch (e->event) {
            case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
                what = "handshake failed";
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
                what = "handshake failed (protocol or mechanism mismatch, e.g. no key or wrong "
                       "server key)";
                break;
            case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
                what = "handshake refused by authentication";
                break;
            case ZMQ_EVENT_ACCEPTED:
            case ZMQ_EVENT_CONNECTED:
                for (size_t j = i + 1; j < n && !closed; j++) {
                    closed = self->batch[j].event == ZMQ_EVENT_DISCONNECTED &&
                             self->batch[j].value == e->value;
                }
                s_mon_opened(self, e->event, e->value, e->ep, closed);
                break;
            case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
                s_mon_handshake_ok(self, e->ep);
                break;
            case ZMQ_EVENT_DISCONNECTED:
                s_mon_closed(self, e->value, e->ep);
                break;
            default:
                break;
            }
            if (what) {
                failures++;
                self->stats.handshake_failures++;
                if (amity_log_ratelimit(&self->fail_last_ms, &self->fail_n, 1)) {
                    amity_log_warn("%s: %s from %s (code %u)", self->name, what, e->ep,
                                   (unsigned)e->value);
                }
            }
        }
    }
    return failures;
}
