/*  test_client_json: JSON -> record conversion and totals formatting in
 *  libamity (no sockets). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "amity/client.h"
#include "amity/proto.h"
#include "amity/record.h"

typedef struct {
    amity_buf_t buf;
    amity_fields_t fields;
} s_rec_t;

/* Converts json and decodes the result back into fields. */
static int
s_convert(s_rec_t *r, const char *json, char *why, size_t why_len)
{
    char dwhy[AMITY_WHY_MAX];
    int rc;

    amity_buf_init(&r->buf);
    memset(&r->fields, 0, sizeof(r->fields));
    rc = amity_json_record(json, strlen(json), &r->buf, why, why_len);
    if (rc != 0) {
        return rc;
    }
    rc = amity_fields_decode(r->buf.data, r->buf.len, &r->fields, dwhy, sizeof(dwhy));
    assert_int_equal(rc, 0);
    return 0;
}

static const amity_field_t *
s_field(const s_rec_t *r, const char *name)
{
    for (size_t i = 0; i < r->fields.n_fields; i++) {
        const amity_field_t *f = &r->fields.fields[i];
        if (f->name_len == strlen(name) && memcmp(f->name, name, f->name_len) == 0) {
            return f;
        }
    }
    fail_msg("field %s missing", name);
    return NULL;
}

static void
s_assert_str(const amity_field_t *f, const char *want)
{
    assert_int_equal(f->val.type, AMITY_VAL_STR);
    assert_int_equal(f->val.as.s.len, strlen(want));
    assert_memory_equal(f->val.as.s.ptr, want, strlen(want));
}

static void
test_client_json_scalars(void **state)
{
    s_rec_t r;
    char why[256];

    (void)state;
    assert_int_equal(s_convert(&r,
                               "{\"id\":\"a-1\",\"rev\":2,\"x-n\":-5,\"retract\":false,"
                               "\"x-t\":true,\"x-nil\":null,\"people\":1000000000}",
                               why, sizeof(why)),
                     0);
    assert_int_equal(r.fields.n_fields, 7);
    s_assert_str(s_field(&r, "id"), "a-1");
    assert_int_equal(s_field(&r, "rev")->val.type, AMITY_VAL_UINT);
    assert_int_equal(s_field(&r, "rev")->val.as.u, 2);
    assert_int_equal(s_field(&r, "x-n")->val.type, AMITY_VAL_INT);
    assert_int_equal(s_field(&r, "x-n")->val.as.i, -5);
    assert_int_equal(s_field(&r, "retract")->val.type, AMITY_VAL_BOOL);
    assert_false(s_field(&r, "retract")->val.as.b);
    assert_true(s_field(&r, "x-t")->val.as.b);
    assert_int_equal(s_field(&r, "x-nil")->val.type, AMITY_VAL_NIL);
    assert_int_equal(s_field(&r, "people")->val.as.u, 1000000000u);
    amity_buf_clear(&r.buf);
}

static void
test_client_json_order_kept(void **state)
{
    s_rec_t r;
    char why[256];
    const char *names[] = { "note", "id", "kind", "date", "activities" };

    (void)state;
    assert_int_equal(s_convert(&r,
                               "{\"note\":\"n\",\"id\":\"b\",\"kind\":\"activity\","
                               "\"date\":\"2024-01-02\",\"activities\":3}",
                               why, sizeof(why)),
                     0);
    assert_int_equal(r.fields.n_fields, 5);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r.fields.fields[i].name_len, strlen(names[i]));
        assert_memory_equal(r.fields.fields[i].name, names[i], strlen(names[i]));
    }
    amity_buf_clear(&r.buf);
}

static void
test_client_json_vietnamese_bytes(void **state)
{
    /* literal UTF-8 and \u escapes must both arrive as the same bytes */
    const char *note = "Đoàn đại biểu Hội hữu nghị Nhật - Việt thăm Hà Nội";
    char json[512];
    s_rec_t r;
    char why[256];

    (void)state;
    snprintf(json, sizeof(json), "{\"id\":\"v\",\"note\":\"%s\",\"x-e\":\"\\u0110o\\u00e0n\"}",
             note);
    assert_int_equal(s_convert(&r, json, why, sizeof(why)), 0);
    s_assert_str(s_field(&r, "note"), note);
    s_assert_str(s_field(&r, "x-e"), "\xc4\x90o\xc3\xa0n"); /* "Đoàn" */
    amity_buf_clear(&r.buf);
}

static void
test_client_json_reals_flagged(void **state)
{
    s_rec_t r;
    char why[256];
    char vwhy[AMITY_WHY_MAX];
    amity_record_t rec;
    amity_validate_opts_t vo = { "hoi-viet-my", INT32_MAX };

    (void)state;
    assert_int_equal(s_convert(&r,
                               "{\"id\":\"r\",\"kind\":\"delegation_in\",\"date\":\"2024-03-01\","
                               "\"country\":\"JP\",\"delegations\":1,\"people\":3.5}",
                               why, sizeof(why)),
                     0);
    assert_int_equal(s_field(&r, "people")->val.type, AMITY_VAL_FLOAT);
    assert_true(s_field(&r, "people")->val.as.f == 3.5);
    /* the server's rule names the field and says why */
    assert_int_equal(amity_record_validate(&r.fields, &vo, &rec, vwhy), AMITY_EINVAL);
    assert_non_null(strstr(vwhy, "people"));
    assert_non_null(strstr(vwhy, "floating"));
    amity_buf_clear(&r.buf);
}

static void
test_client_json_valid_record_validates(void **state)
{
    s_rec_t r;
    char why[256];
    char vwhy[AMITY_WHY_MAX];
    amity_record_t rec;
    amity_validate_opts_t vo = { "hoi-viet-my", INT32_MAX };

    (void)state;
    assert_int_equal(s_convert(&r,
                               "{\"id\":\"hoi-viet-my-2024-1\",\"kind\":\"aid_commitment\","
                               "\"date\":\"2024-03-01\",\"country\":\"US\",\"projects\":1,"
                               "\"amount\":\"47425742.00\",\"currency\":\"USD\","
                               "\"x-src\":{\"doc\":[1,2]}}",
                               why, sizeof(why)),
                     0);
    assert_int_equal(amity_record_validate(&r.fields, &vo, &rec, vwhy), 0);
    assert_int_equal(rec.amount, 4742574200);
    amity_buf_clear(&r.buf);
}

static void
test_client_json_nested_x_fields(void **state)
{
    s_rec_t r;
    char why[256];

    (void)state;
    assert_int_equal(
        s_convert(&r,
                  "{\"id\":\"n\",\"x-tags\": [ \"a\", {\"b\" : 1, \"c\": [true, null]} ],"
                  "\"x-obj\":{\"tên\":\"Hà Nội\"}}",
                  why, sizeof(why)),
        0);
    s_assert_str(s_field(&r, "x-tags"), "[\"a\",{\"b\":1,\"c\":[true,null]}]");
    s_assert_str(s_field(&r, "x-obj"), "{\"tên\":\"Hà Nội\"}");
    amity_buf_clear(&r.buf);
}

static void
test_client_json_nested_elsewhere_rejected(void **state)
{
    amity_buf_t out;
    char why[256];
    const char *json = "{\"id\":\"n\",\"kind\":[\"activity\"]}";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_string_equal(why, "kind: nested arrays and objects are allowed only in x- fields");
    amity_buf_clear(&out);
}

static void
test_client_json_malformed_has_position(void **state)
{
    amity_buf_t out;
    char why[256];
    const char *json = "{\"id\": \"a\",, \"kind\": 1}";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_true(strncmp(why, "json: ", 6) == 0);
    assert_non_null(strstr(why, "(column 12)"));
    assert_int_equal(out.len, 0);

    json = "{\"id\": \"a\"";
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_true(strncmp(why, "json: ", 6) == 0);
    assert_non_null(strstr(why, "column"));

    json = "";
    assert_int_equal(amity_json_record(json, 0, &out, why, sizeof(why)), AMITY_EINVAL);
    assert_true(strncmp(why, "json: ", 6) == 0);
    amity_buf_clear(&out);
}

static void
test_client_json_not_an_object(void **state)
{
    amity_buf_t out;
    char why[256];
    const char *json = "[1, 2]";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_string_equal(why, "record: not a JSON object");
    amity_buf_clear(&out);
}

static void
test_client_json_duplicate_key(void **state)
{
    amity_buf_t out;
    char why[256];
    const char *json = "{\"id\":\"a\",\"id\":\"b\"}";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_non_null(strstr(why, "duplicate"));
    amity_buf_clear(&out);
}

static void
test_client_json_invalid_utf8(void **state)
{
    amity_buf_t out;
    char why[256];
    const char *json = "{\"id\":\"a\",\"note\":\"\xff\xfe\"}";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_true(strncmp(why, "json: ", 6) == 0);
    amity_buf_clear(&out);
}

static void
test_client_json_too_many_fields(void **state)
{
    char json[4096];
    size_t n = 0;
    amity_buf_t out;
    char why[256];

    (void)state;
    n += (size_t)snprintf(json + n, sizeof(json) - n, "{");
    for (int i = 0; i < AMITY_FIELDS_MAX + 1; i++) {
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s\"x-%d\":%d", i ? "," : "", i, i);
    }
    snprintf(json + n, sizeof(json) - n, "}");
    amity_buf_init(&out);
    assert_int_equal(amity_json_record(json, strlen(json), &out, why, sizeof(why)), AMITY_EINVAL);
    assert_string_equal(why, "record: more than 64 fields");
    amity_buf_clear(&out);
}

static void
test_client_json_total_format(void **state)
{
    char buf[64];
    bool quoted;

    (void)state;
    assert_int_equal(amity_total_format("2017-H1/all/aid_commitment/all/amount.USD", 4742574200,
                                        buf, sizeof(buf), &quoted),
                     11);
    assert_string_equal(buf, "47425742.00");
    assert_true(quoted);
    amity_total_format("2017/all/relief/all/amount.VND", 60000000000, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "60000000000");
    assert_true(quoted);
    amity_total_format("2017/all/aid_commitment/JP/amount.JPY", 1500000, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "1500000");
    amity_total_format("2017/all/aid_commitment/all/amount.EUR", 5, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "0.05");
    amity_total_format("2017/x/aid_commitment/all/amount.USD", -350, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "-3.50");
    amity_total_format("2017-H1/all/delegation_in/all/delegations", 541, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "541");
    assert_false(quoted);
    amity_total_format("2017-H1/all/delegation_in/all/people", 0, buf, sizeof(buf), &quoted);
    assert_string_equal(buf, "0");
    assert_false(quoted);
}

static void
test_client_json_totals_object(void **state)
{
    amity_total_t t[] = {
        { "2024/all/aid_commitment/all/amount.USD", 4742574200 },
        { "2024/all/aid_commitment/all/projects", 209 },
        { "we\"ird\\key", 1 },
    };
    amity_buf_t out;
    const char *want_spaced = "{\"2024/all/aid_commitment/all/amount.USD\": \"47425742.00\", "
                              "\"2024/all/aid_commitment/all/projects\": 209, "
                              "\"we\\\"ird\\\\key\": 1}";
    const char *want_compact = "{\"2024/all/aid_commitment/all/amount.USD\":\"47425742.00\","
                               "\"2024/all/aid_commitment/all/projects\":209,"
                               "\"we\\\"ird\\\\key\":1}";

    (void)state;
    amity_buf_init(&out);
    assert_int_equal(amity_totals_json(t, 3, true, &out), 0);
    assert_int_equal(out.len, strlen(want_spaced));
    assert_memory_equal(out.data, want_spaced, out.len);
    amity_buf_reset(&out);
    assert_int_equal(amity_totals_json(t, 3, false, &out), 0);
    assert_int_equal(out.len, strlen(want_compact));
    assert_memory_equal(out.data, want_compact, out.len);
    amity_buf_reset(&out);
    assert_int_equal(amity_totals_json(NULL, 0, true, &out), 0);
    assert_int_equal(out.len, 2);
    assert_memory_equal(out.data, "{}", 2);
    amity_buf_clear(&out);
}

/*  The id for reports, also of lines that are no record. */
static void
test_client_json_id(void **state)
{
    const char *nested = "{\"id\":\"obj-note\",\"note\":{\"vi\":\"H\u00e0 N\u1ed9i\"}}";
    char long_id[300];
    char json[400];
    char buf[AMITY_ID_MAX + 1];
    char small[4];

    (void)state;
    assert_string_equal(amity_json_id(nested, strlen(nested), buf, sizeof(buf)), "obj-note");
    assert_string_equal(amity_json_id("{\"id\":\"a\\u0001b\"}", 17, buf, sizeof(buf)), "a?b");
    assert_string_equal(amity_json_id("{\"id\":\"abcdef\"}", 15, small, sizeof(small)), "abc");
    assert_string_equal(amity_json_id("{\"id\":7}", 8, buf, sizeof(buf)), "-");
    assert_string_equal(amity_json_id("{\"id\":\"\"}", 9, buf, sizeof(buf)), "-");
    assert_string_equal(amity_json_id("{\"kind\":\"x\"}", 12, buf, sizeof(buf)), "-");
    assert_string_equal(amity_json_id("{\"id\"", 5, buf, sizeof(buf)), "-");
    assert_string_equal(amity_json_id("[\"id\"]", 6, buf, sizeof(buf)), "-");
    assert_string_equal(amity_json_id(NULL, 0, buf, sizeof(buf)), "-");
    memset(long_id, 'x', 200);
    long_id[200] = '\0';
    snprintf(json, sizeof(json), "{\"id\":\"%s\"}", long_id);
    assert_int_equal(strlen(amity_json_id(json, strlen(json), buf, sizeof(buf))), AMITY_ID_MAX);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_client_json_scalars),
        cmocka_unit_test(test_client_json_order_kept),
        cmocka_unit_test(test_client_json_vietnamese_bytes),
        cmocka_unit_test(test_client_json_reals_flagged),
        cmocka_unit_test(test_client_json_valid_record_validates),
        cmocka_unit_test(test_client_json_nested_x_fields),
        cmocka_unit_test(test_client_json_nested_elsewhere_rejected),
        cmocka_unit_test(test_client_json_malformed_has_position),
        cmocka_unit_test(test_client_json_not_an_object),
        cmocka_unit_test(test_client_json_duplicate_key),
        cmocka_unit_test(test_client_json_invalid_utf8),
        cmocka_unit_test(test_client_json_too_many_fields),
        cmocka_unit_test(test_client_json_total_format),
        cmocka_unit_test(test_client_json_totals_object),
        cmocka_unit_test(test_client_json_id),
    };
    return cmocka_run_group_tests_name("client_json", tests, NULL, NULL);
}
