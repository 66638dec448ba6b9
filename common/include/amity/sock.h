/*  sock: ZeroMQ socket helpers: every socket gets linger, size limits,
 *  high-water marks and (for TCP) heartbeats in one place. */
#ifndef AMITY_SOCK_H
#define AMITY_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMITY_MSG_MAX          (4 * 1024 * 1024) /**< default ZMQ_MAXMSGSIZE */
#define AMITY_LINGER_MS        1000
#define AMITY_HEARTBEAT_MS     1000 /**< ZMQ_HEARTBEAT_IVL */
#define AMITY_HEARTBEAT_TTL_MS 5000 /**< ZMQ_HEARTBEAT_TIMEOUT/TTL */

typedef struct {
    int64_t max_msg; /**< ZMQ_MAXMSGSIZE; 0 = AMITY_MSG_MAX, -1 = unlimited */
    int sndhwm;      /**< 0 = libzmq default */
    int rcvhwm;      /**< 0 = libzmq default */
    int linger_ms;   /**< -1 = AMITY_LINGER_MS */
    bool immediate;  /**< ZMQ_IMMEDIATE */
} amity_sock_opts_t;

/*  Checks the libzmq we run against: refuses (logging why) a version older
 *  than 4.3.3 or a build without CURVE (zmq_has("curve")). Call once at
 *  start-up. Returns 0 or AMITY_EINVAL. */
int amity_zmq_check(void);

/*  Creates a socket of type (ZMQ_PUSH ...) with opts (NULL = defaults) and
 *  heartbeats. Returns NULL and logs on failure. */
void *amity_sock_new(void *ctx, int type, const amity_sock_opts_t *opts);

/*  Binds or connects, logging the endpoint and zmq_strerror on failure.
 *  Return 0 or AMITY_EIO (AMITY_EINVAL for a malformed endpoint). */
int amity_sock_bind(void *sock, const char *endpoint);
int amity_sock_connect(void *sock, const char *endpoint);

/*  Closes *sock_p (NULL-safe) and sets it to NULL. */
void amity_sock_close(void **sock_p);

/*  True when the endpoint is inproc://, ipc://, or tcp:// on a loopback
 *  address (127.0.0.0/8, ::1, localhost). */
bool amity_endpoint_is_loopback(const char *endpoint);

/*  Receives one whole message (all frames) without blocking. Frames are
 *  copied into frames[i] (malloc'd, caller frees with amity_frames_free);
 *  each copy is followed by a NUL byte not counted in len, so text frames
 *  can be used as C strings. user_id (may be NULL) receives the ZAP
 *  "User-Id" of the message, "" when there is none (truncated to fit).
 *  Returns the frame count, 0 when nothing is waiting, AMITY_ETOOBIG when
 *  the message has more than max_frames frames (the rest is drained and
 *  dropped, nothing is left in frames), AMITY_ENOMEM (message dropped),
 *  AMITY_EIO/AMITY_ETERM on failure. */
typedef struct {
    void *data;
    size_t len;
} amity_frame_t;

int amity_sock_recv_frames(void *sock, amity_frame_t *frames, int max_frames, char *user_id,
                           size_t user_id_len);
/*  Frees frames[0..n) and sets their data to NULL; NULL-safe. */
void amity_frames_free(amity_frame_t *frames, int n);

/*  Sends n frames (SNDMORE on all but the last). flags: 0 or ZMQ_DONTWAIT.
 *  Returns 0, AMITY_EAGAIN (would block, or a ROUTER_MANDATORY peer is
 *  unknown: dropped), AMITY_ETERM (context terminated), AMITY_EIO. */
int amity_sock_send_frames(void *sock, const amity_frame_t *frames, int n, int flags);

#endif
