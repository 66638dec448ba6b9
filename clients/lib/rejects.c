/*  rejects: the rejected records the shards keep, listed through notify
 *  (`rejreq` -> `rejects` chunks, merged by time over every shard), and
 *  their JSON form for people and tools. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/log.h"
#include "client_int.h"

#define S_SILENCE_MS 5000 /* no chunk for this long: ask again (notify answers within 3 s) */

/* One gathered record: its parts in the arena, NUL-terminated strings. */
typedef struct {
    int64_t ts_ms; /* when it was rejected */
    size_t office; /* offsets into the arena */
    size_t id;
    size_t why;
    size_t rec;
    size_t rec_len; /* bytes of the record */
} s_item_t;

typedef struct {
    s_item_t *items;   /* gathered records, in the order notify sent them */
    size_t n;          /* used */
    size_t cap;        /* allocated */
    amity_buf_t arena; /* their bytes */
} s_list_t;

static void
s_list_reset(s_list_t *l)
{
    l->n = 0;
    amity_buf_reset(&l->arena);
}

static void
s_list_free(s_list_t *l)
{
    free(l->items);
    l->items = NULL;
    l->n = 0;
    l->cap = 0;
    amity_buf_clear(&l->arena);
}

/* Appends v's bytes and a NUL; *off gets where they start. */
static int
s_put(s_list_t *l, amity_view_t v, bool nul, size_t *off)
{
    int rc = 0;

    *off = l->arena.len;
    if (v.len > 0) {
        rc = amity_buf_append(&l->arena, v.ptr, v.len);
    }
    if (rc == 0 && nul) {
        rc = amity_buf_append(&l->arena, "", 1);
    }
    return rc;
}

static int
s_list_add(s_list_t *l, const amity_msg_t *m)
{
    for (size_t i = 0; i < m->n_rejects; i++) {
        const amity_reject_item_t *in = &m->rejects[i];
        s_item_t *it;
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 256;
            s_item_t *items = realloc(l->items, cap * sizeof(*items));
            if (items == NULL) {
                return AMITY_ENOMEM;
            }
            l->items = items;
            l->cap = cap;
        }
        it = &l->items[l->n];
        it->ts_ms = in->ts > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)in->ts;
        it->rec_len = in->rec.len;
        if (s_put(l, in->office, true, &it->office) != 0 || s_put(l, in->id, true, &it->id) != 0 ||
            s_put(l, in->why, true, &it->why) != 0 || s_put(l, in->rec, true, &it->rec) != 0) {
            return AMITY_ENOMEM;
        }
        l->n++;
    }
    return 0;
}

/* A listing in progress. */
typedef struct {
    const char *office; /* NULL: every office the key may see */
    s_list_t list;      /* gathered records */
} s_rejects_t;

static void
s_rejects_build(void *arg, amity_msg_t *q)
{
    const s_rejects_t *self = arg;
    q->type = AMITY_MSG_REJREQ;
    if (self->office != NULL && self->office[0] != '\0') {
        q->office = amity_view_str(self->office);
    }
    q->limit = AMITY_REJECTS_MAX;
}

static void
s_rejects_reset(void *arg)
{
    s_rejects_t *self = arg;
    s_list_reset(&self->list);
}

static int
s_rejects_chunk(void *arg, const amity_msg_t *m)
{
    s_rejects_t *self = arg;
    return s_list_add(&self->list, m);
}

int
amity_rejects(const amity_client_opts_t *opts, const char *office_or_NULL, amity_reject_fn cb,
              void *arg, int timeout_ms)
{
    s_rejects_t self;
    amity_chunked_t rq = {
        .what = "rejects",
        .reply = AMITY_MSG_REJECTS,
        .silence_ms = S_SILENCE_MS,
        .build = s_rejects_build,
        .reset = s_rejects_reset,
        .chunk = s_rejects_chunk,
        .arg = &self,
    };
    int rc;

    memset(&self, 0, sizeof(self));
    self.office = office_or_NULL;
    amity_buf_init(&self.list.arena);
    rc = amity_request_chunks(opts, &rq, timeout_ms);
    for (size_t i = 0; rc == 0 && cb != NULL && i < self.list.n; i++) {
        const s_item_t *it = &self.list.items[i];
        const char *base = (const char *)self.list.arena.data;
        amity_reject_t r = {
            .office = base + it->office,
            .id = base + it->id,
            .why = base + it->why,
            .ts_ms = it->ts_ms,
            .rec = (const uint8_t *)base + it->rec,
            .rec_len = it->rec_len,
        };
        rc = cb(arg, &r);
    }
    s_list_free(&self.list);
    return rc;
}

size_t
amity_time_iso(int64_t ms, char *buf, size_t buf_len)
{
    struct tm tm;
    time_t secs;
    int64_t frac;
    int n;

    AMITY_ASSERT(buf != NULL && buf_len > 0);
    buf[0] = '\0';
    frac = ms % 1000;
    if (frac < 0) {
        frac += 1000;
    }
    secs = (time_t)((ms - frac) / 1000);
    if (gmtime_r(&secs, &tm) == NULL) {
        return 0;
    }
    n = snprintf(buf, buf_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    if (n < 0 || (size_t)n >= buf_len) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

/* Appends s[0..len), valid UTF-8, as a JSON string (controls escaped). */
static int
s_json_utf8(amity_buf_t *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int rc = amity_buf_append(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, pending */

    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t n = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            n = 2;
        } else if (c < 0x20 || c == 0x7f) {
            esc[0] = '\\';
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            n = 6;
        }
        if (n == 0) {
            run++;
            continue;
        }
        if (run > 0) {
            rc = amity_buf_append(out, s + i - run, run);
            run = 0;
        }
        if (rc == 0) {
            rc = amity_buf_append(out, esc, n);
        }
    }
    if (rc == 0 && run > 0) {
        rc = amity_buf_append(out, s + len - run, run);
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "\"", 1);
    }
    return rc;
}

/* Appends text as a JSON string: UTF-8 byte for byte, anything else with
 * the bytes that are not UTF-8 written as \xHH (amity_text_sanitize). */
static int
s_json_text(amity_buf_t *out, const char *s, size_t len)
{
    char *shown;
    size_t n;
    int rc;

    if (amity_utf8_valid(s, len)) {
        return s_json_utf8(out, s, len);
    }
    shown = malloc(4 * len + 8);
    if (shown == NULL) {
        return AMITY_ENOMEM;
    }
    n = amity_text_sanitize(shown, 4 * len + 8, s, len);
    rc = s_json_utf8(out, shown, n);
    free(shown);
    return rc;
}

static int
s_json_key(amity_buf_t *out, const char *key, bool first)
{
    int rc = first ? 0 : amity_buf_append(out, ",", 1);
    if (rc == 0) {
        rc = s_json_utf8(out, key, strlen(key));
    }
    if (rc == 0) {
        rc = amity_buf_append(out, ":", 1);
    }
    return rc;
}

static int
s_base64(amity_buf_t *out, const uint8_t *p, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int rc = amity_buf_append(out, "\"", 1);

    for (size_t i = 0; rc == 0 && i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        char q[4];
        if (i + 1 < len) {
            v |= (uint32_t)p[i + 1] << 8;
        }
        if (i + 2 < len) {
            v |= p[i + 2];
        }
        q[0] = abc[(v >> 18) & 63];
        q[1] = abc[(v >> 12) & 63];
        q[2] = '=';
        q[3] = '=';
        if (i + 1 < len) {
            q[2] = abc[(v >> 6) & 63];
        }
        if (i + 2 < len) {
            q[3] = abc[v & 63];
        }
        rc = amity_buf_append(out, q, 4);
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "\"", 1);
    }
    return rc;
}

/* True when every field of f has a JSON form: scalar values, UTF-8 names
 * and strings, finite numbers. */
static bool
s_scalars(const amity_fields_t *f)
{
    for (size_t i = 0; i < f->n_fields; i++) {
        const amity_field_t *x = &f->fields[i];
        if (!amity_utf8_valid(x->name, x->name_len)) {
            return false;
        }
        switch (x->val.type) {
        case AMITY_VAL_NIL:
        case AMITY_VAL_BOOL:
        case AMITY_VAL_UINT:
        case AMITY_VAL_INT:
            break;
        case AMITY_VAL_FLOAT:
            if (!isfinite(x->val.as.f)) {
                return false;
            }
            break;
        case AMITY_VAL_STR:
            if (!amity_utf8_valid(x->val.as.s.ptr, x->val.as.s.len)) {
                return false;
            }
            break;
        default:
            return false; /* bin, nested containers, ext */
        }
    }
    return true;
}

/* The record as a JSON object, field order kept. */
static int
s_record_json(amity_buf_t *out, const amity_fields_t *f)
{
    int rc = amity_buf_append(out, "{", 1);

    for (size_t i = 0; rc == 0 && i < f->n_fields; i++) {
        const amity_field_t *x = &f->fields[i];
        char num[40];
        int n = 0;
        if (i > 0) {
            rc = amity_buf_append(out, ",", 1);
        }
        if (rc == 0) {
            rc = s_json_utf8(out, x->name, x->name_len);
        }
        if (rc == 0) {
            rc = amity_buf_append(out, ":", 1);
        }
        if (rc != 0) {
            break;
        }
        switch (x->val.type) {
        case AMITY_VAL_NIL:
            rc = amity_buf_append(out, "null", 4);
            break;
        case AMITY_VAL_BOOL:
            rc = x->val.as.b ? amity_buf_append(out, "true", 4) : amity_buf_append(out, "false", 5);
            break;
        case AMITY_VAL_UINT:
            n = snprintf(num, sizeof(num), "%" PRIu64, x->val.as.u);
            rc = amity_buf_append(out, num, (size_t)n);
            break;
        case AMITY_VAL_INT:
            n = snprintf(num, sizeof(num), "%" PRId64, x->val.as.i);
            rc = amity_buf_append(out, num, (size_t)n);
            break;
        case AMITY_VAL_FLOAT:
            n = snprintf(num, sizeof(num), "%.17g", x->val.as.f);
            rc = amity_buf_append(out, num, (size_t)n);
            if (rc == 0 && strpbrk(num, ".eE") == NULL) {
                rc = amity_buf_append(out, ".0", 2); /* it was a float: keep it one */
            }
            break;
        default:
            rc = s_json_utf8(out, x->val.as.s.ptr, x->val.as.s.len);
            break;
        }
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "}", 1);
    }
    return rc;
}

int
amity_reject_json(const amity_reject_t *r, amity_buf_t *out)
{
    amity_fields_t *f;
    char when[40];
    size_t n;
    char why[64];
    int rc;

    AMITY_ASSERT(r != NULL && out != NULL);
    n = amity_time_iso(r->ts_ms, when, sizeof(when));
    rc = amity_buf_append(out, "{", 1);
    if (rc == 0) {
        rc = s_json_key(out, "office", true);
    }
    if (rc == 0) {
        rc = s_json_text(out, r->office, strlen(r->office));
    }
    if (rc == 0) {
        rc = s_json_key(out, "id", false);
    }
    if (rc == 0) {
        rc = s_json_text(out, r->id, strlen(r->id));
    }
    if (rc == 0) {
        rc = s_json_key(out, "why", false);
    }
    if (rc == 0) {
        rc = s_json_text(out, r->why, strlen(r->why));
    }
    if (rc == 0) {
        rc = s_json_key(out, "time", false);
    }
    if (rc == 0) {
        rc = s_json_utf8(out, when, n);
    }
    if (rc == 0) {
        rc = s_json_key(out, "record", false);
    }
    if (rc != 0) {
        return rc;
    }
    f = malloc(sizeof(*f)); /* 64 fields: large for a stack */
    if (f == NULL) {
        return AMITY_ENOMEM;
    }
    if (r->rec_len > 0 && amity_fields_decode(r->rec, r->rec_len, f, why, sizeof(why)) == 0 &&
        s_scalars(f)) {
        rc = s_record_json(out, f);
    } else {
        rc = s_base64(out, r->rec, r->rec_len);
    }
    free(f);
    if (rc == 0) {
        rc = amity_buf_append(out, "}", 1);
    }
    return rc;
}
