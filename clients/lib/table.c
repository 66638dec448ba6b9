/*  table: aligned text tables for the client programs. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/client.h"
#include "amity/err.h"
#include "table.h"

#define S_GAP 2 /* spaces between columns */

void
amity_table_init(amity_table_t *t, size_t n_cols, uint32_t right)
{
    AMITY_ASSERT(t != NULL && n_cols >= 1 && n_cols <= 32);
    memset(t, 0, sizeof(*t));
    t->n_cols = n_cols;
    t->right = right;
}

void
amity_table_clear(amity_table_t *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    t->cells = NULL;
    t->n_rows = 0;
    t->cap_rows = 0;
}

int
amity_table_row(amity_table_t *t, const char *const *cells)
{
    AMITY_ASSERT(t != NULL && cells != NULL);
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 64;
        char **c = realloc(t->cells, cap * t->n_cols * sizeof(*c));
        if (c == NULL) {
            return AMITY_ENOMEM;
        }
        t->cells = c;
        t->cap_rows = cap;
    }
    char **row = &t->cells[t->n_rows * t->n_cols];
    for (size_t c = 0; c < t->n_cols; c++) {
        row[c] = strdup(cells[c] != NULL ? cells[c] : "");
        if (row[c] == NULL) {
            while (c > 0) {
                free(row[--c]);
            }
            return AMITY_ENOMEM;
        }
    }
    t->n_rows++;
    return 0;
}

size_t
amity_table_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if ((*p & 0xc0) != 0x80) {
            n++;
        }
    }
    return n;
}

static int
s_pad(amity_buf_t *out, size_t n)
{
    static const char spaces[] = "                                ";
    int rc = 0;
    while (rc == 0 && n > 0) {
        size_t k = n < sizeof(spaces) - 1 ? n : sizeof(spaces) - 1;
        rc = amity_buf_append(out, spaces, k);
        n -= k;
    }
    return rc;
}

/*  One line: cells padded to widths, trailing blanks left out. */
static int
s_line(const amity_table_t *t, char *const *cells, const size_t *width, amity_buf_t *out)
{
    int rc = 0;
    size_t last = t->n_cols - 1;
    for (size_t c = 0; rc == 0 && c < t->n_cols; c++) {
        size_t w = amity_table_width(cells[c]);
        bool right = (t->right >> c) & 1u;
        if (c > 0) {
            rc = s_pad(out, S_GAP);
        }
        if (rc == 0 && right) {
            rc = s_pad(out, width[c] - w);
        }
        if (rc == 0) {
            rc = amity_buf_append(out, cells[c], strlen(cells[c]));
        }
        if (rc == 0 && !right && c < last) {
            rc = s_pad(out, width[c] - w);
        }
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "\n", 1);
    }
    return rc;
}

int
amity_table_render(const amity_table_t *t, size_t max_rows, amity_buf_t *out)
{
    size_t width[32] = { 0 };
    size_t shown;
    int rc = 0;

    AMITY_ASSERT(t != NULL && out != NULL);
    if (t->n_rows == 0) {
        return 0;
    }
    shown = t->n_rows - 1;
    if (max_rows > 0 && shown > max_rows) {
        shown = max_rows;
    }
    for (size_t r = 0; r <= shown; r++) {
        for (size_t c = 0; c < t->n_cols; c++) {
            size_t w = amity_table_width(t->cells[r * t->n_cols + c]);
            if (w > width[c]) {
                width[c] = w;
            }
        }
    }
    rc = s_line(t, t->cells, width, out);
    for (size_t c = 0; rc == 0 && c < t->n_cols; c++) {
        if (c > 0) {
            rc = s_pad(out, S_GAP);
        }
        for (size_t k = 0; rc == 0 && k < width[c]; k++) {
            rc = amity_buf_append(out, "-", 1);
        }
    }
    if (rc == 0) {
        rc = amity_buf_append(out, "\n", 1);
    }
    for (size_t r = 1; rc == 0 && r <= shown; r++) {
        rc = s_line(t, &t->cells[r * t->n_cols], width, out);
    }
    if (rc == 0 && shown < t->n_rows - 1) {
        char more[64];
        int n = snprintf(more, sizeof(more), "... %zu more rows\n", t->n_rows - 1 - shown);
        rc = amity_buf_append(out, more, (size_t)n);
    }
    return rc;
}

size_t
amity_table_value(const char *key, int64_t value, char *buf, size_t buf_len)
{
    char plain[64];
    size_t len = amity_total_format(key, value, plain, sizeof(plain), NULL);
    size_t start = plain[0] == '-' ? 1 : 0;
    size_t int_end = start;
    size_t o = 0;

    AMITY_ASSERT(buf != NULL && buf_len >= 40);
    while (int_end < len && plain[int_end] >= '0' && plain[int_end] <= '9') {
        int_end++;
    }
    if (start == 1) {
        buf[o++] = '-';
    }
    for (size_t i = start; i < int_end && o + 2 < buf_len; i++) {
        size_t left = int_end - i; /* digits from here to the point */
        if (i > start && left % 3 == 0) {
            buf[o++] = ',';
        }
        buf[o++] = plain[i];
    }
    for (size_t i = int_end; i < len && o + 1 < buf_len; i++) {
        buf[o++] = plain[i];
    }
    buf[o] = '\0';
    return o;
}
