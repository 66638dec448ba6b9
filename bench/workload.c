/*  bench/workload: deterministic, realistic records for every benchmark,
 *  and the tools the benchmarks share. See workload.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amity/err.h"
#include "amity/iso.h"
#include "amity/keys.h"
#include "amity/proto.h"

#include "workload.h"

/*  ------------------------------------------------------------------
 *  Tables: what the sample data looks like
 */

static const char *const s_offices[] = {
    "hoi-viet-my",   "hoi-viet-nhat",   "hoi-viet-phap",      "hoi-viet-duc",
    "hoi-viet-nga",  "hoi-viet-trung",  "hoi-viet-lao",       "hoi-viet-campuchia",
    "hoi-viet-han",  "hoi-viet-anh",    "hoi-viet-uc",        "hoi-viet-cuba",
    "lhh-ha-noi",    "lhh-tp-hcm",      "lhh-da-nang",        "lhh-hai-phong",
    "lhh-can-tho",   "lhh-thua-thien-hue", "lhh-nghe-an",     "ban-ngo",
};
#define S_N_NAMED (sizeof(s_offices) / sizeof(s_offices[0]))

typedef struct {
    const char *name; /* code or name */
    unsigned weight;  /* relative frequency */
} s_weighted_t;

/*  40 partner countries, weighted toward Viet Nam's main partners. */
static const s_weighted_t s_countries[] = {
    { "US", 10 }, { "JP", 9 }, { "KR", 8 }, { "CN", 8 }, { "LA", 7 }, { "FR", 6 }, { "DE", 6 },
    { "RU", 6 },  { "KH", 6 }, { "TH", 4 }, { "AU", 4 }, { "GB", 4 }, { "IN", 3 }, { "CU", 3 },
    { "SG", 3 },  { "MY", 2 }, { "ID", 2 }, { "PH", 2 }, { "MM", 2 }, { "CA", 2 }, { "IT", 2 },
    { "NL", 2 },  { "SE", 2 }, { "ES", 1 }, { "BE", 1 }, { "NO", 1 }, { "FI", 1 }, { "DK", 1 },
    { "PL", 1 },  { "CZ", 1 }, { "HU", 1 }, { "AT", 1 }, { "CH", 1 }, { "NZ", 1 }, { "BR", 1 },
    { "MX", 1 },  { "AR", 1 }, { "ZA", 1 }, { "EG", 1 }, { "AO", 1 },
};

/*  Kinds by how often offices report them (indexes are amity_kind_t). */
static const unsigned s_kind_weight[AMITY_KIND_COUNT] = {
    [AMITY_KIND_DELEGATION_IN] = 18, [AMITY_KIND_DELEGATION_OUT] = 8,
    [AMITY_KIND_ACTIVITY] = 28,      [AMITY_KIND_AID_COMMITMENT] = 9,
    [AMITY_KIND_AID_DISBURSEMENT] = 9, [AMITY_KIND_RELIEF] = 6,
    [AMITY_KIND_AWARD] = 6,          [AMITY_KIND_CONTACT] = 12,
    [AMITY_KIND_ORG_FOUNDED] = 4,
};

typedef struct {
    const char *code;  /* ISO 4217 */
    unsigned weight;   /* relative frequency */
    int64_t lo, hi;    /* amount range in minor units */
    int64_t step;      /* amounts are multiples of this (round sums) */
} s_currency_t;

static const s_currency_t s_currencies[] = {
    { "USD", 45, 50000, 50000000, 1 },               /* 500.00 .. 500,000.00 */
    { "EUR", 15, 50000, 30000000, 1 },               /* 500.00 .. 300,000.00 */
    { "JPY", 10, 50000, 50000000, 1000 },            /* 50 thousand .. 50 million */
    { "KRW", 5, 1000000, 500000000, 10000 },         /* 1 million .. 500 million */
    { "VND", 25, 5000000, 5000000000, 1000000 },     /* 5 million .. 5 billion */
};

static const char *const s_notes[] = {
    "Đoàn đại biểu Hội hữu nghị Việt – Mỹ thăm và làm việc tại Hà Nội",
    "Tiếp đoàn Hội hữu nghị Nhật – Việt, trao đổi về hợp tác giáo dục và y tế",
    "Lễ trao Huân chương Hữu nghị cho các bạn bè quốc tế",
    "Cứu trợ đồng bào miền Trung bị ảnh hưởng bởi bão lũ",
    "Hội thảo về công tác đối ngoại nhân dân",
    "Gặp mặt hữu nghị nhân kỷ niệm ngày thiết lập quan hệ ngoại giao",
    "Tổ chức NGO nước ngoài cam kết tài trợ dự án nước sạch nông thôn",
    "Giải ngân viện trợ cho chương trình học bổng học sinh nghèo vượt khó",
    "Thành lập Hội hữu nghị cấp tỉnh, đại hội lần thứ nhất",
    "Giao lưu văn hoá thanh niên hai nước",
};

/*  ------------------------------------------------------------------
 *  Random numbers: one small generator per record, seeded from (seed, serial)
 */

typedef struct {
    uint64_t s;
} s_rng_t;

static uint64_t
s_splitmix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t
s_next(s_rng_t *r)
{
    r->s += 0x9e3779b97f4a7c15ull;
    return s_splitmix(r->s);
}

static uint32_t
s_below(s_rng_t *r, uint32_t n)
{
    return (uint32_t)(s_next(r) % n);
}

static uint32_t
s_range(s_rng_t *r, uint32_t lo, uint32_t hi)
{
    return lo + s_below(r, hi - lo + 1);
}

static size_t
s_pick(s_rng_t *r, const unsigned *weights, size_t n, size_t stride)
{
    unsigned total = 0;
    for (size_t i = 0; i < n; i++) {
        total += *(const unsigned *)(const void *)((const char *)weights + i * stride);
    }
    uint32_t x = s_below(r, total);
    for (size_t i = 0; i < n; i++) {
        unsigned w = *(const unsigned *)(const void *)((const char *)weights + i * stride);
        if (x < w) {
            return i;
        }
        x -= w;
    }
    return n - 1;
}

/*  ------------------------------------------------------------------
 *  Records
 */

void
bench_workload_init(bench_workload_t *w, uint64_t seed, uint32_t n_offices)
{
    w->seed = seed;
    w->n_offices = n_offices == 0 ? BENCH_OFFICES_DEFAULT : n_offices;
    if (w->n_offices > BENCH_OFFICES_MAX) {
        w->n_offices = BENCH_OFFICES_MAX;
    }
}

uint32_t
bench_workload_office_of(const bench_workload_t *w, uint64_t serial)
{
    return (uint32_t)(serial % w->n_offices);
}

const char *
bench_workload_office_name(uint32_t office)
{
    static char names[BENCH_OFFICES_MAX][16];
    static int made;

    if (office < S_N_NAMED) {
        return s_offices[office];
    }
    if (!made) {
        /* written once, before any thread exists (bench_workload_selftest) */
        for (unsigned i = 0; i < BENCH_OFFICES_MAX; i++) {
            snprintf(names[i], sizeof(names[i]), "office-%u", i + 1);
        }
        made = 1;
    }
    return names[office % BENCH_OFFICES_MAX];
}

static int
s_days_in_month(int y, int m)
{
    static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
        return 29;
    }
    return days[m - 1];
}

const char *
bench_workload_record(const bench_workload_t *w, uint64_t serial, amity_record_t *rec)
{
    s_rng_t r = { s_splitmix(w->seed ^ s_splitmix(serial)) };
    const char *office = bench_workload_office_name(bench_workload_office_of(w, serial));

    memset(rec, 0, offsetof(amity_record_t, note));
    rec->note[0] = '\0';
    rec->year = (int)s_range(&r, 2015, 2024);
    rec->month = (int)s_range(&r, 1, 12);
    rec->day = (int)s_range(&r, 1, (uint32_t)s_days_in_month(rec->year, rec->month));
    snprintf(rec->id, sizeof(rec->id), "%d-%llu", rec->year, (unsigned long long)serial);
    rec->rev = s_below(&r, 20) == 0 ? 2 : 1;
    rec->kind = (amity_kind_t)s_pick(&r, s_kind_weight, AMITY_KIND_COUNT, sizeof(unsigned));

    if (amity_kind_needs_country(rec->kind) || s_below(&r, 2) == 0) {
        size_t c = s_pick(&r, &s_countries[0].weight,
                          sizeof(s_countries) / sizeof(s_countries[0]), sizeof(s_countries[0]));
        memcpy(rec->country, s_countries[c].name, 3);
    }

    uint32_t mask = amity_kind_metrics(rec->kind);
    rec->metric_mask = mask;
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if (!(mask & (1u << m))) {
            continue;
        }
        uint32_t v;
        switch ((amity_metric_t)m) {
        case AMITY_METRIC_DELEGATIONS:
            v = s_below(&r, 5) == 0 ? s_range(&r, 2, 4) : 1;
            break;
        case AMITY_METRIC_PEOPLE:
            v = s_range(&r, 2, 40);
            break;
        case AMITY_METRIC_ACTIVITIES:
            v = s_range(&r, 1, 12);
            break;
        case AMITY_METRIC_PROJECTS:
            v = s_range(&r, 1, 6);
            break;
        case AMITY_METRIC_AWARDS:
            v = s_range(&r, 1, 15);
            break;
        case AMITY_METRIC_PARTNERS:
            v = s_range(&r, 1, 20);
            break;
        default:
            v = s_range(&r, 1, 3);
            break;
        }
        rec->metrics[m] = v;
    }
    if (amity_kind_has_amount(rec->kind)) {
        size_t c = s_pick(&r, &s_currencies[0].weight,
                          sizeof(s_currencies) / sizeof(s_currencies[0]), sizeof(s_currencies[0]));
        const s_currency_t *cur = &s_currencies[c];
        uint64_t steps = (uint64_t)((cur->hi - cur->lo) / cur->step);
        rec->has_amount = true;
        rec->amount = cur->lo + (int64_t)(s_next(&r) % (steps + 1)) * cur->step;
        memcpy(rec->currency, cur->code, 4);
    }
    if (rec->kind == AMITY_KIND_ACTIVITY) {
        rec->scope = s_below(&r, 10) < 7 ? AMITY_SCOPE_BILATERAL : AMITY_SCOPE_MULTILATERAL;
    }
    if (rec->kind == AMITY_KIND_ORG_FOUNDED) {
        rec->level = s_below(&r, 4) == 0 ? AMITY_LEVEL_CENTRAL : AMITY_LEVEL_LOCAL;
    }
    if (s_below(&r, 10) < 6) {
        const char *note = s_notes[s_below(&r, sizeof(s_notes) / sizeof(s_notes[0]))];
        rec->note_len = strlen(note);
        memcpy(rec->note, note, rec->note_len + 1);
    }
    return office;
}

int
bench_workload_encode(const bench_workload_t *w, uint64_t serial, amity_buf_t *out,
                      const char **office)
{
    static _Thread_local amity_record_t rec;
    const char *o = bench_workload_record(w, serial, &rec);
    if (office != NULL) {
        *office = o;
    }
    return amity_record_encode(&rec, out);
}

int
bench_workload_submit_msg(const bench_workload_t *w, uint64_t serial, uint64_t step, size_t n,
                          const char *office, amity_buf_t *out)
{
    amity_buf_t recs;
    size_t *ends = calloc(n, sizeof(*ends));
    amity_item_t *items = calloc(n, sizeof(*items));
    amity_msg_t m;
    int rc = 0;

    amity_buf_init(&recs);
    if (ends == NULL || items == NULL) {
        rc = AMITY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = bench_workload_encode(w, serial + i * step, &recs, NULL);
        ends[i] = recs.len;
    }
    if (rc != 0) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        size_t start = i == 0 ? 0 : ends[i - 1];
        items[i].tag = i + 1;
        items[i].rec.ptr = recs.data + start;
        items[i].rec.len = ends[i] - start;
    }
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUBMIT;
    m.items = items;
    m.n_items = n;
    if (office != NULL) {
        m.office = amity_view_str(office);
    }
    amity_buf_reset(out);
    rc = amity_msg_encode(&m, out);
out:
    amity_buf_clear(&recs);
    free(ends);
    free(items);
    return rc;
}

int
bench_workload_selftest(const bench_workload_t *w)
{
    static amity_record_t rec;
    static amity_record_t back;
    static amity_fields_t fields;
    amity_delta_t deltas[AMITY_DELTAS_MAX];
    char why[AMITY_WHY_MAX];
    amity_buf_t buf;
    unsigned kinds = 0;
    int rc = 0;

    (void)bench_workload_office_name(S_N_NAMED); /* makes the generated names */
    for (size_t i = 0; i < sizeof(s_countries) / sizeof(s_countries[0]); i++) {
        if (amity_country_region(s_countries[i].name, 2) == NULL) {
            fprintf(stderr, "workload: %s is not a country amity knows\n", s_countries[i].name);
            return -1;
        }
    }
    for (size_t i = 0; i < sizeof(s_currencies) / sizeof(s_currencies[0]); i++) {
        if (amity_currency_exponent(s_currencies[i].code, 3) < 0) {
            fprintf(stderr, "workload: %s is not a currency amity knows\n", s_currencies[i].code);
            return -1;
        }
    }
    amity_buf_init(&buf);
    for (uint64_t serial = 0; serial < 2000 && rc == 0; serial++) {
        const char *office = bench_workload_record(w, serial, &rec);
        amity_validate_opts_t opts = { office, INT32_MAX };
        amity_buf_reset(&buf);
        rc = amity_record_encode(&rec, &buf);
        if (rc == 0) {
            rc = amity_fields_decode(buf.data, buf.len, &fields, why, sizeof(why));
        }
        if (rc == 0) {
            rc = amity_record_validate(&fields, &opts, &back, why);
        }
        if (rc != 0) {
            fprintf(stderr, "workload: record %llu is not valid: %s\n",
                    (unsigned long long)serial, why);
        } else if (!amity_record_equal(&rec, &back)) {
            fprintf(stderr, "workload: record %llu changes through validation\n",
                    (unsigned long long)serial);
            rc = -1;
        } else if (amity_keys_derive(&rec, office, 1, deltas) <= 0) {
            fprintf(stderr, "workload: record %llu has no totals keys\n",
                    (unsigned long long)serial);
            rc = -1;
        }
        kinds |= 1u << rec.kind;
    }
    amity_buf_clear(&buf);
    if (rc == 0 && kinds != ((1u << AMITY_KIND_COUNT) - 2)) {
        fprintf(stderr, "workload: not every kind appears (mask %x)\n", kinds);
        rc = -1;
    }
    return rc == 0 ? 0 : -1;
}

/*  ------------------------------------------------------------------
 *  Shared tools
 */

int64_t
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double
bench_now(void)
{
    return (double)bench_now_ns() / 1e9;
}

void
bench_sleep_until_ns(int64_t t_ns)
{
    struct timespec ts;
    if (t_ns <= bench_now_ns()) {
        return;
    }
    ts.tv_sec = (time_t)(t_ns / 1000000000);
    ts.tv_nsec = (long)(t_ns % 1000000000);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static int
s_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a;
    double y = *(const double *)b;
    return (x > y) - (x < y);
}

double
bench_percentile(double *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), s_cmp_double);
    size_t rank = (size_t)(p * (double)n + 0.999999);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > n) {
        rank = n;
    }
    return v[rank - 1];
}

int
bench_samples_add(bench_samples_t *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL) {
            return AMITY_ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

void
bench_samples_clear(bench_samples_t *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
    s->cap = 0;
}

void
bench_print_latency(const char *name, bench_samples_t *s)
{
    double p50 = bench_percentile(s->v, s->n, 0.50);
    double p99 = bench_percentile(s->v, s->n, 0.99);
    double p999 = bench_percentile(s->v, s->n, 0.999);
    double max = s->n > 0 ? s->v[s->n - 1] : 0;
    printf(" %s_p50_ms=%.3f %s_p99_ms=%.3f %s_p999_ms=%.3f %s_max_ms=%.3f %s_n=%zu", name,
           p50 * 1e3, name, p99 * 1e3, name, p999 * 1e3, name, max * 1e3, name, s->n);
}

long
bench_vmhwm_kib(int pid)
{
    char path[64];
    char line[256];
    long kib = -1;
    FILE *f;

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/status");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/status", pid);
    }
    f = fopen(path, "r");
    if (f == NULL) {
        return -1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kib;
}

bool
bench_parse_count(const char *s, uint64_t *out)
{
    char *end = NULL;
    double x;

    errno = 0;
    x = strtod(s, &end);
    if (errno != 0 || end == s || x < 0) {
        return false;
    }
    if (*end == 'k' || *end == 'K') {
        x *= 1e3;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        x *= 1e6;
        end++;
    }
    if (*end != '\0' || x > 1e15) {
        return false;
    }
    *out = (uint64_t)(x + 0.5);
    return true;
}
