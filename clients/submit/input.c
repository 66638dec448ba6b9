/*  amity-submit input: records one at a time from JSON Lines (one object
 *  per line, parsed later by libamity) or CSV (amity/csv.h), each with the
 *  line it starts on and its original text. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <jansson.h>

#include "amity/buf.h"
#include "amity/csv.h"
#include "submit.h"

struct submit_input {
    FILE *fp;         /* the input (stdin or opened here) */
    bool own_fp;      /* fp was opened here */
    const char *path; /* its name ("-": stdin) */
    submit_format_t format;
    amity_csv_t *csv;        /* CSV reader */
    char *line;              /* JSON Lines: the current line */
    size_t cap;              /* its allocation */
    uint64_t lineno;         /* JSON Lines: lines read */
    char why[AMITY_WHY_MAX]; /* the current error */
};

submit_format_t
submit_format_of(const char *path)
{
    const char *dot;

    if (path == NULL || strcmp(path, "-") == 0) {
        return SUBMIT_FORMAT_JSONL;
    }
    dot = strrchr(path, '.');
    if (dot != NULL && strchr(dot, '/') == NULL && strcasecmp(dot, ".csv") == 0) {
        return SUBMIT_FORMAT_CSV;
    }
    return SUBMIT_FORMAT_JSONL;
}

int
submit_input_open(submit_input_t **out, const char *path, submit_format_t format)
{
    submit_input_t *self;
    int rc;

    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->path = path;
    self->format = format == SUBMIT_FORMAT_AUTO ? submit_format_of(path) : format;
    if (strcmp(path, "-") == 0) {
        self->fp = stdin;
    } else {
        self->fp = fopen(path, "r");
        if (self->fp == NULL) {
            free(self);
            return AMITY_EIO;
        }
        self->own_fp = true;
    }
    if (self->format == SUBMIT_FORMAT_CSV) {
        rc = amity_csv_new(&self->csv, self->fp);
        if (rc != 0) {
            submit_input_destroy(&self);
            return rc;
        }
    }
    *out = self;
    return 0;
}

void
submit_input_destroy(submit_input_t **self_p)
{
    submit_input_t *self = *self_p;

    if (self == NULL) {
        return;
    }
    amity_csv_destroy(&self->csv);
    if (self->own_fp) {
        (void)fclose(self->fp);
    }
    free(self->line);
    free(self);
    *self_p = NULL;
}

/*  Reads one line into self->line (without its LF). Returns 1 with a
 *  line, 0 at the end, AMITY_EIO, AMITY_ENOMEM. A line longer than
 *  SUBMIT_LINE_MAX is skipped to its end and flagged with *too_long. */
static int
s_read_line(submit_input_t *self, size_t *len, bool *too_long)
{
    int c;

    *len = 0;
    *too_long = false;
    while ((c = getc_unlocked(self->fp)) != EOF) {
        if (c == '\n') {
            break;
        }
        if (*too_long) {
            continue;
        }
        if (*len + 1 >= self->cap) {
            size_t ncap = self->cap ? self->cap * 2 : 4096;
            char *nbuf;
            if (ncap > SUBMIT_LINE_MAX + 2) {
                ncap = SUBMIT_LINE_MAX + 2;
            }
            if (*len + 1 >= ncap) {
                *too_long = true;
                continue;
            }
            nbuf = realloc(self->line, ncap);
            if (nbuf == NULL) {
                return AMITY_ENOMEM;
            }
            self->line = nbuf;
            self->cap = ncap;
        }
        self->line[(*len)++] = (char)c;
    }
    if (c == EOF && ferror(self->fp)) {
        return AMITY_EIO;
    }
    if (c == EOF && *len == 0 && !*too_long) {
        return 0;
    }
    if (self->line != NULL) {
        self->line[*len] = '\0';
    }
    return 1;
}

static bool
s_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') {
            return false;
        }
    }
    return true;
}

static int
s_next_json(submit_input_t *self, submit_record_t *rec)
{
    size_t len;
    bool too_long;
    int rc;

    for (;;) {
        rc = s_read_line(self, &len, &too_long);
        if (rc <= 0) {
            return rc;
        }
        self->lineno++;
        rec->line = self->lineno;
        if (too_long) {
            (void)snprintf(self->why, sizeof(self->why), "record: line longer than %d bytes",
                           SUBMIT_LINE_MAX);
            rec->why = self->why;
            rec->raw = "";
            rec->raw_len = 0;
            return 1;
        }
        if (self->lineno == 1 && len >= 3 && memcmp(self->line, "\xEF\xBB\xBF", 3) == 0) {
            memmove(self->line, self->line + 3, len - 2);
            len -= 3;
        }
        if (s_blank(self->line, len)) {
            continue;
        }
        rec->ok = true;
        rec->json = self->line;
        rec->json_len = len;
        rec->raw = self->line;
        rec->raw_len = len;
        return 1;
    }
}

int
submit_input_next(submit_input_t *self, submit_record_t *rec)
{
    amity_csv_row_t row;
    int rc;

    memset(rec, 0, sizeof(*rec));
    if (self->format != SUBMIT_FORMAT_CSV) {
        return s_next_json(self, rec);
    }
    rc = amity_csv_next(self->csv, &row);
    if (rc <= 0) {
        return rc;
    }
    rec->line = row.line;
    rec->ok = row.ok;
    rec->fields = row.fields;
    rec->raw = row.raw != NULL ? row.raw : "";
    rec->raw_len = row.raw_len;
    if (!row.ok) {
        memcpy(self->why, row.why, sizeof(self->why));
        rec->why = self->why;
    }
    return 1;
}

/* Copies an id for a report line: controls as '?', cut to AMITY_ID_MAX. */
static void
s_id_copy(char *buf, size_t len, const char *p, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n && i < AMITY_ID_MAX && k + 1 < len; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[k++] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
    }
    buf[k] = '\0';
}

void
submit_record_id(const submit_record_t *rec, char *buf, size_t len)
{
    (void)snprintf(buf, len, "-");
    if (rec->fields != NULL) {
        for (size_t i = 0; i < rec->fields->n_fields; i++) {
            const amity_field_t *f = &rec->fields->fields[i];
            if (f->name_len == 2 && memcmp(f->name, "id", 2) == 0 && f->val.type == AMITY_VAL_STR &&
                f->val.as.s.len > 0) {
                s_id_copy(buf, len, f->val.as.s.ptr, f->val.as.s.len);
            }
        }
    } else if (rec->json != NULL) {
        /* only on the way to a rejection line: parsing twice costs nothing */
        json_t *root = json_loadb(rec->json, rec->json_len, JSON_ALLOW_NUL, NULL);
        json_t *id = json_is_object(root) ? json_object_get(root, "id") : NULL;
        if (json_is_string(id) && json_string_length(id) > 0) {
            s_id_copy(buf, len, json_string_value(id), json_string_length(id));
        }
        json_decref(root);
    }
}

const char *
submit_input_header(const submit_input_t *self, size_t *len)
{
    if (self->csv == NULL) {
        *len = 0;
        return NULL;
    }
    return amity_csv_header(self->csv, len);
}

uint64_t
submit_input_estimate(const submit_input_t *self)
{
    struct stat st;
    char buf[65536];
    uint64_t lines = 0;
    size_t n;
    char last = '\n';
    FILE *fp;

    if (!self->own_fp || fstat(fileno(self->fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        return 0;
    }
    /* a second handle, so the reader's position is left alone */
    fp = fopen(self->path, "r");
    if (fp == NULL) {
        return 0;
    }
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0) {
        const char *p = buf;
        const char *end = buf + n;
        while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
            lines++;
            p++;
        }
        last = buf[n - 1];
    }
    (void)fclose(fp);
    if (last != '\n') {
        lines++;
    }
    if (self->format == SUBMIT_FORMAT_CSV && lines > 0) {
        lines--; /* the header */
    }
    return lines;
}
