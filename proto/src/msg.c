/*  proto/src/msg.c: every message of PROTOCOL.md, encoded with msgpack-c's
 *  packer and decoded by a strict reader over bytes amity_scan accepted.
 *
 *  Decoding is two passes over the top map: the first notes where each
 *  known key's value starts (refusing a key given twice, skipping unknown
 *  ones), the second reads the keys the message type uses, in a fixed
 *  order, each with its exact msgpack type. Views point into the caller's
 *  buffer; only the item / verdict / kv / prefix arrays are allocated, each
 *  sized by a count the scan has already bounded by the input length.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "wire.h"

/*  Envelope keys. */
enum {
    K_V = 0,
    K_T,
    K_OFFICE,
    K_ING,
    K_CONN,
    K_REQ,
    K_SHARD,
    K_EPOCH,
    K_SEQ,
    K_PREV,
    K_MORE,
    K_PREFIX,
    K_PREFIXES,
    K_RECS,
    K_ITEMS,
    K_KV,
    K_WHY,
    K_AFTER,
    K_LIMIT,
    K_NEXT,
    K_COUNT
};

static const char *const s_keys[K_COUNT] = {
    "v",    "t",      "office",   "ing",  "conn",  "req", "shard", "epoch", "seq",   "prev",
    "more", "prefix", "prefixes", "recs", "items", "kv",  "why",   "after", "limit", "next",
};

/*  Index of the key k (n bytes) in names[0..count), or -1. */
static int
s_key_find(const char *const *names, int count, const uint8_t *k, uint64_t n)
{
    for (int j = 0; j < count; j++) {
        /* compare the first byte before paying for strlen */
        if (n > 0 && names[j][0] == (char)k[0] && n == strlen(names[j]) &&
            memcmp(k, names[j], (size_t)n) == 0) {
            return j;
        }
    }
    return -1;
}

#define B(k) (1u << (k))

/*  Per type: its name on the wire, and the keys it requires and allows. */
static const struct {
    const char *name;
    uint32_t required;
    uint32_t optional;
} s_types[AMITY_MSG_COUNT] = {
    [AMITY_MSG_NONE] = { "?", 0, 0 },
    [AMITY_MSG_SUBMIT] = { "submit", B(K_RECS), B(K_OFFICE) },
    [AMITY_MSG_WORK] = { "work", B(K_ING) | B(K_CONN) | B(K_OFFICE) | B(K_RECS), 0 },
    [AMITY_MSG_APPLY] = { "apply", B(K_ING) | B(K_CONN) | B(K_OFFICE) | B(K_ITEMS), 0 },
    [AMITY_MSG_VERDICTS] = { "verdicts", B(K_ITEMS), B(K_ING) | B(K_CONN) },
    [AMITY_MSG_TOTALS] = { "totals", B(K_SHARD) | B(K_SEQ) | B(K_KV), 0 },
    [AMITY_MSG_SNAPREQ] = { "snapreq", B(K_REQ) | B(K_PREFIX), 0 },
    [AMITY_MSG_SNAP] = { "snap", B(K_REQ) | B(K_SEQ) | B(K_MORE) | B(K_KV),
                         B(K_SHARD) | B(K_EPOCH) },
    [AMITY_MSG_QUERY] = { "query", B(K_REQ) | B(K_PREFIX), 0 },
    [AMITY_MSG_SUB] = { "sub", B(K_REQ) | B(K_PREFIXES), 0 },
    [AMITY_MSG_UPD] = { "upd", B(K_EPOCH) | B(K_SEQ) | B(K_PREV) | B(K_KV), 0 },
    [AMITY_MSG_PING] = { "ping", 0, 0 },
    [AMITY_MSG_PONG] = { "pong", B(K_EPOCH) | B(K_SEQ), 0 },
    [AMITY_MSG_UNSUB] = { "unsub", 0, 0 },
    [AMITY_MSG_ERROR] = { "error", B(K_WHY), B(K_REQ) },
    [AMITY_MSG_REJREQ] = { "rejreq", B(K_REQ) | B(K_LIMIT), B(K_OFFICE) | B(K_AFTER) },
    [AMITY_MSG_REJECTS] = { "rejects", B(K_REQ) | B(K_MORE) | B(K_ITEMS), B(K_SHARD) | B(K_NEXT) },
};

static const char *const s_verdicts[] = { "?", "accepted", "duplicate", "rejected" };

const char *
amity_msg_type_name(amity_msg_type_t t)
{
    if (t <= AMITY_MSG_NONE || t >= AMITY_MSG_COUNT) {
        return "?";
    }
    return s_types[t].name;
}

const char *
amity_verdict_name(amity_verdict_status_t s)
{
    if (s < AMITY_VERDICT_ACCEPTED || s > AMITY_VERDICT_REJECTED) {
        return "?";
    }
    return s_verdicts[s];
}

void
amity_msg_init(amity_msg_t *m)
{
    AMITY_ASSERT(m);
    memset(m, 0, sizeof(*m));
}

void
amity_msg_clear(amity_msg_t *m)
{
    if (!m) {
        return;
    }
    free(m->items);
    free(m->verdicts);
    free(m->kv);
    free(m->prefixes);
    free(m->rejects);
    memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------------------
 * Decoding
 */

/*  Where a value sits, for error messages: KEY, or ARRAY[IDX].KEY. */
typedef struct {
    const char *array; /**< enclosing array key, NULL at top level */
    size_t idx;        /**< index in that array */
    const char *key;   /**< the key itself */
} s_path_t;

typedef struct {
    char *why;      /**< caller's buffer (may be NULL) */
    size_t why_len; /**< its size */
} s_ctx_t;

static int s_bad(s_ctx_t *c, s_path_t p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
s_bad(s_ctx_t *c, s_path_t p, const char *fmt, ...)
{
    char text[AMITY_WHY_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n < 0) {
        text[0] = '\0';
    }
    if (p.array && p.key) {
        amity_wire_why(c->why, c->why_len, "%s[%zu].%s: %s", p.array, p.idx, p.key, text);
    } else if (p.array) {
        amity_wire_why(c->why, c->why_len, "%s[%zu]: %s", p.array, p.idx, text);
    } else {
        amity_wire_why(c->why, c->why_len, "%s: %s", p.key, text);
    }
    return AMITY_EPROTO;
}

static s_path_t
s_top(const char *key)
{
    s_path_t p = { NULL, 0, key };
    return p;
}

static s_path_t
s_in(const char *array, size_t idx, const char *key)
{
    s_path_t p = { array, idx, key };
    return p;
}

/*  Reads a header, reporting a (post-scan, so impossible) overrun. */
static int
s_head(s_ctx_t *c, amity_rd_t *r, s_path_t p, amity_wire_head_t *h)
{
    if (amity_rd_head(r, h) != 0) {
        return s_bad(c, p, "truncated");
    }
    return 0;
}

static int
s_uint(s_ctx_t *c, amity_rd_t *r, s_path_t p, uint64_t *out)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, p, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_UINT) {
        return s_bad(c, p, "not an unsigned integer (got %s)", amity_wire_kind_name(h.kind));
    }
    *out = h.u;
    return 0;
}

static int
s_bool(s_ctx_t *c, amity_rd_t *r, s_path_t p, bool *out)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, p, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_BOOL) {
        return s_bad(c, p, "not a boolean (got %s)", amity_wire_kind_name(h.kind));
    }
    *out = h.b;
    return 0;
}

/*  A str (or, when bin, a bin) of at most AMITY_STR_MAX bytes. */
static int
s_bytes(s_ctx_t *c, amity_rd_t *r, s_path_t p, bool bin, amity_view_t *out)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, p, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != (bin ? AMITY_WIRE_BIN : AMITY_WIRE_STR)) {
        return s_bad(c, p, "not a %s (got %s)", bin ? "bin" : "string",
                     amity_wire_kind_name(h.kind));
    }
    if (h.n > AMITY_STR_MAX) {
        return s_bad(c, p, "%" PRIu64 " bytes exceed the limit of %d", h.n, AMITY_STR_MAX);
    }
    out->ptr = h.ptr;
    out->len = (size_t)h.n;
    return 0;
}

/*  A container header of the wanted kind with at most max entries. */
static int
s_container(s_ctx_t *c, amity_rd_t *r, s_path_t p, amity_wire_kind_t kind, uint64_t max,
            const char *what, uint64_t *n)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, p, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != kind) {
        return s_bad(c, p, "not a%s %s (got %s)", kind == AMITY_WIRE_ARRAY ? "n" : "",
                     amity_wire_kind_name(kind), amity_wire_kind_name(h.kind));
    }
    if (h.n > max) {
        return s_bad(c, p, "%" PRIu64 " %s exceed the limit of %" PRIu64, h.n, what, max);
    }
    *n = h.n;
    return 0;
}

/*  Item keys (submit / work / apply records, verdicts). */
enum { I_TAG = 0, I_REC, I_OK, I_WHY, I_ST, I_COUNT };
static const char *const s_item_keys[I_COUNT] = { "tag", "rec", "ok", "why", "st" };

/*  Reads one item map into at[] (value positions); unknown keys skipped. */
static int
s_item_keys_read(s_ctx_t *c, amity_rd_t *r, const char *array, size_t idx, amity_rd_t *at,
                 bool *seen)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, s_in(array, idx, NULL), &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_MAP) {
        return s_bad(c, s_in(array, idx, NULL), "not a map (got %s)", amity_wire_kind_name(h.kind));
    }
    for (uint64_t i = 0; i < h.n; i++) {
        amity_wire_head_t k;
        rc = s_head(c, r, s_in(array, idx, NULL), &k);
        if (rc != 0) {
            return rc;
        }
        if (k.kind != AMITY_WIRE_STR) {
            return s_bad(c, s_in(array, idx, NULL), "key is not a string (got %s)",
                         amity_wire_kind_name(k.kind));
        }
        int found = s_key_find(s_item_keys, I_COUNT, k.ptr, k.n);
        if (found >= 0) {
            if (seen[found]) {
                return s_bad(c, s_in(array, idx, s_item_keys[found]), "given twice");
            }
            seen[found] = true;
            at[found] = *r;
        }
        if (amity_rd_skip(r) != 0) {
            return s_bad(c, s_in(array, idx, NULL), "truncated");
        }
    }
    return 0;
}

/*  recs (submit, work) or items (apply): an array of record items. */
static int
s_items(s_ctx_t *c, amity_rd_t *r, const char *array, bool apply, amity_msg_t *m)
{
    uint64_t n = 0;
    int rc = s_container(c, r, s_top(array), AMITY_WIRE_ARRAY, AMITY_ITEMS_MAX, "items", &n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        m->items = calloc((size_t)n, sizeof(*m->items));
        if (!m->items) {
            amity_wire_why(c->why, c->why_len, "%s: out of memory", array);
            return AMITY_ENOMEM;
        }
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        amity_item_t *it = &m->items[i];
        amity_rd_t at[I_COUNT];
        bool seen[I_COUNT] = { false };
        rc = s_item_keys_read(c, r, array, i, at, seen);
        if (rc != 0) {
            return rc;
        }
        if (!seen[I_TAG]) {
            return s_bad(c, s_in(array, i, "tag"), "missing");
        }
        rc = s_uint(c, &at[I_TAG], s_in(array, i, "tag"), &it->tag);
        if (rc != 0) {
            return rc;
        }
        if (!seen[I_REC]) {
            return s_bad(c, s_in(array, i, "rec"), "missing");
        }
        it->rec.ptr = at[I_REC].p;
        if (amity_rd_skip(&at[I_REC]) != 0) {
            return s_bad(c, s_in(array, i, "rec"), "truncated");
        }
        it->rec.len = (size_t)(at[I_REC].p - it->rec.ptr);
        it->ok = false;
        if (apply) {
            if (!seen[I_OK]) {
                return s_bad(c, s_in(array, i, "ok"), "missing");
            }
            rc = s_bool(c, &at[I_OK], s_in(array, i, "ok"), &it->ok);
            if (rc != 0) {
                return rc;
            }
            if (seen[I_WHY]) {
                rc = s_bytes(c, &at[I_WHY], s_in(array, i, "why"), false, &it->why);
                if (rc != 0) {
                    return rc;
                }
            } else if (!it->ok) {
                return s_bad(c, s_in(array, i, "why"), "missing (required when ok is false)");
            }
        }
        m->n_items = i + 1;
    }
    return 0;
}

/*  items of verdicts. */
static int
s_verdict_items(s_ctx_t *c, amity_rd_t *r, amity_msg_t *m)
{
    uint64_t n = 0;
    int rc = s_container(c, r, s_top("items"), AMITY_WIRE_ARRAY, AMITY_ITEMS_MAX, "items", &n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        m->verdicts = calloc((size_t)n, sizeof(*m->verdicts));
        if (!m->verdicts) {
            amity_wire_why(c->why, c->why_len, "items: out of memory");
            return AMITY_ENOMEM;
        }
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        amity_verdict_t *v = &m->verdicts[i];
        amity_rd_t at[I_COUNT];
        bool seen[I_COUNT] = { false };
        amity_view_t st = { NULL, 0 };
        rc = s_item_keys_read(c, r, "items", i, at, seen);
        if (rc != 0) {
            return rc;
        }
        if (!seen[I_TAG]) {
            return s_bad(c, s_in("items", i, "tag"), "missing");
        }
        rc = s_uint(c, &at[I_TAG], s_in("items", i, "tag"), &v->tag);
        if (rc != 0) {
            return rc;
        }
        if (!seen[I_ST]) {
            return s_bad(c, s_in("items", i, "st"), "missing");
        }
        rc = s_bytes(c, &at[I_ST], s_in("items", i, "st"), false, &st);
        if (rc != 0) {
            return rc;
        }
        v->status = 0;
        for (int s = AMITY_VERDICT_ACCEPTED; s <= AMITY_VERDICT_REJECTED; s++) {
            if (st.len == strlen(s_verdicts[s]) && memcmp(st.ptr, s_verdicts[s], st.len) == 0) {
                v->status = (amity_verdict_status_t)s;
            }
        }
        if (v->status == 0) {
            char shown[40];
            amity_wire_printable((const char *)st.ptr, st.len, shown, sizeof(shown));
            return s_bad(c, s_in("items", i, "st"),
                         "unknown status \"%s\" (accepted, duplicate or rejected)", shown);
        }
        if (seen[I_WHY]) {
            rc = s_bytes(c, &at[I_WHY], s_in("items", i, "why"), false, &v->why);
            if (rc != 0) {
                return rc;
            }
        } else if (v->status == AMITY_VERDICT_REJECTED) {
            return s_bad(c, s_in("items", i, "why"), "missing (required when rejected)");
        }
        m->n_verdicts = i + 1;
    }
    return 0;
}

static int
s_kv(s_ctx_t *c, amity_rd_t *r, amity_msg_t *m)
{
    uint64_t n = 0;
    int rc = s_container(c, r, s_top("kv"), AMITY_WIRE_MAP, AMITY_KV_MAX, "entries", &n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        m->kv = calloc((size_t)n, sizeof(*m->kv));
        if (!m->kv) {
            amity_wire_why(c->why, c->why_len, "kv: out of memory");
            return AMITY_ENOMEM;
        }
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        amity_kv_t *kv = &m->kv[i];
        amity_wire_head_t h;
        rc = s_head(c, r, s_top("kv"), &h);
        if (rc != 0) {
            return rc;
        }
        if (h.kind != AMITY_WIRE_STR) {
            return s_bad(c, s_top("kv"), "key is not a string (got %s)",
                         amity_wire_kind_name(h.kind));
        }
        if (h.n > AMITY_STR_MAX) {
            return s_bad(c, s_top("kv"), "a key of %" PRIu64 " bytes exceeds the limit of %d", h.n,
                         AMITY_STR_MAX);
        }
        kv->key.ptr = h.ptr;
        kv->key.len = (size_t)h.n;
        rc = s_head(c, r, s_top("kv"), &h);
        if (rc != 0) {
            return rc;
        }
        if (h.kind == AMITY_WIRE_UINT) {
            if (h.u > (uint64_t)INT64_MAX) {
                char shown[80];
                amity_wire_printable((const char *)kv->key.ptr, kv->key.len, shown, sizeof(shown));
                return s_bad(c, s_top("kv"), "\"%s\": %" PRIu64 " exceeds int64", shown, h.u);
            }
            kv->val = (int64_t)h.u;
        } else if (h.kind == AMITY_WIRE_INT) {
            kv->val = h.i;
        } else {
            char shown[80];
            amity_wire_printable((const char *)kv->key.ptr, kv->key.len, shown, sizeof(shown));
            return s_bad(c, s_top("kv"), "\"%s\": value is not an integer (got %s)", shown,
                         amity_wire_kind_name(h.kind));
        }
        m->n_kv = i + 1;
    }
    return 0;
}

static int
s_prefixes(s_ctx_t *c, amity_rd_t *r, amity_msg_t *m)
{
    uint64_t n = 0;
    int rc =
        s_container(c, r, s_top("prefixes"), AMITY_WIRE_ARRAY, AMITY_PREFIXES_MAX, "prefixes", &n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        m->prefixes = calloc((size_t)n, sizeof(*m->prefixes));
        if (!m->prefixes) {
            amity_wire_why(c->why, c->why_len, "prefixes: out of memory");
            return AMITY_ENOMEM;
        }
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        rc = s_bytes(c, r, s_in("prefixes", i, NULL), false, &m->prefixes[i]);
        if (rc != 0) {
            return rc;
        }
        m->n_prefixes = i + 1;
    }
    return 0;
}

/*  A bin of at most max bytes (a kept record: larger than AMITY_STR_MAX). */
static int
s_bin_max(s_ctx_t *c, amity_rd_t *r, s_path_t p, uint64_t max, amity_view_t *out)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, p, &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_BIN) {
        return s_bad(c, p, "not a bin (got %s)", amity_wire_kind_name(h.kind));
    }
    if (h.n > max) {
        return s_bad(c, p, "%" PRIu64 " bytes exceed the limit of %" PRIu64, h.n, max);
    }
    out->ptr = h.ptr;
    out->len = (size_t)h.n;
    return 0;
}

/*  Keys of a rejects item. */
enum { R_OFFICE = 0, R_ID, R_WHY, R_TS, R_REC, R_COUNT };
static const char *const s_reject_keys[R_COUNT] = { "office", "id", "why", "ts", "rec" };

/*  Reads one rejects item map into at[] (value positions); unknown keys
 *  skipped, a known key twice refused. */
static int
s_reject_keys_read(s_ctx_t *c, amity_rd_t *r, size_t idx, amity_rd_t *at, bool *seen)
{
    amity_wire_head_t h;
    int rc = s_head(c, r, s_in("items", idx, NULL), &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_MAP) {
        return s_bad(c, s_in("items", idx, NULL), "not a map (got %s)",
                     amity_wire_kind_name(h.kind));
    }
    for (uint64_t i = 0; i < h.n; i++) {
        amity_wire_head_t k;
        rc = s_head(c, r, s_in("items", idx, NULL), &k);
        if (rc != 0) {
            return rc;
        }
        if (k.kind != AMITY_WIRE_STR) {
            return s_bad(c, s_in("items", idx, NULL), "key is not a string (got %s)",
                         amity_wire_kind_name(k.kind));
        }
        int found = s_key_find(s_reject_keys, R_COUNT, k.ptr, k.n);
        if (found >= 0) {
            if (seen[found]) {
                return s_bad(c, s_in("items", idx, s_reject_keys[found]), "given twice");
            }
            seen[found] = true;
            at[found] = *r;
        }
        if (amity_rd_skip(r) != 0) {
            return s_bad(c, s_in("items", idx, NULL), "truncated");
        }
    }
    return 0;
}

/*  items of rejects: {office: str, id: str, why: str, ts: uint, rec: bin}. */
static int
s_reject_items(s_ctx_t *c, amity_rd_t *r, amity_msg_t *m)
{
    uint64_t n = 0;
    int rc = s_container(c, r, s_top("items"), AMITY_WIRE_ARRAY, AMITY_REJECTS_MAX, "items", &n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        m->rejects = calloc((size_t)n, sizeof(*m->rejects));
        if (!m->rejects) {
            amity_wire_why(c->why, c->why_len, "items: out of memory");
            return AMITY_ENOMEM;
        }
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        amity_reject_item_t *it = &m->rejects[i];
        amity_rd_t at[R_COUNT];
        bool seen[R_COUNT] = { false };
        rc = s_reject_keys_read(c, r, i, at, seen);
        if (rc != 0) {
            return rc;
        }
        for (int k = 0; k < R_COUNT; k++) {
            if (!seen[k]) {
                return s_bad(c, s_in("items", i, s_reject_keys[k]), "missing");
            }
        }
        rc = s_bytes(c, &at[R_OFFICE], s_in("items", i, "office"), false, &it->office);
        if (rc == 0) {
            rc = s_bytes(c, &at[R_ID], s_in("items", i, "id"), false, &it->id);
        }
        if (rc == 0) {
            rc = s_bytes(c, &at[R_WHY], s_in("items", i, "why"), false, &it->why);
        }
        if (rc == 0) {
            rc = s_uint(c, &at[R_TS], s_in("items", i, "ts"), &it->ts);
        }
        if (rc == 0) {
            rc = s_bin_max(c, &at[R_REC], s_in("items", i, "rec"), AMITY_REJECT_REC_MAX, &it->rec);
        }
        if (rc != 0) {
            return rc;
        }
        m->n_rejects = i + 1;
    }
    return 0;
}

/*  rejreq's limit: items per page, at most AMITY_REJECTS_MAX (0: that many). */
static int
s_limit(s_ctx_t *c, amity_rd_t *at, amity_msg_t *m)
{
    int rc = s_uint(c, at, s_top("limit"), &m->limit);
    if (rc != 0) {
        return rc;
    }
    if (m->limit > AMITY_REJECTS_MAX) {
        return s_bad(c, s_top("limit"), "%" PRIu64 " exceeds the limit of %d", m->limit,
                     AMITY_REJECTS_MAX);
    }
    return 0;
}

/*  Reads the value of key k (at its noted position) into m. */
static int
s_field(s_ctx_t *c, int k, amity_rd_t *at, amity_msg_t *m)
{
    s_path_t p = s_top(s_keys[k]);
    switch (k) {
    case K_OFFICE:
        return s_bytes(c, at, p, false, &m->office);
    case K_ING:
        return s_bytes(c, at, p, false, &m->ing);
    case K_CONN:
        return s_bytes(c, at, p, true, &m->conn);
    case K_PREFIX:
        return s_bytes(c, at, p, false, &m->prefix);
    case K_WHY:
        return s_bytes(c, at, p, false, &m->why);
    case K_REQ:
        return s_uint(c, at, p, &m->req);
    case K_SHARD:
        m->has_shard = true;
        return s_uint(c, at, p, &m->shard);
    case K_EPOCH:
        return s_uint(c, at, p, &m->epoch);
    case K_SEQ:
        return s_uint(c, at, p, &m->seq);
    case K_PREV:
        return s_uint(c, at, p, &m->prev);
    case K_MORE:
        return s_bool(c, at, p, &m->more);
    case K_PREFIXES:
        return s_prefixes(c, at, m);
    case K_RECS:
        return s_items(c, at, "recs", false, m);
    case K_ITEMS:
        if (m->type == AMITY_MSG_VERDICTS) {
            return s_verdict_items(c, at, m);
        }
        if (m->type == AMITY_MSG_REJECTS) {
            return s_reject_items(c, at, m);
        }
        return s_items(c, at, "items", true, m);
    case K_KV:
        return s_kv(c, at, m);
    case K_AFTER:
        return s_bytes(c, at, p, true, &m->after);
    case K_LIMIT:
        return s_limit(c, at, m);
    case K_NEXT:
        return s_bytes(c, at, p, true, &m->next);
    default:
        return 0;
    }
}

static int
s_decode(s_ctx_t *c, const uint8_t *buf, size_t len, amity_msg_t *m)
{
    char scan_why[AMITY_WHY_MAX];
    int rc = amity_scan(buf, len, AMITY_DEPTH_MAX, scan_why, sizeof(scan_why));
    if (rc != 0) {
        amity_wire_why(c->why, c->why_len, "message: %s", scan_why);
        return rc == AMITY_ENOMEM ? rc : AMITY_EPROTO;
    }

    amity_rd_t r = { buf, buf + len };
    amity_rd_t at[K_COUNT];
    uint32_t seen = 0;
    amity_wire_head_t h;
    rc = s_head(c, &r, s_top("message"), &h);
    if (rc != 0) {
        return rc;
    }
    if (h.kind != AMITY_WIRE_MAP) {
        return s_bad(c, s_top("message"), "not a map (got %s)", amity_wire_kind_name(h.kind));
    }
    for (uint64_t i = 0; i < h.n; i++) {
        amity_wire_head_t k;
        rc = s_head(c, &r, s_top("message"), &k);
        if (rc != 0) {
            return rc;
        }
        if (k.kind != AMITY_WIRE_STR) {
            return s_bad(c, s_top("message"), "key is not a string (got %s)",
                         amity_wire_kind_name(k.kind));
        }
        int j = s_key_find(s_keys, K_COUNT, k.ptr, k.n);
        if (j >= 0) {
            if (seen & B(j)) {
                return s_bad(c, s_top(s_keys[j]), "given twice");
            }
            seen |= B(j);
            at[j] = r;
        }
        if (amity_rd_skip(&r) != 0) {
            return s_bad(c, s_top("message"), "truncated");
        }
    }

    uint64_t v = 0;
    if (!(seen & B(K_V))) {
        return s_bad(c, s_top("v"), "missing");
    }
    rc = s_uint(c, &at[K_V], s_top("v"), &v);
    if (rc != 0) {
        return rc;
    }
    if (v != AMITY_PROTO_VERSION) {
        return s_bad(c, s_top("v"), "unsupported version %" PRIu64 " (this side speaks %d)", v,
                     AMITY_PROTO_VERSION);
    }
    amity_view_t t = { NULL, 0 };
    if (!(seen & B(K_T))) {
        return s_bad(c, s_top("t"), "missing");
    }
    rc = s_bytes(c, &at[K_T], s_top("t"), false, &t);
    if (rc != 0) {
        return rc;
    }
    for (int i = AMITY_MSG_NONE + 1; i < AMITY_MSG_COUNT; i++) {
        if (t.len == strlen(s_types[i].name) && memcmp(t.ptr, s_types[i].name, t.len) == 0) {
            m->type = (amity_msg_type_t)i;
            break;
        }
    }
    if (m->type == AMITY_MSG_NONE) {
        char shown[40];
        amity_wire_printable((const char *)t.ptr, t.len, shown, sizeof(shown));
        return s_bad(c, s_top("t"), "unknown message type \"%s\"", shown);
    }

    uint32_t required = s_types[m->type].required;
    uint32_t wanted = required | s_types[m->type].optional;
    for (int k = K_T + 1; k < K_COUNT; k++) {
        if ((required & B(k)) && !(seen & B(k))) {
            return s_bad(c, s_top(s_keys[k]), "missing");
        }
    }
    for (int k = K_T + 1; k < K_COUNT; k++) {
        if ((wanted & B(k)) && (seen & B(k))) {
            rc = s_field(c, k, &at[k], m);
            if (rc != 0) {
                return rc;
            }
        }
    }
    return 0;
}

int
amity_msg_decode(const uint8_t *buf, size_t len, amity_msg_t *m, char *why, size_t why_len)
{
    AMITY_ASSERT(m);
    s_ctx_t c = { why, why_len };
    amity_msg_init(m);
    if (!buf && len > 0) {
        amity_wire_why(why, why_len, "message: no buffer");
        return AMITY_EINVAL;
    }
    int rc = s_decode(&c, buf, len, m);
    if (rc != 0) {
        amity_msg_clear(m);
    }
    return rc;
}

bool
amity_msg_peek_req(const uint8_t *buf, size_t len, uint64_t *req)
{
    AMITY_ASSERT(req);
    *req = 0;
    if (!buf || amity_scan(buf, len, AMITY_DEPTH_MAX, NULL, 0) != 0) {
        return false; /* not one well-formed object: nothing in it can be trusted */
    }
    amity_rd_t r = { buf, buf + len };
    amity_wire_head_t h;
    uint64_t found = 0;
    int n_found = 0;
    if (amity_rd_head(&r, &h) != 0 || h.kind != AMITY_WIRE_MAP) {
        return false;
    }
    for (uint64_t i = 0; i < h.n; i++) {
        amity_wire_head_t k, v;
        if (amity_rd_head(&r, &k) != 0) {
            return false;
        }
        if (k.kind == AMITY_WIRE_STR && k.n == 3 && memcmp(k.ptr, "req", 3) == 0) {
            amity_rd_t at = r;
            if (amity_rd_head(&at, &v) == 0 && v.kind == AMITY_WIRE_UINT) {
                found = v.u;
            }
            n_found++;
        }
        if (amity_rd_skip(&r) != 0) {
            return false;
        }
    }
    if (n_found != 1 || found == 0) {
        return false; /* absent, given twice (which one?), not a uint, or 0 ("none") */
    }
    *req = found;
    return true;
}

/* ------------------------------------------------------------------------
 * Encoding
 */

/*  A required envelope string: present (ptr set) and within the limit. */
static bool
s_view_ok(amity_view_t v)
{
    return v.ptr != NULL && v.len <= AMITY_STR_MAX;
}

/*  An element string (kv key, prefix): NULL means "", within the limit. */
static bool
s_elem_ok(amity_view_t v)
{
    return (v.ptr != NULL || v.len == 0) && v.len <= AMITY_STR_MAX;
}

static bool
s_opt_ok(amity_view_t v)
{
    return v.ptr == NULL || v.len <= AMITY_STR_MAX;
}

/*  s_check for rejreq and rejects. */
static int
s_check_rejects(const amity_msg_t *m)
{
    if (m->type == AMITY_MSG_REJREQ) {
        if (m->limit > AMITY_REJECTS_MAX || !s_opt_ok(m->office) || !s_opt_ok(m->after)) {
            return AMITY_EINVAL;
        }
        return 0;
    }
    if (!s_opt_ok(m->next) || m->n_rejects > AMITY_REJECTS_MAX ||
        (m->n_rejects > 0 && !m->rejects)) {
        return AMITY_EINVAL;
    }
    for (size_t i = 0; i < m->n_rejects; i++) {
        const amity_reject_item_t *it = &m->rejects[i];
        if (!s_elem_ok(it->office) || !s_elem_ok(it->id) || !s_elem_ok(it->why) ||
            (it->rec.ptr == NULL && it->rec.len > 0) || it->rec.len > AMITY_REJECT_REC_MAX) {
            return AMITY_EINVAL;
        }
    }
    return 0;
}

/*  Checks everything the receiver will check, so that encode either
 *  produces a message amity_msg_decode accepts or fails. */
static int
s_check(const amity_msg_t *m)
{
    uint32_t need = s_types[m->type].required;
    if ((need & B(K_OFFICE)) && !s_view_ok(m->office)) {
        return AMITY_EINVAL;
    }
    if ((need & B(K_ING)) && !s_view_ok(m->ing)) {
        return AMITY_EINVAL;
    }
    if ((need & B(K_CONN)) && !s_view_ok(m->conn)) {
        return AMITY_EINVAL;
    }
    if ((need & B(K_PREFIX)) && !s_view_ok(m->prefix)) {
        return AMITY_EINVAL;
    }
    if ((need & B(K_WHY)) && !s_view_ok(m->why)) {
        return AMITY_EINVAL;
    }
    if (m->type == AMITY_MSG_SUBMIT && !s_opt_ok(m->office)) {
        return AMITY_EINVAL;
    }
    if (m->type == AMITY_MSG_VERDICTS && (!s_opt_ok(m->ing) || !s_opt_ok(m->conn))) {
        return AMITY_EINVAL;
    }
    if (need & (B(K_RECS) | B(K_ITEMS))) {
        if (m->type == AMITY_MSG_VERDICTS) {
            if (m->n_verdicts > AMITY_ITEMS_MAX || (m->n_verdicts > 0 && !m->verdicts)) {
                return AMITY_EINVAL;
            }
            for (size_t i = 0; i < m->n_verdicts; i++) {
                const amity_verdict_t *v = &m->verdicts[i];
                if (v->status < AMITY_VERDICT_ACCEPTED || v->status > AMITY_VERDICT_REJECTED ||
                    !s_opt_ok(v->why) ||
                    (v->status == AMITY_VERDICT_REJECTED && v->why.ptr == NULL)) {
                    return AMITY_EINVAL;
                }
            }
        } else {
            if (m->n_items > AMITY_ITEMS_MAX || (m->n_items > 0 && !m->items)) {
                return AMITY_EINVAL;
            }
            for (size_t i = 0; i < m->n_items; i++) {
                const amity_item_t *it = &m->items[i];
                /* top map, the array, the item map: the record gets the rest */
                if (!it->rec.ptr ||
                    amity_scan(it->rec.ptr, it->rec.len, AMITY_DEPTH_MAX - 3, NULL, 0) != 0) {
                    return AMITY_EINVAL;
                }
                if (m->type == AMITY_MSG_APPLY && !it->ok && !s_view_ok(it->why)) {
                    return AMITY_EINVAL;
                }
            }
        }
    }
    if (need & B(K_KV)) {
        if (m->n_kv > AMITY_KV_MAX || (m->n_kv > 0 && !m->kv)) {
            return AMITY_EINVAL;
        }
        for (size_t i = 0; i < m->n_kv; i++) {
            if (!s_elem_ok(m->kv[i].key)) {
                return AMITY_EINVAL;
            }
        }
    }
    if (need & B(K_PREFIXES)) {
        if (m->n_prefixes > AMITY_PREFIXES_MAX || (m->n_prefixes > 0 && !m->prefixes)) {
            return AMITY_EINVAL;
        }
        for (size_t i = 0; i < m->n_prefixes; i++) {
            if (!s_elem_ok(m->prefixes[i])) {
                return AMITY_EINVAL;
            }
        }
    }
    if (m->type == AMITY_MSG_REJREQ || m->type == AMITY_MSG_REJECTS) {
        return s_check_rejects(m);
    }
    return 0;
}

static void
s_put_view(amity_wr_t *w, const char *key, amity_view_t v)
{
    amity_wr_cstr(w, key);
    amity_wr_str(w, v.ptr, v.len);
}

static void
s_put_uint(amity_wr_t *w, const char *key, uint64_t u)
{
    amity_wr_cstr(w, key);
    msgpack_pack_uint64(&w->pk, u);
}

static void
s_put_bool(amity_wr_t *w, bool b)
{
    if (b) {
        msgpack_pack_true(&w->pk);
    } else {
        msgpack_pack_false(&w->pk);
    }
}

static void
s_put_conn(amity_wr_t *w, amity_view_t v)
{
    amity_wr_cstr(w, "conn");
    msgpack_pack_bin_with_body(&w->pk, v.ptr, v.len);
}

static void
s_put_items(amity_wr_t *w, const amity_msg_t *m, const char *key, bool apply)
{
    amity_wr_cstr(w, key);
    msgpack_pack_array(&w->pk, m->n_items);
    for (size_t i = 0; i < m->n_items; i++) {
        const amity_item_t *it = &m->items[i];
        msgpack_pack_map(&w->pk, apply ? (it->ok ? 3 : 4) : 2);
        s_put_uint(w, "tag", it->tag);
        if (apply) {
            amity_wr_cstr(w, "ok");
            s_put_bool(w, it->ok);
        }
        amity_wr_cstr(w, "rec");
        amity_wr_raw(w, it->rec.ptr, it->rec.len);
        if (apply && !it->ok) {
            s_put_view(w, "why", it->why);
        }
    }
}

static void
s_put_verdicts(amity_wr_t *w, const amity_msg_t *m)
{
    amity_wr_cstr(w, "items");
    msgpack_pack_array(&w->pk, m->n_verdicts);
    for (size_t i = 0; i < m->n_verdicts; i++) {
        const amity_verdict_t *v = &m->verdicts[i];
        msgpack_pack_map(&w->pk, v->why.ptr ? 3 : 2);
        s_put_uint(w, "tag", v->tag);
        amity_wr_cstr(w, "st");
        amity_wr_cstr(w, s_verdicts[v->status]);
        if (v->why.ptr) {
            s_put_view(w, "why", v->why);
        }
    }
}

static void
s_put_kv(amity_wr_t *w, const amity_msg_t *m)
{
    amity_wr_cstr(w, "kv");
    msgpack_pack_map(&w->pk, m->n_kv);
    for (size_t i = 0; i < m->n_kv; i++) {
        amity_wr_str(w, m->kv[i].key.ptr, m->kv[i].key.len);
        msgpack_pack_int64(&w->pk, m->kv[i].val);
    }
}

static void
s_put_bin(amity_wr_t *w, const char *key, amity_view_t v)
{
    amity_wr_cstr(w, key);
    msgpack_pack_bin_with_body(&w->pk, v.ptr, v.len);
}

static void
s_put_rejects(amity_wr_t *w, const amity_msg_t *m)
{
    amity_wr_cstr(w, "items");
    msgpack_pack_array(&w->pk, m->n_rejects);
    for (size_t i = 0; i < m->n_rejects; i++) {
        const amity_reject_item_t *it = &m->rejects[i];
        msgpack_pack_map(&w->pk, 5);
        s_put_view(w, "office", it->office);
        s_put_view(w, "id", it->id);
        s_put_view(w, "why", it->why);
        s_put_uint(w, "ts", it->ts);
        s_put_bin(w, "rec", it->rec);
    }
}

static void
s_put_prefixes(amity_wr_t *w, const amity_msg_t *m)
{
    amity_wr_cstr(w, "prefixes");
    msgpack_pack_array(&w->pk, m->n_prefixes);
    for (size_t i = 0; i < m->n_prefixes; i++) {
        amity_wr_str(w, m->prefixes[i].ptr, m->prefixes[i].len);
    }
}

int
amity_msg_encode(const amity_msg_t *m, amity_buf_t *out)
{
    AMITY_ASSERT(m && out);
    if (m->type <= AMITY_MSG_NONE || m->type >= AMITY_MSG_COUNT) {
        return AMITY_EINVAL;
    }
    int rc = s_check(m);
    if (rc != 0) {
        return rc;
    }

    /* keys this message carries: required ones plus the optional ones set */
    uint32_t keys = s_types[m->type].required;
    switch (m->type) {
    case AMITY_MSG_SUBMIT:
        keys |= m->office.ptr ? B(K_OFFICE) : 0;
        break;
    case AMITY_MSG_VERDICTS:
        keys |= (m->ing.ptr ? B(K_ING) : 0) | (m->conn.ptr ? B(K_CONN) : 0);
        break;
    case AMITY_MSG_SNAP:
        /* a shard's snapshot names the shard; notify's carries its epoch */
        keys |= m->epoch != 0 ? B(K_EPOCH) : B(K_SHARD);
        break;
    case AMITY_MSG_ERROR:
        keys |= m->req != 0 ? B(K_REQ) : 0;
        break;
    case AMITY_MSG_REJREQ:
        keys |= (m->office.ptr ? B(K_OFFICE) : 0) | (m->after.ptr ? B(K_AFTER) : 0);
        break;
    case AMITY_MSG_REJECTS:
        keys |= (m->has_shard ? B(K_SHARD) : 0) | (m->next.ptr ? B(K_NEXT) : 0);
        break;
    default:
        break;
    }
    size_t n = 2;
    for (int k = K_T + 1; k < K_COUNT; k++) {
        n += (keys >> k) & 1u;
    }

    amity_wr_t w;
    amity_wr_begin(&w, out);
    msgpack_pack_map(&w.pk, n);
    s_put_uint(&w, "v", AMITY_PROTO_VERSION);
    amity_wr_cstr(&w, "t");
    amity_wr_cstr(&w, s_types[m->type].name);
    for (int k = K_T + 1; k < K_COUNT; k++) {
        if (!(keys & B(k))) {
            continue;
        }
        switch (k) {
        case K_OFFICE:
            s_put_view(&w, "office", m->office);
            break;
        case K_ING:
            s_put_view(&w, "ing", m->ing);
            break;
        case K_CONN:
            s_put_conn(&w, m->conn);
            break;
        case K_REQ:
            s_put_uint(&w, "req", m->req);
            break;
        case K_SHARD:
            s_put_uint(&w, "shard", m->shard);
            break;
        case K_EPOCH:
            s_put_uint(&w, "epoch", m->epoch);
            break;
        case K_SEQ:
            s_put_uint(&w, "seq", m->seq);
            break;
        case K_PREV:
            s_put_uint(&w, "prev", m->prev);
            break;
        case K_MORE:
            amity_wr_cstr(&w, "more");
            s_put_bool(&w, m->more);
            break;
        case K_PREFIX:
            s_put_view(&w, "prefix", m->prefix);
            break;
        case K_PREFIXES:
            s_put_prefixes(&w, m);
            break;
        case K_RECS:
            s_put_items(&w, m, "recs", false);
            break;
        case K_ITEMS:
            if (m->type == AMITY_MSG_VERDICTS) {
                s_put_verdicts(&w, m);
            } else if (m->type == AMITY_MSG_REJECTS) {
                s_put_rejects(&w, m);
            } else {
                s_put_items(&w, m, "items", true);
            }
            break;
        case K_KV:
            s_put_kv(&w, m);
            break;
        case K_WHY:
            s_put_view(&w, "why", m->why);
            break;
        case K_AFTER:
            s_put_bin(&w, "after", m->after);
            break;
        case K_LIMIT:
            s_put_uint(&w, "limit", m->limit);
            break;
        case K_NEXT:
            s_put_bin(&w, "next", m->next);
            break;
        default:
            break;
        }
    }
    return amity_wr_end(&w);
}
