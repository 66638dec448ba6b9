/*  test_csv: CSV rows -> records (amity/csv.h): cell typing, quoted cells
 *  across lines, a byte order mark and CRLF, malformed rows reported at
 *  the line they start on while reading goes on, unusable headers, and
 *  Vietnamese text kept byte for byte. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/csv.h"

typedef struct {
    char *text;       /* the input (fmemopen needs a writable buffer) */
    FILE *fp;         /* over text */
    amity_csv_t *csv; /* the reader */
} s_in_t;

static void
s_open(s_in_t *in, const char *text)
{
    size_t len = strlen(text);

    in->text = malloc(len + 1);
    assert_non_null(in->text);
    memcpy(in->text, text, len + 1);
    in->fp = len > 0 ? fmemopen(in->text, len, "r") : fopen("/dev/null", "r");
    assert_non_null(in->fp);
    assert_int_equal(amity_csv_new(&in->csv, in->fp), 0);
}

static void
s_close(s_in_t *in)
{
    amity_csv_destroy(&in->csv);
    assert_null(in->csv);
    amity_csv_destroy(&in->csv); /* idempotent */
    (void)fclose(in->fp);
    free(in->text);
}

static const amity_field_t *
s_field(const amity_fields_t *f, const char *name)
{
    for (size_t i = 0; i < f->n_fields; i++) {
        if (f->fields[i].name_len == strlen(name) &&
            memcmp(f->fields[i].name, name, f->fields[i].name_len) == 0) {
            return &f->fields[i];
        }
    }
    return NULL;
}

static void
s_assert_str(const amity_fields_t *f, const char *name, const char *want)
{
    const amity_field_t *fld = s_field(f, name);

    assert_non_null(fld);
    assert_int_equal(fld->val.type, AMITY_VAL_STR);
    assert_int_equal(fld->val.as.s.len, strlen(want));
    assert_memory_equal(fld->val.as.s.ptr, want, strlen(want));
}

static void
s_assert_uint(const amity_fields_t *f, const char *name, uint64_t want)
{
    const amity_field_t *fld = s_field(f, name);

    assert_non_null(fld);
    assert_int_equal(fld->val.type, AMITY_VAL_UINT);
    assert_int_equal(fld->val.as.u, want);
}

static void
s_next_ok(s_in_t *in, amity_csv_row_t *row, uint64_t line)
{
    assert_int_equal(amity_csv_next(in->csv, row), 1);
    if (!row->ok) {
        fail_msg("line %llu: %s", (unsigned long long)row->line, row->why);
    }
    assert_int_equal(row->line, line);
    assert_non_null(row->fields);
}

static void
s_next_bad(s_in_t *in, amity_csv_row_t *row, uint64_t line, const char *why_part)
{
    assert_int_equal(amity_csv_next(in->csv, row), 1);
    assert_false(row->ok);
    assert_null(row->fields);
    assert_int_equal(row->line, line);
    if (strstr(row->why, why_part) == NULL) {
        fail_msg("why '%s' lacks '%s'", row->why, why_part);
    }
    assert_memory_equal(row->why, "csv: ", 5);
}

static void
test_csv_typing(void **state)
{
    s_in_t in;
    amity_csv_row_t row;
    const amity_field_t *fld;

    (void)state;
    s_open(&in, "id,rev,kind,date,country,delegations,people,amount,currency,retract,note,x-src\n"
                "d-1,2,delegation_in,2017-03-10,US,3,25,1500000.50,USD,,,crm\n"
                "d-2,,delegation_in,2017-03-11,US,1, 7 ,,,false,ok,\n"
                "d-3,x2,delegation_in,2017-03-12,US,-1,12a,12,VND,TRUE,,\n"
                "d-4,00,delegation_in,2017-03-12,US,99999999999999999999,1,,,maybe,,\n");
    s_next_ok(&in, &row, 2);
    assert_int_equal(row.fields->n_fields, 10); /* retract and note empty: absent */
    s_assert_str(row.fields, "id", "d-1");
    s_assert_uint(row.fields, "rev", 2);
    s_assert_str(row.fields, "kind", "delegation_in");
    s_assert_uint(row.fields, "delegations", 3);
    s_assert_uint(row.fields, "people", 25);
    s_assert_str(row.fields, "amount", "1500000.50"); /* money stays exact text */
    s_assert_str(row.fields, "x-src", "crm");
    assert_null(s_field(row.fields, "retract"));
    assert_null(s_field(row.fields, "note"));
    /* field order is the header's */
    assert_memory_equal(row.fields->fields[0].name, "id", 2);
    assert_memory_equal(row.fields->fields[1].name, "rev", 3);

    s_next_ok(&in, &row, 3);
    assert_null(s_field(row.fields, "rev"));
    s_assert_uint(row.fields, "people", 7); /* unquoted blanks trimmed */
    fld = s_field(row.fields, "retract");
    assert_non_null(fld);
    assert_int_equal(fld->val.type, AMITY_VAL_BOOL);
    assert_false(fld->val.as.b);

    s_next_ok(&in, &row, 4);
    s_assert_str(row.fields, "rev", "x2"); /* not digits: the server names the rule */
    s_assert_str(row.fields, "delegations", "-1");
    s_assert_str(row.fields, "people", "12a");
    s_assert_str(row.fields, "amount", "12");
    fld = s_field(row.fields, "retract");
    assert_int_equal(fld->val.type, AMITY_VAL_BOOL);
    assert_true(fld->val.as.b);

    s_next_ok(&in, &row, 5);
    s_assert_uint(row.fields, "rev", 0);
    s_assert_str(row.fields, "delegations", "99999999999999999999"); /* > UINT64_MAX */
    s_assert_str(row.fields, "retract", "maybe");
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    s_close(&in);
}

static void
test_csv_quotes_across_lines(void **state)
{
    static const char *text = "id,kind,date,activities,note\n"
                              "a-1,activity,2020-01-02,4,\"first line\n"
                              "second, with a comma and \"\"quotes\"\"\n"
                              "\n"
                              "after a blank line\"\n"
                              "a-2,activity,2020-01-03,5,\"  kept blanks  \"\n"
                              "\n"
                              "a-3,activity,2020-01-04,6,\"\"\n";
    s_in_t in;
    amity_csv_row_t row;
    size_t hlen;
    const char *h;

    (void)state;
    s_open(&in, text);
    s_next_ok(&in, &row, 2);
    s_assert_str(row.fields, "note",
                 "first line\nsecond, with a comma and \"quotes\"\n\nafter a blank line");
    /* raw: the row's own lines, exactly */
    assert_int_equal(row.raw_len, strlen("a-1,activity,2020-01-02,4,\"first line\n"
                                         "second, with a comma and \"\"quotes\"\"\n"
                                         "\n"
                                         "after a blank line\"\n"));
    assert_memory_equal(row.raw, "a-1,activity,2020-01-02,4,\"first line\n", 38);
    s_next_ok(&in, &row, 6);
    s_assert_str(row.fields, "note", "  kept blanks  ");
    s_next_ok(&in, &row, 8);
    assert_null(s_field(row.fields, "note")); /* "" is empty: absent */
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    h = amity_csv_header(in.csv, &hlen);
    assert_non_null(h);
    assert_int_equal(hlen, strlen("id,kind,date,activities,note\n"));
    assert_memory_equal(h, "id,kind,date,activities,note\n", hlen);
    s_close(&in);
}

static void
test_csv_bom_crlf_and_last_line(void **state)
{
    s_in_t in;
    amity_csv_row_t row;
    size_t hlen;

    (void)state;
    s_open(&in, "\xEF\xBB\xBFid,kind,note\r\n"
                "b-1,activity,plain\r\n"
                "b-2,activity,\"two\r\nlines\"\r\n"
                "b-3,activity,no final line break");
    assert_null(amity_csv_header(in.csv, &hlen));
    assert_int_equal(hlen, 0);
    s_next_ok(&in, &row, 2);
    s_assert_str(row.fields, "id", "b-1"); /* the BOM is not part of the first name */
    s_assert_str(row.fields, "note", "plain");
    s_next_ok(&in, &row, 3);
    s_assert_str(row.fields, "note", "two\r\nlines"); /* inside quotes: kept */
    s_next_ok(&in, &row, 5);
    s_assert_str(row.fields, "note", "no final line break");
    assert_int_equal(row.raw_len, strlen("b-3,activity,no final line break"));
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    assert_int_equal(amity_csv_bytes(in.csv), strlen("\xEF\xBB\xBFid,kind,note\r\n"
                                                     "b-1,activity,plain\r\n"
                                                     "b-2,activity,\"two\r\nlines\"\r\n"
                                                     "b-3,activity,no final line break"));
    s_close(&in);
}

static void
test_csv_malformed_rows_keep_line_numbers(void **state)
{
    s_in_t in;
    amity_csv_row_t row;

    (void)state;
    s_open(&in, "id,kind,activities\n"   /* 1 */
                "m-1,activity,1\n"       /* 2 */
                "m-2,activity\n"         /* 3: too few */
                "m-3,activity,3,extra\n" /* 4: too many */
                "m-4,act\"ivity,4\n"     /* 5: stray quote */
                "m-5,\"activity\"x,5\n"  /* 6: text after a closing quote */
                "m-6,activity,6\n"       /* 7 */
                ",,\n"                   /* 8: blank row */
                "   \n"                  /* 9: blank */
                "m-7,\"activity\n"       /* 10: a quote never closed */
                "m-8,activity,8\n");     /* 11: swallowed by it */
    s_next_ok(&in, &row, 2);
    s_next_bad(&in, &row, 3, "2 fields, the header has 3");
    assert_int_equal(row.raw_len, strlen("m-2,activity\n"));
    assert_memory_equal(row.raw, "m-2,activity\n", row.raw_len);
    s_next_bad(&in, &row, 4, "4 fields, the header has 3");
    s_next_bad(&in, &row, 5, "stray quote");
    assert_memory_equal(row.raw, "m-4,act\"ivity,4\n", row.raw_len);
    s_next_bad(&in, &row, 6, "text after a closing quote");
    s_next_ok(&in, &row, 7); /* reading went on */
    s_assert_str(row.fields, "id", "m-6");
    s_next_bad(&in, &row, 10, "quoted field not closed before the end of input");
    assert_int_equal(row.raw_len, strlen("m-7,\"activity\nm-8,activity,8\n"));
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    s_close(&in);
}

static void
test_csv_header_problems(void **state)
{
    s_in_t in;
    amity_csv_row_t row;

    (void)state;
    s_open(&in, "\n\nid,kind,id\nx-1,activity,x-1\n");
    s_next_bad(&in, &row, 3, "header: column 'id' given twice (columns 1 and 3)");
    assert_int_equal(amity_csv_next(in.csv, &row), 0); /* nothing after it */
    s_close(&in);

    s_open(&in, "id,,kind\nx-1,2,activity\n");
    s_next_bad(&in, &row, 1, "header: column 2 has no name");
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    s_close(&in);

    s_open(&in, "");
    assert_int_equal(amity_csv_next(in.csv, &row), 0);
    s_close(&in);

    s_open(&in, "id,kind\n\n   \n");
    assert_int_equal(amity_csv_next(in.csv, &row), 0); /* a header alone: no records */
    s_close(&in);
}

static void
test_csv_vietnamese_bytes(void **state)
{
    static const char *note = "Đoàn cựu chiến binh Mỹ thăm Hà Nội, \"hữu nghị\"";
    static const char *org = "Liên hiệp các tổ chức hữu nghị tỉnh Khánh Hòa";
    s_in_t in;
    amity_csv_row_t row;

    (void)state;
    s_open(&in, "id,kind,date,activities,note,x-tổ-chức\n"
                "v-1,activity,2017-03-10,2,\"Đoàn cựu chiến binh Mỹ thăm Hà Nội, \"\"hữu "
                "nghị\"\"\",Liên hiệp các tổ chức hữu nghị tỉnh Khánh Hòa\n");
    s_next_ok(&in, &row, 2);
    s_assert_str(row.fields, "note", note);
    s_assert_str(row.fields, "x-tổ-chức", org);
    s_close(&in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_typing),
        cmocka_unit_test(test_csv_quotes_across_lines),
        cmocka_unit_test(test_csv_bom_crlf_and_last_line),
        cmocka_unit_test(test_csv_malformed_rows_keep_line_numbers),
        cmocka_unit_test(test_csv_header_problems),
        cmocka_unit_test(test_csv_vietnamese_bytes),
    };

    return cmocka_run_group_tests_name("csv", tests, NULL, NULL);
}
