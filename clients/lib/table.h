/*  table: aligned text tables for people, shared by the client programs
 *  (amity-query --table, amity-subscribe's live view). Column widths count
 *  UTF-8 characters, not bytes. Not installed. */
#ifndef AMITY_TABLE_H
#define AMITY_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "amity/buf.h"

typedef struct {
    size_t n_cols;   /* columns */
    uint32_t right;  /* bit c set: column c is right-aligned (numbers) */
    char **cells;    /* row-major, n_rows * n_cols copies (owned); row 0 is the heading */
    size_t n_rows;   /* rows, heading included */
    size_t cap_rows; /* rows allocated */
} amity_table_t;

/*  An empty table of n_cols columns (1..32). */
void amity_table_init(amity_table_t *t, size_t n_cols, uint32_t right);
void amity_table_clear(amity_table_t *t);

/*  Appends a row of n_cols strings (copied; NULL is ""). The first row is
 *  the heading. Returns 0 or AMITY_ENOMEM. */
int amity_table_row(amity_table_t *t, const char *const *cells);

/*  Appends the table to out: the heading, a rule, then the rows (at most
 *  max_rows of them, 0: all, followed by "... N more rows" when cut),
 *  columns two spaces apart, a left-aligned last column not padded.
 *  Returns 0 or AMITY_ENOMEM. */
int amity_table_render(const amity_table_t *t, size_t max_rows, amity_buf_t *out);

/*  Characters in UTF-8 text s (continuation bytes not counted). */
size_t amity_table_width(const char *s);

/*  A total's value for people: money ("amount.CUR" keys) with the
 *  currency's decimals, counts as integers, the digits before the point
 *  grouped by commas ("47,425,742.00", "1,061", "-5,000"). Returns the
 *  length written (buf_len >= 40). */
size_t amity_table_value(const char *key, int64_t value, char *buf, size_t buf_len);

#endif
