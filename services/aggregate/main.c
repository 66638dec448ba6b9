/*  amity-aggregate: one shard of the totals; folds validated records into
 *  LMDB in batches and publishes verdicts and totals after each durable
 *  commit (see aggregate.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <zmq.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/signals.h"
#include "amity/sock.h"

#include "aggregate.h"

static const amity_opt_t s_opts[] = {
    { "bind", AMITY_OPT_STR, offsetof(aggregate_config_t, bind), "tcp://127.0.0.1:7710", 0, 0,
      "shard base endpoint tcp://HOST:PORT: apply PORT, verdicts +1, totals +2, snapshots +3" },
    { "index", AMITY_OPT_INT, offsetof(aggregate_config_t, index), "0", 0, 1023,
      "this shard's position in the shards list" },
    { "state", AMITY_OPT_STR, offsetof(aggregate_config_t, state), NULL, 0, 0,
      "LMDB directory (default ./amity-state/shard-INDEX)" },
    { "batch", AMITY_OPT_INT, offsetof(aggregate_config_t, batch), "4096", 1, 1000000,
      "most records in one commit" },
    { "batch-ms", AMITY_OPT_INT, offsetof(aggregate_config_t, batch_ms), "5", 0, 60000,
      "longest wait in ms since the first pending record before committing" },
    { "no-sync", AMITY_OPT_BOOL, offsetof(aggregate_config_t, no_sync), "false", 0, 0,
      "commit without fsync (benchmarks only: a crash can lose acknowledged records)" },
    { "map-size", AMITY_OPT_INT, offsetof(aggregate_config_t, map_size), "0", 0, (int64_t)1 << 40,
      "initial LMDB map size in bytes (0 = 64 MiB; grows when full)" },
    { "key", AMITY_OPT_STR, offsetof(aggregate_config_t, key), NULL, 0, 0,
      "the shard's secret certificate (NAME_secret from amity-keygen); with --peers-dir" },
    { "peers-dir", AMITY_OPT_STR, offsetof(aggregate_config_t, peers_dir), NULL, 0, 0,
      "directory of the public certificates of ingest, validate and notify: CURVE on all "
      "four sockets" },
    AMITY_OPT_LOG_LEVEL(aggregate_config_t, log_level),
};

/* --check-config (and every start): the loopback rule, the keys, the
 * endpoints and the state directory, without opening or binding anything. */
static int
s_check(const void *cfg)
{
    return aggregate_config_check(cfg);
}

static const amity_config_spec_t s_spec = {
    .program = "amity-aggregate",
    .section = "aggregate",
    .summary = "one aggregate shard: counts validated records, publishes verdicts and totals",
    .opts = s_opts,
    .n_opts = sizeof s_opts / sizeof s_opts[0],
    .allow_args = false,
    .check = s_check,
};

int
main(int argc, char **argv)
{
    aggregate_config_t cfg = { 0 };
    aggregate_t *agg = NULL;
    void *ctx = NULL;
    int sfd = -1;
    int code = AMITY_EXIT_CONFIG;

    amity_log_init("aggregate");
    switch (amity_config_load(&s_spec, &cfg, argc, argv, NULL, NULL)) {
    case AMITY_CONFIG_RUN:
        break;
    case AMITY_CONFIG_EXIT_OK:
        code = AMITY_EXIT_OK;
        goto out;
    default:
        goto out;
    }
    /* log-level is checked and applied by the loader */
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
    if (!ctx) {
        amity_log_errno("zmq_ctx_new");
        goto out;
    }
    int rc = aggregate_new(&agg, ctx, sfd, &cfg);
    if (rc < 0) {
        code = rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : AMITY_EXIT_RUNTIME;
        goto out;
    }
    rc = aggregate_run(agg);
    code = rc == 0 ? AMITY_EXIT_OK : AMITY_EXIT_RUNTIME;

out:
    aggregate_destroy(&agg); /* closes the sockets before the context ends */
    if (ctx) {
        (void)zmq_ctx_term(ctx);
        amity_log_info("stopped code=%d", code);
    }
    amity_signals_close(&sfd);
    amity_config_free(&s_spec, &cfg);
    return code;
}
