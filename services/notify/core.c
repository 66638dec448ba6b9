/*  core: notify's logic without sockets: shard merge -> seq -> fan-out,
 *  and the client requests (query, sub, ping, unsub).
 */
#include "core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/record.h"
#include "rejects.h"

#define S_EXPIRE_EVERY_MS 1000 /**< subscriber expiry sweep period */

/*  One key of a query or subscription snapshot, before sorting. */
typedef struct {
    const char *key; /**< borrowed from the merge's map */
    size_t len;      /**< key bytes */
    int64_t sum;     /**< merged value */
} s_entry_t;

struct notify_core {
    notify_merge_t *merge;  /**< shard partials and sums */
    notify_subs_t *subs;    /**< subscribers */
    notify_outbox_t out;    /**< what to send */
    uint64_t epoch;         /**< instance id, in every snap/upd/pong */
    uint64_t seq;           /**< batches of changed sums so far */
    int64_t next_expire_ms; /**< next subscriber expiry sweep */
    s_entry_t *entries;     /**< snapshot scratch */
    size_t cap_entries;     /**< entries allocated */
    amity_kv_t *kv;         /**< snapshot chunk scratch */
    size_t cap_kv;          /**< entries allocated */
    notify_stats_t stats;   /**< counters */
    bool secure;            /**< requests need a peer */
    notify_rejects_t *rej;  /**< rejected-records listings being gathered */
};

static int
s_on_snapreq(void *arg, size_t shard, uint64_t req)
{
    notify_core_t *self = arg;
    amity_msg_t m;
    int rc;

    amity_msg_init(&m);
    m.type = AMITY_MSG_SNAPREQ;
    m.req = req;
    m.prefix = amity_view_str("");
    rc = notify_outbox_add(&self->out, NOTIFY_TO_SHARD, shard, NULL, 0, &m);
    return rc == AMITY_ENOMEM ? rc : 0;
}

static int
s_on_changes(void *arg, const amity_kv_t *kv, size_t n)
{
    notify_core_t *self = arg;
    size_t n_sent = 0;
    int rc;

    self->seq++;
    self->stats.n_batches++;
    self->stats.n_changes += n;
    rc = notify_subs_fanout(self->subs, kv, n, self->epoch, self->seq, &self->out, &n_sent);
    self->stats.n_upd_out += n_sent;
    return rc;
}

int
notify_core_new(notify_core_t **out, size_t n_shards, size_t max_subscribers, uint64_t epoch)
{
    notify_merge_sink_t sink;
    notify_core_t *self;
    int rc;

    AMITY_ASSERT(out && n_shards >= 1 && max_subscribers >= 1);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    notify_outbox_init(&self->out);
    self->epoch = epoch;
    sink.snapreq = s_on_snapreq;
    sink.changes = s_on_changes;
    sink.arg = self;
    rc = notify_merge_new(&self->merge, n_shards, &sink);
    if (rc == 0) {
        rc = notify_subs_new(&self->subs, max_subscribers);
    }
    if (rc == 0) {
        rc = notify_rejects_new(&self->rej, n_shards, &self->out);
    }
    if (rc != 0) {
        notify_core_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void
notify_core_destroy(notify_core_t **self_p)
{
    notify_core_t *self;

    AMITY_ASSERT(self_p);
    self = *self_p;
    if (!self) {
        return;
    }
    notify_merge_destroy(&self->merge);
    notify_subs_destroy(&self->subs);
    notify_rejects_destroy(&self->rej);
    notify_outbox_clear(&self->out);
    free(self->entries);
    free(self->kv);
    free(self);
    *self_p = NULL;
}

int
notify_core_start(notify_core_t *self, int64_t now_ms)
{
    AMITY_ASSERT(self);
    self->next_expire_ms = now_ms + S_EXPIRE_EVERY_MS;
    return notify_merge_start(self->merge, now_ms);
}

int
notify_core_on_shard(notify_core_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms)
{
    AMITY_ASSERT(self && m);
    switch (m->type) {
    case AMITY_MSG_TOTALS:
        return notify_merge_on_totals(self->merge, shard, m, now_ms);
    case AMITY_MSG_SNAP:
        return notify_merge_on_snap(self->merge, shard, m, now_ms);
    case AMITY_MSG_REJECTS:
    case AMITY_MSG_ERROR:
        return notify_rejects_on_shard(self->rej, shard, m, now_ms);
    default:
        self->stats.n_bad_shard++;
        amity_log_warn_rl(10, "shard=%zu: unexpected message type '%s' from a shard; dropped",
                          shard, amity_msg_type_name(m->type));
        return 0;
    }
}

static int
s_reply_error(notify_core_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
              const char *why)
{
    amity_msg_t m;
    int rc;

    amity_msg_init(&m);
    m.type = AMITY_MSG_ERROR;
    m.req = req;
    m.why = amity_view_str(why);
    self->stats.n_refused++;
    rc = notify_outbox_add(&self->out, NOTIFY_TO_CLIENT, 0, rid, rid_len, &m);
    return rc == AMITY_ENOMEM ? rc : 0;
}

int
notify_core_client_error(notify_core_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
                         const char *why)
{
    AMITY_ASSERT(self && why);
    self->stats.n_bad_client++;
    return s_reply_error(self, rid, rid_len, req, why);
}

int
notify_core_client_malformed(notify_core_t *self, const uint8_t *rid, size_t rid_len,
                             const uint8_t *body, size_t body_len, const char *why)
{
    uint64_t req = 0;

    AMITY_ASSERT(self && why);
    /* the request's own req even when another field is wrong, so the client
     * can tell which of its requests was refused */
    (void)amity_msg_peek_req(body, body_len, &req);
    return notify_core_client_error(self, rid, rid_len, req, why);
}

static int
s_entry_cmp(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->key, y->key, n) : 0;

    if (c != 0) {
        return c;
    }
    return (x->len > y->len) - (x->len < y->len);
}

/*  Sends rid every key under any of the prefixes that peer (NULL: anyone)
 *  may read, sorted, as `snap` chunks {req, epoch, seq, more, kv} of at
 *  most NOTIFY_CHUNK_MAX keys. */
static int
s_send_snapshot(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid, size_t rid_len,
                uint64_t req, const amity_view_t *prefixes, size_t n_prefixes)
{
    size_t n_keys = notify_merge_n_keys(self->merge), n = 0, pos = 0, i = 0, key_len;
    const char *key;
    amity_msg_t m;
    int64_t sum;
    int rc;

    if (n_keys > self->cap_entries) {
        s_entry_t *e = realloc(self->entries, n_keys * sizeof(*e));

        if (!e) {
            return AMITY_ENOMEM;
        }
        self->entries = e;
        self->cap_entries = n_keys;
    }
    while (n < n_keys && notify_merge_next(self->merge, &pos, &key, &key_len, &sum) == 0) {
        if (notify_prefix_match(prefixes, n_prefixes, key, key_len) &&
            (!peer || amity_auth_allows(peer, key, key_len))) {
            self->entries[n].key = key;
            self->entries[n].len = key_len;
            self->entries[n].sum = sum;
            n++;
        }
    }
    if (n > 1) {
        qsort(self->entries, n, sizeof(*self->entries), s_entry_cmp);
    }
    if (self->cap_kv < NOTIFY_CHUNK_MAX) {
        amity_kv_t *kv = realloc(self->kv, NOTIFY_CHUNK_MAX * sizeof(*kv));

        if (!kv) {
            return AMITY_ENOMEM;
        }
        self->kv = kv;
        self->cap_kv = NOTIFY_CHUNK_MAX;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_SNAP;
    m.req = req;
    m.epoch = self->epoch;
    m.seq = self->seq;
    m.kv = self->kv;
    do {
        size_t k = n - i < NOTIFY_CHUNK_MAX ? n - i : NOTIFY_CHUNK_MAX, j;

        for (j = 0; j < k; j++) {
            self->kv[j].key.ptr = (const uint8_t *)self->entries[i + j].key;
            self->kv[j].key.len = self->entries[i + j].len;
            self->kv[j].val = self->entries[i + j].sum;
        }
        m.n_kv = k;
        i += k;
        m.more = i < n;
        rc = notify_outbox_add(&self->out, NOTIFY_TO_CLIENT, 0, rid, rid_len, &m);
        if (rc != 0) {
            return rc;
        }
        self->stats.n_snap_out++;
    } while (i < n);
    return 0;
}

/*  True when peer (NULL: anyone) may read some key under one of the
 *  prefixes. */
static bool
s_may_read(const amity_peer_t *peer, const amity_view_t *prefixes, size_t n_prefixes)
{
    size_t i;

    if (!peer) {
        return true;
    }
    for (i = 0; i < n_prefixes; i++) {
        if (amity_auth_may_read(peer, (const char *)prefixes[i].ptr, prefixes[i].len)) {
            return true;
        }
    }
    return false;
}

/*  Refuses a request entirely outside what peer may read. */
static int
s_deny(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid, size_t rid_len,
       const amity_msg_t *m, const char *what)
{
    char prefix[96];

    self->stats.n_denied++;
    prefix[0] = '\0';
    if (m->type == AMITY_MSG_QUERY) {
        (void)amity_text_sanitize(prefix, sizeof(prefix), (const char *)m->prefix.ptr,
                                  m->prefix.len);
    } else if (m->n_prefixes > 0) {
        (void)amity_text_sanitize(prefix, sizeof(prefix), (const char *)m->prefixes[0].ptr,
                                  m->prefixes[0].len);
    }
    amity_log_warn_rl(1,
                      "client: %s refused: outside what the key may read name=%s key=%s "
                      "prefix=\"%s\" denied=%llu",
                      what, peer->name, peer->public_txt, prefix,
                      (unsigned long long)self->stats.n_denied);
    return s_reply_error(self, rid, rid_len, m->req,
                         "prefix: outside what this key may read (its certificate's prefixes)");
}

static int
s_on_sub(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid, size_t rid_len,
         const amity_msg_t *m, int64_t now_ms)
{
    char why[128];
    int rc;

    self->stats.n_subs++;
    if (m->n_prefixes == 0) {
        return s_reply_error(self, rid, rid_len, m->req,
                             "prefixes: empty (subscribe to \"\" for every key)");
    }
    if (!s_may_read(peer, m->prefixes, m->n_prefixes)) {
        /* an earlier subscription of rid is not left running either */
        (void)notify_subs_remove(self->subs, rid, rid_len);
        return s_deny(self, peer, rid, rid_len, m, "sub");
    }
    rc = notify_subs_put(self->subs, rid, rid_len, m->prefixes, m->n_prefixes, peer, self->seq,
                         now_ms);
    if (rc == AMITY_EFULL) {
        amity_log_warn_rl(10, "subscription refused: max-subscribers (%zu) reached",
                          notify_subs_count(self->subs));
        (void)snprintf(why, sizeof(why), "too many subscribers (max-subscribers %zu)",
                       notify_subs_count(self->subs));
        return s_reply_error(self, rid, rid_len, m->req, why);
    }
    if (rc == AMITY_EINVAL) {
        return s_reply_error(self, rid, rid_len, m->req, "routing id too long");
    }
    if (rc != 0) {
        return rc;
    }
    return s_send_snapshot(self, peer, rid, rid_len, m->req, m->prefixes, m->n_prefixes);
}

/*  True when peer is an operator: a subscriber (not an office) whose
 *  certificate's prefixes include "*". */
static bool
s_operator(const amity_peer_t *peer)
{
    const char *p = peer->prefixes;

    if (peer->is_office) {
        return false;
    }
    while (*p) {
        const char *end;
        size_t len;

        while (*p == ' ' || *p == ',') {
            p++;
        }
        end = p;
        while (*end && *end != ',') {
            end++;
        }
        len = (size_t)(end - p);
        while (len > 0 && p[len - 1] == ' ') {
            len--;
        }
        if (len == 1 && p[0] == '*') {
            return true;
        }
        p = end;
    }
    return false;
}

/*  rejreq: who may list what. Secure mode: an office key lists its own
 *  office's rejected records only (the filter is forced to it), an
 *  operator's key (prefixes "*") any office's or all; other keys nothing.
 *  Development mode (loopback only): anyone lists anything. */
static int
s_on_rejreq(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid, size_t rid_len,
            const amity_msg_t *m, int64_t now_ms)
{
    amity_view_t office = m->office;
    char why[160];

    if (office.ptr && office.len == 0) {
        office.ptr = NULL; /* "" is no filter */
    }
    if (peer && peer->is_office) {
        size_t own = strlen(peer->name);

        if (office.ptr && (office.len != own || memcmp(office.ptr, peer->name, own) != 0)) {
            self->stats.n_denied++;
            amity_log_warn_rl(1, "client: rejreq refused: office key %s asked for another office",
                              peer->name);
            (void)snprintf(why, sizeof(why),
                           "office: this key lists only its own office's rejected records (%s)",
                           peer->name);
            return s_reply_error(self, rid, rid_len, m->req, why);
        }
        office = amity_view_str(peer->name);
    } else if (peer && !s_operator(peer)) {
        self->stats.n_denied++;
        amity_log_warn_rl(1, "client: rejreq refused: key %s is neither an office nor an operator",
                          peer->name);
        return s_reply_error(self, rid, rid_len, m->req,
                             "rejects: this key may not list rejected records (an office's key "
                             "lists its own, an operator's key with prefixes \"*\" lists all)");
    }
    if (office.ptr && !amity_office_valid((const char *)office.ptr, office.len)) {
        return s_reply_error(self, rid, rid_len, m->req, "office: not a valid office id");
    }
    return notify_rejects_start(self->rej, rid, rid_len, m->req, office, m->limit, now_ms);
}

void
notify_core_set_shard_name(notify_core_t *self, size_t shard, const char *name)
{
    AMITY_ASSERT(self && name);
    notify_rejects_set_shard_name(self->rej, shard, name);
}

bool
notify_core_rejects_req(const notify_core_t *self, uint64_t req)
{
    AMITY_ASSERT(self);
    return notify_rejects_owns(self->rej, req);
}

void
notify_core_set_secure(notify_core_t *self, bool secure)
{
    AMITY_ASSERT(self);
    self->secure = secure;
}

int
notify_core_on_client(notify_core_t *self, const uint8_t *rid, size_t rid_len, const amity_msg_t *m,
                      int64_t now_ms)
{
    return notify_core_on_client_as(self, NULL, rid, rid_len, m, now_ms);
}

int
notify_core_on_client_as(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid,
                         size_t rid_len, const amity_msg_t *m, int64_t now_ms)
{
    amity_msg_t r;
    uint64_t last_sent;
    char why[96];
    int rc;

    AMITY_ASSERT(self && m);
    if (self->secure && !peer) {
        /* admitted once, but the key has been removed since (SIGHUP) */
        self->stats.n_unauthenticated++;
        (void)notify_subs_remove(self->subs, rid, rid_len);
        amity_log_warn_rl(1,
                          "client: %s refused: key not registered (revoked?) "
                          "unauthenticated=%llu",
                          amity_msg_type_name(m->type),
                          (unsigned long long)self->stats.n_unauthenticated);
        return s_reply_error(self, rid, rid_len, m->req, "auth: this key is not registered");
    }
    if (!self->secure) {
        peer = NULL; /* development mode: every key may be read */
    }
    switch (m->type) {
    case AMITY_MSG_QUERY:
        self->stats.n_queries++;
        if (!s_may_read(peer, &m->prefix, 1)) {
            return s_deny(self, peer, rid, rid_len, m, "query");
        }
        return s_send_snapshot(self, peer, rid, rid_len, m->req, &m->prefix, 1);
    case AMITY_MSG_SUB:
        return s_on_sub(self, peer, rid, rid_len, m, now_ms);
    case AMITY_MSG_PING:
        self->stats.n_pings++;
        if (notify_subs_touch(self->subs, rid, rid_len, now_ms, &last_sent) != 0) {
            /* forgotten (silence, restart): tell it, so it subscribes again */
            return s_reply_error(self, rid, rid_len, 0, "not subscribed");
        }
        amity_msg_init(&r);
        r.type = AMITY_MSG_PONG;
        r.epoch = self->epoch;
        r.seq = last_sent;
        rc = notify_outbox_add(&self->out, NOTIFY_TO_CLIENT, 0, rid, rid_len, &r);
        return rc == AMITY_ENOMEM ? rc : 0;
    case AMITY_MSG_UNSUB:
        self->stats.n_unsubs++;
        (void)notify_subs_remove(self->subs, rid, rid_len);
        return 0;
    case AMITY_MSG_REJREQ:
        return s_on_rejreq(self, peer, rid, rid_len, m, now_ms);
    default:
        (void)snprintf(why, sizeof(why),
                       "t: notify takes query, sub, ping, unsub or rejreq, not %s",
                       amity_msg_type_name(m->type));
        amity_log_warn_rl(10, "client: %s", why);
        return notify_core_client_error(self, rid, rid_len, m->req, why);
    }
}

int
notify_core_revalidate(notify_core_t *self, notify_peer_fn lookup, void *arg)
{
    int n;

    AMITY_ASSERT(self && lookup);
    n = notify_subs_revalidate(self->subs, lookup, arg);
    if (n < 0) {
        return n;
    }
    if (n > 0) {
        self->stats.n_revoked += (uint64_t)n;
        amity_log_warn("forgot %d subscriber(s) whose key was removed; %zu left", n,
                       notify_subs_count(self->subs));
    }
    return 0;
}

int
notify_core_tick(notify_core_t *self, int64_t now_ms)
{
    size_t n;

    AMITY_ASSERT(self);
    if (now_ms >= self->next_expire_ms) {
        self->next_expire_ms = now_ms + S_EXPIRE_EVERY_MS;
        n = notify_subs_expire(self->subs, now_ms);
        if (n > 0) {
            self->stats.n_expired += n;
            amity_log_info("forgot %zu silent subscriber(s); %zu left", n,
                           notify_subs_count(self->subs));
        }
    }
    if (notify_rejects_tick(self->rej, now_ms) != 0) {
        return AMITY_ENOMEM;
    }
    return notify_merge_tick(self->merge, now_ms);
}

int64_t
notify_core_deadline(const notify_core_t *self)
{
    int64_t t;

    AMITY_ASSERT(self);
    t = notify_merge_deadline(self->merge);
    if (notify_rejects_deadline(self->rej) < t) {
        t = notify_rejects_deadline(self->rej);
    }
    return t < self->next_expire_ms ? t : self->next_expire_ms;
}

notify_outbox_t *
notify_core_outbox(notify_core_t *self)
{
    AMITY_ASSERT(self);
    return &self->out;
}

uint64_t
notify_core_seq(const notify_core_t *self)
{
    AMITY_ASSERT(self);
    return self->seq;
}

uint64_t
notify_core_epoch(const notify_core_t *self)
{
    AMITY_ASSERT(self);
    return self->epoch;
}

notify_merge_t *
notify_core_merge(notify_core_t *self)
{
    AMITY_ASSERT(self);
    return self->merge;
}

notify_stats_t *
notify_core_stats(notify_core_t *self)
{
    AMITY_ASSERT(self);
    self->stats.n_subscribers = notify_subs_count(self->subs);
    self->stats.n_keys = notify_merge_n_keys(self->merge);
    return &self->stats;
}
