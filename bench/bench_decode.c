/*  bench_decode: how fast one core turns submit messages into checked
 *  records (amity_msg_decode, then amity_fields_decode +
 *  amity_record_validate per record: the work of ingest plus validate).
 *    amity-bench_decode [MESSAGES(2000)] [RECORDS_PER_MESSAGE(100)] [SECONDS(2)]
 *  Generates varied, realistic records (every kind, Vietnamese notes),
 *  encodes them once, then decodes them repeatedly for SECONDS.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/proto.h"
#include "amity/record.h"

static uint64_t s_rng = 0x9e3779b97f4a7c15ull;

static uint64_t
s_rand(void)
{
    /* xorshift64*: deterministic, good enough for test data */
    s_rng ^= s_rng >> 12;
    s_rng ^= s_rng << 25;
    s_rng ^= s_rng >> 27;
    return s_rng * 0x2545f4914f6cdd1dull;
}

static uint32_t
s_below(uint32_t n)
{
    return (uint32_t)(s_rand() % n);
}

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *const s_countries[] = { "US", "JP", "KR", "FR", "DE", "RU", "CN", "LA", "KH",
                                           "TH", "AU", "BR", "CU", "ZA", "GB", "IN", "SE", "CA" };
static const char *const s_notes[] = {
    "Đoàn đại biểu Hội hữu nghị Việt – Mỹ thăm và làm việc tại Hà Nội",
    "Tiếp đoàn Hội hữu nghị Nhật – Việt, trao đổi về hợp tác giáo dục và y tế",
    "Lễ trao Huân chương Hữu nghị cho các bạn bè quốc tế",
    "Cứu trợ đồng bào miền Trung bị ảnh hưởng bởi bão lũ",
    "Hội thảo về công tác đối ngoại nhân dân năm 2023",
    "",
};

static void
s_add_str(amity_fields_t *f, const char *name, const char *s)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = AMITY_VAL_STR;
    x->val.as.s.ptr = s;
    x->val.as.s.len = strlen(s);
}

static void
s_add_uint(amity_fields_t *f, const char *name, uint64_t u)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = AMITY_VAL_UINT;
    x->val.as.u = u;
}

/*  Appends one realistic record (encoded) to out. */
static int
s_record(amity_buf_t *out, uint32_t serial)
{
    amity_fields_t f;
    char id[48];
    char date[16];
    char amount[32];
    memset(&f, 0, sizeof(f));

    amity_kind_t kind = (amity_kind_t)(1 + s_below(AMITY_KIND_COUNT - 1));
    (void)snprintf(id, sizeof(id), "hvm-%u-%06u", 2015 + serial % 9, serial);
    (void)snprintf(date, sizeof(date), "%04u-%02u-%02u", 2015 + s_below(9), 1 + s_below(12),
                   1 + s_below(28));
    s_add_str(&f, "id", id);
    if (s_below(10) == 0) {
        s_add_uint(&f, "rev", 2 + s_below(3));
    }
    s_add_str(&f, "kind", amity_kind_name(kind));
    s_add_str(&f, "date", date);
    if (amity_kind_needs_country(kind) || s_below(2) == 0) {
        s_add_str(&f, "country",
                  s_countries[s_below(sizeof(s_countries) / sizeof(s_countries[0]))]);
    }
    uint32_t mask = amity_kind_metrics(kind);
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if (mask & (1u << m)) {
            s_add_uint(&f, amity_metric_name((amity_metric_t)m), 1 + s_below(200));
        }
    }
    if (amity_kind_has_amount(kind)) {
        if (s_below(2) == 0) {
            (void)snprintf(amount, sizeof(amount), "%u.%02u", s_below(5000000), s_below(100));
            s_add_str(&f, "amount", amount);
            s_add_str(&f, "currency", s_below(2) ? "USD" : "EUR");
        } else {
            s_add_uint(&f, "amount", (uint64_t)s_below(1000000) * 1000);
            s_add_str(&f, "currency", "VND");
        }
    }
    if (kind == AMITY_KIND_ACTIVITY) {
        s_add_str(&f, "scope", s_below(2) ? "bilateral" : "multilateral");
    }
    if (kind == AMITY_KIND_ORG_FOUNDED) {
        s_add_str(&f, "level", s_below(2) ? "central" : "local");
    }
    const char *note = s_notes[s_below(sizeof(s_notes) / sizeof(s_notes[0]))];
    if (note[0]) {
        s_add_str(&f, "note", note);
    }
    if (s_below(20) == 0) {
        s_add_str(&f, "x-source", "import.csv");
    }
    return amity_fields_encode(&f, out);
}

int
main(int argc, char **argv)
{
    int n_msgs = argc > 1 ? atoi(argv[1]) : 2000;
    int per_msg = argc > 2 ? atoi(argv[2]) : 100;
    double secs = argc > 3 ? atof(argv[3]) : 2.0;
    if (n_msgs <= 0 || per_msg <= 0 || per_msg > AMITY_ITEMS_MAX || secs <= 0) {
        (void)fprintf(stderr, "usage: %s [MESSAGES] [RECORDS_PER_MESSAGE<=%d] [SECONDS]\n", argv[0],
                      AMITY_ITEMS_MAX);
        return 2;
    }

    /* generate */
    amity_buf_t *msgs = calloc((size_t)n_msgs, sizeof(*msgs));
    amity_buf_t *recs = calloc((size_t)per_msg, sizeof(*recs));
    amity_item_t *items = calloc((size_t)per_msg, sizeof(*items));
    if (!msgs || !recs || !items) {
        (void)fprintf(stderr, "bench_decode: out of memory\n");
        return 1;
    }
    size_t total_bytes = 0;
    uint32_t serial = 0;
    for (int i = 0; i < n_msgs; i++) {
        for (int j = 0; j < per_msg; j++) {
            amity_buf_reset(&recs[j]);
            if (s_record(&recs[j], serial++) != 0) {
                (void)fprintf(stderr, "bench_decode: cannot encode a record\n");
                return 1;
            }
            items[j].tag = (uint64_t)j + 1;
            items[j].rec.ptr = recs[j].data;
            items[j].rec.len = recs[j].len;
        }
        amity_msg_t m;
        amity_msg_init(&m);
        m.type = AMITY_MSG_SUBMIT;
        m.items = items;
        m.n_items = (size_t)per_msg;
        amity_buf_init(&msgs[i]);
        if (amity_msg_encode(&m, &msgs[i]) != 0) {
            (void)fprintf(stderr, "bench_decode: cannot encode a message\n");
            return 1;
        }
        total_bytes += msgs[i].len;
    }

    /* measure */
    static amity_fields_t fields;
    static amity_record_t rec;
    char why[AMITY_WHY_MAX];
    amity_validate_opts_t opts = { NULL, INT32_MAX };
    uint64_t n_records = 0;
    uint64_t n_valid = 0;
    uint64_t n_bytes = 0;
    int passes = 0;
    double start = s_now();
    double elapsed = 0;
    do {
        for (int i = 0; i < n_msgs; i++) {
            amity_msg_t m;
            if (amity_msg_decode(msgs[i].data, msgs[i].len, &m, why, sizeof(why)) != 0) {
                (void)fprintf(stderr, "bench_decode: message refused: %s\n", why);
                return 1;
            }
            for (size_t j = 0; j < m.n_items; j++) {
                if (amity_fields_decode(m.items[j].rec.ptr, m.items[j].rec.len, &fields, why,
                                        sizeof(why)) == 0 &&
                    amity_record_validate(&fields, &opts, &rec, why) == 0) {
                    n_valid++;
                }
            }
            n_records += m.n_items;
            n_bytes += msgs[i].len;
            amity_msg_clear(&m);
        }
        passes++;
        elapsed = s_now() - start;
    } while (elapsed < secs);

    (void)printf("bench_decode: %d messages x %d records (%.1f bytes/record), %d passes\n", n_msgs,
                 per_msg, (double)total_bytes / ((double)n_msgs * per_msg), passes);
    (void)printf(
        "bench_decode: %llu records in %.2f s = %.0f records/s (%.1f MB/s), %.1f%% valid\n",
        (unsigned long long)n_records, elapsed, (double)n_records / elapsed,
        (double)n_bytes / elapsed / 1e6, 100.0 * (double)n_valid / (double)n_records);

    for (int i = 0; i < n_msgs; i++) {
        amity_buf_clear(&msgs[i]);
    }
    for (int j = 0; j < per_msg; j++) {
        amity_buf_clear(&recs[j]);
    }
    free(msgs);
    free(recs);
    free(items);
    return 0;
}
