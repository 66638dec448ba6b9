/*  rejects: gathers the shards' pages of kept rejected records for a
 *  client's rejreq, merges them by time and answers in chunks.
 *
 *  Each request holds its items in one arena ([office][id][why][rec] bytes
 *  per item, located by s_item_t); the reply's views point into it. Memory
 *  is bounded per request (NOTIFY_REJECTS_ITEMS_MAX, _BYTES_MAX) and by the
 *  number of requests running at once.
 */
#include "rejects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/record.h"

#define S_NAME_MAX 160 /**< bytes of a shard's name in messages */

/*  One gathered item. */
typedef struct {
    uint64_t ts;       /**< when the shard kept it (ms) */
    size_t shard;      /**< which shard sent it */
    size_t seq;        /**< arrival order within the request (ties) */
    size_t off;        /**< its bytes in the arena: office, id, why, rec */
    size_t office_len; /**< bytes of each part */
    size_t id_len;
    size_t why_len;
    size_t rec_len;
} s_item_t;

/*  One client request being gathered. */
typedef struct {
    bool used;                         /**< the slot holds a running request */
    uint64_t id;                       /**< req sent to the shards */
    uint64_t client_req;               /**< the client's req, echoed */
    uint8_t rid[NOTIFY_RID_MAX];       /**< the client's routing id */
    size_t rid_len;                    /**< its bytes */
    char office[AMITY_OFFICE_MAX + 1]; /**< the filter ("" = every office) */
    size_t chunk;                      /**< items per reply chunk */
    bool *done;                        /**< [S] the shard sent its last page */
    int64_t *deadline;                 /**< [S] when an unfinished shard times out */
    s_item_t *items;                   /**< gathered items */
    size_t n_items;                    /**< used */
    size_t cap_items;                  /**< allocated */
    amity_buf_t arena;                 /**< their bytes */
} s_req_t;

struct notify_rejects {
    size_t n_shards;                          /**< S */
    notify_outbox_t *out;                     /**< the core's outbox (borrowed) */
    char (*names)[S_NAME_MAX];                /**< [S] shard names for messages */
    s_req_t reqs[NOTIFY_REJECTS_PENDING_MAX]; /**< request slots */
    uint64_t next_id;                         /**< last request id used */
    amity_reject_item_t *chunk;               /**< reply chunk scratch (AMITY_REJECTS_MAX) */
    notify_rejects_stats_t stats;             /**< counters */
};

int
notify_rejects_new(notify_rejects_t **out, size_t n_shards, notify_outbox_t *outbox)
{
    notify_rejects_t *self;
    size_t i;

    AMITY_ASSERT(out && outbox && n_shards >= 1);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->n_shards = n_shards;
    self->out = outbox;
    self->next_id = NOTIFY_REJECTS_REQ_BASE;
    self->names = calloc(n_shards, sizeof(*self->names));
    self->chunk = calloc(AMITY_REJECTS_MAX, sizeof(*self->chunk));
    if (!self->names || !self->chunk) {
        notify_rejects_destroy(&self);
        return AMITY_ENOMEM;
    }
    for (i = 0; i < n_shards; i++) {
        (void)snprintf(self->names[i], S_NAME_MAX, "shard %zu", i);
    }
    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        s_req_t *r = &self->reqs[i];

        amity_buf_init(&r->arena);
        r->done = calloc(n_shards, sizeof(*r->done));
        r->deadline = calloc(n_shards, sizeof(*r->deadline));
        if (!r->done || !r->deadline) {
            notify_rejects_destroy(&self);
            return AMITY_ENOMEM;
        }
    }
    *out = self;
    return 0;
}

void
notify_rejects_destroy(notify_rejects_t **self_p)
{
    notify_rejects_t *self;
    size_t i;

    AMITY_ASSERT(self_p);
    self = *self_p;
    if (!self) {
        return;
    }
    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        free(self->reqs[i].done);
        free(self->reqs[i].deadline);
        free(self->reqs[i].items);
        amity_buf_clear(&self->reqs[i].arena);
    }
    free(self->names);
    free(self->chunk);
    free(self);
    *self_p = NULL;
}

void
notify_rejects_set_shard_name(notify_rejects_t *self, size_t shard, const char *name)
{
    AMITY_ASSERT(self && name && shard < self->n_shards);
    (void)snprintf(self->names[shard], S_NAME_MAX, "shard %zu (%s)", shard, name);
}

/*  Frees what a finished request gathered and frees its slot. */
static void
s_release(s_req_t *r)
{
    free(r->items);
    r->items = NULL;
    r->n_items = 0;
    r->cap_items = 0;
    amity_buf_clear(&r->arena);
    r->used = false;
}

static int
s_send_error(notify_rejects_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
             const char *why)
{
    amity_msg_t m;
    int rc;

    amity_msg_init(&m);
    m.type = AMITY_MSG_ERROR;
    m.req = req;
    m.why = amity_view_str(why);
    rc = notify_outbox_add(self->out, NOTIFY_TO_CLIENT, 0, rid, rid_len, &m);
    return rc == AMITY_ENOMEM ? rc : 0;
}

/*  Ends request r with `error` {why} to its client. */
static int
s_fail(notify_rejects_t *self, s_req_t *r, const char *why)
{
    int rc;

    self->stats.n_failed++;
    amity_log_warn_rl(5, "client: rejects req=%llu failed: %s", (unsigned long long)r->client_req,
                      why);
    rc = s_send_error(self, r->rid, r->rid_len, r->client_req, why);
    s_release(r);
    return rc;
}

/*  Asks shard for r's next page (after: the previous page's next). */
static int
s_ask(notify_rejects_t *self, s_req_t *r, size_t shard, amity_view_t after, int64_t now_ms)
{
    amity_msg_t m;
    int rc;

    amity_msg_init(&m);
    m.type = AMITY_MSG_REJREQ;
    m.req = r->id;
    if (r->office[0]) {
        m.office = amity_view_str(r->office);
    }
    m.after = after;
    m.limit = AMITY_REJECTS_MAX;
    r->deadline[shard] = now_ms + NOTIFY_REJECTS_TIMEOUT_MS;
    rc = notify_outbox_add(self->out, NOTIFY_TO_SHARD, shard, NULL, 0, &m);
    return rc == AMITY_ENOMEM ? rc : 0;
}

int
notify_rejects_start(notify_rejects_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
                     amity_view_t office, uint64_t limit, int64_t now_ms)
{
    amity_view_t none = { NULL, 0 };
    s_req_t *r = NULL;
    size_t i;
    int rc;

    AMITY_ASSERT(self);
    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX && !r; i++) {
        if (!self->reqs[i].used) {
            r = &self->reqs[i];
        }
    }
    if (!r) {
        self->stats.n_busy++;
        amity_log_warn_rl(10, "client: rejects refused: %d requests already running",
                          NOTIFY_REJECTS_PENDING_MAX);
        return s_send_error(self, rid, rid_len, req,
                            "rejects: too many listings running at once; retry in a moment");
    }
    if (rid_len > NOTIFY_RID_MAX || (office.ptr && office.len > AMITY_OFFICE_MAX)) {
        return s_send_error(self, rid, rid_len, req, "office: not a valid office id");
    }
    self->stats.n_requests++;
    r->used = true;
    r->id = ++self->next_id;
    r->client_req = req;
    memcpy(r->rid, rid, rid_len);
    r->rid_len = rid_len;
    r->office[0] = '\0';
    if (office.ptr && office.len > 0) {
        memcpy(r->office, office.ptr, office.len);
        r->office[office.len] = '\0';
    }
    r->chunk = (limit == 0 || limit > AMITY_REJECTS_MAX) ? AMITY_REJECTS_MAX : (size_t)limit;
    r->n_items = 0;
    for (i = 0; i < self->n_shards; i++) {
        r->done[i] = false;
        rc = s_ask(self, r, i, none, now_ms);
        if (rc != 0) {
            s_release(r);
            return rc;
        }
    }
    return 0;
}

static s_req_t *
s_find(notify_rejects_t *self, uint64_t id)
{
    size_t i;

    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        if (self->reqs[i].used && self->reqs[i].id == id) {
            return &self->reqs[i];
        }
    }
    return NULL;
}

bool
notify_rejects_owns(const notify_rejects_t *self, uint64_t req)
{
    AMITY_ASSERT(self);
    return s_find((notify_rejects_t *)(uintptr_t)self, req) != NULL;
}

/*  By time; ties (the same millisecond) by shard, then arrival, which
 *  within one shard is key order (office, time, counter). */
static int
s_item_cmp(const void *a, const void *b)
{
    const s_item_t *x = a, *y = b;

    if (x->ts != y->ts) {
        return x->ts < y->ts ? -1 : 1;
    }
    if (x->shard != y->shard) {
        return x->shard < y->shard ? -1 : 1;
    }
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static amity_view_t
s_view(const amity_buf_t *b, size_t off, size_t len)
{
    amity_view_t v = { (const uint8_t *)"", 0 };

    if (len > 0) {
        v.ptr = b->data + off;
        v.len = len;
    }
    return v;
}

/*  Every shard sent its last page: the items, by time, in chunks. */
static int
s_finish(notify_rejects_t *self, s_req_t *r)
{
    amity_msg_t m;
    size_t i = 0;
    int rc;

    if (r->n_items > 1) {
        qsort(r->items, r->n_items, sizeof(*r->items), s_item_cmp);
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_REJECTS;
    m.req = r->client_req;
    m.rejects = self->chunk;
    do {
        size_t k = 0, bytes = 0;

        while (i < r->n_items && k < r->chunk && bytes < NOTIFY_REJECTS_CHUNK_BYTES) {
            const s_item_t *it = &r->items[i++];
            amity_reject_item_t *out = &self->chunk[k++];
            size_t at = it->off;

            out->office = s_view(&r->arena, at, it->office_len);
            at += it->office_len;
            out->id = s_view(&r->arena, at, it->id_len);
            at += it->id_len;
            out->why = s_view(&r->arena, at, it->why_len);
            at += it->why_len;
            out->rec = s_view(&r->arena, at, it->rec_len);
            out->ts = it->ts;
            bytes += it->office_len + it->id_len + it->why_len + it->rec_len + 32;
        }
        m.n_rejects = k;
        m.more = i < r->n_items;
        rc = notify_outbox_add(self->out, NOTIFY_TO_CLIENT, 0, r->rid, r->rid_len, &m);
        if (rc != 0) {
            if (rc == AMITY_ENOMEM) {
                s_release(r);
                return rc;
            }
            break; /* not encodable (cannot happen: checked on the way in) */
        }
    } while (i < r->n_items);
    self->stats.n_served++;
    amity_log_debug("client: rejects req=%llu served items=%zu office=%s",
                    (unsigned long long)r->client_req, r->n_items,
                    r->office[0] ? r->office : "(all)");
    s_release(r);
    return 0;
}

/*  Appends one page's items to r. Returns 0, AMITY_ENOMEM, or AMITY_EFULL
 *  when the request's bounds are passed. */
static int
s_take_page(s_req_t *r, size_t shard, const amity_msg_t *m)
{
    size_t i;

    if (r->n_items + m->n_rejects > NOTIFY_REJECTS_ITEMS_MAX) {
        return AMITY_EFULL;
    }
    if (r->n_items + m->n_rejects > r->cap_items) {
        size_t cap = r->cap_items ? r->cap_items : 1024;
        s_item_t *items;

        while (cap < r->n_items + m->n_rejects) {
            cap *= 2;
        }
        items = realloc(r->items, cap * sizeof(*items));
        if (!items) {
            return AMITY_ENOMEM;
        }
        r->items = items;
        r->cap_items = cap;
    }
    for (i = 0; i < m->n_rejects; i++) {
        const amity_reject_item_t *in = &m->rejects[i];
        s_item_t *it = &r->items[r->n_items];
        size_t need = in->office.len + in->id.len + in->why.len + in->rec.len;

        if (r->arena.len + need > NOTIFY_REJECTS_BYTES_MAX) {
            return AMITY_EFULL;
        }
        it->ts = in->ts;
        it->shard = shard;
        it->seq = r->n_items;
        it->off = r->arena.len;
        it->office_len = in->office.len;
        it->id_len = in->id.len;
        it->why_len = in->why.len;
        it->rec_len = in->rec.len;
        if ((in->office.len && amity_buf_append(&r->arena, in->office.ptr, in->office.len)) ||
            (in->id.len && amity_buf_append(&r->arena, in->id.ptr, in->id.len)) ||
            (in->why.len && amity_buf_append(&r->arena, in->why.ptr, in->why.len)) ||
            (in->rec.len && amity_buf_append(&r->arena, in->rec.ptr, in->rec.len))) {
            return AMITY_ENOMEM;
        }
        r->n_items++;
    }
    return 0;
}

int
notify_rejects_on_shard(notify_rejects_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms)
{
    char why[AMITY_WHY_MAX + S_NAME_MAX + 64], text[AMITY_WHY_MAX];
    s_req_t *r;
    size_t i;
    int rc;

    AMITY_ASSERT(self && m && shard < self->n_shards);
    r = s_find(self, m->req);
    if (!r || r->done[shard]) {
        self->stats.n_stale++;
        return 0;
    }
    if (m->type == AMITY_MSG_ERROR) {
        (void)amity_text_sanitize(text, sizeof(text), (const char *)m->why.ptr, m->why.len);
        (void)snprintf(why, sizeof(why), "rejects: %s refused: %s", self->names[shard], text);
        return s_fail(self, r, why);
    }
    if (m->type != AMITY_MSG_REJECTS) {
        self->stats.n_stale++;
        return 0;
    }
    self->stats.n_pages++;
    rc = s_take_page(r, shard, m);
    if (rc == AMITY_ENOMEM) {
        s_release(r);
        return rc;
    }
    if (rc != 0) {
        (void)snprintf(why, sizeof(why),
                       "rejects: more than %d rejected records (or %zu MiB) to list at once; "
                       "list one office at a time (--office)",
                       NOTIFY_REJECTS_ITEMS_MAX, NOTIFY_REJECTS_BYTES_MAX >> 20);
        return s_fail(self, r, why);
    }
    if (m->more) {
        if (!m->next.ptr) {
            (void)snprintf(why, sizeof(why), "rejects: %s sent a page with more but no next",
                           self->names[shard]);
            return s_fail(self, r, why);
        }
        return s_ask(self, r, shard, m->next, now_ms);
    }
    r->done[shard] = true;
    for (i = 0; i < self->n_shards; i++) {
        if (!r->done[i]) {
            return 0;
        }
    }
    return s_finish(self, r);
}

int
notify_rejects_tick(notify_rejects_t *self, int64_t now_ms)
{
    char why[512];
    size_t i, k;
    int rc;

    AMITY_ASSERT(self);
    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        s_req_t *r = &self->reqs[i];
        size_t at = 0;
        int n_late = 0;

        if (!r->used) {
            continue;
        }
        for (k = 0; k < self->n_shards; k++) {
            if (!r->done[k] && now_ms >= r->deadline[k]) {
                int n = snprintf(why + at, sizeof(why) - at, "%s%s", n_late ? ", " : "",
                                 self->names[k]);
                if (n > 0 && (size_t)n < sizeof(why) - at) {
                    at += (size_t)n;
                }
                n_late++;
            }
        }
        if (n_late > 0) {
            char text[sizeof(why) + 128];

            (void)snprintf(text, sizeof(text),
                           "rejects: %s did not answer within %d ms (is its aggregate running?)",
                           why, NOTIFY_REJECTS_TIMEOUT_MS);
            rc = s_fail(self, r, text);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int64_t
notify_rejects_deadline(const notify_rejects_t *self)
{
    int64_t next = INT64_MAX;
    size_t i, k;

    AMITY_ASSERT(self);
    for (i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        const s_req_t *r = &self->reqs[i];

        for (k = 0; r->used && k < self->n_shards; k++) {
            if (!r->done[k] && r->deadline[k] < next) {
                next = r->deadline[k];
            }
        }
    }
    return next;
}

const notify_rejects_stats_t *
notify_rejects_stats(const notify_rejects_t *self)
{
    AMITY_ASSERT(self);
    return &self->stats;
}
