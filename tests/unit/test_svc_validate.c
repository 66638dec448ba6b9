/*  test_svc_validate: validate's work handler without sockets (apply items,
 *  canonical bytes, reasons, the split over two shards), its option checks,
 *  one pass through the real loop over inproc:// sockets, and a shard
 *  link that dies under the real loop over TCP (logged, counted, shown).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/buf.h"
#include "amity/config.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/record.h"

#include "validate.h"

#define OFFICE "hoi-viet-my"
#define ING    "ing-0123456789abcdef"
#define N_RECS 16

static const uint8_t CONN[] = { 0x00, 0x6b, 0x8b, 0x45, 0x67 };

/* One record of the test work message and what should become of it. */
typedef struct {
    amity_buf_t bytes; /* the record as sent */
    uint64_t tag;
    bool ok;         /* expected to pass */
    uint32_t shard;  /* expected shard (of 2) */
    const char *why; /* expected reason prefix when !ok */
} expect_t;

typedef struct {
    char *ingest_items[1];
    char *shard_items[2];
    amity_strlist_t ingest;
    amity_strlist_t shards;
    validate_t *validate;
    expect_t recs[N_RECS];
    size_t n_recs;
    amity_buf_t work;
} fixture_t;

/* ------------------------------------------------------------------ */
/* building records                                                     */

static void
s_str(amity_fields_t *f, const char *name, const char *val)
{
    amity_field_t *fld = &f->fields[f->n_fields++];
    fld->name = name;
    fld->name_len = strlen(name);
    fld->val.type = AMITY_VAL_STR;
    fld->val.as.s.ptr = val;
    fld->val.as.s.len = strlen(val);
}

static void
s_uint(amity_fields_t *f, const char *name, uint64_t val)
{
    amity_field_t *fld = &f->fields[f->n_fields++];
    fld->name = name;
    fld->name_len = strlen(name);
    fld->val.type = AMITY_VAL_UINT;
    fld->val.as.u = val;
}

static void
s_bool(amity_fields_t *f, const char *name, bool val)
{
    amity_field_t *fld = &f->fields[f->n_fields++];
    fld->name = name;
    fld->name_len = strlen(name);
    fld->val.type = AMITY_VAL_BOOL;
    fld->val.as.b = val;
}

static void
s_delegation(amity_fields_t *f, const char *id, const char *date)
{
    memset(f, 0, sizeof *f);
    if (id != NULL) {
        s_str(f, "id", id);
    }
    s_str(f, "kind", "delegation_in");
    s_str(f, "date", date);
    s_str(f, "country", "US");
    s_uint(f, "delegations", 1);
    s_uint(f, "people", 12);
    s_str(f, "note", "Đoàn đại biểu Hội hữu nghị Việt - Mỹ");
}

static uint32_t
s_shard(const char *id)
{
    return amity_shard_of(OFFICE, id, strlen(id), 2);
}

static expect_t *
s_add(fixture_t *fx, const amity_fields_t *f, bool ok, uint32_t shard, const char *why)
{
    expect_t *e = &fx->recs[fx->n_recs];

    assert_true(fx->n_recs < N_RECS);
    amity_buf_init(&e->bytes);
    if (f != NULL) {
        assert_int_equal(amity_fields_encode(f, &e->bytes), 0);
    }
    e->tag = 1000 + fx->n_recs;
    e->ok = ok;
    e->shard = shard;
    e->why = why;
    fx->n_recs++;
    return e;
}

/* The work message of fx->recs. */
static void
s_encode_work(fixture_t *fx, const char *office)
{
    amity_item_t items[N_RECS];
    amity_msg_t m;
    size_t i;

    memset(items, 0, sizeof items);
    for (i = 0; i < fx->n_recs; i++) {
        items[i].tag = fx->recs[i].tag;
        items[i].rec.ptr = fx->recs[i].bytes.data;
        items[i].rec.len = fx->recs[i].bytes.len;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_WORK;
    m.ing = amity_view_str(ING);
    m.conn.ptr = CONN;
    m.conn.len = sizeof CONN;
    m.office = amity_view_str(office);
    m.n_items = fx->n_recs;
    m.items = items;
    amity_buf_reset(&fx->work);
    assert_int_equal(amity_msg_encode(&m, &fx->work), 0);
}

/* The mixed batch: valid records on both shards, a decimal amount, a date
 * that does not exist, another office's record, a retraction, a record
 * that is not a map, a bad id and a missing id. */
static void
s_mixed_batch(fixture_t *fx)
{
    amity_fields_t f;
    static const uint8_t not_a_map[] = { 0x05 };
    bool seen[2] = { false, false };
    char *ids[8];
    int i;

    for (i = 0; i < 8 && !(seen[0] && seen[1] && i >= 2); i++) {
        ids[i] = malloc(16);
        assert_non_null(ids[i]);
        (void)snprintf(ids[i], 16, "v-%d", i);
        s_delegation(&f, ids[i], "2023-05-04");
        s_add(fx, &f, true, s_shard(ids[i]), NULL);
        seen[s_shard(ids[i])] = true;
    }
    assert_true(seen[0] && seen[1]); /* the ids do spread over both shards */

    memset(&f, 0, sizeof f);
    s_str(&f, "id", "aid-2017-1");
    s_str(&f, "kind", "aid_commitment");
    s_str(&f, "date", "2017-06-30");
    s_str(&f, "country", "DE");
    s_uint(&f, "projects", 2);
    s_str(&f, "amount", "1000.50");
    s_str(&f, "currency", "USD");
    s_add(fx, &f, true, s_shard("aid-2017-1"), NULL);

    s_delegation(&f, "bad-date", "2017-02-30");
    s_add(fx, &f, false, s_shard("bad-date"), "date: 2017-02-30 is not a calendar date");

    s_delegation(&f, "elsewhere", "2023-05-04");
    s_str(&f, "office", "hoi-viet-phap");
    s_add(fx, &f, false, s_shard("elsewhere"), "office: ");

    memset(&f, 0, sizeof f);
    s_str(&f, "id", ids[0]);
    s_uint(&f, "rev", 2);
    s_bool(&f, "retract", true);
    s_add(fx, &f, true, s_shard(ids[0]), NULL);

    {
        expect_t *e = s_add(fx, NULL, false, 0, "record: ");
        assert_int_equal(amity_buf_set(&e->bytes, not_a_map, sizeof not_a_map), 0);
    }

    s_delegation(&f, "bad id!", "2023-05-04");
    s_add(fx, &f, false, 0, "id: ");

    s_delegation(&f, NULL, "2023-05-04");
    s_add(fx, &f, false, 0, "id: required");

    s_encode_work(fx, OFFICE);
    for (int j = 0; j < i; j++) {
        free(ids[j]);
    }
}

/* ------------------------------------------------------------------ */
/* fixture                                                              */

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    validate_opts_t opts = { 0 };

    assert_non_null(fx);
    fx->ingest_items[0] = (char *)"tcp://127.0.0.1:17801";
    fx->shard_items[0] = (char *)"tcp://127.0.0.1:17810";
    fx->shard_items[1] = (char *)"tcp://127.0.0.1:17820";
    fx->ingest.n = 1;
    fx->ingest.items = fx->ingest_items;
    fx->shards.n = 2;
    fx->shards.items = fx->shard_items;
    opts.ingest = &fx->ingest;
    opts.shards = &fx->shards;
    opts.tz = "Asia/Ho_Chi_Minh";
    assert_int_equal(validate_new(&fx->validate, &opts), 0);
    validate_set_max_day(fx->validate, amity_days_from_civil(2024, 1, 1));
    amity_buf_init(&fx->work);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    size_t i;

    validate_destroy(&fx->validate);
    assert_null(fx->validate);
    validate_destroy(&fx->validate);
    for (i = 0; i < fx->n_recs; i++) {
        amity_buf_clear(&fx->recs[i].bytes);
    }
    amity_buf_clear(&fx->work);
    free(fx);
    return 0;
}

/* The canonical bytes validate should produce for an accepted record. */
static void
s_canonical(const amity_buf_t *orig, amity_buf_t *out)
{
    amity_fields_t f;
    amity_record_t rec;
    amity_validate_opts_t vo = { OFFICE, amity_days_from_civil(2024, 1, 1) };
    char why[AMITY_WHY_MAX];

    assert_int_equal(amity_fields_decode(orig->data, orig->len, &f, why, sizeof why), 0);
    assert_int_equal(amity_record_validate(&f, &vo, &rec, why), 0);
    amity_buf_reset(out);
    assert_int_equal(amity_record_encode(&rec, out), 0);
}

/* Checks the apply message of shard s against fx->recs. Returns the
 * number of items it carried. */
static size_t
s_check_shard(fixture_t *fx, const amity_buf_t *apply, uint32_t s)
{
    amity_msg_t m;
    char why[AMITY_WHY_MAX];
    amity_buf_t canon;
    size_t i;
    size_t k = 0;

    amity_buf_init(&canon);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(apply->data, apply->len, &m, why, sizeof why), 0);
    assert_int_equal(m.type, AMITY_MSG_APPLY);
    assert_int_equal(m.ing.len, strlen(ING));
    assert_memory_equal(m.ing.ptr, ING, m.ing.len);
    assert_int_equal(m.conn.len, sizeof CONN);
    assert_memory_equal(m.conn.ptr, CONN, sizeof CONN);
    assert_int_equal(m.office.len, strlen(OFFICE));
    assert_memory_equal(m.office.ptr, OFFICE, m.office.len);
    for (i = 0; i < fx->n_recs; i++) {
        const expect_t *e = &fx->recs[i];
        const amity_item_t *it;
        if (e->shard != s) {
            continue;
        }
        assert_true(k < m.n_items);
        it = &m.items[k++]; /* arrival order is kept within a shard */
        assert_int_equal(it->tag, e->tag);
        assert_int_equal(it->ok, e->ok);
        if (e->ok) {
            s_canonical(&e->bytes, &canon);
            assert_int_equal(it->rec.len, canon.len);
            assert_memory_equal(it->rec.ptr, canon.data, canon.len);
            assert_int_equal(it->why.len, 0);
        } else {
            assert_int_equal(it->rec.len, e->bytes.len);
            assert_memory_equal(it->rec.ptr, e->bytes.data, e->bytes.len); /* as sent */
            assert_true(it->why.len >= strlen(e->why));
            assert_memory_equal(it->why.ptr, e->why, strlen(e->why));
        }
    }
    assert_int_equal(k, m.n_items);
    amity_msg_clear(&m);
    amity_buf_clear(&canon);
    return k;
}

/* ------------------------------------------------------------------ */
/* tests                                                                */

static void
test_validate_work_splits_by_shard(void **state)
{
    fixture_t *fx = *state;
    const validate_stats_t *st;
    size_t n;
    size_t accepted = 0;
    size_t i;

    s_mixed_batch(fx);
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    assert_true(validate_apply(fx->validate, 0)->len > 0);
    assert_true(validate_apply(fx->validate, 1)->len > 0);
    n = s_check_shard(fx, validate_apply(fx->validate, 0), 0);
    n += s_check_shard(fx, validate_apply(fx->validate, 1), 1);
    assert_int_equal(n, fx->n_recs);

    for (i = 0; i < fx->n_recs; i++) {
        accepted += fx->recs[i].ok;
    }
    st = validate_stats(fx->validate);
    assert_int_equal(st->work_msgs, 1);
    assert_int_equal(st->validated, fx->n_recs);
    assert_int_equal(st->accepted, accepted);
    assert_int_equal(st->rejected, fx->n_recs - accepted);
    assert_int_equal(st->rejected_by[VALIDATE_WHY_DATE], 1);
    assert_int_equal(st->rejected_by[VALIDATE_WHY_OFFICE], 1);
    assert_int_equal(st->rejected_by[VALIDATE_WHY_RECORD], 1);
    assert_int_equal(st->rejected_by[VALIDATE_WHY_ID], 2);
    assert_string_equal(validate_why_name(VALIDATE_WHY_DATE), "date");
}

static void
test_validate_canonical_amount(void **state)
{
    fixture_t *fx = *state;
    amity_fields_t f;
    amity_msg_t m;
    amity_record_t rec;
    char why[AMITY_WHY_MAX];
    uint32_t s = s_shard("aid-2017-1");

    memset(&f, 0, sizeof f);
    s_str(&f, "id", "aid-2017-1");
    s_str(&f, "kind", "aid_commitment");
    s_str(&f, "date", "2017-06-30");
    s_str(&f, "country", "DE");
    s_uint(&f, "projects", 2);
    s_str(&f, "amount", "1000.50");
    s_str(&f, "currency", "USD");
    s_str(&f, "x-source", "bao-cao-6-thang");
    s_add(fx, &f, true, s, NULL);
    s_encode_work(fx, OFFICE);
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    assert_int_equal(validate_apply(fx->validate, 1 - s)->len, 0);

    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(validate_apply(fx->validate, s)->data,
                                      validate_apply(fx->validate, s)->len, &m, why, sizeof why),
                     0);
    assert_int_equal(m.n_items, 1);
    assert_true(m.items[0].ok);
    /* canonical: not the bytes sent (decimal string, x- field) */
    assert_false(m.items[0].rec.len == fx->recs[0].bytes.len &&
                 memcmp(m.items[0].rec.ptr, fx->recs[0].bytes.data, m.items[0].rec.len) == 0);
    assert_int_equal(
        amity_record_decode(m.items[0].rec.ptr, m.items[0].rec.len, &rec, why, sizeof why), 0);
    assert_string_equal(rec.id, "aid-2017-1");
    assert_true(rec.has_amount);
    assert_int_equal(rec.amount, 100050);
    assert_string_equal(rec.currency, "USD");
    assert_int_equal(rec.rev, 1);
    amity_msg_clear(&m);
}

static void
test_validate_date_rule_uses_max_day(void **state)
{
    fixture_t *fx = *state;
    amity_fields_t f;
    uint32_t s = s_shard("late");
    amity_msg_t m;
    char why[AMITY_WHY_MAX];

    s_delegation(&f, "late", "2024-01-02");
    s_add(fx, &f, false, s, "date: 2024-01-02 is later than tomorrow");
    s_encode_work(fx, OFFICE);
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    (void)s_check_shard(fx, validate_apply(fx->validate, s), s);

    validate_set_max_day(fx->validate, amity_days_from_civil(2024, 1, 2));
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(validate_apply(fx->validate, s)->data,
                                      validate_apply(fx->validate, s)->len, &m, why, sizeof why),
                     0);
    assert_true(m.items[0].ok);
    amity_msg_clear(&m);
}

static void
test_validate_outputs_reset_per_work(void **state)
{
    fixture_t *fx = *state;
    amity_fields_t f;

    s_mixed_batch(fx);
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    assert_true(validate_apply(fx->validate, 0)->len > 0);

    /* a second, smaller message: only its own shards get output */
    for (size_t i = 0; i < fx->n_recs; i++) {
        amity_buf_clear(&fx->recs[i].bytes);
    }
    fx->n_recs = 0;
    s_delegation(&f, "only-one", "2023-01-01");
    s_add(fx, &f, true, s_shard("only-one"), NULL);
    s_encode_work(fx, OFFICE);
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), 0);
    assert_int_equal(validate_apply(fx->validate, 1 - s_shard("only-one"))->len, 0);
    assert_int_equal(
        s_check_shard(fx, validate_apply(fx->validate, s_shard("only-one")), s_shard("only-one")),
        1);
}

static void
test_validate_bad_work_dropped(void **state)
{
    fixture_t *fx = *state;
    static const uint8_t garbage[] = { 0x81, 0xc1, 0x00 };
    amity_fields_t f;
    amity_msg_t m;
    amity_buf_t body;

    amity_buf_init(&body);
    assert_int_equal(validate_handle_work(fx->validate, garbage, sizeof garbage), AMITY_EPROTO);
    assert_int_equal(validate_handle_work(fx->validate, garbage, 0), AMITY_EPROTO);

    /* a well-formed message of another type */
    amity_msg_init(&m);
    m.type = AMITY_MSG_PING;
    assert_int_equal(amity_msg_encode(&m, &body), 0);
    assert_int_equal(validate_handle_work(fx->validate, body.data, body.len), AMITY_EPROTO);

    /* a work message whose office is not an office id */
    s_delegation(&f, "x", "2023-01-01");
    s_add(fx, &f, true, 0, NULL);
    s_encode_work(fx, "Not An Office");
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), AMITY_EPROTO);
    s_encode_work(fx, "all");
    assert_int_equal(validate_handle_work(fx->validate, fx->work.data, fx->work.len), AMITY_EPROTO);

    assert_int_equal(validate_apply(fx->validate, 0)->len, 0);
    assert_int_equal(validate_apply(fx->validate, 1)->len, 0);
    assert_int_equal(validate_stats(fx->validate)->bad_work, 5);
    assert_int_equal(validate_stats(fx->validate)->validated, 0);
    amity_buf_clear(&body);
}

/*  CURVE options: lists match their endpoints, and need our own key. */
static void
test_validate_key_options(void **state)
{
    fixture_t *fx = *state;
    validate_t *v = NULL;
    validate_opts_t opts = { 0 };
    char dir[] = "/tmp/amity-validate-keys-XXXXXX";
    char pub[96];
    char sec[96];
    char cmd[160];
    char *one_items[2];
    amity_strlist_t one = { 1, one_items };
    amity_strlist_t two = { 2, one_items };
    zcert_t *cert;

    assert_non_null(mkdtemp(dir));
    (void)snprintf(pub, sizeof pub, "%s/svc", dir);
    (void)snprintf(sec, sizeof sec, "%s/svc_secret", dir);
    cert = zcert_new();
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "svc");
    assert_int_equal(zcert_save(cert, pub), 0);
    zcert_destroy(&cert);
    one_items[0] = pub;
    one_items[1] = pub;

    opts.ingest = &fx->ingest; /* one ingest, two shards */
    opts.shards = &fx->shards;
    opts.tz = "Asia/Ho_Chi_Minh";
    opts.ingest_keys = &one;
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL); /* no --key */
    opts.key = sec;
    assert_int_equal(validate_new(&v, &opts), 0);
    validate_destroy(&v);
    opts.ingest_keys = &two; /* two keys for one ingest */
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    opts.ingest_keys = NULL;
    opts.shard_keys = &one; /* one key for two shards */
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    opts.shard_keys = &two;
    assert_int_equal(validate_new(&v, &opts), 0);
    validate_destroy(&v);
    opts.key = "/nonexistent/svc_secret";
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    assert_null(v);
    (void)snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void
test_validate_options(void **state)
{
    fixture_t *fx = *state;
    validate_t *v = NULL;
    validate_opts_t opts = { 0 };
    amity_strlist_t one = { 1, fx->shard_items };
    amity_strlist_t none = { 0, NULL };
    char *bad_items[1] = { (char *)"tcp://127.0.0.1:65534" };
    amity_strlist_t bad = { 1, bad_items };
    amity_fields_t f;

    opts.ingest = &fx->ingest;
    opts.shards = &fx->shards;
    opts.tz = "Mars/Olympus_Mons";
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    assert_null(v);
    opts.tz = "";
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    opts.tz = "Europe/Paris";
    opts.shards = &none;
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    opts.shards = &bad;
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);
    opts.shards = &fx->shards;
    opts.ingest = &none;
    assert_int_equal(validate_new(&v, &opts), AMITY_EINVAL);

    /* one shard: everything, rejections included, goes to shard 0 */
    opts.ingest = &fx->ingest;
    opts.shards = &one;
    assert_int_equal(validate_new(&v, &opts), 0);
    s_delegation(&f, "a", "2023-01-01");
    s_add(fx, &f, true, 0, NULL);
    s_delegation(&f, "b", "1900-01-01");
    s_add(fx, &f, false, 0, "date: ");
    s_encode_work(fx, OFFICE);
    assert_int_equal(validate_handle_work(v, fx->work.data, fx->work.len), 0);
    assert_int_equal(s_check_shard(fx, validate_apply(v, 0), 0), 2);
    validate_destroy(&v);
}

/* ------------------------------------------------------------------ */
/* the real loop over inproc://                                         */

typedef struct {
    validate_t *validate;
    void *ctx;
    int rc;
} runner_t;

static void *
s_run(void *arg)
{
    runner_t *r = arg;
    r->rc = validate_run(r->validate, r->ctx, -1);
    return NULL;
}

static int
s_recv(void *sock, amity_buf_t *out, int timeout_ms)
{
    zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
    zmq_msg_t part;

    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        return -1;
    }
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, 0) < 0) {
        zmq_msg_close(&part);
        return -1;
    }
    amity_buf_set(out, zmq_msg_data(&part), zmq_msg_size(&part));
    zmq_msg_close(&part);
    return 0;
}

static void
test_validate_loop_over_inproc(void **state)
{
    fixture_t *fx = *state;
    char *ingest_item = (char *)"inproc://t-val-work";
    char *shard_items[2] = { (char *)"inproc://t-val-s0", (char *)"inproc://t-val-s1" };
    amity_strlist_t ingest = { 1, &ingest_item };
    amity_strlist_t shards = { 2, shard_items };
    validate_opts_t opts = { 0 };
    runner_t r;
    pthread_t th;
    void *push;
    void *pull[2];
    int zero = 0;
    amity_buf_t got;
    int s;

    amity_buf_init(&got);
    memset(&r, 0, sizeof r);
    r.ctx = zmq_ctx_new();
    assert_non_null(r.ctx);
    opts.ingest = &ingest;
    opts.shards = &shards;
    opts.tz = "Asia/Ho_Chi_Minh";
    assert_int_equal(validate_new(&r.validate, &opts), 0);
    validate_set_max_day(r.validate, amity_days_from_civil(2024, 1, 1));

    push = zmq_socket(r.ctx, ZMQ_PUSH);
    assert_int_equal(zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_bind(push, ingest_item), 0);
    for (s = 0; s < 2; s++) {
        pull[s] = zmq_socket(r.ctx, ZMQ_PULL);
        assert_int_equal(zmq_setsockopt(pull[s], ZMQ_LINGER, &zero, sizeof zero), 0);
        assert_int_equal(zmq_bind(pull[s], shard_items[s]), 0);
    }
    assert_int_equal(pthread_create(&th, NULL, s_run, &r), 0);

    s_mixed_batch(fx);
    /* blocks until the validator's PULL is connected */
    assert_int_equal(zmq_send(push, fx->work.data, fx->work.len, 0), (int)fx->work.len);
    for (s = 0; s < 2; s++) {
        assert_int_equal(s_recv(pull[s], &got, 5000), 0);
        (void)s_check_shard(fx, &got, (uint32_t)s);
    }

    zmq_close(push);
    zmq_close(pull[0]);
    zmq_close(pull[1]);
    assert_int_equal(zmq_ctx_shutdown(r.ctx), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(zmq_ctx_term(r.ctx), 0);
    assert_int_equal(validate_stats(r.validate)->apply_sent, 2);
    validate_destroy(&r.validate);
    amity_buf_clear(&got);
}

/* A shard that is not there: apply messages wait (pipe, then outbox), the
 * validator stops reading work so the sender sees back-pressure, and when
 * the shard appears every message arrives, none dropped. */
static void
test_validate_backpressure_loses_nothing(void **state)
{
    fixture_t *fx = *state;
    char *ingest_item = (char *)"inproc://t-val-bp-work";
    char *shard_item = (char *)"inproc://t-val-bp-s0";
    amity_strlist_t ingest = { 1, &ingest_item };
    amity_strlist_t shards = { 1, &shard_item };
    validate_opts_t opts = { 0 };
    runner_t r;
    pthread_t th;
    void *push;
    void *pull;
    int zero = 0;
    amity_fields_t f;
    amity_buf_t got;
    int sent = 0;
    int received = 0;
    int idle_ms = 0;

    amity_buf_init(&got);
    memset(&r, 0, sizeof r);
    r.ctx = zmq_ctx_new();
    assert_non_null(r.ctx);
    opts.ingest = &ingest;
    opts.shards = &shards;
    opts.tz = "Asia/Ho_Chi_Minh";
    assert_int_equal(validate_new(&r.validate, &opts), 0);
    push = zmq_socket(r.ctx, ZMQ_PUSH);
    assert_int_equal(zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_bind(push, ingest_item), 0);
    assert_int_equal(pthread_create(&th, NULL, s_run, &r), 0);

    s_delegation(&f, "bp-1", "2023-01-01");
    s_add(fx, &f, true, 0, NULL);
    s_encode_work(fx, OFFICE);
    /* the first send waits for the validator to connect */
    assert_int_equal(zmq_send(push, fx->work.data, fx->work.len, 0), (int)fx->work.len);
    sent = 1;
    while (idle_ms < 500 && sent < 100000) {
        if (zmq_send(push, fx->work.data, fx->work.len, ZMQ_DONTWAIT) >= 0) {
            sent++;
            idle_ms = 0;
        } else {
            assert_int_equal(zmq_errno(), EAGAIN);
            (void)zmq_poll(NULL, 0, 10);
            idle_ms += 10;
        }
    }
    assert_true(sent < 100000); /* the sender was held back */

    pull = zmq_socket(r.ctx, ZMQ_PULL);
    assert_int_equal(zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_bind(pull, shard_item), 0);
    while (received < sent && s_recv(pull, &got, 5000) == 0) {
        received++;
    }
    assert_int_equal(received, sent);

    zmq_close(push);
    zmq_close(pull);
    assert_int_equal(zmq_ctx_shutdown(r.ctx), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(zmq_ctx_term(r.ctx), 0);
    assert_true(validate_stats(r.validate)->apply_deferred > 0);
    assert_int_equal(validate_stats(r.validate)->apply_sent, (uint64_t)sent);
    assert_int_equal(validate_stats(r.validate)->apply_dropped, 0);
    validate_destroy(&r.validate);
    amity_buf_clear(&got);
}

/*  Binds sock to a free TCP port on 127.0.0.1; out gets the endpoint. */
static void
s_bind_tcp(void *sock, char *out, size_t out_len)
{
    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, out, &out_len), 0);
}

/*  Reads the file path into text; true when it holds needle. */
static bool
s_log_has(const char *path, const char *needle, char *text, size_t text_len)
{
    FILE *fp = fopen(path, "r");
    size_t n;

    assert_non_null(fp);
    n = fread(text, 1, text_len - 1, fp);
    text[n] = '\0';
    (void)fclose(fp);
    return strstr(text, needle) != NULL;
}

/* A shard whose link dies: validate logs it (a monitor on its PUSH), counts
 * it, and its stats line shows what waits for that shard. */
static void
test_validate_notices_dead_shard(void **state)
{
    fixture_t *fx = *state;
    char ingest_ep[64];
    char shard_ep[64];
    char *ingest_item = ingest_ep;
    char *shard_item = shard_ep;
    amity_strlist_t ingest = { 1, &ingest_item };
    amity_strlist_t shards = { 1, &shard_item };
    validate_opts_t opts = { 0 };
    runner_t r;
    pthread_t th;
    void *push;
    void *pull;
    int zero = 0;
    amity_fields_t f;
    amity_buf_t got;
    char path[64];
    char want[128];
    char *text = malloc(65536);
    int saved_fd;
    int fd;
    int i;

    assert_non_null(text);
    amity_buf_init(&got);
    memset(&r, 0, sizeof r);
    r.ctx = zmq_ctx_new();
    assert_non_null(r.ctx);
    push = zmq_socket(r.ctx, ZMQ_PUSH);
    pull = zmq_socket(r.ctx, ZMQ_PULL);
    assert_int_equal(zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero), 0);
    s_bind_tcp(push, ingest_ep, sizeof ingest_ep);
    s_bind_tcp(pull, shard_ep, sizeof shard_ep); /* the shard's B+0 is its base */
    opts.ingest = &ingest;
    opts.shards = &shards;
    opts.tz = "Asia/Ho_Chi_Minh";
    assert_int_equal(validate_new(&r.validate, &opts), 0);

    /* the daemon's stderr, at info, into a file */
    (void)snprintf(path, sizeof path, "/tmp/amity-test-validate-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    (void)fflush(stderr);
    saved_fd = dup(STDERR_FILENO);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    (void)close(fd);
    (void)amity_log_set_level("info");
    assert_int_equal(pthread_create(&th, NULL, s_run, &r), 0);

    s_delegation(&f, "dead-1", "2023-01-01");
    s_add(fx, &f, true, 0, NULL);
    s_encode_work(fx, OFFICE);
    assert_int_equal(zmq_send(push, fx->work.data, fx->work.len, 0), (int)fx->work.len);
    assert_int_equal(s_recv(pull, &got, 5000), 0); /* the link is up */
    (void)snprintf(want, sizeof want, "shard 0: connected peer=%s", shard_ep);
    for (i = 0; i < 50 && !s_log_has(path, want, text, 65536); i++) {
        (void)zmq_poll(NULL, 0, 100);
    }
    assert_true(i < 50);

    zmq_close(pull); /* the shard dies */
    (void)snprintf(want, sizeof want, "shard 0: peer disconnected peer=%s", shard_ep);
    for (i = 0; i < 50 && !s_log_has(path, want, text, 65536); i++) {
        (void)zmq_poll(NULL, 0, 100);
    }
    assert_true(i < 50);
    /* work for the dead shard: ZeroMQ holds it until the link is back */
    assert_int_equal(zmq_send(push, fx->work.data, fx->work.len, 0), (int)fx->work.len);
    (void)zmq_poll(NULL, 0, 300);

    zmq_close(push);
    assert_int_equal(zmq_ctx_shutdown(r.ctx), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    (void)fflush(stderr);
    assert_true(dup2(saved_fd, STDERR_FILENO) >= 0);
    (void)close(saved_fd);
    (void)amity_log_set_level("error");
    assert_int_equal(r.rc, 0);
    assert_int_equal(zmq_ctx_term(r.ctx), 0);
    assert_int_equal(validate_stats(r.validate)->shard_disconnects, 1);
    assert_int_equal(validate_stats(r.validate)->apply_sent, 2);
    (void)s_log_has(path, "", text, 65536);
    if (strstr(text, "stats final") == NULL || strstr(text, "shard_disconnects=1 ") == NULL ||
        strstr(text, " shard0.up=0 shard0.held=1 shard0.held_records=1 shard0.disconnects=1") ==
            NULL) {
        fail_msg("final stats line without the dead shard's state:\n%s", text);
    }
    (void)unlink(path);
    free(text);
    validate_destroy(&r.validate);
    amity_buf_clear(&got);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_validate_work_splits_by_shard, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_canonical_amount, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_date_rule_uses_max_day, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_outputs_reset_per_work, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_bad_work_dropped, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_key_options, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_loop_over_inproc, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_backpressure_loses_nothing, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_validate_notices_dead_shard, s_setup, s_teardown),
    };

    amity_log_init("test_svc_validate");
    (void)amity_log_set_level("error");
    return cmocka_run_group_tests_name("svc_validate", tests, NULL, NULL);
}
