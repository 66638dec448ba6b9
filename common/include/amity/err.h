/*  err: amity's error codes, shared by every module.
 *  0 is success; failures are the negative AMITY_E* codes below. Library
 *  codes (errno, MDB_*, MSGPACK_UNPACK_*) are translated at module borders.
 */
#ifndef AMITY_ERR_H
#define AMITY_ERR_H

#include <stddef.h>

enum {
    AMITY_OK = 0,
    AMITY_ENOMEM = -1,    /**< allocation failed */
    AMITY_EINVAL = -2,    /**< invalid argument, configuration or record */
    AMITY_EPROTO = -3,    /**< malformed wire input */
    AMITY_ENOTFOUND = -4, /**< no such key */
    AMITY_EFULL = -5,     /**< capacity exhausted (map full, queue full, limit) */
    AMITY_EIO = -6,       /**< system or library I/O failure */
    AMITY_ETERM = -7,     /**< context terminated / stopping */
    AMITY_EAGAIN = -8,    /**< try again later (would block, timed out) */
    AMITY_ETOOBIG = -9,   /**< input exceeds a configured size limit */
};

/*  Returns a static description of rc (never NULL). */
const char *amity_strerror(int rc);

/*  Assert that stays on in release builds; for programming errors only,
 *  never for wire, file or configuration input. */
#define AMITY_ASSERT(cond)                                                                 \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            amity_assert_fail(#cond, __FILE__, __LINE__);                                  \
        }                                                                                  \
    } while (0)

_Noreturn void amity_assert_fail(const char *expr, const char *file, int line);

#endif
