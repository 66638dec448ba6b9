/*  amity-gen: realistic sample records as JSON Lines, for demos, tests and
 *  benchmarks. Deterministic for a seed: the same options give the same
 *  bytes (dates are capped at today, so a year still running grows).
 *
 *  Records carry no office (the office is whoever submits them): with
 *  --out-dir DIR it writes one file per office, DIR/<office>.jsonl, and
 *  prints their paths; otherwise it prints the records of one --office.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/record.h"

typedef struct {
    int64_t seed;    /* PRNG seed */
    int64_t records; /* records per office (corrections and retractions come on top) */
    int64_t offices; /* offices with --out-dir */
    char *years;     /* "Y0-Y1" or "Y" */
    char *bad_rate;  /* fraction of invalid records, 0..1 */
    char *office;    /* single-office mode */
    char *out_dir;   /* one file per office */
    char *log_level;
} s_cfg_t;

static const amity_opt_t s_opts[] = {
    { "seed", AMITY_OPT_INT, offsetof(s_cfg_t, seed), "1", 0, INT64_MAX,
      "random seed (same seed, same output)" },
    { "records", AMITY_OPT_INT, offsetof(s_cfg_t, records), "1000", 0, 100000000,
      "records per office, plus about 4% corrections and 2% retractions" },
    { "offices", AMITY_OPT_INT, offsetof(s_cfg_t, offices), "5", 1, 12,
      "offices (with --out-dir)" },
    { "years", AMITY_OPT_STR, offsetof(s_cfg_t, years), NULL, 0, 0,
      "Y0-Y1 or Y: dates over these years, never after today (default: last year and this)" },
    { "bad-rate", AMITY_OPT_STR, offsetof(s_cfg_t, bad_rate), "0", 0, 0,
      "fraction 0..1 of records that break a rule (bad date, country, decimals, ...)" },
    { "office", AMITY_OPT_STR, offsetof(s_cfg_t, office), "hoi-viet-my", 0, 0,
      "without --out-dir: the office whose records to print" },
    { "out-dir", AMITY_OPT_STR, offsetof(s_cfg_t, out_dir), NULL, 0, 0,
      "write DIR/<office>.jsonl for the first --offices offices; print the paths" },
    { "log-level", AMITY_OPT_STR, offsetof(s_cfg_t, log_level), "warn", 0, 0,
      "error|warn|info|debug" },
};

static const amity_config_spec_t s_spec = {
    "amity-gen",
    "gen",
    "Prints realistic sample records as JSON Lines: every kind with plausible\n"
    "numbers, money as decimal strings (USD, EUR, JPY, VND), countries from a\n"
    "realistic list, Vietnamese notes, ids <office>-<year>-<n>, some corrections\n"
    "(same id, rev 2) and retractions. Records carry no office field: submit\n"
    "each office's records as that office (amity-submit --office ID).\n"
    "Offices: hoi-viet-my hoi-viet-nhat lien-hiep-ha-noi lien-hiep-da-nang\n"
    "ngo-desk hoi-viet-phap hoi-viet-duc hoi-viet-han lien-hiep-tp-hcm\n"
    "hoi-viet-lao hoi-viet-nga lien-hiep-khanh-hoa.",
    s_opts,
    sizeof(s_opts) / sizeof(s_opts[0]),
    false,
    NULL,
};

/*  ------------------------------------------------------------------
 *  Reference data
 */

typedef struct {
    const char *code; /* ISO 3166-1 alpha-2 */
    const char *name; /* Vietnamese name */
    const char *cur;  /* currency its partners give aid in */
    int weight;       /* how often it appears */
} s_country_t;

static const s_country_t s_countries[] = {
    { "US", "Hoa Kỳ", "USD", 12 },      { "JP", "Nhật Bản", "JPY", 10 },
    { "FR", "Pháp", "EUR", 7 },         { "DE", "Đức", "EUR", 7 },
    { "KR", "Hàn Quốc", "USD", 8 },     { "LA", "Lào", "USD", 6 },
    { "KH", "Campuchia", "USD", 5 },    { "RU", "Nga", "USD", 5 },
    { "CN", "Trung Quốc", "USD", 6 },   { "CU", "Cu Ba", "USD", 4 },
    { "AU", "Ô-xtrây-li-a", "USD", 5 }, { "GB", "Anh", "USD", 4 },
    { "IT", "I-ta-li-a", "EUR", 3 },    { "TH", "Thái Lan", "USD", 4 },
    { "IN", "Ấn Độ", "USD", 3 },        { "CA", "Ca-na-đa", "USD", 3 },
    { "BR", "Bra-xin", "USD", 2 },      { "ZA", "Nam Phi", "USD", 2 },
    { "SE", "Thụy Điển", "EUR", 3 },    { "NL", "Hà Lan", "EUR", 3 },
    { "BE", "Bỉ", "EUR", 2 },           { "CH", "Thụy Sĩ", "EUR", 2 },
    { "SG", "Xin-ga-po", "USD", 3 },    { "NZ", "Niu Di-lân", "USD", 2 },
    { "MZ", "Mô-dăm-bích", "USD", 1 },  { "AO", "Ăng-gô-la", "USD", 1 },
    { "DZ", "An-giê-ri", "USD", 1 },    { "EG", "Ai Cập", "USD", 1 },
    { "MX", "Mê-hi-cô", "USD", 1 },     { "AR", "Ác-hen-ti-na", "USD", 1 },
    { "CL", "Chi-lê", "USD", 1 },       { "VE", "Vê-nê-xu-ê-la", "USD", 1 },
    { "PL", "Ba Lan", "EUR", 2 },       { "CZ", "Séc", "EUR", 1 },
    { "HU", "Hung-ga-ri", "EUR", 1 },   { "NO", "Na Uy", "EUR", 2 },
    { "DK", "Đan Mạch", "EUR", 2 },     { "FI", "Phần Lan", "EUR", 2 },
    { "IE", "Ai-len", "EUR", 2 },       { "MN", "Mông Cổ", "USD", 1 },
    { "MY", "Ma-lai-xi-a", "USD", 2 },  { "ID", "In-đô-nê-xi-a", "USD", 2 },
    { "PH", "Phi-líp-pin", "USD", 2 },  { "MM", "Mi-an-ma", "USD", 1 },
};
#define S_N_COUNTRIES (sizeof(s_countries) / sizeof(s_countries[0]))

typedef struct {
    const char *id;     /* office id */
    const char *home;   /* its partner country ("" for a general office) */
    const int *weights; /* kind weights, by amity_kind_t */
} s_office_t;

/* kind weights: none, in, out, activity, commitment, disbursement, relief, award, contact, org */
static const int s_w_society[AMITY_KIND_COUNT] = { 0, 22, 8, 30, 6, 4, 2, 8, 18, 2 };
static const int s_w_union[AMITY_KIND_COUNT] = { 0, 18, 8, 26, 8, 6, 8, 6, 14, 6 };
static const int s_w_ngo[AMITY_KIND_COUNT] = { 0, 8, 2, 10, 35, 30, 10, 2, 12, 1 };

static const s_office_t s_offices[] = {
    { "hoi-viet-my", "US", s_w_society },  { "hoi-viet-nhat", "JP", s_w_society },
    { "lien-hiep-ha-noi", "", s_w_union }, { "lien-hiep-da-nang", "", s_w_union },
    { "ngo-desk", "", s_w_ngo },           { "hoi-viet-phap", "FR", s_w_society },
    { "hoi-viet-duc", "DE", s_w_society }, { "hoi-viet-han", "KR", s_w_society },
    { "lien-hiep-tp-hcm", "", s_w_union }, { "hoi-viet-lao", "LA", s_w_society },
    { "hoi-viet-nga", "RU", s_w_society }, { "lien-hiep-khanh-hoa", "", s_w_union },
};
#define S_N_OFFICES (sizeof(s_offices) / sizeof(s_offices[0]))

static const char *const s_places[] = {
    "Hà Nội",    "Thành phố Hồ Chí Minh",
    "Đà Nẵng",   "Huế",
    "Khánh Hòa", "Quảng Nam",
    "Cần Thơ",   "Hải Phòng",
    "Nghệ An",   "Quảng Trị",
    "Lào Cai",   "Hà Giang",
    "Điện Biên", "Thái Nguyên",
    "Bình Định",
};
#define S_N_PLACES (sizeof(s_places) / sizeof(s_places[0]))

/* Note templates: %C country (Vietnamese), %P place, %Y year. Phrases after
 * the seed articles (shared/seeds). */
static const char *const s_notes_in[] = {
    "Đoàn đại biểu Hội hữu nghị %C - Việt Nam thăm và làm việc tại %P",
    "Tiếp đoàn thanh niên %C sang giao lưu hữu nghị tại %P",
    "Đón đoàn cựu chiến binh %C thăm lại chiến trường xưa ở %P",
    "Đoàn doanh nghiệp và tổ chức phi chính phủ %C tìm hiểu cơ hội hợp tác tại %P",
};
static const char *const s_notes_out[] = {
    "Đoàn Liên hiệp các tổ chức hữu nghị Việt Nam thăm và làm việc tại %C",
    "Đoàn đại biểu nhân dân Việt Nam dự diễn đàn hữu nghị tại %C",
    "Đoàn công tác thúc đẩy giao lưu nhân dân Việt Nam - %C",
};
static const char *const s_notes_activity[] = {
    "Gặp mặt hữu nghị chào Xuân %Y với bạn bè quốc tế tại %P",
    "Hội nghị tổng kết công tác đối ngoại nhân dân, triển khai nhiệm vụ năm %Y",
    "Kỷ niệm ngày thiết lập quan hệ ngoại giao Việt Nam - %C",
    "Tọa đàm vì hòa bình, hữu nghị và hợp tác giữa nhân dân Việt Nam và %C",
    "Chương trình giao lưu văn hóa nhân dân Việt Nam - %C tại %P",
    "Sơ kết công tác đối ngoại nhân dân 6 tháng đầu năm %Y",
};
static const char *const s_notes_aid[] = {
    "Tổ chức phi chính phủ %C cam kết tài trợ dự án nước sạch tại %P",
    "Dự án hỗ trợ giáo dục cho trẻ em vùng khó khăn tại %P do đối tác %C tài trợ",
    "Dự án chăm sóc sức khỏe cộng đồng tại %P với sự hỗ trợ của bạn bè %C",
    "Viện trợ phi chính phủ nước ngoài cho sinh kế người dân %P",
};
static const char *const s_notes_disb[] = {
    "Giải ngân dự án viện trợ của tổ chức phi chính phủ %C tại %P",
    "Đối tác %C giải ngân đợt tiếp theo cho dự án tại %P",
};
static const char *const s_notes_relief[] = {
    "Vận động cứu trợ đồng bào bị ảnh hưởng bão lũ tại %P",
    "Quyên góp ủng hộ đồng bào miền Trung khắc phục hậu quả thiên tai",
    "Tiếp nhận hàng cứu trợ của bạn bè quốc tế cho người dân %P",
};
static const char *const s_notes_award[] = {
    "Trao Kỷ niệm chương Vì hòa bình, hữu nghị giữa các dân tộc cho bạn bè %C",
    "Trao Bằng khen cho các cá nhân %C có đóng góp cho tình hữu nghị với Việt Nam",
};
static const char *const s_notes_contact[] = {
    "Tiếp xúc, làm việc với các đối tác %C tại %P",
    "Trao đổi với tổ chức phi chính phủ %C về kế hoạch hợp tác năm %Y",
};
static const char *const s_notes_org[] = {
    "Đại hội thành lập Hội hữu nghị Việt Nam - %C tỉnh %P",
    "Thành lập Liên hiệp các tổ chức hữu nghị tỉnh %P",
    "Ra mắt chi hội hữu nghị tại %P",
};

/*  ------------------------------------------------------------------
 *  Random numbers (splitmix64: small, fast, the same everywhere)
 */

typedef struct {
    uint64_t s;
} s_rng_t;

static uint64_t
s_next(s_rng_t *r)
{
    uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static int64_t
s_range(s_rng_t *r, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(s_next(r) % (uint64_t)(hi - lo + 1));
}

static double
s_unit(s_rng_t *r)
{
    return (double)(s_next(r) >> 11) / (double)(UINT64_C(1) << 53);
}

static const s_country_t *
s_pick_country(s_rng_t *r, const s_office_t *office)
{
    int total = 0;
    int x;

    if (office->home[0] != '\0' && s_unit(r) < 0.6) {
        for (size_t i = 0; i < S_N_COUNTRIES; i++) {
            if (strcmp(s_countries[i].code, office->home) == 0) {
                return &s_countries[i];
            }
        }
    }
    for (size_t i = 0; i < S_N_COUNTRIES; i++) {
        total += s_countries[i].weight;
    }
    x = (int)s_range(r, 0, total - 1);
    for (size_t i = 0; i < S_N_COUNTRIES; i++) {
        x -= s_countries[i].weight;
        if (x < 0) {
            return &s_countries[i];
        }
    }
    return &s_countries[0];
}

static amity_kind_t
s_pick_kind(s_rng_t *r, const int *weights)
{
    int total = 0;
    int x;

    for (int k = 1; k < AMITY_KIND_COUNT; k++) {
        total += weights[k];
    }
    x = (int)s_range(r, 0, total - 1);
    for (int k = 1; k < AMITY_KIND_COUNT; k++) {
        x -= weights[k];
        if (x < 0) {
            return (amity_kind_t)k;
        }
    }
    return AMITY_KIND_ACTIVITY;
}

/*  ------------------------------------------------------------------
 *  Dates
 */

static void
s_civil_from_days(int32_t z, int *y, int *m, int *d)
{
    /* Howard Hinnant's algorithm */
    int32_t era;
    uint32_t doe;
    uint32_t yoe;
    uint32_t doy;
    uint32_t mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (uint32_t)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    *y = (int)yoe + era * 400;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    if (*m <= 2) {
        (*y)++;
    }
}

static int
s_cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a;
    int32_t y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/*  ------------------------------------------------------------------
 *  Writing JSON
 */

static void
s_json_str(FILE *fp, const char *s)
{
    fputc('"', fp);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', fp);
            fputc(*p, fp);
        } else if (*p < 0x20) {
            fprintf(fp, "\\u%04x", *p);
        } else {
            fputc(*p, fp);
        }
    }
    fputc('"', fp);
}

/* Expands a note template. */
static void
s_note(char *buf, size_t len, const char *tmpl, const s_country_t *c, const char *place, int year)
{
    size_t n = 0;

    for (const char *p = tmpl; *p != '\0' && n + 1 < len; p++) {
        const char *ins = NULL;
        char yb[16];
        if (p[0] == '%' && p[1] == 'C') {
            ins = c->name;
        } else if (p[0] == '%' && p[1] == 'P') {
            ins = place;
        } else if (p[0] == '%' && p[1] == 'Y') {
            snprintf(yb, sizeof(yb), "%d", year);
            ins = yb;
        }
        if (ins != NULL) {
            size_t k = strlen(ins);
            if (n + k >= len) {
                break;
            }
            memcpy(buf + n, ins, k);
            n += k;
            p++;
            continue;
        }
        buf[n++] = *p;
    }
    buf[n] = '\0';
}

#define S_PICK(r, arr) ((arr)[s_range((r), 0, (int64_t)(sizeof(arr) / sizeof((arr)[0])) - 1)])

/* Formats a money amount in minor units with the currency's decimals. */
static void
s_money(char *buf, size_t len, int64_t minor, const char *cur)
{
    if (strcmp(cur, "USD") == 0 || strcmp(cur, "EUR") == 0) {
        snprintf(buf, len, "%" PRId64 ".%02" PRId64, minor / 100, minor % 100);
    } else {
        snprintf(buf, len, "%" PRId64, minor);
    }
}

/* A plausible amount in minor units for an aid project in cur. */
static int64_t
s_aid_amount(s_rng_t *r, const char *cur)
{
    int64_t usd = s_range(r, 5, 2500) * 1000; /* 5,000 .. 2,500,000 USD */

    if (s_unit(r) < 0.3) {
        usd += s_range(r, 0, 999); /* not always round */
    }
    if (strcmp(cur, "USD") == 0) {
        return usd * 100 + (s_unit(r) < 0.2 ? s_range(r, 1, 99) : 0);
    }
    if (strcmp(cur, "EUR") == 0) {
        return usd * 92 + (s_unit(r) < 0.2 ? s_range(r, 1, 99) : 0);
    }
    if (strcmp(cur, "JPY") == 0) {
        return usd * 150 / 1000 * 1000;
    }
    return usd * 25000; /* VND */
}

/* One record, good or deliberately bad. */
typedef struct {
    char id[96];
    amity_kind_t kind;
    int32_t day;
    const s_country_t *country;
    uint32_t metrics[AMITY_METRIC_COUNT];
    int64_t amount; /* minor units, when the kind has money */
    const char *cur;
    const char *scope; /* activity */
    const char *level; /* org_founded */
    char note[512];
} s_rec_t;

static void
s_make(s_rng_t *r, const s_office_t *office, const char *office_id, int32_t day, uint64_t n,
       s_rec_t *rec)
{
    int y;
    int m;
    int d;
    const char *place = S_PICK(r, s_places);
    const char *tmpl = NULL;
    const s_country_t *picked;

    memset(rec, 0, sizeof(*rec));
    s_civil_from_days(day, &y, &m, &d);
    snprintf(rec->id, sizeof(rec->id), "%s-%d-%" PRIu64, office_id, y, n);
    rec->day = day;
    rec->kind = s_pick_kind(r, office->weights);
    rec->country = s_pick_country(r, office);
    picked = rec->country;
    switch (rec->kind) {
    case AMITY_KIND_DELEGATION_IN:
    case AMITY_KIND_DELEGATION_OUT: {
        uint32_t dels = (uint32_t)(s_unit(r) < 0.8 ? 1 : s_range(r, 2, 3));
        uint32_t people = 0;
        for (uint32_t i = 0; i < dels; i++) {
            people += (uint32_t)s_range(r, 1, 20);
        }
        rec->metrics[AMITY_METRIC_DELEGATIONS] = dels;
        rec->metrics[AMITY_METRIC_PEOPLE] = people;
        tmpl =
            rec->kind == AMITY_KIND_DELEGATION_IN ? S_PICK(r, s_notes_in) : S_PICK(r, s_notes_out);
        break;
    }
    case AMITY_KIND_ACTIVITY:
        rec->metrics[AMITY_METRIC_ACTIVITIES] = (uint32_t)(s_unit(r) < 0.7 ? 1 : s_range(r, 2, 12));
        rec->scope = s_unit(r) < 0.75 ? "bilateral" : "multilateral";
        if (s_unit(r) < 0.3) {
            rec->country = NULL; /* local activities need no country */
        }
        tmpl = S_PICK(r, s_notes_activity);
        break;
    case AMITY_KIND_AID_COMMITMENT:
        rec->metrics[AMITY_METRIC_PROJECTS] = (uint32_t)(s_unit(r) < 0.85 ? 1 : s_range(r, 2, 4));
        rec->cur = s_unit(r) < 0.1 ? "VND" : rec->country->cur;
        rec->amount = s_aid_amount(r, rec->cur) * rec->metrics[AMITY_METRIC_PROJECTS];
        tmpl = S_PICK(r, s_notes_aid);
        break;
    case AMITY_KIND_AID_DISBURSEMENT:
        rec->cur = s_unit(r) < 0.1 ? "VND" : rec->country->cur;
        rec->amount = s_aid_amount(r, rec->cur) / 2;
        tmpl = S_PICK(r, s_notes_disb);
        break;
    case AMITY_KIND_RELIEF:
        rec->cur = "VND";
        rec->amount = s_range(r, 10, 3000) * 1000000;
        if (s_unit(r) < 0.5) {
            rec->country = NULL;
        }
        tmpl = S_PICK(r, s_notes_relief);
        break;
    case AMITY_KIND_AWARD:
        rec->metrics[AMITY_METRIC_AWARDS] = (uint32_t)s_range(r, 1, 10);
        tmpl = S_PICK(r, s_notes_award);
        break;
    case AMITY_KIND_CONTACT:
        rec->metrics[AMITY_METRIC_PARTNERS] = (uint32_t)s_range(r, 1, 15);
        tmpl = S_PICK(r, s_notes_contact);
        break;
    case AMITY_KIND_ORG_FOUNDED:
    default:
        rec->kind = AMITY_KIND_ORG_FOUNDED;
        rec->metrics[AMITY_METRIC_ORGS] = (uint32_t)(s_unit(r) < 0.9 ? 1 : 2);
        rec->level = s_unit(r) < 0.2 ? "central" : "local";
        tmpl = S_PICK(r, s_notes_org);
        if (s_unit(r) < 0.6) {
            rec->country = NULL;
        }
        break;
    }
    s_note(rec->note, sizeof(rec->note), tmpl, picked, place, y);
    if (strstr(tmpl, "%C") != NULL) {
        /* the note names the country: the record keeps it */
        rec->country = picked;
    }
}

/* Writes rec as one JSON line; rev > 1 marks a correction. bad selects a
 * deliberate rule violation (0 none). */
static void
s_write(FILE *fp, const s_rec_t *rec, unsigned rev, int bad)
{
    char money[48];
    int y;
    int m;
    int d;

    if (bad == 9) {
        /* malformed JSON: a truncated line */
        fprintf(fp, "{\"id\": \"%s\", \"kind\": \"activity\", \"date\": \n", rec->id);
        return;
    }
    s_civil_from_days(rec->day, &y, &m, &d);
    fputs("{\"id\":", fp);
    s_json_str(fp, rec->id);
    if (rev > 1) {
        fprintf(fp, ",\"rev\":%u", rev);
    }
    if (bad != 6) {
        fputs(",\"kind\":", fp);
        s_json_str(fp, bad == 7 ? "meeting" : amity_kind_name(rec->kind));
    }
    if (bad == 1) {
        fprintf(fp, ",\"date\":\"%04d-02-30\"", y);
    } else if (bad == 8) {
        fprintf(fp, ",\"date\":\"%04d-%02d-%02d\"", y + 2, m, d > 28 ? 28 : d);
    } else {
        fprintf(fp, ",\"date\":\"%04d-%02d-%02d\"", y, m, d);
    }
    if (rec->country != NULL) {
        fputs(",\"country\":", fp);
        s_json_str(fp, bad == 2 ? "XX" : rec->country->code);
    }
    for (int k = 0; k < AMITY_METRIC_COUNT; k++) {
        if (amity_kind_metrics(rec->kind) & (1u << k)) {
            if (bad == 5) {
                fprintf(fp, ",\"%s\":%u.5", amity_metric_name((amity_metric_t)k), rec->metrics[k]);
            } else {
                fprintf(fp, ",\"%s\":%u", amity_metric_name((amity_metric_t)k), rec->metrics[k]);
            }
        }
    }
    if (rec->cur != NULL) {
        s_money(money, sizeof(money), rec->amount, rec->cur);
        if (bad == 3) {
            /* one decimal more than the currency has */
            strcat(money, strchr(money, '.') != NULL ? "5" : ".5");
        }
        fprintf(fp, ",\"amount\":\"%s\",\"currency\":\"%s\"", money, rec->cur);
    }
    if (rec->scope != NULL) {
        fprintf(fp, ",\"scope\":\"%s\"", rec->scope);
    }
    if (rec->level != NULL) {
        fprintf(fp, ",\"level\":\"%s\"", rec->level);
    }
    fputs(",\"note\":", fp);
    s_json_str(fp, rec->note);
    if (bad == 4) {
        fputs(",\"colour\":\"blue\"", fp);
    }
    fputs("}\n", fp);
}

/* A follow-up: a correction (rev 2) or a retraction, held back a little. */
typedef struct {
    s_rec_t rec;
    bool retract;
    uint64_t due; /* emit after this many records */
} s_follow_t;

#define S_FOLLOW_MAX 64

static int
s_generate(FILE *fp, const s_office_t *office, const char *office_id, uint64_t seed,
           int64_t n_records, int32_t first_day, int32_t last_day, double bad_rate)
{
    s_rng_t r;
    int32_t *days;
    s_follow_t *follow;
    size_t n_follow = 0;
    uint64_t h = 1469598103934665603u;

    /* one stream per (seed, office): an office's file does not depend on
     * which other offices are generated */
    for (const char *p = office_id; *p != '\0'; p++) {
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    }
    r.s = seed * UINT64_C(0x9e3779b97f4a7c15) ^ h;
    days = malloc(((size_t)n_records + 1) * sizeof(*days));
    follow = calloc(S_FOLLOW_MAX, sizeof(*follow));
    if (days == NULL || follow == NULL) {
        free(days);
        free(follow);
        return AMITY_ENOMEM;
    }
    for (int64_t i = 0; i < n_records; i++) {
        days[i] = (int32_t)s_range(&r, first_day, last_day);
    }
    qsort(days, (size_t)n_records, sizeof(*days), s_cmp_i32);
    for (int64_t i = 0; i < n_records; i++) {
        s_rec_t rec;
        int bad = 0;
        double u;

        s_make(&r, office, office_id, days[i], (uint64_t)i + 1, &rec);
        if (bad_rate > 0 && s_unit(&r) < bad_rate) {
            bad = (int)s_range(&r, 1, 9);
        }
        s_write(fp, &rec, 1, bad);
        u = s_unit(&r);
        if (bad == 0 && n_follow < S_FOLLOW_MAX && u < 0.06) {
            s_follow_t *f = &follow[n_follow++];
            f->rec = rec;
            f->retract = u < 0.02;
            f->due = (uint64_t)i + (uint64_t)s_range(&r, 1, 40);
            if (!f->retract) {
                /* a correction: the office got a number wrong */
                for (int k = 0; k < AMITY_METRIC_COUNT; k++) {
                    if (f->rec.metrics[k] > 0) {
                        f->rec.metrics[k] += (uint32_t)s_range(&r, 1, 3);
                        break;
                    }
                }
                if (f->rec.cur != NULL) {
                    f->rec.amount += f->rec.amount / 10;
                }
            }
        }
        for (size_t k = 0; k < n_follow;) {
            if (follow[k].due <= (uint64_t)i || i == n_records - 1) {
                if (follow[k].retract) {
                    fputs("{\"id\":", fp);
                    s_json_str(fp, follow[k].rec.id);
                    fputs(",\"rev\":2,\"retract\":true}\n", fp);
                } else {
                    s_write(fp, &follow[k].rec, 2, 0);
                }
                follow[k] = follow[--n_follow];
            } else {
                k++;
            }
        }
    }
    free(days);
    free(follow);
    return ferror(fp) ? AMITY_EIO : 0;
}

static bool
s_parse_years(const char *s, int *y0, int *y1)
{
    char *end;
    long a;
    long b;

    errno = 0;
    a = strtol(s, &end, 10);
    if (end == s || errno != 0) {
        return false;
    }
    b = a;
    if (*end == '-') {
        const char *p = end + 1;
        b = strtol(p, &end, 10);
        if (end == p || errno != 0) {
            return false;
        }
    }
    if (*end != '\0' || a < 1945 || b < a || b > 9999) {
        return false;
    }
    *y0 = (int)a;
    *y1 = (int)b;
    return true;
}

int
main(int argc, char **argv)
{
    s_cfg_t cfg;
    amity_config_result_t r;
    s_office_t custom;
    struct tm tm;
    time_t now = time(NULL);
    int32_t today;
    int32_t first_day;
    int32_t last_day;
    int y0;
    int y1;
    double bad_rate;
    char *end;
    int rc = 0;

    memset(&cfg, 0, sizeof(cfg));
    amity_log_init("amity-gen");
    r = amity_config_load(&s_spec, &cfg, argc, argv, NULL, NULL);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    gmtime_r(&now, &tm);
    today = amity_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
    y1 = tm.tm_year + 1900;
    y0 = y1 - 1;
    if (cfg.years != NULL && cfg.years[0] != '\0' && !s_parse_years(cfg.years, &y0, &y1)) {
        fprintf(stderr, "amity-gen: --years '%s' is not Y0-Y1 (1945 <= Y0 <= Y1)\n", cfg.years);
        rc = AMITY_EXIT_CONFIG;
        goto out;
    }
    first_day = amity_days_from_civil(y0, 1, 1);
    last_day = amity_days_from_civil(y1, 12, 31);
    if (last_day > today) {
        last_day = today;
    }
    if (first_day > last_day) {
        fprintf(stderr, "amity-gen: --years %d-%d lies after today\n", y0, y1);
        rc = AMITY_EXIT_CONFIG;
        goto out;
    }
    errno = 0;
    bad_rate = strtod(cfg.bad_rate, &end);
    if (end == cfg.bad_rate || *end != '\0' || errno != 0 || !(bad_rate >= 0 && bad_rate <= 1)) {
        fprintf(stderr, "amity-gen: --bad-rate '%s' is not a fraction 0..1\n", cfg.bad_rate);
        rc = AMITY_EXIT_CONFIG;
        goto out;
    }

    if (cfg.out_dir == NULL || cfg.out_dir[0] == '\0') {
        const s_office_t *office = NULL;
        if (!amity_office_valid(cfg.office, strlen(cfg.office))) {
            fprintf(stderr, "amity-gen: --office '%s' is not an office id ([a-z0-9-]{1,64})\n",
                    cfg.office);
            rc = AMITY_EXIT_CONFIG;
            goto out;
        }
        for (size_t i = 0; i < S_N_OFFICES; i++) {
            if (strcmp(s_offices[i].id, cfg.office) == 0) {
                office = &s_offices[i];
            }
        }
        if (office == NULL) {
            custom.id = cfg.office;
            custom.home = "";
            custom.weights = s_w_union;
            office = &custom;
        }
        if (s_generate(stdout, office, cfg.office, (uint64_t)cfg.seed, cfg.records, first_day,
                       last_day, bad_rate) != 0 ||
            fflush(stdout) != 0) {
            fprintf(stderr, "amity-gen: writing: %s\n", strerror(errno));
            rc = AMITY_EXIT_RUNTIME;
        }
        goto out;
    }
    if (mkdir(cfg.out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "amity-gen: cannot create %s: %s\n", cfg.out_dir, strerror(errno));
        rc = AMITY_EXIT_RUNTIME;
        goto out;
    }
    for (int64_t i = 0; i < cfg.offices && rc == 0; i++) {
        const s_office_t *office = &s_offices[i];
        char path[4096];
        FILE *fp;

        snprintf(path, sizeof(path), "%s/%s.jsonl", cfg.out_dir, office->id);
        fp = fopen(path, "w");
        if (fp == NULL) {
            fprintf(stderr, "amity-gen: cannot write %s: %s\n", path, strerror(errno));
            rc = AMITY_EXIT_RUNTIME;
            break;
        }
        if (s_generate(fp, office, office->id, (uint64_t)cfg.seed, cfg.records, first_day, last_day,
                       bad_rate) != 0) {
            fprintf(stderr, "amity-gen: writing %s failed\n", path);
            rc = AMITY_EXIT_RUNTIME;
        }
        if (fclose(fp) != 0 && rc == 0) {
            fprintf(stderr, "amity-gen: writing %s: %s\n", path, strerror(errno));
            rc = AMITY_EXIT_RUNTIME;
        }
        printf("%s\n", path);
    }

out:
    amity_config_free(&s_spec, &cfg);
    return rc;
}
