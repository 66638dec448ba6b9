/*  merge: per-shard partial totals, their sums, and each shard's sync
 *  state machine (snapshot, buffer, install, follow the seq, resync).
 *
 *  The totals map holds, per key, a block of 1 + S int64 values: the sum
 *  then one partial per shard. Values are read and written with memcpy, so
 *  nothing depends on the map's alignment of value blocks.
 */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/log.h"

typedef enum { S_SYNCING = 0, S_LIVE } s_state_t;

/*  A totals message buffered while its shard is syncing; its kv pairs are
 *  packed in the shard's arena as [u32 key_len][key][i64 val]. */
typedef struct {
    uint64_t seq; /**< the message's seq */
    size_t off;   /**< first byte in the arena */
    size_t n_kv;  /**< pairs packed */
} s_pending_t;

typedef struct {
    s_state_t state;            /**< SYNCING or LIVE */
    uint64_t req;               /**< id of the outstanding snapreq (SYNCING) */
    int64_t req_ms;             /**< when it was sent, or when its last chunk came */
    bool snap_open;             /**< a chunk of req came: snap_seq is valid */
    uint64_t snap_seq;          /**< seq of the snapshot being received */
    amity_map_t *snap;          /**< key -> i64: chunks so far (NULL until the first) */
    s_pending_t *pend;          /**< buffered totals, in arrival order */
    size_t n_pend;              /**< entries used */
    size_t cap_pend;            /**< entries allocated */
    amity_buf_t arena;          /**< their kv pairs */
    uint64_t last_seq;          /**< LIVE: seq of the last totals applied */
    int64_t last_ms;            /**< LIVE: when the shard's SUB last spoke */
    notify_shard_stats_t stats; /**< counters */
} s_shard_t;

struct notify_merge {
    size_t n_shards;          /**< S */
    size_t value_size;        /**< (1 + S) * 8 */
    amity_map_t *totals;      /**< key -> { sum, part[S] } */
    amity_map_t *changed;     /**< key -> i64 new sum, for the batch being built */
    amity_kv_t *batch;        /**< the batch flattened for the sink */
    size_t cap_batch;         /**< entries allocated in batch */
    s_shard_t *shards;        /**< [S] */
    uint64_t next_req;        /**< last request id used */
    notify_merge_sink_t sink; /**< effects go here */
};

static int64_t
s_get(const void *block, size_t i)
{
    int64_t v;

    memcpy(&v, (const uint8_t *)block + i * sizeof(int64_t), sizeof(v));
    return v;
}

static void
s_put(void *block, size_t i, int64_t v)
{
    memcpy((uint8_t *)block + i * sizeof(int64_t), &v, sizeof(v));
}

/*  Wire values are untrusted: add with wrap-around instead of signed
 *  overflow (undefined behaviour). */
static int64_t
s_wrap_add(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a + (uint64_t)b);
}

static const void *
s_key_ptr(amity_view_t v)
{
    return v.ptr ? (const void *)v.ptr : (const void *)"";
}

int
notify_merge_new(notify_merge_t **out, size_t n_shards, const notify_merge_sink_t *sink)
{
    notify_merge_t *self;
    size_t i;

    AMITY_ASSERT(out && sink && n_shards >= 1);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->n_shards = n_shards;
    self->value_size = (1 + n_shards) * sizeof(int64_t);
    self->sink = *sink;
    self->shards = calloc(n_shards, sizeof(*self->shards));
    if (!self->shards || amity_map_new(&self->totals, self->value_size) != 0 ||
        amity_map_new(&self->changed, sizeof(int64_t)) != 0) {
        notify_merge_destroy(&self);
        return AMITY_ENOMEM;
    }
    for (i = 0; i < n_shards; i++) {
        amity_buf_init(&self->shards[i].arena);
    }
    *out = self;
    return 0;
}

void
notify_merge_destroy(notify_merge_t **self_p)
{
    notify_merge_t *self;
    size_t i;

    AMITY_ASSERT(self_p);
    self = *self_p;
    if (!self) {
        return;
    }
    if (self->shards) {
        for (i = 0; i < self->n_shards; i++) {
            amity_map_destroy(&self->shards[i].snap);
            free(self->shards[i].pend);
            amity_buf_clear(&self->shards[i].arena);
        }
        free(self->shards);
    }
    amity_map_destroy(&self->totals);
    amity_map_destroy(&self->changed);
    free(self->batch);
    free(self);
    *self_p = NULL;
}

/*  Sets shard's partial of key to val; records the new sum in `changed`
 *  when it moved. */
static int
s_set_part(notify_merge_t *self, size_t shard, const void *key, size_t key_len, int64_t val)
{
    void *block = amity_map_upsert(self->totals, key, key_len, NULL);
    int64_t old, sum;
    void *slot;

    if (!block) {
        return AMITY_ENOMEM;
    }
    old = s_get(block, 1 + shard);
    if (old == val) {
        return 0;
    }
    s_put(block, 1 + shard, val);
    sum = s_wrap_add(s_get(block, 0), (int64_t)((uint64_t)val - (uint64_t)old));
    s_put(block, 0, sum);
    slot = amity_map_upsert(self->changed, key, key_len, NULL);
    if (!slot) {
        return AMITY_ENOMEM;
    }
    memcpy(slot, &sum, sizeof(sum));
    return 0;
}

/*  Hands the batch in `changed` (if any) to the sink, then empties it. */
static int
s_emit(notify_merge_t *self)
{
    size_t n = amity_map_size(self->changed), pos = 0, i = 0;
    const char *key;
    size_t key_len;
    void *val;
    int rc;

    if (n == 0) {
        return 0;
    }
    if (n > self->cap_batch) {
        amity_kv_t *b = realloc(self->batch, n * sizeof(*b));

        if (!b) {
            amity_map_reset(self->changed);
            return AMITY_ENOMEM;
        }
        self->batch = b;
        self->cap_batch = n;
    }
    while (i < n && amity_map_next(self->changed, &pos, &key, &key_len, &val) == 0) {
        self->batch[i].key.ptr = (const uint8_t *)key;
        self->batch[i].key.len = key_len;
        memcpy(&self->batch[i].val, val, sizeof(int64_t));
        i++;
    }
    rc = self->sink.changes(self->sink.arg, self->batch, i);
    amity_map_reset(self->changed);
    return rc;
}

/*  Puts shard into SYNCING with a fresh snapreq; drops what it had
 *  buffered or half-received. */
static int
s_request(notify_merge_t *self, size_t shard, int64_t now_ms)
{
    s_shard_t *sh = &self->shards[shard];

    sh->state = S_SYNCING;
    sh->req = ++self->next_req;
    sh->req_ms = now_ms;
    sh->snap_open = false;
    amity_map_destroy(&sh->snap);
    sh->n_pend = 0;
    amity_buf_reset(&sh->arena);
    sh->stats.n_snapreqs++;
    return self->sink.snapreq(self->sink.arg, shard, sh->req);
}

static int
s_resync(notify_merge_t *self, size_t shard, int64_t now_ms)
{
    self->shards[shard].stats.n_resyncs++;
    return s_request(self, shard, now_ms);
}

int
notify_merge_start(notify_merge_t *self, int64_t now_ms)
{
    size_t i;
    int rc;

    AMITY_ASSERT(self);
    for (i = 0; i < self->n_shards; i++) {
        rc = s_request(self, i, now_ms);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/*  Applies one totals message's pairs as one batch. */
static int
s_apply_kv(notify_merge_t *self, size_t shard, const amity_kv_t *kv, size_t n_kv)
{
    size_t i;
    int rc;

    for (i = 0; i < n_kv; i++) {
        rc = s_set_part(self, shard, s_key_ptr(kv[i].key), kv[i].key.len, kv[i].val);
        if (rc != 0) {
            amity_map_reset(self->changed);
            return rc;
        }
    }
    self->shards[shard].stats.n_applied++;
    return s_emit(self);
}

/*  Buffers a totals message of a syncing shard; on overflow drops the
 *  buffer and asks again. */
static int
s_buffer(notify_merge_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms)
{
    s_shard_t *sh = &self->shards[shard];
    size_t need = 0, i;
    s_pending_t *p;
    int rc;

    for (i = 0; i < m->n_kv; i++) {
        need += sizeof(uint32_t) + m->kv[i].key.len + sizeof(int64_t);
    }
    if (sh->n_pend >= NOTIFY_PENDING_MAX || sh->arena.len + need > NOTIFY_PENDING_BYTES) {
        sh->stats.n_overflows++;
        amity_log_warn_rl(10,
                          "shard=%zu: too many totals buffered while syncing "
                          "(%zu messages); asking for a new snapshot",
                          shard, sh->n_pend);
        return s_resync(self, shard, now_ms);
    }
    if (sh->n_pend == sh->cap_pend) {
        size_t cap = sh->cap_pend ? sh->cap_pend * 2 : 16;
        s_pending_t *pend = realloc(sh->pend, cap * sizeof(*pend));

        if (!pend) {
            return AMITY_ENOMEM;
        }
        sh->pend = pend;
        sh->cap_pend = cap;
    }
    rc = amity_buf_reserve(&sh->arena, need);
    if (rc != 0) {
        return rc;
    }
    p = &sh->pend[sh->n_pend];
    p->seq = m->seq;
    p->off = sh->arena.len;
    p->n_kv = m->n_kv;
    for (i = 0; i < m->n_kv; i++) {
        uint32_t len = (uint32_t)m->kv[i].key.len;

        /* reserved above: these appends cannot fail */
        (void)amity_buf_append(&sh->arena, &len, sizeof(len));
        (void)amity_buf_append(&sh->arena, s_key_ptr(m->kv[i].key), len);
        (void)amity_buf_append(&sh->arena, &m->kv[i].val, sizeof(int64_t));
    }
    sh->n_pend++;
    return 0;
}

/*  Applies a buffered message as one batch. */
static int
s_apply_pending(notify_merge_t *self, size_t shard, const s_pending_t *p)
{
    const uint8_t *at = self->shards[shard].arena.data + p->off;
    size_t i;
    int rc;

    for (i = 0; i < p->n_kv; i++) {
        uint32_t len;
        int64_t val;

        memcpy(&len, at, sizeof(len));
        at += sizeof(len);
        memcpy(&val, at + len, sizeof(val));
        rc = s_set_part(self, shard, at, len, val);
        if (rc != 0) {
            amity_map_reset(self->changed);
            return rc;
        }
        at += len + sizeof(val);
    }
    self->shards[shard].stats.n_applied++;
    return s_emit(self);
}

int
notify_merge_on_totals(notify_merge_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms)
{
    s_shard_t *sh;
    int rc;

    AMITY_ASSERT(self && m && shard < self->n_shards);
    sh = &self->shards[shard];
    sh->stats.n_totals++;
    if (m->shard != shard) {
        amity_log_warn_rl(60,
                          "shard=%zu: totals say shard %llu: is the shards list in the "
                          "order of the aggregates' --index?",
                          shard, (unsigned long long)m->shard);
    }
    if (sh->state == S_SYNCING) {
        /* a heartbeat carries nothing to replay */
        return m->n_kv ? s_buffer(self, shard, m, now_ms) : 0;
    }
    sh->last_ms = now_ms;
    if (m->n_kv > 0 && m->seq == sh->last_seq + 1) {
        sh->last_seq = m->seq;
        return s_apply_kv(self, shard, m->kv, m->n_kv);
    }
    if (m->n_kv == 0 && m->seq == sh->last_seq) {
        return 0;
    }
    amity_log_warn_rl(5, "shard=%zu: %s seq %llu after %llu (%s); resyncing", shard,
                      m->n_kv ? "totals" : "heartbeat", (unsigned long long)m->seq,
                      (unsigned long long)sh->last_seq,
                      m->seq < sh->last_seq ? "shard reset" : "messages lost");
    rc = s_resync(self, shard, now_ms);
    if (rc == 0 && m->n_kv > 0) {
        /* the new snapshot may predate this message: keep it to replay */
        rc = s_buffer(self, shard, m, now_ms);
    }
    return rc;
}

/*  The last chunk came: diff the snapshot against shard's partials, then
 *  replay the buffered totals that follow it. */
static int
s_install(notify_merge_t *self, size_t shard, int64_t now_ms)
{
    s_shard_t *sh = &self->shards[shard];
    size_t pos = 0, key_len, i;
    const char *key;
    void *val;
    uint64_t cur;
    int rc;

    while (sh->snap && amity_map_next(sh->snap, &pos, &key, &key_len, &val) == 0) {
        int64_t v;

        memcpy(&v, val, sizeof(v));
        rc = s_set_part(self, shard, key, key_len, v);
        if (rc != 0) {
            amity_map_reset(self->changed);
            return rc;
        }
    }
    /* keys this shard had that its snapshot no longer holds: zero them
     * (no inserts into totals here, so iterating it is safe) */
    pos = 0;
    while (amity_map_next(self->totals, &pos, &key, &key_len, &val) == 0) {
        int64_t part = s_get(val, 1 + shard);

        if (part != 0 && !(sh->snap && amity_map_find(sh->snap, key, key_len))) {
            int64_t sum = s_wrap_add(s_get(val, 0), (int64_t)(0 - (uint64_t)part));
            void *slot;

            s_put(val, 1 + shard, 0);
            s_put(val, 0, sum);
            slot = amity_map_upsert(self->changed, key, key_len, NULL);
            if (!slot) {
                amity_map_reset(self->changed);
                return AMITY_ENOMEM;
            }
            memcpy(slot, &sum, sizeof(sum));
        }
    }
    amity_map_destroy(&sh->snap);
    sh->state = S_LIVE;
    sh->last_seq = sh->snap_seq;
    sh->last_ms = now_ms;
    sh->stats.n_snaps++;
    rc = s_emit(self);
    if (rc != 0) {
        return rc;
    }

    cur = sh->snap_seq;
    for (i = 0; i < sh->n_pend; i++) {
        const s_pending_t *p = &sh->pend[i];

        if (p->seq <= cur) {
            continue;
        }
        if (p->seq != cur + 1) {
            amity_log_warn_rl(5,
                              "shard=%zu: buffered totals jump from seq %llu to %llu "
                              "after the snapshot; resyncing",
                              shard, (unsigned long long)cur, (unsigned long long)p->seq);
            return s_resync(self, shard, now_ms);
        }
        cur = p->seq;
        sh->last_seq = cur;
        rc = s_apply_pending(self, shard, p);
        if (rc != 0) {
            return rc;
        }
    }
    sh->n_pend = 0;
    amity_buf_reset(&sh->arena);
    return 0;
}

int
notify_merge_on_snap(notify_merge_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms)
{
    s_shard_t *sh;
    size_t i;

    AMITY_ASSERT(self && m && shard < self->n_shards);
    sh = &self->shards[shard];
    if (sh->state != S_SYNCING || m->req != sh->req) {
        sh->stats.n_stale++;
        return 0;
    }
    if (m->shard != shard) {
        amity_log_warn_rl(60,
                          "shard=%zu: snap says shard %llu: is the shards list in the "
                          "order of the aggregates' --index?",
                          shard, (unsigned long long)m->shard);
    }
    if (!sh->snap_open) {
        sh->snap_open = true;
        sh->snap_seq = m->seq;
    } else if (m->seq != sh->snap_seq) {
        amity_log_warn_rl(5,
                          "shard=%zu: snapshot chunks disagree on seq (%llu, then %llu); "
                          "asking again",
                          shard, (unsigned long long)sh->snap_seq, (unsigned long long)m->seq);
        return s_resync(self, shard, now_ms);
    }
    sh->req_ms = now_ms;
    if (!sh->snap && amity_map_new(&sh->snap, sizeof(int64_t)) != 0) {
        return AMITY_ENOMEM;
    }
    for (i = 0; i < m->n_kv; i++) {
        void *slot = amity_map_upsert(sh->snap, s_key_ptr(m->kv[i].key), m->kv[i].key.len, NULL);

        if (!slot) {
            return AMITY_ENOMEM;
        }
        memcpy(slot, &m->kv[i].val, sizeof(int64_t));
    }
    if (m->more) {
        return 0;
    }
    return s_install(self, shard, now_ms);
}

int
notify_merge_tick(notify_merge_t *self, int64_t now_ms)
{
    size_t i;
    int rc = 0;

    AMITY_ASSERT(self);
    for (i = 0; i < self->n_shards && rc == 0; i++) {
        s_shard_t *sh = &self->shards[i];

        if (sh->state == S_SYNCING && now_ms - sh->req_ms >= NOTIFY_SNAP_RETRY_MS) {
            amity_log_warn_rl(30,
                              "shard=%zu: no snapshot reply for %d ms (is the aggregate "
                              "running?); asking again",
                              i, NOTIFY_SNAP_RETRY_MS);
            rc = s_request(self, i, now_ms);
        } else if (sh->state == S_LIVE && now_ms - sh->last_ms >= NOTIFY_SILENCE_MS) {
            amity_log_warn_rl(30, "shard=%zu: silent for %d ms; resyncing", i, NOTIFY_SILENCE_MS);
            rc = s_resync(self, i, now_ms);
        }
    }
    return rc;
}

int64_t
notify_merge_deadline(const notify_merge_t *self)
{
    int64_t next = INT64_MAX;
    size_t i;

    AMITY_ASSERT(self);
    for (i = 0; i < self->n_shards; i++) {
        const s_shard_t *sh = &self->shards[i];
        int64_t t = sh->state == S_SYNCING ? sh->req_ms + NOTIFY_SNAP_RETRY_MS
                                           : sh->last_ms + NOTIFY_SILENCE_MS;

        if (t < next) {
            next = t;
        }
    }
    return next;
}

size_t
notify_merge_n_shards(const notify_merge_t *self)
{
    AMITY_ASSERT(self);
    return self->n_shards;
}

bool
notify_merge_live(const notify_merge_t *self, size_t shard)
{
    AMITY_ASSERT(self && shard < self->n_shards);
    return self->shards[shard].state == S_LIVE;
}

uint64_t
notify_merge_last_seq(const notify_merge_t *self, size_t shard)
{
    AMITY_ASSERT(self && shard < self->n_shards);
    return self->shards[shard].last_seq;
}

const notify_shard_stats_t *
notify_merge_stats(const notify_merge_t *self, size_t shard)
{
    AMITY_ASSERT(self && shard < self->n_shards);
    return &self->shards[shard].stats;
}

size_t
notify_merge_n_keys(const notify_merge_t *self)
{
    AMITY_ASSERT(self);
    return amity_map_size(self->totals);
}

int
notify_merge_get(const notify_merge_t *self, const void *key, size_t key_len, int64_t *sum,
                 size_t shard, int64_t *part)
{
    const void *block;

    AMITY_ASSERT(self && sum && shard < self->n_shards);
    block = amity_map_find(self->totals, key_len ? key : "", key_len);
    if (!block) {
        return AMITY_ENOTFOUND;
    }
    *sum = s_get(block, 0);
    if (part) {
        *part = s_get(block, 1 + shard);
    }
    return 0;
}

int
notify_merge_next(const notify_merge_t *self, size_t *pos, const char **key, size_t *key_len,
                  int64_t *sum)
{
    void *block;
    int rc;

    AMITY_ASSERT(self && pos && key && key_len && sum);
    rc = amity_map_next(self->totals, pos, key, key_len, &block);
    if (rc != 0) {
        return rc;
    }
    *sum = s_get(block, 0);
    return 0;
}
