/*  test_money: exact decimal amounts in int64 minor units: parsing, the
 *  scale of whole units, and formatting (round trips included). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/money.h"

static int64_t
s_parse_ok(const char *s, int exponent)
{
    char why[256];
    int64_t v = -1;
    int rc = amity_money_parse(s, strlen(s), exponent, &v, why, sizeof(why));
    if (rc != 0) {
        fail_msg("'%s' rejected: %s", s, why);
    }
    return v;
}

static void
s_parse_bad(const char *s, int exponent, const char *expected)
{
    char why[256];
    int64_t v = 42;
    assert_int_equal(amity_money_parse(s, strlen(s), exponent, &v, why, sizeof(why)), AMITY_EINVAL);
    assert_string_equal(why, expected);
    assert_int_equal(v, 0);
}

static void
test_money_parse_valid(void **state)
{
    (void)state;
    assert_int_equal(s_parse_ok("47425742", 2), 4742574200);
    assert_int_equal(s_parse_ok("47425742.00", 2), 4742574200);
    assert_int_equal(s_parse_ok("12.5", 2), 1250);
    assert_int_equal(s_parse_ok("0.05", 2), 5);
    assert_int_equal(s_parse_ok("0", 2), 0);
    assert_int_equal(s_parse_ok("0.0", 2), 0);
    assert_int_equal(s_parse_ok("007", 2), 700);
    assert_int_equal(s_parse_ok("60000000000", 0), 60000000000);
    assert_int_equal(s_parse_ok("1.234", 3), 1234);
    assert_int_equal(s_parse_ok("1.5", 4), 15000);
    assert_int_equal(s_parse_ok("00000000000000000000000000001", 0), 1);
}

static void
test_money_parse_int64_edges(void **state)
{
    (void)state;
    /* INT64_MAX exactly, with and without decimals */
    assert_int_equal(s_parse_ok("9223372036854775807", 0), INT64_MAX);
    assert_int_equal(s_parse_ok("92233720368547758.07", 2), INT64_MAX);
    s_parse_bad("9223372036854775808", 0, "amount: 9223372036854775808 is too large");
    s_parse_bad("92233720368547758.08", 2, "amount: 92233720368547758.08 is too large");
    s_parse_bad("92233720368547759", 2, "amount: 92233720368547759 is too large");
    s_parse_bad("99999999999999999999", 2, "amount: 99999999999999999999 is too large");
    s_parse_bad("18446744073709551616", 0, "amount: 18446744073709551616 is too large");
}

static void
test_money_parse_rejects_shapes(void **state)
{
    static const char *const bad[] = {
        "12.5.0", ".",  "12.", ".5",   "1e5",   "1E5", "+5",
        " 5",     "5 ", "1,5", "0x10", "12..5", "abc", "١٢",
    };
    char expected[256];
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        (void)snprintf(expected, sizeof(expected),
                       "amount: '%s' is not a decimal number (digits, optionally '.' and decimals)",
                       bad[i]);
        s_parse_bad(bad[i], 2, expected);
    }
    s_parse_bad("", 2, "amount: must not be empty");
    s_parse_bad("-5", 2, "amount: must not be negative");
    s_parse_bad("-0.5", 2, "amount: must not be negative");
}

static void
test_money_parse_too_many_decimals(void **state)
{
    (void)state;
    s_parse_bad("1.234", 2, "amount: 1.234 has 3 decimals, the currency allows 2");
    s_parse_bad("12.345", 2, "amount: 12.345 has 3 decimals, the currency allows 2");
    s_parse_bad("1.5", 0, "amount: 1.5 has 1 decimal, the currency allows 0");
    s_parse_bad("1.0", 0, "amount: 1.0 has 1 decimal, the currency allows 0");
    s_parse_bad("1.00001", 4, "amount: 1.00001 has 5 decimals, the currency allows 4");
}

static void
test_money_parse_bounded_reason(void **state)
{
    char s[600];
    char why[256];
    int64_t v;
    (void)state;

    memset(s, '9', sizeof(s));
    assert_int_equal(amity_money_parse(s, sizeof(s), 2, &v, why, sizeof(why)), AMITY_EINVAL);
    assert_true(strlen(why) < 100);
    assert_non_null(strstr(why, "... is too large"));
    s[3] = '\x01';
    assert_int_equal(amity_money_parse(s, sizeof(s), 2, &v, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "999\\x01999"));
    /* a NULL reason buffer is allowed */
    assert_int_equal(amity_money_parse("x", 1, 2, &v, NULL, 0), AMITY_EINVAL);
    /* a bad exponent is refused */
    assert_int_equal(amity_money_parse("1", 1, -1, &v, why, sizeof(why)), AMITY_EINVAL);
    assert_int_equal(amity_money_parse("1", 1, 19, &v, why, sizeof(why)), AMITY_EINVAL);
}

static void
test_money_from_units(void **state)
{
    char why[256];
    int64_t v;
    (void)state;

    assert_int_equal(amity_money_from_units(47425742, 2, &v, why, sizeof(why)), 0);
    assert_int_equal(v, 4742574200);
    assert_int_equal(amity_money_from_units(60000000000u, 0, &v, why, sizeof(why)), 0);
    assert_int_equal(v, 60000000000);
    assert_int_equal(amity_money_from_units((uint64_t)INT64_MAX, 0, &v, why, sizeof(why)), 0);
    assert_int_equal(v, INT64_MAX);
    assert_int_equal(amity_money_from_units(0, 4, &v, why, sizeof(why)), 0);
    assert_int_equal(v, 0);
    assert_int_equal(amity_money_from_units((uint64_t)INT64_MAX + 1, 0, &v, why, sizeof(why)),
                     AMITY_EINVAL);
    assert_string_equal(why, "amount: 9223372036854775808 is too large");
    assert_int_equal(amity_money_from_units(92233720368547759u, 2, &v, why, sizeof(why)),
                     AMITY_EINVAL);
    assert_string_equal(why, "amount: 92233720368547759 is too large");
    assert_int_equal(amity_money_from_units(UINT64_MAX, 2, &v, why, sizeof(why)), AMITY_EINVAL);
    assert_string_equal(why, "amount: 18446744073709551615 is too large");
}

static void
s_format_is(int64_t minor, int exponent, const char *expected)
{
    char buf[AMITY_MONEY_STR_MAX];
    size_t n = amity_money_format(minor, exponent, buf);
    assert_string_equal(buf, expected);
    assert_int_equal(n, strlen(expected));
}

static void
test_money_format(void **state)
{
    (void)state;
    s_format_is(4742574200, 2, "47425742.00");
    s_format_is(-350, 2, "-3.50");
    s_format_is(60000000000, 0, "60000000000");
    s_format_is(0, 2, "0.00");
    s_format_is(0, 0, "0");
    s_format_is(5, 2, "0.05");
    s_format_is(-5, 2, "-0.05");
    s_format_is(1234, 3, "1.234");
    s_format_is(1, 4, "0.0001");
    s_format_is(INT64_MAX, 0, "9223372036854775807");
    s_format_is(INT64_MAX, 2, "92233720368547758.07");
    s_format_is(INT64_MIN, 0, "-9223372036854775808");
    s_format_is(INT64_MIN, 2, "-92233720368547758.08");
    s_format_is(INT64_MIN, 18, "-9.223372036854775808");
    s_format_is(1, 18, "0.000000000000000001");
}

static void
test_money_round_trip(void **state)
{
    static const int64_t values[] = {
        0, 1, 9, 10, 99, 100, 101, 4742574200, 5258298900, 60000000000, INT64_MAX,
    };
    char buf[AMITY_MONEY_STR_MAX];
    char why[256];
    (void)state;

    for (int exponent = 0; exponent <= 4; exponent++) {
        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
            int64_t back = -1;
            size_t n = amity_money_format(values[i], exponent, buf);
            assert_int_equal(amity_money_parse(buf, n, exponent, &back, why, sizeof(why)), 0);
            assert_true(back == values[i]);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money_parse_valid),
        cmocka_unit_test(test_money_parse_int64_edges),
        cmocka_unit_test(test_money_parse_rejects_shapes),
        cmocka_unit_test(test_money_parse_too_many_decimals),
        cmocka_unit_test(test_money_parse_bounded_reason),
        cmocka_unit_test(test_money_from_units),
        cmocka_unit_test(test_money_format),
        cmocka_unit_test(test_money_round_trip),
    };
    return cmocka_run_group_tests_name("money", tests, NULL, NULL);
}
