/*  proto/src/wire.h: msgpack primitives shared by proto's sources (private
 *  to amity_proto; nothing outside proto/src includes this file).
 *
 *  Reading: amity_wire_head decodes the header of one msgpack object (the
 *  type byte plus any length or value bytes) and is the one place that
 *  knows every type byte. amity_scan (scan.c) walks a whole buffer with
 *  it; the amity_rd_* cursor then reads a buffer that the scan accepted,
 *  still checking every length against the end (it never trusts a claim).
 *
 *  Writing: msgpack-c's packer, writing into an amity_buf_t.
 */
#ifndef AMITY_PROTO_WIRE_H
#define AMITY_PROTO_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "amity/buf.h"
#include "amity/proto.h"

/*  The msgpack type families, as a reader sees them. */
typedef enum {
    AMITY_WIRE_NIL = 0,
    AMITY_WIRE_BOOL,
    AMITY_WIRE_UINT,  /**< positive fixint, uint 8/16/32/64 */
    AMITY_WIRE_INT,   /**< negative fixint, int 8/16/32/64 (any sign) */
    AMITY_WIRE_FLOAT, /**< float 32/64 */
    AMITY_WIRE_STR,
    AMITY_WIRE_BIN,
    AMITY_WIRE_ARRAY,
    AMITY_WIRE_MAP,
    AMITY_WIRE_EXT
} amity_wire_kind_t;

/*  One object's header. */
typedef struct {
    amity_wire_kind_t kind; /**< type family */
    const char *name;       /**< exact format name ("fixarray", "str32", ...) */
    size_t head_len;        /**< bytes of the header, scalar value bytes included */
    uint64_t n;             /**< STR/BIN/EXT: payload bytes; ARRAY/MAP: element / pair count */
    uint64_t u;             /**< UINT: the value */
    int64_t i;              /**< INT: the value */
    double f;               /**< FLOAT: the value */
    bool b;                 /**< BOOL: the value */
    int8_t ext_type;        /**< EXT: the application type */
    const uint8_t *ptr;     /**< STR/BIN/EXT: payload (set by amity_rd_head only) */
} amity_wire_head_t;

#define AMITY_WIRE_TRUNCATED (-1) /**< the header runs past the end */
#define AMITY_WIRE_NEVER     (-2) /**< 0xc1, the byte msgpack never uses */

/*  Decodes the header at p (left > 0 bytes available). Returns 0,
 *  AMITY_WIRE_TRUNCATED or AMITY_WIRE_NEVER. Payload bytes are NOT checked
 *  here (h->n is the claim). */
int amity_wire_head(const uint8_t *p, size_t left, amity_wire_head_t *h);

/*  amity_wire_head with the one-byte formats (fixint, fixstr, fixarray,
 *  fixmap) decided inline: they are most of every message, and this is
 *  the innermost loop of both the scan and the reader. */
static inline int
amity_wire_head_fast(const uint8_t *p, size_t left, amity_wire_head_t *h)
{
    uint8_t b = p[0];
    if (b <= 0x7f) {
        h->kind = AMITY_WIRE_UINT;
        h->name = "positive fixint";
        h->head_len = 1;
        h->n = 0;
        h->u = b;
        return 0;
    }
    if (b >= 0xa0 && b <= 0xbf) {
        h->kind = AMITY_WIRE_STR;
        h->name = "fixstr";
        h->head_len = 1;
        h->n = b & 0x1fu;
        return 0;
    }
    if (b >= 0x80 && b <= 0x9f) {
        h->kind = b <= 0x8f ? AMITY_WIRE_MAP : AMITY_WIRE_ARRAY;
        h->name = b <= 0x8f ? "fixmap" : "fixarray";
        h->head_len = 1;
        h->n = b & 0x0fu;
        return 0;
    }
    return amity_wire_head(p, left, h);
}

/*  Short family name for messages: "nil", "bool", "uint", "int", "float",
 *  "str", "bin", "array", "map", "ext". */
const char *amity_wire_kind_name(amity_wire_kind_t k);

/*  A cursor over a buffer that amity_scan accepted. */
typedef struct {
    const uint8_t *p;   /**< next byte */
    const uint8_t *end; /**< one past the last byte */
} amity_rd_t;

/*  Reads one header; for STR/BIN/EXT also the payload (h->ptr) and moves
 *  past it. Returns 0 or AMITY_EPROTO (only on bytes the scan would have
 *  refused). */
int amity_rd_head(amity_rd_t *r, amity_wire_head_t *h);
/*  Moves past one whole object (iteratively). Returns 0 or AMITY_EPROTO. */
int amity_rd_skip(amity_rd_t *r);

/*  Writes printf-style text into why (when why && why_len), truncating. */
void amity_wire_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*  Copies at most max bytes of s into dst (dst_len > 0, NUL-terminated) as
 *  printable text for an error message: control bytes and invalid UTF-8
 *  become '?', a cut never splits a UTF-8 sequence, "..." marks a cut. */
void amity_wire_printable(const char *s, size_t len, char *dst, size_t dst_len);

/*  A msgpack-c packer appending to an amity_buf_t. Allocation failures are
 *  sticky: check amity_wr_end once at the end. */
typedef struct {
    msgpack_packer pk; /**< msgpack-c's packer, writing through s_write */
    amity_buf_t *out;  /**< destination */
    size_t mark;       /**< out->len at begin, restored on failure */
    int rc;            /**< first failure (0 while all is well) */
} amity_wr_t;

void amity_wr_begin(amity_wr_t *w, amity_buf_t *out);
/*  Appends bytes verbatim (an already-encoded object). */
void amity_wr_raw(amity_wr_t *w, const void *p, size_t n);
void amity_wr_str(amity_wr_t *w, const void *p, size_t n);
void amity_wr_cstr(amity_wr_t *w, const char *s);
/*  Sets a failure code (keeps the first). */
void amity_wr_fail(amity_wr_t *w, int rc);
/*  Returns 0, or the first failure after restoring out to its length at
 *  amity_wr_begin. */
int amity_wr_end(amity_wr_t *w);

#endif
