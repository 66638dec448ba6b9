/*  record: the record model of DOMAIN.md and its validation rules.
 *  Pure functions, no I/O: validate turns a decoded field list (from
 *  proto's amity_fields_decode) into a checked amity_record_t, or names the
 *  field and the rule that was broken.
 */
#ifndef AMITY_RECORD_H
#define AMITY_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMITY_ID_MAX       128  /**< bytes in a record id */
#define AMITY_OFFICE_MAX   64   /**< bytes in an office id */
#define AMITY_NOTE_MAX     1024 /**< bytes in a note */
#define AMITY_METRIC_MAX   1000000000u /**< largest value of a count metric */
#define AMITY_FIELDS_MAX   64   /**< top-level fields in one record */
#define AMITY_WHY_MAX      256  /**< bytes in a rejection reason, NUL included */

typedef enum {
    AMITY_KIND_NONE = 0,
    AMITY_KIND_DELEGATION_IN,
    AMITY_KIND_DELEGATION_OUT,
    AMITY_KIND_ACTIVITY,
    AMITY_KIND_AID_COMMITMENT,
    AMITY_KIND_AID_DISBURSEMENT,
    AMITY_KIND_RELIEF,
    AMITY_KIND_AWARD,
    AMITY_KIND_CONTACT,
    AMITY_KIND_ORG_FOUNDED,
    AMITY_KIND_COUNT
} amity_kind_t;

/*  Count metrics; money ("amount.CUR") is held apart. */
typedef enum {
    AMITY_METRIC_DELEGATIONS = 0,
    AMITY_METRIC_PEOPLE,
    AMITY_METRIC_ACTIVITIES,
    AMITY_METRIC_PROJECTS,
    AMITY_METRIC_AWARDS,
    AMITY_METRIC_PARTNERS,
    AMITY_METRIC_ORGS,
    AMITY_METRIC_COUNT
} amity_metric_t;

typedef enum { AMITY_SCOPE_NONE = 0, AMITY_SCOPE_BILATERAL, AMITY_SCOPE_MULTILATERAL } amity_scope_t;
typedef enum { AMITY_LEVEL_NONE = 0, AMITY_LEVEL_CENTRAL, AMITY_LEVEL_LOCAL } amity_level_t;

/*  A checked record. Plain data, fixed size, no heap: copy freely. */
typedef struct {
    char id[AMITY_ID_MAX + 1];          /**< NUL-terminated id */
    uint64_t rev;                       /**< revision, >= 1 */
    bool retract;                       /**< a retraction: only id and rev are meaningful */
    amity_kind_t kind;                  /**< kind (NONE for a retraction) */
    int year, month, day;               /**< the event's date */
    char country[3];                    /**< ISO 3166-1 alpha-2, "" when absent */
    uint32_t metric_mask;               /**< bit (1u << metric) set for each metric present */
    uint32_t metrics[AMITY_METRIC_COUNT]; /**< count metrics, 0..AMITY_METRIC_MAX */
    bool has_amount;                    /**< amount and currency present */
    int64_t amount;                     /**< money in minor units of currency (>= 0) */
    char currency[4];                   /**< ISO 4217 code, "" when absent */
    amity_scope_t scope;                /**< activities: bilateral/multilateral */
    amity_level_t level;                /**< organisations: central/local */
    size_t note_len;                    /**< bytes in note */
    char note[AMITY_NOTE_MAX + 1];      /**< UTF-8 note, NUL-terminated */
} amity_record_t;

/*  A msgpack scalar as decoded by proto, borrowed from the input buffer. */
typedef enum {
    AMITY_VAL_NIL = 0,
    AMITY_VAL_BOOL,
    AMITY_VAL_UINT,   /**< non-negative integer */
    AMITY_VAL_INT,    /**< negative integer */
    AMITY_VAL_FLOAT,
    AMITY_VAL_STR,
    AMITY_VAL_BIN,
    AMITY_VAL_ARRAY,  /**< nested container: content not exposed */
    AMITY_VAL_MAP,    /**< nested container: content not exposed */
    AMITY_VAL_EXT
} amity_val_type_t;

typedef struct {
    amity_val_type_t type;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
        struct {
            const char *ptr;  /**< NOT NUL-terminated; view into the decoded buffer */
            size_t len;
        } s;                  /**< STR and BIN */
    } as;
} amity_val_t;

typedef struct {
    const char *name;     /**< NOT NUL-terminated; view into the decoded buffer */
    size_t name_len;
    amity_val_t val;
} amity_field_t;

/*  A record's top-level map as a list of fields (views; valid while the
 *  decoded buffer lives). */
typedef struct {
    size_t n_fields;
    amity_field_t fields[AMITY_FIELDS_MAX];
} amity_fields_t;

/*  Validation context. */
typedef struct {
    const char *office;   /**< authenticated sender; a differing "office" field is rejected */
    int32_t max_day;      /**< latest allowed date as days since 1970-01-01 ("tomorrow");
                               INT32_MAX disables the rule (re-reading stored records) */
} amity_validate_opts_t;

/*  Validates fields against every rule of DOMAIN.md and fills *out.
 *  Returns 0, or AMITY_EINVAL with why set to "field: rule in words"
 *  (e.g. "date: 2017-02-30 is not a calendar date"); the first broken rule
 *  wins, checked in the order: unknown or repeated field names, id, rev,
 *  retract, office, kind, date, country, metrics, amount/currency, scope,
 *  level, note. A retraction (retract: true, rev >= 2) needs only id; its
 *  other fields are ignored, but unknown names and a differing office are
 *  still rejected. Quoted input in why is cut and escaped, so why is always
 *  printable UTF-8 shorter than AMITY_WHY_MAX. *out is zeroed on error. */
int amity_record_validate(const amity_fields_t *fields, const amity_validate_opts_t *opts,
                          amity_record_t *out, char why[AMITY_WHY_MAX]);

/*  Names (kind and metric names as on the wire); NULL when out of range. */
const char *amity_kind_name(amity_kind_t kind);
amity_kind_t amity_kind_parse(const char *s, size_t len); /* NONE if unknown */
const char *amity_metric_name(amity_metric_t m);

/*  Mask of the count metrics kind requires (1u << metric), whether it
 *  requires amount+currency, and whether country is required. */
uint32_t amity_kind_metrics(amity_kind_t kind);
bool amity_kind_has_amount(amity_kind_t kind);
bool amity_kind_needs_country(amity_kind_t kind);

/*  Days since 1970-01-01 of a proleptic Gregorian date (no range check). */
int32_t amity_days_from_civil(int y, int m, int d);

/*  True when two records have the same content (every field compared). */
bool amity_record_equal(const amity_record_t *a, const amity_record_t *b);

/*  True when s[0..len) is strict UTF-8: no overlong forms, no surrogates
 *  (U+D800..U+DFFF), nothing above U+10FFFF, no truncated sequence. NUL
 *  bytes are valid UTF-8 (U+0000). */
bool amity_utf8_valid(const char *s, size_t len);

/*  Writes a printable, NUL-terminated, valid UTF-8 rendering of the bytes
 *  s[0..len) into dst (dst_len >= 4), for quoting input in messages:
 *  backslash becomes "\\", control characters, DEL, C1 controls and bytes
 *  that are not valid UTF-8 become "\xHH", other characters (Vietnamese
 *  included) are kept. When the rendering does not fit, it is cut at a
 *  character boundary and ends with "...". Returns the length written. */
size_t amity_text_sanitize(char *dst, size_t dst_len, const char *s, size_t len);

#endif
