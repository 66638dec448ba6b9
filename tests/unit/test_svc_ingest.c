/*  test_svc_ingest: ingest's handlers without sockets (submit -> work,
 *  refusals -> error replies, verdict routing, frame counts), its option
 *  checks and endpoint arithmetic, and one pass through the real loop over
 *  inproc:// sockets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/auth.h"
#include "amity/buf.h"
#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/record.h"

#include "ingest.h"

static const uint8_t CONN[] = { 0x00, 0x6b, 0x8b, 0x45, 0x67 };

typedef struct {
    amity_strlist_t shards;
    char *shard_items[2];
    ingest_t *ingest;
    ingest_out_t out;
} fixture_t;

static void
s_field_str(amity_fields_t *f, const char *name, const char *val)
{
    amity_field_t *fld = &f->fields[f->n_fields++];
    fld->name = name;
    fld->name_len = strlen(name);
    fld->val.type = AMITY_VAL_STR;
    fld->val.as.s.ptr = val;
    fld->val.as.s.len = strlen(val);
}

static void
s_field_uint(amity_fields_t *f, const char *name, uint64_t val)
{
    amity_field_t *fld = &f->fields[f->n_fields++];
    fld->name = name;
    fld->name_len = strlen(name);
    fld->val.type = AMITY_VAL_UINT;
    fld->val.as.u = val;
}

/* A delegation_in record with the given id, as msgpack bytes. */
static void
s_record(amity_buf_t *out, const char *id)
{
    amity_fields_t f;

    memset(&f, 0, sizeof f);
    s_field_str(&f, "id", id);
    s_field_str(&f, "kind", "delegation_in");
    s_field_str(&f, "date", "2023-05-04");
    s_field_str(&f, "country", "US");
    s_field_uint(&f, "delegations", 1);
    s_field_uint(&f, "people", 12);
    s_field_str(&f, "note", "Đoàn Hội hữu nghị Việt - Mỹ");
    amity_buf_reset(out);
    assert_int_equal(amity_fields_encode(&f, out), 0);
}

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    ingest_opts_t opts = { 0 };

    assert_non_null(fx);
    fx->shard_items[0] = (char *)"tcp://127.0.0.1:17810";
    fx->shard_items[1] = (char *)"tcp://[::1]:17820";
    fx->shards.n = 2;
    fx->shards.items = fx->shard_items;
    opts.bind = "tcp://127.0.0.1:17800";
    opts.work = "tcp://127.0.0.1:17801";
    opts.shards = &fx->shards;
    opts.max_msg = INT64_C(4) << 20;
    assert_int_equal(ingest_new(&fx->ingest, &opts), 0);
    ingest_out_init(&fx->out);
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;

    ingest_destroy(&fx->ingest);
    assert_null(fx->ingest);
    ingest_destroy(&fx->ingest); /* idempotent */
    ingest_out_clear(&fx->out);
    free(fx);
    return 0;
}

/* Runs the client handler on [CONN][body]. */
static void
s_client(fixture_t *fx, const void *body, size_t len)
{
    const void *frames[2] = { CONN, body };
    size_t lens[2] = { sizeof CONN, len };

    assert_int_equal(ingest_handle_client(fx->ingest, frames, lens, 2, &fx->out), 0);
}

/* Expects an error reply to CONN whose reason starts with prefix. */
static void
s_expect_error(fixture_t *fx, const char *prefix)
{
    amity_msg_t m;
    char why[AMITY_WHY_MAX];

    assert_int_equal(fx->out.work.len, 0);
    assert_int_equal(fx->out.conn.len, sizeof CONN);
    assert_memory_equal(fx->out.conn.data, CONN, sizeof CONN);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(fx->out.reply.data, fx->out.reply.len, &m, why, sizeof why),
                     0);
    assert_int_equal(m.type, AMITY_MSG_ERROR);
    assert_true(m.why.len >= strlen(prefix));
    assert_memory_equal(m.why.ptr, prefix, strlen(prefix));
    amity_msg_clear(&m);
}

static void
test_ingest_submit_becomes_work(void **state)
{
    fixture_t *fx = *state;
    amity_buf_t recs[3];
    amity_item_t items[3];
    amity_buf_t body;
    amity_msg_t m;
    char why[AMITY_WHY_MAX];
    const char *ids[3] = { "r-1", "r-2", "r:3" };
    size_t i;

    amity_buf_init(&body);
    for (i = 0; i < 3; i++) {
        amity_buf_init(&recs[i]);
        s_record(&recs[i], ids[i]);
        memset(&items[i], 0, sizeof items[i]);
        items[i].tag = 100 + i;
        items[i].rec.ptr = recs[i].data;
        items[i].rec.len = recs[i].len;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUBMIT;
    m.office = amity_view_str("hoi-viet-my");
    m.n_items = 3;
    m.items = items;
    assert_int_equal(amity_msg_encode(&m, &body), 0);

    s_client(fx, body.data, body.len);
    assert_int_equal(fx->out.conn.len, 0);
    assert_int_equal(fx->out.reply.len, 0);
    assert_true(fx->out.work.len > 0);

    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(fx->out.work.data, fx->out.work.len, &m, why, sizeof why), 0);
    assert_int_equal(m.type, AMITY_MSG_WORK);
    assert_int_equal(m.ing.len, strlen(ingest_id(fx->ingest)));
    assert_memory_equal(m.ing.ptr, ingest_id(fx->ingest), m.ing.len);
    assert_int_equal(m.conn.len, sizeof CONN);
    assert_memory_equal(m.conn.ptr, CONN, sizeof CONN);
    assert_int_equal(m.office.len, strlen("hoi-viet-my"));
    assert_memory_equal(m.office.ptr, "hoi-viet-my", m.office.len);
    assert_int_equal(m.n_items, 3);
    for (i = 0; i < 3; i++) {
        assert_int_equal(m.items[i].tag, 100 + i);
        assert_int_equal(m.items[i].rec.len, recs[i].len);
        assert_memory_equal(m.items[i].rec.ptr, recs[i].data, recs[i].len); /* verbatim */
    }
    amity_msg_clear(&m);
    assert_int_equal(ingest_stats(fx->ingest)->submits, 1);
    assert_int_equal(ingest_stats(fx->ingest)->records, 3);

    for (i = 0; i < 3; i++) {
        amity_buf_clear(&recs[i]);
    }
    amity_buf_clear(&body);
}

static void
test_ingest_id_is_random_hex(void **state)
{
    fixture_t *fx = *state;
    const char *id = ingest_id(fx->ingest);
    ingest_t *other = NULL;
    ingest_opts_t opts = { 0 };
    size_t i;

    assert_int_equal(strlen(id), INGEST_ID_LEN);
    assert_memory_equal(id, "ing-", 4);
    for (i = 4; i < INGEST_ID_LEN; i++) {
        assert_non_null(strchr("0123456789abcdef", id[i]));
    }
    opts.bind = "ipc:///tmp/x";
    opts.work = "inproc://w";
    opts.shards = &fx->shards;
    opts.max_msg = 1024;
    assert_int_equal(ingest_new(&other, &opts), 0);
    assert_string_not_equal(ingest_id(other), id);
    ingest_destroy(&other);
}

static void
test_ingest_malformed_submit_gets_error(void **state)
{
    fixture_t *fx = *state;
    static const uint8_t garbage[] = { 0xc1 };
    static const uint8_t truncated[] = { 0x82, 0xa1, 0x76, 0x01 };

    s_client(fx, garbage, sizeof garbage);
    s_expect_error(fx, "");
    s_client(fx, truncated, sizeof truncated);
    s_expect_error(fx, "");
    s_client(fx, "", 0);
    s_expect_error(fx, "");
    assert_int_equal(ingest_stats(fx->ingest)->bad_submits, 3);
    assert_int_equal(ingest_stats(fx->ingest)->errors_sent, 3);
    assert_int_equal(ingest_stats(fx->ingest)->submits, 0);
}

static void
test_ingest_submit_without_office_refused(void **state)
{
    fixture_t *fx = *state;
    amity_buf_t rec;
    amity_buf_t body;
    amity_item_t item;
    amity_msg_t m;
    const char *bad[] = { NULL, "", "all", "Hoi-Viet-My", "hoi viet" };
    size_t i;

    amity_buf_init(&rec);
    amity_buf_init(&body);
    s_record(&rec, "r-1");
    memset(&item, 0, sizeof item);
    item.tag = 7;
    item.rec.ptr = rec.data;
    item.rec.len = rec.len;
    for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        amity_msg_init(&m);
        m.type = AMITY_MSG_SUBMIT;
        if (bad[i] != NULL) {
            m.office = amity_view_str(bad[i]);
        }
        m.n_items = 1;
        m.items = &item;
        amity_buf_reset(&body);
        assert_int_equal(amity_msg_encode(&m, &body), 0);
        s_client(fx, body.data, body.len);
        s_expect_error(fx, "office: required in development mode");
    }
    assert_int_equal(ingest_stats(fx->ingest)->submits, 0);

    /* a message of another type is refused too */
    amity_msg_init(&m);
    m.type = AMITY_MSG_PING;
    amity_buf_reset(&body);
    assert_int_equal(amity_msg_encode(&m, &body), 0);
    s_client(fx, body.data, body.len);
    s_expect_error(fx, "t: ");

    amity_buf_clear(&rec);
    amity_buf_clear(&body);
}

static void
test_ingest_wrong_frame_counts(void **state)
{
    fixture_t *fx = *state;
    const void *frames[3] = { CONN, "", "x" };
    size_t lens[3] = { sizeof CONN, 0, 1 };

    /* [id][empty][body] (a REQ-style envelope): refused, answered */
    assert_int_equal(ingest_handle_client(fx->ingest, frames, lens, 3, &fx->out), 0);
    s_expect_error(fx, "message: expected 1 frame, got 2");
    assert_int_equal(ingest_stats(fx->ingest)->bad_frames, 1);

    /* five frames: only three are passed, the count is what matters */
    assert_int_equal(ingest_handle_client(fx->ingest, frames, lens, 5, &fx->out), 0);
    s_expect_error(fx, "message: expected 1 frame, got 4");

    /* a routing id alone */
    assert_int_equal(ingest_handle_client(fx->ingest, frames, lens, 1, &fx->out), 0);
    s_expect_error(fx, "message: expected 1 frame, got 0");
    assert_int_equal(ingest_stats(fx->ingest)->bad_frames, 3);

    /* verdict side: anything but [topic][body] is dropped without a reply */
    frames[0] = ingest_id(fx->ingest);
    lens[0] = strlen(ingest_id(fx->ingest));
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 1, &fx->out), 0);
    assert_int_equal(fx->out.conn.len + fx->out.reply.len + fx->out.work.len, 0);
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 3, &fx->out), 0);
    assert_int_equal(fx->out.conn.len + fx->out.reply.len + fx->out.work.len, 0);
    assert_int_equal(ingest_stats(fx->ingest)->bad_verdicts, 2);
}

/* Encodes a verdicts message for conn with three verdicts. */
static void
s_verdicts(amity_buf_t *out, const void *conn, size_t conn_len, const char *ing)
{
    amity_verdict_t v[3];
    amity_msg_t m;

    memset(v, 0, sizeof v);
    v[0].tag = 1;
    v[0].status = AMITY_VERDICT_ACCEPTED;
    v[1].tag = 2;
    v[1].status = AMITY_VERDICT_DUPLICATE;
    v[2].tag = 3;
    v[2].status = AMITY_VERDICT_REJECTED;
    v[2].why = amity_view_str("date: 2017-02-30 is not a calendar date");
    amity_msg_init(&m);
    m.type = AMITY_MSG_VERDICTS;
    m.conn.ptr = conn;
    m.conn.len = conn_len;
    if (ing != NULL) {
        m.ing = amity_view_str(ing);
    }
    m.n_verdicts = 3;
    m.verdicts = v;
    amity_buf_reset(out);
    assert_int_equal(amity_msg_encode(&m, out), 0);
}

static void
test_ingest_routes_verdicts(void **state)
{
    fixture_t *fx = *state;
    const char *id = ingest_id(fx->ingest);
    amity_buf_t body;
    amity_msg_t m;
    char why[AMITY_WHY_MAX];
    const void *frames[2];
    size_t lens[2];

    amity_buf_init(&body);
    s_verdicts(&body, CONN, sizeof CONN, id);
    frames[0] = id;
    lens[0] = strlen(id);
    frames[1] = body.data;
    lens[1] = body.len;
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 2, &fx->out), 0);
    assert_int_equal(fx->out.work.len, 0);
    assert_int_equal(fx->out.conn.len, sizeof CONN);
    assert_memory_equal(fx->out.conn.data, CONN, sizeof CONN);

    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(fx->out.reply.data, fx->out.reply.len, &m, why, sizeof why),
                     0);
    assert_int_equal(m.type, AMITY_MSG_VERDICTS);
    assert_int_equal(m.conn.len, 0); /* stripped */
    assert_null(m.conn.ptr);
    assert_int_equal(m.ing.len, 0);
    assert_int_equal(m.n_verdicts, 3);
    assert_int_equal(m.verdicts[0].tag, 1);
    assert_int_equal(m.verdicts[0].status, AMITY_VERDICT_ACCEPTED);
    assert_int_equal(m.verdicts[1].status, AMITY_VERDICT_DUPLICATE);
    assert_int_equal(m.verdicts[2].status, AMITY_VERDICT_REJECTED);
    assert_int_equal(m.verdicts[2].why.len, strlen("date: 2017-02-30 is not a calendar date"));
    assert_memory_equal(m.verdicts[2].why.ptr, "date: 2017-02-30 is not a calendar date",
                        m.verdicts[2].why.len);
    amity_msg_clear(&m);
    assert_int_equal(ingest_stats(fx->ingest)->verdict_msgs, 1);
    assert_int_equal(ingest_stats(fx->ingest)->verdicts, 3);
    amity_buf_clear(&body);
}

static void
test_ingest_drops_bad_verdicts(void **state)
{
    fixture_t *fx = *state;
    const char *id = ingest_id(fx->ingest);
    char longer[INGEST_ID_LEN + 2];
    amity_buf_t body;
    const void *frames[2];
    size_t lens[2];
    static const uint8_t garbage[] = { 0x91, 0xc1 };

    amity_buf_init(&body);
    s_verdicts(&body, CONN, sizeof CONN, NULL);

    /* another ingest's topic that starts with ours (SUB matches prefixes) */
    memcpy(longer, id, INGEST_ID_LEN);
    longer[INGEST_ID_LEN] = '0';
    longer[INGEST_ID_LEN + 1] = '\0';
    frames[0] = longer;
    lens[0] = strlen(longer);
    frames[1] = body.data;
    lens[1] = body.len;
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 2, &fx->out), 0);
    assert_int_equal(fx->out.conn.len + fx->out.reply.len, 0);

    /* malformed body */
    frames[0] = id;
    lens[0] = strlen(id);
    frames[1] = garbage;
    lens[1] = sizeof garbage;
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 2, &fx->out), 0);
    assert_int_equal(fx->out.conn.len + fx->out.reply.len, 0);

    /* a verdicts message without conn has nowhere to go */
    s_verdicts(&body, NULL, 0, NULL);
    frames[1] = body.data;
    lens[1] = body.len;
    assert_int_equal(ingest_handle_verdicts(fx->ingest, frames, lens, 2, &fx->out), 0);
    assert_int_equal(fx->out.conn.len + fx->out.reply.len, 0);

    assert_int_equal(ingest_stats(fx->ingest)->bad_verdicts, 3);
    assert_int_equal(ingest_stats(fx->ingest)->verdict_msgs, 0);
    amity_buf_clear(&body);
}

/* ------------------------------------------------------------------ */
/* secure mode: offices are their keys                                  */

typedef struct {
    char dir[64];      /* key files */
    char key[128];     /* ingest's secret certificate */
    char pub[128];     /* its public part only */
    char clients[128]; /* an (empty) certificate directory */
    amity_strlist_t shards;
    char *shard_items[1];
    ingest_t *ingest;
    ingest_out_t out;
} secure_t;

static int
s_secure_setup(void **state)
{
    secure_t *sx = calloc(1, sizeof *sx);
    ingest_opts_t opts = { 0 };
    zcert_t *cert;

    assert_non_null(sx);
    strcpy(sx->dir, "/tmp/amity-ingest-keys-XXXXXX");
    assert_non_null(mkdtemp(sx->dir));
    (void)snprintf(sx->pub, sizeof sx->pub, "%s/ingest", sx->dir);
    (void)snprintf(sx->key, sizeof sx->key, "%s/ingest_secret", sx->dir);
    (void)snprintf(sx->clients, sizeof sx->clients, "%s/clients", sx->dir);
    assert_int_equal(mkdir(sx->clients, 0700), 0);
    cert = zcert_new();
    assert_non_null(cert);
    zcert_set_meta(cert, "name", "ingest");
    assert_int_equal(zcert_save(cert, sx->pub), 0);
    zcert_destroy(&cert);
    sx->shard_items[0] = (char *)"tcp://127.0.0.1:17810";
    sx->shards.n = 1;
    sx->shards.items = sx->shard_items;
    opts.bind = "tcp://0.0.0.0:17800"; /* allowed: offices are their keys */
    opts.work = "tcp://127.0.0.1:17801";
    opts.shards = &sx->shards;
    opts.max_msg = INT64_C(1) << 20;
    opts.key = sx->key;
    opts.clients_dir = sx->clients;
    assert_int_equal(ingest_new(&sx->ingest, &opts), 0);
    assert_true(ingest_secure(sx->ingest));
    ingest_out_init(&sx->out);
    *state = sx;
    return 0;
}

static int
s_secure_teardown(void **state)
{
    secure_t *sx = *state;
    char cmd[128];

    ingest_destroy(&sx->ingest);
    ingest_out_clear(&sx->out);
    (void)snprintf(cmd, sizeof cmd, "rm -rf %s", sx->dir);
    assert_int_equal(system(cmd), 0);
    free(sx);
    return 0;
}

/* A submit of one record, with an `office` field unless office is NULL. */
static void
s_submit_body(amity_buf_t *body, const char *office)
{
    amity_buf_t rec;
    amity_item_t item;
    amity_msg_t m;

    amity_buf_init(&rec);
    s_record(&rec, "r-1");
    memset(&item, 0, sizeof item);
    item.tag = 1;
    item.rec.ptr = rec.data;
    item.rec.len = rec.len;
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUBMIT;
    if (office != NULL) {
        m.office = amity_view_str(office);
    }
    m.n_items = 1;
    m.items = &item;
    amity_buf_reset(body);
    assert_int_equal(amity_msg_encode(&m, body), 0);
    amity_buf_clear(&rec);
}

/* Runs the handler as peer on [conn][body] and returns the work's office
 * ("" when no work came out). */
static void
s_as(secure_t *sx, const amity_peer_t *peer, const void *conn, size_t conn_len,
     const amity_buf_t *body, char *office, size_t office_len)
{
    const void *frames[2] = { conn, body->data };
    size_t lens[2] = { conn_len, body->len };
    amity_msg_t m;
    char why[AMITY_WHY_MAX];

    assert_int_equal(ingest_handle_client_as(sx->ingest, peer, frames, lens, 2, &sx->out), 0);
    office[0] = '\0';
    if (sx->out.work.len == 0) {
        return;
    }
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(sx->out.work.data, sx->out.work.len, &m, why, sizeof why), 0);
    assert_true(amity_view_copy(m.office, office, office_len));
    assert_int_equal(m.conn.len, conn_len);
    assert_memory_equal(m.conn.ptr, conn, conn_len);
    amity_msg_clear(&m);
}

static void
s_secure_error(secure_t *sx, const char *prefix)
{
    amity_msg_t m;
    char why[AMITY_WHY_MAX];

    assert_int_equal(sx->out.work.len, 0);
    assert_true(sx->out.reply.len > 0);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(sx->out.reply.data, sx->out.reply.len, &m, why, sizeof why),
                     0);
    assert_int_equal(m.type, AMITY_MSG_ERROR);
    assert_true(m.why.len >= strlen(prefix));
    assert_memory_equal(m.why.ptr, prefix, strlen(prefix));
    amity_msg_clear(&m);
}

static void
test_ingest_secure_office_is_the_key(void **state)
{
    secure_t *sx = *state;
    amity_peer_t hvm = { .name = "hoi-viet-my", .is_office = true };
    amity_peer_t dash = { .name = "dashboard", .is_office = false };
    const char spoof[] = "hoi-viet-nhat"; /* a routing id chosen to look like another office */
    char office[AMITY_OFFICE_MAX + 1];
    amity_buf_t body;

    strcpy(hvm.public_txt, "0123456789012345678901234567890123456789");
    amity_buf_init(&body);

    /* no office field: the key's office */
    s_submit_body(&body, NULL);
    s_as(sx, &hvm, CONN, sizeof CONN, &body, office, sizeof office);
    assert_string_equal(office, "hoi-viet-my");
    /* the routing id changes nothing */
    s_as(sx, &hvm, spoof, strlen(spoof), &body, office, sizeof office);
    assert_string_equal(office, "hoi-viet-my");
    /* its own name in the field: fine */
    s_submit_body(&body, "hoi-viet-my");
    s_as(sx, &hvm, CONN, sizeof CONN, &body, office, sizeof office);
    assert_string_equal(office, "hoi-viet-my");
    assert_int_equal(ingest_stats(sx->ingest)->submits, 3);

    /* another office's name: refused, counted */
    s_submit_body(&body, "hoi-viet-nhat");
    s_as(sx, &hvm, CONN, sizeof CONN, &body, office, sizeof office);
    assert_string_equal(office, "");
    s_secure_error(sx, "office: 'hoi-viet-nhat' is not the office of this key");
    assert_int_equal(ingest_stats(sx->ingest)->office_mismatch, 1);

    /* a key no longer registered (NULL peer), a subscriber's key, or the
     * development-mode entry point: nothing passes */
    s_submit_body(&body, "hoi-viet-my");
    s_as(sx, NULL, CONN, sizeof CONN, &body, office, sizeof office);
    s_secure_error(sx, "auth: ");
    s_as(sx, &dash, CONN, sizeof CONN, &body, office, sizeof office);
    s_secure_error(sx, "auth: ");
    {
        const void *frames[2] = { CONN, body.data };
        size_t lens[2] = { sizeof CONN, body.len };
        assert_int_equal(ingest_handle_client(sx->ingest, frames, lens, 2, &sx->out), 0);
        s_secure_error(sx, "auth: ");
    }
    assert_int_equal(ingest_stats(sx->ingest)->unauthenticated, 3);
    assert_int_equal(ingest_stats(sx->ingest)->submits, 3);
    amity_buf_clear(&body);
}

static void
test_ingest_development_ignores_peer(void **state)
{
    fixture_t *fx = *state;
    amity_peer_t hvm = { .name = "hoi-viet-my", .is_office = true };
    amity_buf_t body;
    amity_msg_t m;
    char why[AMITY_WHY_MAX];
    const void *frames[2];
    size_t lens[2];

    amity_buf_init(&body);
    s_submit_body(&body, "hoi-viet-nhat");
    frames[0] = CONN;
    frames[1] = body.data;
    lens[0] = sizeof CONN;
    lens[1] = body.len;
    assert_false(ingest_secure(fx->ingest));
    assert_int_equal(ingest_handle_client_as(fx->ingest, &hvm, frames, lens, 2, &fx->out), 0);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(fx->out.work.data, fx->out.work.len, &m, why, sizeof why), 0);
    assert_int_equal(m.office.len, strlen("hoi-viet-nhat"));
    assert_memory_equal(m.office.ptr, "hoi-viet-nhat", m.office.len);
    amity_msg_clear(&m);
    amity_buf_clear(&body);
}

static void
test_ingest_key_options(void **state)
{
    secure_t *sx = *state;
    ingest_t *other = NULL;
    ingest_opts_t opts = { 0 };
    amity_strlist_t keys;
    char *key_items[2];

    opts.bind = "tcp://127.0.0.1:17800";
    opts.work = "tcp://127.0.0.1:17801";
    opts.shards = &sx->shards;
    opts.max_msg = 1 << 20;
    /* one without the other */
    opts.key = sx->key;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.key = NULL;
    opts.clients_dir = sx->clients;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.clients_dir = NULL;
    opts.peers_dir = sx->clients;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.peers_dir = NULL;
    /* shard keys need our key, and one per shard */
    key_items[0] = sx->pub;
    key_items[1] = sx->pub;
    keys.items = key_items;
    keys.n = 1;
    opts.shard_keys = &keys;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.key = sx->key;
    opts.clients_dir = sx->clients;
    keys.n = 2;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    keys.n = 1;
    assert_int_equal(ingest_new(&other, &opts), 0);
    ingest_destroy(&other);
    /* a public certificate without its secret beside it is no key; a
     * missing file neither */
    {
        char lone[160];
        char cmd[400];
        (void)snprintf(lone, sizeof lone, "%s/lone", sx->clients);
        (void)snprintf(cmd, sizeof cmd, "cp %s %s", sx->pub, lone);
        assert_int_equal(system(cmd), 0);
        opts.key = lone;
        assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
        assert_int_equal(unlink(lone), 0);
    }
    opts.key = "/nonexistent/ingest_secret";
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.key = sx->key;
    /* the work endpoint leaves loopback only with --peers-dir */
    opts.work = "tcp://0.0.0.0:17801";
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.peers_dir = sx->clients;
    assert_int_equal(ingest_new(&other, &opts), 0);
    ingest_destroy(&other);
    assert_null(other);
}

static void
test_ingest_refuses_non_loopback(void **state)
{
    fixture_t *fx = *state;
    ingest_t *other = NULL;
    ingest_opts_t opts = { 0 };
    amity_strlist_t bad_shards;
    char *bad_items[1] = { (char *)"tcp://127.0.0.1" };

    opts.bind = "tcp://0.0.0.0:17800";
    opts.work = "tcp://127.0.0.1:17801";
    opts.shards = &fx->shards;
    opts.max_msg = 1 << 20;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    assert_null(other);
    opts.bind = "tcp://127.0.0.1:17800";
    opts.work = "tcp://*:17801";
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    opts.work = "tcp://[::1]:17801";
    assert_int_equal(ingest_new(&other, &opts), 0);
    ingest_destroy(&other);

    bad_shards.n = 1;
    bad_shards.items = bad_items;
    opts.shards = &bad_shards;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    bad_shards.n = 0;
    assert_int_equal(ingest_new(&other, &opts), AMITY_EINVAL);
    assert_null(other);
}

/* ------------------------------------------------------------------ */
/* the real loop over inproc://                                         */

typedef struct {
    ingest_t *ingest;
    void *ctx;
    int rc;
} runner_t;

static void *
s_run(void *arg)
{
    runner_t *r = arg;
    r->rc = ingest_run(r->ingest, r->ctx, -1);
    return NULL;
}

static int
s_recv_body(void *sock, amity_buf_t *out, int timeout_ms)
{
    zmq_pollitem_t it = { sock, 0, ZMQ_POLLIN, 0 };
    zmq_msg_t part;
    int more = 1;

    if (zmq_poll(&it, 1, timeout_ms) <= 0) {
        return -1;
    }
    amity_buf_reset(out);
    while (more) {
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, 0) < 0) {
            zmq_msg_close(&part);
            return -1;
        }
        more = zmq_msg_more(&part);
        /* keep the last frame: the body */
        amity_buf_set(out, zmq_msg_data(&part), zmq_msg_size(&part));
        zmq_msg_close(&part);
    }
    return 0;
}

static void
test_ingest_loop_over_inproc(void **state)
{
    fixture_t *fx = *state;
    char *shard_item = (char *)"inproc://t-ing-shard0";
    amity_strlist_t shards = { 1, &shard_item };
    ingest_opts_t opts = { 0 };
    runner_t r;
    pthread_t th;
    void *dealer;
    void *pull;
    void *pub;
    int zero = 0;
    amity_buf_t rec;
    amity_buf_t body;
    amity_buf_t got;
    amity_item_t item;
    amity_msg_t m;
    char why[AMITY_WHY_MAX];
    uint8_t conn[256];
    size_t conn_len;
    int tries;

    (void)fx;
    amity_buf_init(&rec);
    amity_buf_init(&body);
    amity_buf_init(&got);
    memset(&r, 0, sizeof r);
    r.ctx = zmq_ctx_new();
    assert_non_null(r.ctx);
    opts.bind = "inproc://t-ing-clients";
    opts.work = "inproc://t-ing-work";
    opts.shards = &shards;
    opts.max_msg = 1 << 20;
    assert_int_equal(ingest_new(&r.ingest, &opts), 0);

    /* the shard's verdict PUB exists first, as a running shard would */
    pub = zmq_socket(r.ctx, ZMQ_PUB);
    assert_int_equal(zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_bind(pub, "inproc://t-ing-shard0-1"), 0);
    assert_int_equal(pthread_create(&th, NULL, s_run, &r), 0);

    /* inproc allows connecting before the bind happens */
    dealer = zmq_socket(r.ctx, ZMQ_DEALER);
    pull = zmq_socket(r.ctx, ZMQ_PULL);
    assert_int_equal(zmq_setsockopt(dealer, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero), 0);
    assert_int_equal(zmq_connect(dealer, opts.bind), 0);
    assert_int_equal(zmq_connect(pull, opts.work), 0);

    s_record(&rec, "loop-1");
    memset(&item, 0, sizeof item);
    item.tag = 42;
    item.rec.ptr = rec.data;
    item.rec.len = rec.len;
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUBMIT;
    m.office = amity_view_str("hoi-viet-my");
    m.n_items = 1;
    m.items = &item;
    assert_int_equal(amity_msg_encode(&m, &body), 0);

    /* until the PULL is attached a submit may be dropped (no validator):
     * resend as a client would */
    for (tries = 0; tries < 50; tries++) {
        assert_int_equal(zmq_send(dealer, body.data, body.len, 0), (int)body.len);
        if (s_recv_body(pull, &got, 100) == 0) {
            break;
        }
    }
    assert_true(tries < 50);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(got.data, got.len, &m, why, sizeof why), 0);
    assert_int_equal(m.type, AMITY_MSG_WORK);
    assert_int_equal(m.n_items, 1);
    assert_int_equal(m.items[0].tag, 42);
    assert_true(m.conn.len > 0 && m.conn.len <= sizeof conn);
    conn_len = m.conn.len;
    memcpy(conn, m.conn.ptr, conn_len);
    amity_msg_clear(&m);

    /* the shard answers on topic = ingest id; the SUB may need a moment */
    s_verdicts(&body, conn, conn_len, NULL);
    for (tries = 0; tries < 50; tries++) {
        const char *id = ingest_id(r.ingest);
        assert_int_equal(zmq_send(pub, id, strlen(id), ZMQ_SNDMORE), (int)strlen(id));
        assert_int_equal(zmq_send(pub, body.data, body.len, 0), (int)body.len);
        if (s_recv_body(dealer, &got, 100) == 0) {
            break;
        }
    }
    assert_true(tries < 50);
    amity_msg_init(&m);
    assert_int_equal(amity_msg_decode(got.data, got.len, &m, why, sizeof why), 0);
    assert_int_equal(m.type, AMITY_MSG_VERDICTS);
    assert_int_equal(m.conn.len, 0);
    assert_int_equal(m.n_verdicts, 3);
    amity_msg_clear(&m);

    /* a bad message gets an error back on the same connection */
    assert_int_equal(zmq_send(dealer, "\xc1", 1, 0), 1);
    assert_int_equal(s_recv_body(dealer, &got, 2000), 0);
    /* drain duplicate verdicts from the retries until the error shows up */
    for (tries = 0; tries < 60; tries++) {
        amity_msg_init(&m);
        assert_int_equal(amity_msg_decode(got.data, got.len, &m, why, sizeof why), 0);
        if (m.type == AMITY_MSG_ERROR) {
            amity_msg_clear(&m);
            break;
        }
        amity_msg_clear(&m);
        assert_int_equal(s_recv_body(dealer, &got, 2000), 0);
    }
    assert_true(tries < 60);

    /* shutting the context down stops the loop */
    zmq_close(dealer);
    zmq_close(pull);
    zmq_close(pub);
    assert_int_equal(zmq_ctx_shutdown(r.ctx), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(zmq_ctx_term(r.ctx), 0);
    ingest_destroy(&r.ingest);
    amity_buf_clear(&rec);
    amity_buf_clear(&body);
    amity_buf_clear(&got);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_submit_becomes_work, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_id_is_random_hex, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_malformed_submit_gets_error, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_submit_without_office_refused, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_wrong_frame_counts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_routes_verdicts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_drops_bad_verdicts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_secure_office_is_the_key, s_secure_setup,
                                        s_secure_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_development_ignores_peer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_key_options, s_secure_setup, s_secure_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_refuses_non_loopback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ingest_loop_over_inproc, s_setup, s_teardown),
    };

    amity_log_init("test_svc_ingest");
    (void)amity_log_set_level("error");
    return cmocka_run_group_tests_name("svc_ingest", tests, NULL, NULL);
}
