/*  fuzz_decode: libFuzzer harness for everything that reads wire bytes.
 *  Any input: amity_msg_decode (then encode(decode(x)) must be a fixed
 *  point), and every record of submit/work/apply through
 *  amity_fields_decode + amity_record_validate; a valid record's canonical
 *  encoding must decode back to an equal record. The raw input also goes
 *  through amity_fields_decode as a record. A broken invariant aborts.
 *
 *  Built with -DAMITY_FUZZ_MAIN it is test_fuzz_corpus instead: a main
 *  that runs every file of a corpus directory through the same function
 *  (regression, no clang needed), or writes the seed corpus (--seed DIR).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/proto.h"
#include "amity/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_OFFICE "hoi-viet-my"

static void
s_die(const char *what)
{
    (void)fprintf(stderr, "fuzz_decode: invariant broken: %s\n", what);
    abort();
}

/*  A record: validate; if valid, canonical encode -> decode -> equal, and
 *  the canonical bytes are stable. */
static void
s_check_record(const uint8_t *p, size_t n)
{
    static amity_fields_t fields;
    static amity_record_t rec;
    static amity_record_t back;
    char why[AMITY_WHY_MAX];
    /* latest allowed date: 2030-12-31 (fixed, so runs are reproducible) */
    amity_validate_opts_t opts = { S_OFFICE, 22279 };

    if (amity_fields_decode(p, n, &fields, why, sizeof(why)) != 0) {
        return;
    }
    if (amity_record_validate(&fields, &opts, &rec, why) != 0) {
        return;
    }
    amity_buf_t canon;
    amity_buf_t again;
    amity_buf_init(&canon);
    amity_buf_init(&again);
    if (amity_record_encode(&rec, &canon) != 0) {
        s_die("a valid record does not encode");
    }
    if (amity_record_decode(canon.data, canon.len, &back, why, sizeof(why)) != 0) {
        (void)fprintf(stderr, "fuzz_decode: canonical record refused: %s\n", why);
        s_die("canonical record does not decode");
    }
    if (!amity_record_equal(&rec, &back)) {
        s_die("canonical record decodes to a different record");
    }
    if (amity_record_encode(&back, &again) != 0 || again.len != canon.len ||
        memcmp(again.data, canon.data, canon.len) != 0) {
        s_die("canonical encoding is not stable");
    }
    amity_buf_clear(&canon);
    amity_buf_clear(&again);
}

/*  A decoded message re-encodes, and that encoding is a fixed point. */
static void
s_check_reencode(const amity_msg_t *m)
{
    char why[256];
    amity_buf_t one;
    amity_buf_t two;
    amity_msg_t m2;
    amity_buf_init(&one);
    amity_buf_init(&two);
    if (amity_msg_encode(m, &one) != 0) {
        s_die("a decoded message does not encode");
    }
    if (amity_msg_decode(one.data, one.len, &m2, why, sizeof(why)) != 0) {
        (void)fprintf(stderr, "fuzz_decode: re-encoded message refused: %s\n", why);
        s_die("re-encoded message does not decode");
    }
    if (amity_msg_encode(&m2, &two) != 0 || two.len != one.len ||
        memcmp(two.data, one.data, one.len) != 0) {
        s_die("message encoding is not a fixed point");
    }
    amity_msg_clear(&m2);
    amity_buf_clear(&one);
    amity_buf_clear(&two);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    amity_msg_t m;

    if (amity_msg_decode(data, size, &m, why, sizeof(why)) == 0) {
        if (m.type == AMITY_MSG_SUBMIT || m.type == AMITY_MSG_WORK || m.type == AMITY_MSG_APPLY) {
            for (size_t i = 0; i < m.n_items; i++) {
                const amity_item_t *it = &m.items[i];
                if (it->rec.ptr < data || it->rec.ptr + it->rec.len > data + size) {
                    s_die("a record view is outside the input");
                }
                s_check_record(it->rec.ptr, it->rec.len);
            }
        }
        s_check_reencode(&m);
        amity_msg_clear(&m);
    }
    s_check_record(data, size);
    return 0;
}

#if defined(AMITY_FUZZ_MAIN)
#include <dirent.h>

static int
s_run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        (void)fprintf(stderr, "test_fuzz_corpus: cannot open %s\n", path);
        return -1;
    }
    amity_buf_t b;
    amity_buf_init(&b);
    uint8_t chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (amity_buf_append(&b, chunk, n) != 0) {
            (void)fclose(f);
            amity_buf_clear(&b);
            return -1;
        }
    }
    (void)fclose(f);
    /* an exact-size copy, so that a read past the end is caught */
    uint8_t *copy = malloc(b.len ? b.len : 1);
    if (!copy) {
        amity_buf_clear(&b);
        return -1;
    }
    if (b.len) {
        memcpy(copy, b.data, b.len);
    }
    (void)LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    amity_buf_clear(&b);
    return 0;
}

/* ---- seed corpus ------------------------------------------------------- */

static int
s_write(const char *dir, const char *name, const amity_buf_t *b)
{
    char path[1024];
    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        (void)fprintf(stderr, "test_fuzz_corpus: cannot write %s\n", path);
        return -1;
    }
    size_t n = fwrite(b->data, 1, b->len, f);
    int rc = fclose(f);
    return (n == b->len && rc == 0) ? 0 : -1;
}

static int
s_write_hex(const char *dir, const char *name, const char *hex)
{
    amity_buf_t b;
    amity_buf_init(&b);
    for (const char *p = hex; p[0] && p[1]; p += 2) {
        while (*p == ' ') {
            p++;
        }
        unsigned v;
        if (sscanf(p, "%2x", &v) != 1) {
            break;
        }
        uint8_t c = (uint8_t)v;
        if (amity_buf_append(&b, &c, 1) != 0) {
            amity_buf_clear(&b);
            return -1;
        }
    }
    int rc = s_write(dir, name, &b);
    amity_buf_clear(&b);
    return rc;
}

static void
s_f(amity_fields_t *f, const char *name, amity_val_type_t type, const char *s, uint64_t u)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = type;
    if (type == AMITY_VAL_STR) {
        x->val.as.s.ptr = s;
        x->val.as.s.len = strlen(s);
    } else if (type == AMITY_VAL_BOOL) {
        x->val.as.b = u != 0;
    } else {
        x->val.as.u = u;
    }
}

#define S_STR(f, n, s)  s_f((f), (n), AMITY_VAL_STR, (s), 0)
#define S_UINT(f, n, u) s_f((f), (n), AMITY_VAL_UINT, NULL, (u))

/*  Realistic records of every kind (and a few invalid ones). */
static int
s_records(amity_buf_t recs[], int max)
{
    amity_fields_t f;
    int n = 0;

#define S_BEGIN() (memset(&f, 0, sizeof(f)))
#define S_END()                                                                                    \
    do {                                                                                           \
        if (n < max) {                                                                             \
            amity_buf_init(&recs[n]);                                                              \
            if (amity_fields_encode(&f, &recs[n]) != 0) {                                          \
                return -1;                                                                         \
            }                                                                                      \
            n++;                                                                                   \
        }                                                                                          \
    } while (0)

    S_BEGIN();
    S_STR(&f, "id", "hvm-2023-0042");
    S_STR(&f, "kind", "delegation_in");
    S_STR(&f, "date", "2023-05-14");
    S_STR(&f, "country", "US");
    S_UINT(&f, "delegations", 1);
    S_UINT(&f, "people", 12);
    S_STR(&f, "note", "Đoàn đại biểu Hội hữu nghị Việt – Mỹ thăm Hà Nội");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "out-7");
    S_UINT(&f, "rev", 2);
    S_STR(&f, "kind", "delegation_out");
    S_STR(&f, "date", "2017-06-30");
    S_STR(&f, "country", "JP");
    S_UINT(&f, "delegations", 3);
    S_UINT(&f, "people", 21);
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "act-2021-1");
    S_STR(&f, "kind", "activity");
    S_STR(&f, "date", "2021-01-02");
    S_UINT(&f, "activities", 40);
    S_STR(&f, "scope", "multilateral");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "aid:2017:h1:1");
    S_STR(&f, "kind", "aid_commitment");
    S_STR(&f, "date", "2017-03-15");
    S_STR(&f, "country", "KR");
    S_UINT(&f, "projects", 209);
    S_STR(&f, "amount", "47425742.00");
    S_STR(&f, "currency", "USD");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "disb.9");
    S_STR(&f, "kind", "aid_disbursement");
    S_STR(&f, "date", "2019-11-11");
    S_STR(&f, "country", "DE");
    S_STR(&f, "amount", "1250.5");
    S_STR(&f, "currency", "EUR");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "relief-2020-10");
    S_STR(&f, "kind", "relief");
    S_STR(&f, "date", "2020-10-20");
    S_UINT(&f, "amount", 60000000000ull);
    S_STR(&f, "currency", "VND");
    S_STR(&f, "note", "Cứu trợ đồng bào miền Trung bị lũ lụt");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "award-1");
    S_STR(&f, "kind", "award");
    S_STR(&f, "date", "2023-09-02");
    S_STR(&f, "country", "FR");
    S_UINT(&f, "awards", 4);
    S_STR(&f, "x-source", "csv:12");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "contact-3");
    S_STR(&f, "kind", "contact");
    S_STR(&f, "date", "2022-02-28");
    S_STR(&f, "country", "BR");
    S_UINT(&f, "partners", 15);
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "org-2023-h1");
    S_STR(&f, "kind", "org_founded");
    S_STR(&f, "date", "2023-06-01");
    S_UINT(&f, "orgs", 3);
    S_STR(&f, "level", "local");
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "hvm-2023-0042");
    S_UINT(&f, "rev", 3);
    s_f(&f, "retract", AMITY_VAL_BOOL, NULL, 1);
    S_END();

    /* invalid: not a calendar date, unknown field, wrong office */
    S_BEGIN();
    S_STR(&f, "id", "bad-1");
    S_STR(&f, "kind", "award");
    S_STR(&f, "date", "2017-02-30");
    S_STR(&f, "country", "FR");
    S_UINT(&f, "awards", 1);
    S_END();

    S_BEGIN();
    S_STR(&f, "id", "bad-2");
    S_STR(&f, "kind", "contact");
    S_STR(&f, "date", "2022-02-28");
    S_STR(&f, "country", "BR");
    S_UINT(&f, "partners", 1);
    S_STR(&f, "office", "another-office");
    S_STR(&f, "colour", "blue");
    S_END();

#undef S_BEGIN
#undef S_END
    return n;
}

static int
s_seed(const char *dir)
{
    amity_buf_t recs[16];
    amity_item_t items[16];
    amity_verdict_t verdicts[3];
    amity_kv_t kv[3];
    amity_view_t prefixes[2];
    amity_msg_t m;
    amity_buf_t b;
    char name[64];
    int rc = 0;

    int n = s_records(recs, 16);
    if (n < 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        items[i].tag = (uint64_t)i + 1;
        items[i].rec.ptr = recs[i].data;
        items[i].rec.len = recs[i].len;
        items[i].ok = i % 3 != 2;
        items[i].why = amity_view_str("date: 2017-02-30 is not a calendar date");
        (void)snprintf(name, sizeof(name), "record-%02d", i);
        rc |= s_write(dir, name, &recs[i]);
    }
    verdicts[0] = (amity_verdict_t){ 1, AMITY_VERDICT_ACCEPTED, { NULL, 0 } };
    verdicts[1] = (amity_verdict_t){ 2, AMITY_VERDICT_DUPLICATE, { NULL, 0 } };
    verdicts[2] = (amity_verdict_t){ 3, AMITY_VERDICT_REJECTED, amity_view_str("kind: required") };
    kv[0] = (amity_kv_t){ amity_view_str("2017-H1/all/aid_commitment/all/amount.USD"), 4742574200 };
    kv[1] = (amity_kv_t){ amity_view_str("2023/hoi-viet-my/delegation_in/US/delegations"), 11 };
    kv[2] = (amity_kv_t){ amity_view_str("2023-Q2/all/relief/asia/amount.VND"), -5 };
    prefixes[0] = amity_view_str("2023/");
    prefixes[1] = amity_view_str("2017-H1/all/");

    amity_buf_init(&b);
    for (int t = AMITY_MSG_NONE + 1; t < AMITY_MSG_COUNT; t++) {
        for (int variant = 0; variant < 2; variant++) {
            amity_msg_init(&m);
            m.type = (amity_msg_type_t)t;
            m.ing = amity_view_str("ing-0123456789abcdef");
            m.conn = amity_view_str("\x01\x02\x03\x04\x05");
            m.office = amity_view_str(S_OFFICE);
            m.items = items;
            m.n_items = variant ? (size_t)n : 1;
            m.verdicts = verdicts;
            m.n_verdicts = variant ? 3 : 1;
            m.kv = kv;
            m.n_kv = variant ? 3 : 0;
            m.prefixes = prefixes;
            m.n_prefixes = variant ? 2 : 1;
            m.prefix = amity_view_str(variant ? "2023/" : "");
            m.why = amity_view_str("sub: too many subscriptions");
            m.req = 42;
            m.shard = (uint64_t)variant;
            m.epoch = variant ? 0x5eed : 0;
            m.seq = 1000 + (uint64_t)variant;
            m.prev = 999;
            m.more = variant == 0;
            if (t == AMITY_MSG_SUBMIT && variant == 0) {
                m.office.ptr = NULL;
                m.office.len = 0;
            }
            amity_buf_reset(&b);
            if (amity_msg_encode(&m, &b) != 0) {
                (void)fprintf(stderr, "test_fuzz_corpus: cannot encode %s\n",
                              amity_msg_type_name(m.type));
                rc = -1;
                continue;
            }
            (void)snprintf(name, sizeof(name), "%s-%d", amity_msg_type_name(m.type), variant);
            rc |= s_write(dir, name, &b);
        }
    }
    amity_buf_clear(&b);
    for (int i = 0; i < n; i++) {
        amity_buf_clear(&recs[i]);
    }

    /* hostile: huge claims, deep nesting, the never-used byte */
    rc |= s_write_hex(dir, "hostile-array32", "ddffffffff");
    rc |= s_write_hex(dir, "hostile-str32", "dbffffffff");
    rc |= s_write_hex(dir, "hostile-bin32", "c6ffffffff");
    rc |= s_write_hex(dir, "hostile-map32", "dfffffffff");
    rc |= s_write_hex(dir, "hostile-ext32", "c9ffffffff01");
    rc |= s_write_hex(dir, "hostile-nested",
                      "dd08000000dd08000000dd08000000dd08000000dd08000000dd08000000");
    rc |= s_write_hex(dir, "hostile-c1", "83a17601a174a67375626d6974c1");
    rc |= s_write_hex(dir, "hostile-recs", "83a17601a174a67375626d6974a472656373ddffffffff80");
    return rc == 0 ? 0 : -1;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--seed") == 0) {
        return s_seed(argv[2]) == 0 ? 0 : 1;
    }
    if (argc < 2) {
        (void)fprintf(stderr, "usage: %s CORPUS_DIR|FILE... | --seed DIR\n", argv[0]);
        return 2;
    }
    int n_run = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (!d) {
            if (s_run_file(argv[a]) != 0) {
                return 1;
            }
            n_run++;
            continue;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.') {
                continue;
            }
            char path[4096];
            (void)snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
            if (s_run_file(path) != 0) {
                closedir(d);
                return 1;
            }
            n_run++;
        }
        closedir(d);
    }
    (void)printf("test_fuzz_corpus: %d inputs, no invariant broken\n", n_run);
    return n_run > 0 ? 0 : 1;
}
#endif
