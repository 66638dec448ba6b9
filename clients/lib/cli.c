/*  cli: the [client] option table shared by the client programs. */
#include <stddef.h>
#include <string.h>

#include "amity/log.h"
#include "cli.h"

#define S_N_OPTS 10

static amity_config_spec_t s_spec;
static amity_opt_t s_opts[S_N_OPTS];

/*  The key options, checked with the others (so before --check-config says
 *  OK): a missing or unreadable key file, or --key without --server-key, is
 *  a usage error (exit 2), not a failure once the program runs. */
static int
s_check(const void *p)
{
    const amity_cli_cfg_t *cfg = p;
    amity_client_opts_t opts;

    amity_client_opts_init(&opts);
    opts.key = cfg->key;
    opts.server_key = cfg->server_key;
    return amity_client_opts_check(&opts);
}

static void
s_build(const char *program, const char *summary, const char *timeout_default)
{
    const amity_opt_t opts[S_N_OPTS] = {
        { "ingest", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, ingest), AMITY_CLIENT_INGEST_DEFAULT,
          0, 0, "ingest endpoint (submit)" },
        { "notify", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, notify), AMITY_CLIENT_NOTIFY_DEFAULT,
          0, 0, "notify endpoint (query, subscribe)" },
        { "office", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, office), NULL, 0, 0,
          "development mode: the office to submit as (submit); query --rejects: list only "
          "this office's rejected records" },
        { "window", AMITY_OPT_INT, offsetof(amity_cli_cfg_t, window), "4096", 1, 1 << 20,
          "records in flight at most (submit)" },
        { "batch", AMITY_OPT_INT, offsetof(amity_cli_cfg_t, batch), "256", 1, 8192,
          "records per submit message at most (submit)" },
        { "timeout-ms", AMITY_OPT_INT, offsetof(amity_cli_cfg_t, timeout_ms), timeout_default, 1,
          3600000,
          "submit: resend a record without a verdict after T ms; "
          "query/subscribe: wait this long for notify" },
        { "deadline-s", AMITY_OPT_INT, offsetof(amity_cli_cfg_t, deadline_s), "120", 1, 86400 * 365,
          "submit: give up after S s without any answer from ingest" },
        { "key", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, key), NULL, 0, 0,
          "secure mode: our secret certificate (NAME_secret from amity-keygen)" },
        { "server-key", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, server_key), NULL, 0, 0,
          "secure mode: the server's public certificate (ingest's for submit, notify's for "
          "query and subscribe)" },
        { "log-level", AMITY_OPT_STR, offsetof(amity_cli_cfg_t, log_level), "warn", 0, 0,
          "error|warn|info|debug" },
    };

    memcpy(s_opts, opts, sizeof(s_opts));
    memset(&s_spec, 0, sizeof(s_spec));
    s_spec.program = program;
    s_spec.section = "client";
    s_spec.summary = summary;
    s_spec.opts = s_opts;
    s_spec.n_opts = S_N_OPTS;
    s_spec.allow_args = true;
    s_spec.check = s_check;
}

amity_config_result_t
amity_cli_load(const char *program, const char *summary, const char *timeout_default,
               amity_cli_cfg_t *cfg, amity_client_opts_t *opts, int argc, char **argv, char ***args,
               int *n_args)
{
    amity_config_result_t r;

    memset(cfg, 0, sizeof(*cfg));
    amity_log_init(program);
    s_build(program, summary, timeout_default);
    r = amity_config_load(&s_spec, cfg, argc, argv, args, n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r;
    }
    amity_client_opts_init(opts);
    opts->ingest = cfg->ingest;
    opts->notify = cfg->notify;
    opts->office = cfg->office;
    opts->window = (size_t)cfg->window;
    opts->batch = (size_t)cfg->batch;
    opts->timeout_ms = (int)cfg->timeout_ms;
    opts->deadline_ms = cfg->deadline_s * 1000;
    opts->key = cfg->key;
    opts->server_key = cfg->server_key;
    return r;
}

void
amity_cli_free(amity_cli_cfg_t *cfg)
{
    if (s_spec.opts != NULL) {
        amity_config_free(&s_spec, cfg);
    }
}

bool
amity_cli_take(int argc, char **argv, int *i, const char *name, const char **value)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);

    if (strncmp(arg, name, len) != 0) {
        return false;
    }
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return true;
    }
    if (arg[len] != '\0') {
        return false;
    }
    *value = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (*value != NULL) {
        (*i)++;
    }
    return true;
}
