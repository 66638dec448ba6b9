/*  test_store: the LMDB wrapper: commit and read back (also after reopen),
 *  aborted updates leave nothing, prefix scans and resumes, map growth
 *  inside one update, the map_size_max limit, snapshots, stat and copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/store.h"

enum { DB_RECORDS = 0, DB_TOTALS = 1 };

typedef struct {
    char dir[64];         /* mkdtemp directory, removed in teardown */
    char path[128];       /* dir/state/shard-0: the store (created by open) */
    amity_store_t *store; /* open store or NULL */
} state_t;

static void
s_opts(amity_store_opts_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->no_sync = true;
    opts->n_dbs = 2;
    opts->dbs[DB_RECORDS] = "records";
    opts->dbs[DB_TOTALS] = "totals";
}

/*  rm -r of the test's own directory tree. */
static void
s_remove_tree(const char *path)
{
    DIR *dir = opendir(path);
    if (dir) {
        struct dirent *e;
        while ((e = readdir(dir)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
                continue;
            }
            char child[512];
            (void)snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
            struct stat st;
            if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode)) {
                s_remove_tree(child);
            } else {
                unlink(child);
            }
        }
        closedir(dir);
    }
    rmdir(path);
}

static int
s_setup(void **state)
{
    state_t *st = calloc(1, sizeof(*st));
    if (!st) {
        return -1;
    }
    (void)snprintf(st->dir, sizeof(st->dir), "/tmp/amity-store-XXXXXX");
    if (!mkdtemp(st->dir)) {
        free(st);
        return -1;
    }
    (void)snprintf(st->path, sizeof(st->path), "%s/state/shard-0", st->dir);
    amity_store_opts_t opts;
    s_opts(&opts);
    if (amity_store_open(&st->store, st->path, &opts) != 0) {
        s_remove_tree(st->dir);
        free(st);
        return -1;
    }
    *state = st;
    return 0;
}

static int
s_teardown(void **state)
{
    state_t *st = *state;
    amity_store_destroy(&st->store);
    s_remove_tree(st->dir);
    free(st);
    return 0;
}

/* ---- transaction bodies ---------------------------------------------- */

typedef struct {
    const char *key;
    const char *value;
    int db;
    int result;  /* what fn returns after its puts */
    int n_calls; /* how often fn ran */
} put_arg_t;

static int
s_put_fn(amity_txn_t *txn, void *arg)
{
    put_arg_t *a = arg;
    a->n_calls++;
    int rc = amity_txn_put(txn, a->db, a->key, strlen(a->key), a->value, strlen(a->value));
    if (rc != 0) {
        return rc;
    }
    return a->result;
}

static int
s_put(amity_store_t *store, int db, const char *key, const char *value)
{
    put_arg_t a = { key, value, db, 0, 0 };
    return amity_store_update(store, s_put_fn, &a);
}

typedef struct {
    int db;
    const char *key;
    amity_buf_t *out;
    int rc;
} get_arg_t;

static int
s_get_fn(amity_txn_t *txn, void *arg)
{
    get_arg_t *a = arg;
    a->rc = amity_txn_get(txn, a->db, a->key, strlen(a->key), a->out);
    return 0;
}

/*  Reads key in a view; returns the get's code, value in out. */
static int
s_get(amity_store_t *store, int db, const char *key, amity_buf_t *out)
{
    get_arg_t a = { db, key, out, 0 };
    assert_int_equal(amity_store_view(store, s_get_fn, &a), 0);
    return a.rc;
}

static void
s_assert_value(amity_store_t *store, int db, const char *key, const char *value)
{
    amity_buf_t buf;
    amity_buf_init(&buf);
    assert_int_equal(s_get(store, db, key, &buf), 0);
    assert_int_equal(buf.len, strlen(value));
    assert_memory_equal(buf.data, value, buf.len);
    amity_buf_clear(&buf);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_store_put_get(void **state)
{
    state_t *st = *state;
    assert_int_equal(s_put(st->store, DB_RECORDS, "hn-01", "v1"), 0);
    assert_int_equal(s_put(st->store, DB_TOTALS, "k", "8bytes!!"), 0);
    s_assert_value(st->store, DB_RECORDS, "hn-01", "v1");
    s_assert_value(st->store, DB_TOTALS, "k", "8bytes!!");

    /* the databases are separate */
    amity_buf_t buf;
    amity_buf_init(&buf);
    assert_int_equal(s_get(st->store, DB_RECORDS, "k", &buf), AMITY_ENOTFOUND);
    assert_int_equal(s_get(st->store, DB_TOTALS, "missing", &buf), AMITY_ENOTFOUND);
    amity_buf_clear(&buf);

    /* overwrite */
    assert_int_equal(s_put(st->store, DB_TOTALS, "k", "other"), 0);
    s_assert_value(st->store, DB_TOTALS, "k", "other");

    /* misuse is refused, not crashed on */
    put_arg_t bad_db = { "k", "v", 7, 0, 0 };
    assert_int_equal(amity_store_update(st->store, s_put_fn, &bad_db), AMITY_EINVAL);
    put_arg_t empty_key = { "", "v", DB_TOTALS, 0, 0 };
    assert_int_equal(amity_store_update(st->store, s_put_fn, &empty_key), AMITY_EINVAL);
    char long_key[600];
    memset(long_key, 'k', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    put_arg_t too_long = { long_key, "v", DB_TOTALS, 0, 0 };
    assert_int_equal(amity_store_update(st->store, s_put_fn, &too_long), AMITY_EINVAL);
}

static int
s_put_in_view_fn(amity_txn_t *txn, void *arg)
{
    return amity_txn_put(txn, DB_TOTALS, "k", 1, "v", 1);
}

static int
s_del_fn(amity_txn_t *txn, void *arg)
{
    const char *key = arg;
    return amity_txn_del(txn, DB_TOTALS, key, strlen(key));
}

static void
test_store_delete(void **state)
{
    state_t *st = *state;
    assert_int_equal(s_put(st->store, DB_TOTALS, "gone", "soon"), 0);
    assert_int_equal(amity_store_update(st->store, s_del_fn, "gone"), 0);
    amity_buf_t buf;
    amity_buf_init(&buf);
    assert_int_equal(s_get(st->store, DB_TOTALS, "gone", &buf), AMITY_ENOTFOUND);
    amity_buf_clear(&buf);
    assert_int_equal(amity_store_update(st->store, s_del_fn, "gone"), AMITY_ENOTFOUND);
    assert_int_equal(amity_store_view(st->store, s_put_in_view_fn, NULL), AMITY_EINVAL);
}

static void
test_store_reopen(void **state)
{
    state_t *st = *state;
    assert_int_equal(s_put(st->store, DB_RECORDS, "a", "1"), 0);
    assert_int_equal(s_put(st->store, DB_TOTALS, "b", "2"), 0);
    amity_store_destroy(&st->store);
    assert_null(st->store);
    amity_store_destroy(&st->store); /* idempotent */

    struct stat sb;
    assert_int_equal(stat(st->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    amity_store_opts_t opts;
    s_opts(&opts);
    opts.no_sync = false;
    assert_int_equal(amity_store_open(&st->store, st->path, &opts), 0);
    s_assert_value(st->store, DB_RECORDS, "a", "1");
    s_assert_value(st->store, DB_TOTALS, "b", "2");

    amity_store_stat_t stat_out;
    assert_int_equal(amity_store_stat(st->store, &stat_out), 0);
    assert_int_equal(stat_out.entries[DB_RECORDS], 1);
    assert_int_equal(stat_out.entries[DB_TOTALS], 1);
    assert_int_equal(stat_out.map_size, 64 * 1024 * 1024);
    assert_true(stat_out.used_bytes > 0 && stat_out.used_bytes < stat_out.map_size);
}

static void
test_store_bad_open(void **state)
{
    state_t *st = *state;
    amity_store_t *other = NULL;
    amity_store_opts_t opts;
    s_opts(&opts);
    opts.dbs[1] = NULL;
    assert_int_equal(amity_store_open(&other, st->path, &opts), AMITY_EINVAL);
    assert_null(other);
    s_opts(&opts);
    opts.map_size = (size_t)2 * 1024 * 1024;
    opts.map_size_max = (size_t)1024 * 1024;
    assert_int_equal(amity_store_open(&other, st->path, &opts), AMITY_EINVAL);

    char file[160];
    (void)snprintf(file, sizeof(file), "%s/plain-file", st->dir);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    (void)fclose(f);
    s_opts(&opts);
    assert_int_not_equal(amity_store_open(&other, file, &opts), 0);
    assert_null(other);
}

static void
test_store_fn_error_aborts(void **state)
{
    state_t *st = *state;
    put_arg_t a = { "never", "written", DB_TOTALS, AMITY_EPROTO, 0 };
    assert_int_equal(amity_store_update(st->store, s_put_fn, &a), AMITY_EPROTO);
    assert_int_equal(a.n_calls, 1);
    amity_buf_t buf;
    amity_buf_init(&buf);
    assert_int_equal(s_get(st->store, DB_TOTALS, "never", &buf), AMITY_ENOTFOUND);
    amity_buf_clear(&buf);

    /* a positive code aborts too */
    put_arg_t b = { "never", "written", DB_TOTALS, 3, 0 };
    assert_int_equal(amity_store_update(st->store, s_put_fn, &b), 3);
    amity_store_stat_t stat_out;
    assert_int_equal(amity_store_stat(st->store, &stat_out), 0);
    assert_int_equal(stat_out.entries[DB_TOTALS], 0);
}

typedef struct {
    char keys[32][16]; /* keys seen */
    int n;             /* how many */
    int stop_after;    /* return 1 after this many (0: never) */
    int fail_at;       /* return AMITY_EPROTO at this one (0: never) */
} scan_arg_t;

static int
s_scan_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    scan_arg_t *a = arg;
    assert_true(key_len < sizeof(a->keys[0]) && a->n < 32);
    memcpy(a->keys[a->n], key, key_len);
    a->keys[a->n][key_len] = '\0';
    /* every value equals its key */
    assert_int_equal(val_len, key_len);
    assert_memory_equal(val, key, key_len);
    a->n++;
    if (a->fail_at && a->n == a->fail_at) {
        return AMITY_EPROTO;
    }
    return (a->stop_after && a->n >= a->stop_after) ? 1 : 0;
}

typedef struct {
    const char *prefix;
    const char *after;
    scan_arg_t *scan;
} scan_call_t;

static int
s_scan_fn(amity_txn_t *txn, void *arg)
{
    scan_call_t *c = arg;
    return amity_txn_scan(txn, DB_TOTALS, c->prefix, strlen(c->prefix), c->after,
                          c->after ? strlen(c->after) : 0, s_scan_cb, c->scan);
}

static int
s_fill_fn(amity_txn_t *txn, void *arg)
{
    static const char *const keys[] = { "a",  "a/1", "a/2", "a/3", "a/4", "a/5",
                                        "a0", "b",   "b/1", "c/9", "a/10" };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        int rc = amity_txn_put(txn, DB_TOTALS, keys[i], strlen(keys[i]), keys[i], strlen(keys[i]));
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void
test_store_scan(void **state)
{
    state_t *st = *state;
    assert_int_equal(amity_store_update(st->store, s_fill_fn, NULL), 0);

    scan_arg_t all;
    memset(&all, 0, sizeof(all));
    scan_call_t c1 = { "", NULL, &all };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c1), 0);
    assert_int_equal(all.n, 11);
    assert_string_equal(all.keys[0], "a");
    assert_string_equal(all.keys[10], "c/9");

    scan_arg_t pre;
    memset(&pre, 0, sizeof(pre));
    scan_call_t c2 = { "a/", NULL, &pre };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c2), 0);
    assert_int_equal(pre.n, 6);
    assert_string_equal(pre.keys[0], "a/1");
    assert_string_equal(pre.keys[1], "a/10");
    assert_string_equal(pre.keys[5], "a/5");

    /* page through by two, resuming after the last key seen */
    char after[16] = "";
    int seen = 0;
    for (int page = 0; page < 10; page++) {
        scan_arg_t part;
        memset(&part, 0, sizeof(part));
        part.stop_after = 2;
        scan_call_t c = { "a/", page ? after : NULL, &part };
        assert_int_equal(amity_store_view(st->store, s_scan_fn, &c), 0);
        for (int i = 0; i < part.n; i++) {
            assert_string_equal(part.keys[i], pre.keys[seen + i]);
        }
        seen += part.n;
        if (part.n < 2) {
            break;
        }
        (void)snprintf(after, sizeof(after), "%s", part.keys[part.n - 1]);
    }
    assert_int_equal(seen, 6);

    /* `after` below the prefix starts at the prefix; above it, nothing */
    scan_arg_t low;
    memset(&low, 0, sizeof(low));
    scan_call_t c3 = { "b", "a/3", &low };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c3), 0);
    assert_int_equal(low.n, 2);
    assert_string_equal(low.keys[0], "b");
    scan_arg_t high;
    memset(&high, 0, sizeof(high));
    scan_call_t c4 = { "a/", "a0", &high };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c4), 0);
    assert_int_equal(high.n, 0);

    /* no match at all, and a failing callback */
    scan_arg_t none;
    memset(&none, 0, sizeof(none));
    scan_call_t c5 = { "zz", NULL, &none };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c5), 0);
    assert_int_equal(none.n, 0);
    scan_arg_t failing;
    memset(&failing, 0, sizeof(failing));
    failing.fail_at = 3;
    scan_call_t c6 = { "a", NULL, &failing };
    assert_int_equal(amity_store_view(st->store, s_scan_fn, &c6), AMITY_EPROTO);
    assert_int_equal(failing.n, 3);

    /* scans inside a write transaction see its own writes */
    scan_arg_t own;
    memset(&own, 0, sizeof(own));
    scan_call_t c7 = { "c/", NULL, &own };
    assert_int_equal(amity_store_update(st->store, s_scan_fn, &c7), 0);
    assert_int_equal(own.n, 1);
}

#define BIG_VALUE ((size_t)4 * 1024)

typedef struct {
    int n_values; /* values of BIG_VALUE bytes to write */
    int n_calls;  /* runs of fn */
    int saw_full; /* runs that met AMITY_EFULL */
} bulk_arg_t;

static void
s_fill_value(uint8_t *value, int i)
{
    for (size_t j = 0; j < BIG_VALUE; j++) {
        value[j] = (uint8_t)(i * 31 + (int)j);
    }
}

static int
s_bulk_fn(amity_txn_t *txn, void *arg)
{
    bulk_arg_t *a = arg;
    a->n_calls++;
    uint8_t value[BIG_VALUE];
    for (int i = 0; i < a->n_values; i++) {
        char key[32];
        int key_len = snprintf(key, sizeof(key), "big/%06d", i);
        s_fill_value(value, i);
        int rc = amity_txn_put(txn, DB_RECORDS, key, (size_t)key_len, value, sizeof(value));
        if (rc == AMITY_EFULL) {
            a->saw_full++;
            /* the txn is dead now: every later call says so too */
            assert_int_equal(amity_txn_put(txn, DB_RECORDS, "x", 1, "y", 1), AMITY_EFULL);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static void
test_store_map_growth(void **state)
{
    state_t *st = *state;
    amity_store_destroy(&st->store);
    s_remove_tree(st->dir);

    amity_store_opts_t opts;
    s_opts(&opts);
    opts.map_size = (size_t)64 * 1024;
    opts.map_size_max = (size_t)256 * 1024 * 1024;
    assert_int_equal(amity_store_open(&st->store, st->path, &opts), 0);
    amity_store_stat_t before;
    assert_int_equal(amity_store_stat(st->store, &before), 0);
    assert_int_equal(before.map_size, 64 * 1024);

    bulk_arg_t a = { 1024, 0, 0 }; /* 4 MiB in one transaction */
    assert_int_equal(amity_store_update(st->store, s_bulk_fn, &a), 0);
    assert_true(a.n_calls > 1);
    assert_int_equal(a.saw_full, a.n_calls - 1);

    amity_store_stat_t after;
    assert_int_equal(amity_store_stat(st->store, &after), 0);
    assert_true(after.map_size >= (size_t)4 * 1024 * 1024);
    assert_true(after.map_size <= opts.map_size_max);
    assert_true(after.used_bytes <= after.map_size);
    assert_int_equal(after.entries[DB_RECORDS], 1024);

    /* every value intact, also after a reopen */
    for (int round = 0; round < 2; round++) {
        uint8_t expect[BIG_VALUE];
        amity_buf_t buf;
        amity_buf_init(&buf);
        for (int i = 0; i < 1024; i += 97) {
            char key[32];
            (void)snprintf(key, sizeof(key), "big/%06d", i);
            assert_int_equal(s_get(st->store, DB_RECORDS, key, &buf), 0);
            s_fill_value(expect, i);
            assert_int_equal(buf.len, BIG_VALUE);
            assert_memory_equal(buf.data, expect, BIG_VALUE);
        }
        amity_buf_clear(&buf);
        amity_store_destroy(&st->store);
        assert_int_equal(amity_store_open(&st->store, st->path, &opts), 0);
    }
    /* reopened with the small configured size, it starts big enough */
    amity_store_stat_t reopened;
    assert_int_equal(amity_store_stat(st->store, &reopened), 0);
    assert_true(reopened.map_size > reopened.used_bytes);
    assert_int_equal(s_put(st->store, DB_TOTALS, "after", "reopen"), 0);
}

static void
test_store_map_max(void **state)
{
    state_t *st = *state;
    amity_store_destroy(&st->store);
    s_remove_tree(st->dir);

    amity_store_opts_t opts;
    s_opts(&opts);
    opts.map_size = (size_t)64 * 1024;
    opts.map_size_max = (size_t)512 * 1024;
    assert_int_equal(amity_store_open(&st->store, st->path, &opts), 0);

    bulk_arg_t a = { 256, 0, 0 }; /* 1 MiB: can never fit */
    assert_int_equal(amity_store_update(st->store, s_bulk_fn, &a), AMITY_EFULL);
    assert_true(a.n_calls >= 3); /* 64 -> 128 -> 256 -> 512 KiB, then give up */
    amity_store_stat_t stat_out;
    assert_int_equal(amity_store_stat(st->store, &stat_out), 0);
    assert_int_equal(stat_out.map_size, 512 * 1024);
    assert_int_equal(stat_out.entries[DB_RECORDS], 0);

    /* still usable for what fits */
    bulk_arg_t small = { 8, 0, 0 };
    assert_int_equal(amity_store_update(st->store, s_bulk_fn, &small), 0);
    assert_int_equal(small.n_calls, 1);
    s_put(st->store, DB_TOTALS, "k", "v");
    s_assert_value(st->store, DB_TOTALS, "k", "v");
}

typedef struct {
    amity_store_t *store;
    int update_rc;
    char first[16];
    char second[16];
} snapshot_arg_t;

static int
s_snapshot_fn(amity_txn_t *txn, void *arg)
{
    snapshot_arg_t *a = arg;
    amity_buf_t buf;
    amity_buf_init(&buf);
    assert_int_equal(amity_txn_get(txn, DB_TOTALS, "k", 1, &buf), 0);
    (void)snprintf(a->first, sizeof(a->first), "%.*s", (int)buf.len, (const char *)buf.data);
    /* a commit while this read transaction is open (MDB_NOTLS allows it) */
    a->update_rc = s_put(a->store, DB_TOTALS, "k", "new");
    assert_int_equal(amity_txn_get(txn, DB_TOTALS, "k", 1, &buf), 0);
    (void)snprintf(a->second, sizeof(a->second), "%.*s", (int)buf.len, (const char *)buf.data);
    amity_buf_clear(&buf);
    return 0;
}

static void
test_store_view_snapshot(void **state)
{
    state_t *st = *state;
    assert_int_equal(s_put(st->store, DB_TOTALS, "k", "old"), 0);
    snapshot_arg_t a;
    memset(&a, 0, sizeof(a));
    a.store = st->store;
    assert_int_equal(amity_store_view(st->store, s_snapshot_fn, &a), 0);
    assert_int_equal(a.update_rc, 0);
    assert_string_equal(a.first, "old");
    assert_string_equal(a.second, "old");
    s_assert_value(st->store, DB_TOTALS, "k", "new");
}

static void
test_store_copy(void **state)
{
    state_t *st = *state;
    assert_int_equal(s_put(st->store, DB_RECORDS, "r", "1"), 0);
    assert_int_equal(s_put(st->store, DB_TOTALS, "t", "2"), 0);
    char dst[160];
    (void)snprintf(dst, sizeof(dst), "%s/backup", st->dir);
    assert_int_equal(amity_store_copy(st->store, dst), 0);
    assert_int_equal(amity_store_copy(st->store, dst), AMITY_EINVAL); /* not over a copy */

    amity_store_t *copy = NULL;
    amity_store_opts_t opts;
    s_opts(&opts);
    assert_int_equal(amity_store_open(&copy, dst, &opts), 0);
    s_assert_value(copy, DB_RECORDS, "r", "1");
    s_assert_value(copy, DB_TOTALS, "t", "2");
    amity_store_destroy(&copy);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store_put_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_delete, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_reopen, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_bad_open, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_fn_error_aborts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_scan, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_map_growth, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_map_max, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_view_snapshot, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_store_copy, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
