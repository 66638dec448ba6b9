/*  validate: checks records and splits them by shard (see validate.h).
 *  One thread, one zmq_poll loop over the signal fd, the work PULL and the
 *  shard PUSHes. A shard that cannot take an apply message gets it queued in
 *  a bounded outbox (polled for POLLOUT); while any outbox is full no new
 *  work is read, so back-pressure reaches ingest instead of memory growing.
 */
#include "validate.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/auth.h"
#include "amity/clock.h"
#include "amity/daemon.h"
#include "amity/err.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/record.h"
#include "amity/signals.h"
#include "amity/sock.h"

#define BATCH_MAX        256               /* work messages read per iteration */
#define STATS_EVERY_MS   10000             /* counters logged this often when they changed */
#define MAX_DAY_EVERY_MS 1000              /* "tomorrow" recomputed this often */
#define WORK_MAX_MSG     INT64_C(16842752) /* ingest's largest max-msg + envelope */
#define WORK_RCVHWM      100               /* a stalled validator hoards little work */
#define APPLY_SNDHWM     100 /* apply messages ZeroMQ queues per shard (they can be MBs) */
#define ENDPOINT_MAX     512

/* One item waiting to become an apply item: offsets, since the scratch
 * buffer may move while it grows. */
typedef struct {
    uint64_t tag;        /* the client's tag */
    bool ok;             /* passed validation */
    const uint8_t *orig; /* !ok: the original bytes (in the work message) */
    size_t off;          /* ok: canonical bytes at scratch + off */
    size_t len;          /* bytes of rec */
    size_t why_off;      /* !ok: reason at scratch + why_off */
    size_t why_len;      /* bytes of the reason */
} pending_t;

typedef struct {
    void *push;                              /* PUSH connected to the shard's B+0 */
    char server_key[AMITY_KEY_TXT];          /* the shard's public key ("": no CURVE) */
    char endpoint[ENDPOINT_MAX];             /* that endpoint */
    pending_t *pend;                         /* items of the current work message */
    amity_item_t *items;                     /* the same, as views, for encoding */
    size_t n_pend;                           /* items used */
    size_t cap;                              /* items allocated (pend and items) */
    amity_buf_t scratch;                     /* canonical records and reasons */
    amity_buf_t apply;                       /* the encoded apply message */
    amity_buf_t outbox[VALIDATE_OUTBOX_MAX]; /* apply messages waiting for the shard */
    size_t out_recs[VALIDATE_OUTBOX_MAX];    /* records in each of them */
    size_t out_head;                         /* oldest queued */
    size_t out_n;                            /* queued */
    size_t out_records;                      /* records in the queued messages */
    amity_monitor_t *mon;                    /* the PUSH's connection (NULL: inproc) */
    int mon_item;                            /* its index in the poll set (-1: none) */
    bool up;                                 /* connected (handshake done), per the monitor */
    uint64_t deferred;                       /* apply messages that had to wait (all time) */
    uint64_t held;                           /* messages handed to ZeroMQ while the link was
                                                down, queued there until it is back */
    uint64_t held_records;                   /* records in them */
    uint64_t disconnects;                    /* times the link dropped */
} shard_t;

struct validate_t {
    const amity_strlist_t *ingest;     /* ingest work endpoints (borrowed) */
    const char *tz;                    /* time zone of the date rule (borrowed) */
    amity_keypair_t own;               /* our certificate (public_txt "": no keys) */
    amity_keypair_t *ingest_pub;       /* [ingest->n] ingests' public keys, or NULL */
    uint32_t n_shards;                 /* shards, in amity_shard_of order */
    shard_t *shards;                   /* [n_shards] */
    void *work;                        /* PULL connected to every ingest */
    amity_monitor_t *work_mon;         /* its connections to the ingests (NULL: inproc) */
    int work_mon_item;                 /* its index in the poll set (-1: none) */
    int32_t max_day;                   /* latest accepted date, days since epoch */
    int64_t max_day_at_ms;             /* monotonic time max_day was computed */
    bool pinned;                       /* max_day set by hand: do not refresh */
    bool stopping;                     /* a stop signal arrived */
    validate_stats_t stats;            /* counters */
    validate_stats_t logged;           /* counters as last logged */
    int64_t next_stats_ms;             /* monotonic deadline of the next stats line */
    amity_msg_t msg;                   /* decoded work */
    char office[AMITY_OFFICE_MAX + 1]; /* work.office, NUL-terminated */
    amity_fields_t fields;             /* decode scratch, one record */
    amity_record_t rec;                /* validation scratch, one record */
    zmq_pollitem_t *items;             /* poll set: signal, work, one per shard, monitors */
};

static const char *const s_why_names[VALIDATE_WHY_COUNT] = {
    "record", "id",       "rev",   "retract", "kind", "date",   "country", "metric",
    "amount", "currency", "scope", "level",   "note", "office", "other",
};

const char *
validate_why_name(validate_why_t w)
{
    if ((int)w < 0 || w >= VALIDATE_WHY_COUNT) {
        return "?";
    }
    return s_why_names[w];
}

/* ------------------------------------------------------------------ */
/* helpers                                                              */

static validate_why_t
s_why_field(const char *why)
{
    static const char *const metrics[] = { "delegations", "people",   "activities", "projects",
                                           "awards",      "partners", "orgs" };
    const char *colon = strchr(why, ':');
    size_t len;
    size_t i;

    if (colon == NULL) {
        return VALIDATE_WHY_OTHER;
    }
    len = (size_t)(colon - why);
    for (i = 0; i < VALIDATE_WHY_OTHER; i++) {
        if (i != VALIDATE_WHY_METRIC && strlen(s_why_names[i]) == len &&
            memcmp(s_why_names[i], why, len) == 0) {
            return (validate_why_t)i;
        }
    }
    for (i = 0; i < sizeof metrics / sizeof metrics[0]; i++) {
        if (strlen(metrics[i]) == len && memcmp(metrics[i], why, len) == 0) {
            return VALIDATE_WHY_METRIC;
        }
    }
    return VALIDATE_WHY_OTHER;
}

/* The id a rejected record would have had, when its "id" field is a string
 * of id characters; else NULL (the record goes to shard 0). */
static const char *
s_rejected_id(const amity_fields_t *f, size_t *len)
{
    size_t i;
    size_t j;

    for (i = 0; i < f->n_fields && i < AMITY_FIELDS_MAX; i++) {
        const amity_field_t *fld = &f->fields[i];
        if (fld->name_len != 2 || memcmp(fld->name, "id", 2) != 0) {
            continue;
        }
        if (fld->val.type != AMITY_VAL_STR || fld->val.as.s.len == 0 ||
            fld->val.as.s.len > AMITY_ID_MAX) {
            return NULL;
        }
        for (j = 0; j < fld->val.as.s.len; j++) {
            char c = fld->val.as.s.ptr[j];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '-')) {
                return NULL;
            }
        }
        *len = fld->val.as.s.len;
        return fld->val.as.s.ptr;
    }
    return NULL;
}

/* Room for one more pending item in sh. */
static int
s_shard_reserve(shard_t *sh)
{
    size_t cap;
    pending_t *pend;
    amity_item_t *items;

    if (sh->n_pend < sh->cap) {
        return 0;
    }
    cap = sh->cap ? sh->cap * 2 : 64;
    pend = realloc(sh->pend, cap * sizeof *pend);
    if (pend == NULL) {
        return AMITY_ENOMEM;
    }
    sh->pend = pend;
    items = realloc(sh->items, cap * sizeof *items);
    if (items == NULL) {
        return AMITY_ENOMEM;
    }
    sh->items = items;
    sh->cap = cap;
    return 0;
}

static void
s_refresh_max_day(validate_t *self, int64_t now_ms)
{
    int32_t day;

    if (self->pinned || now_ms - self->max_day_at_ms < MAX_DAY_EVERY_MS) {
        return;
    }
    self->max_day_at_ms = now_ms;
    if (amity_clock_max_day(time(NULL), self->tz, &day) != 0) {
        amity_log_warn_rl(60, "cannot compute tomorrow in tz=%s; keeping max_day=%d", self->tz,
                          (int)self->max_day);
        return;
    }
    self->max_day = day;
}

/* ------------------------------------------------------------------ */
/* lifecycle                                                            */

static bool
s_set(const char *opt)
{
    return opt != NULL && opt[0] != '\0';
}

/* The CURVE options: lists match their endpoints one to one, and a list
 * needs our own key. Connecting to another machine in clear is allowed
 * (the server decides) but worth a warning. */
static int
s_check_keys(const validate_opts_t *opts)
{
    size_t n_ingest_keys = opts->ingest_keys != NULL ? opts->ingest_keys->n : 0;
    size_t n_shard_keys = opts->shard_keys != NULL ? opts->shard_keys->n : 0;
    size_t i;

    if ((n_ingest_keys > 0 || n_shard_keys > 0) && !s_set(opts->key)) {
        amity_log_error("%s: needs --key (validate's own secret certificate, registered in the "
                        "servers' --peers-dir)",
                        n_ingest_keys > 0 ? "ingest-keys" : "shard-keys");
        return AMITY_EINVAL;
    }
    if (n_ingest_keys > 0 && n_ingest_keys != opts->ingest->n) {
        amity_log_error("ingest-keys: %zu certificate(s) for %zu ingest endpoint(s); give one "
                        "per ingest, in the order of --ingest",
                        n_ingest_keys, opts->ingest->n);
        return AMITY_EINVAL;
    }
    if (n_shard_keys > 0 && n_shard_keys != opts->shards->n) {
        amity_log_error("shard-keys: %zu certificate(s) for %zu shard(s); give one per shard, "
                        "in the order of --shards",
                        n_shard_keys, opts->shards->n);
        return AMITY_EINVAL;
    }
    for (i = 0; n_ingest_keys == 0 && i < opts->ingest->n; i++) {
        if (!amity_endpoint_is_loopback(opts->ingest->items[i])) {
            amity_log_warn("ingest: %s is not loopback and --ingest-keys is not set: work "
                           "travels in clear (an ingest with keys refuses us)",
                           opts->ingest->items[i]);
        }
    }
    for (i = 0; n_shard_keys == 0 && i < opts->shards->n; i++) {
        if (!amity_endpoint_is_loopback(opts->shards->items[i])) {
            amity_log_warn("shards: %s is not loopback and --shard-keys is not set: records "
                           "travel in clear (a shard with keys refuses us)",
                           opts->shards->items[i]);
        }
    }
    return 0;
}

/* Reads the certificates named by opts. */
static int
s_load_keys(validate_t *self, const validate_opts_t *opts)
{
    amity_keypair_t kp;
    size_t i;

    if (!s_set(opts->key)) {
        return 0;
    }
    if (amity_keypair_load(opts->key, &self->own) != 0 || self->own.secret_txt[0] == '\0') {
        amity_log_error("key: %s is not a secret certificate (the NAME_secret file "
                        "amity-keygen wrote)",
                        opts->key);
        return AMITY_EINVAL;
    }
    if (opts->ingest_keys != NULL && opts->ingest_keys->n > 0) {
        self->ingest_pub = calloc(opts->ingest_keys->n, sizeof *self->ingest_pub);
        if (self->ingest_pub == NULL) {
            return AMITY_ENOMEM;
        }
        for (i = 0; i < opts->ingest_keys->n; i++) {
            if (amity_keypair_load(opts->ingest_keys->items[i], &self->ingest_pub[i]) != 0) {
                amity_log_error("ingest-keys: cannot read the certificate %s (item %zu)",
                                opts->ingest_keys->items[i], i + 1);
                return AMITY_EINVAL;
            }
        }
    }
    for (i = 0; opts->shard_keys != NULL && i < opts->shard_keys->n; i++) {
        if (amity_keypair_load(opts->shard_keys->items[i], &kp) != 0) {
            amity_log_error("shard-keys: cannot read the certificate %s (item %zu)",
                            opts->shard_keys->items[i], i + 1);
            return AMITY_EINVAL;
        }
        memcpy(self->shards[i].server_key, kp.public_txt, AMITY_KEY_TXT);
    }
    memset(&kp, 0, sizeof kp);
    return 0;
}

int
validate_new(validate_t **out, const validate_opts_t *opts)
{
    validate_t *self;
    char ep[ENDPOINT_MAX];
    int32_t day;
    size_t i;
    int rc;

    AMITY_ASSERT(out != NULL && opts != NULL);
    *out = NULL;
    if (opts->ingest == NULL || opts->ingest->n == 0) {
        amity_log_error("ingest: at least one ingest work endpoint is required");
        return AMITY_EINVAL;
    }
    for (i = 0; i < opts->ingest->n; i++) {
        if (opts->ingest->items[i][0] == '\0') {
            amity_log_error("ingest: empty endpoint in the list");
            return AMITY_EINVAL;
        }
    }
    if (opts->shards == NULL || opts->shards->n == 0) {
        amity_log_error("shards: at least one shard base endpoint is required");
        return AMITY_EINVAL;
    }
    if (opts->shards->n > UINT32_MAX) {
        amity_log_error("shards: too many");
        return AMITY_EINVAL;
    }
    for (i = 0; i < opts->shards->n; i++) {
        if (amity_endpoint_offset(opts->shards->items[i], 3, ep, sizeof ep) != 0) {
            amity_log_error("shards: '%s' is not a shard base endpoint (tcp://HOST:PORT with "
                            "PORT+3 <= 65535)",
                            opts->shards->items[i]);
            return AMITY_EINVAL;
        }
    }
    if (opts->tz == NULL || opts->tz[0] == '\0' ||
        amity_clock_max_day(time(NULL), opts->tz, &day) != 0) {
        amity_log_error("tz: '%s' is not a known time zone (an IANA name such as %s)",
                        opts->tz ? opts->tz : "", AMITY_DEFAULT_TZ);
        return AMITY_EINVAL;
    }
    if (s_check_keys(opts) != 0) {
        return AMITY_EINVAL;
    }

    self = calloc(1, sizeof *self);
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->n_shards = (uint32_t)opts->shards->n;
    self->shards = calloc(self->n_shards, sizeof *self->shards);
    self->items = calloc(3 + 2 * (size_t)self->n_shards, sizeof *self->items);
    if (self->shards == NULL || self->items == NULL) {
        free(self->shards);
        free(self->items);
        free(self);
        return AMITY_ENOMEM;
    }
    for (i = 0; i < self->n_shards; i++) {
        shard_t *sh = &self->shards[i];
        size_t q;
        (void)amity_endpoint_offset(opts->shards->items[i], 0, sh->endpoint, sizeof sh->endpoint);
        amity_buf_init(&sh->scratch);
        amity_buf_init(&sh->apply);
        for (q = 0; q < VALIDATE_OUTBOX_MAX; q++) {
            amity_buf_init(&sh->outbox[q]);
        }
    }
    self->ingest = opts->ingest;
    self->tz = opts->tz;
    self->max_day = day;
    self->max_day_at_ms = amity_clock_mono_ms();
    amity_msg_init(&self->msg);
    rc = s_load_keys(self, opts);
    if (rc != 0) {
        validate_destroy(&self);
        return rc;
    }
    *out = self;
    return 0;
}

void
validate_destroy(validate_t **self_p)
{
    validate_t *self;
    size_t i;
    size_t q;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    amity_monitor_destroy(&self->work_mon);
    amity_sock_close(&self->work);
    for (i = 0; i < self->n_shards; i++) {
        shard_t *sh = &self->shards[i];
        amity_monitor_destroy(&sh->mon);
        amity_sock_close(&sh->push);
        free(sh->pend);
        free(sh->items);
        amity_buf_clear(&sh->scratch);
        amity_buf_clear(&sh->apply);
        for (q = 0; q < VALIDATE_OUTBOX_MAX; q++) {
            amity_buf_clear(&sh->outbox[q]);
        }
    }
    free(self->shards);
    free(self->items);
    free(self->ingest_pub);
    amity_msg_clear(&self->msg);
    memset(&self->own, 0, sizeof self->own);
    free(self);
    *self_p = NULL;
}

const validate_stats_t *
validate_stats(const validate_t *self)
{
    AMITY_ASSERT(self != NULL);
    return &self->stats;
}

void
validate_set_max_day(validate_t *self, int32_t max_day)
{
    AMITY_ASSERT(self != NULL);
    self->max_day = max_day;
    self->pinned = true;
}

const amity_buf_t *
validate_apply(const validate_t *self, uint32_t shard)
{
    AMITY_ASSERT(self != NULL && shard < self->n_shards);
    return &self->shards[shard].apply;
}

/* ------------------------------------------------------------------ */
/* the handler (no sockets)                                             */

/* Checks one record and queues its item on its shard. */
static int
s_check_record(validate_t *self, const amity_item_t *in)
{
    amity_validate_opts_t vopts;
    char why[AMITY_WHY_MAX];
    const char *id;
    size_t id_len = 0;
    uint32_t s;
    shard_t *sh;
    pending_t *p;
    bool decoded;
    int rc;

    why[0] = '\0';
    vopts.office = self->office;
    vopts.max_day = self->max_day;
    rc = amity_fields_decode(in->rec.ptr, in->rec.len, &self->fields, why, sizeof why);
    decoded = (rc == 0);
    if (rc == AMITY_ENOMEM) {
        return rc;
    }
    if (rc == 0) {
        rc = amity_record_validate(&self->fields, &vopts, &self->rec, why);
    }
    self->stats.validated++;
    if (rc == 0) {
        id = self->rec.id;
        id_len = strlen(self->rec.id);
    } else {
        id = decoded ? s_rejected_id(&self->fields, &id_len) : NULL;
        if (why[0] == '\0') {
            (void)snprintf(why, sizeof why, "record: invalid");
        }
    }
    s = (id != NULL) ? amity_shard_of(self->office, id, id_len, self->n_shards) : 0;
    AMITY_ASSERT(s < self->n_shards);
    sh = &self->shards[s];
    if (s_shard_reserve(sh) != 0) {
        return AMITY_ENOMEM;
    }
    p = &sh->pend[sh->n_pend];
    memset(p, 0, sizeof *p);
    p->tag = in->tag;
    if (rc == 0) {
        size_t before = sh->scratch.len;
        rc = amity_record_encode(&self->rec, &sh->scratch);
        if (rc != 0) {
            sh->scratch.len = before;
            return rc == AMITY_ENOMEM ? AMITY_ENOMEM : AMITY_EINVAL;
        }
        p->ok = true;
        p->off = before;
        p->len = sh->scratch.len - before;
        self->stats.accepted++;
    } else {
        size_t why_len = strlen(why);
        p->ok = false;
        p->orig = in->rec.ptr;
        p->len = in->rec.len;
        p->why_off = sh->scratch.len;
        p->why_len = why_len;
        if (amity_buf_append(&sh->scratch, why, why_len) != 0) {
            return AMITY_ENOMEM;
        }
        self->stats.rejected++;
        self->stats.rejected_by[s_why_field(why)]++;
        if (s_why_field(why) == VALIDATE_WHY_OFFICE) {
            /* the sender is the authenticated office: a record naming
             * another one is an attempt the operator should see */
            amity_log_warn_rl(1, "cross-office record rejected sender=%s why=\"%s\"", self->office,
                              why);
        }
    }
    sh->n_pend++;
    return 0;
}

/* Encodes the apply message of every shard that got items. */
static int
s_encode_applies(validate_t *self)
{
    const amity_msg_t *work = &self->msg;
    amity_msg_t apply;
    uint32_t s;
    size_t i;
    int rc;

    for (s = 0; s < self->n_shards; s++) {
        shard_t *sh = &self->shards[s];
        if (sh->n_pend == 0) {
            continue;
        }
        for (i = 0; i < sh->n_pend; i++) {
            const pending_t *p = &sh->pend[i];
            amity_item_t *it = &sh->items[i];
            memset(it, 0, sizeof *it);
            it->tag = p->tag;
            it->ok = p->ok;
            it->rec.ptr = p->ok ? sh->scratch.data + p->off : p->orig;
            it->rec.len = p->len;
            if (!p->ok) {
                it->why.ptr = sh->scratch.data + p->why_off;
                it->why.len = p->why_len;
            }
        }
        amity_msg_init(&apply);
        apply.type = AMITY_MSG_APPLY;
        apply.ing = work->ing;
        apply.conn = work->conn;
        apply.office = work->office;
        apply.n_items = sh->n_pend;
        apply.items = sh->items;
        rc = amity_msg_encode(&apply, &sh->apply);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
validate_handle_work(validate_t *self, const uint8_t *body, size_t len)
{
    char why[AMITY_WHY_MAX];
    amity_msg_t *m = &self->msg;
    uint32_t s;
    size_t i;
    int rc;

    AMITY_ASSERT(self != NULL);
    for (s = 0; s < self->n_shards; s++) {
        shard_t *sh = &self->shards[s];
        sh->n_pend = 0;
        amity_buf_reset(&sh->scratch);
        amity_buf_reset(&sh->apply);
    }
    amity_msg_clear(m);
    why[0] = '\0';
    rc = amity_msg_decode(body, len, m, why, sizeof why);
    if (rc == AMITY_ENOMEM) {
        return rc;
    }
    if (rc == 0 && m->type != AMITY_MSG_WORK) {
        (void)snprintf(why, sizeof why, "t: expected work, got %s", amity_msg_type_name(m->type));
        rc = AMITY_EPROTO;
    }
    if (rc == 0 && (m->ing.len == 0 || m->conn.len == 0)) {
        (void)snprintf(why, sizeof why, "%s: missing", m->ing.len == 0 ? "ing" : "conn");
        rc = AMITY_EPROTO;
    }
    if (rc == 0 && (!amity_view_copy(m->office, self->office, sizeof self->office) ||
                    !amity_office_valid(self->office, strlen(self->office)))) {
        (void)snprintf(why, sizeof why, "office: not a valid office id");
        rc = AMITY_EPROTO;
    }
    if (rc != 0) {
        self->stats.bad_work++;
        amity_log_warn_rl(10, "work message dropped len=%zu why=\"%s\"", len,
                          why[0] ? why : "malformed");
        amity_msg_clear(m);
        return AMITY_EPROTO;
    }
    self->stats.work_msgs++;
    for (i = 0; i < m->n_items; i++) {
        rc = s_check_record(self, &m->items[i]);
        if (rc != 0) {
            goto fail;
        }
    }
    rc = s_encode_applies(self);
    if (rc != 0) {
        goto fail;
    }
    return 0;

fail:
    for (s = 0; s < self->n_shards; s++) {
        amity_buf_reset(&self->shards[s].apply);
        self->shards[s].n_pend = 0;
    }
    amity_log_error("cannot build apply messages: %s", amity_strerror(rc));
    return rc == AMITY_ENOMEM ? AMITY_ENOMEM : AMITY_EPROTO;
}

/* ------------------------------------------------------------------ */
/* the loop                                                             */

/*  " shardN.KEY=V" for every shard whose link is down or whose messages
 *  wait (in our outbox, or in ZeroMQ's queue while the link is down):
 *  what an operator needs to see when a shard is unreachable. */
static void
s_shard_stats(const validate_t *self, char *out, size_t out_len)
{
    size_t o = 0;
    uint32_t s;

    out[0] = '\0';
    for (s = 0; s < self->n_shards && o < out_len; s++) {
        const shard_t *sh = &self->shards[s];
        int n;
        if (sh->up && sh->out_n == 0 && sh->deferred == 0 && sh->disconnects == 0) {
            continue;
        }
        n = snprintf(out + o, out_len - o, " shard%" PRIu32 ".up=%d", s, sh->up ? 1 : 0);
        if (n > 0 && sh->held > 0) {
            o += (size_t)n;
            n = snprintf(out + o, out_len - o,
                         " shard%" PRIu32 ".held=%" PRIu64 " shard%" PRIu32
                         ".held_records=%" PRIu64,
                         s, sh->held, s, sh->held_records);
        }
        if (n > 0 && sh->out_n > 0) {
            o += (size_t)n;
            n = snprintf(out + o, out_len - o,
                         " shard%" PRIu32 ".queued=%zu shard%" PRIu32 ".queued_records=%zu", s,
                         sh->out_n, s, sh->out_records);
        }
        if (n > 0 && sh->deferred > 0) {
            o += (size_t)n;
            n = snprintf(out + o, out_len - o, " shard%" PRIu32 ".deferred=%" PRIu64, s,
                         sh->deferred);
        }
        if (n > 0 && sh->disconnects > 0) {
            o += (size_t)n;
            n = snprintf(out + o, out_len - o, " shard%" PRIu32 ".disconnects=%" PRIu64, s,
                         sh->disconnects);
        }
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    if (o >= out_len) {
        out[out_len - 1] = '\0';
    }
}

static void
s_log_stats(validate_t *self, const char *when)
{
    const validate_stats_t *s = &self->stats;
    char per_shard[1024];
    char by[512];
    size_t o = 0;
    size_t i;
    size_t queued = 0;

    by[0] = '\0';
    for (i = 0; i < VALIDATE_WHY_COUNT; i++) {
        if (s->rejected_by[i] > 0 && o < sizeof by) {
            int n = snprintf(by + o, sizeof by - o, " rejected.%s=%" PRIu64, s_why_names[i],
                             s->rejected_by[i]);
            if (n > 0) {
                o += (size_t)n;
            }
        }
    }
    for (i = 0; i < self->n_shards; i++) {
        queued += self->shards[i].out_n;
    }
    s_shard_stats(self, per_shard, sizeof per_shard);
    amity_log_info("stats%s work=%" PRIu64 " validated=%" PRIu64 " accepted=%" PRIu64
                   " rejected=%" PRIu64 " apply_sent=%" PRIu64 " apply_deferred=%" PRIu64
                   " queued=%zu bad_work=%" PRIu64 " ingest_disconnects=%" PRIu64
                   " shard_disconnects=%" PRIu64 " handshake_failures=%" PRIu64 "%s%s",
                   when, s->work_msgs, s->validated, s->accepted, s->rejected, s->apply_sent,
                   s->apply_deferred, queued, s->bad_work, s->ingest_disconnects,
                   s->shard_disconnects, s->handshake_failures, by, per_shard);
    self->logged = self->stats;
}

static void
s_on_signal(validate_t *self, int fd)
{
    int sig;

    while ((sig = amity_signals_read(fd)) > 0) {
        if (sig == SIGHUP) {
            amity_log_info("SIGHUP received; nothing to reload yet");
            continue;
        }
        if (!self->stopping) {
            amity_log_info("stopping signal=%d", sig);
            self->stopping = true;
            amity_signals_arm_second();
        }
    }
}

/* A message for sh went to ZeroMQ: while the link is down it waits there. */
static void
s_note_sent(shard_t *sh, size_t records)
{
    if (!sh->up) {
        sh->held++;
        sh->held_records += records;
    }
}

/* Sends queued apply messages of sh in order until one would block.
 * Returns 0 or -1 (errno) on a fatal socket error. */
static int
s_flush_shard(validate_t *self, shard_t *sh)
{
    while (sh->out_n > 0) {
        amity_buf_t *b = &sh->outbox[sh->out_head];
        if (zmq_send(sh->push, b->data, b->len, ZMQ_DONTWAIT) < 0) {
            return errno == EAGAIN ? 0 : -1;
        }
        self->stats.apply_sent++;
        s_note_sent(sh, sh->out_recs[sh->out_head]);
        amity_buf_clear(b); /* queued messages can be large: give the memory back */
        sh->out_records -= sh->out_recs[sh->out_head];
        sh->out_head = (sh->out_head + 1) % VALIDATE_OUTBOX_MAX;
        sh->out_n--;
    }
    return 0;
}

/* Sends sh->apply now, or queues it behind what is already waiting. */
static int
s_send_apply(validate_t *self, shard_t *sh)
{
    amity_buf_t tmp;
    size_t tail;

    if (sh->out_n == 0) {
        if (zmq_send(sh->push, sh->apply.data, sh->apply.len, ZMQ_DONTWAIT) >= 0) {
            self->stats.apply_sent++;
            s_note_sent(sh, sh->n_pend);
            amity_buf_reset(&sh->apply);
            return 0;
        }
        if (errno != EAGAIN) {
            return -1;
        }
    }
    /* the loop stops reading work before any outbox is full */
    AMITY_ASSERT(sh->out_n < VALIDATE_OUTBOX_MAX);
    if (sh->out_n == 0) {
        /* per call site, not per shard: one line per 10 s however many
         * shards are busy (the stats line names each) */
        amity_log_warn_rl(10, "shard busy or down endpoint=%s: holding apply messages",
                          sh->endpoint);
    }
    tail = (sh->out_head + sh->out_n) % VALIDATE_OUTBOX_MAX;
    /* move, not copy: the slot's (empty) buffer becomes the next scratch */
    tmp = sh->outbox[tail];
    sh->outbox[tail] = sh->apply;
    sh->apply = tmp;
    amity_buf_reset(&sh->apply);
    sh->out_recs[tail] = sh->n_pend;
    sh->out_records += sh->n_pend;
    sh->out_n++;
    sh->deferred++;
    self->stats.apply_deferred++;
    return 0;
}

static bool
s_outbox_full(const validate_t *self)
{
    uint32_t s;

    for (s = 0; s < self->n_shards; s++) {
        if (self->shards[s].out_n >= VALIDATE_OUTBOX_MAX) {
            return true;
        }
    }
    return false;
}

/* Reads and handles up to BATCH_MAX work messages. Returns 0, -1 (errno)
 * on a fatal socket error, AMITY_ENOMEM. */
static int
s_drain_work(validate_t *self)
{
    zmq_msg_t part;
    int more;
    size_t more_len;
    int got;
    uint32_t s;
    int rc;

    for (got = 0; got < BATCH_MAX && !s_outbox_full(self); got++) {
        (void)zmq_msg_init(&part);
        if (zmq_msg_recv(&part, self->work, ZMQ_DONTWAIT) < 0) {
            int e = errno;
            (void)zmq_msg_close(&part);
            errno = e;
            return e == EAGAIN ? 0 : -1;
        }
        more = 0;
        more_len = sizeof more;
        (void)zmq_getsockopt(self->work, ZMQ_RCVMORE, &more, &more_len);
        if (more) {
            /* work is one frame: drop the whole message */
            int frames = 1;
            while (more) {
                (void)zmq_msg_close(&part);
                (void)zmq_msg_init(&part);
                if (zmq_msg_recv(&part, self->work, ZMQ_DONTWAIT) < 0) {
                    break;
                }
                frames++;
                more = 0;
                more_len = sizeof more;
                (void)zmq_getsockopt(self->work, ZMQ_RCVMORE, &more, &more_len);
            }
            (void)zmq_msg_close(&part);
            self->stats.bad_work++;
            amity_log_warn_rl(10, "work message dropped frames=%d why=\"expected 1 frame\"",
                              frames);
            continue;
        }
        s_refresh_max_day(self, amity_clock_mono_ms());
        rc = validate_handle_work(self, zmq_msg_data(&part), zmq_msg_size(&part));
        if (rc == AMITY_ENOMEM) {
            (void)zmq_msg_close(&part);
            return rc;
        }
        if (rc == 0) {
            for (s = 0; s < self->n_shards; s++) {
                if (self->shards[s].apply.len > 0 && s_send_apply(self, &self->shards[s]) != 0) {
                    (void)zmq_msg_close(&part);
                    return -1;
                }
            }
        }
        /* item views borrow the part until the applies are sent or queued */
        amity_msg_clear(&self->msg);
        (void)zmq_msg_close(&part);
    }
    return 0;
}

/* True for an endpoint with connections to watch (inproc:// has none). */
static bool
s_watched(const char *endpoint)
{
    return strncmp(endpoint, "inproc://", 9) != 0;
}

static bool
s_any_watched(const amity_strlist_t *endpoints)
{
    size_t i;

    for (i = 0; i < endpoints->n; i++) {
        if (s_watched(endpoints->items[i])) {
            return true;
        }
    }
    return false;
}

static int
s_open_sockets(validate_t *self, void *ctx)
{
    amity_sock_opts_t opts;
    size_t i;

    memset(&opts, 0, sizeof opts);
    opts.linger_ms = -1;
    opts.max_msg = WORK_MAX_MSG;
    opts.rcvhwm = WORK_RCVHWM;
    self->work = amity_sock_new(ctx, ZMQ_PULL, &opts);
    if (self->work == NULL) {
        return AMITY_EIO;
    }
    /* monitors before connecting, so the first connections are seen
     * (inproc:// links have no connection events) */
    if (s_any_watched(self->ingest)) {
        self->work_mon = amity_monitor_new(ctx, self->work, "ingest");
        if (self->work_mon == NULL) {
            return AMITY_EIO;
        }
    }
    for (i = 0; i < self->ingest->n; i++) {
        /* CURVE options are taken per connect: each ingest has its own key */
        if (self->ingest_pub != NULL &&
            amity_curve_client(self->work, &self->own, self->ingest_pub[i].public_txt) != 0) {
            return AMITY_EIO;
        }
        if (amity_sock_connect(self->work, self->ingest->items[i]) != 0) {
            return AMITY_EIO;
        }
    }
    /* not ZMQ_IMMEDIATE: a connecting PUSH keeps its queue across a shard
     * restart, so what is queued when a shard drops is delivered when it is
     * back; past APPLY_SNDHWM the outbox takes over */
    memset(&opts, 0, sizeof opts);
    opts.linger_ms = -1;
    opts.sndhwm = APPLY_SNDHWM;
    for (i = 0; i < self->n_shards; i++) {
        shard_t *sh = &self->shards[i];
        char name[32];
        sh->push = amity_sock_new(ctx, ZMQ_PUSH, &opts);
        if (sh->push == NULL) {
            return AMITY_EIO;
        }
        (void)snprintf(name, sizeof name, "shard %zu", i);
        sh->up = !s_watched(sh->endpoint); /* inproc: always up */
        if (!sh->up) {
            sh->mon = amity_monitor_new(ctx, sh->push, name);
            if (sh->mon == NULL) {
                return AMITY_EIO;
            }
        }
        if (sh->server_key[0] != '\0' &&
            amity_curve_client(sh->push, &self->own, sh->server_key) != 0) {
            return AMITY_EIO;
        }
        if (amity_sock_connect(sh->push, sh->endpoint) != 0) {
            return AMITY_EIO;
        }
    }
    return 0;
}

static void
s_log_ready(const validate_t *self)
{
    char ingest[1024];
    char shards[1024];
    size_t o = 0;
    size_t i;
    int n;

    ingest[0] = '\0';
    for (i = 0; i < self->ingest->n && o < sizeof ingest; i++) {
        n = snprintf(ingest + o, sizeof ingest - o, "%s%s", i ? "," : "", self->ingest->items[i]);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    o = 0;
    shards[0] = '\0';
    for (i = 0; i < self->n_shards && o < sizeof shards; i++) {
        n = snprintf(shards + o, sizeof shards - o, "%s%s", i ? "," : "", self->shards[i].endpoint);
        if (n < 0) {
            break;
        }
        o += (size_t)n;
    }
    amity_log_info("ready ingest=%s shards=%s tz=%s work_curve=%s apply_curve=%s", ingest, shards,
                   self->tz, self->ingest_pub != NULL ? "on" : "off",
                   self->n_shards > 0 && self->shards[0].server_key[0] ? "on" : "off");
}

static void
s_close_sockets(validate_t *self)
{
    uint32_t s;

    amity_monitor_destroy(&self->work_mon);
    amity_sock_close(&self->work);
    for (s = 0; s < self->n_shards; s++) {
        amity_monitor_destroy(&self->shards[s].mon);
        amity_sock_close(&self->shards[s].push);
    }
}

/* Handles the monitors' events (each logged there) and counts them. */
static void
s_process_monitors(validate_t *self, const zmq_pollitem_t *items)
{
    amity_monitor_stats_t ms;
    uint64_t failures = 0;
    uint64_t disconnects = 0;
    uint32_t s;

    if (self->work_mon != NULL) {
        if (items[self->work_mon_item].revents & ZMQ_POLLIN) {
            (void)amity_monitor_process(self->work_mon);
        }
        amity_monitor_stats(self->work_mon, &ms);
        self->stats.ingest_disconnects = ms.disconnects;
        failures += ms.handshake_failures;
    }
    for (s = 0; s < self->n_shards; s++) {
        shard_t *sh = &self->shards[s];
        bool was_up = sh->up;
        if (sh->mon == NULL) {
            continue;
        }
        if (items[sh->mon_item].revents & ZMQ_POLLIN) {
            (void)amity_monitor_process(sh->mon);
        }
        amity_monitor_stats(sh->mon, &ms);
        sh->up = ms.live > 0;
        sh->disconnects = ms.disconnects;
        disconnects += ms.disconnects;
        failures += ms.handshake_failures;
        if (sh->up && !was_up) {
            /* ZeroMQ delivers what it held once the link is back */
            sh->held = 0;
            sh->held_records = 0;
        }
    }
    self->stats.shard_disconnects = disconnects;
    self->stats.handshake_failures = failures;
}

/* Last chance for queued apply messages; what stays is dropped, counted. */
static void
s_drop_queued(validate_t *self)
{
    uint64_t dropped = 0;
    uint32_t s;

    for (s = 0; s < self->n_shards; s++) {
        shard_t *sh = &self->shards[s];
        if (sh->push != NULL) {
            (void)s_flush_shard(self, sh);
        }
        while (sh->out_n > 0) {
            amity_buf_clear(&sh->outbox[sh->out_head]);
            sh->out_records -= sh->out_recs[sh->out_head];
            sh->out_head = (sh->out_head + 1) % VALIDATE_OUTBOX_MAX;
            sh->out_n--;
            dropped++;
        }
    }
    self->stats.apply_dropped += dropped;
    if (dropped > 0) {
        amity_log_warn("dropped %" PRIu64 " queued apply messages at shutdown (the offices "
                       "resend)",
                       dropped);
    }
}

int
validate_run(validate_t *self, void *ctx, int signal_fd)
{
    zmq_pollitem_t *items = self->items;
    zmq_pollitem_t *set;
    int n_set;
    int n_items;
    int i;
    uint32_t s;
    int rc = 0;

    AMITY_ASSERT(self != NULL && ctx != NULL);
    rc = s_open_sockets(self, ctx);
    if (rc != 0) {
        s_close_sockets(self);
        return rc;
    }
    s_log_ready(self);
    (void)amity_daemon_ready("checking records");

    /* items[0] signal fd, items[1] work, items[2 + s] shard s, then the
     * monitors there are (none for inproc:// links) */
    memset(items, 0, (3 + 2 * (size_t)self->n_shards) * sizeof *items);
    items[0].fd = signal_fd;
    items[0].events = ZMQ_POLLIN;
    items[1].socket = self->work;
    for (s = 0; s < self->n_shards; s++) {
        items[2 + s].socket = self->shards[s].push;
    }
    n_items = 2 + (int)self->n_shards;
    self->work_mon_item = -1;
    if (self->work_mon != NULL) {
        self->work_mon_item = n_items++;
        items[self->work_mon_item].socket = amity_monitor_socket(self->work_mon);
        items[self->work_mon_item].events = ZMQ_POLLIN;
    }
    for (s = 0; s < self->n_shards; s++) {
        shard_t *sh = &self->shards[s];
        sh->mon_item = -1;
        if (sh->mon != NULL) {
            sh->mon_item = n_items++;
            items[sh->mon_item].socket = amity_monitor_socket(sh->mon);
            items[sh->mon_item].events = ZMQ_POLLIN;
        }
    }
    set = signal_fd >= 0 ? items : items + 1;
    n_set = signal_fd >= 0 ? n_items : n_items - 1;
    self->next_stats_ms = amity_clock_mono_ms() + STATS_EVERY_MS;

    while (!self->stopping) {
        int64_t now = amity_clock_mono_ms();
        int64_t next = amity_daemon_watchdog(now); /* pings when due */
        long timeout;

        if (next > self->next_stats_ms) {
            next = self->next_stats_ms;
        }
        timeout = (long)(next > now ? next - now : 0);

        /* read work only while every shard can take what it produces */
        items[1].events = s_outbox_full(self) ? 0 : ZMQ_POLLIN;
        for (s = 0; s < self->n_shards; s++) {
            items[2 + s].events = self->shards[s].out_n > 0 ? ZMQ_POLLOUT : 0;
            items[2 + s].revents = 0;
        }
        for (i = 0; i < n_items; i++) {
            items[i].revents = 0;
        }
        if (zmq_poll(set, n_set, timeout) < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != ETERM) {
                amity_log_errno("zmq_poll");
                rc = AMITY_EIO;
            }
            break;
        }
        if (signal_fd >= 0 && (items[0].revents & ZMQ_POLLIN)) {
            s_on_signal(self, signal_fd);
        }
        s_process_monitors(self, items);
        for (s = 0; s < self->n_shards; s++) {
            if ((items[2 + s].revents & ZMQ_POLLOUT) &&
                s_flush_shard(self, &self->shards[s]) != 0) {
                rc = -1;
                break;
            }
        }
        if (rc != 0) {
            break;
        }
        if (!self->stopping && (items[1].revents & ZMQ_POLLIN)) {
            rc = s_drain_work(self);
            if (rc != 0) {
                break;
            }
        }
        now = amity_clock_mono_ms();
        if (now >= self->next_stats_ms) {
            if (memcmp(&self->stats, &self->logged, sizeof self->stats) != 0) {
                s_log_stats(self, "");
            }
            self->next_stats_ms = now + STATS_EVERY_MS;
        }
    }
    if (rc == -1) {
        if (errno == ETERM) {
            rc = 0;
        } else {
            amity_log_errno("socket failure");
            rc = AMITY_EIO;
        }
    } else if (rc == AMITY_ENOMEM) {
        amity_log_error("out of memory");
    }
    (void)amity_daemon_stopping();
    s_drop_queued(self);
    s_log_stats(self, " final");
    s_close_sockets(self);
    return rc;
}
