/*  notify: the daemon around the core. Binds a ROUTER for subscribers and
 *  queries, connects one SUB (totals, B+2) and one DEALER (snapshots, B+3)
 *  per aggregate shard, and runs one zmq_poll loop that feeds the core and
 *  flushes its outbox without ever blocking.
 */
#ifndef NOTIFY_H
#define NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "amity/config.h"

#define NOTIFY_DEFAULT_BIND   "tcp://127.0.0.1:7702"
#define NOTIFY_DEFAULT_SHARDS "tcp://127.0.0.1:7710"
#define NOTIFY_SHARD_TOTALS   2 /**< a shard's totals PUB is its base port + 2 */
#define NOTIFY_SHARD_SNAPSHOT 3 /**< its snapshot ROUTER is base port + 3 */

/*  Options (section [notify]). */
typedef struct {
    char *bind;                 /**< ROUTER endpoint for clients */
    amity_strlist_t shards;     /**< shard base endpoints, in index order */
    int64_t max_subscribers;    /**< subscribers at once */
    char *key;                  /**< own secret certificate ("" or NULL: no keys) */
    char *clients_dir;          /**< subscribers' public certificates: secure mode */
    amity_strlist_t shard_keys; /**< shards' public certificates, in index order */
    char *log_level;            /**< error|warn|info|debug */
} notify_config_t;

typedef struct notify notify_t;

/*  Checks the options beyond their types: key and clients-dir go together
 *  (secure mode: subscribers are their keys), without them bind must be
 *  loopback; shard-keys need key and one certificate per shard; every
 *  shard base must derive its endpoints. On failure returns AMITY_EINVAL
 *  with why naming the option (and the one to set). */
int notify_config_check(const notify_config_t *cfg, char *why, size_t why_len);

/*  Creates the sockets (ctx and the signal fd sfd are borrowed) and, with
 *  keys, the ZAP handler and the certificates, then binds and connects.
 *  Returns 0, AMITY_EINVAL (a key file or certificate directory cannot be
 *  read), AMITY_ENOMEM or AMITY_EIO (logged). */
int notify_new(notify_t **out, const notify_config_t *cfg, void *ctx, int sfd);

/*  Runs the loop until SIGINT/SIGTERM (returns 0) or a fatal failure
 *  (AMITY_EIO, AMITY_ENOMEM; logged). SIGHUP reloads the certificates and
 *  forgets subscribers whose key was removed. */
int notify_run(notify_t *self);

/*  Closes the sockets (linger AMITY_LINGER_MS) and frees. NULL-safe. */
void notify_destroy(notify_t **self_p);

#endif
