/*  daemon: what a daemon tells its service manager (systemd's sd_notify
 *  protocol): READY=1 once bound, WATCHDOG=1 from every loop iteration
 *  (rate-limited), STOPPING=1 on the way out. The units are Type=notify
 *  with WatchdogSec=: a loop that stops turning is killed and restarted.
 *
 *  Built without libsystemd (AMITY_HAVE_SYSTEMD undefined), or run outside
 *  a Type=notify unit (no NOTIFY_SOCKET), every call does nothing. The
 *  watchdog settings (WATCHDOG_USEC, WATCHDOG_PID) are read once, at the
 *  first call of any of these functions. Single-threaded: call from the
 *  loop thread only.
 */
#ifndef AMITY_DAEMON_H
#define AMITY_DAEMON_H

#include <stdint.h>

/*  Tells the service manager the daemon is ready (sockets bound), with
 *  status (may be NULL) as its one-line STATUS=. Returns 1 when sent, 0
 *  when there is nobody to tell, AMITY_EIO when sending failed. */
int amity_daemon_ready(const char *status);

/*  Tells the service manager the daemon is stopping. Returns as
 *  amity_daemon_ready. */
int amity_daemon_stopping(void);

/*  Call once per loop iteration with the monotonic time
 *  (amity_clock_mono_ms). Sends WATCHDOG=1 when amity_daemon_watchdog_ms()
 *  has passed since the last ping (the first call pings at once), so at
 *  most every WATCHDOG_USEC/2. Returns the monotonic time the next ping is
 *  due, INT64_MAX when the watchdog is off: a loop that never sleeps past
 *  it (poll timeout <= returned - now) pings within the interval even when
 *  idle. */
int64_t amity_daemon_watchdog(int64_t now_ms);

/*  The ping interval in ms (WATCHDOG_USEC/2, at least 1), or -1 when the
 *  watchdog is off (no systemd support, no WATCHDOG_USEC, or WATCHDOG_PID
 *  names another process). */
int64_t amity_daemon_watchdog_ms(void);

#endif
