/*  ingest: the front door (see ingest.h). One thread, one zmq_poll loop over
 *  the signal fd, the client ROUTER and the verdict SUB; the work PUSH is
 *  only written to, never waited on: when no validator can take a message it
 *  is dropped and counted, and the office resends.
 */
#include "ingest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/daemon.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/record.h"
#include "amity/signals.h"
#include "amity/sock.h"

#define BATCH_MAX      256               /* messages drained from one socket per iteration */
#define STATS_EVERY_MS 10000             /* counters logged this often when they changed */
#define SUB_MAX_MSG    INT64_C(16777216) /* verdicts from shards: 8192 reasons fit */
#define ENDPOINT_MAX   512
#define WORK_SNDHWM    100 /* work messages queued per validator (they can be MBs) */

#define OFFICE_REQUIRED "office: required in development mode"

#define POLL_MAX  7 /* signal, ZAP, three monitors, clients, verdicts */
#define PARTS_MAX 3 /* frames kept of a message: one more than any valid one */

struct ingest_t {
    const char *bind;              /* client ROUTER endpoint (borrowed from opts) */
    const char *work;              /* validator PUSH endpoint (borrowed) */
    const amity_strlist_t *shards; /* shard base endpoints (borrowed) */
    int64_t max_msg;               /* ZMQ_MAXMSGSIZE on the client ROUTER */
    const char *clients_dir;       /* offices' certificates (NULL: development mode) */
    const char *peers_dir;         /* services' certificates (NULL: work in clear) */
    bool secure;                   /* offices are known by their keys */
    amity_keypair_t own;           /* our certificate (public_txt "" without keys) */
    amity_keypair_t *shard_pub;    /* [n shards] shards' public keys, or NULL */
    amity_auth_t *auth;            /* the ZAP handler (NULL without keys) */
    amity_monitor_t *mon_clients;  /* handshake monitor of clients (NULL without keys) */
    amity_monitor_t *mon_work;     /* handshake monitor of validators (NULL: no CURVE) */
    amity_monitor_t *mon_verdicts; /* the verdict SUB's links to the shards */
    char id[INGEST_ID_LEN + 1];    /* "ing-" + 16 hex: our verdict topic */
    void *clients;                 /* ROUTER bound at bind */
    void *validators;              /* PUSH bound at work */
    void *verdicts;                /* SUB connected to every shard's B+1 */
    bool stopping;                 /* a stop signal arrived */
    ingest_stats_t stats;          /* counters */
    ingest_stats_t logged;         /* counters as last logged */
    uint64_t logged_refused;       /* ZAP refusals as last logged */
    int64_t next_stats_ms;         /* monotonic deadline of the next stats line */
    amity_msg_t msg;               /* decode scratch */
    ingest_out_t out;              /* handler outputs, reused */
};

/* ------------------------------------------------------------------ */
/* small helpers                                                        */

static void
s_hex(const void *p, size_t len, char *out, size_t out_len)
{
    static const char digits[] = "0123456789abcdef";
    const uint8_t *b = p;
    size_t i;
    size_t o = 0;

    for (i = 0; i < len && o + 2 < out_len; i++) {
        out[o++] = digits[b[i] >> 4];
        out[o++] = digits[b[i] & 15];
    }
    out[o] = '\0';
}

static void
s_random_id(char out[INGEST_ID_LEN + 1])
{
    uint8_t rnd[8];
    size_t got = 0;

    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        got += (size_t)n;
    }
    if (got < sizeof rnd) {
        /* no entropy source: time and pid still make a collision unlikely */
        uint64_t x = (uint64_t)amity_clock_wall_ms() ^ ((uint64_t)getpid() << 32) ^
                     (uint64_t)amity_clock_mono_ms();
        memcpy(rnd, &x, sizeof rnd);
    }
    memcpy(out, "ing-", 5); /* NUL included; the hex overwrites it */
    s_hex(rnd, sizeof rnd, out + 4, INGEST_ID_LEN + 1 - 4);
}

void
ingest_out_init(ingest_out_t *out)
{
    amity_buf_init(&out->work);
    amity_buf_init(&out->conn);
    amity_buf_init(&out->reply);
}

void
ingest_out_reset(ingest_out_t *out)
{
    amity_buf_reset(&out->work);
    amity_buf_reset(&out->conn);
    amity_buf_reset(&out->reply);
}

void
ingest_out_clear(ingest_out_t *out)
{
    amity_buf_clear(&out->work);
    amity_buf_clear(&out->conn);
    amity_buf_clear(&out->reply);
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                            */

static bool
s_set(const char *opt)
{
    return opt != NULL && opt[0] != '\0';
}

/* The key options go together, and without them nothing but this machine
 * may reach a bound socket (ARCHITECTURE.md promise 6): offices would name
 * themselves and anyone could pull work. Logs what to set. */
static int
s_check_keys(const ingest_opts_t *opts)
{
    bool key = s_set(opts->key);
    bool clients = s_set(opts->clients_dir);
    bool peers = s_set(opts->peers_dir);
    size_t n_shard_keys = opts->shard_keys != NULL ? opts->shard_keys->n : 0;
    size_t i;

    if (key != clients) {
        amity_log_error("%s: set --key and --clients-dir together (the server's secret "
                        "certificate and the directory of the offices' public ones)",
                        key ? "key" : "clients-dir");
        return AMITY_EINVAL;
    }
    if (peers && !key) {
        amity_log_error("peers-dir: needs --key (and --clients-dir)");
        return AMITY_EINVAL;
    }
    if (n_shard_keys > 0 && !key) {
        amity_log_error("shard-keys: needs --key (ingest's own certificate, registered in "
                        "each shard's --peers-dir)");
        return AMITY_EINVAL;
    }
    if (n_shard_keys > 0 && n_shard_keys != opts->shards->n) {
        amity_log_error("shard-keys: %zu certificate(s) for %zu shard(s); give one per shard, "
                        "in the order of --shards",
                        n_shard_keys, opts->shards->n);
        return AMITY_EINVAL;
    }
    if (!clients && !amity_endpoint_is_loopback(opts->bind)) {
        amity_log_error("bind: %s is not loopback; set --key and --clients-dir to serve "
                        "offices across machines",
                        opts->bind);
        return AMITY_EINVAL;
    }
    if (!peers && !amity_endpoint_is_loopback(opts->work)) {
        amity_log_error("work: %s is not loopback; set --key and --peers-dir to serve "
                        "validators across machines",
                        opts->work);
        return AMITY_EINVAL;
    }
    for (i = 0; n_shard_keys == 0 && i < opts->shards->n; i++) {
        if (!amity_endpoint_is_loopback(opts->shards->items[i])) {
            amity_log_warn("shards: %s is not loopback and --shard-keys is not set: verdicts "
                           "from it travel in clear (the shard refuses unless it runs "
                           "without keys)",
                           opts->shards->items[i]);
        }
    }
    return 0;
}

/* Reads the key files named by opts into self. */
static int
s_load_keys(ingest_t *self, const ingest_opts_t *opts)
{
    size_t i;

    if (!s_set(opts->key)) {
        return 0;
    }
    if (amity_keypair_load(opts->key, &self->own) != 0) {
        amity_log_error("key: cannot read the certificate %s", opts->key);
        return AMITY_EINVAL;
    }
    if (self->own.secret_txt[0] == '\0') {
        amity_log_error("key: %s holds no secret key; give the NAME_secret file that "
                        "amity-keygen wrote",
                        opts->key);
        return AMITY_EINVAL;
    }
    if (opts->shard_keys == NULL || opts->shard_keys->n == 0) {
        return 0;
    }
    self->shard_pub = calloc(opts->shard_keys->n, sizeof *self->shard_pub);
    if (self->shard_pub == NULL) {
        return AMITY_ENOMEM;
    }
    for (i = 0; i < opts->shard_keys->n; i++) {
        if (amity_keypair_load(opts->shard_keys->items[i], &self->shard_pub[i]) != 0) {
            amity_log_error("shard-keys: cannot read the certificate %s (item %zu)",
                            opts->shard_keys->items[i], i + 1);
            return AMITY_EINVAL;
        }
    }
    return 0;
}

int
ingest_new(ingest_t **out, const ingest_opts_t *opts)
{
    ingest_t *self;
    char ep[ENDPOINT_MAX];
    size_t i;
    int rc;

    AMITY_ASSERT(out != NULL && opts != NULL);
    *out = NULL;
    if (opts->bind == NULL || opts->bind[0] == '\0') {
        amity_log_error("bind: an endpoint is required");
        return AMITY_EINVAL;
    }
    if (opts->work == NULL || opts->work[0] == '\0') {
        amity_log_error("work: an endpoint is required");
        return AMITY_EINVAL;
    }
    if (opts->shards == NULL || opts->shards->n == 0) {
        amity_log_error("shards: at least one shard base endpoint is required");
        return AMITY_EINVAL;
    }
    for (i = 0; i < opts->shards->n; i++) {
        /* the shard binds B+0..B+3: all of them must exist */
        if (amity_endpoint_offset(opts->shards->items[i], 3, ep, sizeof ep) != 0) {
            amity_log_error("shards: '%s' is not a shard base endpoint (tcp://HOST:PORT with "
                            "PORT+3 <= 65535)",
                            opts->shards->items[i]);
            return AMITY_EINVAL;
        }
    }
    if (opts->max_msg < 1 || opts->max_msg > INGEST_MAX_MSG_MAX) {
        amity_log_error("max-msg: %" PRId64 " is outside 1..%" PRId64, opts->max_msg,
                        INGEST_MAX_MSG_MAX);
        return AMITY_EINVAL;
    }
    if (s_check_keys(opts) != 0) {
        return AMITY_EINVAL;
    }

    self = calloc(1, sizeof *self);
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->bind = opts->bind;
    self->work = opts->work;
    self->shards = opts->shards;
    self->max_msg = opts->max_msg;
    self->clients_dir = s_set(opts->clients_dir) ? opts->clients_dir : NULL;
    self->peers_dir = s_set(opts->peers_dir) ? opts->peers_dir : NULL;
    self->secure = self->clients_dir != NULL;
    s_random_id(self->id);
    amity_msg_init(&self->msg);
    ingest_out_init(&self->out);
    rc = s_load_keys(self, opts);
    if (rc != 0) {
        ingest_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void
ingest_destroy(ingest_t **self_p)
{
    ingest_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    amity_sock_close(&self->clients);
    amity_sock_close(&self->validators);
    amity_sock_close(&self->verdicts);
    amity_monitor_destroy(&self->mon_clients);
    amity_monitor_destroy(&self->mon_work);
    amity_monitor_destroy(&self->mon_verdicts);
    amity_auth_destroy(&self->auth);
    amity_msg_clear(&self->msg);
    ingest_out_clear(&self->out);
    free(self->shard_pub);
    /* the secret key does not outlive its use */
    memset(&self->own, 0, sizeof self->own);
    free(self);
    *self_p = NULL;
}

const char *
ingest_id(const ingest_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->id;
}

const ingest_stats_t *
ingest_stats(const ingest_t *self)
{
    AMITY_ASSERT(self != NULL);
    return &self->stats;
}

/* ------------------------------------------------------------------ */
/* handlers (no sockets)                                                */

/* Fills out with an `error` reply for conn. */
static int
s_error_reply(ingest_t *self, const void *conn, size_t conn_len, const char *why, ingest_out_t *out)
{
    amity_msg_t err;
    int rc;

    ingest_out_reset(out);
    amity_msg_init(&err);
    err.type = AMITY_MSG_ERROR;
    err.why = amity_view_str(why);
    rc = amity_buf_set(&out->conn, conn, conn_len);
    if (rc == 0) {
        rc = amity_msg_encode(&err, &out->reply);
    }
    if (rc != 0) {
        ingest_out_reset(out);
        return rc == AMITY_ENOMEM ? AMITY_ENOMEM : 0;
    }
    self->stats.errors_sent++;
    return 0;
}

bool
ingest_secure(const ingest_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->secure;
}

/* Secure mode: the office is the key's, whatever the message says. Fills
 * *office, or an error reply and returns 1. */
static int
s_office_of_key(ingest_t *self, const amity_peer_t *peer, const amity_msg_t *m, const void *conn,
                size_t conn_len, const char *conn_hex, amity_view_t *office, ingest_out_t *out,
                int *rc)
{
    char claimed[AMITY_OFFICE_MAX + 1];
    char reply[AMITY_WHY_MAX];
    size_t own = strlen(peer->name);

    if (m->office.len > 0 && (m->office.len != own || memcmp(m->office.ptr, peer->name, own))) {
        /* another office's name: an attempt worth the operator's eye */
        self->stats.office_mismatch++;
        (void)amity_text_sanitize(claimed, sizeof claimed, (const char *)m->office.ptr,
                                  m->office.len);
        amity_log_warn_rl(1,
                          "submit refused: cross-office attempt conn=%s key=%s office=%s "
                          "claimed=\"%s\" office_mismatch=%" PRIu64,
                          conn_hex, peer->public_txt, peer->name, claimed,
                          self->stats.office_mismatch);
        (void)snprintf(reply, sizeof reply,
                       "office: '%s' is not the office of this key ('%s'); leave office out",
                       claimed, peer->name);
        *rc = s_error_reply(self, conn, conn_len, reply, out);
        return 1;
    }
    *office = amity_view_str(peer->name);
    return 0;
}

int
ingest_handle_client(ingest_t *self, const void *const *frames, const size_t *lens, int n_frames,
                     ingest_out_t *out)
{
    return ingest_handle_client_as(self, NULL, frames, lens, n_frames, out);
}

int
ingest_handle_client_as(ingest_t *self, const amity_peer_t *peer, const void *const *frames,
                        const size_t *lens, int n_frames, ingest_out_t *out)
{
    char why[AMITY_WHY_MAX];
    char conn_hex[2 * 256 + 1];
    char reply[AMITY_WHY_MAX + 64];
    amity_msg_t work;
    amity_msg_t *m = &self->msg;
    amity_view_t office;
    int rc;

    AMITY_ASSERT(self != NULL && out != NULL);
    ingest_out_reset(out);
    if (n_frames < 1) {
        return 0;
    }
    s_hex(frames[0], lens[0], conn_hex, sizeof conn_hex);
    if (n_frames != 2) {
        self->stats.bad_frames++;
        amity_log_warn_rl(10,
                          "client message refused conn=%s frames=%d why=\"expected one "
                          "body frame after the routing id\"",
                          conn_hex, n_frames - 1);
        (void)snprintf(reply, sizeof reply, "message: expected 1 frame, got %d", n_frames - 1);
        return s_error_reply(self, frames[0], lens[0], reply, out);
    }
    if (self->secure && (peer == NULL || !peer->is_office)) {
        /* admitted by the ZAP handler once, but the key has since been
         * removed (SIGHUP), or it is not an office's: nothing of it passes */
        self->stats.unauthenticated++;
        amity_log_warn_rl(1, "client message refused conn=%s why=\"%s\" unauthenticated=%" PRIu64,
                          conn_hex,
                          peer == NULL ? "key not registered (revoked?)" : "not an office's key",
                          self->stats.unauthenticated);
        return s_error_reply(self, frames[0], lens[0],
                             "auth: this key is not registered as an office's", out);
    }

    amity_msg_clear(m);
    why[0] = '\0';
    rc = amity_msg_decode(frames[1], lens[1], m, why, sizeof why);
    if (rc == AMITY_ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        self->stats.bad_submits++;
        amity_log_warn_rl(10, "malformed client message conn=%s len=%zu why=\"%s\"", conn_hex,
                          lens[1], why);
        return s_error_reply(self, frames[0], lens[0], why[0] ? why : "message: malformed", out);
    }
    if (m->type != AMITY_MSG_SUBMIT) {
        self->stats.bad_submits++;
        amity_log_warn_rl(10, "unexpected client message conn=%s type=%s", conn_hex,
                          amity_msg_type_name(m->type));
        (void)snprintf(reply, sizeof reply, "t: ingest takes submit, not %s",
                       amity_msg_type_name(m->type));
        rc = s_error_reply(self, frames[0], lens[0], reply, out);
        amity_msg_clear(m);
        return rc;
    }
    if (self->secure) {
        /* never the routing id, which the client chooses */
        if (s_office_of_key(self, peer, m, frames[0], lens[0], conn_hex, &office, out, &rc)) {
            amity_msg_clear(m);
            return rc;
        }
    } else if (m->office.len == 0 ||
               !amity_office_valid((const char *)m->office.ptr, m->office.len)) {
        /* development mode: the office is what the client says it is */
        self->stats.bad_submits++;
        amity_log_warn_rl(10, "submit refused conn=%s why=\"%s\"", conn_hex, OFFICE_REQUIRED);
        rc = s_error_reply(self, frames[0], lens[0], OFFICE_REQUIRED, out);
        amity_msg_clear(m);
        return rc;
    } else {
        office = m->office;
    }

    amity_msg_init(&work);
    work.type = AMITY_MSG_WORK;
    work.ing = amity_view_str(self->id);
    work.conn.ptr = frames[0];
    work.conn.len = lens[0];
    work.office = office;
    work.n_items = m->n_items;
    work.items = m->items; /* borrowed: record bytes copied verbatim */
    rc = amity_msg_encode(&work, &out->work);
    if (rc != 0) {
        ingest_out_reset(out);
        amity_msg_clear(m);
        if (rc == AMITY_ENOMEM) {
            return rc;
        }
        self->stats.bad_submits++;
        amity_log_warn_rl(10, "submit refused conn=%s why=\"cannot re-encode: %s\"", conn_hex,
                          amity_strerror(rc));
        return s_error_reply(self, frames[0], lens[0], "message: cannot be forwarded", out);
    }
    self->stats.submits++;
    self->stats.records += m->n_items;
    amity_msg_clear(m);
    return 0;
}

int
ingest_handle_verdicts(ingest_t *self, const void *const *frames, const size_t *lens, int n_frames,
                       ingest_out_t *out)
{
    char why[AMITY_WHY_MAX];
    amity_msg_t *m = &self->msg;
    size_t n_verdicts;
    int rc;

    AMITY_ASSERT(self != NULL && out != NULL);
    ingest_out_reset(out);
    if (n_frames != 2) {
        self->stats.bad_verdicts++;
        amity_log_warn_rl(10, "shard message dropped frames=%d why=\"expected [topic][verdicts]\"",
                          n_frames);
        return 0;
    }
    if (lens[0] != strlen(self->id) || memcmp(frames[0], self->id, lens[0]) != 0) {
        /* SUB filters by prefix: an id that merely starts with ours is not ours */
        self->stats.bad_verdicts++;
        amity_log_warn_rl(10, "shard message dropped why=\"topic is not %s\"", self->id);
        return 0;
    }
    amity_msg_clear(m);
    why[0] = '\0';
    rc = amity_msg_decode(frames[1], lens[1], m, why, sizeof why);
    if (rc == AMITY_ENOMEM) {
        return rc;
    }
    if (rc != 0 || m->type != AMITY_MSG_VERDICTS || m->conn.len == 0) {
        self->stats.bad_verdicts++;
        amity_log_warn_rl(10, "shard message dropped len=%zu why=\"%s\"", lens[1],
                          rc != 0                         ? why
                          : m->type != AMITY_MSG_VERDICTS ? "not a verdicts message"
                                                          : "conn: missing");
        amity_msg_clear(m);
        return 0;
    }
    rc = amity_buf_set(&out->conn, m->conn.ptr, m->conn.len);
    if (rc != 0) {
        amity_msg_clear(m);
        return rc;
    }
    /* the client gets {v,t,items}: its routing id and our id are ours */
    m->conn.ptr = NULL;
    m->conn.len = 0;
    m->ing.ptr = NULL;
    m->ing.len = 0;
    n_verdicts = m->n_verdicts;
    rc = amity_msg_encode(m, &out->reply);
    amity_msg_clear(m);
    if (rc != 0) {
        ingest_out_reset(out);
        if (rc == AMITY_ENOMEM) {
            return rc;
        }
        self->stats.bad_verdicts++;
        amity_log_warn_rl(10, "shard message dropped why=\"cannot re-encode: %s\"",
                          amity_strerror(rc));
        return 0;
    }
    self->stats.verdict_msgs++;
    self->stats.verdicts += n_verdicts;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the loop                                                             */

static void
s_log_stats(ingest_t *self, const char *when)
{
    const ingest_stats_t *s = &self->stats;
    uint64_t admitted = 0;
    uint64_t refused = 0;

    if (self->auth != NULL) {
        amity_auth_stats(self->auth, &admitted, &refused);
    }
    amity_log_info("stats%s submits=%" PRIu64 " records=%" PRIu64 " dropped_no_validator=%" PRIu64
                   " bad_frames=%" PRIu64 " bad_submits=%" PRIu64 " errors_sent=%" PRIu64
                   " verdict_msgs=%" PRIu64 " verdicts=%" PRIu64 " bad_verdicts=%" PRIu64
                   " dropped_replies=%" PRIu64 " unauthenticated=%" PRIu64
                   " office_mismatch=%" PRIu64 " handshake_failures=%" PRIu64
                   " zap_admitted=%" PRIu64 " zap_refused=%" PRIu64 " shard_disconnects=%" PRIu64,
                   when, s->submits, s->records, s->dropped_no_validator, s->bad_frames,
                   s->bad_submits, s->errors_sent, s->verdict_msgs, s->verdicts, s->bad_verdicts,
                   s->dropped_replies, s->unauthenticated, s->office_mismatch,
                   s->handshake_failures, admitted, refused, s->shard_disconnects);
    self->logged = self->stats;
    self->logged_refused = refused;
}

static void
s_on_signal(ingest_t *self, int fd)
{
    int sig;

    while ((sig = amity_signals_read(fd)) > 0) {
        if (sig == SIGHUP) {
            if (self->auth == NULL) {
                amity_log_info("SIGHUP received; no certificate directories to reload");
            } else if (amity_auth_reload(self->auth) == 0) {
                /* a removed key's live connections stay open, but from now
                 * on every message on them is refused (unauthenticated) */
                amity_log_info("SIGHUP: certificates reloaded offices=%zu services=%zu",
                               amity_auth_count(self->auth, AMITY_ZAP_CLIENTS),
                               amity_auth_count(self->auth, AMITY_ZAP_SERVICES));
            }
            continue;
        }
        if (!self->stopping) {
            amity_log_info("stopping signal=%d", sig);
            self->stopping = true;
            amity_signals_arm_second();
        }
    }
}

/* Sends the handler's outputs. Returns 0 or -1 (errno) on a fatal error. */
static int
s_send_out(ingest_t *self, const ingest_out_t *out)
{
    if (out->work.len > 0) {
        if (zmq_send(self->validators, out->work.data, out->work.len, ZMQ_DONTWAIT) < 0) {
            if (errno != EAGAIN) {
                return -1;
            }
            self->stats.dropped_no_validator++;
            amity_log_warn_rl(10,
                              "work dropped why=\"no validator can take it\" "
                              "dropped_no_validator=%" PRIu64,
                              self->stats.dropped_no_validator);
        }
    }
    if (out->conn.len > 0 && out->reply.len > 0) {
        /* ROUTER_MANDATORY is off: a gone client's reply vanishes quietly */
        if (zmq_send(self->clients, out->conn.data, out->conn.len, ZMQ_SNDMORE | ZMQ_DONTWAIT) <
                0 ||
            zmq_send(self->clients, out->reply.data, out->reply.len, ZMQ_DONTWAIT) < 0) {
            if (errno != EAGAIN && errno != EHOSTUNREACH) {
                return -1;
            }
            self->stats.dropped_replies++;
        }
    }
    return 0;
}

/* The office behind a client message: its User-Id (the Z85 public key the
 * ZAP handler admitted) looked up now, so a key removed since is refused. */
static const amity_peer_t *
s_peer_of(const ingest_t *self, const char *user_id)
{
    if (self->auth == NULL) {
        return NULL;
    }
    return amity_auth_peer(self->auth, AMITY_ZAP_CLIENTS, user_id);
}

/* Drains up to BATCH_MAX messages from the clients ROUTER (clients) or the
 * verdict SUB. A message of too many frames still reaches the handler
 * (with its frame count) so the client hears why. Returns 0, -1 on a fatal
 * send error (errno), AMITY_ENOMEM, AMITY_EIO or AMITY_ETERM. */
static int
s_drain(ingest_t *self, bool clients)
{
    void *sock = clients ? self->clients : self->verdicts;
    amity_frame_t parts[PARTS_MAX];
    const void *frames[PARTS_MAX];
    size_t lens[PARTS_MAX];
    char user_id[AMITY_KEY_TXT + 8];
    int n_parts;
    int n;
    int i;
    int got;
    int rc = 0;

    for (got = 0; got < BATCH_MAX; got++) {
        n = amity_sock_recv_head(sock, parts, clients ? PARTS_MAX : PARTS_MAX - 1, &n_parts,
                                 user_id, sizeof user_id);
        if (n == 0) {
            break;
        }
        if (n == AMITY_ENOMEM) {
            amity_log_warn_rl(10, "%s message dropped why=\"out of memory\"",
                              clients ? "client" : "verdicts");
            continue;
        }
        if (n < 0) {
            return n;
        }
        for (i = 0; i < n; i++) {
            frames[i] = parts[i].data;
            lens[i] = parts[i].len;
        }
        if (clients) {
            rc = ingest_handle_client_as(self, s_peer_of(self, user_id), frames, lens, n_parts,
                                         &self->out);
        } else {
            rc = ingest_handle_verdicts(self, frames, lens, n_parts, &self->out);
        }
        amity_frames_free(parts, n);
        if (rc != 0) {
            return rc;
        }
        if (s_send_out(self, &self->out) != 0) {
            return -1;
        }
    }
    return 0;
}

/* The ZAP handler with the certificate directories, before any CURVE
 * socket exists: a handshake never meets a missing handler (and if it
 * did, ZMQ_ZAP_ENFORCE_DOMAIN would refuse it). */
static int
s_open_auth(ingest_t *self, void *ctx)
{
    if (!self->secure) {
        return 0;
    }
    if (amity_auth_new(&self->auth, ctx) != 0) {
        return AMITY_EIO;
    }
    if (amity_auth_load(self->auth, AMITY_ZAP_CLIENTS, self->clients_dir) != 0) {
        amity_log_error("clients-dir: cannot load the offices' certificates from %s",
                        self->clients_dir);
        return AMITY_EINVAL;
    }
    if (self->peers_dir != NULL &&
        amity_auth_load(self->auth, AMITY_ZAP_SERVICES, self->peers_dir) != 0) {
        amity_log_error("peers-dir: cannot load the services' certificates from %s",
                        self->peers_dir);
        return AMITY_EINVAL;
    }
    return 0;
}

static int
s_open_sockets(ingest_t *self, void *ctx)
{
    amity_sock_opts_t opts;
    char ep[ENDPOINT_MAX];
    int handover = 1;
    size_t i;
    int rc;

    rc = s_open_auth(self, ctx);
    if (rc != 0) {
        return rc;
    }
    memset(&opts, 0, sizeof opts);
    opts.linger_ms = -1;
    opts.max_msg = self->max_msg;
    self->clients = amity_sock_new(ctx, ZMQ_ROUTER, &opts);
    if (self->clients == NULL) {
        return AMITY_EIO;
    }
    /* development: a client that reconnects with the same identity takes
     * its route over. Secure: never, or a registered office could take
     * another's route (and its verdicts) by copying its routing id; a
     * duplicate id is refused instead. */
    handover = self->secure ? 0 : 1;
    if (zmq_setsockopt(self->clients, ZMQ_ROUTER_HANDOVER, &handover, sizeof handover) != 0) {
        amity_log_errno("zmq_setsockopt ZMQ_ROUTER_HANDOVER");
        return AMITY_EIO;
    }
    if (self->secure) {
        if (amity_curve_server(self->clients, &self->own, AMITY_ZAP_CLIENTS) != 0) {
            return AMITY_EIO;
        }
        self->mon_clients = amity_monitor_new(ctx, self->clients, "clients");
        if (self->mon_clients == NULL) {
            return AMITY_EIO;
        }
    }
    if (amity_sock_bind(self->clients, self->bind) != 0) {
        return AMITY_EIO;
    }

    memset(&opts, 0, sizeof opts);
    opts.linger_ms = -1;
    opts.sndhwm = WORK_SNDHWM;
    self->validators = amity_sock_new(ctx, ZMQ_PUSH, &opts);
    if (self->validators == NULL) {
        return AMITY_EIO;
    }
    if (self->peers_dir != NULL) {
        if (amity_curve_server(self->validators, &self->own, AMITY_ZAP_SERVICES) != 0) {
            return AMITY_EIO;
        }
        self->mon_work = amity_monitor_new(ctx, self->validators, "work");
        if (self->mon_work == NULL) {
            return AMITY_EIO;
        }
    }
    if (amity_sock_bind(self->validators, self->work) != 0) {
        return AMITY_EIO;
    }

    memset(&opts, 0, sizeof opts);
    opts.linger_ms = -1;
    opts.max_msg = SUB_MAX_MSG;
    self->verdicts = amity_sock_new(ctx, ZMQ_SUB, &opts);
    if (self->verdicts == NULL) {
        return AMITY_EIO;
    }
    if (zmq_setsockopt(self->verdicts, ZMQ_SUBSCRIBE, self->id, strlen(self->id)) != 0) {
        amity_log_errno("zmq_setsockopt ZMQ_SUBSCRIBE");
        return AMITY_EIO;
    }
    /* before connecting, so the first connections are seen */
    self->mon_verdicts = amity_monitor_new(ctx, self->verdicts, "verdicts");
    if (self->mon_verdicts == NULL) {
        return AMITY_EIO;
    }
    for (i = 0; i < self->shards->n; i++) {
        /* CURVE options are taken per connect: each shard has its own key */
        if (self->shard_pub != NULL &&
            amity_curve_client(self->verdicts, &self->own, self->shard_pub[i].public_txt) != 0) {
            return AMITY_EIO;
        }
        if (amity_endpoint_offset(self->shards->items[i], 1, ep, sizeof ep) != 0 ||
            amity_sock_connect(self->verdicts, ep) != 0) {
            return AMITY_EIO;
        }
    }
    return 0;
}

static void
s_log_ready(const ingest_t *self)
{
    char list[1024];
    char ep[ENDPOINT_MAX];
    size_t o = 0;
    size_t i;

    list[0] = '\0';
    for (i = 0; i < self->shards->n && o < sizeof list; i++) {
        int n;
        (void)amity_endpoint_offset(self->shards->items[i], 1, ep, sizeof ep);
        n = snprintf(list + o, sizeof list - o, "%s%s", i ? "," : "", ep);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    if (self->secure) {
        amity_log_info("ready id=%s bind=%s work=%s verdicts=%s mode=secure key=%s offices=%zu "
                       "work_curve=%s services=%zu verdicts_curve=%s",
                       self->id, self->bind, self->work, list, self->own.public_txt,
                       amity_auth_count(self->auth, AMITY_ZAP_CLIENTS),
                       self->peers_dir != NULL ? "on" : "off",
                       amity_auth_count(self->auth, AMITY_ZAP_SERVICES),
                       self->shard_pub != NULL ? "on" : "off");
    } else {
        amity_log_info("ready id=%s bind=%s work=%s verdicts=%s mode=development", self->id,
                       self->bind, self->work, list);
    }
}

static void
s_close_sockets(ingest_t *self)
{
    amity_sock_close(&self->clients);
    amity_sock_close(&self->validators);
    amity_sock_close(&self->verdicts);
    amity_monitor_destroy(&self->mon_clients);
    amity_monitor_destroy(&self->mon_work);
    amity_monitor_destroy(&self->mon_verdicts);
    amity_auth_destroy(&self->auth);
}

/* Counts what the monitors saw (each event is logged there): failed
 * handshakes, and links to the shards that dropped. */
static void
s_process_monitors(ingest_t *self, const zmq_pollitem_t *items, int mon_clients, int mon_work,
                   int mon_verdicts)
{
    amity_monitor_stats_t ms;
    int n;

    if (mon_clients >= 0 && (items[mon_clients].revents & ZMQ_POLLIN)) {
        n = amity_monitor_process(self->mon_clients);
        self->stats.handshake_failures += (uint64_t)n;
    }
    if (mon_work >= 0 && (items[mon_work].revents & ZMQ_POLLIN)) {
        n = amity_monitor_process(self->mon_work);
        self->stats.handshake_failures += (uint64_t)n;
    }
    if (mon_verdicts >= 0 && (items[mon_verdicts].revents & ZMQ_POLLIN)) {
        n = amity_monitor_process(self->mon_verdicts);
        self->stats.handshake_failures += (uint64_t)n;
        amity_monitor_stats(self->mon_verdicts, &ms);
        self->stats.shard_disconnects = ms.disconnects;
    }
}

/* True when counters changed since the last stats line. */
static bool
s_stats_changed(const ingest_t *self)
{
    uint64_t refused = 0;

    if (self->auth != NULL) {
        amity_auth_stats(self->auth, NULL, &refused);
    }
    return memcmp(&self->stats, &self->logged, sizeof self->stats) != 0 ||
           refused != self->logged_refused;
}

int
ingest_run(ingest_t *self, void *ctx, int signal_fd)
{
    zmq_pollitem_t items[POLL_MAX];
    int n_items = 0;
    int it_signal = -1;
    int it_zap = -1;
    int it_clients;
    int it_verdicts;
    int it_mon_clients = -1;
    int it_mon_work = -1;
    int it_mon_verdicts = -1;
    int rc = 0;

    AMITY_ASSERT(self != NULL && ctx != NULL);
    rc = s_open_sockets(self, ctx);
    if (rc != 0) {
        s_close_sockets(self);
        return rc;
    }
    s_log_ready(self);
    (void)amity_daemon_ready(self->secure ? "taking offices' records (secure mode)"
                                          : "taking offices' records (development mode)");

    /* a negative fd is not polled; leave the slot out rather than rely on that */
    memset(items, 0, sizeof items);
    if (signal_fd >= 0) {
        it_signal = n_items++;
        items[it_signal].fd = signal_fd;
        items[it_signal].events = ZMQ_POLLIN;
    }
    if (self->auth != NULL) {
        it_zap = n_items++;
        items[it_zap].socket = amity_auth_socket(self->auth);
        items[it_zap].events = ZMQ_POLLIN;
    }
    if (self->mon_clients != NULL) {
        it_mon_clients = n_items++;
        items[it_mon_clients].socket = amity_monitor_socket(self->mon_clients);
        items[it_mon_clients].events = ZMQ_POLLIN;
    }
    if (self->mon_work != NULL) {
        it_mon_work = n_items++;
        items[it_mon_work].socket = amity_monitor_socket(self->mon_work);
        items[it_mon_work].events = ZMQ_POLLIN;
    }
    if (self->mon_verdicts != NULL) {
        it_mon_verdicts = n_items++;
        items[it_mon_verdicts].socket = amity_monitor_socket(self->mon_verdicts);
        items[it_mon_verdicts].events = ZMQ_POLLIN;
    }
    it_clients = n_items++;
    items[it_clients].socket = self->clients;
    items[it_clients].events = ZMQ_POLLIN;
    it_verdicts = n_items++;
    items[it_verdicts].socket = self->verdicts;
    items[it_verdicts].events = ZMQ_POLLIN;
    self->next_stats_ms = amity_clock_mono_ms() + STATS_EVERY_MS;

    while (!self->stopping) {
        int64_t now = amity_clock_mono_ms();
        int64_t next = amity_daemon_watchdog(now); /* pings when due */
        long timeout;

        if (next > self->next_stats_ms) {
            next = self->next_stats_ms;
        }
        timeout = (long)(next > now ? next - now : 0);
        if (zmq_poll(items, n_items, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != ETERM) {
                amity_log_errno("zmq_poll");
                rc = AMITY_EIO;
            }
            break;
        }
        if (it_signal >= 0 && (items[it_signal].revents & ZMQ_POLLIN)) {
            s_on_signal(self, signal_fd);
        }
        /* handshakes waiting on the handler hold connections back */
        if (it_zap >= 0 && (items[it_zap].revents & ZMQ_POLLIN)) {
            (void)amity_auth_process(self->auth);
        }
        s_process_monitors(self, items, it_mon_clients, it_mon_work, it_mon_verdicts);
        /* verdicts first: they complete work already done */
        if (items[it_verdicts].revents & ZMQ_POLLIN) {
            rc = s_drain(self, false);
            if (rc != 0) {
                break;
            }
        }
        if (!self->stopping && (items[it_clients].revents & ZMQ_POLLIN)) {
            rc = s_drain(self, true);
            if (rc != 0) {
                break;
            }
        }
        now = amity_clock_mono_ms();
        if (now >= self->next_stats_ms) {
            if (s_stats_changed(self)) {
                s_log_stats(self, "");
            }
            self->next_stats_ms = now + STATS_EVERY_MS;
        }
    }
    if (rc == -1) {
        if (errno == ETERM) {
            rc = 0;
        } else {
            amity_log_errno("socket failure");
            rc = AMITY_EIO;
        }
    } else if (rc == AMITY_ETERM) {
        rc = 0; /* the context was shut down: a stop, not a failure */
    } else if (rc == AMITY_ENOMEM) {
        amity_log_error("out of memory");
    }
    (void)amity_daemon_stopping();
    s_log_stats(self, " final");
    s_close_sockets(self);
    return rc;
}
