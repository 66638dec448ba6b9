/*  test_sock: socket options, the loopback table that guards keyless
 *  mode, the endpoints derived from a shard's base, whole-message receive
 *  (multi-part, too many parts, the head of one, User-Id from ZAP, also on
 *  a CURVE ROUTER) and send.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <czmq.h>
#include <zmq.h>

#include "amity/auth.h"
#include "amity/err.h"
#include "amity/sock.h"

typedef struct {
    void *ctx;          /* one context per test */
    void *a;            /* first socket */
    void *b;            /* second socket */
    amity_auth_t *auth; /* a ZAP handler in ctx, or NULL */
} state_t;

static int
s_setup(void **state)
{
    state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        return -1;
    }
    st->ctx = zmq_ctx_new();
    if (!st->ctx) {
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int
s_teardown(void **state)
{
    state_t *st = *state;
    amity_sock_close(&st->a);
    amity_sock_close(&st->b);
    amity_auth_destroy(&st->auth); /* its socket would keep zmq_ctx_term waiting */
    zmq_ctx_term(st->ctx);
    free(st);
    return 0;
}

/*  Waits up to 2 s for sock to be readable. */
static void
s_wait_readable(void *sock)
{
    zmq_pollitem_t item = { sock, 0, ZMQ_POLLIN, 0 };
    assert_int_equal(zmq_poll(&item, 1, 2000), 1);
}

static void
test_sock_zmq_check(void **state)
{
    assert_int_equal(amity_zmq_check(), 0);
}

static void
test_sock_options(void **state)
{
    state_t *st = *state;
    st->a = amity_sock_new(st->ctx, ZMQ_PUSH, NULL);
    assert_non_null(st->a);
    int value = 0;
    size_t size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_LINGER, &value, &size), 0);
    assert_int_equal(value, AMITY_LINGER_MS);
    int64_t max_msg = 0;
    size = sizeof(max_msg);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_MAXMSGSIZE, &max_msg, &size), 0);
    assert_int_equal(max_msg, AMITY_MSG_MAX);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_HANDSHAKE_IVL, &value, &size), 0);
    assert_int_equal(value, 5000);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_RECONNECT_IVL_MAX, &value, &size), 0);
    assert_int_equal(value, 2000);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_IMMEDIATE, &value, &size), 0);
    assert_int_equal(value, 0);

    amity_sock_opts_t opts = { -1, 10, 20, 0, true };
    st->b = amity_sock_new(st->ctx, ZMQ_PULL, &opts);
    assert_non_null(st->b);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->b, ZMQ_LINGER, &value, &size), 0);
    assert_int_equal(value, 0);
    size = sizeof(max_msg);
    assert_int_equal(zmq_getsockopt(st->b, ZMQ_MAXMSGSIZE, &max_msg, &size), 0);
    assert_int_equal(max_msg, -1);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->b, ZMQ_SNDHWM, &value, &size), 0);
    assert_int_equal(value, 10);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->b, ZMQ_RCVHWM, &value, &size), 0);
    assert_int_equal(value, 20);
    size = sizeof(value);
    assert_int_equal(zmq_getsockopt(st->b, ZMQ_IMMEDIATE, &value, &size), 0);
    assert_int_equal(value, 1);

    assert_null(amity_sock_new(st->ctx, 12345, NULL));
    assert_int_equal(amity_sock_bind(st->b, "bogus://x"), AMITY_EINVAL);
    assert_int_equal(amity_sock_bind(st->b, "tcp://"), AMITY_EINVAL);
    assert_int_equal(amity_sock_connect(st->a, "nope"), AMITY_EINVAL);

    amity_sock_close(&st->a);
    assert_null(st->a);
    amity_sock_close(&st->a); /* NULL-safe */
}

static void
test_sock_loopback(void **state)
{
    static const struct {
        const char *endpoint;
        bool loopback;
    } table[] = {
        { "inproc://work", true },
        { "ipc:///tmp/amity.sock", true },
        { "ipc://@abstract", true },
        { "tcp://127.0.0.1:7700", true },
        { "tcp://127.1.2.3:7700", true },
        { "tcp://127.255.255.255:1", true },
        { "tcp://127.0.0.1:*", true },
        { "tcp://[::1]:7700", true },
        { "tcp://[::ffff:127.0.0.1]:7700", true },
        { "tcp://localhost:7700", true },
        { "tcp://LocalHost:7700", true },
        { "tcp://*:7700", false },
        { "tcp://0.0.0.0:7700", false },
        { "tcp://[::]:7700", false },
        { "tcp://10.0.0.1:7700", false },
        { "tcp://128.0.0.1:7700", false },
        { "tcp://127.0.0.1.evil.com:7700", false },
        { "tcp://1270.0.0.1:7700", false },
        { "tcp://127.0.0:7700", false },
        { "tcp://example.com:7700", false },
        { "tcp://localhost.example.com:7700", false },
        { "tcp://lo:7700", false },
        { "tcp://eth0:7700", false },
        { "tcp://eth0;127.0.0.1:7700", false },
        { "tcp://127.0.0.1", false },
        { "tcp://127.0.0.1:", false },
        { "tcp://[::1]", false },
        { "tcp://[::1:7700", false },
        { "tcp://", false },
        { "udp://127.0.0.1:7700", false },
        { "pgm://127.0.0.1;239.192.1.1:5555", false },
        { "ws://127.0.0.1:7700", false },
        { "127.0.0.1:7700", false },
        { "", false },
        { NULL, false },
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (amity_endpoint_is_loopback(table[i].endpoint) != table[i].loopback) {
            fail_msg("%s: expected %s", table[i].endpoint ? table[i].endpoint : "(null)",
                     table[i].loopback ? "loopback" : "not loopback");
        }
    }
}

static void
test_sock_endpoint_offset(void **state)
{
    static const struct {
        const char *base;
        int k;
        const char *want; /* NULL: AMITY_EINVAL */
    } table[] = {
        { "tcp://127.0.0.1:7710", 0, "tcp://127.0.0.1:7710" },
        { "tcp://127.0.0.1:7710", 1, "tcp://127.0.0.1:7711" },
        { "tcp://127.0.0.1:7710", 3, "tcp://127.0.0.1:7713" },
        { "tcp://10.0.0.13:7710", 2, "tcp://10.0.0.13:7712" },
        { "tcp://localhost:9", 1, "tcp://localhost:10" },
        { "tcp://shard-a.example:65532", 3, "tcp://shard-a.example:65535" },
        { "tcp://amity-aggregate-1.amity-aggregate:7710", 3,
          "tcp://amity-aggregate-1.amity-aggregate:7713" },
        { "tcp://[::1]:7720", 3, "tcp://[::1]:7723" },
        { "tcp://[fe80::1%eth0]:9", 1, "tcp://[fe80::1%eth0]:10" },
        { "tcp://127.0.0.1:1", 65534, "tcp://127.0.0.1:65535" },
        /* ipc and inproc: the base, then base-k */
        { "ipc:///run/amity/shard0", 0, "ipc:///run/amity/shard0" },
        { "ipc:///run/amity/shard0", 1, "ipc:///run/amity/shard0-1" },
        { "inproc://s0", 0, "inproc://s0" },
        { "inproc://s0", 3, "inproc://s0-3" },
        /* refused */
        { "tcp://127.0.0.1:65533", 3, NULL },
        { "tcp://127.0.0.1:65535", 1, NULL },
        { "tcp://127.0.0.1:7710", -1, NULL },
        { "tcp://127.0.0.1:1", 2147483647, NULL },
        { "tcp://127.0.0.1", 1, NULL },
        { "tcp://127.0.0.1:", 1, NULL },
        { "tcp://127.0.0.1:77a0", 1, NULL },
        { "tcp://127.0.0.1:-1", 1, NULL },
        { "tcp://127.0.0.1:+7710", 1, NULL },
        { "tcp://127.0.0.1:0", 1, NULL },
        { "tcp://127.0.0.1:123456", 1, NULL },
        { "tcp://h:99999999999999999999", 1, NULL },
        { "tcp://127.0.0.1:*", 1, NULL },
        { "tcp://::1:7710", 1, NULL },
        { "tcp://[::1:7710", 1, NULL },
        { "tcp://[::1]7710", 1, NULL },
        { "tcp://[]:7710", 1, NULL },
        { "tcp://:7710", 1, NULL },
        { "tcp://eth0;10.0.0.13:7710", 1, NULL },
        { "tcp://", 1, NULL },
        { "udp://127.0.0.1:7710", 1, NULL },
        { "ipc://", 1, NULL },
        { "inproc://", 0, NULL },
        { "127.0.0.1:7710", 1, NULL },
        { "", 1, NULL },
    };
    char ep[64];
    (void)state;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        strcpy(ep, "stale");
        int rc = amity_endpoint_offset(table[i].base, table[i].k, ep, sizeof(ep));
        if (table[i].want ? (rc != 0 || strcmp(ep, table[i].want) != 0)
                          : (rc != AMITY_EINVAL || ep[0] != '\0')) {
            fail_msg("%s + %d: got %d '%s', expected %s", table[i].base, table[i].k, rc, ep,
                     table[i].want ? table[i].want : "AMITY_EINVAL");
        }
    }
    /* out too small: AMITY_EFULL and "" */
    assert_int_equal(amity_endpoint_offset("tcp://127.0.0.1:7710", 1, ep, 10), AMITY_EFULL);
    assert_string_equal(ep, "");
    assert_int_equal(amity_endpoint_offset("tcp://127.0.0.1:7710", 1, ep, 20), AMITY_EFULL);
    assert_int_equal(amity_endpoint_offset("tcp://127.0.0.1:7710", 1, ep, 21), 0);
    assert_string_equal(ep, "tcp://127.0.0.1:7711");
    assert_int_equal(amity_endpoint_offset("inproc://s0", 1, ep, 13), AMITY_EFULL);
    assert_int_equal(amity_endpoint_offset("inproc://s0", 1, ep, 14), 0);
    assert_string_equal(ep, "inproc://s0-1");
}

static void
s_pair(state_t *st, const char *endpoint)
{
    st->a = amity_sock_new(st->ctx, ZMQ_PAIR, NULL);
    st->b = amity_sock_new(st->ctx, ZMQ_PAIR, NULL);
    assert_non_null(st->a);
    assert_non_null(st->b);
    assert_int_equal(amity_sock_bind(st->a, endpoint), 0);
    assert_int_equal(amity_sock_connect(st->b, endpoint), 0);
}

static void
test_sock_recv_frames(void **state)
{
    state_t *st = *state;
    s_pair(st, "inproc://recv");
    amity_frame_t frames[4];
    char user_id[64] = "stale";

    /* nothing waiting */
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 4, user_id, sizeof(user_id)), 0);

    amity_frame_t out[3] = { { "topic", 5 }, { NULL, 0 }, { "body", 4 } };
    assert_int_equal(amity_sock_send_frames(st->b, out, 3, ZMQ_DONTWAIT), 0);
    s_wait_readable(st->a);
    int n = amity_sock_recv_frames(st->a, frames, 4, user_id, sizeof(user_id));
    assert_int_equal(n, 3);
    assert_int_equal(frames[0].len, 5);
    assert_string_equal(frames[0].data, "topic"); /* NUL after the bytes */
    assert_int_equal(frames[1].len, 0);
    assert_non_null(frames[1].data);
    assert_int_equal(frames[2].len, 4);
    assert_memory_equal(frames[2].data, "body", 4);
    assert_string_equal(user_id, ""); /* no ZAP handler: no User-Id */
    amity_frames_free(frames, n);
    assert_null(frames[0].data);

    /* exactly max_frames is fine */
    amity_frame_t four[4] = { { "1", 1 }, { "2", 1 }, { "3", 1 }, { "4", 1 } };
    assert_int_equal(amity_sock_send_frames(st->b, four, 4, 0), 0);
    s_wait_readable(st->a);
    n = amity_sock_recv_frames(st->a, frames, 4, NULL, 0);
    assert_int_equal(n, 4);
    amity_frames_free(frames, n);

    /* too many parts: dropped whole, and the next message is intact */
    amity_frame_t many[6] = {
        { "1", 1 }, { "2", 1 }, { "3", 1 }, { "4", 1 }, { "5", 1 }, { "6", 1 }
    };
    assert_int_equal(amity_sock_send_frames(st->b, many, 6, 0), 0);
    assert_int_equal(amity_sock_send_frames(st->b, many, 1, 0), 0);
    assert_int_equal(amity_sock_send_frames(st->b, many, 5, 0), 0);
    s_wait_readable(st->a);
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 4, user_id, sizeof(user_id)),
                     AMITY_ETOOBIG);
    for (int i = 0; i < 4; i++) {
        assert_null(frames[i].data);
    }
    s_wait_readable(st->a);
    n = amity_sock_recv_frames(st->a, frames, 4, user_id, sizeof(user_id));
    assert_int_equal(n, 1);
    assert_string_equal(frames[0].data, "1");
    amity_frames_free(frames, n);
    /* one part over the limit, with nothing after it to drain */
    s_wait_readable(st->a);
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 4, NULL, 0), AMITY_ETOOBIG);
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 4, NULL, 0), 0);
}

static void
test_sock_recv_head(void **state)
{
    state_t *st = *state;
    s_pair(st, "inproc://recv-head");
    amity_frame_t frames[3];
    int n_parts = -1;

    assert_int_equal(amity_sock_recv_head(st->a, frames, 3, &n_parts, NULL, 0), 0);
    assert_int_equal(n_parts, 0);

    amity_frame_t many[6] = {
        { "1", 1 }, { "2", 1 }, { "3", 1 }, { "4", 1 }, { "5", 1 }, { "6", 1 }
    };
    /* within the limit: as amity_sock_recv_frames */
    assert_int_equal(amity_sock_send_frames(st->b, many, 2, 0), 0);
    s_wait_readable(st->a);
    assert_int_equal(amity_sock_recv_head(st->a, frames, 3, &n_parts, NULL, 0), 2);
    assert_int_equal(n_parts, 2);
    assert_string_equal(frames[1].data, "2");
    amity_frames_free(frames, 2);

    /* over it: the first three kept, the count of all, the rest drained */
    assert_int_equal(amity_sock_send_frames(st->b, many, 6, 0), 0);
    assert_int_equal(amity_sock_send_frames(st->b, many + 5, 1, 0), 0);
    s_wait_readable(st->a);
    assert_int_equal(amity_sock_recv_head(st->a, frames, 3, &n_parts, NULL, 0), 3);
    assert_int_equal(n_parts, 6);
    assert_string_equal(frames[0].data, "1");
    assert_string_equal(frames[2].data, "3");
    amity_frames_free(frames, 3);
    s_wait_readable(st->a);
    assert_int_equal(amity_sock_recv_head(st->a, frames, 3, &n_parts, NULL, 0), 1);
    assert_int_equal(n_parts, 1);
    assert_string_equal(frames[0].data, "6");
    amity_frames_free(frames, 1);
}

static void
test_sock_send_unroutable(void **state)
{
    state_t *st = *state;
    st->a = amity_sock_new(st->ctx, ZMQ_ROUTER, NULL);
    assert_non_null(st->a);
    int on = 1;
    assert_int_equal(zmq_setsockopt(st->a, ZMQ_ROUTER_MANDATORY, &on, sizeof(on)), 0);
    assert_int_equal(amity_sock_bind(st->a, "inproc://router"), 0);
    amity_frame_t out[2] = { { "nobody", 6 }, { "hello", 5 } };
    assert_int_equal(amity_sock_send_frames(st->a, out, 2, ZMQ_DONTWAIT), AMITY_EAGAIN);

    /* a PUSH with no peer would block */
    st->b = amity_sock_new(st->ctx, ZMQ_PUSH, NULL);
    assert_non_null(st->b);
    assert_int_equal(amity_sock_bind(st->b, "inproc://nobody-pulls"), 0);
    assert_int_equal(amity_sock_send_frames(st->b, out, 2, ZMQ_DONTWAIT), AMITY_EAGAIN);
}

/* ---- User-Id through a ZAP handler ------------------------------------ */

typedef struct {
    void *ctx;   /* the test's context */
    int handled; /* requests answered (read after the join) */
} zap_arg_t;

static int
s_zap_recv(void *sock, char *out, size_t size, int *more)
{
    int n = zmq_recv(sock, out, size - 1, 0);
    if (n < 0) {
        return -1;
    }
    out[(size_t)n < size - 1 ? (size_t)n : size - 1] = '\0';
    int value = 0;
    size_t len = sizeof(value);
    zmq_getsockopt(sock, ZMQ_RCVMORE, &value, &len);
    *more = value;
    return n;
}

/*  Answers ZAP requests (RFC 27) until the context ends: every PLAIN user
 *  is accepted with User-Id "office-" + username. */
static void *
s_zap_thread(void *arg)
{
    zap_arg_t *za = arg;
    void *sock = zmq_socket(za->ctx, ZMQ_REP);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof(zero));
    if (zmq_bind(sock, "inproc://zeromq.zap.01") != 0) {
        zmq_close(sock);
        return NULL;
    }
    for (;;) {
        char parts[8][256];
        int n = 0;
        int more = 1;
        while (more && n < 8) {
            if (s_zap_recv(sock, parts[n], sizeof(parts[n]), &more) < 0) {
                zmq_close(sock);
                return NULL;
            }
            n++;
        }
        char user[300];
        (void)snprintf(user, sizeof(user), "office-%s", n > 6 ? parts[6] : "?");
        zmq_send(sock, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(sock, parts[1], strlen(parts[1]), ZMQ_SNDMORE);
        zmq_send(sock, "200", 3, ZMQ_SNDMORE);
        zmq_send(sock, "OK", 2, ZMQ_SNDMORE);
        zmq_send(sock, user, strlen(user), ZMQ_SNDMORE);
        zmq_send(sock, "", 0, 0);
        za->handled++;
    }
}

static void
test_sock_user_id(void **state)
{
    state_t *st = *state;
    zap_arg_t za = { st->ctx, 0 };
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, s_zap_thread, &za), 0);

    st->a = amity_sock_new(st->ctx, ZMQ_PULL, NULL);
    st->b = amity_sock_new(st->ctx, ZMQ_PUSH, NULL);
    assert_non_null(st->a);
    assert_non_null(st->b);
    int on = 1;
    assert_int_equal(zmq_setsockopt(st->a, ZMQ_PLAIN_SERVER, &on, sizeof(on)), 0);
    assert_int_equal(zmq_setsockopt(st->b, ZMQ_PLAIN_USERNAME, "hn-01", 5), 0);
    assert_int_equal(zmq_setsockopt(st->b, ZMQ_PLAIN_PASSWORD, "secret", 6), 0);
    assert_int_equal(amity_sock_bind(st->a, "tcp://127.0.0.1:*"), 0);
    char endpoint[128];
    size_t size = sizeof(endpoint);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_LAST_ENDPOINT, endpoint, &size), 0);
    assert_int_equal(amity_sock_connect(st->b, endpoint), 0);

    amity_frame_t out[2] = { { "a", 1 }, { "b", 1 } };
    assert_int_equal(amity_sock_send_frames(st->b, out, 2, 0), 0);
    s_wait_readable(st->a);
    amity_frame_t frames[2];
    char user_id[64];
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 2, user_id, sizeof(user_id)), 2);
    assert_string_equal(user_id, "office-hn-01");
    amity_frames_free(frames, 2);

    /* truncated to the caller's buffer */
    assert_int_equal(amity_sock_send_frames(st->b, out, 1, 0), 0);
    s_wait_readable(st->a);
    char small[7];
    assert_int_equal(amity_sock_recv_frames(st->a, frames, 2, small, sizeof(small)), 1);
    assert_string_equal(small, "office");
    amity_frames_free(frames, 1);

    amity_sock_close(&st->a);
    amity_sock_close(&st->b);
    zmq_ctx_shutdown(st->ctx); /* the handler's zmq_recv returns ETERM */
    pthread_join(thread, NULL);
    assert_true(za.handled >= 1);
}

/*  The User-Id of a CURVE ROUTER's messages, admitted by amity_auth: the
 *  routing-id frame libzmq prepends carries no metadata, the body does. */
static void
test_sock_user_id_curve_router(void **state)
{
    state_t *st = *state;
    char dir[64] = "/tmp/amity-sock-XXXXXX";
    char path[128];
    amity_keypair_t server;
    amity_keypair_t office;
    assert_non_null(mkdtemp(dir));

    /* the server's key pair, and an office whose public cert is admitted */
    zcert_t *cert = zcert_new();
    zcert_set_meta(cert, "name", "ingest");
    (void)snprintf(path, sizeof(path), "%s/ingest.key", dir);
    assert_int_equal(zcert_save_secret(cert, path), 0);
    zcert_destroy(&cert);
    assert_int_equal(amity_keypair_load(path, &server), 0);
    assert_int_equal(remove(path), 0);
    cert = zcert_new();
    zcert_set_meta(cert, "office", "hoi-viet-my");
    (void)snprintf(path, sizeof(path), "%s/hoi-viet-my", dir);
    assert_int_equal(zcert_save(cert, path), 0);
    zcert_destroy(&cert);
    assert_int_equal(amity_keypair_load(path, &office), 0);

    assert_int_equal(amity_auth_new(&st->auth, st->ctx), 0);
    amity_auth_t *auth = st->auth;
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, dir), 0);
    st->a = amity_sock_new(st->ctx, ZMQ_ROUTER, NULL);
    st->b = amity_sock_new(st->ctx, ZMQ_DEALER, NULL);
    assert_non_null(st->a);
    assert_non_null(st->b);
    assert_int_equal(amity_curve_server(st->a, &server, AMITY_ZAP_CLIENTS), 0);
    assert_int_equal(amity_sock_bind(st->a, "tcp://127.0.0.1:*"), 0);
    char endpoint[128];
    size_t size = sizeof(endpoint);
    assert_int_equal(zmq_getsockopt(st->a, ZMQ_LAST_ENDPOINT, endpoint, &size), 0);
    assert_int_equal(zmq_setsockopt(st->b, ZMQ_ROUTING_ID, "conn-1", 6), 0);
    assert_int_equal(amity_curve_client(st->b, &office, server.public_txt), 0);
    assert_int_equal(amity_sock_connect(st->b, endpoint), 0);
    amity_frame_t out[1] = { { "body", 4 } };
    assert_int_equal(amity_sock_send_frames(st->b, out, 1, 0), 0);

    /* the daemons' loop: poll the handler and the server together (a
     * message zmq_poll prefetched is the case libzmq strips) */
    amity_frame_t frames[3];
    char user_id[AMITY_KEY_TXT + 8] = "stale";
    int n = 0;
    for (int t = 0; t < 500 && n == 0; t++) {
        zmq_pollitem_t items[2] = { { amity_auth_socket(auth), 0, ZMQ_POLLIN, 0 },
                                    { st->a, 0, ZMQ_POLLIN, 0 } };
        assert_true(zmq_poll(items, 2, 10) >= 0);
        if (items[0].revents & ZMQ_POLLIN) {
            (void)amity_auth_process(auth);
        }
        if (items[1].revents & ZMQ_POLLIN) {
            n = amity_sock_recv_frames(st->a, frames, 3, user_id, sizeof(user_id));
        }
    }
    assert_int_equal(n, 2);
    assert_int_equal(frames[0].len, 6);
    assert_memory_equal(frames[0].data, "conn-1", 6);
    assert_string_equal(frames[1].data, "body");
    assert_string_equal(user_id, office.public_txt);
    assert_non_null(amity_auth_peer(auth, AMITY_ZAP_CLIENTS, user_id));
    assert_string_equal(amity_auth_peer(auth, AMITY_ZAP_CLIENTS, user_id)->name, "hoi-viet-my");
    amity_frames_free(frames, n);

    /* and the head of a message of too many frames: the routing id and the
     * User-Id are still there to answer it */
    amity_frame_t three[3] = { { "a", 1 }, { "b", 1 }, { "c", 1 } };
    assert_int_equal(amity_sock_send_frames(st->b, three, 3, 0), 0);
    s_wait_readable(st->a);
    int n_parts = 0;
    n = amity_sock_recv_head(st->a, frames, 2, &n_parts, user_id, sizeof(user_id));
    assert_int_equal(n, 2);
    assert_int_equal(n_parts, 4);
    assert_memory_equal(frames[0].data, "conn-1", 6);
    assert_string_equal(user_id, office.public_txt);
    amity_frames_free(frames, n);

    assert_int_equal(remove(path), 0);
    (void)snprintf(path, sizeof(path), "%s/hoi-viet-my_secret", dir);
    assert_int_equal(remove(path), 0);
    assert_int_equal(rmdir(dir), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_zmq_check),
        cmocka_unit_test_setup_teardown(test_sock_options, s_setup, s_teardown),
        cmocka_unit_test(test_sock_loopback),
        cmocka_unit_test(test_sock_endpoint_offset),
        cmocka_unit_test_setup_teardown(test_sock_recv_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_recv_head, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_send_unroutable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_user_id, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_user_id_curve_router, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("sock", tests, NULL, NULL);
}
