/*  map: open-addressing hash map (linear probing, power-of-two table, at
 *  most 70% full) from byte-string keys to fixed-size value blocks. On the
 *  hot path of aggregate (delta coalescing per batch) and notify (merged
 *  totals): lookups never allocate, and reset is O(1) thanks to a
 *  generation number per slot, so a batch's map can be reused forever.
 */
#include <stdlib.h>
#include <string.h>

#include "amity/err.h"
#include "amity/map.h"

#define S_CAP_MIN     16
#define S_CHUNK_MIN   ((size_t)64 * 1024)
#define S_VALUE_ALIGN 8

/*  One table slot; it is occupied when gen equals the map's gen. */
typedef struct {
    uint64_t hash;   /* full hash of key */
    const char *key; /* NUL-terminated copy in the arena */
    uint32_t len;    /* key length in bytes, NUL excluded */
    uint32_t gen;    /* generation the slot was filled in */
} s_slot_t;

/*  Arena chunk holding key copies; chunks are kept across resets. */
typedef struct s_chunk {
    struct s_chunk *next; /* next chunk (reused after a reset) */
    size_t cap;           /* bytes in data */
    size_t used;          /* bytes handed out */
    char data[];          /* key bytes */
} s_chunk_t;

struct amity_map {
    s_slot_t *slots;   /* cap slots */
    uint8_t *values;   /* cap value blocks of stride bytes */
    size_t cap;        /* slots, a power of two */
    size_t size;       /* occupied slots */
    size_t grow_at;    /* size at which the table doubles (70% of cap) */
    size_t value_size; /* bytes per value, as given */
    size_t stride;     /* value_size rounded up to S_VALUE_ALIGN */
    uint32_t gen;      /* current generation (never 0) */
    s_chunk_t *chunks; /* first arena chunk */
    s_chunk_t *chunk;  /* chunk being filled */
};

/*  A 64-bit hash in the xxHash64 style: 8 bytes per round, then an
 *  avalanche. Totals keys are 20..160 bytes, where word-at-a-time beats
 *  byte-wise FNV several times over, with a better spread. */
#define S_P1 0x9E3779B185EBCA87ULL
#define S_P2 0xC2B2AE3D27D4EB4FULL
#define S_P3 0x165667B19E3779F9ULL
#define S_P4 0x85EBCA77C2B2AE63ULL
#define S_P5 0x27D4EB2F165667C5ULL

static uint64_t
s_rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static uint64_t
s_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = S_P5 + (uint64_t)len;
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w *= S_P2;
        w = s_rotl(w, 31);
        w *= S_P1;
        h ^= w;
        h = s_rotl(h, 27) * S_P1 + S_P4;
        p += 8;
        len -= 8;
    }
    if (len >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        h ^= (uint64_t)w * S_P1;
        h = s_rotl(h, 23) * S_P2 + S_P3;
        p += 4;
        len -= 4;
    }
    while (len > 0) {
        h ^= (uint64_t)(*p) * S_P5;
        h = s_rotl(h, 11) * S_P1;
        p++;
        len--;
    }
    h ^= h >> 33;
    h *= S_P2;
    h ^= h >> 29;
    h *= S_P3;
    h ^= h >> 32;
    return h;
}

static int
s_table_alloc(amity_map_t *self, size_t cap)
{
    s_slot_t *slots = calloc(cap, sizeof(*slots));
    uint8_t *values = malloc(cap * self->stride);
    if (!slots || !values) {
        free(slots);
        free(values);
        return AMITY_ENOMEM;
    }
    self->slots = slots;
    self->values = values;
    self->cap = cap;
    self->grow_at = cap / 10 * 7 + cap % 10 * 7 / 10; /* 70% without overflow */
    return 0;
}

int
amity_map_new(amity_map_t **out, size_t value_size)
{
    AMITY_ASSERT(out && value_size >= 1);
    *out = NULL;
    amity_map_t *self = calloc(1, sizeof(*self));
    if (!self) {
        return AMITY_ENOMEM;
    }
    self->value_size = value_size;
    self->stride = (value_size + S_VALUE_ALIGN - 1) / S_VALUE_ALIGN * S_VALUE_ALIGN;
    self->gen = 1;
    if (s_table_alloc(self, S_CAP_MIN) != 0) {
        free(self);
        return AMITY_ENOMEM;
    }
    *out = self;
    return 0;
}

void
amity_map_destroy(amity_map_t **self_p)
{
    if (!self_p || !*self_p) {
        return;
    }
    amity_map_t *self = *self_p;
    s_chunk_t *chunk = self->chunks;
    while (chunk) {
        s_chunk_t *next = chunk->next;
        free(chunk);
        chunk = next;
    }
    free(self->slots);
    free(self->values);
    free(self);
    *self_p = NULL;
}

/*  Copies key (plus a NUL) into the arena. */
static const char *
s_key_copy(amity_map_t *self, const void *key, size_t len)
{
    size_t need = len + 1;
    s_chunk_t *chunk = self->chunk;
    while (chunk && chunk->cap - chunk->used < need) {
        chunk = chunk->next; /* after a reset, later chunks are empty again */
    }
    if (!chunk) {
        size_t cap = need > S_CHUNK_MIN ? need : S_CHUNK_MIN;
        chunk = malloc(sizeof(*chunk) + cap);
        if (!chunk) {
            return NULL;
        }
        chunk->cap = cap;
        chunk->used = 0;
        if (self->chunk) {
            chunk->next = self->chunk->next;
            self->chunk->next = chunk;
        } else {
            chunk->next = self->chunks;
            self->chunks = chunk;
        }
    }
    self->chunk = chunk;
    char *copy = chunk->data + chunk->used;
    if (len > 0) {
        memcpy(copy, key, len);
    }
    copy[len] = '\0';
    chunk->used += need;
    return copy;
}

/*  Doubles the table, moving every live entry (hashes are kept, so no key
 *  is rehashed). */
static int
s_grow(amity_map_t *self)
{
    if (self->cap > SIZE_MAX / 2 / (sizeof(s_slot_t) + self->stride)) {
        return AMITY_ENOMEM;
    }
    s_slot_t *old_slots = self->slots;
    uint8_t *old_values = self->values;
    size_t old_cap = self->cap;
    if (s_table_alloc(self, old_cap * 2) != 0) {
        return AMITY_ENOMEM;
    }
    size_t mask = self->cap - 1;
    for (size_t i = 0; i < old_cap; i++) {
        if (old_slots[i].gen != self->gen) {
            continue;
        }
        size_t j = (size_t)old_slots[i].hash & mask;
        while (self->slots[j].gen == self->gen) {
            j = (j + 1) & mask;
        }
        self->slots[j] = old_slots[i];
        memcpy(self->values + j * self->stride, old_values + i * self->stride, self->value_size);
    }
    free(old_slots);
    free(old_values);
    return 0;
}

/*  Index of key's slot, or of the empty slot where it would go. */
static size_t
s_probe(const amity_map_t *self, const void *key, size_t len, uint64_t hash)
{
    size_t mask = self->cap - 1;
    size_t i = (size_t)hash & mask;
    for (;;) {
        const s_slot_t *slot = &self->slots[i];
        if (slot->gen != self->gen) {
            return i;
        }
        if (slot->hash == hash && slot->len == len && memcmp(slot->key, key, len) == 0) {
            return i;
        }
        i = (i + 1) & mask;
    }
}

void *
amity_map_upsert(amity_map_t *self, const void *key, size_t key_len, int *inserted)
{
    AMITY_ASSERT(self && (key || key_len == 0));
    if (inserted) {
        *inserted = 0;
    }
    if (key_len > UINT32_MAX - 1) {
        return NULL;
    }
    uint64_t hash = s_hash(key, key_len);
    size_t i = s_probe(self, key, key_len, hash);
    if (self->slots[i].gen == self->gen) {
        return self->values + i * self->stride;
    }
    if (self->size + 1 > self->grow_at) {
        if (s_grow(self) != 0) {
            return NULL;
        }
        i = s_probe(self, key, key_len, hash);
    }
    const char *copy = s_key_copy(self, key, key_len);
    if (!copy) {
        return NULL;
    }
    s_slot_t *slot = &self->slots[i];
    slot->hash = hash;
    slot->key = copy;
    slot->len = (uint32_t)key_len;
    slot->gen = self->gen;
    self->size++;
    void *value = self->values + i * self->stride;
    memset(value, 0, self->value_size);
    if (inserted) {
        *inserted = 1;
    }
    return value;
}

void *
amity_map_find(const amity_map_t *self, const void *key, size_t key_len)
{
    AMITY_ASSERT(self && (key || key_len == 0));
    if (self->size == 0 || key_len > UINT32_MAX - 1) {
        return NULL;
    }
    size_t i = s_probe(self, key, key_len, s_hash(key, key_len));
    if (self->slots[i].gen != self->gen) {
        return NULL;
    }
    return self->values + i * self->stride;
}

size_t
amity_map_size(const amity_map_t *self)
{
    AMITY_ASSERT(self);
    return self->size;
}

void
amity_map_reset(amity_map_t *self)
{
    AMITY_ASSERT(self);
    self->gen++;
    if (self->gen == 0) {
        /* after 2^32 resets old generations would look live again */
        memset(self->slots, 0, self->cap * sizeof(*self->slots));
        self->gen = 1;
    }
    self->size = 0;
    for (s_chunk_t *chunk = self->chunks; chunk; chunk = chunk->next) {
        chunk->used = 0;
    }
    self->chunk = self->chunks;
}

int
amity_map_next(const amity_map_t *self, size_t *pos, const char **key, size_t *key_len,
               void **value)
{
    AMITY_ASSERT(self && pos);
    for (size_t i = *pos; i < self->cap; i++) {
        const s_slot_t *slot = &self->slots[i];
        if (slot->gen != self->gen) {
            continue;
        }
        if (key) {
            *key = slot->key;
        }
        if (key_len) {
            *key_len = slot->len;
        }
        if (value) {
            *value = self->values + i * self->stride;
        }
        *pos = i + 1;
        return 0;
    }
    *pos = self->cap;
    return AMITY_ENOTFOUND;
}
