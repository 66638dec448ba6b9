/*  merge: notify's view of the aggregate shards. Keeps every totals key's
 *  partial value per shard and their sum, and runs each shard's sync state
 *  machine (the Clone pattern's client side): SYNCING (snapshot requested,
 *  live `totals` buffered) -> LIVE (each `totals` must continue the seq) ->
 *  back to SYNCING on a gap, a reset or 3 s of silence.
 *
 *  No sockets: snapshot requests and batches of changed sums go to a sink.
 *  Times are monotonic milliseconds passed in by the caller.
 */
#ifndef NOTIFY_MERGE_H
#define NOTIFY_MERGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/map.h"
#include "amity/proto.h"

#define NOTIFY_SILENCE_MS    3000 /**< a shard silent this long is resynced */
#define NOTIFY_SNAP_RETRY_MS 3000 /**< a snapreq unanswered this long is sent again */
#define NOTIFY_PENDING_MAX   4096 /**< totals buffered per shard while syncing */
#define NOTIFY_PENDING_BYTES ((size_t)64 * 1024 * 1024) /**< ... and their bytes */

typedef struct notify_merge notify_merge_t;

/*  Where the merge sends its effects; called synchronously from the
 *  notify_merge_* functions. */
typedef struct {
    /*  Send `snapreq` {req, prefix ""} to shard. */
    int (*snapreq)(void *arg, size_t shard, uint64_t req);
    /*  One batch of changed merged sums (n >= 1; key views and the array
     *  are borrowed until the callback returns). Returns 0 or AMITY_E*. */
    int (*changes)(void *arg, const amity_kv_t *kv, size_t n);
    void *arg;
} notify_merge_sink_t;

/*  Per-shard counters. */
typedef struct {
    uint64_t n_totals;    /**< totals messages received */
    uint64_t n_applied;   /**< totals messages applied (live or buffered) */
    uint64_t n_snaps;     /**< snapshots installed */
    uint64_t n_snapreqs;  /**< snapshot requests issued (any reason) */
    uint64_t n_resyncs;   /**< resyncs: gap, reset, silence, overflow */
    uint64_t n_stale;     /**< snap chunks for an old request, ignored */
    uint64_t n_overflows; /**< buffer overflows while syncing */
} notify_shard_stats_t;

/*  n_shards >= 1; the sink is copied. Returns 0 or AMITY_ENOMEM. */
int notify_merge_new(notify_merge_t **out, size_t n_shards, const notify_merge_sink_t *sink);
void notify_merge_destroy(notify_merge_t **self_p);

/*  Requests every shard's snapshot (all shards SYNCING). Returns 0 or what
 *  the sink returned. */
int notify_merge_start(notify_merge_t *self, int64_t now_ms);

/*  A `totals` message from shard's SUB. Buffers it (SYNCING), applies it
 *  (LIVE, in sequence) or resyncs the shard. Returns 0, AMITY_ENOMEM or a
 *  sink error. */
int notify_merge_on_totals(notify_merge_t *self, size_t shard, const amity_msg_t *m,
                           int64_t now_ms);

/*  A `snap` chunk from shard's DEALER. Chunks of the outstanding request
 *  are accumulated; the last one (more = false) installs the snapshot,
 *  then the buffered totals. Others are counted as stale and ignored. */
int notify_merge_on_snap(notify_merge_t *self, size_t shard, const amity_msg_t *m, int64_t now_ms);

/*  Timers: resyncs silent shards and re-sends unanswered snapreqs. */
int notify_merge_tick(notify_merge_t *self, int64_t now_ms);

/*  The earliest time at which notify_merge_tick has work. */
int64_t notify_merge_deadline(const notify_merge_t *self);

size_t notify_merge_n_shards(const notify_merge_t *self);
bool notify_merge_live(const notify_merge_t *self, size_t shard);
uint64_t notify_merge_last_seq(const notify_merge_t *self, size_t shard);
const notify_shard_stats_t *notify_merge_stats(const notify_merge_t *self, size_t shard);

/*  Number of keys known (including keys whose sum is 0). */
size_t notify_merge_n_keys(const notify_merge_t *self);

/*  The merged sum of key (and, when part is not NULL, shard's partial).
 *  Returns 0 or AMITY_ENOTFOUND. */
int notify_merge_get(const notify_merge_t *self, const void *key, size_t key_len, int64_t *sum,
                     size_t shard, int64_t *part);

/*  Iterates keys and sums in unspecified order: *pos = 0 to start; returns
 *  0 while entries remain, AMITY_ENOTFOUND at the end. The key is borrowed
 *  until the next change to the merge. */
int notify_merge_next(const notify_merge_t *self, size_t *pos, const char **key, size_t *key_len,
                      int64_t *sum);

#endif
