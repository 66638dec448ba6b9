/*  bench_lmdb: the LMDB ceiling. Applies the workload's records straight
 *  through amity_store, doing the storage work an aggregate shard does and
 *  nothing else: per batch of N records ONE durable write transaction; per
 *  record a records-DB lookup (dedup) and put of its canonical bytes, its
 *  finest deltas (amity_keys_finest) coalesced per totals key in an
 *  amity_map; then each changed key read, added and written once, in key
 *  order, and meta "seq" moved by one. No sockets, no decoding, no
 *  validation, no roll-up of the published keys in memory.
 *
 *    amity-bench_lmdb [--dir DIR] [--records N(200k)] [--batch N(4096)]
 *        [--preload N(0)] [--preload-secs S(0: no bound)] [--offices K(20)]
 *        [--seed X] [--no-sync] [--keep] [--keys finest|all|none]
 *
 *  The store has the aggregate's layout (records, totals of the finest keys,
 *  rejects, meta with format 2 and seq), so a preloaded DIR can be handed to
 *  amity-aggregate (growth runs). --preload N first fills the store up to N records (records
 *  0..N-1; resumes where a kept DIR left off) with big batches and no fsync,
 *  the totals summed in memory and written once in key order at the end
 *  (the same final state, much faster; not measured), bounded by
 *  --preload-secs; the measured
 *  records follow the stored ones. --keys finest (the default, amity's
 *  design) stores only each record's finest totals keys (month, its office,
 *  its country or "-"), which the aggregate rolls up in memory; --keys all
 *  stores all of up to 48 keys per record (the design before, format 1,
 *  which amity-aggregate migrates when it opens it); --keys none stores
 *  records only (decomposition).
 *  Prints one line starting "RESULT".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amity/err.h"
#include "amity/keys.h"
#include "amity/map.h"
#include "amity/proto.h"
#include "amity/store.h"

#include "workload.h"

enum { S_DB_RECORDS = 0, S_DB_TOTALS, S_DB_REJECTS, S_DB_META };
enum { S_KEYS_ALL = 0, S_KEYS_FINEST, S_KEYS_NONE };
static const char *const s_keys_names[] = { "all", "finest", "none" };
static const uint64_t s_keys_format[] = { 1, 2, 2 }; /* meta "format" of each layout */

#define S_PRELOAD_BATCH 100000
#define S_KEY_MAX       (AMITY_OFFICE_MAX + 1 + AMITY_ID_MAX)

typedef struct {
    int64_t delta; /* coalesced change of this batch */
} s_acc_t;

typedef struct {
    size_t off, len;             /* key bytes in s_batch_t.keys */
    int64_t delta;               /* signed change */
} s_delta_t;

typedef struct {
    uint8_t key[S_KEY_MAX];      /* office "\0" id */
    size_t key_len;              /* bytes in key */
    size_t off, len;             /* its canonical bytes in s_batch_t.bytes */
    size_t first_delta;          /* its deltas: s_batch_t.deltas[first_delta ..] */
    size_t n_deltas;             /* count */
} s_item_t;

typedef struct {
    s_item_t *items;             /* the batch */
    size_t n;                    /* items used */
    amity_buf_t bytes;           /* canonical encodings */
    amity_buf_t keys;            /* totals keys of the deltas */
    s_delta_t *deltas;           /* every delta of the batch */
    size_t deltas_cap;           /* allocated */
    size_t n_deltas_batch;       /* used */
    amity_record_t rec;          /* scratch */
    amity_map_t *acc;            /* totals key -> s_acc_t */
    amity_buf_t val;             /* scratch for reads */
    amity_view_t *changed;       /* changed keys, sorted */
    int64_t *changed_delta;      /* parallel: their deltas */
    size_t changed_cap;          /* allocated */
    amity_delta_t derived[AMITY_DELTAS_MAX]; /* scratch */
    int keys_mode;               /* S_KEYS_*: which totals keys are materialised */
    uint64_t run_deltas;         /* this batch: deltas derived */
    uint64_t run_writes;         /* this txn run: totals puts */
    uint64_t n_deltas;           /* deltas derived */
    uint64_t n_dups;             /* records already stored (none expected) */
    amity_map_t *pre;            /* preload: totals deltas of every preloaded record */
    bool records_only;           /* preload: the txn stores records, deltas go to pre */
    uint64_t n_keys_written;     /* totals puts */
} s_batch_t;

static void
s_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)(v & 0xffu);
        v >>= 8;
    }
}

static uint64_t
s_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

/*  Fills the batch with records first .. first + n - 1: keys, canonical
 *  bytes and (materialised) deltas, all made before the measured
 *  transaction, which then does storage work only. */
static int
s_make_batch(s_batch_t *b, const bench_workload_t *w, uint64_t first, size_t n)
{
    amity_buf_reset(&b->bytes);
    amity_buf_reset(&b->keys);
    b->n_deltas_batch = 0;
    b->run_deltas = 0;
    for (size_t i = 0; i < n; i++) {
        s_item_t *it = &b->items[i];
        const char *office = bench_workload_record(w, first + i, &b->rec);
        size_t office_len = strlen(office);
        size_t id_len = strlen(b->rec.id);
        memcpy(it->key, office, office_len);
        it->key[office_len] = '\0';
        memcpy(it->key + office_len + 1, b->rec.id, id_len);
        it->key_len = office_len + 1 + id_len;
        it->off = b->bytes.len;
        int rc = amity_record_encode(&b->rec, &b->bytes);
        if (rc != 0) {
            return rc;
        }
        it->len = b->bytes.len - it->off;
        int nd = amity_keys_derive(&b->rec, office, 1, b->derived);
        if (nd < 0) {
            return nd;
        }
        b->run_deltas += (uint64_t)nd; /* reported: the published deltas per record */
        if (b->keys_mode == S_KEYS_FINEST) {
            nd = amity_keys_finest(&b->rec, office, 1, b->derived);
            if (nd < 0) {
                return nd;
            }
        }
        if (b->n_deltas_batch + (size_t)nd > b->deltas_cap) {
            size_t cap = b->deltas_cap ? b->deltas_cap * 2 : 65536;
            s_delta_t *d = realloc(b->deltas, cap * sizeof(*d));
            if (d == NULL) {
                return AMITY_ENOMEM;
            }
            b->deltas = d;
            b->deltas_cap = cap;
        }
        it->first_delta = b->n_deltas_batch;
        for (int k = 0; k < nd && b->keys_mode != S_KEYS_NONE; k++) {
            const amity_delta_t *d = &b->derived[k];
            s_delta_t *x = &b->deltas[b->n_deltas_batch++];
            x->off = b->keys.len;
            x->len = strlen(d->key);
            x->delta = d->delta;
            rc = amity_buf_append(&b->keys, d->key, x->len);
            if (rc != 0) {
                return rc;
            }
        }
        it->n_deltas = b->n_deltas_batch - it->first_delta;
    }
    b->n = n;
    return 0;
}

static int
s_cmp_view(const void *a, const void *b)
{
    const amity_view_t *x = a;
    const amity_view_t *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->ptr, y->ptr, n);
    if (c != 0) {
        return c;
    }
    return (x->len > y->len) - (x->len < y->len);
}

/*  The aggregate's storage work for one batch (see the banner). */
static int
s_txn_apply(amity_txn_t *txn, void *arg)
{
    s_batch_t *b = arg;
    uint64_t seq = 0;
    int rc;

    amity_map_reset(b->acc);
    b->run_writes = 0;
    rc = amity_txn_get(txn, S_DB_META, "seq", 3, &b->val);
    if (rc == 0 && b->val.len == 8) {
        seq = s_be64_get(b->val.data);
    } else if (rc != AMITY_ENOTFOUND && rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < b->n; i++) {
        const s_item_t *it = &b->items[i];
        rc = amity_txn_get(txn, S_DB_RECORDS, it->key, it->key_len, &b->val);
        if (rc == 0) {
            b->n_dups++;
            continue;
        }
        if (rc != AMITY_ENOTFOUND) {
            return rc;
        }
        rc = amity_txn_put(txn, S_DB_RECORDS, it->key, it->key_len, b->bytes.data + it->off,
                           it->len);
        if (rc != 0) {
            return rc;
        }
        for (size_t k = it->first_delta; k < it->first_delta + it->n_deltas; k++) {
            const s_delta_t *d = &b->deltas[k];
            amity_map_t *into = b->records_only ? b->pre : b->acc;
            s_acc_t *acc = amity_map_upsert(into, b->keys.data + d->off, d->len, NULL);
            if (acc == NULL) {
                return AMITY_ENOMEM;
            }
            acc->delta += d->delta;
        }
    }

    /* changed keys in key order, each read, added and written once */
    size_t n_max = amity_map_size(b->acc);
    if (n_max > b->changed_cap) {
        amity_view_t *c = realloc(b->changed, n_max * sizeof(*c));
        int64_t *d = realloc(b->changed_delta, n_max * sizeof(*d));
        if (c != NULL) {
            b->changed = c;
        }
        if (d != NULL) {
            b->changed_delta = d;
        }
        if (c == NULL || d == NULL) {
            return AMITY_ENOMEM;
        }
        b->changed_cap = n_max;
    }
    size_t pos = 0;
    size_t n_changed = 0;
    const char *key;
    size_t key_len;
    void *value;
    while (amity_map_next(b->acc, &pos, &key, &key_len, &value) == 0) {
        if (((s_acc_t *)value)->delta != 0) {
            b->changed[n_changed].ptr = (const uint8_t *)key;
            b->changed[n_changed].len = key_len;
            n_changed++;
        }
    }
    if (n_changed > 1) {
        qsort(b->changed, n_changed, sizeof(*b->changed), s_cmp_view);
    }
    for (size_t k = 0; k < n_changed; k++) {
        const s_acc_t *acc = amity_map_find(b->acc, b->changed[k].ptr, b->changed[k].len);
        int64_t total = 0;
        uint8_t be[8];
        rc = amity_txn_get(txn, S_DB_TOTALS, b->changed[k].ptr, b->changed[k].len, &b->val);
        if (rc == 0 && b->val.len == 8) {
            total = (int64_t)s_be64_get(b->val.data);
        } else if (rc != 0 && rc != AMITY_ENOTFOUND) {
            return rc;
        }
        total += acc->delta;
        s_be64_put(be, (uint64_t)total);
        rc = amity_txn_put(txn, S_DB_TOTALS, b->changed[k].ptr, b->changed[k].len, be, 8);
        if (rc != 0) {
            return rc;
        }
        b->run_writes++;
    }
    uint8_t be[8];
    s_be64_put(be, seq + 1);
    return amity_txn_put(txn, S_DB_META, "seq", 3, be, 8);
}

/*  Preload: writes pre's totals (added to what is stored) in key order,
 *  at most S_PRELOAD_KEYS_PER_TXN keys per transaction. */
#define S_PRELOAD_KEYS_PER_TXN 500000

typedef struct {
    s_batch_t *b;
    size_t from, to;             /* range of b->changed */
} s_pre_t;

static int
s_txn_pre_totals(amity_txn_t *txn, void *arg)
{
    s_pre_t *p = arg;
    s_batch_t *b = p->b;
    for (size_t k = p->from; k < p->to; k++) {
        const s_acc_t *acc = amity_map_find(b->pre, b->changed[k].ptr, b->changed[k].len);
        int64_t total = 0;
        uint8_t be[8];
        int rc = amity_txn_get(txn, S_DB_TOTALS, b->changed[k].ptr, b->changed[k].len, &b->val);
        if (rc == 0 && b->val.len == 8) {
            total = (int64_t)s_be64_get(b->val.data);
        } else if (rc != 0 && rc != AMITY_ENOTFOUND) {
            return rc;
        }
        total += acc->delta;
        s_be64_put(be, (uint64_t)total);
        rc = amity_txn_put(txn, S_DB_TOTALS, b->changed[k].ptr, b->changed[k].len, be, 8);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
s_write_pre_totals(amity_store_t *store, s_batch_t *b)
{
    size_t n_max = amity_map_size(b->pre);
    if (n_max > b->changed_cap) {
        amity_view_t *c = realloc(b->changed, n_max * sizeof(*c));
        if (c == NULL) {
            return AMITY_ENOMEM;
        }
        b->changed = c;
        b->changed_cap = n_max;
    }
    size_t pos = 0, n = 0;
    const char *key;
    size_t key_len;
    void *value;
    while (amity_map_next(b->pre, &pos, &key, &key_len, &value) == 0) {
        b->changed[n].ptr = (const uint8_t *)key;
        b->changed[n].len = key_len;
        n++;
    }
    if (n > 1) {
        qsort(b->changed, n, sizeof(*b->changed), s_cmp_view);
    }
    for (size_t from = 0; from < n; from += S_PRELOAD_KEYS_PER_TXN) {
        s_pre_t p = { b, from, from + S_PRELOAD_KEYS_PER_TXN < n ? from + S_PRELOAD_KEYS_PER_TXN : n };
        int rc = amity_store_update(store, s_txn_pre_totals, &p);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static int
s_txn_format(amity_txn_t *txn, void *arg)
{
    uint8_t be[8];
    s_be64_put(be, *(const uint64_t *)arg);
    return amity_txn_put(txn, S_DB_META, "format", 6, be, 8);
}

static int
s_open(amity_store_t **store, const char *dir, bool no_sync, uint64_t format)
{
    amity_store_opts_t opts = {
        .map_size = 0,
        .no_sync = no_sync,
        .n_dbs = 4,
        .dbs = { "records", "totals", "rejects", "meta" },
    };
    int rc = amity_store_open(store, dir, &opts);
    if (rc == 0) {
        rc = amity_store_update(*store, s_txn_format, &format);
    }
    return rc;
}

static void
s_usage(void)
{
    fprintf(stderr,
            "usage: amity-bench_lmdb [--dir DIR] [--records N] [--batch N] [--keys finest|all|none]\n"
            "                        [--preload N]"
            "                        [--preload-secs S] [--offices K] [--seed X] [--no-sync] "
            "[--keep]\n");
}

int
main(int argc, char **argv)
{
    const char *dir = NULL;
    uint64_t n_records = 200000;
    uint64_t batch = 4096;
    uint64_t preload = 0;
    uint64_t preload_secs = 0;
    uint64_t offices = BENCH_OFFICES_DEFAULT;
    uint64_t seed = BENCH_SEED_DEFAULT;
    bool no_sync = false;
    bool keep = false;
    int keys = S_KEYS_FINEST;
    char tmp[] = "/tmp/amity-bench-lmdb-XXXXXX";
    amity_store_t *store = NULL;
    amity_store_stat_t st;
    bench_workload_t w;
    s_batch_t b;
    bench_samples_t commits = { 0 };
    int exit_code = 1;
    int rc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool ok = true;
        if (strcmp(a, "--no-sync") == 0) {
            no_sync = true;
            continue;
        }
        if (strcmp(a, "--keep") == 0) {
            keep = true;
            continue;
        }
        if (v == NULL) {
            ok = false;
        } else if (strcmp(a, "--keys") == 0) {
            ok = false;
            for (int k = 0; k < 3; k++) {
                if (strcmp(v, s_keys_names[k]) == 0) {
                    keys = k;
                    ok = true;
                }
            }
        } else if (strcmp(a, "--dir") == 0) {
            dir = v;
        } else if (strcmp(a, "--records") == 0) {
            ok = bench_parse_count(v, &n_records);
        } else if (strcmp(a, "--batch") == 0) {
            ok = bench_parse_count(v, &batch) && batch > 0 && batch <= 1000000;
        } else if (strcmp(a, "--preload") == 0) {
            ok = bench_parse_count(v, &preload);
        } else if (strcmp(a, "--preload-secs") == 0) {
            ok = bench_parse_count(v, &preload_secs);
        } else if (strcmp(a, "--offices") == 0) {
            ok = bench_parse_count(v, &offices) && offices > 0 && offices <= BENCH_OFFICES_MAX;
        } else if (strcmp(a, "--seed") == 0) {
            ok = bench_parse_count(v, &seed);
        } else {
            ok = false;
        }
        if (!ok) {
            s_usage();
            return 2;
        }
        i++;
    }
    if (dir == NULL) {
        if (mkdtemp(tmp) == NULL) {
            perror("bench_lmdb: mkdtemp");
            return 1;
        }
        dir = tmp;
    }

    bench_workload_init(&w, seed, (uint32_t)offices);
    if (bench_workload_selftest(&w) != 0) {
        return 1;
    }
    memset(&b, 0, sizeof(b));
    b.keys_mode = keys;
    amity_buf_init(&b.bytes);
    amity_buf_init(&b.keys);
    amity_buf_init(&b.val);
    size_t cap = (size_t)(batch > S_PRELOAD_BATCH ? batch : S_PRELOAD_BATCH);
    b.items = calloc(cap, sizeof(*b.items));
    if (b.items == NULL || amity_map_new(&b.acc, sizeof(s_acc_t)) != 0) {
        fprintf(stderr, "bench_lmdb: out of memory\n");
        goto out;
    }

    /* preload (not measured): big batches, no fsync, then one durable commit */
    rc = s_open(&store, dir, true, s_keys_format[keys]);
    if (rc != 0 || amity_store_stat(store, &st) != 0) {
        fprintf(stderr, "bench_lmdb: cannot open %s: %s\n", dir, amity_strerror(rc));
        goto out;
    }
    uint64_t stored = st.entries[S_DB_RECORDS];
    double t0 = bench_now();
    bool bounded = false;
    b.records_only = true;
    if (stored < preload && amity_map_new(&b.pre, sizeof(s_acc_t)) != 0) {
        goto out;
    }
    while (stored < preload) {
        if (preload_secs > 0 && bench_now() - t0 > (double)preload_secs) {
            bounded = true;
            break;
        }
        size_t n = (size_t)(preload - stored < S_PRELOAD_BATCH ? preload - stored
                                                               : S_PRELOAD_BATCH);
        rc = s_make_batch(&b, &w, stored, n);
        if (rc == 0) {
            rc = amity_store_update(store, s_txn_apply, &b);
        }
        if (rc != 0) {
            fprintf(stderr, "bench_lmdb: preload failed: %s\n", amity_strerror(rc));
            goto out;
        }
        stored += n;
    }
    if (b.pre != NULL) {
        rc = s_write_pre_totals(store, &b);
        if (rc != 0) {
            fprintf(stderr, "bench_lmdb: preload totals failed: %s\n", amity_strerror(rc));
            goto out;
        }
        amity_map_destroy(&b.pre);
    }
    b.records_only = false;
    double preload_time = bench_now() - t0;
    amity_store_destroy(&store);
    /* its first commit flushes the preload durably */
    rc = s_open(&store, dir, no_sync, s_keys_format[keys]);
    if (rc != 0 || amity_store_stat(store, &st) != 0) {
        fprintf(stderr, "bench_lmdb: cannot reopen %s: %s\n", dir, amity_strerror(rc));
        goto out;
    }
    stored = st.entries[S_DB_RECORDS];
    if (preload > 0) {
        fprintf(stderr, "bench_lmdb: %llu records stored (%.1f s to preload%s)\n",
                (unsigned long long)stored, preload_time,
                bounded ? ", stopped by --preload-secs" : "");
    }

    /* measured: the next n_records records, batch by batch, durable commits */
    uint64_t first = stored;
    double busy = 0;
    double wall0 = bench_now();
    b.n_dups = 0;
    b.n_deltas = 0;
    b.n_keys_written = 0;
    for (uint64_t done = 0; done < n_records;) {
        size_t n = (size_t)(n_records - done < batch ? n_records - done : batch);
        rc = s_make_batch(&b, &w, first + done, n);
        if (rc != 0) {
            fprintf(stderr, "bench_lmdb: cannot make records: %s\n", amity_strerror(rc));
            goto out;
        }
        double t = bench_now();
        rc = amity_store_update(store, s_txn_apply, &b);
        double dt = bench_now() - t;
        if (rc != 0) {
            fprintf(stderr, "bench_lmdb: commit failed: %s\n", amity_strerror(rc));
            goto out;
        }
        busy += dt;
        b.n_deltas += b.run_deltas;
        b.n_keys_written += b.run_writes;
        (void)bench_samples_add(&commits, dt);
        done += n;
    }
    double wall = bench_now() - wall0;
    if (amity_store_stat(store, &st) != 0) {
        goto out;
    }
    uint64_t n_stored = st.entries[S_DB_RECORDS];
    char data_path[4096];
    struct stat fst;
    snprintf(data_path, sizeof(data_path), "%s/data.mdb", dir);
    long long file_bytes = stat(data_path, &fst) == 0 ? (long long)fst.st_size : -1;
    printf("RESULT bench=lmdb records=%llu batch=%llu stored_before=%llu stored_after=%llu "
           "secs=%.3f wall_secs=%.3f rps=%.0f keys=%s deltas_per_record=%.2f "
           "key_writes_per_record=%.2f totals_keys=%zu "
           "used_bytes=%zu bytes_per_record=%.1f file_bytes=%lld dups=%llu sync=%d",
           (unsigned long long)n_records, (unsigned long long)batch,
           (unsigned long long)first, (unsigned long long)n_stored, busy, wall,
           busy > 0 ? (double)n_records / busy : 0, s_keys_names[keys],
           n_records ? (double)b.n_deltas / (double)n_records : 0,
           n_records ? (double)b.n_keys_written / (double)n_records : 0,
           st.entries[S_DB_TOTALS], st.used_bytes,
           n_stored ? (double)st.used_bytes / (double)n_stored : 0, file_bytes,
           (unsigned long long)b.n_dups, no_sync ? 0 : 1);
    bench_print_latency("commit", &commits);
    printf(" peak_rss_kib=%ld\n", bench_vmhwm_kib(0));
    exit_code = b.n_dups == 0 ? 0 : 1;
out:
    amity_store_destroy(&store);
    amity_map_destroy(&b.acc);
    amity_map_destroy(&b.pre);
    amity_buf_clear(&b.bytes);
    amity_buf_clear(&b.keys);
    free(b.deltas);
    amity_buf_clear(&b.val);
    free(b.items);
    free(b.changed);
    free(b.changed_delta);
    bench_samples_clear(&commits);
    if (dir == tmp && !keep) {
        char path[sizeof(tmp) + 16];
        snprintf(path, sizeof(path), "%s/data.mdb", tmp);
        unlink(path);
        snprintf(path, sizeof(path), "%s/lock.mdb", tmp);
        unlink(path);
        rmdir(tmp);
    }
    return exit_code;
}
