/*  keys: the totals keys PERIOD/OFFICE/KIND/GEO/METRIC that one accepted
 *  record moves (DOMAIN.md "Totals"), the office id rule, and the shard a
 *  record belongs to. Aggregate applies the deltas; validate shards.
 */
#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"

#define S_PERIODS     4  /* year, half, quarter, month */
#define S_PERIOD_MAX  24 /* "2017-H1" plus NUL, with room for any int the compiler sees */
#define S_METRICS_MAX 2  /* DELTAS_MAX = periods x offices x geos x metrics */
#define S_METRIC_LEN  16

typedef struct {
    char name[S_METRIC_LEN]; /* "people", "amount.USD" */
    int64_t value;           /* count or minor units */
} s_metric_t;

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
    char periods[S_PERIODS][S_PERIOD_MAX];
    const char *offices[2];
    const char *geos[3];
    s_metric_t metrics[S_METRICS_MAX];
    size_t n_geos = 0;
    size_t n_metrics = 0;
    int n = 0;

    if (rec == NULL || office == NULL || out == NULL || (sign != 1 && sign != -1) ||
        !amity_office_valid(office, strlen(office))) {
        return AMITY_EINVAL;
    }
    if (rec->retract) {
        return 0;
    }
    const char *kind = amity_kind_name(rec->kind);
    if (kind == NULL || rec->year < 0 || rec->year > 9999 || rec->month < 1 || rec->month > 12) {
        return AMITY_EINVAL;
    }

    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if (!(rec->metric_mask & (1u << m)) || rec->metrics[m] == 0) {
            continue;
        }
        if (n_metrics == S_METRICS_MAX) {
            return AMITY_EINVAL;
        }
        (void)snprintf(metrics[n_metrics].name, S_METRIC_LEN, "%s",
                       amity_metric_name((amity_metric_t)m));
        metrics[n_metrics].value = (int64_t)rec->metrics[m];
        n_metrics++;
    }
    if (rec->has_amount && rec->amount != 0) {
        if (n_metrics == S_METRICS_MAX || rec->amount < 0 ||
            amity_currency_exponent(rec->currency, strlen(rec->currency)) < 0) {
            return AMITY_EINVAL;
        }
        (void)snprintf(metrics[n_metrics].name, S_METRIC_LEN, "amount.%s", rec->currency);
        metrics[n_metrics].value = rec->amount;
        n_metrics++;
    }

    (void)snprintf(periods[0], S_PERIOD_MAX, "%04d", rec->year);
    (void)snprintf(periods[1], S_PERIOD_MAX, "%04d-H%d", rec->year, rec->month <= 6 ? 1 : 2);
    (void)snprintf(periods[2], S_PERIOD_MAX, "%04d-Q%d", rec->year, (rec->month - 1) / 3 + 1);
    (void)snprintf(periods[3], S_PERIOD_MAX, "%04d-%02d", rec->year, rec->month);
    offices[0] = office;
    offices[1] = "all";
    geos[n_geos++] = "all";
    if (rec->country[0] != '\0') {
        const char *region = amity_country_region(rec->country, strlen(rec->country));
        if (region == NULL) {
            return AMITY_EINVAL;
        }
        if (region[0] != '\0') {
            geos[n_geos++] = region;
        }
        geos[n_geos++] = rec->country;
    }

    for (size_t p = 0; p < S_PERIODS; p++) {
        for (size_t o = 0; o < 2; o++) {
            for (size_t g = 0; g < n_geos; g++) {
                for (size_t m = 0; m < n_metrics; m++) {
                    (void)snprintf(out[n].key, AMITY_KEY_MAX, "%s/%s/%s/%s/%s", periods[p],
                                   offices[o], kind, geos[g], metrics[m].name);
                    out[n].delta = sign * metrics[m].value;
                    n++;
                }
            }
        }
    }
    return n;
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
