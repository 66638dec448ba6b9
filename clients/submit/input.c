/*  amity-submit input: records one at a time from JSON Lines (one object
 *  per line, parsed later by libamity) or CSV (amity/csv.h), each with the
 *  line it starts on and its original text.
 *
 *  An input that can keep us waiting (a pipe, a terminal, a socket: not a
 *  regular file) is read through a stdio stream of our own (fopencookie)
 *  whose read first calls the caller's wait function: stdio asks for more
 *  bytes only when its buffer is empty, which is exactly when a read could
 *  block, so the caller keeps its client going while the producer is quiet
 *  and both readers (ours and the CSV one) stay plain stdio code.
 */
#define _GNU_SOURCE 1 /* NOLINT(bugprone-reserved-identifier): fopencookie (glibc, musl) */

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "amity/buf.h"
#include "amity/csv.h"
#include "submit.h"

#define S_PIPE_BUF 65536 /* stdio buffer of a waiting input */

struct submit_input {
    FILE *fp;            /* what the readers read: raw_fp, or our stream over its fd */
    FILE *raw_fp;        /* the input (stdin or opened here) */
    bool own_fp;         /* raw_fp was opened here */
    int fd;              /* a waiting input's fd (-1: a regular file, read as it is) */
    submit_wait_fn wait; /* called before a read that could block (NULL: none) */
    void *wait_arg;      /* its argument */
    int wait_rc;         /* the non-zero code it returned: reading stopped */
    const char *path;    /* its name ("-": stdin) */
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

/*  stdio's read for a waiting input: wait (the caller's work goes on),
 *  then read what is there. */
static ssize_t
s_wait_read(void *cookie, char *buf, size_t size)
{
    submit_input_t *self = cookie;
    struct pollfd pfd;
    ssize_t n;
    int rc;

    for (;;) {
        if (self->wait != NULL) {
            rc = self->wait(self->wait_arg, self->fd);
            if (rc != 0) {
                self->wait_rc = rc;
                errno = EINTR;
                return -1;
            }
        }
        n = read(self->fd, buf, size);
        if (n >= 0 || errno != EAGAIN) {
            return n; /* EINTR included: a signal ends the reading (main.c) */
        }
        /* a non-blocking fd inherited from the caller: wait for it */
        if (self->wait == NULL) {
            pfd.fd = self->fd;
            pfd.events = POLLIN;
            pfd.revents = 0;
            if (poll(&pfd, 1, -1) < 0) {
                return -1;
            }
        }
    }
}

int
submit_input_open(submit_input_t **out, const char *path, submit_format_t format)
{
    static const cookie_io_functions_t io = { s_wait_read, NULL, NULL, NULL };
    submit_input_t *self;
    struct stat st;
    int rc;

    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->path = path;
    self->fd = -1;
    self->format = format == SUBMIT_FORMAT_AUTO ? submit_format_of(path) : format;
    if (strcmp(path, "-") == 0) {
        self->raw_fp = stdin;
    } else {
        self->raw_fp = fopen(path, "r");
        if (self->raw_fp == NULL) {
            free(self);
            return AMITY_EIO;
        }
        self->own_fp = true;
    }
    self->fp = self->raw_fp;
    if (fstat(fileno(self->raw_fp), &st) == 0 && !S_ISREG(st.st_mode)) {
        /* nothing has been read from raw_fp yet: its fd is where we are */
        self->fd = fileno(self->raw_fp);
        self->fp = fopencookie(self, "r", io);
        if (self->fp == NULL || setvbuf(self->fp, NULL, _IOFBF, S_PIPE_BUF) != 0) {
            rc = AMITY_ENOMEM;
            goto fail;
        }
    }
    if (self->format == SUBMIT_FORMAT_CSV) {
        rc = amity_csv_new(&self->csv, self->fp);
        if (rc != 0) {
            goto fail;
        }
    }
    *out = self;
    return 0;

fail:
    submit_input_destroy(&self);
    return rc;
}

void
submit_input_set_wait(submit_input_t *self, submit_wait_fn fn, void *arg)
{
    self->wait = fn;
    self->wait_arg = arg;
}

void
submit_input_destroy(submit_input_t **self_p)
{
    submit_input_t *self = *self_p;

    if (self == NULL) {
        return;
    }
    amity_csv_destroy(&self->csv);
    if (self->fp != NULL && self->fp != self->raw_fp) {
        (void)fclose(self->fp); /* our stream: the fd stays raw_fp's */
    }
    if (self->own_fp) {
        (void)fclose(self->raw_fp);
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
    if (self->wait_rc != 0) {
        return self->wait_rc;
    }
    if (self->format != SUBMIT_FORMAT_CSV) {
        rc = s_next_json(self, rec);
        return rc < 0 && self->wait_rc != 0 ? self->wait_rc : rc;
    }
    rc = amity_csv_next(self->csv, &row);
    if (rc < 0 && self->wait_rc != 0) {
        return self->wait_rc;
    }
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

    if (!self->own_fp || self->fd >= 0 || fstat(fileno(self->raw_fp), &st) != 0 ||
        !S_ISREG(st.st_mode)) {
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
