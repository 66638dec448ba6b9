/*  aggregate: one shard of amity's state. Pulls `apply` messages from the
 *  validators, folds them into LMDB in batches (apply.h), and only after
 *  each durable commit publishes the verdicts (to ingest) and the changed
 *  totals (to notify); serves totals snapshots to notify.
 */
#ifndef AMITY_AGGREGATE_H
#define AMITY_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct aggregate aggregate_t;

/*  Options (section [aggregate]). */
typedef struct {
    char *bind;       /**< shard base endpoint tcp://HOST:PORT (PORT+0..+3 are bound) */
    int64_t index;    /**< this shard's position in the `shards` list */
    char *state;      /**< LMDB directory ("" = ./amity-state/shard-<index>) */
    int64_t batch;    /**< most records in one commit */
    int64_t batch_ms; /**< longest wait since the first pending record */
    bool no_sync;     /**< commits without fsync: benchmarks only */
    int64_t map_size; /**< initial LMDB map size in bytes (0 = store default) */
    char *key;        /**< own secret certificate ("" or NULL: no keys) */
    char *peers_dir;  /**< certificates of the services allowed to connect */
    char *log_level;  /**< error|warn|info|debug */
} aggregate_config_t;

/*  Checks cfg without opening anything (--check-config, and every start):
 *  key and peers-dir together, the ranges, the four endpoints derived from
 *  bind (amity_endpoint_offset +0..+3), bind loopback unless keys are set,
 *  the key (a secret certificate), the certificates in peers-dir, and the
 *  state directory (a writable directory, or creatable: its nearest
 *  existing ancestor is one). Logs what is wrong, naming the option.
 *  Returns 0 or AMITY_EINVAL. */
int aggregate_config_check(const aggregate_config_t *cfg);

/*  Opens the store, creates and binds the four sockets in ctx (borrowed)
 *  and polls sfd (from amity_signals_open, borrowed). With key and
 *  peers_dir (together) the four sockets are CURVE servers admitting the
 *  services whose certificates peers_dir holds (ZAP domain
 *  AMITY_ZAP_SERVICES); without them the base must be loopback. Returns 0,
 *  AMITY_EINVAL (bad option, key file or certificate directory: logged
 *  naming it and the option to set), AMITY_EIO, AMITY_ENOMEM. */
int aggregate_new(aggregate_t **out, void *ctx, int sfd, const aggregate_config_t *cfg);

/*  Runs the loop until SIGINT/SIGTERM (the pending batch is committed and
 *  published first); SIGHUP reloads peers_dir (apply messages from a key
 *  removed there are dropped from then on). Returns 0 on a clean stop,
 *  AMITY_EIO when the store or ZeroMQ failed (the supervisor should
 *  restart the shard). */
int aggregate_run(aggregate_t *self);

/*  Closes the sockets (linger AMITY_LINGER_MS) and the store. */
void aggregate_destroy(aggregate_t **self_p);

#endif
