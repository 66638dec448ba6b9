/*  iso: reference tables. ISO 3166-1 alpha-2 codes (every assigned code)
 *  with their UN geoscheme (M49) region, and ISO 4217 currencies with their
 *  decimal exponents. */
#ifndef AMITY_ISO_H
#define AMITY_ISO_H

#include <stdbool.h>
#include <stddef.h>

/*  Region of an assigned alpha-2 code ("africa", "americas", "asia",
 *  "europe", "oceania"), "" for an assigned code the geoscheme puts in no
 *  region (AQ), or NULL when code is not an assigned upper-case code. */
const char *amity_country_region(const char *code, size_t len);

/*  Decimal exponent of an active ISO 4217 currency (USD 2, VND 0, JPY 0,
 *  BHD 3), or -1 when code is not one. */
int amity_currency_exponent(const char *code, size_t len);

/*  Number of entries (for tests). */
size_t amity_country_count(void);
size_t amity_currency_count(void);

#endif
