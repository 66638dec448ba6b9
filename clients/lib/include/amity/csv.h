/*  csv: records from CSV text, for amity-submit and for offices' own
 *  programs. The first non-blank row is a header naming the fields of a
 *  record (DOMAIN.md: id, rev, kind, date, country, the metrics, amount,
 *  currency, scope, level, note, retract, x-...); every later row is one
 *  record. RFC 4180 quoting: a quoted cell may hold commas, doubled quotes
 *  and line breaks. Cells are typed by their column: rev and the count
 *  metrics become unsigned integers when they are all digits (otherwise
 *  they stay text, and the server says what is wrong with them), retract
 *  true/false a boolean, everything else (amount included: exact decimal
 *  text) a string, byte for byte. An empty cell is an absent field.
 *  Unquoted cells lose surrounding blanks; a UTF-8 byte order mark at the
 *  start is skipped; lines may end in LF or CRLF.
 */
#ifndef AMITY_CSV_H
#define AMITY_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "amity/err.h"
#include "amity/record.h"

#define AMITY_CSV_LINE_MAX   1048576 /**< bytes in one physical line (1 MiB) */
#define AMITY_CSV_RECORD_MAX 1048576 /**< bytes in one record, its lines together (1 MiB) */

typedef struct amity_csv amity_csv_t;

/*  One row as read: a record, or what is wrong with it. Everything is lent
 *  until the next amity_csv_next or amity_csv_destroy. */
typedef struct {
    uint64_t line;                /**< physical line (from 1) where the row starts */
    bool ok;                      /**< fields holds the record; else why says what is wrong */
    const amity_fields_t *fields; /**< the record (views into the reader), NULL unless ok */
    const char *raw;              /**< the row's text as read, line ends included */
    size_t raw_len;               /**< bytes in raw */
    char why[AMITY_WHY_MAX];      /**< "csv: 5 fields, the header has 7" when !ok */
} amity_csv_row_t;

/*  Creates a reader of fp (borrowed: it must outlive the reader; nothing
 *  is read before the first amity_csv_next). Returns 0 or AMITY_ENOMEM. */
int amity_csv_new(amity_csv_t **out, FILE *fp);

/*  Frees the reader (not fp). NULL-safe; sets *self_p to NULL. */
void amity_csv_destroy(amity_csv_t **self_p);

/*  Reads the next row. Returns 1 with *row filled, 0 at the end of input,
 *  AMITY_EIO (read error; errno as set by the read) or AMITY_ENOMEM.
 *  A malformed row (a stray quote, text after a closing quote, a quote
 *  never closed, a cell count other than the header's, an overlong line)
 *  comes back with ok false and the reading goes on at the next line. An
 *  unusable header (a column without a name, a name given twice, more than
 *  AMITY_FIELDS_MAX columns) comes back the same way and ends the input:
 *  nothing after it can be read. Blank rows (nothing but blanks, or only
 *  empty cells) are skipped. */
int amity_csv_next(amity_csv_t *self, amity_csv_row_t *row);

/*  The header row's text as read (line end included), for writing a file
 *  of rejected rows that can be fixed and read again; NULL (and *len 0)
 *  before the header was read. Lent until amity_csv_destroy. */
const char *amity_csv_header(const amity_csv_t *self, size_t *len);

/*  Bytes read from fp so far (for progress reports). */
uint64_t amity_csv_bytes(const amity_csv_t *self);

#endif
