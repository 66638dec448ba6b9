/*  report: the period review of amity-report, as the secretariat writes it
 *  (DOMAIN.md): each item of a period beside the same period one year
 *  earlier, with the change in percent, in Vietnamese or English text or
 *  as JSON. Pure: no sockets; main.c feeds it the totals from notify.
 */
#ifndef AMITY_REPORT_H
#define AMITY_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"

#define REPORT_PERIOD_KEY_MAX 16 /**< "2017-H1" and the like, NUL included */
#define REPORT_LABEL_MAX      64 /**< a period label ("6 tháng đầu năm 2017"), NUL included */
#define REPORT_NUM_MAX        64 /**< a formatted number or change, NUL included */
#define REPORT_YEAR_MIN       1945
#define REPORT_YEAR_MAX       9999
#define REPORT_TOP_COUNTRIES  5 /**< countries on the "most delegations from" line */

typedef enum {
    REPORT_SPAN_YEAR = 0,    /**< 2017 */
    REPORT_SPAN_HALF = 1,    /**< 2017-H1 (part 1..2) */
    REPORT_SPAN_QUARTER = 2, /**< 2017-Q2 (part 1..4) */
    REPORT_SPAN_MONTH = 3,   /**< 2017-06 (part 1..12) */
} report_span_t;

/*  A reporting period as DOMAIN.md's PERIOD key names it. */
typedef struct {
    report_span_t span; /* year, half, quarter or month */
    int year;           /* REPORT_YEAR_MIN..REPORT_YEAR_MAX */
    int part;           /* 0 for a year, else the half, quarter or month (from 1) */
} report_period_t;

typedef enum {
    REPORT_LANG_VI = 0, /**< Vietnamese: 1.061, 8,2%, proper diacritics */
    REPORT_LANG_EN = 1, /**< English: 1,061, 8.2% */
} report_lang_t;

/*  Parses a period key: YYYY, YYYY-H1|H2, YYYY-Q1..Q4 or YYYY-MM, the
 *  year within REPORT_YEAR_MIN..REPORT_YEAR_MAX. Returns 0 or AMITY_EINVAL. */
int report_period_parse(const char *s, report_period_t *out);

/*  The same period one year earlier (2017-H1 -> 2016-H1). The year may
 *  drop to REPORT_YEAR_MIN - 1: a period with no records, never parsed. */
void report_period_previous(const report_period_t *p, report_period_t *out);

/*  Writes the period's key form ("2017-H1") into buf; returns its length
 *  (truncated to len - 1 when buf is too small; len >= 1). */
size_t report_period_key(const report_period_t *p, char *buf, size_t len);

/*  Writes the period's label as it starts a sentence: vi "6 tháng đầu năm
 *  2017", "Quý II năm 2017", "Tháng 6 năm 2017", "Năm 2017"; en "First half
 *  of 2017", "Second quarter of 2017", "June 2017", "Year 2017". Returns
 *  the length (truncated as report_period_key). */
size_t report_period_label(const report_period_t *p, report_lang_t lang, char *buf, size_t len);

/*  Parses "vi" or "en". Returns 0 or AMITY_EINVAL. */
int report_lang_parse(const char *s, report_lang_t *out);

typedef enum {
    REPORT_CHANGE_NONE = 0,    /**< both zero: "—" */
    REPORT_CHANGE_NEW = 1,     /**< previous zero, current not: "new" / "mới" */
    REPORT_CHANGE_PERCENT = 2, /**< (cur - prev) / |prev| * 100 */
} report_change_kind_t;

/*  Year-over-year change, exact: tenths of a percent, rounded half away
 *  from zero (47425742 against 52582989 -> negative, 98 tenths: −9.8%). */
typedef struct {
    report_change_kind_t kind; /* none, new or percent */
    bool negative;             /* a decrease (never true with tenths == 0) */
    uint64_t tenths;           /* |change| in tenths of a percent (saturates at UINT64_MAX) */
} report_change_t;

/*  Computes the change from prev to cur in exact integer arithmetic. */
void report_change(int64_t cur, int64_t prev, report_change_t *out);

/*  "+8.2%", "−9.8%" (U+2212), "0.0%", "new", "—" in English; "+8,2%",
 *  "−9,8%", "0,0%", "mới", "—" in Vietnamese. Returns the length
 *  (truncated as report_period_key; REPORT_NUM_MAX always suffices). */
size_t report_format_change(const report_change_t *c, report_lang_t lang, char *buf, size_t len);

/*  A count with thousands separators: en "1,061", vi "1.061"; negative
 *  with U+2212 ("−5"). Returns the length (as report_format_change). */
size_t report_format_count(int64_t v, report_lang_t lang, char *buf, size_t len);

/*  An amount in minor units of a currency with `exponent` decimals (0..9),
 *  without the currency: decimals only when the minor units are not zero
 *  (en "47,425,742", "1,234.50"; vi "47.425.742", "1.234,50"). Returns the
 *  length (as report_format_change). */
size_t report_format_money(int64_t minor, int exponent, report_lang_t lang, char *buf, size_t len);

/*  ------------------------------------------------------------------
 *  The report: totals of a period and its predecessor, rendered.
 */

typedef struct report report_t;

/*  Creates an empty report of period (its predecessor computed) for office
 *  ("all" or an office id; copied). Returns 0, AMITY_EINVAL (bad office),
 *  AMITY_ENOMEM. */
int report_new(report_t **out, const report_period_t *period, const char *office);

/*  Frees everything. NULL-safe, sets *self_p to NULL. */
void report_destroy(report_t **self_p);

/*  The prefix to query for the period ("2017-H1/all/") or, previous true,
 *  for its predecessor ("2016-H1/all/"). Borrowed until report_destroy. */
const char *report_prefix(const report_t *self, bool previous);

/*  Takes one total (full key PERIOD/OFFICE/KIND/GEO/METRIC, value in minor
 *  units for amount.CUR). Keys outside both prefixes, and keys the report
 *  does not use, are ignored (return 0); a key given twice keeps the last
 *  value. Returns 0 or AMITY_ENOMEM. */
int report_add(report_t *self, const char *key, int64_t value);

/*  Appends the text report in lang to out: a title line, then one line per
 *  item, each ending in "\n". Returns 0 or AMITY_ENOMEM. */
int report_text(const report_t *self, report_lang_t lang, amity_buf_t *out);

/*  Appends the report as one JSON object (sorted keys, 2-space indent,
 *  "\n" at the end): period, previous_period, office, items (per kind, per
 *  metric {current, previous, change_percent}; money under "amount" per
 *  currency with decimal strings), top_countries_received. Returns 0 or
 *  AMITY_ENOMEM. */
int report_json(const report_t *self, amity_buf_t *out);

#endif
