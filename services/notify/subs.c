/*  subs: the subscriber table and the fan-out of changed sums.
 *
 *  Subscribers live in a slot array (free slots chained for reuse); a map
 *  from routing id to slot number finds them. The map cannot delete, so a
 *  forgotten id maps to -1, and the map is rebuilt from the live slots when
 *  such dead ids outnumber them (ROUTER gives every new connection a new id).
 */
#include "subs.h"

#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/map.h"

typedef struct {
    bool used;                   /**< slot holds a subscriber */
    uint8_t rid[NOTIFY_RID_MAX]; /**< routing id */
    size_t rid_len;              /**< its bytes */
    amity_view_t *prefixes;      /**< [n_prefixes], pointing into bytes */
    size_t n_prefixes;           /**< prefixes */
    uint8_t *bytes;              /**< the prefixes' bytes, one heap block */
    amity_peer_t *peer;          /**< the key behind rid (heap copy), NULL: unrestricted */
    uint64_t last_sent;          /**< seq of the last snap/upd sent to it */
    int64_t heard_ms;            /**< when it last sent anything */
    size_t next_free;            /**< free list link when !used */
} s_sub_t;

struct notify_subs {
    size_t max;          /**< most live subscribers */
    s_sub_t *slots;      /**< [n_slots] */
    size_t n_slots;      /**< slots in use or free-listed */
    size_t cap_slots;    /**< slots allocated */
    size_t free_head;    /**< first free slot, SIZE_MAX when none */
    size_t n_live;       /**< live subscribers */
    size_t n_dead;       /**< ids in by_rid that map to -1 */
    amity_map_t *by_rid; /**< routing id -> int64 slot, -1 when forgotten */
    amity_kv_t *kv;      /**< fan-out scratch: one subscriber's changes */
    size_t cap_kv;       /**< entries allocated in kv */
};

/*  Looks rid up: -2 when never seen (or since the last rebuild), -1 when
 *  forgotten, else its slot. */
static int64_t
s_slot_of(const notify_subs_t *self, const uint8_t *rid, size_t rid_len)
{
    const void *v = amity_map_find(self->by_rid, rid, rid_len);
    int64_t slot;

    if (!v) {
        return -2;
    }
    memcpy(&slot, v, sizeof(slot));
    return slot;
}

static int
s_map_set(notify_subs_t *self, const uint8_t *rid, size_t rid_len, int64_t slot)
{
    void *v = amity_map_upsert(self->by_rid, rid, rid_len, NULL);

    if (!v) {
        return AMITY_ENOMEM;
    }
    memcpy(v, &slot, sizeof(slot));
    return 0;
}

int
notify_subs_new(notify_subs_t **out, size_t max)
{
    notify_subs_t *self;

    AMITY_ASSERT(out && max >= 1);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->max = max;
    self->free_head = SIZE_MAX;
    if (amity_map_new(&self->by_rid, sizeof(int64_t)) != 0) {
        free(self);
        return AMITY_ENOMEM;
    }
    *out = self;
    return 0;
}

static void
s_sub_free(s_sub_t *s)
{
    free(s->prefixes);
    free(s->bytes);
    free(s->peer);
    s->prefixes = NULL;
    s->bytes = NULL;
    s->peer = NULL;
    s->n_prefixes = 0;
}

/*  Copies peer into s (NULL clears it). */
static int
s_set_peer(s_sub_t *s, const amity_peer_t *peer)
{
    amity_peer_t *copy = NULL;

    if (peer) {
        copy = malloc(sizeof(*copy));
        if (!copy) {
            return AMITY_ENOMEM;
        }
        *copy = *peer;
    }
    free(s->peer);
    s->peer = copy;
    return 0;
}

void
notify_subs_destroy(notify_subs_t **self_p)
{
    notify_subs_t *self;
    size_t i;

    AMITY_ASSERT(self_p);
    self = *self_p;
    if (!self) {
        return;
    }
    for (i = 0; i < self->n_slots; i++) {
        s_sub_free(&self->slots[i]);
    }
    free(self->slots);
    free(self->kv);
    amity_map_destroy(&self->by_rid);
    free(self);
    *self_p = NULL;
}

/*  Copies prefixes into s (replacing what it had). */
static int
s_set_prefixes(s_sub_t *s, const amity_view_t *prefixes, size_t n)
{
    size_t total = 0, i, at = 0;
    amity_view_t *views;
    uint8_t *bytes;

    for (i = 0; i < n; i++) {
        total += prefixes[i].len;
    }
    views = calloc(n ? n : 1, sizeof(*views));
    bytes = malloc(total ? total : 1);
    if (!views || !bytes) {
        free(views);
        free(bytes);
        return AMITY_ENOMEM;
    }
    for (i = 0; i < n; i++) {
        if (prefixes[i].len) {
            memcpy(bytes + at, prefixes[i].ptr, prefixes[i].len);
        }
        views[i].ptr = bytes + at;
        views[i].len = prefixes[i].len;
        at += prefixes[i].len;
    }
    s_sub_free(s);
    s->prefixes = views;
    s->bytes = bytes;
    s->n_prefixes = n;
    return 0;
}

/*  A free slot (from the free list or a new one), or SIZE_MAX. */
static size_t
s_take_slot(notify_subs_t *self)
{
    size_t i;

    if (self->free_head != SIZE_MAX) {
        i = self->free_head;
        self->free_head = self->slots[i].next_free;
        return i;
    }
    if (self->n_slots == self->cap_slots) {
        size_t cap = self->cap_slots ? self->cap_slots * 2 : 16;
        s_sub_t *slots = realloc(self->slots, cap * sizeof(*slots));

        if (!slots) {
            return SIZE_MAX;
        }
        memset(slots + self->cap_slots, 0, (cap - self->cap_slots) * sizeof(*slots));
        self->slots = slots;
        self->cap_slots = cap;
    }
    return self->n_slots++;
}

static void
s_give_slot(notify_subs_t *self, size_t i)
{
    s_sub_free(&self->slots[i]);
    self->slots[i].used = false;
    self->slots[i].next_free = self->free_head;
    self->free_head = i;
}

int
notify_subs_put(notify_subs_t *self, const uint8_t *rid, size_t rid_len,
                const amity_view_t *prefixes, size_t n_prefixes, const amity_peer_t *peer,
                uint64_t seq, int64_t now_ms)
{
    int64_t slot;
    size_t i;
    s_sub_t *s;
    int rc;

    AMITY_ASSERT(self && (prefixes || n_prefixes == 0));
    if (!rid || rid_len == 0 || rid_len > NOTIFY_RID_MAX) {
        return AMITY_EINVAL;
    }
    slot = s_slot_of(self, rid, rid_len);
    if (slot >= 0) {
        s = &self->slots[slot];
        rc = s_set_prefixes(s, prefixes, n_prefixes);
        if (rc == 0) {
            rc = s_set_peer(s, peer);
        }
        if (rc != 0) {
            return rc;
        }
        s->last_sent = seq;
        s->heard_ms = now_ms;
        return 0;
    }
    if (self->n_live >= self->max) {
        return AMITY_EFULL;
    }
    i = s_take_slot(self);
    if (i == SIZE_MAX) {
        return AMITY_ENOMEM;
    }
    s = &self->slots[i];
    memset(s, 0, sizeof(*s));
    rc = s_set_prefixes(s, prefixes, n_prefixes);
    if (rc == 0) {
        rc = s_set_peer(s, peer);
    }
    if (rc == 0) {
        rc = s_map_set(self, rid, rid_len, (int64_t)i);
    }
    if (rc != 0) {
        s_give_slot(self, i);
        return rc;
    }
    if (slot == -1) {
        self->n_dead--;
    }
    memcpy(s->rid, rid, rid_len);
    s->rid_len = rid_len;
    s->used = true;
    s->last_sent = seq;
    s->heard_ms = now_ms;
    self->n_live++;
    return 0;
}

int
notify_subs_touch(notify_subs_t *self, const uint8_t *rid, size_t rid_len, int64_t now_ms,
                  uint64_t *last_sent)
{
    int64_t slot;

    AMITY_ASSERT(self && last_sent);
    if (!rid || rid_len == 0 || rid_len > NOTIFY_RID_MAX) {
        return AMITY_ENOTFOUND;
    }
    slot = s_slot_of(self, rid, rid_len);
    if (slot < 0) {
        return AMITY_ENOTFOUND;
    }
    self->slots[slot].heard_ms = now_ms;
    *last_sent = self->slots[slot].last_sent;
    return 0;
}

/*  Rebuilds by_rid from the live slots once forgotten ids dominate it. */
static int
s_maybe_rebuild(notify_subs_t *self)
{
    size_t i;
    int rc;

    if (self->n_dead <= self->n_live + 1024) {
        return 0;
    }
    amity_map_reset(self->by_rid);
    self->n_dead = 0;
    for (i = 0; i < self->n_slots; i++) {
        if (self->slots[i].used) {
            rc = s_map_set(self, self->slots[i].rid, self->slots[i].rid_len, (int64_t)i);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

/*  Forgets the subscriber in slot i. */
static void
s_forget(notify_subs_t *self, size_t i)
{
    s_sub_t *s = &self->slots[i];

    /* the id is in the map, so this overwrites without inserting */
    (void)s_map_set(self, s->rid, s->rid_len, -1);
    self->n_dead++;
    self->n_live--;
    s_give_slot(self, i);
}

int
notify_subs_remove(notify_subs_t *self, const uint8_t *rid, size_t rid_len)
{
    int64_t slot;

    AMITY_ASSERT(self);
    if (!rid || rid_len == 0 || rid_len > NOTIFY_RID_MAX) {
        return AMITY_ENOTFOUND;
    }
    slot = s_slot_of(self, rid, rid_len);
    if (slot < 0) {
        return AMITY_ENOTFOUND;
    }
    s_forget(self, (size_t)slot);
    /* a failed rebuild leaves a map that is merely large: ignore */
    (void)s_maybe_rebuild(self);
    return 0;
}

size_t
notify_subs_expire(notify_subs_t *self, int64_t now_ms)
{
    size_t i, n = 0;

    AMITY_ASSERT(self);
    for (i = 0; i < self->n_slots; i++) {
        if (self->slots[i].used && now_ms - self->slots[i].heard_ms >= NOTIFY_SUB_TIMEOUT_MS) {
            s_forget(self, i);
            n++;
        }
    }
    if (n > 0) {
        (void)s_maybe_rebuild(self);
    }
    return n;
}

int
notify_subs_revalidate(notify_subs_t *self, notify_peer_fn lookup, void *arg)
{
    const amity_peer_t *now;
    size_t i;
    int n = 0;

    AMITY_ASSERT(self && lookup);
    for (i = 0; i < self->n_slots; i++) {
        s_sub_t *s = &self->slots[i];

        if (!s->used || !s->peer) {
            continue;
        }
        now = lookup(arg, s->peer->public_txt);
        if (!now) {
            s_forget(self, i);
            n++;
        } else if (s_set_peer(s, now) != 0) {
            return AMITY_ENOMEM;
        }
    }
    if (n > 0) {
        (void)s_maybe_rebuild(self);
    }
    return n;
}

size_t
notify_subs_count(const notify_subs_t *self)
{
    AMITY_ASSERT(self);
    return self->n_live;
}

bool
notify_prefix_match(const amity_view_t *prefixes, size_t n_prefixes, const void *key,
                    size_t key_len)
{
    size_t i;

    for (i = 0; i < n_prefixes; i++) {
        if (prefixes[i].len <= key_len &&
            (prefixes[i].len == 0 || memcmp(prefixes[i].ptr, key, prefixes[i].len) == 0)) {
            return true;
        }
    }
    return false;
}

int
notify_subs_fanout(notify_subs_t *self, const amity_kv_t *changes, size_t n, uint64_t epoch,
                   uint64_t seq, notify_outbox_t *out, size_t *n_sent)
{
    amity_msg_t m;
    size_t i, j, sent = 0;
    int rc = 0;

    AMITY_ASSERT(self && (changes || n == 0) && out);
    if (n_sent) {
        *n_sent = 0;
    }
    if (n == 0 || self->n_live == 0) {
        return 0;
    }
    if (n > self->cap_kv) {
        amity_kv_t *kv = realloc(self->kv, n * sizeof(*kv));

        if (!kv) {
            return AMITY_ENOMEM;
        }
        self->kv = kv;
        self->cap_kv = n;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_UPD;
    m.epoch = epoch;
    m.seq = seq;
    m.kv = self->kv;
    for (i = 0; i < self->n_slots; i++) {
        s_sub_t *s = &self->slots[i];
        size_t k = 0;

        if (!s->used) {
            continue;
        }
        for (j = 0; j < n; j++) {
            if (notify_prefix_match(s->prefixes, s->n_prefixes, changes[j].key.ptr,
                                    changes[j].key.len) &&
                (!s->peer || amity_auth_allows(s->peer, (const char *)changes[j].key.ptr,
                                               changes[j].key.len))) {
                self->kv[k++] = changes[j];
            }
        }
        if (k == 0) {
            continue;
        }
        m.prev = s->last_sent;
        m.n_kv = k;
        rc = notify_outbox_add(out, NOTIFY_TO_CLIENT, 0, s->rid, s->rid_len, &m);
        if (rc != 0) {
            break;
        }
        s->last_sent = seq;
        sent++;
    }
    if (n_sent) {
        *n_sent = sent;
    }
    /* m borrows self->kv: nothing of it to free */
    return rc;
}
