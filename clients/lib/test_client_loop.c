/*  test_client_loop: libamity against scripted fake servers on loopback:
 *  resends after a lost message, late duplicate verdicts ignored, ingest
 *  errors, an unreachable ingest, the subscription protocol (snapshot
 *  chunks, prev chaining, resync on a gap, pongs) and queries. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/client.h"
#include "amity/clock.h"
#include "amity/proto.h"
#include "amity/sock.h"

/*  ------------------------------------------------------------------
 *  A fake server: a ROUTER on an ephemeral loopback port
 */

typedef struct {
    void *ctx;
    void *sock;
    char endpoint[256];
} s_server_t;

static void
s_server_open(s_server_t *s)
{
    size_t len = sizeof(s->endpoint);
    int linger = 0;

    s->ctx = zmq_ctx_new();
    assert_non_null(s->ctx);
    s->sock = zmq_socket(s->ctx, ZMQ_ROUTER);
    assert_non_null(s->sock);
    assert_int_equal(zmq_setsockopt(s->sock, ZMQ_LINGER, &linger, sizeof(linger)), 0);
    assert_int_equal(zmq_bind(s->sock, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(s->sock, ZMQ_LAST_ENDPOINT, s->endpoint, &len), 0);
}

static void
s_server_close(s_server_t *s)
{
    zmq_close(s->sock);
    zmq_ctx_term(s->ctx);
}

/* One received request: the peer's routing id and the decoded message. */
typedef struct {
    amity_frame_t frames[4];
    int n;
    amity_msg_t msg;
} s_req_t;

/* Receives one message if any (waiting up to wait_ms); 1 when one came. */
static int
s_server_recv(s_server_t *s, s_req_t *r, int wait_ms)
{
    zmq_pollitem_t item = { s->sock, 0, ZMQ_POLLIN, 0 };
    char why[256];

    memset(r, 0, sizeof(*r));
    amity_msg_init(&r->msg);
    if (zmq_poll(&item, 1, wait_ms) <= 0) {
        return 0;
    }
    r->n = amity_sock_recv_frames(s->sock, r->frames, 4, NULL, 0);
    assert_int_equal(r->n, 2);
    assert_int_equal(
        amity_msg_decode(r->frames[1].data, r->frames[1].len, &r->msg, why, sizeof(why)), 0);
    return 1;
}

static void
s_req_clear(s_req_t *r)
{
    amity_msg_clear(&r->msg);
    amity_frames_free(r->frames, r->n);
    r->n = 0;
}

static void
s_server_send(s_server_t *s, const s_req_t *to, const amity_msg_t *m)
{
    amity_buf_t buf;
    amity_frame_t frames[2];

    amity_buf_init(&buf);
    assert_int_equal(amity_msg_encode(m, &buf), 0);
    frames[0] = to->frames[0];
    frames[1].data = buf.data;
    frames[1].len = buf.len;
    assert_int_equal(amity_sock_send_frames(s->sock, frames, 2, 0), 0);
    amity_buf_clear(&buf);
}

/*  ------------------------------------------------------------------
 *  Submitting
 */

#define S_N 10

typedef struct {
    int seen[S_N + 1];              /* callbacks per tag */
    amity_status_t status[S_N + 1]; /* last status per tag */
    char why[S_N + 1][128];         /* last reason per tag */
    char id[S_N + 1][32];           /* id reported per tag */
    bool local[S_N + 1];
    int total; /* callbacks */
} s_verdicts_t;

static void
s_on_verdict(void *arg, const amity_verdict_info_t *v)
{
    s_verdicts_t *vs = arg;

    assert_true(v->tag >= 1 && v->tag <= S_N);
    vs->seen[v->tag]++;
    vs->status[v->tag] = v->status;
    snprintf(vs->why[v->tag], sizeof(vs->why[v->tag]), "%s", v->why);
    snprintf(vs->id[v->tag], sizeof(vs->id[v->tag]), "%s", v->id);
    vs->local[v->tag] = v->local;
    vs->total++;
}

/* Submits records r-1 .. r-n tagged 1 .. n. */
static void
s_submit_n(amity_client_t *c, int n)
{
    for (int i = 1; i <= n; i++) {
        char id[32];
        amity_fields_t f;
        memset(&f, 0, sizeof(f));
        snprintf(id, sizeof(id), "r-%d", i);
        f.n_fields = 2;
        f.fields[0].name = "id";
        f.fields[0].name_len = 2;
        f.fields[0].val.type = AMITY_VAL_STR;
        f.fields[0].val.as.s.ptr = id;
        f.fields[0].val.as.s.len = strlen(id);
        f.fields[1].name = "activities";
        f.fields[1].name_len = 10;
        f.fields[1].val.type = AMITY_VAL_UINT;
        f.fields[1].val.as.u = (uint64_t)i;
        assert_int_equal(amity_client_submit(c, &f, (uint64_t)i), 0);
    }
}

/* The id inside an item's record (a map {id, activities}). */
static void
s_item_id(const amity_item_t *it, char *buf, size_t len)
{
    amity_fields_t f;
    char why[256];

    assert_int_equal(amity_fields_decode(it->rec.ptr, it->rec.len, &f, why, sizeof(why)), 0);
    assert_int_equal(f.fields[0].val.type, AMITY_VAL_STR);
    snprintf(buf, len, "%.*s", (int)f.fields[0].val.as.s.len, f.fields[0].val.as.s.ptr);
}

static void
test_client_loop_resend_and_late_duplicates(void **state)
{
    s_server_t srv;
    amity_client_opts_t o;
    amity_client_t *c = NULL;
    amity_client_stats_t st;
    s_verdicts_t vs;
    int n_msgs = 0;
    int64_t until;

    (void)state;
    memset(&vs, 0, sizeof(vs));
    s_server_open(&srv);
    amity_client_opts_init(&o);
    o.ingest = srv.endpoint;
    o.office = "hoi-viet-my";
    o.window = 16;
    o.batch = 4;
    o.timeout_ms = 150;
    assert_int_equal(amity_client_new(&c, &o, s_on_verdict, &vs), 0);
    s_submit_n(c, S_N);

    until = amity_clock_mono_ms() + 10000;
    while (vs.total < S_N && amity_clock_mono_ms() < until) {
        s_req_t r;
        assert_int_equal(amity_client_poll(c, 5), 0);
        while (s_server_recv(&srv, &r, 5)) {
            amity_verdict_t v[16];
            amity_msg_t out;

            assert_int_equal(r.msg.type, AMITY_MSG_SUBMIT);
            assert_int_equal(r.msg.office.len, strlen("hoi-viet-my"));
            assert_true(r.msg.n_items >= 1 && r.msg.n_items <= 4);
            if (n_msgs++ == 0) {
                s_req_clear(&r); /* lost: the client must resend these */
                continue;
            }
            for (size_t i = 0; i < r.msg.n_items; i++) {
                char id[32];
                s_item_id(&r.msg.items[i], id, sizeof(id));
                memset(&v[i], 0, sizeof(v[i]));
                v[i].tag = r.msg.items[i].tag;
                v[i].status = AMITY_VERDICT_ACCEPTED;
                if (strcmp(id, "r-3") == 0) {
                    v[i].status = AMITY_VERDICT_REJECTED;
                    v[i].why = amity_view_str("kind: required");
                }
            }
            /* a verdict for a tag the client never used */
            memset(&v[r.msg.n_items], 0, sizeof(v[0]));
            v[r.msg.n_items].tag = 987654321;
            v[r.msg.n_items].status = AMITY_VERDICT_ACCEPTED;
            amity_msg_init(&out);
            out.type = AMITY_MSG_VERDICTS;
            out.verdicts = v;
            out.n_verdicts = r.msg.n_items + 1;
            s_server_send(&srv, &r, &out);
            /* and every verdict again, as a resend's late duplicate would */
            for (size_t i = 0; i < r.msg.n_items; i++) {
                if (v[i].status == AMITY_VERDICT_ACCEPTED) {
                    v[i].status = AMITY_VERDICT_DUPLICATE;
                }
            }
            out.n_verdicts = r.msg.n_items;
            s_server_send(&srv, &r, &out);
            s_req_clear(&r);
        }
    }
    /* let the late duplicates arrive, then check nothing changed */
    assert_int_equal(amity_client_poll(c, 100), 0);
    assert_int_equal(amity_client_flush(c, 1000), 0);
    assert_int_equal(vs.total, S_N);
    for (int t = 1; t <= S_N; t++) {
        char id[32];
        snprintf(id, sizeof(id), "r-%d", t);
        assert_int_equal(vs.seen[t], 1);
        assert_string_equal(vs.id[t], id);
        assert_false(vs.local[t]);
        if (t == 3) {
            assert_int_equal(vs.status[t], AMITY_STATUS_REJECTED);
            assert_string_equal(vs.why[t], "kind: required");
        } else {
            assert_int_equal(vs.status[t], AMITY_STATUS_ACCEPTED);
            assert_string_equal(vs.why[t], "");
        }
    }
    amity_client_stats(c, &st);
    assert_int_equal(st.submitted, S_N);
    assert_int_equal(st.accepted, S_N - 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.duplicate, 0);
    assert_true(st.resends >= 4);
    assert_true(st.late >= 1);
    assert_int_equal(st.in_flight, 0);
    assert_false(amity_client_stalled(c));
    amity_client_destroy(&c);
    amity_client_destroy(&c); /* idempotent */
    assert_null(c);
    s_server_close(&srv);
}

static void
test_client_loop_error_reply_fails_records(void **state)
{
    s_server_t srv;
    amity_client_opts_t o;
    amity_client_t *c = NULL;
    amity_client_stats_t st;
    s_verdicts_t vs;
    int64_t until;

    (void)state;
    memset(&vs, 0, sizeof(vs));
    s_server_open(&srv);
    amity_client_opts_init(&o);
    o.ingest = srv.endpoint;
    o.batch = 8;
    o.timeout_ms = 5000;
    assert_int_equal(amity_client_new(&c, &o, s_on_verdict, &vs), 0);
    s_submit_n(c, 5);
    until = amity_clock_mono_ms() + 5000;
    while (vs.total < 5 && amity_clock_mono_ms() < until) {
        s_req_t r;
        assert_int_equal(amity_client_poll(c, 5), 0);
        if (s_server_recv(&srv, &r, 5)) {
            amity_msg_t out;
            amity_msg_init(&out);
            out.type = AMITY_MSG_ERROR;
            out.why = amity_view_str("office: required (development mode)");
            s_server_send(&srv, &r, &out);
            s_req_clear(&r);
        }
    }
    assert_int_equal(vs.total, 5);
    for (int t = 1; t <= 5; t++) {
        assert_int_equal(vs.status[t], AMITY_STATUS_REJECTED);
        assert_true(vs.local[t]);
        assert_string_equal(vs.why[t], "ingest: office: required (development mode)");
    }
    amity_client_stats(c, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.rejected, 5);
    assert_int_equal(st.in_flight, 0);
    amity_client_destroy(&c);
    s_server_close(&srv);
}

static void
test_client_loop_unreachable_gives_up(void **state)
{
    amity_client_opts_t o;
    amity_client_t *c = NULL;
    amity_client_stats_t st;
    s_verdicts_t vs;
    int64_t t0;
    int64_t took;

    (void)state;
    memset(&vs, 0, sizeof(vs));
    amity_client_opts_init(&o);
    o.ingest = "tcp://127.0.0.1:1"; /* nothing listens there */
    o.timeout_ms = 50;
    o.deadline_ms = 300;
    assert_int_equal(amity_client_new(&c, &o, s_on_verdict, &vs), 0);
    s_submit_n(c, 3);
    t0 = amity_clock_mono_ms();
    assert_int_equal(amity_client_flush(c, -1), AMITY_EAGAIN);
    took = amity_clock_mono_ms() - t0;
    assert_true(took >= 250 && took < 2000);
    assert_true(amity_client_stalled(c));
    amity_client_stats(c, &st);
    assert_int_equal(st.replies, 0);
    assert_int_equal(st.in_flight, 3);
    assert_int_equal(vs.total, 0);
    amity_client_abandon(c, NULL);
    assert_int_equal(vs.total, 3);
    for (int t = 1; t <= 3; t++) {
        assert_int_equal(vs.status[t], AMITY_STATUS_ABANDONED);
        assert_string_equal(vs.why[t], "no verdict before the deadline");
        assert_true(vs.local[t]);
    }
    amity_client_stats(c, &st);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(st.abandoned, 3);
    assert_int_equal(amity_client_flush(c, 0), 0);
    amity_client_destroy(&c);
}

static void
test_client_loop_rejects_unencodable(void **state)
{
    static const char nested[] = "{\"id\":\"obj-note\",\"kind\":\"activity\",\"note\":{\"vi\":1}}";
    amity_client_stats_t st;
    amity_client_t *c = NULL;
    s_verdicts_t vs;
    amity_fields_t f;
    char why[256];
    char *pad;
    char *json;

    (void)state;
    memset(&vs, 0, sizeof(vs));
    assert_int_equal(amity_client_new(&c, NULL, s_on_verdict, &vs), 0);
    memset(&f, 0, sizeof(f));
    f.n_fields = 1;
    f.fields[0].name = "x-a";
    f.fields[0].name_len = 3;
    f.fields[0].val.type = AMITY_VAL_ARRAY;
    assert_int_equal(amity_client_submit(c, &f, 1), AMITY_EINVAL);
    /* a record larger than AMITY_CLIENT_REC_MAX is refused locally */
    pad = malloc(AMITY_CLIENT_REC_MAX + 1);
    json = malloc(AMITY_CLIENT_REC_MAX + 64);
    memset(pad, 'a', AMITY_CLIENT_REC_MAX);
    pad[AMITY_CLIENT_REC_MAX] = '\0';
    snprintf(json, AMITY_CLIENT_REC_MAX + 64, "{\"id\":\"big\",\"x-pad\":\"%s\"}", pad);
    /* a JSON line that is no record is rejected by the client: one local
     * verdict at once, with the line's id when it has one */
    assert_int_equal(amity_client_submit_json(c, json, strlen(json), 2, why, sizeof(why)), 0);
    assert_non_null(strstr(why, "record:"));
    assert_int_equal(vs.seen[2], 1);
    assert_int_equal(vs.status[2], AMITY_STATUS_REJECTED);
    assert_true(vs.local[2]);
    assert_string_equal(vs.id[2], "big");
    assert_non_null(strstr(vs.why[2], "record:"));
    assert_int_equal(amity_client_submit_json(c, "{\"id\"", 5, 3, why, sizeof(why)), 0);
    assert_true(strncmp(why, "json: ", 6) == 0);
    assert_int_equal(vs.seen[3], 1);
    assert_int_equal(vs.status[3], AMITY_STATUS_REJECTED);
    assert_string_equal(vs.id[3], "-");
    assert_true(strncmp(vs.why[3], "json: ", 6) == 0);
    assert_int_equal(amity_client_submit_json(c, nested, strlen(nested), 4, NULL, 0), 0);
    assert_int_equal(vs.seen[4], 1);
    assert_int_equal(vs.status[4], AMITY_STATUS_REJECTED);
    assert_string_equal(vs.id[4], "obj-note");
    assert_string_equal(vs.why[4], "note: nested arrays and objects are allowed only in x- fields");
    amity_client_stats(c, &st);
    assert_int_equal(st.rejected, 3);
    assert_int_equal(st.submitted, 0);
    assert_int_equal(st.in_flight, 0);
    assert_int_equal(vs.total, 3);
    free(pad);
    free(json);
    amity_client_destroy(&c);
}

/*  ------------------------------------------------------------------
 *  Subscribing
 */

typedef struct {
    int n_events;
    amity_sub_event_t ev[8];
    uint64_t seq[8];
    char text[8][256]; /* "a=1,b=2" */
} s_events_t;

static void
s_on_sub(void *arg, amity_sub_event_t ev, uint64_t seq, const amity_total_t *t, size_t n)
{
    s_events_t *e = arg;
    size_t used = 0;

    assert_true(e->n_events < 8);
    e->ev[e->n_events] = ev;
    e->seq[e->n_events] = seq;
    e->text[e->n_events][0] = '\0';
    for (size_t i = 0; i < n; i++) {
        used += (size_t)snprintf(e->text[e->n_events] + used, sizeof(e->text[0]) - used,
                                 "%s%s=%lld", i ? "," : "", t[i].key, (long long)t[i].value);
    }
    e->n_events++;
}

static void
s_send_snap(s_server_t *srv, const s_req_t *to, uint64_t req, uint64_t seq, bool more,
            const char *k1, int64_t v1, const char *k2, int64_t v2)
{
    amity_kv_t kv[2];
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_SNAP;
    m.req = req;
    m.seq = seq;
    m.epoch = 7;
    m.more = more;
    kv[0].key = amity_view_str(k1);
    kv[0].val = v1;
    m.kv = kv;
    m.n_kv = 1;
    if (k2 != NULL) {
        kv[1].key = amity_view_str(k2);
        kv[1].val = v2;
        m.n_kv = 2;
    }
    s_server_send(srv, to, &m);
}

static void
s_send_upd(s_server_t *srv, const s_req_t *to, uint64_t prev, uint64_t seq, const char *k,
           int64_t v)
{
    amity_kv_t kv[1];
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_UPD;
    m.epoch = 7;
    m.seq = seq;
    m.prev = prev;
    kv[0].key = amity_view_str(k);
    kv[0].val = v;
    m.kv = kv;
    m.n_kv = 1;
    s_server_send(srv, to, &m);
}

static void
test_client_loop_subscription(void **state)
{
    s_server_t srv;
    amity_client_opts_t o;
    amity_sub_t *sub = NULL;
    s_events_t ev;
    const char *prefixes[] = { "2024/" };
    int n_subs = 0;
    int n_pings = 0;
    uint64_t last_sent = 0;
    int64_t until;
    s_req_t peer;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    memset(&peer, 0, sizeof(peer));
    s_server_open(&srv);
    amity_client_opts_init(&o);
    o.notify = srv.endpoint;
    assert_int_equal(amity_sub_new(&sub, &o, prefixes, 1, s_on_sub, &ev), 0);

    until = amity_clock_mono_ms() + 10000;
    while (amity_clock_mono_ms() < until && (ev.n_events < 3 || n_pings < 1)) {
        s_req_t r;
        int before = ev.n_events;

        assert_int_equal(amity_sub_poll(sub, 5), 0);
        if (ev.n_events == 1 && before == 0) {
            /* after the first snapshot: one good update, then a gap */
            s_send_upd(&srv, &peer, 5, 6, "2024/c", 3);
            s_send_upd(&srv, &peer, 8, 9, "2024/d", 4);
            last_sent = 9;
        }
        while (s_server_recv(&srv, &r, 5)) {
            if (r.msg.type == AMITY_MSG_SUB) {
                assert_int_equal(r.msg.n_prefixes, 1);
                assert_int_equal(r.msg.prefixes[0].len, 5);
                n_subs++;
                if (n_subs == 1) {
                    /* keep the peer's routing id for the updates */
                    peer.frames[0].data = malloc(r.frames[0].len);
                    memcpy(peer.frames[0].data, r.frames[0].data, r.frames[0].len);
                    peer.frames[0].len = r.frames[0].len;
                    peer.n = 1;
                    s_send_snap(&srv, &r, r.msg.req, 5, true, "2024/b", 2, NULL, 0);
                    s_send_snap(&srv, &r, r.msg.req, 5, false, "2024/a", 1, NULL, 0);
                    last_sent = 5;
                } else {
                    s_send_snap(&srv, &r, r.msg.req, 9, true, "2024/d", 4, "2024/c", 3);
                    s_send_snap(&srv, &r, r.msg.req, 9, false, "2024/b", 2, "2024/a", 1);
                    last_sent = 9;
                }
            } else if (r.msg.type == AMITY_MSG_PING) {
                amity_msg_t m;
                n_pings++;
                amity_msg_init(&m);
                m.type = AMITY_MSG_PONG;
                m.epoch = 7;
                m.seq = last_sent;
                s_server_send(&srv, &r, &m);
            }
            s_req_clear(&r);
        }
    }
    assert_int_equal(ev.n_events, 3);
    assert_int_equal(ev.ev[0], AMITY_SUB_SNAPSHOT);
    assert_int_equal(ev.seq[0], 5);
    assert_string_equal(ev.text[0], "2024/a=1,2024/b=2");
    assert_int_equal(ev.ev[1], AMITY_SUB_UPDATE);
    assert_int_equal(ev.seq[1], 6);
    assert_string_equal(ev.text[1], "2024/c=3");
    assert_int_equal(ev.ev[2], AMITY_SUB_SNAPSHOT);
    assert_int_equal(ev.seq[2], 9);
    assert_string_equal(ev.text[2], "2024/a=1,2024/b=2,2024/c=3,2024/d=4");
    assert_int_equal(n_subs, 2);
    assert_true(n_pings >= 1);
    assert_int_equal(amity_sub_syncs(sub), 2);
    amity_frames_free(peer.frames, peer.n);
    amity_sub_destroy(&sub);
    assert_null(sub);
    s_server_close(&srv);
}

/*  ------------------------------------------------------------------
 *  Querying (the fake notify runs in a thread: amity_query blocks)
 */

typedef struct {
    s_server_t srv;
    bool refuse;       /* answer with an error */
    bool inconsistent; /* first answer's chunks disagree on seq */
    uint64_t reqs[2];  /* the req ids received */
} s_qserver_t;

static void *
s_qserver_main(void *arg)
{
    s_qserver_t *q = arg;
    s_req_t r;

    if (q->inconsistent && s_server_recv(&q->srv, &r, 5000)) {
        /* chunks of one answer at two seqs: the client must drop the
         * first and ask again under a new req */
        q->reqs[0] = r.msg.req;
        s_send_snap(&q->srv, &r, r.msg.req, 41, true, "2024/all/stale/all/projects", 1, NULL, 0);
        s_send_snap(&q->srv, &r, r.msg.req, 42, false, "2024/all/stale/US/projects", 1, NULL, 0);
        s_req_clear(&r);
    }
    if (s_server_recv(&q->srv, &r, 5000)) {
        q->reqs[1] = r.msg.req;
        if (r.msg.type == AMITY_MSG_QUERY && !q->refuse) {
            s_send_snap(&q->srv, &r, r.msg.req, 42, true, "2024/all/aid_commitment/all/projects",
                        209, "2024/all/aid_commitment/all/amount.USD", 4742574200);
            s_send_snap(&q->srv, &r, r.msg.req, 42, false, "2024/all/aid_commitment/US/projects",
                        11, NULL, 0);
        } else {
            amity_msg_t m;
            amity_msg_init(&m);
            m.type = AMITY_MSG_ERROR;
            m.req = r.msg.req;
            m.why = amity_view_str("prefix: too long");
            s_server_send(&q->srv, &r, &m);
        }
        s_req_clear(&r);
    }
    return NULL;
}

typedef struct {
    char keys[4][64];
    int64_t vals[4];
    int n;
} s_rows_t;

static int
s_on_row(void *arg, const amity_total_t *t)
{
    s_rows_t *rows = arg;

    assert_true(rows->n < 4);
    snprintf(rows->keys[rows->n], sizeof(rows->keys[0]), "%s", t->key);
    rows->vals[rows->n] = t->value;
    rows->n++;
    return 0;
}

static void
test_client_loop_query(void **state)
{
    s_qserver_t q;
    pthread_t th;
    amity_client_opts_t o;
    s_rows_t rows;
    uint64_t seq = 0;

    (void)state;
    memset(&q, 0, sizeof(q));
    memset(&rows, 0, sizeof(rows));
    s_server_open(&q.srv);
    assert_int_equal(pthread_create(&th, NULL, s_qserver_main, &q), 0);
    amity_client_opts_init(&o);
    o.notify = q.srv.endpoint;
    assert_int_equal(amity_query(&o, "2024/all/aid_commitment/", s_on_row, &rows, &seq, 5000), 0);
    pthread_join(th, NULL);
    s_server_close(&q.srv);
    assert_int_equal(seq, 42);
    assert_int_equal(rows.n, 3);
    assert_string_equal(rows.keys[0], "2024/all/aid_commitment/US/projects");
    assert_string_equal(rows.keys[1], "2024/all/aid_commitment/all/amount.USD");
    assert_int_equal(rows.vals[1], 4742574200);
    assert_string_equal(rows.keys[2], "2024/all/aid_commitment/all/projects");

    /* inconsistent chunks: asked again, the stale chunk's totals dropped */
    memset(&q, 0, sizeof(q));
    memset(&rows, 0, sizeof(rows));
    q.inconsistent = true;
    s_server_open(&q.srv);
    assert_int_equal(pthread_create(&th, NULL, s_qserver_main, &q), 0);
    o.notify = q.srv.endpoint;
    assert_int_equal(amity_query(&o, "2024/all/", s_on_row, &rows, &seq, 5000), 0);
    pthread_join(th, NULL);
    s_server_close(&q.srv);
    assert_true(q.reqs[0] != 0 && q.reqs[1] != 0 && q.reqs[0] != q.reqs[1]);
    assert_int_equal(seq, 42);
    assert_int_equal(rows.n, 3);
    for (int i = 0; i < rows.n; i++) {
        assert_null(strstr(rows.keys[i], "stale"));
    }

    /* refused */
    memset(&q, 0, sizeof(q));
    q.refuse = true;
    s_server_open(&q.srv);
    assert_int_equal(pthread_create(&th, NULL, s_qserver_main, &q), 0);
    o.notify = q.srv.endpoint;
    assert_int_equal(amity_query(&o, "x", s_on_row, &rows, NULL, 5000), AMITY_EINVAL);
    pthread_join(th, NULL);
    s_server_close(&q.srv);

    /* nobody there */
    o.notify = "tcp://127.0.0.1:1";
    assert_int_equal(amity_query(&o, "", s_on_row, &rows, NULL, 200), AMITY_EAGAIN);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_loop_resend_and_late_duplicates),
        cmocka_unit_test(test_client_loop_error_reply_fails_records),
        cmocka_unit_test(test_client_loop_unreachable_gives_up),
        cmocka_unit_test(test_client_loop_rejects_unencodable),
        cmocka_unit_test(test_client_loop_subscription),
        cmocka_unit_test(test_client_loop_query),
    };
    return cmocka_run_group_tests_name("client_loop", tests, NULL, NULL);
}
