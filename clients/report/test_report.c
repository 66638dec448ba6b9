/*  test_report: amity-report's pure part: periods, exact percentages,
 *  Vietnamese and English number formatting, and whole reports rendered
 *  from a fixed set of totals (text bytes exact, JSON by value). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "amity/err.h"
#include "report.h"

/* ---- helpers ------------------------------------------------------------- */

static void
s_assert_period(const char *text, report_span_t span, int year, int part)
{
    report_period_t p;
    char key[REPORT_PERIOD_KEY_MAX];

    assert_int_equal(report_period_parse(text, &p), 0);
    assert_int_equal(p.span, span);
    assert_int_equal(p.year, year);
    assert_int_equal(p.part, part);
    (void)report_period_key(&p, key, sizeof(key));
    assert_string_equal(key, text);
}

static void
s_assert_previous(const char *text, const char *expected)
{
    report_period_t p;
    report_period_t prev;
    char key[REPORT_PERIOD_KEY_MAX];

    assert_int_equal(report_period_parse(text, &p), 0);
    report_period_previous(&p, &prev);
    (void)report_period_key(&prev, key, sizeof(key));
    assert_string_equal(key, expected);
}

static void
s_assert_label(const char *text, report_lang_t lang, const char *expected)
{
    report_period_t p;
    char label[REPORT_LABEL_MAX];

    assert_int_equal(report_period_parse(text, &p), 0);
    (void)report_period_label(&p, lang, label, sizeof(label));
    assert_string_equal(label, expected);
}

/*  The formatted change from prev to cur. */
static void
s_assert_change(int64_t cur, int64_t prev, report_lang_t lang, const char *expected)
{
    report_change_t c;
    char buf[REPORT_NUM_MAX];
    size_t len;

    report_change(cur, prev, &c);
    len = report_format_change(&c, lang, buf, sizeof(buf));
    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
}

static void
s_assert_count(int64_t v, report_lang_t lang, const char *expected)
{
    char buf[REPORT_NUM_MAX];
    size_t len = report_format_count(v, lang, buf, sizeof(buf));

    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
}

static void
s_assert_money(int64_t minor, int exponent, report_lang_t lang, const char *expected)
{
    char buf[REPORT_NUM_MAX];
    size_t len = report_format_money(minor, exponent, lang, buf, sizeof(buf));

    assert_string_equal(buf, expected);
    assert_int_equal(len, strlen(expected));
}

/*  Renders rep as text in lang into a NUL-terminated heap string. */
static char *
s_text(const report_t *rep, report_lang_t lang)
{
    amity_buf_t out;
    char *s;

    amity_buf_init(&out);
    assert_int_equal(report_text(rep, lang, &out), 0);
    s = calloc(1, out.len + 1);
    assert_non_null(s);
    memcpy(s, out.data, out.len);
    amity_buf_clear(&out);
    return s;
}

static json_t *
s_json(const report_t *rep)
{
    amity_buf_t out;
    json_error_t err;
    json_t *root;

    amity_buf_init(&out);
    assert_int_equal(report_json(rep, &out), 0);
    assert_true(out.len > 0 && out.data[out.len - 1] == '\n');
    root = json_loadb((const char *)out.data, out.len, 0, &err);
    if (root == NULL) {
        fail_msg("report_json output does not parse: %s", err.text);
    }
    amity_buf_clear(&out);
    return root;
}

/* ---- periods ------------------------------------------------------------- */

static void
test_report_period_parse(void **state)
{
    static const char *const bad[] = {
        "",           "17",     "2017-",   "2017-H0", "2017-H3",  "2017-Q0", "2017-Q5", "2017-00",
        "2017-13",    "2017-1", "2017-h1", "2017-q2", "2017-H1 ", " 2017",   "20170",   "2017-H12",
        "2017-06-01", "1944",   "abcd",    "2017/H1", "2017-HX",  "+2017",   "2017-H",  "2017-Q",
    };
    report_period_t p;

    (void)state;
    s_assert_period("2017", REPORT_SPAN_YEAR, 2017, 0);
    s_assert_period("2017-H1", REPORT_SPAN_HALF, 2017, 1);
    s_assert_period("2017-H2", REPORT_SPAN_HALF, 2017, 2);
    s_assert_period("2017-Q1", REPORT_SPAN_QUARTER, 2017, 1);
    s_assert_period("2017-Q4", REPORT_SPAN_QUARTER, 2017, 4);
    s_assert_period("2017-01", REPORT_SPAN_MONTH, 2017, 1);
    s_assert_period("2017-06", REPORT_SPAN_MONTH, 2017, 6);
    s_assert_period("2017-12", REPORT_SPAN_MONTH, 2017, 12);
    s_assert_period("1945", REPORT_SPAN_YEAR, 1945, 0);
    s_assert_period("9999-Q3", REPORT_SPAN_QUARTER, 9999, 3);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (report_period_parse(bad[i], &p) == 0) {
            fail_msg("period '%s' was accepted", bad[i]);
        }
    }
    assert_int_equal(report_period_parse(NULL, &p), AMITY_EINVAL);
}

static void
test_report_period_previous(void **state)
{
    (void)state;
    s_assert_previous("2017", "2016");
    s_assert_previous("2017-H1", "2016-H1");
    s_assert_previous("2017-H2", "2016-H2");
    s_assert_previous("2017-Q2", "2016-Q2");
    s_assert_previous("2017-06", "2016-06");
    s_assert_previous("2000-01", "1999-01");
    s_assert_previous("1945", "1944");
}

static void
test_report_period_label(void **state)
{
    (void)state;
    s_assert_label("2017-H1", REPORT_LANG_VI, "6 tháng đầu năm 2017");
    s_assert_label("2017-H2", REPORT_LANG_VI, "6 tháng cuối năm 2017");
    s_assert_label("2017-Q1", REPORT_LANG_VI, "Quý I năm 2017");
    s_assert_label("2017-Q2", REPORT_LANG_VI, "Quý II năm 2017");
    s_assert_label("2017-Q3", REPORT_LANG_VI, "Quý III năm 2017");
    s_assert_label("2017-Q4", REPORT_LANG_VI, "Quý IV năm 2017");
    s_assert_label("2017-06", REPORT_LANG_VI, "Tháng 6 năm 2017");
    s_assert_label("2017-12", REPORT_LANG_VI, "Tháng 12 năm 2017");
    s_assert_label("2017", REPORT_LANG_VI, "Năm 2017");
    s_assert_label("2017-H1", REPORT_LANG_EN, "First half of 2017");
    s_assert_label("2017-H2", REPORT_LANG_EN, "Second half of 2017");
    s_assert_label("2017-Q2", REPORT_LANG_EN, "Second quarter of 2017");
    s_assert_label("2017-Q4", REPORT_LANG_EN, "Fourth quarter of 2017");
    s_assert_label("2017-06", REPORT_LANG_EN, "June 2017");
    s_assert_label("2017-01", REPORT_LANG_EN, "January 2017");
    s_assert_label("2017", REPORT_LANG_EN, "Year 2017");
}

static void
test_report_lang_parse(void **state)
{
    report_lang_t lang = REPORT_LANG_EN;

    (void)state;
    assert_int_equal(report_lang_parse("vi", &lang), 0);
    assert_int_equal(lang, REPORT_LANG_VI);
    assert_int_equal(report_lang_parse("en", &lang), 0);
    assert_int_equal(lang, REPORT_LANG_EN);
    assert_int_equal(report_lang_parse("EN", &lang), AMITY_EINVAL);
    assert_int_equal(report_lang_parse("fr", &lang), AMITY_EINVAL);
    assert_int_equal(report_lang_parse("", &lang), AMITY_EINVAL);
    assert_int_equal(report_lang_parse(NULL, &lang), AMITY_EINVAL);
}

/* ---- percentages ---------------------------------------------------------- */

static void
test_report_change_domain_example(void **state)
{
    report_change_t c;

    (void)state;
    /* DOMAIN.md: 47,425,742 USD against 52,582,989 USD is -9.8% */
    report_change(4742574200, 5258298900, &c);
    assert_int_equal(c.kind, REPORT_CHANGE_PERCENT);
    assert_true(c.negative);
    assert_int_equal(c.tenths, 98);
    s_assert_change(4742574200, 5258298900, REPORT_LANG_EN, "−9.8%");
    s_assert_change(4742574200, 5258298900, REPORT_LANG_VI, "−9,8%");
    s_assert_change(47425742, 52582989, REPORT_LANG_EN, "−9.8%");
    /* and its project count: 209 against 144 */
    s_assert_change(209, 144, REPORT_LANG_EN, "+45.1%");
    s_assert_change(209, 144, REPORT_LANG_VI, "+45,1%");
    s_assert_change(541, 500, REPORT_LANG_EN, "+8.2%");
    s_assert_change(1061, 1000, REPORT_LANG_VI, "+6,1%");
}

static void
test_report_change_rounding(void **state)
{
    (void)state;
    /* exactly half a tenth rounds away from zero, both ways */
    s_assert_change(2001, 2000, REPORT_LANG_EN, "+0.1%");
    s_assert_change(1999, 2000, REPORT_LANG_EN, "−0.1%");
    s_assert_change(10005, 10000, REPORT_LANG_EN, "+0.1%");
    s_assert_change(20030, 20000, REPORT_LANG_EN, "+0.2%"); /* 0.15 -> 0.2 */
    s_assert_change(19970, 20000, REPORT_LANG_EN, "−0.2%");
    s_assert_change(20003, 20000, REPORT_LANG_EN, "0.0%"); /* 0.015 */
    /* just under half a tenth rounds to zero, shown without a sign */
    s_assert_change(2002, 2001, REPORT_LANG_EN, "0.0%");
    s_assert_change(2000, 2001, REPORT_LANG_EN, "0.0%");
    s_assert_change(95, 95, REPORT_LANG_EN, "0.0%");
    s_assert_change(95, 95, REPORT_LANG_VI, "0,0%");
    /* thirds: 1/3 -> 33.3, 2/3 -> 66.7 */
    s_assert_change(4, 3, REPORT_LANG_EN, "+33.3%");
    s_assert_change(5, 3, REPORT_LANG_EN, "+66.7%");
    s_assert_change(1, 3, REPORT_LANG_EN, "−66.7%");
    s_assert_change(0, 7, REPORT_LANG_EN, "−100.0%");
    s_assert_change(0, 7, REPORT_LANG_VI, "−100,0%");
    s_assert_change(20, 10, REPORT_LANG_EN, "+100.0%");
    /* thousands separators in the percentage too */
    s_assert_change(12346, 1, REPORT_LANG_EN, "+1,234,500.0%");
    s_assert_change(12346, 1, REPORT_LANG_VI, "+1.234.500,0%");
}

static void
test_report_change_new_and_none(void **state)
{
    report_change_t c;

    (void)state;
    report_change(5, 0, &c);
    assert_int_equal(c.kind, REPORT_CHANGE_NEW);
    s_assert_change(5, 0, REPORT_LANG_EN, "new");
    s_assert_change(5, 0, REPORT_LANG_VI, "mới");
    s_assert_change(-5, 0, REPORT_LANG_EN, "new");
    report_change(0, 0, &c);
    assert_int_equal(c.kind, REPORT_CHANGE_NONE);
    s_assert_change(0, 0, REPORT_LANG_EN, "—");
    s_assert_change(0, 0, REPORT_LANG_VI, "—");
}

static void
test_report_change_negative_and_extremes(void **state)
{
    report_change_t c;

    (void)state;
    /* a negative base: the change is measured against |prev| */
    s_assert_change(-50, -100, REPORT_LANG_EN, "+50.0%");
    s_assert_change(-150, -100, REPORT_LANG_EN, "−50.0%");
    s_assert_change(100, -100, REPORT_LANG_EN, "+200.0%");
    /* no overflow at the ends of int64 */
    s_assert_change(INT64_MIN, INT64_MAX, REPORT_LANG_EN, "−200.0%");
    s_assert_change(INT64_MAX, INT64_MIN, REPORT_LANG_EN, "+200.0%");
    s_assert_change(INT64_MAX / 2 + 1, INT64_MAX, REPORT_LANG_EN, "−50.0%"); /* 49.99...% */
    s_assert_change(INT64_MAX, INT64_MAX - 1, REPORT_LANG_EN, "0.0%");
    report_change(INT64_MAX, 1, &c);
    assert_int_equal(c.kind, REPORT_CHANGE_PERCENT);
    assert_false(c.negative);
    assert_true(c.tenths == UINT64_MAX);             /* saturated */
    report_change(INT64_MAX, 10000000000000000, &c); /* 92133.7% */
    assert_int_equal(c.tenths, 921337);
}

/* ---- numbers --------------------------------------------------------------- */

static void
test_report_format_count(void **state)
{
    (void)state;
    s_assert_count(0, REPORT_LANG_EN, "0");
    s_assert_count(7, REPORT_LANG_VI, "7");
    s_assert_count(999, REPORT_LANG_EN, "999");
    s_assert_count(1000, REPORT_LANG_EN, "1,000");
    s_assert_count(1061, REPORT_LANG_EN, "1,061");
    s_assert_count(1061, REPORT_LANG_VI, "1.061");
    s_assert_count(47425742, REPORT_LANG_EN, "47,425,742");
    s_assert_count(47425742, REPORT_LANG_VI, "47.425.742");
    s_assert_count(-1234, REPORT_LANG_EN, "−1,234");
    s_assert_count(-1234, REPORT_LANG_VI, "−1.234");
    s_assert_count(-5, REPORT_LANG_EN, "−5");
    s_assert_count(INT64_MAX, REPORT_LANG_EN, "9,223,372,036,854,775,807");
    s_assert_count(INT64_MIN, REPORT_LANG_VI, "−9.223.372.036.854.775.808");
}

static void
test_report_format_money(void **state)
{
    char small[6];

    (void)state;
    /* decimals only when the minor units are not zero */
    s_assert_money(4742574200, 2, REPORT_LANG_EN, "47,425,742");
    s_assert_money(4742574200, 2, REPORT_LANG_VI, "47.425.742");
    s_assert_money(123450, 2, REPORT_LANG_EN, "1,234.50");
    s_assert_money(123450, 2, REPORT_LANG_VI, "1.234,50");
    s_assert_money(5, 2, REPORT_LANG_EN, "0.05");
    s_assert_money(5, 2, REPORT_LANG_VI, "0,05");
    s_assert_money(0, 2, REPORT_LANG_EN, "0");
    s_assert_money(60000000000, 0, REPORT_LANG_VI, "60.000.000.000");
    s_assert_money(60000000000, 0, REPORT_LANG_EN, "60,000,000,000");
    s_assert_money(1234567, 3, REPORT_LANG_EN, "1,234.567"); /* BHD */
    s_assert_money(-350, 2, REPORT_LANG_EN, "−3.50");
    s_assert_money(-350, 2, REPORT_LANG_VI, "−3,50");
    s_assert_money(-300, 2, REPORT_LANG_VI, "−3");
    s_assert_money(INT64_MIN, 2, REPORT_LANG_EN, "−92,233,720,368,547,758.08");
    /* a short buffer truncates, NUL-terminated */
    assert_int_equal(report_format_money(123450, 2, REPORT_LANG_EN, small, sizeof(small)), 5);
    assert_string_equal(small, "1,234");
}

/* ---- whole reports ---------------------------------------------------------- */

typedef struct {
    const char *key;
    int64_t value;
} s_kv_t;

/*  H1 2017 against H1 2016, including keys the report must ignore. */
static const s_kv_t s_totals[] = {
    /* the period */
    { "2017-H1/all/delegation_in/all/delegations", 541 },
    { "2017-H1/all/delegation_in/all/people", 1061 },
    { "2017-H1/all/delegation_in/asia/delegations", 400 },
    { "2017-H1/all/delegation_in/LA/delegations", 120 },
    { "2017-H1/all/delegation_in/LA/people", 300 },
    { "2017-H1/all/delegation_in/CN/delegations", 95 },
    { "2017-H1/all/delegation_in/US/delegations", 60 },
    { "2017-H1/all/delegation_in/JP/delegations", 60 },
    { "2017-H1/all/delegation_in/KR/delegations", 10 },
    { "2017-H1/all/delegation_in/FR/delegations", 5 },
    { "2017-H1/all/delegation_out/all/delegations", 30 },
    { "2017-H1/all/delegation_out/all/people", 95 },
    { "2017-H1/all/delegation_out/LA/delegations", 30 },
    { "2017-H1/all/activity/all/activities", 987 },
    { "2017-H1/all/activity/europe/activities", 87 },
    { "2017-H1/all/aid_commitment/all/projects", 209 },
    { "2017-H1/all/aid_commitment/all/amount.USD", 4742574200 },
    { "2017-H1/all/aid_commitment/all/amount.EUR", 123450 },
    { "2017-H1/all/aid_commitment/US/amount.USD", 4742574200 },
    { "2017-H1/all/aid_disbursement/all/amount.USD", 28000000000 },
    { "2017-H1/all/relief/all/amount.VND", 60000000000 },
    { "2017-H1/all/award/all/awards", 1 },
    { "2017-H1/all/contact/all/partners", 13 },
    { "2017-H1/all/org_founded/all/orgs", 3 },
    /* the same period a year earlier */
    { "2016-H1/all/delegation_in/all/delegations", 500 },
    { "2016-H1/all/delegation_in/all/people", 1000 },
    { "2016-H1/all/delegation_in/VN/delegations", 500 }, /* not in the top line: other period */
    { "2016-H1/all/delegation_out/all/delegations", 28 },
    { "2016-H1/all/delegation_out/all/people", 95 },
    { "2016-H1/all/activity/all/activities", 1000 },
    { "2016-H1/all/aid_commitment/all/projects", 144 },
    { "2016-H1/all/aid_commitment/all/amount.USD", 5258298900 },
    { "2016-H1/all/aid_commitment/all/amount.JPY", 5000000 },
    { "2016-H1/all/relief/all/amount.VND", 50000000000 },
    { "2016-H1/all/relief/all/amount.EUR", 0 }, /* retracted: no EUR relief to show */
    { "2017-H1/all/relief/all/amount.EUR", 0 },
    { "2016-H1/all/contact/all/partners", 13 },
    /* neither: other offices, other periods, unknown kinds and shapes */
    { "2017-H1/hoi-viet-my/delegation_in/all/delegations", 11 },
    { "2017/all/delegation_in/all/delegations", 1000 },
    { "2017-Q1/all/delegation_in/all/delegations", 300 },
    { "2015-H1/all/delegation_in/all/delegations", 7 },
    { "2017-H1/all/unknown_kind/all/things", 5 },
    { "2017-H1/all/delegation_in/all", 5 },
    { "2017-H1/all/delegation_in/all/people/extra", 5 },
};

static report_t *
s_fixture(const char *office, const s_kv_t *kv, size_t n)
{
    report_period_t p;
    report_t *rep = NULL;

    assert_int_equal(report_period_parse("2017-H1", &p), 0);
    assert_int_equal(report_new(&rep, &p, office), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(report_add(rep, kv[i].key, kv[i].value), 0);
    }
    return rep;
}

static const char s_expected_en[] =
    "People's diplomacy report: First half of 2017, all offices, compared with the same "
    "period of the previous year (First half of 2016)\n"
    "Delegations received: 541 delegations (2016-H1: 500, +8.2%); "
    "1,061 people (2016-H1: 1,000, +6.1%)\n"
    "Delegations sent: 30 delegations (2016-H1: 28, +7.1%); 95 people (2016-H1: 95, 0.0%)\n"
    "Local activities: 987 activities (2016-H1: 1,000, −1.3%)\n"
    "Aid committed: 209 projects (2016-H1: 144, +45.1%); "
    "1,234.50 EUR (2016-H1: 0 EUR, new); "
    "0 JPY (2016-H1: 5,000,000 JPY, −100.0%); "
    "47,425,742 USD (2016-H1: 52,582,989 USD, −9.8%)\n"
    "Aid disbursed: 280,000,000 USD (2016-H1: 0 USD, new)\n"
    "Relief mobilised: 60,000,000,000 VND (2016-H1: 50,000,000,000 VND, +20.0%)\n"
    "Awards (orders, medals, commemorative medals): 1 award (2016-H1: 0, new)\n"
    "Partners met: 13 partners (2016-H1: 13, 0.0%)\n"
    "Organisations founded: 3 organisations (2016-H1: 0, new)\n"
    "Most delegations received from: LA 120, CN 95, JP 60, US 60, KR 10\n";

static const char s_expected_vi[] =
    "Báo cáo công tác đối ngoại nhân dân: 6 tháng đầu năm 2017, toàn Liên hiệp, "
    "so với cùng kỳ năm trước (6 tháng đầu năm 2016)\n"
    "Đón đoàn vào: 541 đoàn (cùng kỳ 2016: 500, +8,2%); 1.061 khách (cùng kỳ 2016: 1.000, "
    "+6,1%)\n"
    "Cử đoàn ra: 30 đoàn (cùng kỳ 2016: 28, +7,1%); 95 lượt người (cùng kỳ 2016: 95, 0,0%)\n"
    "Hoạt động đối ngoại tại chỗ: 987 hoạt động (cùng kỳ 2016: 1.000, −1,3%)\n"
    "Viện trợ cam kết: 209 dự án (cùng kỳ 2016: 144, +45,1%); "
    "1.234,50 EUR (cùng kỳ 2016: 0 EUR, mới); "
    "0 JPY (cùng kỳ 2016: 5.000.000 JPY, −100,0%); "
    "47.425.742 USD (cùng kỳ 2016: 52.582.989 USD, −9,8%)\n"
    "Giải ngân: 280.000.000 USD (cùng kỳ 2016: 0 USD, mới)\n"
    "Cứu trợ: 60.000.000.000 VND (cùng kỳ 2016: 50.000.000.000 VND, +20,0%)\n"
    "Khen thưởng (huân, huy chương, kỷ niệm chương): 1 phần thưởng (cùng kỳ 2016: 0, mới)\n"
    "Đối tác đã gặp: 13 đối tác (cùng kỳ 2016: 13, 0,0%)\n"
    "Tổ chức được thành lập: 3 tổ chức (cùng kỳ 2016: 0, mới)\n"
    "Nhiều đoàn vào nhất từ: LA 120, CN 95, JP 60, US 60, KR 10\n";

static void
test_report_text_en(void **state)
{
    report_t *rep = s_fixture("all", s_totals, sizeof(s_totals) / sizeof(s_totals[0]));
    char *text;

    (void)state;
    assert_string_equal(report_prefix(rep, false), "2017-H1/all/");
    assert_string_equal(report_prefix(rep, true), "2016-H1/all/");
    text = s_text(rep, REPORT_LANG_EN);
    assert_string_equal(text, s_expected_en);
    free(text);
    report_destroy(&rep);
    assert_null(rep);
    report_destroy(&rep); /* idempotent */
}

static void
test_report_text_vi(void **state)
{
    report_t *rep = s_fixture("all", s_totals, sizeof(s_totals) / sizeof(s_totals[0]));
    char *text;

    (void)state;
    text = s_text(rep, REPORT_LANG_VI);
    /* byte for byte: precomposed diacritics (NFC), U+2212 minus */
    assert_string_equal(text, s_expected_vi);
    assert_non_null(strstr(text, "\xc4\x90\xc3\xb3n \xc4\x91o\xc3\xa0n v\xc3\xa0o: 541"));
    assert_non_null(strstr(text, "47.425.742 USD (c\xc3\xb9ng k\xe1\xbb\xb3 2016: 52.582.989 USD, "
                                 "\xe2\x88\x92"
                                 "9,8%)"));
    free(text);
    report_destroy(&rep);
}

static void
test_report_text_empty_office(void **state)
{
    static const s_kv_t other[] = {
        { "2017-H1/all/delegation_in/all/delegations", 541 }, /* not this office */
        { "2017-H1/hoi-viet-my/delegation_in/all/delegations", 11 },
        { "2017-H1/hoi-viet-my/delegation_in/US/delegations", 11 },
        { "2016-H1/hoi-viet-my/delegation_in/all/delegations", 10 },
    };
    report_t *rep = s_fixture("hoi-viet-my", other, sizeof(other) / sizeof(other[0]));
    char *text;

    (void)state;
    assert_string_equal(report_prefix(rep, false), "2017-H1/hoi-viet-my/");
    text = s_text(rep, REPORT_LANG_EN);
    assert_string_equal(
        text, "People's diplomacy report: First half of 2017, office hoi-viet-my, compared with "
              "the same period of the previous year (First half of 2016)\n"
              "Delegations received: 11 delegations (2016-H1: 10, +10.0%); "
              "0 people (2016-H1: 0, —)\n"
              "Delegations sent: 0 delegations (2016-H1: 0, —); 0 people (2016-H1: 0, —)\n"
              "Local activities: 0 activities (2016-H1: 0, —)\n"
              "Aid committed: 0 projects (2016-H1: 0, —)\n" /* no currency: no amount */
              "Aid disbursed: 0 (2016-H1: 0, —)\n"
              "Relief mobilised: 0 (2016-H1: 0, —)\n"
              "Awards (orders, medals, commemorative medals): 0 awards (2016-H1: 0, —)\n"
              "Partners met: 0 partners (2016-H1: 0, —)\n"
              "Organisations founded: 0 organisations (2016-H1: 0, —)\n"
              "Most delegations received from: US 11\n");
    free(text);
    text = s_text(rep, REPORT_LANG_VI);
    assert_string_equal(
        text, "Báo cáo công tác đối ngoại nhân dân: 6 tháng đầu năm 2017, đơn vị hoi-viet-my, "
              "so với cùng kỳ năm trước (6 tháng đầu năm 2016)\n"
              "Đón đoàn vào: 11 đoàn (cùng kỳ 2016: 10, +10,0%); 0 khách (cùng kỳ 2016: 0, —)\n"
              "Cử đoàn ra: 0 đoàn (cùng kỳ 2016: 0, —); 0 lượt người (cùng kỳ 2016: 0, —)\n"
              "Hoạt động đối ngoại tại chỗ: 0 hoạt động (cùng kỳ 2016: 0, —)\n"
              "Viện trợ cam kết: 0 dự án (cùng kỳ 2016: 0, —)\n"
              "Giải ngân: 0 (cùng kỳ 2016: 0, —)\n"
              "Cứu trợ: 0 (cùng kỳ 2016: 0, —)\n"
              "Khen thưởng (huân, huy chương, kỷ niệm chương): 0 phần thưởng (cùng kỳ 2016: 0, "
              "—)\n"
              "Đối tác đã gặp: 0 đối tác (cùng kỳ 2016: 0, —)\n"
              "Tổ chức được thành lập: 0 tổ chức (cùng kỳ 2016: 0, —)\n"
              "Nhiều đoàn vào nhất từ: US 11\n");
    free(text);
    report_destroy(&rep);
}

static void
test_report_text_other_periods(void **state)
{
    static const s_kv_t kv[] = {
        { "2017-Q2/all/org_founded/all/orgs", 1 },
        { "2016-Q2/all/org_founded/all/orgs", 2 },
    };
    report_period_t p;
    report_t *rep = NULL;
    char *text;

    (void)state;
    assert_int_equal(report_period_parse("2017-Q2", &p), 0);
    assert_int_equal(report_new(&rep, &p, "all"), 0);
    for (size_t i = 0; i < sizeof(kv) / sizeof(kv[0]); i++) {
        assert_int_equal(report_add(rep, kv[i].key, kv[i].value), 0);
    }
    text = s_text(rep, REPORT_LANG_VI);
    assert_non_null(strstr(text, "nhân dân: Quý II năm 2017, toàn Liên hiệp, so với cùng kỳ năm "
                                 "trước (Quý II năm 2016)\n"));
    assert_non_null(strstr(text, "\nTổ chức được thành lập: 1 tổ chức (cùng kỳ 2016: 2, "
                                 "−50,0%)\n"));
    free(text);
    text = s_text(rep, REPORT_LANG_EN);
    assert_non_null(strstr(text, "report: Second quarter of 2017, all offices, compared with the "
                                 "same period of the previous year (Second quarter of 2016)\n"));
    assert_non_null(strstr(text, "\nOrganisations founded: 1 organisation (2016-Q2: 2, −50.0%)\n"));
    free(text);
    report_destroy(&rep);
}

static void
test_report_new_office(void **state)
{
    report_period_t p;
    report_t *rep = NULL;

    (void)state;
    assert_int_equal(report_period_parse("2017", &p), 0);
    assert_int_equal(report_new(&rep, &p, "All"), AMITY_EINVAL);
    assert_int_equal(report_new(&rep, &p, ""), AMITY_EINVAL);
    assert_int_equal(report_new(&rep, &p, "a/b"), AMITY_EINVAL);
    assert_int_equal(report_new(&rep, &p, NULL), AMITY_EINVAL);
    assert_null(rep);
    assert_int_equal(report_new(&rep, &p, "lhht-khanh-hoa"), 0);
    assert_string_equal(report_prefix(rep, false), "2017/lhht-khanh-hoa/");
    assert_string_equal(report_prefix(rep, true), "2016/lhht-khanh-hoa/");
    /* a key given again keeps the last value */
    assert_int_equal(report_add(rep, "2017/lhht-khanh-hoa/contact/all/partners", 5), 0);
    assert_int_equal(report_add(rep, "2017/lhht-khanh-hoa/contact/all/partners", 8), 0);
    {
        char *text = s_text(rep, REPORT_LANG_EN);
        assert_non_null(strstr(text, "\nPartners met: 8 partners (2016: 0, new)\n"));
        free(text);
    }
    report_destroy(&rep);
}

static json_t *
s_get(json_t *root, const char *path)
{
    char buf[256];
    char *save = NULL;
    json_t *node = root;

    (void)snprintf(buf, sizeof(buf), "%s", path);
    for (char *part = strtok_r(buf, ".", &save); part != NULL; part = strtok_r(NULL, ".", &save)) {
        node = json_object_get(node, part);
        if (node == NULL) {
            fail_msg("JSON has no %s (at %s)", path, part);
        }
    }
    return node;
}

static void
s_assert_int(json_t *root, const char *path, json_int_t expected)
{
    json_t *v = s_get(root, path);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), expected);
}

static void
s_assert_str(json_t *root, const char *path, const char *expected)
{
    json_t *v = s_get(root, path);
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), expected);
}

static void
s_assert_pct(json_t *root, const char *path, double expected)
{
    json_t *v = s_get(root, path);
    assert_true(json_is_real(v));
    assert_true(json_real_value(v) == expected);
}

static void
test_report_json(void **state)
{
    report_t *rep = s_fixture("all", s_totals, sizeof(s_totals) / sizeof(s_totals[0]));
    amity_buf_t out;
    json_t *root;
    json_t *top;

    (void)state;
    root = s_json(rep);
    s_assert_str(root, "period", "2017-H1");
    s_assert_str(root, "previous_period", "2016-H1");
    s_assert_str(root, "office", "all");
    s_assert_int(root, "items.delegation_in.delegations.current", 541);
    s_assert_int(root, "items.delegation_in.delegations.previous", 500);
    s_assert_pct(root, "items.delegation_in.delegations.change_percent", 8.2);
    s_assert_int(root, "items.delegation_in.people.current", 1061);
    s_assert_pct(root, "items.delegation_in.people.change_percent", 6.1);
    s_assert_pct(root, "items.delegation_out.people.change_percent", 0.0);
    s_assert_pct(root, "items.activity.activities.change_percent", -1.3);
    s_assert_int(root, "items.aid_commitment.projects.current", 209);
    s_assert_str(root, "items.aid_commitment.amount.USD.current", "47425742.00");
    s_assert_str(root, "items.aid_commitment.amount.USD.previous", "52582989.00");
    s_assert_pct(root, "items.aid_commitment.amount.USD.change_percent", -9.8);
    s_assert_str(root, "items.aid_commitment.amount.EUR.current", "1234.50");
    s_assert_str(root, "items.aid_commitment.amount.EUR.previous", "0.00");
    assert_true(json_is_null(s_get(root, "items.aid_commitment.amount.EUR.change_percent")));
    s_assert_str(root, "items.aid_commitment.amount.JPY.current", "0");
    s_assert_pct(root, "items.aid_commitment.amount.JPY.change_percent", -100.0);
    s_assert_str(root, "items.aid_disbursement.amount.USD.current", "280000000.00");
    s_assert_str(root, "items.relief.amount.VND.previous", "50000000000");
    s_assert_pct(root, "items.relief.amount.VND.change_percent", 20.0);
    s_assert_int(root, "items.award.awards.current", 1);
    assert_true(json_is_null(s_get(root, "items.org_founded.orgs.change_percent")));
    assert_int_equal(json_object_size(s_get(root, "items")), 9);
    assert_int_equal(json_object_size(s_get(root, "items.relief")), 1);
    top = s_get(root, "top_countries_received");
    assert_int_equal(json_array_size(top), 5);
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 0), "country")),
                        "LA");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(top, 0), "delegations")),
                     120);
    assert_string_equal(json_string_value(json_object_get(json_array_get(top, 4), "country")),
                        "KR");
    json_decref(root);

    /* the text itself: sorted keys, exact one-decimal numbers */
    amity_buf_init(&out);
    assert_int_equal(report_json(rep, &out), 0);
    assert_int_equal(amity_buf_append(&out, "", 1), 0);
    assert_non_null(strstr((const char *)out.data, "\"change_percent\": -9.8,"));
    assert_non_null(strstr((const char *)out.data, "\"change_percent\": 8.2,"));
    assert_non_null(strstr((const char *)out.data, "\"change_percent\": 0.0,"));
    assert_true(strstr((const char *)out.data, "\"activity\"") <
                strstr((const char *)out.data, "\"award\""));
    amity_buf_clear(&out);
    report_destroy(&rep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_period_parse),
        cmocka_unit_test(test_report_period_previous),
        cmocka_unit_test(test_report_period_label),
        cmocka_unit_test(test_report_lang_parse),
        cmocka_unit_test(test_report_change_domain_example),
        cmocka_unit_test(test_report_change_rounding),
        cmocka_unit_test(test_report_change_new_and_none),
        cmocka_unit_test(test_report_change_negative_and_extremes),
        cmocka_unit_test(test_report_format_count),
        cmocka_unit_test(test_report_format_money),
        cmocka_unit_test(test_report_text_en),
        cmocka_unit_test(test_report_text_vi),
        cmocka_unit_test(test_report_text_empty_office),
        cmocka_unit_test(test_report_text_other_periods),
        cmocka_unit_test(test_report_new_office),
        cmocka_unit_test(test_report_json),
    };

    return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
