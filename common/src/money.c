/*  money: exact amounts as int64 minor units (cents, dong, fils). Parsing
 *  and formatting of decimal strings; no floating point anywhere. Used by
 *  record validation (amount) and by the clients that print totals.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "amity/err.h"
#include "amity/money.h"
#include "amity/record.h"

/* exponents beyond this cannot scale even 1 into int64 meaningfully */
#define S_EXPONENT_MAX 18
/* bytes of the offending input quoted in a reason */
#define S_QUOTE_MAX 48

static const uint64_t s_pow10[S_EXPONENT_MAX + 1] = {
    1u,
    10u,
    100u,
    1000u,
    10000u,
    100000u,
    1000000u,
    10000000u,
    100000000u,
    1000000000u,
    10000000000u,
    100000000000u,
    1000000000000u,
    10000000000000u,
    100000000000000u,
    1000000000000000u,
    10000000000000000u,
    100000000000000000u,
    1000000000000000000u,
};

static void s_why(char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_why(char *why, size_t why_len, const char *fmt, ...)
{
    if (why == NULL || why_len == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    (void)vsnprintf(why, why_len, fmt, ap);
    va_end(ap);
}

static int
s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* acc = acc * 10^n + add, within INT64_MAX; returns 0 or -1 on overflow */
static int
s_scale_add(uint64_t *acc, int n, uint64_t add)
{
    const uint64_t max = (uint64_t)INT64_MAX;
    uint64_t p = s_pow10[n];
    if (*acc != 0 && *acc > max / p) {
        return -1;
    }
    uint64_t v = *acc * p;
    if (add > max - v) {
        return -1;
    }
    *acc = v + add;
    return 0;
}

int
amity_money_parse(const char *s, size_t len, int exponent, int64_t *out, char *why, size_t why_len)
{
    char quoted[S_QUOTE_MAX];

    if (out != NULL) {
        *out = 0;
    }
    if (s == NULL || out == NULL || exponent < 0 || exponent > S_EXPONENT_MAX) {
        s_why(why, why_len, "amount: cannot be read for this currency");
        return AMITY_EINVAL;
    }
    if (len == 0) {
        s_why(why, why_len, "amount: must not be empty");
        return AMITY_EINVAL;
    }
    (void)amity_text_sanitize(quoted, sizeof(quoted), s, len);
    if (s[0] == '-') {
        s_why(why, why_len, "amount: must not be negative");
        return AMITY_EINVAL;
    }

    /* shape: DIGITS [ '.' DIGITS ] and nothing else */
    size_t i = 0;
    while (i < len && s_is_digit(s[i])) {
        i++;
    }
    size_t int_end = i;
    size_t n_frac = 0;
    int has_point = 0;
    if (i < len && s[i] == '.') {
        has_point = 1;
        i++;
        while (i < len && s_is_digit(s[i])) {
            i++;
            n_frac++;
        }
    }
    if (int_end == 0 || i != len || (has_point && n_frac == 0)) {
        s_why(why, why_len,
              "amount: '%s' is not a decimal number (digits, optionally '.' and decimals)", quoted);
        return AMITY_EINVAL;
    }
    if (n_frac > (size_t)exponent) {
        s_why(why, why_len, "amount: %s has %zu decimal%s, the currency allows %d", quoted, n_frac,
              n_frac == 1 ? "" : "s", exponent);
        return AMITY_EINVAL;
    }

    uint64_t acc = 0;
    for (size_t k = 0; k < int_end; k++) {
        if (s_scale_add(&acc, 1, (uint64_t)(s[k] - '0')) != 0) {
            goto overflow;
        }
    }
    for (size_t k = 0; k < n_frac; k++) {
        if (s_scale_add(&acc, 1, (uint64_t)(s[int_end + 1 + k] - '0')) != 0) {
            goto overflow;
        }
    }
    if (s_scale_add(&acc, exponent - (int)n_frac, 0) != 0) {
        goto overflow;
    }
    *out = (int64_t)acc;
    return 0;

overflow:
    s_why(why, why_len, "amount: %s is too large", quoted);
    return AMITY_EINVAL;
}

int
amity_money_from_units(uint64_t units, int exponent, int64_t *out, char *why, size_t why_len)
{
    if (out != NULL) {
        *out = 0;
    }
    if (out == NULL || exponent < 0 || exponent > S_EXPONENT_MAX) {
        s_why(why, why_len, "amount: cannot be read for this currency");
        return AMITY_EINVAL;
    }
    uint64_t acc = units;
    if (units > (uint64_t)INT64_MAX || s_scale_add(&acc, exponent, 0) != 0) {
        s_why(why, why_len, "amount: %" PRIu64 " is too large", units);
        return AMITY_EINVAL;
    }
    *out = (int64_t)acc;
    return 0;
}

size_t
amity_money_format(int64_t minor, int exponent, char buf[AMITY_MONEY_STR_MAX])
{
    char digits[24];
    size_t n_digits = 0;
    size_t pos = 0;

    if (exponent < 0) {
        exponent = 0;
    } else if (exponent > S_EXPONENT_MAX) {
        exponent = S_EXPONENT_MAX;
    }
    /* magnitude in unsigned arithmetic, so INT64_MIN is exact */
    uint64_t mag = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    do {
        digits[n_digits++] = (char)('0' + (int)(mag % 10u));
        mag /= 10u;
    } while (mag != 0);
    /* at least one digit before the point */
    while (n_digits < (size_t)exponent + 1) {
        digits[n_digits++] = '0';
    }
    if (minor < 0) {
        buf[pos++] = '-';
    }
    while (n_digits > 0) {
        if (n_digits == (size_t)exponent && exponent > 0) {
            buf[pos++] = '.';
        }
        buf[pos++] = digits[--n_digits];
    }
    buf[pos] = '\0';
    return pos;
}
