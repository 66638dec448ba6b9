/*  core: notify without sockets. Merges the shards' partial totals (merge),
 *  numbers every batch of changed sums with notify's own seq, answers
 *  clients (query, sub, ping, unsub) and fans changes out to subscribers
 *  (subs). Everything it wants sent lands in its outbox, which the daemon
 *  loop flushes after each call; unit tests read it instead.
 */
#ifndef NOTIFY_CORE_H
#define NOTIFY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/auth.h"
#include "amity/proto.h"
#include "merge.h"
#include "outbox.h"
#include "subs.h"

#define NOTIFY_CHUNK_MAX 10000 /**< keys per snap chunk */

typedef struct notify_core notify_core_t;

/*  Counters (n_subscribers and n_keys are gauges). */
typedef struct {
    uint64_t n_batches;            /**< batches of changed sums (= seq) */
    uint64_t n_changes;            /**< changed keys over all batches */
    uint64_t n_upd_out;            /**< upd messages queued */
    uint64_t n_snap_out;           /**< snap chunks queued to clients */
    uint64_t n_queries;            /**< query requests */
    uint64_t n_subs;               /**< sub requests */
    uint64_t n_pings;              /**< pings */
    uint64_t n_unsubs;             /**< unsubs */
    uint64_t n_expired;            /**< subscribers forgotten after silence */
    uint64_t n_refused;            /**< requests answered with error */
    uint64_t n_bad_client;         /**< malformed client messages */
    uint64_t n_bad_shard;          /**< malformed or unexpected shard messages */
    uint64_t n_drops;              /**< messages that could not be sent */
    uint64_t n_unauthenticated;    /**< secure mode: requests from a key not (or no longer)
                                        registered */
    uint64_t n_denied;             /**< queries and subs outside what the key may read */
    uint64_t n_revoked;            /**< subscribers forgotten because their key was removed */
    uint64_t n_handshake_failures; /**< CURVE handshakes that failed (the daemon counts) */
    size_t n_subscribers;          /**< live subscribers */
    size_t n_keys;                 /**< keys known */
} notify_stats_t;

/*  epoch: this instance's id (random, nonzero). Returns 0 or AMITY_ENOMEM. */
int notify_core_new(notify_core_t **out, size_t n_shards, size_t max_subscribers, uint64_t epoch);
void notify_core_destroy(notify_core_t **self_p);

/*  Queues a snapreq to every shard. */
int notify_core_start(notify_core_t *self, int64_t now_ms);

/*  A message from shard's SUB (totals) or DEALER (snap; rejects, and
 *  error for a rejected-records listing). Other types are counted as bad.
 *  Returns 0 or AMITY_ENOMEM (fatal). */
int notify_core_on_shard(notify_core_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms);

/*  Secure mode: every client request must come with a peer (its key's
 *  certificate), and reads only what the peer may (amity_auth_allows). */
void notify_core_set_secure(notify_core_t *self, bool secure);

/*  A decoded message from client rid, whose key is peer (NULL: development
 *  mode, or in secure mode a key not or no longer registered, which is
 *  refused): query, sub, ping, unsub or rejreq; anything else is refused
 *  with `error`. A rejreq from an office key lists that office's rejected
 *  records only, from an operator's key (prefixes "*") any; other keys are
 *  refused. A query, or a sub whose every prefix, lies outside what peer
 *  may read is refused with `error` and nothing else; otherwise every key
 *  sent is one peer may read. Returns 0 or AMITY_ENOMEM (fatal). */
int notify_core_on_client_as(notify_core_t *self, const amity_peer_t *peer, const uint8_t *rid,
                             size_t rid_len, const amity_msg_t *m, int64_t now_ms);

/*  notify_core_on_client_as with no peer. */
int notify_core_on_client(notify_core_t *self, const uint8_t *rid, size_t rid_len,
                          const amity_msg_t *m, int64_t now_ms);

/*  After the certificates were reloaded (SIGHUP): forgets subscribers
 *  whose key is gone (lookup gives NULL) and applies the others' current
 *  prefixes. Returns 0 or AMITY_ENOMEM. */
int notify_core_revalidate(notify_core_t *self, notify_peer_fn lookup, void *arg);

/*  Replies `error` {req (when nonzero), why} to rid and counts a bad client
 *  message (the daemon calls it for undecodable input). */
int notify_core_client_error(notify_core_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
                             const char *why);

/*  Replies `error` to an undecodable request body: why is the decoder's
 *  reason, sent as is ("prefix: missing"), and req the body's own `req`
 *  when it has one (amity_msg_peek_req), whatever else is wrong with it.
 *  Counts a bad client message. Returns 0 or AMITY_ENOMEM. */
int notify_core_client_malformed(notify_core_t *self, const uint8_t *rid, size_t rid_len,
                                 const uint8_t *body, size_t body_len, const char *why);

/*  Names shard (its base endpoint) in the errors of rejected-records
 *  listings ("shard 1 (tcp://10.0.0.2:7720) did not answer ..."). */
void notify_core_set_shard_name(notify_core_t *self, size_t shard, const char *name);

/*  True when req is a rejected-records listing the core is gathering: a
 *  shard's `error` with this req is for notify_core_on_shard, not a
 *  snapshot refusal. */
bool notify_core_rejects_req(const notify_core_t *self, uint64_t req);

/*  Timers: shard silence and snapreq retries, subscriber expiry. */
int notify_core_tick(notify_core_t *self, int64_t now_ms);

/*  The earliest time notify_core_tick has work. */
int64_t notify_core_deadline(const notify_core_t *self);

/*  The pending messages; the caller sends them and then resets it. */
notify_outbox_t *notify_core_outbox(notify_core_t *self);

uint64_t notify_core_seq(const notify_core_t *self);
uint64_t notify_core_epoch(const notify_core_t *self);
notify_merge_t *notify_core_merge(notify_core_t *self);
/*  Counters, with the gauges refreshed; the daemon adds to n_drops. */
notify_stats_t *notify_core_stats(notify_core_t *self);

#endif
