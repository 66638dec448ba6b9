/*  keys: the totals keys PERIOD/OFFICE/KIND/GEO/METRIC that one accepted
 *  record moves (DOMAIN.md "Totals"), the finest of them and their roll-up,
 *  the office id rule, and the shard a record belongs to. Aggregate applies
 *  the deltas; validate shards.
 *
 *  Keys are built from their parts with memcpy: formatting up to 48 keys
 *  per record with snprintf cost 3.1 us a record against 0.29 us this way
 *  (bench/RESULTS.md, amity-bench_keys), on the aggregate's one thread.
 */
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"

#define S_PERIODS     4  /* year, half, quarter, month */
#define S_PERIOD_LEN  8  /* "2017-H1", "2017-06": 7 bytes, no NUL kept */
#define S_METRICS_MAX 2  /* DELTAS_MAX = periods x offices x geos x metrics */
#define S_GEOS_MAX    3  /* all, region, country */
#define S_METRIC_LEN  16 /* "amount.USD", "delegations" */

/*  A part of a key: bytes, not NUL-terminated. */
typedef struct {
    const char *s; /* bytes */
    size_t len;    /* their count */
} s_part_t;

/*  What a record contributes, as key parts. */
typedef struct {
    char period_bytes[S_PERIODS][S_PERIOD_LEN]; /* year, half, quarter, month */
    s_part_t period[S_PERIODS];                 /* views of period_bytes */
    s_part_t kind;                              /* kind name */
    s_part_t geo[S_GEOS_MAX];                   /* all, region (unless ""), country */
    size_t n_geos;                              /* geos in geo */
    char amount_name[S_METRIC_LEN];             /* "amount.CUR" */
    s_part_t metric[S_METRICS_MAX];             /* metric names */
    int64_t value[S_METRICS_MAX];               /* their values (count or minor units) */
    size_t n_metrics;                           /* metrics in metric */
} s_parts_t;

static const s_part_t s_all = { "all", 3 };
static const s_part_t s_no_country = { AMITY_KEY_NO_COUNTRY, sizeof(AMITY_KEY_NO_COUNTRY) - 1 };

bool
amity_office_valid(const char *s, size_t len)
{
    if (s == NULL || len == 0 || len > AMITY_OFFICE_MAX) {
        return false;
    }
    if (len == 3 && memcmp(s, "all", 3) == 0) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return false;
        }
    }
    return true;
}

/*  Writes v as width decimal digits (v < 10^width, v >= 0). */
static void
s_put_digits(char *out, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/*  The four periods of (year, month): "2017", "2017-H1", "2017-Q2", "2017-06". */
static void
s_periods(s_parts_t *p, int year, int month)
{
    for (int i = 0; i < S_PERIODS; i++) {
        char *b = p->period_bytes[i];
        size_t len = 4;
        s_put_digits(b, year, 4);
        if (i == 1) {
            b[len++] = '-';
            b[len++] = 'H';
            b[len++] = month <= 6 ? '1' : '2';
        } else if (i == 2) {
            b[len++] = '-';
            b[len++] = 'Q';
            b[len++] = (char)('1' + (month - 1) / 3);
        } else if (i == 3) {
            b[len++] = '-';
            s_put_digits(b + len, month, 2);
            len += 2;
        }
        p->period[i].s = b;
        p->period[i].len = len;
    }
}

/*  GEO values for a country code ("" or NULL: none): "all", then the
 *  region unless it is "" (AQ), then the code. AMITY_EINVAL for a code that
 *  is not an assigned one. */
static int
s_geos(s_parts_t *p, const char *country, size_t country_len)
{
    p->n_geos = 0;
    p->geo[p->n_geos++] = s_all;
    if (country_len == 0) {
        return 0;
    }
    const char *region = amity_country_region(country, country_len);
    if (region == NULL) {
        return AMITY_EINVAL;
    }
    if (region[0] != '\0') {
        p->geo[p->n_geos].s = region;
        p->geo[p->n_geos++].len = strlen(region);
    }
    p->geo[p->n_geos].s = country;
    p->geo[p->n_geos++].len = country_len;
    return 0;
}

/*  Checks the arguments and reads rec's kind, periods and non-zero metrics
 *  into *p. Returns 0, 1 for a retraction (nothing to contribute), or
 *  AMITY_EINVAL. */
static int
s_parts_of(const amity_record_t *rec, const char *office, int sign, s_parts_t *p)
{
    if (rec == NULL || office == NULL || (sign != 1 && sign != -1) ||
        !amity_office_valid(office, strlen(office))) {
        return AMITY_EINVAL;
    }
    if (rec->retract) {
        return 1;
    }
    p->kind.s = amity_kind_name(rec->kind);
    if (p->kind.s == NULL || rec->year < 0 || rec->year > 9999 || rec->month < 1 ||
        rec->month > 12) {
        return AMITY_EINVAL;
    }
    p->kind.len = strlen(p->kind.s);
    p->n_metrics = 0;
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if (!(rec->metric_mask & (1u << m)) || rec->metrics[m] == 0) {
            continue;
        }
        if (p->n_metrics == S_METRICS_MAX) {
            return AMITY_EINVAL;
        }
        p->metric[p->n_metrics].s = amity_metric_name((amity_metric_t)m);
        p->metric[p->n_metrics].len = strlen(p->metric[p->n_metrics].s);
        p->value[p->n_metrics++] = (int64_t)rec->metrics[m];
    }
    if (rec->has_amount && rec->amount != 0) {
        size_t cur_len = strnlen(rec->currency, sizeof rec->currency);
        if (p->n_metrics == S_METRICS_MAX || rec->amount < 0 ||
            amity_currency_exponent(rec->currency, cur_len) < 0) {
            return AMITY_EINVAL;
        }
        memcpy(p->amount_name, "amount.", 7);
        memcpy(p->amount_name + 7, rec->currency, cur_len);
        p->metric[p->n_metrics].s = p->amount_name;
        p->metric[p->n_metrics].len = 7 + cur_len;
        p->value[p->n_metrics++] = rec->amount;
    }
    s_periods(p, rec->year, rec->month);
    return 0;
}

/*  Joins the five parts of a key with '/' into out (NUL-terminated).
 *  AMITY_EINVAL when the key would not fit in AMITY_KEY_MAX. */
static int
s_join(char out[AMITY_KEY_MAX], const s_part_t *period, const s_part_t *office,
       const s_part_t *kind, const s_part_t *geo, const s_part_t *metric)
{
    const s_part_t *parts[5] = { period, office, kind, geo, metric };
    size_t len = 0;
    for (size_t i = 0; i < 5; i++) {
        if (len + parts[i]->len + 1 > AMITY_KEY_MAX) {
            return AMITY_EINVAL;
        }
        memcpy(out + len, parts[i]->s, parts[i]->len);
        len += parts[i]->len;
        out[len++] = i < 4 ? '/' : '\0';
    }
    return 0;
}

/*  Writes "PERIOD/OFFICE/KIND/" into head (AMITY_KEY_MAX bytes) and returns
 *  its length; office <= AMITY_OFFICE_MAX and the others are short, so it
 *  always fits. */
static size_t
s_head(char *head, const s_part_t *period, const s_part_t *office, const s_part_t *kind)
{
    size_t h = 0;
    memcpy(head, period->s, period->len);
    h += period->len;
    head[h++] = '/';
    memcpy(head + h, office->s, office->len);
    h += office->len;
    head[h++] = '/';
    memcpy(head + h, kind->s, kind->len);
    h += kind->len;
    head[h++] = '/';
    return h;
}

/*
 * Keys whose delta would be 0 (a metric given as 0, an amount of 0) are
 * left out: adding 0 changes no total, and leaving them out saves the
 * aggregate a read and a write. A total that no record ever moved is
 * therefore absent rather than 0, which readers treat alike.
 */
int
amity_keys_derive(const amity_record_t *rec, const char *office, int sign,
                  amity_delta_t out[AMITY_DELTAS_MAX])
{
    s_parts_t p;
    int n = 0;

    if (out == NULL) {
        return AMITY_EINVAL;
    }
    int rc = s_parts_of(rec, office, sign, &p);
    if (rc != 0) {
        return rc > 0 ? 0 : rc;
    }
    rc = s_geos(&p, rec->country, strnlen(rec->country, sizeof rec->country));
    if (rc < 0) {
        return rc;
    }
    const s_part_t offices[2] = { { office, strlen(office) }, s_all };
    for (size_t t = 0; t < S_PERIODS; t++) {
        for (size_t o = 0; o < 2; o++) {
            /* PERIOD/OFFICE/KIND/ is shared by the keys of this (t, o) */
            char head[AMITY_KEY_MAX];
            size_t h = s_head(head, &p.period[t], &offices[o], &p.kind);
            for (size_t g = 0; g < p.n_geos; g++) {
                for (size_t m = 0; m < p.n_metrics; m++) {
                    size_t len = h + p.geo[g].len + 1 + p.metric[m].len;
                    if (len >= AMITY_KEY_MAX) {
                        return AMITY_EINVAL;
                    }
                    char *k = out[n].key;
                    memcpy(k, head, h);
                    memcpy(k + h, p.geo[g].s, p.geo[g].len);
                    k[h + p.geo[g].len] = '/';
                    memcpy(k + h + p.geo[g].len + 1, p.metric[m].s, p.metric[m].len);
                    k[len] = '\0';
                    out[n].delta = sign * p.value[m];
                    n++;
                }
            }
        }
    }
    return n;
}

int
amity_keys_finest(const amity_record_t *rec, const char *office, int sign,
                  amity_delta_t out[AMITY_FINEST_MAX])
{
    s_parts_t p;
    int n = 0;

    if (out == NULL) {
        return AMITY_EINVAL;
    }
    int rc = s_parts_of(rec, office, sign, &p);
    if (rc != 0) {
        return rc > 0 ? 0 : rc;
    }
    s_part_t geo0 = s_no_country;
    size_t country_len = strnlen(rec->country, sizeof rec->country);
    if (country_len > 0) {
        if (amity_country_region(rec->country, country_len) == NULL) {
            return AMITY_EINVAL;
        }
        geo0.s = rec->country;
        geo0.len = country_len;
    }
    const s_part_t off = { office, strlen(office) };
    for (size_t m = 0; m < p.n_metrics; m++) {
        rc = s_join(out[n].key, &p.period[S_PERIODS - 1], &off, &p.kind, &geo0, &p.metric[m]);
        if (rc < 0) {
            return rc;
        }
        out[n].delta = sign * p.value[m];
        n++;
    }
    return n;
}

/*  Splits a finest key MONTH/OFFICE/KIND/GEO0/METRIC into its parts and
 *  checks each: a month "YYYY-MM", a valid office id, a kind, a country
 *  code or AMITY_KEY_NO_COUNTRY, a metric name or "amount.CUR". Fills
 *  year, month and part[5]. Returns 0 or AMITY_EINVAL. */
static int
s_parse_finest(const char *key, size_t len, int *year, int *month, s_part_t part[5])
{
    size_t n = 0;
    size_t start = 0;

    if (key == NULL || len == 0 || len >= AMITY_KEY_MAX) {
        return AMITY_EINVAL;
    }
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            if (n == 5 || i == start) {
                return AMITY_EINVAL;
            }
            part[n].s = key + start;
            part[n++].len = i - start;
            start = i + 1;
        }
    }
    if (n != 5) {
        return AMITY_EINVAL;
    }
    const char *m = part[0].s;
    if (part[0].len != 7 || m[4] != '-') {
        return AMITY_EINVAL;
    }
    int y = 0;
    for (size_t i = 0; i < 4; i++) {
        if (m[i] < '0' || m[i] > '9') {
            return AMITY_EINVAL;
        }
        y = y * 10 + (m[i] - '0');
    }
    if (m[5] < '0' || m[5] > '1' || m[6] < '0' || m[6] > '9') {
        return AMITY_EINVAL;
    }
    int mo = (m[5] - '0') * 10 + (m[6] - '0');
    if (mo < 1 || mo > 12) {
        return AMITY_EINVAL;
    }
    if (!amity_office_valid(part[1].s, part[1].len) ||
        amity_kind_parse(part[2].s, part[2].len) == AMITY_KIND_NONE) {
        return AMITY_EINVAL;
    }
    if (!(part[3].len == s_no_country.len &&
          memcmp(part[3].s, s_no_country.s, s_no_country.len) == 0) &&
        amity_country_region(part[3].s, part[3].len) == NULL) {
        return AMITY_EINVAL;
    }
    bool metric_ok = part[4].len == 10 && memcmp(part[4].s, "amount.", 7) == 0 &&
                     amity_currency_exponent(part[4].s + 7, 3) >= 0;
    for (int i = 0; !metric_ok && i < AMITY_METRIC_COUNT; i++) {
        const char *name = amity_metric_name((amity_metric_t)i);
        metric_ok = strlen(name) == part[4].len && memcmp(name, part[4].s, part[4].len) == 0;
    }
    if (!metric_ok) {
        return AMITY_EINVAL;
    }
    *year = y;
    *month = mo;
    return 0;
}

bool
amity_key_is_finest(const char *key, size_t len)
{
    int year, month;
    s_part_t part[5];
    return s_parse_finest(key, len, &year, &month, part) == 0;
}

int
amity_keys_rollup(const char *finest_key, size_t len, char out[][AMITY_KEY_MAX], size_t cap)
{
    int year, month;
    s_part_t part[5];
    s_parts_t p;
    size_t n = 0;

    if (out == NULL || s_parse_finest(finest_key, len, &year, &month, part) < 0) {
        return AMITY_EINVAL;
    }
    s_periods(&p, year, month);
    bool no_country =
        part[3].len == s_no_country.len && memcmp(part[3].s, s_no_country.s, s_no_country.len) == 0;
    int rc = s_geos(&p, part[3].s, no_country ? 0 : part[3].len);
    if (rc < 0) {
        return rc;
    }
    if (cap < (size_t)S_PERIODS * 2 * p.n_geos) {
        return AMITY_EFULL;
    }
    const s_part_t offices[2] = { part[1], s_all };
    for (size_t t = 0; t < S_PERIODS; t++) {
        for (size_t o = 0; o < 2; o++) {
            char head[AMITY_KEY_MAX];
            size_t h = s_head(head, &p.period[t], &offices[o], &part[2]);
            for (size_t g = 0; g < p.n_geos; g++) {
                /* no longer than the finest key itself, which fits */
                char *k = out[n++];
                memcpy(k, head, h);
                memcpy(k + h, p.geo[g].s, p.geo[g].len);
                k[h + p.geo[g].len] = '/';
                memcpy(k + h + p.geo[g].len + 1, part[4].s, part[4].len);
                k[h + p.geo[g].len + 1 + part[4].len] = '\0';
            }
        }
    }
    return (int)n;
}

int
amity_key_exponent(const char *key, size_t len)
{
    static const char metric[] = "amount.";
    const size_t tail = sizeof(metric) - 1 + 3; /* "amount.CUR" */

    if (key == NULL || len < tail || memcmp(key + len - tail, metric, sizeof(metric) - 1) != 0) {
        return -1;
    }
    if (len > tail && key[len - tail - 1] != '/') {
        return -1;
    }
    return amity_currency_exponent(key + len - 3, 3);
}

uint32_t
amity_shard_of(const char *office, const char *id, size_t id_len, uint32_t n_shards)
{
    uint64_t h = 14695981039346656037u; /* FNV-1a 64 offset basis */
    const uint64_t prime = 1099511628211u;

    if (n_shards <= 1) {
        return 0;
    }
    for (const unsigned char *p = (const unsigned char *)office; p != NULL && *p != '\0'; p++) {
        h ^= *p;
        h *= prime;
    }
    h ^= 0u; /* the separating NUL byte */
    h *= prime;
    for (size_t i = 0; i < id_len; i++) {
        h ^= (unsigned char)id[i];
        h *= prime;
    }
    return (uint32_t)(h % n_shards);
}
