/*  test_svc_notify: notify's merge, sync and fan-out logic without sockets:
 *  shard snapshots and totals in, batches / snapreqs / client replies out.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/auth.h"
#include "amity/err.h"
#include "amity/proto.h"
#include "core.h"
#include "merge.h"
#include "notify.h"
#include "outbox.h"
#include "rejects.h"
#include "subs.h"

#define T0 1000000 /* an arbitrary monotonic start time */

/* ---- message builders (views borrow string literals) ---------------- */

static amity_kv_t
s_kv(const char *key, int64_t val)
{
    amity_kv_t kv;

    kv.key = amity_view_str(key);
    kv.val = val;
    return kv;
}

static amity_msg_t
s_totals(size_t shard, uint64_t seq, amity_kv_t *kv, size_t n)
{
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_TOTALS;
    m.shard = shard;
    m.seq = seq;
    m.kv = kv;
    m.n_kv = n;
    return m;
}

static amity_msg_t
s_snap(size_t shard, uint64_t req, uint64_t seq, bool more, amity_kv_t *kv, size_t n)
{
    amity_msg_t m = s_totals(shard, seq, kv, n);

    m.type = AMITY_MSG_SNAP;
    m.req = req;
    m.more = more;
    return m;
}

/* ---- merge fixture: a recording sink ---------------------------------- */

#define S_MAX_REC 64

typedef struct {
    char key[64];
    int64_t val;
} s_rec_kv_t;

typedef struct {
    notify_merge_t *merge;
    size_t n_reqs; /* snapreqs issued */
    size_t req_shard[S_MAX_REC];
    uint64_t req_id[S_MAX_REC];
    size_t n_batches;           /* batches seen */
    s_rec_kv_t last[S_MAX_REC]; /* the last batch */
    size_t n_last;
} s_mfx_t;

static int
s_sink_snapreq(void *arg, size_t shard, uint64_t req)
{
    s_mfx_t *f = arg;

    assert_true(f->n_reqs < S_MAX_REC);
    f->req_shard[f->n_reqs] = shard;
    f->req_id[f->n_reqs] = req;
    f->n_reqs++;
    return 0;
}

static int
s_sink_changes(void *arg, const amity_kv_t *kv, size_t n)
{
    s_mfx_t *f = arg;
    size_t i;

    assert_true(n >= 1 && n <= S_MAX_REC);
    f->n_batches++;
    for (i = 0; i < n; i++) {
        assert_true(kv[i].key.len < sizeof(f->last[i].key));
        memcpy(f->last[i].key, kv[i].key.ptr, kv[i].key.len);
        f->last[i].key[kv[i].key.len] = '\0';
        f->last[i].val = kv[i].val;
    }
    f->n_last = n;
    return 0;
}

/*  The value of key in the last batch, or -999 when absent. */
static int64_t
s_last(const s_mfx_t *f, const char *key)
{
    size_t i;

    for (i = 0; i < f->n_last; i++) {
        if (strcmp(f->last[i].key, key) == 0) {
            return f->last[i].val;
        }
    }
    return -999;
}

static uint64_t
s_req_of(const s_mfx_t *f, size_t shard)
{
    size_t i = f->n_reqs;

    while (i-- > 0) {
        if (f->req_shard[i] == shard) {
            return f->req_id[i];
        }
    }
    fail_msg("no snapreq for shard %zu", shard);
    return 0;
}

static int
s_mfx_setup2(void **state)
{
    s_mfx_t *f = calloc(1, sizeof(*f));
    notify_merge_sink_t sink = { s_sink_snapreq, s_sink_changes, NULL };

    assert_non_null(f);
    sink.arg = f;
    assert_int_equal(notify_merge_new(&f->merge, 2, &sink), 0);
    assert_int_equal(notify_merge_start(f->merge, T0), 0);
    *state = f;
    return 0;
}

static int
s_mfx_teardown(void **state)
{
    s_mfx_t *f = *state;

    notify_merge_destroy(&f->merge);
    free(f);
    return 0;
}

static int64_t
s_sum(const s_mfx_t *f, const char *key)
{
    int64_t sum = -999;

    (void)notify_merge_get(f->merge, key, strlen(key), &sum, 0, NULL);
    return sum;
}

static int64_t
s_part(const s_mfx_t *f, const char *key, size_t shard)
{
    int64_t sum = -999, part = -999;

    (void)notify_merge_get(f->merge, key, strlen(key), &sum, shard, &part);
    return part;
}

/*  Makes shard live at seq with the given snapshot (one chunk). */
static void
s_install(s_mfx_t *f, size_t shard, uint64_t seq, amity_kv_t *kv, size_t n, int64_t now)
{
    amity_msg_t m = s_snap(shard, s_req_of(f, shard), seq, false, kv, n);

    assert_int_equal(notify_merge_on_snap(f->merge, shard, &m, now), 0);
    assert_true(notify_merge_live(f->merge, shard));
}

/* ---- merge tests ------------------------------------------------------- */

static void
test_notify_merge_start_requests_every_shard(void **state)
{
    s_mfx_t *f = *state;

    assert_int_equal(f->n_reqs, 2);
    assert_int_equal(f->req_shard[0], 0);
    assert_int_equal(f->req_shard[1], 1);
    assert_true(f->req_id[0] != f->req_id[1]);
    assert_false(notify_merge_live(f->merge, 0));
    assert_false(notify_merge_live(f->merge, 1));
}

static void
test_notify_merge_two_snapshots_sum(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t a1[] = { s_kv("a", 5), s_kv("b", 7) };
    amity_kv_t a2[] = { s_kv("c", 1) };
    amity_kv_t b[] = { s_kv("a", 10), s_kv("c", 2), s_kv("d", 0) };
    amity_msg_t m;

    /* shard 0 in two chunks */
    m = s_snap(0, s_req_of(f, 0), 40, true, a1, 2);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(f->n_batches, 0);
    m = s_snap(0, s_req_of(f, 0), 40, false, a2, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    assert_true(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_last_seq(f->merge, 0), 40);
    assert_int_equal(f->n_batches, 1);
    assert_int_equal(f->n_last, 3);

    s_install(f, 1, 7, b, 3, T0);
    assert_int_equal(f->n_batches, 2);
    /* d = 0 did not change a sum: not in the batch */
    assert_int_equal(f->n_last, 2);
    assert_int_equal(s_last(f, "a"), 15);
    assert_int_equal(s_last(f, "c"), 3);
    assert_int_equal(s_sum(f, "a"), 15);
    assert_int_equal(s_sum(f, "b"), 7);
    assert_int_equal(s_sum(f, "c"), 3);
    assert_int_equal(s_part(f, "a", 0), 5);
    assert_int_equal(s_part(f, "a", 1), 10);
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_snaps, 1);
}

static void
test_notify_merge_totals_update(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t s0[] = { s_kv("a", 5) };
    amity_kv_t s1[] = { s_kv("a", 10) };
    amity_kv_t u[] = { s_kv("a", 8), s_kv("new", 3) };
    amity_kv_t same[] = { s_kv("a", 8) };
    amity_msg_t m;

    s_install(f, 0, 40, s0, 1, T0);
    s_install(f, 1, 7, s1, 1, T0);
    assert_int_equal(f->n_batches, 2);

    m = s_totals(0, 41, u, 2);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 10), 0);
    assert_int_equal(f->n_batches, 3);
    assert_int_equal(s_last(f, "a"), 18);
    assert_int_equal(s_last(f, "new"), 3);
    assert_int_equal(notify_merge_last_seq(f->merge, 0), 41);

    /* absolute values: the same value again changes nothing, no batch */
    m = s_totals(0, 42, same, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 20), 0);
    assert_int_equal(f->n_batches, 3);
    assert_int_equal(notify_merge_last_seq(f->merge, 0), 42);
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 0);
}

static void
test_notify_merge_gap_resyncs(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t s0[] = { s_kv("a", 5) };
    amity_kv_t u[] = { s_kv("a", 6) };
    amity_msg_t m;
    uint64_t old_req = s_req_of(f, 0);

    s_install(f, 0, 40, s0, 1, T0);
    m = s_totals(0, 42, u, 1); /* 41 was lost */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 10), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 1);
    assert_int_equal(f->n_reqs, 3);
    assert_true(s_req_of(f, 0) != old_req);
    /* nothing applied from the message past the gap */
    assert_int_equal(s_sum(f, "a"), 5);

    /* a late chunk of the old request is stale */
    m = s_snap(0, old_req, 41, false, s0, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0 + 20), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_stale, 1);

    /* the new snapshot (seq 41) then replays the buffered 42 */
    m = s_snap(0, s_req_of(f, 0), 41, false, s0, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0 + 30), 0);
    assert_true(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_last_seq(f->merge, 0), 42);
    assert_int_equal(s_sum(f, "a"), 6);
}

static void
test_notify_merge_backwards_resyncs(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t s0[] = { s_kv("a", 5) };
    amity_kv_t u[] = { s_kv("a", 1) };
    amity_msg_t m;

    s_install(f, 0, 40, s0, 1, T0);
    m = s_totals(0, 3, u, 1); /* the shard was reset */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 10), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 1);
}

static void
test_notify_merge_buffered_after_snapshot(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t u9[] = { s_kv("a", 100) }; /* already in the snapshot */
    amity_kv_t u10[] = { s_kv("a", 200) };
    amity_kv_t u11[] = { s_kv("a", 11), s_kv("b", 1) };
    amity_kv_t u12[] = { s_kv("b", 2) };
    amity_kv_t snap[] = { s_kv("a", 10) };
    amity_msg_t m;

    /* totals arrive while syncing: buffered, nothing applied */
    m = s_totals(0, 9, u9, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    m = s_totals(0, 10, u10, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    m = s_totals(0, 10, NULL, 0); /* a heartbeat while syncing: ignored */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    m = s_totals(0, 11, u11, 2);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    m = s_totals(0, 12, u12, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    assert_int_equal(f->n_batches, 0);
    assert_int_equal(s_sum(f, "a"), -999);

    /* snapshot at seq 10: 9 and 10 are ignored, 11 and 12 applied in order,
     * each its own batch */
    s_install(f, 0, 10, snap, 1, T0);
    assert_int_equal(f->n_batches, 3);
    assert_int_equal(notify_merge_last_seq(f->merge, 0), 12);
    assert_int_equal(s_sum(f, "a"), 11);
    assert_int_equal(s_sum(f, "b"), 2);
    assert_int_equal(f->n_last, 1);
    assert_int_equal(s_last(f, "b"), 2);
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_applied, 2);

    /* and it goes on live from 12 */
    m = s_totals(0, 13, u10, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    assert_int_equal(s_sum(f, "a"), 200);
}

static void
test_notify_merge_buffered_gap_resyncs(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t u[] = { s_kv("a", 1) };
    amity_kv_t snap[] = { s_kv("a", 10) };
    amity_msg_t m;

    m = s_totals(0, 12, u, 1); /* 11 never came */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    m = s_snap(0, s_req_of(f, 0), 10, false, snap, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 1);
    /* the snapshot itself was installed */
    assert_int_equal(s_sum(f, "a"), 10);
}

static void
test_notify_merge_heartbeat_seq(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t snap[] = { s_kv("a", 1) };
    amity_msg_t m;

    s_install(f, 0, 40, snap, 1, T0);
    s_install(f, 1, 5, snap, 1, T0);

    m = s_totals(0, 40, NULL, 0); /* same seq: fine */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 1000), 0);
    assert_true(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 0);

    m = s_totals(0, 41, NULL, 0); /* a commit we never saw */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 2000), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 1);

    m = s_totals(1, 4, NULL, 0); /* backwards */
    assert_int_equal(notify_merge_on_totals(f->merge, 1, &m, T0 + 2000), 0);
    assert_false(notify_merge_live(f->merge, 1));
    assert_int_equal(notify_merge_stats(f->merge, 1)->n_resyncs, 1);
}

static void
test_notify_merge_resnapshot_zeroes_dropped_key(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t first[] = { s_kv("a", 5), s_kv("gone", 4) };
    amity_kv_t other[] = { s_kv("gone", 1) };
    amity_kv_t second[] = { s_kv("a", 6) };
    amity_msg_t m;

    s_install(f, 0, 10, first, 2, T0);
    s_install(f, 1, 3, other, 1, T0);
    assert_int_equal(s_sum(f, "gone"), 5);

    m = s_totals(0, 20, first, 1); /* gap: resync */
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 10), 0);
    assert_false(notify_merge_live(f->merge, 0));
    s_install(f, 0, 20, second, 1, T0 + 20);
    assert_int_equal(f->n_last, 2);
    assert_int_equal(s_last(f, "a"), 6);
    assert_int_equal(s_last(f, "gone"), 1);
    assert_int_equal(s_part(f, "gone", 0), 0);
    assert_int_equal(s_part(f, "gone", 1), 1);
    assert_int_equal(s_sum(f, "gone"), 1);
}

static void
test_notify_merge_silence_and_retry(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t snap[] = { s_kv("a", 1) };
    amity_msg_t m;

    s_install(f, 0, 1, snap, 1, T0);
    assert_int_equal(notify_merge_deadline(f->merge), T0 + NOTIFY_SNAP_RETRY_MS);

    /* shard 1 never answers: asked again every 3 s; not counted as resync */
    assert_int_equal(notify_merge_tick(f->merge, T0 + 2999), 0);
    assert_int_equal(f->n_reqs, 2);
    m = s_totals(0, 1, NULL, 0);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0 + 2000), 0);
    assert_int_equal(notify_merge_tick(f->merge, T0 + 3000), 0);
    assert_int_equal(f->n_reqs, 3);
    assert_int_equal(f->req_shard[2], 1);
    assert_int_equal(notify_merge_stats(f->merge, 1)->n_resyncs, 0);
    assert_int_equal(notify_merge_stats(f->merge, 1)->n_snapreqs, 2);
    assert_true(notify_merge_live(f->merge, 0)); /* heard at T0 + 2000 */

    /* shard 0 silent from T0 + 2000: resynced at T0 + 5000 */
    assert_int_equal(notify_merge_tick(f->merge, T0 + 4999), 0);
    assert_true(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_tick(f->merge, T0 + 5000), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_resyncs, 1);
    /* the partials stay until a new snapshot replaces them */
    assert_int_equal(s_sum(f, "a"), 1);
}

static void
test_notify_merge_snapshot_chunks_disagree(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t kv[] = { s_kv("a", 1) };
    amity_msg_t m;
    uint64_t req = s_req_of(f, 0);

    m = s_snap(0, req, 5, true, kv, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    m = s_snap(0, req, 6, false, kv, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    assert_false(notify_merge_live(f->merge, 0));
    assert_true(s_req_of(f, 0) != req);
    assert_int_equal(f->n_batches, 0);
}

static void
test_notify_merge_buffer_overflow_rerequests(void **state)
{
    s_mfx_t *f = *state;
    amity_kv_t kv[] = { s_kv("a", 1) };
    amity_msg_t m;
    uint64_t i, req = s_req_of(f, 0);

    for (i = 1; i <= NOTIFY_PENDING_MAX; i++) {
        m = s_totals(0, i, kv, 1);
        assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    }
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_overflows, 0);
    m = s_totals(0, i, kv, 1);
    assert_int_equal(notify_merge_on_totals(f->merge, 0, &m, T0), 0);
    assert_int_equal(notify_merge_stats(f->merge, 0)->n_overflows, 1);
    assert_true(s_req_of(f, 0) != req);
    /* the old request's reply is now stale */
    m = s_snap(0, req, 0, false, kv, 1);
    assert_int_equal(notify_merge_on_snap(f->merge, 0, &m, T0), 0);
    assert_false(notify_merge_live(f->merge, 0));
}

/* ---- core fixture: outbox captured ------------------------------------- */

#define S_MAX_OUT 64

typedef struct {
    notify_core_t *core;
    uint64_t req[2];             /* last snapreq per shard */
    size_t n;                    /* client messages captured */
    char rid[S_MAX_OUT][16];     /* their routing ids */
    amity_buf_t body[S_MAX_OUT]; /* their bodies */
    amity_msg_t m;               /* last decoded */
} s_cfx_t;

static int
s_cfx_setup(void **state)
{
    s_cfx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(notify_core_new(&f->core, 2, 3, 0xabcdef), 0);
    amity_msg_init(&f->m);
    *state = f;
    return 0;
}

static void
s_cfx_forget(s_cfx_t *f)
{
    size_t i;

    for (i = 0; i < f->n; i++) {
        amity_buf_clear(&f->body[i]);
    }
    f->n = 0;
}

static int
s_cfx_teardown(void **state)
{
    s_cfx_t *f = *state;

    amity_msg_clear(&f->m);
    s_cfx_forget(f);
    notify_core_destroy(&f->core);
    free(f);
    return 0;
}

/*  Moves the core's outbox into the fixture: snapreq ids noted, client
 *  messages kept for s_get. */
static void
s_pump(s_cfx_t *f)
{
    notify_outbox_t *o = notify_core_outbox(f->core);
    char why[128];
    size_t i;

    for (i = 0; i < o->n; i++) {
        notify_out_msg_t *e = &o->msgs[i];

        if (e->dest == NOTIFY_TO_SHARD) {
            amity_msg_t m;

            amity_msg_init(&m);
            assert_int_equal(amity_msg_decode(e->body.data, e->body.len, &m, why, sizeof(why)), 0);
            assert_int_equal(m.type, AMITY_MSG_SNAPREQ);
            assert_int_equal(m.prefix.len, 0);
            assert_true(e->shard < 2);
            f->req[e->shard] = m.req;
            amity_msg_clear(&m);
            continue;
        }
        assert_true(f->n < S_MAX_OUT);
        assert_true(e->rid_len < sizeof(f->rid[0]));
        memcpy(f->rid[f->n], e->rid, e->rid_len);
        f->rid[f->n][e->rid_len] = '\0';
        amity_buf_init(&f->body[f->n]);
        assert_int_equal(amity_buf_set(&f->body[f->n], e->body.data, e->body.len), 0);
        f->n++;
    }
    notify_outbox_reset(o);
}

/*  Decodes captured client message i into f->m (valid until the next). */
static const amity_msg_t *
s_get(s_cfx_t *f, size_t i, const char *rid)
{
    char why[128];

    assert_true(i < f->n);
    assert_string_equal(f->rid[i], rid);
    amity_msg_clear(&f->m);
    amity_msg_init(&f->m);
    assert_int_equal(amity_msg_decode(f->body[i].data, f->body[i].len, &f->m, why, sizeof(why)), 0);
    return &f->m;
}

static bool
s_has(const amity_msg_t *m, const char *key, int64_t val)
{
    size_t i, n = strlen(key);

    for (i = 0; i < m->n_kv; i++) {
        if (m->kv[i].key.len == n && memcmp(m->kv[i].key.ptr, key, n) == 0) {
            return m->kv[i].val == val;
        }
    }
    return false;
}

static void
s_client(s_cfx_t *f, const char *rid, const amity_msg_t *m, int64_t now)
{
    assert_int_equal(notify_core_on_client(f->core, (const uint8_t *)rid, strlen(rid), m, now), 0);
    s_pump(f);
}

static void
s_shard(s_cfx_t *f, size_t shard, const amity_msg_t *m, int64_t now)
{
    assert_int_equal(notify_core_on_shard(f->core, shard, m, now), 0);
    s_pump(f);
}

static void
s_sub(s_cfx_t *f, const char *rid, uint64_t req, amity_view_t *prefixes, size_t n, int64_t now)
{
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_SUB;
    m.req = req;
    m.prefixes = prefixes;
    m.n_prefixes = n;
    s_client(f, rid, &m, now);
}

/*  Starts the core and makes both shards live with small snapshots. */
static void
s_cfx_live(s_cfx_t *f)
{
    amity_kv_t s0[] = { s_kv("org/a/count", 1), s_kv("act/x/count", 2) };
    amity_kv_t s1[] = { s_kv("org/b/count", 3), s_kv("act/x/count", 4) };
    amity_msg_t m;

    assert_int_equal(notify_core_start(f->core, T0), 0);
    s_pump(f);
    assert_true(f->req[0] != 0 && f->req[1] != 0);
    m = s_snap(0, f->req[0], 10, false, s0, 2);
    s_shard(f, 0, &m, T0);
    m = s_snap(1, f->req[1], 20, false, s1, 2);
    s_shard(f, 1, &m, T0);
    assert_int_equal(notify_core_seq(f->core), 2);
    assert_int_equal(f->n, 0);
}

/* ---- core tests -------------------------------------------------------- */

static void
test_notify_core_seq_counts_batches(void **state)
{
    s_cfx_t *f = *state;
    amity_kv_t u[] = { s_kv("org/a/count", 9) };
    amity_kv_t same[] = { s_kv("org/a/count", 9) };
    amity_msg_t m;

    s_cfx_live(f);
    m = s_totals(0, 11, u, 1);
    s_shard(f, 0, &m, T0 + 1);
    assert_int_equal(notify_core_seq(f->core), 3);
    m = s_totals(0, 12, same, 1); /* no sum changed: no new seq */
    s_shard(f, 0, &m, T0 + 2);
    assert_int_equal(notify_core_seq(f->core), 3);
    m = s_totals(0, 12, NULL, 0);
    s_shard(f, 0, &m, T0 + 3);
    assert_int_equal(notify_core_seq(f->core), 3);
}

static void
test_notify_core_subscribers_filter_and_chain(void **state)
{
    s_cfx_t *f = *state;
    amity_view_t org[] = { amity_view_str("org/") };
    amity_view_t two[] = { amity_view_str("act/"), amity_view_str("org/b") };
    amity_view_t all[] = { amity_view_str("") };
    amity_kv_t u1[] = { s_kv("org/a/count", 5) };
    amity_kv_t u2[] = { s_kv("act/x/count", 7), s_kv("org/b/count", 8) };
    const amity_msg_t *r;
    amity_msg_t m;

    s_cfx_live(f);
    s_sub(f, "S1", 11, org, 1, T0);
    s_sub(f, "S2", 12, two, 2, T0);
    s_sub(f, "S3", 13, all, 1, T0);
    assert_int_equal(f->n, 3);
    r = s_get(f, 0, "S1");
    assert_int_equal(r->type, AMITY_MSG_SNAP);
    assert_int_equal(r->req, 11);
    assert_int_equal(r->seq, 2);
    assert_int_equal(r->epoch, 0xabcdef);
    assert_false(r->more);
    assert_int_equal(r->n_kv, 2);
    assert_true(s_has(r, "org/a/count", 1));
    assert_true(s_has(r, "org/b/count", 3));
    r = s_get(f, 1, "S2");
    assert_int_equal(r->n_kv, 2);
    assert_true(s_has(r, "act/x/count", 6));
    assert_true(s_has(r, "org/b/count", 3));
    r = s_get(f, 2, "S3");
    assert_int_equal(r->n_kv, 3);
    s_cfx_forget(f);

    /* seq 3: org/a changes; S2 has no matching key and gets nothing */
    m = s_totals(0, 11, u1, 1);
    s_shard(f, 0, &m, T0 + 1);
    assert_int_equal(f->n, 2);
    r = s_get(f, 0, "S1");
    assert_int_equal(r->type, AMITY_MSG_UPD);
    assert_int_equal(r->seq, 3);
    assert_int_equal(r->prev, 2);
    assert_int_equal(r->epoch, 0xabcdef);
    assert_int_equal(r->n_kv, 1);
    assert_true(s_has(r, "org/a/count", 5));
    r = s_get(f, 1, "S3");
    assert_int_equal(r->prev, 2);
    s_cfx_forget(f);

    /* seq 4: S1 sees org/b only, S2 both, chained to what each got last */
    m = s_totals(1, 21, u2, 2);
    s_shard(f, 1, &m, T0 + 2);
    assert_int_equal(f->n, 3);
    r = s_get(f, 0, "S1");
    assert_int_equal(r->seq, 4);
    assert_int_equal(r->prev, 3);
    assert_int_equal(r->n_kv, 1);
    assert_true(s_has(r, "org/b/count", 8));
    r = s_get(f, 1, "S2");
    assert_int_equal(r->seq, 4);
    assert_int_equal(r->prev, 2); /* its snapshot */
    assert_int_equal(r->n_kv, 2);
    assert_true(s_has(r, "act/x/count", 9));
    assert_true(s_has(r, "org/b/count", 8));
    r = s_get(f, 2, "S3");
    assert_int_equal(r->prev, 3);
    s_cfx_forget(f);

    /* pong carries the last seq sent to each */
    amity_msg_init(&m);
    m.type = AMITY_MSG_PING;
    s_client(f, "S2", &m, T0 + 3);
    r = s_get(f, 0, "S2");
    assert_int_equal(r->type, AMITY_MSG_PONG);
    assert_int_equal(r->seq, 4);
    assert_int_equal(r->epoch, 0xabcdef);
    s_cfx_forget(f);
}

static void
test_notify_core_resubscribe_replaces(void **state)
{
    s_cfx_t *f = *state;
    amity_view_t org[] = { amity_view_str("org/") };
    amity_view_t act[] = { amity_view_str("act/") };
    amity_kv_t u[] = { s_kv("org/a/count", 5) };
    const amity_msg_t *r;
    amity_msg_t m;

    s_cfx_live(f);
    s_sub(f, "S1", 1, org, 1, T0);
    s_sub(f, "S1", 2, act, 1, T0);
    r = s_get(f, 1, "S1");
    assert_int_equal(r->req, 2);
    assert_int_equal(r->n_kv, 1);
    assert_true(s_has(r, "act/x/count", 6));
    s_cfx_forget(f);
    m = s_totals(0, 11, u, 1);
    s_shard(f, 0, &m, T0 + 1);
    assert_int_equal(f->n, 0); /* S1 now follows act/ only */
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 1);
}

static void
test_notify_core_ping_unsub_expiry(void **state)
{
    s_cfx_t *f = *state;
    amity_view_t all[] = { amity_view_str("") };
    const amity_msg_t *r;
    amity_msg_t m;

    s_cfx_live(f);
    amity_msg_init(&m);
    m.type = AMITY_MSG_PING;
    s_client(f, "X", &m, T0);
    r = s_get(f, 0, "X");
    assert_int_equal(r->type, AMITY_MSG_ERROR);
    assert_int_equal(r->why.len, strlen("not subscribed"));
    assert_memory_equal(r->why.ptr, "not subscribed", r->why.len);
    s_cfx_forget(f);

    s_sub(f, "A", 1, all, 1, T0);
    s_sub(f, "B", 2, all, 1, T0);
    s_cfx_forget(f);
    /* A pings at T0 + 6000; B stays silent */
    s_client(f, "A", &m, T0 + 6000);
    s_cfx_forget(f);
    assert_int_equal(notify_core_tick(f->core, T0 + 10000), 0);
    s_pump(f);
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 1);
    assert_int_equal(notify_core_stats(f->core)->n_expired, 1);
    s_client(f, "B", &m, T0 + 10001);
    assert_int_equal(s_get(f, 0, "B")->type, AMITY_MSG_ERROR);
    s_cfx_forget(f);

    /* unsub forgets */
    amity_msg_init(&m);
    m.type = AMITY_MSG_UNSUB;
    s_client(f, "A", &m, T0 + 10002);
    assert_int_equal(f->n, 0);
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 0);
}

static void
test_notify_core_max_subscribers(void **state)
{
    s_cfx_t *f = *state;
    amity_view_t all[] = { amity_view_str("") };
    const amity_msg_t *r;

    s_cfx_live(f);
    s_sub(f, "A", 1, all, 1, T0);
    s_sub(f, "B", 2, all, 1, T0);
    s_sub(f, "C", 3, all, 1, T0);
    s_cfx_forget(f);
    s_sub(f, "D", 4, all, 1, T0);
    r = s_get(f, 0, "D");
    assert_int_equal(r->type, AMITY_MSG_ERROR);
    assert_int_equal(r->req, 4);
    s_cfx_forget(f);
    /* a known one may still resubscribe */
    s_sub(f, "C", 5, all, 1, T0);
    assert_int_equal(s_get(f, 0, "C")->type, AMITY_MSG_SNAP);
    s_cfx_forget(f);
}

/* ---- secure mode: keys and their prefixes ------------------------------ */

static const amity_peer_t *
s_lookup_gone(void *arg, const char *public_txt)
{
    (void)arg;
    (void)public_txt;
    return NULL;
}

static const amity_peer_t *
s_lookup_same(void *arg, const char *public_txt)
{
    (void)public_txt;
    return arg;
}

static void
s_client_as(s_cfx_t *f, const amity_peer_t *peer, const char *rid, const amity_msg_t *m)
{
    assert_int_equal(
        notify_core_on_client_as(f->core, peer, (const uint8_t *)rid, strlen(rid), m, T0), 0);
    s_pump(f);
}

/*  True when every key of snap/upd m lies under prefix, and want_key is
 *  among them (want_key NULL: m has no keys). */
static void
s_keys_under(const amity_msg_t *m, const char *prefix, const char *want_key)
{
    size_t i;
    bool seen = false;

    for (i = 0; i < m->n_kv; i++) {
        assert_true(m->kv[i].key.len >= strlen(prefix));
        assert_memory_equal(m->kv[i].key.ptr, prefix, strlen(prefix));
        if (want_key && m->kv[i].key.len == strlen(want_key) &&
            memcmp(m->kv[i].key.ptr, want_key, strlen(want_key)) == 0) {
            seen = true;
        }
    }
    assert_true(want_key ? seen : m->n_kv == 0);
}

static void
test_notify_core_secure_prefixes(void **state)
{
    s_cfx_t *f = *state;
    amity_peer_t dash = { .name = "dashboard", .prefixes = "2020/all/" };
    amity_peer_t hvm = { .name = "hoi-viet-my", .is_office = true };
    amity_kv_t s0[] = { s_kv("2020/all/k/all/n", 1), s_kv("2020/hoi-viet-my/k/all/n", 2),
                        s_kv("2020/hoi-viet-nhat/k/all/n", 3), s_kv("2021/all/k/all/n", 4) };
    amity_kv_t u[] = { s_kv("2020/all/k/all/n", 10), s_kv("2020/hoi-viet-my/k/all/n", 20),
                       s_kv("2020/hoi-viet-nhat/k/all/n", 30), s_kv("2021/all/k/all/n", 40) };
    amity_view_t outside[] = { amity_view_str("2021/"), amity_view_str("2019/all/") };
    amity_view_t inside[] = { amity_view_str("2020/") };
    const amity_msg_t *r;
    amity_msg_t m;

    strcpy(dash.public_txt, "dash567890123456789012345678901234567890");
    strcpy(hvm.public_txt, "hvm4567890123456789012345678901234567890");
    notify_core_set_secure(f->core, true);
    assert_int_equal(notify_core_start(f->core, T0), 0);
    s_pump(f);
    m = s_snap(0, f->req[0], 10, false, s0, 4);
    s_shard(f, 0, &m, T0);
    m = s_snap(1, f->req[1], 20, false, NULL, 0);
    s_shard(f, 1, &m, T0);
    s_cfx_forget(f);

    /* a query: only the keys the certificate allows */
    amity_msg_init(&m);
    m.type = AMITY_MSG_QUERY;
    m.req = 5;
    m.prefix = amity_view_str("");
    s_client_as(f, &dash, "D", &m);
    assert_int_equal(f->n, 1);
    r = s_get(f, 0, "D");
    assert_int_equal(r->type, AMITY_MSG_SNAP);
    assert_int_equal(r->n_kv, 1);
    s_keys_under(r, "2020/all/", "2020/all/k/all/n");
    s_cfx_forget(f);
    /* entirely outside: one error, nothing else */
    m.prefix = amity_view_str("2021/");
    s_client_as(f, &dash, "D", &m);
    assert_int_equal(f->n, 1);
    assert_int_equal(s_get(f, 0, "D")->type, AMITY_MSG_ERROR);
    s_cfx_forget(f);

    /* a subscription outside: error, not registered */
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUB;
    m.req = 6;
    m.prefixes = outside;
    m.n_prefixes = 2;
    s_client_as(f, &dash, "D", &m);
    assert_int_equal(f->n, 1);
    assert_int_equal(s_get(f, 0, "D")->type, AMITY_MSG_ERROR);
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 0);
    assert_int_equal(notify_core_stats(f->core)->n_denied, 2);
    s_cfx_forget(f);
    /* inside: snapshot and updates carry the allowed keys only */
    m.prefixes = inside;
    m.n_prefixes = 1;
    s_client_as(f, &dash, "D", &m);
    r = s_get(f, 0, "D");
    assert_int_equal(r->type, AMITY_MSG_SNAP);
    s_keys_under(r, "2020/all/", "2020/all/k/all/n");
    s_cfx_forget(f);
    m = s_totals(0, 11, u, 4);
    s_shard(f, 0, &m, T0);
    assert_int_equal(f->n, 1);
    r = s_get(f, 0, "D");
    assert_int_equal(r->type, AMITY_MSG_UPD);
    assert_int_equal(r->n_kv, 1);
    assert_true(s_has(r, "2020/all/k/all/n", 10));
    s_cfx_forget(f);

    /* an office's key: its own totals and the "all" ones */
    amity_msg_init(&m);
    m.type = AMITY_MSG_QUERY;
    m.req = 8;
    m.prefix = amity_view_str("2020/");
    s_client_as(f, &hvm, "H", &m);
    r = s_get(f, 0, "H");
    assert_int_equal(r->n_kv, 2);
    assert_true(s_has(r, "2020/all/k/all/n", 10));
    assert_true(s_has(r, "2020/hoi-viet-my/k/all/n", 20));
    s_cfx_forget(f);

    /* no (or a removed) key: refused */
    s_client_as(f, NULL, "X", &m);
    assert_int_equal(f->n, 1);
    assert_int_equal(s_get(f, 0, "X")->type, AMITY_MSG_ERROR);
    assert_int_equal(notify_core_stats(f->core)->n_unauthenticated, 1);
    s_cfx_forget(f);

    /* a reload that keeps the key changes nothing; one that drops it ends
     * the subscription: no more updates */
    assert_int_equal(notify_core_revalidate(f->core, s_lookup_same, &dash), 0);
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 1);
    assert_int_equal(notify_core_revalidate(f->core, s_lookup_gone, NULL), 0);
    assert_int_equal(notify_core_stats(f->core)->n_subscribers, 0);
    assert_int_equal(notify_core_stats(f->core)->n_revoked, 1);
    u[0].val = 11;
    m = s_totals(0, 12, u, 1);
    s_shard(f, 0, &m, T0);
    assert_int_equal(f->n, 0);
}

static void
test_notify_auth_may_read(void **state)
{
    amity_peer_t dash = { .name = "dashboard", .prefixes = "2020/all/, 2021-H1/" };
    amity_peer_t hvm = { .name = "hoi-viet-my", .is_office = true };
    amity_peer_t none = { .name = "nobody" };
    amity_peer_t star = { .name = "secretariat", .prefixes = "*" };
    const char *yes_dash[] = { "", "2020", "2020/", "2020/al", "2020/all/k", "2021-H1/x" };
    const char *no_dash[] = { "2021/", "2020/hoi", "2019", "2021-H2/" };
    const char *yes_hvm[] = { "",           "2020",  "2020/", "2020/hoi", "2020/hoi-viet-my/",
                              "2020/all/k", "2020/a" };
    const char *no_hvm[] = { "2020/hoi-viet-nhat/", "2020/hoi-viet-my2/", "2020/x" };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof yes_dash / sizeof *yes_dash; i++) {
        assert_true(amity_auth_may_read(&dash, yes_dash[i], strlen(yes_dash[i])));
    }
    for (i = 0; i < sizeof no_dash / sizeof *no_dash; i++) {
        assert_false(amity_auth_may_read(&dash, no_dash[i], strlen(no_dash[i])));
    }
    for (i = 0; i < sizeof yes_hvm / sizeof *yes_hvm; i++) {
        assert_true(amity_auth_may_read(&hvm, yes_hvm[i], strlen(yes_hvm[i])));
    }
    for (i = 0; i < sizeof no_hvm / sizeof *no_hvm; i++) {
        assert_false(amity_auth_may_read(&hvm, no_hvm[i], strlen(no_hvm[i])));
    }
    assert_false(amity_auth_may_read(&none, "", 0));
    assert_true(amity_auth_may_read(&star, "2030/x", 6));
    assert_false(amity_auth_may_read(NULL, "", 0));
}

static void
test_notify_core_query_sorted(void **state)
{
    s_cfx_t *f = *state;
    amity_kv_t u[] = { s_kv("org/c", 1), s_kv("org/", 2), s_kv("org/b/z", 3), s_kv("org/b", 4),
                       s_kv("orz", 5) };
    const amity_msg_t *r;
    amity_msg_t m;

    s_cfx_live(f);
    m = s_totals(0, 11, u, 5);
    s_shard(f, 0, &m, T0);
    amity_msg_init(&m);
    m.type = AMITY_MSG_QUERY;
    m.req = 77;
    m.prefix = amity_view_str("org/");
    s_client(f, "Q", &m, T0);
    assert_int_equal(f->n, 1);
    r = s_get(f, 0, "Q");
    assert_int_equal(r->type, AMITY_MSG_SNAP);
    assert_int_equal(r->req, 77);
    assert_int_equal(r->seq, 3);
    assert_false(r->more);
    assert_int_equal(r->n_kv, 6);
    {
        const char *want[] = { "org/", "org/a/count", "org/b", "org/b/count", "org/b/z", "org/c" };
        size_t i;

        for (i = 0; i < 6; i++) {
            assert_int_equal(r->kv[i].key.len, strlen(want[i]));
            assert_memory_equal(r->kv[i].key.ptr, want[i], strlen(want[i]));
        }
    }
    s_cfx_forget(f);

    /* nothing under the prefix: one empty chunk */
    m.prefix = amity_view_str("zzz");
    s_client(f, "Q", &m, T0);
    r = s_get(f, 0, "Q");
    assert_int_equal(r->n_kv, 0);
    assert_false(r->more);
    s_cfx_forget(f);
}

static void
test_notify_core_query_chunks(void **state)
{
    s_cfx_t *f = *state;
    size_t n = NOTIFY_CHUNK_MAX + 5, i;
    amity_kv_t *kv = calloc(n, sizeof(*kv));
    char(*keys)[16] = calloc(n, sizeof(*keys));
    const amity_msg_t *r;
    amity_msg_t m;

    assert_non_null(kv);
    assert_non_null(keys);
    assert_int_equal(notify_core_start(f->core, T0), 0);
    s_pump(f);
    for (i = 0; i < n; i++) {
        (void)snprintf(keys[i], sizeof(keys[i]), "k%06zu", n - i);
        kv[i] = s_kv(keys[i], (int64_t)i);
    }
    m = s_snap(0, f->req[0], 1, false, kv, n);
    s_shard(f, 0, &m, T0);
    amity_msg_init(&m);
    m.type = AMITY_MSG_QUERY;
    m.prefix = amity_view_str("k");
    s_client(f, "Q", &m, T0);
    assert_int_equal(f->n, 2);
    r = s_get(f, 0, "Q");
    assert_true(r->more);
    assert_int_equal(r->n_kv, NOTIFY_CHUNK_MAX);
    assert_memory_equal(r->kv[0].key.ptr, "k000001", 7);
    r = s_get(f, 1, "Q");
    assert_false(r->more);
    assert_int_equal(r->n_kv, 5);
    assert_memory_equal(r->kv[4].key.ptr, "k010005", 7);
    s_cfx_forget(f);
    free(kv);
    free(keys);
}

static void
test_notify_core_bad_client_type(void **state)
{
    s_cfx_t *f = *state;
    amity_kv_t u[] = { s_kv("a", 1) };
    amity_msg_t m = s_totals(0, 1, u, 1);
    const amity_msg_t *r;

    s_client(f, "Z", &m, T0);
    r = s_get(f, 0, "Z");
    assert_int_equal(r->type, AMITY_MSG_ERROR);
    assert_int_equal(notify_core_stats(f->core)->n_bad_client, 1);
    s_cfx_forget(f);
}

/* ---- pure helpers ------------------------------------------------------ */

static void
test_notify_subs_churn(void **state)
{
    amity_view_t all[] = { amity_view_str("") };
    amity_kv_t chg[] = { s_kv("k", 1) };
    notify_subs_t *subs = NULL;
    notify_outbox_t out;
    uint64_t last = 0;
    size_t i, n_sent = 0;
    char rid[32];

    (void)state;
    notify_outbox_init(&out);
    assert_int_equal(notify_subs_new(&subs, 10), 0);
    assert_int_equal(notify_subs_put(subs, (const uint8_t *)"keep", 4, all, 1, NULL, 7, T0), 0);
    /* thousands of short-lived ids: forgotten ones must not pile up */
    for (i = 0; i < 5000; i++) {
        int n = snprintf(rid, sizeof(rid), "id-%zu", i);

        assert_int_equal(
            notify_subs_put(subs, (const uint8_t *)rid, (size_t)n, all, 1, NULL, 7, T0), 0);
        assert_int_equal(notify_subs_remove(subs, (const uint8_t *)rid, (size_t)n), 0);
        assert_int_equal(notify_subs_remove(subs, (const uint8_t *)rid, (size_t)n),
                         AMITY_ENOTFOUND);
    }
    assert_int_equal(notify_subs_count(subs), 1);
    assert_int_equal(notify_subs_touch(subs, (const uint8_t *)"keep", 4, T0 + 1, &last), 0);
    assert_int_equal(last, 7);
    assert_int_equal(notify_subs_touch(subs, (const uint8_t *)"id-3", 4, T0 + 1, &last),
                     AMITY_ENOTFOUND);
    /* a forgotten id may come back */
    assert_int_equal(notify_subs_put(subs, (const uint8_t *)"id-4999", 7, all, 1, NULL, 8, T0), 0);
    assert_int_equal(notify_subs_count(subs), 2);
    assert_int_equal(notify_subs_fanout(subs, chg, 1, 1, 9, &out, &n_sent), 0);
    assert_int_equal(n_sent, 2);
    assert_int_equal(out.n, 2);
    notify_outbox_clear(&out);
    notify_subs_destroy(&subs);
    assert_null(subs);
}

static void
test_notify_prefix_match(void **state)
{
    amity_view_t p[] = { amity_view_str("ab"), amity_view_str("x") };
    amity_view_t e[] = { amity_view_str("") };

    (void)state;
    assert_true(notify_prefix_match(p, 2, "abc", 3));
    assert_true(notify_prefix_match(p, 2, "ab", 2));
    assert_true(notify_prefix_match(p, 2, "x", 1));
    assert_false(notify_prefix_match(p, 2, "a", 1));
    assert_false(notify_prefix_match(p, 2, "ba", 2));
    assert_false(notify_prefix_match(p, 0, "ab", 2));
    assert_true(notify_prefix_match(e, 1, "", 0));
    assert_true(notify_prefix_match(e, 1, "anything", 8));
}

static void
test_notify_config_check(void **state)
{
    char *shards[] = { "tcp://127.0.0.1:7710", "tcp://127.0.0.1:7720" };
    char *bad[] = { "tcp://127.0.0.1:7710", "tcp://127.0.0.1" };
    notify_config_t cfg = { 0 };
    char why[256];

    (void)state;
    cfg.bind = "tcp://127.0.0.1:7702";
    cfg.shards.n = 2;
    cfg.shards.items = shards;
    cfg.max_subscribers = 10;
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), 0);
    cfg.bind = "tcp://0.0.0.0:7702";
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "bind"));
    assert_non_null(strstr(why, "set --key and --clients-dir"));
    /* keys: both or neither; with them any address */
    cfg.key = "notify_secret";
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "key"));
    cfg.clients_dir = "subscribers";
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), 0);
    cfg.shard_keys.n = 1;
    cfg.shard_keys.items = shards;
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "shard-keys"));
    cfg.shard_keys.n = 2;
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), 0);
    cfg.key = NULL;
    cfg.clients_dir = NULL;
    cfg.shard_keys.n = 0;
    cfg.bind = "tcp://127.0.0.1:7702";
    cfg.shards.items = bad;
    assert_int_equal(notify_config_check(&cfg, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "shards"));
}

/*  Decodes body as the daemon does and, as it does on failure, hands it to
 *  notify_core_client_malformed; returns the error reply sent to "E". */
static const amity_msg_t *
s_malformed(s_cfx_t *f, const uint8_t *body, size_t len)
{
    char why[AMITY_WHY_MAX];
    amity_msg_t m;

    amity_msg_init(&m);
    assert_int_not_equal(amity_msg_decode(body, len, &m, why, sizeof(why)), 0);
    assert_int_equal(notify_core_client_malformed(f->core, (const uint8_t *)"E", 1, body, len, why),
                     0);
    s_cfx_forget(f);
    s_pump(f);
    assert_int_equal(f->n, 1);
    return s_get(f, 0, "E");
}

/*  error echoes the refused request's req even when another field is
 *  wrong, and its reason is the decoder's, starting with the field
 *  (PROTOCOL.md 2.4, 3.14). */
static void
test_notify_core_malformed_echoes_req(void **state)
{
    s_cfx_t *f = *state;
    /* {"v": 1, "t": "query", "req": 77}: no prefix */
    static const uint8_t no_prefix[] = { 0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'q', 'u',
                                         'e',  'r',  'y', 0xa3, 'r',  'e', 'q',  0x4d };
    /* {"v": 2, "t": "query", "req": 5, "prefix": ""} */
    static const uint8_t v2[] = { 0x84, 0xa1, 'v', 0x02, 0xa1, 't', 0xa5, 'q',  'u',
                                  'e',  'r',  'y', 0xa3, 'r',  'e', 'q',  0x05, 0xa6,
                                  'p',  'r',  'e', 'f',  'i',  'x', 0xa0 };
    /* {"v": 1, "t": "query", "req": "7", "prefix": ""}: req is no uint */
    static const uint8_t str_req[] = { 0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'q',  'u',
                                       'e',  'r',  'y', 0xa3, 'r',  'e', 'q',  0xa1, '7',
                                       0xa6, 'p',  'r', 'e',  'f',  'i', 'x',  0xa0 };
    /* {"v": 1, "t": "query", "req": 9, "req": 9}: which req? none */
    static const uint8_t twice[] = { 0x84, 0xa1, 'v', 0x01, 0xa1, 't',  0xa5, 'q', 'u', 'e', 'r',
                                     'y',  0xa3, 'r', 'e',  'q',  0x09, 0xa3, 'r', 'e', 'q', 0x09 };
    /* {"v": 1, "t": "sub", "req": 78, "prefixes": ["" x 65]} */
    static const uint8_t sub_head[] = { 0x84, 0xa1, 'v', 0x01, 0xa1, 't',  0xa3, 's',  'u',
                                        'b',  0xa3, 'r', 'e',  'q',  0x4e, 0xa8, 'p',  'r',
                                        'e',  'f',  'i', 'x',  'e',  's',  0xdc, 0x00, 0x41 };
    uint8_t sub[128], trailing[sizeof(no_prefix) + 1];
    const amity_msg_t *r;
    size_t n = 0, i;

    r = s_malformed(f, no_prefix, sizeof(no_prefix));
    assert_int_equal(r->type, AMITY_MSG_ERROR);
    assert_int_equal(r->req, 77);
    assert_int_equal(r->why.len, strlen("prefix: missing"));
    assert_memory_equal(r->why.ptr, "prefix: missing", r->why.len);

    memcpy(sub, sub_head, sizeof(sub_head));
    n = sizeof(sub_head);
    for (i = 0; i < 65 && n < sizeof(sub); i++) {
        sub[n++] = 0xa0;
    }
    assert_int_equal(i, 65);
    r = s_malformed(f, sub, n);
    assert_int_equal(r->req, 78);
    assert_int_equal(r->why.len, strlen("prefixes: 65 prefixes exceed the limit of 64"));
    assert_memory_equal(r->why.ptr, "prefixes: 65 prefixes exceed the limit of 64", r->why.len);

    r = s_malformed(f, v2, sizeof(v2));
    assert_int_equal(r->req, 5);
    assert_true(r->why.len > 3 && memcmp(r->why.ptr, "v: ", 3) == 0);

    /* no usable req: error without one (req 0 is "absent" on the wire) */
    r = s_malformed(f, str_req, sizeof(str_req));
    assert_int_equal(r->req, 0);
    assert_true(r->why.len > 5 && memcmp(r->why.ptr, "req: ", 5) == 0);
    r = s_malformed(f, twice, sizeof(twice));
    assert_int_equal(r->req, 0);
    memcpy(trailing, no_prefix, sizeof(no_prefix));
    trailing[sizeof(no_prefix)] = 0x00;
    r = s_malformed(f, trailing, sizeof(trailing));
    assert_int_equal(r->req, 0);
    assert_true(r->why.len > 9 && memcmp(r->why.ptr, "message: ", 9) == 0);
    assert_int_equal(notify_core_stats(f->core)->n_bad_client, 6);
    s_cfx_forget(f);
}

/* ---- rejected-records listings (rejects.c through the core) ----------- */

#define S_RFX_MAX 32

typedef struct {
    notify_core_t *core;
    size_t n_shard;              /* rejreqs sent to shards */
    size_t shard[S_RFX_MAX];     /* to which shard */
    uint64_t req[S_RFX_MAX];     /* their req */
    char office[S_RFX_MAX][72];  /* their office filter ("" none) */
    char after[S_RFX_MAX][16];   /* their after ("" none) */
    size_t n;                    /* client messages */
    amity_buf_t body[S_RFX_MAX]; /* their bodies */
    amity_msg_t m;               /* the last decoded */
} s_rfx_t;

static int
s_rfx_setup(void **state)
{
    s_rfx_t *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    assert_int_equal(notify_core_new(&f->core, 2, 3, 0xabcdef), 0);
    notify_core_set_shard_name(f->core, 1, "tcp://127.0.0.1:7720");
    amity_msg_init(&f->m);
    *state = f;
    return 0;
}

static void
s_rfx_forget(s_rfx_t *f)
{
    for (size_t i = 0; i < f->n; i++) {
        amity_buf_clear(&f->body[i]);
    }
    f->n = 0;
    f->n_shard = 0;
}

static int
s_rfx_teardown(void **state)
{
    s_rfx_t *f = *state;

    amity_msg_clear(&f->m);
    s_rfx_forget(f);
    notify_core_destroy(&f->core);
    free(f);
    return 0;
}

static void
s_rfx_pump(s_rfx_t *f)
{
    notify_outbox_t *o = notify_core_outbox(f->core);
    char why[128];

    for (size_t i = 0; i < o->n; i++) {
        notify_out_msg_t *e = &o->msgs[i];
        amity_msg_t m;

        if (e->dest == NOTIFY_TO_CLIENT) {
            assert_true(f->n < S_RFX_MAX);
            amity_buf_init(&f->body[f->n]);
            assert_int_equal(amity_buf_set(&f->body[f->n], e->body.data, e->body.len), 0);
            f->n++;
            continue;
        }
        amity_msg_init(&m);
        assert_int_equal(amity_msg_decode(e->body.data, e->body.len, &m, why, sizeof(why)), 0);
        if (m.type == AMITY_MSG_REJREQ) {
            size_t k = f->n_shard++;
            assert_true(k < S_RFX_MAX);
            f->shard[k] = e->shard;
            f->req[k] = m.req;
            assert_true(amity_view_copy(m.office, f->office[k], sizeof(f->office[k])));
            assert_true(amity_view_copy(m.after, f->after[k], sizeof(f->after[k])));
            assert_int_equal(m.limit, AMITY_REJECTS_MAX);
        }
        amity_msg_clear(&m);
    }
    notify_outbox_reset(o);
}

static const amity_msg_t *
s_rfx_get(s_rfx_t *f, size_t i)
{
    char why[128];

    assert_true(i < f->n);
    amity_msg_clear(&f->m);
    assert_int_equal(amity_msg_decode(f->body[i].data, f->body[i].len, &f->m, why, sizeof(why)), 0);
    return &f->m;
}

static void
s_rejreq(s_rfx_t *f, const amity_peer_t *peer, const char *office, uint64_t limit, int64_t now)
{
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_REJREQ;
    m.req = 5;
    if (office) {
        m.office = amity_view_str(office);
    }
    m.limit = limit;
    assert_int_equal(notify_core_on_client_as(f->core, peer, (const uint8_t *)"cli", 3, &m, now),
                     0);
    s_rfx_pump(f);
}

/*  A shard's page: items named by id, each with its ts. */
static void
s_page(s_rfx_t *f, size_t shard, uint64_t req, const char *const *ids, const uint64_t *ts, size_t n,
       const char *next, int64_t now)
{
    amity_reject_item_t items[8];
    amity_msg_t m;

    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++) {
        items[i].office = amity_view_str("hoi-viet-my");
        items[i].id = amity_view_str(ids[i]);
        items[i].why = amity_view_str("date: 2017-02-30 is not a calendar date");
        items[i].ts = ts[i];
        items[i].rec.ptr = (const uint8_t *)"\x81\xa2id\xa1x";
        items[i].rec.len = 6;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_REJECTS;
    m.req = req;
    m.shard = shard;
    m.has_shard = true;
    m.more = next != NULL;
    if (next) {
        m.next = amity_view_str(next);
    }
    m.rejects = items;
    m.n_rejects = n;
    assert_int_equal(notify_core_on_shard(f->core, shard, &m, now), 0);
    s_rfx_pump(f);
}

static void
test_notify_core_rejects_gathered_by_time(void **state)
{
    s_rfx_t *f = *state;
    static const char *const a[] = { "a1", "a2" }, *const a2[] = { "a3" };
    static const char *const b[] = { "b1", "b2" };
    static const uint64_t ta[] = { 10, 40 }, ta2[] = { 50 }, tb[] = { 20, 40 };
    const amity_msg_t *m;

    /* development mode: anyone lists; one rejreq per shard, no filter */
    s_rejreq(f, NULL, NULL, 2, T0);
    assert_int_equal(f->n_shard, 2);
    assert_int_equal(f->n, 0);
    uint64_t id = f->req[0];
    assert_true(id >= NOTIFY_REJECTS_REQ_BASE);
    assert_int_equal(f->req[1], id);
    assert_string_equal(f->office[0], "");
    assert_true(notify_core_rejects_req(f->core, id));

    /* shard 0 has more: notify asks for the page after its next */
    s_page(f, 0, id, a, ta, 2, "k-a2", T0 + 10);
    assert_int_equal(f->n_shard, 3);
    assert_int_equal(f->shard[2], 0);
    assert_string_equal(f->after[2], "k-a2");
    s_page(f, 1, id, b, tb, 2, NULL, T0 + 20);
    assert_int_equal(f->n, 0); /* shard 0 is not done */
    s_page(f, 0, id, a2, ta2, 1, NULL, T0 + 30);

    /* five items by time (ties by shard) in chunks of the client's limit 2 */
    assert_int_equal(f->n, 3);
    static const char *const order[] = { "a1", "b1", "a2", "b2", "a3" };
    size_t k = 0;
    for (size_t i = 0; i < 3; i++) {
        m = s_rfx_get(f, i);
        assert_int_equal(m->type, AMITY_MSG_REJECTS);
        assert_int_equal(m->req, 5);
        assert_false(m->has_shard);
        assert_int_equal(m->more, i < 2);
        assert_int_equal(m->n_rejects, i < 2 ? 2 : 1);
        for (size_t j = 0; j < m->n_rejects; j++, k++) {
            assert_int_equal(m->rejects[j].id.len, strlen(order[k]));
            assert_memory_equal(m->rejects[j].id.ptr, order[k], strlen(order[k]));
            assert_int_equal(m->rejects[j].rec.len, 6);
        }
    }
    assert_false(notify_core_rejects_req(f->core, id));
    /* a late page of that request is ignored */
    s_rfx_forget(f);
    s_page(f, 1, id, b, tb, 2, NULL, T0 + 40);
    assert_int_equal(f->n, 0);

    /* nothing kept anywhere: one empty chunk */
    s_rejreq(f, NULL, "hoi-viet-my", 0, T0 + 50);
    id = f->req[0];
    assert_string_equal(f->office[0], "hoi-viet-my");
    s_page(f, 0, id, NULL, NULL, 0, NULL, T0 + 60);
    s_page(f, 1, id, NULL, NULL, 0, NULL, T0 + 60);
    assert_int_equal(f->n, 1);
    m = s_rfx_get(f, 0);
    assert_int_equal(m->type, AMITY_MSG_REJECTS);
    assert_int_equal(m->n_rejects, 0);
    assert_false(m->more);
}

static void
test_notify_core_rejects_timeout_and_refusal(void **state)
{
    s_rfx_t *f = *state;
    static const char *const a[] = { "a1" };
    static const uint64_t ta[] = { 10 };
    const amity_msg_t *m;
    char why[256];

    /* shard 1 never answers: an error naming it after the timeout */
    s_rejreq(f, NULL, NULL, 0, T0);
    uint64_t id = f->req[0];
    s_page(f, 0, id, a, ta, 1, NULL, T0 + 100);
    assert_true(notify_core_deadline(f->core) <= T0 + NOTIFY_REJECTS_TIMEOUT_MS);
    assert_int_equal(notify_core_tick(f->core, T0 + NOTIFY_REJECTS_TIMEOUT_MS - 1), 0);
    s_rfx_pump(f);
    assert_int_equal(f->n, 0);
    assert_int_equal(notify_core_tick(f->core, T0 + NOTIFY_REJECTS_TIMEOUT_MS), 0);
    s_rfx_pump(f);
    assert_int_equal(f->n, 1);
    m = s_rfx_get(f, 0);
    assert_int_equal(m->type, AMITY_MSG_ERROR);
    assert_int_equal(m->req, 5);
    assert_true(amity_view_copy(m->why, why, sizeof(why)));
    assert_non_null(strstr(why, "shard 1 (tcp://127.0.0.1:7720) did not answer within 3000 ms"));
    assert_null(strstr(why, "shard 0"));
    assert_false(notify_core_rejects_req(f->core, id));

    /* a shard refusing ends the request with its reason */
    s_rfx_forget(f);
    s_rejreq(f, NULL, NULL, 0, T0 + 5000);
    id = f->req[0];
    amity_msg_t e;
    amity_msg_init(&e);
    e.type = AMITY_MSG_ERROR;
    e.req = id;
    e.why = amity_view_str("office: not a valid office id");
    assert_int_equal(notify_core_on_shard(f->core, 0, &e, T0 + 5001), 0);
    s_rfx_pump(f);
    assert_int_equal(f->n, 1);
    m = s_rfx_get(f, 0);
    assert_int_equal(m->type, AMITY_MSG_ERROR);
    assert_true(amity_view_copy(m->why, why, sizeof(why)));
    assert_string_equal(why, "rejects: shard 0 refused: office: not a valid office id");

    /* at most NOTIFY_REJECTS_PENDING_MAX listings at once */
    s_rfx_forget(f);
    for (int i = 0; i < NOTIFY_REJECTS_PENDING_MAX; i++) {
        s_rejreq(f, NULL, NULL, 0, T0 + 6000);
    }
    assert_int_equal(f->n, 0);
    s_rejreq(f, NULL, NULL, 0, T0 + 6000);
    assert_int_equal(f->n, 1);
    m = s_rfx_get(f, 0);
    assert_int_equal(m->type, AMITY_MSG_ERROR);
}

static void
test_notify_core_rejects_secure(void **state)
{
    s_rfx_t *f = *state;
    amity_peer_t hvm = { .name = "hoi-viet-my", .is_office = true };
    amity_peer_t dash = { .name = "dashboard", .prefixes = "2020/all/" };
    amity_peer_t ops = { .name = "secretariat", .prefixes = "2020/all/, * " };
    const amity_msg_t *m;
    char why[256];

    notify_core_set_secure(f->core, true);
    /* an office key: its own office, forced */
    s_rejreq(f, &hvm, NULL, 0, T0);
    assert_int_equal(f->n_shard, 2);
    assert_string_equal(f->office[0], "hoi-viet-my");
    assert_string_equal(f->office[1], "hoi-viet-my");
    s_rfx_forget(f);
    s_rejreq(f, &hvm, "hoi-viet-my", 0, T0);
    assert_int_equal(f->n_shard, 2);
    s_rfx_forget(f);
    /* ... and never another's */
    s_rejreq(f, &hvm, "hoi-viet-nhat", 0, T0);
    assert_int_equal(f->n_shard, 0);
    assert_int_equal(f->n, 1);
    m = s_rfx_get(f, 0);
    assert_int_equal(m->type, AMITY_MSG_ERROR);
    assert_int_equal(m->req, 5);
    assert_true(amity_view_copy(m->why, why, sizeof(why)));
    assert_string_equal(why, "office: this key lists only its own office's rejected records "
                             "(hoi-viet-my)");
    s_rfx_forget(f);
    /* a subscriber without "*": nothing */
    s_rejreq(f, &dash, NULL, 0, T0);
    assert_int_equal(f->n_shard, 0);
    assert_int_equal(f->n, 1);
    assert_int_equal(s_rfx_get(f, 0)->type, AMITY_MSG_ERROR);
    s_rfx_forget(f);
    /* an operator: every office, or the one asked for */
    s_rejreq(f, &ops, NULL, 0, T0);
    assert_int_equal(f->n_shard, 2);
    assert_string_equal(f->office[0], "");
    s_rfx_forget(f);
    s_rejreq(f, &ops, "hoi-viet-nhat", 0, T0);
    assert_string_equal(f->office[0], "hoi-viet-nhat");
    s_rfx_forget(f);
    s_rejreq(f, &ops, "Not An Office", 0, T0);
    assert_int_equal(f->n_shard, 0);
    assert_int_equal(f->n, 1);
    /* no peer in secure mode: refused as for every request */
    s_rfx_forget(f);
    s_rejreq(f, NULL, NULL, 0, T0);
    assert_int_equal(f->n_shard, 0);
    assert_int_equal(f->n, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_notify_merge_start_requests_every_shard, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_two_snapshots_sum, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_totals_update, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_gap_resyncs, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_backwards_resyncs, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_buffered_after_snapshot, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_buffered_gap_resyncs, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_heartbeat_seq, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_resnapshot_zeroes_dropped_key,
                                        s_mfx_setup2, s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_silence_and_retry, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_snapshot_chunks_disagree, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_merge_buffer_overflow_rerequests, s_mfx_setup2,
                                        s_mfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_seq_counts_batches, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_subscribers_filter_and_chain, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_resubscribe_replaces, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_ping_unsub_expiry, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_max_subscribers, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_query_sorted, s_cfx_setup, s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_query_chunks, s_cfx_setup, s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_bad_client_type, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_secure_prefixes, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test(test_notify_auth_may_read),
        cmocka_unit_test(test_notify_subs_churn),
        cmocka_unit_test(test_notify_prefix_match),
        cmocka_unit_test(test_notify_config_check),
        cmocka_unit_test_setup_teardown(test_notify_core_malformed_echoes_req, s_cfx_setup,
                                        s_cfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_rejects_gathered_by_time, s_rfx_setup,
                                        s_rfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_rejects_timeout_and_refusal, s_rfx_setup,
                                        s_rfx_teardown),
        cmocka_unit_test_setup_teardown(test_notify_core_rejects_secure, s_rfx_setup,
                                        s_rfx_teardown),
    };

    return cmocka_run_group_tests_name("svc_notify", tests, NULL, NULL);
}
