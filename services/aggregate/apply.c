/*  aggregate/apply: folds validated records into the shard's LMDB totals,
 *  one write transaction per batch. No sockets here: the daemon loop
 *  (aggregate.c) feeds batches in and publishes what a commit returns.
 *
 *  Only each record's FINEST keys (MONTH/OFFICE/KIND/GEO0/METRIC, see
 *  amity_keys_finest) are stored in LMDB: every published key of DOMAIN.md
 *  is a sum of finest keys, so the shard keeps all published keys in
 *  memory (`totals`), rolled up from the finest ones when the store opens
 *  and moved by each commit's rolled-up deltas only after that commit
 *  succeeded. Measured (bench/RESULTS.md): writing all 48 keys per record
 *  held the LMDB ceiling to ~20k records/s; finest keys only, ~250k.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "amity/clock.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/map.h"

#include "apply.h"

/*  Records key: office (<= 64) "\0" id (<= 128). */
#define S_RECORD_KEY_MAX (AMITY_OFFICE_MAX + 1 + AMITY_ID_MAX)
/*  Rejects key: office "\0" BE64(ms) BE32(counter). */
#define S_REJECT_KEY_MAX (AMITY_OFFICE_MAX + 1 + 8 + 4)

/*  Per totals key while a batch runs (finest keys in `acc`, published
 *  keys in `pub`). */
typedef struct {
    int64_t delta; /* coalesced change of this batch */
} s_acc_t;

/*  Per published key in memory. */
typedef struct {
    int64_t total; /* committed total (0 stays listed here, not in snapshots) */
} s_total_t;

/*  A published key in a snapshot, before sorting: its first 16 bytes as
 *  two big-endian integers (zero-padded), so that most comparisons of a
 *  sort of millions of keys touch neither the key bytes nor memcmp. */
typedef struct {
    uint64_t p0, p1; /* bytes 0..7 and 8..15 */
    const char *key; /* NUL-terminated, in the totals map's arena */
    int64_t total;   /* its value */
} s_snap_entry_t;

/*  Where one rejects item's bytes sit in the page's byte buffer. */
typedef struct {
    size_t office, id, why, rec; /* offsets */
} s_rej_off_t;

/*  Memory of the last rejects page, reused. */
typedef struct {
    amity_reject_item_t items[AMITY_REJECTS_MAX]; /* the page's items (views fixed up at the end) */
    s_rej_off_t off[AMITY_REJECTS_MAX];           /* their bytes' offsets while the page grows */
    amity_buf_t bytes;                            /* office, id, why and rec of every item */
    amity_buf_t next;                             /* key of the last entry scanned */
    aggregate_rejects_page_t page;                /* what aggregate_db_rejects returns */
} s_rej_t;

struct aggregate_db {
    amity_store_t *store; /* the shard's LMDB environment */
    uint64_t seq;         /* last committed seq */
    uint32_t n_rejects;   /* counter in rejects keys (same-ms uniqueness) */

    /* the batch being applied (borrowed for one aggregate_apply_batch) */
    const aggregate_item_t *items; /* input */
    size_t n_items;                /* input count */

    /* every published key and its committed total: equal to the rollup of
     * the finest totals in LMDB as of the last commit (never ahead of it) */
    amity_map_t *totals; /* published key -> s_total_t */
    bool broken;         /* totals could not follow a commit: the db must be reopened */

    /* per-batch memory, reused across batches */
    amity_map_t *acc;              /* finest key -> s_acc_t (what LMDB gets) */
    amity_map_t *pub;              /* published key -> s_acc_t (what the commit publishes) */
    size_t acc_bytes;              /* estimated encoded size of pub's keys in a totals message */
    aggregate_verdict_t *verdicts; /* one per item */
    size_t *why_off;               /* per verdict: offset of its reason in `text`, or SIZE_MAX */
    size_t verdicts_cap;           /* entries allocated in verdicts and why_off */
    amity_buf_t text;              /* reasons written by this batch */
    amity_kv_t *kv;                /* changed published totals: delta, then new value */
    size_t kv_cap;                 /* entries allocated in kv */
    amity_kv_t *fkv;               /* changed finest totals, sorted: delta, then new value */
    size_t fkv_cap;                /* entries allocated in fkv */
    aggregate_result_t result;     /* what the last batch did */
    uint64_t txn_seq;              /* seq as the running txn leaves it */

    /* scratch */
    amity_buf_t old;                              /* stored record bytes */
    amity_buf_t val;                              /* value read from totals / meta */
    amity_buf_t enc;                              /* encoded reject value */
    amity_record_t rec_new;                       /* decoded incoming record */
    amity_record_t rec_old;                       /* decoded stored record */
    amity_fields_t fields;                        /* fields of a rejected record / reject value */
    amity_delta_t d_new[AMITY_FINEST_MAX];        /* finest contribution of the incoming record */
    amity_delta_t d_old[AMITY_FINEST_MAX];        /* of the stored one (negated) */
    char rolled[AMITY_ROLLUP_MAX][AMITY_KEY_MAX]; /* published keys of one finest key */

    /* snapshot */
    s_snap_entry_t *snap; /* the matching keys, sorted */
    size_t snap_cap;      /* entries allocated in snap */
    amity_kv_t *snap_kv;  /* one chunk */
    size_t snap_kv_cap;   /* entries allocated in snap_kv */

    s_rej_t *rej; /* the last rejects page (NULL until the first) */
};

void
aggregate_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

uint64_t
aggregate_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

/*  int64 from its two's complement bit pattern, without implementation-defined conversion. */
static int64_t
s_i64_from_u64(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX) {
        return (int64_t)u;
    }
    return -(int64_t)(~u) - 1;
}

/*  a + b, saturated (an overflow is logged: totals are then no longer exact). */
static int64_t
s_add_sat(int64_t a, int64_t b, const char *key, size_t key_len)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        amity_log_warn_rl(10, "totals overflow, value saturated key=%.*s", (int)key_len, key);
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

/*  mkdir -p of dir's parents and dir itself (mode 0700). */
static int
s_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        return AMITY_EINVAL;
    }
    memcpy(path, dir, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            char c = path[i];
            path[i] = '\0';
            if (mkdir(path, 0700) != 0 && errno != EEXIST) {
                amity_log_errno("cannot create state directory path=%s", path);
                return AMITY_EIO;
            }
            path[i] = c;
        }
    }
    return 0;
}

static int
s_get_u64(amity_txn_t *txn, amity_buf_t *val, const char *name, uint64_t *out)
{
    int rc = amity_txn_get(txn, AGGREGATE_DB_META, name, strlen(name), val);
    if (rc == AMITY_ENOTFOUND) {
        *out = 0;
        return rc;
    }
    if (rc < 0) {
        return rc;
    }
    if (val->len != 8) {
        amity_log_error("state: meta %s has %zu bytes, expected 8", name, val->len);
        return AMITY_EIO;
    }
    *out = aggregate_be64_get(val->data);
    return 0;
}

static int
s_put_u64(amity_txn_t *txn, const char *name, uint64_t v)
{
    uint8_t be[8];
    aggregate_be64_put(be, v);
    return amity_txn_put(txn, AGGREGATE_DB_META, name, strlen(name), be, sizeof be);
}

static int s_collect_finest(aggregate_db_t *self, size_t *n_out);

/*  Format 1 -> 2, scan of totals: every key (kept to be deleted). */
static int
s_v1_totals_key(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    aggregate_db_t *self = arg;
    (void)val;
    (void)val_len;
    uint8_t len[2] = { (uint8_t)(key_len >> 8), (uint8_t)key_len };
    if (key_len > 0xffff) {
        return AMITY_EIO; /* LMDB keys are at most 511 bytes */
    }
    if (amity_buf_append(&self->old, len, 2) < 0 ||
        amity_buf_append(&self->old, key, key_len) < 0) {
        return AMITY_ENOMEM;
    }
    return 0;
}

/*  Format 1 -> 2, scan of records: each live record's finest deltas into acc. */
static int
s_v1_record(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    aggregate_db_t *self = arg;
    char office[AMITY_OFFICE_MAX + 1];
    char why[AMITY_WHY_MAX];
    const uint8_t *nul = memchr(key, '\0', key_len);
    size_t office_len = nul ? (size_t)(nul - (const uint8_t *)key) : key_len;
    if (!nul || office_len > AMITY_OFFICE_MAX) {
        amity_log_error("state: a records key of %zu bytes has no office \"\\0\" id form; "
                        "cannot migrate",
                        key_len);
        return AMITY_EIO;
    }
    memcpy(office, key, office_len);
    office[office_len] = '\0';
    if (amity_record_decode(val, val_len, &self->rec_old, why, sizeof why) < 0) {
        amity_log_error("state: stored record unreadable office=%s: %s; cannot migrate", office,
                        why);
        return AMITY_EIO;
    }
    int n = amity_keys_finest(&self->rec_old, office, +1, self->d_old);
    if (n < 0) {
        amity_log_error("state: no totals keys for the stored record office=%s id=%s; cannot "
                        "migrate",
                        office, self->rec_old.id);
        return AMITY_EIO;
    }
    for (int i = 0; i < n; i++) {
        const amity_delta_t *d = &self->d_old[i];
        size_t len = strnlen(d->key, sizeof d->key);
        s_acc_t *acc = amity_map_upsert(self->acc, d->key, len, NULL);
        if (!acc) {
            return AMITY_ENOMEM;
        }
        acc->delta = s_add_sat(acc->delta, d->delta, d->key, len);
    }
    return 0;
}

/*  A format 1 store (every published key stored) becomes format 2 (finest
 *  keys only) in the open-time txn: the stored totals are dropped and the
 *  finest ones recomputed from the records, which hold every id's latest
 *  revision (DOMAIN.md: every total is the sum over those). One txn: a
 *  failure leaves the store as it was. */
static int
s_migrate_v1(aggregate_db_t *self, amity_txn_t *txn)
{
    amity_log_info("state: store format 1 (every totals key stored): recomputing the finest "
                   "totals of format %d from the records",
                   AGGREGATE_FORMAT);
    amity_buf_reset(&self->old);
    amity_map_reset(self->acc);
    int rc = amity_txn_scan(txn, AGGREGATE_DB_TOTALS, NULL, 0, NULL, 0, s_v1_totals_key, self);
    size_t n_old = 0;
    for (size_t off = 0; rc == 0 && off + 2 <= self->old.len; n_old++) {
        size_t len = ((size_t)self->old.data[off] << 8) | self->old.data[off + 1];
        rc = amity_txn_del(txn, AGGREGATE_DB_TOTALS, self->old.data + off + 2, len);
        off += 2 + len;
    }
    amity_buf_clear(&self->old); /* can be large: give it back */
    if (rc == 0) {
        rc = amity_txn_scan(txn, AGGREGATE_DB_RECORDS, NULL, 0, NULL, 0, s_v1_record, self);
    }
    size_t n = 0;
    if (rc == 0) {
        rc = s_collect_finest(self, &n);
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        uint8_t be[8];
        aggregate_be64_put(be, (uint64_t)self->fkv[k].val);
        rc = amity_txn_put(txn, AGGREGATE_DB_TOTALS, self->fkv[k].key.ptr, self->fkv[k].key.len, be,
                           sizeof be);
    }
    amity_map_reset(self->acc);
    if (rc == 0) {
        rc = s_put_u64(txn, "format", AGGREGATE_FORMAT);
    }
    if (rc == 0) {
        amity_log_info("state: migrated to format %d: %zu totals keys replaced by %zu finest "
                       "keys",
                       AGGREGATE_FORMAT, n_old, n);
    }
    return rc;
}

/*  Open-time txn: format check (written on a new store; format 1 is
 *  migrated), seq read. */
static int
s_txn_init(amity_txn_t *txn, void *arg)
{
    aggregate_db_t *self = arg;
    uint64_t format = 0;
    int rc = s_get_u64(txn, &self->val, "format", &format);
    if (rc == AMITY_ENOTFOUND) {
        rc = s_put_u64(txn, "format", AGGREGATE_FORMAT);
    } else if (rc == 0 && format == 1) {
        rc = s_migrate_v1(self, txn);
    } else if (rc == 0 && format != AGGREGATE_FORMAT) {
        amity_log_error("state: store format %llu is not supported (this build reads %d, and "
                        "migrates 1)",
                        (unsigned long long)format, AGGREGATE_FORMAT);
        rc = AMITY_EINVAL;
    }
    if (rc < 0) {
        return rc;
    }
    rc = s_get_u64(txn, &self->val, "seq", &self->seq);
    return rc == AMITY_ENOTFOUND ? 0 : rc;
}

/*  Adds delta to every published key that finest_key rolls up to, in the
 *  map `into` (s_acc_t or s_total_t: both one int64). On an insert into
 *  pub, *new_bytes grows by the key's size in a totals message. */
static int
s_rollup_into(aggregate_db_t *self, amity_map_t *into, const char *finest_key, size_t len,
              int64_t delta, size_t *new_bytes)
{
    int n = amity_keys_rollup(finest_key, len, self->rolled, AMITY_ROLLUP_MAX);
    if (n < 0) {
        return n;
    }
    for (int i = 0; i < n; i++) {
        size_t key_len = strnlen(self->rolled[i], AMITY_KEY_MAX);
        int inserted = 0;
        int64_t *v = amity_map_upsert(into, self->rolled[i], key_len, &inserted);
        if (!v) {
            return AMITY_ENOMEM;
        }
        if (inserted && new_bytes) {
            /* str header + key + int64 */
            *new_bytes += key_len + 2 + 9;
        }
        *v = s_add_sat(*v, delta, self->rolled[i], key_len);
    }
    return 0;
}

/*  Open-time view: every finest total rolled up into the totals map. */
static int
s_rebuild_key(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    aggregate_db_t *self = arg;
    if (val_len != 8) {
        amity_log_error("state: total of %.*s has %zu bytes, expected 8", (int)key_len,
                        (const char *)key, val_len);
        return AMITY_EIO;
    }
    int64_t total = s_i64_from_u64(aggregate_be64_get(val));
    int rc = s_rollup_into(self, self->totals, key, key_len, total, NULL);
    if (rc == AMITY_EINVAL) {
        amity_log_error("state: totals key %.*s is not a finest key", (int)key_len,
                        (const char *)key);
        return AMITY_EIO;
    }
    return rc;
}

static int
s_txn_rebuild(amity_txn_t *txn, void *arg)
{
    aggregate_db_t *self = arg;
    amity_map_reset(self->totals);
    return amity_txn_scan(txn, AGGREGATE_DB_TOTALS, NULL, 0, NULL, 0, s_rebuild_key, self);
}

int
aggregate_db_open(aggregate_db_t **out, const char *dir, size_t map_size, bool no_sync)
{
    AMITY_ASSERT(out && dir);
    *out = NULL;
    aggregate_db_t *self = calloc(1, sizeof *self);
    if (!self) {
        return AMITY_ENOMEM;
    }
    amity_buf_init(&self->text);
    amity_buf_init(&self->old);
    amity_buf_init(&self->val);
    amity_buf_init(&self->enc);
    int rc = amity_map_new(&self->acc, sizeof(s_acc_t));
    if (rc == 0) {
        rc = amity_map_new(&self->pub, sizeof(s_acc_t));
    }
    if (rc == 0) {
        rc = amity_map_new(&self->totals, sizeof(s_total_t));
    }
    if (rc < 0) {
        goto fail;
    }
    rc = s_mkdirs(dir);
    if (rc < 0) {
        goto fail;
    }
    amity_store_opts_t opts = {
        .map_size = map_size,
        .no_sync = no_sync,
        .n_dbs = 4,
        .dbs = { "records", "totals", "rejects", "meta" },
    };
    rc = amity_store_open(&self->store, dir, &opts);
    if (rc < 0) {
        goto fail;
    }
    rc = amity_store_update(self->store, s_txn_init, self);
    if (rc < 0) {
        if (rc != AMITY_EINVAL) {
            amity_log_error("state: cannot initialise dir=%s: %s", dir, amity_strerror(rc));
        }
        goto fail;
    }
    rc = amity_store_view(self->store, s_txn_rebuild, self);
    if (rc < 0) {
        amity_log_error("state: cannot roll the stored totals up dir=%s: %s", dir,
                        amity_strerror(rc));
        goto fail;
    }
    *out = self;
    return 0;
fail:
    aggregate_db_destroy(&self);
    return rc;
}

void
aggregate_db_destroy(aggregate_db_t **self_p)
{
    AMITY_ASSERT(self_p);
    aggregate_db_t *self = *self_p;
    if (!self) {
        return;
    }
    amity_store_destroy(&self->store);
    amity_map_destroy(&self->acc);
    amity_map_destroy(&self->pub);
    amity_map_destroy(&self->totals);
    free(self->verdicts);
    free(self->why_off);
    free(self->kv);
    free(self->fkv);
    free(self->snap);
    free(self->snap_kv);
    if (self->rej) {
        amity_buf_clear(&self->rej->bytes);
        amity_buf_clear(&self->rej->next);
        free(self->rej);
    }
    amity_buf_clear(&self->text);
    amity_buf_clear(&self->old);
    amity_buf_clear(&self->val);
    amity_buf_clear(&self->enc);
    free(self);
    *self_p = NULL;
}

uint64_t
aggregate_db_seq(const aggregate_db_t *self)
{
    AMITY_ASSERT(self);
    return self->seq;
}

amity_store_t *
aggregate_db_store(aggregate_db_t *self)
{
    AMITY_ASSERT(self);
    return self->store;
}

int
aggregate_db_total(const aggregate_db_t *self, const char *key, size_t key_len, int64_t *out)
{
    AMITY_ASSERT(self && out && (key || key_len == 0));
    const s_total_t *t = amity_map_find(self->totals, key, key_len);
    *out = t ? t->total : 0;
    return t && t->total != 0 ? 0 : AMITY_ENOTFOUND;
}

size_t
aggregate_db_n_totals(const aggregate_db_t *self)
{
    AMITY_ASSERT(self);
    return amity_map_size(self->totals);
}

/*  Grows the per-item arrays to hold n entries. */
static int
s_reserve_items(aggregate_db_t *self, size_t n)
{
    if (n <= self->verdicts_cap) {
        return 0;
    }
    size_t cap = self->verdicts_cap ? self->verdicts_cap : 256;
    while (cap < n) {
        cap *= 2;
    }
    aggregate_verdict_t *v = realloc(self->verdicts, cap * sizeof *v);
    if (!v) {
        return AMITY_ENOMEM;
    }
    self->verdicts = v;
    size_t *o = realloc(self->why_off, cap * sizeof *o);
    if (!o) {
        return AMITY_ENOMEM;
    }
    self->why_off = o;
    self->verdicts_cap = cap;
    return 0;
}

static void
s_count(aggregate_db_t *self, amity_verdict_status_t status)
{
    switch (status) {
    case AMITY_VERDICT_ACCEPTED:
        self->result.n_accepted++;
        break;
    case AMITY_VERDICT_DUPLICATE:
        self->result.n_duplicate++;
        break;
    default:
        self->result.n_rejected++;
        break;
    }
}

/*  Sets verdict i to status, without a reason of its own. */
static int
s_verdict(aggregate_db_t *self, size_t i, amity_verdict_status_t status)
{
    aggregate_verdict_t *v = &self->verdicts[i];
    v->status = status;
    v->why.ptr = NULL;
    v->why.len = 0;
    self->why_off[i] = SIZE_MAX;
    s_count(self, status);
    return 0;
}

/*  Sets verdict i to rejected with a reason formatted into the batch's
 *  text (an offset now: text may move until the batch ends). */
static int s_reject(aggregate_db_t *self, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_reject(aggregate_db_t *self, size_t i, const char *fmt, ...)
{
    char why[AMITY_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : ((size_t)n >= sizeof why ? sizeof why - 1 : (size_t)n);
    s_verdict(self, i, AMITY_VERDICT_REJECTED);
    self->why_off[i] = self->text.len;
    self->verdicts[i].why.len = len;
    return amity_buf_append(&self->text, why, len);
}

/*  Adds finest deltas[0 .. n) to the batch's coalesced finest deltas (for
 *  LMDB) and their roll-ups to its published deltas (for the commit's
 *  totals message and the in-memory totals). */
static int
s_accumulate(aggregate_db_t *self, const amity_delta_t *deltas, int n)
{
    for (int i = 0; i < n; i++) {
        const amity_delta_t *d = &deltas[i];
        size_t key_len = strnlen(d->key, sizeof d->key);
        s_acc_t *acc = amity_map_upsert(self->acc, d->key, key_len, NULL);
        if (!acc) {
            return AMITY_ENOMEM;
        }
        acc->delta = s_add_sat(acc->delta, d->delta, d->key, key_len);
        int rc = s_rollup_into(self, self->pub, d->key, key_len, d->delta, &self->acc_bytes);
        if (rc < 0) {
            /* amity_keys_finest made the key: it always rolls up */
            return rc == AMITY_ENOMEM ? rc : AMITY_EIO;
        }
    }
    return 0;
}

/*  Keeps a rejected record for the operator: rejects[office "\0" BE64(ms)
 *  BE32(n)] = msgpack {v:1, id, why, ts, rec:bin}, encoded by proto's field
 *  encoder (the only msgpack writer services may use). */
static int
s_put_reject(aggregate_db_t *self, amity_txn_t *txn, const char *office, const char *id,
             size_t id_len, const char *why, size_t why_len, amity_view_t rec)
{
    int64_t now = amity_clock_wall_ms();
    uint64_t ts = now < 0 ? 0 : (uint64_t)now;
    uint8_t key[S_REJECT_KEY_MAX];
    size_t office_len = strlen(office);
    memcpy(key, office, office_len);
    key[office_len] = '\0';
    aggregate_be64_put(key + office_len + 1, ts);
    uint32_t n = self->n_rejects++;
    uint8_t *p = key + office_len + 1 + 8;
    p[0] = (uint8_t)(n >> 24);
    p[1] = (uint8_t)(n >> 16);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;

    amity_fields_t *f = &self->fields;
    f->n_fields = 5;
    f->fields[0] =
        (amity_field_t){ .name = "v", .name_len = 1, .val = { .type = AMITY_VAL_UINT, .as.u = 1 } };
    f->fields[1] =
        (amity_field_t){ .name = "id",
                         .name_len = 2,
                         .val = { .type = AMITY_VAL_STR, .as.s = { .ptr = id, .len = id_len } } };
    f->fields[2] =
        (amity_field_t){ .name = "why",
                         .name_len = 3,
                         .val = { .type = AMITY_VAL_STR, .as.s = { .ptr = why, .len = why_len } } };
    f->fields[3] = (amity_field_t){ .name = "ts",
                                    .name_len = 2,
                                    .val = { .type = AMITY_VAL_UINT, .as.u = ts } };
    f->fields[4] =
        (amity_field_t){ .name = "rec",
                         .name_len = 3,
                         .val = { .type = AMITY_VAL_BIN,
                                  .as.s = { .ptr = (const char *)rec.ptr, .len = rec.len } } };
    amity_buf_reset(&self->enc);
    int rc = amity_fields_encode(f, &self->enc);
    if (rc < 0) {
        return rc == AMITY_ENOMEM ? rc : AMITY_EIO;
    }
    rc = amity_txn_put(txn, AGGREGATE_DB_REJECTS, key, office_len + 1 + 8 + 4, self->enc.data,
                       self->enc.len);
    if (rc == 0) {
        self->result.n_rejects_written++;
    }
    return rc;
}

/*  The id of a record the validator rejected, when it has a string one. */
static void
s_rejected_id(aggregate_db_t *self, amity_view_t rec, const char **id, size_t *id_len)
{
    char why[64];
    *id = "";
    *id_len = 0;
    if (amity_fields_decode(rec.ptr, rec.len, &self->fields, why, sizeof why) < 0) {
        return;
    }
    for (size_t i = 0; i < self->fields.n_fields; i++) {
        const amity_field_t *f = &self->fields.fields[i];
        if (f->name_len == 2 && memcmp(f->name, "id", 2) == 0 && f->val.type == AMITY_VAL_STR) {
            *id = f->val.as.s.ptr;
            *id_len = f->val.as.s.len > AMITY_ID_MAX ? AMITY_ID_MAX : f->val.as.s.len;
            return;
        }
    }
}

/*  A record the validator rejected: kept in rejects, verdict rejected. */
static int
s_apply_rejected(aggregate_db_t *self, amity_txn_t *txn, size_t i)
{
    const aggregate_item_t *it = &self->items[i];
    const char *id;
    size_t id_len;
    s_rejected_id(self, it->rec, &id, &id_len);
    /* copy: the fields' views end with the next decode, the reason does not */
    char id_copy[AMITY_ID_MAX];
    memcpy(id_copy, id, id_len);
    int rc = s_put_reject(self, txn, it->office, id_copy, id_len, (const char *)it->why.ptr,
                          it->why.len, it->rec);
    if (rc < 0) {
        return rc;
    }
    /* the validator's reason travels back as is (a view into the item) */
    rc = s_verdict(self, i, AMITY_VERDICT_REJECTED);
    self->verdicts[i].why = it->why;
    return rc;
}

/*  A checked record: the DESIGN.md revision rules. */
static int
s_apply_ok(aggregate_db_t *self, amity_txn_t *txn, size_t i)
{
    const aggregate_item_t *it = &self->items[i];
    amity_record_t *rn = &self->rec_new;
    amity_record_t *ro = &self->rec_old;
    char why[AMITY_WHY_MAX];
    int rc = amity_record_decode(it->rec.ptr, it->rec.len, rn, why, sizeof why);
    if (rc < 0) {
        amity_log_warn_rl(10, "apply item is not a canonical record office=%s tag=%llu: %s",
                          it->office, (unsigned long long)it->tag, why);
        char reason[AMITY_WHY_MAX];
        int n = snprintf(reason, sizeof reason, "record: not a canonical record (%s)", why);
        size_t len = n < 0 ? 0 : ((size_t)n >= sizeof reason ? sizeof reason - 1 : (size_t)n);
        rc = s_put_reject(self, txn, it->office, "", 0, reason, len, it->rec);
        if (rc < 0) {
            return rc;
        }
        return s_reject(self, i, "%s", reason);
    }

    uint8_t key[S_RECORD_KEY_MAX];
    size_t office_len = strlen(it->office);
    size_t id_len = strnlen(rn->id, sizeof rn->id);
    memcpy(key, it->office, office_len);
    key[office_len] = '\0';
    memcpy(key + office_len + 1, rn->id, id_len);
    size_t key_len = office_len + 1 + id_len;

    /* the keys are derived before anything is written: a record they
     * cannot be derived for is refused alone, not with its whole batch */
    int n_new = 0;
    if (!rn->retract) {
        n_new = amity_keys_finest(rn, it->office, +1, self->d_new);
        if (n_new < 0) {
            amity_log_warn_rl(10, "no totals keys for record office=%s id=%s", it->office, rn->id);
            return s_reject(self, i, "record: its totals keys cannot be derived");
        }
    }

    rc = amity_txn_get(txn, AGGREGATE_DB_RECORDS, key, key_len, &self->old);
    if (rc == AMITY_ENOTFOUND) {
        /* first sight of this id (a retraction is kept as a tombstone) */
        rc = amity_txn_put(txn, AGGREGATE_DB_RECORDS, key, key_len, it->rec.ptr, it->rec.len);
        if (rc < 0) {
            return rc;
        }
        self->result.n_records_written++;
        rc = s_accumulate(self, self->d_new, n_new);
        if (rc < 0) {
            return rc;
        }
        return s_verdict(self, i, AMITY_VERDICT_ACCEPTED);
    }
    if (rc < 0) {
        return rc;
    }
    rc = amity_record_decode(self->old.data, self->old.len, ro, why, sizeof why);
    if (rc < 0) {
        /* our own bytes no longer decode: refuse this id rather than the batch */
        amity_log_error("state: stored record unreadable office=%s id=%s: %s", it->office, rn->id,
                        why);
        return s_reject(self, i, "id: %s cannot be updated: the stored revision is unreadable",
                        rn->id);
    }
    if (rn->rev < ro->rev) {
        return s_verdict(self, i, AMITY_VERDICT_DUPLICATE);
    }
    if (rn->rev == ro->rev) {
        if (self->old.len == it->rec.len && memcmp(self->old.data, it->rec.ptr, it->rec.len) == 0) {
            return s_verdict(self, i, AMITY_VERDICT_DUPLICATE);
        }
        self->result.n_conflicts++;
        char reason[AMITY_WHY_MAX];
        int n = snprintf(reason, sizeof reason,
                         "rev: %llu is already recorded with other content (conflict)",
                         (unsigned long long)rn->rev);
        size_t len = n < 0 ? 0 : ((size_t)n >= sizeof reason ? sizeof reason - 1 : (size_t)n);
        rc = s_put_reject(self, txn, it->office, rn->id, id_len, reason, len, it->rec);
        if (rc < 0) {
            return rc;
        }
        return s_reject(self, i, "%s", reason);
    }
    /* a correction or retraction: old contribution out, new in */
    int n_old = 0;
    if (!ro->retract) {
        n_old = amity_keys_finest(ro, it->office, -1, self->d_old);
        if (n_old < 0) {
            amity_log_error("state: no totals keys for the stored record office=%s id=%s",
                            it->office, rn->id);
            return s_reject(self, i,
                            "id: %s cannot be updated: the stored revision has no totals keys",
                            rn->id);
        }
    }
    rc = amity_txn_put(txn, AGGREGATE_DB_RECORDS, key, key_len, it->rec.ptr, it->rec.len);
    if (rc < 0) {
        return rc;
    }
    self->result.n_records_written++;
    rc = s_accumulate(self, self->d_old, n_old);
    if (rc == 0) {
        rc = s_accumulate(self, self->d_new, n_new);
    }
    if (rc < 0) {
        return rc;
    }
    return s_verdict(self, i, AMITY_VERDICT_ACCEPTED);
}

/*  True when one more record could push this commit's totals message past its bounds. */
static bool
s_batch_full(const aggregate_db_t *self)
{
    /* a correction touches at most 2 x AMITY_DELTAS_MAX keys */
    size_t worst = (size_t)2 * AMITY_DELTAS_MAX;
    return amity_map_size(self->pub) + worst > AGGREGATE_KV_PER_COMMIT ||
           self->acc_bytes + worst * ((size_t)AMITY_KEY_MAX + 11) > AGGREGATE_KV_BYTES_PER_COMMIT;
}

/*  LMDB's key order: bytes, then length. */
static int
s_kv_cmp(const void *a, const void *b)
{
    const amity_kv_t *x = a;
    const amity_kv_t *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    if (c != 0) {
        return c;
    }
    return (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

/*  Fills (*kv)[0 .. *n_out) with the keys of map whose coalesced delta is
 *  not 0 (val = delta; key views into the map, stable while nothing is
 *  inserted), growing *kv as needed. */
static int
s_collect(amity_map_t *map, amity_kv_t **kv, size_t *cap, size_t *n_out)
{
    size_t n_max = amity_map_size(map);
    if (n_max > *cap) {
        amity_kv_t *grown = realloc(*kv, n_max * sizeof *grown);
        if (!grown) {
            return AMITY_ENOMEM;
        }
        *kv = grown;
        *cap = n_max;
    }
    size_t pos = 0, n = 0;
    const char *key;
    size_t key_len;
    void *value;
    while (amity_map_next(map, &pos, &key, &key_len, &value) == 0) {
        const s_acc_t *acc = value;
        if (acc->delta != 0 && n < n_max) {
            (*kv)[n].key.ptr = (const uint8_t *)key;
            (*kv)[n].key.len = key_len;
            (*kv)[n].val = acc->delta;
            n++;
        }
    }
    *n_out = n;
    return 0;
}

/*  self->fkv: the changed finest keys (acc), sorted by key. */
static int
s_collect_finest(aggregate_db_t *self, size_t *n_out)
{
    int rc = s_collect(self->acc, &self->fkv, &self->fkv_cap, n_out);
    if (rc == 0 && *n_out > 1) {
        qsort(self->fkv, *n_out, sizeof *self->fkv, s_kv_cmp);
    }
    return rc;
}

/*  The batch's write transaction. amity_store_update may run it again
 *  (after growing the map), so it starts by forgetting everything a
 *  previous run built. */
static int
s_txn_apply(amity_txn_t *txn, void *arg)
{
    aggregate_db_t *self = arg;
    amity_map_reset(self->acc);
    amity_map_reset(self->pub);
    self->acc_bytes = 0;
    amity_buf_reset(&self->text);
    memset(&self->result, 0, sizeof self->result);

    uint64_t seq = 0;
    int rc = s_get_u64(txn, &self->val, "seq", &seq);
    if (rc < 0 && rc != AMITY_ENOTFOUND) {
        return rc;
    }

    size_t i;
    for (i = 0; i < self->n_items; i++) {
        if (i > 0 && s_batch_full(self)) {
            break;
        }
        const aggregate_item_t *it = &self->items[i];
        if (!it->office || !amity_office_valid(it->office, strlen(it->office))) {
            /* the loop drops such messages; a direct caller gets a verdict */
            rc = s_reject(self, i, "office: not a valid office id");
        } else if (it->ok) {
            rc = s_apply_ok(self, txn, i);
        } else {
            rc = s_apply_rejected(self, txn, i);
        }
        if (rc < 0) {
            return rc;
        }
    }
    self->result.n_done = i;

    /* the changed finest keys, in key order: LMDB then walks its pages in
     * order instead of at random (measured: several times fewer page
     * touches per commit) */
    size_t n_changed = 0;
    rc = s_collect_finest(self, &n_changed);
    if (rc < 0) {
        return rc;
    }
    /* the changed published keys (their new values are set after the
     * commit); not sorted: the totals message does not need it, and at
     * up to AGGREGATE_KV_PER_COMMIT keys the sort cost more than the
     * finest keys' LMDB work */
    size_t n_pub = 0;
    rc = s_collect(self->pub, &self->kv, &self->kv_cap, &n_pub);
    if (rc < 0) {
        return rc;
    }
    /* each changed finest key: read, add, write, once */
    for (size_t k = 0; k < n_changed; k++) {
        amity_kv_t *kv = &self->fkv[k];
        const char *key = (const char *)kv->key.ptr;
        size_t key_len = kv->key.len;
        int64_t total = 0;
        rc = amity_txn_get(txn, AGGREGATE_DB_TOTALS, key, key_len, &self->val);
        if (rc == 0) {
            if (self->val.len != 8) {
                amity_log_error("state: total of %.*s has %zu bytes, expected 8", (int)key_len, key,
                                self->val.len);
                return AMITY_EIO;
            }
            total = s_i64_from_u64(aggregate_be64_get(self->val.data));
        } else if (rc != AMITY_ENOTFOUND) {
            return rc;
        }
        /* kv->val holds the coalesced delta until here */
        kv->val = s_add_sat(total, kv->val, key, key_len);
        if (kv->val == 0) {
            /* absent reads as 0 (as for a key no record ever moved): keep
             * the database to the live totals; the 0 is still published */
            rc = amity_txn_del(txn, AGGREGATE_DB_TOTALS, key, key_len);
            rc = rc == AMITY_ENOTFOUND ? 0 : rc;
        } else {
            uint8_t be[8];
            aggregate_be64_put(be, (uint64_t)kv->val);
            rc = amity_txn_put(txn, AGGREGATE_DB_TOTALS, key, key_len, be, sizeof be);
        }
        if (rc < 0) {
            return rc;
        }
    }
    /* a changed finest key changes at least one published key (its own
     * for a country, MONTH/OFFICE/KIND/all/METRIC otherwise) and back,
     * unless int64 overflow saturated some sums (logged; the totals are
     * then no longer exact): seq moves when either did */
    if (n_pub > 0 || n_changed > 0) {
        seq++;
        rc = s_put_u64(txn, "seq", seq);
        if (rc < 0) {
            return rc;
        }
    }
    self->txn_seq = seq;
    self->result.n_kv = n_pub;
    self->result.n_finest = n_changed;
    return 0;
}

/*  After a commit: the published totals move by the batch's deltas, and
 *  the result's kv gets their new absolute values. */
static int
s_apply_totals(aggregate_db_t *self)
{
    for (size_t k = 0; k < self->result.n_kv; k++) {
        amity_kv_t *kv = &self->kv[k];
        s_total_t *t = amity_map_upsert(self->totals, kv->key.ptr, kv->key.len, NULL);
        if (!t) {
            return AMITY_ENOMEM;
        }
        t->total = s_add_sat(t->total, kv->val, (const char *)kv->key.ptr, kv->key.len);
        kv->val = t->total;
    }
    return 0;
}

/*  After a commit: the result's views (reasons, changed keys). */
static void
s_finish_result(aggregate_db_t *self)
{
    aggregate_result_t *r = &self->result;
    for (size_t i = 0; i < r->n_done; i++) {
        if (self->why_off[i] != SIZE_MAX) {
            self->verdicts[i].why.ptr = self->text.data + self->why_off[i];
        }
    }
    r->verdicts = self->verdicts;
    r->kv = self->kv;
    r->seq = self->txn_seq;
}

int
aggregate_apply_batch(aggregate_db_t *self, const aggregate_item_t *items, size_t n,
                      const aggregate_result_t **out)
{
    AMITY_ASSERT(self && out && (items || n == 0));
    *out = NULL;
    if (self->broken) {
        return AMITY_EIO;
    }
    int rc = s_reserve_items(self, n);
    if (rc < 0) {
        return rc;
    }
    self->items = items;
    self->n_items = n;
    rc = amity_store_update(self->store, s_txn_apply, self);
    self->items = NULL;
    self->n_items = 0;
    if (rc < 0) {
        memset(&self->result, 0, sizeof self->result);
        return rc;
    }
    self->seq = self->txn_seq;
    rc = s_apply_totals(self);
    if (rc < 0) {
        /* committed, but the published totals could not follow: no verdict
         * or totals may go out from a view that is not the store's; the
         * caller stops, and a restart rolls the totals up again */
        amity_log_error("state: committed seq=%llu but the in-memory totals cannot follow (%s); "
                        "reopen the store",
                        (unsigned long long)self->seq, amity_strerror(rc));
        self->broken = true;
        memset(&self->result, 0, sizeof self->result);
        return AMITY_EIO;
    }
    s_finish_result(self);
    *out = &self->result;
    return 0;
}

/*  Bytes [off, off + 8) of a key of len bytes, big-endian, zero-padded. */
static uint64_t
s_be_prefix(const char *key, size_t len, size_t off)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 8; i++) {
        v = (v << 8) | (off + i < len ? (uint8_t)key[off + i] : 0u);
    }
    return v;
}

/*  Snapshot order: LMDB's (bytes, then length). Keys hold no NUL byte, so
 *  equal zero-padded prefixes mean both keys are longer than 16 bytes (or
 *  the same key), and strcmp of the rest orders them. */
static int
s_snap_cmp(const s_snap_entry_t *x, const s_snap_entry_t *y)
{
    if (x->p0 != y->p0) {
        return x->p0 < y->p0 ? -1 : 1;
    }
    if (x->p1 != y->p1) {
        return x->p1 < y->p1 ? -1 : 1;
    }
    return strcmp(x->key + 16, y->key + 16);
}

static int
s_snap_cmp_void(const void *a, const void *b)
{
    return s_snap_cmp(a, b);
}

static void
s_snap_swap(s_snap_entry_t *a, s_snap_entry_t *b)
{
    s_snap_entry_t t = *a;
    *a = *b;
    *b = t;
}

/*  Splits e[0 .. n) (n > 16) around a median-of-three pivot; returns k
 *  with e[0 .. k) <= pivot <= e[k .. n), 0 < k < n. */
static size_t
s_snap_partition(s_snap_entry_t *e, size_t n)
{
    size_t mid = n / 2;
    if (s_snap_cmp(&e[mid], &e[0]) < 0) {
        s_snap_swap(&e[mid], &e[0]);
    }
    if (s_snap_cmp(&e[n - 1], &e[0]) < 0) {
        s_snap_swap(&e[n - 1], &e[0]);
    }
    if (s_snap_cmp(&e[n - 1], &e[mid]) < 0) {
        s_snap_swap(&e[n - 1], &e[mid]);
    }
    s_snap_entry_t pivot = e[mid];
    size_t i = 0, j = n - 1;
    for (;;) {
        while (s_snap_cmp(&e[i], &pivot) < 0) {
            i++;
        }
        while (s_snap_cmp(&pivot, &e[j]) < 0) {
            j--;
        }
        if (i >= j) {
            return j + 1;
        }
        s_snap_swap(&e[i], &e[j]);
        i++;
        j--;
    }
}

static void
s_snap_insertion(s_snap_entry_t *e, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        s_snap_entry_t x = e[i];
        size_t k = i;
        while (k > 0 && s_snap_cmp(&x, &e[k - 1]) < 0) {
            e[k] = e[k - 1];
            k--;
        }
        e[k] = x;
    }
}

/*  An unsorted range of the snapshot index, and how many more times it
 *  may be split before qsort takes over (bad pivots). */
typedef struct {
    size_t lo, hi;
    int depth;
} s_snap_range_t;

/*  Emits snap[*emitted .. done) to cb in chunks of chunk_max (all of it
 *  when last). */
static int
s_snap_emit(aggregate_db_t *self, size_t *emitted, size_t done, size_t n, size_t chunk_max,
            bool last, aggregate_chunk_fn cb, void *arg)
{
    while (done - *emitted >= chunk_max || (last && (*emitted < done || n == 0))) {
        size_t m = done - *emitted < chunk_max ? done - *emitted : chunk_max;
        for (size_t k = 0; k < m; k++) {
            const s_snap_entry_t *e = &self->snap[*emitted + k];
            self->snap_kv[k].key.ptr = (const uint8_t *)e->key;
            self->snap_kv[k].key.len = strlen(e->key);
            self->snap_kv[k].val = e->total;
        }
        *emitted += m;
        int rc = cb(self->seq, self->snap_kv, m, *emitted < n, arg);
        if (rc < 0) {
            return rc;
        }
        if (n == 0) {
            break;
        }
    }
    return 0;
}

/*  Sorts snap[0 .. n) and hands it to cb as it goes: quicksort that always
 *  finishes the leftmost range first, so each chunk is sent as soon as
 *  its keys are in place rather than after the whole sort. A full snapshot
 *  sorts every published key (3.5 M after 10^7 records): with qsort and
 *  memcmp on the key bytes that was 1.9 s of the shard's loop before the
 *  first chunk left, long enough for notify to ask again (it does after
 *  3 s without a chunk) and queue a second full snapshot behind the first. */
static int
s_snap_sort_emit(aggregate_db_t *self, size_t n, size_t chunk_max, aggregate_chunk_fn cb, void *arg)
{
    s_snap_range_t stack[128];
    size_t n_stack = 0;
    size_t done = 0, emitted = 0;
    int depth = 0;
    for (size_t m = n; m > 1; m /= 2) {
        depth += 2;
    }
    if (n > 0) {
        stack[n_stack++] = (s_snap_range_t){ 0, n, depth };
    }
    while (n_stack > 0) {
        s_snap_range_t r = stack[--n_stack];
        s_snap_entry_t *e = self->snap + r.lo;
        size_t len = r.hi - r.lo;
        if (len <= 16) {
            s_snap_insertion(e, len);
        } else if (r.depth == 0 || n_stack + 2 > sizeof stack / sizeof stack[0]) {
            qsort(e, len, sizeof *e, s_snap_cmp_void);
        } else {
            size_t k = s_snap_partition(e, len);
            /* the right part waits below the left one */
            stack[n_stack++] = (s_snap_range_t){ r.lo + k, r.hi, r.depth - 1 };
            stack[n_stack++] = (s_snap_range_t){ r.lo, r.lo + k, r.depth - 1 };
            continue;
        }
        done = r.hi; /* everything left of hi is in its final place */
        int rc = s_snap_emit(self, &emitted, done, n, chunk_max, false, cb, arg);
        if (rc < 0) {
            return rc;
        }
    }
    return s_snap_emit(self, &emitted, n, n, chunk_max, true, cb, arg);
}

int
aggregate_db_snapshot(aggregate_db_t *self, const void *prefix, size_t prefix_len, size_t chunk_max,
                      aggregate_chunk_fn cb, void *arg)
{
    AMITY_ASSERT(self && cb && (prefix || prefix_len == 0));
    if (chunk_max == 0) {
        chunk_max = AGGREGATE_SNAP_CHUNK;
    }
    if (chunk_max > self->snap_kv_cap) {
        amity_kv_t *kv = realloc(self->snap_kv, chunk_max * sizeof *kv);
        if (!kv) {
            return AMITY_ENOMEM;
        }
        self->snap_kv = kv;
        self->snap_kv_cap = chunk_max;
    }
    /* the map changes only when a batch is applied, never during this
     * call: every key is at self->seq, and key views stay valid */
    size_t n_max = amity_map_size(self->totals);
    if (n_max > self->snap_cap) {
        s_snap_entry_t *e = realloc(self->snap, n_max * sizeof *e);
        if (!e) {
            return AMITY_ENOMEM;
        }
        self->snap = e;
        self->snap_cap = n_max;
    }
    size_t pos = 0, n = 0;
    const char *key;
    size_t key_len;
    void *value;
    while (amity_map_next(self->totals, &pos, &key, &key_len, &value) == 0) {
        const s_total_t *t = value;
        if (t->total != 0 && key_len >= prefix_len &&
            (prefix_len == 0 || memcmp(key, prefix, prefix_len) == 0) && n < n_max) {
            self->snap[n++] = (s_snap_entry_t){ .p0 = s_be_prefix(key, key_len, 0),
                                                .p1 = s_be_prefix(key, key_len, 8),
                                                .key = key,
                                                .total = t->total };
        }
    }
    int rc = s_snap_sort_emit(self, n, chunk_max, cb, arg);
    /* a full-store snapshot's index is large: do not keep it */
    if (self->snap_cap > (size_t)4 * AGGREGATE_SNAP_CHUNK) {
        free(self->snap);
        self->snap = NULL;
        self->snap_cap = 0;
    }
    return rc;
}

/*  Rejects page scan state. */
typedef struct {
    s_rej_t *rej;          /* the page being filled */
    const uint8_t *prefix; /* office "\0", or NULL for every office */
    size_t prefix_len;     /* its bytes */
    const void *after;     /* resume after this key (NULL: from the first) */
    size_t after_len;      /* its bytes */
    size_t limit;          /* entries to scan at most */
    size_t n_scanned;      /* entries scanned (items plus skipped ones) */
    amity_fields_t f;      /* the decoded value of the current entry */
} s_rej_scan_t;

/*  Appends n bytes to the page, returning their offset in *off. */
static int
s_rej_put(s_rej_t *rej, const void *p, size_t n, size_t *off)
{
    *off = rej->bytes.len;
    return n > 0 ? amity_buf_append(&rej->bytes, p, n) : 0;
}

static int
s_rej_entry(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    s_rej_scan_t *s = arg;
    s_rej_t *rej = s->rej;
    amity_reject_item_t *it = &rej->items[rej->page.n_items];
    s_rej_off_t *off = &rej->off[rej->page.n_items];
    amity_view_t id = { NULL, 0 }, why = { NULL, 0 }, rec = { NULL, 0 };
    uint64_t v = 0;
    bool have_ts = false;
    char dwhy[96];

    if (s->n_scanned == s->limit || rej->bytes.len >= AGGREGATE_REJECTS_PAGE_BYTES) {
        rej->page.more = true; /* this entry is the first of the next page */
        return 1;
    }
    s->n_scanned++;
    /* the next page resumes after this key, whatever its value holds */
    if (amity_buf_set(&rej->next, key, key_len) < 0) {
        return AMITY_ENOMEM;
    }
    const uint8_t *nul = memchr(key, '\0', key_len);
    if (!nul || key_len != (size_t)(nul - (const uint8_t *)key) + 1 + 8 + 4) {
        amity_log_warn_rl(10,
                          "state: a rejects key of %zu bytes has no office \"\\0\" time "
                          "counter form; skipped",
                          key_len);
        return 0;
    }
    if (amity_fields_decode(val, val_len, &s->f, dwhy, sizeof dwhy) < 0) {
        amity_log_warn_rl(10, "state: a rejects value does not decode (%s); skipped", dwhy);
        return 0;
    }
    it->ts = aggregate_be64_get(nul + 1);
    for (size_t i = 0; i < s->f.n_fields; i++) {
        const amity_field_t *x = &s->f.fields[i];
        amity_view_t sv = { (const uint8_t *)x->val.as.s.ptr, x->val.as.s.len };
        if (x->name_len == 1 && x->name[0] == 'v' && x->val.type == AMITY_VAL_UINT) {
            v = x->val.as.u;
        } else if (x->name_len == 2 && memcmp(x->name, "id", 2) == 0 &&
                   x->val.type == AMITY_VAL_STR) {
            id = sv;
        } else if (x->name_len == 3 && memcmp(x->name, "why", 3) == 0 &&
                   x->val.type == AMITY_VAL_STR) {
            why = sv;
        } else if (x->name_len == 2 && memcmp(x->name, "ts", 2) == 0 &&
                   x->val.type == AMITY_VAL_UINT) {
            it->ts = x->val.as.u;
            have_ts = true;
        } else if (x->name_len == 3 && memcmp(x->name, "rec", 3) == 0 &&
                   x->val.type == AMITY_VAL_BIN) {
            rec = sv;
        }
    }
    if (v != 1 || !have_ts || !why.ptr || !rec.ptr || id.len > AMITY_STR_MAX ||
        why.len > AMITY_STR_MAX) {
        amity_log_warn_rl(10, "state: a rejects value lacks v 1, id, why, ts or rec; skipped");
        return 0;
    }
    /* views into the value end with the scan: copy, and fix the views up
     * once the page's bytes stop moving */
    size_t office_len = (size_t)(nul - (const uint8_t *)key);
    it->office.len = office_len;
    it->id.len = id.len;
    it->why.len = why.len;
    it->rec.len = rec.len > AMITY_REJECT_REC_MAX ? AMITY_REJECT_REC_MAX : rec.len;
    if (s_rej_put(rej, key, office_len, &off->office) < 0 ||
        s_rej_put(rej, id.ptr, id.len, &off->id) < 0 ||
        s_rej_put(rej, why.ptr, why.len, &off->why) < 0 ||
        s_rej_put(rej, rec.ptr, it->rec.len, &off->rec) < 0) {
        return AMITY_ENOMEM;
    }
    rej->page.n_items++;
    return 0;
}

static int
s_txn_rejects(amity_txn_t *txn, void *arg)
{
    s_rej_scan_t *s = arg;
    /* amity_store_view never re-runs fn, but start clean all the same */
    amity_buf_reset(&s->rej->bytes);
    amity_buf_reset(&s->rej->next);
    s->rej->page.n_items = 0;
    s->rej->page.more = false;
    s->n_scanned = 0;
    return amity_txn_scan(txn, AGGREGATE_DB_REJECTS, s->prefix, s->prefix_len, s->after,
                          s->after_len, s_rej_entry, s);
}

/*  A view of len bytes at off in b (never NULL-based arithmetic). */
static amity_view_t
s_rej_view(const amity_buf_t *b, size_t off, size_t len)
{
    amity_view_t v = { (const uint8_t *)"", 0 };
    if (len > 0) {
        v.ptr = b->data + off;
        v.len = len;
    }
    return v;
}

int
aggregate_db_rejects(aggregate_db_t *self, const char *office, size_t office_len, const void *after,
                     size_t after_len, size_t limit, const aggregate_rejects_page_t **out)
{
    AMITY_ASSERT(self && out && (office || office_len == 0) && (after || after_len == 0));
    *out = NULL;
    uint8_t prefix[AMITY_OFFICE_MAX + 1];
    if (office_len > 0 &&
        (office_len > AMITY_OFFICE_MAX || !amity_office_valid(office, office_len))) {
        return AMITY_EINVAL;
    }
    if (!self->rej) {
        self->rej = calloc(1, sizeof *self->rej);
        if (!self->rej) {
            return AMITY_ENOMEM;
        }
        amity_buf_init(&self->rej->bytes);
        amity_buf_init(&self->rej->next);
    }
    s_rej_t *rej = self->rej;
    s_rej_scan_t *s = calloc(1, sizeof *s); /* the field list is large for a stack */
    if (!s) {
        return AMITY_ENOMEM;
    }
    s->rej = rej;
    if (office_len > 0) {
        memcpy(prefix, office, office_len);
        prefix[office_len] = '\0';
        s->prefix = prefix;
        s->prefix_len = office_len + 1;
    }
    s->after = after_len > 0 ? after : NULL;
    s->after_len = after_len;
    s->limit = (limit == 0 || limit > AMITY_REJECTS_MAX) ? AMITY_REJECTS_MAX : limit;
    int rc = amity_store_view(self->store, s_txn_rejects, s);
    free(s);
    if (rc < 0) {
        rej->page.n_items = 0;
        return rc;
    }
    for (size_t i = 0; i < rej->page.n_items; i++) {
        amity_reject_item_t *it = &rej->items[i];
        const s_rej_off_t *off = &rej->off[i];
        it->office = s_rej_view(&rej->bytes, off->office, it->office.len);
        it->id = s_rej_view(&rej->bytes, off->id, it->id.len);
        it->why = s_rej_view(&rej->bytes, off->why, it->why.len);
        it->rec = s_rej_view(&rej->bytes, off->rec, it->rec.len);
    }
    rej->page.items = rej->items;
    rej->page.next.ptr = rej->next.len > 0 ? rej->next.data : NULL;
    rej->page.next.len = rej->next.len;
    *out = &rej->page;
    return 0;
}
