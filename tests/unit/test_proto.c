/*  test_proto: the wire format. The bounded pre-scan (every msgpack type,
 *  hostile length claims refused without large allocations, depth,
 *  truncation, trailing bytes), record fields, the canonical record, and a
 *  round trip plus every strict prefix of every message type. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/buf.h"
#include "amity/err.h"
#include "amity/proto.h"
#include "amity/record.h"

/* ------------------------------------------------------------------------
 * Allocation accounting through AddressSanitizer's hooks. The hooks are
 * process-wide callbacks with no user pointer, so their counters are
 * necessarily file-level state; they count only while s_alloc_tracking.
 */
#if defined(__SANITIZE_ADDRESS__)
#define S_HAVE_ALLOC_HOOKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define S_HAVE_ALLOC_HOOKS 1
#endif
#endif

#if defined(S_HAVE_ALLOC_HOOKS)
#if defined(__has_include)
#if __has_include(<sanitizer/allocator_interface.h>)
#include <sanitizer/allocator_interface.h>
#define S_HAVE_ALLOC_HEADER 1
#endif
#endif
#if !defined(S_HAVE_ALLOC_HEADER)
/* GCC 12 ships the runtime (libasan exports it) but not this header */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                              void (*free_hook)(const volatile void *));
#endif

static volatile bool s_alloc_tracking;
static volatile size_t s_alloc_total;
static volatile size_t s_alloc_largest;
static bool s_alloc_installed;

static void
s_on_malloc(const volatile void *p, size_t size)
{
    (void)p;
    if (s_alloc_tracking) {
        s_alloc_total += size;
        if (size > s_alloc_largest) {
            s_alloc_largest = size;
        }
    }
}

static void
s_on_free(const volatile void *p)
{
    (void)p;
}
#endif

/*  Starts counting allocations; false when the build has no hooks. */
static bool
s_alloc_begin(void)
{
#if defined(S_HAVE_ALLOC_HOOKS)
    if (!s_alloc_installed) {
        s_alloc_installed = __sanitizer_install_malloc_and_free_hooks(s_on_malloc, s_on_free) != 0;
    }
    s_alloc_total = 0;
    s_alloc_largest = 0;
    s_alloc_tracking = s_alloc_installed;
    return s_alloc_installed;
#else
    return false;
#endif
}

/*  Stops counting; asserts the total and the largest single allocation
 *  stayed within 64 bytes per input byte plus 64 KiB. */
static void
s_alloc_end(size_t input_len, const char *what)
{
#if defined(S_HAVE_ALLOC_HOOKS)
    s_alloc_tracking = false;
    size_t bound = 64 * input_len + (size_t)64 * 1024;
    if (s_alloc_total > bound || s_alloc_largest > bound) {
        fail_msg("%s: %zu input bytes allocated %zu in total, %zu at once (bound %zu)", what,
                 input_len, (size_t)s_alloc_total, (size_t)s_alloc_largest, bound);
    }
#else
    (void)input_len;
    (void)what;
#endif
}

/*  The meter itself: an allocation made while counting is seen. */
static void
test_proto_alloc_meter_works(void **state)
{
    (void)state;
#if defined(S_HAVE_ALLOC_HOOKS)
    assert_true(s_alloc_begin());
    void *p = malloc(100000);
    s_alloc_tracking = false;
    assert_non_null(p);
    free(p);
    assert_true(s_alloc_largest >= 100000);
    assert_true(s_alloc_total >= 100000);
#else
    skip();
#endif
}

/* ------------------------------------------------------------------------
 * A tiny msgpack writer, independent of proto, to build hostile and
 * hand-made input.
 */
static void
w_raw(amity_buf_t *b, const void *p, size_t n)
{
    assert_int_equal(amity_buf_append(b, p, n), 0);
}

static void
w_byte(amity_buf_t *b, unsigned c)
{
    uint8_t x = (uint8_t)c;
    w_raw(b, &x, 1);
}

static void
w_be(amity_buf_t *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        w_byte(b, (unsigned)((v >> (8 * i)) & 0xffu));
    }
}

/*  Appends bytes written as hex pairs, spaces ignored. */
static void
w_hex(amity_buf_t *b, const char *hex)
{
    unsigned hi = 0;
    int half = 0;
    for (const char *p = hex; *p; p++) {
        unsigned v;
        if (*p >= '0' && *p <= '9') {
            v = (unsigned)(*p - '0');
        } else if (*p >= 'a' && *p <= 'f') {
            v = (unsigned)(*p - 'a' + 10);
        } else if (*p >= 'A' && *p <= 'F') {
            v = (unsigned)(*p - 'A' + 10);
        } else {
            continue;
        }
        if (half) {
            w_byte(b, (hi << 4) | v);
        } else {
            hi = v;
        }
        half = !half;
    }
}

static void
w_map(amity_buf_t *b, uint32_t n)
{
    if (n < 16) {
        w_byte(b, 0x80 | n);
    } else if (n <= 0xffff) {
        w_byte(b, 0xde);
        w_be(b, n, 2);
    } else {
        w_byte(b, 0xdf);
        w_be(b, n, 4);
    }
}

static void
w_arr(amity_buf_t *b, uint32_t n)
{
    if (n < 16) {
        w_byte(b, 0x90 | n);
    } else if (n <= 0xffff) {
        w_byte(b, 0xdc);
        w_be(b, n, 2);
    } else {
        w_byte(b, 0xdd);
        w_be(b, n, 4);
    }
}

static void
w_strn(amity_buf_t *b, const char *s, size_t n)
{
    if (n < 32) {
        w_byte(b, 0xa0 | (unsigned)n);
    } else if (n <= 0xff) {
        w_byte(b, 0xd9);
        w_be(b, n, 1);
    } else if (n <= 0xffff) {
        w_byte(b, 0xda);
        w_be(b, n, 2);
    } else {
        w_byte(b, 0xdb);
        w_be(b, n, 4);
    }
    w_raw(b, s, n);
}

static void
w_str(amity_buf_t *b, const char *s)
{
    w_strn(b, s, strlen(s));
}

static void
w_uint(amity_buf_t *b, uint64_t u)
{
    if (u < 128) {
        w_byte(b, (unsigned)u);
    } else {
        w_byte(b, 0xcf);
        w_be(b, u, 8);
    }
}

static void
w_int(amity_buf_t *b, int64_t i)
{
    w_byte(b, 0xd3);
    w_be(b, (uint64_t)i, 8);
}

static void
w_bin(amity_buf_t *b, const void *p, size_t n)
{
    w_byte(b, 0xc4);
    w_be(b, n, 1);
    w_raw(b, p, n);
}

/*  Reads a golden hex fixture from tests/fixtures into out. */
static void
s_fixture(const char *name, amity_buf_t *out)
{
    const char *dir = getenv("AMITY_SOURCE_DIR");
    char path[1024];
    char text[8192];
    (void)snprintf(path, sizeof(path), "%s/tests/fixtures/%s", dir ? dir : "../..", name);
    FILE *f = fopen(path, "r");
    if (!f) {
        fail_msg("cannot open fixture %s", path);
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[n] = '\0';
    /* lines starting with '#' are comments */
    char *line = text;
    while (line && *line) {
        char *next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        if (line[0] != '#') {
            w_hex(out, line);
        }
        line = next;
    }
}

static void
s_assert_bytes(const amity_buf_t *got, const amity_buf_t *want, const char *what)
{
    if (got->len != want->len || memcmp(got->data, want->data, got->len) != 0) {
        char hex[4096];
        size_t o = 0;
        for (size_t i = 0; i < got->len && o + 4 < sizeof(hex); i++) {
            o += (size_t)snprintf(hex + o, sizeof(hex) - o, "%02x ", got->data[i]);
        }
        hex[o] = '\0';
        fail_msg("%s: %zu bytes differ from the %zu expected; got %s", what, got->len, want->len,
                 hex);
    }
}

/* ------------------------------------------------------------------------
 * Records as field lists.
 */
static void
f_str(amity_fields_t *f, const char *name, const char *val)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = AMITY_VAL_STR;
    x->val.as.s.ptr = val;
    x->val.as.s.len = strlen(val);
}

static void
f_uint(amity_fields_t *f, const char *name, uint64_t val)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = AMITY_VAL_UINT;
    x->val.as.u = val;
}

static void
f_bool(amity_fields_t *f, const char *name, bool val)
{
    amity_field_t *x = &f->fields[f->n_fields++];
    x->name = name;
    x->name_len = strlen(name);
    x->val.type = AMITY_VAL_BOOL;
    x->val.as.b = val;
}

static const char s_note_vi[] =
    "Đoàn đại biểu Hội hữu nghị Việt – Mỹ thăm Hà Nội, trao đổi về hợp tác giáo dục";

/*  A delegation_in record (fields in the order given). */
static void
s_record_delegation(amity_fields_t *f, const char *id)
{
    memset(f, 0, sizeof(*f));
    f_str(f, "id", id);
    f_str(f, "kind", "delegation_in");
    f_str(f, "date", "2023-05-14");
    f_str(f, "country", "US");
    f_uint(f, "delegations", 1);
    f_uint(f, "people", 12);
    f_str(f, "note", s_note_vi);
}

static void
s_encode_fields(const amity_fields_t *f, amity_buf_t *out)
{
    amity_buf_init(out);
    assert_int_equal(amity_fields_encode(f, out), 0);
}

static void
s_validate(const amity_fields_t *f, amity_record_t *rec)
{
    char why[AMITY_WHY_MAX];
    amity_validate_opts_t opts = { "hoi-viet-my", INT32_MAX };
    if (amity_record_validate(f, &opts, rec, why) != 0) {
        fail_msg("record rejected: %s", why);
    }
}

/* ------------------------------------------------------------------------
 * amity_scan
 */
static int
s_scan_hex(const char *hex, int depth, char *why, size_t why_len)
{
    amity_buf_t b;
    amity_buf_init(&b);
    w_hex(&b, hex);
    /* an exact-size heap copy so ASan sees any over-read */
    uint8_t *copy = malloc(b.len ? b.len : 1);
    assert_non_null(copy);
    if (b.len) {
        memcpy(copy, b.data, b.len);
    }
    why[0] = '\0';
    int rc = amity_scan(copy, b.len, depth, why, why_len);
    free(copy);
    amity_buf_clear(&b);
    return rc;
}

static void
s_scan_ok(const char *hex)
{
    char why[256];
    int rc = s_scan_hex(hex, AMITY_DEPTH_MAX, why, sizeof(why));
    if (rc != 0) {
        fail_msg("scan of %s refused: %s", hex, why);
    }
}

static void
s_scan_bad(const char *hex, const char *expected)
{
    char why[256];
    assert_int_equal(s_scan_hex(hex, AMITY_DEPTH_MAX, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, expected);
}

static void
test_proto_scan_every_type(void **state)
{
    (void)state;
    s_scan_ok("00"); /* positive fixint */
    s_scan_ok("7f");
    s_scan_ok("e0"); /* negative fixint */
    s_scan_ok("ff");
    s_scan_ok("c0");                         /* nil */
    s_scan_ok("c2");                         /* false */
    s_scan_ok("c3");                         /* true */
    s_scan_ok("ca 3f 80 00 00");             /* float32 */
    s_scan_ok("cb 3f f0 00 00 00 00 00 00"); /* float64 */
    s_scan_ok("cc ff");
    s_scan_ok("cd ff ff");
    s_scan_ok("ce ff ff ff ff");
    s_scan_ok("cf ff ff ff ff ff ff ff ff");
    s_scan_ok("d0 80");
    s_scan_ok("d1 80 00");
    s_scan_ok("d2 80 00 00 00");
    s_scan_ok("d3 80 00 00 00 00 00 00 00");
    s_scan_ok("a0"); /* empty fixstr */
    s_scan_ok("a3 61 62 63");
    s_scan_ok("d9 03 61 62 63");          /* str8 */
    s_scan_ok("da 00 03 61 62 63");       /* str16 */
    s_scan_ok("db 00 00 00 03 61 62 63"); /* str32 */
    s_scan_ok("c4 02 00 01");             /* bin8 */
    s_scan_ok("c5 00 02 00 01");          /* bin16 */
    s_scan_ok("c6 00 00 00 02 00 01");    /* bin32 */
    s_scan_ok("90");
    s_scan_ok("92 01 02");             /* fixarray */
    s_scan_ok("dc 00 02 01 02");       /* array16 */
    s_scan_ok("dd 00 00 00 02 01 02"); /* array32 */
    s_scan_ok("80");
    s_scan_ok("81 a1 61 01");             /* fixmap */
    s_scan_ok("de 00 01 a1 61 01");       /* map16 */
    s_scan_ok("df 00 00 00 01 a1 61 01"); /* map32 */
    s_scan_ok("d4 01 00");                /* fixext1 */
    s_scan_ok("d5 01 00 00");
    s_scan_ok("d6 ff 00 00 00 00"); /* fixext4: timestamp32 */
    s_scan_ok("d7 01 00 00 00 00 00 00 00 00");
    s_scan_ok("d8 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00");
    s_scan_ok("c7 02 05 00 00");          /* ext8 */
    s_scan_ok("c8 00 02 05 00 00");       /* ext16 */
    s_scan_ok("c9 00 00 00 02 05 00 00"); /* ext32 */
    s_scan_ok("c7 00 05");                /* empty ext8 */
    /* containers of containers */
    s_scan_ok("82 a1 61 92 90 80 a1 62 81 c0 c0");
}

static void
test_proto_scan_hostile_claims(void **state)
{
    (void)state;
    s_scan_bad("dd ff ff ff ff", "array32 count 4294967295 exceeds the 0 bytes left");
    s_scan_bad("db ff ff ff ff", "str32 length 4294967295 exceeds the 0 bytes left");
    s_scan_bad("c6 ff ff ff ff", "bin32 length 4294967295 exceeds the 0 bytes left");
    s_scan_bad("df ff ff ff ff", "map32 count 4294967295 exceeds the 0 bytes left");
    s_scan_bad("c9 ff ff ff ff 01", "ext32 length 4294967295 exceeds the 0 bytes left");
    s_scan_bad("dc ff ff 01 02", "array16 count 65535 exceeds the 2 bytes left");
    s_scan_bad("de 00 02 01 02 03", "map16 count 2 exceeds the 3 bytes left");
    s_scan_bad("a5 61 62", "fixstr length 5 exceeds the 2 bytes left");
    s_scan_bad("d8 01 00", "fixext16 length 16 exceeds the 1 bytes left");
    /* elements still owed by the outer array count against the bytes left */
    s_scan_bad("93 a4 61 62 63 64 01", "fixstr length 4 exceeds the 3 bytes left");
    s_scan_bad("c1", "byte 0xc1 (never used) at offset 0");
    s_scan_bad("92 01 c1", "byte 0xc1 (never used) at offset 2");
}

static void
test_proto_scan_truncation_and_trailing(void **state)
{
    (void)state;
    s_scan_bad("", "truncated");
    s_scan_bad("cd ff", "truncated");
    s_scan_bad("cf 00 00", "truncated");
    s_scan_bad("db 00 00", "truncated");
    s_scan_bad("92 cd 00", "truncated");
    s_scan_bad("92 01 02 03", "trailing bytes after the object (3 of 4 bytes used)");
    /* a cut container is caught by its count before its content */
    s_scan_bad("92 01", "fixarray count 2 exceeds the 1 bytes left");
    s_scan_bad("81 a1 61", "fixstr length 1 exceeds the 0 bytes left");
    s_scan_bad("01 02", "trailing bytes after the object (1 of 2 bytes used)");
    s_scan_bad("81 a1 61 01 81 a1 61 01",
               "trailing bytes after the object (4 of 8 bytes used)"); /* two objects */
}

static void
test_proto_scan_depth(void **state)
{
    (void)state;
    char why[256];
    amity_buf_t b;
    amity_buf_init(&b);
    for (int i = 0; i < AMITY_DEPTH_MAX; i++) {
        w_byte(&b, 0x91);
    }
    w_byte(&b, 0x01);
    assert_int_equal(amity_scan(b.data, b.len, AMITY_DEPTH_MAX, why, sizeof(why)), 0);
    amity_buf_reset(&b);
    for (int i = 0; i < AMITY_DEPTH_MAX; i++) {
        w_byte(&b, 0x91);
    }
    w_byte(&b, 0x90); /* an empty container is still one level deeper */
    assert_int_equal(amity_scan(b.data, b.len, AMITY_DEPTH_MAX, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, "nesting deeper than 16 at offset 16");
    assert_int_equal(amity_scan(b.data, b.len, AMITY_DEPTH_MAX + 1, why, sizeof(why)), 0);
    /* a scalar needs no depth; a container at depth 0 is refused */
    assert_int_equal(amity_scan((const uint8_t *)"\x01", 1, 0, why, sizeof(why)), 0);
    assert_int_equal(amity_scan((const uint8_t *)"\x90", 1, 0, why, sizeof(why)), AMITY_EPROTO);

    /* a deep but valid nest with a large limit: the explicit stack copes */
    amity_buf_reset(&b);
    for (int i = 0; i < 100000; i++) {
        w_byte(&b, 0x91);
    }
    w_byte(&b, 0xc0);
    assert_int_equal(amity_scan(b.data, b.len, 200000, why, sizeof(why)), 0);
    assert_int_equal(amity_scan(b.data, b.len, 99999, why, sizeof(why)), AMITY_EPROTO);
    amity_buf_clear(&b);
}

/*  Runs every decoder on buf under the allocation bound; all must refuse. */
static void
s_hostile(const amity_buf_t *b, const char *what)
{
    char why[256];
    amity_msg_t m;
    amity_fields_t *fields = malloc(sizeof(*fields));
    amity_record_t *rec = malloc(sizeof(*rec));
    assert_non_null(fields);
    assert_non_null(rec);
    uint8_t *copy = malloc(b->len);
    assert_non_null(copy);
    memcpy(copy, b->data, b->len);

    bool hooked = s_alloc_begin();
    int rc_msg = amity_msg_decode(copy, b->len, &m, why, sizeof(why));
    int rc_fields = amity_fields_decode(copy, b->len, fields, why, sizeof(why));
    int rc_rec = amity_record_decode(copy, b->len, rec, why, sizeof(why));
    int rc_scan = amity_scan(copy, b->len, 1 << 20, why, sizeof(why));
    s_alloc_end(b->len, what);
    (void)hooked;

    assert_int_equal(rc_msg, AMITY_EPROTO);
    assert_int_equal(rc_fields, AMITY_EPROTO);
    assert_int_equal(rc_rec, AMITY_EPROTO);
    assert_int_equal(rc_scan, AMITY_EPROTO);
    assert_int_equal(m.type, AMITY_MSG_NONE);
    assert_null(m.items);
    amity_msg_clear(&m);
    free(copy);
    free(fields);
    free(rec);
}

static void
test_proto_hostile_no_large_allocation(void **state)
{
    (void)state;
    static const char *const claims[] = {
        "dd ff ff ff ff", "db ff ff ff ff", "c6 ff ff ff ff", "df ff ff ff ff", "c9 ff ff ff ff 01",
        "dc ff ff",       "de ff ff",       "da ff ff",       "c5 ff ff",       "c8 ff ff 01",
    };
    amity_buf_t b;
    amity_buf_init(&b);
    for (size_t i = 0; i < sizeof(claims) / sizeof(claims[0]); i++) {
        amity_buf_reset(&b);
        w_hex(&b, claims[i]);
        s_hostile(&b, claims[i]);
    }

    /* nested array32s each claiming 8 elements */
    amity_buf_reset(&b);
    for (int i = 0; i < 4096; i++) {
        w_hex(&b, "dd 08 00 00 00");
    }
    s_hostile(&b, "nested array32 x 4096");
    amity_buf_reset(&b);
    for (int i = 0; i < 12; i++) {
        w_hex(&b, "dd 08 00 00 00");
    }
    s_hostile(&b, "nested array32 x 12");

    /* a plausible submit whose recs claim 4 Gi items */
    amity_buf_reset(&b);
    w_map(&b, 3);
    w_str(&b, "v");
    w_uint(&b, 1);
    w_str(&b, "t");
    w_str(&b, "submit");
    w_str(&b, "recs");
    w_hex(&b, "dd ff ff ff ff 80");
    s_hostile(&b, "submit with recs array32 0xffffffff");

    /* totals whose kv claims 4 Gi entries, and a key claiming 4 GiB */
    amity_buf_reset(&b);
    w_map(&b, 4);
    w_str(&b, "v");
    w_uint(&b, 1);
    w_str(&b, "t");
    w_str(&b, "totals");
    w_str(&b, "shard");
    w_uint(&b, 0);
    w_str(&b, "kv");
    w_hex(&b, "df ff ff ff ff db ff ff ff ff");
    s_hostile(&b, "totals with kv map32 0xffffffff");
    amity_buf_clear(&b);
}

/*  A large valid message stays within the same bound. */
static void
test_proto_large_valid_within_bound(void **state)
{
    (void)state;
    char why[256];
    amity_buf_t b;
    amity_buf_init(&b);
    w_map(&b, 3);
    w_str(&b, "v");
    w_uint(&b, 1);
    w_str(&b, "t");
    w_str(&b, "submit");
    w_str(&b, "recs");
    w_arr(&b, AMITY_ITEMS_MAX);
    for (uint32_t i = 0; i < AMITY_ITEMS_MAX; i++) {
        w_map(&b, 2);
        w_str(&b, "tag");
        w_uint(&b, i);
        w_str(&b, "rec");
        w_map(&b, 0);
    }
    amity_msg_t m;
    s_alloc_begin();
    int rc = amity_msg_decode(b.data, b.len, &m, why, sizeof(why));
    s_alloc_end(b.len, "submit with 8192 items");
    assert_int_equal(rc, 0);
    assert_int_equal(m.n_items, AMITY_ITEMS_MAX);
    assert_int_equal(m.items[AMITY_ITEMS_MAX - 1].tag, AMITY_ITEMS_MAX - 1);
    amity_msg_clear(&m);

    /* one more item is over the limit */
    amity_buf_reset(&b);
    w_map(&b, 3);
    w_str(&b, "v");
    w_uint(&b, 1);
    w_str(&b, "t");
    w_str(&b, "submit");
    w_str(&b, "recs");
    w_arr(&b, AMITY_ITEMS_MAX + 1);
    for (uint32_t i = 0; i < AMITY_ITEMS_MAX + 1; i++) {
        w_map(&b, 0);
    }
    assert_int_equal(amity_msg_decode(b.data, b.len, &m, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, "recs: 8193 items exceed the limit of 8192");
    amity_buf_clear(&b);
}

/* ------------------------------------------------------------------------
 * Fields
 */
static void
test_proto_fields_decode_values(void **state)
{
    (void)state;
    char why[256];
    amity_fields_t f;
    amity_buf_t b;
    amity_buf_init(&b);
    w_map(&b, 10);
    w_str(&b, "nil");
    w_byte(&b, 0xc0);
    w_str(&b, "yes");
    w_byte(&b, 0xc3);
    w_str(&b, "u");
    w_uint(&b, 1000000000000ull);
    w_str(&b, "i");
    w_int(&b, -5);
    w_str(&b, "i8pos"); /* a signed encoding of a non-negative value is a count */
    w_hex(&b, "d0 07");
    w_str(&b, "f");
    w_hex(&b, "cb 3f f8 00 00 00 00 00 00");
    w_str(&b, "s");
    w_str(&b, "Hà Nội");
    w_str(&b, "b");
    w_bin(&b, "\x00\x01", 2);
    w_str(&b, "x-arr");
    w_hex(&b, "92 01 81 a1 61 90");
    w_str(&b, "x-map");
    w_hex(&b, "81 a1 6b 92 01 02");
    assert_int_equal(amity_fields_decode(b.data, b.len, &f, why, sizeof(why)), 0);
    assert_int_equal(f.n_fields, 10);
    assert_int_equal(f.fields[0].val.type, AMITY_VAL_NIL);
    assert_int_equal(f.fields[1].val.type, AMITY_VAL_BOOL);
    assert_true(f.fields[1].val.as.b);
    assert_int_equal(f.fields[2].val.type, AMITY_VAL_UINT);
    assert_int_equal(f.fields[2].val.as.u, 1000000000000ull);
    assert_int_equal(f.fields[3].val.type, AMITY_VAL_INT);
    assert_int_equal(f.fields[3].val.as.i, -5);
    assert_int_equal(f.fields[4].val.type, AMITY_VAL_UINT);
    assert_int_equal(f.fields[4].val.as.u, 7);
    assert_int_equal(f.fields[5].val.type, AMITY_VAL_FLOAT);
    assert_true(f.fields[5].val.as.f == 1.5);
    assert_int_equal(f.fields[6].val.type, AMITY_VAL_STR);
    assert_int_equal(f.fields[6].val.as.s.len, strlen("Hà Nội"));
    assert_memory_equal(f.fields[6].val.as.s.ptr, "Hà Nội", strlen("Hà Nội"));
    /* views point into the input */
    assert_true((const uint8_t *)f.fields[6].val.as.s.ptr > b.data &&
                (const uint8_t *)f.fields[6].val.as.s.ptr < b.data + b.len);
    assert_int_equal(f.fields[7].val.type, AMITY_VAL_BIN);
    assert_int_equal(f.fields[7].val.as.s.len, 2);
    assert_int_equal(f.fields[8].val.type, AMITY_VAL_ARRAY);
    assert_int_equal(f.fields[9].val.type, AMITY_VAL_MAP);
    assert_int_equal(f.fields[9].name_len, 5);
    assert_memory_equal(f.fields[9].name, "x-map", 5);
    amity_buf_clear(&b);
}

static void
s_fields_bad(const amity_buf_t *b, const char *expected)
{
    char why[256];
    amity_fields_t f;
    f.n_fields = 99;
    assert_int_equal(amity_fields_decode(b->data, b->len, &f, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, expected);
    assert_int_equal(f.n_fields, 0);
}

static void
test_proto_fields_decode_errors(void **state)
{
    (void)state;
    amity_buf_t b;
    amity_buf_init(&b);

    w_arr(&b, 1);
    w_uint(&b, 1);
    s_fields_bad(&b, "record: not a map (got array)");

    amity_buf_reset(&b);
    w_str(&b, "id");
    s_fields_bad(&b, "record: not a map (got str)");

    amity_buf_reset(&b);
    w_map(&b, 2);
    w_str(&b, "id");
    w_str(&b, "a");
    w_uint(&b, 7);
    w_str(&b, "b");
    s_fields_bad(&b, "record: field name is not a string (got uint)");

    amity_buf_reset(&b);
    w_map(&b, 3);
    w_str(&b, "id");
    w_str(&b, "a");
    w_str(&b, "rev");
    w_uint(&b, 2);
    w_str(&b, "id");
    w_str(&b, "b");
    s_fields_bad(&b, "id: given twice");

    /* a control byte in a repeated name is shown as '?' */
    amity_buf_reset(&b);
    w_map(&b, 2);
    w_strn(&b, "a\nb", 3);
    w_uint(&b, 1);
    w_strn(&b, "a\nb", 3);
    w_uint(&b, 1);
    s_fields_bad(&b, "a?b: given twice");

    amity_buf_reset(&b);
    w_map(&b, AMITY_FIELDS_MAX + 1);
    for (int i = 0; i < AMITY_FIELDS_MAX + 1; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "x-%d", i);
        w_str(&b, name);
        w_uint(&b, 1);
    }
    s_fields_bad(&b, "record: more than 64 fields (65)");

    amity_buf_reset(&b);
    w_hex(&b, "82 a2 69 64 a1 61");
    s_fields_bad(&b, "record: fixstr length 2 exceeds the 1 bytes left");

    amity_buf_reset(&b);
    w_hex(&b, "81 a2 69 64 cd 01");
    s_fields_bad(&b, "record: truncated");

    amity_buf_reset(&b);
    w_hex(&b, "80 80");
    s_fields_bad(&b, "record: trailing bytes after the object (1 of 2 bytes used)");

    /* 64 fields is fine */
    amity_buf_reset(&b);
    w_map(&b, AMITY_FIELDS_MAX);
    for (int i = 0; i < AMITY_FIELDS_MAX; i++) {
        char name[16];
        (void)snprintf(name, sizeof(name), "x-%d", i);
        w_str(&b, name);
        w_uint(&b, 1);
    }
    char why[256];
    amity_fields_t f;
    assert_int_equal(amity_fields_decode(b.data, b.len, &f, why, sizeof(why)), 0);
    assert_int_equal(f.n_fields, AMITY_FIELDS_MAX);
    amity_buf_clear(&b);
}

static void
test_proto_fields_encode_round_trip(void **state)
{
    (void)state;
    char why[256];
    amity_fields_t f;
    amity_fields_t g;
    amity_buf_t b;
    s_record_delegation(&f, "hvm-2023-0042");
    f_bool(&f, "x-flag", true);
    amity_field_t *x = &f.fields[f.n_fields++];
    x->name = "x-neg";
    x->name_len = 5;
    x->val.type = AMITY_VAL_INT;
    x->val.as.i = -12345678901;
    x = &f.fields[f.n_fields++];
    x->name = "x-f";
    x->name_len = 3;
    x->val.type = AMITY_VAL_FLOAT;
    x->val.as.f = 0.25;
    x = &f.fields[f.n_fields++];
    x->name = "x-nil";
    x->name_len = 5;
    x->val.type = AMITY_VAL_NIL;
    x = &f.fields[f.n_fields++];
    x->name = "x-bin";
    x->name_len = 5;
    x->val.type = AMITY_VAL_BIN;
    x->val.as.s.ptr = "\xff\x00";
    x->val.as.s.len = 2;
    s_encode_fields(&f, &b);
    assert_int_equal(amity_fields_decode(b.data, b.len, &g, why, sizeof(why)), 0);
    assert_int_equal(g.n_fields, f.n_fields);
    for (size_t i = 0; i < f.n_fields; i++) {
        assert_int_equal(g.fields[i].name_len, f.fields[i].name_len);
        assert_memory_equal(g.fields[i].name, f.fields[i].name, f.fields[i].name_len);
        assert_int_equal(g.fields[i].val.type, f.fields[i].val.type);
        switch (f.fields[i].val.type) {
        case AMITY_VAL_STR:
        case AMITY_VAL_BIN:
            assert_int_equal(g.fields[i].val.as.s.len, f.fields[i].val.as.s.len);
            assert_memory_equal(g.fields[i].val.as.s.ptr, f.fields[i].val.as.s.ptr,
                                f.fields[i].val.as.s.len);
            break;
        case AMITY_VAL_UINT:
            assert_int_equal(g.fields[i].val.as.u, f.fields[i].val.as.u);
            break;
        case AMITY_VAL_INT:
            assert_int_equal(g.fields[i].val.as.i, f.fields[i].val.as.i);
            break;
        case AMITY_VAL_FLOAT:
            assert_true(g.fields[i].val.as.f == f.fields[i].val.as.f);
            break;
        case AMITY_VAL_BOOL:
            assert_int_equal(g.fields[i].val.as.b, f.fields[i].val.as.b);
            break;
        default:
            break;
        }
    }
    /* what cannot be encoded */
    amity_buf_reset(&b);
    x->val.type = AMITY_VAL_MAP;
    assert_int_equal(amity_fields_encode(&f, &b), AMITY_EINVAL);
    assert_int_equal(b.len, 0);
    x->val.type = AMITY_VAL_NIL;
    f.fields[1].name = "id";
    f.fields[1].name_len = 2;
    assert_int_equal(amity_fields_encode(&f, &b), AMITY_EINVAL); /* id twice */
    amity_buf_clear(&b);
}

/* ------------------------------------------------------------------------
 * Canonical records
 */
static void
s_canonical(const amity_fields_t *f, amity_buf_t *out, amity_record_t *rec)
{
    s_validate(f, rec);
    amity_buf_init(out);
    assert_int_equal(amity_record_encode(rec, out), 0);
}

static void
test_proto_record_round_trip(void **state)
{
    (void)state;
    char why[256];
    amity_fields_t f;
    amity_record_t *a = malloc(sizeof(*a));
    amity_record_t *back = malloc(sizeof(*back));
    amity_buf_t b;
    assert_non_null(a);
    assert_non_null(back);

    s_record_delegation(&f, "hvm-2023-0042");
    s_canonical(&f, &b, a);
    if (amity_record_decode(b.data, b.len, back, why, sizeof(why)) != 0) {
        fail_msg("canonical record refused: %s", why);
    }
    assert_true(amity_record_equal(a, back));
    /* the Vietnamese note survives byte for byte */
    assert_int_equal(back->note_len, strlen(s_note_vi));
    assert_memory_equal(back->note, s_note_vi, strlen(s_note_vi));
    amity_buf_t golden;
    amity_buf_init(&golden);
    s_fixture("canonical_delegation_in.hex", &golden);
    s_assert_bytes(&b, &golden, "canonical delegation_in");
    amity_buf_clear(&golden);
    amity_buf_clear(&b);

    /* money: minor units survive; VND has no decimals */
    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "aid-7");
    f_uint(&f, "rev", 3);
    f_str(&f, "kind", "aid_commitment");
    f_str(&f, "date", "2017-06-30");
    f_str(&f, "country", "JP");
    f_uint(&f, "projects", 2);
    f_str(&f, "amount", "47425742.5");
    f_str(&f, "currency", "USD");
    s_canonical(&f, &b, a);
    assert_int_equal(a->amount, 4742574250);
    assert_int_equal(amity_record_decode(b.data, b.len, back, why, sizeof(why)), 0);
    assert_int_equal(back->amount, 4742574250);
    assert_true(amity_record_equal(a, back));
    amity_buf_clear(&b);

    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "relief-1");
    f_str(&f, "kind", "relief");
    f_str(&f, "date", "2020-10-20");
    f_uint(&f, "amount", 60000000000ull);
    f_str(&f, "currency", "VND");
    s_canonical(&f, &b, a);
    assert_int_equal(amity_record_decode(b.data, b.len, back, why, sizeof(why)), 0);
    assert_int_equal(back->amount, 60000000000ll);
    assert_true(amity_record_equal(a, back));
    amity_buf_clear(&b);

    /* activity scope and org level */
    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "act-1");
    f_str(&f, "kind", "activity");
    f_str(&f, "date", "2021-01-02");
    f_uint(&f, "activities", 40);
    f_str(&f, "scope", "multilateral");
    s_canonical(&f, &b, a);
    assert_int_equal(amity_record_decode(b.data, b.len, back, why, sizeof(why)), 0);
    assert_true(amity_record_equal(a, back));
    amity_buf_clear(&b);

    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "org-1");
    f_str(&f, "kind", "org_founded");
    f_str(&f, "date", "2021-01-02");
    f_uint(&f, "orgs", 3);
    f_str(&f, "level", "local");
    s_canonical(&f, &b, a);
    assert_int_equal(amity_record_decode(b.data, b.len, back, why, sizeof(why)), 0);
    assert_true(amity_record_equal(a, back));
    amity_buf_clear(&b);

    /* a retraction: only id, rev, retract */
    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "hvm-2023-0042");
    f_uint(&f, "rev", 2);
    f_bool(&f, "retract", true);
    s_canonical(&f, &b, a);
    amity_buf_t want;
    amity_buf_init(&want);
    w_map(&want, 3);
    w_str(&want, "id");
    w_str(&want, "hvm-2023-0042");
    w_str(&want, "rev");
    w_uint(&want, 2);
    w_str(&want, "retract");
    w_byte(&want, 0xc3);
    s_assert_bytes(&b, &want, "canonical retraction");
    assert_int_equal(amity_record_decode(b.data, b.len, back, why, sizeof(why)), 0);
    assert_true(back->retract);
    assert_true(amity_record_equal(a, back));
    amity_buf_clear(&want);
    amity_buf_clear(&b);
    free(a);
    free(back);
}

static void
test_proto_record_equal_records_equal_bytes(void **state)
{
    (void)state;
    amity_fields_t f;
    amity_fields_t g;
    amity_record_t *a = malloc(sizeof(*a));
    amity_record_t *b = malloc(sizeof(*b));
    amity_buf_t ba;
    amity_buf_t bb;
    assert_non_null(a);
    assert_non_null(b);

    /* same record: other field order, explicit default rev, amount spelt
     * differently, an x- field (ignored by validation) */
    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "aid-9");
    f_str(&f, "kind", "aid_commitment");
    f_str(&f, "date", "2017-06-30");
    f_str(&f, "country", "DE");
    f_uint(&f, "projects", 2);
    f_str(&f, "amount", "12.5");
    f_str(&f, "currency", "EUR");
    memset(&g, 0, sizeof(g));
    f_str(&g, "x-source", "bulk import");
    f_str(&g, "currency", "EUR");
    f_uint(&g, "amount", 12); /* whole units: differs, checked below */
    f_uint(&g, "projects", 2);
    f_str(&g, "country", "DE");
    f_str(&g, "date", "2017-06-30");
    f_uint(&g, "rev", 1);
    f_str(&g, "kind", "aid_commitment");
    f_str(&g, "id", "aid-9");
    s_canonical(&f, &ba, a);
    s_canonical(&g, &bb, b);
    assert_false(ba.len == bb.len && memcmp(ba.data, bb.data, ba.len) == 0);
    amity_buf_clear(&bb);

    g.fields[2].val.type = AMITY_VAL_STR;
    g.fields[2].val.as.s.ptr = "12.50";
    g.fields[2].val.as.s.len = 5;
    s_canonical(&g, &bb, b);
    assert_true(amity_record_equal(a, b));
    s_assert_bytes(&bb, &ba, "equal records");
    amity_buf_clear(&ba);
    amity_buf_clear(&bb);
    free(a);
    free(b);
}

static void
test_proto_record_x_fields(void **state)
{
    (void)state;
    char why[AMITY_WHY_MAX];
    amity_fields_t f;
    amity_record_t *rec = malloc(sizeof(*rec));
    assert_non_null(rec);
    amity_buf_t b;
    amity_buf_init(&b);
    w_map(&b, 8);
    w_str(&b, "id");
    w_str(&b, "award-2023-1");
    w_str(&b, "x-meta");
    w_hex(&b, "82 a3 73 72 63 a3 63 73 76 a4 6c 69 6e 65 cd 01 00"); /* {src:csv,line:256} */
    w_str(&b, "kind");
    w_str(&b, "award");
    w_str(&b, "date");
    w_str(&b, "2023-09-02");
    w_str(&b, "country");
    w_str(&b, "FR");
    w_str(&b, "awards");
    w_uint(&b, 4);
    w_str(&b, "x-tags");
    w_hex(&b, "92 a3 61 62 63 c0");
    w_str(&b, "note");
    w_str(&b, "Huân chương Hữu nghị");
    assert_int_equal(amity_fields_decode(b.data, b.len, &f, why, sizeof(why)), 0);
    assert_int_equal(f.n_fields, 8);
    assert_int_equal(f.fields[1].val.type, AMITY_VAL_MAP);
    assert_int_equal(f.fields[6].val.type, AMITY_VAL_ARRAY);
    amity_validate_opts_t opts = { "hoi-viet-my", INT32_MAX };
    if (amity_record_validate(&f, &opts, rec, why) != 0) {
        fail_msg("record with x- fields rejected: %s", why);
    }
    assert_int_equal(rec->kind, AMITY_KIND_AWARD);
    assert_int_equal(rec->metrics[AMITY_METRIC_AWARDS], 4);
    /* the x- fields are not part of the canonical record */
    amity_buf_t canon;
    amity_buf_init(&canon);
    assert_int_equal(amity_record_encode(rec, &canon), 0);
    for (size_t i = 0; i + 1 < canon.len; i++) {
        assert_false(canon.data[i] == 'x' && canon.data[i + 1] == '-');
    }
    amity_buf_clear(&canon);
    amity_buf_clear(&b);
    free(rec);
}

static void
test_proto_record_decode_errors(void **state)
{
    (void)state;
    char why[256];
    amity_record_t *rec = malloc(sizeof(*rec));
    assert_non_null(rec);
    amity_buf_t b;
    amity_buf_init(&b);
    w_map(&b, 1);
    w_str(&b, "id");
    w_str(&b, "x");
    assert_int_equal(amity_record_decode(b.data, b.len, rec, why, sizeof(why)), AMITY_EPROTO);
    assert_true(strlen(why) > 0);
    amity_buf_reset(&b);
    w_arr(&b, 0);
    assert_int_equal(amity_record_decode(b.data, b.len, rec, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, "record: not a map (got array)");

    /* encode refuses a struct validation could not have produced */
    memset(rec, 0, sizeof(*rec));
    amity_buf_reset(&b);
    assert_int_equal(amity_record_encode(rec, &b), AMITY_EINVAL); /* no id */
    (void)snprintf(rec->id, sizeof(rec->id), "a");
    rec->rev = 1;
    rec->has_amount = true;
    (void)snprintf(rec->currency, sizeof(rec->currency), "XYZ");
    assert_int_equal(amity_record_encode(rec, &b), AMITY_EINVAL);
    assert_int_equal(b.len, 0);
    amity_buf_clear(&b);
    free(rec);
}

/* ------------------------------------------------------------------------
 * Messages
 */
#define S_RECS 3

/*  Storage behind a sample message of each type. */
typedef struct {
    amity_buf_t recs[S_RECS];
    amity_item_t items[S_RECS];
    amity_verdict_t verdicts[S_RECS];
    amity_kv_t kv[4];
    amity_view_t prefixes[3];
} s_sample_t;

static const char s_conn[] = { 0x00, 0x6b, (char)0x8b, 0x45, 0x67 };

static void
s_sample_init(s_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < S_RECS; i++) {
        amity_fields_t f;
        char id[32];
        (void)snprintf(id, sizeof(id), "hvm-2023-%04d", i);
        s_record_delegation(&f, id);
        s_encode_fields(&f, &s->recs[i]);
        s->items[i].tag = (uint64_t)i * 1000 + 1;
        s->items[i].rec.ptr = s->recs[i].data;
        s->items[i].rec.len = s->recs[i].len;
    }
    s->verdicts[0].tag = 1;
    s->verdicts[0].status = AMITY_VERDICT_ACCEPTED;
    s->verdicts[1].tag = 1001;
    s->verdicts[1].status = AMITY_VERDICT_DUPLICATE;
    s->verdicts[2].tag = UINT64_MAX;
    s->verdicts[2].status = AMITY_VERDICT_REJECTED;
    s->verdicts[2].why = amity_view_str("date: 2017-02-30 is not a calendar date");
    s->kv[0].key = amity_view_str("2017-H1/all/aid_commitment/all/amount.USD");
    s->kv[0].val = 4742574200;
    s->kv[1].key = amity_view_str("2023/hoi-viet-my/delegation_in/US/delegations");
    s->kv[1].val = 11;
    s->kv[2].key = amity_view_str("2023/all/relief/asia/amount.VND");
    s->kv[2].val = INT64_MIN;
    s->kv[3].key = amity_view_str("2023/all/contact/all/partners");
    s->kv[3].val = INT64_MAX;
    s->prefixes[0] = amity_view_str("2023/");
    s->prefixes[1] = amity_view_str("");
    s->prefixes[2] = amity_view_str("2017-H1/all/aid_commitment/");
}

static void
s_sample_clear(s_sample_t *s)
{
    for (int i = 0; i < S_RECS; i++) {
        amity_buf_clear(&s->recs[i]);
    }
}

/*  Fills m with a sample of type t; variant picks optional-field choices. */
static void
s_sample_msg(s_sample_t *s, amity_msg_type_t t, int variant, amity_msg_t *m)
{
    amity_msg_init(m);
    m->type = t;
    switch (t) {
    case AMITY_MSG_SUBMIT:
        if (variant) {
            m->office = amity_view_str("hoi-viet-my");
        }
        m->n_items = variant ? S_RECS : 1;
        m->items = s->items;
        break;
    case AMITY_MSG_WORK:
        m->ing = amity_view_str("ing-0123456789abcdef");
        m->conn.ptr = (const uint8_t *)s_conn;
        m->conn.len = sizeof(s_conn);
        m->office = amity_view_str("hoi-viet-my");
        m->n_items = variant ? 0 : S_RECS;
        m->items = variant ? NULL : s->items;
        break;
    case AMITY_MSG_APPLY:
        m->ing = amity_view_str("ing-0123456789abcdef");
        m->conn.ptr = (const uint8_t *)s_conn;
        m->conn.len = sizeof(s_conn);
        m->office = amity_view_str("hoi-viet-my");
        s->items[0].ok = true;
        s->items[1].ok = false;
        s->items[1].why = amity_view_str("country: XX is not an assigned ISO 3166-1 code");
        s->items[2].ok = true;
        m->n_items = S_RECS;
        m->items = s->items;
        break;
    case AMITY_MSG_VERDICTS:
        if (variant) {
            m->conn.ptr = (const uint8_t *)s_conn;
            m->conn.len = sizeof(s_conn);
        }
        m->n_verdicts = S_RECS;
        m->verdicts = s->verdicts;
        break;
    case AMITY_MSG_TOTALS:
        m->shard = variant ? 0 : 3;
        m->seq = variant ? 0 : 123456789;
        m->n_kv = variant ? 0 : 4;
        m->kv = variant ? NULL : s->kv;
        break;
    case AMITY_MSG_SNAPREQ:
        m->req = 42;
        m->prefix = amity_view_str(variant ? "" : "2023/");
        break;
    case AMITY_MSG_SNAP:
        m->req = 42;
        if (variant) {
            m->epoch = 0x1122334455667788ull;
        } else {
            m->shard = 1;
        }
        m->seq = 99;
        m->more = !variant;
        m->n_kv = 4;
        m->kv = s->kv;
        break;
    case AMITY_MSG_QUERY:
        m->req = 7;
        m->prefix = amity_view_str("2017-H1/all/");
        break;
    case AMITY_MSG_SUB:
        m->req = 8;
        m->n_prefixes = variant ? 1 : 3;
        m->prefixes = s->prefixes;
        break;
    case AMITY_MSG_UPD:
        m->epoch = 0x1122334455667788ull;
        m->seq = 100;
        m->prev = 99;
        m->n_kv = 2;
        m->kv = s->kv;
        break;
    case AMITY_MSG_PONG:
        m->epoch = 5;
        m->seq = 100;
        break;
    case AMITY_MSG_ERROR:
        m->req = variant ? 0 : 9;
        m->why = amity_view_str("prefix: not a string (got uint)");
        break;
    default:
        break;
    }
}

static void
s_view_equal(amity_view_t a, amity_view_t b, const char *what)
{
    if ((a.ptr == NULL) != (b.ptr == NULL) || a.len != b.len ||
        (a.len > 0 && memcmp(a.ptr, b.ptr, a.len) != 0)) {
        fail_msg("%s differs", what);
    }
}

static void
s_msg_equal(const amity_msg_t *a, const amity_msg_t *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->req, b->req);
    s_view_equal(a->office, b->office, "office");
    s_view_equal(a->ing, b->ing, "ing");
    s_view_equal(a->conn, b->conn, "conn");
    assert_int_equal(a->n_items, b->n_items);
    for (size_t i = 0; i < a->n_items; i++) {
        assert_int_equal(a->items[i].tag, b->items[i].tag);
        s_view_equal(a->items[i].rec, b->items[i].rec, "rec");
        if (a->type == AMITY_MSG_APPLY) {
            assert_int_equal(a->items[i].ok, b->items[i].ok);
            if (!a->items[i].ok) {
                s_view_equal(a->items[i].why, b->items[i].why, "item why");
            }
        }
    }
    assert_int_equal(a->n_verdicts, b->n_verdicts);
    for (size_t i = 0; i < a->n_verdicts; i++) {
        assert_int_equal(a->verdicts[i].tag, b->verdicts[i].tag);
        assert_int_equal(a->verdicts[i].status, b->verdicts[i].status);
        s_view_equal(a->verdicts[i].why, b->verdicts[i].why, "verdict why");
    }
    assert_int_equal(a->shard, b->shard);
    assert_int_equal(a->epoch, b->epoch);
    assert_int_equal(a->seq, b->seq);
    assert_int_equal(a->prev, b->prev);
    assert_int_equal(a->more, b->more);
    assert_int_equal(a->n_kv, b->n_kv);
    for (size_t i = 0; i < a->n_kv; i++) {
        s_view_equal(a->kv[i].key, b->kv[i].key, "kv key");
        assert_int_equal(a->kv[i].val, b->kv[i].val);
    }
    s_view_equal(a->prefix, b->prefix, "prefix");
    assert_int_equal(a->n_prefixes, b->n_prefixes);
    for (size_t i = 0; i < a->n_prefixes; i++) {
        s_view_equal(a->prefixes[i], b->prefixes[i], "prefix");
    }
    s_view_equal(a->why, b->why, "why");
}

static void
test_proto_msg_round_trip_every_type(void **state)
{
    (void)state;
    s_sample_t s;
    s_sample_init(&s);
    for (int t = AMITY_MSG_NONE + 1; t < AMITY_MSG_COUNT; t++) {
        for (int variant = 0; variant < 2; variant++) {
            char why[256];
            amity_msg_t m;
            amity_msg_t back;
            amity_buf_t b;
            amity_buf_init(&b);
            s_sample_msg(&s, (amity_msg_type_t)t, variant, &m);
            int rc = amity_msg_encode(&m, &b);
            if (rc != 0) {
                fail_msg("%s: encode failed (%d)", amity_msg_type_name(m.type), rc);
            }
            uint8_t *copy = malloc(b.len);
            assert_non_null(copy);
            memcpy(copy, b.data, b.len);
            if (amity_msg_decode(copy, b.len, &back, why, sizeof(why)) != 0) {
                fail_msg("%s: decode failed: %s", amity_msg_type_name(m.type), why);
            }
            s_msg_equal(&m, &back);
            /* records are views of the exact bytes inside the message */
            for (size_t i = 0; i < back.n_items; i++) {
                assert_true(back.items[i].rec.ptr >= copy &&
                            back.items[i].rec.ptr + back.items[i].rec.len <= copy + b.len);
            }
            /* re-encoding the decoded message gives the same bytes */
            amity_buf_t again;
            amity_buf_init(&again);
            assert_int_equal(amity_msg_encode(&back, &again), 0);
            s_assert_bytes(&again, &b, amity_msg_type_name(m.type));
            amity_buf_clear(&again);
            amity_msg_clear(&back);
            amity_msg_clear(&back); /* twice is safe */
            free(copy);
            amity_buf_clear(&b);
        }
    }
    s_sample_clear(&s);
}

static void
test_proto_msg_every_strict_prefix_rejected(void **state)
{
    (void)state;
    s_sample_t s;
    s_sample_init(&s);
    for (int t = AMITY_MSG_NONE + 1; t < AMITY_MSG_COUNT; t++) {
        for (int variant = 0; variant < 2; variant++) {
            char why[256];
            amity_msg_t m;
            amity_msg_t back;
            amity_buf_t b;
            amity_buf_init(&b);
            s_sample_msg(&s, (amity_msg_type_t)t, variant, &m);
            assert_int_equal(amity_msg_encode(&m, &b), 0);
            for (size_t len = 0; len < b.len; len++) {
                uint8_t *copy = malloc(len ? len : 1);
                assert_non_null(copy);
                memcpy(copy, b.data, len);
                int rc = amity_msg_decode(len ? copy : NULL, len, &back, why, sizeof(why));
                if (rc != AMITY_EPROTO) {
                    fail_msg("%s: prefix of %zu of %zu bytes accepted", amity_msg_type_name(m.type),
                             len, b.len);
                }
                assert_int_equal(back.type, AMITY_MSG_NONE);
                assert_null(back.items);
                assert_null(back.kv);
                free(copy);
            }
            amity_buf_clear(&b);
        }
    }
    s_sample_clear(&s);
}

static void
test_proto_msg_trailing_and_two_objects(void **state)
{
    (void)state;
    char why[256];
    s_sample_t s;
    amity_msg_t m;
    amity_buf_t b;
    s_sample_init(&s);
    s_sample_msg(&s, AMITY_MSG_PING, 0, &m);
    amity_buf_init(&b);
    assert_int_equal(amity_msg_encode(&m, &b), 0);
    assert_int_equal(amity_msg_encode(&m, &b), 0); /* encode appends: two objects */
    assert_int_equal(amity_msg_decode(b.data, b.len, &m, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, "message: trailing bytes after the object (11 of 22 bytes used)");
    assert_int_equal(amity_msg_decode(b.data, b.len / 2, &m, why, sizeof(why)), 0);
    assert_int_equal(m.type, AMITY_MSG_PING);
    w_byte(&b, 0xc0);
    assert_int_equal(amity_msg_decode(b.data + 11, 12, &m, why, sizeof(why)), AMITY_EPROTO);
    assert_string_equal(why, "message: trailing bytes after the object (11 of 12 bytes used)");
    amity_buf_clear(&b);
    s_sample_clear(&s);
}

/*  Decodes buf and expects exactly the given reason, with m cleared. */
static void
s_msg_bad(const amity_buf_t *b, const char *expected)
{
    char why[256];
    amity_msg_t m;
    uint8_t *copy = malloc(b->len);
    assert_non_null(copy);
    memcpy(copy, b->data, b->len);
    int rc = amity_msg_decode(copy, b->len, &m, why, sizeof(why));
    free(copy);
    if (rc != AMITY_EPROTO) {
        fail_msg("accepted (%d), expected \"%s\"", rc, expected);
    }
    assert_string_equal(why, expected);
    amity_msg_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&m, &zero, sizeof(m));
}

/*  Starts a message map of n entries with v and t. */
static void
s_head(amity_buf_t *b, uint32_t n, const char *type)
{
    amity_buf_reset(b);
    w_map(b, n);
    w_str(b, "v");
    w_uint(b, 1);
    w_str(b, "t");
    w_str(b, type);
}

static void
s_rec_item(amity_buf_t *b, uint64_t tag)
{
    w_map(b, 2);
    w_str(b, "tag");
    w_uint(b, tag);
    w_str(b, "rec");
    w_hex(b, "81 a2 69 64 a1 61");
}

static void
test_proto_msg_decode_errors(void **state)
{
    (void)state;
    amity_buf_t b;
    amity_buf_init(&b);

    w_arr(&b, 0);
    s_msg_bad(&b, "message: not a map (got array)");

    amity_buf_reset(&b);
    w_map(&b, 1);
    w_str(&b, "t");
    w_str(&b, "ping");
    s_msg_bad(&b, "v: missing");

    amity_buf_reset(&b);
    w_map(&b, 2);
    w_str(&b, "v");
    w_uint(&b, 2);
    w_str(&b, "t");
    w_str(&b, "ping");
    s_msg_bad(&b, "v: unsupported version 2 (this side speaks 1)");

    amity_buf_reset(&b);
    w_map(&b, 2);
    w_str(&b, "v");
    w_str(&b, "1");
    w_str(&b, "t");
    w_str(&b, "ping");
    s_msg_bad(&b, "v: not an unsigned integer (got str)");

    amity_buf_reset(&b);
    w_map(&b, 1);
    w_str(&b, "v");
    w_uint(&b, 1);
    s_msg_bad(&b, "t: missing");

    s_head(&b, 2, "frobnicate");
    s_msg_bad(&b, "t: unknown message type \"frobnicate\"");

    s_head(&b, 3, "ping");
    w_uint(&b, 5);
    w_uint(&b, 5);
    s_msg_bad(&b, "message: key is not a string (got uint)");

    s_head(&b, 3, "ping");
    w_str(&b, "v");
    w_uint(&b, 1);
    s_msg_bad(&b, "v: given twice");

    s_head(&b, 2, "submit");
    s_msg_bad(&b, "recs: missing");

    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_map(&b, 0);
    s_msg_bad(&b, "recs: not an array (got map)");

    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 5);
    for (int i = 0; i < 3; i++) {
        s_rec_item(&b, (uint64_t)i);
    }
    w_map(&b, 2);
    w_str(&b, "tag");
    w_str(&b, "3");
    w_str(&b, "rec");
    w_map(&b, 0);
    s_rec_item(&b, 4);
    s_msg_bad(&b, "recs[3].tag: not an unsigned integer (got str)");

    /* a negative int is not an unsigned integer, nor a signed encoding */
    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 1);
    w_map(&b, 2);
    w_str(&b, "tag");
    w_hex(&b, "d0 05");
    w_str(&b, "rec");
    w_map(&b, 0);
    s_msg_bad(&b, "recs[0].tag: not an unsigned integer (got int)");

    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 1);
    w_map(&b, 1);
    w_str(&b, "tag");
    w_uint(&b, 1);
    s_msg_bad(&b, "recs[0].rec: missing");

    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 1);
    w_map(&b, 3);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "rec");
    w_map(&b, 0);
    w_str(&b, "tag");
    w_uint(&b, 1);
    s_msg_bad(&b, "recs[0].tag: given twice");

    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 1);
    w_uint(&b, 1);
    s_msg_bad(&b, "recs[0]: not a map (got uint)");

    s_head(&b, 4, "submit");
    w_str(&b, "office");
    w_uint(&b, 3);
    w_str(&b, "recs");
    w_arr(&b, 0);
    s_msg_bad(&b, "office: not a string (got uint)");

    /* conn must be bin, not str */
    s_head(&b, 6, "work");
    w_str(&b, "ing");
    w_str(&b, "ing-1");
    w_str(&b, "conn");
    w_str(&b, "abc");
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "recs");
    w_arr(&b, 0);
    s_msg_bad(&b, "conn: not a bin (got str)");

    s_head(&b, 5, "work");
    w_str(&b, "ing");
    w_str(&b, "ing-1");
    w_str(&b, "conn");
    w_bin(&b, "abc", 3);
    w_str(&b, "recs");
    w_arr(&b, 0);
    s_msg_bad(&b, "office: missing");

    /* apply: a rejected item needs its reason */
    s_head(&b, 6, "apply");
    w_str(&b, "ing");
    w_str(&b, "ing-1");
    w_str(&b, "conn");
    w_bin(&b, "abc", 3);
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 3);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "ok");
    w_byte(&b, 0xc2);
    w_str(&b, "rec");
    w_map(&b, 0);
    s_msg_bad(&b, "items[0].why: missing (required when ok is false)");

    s_head(&b, 6, "apply");
    w_str(&b, "ing");
    w_str(&b, "ing-1");
    w_str(&b, "conn");
    w_bin(&b, "abc", 3);
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 3);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "ok");
    w_uint(&b, 1);
    w_str(&b, "rec");
    w_map(&b, 0);
    s_msg_bad(&b, "items[0].ok: not a boolean (got uint)");

    s_head(&b, 3, "verdicts");
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 2);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "st");
    w_str(&b, "maybe");
    s_msg_bad(&b, "items[0].st: unknown status \"maybe\" (accepted, duplicate or rejected)");

    s_head(&b, 3, "verdicts");
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 2);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "st");
    w_str(&b, "rejected");
    s_msg_bad(&b, "items[0].why: missing (required when rejected)");

    s_head(&b, 5, "totals");
    w_str(&b, "shard");
    w_uint(&b, 0);
    w_str(&b, "seq");
    w_uint(&b, 1);
    w_str(&b, "kv");
    w_map(&b, 1);
    w_str(&b, "2023/all/award/all/awards");
    w_uint(&b, (uint64_t)INT64_MAX + 1);
    s_msg_bad(&b, "kv: \"2023/all/award/all/awards\": 9223372036854775808 exceeds int64");

    s_head(&b, 5, "totals");
    w_str(&b, "shard");
    w_uint(&b, 0);
    w_str(&b, "seq");
    w_uint(&b, 1);
    w_str(&b, "kv");
    w_map(&b, 1);
    w_str(&b, "k");
    w_str(&b, "12");
    s_msg_bad(&b, "kv: \"k\": value is not an integer (got str)");

    s_head(&b, 5, "totals");
    w_str(&b, "shard");
    w_uint(&b, 0);
    w_str(&b, "seq");
    w_uint(&b, 1);
    w_str(&b, "kv");
    w_map(&b, 1);
    w_uint(&b, 1);
    w_uint(&b, 1);
    s_msg_bad(&b, "kv: key is not a string (got uint)");

    s_head(&b, 4, "sub");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "prefixes");
    w_arr(&b, AMITY_PREFIXES_MAX + 1);
    for (int i = 0; i < AMITY_PREFIXES_MAX + 1; i++) {
        w_str(&b, "2023/");
    }
    s_msg_bad(&b, "prefixes: 65 prefixes exceed the limit of 64");

    s_head(&b, 4, "sub");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "prefixes");
    w_arr(&b, 2);
    w_str(&b, "2023/");
    w_uint(&b, 2023);
    s_msg_bad(&b, "prefixes[1]: not a string (got uint)");

    s_head(&b, 4, "query");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "prefix");
    {
        char *big = malloc(AMITY_STR_MAX + 1);
        assert_non_null(big);
        memset(big, 'a', AMITY_STR_MAX + 1);
        w_strn(&b, big, AMITY_STR_MAX + 1);
        free(big);
    }
    s_msg_bad(&b, "prefix: 4097 bytes exceed the limit of 4096");

    s_head(&b, 6, "snap");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "seq");
    w_uint(&b, 1);
    w_str(&b, "more");
    w_byte(&b, 0xc0);
    w_str(&b, "kv");
    w_map(&b, 0);
    s_msg_bad(&b, "more: not a boolean (got nil)");

    s_head(&b, 2, "error");
    s_msg_bad(&b, "why: missing");

    /* depth: a record nested past the limit fails the whole message */
    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 1);
    w_map(&b, 2);
    w_str(&b, "tag");
    w_uint(&b, 1);
    w_str(&b, "rec");
    for (int i = 0; i < AMITY_DEPTH_MAX - 2; i++) {
        w_byte(&b, 0x91);
    }
    w_byte(&b, 0x01);
    s_msg_bad(&b, "message: nesting deeper than 16 at offset 42");
    amity_buf_clear(&b);
}

static void
test_proto_msg_tolerant_growth(void **state)
{
    (void)state;
    char why[256];
    amity_msg_t m;
    amity_buf_t b;
    amity_buf_init(&b);
    /* unknown keys, anywhere, are ignored; t may come after the body;
     * kv values in any integer encoding within int64 */
    w_map(&b, 7);
    w_str(&b, "kv");
    w_map(&b, 3);
    w_str(&b, "a");
    w_hex(&b, "d0 ff"); /* int8 -1 */
    w_str(&b, "b");
    w_hex(&b, "cc 80"); /* uint8 128 */
    w_str(&b, "c");
    w_hex(&b, "d3 00 00 00 00 00 00 00 05"); /* int64 5 */
    w_str(&b, "x-future");
    w_hex(&b, "82 a1 61 92 01 02 a1 62 c0");
    w_str(&b, "seq");
    w_uint(&b, 17);
    w_str(&b, "shard");
    w_uint(&b, 2);
    w_str(&b, "why");
    w_uint(&b, 1); /* not a totals key: ignored whatever its type */
    w_str(&b, "t");
    w_str(&b, "totals");
    w_str(&b, "v");
    w_uint(&b, 1);
    assert_int_equal(amity_msg_decode(b.data, b.len, &m, why, sizeof(why)), 0);
    assert_int_equal(m.type, AMITY_MSG_TOTALS);
    assert_int_equal(m.seq, 17);
    assert_int_equal(m.shard, 2);
    assert_int_equal(m.n_kv, 3);
    assert_int_equal(m.kv[0].val, -1);
    assert_int_equal(m.kv[1].val, 128);
    assert_int_equal(m.kv[2].val, 5);
    assert_null(m.why.ptr);
    amity_msg_clear(&m);

    /* item maps tolerate unknown keys too, and rec may be any object */
    s_head(&b, 3, "submit");
    w_str(&b, "recs");
    w_arr(&b, 2);
    w_map(&b, 3);
    w_str(&b, "x-retry");
    w_uint(&b, 2);
    w_str(&b, "rec");
    w_hex(&b, "81 a2 69 64 a1 61");
    w_str(&b, "tag");
    w_uint(&b, 77);
    w_map(&b, 2);
    w_str(&b, "tag");
    w_uint(&b, 78);
    w_str(&b, "rec");
    w_str(&b, "not a record");
    assert_int_equal(amity_msg_decode(b.data, b.len, &m, why, sizeof(why)), 0);
    assert_int_equal(m.n_items, 2);
    assert_int_equal(m.items[0].tag, 77);
    assert_int_equal(m.items[0].rec.len, 6);
    assert_memory_equal(m.items[0].rec.ptr, "\x81\xa2\x69\x64\xa1\x61", 6);
    assert_int_equal(m.items[1].rec.len, 13);
    assert_null(m.office.ptr);
    amity_msg_clear(&m);
    amity_buf_clear(&b);
}

static void
test_proto_msg_encode_refuses(void **state)
{
    (void)state;
    s_sample_t s;
    amity_msg_t m;
    amity_buf_t b;
    s_sample_init(&s);
    amity_buf_init(&b);

    amity_msg_init(&m);
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL); /* no type */

    s_sample_msg(&s, AMITY_MSG_WORK, 0, &m);
    m.ing.ptr = NULL;
    m.ing.len = 0;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);

    s_sample_msg(&s, AMITY_MSG_SUBMIT, 0, &m);
    uint8_t broken[] = { 0x82, 0xa1, 0x61 };
    amity_item_t item = { 1, { broken, sizeof(broken) }, false, { NULL, 0 } };
    m.items = &item;
    m.n_items = 1;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL); /* rec not one object */

    s_sample_msg(&s, AMITY_MSG_VERDICTS, 0, &m);
    s.verdicts[2].why.ptr = NULL;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL); /* rejected without why */

    s_sample_msg(&s, AMITY_MSG_SUB, 0, &m);
    m.n_prefixes = AMITY_PREFIXES_MAX + 1;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);
    assert_int_equal(b.len, 0);
    amity_buf_clear(&b);
    s_sample_clear(&s);
}

/*  The worked example of PROTOCOL.md, byte for byte. */
static void
test_proto_msg_golden_submit(void **state)
{
    (void)state;
    char why[AMITY_WHY_MAX];
    amity_fields_t f;
    amity_buf_t rec;
    amity_buf_t b;
    amity_buf_t golden;
    amity_msg_t m;

    memset(&f, 0, sizeof(f));
    f_str(&f, "id", "hvm-42");
    f_str(&f, "kind", "delegation_in");
    f_str(&f, "date", "2023-05-14");
    f_str(&f, "country", "US");
    f_uint(&f, "delegations", 1);
    f_uint(&f, "people", 12);
    f_str(&f, "note", "Hà Nội");
    s_encode_fields(&f, &rec);
    amity_item_t item = { 1, { rec.data, rec.len }, false, { NULL, 0 } };
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUBMIT;
    m.office = amity_view_str("hoi-viet-my");
    m.items = &item;
    m.n_items = 1;
    amity_buf_init(&b);
    assert_int_equal(amity_msg_encode(&m, &b), 0);
    amity_buf_init(&golden);
    s_fixture("submit_example.hex", &golden);
    s_assert_bytes(&b, &golden, "submit example");
    assert_int_equal(amity_msg_decode(golden.data, golden.len, &m, why, sizeof(why)), 0);
    assert_int_equal(m.n_items, 1);
    assert_int_equal(m.items[0].tag, 1);
    assert_int_equal(m.items[0].rec.len, rec.len);
    assert_memory_equal(m.items[0].rec.ptr, rec.data, rec.len);
    assert_int_equal(m.office.len, strlen("hoi-viet-my"));
    amity_msg_clear(&m);

    /* its verdict, as the client receives it (PROTOCOL.md section 8) */
    amity_verdict_t verdict = { 1, AMITY_VERDICT_ACCEPTED, { NULL, 0 } };
    amity_msg_init(&m);
    m.type = AMITY_MSG_VERDICTS;
    m.verdicts = &verdict;
    m.n_verdicts = 1;
    amity_buf_reset(&b);
    amity_buf_reset(&golden);
    assert_int_equal(amity_msg_encode(&m, &b), 0);
    w_hex(&golden, "83 a1 76 01 a1 74 a8 76 65 72 64 69 63 74 73 a5 69 74 65 6d 73 91"
                   "82 a3 74 61 67 01 a2 73 74 a8 61 63 63 65 70 74 65 64");
    s_assert_bytes(&b, &golden, "verdicts example");

    /* and the rejection the example quotes */
    f.fields[2].val.as.s.ptr = "2023-02-30";
    amity_record_t *r = malloc(sizeof(*r));
    assert_non_null(r);
    amity_validate_opts_t opts = { "hoi-viet-my", INT32_MAX };
    assert_int_equal(amity_record_validate(&f, &opts, r, why), AMITY_EINVAL);
    assert_string_equal(why, "date: 2023-02-30 is not a calendar date");
    free(r);
    amity_buf_clear(&golden);
    amity_buf_clear(&b);
    amity_buf_clear(&rec);
}

static void
test_proto_names_and_views(void **state)
{
    (void)state;
    char buf[8];
    assert_string_equal(amity_msg_type_name(AMITY_MSG_SUBMIT), "submit");
    assert_string_equal(amity_msg_type_name(AMITY_MSG_ERROR), "error");
    assert_string_equal(amity_msg_type_name(AMITY_MSG_NONE), "?");
    assert_string_equal(amity_msg_type_name(AMITY_MSG_COUNT), "?");
    assert_string_equal(amity_verdict_name(AMITY_VERDICT_DUPLICATE), "duplicate");
    assert_string_equal(amity_verdict_name((amity_verdict_status_t)0), "?");
    amity_view_t v = amity_view_str("2023/");
    assert_int_equal(v.len, 5);
    assert_true(amity_view_copy(v, buf, sizeof(buf)));
    assert_string_equal(buf, "2023/");
    assert_false(amity_view_copy(amity_view_str("12345678"), buf, sizeof(buf)));
    assert_string_equal(buf, "");
    assert_true(amity_view_copy(amity_view_str("1234567"), buf, sizeof(buf)));
    v = amity_view_str(NULL);
    assert_null(v.ptr);
    assert_true(amity_view_copy(v, buf, sizeof(buf)));
    assert_string_equal(buf, "");
}

/* ------------------------------------------------------------------------
 * Rejected records: rejreq and rejects (issue 6)
 */

/*  Storage behind the rejects samples. */
typedef struct {
    uint8_t big[AMITY_REJECT_REC_MAX]; /* the largest record an item carries */
    uint8_t after[11];                 /* a rejects key: "hvm" "\0" BE64 ms... cut short */
    amity_reject_item_t items[3];
} s_rej_sample_t;

static const uint8_t s_array_rec[] = { 0x93, 0x01, 0x02, 0x03 };

static void
s_rej_sample_init(s_rej_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < sizeof(s->big); i++) {
        s->big[i] = (uint8_t)(i * 7u); /* 0x00 and 0xc1 included: bin is opaque */
    }
    memcpy(s->after, "hvm\0\0\0\x01\x8b\x2a\x10\x00", sizeof(s->after));
    s->items[0].office = amity_view_str("hoi-viet-my");
    s->items[0].id = amity_view_str("hvm-2023-0042");
    s->items[0].why = amity_view_str("kind: 'giao_lưu' is not a kind (delegation_in, ...)");
    s->items[0].ts = 1700000000123ull;
    s->items[0].rec.ptr = s->big;
    s->items[0].rec.len = 200;
    s->items[1].office = amity_view_str("hoi-viet-nhat");
    s->items[1].id = amity_view_str(""); /* a record without an id */
    s->items[1].why = amity_view_str("record: not a map (got array)");
    s->items[1].ts = 0;
    s->items[1].rec.ptr = s_array_rec;
    s->items[1].rec.len = sizeof(s_array_rec);
    s->items[2].office = amity_view_str("hoi-viet-duc");
    s->items[2].id = amity_view_str("hvd-1");
    s->items[2].why = amity_view_str("note: Đoàn Hội hữu nghị is longer than 1024 bytes");
    s->items[2].ts = UINT64_MAX;
    s->items[2].rec.ptr = s->big;
    s->items[2].rec.len = AMITY_REJECT_REC_MAX;
}

/*  Variant v of a rejreq (0..3) or rejects (4..7) sample. */
static void
s_rej_msg(s_rej_sample_t *s, int v, amity_msg_t *m)
{
    amity_msg_init(m);
    if (v < 4) {
        m->type = AMITY_MSG_REJREQ;
        m->req = v == 0 ? 0 : (uint64_t)1 << 48 | (uint64_t)v;
        m->limit = v == 1 ? AMITY_REJECTS_MAX : (uint64_t)v * 10;
        if (v & 1) {
            m->office = amity_view_str("hoi-viet-my");
        }
        if (v >= 2) {
            m->after.ptr = s->after;
            m->after.len = sizeof(s->after);
        }
        return;
    }
    m->type = AMITY_MSG_REJECTS;
    m->req = 77;
    m->more = v & 1;
    if (v == 5 || v == 6) {
        m->has_shard = true;
        m->shard = (uint64_t)v - 5;
    }
    if (m->more) {
        m->next.ptr = s->after;
        m->next.len = sizeof(s->after);
    }
    m->n_rejects = v == 4 ? 0 : (v == 7 ? 3 : 2);
    m->rejects = m->n_rejects ? s->items : NULL;
}

static void
s_rej_equal(const amity_msg_t *a, const amity_msg_t *b)
{
    s_msg_equal(a, b);
    s_view_equal(a->after, b->after, "after");
    assert_int_equal(a->limit, b->limit);
    s_view_equal(a->next, b->next, "next");
    assert_int_equal(a->has_shard, b->has_shard);
    assert_int_equal(a->n_rejects, b->n_rejects);
    for (size_t i = 0; i < a->n_rejects; i++) {
        s_view_equal(a->rejects[i].office, b->rejects[i].office, "item office");
        s_view_equal(a->rejects[i].id, b->rejects[i].id, "item id");
        s_view_equal(a->rejects[i].why, b->rejects[i].why, "item why");
        assert_int_equal(a->rejects[i].ts, b->rejects[i].ts);
        s_view_equal(a->rejects[i].rec, b->rejects[i].rec, "item rec");
    }
}

static void
test_proto_msg_rejects_round_trip(void **state)
{
    (void)state;
    s_rej_sample_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    s_rej_sample_init(s);
    for (int v = 0; v < 8; v++) {
        char why[256];
        amity_msg_t m, back;
        amity_buf_t b, again;
        amity_buf_init(&b);
        amity_buf_init(&again);
        s_rej_msg(s, v, &m);
        assert_int_equal(amity_msg_encode(&m, &b), 0);
        uint8_t *copy = malloc(b.len);
        assert_non_null(copy);
        memcpy(copy, b.data, b.len);
        if (amity_msg_decode(copy, b.len, &back, why, sizeof(why)) != 0) {
            fail_msg("variant %d: decode failed: %s", v, why);
        }
        assert_int_equal(back.type, m.type);
        s_rej_equal(&m, &back);
        /* items are views of the exact bytes inside the message */
        for (size_t i = 0; i < back.n_rejects; i++) {
            assert_true(back.rejects[i].rec.ptr >= copy &&
                        back.rejects[i].rec.ptr + back.rejects[i].rec.len <= copy + b.len);
        }
        assert_int_equal(amity_msg_encode(&back, &again), 0);
        s_assert_bytes(&again, &b, amity_msg_type_name(m.type));
        amity_msg_clear(&back);
        amity_msg_clear(&back);
        free(copy);
        amity_buf_clear(&again);
        amity_buf_clear(&b);
    }
    assert_string_equal(amity_msg_type_name(AMITY_MSG_REJREQ), "rejreq");
    assert_string_equal(amity_msg_type_name(AMITY_MSG_REJECTS), "rejects");
    free(s);
}

static void
test_proto_msg_rejects_every_strict_prefix_rejected(void **state)
{
    (void)state;
    s_rej_sample_t *s = malloc(sizeof(*s));
    assert_non_null(s);
    s_rej_sample_init(s);
    for (int v = 0; v < 8; v++) {
        char why[256];
        amity_msg_t m, back;
        amity_buf_t b;
        amity_buf_init(&b);
        s_rej_msg(s, v, &m);
        if (v == 7) {
            m.n_rejects = 2; /* the 64 KiB record makes every prefix a long walk */
        }
        assert_int_equal(amity_msg_encode(&m, &b), 0);
        for (size_t len = 0; len < b.len; len++) {
            uint8_t *copy = malloc(len ? len : 1);
            assert_non_null(copy);
            memcpy(copy, b.data, len);
            int rc = amity_msg_decode(len ? copy : NULL, len, &back, why, sizeof(why));
            if (rc != AMITY_EPROTO) {
                fail_msg("%s variant %d: prefix of %zu of %zu bytes accepted",
                         amity_msg_type_name(m.type), v, len, b.len);
            }
            assert_int_equal(back.type, AMITY_MSG_NONE);
            assert_null(back.rejects);
            free(copy);
        }
        amity_buf_clear(&b);
    }
    free(s);
}

/*  One rejects item map, with `skip` (a key name) left out and `bad`
 *  (a key name) given as a string 'x' instead. */
static void
s_rej_item(amity_buf_t *b, const char *skip, const char *bad)
{
    static const char *const keys[5] = { "office", "id", "why", "ts", "rec" };
    uint32_t n = 0;
    for (int k = 0; k < 5; k++) {
        n += (skip && strcmp(keys[k], skip) == 0) ? 0 : 1;
    }
    w_map(b, n);
    for (int k = 0; k < 5; k++) {
        if (skip && strcmp(keys[k], skip) == 0) {
            continue;
        }
        w_str(b, keys[k]);
        if (bad && strcmp(keys[k], bad) == 0) {
            w_str(b, "x");
        } else if (k < 3) {
            w_str(b, "hoi-viet-my");
        } else if (k == 3) {
            w_uint(b, 1700000000000ull);
        } else {
            w_bin(b, "\x93\x01\x02\x03", 4);
        }
    }
}

/*  A rejects message with one item built by s_rej_item. */
static void
s_rejects_with(amity_buf_t *b, const char *skip, const char *bad)
{
    s_head(b, 5, "rejects");
    w_str(b, "req");
    w_uint(b, 3);
    w_str(b, "more");
    w_byte(b, 0xc2);
    w_str(b, "items");
    w_arr(b, 1);
    s_rej_item(b, skip, bad);
}

static void
test_proto_msg_rejects_decode_errors(void **state)
{
    (void)state;
    amity_buf_t b;
    amity_buf_init(&b);

    s_head(&b, 4, "rejreq");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    s_msg_bad(&b, "limit: missing");

    s_head(&b, 4, "rejreq");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "limit");
    w_uint(&b, AMITY_REJECTS_MAX + 1);
    s_msg_bad(&b, "limit: 1001 exceeds the limit of 1000");

    s_head(&b, 4, "rejreq");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "limit");
    w_int(&b, -1);
    s_msg_bad(&b, "limit: not an unsigned integer (got int)");

    s_head(&b, 5, "rejreq");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "limit");
    w_uint(&b, 10);
    w_str(&b, "after");
    w_str(&b, "hvm");
    s_msg_bad(&b, "after: not a bin (got str)");

    s_head(&b, 5, "rejreq");
    w_str(&b, "req");
    w_uint(&b, 1);
    w_str(&b, "limit");
    w_uint(&b, 10);
    w_str(&b, "office");
    w_uint(&b, 7);
    s_msg_bad(&b, "office: not a string (got uint)");

    /* rejects */
    s_head(&b, 4, "rejects");
    w_str(&b, "req");
    w_uint(&b, 3);
    w_str(&b, "items");
    w_arr(&b, 0);
    s_msg_bad(&b, "more: missing");

    s_head(&b, 5, "rejects");
    w_str(&b, "req");
    w_uint(&b, 3);
    w_str(&b, "more");
    w_byte(&b, 0xc2);
    w_str(&b, "items");
    w_arr(&b, AMITY_REJECTS_MAX + 1);
    for (int i = 0; i < AMITY_REJECTS_MAX + 1; i++) {
        w_map(&b, 0);
    }
    s_msg_bad(&b, "items: 1001 items exceed the limit of 1000");

    static const char *const keys[5] = { "office", "id", "why", "ts", "rec" };
    for (int k = 0; k < 5; k++) {
        char want[80];
        s_rejects_with(&b, keys[k], NULL);
        (void)snprintf(want, sizeof(want), "items[0].%s: missing", keys[k]);
        s_msg_bad(&b, want);
    }
    s_rejects_with(&b, NULL, "ts");
    s_msg_bad(&b, "items[0].ts: not an unsigned integer (got str)");
    s_rejects_with(&b, NULL, "rec");
    s_msg_bad(&b, "items[0].rec: not a bin (got str)");

    /* a kept record over AMITY_REJECT_REC_MAX */
    uint8_t *big = calloc(1, AMITY_REJECT_REC_MAX + 1);
    assert_non_null(big);
    s_head(&b, 5, "rejects");
    w_str(&b, "req");
    w_uint(&b, 3);
    w_str(&b, "more");
    w_byte(&b, 0xc2);
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 5);
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "id");
    w_str(&b, "x");
    w_str(&b, "why");
    w_str(&b, "x");
    w_str(&b, "ts");
    w_uint(&b, 1);
    w_str(&b, "rec");
    w_byte(&b, 0xc6); /* bin32 */
    w_be(&b, AMITY_REJECT_REC_MAX + 1, 4);
    w_raw(&b, big, AMITY_REJECT_REC_MAX + 1);
    s_msg_bad(&b, "items[0].rec: 65537 bytes exceed the limit of 65536");
    free(big);

    /* an item key given twice */
    s_head(&b, 5, "rejects");
    w_str(&b, "req");
    w_uint(&b, 3);
    w_str(&b, "more");
    w_byte(&b, 0xc2);
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 6);
    w_str(&b, "id");
    w_str(&b, "a");
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "id");
    w_str(&b, "b");
    w_str(&b, "why");
    w_str(&b, "x");
    w_str(&b, "ts");
    w_uint(&b, 1);
    w_str(&b, "rec");
    w_bin(&b, "", 0);
    s_msg_bad(&b, "items[0].id: given twice");

    /* growth: unknown keys in the item and at the top are ignored */
    char why[256];
    amity_msg_t m;
    s_head(&b, 6, "rejects");
    w_str(&b, "req");
    w_uint(&b, 3);
    w_str(&b, "more");
    w_byte(&b, 0xc2);
    w_str(&b, "x-future");
    w_arr(&b, 1);
    w_uint(&b, 1);
    w_str(&b, "items");
    w_arr(&b, 1);
    w_map(&b, 6);
    w_str(&b, "office");
    w_str(&b, "hoi-viet-my");
    w_str(&b, "id");
    w_str(&b, "hvm-1");
    w_str(&b, "why");
    w_str(&b, "date: 2017-02-30 is not a calendar date");
    w_str(&b, "ts");
    w_uint(&b, 5);
    w_str(&b, "rec");
    w_bin(&b, "\x80", 1);
    w_str(&b, "seen-by");
    w_str(&b, "shard-9");
    assert_int_equal(amity_msg_decode(b.data, b.len, &m, why, sizeof(why)), 0);
    assert_int_equal(m.type, AMITY_MSG_REJECTS);
    assert_int_equal(m.n_rejects, 1);
    assert_false(m.has_shard);
    assert_null(m.next.ptr);
    assert_int_equal(m.rejects[0].ts, 5);
    assert_int_equal(m.rejects[0].rec.len, 1);
    amity_msg_clear(&m);
    amity_buf_clear(&b);
}

static void
test_proto_msg_rejects_encode_refuses(void **state)
{
    (void)state;
    s_rej_sample_t *s = malloc(sizeof(*s));
    amity_msg_t m;
    amity_buf_t b;
    assert_non_null(s);
    s_rej_sample_init(s);
    amity_buf_init(&b);

    s_rej_msg(s, 1, &m);
    m.limit = AMITY_REJECTS_MAX + 1;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);

    s_rej_msg(s, 7, &m);
    m.n_rejects = AMITY_REJECTS_MAX + 1;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);

    s_rej_msg(s, 7, &m);
    s->items[2].rec.len = AMITY_REJECT_REC_MAX + 1;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);
    s->items[2].rec.len = AMITY_REJECT_REC_MAX;

    s_rej_msg(s, 6, &m);
    m.rejects = NULL;
    assert_int_equal(amity_msg_encode(&m, &b), AMITY_EINVAL);
    assert_int_equal(b.len, 0);
    amity_buf_clear(&b);
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_alloc_meter_works),
        cmocka_unit_test(test_proto_scan_every_type),
        cmocka_unit_test(test_proto_scan_hostile_claims),
        cmocka_unit_test(test_proto_scan_truncation_and_trailing),
        cmocka_unit_test(test_proto_scan_depth),
        cmocka_unit_test(test_proto_hostile_no_large_allocation),
        cmocka_unit_test(test_proto_large_valid_within_bound),
        cmocka_unit_test(test_proto_fields_decode_values),
        cmocka_unit_test(test_proto_fields_decode_errors),
        cmocka_unit_test(test_proto_fields_encode_round_trip),
        cmocka_unit_test(test_proto_record_round_trip),
        cmocka_unit_test(test_proto_record_equal_records_equal_bytes),
        cmocka_unit_test(test_proto_record_x_fields),
        cmocka_unit_test(test_proto_record_decode_errors),
        cmocka_unit_test(test_proto_msg_round_trip_every_type),
        cmocka_unit_test(test_proto_msg_every_strict_prefix_rejected),
        cmocka_unit_test(test_proto_msg_trailing_and_two_objects),
        cmocka_unit_test(test_proto_msg_decode_errors),
        cmocka_unit_test(test_proto_msg_tolerant_growth),
        cmocka_unit_test(test_proto_msg_encode_refuses),
        cmocka_unit_test(test_proto_msg_golden_submit),
        cmocka_unit_test(test_proto_names_and_views),
        cmocka_unit_test(test_proto_msg_rejects_round_trip),
        cmocka_unit_test(test_proto_msg_rejects_every_strict_prefix_rejected),
        cmocka_unit_test(test_proto_msg_rejects_decode_errors),
        cmocka_unit_test(test_proto_msg_rejects_encode_refuses),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
