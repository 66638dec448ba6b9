/*  amity-notify: merges the aggregate shards' partial totals and serves
 *  them to subscribers (snapshot + sequenced updates) and queries.
 */
#include <stddef.h>
#include <stdio.h>

#include <zmq.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"
#include "amity/signals.h"
#include "amity/sock.h"
#include "notify.h"

static const amity_opt_t s_opts[] = {
    { "bind", AMITY_OPT_STR, offsetof(notify_config_t, bind), NOTIFY_DEFAULT_BIND, 0, 0,
      "ROUTER endpoint for subscribers and queries (loopback only without keys)" },
    { "shards", AMITY_OPT_LIST, offsetof(notify_config_t, shards), NOTIFY_DEFAULT_SHARDS, 0, 0,
      "aggregate shard base endpoints tcp://HOST:PORT, in index order" },
    { "max-subscribers", AMITY_OPT_INT, offsetof(notify_config_t, max_subscribers), "10000", 1,
      1000000, "most subscribers at once" },
    { "key", AMITY_OPT_STR, offsetof(notify_config_t, key), NULL, 0, 0,
      "notify's secret certificate (NAME_secret from amity-keygen); with --clients-dir" },
    { "clients-dir", AMITY_OPT_STR, offsetof(notify_config_t, clients_dir), NULL, 0, 0,
      "directory of the subscribers' public certificates: subscribers are their keys" },
    { "shard-keys", AMITY_OPT_LIST, offsetof(notify_config_t, shard_keys), NULL, 0, 0,
      "the shards' public certificates, in the order of --shards (CURVE on totals)" },
    { "log-level", AMITY_OPT_STR, offsetof(notify_config_t, log_level), "info", 0, 0,
      "error, warn, info or debug" },
};

/* --check-config (and every start): endpoints, keys, the loopback rule. */
static int
s_check(const void *cfg)
{
    char why[512];

    if (notify_config_check(cfg, why, sizeof(why)) != 0) {
        (void)fprintf(stderr, "amity-notify: %s\n", why);
        return AMITY_EINVAL;
    }
    return 0;
}

static const amity_config_spec_t s_spec = {
    .program = "amity-notify",
    .section = "notify",
    .summary = "merge the aggregate shards' totals and serve them to subscribers and queries",
    .opts = s_opts,
    .n_opts = sizeof(s_opts) / sizeof(s_opts[0]),
    .allow_args = false,
    .check = s_check,
};

int
main(int argc, char **argv)
{
    notify_config_t cfg = { 0 };
    notify_t *notify = NULL;
    char **args = NULL, why[512];
    int n_args = 0, sfd = -1, code = AMITY_EXIT_RUNTIME, rc;
    void *ctx = NULL;

    amity_log_init("notify");
    switch (amity_config_load(&s_spec, &cfg, argc, argv, &args, &n_args)) {
    case AMITY_CONFIG_RUN:
        break;
    case AMITY_CONFIG_EXIT_OK:
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_OK;
    default:
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_CONFIG;
    }
    if (amity_log_set_level(cfg.log_level) != 0) {
        (void)fprintf(stderr, "amity-notify: log-level: '%s' is not error, warn, info or debug\n",
                      cfg.log_level);
        code = AMITY_EXIT_CONFIG;
        goto out;
    }
    if (notify_config_check(&cfg, why, sizeof(why)) != 0) {
        (void)fprintf(stderr, "amity-notify: %s\n", why);
        code = AMITY_EXIT_CONFIG;
        goto out;
    }
    sfd = amity_signals_open();
    if (sfd < 0 || amity_zmq_check() != 0) {
        goto out;
    }
    ctx = zmq_ctx_new();
    if (!ctx) {
        amity_log_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto out;
    }
    rc = notify_new(&notify, &cfg, ctx, sfd);
    if (rc == AMITY_EINVAL) {
        code = AMITY_EXIT_CONFIG;
    } else if (rc == 0 && notify_run(notify) == 0) {
        code = AMITY_EXIT_OK;
    }

out:
    notify_destroy(&notify);
    if (ctx) {
        (void)zmq_ctx_term(ctx);
        amity_log_info("stopped");
    }
    amity_signals_close(&sfd);
    amity_config_free(&s_spec, &cfg);
    return code;
}
