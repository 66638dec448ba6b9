/*  test_clock: "tomorrow" in a time zone (the date rule's upper bound),
 *  unknown zones, the process's TZ left as it was, and the two clocks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amity/clock.h"
#include "amity/err.h"
#include "amity/record.h"

/* seconds since the epoch of a UTC date and time */
static time_t
s_utc(int y, int mo, int d, int h, int mi, int s)
{
    return (time_t)amity_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
}

static int32_t
s_max_day(time_t now, const char *tz)
{
    int32_t day = -1;
    assert_int_equal(amity_clock_max_day(now, tz, &day), 0);
    return day;
}

static void
test_clock_max_day_hanoi_vs_utc(void **state)
{
    (void)state;
    /* 2024-01-11T20:00:00Z is already 03:00 on the 12th in Hanoi (UTC+7) */
    time_t now = s_utc(2024, 1, 11, 20, 0, 0);
    assert_int_equal(now, 1705003200);
    assert_int_equal(s_max_day(now, "Asia/Ho_Chi_Minh"), amity_days_from_civil(2024, 1, 13));
    assert_int_equal(s_max_day(now, AMITY_DEFAULT_TZ), amity_days_from_civil(2024, 1, 13));
    assert_int_equal(s_max_day(now, "UTC"), amity_days_from_civil(2024, 1, 12));
    assert_int_equal(s_max_day(now, "Etc/UTC"), amity_days_from_civil(2024, 1, 12));
    /* New York is still on the 11th */
    assert_int_equal(s_max_day(now, "America/New_York"), amity_days_from_civil(2024, 1, 12));
}

static void
test_clock_max_day_around_midnight(void **state)
{
    (void)state;
    /* Hanoi's midnight is 17:00 UTC */
    assert_int_equal(s_max_day(s_utc(2024, 1, 11, 16, 59, 59), "Asia/Ho_Chi_Minh"),
                     amity_days_from_civil(2024, 1, 12));
    assert_int_equal(s_max_day(s_utc(2024, 1, 11, 17, 0, 0), "Asia/Ho_Chi_Minh"),
                     amity_days_from_civil(2024, 1, 13));
    assert_int_equal(s_max_day(s_utc(2024, 1, 11, 23, 59, 59), "UTC"),
                     amity_days_from_civil(2024, 1, 12));
    assert_int_equal(s_max_day(s_utc(2024, 1, 12, 0, 0, 0), "UTC"),
                     amity_days_from_civil(2024, 1, 13));
    /* across a year and a leap day */
    assert_int_equal(s_max_day(s_utc(2023, 12, 31, 18, 0, 0), "Asia/Ho_Chi_Minh"),
                     amity_days_from_civil(2024, 1, 2));
    assert_int_equal(s_max_day(s_utc(2024, 2, 28, 12, 0, 0), "UTC"),
                     amity_days_from_civil(2024, 2, 29));
}

static void
test_clock_unknown_zone_rejected(void **state)
{
    static const char *const bad[] = {
        "Mars/Olympus_Mons",
        "",
        "Asia",
        "../../etc/passwd",
        "/etc/localtime",
        "Asia/../UTC",
        "Asia/Ho Chi Minh",
        "zone.tab",
        "asia/ho_chi_minh",
    };
    int32_t day = 7;
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(amity_clock_max_day(0, bad[i], &day), AMITY_EINVAL);
        assert_int_equal(day, 0);
    }
    assert_int_equal(amity_clock_max_day(0, NULL, &day), AMITY_EINVAL);
    assert_int_equal(amity_clock_max_day(0, "UTC", NULL), AMITY_EINVAL);
}

static void
test_clock_tz_restored(void **state)
{
    struct tm tm;
    time_t now = s_utc(2024, 1, 12, 3, 0, 0);
    (void)state;

    /* a TZ that was set stays set, and still rules localtime */
    assert_int_equal(setenv("TZ", "America/New_York", 1), 0);
    tzset();
    (void)s_max_day(now, "Asia/Ho_Chi_Minh");
    assert_string_equal(getenv("TZ"), "America/New_York");
    assert_non_null(localtime_r(&now, &tm));
    assert_int_equal(tm.tm_mday, 11);
    assert_int_equal(tm.tm_hour, 22);

    /* an absent TZ stays absent */
    assert_int_equal(unsetenv("TZ"), 0);
    tzset();
    (void)s_max_day(now, "Asia/Ho_Chi_Minh");
    assert_null(getenv("TZ"));
    /* and a failed lookup changes nothing either */
    int32_t day;
    assert_int_equal(amity_clock_max_day(now, "Nowhere/Land", &day), AMITY_EINVAL);
    assert_null(getenv("TZ"));
}

static void
test_clock_mono_and_wall(void **state)
{
    (void)state;
    int64_t m1 = amity_clock_mono_ms();
    int64_t m2 = amity_clock_mono_ms();
    assert_true(m2 >= m1);
    int64_t wall = amity_clock_wall_ms();
    /* after 2024-01-01 and within a second of time() */
    assert_true(wall > (int64_t)1704067200 * 1000);
    int64_t t = (int64_t)time(NULL) * 1000;
    assert_true(wall - t < 2000 && t - wall < 2000);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clock_max_day_hanoi_vs_utc),
        cmocka_unit_test(test_clock_max_day_around_midnight),
        cmocka_unit_test(test_clock_unknown_zone_rejected),
        cmocka_unit_test(test_clock_tz_restored),
        cmocka_unit_test(test_clock_mono_and_wall),
    };
    return cmocka_run_group_tests_name("clock", tests, NULL, NULL);
}
