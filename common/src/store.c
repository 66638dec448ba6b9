/*  store: the one module that touches LMDB (STYLE.md 5.7). One environment
 *  per directory, named databases opened once, writes through
 *  amity_store_update (which grows the map and re-runs the transaction
 *  when it fills), reads through amity_store_view. MDB codes become
 *  AMITY_E* here and never leave.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "amity/err.h"
#include "amity/log.h"
#include "amity/store.h"

#define S_MAP_SIZE_DEFAULT     ((size_t)64 * 1024 * 1024)
#define S_MAP_SIZE_MAX_DEFAULT ((size_t)1 << 40)
#define S_RESIZED_RETRIES      8

struct amity_store {
    MDB_env *env;                      /* the environment */
    MDB_dbi dbis[AMITY_STORE_DBS_MAX]; /* handles, by index into opts.dbs */
    size_t n_dbs;                      /* handles in dbis */
    size_t map_size;                   /* current map size */
    size_t map_size_max;               /* growth stops here */
    size_t page_size;                  /* LMDB page size (the OS page) */
    int n_views;                       /* read txns open: no remap meanwhile */
    char *dir;                         /* directory, for messages */
};

struct amity_txn {
    MDB_txn *txn;         /* the LMDB transaction */
    amity_store_t *store; /* owner: dbis, dir */
    bool read_only;       /* from amity_store_view */
    bool map_full;        /* a put hit MDB_MAP_FULL: the txn is dead */
};

/*  Maps an LMDB or errno code; logs what the mapping hides. */
static int
s_error(const amity_store_t *self, int rc, const char *what)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_NOTFOUND:
        return AMITY_ENOTFOUND;
    case MDB_MAP_FULL:
        return AMITY_EFULL; /* amity_store_update grows the map */
    case MDB_TXN_FULL:
        /* growing the map does not help: the batch is too big for one txn */
        amity_log_error("store %s: %s: %s", self ? self->dir : "?", what, mdb_strerror(rc));
        return AMITY_EFULL;
    case ENOMEM:
        return AMITY_ENOMEM;
    default:
        amity_log_error("store %s: %s: %s", self ? self->dir : "?", what, mdb_strerror(rc));
        return AMITY_EIO;
    }
}

/*  mkdir -p with mode for every missing component. */
static int
s_mkdir_p(const char *path, mode_t mode)
{
    size_t len = strlen(path);
    char *copy = malloc(len + 1);
    if (!copy) {
        return AMITY_ENOMEM;
    }
    memcpy(copy, path, len + 1);
    int rc = 0;
    for (char *p = copy + 1;; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char saved = *p;
        *p = '\0';
        if (mkdir(copy, mode) != 0 && errno != EEXIST) {
            amity_log_errno("store: cannot create directory %s", copy);
            rc = AMITY_EIO;
            goto out;
        }
        *p = saved;
        if (saved == '\0') {
            break;
        }
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        amity_log_error("store: %s is not a directory", path);
        rc = AMITY_EINVAL;
    }
out:
    free(copy);
    return rc;
}

static size_t
s_round_up(size_t n, size_t unit)
{
    return (n + unit - 1) / unit * unit;
}

/*  Re-reads the map size LMDB actually uses (it rounds and never goes
 *  below the data already written). */
static void
s_refresh_map_size(amity_store_t *self)
{
    MDB_envinfo info;
    if (mdb_env_info(self->env, &info) == 0) {
        self->map_size = info.me_mapsize;
    }
}

/*  Another process grew the map: adopt its size (size 0 = the one in the
 *  file). Only when no transaction of ours is open. */
static int
s_adopt_map_size(amity_store_t *self)
{
    int rc = mdb_env_set_mapsize(self->env, 0);
    if (rc != 0) {
        return s_error(self, rc, "adopting the grown map size");
    }
    s_refresh_map_size(self);
    return 0;
}

/*  Doubles the map, up to map_size_max. Returns 0, AMITY_EFULL, AMITY_EIO. */
static int
s_grow(amity_store_t *self)
{
    if (self->map_size >= self->map_size_max) {
        amity_log_error("store %s: map full at %zu bytes (map_size_max)", self->dir,
                        self->map_size);
        return AMITY_EFULL;
    }
    if (self->n_views > 0) {
        /* remapping would pull the pages from under an open read txn */
        amity_log_error("store %s: map full at %zu bytes and a read transaction is open", self->dir,
                        self->map_size);
        return AMITY_EFULL;
    }
    size_t size = self->map_size > self->map_size_max / 2 ? self->map_size_max : self->map_size * 2;
    size = s_round_up(size, self->page_size);
    int rc = mdb_env_set_mapsize(self->env, size);
    if (rc != 0) {
        return s_error(self, rc, "growing the map");
    }
    size_t old = self->map_size;
    s_refresh_map_size(self);
    amity_log_info("store %s: map grown from %zu to %zu bytes", self->dir, old, self->map_size);
    return 0;
}

/*  Begins a transaction, adopting a map grown by another process. */
static int
s_txn_begin(amity_store_t *self, unsigned int flags, MDB_txn **txn)
{
    int rc = 0;
    for (int attempt = 0; attempt < S_RESIZED_RETRIES; attempt++) {
        rc = mdb_txn_begin(self->env, NULL, flags, txn);
        if (rc != MDB_MAP_RESIZED) {
            break;
        }
        if (self->n_views > 0) {
            break;
        }
        int arc = s_adopt_map_size(self);
        if (arc != 0) {
            return arc;
        }
    }
    return rc == 0 ? 0 : s_error(self, rc, "beginning a transaction");
}

static int
s_open_dbs(amity_store_t *self, const amity_store_opts_t *opts)
{
    MDB_txn *txn = NULL;
    int rc = s_txn_begin(self, 0, &txn);
    if (rc != 0) {
        return rc;
    }
    if (opts->n_dbs == 0) {
        /* no names: index 0 is the environment's main database */
        int mrc = mdb_dbi_open(txn, NULL, 0, &self->dbis[0]);
        if (mrc != 0) {
            mdb_txn_abort(txn);
            return s_error(self, mrc, "opening the main database");
        }
        self->n_dbs = 1;
    }
    for (size_t i = 0; i < opts->n_dbs; i++) {
        int mrc = mdb_dbi_open(txn, opts->dbs[i], MDB_CREATE, &self->dbis[i]);
        if (mrc != 0) {
            mdb_txn_abort(txn);
            char what[128];
            (void)snprintf(what, sizeof(what), "opening database %s", opts->dbs[i]);
            return s_error(self, mrc, what);
        }
        self->n_dbs = i + 1;
    }
    int mrc = mdb_txn_commit(txn); /* frees txn, also on failure */
    if (mrc != 0) {
        return s_error(self, mrc, "committing the database handles");
    }
    return 0;
}

int
amity_store_open(amity_store_t **out, const char *dir, const amity_store_opts_t *opts)
{
    AMITY_ASSERT(out);
    *out = NULL;
    amity_store_opts_t none;
    memset(&none, 0, sizeof(none));
    if (!opts) {
        opts = &none;
    }
    if (!dir || !*dir) {
        amity_log_error("store: no directory given");
        return AMITY_EINVAL;
    }
    if (opts->n_dbs > AMITY_STORE_DBS_MAX) {
        amity_log_error("store %s: %zu databases requested, at most %d", dir, opts->n_dbs,
                        AMITY_STORE_DBS_MAX);
        return AMITY_EINVAL;
    }
    for (size_t i = 0; i < opts->n_dbs; i++) {
        if (!opts->dbs[i] || !*opts->dbs[i]) {
            amity_log_error("store %s: database %zu has no name", dir, i);
            return AMITY_EINVAL;
        }
    }
    long page = sysconf(_SC_PAGESIZE);
    size_t page_size = page > 0 ? (size_t)page : 4096;
    size_t map_size = opts->map_size ? opts->map_size : S_MAP_SIZE_DEFAULT;
    size_t map_size_max = opts->map_size_max ? opts->map_size_max : S_MAP_SIZE_MAX_DEFAULT;
    map_size = s_round_up(map_size, page_size);
    map_size_max = s_round_up(map_size_max, page_size);
    if (map_size > map_size_max) {
        amity_log_error("store %s: map_size %zu is above map_size_max %zu", dir, map_size,
                        map_size_max);
        return AMITY_EINVAL;
    }

    int rc = s_mkdir_p(dir, 0700);
    if (rc != 0) {
        return rc;
    }
    amity_store_t *self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->dir = strdup(dir);
    if (!self->dir) {
        rc = AMITY_ENOMEM;
        goto fail;
    }
    self->page_size = page_size;
    self->map_size_max = map_size_max;

    /* a store that grew in an earlier run starts big enough for its data
     * plus the same headroom, instead of regrowing on the first write */
    char path[4096];
    struct stat st;
    if (snprintf(path, sizeof(path), "%s/data.mdb", dir) < (int)sizeof(path) &&
        stat(path, &st) == 0 && (size_t)st.st_size >= map_size) {
        size_t want = (size_t)st.st_size > map_size_max / 2 ? map_size_max : (size_t)st.st_size * 2;
        map_size = s_round_up(want, page_size);
    }

    int mrc = mdb_env_create(&self->env);
    if (mrc != 0) {
        self->env = NULL;
        rc = s_error(self, mrc, "creating the environment");
        goto fail;
    }
    mrc = mdb_env_set_maxdbs(self->env, AMITY_STORE_DBS_MAX);
    if (mrc == 0) {
        mrc = mdb_env_set_mapsize(self->env, map_size);
    }
    if (mrc != 0) {
        rc = s_error(self, mrc, "configuring the environment");
        goto fail;
    }
    unsigned int flags = MDB_NOTLS | (opts->no_sync ? MDB_NOSYNC : 0);
    mrc = mdb_env_open(self->env, dir, flags, 0600);
    if (mrc != 0) {
        rc = s_error(self, mrc, "opening the environment");
        if (rc != AMITY_ENOMEM) {
            rc = AMITY_EIO;
        }
        goto fail;
    }
    int dead = 0;
    mrc = mdb_reader_check(self->env, &dead);
    if (mrc != 0) {
        rc = s_error(self, mrc, "checking for stale readers");
        goto fail;
    }
    if (dead > 0) {
        amity_log_warn("store %s: cleared %d stale reader slot(s) left by dead processes", dir,
                       dead);
    }
    s_refresh_map_size(self);
    rc = s_open_dbs(self, opts);
    if (rc != 0) {
        if (rc == AMITY_ENOTFOUND || rc == AMITY_EFULL) {
            rc = AMITY_EIO;
        }
        goto fail;
    }
    *out = self;
    return 0;

fail:
    amity_store_destroy(&self);
    return rc;
}

void
amity_store_destroy(amity_store_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    amity_store_t *self = *self_p;
    if (self->env) {
        mdb_env_close(self->env);
    }
    free(self->dir);
    free(self);
    *self_p = NULL;
}

int
amity_store_update(amity_store_t *self, amity_txn_fn fn, void *arg)
{
    AMITY_ASSERT(self && fn);
    for (;;) {
        MDB_txn *mtxn = NULL;
        int rc = s_txn_begin(self, 0, &mtxn);
        if (rc != 0) {
            return rc;
        }
        amity_txn_t txn = { mtxn, self, false, false };
        rc = fn(&txn, arg);
        if (txn.map_full) {
            /* whatever fn made of it, the txn died of a full map */
            mdb_txn_abort(mtxn);
        } else if (rc != 0) {
            mdb_txn_abort(mtxn);
            return rc;
        } else {
            int mrc = mdb_txn_commit(mtxn); /* frees mtxn, even when it fails */
            if (mrc == 0) {
                return 0;
            }
            if (mrc != MDB_MAP_FULL) {
                return s_error(self, mrc, "committing");
            }
        }
        rc = s_grow(self);
        if (rc != 0) {
            return rc;
        }
    }
}

int
amity_store_view(amity_store_t *self, amity_txn_fn fn, void *arg)
{
    AMITY_ASSERT(self && fn);
    MDB_txn *mtxn = NULL;
    int rc = s_txn_begin(self, MDB_RDONLY, &mtxn);
    if (rc != 0) {
        return rc;
    }
    amity_txn_t txn = { mtxn, self, true, false };
    self->n_views++;
    rc = fn(&txn, arg);
    self->n_views--;
    mdb_txn_abort(mtxn);
    return rc;
}

static int
s_dbi(const amity_txn_t *txn, int db, MDB_dbi *out)
{
    if (db < 0 || (size_t)db >= txn->store->n_dbs) {
        amity_log_error("store %s: no database with index %d", txn->store->dir, db);
        return AMITY_EINVAL;
    }
    *out = txn->store->dbis[db];
    return 0;
}

static int
s_key_check(const amity_txn_t *txn, size_t key_len)
{
    if (key_len == 0 || key_len > (size_t)mdb_env_get_maxkeysize(txn->store->env)) {
        amity_log_error("store %s: key of %zu bytes (must be 1..%d)", txn->store->dir, key_len,
                        mdb_env_get_maxkeysize(txn->store->env));
        return AMITY_EINVAL;
    }
    return 0;
}

int
amity_txn_get(amity_txn_t *txn, int db, const void *key, size_t key_len, amity_buf_t *out)
{
    AMITY_ASSERT(txn && out && (key || key_len == 0));
    MDB_dbi dbi;
    int rc = s_dbi(txn, db, &dbi);
    if (rc != 0) {
        return rc;
    }
    if (txn->map_full) {
        return AMITY_EFULL;
    }
    if (key_len == 0) {
        return AMITY_ENOTFOUND; /* LMDB holds no empty keys */
    }
    MDB_val k = { key_len, (void *)(uintptr_t)key };
    MDB_val v;
    int mrc = mdb_get(txn->txn, dbi, &k, &v);
    if (mrc != 0) {
        return s_error(txn->store, mrc, "get");
    }
    return amity_buf_set(out, v.mv_data, v.mv_size);
}

int
amity_txn_put(amity_txn_t *txn, int db, const void *key, size_t key_len, const void *val,
              size_t val_len)
{
    AMITY_ASSERT(txn && (key || key_len == 0) && (val || val_len == 0));
    MDB_dbi dbi;
    int rc = s_dbi(txn, db, &dbi);
    if (rc != 0) {
        return rc;
    }
    if (txn->read_only) {
        amity_log_error("store %s: put in a read-only transaction", txn->store->dir);
        return AMITY_EINVAL;
    }
    if (txn->map_full) {
        return AMITY_EFULL;
    }
    rc = s_key_check(txn, key_len);
    if (rc != 0) {
        return rc;
    }
    MDB_val k = { key_len, (void *)(uintptr_t)key };
    MDB_val v = { val_len, (void *)(uintptr_t)val };
    int mrc = mdb_put(txn->txn, dbi, &k, &v, 0);
    if (mrc == MDB_MAP_FULL) {
        txn->map_full = true;
    }
    return mrc == 0 ? 0 : s_error(txn->store, mrc, "put");
}

int
amity_txn_del(amity_txn_t *txn, int db, const void *key, size_t key_len)
{
    AMITY_ASSERT(txn && (key || key_len == 0));
    MDB_dbi dbi;
    int rc = s_dbi(txn, db, &dbi);
    if (rc != 0) {
        return rc;
    }
    if (txn->read_only) {
        amity_log_error("store %s: delete in a read-only transaction", txn->store->dir);
        return AMITY_EINVAL;
    }
    if (txn->map_full) {
        return AMITY_EFULL;
    }
    if (key_len == 0) {
        return AMITY_ENOTFOUND;
    }
    MDB_val k = { key_len, (void *)(uintptr_t)key };
    int mrc = mdb_del(txn->txn, dbi, &k, NULL);
    if (mrc == MDB_MAP_FULL) {
        txn->map_full = true; /* a delete can need fresh pages too (copy-on-write) */
    }
    return mrc == 0 ? 0 : s_error(txn->store, mrc, "delete");
}

/*  LMDB's default key order: bytes, then length. */
static int
s_key_cmp(const void *a, size_t a_len, const void *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return a_len < b_len ? -1 : (a_len > b_len ? 1 : 0);
}

int
amity_txn_scan(amity_txn_t *txn, int db, const void *prefix, size_t prefix_len, const void *after,
               size_t after_len, amity_scan_fn cb, void *arg)
{
    AMITY_ASSERT(txn && cb && (prefix || prefix_len == 0));
    MDB_dbi dbi;
    int rc = s_dbi(txn, db, &dbi);
    if (rc != 0) {
        return rc;
    }
    if (txn->map_full) {
        return AMITY_EFULL;
    }
    MDB_cursor *cursor = NULL;
    int mrc = mdb_cursor_open(txn->txn, dbi, &cursor);
    if (mrc != 0) {
        return s_error(txn->store, mrc, "opening a cursor");
    }

    /* start at the larger of prefix and after; skip after itself */
    MDB_val k = { 0, NULL };
    MDB_val v = { 0, NULL };
    bool skip_equal = false;
    MDB_cursor_op op = MDB_FIRST;
    if (after && after_len > 0 && s_key_cmp(after, after_len, prefix, prefix_len) >= 0) {
        k.mv_size = after_len;
        k.mv_data = (void *)(uintptr_t)after;
        op = MDB_SET_RANGE;
        skip_equal = true;
    } else if (prefix_len > 0) {
        k.mv_size = prefix_len;
        k.mv_data = (void *)(uintptr_t)prefix;
        op = MDB_SET_RANGE;
    }
    mrc = mdb_cursor_get(cursor, &k, &v, op);
    if (mrc == 0 && skip_equal && s_key_cmp(k.mv_data, k.mv_size, after, after_len) == 0) {
        mrc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
    }
    while (mrc == 0) {
        if (prefix_len > 0 &&
            (k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len) != 0)) {
            break;
        }
        int crc = cb(k.mv_data, k.mv_size, v.mv_data, v.mv_size, arg);
        if (crc < 0) {
            rc = crc;
            goto out;
        }
        if (crc > 0) {
            goto out;
        }
        mrc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
    }
    if (mrc != 0 && mrc != MDB_NOTFOUND) {
        rc = s_error(txn->store, mrc, "scan");
    }
out:
    mdb_cursor_close(cursor);
    return rc;
}

int
amity_store_stat(amity_store_t *self, amity_store_stat_t *out)
{
    AMITY_ASSERT(self && out);
    memset(out, 0, sizeof(*out));
    MDB_envinfo info;
    MDB_stat env_stat;
    int mrc = mdb_env_info(self->env, &info);
    if (mrc == 0) {
        mrc = mdb_env_stat(self->env, &env_stat);
    }
    if (mrc != 0) {
        return s_error(self, mrc, "stat");
    }
    out->map_size = info.me_mapsize;
    out->used_bytes = (info.me_last_pgno + 1) * (size_t)env_stat.ms_psize;
    MDB_txn *txn = NULL;
    int rc = s_txn_begin(self, MDB_RDONLY, &txn);
    if (rc != 0) {
        return rc;
    }
    for (size_t i = 0; i < self->n_dbs; i++) {
        MDB_stat db_stat;
        mrc = mdb_stat(txn, self->dbis[i], &db_stat);
        if (mrc != 0) {
            rc = s_error(self, mrc, "stat of a database");
            break;
        }
        out->entries[i] = db_stat.ms_entries;
    }
    mdb_txn_abort(txn);
    return rc;
}

int
amity_store_copy(amity_store_t *self, const char *dst)
{
    AMITY_ASSERT(self && dst);
    int rc = s_mkdir_p(dst, 0700);
    if (rc != 0) {
        return rc;
    }
    int mrc = mdb_env_copy2(self->env, dst, MDB_CP_COMPACT);
    if (mrc == EEXIST) {
        amity_log_error("store %s: cannot copy to %s: it already holds a data.mdb", self->dir, dst);
        return AMITY_EINVAL;
    }
    return mrc == 0 ? 0 : s_error(self, mrc, "copy");
}
