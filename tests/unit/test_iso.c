/*  test_iso: the ISO 3166-1 and ISO 4217 reference tables: every assigned
 *  country with its M49 region, active currencies with their exponents. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "amity/iso.h"

static const char *
s_region(const char *code)
{
    return amity_country_region(code, strlen(code));
}

static int
s_exp(const char *code)
{
    return amity_currency_exponent(code, strlen(code));
}

static void
test_iso_country_count(void **state)
{
    (void)state;
    assert_int_equal(amity_country_count(), 249);

    /* every pair AA..ZZ: exactly 249 are assigned, and the lookup agrees */
    size_t n = 0;
    char code[3] = { 0 };
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            code[0] = a;
            code[1] = b;
            if (amity_country_region(code, 2) != NULL) {
                n++;
            }
        }
    }
    assert_int_equal(n, 249);
}

static void
test_iso_country_regions(void **state)
{
    static const struct {
        const char *code;
        const char *region;
    } cases[] = {
        { "VN", "asia" },     { "US", "americas" }, { "DE", "europe" },   { "NG", "africa" },
        { "AU", "oceania" },  { "CY", "asia" },     { "TR", "asia" },     { "RU", "europe" },
        { "GL", "americas" }, { "IO", "africa" },   { "TF", "africa" },   { "BV", "americas" },
        { "GS", "americas" }, { "HM", "oceania" },  { "UM", "oceania" },  { "CX", "oceania" },
        { "CC", "oceania" },  { "AQ", "" },         { "AD", "europe" },   { "ZW", "africa" },
        { "TW", "asia" },     { "HK", "asia" },     { "PS", "asia" },     { "EH", "africa" },
        { "AX", "europe" },   { "SJ", "europe" },   { "GE", "asia" },     { "AM", "asia" },
        { "AZ", "asia" },     { "KZ", "asia" },     { "EG", "africa" },   { "MX", "americas" },
        { "CW", "americas" }, { "BQ", "americas" }, { "FK", "americas" }, { "PN", "oceania" },
        { "SH", "africa" },   { "YT", "africa" },   { "RE", "africa" },   { "LA", "asia" },
        { "KH", "asia" },     { "KP", "asia" },     { "KR", "asia" },     { "JP", "asia" },
        { "CN", "asia" },     { "FR", "europe" },   { "GB", "europe" },   { "UA", "europe" },
        { "SS", "africa" },   { "MK", "europe" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *region = s_region(cases[i].code);
        if (region == NULL) {
            fail_msg("%s unknown", cases[i].code);
        }
        assert_string_equal(region, cases[i].region);
    }
}

static void
test_iso_country_unknown(void **state)
{
    static const char *const bad[] = {
        "XK", "EU", "UK",  "ZZ", "AA", "QZ", "XX", "vn", "Vn",
        "vN", "V",  "VNM", "",   "V1", "1V", "YU", "CS", "AN",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(s_region(bad[i]));
    }
    assert_null(amity_country_region(NULL, 2));
    assert_null(amity_country_region("VN\0", 3));
    assert_non_null(amity_country_region("VNM", 2)); /* length is honoured */
}

static void
test_iso_currency_exponents(void **state)
{
    static const struct {
        const char *code;
        int exponent;
    } cases[] = {
        { "USD", 2 }, { "EUR", 2 }, { "VND", 0 }, { "JPY", 0 }, { "KRW", 0 }, { "CLP", 0 },
        { "BHD", 3 }, { "KWD", 3 }, { "OMR", 3 }, { "TND", 3 }, { "JOD", 3 }, { "IQD", 3 },
        { "LYD", 3 }, { "CLF", 4 }, { "UYW", 4 }, { "ISK", 0 }, { "UGX", 0 }, { "XOF", 0 },
        { "XAF", 0 }, { "XPF", 0 }, { "PYG", 0 }, { "RWF", 0 }, { "KMF", 0 }, { "GNF", 0 },
        { "DJF", 0 }, { "VUV", 0 }, { "BIF", 0 }, { "UYI", 0 }, { "GBP", 2 }, { "CNY", 2 },
        { "LAK", 2 }, { "KHR", 2 }, { "THB", 2 }, { "AED", 2 }, { "ZWG", 2 }, { "XCD", 2 },
        { "ZMW", 2 }, { "CHF", 2 }, { "RUB", 2 }, { "AUD", 2 }, { "SGD", 2 }, { "TWD", 2 },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int e = s_exp(cases[i].code);
        if (e != cases[i].exponent) {
            fail_msg("%s: exponent %d, expected %d", cases[i].code, e, cases[i].exponent);
        }
    }
}

static void
test_iso_currency_unknown(void **state)
{
    static const char *const bad[] = {
        "usd", "Usd", "US",  "USDT", "",    "XAU", "XAG", "XDR",
        "XTS", "XXX", "HRK", "DEM",  "FRF", "ABC", "U$D",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(s_exp(bad[i]), -1);
    }
    assert_int_equal(amity_currency_exponent(NULL, 3), -1);
    assert_int_equal(amity_currency_exponent("USDX", 3), 2);
}

static void
test_iso_currency_count(void **state)
{
    (void)state;
    /* every AAA..ZZZ the lookup knows is counted by the table, and back */
    size_t n = 0;
    char code[4] = { 0 };
    for (char a = 'A'; a <= 'Z'; a++) {
        for (char b = 'A'; b <= 'Z'; b++) {
            for (char c = 'A'; c <= 'Z'; c++) {
                code[0] = a;
                code[1] = b;
                code[2] = c;
                int e = amity_currency_exponent(code, 3);
                if (e >= 0) {
                    assert_true(e <= 4);
                    n++;
                }
            }
        }
    }
    assert_int_equal(n, amity_currency_count());
    assert_true(n >= 150 && n <= 190);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_iso_country_count),    cmocka_unit_test(test_iso_country_regions),
        cmocka_unit_test(test_iso_country_unknown),  cmocka_unit_test(test_iso_currency_exponents),
        cmocka_unit_test(test_iso_currency_unknown), cmocka_unit_test(test_iso_currency_count),
    };
    return cmocka_run_group_tests_name("iso", tests, NULL, NULL);
}
