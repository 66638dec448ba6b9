/*  libamity: the one way into amity for offices and subscribers.
 *
 *  A client submits records to ingest and gets one verdict per record
 *  (accepted, duplicate, rejected with a reason). It keeps every record in
 *  flight until its verdict arrives and resends the same bytes after a
 *  timeout, so a crash anywhere downstream costs time, never a record (the
 *  server deduplicates). A subscription follows notify's snapshot + update
 *  protocol (docs/DESIGN.md) and hides resyncs from the caller; a query
 *  fetches the totals under a prefix once.
 *
 *  Every object is single-threaded: use it from one thread only.
 *  Error codes are the AMITY_E* values of amity/err.h.
 */
#ifndef AMITY_CLIENT_H
#define AMITY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/record.h"

#define AMITY_CLIENT_INGEST_DEFAULT   "tcp://127.0.0.1:7700"
#define AMITY_CLIENT_NOTIFY_DEFAULT   "tcp://127.0.0.1:7702"
#define AMITY_CLIENT_WINDOW_DEFAULT   4096
#define AMITY_CLIENT_BATCH_DEFAULT    256
#define AMITY_CLIENT_TIMEOUT_DEFAULT  3000   /**< ms before a record is resent */
#define AMITY_CLIENT_DEADLINE_DEFAULT 120000 /**< ms without any answer before giving up */
#define AMITY_CLIENT_REC_MAX          65536  /**< bytes in one encoded record */

/*  Options; fill with amity_client_opts_init, then change what you need.
 *  Strings are borrowed for the duration of the _new call (copied). */
typedef struct {
    const char *ingest;     /**< ingest endpoint (NULL: AMITY_CLIENT_INGEST_DEFAULT) */
    const char *notify;     /**< notify endpoint (NULL: AMITY_CLIENT_NOTIFY_DEFAULT) */
    const char *office;     /**< development mode: office to submit as (NULL/"": none) */
    size_t window;          /**< records in flight at most (0: default 4096) */
    size_t batch;           /**< records per submit message at most (0: default 256) */
    int timeout_ms;         /**< resend a record without a verdict after this (0: 3000) */
    int64_t deadline_ms;    /**< give up when records are in flight and nothing at all has
                                 been heard from ingest for this long (0: 120000) */
    const char *key;        /**< secure mode: our secret certificate file (NAME_secret from
                                 amity-keygen; NULL/"": development mode, no keys) */
    const char *server_key; /**< secure mode: the server's public certificate file (ingest's
                                 for submitting, notify's for queries and subscriptions) */
} amity_client_opts_t;

void amity_client_opts_init(amity_client_opts_t *opts);

/*  Checks opts' keys without connecting, as amity_client_new, amity_query
 *  and amity_sub_new will: key and server_key both set or neither, key a
 *  secret certificate, server_key a readable certificate. Logs what is
 *  wrong. Returns 0 (also with no keys: development mode) or AMITY_EINVAL.
 *  Programs call it while checking their configuration, so that a wrong
 *  key option is a usage error rather than a failure later. */
int amity_client_opts_check(const amity_client_opts_t *opts);

/*  ------------------------------------------------------------------
 *  Submitting records
 */

typedef enum {
    AMITY_STATUS_ACCEPTED = 1,  /**< counted */
    AMITY_STATUS_DUPLICATE = 2, /**< already counted (a resend, or a stale revision) */
    AMITY_STATUS_REJECTED = 3,  /**< not counted; why says which field broke which rule */
    AMITY_STATUS_ABANDONED = 4, /**< no verdict: the caller gave up (amity_client_abandon) */
} amity_status_t;

/*  The verdict on one record, lent to the callback for the call only. */
typedef struct {
    uint64_t tag; /**< the caller's tag given to amity_client_submit */
    amity_status_t status;
    const char *why; /**< reason ("" unless rejected or abandoned) */
    const char *id;  /**< the record's "id" field, "-" when it has no string id */
    bool local;      /**< decided by the client (ingest refused the message, the record
                          could not be encoded, or abandoned) */
} amity_verdict_info_t;

typedef void (*amity_verdict_fn)(void *arg, const amity_verdict_info_t *v);

typedef struct {
    uint64_t submitted; /**< records queued */
    uint64_t accepted;  /**< verdicts accepted */
    uint64_t duplicate; /**< verdicts duplicate */
    uint64_t rejected;  /**< verdicts rejected (server, ingest error, or by the client:
                             a JSON line that is no record) */
    uint64_t abandoned; /**< records given up without a verdict */
    uint64_t resends;   /**< records sent again after their timeout */
    uint64_t messages;  /**< submit messages sent (first sends and resends) */
    uint64_t replies;   /**< messages received from ingest (verdicts or errors) */
    uint64_t errors;    /**< error replies from ingest */
    uint64_t late;      /**< verdicts for records no longer in flight (ignored) */
    size_t in_flight;   /**< records queued or sent, without a verdict */
} amity_client_stats_t;

typedef struct amity_client amity_client_t;

/*  Creates a client connected (asynchronously: the DEALER reconnects by
 *  itself) to opts->ingest, over CURVE when opts->key and opts->server_key
 *  are set (then ingest attributes the records to the key's office, and
 *  opts->office, if given, must name that office). cb is called once per record with its verdict,
 *  from inside amity_client_submit/poll/flush/abandon. Returns 0,
 *  AMITY_EINVAL (bad options), AMITY_ENOMEM, AMITY_EIO. */
int amity_client_new(amity_client_t **out, const amity_client_opts_t *opts, amity_verdict_fn cb,
                     void *arg);

/*  Closes the socket and frees everything. Records still in flight are
 *  dropped without a callback (call amity_client_abandon first to report
 *  them). NULL-safe, sets *self_p to NULL. */
void amity_client_destroy(amity_client_t **self_p);

/*  Encodes rec (amity_fields_encode) and queues it under tag. Records are
 *  packed into submit messages of up to `batch` records. When `window`
 *  records are in flight it processes verdicts until there is room.
 *  Returns 0; AMITY_EINVAL when rec cannot be encoded (nested values) or
 *  exceeds AMITY_CLIENT_REC_MAX; AMITY_EAGAIN when the window stayed full
 *  until the deadline (nothing heard from ingest for deadline_ms);
 *  AMITY_ETERM when interrupted (see amity_client_interrupt); AMITY_EIO. */
int amity_client_submit(amity_client_t *self, const amity_fields_t *rec, uint64_t tag);

/*  Parses one JSON object (amity_json_record) and submits it. A line that
 *  cannot be turned into a record (malformed JSON, not an object, a nested
 *  value outside an x- field, too large once encoded) is rejected by the
 *  client itself: nothing is sent, and its verdict (REJECTED, local, why
 *  "json: ... (column N)" or "note: nested arrays and objects are allowed
 *  only in x- fields", id from amity_json_id, so the line's id when it has
 *  one) goes to the callback before this returns 0; why (may be NULL)
 *  gets the same reason. So every line gets exactly one verdict through
 *  the callback. Other returns as amity_client_submit. */
int amity_client_submit_json(amity_client_t *self, const char *json_line, size_t len, uint64_t tag,
                             char *why, size_t why_len);

/*  Sends what is queued, resends every record whose timeout passed (the
 *  same bytes), and handles verdicts arriving within timeout_ms (returns
 *  early once at least one reply was handled). Returns 0, AMITY_ETERM
 *  (interrupted), AMITY_EIO. */
int amity_client_poll(amity_client_t *self, int timeout_ms);

/*  As amity_client_poll, and also returns as soon as the file descriptor
 *  fd (the caller's input: a pipe, a terminal, a socket) is readable, at
 *  its end or in error, with *ready set true (false: it was not, within
 *  timeout_ms). A program reading records from a producer that may go
 *  quiet (`tail -f log | amity-submit -`) waits for its input here, so
 *  that verdicts are handled, queued records sent, resends made and the
 *  deadline (amity_client_stalled) checked meanwhile. Returns 0,
 *  AMITY_ETERM (interrupted), AMITY_EIO. */
int amity_client_poll_fd(amity_client_t *self, int fd, int timeout_ms, bool *ready);

/*  Polls until nothing is in flight. Returns 0; AMITY_EAGAIN when
 *  timeout_ms (-1: none) passed or the deadline hit first (records stay in
 *  flight); AMITY_ETERM when interrupted; AMITY_EIO. */
int amity_client_flush(amity_client_t *self, int timeout_ms);

/*  Reports every record still in flight to the callback as ABANDONED with
 *  reason why (NULL: "no verdict before the deadline") and forgets it.
 *  Late verdicts for them are then ignored. */
void amity_client_abandon(amity_client_t *self, const char *why);

/*  Makes the current or next submit/poll/flush return AMITY_ETERM soon
 *  (within about 100 ms). Safe to call from a signal handler. */
void amity_client_interrupt(amity_client_t *self);

/*  True when the deadline passed: records are in flight and nothing was
 *  heard from ingest for deadline_ms. */
bool amity_client_stalled(const amity_client_t *self);

void amity_client_stats(const amity_client_t *self, amity_client_stats_t *out);

/*  ------------------------------------------------------------------
 *  JSON records
 */

/*  Converts one JSON object into a record (a msgpack map, appended to out):
 *  JSON integers become unsigned/negative integers, reals floating-point
 *  numbers (the server rejects them with a clear reason), strings stay
 *  byte-for-byte, true/false booleans, null nil. A nested array or object
 *  in an "x-" field is serialised back to a compact JSON string; elsewhere
 *  it is an error. Field order is kept. Returns 0 or AMITY_EINVAL with why
 *  set ("json: '[' or '{' expected near 'x' (column 1)",
 *  "kind: nested arrays and objects are allowed only in x- fields"),
 *  AMITY_ENOMEM. */
int amity_json_record(const char *json, size_t len, amity_buf_t *out, char *why, size_t why_len);

/*  The id of a JSON record line, for reports such as amity-submit's
 *  `FILE:LINE: id: reason`, also when the line cannot be turned into a
 *  record: the object's "id" string (control bytes shown as '?', cut to
 *  AMITY_ID_MAX and to buf_len - 1 bytes), or "-" when the line is not a
 *  JSON object or has no non-empty string "id". buf_len >= 2. Returns buf. */
const char *amity_json_id(const char *json, size_t len, char *buf, size_t buf_len);

/*  ------------------------------------------------------------------
 *  Totals: queries and subscriptions
 */

/*  One total: key PERIOD/OFFICE/KIND/GEO/METRIC and its value (minor units
 *  for "amount.CUR" keys). Lent to callbacks for the call only. */
typedef struct {
    const char *key; /**< NUL-terminated */
    int64_t value;
} amity_total_t;

/*  Formats a total's value for people and JSON: a key ending in
 *  "amount.CUR" gives a decimal with the currency's decimals ("47425742.00",
 *  *quoted set true: JSON prints it as a string), a count an integer
 *  ("541", *quoted false). Returns the length written (buf >= 32 bytes). */
size_t amity_total_format(const char *key, int64_t value, char *buf, size_t buf_len, bool *quoted);

/*  Appends totals as one JSON object {"key":value,...} in the given order,
 *  values formatted by amity_total_format. spaced: ", " and ": " between
 *  items. Returns 0 or AMITY_ENOMEM. */
int amity_totals_json(const amity_total_t *t, size_t n, bool spaced, amity_buf_t *out);

/*  Calls cb for each total under prefix ("" for all) in key order, as one
 *  consistent snapshot from notify; *seq (may be NULL) gets the sequence it
 *  is valid at. Returns 0; AMITY_EAGAIN when notify did not answer within
 *  timeout_ms; AMITY_EINVAL when notify refused (why logged); AMITY_EIO;
 *  or the first non-zero value cb returns (stopping the walk). */
typedef int (*amity_total_fn)(void *arg, const amity_total_t *t);
int amity_query(const amity_client_opts_t *opts, const char *prefix, amity_total_fn cb, void *arg,
                uint64_t *seq, int timeout_ms);

typedef enum {
    AMITY_SUB_SNAPSHOT = 1, /**< a full picture: replace everything under the prefixes */
    AMITY_SUB_UPDATE = 2,   /**< changed keys only, absolute values */
} amity_sub_event_t;

/*  Called once per snapshot (after every (re)sync) and once per update;
 *  totals sorted by key, lent for the call only. */
typedef void (*amity_sub_fn)(void *arg, amity_sub_event_t ev, uint64_t seq,
                             const amity_total_t *totals, size_t n);

typedef struct amity_sub amity_sub_t;

/*  Subscribes to the totals under prefixes[0..n) (1..64 of them; "" is
 *  everything) at opts->notify. Nothing is delivered before the first
 *  amity_sub_poll. Returns 0, AMITY_EINVAL, AMITY_ENOMEM, AMITY_EIO. */
int amity_sub_new(amity_sub_t **out, const amity_client_opts_t *opts, const char *const *prefixes,
                  size_t n, amity_sub_fn cb, void *arg);

/*  Sends unsub (best effort), closes, frees. NULL-safe. */
void amity_sub_destroy(amity_sub_t **self_p);

/*  Runs the subscription for up to timeout_ms: receives snapshots and
 *  updates, pings every second, resyncs on a gap (prev mismatch, pong seq
 *  mismatch, epoch change, error, silence over 3 s). Returns early when
 *  interrupted by a signal (EINTR) with 0. Returns 0 or AMITY_EIO. */
int amity_sub_poll(amity_sub_t *self, int timeout_ms);

/*  Number of (re)syncs so far (the first snapshot counts as 1). */
uint64_t amity_sub_syncs(const amity_sub_t *self);

/*  ------------------------------------------------------------------
 *  Rejected records: what the shards kept of every record they did not
 *  count, listed for the operator (every office) and for an office (its
 *  own)
 */

/*  One kept rejected record, lent to the callback for the call only. */
typedef struct {
    const char *office; /**< the office that sent it */
    const char *id;     /**< the record's id ("" when it had no string id) */
    const char *why;    /**< the reason: the field and the rule it broke */
    int64_t ts_ms;      /**< when it was rejected: ms since 1970-01-01 UTC */
    const uint8_t *rec; /**< the record's original bytes (msgpack), as the office sent them
                             (cut to its first 65536 bytes) */
    size_t rec_len;     /**< their length */
} amity_reject_t;

/*  Returns 0 to go on, non-zero to stop the walk (returned by amity_rejects). */
typedef int (*amity_reject_fn)(void *arg, const amity_reject_t *r);

/*  Calls cb for every rejected record the shards keep, oldest first, of
 *  office only (office_or_NULL; NULL or "": every office). With keys
 *  (opts->key, opts->server_key) notify decides: an office's key lists its
 *  own office's records only (office_or_NULL, if given, must name it), an
 *  operator's key (certificate prefixes "*") any office's; in development
 *  mode anyone on loopback lists all. Returns 0; AMITY_EAGAIN when notify
 *  did not answer within timeout_ms (-1: 5000); AMITY_EINVAL when notify
 *  refused (a shard unreachable, a key not allowed: why logged at error);
 *  AMITY_ENOMEM; AMITY_EIO; or the first non-zero value cb returns. */
int amity_rejects(const amity_client_opts_t *opts, const char *office_or_NULL, amity_reject_fn cb,
                  void *arg, int timeout_ms);

/*  Appends r as one JSON object (no newline): {"office", "id", "why",
 *  "time": ISO-8601 UTC with milliseconds, "record": the original record
 *  as a JSON object when it is a msgpack map of scalars (strings byte for
 *  byte), else a string with the base64 of its bytes}. Text that is not
 *  UTF-8 is shown with \xHH escapes. Returns 0 or AMITY_ENOMEM. */
int amity_reject_json(const amity_reject_t *r, amity_buf_t *out);

/*  Writes ms (since 1970-01-01 UTC) as "2024-05-01T10:20:30.123Z" into buf
 *  (buf_len >= 25; "" when it does not fit). Returns the length written. */
size_t amity_time_iso(int64_t ms, char *buf, size_t buf_len);

#endif
