/*  spool: an office's durable local queue of records (amity/spool.h).
 *
 *  Records go into LMDB (through amity/store.h) before anyone is told
 *  they are safe, and leave it only in the durable transaction that
 *  records their verdict. The drain is libamity's client with the
 *  records' sequence numbers as tags; whatever has no verdict when a
 *  drain ends (deadline, signal, kill -9) stays pending and is sent again
 *  by the next one, which the server answers with "duplicate" when it had
 *  already counted it. Entries are msgpack maps written and read with
 *  proto's field codec, so this file never sees msgpack itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "amity/auth.h"
#include "amity/clock.h"
#include "amity/log.h"
#include "amity/proto.h"
#include "amity/spool.h"
#include "amity/store.h"

#define S_FORMAT       1 /* meta "format": the layout described in spool.h */
#define S_DB_PENDING   0 /* store database indexes */
#define S_DB_REJECTED  1
#define S_DB_META      2
#define S_CHUNK        512  /* pending records read per read transaction */
#define S_SETTLE_MAX   2048 /* verdicts recorded per transaction at most */
#define S_SETTLE_MS    100  /* record verdicts at least this often */
#define S_TICK_MS      100  /* progress callback period */
#define S_POLL_MS      100  /* client poll slice */
#define S_WHY_COPY_MAX 1024 /* bytes of a server's reason kept */

/*  Whom a spool belongs to: what its records are sent as. */
typedef enum {
    S_OWNER_NONE = 0, /* nobody yet (spool), no identity (a run) */
    S_OWNER_OFFICE,   /* development mode: an office id, meta "office" */
    S_OWNER_KEY,      /* secure mode: a public key (Z85), meta "key" */
} s_owner_kind_t;

typedef struct {
    s_owner_kind_t kind;
    char text[AMITY_OFFICE_MAX + 1]; /* the office id or the key text */
} s_owner_t;

struct amity_spool {
    amity_store_t *store;              /* the LMDB environment */
    char *dir;                         /* its directory */
    bool claimed;                      /* amity_spool_claim succeeded: commits check owner */
    s_owner_t owner;                   /* ... with this identity */
    amity_client_t *volatile client;   /* the drain's client, for interrupts */
    volatile sig_atomic_t interrupted; /* amity_spool_interrupt was called */
};

struct amity_spool_batch {
    amity_buf_t data; /* encoded entries, back to back */
    size_t *off;      /* each entry's offset in data */
    size_t *len;      /* each entry's length */
    size_t n;         /* entries */
    size_t cap;       /* room in off and len */
    amity_buf_t rec;  /* scratch: a record being encoded */
};

/*  ------------------------------------------------------------------
 *  Small helpers
 */

static void
s_be64_put(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xff);
        v >>= 8;
    }
}

static uint64_t
s_be64_get(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/*  Reads a BE64 counter from meta (0 when absent). */
static int
s_meta_get(amity_txn_t *txn, const char *name, uint64_t *out, amity_buf_t *scratch)
{
    int rc = amity_txn_get(txn, S_DB_META, name, strlen(name), scratch);

    *out = 0;
    if (rc == AMITY_ENOTFOUND) {
        return 0;
    }
    if (rc != 0) {
        return rc;
    }
    if (scratch->len != 8) {
        amity_log_error("spool: meta %s: %zu bytes, expected 8", name, scratch->len);
        return AMITY_EIO;
    }
    *out = s_be64_get(scratch->data);
    return 0;
}

static int
s_meta_put(amity_txn_t *txn, const char *name, uint64_t v)
{
    uint8_t b[8];

    s_be64_put(b, v);
    return amity_txn_put(txn, S_DB_META, name, strlen(name), b, sizeof(b));
}

/*  ------------------------------------------------------------------
 *  Whom the spool belongs to
 */

static const char *const s_owner_meta[] = { "", "office", "key" };

/*  "office ID", "key Z85", or a phrase for none. */
static void
s_owner_describe(const s_owner_t *o, char *buf, size_t len)
{
    if (o->kind == S_OWNER_NONE) {
        (void)snprintf(buf, len, "no identity (neither an office nor a key)");
    } else {
        (void)snprintf(buf, len, "%s %s", s_owner_meta[o->kind], o->text);
    }
}

static bool
s_owner_equal(const s_owner_t *a, const s_owner_t *b)
{
    return a->kind == b->kind && strcmp(a->text, b->text) == 0;
}

/*  The identity opts sends records as. Returns 0 or AMITY_EINVAL (why set:
 *  the key file cannot be read, the office is too long). */
static int
s_owner_of_opts(const amity_client_opts_t *opts, s_owner_t *out, char *why, size_t why_len)
{
    amity_keypair_t kp;

    memset(out, 0, sizeof(*out));
    if (opts != NULL && opts->key != NULL && opts->key[0] != '\0') {
        if (amity_keypair_load(opts->key, &kp) != 0 || kp.secret_txt[0] == '\0') {
            memset(&kp, 0, sizeof(kp));
            (void)snprintf(why, why_len, "key: %s is not a secret certificate", opts->key);
            return AMITY_EINVAL;
        }
        out->kind = S_OWNER_KEY;
        (void)snprintf(out->text, sizeof(out->text), "%s", kp.public_txt);
        memset(&kp, 0, sizeof(kp)); /* the secret does not linger */
    } else if (opts != NULL && opts->office != NULL && opts->office[0] != '\0') {
        if (strlen(opts->office) > AMITY_OFFICE_MAX) {
            (void)snprintf(why, why_len, "office: longer than %d bytes", AMITY_OFFICE_MAX);
            return AMITY_EINVAL;
        }
        out->kind = S_OWNER_OFFICE;
        (void)snprintf(out->text, sizeof(out->text), "%s", opts->office);
    }
    return 0;
}

/*  Reads the spool's owner from meta (kind NONE when it has none). */
static int
s_owner_read(amity_txn_t *txn, s_owner_t *out, amity_buf_t *scratch)
{
    memset(out, 0, sizeof(*out));
    for (int k = S_OWNER_OFFICE; k <= S_OWNER_KEY; k++) {
        int rc = amity_txn_get(txn, S_DB_META, s_owner_meta[k], strlen(s_owner_meta[k]), scratch);
        if (rc == AMITY_ENOTFOUND) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        if (scratch->len == 0 || scratch->len >= sizeof(out->text)) {
            amity_log_error("spool: meta %s: %zu bytes", s_owner_meta[k], scratch->len);
            return AMITY_EIO;
        }
        out->kind = (s_owner_kind_t)k;
        memcpy(out->text, scratch->data, scratch->len);
        out->text[scratch->len] = '\0';
        return 0;
    }
    return 0;
}

/*  Checks, inside a transaction, that the spool belongs to mine; with
 *  record (a write transaction) makes it mine when it belongs to nobody
 *  (and mine is somebody). *found gets the spool's owner. Returns 0,
 *  AMITY_EINVAL (another owner), or the store's error. */
static int
s_owner_check(amity_txn_t *txn, const s_owner_t *mine, bool record, s_owner_t *found,
              amity_buf_t *scratch)
{
    int rc = s_owner_read(txn, found, scratch);

    if (rc != 0) {
        return rc;
    }
    if (found->kind == S_OWNER_NONE) {
        if (!record || mine->kind == S_OWNER_NONE) {
            return 0;
        }
        return amity_txn_put(txn, S_DB_META, s_owner_meta[mine->kind],
                             strlen(s_owner_meta[mine->kind]), mine->text, strlen(mine->text));
    }
    return s_owner_equal(found, mine) ? 0 : AMITY_EINVAL;
}

/*  "spool DIR belongs to office a, not office b" */
static void
s_owner_mismatch(const amity_spool_t *self, const s_owner_t *found, const s_owner_t *mine,
                 char *why, size_t why_len)
{
    char a[AMITY_SPOOL_OWNER_MAX + 48];
    char b[AMITY_SPOOL_OWNER_MAX + 48];

    s_owner_describe(found, a, sizeof(a));
    s_owner_describe(mine, b, sizeof(b));
    (void)snprintf(why, why_len, "spool %s belongs to %s, not %s", self->dir, a, b);
}

typedef struct {
    const s_owner_t *mine; /* the identity to check */
    bool record;           /* make the spool ours when it is nobody's */
    s_owner_t found;       /* out: the spool's owner */
    amity_buf_t scratch;   /* meta reads */
} s_owner_ctx_t;

static int
s_owner_txn(amity_txn_t *txn, void *arg)
{
    s_owner_ctx_t *ctx = arg;

    return s_owner_check(txn, ctx->mine, ctx->record, &ctx->found, &ctx->scratch);
}

/*  Checks (and with record, records) mine against the spool. Returns 0,
 *  AMITY_EINVAL with why naming both, or the store's error. */
static int
s_owner_settle(amity_spool_t *self, const s_owner_t *mine, bool record, char *why, size_t why_len)
{
    s_owner_ctx_t ctx;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    ctx.mine = mine;
    ctx.record = record;
    amity_buf_init(&ctx.scratch);
    rc = record ? amity_store_update(self->store, s_owner_txn, &ctx)
                : amity_store_view(self->store, s_owner_txn, &ctx);
    amity_buf_clear(&ctx.scratch);
    if (rc == AMITY_EINVAL) {
        s_owner_mismatch(self, &ctx.found, mine, why, why_len);
    }
    return rc;
}

static void
s_field_str(amity_field_t *f, const char *name, const char *s, size_t len)
{
    f->name = name;
    f->name_len = strlen(name);
    f->val.type = AMITY_VAL_STR;
    f->val.as.s.ptr = s;
    f->val.as.s.len = len;
}

static void
s_field_bin(amity_field_t *f, const char *name, const void *p, size_t len)
{
    f->name = name;
    f->name_len = strlen(name);
    f->val.type = AMITY_VAL_BIN;
    f->val.as.s.ptr = p;
    f->val.as.s.len = len;
}

static void
s_field_uint(amity_field_t *f, const char *name, uint64_t v)
{
    f->name = name;
    f->name_len = strlen(name);
    f->val.type = AMITY_VAL_UINT;
    f->val.as.u = v;
}

static const amity_field_t *
s_find(const amity_fields_t *f, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < f->n_fields; i++) {
        if (f->fields[i].name_len == len && memcmp(f->fields[i].name, name, len) == 0) {
            return &f->fields[i];
        }
    }
    return NULL;
}

/*  Copies text into buf (NUL-terminated, cut to fit), controls as '?'. */
static void
s_copy_text(char *buf, size_t buf_len, const char *p, size_t len)
{
    size_t n = len < buf_len - 1 ? len : buf_len - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        buf[i] = (char)((c < 0x20 || c == 0x7f) ? '?' : c);
    }
    buf[n] = '\0';
}

/*  The id of an encoded record, "-" when it has no string id. */
static void
s_record_id(const uint8_t *rec, size_t len, char *id, size_t id_len)
{
    amity_fields_t f;
    const amity_field_t *fid;
    char why[AMITY_WHY_MAX];

    (void)snprintf(id, id_len, "-");
    if (amity_fields_decode(rec, len, &f, why, sizeof(why)) != 0) {
        return;
    }
    fid = s_find(&f, "id");
    if (fid != NULL && fid->val.type == AMITY_VAL_STR && fid->val.as.s.len > 0) {
        s_copy_text(id, id_len, fid->val.as.s.ptr, fid->val.as.s.len);
    }
}

/*  A stored entry read back: e's pointers are views into the value (or
 *  into the buffers here, for the NUL-terminated strings). */
typedef struct {
    amity_fields_t fields;                   /* the entry's map */
    amity_spool_entry_t e;                   /* what callbacks get */
    char source[AMITY_SPOOL_SOURCE_MAX + 1]; /* e.source */
    char id[AMITY_ID_MAX + 1];               /* e.id */
    char why[S_WHY_COPY_MAX];                /* e.why */
} s_entry_t;

static int
s_entry_parse(uint64_t seq, const uint8_t *val, size_t len, s_entry_t *out)
{
    const amity_field_t *f;
    char why[AMITY_WHY_MAX];

    memset(&out->e, 0, sizeof(out->e));
    out->source[0] = '\0';
    out->why[0] = '\0';
    out->e.seq = seq;
    out->e.source = out->source;
    out->e.why = out->why;
    out->e.id = out->id;
    if (amity_fields_decode(val, len, &out->fields, why, sizeof(why)) != 0) {
        amity_log_warn("spool: entry %llu is unreadable: %s", (unsigned long long)seq, why);
        return AMITY_EPROTO;
    }
    f = s_find(&out->fields, "rec");
    if (f == NULL || f->val.type != AMITY_VAL_BIN) {
        amity_log_warn("spool: entry %llu has no record", (unsigned long long)seq);
        return AMITY_EPROTO;
    }
    out->e.rec = (const uint8_t *)f->val.as.s.ptr;
    out->e.rec_len = f->val.as.s.len;
    f = s_find(&out->fields, "ts");
    if (f != NULL && f->val.type == AMITY_VAL_UINT) {
        out->e.spooled_ms = (int64_t)f->val.as.u;
    }
    f = s_find(&out->fields, "rts");
    if (f != NULL && f->val.type == AMITY_VAL_UINT) {
        out->e.verdict_ms = (int64_t)f->val.as.u;
    }
    f = s_find(&out->fields, "src");
    if (f != NULL && f->val.type == AMITY_VAL_STR) {
        s_copy_text(out->source, sizeof(out->source), f->val.as.s.ptr, f->val.as.s.len);
    }
    f = s_find(&out->fields, "raw");
    if (f != NULL && f->val.type == AMITY_VAL_BIN) {
        out->e.raw = f->val.as.s.ptr;
        out->e.raw_len = f->val.as.s.len;
    }
    f = s_find(&out->fields, "hdr");
    if (f != NULL && f->val.type == AMITY_VAL_BIN) {
        out->e.header = f->val.as.s.ptr;
        out->e.header_len = f->val.as.s.len;
    }
    f = s_find(&out->fields, "why");
    if (f != NULL && f->val.type == AMITY_VAL_STR) {
        s_copy_text(out->why, sizeof(out->why), f->val.as.s.ptr, f->val.as.s.len);
        out->e.status = AMITY_STATUS_REJECTED;
    }
    f = s_find(&out->fields, "id");
    if (f != NULL && f->val.type == AMITY_VAL_STR) {
        s_copy_text(out->id, sizeof(out->id), f->val.as.s.ptr, f->val.as.s.len);
    } else {
        s_record_id(out->e.rec, out->e.rec_len, out->id, sizeof(out->id));
    }
    return 0;
}

/*  ------------------------------------------------------------------
 *  Lifecycle
 */

typedef struct {
    amity_buf_t scratch; /* meta reads */
    bool foreign;        /* another format */
} s_open_ctx_t;

static int
s_open_txn(amity_txn_t *txn, void *arg)
{
    s_open_ctx_t *ctx = arg;
    uint64_t format;
    int rc;

    ctx->foreign = false;
    rc = s_meta_get(txn, "format", &format, &ctx->scratch);
    if (rc != 0) {
        return rc;
    }
    if (format == 0) {
        return s_meta_put(txn, "format", S_FORMAT);
    }
    if (format != S_FORMAT) {
        ctx->foreign = true;
        return AMITY_EINVAL;
    }
    return 0;
}

int
amity_spool_open(amity_spool_t **out, const char *dir)
{
    amity_store_opts_t so;
    amity_spool_t *self;
    s_open_ctx_t ctx;
    int rc;

    AMITY_ASSERT(out != NULL && dir != NULL);
    *out = NULL;
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    amity_buf_init(&ctx.scratch);
    self->dir = strdup(dir);
    if (self->dir == NULL) {
        rc = AMITY_ENOMEM;
        goto fail;
    }
    memset(&so, 0, sizeof(so));
    so.map_size = (size_t)16 * 1024 * 1024;
    so.n_dbs = 3;
    so.dbs[S_DB_PENDING] = "pending";
    so.dbs[S_DB_REJECTED] = "rejected";
    so.dbs[S_DB_META] = "meta";
    rc = amity_store_open(&self->store, dir, &so);
    if (rc != 0) {
        goto fail;
    }
    rc = amity_store_update(self->store, s_open_txn, &ctx);
    if (rc != 0) {
        if (ctx.foreign) {
            amity_log_error("spool %s: not a spool of this version (format)", dir);
        }
        goto fail;
    }
    amity_buf_clear(&ctx.scratch);
    *out = self;
    return 0;

fail:
    amity_buf_clear(&ctx.scratch);
    amity_spool_destroy(&self);
    return rc;
}

void
amity_spool_destroy(amity_spool_t **self_p)
{
    amity_spool_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    amity_store_destroy(&self->store);
    free(self->dir);
    free(self);
    *self_p = NULL;
}

int
amity_spool_claim(amity_spool_t *self, const amity_client_opts_t *opts, char *why, size_t why_len)
{
    s_owner_t mine;
    char own_why[AMITY_WHY_MAX];
    int rc;

    AMITY_ASSERT(self != NULL);
    if (why == NULL || why_len == 0) {
        why = own_why;
        why_len = sizeof(own_why);
    }
    why[0] = '\0';
    rc = s_owner_of_opts(opts, &mine, why, why_len);
    if (rc == 0) {
        rc = s_owner_settle(self, &mine, false, why, why_len);
    }
    if (rc != 0) {
        return rc;
    }
    self->owner = mine;
    self->claimed = true;
    return 0;
}

void
amity_spool_interrupt(amity_spool_t *self)
{
    amity_client_t *c;

    if (self == NULL) {
        return;
    }
    self->interrupted = 1;
    c = self->client;
    if (c != NULL) {
        amity_client_interrupt(c);
    }
}

/*  ------------------------------------------------------------------
 *  Putting records in
 */

int
amity_spool_batch_new(amity_spool_batch_t **out)
{
    amity_spool_batch_t *self;

    AMITY_ASSERT(out != NULL);
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        *out = NULL;
        return AMITY_ENOMEM;
    }
    amity_buf_init(&self->data);
    amity_buf_init(&self->rec);
    *out = self;
    return 0;
}

void
amity_spool_batch_destroy(amity_spool_batch_t **self_p)
{
    amity_spool_batch_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    amity_buf_clear(&self->data);
    amity_buf_clear(&self->rec);
    free(self->off);
    free(self->len);
    free(self);
    *self_p = NULL;
}

static void
s_batch_reset(amity_spool_batch_t *self)
{
    self->n = 0;
    amity_buf_reset(&self->data);
}

int
amity_spool_batch_add(amity_spool_batch_t *self, const amity_spool_item_t *item)
{
    amity_fields_t entry;
    amity_fields_t check;
    const uint8_t *rec;
    size_t rec_len;
    size_t mark;
    char why[AMITY_WHY_MAX];
    int rc;

    AMITY_ASSERT(self != NULL && item != NULL);
    if (item->fields != NULL) {
        amity_buf_reset(&self->rec);
        rc = amity_fields_encode(item->fields, &self->rec);
        if (rc != 0) {
            return rc == AMITY_ENOMEM ? rc : AMITY_EINVAL;
        }
        rec = self->rec.data;
        rec_len = self->rec.len;
    } else {
        rec = item->rec;
        rec_len = item->rec_len;
        if (rec == NULL || amity_fields_decode(rec, rec_len, &check, why, sizeof(why)) != 0) {
            return AMITY_EINVAL;
        }
    }
    if (rec_len == 0 || rec_len > AMITY_CLIENT_REC_MAX) {
        return AMITY_EINVAL;
    }
    if (self->n == self->cap) {
        size_t cap = self->cap ? self->cap * 2 : 64;
        size_t *off = realloc(self->off, cap * sizeof(*off));
        size_t *len;
        if (off == NULL) {
            return AMITY_ENOMEM;
        }
        self->off = off;
        len = realloc(self->len, cap * sizeof(*len));
        if (len == NULL) {
            return AMITY_ENOMEM;
        }
        self->len = len;
        self->cap = cap;
    }
    memset(&entry, 0, sizeof(entry));
    s_field_uint(&entry.fields[entry.n_fields++], "v", 1);
    s_field_uint(&entry.fields[entry.n_fields++], "ts", (uint64_t)amity_clock_wall_ms());
    if (item->source != NULL) {
        size_t n = strlen(item->source);
        s_field_str(&entry.fields[entry.n_fields++], "src", item->source,
                    n < AMITY_SPOOL_SOURCE_MAX ? n : AMITY_SPOOL_SOURCE_MAX);
    }
    s_field_bin(&entry.fields[entry.n_fields++], "rec", rec, rec_len);
    if (item->raw != NULL) {
        s_field_bin(&entry.fields[entry.n_fields++], "raw", item->raw, item->raw_len);
    }
    if (item->header != NULL) {
        s_field_bin(&entry.fields[entry.n_fields++], "hdr", item->header, item->header_len);
    }
    mark = self->data.len;
    rc = amity_fields_encode(&entry, &self->data);
    if (rc != 0) {
        self->data.len = mark;
        return rc == AMITY_ENOMEM ? rc : AMITY_EINVAL;
    }
    self->off[self->n] = mark;
    self->len[self->n] = self->data.len - mark;
    self->n++;
    return 0;
}

size_t
amity_spool_batch_count(const amity_spool_batch_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->n;
}

size_t
amity_spool_batch_bytes(const amity_spool_batch_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->data.len;
}

typedef struct {
    const amity_spool_batch_t *batch; /* what to write */
    const s_owner_t *owner;           /* claimed identity to check (NULL: none) */
    s_owner_t found;                  /* out: the spool's owner, when it is another */
    amity_buf_t scratch;              /* meta reads */
    uint64_t first;                   /* out: first sequence number */
} s_commit_ctx_t;

static int
s_commit_txn(amity_txn_t *txn, void *arg)
{
    s_commit_ctx_t *ctx = arg;
    uint64_t last;
    uint8_t key[8];
    int rc;

    if (ctx->owner != NULL) {
        rc = s_owner_check(txn, ctx->owner, true, &ctx->found, &ctx->scratch);
        if (rc != 0) {
            return rc;
        }
    }
    rc = s_meta_get(txn, "seq", &last, &ctx->scratch);
    if (rc != 0) {
        return rc;
    }
    ctx->first = last + 1;
    for (size_t i = 0; i < ctx->batch->n; i++) {
        s_be64_put(key, last + 1 + i);
        rc = amity_txn_put(txn, S_DB_PENDING, key, sizeof(key),
                           ctx->batch->data.data + ctx->batch->off[i], ctx->batch->len[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return s_meta_put(txn, "seq", last + ctx->batch->n);
}

int
amity_spool_commit(amity_spool_t *self, amity_spool_batch_t *batch, uint64_t *first_seq)
{
    s_commit_ctx_t ctx;
    int rc;

    AMITY_ASSERT(self != NULL && batch != NULL);
    if (first_seq != NULL) {
        *first_seq = 0;
    }
    if (batch->n == 0) {
        return 0;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.batch = batch;
    ctx.owner = self->claimed ? &self->owner : NULL;
    amity_buf_init(&ctx.scratch);
    rc = amity_store_update(self->store, s_commit_txn, &ctx);
    amity_buf_clear(&ctx.scratch);
    if (rc == AMITY_EINVAL) {
        char why[AMITY_WHY_MAX + AMITY_SPOOL_OWNER_MAX];
        s_owner_mismatch(self, &ctx.found, &self->owner, why, sizeof(why));
        amity_log_error("%s: nothing spooled", why);
    }
    if (rc != 0) {
        return rc;
    }
    if (first_seq != NULL) {
        *first_seq = ctx.first;
    }
    s_batch_reset(batch);
    return 0;
}

int
amity_spool_put(amity_spool_t *self, const amity_fields_t *rec, const char *source, uint64_t *seq)
{
    amity_spool_batch_t *batch = NULL;
    amity_spool_item_t item;
    int rc;

    AMITY_ASSERT(self != NULL && rec != NULL);
    rc = amity_spool_batch_new(&batch);
    if (rc != 0) {
        return rc;
    }
    memset(&item, 0, sizeof(item));
    item.fields = rec;
    item.source = source;
    rc = amity_spool_batch_add(batch, &item);
    if (rc == 0) {
        rc = amity_spool_commit(self, batch, seq);
    }
    amity_spool_batch_destroy(&batch);
    return rc;
}

/*  ------------------------------------------------------------------
 *  Reading
 */

typedef struct {
    amity_buf_t scratch;      /* meta reads */
    amity_spool_status_t *st; /* out */
} s_status_ctx_t;

static int
s_oldest_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    s_status_ctx_t *ctx = arg;
    s_entry_t *e;

    if (key_len != 8) {
        return 0;
    }
    e = malloc(sizeof(*e));
    if (e == NULL) {
        return AMITY_ENOMEM;
    }
    if (s_entry_parse(s_be64_get(key), val, val_len, e) == 0) {
        ctx->st->oldest_ms = e->e.spooled_ms;
    }
    free(e);
    return 1;
}

static int
s_status_txn(amity_txn_t *txn, void *arg)
{
    s_status_ctx_t *ctx = arg;
    int rc;

    rc = s_meta_get(txn, "seq", &ctx->st->spooled, &ctx->scratch);
    if (rc == 0) {
        rc = s_meta_get(txn, "accepted", &ctx->st->accepted, &ctx->scratch);
    }
    if (rc == 0) {
        rc = s_meta_get(txn, "duplicate", &ctx->st->duplicate, &ctx->scratch);
    }
    if (rc == 0) {
        rc = s_meta_get(txn, "rejected", &ctx->st->rejected_ever, &ctx->scratch);
    }
    if (rc == 0) {
        s_owner_t owner;
        rc = s_owner_read(txn, &owner, &ctx->scratch);
        if (rc == 0 && owner.kind != S_OWNER_NONE) {
            s_owner_describe(&owner, ctx->st->owner, sizeof(ctx->st->owner));
        }
    }
    if (rc == 0) {
        rc = amity_txn_scan(txn, S_DB_PENDING, NULL, 0, NULL, 0, s_oldest_cb, ctx);
    }
    return rc;
}

int
amity_spool_status(amity_spool_t *self, amity_spool_status_t *out)
{
    amity_store_stat_t st;
    s_status_ctx_t ctx;
    int rc;

    AMITY_ASSERT(self != NULL && out != NULL);
    memset(out, 0, sizeof(*out));
    rc = amity_store_stat(self->store, &st);
    if (rc != 0) {
        return rc;
    }
    out->pending = st.entries[S_DB_PENDING];
    out->rejected = st.entries[S_DB_REJECTED];
    ctx.st = out;
    amity_buf_init(&ctx.scratch);
    rc = amity_store_view(self->store, s_status_txn, &ctx);
    amity_buf_clear(&ctx.scratch);
    return rc;
}

typedef struct {
    amity_spool_entry_fn cb; /* the caller's */
    void *arg;               /* its argument */
    size_t max;              /* entries at most (0: all) */
    size_t n;                /* entries so far */
    int cb_rc;               /* the caller's non-zero return */
    s_entry_t *entry;        /* scratch */
    int db;                  /* which database */
    uint64_t after;          /* start after this sequence number */
} s_walk_ctx_t;

static int
s_walk_cb(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    s_walk_ctx_t *ctx = arg;
    int rc;

    if (key_len != 8) {
        return 0;
    }
    if (s_entry_parse(s_be64_get(key), val, val_len, ctx->entry) != 0) {
        return 0; /* logged; left where it is for an operator */
    }
    rc = ctx->cb(ctx->arg, &ctx->entry->e);
    ctx->n++;
    if (rc != 0) {
        ctx->cb_rc = rc;
        return 1;
    }
    return (ctx->max > 0 && ctx->n >= ctx->max) ? 1 : 0;
}

static int
s_walk_txn(amity_txn_t *txn, void *arg)
{
    s_walk_ctx_t *ctx = arg;
    uint8_t after[8];

    s_be64_put(after, ctx->after);
    return amity_txn_scan(txn, ctx->db, NULL, 0, ctx->after > 0 ? after : NULL,
                          ctx->after > 0 ? sizeof(after) : 0, s_walk_cb, ctx);
}

static int
s_walk(amity_spool_t *self, int db, uint64_t after, size_t max, amity_spool_entry_fn cb, void *arg)
{
    s_walk_ctx_t ctx;
    int rc;

    AMITY_ASSERT(self != NULL && cb != NULL);
    memset(&ctx, 0, sizeof(ctx));
    ctx.cb = cb;
    ctx.arg = arg;
    ctx.max = max;
    ctx.db = db;
    ctx.after = after;
    ctx.entry = malloc(sizeof(*ctx.entry));
    if (ctx.entry == NULL) {
        return AMITY_ENOMEM;
    }
    rc = amity_store_view(self->store, s_walk_txn, &ctx);
    free(ctx.entry);
    if (rc == 0 && ctx.cb_rc != 0) {
        rc = ctx.cb_rc;
    }
    return rc;
}

int
amity_spool_pending(amity_spool_t *self, uint64_t after, size_t max, amity_spool_entry_fn cb,
                    void *arg)
{
    return s_walk(self, S_DB_PENDING, after, max, cb, arg);
}

int
amity_spool_rejected(amity_spool_t *self, amity_spool_entry_fn cb, void *arg)
{
    return s_walk(self, S_DB_REJECTED, 0, 0, cb, arg);
}

typedef struct {
    uint64_t upto;    /* remove keys <= this */
    uint64_t n;       /* removed */
    amity_buf_t keys; /* keys to remove, 8 bytes each */
} s_clear_ctx_t;

static int
s_clear_collect(const void *key, size_t key_len, const void *val, size_t val_len, void *arg)
{
    s_clear_ctx_t *ctx = arg;

    (void)val;
    (void)val_len;
    if (key_len == 8 && s_be64_get(key) > ctx->upto) {
        return 1;
    }
    return amity_buf_append(&ctx->keys, key, key_len) == 0 ? 0 : AMITY_ENOMEM;
}

static int
s_clear_txn(amity_txn_t *txn, void *arg)
{
    s_clear_ctx_t *ctx = arg;
    int rc;

    ctx->n = 0;
    amity_buf_reset(&ctx->keys);
    rc = amity_txn_scan(txn, S_DB_REJECTED, NULL, 0, NULL, 0, s_clear_collect, ctx);
    if (rc != 0) {
        return rc;
    }
    for (size_t off = 0; off + 8 <= ctx->keys.len; off += 8) {
        rc = amity_txn_del(txn, S_DB_REJECTED, ctx->keys.data + off, 8);
        if (rc != 0 && rc != AMITY_ENOTFOUND) {
            return rc;
        }
        ctx->n++;
    }
    return 0;
}

int
amity_spool_rejected_clear(amity_spool_t *self, uint64_t upto, uint64_t *n_removed)
{
    s_clear_ctx_t ctx;
    int rc;

    AMITY_ASSERT(self != NULL);
    memset(&ctx, 0, sizeof(ctx));
    ctx.upto = upto;
    amity_buf_init(&ctx.keys);
    rc = amity_store_update(self->store, s_clear_txn, &ctx);
    amity_buf_clear(&ctx.keys);
    if (n_removed != NULL) {
        *n_removed = rc == 0 ? ctx.n : 0;
    }
    return rc;
}

/*  ------------------------------------------------------------------
 *  Recording verdicts
 */

typedef struct {
    const amity_spool_outcome_t *o; /* the outcomes */
    size_t n;                       /* how many */
    amity_buf_t *vals;              /* copies of the pending values (vals[i] for o[i]) */
    bool *found;                    /* o[i]'s record was pending */
    amity_buf_t scratch;            /* meta reads, rejected entries */
    s_entry_t *entry;               /* scratch */
} s_settle_ctx_t;

/*  Writes the rejected-list entry for a pending value. */
static int
s_put_rejected(amity_txn_t *txn, s_settle_ctx_t *ctx, const uint8_t *key, const amity_buf_t *val,
               const char *why)
{
    amity_fields_t out;
    s_entry_t *e = ctx->entry;
    size_t why_len = why != NULL ? strlen(why) : 0;
    int rc;

    rc = s_entry_parse(s_be64_get(key), val->data, val->len, e);
    if (rc != 0) {
        /* unreadable: keep the bytes as they are, with the reason beside */
        memset(&out, 0, sizeof(out));
        s_field_uint(&out.fields[out.n_fields++], "v", 1);
        s_field_bin(&out.fields[out.n_fields++], "rec", val->data, val->len);
    } else {
        out = e->fields;
        if (out.n_fields + 3 > AMITY_FIELDS_MAX) {
            return AMITY_EIO;
        }
        s_field_str(&out.fields[out.n_fields++], "id", e->id, strlen(e->id));
    }
    s_field_str(&out.fields[out.n_fields++], "why", why_len ? why : "-", why_len ? why_len : 1);
    s_field_uint(&out.fields[out.n_fields++], "rts", (uint64_t)amity_clock_wall_ms());
    amity_buf_reset(&ctx->scratch);
    rc = amity_fields_encode(&out, &ctx->scratch);
    if (rc != 0) {
        return rc == AMITY_ENOMEM ? rc : AMITY_EIO;
    }
    return amity_txn_put(txn, S_DB_REJECTED, key, 8, ctx->scratch.data, ctx->scratch.len);
}

static int
s_settle_txn(amity_txn_t *txn, void *arg)
{
    s_settle_ctx_t *ctx = arg;
    uint64_t counts[3] = { 0, 0, 0 };
    static const char *const names[3] = { "accepted", "duplicate", "rejected" };
    uint8_t key[8];
    int rc;

    for (size_t i = 0; i < ctx->n; i++) {
        const amity_spool_outcome_t *o = &ctx->o[i];

        ctx->found[i] = false;
        s_be64_put(key, o->seq);
        rc = amity_txn_get(txn, S_DB_PENDING, key, sizeof(key), &ctx->vals[i]);
        if (rc == AMITY_ENOTFOUND) {
            continue;
        }
        if (rc != 0) {
            return rc;
        }
        rc = amity_txn_del(txn, S_DB_PENDING, key, sizeof(key));
        if (rc != 0) {
            return rc;
        }
        if (o->status == AMITY_STATUS_REJECTED) {
            rc = s_put_rejected(txn, ctx, key, &ctx->vals[i], o->why);
            if (rc != 0) {
                return rc;
            }
            counts[2]++;
        } else if (o->status == AMITY_STATUS_DUPLICATE) {
            counts[1]++;
        } else {
            counts[0]++;
        }
        ctx->found[i] = true;
    }
    for (int k = 0; k < 3; k++) {
        uint64_t v;
        if (counts[k] == 0) {
            continue;
        }
        rc = s_meta_get(txn, names[k], &v, &ctx->scratch);
        if (rc == 0) {
            rc = s_meta_put(txn, names[k], v + counts[k]);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

int
amity_spool_settle(amity_spool_t *self, const amity_spool_outcome_t *outcomes, size_t n,
                   amity_spool_entry_fn cb, void *arg)
{
    s_settle_ctx_t ctx;
    int rc;

    AMITY_ASSERT(self != NULL && (outcomes != NULL || n == 0));
    if (n == 0) {
        return 0;
    }
    memset(&ctx, 0, sizeof(ctx));
    ctx.o = outcomes;
    ctx.n = n;
    amity_buf_init(&ctx.scratch);
    ctx.vals = calloc(n, sizeof(*ctx.vals));
    ctx.found = calloc(n, sizeof(*ctx.found));
    ctx.entry = malloc(sizeof(*ctx.entry));
    if (ctx.vals == NULL || ctx.found == NULL || ctx.entry == NULL) {
        rc = AMITY_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        amity_buf_init(&ctx.vals[i]);
    }
    rc = amity_store_update(self->store, s_settle_txn, &ctx);
    if (rc != 0 || cb == NULL) {
        goto out;
    }
    /* durable now: tell the caller */
    for (size_t i = 0; i < n; i++) {
        if (!ctx.found[i]) {
            continue;
        }
        if (s_entry_parse(outcomes[i].seq, ctx.vals[i].data, ctx.vals[i].len, ctx.entry) != 0) {
            memset(&ctx.entry->e, 0, sizeof(ctx.entry->e));
            ctx.entry->e.seq = outcomes[i].seq;
            ctx.entry->e.source = "";
            ctx.entry->e.id = "-";
        }
        ctx.entry->e.status = outcomes[i].status;
        ctx.entry->e.why = outcomes[i].why != NULL ? outcomes[i].why : "";
        (void)cb(arg, &ctx.entry->e);
    }

out:
    if (ctx.vals != NULL) {
        for (size_t i = 0; i < n; i++) {
            amity_buf_clear(&ctx.vals[i]);
        }
    }
    free(ctx.vals);
    free(ctx.found);
    free(ctx.entry);
    amity_buf_clear(&ctx.scratch);
    return rc;
}

/*  ------------------------------------------------------------------
 *  Draining
 */

typedef struct {
    uint64_t seq; /* the record */
    size_t off;   /* its bytes in s_drain_t.chunk_data */
    size_t len;
} s_chunk_rec_t;

typedef struct {
    amity_spool_t *spool;             /* the spool */
    const amity_spool_drain_cb_t *cb; /* the caller's callbacks (may be NULL) */
    amity_spool_drain_stats_t *st;    /* stats (never NULL here) */
    amity_client_t *client;           /* the client */
    size_t window;                    /* its window */

    amity_spool_outcome_t *outs; /* verdicts not yet recorded */
    size_t n_outs;               /* entries in outs */
    size_t cap_outs;             /* room in outs */
    int64_t first_out_ms;        /* when the oldest of them arrived */
    int64_t last_tick_ms;        /* last on_tick call */
    bool refused;                /* ingest refused a message: stop */
    int nomem;                   /* a callback could not allocate */

    s_chunk_rec_t recs[S_CHUNK]; /* the chunk being sent */
    size_t n_recs;               /* records in it */
    amity_buf_t chunk_data;      /* their bytes */
} s_drain_t;

/* libamity: a verdict (or an ingest error) for one record. */
static void
s_drain_on_verdict(void *arg, const amity_verdict_info_t *v)
{
    s_drain_t *d = arg;
    amity_spool_outcome_t *o;

    if (v->status == AMITY_STATUS_ABANDONED) {
        return; /* stays pending */
    }
    if (v->local) {
        /* ingest refused the message: about us (office, key), not about
         * the record; keep the record and stop */
        if (!d->refused) {
            s_copy_text(d->st->refused, sizeof(d->st->refused), v->why, strlen(v->why));
        }
        d->refused = true;
        return;
    }
    if (d->n_outs == d->cap_outs) {
        size_t cap = d->cap_outs ? d->cap_outs * 2 : 256;
        amity_spool_outcome_t *n = realloc(d->outs, cap * sizeof(*n));
        if (n == NULL) {
            d->nomem = 1; /* the record stays pending: sent again next time */
            return;
        }
        d->outs = n;
        d->cap_outs = cap;
    }
    o = &d->outs[d->n_outs];
    o->seq = v->tag;
    o->status = v->status;
    o->why = NULL;
    if (v->status == AMITY_STATUS_REJECTED) {
        size_t len = strlen(v->why);
        char *why = malloc((len < S_WHY_COPY_MAX ? len : S_WHY_COPY_MAX - 1) + 1);
        if (why == NULL) {
            d->nomem = 1;
            return;
        }
        s_copy_text(why, (len < S_WHY_COPY_MAX ? len : S_WHY_COPY_MAX - 1) + 1, v->why, len);
        o->why = why;
    }
    if (d->n_outs == 0) {
        d->first_out_ms = amity_clock_mono_ms();
    }
    d->n_outs++;
}

/* amity_spool_settle: one verdict is on disk. */
static int
s_drain_on_settled(void *arg, const amity_spool_entry_t *e)
{
    s_drain_t *d = arg;

    switch (e->status) {
    case AMITY_STATUS_ACCEPTED:
        d->st->accepted++;
        break;
    case AMITY_STATUS_DUPLICATE:
        d->st->duplicate++;
        break;
    case AMITY_STATUS_REJECTED:
        d->st->rejected++;
        break;
    default:
        break;
    }
    if (d->cb != NULL && d->cb->on_verdict != NULL) {
        (void)d->cb->on_verdict(d->cb->arg, e);
    }
    return 0;
}

/*  Records the verdicts gathered so far: all of them when force, else
 *  when there are many or the oldest has waited long enough. */
static int
s_drain_record(s_drain_t *d, bool force)
{
    int rc;

    if (d->n_outs == 0) {
        return 0;
    }
    if (!force && d->n_outs < S_SETTLE_MAX &&
        amity_clock_mono_ms() - d->first_out_ms < S_SETTLE_MS) {
        return 0;
    }
    rc = amity_spool_settle(d->spool, d->outs, d->n_outs, s_drain_on_settled, d);
    if (rc != 0) {
        return rc; /* kept in outs: the records stay pending on disk */
    }
    for (size_t i = 0; i < d->n_outs; i++) {
        free((void *)(uintptr_t)d->outs[i].why);
    }
    d->n_outs = 0;
    return 0;
}

static void
s_drain_tick(s_drain_t *d, bool force)
{
    amity_client_stats_t cs;
    int64_t now = amity_clock_mono_ms();

    if (!force && now - d->last_tick_ms < S_TICK_MS) {
        return;
    }
    d->last_tick_ms = now;
    amity_client_stats(d->client, &cs);
    d->st->replies = cs.replies;
    d->st->resends = cs.resends;
    if (d->cb != NULL && d->cb->on_tick != NULL) {
        d->cb->on_tick(d->cb->arg, d->st);
    }
}

static size_t
s_in_flight(const s_drain_t *d)
{
    amity_client_stats_t cs;

    amity_client_stats(d->client, &cs);
    return cs.in_flight;
}

/*  Polls until fewer than `room` records are in flight, recording
 *  verdicts as they come. Returns 0, AMITY_EAGAIN (stalled), AMITY_EINVAL
 *  (refused), AMITY_ETERM, AMITY_EIO, AMITY_ENOMEM. */
static int
s_drain_wait(s_drain_t *d, size_t room)
{
    int rc;

    for (;;) {
        if (d->refused) {
            return AMITY_EINVAL;
        }
        if (d->nomem) {
            return AMITY_ENOMEM;
        }
        if (d->spool->interrupted) {
            return AMITY_ETERM;
        }
        rc = s_drain_record(d, false);
        if (rc != 0) {
            return rc;
        }
        s_drain_tick(d, false);
        if (s_in_flight(d) < room) {
            return 0;
        }
        if (amity_client_stalled(d->client)) {
            return AMITY_EAGAIN;
        }
        rc = amity_client_poll(d->client, S_POLL_MS);
        if (rc != 0) {
            return rc;
        }
    }
}

static int
s_chunk_cb(void *arg, const amity_spool_entry_t *e)
{
    s_drain_t *d = arg;
    s_chunk_rec_t *r = &d->recs[d->n_recs];

    r->seq = e->seq;
    r->off = d->chunk_data.len;
    r->len = e->rec_len;
    if (amity_buf_append(&d->chunk_data, e->rec, e->rec_len) != 0) {
        return AMITY_ENOMEM;
    }
    d->n_recs++;
    return 0;
}

static int
s_chunk_read(s_drain_t *d, uint64_t after)
{
    d->n_recs = 0;
    amity_buf_reset(&d->chunk_data);
    return amity_spool_pending(d->spool, after, S_CHUNK, s_chunk_cb, d);
}

/*  A stored record the client cannot take (unreadable, or no longer
 *  encodable): it would fail the same way forever, so it is rejected
 *  here, with the reason, and kept in the rejected list. */
static int
s_drain_reject_local(s_drain_t *d, uint64_t seq, const char *why)
{
    amity_verdict_info_t v;

    memset(&v, 0, sizeof(v));
    v.tag = seq;
    v.status = AMITY_STATUS_REJECTED;
    v.why = why;
    v.id = "-";
    v.local = false; /* recorded like a server's rejection */
    s_drain_on_verdict(d, &v);
    return d->nomem ? AMITY_ENOMEM : 0;
}

/*  Sends the chunk's records; *last gets the last one handed over. */
static int
s_drain_send_chunk(s_drain_t *d, uint64_t *last)
{
    amity_fields_t f;
    char why[AMITY_WHY_MAX];
    int rc;

    for (size_t i = 0; i < d->n_recs; i++) {
        const s_chunk_rec_t *r = &d->recs[i];

        rc = s_drain_wait(d, d->window);
        if (rc != 0) {
            return rc;
        }
        if (amity_fields_decode(d->chunk_data.data + r->off, r->len, &f, why, sizeof(why)) != 0) {
            rc = s_drain_reject_local(d, r->seq, "spool: the stored record is unreadable");
        } else {
            rc = amity_client_submit(d->client, &f, r->seq);
            if (rc == AMITY_EINVAL) {
                rc = s_drain_reject_local(d, r->seq, "record: cannot be encoded for sending");
            } else if (rc == 0) {
                d->st->sent++;
            }
        }
        if (rc != 0) {
            return rc;
        }
        *last = r->seq;
    }
    return 0;
}

/*  Takes the drain lock: flock on drain.lock in the spool directory, which
 *  the kernel releases when the process dies, however it dies. Returns 0
 *  with *fd_out set, AMITY_EAGAIN when another process holds it,
 *  AMITY_EIO, AMITY_ENOMEM. */
static int
s_lock(amity_spool_t *self, int *fd_out)
{
    size_t len = strlen(self->dir) + sizeof("/drain.lock");
    char *path = malloc(len);
    int fd;

    *fd_out = -1;
    if (path == NULL) {
        return AMITY_ENOMEM;
    }
    (void)snprintf(path, len, "%s/drain.lock", self->dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        amity_log_errno("spool %s: cannot open %s", self->dir, path);
        free(path);
        return AMITY_EIO;
    }
    free(path);
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        close(fd);
        if (err == EWOULDBLOCK) {
            return AMITY_EAGAIN;
        }
        errno = err;
        amity_log_errno("spool %s: cannot lock drain.lock", self->dir);
        return AMITY_EIO;
    }
    *fd_out = fd;
    return 0;
}

int
amity_spool_drain(amity_spool_t *self, const amity_client_opts_t *opts,
                  const amity_spool_drain_cb_t *cb, amity_spool_drain_stats_t *stats)
{
    amity_spool_drain_stats_t own;
    amity_spool_status_t ss;
    s_owner_t mine;
    s_drain_t *d = NULL;
    uint64_t last = 0;
    int lock_fd = -1;
    int rc;

    AMITY_ASSERT(self != NULL);
    if (stats == NULL) {
        stats = &own;
    }
    memset(stats, 0, sizeof(*stats));
    /* the records go out as opts' identity: it must be the spool's own */
    rc = s_owner_of_opts(opts, &mine, stats->refused, sizeof(stats->refused));
    if (rc == 0) {
        rc = s_owner_settle(self, &mine, true, stats->refused, sizeof(stats->refused));
        stats->not_ours = rc == AMITY_EINVAL;
    }
    if (rc != 0) {
        goto out;
    }
    rc = s_lock(self, &lock_fd);
    if (rc == AMITY_EAGAIN) {
        stats->busy = true;
        goto out;
    }
    if (rc != 0) {
        goto out;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rc = AMITY_ENOMEM;
        goto out;
    }
    d->spool = self;
    d->cb = cb;
    d->st = stats;
    amity_buf_init(&d->chunk_data);
    d->window = (opts != NULL && opts->window > 0) ? opts->window : AMITY_CLIENT_WINDOW_DEFAULT;
    rc = amity_client_new(&d->client, opts, s_drain_on_verdict, d);
    if (rc != 0) {
        goto out;
    }
    self->client = d->client;
    if (self->interrupted) {
        amity_client_interrupt(d->client);
    }
    for (;;) {
        rc = s_chunk_read(d, last);
        if (rc != 0) {
            break;
        }
        if (d->n_recs == 0) {
            /* everything read is sent: wait for the verdicts, then look
             * for records put meanwhile */
            rc = s_drain_wait(d, 1);
            if (rc != 0) {
                break;
            }
            rc = s_chunk_read(d, last);
            if (rc != 0 || d->n_recs == 0) {
                break;
            }
        }
        rc = s_drain_send_chunk(d, &last);
        if (rc != 0) {
            break;
        }
    }
    if (rc == AMITY_ETERM && !self->interrupted) {
        rc = AMITY_EIO; /* the client's context ended under us */
    }
    if (rc == AMITY_ETERM) {
        self->interrupted = 0; /* consumed: a later drain runs */
    }

out:
    if (d != NULL) {
        int rrc;
        if (d->client != NULL) {
            /* whatever arrived is recorded, whatever the reason we stop */
            (void)amity_client_poll(d->client, 0);
            rrc = s_drain_record(d, true);
            if (rc == 0 && rrc != 0) {
                rc = rrc;
            }
            s_drain_tick(d, true);
            self->client = NULL;
            amity_client_destroy(&d->client);
        }
        for (size_t i = 0; i < d->n_outs; i++) {
            free((void *)(uintptr_t)d->outs[i].why);
        }
        free(d->outs);
        amity_buf_clear(&d->chunk_data);
        free(d);
    }
    if (lock_fd >= 0) {
        close(lock_fd); /* releases the lock */
    }
    if (amity_spool_status(self, &ss) == 0) {
        stats->pending = ss.pending;
    }
    return rc;
}
