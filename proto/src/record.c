/*  proto/src/record.c: the canonical encoding of a checked record, the
 *  bytes aggregate stores and compares (equal records, equal bytes).
 *
 *  Fixed key order: id, rev, retract (only when true), kind, date, country,
 *  each present metric in amity_metric_t order, amount + currency, scope,
 *  level, note. Absent fields are omitted. The amount is written as the
 *  decimal string of its minor units with the currency's decimals
 *  ("12.50" USD, "60000000000" VND), which is a valid record amount, so
 *  decoding is simply amity_fields_decode + amity_record_validate and gives
 *  back the same minor units.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/money.h"
#include "wire.h"

static const char *
s_scope_name(amity_scope_t s)
{
    return s == AMITY_SCOPE_BILATERAL ? "bilateral" : "multilateral";
}

static const char *
s_level_name(amity_level_t l)
{
    return l == AMITY_LEVEL_CENTRAL ? "central" : "local";
}

int
amity_record_encode(const amity_record_t *rec, amity_buf_t *out)
{
    AMITY_ASSERT(rec && out);
    size_t id_len = strnlen(rec->id, sizeof(rec->id));
    size_t country_len = strnlen(rec->country, sizeof(rec->country));
    size_t currency_len = strnlen(rec->currency, sizeof(rec->currency));
    bool has_date = rec->year != 0 || rec->month != 0 || rec->day != 0;
    int exponent = -1;
    char date[16];
    char amount[AMITY_MONEY_STR_MAX];
    size_t amount_len = 0;

    /* the struct must be one amity_record_validate could have produced */
    if (id_len == 0 || id_len > AMITY_ID_MAX || country_len > 2 || currency_len > 3 ||
        rec->note_len > AMITY_NOTE_MAX || (unsigned)rec->kind >= AMITY_KIND_COUNT ||
        (unsigned)rec->scope > AMITY_SCOPE_MULTILATERAL ||
        (unsigned)rec->level > AMITY_LEVEL_LOCAL || (rec->metric_mask >> AMITY_METRIC_COUNT) != 0) {
        return AMITY_EINVAL;
    }
    if (has_date && (rec->year < 0 || rec->year > 9999 || rec->month < 1 || rec->month > 12 ||
                     rec->day < 1 || rec->day > 31)) {
        return AMITY_EINVAL;
    }
    if (rec->has_amount) {
        exponent = amity_currency_exponent(rec->currency, currency_len);
        if (exponent < 0 || rec->amount < 0) {
            return AMITY_EINVAL;
        }
        amount_len = amity_money_format(rec->amount, exponent, amount);
    }

    size_t n = 2; /* id, rev */
    n += rec->retract ? 1 : 0;
    n += rec->kind != AMITY_KIND_NONE ? 1 : 0;
    n += has_date ? 1 : 0;
    n += country_len > 0 ? 1 : 0;
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        n += (rec->metric_mask >> m) & 1u;
    }
    n += rec->has_amount ? 2 : 0;
    n += rec->scope != AMITY_SCOPE_NONE ? 1 : 0;
    n += rec->level != AMITY_LEVEL_NONE ? 1 : 0;
    n += rec->note_len > 0 ? 1 : 0;

    amity_wr_t w;
    amity_wr_begin(&w, out);
    msgpack_pack_map(&w.pk, n);
    amity_wr_cstr(&w, "id");
    amity_wr_str(&w, rec->id, id_len);
    amity_wr_cstr(&w, "rev");
    msgpack_pack_uint64(&w.pk, rec->rev);
    if (rec->retract) {
        amity_wr_cstr(&w, "retract");
        msgpack_pack_true(&w.pk);
    }
    if (rec->kind != AMITY_KIND_NONE) {
        amity_wr_cstr(&w, "kind");
        amity_wr_cstr(&w, amity_kind_name(rec->kind));
    }
    if (has_date) {
        int len = snprintf(date, sizeof(date), "%04d-%02d-%02d", rec->year, rec->month, rec->day);
        amity_wr_cstr(&w, "date");
        amity_wr_str(&w, date, (size_t)len);
    }
    if (country_len > 0) {
        amity_wr_cstr(&w, "country");
        amity_wr_str(&w, rec->country, country_len);
    }
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if ((rec->metric_mask >> m) & 1u) {
            amity_wr_cstr(&w, amity_metric_name((amity_metric_t)m));
            msgpack_pack_uint32(&w.pk, rec->metrics[m]);
        }
    }
    if (rec->has_amount) {
        amity_wr_cstr(&w, "amount");
        amity_wr_str(&w, amount, amount_len);
        amity_wr_cstr(&w, "currency");
        amity_wr_str(&w, rec->currency, currency_len);
    }
    if (rec->scope != AMITY_SCOPE_NONE) {
        amity_wr_cstr(&w, "scope");
        amity_wr_cstr(&w, s_scope_name(rec->scope));
    }
    if (rec->level != AMITY_LEVEL_NONE) {
        amity_wr_cstr(&w, "level");
        amity_wr_cstr(&w, s_level_name(rec->level));
    }
    if (rec->note_len > 0) {
        amity_wr_cstr(&w, "note");
        amity_wr_str(&w, rec->note, rec->note_len);
    }
    return amity_wr_end(&w);
}

int
amity_record_decode(const uint8_t *buf, size_t len, amity_record_t *rec, char *why, size_t why_len)
{
    amity_fields_t fields;
    char reason[AMITY_WHY_MAX];
    amity_validate_opts_t opts = { NULL, INT32_MAX };

    AMITY_ASSERT(rec);
    memset(rec, 0, sizeof(*rec));
    int rc = amity_fields_decode(buf, len, &fields, why, why_len);
    if (rc != 0) {
        return rc;
    }
    reason[0] = '\0';
    if (amity_record_validate(&fields, &opts, rec, reason) != 0) {
        amity_wire_why(why, why_len, "%s", reason);
        memset(rec, 0, sizeof(*rec));
        return AMITY_EPROTO;
    }
    return 0;
}
