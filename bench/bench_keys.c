/*  bench_keys: what deriving a record's totals keys costs. amity_keys_derive
 *  formats every key with snprintf (up to 48 per record, on the aggregate's
 *  single thread, for every record it applies); s_derive_memcpy below builds
 *  the very same keys from their parts with memcpy. The bench checks that
 *  both give identical output for every record, then times both.
 *
 *    amity-bench_keys [--records N(200k)] [--offices K(20)] [--seed X]
 *
 *  Prints one line starting "RESULT" (ns per record, each way).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"

#include "workload.h"

typedef struct {
    const char *s; /* bytes */
    size_t len;    /* count */
} s_part_t;

static size_t
s_put_digits(char *out, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return (size_t)width;
}

/*  amity_keys_derive's output, without snprintf. Same rules, same order. */
static int
s_derive_memcpy(const amity_record_t *rec, const char *office, int sign,
                amity_delta_t out[AMITY_DELTAS_MAX])
{
    char periods[4][8];
    s_part_t p[4], o[2], g[3], m[2];
    char metric_amount[16];
    int64_t value[2];
    size_t n_geos = 0, n_metrics = 0;
    int n = 0;

    if (rec->retract) {
        return 0;
    }
    const char *kind = amity_kind_name(rec->kind);
    if (kind == NULL || rec->year < 0 || rec->year > 9999 || rec->month < 1 || rec->month > 12) {
        return AMITY_EINVAL;
    }
    for (int i = 0; i < AMITY_METRIC_COUNT; i++) {
        if (!(rec->metric_mask & (1u << i)) || rec->metrics[i] == 0) {
            continue;
        }
        if (n_metrics == 2) {
            return AMITY_EINVAL;
        }
        m[n_metrics].s = amity_metric_name((amity_metric_t)i);
        m[n_metrics].len = strlen(m[n_metrics].s);
        value[n_metrics++] = (int64_t)rec->metrics[i];
    }
    if (rec->has_amount && rec->amount != 0) {
        if (n_metrics == 2) {
            return AMITY_EINVAL;
        }
        memcpy(metric_amount, "amount.", 7);
        memcpy(metric_amount + 7, rec->currency, 4);
        m[n_metrics].s = metric_amount;
        m[n_metrics].len = 7 + strlen(rec->currency);
        value[n_metrics++] = rec->amount;
    }
    for (int i = 0; i < 4; i++) {
        size_t len = s_put_digits(periods[i], rec->year, 4);
        if (i == 1) {
            periods[i][len++] = '-';
            periods[i][len++] = 'H';
            periods[i][len++] = rec->month <= 6 ? '1' : '2';
        } else if (i == 2) {
            periods[i][len++] = '-';
            periods[i][len++] = 'Q';
            periods[i][len++] = (char)('1' + (rec->month - 1) / 3);
        } else if (i == 3) {
            periods[i][len++] = '-';
            len += s_put_digits(periods[i] + len, rec->month, 2);
        }
        p[i].s = periods[i];
        p[i].len = len;
    }
    o[0].s = office;
    o[0].len = strlen(office);
    o[1].s = "all";
    o[1].len = 3;
    g[n_geos].s = "all";
    g[n_geos++].len = 3;
    if (rec->country[0] != '\0') {
        const char *region = amity_country_region(rec->country, strlen(rec->country));
        if (region == NULL) {
            return AMITY_EINVAL;
        }
        if (region[0] != '\0') {
            g[n_geos].s = region;
            g[n_geos++].len = strlen(region);
        }
        g[n_geos].s = rec->country;
        g[n_geos++].len = strlen(rec->country);
    }
    size_t kind_len = strlen(kind);
    for (size_t a = 0; a < 4; a++) {
        for (size_t b = 0; b < 2; b++) {
            /* PERIOD/OFFICE/KIND/ is shared by the keys below */
            char head[AMITY_KEY_MAX];
            size_t h = 0;
            memcpy(head, p[a].s, p[a].len);
            h += p[a].len;
            head[h++] = '/';
            memcpy(head + h, o[b].s, o[b].len);
            h += o[b].len;
            head[h++] = '/';
            memcpy(head + h, kind, kind_len);
            h += kind_len;
            head[h++] = '/';
            for (size_t c = 0; c < n_geos; c++) {
                for (size_t d = 0; d < n_metrics; d++) {
                    char *k = out[n].key;
                    size_t len = h + g[c].len + 1 + m[d].len;
                    if (len >= AMITY_KEY_MAX) {
                        return AMITY_EINVAL;
                    }
                    memcpy(k, head, h);
                    memcpy(k + h, g[c].s, g[c].len);
                    k[h + g[c].len] = '/';
                    memcpy(k + h + g[c].len + 1, m[d].s, m[d].len);
                    k[len] = '\0';
                    out[n].delta = sign * value[d];
                    n++;
                }
            }
        }
    }
    return n;
}

int
main(int argc, char **argv)
{
    uint64_t n_records = 200000;
    uint64_t offices = BENCH_OFFICES_DEFAULT;
    uint64_t seed = BENCH_SEED_DEFAULT;
    bench_workload_t w;
    amity_record_t *recs;
    const char **office_of;
    static amity_delta_t a[AMITY_DELTAS_MAX];
    static amity_delta_t b[AMITY_DELTAS_MAX];

    for (int i = 1; i + 1 < argc; i += 2) {
        uint64_t *dst = strcmp(argv[i], "--records") == 0   ? &n_records
                        : strcmp(argv[i], "--offices") == 0 ? &offices
                        : strcmp(argv[i], "--seed") == 0    ? &seed
                                                            : NULL;
        if (dst == NULL || !bench_parse_count(argv[i + 1], dst)) {
            fprintf(stderr, "usage: amity-bench_keys [--records N] [--offices K] [--seed X]\n");
            return 2;
        }
    }
    if (argc % 2 == 0 || n_records == 0 || offices == 0 || offices > BENCH_OFFICES_MAX) {
        fprintf(stderr, "usage: amity-bench_keys [--records N] [--offices K] [--seed X]\n");
        return 2;
    }
    bench_workload_init(&w, seed, (uint32_t)offices);
    if (bench_workload_selftest(&w) != 0) {
        return 1;
    }
    /* a pool of records, cycled: derive cost, not generation, is measured */
    size_t n = (size_t)(n_records < 20000 ? n_records : 20000);
    recs = calloc(n, sizeof(*recs));
    office_of = calloc(n, sizeof(*office_of));
    if (recs == NULL || office_of == NULL) {
        free(recs);
        free(office_of);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        office_of[i] = bench_workload_record(&w, i, &recs[i]);
    }
    /* identical output, for every record and both signs */
    for (size_t i = 0; i < n; i++) {
        for (int sign = -1; sign <= 1; sign += 2) {
            int na = amity_keys_derive(&recs[i], office_of[i], sign, a);
            int nb = s_derive_memcpy(&recs[i], office_of[i], sign, b);
            bool same = na == nb;
            for (int k = 0; same && k < na; k++) {
                same = strcmp(a[k].key, b[k].key) == 0 && a[k].delta == b[k].delta;
            }
            if (!same) {
                fprintf(stderr, "bench_keys: record %zu: the two derivations differ\n", i);
                free(recs);
                free(office_of);
                return 1;
            }
        }
    }
    uint64_t keys = 0;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n_records; i++) {
        keys += (uint64_t)amity_keys_derive(&recs[i % n], office_of[i % n], 1, a);
    }
    double t1 = bench_now();
    for (uint64_t i = 0; i < n_records; i++) {
        keys += (uint64_t)s_derive_memcpy(&recs[i % n], office_of[i % n], 1, b);
    }
    double t2 = bench_now();
    double snp = (t1 - t0) * 1e9 / (double)n_records;
    double mem = (t2 - t1) * 1e9 / (double)n_records;
    printf("RESULT bench=keys records=%llu keys_per_record=%.2f snprintf_ns_per_record=%.0f "
           "memcpy_ns_per_record=%.0f speedup=%.1f\n",
           (unsigned long long)n_records, (double)keys / 2.0 / (double)n_records, snp, mem,
           mem > 0 ? snp / mem : 0);
    free(recs);
    free(office_of);
    return 0;
}
