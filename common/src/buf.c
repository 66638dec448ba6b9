/*  buf: a growable byte buffer. */
#include <stdlib.h>
#include <string.h>

#include "amity/buf.h"
#include "amity/err.h"

void
amity_buf_init(amity_buf_t *b)
{
    AMITY_ASSERT(b);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void
amity_buf_clear(amity_buf_t *b)
{
    if (b) {
        free(b->data);
        amity_buf_init(b);
    }
}

void
amity_buf_reset(amity_buf_t *b)
{
    AMITY_ASSERT(b);
    b->len = 0;
}

int
amity_buf_reserve(amity_buf_t *b, size_t extra)
{
    AMITY_ASSERT(b);
    if (extra > SIZE_MAX - b->len) {
        return AMITY_ENOMEM;
    }
    size_t need = b->len + extra;
    if (need <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    }
    uint8_t *p = realloc(b->data, cap);
    if (!p) {
        return AMITY_ENOMEM;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int
amity_buf_append(amity_buf_t *b, const void *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    int rc = amity_buf_reserve(b, n);
    if (rc) {
        return rc;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

int
amity_buf_set(amity_buf_t *b, const void *p, size_t n)
{
    amity_buf_reset(b);
    return amity_buf_append(b, p, n);
}
