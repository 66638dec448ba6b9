/*  amity-query: prints the totals under a prefix as one JSON object
 *  {"key": value, ...} sorted by key: money ("amount.CUR" keys) as decimal
 *  strings with the currency's decimals, counts as integers; or, with
 *  --table, as an aligned table for people. With --rejects it lists the
 *  rejected records the shards keep instead (one JSON object per line, or
 *  a table). Exit 69 when notify does not answer within --timeout-ms.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "cli.h"
#include "table.h"

#define S_EXIT_UNREACHABLE 69

static const char *s_summary =
    "  amity-query [OPTIONS] [--table] PREFIX\n"
    "  amity-query [OPTIONS] --rejects [--office ID] [--table]\n"
    "Prints the totals under PREFIX (e.g. 2024/all/aid_commitment/) as one JSON\n"
    "object sorted by key, money as decimal strings (\"47425742.00\"), counts as\n"
    "integers.\n"
    "  --table     an aligned table (key, value) for people instead, money with its\n"
    "              currency's decimals and digits grouped (\"47,425,742.00\")\n"
    "  --rejects   list the rejected records instead, oldest first, one JSON object\n"
    "              per line: {\"office\", \"id\", \"why\", \"time\" (ISO-8601 UTC),\n"
    "              \"record\" (the record as sent: an object, or base64 of its bytes)};\n"
    "              with --table a table (time, office, id, reason); with --office ID\n"
    "              only that office's. An office's key lists its own office's only,\n"
    "              an operator's key (prefixes \"*\") any office's.\n"
    "Exit 69 when notify does not answer within --timeout-ms, 1 when it refuses.";

typedef struct {
    amity_total_t *t; /* copies */
    size_t n;
    size_t cap;
} s_acc_t;

typedef struct {
    bool table;   /* --table */
    bool rejects; /* --rejects */
} s_flags_t;

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

/*  Moves --table and --rejects out of argv (compacting it); "--" ends
 *  the options. */
static void
s_split_flags(int *argc, char **argv, s_flags_t *flags)
{
    int out = 1;
    bool done = false;

    for (int i = 1; i < *argc; i++) {
        if (!done && strcmp(argv[i], "--") == 0) {
            done = true;
        } else if (!done && strcmp(argv[i], "--table") == 0) {
            flags->table = true;
            continue;
        } else if (!done && strcmp(argv[i], "--rejects") == 0) {
            flags->rejects = true;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
}

/*  The totals as a table: key, value. */
static int
s_totals_table(const s_acc_t *acc, amity_buf_t *out)
{
    static const char *const head[2] = { "KEY", "VALUE" };
    amity_table_t t;
    int rc;

    amity_table_init(&t, 2, 1u << 1);
    rc = amity_table_row(&t, head);
    for (size_t i = 0; rc == 0 && i < acc->n; i++) {
        char val[64];
        const char *row[2] = { acc->t[i].key, val };
        amity_table_value(acc->t[i].key, acc->t[i].value, val, sizeof(val));
        rc = amity_table_row(&t, row);
    }
    if (rc == 0) {
        rc = amity_table_render(&t, 0, out);
    }
    amity_table_clear(&t);
    return rc;
}

/*  --rejects: each record as a JSON line, or a table row. */
typedef struct {
    bool table;      /* rows into t, else lines to stdout */
    amity_table_t t; /* time, office, id, reason */
    amity_buf_t line;
    size_t n;    /* records seen */
    bool broken; /* stdout failed */
} s_rejects_t;

static int
s_on_reject(void *arg, const amity_reject_t *r)
{
    s_rejects_t *s = arg;
    char when[40];
    int rc;

    s->n++;
    if (s->table) {
        const char *row[4] = { when, r->office, r->id[0] ? r->id : "-", r->why };
        /* the table shows seconds; JSON keeps the milliseconds */
        size_t n = amity_time_iso(r->ts_ms, when, sizeof(when));
        if (n >= 5) {
            when[n - 5] = 'Z';
            when[n - 4] = '\0';
        }
        return amity_table_row(&s->t, row);
    }
    amity_buf_reset(&s->line);
    rc = amity_reject_json(r, &s->line);
    if (rc == 0) {
        rc = amity_buf_append(&s->line, "\n", 1);
    }
    if (rc != 0) {
        return rc;
    }
    if (fwrite(s->line.data, 1, s->line.len, stdout) != s->line.len) {
        s->broken = true;
        return AMITY_EIO;
    }
    return 0;
}

static int
s_list_rejects(const amity_cli_cfg_t *cfg, const amity_client_opts_t *opts, bool table,
               amity_buf_t *out)
{
    static const char *const head[4] = { "TIME", "OFFICE", "ID", "REASON" };
    s_rejects_t s;
    int rc;

    memset(&s, 0, sizeof(s));
    s.table = table;
    amity_buf_init(&s.line);
    amity_table_init(&s.t, 4, 0);
    rc = amity_table_row(&s.t, head);
    if (rc == 0) {
        rc = amity_rejects(opts, cfg->office, s_on_reject, &s, (int)cfg->timeout_ms);
    }
    if (rc == 0 && table) {
        rc = amity_table_render(&s.t, 0, out);
    }
    if (rc == 0) {
        amity_log_info("%zu rejected records", s.n);
    }
    amity_table_clear(&s.t);
    amity_buf_clear(&s.line);
    return rc;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    s_acc_t acc = { NULL, 0, 0 };
    s_flags_t flags = { false, false };
    amity_buf_t out;
    char **args;
    int n_args;
    uint64_t seq = 0;
    int exit_code = 0;
    int rc;

    s_split_flags(&argc, argv, &flags);
    r = amity_cli_load("amity-query", s_summary, "5000", &cfg, &opts, argc, argv, &args, &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (flags.rejects ? n_args != 0 : n_args != 1) {
        (void)fprintf(stderr, flags.rejects
                                  ? "amity-query: --rejects takes no PREFIX; see --help\n"
                                  : "amity-query: expected one PREFIX (\"\" for everything); "
                                    "see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    amity_buf_init(&out);
    if (flags.rejects) {
        rc = s_list_rejects(&cfg, &opts, flags.table, &out);
    } else {
        rc = amity_query(&opts, args[0], s_collect, &acc, &seq, (int)cfg.timeout_ms);
        if (rc == 0) {
            rc = flags.table ? s_totals_table(&acc, &out)
                             : amity_totals_json(acc.t, acc.n, true, &out);
            if (rc == 0 && !flags.table) {
                rc = amity_buf_append(&out, "\n", 1);
            }
        }
        if (rc == 0) {
            amity_log_info("%zu totals at seq %llu", acc.n, (unsigned long long)seq);
        }
    }
    if (rc == 0) {
        if ((out.len > 0 && fwrite(out.data, 1, out.len, stdout) != out.len) ||
            fflush(stdout) != 0) {
            exit_code = AMITY_EXIT_RUNTIME;
        }
    } else if (rc == AMITY_EAGAIN) {
        (void)fprintf(stderr, "amity-query: notify at %s did not answer within %lld ms\n",
                      opts.notify, (long long)cfg.timeout_ms);
        exit_code = S_EXIT_UNREACHABLE;
    } else {
        (void)fprintf(stderr, "amity-query: %s\n",
                      rc == AMITY_EINVAL ? "notify refused the request (the reason is logged above)"
                                         : amity_strerror(rc));
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
