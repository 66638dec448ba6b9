/*  test_monitor: the connection monitor (amity/auth.h amity_monitor_*).
 *  A bound socket's disconnect names the peer's own address (read at
 *  accept time), not the socket's endpoint; a connecting socket counts a
 *  link once its handshake completed and names the endpoint it lost; the
 *  log rate limit is per monitor, so several monitors losing links in the
 *  same second each log theirs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "amity/auth.h"
#include "amity/clock.h"
#include "amity/err.h"
#include "amity/log.h"

/*  A TCP port on 127.0.0.1 that nothing listens on right now. */
static unsigned
s_free_port(void)
{
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port;

    assert_true(fd >= 0);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

/*  Binds sock to 127.0.0.1 on a free port; returns the port. */
static unsigned
s_bind_any(void *sock)
{
    char ep[64];
    size_t len = sizeof ep;
    const char *colon;

    assert_int_equal(zmq_bind(sock, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    colon = strrchr(ep, ':');
    assert_non_null(colon);
    return (unsigned)atoi(colon + 1);
}

static void
s_set_int(void *sock, int opt, int v)
{
    assert_int_equal(zmq_setsockopt(sock, opt, &v, sizeof v), 0);
}

/*  Processes mon's events, as a daemon's loop does, until it counted at
 *  least connects connections and disconnects disconnections (5 s at
 *  most). */
static void
s_wait(amity_monitor_t *mon, uint64_t connects, uint64_t disconnects, amity_monitor_stats_t *st)
{
    int64_t end = amity_clock_mono_ms() + 5000;
    zmq_pollitem_t item = { amity_monitor_socket(mon), 0, ZMQ_POLLIN, 0 };

    for (;;) {
        (void)amity_monitor_process(mon);
        amity_monitor_stats(mon, st);
        if (st->connects >= connects && st->disconnects >= disconnects) {
            return;
        }
        assert_true(amity_clock_mono_ms() < end);
        (void)zmq_poll(&item, 1, 100);
    }
}

/*  A round trip DEALER -> ROUTER, so the connection is surely up. */
static void
s_ping(void *router, void *dealer)
{
    char buf[64];

    assert_int_equal(zmq_send(dealer, "ping", 4, 0), 4);
    assert_true(zmq_recv(router, buf, sizeof buf, 0) > 0); /* routing id */
    assert_int_equal(zmq_recv(router, buf, sizeof buf, 0), 4);
}

/*  stderr into a temporary file for the duration of a test. */
typedef struct {
    char path[64];
    int saved;
} s_capture_t;

static void
s_capture_start(s_capture_t *c)
{
    int fd;

    (void)fflush(stderr);
    snprintf(c->path, sizeof c->path, "/tmp/amity-test-monitor-XXXXXX");
    fd = mkstemp(c->path);
    assert_true(fd >= 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/*  Restores stderr; returns what was written (caller frees). */
static char *
s_capture_end(s_capture_t *c)
{
    FILE *fp;
    char *text = calloc(1, 65536);
    size_t n;

    assert_non_null(text);
    (void)fflush(stderr);
    assert_true(dup2(c->saved, STDERR_FILENO) >= 0);
    close(c->saved);
    fp = fopen(c->path, "r");
    assert_non_null(fp);
    n = fread(text, 1, 65535, fp);
    text[n] = '\0';
    fclose(fp);
    unlink(c->path);
    return text;
}

static size_t
s_count(const char *text, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(text, needle); p != NULL; p = strstr(p + 1, needle)) {
        n++;
    }
    return n;
}

/*  ------------------------------------------------------------------ */

static void
test_monitor_bound_names_the_peer(void **state)
{
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    amity_monitor_t *mon;
    amity_monitor_stats_t st;
    char ep[128];
    char want[64];
    unsigned port;
    unsigned src;

    (void)state;
    s_set_int(router, ZMQ_LINGER, 0);
    s_set_int(dealer, ZMQ_LINGER, 0);
    mon = amity_monitor_new(ctx, router, "clients");
    assert_non_null(mon);
    port = s_bind_any(router);
    /* the DEALER's own port, chosen here so the test knows it */
    src = s_free_port();
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u;127.0.0.1:%u", src, port);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    s_ping(router, dealer);
    s_wait(mon, 1, 0, &st);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.live, 1);
    assert_string_equal(st.last_peer, "");

    zmq_close(dealer);
    s_wait(mon, 1, 1, &st);
    snprintf(want, sizeof want, "127.0.0.1:%u", src);
    assert_string_equal(st.last_peer, want);
    assert_int_equal(st.disconnects, 1);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.handshake_failures, 0);

    amity_monitor_destroy(&mon);
    assert_null(mon);
    amity_monitor_destroy(&mon); /* NULL-safe */
    zmq_close(router);
    zmq_ctx_term(ctx);
}

static void
test_monitor_connecting_names_the_endpoint(void **state)
{
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealer = zmq_socket(ctx, ZMQ_DEALER);
    amity_monitor_t *mon;
    amity_monitor_stats_t st;
    char ep[64];
    unsigned port;

    (void)state;
    s_set_int(router, ZMQ_LINGER, 0);
    s_set_int(dealer, ZMQ_LINGER, 0);
    port = s_bind_any(router);
    mon = amity_monitor_new(ctx, dealer, "shard 0");
    assert_non_null(mon);
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
    assert_int_equal(zmq_connect(dealer, ep), 0);
    s_ping(router, dealer);
    s_wait(mon, 1, 0, &st);
    assert_int_equal(st.live, 1);

    zmq_close(router); /* the peer goes away */
    s_wait(mon, 1, 1, &st);
    assert_string_equal(st.last_peer, ep);
    assert_int_equal(st.live, 0);

    amity_monitor_destroy(&mon);
    zmq_close(dealer);
    zmq_ctx_term(ctx);
}

static void
test_monitor_rate_limit_is_per_monitor(void **state)
{
    enum { N = 3 };
    void *ctx = zmq_ctx_new();
    void *routers[N];
    void *dealers[N];
    amity_monitor_t *mons[N];
    amity_monitor_stats_t st;
    s_capture_t cap;
    char names[N][16];
    char ep[64];
    char *text;

    (void)state;
    /* three links of one host, each with its own monitor (a validator's
     * PUSHes to three shards), all lost within the same second */
    for (int i = 0; i < N; i++) {
        unsigned port;
        routers[i] = zmq_socket(ctx, ZMQ_ROUTER);
        dealers[i] = zmq_socket(ctx, ZMQ_DEALER);
        s_set_int(routers[i], ZMQ_LINGER, 0);
        s_set_int(dealers[i], ZMQ_LINGER, 0);
        port = s_bind_any(routers[i]);
        snprintf(names[i], sizeof names[i], "link %d", i);
        mons[i] = amity_monitor_new(ctx, dealers[i], names[i]);
        assert_non_null(mons[i]);
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u", port);
        assert_int_equal(zmq_connect(dealers[i], ep), 0);
        s_ping(routers[i], dealers[i]);
        s_wait(mons[i], 1, 0, &st);
    }
    s_capture_start(&cap);
    for (int i = 0; i < N; i++) {
        zmq_close(routers[i]);
    }
    for (int i = 0; i < N; i++) {
        s_wait(mons[i], 1, 1, &st);
    }
    text = s_capture_end(&cap);
    for (int i = 0; i < N; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s: peer disconnected peer=tcp://127.0.0.1:", names[i]);
        if (s_count(text, line) != 1) {
            fail_msg("expected one '%s' line in:\n%s", line, text);
        }
    }
    free(text);
    for (int i = 0; i < N; i++) {
        amity_monitor_destroy(&mons[i]);
        zmq_close(dealers[i]);
    }
    zmq_ctx_term(ctx);
}

static void
test_monitor_several_peers_of_one_socket(void **state)
{
    enum { N = 3 };
    void *ctx = zmq_ctx_new();
    void *router = zmq_socket(ctx, ZMQ_ROUTER);
    void *dealers[N];
    amity_monitor_t *mon;
    amity_monitor_stats_t st;
    s_capture_t cap;
    unsigned srcs[N];
    char ep[128];
    char *text;
    unsigned port;

    (void)state;
    s_set_int(router, ZMQ_LINGER, 0);
    mon = amity_monitor_new(ctx, router, "apply");
    assert_non_null(mon);
    port = s_bind_any(router);
    for (int i = 0; i < N; i++) {
        dealers[i] = zmq_socket(ctx, ZMQ_DEALER);
        s_set_int(dealers[i], ZMQ_LINGER, 0);
        srcs[i] = s_free_port();
        snprintf(ep, sizeof ep, "tcp://127.0.0.1:%u;127.0.0.1:%u", srcs[i], port);
        assert_int_equal(zmq_connect(dealers[i], ep), 0);
        s_ping(router, dealers[i]);
        s_wait(mon, (uint64_t)i + 1, 0, &st); /* the loop sees each accept */
    }
    s_capture_start(&cap);
    for (int i = 0; i < N; i++) {
        zmq_close(dealers[i]);
    }
    s_wait(mon, N, N, &st);
    text = s_capture_end(&cap);
    assert_int_equal(st.connects, N);
    assert_int_equal(st.live, 0);
    /* each peer named by its own address, within one second */
    for (int i = 0; i < N; i++) {
        char line[96];
        snprintf(line, sizeof line,
                 "apply: peer disconnected peer=127.0.0.1:%u on=tcp://127.0.0.1:%u", srcs[i], port);
        if (s_count(text, line) != 1) {
            fail_msg("expected one '%s' line in:\n%s", line, text);
        }
    }
    free(text);
    amity_monitor_destroy(&mon);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_monitor_bound_names_the_peer),
        cmocka_unit_test(test_monitor_connecting_names_the_endpoint),
        cmocka_unit_test(test_monitor_rate_limit_is_per_monitor),
        cmocka_unit_test(test_monitor_several_peers_of_one_socket),
    };

    amity_log_init("test_monitor");
    return cmocka_run_group_tests_name("monitor", tests, NULL, NULL);
}
