/*  proto/src/wire.c: msgpack headers, the post-scan cursor, the packer on
 *  amity_buf_t, and small helpers (views, error text) for proto's codecs.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "wire.h"

static uint64_t
s_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/*  Sets a length-prefixed header: tag, then len_bytes of big-endian length. */
static int
s_sized(const uint8_t *p, size_t left, amity_wire_head_t *h, amity_wire_kind_t kind,
        const char *name, size_t len_bytes)
{
    if (left < 1 + len_bytes) {
        return AMITY_WIRE_TRUNCATED;
    }
    h->kind = kind;
    h->name = name;
    h->head_len = 1 + len_bytes;
    h->n = s_be(p + 1, len_bytes);
    return 0;
}

/*  Sets a fixed-size scalar header of 1 + value_bytes. */
static int
s_fixed(size_t left, amity_wire_head_t *h, amity_wire_kind_t kind, const char *name,
        size_t value_bytes)
{
    if (left < 1 + value_bytes) {
        return AMITY_WIRE_TRUNCATED;
    }
    h->kind = kind;
    h->name = name;
    h->head_len = 1 + value_bytes;
    return 0;
}

static int
s_ext(const uint8_t *p, size_t left, amity_wire_head_t *h, const char *name, size_t len_bytes,
      uint64_t fixed_len)
{
    if (left < 1 + len_bytes + 1) {
        return AMITY_WIRE_TRUNCATED;
    }
    h->kind = AMITY_WIRE_EXT;
    h->name = name;
    h->head_len = 1 + len_bytes + 1;
    h->n = len_bytes ? s_be(p + 1, len_bytes) : fixed_len;
    h->ext_type = (int8_t)p[1 + len_bytes];
    return 0;
}

int
amity_wire_head(const uint8_t *p, size_t left, amity_wire_head_t *h)
{
    AMITY_ASSERT(p && h && left > 0);
    memset(h, 0, sizeof(*h));
    uint8_t b = p[0];
    int rc = 0;

    if (b <= 0x7f) {
        h->kind = AMITY_WIRE_UINT;
        h->name = "positive fixint";
        h->head_len = 1;
        h->u = b;
        return 0;
    }
    if (b >= 0xe0) {
        h->kind = AMITY_WIRE_INT;
        h->name = "negative fixint";
        h->head_len = 1;
        h->i = (int64_t)b - 256;
        return 0;
    }
    if (b <= 0x8f) {
        h->kind = AMITY_WIRE_MAP;
        h->name = "fixmap";
        h->head_len = 1;
        h->n = b & 0x0fu;
        return 0;
    }
    if (b <= 0x9f) {
        h->kind = AMITY_WIRE_ARRAY;
        h->name = "fixarray";
        h->head_len = 1;
        h->n = b & 0x0fu;
        return 0;
    }
    if (b <= 0xbf) {
        h->kind = AMITY_WIRE_STR;
        h->name = "fixstr";
        h->head_len = 1;
        h->n = b & 0x1fu;
        return 0;
    }
    switch (b) {
    case 0xc0:
        h->kind = AMITY_WIRE_NIL;
        h->name = "nil";
        h->head_len = 1;
        return 0;
    case 0xc1:
        return AMITY_WIRE_NEVER;
    case 0xc2:
    case 0xc3:
        h->kind = AMITY_WIRE_BOOL;
        h->name = b == 0xc3 ? "true" : "false";
        h->head_len = 1;
        h->b = b == 0xc3;
        return 0;
    case 0xc4:
        return s_sized(p, left, h, AMITY_WIRE_BIN, "bin8", 1);
    case 0xc5:
        return s_sized(p, left, h, AMITY_WIRE_BIN, "bin16", 2);
    case 0xc6:
        return s_sized(p, left, h, AMITY_WIRE_BIN, "bin32", 4);
    case 0xc7:
        return s_ext(p, left, h, "ext8", 1, 0);
    case 0xc8:
        return s_ext(p, left, h, "ext16", 2, 0);
    case 0xc9:
        return s_ext(p, left, h, "ext32", 4, 0);
    case 0xca:
        rc = s_fixed(left, h, AMITY_WIRE_FLOAT, "float32", 4);
        if (rc == 0) {
            uint32_t bits = (uint32_t)s_be(p + 1, 4);
            float f;
            memcpy(&f, &bits, sizeof(f));
            h->f = (double)f;
        }
        return rc;
    case 0xcb:
        rc = s_fixed(left, h, AMITY_WIRE_FLOAT, "float64", 8);
        if (rc == 0) {
            uint64_t bits = s_be(p + 1, 8);
            memcpy(&h->f, &bits, sizeof(h->f));
        }
        return rc;
    case 0xcc:
    case 0xcd:
    case 0xce:
    case 0xcf: {
        static const char *const names[] = { "uint8", "uint16", "uint32", "uint64" };
        size_t n = (size_t)1 << (b - 0xcc);
        rc = s_fixed(left, h, AMITY_WIRE_UINT, names[b - 0xcc], n);
        if (rc == 0) {
            h->u = s_be(p + 1, n);
        }
        return rc;
    }
    case 0xd0:
    case 0xd1:
    case 0xd2:
    case 0xd3: {
        static const char *const names[] = { "int8", "int16", "int32", "int64" };
        size_t n = (size_t)1 << (b - 0xd0);
        rc = s_fixed(left, h, AMITY_WIRE_INT, names[b - 0xd0], n);
        if (rc == 0) {
            uint64_t raw = s_be(p + 1, n);
            /* sign-extend from n bytes without relying on implementation-defined casts */
            if (n < 8 && (raw >> (8 * n - 1)) & 1u) {
                raw |= ~(uint64_t)0 << (8 * n);
            }
            if (raw >> 63) {
                h->i = -(int64_t)(~raw) - 1;
            } else {
                h->i = (int64_t)raw;
            }
        }
        return rc;
    }
    case 0xd4:
        return s_ext(p, left, h, "fixext1", 0, 1);
    case 0xd5:
        return s_ext(p, left, h, "fixext2", 0, 2);
    case 0xd6:
        return s_ext(p, left, h, "fixext4", 0, 4);
    case 0xd7:
        return s_ext(p, left, h, "fixext8", 0, 8);
    case 0xd8:
        return s_ext(p, left, h, "fixext16", 0, 16);
    case 0xd9:
        return s_sized(p, left, h, AMITY_WIRE_STR, "str8", 1);
    case 0xda:
        return s_sized(p, left, h, AMITY_WIRE_STR, "str16", 2);
    case 0xdb:
        return s_sized(p, left, h, AMITY_WIRE_STR, "str32", 4);
    case 0xdc:
        return s_sized(p, left, h, AMITY_WIRE_ARRAY, "array16", 2);
    case 0xdd:
        return s_sized(p, left, h, AMITY_WIRE_ARRAY, "array32", 4);
    case 0xde:
        return s_sized(p, left, h, AMITY_WIRE_MAP, "map16", 2);
    default: /* 0xdf */
        return s_sized(p, left, h, AMITY_WIRE_MAP, "map32", 4);
    }
}

const char *
amity_wire_kind_name(amity_wire_kind_t k)
{
    static const char *const names[] = { "nil", "bool", "uint",  "int", "float",
                                         "str", "bin",  "array", "map", "ext" };
    if ((size_t)k < sizeof(names) / sizeof(names[0])) {
        return names[k];
    }
    return "?";
}

int
amity_rd_head(amity_rd_t *r, amity_wire_head_t *h)
{
    if (r->p >= r->end) {
        return AMITY_EPROTO;
    }
    size_t left = (size_t)(r->end - r->p);
    if (amity_wire_head_fast(r->p, left, h) != 0) {
        return AMITY_EPROTO;
    }
    r->p += h->head_len;
    left -= h->head_len;
    if (h->kind == AMITY_WIRE_STR || h->kind == AMITY_WIRE_BIN || h->kind == AMITY_WIRE_EXT) {
        if (h->n > left) {
            return AMITY_EPROTO;
        }
        h->ptr = r->p;
        r->p += h->n;
    }
    return 0;
}

int
amity_rd_skip(amity_rd_t *r)
{
    /* objects still to skip; each needs >= 1 byte, so a claim beyond the
     * bytes left is refused before the loop could spin on it */
    uint64_t pending = 1;
    while (pending > 0) {
        amity_wire_head_t h;
        if (amity_rd_head(r, &h) != 0) {
            return AMITY_EPROTO;
        }
        pending--;
        uint64_t left = (uint64_t)(r->end - r->p);
        if (pending > left) {
            return AMITY_EPROTO;
        }
        if (h.kind == AMITY_WIRE_ARRAY || h.kind == AMITY_WIRE_MAP) {
            uint64_t add = h.kind == AMITY_WIRE_MAP ? 2 * h.n : h.n;
            if (add > left - pending) {
                return AMITY_EPROTO;
            }
            pending += add;
        }
    }
    return 0;
}

void
amity_wire_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (!why || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        why[0] = '\0';
    }
}

/*  Length of the valid UTF-8 sequence at s (1..4), or 0 when invalid. */
static size_t
s_utf8_len(const uint8_t *s, size_t left)
{
    uint8_t c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1fu;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0fu;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (n > left) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0u) != 0x80u) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return n;
}

void
amity_wire_printable(const char *s, size_t len, char *dst, size_t dst_len)
{
    AMITY_ASSERT(dst && dst_len > 0);
    const uint8_t *u = (const uint8_t *)s;
    size_t o = 0;
    size_t i = 0;
    /* room for "..." and the NUL */
    size_t room = dst_len > 4 ? dst_len - 4 : 0;
    while (i < len) {
        size_t n = s_utf8_len(u + i, len - i);
        if (n == 0 || (n == 1 && (u[i] < 0x20 || u[i] == 0x7f))) {
            if (o + 1 > room) {
                break;
            }
            dst[o++] = '?';
            i += n ? n : 1;
            continue;
        }
        if (o + n > room) {
            break;
        }
        memcpy(dst + o, u + i, n);
        o += n;
        i += n;
    }
    if (i < len && dst_len > 4) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

static int
s_write(void *data, const char *buf, size_t len)
{
    amity_wr_t *w = data;
    if (w->rc != 0) {
        return -1;
    }
    int rc = amity_buf_append(w->out, buf, len);
    if (rc != 0) {
        w->rc = rc;
        return -1;
    }
    return 0;
}

void
amity_wr_begin(amity_wr_t *w, amity_buf_t *out)
{
    AMITY_ASSERT(w && out);
    w->out = out;
    w->mark = out->len;
    w->rc = 0;
    msgpack_packer_init(&w->pk, w, s_write);
}

void
amity_wr_raw(amity_wr_t *w, const void *p, size_t n)
{
    (void)s_write(w, p, n);
}

void
amity_wr_str(amity_wr_t *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        amity_wr_fail(w, AMITY_EINVAL);
        return;
    }
    (void)msgpack_pack_str_with_body(&w->pk, p, n);
}

void
amity_wr_cstr(amity_wr_t *w, const char *s)
{
    amity_wr_str(w, s, strlen(s));
}

void
amity_wr_fail(amity_wr_t *w, int rc)
{
    if (w->rc == 0) {
        w->rc = rc;
    }
}

int
amity_wr_end(amity_wr_t *w)
{
    if (w->rc != 0) {
        w->out->len = w->mark;
    }
    return w->rc;
}

amity_view_t
amity_view_str(const char *s)
{
    amity_view_t v = { NULL, 0 };
    if (s) {
        v.ptr = (const uint8_t *)s;
        v.len = strlen(s);
    }
    return v;
}

bool
amity_view_copy(amity_view_t v, char *buf, size_t buf_len)
{
    if (!buf || buf_len == 0) {
        return false;
    }
    if (v.len >= buf_len || (v.len > 0 && !v.ptr)) {
        buf[0] = '\0';
        return false;
    }
    if (v.len > 0) {
        memcpy(buf, v.ptr, v.len);
    }
    buf[v.len] = '\0';
    return true;
}
