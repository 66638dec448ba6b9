/*  validate: the stateless checker between ingest and the aggregate shards.
 *  Pulls `work` from every ingest, checks each record against DOMAIN.md's
 *  rules (amity_record_validate) for the sending office, and pushes one
 *  `apply` per shard: accepted records in canonical form, rejected ones as
 *  sent with the reason. Run as many as the load needs.
 */
#ifndef AMITY_VALIDATE_H
#define AMITY_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/config.h"

#define VALIDATE_OUTBOX_MAX 64 /**< apply messages queued per shard before work pauses */

/*  What rejections are counted by: the field a reason names. */
typedef enum {
    VALIDATE_WHY_RECORD = 0, /**< "record: ..." (not a map, too many fields) */
    VALIDATE_WHY_ID,
    VALIDATE_WHY_REV,
    VALIDATE_WHY_RETRACT,
    VALIDATE_WHY_KIND,
    VALIDATE_WHY_DATE,
    VALIDATE_WHY_COUNTRY,
    VALIDATE_WHY_METRIC, /**< any count metric (delegations, people, ...) */
    VALIDATE_WHY_AMOUNT,
    VALIDATE_WHY_CURRENCY,
    VALIDATE_WHY_SCOPE,
    VALIDATE_WHY_LEVEL,
    VALIDATE_WHY_NOTE,
    VALIDATE_WHY_OFFICE,
    VALIDATE_WHY_OTHER, /**< unknown fields and anything else */
    VALIDATE_WHY_COUNT
} validate_why_t;

typedef struct validate_t validate_t;

/*  Options (borrowed by validate_new for the object's lifetime). */
typedef struct {
    const amity_strlist_t *ingest;      /**< ingest work endpoints to pull from */
    const amity_strlist_t *shards;      /**< shard base endpoints, in shard order */
    const char *tz;                     /**< IANA zone for the date rule's "tomorrow" */
    const char *key;                    /**< own secret certificate (NULL/"": no keys) */
    const amity_strlist_t *ingest_keys; /**< ingests' public certificates, in the order of
                                             ingest (NULL/empty: work in clear) */
    const amity_strlist_t *shard_keys;  /**< shards' public certificates, in shard order
                                             (NULL/empty: apply in clear) */
} validate_opts_t;

/*  Counters (logged every 10 s when changed, and at exit). */
typedef struct {
    uint64_t work_msgs;                       /**< work messages handled */
    uint64_t bad_work;                        /**< malformed work messages dropped */
    uint64_t validated;                       /**< records checked */
    uint64_t accepted;                        /**< records that passed */
    uint64_t rejected;                        /**< records that did not */
    uint64_t rejected_by[VALIDATE_WHY_COUNT]; /**< rejections by the field named */
    uint64_t apply_sent;                      /**< apply messages handed to ZeroMQ */
    uint64_t apply_deferred;                  /**< apply messages that had to wait */
    uint64_t apply_dropped;                   /**< apply messages dropped at shutdown */
    uint64_t ingest_disconnects;              /**< links to ingests that dropped (monitor) */
    uint64_t shard_disconnects;               /**< links to shards that dropped (monitor) */
    uint64_t handshake_failures;              /**< CURVE handshakes that failed (monitors) */
} validate_stats_t;

/*  Checks opts (at least one ingest and one shard endpoint, well-formed;
 *  tz a known zone; ingest_keys and shard_keys need key and one
 *  certificate per endpoint: else AMITY_EINVAL, logged naming the option),
 *  reads the key files, computes the first max_day and returns the object
 *  in *out. No sockets yet. Returns 0, AMITY_EINVAL or AMITY_ENOMEM. */
int validate_new(validate_t **out, const validate_opts_t *opts);

/*  Creates the sockets in ctx, connects, logs "ready", then runs the loop
 *  until SIGINT/SIGTERM on signal_fd (or, with signal_fd < 0, until ctx is
 *  shut down). Apply messages still queued then are dropped and counted (the
 *  offices resend). Closes its sockets before returning. Returns 0 after a
 *  clean stop, AMITY_EIO on a socket failure, AMITY_ENOMEM. */
int validate_run(validate_t *self, void *ctx, int signal_fd);

void validate_destroy(validate_t **self_p);

const validate_stats_t *validate_stats(const validate_t *self);
/*  Name of a rejection bucket ("date", "metric", "other"). */
const char *validate_why_name(validate_why_t w);

/*  The latest date accepted, as days since 1970-01-01. The loop refreshes
 *  it once a second; tests pin it. */
void validate_set_max_day(validate_t *self, int32_t max_day);

/*  Handles one `work` message: validates every record and leaves one
 *  encoded `apply` per shard that received items in validate_apply(self, s)
 *  (others empty), valid until the next call. A malformed work message is
 *  counted, logged (rate-limited) and produces nothing: returns
 *  AMITY_EPROTO. Otherwise returns 0, or AMITY_ENOMEM. */
int validate_handle_work(validate_t *self, const uint8_t *body, size_t len);

/*  The apply message for shard produced by the last validate_handle_work
 *  (len 0: nothing for that shard). Borrowed. */
const amity_buf_t *validate_apply(const validate_t *self, uint32_t shard);

#endif
