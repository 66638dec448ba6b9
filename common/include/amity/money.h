/*  money: exact amounts in int64 minor units; never floating point. */
#ifndef AMITY_MONEY_H
#define AMITY_MONEY_H

#include <stddef.h>
#include <stdint.h>

#define AMITY_MONEY_STR_MAX 32 /**< buffer for amity_money_format, NUL included */

/*  Parses a decimal string ("47425742", "12.5", "0.05") for a currency with
 *  `exponent` decimals into minor units. Rejects signs, exponents, spaces,
 *  empty parts ("12.", ".5"), more decimals than the currency has, and
 *  overflow of int64. Returns 0 or AMITY_EINVAL with why set ("amount: ..."). */
int amity_money_parse(const char *s, size_t len, int exponent, int64_t *out, char *why,
                      size_t why_len);

/*  Scales a whole number of major units to minor units, with overflow check. */
int amity_money_from_units(uint64_t units, int exponent, int64_t *out, char *why, size_t why_len);

/*  Formats minor units as a decimal with `exponent` decimals ("47425742.00",
 *  "-3.50", "60000000000"). Returns the length written. */
size_t amity_money_format(int64_t minor, int exponent, char buf[AMITY_MONEY_STR_MAX]);

#endif
