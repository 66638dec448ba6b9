/*  daemon: READY=1, WATCHDOG=1 and STOPPING=1 to the service manager
 *  through libsystemd's sd_notify (see daemon.h); no-ops without it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef AMITY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "amity/daemon.h"
#include "amity/err.h"
#include "amity/log.h"

#define S_STATUS_MAX 256 /* bytes of a STATUS= line kept */

/*  The watchdog, set up once per process (the daemons are single-threaded). */
static struct {
    bool known;          /* interval_ms has been read from the environment */
    int64_t interval_ms; /* ping period (WATCHDOG_USEC/2), -1: watchdog off */
    int64_t next_ms;     /* monotonic time the next ping is due */
} s_watchdog = { false, -1, INT64_MIN };

static void
s_init(void)
{
    if (s_watchdog.known) {
        return;
    }
    s_watchdog.known = true;
    s_watchdog.interval_ms = -1;
    s_watchdog.next_ms = INT64_MIN;
#ifdef AMITY_HAVE_SYSTEMD
    uint64_t usec = 0;
    /* > 0 only when WATCHDOG_USEC is set and WATCHDOG_PID (if set) is us */
    if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        int64_t ms = (int64_t)(usec / 2000);
        s_watchdog.interval_ms = ms > 0 ? ms : 1;
    }
#endif
}

/*  Sends one notification. Returns 1 sent, 0 nobody to tell, AMITY_EIO. */
static int
s_notify(const char *state)
{
#ifdef AMITY_HAVE_SYSTEMD
    int rc = sd_notify(0, state);
    if (rc < 0) {
        amity_log_warn_rl(60, "daemon: cannot notify the service manager (%.*s): %s",
                          (int)strcspn(state, "\n"), state, strerror(-rc));
        return AMITY_EIO;
    }
    return rc > 0 ? 1 : 0;
#else
    (void)state;
    return 0;
#endif
}

int
amity_daemon_ready(const char *status)
{
    char msg[S_STATUS_MAX + 16];

    s_init();
    if (status && status[0]) {
        /* one line: a newline would start another assignment */
        (void)snprintf(msg, sizeof msg, "READY=1\nSTATUS=%.*s", (int)strcspn(status, "\n"), status);
    } else {
        (void)snprintf(msg, sizeof msg, "READY=1");
    }
    return s_notify(msg);
}

int
amity_daemon_stopping(void)
{
    s_init();
    return s_notify("STOPPING=1");
}

int64_t
amity_daemon_watchdog(int64_t now_ms)
{
    s_init();
    if (s_watchdog.interval_ms < 0) {
        return INT64_MAX;
    }
    if (now_ms >= s_watchdog.next_ms) {
        (void)s_notify("WATCHDOG=1");
        s_watchdog.next_ms = now_ms + s_watchdog.interval_ms;
    }
    return s_watchdog.next_ms;
}

int64_t
amity_daemon_watchdog_ms(void)
{
    s_init();
    return s_watchdog.interval_ms;
}
