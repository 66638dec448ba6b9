/*  signals: SIGINT, SIGTERM and SIGHUP as readable events on a signalfd,
 *  polled by each daemon's loop beside its sockets (STYLE.md 5.5): no
 *  handler code, no flag-versus-sleep race.
 */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/signals.h"

int
amity_signals_open(void)
{
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);

    /* a vanished peer must surface as EPIPE from write(2), not kill us */
    struct sigaction ignore;
    memset(&ignore, 0, sizeof(ignore));
    ignore.sa_handler = SIG_IGN;
    sigemptyset(&ignore.sa_mask);
    if (sigaction(SIGPIPE, &ignore, NULL) < 0) {
        amity_log_errno("signals: cannot ignore SIGPIPE");
        return AMITY_EIO;
    }
    if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
        amity_log_errno("signals: cannot block INT, TERM and HUP");
        return AMITY_EIO;
    }
    int fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        amity_log_errno("signals: signalfd failed");
        return AMITY_EIO;
    }
    return fd;
}

int
amity_signals_read(int fd)
{
    struct signalfd_siginfo info;
    for (;;) {
        ssize_t n = read(fd, &info, sizeof(info));
        if (n == (ssize_t)sizeof(info)) {
            return (int)info.ssi_signo;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return 0;
        }
        if (n < 0) {
            amity_log_errno("signals: read from signalfd %d failed", fd);
        } else {
            amity_log_error("signals: short read of %zd bytes from signalfd %d", n, fd);
        }
        return AMITY_EIO;
    }
}

void
amity_signals_close(int *fd)
{
    if (fd && *fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void
s_exit_now(int sig)
{
    (void)sig;
    _exit(AMITY_EXIT_RUNTIME);
}

void
amity_signals_arm_second(void)
{
    struct sigaction sa;
    sigset_t set;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_exit_now;
    (void)sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
    (void)sigemptyset(&set);
    (void)sigaddset(&set, SIGINT);
    (void)sigaddset(&set, SIGTERM);
    (void)sigprocmask(SIG_UNBLOCK, &set, NULL);
}
