/*  spool: an office's own durable queue of records, for links that come
 *  and go. Records are first written to a local LMDB environment (a
 *  directory) and committed to disk before amity_spool_commit returns, so
 *  a return of 0 means "safe": the program may forget them. A drain then
 *  sends them through libamity whenever ingest is reachable and removes
 *  each one, in a durable transaction, only once its verdict has arrived;
 *  rejected ones move to a list of their own, with the reason, for the
 *  office to read. Either side may crash or restart at any moment: a
 *  record still in the spool is simply sent again, and the server answers
 *  a resend with "duplicate" without counting it twice.
 *
 *  Layout (one LMDB environment, mode 0700): `pending` and `rejected`,
 *  keyed by an 8-byte big-endian sequence number that only grows, values
 *  msgpack maps {v, ts, src, rec, raw?, hdr?} (rejected adds id, why,
 *  rts); `meta` holds the last sequence number, lifetime counters and
 *  whom the spool belongs to ("office" or "key", see amity_spool_claim). A
 *  file `drain.lock` in the directory keeps two drains from running at
 *  once. Several processes may put records into one spool at the same time.
 *
 *  A spool belongs to one office: the records in it were read as that
 *  office's and must be sent as its own. The first put (through a claimed
 *  handle) or drain records the identity used, the office in development
 *  mode or the key's public key in secure mode, and every later put or
 *  drain with another identity is refused, naming both.
 *
 *  An amity_spool_t is single-threaded; open a directory once per process
 *  (LMDB's rule). Error codes are AMITY_E*.
 */
#ifndef AMITY_SPOOL_H
#define AMITY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/client.h"
#include "amity/err.h"
#include "amity/record.h"

#define AMITY_SPOOL_SOURCE_MAX 512 /**< bytes of a record's source kept ("FILE:LINE") */
#define AMITY_SPOOL_OWNER_MAX  80  /**< bytes of an owner as text ("office ID", "key Z85") */

typedef struct amity_spool amity_spool_t;

/*  Opens (creating) the spool in directory dir (created when missing).
 *  Returns 0, AMITY_EINVAL (not a spool: another format), AMITY_EIO,
 *  AMITY_ENOMEM. */
int amity_spool_open(amity_spool_t **out, const char *dir);

/*  Closes the spool. NULL-safe; sets *self_p to NULL. */
void amity_spool_destroy(amity_spool_t **self_p);

/*  Ties this handle to the identity opts sends records as: the public key
 *  of the certificate opts->key in secure mode, else the office
 *  opts->office (development mode); neither: no identity. From then on
 *  amity_spool_commit and amity_spool_put record it in the spool when the
 *  spool has none yet, and refuse (AMITY_EINVAL, nothing written) when the
 *  spool belongs to another. A handle never claimed puts records without
 *  checking (amity_spool_drain checks its own opts in any case). Checks
 *  the spool now, so that a program can refuse before reading any input.
 *  Returns 0; AMITY_EINVAL with why (may be NULL) set when the spool
 *  belongs to another identity ("spool DIR belongs to office a, not office
 *  b"; no identity counts as another one once the spool has one) or the
 *  key file cannot be read; AMITY_EIO. */
int amity_spool_claim(amity_spool_t *self, const amity_client_opts_t *opts, char *why,
                      size_t why_len);

/*  ------------------------------------------------------------------
 *  Putting records in
 */

/*  One record to spool: either its fields or its msgpack encoding (as
 *  amity_json_record produces), plus what the office will want to see if
 *  it is rejected. Everything is borrowed for the call. */
typedef struct {
    const amity_fields_t *fields; /**< the record, or NULL when rec is set */
    const uint8_t *rec;           /**< the record encoded as a msgpack map */
    size_t rec_len;               /**< bytes in rec */
    const char *source;           /**< where it came from, "FILE:LINE" (NULL: none) */
    const char *raw;              /**< its original text, to rewrite a rejected one (NULL: none) */
    size_t raw_len;               /**< bytes in raw */
    const char *header;           /**< CSV: the header row raw was read under (NULL: none) */
    size_t header_len;            /**< bytes in header */
} amity_spool_item_t;

/*  Records gathered in memory to be committed together (one disk sync
 *  for many records). Nothing in a batch is safe before amity_spool_commit
 *  returned 0. */
typedef struct amity_spool_batch amity_spool_batch_t;

/*  Returns 0 or AMITY_ENOMEM. */
int amity_spool_batch_new(amity_spool_batch_t **out);
/*  NULL-safe; sets *self_p to NULL. Records not committed are dropped. */
void amity_spool_batch_destroy(amity_spool_batch_t **self_p);

/*  Copies item into the batch. Returns 0; AMITY_EINVAL when the record
 *  cannot be encoded (a nested value) or is larger than
 *  AMITY_CLIENT_REC_MAX bytes encoded, or rec is not one msgpack map
 *  (nothing is added); AMITY_ENOMEM. */
int amity_spool_batch_add(amity_spool_batch_t *self, const amity_spool_item_t *item);

/*  Records in the batch, and their bytes as they will be stored. */
size_t amity_spool_batch_count(const amity_spool_batch_t *self);
size_t amity_spool_batch_bytes(const amity_spool_batch_t *self);

/*  Writes every record of batch to the spool in one transaction, durably
 *  committed (fsync) before it returns, and empties the batch. Records get
 *  consecutive sequence numbers; *first_seq (may be NULL) gets the first.
 *  All or nothing: on failure nothing was written and the batch is kept.
 *  Returns 0, AMITY_EINVAL (claimed handle: the spool belongs to another
 *  identity, logged naming both), AMITY_EFULL (disk or map limit),
 *  AMITY_EIO, AMITY_ENOMEM. */
int amity_spool_commit(amity_spool_t *self, amity_spool_batch_t *batch, uint64_t *first_seq);

/*  Spools one record durably (a batch of one). source may be NULL.
 *  Returns as amity_spool_batch_add and amity_spool_commit. */
int amity_spool_put(amity_spool_t *self, const amity_fields_t *rec, const char *source,
                    uint64_t *seq);

/*  ------------------------------------------------------------------
 *  Reading what is in it
 */

typedef struct {
    uint64_t pending;       /**< records waiting for their verdict */
    uint64_t rejected;      /**< rejected records kept for the office */
    int64_t oldest_ms;      /**< wall-clock ms the oldest pending record was spooled (0: none) */
    uint64_t spooled;       /**< records ever put in (the last sequence number) */
    uint64_t accepted;      /**< verdicts ever recorded: accepted */
    uint64_t duplicate;     /**< ... duplicate */
    uint64_t rejected_ever; /**< ... rejected (some may since have been cleared) */
    char owner[AMITY_SPOOL_OWNER_MAX]; /**< whom it belongs to, "office ID" or "key Z85"
                                            ("" before its first use) */
} amity_spool_status_t;

/*  Returns 0, AMITY_EIO. */
int amity_spool_status(amity_spool_t *self, amity_spool_status_t *out);

/*  One spooled record, lent to a callback for the call only. */
typedef struct {
    uint64_t seq;          /**< its sequence number */
    int64_t spooled_ms;    /**< wall-clock ms it was spooled */
    const char *source;    /**< "FILE:LINE" given when it was put ("" when none) */
    const char *id;        /**< the record's id ("-" when it has no string id) */
    const uint8_t *rec;    /**< the record (msgpack) */
    size_t rec_len;        /**< bytes in rec */
    const char *raw;       /**< its original text (NULL when none was given) */
    size_t raw_len;        /**< bytes in raw */
    const char *header;    /**< the CSV header it was read under (NULL when none) */
    size_t header_len;     /**< bytes in header */
    amity_status_t status; /**< verdicts: ACCEPTED, DUPLICATE or REJECTED; 0 when pending */
    const char *why;       /**< rejected: the reason ("" otherwise) */
    int64_t verdict_ms;    /**< rejected list: wall-clock ms of the verdict (0 otherwise) */
} amity_spool_entry_t;

/*  Returns 0 to go on, non-zero to stop the walk (that value is returned). */
typedef int (*amity_spool_entry_fn)(void *arg, const amity_spool_entry_t *e);

/*  Calls cb for up to max (0: all) pending records with a sequence
 *  number above after, in sequence order. Returns 0, cb's non-zero value,
 *  AMITY_EIO, AMITY_ENOMEM. */
int amity_spool_pending(amity_spool_t *self, uint64_t after, size_t max, amity_spool_entry_fn cb,
                        void *arg);

/*  Calls cb for every rejected record, in sequence order. Returns as
 *  amity_spool_pending. */
int amity_spool_rejected(amity_spool_t *self, amity_spool_entry_fn cb, void *arg);

/*  Removes rejected records up to sequence number upto (UINT64_MAX: all),
 *  durably; *n_removed (may be NULL) gets how many. Returns 0, AMITY_EIO. */
int amity_spool_rejected_clear(amity_spool_t *self, uint64_t upto, uint64_t *n_removed);

/*  ------------------------------------------------------------------
 *  Verdicts
 */

/*  A verdict on one spooled record. */
typedef struct {
    uint64_t seq;          /**< the record's sequence number */
    amity_status_t status; /**< ACCEPTED, DUPLICATE or REJECTED */
    const char *why;       /**< the reason when rejected (NULL or "" otherwise) */
} amity_spool_outcome_t;

/*  Records outcomes[0..n) in one durable transaction: each record leaves
 *  `pending`; a rejected one moves to `rejected` with its reason. After
 *  the commit, cb (may be NULL) is called once per record that was still
 *  pending, with status and why set. Outcomes for records no longer
 *  pending (settled by someone else) are skipped. This is what the drain
 *  does with the verdicts it gets; it is public for programs that deliver
 *  records by other means. Returns 0, AMITY_EIO, AMITY_ENOMEM. */
int amity_spool_settle(amity_spool_t *self, const amity_spool_outcome_t *outcomes, size_t n,
                       amity_spool_entry_fn cb, void *arg);

/*  ------------------------------------------------------------------
 *  Draining
 */

typedef struct {
    uint64_t sent;               /**< records handed to the client (first sends) */
    uint64_t accepted;           /**< verdicts recorded in this drain: accepted */
    uint64_t duplicate;          /**< ... duplicate */
    uint64_t rejected;           /**< ... rejected (moved to the rejected list) */
    uint64_t replies;            /**< messages heard from ingest */
    uint64_t resends;            /**< records the client sent again after a timeout */
    uint64_t pending;            /**< records left pending when the drain returned */
    bool busy;                   /**< another process was draining this spool */
    bool not_ours;               /**< the spool belongs to another identity (refused says
                                      which; nothing was sent) */
    char refused[AMITY_WHY_MAX]; /**< why ingest refused our messages, or why the spool is
                                      not ours ("" when neither) */
} amity_spool_drain_stats_t;

typedef struct {
    amity_spool_entry_fn on_verdict; /**< after each durable record of a verdict (may be NULL) */
    /** about every 100 ms while draining, for progress reports (may be NULL) */
    void (*on_tick)(void *arg, const amity_spool_drain_stats_t *st);
    void *arg; /**< for both */
} amity_spool_drain_cb_t;

/*  Sends every pending record (and those put while it runs, by this or
 *  another process) through a client made from opts, first checking that
 *  the spool belongs to the identity opts sends as (recording it when the
 *  spool has none yet: see amity_spool_claim), records each verdict
 *  durably (amity_spool_settle, in batches) and returns when nothing is
 *  pending. The records' sequence numbers are the client's tags. On any
 *  return the verdicts received so far are recorded; records without one
 *  stay pending, to be sent again by a later drain.
 *  Returns 0 (the spool is empty); AMITY_EAGAIN when the client's
 *  deadline passed (nothing heard from ingest for opts->deadline_ms while
 *  records were in flight: unreachable or stalled), or when another
 *  process holds the drain lock (stats->busy); AMITY_EINVAL when the
 *  spool belongs to another identity (stats->not_ours, stats->refused
 *  naming both; nothing sent) or ingest refused our messages
 *  (stats->refused: no office, an unregistered key; the records stay
 *  pending); AMITY_ETERM when interrupted
 *  (amity_spool_interrupt); AMITY_EIO, AMITY_ENOMEM. cb and stats may be
 *  NULL. */
int amity_spool_drain(amity_spool_t *self, const amity_client_opts_t *opts,
                      const amity_spool_drain_cb_t *cb, amity_spool_drain_stats_t *stats);

/*  Makes the running (or else the next) drain return AMITY_ETERM soon
 *  (within about 100 ms), after recording the verdicts it has. Safe to
 *  call from a signal handler. */
void amity_spool_interrupt(amity_spool_t *self);

#endif
