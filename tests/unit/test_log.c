/*  test_log: the line format, levels, errno, journald prefixes, safe
 *  truncation of long lines and the rate limiter. stderr is captured
 *  through a pipe.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amity/err.h"
#include "amity/log.h"

#define CAPTURE_MAX 65536

typedef struct {
    int pipe_fds[2];         /* capture pipe */
    int saved_stderr;        /* the real stderr while capturing */
    char text[CAPTURE_MAX];  /* what was captured */
    size_t len;              /* its length */
    amity_log_level_t saved; /* threshold before the test */
} state_t;

static int
s_setup(void **state)
{
    state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        return -1;
    }
    st->pipe_fds[0] = st->pipe_fds[1] = st->saved_stderr = -1;
    st->saved = amity_log_threshold;
    unsetenv("JOURNAL_STREAM");
    amity_log_init("amity-test");
    amity_log_threshold = AMITY_LOG_INFO;
    *state = st;
    return 0;
}

static void
s_capture_end(state_t *st)
{
    if (st->saved_stderr >= 0) {
        dup2(st->saved_stderr, STDERR_FILENO);
        close(st->saved_stderr);
        st->saved_stderr = -1;
    }
    if (st->pipe_fds[1] >= 0) {
        close(st->pipe_fds[1]);
        st->pipe_fds[1] = -1;
    }
    if (st->pipe_fds[0] >= 0) {
        st->len = 0;
        ssize_t n;
        while ((n = read(st->pipe_fds[0], st->text + st->len, CAPTURE_MAX - 1 - st->len)) > 0) {
            st->len += (size_t)n;
        }
        st->text[st->len] = '\0';
        close(st->pipe_fds[0]);
        st->pipe_fds[0] = -1;
    }
}

static int
s_teardown(void **state)
{
    state_t *st = *state;
    s_capture_end(st); /* also when a test failed mid-capture */
    unsetenv("JOURNAL_STREAM");
    amity_log_init("amity-test");
    amity_log_threshold = st->saved;
    free(st);
    return 0;
}

static void
s_capture_begin(state_t *st)
{
    assert_int_equal(pipe(st->pipe_fds), 0);
    st->saved_stderr = dup(STDERR_FILENO);
    assert_true(st->saved_stderr >= 0);
    assert_int_equal(dup2(st->pipe_fds[1], STDERR_FILENO), STDERR_FILENO);
}

static size_t
s_count(const char *text, char c)
{
    size_t n = 0;
    for (; *text; text++) {
        n += *text == c;
    }
    return n;
}

static void
test_log_format(void **state)
{
    state_t *st = *state;
    s_capture_begin(st);
    int line = __LINE__ + 1;
    amity_log_info("hello %s n=%d", "world", 5);
    s_capture_end(st);

    /* 2024-05-01T12:34:56.789Z INFO amity-test[123] test_log.c:88: hello world n=5 */
    int year, mon, day, hour, min, sec, ms, consumed = 0;
    assert_int_equal(sscanf(st->text, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ %n", &year, &mon, &day, &hour,
                            &min, &sec, &ms, &consumed),
                     7);
    assert_int_equal(consumed, 25);
    assert_true(year >= 2024 && mon >= 1 && mon <= 12 && ms >= 0 && ms <= 999);
    char expect[256];
    (void)snprintf(expect, sizeof(expect), "INFO amity-test[%ld] test_log.c:%d: hello world n=5\n",
                   (long)getpid(), line);
    assert_string_equal(st->text + consumed, expect);
}

static void
test_log_levels(void **state)
{
    state_t *st = *state;
    s_capture_begin(st);
    amity_log_debug("hidden");
    amity_log_info("shown info");
    amity_log_warn("shown warn");
    amity_log_error("shown error");
    assert_int_equal(amity_log_set_level("debug"), 0);
    amity_log_debug("shown debug");
    assert_int_equal(amity_log_set_level("loud"), AMITY_EINVAL);
    assert_int_equal(amity_log_threshold, AMITY_LOG_DEBUG);
    assert_int_equal(amity_log_set_level("WARNING"), 0);
    amity_log_info("hidden");
    assert_int_equal(amity_log_set_level("Error"), 0);
    amity_log_warn("hidden");
    s_capture_end(st);
    assert_null(strstr(st->text, "hidden"));
    assert_non_null(strstr(st->text, " INFO amity-test["));
    assert_non_null(strstr(st->text, " WARN amity-test["));
    assert_non_null(strstr(st->text, " ERROR amity-test["));
    assert_non_null(strstr(st->text, " DEBUG amity-test["));
    assert_int_equal(s_count(st->text, '\n'), 4);
}

static void
test_log_errno(void **state)
{
    state_t *st = *state;
    s_capture_begin(st);
    errno = ENOENT;
    amity_log_errno("cannot open %s", "x.ini");
    assert_int_equal(errno, ENOENT); /* preserved for the caller */
    s_capture_end(st);
    assert_non_null(strstr(st->text, " ERROR "));
    assert_non_null(strstr(st->text, ": cannot open x.ini: No such file or directory\n"));
}

static void
test_log_one_line(void **state)
{
    state_t *st = *state;
    s_capture_begin(st);
    amity_log_warn("from the wire: %s", "a\nb\rc\x01"
                                        "d\x7f"
                                        "e\tf");
    s_capture_end(st);
    assert_non_null(strstr(st->text, "from the wire: a b c?d?e f\n"));
    assert_int_equal(s_count(st->text, '\n'), 1);
}

static void
test_log_truncation(void **state)
{
    state_t *st = *state;
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'a', 10000);
    big[10000] = '\0';
    s_capture_begin(st);
    amity_log_info("%s", big);
    s_capture_end(st);
    assert_true(st->len <= 4096);
    assert_true(st->len > 4000);
    assert_int_equal(s_count(st->text, '\n'), 1);
    assert_int_equal(st->text[st->len - 1], '\n');
    assert_memory_equal(st->text + st->len - 4, "...\n", 4);

    /* multi-byte characters are never cut in half */
    const char *e = "\xe1\xbb\x87"; /* U+1EC7, 3 bytes in UTF-8 */
    big[0] = '\0';
    for (int i = 0; i < 3000; i++) {
        strcat(big + (size_t)i * 3, e);
    }
    s_capture_begin(st);
    amity_log_info("%s", big);
    s_capture_end(st);
    assert_true(st->len <= 4096);
    const char *message = strstr(st->text, ": \xe1");
    assert_non_null(message);
    message += 2;
    size_t message_len = (size_t)(st->text + st->len - 4 - message);
    assert_memory_equal(st->text + st->len - 4, "...\n", 4);
    assert_int_equal(message_len % 3, 0);
    assert_memory_equal(st->text + st->len - 7, e, 3);

    /* errno text is cut like the rest */
    s_capture_begin(st);
    errno = EACCES;
    amity_log_errno("%s", big);
    s_capture_end(st);
    assert_true(st->len <= 4096);
    assert_memory_equal(st->text + st->len - 4, "...\n", 4);
    free(big);
}

static void
test_log_journal(void **state)
{
    state_t *st = *state;
    s_capture_begin(st);
    struct stat sb;
    assert_int_equal(fstat(STDERR_FILENO, &sb), 0);
    char value[64];
    (void)snprintf(value, sizeof(value), "%llu:%llu", (unsigned long long)sb.st_dev,
                   (unsigned long long)sb.st_ino);
    setenv("JOURNAL_STREAM", value, 1);
    amity_log_init("amity-test");
    amity_log_threshold = AMITY_LOG_DEBUG;
    amity_log_error("e");
    amity_log_warn("w");
    amity_log_info("i");
    amity_log_debug("d");
    /* inherited from a parent whose stderr went elsewhere: not ours */
    setenv("JOURNAL_STREAM", "1:1", 1);
    amity_log_init("amity-test");
    amity_log_info("plain");
    s_capture_end(st);

    char pid[32];
    (void)snprintf(pid, sizeof(pid), "[%ld]", (long)getpid());
    char *line = st->text;
    assert_memory_equal(line, "<3>ERROR amity-test", 19);
    line = strchr(line, '\n') + 1;
    assert_memory_equal(line, "<4>WARN amity-test", 18);
    line = strchr(line, '\n') + 1;
    assert_memory_equal(line, "<6>INFO amity-test", 18);
    line = strchr(line, '\n') + 1;
    assert_memory_equal(line, "<7>DEBUG amity-test", 19);
    line = strchr(line, '\n') + 1;
    assert_true(line[0] >= '0' && line[0] <= '9'); /* a timestamp again */
    assert_non_null(strstr(line, " INFO amity-test"));
    assert_non_null(strstr(line, ": plain\n"));
}

static void
test_log_ratelimit(void **state)
{
    state_t *st = *state;
    long long last = 0;
    unsigned long n = 0;
    s_capture_begin(st);
    assert_int_equal(amity_log_ratelimit(&last, &n, 10), 1);
    assert_true(last > 0);
    assert_int_equal(amity_log_ratelimit(&last, &n, 10), 0);
    assert_int_equal(amity_log_ratelimit(&last, &n, 10), 0);
    assert_int_equal(amity_log_ratelimit(&last, &n, 10), 0);
    assert_int_equal(n, 3);
    s_capture_end(st);
    assert_int_equal(st->len, 0); /* nothing said yet */

    s_capture_begin(st);
    last -= 11000; /* as if 11 s had passed */
    assert_int_equal(amity_log_ratelimit(&last, &n, 10), 1);
    assert_int_equal(n, 0);
    s_capture_end(st);
    assert_non_null(strstr(st->text, " WARN amity-test["));
    assert_non_null(strstr(st->text, ": 3 similar messages suppressed"));

    /* per_s <= 0: no limit */
    long long last0 = 0;
    unsigned long n0 = 0;
    assert_int_equal(amity_log_ratelimit(&last0, &n0, 0), 1);
    assert_int_equal(amity_log_ratelimit(&last0, &n0, 0), 1);
    assert_int_equal(n0, 0);

    /* the macro: one line per call site per period */
    s_capture_begin(st);
    for (int i = 0; i < 100; i++) {
        amity_log_warn_rl(60, "bad input %d", i);
    }
    s_capture_end(st);
    assert_int_equal(s_count(st->text, '\n'), 1);
    assert_non_null(strstr(st->text, "bad input 0\n"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_log_format, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_levels, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_errno, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_one_line, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_truncation, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_journal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_log_ratelimit, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
