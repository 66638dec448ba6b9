/*  buf: a growable byte buffer, caller-owned (init/clear). */
#ifndef AMITY_BUF_H
#define AMITY_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint8_t *data; /**< heap bytes (NULL when empty) */
    size_t len;    /**< bytes used */
    size_t cap;    /**< bytes allocated */
} amity_buf_t;

void amity_buf_init(amity_buf_t *b);
void amity_buf_clear(amity_buf_t *b);         /* frees; safe twice */
void amity_buf_reset(amity_buf_t *b);         /* len = 0, keeps memory */
int amity_buf_reserve(amity_buf_t *b, size_t extra); /* 0 or AMITY_ENOMEM */
int amity_buf_append(amity_buf_t *b, const void *p, size_t n);
int amity_buf_set(amity_buf_t *b, const void *p, size_t n);

#endif
