/*  err: amity's error codes and the always-on assertion. */
#include <stdio.h>
#include <stdlib.h>

#include "amity/err.h"

const char *
amity_strerror(int rc)
{
    switch (rc) {
    case AMITY_OK:
        return "success";
    case AMITY_ENOMEM:
        return "out of memory";
    case AMITY_EINVAL:
        return "invalid argument";
    case AMITY_EPROTO:
        return "malformed message";
    case AMITY_ENOTFOUND:
        return "not found";
    case AMITY_EFULL:
        return "capacity exhausted";
    case AMITY_EIO:
        return "I/O failure";
    case AMITY_ETERM:
        return "terminated";
    case AMITY_EAGAIN:
        return "try again";
    case AMITY_ETOOBIG:
        return "too big";
    default:
        return "unknown error";
    }
}

void
amity_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "amity: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
