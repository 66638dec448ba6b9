/*  util: what the client objects share: the DEALER, receiving one decoded
 *  message, option defaults, formatting totals for people and JSON. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/auth.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/money.h"
#include "client_int.h"

void
amity_client_opts_init(amity_client_opts_t *opts)
{
    AMITY_ASSERT(opts != NULL);
    memset(opts, 0, sizeof(*opts));
    opts->ingest = AMITY_CLIENT_INGEST_DEFAULT;
    opts->notify = AMITY_CLIENT_NOTIFY_DEFAULT;
    opts->window = AMITY_CLIENT_WINDOW_DEFAULT;
    opts->batch = AMITY_CLIENT_BATCH_DEFAULT;
    opts->timeout_ms = AMITY_CLIENT_TIMEOUT_DEFAULT;
    opts->deadline_ms = AMITY_CLIENT_DEADLINE_DEFAULT;
}

const char *
amity_opts_ingest(const amity_client_opts_t *opts)
{
    return (opts != NULL && opts->ingest != NULL && opts->ingest[0] != '\0')
               ? opts->ingest
               : AMITY_CLIENT_INGEST_DEFAULT;
}

const char *
amity_opts_notify(const amity_client_opts_t *opts)
{
    return (opts != NULL && opts->notify != NULL && opts->notify[0] != '\0')
               ? opts->notify
               : AMITY_CLIENT_NOTIFY_DEFAULT;
}

uint64_t
amity_random64(void)
{
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        if (read(fd, &v, sizeof(v)) != (ssize_t)sizeof(v)) {
            v = 0;
        }
        close(fd);
    }
    if (v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec * 1000000007u) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32);
    }
    /* keep ids within 53 bits so any JSON tool shows them exactly */
    v &= (UINT64_C(1) << 53) - 1;
    return v == 0 ? 1 : v;
}

/*  Loads our key pair and the server's public key from the files opts
 *  names; logs what is wrong. *set is false when neither is set
 *  (development mode). Returns 0 or AMITY_EINVAL. The caller wipes *own. */
static int
s_keys_load(const amity_client_opts_t *opts, amity_keypair_t *own, amity_keypair_t *srv, bool *set)
{
    bool key = opts != NULL && opts->key != NULL && opts->key[0] != '\0';
    bool server = opts != NULL && opts->server_key != NULL && opts->server_key[0] != '\0';

    memset(own, 0, sizeof(*own));
    memset(srv, 0, sizeof(*srv));
    *set = key || server;
    if (!*set) {
        return 0;
    }
    if (key != server) {
        amity_log_error("client: %s: set --key (our secret certificate) and --server-key (the "
                        "server's public certificate) together",
                        key ? "key" : "server-key");
        return AMITY_EINVAL;
    }
    if (amity_keypair_load(opts->key, own) != 0 || own->secret_txt[0] == '\0') {
        amity_log_error("client: key: %s is not a secret certificate (the NAME_secret file "
                        "amity-keygen wrote)",
                        opts->key);
        return AMITY_EINVAL;
    }
    if (amity_keypair_load(opts->server_key, srv) != 0) {
        amity_log_error("client: server-key: cannot read the certificate %s", opts->server_key);
        return AMITY_EINVAL;
    }
    return 0;
}

int
amity_client_opts_check(const amity_client_opts_t *opts)
{
    amity_keypair_t own;
    amity_keypair_t srv;
    bool set;
    int rc;

    AMITY_ASSERT(opts != NULL);
    rc = s_keys_load(opts, &own, &srv, &set);
    memset(&own, 0, sizeof(own));
    return rc;
}

/*  Makes sock a CURVE client from the key files in opts; logs what is
 *  wrong. Returns 0 (also when no keys are set), AMITY_EINVAL, AMITY_EIO. */
static int
s_curve(void *sock, const char *endpoint, const amity_client_opts_t *opts)
{
    amity_keypair_t own;
    amity_keypair_t srv;
    bool set;
    int rc;

    rc = s_keys_load(opts, &own, &srv, &set);
    if (rc == 0 && !set) {
        if (!amity_endpoint_is_loopback(endpoint)) {
            amity_log_warn("client: %s is not loopback and no keys are set: the server will "
                           "refuse us unless it runs in development mode (set --key and "
                           "--server-key)",
                           endpoint);
        }
        return 0;
    }
    if (rc == 0) {
        rc = amity_curve_client(sock, &own, srv.public_txt) == 0 ? 0 : AMITY_EIO;
    }
    memset(&own, 0, sizeof(own));
    return rc;
}

int
amity_dealer_open(amity_dealer_t *d, const char *endpoint, int linger_ms,
                  const amity_client_opts_t *opts)
{
    amity_sock_opts_t so;
    int rc;

    AMITY_ASSERT(d != NULL && endpoint != NULL);
    memset(d, 0, sizeof(*d));
    d->ctx = zmq_ctx_new();
    if (d->ctx == NULL) {
        amity_log_error("client: cannot create a ZeroMQ context: %s", zmq_strerror(zmq_errno()));
        return AMITY_EIO;
    }
    memset(&so, 0, sizeof(so));
    so.linger_ms = linger_ms;
    so.immediate = true;
    d->sock = amity_sock_new(d->ctx, ZMQ_DEALER, &so);
    if (d->sock == NULL) {
        rc = AMITY_EIO;
        goto fail;
    }
    rc = s_curve(d->sock, endpoint, opts);
    if (rc != 0) {
        goto fail;
    }
    rc = amity_sock_connect(d->sock, endpoint);
    if (rc != 0) {
        goto fail;
    }
    return 0;

fail:
    amity_dealer_close(d);
    return rc;
}

void
amity_dealer_close(amity_dealer_t *d)
{
    if (d == NULL) {
        return;
    }
    amity_sock_close(&d->sock);
    if (d->ctx != NULL) {
        while (zmq_ctx_term(d->ctx) != 0 && zmq_errno() == EINTR) {
        }
        d->ctx = NULL;
    }
}

int
amity_dealer_send(amity_dealer_t *d, const amity_msg_t *m, amity_buf_t *scratch)
{
    amity_frame_t frame;
    int rc;

    amity_buf_reset(scratch);
    rc = amity_msg_encode(m, scratch);
    if (rc != 0) {
        amity_log_error("client: cannot encode %s: %s", amity_msg_type_name(m->type),
                        amity_strerror(rc));
        return rc;
    }
    frame.data = scratch->data;
    frame.len = scratch->len;
    return amity_sock_send_frames(d->sock, &frame, 1, ZMQ_DONTWAIT);
}

int
amity_dealer_recv(amity_dealer_t *d, amity_rx_t *rx)
{
    char why[AMITY_WHY_MAX];
    int n;
    int rc;
    int body;

    memset(rx, 0, sizeof(*rx));
    amity_msg_init(&rx->msg);
    n = amity_sock_recv_frames(d->sock, rx->frames, 4, NULL, 0);
    if (n <= 0) {
        if (n == AMITY_ETOOBIG) {
            amity_log_warn_rl(5, "client: dropped a message with too many frames");
            return AMITY_EPROTO;
        }
        return n;
    }
    rx->n_frames = n;
    /* the body is the last frame; an empty delimiter frame may precede it */
    body = n - 1;
    rc = amity_msg_decode(rx->frames[body].data, rx->frames[body].len, &rx->msg, why, sizeof(why));
    if (rc != 0) {
        amity_log_warn_rl(5, "client: dropped a malformed message (%zu bytes): %s",
                          rx->frames[body].len, why);
        amity_rx_clear(rx);
        return AMITY_EPROTO;
    }
    return 1;
}

void
amity_rx_clear(amity_rx_t *rx)
{
    if (rx == NULL) {
        return;
    }
    amity_msg_clear(&rx->msg);
    amity_frames_free(rx->frames, rx->n_frames);
    rx->n_frames = 0;
}

static int
s_total_cmp(const void *a, const void *b)
{
    const amity_total_t *x = a;
    const amity_total_t *y = b;
    return strcmp(x->key, y->key);
}

void
amity_totals_sort(amity_total_t *t, size_t n)
{
    if (n > 1) {
        qsort(t, n, sizeof(*t), s_total_cmp);
    }
}

size_t
amity_total_format(const char *key, int64_t value, char *buf, size_t buf_len, bool *quoted)
{
    char money[AMITY_MONEY_STR_MAX];
    int exponent;
    size_t len;
    int n;

    AMITY_ASSERT(key != NULL && buf != NULL && buf_len > 0);
    exponent = amity_key_exponent(key, strlen(key));
    if (exponent >= 0) {
        len = amity_money_format(value, exponent, money);
        if (len >= buf_len) {
            len = buf_len - 1;
        }
        memcpy(buf, money, len);
        buf[len] = '\0';
        if (quoted != NULL) {
            *quoted = true;
        }
        return len;
    }
    n = snprintf(buf, buf_len, "%" PRId64, value);
    if (quoted != NULL) {
        *quoted = false;
    }
    if (n < 0) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n < buf_len ? (size_t)n : buf_len - 1;
}

/* Appends s as a JSON string (UTF-8 passes through; controls escaped). */
static int
s_json_string(amity_buf_t *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    int rc = amity_buf_append(out, "\"", 1);

    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p != '\0'; p++) {
        char esc[6];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            rc = amity_buf_append(out, esc, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[*p >> 4];
            esc[5] = hex[*p & 0xf];
            rc = amity_buf_append(out, esc, 6);
        } else {
            rc = amity_buf_append(out, p, 1);
        }
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "\"", 1);
    }
    return rc;
}

int
amity_totals_json(const amity_total_t *t, size_t n, bool spaced, amity_buf_t *out)
{
    const char *comma = spaced ? ", " : ",";
    const char *colon = spaced ? ": " : ":";
    char val[64];
    bool quoted;
    size_t len;
    int rc;

    AMITY_ASSERT(out != NULL && (t != NULL || n == 0));
    rc = amity_buf_append(out, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i > 0) {
            rc = amity_buf_append(out, comma, strlen(comma));
        }
        if (rc == 0) {
            rc = s_json_string(out, t[i].key);
        }
        if (rc == 0) {
            rc = amity_buf_append(out, colon, strlen(colon));
        }
        if (rc == 0) {
            len = amity_total_format(t[i].key, t[i].value, val, sizeof(val), &quoted);
            if (quoted) {
                rc = s_json_string(out, val);
            } else {
                rc = amity_buf_append(out, val, len);
            }
        }
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "}", 1);
    }
    return rc;
}
