/*  proto/src/fields.c: a record's top-level msgpack map <-> amity_fields_t.
 *  Decoding is structural only (the map, its string keys, no duplicates,
 *  scalar values as views); the rules of DOMAIN.md are common/record.c's.
 */
#include <string.h>

#include "amity/err.h"
#include "wire.h"

/*  Bytes of a field name shown in an error message. */
#define S_NAME_SHOWN 64

static int
s_fail(amity_fields_t *out)
{
    out->n_fields = 0;
    return AMITY_EPROTO;
}

/*  Reads one value; containers are skipped whole, their content unexposed. */
static int
s_read_val(amity_rd_t *r, amity_val_t *v)
{
    amity_rd_t at = *r;
    amity_wire_head_t h;
    if (amity_rd_head(r, &h) != 0) {
        return AMITY_EPROTO;
    }
    memset(v, 0, sizeof(*v));
    switch (h.kind) {
    case AMITY_WIRE_NIL:
        v->type = AMITY_VAL_NIL;
        break;
    case AMITY_WIRE_BOOL:
        v->type = AMITY_VAL_BOOL;
        v->as.b = h.b;
        break;
    case AMITY_WIRE_UINT:
        v->type = AMITY_VAL_UINT;
        v->as.u = h.u;
        break;
    case AMITY_WIRE_INT:
        /* a non-negative value in a signed encoding is still a count */
        if (h.i >= 0) {
            v->type = AMITY_VAL_UINT;
            v->as.u = (uint64_t)h.i;
        } else {
            v->type = AMITY_VAL_INT;
            v->as.i = h.i;
        }
        break;
    case AMITY_WIRE_FLOAT:
        v->type = AMITY_VAL_FLOAT;
        v->as.f = h.f;
        break;
    case AMITY_WIRE_STR:
    case AMITY_WIRE_BIN:
    case AMITY_WIRE_EXT:
        v->type = h.kind == AMITY_WIRE_STR   ? AMITY_VAL_STR
                  : h.kind == AMITY_WIRE_BIN ? AMITY_VAL_BIN
                                             : AMITY_VAL_EXT;
        v->as.s.ptr = (const char *)h.ptr;
        v->as.s.len = (size_t)h.n;
        break;
    case AMITY_WIRE_ARRAY:
    case AMITY_WIRE_MAP:
        v->type = h.kind == AMITY_WIRE_ARRAY ? AMITY_VAL_ARRAY : AMITY_VAL_MAP;
        *r = at;
        return amity_rd_skip(r);
    }
    return 0;
}

int
amity_fields_decode(const uint8_t *buf, size_t len, amity_fields_t *out, char *why, size_t why_len)
{
    char scan_why[AMITY_WHY_MAX];
    char shown[S_NAME_SHOWN + 4];

    AMITY_ASSERT(out);
    out->n_fields = 0;
    int rc = amity_scan(buf, len, AMITY_DEPTH_MAX, scan_why, sizeof(scan_why));
    if (rc != 0) {
        amity_wire_why(why, why_len, "record: %s", scan_why);
        return rc == AMITY_ENOMEM ? rc : AMITY_EPROTO;
    }

    amity_rd_t r = { buf, buf + len };
    amity_wire_head_t h;
    if (amity_rd_head(&r, &h) != 0) {
        amity_wire_why(why, why_len, "record: truncated");
        return s_fail(out);
    }
    if (h.kind != AMITY_WIRE_MAP) {
        amity_wire_why(why, why_len, "record: not a map (got %s)", amity_wire_kind_name(h.kind));
        return s_fail(out);
    }
    if (h.n > AMITY_FIELDS_MAX) {
        amity_wire_why(why, why_len, "record: more than %d fields (%llu)", AMITY_FIELDS_MAX,
                       (unsigned long long)h.n);
        return s_fail(out);
    }

    for (size_t i = 0; i < (size_t)h.n; i++) {
        amity_wire_head_t k;
        if (amity_rd_head(&r, &k) != 0) {
            amity_wire_why(why, why_len, "record: truncated");
            return s_fail(out);
        }
        if (k.kind != AMITY_WIRE_STR) {
            amity_wire_why(why, why_len, "record: field name is not a string (got %s)",
                           amity_wire_kind_name(k.kind));
            return s_fail(out);
        }
        amity_field_t *f = &out->fields[i];
        f->name = (const char *)k.ptr;
        f->name_len = (size_t)k.n;
        for (size_t j = 0; j < i; j++) {
            if (out->fields[j].name_len == f->name_len &&
                memcmp(out->fields[j].name, f->name, f->name_len) == 0) {
                amity_wire_printable(f->name, f->name_len, shown, sizeof(shown));
                amity_wire_why(why, why_len, "%s: given twice", shown);
                return s_fail(out);
            }
        }
        if (s_read_val(&r, &f->val) != 0) {
            amity_wire_why(why, why_len, "record: truncated");
            return s_fail(out);
        }
        out->n_fields = i + 1;
    }
    return 0;
}

int
amity_fields_encode(const amity_fields_t *f, amity_buf_t *out)
{
    AMITY_ASSERT(f && out);
    if (f->n_fields > AMITY_FIELDS_MAX) {
        return AMITY_EINVAL;
    }
    for (size_t i = 0; i < f->n_fields; i++) {
        const amity_field_t *a = &f->fields[i];
        if (!a->name && a->name_len > 0) {
            return AMITY_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (f->fields[j].name_len == a->name_len &&
                (a->name_len == 0 || memcmp(f->fields[j].name, a->name, a->name_len) == 0)) {
                return AMITY_EINVAL;
            }
        }
        switch (a->val.type) {
        case AMITY_VAL_STR:
        case AMITY_VAL_BIN:
            if (!a->val.as.s.ptr && a->val.as.s.len > 0) {
                return AMITY_EINVAL;
            }
            if (a->val.as.s.len > UINT32_MAX) {
                return AMITY_EINVAL;
            }
            break;
        case AMITY_VAL_NIL:
        case AMITY_VAL_BOOL:
        case AMITY_VAL_UINT:
        case AMITY_VAL_INT:
        case AMITY_VAL_FLOAT:
            break;
        default:
            return AMITY_EINVAL;
        }
    }

    amity_wr_t w;
    amity_wr_begin(&w, out);
    msgpack_pack_map(&w.pk, f->n_fields);
    for (size_t i = 0; i < f->n_fields; i++) {
        const amity_field_t *a = &f->fields[i];
        amity_wr_str(&w, a->name, a->name_len);
        switch (a->val.type) {
        case AMITY_VAL_NIL:
            msgpack_pack_nil(&w.pk);
            break;
        case AMITY_VAL_BOOL:
            if (a->val.as.b) {
                msgpack_pack_true(&w.pk);
            } else {
                msgpack_pack_false(&w.pk);
            }
            break;
        case AMITY_VAL_UINT:
            msgpack_pack_uint64(&w.pk, a->val.as.u);
            break;
        case AMITY_VAL_INT:
            msgpack_pack_int64(&w.pk, a->val.as.i);
            break;
        case AMITY_VAL_FLOAT:
            msgpack_pack_double(&w.pk, a->val.as.f);
            break;
        case AMITY_VAL_STR:
            amity_wr_str(&w, a->val.as.s.ptr, a->val.as.s.len);
            break;
        default: /* AMITY_VAL_BIN; the rest were refused above */
            msgpack_pack_bin_with_body(&w.pk, a->val.as.s.ptr, a->val.as.s.len);
            break;
        }
    }
    return amity_wr_end(&w);
}
