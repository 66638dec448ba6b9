/*  record: the rules of DOMAIN.md for one record. validate turns the field
 *  list that proto decoded into a checked amity_record_t, or says which
 *  field broke which rule. Pure: no I/O, no allocation, no global state.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/money.h"
#include "amity/record.h"

/* bytes of a quoted input value or field name inside a reason */
#define S_QUOTE_MAX 48
/* the earliest date a record may carry */
#define S_DATE_MIN_Y 1945

/* ---- names ------------------------------------------------------------ */

static const char *const s_kind_names[AMITY_KIND_COUNT] = {
    [AMITY_KIND_NONE] = NULL,
    [AMITY_KIND_DELEGATION_IN] = "delegation_in",
    [AMITY_KIND_DELEGATION_OUT] = "delegation_out",
    [AMITY_KIND_ACTIVITY] = "activity",
    [AMITY_KIND_AID_COMMITMENT] = "aid_commitment",
    [AMITY_KIND_AID_DISBURSEMENT] = "aid_disbursement",
    [AMITY_KIND_RELIEF] = "relief",
    [AMITY_KIND_AWARD] = "award",
    [AMITY_KIND_CONTACT] = "contact",
    [AMITY_KIND_ORG_FOUNDED] = "org_founded",
};

static const char *const s_metric_names[AMITY_METRIC_COUNT] = {
    [AMITY_METRIC_DELEGATIONS] = "delegations",
    [AMITY_METRIC_PEOPLE] = "people",
    [AMITY_METRIC_ACTIVITIES] = "activities",
    [AMITY_METRIC_PROJECTS] = "projects",
    [AMITY_METRIC_AWARDS] = "awards",
    [AMITY_METRIC_PARTNERS] = "partners",
    [AMITY_METRIC_ORGS] = "orgs",
};

#define S_BIT(m) (1u << (m))

/* The kind table of DOMAIN.md. */
typedef struct {
    uint32_t metrics; /* required count metrics */
    bool amount;      /* amount + currency required */
    bool country;     /* country required */
} s_kind_rule_t;

static const s_kind_rule_t s_kind_rules[AMITY_KIND_COUNT] = {
    [AMITY_KIND_NONE] = { 0, false, false },
    [AMITY_KIND_DELEGATION_IN] = { S_BIT(AMITY_METRIC_DELEGATIONS) | S_BIT(AMITY_METRIC_PEOPLE),
                                   false, true },
    [AMITY_KIND_DELEGATION_OUT] = { S_BIT(AMITY_METRIC_DELEGATIONS) | S_BIT(AMITY_METRIC_PEOPLE),
                                    false, true },
    [AMITY_KIND_ACTIVITY] = { S_BIT(AMITY_METRIC_ACTIVITIES), false, false },
    [AMITY_KIND_AID_COMMITMENT] = { S_BIT(AMITY_METRIC_PROJECTS), true, true },
    [AMITY_KIND_AID_DISBURSEMENT] = { 0, true, true },
    [AMITY_KIND_RELIEF] = { 0, true, false },
    [AMITY_KIND_AWARD] = { S_BIT(AMITY_METRIC_AWARDS), false, true },
    [AMITY_KIND_CONTACT] = { S_BIT(AMITY_METRIC_PARTNERS), false, true },
    [AMITY_KIND_ORG_FOUNDED] = { S_BIT(AMITY_METRIC_ORGS), false, false },
};

const char *
amity_kind_name(amity_kind_t kind)
{
    if ((int)kind <= (int)AMITY_KIND_NONE || (int)kind >= (int)AMITY_KIND_COUNT) {
        return NULL;
    }
    return s_kind_names[kind];
}

amity_kind_t
amity_kind_parse(const char *s, size_t len)
{
    if (s == NULL) {
        return AMITY_KIND_NONE;
    }
    for (int k = AMITY_KIND_NONE + 1; k < AMITY_KIND_COUNT; k++) {
        const char *name = s_kind_names[k];
        if (strlen(name) == len && memcmp(name, s, len) == 0) {
            return (amity_kind_t)k;
        }
    }
    return AMITY_KIND_NONE;
}

const char *
amity_metric_name(amity_metric_t m)
{
    if ((int)m < 0 || (int)m >= (int)AMITY_METRIC_COUNT) {
        return NULL;
    }
    return s_metric_names[m];
}

uint32_t
amity_kind_metrics(amity_kind_t kind)
{
    if ((int)kind < 0 || (int)kind >= (int)AMITY_KIND_COUNT) {
        return 0;
    }
    return s_kind_rules[kind].metrics;
}

bool
amity_kind_has_amount(amity_kind_t kind)
{
    if ((int)kind < 0 || (int)kind >= (int)AMITY_KIND_COUNT) {
        return false;
    }
    return s_kind_rules[kind].amount;
}

bool
amity_kind_needs_country(amity_kind_t kind)
{
    if ((int)kind < 0 || (int)kind >= (int)AMITY_KIND_COUNT) {
        return false;
    }
    return s_kind_rules[kind].country;
}

/* ---- dates ------------------------------------------------------------ */

/* Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms". */
int32_t
amity_days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;                                  /* [0, 399] */
    int doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1; /* [0, 365] */
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;          /* [0, 146096] */
    return (int32_t)(era * 146097 + doe - 719468);
}

static int
s_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
s_month_days(int y, int m)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return (m == 2 && s_leap(y)) ? 29 : days[m - 1];
}

/* ---- text ------------------------------------------------------------- */

/* Length of the strict UTF-8 sequence at s[0..len), 0 when invalid. */
static size_t
s_utf8_seq(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    if (c < 0x80) {
        return 1;
    }
    size_t n;
    unsigned char lo = 0x80; /* bounds of the second byte: excludes overlongs, */
    unsigned char hi = 0xBF; /* surrogates and code points above U+10FFFF */
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) {
            lo = 0xA0;
        } else if (c == 0xED) {
            hi = 0x9F;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) {
            lo = 0x90;
        } else if (c == 0xF4) {
            hi = 0x8F;
        }
    } else {
        return 0;
    }
    if (len < n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

bool
amity_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = s_utf8_seq(p + i, len - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}

size_t
amity_text_sanitize(char *dst, size_t dst_len, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t out = 0;
    size_t i = 0;

    if (dst == NULL || dst_len == 0) {
        return 0;
    }
    if (dst_len < 4 || s == NULL) {
        dst[0] = '\0';
        return 0;
    }
    while (i < len) {
        char piece[4];
        size_t piece_len;
        size_t used;
        size_t n = s_utf8_seq(p + i, len - i);
        /* C1 controls U+0080..U+009F are encoded C2 80..C2 9F */
        int c1 = n == 2 && p[i] == 0xC2 && p[i + 1] < 0xA0;
        if (n == 1 && p[i] == '\\') {
            piece[0] = '\\';
            piece[1] = '\\';
            piece_len = 2;
            used = 1;
        } else if (n == 1 && p[i] >= 0x20 && p[i] < 0x7F) {
            piece[0] = (char)p[i];
            piece_len = 1;
            used = 1;
        } else if (n > 1 && !c1) {
            memcpy(piece, p + i, n);
            piece_len = n;
            used = n;
        } else {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[p[i] >> 4];
            piece[3] = hex[p[i] & 0x0F];
            piece_len = 4;
            used = 1;
        }
        /* room for this piece, the NUL, and "..." if more follows */
        size_t reserve = (i + used < len) ? 3 : 0;
        if (out + piece_len + reserve + 1 > dst_len) {
            break;
        }
        memcpy(dst + out, piece, piece_len);
        out += piece_len;
        i += used;
    }
    if (i < len) {
        /* every piece taken while more followed left room for "..." */
        memcpy(dst + out, "...", 3);
        out += 3;
    }
    dst[out] = '\0';
    return out;
}

/* ---- validation ------------------------------------------------------- */

/* The fields a record may carry (besides metrics and x- fields). */
enum {
    S_F_ID = 0,
    S_F_REV,
    S_F_RETRACT,
    S_F_KIND,
    S_F_DATE,
    S_F_COUNTRY,
    S_F_AMOUNT,
    S_F_CURRENCY,
    S_F_SCOPE,
    S_F_LEVEL,
    S_F_NOTE,
    S_F_OFFICE,
    S_F_METRIC0, /* then one slot per count metric */
    S_F_COUNT = S_F_METRIC0 + AMITY_METRIC_COUNT
};

static const char *const s_field_names[S_F_METRIC0] = {
    "id",     "rev",      "retract", "kind",  "date", "country",
    "amount", "currency", "scope",   "level", "note", "office",
};

typedef struct {
    const amity_val_t *slot[S_F_COUNT]; /* value of each known field, NULL when absent */
    amity_val_t copy[S_F_COUNT];        /* the values slot points to, normalised */
    char *why;                          /* reason buffer, AMITY_WHY_MAX bytes */
} s_ctx_t;

static int s_fail(s_ctx_t *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the reason (cut at a UTF-8 boundary if ever too long) and
 * returns AMITY_EINVAL. */
static int
s_fail(s_ctx_t *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ctx->why, AMITY_WHY_MAX, fmt, ap);
    va_end(ap);
    if (n < 0) {
        ctx->why[0] = '\0';
    } else if ((size_t)n >= AMITY_WHY_MAX) {
        /* quoted values are bounded, so this is a safety net: drop the
         * character that vsnprintf may have cut in half */
        size_t end = AMITY_WHY_MAX - 1;
        while (end > 0 && !amity_utf8_valid(ctx->why, end)) {
            end--;
        }
        ctx->why[end] = '\0';
    }
    return AMITY_EINVAL;
}

static const char *
s_type_name(amity_val_type_t t)
{
    switch (t) {
    case AMITY_VAL_NIL:
        return "nil";
    case AMITY_VAL_BOOL:
        return "a boolean";
    case AMITY_VAL_UINT:
        return "an unsigned integer";
    case AMITY_VAL_INT:
        return "a negative integer";
    case AMITY_VAL_FLOAT:
        return "a floating-point number";
    case AMITY_VAL_STR:
        return "a string";
    case AMITY_VAL_BIN:
        return "binary data";
    case AMITY_VAL_ARRAY:
        return "an array";
    case AMITY_VAL_MAP:
        return "a map";
    case AMITY_VAL_EXT:
        return "an extension type";
    }
    return "an unknown type";
}

static int
s_is_str(const amity_val_t *v)
{
    return v->type == AMITY_VAL_STR;
}

static int
s_str_eq(const amity_val_t *v, const char *lit)
{
    size_t n = strlen(lit);
    return v->as.s.len == n && memcmp(v->as.s.ptr, lit, n) == 0;
}

static int
s_fail_not_string(s_ctx_t *ctx, const char *field, const amity_val_t *v)
{
    return s_fail(ctx, "%s: must be a string, not %s", field, s_type_name(v->type));
}

/* Sorts each field into its slot; rejects duplicates and unknown names. */
static int
s_collect(s_ctx_t *ctx, const amity_fields_t *fields)
{
    char name[S_QUOTE_MAX];

    if (fields->n_fields > AMITY_FIELDS_MAX) {
        return s_fail(ctx, "record: more than %d fields", AMITY_FIELDS_MAX);
    }
    for (size_t i = 0; i < fields->n_fields; i++) {
        const amity_field_t *f = &fields->fields[i];
        size_t len = f->name == NULL ? 0 : f->name_len;
        if (len >= 2 && f->name[0] == 'x' && f->name[1] == '-') {
            continue;
        }
        int slot = -1;
        for (int k = 0; k < S_F_COUNT && slot < 0; k++) {
            const char *known =
                k < S_F_METRIC0 ? s_field_names[k] : s_metric_names[k - S_F_METRIC0];
            if (strlen(known) == len && memcmp(known, f->name, len) == 0) {
                slot = k;
            }
        }
        if (slot < 0) {
            if (len == 0) {
                return s_fail(ctx, "(empty name): unknown field");
            }
            (void)amity_text_sanitize(name, sizeof(name), f->name, len);
            return s_fail(ctx, "%s: unknown field", name);
        }
        if (ctx->slot[slot] != NULL) {
            return s_fail(ctx, "%.*s: given more than once", (int)len, f->name);
        }
        /* an encoder may write a non-negative number as a signed int:
         * it is the same number, so treat it as unsigned */
        ctx->copy[slot] = f->val;
        if (f->val.type == AMITY_VAL_INT && f->val.as.i >= 0) {
            ctx->copy[slot].type = AMITY_VAL_UINT;
            ctx->copy[slot].as.u = (uint64_t)f->val.as.i;
        }
        ctx->slot[slot] = &ctx->copy[slot];
    }
    return 0;
}

static int
s_id_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static int
s_check_id(s_ctx_t *ctx, amity_record_t *out)
{
    char q[S_QUOTE_MAX];
    const amity_val_t *v = ctx->slot[S_F_ID];

    if (v == NULL) {
        return s_fail(ctx, "id: required");
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "id", v);
    }
    size_t len = v->as.s.len;
    if (len == 0) {
        return s_fail(ctx, "id: must not be empty");
    }
    if (len > AMITY_ID_MAX) {
        return s_fail(ctx, "id: %zu bytes is longer than %d", len, AMITY_ID_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        if (!s_id_char(v->as.s.ptr[i])) {
            (void)amity_text_sanitize(q, sizeof(q), v->as.s.ptr, len);
            return s_fail(ctx, "id: '%s' has a character outside A-Z a-z 0-9 . _ : -", q);
        }
    }
    memcpy(out->id, v->as.s.ptr, len);
    out->id[len] = '\0';
    return 0;
}

static int
s_check_rev(s_ctx_t *ctx, amity_record_t *out)
{
    const amity_val_t *v = ctx->slot[S_F_REV];

    out->rev = 1;
    if (v == NULL) {
        return 0;
    }
    if (v->type != AMITY_VAL_UINT) {
        return s_fail(ctx, "rev: not an unsigned integer (%s)", s_type_name(v->type));
    }
    if (v->as.u == 0) {
        return s_fail(ctx, "rev: 0 is not a revision; revisions start at 1");
    }
    out->rev = v->as.u;
    return 0;
}

static int
s_check_retract(s_ctx_t *ctx, amity_record_t *out)
{
    const amity_val_t *v = ctx->slot[S_F_RETRACT];

    out->retract = false;
    if (v == NULL) {
        return 0;
    }
    if (v->type != AMITY_VAL_BOOL) {
        return s_fail(ctx, "retract: must be true or false, not %s", s_type_name(v->type));
    }
    if (v->as.b && out->rev < 2) {
        return s_fail(ctx, "retract: a retraction needs rev 2 or higher");
    }
    out->retract = v->as.b;
    return 0;
}

static int
s_check_office(s_ctx_t *ctx, const amity_validate_opts_t *opts)
{
    char q[S_QUOTE_MAX];
    char sender[S_QUOTE_MAX];
    const amity_val_t *v = ctx->slot[S_F_OFFICE];

    if (v == NULL) {
        return 0;
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "office", v);
    }
    if (opts->office != NULL && !s_str_eq(v, opts->office)) {
        (void)amity_text_sanitize(q, sizeof(q), v->as.s.ptr, v->as.s.len);
        (void)amity_text_sanitize(sender, sizeof(sender), opts->office, strlen(opts->office));
        return s_fail(ctx, "office: '%s' is not the sending office '%s'", q, sender);
    }
    return 0;
}

static int
s_check_kind(s_ctx_t *ctx, amity_record_t *out)
{
    char q[S_QUOTE_MAX];
    const amity_val_t *v = ctx->slot[S_F_KIND];

    if (v == NULL) {
        return s_fail(ctx, "kind: required");
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "kind", v);
    }
    out->kind = amity_kind_parse(v->as.s.ptr, v->as.s.len);
    if (out->kind == AMITY_KIND_NONE) {
        (void)amity_text_sanitize(q, sizeof(q), v->as.s.ptr, v->as.s.len);
        return s_fail(ctx,
                      "kind: '%s' is not a kind (delegation_in, delegation_out, activity, "
                      "aid_commitment, aid_disbursement, relief, award, contact, org_founded)",
                      q);
    }
    return 0;
}

static int
s_digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int
s_check_date(s_ctx_t *ctx, const amity_validate_opts_t *opts, amity_record_t *out)
{
    char q[S_QUOTE_MAX];
    const amity_val_t *v = ctx->slot[S_F_DATE];
    int y;
    int m;
    int d;

    if (v == NULL) {
        return s_fail(ctx, "date: required");
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "date", v);
    }
    const char *s = v->as.s.ptr;
    (void)amity_text_sanitize(q, sizeof(q), s, v->as.s.len);
    if (v->as.s.len != 10 || s[4] != '-' || s[7] != '-' || s_digits(s, 4, &y) != 0 ||
        s_digits(s + 5, 2, &m) != 0 || s_digits(s + 8, 2, &d) != 0) {
        return s_fail(ctx, "date: '%s' is not in the form YYYY-MM-DD", q);
    }
    if (m < 1 || m > 12 || d < 1 || d > s_month_days(y, m)) {
        return s_fail(ctx, "date: %s is not a calendar date", q);
    }
    if (y < S_DATE_MIN_Y) {
        return s_fail(ctx, "date: %s is before 1945-01-01", q);
    }
    if (opts->max_day != INT32_MAX && amity_days_from_civil(y, m, d) > opts->max_day) {
        return s_fail(ctx, "date: %s is later than tomorrow", q);
    }
    out->year = y;
    out->month = m;
    out->day = d;
    return 0;
}

static int
s_check_country(s_ctx_t *ctx, amity_record_t *out)
{
    char q[S_QUOTE_MAX];
    const amity_val_t *v = ctx->slot[S_F_COUNTRY];

    if (v == NULL) {
        if (amity_kind_needs_country(out->kind)) {
            return s_fail(ctx, "country: required for %s", amity_kind_name(out->kind));
        }
        return 0;
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "country", v);
    }
    if (amity_country_region(v->as.s.ptr, v->as.s.len) == NULL) {
        (void)amity_text_sanitize(q, sizeof(q), v->as.s.ptr, v->as.s.len);
        return s_fail(ctx, "country: '%s' is not an assigned ISO 3166-1 alpha-2 code (upper case)",
                      q);
    }
    memcpy(out->country, v->as.s.ptr, 2);
    out->country[2] = '\0';
    return 0;
}

static int
s_check_metrics(s_ctx_t *ctx, amity_record_t *out)
{
    uint32_t allowed = amity_kind_metrics(out->kind);
    const char *kind = amity_kind_name(out->kind);

    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        const amity_val_t *v = ctx->slot[S_F_METRIC0 + m];
        const char *name = s_metric_names[m];
        if (v == NULL) {
            if (allowed & S_BIT(m)) {
                return s_fail(ctx, "%s: required for %s", name, kind);
            }
            continue;
        }
        if (!(allowed & S_BIT(m))) {
            return s_fail(ctx, "%s: not a metric of %s", name, kind);
        }
        switch (v->type) {
        case AMITY_VAL_UINT:
            break;
        case AMITY_VAL_INT:
            return s_fail(ctx, "%s: %" PRId64 " is negative; counts are 0 or more", name, v->as.i);
        case AMITY_VAL_FLOAT:
            return s_fail(ctx, "%s: must be a whole number, not a floating-point number", name);
        default:
            return s_fail(ctx, "%s: must be an unsigned integer, not %s", name,
                          s_type_name(v->type));
        }
        if (v->as.u > AMITY_METRIC_MAX) {
            return s_fail(ctx, "%s: %" PRIu64 " is more than %u", name, v->as.u, AMITY_METRIC_MAX);
        }
        out->metric_mask |= S_BIT(m);
        out->metrics[m] = (uint32_t)v->as.u;
    }
    return 0;
}

/* When s is DIGITS '.' DIGITS with more decimals than exponent, the count
 * of decimals; 0 otherwise (money_parse reports the other shapes). */
static size_t
s_excess_decimals(const char *s, size_t len, int exponent)
{
    size_t i = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (i == 0 || i == len || s[i] != '.') {
        return 0;
    }
    size_t n_frac = len - i - 1;
    for (size_t k = i + 1; k < len; k++) {
        if (s[k] < '0' || s[k] > '9') {
            return 0;
        }
    }
    return n_frac > (size_t)exponent ? n_frac : 0;
}

static int
s_check_money(s_ctx_t *ctx, amity_record_t *out)
{
    char q[S_QUOTE_MAX];
    const amity_val_t *amount = ctx->slot[S_F_AMOUNT];
    const amity_val_t *currency = ctx->slot[S_F_CURRENCY];
    const char *kind = amity_kind_name(out->kind);
    bool wanted = amity_kind_has_amount(out->kind);

    if (amount != NULL && !wanted) {
        return s_fail(ctx, "amount: not allowed for %s", kind);
    }
    if (amount == NULL) {
        if (wanted) {
            return s_fail(ctx, "amount: required for %s", kind);
        }
        if (currency != NULL) {
            return s_fail(ctx, "currency: not allowed without amount");
        }
        return 0;
    }
    if (currency == NULL) {
        return s_fail(ctx, "currency: required with amount");
    }
    if (!s_is_str(currency)) {
        return s_fail_not_string(ctx, "currency", currency);
    }
    int exponent = amity_currency_exponent(currency->as.s.ptr, currency->as.s.len);
    if (exponent < 0) {
        (void)amity_text_sanitize(q, sizeof(q), currency->as.s.ptr, currency->as.s.len);
        return s_fail(ctx, "currency: '%s' is not an active ISO 4217 code (upper case)", q);
    }
    memcpy(out->currency, currency->as.s.ptr, 3);
    out->currency[3] = '\0';

    int rc;
    switch (amount->type) {
    case AMITY_VAL_STR: {
        size_t n_frac = s_excess_decimals(amount->as.s.ptr, amount->as.s.len, exponent);
        if (n_frac > 0) {
            (void)amity_text_sanitize(q, sizeof(q), amount->as.s.ptr, amount->as.s.len);
            return s_fail(ctx, "amount: %s has more decimals than %s allows (%d)", q, out->currency,
                          exponent);
        }
        rc = amity_money_parse(amount->as.s.ptr, amount->as.s.len, exponent, &out->amount, ctx->why,
                               AMITY_WHY_MAX);
        break;
    }
    case AMITY_VAL_UINT:
        rc = amity_money_from_units(amount->as.u, exponent, &out->amount, ctx->why, AMITY_WHY_MAX);
        break;
    case AMITY_VAL_INT:
        return s_fail(ctx, "amount: must not be negative");
    case AMITY_VAL_FLOAT:
        return s_fail(ctx, "amount: floating-point numbers are not exact; give a decimal string");
    default:
        return s_fail(ctx, "amount: must be a decimal string or an unsigned integer, not %s",
                      s_type_name(amount->type));
    }
    if (rc != 0) {
        return AMITY_EINVAL;
    }
    out->has_amount = true;
    return 0;
}

static int
s_check_choice(s_ctx_t *ctx, int slot, amity_kind_t kind, amity_kind_t only, const char *a,
               const char *b, int *out)
{
    char q[S_QUOTE_MAX];
    const char *field = s_field_names[slot];
    const amity_val_t *v = ctx->slot[slot];

    *out = 0;
    if (v == NULL) {
        return 0;
    }
    if (kind != only) {
        return s_fail(ctx, "%s: not allowed for %s", field, amity_kind_name(kind));
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, field, v);
    }
    if (s_str_eq(v, a)) {
        *out = 1;
    } else if (s_str_eq(v, b)) {
        *out = 2;
    } else {
        (void)amity_text_sanitize(q, sizeof(q), v->as.s.ptr, v->as.s.len);
        return s_fail(ctx, "%s: '%s' is not %s or %s", field, q, a, b);
    }
    return 0;
}

static int
s_check_note(s_ctx_t *ctx, amity_record_t *out)
{
    const amity_val_t *v = ctx->slot[S_F_NOTE];

    if (v == NULL) {
        return 0;
    }
    if (!s_is_str(v)) {
        return s_fail_not_string(ctx, "note", v);
    }
    if (v->as.s.len > AMITY_NOTE_MAX) {
        return s_fail(ctx, "note: %zu bytes is more than %d", v->as.s.len, AMITY_NOTE_MAX);
    }
    if (!amity_utf8_valid(v->as.s.ptr, v->as.s.len)) {
        return s_fail(ctx, "note: not valid UTF-8");
    }
    memcpy(out->note, v->as.s.ptr, v->as.s.len);
    out->note[v->as.s.len] = '\0';
    out->note_len = v->as.s.len;
    return 0;
}

int
amity_record_validate(const amity_fields_t *fields, const amity_validate_opts_t *opts,
                      amity_record_t *out, char why[AMITY_WHY_MAX])
{
    s_ctx_t ctx;
    int rc;
    int choice;

    AMITY_ASSERT(fields != NULL && opts != NULL && out != NULL && why != NULL);
    memset(out, 0, sizeof(*out));
    memset(&ctx, 0, sizeof(ctx));
    ctx.why = why;
    why[0] = '\0';

    if ((rc = s_collect(&ctx, fields)) != 0 || (rc = s_check_id(&ctx, out)) != 0 ||
        (rc = s_check_rev(&ctx, out)) != 0 || (rc = s_check_retract(&ctx, out)) != 0 ||
        (rc = s_check_office(&ctx, opts)) != 0) {
        goto fail;
    }
    if (out->retract) {
        /* a retraction needs only id, rev and retract; the rest is ignored */
        return 0;
    }
    if ((rc = s_check_kind(&ctx, out)) != 0 || (rc = s_check_date(&ctx, opts, out)) != 0 ||
        (rc = s_check_country(&ctx, out)) != 0 || (rc = s_check_metrics(&ctx, out)) != 0 ||
        (rc = s_check_money(&ctx, out)) != 0) {
        goto fail;
    }
    if ((rc = s_check_choice(&ctx, S_F_SCOPE, out->kind, AMITY_KIND_ACTIVITY, "bilateral",
                             "multilateral", &choice)) != 0) {
        goto fail;
    }
    out->scope = (amity_scope_t)choice;
    if ((rc = s_check_choice(&ctx, S_F_LEVEL, out->kind, AMITY_KIND_ORG_FOUNDED, "central", "local",
                             &choice)) != 0) {
        goto fail;
    }
    out->level = (amity_level_t)choice;
    if ((rc = s_check_note(&ctx, out)) != 0) {
        goto fail;
    }
    return 0;

fail:
    memset(out, 0, sizeof(*out));
    return rc;
}

bool
amity_record_equal(const amity_record_t *a, const amity_record_t *b)
{
    if (strcmp(a->id, b->id) != 0 || a->rev != b->rev || a->retract != b->retract ||
        a->kind != b->kind || a->year != b->year || a->month != b->month || a->day != b->day ||
        strcmp(a->country, b->country) != 0 || a->metric_mask != b->metric_mask ||
        a->has_amount != b->has_amount || a->scope != b->scope || a->level != b->level ||
        a->note_len != b->note_len) {
        return false;
    }
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if ((a->metric_mask & S_BIT(m)) && a->metrics[m] != b->metrics[m]) {
            return false;
        }
    }
    if (a->has_amount && (a->amount != b->amount || strcmp(a->currency, b->currency) != 0)) {
        return false;
    }
    return a->note_len <= AMITY_NOTE_MAX && memcmp(a->note, b->note, a->note_len) == 0;
}
