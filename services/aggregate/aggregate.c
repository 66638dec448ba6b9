/*  aggregate: the shard daemon's loop. Pulls `apply` messages, batches
 *  their items (up to `batch` records or `batch-ms` since the first), has
 *  apply.c commit them in one LMDB transaction, and only then publishes
 *  the verdicts (PUB, topic = ingest id) and the changed totals (PUB);
 *  answers snapshot requests (ROUTER) from one read transaction.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include <zmq.h>

#include "amity/auth.h"
#include "amity/clock.h"
#include "amity/config.h"
#include "amity/daemon.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/map.h"
#include "amity/proto.h"
#include "amity/signals.h"
#include "amity/sock.h"

#include "aggregate.h"
#include "apply.h"

#define S_EP_MAX          288    /* bytes of one endpoint */
#define S_HEARTBEAT_MS    1000   /* totals heartbeat when no commit published */
#define S_STATS_MS        10000  /* counters logged this often (when changed) */
#define S_PUB_HWM         100000 /* verdicts and totals: a burst of commits must not drop */
#define S_SNAP_HWM        100000 /* snapshot chunks of a large shard must not drop */
#define S_SNAP_MAX_MSG    65536  /* a snapreq is tiny */
#define S_SNAPREQ_PER_RUN 16     /* snapshot requests served per loop iteration */

enum { S_POLL_SIG = 0, S_POLL_SNAP, S_POLL_PULL, S_POLL_N };
#define S_POLL_MAX (S_POLL_N + 5) /* with keys: the ZAP handler and four monitors */

/*  One received apply message, kept until its batch is published. */
typedef struct {
    amity_frame_t frame;               /* the message bytes (owned) */
    amity_msg_t msg;                   /* decoded: views into frame */
    char office[AMITY_OFFICE_MAX + 1]; /* msg.office as a C string */
} s_pending_t;

/*  Counters, logged every 10 s when changed and at exit. */
typedef struct {
    uint64_t applied;        /* items applied (committed) */
    uint64_t accepted;       /* verdicts accepted */
    uint64_t duplicate;      /* verdicts duplicate */
    uint64_t rejected;       /* verdicts rejected (conflicts included) */
    uint64_t conflicts;      /* same rev, other content */
    uint64_t batches;        /* commits */
    uint64_t keys_written;   /* finest totals keys written to LMDB */
    uint64_t keys_published; /* published totals sent (changed keys of commits) */
    uint64_t commit_us;      /* time spent in commits */
    uint64_t commit_us_max;  /* longest commit */
    uint64_t failed_batches; /* commits that failed (items dropped, clients resend) */
    uint64_t bad_input; /* PULL messages dropped: malformed, multi-frame, wrong type, bad office */
    uint64_t snapreqs;  /* snapshot requests served */
    uint64_t snap_errors;        /* snapshot requests refused or cut short */
    uint64_t snap_superseded;    /* snapreqs skipped: the same peer asked again since */
    uint64_t send_errors;        /* publications that could not be sent */
    uint64_t unauthenticated;    /* apply messages from a key removed since (SIGHUP) */
    uint64_t handshake_failures; /* CURVE handshakes that failed (monitors) */
} s_stats_t;

struct aggregate {
    void *ctx;                       /* ZeroMQ context (borrowed) */
    int sfd;                         /* signalfd (borrowed) */
    uint64_t index;                  /* shard index */
    size_t batch_max;                /* records per commit */
    int64_t batch_ms;                /* wait since the first pending record */
    char ep[4][S_EP_MAX];            /* apply, verdicts, totals, snapshot endpoints */
    void *pull;                      /* apply PULL (bound at +0) */
    void *pub_verdicts;              /* verdicts PUB (+1) */
    void *pub_totals;                /* totals PUB (+2) */
    void *snap;                      /* snapshot ROUTER (+3) */
    zmq_pollitem_t poll[S_POLL_MAX]; /* signal fd, snapshot, apply, then ZAP and monitors */
    int n_poll;                      /* entries used in poll */
    amity_auth_t *auth;              /* the ZAP handler (NULL without keys) */
    amity_monitor_t *monitors[4];    /* handshake monitors of the four sockets (with keys) */
    int poll_zap;                    /* index of the ZAP socket in poll, -1 when none */
    uint64_t logged_refused;         /* ZAP refusals at the last stats line */
    aggregate_db_t *db;              /* the shard's state */

    s_pending_t *pending;    /* received messages of the batch (capacity batch_max) */
    size_t n_pending;        /* messages in pending */
    aggregate_item_t *items; /* their items, flattened in arrival order */
    size_t n_items;          /* items pending */
    size_t items_cap;        /* entries allocated in items */
    int64_t first_ms;        /* arrival of the first pending item (monotonic) */

    /* publication memory, reused */
    amity_buf_t out;       /* one encoded message */
    amity_buf_t gkey;      /* group key: BE32(ing len) ing conn */
    amity_map_t *groups;   /* group key -> size_t group number */
    size_t *group_of;      /* per item: its group */
    size_t *order;         /* items sorted by group (stable) */
    size_t *start;         /* per group: first index in order (n_groups + 1) */
    size_t grp_cap;        /* entries allocated in group_of, order, start */
    amity_verdict_t *vbuf; /* verdicts of one message */
    size_t vbuf_cap;       /* entries allocated in vbuf */

    bool stopping;          /* a stop signal arrived */
    bool failed;            /* the store is unusable: exit 1 */
    int64_t last_totals_ms; /* last totals message (commit or heartbeat) */
    int64_t next_stats_ms;  /* next counters line */
    s_stats_t stats;        /* counters */
    s_stats_t logged;       /* counters as last logged */
};

/*  The checks of cfg that need no file: key and peers-dir together, the
 *  ranges, the four endpoints (into ep) and, without keys, loopback only.
 *  Logs what is wrong. Returns 0 or AMITY_EINVAL. */
static int
s_check_options(const aggregate_config_t *cfg, char ep[4][S_EP_MAX])
{
    const char *bind = cfg->bind ? cfg->bind : "";
    bool key = cfg->key && cfg->key[0];
    bool peers = cfg->peers_dir && cfg->peers_dir[0];
    if (key != peers) {
        amity_log_error("%s: set --key and --peers-dir together (the shard's secret "
                        "certificate and the directory of the services' public ones)",
                        key ? "key" : "peers-dir");
        return AMITY_EINVAL;
    }
    if (cfg->index < 0 || cfg->batch < 1 || cfg->batch_ms < 0 || cfg->map_size < 0) {
        amity_log_error("index, batch, batch-ms, map-size: out of range");
        return AMITY_EINVAL;
    }
    for (int k = 0; k < 4; k++) {
        if (amity_endpoint_offset(bind, k, ep[k], S_EP_MAX) < 0) {
            amity_log_error("bind: '%s' is not a shard base endpoint (tcp://HOST:PORT, "
                            "PORT+3 <= 65535; IPv6 as [ADDR])",
                            bind);
            return AMITY_EINVAL;
        }
        if (!key && !amity_endpoint_is_loopback(ep[k])) {
            amity_log_error("bind: %s is not loopback; set --key and --peers-dir to serve "
                            "ingest, validate and notify across machines",
                            bind);
            return AMITY_EINVAL;
        }
    }
    return 0;
}

/*  The LMDB directory: --state, or ./amity-state/shard-INDEX. */
static int
s_state_dir(const aggregate_config_t *cfg, char *out, size_t out_len)
{
    int n;
    if (cfg->state && cfg->state[0]) {
        n = snprintf(out, out_len, "%s", cfg->state);
    } else {
        n = snprintf(out, out_len, "./amity-state/shard-%lld", (long long)cfg->index);
    }
    if (n < 0 || (size_t)n >= out_len) {
        amity_log_error("state: path too long");
        return AMITY_EINVAL;
    }
    return 0;
}

/*  The state directory is a writable directory, or its nearest existing
 *  ancestor is one (aggregate_db_open creates the rest). Creates nothing. */
static int
s_check_state(const char *state)
{
    char path[4096];
    struct stat st;
    (void)snprintf(path, sizeof path, "%s", state);
    for (;;) {
        if (stat(path, &st) == 0) {
            if (!S_ISDIR(st.st_mode)) {
                amity_log_error("state: %s cannot be created: %s is not a directory", state, path);
                return AMITY_EINVAL;
            }
            if (access(path, W_OK | X_OK) != 0) {
                amity_log_errno("state: %s cannot be %s: %s", state,
                                strcmp(path, state) == 0 ? "written" : "created", path);
                return AMITY_EINVAL;
            }
            return 0;
        }
        if (errno != ENOENT) {
            amity_log_errno("state: %s cannot be created: %s", state, path);
            return AMITY_EINVAL;
        }
        char *slash = strrchr(path, '/');
        if (!slash) {
            (void)snprintf(path, sizeof path, ".");
        } else if (slash == path) {
            path[1] = '\0';
        } else {
            *slash = '\0';
        }
    }
}

int
aggregate_config_check(const aggregate_config_t *cfg)
{
    AMITY_ASSERT(cfg);
    char ep[4][S_EP_MAX];
    char state[4096];
    int rc = s_check_options(cfg, ep);
    if (rc == 0) {
        rc = s_state_dir(cfg, state, sizeof state);
    }
    if (rc == 0) {
        rc = s_check_state(state);
    }
    if (rc == 0 && cfg->key && cfg->key[0]) {
        amity_keypair_t own;
        if (amity_keypair_load(cfg->key, &own) < 0 || !own.secret_txt[0]) {
            amity_log_error("key: %s is not a secret certificate (the NAME_secret file "
                            "amity-keygen wrote)",
                            cfg->key);
            rc = AMITY_EINVAL;
        }
        memset(&own, 0, sizeof own);
    }
    if (rc == 0 && cfg->peers_dir && cfg->peers_dir[0]) {
        rc = amity_auth_check_dir(cfg->peers_dir, NULL);
        if (rc != 0) {
            amity_log_error("peers-dir: cannot load the services' certificates from %s",
                            cfg->peers_dir);
        }
    }
    return rc == 0 ? 0 : AMITY_EINVAL;
}

static const char *const s_sock_names[4] = { "apply", "verdicts", "totals", "snapshot" };

/*  Socket k (0 apply .. 3 snapshot) bound at its endpoint; with keys a
 *  CURVE server for the services' domain, watched by a monitor. */
static void *
s_socket(aggregate_t *self, int k, int type, int sndhwm, int64_t max_msg,
         const amity_keypair_t *own)
{
    amity_sock_opts_t opts = { .max_msg = max_msg, .sndhwm = sndhwm, .linger_ms = -1 };
    void *sock = amity_sock_new(self->ctx, type, &opts);
    if (!sock) {
        return NULL;
    }
    if (own) {
        if (amity_curve_server(sock, own, AMITY_ZAP_SERVICES) < 0) {
            amity_sock_close(&sock);
            return NULL;
        }
        self->monitors[k] = amity_monitor_new(self->ctx, sock, s_sock_names[k]);
        if (!self->monitors[k]) {
            amity_sock_close(&sock);
            return NULL;
        }
    }
    if (amity_sock_bind(sock, self->ep[k]) < 0) {
        amity_sock_close(&sock);
        return NULL;
    }
    return sock;
}

/*  --key and --peers-dir: read the key, start the ZAP handler with the
 *  services' certificates (before any CURVE socket exists). */
static int
s_open_keys(aggregate_t *self, const aggregate_config_t *cfg, amity_keypair_t *own)
{
    if (amity_keypair_load(cfg->key, own) < 0 || !own->secret_txt[0]) {
        amity_log_error("key: %s is not a secret certificate (the NAME_secret file "
                        "amity-keygen wrote)",
                        cfg->key);
        return AMITY_EINVAL;
    }
    if (amity_auth_new(&self->auth, self->ctx) < 0) {
        return AMITY_EIO;
    }
    if (amity_auth_load(self->auth, AMITY_ZAP_SERVICES, cfg->peers_dir) < 0) {
        amity_log_error("peers-dir: cannot load the services' certificates from %s",
                        cfg->peers_dir);
        return AMITY_EINVAL;
    }
    return 0;
}

int
aggregate_new(aggregate_t **out, void *ctx, int sfd, const aggregate_config_t *cfg)
{
    AMITY_ASSERT(out && ctx && cfg);
    *out = NULL;
    int rc = AMITY_EINVAL;
    aggregate_t *self = calloc(1, sizeof *self);
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->ctx = ctx;
    self->sfd = sfd;
    self->poll_zap = -1;
    amity_buf_init(&self->out);
    amity_buf_init(&self->gkey);
    amity_keypair_t own;
    memset(&own, 0, sizeof own);
    bool key = cfg->key && cfg->key[0];
    char state[4096];
    if (s_check_options(cfg, self->ep) != 0 || s_state_dir(cfg, state, sizeof state) != 0) {
        goto fail;
    }
    self->index = (uint64_t)cfg->index;
    self->batch_max = (size_t)cfg->batch;
    self->batch_ms = cfg->batch_ms;

    rc = AMITY_ENOMEM;
    self->pending = calloc(self->batch_max, sizeof *self->pending);
    if (!self->pending || amity_map_new(&self->groups, sizeof(size_t)) < 0) {
        goto fail;
    }
    /* before any socket: a port that accepts means the totals are rolled
     * up (seconds for millions of finest keys; see apply.h) */
    rc = aggregate_db_open(&self->db, state, (size_t)cfg->map_size, cfg->no_sync);
    if (rc < 0) {
        goto fail;
    }

    if (key) {
        rc = s_open_keys(self, cfg, &own);
        if (rc < 0) {
            goto fail;
        }
    }
    rc = AMITY_EIO;
    const amity_keypair_t *curve = key ? &own : NULL;
    self->pull = s_socket(self, 0, ZMQ_PULL, 0, 0, curve);
    self->pub_verdicts = s_socket(self, 1, ZMQ_PUB, S_PUB_HWM, 0, curve);
    self->pub_totals = s_socket(self, 2, ZMQ_PUB, S_PUB_HWM, 0, curve);
    self->snap = s_socket(self, 3, ZMQ_ROUTER, S_SNAP_HWM, S_SNAP_MAX_MSG, curve);
    if (!self->pull || !self->pub_verdicts || !self->pub_totals || !self->snap) {
        goto fail;
    }
    self->poll[S_POLL_SIG] = (zmq_pollitem_t){ NULL, sfd, ZMQ_POLLIN, 0 };
    self->poll[S_POLL_SNAP] = (zmq_pollitem_t){ self->snap, 0, ZMQ_POLLIN, 0 };
    self->poll[S_POLL_PULL] = (zmq_pollitem_t){ self->pull, 0, ZMQ_POLLIN, 0 };
    self->n_poll = S_POLL_N;
    if (self->auth) {
        self->poll_zap = self->n_poll++;
        self->poll[self->poll_zap] =
            (zmq_pollitem_t){ amity_auth_socket(self->auth), 0, ZMQ_POLLIN, 0 };
        for (int k = 0; k < 4; k++) {
            self->poll[self->n_poll++] =
                (zmq_pollitem_t){ amity_monitor_socket(self->monitors[k]), 0, ZMQ_POLLIN, 0 };
        }
    }

    amity_log_info("ready shard=%llu apply=%s verdicts=%s totals=%s snapshot=%s state=%s seq=%llu "
                   "keys=%zu batch=%zu batch-ms=%lld mode=%s%s%s services=%zu%s",
                   (unsigned long long)self->index, self->ep[0], self->ep[1], self->ep[2],
                   self->ep[3], state, (unsigned long long)aggregate_db_seq(self->db),
                   aggregate_db_n_totals(self->db), self->batch_max, (long long)self->batch_ms,
                   key ? "curve" : "development", key ? " key=" : "", key ? own.public_txt : "",
                   self->auth ? amity_auth_count(self->auth, AMITY_ZAP_SERVICES) : (size_t)0,
                   cfg->no_sync ? " no-sync (commits are NOT durable)" : "");
    memset(&own, 0, sizeof own);
    *out = self;
    return 0;
fail:
    memset(&own, 0, sizeof own);
    aggregate_destroy(&self);
    return rc;
}

/*  Frees the pending messages. */
static void
s_release(aggregate_t *self)
{
    for (size_t i = 0; i < self->n_pending; i++) {
        amity_msg_clear(&self->pending[i].msg);
        amity_frames_free(&self->pending[i].frame, 1);
    }
    self->n_pending = 0;
    self->n_items = 0;
}

void
aggregate_destroy(aggregate_t **self_p)
{
    AMITY_ASSERT(self_p);
    aggregate_t *self = *self_p;
    if (!self) {
        return;
    }
    if (self->pending) {
        s_release(self);
    }
    amity_sock_close(&self->pull);
    amity_sock_close(&self->pub_verdicts);
    amity_sock_close(&self->pub_totals);
    amity_sock_close(&self->snap);
    for (int k = 0; k < 4; k++) {
        amity_monitor_destroy(&self->monitors[k]);
    }
    amity_auth_destroy(&self->auth);
    aggregate_db_destroy(&self->db);
    amity_map_destroy(&self->groups);
    free(self->pending);
    free(self->items);
    free(self->group_of);
    free(self->order);
    free(self->start);
    free(self->vbuf);
    amity_buf_clear(&self->out);
    amity_buf_clear(&self->gkey);
    free(self);
    *self_p = NULL;
}

static void
s_log_stats(aggregate_t *self, const char *when)
{
    const s_stats_t *s = &self->stats;
    uint64_t admitted = 0, refused = 0;
    if (self->auth) {
        amity_auth_stats(self->auth, &admitted, &refused);
    }
    double per_batch = s->batches ? (double)s->applied / (double)s->batches : 0.0;
    double ms_avg = s->batches ? (double)s->commit_us / 1000.0 / (double)s->batches : 0.0;
    amity_log_info("stats%s seq=%llu applied=%llu accepted=%llu duplicate=%llu rejected=%llu "
                   "conflicts=%llu batches=%llu records/batch=%.1f keys_written=%llu "
                   "keys_published=%llu commit_ms_avg=%.2f commit_ms_max=%.2f "
                   "failed_batches=%llu bad_input=%llu snapreqs=%llu snap_errors=%llu "
                   "snap_superseded=%llu send_errors=%llu unauthenticated=%llu "
                   "handshake_failures=%llu zap_admitted=%llu zap_refused=%llu",
                   when, (unsigned long long)aggregate_db_seq(self->db),
                   (unsigned long long)s->applied, (unsigned long long)s->accepted,
                   (unsigned long long)s->duplicate, (unsigned long long)s->rejected,
                   (unsigned long long)s->conflicts, (unsigned long long)s->batches, per_batch,
                   (unsigned long long)s->keys_written, (unsigned long long)s->keys_published,
                   ms_avg, (double)s->commit_us_max / 1000.0, (unsigned long long)s->failed_batches,
                   (unsigned long long)s->bad_input, (unsigned long long)s->snapreqs,
                   (unsigned long long)s->snap_errors, (unsigned long long)s->snap_superseded,
                   (unsigned long long)s->send_errors, (unsigned long long)s->unauthenticated,
                   (unsigned long long)s->handshake_failures, (unsigned long long)admitted,
                   (unsigned long long)refused);
    self->logged = self->stats;
    self->logged_refused = refused;
}

/*  Takes one received apply message into the batch, or drops it. */
static void
s_take(aggregate_t *self, amity_frame_t *frame)
{
    s_pending_t *p = &self->pending[self->n_pending];
    char why[AMITY_WHY_MAX];
    amity_msg_init(&p->msg);
    if (amity_msg_decode(frame->data, frame->len, &p->msg, why, sizeof why) < 0) {
        self->stats.bad_input++;
        amity_log_warn_rl(10, "apply: malformed message dropped bytes=%zu: %s", frame->len, why);
        goto drop;
    }
    if (p->msg.type != AMITY_MSG_APPLY) {
        self->stats.bad_input++;
        amity_log_warn_rl(10, "apply: unexpected '%s' message on the apply socket dropped",
                          amity_msg_type_name(p->msg.type));
        goto drop;
    }
    if (!amity_office_valid((const char *)p->msg.office.ptr, p->msg.office.len) ||
        !amity_view_copy(p->msg.office, p->office, sizeof p->office)) {
        self->stats.bad_input++;
        amity_log_warn_rl(10, "apply: message with an invalid office dropped items=%zu",
                          p->msg.n_items);
        goto drop;
    }
    if (p->msg.ing.len == 0) {
        self->stats.bad_input++;
        amity_log_warn_rl(10, "apply: message without an ingest id dropped office=%s", p->office);
        goto drop;
    }
    if (p->msg.n_items == 0) {
        goto drop;
    }
    if (self->n_items + p->msg.n_items > self->items_cap) {
        size_t cap = self->items_cap ? self->items_cap : 1024;
        while (cap < self->n_items + p->msg.n_items) {
            cap *= 2;
        }
        aggregate_item_t *items = realloc(self->items, cap * sizeof *items);
        if (!items) {
            amity_log_error("apply: out of memory, message dropped items=%zu", p->msg.n_items);
            goto drop;
        }
        self->items = items;
        self->items_cap = cap;
    }
    if (self->n_items == 0) {
        self->first_ms = amity_clock_mono_ms();
    }
    for (size_t i = 0; i < p->msg.n_items; i++) {
        const amity_item_t *in = &p->msg.items[i];
        self->items[self->n_items++] = (aggregate_item_t){
            .office = p->office,
            .ing = p->msg.ing,
            .conn = p->msg.conn,
            .tag = in->tag,
            .ok = in->ok,
            .rec = in->rec,
            .why = in->why,
        };
    }
    p->frame = *frame;
    frame->data = NULL;
    self->n_pending++;
    return;
drop:
    amity_msg_clear(&p->msg);
    amity_frames_free(frame, 1);
}

/*  Drains the apply socket until the batch is full or nothing waits. */
static int
s_drain(aggregate_t *self)
{
    while (self->n_items < self->batch_max && self->n_pending < self->batch_max) {
        amity_frame_t frame = { NULL, 0 };
        char user_id[AMITY_KEY_TXT + 8];
        int n = amity_sock_recv_frames(self->pull, &frame, 1, user_id, sizeof user_id);
        if (n == 0) {
            break;
        }
        if (n > 0 && self->auth && !amity_auth_peer(self->auth, AMITY_ZAP_SERVICES, user_id)) {
            /* admitted once, but its key was removed since (SIGHUP) */
            self->stats.unauthenticated++;
            amity_log_warn_rl(1, "apply: message from a key no longer registered dropped key=%s",
                              user_id);
            amity_frames_free(&frame, 1);
            continue;
        }
        if (n == AMITY_ETOOBIG) {
            self->stats.bad_input++;
            amity_log_warn_rl(10, "apply: multi-frame message dropped (one frame expected)");
            continue;
        }
        if (n == AMITY_ENOMEM) {
            self->stats.bad_input++;
            amity_log_warn_rl(10, "apply: out of memory, message dropped");
            continue;
        }
        if (n < 0) {
            return n;
        }
        s_take(self, &frame);
    }
    return 0;
}

static int
s_send(aggregate_t *self, void *sock, const amity_frame_t *frames, int n, const char *what)
{
    int rc = amity_sock_send_frames(sock, frames, n, ZMQ_DONTWAIT);
    if (rc < 0) {
        self->stats.send_errors++;
        amity_log_warn_rl(10, "%s: not sent: %s", what, amity_strerror(rc));
    }
    return rc;
}

static int
s_reserve_groups(aggregate_t *self, size_t n)
{
    if (n + 1 <= self->grp_cap) {
        return 0;
    }
    size_t cap = self->grp_cap ? self->grp_cap : 1024;
    while (cap < n + 1) {
        cap *= 2;
    }
    size_t *g = realloc(self->group_of, cap * sizeof *g);
    if (!g) {
        return AMITY_ENOMEM;
    }
    self->group_of = g;
    size_t *o = realloc(self->order, cap * sizeof *o);
    if (!o) {
        return AMITY_ENOMEM;
    }
    self->order = o;
    size_t *s = realloc(self->start, cap * sizeof *s);
    if (!s) {
        return AMITY_ENOMEM;
    }
    self->start = s;
    self->grp_cap = cap;
    return 0;
}

/*  One verdicts message per (ing, conn): [ing][{conn, items}], in chunks
 *  of at most AMITY_ITEMS_MAX verdicts. items and verdicts are parallel. */
static void
s_publish_verdicts(aggregate_t *self, const aggregate_item_t *items,
                   const aggregate_verdict_t *verdicts, size_t n)
{
    if (n == 0) {
        return;
    }
    if (s_reserve_groups(self, n) < 0) {
        self->stats.send_errors++;
        amity_log_error("verdicts: out of memory, %zu verdicts not sent (clients resend)", n);
        return;
    }
    /* group number of each item, in order of first appearance */
    amity_map_reset(self->groups);
    size_t n_groups = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t len_be[4] = { (uint8_t)(items[i].ing.len >> 24), (uint8_t)(items[i].ing.len >> 16),
                              (uint8_t)(items[i].ing.len >> 8), (uint8_t)items[i].ing.len };
        amity_buf_reset(&self->gkey);
        if (amity_buf_append(&self->gkey, len_be, sizeof len_be) < 0 ||
            amity_buf_append(&self->gkey, items[i].ing.ptr, items[i].ing.len) < 0 ||
            amity_buf_append(&self->gkey, items[i].conn.ptr, items[i].conn.len) < 0) {
            goto nomem;
        }
        int inserted = 0;
        size_t *g = amity_map_upsert(self->groups, self->gkey.data, self->gkey.len, &inserted);
        if (!g) {
            goto nomem;
        }
        if (inserted) {
            *g = n_groups++;
        }
        self->group_of[i] = *g;
    }
    /* stable counting sort of the items by group */
    memset(self->start, 0, (n_groups + 1) * sizeof *self->start);
    for (size_t i = 0; i < n; i++) {
        self->start[self->group_of[i] + 1]++;
    }
    for (size_t g = 0; g < n_groups; g++) {
        self->start[g + 1] += self->start[g];
    }
    for (size_t i = 0; i < n; i++) {
        /* start[g] walks forward while filling; restored below */
        self->order[self->start[self->group_of[i]]++] = i;
    }
    for (size_t g = n_groups; g > 0; g--) {
        self->start[g] = self->start[g - 1];
    }
    self->start[0] = 0;

    if (self->vbuf_cap < AMITY_ITEMS_MAX) {
        amity_verdict_t *v = realloc(self->vbuf, AMITY_ITEMS_MAX * sizeof *v);
        if (!v) {
            goto nomem;
        }
        self->vbuf = v;
        self->vbuf_cap = AMITY_ITEMS_MAX;
    }
    for (size_t g = 0; g < n_groups; g++) {
        size_t first = self->start[g];
        size_t end = self->start[g + 1];
        const aggregate_item_t *head = &items[self->order[first]];
        while (first < end) {
            size_t k = 0;
            for (; first < end && k < AMITY_ITEMS_MAX; first++, k++) {
                size_t i = self->order[first];
                self->vbuf[k] = (amity_verdict_t){
                    .tag = items[i].tag,
                    .status = verdicts[i].status,
                    .why = verdicts[i].why,
                };
            }
            amity_msg_t m;
            amity_msg_init(&m);
            m.type = AMITY_MSG_VERDICTS;
            m.ing = head->ing;
            m.conn = head->conn;
            m.n_verdicts = k;
            m.verdicts = self->vbuf;
            amity_buf_reset(&self->out);
            if (amity_msg_encode(&m, &self->out) < 0) {
                self->stats.send_errors++;
                amity_log_error("verdicts: cannot encode %zu verdicts", k);
                continue;
            }
            amity_frame_t frames[2] = {
                { (void *)(uintptr_t)head->ing.ptr, head->ing.len },
                { self->out.data, self->out.len },
            };
            (void)s_send(self, self->pub_verdicts, frames, 2, "verdicts");
        }
    }
    return;
nomem:
    self->stats.send_errors++;
    amity_log_error("verdicts: out of memory, %zu verdicts not sent (clients resend)", n);
}

/*  A totals message: the changed keys of a commit, or (n_kv 0) the heartbeat. */
static void
s_publish_totals(aggregate_t *self, uint64_t seq, const amity_kv_t *kv, size_t n_kv)
{
    amity_msg_t m;
    amity_msg_init(&m);
    m.type = AMITY_MSG_TOTALS;
    m.shard = self->index;
    m.seq = seq;
    m.n_kv = n_kv;
    m.kv = (amity_kv_t *)(uintptr_t)kv;
    amity_buf_reset(&self->out);
    if (amity_msg_encode(&m, &self->out) < 0) {
        self->stats.send_errors++;
        amity_log_error("totals: cannot encode seq=%llu keys=%zu", (unsigned long long)seq, n_kv);
        return;
    }
    amity_frame_t frame = { self->out.data, self->out.len };
    (void)s_send(self, self->pub_totals, &frame, 1, "totals");
    self->last_totals_ms = amity_clock_mono_ms();
}

/*  Commits the pending items (in as many transactions as the totals
 *  message bound requires), then publishes. A failed commit sends no
 *  verdict: the clients resend. */
static void
s_commit(aggregate_t *self)
{
    size_t off = 0;
    while (off < self->n_items) {
        const aggregate_result_t *r = NULL;
        struct timespec ts0, ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts0);
        int rc = aggregate_apply_batch(self->db, self->items + off, self->n_items - off, &r);
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        if (rc < 0) {
            self->stats.failed_batches++;
            amity_log_error("commit failed, %zu records not counted (clients resend): %s",
                            self->n_items - off, amity_strerror(rc));
            if (rc == AMITY_EIO || rc == AMITY_EFULL) {
                self->failed = true;
            }
            break;
        }
        int64_t us = (int64_t)(ts1.tv_sec - ts0.tv_sec) * 1000000 +
                     (int64_t)(ts1.tv_nsec - ts0.tv_nsec) / 1000;
        uint64_t commit_us = us < 0 ? 0 : (uint64_t)us;
        self->stats.batches++;
        self->stats.commit_us += commit_us;
        if (commit_us > self->stats.commit_us_max) {
            self->stats.commit_us_max = commit_us;
        }
        self->stats.applied += r->n_done;
        self->stats.accepted += r->n_accepted;
        self->stats.duplicate += r->n_duplicate;
        self->stats.rejected += r->n_rejected;
        self->stats.conflicts += r->n_conflicts;
        self->stats.keys_written += r->n_finest;
        self->stats.keys_published += r->n_kv;

        s_publish_verdicts(self, self->items + off, r->verdicts, r->n_done);
        if (r->n_kv > 0) {
            s_publish_totals(self, r->seq, r->kv, r->n_kv);
        }
        amity_log_debug("commit seq=%llu records=%zu keys=%zu us=%llu", (unsigned long long)r->seq,
                        r->n_done, r->n_kv, (unsigned long long)commit_us);
        off += r->n_done;
    }
    s_release(self);
}

/*  Snapshot reply: the routing envelope of the request and its id. */
typedef struct {
    aggregate_t *self;
    const amity_frame_t *env; /* routing id [, empty delimiter] */
    int n_env;
    uint64_t req;
} s_snapctx_t;

static int
s_send_reply(aggregate_t *self, const amity_frame_t *env, int n_env, const amity_msg_t *m)
{
    amity_buf_reset(&self->out);
    int rc = amity_msg_encode(m, &self->out);
    if (rc < 0) {
        amity_log_error("snapshot: cannot encode a '%s' reply", amity_msg_type_name(m->type));
        return rc;
    }
    amity_frame_t frames[3];
    for (int i = 0; i < n_env; i++) {
        frames[i] = env[i];
    }
    frames[n_env] = (amity_frame_t){ self->out.data, self->out.len };
    return s_send(self, self->snap, frames, n_env + 1, "snapshot");
}

static int
s_snap_chunk(uint64_t seq, const amity_kv_t *kv, size_t n_kv, bool more, void *arg)
{
    s_snapctx_t *c = arg;
    amity_msg_t m;
    amity_msg_init(&m);
    m.type = AMITY_MSG_SNAP;
    m.req = c->req;
    m.shard = c->self->index;
    m.seq = seq;
    m.more = more;
    m.n_kv = n_kv;
    m.kv = (amity_kv_t *)(uintptr_t)kv;
    return s_send_reply(c->self, c->env, c->n_env, &m);
}

static void
s_reply_error(aggregate_t *self, const amity_frame_t *env, int n_env, uint64_t req, const char *why)
{
    amity_msg_t m;
    amity_msg_init(&m);
    m.type = AMITY_MSG_ERROR;
    m.req = req;
    m.why = amity_view_str(why);
    (void)s_send_reply(self, env, n_env, &m);
}

/*  A rejreq: one page of the kept rejections (office "\0" prefix when
 *  given, after the key `after`) from one read transaction, as `rejects`
 *  {req, shard, more, next, items}; notify asks for the next page. */
static void
s_serve_rejects(aggregate_t *self, const amity_frame_t *env, int n_env, const amity_msg_t *q)
{
    const aggregate_rejects_page_t *page = NULL;
    const char *office = (const char *)q->office.ptr;
    size_t office_len = q->office.ptr ? q->office.len : 0;
    int rc = aggregate_db_rejects(self->db, office_len ? office : "", office_len, q->after.ptr,
                                  q->after.ptr ? q->after.len : 0, (size_t)q->limit, &page);
    if (rc < 0) {
        self->stats.snap_errors++;
        amity_log_warn_rl(10, "rejects: req=%llu refused: %s", (unsigned long long)q->req,
                          amity_strerror(rc));
        s_reply_error(self, env, n_env, q->req,
                      rc == AMITY_EINVAL ? "office: not a valid office id"
                                         : "rejects: reading the kept rejections failed; retry");
        if (rc == AMITY_EIO) {
            self->failed = true; /* a read transaction failing: the store is unusable */
        }
        return;
    }
    amity_msg_t m;
    amity_msg_init(&m);
    m.type = AMITY_MSG_REJECTS;
    m.req = q->req;
    m.shard = self->index;
    m.has_shard = true;
    m.more = page->more;
    m.next = page->next;
    m.n_rejects = page->n_items;
    m.rejects = page->items;
    if (s_send_reply(self, env, n_env, &m) == 0) {
        amity_log_debug("rejects served req=%llu office=%.*s items=%zu more=%d",
                        (unsigned long long)q->req, (int)office_len, office_len ? office : "",
                        page->n_items, (int)page->more);
    }
}

/*  Serves one received request f[0 .. n) (n > 0); the caller frees f. */
static void
s_serve_one(aggregate_t *self, amity_frame_t *f, int n)
{
    /* [id][body] from a DEALER, [id][""][body] from a REQ-style peer */
    int n_env = n - 1;
    const amity_frame_t *body = &f[n - 1];
    char why[AMITY_WHY_MAX];
    amity_msg_t m;
    amity_msg_init(&m);
    if (n < 2 || (n == 3 && f[1].len != 0)) {
        self->stats.snap_errors++;
        amity_log_warn_rl(10, "snapshot: unexpected %d-frame message dropped", n);
        goto out;
    }
    if (amity_msg_decode(body->data, body->len, &m, why, sizeof why) < 0) {
        self->stats.snap_errors++;
        amity_log_warn_rl(10, "snapshot: malformed request: %s", why);
        s_reply_error(self, f, n_env, 0, why);
        goto out;
    }
    if (m.type == AMITY_MSG_REJREQ) {
        s_serve_rejects(self, f, n_env, &m);
        goto out;
    }
    if (m.type != AMITY_MSG_SNAPREQ) {
        self->stats.snap_errors++;
        (void)snprintf(why, sizeof why, "t: '%s' is not served here (snapreq expected)",
                       amity_msg_type_name(m.type));
        amity_log_warn_rl(10, "snapshot: %s", why);
        s_reply_error(self, f, n_env, m.req, why);
        goto out;
    }
    s_snapctx_t c = { .self = self, .env = f, .n_env = n_env, .req = m.req };
    int rc = aggregate_db_snapshot(self->db, m.prefix.ptr, m.prefix.len, AGGREGATE_SNAP_CHUNK,
                                   s_snap_chunk, &c);
    if (rc < 0) {
        self->stats.snap_errors++;
        amity_log_warn_rl(10, "snapshot: req=%llu cut short: %s", (unsigned long long)m.req,
                          amity_strerror(rc));
        if (rc != AMITY_EAGAIN && rc != AMITY_ETERM && rc != AMITY_EIO) {
            s_reply_error(self, f, n_env, m.req, "snapshot failed; retry");
        }
        if (rc == AMITY_EIO) {
            /* a read transaction failing means the store is unusable */
            self->failed = true;
        }
        goto out;
    }
    self->stats.snapreqs++;
    amity_log_debug("snapshot served req=%llu prefix=%.*s", (unsigned long long)m.req,
                    (int)m.prefix.len, (const char *)m.prefix.ptr);
out:
    amity_msg_clear(&m);
}

/*  True when f[0 .. n) is a well-formed snapreq. */
static bool
s_is_snapreq(const amity_frame_t *f, int n)
{
    if (n < 2 || (n == 3 && f[1].len != 0)) {
        return false;
    }
    char why[64];
    amity_msg_t m;
    amity_msg_init(&m);
    bool yes = amity_msg_decode(f[n - 1].data, f[n - 1].len, &m, why, sizeof why) == 0 &&
               m.type == AMITY_MSG_SNAPREQ;
    amity_msg_clear(&m);
    return yes;
}

/*  Serves the requests waiting on the snapshot socket, up to
 *  S_SNAPREQ_PER_RUN. A snapreq followed in the same run by another
 *  snapreq of the same peer is skipped: a peer asks again only when it
 *  gave up on the earlier one (notify does after 3 s without a chunk, and
 *  then ignores its replies), and a full snapshot is seconds of work for
 *  a store of millions of keys, which a backlog of stale requests would
 *  repeat. Returns 0 or negative on a socket failure. */
static int
s_serve_snapshots(aggregate_t *self)
{
    amity_frame_t f[S_SNAPREQ_PER_RUN][3];
    int n[S_SNAPREQ_PER_RUN];
    bool snapreq[S_SNAPREQ_PER_RUN];
    int n_req = 0, rc = 0;
    memset(f, 0, sizeof f);
    for (int tries = 0; tries < S_SNAPREQ_PER_RUN; tries++) {
        int k = amity_sock_recv_frames(self->snap, f[n_req], 3, NULL, 0);
        if (k == 0) {
            break;
        }
        if (k == AMITY_ETOOBIG || k == AMITY_ENOMEM) {
            self->stats.snap_errors++;
            amity_log_warn_rl(10, "snapshot: message dropped: %s", amity_strerror(k));
            continue;
        }
        if (k < 0) {
            rc = k;
            break;
        }
        n[n_req] = k;
        snapreq[n_req] = s_is_snapreq(f[n_req], k);
        n_req++;
    }
    for (int i = 0; i < n_req; i++) {
        bool superseded = false;
        for (int j = i + 1; snapreq[i] && j < n_req && !superseded; j++) {
            superseded = snapreq[j] && f[j][0].len == f[i][0].len &&
                         memcmp(f[j][0].data, f[i][0].data, f[i][0].len) == 0;
        }
        if (superseded) {
            self->stats.snap_superseded++;
            amity_log_debug("snapshot: a request superseded by a later one of the same peer "
                            "skipped");
        } else {
            s_serve_one(self, f[i], n[i]);
        }
        amity_frames_free(f[i], n[i]);
    }
    return rc;
}

static void
s_on_signal(aggregate_t *self)
{
    for (;;) {
        int sig = amity_signals_read(self->sfd);
        if (sig <= 0) {
            return;
        }
        if (sig == SIGHUP) {
            if (!self->auth) {
                amity_log_info("SIGHUP received (no certificate directory to reload)");
            } else if (amity_auth_reload(self->auth) == 0) {
                amity_log_info("SIGHUP: certificates reloaded services=%zu",
                               amity_auth_count(self->auth, AMITY_ZAP_SERVICES));
            }
            continue;
        }
        if (self->stopping) {
            amity_log_warn("second signal %d, exiting now", sig);
            _exit(AMITY_EXIT_RUNTIME);
        }
        amity_log_info("signal %d: stopping (committing %zu pending records)", sig, self->n_items);
        self->stopping = true;
        /* from now on a second INT/TERM ends the process at once, even
         * while the last commit or zmq_ctx_term runs */
        amity_signals_arm_second();
    }
}

/*  Answers waiting handshakes and counts the failed ones (each is logged
 *  by the monitor). */
static void
s_process_auth(aggregate_t *self)
{
    if (self->poll[self->poll_zap].revents & ZMQ_POLLIN) {
        (void)amity_auth_process(self->auth);
    }
    for (int k = 0; k < 4; k++) {
        if (self->poll[self->poll_zap + 1 + k].revents & ZMQ_POLLIN) {
            self->stats.handshake_failures += (uint64_t)amity_monitor_process(self->monitors[k]);
        }
    }
}

static long
s_timeout(const aggregate_t *self, int64_t now, int64_t ping_due)
{
    int64_t t = self->next_stats_ms - now;
    if (ping_due - now < t) {
        t = ping_due - now;
    }
    int64_t hb = self->last_totals_ms + S_HEARTBEAT_MS - now;
    if (hb < t) {
        t = hb;
    }
    if (self->n_items > 0) {
        int64_t b = self->first_ms + self->batch_ms - now;
        if (b < t) {
            t = b;
        }
    }
    return t < 0 ? 0 : (long)t;
}

int
aggregate_run(aggregate_t *self)
{
    AMITY_ASSERT(self);
    int rc = 0;
    int64_t now = amity_clock_mono_ms();
    self->next_stats_ms = now + S_STATS_MS;
    /* announce the current seq at once: notify learns it without waiting */
    s_publish_totals(self, aggregate_db_seq(self->db), NULL, 0);
    (void)amity_daemon_ready("counting records");
    while (!self->stopping && !self->failed) {
        now = amity_clock_mono_ms();
        int64_t ping_due = amity_daemon_watchdog(now); /* pings when due */
        if (zmq_poll(self->poll, self->n_poll, s_timeout(self, now, ping_due)) < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == ETERM) {
                break;
            }
            amity_log_errno("zmq_poll failed");
            rc = AMITY_EIO;
            break;
        }
        if (self->poll[S_POLL_SIG].revents & ZMQ_POLLIN) {
            s_on_signal(self);
        }
        if (self->auth) {
            s_process_auth(self);
        }
        if (!self->stopping && (self->poll[S_POLL_SNAP].revents & ZMQ_POLLIN)) {
            int n = s_serve_snapshots(self);
            if (n < 0) {
                amity_log_error("snapshot socket failed: %s", amity_strerror(n));
                rc = AMITY_EIO;
                self->failed = true;
            }
        }
        if (!self->stopping && (self->poll[S_POLL_PULL].revents & ZMQ_POLLIN)) {
            int drc = s_drain(self);
            if (drc < 0 && drc != AMITY_ETERM) {
                amity_log_error("apply socket failed: %s", amity_strerror(drc));
                rc = AMITY_EIO;
                self->failed = true;
            }
        }
        now = amity_clock_mono_ms();
        if (self->n_items > 0 &&
            (self->stopping || self->n_items >= self->batch_max ||
             self->n_pending >= self->batch_max || now - self->first_ms >= self->batch_ms)) {
            s_commit(self);
            now = amity_clock_mono_ms();
        }
        if (now - self->last_totals_ms >= S_HEARTBEAT_MS && !self->stopping) {
            s_publish_totals(self, aggregate_db_seq(self->db), NULL, 0);
        }
        if (now >= self->next_stats_ms) {
            uint64_t refused = 0;
            if (self->auth) {
                amity_auth_stats(self->auth, NULL, &refused);
            }
            if (memcmp(&self->stats, &self->logged, sizeof self->stats) != 0 ||
                refused != self->logged_refused) {
                s_log_stats(self, "");
            }
            self->next_stats_ms = now + S_STATS_MS;
        }
    }
    if (self->n_items > 0 && !self->failed) {
        s_commit(self);
    }
    s_release(self);
    if (self->failed) {
        rc = AMITY_EIO;
    }
    (void)amity_daemon_stopping();
    s_log_stats(self, " final");
    return rc;
}
