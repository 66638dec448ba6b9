/*  csv: CSV rows -> record field lists (amity/csv.h), for amity-submit.
 *
 *  libcsv parses; this file feeds it one physical line at a time so that
 *  every row knows the line it starts on and its own text (a quoted cell
 *  may span lines). Only LF ends a row (CR is a blank, trimmed outside
 *  quotes and kept inside them), so a row always ends at the end of a
 *  line. Strict mode makes a stray quote an error; after one, the parser
 *  is reset and reading resumes at the next line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <csv.h>

#include "amity/buf.h"
#include "amity/csv.h"

#define S_COLS_MAX AMITY_FIELDS_MAX

typedef enum {
    S_CELL_STR = 0, /* text, byte for byte */
    S_CELL_UINT,    /* an unsigned integer when all digits, else text */
    S_CELL_BOOL,    /* true/false, else text */
} s_cell_type_t;

struct amity_csv {
    FILE *fp;                        /* input (borrowed) */
    struct csv_parser parser;        /* libcsv state */
    bool parser_live;                /* parser initialised (csv_init without csv_free) */
    uint64_t line;                   /* physical lines read so far */
    uint64_t bytes;                  /* bytes read so far */
    bool header_done;                /* the header row was read */
    bool ended;                      /* no more rows: end of input, or an unusable header */
    bool in_row;                     /* a row has begun and not yet ended */
    uint64_t row_line;               /* the line the current row began on */
    bool row_done;                   /* libcsv ended the row (its cb2) */
    amity_buf_t line_buf;            /* the current physical line */
    amity_buf_t raw;                 /* the current row's text */
    amity_buf_t header_raw;          /* the header row's text */
    amity_buf_t names;               /* header names, back to back */
    size_t name_off[S_COLS_MAX];     /* each name's offset in names */
    size_t name_len[S_COLS_MAX];     /* each name's length */
    s_cell_type_t types[S_COLS_MAX]; /* each column's cell type */
    size_t n_cols;                   /* columns in the header */
    amity_buf_t cells;               /* the current row's cells, back to back */
    size_t cell_off[S_COLS_MAX];     /* each cell's offset in cells */
    size_t cell_len[S_COLS_MAX];     /* each cell's length */
    size_t n_cells;                  /* cells in the current row (may exceed S_COLS_MAX) */
    bool nomem;                      /* a callback could not allocate */
    amity_fields_t fields;           /* the last record's fields */
};

static void s_why(amity_csv_row_t *row, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_why(amity_csv_row_t *row, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(row->why, sizeof(row->why), fmt, ap);
    va_end(ap);
    row->ok = false;
    row->fields = NULL;
}

static int
s_is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int
s_is_term(unsigned char c)
{
    return c == '\n';
}

static int
s_parser_init(amity_csv_t *self)
{
    if (csv_init(&self->parser, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        return AMITY_ENOMEM;
    }
    csv_set_space_func(&self->parser, s_is_blank);
    csv_set_term_func(&self->parser, s_is_term);
    self->parser_live = true;
    return 0;
}

/*  Forgets the row in progress and starts the parser afresh. */
static int
s_parser_reset(amity_csv_t *self)
{
    if (self->parser_live) {
        csv_free(&self->parser);
        self->parser_live = false;
    }
    self->in_row = false;
    self->row_done = false;
    self->n_cells = 0;
    amity_buf_reset(&self->cells);
    return s_parser_init(self);
}

/* libcsv: one cell ended. */
static void
s_on_cell(void *s, size_t len, void *arg)
{
    amity_csv_t *self = arg;

    if (self->n_cells < S_COLS_MAX) {
        self->cell_off[self->n_cells] = self->cells.len;
        self->cell_len[self->n_cells] = len;
        if (len > 0 && amity_buf_append(&self->cells, s, len) != 0) {
            self->nomem = true;
        }
    }
    self->n_cells++;
}

/* libcsv: the row ended. */
static void
s_on_row(int c, void *arg)
{
    amity_csv_t *self = arg;

    (void)c;
    self->row_done = true;
}

int
amity_csv_new(amity_csv_t **out, FILE *fp)
{
    amity_csv_t *self;

    AMITY_ASSERT(out != NULL && fp != NULL);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->fp = fp;
    amity_buf_init(&self->line_buf);
    amity_buf_init(&self->raw);
    amity_buf_init(&self->header_raw);
    amity_buf_init(&self->names);
    amity_buf_init(&self->cells);
    if (s_parser_init(self) != 0) {
        free(self);
        return AMITY_ENOMEM;
    }
    *out = self;
    return 0;
}

void
amity_csv_destroy(amity_csv_t **self_p)
{
    amity_csv_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    if (self->parser_live) {
        csv_free(&self->parser);
    }
    amity_buf_clear(&self->line_buf);
    amity_buf_clear(&self->raw);
    amity_buf_clear(&self->header_raw);
    amity_buf_clear(&self->names);
    amity_buf_clear(&self->cells);
    free(self);
    *self_p = NULL;
}

const char *
amity_csv_header(const amity_csv_t *self, size_t *len)
{
    AMITY_ASSERT(self != NULL && len != NULL);
    if (!self->header_done) {
        *len = 0;
        return NULL;
    }
    *len = self->header_raw.len;
    return (const char *)self->header_raw.data;
}

uint64_t
amity_csv_bytes(const amity_csv_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->bytes;
}

/*  Reads one physical line (its LF included) into line_buf. Returns 1
 *  with a line, 0 at the end of input, AMITY_EIO, AMITY_ENOMEM. A line
 *  longer than AMITY_CSV_LINE_MAX is read to its end, kept empty, and
 *  flagged with *too_long. */
static int
s_read_line(amity_csv_t *self, bool *too_long)
{
    int c;
    unsigned char ch;

    amity_buf_reset(&self->line_buf);
    *too_long = false;
    for (;;) {
        c = getc_unlocked(self->fp);
        if (c == EOF) {
            break;
        }
        self->bytes++;
        ch = (unsigned char)c;
        if (!*too_long) {
            if (self->line_buf.len >= AMITY_CSV_LINE_MAX) {
                *too_long = true;
                amity_buf_reset(&self->line_buf);
            } else if (amity_buf_append(&self->line_buf, &ch, 1) != 0) {
                return AMITY_ENOMEM;
            }
        }
        if (ch == '\n') {
            return 1;
        }
    }
    if (ferror(self->fp)) {
        return AMITY_EIO;
    }
    return (self->line_buf.len > 0 || *too_long) ? 1 : 0;
}

static bool
s_blank_text(const uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!s_is_blank(p[i]) && p[i] != '\n') {
            return false;
        }
    }
    return true;
}

static s_cell_type_t
s_column_type(const char *name, size_t len)
{
    static const char *const uints[] = { "rev",      "delegations", "people",   "activities",
                                         "projects", "awards",      "partners", "orgs" };

    for (size_t i = 0; i < sizeof(uints) / sizeof(uints[0]); i++) {
        if (strlen(uints[i]) == len && memcmp(uints[i], name, len) == 0) {
            return S_CELL_UINT;
        }
    }
    if (len == 7 && memcmp(name, "retract", 7) == 0) {
        return S_CELL_BOOL;
    }
    return S_CELL_STR;
}

/*  Shows a header name in a message: at most 64 bytes, controls as '?'. */
static void
s_shown(char *dst, size_t dst_len, const uint8_t *p, size_t len)
{
    size_t n = 0;

    for (size_t i = 0; i < len && i < 64 && n + 1 < dst_len; i++) {
        dst[n++] = (char)((p[i] < 0x20 || p[i] == 0x7f) ? '?' : p[i]);
    }
    dst[n] = '\0';
}

/*  Takes the row just ended as the header. Returns 0, or 1 with row set
 *  to what is wrong, or AMITY_ENOMEM. */
static int
s_take_header(amity_csv_t *self, amity_csv_row_t *row)
{
    char shown[80];

    if (self->n_cells > S_COLS_MAX) {
        s_why(row, "csv: header: more than %d columns (%zu)", S_COLS_MAX, self->n_cells);
        return 1;
    }
    amity_buf_reset(&self->names);
    for (size_t i = 0; i < self->n_cells; i++) {
        const uint8_t *name = self->cells.data + self->cell_off[i];
        size_t len = self->cell_len[i];

        if (len == 0) {
            s_why(row, "csv: header: column %zu has no name", i + 1);
            return 1;
        }
        for (size_t j = 0; j < i; j++) {
            if (self->name_len[j] == len &&
                memcmp(self->names.data + self->name_off[j], name, len) == 0) {
                s_shown(shown, sizeof(shown), name, len);
                s_why(row, "csv: header: column '%s' given twice (columns %zu and %zu)", shown,
                      j + 1, i + 1);
                return 1;
            }
        }
        self->name_off[i] = self->names.len;
        self->name_len[i] = len;
        if (amity_buf_append(&self->names, name, len) != 0) {
            return AMITY_ENOMEM;
        }
        self->types[i] = s_column_type((const char *)name, len);
    }
    self->n_cols = self->n_cells;
    if (amity_buf_set(&self->header_raw, self->raw.data, self->raw.len) != 0) {
        return AMITY_ENOMEM;
    }
    self->header_done = true;
    return 0;
}

static bool
s_parse_uint(const uint8_t *p, size_t len, uint64_t *out)
{
    uint64_t v = 0;

    if (len == 0 || len > 20) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        uint64_t d;
        if (p[i] < '0' || p[i] > '9') {
            return false;
        }
        d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return false;
        }
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

static bool
s_word_is(const uint8_t *p, size_t len, const char *word)
{
    size_t n = strlen(word);

    if (len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (c >= 'A' && c <= 'Z') {
            c = (uint8_t)(c - 'A' + 'a');
        }
        if (c != (uint8_t)word[i]) {
            return false;
        }
    }
    return true;
}

/*  Turns the row just ended into a record. Returns 1 with row filled
 *  (ok or not), 0 when the row is blank (only empty cells). */
static int
s_take_record(amity_csv_t *self, amity_csv_row_t *row)
{
    amity_fields_t *f = &self->fields;
    bool any = false;

    for (size_t i = 0; i < self->n_cells && i < S_COLS_MAX; i++) {
        if (self->cell_len[i] > 0) {
            any = true;
            break;
        }
    }
    if (!any && self->n_cells <= S_COLS_MAX) {
        return 0;
    }
    if (self->n_cells != self->n_cols) {
        s_why(row, "csv: %zu fields, the header has %zu", self->n_cells, self->n_cols);
        return 1;
    }
    f->n_fields = 0;
    for (size_t i = 0; i < self->n_cells; i++) {
        const uint8_t *cell = self->cells.data + self->cell_off[i];
        size_t len = self->cell_len[i];
        amity_field_t *fld;

        if (len == 0) {
            continue; /* an empty cell is an absent field */
        }
        fld = &f->fields[f->n_fields++];
        fld->name = (const char *)self->names.data + self->name_off[i];
        fld->name_len = self->name_len[i];
        fld->val.type = AMITY_VAL_STR;
        fld->val.as.s.ptr = (const char *)cell;
        fld->val.as.s.len = len;
        if (self->types[i] == S_CELL_UINT) {
            uint64_t u;
            if (s_parse_uint(cell, len, &u)) {
                fld->val.type = AMITY_VAL_UINT;
                fld->val.as.u = u;
            }
        } else if (self->types[i] == S_CELL_BOOL) {
            if (s_word_is(cell, len, "true")) {
                fld->val.type = AMITY_VAL_BOOL;
                fld->val.as.b = true;
            } else if (s_word_is(cell, len, "false")) {
                fld->val.type = AMITY_VAL_BOOL;
                fld->val.as.b = false;
            }
        }
    }
    row->ok = true;
    row->fields = f;
    return 1;
}

/*  The row just ended (libcsv called cb2): the header, a record, or a
 *  blank row. Returns 1 with row filled, 0 to read on, AMITY_ENOMEM. */
static int
s_row_ended(amity_csv_t *self, amity_csv_row_t *row)
{
    int rc;

    self->row_done = false;
    self->in_row = false;
    if (self->nomem) {
        return AMITY_ENOMEM;
    }
    if (!self->header_done) {
        rc = s_take_header(self, row);
        if (rc == 1) {
            self->ended = true; /* nothing after an unusable header means anything */
        }
    } else {
        rc = s_take_record(self, row);
    }
    self->n_cells = 0;
    amity_buf_reset(&self->cells);
    return rc;
}

int
amity_csv_next(amity_csv_t *self, amity_csv_row_t *row)
{
    bool too_long;
    size_t n;
    int rc;

    AMITY_ASSERT(self != NULL && row != NULL);
    for (;;) {
        memset(row, 0, sizeof(*row));
        if (self->ended) {
            return 0;
        }
        rc = s_read_line(self, &too_long);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            /* the end: a row without a final line break ends here */
            self->ended = true;
            if (!self->in_row) {
                return 0;
            }
            row->line = self->row_line;
            row->raw = (const char *)self->raw.data;
            row->raw_len = self->raw.len;
            if (csv_fini(&self->parser, s_on_cell, s_on_row, self) != 0) {
                s_why(row, "csv: quoted field not closed before the end of input");
                return 1;
            }
            if (!self->row_done) {
                return 0;
            }
            /* 1: a record or an unusable header; 0: a blank row or the
             * header alone, and nothing follows */
            return s_row_ended(self, row);
        }
        self->line++;
        if (self->line == 1 && self->line_buf.len >= 3 &&
            memcmp(self->line_buf.data, "\xEF\xBB\xBF", 3) == 0) {
            memmove(self->line_buf.data, self->line_buf.data + 3, self->line_buf.len - 3);
            self->line_buf.len -= 3;
        }
        if (too_long) {
            row->line = self->in_row ? self->row_line : self->line;
            row->raw = (const char *)self->raw.data;
            row->raw_len = self->raw.len;
            s_why(row, "csv: line %llu longer than %d bytes", (unsigned long long)self->line,
                  AMITY_CSV_LINE_MAX);
            rc = s_parser_reset(self);
            return rc < 0 ? rc : 1;
        }
        if (!self->in_row) {
            if (s_blank_text(self->line_buf.data, self->line_buf.len)) {
                continue;
            }
            self->in_row = true;
            self->row_line = self->line;
            amity_buf_reset(&self->raw);
        }
        if (self->raw.len + self->line_buf.len > AMITY_CSV_RECORD_MAX) {
            row->line = self->row_line;
            row->raw = (const char *)self->raw.data;
            row->raw_len = self->raw.len;
            s_why(row, "csv: record longer than %d bytes (a quote not closed?)",
                  AMITY_CSV_RECORD_MAX);
            rc = s_parser_reset(self);
            return rc < 0 ? rc : 1;
        }
        if (amity_buf_append(&self->raw, self->line_buf.data, self->line_buf.len) != 0) {
            return AMITY_ENOMEM;
        }
        n = csv_parse(&self->parser, self->line_buf.data, self->line_buf.len, s_on_cell, s_on_row,
                      self);
        if (n < self->line_buf.len) {
            int err = csv_error(&self->parser);
            row->line = self->row_line;
            row->raw = (const char *)self->raw.data;
            row->raw_len = self->raw.len;
            if (err == CSV_ENOMEM || err == CSV_ETOOBIG) {
                return AMITY_ENOMEM;
            }
            if (self->line_buf.data[n] == '"') {
                s_why(row,
                      "csv: line %llu, column %zu: stray quote (quote the whole field and "
                      "double the quotes inside it)",
                      (unsigned long long)self->line, n + 1);
            } else {
                s_why(row, "csv: line %llu, column %zu: text after a closing quote",
                      (unsigned long long)self->line, n + 1);
            }
            rc = s_parser_reset(self);
            return rc < 0 ? rc : 1;
        }
        if (self->row_done) {
            row->line = self->row_line;
            row->raw = (const char *)self->raw.data;
            row->raw_len = self->raw.len;
            rc = s_row_ended(self, row);
            if (rc != 0) {
                return rc;
            }
        }
    }
}
