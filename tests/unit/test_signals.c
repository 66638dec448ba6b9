/*  test_signals: INT, TERM and HUP arrive as reads from the signalfd, in
 *  the loop, never as handler code; PIPE is ignored.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "amity/err.h"
#include "amity/signals.h"

static int
s_setup(void **state)
{
    int *fd = malloc(sizeof(*fd));
    if (!fd) {
        return -1;
    }
    *fd = amity_signals_open();
    if (*fd < 0) {
        free(fd);
        return -1;
    }
    *state = fd;
    return 0;
}

static int
s_teardown(void **state)
{
    int *fd = *state;
    amity_signals_close(fd);
    free(fd);
    return 0;
}

static void
test_signals_hup(void **state)
{
    int fd = *(int *)*state;
    assert_int_equal(amity_signals_read(fd), 0); /* nothing pending */
    assert_int_equal(raise(SIGHUP), 0);
    assert_int_equal(amity_signals_read(fd), SIGHUP);
    assert_int_equal(amity_signals_read(fd), 0);
}

static void
test_signals_term_and_int(void **state)
{
    int fd = *(int *)*state;
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    assert_int_equal(amity_signals_read(fd), SIGTERM);
    assert_int_equal(raise(SIGINT), 0);
    assert_int_equal(amity_signals_read(fd), SIGINT);
    assert_int_equal(amity_signals_read(fd), 0);
}

static void
test_signals_pipe_ignored(void **state)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    close(p[0]);
    /* without SIG_IGN this write would kill the test */
    assert_int_equal(write(p[1], "x", 1), -1);
    close(p[1]);
}

static void
test_signals_close(void **state)
{
    int *fd = *state;
    amity_signals_close(fd);
    assert_int_equal(*fd, -1);
    amity_signals_close(fd); /* idempotent */
    assert_int_equal(*fd, -1);
    assert_int_equal(amity_signals_read(-1), AMITY_EIO);
}

/*  After amity_signals_arm_second a stop signal ends the process with 1. */
static void
test_signals_second_signal_exits(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = amity_signals_open();
        if (fd < 0) {
            _exit(3);
        }
        amity_signals_arm_second();
        (void)raise(SIGTERM);
        _exit(0); /* not reached when the handler works */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_signals_hup, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_signals_term_and_int, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_signals_pipe_ignored, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_signals_close, s_setup, s_teardown),
        cmocka_unit_test(test_signals_second_signal_exits),
    };
    return cmocka_run_group_tests_name("signals", tests, NULL, NULL);
}
