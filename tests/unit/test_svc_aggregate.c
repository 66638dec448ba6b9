/*  test_svc_aggregate: the shard's batch logic (apply.h) against a real
 *  LMDB store in a temporary directory: verdicts, exact totals under
 *  resends, corrections, retractions, tombstones and conflicts, seq,
 *  persistence, snapshots; finest keys only in LMDB with every published
 *  key rolled up in memory (against an independent reference, across
 *  reopens), the format 1 migration; and the checks behind --check-config.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <czmq.h>

#include "amity/buf.h"
#include "amity/clock.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/proto.h"
#include "amity/record.h"
#include "amity/store.h"

#include "aggregate.h"
#include "apply.h"

#define S_BUFS  64
#define OFFICE  "hoi-viet-my"
#define KEY_DEL "2017/hoi-viet-my/delegation_in/US/delegations"

typedef struct {
    char dir[64];             /* the store's temporary directory */
    aggregate_db_t *db;       /* the shard under test */
    amity_buf_t bufs[S_BUFS]; /* encoded records, kept for the items' views */
    size_t n_bufs;            /* bufs in use */
} fx_t;

/*  Removes dir and the files in it (an LMDB environment is flat). */
static void
s_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                char path[512];
                (void)snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
                (void)unlink(path);
            }
        }
        (void)closedir(d);
    }
    (void)rmdir(dir);
}

static int
setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx) {
        return -1;
    }
    strcpy(fx->dir, "/tmp/amity-agg-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    for (size_t i = 0; i < S_BUFS; i++) {
        amity_buf_init(&fx->bufs[i]);
    }
    if (aggregate_db_open(&fx->db, fx->dir, 0, true) != 0) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *fx = *state;
    aggregate_db_destroy(&fx->db);
    for (size_t i = 0; i < S_BUFS; i++) {
        amity_buf_clear(&fx->bufs[i]);
    }
    s_rmdir(fx->dir);
    free(fx);
    return 0;
}

/*  A delegation_in record from the US, June 2017. */
static void
s_delegation(amity_record_t *r, const char *id, uint64_t rev, uint32_t delegations, uint32_t people)
{
    memset(r, 0, sizeof *r);
    (void)snprintf(r->id, sizeof r->id, "%s", id);
    r->rev = rev;
    r->kind = AMITY_KIND_DELEGATION_IN;
    r->year = 2017;
    r->month = 6;
    r->day = 15;
    strcpy(r->country, "US");
    r->metric_mask = (1u << AMITY_METRIC_DELEGATIONS) | (1u << AMITY_METRIC_PEOPLE);
    r->metrics[AMITY_METRIC_DELEGATIONS] = delegations;
    r->metrics[AMITY_METRIC_PEOPLE] = people;
}

static void
s_retraction(amity_record_t *r, const char *id, uint64_t rev)
{
    memset(r, 0, sizeof *r);
    (void)snprintf(r->id, sizeof r->id, "%s", id);
    r->rev = rev;
    r->retract = true;
}

/*  An ok item carrying rec's canonical encoding (kept in the fixture). */
static aggregate_item_t
s_item(fx_t *fx, const char *office, uint64_t tag, const amity_record_t *rec)
{
    assert_true(fx->n_bufs < S_BUFS);
    amity_buf_t *b = &fx->bufs[fx->n_bufs++];
    amity_buf_reset(b);
    assert_int_equal(amity_record_encode(rec, b), 0);
    return (aggregate_item_t){
        .office = office,
        .ing = amity_view_str("ing-0123456789abcdef"),
        .conn = amity_view_str("conn-1"),
        .tag = tag,
        .ok = true,
        .rec = { b->data, b->len },
    };
}

static const aggregate_result_t *
s_apply(fx_t *fx, const aggregate_item_t *items, size_t n)
{
    const aggregate_result_t *r = NULL;
    assert_int_equal(aggregate_apply_batch(fx->db, items, n, &r), 0);
    assert_non_null(r);
    assert_int_equal(r->n_done, n);
    return r;
}

static const aggregate_result_t *
s_apply_one(fx_t *fx, const char *office, const amity_record_t *rec, amity_verdict_status_t expect)
{
    aggregate_item_t it = s_item(fx, office, 7, rec);
    const aggregate_result_t *r = s_apply(fx, &it, 1);
    assert_int_equal(r->verdicts[0].status, expect);
    return r;
}

/*  Reading totals back: published ones from the shard's in-memory view,
 *  finest ones from LMDB. */
typedef struct {
    const char *key;
    int64_t val;
    bool found;
} s_get_t;

static int
s_txn_get_stored(amity_txn_t *txn, void *arg)
{
    s_get_t *g = arg;
    amity_buf_t b;
    amity_buf_init(&b);
    int rc = amity_txn_get(txn, AGGREGATE_DB_TOTALS, g->key, strlen(g->key), &b);
    if (rc == 0) {
        assert_int_equal(b.len, 8);
        g->val = (int64_t)aggregate_be64_get(b.data);
        g->found = true;
    } else {
        assert_int_equal(rc, AMITY_ENOTFOUND);
        g->val = 0;
        g->found = false;
    }
    amity_buf_clear(&b);
    return 0;
}

/*  The value LMDB stores under key (absent reads as 0). */
static int64_t
s_stored(fx_t *fx, const char *key)
{
    s_get_t g = { .key = key };
    assert_int_equal(amity_store_view(aggregate_db_store(fx->db), s_txn_get_stored, &g), 0);
    return g.val;
}

/*  The published total of key (absent reads as 0). */
static int64_t
s_total(fx_t *fx, const char *key)
{
    int64_t v = -1;
    int rc = aggregate_db_total(fx->db, key, strlen(key), &v);
    assert_true(rc == 0 || rc == AMITY_ENOTFOUND);
    assert_true(rc == 0 ? v != 0 : v == 0);
    return v;
}

typedef struct {
    int db;
    size_t n;
    amity_buf_t last; /* value of the last entry */
} s_count_t;

static int
s_count_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    (void)key;
    (void)key_len;
    s_count_t *c = arg;
    c->n++;
    assert_int_equal(amity_buf_set(&c->last, val, val_len), 0);
    return 0;
}

static int
s_txn_count(amity_txn_t *txn, void *arg)
{
    s_count_t *c = arg;
    return amity_txn_scan(txn, c->db, NULL, 0, NULL, 0, s_count_cb, c);
}

/*  Entries in a database; *last (when given) gets the last one's value. */
static size_t
s_count(fx_t *fx, int db, amity_buf_t *last)
{
    s_count_t c = { .db = db };
    amity_buf_init(&c.last);
    assert_int_equal(amity_store_view(aggregate_db_store(fx->db), s_txn_count, &c), 0);
    if (last) {
        amity_buf_set(last, c.last.data, c.last.len);
    }
    amity_buf_clear(&c.last);
    return c.n;
}

/*  The keys a record contributes to (for office), with their deltas. */
static int
s_keys(const amity_record_t *rec, const char *office, amity_delta_t out[AMITY_DELTAS_MAX])
{
    int n = amity_keys_derive(rec, office, +1, out);
    assert_true(n > 0);
    return n;
}

/*  Every key rec contributes to is times its delta; with only_office,
 *  just the keys of that office (the "all" ones are shared). */
static void
s_assert_totals_of(fx_t *fx, const amity_record_t *rec, const char *office, int64_t times,
                   bool only_office)
{
    amity_delta_t d[AMITY_DELTAS_MAX];
    char part[80];
    (void)snprintf(part, sizeof part, "/%s/", office);
    int n = s_keys(rec, office, d);
    int n_checked = 0;
    for (int i = 0; i < n; i++) {
        if (only_office && !strstr(d[i].key, part)) {
            continue;
        }
        assert_int_equal(s_total(fx, d[i].key), d[i].delta * times);
        n_checked++;
    }
    assert_true(n_checked > 0);
}

static void
s_assert_totals(fx_t *fx, const amity_record_t *rec, const char *office, int64_t times)
{
    s_assert_totals_of(fx, rec, office, times, false);
}

static void
test_aggregate_first_accept(void **state)
{
    fx_t *fx = *state;
    amity_record_t r;
    s_delegation(&r, "d-1", 1, 3, 10);
    assert_int_equal(aggregate_db_seq(fx->db), 0);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->n_accepted, 1);
    assert_int_equal(res->seq, 1);
    assert_int_equal(aggregate_db_seq(fx->db), 1);
    /* 4 periods x 2 offices x (all, americas, US) x 2 metrics */
    assert_int_equal(res->n_kv, 48);
    assert_int_equal(s_total(fx, KEY_DEL), 3);
    assert_int_equal(s_total(fx, "2017-H1/all/delegation_in/americas/people"), 10);
    assert_int_equal(s_total(fx, "2017-06/all/delegation_in/all/delegations"), 3);
    s_assert_totals(fx, &r, OFFICE, 1);
    /* the published values are the stored ones */
    for (size_t i = 0; i < res->n_kv; i++) {
        char key[AMITY_KEY_MAX];
        assert_true(amity_view_copy(res->kv[i].key, key, sizeof key));
        assert_int_equal(res->kv[i].val, s_total(fx, key));
    }
    assert_int_equal(s_count(fx, AGGREGATE_DB_RECORDS, NULL), 1);
    /* LMDB holds the finest keys only: June 2017, the office, US, per metric */
    assert_int_equal(res->n_finest, 2);
    assert_int_equal(s_count(fx, AGGREGATE_DB_TOTALS, NULL), 2);
    assert_int_equal(s_stored(fx, "2017-06/hoi-viet-my/delegation_in/US/delegations"), 3);
    assert_int_equal(s_stored(fx, "2017-06/hoi-viet-my/delegation_in/US/people"), 10);
    assert_int_equal(s_stored(fx, KEY_DEL), 0);
    assert_int_equal(aggregate_db_n_totals(fx->db), 48);
}

static void
test_aggregate_resend_is_duplicate(void **state)
{
    fx_t *fx = *state;
    amity_record_t r;
    s_delegation(&r, "d-1", 1, 3, 10);
    s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_ACCEPTED);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_DUPLICATE);
    assert_int_equal(res->n_duplicate, 1);
    assert_int_equal(res->n_kv, 0);
    assert_int_equal(res->seq, 1);
    assert_int_equal(aggregate_db_seq(fx->db), 1);
    s_assert_totals(fx, &r, OFFICE, 1);
    /* the same id from another office is another record */
    s_apply_one(fx, "hoi-viet-phap", &r, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(s_total(fx, KEY_DEL), 3);
    assert_int_equal(s_total(fx, "2017/all/delegation_in/US/delegations"), 6);
}

static void
test_aggregate_correction_moves_totals(void **state)
{
    fx_t *fx = *state;
    amity_record_t r1, r2;
    s_delegation(&r1, "d-1", 1, 3, 10);
    s_delegation(&r2, "d-1", 2, 5, 10);
    s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_ACCEPTED);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->seq, 2);
    /* only the delegations keys changed (people nets to zero) */
    assert_int_equal(res->n_kv, 24);
    amity_delta_t d[AMITY_DELTAS_MAX];
    int n = s_keys(&r1, OFFICE, d);
    for (int i = 0; i < n; i++) {
        if (strstr(d[i].key, "/delegations")) {
            assert_int_equal(s_total(fx, d[i].key), 3 + 2);
        } else {
            assert_int_equal(s_total(fx, d[i].key), 10);
        }
    }
    for (size_t i = 0; i < res->n_kv; i++) {
        assert_int_equal(res->kv[i].val, 5);
    }
}

static void
test_aggregate_retraction_zeroes(void **state)
{
    fx_t *fx = *state;
    amity_record_t r1, r2, r3;
    s_delegation(&r1, "d-1", 1, 3, 10);
    s_delegation(&r2, "d-1", 2, 5, 10);
    s_retraction(&r3, "d-1", 3);
    s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_ACCEPTED);
    s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_ACCEPTED);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r3, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->seq, 3);
    assert_int_equal(res->n_kv, 48);
    for (size_t i = 0; i < res->n_kv; i++) {
        assert_int_equal(res->kv[i].val, 0); /* published as 0 */
    }
    s_assert_totals(fx, &r2, OFFICE, 0);
    /* zero totals are not kept */
    assert_int_equal(s_count(fx, AGGREGATE_DB_TOTALS, NULL), 0);
    /* a later resend of an older revision counts nowhere */
    s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_DUPLICATE);
    s_apply_one(fx, OFFICE, &r3, AMITY_VERDICT_DUPLICATE);
    s_assert_totals(fx, &r2, OFFICE, 0);
    assert_int_equal(aggregate_db_seq(fx->db), 3);
}

static void
test_aggregate_tombstone_then_stale(void **state)
{
    fx_t *fx = *state;
    amity_record_t r1, r2;
    s_delegation(&r1, "d-9", 1, 4, 8);
    s_retraction(&r2, "d-9", 2);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->n_kv, 0);
    assert_int_equal(res->n_records_written, 1);
    assert_int_equal(aggregate_db_seq(fx->db), 0); /* no total moved */
    res = s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_DUPLICATE);
    assert_int_equal(res->n_kv, 0);
    s_assert_totals(fx, &r1, OFFICE, 0);
    assert_int_equal(s_count(fx, AGGREGATE_DB_TOTALS, NULL), 0);
    assert_int_equal(s_count(fx, AGGREGATE_DB_RECORDS, NULL), 1);
}

static void
test_aggregate_conflict_rejected(void **state)
{
    fx_t *fx = *state;
    amity_record_t r1, other;
    s_delegation(&r1, "d-1", 1, 3, 10);
    s_delegation(&other, "d-1", 1, 4, 10);
    s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_ACCEPTED);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &other, AMITY_VERDICT_REJECTED);
    assert_int_equal(res->n_conflicts, 1);
    assert_int_equal(res->n_rejected, 1);
    assert_int_equal(res->n_kv, 0);
    const char *why = "rev: 1 is already recorded with other content (conflict)";
    assert_int_equal(res->verdicts[0].why.len, strlen(why));
    assert_memory_equal(res->verdicts[0].why.ptr, why, strlen(why));
    s_assert_totals(fx, &r1, OFFICE, 1);

    /* kept for the operator: {v, id, why, ts, rec} */
    amity_buf_t v;
    amity_buf_init(&v);
    assert_int_equal(s_count(fx, AGGREGATE_DB_REJECTS, &v), 1);
    amity_fields_t f;
    char ewhy[128];
    assert_int_equal(amity_fields_decode(v.data, v.len, &f, ewhy, sizeof ewhy), 0);
    bool saw_id = false, saw_why = false, saw_rec = false;
    for (size_t i = 0; i < f.n_fields; i++) {
        const amity_field_t *x = &f.fields[i];
        if (x->name_len == 2 && memcmp(x->name, "id", 2) == 0) {
            assert_int_equal(x->val.as.s.len, 3);
            assert_memory_equal(x->val.as.s.ptr, "d-1", 3);
            saw_id = true;
        } else if (x->name_len == 3 && memcmp(x->name, "why", 3) == 0) {
            assert_memory_equal(x->val.as.s.ptr, why, strlen(why));
            saw_why = true;
        } else if (x->name_len == 3 && memcmp(x->name, "rec", 3) == 0) {
            assert_int_equal(x->val.type, AMITY_VAL_BIN);
            amity_buf_t enc;
            amity_buf_init(&enc);
            assert_int_equal(amity_record_encode(&other, &enc), 0);
            assert_int_equal(x->val.as.s.len, enc.len);
            assert_memory_equal(x->val.as.s.ptr, enc.data, enc.len);
            amity_buf_clear(&enc);
            saw_rec = true;
        }
    }
    assert_true(saw_id && saw_why && saw_rec);
    amity_buf_clear(&v);
}

/*  Every order of revs 1, 2, 3 of one id in one batch ends as rev 3 alone. */
static void
test_aggregate_revisions_in_one_batch(void **state)
{
    fx_t *fx = *state;
    static const int perms[6][3] = { { 1, 2, 3 }, { 1, 3, 2 }, { 2, 1, 3 },
                                     { 2, 3, 1 }, { 3, 1, 2 }, { 3, 2, 1 } };
    amity_record_t revs[4];
    s_delegation(&revs[1], "d-1", 1, 3, 10);
    s_delegation(&revs[2], "d-1", 2, 5, 12);
    s_delegation(&revs[3], "d-1", 3, 7, 20);
    for (int p = 0; p < 6; p++) {
        char office[16];
        (void)snprintf(office, sizeof office, "perm-%d", p);
        aggregate_item_t items[3];
        for (int k = 0; k < 3; k++) {
            items[k] = s_item(fx, office, (uint64_t)k, &revs[perms[p][k]]);
        }
        const aggregate_result_t *res = s_apply(fx, items, 3);
        for (int k = 0; k < 3; k++) {
            /* rev 3 is always accepted; anything after it is stale */
            if (perms[p][k] == 3) {
                assert_int_equal(res->verdicts[k].status, AMITY_VERDICT_ACCEPTED);
            }
        }
        s_assert_totals_of(fx, &revs[3], office, 1, true);
    }
    /* the shared keys hold six times rev 3 */
    assert_int_equal(s_total(fx, "2017/all/delegation_in/US/delegations"), 6 * 7);
    assert_int_equal(s_total(fx, "2017-06/all/delegation_in/all/people"), 6 * 20);
    /* with a retraction as the highest rev, nothing counts whatever the order */
    amity_record_t rt;
    s_retraction(&rt, "d-2", 3);
    revs[3] = rt;
    s_delegation(&revs[1], "d-2", 1, 3, 10);
    s_delegation(&revs[2], "d-2", 2, 5, 12);
    for (int p = 0; p < 6; p++) {
        char office[16];
        (void)snprintf(office, sizeof office, "retr-%d", p);
        aggregate_item_t items[3];
        for (int k = 0; k < 3; k++) {
            items[k] = s_item(fx, office, (uint64_t)k, &revs[perms[p][k]]);
        }
        s_apply(fx, items, 3);
        s_assert_totals_of(fx, &revs[2], office, 0, true);
        fx->n_bufs = 0;
    }
}

static void
test_aggregate_validator_rejection_kept(void **state)
{
    fx_t *fx = *state;
    amity_fields_t f = { 0 };
    f.n_fields = 2;
    f.fields[0] = (amity_field_t){ "id", 2, { .type = AMITY_VAL_STR, .as.s = { "bad-1", 5 } } };
    f.fields[1] =
        (amity_field_t){ "date", 4, { .type = AMITY_VAL_STR, .as.s = { "2017-02-30", 10 } } };
    amity_buf_t raw;
    amity_buf_init(&raw);
    assert_int_equal(amity_fields_encode(&f, &raw), 0);
    const char *why = "date: 2017-02-30 is not a calendar date";
    amity_record_t good;
    s_delegation(&good, "d-1", 1, 3, 10);
    aggregate_item_t items[2] = {
        {
            .office = OFFICE,
            .ing = amity_view_str("ing-1"),
            .conn = amity_view_str("c"),
            .tag = 41,
            .ok = false,
            .rec = { raw.data, raw.len },
            .why = amity_view_str(why),
        },
        s_item(fx, OFFICE, 42, &good),
    };
    const aggregate_result_t *res = s_apply(fx, items, 2);
    assert_int_equal(res->verdicts[0].status, AMITY_VERDICT_REJECTED);
    assert_int_equal(res->verdicts[0].why.len, strlen(why));
    assert_memory_equal(res->verdicts[0].why.ptr, why, strlen(why));
    assert_int_equal(res->verdicts[1].status, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->n_rejects_written, 1);
    amity_buf_t v;
    amity_buf_init(&v);
    assert_int_equal(s_count(fx, AGGREGATE_DB_REJECTS, &v), 1);
    amity_fields_t got;
    char ewhy[128];
    assert_int_equal(amity_fields_decode(v.data, v.len, &got, ewhy, sizeof ewhy), 0);
    bool saw_id = false, saw_rec = false;
    for (size_t i = 0; i < got.n_fields; i++) {
        const amity_field_t *x = &got.fields[i];
        if (x->name_len == 2 && memcmp(x->name, "id", 2) == 0) {
            assert_memory_equal(x->val.as.s.ptr, "bad-1", 5);
            saw_id = true;
        } else if (x->name_len == 3 && memcmp(x->name, "rec", 3) == 0) {
            assert_int_equal(x->val.as.s.len, raw.len);
            assert_memory_equal(x->val.as.s.ptr, raw.data, raw.len);
            saw_rec = true;
        }
    }
    assert_true(saw_id && saw_rec);
    /* a canonical-looking item that is not a record is refused alone */
    aggregate_item_t junk = items[0];
    junk.ok = true;
    res = s_apply(fx, &junk, 1);
    assert_int_equal(res->verdicts[0].status, AMITY_VERDICT_REJECTED);
    assert_int_equal(s_count(fx, AGGREGATE_DB_REJECTS, NULL), 2);
    amity_buf_clear(&v);
    amity_buf_clear(&raw);
}

static void
test_aggregate_seq_per_commit(void **state)
{
    fx_t *fx = *state;
    amity_record_t r;
    for (uint64_t i = 1; i <= 3; i++) {
        char id[16];
        (void)snprintf(id, sizeof id, "s-%llu", (unsigned long long)i);
        s_delegation(&r, id, 1, 1, 1);
        const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_ACCEPTED);
        assert_int_equal(res->seq, i);
        assert_int_equal(aggregate_db_seq(fx->db), i);
    }
    assert_int_equal(s_total(fx, KEY_DEL), 3);
    /* nothing changed: seq stays */
    s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_DUPLICATE);
    assert_int_equal(aggregate_db_seq(fx->db), 3);
    /* an empty batch commits nothing */
    const aggregate_result_t *res = NULL;
    assert_int_equal(aggregate_apply_batch(fx->db, NULL, 0, &res), 0);
    assert_int_equal(res->n_done, 0);
    assert_int_equal(res->seq, 3);
}

static void
test_aggregate_reopen_persists(void **state)
{
    fx_t *fx = *state;
    amity_record_t r1, r2;
    s_delegation(&r1, "d-1", 1, 3, 10);
    s_delegation(&r2, "d-2", 1, 2, 4);
    s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_ACCEPTED);
    s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_ACCEPTED);
    aggregate_db_destroy(&fx->db);
    assert_null(fx->db);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, false), 0);
    assert_int_equal(aggregate_db_seq(fx->db), 2);
    assert_int_equal(s_total(fx, KEY_DEL), 5);
    assert_int_equal(s_total(fx, "2017-Q2/all/delegation_in/all/people"), 14);
    /* records persist too: a resend is still a duplicate */
    s_apply_one(fx, OFFICE, &r1, AMITY_VERDICT_DUPLICATE);
    const aggregate_result_t *res = s_apply_one(fx, OFFICE, &r2, AMITY_VERDICT_DUPLICATE);
    assert_int_equal(res->seq, 2);
}

typedef struct {
    size_t n_chunks;
    size_t n_keys;
    uint64_t seq;
    bool last_more;
    bool prefix_ok;
    const char *prefix;
    int64_t sum;
} s_snap_t;

static int
s_snap_cb(uint64_t seq, const amity_kv_t *kv, size_t n_kv, bool more, void *arg)
{
    s_snap_t *s = arg;
    if (s->n_chunks > 0) {
        assert_int_equal(s->seq, seq);
        assert_true(s->last_more); /* only the last chunk says more=false */
    }
    s->seq = seq;
    s->n_chunks++;
    s->n_keys += n_kv;
    s->last_more = more;
    for (size_t i = 0; i < n_kv; i++) {
        size_t pl = strlen(s->prefix);
        if (kv[i].key.len < pl || memcmp(kv[i].key.ptr, s->prefix, pl) != 0) {
            s->prefix_ok = false;
        }
        s->sum += kv[i].val;
    }
    return 0;
}

static void
test_aggregate_snapshot_prefix(void **state)
{
    fx_t *fx = *state;
    amity_record_t r;
    s_delegation(&r, "d-1", 1, 3, 10);
    s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_ACCEPTED);
    s_delegation(&r, "d-2", 1, 2, 5);
    r.year = 2018;
    s_apply_one(fx, OFFICE, &r, AMITY_VERDICT_ACCEPTED);

    /* 2017/ alone: 2 offices x 3 geos x 2 metrics; not 2017-H1/... */
    s_snap_t s = { .prefix = "2017/", .prefix_ok = true };
    assert_int_equal(aggregate_db_snapshot(fx->db, "2017/", 5, 0, s_snap_cb, &s), 0);
    assert_int_equal(s.n_chunks, 1);
    assert_false(s.last_more);
    assert_true(s.prefix_ok);
    assert_int_equal(s.n_keys, 12);
    assert_int_equal(s.seq, 2);
    assert_int_equal(s.sum, 2 * 3 * (3 + 10));

    /* chunked: 5 keys a chunk, same seq, more on all but the last */
    s_snap_t c = { .prefix = "2017", .prefix_ok = true };
    assert_int_equal(aggregate_db_snapshot(fx->db, "2017", 4, 5, s_snap_cb, &c), 0);
    assert_int_equal(c.n_keys, 48);
    assert_int_equal(c.n_chunks, 10);
    assert_false(c.last_more);
    assert_true(c.prefix_ok);

    /* exactly a chunk's worth: no empty trailing chunk */
    s_snap_t e = { .prefix = "2017/", .prefix_ok = true };
    assert_int_equal(aggregate_db_snapshot(fx->db, "2017/", 5, 12, s_snap_cb, &e), 0);
    assert_int_equal(e.n_chunks, 1);
    assert_int_equal(e.n_keys, 12);

    /* everything, and nothing */
    s_snap_t all = { .prefix = "", .prefix_ok = true };
    assert_int_equal(aggregate_db_snapshot(fx->db, "", 0, 0, s_snap_cb, &all), 0);
    assert_int_equal(all.n_keys, 96);
    s_snap_t none = { .prefix = "1999/", .prefix_ok = true };
    assert_int_equal(aggregate_db_snapshot(fx->db, "1999/", 5, 0, s_snap_cb, &none), 0);
    assert_int_equal(none.n_chunks, 1);
    assert_int_equal(none.n_keys, 0);
    assert_false(none.last_more);
}

/*  A batch whose changed keys would not fit one totals message is
 *  committed in several; the caller goes on with the rest. */
static void
test_aggregate_batch_split_by_keys(void **state)
{
    fx_t *fx = *state;
    enum { N = 1600 };
    aggregate_item_t *items = calloc(N, sizeof *items);
    amity_buf_t *bufs = calloc(N, sizeof *bufs);
    char(*offices)[16] = calloc(N, sizeof *offices);
    assert_non_null(items);
    assert_non_null(bufs);
    assert_non_null(offices);
    for (size_t i = 0; i < N; i++) {
        amity_record_t r;
        s_delegation(&r, "d-1", 1, 1, 2);
        r.year = 1950 + (int)(i % 70);
        (void)snprintf(offices[i], sizeof offices[i], "o-%zu", i);
        amity_buf_init(&bufs[i]);
        assert_int_equal(amity_record_encode(&r, &bufs[i]), 0);
        items[i] = (aggregate_item_t){
            .office = offices[i], .ok = true, .tag = i, .rec = { bufs[i].data, bufs[i].len }
        };
    }
    size_t off = 0, commits = 0;
    while (off < N) {
        const aggregate_result_t *r = NULL;
        assert_int_equal(aggregate_apply_batch(fx->db, items + off, N - off, &r), 0);
        assert_true(r->n_done > 0);
        assert_true(r->n_kv <= AGGREGATE_KV_PER_COMMIT);
        for (size_t i = 0; i < r->n_done; i++) {
            assert_int_equal(r->verdicts[i].status, AMITY_VERDICT_ACCEPTED);
        }
        off += r->n_done;
        commits++;
    }
    assert_true(commits >= 2);
    assert_int_equal(aggregate_db_seq(fx->db), commits);
    /* every record counted once */
    int64_t sum = 0;
    for (int y = 1950; y < 2020; y++) {
        char key[64];
        (void)snprintf(key, sizeof key, "%d/all/delegation_in/all/delegations", y);
        sum += s_total(fx, key);
    }
    assert_int_equal(sum, N);
    assert_int_equal(s_total(fx, "1950/o-0/delegation_in/US/people"), 2);
    for (size_t i = 0; i < N; i++) {
        amity_buf_clear(&bufs[i]);
    }
    free(bufs);
    free(items);
    free(offices);
}

/*  A published total as a test sees it. */
typedef struct {
    char key[AMITY_KEY_MAX];
    int64_t val;
} s_pair_t;

typedef struct {
    s_pair_t *p;
    size_t n, cap;
    uint64_t seq;
} s_pairs_t;

static void
s_pairs_add(s_pairs_t *ps, const char *key, size_t key_len, int64_t val)
{
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? ps->cap * 2 : 256;
        ps->p = realloc(ps->p, ps->cap * sizeof *ps->p);
        assert_non_null(ps->p);
    }
    assert_true(key_len < AMITY_KEY_MAX);
    memcpy(ps->p[ps->n].key, key, key_len);
    ps->p[ps->n].key[key_len] = '\0';
    ps->p[ps->n].val = val;
    ps->n++;
}

static int
s_pairs_cmp(const void *a, const void *b)
{
    return strcmp(((const s_pair_t *)a)->key, ((const s_pair_t *)b)->key);
}

/*  Sorts, sums equal keys and drops zeros: the set of live totals. */
static void
s_pairs_normalise(s_pairs_t *ps)
{
    qsort(ps->p, ps->n, sizeof *ps->p, s_pairs_cmp);
    size_t w = 0;
    for (size_t i = 0; i < ps->n; i++) {
        if (w > 0 && strcmp(ps->p[w - 1].key, ps->p[i].key) == 0) {
            ps->p[w - 1].val += ps->p[i].val;
        } else {
            ps->p[w++] = ps->p[i];
        }
    }
    size_t z = 0;
    for (size_t i = 0; i < w; i++) {
        if (ps->p[i].val != 0) {
            ps->p[z++] = ps->p[i];
        }
    }
    ps->n = z;
}

static int
s_pairs_cb(uint64_t seq, const amity_kv_t *kv, size_t n_kv, bool more, void *arg)
{
    s_pairs_t *ps = arg;
    (void)more;
    ps->seq = seq;
    for (size_t i = 0; i < n_kv; i++) {
        s_pairs_add(ps, (const char *)kv[i].key.ptr, kv[i].key.len, kv[i].val);
    }
    return 0;
}

/*  Every published total of the shard, in snapshot order (checked). */
static void
s_snapshot_all(fx_t *fx, s_pairs_t *out)
{
    memset(out, 0, sizeof *out);
    assert_int_equal(aggregate_db_snapshot(fx->db, "", 0, 0, s_pairs_cb, out), 0);
    for (size_t i = 0; i < out->n; i++) {
        assert_true(out->p[i].val != 0); /* a shard's snapshot omits zeros */
        if (i > 0) {
            assert_true(strcmp(out->p[i - 1].key, out->p[i].key) < 0);
        }
    }
}

static void
s_assert_pairs_equal(const s_pairs_t *a, const s_pairs_t *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->p[i].key, b->p[i].key);
        assert_true(a->p[i].val == b->p[i].val);
    }
}

/*  Every key LMDB's totals database holds is a finest key. */
static int
s_finest_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    (void)val;
    size_t *n = arg;
    assert_int_equal(val_len, 8);
    assert_true(amity_key_is_finest(key, key_len));
    (*n)++;
    return 0;
}

static int
s_txn_all_finest(amity_txn_t *txn, void *arg)
{
    return amity_txn_scan(txn, AGGREGATE_DB_TOTALS, NULL, 0, NULL, 0, s_finest_cb, arg);
}

static size_t
s_assert_stored_finest(fx_t *fx)
{
    size_t n = 0;
    assert_int_equal(amity_store_view(aggregate_db_store(fx->db), s_txn_all_finest, &n), 0);
    return n;
}

static uint64_t
s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

#define S_OFFICES 3
#define S_IDS     40
#define S_REVS    4
static const char *const s_offices[S_OFFICES] = { "hoi-viet-my", "vufo", "ngo-desk" };

/*  Revision rev of id (office o): its content is a pure function of
 *  (o, id, rev), so resends are duplicates and there is no conflict.
 *  Kinds with and without a country, AQ (no region), zero metrics. */
static void
s_gen(amity_record_t *r, int o, int id, uint64_t rev)
{
    static const char *const countries[] = { "US", "DE", "AQ", "VN", "KE", "" };
    uint64_t h = s_mix(((uint64_t)o << 40) ^ ((uint64_t)id << 8) ^ rev);
    char name[16];
    (void)snprintf(name, sizeof name, "g-%d", id);
    if (rev == S_REVS && h % 3 == 0) {
        s_retraction(r, name, rev);
        return;
    }
    s_delegation(r, name, rev, (uint32_t)(h >> 8) % 4, (uint32_t)(h >> 16) % 50);
    r->year = 2015 + (int)((h >> 24) % 4);
    r->month = 1 + (int)((h >> 28) % 12);
    strcpy(r->country, countries[(h >> 32) % 5]);
    switch ((h >> 40) % 3) {
    case 0:
        break; /* delegation_in */
    case 1:
        r->kind = AMITY_KIND_CONTACT;
        r->metric_mask = 1u << AMITY_METRIC_PARTNERS;
        memset(r->metrics, 0, sizeof r->metrics);
        r->metrics[AMITY_METRIC_PARTNERS] = (uint32_t)(h >> 44) % 9;
        break;
    default:
        r->kind = AMITY_KIND_RELIEF;
        r->metric_mask = 0;
        memset(r->metrics, 0, sizeof r->metrics);
        r->has_amount = true;
        r->amount = (int64_t)((h >> 44) % 100000);
        strcpy(r->currency, (h >> 50) % 2 ? "USD" : "VND");
        strcpy(r->country, countries[(h >> 32) % 6]); /* relief may have none */
        break;
    }
}

/*  The reference: every published total as the sum over the latest
 *  revision of every id, from amity_keys_derive (not from finest keys). */
static void
s_reference(const uint64_t latest[S_OFFICES][S_IDS], s_pairs_t *ref)
{
    memset(ref, 0, sizeof *ref);
    for (int o = 0; o < S_OFFICES; o++) {
        for (int id = 0; id < S_IDS; id++) {
            if (latest[o][id] == 0) {
                continue;
            }
            amity_record_t r;
            amity_delta_t d[AMITY_DELTAS_MAX];
            s_gen(&r, o, id, latest[o][id]);
            int n = amity_keys_derive(&r, s_offices[o], +1, d);
            assert_true(n >= 0);
            for (int k = 0; k < n; k++) {
                s_pairs_add(ref, d[k].key, strlen(d[k].key), d[k].delta);
            }
        }
    }
    s_pairs_normalise(ref);
}

/*  Random resends, corrections and retractions in random batches: every
 *  published total equals the reference after each batch, the published
 *  values of a commit are the in-memory ones, LMDB holds finest keys only,
 *  and a reopen rolls the same totals up again. */
static void
test_aggregate_rollup_matches_reference(void **state)
{
    fx_t *fx = *state;
    uint64_t latest[S_OFFICES][S_IDS] = { { 0 } };
    amity_buf_t *bufs = calloc(64, sizeof *bufs);
    assert_non_null(bufs);
    uint64_t rnd = 12345;
    s_pairs_t ref, got;

    for (int batch = 0; batch < 60; batch++) {
        aggregate_item_t items[64];
        amity_verdict_status_t want[64];
        size_t n = 1 + (size_t)(s_mix(rnd++) % 64);
        for (size_t i = 0; i < n; i++) {
            uint64_t h = s_mix(rnd++);
            int o = (int)(h % S_OFFICES);
            int id = (int)((h >> 8) % S_IDS);
            uint64_t rev = 1 + (h >> 16) % S_REVS;
            amity_record_t r;
            s_gen(&r, o, id, rev);
            amity_buf_reset(&bufs[i]);
            assert_int_equal(amity_record_encode(&r, &bufs[i]), 0);
            items[i] = (aggregate_item_t){
                .office = s_offices[o], .ok = true, .tag = i, .rec = { bufs[i].data, bufs[i].len }
            };
            /* a higher rev than any before is accepted, in batch order too */
            want[i] = rev > latest[o][id] ? AMITY_VERDICT_ACCEPTED : AMITY_VERDICT_DUPLICATE;
            if (rev > latest[o][id]) {
                latest[o][id] = rev;
            }
        }
        const aggregate_result_t *res = s_apply(fx, items, n);
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(res->verdicts[i].status, want[i]);
        }
        for (size_t k = 0; k < res->n_kv; k++) {
            char key[AMITY_KEY_MAX];
            assert_true(amity_view_copy(res->kv[k].key, key, sizeof key));
            assert_true(res->kv[k].val == s_total(fx, key));
        }
        s_reference((const uint64_t(*)[S_IDS])latest, &ref);
        s_snapshot_all(fx, &got);
        assert_int_equal(got.seq, aggregate_db_seq(fx->db));
        s_assert_pairs_equal(&got, &ref);
        free(got.p);
        free(ref.p);
        if (batch % 7 == 6) {
            /* a restart in the middle: the rolled-up totals go on from there */
            aggregate_db_destroy(&fx->db);
            assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), 0);
        }
    }
    assert_true(s_assert_stored_finest(fx) > 0);
    uint64_t seq = aggregate_db_seq(fx->db);
    s_snapshot_all(fx, &ref);
    size_t n_keys = aggregate_db_n_totals(fx->db);
    aggregate_db_destroy(&fx->db);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), 0);
    assert_int_equal(aggregate_db_seq(fx->db), seq);
    s_snapshot_all(fx, &got);
    s_assert_pairs_equal(&got, &ref);
    /* keys back at 0 are not rebuilt: the reopened shard holds fewer or as many */
    assert_true(aggregate_db_n_totals(fx->db) <= n_keys);
    assert_int_equal(aggregate_db_n_totals(fx->db), ref.n);
    free(got.p);
    free(ref.p);
    for (size_t i = 0; i < 64; i++) {
        amity_buf_clear(&bufs[i]);
    }
    free(bufs);
}

/*  A record without a country is stored under the finest GEO "-", which
 *  is never published nor served. */
static void
test_aggregate_no_country_marker(void **state)
{
    fx_t *fx = *state;
    amity_record_t r;
    memset(&r, 0, sizeof r);
    strcpy(r.id, "relief-1");
    r.rev = 1;
    r.kind = AMITY_KIND_RELIEF;
    r.year = 2017;
    r.month = 6;
    r.day = 30;
    r.has_amount = true;
    r.amount = 60000000000;
    strcpy(r.currency, "VND");
    const aggregate_result_t *res = s_apply_one(fx, "ngo-desk", &r, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(res->n_kv, 8);
    assert_int_equal(res->n_finest, 1);
    assert_true(s_stored(fx, "2017-06/ngo-desk/relief/-/amount.VND") == 60000000000);
    assert_true(s_total(fx, "2017-06/ngo-desk/relief/all/amount.VND") == 60000000000);
    assert_true(s_total(fx, "2017/all/relief/all/amount.VND") == 60000000000);
    assert_int_equal(s_total(fx, "2017-06/ngo-desk/relief/-/amount.VND"), 0);
    s_pairs_t got;
    s_snapshot_all(fx, &got);
    assert_int_equal(got.n, 8);
    for (size_t i = 0; i < got.n; i++) {
        assert_null(strstr(got.p[i].key, "/-/"));
    }
    free(got.p);
    for (size_t i = 0; i < res->n_kv; i++) {
        char key[AMITY_KEY_MAX];
        assert_true(amity_view_copy(res->kv[i].key, key, sizeof key));
        assert_null(strstr(key, "/-/"));
    }
}

/*  What a format 1 shard looked like: records, every published key in
 *  totals, meta format 1. */
typedef struct {
    fx_t *fx;
    uint64_t latest[S_OFFICES][S_IDS];
    bool stale_totals; /* store a wrong total, as a damaged old store might */
} s_v1_t;

static int
s_txn_make_v1(amity_txn_t *txn, void *arg)
{
    s_v1_t *v = arg;
    uint8_t be[8];
    s_pairs_t ref;
    s_reference((const uint64_t(*)[S_IDS])v->latest, &ref);
    for (size_t i = 0; i < ref.n; i++) {
        int64_t val = ref.p[i].val + (v->stale_totals && i == 0 ? 1000 : 0);
        aggregate_be64_put(be, (uint64_t)val);
        assert_int_equal(
            amity_txn_put(txn, AGGREGATE_DB_TOTALS, ref.p[i].key, strlen(ref.p[i].key), be, 8), 0);
    }
    free(ref.p);
    for (int o = 0; o < S_OFFICES; o++) {
        for (int id = 0; id < S_IDS; id++) {
            if (v->latest[o][id] == 0) {
                continue;
            }
            amity_record_t r;
            amity_buf_t b;
            uint8_t key[128];
            amity_buf_init(&b);
            s_gen(&r, o, id, v->latest[o][id]);
            assert_int_equal(amity_record_encode(&r, &b), 0);
            size_t ol = strlen(s_offices[o]);
            memcpy(key, s_offices[o], ol);
            key[ol] = '\0';
            memcpy(key + ol + 1, r.id, strlen(r.id));
            assert_int_equal(
                amity_txn_put(txn, AGGREGATE_DB_RECORDS, key, ol + 1 + strlen(r.id), b.data, b.len),
                0);
            amity_buf_clear(&b);
        }
    }
    aggregate_be64_put(be, 1);
    assert_int_equal(amity_txn_put(txn, AGGREGATE_DB_META, "format", 6, be, 8), 0);
    aggregate_be64_put(be, 77);
    assert_int_equal(amity_txn_put(txn, AGGREGATE_DB_META, "seq", 3, be, 8), 0);
    return 0;
}

static int
s_txn_format(amity_txn_t *txn, void *arg)
{
    amity_buf_t b;
    amity_buf_init(&b);
    assert_int_equal(amity_txn_get(txn, AGGREGATE_DB_META, "format", 6, &b), 0);
    assert_int_equal(b.len, 8);
    *(uint64_t *)arg = aggregate_be64_get(b.data);
    amity_buf_clear(&b);
    return 0;
}

static void
s_write_v1(fx_t *fx, s_v1_t *v)
{
    amity_store_t *st = NULL;
    amity_store_opts_t opts = { .no_sync = true,
                                .n_dbs = 4,
                                .dbs = { "records", "totals", "rejects", "meta" } };
    aggregate_db_destroy(&fx->db);
    s_rmdir(fx->dir);
    assert_int_equal(amity_store_open(&st, fx->dir, &opts), 0);
    v->fx = fx;
    assert_int_equal(amity_store_update(st, s_txn_make_v1, v), 0);
    amity_store_destroy(&st);
}

/*  A format 1 store (every key stored) opens as format 2: its finest
 *  totals are recomputed from the records (a wrong stored total does not
 *  survive), seq is kept, and the published totals are the reference. */
static void
test_aggregate_migrates_format_1(void **state)
{
    fx_t *fx = *state;
    s_v1_t *v = calloc(1, sizeof *v);
    assert_non_null(v);
    for (int o = 0; o < S_OFFICES; o++) {
        for (int id = 0; id < S_IDS; id++) {
            v->latest[o][id] = s_mix((uint64_t)(o * 100 + id)) % (S_REVS + 1); /* 0: never sent */
        }
    }
    v->stale_totals = true;
    s_write_v1(fx, v);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), 0);
    assert_int_equal(aggregate_db_seq(fx->db), 77);
    uint64_t format = 0;
    assert_int_equal(amity_store_view(aggregate_db_store(fx->db), s_txn_format, &format), 0);
    assert_int_equal(format, AGGREGATE_FORMAT);
    size_t n_stored = s_assert_stored_finest(fx);
    assert_true(n_stored > 0);
    s_pairs_t ref, got;
    s_reference((const uint64_t(*)[S_IDS])v->latest, &ref);
    s_snapshot_all(fx, &got);
    s_assert_pairs_equal(&got, &ref);
    free(got.p);
    /* it goes on from there: a resend is a duplicate, a correction counts */
    for (int id = 0; id < S_IDS; id++) {
        if (v->latest[0][id] > 0 && v->latest[0][id] < S_REVS) {
            amity_record_t r;
            s_gen(&r, 0, id, v->latest[0][id]);
            s_apply_one(fx, s_offices[0], &r, AMITY_VERDICT_DUPLICATE);
            s_gen(&r, 0, id, S_REVS);
            s_apply_one(fx, s_offices[0], &r, AMITY_VERDICT_ACCEPTED);
            v->latest[0][id] = S_REVS;
            break;
        }
    }
    free(ref.p);
    s_reference((const uint64_t(*)[S_IDS])v->latest, &ref);
    s_snapshot_all(fx, &got);
    s_assert_pairs_equal(&got, &ref);
    free(got.p);
    /* reopening a migrated store changes nothing */
    n_stored = s_assert_stored_finest(fx);
    aggregate_db_destroy(&fx->db);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), 0);
    assert_int_equal(s_assert_stored_finest(fx), n_stored);
    s_snapshot_all(fx, &got);
    s_assert_pairs_equal(&got, &ref);
    free(got.p);
    free(ref.p);
    free(v);
}

static int
s_txn_set_format(amity_txn_t *txn, void *arg)
{
    uint8_t be[8];
    aggregate_be64_put(be, *(const uint64_t *)arg);
    return amity_txn_put(txn, AGGREGATE_DB_META, "format", 6, be, 8);
}

/*  A format this build does not know is refused, and left alone. */
static void
test_aggregate_refuses_unknown_format(void **state)
{
    fx_t *fx = *state;
    uint64_t three = 3;
    assert_int_equal(amity_store_update(aggregate_db_store(fx->db), s_txn_set_format, &three), 0);
    aggregate_db_destroy(&fx->db);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), AMITY_EINVAL);
    assert_null(fx->db);
    amity_store_t *st = NULL;
    amity_store_opts_t opts = { .no_sync = true,
                                .n_dbs = 4,
                                .dbs = { "records", "totals", "rejects", "meta" } };
    assert_int_equal(amity_store_open(&st, fx->dir, &opts), 0);
    uint64_t format = 0;
    assert_int_equal(amity_store_view(st, s_txn_format, &format), 0);
    assert_int_equal(format, 3);
    amity_store_destroy(&st);
    /* the teardown expects a db */
    s_rmdir(fx->dir);
    assert_int_equal(aggregate_db_open(&fx->db, fx->dir, 0, true), 0);
}

/*  int64 overflow saturates (and is logged): sums are then no longer
 *  exact, but nothing an office sends stops the shard. Here the finest
 *  "-" key moves while every published key nets to 0 in saturated sums. */
static void
test_aggregate_overflow_does_not_stop(void **state)
{
    fx_t *fx = *state;
    amity_record_t r[3];
    for (int i = 0; i < 3; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].rev = 1;
        r[i].kind = AMITY_KIND_RELIEF;
        r[i].year = 2020;
        r[i].month = 3;
        r[i].day = 1;
        r[i].has_amount = true;
        r[i].amount = INT64_MAX;
        strcpy(r[i].currency, "VND");
    }
    strcpy(r[0].id, "big-us");
    strcpy(r[0].country, "US");
    strcpy(r[1].id, "big-none");
    r[2] = r[0];
    r[2].rev = 2;
    r[2].amount = 0; /* a correction to 0: the US contribution goes */
    aggregate_item_t items[3];
    for (int i = 0; i < 3; i++) {
        items[i] = s_item(fx, OFFICE, (uint64_t)i, &r[i]);
    }
    const aggregate_result_t *res = s_apply(fx, items, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(res->verdicts[i].status, AMITY_VERDICT_ACCEPTED);
    }
    /* US: +MAX - MAX; "all": MAX + MAX saturates, - MAX: 0 everywhere */
    assert_int_equal(res->n_kv, 0);
    assert_int_equal(res->n_finest, 1); /* 2020-03/hoi-viet-my/relief/-/amount.VND */
    assert_int_equal(aggregate_db_seq(fx->db), 1);
    /* the shard goes on */
    amity_record_t d;
    s_delegation(&d, "d-1", 1, 3, 10);
    s_apply_one(fx, OFFICE, &d, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(s_total(fx, KEY_DEL), 3);
}

/*  --check-config: what aggregate_config_check refuses, without opening
 *  the store or creating the state directory. */
static void
test_aggregate_config_check(void **state)
{
    fx_t *fx = *state;
    char keys[64] = "/tmp/amity-agg-keys-XXXXXX";
    char key[128];
    char path[256];
    assert_non_null(mkdtemp(keys));
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "svc-shard-0");
    (void)snprintf(key, sizeof key, "%s/svc-shard-0", keys);
    assert_int_equal(zcert_save(cert, key), 0);
    zcert_destroy(&cert);
    (void)snprintf(key, sizeof key, "%s/svc-shard-0_secret", keys);

    aggregate_config_t cfg = { 0 };
    cfg.bind = (char *)"tcp://127.0.0.1:7710";
    cfg.batch = 10;
    cfg.batch_ms = 5;
    (void)snprintf(path, sizeof path, "%s/new/shard-0", fx->dir);
    cfg.state = path;
    assert_int_equal(aggregate_config_check(&cfg), 0);
    assert_int_equal(access(path, F_OK), -1); /* checked, not created */
    /* an existing directory */
    cfg.state = fx->dir;
    assert_int_equal(aggregate_config_check(&cfg), 0);

    /* the state directory under a file */
    (void)snprintf(path, sizeof path, "%s/data.mdb/shard-0", fx->dir);
    cfg.state = path;
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.state = fx->dir;

    /* endpoints: malformed, beyond the last port, not loopback without keys */
    cfg.bind = (char *)"tcp://127.0.0.1:65533";
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.bind = (char *)"tcp://127.0.0.1";
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.bind = (char *)"tcp://0.0.0.0:7710";
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);

    /* with keys: both options, a secret certificate, readable peers */
    cfg.key = key;
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.peers_dir = keys;
    assert_int_equal(aggregate_config_check(&cfg), 0);
    cfg.key = (char *)"/nonexistent/svc-shard-0_secret";
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.key = key;
    cfg.peers_dir = (char *)"/nonexistent";
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.peers_dir = fx->dir; /* data.mdb is no certificate */
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    cfg.peers_dir = keys;
    cfg.batch = 0;
    assert_int_equal(aggregate_config_check(&cfg), AMITY_EINVAL);
    s_rmdir(keys);
}

/*  A record the validator rejected, kept in the fixture: {id, note}. */
static aggregate_item_t
s_rejected_item(fx_t *fx, const char *office, const char *id, const char *why)
{
    static const char note[] = "Đoàn Hội hữu nghị Việt – Mỹ";
    amity_fields_t f = { 0 };
    assert_true(fx->n_bufs < S_BUFS);
    amity_buf_t *b = &fx->bufs[fx->n_bufs++];
    amity_buf_reset(b);
    f.n_fields = 2;
    f.fields[0] = (amity_field_t){ "id", 2, { .type = AMITY_VAL_STR, .as.s = { id, strlen(id) } } };
    f.fields[1] =
        (amity_field_t){ "note", 4, { .type = AMITY_VAL_STR, .as.s = { note, sizeof note - 1 } } };
    assert_int_equal(amity_fields_encode(&f, b), 0);
    return (aggregate_item_t){
        .office = office,
        .ing = amity_view_str("ing-1"),
        .conn = amity_view_str("c"),
        .tag = 1,
        .ok = false,
        .rec = { b->data, b->len },
        .why = amity_view_str(why),
    };
}

static bool
s_view_is(amity_view_t v, const char *s)
{
    return v.len == strlen(s) && (v.len == 0 || memcmp(v.ptr, s, v.len) == 0);
}

/*  A page's items copied out: "office id why" per line. */
static void
s_page_text(const aggregate_rejects_page_t *p, amity_buf_t *out)
{
    for (size_t i = 0; i < p->n_items; i++) {
        const amity_reject_item_t *it = &p->items[i];
        assert_int_equal(amity_buf_append(out, it->office.ptr, it->office.len), 0);
        assert_int_equal(amity_buf_append(out, " ", 1), 0);
        assert_int_equal(amity_buf_append(out, it->id.ptr, it->id.len), 0);
        assert_int_equal(amity_buf_append(out, " ", 1), 0);
        assert_int_equal(amity_buf_append(out, it->why.ptr, it->why.len), 0);
        assert_int_equal(amity_buf_append(out, "\n", 1), 0);
    }
}

static int
s_txn_put_junk(amity_txn_t *txn, void *arg)
{
    (void)arg;
    /* a key of the rejects form holding a value that is not a reject */
    static const uint8_t key[] = {
        'h',  'o',  'i',  '-',  'v',  'i',  'e',  't',  '-', 'm', 'y', 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0,   0,   0,   1
    };
    return amity_txn_put(txn, AGGREGATE_DB_REJECTS, key, sizeof key, "\xc1", 1);
}

static void
test_aggregate_rejects_page_scan(void **state)
{
    fx_t *fx = *state;
    const aggregate_rejects_page_t *p = NULL;
    static const char *const why_date = "date: 2017-02-30 is not a calendar date";
    static const char *const why_kind = "kind: 'giao_lưu' is not a kind";

    /* nothing kept yet */
    assert_int_equal(aggregate_db_rejects(fx->db, "", 0, NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 0);
    assert_false(p->more);
    assert_null(p->next.ptr);

    /* five validator rejections over two offices, and a conflict */
    aggregate_item_t items[5] = {
        s_rejected_item(fx, OFFICE, "hvm-1", why_date),
        s_rejected_item(fx, "hoi-viet-duc", "hvd-1", why_kind),
        s_rejected_item(fx, OFFICE, "hvm-2", why_kind),
        s_rejected_item(fx, OFFICE, "hvm-3", why_date),
        s_rejected_item(fx, "hoi-viet-duc", "hvd-2", why_date),
    };
    s_apply(fx, items, 5);
    amity_record_t a, b;
    s_delegation(&a, "hvm-c", 1, 1, 2);
    s_delegation(&b, "hvm-c", 1, 1, 3);
    s_apply_one(fx, OFFICE, &a, AMITY_VERDICT_ACCEPTED);
    s_apply_one(fx, OFFICE, &b, AMITY_VERDICT_REJECTED);

    /* every office: key order, so by office, then by time */
    amity_buf_t all, paged;
    amity_buf_init(&all);
    amity_buf_init(&paged);
    assert_int_equal(aggregate_db_rejects(fx->db, "", 0, NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 6);
    assert_false(p->more);
    assert_non_null(p->next.ptr);
    assert_true(s_view_is(p->items[0].office, "hoi-viet-duc"));
    assert_true(s_view_is(p->items[0].id, "hvd-1"));
    assert_true(s_view_is(p->items[0].why, why_kind));
    assert_true(s_view_is(p->items[1].id, "hvd-2"));
    assert_true(s_view_is(p->items[2].office, OFFICE));
    assert_true(s_view_is(p->items[2].id, "hvm-1"));
    assert_true(s_view_is(p->items[5].id, "hvm-c"));
    assert_true(s_view_is(p->items[5].why, "rev: 1 is already recorded with other content "
                                           "(conflict)"));
    /* the record as sent (the validator's items), byte for byte */
    assert_int_equal(p->items[0].rec.len, items[1].rec.len);
    assert_memory_equal(p->items[0].rec.ptr, items[1].rec.ptr, items[1].rec.len);
    int64_t now = amity_clock_wall_ms();
    for (size_t i = 0; i < p->n_items; i++) {
        assert_true(p->items[i].ts > 0 && p->items[i].ts <= (uint64_t)now);
        if (i > 0 && s_view_is(p->items[i].office, OFFICE) &&
            s_view_is(p->items[i - 1].office, OFFICE)) {
            assert_true(p->items[i].ts >= p->items[i - 1].ts);
        }
    }
    s_page_text(p, &all);

    /* one office: its prefix only */
    assert_int_equal(aggregate_db_rejects(fx->db, "hoi-viet-duc", 12, NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 2);
    assert_false(p->more);
    assert_int_equal(aggregate_db_rejects(fx->db, OFFICE, strlen(OFFICE), NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 4);
    for (size_t i = 0; i < p->n_items; i++) {
        assert_true(s_view_is(p->items[i].office, OFFICE));
    }
    assert_int_equal(aggregate_db_rejects(fx->db, "hoi-viet-uc", 11, NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 0);

    /* pages of 4 resumed after `next`: the same list */
    uint8_t after[128];
    size_t after_len = 0;
    int pages = 0;
    do {
        assert_int_equal(
            aggregate_db_rejects(fx->db, "", 0, after_len ? after : NULL, after_len, 4, &p), 0);
        assert_true(p->n_items <= 4);
        s_page_text(p, &paged);
        pages++;
        if (p->more) {
            assert_non_null(p->next.ptr);
            assert_true(p->next.len <= sizeof after);
            memcpy(after, p->next.ptr, p->next.len);
            after_len = p->next.len;
        }
    } while (p->more && pages < 10);
    assert_int_equal(pages, 2);
    assert_int_equal(paged.len, all.len);
    assert_memory_equal(paged.data, all.data, all.len);

    /* a value that is not a reject is skipped, yet the page moves past it */
    assert_int_equal(amity_store_update(aggregate_db_store(fx->db), s_txn_put_junk, NULL), 0);
    assert_int_equal(aggregate_db_rejects(fx->db, OFFICE, strlen(OFFICE), NULL, 0, 0, &p), 0);
    assert_int_equal(p->n_items, 4);
    assert_int_equal(p->next.len, strlen(OFFICE) + 1 + 8 + 4);
    assert_int_equal(p->next.ptr[p->next.len - 1], 1); /* the junk key, scanned last */

    /* the office must be an office id */
    assert_int_equal(aggregate_db_rejects(fx->db, "Hoi Viet", 8, NULL, 0, 0, &p), AMITY_EINVAL);
    amity_buf_clear(&all);
    amity_buf_clear(&paged);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_aggregate_first_accept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_resend_is_duplicate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_correction_moves_totals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_retraction_zeroes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_tombstone_then_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_conflict_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_revisions_in_one_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_validator_rejection_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_seq_per_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_reopen_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_snapshot_prefix, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_batch_split_by_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_rollup_matches_reference, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_no_country_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_migrates_format_1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_refuses_unknown_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_overflow_does_not_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_config_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aggregate_rejects_page_scan, setup, teardown),
    };
    return cmocka_run_group_tests_name("svc_aggregate", tests, NULL, NULL);
}
