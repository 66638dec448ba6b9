/*  amity-subscribe: follows the totals under one or more prefixes and
 *  prints, line-buffered, {"seq":N,"snapshot":true,"totals":{...}} after
 *  every (re)sync (replace everything under the prefixes), then
 *  {"seq":N,"totals":{...}} per update (changed keys, absolute values).
 *  Runs until SIGINT or SIGTERM (exit 0).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "cli.h"

static const char *s_summary =
    "Follows the totals under each PREFIX and prints one JSON object per line:\n"
    "{\"seq\":N,\"snapshot\":true,\"totals\":{...}} after every (re)sync (replace\n"
    "everything under the prefixes), then {\"seq\":N,\"totals\":{...}} per update\n"
    "(changed keys, absolute values; money as decimal strings). Runs until\n"
    "SIGINT or SIGTERM.";

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

typedef struct {
    amity_buf_t line; /* output line being built */
    bool broken;      /* stdout is gone */
} s_out_t;

static void
s_on_event(void *arg, amity_sub_event_t ev, uint64_t seq, const amity_total_t *t, size_t n)
{
    s_out_t *out = arg;
    char head[80];
    int len;

    if (out->broken) {
        return;
    }
    amity_buf_reset(&out->line);
    len = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64 "%s,\"totals\":", seq,
                   ev == AMITY_SUB_SNAPSHOT ? ",\"snapshot\":true" : "");
    if (amity_buf_append(&out->line, head, (size_t)len) != 0 ||
        amity_totals_json(t, n, false, &out->line) != 0 ||
        amity_buf_append(&out->line, "}\n", 2) != 0) {
        amity_log_error("out of memory formatting an update");
        return;
    }
    if (fwrite(out->line.data, 1, out->line.len, stdout) != out->line.len || fflush(stdout) != 0) {
        out->broken = true;
    }
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    amity_sub_t *sub = NULL;
    struct sigaction sa;
    s_out_t out;
    char **args;
    int n_args;
    int rc;

    r = amity_cli_load("amity-subscribe", s_summary, "3000", &cfg, &opts, argc, argv, &args,
                       &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (n_args < 1) {
        fprintf(stderr, "amity-subscribe: expected at least one PREFIX; see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    memset(&out, 0, sizeof(out));
    amity_buf_init(&out.line);
    rc = amity_sub_new(&sub, &opts, (const char *const *)args, (size_t)n_args, s_on_event, &out);
    if (rc != 0) {
        fprintf(stderr, "amity-subscribe: %s\n", amity_strerror(rc));
        amity_buf_clear(&out.line);
        amity_cli_free(&cfg);
        return rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : AMITY_EXIT_RUNTIME;
    }
    while (!s_stop && !out.broken) {
        rc = amity_sub_poll(sub, 200);
        if (rc != 0) {
            fprintf(stderr, "amity-subscribe: %s\n", amity_strerror(rc));
            break;
        }
    }
    amity_sub_destroy(&sub);
    amity_buf_clear(&out.line);
    amity_cli_free(&cfg);
    return rc == 0 ? 0 : AMITY_EXIT_RUNTIME;
}
