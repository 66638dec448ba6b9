/*  amity-query: prints the totals under a prefix as one JSON object
 *  {"key": value, ...} sorted by key: money ("amount.CUR" keys) as decimal
 *  strings with the currency's decimals, counts as integers. Exit 69 when
 *  notify does not answer within --timeout-ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "cli.h"

#define S_EXIT_UNREACHABLE 69

static const char *s_summary =
    "Prints the totals under PREFIX (e.g. 2024/all/aid_commitment/) as one JSON\n"
    "object sorted by key, money as decimal strings (\"47425742.00\"), counts as\n"
    "integers. Exit 69 when notify does not answer within --timeout-ms.";

typedef struct {
    amity_total_t *t; /* copies */
    size_t n;
    size_t cap;
} s_acc_t;

static int
s_collect(void *arg, const amity_total_t *t)
{
    s_acc_t *acc = arg;
    char *key;

    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 256;
        amity_total_t *nt = realloc(acc->t, cap * sizeof(*nt));
        if (nt == NULL) {
            return AMITY_ENOMEM;
        }
        acc->t = nt;
        acc->cap = cap;
    }
    key = strdup(t->key);
    if (key == NULL) {
        return AMITY_ENOMEM;
    }
    acc->t[acc->n].key = key;
    acc->t[acc->n].value = t->value;
    acc->n++;
    return 0;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    s_acc_t acc = { NULL, 0, 0 };
    amity_buf_t out;
    char **args;
    int n_args;
    uint64_t seq = 0;
    int exit_code = 0;
    int rc;

    r = amity_cli_load("amity-query", s_summary, "5000", &cfg, &opts, argc, argv, &args, &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (n_args != 1) {
        fprintf(stderr, "amity-query: expected one PREFIX (\"\" for everything); see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    amity_buf_init(&out);
    rc = amity_query(&opts, args[0], s_collect, &acc, &seq, (int)cfg.timeout_ms);
    if (rc == 0) {
        rc = amity_totals_json(acc.t, acc.n, true, &out);
    }
    if (rc == 0) {
        fwrite(out.data, 1, out.len, stdout);
        fputc('\n', stdout);
        if (fflush(stdout) != 0) {
            exit_code = AMITY_EXIT_RUNTIME;
        }
        amity_log_info("%zu totals at seq %llu", acc.n, (unsigned long long)seq);
    } else if (rc == AMITY_EAGAIN) {
        fprintf(stderr, "amity-query: notify at %s did not answer within %lld ms\n", opts.notify,
                (long long)cfg.timeout_ms);
        exit_code = S_EXIT_UNREACHABLE;
    } else {
        fprintf(stderr, "amity-query: %s\n", amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < acc.n; i++) {
        free((char *)(uintptr_t)acc.t[i].key);
    }
    free(acc.t);
    amity_buf_clear(&out);
    amity_cli_free(&cfg);
    return exit_code;
}
