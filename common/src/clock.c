/*  clock: monotonic and wall time, and the date rule's "tomorrow": the
 *  latest record date validate accepts, computed in the deployment's time
 *  zone (default Asia/Ho_Chi_Minh).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amity/clock.h"
#include "amity/err.h"
#include "amity/record.h"

#define S_ZONEINFO  "/usr/share/zoneinfo/"
#define S_TZ_MAX    128 /* bytes in a zone name we accept */
#define S_SAVED_MAX 512 /* bytes of a previous TZ value we can restore */

/* A zone name is a relative path of [A-Za-z0-9_+-] components. */
static int
s_zone_name_ok(const char *tz)
{
    size_t len = strlen(tz);
    if (len == 0 || len >= S_TZ_MAX || tz[0] == '/' || strstr(tz, "..") != NULL) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        char c = tz[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '+' || c == '-' || c == '/';
        if (!ok) {
            return 0;
        }
    }
    return 1;
}

/* The zone file exists and is a compiled zone (TZif), not one of the
 * text tables that share the directory (leapseconds, zone.tab). */
static int
s_zone_exists(const char *tz)
{
    char path[sizeof(S_ZONEINFO) + S_TZ_MAX];
    char magic[4];

    memcpy(path, S_ZONEINFO, sizeof(S_ZONEINFO) - 1);
    memcpy(path + sizeof(S_ZONEINFO) - 1, tz, strlen(tz) + 1);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(magic, 1, sizeof(magic), f);
    (void)fclose(f);
    return n == sizeof(magic) && memcmp(magic, "TZif", sizeof(magic)) == 0;
}

static int
s_is_utc(const char *tz)
{
    return strcmp(tz, "UTC") == 0 || strcmp(tz, "Etc/UTC") == 0;
}

/*
 * localtime_r in zone tz. The process's TZ is set for the span of the call
 * and then restored exactly (value or absence), so the rest of the process
 * keeps its own zone. setenv is not thread-safe: call from one thread (the
 * daemons are single-threaded).
 */
static int
s_local_in_zone(time_t now, const char *tz, struct tm *out)
{
    char saved[S_SAVED_MAX];
    const char *old = getenv("TZ");
    int had_old = old != NULL;
    int rc = 0;

    if (had_old) {
        size_t old_len = strlen(old);
        if (old_len >= sizeof(saved)) {
            return AMITY_EINVAL;
        }
        memcpy(saved, old, old_len + 1);
    }
    if (setenv("TZ", tz, 1) != 0) {
        return AMITY_ENOMEM;
    }
    tzset();
    if (localtime_r(&now, out) == NULL) {
        rc = AMITY_EINVAL;
    }
    if (had_old) {
        (void)setenv("TZ", saved, 1);
    } else {
        (void)unsetenv("TZ");
    }
    tzset();
    return rc;
}

int
amity_clock_max_day(time_t now, const char *tz, int32_t *out)
{
    struct tm tm;

    if (out == NULL || tz == NULL) {
        return AMITY_EINVAL;
    }
    *out = 0;
    if (s_is_utc(tz)) {
        if (gmtime_r(&now, &tm) == NULL) {
            return AMITY_EINVAL;
        }
    } else {
        if (!s_zone_name_ok(tz) || !s_zone_exists(tz)) {
            return AMITY_EINVAL;
        }
        int rc = s_local_in_zone(now, tz, &tm);
        if (rc != 0) {
            return rc;
        }
    }
    *out = amity_days_from_civil(tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday) + 1;
    return 0;
}

int64_t
amity_clock_mono_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

int64_t
amity_clock_wall_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 0;
    }
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}
