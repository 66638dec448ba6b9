/*  amity-ingest: takes offices' records on a ROUTER, forwards them to the
 *  validators and routes the shards' verdicts back (see ingest.h).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <zmq.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/signals.h"
#include "amity/sock.h"

#include "ingest.h"

typedef struct {
    char *bind;                 /* client ROUTER endpoint */
    char *work;                 /* validator PUSH endpoint */
    amity_strlist_t shards;     /* shard base endpoints */
    int64_t max_msg;            /* ZMQ_MAXMSGSIZE for clients */
    char *key;                  /* own secret certificate */
    char *clients_dir;          /* offices' public certificates */
    char *peers_dir;            /* services' public certificates */
    amity_strlist_t shard_keys; /* shards' public certificates */
    char *log_level;            /* error|warn|info|debug */
} ingest_cfg_t;

static const amity_opt_t s_opts[] = {
    { "bind", AMITY_OPT_STR, offsetof(ingest_cfg_t, bind), "tcp://127.0.0.1:7700", 0, 0,
      "endpoint offices connect to (ROUTER)" },
    { "work", AMITY_OPT_STR, offsetof(ingest_cfg_t, work), "tcp://127.0.0.1:7701", 0, 0,
      "endpoint validators connect to (PUSH)" },
    { "shards", AMITY_OPT_LIST, offsetof(ingest_cfg_t, shards), "tcp://127.0.0.1:7710", 0, 0,
      "aggregate shard base endpoints, in shard order (verdicts come from PORT+1)" },
    { "max-msg", AMITY_OPT_INT, offsetof(ingest_cfg_t, max_msg), "4194304", 1024,
      INGEST_MAX_MSG_MAX, "largest client message in bytes" },
    { "key", AMITY_OPT_STR, offsetof(ingest_cfg_t, key), NULL, 0, 0,
      "ingest's secret certificate (NAME_secret from amity-keygen); with --clients-dir" },
    { "clients-dir", AMITY_OPT_STR, offsetof(ingest_cfg_t, clients_dir), NULL, 0, 0,
      "directory of the offices' public certificates: offices are their keys (CURVE)" },
    { "peers-dir", AMITY_OPT_STR, offsetof(ingest_cfg_t, peers_dir), NULL, 0, 0,
      "directory of the validators' public certificates: CURVE on the work endpoint" },
    { "shard-keys", AMITY_OPT_LIST, offsetof(ingest_cfg_t, shard_keys), NULL, 0, 0,
      "the shards' public certificates, in the order of --shards (CURVE on verdicts)" },
    { "log-level", AMITY_OPT_STR, offsetof(ingest_cfg_t, log_level), "info", 0, 0,
      "error, warn, info or debug" },
};

static void
s_opts_of(const ingest_cfg_t *cfg, ingest_opts_t *opts)
{
    opts->bind = cfg->bind;
    opts->work = cfg->work;
    opts->shards = &cfg->shards;
    opts->max_msg = cfg->max_msg;
    opts->key = cfg->key;
    opts->clients_dir = cfg->clients_dir;
    opts->peers_dir = cfg->peers_dir;
    opts->shard_keys = &cfg->shard_keys;
}

/* --check-config (and every start) checks what ingest_new checks: the
 * endpoints, the loopback rule and the key files (logged naming them). */
static int
s_check(const void *p)
{
    ingest_opts_t opts = { 0 };
    ingest_t *ingest = NULL;
    int rc;

    s_opts_of(p, &opts);
    rc = ingest_new(&ingest, &opts);
    ingest_destroy(&ingest);
    return rc;
}

static const amity_config_spec_t s_spec = {
    .program = "amity-ingest",
    .section = "ingest",
    .summary = "takes offices' records and returns a verdict per record",
    .opts = s_opts,
    .n_opts = sizeof s_opts / sizeof s_opts[0],
    .allow_args = false,
    .check = s_check,
};

int
main(int argc, char **argv)
{
    ingest_cfg_t cfg = { 0 };
    ingest_opts_t opts = { 0 };
    ingest_t *ingest = NULL;
    void *ctx = NULL;
    int sfd = -1;
    int code = AMITY_EXIT_CONFIG;
    int rc;

    amity_log_init("ingest");
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
        (void)fprintf(stderr, "amity-ingest: log-level: '%s' is not error, warn, info or debug\n",
                      cfg.log_level);
        goto out;
    }
    s_opts_of(&cfg, &opts);
    rc = ingest_new(&ingest, &opts);
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
    rc = ingest_run(ingest, ctx, sfd);
    code = rc == 0 ? AMITY_EXIT_OK : rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : AMITY_EXIT_RUNTIME;

out:
    ingest_destroy(&ingest);
    if (ctx != NULL) {
        (void)zmq_ctx_term(ctx);
        amity_log_info("stopped code=%d", code);
    }
    amity_signals_close(&sfd);
    amity_config_free(&s_spec, &cfg);
    return code;
}
