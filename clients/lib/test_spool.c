/*  test_spool: the office spool (amity/spool.h). Storage: records put are
 *  there after a reopen, in order, with their source and text; verdicts
 *  remove them (rejected ones move to the rejected list with the reason)
 *  and survive a reopen. Draining against a fake ingest on loopback: every
 *  record gets its verdict and leaves the spool; an unreachable ingest, a
 *  refusing ingest and a second drainer leave every record pending. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/proto.h"
#include "amity/sock.h"
#include "amity/spool.h"

/*  ------------------------------------------------------------------
 *  Fixture: a spool in a fresh temporary directory
 */

typedef struct {
    char dir[64];
    amity_spool_t *sp;
} s_fix_t;

static int
s_setup(void **state)
{
    s_fix_t *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    (void)snprintf(fx->dir, sizeof(fx->dir), "/tmp/amity-test-spool-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    assert_int_equal(amity_spool_open(&fx->sp, fx->dir), 0);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    s_fix_t *fx = *state;
    static const char *const files[] = { "data.mdb", "lock.mdb", "drain.lock" };
    char path[128];

    amity_spool_destroy(&fx->sp);
    amity_spool_destroy(&fx->sp);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", fx->dir, files[i]);
        (void)unlink(path);
    }
    (void)rmdir(fx->dir);
    free(fx);
    return 0;
}

static void
s_reopen(s_fix_t *fx)
{
    amity_spool_destroy(&fx->sp);
    assert_null(fx->sp);
    assert_int_equal(amity_spool_open(&fx->sp, fx->dir), 0);
}

/* A record {id, kind: activity, activities: n}; id is borrowed. */
static void
s_record(amity_fields_t *f, const char *id, uint64_t n)
{
    memset(f, 0, sizeof(*f));
    f->n_fields = 3;
    f->fields[0].name = "id";
    f->fields[0].name_len = 2;
    f->fields[0].val.type = AMITY_VAL_STR;
    f->fields[0].val.as.s.ptr = id;
    f->fields[0].val.as.s.len = strlen(id);
    f->fields[1].name = "kind";
    f->fields[1].name_len = 4;
    f->fields[1].val.type = AMITY_VAL_STR;
    f->fields[1].val.as.s.ptr = "activity";
    f->fields[1].val.as.s.len = 8;
    f->fields[2].name = "activities";
    f->fields[2].name_len = 10;
    f->fields[2].val.type = AMITY_VAL_UINT;
    f->fields[2].val.as.u = n;
}

/* Spools n records "PREFIX-i" (i from 1) in batches of 100. */
static void
s_put_n(amity_spool_t *sp, const char *prefix, int n)
{
    amity_spool_batch_t *b = NULL;

    assert_int_equal(amity_spool_batch_new(&b), 0);
    for (int i = 1; i <= n; i++) {
        amity_spool_item_t item;
        amity_fields_t f;
        char id[64];
        char src[64];

        (void)snprintf(id, sizeof(id), "%s-%d", prefix, i);
        (void)snprintf(src, sizeof(src), "gen:%d", i);
        s_record(&f, id, (uint64_t)i);
        memset(&item, 0, sizeof(item));
        item.fields = &f;
        item.source = src;
        assert_int_equal(amity_spool_batch_add(b, &item), 0);
        if (amity_spool_batch_count(b) == 100) {
            assert_int_equal(amity_spool_commit(sp, b, NULL), 0);
        }
    }
    assert_int_equal(amity_spool_commit(sp, b, NULL), 0);
    assert_int_equal(amity_spool_batch_count(b), 0);
    amity_spool_batch_destroy(&b);
}

/*  Collects entries from walks and settle callbacks. */
typedef struct {
    int n;
    uint64_t seq[64];
    char id[64][32];
    char source[64][64];
    char why[64][128];
    char raw[64][128];
    char header[64][64];
    amity_status_t status[64];
    int64_t spooled_ms[64];
} s_seen_t;

static int
s_collect(void *arg, const amity_spool_entry_t *e)
{
    s_seen_t *s = arg;
    int i = s->n++;

    assert_true(i < 64);
    s->seq[i] = e->seq;
    (void)snprintf(s->id[i], sizeof(s->id[i]), "%s", e->id);
    (void)snprintf(s->source[i], sizeof(s->source[i]), "%s", e->source);
    (void)snprintf(s->why[i], sizeof(s->why[i]), "%s", e->why);
    (void)snprintf(s->raw[i], sizeof(s->raw[i]), "%.*s", (int)e->raw_len,
                   e->raw != NULL ? e->raw : "");
    (void)snprintf(s->header[i], sizeof(s->header[i]), "%.*s", (int)e->header_len,
                   e->header != NULL ? e->header : "");
    s->status[i] = e->status;
    s->spooled_ms[i] = e->spooled_ms;
    return 0;
}

/*  ------------------------------------------------------------------
 *  Storage
 */

static void
test_spool_put_is_durable_and_ordered(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_batch_t *b = NULL;
    amity_spool_item_t item;
    amity_spool_status_t st;
    amity_fields_t f;
    s_seen_t seen;
    amity_buf_t enc;
    uint64_t seq = 0;
    int64_t before = amity_clock_wall_ms();

    s_record(&f, "p-1", 1);
    assert_int_equal(amity_spool_put(fx->sp, &f, "a.jsonl:1", &seq), 0);
    assert_int_equal(seq, 1);
    s_record(&f, "p-2", 2);
    assert_int_equal(amity_spool_put(fx->sp, &f, NULL, &seq), 0);
    assert_int_equal(seq, 2);

    /* a batch: one record as fields, one already encoded, with its text */
    assert_int_equal(amity_spool_batch_new(&b), 0);
    s_record(&f, "p-3", 3);
    memset(&item, 0, sizeof(item));
    item.fields = &f;
    item.source = "b.csv:2";
    item.raw = "p-3,activity,3\n";
    item.raw_len = strlen(item.raw);
    item.header = "id,kind,activities\n";
    item.header_len = strlen(item.header);
    assert_int_equal(amity_spool_batch_add(b, &item), 0);
    amity_buf_init(&enc);
    s_record(&f, "p-4 Hà Nội", 4);
    assert_int_equal(amity_fields_encode(&f, &enc), 0);
    memset(&item, 0, sizeof(item));
    item.rec = enc.data;
    item.rec_len = enc.len;
    item.source = "c.jsonl:7";
    assert_int_equal(amity_spool_batch_add(b, &item), 0);
    assert_int_equal(amity_spool_batch_count(b), 2);
    assert_true(amity_spool_batch_bytes(b) > enc.len);
    assert_int_equal(amity_spool_commit(fx->sp, b, &seq), 0);
    assert_int_equal(seq, 3);
    amity_spool_batch_destroy(&b);
    amity_buf_clear(&enc);

    s_reopen(fx); /* what was committed is on disk */
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.pending, 4);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.spooled, 4);
    assert_true(st.oldest_ms >= before - 1000 && st.oldest_ms <= amity_clock_wall_ms());

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_pending(fx->sp, 0, 0, s_collect, &seen), 0);
    assert_int_equal(seen.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(seen.seq[i], (uint64_t)i + 1);
        assert_int_equal(seen.status[i], 0);
    }
    assert_string_equal(seen.id[0], "p-1");
    assert_string_equal(seen.source[0], "a.jsonl:1");
    assert_string_equal(seen.source[1], "");
    assert_string_equal(seen.id[2], "p-3");
    assert_string_equal(seen.raw[2], "p-3,activity,3\n");
    assert_string_equal(seen.header[2], "id,kind,activities\n");
    assert_string_equal(seen.id[3], "p-4 Hà Nội");

    /* resumable: after 2, at most 1 */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_pending(fx->sp, 2, 1, s_collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.seq[0], 3);
}

static void
test_spool_batch_refuses_bad_records(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_batch_t *b = NULL;
    amity_spool_item_t item;
    amity_spool_status_t st;
    amity_fields_t f;
    char *big;
    static const uint8_t not_a_map[] = { 0x93, 0x01, 0x02, 0x03 };

    assert_int_equal(amity_spool_batch_new(&b), 0);
    memset(&item, 0, sizeof(item));
    item.rec = not_a_map;
    item.rec_len = sizeof(not_a_map);
    assert_int_equal(amity_spool_batch_add(b, &item), AMITY_EINVAL);
    big = malloc(AMITY_CLIENT_REC_MAX + 1);
    assert_non_null(big);
    memset(big, 'x', AMITY_CLIENT_REC_MAX);
    big[AMITY_CLIENT_REC_MAX] = '\0';
    s_record(&f, big, 1);
    memset(&item, 0, sizeof(item));
    item.fields = &f;
    assert_int_equal(amity_spool_batch_add(b, &item), AMITY_EINVAL);
    free(big);
    f.fields[0].val.type = AMITY_VAL_MAP; /* nested: cannot be encoded */
    assert_int_equal(amity_spool_batch_add(b, &item), AMITY_EINVAL);
    assert_int_equal(amity_spool_batch_count(b), 0);
    assert_int_equal(amity_spool_commit(fx->sp, b, NULL), 0); /* empty: nothing */
    amity_spool_batch_destroy(&b);
    assert_null(b);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.spooled, 0);
    assert_int_equal(st.oldest_ms, 0);
}

static void
test_spool_settle_removes_on_verdict(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_outcome_t o[4];
    amity_spool_status_t st;
    s_seen_t seen;
    uint64_t removed = 0;

    s_put_n(fx->sp, "s", 4);
    memset(o, 0, sizeof(o));
    o[0].seq = 1;
    o[0].status = AMITY_STATUS_ACCEPTED;
    o[1].seq = 2;
    o[1].status = AMITY_STATUS_DUPLICATE;
    o[2].seq = 3;
    o[2].status = AMITY_STATUS_REJECTED;
    o[2].why = "date: 2017-02-30 is not a calendar date";
    o[3].seq = 99; /* never spooled: skipped */
    o[3].status = AMITY_STATUS_ACCEPTED;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_settle(fx->sp, o, 4, s_collect, &seen), 0);
    assert_int_equal(seen.n, 3);
    assert_int_equal(seen.status[0], AMITY_STATUS_ACCEPTED);
    assert_string_equal(seen.id[0], "s-1");
    assert_string_equal(seen.source[0], "gen:1");
    assert_int_equal(seen.status[2], AMITY_STATUS_REJECTED);
    assert_string_equal(seen.why[2], "date: 2017-02-30 is not a calendar date");

    s_reopen(fx);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.accepted, 1);
    assert_int_equal(st.duplicate, 1);
    assert_int_equal(st.rejected_ever, 1);
    assert_int_equal(st.spooled, 4);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_pending(fx->sp, 0, 0, s_collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.seq[0], 4);

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_rejected(fx->sp, s_collect, &seen), 0);
    assert_int_equal(seen.n, 1);
    assert_int_equal(seen.seq[0], 3);
    assert_string_equal(seen.id[0], "s-3");
    assert_string_equal(seen.source[0], "gen:3");
    assert_string_equal(seen.why[0], "date: 2017-02-30 is not a calendar date");
    assert_int_equal(seen.status[0], AMITY_STATUS_REJECTED);

    /* a second verdict for a settled record changes nothing */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_settle(fx->sp, o, 1, s_collect, &seen), 0);
    assert_int_equal(seen.n, 0);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.accepted, 1);

    assert_int_equal(amity_spool_rejected_clear(fx->sp, UINT64_MAX, &removed), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.rejected, 0);
    assert_int_equal(st.rejected_ever, 1);
}

/*  ------------------------------------------------------------------
 *  Draining against a fake ingest
 */

typedef enum {
    S_FAKE_VERDICTS = 0, /* accepted; "bad-" ids rejected; ids seen before duplicate */
    S_FAKE_REFUSE,       /* an error reply to every submit */
} s_fake_mode_t;

typedef struct {
    void *ctx;
    void *sock;
    char endpoint[256];
    s_fake_mode_t mode;
    volatile int stop;
    int drop_first;   /* lose this many submit messages (the client resends) */
    char (*seen)[32]; /* ids answered so far */
    size_t n_seen;
    size_t cap_seen;
    int messages;
} s_fake_t;

static bool
s_fake_seen(s_fake_t *f, const char *id)
{
    for (size_t i = 0; i < f->n_seen; i++) {
        if (strcmp(f->seen[i], id) == 0) {
            return true;
        }
    }
    if (f->n_seen == f->cap_seen) {
        f->cap_seen = f->cap_seen ? f->cap_seen * 2 : 256;
        f->seen = realloc(f->seen, f->cap_seen * sizeof(*f->seen));
        assert_non_null(f->seen);
    }
    (void)snprintf(f->seen[f->n_seen++], sizeof(f->seen[0]), "%s", id);
    return false;
}

static void
s_fake_reply(s_fake_t *f, const amity_frame_t *to, const amity_msg_t *m)
{
    amity_buf_t buf;
    amity_frame_t frames[2];

    amity_buf_init(&buf);
    assert_int_equal(amity_msg_encode(m, &buf), 0);
    frames[0] = *to;
    frames[1].data = buf.data;
    frames[1].len = buf.len;
    assert_int_equal(amity_sock_send_frames(f->sock, frames, 2, 0), 0);
    amity_buf_clear(&buf);
}

static void *
s_fake_main(void *arg)
{
    s_fake_t *f = arg;

    while (!f->stop) {
        zmq_pollitem_t item = { f->sock, 0, ZMQ_POLLIN, 0 };
        amity_frame_t frames[4];
        amity_msg_t m;
        amity_msg_t out;
        char why[256];
        int n;

        if (zmq_poll(&item, 1, 20) <= 0) {
            continue;
        }
        n = amity_sock_recv_frames(f->sock, frames, 4, NULL, 0);
        assert_int_equal(n, 2);
        amity_msg_init(&m);
        assert_int_equal(amity_msg_decode(frames[1].data, frames[1].len, &m, why, sizeof(why)), 0);
        assert_int_equal(m.type, AMITY_MSG_SUBMIT);
        f->messages++;
        amity_msg_init(&out);
        if (f->mode == S_FAKE_REFUSE) {
            out.type = AMITY_MSG_ERROR;
            out.req = m.req;
            out.why = amity_view_str("office: required in development mode");
            s_fake_reply(f, &frames[0], &out);
        } else if (f->drop_first > 0) {
            f->drop_first--;
        } else {
            amity_verdict_t *v = calloc(m.n_items, sizeof(*v));
            assert_non_null(v);
            for (size_t i = 0; i < m.n_items; i++) {
                amity_fields_t rf;
                char id[32];
                assert_int_equal(amity_fields_decode(m.items[i].rec.ptr, m.items[i].rec.len, &rf,
                                                     why, sizeof(why)),
                                 0);
                (void)snprintf(id, sizeof(id), "%.*s", (int)rf.fields[0].val.as.s.len,
                               rf.fields[0].val.as.s.ptr);
                v[i].tag = m.items[i].tag;
                if (strncmp(id, "bad-", 4) == 0) {
                    v[i].status = AMITY_VERDICT_REJECTED;
                    v[i].why = amity_view_str("kind: 'x' is not a kind");
                } else if (s_fake_seen(f, id)) {
                    v[i].status = AMITY_VERDICT_DUPLICATE;
                } else {
                    v[i].status = AMITY_VERDICT_ACCEPTED;
                }
            }
            out.type = AMITY_MSG_VERDICTS;
            out.verdicts = v;
            out.n_verdicts = m.n_items;
            s_fake_reply(f, &frames[0], &out);
            free(v);
        }
        amity_msg_clear(&m);
        amity_frames_free(frames, n);
    }
    return NULL;
}

static void
s_fake_start(s_fake_t *f, pthread_t *th, s_fake_mode_t mode)
{
    size_t len = sizeof(f->endpoint);
    int linger = 0;

    memset(f, 0, sizeof(*f));
    f->mode = mode;
    f->ctx = zmq_ctx_new();
    assert_non_null(f->ctx);
    f->sock = zmq_socket(f->ctx, ZMQ_ROUTER);
    assert_non_null(f->sock);
    assert_int_equal(zmq_setsockopt(f->sock, ZMQ_LINGER, &linger, sizeof(linger)), 0);
    assert_int_equal(zmq_bind(f->sock, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(f->sock, ZMQ_LAST_ENDPOINT, f->endpoint, &len), 0);
    assert_int_equal(pthread_create(th, NULL, s_fake_main, f), 0);
}

static void
s_fake_stop(s_fake_t *f, pthread_t th)
{
    f->stop = 1;
    assert_int_equal(pthread_join(th, NULL), 0);
    zmq_close(f->sock);
    zmq_ctx_term(f->ctx);
    free(f->seen);
}

typedef struct {
    uint64_t verdicts[4]; /* by amity_status_t */
    int ticks;
    char last_reject[160];
} s_drain_seen_t;

static int
s_on_drained(void *arg, const amity_spool_entry_t *e)
{
    s_drain_seen_t *s = arg;

    assert_true(e->status >= AMITY_STATUS_ACCEPTED && e->status <= AMITY_STATUS_REJECTED);
    s->verdicts[e->status]++;
    if (e->status == AMITY_STATUS_REJECTED) {
        (void)snprintf(s->last_reject, sizeof(s->last_reject), "%s: %s: %s", e->source, e->id,
                       e->why);
    }
    return 0;
}

static void
s_on_tick(void *arg, const amity_spool_drain_stats_t *st)
{
    s_drain_seen_t *s = arg;

    (void)st;
    s->ticks++;
}

static void
s_opts(amity_client_opts_t *o, const char *endpoint, int64_t deadline_ms)
{
    amity_client_opts_init(o);
    o->ingest = endpoint;
    o->office = "hoi-viet-my";
    o->window = 64;
    o->batch = 16;
    o->timeout_ms = 300;
    o->deadline_ms = deadline_ms;
}

static void
test_spool_drain_delivers_everything(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_cb_t cb;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t o;
    s_drain_seen_t seen;
    s_fake_t fake;
    pthread_t th;

    s_put_n(fx->sp, "r", 500);
    s_put_n(fx->sp, "bad", 3);
    s_fake_start(&fake, &th, S_FAKE_VERDICTS);
    fake.drop_first = 2; /* lost on the way: resent after the timeout */
    s_opts(&o, fake.endpoint, 5000);
    memset(&seen, 0, sizeof(seen));
    cb.on_verdict = s_on_drained;
    cb.on_tick = s_on_tick;
    cb.arg = &seen;
    assert_int_equal(amity_spool_drain(fx->sp, &o, &cb, &ds), 0);
    assert_int_equal(ds.sent, 503);
    assert_int_equal(ds.accepted, 500);
    assert_int_equal(ds.rejected, 3);
    assert_int_equal(ds.pending, 0);
    assert_true(ds.resends > 0);
    assert_false(ds.busy);
    assert_string_equal(ds.refused, "");
    assert_int_equal(seen.verdicts[AMITY_STATUS_ACCEPTED], 500);
    assert_int_equal(seen.verdicts[AMITY_STATUS_REJECTED], 3);
    assert_string_equal(seen.last_reject, "gen:3: bad-3: kind: 'x' is not a kind");
    assert_true(seen.ticks > 0);

    s_reopen(fx);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.accepted, 500);

    /* the same records again (a restart that resends): duplicates */
    s_put_n(fx->sp, "r", 20);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(amity_spool_drain(fx->sp, &o, &cb, &ds), 0);
    assert_int_equal(ds.duplicate, 20);
    assert_int_equal(ds.accepted, 0);
    assert_int_equal(ds.pending, 0);
    /* and an empty spool drains at once */
    assert_int_equal(amity_spool_drain(fx->sp, &o, NULL, NULL), 0);
    s_fake_stop(&fake, th);
}

static void
test_spool_drain_unreachable_keeps_records(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t o;
    int64_t t0;

    s_put_n(fx->sp, "u", 100);
    s_opts(&o, "tcp://127.0.0.1:1", 400); /* nobody listens there */
    t0 = amity_clock_mono_ms();
    assert_int_equal(amity_spool_drain(fx->sp, &o, NULL, &ds), AMITY_EAGAIN);
    assert_true(amity_clock_mono_ms() - t0 < 5000);
    assert_int_equal(ds.replies, 0);
    assert_int_equal(ds.pending, 100);
    assert_false(ds.busy);
    s_reopen(fx);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.pending, 100);
    assert_int_equal(st.rejected, 0);
}

static void
test_spool_drain_refused_keeps_records(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t o;
    s_fake_t fake;
    pthread_t th;

    s_put_n(fx->sp, "f", 30);
    s_fake_start(&fake, &th, S_FAKE_REFUSE);
    s_opts(&o, fake.endpoint, 5000);
    assert_int_equal(amity_spool_drain(fx->sp, &o, NULL, &ds), AMITY_EINVAL);
    assert_non_null(strstr(ds.refused, "office: required"));
    assert_int_equal(ds.pending, 30);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_int_equal(st.rejected, 0);
    s_fake_stop(&fake, th);
}

static void
test_spool_drain_one_at_a_time(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_client_opts_t o;
    char path[128];
    int fd;

    s_put_n(fx->sp, "l", 5);
    (void)snprintf(path, sizeof(path), "%s/drain.lock", fx->dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(flock(fd, LOCK_EX | LOCK_NB), 0); /* another drainer */
    s_opts(&o, "tcp://127.0.0.1:1", 400);
    assert_int_equal(amity_spool_drain(fx->sp, &o, NULL, &ds), AMITY_EAGAIN);
    assert_true(ds.busy);
    assert_int_equal(ds.sent, 0);
    assert_int_equal(ds.pending, 5);
    (void)close(fd);
}

/*  ------------------------------------------------------------------
 *  Whom a spool belongs to
 */

static size_t
s_pending(amity_spool_t *sp)
{
    amity_spool_status_t st;

    assert_int_equal(amity_spool_status(sp, &st), 0);
    return (size_t)st.pending;
}

static void
test_spool_belongs_to_its_office(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t mine;
    amity_client_opts_t other;
    amity_client_opts_t nobody;
    char why[AMITY_WHY_MAX];
    s_fake_t fake;
    pthread_t th;

    s_fake_start(&fake, &th, S_FAKE_VERDICTS);
    s_opts(&mine, fake.endpoint, 5000); /* office hoi-viet-my */
    s_opts(&other, fake.endpoint, 5000);
    other.office = "hoi-viet-uc";
    s_opts(&nobody, fake.endpoint, 5000);
    nobody.office = NULL;

    /* a new spool belongs to nobody; its first put makes it the office's */
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, "");
    assert_int_equal(amity_spool_claim(fx->sp, &mine, why, sizeof(why)), 0);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, ""); /* claiming is not using */
    s_put_n(fx->sp, "o", 10);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, "office hoi-viet-my");

    /* across a reopen (another process), another office is refused,
     * naming both, for putting and for draining */
    s_reopen(fx);
    assert_int_equal(amity_spool_claim(fx->sp, &other, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, fx->dir));
    assert_non_null(strstr(why, "belongs to office hoi-viet-my, not office hoi-viet-uc"));
    assert_int_equal(amity_spool_claim(fx->sp, &nobody, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "belongs to office hoi-viet-my, not no identity"));
    assert_int_equal(amity_spool_claim(fx->sp, &other, NULL, 0), AMITY_EINVAL);
    assert_int_equal(amity_spool_drain(fx->sp, &other, NULL, &ds), AMITY_EINVAL);
    assert_true(ds.not_ours);
    assert_non_null(strstr(ds.refused, "belongs to office hoi-viet-my, not office hoi-viet-uc"));
    assert_int_equal(ds.sent, 0);
    assert_int_equal(ds.pending, 10);
    assert_int_equal(fake.messages, 0); /* nothing went out as the other office */

    /* its own office puts and drains */
    assert_int_equal(amity_spool_claim(fx->sp, &mine, why, sizeof(why)), 0);
    s_put_n(fx->sp, "p", 5);
    assert_int_equal(amity_spool_drain(fx->sp, &mine, NULL, &ds), 0);
    assert_false(ds.not_ours);
    assert_int_equal(ds.accepted, 15);
    assert_int_equal(ds.pending, 0);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, "office hoi-viet-my");
    s_fake_stop(&fake, th);
}

static void
test_spool_first_drain_claims_it(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t first;
    amity_client_opts_t second;

    /* records put by a handle that never claimed (a library user that
     * does not say): the first drain decides, even one that fails */
    s_put_n(fx->sp, "u", 3);
    s_opts(&first, "tcp://127.0.0.1:1", 300);
    assert_int_equal(amity_spool_drain(fx->sp, &first, NULL, &ds), AMITY_EAGAIN);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, "office hoi-viet-my");
    s_opts(&second, "tcp://127.0.0.1:1", 300);
    second.office = "hoi-viet-uc";
    assert_int_equal(amity_spool_drain(fx->sp, &second, NULL, &ds), AMITY_EINVAL);
    assert_true(ds.not_ours);
    assert_int_equal(ds.pending, 3);
}

static void
test_spool_claimed_commit_checks_again(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_batch_t *b = NULL;
    amity_spool_status_t st;
    amity_spool_item_t item;
    amity_client_opts_t my;
    amity_client_opts_t uc;
    amity_fields_t f;
    char why[AMITY_WHY_MAX];

    /* claimed by uc while the spool was nobody's; then another process
     * (here: a drain as my) uses it first: uc's commit is refused */
    s_opts(&my, "tcp://127.0.0.1:1", 300);
    s_opts(&uc, "tcp://127.0.0.1:1", 300);
    uc.office = "hoi-viet-uc";
    assert_int_equal(amity_spool_claim(fx->sp, &uc, why, sizeof(why)), 0);
    assert_int_equal(amity_spool_drain(fx->sp, &my, NULL, &ds), 0); /* empty: returns at once */
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    assert_string_equal(st.owner, "office hoi-viet-my");
    assert_int_equal(amity_spool_batch_new(&b), 0);
    s_record(&f, "late-1", 1);
    memset(&item, 0, sizeof(item));
    item.fields = &f;
    assert_int_equal(amity_spool_batch_add(b, &item), 0);
    assert_int_equal(amity_spool_commit(fx->sp, b, NULL), AMITY_EINVAL);
    assert_int_equal(amity_spool_batch_count(b), 1); /* kept: nothing written */
    assert_int_equal(s_pending(fx->sp), 0);
    assert_int_equal(amity_spool_put(fx->sp, &f, NULL, NULL), AMITY_EINVAL);
    assert_int_equal(s_pending(fx->sp), 0);
    amity_spool_batch_destroy(&b);
}

/*  Writes a zcert-format secret certificate with a fresh key pair into
 *  dir/name; *public_txt gets its public key. */
static void
s_write_cert(const char *dir, const char *name, char *path, size_t path_len, char *public_txt)
{
    char secret_txt[41];
    FILE *fp;

    assert_int_equal(zmq_curve_keypair(public_txt, secret_txt), 0);
    (void)snprintf(path, path_len, "%s/%s_secret", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    (void)fprintf(fp,
                  "#   ZeroMQ CURVE **Secret** Certificate\n\n"
                  "metadata\n    office = \"hoi-viet-my\"\n"
                  "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n",
                  public_txt, secret_txt);
    assert_int_equal(fclose(fp), 0);
}

static void
test_spool_belongs_to_its_key(void **state)
{
    s_fix_t *fx = *state;
    amity_spool_drain_stats_t ds;
    amity_spool_status_t st;
    amity_client_opts_t k1;
    amity_client_opts_t k2;
    amity_client_opts_t dev;
    char keys[64];
    char p1[128];
    char p2[128];
    char pub1[41];
    char pub2[41];
    char want[160];
    char why[AMITY_WHY_MAX];

    (void)snprintf(keys, sizeof(keys), "/tmp/amity-test-spool-keys-XXXXXX");
    assert_non_null(mkdtemp(keys));
    s_write_cert(keys, "one", p1, sizeof(p1), pub1);
    s_write_cert(keys, "two", p2, sizeof(p2), pub2);
    s_opts(&k1, "tcp://127.0.0.1:1", 300);
    k1.key = p1;
    k1.server_key = p2;
    k2 = k1;
    k2.key = p2;
    s_opts(&dev, "tcp://127.0.0.1:1", 300); /* the same office, without keys */

    assert_int_equal(amity_spool_claim(fx->sp, &k1, why, sizeof(why)), 0);
    s_put_n(fx->sp, "k", 4);
    assert_int_equal(amity_spool_status(fx->sp, &st), 0);
    (void)snprintf(want, sizeof(want), "key %s", pub1);
    assert_string_equal(st.owner, want);

    /* another key of the same office is another identity; so is the
     * office named without a key */
    assert_int_equal(amity_spool_claim(fx->sp, &k2, why, sizeof(why)), AMITY_EINVAL);
    (void)snprintf(want, sizeof(want), "belongs to key %s, not key %s", pub1, pub2);
    assert_non_null(strstr(why, want));
    assert_int_equal(amity_spool_drain(fx->sp, &dev, NULL, &ds), AMITY_EINVAL);
    assert_true(ds.not_ours);
    (void)snprintf(want, sizeof(want), "belongs to key %s, not office hoi-viet-my", pub1);
    assert_non_null(strstr(ds.refused, want));
    assert_int_equal(ds.pending, 4);
    /* the key itself is fine (the drain only fails to reach anyone) */
    assert_int_equal(amity_spool_drain(fx->sp, &k1, NULL, &ds), AMITY_EAGAIN);
    assert_false(ds.not_ours);

    (void)unlink(p1);
    (void)unlink(p2);
    (void)rmdir(keys);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_spool_put_is_durable_and_ordered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_batch_refuses_bad_records, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_settle_removes_on_verdict, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_drain_delivers_everything, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_drain_unreachable_keeps_records, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_drain_refused_keeps_records, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_drain_one_at_a_time, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_belongs_to_its_office, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_first_drain_claims_it, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_claimed_commit_checks_again, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_spool_belongs_to_its_key, s_setup, s_teardown),
    };

    return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
