/*  test_config: defaults < INI < environment < flags, strict values, every
 *  error naming its source, --help/--version/--check-config, lists, and no
 *  leaks (LeakSanitizer runs at exit under -DAMITY_SANITIZE=ON).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"

typedef struct {
    char *bind;
    int64_t batch;
    int64_t delta;
    bool no_sync;
    bool verbose;
    amity_strlist_t shards;
    char *office;
    char *log_level;
} test_cfg_t;

static const amity_opt_t s_opts[] = {
    { "bind", AMITY_OPT_STR, offsetof(test_cfg_t, bind), "tcp://127.0.0.1:7700", 0, 0,
      "endpoint to bind" },
    { "batch", AMITY_OPT_INT, offsetof(test_cfg_t, batch), "4096", 1, 1000000,
      "records per batch" },
    { "delta", AMITY_OPT_INT, offsetof(test_cfg_t, delta), "-3", -10, 10, "a signed knob" },
    { "no-sync", AMITY_OPT_BOOL, offsetof(test_cfg_t, no_sync), NULL, 0, 0, "skip fsync" },
    { "verbose", AMITY_OPT_BOOL, offsetof(test_cfg_t, verbose), "true", 0, 0, "talk more" },
    { "shards", AMITY_OPT_LIST, offsetof(test_cfg_t, shards), "tcp://127.0.0.1:7710", 0, 0,
      "shard base endpoints" },
    { "office", AMITY_OPT_STR, offsetof(test_cfg_t, office), NULL, 0, 0, "office id" },
    AMITY_OPT_LOG_LEVEL(test_cfg_t, log_level),
};

static const amity_config_spec_t s_spec = {
    "amity-test",
    "test",
    "a program for the config tests",
    s_opts,
    sizeof(s_opts) / sizeof(s_opts[0]),
    false,
    NULL,
};

static const amity_config_spec_t s_spec_args = {
    "amity-test",
    "test",
    "a program that takes arguments",
    s_opts,
    sizeof(s_opts) / sizeof(s_opts[0]),
    true,
    NULL,
};

/*  A program check: refuses a bind that is not loopback-looking. */
static int
s_check_bind(const void *cfg)
{
    const test_cfg_t *c = cfg;
    if (strncmp(c->bind, "tcp://127.", 10) != 0) {
        fprintf(stderr, "amity-test: bind: %s is not loopback\n", c->bind);
        return -1;
    }
    return 0;
}

static const amity_config_spec_t s_spec_checked = {
    .program = "amity-test",
    .section = "test",
    .summary = "a program with its own checks",
    .opts = s_opts,
    .n_opts = sizeof(s_opts) / sizeof(s_opts[0]),
    .check = s_check_bind,
};

static const char *const s_env_vars[] = {
    "AMITY_CONFIG",      "AMITY_TEST_BIND",    "AMITY_TEST_BATCH",
    "AMITY_TEST_DELTA",  "AMITY_TEST_NO_SYNC", "AMITY_TEST_VERBOSE",
    "AMITY_TEST_SHARDS", "AMITY_TEST_OFFICE",  "AMITY_TEST_LOG_LEVEL",
};

typedef struct {
    char dir[64];            /* mkdtemp directory */
    char ini[128];           /* dir/amity.ini */
    test_cfg_t cfg;          /* filled by the loads */
    char **args;             /* positional arguments */
    int n_args;              /* their count */
    char *out;               /* captured stdout of the last load */
    char *err;               /* captured stderr of the last load */
    amity_log_level_t saved; /* log threshold before the test */
} state_t;

static void
s_unset_env(void)
{
    for (size_t i = 0; i < sizeof(s_env_vars) / sizeof(s_env_vars[0]); i++) {
        unsetenv(s_env_vars[i]);
    }
}

static int
s_setup(void **state)
{
    state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        return -1;
    }
    (void)snprintf(st->dir, sizeof(st->dir), "/tmp/amity-config-XXXXXX");
    if (!mkdtemp(st->dir)) {
        free(st);
        return -1;
    }
    (void)snprintf(st->ini, sizeof(st->ini), "%s/amity.ini", st->dir);
    st->saved = amity_log_threshold;
    s_unset_env();
    *state = st;
    return 0;
}

static int
s_teardown(void **state)
{
    state_t *st = *state;
    amity_config_free(&s_spec, &st->cfg);
    free(st->out);
    free(st->err);
    unlink(st->ini);
    rmdir(st->dir);
    s_unset_env();
    amity_log_threshold = st->saved;
    free(st);
    return 0;
}

static void
s_write_ini(state_t *st, const char *text)
{
    FILE *f = fopen(st->ini, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *
s_slurp(FILE *f)
{
    (void)fflush(f);
    long len = ftell(f);
    char *text = calloc(1, (size_t)(len > 0 ? len : 0) + 1);
    if (text && len > 0) {
        rewind(f);
        size_t n = fread(text, 1, (size_t)len, f);
        text[n] = '\0';
    }
    (void)fclose(f);
    return text;
}

/*  Loads with stdout and stderr captured into st->out and st->err. */
static amity_config_result_t
s_load(state_t *st, const amity_config_spec_t *spec, int argc, char **argv)
{
    free(st->out);
    free(st->err);
    st->out = st->err = NULL;
    (void)fflush(stdout);
    (void)fflush(stderr);
    FILE *out = tmpfile();
    FILE *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    int saved_out = dup(STDOUT_FILENO);
    int saved_err = dup(STDERR_FILENO);
    assert_true(saved_out >= 0 && saved_err >= 0);
    dup2(fileno(out), STDOUT_FILENO);
    dup2(fileno(err), STDERR_FILENO);
    amity_config_result_t rc =
        amity_config_load(spec, &st->cfg, argc, argv, &st->args, &st->n_args);
    (void)fflush(stdout);
    (void)fflush(stderr);
    dup2(saved_out, STDOUT_FILENO);
    dup2(saved_err, STDERR_FILENO);
    close(saved_out);
    close(saved_err);
    (void)fseek(out, 0, SEEK_END);
    (void)fseek(err, 0, SEEK_END);
    st->out = s_slurp(out);
    st->err = s_slurp(err);
    assert_non_null(st->out);
    assert_non_null(st->err);
    return rc;
}

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

static void
s_assert_contains(const char *haystack, const char *needle)
{
    if (!strstr(haystack, needle)) {
        fail_msg("expected \"%s\" in:\n%s", needle, haystack);
    }
}

static void
test_config_defaults(void **state)
{
    state_t *st = *state;
    char *argv[] = { "amity-test", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_RUN);
    assert_string_equal(st->cfg.bind, "tcp://127.0.0.1:7700");
    assert_int_equal(st->cfg.batch, 4096);
    assert_int_equal(st->cfg.delta, -3);
    assert_false(st->cfg.no_sync);
    assert_true(st->cfg.verbose);
    assert_int_equal(st->cfg.shards.n, 1);
    assert_string_equal(st->cfg.shards.items[0], "tcp://127.0.0.1:7710");
    assert_non_null(st->cfg.office);
    assert_string_equal(st->cfg.office, "");
    assert_string_equal(st->cfg.log_level, "info");
    assert_int_equal(st->n_args, 0);
    assert_string_equal(st->err, "");
    assert_string_equal(st->out, "");
}

static void
test_config_program_check_runs_for_check_config(void **state)
{
    state_t *st = *state;
    char *ok[] = { "amity-test", "--check-config", NULL };
    assert_int_equal(s_load(st, &s_spec_checked, ARGC(ok), ok), AMITY_CONFIG_EXIT_OK);
    s_assert_contains(st->out, "configuration OK");
    char *bad[] = { "amity-test", "--bind", "tcp://10.0.0.1:7700", "--check-config", NULL };
    assert_int_equal(s_load(st, &s_spec_checked, ARGC(bad), bad), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "bind: tcp://10.0.0.1:7700 is not loopback");
    char *run[] = { "amity-test", "--bind", "tcp://10.0.0.1:7700", NULL };
    assert_int_equal(s_load(st, &s_spec_checked, ARGC(run), run), AMITY_CONFIG_ERROR);
}

static void
test_config_precedence(void **state)
{
    state_t *st = *state;
    s_write_ini(st, "; shared file\n"
                    "top = ignored\n"
                    "[ingest]\n"
                    "bind = tcp://other\n"
                    "whatever = 1\n"
                    "[test]\n"
                    "bind = tcp://127.0.0.2:1\n"
                    "batch = 10\n"
                    "delta = 5\n"
                    "shards = a, b ,, c\n"
                    "no-sync = on\n"
                    "[client]\n"
                    "batch = x\n");
    char opt_config[160];
    (void)snprintf(opt_config, sizeof(opt_config), "--config=%s", st->ini);

    /* INI over defaults */
    char *argv1[] = { "amity-test", opt_config, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_RUN);
    assert_string_equal(st->err, "");
    assert_string_equal(st->cfg.bind, "tcp://127.0.0.2:1");
    assert_int_equal(st->cfg.batch, 10);
    assert_int_equal(st->cfg.delta, 5);
    assert_true(st->cfg.no_sync);
    assert_int_equal(st->cfg.shards.n, 3);
    assert_string_equal(st->cfg.shards.items[0], "a");
    assert_string_equal(st->cfg.shards.items[1], "b");
    assert_string_equal(st->cfg.shards.items[2], "c");
    amity_config_free(&s_spec, &st->cfg);

    /* environment over INI (file named by AMITY_CONFIG this time) */
    setenv("AMITY_CONFIG", st->ini, 1);
    setenv("AMITY_TEST_BATCH", "20", 1);
    setenv("AMITY_TEST_NO_SYNC", "no", 1);
    setenv("AMITY_TEST_SHARDS", "x,y", 1);
    char *argv2[] = { "amity-test", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_RUN);
    assert_string_equal(st->err, "");
    assert_string_equal(st->cfg.bind, "tcp://127.0.0.2:1");
    assert_int_equal(st->cfg.batch, 20);
    assert_false(st->cfg.no_sync);
    assert_int_equal(st->cfg.shards.n, 2);
    assert_string_equal(st->cfg.shards.items[1], "y");
    amity_config_free(&s_spec, &st->cfg);

    /* flags over everything, both spellings */
    char *argv3[] = { "amity-test", "--batch", "30", "--no-sync",
                      "--shards=q", "--delta", "-7", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv3), argv3), AMITY_CONFIG_RUN);
    assert_string_equal(st->err, "");
    assert_int_equal(st->cfg.batch, 30);
    assert_int_equal(st->cfg.delta, -7);
    assert_true(st->cfg.no_sync); /* the option named "no-sync", set by its bare flag */
    assert_int_equal(st->cfg.shards.n, 1);
    assert_string_equal(st->cfg.shards.items[0], "q");
    amity_config_free(&s_spec, &st->cfg);

    /* --config= (empty) turns AMITY_CONFIG off */
    char *argv4[] = { "amity-test", "--config=", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv4), argv4), AMITY_CONFIG_RUN);
    assert_string_equal(st->cfg.bind, "tcp://127.0.0.1:7700");
    assert_int_equal(st->cfg.batch, 20);
}

static void
test_config_bool_forms(void **state)
{
    state_t *st = *state;
    char *argv1[] = { "amity-test", "--no-verbose", "--no-sync=false", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_RUN);
    assert_false(st->cfg.verbose);
    assert_false(st->cfg.no_sync);
    amity_config_free(&s_spec, &st->cfg);

    char *argv2[] = { "amity-test", "--verbose=OFF", "--no-no-sync", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_RUN);
    assert_false(st->cfg.verbose);
    assert_false(st->cfg.no_sync);
    amity_config_free(&s_spec, &st->cfg);

    char *argv3[] = { "amity-test", "--verbose=1", "--no-sync=Yes", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv3), argv3), AMITY_CONFIG_RUN);
    assert_true(st->cfg.verbose);
    assert_true(st->cfg.no_sync);
    amity_config_free(&s_spec, &st->cfg);

    setenv("AMITY_TEST_VERBOSE", "maybe", 1);
    char *argv4[] = { "amity-test", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv4), argv4), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "amity-test: AMITY_TEST_VERBOSE: 'maybe' is not a boolean");
}

static void
test_config_bad_int(void **state)
{
    state_t *st = *state;
    s_write_ini(st, "[test]\n"
                    "batch = x\n");
    char expect[256];
    (void)snprintf(expect, sizeof(expect), "%s:2: batch: 'x' is not an integer", st->ini);
    char *argv1[] = { "amity-test", "--config", st->ini, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, expect);
    assert_null(st->cfg.bind); /* freed on error */

    char *argv2[] = { "amity-test", "--batch", "0", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_ERROR);
    assert_string_equal(st->err, "amity-test: --batch: 0 is below the minimum 1\n");

    char *argv3[] = { "amity-test", "--batch=1000001", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv3), argv3), AMITY_CONFIG_ERROR);
    assert_string_equal(st->err, "amity-test: --batch: 1000001 is above the maximum 1000000\n");

    char *argv4[] = { "amity-test",           "--batch",    "12abc", "--delta",
                      "99999999999999999999", "--batch= 5", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv4), argv4), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "--batch: '12abc' is not an integer");
    s_assert_contains(st->err, "--delta: 99999999999999999999 is out of range");
    s_assert_contains(st->err, "--batch: ' 5' is not an integer");

    char *argv5[] = { "amity-test", "--batch", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv5), argv5), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "--batch needs a value");

    setenv("AMITY_TEST_DELTA", "-11", 1);
    char *argv6[] = { "amity-test", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv6), argv6), AMITY_CONFIG_ERROR);
    assert_string_equal(st->err, "amity-test: AMITY_TEST_DELTA: -11 is below the minimum -10\n");
}

static void
test_config_unknown_key(void **state)
{
    state_t *st = *state;
    s_write_ini(st, "[test]\n"
                    "bind = tcp://127.0.0.1:1\n"
                    "bogus = 1\n"
                    "[other]\n"
                    "bogus = 2\n");
    char expect[256];
    (void)snprintf(expect, sizeof(expect),
                   "amity-test: %s:3: unknown key 'bogus' in section [test]\n", st->ini);
    char *argv[] = { "amity-test", "--config", st->ini, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_ERROR);
    assert_string_equal(st->err, expect);
}

static void
test_config_syntax_errors(void **state)
{
    state_t *st = *state;
    char expect[256];
    char *argv[] = { "amity-test", "--config", st->ini, NULL };

    s_write_ini(st, "[test]\n"
                    "batch = 5\n"
                    "this line has no equals sign\n");
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_ERROR);
    (void)snprintf(expect, sizeof(expect), "%s:3: syntax error", st->ini);
    s_assert_contains(st->err, expect);

    /* longer than inih's line buffer: refused, not split */
    char text[1024];
    char value[600];
    memset(value, 'a', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    (void)snprintf(text, sizeof(text), "[test]\noffice = %s\nbatch = 6\n", value);
    s_write_ini(st, text);
    char *argv2[] = { "amity-test", "--config", st->ini, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_ERROR);
    (void)snprintf(expect, sizeof(expect), "%s:2: line too long", st->ini);
    s_assert_contains(st->err, expect);
    assert_null(strstr(st->err, ":3:"));

    /* an indented line continues a list, and nothing else */
    s_write_ini(st, "[test]\n"
                    "shards = a,\n"
                    "   b, c\n"
                    "  d\n"
                    "batch = 7\n"
                    "   8\n");
    char *argv3[] = { "amity-test", "--config", st->ini, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv3), argv3), AMITY_CONFIG_ERROR);
    (void)snprintf(expect, sizeof(expect), "amity-test: %s:6: batch: unexpected indented line",
                   st->ini);
    s_assert_contains(st->err, expect);
    assert_null(strstr(st->err, ":3:"));

    s_write_ini(st, "[test]\n"
                    "shards = a,\n"
                    "   b, c\n"
                    "  d\n"
                    "\n"
                    "  batch = 7\n");
    char *argv4[] = { "amity-test", "--config", st->ini, NULL };
    /* inih would read the indented "batch = 7" as more of shards */
    assert_int_equal(s_load(st, &s_spec, ARGC(argv4), argv4), AMITY_CONFIG_ERROR);
    (void)snprintf(expect, sizeof(expect), "%s:6: shards: indented line 'batch = 7'", st->ini);
    s_assert_contains(st->err, expect);

    s_write_ini(st, "[test]\n"
                    "shards = a,\n"
                    "   b, c\n"
                    "  d\n"
                    "batch = 8\n");
    char *argv4b[] = { "amity-test", "--config", st->ini, NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv4b), argv4b), AMITY_CONFIG_RUN);
    assert_int_equal(st->cfg.shards.n, 4);
    assert_string_equal(st->cfg.shards.items[0], "a");
    assert_string_equal(st->cfg.shards.items[3], "d");
    assert_int_equal(st->cfg.batch, 8);
    amity_config_free(&s_spec, &st->cfg);

    char *argv5[] = { "amity-test", "--config", "/nonexistent/amity.ini", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv5), argv5), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "cannot read configuration file /nonexistent/amity.ini");

    char *argv6[] = { "amity-test", "--config", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv6), argv6), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "--config needs a file name");
}

static void
test_config_unknown_flag(void **state)
{
    state_t *st = *state;
    char *argv1[] = { "amity-test", "--foo", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_ERROR);
    assert_string_equal(st->err, "amity-test: unknown option --foo (see --help)\n");

    char *argv2[] = { "amity-test", "--foo=1", "-x", "--no-batch", "file", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "unknown option --foo (see --help)");
    s_assert_contains(st->err, "unknown option -x (see --help)");
    s_assert_contains(st->err, "unknown option --no-batch (see --help)");
    s_assert_contains(st->err, "unexpected argument 'file' (see --help)");
}

static void
test_config_args(void **state)
{
    state_t *st = *state;
    char *argv[] = { "amity-test", "one", "--batch", "3", "-", "--", "--not-a-flag", NULL };
    assert_int_equal(s_load(st, &s_spec_args, ARGC(argv), argv), AMITY_CONFIG_RUN);
    assert_int_equal(st->cfg.batch, 3);
    assert_int_equal(st->n_args, 3);
    assert_string_equal(st->args[0], "one");
    assert_string_equal(st->args[1], "-");
    assert_string_equal(st->args[2], "--not-a-flag");
}

static void
test_config_help(void **state)
{
    state_t *st = *state;
    setenv("AMITY_CONFIG", "/nonexistent/amity.ini", 1); /* --help needs no valid config */
    char *argv[] = { "amity-test", "--bogus", "--help", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_EXIT_OK);
    assert_string_equal(st->err, "");
    s_assert_contains(st->out, "Usage: amity-test [OPTION]...\n");
    s_assert_contains(st->out, "a program for the config tests");
    s_assert_contains(st->out, "--bind TEXT");
    s_assert_contains(st->out, "endpoint to bind (default: tcp://127.0.0.1:7700)");
    s_assert_contains(st->out, "--batch N");
    s_assert_contains(st->out, "records per batch (default: 4096, 1..1000000)");
    s_assert_contains(st->out, "  --no-sync ");
    s_assert_contains(st->out, "--[no-]verbose");
    s_assert_contains(st->out, "skip fsync (default: false)");
    s_assert_contains(st->out, "--shards A,B,..");
    s_assert_contains(st->out, "--log-level TEXT");
    s_assert_contains(st->out, "AMITY_TEST_NAME");
    s_assert_contains(st->out, "--check-config");
    assert_null(st->cfg.bind);

    char *argv2[] = { "amity-test", "-h", NULL };
    assert_int_equal(s_load(st, &s_spec_args, ARGC(argv2), argv2), AMITY_CONFIG_EXIT_OK);
    s_assert_contains(st->out, "Usage: amity-test [OPTION]... [ARG]...\n");
}

static void
test_config_version(void **state)
{
    state_t *st = *state;
    char *argv[] = { "amity-test", "--version", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_EXIT_OK);
    assert_string_equal(st->out, "amity-test " AMITY_VERSION "\n");
    assert_string_equal(st->err, "");
}

static void
test_config_check(void **state)
{
    state_t *st = *state;
    char *argv[] = { "amity-test", "--check-config", "--batch=7", "--shards", "a,b", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv), argv), AMITY_CONFIG_EXIT_OK);
    assert_string_equal(st->err, "");
    assert_memory_equal(st->out, "amity-test: configuration OK\n[test]\n", 36);
    s_assert_contains(st->out, "\nbatch = 7\n");
    s_assert_contains(st->out, "\nshards = a,b\n");
    s_assert_contains(st->out, "\nno-sync = false\n");
    s_assert_contains(st->out, "\nverbose = true\n");
    assert_null(st->cfg.bind);

    char *argv2[] = { "amity-test", "--check-config", "--batch=x", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_ERROR);
    assert_string_equal(st->out, "");
    s_assert_contains(st->err, "--batch: 'x' is not an integer");
}

static void
test_config_lists(void **state)
{
    state_t *st = *state;
    char *argv1[] = { "amity-test", "--shards", " a , ,b,, c ,", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_RUN);
    assert_int_equal(st->cfg.shards.n, 3);
    assert_string_equal(st->cfg.shards.items[0], "a");
    assert_string_equal(st->cfg.shards.items[1], "b");
    assert_string_equal(st->cfg.shards.items[2], "c");
    amity_config_free(&s_spec, &st->cfg);
    amity_config_free(&s_spec, &st->cfg); /* idempotent */

    char *argv2[] = { "amity-test", "--shards=", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_RUN);
    assert_int_equal(st->cfg.shards.n, 0);
    assert_null(st->cfg.shards.items);
    amity_config_free(&s_spec, &st->cfg);

    char *argv3[] = { "amity-test", "--shards", " , ,", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv3), argv3), AMITY_CONFIG_RUN);
    assert_int_equal(st->cfg.shards.n, 0);
}

static void
test_config_log_level(void **state)
{
    state_t *st = *state;
    char *argv1[] = { "amity-test", "--log-level", "debug", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv1), argv1), AMITY_CONFIG_RUN);
    assert_int_equal(amity_log_threshold, AMITY_LOG_DEBUG);
    amity_config_free(&s_spec, &st->cfg);

    amity_log_threshold = AMITY_LOG_INFO;
    char *argv2[] = { "amity-test", "--log-level=loud", NULL };
    assert_int_equal(s_load(st, &s_spec, ARGC(argv2), argv2), AMITY_CONFIG_ERROR);
    s_assert_contains(st->err, "--log-level: 'loud' is not a log level");
    assert_int_equal(amity_log_threshold, AMITY_LOG_INFO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_config_defaults, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_precedence, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_program_check_runs_for_check_config, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_config_bool_forms, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_bad_int, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_key, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_syntax_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_unknown_flag, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_args, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_help, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_version, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_check, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_lists, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_log_level, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
