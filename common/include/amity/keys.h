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
#define AMITY_FINEST_MAX 2 /**< finest keys of one record: one per metric */
#define AMITY_ROLLUP_MAX 24 /**< published keys one finest key rolls up to */

/*  GEO of a finest key for a record without a country. Internal to the
 *  aggregate: never a published key, never queried ("all" would collide
 *  with the published MONTH/OFFICE/KIND/all/METRIC). */
#define AMITY_KEY_NO_COUNTRY "-"

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

/*  Fills out[] with rec's FINEST keys, MONTH/OFFICE/KIND/GEO0/METRIC, one
 *  per non-zero metric: MONTH is "YYYY-MM", OFFICE the sending office (never
 *  "all"), GEO0 the country code or AMITY_KEY_NO_COUNTRY when rec has none.
 *  Every published key of amity_keys_derive is the sum of finest keys:
 *  rolling each (k, d) up with amity_keys_rollup gives exactly
 *  amity_keys_derive's multiset of (key, delta). Returns the count
 *  (<= AMITY_FINEST_MAX; 0 for a retraction) or AMITY_EINVAL, as
 *  amity_keys_derive. */
int amity_keys_finest(const amity_record_t *rec, const char *office, int sign,
                      amity_delta_t out[AMITY_FINEST_MAX]);

/*  Fills out[0 .. n) with every published key the finest key (len bytes,
 *  no NUL needed) contributes to: 4 periods x {office, all} x {all, region,
 *  country} (no region for AQ; only {all} for AMITY_KEY_NO_COUNTRY), each
 *  NUL-terminated. Returns n (<= AMITY_ROLLUP_MAX), AMITY_EINVAL when the
 *  key is not a finest key, AMITY_EFULL when cap < n. */
int amity_keys_rollup(const char *finest_key, size_t len, char out[][AMITY_KEY_MAX], size_t cap);

/*  True when key (len bytes) is a finest key as amity_keys_finest makes. */
bool amity_key_is_finest(const char *key, size_t len);

/*  True when s is a valid office id: [a-z0-9-]{1,64}, not "all". */
bool amity_office_valid(const char *s, size_t len);

/*  For a key ending in "amount.CUR", the currency's exponent; -1 for a count. */
int amity_key_exponent(const char *key, size_t len);

/*  Aggregate shard of a record: FNV-1a 64 of office, a NUL byte and id,
 *  modulo n_shards (>= 1). Every validator computes the same. */
uint32_t amity_shard_of(const char *office, const char *id, size_t id_len, uint32_t n_shards);

#endif
