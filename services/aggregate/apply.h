/*  aggregate/apply: the shard's state and the pure batch logic, no sockets.
 *  A batch of checked records (and validator rejections) is applied in ONE
 *  LMDB write transaction: records are kept per (office, id) at their
 *  highest rev, deltas are coalesced per FINEST totals key in memory, each
 *  changed finest key is written once, and the shard's seq moves by one.
 *  Every published key (DOMAIN.md "Totals") is a sum of finest keys: the
 *  shard holds them all in memory, rolled up from LMDB at open and moved by
 *  each batch's rolled-up deltas after its commit, and serves snapshots
 *  from there. The daemon (aggregate.c) publishes verdicts and totals from
 *  the result only after the commit succeeded.
 *
 *  LMDB layout (one environment per shard, DESIGN.md "Aggregate"):
 *    records  office "\0" id                  -> canonical record bytes
 *    totals   finest key (amity_keys_finest)  -> int64, 8 bytes big-endian (0 = absent)
 *    rejects  office "\0" BE64(ms) BE32(n)    -> msgpack {v,id,why,ts,rec(bin)}
 *    meta     "seq" -> BE64, "format" -> BE64 2
 *  Format 1 stored every published key in totals; such a store is migrated
 *  when it opens (finest totals recomputed from the records).
 */
#ifndef AMITY_AGGREGATE_APPLY_H
#define AMITY_AGGREGATE_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/proto.h"
#include "amity/store.h"

/*  Database handles of the shard's store (indexes into its opts.dbs). */
enum { AGGREGATE_DB_RECORDS = 0, AGGREGATE_DB_TOTALS, AGGREGATE_DB_REJECTS, AGGREGATE_DB_META };

#define AGGREGATE_FORMAT     2     /**< meta "format" this code reads and writes (1 is migrated) */
#define AGGREGATE_SNAP_CHUNK 10000 /**< keys in one snap chunk */

/*  A commit publishes all its changed totals in ONE totals message (notify
 *  relies on seq moving by exactly one per non-empty message), so a batch
 *  stops taking records once this many distinct keys changed; the rest is
 *  applied by the next commit. Keeps the message far below AMITY_MSG_MAX. */
#define AGGREGATE_KV_PER_COMMIT       32768
#define AGGREGATE_KV_BYTES_PER_COMMIT ((size_t)3 * 1024 * 1024)

typedef struct aggregate_db aggregate_db_t;

/*  One pending item of an apply message, borrowed by the batch function. */
typedef struct {
    const char *office; /**< NUL-terminated sending office (the apply message's) */
    amity_view_t ing;   /**< ingest instance id: the verdict's topic */
    amity_view_t conn;  /**< the client's routing id */
    uint64_t tag;       /**< the client's tag, echoed in the verdict */
    bool ok;            /**< passed validation: rec is canonical */
    amity_view_t rec;   /**< canonical record (ok) or the original bytes */
    amity_view_t why;   /**< the validator's reason when !ok */
} aggregate_item_t;

/*  The verdict of one item. */
typedef struct {
    amity_verdict_status_t status;
    amity_view_t why; /**< reason when rejected (else empty); valid until the next batch */
} aggregate_verdict_t;

/*  What one committed batch did; owned by the db, valid until the next
 *  aggregate_apply_batch call. */
typedef struct {
    size_t n_done;                 /**< items applied: items[0 .. n_done) */
    aggregate_verdict_t *verdicts; /**< n_done verdicts, parallel to the items */
    uint64_t seq;                  /**< the shard's seq after the commit */
    size_t n_kv;                   /**< changed published totals (seq moved if n_kv > 0, or
                                        if n_finest > 0: after an int64 overflow) */
    amity_kv_t *kv;                /**< their new absolute values, in no particular order */
    size_t n_finest;               /**< finest totals written to LMDB */
    size_t n_accepted;             /**< verdicts accepted */
    size_t n_duplicate;            /**< verdicts duplicate (resends and stale revs) */
    size_t n_rejected;             /**< verdicts rejected (conflicts included) */
    size_t n_conflicts;            /**< same rev, other content */
    size_t n_records_written;      /**< puts into records */
    size_t n_rejects_written;      /**< puts into rejects */
} aggregate_result_t;

/*  Opens (creating) the shard's LMDB environment in dir (parents created),
 *  checks meta "format" (writes it on a new store, migrates format 1),
 *  reads seq and rolls every stored finest total up into the in-memory
 *  published totals (one read transaction). map_size 0 = the store's
 *  default. Returns 0, AMITY_EINVAL (a store of another format),
 *  AMITY_ENOMEM, AMITY_EIO; logged. */
int aggregate_db_open(aggregate_db_t **out, const char *dir, size_t map_size, bool no_sync);
void aggregate_db_destroy(aggregate_db_t **self_p);

/*  The last committed seq (0 for a new store). */
uint64_t aggregate_db_seq(const aggregate_db_t *self);

/*  The underlying store (borrowed; for tests and statistics). */
amity_store_t *aggregate_db_store(aggregate_db_t *self);

/*  The committed total of a published key (len bytes) into *out: 0 and the
 *  value, or AMITY_ENOTFOUND with *out = 0 (absent, or back to 0). */
int aggregate_db_total(const aggregate_db_t *self, const char *key, size_t key_len, int64_t *out);

/*  Published keys held in memory (keys back at 0 included). */
size_t aggregate_db_n_totals(const aggregate_db_t *self);

/*  Applies items[0 .. n) in arrival order in ONE write transaction and
 *  commits it durably (DESIGN.md rules: new id -> stored, accepted; lower
 *  rev -> duplicate; same rev, same bytes -> duplicate; same rev, other
 *  bytes -> rejected (conflict) and kept in rejects; higher rev -> old
 *  contribution out, new in, accepted; !ok -> kept in rejects, rejected).
 *  May stop early to keep one commit's changed keys within
 *  AGGREGATE_KV_PER_COMMIT: result->n_done says how many were applied
 *  (at least one when n > 0); the caller applies the rest next.
 *  On success *out describes the commit, and the in-memory totals include
 *  it. On failure no verdict may be sent; nothing was committed, except
 *  with AMITY_EIO after a commit the in-memory totals could not follow
 *  (out of memory): the db then refuses every further batch and must be
 *  reopened. Returns 0, AMITY_ENOMEM, AMITY_EFULL (the map cannot grow),
 *  AMITY_EIO (the store is unusable). */
int aggregate_apply_batch(aggregate_db_t *self, const aggregate_item_t *items, size_t n,
                          const aggregate_result_t **out);

/*  Called once per snapshot chunk: kv[0 .. n_kv) (lent for the call),
 *  all chunks with the same seq; more is false on the last one. Return 0
 *  to go on, negative to stop (returned by aggregate_db_snapshot). */
typedef int (*aggregate_chunk_fn)(uint64_t seq, const amity_kv_t *kv, size_t n_kv, bool more,
                                  void *arg);

/*  Hands seq and every non-zero published total whose key starts with
 *  prefix to cb in key order (bytes, then length), in chunks of at most
 *  chunk_max keys (0 = AGGREGATE_SNAP_CHUNK), from the in-memory totals:
 *  all at the last committed seq (cb must not apply a batch). There is
 *  always at least one chunk (possibly empty). Returns 0, cb's code,
 *  AMITY_ENOMEM. */
int aggregate_db_snapshot(aggregate_db_t *self, const void *prefix, size_t prefix_len,
                          size_t chunk_max, aggregate_chunk_fn cb, void *arg);

/*  A page of kept rejections stops growing past this many bytes (at least
 *  one item): pages travel in one message to notify. */
#define AGGREGATE_REJECTS_PAGE_BYTES ((size_t)1024 * 1024)

/*  One page of the rejects database, owned by the db and valid until the
 *  next aggregate_db_rejects call. */
typedef struct {
    size_t n_items;             /**< kept rejections in this page */
    amity_reject_item_t *items; /**< office, id, why, ts, rec (views into the db's page memory;
                                     a record longer than AMITY_REJECT_REC_MAX is cut to it) */
    bool more;                  /**< further rejections follow `next` */
    amity_view_t next;          /**< key of the last entry scanned, to resume after (ptr NULL
                                     when the page scanned nothing) */
} aggregate_rejects_page_t;

/*  Reads one page of the rejects database inside ONE read transaction: the
 *  entries under office "\0" (every office when office_len is 0) that come
 *  after the key `after` (from the first when after_len is 0), in key order
 *  (per office, by time), at most limit entries (0 or more than
 *  AMITY_REJECTS_MAX: AMITY_REJECTS_MAX) and about
 *  AGGREGATE_REJECTS_PAGE_BYTES. An entry whose value does not decode is
 *  skipped (logged) but still moves `next`. Returns 0 with *out set,
 *  AMITY_EINVAL (office is not a valid office id), AMITY_ENOMEM, AMITY_EIO. */
int aggregate_db_rejects(aggregate_db_t *self, const char *office, size_t office_len,
                         const void *after, size_t after_len, size_t limit,
                         const aggregate_rejects_page_t **out);

/*  Encodes v as 8 bytes big-endian two's complement / decodes them. */
void aggregate_be64_put(uint8_t out[8], uint64_t v);
uint64_t aggregate_be64_get(const uint8_t in[8]);

#endif
