/*  amity-submit rejects: the original text of every rejected record, in a
 *  file the office can fix and submit again (CSV: the header, then the
 *  rows as they were). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "submit.h"

int
submit_rejects_open(submit_rejects_t *r, const char *path)
{
    memset(r, 0, sizeof(*r));
    r->path = path;
    if (path == NULL) {
        return 0;
    }
    r->fp = fopen(path, "w");
    if (r->fp == NULL) {
        (void)fprintf(stderr, "amity-submit: cannot create %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void
s_write(submit_rejects_t *r, const char *p, size_t len)
{
    if (len > 0 && fwrite(p, 1, len, r->fp) != len && !r->failed) {
        r->failed = true;
        (void)fprintf(stderr, "amity-submit: writing %s: %s\n", r->path, strerror(errno));
    }
}

void
submit_rejects_add(submit_rejects_t *r, const char *raw, size_t raw_len, const char *header,
                   size_t header_len)
{
    if (r->fp == NULL || raw == NULL || raw_len == 0) {
        return;
    }
    if (header != NULL && header_len > 0 &&
        (r->header == NULL || r->header_len != header_len ||
         memcmp(r->header, header, header_len) != 0)) {
        char *copy = malloc(header_len);
        if (copy != NULL) {
            memcpy(copy, header, header_len);
        }
        free(r->header);
        r->header = copy;
        r->header_len = copy != NULL ? header_len : 0;
        s_write(r, header, header_len);
        if (header[header_len - 1] != '\n') {
            s_write(r, "\n", 1);
        }
    }
    s_write(r, raw, raw_len);
    if (raw[raw_len - 1] != '\n') {
        s_write(r, "\n", 1);
    }
    r->n++;
}

int
submit_rejects_close(submit_rejects_t *r)
{
    int rc = r->failed ? -1 : 0;

    if (r->fp != NULL) {
        if (fclose(r->fp) != 0 && !r->failed) {
            (void)fprintf(stderr, "amity-submit: writing %s: %s\n", r->path, strerror(errno));
            rc = -1;
        }
        r->fp = NULL;
    }
    free(r->header);
    r->header = NULL;
    return rc;
}
