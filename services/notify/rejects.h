/*  rejects: notify's side of listing the rejected records the shards keep
 *  (DESIGN.md "Aggregate", the `rejects` database). A client's `rejreq`,
 *  authorised by the core, becomes one paged `rejreq` per shard: each
 *  `rejects` page with more = true is followed by a `rejreq` after its
 *  `next`. When every shard has sent its last page, the items are sorted by
 *  time and go to the client as `rejects` chunks; a shard that refuses, or
 *  stays silent for NOTIFY_REJECTS_TIMEOUT_MS, ends the request with an
 *  `error` naming it. No sockets: messages go to the core's outbox.
 */
#ifndef NOTIFY_REJECTS_H
#define NOTIFY_REJECTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/proto.h"
#include "outbox.h"

#define NOTIFY_REJECTS_TIMEOUT_MS  3000   /**< a shard silent this long fails the request */
#define NOTIFY_REJECTS_PENDING_MAX 16     /**< client requests gathered at once */
#define NOTIFY_REJECTS_ITEMS_MAX   100000 /**< items gathered for one request */
#define NOTIFY_REJECTS_BYTES_MAX   ((size_t)64 * 1024 * 1024) /**< ... and their bytes */
#define NOTIFY_REJECTS_CHUNK_BYTES ((size_t)1024 * 1024)      /**< a reply chunk stops past this */
/*  Request ids sent to the shards start here, far above the merge's
 *  snapreq ids, so a shard's `error` tells whose request it refuses. */
#define NOTIFY_REJECTS_REQ_BASE (UINT64_C(1) << 48)

typedef struct notify_rejects notify_rejects_t;

/*  Counters. */
typedef struct {
    uint64_t n_requests; /**< client requests started */
    uint64_t n_served;   /**< requests answered with every shard's records */
    uint64_t n_failed;   /**< requests ended by a refusal, a timeout or a limit */
    uint64_t n_busy;     /**< requests refused: NOTIFY_REJECTS_PENDING_MAX running */
    uint64_t n_pages;    /**< pages received from shards */
    uint64_t n_stale;    /**< pages or errors for a request no longer running */
} notify_rejects_stats_t;

/*  out (borrowed, the core's) receives every message. Returns 0 or
 *  AMITY_ENOMEM. */
int notify_rejects_new(notify_rejects_t **out, size_t n_shards, notify_outbox_t *outbox);
void notify_rejects_destroy(notify_rejects_t **self_p);

/*  Names shard (its base endpoint) in error messages; copied, cut to fit. */
void notify_rejects_set_shard_name(notify_rejects_t *self, size_t shard, const char *name);

/*  Starts an authorised client request: rid (copied), its req (echoed),
 *  office (NULL or empty: every office; else a valid office id), limit
 *  (items per reply chunk; 0 or above AMITY_REJECTS_MAX: that maximum).
 *  When NOTIFY_REJECTS_PENDING_MAX requests run, replies `error`.
 *  Returns 0 or AMITY_ENOMEM. */
int notify_rejects_start(notify_rejects_t *self, const uint8_t *rid, size_t rid_len, uint64_t req,
                         amity_view_t office, uint64_t limit, int64_t now_ms);

/*  True when req is the id of a running request (a shard's `error` for it
 *  belongs here). */
bool notify_rejects_owns(const notify_rejects_t *self, uint64_t req);

/*  A `rejects` page or an `error` from shard's DEALER. Returns 0 or
 *  AMITY_ENOMEM. */
int notify_rejects_on_shard(notify_rejects_t *self, size_t shard, const amity_msg_t *m,
                            int64_t now_ms);

/*  Ends the requests a shard has left unanswered too long. Returns 0 or
 *  AMITY_ENOMEM. */
int notify_rejects_tick(notify_rejects_t *self, int64_t now_ms);

/*  The earliest time notify_rejects_tick has work (INT64_MAX: none). */
int64_t notify_rejects_deadline(const notify_rejects_t *self);

const notify_rejects_stats_t *notify_rejects_stats(const notify_rejects_t *self);

#endif
