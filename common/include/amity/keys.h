/*  keys: the totals an accepted record contributes to,
 *  PERIOD/OFFICE/KIND/GEO/METRIC as DOMAIN.md defines them. */
#ifndef AMITY_KEYS_H
#define AMITY_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amity/record.h"

#define AMITY_KEY_MAX   160 /**< bytes in a totals key, NUL included */
#define AMITY_DELTAS_MAX 48 /**< 4 periods x 2 offices x 3 geos x 2 metrics */

typedef struct {
    char key[AMITY_KEY_MAX]; /**< NUL-terminated totals key */
    int64_t delta;           /**< signed change: minor units for amount.CUR */
} amity_delta_t;

/*  Fills out[] with every (key, delta) that rec contributes for office;
 *  sign +1 adds the record, -1 is its exact inverse (correction/retraction).
 *  A retraction contributes nothing. Keys whose delta would be 0 (a metric
 *  given as 0, an amount of 0) are left out: they would change no total.
 *  GEO is "all", then the country's region (unless the region is "", as for
 *  AQ) and the country code when the record has a country. Returns the
 *  count (<= AMITY_DELTAS_MAX), or AMITY_EINVAL if office is not a valid
 *  office id, sign is not +1/-1, or rec is not a checked record. */
int amity_keys_derive(const amity_record_t *rec, const char *office, int sign,
                      amity_delta_t out[AMITY_DELTAS_MAX]);

/*  True when s is a valid office id: [a-z0-9-]{1,64}, not "all". */
bool amity_office_valid(const char *s, size_t len);

/*  For a key ending in "amount.CUR", the currency's exponent; -1 for a count. */
int amity_key_exponent(const char *key, size_t len);

/*  Aggregate shard of a record: FNV-1a 64 of office, a NUL byte and id,
 *  modulo n_shards (>= 1). Every validator computes the same. */
uint32_t amity_shard_of(const char *office, const char *id, size_t id_len, uint32_t n_shards);

#endif
