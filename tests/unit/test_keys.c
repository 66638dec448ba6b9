/*  test_keys: the totals keys PERIOD/OFFICE/KIND/GEO/METRIC and deltas one
 *  record contributes, their inverse, office ids, key exponents, shards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/keys.h"

typedef struct {
    const char *key;
    int64_t delta;
} s_expect_t;

static amity_record_t
s_rec(amity_kind_t kind, int y, int m, int d, const char *country)
{
    amity_record_t r;
    memset(&r, 0, sizeof(r));
    (void)snprintf(r.id, sizeof(r.id), "rec-1");
    r.rev = 1;
    r.kind = kind;
    r.year = y;
    r.month = m;
    r.day = d;
    (void)snprintf(r.country, sizeof(r.country), "%s", country);
    return r;
}

static void
s_metric(amity_record_t *r, amity_metric_t m, uint32_t v)
{
    r->metric_mask |= 1u << m;
    r->metrics[m] = v;
}

static void
s_amount(amity_record_t *r, int64_t minor, const char *currency)
{
    r->has_amount = true;
    r->amount = minor;
    (void)snprintf(r->currency, sizeof(r->currency), "%s", currency);
}

static int
s_cmp_delta(const void *a, const void *b)
{
    return strcmp(((const amity_delta_t *)a)->key, ((const amity_delta_t *)b)->key);
}

static int
s_cmp_expect(const void *a, const void *b)
{
    return strcmp(((const s_expect_t *)a)->key, ((const s_expect_t *)b)->key);
}

/* The derived set equals the expected set exactly (order aside), keys unique. */
static void
s_check(const amity_record_t *r, const char *office, const s_expect_t *expect, size_t n_expect)
{
    amity_delta_t out[AMITY_DELTAS_MAX];
    s_expect_t sorted[AMITY_DELTAS_MAX];

    assert_true(n_expect <= AMITY_DELTAS_MAX);
    int n = amity_keys_derive(r, office, 1, out);
    assert_int_equal(n, (int)n_expect);
    memcpy(sorted, expect, n_expect * sizeof(expect[0]));
    qsort(out, (size_t)n, sizeof(out[0]), s_cmp_delta);
    qsort(sorted, n_expect, sizeof(sorted[0]), s_cmp_expect);
    for (size_t i = 0; i < n_expect; i++) {
        assert_string_equal(out[i].key, sorted[i].key);
        assert_true(out[i].delta == sorted[i].delta);
        if (i > 0) {
            assert_true(strcmp(out[i - 1].key, out[i].key) != 0);
        }
    }
}

static void
test_keys_delegation_in_full_set(void **state)
{
    static const s_expect_t expect[] = {
        { "2023/hoi-viet-my/delegation_in/all/delegations", 11 },
        { "2023/hoi-viet-my/delegation_in/all/people", 30 },
        { "2023/hoi-viet-my/delegation_in/americas/delegations", 11 },
        { "2023/hoi-viet-my/delegation_in/americas/people", 30 },
        { "2023/hoi-viet-my/delegation_in/US/delegations", 11 },
        { "2023/hoi-viet-my/delegation_in/US/people", 30 },
        { "2023/all/delegation_in/all/delegations", 11 },
        { "2023/all/delegation_in/all/people", 30 },
        { "2023/all/delegation_in/americas/delegations", 11 },
        { "2023/all/delegation_in/americas/people", 30 },
        { "2023/all/delegation_in/US/delegations", 11 },
        { "2023/all/delegation_in/US/people", 30 },
        { "2023-H2/hoi-viet-my/delegation_in/all/delegations", 11 },
        { "2023-H2/hoi-viet-my/delegation_in/all/people", 30 },
        { "2023-H2/hoi-viet-my/delegation_in/americas/delegations", 11 },
        { "2023-H2/hoi-viet-my/delegation_in/americas/people", 30 },
        { "2023-H2/hoi-viet-my/delegation_in/US/delegations", 11 },
        { "2023-H2/hoi-viet-my/delegation_in/US/people", 30 },
        { "2023-H2/all/delegation_in/all/delegations", 11 },
        { "2023-H2/all/delegation_in/all/people", 30 },
        { "2023-H2/all/delegation_in/americas/delegations", 11 },
        { "2023-H2/all/delegation_in/americas/people", 30 },
        { "2023-H2/all/delegation_in/US/delegations", 11 },
        { "2023-H2/all/delegation_in/US/people", 30 },
        { "2023-Q3/hoi-viet-my/delegation_in/all/delegations", 11 },
        { "2023-Q3/hoi-viet-my/delegation_in/all/people", 30 },
        { "2023-Q3/hoi-viet-my/delegation_in/americas/delegations", 11 },
        { "2023-Q3/hoi-viet-my/delegation_in/americas/people", 30 },
        { "2023-Q3/hoi-viet-my/delegation_in/US/delegations", 11 },
        { "2023-Q3/hoi-viet-my/delegation_in/US/people", 30 },
        { "2023-Q3/all/delegation_in/all/delegations", 11 },
        { "2023-Q3/all/delegation_in/all/people", 30 },
        { "2023-Q3/all/delegation_in/americas/delegations", 11 },
        { "2023-Q3/all/delegation_in/americas/people", 30 },
        { "2023-Q3/all/delegation_in/US/delegations", 11 },
        { "2023-Q3/all/delegation_in/US/people", 30 },
        { "2023-07/hoi-viet-my/delegation_in/all/delegations", 11 },
        { "2023-07/hoi-viet-my/delegation_in/all/people", 30 },
        { "2023-07/hoi-viet-my/delegation_in/americas/delegations", 11 },
        { "2023-07/hoi-viet-my/delegation_in/americas/people", 30 },
        { "2023-07/hoi-viet-my/delegation_in/US/delegations", 11 },
        { "2023-07/hoi-viet-my/delegation_in/US/people", 30 },
        { "2023-07/all/delegation_in/all/delegations", 11 },
        { "2023-07/all/delegation_in/all/people", 30 },
        { "2023-07/all/delegation_in/americas/delegations", 11 },
        { "2023-07/all/delegation_in/americas/people", 30 },
        { "2023-07/all/delegation_in/US/delegations", 11 },
        { "2023-07/all/delegation_in/US/people", 30 },
    };
    (void)state;
    amity_record_t r = s_rec(AMITY_KIND_DELEGATION_IN, 2023, 7, 1, "US");
    s_metric(&r, AMITY_METRIC_DELEGATIONS, 11);
    s_metric(&r, AMITY_METRIC_PEOPLE, 30);
    s_check(&r, "hoi-viet-my", expect, sizeof(expect) / sizeof(expect[0]));
}

static void
test_keys_relief_without_country_full_set(void **state)
{
    /* 60 billion VND, no country: only the "all" geo */
    static const s_expect_t expect[] = {
        { "2017/ngo-desk/relief/all/amount.VND", 60000000000 },
        { "2017/all/relief/all/amount.VND", 60000000000 },
        { "2017-H1/ngo-desk/relief/all/amount.VND", 60000000000 },
        { "2017-H1/all/relief/all/amount.VND", 60000000000 },
        { "2017-Q2/ngo-desk/relief/all/amount.VND", 60000000000 },
        { "2017-Q2/all/relief/all/amount.VND", 60000000000 },
        { "2017-06/ngo-desk/relief/all/amount.VND", 60000000000 },
        { "2017-06/all/relief/all/amount.VND", 60000000000 },
    };
    (void)state;
    amity_record_t r = s_rec(AMITY_KIND_RELIEF, 2017, 6, 30, "");
    s_amount(&r, 60000000000, "VND");
    s_check(&r, "ngo-desk", expect, sizeof(expect) / sizeof(expect[0]));
}

static void
test_keys_aid_commitment_amount_minor_units(void **state)
{
    static const s_expect_t expect[] = {
        { "2017/ngo-desk/aid_commitment/all/projects", 209 },
        { "2017/ngo-desk/aid_commitment/all/amount.USD", 4742574200 },
        { "2017/ngo-desk/aid_commitment/europe/projects", 209 },
        { "2017/ngo-desk/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017/ngo-desk/aid_commitment/DE/projects", 209 },
        { "2017/ngo-desk/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017/all/aid_commitment/all/projects", 209 },
        { "2017/all/aid_commitment/all/amount.USD", 4742574200 },
        { "2017/all/aid_commitment/europe/projects", 209 },
        { "2017/all/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017/all/aid_commitment/DE/projects", 209 },
        { "2017/all/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-H1/ngo-desk/aid_commitment/all/projects", 209 },
        { "2017-H1/ngo-desk/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-H1/ngo-desk/aid_commitment/europe/projects", 209 },
        { "2017-H1/ngo-desk/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-H1/ngo-desk/aid_commitment/DE/projects", 209 },
        { "2017-H1/ngo-desk/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-H1/all/aid_commitment/all/projects", 209 },
        { "2017-H1/all/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-H1/all/aid_commitment/europe/projects", 209 },
        { "2017-H1/all/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-H1/all/aid_commitment/DE/projects", 209 },
        { "2017-H1/all/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-Q1/ngo-desk/aid_commitment/all/projects", 209 },
        { "2017-Q1/ngo-desk/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-Q1/ngo-desk/aid_commitment/europe/projects", 209 },
        { "2017-Q1/ngo-desk/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-Q1/ngo-desk/aid_commitment/DE/projects", 209 },
        { "2017-Q1/ngo-desk/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-Q1/all/aid_commitment/all/projects", 209 },
        { "2017-Q1/all/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-Q1/all/aid_commitment/europe/projects", 209 },
        { "2017-Q1/all/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-Q1/all/aid_commitment/DE/projects", 209 },
        { "2017-Q1/all/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-03/ngo-desk/aid_commitment/all/projects", 209 },
        { "2017-03/ngo-desk/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-03/ngo-desk/aid_commitment/europe/projects", 209 },
        { "2017-03/ngo-desk/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-03/ngo-desk/aid_commitment/DE/projects", 209 },
        { "2017-03/ngo-desk/aid_commitment/DE/amount.USD", 4742574200 },
        { "2017-03/all/aid_commitment/all/projects", 209 },
        { "2017-03/all/aid_commitment/all/amount.USD", 4742574200 },
        { "2017-03/all/aid_commitment/europe/projects", 209 },
        { "2017-03/all/aid_commitment/europe/amount.USD", 4742574200 },
        { "2017-03/all/aid_commitment/DE/projects", 209 },
        { "2017-03/all/aid_commitment/DE/amount.USD", 4742574200 },
    };
    (void)state;
    amity_record_t r = s_rec(AMITY_KIND_AID_COMMITMENT, 2017, 3, 10, "DE");
    s_metric(&r, AMITY_METRIC_PROJECTS, 209);
    s_amount(&r, 4742574200, "USD"); /* 47,425,742.00 USD */
    s_check(&r, "ngo-desk", expect, sizeof(expect) / sizeof(expect[0]));
}

/* One record of every kind: key count, shape, and the metric names used. */
static void
test_keys_every_kind(void **state)
{
    static const struct {
        amity_kind_t kind;
        const char *country;
        int n_metrics;
        int n_keys;
    } cases[] = {
        { AMITY_KIND_DELEGATION_IN, "US", 2, 48 },
        { AMITY_KIND_DELEGATION_OUT, "CN", 2, 48 },
        { AMITY_KIND_ACTIVITY, "", 1, 8 },
        { AMITY_KIND_ACTIVITY, "LA", 1, 24 },
        { AMITY_KIND_AID_COMMITMENT, "DE", 2, 48 },
        { AMITY_KIND_AID_DISBURSEMENT, "JP", 1, 24 },
        { AMITY_KIND_RELIEF, "", 1, 8 },
        { AMITY_KIND_AWARD, "FR", 1, 24 },
        { AMITY_KIND_CONTACT, "KR", 1, 24 },
        { AMITY_KIND_ORG_FOUNDED, "", 1, 8 },
        { AMITY_KIND_CONTACT, "AQ", 1, 16 }, /* Antarctica: no region */
    };
    amity_delta_t out[AMITY_DELTAS_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        amity_record_t r = s_rec(cases[i].kind, 2024, 12, 31, cases[i].country);
        uint32_t mask = amity_kind_metrics(cases[i].kind);
        for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
            if (mask & (1u << m)) {
                s_metric(&r, (amity_metric_t)m, 5);
            }
        }
        if (amity_kind_has_amount(cases[i].kind)) {
            s_amount(&r, 123456, "EUR");
        }
        int n = amity_keys_derive(&r, "tinh-nghe-an", 1, out);
        assert_int_equal(n, cases[i].n_keys);
        const char *kind = amity_kind_name(cases[i].kind);
        for (int k = 0; k < n; k++) {
            char period[16];
            char office[80];
            char kind_part[32];
            char geo[16];
            char metric[32];
            assert_int_equal(sscanf(out[k].key, "%15[^/]/%79[^/]/%31[^/]/%15[^/]/%31s", period,
                                    office, kind_part, geo, metric),
                             5);
            assert_string_equal(kind_part, kind);
            assert_true(strcmp(office, "tinh-nghe-an") == 0 || strcmp(office, "all") == 0);
            assert_true(strcmp(period, "2024") == 0 || strcmp(period, "2024-H2") == 0 ||
                        strcmp(period, "2024-Q4") == 0 || strcmp(period, "2024-12") == 0);
            if (strcmp(metric, "amount.EUR") == 0) {
                assert_true(out[k].delta == 123456);
            } else {
                assert_true(out[k].delta == 5);
                assert_true(amity_kind_metrics(cases[i].kind) != 0);
            }
            if (cases[i].country[0] == '\0') {
                assert_string_equal(geo, "all");
            }
        }
    }
}

static void
test_keys_periods(void **state)
{
    static const struct {
        int month;
        const char *half;
        const char *quarter;
        const char *month_key;
    } cases[] = {
        { 1, "2017-H1", "2017-Q1", "2017-01" },  { 3, "2017-H1", "2017-Q1", "2017-03" },
        { 4, "2017-H1", "2017-Q2", "2017-04" },  { 6, "2017-H1", "2017-Q2", "2017-06" },
        { 7, "2017-H2", "2017-Q3", "2017-07" },  { 9, "2017-H2", "2017-Q3", "2017-09" },
        { 10, "2017-H2", "2017-Q4", "2017-10" }, { 12, "2017-H2", "2017-Q4", "2017-12" },
    };
    amity_delta_t out[AMITY_DELTAS_MAX];
    char want[AMITY_KEY_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        amity_record_t r = s_rec(AMITY_KIND_ORG_FOUNDED, 2017, cases[i].month, 1, "");
        s_metric(&r, AMITY_METRIC_ORGS, 1);
        assert_int_equal(amity_keys_derive(&r, "vufo", 1, out), 8);
        const char *periods[4] = { "2017", cases[i].half, cases[i].quarter, cases[i].month_key };
        for (int p = 0; p < 4; p++) {
            int found = 0;
            (void)snprintf(want, sizeof(want), "%s/vufo/org_founded/all/orgs", periods[p]);
            for (int k = 0; k < 8; k++) {
                found += strcmp(out[k].key, want) == 0;
            }
            assert_int_equal(found, 1);
        }
    }
}

static void
test_keys_inverse_sums_to_zero(void **state)
{
    amity_delta_t plus[AMITY_DELTAS_MAX];
    amity_delta_t minus[AMITY_DELTAS_MAX];
    (void)state;

    amity_record_t r = s_rec(AMITY_KIND_AID_COMMITMENT, 2016, 11, 2, "US");
    s_metric(&r, AMITY_METRIC_PROJECTS, 144);
    s_amount(&r, 5258298900, "USD");
    int n = amity_keys_derive(&r, "ngo-desk", 1, plus);
    assert_int_equal(n, 48);
    assert_int_equal(amity_keys_derive(&r, "ngo-desk", -1, minus), n);
    for (int i = 0; i < n; i++) {
        assert_string_equal(plus[i].key, minus[i].key);
        assert_true(plus[i].delta + minus[i].delta == 0);
        assert_true(plus[i].delta > 0);
    }
    /* a bad sign is refused */
    assert_int_equal(amity_keys_derive(&r, "ngo-desk", 0, plus), AMITY_EINVAL);
    assert_int_equal(amity_keys_derive(&r, "ngo-desk", 2, plus), AMITY_EINVAL);
}

static void
test_keys_retraction_and_zero_contribute_nothing(void **state)
{
    amity_delta_t out[AMITY_DELTAS_MAX];
    (void)state;

    amity_record_t r;
    memset(&r, 0, sizeof(r));
    (void)snprintf(r.id, sizeof(r.id), "rec-1");
    r.rev = 2;
    r.retract = true;
    assert_int_equal(amity_keys_derive(&r, "vufo", 1, out), 0);
    assert_int_equal(amity_keys_derive(&r, "vufo", -1, out), 0);

    /* a metric given as 0 moves no total: its keys are left out */
    r = s_rec(AMITY_KIND_DELEGATION_IN, 2023, 1, 5, "VN");
    s_metric(&r, AMITY_METRIC_DELEGATIONS, 0);
    s_metric(&r, AMITY_METRIC_PEOPLE, 4);
    int n = amity_keys_derive(&r, "vufo", 1, out);
    assert_int_equal(n, 24);
    for (int i = 0; i < n; i++) {
        assert_non_null(strstr(out[i].key, "/people"));
        assert_true(out[i].delta == 4);
    }
    r = s_rec(AMITY_KIND_RELIEF, 2023, 1, 5, "");
    s_amount(&r, 0, "VND");
    assert_int_equal(amity_keys_derive(&r, "vufo", 1, out), 0);
}

static void
test_keys_refuses_bad_input(void **state)
{
    amity_delta_t out[AMITY_DELTAS_MAX];
    (void)state;

    amity_record_t r = s_rec(AMITY_KIND_ACTIVITY, 2023, 1, 5, "");
    s_metric(&r, AMITY_METRIC_ACTIVITIES, 1);
    assert_int_equal(amity_keys_derive(&r, "all", 1, out), AMITY_EINVAL);
    assert_int_equal(amity_keys_derive(&r, "Hoi", 1, out), AMITY_EINVAL);
    assert_int_equal(amity_keys_derive(&r, "", 1, out), AMITY_EINVAL);
    assert_int_equal(amity_keys_derive(&r, "a/b", 1, out), AMITY_EINVAL);
    /* more metrics than a kind ever has would overflow the 48 slots */
    s_metric(&r, AMITY_METRIC_PEOPLE, 1);
    s_metric(&r, AMITY_METRIC_ORGS, 1);
    assert_int_equal(amity_keys_derive(&r, "vufo", 1, out), AMITY_EINVAL);
    r = s_rec(AMITY_KIND_NONE, 2023, 1, 5, "");
    assert_int_equal(amity_keys_derive(&r, "vufo", 1, out), AMITY_EINVAL);
}

static void
test_keys_office_valid(void **state)
{
    char long_id[66];
    (void)state;

    assert_true(amity_office_valid("hoi-viet-my", 11));
    assert_true(amity_office_valid("a", 1));
    assert_true(amity_office_valid("0-9", 3));
    assert_true(amity_office_valid("alls", 4));
    assert_false(amity_office_valid("all", 3));
    assert_false(amity_office_valid("", 0));
    assert_false(amity_office_valid(NULL, 0));
    assert_false(amity_office_valid("Hoi", 3));
    assert_false(amity_office_valid("hoi_viet", 8));
    assert_false(amity_office_valid("hoi viet", 8));
    assert_false(amity_office_valid("a/b", 3));
    assert_false(amity_office_valid("hội", strlen("hội")));
    memset(long_id, 'a', sizeof(long_id));
    assert_true(amity_office_valid(long_id, 64));
    assert_false(amity_office_valid(long_id, 65));
}

static void
test_keys_exponent(void **state)
{
    (void)state;
#define S_EXP(k) amity_key_exponent((k), strlen(k))
    assert_int_equal(S_EXP("2017-H1/all/aid_commitment/all/amount.USD"), 2);
    assert_int_equal(S_EXP("2017/all/relief/all/amount.VND"), 0);
    assert_int_equal(S_EXP("2017/all/relief/all/amount.BHD"), 3);
    assert_int_equal(S_EXP("amount.JPY"), 0);
    assert_int_equal(S_EXP("2023/hoi-viet-my/delegation_in/US/delegations"), -1);
    assert_int_equal(S_EXP("2017/all/relief/all/amount.usd"), -1);
    assert_int_equal(S_EXP("2017/all/relief/all/xamount.USD"), -1);
    assert_int_equal(S_EXP("2017/all/relief/all/amount.US"), -1);
    assert_int_equal(S_EXP(""), -1);
    assert_int_equal(amity_key_exponent(NULL, 0), -1);
#undef S_EXP
}

/* FNV-1a 64 of "a" "\0" "b", computed by hand from the published constants. */
static uint64_t
s_fnv_ref(const unsigned char *bytes, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++) {
        h ^= bytes[i];
        h *= 0x100000001b3u;
    }
    return h;
}

static void
test_keys_shard_of(void **state)
{
    (void)state;
    static const unsigned char joined[] = { 'v', 'u', 'f', 'o', 0, 'r', 'e', 'c', '-', '1' };
    uint64_t h = s_fnv_ref(joined, sizeof(joined));
    for (uint32_t n = 1; n <= 7; n++) {
        assert_int_equal(amity_shard_of("vufo", "rec-1", 5, n), (uint32_t)(h % n));
    }
    /* known FNV-1a 64 value of the empty string is the offset basis */
    assert_true(s_fnv_ref(NULL, 0) == 0xcbf29ce484222325u);
    assert_int_equal(amity_shard_of("vufo", "rec-1", 5, 0), 0);
    assert_int_equal(amity_shard_of("vufo", "rec-1", 5, 1), 0);
    /* the separator matters: ("ab","c") and ("a","bc") differ in hash */
    int differ = 0;
    for (uint32_t n = 2; n < 64; n++) {
        differ += amity_shard_of("ab", "c", 1, n) != amity_shard_of("a", "bc", 2, n);
    }
    assert_true(differ > 0);
    /* spread: 1000 ids over 4 shards, none empty */
    int counts[4] = { 0 };
    char id[16];
    for (int i = 0; i < 1000; i++) {
        int len = snprintf(id, sizeof(id), "r%d", i);
        counts[amity_shard_of("vufo", id, (size_t)len, 4)]++;
    }
    for (int s = 0; s < 4; s++) {
        assert_true(counts[s] > 150);
    }
}

/* A small deterministic generator (xorshift64*), so failures reproduce. */
static uint64_t
s_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/*  A checked-looking record of the given kind with random date, metrics
 *  (0 now and then: left out), amount and country from a list that holds
 *  no country, every region and AQ (no region). */
static amity_record_t
s_random_record(uint64_t *st, amity_kind_t kind)
{
    static const char *const countries[] = { "",   "",   "US", "DE", "JP", "VN", "KE",
                                             "AU", "BR", "AQ", "FR", "CN", "NZ", "ZA" };
    static const char *const currencies[] = { "USD", "EUR", "JPY", "VND", "KRW", "BHD" };
    amity_record_t r = s_rec(kind, (int)(s_rand(st) % 10000), 1 + (int)(s_rand(st) % 12), 1,
                             countries[s_rand(st) % (sizeof countries / sizeof countries[0])]);
    uint32_t mask = amity_kind_metrics(kind);
    for (int m = 0; m < AMITY_METRIC_COUNT; m++) {
        if (mask & (1u << m)) {
            uint32_t v = (uint32_t)(s_rand(st) % 8 == 0 ? 0 : s_rand(st) % AMITY_METRIC_MAX);
            s_metric(&r, (amity_metric_t)m, v);
        }
    }
    if (amity_kind_has_amount(kind)) {
        int64_t minor = s_rand(st) % 8 == 0 ? 0 : (int64_t)(s_rand(st) % 1000000000000ULL);
        s_amount(&r, minor, currencies[s_rand(st) % (sizeof currencies / sizeof currencies[0])]);
    }
    return r;
}

/* Sorts and merges equal keys (summing deltas) in place; returns the count. */
static size_t
s_merge(amity_delta_t *d, size_t n)
{
    size_t w = 0;
    qsort(d, n, sizeof(d[0]), s_cmp_delta);
    for (size_t i = 0; i < n; i++) {
        if (w > 0 && strcmp(d[w - 1].key, d[i].key) == 0) {
            d[w - 1].delta += d[i].delta;
        } else {
            d[w++] = d[i];
        }
    }
    return w;
}

/* The multiset { rollup(k) with d : (k, d) in finest(rec) } equals
 * derive(rec) exactly, for many records of every kind, both signs, with
 * and without a country, AQ included; every finest key is recognised. */
static void
test_keys_finest_rollup_equals_derive(void **state)
{
    static const char *const offices[] = { "vufo", "hoi-viet-my", "a", "-", "0-9-z" };
    amity_delta_t derived[AMITY_DELTAS_MAX];
    amity_delta_t finest[AMITY_FINEST_MAX];
    amity_delta_t rolled[AMITY_DELTAS_MAX];
    char keys[AMITY_ROLLUP_MAX][AMITY_KEY_MAX];
    uint64_t st = 0x9E3779B97F4A7C15ULL;
    size_t n_no_country = 0, n_aq = 0;
    (void)state;

    for (int iter = 0; iter < 20000; iter++) {
        amity_kind_t kind = (amity_kind_t)(1 + iter % (AMITY_KIND_COUNT - 1));
        amity_record_t r = s_random_record(&st, kind);
        const char *office = offices[s_rand(&st) % (sizeof offices / sizeof offices[0])];
        n_no_country += r.country[0] == '\0';
        n_aq += strcmp(r.country, "AQ") == 0;
        for (int sign = -1; sign <= 1; sign += 2) {
            int nd = amity_keys_derive(&r, office, sign, derived);
            int nf = amity_keys_finest(&r, office, sign, finest);
            assert_true(nd >= 0);
            assert_true(nf >= 0 && nf <= AMITY_FINEST_MAX);
            size_t nr = 0;
            for (int f = 0; f < nf; f++) {
                size_t len = strlen(finest[f].key);
                assert_true(amity_key_is_finest(finest[f].key, len));
                assert_true(strncmp(finest[f].key + 8, "all/", 4) != 0); /* never the office all */
                int n = amity_keys_rollup(finest[f].key, len, keys, AMITY_ROLLUP_MAX);
                assert_true(n > 0 && n <= AMITY_ROLLUP_MAX);
                assert_int_equal(n, nd / nf);
                for (int k = 0; k < n; k++) {
                    /* a country's finest key is itself published; "-" never is */
                    assert_true(amity_key_is_finest(keys[k], strlen(keys[k])) ==
                                (strcmp(keys[k], finest[f].key) == 0));
                    assert_true(strcmp(keys[k], finest[f].key) != 0 || r.country[0] != '\0');
                    (void)snprintf(rolled[nr].key, AMITY_KEY_MAX, "%s", keys[k]);
                    rolled[nr++].delta = finest[f].delta;
                }
            }
            assert_int_equal((int)nr, nd);
            /* keys are unique on both sides, so the multisets are sets */
            assert_int_equal(s_merge(derived, (size_t)nd), (size_t)nd);
            assert_int_equal(s_merge(rolled, nr), nr);
            for (size_t k = 0; k < nr; k++) {
                assert_string_equal(rolled[k].key, derived[k].key);
                assert_true(rolled[k].delta == derived[k].delta);
            }
        }
    }
    assert_true(n_no_country > 1000);
    assert_true(n_aq > 500);
}

static void
test_keys_finest_shape(void **state)
{
    amity_delta_t out[AMITY_FINEST_MAX];
    char keys[AMITY_ROLLUP_MAX][AMITY_KEY_MAX];
    (void)state;

    amity_record_t r = s_rec(AMITY_KIND_DELEGATION_IN, 2023, 7, 1, "US");
    s_metric(&r, AMITY_METRIC_DELEGATIONS, 11);
    s_metric(&r, AMITY_METRIC_PEOPLE, 30);
    assert_int_equal(amity_keys_finest(&r, "hoi-viet-my", 1, out), 2);
    assert_string_equal(out[0].key, "2023-07/hoi-viet-my/delegation_in/US/delegations");
    assert_true(out[0].delta == 11);
    assert_string_equal(out[1].key, "2023-07/hoi-viet-my/delegation_in/US/people");
    assert_true(out[1].delta == 30);
    assert_int_equal(amity_keys_finest(&r, "hoi-viet-my", -1, out), 2);
    assert_true(out[1].delta == -30);

    r = s_rec(AMITY_KIND_RELIEF, 2017, 6, 30, "");
    s_amount(&r, 60000000000, "VND");
    assert_int_equal(amity_keys_finest(&r, "ngo-desk", 1, out), 1);
    assert_string_equal(out[0].key, "2017-06/ngo-desk/relief/-/amount.VND");
    int n = amity_keys_rollup(out[0].key, strlen(out[0].key), keys, AMITY_ROLLUP_MAX);
    assert_int_equal(n, 8);
    assert_string_equal(keys[0], "2017/ngo-desk/relief/all/amount.VND");
    assert_string_equal(keys[7], "2017-06/all/relief/all/amount.VND");
    /* too small an output is refused, not overrun */
    assert_int_equal(amity_keys_rollup(out[0].key, strlen(out[0].key), keys, 7), AMITY_EFULL);

    /* retractions and bad input, as amity_keys_derive */
    r.retract = true;
    assert_int_equal(amity_keys_finest(&r, "ngo-desk", 1, out), 0);
    r.retract = false;
    assert_int_equal(amity_keys_finest(&r, "all", 1, out), AMITY_EINVAL);
    assert_int_equal(amity_keys_finest(&r, "ngo-desk", 0, out), AMITY_EINVAL);

    /* published keys and malformed keys are not finest keys */
    static const char *const not_finest[] = {
        "2017-06/all/relief/all/amount.VND",
        "2017-06/ngo-desk/relief/all/amount.VND",
        "2017-06/ngo-desk/relief/asia/amount.VND",
        "2017/ngo-desk/relief/VN/amount.VND",
        "2017-Q2/ngo-desk/relief/VN/amount.VND",
        "2017-13/ngo-desk/relief/VN/amount.VND",
        "2017-00/ngo-desk/relief/VN/amount.VND",
        "2017-06/ngo-desk/nope/VN/amount.VND",
        "2017-06/ngo-desk/relief/XX/amount.VND",
        "2017-06/ngo-desk/relief/VN/amount.XYZ",
        "2017-06/ngo-desk/relief/VN/feet",
        "2017-06/ngo-desk/relief/VN",
        "2017-06/ngo-desk/relief/VN/amount.VND/x",
        "2017-06//relief/VN/amount.VND",
        "",
        "2017-06/ngo-desk/relief/vn/amount.VND",
    };
    for (size_t i = 0; i < sizeof not_finest / sizeof not_finest[0]; i++) {
        assert_false(amity_key_is_finest(not_finest[i], strlen(not_finest[i])));
        assert_int_equal(
            amity_keys_rollup(not_finest[i], strlen(not_finest[i]), keys, AMITY_ROLLUP_MAX),
            AMITY_EINVAL);
    }
    assert_true(amity_key_is_finest("2017-06/ngo-desk/relief/VN/amount.VND", 37));
    assert_true(amity_key_is_finest("2017-06/ngo-desk/contact/AQ/partners", 36));
    assert_int_equal(
        amity_keys_rollup("2017-06/ngo-desk/contact/AQ/partners", 36, keys, AMITY_ROLLUP_MAX), 16);
    /* len bounds the key: a longer buffer is not read past it */
    assert_true(amity_key_is_finest("2017-06/ngo-desk/relief/VN/amount.VNDxyz", 37));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_delegation_in_full_set),
        cmocka_unit_test(test_keys_relief_without_country_full_set),
        cmocka_unit_test(test_keys_aid_commitment_amount_minor_units),
        cmocka_unit_test(test_keys_every_kind),
        cmocka_unit_test(test_keys_periods),
        cmocka_unit_test(test_keys_inverse_sums_to_zero),
        cmocka_unit_test(test_keys_retraction_and_zero_contribute_nothing),
        cmocka_unit_test(test_keys_refuses_bad_input),
        cmocka_unit_test(test_keys_office_valid),
        cmocka_unit_test(test_keys_exponent),
        cmocka_unit_test(test_keys_shard_of),
        cmocka_unit_test(test_keys_finest_rollup_equals_derive),
        cmocka_unit_test(test_keys_finest_shape),
    };
    return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
