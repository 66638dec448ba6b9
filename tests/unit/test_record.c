/*  test_record: every rule of DOMAIN.md's record and kind tables, with the
 *  exact reason each rejection gives. Records are built by hand as field
 *  lists (views into string literals), as proto's decoder would hand them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/record.h"

#define S_OFFICE "hoi-viet-my"

/* ---- field-list helpers ----------------------------------------------- */

static amity_field_t *
s_slot(amity_fields_t *f, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < f->n_fields; i++) {
        if (f->fields[i].name_len == len && memcmp(f->fields[i].name, name, len) == 0) {
            return &f->fields[i];
        }
    }
    assert_true(f->n_fields < AMITY_FIELDS_MAX);
    amity_field_t *slot = &f->fields[f->n_fields++];
    memset(slot, 0, sizeof(*slot));
    slot->name = name;
    slot->name_len = len;
    return slot;
}

static void
s_strn(amity_fields_t *f, const char *name, const char *v, size_t len)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_STR;
    slot->val.as.s.ptr = v;
    slot->val.as.s.len = len;
}

static void
s_str(amity_fields_t *f, const char *name, const char *v)
{
    s_strn(f, name, v, strlen(v));
}

static void
s_uint(amity_fields_t *f, const char *name, uint64_t v)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_UINT;
    slot->val.as.u = v;
}

static void
s_int(amity_fields_t *f, const char *name, int64_t v)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_INT;
    slot->val.as.i = v;
}

static void
s_float(amity_fields_t *f, const char *name, double v)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_FLOAT;
    slot->val.as.f = v;
}

static void
s_bool(amity_fields_t *f, const char *name, bool v)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_BOOL;
    slot->val.as.b = v;
}

static void
s_nil(amity_fields_t *f, const char *name)
{
    amity_field_t *slot = s_slot(f, name);
    slot->val.type = AMITY_VAL_NIL;
}

static void
s_del(amity_fields_t *f, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < f->n_fields; i++) {
        if (f->fields[i].name_len == len && memcmp(f->fields[i].name, name, len) == 0) {
            memmove(&f->fields[i], &f->fields[i + 1], (f->n_fields - i - 1) * sizeof(f->fields[0]));
            f->n_fields--;
            return;
        }
    }
    fail_msg("no field %s to delete", name);
}

/* A valid record of the given kind, dated 2023-06-15. */
static void
s_base(amity_fields_t *f, amity_kind_t kind)
{
    memset(f, 0, sizeof(*f));
    s_str(f, "id", "rec-1");
    s_str(f, "kind", amity_kind_name(kind));
    s_str(f, "date", "2023-06-15");
    switch (kind) {
    case AMITY_KIND_DELEGATION_IN:
    case AMITY_KIND_DELEGATION_OUT:
        s_str(f, "country", "US");
        s_uint(f, "delegations", 3);
        s_uint(f, "people", 11);
        break;
    case AMITY_KIND_ACTIVITY:
        s_uint(f, "activities", 7);
        break;
    case AMITY_KIND_AID_COMMITMENT:
        s_str(f, "country", "DE");
        s_uint(f, "projects", 2);
        s_str(f, "amount", "47425742.00");
        s_str(f, "currency", "USD");
        break;
    case AMITY_KIND_AID_DISBURSEMENT:
        s_str(f, "country", "JP");
        s_str(f, "amount", "1500000");
        s_str(f, "currency", "JPY");
        break;
    case AMITY_KIND_RELIEF:
        s_str(f, "amount", "60000000000");
        s_str(f, "currency", "VND");
        break;
    case AMITY_KIND_AWARD:
        s_str(f, "country", "FR");
        s_uint(f, "awards", 4);
        break;
    case AMITY_KIND_CONTACT:
        s_str(f, "country", "KR");
        s_uint(f, "partners", 9);
        break;
    case AMITY_KIND_ORG_FOUNDED:
        s_uint(f, "orgs", 1);
        break;
    default:
        fail_msg("no base record for kind %d", (int)kind);
    }
}

static amity_validate_opts_t
s_opts(void)
{
    amity_validate_opts_t opts;
    opts.office = S_OFFICE;
    /* "now" is 2024-01-12 in the deployment's zone: tomorrow is the 13th */
    opts.max_day = amity_days_from_civil(2024, 1, 13);
    return opts;
}

static void
s_accept(const amity_fields_t *f, amity_record_t *rec)
{
    char why[AMITY_WHY_MAX];
    amity_validate_opts_t opts = s_opts();
    int rc = amity_record_validate(f, &opts, rec, why);
    if (rc != 0) {
        fail_msg("rejected: %s", why);
    }
}

static void
s_reject(const amity_fields_t *f, const char *expected)
{
    char why[AMITY_WHY_MAX];
    amity_record_t rec;
    amity_validate_opts_t opts = s_opts();
    memset(why, 'z', sizeof(why));
    int rc = amity_record_validate(f, &opts, &rec, why);
    assert_int_equal(rc, AMITY_EINVAL);
    assert_non_null(memchr(why, '\0', sizeof(why)));
    assert_string_equal(why, expected);
    assert_true(amity_utf8_valid(why, strlen(why)));
    /* *out is zeroed on error */
    amity_record_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&rec, &zero, sizeof(rec));
}

/* ---- valid records ---------------------------------------------------- */

static void
test_record_every_kind_valid(void **state)
{
    (void)state;
    for (int k = AMITY_KIND_NONE + 1; k < AMITY_KIND_COUNT; k++) {
        amity_fields_t f;
        amity_record_t rec;
        s_base(&f, (amity_kind_t)k);
        s_accept(&f, &rec);
        assert_int_equal(rec.kind, k);
        assert_string_equal(rec.id, "rec-1");
        assert_int_equal(rec.rev, 1);
        assert_false(rec.retract);
        assert_int_equal(rec.year, 2023);
        assert_int_equal(rec.month, 6);
        assert_int_equal(rec.day, 15);
        assert_int_equal(rec.metric_mask, amity_kind_metrics((amity_kind_t)k));
        assert_int_equal(rec.has_amount, amity_kind_has_amount((amity_kind_t)k));
    }
}

static void
test_record_fields_filled(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_DELEGATION_IN);
    s_uint(&f, "rev", 3);
    s_str(&f, "office", S_OFFICE);
    s_str(&f, "note", "Hội Việt - Mỹ tổng kết công tác năm 2023");
    s_accept(&f, &rec);
    assert_int_equal(rec.rev, 3);
    assert_string_equal(rec.country, "US");
    assert_int_equal(rec.metrics[AMITY_METRIC_DELEGATIONS], 3);
    assert_int_equal(rec.metrics[AMITY_METRIC_PEOPLE], 11);
    assert_string_equal(rec.note, "Hội Việt - Mỹ tổng kết công tác năm 2023");
    assert_int_equal(rec.note_len, strlen("Hội Việt - Mỹ tổng kết công tác năm 2023"));
    assert_int_equal(rec.currency[0], '\0');

    s_base(&f, AMITY_KIND_AID_COMMITMENT);
    s_accept(&f, &rec);
    assert_true(rec.has_amount);
    assert_int_equal(rec.amount, 4742574200);
    assert_string_equal(rec.currency, "USD");
    assert_string_equal(rec.country, "DE");

    s_base(&f, AMITY_KIND_RELIEF);
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 60000000000);
    assert_string_equal(rec.country, "");
}

/* ---- kinds and metrics ------------------------------------------------ */

static void
test_record_kind_required_and_known(void **state)
{
    amity_fields_t f;
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_del(&f, "kind");
    s_reject(&f, "kind: required");
    s_str(&f, "kind", "party");
    s_reject(&f, "kind: 'party' is not a kind (delegation_in, delegation_out, activity, "
                 "aid_commitment, aid_disbursement, relief, award, contact, org_founded)");
    s_str(&f, "kind", "Activity");
    s_reject(&f, "kind: 'Activity' is not a kind (delegation_in, delegation_out, activity, "
                 "aid_commitment, aid_disbursement, relief, award, contact, org_founded)");
    s_uint(&f, "kind", 3);
    s_reject(&f, "kind: must be a string, not an unsigned integer");
}

static void
test_record_missing_required_metric(void **state)
{
    static const struct {
        amity_kind_t kind;
        const char *metric;
        const char *why;
    } cases[] = {
        { AMITY_KIND_DELEGATION_IN, "delegations", "delegations: required for delegation_in" },
        { AMITY_KIND_DELEGATION_IN, "people", "people: required for delegation_in" },
        { AMITY_KIND_DELEGATION_OUT, "delegations", "delegations: required for delegation_out" },
        { AMITY_KIND_DELEGATION_OUT, "people", "people: required for delegation_out" },
        { AMITY_KIND_ACTIVITY, "activities", "activities: required for activity" },
        { AMITY_KIND_AID_COMMITMENT, "projects", "projects: required for aid_commitment" },
        { AMITY_KIND_AWARD, "awards", "awards: required for award" },
        { AMITY_KIND_CONTACT, "partners", "partners: required for contact" },
        { AMITY_KIND_ORG_FOUNDED, "orgs", "orgs: required for org_founded" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        amity_fields_t f;
        s_base(&f, cases[i].kind);
        s_del(&f, cases[i].metric);
        s_reject(&f, cases[i].why);
    }
}

static void
test_record_disallowed_metric(void **state)
{
    static const struct {
        amity_kind_t kind;
        const char *metric;
        const char *why;
    } cases[] = {
        { AMITY_KIND_DELEGATION_IN, "activities", "activities: not a metric of delegation_in" },
        { AMITY_KIND_DELEGATION_OUT, "projects", "projects: not a metric of delegation_out" },
        { AMITY_KIND_ACTIVITY, "people", "people: not a metric of activity" },
        { AMITY_KIND_AID_COMMITMENT, "delegations", "delegations: not a metric of aid_commitment" },
        { AMITY_KIND_AID_DISBURSEMENT, "projects", "projects: not a metric of aid_disbursement" },
        { AMITY_KIND_RELIEF, "people", "people: not a metric of relief" },
        { AMITY_KIND_AWARD, "partners", "partners: not a metric of award" },
        { AMITY_KIND_CONTACT, "awards", "awards: not a metric of contact" },
        { AMITY_KIND_ORG_FOUNDED, "activities", "activities: not a metric of org_founded" },
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        amity_fields_t f;
        s_base(&f, cases[i].kind);
        s_uint(&f, cases[i].metric, 1);
        s_reject(&f, cases[i].why);
    }
}

static void
test_record_metric_range_and_types(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_uint(&f, "activities", 0);
    s_accept(&f, &rec);
    assert_int_equal(rec.metrics[AMITY_METRIC_ACTIVITIES], 0);
    assert_int_equal(rec.metric_mask, 1u << AMITY_METRIC_ACTIVITIES);
    s_uint(&f, "activities", 1000000000);
    s_accept(&f, &rec);
    assert_int_equal(rec.metrics[AMITY_METRIC_ACTIVITIES], 1000000000);
    s_uint(&f, "activities", 1000000001);
    s_reject(&f, "activities: 1000000001 is more than 1000000000");
    s_uint(&f, "activities", UINT64_MAX);
    s_reject(&f, "activities: 18446744073709551615 is more than 1000000000");
    s_int(&f, "activities", 12); /* a non-negative signed int is the same number */
    s_accept(&f, &rec);
    assert_int_equal(rec.metrics[AMITY_METRIC_ACTIVITIES], 12);
    s_int(&f, "activities", -1);
    s_reject(&f, "activities: -1 is negative; counts are 0 or more");
    s_float(&f, "activities", 3.0);
    s_reject(&f, "activities: must be a whole number, not a floating-point number");
    s_str(&f, "activities", "3");
    s_reject(&f, "activities: must be an unsigned integer, not a string");
    s_bool(&f, "activities", true);
    s_reject(&f, "activities: must be an unsigned integer, not a boolean");
    s_nil(&f, "activities");
    s_reject(&f, "activities: must be an unsigned integer, not nil");
}

/* ---- country ---------------------------------------------------------- */

static void
test_record_country_rules(void **state)
{
    static const struct {
        amity_kind_t kind;
        const char *why;
    } required[] = {
        { AMITY_KIND_DELEGATION_IN, "country: required for delegation_in" },
        { AMITY_KIND_DELEGATION_OUT, "country: required for delegation_out" },
        { AMITY_KIND_AID_COMMITMENT, "country: required for aid_commitment" },
        { AMITY_KIND_AID_DISBURSEMENT, "country: required for aid_disbursement" },
        { AMITY_KIND_AWARD, "country: required for award" },
        { AMITY_KIND_CONTACT, "country: required for contact" },
    };
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        s_base(&f, required[i].kind);
        s_del(&f, "country");
        s_reject(&f, required[i].why);
    }
    /* optional for activity, relief, org_founded */
    s_base(&f, AMITY_KIND_ACTIVITY);
    s_accept(&f, &rec);
    s_str(&f, "country", "LA");
    s_accept(&f, &rec);
    assert_string_equal(rec.country, "LA");
    s_base(&f, AMITY_KIND_ORG_FOUNDED);
    s_str(&f, "country", "AQ");
    s_accept(&f, &rec);

    s_base(&f, AMITY_KIND_DELEGATION_IN);
    s_str(&f, "country", "us");
    s_reject(&f, "country: 'us' is not an assigned ISO 3166-1 alpha-2 code (upper case)");
    s_str(&f, "country", "XK");
    s_reject(&f, "country: 'XK' is not an assigned ISO 3166-1 alpha-2 code (upper case)");
    s_str(&f, "country", "USA");
    s_reject(&f, "country: 'USA' is not an assigned ISO 3166-1 alpha-2 code (upper case)");
    s_str(&f, "country", "");
    s_reject(&f, "country: '' is not an assigned ISO 3166-1 alpha-2 code (upper case)");
    s_uint(&f, "country", 840);
    s_reject(&f, "country: must be a string, not an unsigned integer");
    s_base(&f, AMITY_KIND_RELIEF);
    s_str(&f, "country", "ZZ");
    s_reject(&f, "country: 'ZZ' is not an assigned ISO 3166-1 alpha-2 code (upper case)");
}

/* ---- date ------------------------------------------------------------- */

static void
test_record_calendar_dates(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_str(&f, "date", "2016-02-29");
    s_accept(&f, &rec);
    assert_int_equal(rec.month, 2);
    assert_int_equal(rec.day, 29);
    s_str(&f, "date", "2000-02-29");
    s_accept(&f, &rec);
    s_str(&f, "date", "1945-01-01");
    s_accept(&f, &rec);
    s_str(&f, "date", "2017-02-29");
    s_reject(&f, "date: 2017-02-29 is not a calendar date");
    s_str(&f, "date", "2017-02-30");
    s_reject(&f, "date: 2017-02-30 is not a calendar date");
    s_str(&f, "date", "1900-02-29");
    s_reject(&f, "date: 1900-02-29 is not a calendar date");
    s_str(&f, "date", "2017-04-31");
    s_reject(&f, "date: 2017-04-31 is not a calendar date");
    s_str(&f, "date", "2017-13-01");
    s_reject(&f, "date: 2017-13-01 is not a calendar date");
    s_str(&f, "date", "2017-00-10");
    s_reject(&f, "date: 2017-00-10 is not a calendar date");
    s_str(&f, "date", "2017-01-00");
    s_reject(&f, "date: 2017-01-00 is not a calendar date");
    s_str(&f, "date", "1944-12-31");
    s_reject(&f, "date: 1944-12-31 is before 1945-01-01");
}

static void
test_record_date_form(void **state)
{
    static const char *const bad[] = {
        "2017-2-3",   "2017/02/03", "20170203", "2017-02-03T00:00", " 2017-02-03",
        "2017-02-0a", "+017-02-03", "",         "2017-02-03 ",
    };
    amity_fields_t f;
    char expected[AMITY_WHY_MAX];
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s_str(&f, "date", bad[i]);
        (void)snprintf(expected, sizeof(expected), "date: '%s' is not in the form YYYY-MM-DD",
                       bad[i]);
        s_reject(&f, expected);
    }
    s_del(&f, "date");
    s_reject(&f, "date: required");
    s_uint(&f, "date", 20170203);
    s_reject(&f, "date: must be a string, not an unsigned integer");
}

static void
test_record_date_not_after_tomorrow(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    char why[AMITY_WHY_MAX];
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_str(&f, "date", "2024-01-12"); /* today */
    s_accept(&f, &rec);
    s_str(&f, "date", "2024-01-13"); /* tomorrow */
    s_accept(&f, &rec);
    s_str(&f, "date", "2024-01-14"); /* the day after */
    s_reject(&f, "date: 2024-01-14 is later than tomorrow");
    s_str(&f, "date", "2031-01-01");
    s_reject(&f, "date: 2031-01-01 is later than tomorrow");

    /* INT32_MAX switches the rule off (stored records re-read) */
    amity_validate_opts_t opts = s_opts();
    opts.max_day = INT32_MAX;
    assert_int_equal(amity_record_validate(&f, &opts, &rec, why), 0);
    assert_int_equal(rec.year, 2031);
}

static void
test_record_days_from_civil(void **state)
{
    (void)state;
    assert_int_equal(amity_days_from_civil(1970, 1, 1), 0);
    assert_int_equal(amity_days_from_civil(1970, 1, 2), 1);
    assert_int_equal(amity_days_from_civil(1969, 12, 31), -1);
    assert_int_equal(amity_days_from_civil(2000, 3, 1), 11017);
    assert_int_equal(amity_days_from_civil(2024, 1, 12), 19734);
    assert_int_equal(amity_days_from_civil(1945, 1, 1), -9131);
    assert_int_equal(amity_days_from_civil(2016, 3, 1) - amity_days_from_civil(2016, 2, 28), 2);
    assert_int_equal(amity_days_from_civil(2017, 3, 1) - amity_days_from_civil(2017, 2, 28), 1);
}

/* ---- id, rev, retract ------------------------------------------------- */

static void
test_record_id_rules(void **state)
{
    char id128[AMITY_ID_MAX + 2];
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    memset(id128, 'a', sizeof(id128));
    id128[AMITY_ID_MAX] = '\0';
    s_base(&f, AMITY_KIND_ACTIVITY);
    s_str(&f, "id", id128);
    s_accept(&f, &rec);
    assert_int_equal(strlen(rec.id), 128);
    id128[AMITY_ID_MAX] = 'a';
    id128[AMITY_ID_MAX + 1] = '\0';
    s_str(&f, "id", id128);
    s_reject(&f, "id: 129 bytes is longer than 128");

    s_str(&f, "id", "AZaz09._:-");
    s_accept(&f, &rec);
    assert_string_equal(rec.id, "AZaz09._:-");
    s_str(&f, "id", "");
    s_reject(&f, "id: must not be empty");
    s_str(&f, "id", "a b");
    s_reject(&f, "id: 'a b' has a character outside A-Z a-z 0-9 . _ : -");
    s_str(&f, "id", "a/b");
    s_reject(&f, "id: 'a/b' has a character outside A-Z a-z 0-9 . _ : -");
    s_str(&f, "id", "mã-1");
    s_reject(&f, "id: 'mã-1' has a character outside A-Z a-z 0-9 . _ : -");
    s_strn(&f, "id", "a\nb", 3);
    s_reject(&f, "id: 'a\\x0ab' has a character outside A-Z a-z 0-9 . _ : -");
    s_uint(&f, "id", 12);
    s_reject(&f, "id: must be a string, not an unsigned integer");
    s_del(&f, "id");
    s_reject(&f, "id: required");
}

static void
test_record_rev_rules(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_accept(&f, &rec);
    assert_int_equal(rec.rev, 1);
    s_uint(&f, "rev", 1);
    s_accept(&f, &rec);
    assert_int_equal(rec.rev, 1);
    s_uint(&f, "rev", UINT64_MAX);
    s_accept(&f, &rec);
    assert_true(rec.rev == UINT64_MAX);
    s_uint(&f, "rev", 0);
    s_reject(&f, "rev: 0 is not a revision; revisions start at 1");
    s_int(&f, "rev", -2);
    s_reject(&f, "rev: not an unsigned integer (a negative integer)");
    s_str(&f, "rev", "2");
    s_reject(&f, "rev: not an unsigned integer (a string)");
    s_float(&f, "rev", 2.0);
    s_reject(&f, "rev: not an unsigned integer (a floating-point number)");
}

static void
test_record_retract_rules(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    /* a bare retraction: id, rev, retract */
    memset(&f, 0, sizeof(f));
    s_str(&f, "id", "rec-1");
    s_uint(&f, "rev", 2);
    s_bool(&f, "retract", true);
    s_accept(&f, &rec);
    assert_true(rec.retract);
    assert_int_equal(rec.rev, 2);
    assert_string_equal(rec.id, "rec-1");
    assert_int_equal(rec.kind, AMITY_KIND_NONE);

    /* other DOMAIN fields are allowed and ignored, even broken ones */
    s_str(&f, "kind", "party");
    s_str(&f, "date", "2017-02-30");
    s_uint(&f, "people", 5);
    s_float(&f, "amount", 1.5);
    s_str(&f, "x-source", "sheet");
    s_accept(&f, &rec);
    assert_true(rec.retract);
    assert_int_equal(rec.kind, AMITY_KIND_NONE);
    assert_int_equal(rec.metric_mask, 0);
    assert_false(rec.has_amount);

    /* unknown fields are still rejected */
    s_uint(&f, "guests", 5);
    s_reject(&f, "guests: unknown field");
    s_del(&f, "guests");

    /* the sender check still applies */
    s_str(&f, "office", "other");
    s_reject(&f, "office: 'other' is not the sending office 'hoi-viet-my'");
    s_del(&f, "office");

    s_uint(&f, "rev", 1);
    s_reject(&f, "retract: a retraction needs rev 2 or higher");
    s_del(&f, "rev");
    s_reject(&f, "retract: a retraction needs rev 2 or higher");
    s_uint(&f, "rev", 2);
    s_del(&f, "id");
    s_reject(&f, "id: required");
    s_str(&f, "id", "rec-1");
    s_uint(&f, "retract", 1);
    s_reject(&f, "retract: must be true or false, not an unsigned integer");

    /* retract: false is the same as absent */
    s_base(&f, AMITY_KIND_AWARD);
    s_bool(&f, "retract", false);
    s_accept(&f, &rec);
    assert_false(rec.retract);
    assert_int_equal(rec.kind, AMITY_KIND_AWARD);
    s_del(&f, "kind");
    s_reject(&f, "kind: required");
}

/* ---- fields ----------------------------------------------------------- */

static void
test_record_unknown_and_x_fields(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_CONTACT);
    s_str(&f, "x-sheet", "Bảng 3");
    s_float(&f, "x-weight", 0.5);
    s_nil(&f, "x-");
    s_accept(&f, &rec);

    s_str(&f, "guests", "5");
    s_reject(&f, "guests: unknown field");
    s_del(&f, "guests");
    s_uint(&f, "X-sheet", 1);
    s_reject(&f, "X-sheet: unknown field");
    s_del(&f, "X-sheet");
    s_uint(&f, "Country", 1);
    s_reject(&f, "Country: unknown field");
    s_del(&f, "Country");
    s_uint(&f, "", 1);
    s_reject(&f, "(empty name): unknown field");
    s_del(&f, "");
    s_uint(&f, "bad\x01name", 1);
    s_reject(&f, "bad\\x01name: unknown field");
}

static void
test_record_duplicate_field(void **state)
{
    amity_fields_t f;
    (void)state;

    s_base(&f, AMITY_KIND_ORG_FOUNDED);
    f.fields[f.n_fields] = f.fields[0]; /* "id" twice */
    f.n_fields++;
    s_reject(&f, "id: given more than once");
}

static void
test_record_office_rules(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    char why[AMITY_WHY_MAX];
    (void)state;

    s_base(&f, AMITY_KIND_AWARD);
    s_str(&f, "office", S_OFFICE);
    s_accept(&f, &rec);
    s_str(&f, "office", "hoi-viet-phap");
    s_reject(&f, "office: 'hoi-viet-phap' is not the sending office 'hoi-viet-my'");
    s_str(&f, "office", "");
    s_reject(&f, "office: '' is not the sending office 'hoi-viet-my'");
    s_uint(&f, "office", 1);
    s_reject(&f, "office: must be a string, not an unsigned integer");

    /* without a sender to compare (opts.office NULL) any string passes */
    amity_validate_opts_t opts = s_opts();
    opts.office = NULL;
    s_str(&f, "office", "hoi-viet-phap");
    assert_int_equal(amity_record_validate(&f, &opts, &rec, why), 0);
}

static void
test_record_scope_and_level(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_ACTIVITY);
    s_str(&f, "scope", "bilateral");
    s_accept(&f, &rec);
    assert_int_equal(rec.scope, AMITY_SCOPE_BILATERAL);
    s_str(&f, "scope", "multilateral");
    s_accept(&f, &rec);
    assert_int_equal(rec.scope, AMITY_SCOPE_MULTILATERAL);
    s_str(&f, "scope", "global");
    s_reject(&f, "scope: 'global' is not bilateral or multilateral");
    s_bool(&f, "scope", true);
    s_reject(&f, "scope: must be a string, not a boolean");
    s_del(&f, "scope");
    s_str(&f, "level", "local");
    s_reject(&f, "level: not allowed for activity");

    s_base(&f, AMITY_KIND_ORG_FOUNDED);
    s_str(&f, "level", "central");
    s_accept(&f, &rec);
    assert_int_equal(rec.level, AMITY_LEVEL_CENTRAL);
    s_str(&f, "level", "local");
    s_accept(&f, &rec);
    assert_int_equal(rec.level, AMITY_LEVEL_LOCAL);
    s_str(&f, "level", "provincial");
    s_reject(&f, "level: 'provincial' is not central or local");
    s_del(&f, "level");
    s_str(&f, "scope", "bilateral");
    s_reject(&f, "scope: not allowed for org_founded");
}

/* ---- note ------------------------------------------------------------- */

static void
test_record_note_utf8(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        { "\xC0\xAF", 2 },         /* overlong '/' */
        { "\xE0\x80\xAF", 3 },     /* overlong, 3 bytes */
        { "\xF0\x80\x80\xAF", 4 }, /* overlong, 4 bytes */
        { "\xED\xA0\x80", 3 },     /* U+D800, a surrogate */
        { "\xED\xBF\xBF", 3 },     /* U+DFFF */
        { "\xF4\x90\x80\x80", 4 }, /* U+110000 */
        { "\xF5\x80\x80\x80", 4 }, /* lead byte beyond F4 */
        { "H\xE1\xBB", 3 },        /* truncated "Hộ" */
        { "\x80", 1 },             /* lone continuation byte */
        { "a\xC3"
          "b",
          3 }, /* lead without continuation */
        { "\xFF", 1 },
    };
    static const char *const good[] = {
        "Hội Việt - Mỹ tổng kết công tác năm 2023",
        "\xEF\xBF\xBF",     /* U+FFFF */
        "\xF4\x8F\xBF\xBF", /* U+10FFFF */
        "\xED\x9F\xBF",     /* U+D7FF */
        "\xEE\x80\x80",     /* U+E000 */
        "",
    };
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_DELEGATION_OUT);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s_str(&f, "note", good[i]);
        s_accept(&f, &rec);
        assert_string_equal(rec.note, good[i]);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s_strn(&f, "note", bad[i].bytes, bad[i].len);
        s_reject(&f, "note: not valid UTF-8");
        assert_false(amity_utf8_valid(bad[i].bytes, bad[i].len));
    }
    s_uint(&f, "note", 1);
    s_reject(&f, "note: must be a string, not an unsigned integer");
}

static void
test_record_note_length(void **state)
{
    static char note[AMITY_NOTE_MAX + 2];
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    memset(note, 'n', sizeof(note));
    s_base(&f, AMITY_KIND_ACTIVITY);
    s_strn(&f, "note", note, AMITY_NOTE_MAX);
    s_accept(&f, &rec);
    assert_int_equal(rec.note_len, 1024);
    assert_int_equal(rec.note[1024], '\0');
    s_strn(&f, "note", note, AMITY_NOTE_MAX + 1);
    s_reject(&f, "note: 1025 bytes is more than 1024");
}

/* ---- money ------------------------------------------------------------ */

static void
test_record_amount_forms(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_AID_COMMITMENT);
    s_uint(&f, "amount", 52582989);
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 5258298900);
    s_str(&f, "amount", "52582989");
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 5258298900);
    s_str(&f, "amount", "0.05");
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 5);
    s_str(&f, "amount", "12.5");
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 1250);
    s_uint(&f, "amount", 0);
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 0);
    assert_true(rec.has_amount);

    s_str(&f, "currency", "BHD");
    s_str(&f, "amount", "1.234");
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 1234);

    s_str(&f, "currency", "USD");
    s_int(&f, "amount", -5);
    s_reject(&f, "amount: must not be negative");
    s_str(&f, "amount", "-5");
    s_reject(&f, "amount: must not be negative");
    s_float(&f, "amount", 12.5);
    s_reject(&f, "amount: floating-point numbers are not exact; give a decimal string");
    s_bool(&f, "amount", true);
    s_reject(&f, "amount: must be a decimal string or an unsigned integer, not a boolean");
    s_str(&f, "amount", "1e5");
    s_reject(&f, "amount: '1e5' is not a decimal number (digits, optionally '.' and decimals)");
    s_str(&f, "amount", "12.5.0");
    s_reject(&f, "amount: '12.5.0' is not a decimal number (digits, optionally '.' and decimals)");
    s_str(&f, "amount", "");
    s_reject(&f, "amount: must not be empty");
    s_str(&f, "amount", "99999999999999999999");
    s_reject(&f, "amount: 99999999999999999999 is too large");
    s_uint(&f, "amount", 92233720368547759u);
    s_reject(&f, "amount: 92233720368547759 is too large");
    s_uint(&f, "amount", 92233720368547758u);
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 9223372036854775800);
}

static void
test_record_currency_rules(void **state)
{
    amity_fields_t f;
    amity_record_t rec;
    (void)state;

    s_base(&f, AMITY_KIND_AID_DISBURSEMENT);
    s_del(&f, "currency");
    s_reject(&f, "currency: required with amount");
    s_str(&f, "currency", "usd");
    s_reject(&f, "currency: 'usd' is not an active ISO 4217 code (upper case)");
    s_str(&f, "currency", "XAU");
    s_reject(&f, "currency: 'XAU' is not an active ISO 4217 code (upper case)");
    s_str(&f, "currency", "HRK");
    s_reject(&f, "currency: 'HRK' is not an active ISO 4217 code (upper case)");
    s_uint(&f, "currency", 840);
    s_reject(&f, "currency: must be a string, not an unsigned integer");

    /* more decimals than the currency has */
    s_str(&f, "currency", "USD");
    s_str(&f, "amount", "1.234");
    s_reject(&f, "amount: 1.234 has more decimals than USD allows (2)");
    s_str(&f, "currency", "VND");
    s_str(&f, "amount", "1.5");
    s_reject(&f, "amount: 1.5 has more decimals than VND allows (0)");
    s_str(&f, "currency", "JPY");
    s_str(&f, "amount", "100.0");
    s_reject(&f, "amount: 100.0 has more decimals than JPY allows (0)");
    s_str(&f, "amount", "100");
    s_accept(&f, &rec);
    assert_int_equal(rec.amount, 100);
    assert_string_equal(rec.currency, "JPY");

    /* amount required for the money kinds */
    s_base(&f, AMITY_KIND_RELIEF);
    s_del(&f, "amount");
    s_reject(&f, "amount: required for relief");
    s_del(&f, "currency");
    s_reject(&f, "amount: required for relief");
    s_base(&f, AMITY_KIND_AID_COMMITMENT);
    s_del(&f, "amount");
    s_reject(&f, "amount: required for aid_commitment");

    /* and not allowed for the others */
    s_base(&f, AMITY_KIND_ACTIVITY);
    s_str(&f, "amount", "5");
    s_str(&f, "currency", "USD");
    s_reject(&f, "amount: not allowed for activity");
    s_del(&f, "amount");
    s_reject(&f, "currency: not allowed without amount");
}

/* ---- reasons, names, equality ----------------------------------------- */

static void
test_record_reason_bounded(void **state)
{
    static char huge[4000];
    amity_fields_t f;
    char why[AMITY_WHY_MAX];
    amity_record_t rec;
    amity_validate_opts_t opts = s_opts();
    (void)state;

    /* a long Vietnamese kind is cut at a character boundary */
    size_t len = 0;
    while (len + strlen("Việt") < sizeof(huge)) {
        memcpy(huge + len, "Việt", strlen("Việt"));
        len += strlen("Việt");
    }
    s_base(&f, AMITY_KIND_ACTIVITY);
    s_strn(&f, "kind", huge, len);
    assert_int_equal(amity_record_validate(&f, &opts, &rec, why), AMITY_EINVAL);
    assert_true(strlen(why) < AMITY_WHY_MAX);
    assert_true(amity_utf8_valid(why, strlen(why)));
    assert_non_null(strstr(why, "...' is not a kind"));

    /* binary junk comes out escaped and printable */
    memset(huge, 0xFF, sizeof(huge));
    s_strn(&f, "kind", huge, sizeof(huge));
    assert_int_equal(amity_record_validate(&f, &opts, &rec, why), AMITY_EINVAL);
    assert_true(strlen(why) < AMITY_WHY_MAX);
    for (size_t i = 0; why[i] != '\0'; i++) {
        assert_true(why[i] >= 0x20 && why[i] < 0x7F);
    }
    /* an unknown field name of junk too */
    s_base(&f, AMITY_KIND_ACTIVITY);
    amity_field_t *junk = &f.fields[f.n_fields++];
    junk->name = huge;
    junk->name_len = 300;
    junk->val.type = AMITY_VAL_NIL;
    assert_int_equal(amity_record_validate(&f, &opts, &rec, why), AMITY_EINVAL);
    assert_true(strlen(why) < AMITY_WHY_MAX);
    assert_non_null(strstr(why, "...: unknown field"));
}

static void
test_record_sanitize(void **state)
{
    char out[16];
    (void)state;

    assert_int_equal(amity_text_sanitize(out, sizeof(out), "abc", 3), 3);
    assert_string_equal(out, "abc");
    assert_int_equal(amity_text_sanitize(out, sizeof(out), "a\\b", 3), 4);
    assert_string_equal(out, "a\\\\b");
    amity_text_sanitize(out, sizeof(out), "\x7f\xc2\x85", 3);
    assert_string_equal(out, "\\x7f\\xc2\\x85");
    amity_text_sanitize(out, sizeof(out), "Mỹ", strlen("Mỹ"));
    assert_string_equal(out, "Mỹ");
    amity_text_sanitize(out, sizeof(out), "abcdefghijklmnopqrstuvwxyz", 26);
    assert_string_equal(out, "abcdefghijkl...");
    amity_text_sanitize(out, sizeof(out), "ỹỹỹỹỹỹ", strlen("ỹỹỹỹỹỹ"));
    assert_string_equal(out, "ỹỹỹỹ...");
    amity_text_sanitize(out, sizeof(out), "", 0);
    assert_string_equal(out, "");
    amity_text_sanitize(out, 4, "abcdef", 6);
    assert_string_equal(out, "...");
}

static void
test_record_names(void **state)
{
    (void)state;
    for (int k = AMITY_KIND_NONE + 1; k < AMITY_KIND_COUNT; k++) {
        const char *name = amity_kind_name((amity_kind_t)k);
        assert_non_null(name);
        assert_int_equal(amity_kind_parse(name, strlen(name)), k);
    }
    assert_null(amity_kind_name(AMITY_KIND_NONE));
    assert_null(amity_kind_name(AMITY_KIND_COUNT));
    assert_int_equal(amity_kind_parse("relie", 5), AMITY_KIND_NONE);
    assert_int_equal(amity_kind_parse("reliefs", 7), AMITY_KIND_NONE);
    assert_int_equal(amity_kind_parse("relief", 6), AMITY_KIND_RELIEF);
    assert_string_equal(amity_metric_name(AMITY_METRIC_DELEGATIONS), "delegations");
    assert_string_equal(amity_metric_name(AMITY_METRIC_ORGS), "orgs");
    assert_null(amity_metric_name(AMITY_METRIC_COUNT));
    assert_int_equal(amity_kind_metrics(AMITY_KIND_DELEGATION_IN),
                     (1u << AMITY_METRIC_DELEGATIONS) | (1u << AMITY_METRIC_PEOPLE));
    assert_int_equal(amity_kind_metrics(AMITY_KIND_RELIEF), 0);
    assert_true(amity_kind_has_amount(AMITY_KIND_AID_DISBURSEMENT));
    assert_false(amity_kind_has_amount(AMITY_KIND_AWARD));
    assert_true(amity_kind_needs_country(AMITY_KIND_CONTACT));
    assert_false(amity_kind_needs_country(AMITY_KIND_RELIEF));
}

static void
test_record_equal(void **state)
{
    amity_fields_t f;
    amity_record_t a;
    amity_record_t b;
    (void)state;

    s_base(&f, AMITY_KIND_AID_COMMITMENT);
    s_str(&f, "note", "ghi chú");
    s_accept(&f, &a);
    /* the same content in another form: integer amount, other field order */
    s_base(&f, AMITY_KIND_AID_COMMITMENT);
    s_uint(&f, "amount", 47425742);
    s_str(&f, "note", "ghi chú");
    s_str(&f, "x-extra", "ignored");
    s_accept(&f, &b);
    assert_true(amity_record_equal(&a, &b));
    s_uint(&f, "projects", 3);
    s_accept(&f, &b);
    assert_false(amity_record_equal(&a, &b));
    s_uint(&f, "projects", 2);
    s_str(&f, "note", "ghi chu");
    s_accept(&f, &b);
    assert_false(amity_record_equal(&a, &b));
    s_str(&f, "note", "ghi chú");
    s_uint(&f, "rev", 2);
    s_accept(&f, &b);
    assert_false(amity_record_equal(&a, &b));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_every_kind_valid),
        cmocka_unit_test(test_record_fields_filled),
        cmocka_unit_test(test_record_kind_required_and_known),
        cmocka_unit_test(test_record_missing_required_metric),
        cmocka_unit_test(test_record_disallowed_metric),
        cmocka_unit_test(test_record_metric_range_and_types),
        cmocka_unit_test(test_record_country_rules),
        cmocka_unit_test(test_record_calendar_dates),
        cmocka_unit_test(test_record_date_form),
        cmocka_unit_test(test_record_date_not_after_tomorrow),
        cmocka_unit_test(test_record_days_from_civil),
        cmocka_unit_test(test_record_id_rules),
        cmocka_unit_test(test_record_rev_rules),
        cmocka_unit_test(test_record_retract_rules),
        cmocka_unit_test(test_record_unknown_and_x_fields),
        cmocka_unit_test(test_record_duplicate_field),
        cmocka_unit_test(test_record_office_rules),
        cmocka_unit_test(test_record_scope_and_level),
        cmocka_unit_test(test_record_note_utf8),
        cmocka_unit_test(test_record_note_length),
        cmocka_unit_test(test_record_amount_forms),
        cmocka_unit_test(test_record_currency_rules),
        cmocka_unit_test(test_record_reason_bounded),
        cmocka_unit_test(test_record_sanitize),
        cmocka_unit_test(test_record_names),
        cmocka_unit_test(test_record_equal),
    };
    return cmocka_run_group_tests_name("record", tests, NULL, NULL);
}
