/*  sock: ZeroMQ sockets configured in one place (linger, size limits,
 *  high-water marks, heartbeats, reconnect pacing), whole-message receive
 *  and send, the loopback test behind "no keys, loopback only", and the
 *  endpoints a shard derives from its base.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zmq.h>

#include "amity/err.h"
#include "amity/log.h"
#include "amity/sock.h"

#define S_HANDSHAKE_MS     5000
#define S_RECONNECT_MS     100
#define S_RECONNECT_MAX_MS 2000

int
amity_zmq_check(void)
{
    int major = 0;
    int minor = 0;
    int patch = 0;
    zmq_version(&major, &minor, &patch);
    if (major < 4 || (major == 4 && (minor < 3 || (minor == 3 && patch < 3)))) {
        amity_log_error("libzmq %d.%d.%d is too old: amity needs 4.3.3 or later", major, minor,
                        patch);
        return AMITY_EINVAL;
    }
    if (!zmq_has("curve")) {
        amity_log_error("libzmq %d.%d.%d was built without CURVE security, which amity needs",
                        major, minor, patch);
        return AMITY_EINVAL;
    }
    return 0;
}

static int
s_set_int(void *sock, int option, int value, const char *name)
{
    if (zmq_setsockopt(sock, option, &value, sizeof(value)) != 0) {
        amity_log_error("sock: cannot set %s to %d: %s", name, value, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

void *
amity_sock_new(void *ctx, int type, const amity_sock_opts_t *opts)
{
    AMITY_ASSERT(ctx);
    amity_sock_opts_t defaults = { 0, 0, 0, -1, false };
    if (!opts) {
        opts = &defaults;
    }
    void *sock = zmq_socket(ctx, type);
    if (!sock) {
        amity_log_error("sock: cannot create a socket of type %d: %s", type,
                        zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = opts->linger_ms < 0 ? AMITY_LINGER_MS : opts->linger_ms;
    int64_t max_msg = opts->max_msg == 0 ? (int64_t)AMITY_MSG_MAX : opts->max_msg;
    if (max_msg < 0) {
        max_msg = -1;
    }
    if (s_set_int(sock, ZMQ_LINGER, linger, "ZMQ_LINGER") != 0) {
        goto fail;
    }
    if (zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg)) != 0) {
        amity_log_error("sock: cannot set ZMQ_MAXMSGSIZE to %lld: %s", (long long)max_msg,
                        zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (opts->sndhwm > 0 && s_set_int(sock, ZMQ_SNDHWM, opts->sndhwm, "ZMQ_SNDHWM") != 0) {
        goto fail;
    }
    if (opts->rcvhwm > 0 && s_set_int(sock, ZMQ_RCVHWM, opts->rcvhwm, "ZMQ_RCVHWM") != 0) {
        goto fail;
    }
    if (opts->immediate && s_set_int(sock, ZMQ_IMMEDIATE, 1, "ZMQ_IMMEDIATE") != 0) {
        goto fail;
    }
    /* heartbeats detect a dead TCP peer long before the kernel would; the
     * TTL tells the peer to drop us when our pings stop */
    if (s_set_int(sock, ZMQ_HEARTBEAT_IVL, AMITY_HEARTBEAT_MS, "ZMQ_HEARTBEAT_IVL") != 0 ||
        s_set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, AMITY_HEARTBEAT_TTL_MS, "ZMQ_HEARTBEAT_TIMEOUT") !=
            0 ||
        s_set_int(sock, ZMQ_HEARTBEAT_TTL, AMITY_HEARTBEAT_TTL_MS, "ZMQ_HEARTBEAT_TTL") != 0 ||
        s_set_int(sock, ZMQ_HANDSHAKE_IVL, S_HANDSHAKE_MS, "ZMQ_HANDSHAKE_IVL") != 0 ||
        s_set_int(sock, ZMQ_RECONNECT_IVL, S_RECONNECT_MS, "ZMQ_RECONNECT_IVL") != 0 ||
        s_set_int(sock, ZMQ_RECONNECT_IVL_MAX, S_RECONNECT_MAX_MS, "ZMQ_RECONNECT_IVL_MAX") != 0) {
        goto fail;
    }
    return sock;

fail:
    zmq_close(sock);
    return NULL;
}

static int
s_endpoint_error(int err)
{
    switch (err) {
    case EINVAL:
    case EPROTONOSUPPORT:
    case ENOCOMPATPROTO:
        return AMITY_EINVAL;
    case ETERM:
        return AMITY_ETERM;
    default:
        return AMITY_EIO;
    }
}

int
amity_sock_bind(void *sock, const char *endpoint)
{
    AMITY_ASSERT(sock && endpoint);
    if (zmq_bind(sock, endpoint) != 0) {
        int err = zmq_errno();
        amity_log_error("sock: cannot bind %s: %s", endpoint, zmq_strerror(err));
        return s_endpoint_error(err);
    }
    return 0;
}

int
amity_sock_connect(void *sock, const char *endpoint)
{
    AMITY_ASSERT(sock && endpoint);
    if (zmq_connect(sock, endpoint) != 0) {
        int err = zmq_errno();
        amity_log_error("sock: cannot connect to %s: %s", endpoint, zmq_strerror(err));
        return s_endpoint_error(err);
    }
    return 0;
}

void
amity_sock_close(void **sock_p)
{
    if (sock_p && *sock_p) {
        zmq_close(*sock_p);
        *sock_p = NULL;
    }
}

/*  host is the text between "tcp://" and the port separator, brackets
 *  removed for IPv6. */
static bool
s_host_is_loopback(const char *host, size_t len, bool bracketed)
{
    char text[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof(text)) {
        return false;
    }
    memcpy(text, host, len);
    text[len] = '\0';
    if (bracketed) {
        struct in6_addr a6;
        if (inet_pton(AF_INET6, text, &a6) != 1) {
            return false;
        }
        if (IN6_IS_ADDR_LOOPBACK(&a6)) {
            return true;
        }
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    if (strcasecmp(text, "localhost") == 0) {
        return true;
    }
    struct in_addr a4;
    if (inet_pton(AF_INET, text, &a4) != 1) {
        return false; /* a name, an interface, "*" or a malformed address */
    }
    return ((const unsigned char *)&a4.s_addr)[0] == 127;
}

bool
amity_endpoint_is_loopback(const char *endpoint)
{
    if (!endpoint) {
        return false;
    }
    if (strncmp(endpoint, "inproc://", 9) == 0 || strncmp(endpoint, "ipc://", 6) == 0) {
        return true;
    }
    if (strncmp(endpoint, "tcp://", 6) != 0) {
        return false;
    }
    const char *host = endpoint + 6;
    /* "tcp://SOURCE;HOST:PORT" names a local source address: too clever to
     * reason about here, so it does not count as loopback */
    if (strchr(host, ';')) {
        return false;
    }
    const char *port_sep;
    bool bracketed = false;
    size_t host_len;
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close) {
            return false;
        }
        bracketed = true;
        host++;
        host_len = (size_t)(close - host);
        port_sep = close + 1;
    } else {
        port_sep = strrchr(host, ':');
        if (!port_sep) {
            return false;
        }
        host_len = (size_t)(port_sep - host);
    }
    if (*port_sep != ':' || port_sep[1] == '\0') {
        return false;
    }
    return s_host_is_loopback(host, host_len, bracketed);
}

int
amity_endpoint_offset(const char *base, int k, char *out, size_t out_len)
{
    AMITY_ASSERT(base && out && out_len > 0);
    out[0] = '\0';
    if (k < 0) {
        return AMITY_EINVAL;
    }
    int n;
    const char *path = NULL;
    if (strncmp(base, "ipc://", 6) == 0) {
        path = base + 6;
    } else if (strncmp(base, "inproc://", 9) == 0) {
        path = base + 9;
    }
    if (path) {
        if (*path == '\0') {
            return AMITY_EINVAL;
        }
        n = k == 0 ? snprintf(out, out_len, "%s", base) : snprintf(out, out_len, "%s-%d", base, k);
        if (n < 0 || (size_t)n >= out_len) {
            out[0] = '\0';
            return AMITY_EFULL;
        }
        return 0;
    }
    if (strncmp(base, "tcp://", 6) != 0) {
        return AMITY_EINVAL;
    }
    const char *host = base + 6;
    const char *colon;
    if (strchr(host, ';')) {
        return AMITY_EINVAL; /* a source address: only meaningful to connect */
    }
    if (*host == '[') {
        const char *close = strchr(host, ']');
        if (!close || close == host + 1 || close[1] != ':') {
            return AMITY_EINVAL;
        }
        colon = close + 1;
    } else {
        colon = strrchr(host, ':');
        if (!colon || colon == host || memchr(host, ':', (size_t)(colon - host))) {
            return AMITY_EINVAL; /* no port, no host, or IPv6 without brackets */
        }
    }
    const char *p = colon + 1;
    long port = 0;
    if (*p == '\0' || strlen(p) > 5) {
        return AMITY_EINVAL;
    }
    for (; *p; p++) {
        if (*p < '0' || *p > '9') {
            return AMITY_EINVAL;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535 || k > 65535 - port) {
        return AMITY_EINVAL;
    }
    n = snprintf(out, out_len, "%.*s%ld", (int)(colon + 1 - base), base, port + k);
    if (n < 0 || (size_t)n >= out_len) {
        out[0] = '\0';
        return AMITY_EFULL;
    }
    return 0;
}

void
amity_frames_free(amity_frame_t *frames, int n)
{
    if (!frames) {
        return;
    }
    for (int i = 0; i < n; i++) {
        free(frames[i].data);
        frames[i].data = NULL;
        frames[i].len = 0;
    }
}

static int
s_recv_error(int err, const char *what)
{
    if (err == ETERM) {
        return AMITY_ETERM;
    }
    amity_log_error("sock: %s failed: %s", what, zmq_strerror(err));
    return AMITY_EIO;
}

/*  Receives and discards the remaining parts of the current message. */
static int
s_drain(void *sock)
{
    int more = 1;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&msg);
            if (err == EINTR) {
                continue;
            }
            return s_recv_error(err, "receive (draining)");
        }
        more = zmq_msg_more(&msg);
        zmq_msg_close(&msg);
    }
    return 0;
}

/*  Copies the message's User-Id into user_id unless it holds one already:
 *  the first frame that carries one wins (a ROUTER's routing-id frame
 *  carries none). */
static void
s_take_user_id(zmq_msg_t *msg, char *user_id, size_t user_id_len)
{
    if (!user_id || user_id_len == 0 || user_id[0] != '\0') {
        return;
    }
    const char *uid = zmq_msg_gets(msg, "User-Id");
    if (uid) {
        size_t len = strlen(uid);
        if (len >= user_id_len) {
            len = user_id_len - 1;
        }
        memcpy(user_id, uid, len);
        user_id[len] = '\0';
    }
}

/*  The receive loop of amity_sock_recv_frames (keep_head false) and
 *  amity_sock_recv_head (keep_head true). */
static int
s_recv(void *sock, amity_frame_t *frames, int max_frames, bool keep_head, int *n_parts,
       char *user_id, size_t user_id_len)
{
    AMITY_ASSERT(sock && frames && max_frames > 0);
    int n = 0;
    int parts = 0;
    int rc = 0;
    int more = 1;
    bool dropped = false; /* ENOMEM: keep draining, keep nothing */
    if (user_id && user_id_len > 0) {
        user_id[0] = '\0';
    }
    *n_parts = 0;
    while (more) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        /* all parts of a message arrive together, so DONTWAIT on the later
         * parts never fails with EAGAIN; it just keeps a bug from blocking */
        if (zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&msg);
            if (err == EINTR) {
                continue;
            }
            if (err == EAGAIN && parts == 0) {
                return 0;
            }
            rc = s_recv_error(err, "receive");
            goto fail;
        }
        more = zmq_msg_more(&msg);
        parts++;
        s_take_user_id(&msg, user_id, user_id_len);
        if (n == max_frames && !keep_head) {
            zmq_msg_close(&msg);
            rc = more ? s_drain(sock) : 0;
            if (rc == 0) {
                rc = AMITY_ETOOBIG;
            }
            goto fail;
        }
        if (n == max_frames || dropped) {
            zmq_msg_close(&msg); /* past the head (keep_head), or after ENOMEM */
            continue;
        }
        size_t len = zmq_msg_size(&msg);
        uint8_t *copy = malloc(len + 1);
        if (!copy) {
            zmq_msg_close(&msg);
            amity_frames_free(frames, n);
            n = 0;
            dropped = true;
            continue;
        }
        if (len > 0) {
            memcpy(copy, zmq_msg_data(&msg), len);
        }
        copy[len] = '\0';
        zmq_msg_close(&msg);
        frames[n].data = copy;
        frames[n].len = len;
        n++;
    }
    if (dropped) {
        return AMITY_ENOMEM;
    }
    *n_parts = parts;
    return n;

fail:
    amity_frames_free(frames, n);
    return rc;
}

int
amity_sock_recv_frames(void *sock, amity_frame_t *frames, int max_frames, char *user_id,
                       size_t user_id_len)
{
    int n_parts;
    return s_recv(sock, frames, max_frames, false, &n_parts, user_id, user_id_len);
}

int
amity_sock_recv_head(void *sock, amity_frame_t *frames, int max_frames, int *n_parts, char *user_id,
                     size_t user_id_len)
{
    AMITY_ASSERT(n_parts);
    return s_recv(sock, frames, max_frames, true, n_parts, user_id, user_id_len);
}

int
amity_sock_send_frames(void *sock, const amity_frame_t *frames, int n, int flags)
{
    AMITY_ASSERT(sock && frames && n > 0);
    for (int i = 0; i < n; i++) {
        int part_flags = flags | (i < n - 1 ? ZMQ_SNDMORE : 0);
        while (zmq_send(sock, frames[i].data, frames[i].len, part_flags) < 0) {
            int err = zmq_errno();
            if (err == EINTR) {
                continue;
            }
            if (err == EAGAIN || err == EHOSTUNREACH) {
                return AMITY_EAGAIN;
            }
            if (err == ETERM) {
                return AMITY_ETERM;
            }
            amity_log_error("sock: send failed: %s", zmq_strerror(err));
            return AMITY_EIO;
        }
    }
    return 0;
}
