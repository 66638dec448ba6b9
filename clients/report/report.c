/*  report: the period review of amity-report. Collects the `all` geo
 *  totals of a period and of the same period one year earlier, computes
 *  the changes in exact integer arithmetic and renders them as the
 *  secretariat writes them (vi/en text) or as JSON.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"
#include "amity/money.h"
#include "report.h"

#define S_MINUS      "−" /* U+2212 MINUS SIGN */
#define S_EM_DASH    "—" /* U+2014: no change to speak of (both zero) */
#define S_CUR_MAX    256 /* currencies on one line at most (ISO 4217 has ~180) */
#define S_OFFICE_MAX 64

/* ---- periods ------------------------------------------------------------ */

static const int s_parts[] = { 0, 2, 4, 12 }; /* parts per span */

static bool
s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

int
report_period_parse(const char *s, report_period_t *out)
{
    size_t len;
    report_period_t p = { REPORT_SPAN_YEAR, 0, 0 };

    if (s == NULL) {
        return AMITY_EINVAL;
    }
    len = strlen(s);
    if (len < 4 || !s_digits(s, 4)) {
        return AMITY_EINVAL;
    }
    p.year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    if (p.year < REPORT_YEAR_MIN || p.year > REPORT_YEAR_MAX) {
        return AMITY_EINVAL;
    }
    if (len == 4) {
        *out = p;
        return 0;
    }
    if (s[4] != '-') {
        return AMITY_EINVAL;
    }
    if (len == 7 && (s[5] == 'H' || s[5] == 'Q') && s_digits(s + 6, 1)) {
        p.span = s[5] == 'H' ? REPORT_SPAN_HALF : REPORT_SPAN_QUARTER;
        p.part = s[6] - '0';
    } else if (len == 7 && s_digits(s + 5, 2)) {
        p.span = REPORT_SPAN_MONTH;
        p.part = (s[5] - '0') * 10 + (s[6] - '0');
    } else {
        return AMITY_EINVAL;
    }
    if (p.part < 1 || p.part > s_parts[p.span]) {
        return AMITY_EINVAL;
    }
    *out = p;
    return 0;
}

void
report_period_previous(const report_period_t *p, report_period_t *out)
{
    *out = *p;
    out->year = p->year - 1;
}

/*  snprintf's result as a length within buf (0 on an encoding error). */
static size_t
s_clamp(int n, size_t len)
{
    if (n < 0) {
        return 0;
    }
    return (size_t)n < len ? (size_t)n : len - 1;
}

size_t
report_period_key(const report_period_t *p, char *buf, size_t len)
{
    int n;

    switch (p->span) {
    case REPORT_SPAN_HALF:
        n = snprintf(buf, len, "%04d-H%d", p->year, p->part);
        break;
    case REPORT_SPAN_QUARTER:
        n = snprintf(buf, len, "%04d-Q%d", p->year, p->part);
        break;
    case REPORT_SPAN_MONTH:
        n = snprintf(buf, len, "%04d-%02d", p->year, p->part);
        break;
    case REPORT_SPAN_YEAR:
    default:
        n = snprintf(buf, len, "%04d", p->year);
        break;
    }
    return s_clamp(n, len);
}

static const char *const s_roman[] = { "", "I", "II", "III", "IV" };
static const char *const s_en_ordinal[] = { "", "First", "Second", "Third", "Fourth" };
static const char *const s_en_month[] = { "",        "January",  "February", "March",  "April",
                                          "May",     "June",     "July",     "August", "September",
                                          "October", "November", "December" };

size_t
report_period_label(const report_period_t *p, report_lang_t lang, char *buf, size_t len)
{
    bool vi = lang == REPORT_LANG_VI;
    int n;

    switch (p->span) {
    case REPORT_SPAN_HALF:
        if (vi) {
            n = snprintf(buf, len, "6 tháng %s năm %04d", p->part == 1 ? "đầu" : "cuối", p->year);
        } else {
            n = snprintf(buf, len, "%s half of %04d", s_en_ordinal[p->part], p->year);
        }
        break;
    case REPORT_SPAN_QUARTER:
        if (vi) {
            n = snprintf(buf, len, "Quý %s năm %04d", s_roman[p->part], p->year);
        } else {
            n = snprintf(buf, len, "%s quarter of %04d", s_en_ordinal[p->part], p->year);
        }
        break;
    case REPORT_SPAN_MONTH:
        if (vi) {
            n = snprintf(buf, len, "Tháng %d năm %04d", p->part, p->year);
        } else {
            n = snprintf(buf, len, "%s %04d", s_en_month[p->part], p->year);
        }
        break;
    case REPORT_SPAN_YEAR:
    default:
        n = snprintf(buf, len, vi ? "Năm %04d" : "Year %04d", p->year);
        break;
    }
    return s_clamp(n, len);
}

int
report_lang_parse(const char *s, report_lang_t *out)
{
    if (s != NULL && strcmp(s, "vi") == 0) {
        *out = REPORT_LANG_VI;
        return 0;
    }
    if (s != NULL && strcmp(s, "en") == 0) {
        *out = REPORT_LANG_EN;
        return 0;
    }
    return AMITY_EINVAL;
}

/* ---- numbers ------------------------------------------------------------ */

/*  |v| without overflow for INT64_MIN. */
static uint64_t
s_abs(int64_t v)
{
    return v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
}

/*  round(num * 1000 / den), half up, for any num and den > 0, saturating
 *  at UINT64_MAX, without a 128-bit type: num = q * den + r, so the result
 *  is q * 1000 plus r * 1000 / den, computed by long division one decimal
 *  digit at a time. r * 10 may not fit in 64 bits when den is large, so
 *  each digit adds r to itself ten times modulo den, counting the wraps
 *  (acc + r >= den is tested as acc >= den - r, which cannot overflow). */
static uint64_t
s_per_mille(uint64_t num, uint64_t den)
{
    uint64_t q = num / den;
    uint64_t r = num % den;
    uint64_t frac = 0;

    for (int digit = 0; digit < 3; digit++) {
        uint64_t acc = 0; /* r * 10 mod den */
        uint64_t d = 0;   /* r * 10 / den */
        for (int k = 0; k < 10; k++) {
            if (acc >= den - r) {
                acc -= den - r;
                d++;
            } else {
                acc += r;
            }
        }
        frac = frac * 10 + d;
        r = acc;
    }
    if (r >= den - r) { /* what is left is at least half of den: round up */
        frac++;
    }
    if (q > (UINT64_MAX - frac) / 1000) {
        return UINT64_MAX;
    }
    return q * 1000 + frac;
}

void
report_change(int64_t cur, int64_t prev, report_change_t *out)
{
    bool down = cur < prev;
    /* |cur - prev| fits in 64 unsigned bits for any two int64 values */
    uint64_t diff = down ? (uint64_t)prev - (uint64_t)cur : (uint64_t)cur - (uint64_t)prev;

    memset(out, 0, sizeof(*out));
    if (prev == 0) {
        out->kind = cur == 0 ? REPORT_CHANGE_NONE : REPORT_CHANGE_NEW;
        return;
    }
    out->kind = REPORT_CHANGE_PERCENT;
    /* percent in tenths = diff / |prev| * 100 * 10; rounding the magnitude
     * half up rounds the signed change half away from zero */
    out->tenths = s_per_mille(diff, s_abs(prev));
    out->negative = down && out->tenths != 0;
}

/*  Writes v's digits, a separator every three, NUL-terminated, so that
 *  they end just before `end` (at least 27 bytes after the buffer's start);
 *  returns the first character. */
static char *
s_group(uint64_t v, char sep, char *end)
{
    char *p = end;
    int n = 0;

    *--p = '\0';
    do {
        if (n > 0 && n % 3 == 0) {
            *--p = sep;
        }
        *--p = (char)('0' + (int)(v % 10));
        v /= 10;
        n++;
    } while (v != 0);
    return p;
}

size_t
report_format_count(int64_t v, report_lang_t lang, char *buf, size_t len)
{
    char tmp[32];
    const char *digits = s_group(s_abs(v), lang == REPORT_LANG_VI ? '.' : ',', tmp + sizeof(tmp));

    return s_clamp(snprintf(buf, len, "%s%s", v < 0 ? S_MINUS : "", digits), len);
}

static const uint64_t s_pow10[] = { 1u,      10u,      100u,      1000u,      10000u,
                                    100000u, 1000000u, 10000000u, 100000000u, 1000000000u };

size_t
report_format_money(int64_t minor, int exponent, report_lang_t lang, char *buf, size_t len)
{
    char tmp[32];
    uint64_t mag = s_abs(minor);
    uint64_t unit;
    uint64_t frac;
    const char *whole;
    bool vi = lang == REPORT_LANG_VI;

    if (exponent < 0) {
        exponent = 0;
    }
    if (exponent > 9) {
        exponent = 9;
    }
    unit = s_pow10[exponent];
    frac = mag % unit;
    whole = s_group(mag / unit, vi ? '.' : ',', tmp + sizeof(tmp));
    if (frac == 0) {
        return s_clamp(snprintf(buf, len, "%s%s", minor < 0 ? S_MINUS : "", whole), len);
    }
    return s_clamp(snprintf(buf, len, "%s%s%c%0*" PRIu64, minor < 0 ? S_MINUS : "", whole,
                            vi ? ',' : '.', exponent, frac),
                   len);
}

size_t
report_format_change(const report_change_t *c, report_lang_t lang, char *buf, size_t len)
{
    char tmp[32];
    bool vi = lang == REPORT_LANG_VI;
    const char *sign;
    const char *whole;

    switch (c->kind) {
    case REPORT_CHANGE_NONE:
        return s_clamp(snprintf(buf, len, "%s", S_EM_DASH), len);
    case REPORT_CHANGE_NEW:
        return s_clamp(snprintf(buf, len, "%s", vi ? "mới" : "new"), len);
    case REPORT_CHANGE_PERCENT:
    default:
        break;
    }
    sign = c->tenths == 0 ? "" : (c->negative ? S_MINUS : "+");
    whole = s_group(c->tenths / 10, vi ? '.' : ',', tmp + sizeof(tmp));
    return s_clamp(
        snprintf(buf, len, "%s%s%c%d%%", sign, whole, vi ? ',' : '.', (int)(c->tenths % 10)), len);
}

/* ---- what the report shows ---------------------------------------------- */

typedef struct {
    const char *name;   /* metric of the totals key */
    const char *vi;     /* Vietnamese unit */
    const char *en_one; /* English unit, singular */
    const char *en;     /* English unit, plural */
} s_metric_t;

typedef struct {
    const char *kind;      /* KIND of the totals key */
    const char *vi;        /* Vietnamese label */
    const char *en;        /* English label */
    s_metric_t metrics[2]; /* count metrics (name NULL: none) */
    bool money;            /* amount.CUR per currency */
} s_item_t;

static const s_item_t s_items[] = {
    { "delegation_in",
      "Đón đoàn vào",
      "Delegations received",
      { { "delegations", "đoàn", "delegation", "delegations" },
        { "people", "khách", "person", "people" } },
      false },
    { "delegation_out",
      "Cử đoàn ra",
      "Delegations sent",
      { { "delegations", "đoàn", "delegation", "delegations" },
        { "people", "lượt người", "person", "people" } },
      false },
    { "activity",
      "Hoạt động đối ngoại tại chỗ",
      "Local activities",
      { { "activities", "hoạt động", "activity", "activities" }, { NULL, NULL, NULL, NULL } },
      false },
    { "aid_commitment",
      "Viện trợ cam kết",
      "Aid committed",
      { { "projects", "dự án", "project", "projects" }, { NULL, NULL, NULL, NULL } },
      true },
    { "aid_disbursement",
      "Giải ngân",
      "Aid disbursed",
      { { NULL, NULL, NULL, NULL }, { NULL, NULL, NULL, NULL } },
      true },
    { "relief",
      "Cứu trợ",
      "Relief mobilised",
      { { NULL, NULL, NULL, NULL }, { NULL, NULL, NULL, NULL } },
      true },
    { "award",
      "Khen thưởng (huân, huy chương, kỷ niệm chương)",
      "Awards (orders, medals, commemorative medals)",
      { { "awards", "phần thưởng", "award", "awards" }, { NULL, NULL, NULL, NULL } },
      false },
    { "contact",
      "Đối tác đã gặp",
      "Partners met",
      { { "partners", "đối tác", "partner", "partners" }, { NULL, NULL, NULL, NULL } },
      false },
    { "org_founded",
      "Tổ chức được thành lập",
      "Organisations founded",
      { { "orgs", "tổ chức", "organisation", "organisations" }, { NULL, NULL, NULL, NULL } },
      false },
};

#define S_N_ITEMS (sizeof(s_items) / sizeof(s_items[0]))

/* ---- the report object -------------------------------------------------- */

typedef struct {
    char *rest;    /* KIND/GEO/METRIC */
    int64_t value; /* count, or minor units */
} s_entry_t;

typedef struct {
    report_period_t period;                                /* this side's period */
    char key[REPORT_PERIOD_KEY_MAX];                       /* "2017-H1" */
    char prefix[REPORT_PERIOD_KEY_MAX + S_OFFICE_MAX + 8]; /* "2017-H1/all/" */
    size_t prefix_len;                                     /* strlen(prefix) */
    s_entry_t *entries;                                    /* kept totals, unordered */
    size_t n_entries;                                      /* entries used */
    size_t cap;                                            /* entries allocated */
} s_side_t;

struct report {
    char office[S_OFFICE_MAX + 1]; /* "all" or an office id */
    s_side_t side[2];              /* [0] the period, [1] one year earlier */
};

static void
s_side_init(s_side_t *side, const report_period_t *p, const char *office)
{
    int n;

    memset(side, 0, sizeof(*side));
    side->period = *p;
    (void)report_period_key(p, side->key, sizeof(side->key));
    n = snprintf(side->prefix, sizeof(side->prefix), "%s/%s/", side->key, office);
    side->prefix_len = s_clamp(n, sizeof(side->prefix));
}

int
report_new(report_t **out, const report_period_t *period, const char *office)
{
    report_t *self;
    report_period_t prev;
    size_t len;

    if (office == NULL) {
        return AMITY_EINVAL;
    }
    len = strlen(office);
    if (strcmp(office, "all") != 0 && !amity_office_valid(office, len)) {
        return AMITY_EINVAL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    memcpy(self->office, office, len + 1);
    report_period_previous(period, &prev);
    s_side_init(&self->side[0], period, office);
    s_side_init(&self->side[1], &prev, office);
    *out = self;
    return 0;
}

void
report_destroy(report_t **self_p)
{
    report_t *self;

    if (self_p == NULL || *self_p == NULL) {
        return;
    }
    self = *self_p;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < self->side[s].n_entries; i++) {
            free(self->side[s].entries[i].rest);
        }
        free(self->side[s].entries);
    }
    free(self);
    *self_p = NULL;
}

const char *
report_prefix(const report_t *self, bool previous)
{
    return self->side[previous ? 1 : 0].prefix;
}

static const s_item_t *
s_item_of(const char *kind, size_t len)
{
    for (size_t i = 0; i < S_N_ITEMS; i++) {
        if (strlen(s_items[i].kind) == len && memcmp(s_items[i].kind, kind, len) == 0) {
            return &s_items[i];
        }
    }
    return NULL;
}

static bool
s_is_country(const char *geo, size_t len)
{
    return len == 2 && geo[0] >= 'A' && geo[0] <= 'Z' && geo[1] >= 'A' && geo[1] <= 'Z';
}

/*  Whether the report uses KIND/GEO/METRIC: the `all` geo of its kinds,
 *  and delegations received per country (the "most delegations" line). */
static bool
s_wanted(const char *rest)
{
    const char *geo = strchr(rest, '/');
    const char *metric;

    if (geo == NULL || s_item_of(rest, (size_t)(geo - rest)) == NULL) {
        return false;
    }
    geo++;
    metric = strchr(geo, '/');
    if (metric == NULL || strchr(metric + 1, '/') != NULL) {
        return false;
    }
    if ((size_t)(metric - geo) == 3 && memcmp(geo, "all", 3) == 0) {
        return true;
    }
    return strncmp(rest, "delegation_in/", 14) == 0 && s_is_country(geo, (size_t)(metric - geo)) &&
           strcmp(metric + 1, "delegations") == 0;
}

static s_entry_t *
s_find(const s_side_t *side, const char *rest)
{
    for (size_t i = 0; i < side->n_entries; i++) {
        if (strcmp(side->entries[i].rest, rest) == 0) {
            return &side->entries[i];
        }
    }
    return NULL;
}

int
report_add(report_t *self, const char *key, int64_t value)
{
    for (int s = 0; s < 2; s++) {
        s_side_t *side = &self->side[s];
        const char *rest;
        s_entry_t *e;

        if (strncmp(key, side->prefix, side->prefix_len) != 0) {
            continue;
        }
        rest = key + side->prefix_len;
        if (!s_wanted(rest)) {
            return 0;
        }
        e = s_find(side, rest);
        if (e != NULL) {
            e->value = value;
            return 0;
        }
        if (side->n_entries == side->cap) {
            size_t cap = side->cap ? side->cap * 2 : 64;
            s_entry_t *ne = realloc(side->entries, cap * sizeof(*ne));
            if (ne == NULL) {
                return AMITY_ENOMEM;
            }
            side->entries = ne;
            side->cap = cap;
        }
        e = &side->entries[side->n_entries];
        e->rest = strdup(rest);
        if (e->rest == NULL) {
            return AMITY_ENOMEM;
        }
        e->value = value;
        side->n_entries++;
        return 0;
    }
    return 0;
}

/*  The value of KIND/all/METRIC on one side (0 when absent). */
static int64_t
s_value(const s_side_t *side, const char *kind, const char *metric)
{
    char rest[AMITY_KEY_MAX];
    s_entry_t *e;

    (void)snprintf(rest, sizeof(rest), "%s/all/%s", kind, metric);
    e = s_find(side, rest);
    return e != NULL ? e->value : 0;
}

typedef struct {
    char code[S_CUR_MAX][4]; /* sorted currency codes */
    size_t n;                /* codes used */
} s_currencies_t;

static int
s_cmp_code(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/*  Every currency with a non-zero KIND/all/amount.CUR total on either
 *  side, sorted. */
static void
s_currencies(const report_t *self, const char *kind, s_currencies_t *out)
{
    char pre[64];
    int n = snprintf(pre, sizeof(pre), "%s/all/amount.", kind);
    size_t pre_len = s_clamp(n, sizeof(pre));

    out->n = 0;
    for (int s = 0; s < 2; s++) {
        for (size_t i = 0; i < self->side[s].n_entries; i++) {
            const char *rest = self->side[s].entries[i].rest;
            const char *cur = rest + pre_len;
            bool seen = false;

            /* a zero total (all its records retracted) names no currency */
            if (self->side[s].entries[i].value == 0 || strncmp(rest, pre, pre_len) != 0 ||
                strlen(cur) != 3 || amity_currency_exponent(cur, 3) < 0) {
                continue;
            }
            for (size_t k = 0; k < out->n && !seen; k++) {
                seen = strcmp(out->code[k], cur) == 0;
            }
            if (!seen && out->n < S_CUR_MAX) {
                memcpy(out->code[out->n], cur, 4);
                out->n++;
            }
        }
    }
    qsort(out->code, out->n, sizeof(out->code[0]), s_cmp_code);
}

typedef struct {
    const char *code; /* borrowed from the entry: "LA" at rest + 14 */
    int64_t value;    /* delegations */
} s_country_t;

static int
s_cmp_country(const void *a, const void *b)
{
    const s_country_t *x = a;
    const s_country_t *y = b;

    if (x->value != y->value) {
        return x->value > y->value ? -1 : 1;
    }
    return strncmp(x->code, y->code, 2);
}

/*  The countries that sent the most delegations in the period (value > 0),
 *  at most REPORT_TOP_COUNTRIES; returns their count. */
static size_t
s_top_countries(const report_t *self, s_country_t top[REPORT_TOP_COUNTRIES])
{
    const s_side_t *side = &self->side[0];
    s_country_t *all;
    size_t n = 0;

    all = calloc(side->n_entries + 1, sizeof(*all));
    if (all == NULL) {
        return 0; /* the line is an extra: leave it out rather than fail */
    }
    for (size_t i = 0; i < side->n_entries; i++) {
        const char *rest = side->entries[i].rest;
        if (strncmp(rest, "delegation_in/", 14) == 0 && s_is_country(rest + 14, 2) &&
            rest[16] == '/' && side->entries[i].value > 0) {
            all[n].code = rest + 14;
            all[n].value = side->entries[i].value;
            n++;
        }
    }
    qsort(all, n, sizeof(*all), s_cmp_country);
    if (n > REPORT_TOP_COUNTRIES) {
        n = REPORT_TOP_COUNTRIES;
    }
    memcpy(top, all, n * sizeof(*all));
    free(all);
    return n;
}

/* ---- text ---------------------------------------------------------------- */

static int s_appendf(amity_buf_t *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
s_appendf(amity_buf_t *out, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    int n;
    int rc;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return AMITY_EINVAL;
    }
    if ((size_t)n < sizeof(small)) {
        return amity_buf_append(out, small, (size_t)n);
    }
    rc = amity_buf_reserve(out, (size_t)n + 1);
    if (rc != 0) {
        return rc;
    }
    va_start(ap, fmt);
    (void)vsnprintf((char *)out->data + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
    return 0;
}

/*  "(2016-H1: 500, +8.2%)" / "(cùng kỳ 2016: 500, +8,2%)": what the
 *  previous period had and the change; prev_text already formatted. */
static int
s_append_then(amity_buf_t *out, const report_t *self, report_lang_t lang, const char *prev_text,
              int64_t cur, int64_t prev)
{
    char change[REPORT_NUM_MAX];
    report_change_t c;

    report_change(cur, prev, &c);
    (void)report_format_change(&c, lang, change, sizeof(change));
    if (lang == REPORT_LANG_VI) {
        return s_appendf(out, " (cùng kỳ %04d: %s, %s)", self->side[1].period.year, prev_text,
                         change);
    }
    return s_appendf(out, " (%s: %s, %s)", self->side[1].key, prev_text, change);
}

static int
s_append_count(amity_buf_t *out, const report_t *self, report_lang_t lang, const s_item_t *item,
               const s_metric_t *m)
{
    char cur_text[REPORT_NUM_MAX];
    char prev_text[REPORT_NUM_MAX];
    int64_t cur = s_value(&self->side[0], item->kind, m->name);
    int64_t prev = s_value(&self->side[1], item->kind, m->name);
    const char *unit;
    int rc;

    if (lang == REPORT_LANG_VI) {
        unit = m->vi;
    } else {
        unit = (cur == 1 || cur == -1) ? m->en_one : m->en;
    }
    (void)report_format_count(cur, lang, cur_text, sizeof(cur_text));
    (void)report_format_count(prev, lang, prev_text, sizeof(prev_text));
    rc = s_appendf(out, "%s %s", cur_text, unit);
    if (rc == 0) {
        rc = s_append_then(out, self, lang, prev_text, cur, prev);
    }
    return rc;
}

static int
s_append_money(amity_buf_t *out, const report_t *self, report_lang_t lang, const s_item_t *item,
               const char *code)
{
    char metric[16];
    char cur_text[REPORT_NUM_MAX];
    char prev_text[REPORT_NUM_MAX + 8];
    char prev_num[REPORT_NUM_MAX];
    int exponent = amity_currency_exponent(code, strlen(code));
    int64_t cur;
    int64_t prev;
    int rc;

    (void)snprintf(metric, sizeof(metric), "amount.%s", code);
    cur = s_value(&self->side[0], item->kind, metric);
    prev = s_value(&self->side[1], item->kind, metric);
    (void)report_format_money(cur, exponent, lang, cur_text, sizeof(cur_text));
    (void)report_format_money(prev, exponent, lang, prev_num, sizeof(prev_num));
    (void)snprintf(prev_text, sizeof(prev_text), "%s %s", prev_num, code);
    rc = s_appendf(out, "%s %s", cur_text, code);
    if (rc == 0) {
        rc = s_append_then(out, self, lang, prev_text, cur, prev);
    }
    return rc;
}

static int
s_append_item(amity_buf_t *out, const report_t *self, report_lang_t lang, const s_item_t *item)
{
    s_currencies_t curs;
    bool first = true;
    int rc;

    rc = s_appendf(out, "%s: ", lang == REPORT_LANG_VI ? item->vi : item->en);
    for (int k = 0; k < 2 && rc == 0 && item->metrics[k].name != NULL; k++) {
        if (!first) {
            rc = s_appendf(out, "; ");
        }
        if (rc == 0) {
            rc = s_append_count(out, self, lang, item, &item->metrics[k]);
        }
        first = false;
    }
    if (rc == 0 && item->money) {
        s_currencies(self, item->kind, &curs);
        for (size_t k = 0; k < curs.n && rc == 0; k++) {
            if (!first) {
                rc = s_appendf(out, "; ");
            }
            if (rc == 0) {
                rc = s_append_money(out, self, lang, item, curs.code[k]);
            }
            first = false;
        }
        if (rc == 0 && first) {
            /* no amount in any currency in either period, and no count to show */
            rc = s_appendf(out, "0");
            if (rc == 0) {
                rc = s_append_then(out, self, lang, "0", 0, 0);
            }
        }
    }
    if (rc == 0) {
        rc = s_appendf(out, "\n");
    }
    return rc;
}

int
report_text(const report_t *self, report_lang_t lang, amity_buf_t *out)
{
    char label[REPORT_LABEL_MAX];
    char prev_label[REPORT_LABEL_MAX];
    s_country_t top[REPORT_TOP_COUNTRIES];
    size_t n_top;
    bool vi = lang == REPORT_LANG_VI;
    bool all = strcmp(self->office, "all") == 0;
    int rc;

    (void)report_period_label(&self->side[0].period, lang, label, sizeof(label));
    (void)report_period_label(&self->side[1].period, lang, prev_label, sizeof(prev_label));
    if (vi) {
        rc = s_appendf(out,
                       "Báo cáo công tác đối ngoại nhân dân: %s, %s%s, "
                       "so với cùng kỳ năm trước (%s)\n",
                       label, all ? "toàn Liên hiệp" : "đơn vị ", all ? "" : self->office,
                       prev_label);
    } else {
        rc = s_appendf(out,
                       "People's diplomacy report: %s, %s%s, compared with the same period of "
                       "the previous year (%s)\n",
                       label, all ? "all offices" : "office ", all ? "" : self->office, prev_label);
    }
    for (size_t i = 0; i < S_N_ITEMS && rc == 0; i++) {
        rc = s_append_item(out, self, lang, &s_items[i]);
    }
    n_top = s_top_countries(self, top);
    if (rc == 0 && n_top > 0) {
        rc = s_appendf(out,
                       "%s: ", vi ? "Nhiều đoàn vào nhất từ" : "Most delegations received from");
        for (size_t k = 0; k < n_top && rc == 0; k++) {
            char num[REPORT_NUM_MAX];
            (void)report_format_count(top[k].value, lang, num, sizeof(num));
            rc = s_appendf(out, "%s%.2s %s", k ? ", " : "", top[k].code, num);
        }
        if (rc == 0) {
            rc = s_appendf(out, "\n");
        }
    }
    return rc;
}

/* ---- JSON ---------------------------------------------------------------- */

/*  {current, previous, change_percent}; money values as decimal strings. */
static json_t *
s_json_pair(int64_t cur, int64_t prev, int exponent)
{
    report_change_t c;
    json_t *o = json_object();
    json_t *change;
    int rc = 0;

    if (o == NULL) {
        return NULL;
    }
    report_change(cur, prev, &c);
    if (c.kind == REPORT_CHANGE_PERCENT) {
        double v = (double)c.tenths / 10.0;
        change = json_real(c.negative ? -v : v);
    } else {
        change = json_null();
    }
    rc |= json_object_set_new(o, "change_percent", change);
    if (exponent >= 0) {
        char cur_s[AMITY_MONEY_STR_MAX];
        char prev_s[AMITY_MONEY_STR_MAX];
        (void)amity_money_format(cur, exponent, cur_s);
        (void)amity_money_format(prev, exponent, prev_s);
        rc |= json_object_set_new(o, "current", json_string(cur_s));
        rc |= json_object_set_new(o, "previous", json_string(prev_s));
    } else {
        rc |= json_object_set_new(o, "current", json_integer(cur));
        rc |= json_object_set_new(o, "previous", json_integer(prev));
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
s_json_item(const report_t *self, const s_item_t *item)
{
    json_t *o = json_object();
    int rc = 0;

    if (o == NULL) {
        return NULL;
    }
    for (int k = 0; k < 2 && item->metrics[k].name != NULL; k++) {
        const char *name = item->metrics[k].name;
        rc |= json_object_set_new(o, name,
                                  s_json_pair(s_value(&self->side[0], item->kind, name),
                                              s_value(&self->side[1], item->kind, name), -1));
    }
    if (item->money) {
        s_currencies_t curs;
        json_t *amount = json_object();

        s_currencies(self, item->kind, &curs);
        for (size_t k = 0; k < curs.n && amount != NULL; k++) {
            char metric[16];
            (void)snprintf(metric, sizeof(metric), "amount.%s", curs.code[k]);
            rc |= json_object_set_new(amount, curs.code[k],
                                      s_json_pair(s_value(&self->side[0], item->kind, metric),
                                                  s_value(&self->side[1], item->kind, metric),
                                                  amity_currency_exponent(curs.code[k], 3)));
        }
        rc |= json_object_set_new(o, "amount", amount);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int
report_json(const report_t *self, amity_buf_t *out)
{
    s_country_t top[REPORT_TOP_COUNTRIES];
    size_t n_top;
    json_t *root = json_object();
    json_t *items = json_object();
    json_t *countries = json_array();
    char *text = NULL;
    int rc = 0;

    if (root == NULL || items == NULL || countries == NULL) {
        json_decref(items);
        json_decref(countries);
        rc = AMITY_ENOMEM;
        goto out;
    }
    rc |= json_object_set_new(root, "period", json_string(self->side[0].key));
    rc |= json_object_set_new(root, "previous_period", json_string(self->side[1].key));
    rc |= json_object_set_new(root, "office", json_string(self->office));
    for (size_t i = 0; i < S_N_ITEMS; i++) {
        rc |= json_object_set_new(items, s_items[i].kind, s_json_item(self, &s_items[i]));
    }
    rc |= json_object_set_new(root, "items", items);
    n_top = s_top_countries(self, top);
    for (size_t k = 0; k < n_top; k++) {
        rc |= json_array_append_new(countries,
                                    json_pack("{s:s%,s:I}", "country", top[k].code, (size_t)2,
                                              "delegations", (json_int_t)top[k].value));
    }
    rc |= json_object_set_new(root, "top_countries_received", countries);
    if (rc != 0) {
        rc = AMITY_ENOMEM;
        goto out;
    }
    /* 15 significant digits print a one-decimal percentage exactly ("-9.8") */
    text = json_dumps(root, JSON_SORT_KEYS | JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    if (text == NULL) {
        rc = AMITY_ENOMEM;
        goto out;
    }
    rc = amity_buf_append(out, text, strlen(text));
    if (rc == 0) {
        rc = amity_buf_append(out, "\n", 1);
    }
out:
    free(text);
    json_decref(root);
    return rc;
}
