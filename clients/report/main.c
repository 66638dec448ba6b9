/*  amity-report: the period review as the secretariat writes it. Queries
 *  notify for a period's totals and the same period one year earlier and
 *  prints each item beside last year's with the change in percent, in
 *  Vietnamese or English, or as JSON. Exit 0 ok, 2 usage, 69 notify
 *  unreachable, 1 other failures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/keys.h"
#include "amity/log.h"
#include "cli.h"
#include "report.h"

#define S_EXIT_UNREACHABLE 69

static const char *s_summary =
    "Prints the period review: delegations received and sent, local activities,\n"
    "aid committed and disbursed, relief, awards, partners met and organisations\n"
    "founded, each beside the same period of the previous year with the change\n"
    "in percent (\"+8.2%\", \"−9.8%\", \"new\" when last year had none).\n"
    "\n"
    "Report options (command line only):\n"
    "  --period P              YYYY, YYYY-H1, YYYY-H2, YYYY-Q1..YYYY-Q4 or YYYY-MM\n"
    "                          (required)\n"
    "  --office ID             one office's totals (default: all offices; the\n"
    "                          [client] office option below is not used)\n"
    "  --lang vi|en            language of the text (default: vi)\n"
    "  --json                  one JSON object (sorted keys) instead of text\n"
    "Exit: 0 ok, 2 usage error, 69 notify did not answer within --timeout-ms.";

/*  The report's own flags, taken out of argv before the [client] options
 *  are loaded (--office here is the office reported on, not the [client]
 *  office that submits). */
typedef struct {
    const char *period; /* --period value (NULL: not given) */
    const char *office; /* --office value */
    const char *lang;   /* --lang value */
    bool json;          /* --json */
} s_flags_t;

/*  Moves the report flags out of argv (compacting it, *argc updated).
 *  Returns 0, or -1 after printing a usage error. */
static int
s_split_flags(int *argc, char **argv, s_flags_t *flags)
{
    int out = 1;
    bool done = false;

    for (int i = 1; i < *argc; i++) {
        const char **slot = NULL;
        const char *value = NULL;
        const char *name = NULL;

        if (!done && strcmp(argv[i], "--") == 0) {
            done = true;
        } else if (!done && strcmp(argv[i], "--json") == 0) {
            flags->json = true;
            continue;
        } else if (!done && strcmp(argv[i], "--no-json") == 0) {
            flags->json = false;
            continue;
        } else if (!done && amity_cli_take(*argc, argv, &i, "--period", &value)) {
            slot = &flags->period;
            name = "--period";
        } else if (!done && amity_cli_take(*argc, argv, &i, "--office", &value)) {
            slot = &flags->office;
            name = "--office";
        } else if (!done && amity_cli_take(*argc, argv, &i, "--lang", &value)) {
            slot = &flags->lang;
            name = "--lang";
        }
        if (slot != NULL) {
            if (value == NULL) {
                (void)fprintf(stderr, "amity-report: %s needs a value (see --help)\n", name);
                return -1;
            }
            *slot = value;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

typedef struct {
    report_t *report;
    size_t n; /* totals received */
} s_feed_t;

static int
s_on_total(void *arg, const amity_total_t *t)
{
    s_feed_t *feed = arg;

    feed->n++;
    return report_add(feed->report, t->key, t->value);
}

/*  Validates the report flags; prints the error and returns -1 if one is
 *  wrong. */
static int
s_check_flags(const s_flags_t *flags, report_period_t *period, report_lang_t *lang)
{
    if (flags->period == NULL) {
        (void)fprintf(stderr, "amity-report: --period is required (e.g. --period 2017-H1; "
                              "see --help)\n");
        return -1;
    }
    if (report_period_parse(flags->period, period) != 0) {
        (void)fprintf(stderr,
                      "amity-report: --period: '%s' is not a period: expected YYYY, YYYY-H1, "
                      "YYYY-H2, YYYY-Q1..YYYY-Q4 or YYYY-MM with the year in %d..%d\n",
                      flags->period, REPORT_YEAR_MIN, REPORT_YEAR_MAX);
        return -1;
    }
    if (strcmp(flags->office, "all") != 0 &&
        !amity_office_valid(flags->office, strlen(flags->office))) {
        (void)fprintf(stderr,
                      "amity-report: --office: '%s' is not an office id ([a-z0-9-]{1,64}) "
                      "or all\n",
                      flags->office);
        return -1;
    }
    if (report_lang_parse(flags->lang, lang) != 0) {
        (void)fprintf(stderr, "amity-report: --lang: '%s' is not vi or en\n", flags->lang);
        return -1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    s_flags_t flags = { NULL, "all", "vi", false };
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    report_period_t period;
    report_lang_t lang = REPORT_LANG_VI;
    s_feed_t feed = { NULL, 0 };
    amity_buf_t out;
    char **args;
    int n_args;
    int exit_code = AMITY_EXIT_OK;
    int rc = 0;

    if (s_split_flags(&argc, argv, &flags) != 0) {
        return AMITY_EXIT_CONFIG;
    }
    r = amity_cli_load("amity-report", s_summary, "5000", &cfg, &opts, argc, argv, &args, &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? AMITY_EXIT_OK : AMITY_EXIT_CONFIG;
    }
    if (n_args != 0) {
        (void)fprintf(stderr, "amity-report: unexpected argument '%s' (see --help)\n", args[0]);
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    if (s_check_flags(&flags, &period, &lang) != 0) {
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    amity_buf_init(&out);
    rc = report_new(&feed.report, &period, flags.office);
    for (int side = 0; side < 2 && rc == 0; side++) {
        uint64_t seq = 0;
        const char *prefix = report_prefix(feed.report, side == 1);
        rc = amity_query(&opts, prefix, s_on_total, &feed, &seq, (int)cfg.timeout_ms);
        if (rc == 0) {
            amity_log_info("%s: %zu totals so far at seq %llu", prefix, feed.n,
                           (unsigned long long)seq);
        }
    }
    if (rc == 0) {
        rc = flags.json ? report_json(feed.report, &out) : report_text(feed.report, lang, &out);
    }
    if (rc == 0) {
        if (fwrite(out.data, 1, out.len, stdout) != out.len || fflush(stdout) != 0) {
            exit_code = AMITY_EXIT_RUNTIME;
        }
    } else if (rc == AMITY_EAGAIN) {
        (void)fprintf(stderr, "amity-report: notify at %s did not answer within %lld ms\n",
                      opts.notify, (long long)cfg.timeout_ms);
        exit_code = S_EXIT_UNREACHABLE;
    } else {
        (void)fprintf(stderr, "amity-report: %s\n", amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
    }
    report_destroy(&feed.report);
    amity_buf_clear(&out);
    amity_cli_free(&cfg);
    return exit_code;
}
