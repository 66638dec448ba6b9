/*  proto: amity's wire format, defined once. Every message daemons and
 *  clients exchange is one msgpack map with string keys, "v" (version) and
 *  "t" (type); proto/PROTOCOL.md is the normative description. This is the
 *  only module that includes <msgpack.h>.
 *
 *  Decoding never trusts a length claim: amity_scan walks the bytes first,
 *  checking every container count and string length against the bytes that
 *  remain, the nesting depth, and that exactly one object fills the buffer.
 *  Only then are the bytes read, by proto's own typed reader (so views can
 *  point into the caller's buffer, and item.rec is the record's exact
 *  bytes); msgpack-c is the encoder.
 */
#ifndef AMITY_PROTO_H
#define AMITY_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"
#include "amity/record.h"

#define AMITY_PROTO_VERSION 1
#define AMITY_DEPTH_MAX     16      /**< nesting depth of any message */
#define AMITY_ITEMS_MAX     8192    /**< records / verdicts in one message */
#define AMITY_KV_MAX        65536   /**< totals in one message */
#define AMITY_PREFIXES_MAX  64      /**< prefixes in one subscription */
#define AMITY_STR_MAX       4096    /**< bytes in any envelope string (not records) */
#define AMITY_REJECTS_MAX   1000    /**< items in one rejects message; largest rejreq limit */
#define AMITY_REJECT_REC_MAX 65536  /**< bytes of a kept record in a rejects item */

/*  A borrowed byte range, NOT NUL-terminated; valid while the decoded
 *  buffer lives. */
typedef struct {
    const uint8_t *ptr;
    size_t len;
} amity_view_t;

/*  Checks that buf holds exactly one well-formed msgpack object, with every
 *  length claim within the buffer and nesting <= max_depth. Returns 0 or
 *  AMITY_EPROTO with why ("truncated", "trailing bytes", "str32 length
 *  4294967295 exceeds the 3 bytes left", ...). */
int amity_scan(const uint8_t *buf, size_t len, int max_depth, char *why, size_t why_len);

/*  Decodes one record (one msgpack object, normally a map) into its
 *  top-level fields (views into buf). Runs amity_scan first. Errors name
 *  what is wrong: "record: not a map", "record: field name is not a
 *  string", "id: given twice", "record: more than 64 fields".
 *  Returns 0 or AMITY_EPROTO. */
int amity_fields_decode(const uint8_t *buf, size_t len, amity_fields_t *out, char *why,
                        size_t why_len);

/*  Encodes a field list as a msgpack map (clients building records from
 *  JSON/CSV). ARRAY/MAP/EXT values cannot be encoded (AMITY_EINVAL). */
int amity_fields_encode(const amity_fields_t *f, amity_buf_t *out);

/*  The canonical encoding of a checked record: a map with fields in a fixed
 *  order, absent fields omitted, amount as a decimal string with exactly
 *  the currency's decimals ("12.50" USD: minor units, exactly) plus
 *  currency. Equal records encode to equal bytes. Appends to out. Returns
 *  0, AMITY_EINVAL (a struct validation cannot produce), AMITY_ENOMEM. */
int amity_record_encode(const amity_record_t *rec, amity_buf_t *out);

/*  Decodes a canonical record (as stored by aggregate) into rec:
 *  amity_fields_decode + amity_record_validate without the office and date
 *  limits. Returns 0 or AMITY_EPROTO with why; rec is zeroed on failure. */
int amity_record_decode(const uint8_t *buf, size_t len, amity_record_t *rec, char *why,
                        size_t why_len);

typedef enum {
    AMITY_MSG_NONE = 0,
    AMITY_MSG_SUBMIT,   /**< client -> ingest: records to count */
    AMITY_MSG_WORK,     /**< ingest -> validate: records with their sender */
    AMITY_MSG_APPLY,    /**< validate -> aggregate shard: checked records and rejections */
    AMITY_MSG_VERDICTS, /**< aggregate -> ingest -> client: one verdict per record */
    AMITY_MSG_TOTALS,   /**< aggregate -> notify: changed partial totals after a commit */
    AMITY_MSG_SNAPREQ,  /**< notify -> aggregate: snapshot request */
    AMITY_MSG_SNAP,     /**< reply to snapreq / query / sub: totals at a sequence, chunked */
    AMITY_MSG_QUERY,    /**< client -> notify: totals under a prefix, once */
    AMITY_MSG_SUB,      /**< client -> notify: subscribe to prefixes */
    AMITY_MSG_UPD,      /**< notify -> subscriber: changed totals */
    AMITY_MSG_PING,     /**< subscriber -> notify: keep the subscription alive */
    AMITY_MSG_PONG,     /**< notify -> subscriber: last seq sent to it */
    AMITY_MSG_UNSUB,    /**< subscriber -> notify: end the subscription */
    AMITY_MSG_ERROR,    /**< any reply: the request was refused, and why */
    AMITY_MSG_REJREQ,   /**< client -> notify -> aggregate: list kept rejected records */
    AMITY_MSG_REJECTS,  /**< reply to rejreq: a page / chunk of rejected records */
    AMITY_MSG_COUNT
} amity_msg_type_t;

typedef enum {
    AMITY_VERDICT_ACCEPTED = 1,
    AMITY_VERDICT_DUPLICATE,
    AMITY_VERDICT_REJECTED
} amity_verdict_status_t;

/*  One record in submit / work / apply. */
typedef struct {
    uint64_t tag;        /**< the client's tag, echoed in its verdict */
    amity_view_t rec;    /**< the record: one raw msgpack object (canonical in apply when ok) */
    bool ok;             /**< apply: passed validation */
    amity_view_t why;    /**< apply: the rejection reason when !ok */
} amity_item_t;

typedef struct {
    uint64_t tag;
    amity_verdict_status_t status;
    amity_view_t why;    /**< reason when rejected (else empty) */
} amity_verdict_t;

typedef struct {
    amity_view_t key;    /**< totals key */
    int64_t val;         /**< absolute value (partial for a shard, merged for notify) */
} amity_kv_t;

/*  One kept rejected record (rejects items). */
typedef struct {
    amity_view_t office; /**< the sending office */
    amity_view_t id;     /**< the record's id ("" when it had no string id) */
    amity_view_t why;    /**< the rejection reason */
    uint64_t ts;         /**< when the shard kept it: ms since 1970-01-01 UTC */
    amity_view_t rec;    /**< the record's original bytes (bin, <= AMITY_REJECT_REC_MAX) */
} amity_reject_item_t;

/*  A decoded message: fields are set according to type (see PROTOCOL.md);
 *  the others are zero. Views point into the decoded buffer; arrays are
 *  heap-allocated by decode and freed by amity_msg_clear. */
typedef struct {
    amity_msg_type_t type;
    uint64_t req;             /**< request id echoed in replies (query, sub, snapreq, snap, error) */
    amity_view_t office;      /**< submit (development mode), work, apply, rejreq (a filter) */
    amity_view_t ing;         /**< work, apply, verdicts: ingest instance id */
    amity_view_t conn;        /**< work, apply, verdicts: client routing id (bin) */
    size_t n_items;
    amity_item_t *items;      /**< submit, work, apply */
    size_t n_verdicts;
    amity_verdict_t *verdicts;/**< verdicts */
    uint64_t shard;           /**< totals, snap (from a shard) */
    uint64_t epoch;           /**< snap, upd, pong: the server instance (random per start) */
    uint64_t seq;             /**< totals, snap, upd, pong: sequence valid at */
    uint64_t prev;            /**< upd: seq of the previous message sent to this subscriber */
    bool more;                /**< snap: further chunks follow */
    size_t n_kv;
    amity_kv_t *kv;           /**< totals, snap, upd */
    amity_view_t prefix;      /**< snapreq, query */
    size_t n_prefixes;
    amity_view_t *prefixes;   /**< sub */
    amity_view_t why;         /**< error */
    amity_view_t after;       /**< rejreq: resume after this rejects key (bin; none: ptr NULL) */
    uint64_t limit;           /**< rejreq: items per page / chunk, <= AMITY_REJECTS_MAX */
    amity_view_t next;        /**< rejects: key of the page's last item (bin; none: ptr NULL) */
    bool has_shard;           /**< shard was given (rejects: set by a shard; encode sends it) */
    size_t n_rejects;
    amity_reject_item_t *rejects; /**< rejects: the items */
} amity_msg_t;

void amity_msg_init(amity_msg_t *m);
/*  Frees the arrays; views are dropped. Safe twice. */
void amity_msg_clear(amity_msg_t *m);

/*  Decodes one message. Strict: the version must be 1, each field of the
 *  type present with its msgpack type, counts within the limits above.
 *  Unknown keys are ignored (growth). On failure returns AMITY_EPROTO with
 *  why naming the field and m is cleared. Allocation is bounded by a small
 *  multiple of len. */
int amity_msg_decode(const uint8_t *buf, size_t len, amity_msg_t *m, char *why, size_t why_len);

/*  The `req` of a message that amity_msg_decode refused, read leniently so
 *  that the `error` reply can still echo it: true with *req when buf is
 *  one well-formed msgpack map whose top level holds the key "req" once,
 *  with a non-zero unsigned integer, whatever else is wrong with it (a
 *  missing or mistyped field, an unknown type, another version). False
 *  with *req = 0 otherwise. */
bool amity_msg_peek_req(const uint8_t *buf, size_t len, uint64_t *req);

/*  Encodes m (according to m->type) and appends to out. Item records are
 *  written verbatim (they must each be one well-formed msgpack object).
 *  Returns 0, AMITY_EINVAL (missing field), AMITY_ENOMEM. */
int amity_msg_encode(const amity_msg_t *m, amity_buf_t *out);

/*  Name of a type ("submit"), "?" when out of range. */
const char *amity_msg_type_name(amity_msg_type_t t);
const char *amity_verdict_name(amity_verdict_status_t s);

/*  A view of a NUL-terminated string. */
amity_view_t amity_view_str(const char *s);
/*  Copies a view into buf as a NUL-terminated string; false when it does
 *  not fit (buf then holds ""). */
bool amity_view_copy(amity_view_t v, char *buf, size_t buf_len);

#endif
