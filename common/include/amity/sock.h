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

/*  The endpoint k (>= 0) places after base, for a daemon that binds
 *  several sockets from one base (an aggregate shard: apply +0, verdicts
 *  +1, totals +2, snapshots +3). "tcp://HOST:PORT" gives
 *  "tcp://HOST:PORT+k": HOST is kept as written (a name, an IPv4 address,
 *  or an IPv6 address in brackets, "tcp://[::1]:7710"; an unbracketed IPv6
 *  address is ambiguous and refused), PORT is 1..65535 in decimal and
 *  PORT+k must be too. "ipc://PATH" and "inproc://NAME" give base itself
 *  for k = 0 and base + "-k" otherwise ("ipc:///run/amity/s0-2"), so tests
 *  and single-machine setups can use them; a "tcp://" base with a wildcard
 *  port ("*") or a source address ("SRC;HOST:PORT") is refused. Returns 0,
 *  AMITY_EINVAL (malformed base, PORT+k out of range, k < 0; out is "") or
 *  AMITY_EFULL (out_len too small; out is ""). */
int amity_endpoint_offset(const char *base, int k, char *out, size_t out_len);

/*  Receives one whole message (all frames) without blocking. Frames are
 *  copied into frames[i] (malloc'd, caller frees with amity_frames_free);
 *  each copy is followed by a NUL byte not counted in len, so text frames
 *  can be used as C strings. user_id (may be NULL) receives the ZAP
 *  "User-Id" of the message, "" when there is none (truncated to fit). It
 *  is taken from the first frame that carries one: libzmq (4.3.4) gives a
 *  ROUTER's routing-id frame no metadata, only the frames the peer sent.
 *  Returns the frame count, 0 when nothing is waiting, AMITY_ETOOBIG when
 *  the message has more than max_frames frames (the rest is drained and
 *  dropped, nothing is left in frames), AMITY_ENOMEM (message dropped),
 *  AMITY_EIO/AMITY_ETERM on failure. */
typedef struct {
    void *data; /**< the frame's bytes, then a NUL (malloc'd) */
    size_t len; /**< bytes, the NUL not counted */
} amity_frame_t;

int amity_sock_recv_frames(void *sock, amity_frame_t *frames, int max_frames, char *user_id,
                           size_t user_id_len);

/*  amity_sock_recv_frames for a socket that answers malformed messages (a
 *  ROUTER needs the routing id to reply to a message of too many frames):
 *  a message of more than max_frames frames keeps its first max_frames in
 *  frames, the rest is drained. *n_parts (required) receives the number of
 *  frames the message had. Returns the number of frames kept (less than
 *  *n_parts when some were dropped), 0 when nothing is waiting,
 *  AMITY_ENOMEM (message dropped, nothing kept), AMITY_EIO/AMITY_ETERM. */
int amity_sock_recv_head(void *sock, amity_frame_t *frames, int max_frames, int *n_parts,
                         char *user_id, size_t user_id_len);
/*  Frees frames[0..n) and sets their data to NULL; NULL-safe. */
void amity_frames_free(amity_frame_t *frames, int n);

/*  Sends n frames (SNDMORE on all but the last). flags: 0 or ZMQ_DONTWAIT.
 *  Returns 0, AMITY_EAGAIN (would block, or a ROUTER_MANDATORY peer is
 *  unknown: dropped), AMITY_ETERM (context terminated), AMITY_EIO. */
int amity_sock_send_frames(void *sock, const amity_frame_t *frames, int n, int flags);

#endif
