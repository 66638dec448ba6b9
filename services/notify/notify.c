/*  notify: merges the aggregate shards' partial totals and serves them to
 *  subscribers and queries (the ZeroMQ guide's Clone pattern). This file is
 *  the socket side: one zmq_poll loop over the signal fd, the client
 *  ROUTER and each shard's SUB and DEALER; the logic is in core.c.
 */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/auth.h"
#include "amity/clock.h"
#include "amity/daemon.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/signals.h"
#include "amity/sock.h"
#include "core.h"

#define S_BATCH_MAX      256   /**< messages drained per socket per wake */
#define S_STATS_EVERY_MS 10000 /**< counters logged this often when changed */
#define S_ENDPOINT_MAX   512   /**< bytes of a derived endpoint */
#define S_ROUTER_HWM     10000 /**< per-subscriber queue before drops */
#define S_FRAMES_MAX     3     /**< receive one more than any valid message */
/* ZMQ_MAXMSGSIZE from shards: a totals message may carry many keys */
#define S_SHARD_MSG_MAX ((int64_t)64 * 1024 * 1024)

enum { S_ITEM_SIGNAL = 0, S_ITEM_ROUTER, S_ITEM_SHARDS };

struct notify {
    void *ctx;                  /**< borrowed ZeroMQ context */
    int sfd;                    /**< borrowed signal fd */
    char *bind;                 /**< client endpoint */
    size_t n_shards;            /**< S */
    int64_t max_subscribers;    /**< for the ready line */
    char **totals_ep;           /**< [S] shard B+2 */
    char **snap_ep;             /**< [S] shard B+3 */
    void *router;               /**< clients */
    void **subs;                /**< [S] SUB to totals */
    void **dealers;             /**< [S] DEALER to snapshots */
    zmq_pollitem_t *items;      /**< signal, router, sub/dealer per shard, then ZAP and monitor */
    int n_items;                /**< 2 + 2S (+ 2 with keys) */
    bool secure;                /**< subscribers are their keys */
    amity_keypair_t own;        /**< our certificate (public_txt "": no keys) */
    amity_keypair_t *shard_pub; /**< [S] shards' public keys, or NULL */
    amity_auth_t *auth;         /**< the ZAP handler (NULL without keys) */
    amity_monitor_t *monitor;   /**< handshake failures on the router (NULL without keys) */
    int item_zap;               /**< index of the ZAP socket in items, -1 when none */
    int item_monitor;           /**< index of the monitor in items, -1 when none */
    uint64_t logged_refused;    /**< ZAP refusals at the last line */
    notify_core_t *core;        /**< the logic */
    bool stopping;              /**< INT/TERM seen */
    int64_t next_stats_ms;      /**< next counters line */
    notify_stats_t logged;      /**< counters at the last line */
    uint64_t logged_resyncs;    /**< shard resyncs at the last line */
};

int
notify_config_check(const notify_config_t *cfg, char *why, size_t why_len)
{
    char ep[S_ENDPOINT_MAX];
    size_t i;

    bool key, clients;

    AMITY_ASSERT(cfg && why && why_len > 0);
    why[0] = '\0';
    key = cfg->key && cfg->key[0];
    clients = cfg->clients_dir && cfg->clients_dir[0];
    if (key != clients) {
        (void)snprintf(why, why_len,
                       "%s: set --key and --clients-dir together (notify's secret certificate "
                       "and the directory of the subscribers' public ones)",
                       key ? "key" : "clients-dir");
        return AMITY_EINVAL;
    }
    if (cfg->shard_keys.n > 0 && !key) {
        (void)snprintf(why, why_len,
                       "shard-keys: needs --key (notify's own certificate, registered in each "
                       "shard's --peers-dir)");
        return AMITY_EINVAL;
    }
    if (cfg->shard_keys.n > 0 && cfg->shard_keys.n != cfg->shards.n) {
        (void)snprintf(why, why_len,
                       "shard-keys: %zu certificate(s) for %zu shard(s); give one per shard, in "
                       "the order of --shards",
                       cfg->shard_keys.n, cfg->shards.n);
        return AMITY_EINVAL;
    }
    if (!cfg->bind || (!clients && !amity_endpoint_is_loopback(cfg->bind))) {
        (void)snprintf(why, why_len,
                       "bind: %s is not loopback; set --key and --clients-dir to serve "
                       "subscribers across machines",
                       cfg->bind ? cfg->bind : "(none)");
        return AMITY_EINVAL;
    }
    if (cfg->shards.n == 0) {
        (void)snprintf(why, why_len, "shards: the list is empty (default %s)",
                       NOTIFY_DEFAULT_SHARDS);
        return AMITY_EINVAL;
    }
    for (i = 0; i < cfg->shards.n; i++) {
        if (amity_endpoint_offset(cfg->shards.items[i], NOTIFY_SHARD_SNAPSHOT, ep, sizeof(ep)) !=
            0) {
            (void)snprintf(why, why_len,
                           "shards: '%s' (item %zu) is not a base endpoint "
                           "tcp://HOST:PORT with PORT+3 <= 65535",
                           cfg->shards.items[i], i + 1);
            return AMITY_EINVAL;
        }
    }
    if (cfg->max_subscribers < 1) {
        (void)snprintf(why, why_len, "max-subscribers: must be at least 1");
        return AMITY_EINVAL;
    }
    for (i = 0; cfg->shard_keys.n == 0 && i < cfg->shards.n; i++) {
        if (!amity_endpoint_is_loopback(cfg->shards.items[i])) {
            amity_log_warn("shards: %s is not loopback and --shard-keys is not set: totals "
                           "travel in clear (a shard with keys refuses us)",
                           cfg->shards.items[i]);
        }
    }
    return 0;
}

/*  A random, nonzero instance id: subscribers notice a restart by it. */
static uint64_t
s_random_epoch(void)
{
    uint64_t e = 0;
    int fd;

    if (getrandom(&e, sizeof(e), 0) != (ssize_t)sizeof(e)) {
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, &e, sizeof(e)) != (ssize_t)sizeof(e)) {
                e = 0;
            }
            (void)close(fd);
        }
    }
    if (e == 0) {
        /* no entropy source: time and pid still differ between starts */
        e = ((uint64_t)amity_clock_wall_ms() << 16) ^ (uint64_t)getpid() ^ 1;
    }
    return e;
}

/*  Reads the key files and, in secure mode, starts the ZAP handler with
 *  the subscribers' certificates: before any CURVE socket exists. */
static int
s_open_keys(notify_t *self, const notify_config_t *cfg)
{
    size_t i;

    if (!cfg->key || !cfg->key[0]) {
        return 0;
    }
    if (amity_keypair_load(cfg->key, &self->own) != 0 || !self->own.secret_txt[0]) {
        amity_log_error("key: %s is not a secret certificate (the NAME_secret file "
                        "amity-keygen wrote)",
                        cfg->key);
        return AMITY_EINVAL;
    }
    if (cfg->shard_keys.n > 0) {
        self->shard_pub = calloc(cfg->shard_keys.n, sizeof(*self->shard_pub));
        if (!self->shard_pub) {
            return AMITY_ENOMEM;
        }
        for (i = 0; i < cfg->shard_keys.n; i++) {
            if (amity_keypair_load(cfg->shard_keys.items[i], &self->shard_pub[i]) != 0) {
                amity_log_error("shard-keys: cannot read the certificate %s (item %zu)",
                                cfg->shard_keys.items[i], i + 1);
                return AMITY_EINVAL;
            }
        }
    }
    self->secure = true;
    if (amity_auth_new(&self->auth, self->ctx) != 0) {
        return AMITY_EIO;
    }
    if (amity_auth_load(self->auth, AMITY_ZAP_CLIENTS, cfg->clients_dir) != 0) {
        amity_log_error("clients-dir: cannot load the subscribers' certificates from %s",
                        cfg->clients_dir);
        return AMITY_EINVAL;
    }
    return 0;
}

static char *
s_derive(const char *base, int k)
{
    char ep[S_ENDPOINT_MAX];

    if (amity_endpoint_offset(base, k, ep, sizeof(ep)) != 0) {
        return NULL;
    }
    return strdup(ep);
}

int
notify_new(notify_t **out, const notify_config_t *cfg, void *ctx, int sfd)
{
    amity_sock_opts_t ropts = { 0 }, sopts = { 0 }, dopts = { 0 };
    notify_t *self;
    int rc = AMITY_ENOMEM, off = 0;
    size_t i;

    AMITY_ASSERT(out && cfg && ctx && cfg->shards.n >= 1 && cfg->max_subscribers >= 1);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->ctx = ctx;
    self->sfd = sfd;
    self->n_shards = cfg->shards.n;
    self->max_subscribers = cfg->max_subscribers;
    self->bind = strdup(cfg->bind);
    self->totals_ep = calloc(self->n_shards, sizeof(char *));
    self->snap_ep = calloc(self->n_shards, sizeof(char *));
    self->subs = calloc(self->n_shards, sizeof(void *));
    self->dealers = calloc(self->n_shards, sizeof(void *));
    self->n_items = (int)(S_ITEM_SHARDS + 2 * self->n_shards);
    self->item_zap = -1;
    self->item_monitor = -1;
    self->items = calloc((size_t)self->n_items + 2, sizeof(zmq_pollitem_t));
    if (!self->bind || !self->totals_ep || !self->snap_ep || !self->subs || !self->dealers ||
        !self->items) {
        goto fail;
    }
    rc = notify_core_new(&self->core, self->n_shards, (size_t)cfg->max_subscribers,
                         s_random_epoch());
    if (rc != 0) {
        goto fail;
    }
    rc = s_open_keys(self, cfg);
    if (rc != 0) {
        goto fail;
    }
    notify_core_set_secure(self->core, self->secure);
    for (i = 0; i < self->n_shards; i++) {
        notify_core_set_shard_name(self->core, i, cfg->shards.items[i]);
    }

    ropts.sndhwm = S_ROUTER_HWM;
    ropts.linger_ms = -1;
    rc = AMITY_EIO;
    self->router = amity_sock_new(ctx, ZMQ_ROUTER, &ropts);
    if (!self->router) {
        goto fail;
    }
    /* a full or vanished subscriber pipe drops silently: the subscriber
     * sees prev jump and resyncs; notify never waits for anyone */
    if (zmq_setsockopt(self->router, ZMQ_ROUTER_MANDATORY, &off, sizeof(off)) != 0) {
        amity_log_error("bind: ZMQ_ROUTER_MANDATORY: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (self->secure) {
        if (amity_curve_server(self->router, &self->own, AMITY_ZAP_CLIENTS) != 0) {
            goto fail;
        }
        self->monitor = amity_monitor_new(ctx, self->router, "subscribers");
        if (!self->monitor) {
            goto fail;
        }
    }
    if (amity_sock_bind(self->router, self->bind) != 0) {
        goto fail;
    }

    sopts.max_msg = S_SHARD_MSG_MAX;
    sopts.rcvhwm = 10000;
    sopts.linger_ms = 0; /* only the subscription is ever sent upstream */
    dopts.max_msg = S_SHARD_MSG_MAX;
    dopts.sndhwm = 4; /* snapreqs to a shard that is down must not pile up */
    dopts.rcvhwm = 10000;
    dopts.linger_ms = 0; /* an unsent snapreq is worthless at exit */
    for (i = 0; i < self->n_shards; i++) {
        rc = AMITY_ENOMEM;
        self->totals_ep[i] = s_derive(cfg->shards.items[i], NOTIFY_SHARD_TOTALS);
        self->snap_ep[i] = s_derive(cfg->shards.items[i], NOTIFY_SHARD_SNAPSHOT);
        if (!self->totals_ep[i] || !self->snap_ep[i]) {
            amity_log_error("shards: cannot derive endpoints of '%s'", cfg->shards.items[i]);
            rc = AMITY_EINVAL;
            goto fail;
        }
        rc = AMITY_EIO;
        self->subs[i] = amity_sock_new(ctx, ZMQ_SUB, &sopts);
        self->dealers[i] = amity_sock_new(ctx, ZMQ_DEALER, &dopts);
        if (!self->subs[i] || !self->dealers[i]) {
            goto fail;
        }
        if (zmq_setsockopt(self->subs[i], ZMQ_SUBSCRIBE, "", 0) != 0) {
            amity_log_error("shards: ZMQ_SUBSCRIBE: %s", zmq_strerror(zmq_errno()));
            goto fail;
        }
        if (self->shard_pub &&
            (amity_curve_client(self->subs[i], &self->own, self->shard_pub[i].public_txt) != 0 ||
             amity_curve_client(self->dealers[i], &self->own, self->shard_pub[i].public_txt) !=
                 0)) {
            goto fail;
        }
        if (amity_sock_connect(self->subs[i], self->totals_ep[i]) != 0 ||
            amity_sock_connect(self->dealers[i], self->snap_ep[i]) != 0) {
            goto fail;
        }
    }

    self->items[S_ITEM_SIGNAL] = (zmq_pollitem_t){ NULL, sfd, ZMQ_POLLIN, 0 };
    self->items[S_ITEM_ROUTER] = (zmq_pollitem_t){ self->router, 0, ZMQ_POLLIN, 0 };
    for (i = 0; i < self->n_shards; i++) {
        self->items[S_ITEM_SHARDS + 2 * i] = (zmq_pollitem_t){ self->subs[i], 0, ZMQ_POLLIN, 0 };
        self->items[S_ITEM_SHARDS + 2 * i + 1] =
            (zmq_pollitem_t){ self->dealers[i], 0, ZMQ_POLLIN, 0 };
    }
    if (self->auth) {
        self->item_zap = self->n_items++;
        self->items[self->item_zap] =
            (zmq_pollitem_t){ amity_auth_socket(self->auth), 0, ZMQ_POLLIN, 0 };
        self->item_monitor = self->n_items++;
        self->items[self->item_monitor] =
            (zmq_pollitem_t){ amity_monitor_socket(self->monitor), 0, ZMQ_POLLIN, 0 };
    }
    *out = self;
    return 0;

fail:
    notify_destroy(&self);
    return rc;
}

void
notify_destroy(notify_t **self_p)
{
    notify_t *self;
    size_t i;

    AMITY_ASSERT(self_p);
    self = *self_p;
    if (!self) {
        return;
    }
    amity_sock_close(&self->router);
    amity_monitor_destroy(&self->monitor);
    for (i = 0; i < self->n_shards; i++) {
        if (self->subs) {
            amity_sock_close(&self->subs[i]);
        }
        if (self->dealers) {
            amity_sock_close(&self->dealers[i]);
        }
        if (self->totals_ep) {
            free(self->totals_ep[i]);
        }
        if (self->snap_ep) {
            free(self->snap_ep[i]);
        }
    }
    free(self->subs);
    free(self->dealers);
    free(self->totals_ep);
    free(self->snap_ep);
    free(self->items);
    free(self->bind);
    free(self->shard_pub);
    memset(&self->own, 0, sizeof(self->own));
    /* after every socket that could still ask it */
    amity_auth_destroy(&self->auth);
    notify_core_destroy(&self->core);
    free(self);
    *self_p = NULL;
}

/*  Sends everything the core queued, never blocking: what does not fit is
 *  counted as dropped (subscribers recover through prev; snapreqs are
 *  retried by the merge's timer). */
static void
s_flush(notify_t *self)
{
    notify_outbox_t *out = notify_core_outbox(self->core);
    notify_stats_t *stats = notify_core_stats(self->core);
    amity_frame_t frames[2];
    size_t i;
    int rc;

    for (i = 0; i < out->n; i++) {
        notify_out_msg_t *e = &out->msgs[i];

        if (e->dest == NOTIFY_TO_SHARD) {
            frames[0].data = e->body.data;
            frames[0].len = e->body.len;
            rc = amity_sock_send_frames(self->dealers[e->shard], frames, 1, ZMQ_DONTWAIT);
        } else {
            frames[0].data = e->rid;
            frames[0].len = e->rid_len;
            frames[1].data = e->body.data;
            frames[1].len = e->body.len;
            rc = amity_sock_send_frames(self->router, frames, 2, ZMQ_DONTWAIT);
        }
        if (rc != 0) {
            stats->n_drops++;
            if (e->dest == NOTIFY_TO_SHARD) {
                amity_log_warn_rl(
                    30, "shard=%zu: cannot send %s to %s now (%s); %s", e->shard,
                    amity_msg_type_name(e->type), self->snap_ep[e->shard], amity_strerror(rc),
                    e->type == AMITY_MSG_SNAPREQ ? "will retry" : "the listing will time out");
            } else if (rc != AMITY_EAGAIN) {
                amity_log_warn_rl(10, "client: send %s failed: %s", amity_msg_type_name(e->type),
                                  amity_strerror(rc));
            }
        }
    }
    notify_outbox_reset(out);
}

/*  Checks a handler's result: only allocation failure is fatal. */
static int
s_check(notify_t *self, int rc)
{
    s_flush(self);
    if (rc != 0) {
        amity_log_error("out of memory (%s); stopping", amity_strerror(rc));
    }
    return rc;
}

static const amity_peer_t *
s_lookup(void *arg, const char *public_txt)
{
    return amity_auth_peer(arg, AMITY_ZAP_CLIENTS, public_txt);
}

/*  SIGHUP: re-reads the certificates; a removed key is refused from its
 *  next connection, and its live subscriptions end now. */
static void
s_reload(notify_t *self)
{
    if (!self->auth) {
        amity_log_info("SIGHUP: no certificate directory to reload");
        return;
    }
    if (amity_auth_reload(self->auth) != 0) {
        return; /* logged; the previous set stays in force */
    }
    if (notify_core_revalidate(self->core, s_lookup, self->auth) != 0) {
        amity_log_error("SIGHUP: out of memory while applying the certificates");
        return;
    }
    amity_log_info("SIGHUP: certificates reloaded subscribers_known=%zu",
                   amity_auth_count(self->auth, AMITY_ZAP_CLIENTS));
}

static void
s_on_signal(notify_t *self)
{
    int sig;

    while ((sig = amity_signals_read(self->sfd)) > 0) {
        if (sig == SIGHUP) {
            s_reload(self);
        } else if (self->stopping) {
            amity_log_warn("second %s: exiting now", sig == SIGINT ? "SIGINT" : "SIGTERM");
            _exit(AMITY_EXIT_RUNTIME);
        } else {
            amity_log_info("%s: stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
            self->stopping = true;
            amity_signals_arm_second();
        }
    }
}

/*  Drains client requests: [routing id][body], nothing else. */
static int
s_drain_clients(notify_t *self)
{
    amity_frame_t frames[S_FRAMES_MAX];
    char why[AMITY_WHY_MAX], user_id[AMITY_KEY_TXT + 8];
    const amity_peer_t *peer;
    int n, i, rc = 0;
    amity_msg_t m;

    for (i = 0; i < S_BATCH_MAX && rc == 0; i++) {
        n = amity_sock_recv_frames(self->router, frames, S_FRAMES_MAX, user_id, sizeof(user_id));
        if (n == 0) {
            break;
        }
        if (n == AMITY_ETOOBIG || n == AMITY_ENOMEM) {
            /* the routing id went with the dropped rest: nobody to answer */
            notify_core_stats(self->core)->n_bad_client++;
            amity_log_warn_rl(10, "client: message %s; dropped",
                              n == AMITY_ETOOBIG ? "with more than 2 frames"
                                                 : "too big for memory");
            continue;
        }
        if (n < 0) {
            if (n != AMITY_ETERM) {
                amity_log_error("client: receive on %s failed: %s", self->bind, amity_strerror(n));
            }
            return n == AMITY_ETERM ? 0 : n;
        }
        if (n != 2) {
            (void)snprintf(why, sizeof(why), "message: expected 1 frame, got %d", n - 1);
            amity_log_warn_rl(10, "client: %s", why);
            rc = s_check(
                self, notify_core_client_error(self->core, frames[0].data, frames[0].len, 0, why));
            amity_frames_free(frames, n);
            continue;
        }
        amity_msg_init(&m);
        if (amity_msg_decode(frames[1].data, frames[1].len, &m, why, sizeof(why)) != 0) {
            /* the decoder's reason goes out as is: it starts with the field */
            amity_log_warn_rl(10, "client: malformed message: %s", why);
            rc = s_check(self, notify_core_client_malformed(self->core, frames[0].data,
                                                            frames[0].len, frames[1].data,
                                                            frames[1].len, why));
        } else {
            /* the key's certificate now, so a key removed since is refused */
            peer = self->auth ? amity_auth_peer(self->auth, AMITY_ZAP_CLIENTS, user_id) : NULL;
            rc = s_check(self, notify_core_on_client_as(self->core, peer, frames[0].data,
                                                        frames[0].len, &m, amity_clock_mono_ms()));
        }
        amity_msg_clear(&m);
        amity_frames_free(frames, n);
    }
    return rc;
}

/*  Drains shard `shard`'s SUB (totals) or DEALER (snap chunks). */
static int
s_drain_shard(notify_t *self, size_t shard, bool dealer)
{
    void *sock = dealer ? self->dealers[shard] : self->subs[shard];
    amity_msg_type_t want = dealer ? AMITY_MSG_SNAP : AMITY_MSG_TOTALS;
    amity_frame_t frames[S_FRAMES_MAX];
    notify_stats_t *stats;
    char why[128], buf[256];
    int n, i, rc = 0;
    amity_msg_t m;

    for (i = 0; i < S_BATCH_MAX && rc == 0; i++) {
        n = amity_sock_recv_frames(sock, frames, S_FRAMES_MAX, NULL, 0);
        if (n == 0) {
            break;
        }
        if (n == AMITY_ETERM) {
            return 0;
        }
        stats = notify_core_stats(self->core);
        if (n == AMITY_ETOOBIG) {
            stats->n_bad_shard++;
            amity_log_warn_rl(10, "shard=%zu: message with too many frames on %s; dropped", shard,
                              dealer ? self->snap_ep[shard] : self->totals_ep[shard]);
            continue;
        }
        if (n < 0) {
            amity_log_error("shard=%zu: receive failed: %s", shard, amity_strerror(n));
            return n;
        }
        amity_msg_init(&m);
        if (n != 1) {
            stats->n_bad_shard++;
            amity_log_warn_rl(10, "shard=%zu: expected 1 frame, got %d, on %s; dropped", shard, n,
                              dealer ? self->snap_ep[shard] : self->totals_ep[shard]);
        } else if (amity_msg_decode(frames[0].data, frames[0].len, &m, why, sizeof(why)) != 0) {
            stats->n_bad_shard++;
            amity_log_warn_rl(10, "shard=%zu: malformed message on %s: %s; dropped", shard,
                              dealer ? self->snap_ep[shard] : self->totals_ep[shard], why);
        } else if (dealer &&
                   (m.type == AMITY_MSG_REJECTS ||
                    (m.type == AMITY_MSG_ERROR && notify_core_rejects_req(self->core, m.req)))) {
            /* a page of rejected records, or a shard refusing a listing */
            rc = s_check(self, notify_core_on_shard(self->core, shard, &m, amity_clock_mono_ms()));
        } else if (dealer && m.type == AMITY_MSG_ERROR) {
            (void)amity_view_copy(m.why, buf, sizeof(buf));
            amity_log_warn_rl(10, "shard=%zu: snapshot refused: %s", shard, buf);
        } else if (m.type != want) {
            stats->n_bad_shard++;
            amity_log_warn_rl(10, "shard=%zu: unexpected '%s' on %s; dropped", shard,
                              amity_msg_type_name(m.type),
                              dealer ? self->snap_ep[shard] : self->totals_ep[shard]);
        } else {
            rc = s_check(self, notify_core_on_shard(self->core, shard, &m, amity_clock_mono_ms()));
        }
        amity_msg_clear(&m);
        amity_frames_free(frames, n);
    }
    return rc;
}

/*  Logs the counters when they changed (or when forced, at exit). */
static void
s_log_stats(notify_t *self, bool force)
{
    notify_stats_t *st = notify_core_stats(self->core);
    notify_merge_t *merge = notify_core_merge(self->core);
    uint64_t resyncs = 0, totals = 0, admitted = 0, refused = 0;
    char per[256];
    size_t i, at = 0;

    per[0] = '\0';
    for (i = 0; i < self->n_shards; i++) {
        const notify_shard_stats_t *ss = notify_merge_stats(merge, i);
        int n;

        resyncs += ss->n_resyncs;
        totals += ss->n_totals;
        n = snprintf(per + at, sizeof(per) - at, "%s%zu:%s/%llu", i ? "," : "", i,
                     notify_merge_live(merge, i) ? "live" : "sync",
                     (unsigned long long)ss->n_resyncs);
        if (n < 0 || (size_t)n >= sizeof(per) - at) {
            break;
        }
        at += (size_t)n;
    }
    if (self->auth) {
        amity_auth_stats(self->auth, &admitted, &refused);
    }
    /* heartbeats alone (totals_in) are no reason for a line */
    if (!force && memcmp(st, &self->logged, sizeof(*st)) == 0 && resyncs == self->logged_resyncs &&
        refused == self->logged_refused) {
        return;
    }
    amity_log_info("stats seq=%llu keys=%zu subscribers=%zu totals_in=%llu batches=%llu "
                   "changes=%llu upd_out=%llu snap_out=%llu queries=%llu subs=%llu pings=%llu "
                   "unsubs=%llu expired=%llu refused=%llu bad_client=%llu bad_shard=%llu "
                   "drops=%llu resyncs=%llu unauthenticated=%llu denied=%llu revoked=%llu "
                   "handshake_failures=%llu zap_admitted=%llu zap_refused=%llu shards=[%s]",
                   (unsigned long long)notify_core_seq(self->core), st->n_keys, st->n_subscribers,
                   (unsigned long long)totals, (unsigned long long)st->n_batches,
                   (unsigned long long)st->n_changes, (unsigned long long)st->n_upd_out,
                   (unsigned long long)st->n_snap_out, (unsigned long long)st->n_queries,
                   (unsigned long long)st->n_subs, (unsigned long long)st->n_pings,
                   (unsigned long long)st->n_unsubs, (unsigned long long)st->n_expired,
                   (unsigned long long)st->n_refused, (unsigned long long)st->n_bad_client,
                   (unsigned long long)st->n_bad_shard, (unsigned long long)st->n_drops,
                   (unsigned long long)resyncs, (unsigned long long)st->n_unauthenticated,
                   (unsigned long long)st->n_denied, (unsigned long long)st->n_revoked,
                   (unsigned long long)st->n_handshake_failures, (unsigned long long)admitted,
                   (unsigned long long)refused, per);
    self->logged = *st;
    self->logged_resyncs = resyncs;
    self->logged_refused = refused;
}

int
notify_run(notify_t *self)
{
    int64_t now, next, ping_due;
    long timeout;
    size_t i;
    int rc;

    AMITY_ASSERT(self);
    now = amity_clock_mono_ms();
    rc = s_check(self, notify_core_start(self->core, now));
    if (rc != 0) {
        return rc;
    }
    self->next_stats_ms = now + S_STATS_EVERY_MS;
    amity_log_info("ready bind=%s shards=%zu epoch=%016llx max-subscribers=%lld mode=%s%s%s "
                   "subscriber_keys=%zu shards_curve=%s",
                   self->bind, self->n_shards, (unsigned long long)notify_core_epoch(self->core),
                   (long long)self->max_subscribers, self->secure ? "secure" : "development",
                   self->secure ? " key=" : "", self->secure ? self->own.public_txt : "",
                   self->auth ? amity_auth_count(self->auth, AMITY_ZAP_CLIENTS) : (size_t)0,
                   self->shard_pub ? "on" : "off");
    for (i = 0; i < self->n_shards; i++) {
        amity_log_info("ready shard=%zu totals=%s snapshots=%s", i, self->totals_ep[i],
                       self->snap_ep[i]);
    }
    (void)amity_daemon_ready("serving totals");

    while (!self->stopping) {
        now = amity_clock_mono_ms();
        next = notify_core_deadline(self->core);
        if (self->next_stats_ms < next) {
            next = self->next_stats_ms;
        }
        ping_due = amity_daemon_watchdog(now); /* pings when due */
        if (ping_due < next) {
            next = ping_due;
        }
        timeout = next <= now ? 0 : (long)(next - now);
        if (zmq_poll(self->items, self->n_items, timeout) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            if (zmq_errno() == ETERM) {
                break;
            }
            amity_log_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            rc = AMITY_EIO;
            break;
        }
        if (self->items[S_ITEM_SIGNAL].revents & ZMQ_POLLIN) {
            s_on_signal(self);
            if (self->stopping) {
                break; /* stop taking input; every reply is already flushed */
            }
        }
        /* handshakes waiting on the handler hold subscribers back */
        if (self->item_zap >= 0 && (self->items[self->item_zap].revents & ZMQ_POLLIN)) {
            (void)amity_auth_process(self->auth);
        }
        if (self->item_monitor >= 0 && (self->items[self->item_monitor].revents & ZMQ_POLLIN)) {
            notify_core_stats(self->core)->n_handshake_failures +=
                (uint64_t)amity_monitor_process(self->monitor);
        }
        /* snapshots and totals first, so clients see the freshest sums */
        for (i = 0; i < self->n_shards && rc == 0; i++) {
            if (self->items[S_ITEM_SHARDS + 2 * i + 1].revents & ZMQ_POLLIN) {
                rc = s_drain_shard(self, i, true);
            }
            if (rc == 0 && (self->items[S_ITEM_SHARDS + 2 * i].revents & ZMQ_POLLIN)) {
                rc = s_drain_shard(self, i, false);
            }
        }
        if (rc == 0 && (self->items[S_ITEM_ROUTER].revents & ZMQ_POLLIN)) {
            rc = s_drain_clients(self);
        }
        if (rc != 0) {
            break;
        }
        now = amity_clock_mono_ms();
        rc = s_check(self, notify_core_tick(self->core, now));
        if (rc != 0) {
            break;
        }
        if (now >= self->next_stats_ms) {
            self->next_stats_ms = now + S_STATS_EVERY_MS;
            s_log_stats(self, false);
        }
    }
    (void)amity_daemon_stopping();
    s_flush(self);
    s_log_stats(self, true);
    return rc;
}
