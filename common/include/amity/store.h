/*  store: the one module that touches LMDB. A store is one LMDB
 *  environment (a directory) with named databases; writes go through
 *  amity_store_update, reads through amity_store_view. No MDB_val leaves
 *  this module: values are copied out, or lent to a callback for the span
 *  of the call only.
 */
#ifndef AMITY_STORE_H
#define AMITY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"

typedef struct amity_store amity_store_t;
typedef struct amity_txn amity_txn_t;

#define AMITY_STORE_DBS_MAX 8

typedef struct {
    size_t map_size;                      /**< initial map size in bytes (0 = 64 MiB) */
    size_t map_size_max;                  /**< growth stops here (0 = 1 TiB) */
    bool no_sync;                         /**< MDB_NOSYNC: tests and benchmarks only */
    size_t n_dbs;                         /**< named databases to open (created when missing) */
    const char *dbs[AMITY_STORE_DBS_MAX]; /**< their names */
} amity_store_opts_t;

/*  Opens (creating) the environment in directory dir (created, mode 0700,
 *  when missing), runs mdb_reader_check, opens every named database once.
 *  Returns 0, AMITY_EINVAL, AMITY_EIO (message logged). */
int amity_store_open(amity_store_t **out, const char *dir, const amity_store_opts_t *opts);
void amity_store_destroy(amity_store_t **self_p);

/*  Runs fn inside one write transaction and commits it durably. When the
 *  map is full, it aborts, doubles the map size and runs fn again from the
 *  start (so fn must reset any state it builds before touching the txn).
 *  fn returns 0 to commit, anything else to abort (that code is returned).
 *  Returns 0, fn's code, AMITY_EFULL (map at map_size_max), AMITY_EIO. */
typedef int (*amity_txn_fn)(amity_txn_t *txn, void *arg);
int amity_store_update(amity_store_t *self, amity_txn_fn fn, void *arg);

/*  Runs fn inside one read-only transaction (a consistent snapshot) and
 *  returns fn's code (or AMITY_EIO when no transaction could begin). An
 *  update run from inside fn cannot grow the map (AMITY_EFULL instead). */
int amity_store_view(amity_store_t *self, amity_txn_fn fn, void *arg);

/*  Database handles are indexes into opts.dbs. */
/*  Copies the value of key into out. Returns 0, AMITY_ENOTFOUND, AMITY_EIO. */
int amity_txn_get(amity_txn_t *txn, int db, const void *key, size_t key_len, amity_buf_t *out);
/*  Returns 0, AMITY_EFULL (map full: amity_store_update handles it),
 *  AMITY_EINVAL (key empty or longer than LMDB's 511 bytes, or a read-only
 *  transaction), AMITY_EIO. After AMITY_EFULL every later call on the txn
 *  returns AMITY_EFULL too: return it from fn. */
int amity_txn_put(amity_txn_t *txn, int db, const void *key, size_t key_len, const void *val,
                  size_t val_len);
/*  Returns 0 or AMITY_ENOTFOUND or AMITY_EIO. */
int amity_txn_del(amity_txn_t *txn, int db, const void *key, size_t key_len);

/*  Calls cb for every entry whose key starts with prefix (all when
 *  prefix_len is 0), in key order, starting after `after` when given
 *  (resumable scans). Key and value are lent for the call only. cb returns
 *  0 to go on, 1 to stop, negative to fail (returned). */
typedef int (*amity_scan_fn)(const void *key, size_t key_len, const void *val, size_t val_len,
                             void *arg);
int amity_txn_scan(amity_txn_t *txn, int db, const void *prefix, size_t prefix_len,
                   const void *after, size_t after_len, amity_scan_fn cb, void *arg);

/*  Statistics for operators and benchmarks. */
typedef struct {
    size_t map_size;                     /**< current map size */
    size_t used_bytes;                   /**< pages in use * page size */
    size_t entries[AMITY_STORE_DBS_MAX]; /**< entries per database */
} amity_store_stat_t;
int amity_store_stat(amity_store_t *self, amity_store_stat_t *out);

/*  Hot copy of the environment into directory dst (mdb_env_copy2 with
 *  compaction); dst is created when missing and must not hold a data.mdb
 *  (AMITY_EINVAL). Returns 0, AMITY_EINVAL, AMITY_EIO. */
int amity_store_copy(amity_store_t *self, const char *dst);

#endif
