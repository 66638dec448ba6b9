/*  map: an open-addressing hash map from byte-string keys to a fixed-size
 *  value block, for in-memory coalescing (aggregate) and merged totals
 *  (notify). Keys are copied in; values are zero-initialised on insert. */
#ifndef AMITY_MAP_H
#define AMITY_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct amity_map amity_map_t;

/*  value_size: bytes of value per entry (>= 1). Returns 0 or AMITY_ENOMEM. */
int amity_map_new(amity_map_t **out, size_t value_size);
void amity_map_destroy(amity_map_t **self_p);

/*  Returns the value block of key, inserting a zeroed one when absent
 *  (*inserted set accordingly, may be NULL); NULL only on allocation failure.
 *  The pointer is valid until the next insert or clear. */
void *amity_map_upsert(amity_map_t *self, const void *key, size_t key_len, int *inserted);

/*  Returns the value block of key, or NULL when absent. */
void *amity_map_find(const amity_map_t *self, const void *key, size_t key_len);

size_t amity_map_size(const amity_map_t *self);

/*  Removes every entry, keeping the table's memory. */
void amity_map_reset(amity_map_t *self);

/*  Iteration in unspecified order: start with *pos = 0; returns 0 and
 *  fills key/value while entries remain, AMITY_ENOTFOUND at the end.
 *  Keys are NUL-terminated copies (the NUL not counted in key_len), valid
 *  until the next reset; value blocks are 8-byte aligned. No inserts
 *  during an iteration. */
int amity_map_next(const amity_map_t *self, size_t *pos, const char **key, size_t *key_len,
                   void **value);

#endif
