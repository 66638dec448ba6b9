/*  amity-validate: checks offices' records and routes them to the aggregate
 *  shards (see validate.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/signals.h"
#include "amity/sock.h"

#include "validate.h"

typedef struct {
    amity_strlist_t ingest;      /* ingest work endpoints */
    amity_strlist_t shards;      /* shard base endpoints */
    char *tz;                    /* time zone of the date rule */
    char *key;                   /* own secret certificate */
    amity_strlist_t ingest_keys; /* ingests' public certificates */
    amity_strlist_t shard_keys;  /* shards' public certificates */
    char *log_level;             /* error|warn|info|debug */
} validate_cfg_t;

static const amity_opt_t s_opts[] = {
    { "ingest", AMITY_OPT_LIST, offsetof(validate_cfg_t, ingest), "tcp://127.0.0.1:7701", 0, 0,
      "ingest work endpoints to pull records from" },
    { "shards", AMITY_OPT_LIST, offsetof(validate_cfg_t, shards), "tcp://127.0.0.1:7710", 0, 0,
      "aggregate shard base endpoints, in shard order (apply goes to PORT+0)" },
    { "tz", AMITY_OPT_STR, offsetof(validate_cfg_t, tz), AMITY_DEFAULT_TZ, 0, 0,
      "time zone whose tomorrow is the latest allowed date" },
    { "key", AMITY_OPT_STR, offsetof(validate_cfg_t, key), NULL, 0, 0,
      "validate's secret certificate (NAME_secret from amity-keygen), for CURVE links" },
    { "ingest-keys", AMITY_OPT_LIST, offsetof(validate_cfg_t, ingest_keys), NULL, 0, 0,
      "the ingests' public certificates, in the order of --ingest (CURVE on work)" },
    { "shard-keys", AMITY_OPT_LIST, offsetof(validate_cfg_t, shard_keys), NULL, 0, 0,
      "the shards' public certificates, in the order of --shards (CURVE on apply)" },
    { "log-level", AMITY_OPT_STR, offsetof(validate_cfg_t, log_level), "info", 0, 0,
      "error, warn, info or debug" },
};

static void
s_opts_of(const validate_cfg_t *cfg, validate_opts_t *opts)
{
    opts->ingest = &cfg->ingest;
    opts->shards = &cfg->shards;
    opts->tz = cfg->tz;
    opts->key = cfg->key;
    opts->ingest_keys = &cfg->ingest_keys;
    opts->shard_keys = &cfg->shard_keys;
}

/* --check-config (and every start) checks what validate_new checks: the
 * endpoints, the time zone and the key files (logged naming them). */
static int
s_check(const void *p)
{
    validate_opts_t opts = { 0 };
    validate_t *validate = NULL;
    int rc;

    s_opts_of(p, &opts);
    rc = validate_new(&validate, &opts);
    validate_destroy(&validate);
    return rc;
}

static const amity_config_spec_t s_spec = {
    .program = "amity-validate",
    .section = "validate",
    .summary = "checks records against the rules and routes them to the shards",
    .opts = s_opts,
    .n_opts = sizeof s_opts / sizeof s_opts[0],
    .allow_args = false,
    .check = s_check,
};

int
main(int argc, char **argv)
{
    validate_cfg_t cfg = { 0 };
    validate_opts_t opts = { 0 };
    validate_t *validate = NULL;
    void *ctx = NULL;
    int sfd = -1;
    int code = AMITY_EXIT_CONFIG;
    int rc;

    amity_log_init("validate");
    switch (amity_config_load(&s_spec, &cfg, argc, argv, NULL, NULL)) {
    case AMITY_CONFIG_RUN:
        break;
    case AMITY_CONFIG_EXIT_OK:
        code = AMITY_EXIT_OK;
        goto out;
    default:
        goto out;
    }
    if (amity_log_set_level(cfg.log_level) != 0) {
        (void)fprintf(stderr, "amity-validate: log-level: '%s' is not error, warn, info or debug\n",
                      cfg.log_level);
        goto out;
    }
    s_opts_of(&cfg, &opts);
    rc = validate_new(&validate, &opts);
    if (rc != 0) {
        code = rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : AMITY_EXIT_RUNTIME;
        goto out;
    }

    code = AMITY_EXIT_RUNTIME;
    sfd = amity_signals_open(); /* before the context: its threads inherit the mask */
    if (sfd < 0) {
        amity_log_error("cannot open the signal fd");
        goto out;
    }
    if (amity_zmq_check() != 0) {
        goto out;
    }
    ctx = zmq_ctx_new();
    if (ctx == NULL) {
        amity_log_errno("zmq_ctx_new");
        goto out;
    }
    rc = validate_run(validate, ctx, sfd);
    code = rc == 0 ? AMITY_EXIT_OK : AMITY_EXIT_RUNTIME;

out:
    validate_destroy(&validate);
    if (ctx != NULL) {
        (void)zmq_ctx_term(ctx);
        amity_log_info("stopped code=%d", code);
    }
    amity_signals_close(&sfd);
    amity_config_free(&s_spec, &cfg);
    return code;
}
