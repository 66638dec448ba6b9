/*  ingest: the front door. Offices connect DEALER to a ROUTER here and send
 *  `submit`; ingest attributes the records to an office, forwards them as
 *  `work` to the validators (PUSH), and routes the shards' `verdicts` back to
 *  the connection that sent the records (one SUB per shard, topic = this
 *  instance's id). Stateless: a dropped message is resent by the client.
 */
#ifndef AMITY_INGEST_H
#define AMITY_INGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/auth.h"
#include "amity/buf.h"
#include "amity/config.h"

#define INGEST_ID_LEN      20                /**< "ing-" + 16 hex digits */
#define INGEST_MAX_MSG_MAX INT64_C(16777216) /**< largest accepted max-msg */

typedef struct ingest_t ingest_t;

/*  Options (borrowed by ingest_new for the object's lifetime). */
typedef struct {
    const char *bind;                  /**< ROUTER for offices */
    const char *work;                  /**< PUSH to validators */
    const amity_strlist_t *shards;     /**< shard base endpoints, in shard order */
    int64_t max_msg;                   /**< ZMQ_MAXMSGSIZE on the client socket */
    const char *key;                   /**< own secret certificate (NULL/"": no keys) */
    const char *clients_dir;           /**< offices' public certificates: secure mode */
    const char *peers_dir;             /**< services' public certificates: CURVE on work */
    const amity_strlist_t *shard_keys; /**< shards' public certificates, in shard order
                                            (NULL or empty: verdicts in clear) */
} ingest_opts_t;

/*  Counters (logged every 10 s when changed, and at exit). */
typedef struct {
    uint64_t submits;              /**< submit messages forwarded as work */
    uint64_t records;              /**< records in them */
    uint64_t dropped_no_validator; /**< work not sent: no validator could take it */
    uint64_t bad_frames;           /**< client messages with a frame count other than 2 */
    uint64_t bad_submits;          /**< malformed or refused client messages */
    uint64_t errors_sent;          /**< error replies sent to clients */
    uint64_t verdict_msgs;         /**< verdict messages routed to clients */
    uint64_t verdicts;             /**< verdicts in them */
    uint64_t bad_verdicts;         /**< malformed shard messages */
    uint64_t dropped_replies;      /**< replies the ROUTER could not queue */
    uint64_t unauthenticated;      /**< secure mode: messages from a key that is not (or no
                                        longer) an office's */
    uint64_t office_mismatch;      /**< secure mode: submits naming another office */
    uint64_t handshake_failures;   /**< CURVE handshakes that failed (monitor) */
    uint64_t shard_disconnects;    /**< links to the shards' verdict endpoints that dropped */
} ingest_stats_t;

/*  What a handler wants sent. Caller-owned: init once, reset per message. */
typedef struct {
    amity_buf_t work;  /**< encoded `work` for the validators (empty: none) */
    amity_buf_t conn;  /**< routing id the reply goes to (empty: no reply) */
    amity_buf_t reply; /**< encoded reply body for conn */
} ingest_out_t;

void ingest_out_init(ingest_out_t *out);
void ingest_out_reset(ingest_out_t *out);
void ingest_out_clear(ingest_out_t *out);

/*  Checks opts and returns the object in *out, with its instance id drawn.
 *  No sockets yet. Secure mode (offices are their keys) needs key and
 *  clients_dir together; without them bind must be loopback. The work
 *  endpoint must be loopback unless key and peers_dir are set. shard_keys
 *  (one per shard) need key. Key files are read here. Returns 0,
 *  AMITY_EINVAL (bad option, logged naming it and the option to set) or
 *  AMITY_ENOMEM. */
int ingest_new(ingest_t **out, const ingest_opts_t *opts);

/*  Creates the sockets in ctx (and, with keys, the ZAP handler, loading the
 *  certificate directories), binds and connects, logs "ready", then runs
 *  the loop until a SIGINT/SIGTERM arrives on signal_fd (or, with
 *  signal_fd < 0, until ctx is shut down). SIGHUP reloads the certificate
 *  directories. Closes its sockets before returning. Returns 0 after a
 *  clean stop, AMITY_EINVAL when a certificate directory cannot be loaded,
 *  AMITY_EIO on a socket failure. */
int ingest_run(ingest_t *self, void *ctx, int signal_fd);

void ingest_destroy(ingest_t **self_p);

/*  The instance id "ing-<16 hex>" (borrowed, lives as long as self). */
const char *ingest_id(const ingest_t *self);
const ingest_stats_t *ingest_stats(const ingest_t *self);

/*  True when offices are known by their keys (key and clients_dir set). */
bool ingest_secure(const ingest_t *self);

/*  Handles one message from the client ROUTER: frames[0] is the routing
 *  id, frames[1] the body; peer is the office behind the message's
 *  User-Id (amity_auth_peer; NULL when unknown or revoked). A well-formed
 *  `submit` from a known office fills out->work, attributed in secure mode
 *  to peer's office only (never to the routing id; a submit whose `office`
 *  field names another office is refused), in development mode to the
 *  `office` field (peer is ignored). Anything else fills out->conn and
 *  out->reply with an `error`. Counts and logs (rate-limited) what it
 *  refuses. Returns 0 or AMITY_ENOMEM. */
int ingest_handle_client_as(ingest_t *self, const amity_peer_t *peer, const void *const *frames,
                            const size_t *lens, int n_frames, ingest_out_t *out);

/*  ingest_handle_client_as with no peer (development mode; in secure mode
 *  every message is refused as unauthenticated). */
int ingest_handle_client(ingest_t *self, const void *const *frames, const size_t *lens,
                         int n_frames, ingest_out_t *out);

/*  Handles one message from a shard's verdict PUB: [topic = ingest id]
 *  [verdicts]. Fills out->conn and out->reply with the verdicts minus the
 *  conn field. Malformed input is counted, logged and dropped (out stays
 *  empty). Returns 0 or AMITY_ENOMEM. */
int ingest_handle_verdicts(ingest_t *self, const void *const *frames, const size_t *lens,
                           int n_frames, ingest_out_t *out);

#endif
