/*  test_sock: socket options, the loopback table that guards keyless
 *  mode, whole-message receive (multi-part, too many parts, User-Id from
 *  ZAP) and send.
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

#include <zmq.h>

#include "amity/err.h"
#include "amity/sock.h"

typedef struct {
    void *ctx; /* one context per test */
    void *a;   /* first socket */
    void *b;   /* second socket */
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sock_zmq_check),
        cmocka_unit_test_setup_teardown(test_sock_options, s_setup, s_teardown),
        cmocka_unit_test(test_sock_loopback),
        cmocka_unit_test_setup_teardown(test_sock_recv_frames, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_send_unroutable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_sock_user_id, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("sock", tests, NULL, NULL);
}
