/*  test_map: the open-addressing map behind aggregate's coalescing and
 *  notify's merged totals: insert, find, upsert, reset, iterate 100k keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/map.h"

#define N_KEYS 100000

static int
s_setup(void **state)
{
    amity_map_t *map = NULL;
    if (amity_map_new(&map, sizeof(int64_t)) != 0) {
        return -1;
    }
    *state = map;
    return 0;
}

static int
s_teardown(void **state)
{
    amity_map_t *map = *state;
    amity_map_destroy(&map);
    assert_null(map);
    amity_map_destroy(&map); /* idempotent */
    return 0;
}

static size_t
s_key(char *buf, size_t size, int i)
{
    /* shaped like totals keys: long shared prefixes, short distinct tails */
    return (size_t)snprintf(buf, size, "2024-%02d/hn-%03d/death/VN-HN/amount.VND#%d", i % 12 + 1,
                            i % 257, i);
}

static void
test_map_insert_find(void **state)
{
    amity_map_t *map = *state;
    char key[128];
    for (int i = 0; i < N_KEYS; i++) {
        size_t len = s_key(key, sizeof(key), i);
        int inserted = -1;
        int64_t *v = amity_map_upsert(map, key, len, &inserted);
        assert_non_null(v);
        assert_int_equal(inserted, 1);
        assert_int_equal(*v, 0);
        assert_int_equal((uintptr_t)v % 8, 0);
        *v = i;
    }
    assert_int_equal(amity_map_size(map), N_KEYS);
    for (int i = 0; i < N_KEYS; i++) {
        size_t len = s_key(key, sizeof(key), i);
        int64_t *v = amity_map_find(map, key, len);
        assert_non_null(v);
        assert_int_equal(*v, i);
    }
    /* absent keys, including prefixes and extensions of present ones */
    assert_null(amity_map_find(map, "nope", 4));
    size_t len = s_key(key, sizeof(key), 5);
    assert_null(amity_map_find(map, key, len - 1));
    key[len] = 'x';
    assert_null(amity_map_find(map, key, len + 1));
}

static void
test_map_upsert(void **state)
{
    amity_map_t *map = *state;
    int inserted = -1;
    int64_t *v = amity_map_upsert(map, "k", 1, &inserted);
    assert_int_equal(inserted, 1);
    *v += 5;
    v = amity_map_upsert(map, "k", 1, &inserted);
    assert_int_equal(inserted, 0);
    *v += 7;
    assert_int_equal(*(int64_t *)amity_map_find(map, "k", 1), 12);
    assert_int_equal(amity_map_size(map), 1);

    /* byte-string keys: embedded NULs and the empty key are keys too */
    int64_t *a = amity_map_upsert(map, "a\0b", 3, NULL);
    int64_t *b = amity_map_upsert(map, "a\0c", 3, NULL);
    int64_t *e = amity_map_upsert(map, "", 0, NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(e);
    *a = 1;
    *b = 2;
    *e = 3;
    assert_int_equal(*(int64_t *)amity_map_find(map, "a\0b", 3), 1);
    assert_int_equal(*(int64_t *)amity_map_find(map, "a\0c", 3), 2);
    assert_int_equal(*(int64_t *)amity_map_find(map, "", 0), 3);
    assert_null(amity_map_find(map, "a", 1));
    assert_int_equal(amity_map_size(map), 4);
}

static void
test_map_reset(void **state)
{
    amity_map_t *map = *state;
    char key[128];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N_KEYS; i++) {
            size_t len = s_key(key, sizeof(key), i + round);
            int64_t *v = amity_map_upsert(map, key, len, NULL);
            assert_non_null(v);
            assert_int_equal(*v, 0); /* zeroed again after the reset */
            *v = -1 - i;
        }
        assert_int_equal(amity_map_size(map), N_KEYS);
        amity_map_reset(map);
        assert_int_equal(amity_map_size(map), 0);
        size_t len = s_key(key, sizeof(key), round);
        assert_null(amity_map_find(map, key, len));
        size_t pos = 0;
        assert_int_equal(amity_map_next(map, &pos, NULL, NULL, NULL), AMITY_ENOTFOUND);
    }
}

static void
test_map_iterate(void **state)
{
    amity_map_t *map = *state;
    char key[128];
    for (int i = 0; i < N_KEYS; i++) {
        size_t len = s_key(key, sizeof(key), i);
        int64_t *v = amity_map_upsert(map, key, len, NULL);
        assert_non_null(v);
        *v = i;
    }
    uint8_t *seen = calloc(N_KEYS, 1);
    assert_non_null(seen);
    size_t pos = 0;
    const char *k = NULL;
    size_t k_len = 0;
    void *value = NULL;
    size_t n = 0;
    while (amity_map_next(map, &pos, &k, &k_len, &value) == 0) {
        int64_t i = *(int64_t *)value;
        assert_true(i >= 0 && i < N_KEYS);
        assert_int_equal(seen[i], 0);
        seen[i] = 1;
        size_t len = s_key(key, sizeof(key), (int)i);
        assert_int_equal(k_len, len);
        assert_memory_equal(k, key, len);
        assert_int_equal(k[k_len], '\0');
        n++;
    }
    assert_int_equal(n, N_KEYS);
    free(seen);
}

static void
test_map_odd_value_size(void **state)
{
    amity_map_t *map = NULL;
    assert_int_equal(amity_map_new(&map, 12), 0);
    for (int i = 0; i < 1000; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "%d", i);
        uint8_t *v = amity_map_upsert(map, key, (size_t)len, NULL);
        assert_non_null(v);
        assert_int_equal((uintptr_t)v % 8, 0);
        for (int j = 0; j < 12; j++) {
            assert_int_equal(v[j], 0);
            v[j] = (uint8_t)(i + j);
        }
    }
    for (int i = 0; i < 1000; i++) {
        char key[16];
        int len = snprintf(key, sizeof(key), "%d", i);
        uint8_t *v = amity_map_find(map, key, (size_t)len);
        assert_non_null(v);
        for (int j = 0; j < 12; j++) {
            assert_int_equal(v[j], (uint8_t)(i + j));
        }
    }
    /* keys longer than an arena chunk */
    size_t big_len = (size_t)200 * 1024;
    char *big = malloc(big_len);
    assert_non_null(big);
    memset(big, 'z', big_len);
    assert_non_null(amity_map_upsert(map, big, big_len, NULL));
    assert_non_null(amity_map_find(map, big, big_len));
    free(big);
    amity_map_destroy(&map);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_map_insert_find, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_upsert, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_reset, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_iterate, s_setup, s_teardown),
        cmocka_unit_test(test_map_odd_value_size),
    };
    return cmocka_run_group_tests_name("map", tests, NULL, NULL);
}
