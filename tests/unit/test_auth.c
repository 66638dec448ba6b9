/*  test_auth: CurveZMQ admission through amity's own ZAP handler. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "amity/auth.h"
#include "amity/err.h"

typedef struct {
    char dir[64];           /* certificate directory */
    char keys[64];          /* where clients keep their secrets */
    void *ctx;
    amity_keypair_t server;
    amity_keypair_t office; /* registered */
    amity_keypair_t stranger; /* not registered */
} fx_t;

static void
s_make_cert(const char *dir, const char *name, const char *office, const char *prefixes,
            amity_keypair_t *out)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    zcert_t *cert = zcert_new();
    assert_non_null(cert);
    if (office) {
        zcert_set_meta(cert, "office", "%s", office);
    } else {
        zcert_set_meta(cert, "name", "%s", name);
    }
    if (prefixes) {
        zcert_set_meta(cert, "prefixes", "%s", prefixes);
    }
    assert_int_equal(zcert_save(cert, path), 0);
    zcert_destroy(&cert);
    assert_int_equal(amity_keypair_load(path, out), 0);
    assert_true(out->secret_txt[0] != '\0');
}

static int
setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/amity-auth-XXXXXX");
    strcpy(fx->keys, "/tmp/amity-keys-XXXXXX");
    if (!mkdtemp(fx->dir) || !mkdtemp(fx->keys)) {
        return -1;
    }
    fx->ctx = zmq_ctx_new();
    s_make_cert(fx->keys, "server", NULL, NULL, &fx->server);
    s_make_cert(fx->dir, "hoi-viet-my", "hoi-viet-my", NULL, &fx->office);
    s_make_cert(fx->keys, "stranger", "hoi-viet-nhat", NULL, &fx->stranger);
    /* public certs only in the server's directory */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "mv %s/hoi-viet-my_secret %s/", fx->dir, fx->keys);
    if (system(cmd) != 0) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *fx = *state;
    zmq_ctx_term(fx->ctx);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s %s", fx->dir, fx->keys);
    int rc = system(cmd);
    free(fx);
    return rc == 0 ? 0 : -1;
}

/*  A CURVE ROUTER server on an ephemeral loopback port. */
static void *
s_server(fx_t *fx, char *endpoint, size_t len)
{
    void *s = zmq_socket(fx->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(amity_curve_server(s, &fx->server, AMITY_ZAP_CLIENTS), 0);
    assert_int_equal(zmq_bind(s, "tcp://127.0.0.1:*"), 0);
    zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, endpoint, &len);
    return s;
}

static void *
s_client(fx_t *fx, const amity_keypair_t *own, const char *server_pub, const char *endpoint)
{
    void *c = zmq_socket(fx->ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(c, ZMQ_LINGER, &zero, sizeof zero);
    if (own) {
        assert_int_equal(amity_curve_client(c, own, server_pub), 0);
    }
    assert_int_equal(zmq_connect(c, endpoint), 0);
    zmq_send(c, "hello", 5, ZMQ_DONTWAIT);
    return c;
}

/*  Pumps the ZAP handler (if any) and the server for ms; returns the
 *  number of messages the server received, the last User-Id in user. */
static int
s_pump(amity_auth_t *auth, void *server, int ms, char *user, size_t user_len)
{
    int got = 0;
    for (int t = 0; t < ms; t += 10) {
        zmq_pollitem_t items[2] = { { server, 0, ZMQ_POLLIN, 0 },
                                    { auth ? amity_auth_socket(auth) : NULL, 0, ZMQ_POLLIN, 0 } };
        zmq_poll(items, auth ? 2 : 1, 10);
        if (auth) {
            amity_auth_process(auth);
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, server, ZMQ_DONTWAIT) >= 0) {
            if (!zmq_msg_more(&m)) {
                got++;
                const char *u = zmq_msg_gets(&m, "User-Id");
                snprintf(user, user_len, "%s", u ? u : "");
            }
            zmq_msg_close(&m);
            zmq_msg_init(&m);
        }
        zmq_msg_close(&m);
    }
    return got;
}

static void
test_auth_known_key_admitted_with_user_id(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, fx->dir), 0);
    assert_int_equal(amity_auth_count(auth, AMITY_ZAP_CLIENTS), 1);
    char ep[128], user[64] = "";
    void *srv = s_server(fx, ep, sizeof ep);
    void *cli = s_client(fx, &fx->office, fx->server.public_txt, ep);
    assert_int_equal(s_pump(auth, srv, 1500, user, sizeof user), 1);
    assert_string_equal(user, fx->office.public_txt);
    const amity_peer_t *peer = amity_auth_peer(auth, AMITY_ZAP_CLIENTS, user);
    assert_non_null(peer);
    assert_true(peer->is_office);
    assert_string_equal(peer->name, "hoi-viet-my");
    uint64_t ok = 0, bad = 0;
    amity_auth_stats(auth, &ok, &bad);
    assert_int_equal(ok, 1);
    assert_int_equal(bad, 0);
    zmq_close(cli);
    zmq_close(srv);
    amity_auth_destroy(&auth);
    assert_null(auth);
}

static void
test_auth_unknown_key_refused(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, fx->dir), 0);
    char ep[128], user[64] = "";
    void *srv = s_server(fx, ep, sizeof ep);
    void *cli = s_client(fx, &fx->stranger, fx->server.public_txt, ep);
    assert_int_equal(s_pump(auth, srv, 1000, user, sizeof user), 0);
    uint64_t ok = 0, bad = 0;
    amity_auth_stats(auth, &ok, &bad);
    assert_int_equal(ok, 0);
    assert_true(bad >= 1);
    zmq_close(cli);
    zmq_close(srv);
    amity_auth_destroy(&auth);
}

static void
test_auth_null_mechanism_and_wrong_server_key_refused(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, fx->dir), 0);
    char ep[128], user[64] = "";
    void *srv = s_server(fx, ep, sizeof ep);
    void *plain = s_client(fx, NULL, NULL, ep);
    void *wrong = s_client(fx, &fx->office, fx->stranger.public_txt, ep);
    assert_int_equal(s_pump(auth, srv, 1000, user, sizeof user), 0);
    zmq_close(plain);
    zmq_close(wrong);
    zmq_close(srv);
    amity_auth_destroy(&auth);
}

static void
test_auth_domains_are_separate(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    /* the office's key is known only as a service: refused on a clients socket */
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_SERVICES, fx->dir), 0);
    assert_int_equal(amity_auth_count(auth, AMITY_ZAP_CLIENTS), 0);
    assert_int_equal(amity_auth_count(auth, AMITY_ZAP_SERVICES), 1);
    char ep[128], user[64] = "";
    void *srv = s_server(fx, ep, sizeof ep);
    void *cli = s_client(fx, &fx->office, fx->server.public_txt, ep);
    assert_int_equal(s_pump(auth, srv, 1000, user, sizeof user), 0);
    assert_null(amity_auth_peer(auth, AMITY_ZAP_CLIENTS, fx->office.public_txt));
    assert_non_null(amity_auth_peer(auth, AMITY_ZAP_SERVICES, fx->office.public_txt));
    zmq_close(cli);
    zmq_close(srv);
    amity_auth_destroy(&auth);
}

static void
test_auth_no_handler_refuses_everyone(void **state)
{
    fx_t *fx = *state;
    char ep[128], user[64] = "";
    void *srv = s_server(fx, ep, sizeof ep);
    void *cli = s_client(fx, &fx->office, fx->server.public_txt, ep);
    assert_int_equal(s_pump(NULL, srv, 1000, user, sizeof user), 0);
    zmq_close(cli);
    zmq_close(srv);
}

static void
test_auth_reload_revokes(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, fx->dir), 0);
    assert_non_null(amity_auth_peer(auth, AMITY_ZAP_CLIENTS, fx->office.public_txt));
    char path[256];
    snprintf(path, sizeof path, "%s/hoi-viet-my", fx->dir);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(amity_auth_reload(auth), 0);
    assert_null(amity_auth_peer(auth, AMITY_ZAP_CLIENTS, fx->office.public_txt));
    assert_int_equal(amity_auth_count(auth, AMITY_ZAP_CLIENTS), 0);
    /* a broken certificate keeps the previous set in force */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("not a certificate\n", f);
    fclose(f);
    assert_int_not_equal(amity_auth_reload(auth), 0);
    assert_int_equal(amity_auth_count(auth, AMITY_ZAP_CLIENTS), 0);
    amity_auth_destroy(&auth);
}

static void
test_auth_allows_prefixes(void **state)
{
    (void) state;
    amity_peer_t office = { .name = "hoi-viet-my", .is_office = true };
    const char *own = "2017-H1/hoi-viet-my/award/all/awards";
    const char *all = "2017-H1/all/award/all/awards";
    const char *other = "2017-H1/hoi-viet-nhat/award/all/awards";
    const char *lookalike = "2017-H1/hoi-viet-my2/award/all/awards";
    assert_true(amity_auth_allows(&office, own, strlen(own)));
    assert_true(amity_auth_allows(&office, all, strlen(all)));
    assert_false(amity_auth_allows(&office, other, strlen(other)));
    assert_false(amity_auth_allows(&office, lookalike, strlen(lookalike)));
    amity_peer_t sub = { .name = "dashboard", .prefixes = "2017/all/, 2018/" };
    assert_true(amity_auth_allows(&sub, "2017/all/x", 10));
    assert_true(amity_auth_allows(&sub, "2018/hoi/x", 10));
    assert_false(amity_auth_allows(&sub, "2019/all/x", 10));
    amity_peer_t none = { .name = "nobody" };
    assert_false(amity_auth_allows(&none, "2017/all/x", 10));
    amity_peer_t star = { .name = "secretariat", .prefixes = "*" };
    assert_true(amity_auth_allows(&star, "2019/all/x", 10));
    assert_false(amity_auth_allows(NULL, "2019/all/x", 10));
}

static void
test_auth_bad_directory(void **state)
{
    fx_t *fx = *state;
    amity_auth_t *auth = NULL;
    assert_int_equal(amity_auth_new(&auth, fx->ctx), 0);
    assert_int_equal(amity_auth_load(auth, AMITY_ZAP_CLIENTS, "/nonexistent/amity-certs"),
                     AMITY_EINVAL);
    amity_auth_destroy(&auth);
    assert_null(auth);
    amity_keypair_t kp;
    assert_int_equal(amity_keypair_load("/nonexistent/key", &kp), AMITY_EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_auth_known_key_admitted_with_user_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_unknown_key_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_null_mechanism_and_wrong_server_key_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_domains_are_separate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_no_handler_refuses_everyone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_reload_revokes, setup, teardown),
        cmocka_unit_test(test_auth_allows_prefixes),
        cmocka_unit_test_setup_teardown(test_auth_bad_directory, setup, teardown),
    };
    return cmocka_run_group_tests_name("auth", tests, NULL, NULL);
}
