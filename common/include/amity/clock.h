/*  clock: wall-clock time, injectable for tests, and the date rule's
 *  "tomorrow" in a configured time zone. */
#ifndef AMITY_CLOCK_H
#define AMITY_CLOCK_H

#include <stdint.h>
#include <time.h>

#define AMITY_DEFAULT_TZ "Asia/Ho_Chi_Minh"

/*  Days since 1970-01-01 of the calendar day after `now` in time zone tz
 *  (an IANA name such as "Asia/Ho_Chi_Minh", or "UTC"). Returns 0 or
 *  AMITY_EINVAL when tz is not a known zone (no compiled zone file under
 *  /usr/share/zoneinfo, an absolute path, or a name with ".."). It sets TZ
 *  for the span of the call and restores it: call it from one thread only. */
int amity_clock_max_day(time_t now, const char *tz, int32_t *out);

/*  Monotonic milliseconds, for timers. */
int64_t amity_clock_mono_ms(void);

/*  Wall-clock milliseconds since the epoch. */
int64_t amity_clock_wall_ms(void);

#endif
