/*  bench_keys: what deriving a record's totals keys costs. amity_keys_derive
 *  builds every key (up to 48 per record, on the aggregate's single thread)
 *  from its parts with memcpy; s_derive_snprintf below is how it did so
 *  before, one snprintf per key. The bench checks that both give identical
 *  output for every record and both signs, then times both, and the
 *  record's finest keys alone (amity_keys_finest, what aggregate stores).
 *
 *    amity-bench_keys [--records N(200k)] [--offices K(20)] [--seed X]
 *
 *  Prints one line starting "RESULT" (ns per record, each way).
 *  (Until the library switched, memcpy_ns_per_record was a bench-local
 *  memcpy builder; it is now amity_keys_derive itself.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"

#include "workload.h"

#define S_PERIOD_MAX 24 /* "2017-H1" plus NUL, with room for any int the compiler sees */
#define S_METRIC_LEN 16

/*  amity_keys_derive as it was before it built keys with memcpy (one
 *  snprintf per key), kept as the reference the library must match byte
 *  for byte and as the "before" figure. */
static int
s_derive_snprintf(const amity_record_t *rec, const char *office, int sign,
                  amity_delta_t out[AMITY_DELTAS_MAX])
{
    char periods[4][S_PERIOD_MAX];
    const char *offices[2];
    const char *geos[3];
    char metric_name[2][S_METRIC_LEN];
    int64_t value[2];
    size_t n_geos = 0;
    size_t n_metrics = 0;
    int n = 0;

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
        if (n_metrics == 2) {
            return AMITY_EINVAL;
        }
        (void)snprintf(metric_name[n_metrics], S_METRIC_LEN, "%s",
                       amity_metric_name((amity_metric_t)m));
        value[n_metrics++] = (int64_t)rec->metrics[m];
    }
    if (rec->has_amount && rec->amount != 0) {
        if (n_metrics == 2) {
            return AMITY_EINVAL;
        }
        (void)snprintf(metric_name[n_metrics], S_METRIC_LEN, "amount.%s", rec->currency);
        value[n_metrics++] = rec->amount;
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
    for (size_t p = 0; p < 4; p++) {
        for (size_t o = 0; o < 2; o++) {
            for (size_t g = 0; g < n_geos; g++) {
                for (size_t m = 0; m < n_metrics; m++) {
                    (void)snprintf(out[n].key, AMITY_KEY_MAX, "%s/%s/%s/%s/%s", periods[p],
                                   offices[o], kind, geos[g], metric_name[m]);
                    out[n].delta = sign * value[m];
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
            int nb = s_derive_snprintf(&recs[i], office_of[i], sign, b);
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
    uint64_t keys = 0, finest = 0;
    double t0 = bench_now();
    for (uint64_t i = 0; i < n_records; i++) {
        keys += (uint64_t)s_derive_snprintf(&recs[i % n], office_of[i % n], 1, b);
    }
    double t1 = bench_now();
    for (uint64_t i = 0; i < n_records; i++) {
        keys += (uint64_t)amity_keys_derive(&recs[i % n], office_of[i % n], 1, a);
    }
    double t2 = bench_now();
    for (uint64_t i = 0; i < n_records; i++) {
        finest += (uint64_t)amity_keys_finest(&recs[i % n], office_of[i % n], 1, a);
    }
    double t3 = bench_now();
    /* every finest key rolled up to the published keys it feeds (what
     * aggregate does per finest delta, and over the store at open) */
    static char rolled[AMITY_ROLLUP_MAX][AMITY_KEY_MAX];
    uint64_t n_rolled = 0;
    for (uint64_t i = 0; i < n_records; i++) {
        int nf = amity_keys_finest(&recs[i % n], office_of[i % n], 1, a);
        for (int f = 0; f < nf; f++) {
            int nr = amity_keys_rollup(a[f].key, strlen(a[f].key), rolled, AMITY_ROLLUP_MAX);
            n_rolled += nr > 0 ? (uint64_t)nr : 0;
        }
    }
    double t4 = bench_now();
    double snp = (t1 - t0) * 1e9 / (double)n_records;
    double mem = (t2 - t1) * 1e9 / (double)n_records;
    double fin = (t3 - t2) * 1e9 / (double)n_records;
    double rol = (t4 - t3) * 1e9 / (double)n_records - fin;
    printf("RESULT bench=keys records=%llu keys_per_record=%.2f snprintf_ns_per_record=%.0f "
           "memcpy_ns_per_record=%.0f speedup=%.1f finest_per_record=%.2f "
           "finest_ns_per_record=%.0f rollup_ns_per_record=%.0f\n",
           (unsigned long long)n_records, (double)keys / 2.0 / (double)n_records, snp, mem,
           mem > 0 ? snp / mem : 0, (double)finest / (double)n_records, fin, rol);
    if (n_rolled != keys / 2) {
        fprintf(stderr, "bench_keys: finest keys roll up to %llu keys, derive gives %llu\n",
                (unsigned long long)n_rolled, (unsigned long long)(keys / 2));
        free(recs);
        free(office_of);
        return 1;
    }
    free(recs);
    free(office_of);
    return 0;
}
