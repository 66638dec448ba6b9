/*  test_daemon: READY=1, WATCHDOG=1 (rate-limited) and STOPPING=1 reach
 *  the service manager: the test plays systemd, with NOTIFY_SOCKET on a
 *  unix datagram socket it binds and WATCHDOG_USEC/WATCHDOG_PID set.
 *  The watchdog settings are read once per process, so the test of a
 *  watchdog meant for another process runs in a child, first.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amity/daemon.h"

typedef struct {
    char dir[64];  /* temporary directory holding the socket */
    char path[96]; /* the notify socket's path */
    int fd;        /* the bound datagram socket (our "systemd") */
} fx_t;

static int
setup(void **state)
{
    fx_t *fx = calloc(1, sizeof *fx);
    if (!fx) {
        return -1;
    }
    strcpy(fx->dir, "/tmp/amity-daemon-XXXXXX");
    if (!mkdtemp(fx->dir)) {
        free(fx);
        return -1;
    }
    (void)snprintf(fx->path, sizeof fx->path, "%s/notify", fx->dir);
    fx->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    (void)snprintf(sa.sun_path, sizeof sa.sun_path, "%s", fx->path);
    if (fx->fd < 0 || bind(fx->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        return -1;
    }
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    fx_t *fx = *state;
    (void)close(fx->fd);
    (void)unlink(fx->path);
    (void)rmdir(fx->dir);
    free(fx);
    (void)unsetenv("NOTIFY_SOCKET");
    (void)unsetenv("WATCHDOG_USEC");
    (void)unsetenv("WATCHDOG_PID");
    return 0;
}

/*  The next datagram as a string, or "" when none is waiting. */
static const char *
s_recv(fx_t *fx, char *buf, size_t len)
{
    ssize_t n = recv(fx->fd, buf, len - 1, MSG_DONTWAIT);
    if (n < 0) {
        assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
        n = 0;
    }
    buf[n] = '\0';
    return buf;
}

static void
s_set_env(const char *name, long long value)
{
    char text[32];
    (void)snprintf(text, sizeof text, "%lld", value);
    assert_int_equal(setenv(name, text, 1), 0);
}

/*  WATCHDOG_PID names another process (a parent that forked us): off. */
static void
test_daemon_watchdog_other_pid(void **state)
{
    fx_t *fx = *state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        (void)setenv("NOTIFY_SOCKET", fx->path, 1);
        s_set_env("WATCHDOG_USEC", 2000000);
        s_set_env("WATCHDOG_PID", (long long)getppid());
        int ok = amity_daemon_watchdog_ms() == -1 && amity_daemon_watchdog(5) == INT64_MAX;
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    char buf[256];
    assert_string_equal(s_recv(fx, buf, sizeof buf), ""); /* and no ping was sent */
}

static void
test_daemon_notify(void **state)
{
    fx_t *fx = *state;
    char buf[256];

    assert_int_equal(setenv("NOTIFY_SOCKET", fx->path, 1), 0);
    s_set_env("WATCHDOG_USEC", 2000000); /* WatchdogSec=2: ping every second */
    s_set_env("WATCHDOG_PID", (long long)getpid());
#ifdef AMITY_HAVE_SYSTEMD
    assert_int_equal(amity_daemon_watchdog_ms(), 1000);

    assert_int_equal(amity_daemon_ready("counting records"), 1);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "READY=1\nSTATUS=counting records");

    /* the first call pings; then not before the interval has passed */
    assert_int_equal(amity_daemon_watchdog(10000), 11000);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "WATCHDOG=1");
    assert_int_equal(amity_daemon_watchdog(10001), 11000);
    assert_int_equal(amity_daemon_watchdog(10999), 11000);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "");
    assert_int_equal(amity_daemon_watchdog(11000), 12000);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "WATCHDOG=1");
    assert_int_equal(amity_daemon_watchdog(15500), 16500); /* a late call pings at once */
    assert_string_equal(s_recv(fx, buf, sizeof buf), "WATCHDOG=1");
    assert_string_equal(s_recv(fx, buf, sizeof buf), "");

    assert_int_equal(amity_daemon_stopping(), 1);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "STOPPING=1");

    /* a status is one line; no status, no STATUS= */
    assert_int_equal(amity_daemon_ready("a\nWATCHDOG=1"), 1);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "READY=1\nSTATUS=a");
    assert_int_equal(amity_daemon_ready(NULL), 1);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "READY=1");

    /* no service manager to tell */
    assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
    assert_int_equal(amity_daemon_ready("x"), 0);
    assert_int_equal(amity_daemon_stopping(), 0);
#else
    /* built without libsystemd: everything is a no-op */
    assert_int_equal(amity_daemon_watchdog_ms(), -1);
    assert_int_equal(amity_daemon_ready("x"), 0);
    assert_int_equal(amity_daemon_watchdog(10000), INT64_MAX);
    assert_int_equal(amity_daemon_stopping(), 0);
    assert_string_equal(s_recv(fx, buf, sizeof buf), "");
#endif
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        /* first: the child must inherit a process that has not read the settings */
        cmocka_unit_test_setup_teardown(test_daemon_watchdog_other_pid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_daemon_notify, setup, teardown),
    };
    return cmocka_run_group_tests_name("daemon", tests, NULL, NULL);
}
