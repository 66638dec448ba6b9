/*  proto/src/scan.c: the bounded pre-scan. Every byte proto decodes has
 *  passed through here first: each length and count is checked against
 *  the bytes that remain (counting one byte for each element still owed by
 *  the enclosing containers), nesting is bounded with an explicit stack,
 *  and exactly one object must fill the buffer. After this, a decoder that
 *  sizes arrays by counts allocates at most a small constant times len.
 */
#include <inttypes.h>
#include <stdlib.h>

#include "amity/err.h"
#include "wire.h"

/*  Depths up to this use a stack on the C stack; deeper limits allocate. */
#define S_STACK_LOCAL 32

int
amity_scan(const uint8_t *buf, size_t len, int max_depth, char *why, size_t why_len)
{
    uint64_t local[S_STACK_LOCAL];
    uint64_t *stack = local; /* elements (map: keys + values) still to read, per open container */
    int depth = 0;           /* open containers */
    uint64_t owed = 0;       /* sum of stack: elements announced but not started */
    size_t pos = 0;
    int rc = AMITY_EPROTO;

    if (!buf && len > 0) {
        amity_wire_why(why, why_len, "no buffer");
        return AMITY_EINVAL;
    }
    if (max_depth < 0) {
        max_depth = 0;
    }
    /* no buffer can open more containers than it has bytes */
    size_t cap = (size_t)max_depth < len ? (size_t)max_depth : len;
    if (cap > S_STACK_LOCAL) {
        stack = malloc(cap * sizeof(*stack));
        if (!stack) {
            amity_wire_why(why, why_len, "out of memory");
            return AMITY_ENOMEM;
        }
    }

    for (;;) {
        if (depth > 0) {
            stack[depth - 1]--;
            owed--;
        }
        if (pos >= len) {
            amity_wire_why(why, why_len, "truncated");
            goto out;
        }
        amity_wire_head_t h;
        int hrc = amity_wire_head_fast(buf + pos, len - pos, &h);
        if (hrc == AMITY_WIRE_NEVER) {
            amity_wire_why(why, why_len, "byte 0xc1 (never used) at offset %zu", pos);
            goto out;
        }
        if (hrc != 0) {
            amity_wire_why(why, why_len, "truncated");
            goto out;
        }
        pos += h.head_len;
        /* bytes not already claimed by elements the outer containers owe */
        if (owed > (uint64_t)(len - pos)) {
            amity_wire_why(why, why_len, "truncated");
            goto out;
        }
        uint64_t free_bytes = (uint64_t)(len - pos) - owed;

        switch (h.kind) {
        case AMITY_WIRE_STR:
        case AMITY_WIRE_BIN:
        case AMITY_WIRE_EXT:
            if (h.n > free_bytes) {
                amity_wire_why(why, why_len,
                               "%s length %" PRIu64 " exceeds the %" PRIu64 " bytes left", h.name,
                               h.n, free_bytes);
                goto out;
            }
            pos += (size_t)h.n;
            break;
        case AMITY_WIRE_ARRAY:
        case AMITY_WIRE_MAP: {
            uint64_t elements = h.kind == AMITY_WIRE_MAP ? 2 * h.n : h.n;
            if (elements > free_bytes) {
                amity_wire_why(why, why_len,
                               "%s count %" PRIu64 " exceeds the %" PRIu64 " bytes left", h.name,
                               h.n, free_bytes);
                goto out;
            }
            if (depth + 1 > max_depth) {
                amity_wire_why(why, why_len, "nesting deeper than %d at offset %zu", max_depth,
                               pos - h.head_len);
                goto out;
            }
            if (elements > 0) {
                stack[depth++] = elements;
                owed += elements;
                continue;
            }
            break;
        }
        default:
            break;
        }

        /* one element complete: close every container it completes */
        while (depth > 0 && stack[depth - 1] == 0) {
            depth--;
        }
        if (depth == 0) {
            break;
        }
    }

    if (pos != len) {
        amity_wire_why(why, why_len, "trailing bytes after the object (%zu of %zu bytes used)", pos,
                       len);
        goto out;
    }
    rc = 0;
out:
    if (stack != local) {
        free(stack);
    }
    return rc;
}
