/*  client: submits records to ingest and keeps each one until its verdict
 *  arrives, resending the same bytes after a timeout. The server counts a
 *  record once whatever the number of resends, so a lost message, a dead
 *  validator or a crashed shard costs time, never a record.
 *
 *  Records live in a fixed pool of `window` slots. On the wire each record
 *  carries a tag of our own (a counter that never repeats in the client's
 *  life), mapped back to the slot by a small hash table, so a late verdict
 *  for a record that is already settled can never match a newer record.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/log.h"
#include "client_int.h"

#define S_MSG_BYTES_MAX    (1024 * 1024) /* bytes of records in one submit message */
#define S_BLOCKED_RETRY_MS 25            /* retry a send that would block after this */
#define S_ID_SHOWN_MAX     AMITY_ID_MAX  /* bytes of an id kept for reporting */

typedef struct {
    bool used;                   /* slot holds a record in flight */
    uint64_t wire_tag;           /* our tag on the wire (never 0) */
    uint64_t tag;                /* the caller's tag */
    uint64_t msg_req;            /* req of the submit message it was last sent in (0: unsent) */
    int64_t sent_ms;             /* monotonic time of the last send (0: never sent) */
    amity_buf_t rec;             /* the encoded record, resent verbatim */
    char id[S_ID_SHOWN_MAX + 1]; /* the record's id for reports, "-" when unknown */
} s_slot_t;

struct amity_client {
    amity_dealer_t dealer; /* DEALER to ingest */
    char *office;          /* development mode office (NULL: none) */
    size_t window;         /* slots */
    size_t batch;          /* records per submit message */
    int timeout_ms;        /* resend timeout */
    int64_t deadline_ms;   /* give up after this long without a reply */
    amity_verdict_fn cb;   /* verdict callback */
    void *cb_arg;          /* its argument */

    s_slot_t *slots;      /* the pool */
    uint32_t *free_list;  /* stack of free slot indexes */
    size_t n_free;        /* entries in free_list */
    uint32_t *pending;    /* ring of slot indexes queued, never sent */
    size_t pending_head;  /* index of the oldest pending entry */
    size_t n_pending;     /* entries in pending */
    uint64_t *table_keys; /* hash table: wire tag (0 = empty) */
    uint32_t *table_vals; /* hash table: slot index */
    size_t table_mask;    /* table size - 1 (a power of two) */

    uint64_t next_wire_tag;            /* next tag to hand out */
    uint64_t next_req;                 /* next submit message id */
    int64_t last_heard_ms;             /* last reply from ingest, or when waiting began */
    int64_t blocked_until_ms;          /* a send would block: do not try before this */
    volatile sig_atomic_t interrupted; /* amity_client_interrupt was called */

    amity_buf_t scratch;        /* encoding buffer for messages */
    amity_item_t *items;        /* batch scratch: items of one submit message */
    uint32_t *batch_slots;      /* batch scratch: their slots */
    amity_client_stats_t stats; /* counters */
};

/*  ------------------------------------------------------------------
 *  The wire tag -> slot table (linear probing, backward-shift delete)
 */

static size_t
s_hash(uint64_t key, size_t mask)
{
    key ^= key >> 33;
    key *= UINT64_C(0xff51afd7ed558ccd);
    key ^= key >> 33;
    return (size_t)key & mask;
}

static void
s_table_put(amity_client_t *self, uint64_t key, uint32_t val)
{
    size_t i = s_hash(key, self->table_mask);

    while (self->table_keys[i] != 0) {
        i = (i + 1) & self->table_mask;
    }
    self->table_keys[i] = key;
    self->table_vals[i] = val;
}

static bool
s_table_find(const amity_client_t *self, uint64_t key, size_t *pos)
{
    size_t i = s_hash(key, self->table_mask);

    if (key == 0) {
        return false;
    }
    while (self->table_keys[i] != 0) {
        if (self->table_keys[i] == key) {
            *pos = i;
            return true;
        }
        i = (i + 1) & self->table_mask;
    }
    return false;
}

static void
s_table_remove_at(amity_client_t *self, size_t i)
{
    size_t j = i;

    self->table_keys[i] = 0;
    for (;;) {
        size_t home;
        j = (j + 1) & self->table_mask;
        if (self->table_keys[j] == 0) {
            return;
        }
        home = s_hash(self->table_keys[j], self->table_mask);
        /* move j back to i unless its home lies cyclically in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            self->table_keys[i] = self->table_keys[j];
            self->table_vals[i] = self->table_vals[j];
            self->table_keys[j] = 0;
            i = j;
        }
    }
}

/*  ------------------------------------------------------------------
 *  Lifecycle
 */

int
amity_client_new(amity_client_t **out, const amity_client_opts_t *opts, amity_verdict_fn cb,
                 void *arg)
{
    amity_client_opts_t defaults;
    amity_client_t *self;
    size_t table_size;
    int rc;

    AMITY_ASSERT(out != NULL);
    *out = NULL;
    if (opts == NULL) {
        amity_client_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->timeout_ms < 0 || opts->deadline_ms < 0 || opts->window > (1u << 24) ||
        opts->batch > AMITY_ITEMS_MAX) {
        amity_log_error("client: invalid options (window %zu, batch %zu, timeout %d ms)",
                        opts->window, opts->batch, opts->timeout_ms);
        return AMITY_EINVAL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    self->window = opts->window ? opts->window : AMITY_CLIENT_WINDOW_DEFAULT;
    self->batch = opts->batch ? opts->batch : AMITY_CLIENT_BATCH_DEFAULT;
    if (self->batch > self->window) {
        self->batch = self->window;
    }
    self->timeout_ms = opts->timeout_ms ? opts->timeout_ms : AMITY_CLIENT_TIMEOUT_DEFAULT;
    self->deadline_ms = opts->deadline_ms ? opts->deadline_ms : AMITY_CLIENT_DEADLINE_DEFAULT;
    self->cb = cb;
    self->cb_arg = arg;
    self->next_wire_tag = 1;
    self->next_req = amity_random64();
    amity_buf_init(&self->scratch);
    if (opts->office != NULL && opts->office[0] != '\0') {
        self->office = strdup(opts->office);
        if (self->office == NULL) {
            rc = AMITY_ENOMEM;
            goto fail;
        }
    }
    table_size = 16;
    while (table_size < self->window * 2) {
        table_size *= 2;
    }
    self->table_mask = table_size - 1;
    self->slots = calloc(self->window, sizeof(*self->slots));
    self->free_list = calloc(self->window, sizeof(*self->free_list));
    self->pending = calloc(self->window, sizeof(*self->pending));
    self->table_keys = calloc(table_size, sizeof(*self->table_keys));
    self->table_vals = calloc(table_size, sizeof(*self->table_vals));
    self->items = calloc(self->batch, sizeof(*self->items));
    self->batch_slots = calloc(self->batch, sizeof(*self->batch_slots));
    if (self->slots == NULL || self->free_list == NULL || self->pending == NULL ||
        self->table_keys == NULL || self->table_vals == NULL || self->items == NULL ||
        self->batch_slots == NULL) {
        rc = AMITY_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < self->window; i++) {
        amity_buf_init(&self->slots[i].rec);
        /* hand out low indexes first */
        self->free_list[i] = (uint32_t)(self->window - 1 - i);
    }
    self->n_free = self->window;
    /* no linger: what is unsent at close has no verdict and is reported so */
    rc = amity_dealer_open(&self->dealer, amity_opts_ingest(opts), 0, opts);
    if (rc != 0) {
        goto fail;
    }
    *out = self;
    return 0;

fail:
    amity_client_destroy(&self);
    return rc;
}

void
amity_client_destroy(amity_client_t **self_p)
{
    amity_client_t *self;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    amity_dealer_close(&self->dealer);
    if (self->slots != NULL) {
        for (size_t i = 0; i < self->window; i++) {
            amity_buf_clear(&self->slots[i].rec);
        }
    }
    free(self->slots);
    free(self->free_list);
    free(self->pending);
    free(self->table_keys);
    free(self->table_vals);
    free(self->items);
    free(self->batch_slots);
    free(self->office);
    amity_buf_clear(&self->scratch);
    free(self);
    *self_p = NULL;
}

/*  ------------------------------------------------------------------
 *  Settling records
 */

static size_t
s_in_flight(const amity_client_t *self)
{
    return self->window - self->n_free;
}

/* Reports slot's verdict to the caller and frees the slot. */
static void
s_settle(amity_client_t *self, uint32_t idx, amity_status_t status, const char *why, bool local)
{
    s_slot_t *slot = &self->slots[idx];
    amity_verdict_info_t v;
    size_t pos;

    AMITY_ASSERT(slot->used);
    switch (status) {
    case AMITY_STATUS_ACCEPTED:
        self->stats.accepted++;
        break;
    case AMITY_STATUS_DUPLICATE:
        self->stats.duplicate++;
        break;
    case AMITY_STATUS_REJECTED:
        self->stats.rejected++;
        break;
    case AMITY_STATUS_ABANDONED:
        self->stats.abandoned++;
        break;
    }
    if (s_table_find(self, slot->wire_tag, &pos)) {
        s_table_remove_at(self, pos);
    }
    if (slot->sent_ms == 0) {
        /* still in the pending ring: take it out, keeping the order */
        size_t n = self->n_pending;
        size_t kept = 0;
        for (size_t k = 0; k < n; k++) {
            uint32_t v_idx = self->pending[(self->pending_head + k) % self->window];
            if (v_idx != idx) {
                self->pending[(self->pending_head + kept) % self->window] = v_idx;
                kept++;
            }
        }
        self->n_pending = kept;
    }
    if (self->cb != NULL) {
        memset(&v, 0, sizeof(v));
        v.tag = slot->tag;
        v.status = status;
        v.why = why != NULL ? why : "";
        v.id = slot->id;
        v.local = local;
        self->cb(self->cb_arg, &v);
    }
    slot->used = false;
    slot->wire_tag = 0;
    slot->sent_ms = 0;
    slot->msg_req = 0;
    amity_buf_reset(&slot->rec);
    self->free_list[self->n_free++] = idx;
}

static void
s_on_verdicts(amity_client_t *self, const amity_msg_t *m)
{
    char why[1024];
    size_t pos;

    for (size_t i = 0; i < m->n_verdicts; i++) {
        const amity_verdict_t *v = &m->verdicts[i];
        amity_status_t status;

        if (!s_table_find(self, v->tag, &pos)) {
            self->stats.late++;
            continue;
        }
        switch (v->status) {
        case AMITY_VERDICT_ACCEPTED:
            status = AMITY_STATUS_ACCEPTED;
            break;
        case AMITY_VERDICT_DUPLICATE:
            status = AMITY_STATUS_DUPLICATE;
            break;
        case AMITY_VERDICT_REJECTED:
            status = AMITY_STATUS_REJECTED;
            break;
        default:
            amity_log_warn_rl(5, "client: verdict with unknown status %d ignored", (int)v->status);
            continue;
        }
        if (!amity_view_copy(v->why, why, sizeof(why))) {
            /* too long to keep whole: keep its start */
            size_t n = v->why.len < sizeof(why) - 1 ? v->why.len : sizeof(why) - 1;
            memcpy(why, v->why.ptr, n);
            why[n] = '\0';
        }
        s_settle(self, self->table_vals[pos], status, why, false);
    }
}

/*  Ingest refused a submit message. Resending the same bytes would be
 *  refused again, so the records it held fail with the reason. When the
 *  error names the message (req), exactly its records fail; otherwise we
 *  cannot tell which message it was and every record sent so far fails
 *  (ingest refuses a well-formed submit only for a reason that applies to
 *  every message alike, such as an office it does not accept). */
static void
s_on_error(amity_client_t *self, const amity_msg_t *m)
{
    char text[AMITY_WHY_MAX];
    char why[AMITY_WHY_MAX + 16];
    bool matched = false;

    self->stats.errors++;
    if (!amity_view_copy(m->why, text, sizeof(text))) {
        snprintf(text, sizeof(text), "(reason too long)");
    }
    snprintf(why, sizeof(why), "ingest: %s", text);
    amity_log_warn_rl(5, "client: ingest refused a submit message: %s", text);
    if (m->req != 0) {
        for (size_t i = 0; i < self->window; i++) {
            if (self->slots[i].used && self->slots[i].msg_req == m->req) {
                matched = true;
                s_settle(self, (uint32_t)i, AMITY_STATUS_REJECTED, why, true);
            }
        }
        if (matched) {
            return;
        }
    }
    for (size_t i = 0; i < self->window; i++) {
        if (self->slots[i].used && self->slots[i].sent_ms != 0) {
            s_settle(self, (uint32_t)i, AMITY_STATUS_REJECTED, why, true);
        }
    }
}

/* Receives and handles every waiting reply; returns how many, or < 0. */
static int
s_drain(amity_client_t *self)
{
    amity_rx_t rx;
    int handled = 0;
    int rc;

    for (;;) {
        rc = amity_dealer_recv(&self->dealer, &rx);
        if (rc == AMITY_EPROTO) {
            continue;
        }
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            return handled;
        }
        handled++;
        self->stats.replies++;
        self->last_heard_ms = amity_clock_mono_ms();
        switch (rx.msg.type) {
        case AMITY_MSG_VERDICTS:
            s_on_verdicts(self, &rx.msg);
            break;
        case AMITY_MSG_ERROR:
            s_on_error(self, &rx.msg);
            break;
        default:
            amity_log_warn_rl(5, "client: unexpected %s message from ingest ignored",
                              amity_msg_type_name(rx.msg.type));
            break;
        }
        amity_rx_clear(&rx);
    }
}

/*  ------------------------------------------------------------------
 *  Sending
 */

/* Sends the records of slots batch_slots[0..n) as one submit message. */
static int
s_send_batch(amity_client_t *self, size_t n, bool resend, int64_t now)
{
    amity_msg_t m;
    uint64_t req;
    int rc;

    amity_msg_init(&m);
    req = self->next_req++;
    if (req == 0) {
        req = self->next_req++;
    }
    m.type = AMITY_MSG_SUBMIT;
    m.req = req;
    if (self->office != NULL) {
        m.office = amity_view_str(self->office);
    }
    for (size_t i = 0; i < n; i++) {
        s_slot_t *slot = &self->slots[self->batch_slots[i]];
        memset(&self->items[i], 0, sizeof(self->items[i]));
        self->items[i].tag = slot->wire_tag;
        self->items[i].rec.ptr = slot->rec.data;
        self->items[i].rec.len = slot->rec.len;
    }
    m.items = self->items;
    m.n_items = n;
    rc = amity_dealer_send(&self->dealer, &m, &self->scratch);
    m.items = NULL;
    m.n_items = 0;
    if (rc == AMITY_EAGAIN) {
        self->blocked_until_ms = now + S_BLOCKED_RETRY_MS;
        return rc;
    }
    if (rc != 0) {
        return rc;
    }
    self->stats.messages++;
    for (size_t i = 0; i < n; i++) {
        s_slot_t *slot = &self->slots[self->batch_slots[i]];
        slot->sent_ms = now;
        slot->msg_req = req;
    }
    if (resend) {
        self->stats.resends += n;
    }
    return 0;
}

/* Sends pending records in batches; with all = false only full batches. */
static int
s_send_pending(amity_client_t *self, bool all, int64_t now)
{
    while (self->n_pending > 0 && (all || self->n_pending >= self->batch)) {
        size_t n = 0;
        size_t bytes = 0;
        int rc;

        if (now < self->blocked_until_ms) {
            return AMITY_EAGAIN;
        }
        while (n < self->batch && n < self->n_pending) {
            uint32_t idx = self->pending[(self->pending_head + n) % self->window];
            if (n > 0 && bytes + self->slots[idx].rec.len > S_MSG_BYTES_MAX) {
                break;
            }
            bytes += self->slots[idx].rec.len;
            self->batch_slots[n++] = idx;
        }
        rc = s_send_batch(self, n, false, now);
        if (rc != 0) {
            return rc;
        }
        self->pending_head = (self->pending_head + n) % self->window;
        self->n_pending -= n;
    }
    return 0;
}

/* Resends every sent record whose timeout passed; *next_due gets the
 * earliest time another one falls due (INT64_MAX when none). */
static int
s_resend_due(amity_client_t *self, int64_t now, int64_t *next_due)
{
    size_t n = 0;
    size_t bytes = 0;
    int rc = 0;

    *next_due = INT64_MAX;
    for (size_t i = 0; i < self->window; i++) {
        s_slot_t *slot = &self->slots[i];
        int64_t due;

        if (!slot->used || slot->sent_ms == 0) {
            continue;
        }
        due = slot->sent_ms + self->timeout_ms;
        if (due > now || rc != 0) {
            if (due < *next_due) {
                *next_due = due;
            }
            continue;
        }
        if (n == self->batch || (n > 0 && bytes + slot->rec.len > S_MSG_BYTES_MAX)) {
            rc = s_send_batch(self, n, true, now);
            n = 0;
            bytes = 0;
            if (rc != 0) {
                *next_due = now;
                continue;
            }
        }
        self->batch_slots[n++] = (uint32_t)i;
        bytes += slot->rec.len;
    }
    if (n > 0 && rc == 0) {
        rc = s_send_batch(self, n, true, now);
        if (rc != 0) {
            *next_due = now;
        }
    }
    return rc;
}

/* Sends what can be sent now; returns the ms until something falls due. */
static int
s_pump(amity_client_t *self, int64_t *wait_ms)
{
    int64_t now = amity_clock_mono_ms();
    int64_t next_due = INT64_MAX;
    int rc = 0;

    if (now >= self->blocked_until_ms) {
        rc = s_send_pending(self, true, now);
        if (rc == 0) {
            rc = s_resend_due(self, now, &next_due);
        } else {
            (void)s_resend_due(self, INT64_MIN, &next_due); /* only compute next_due */
        }
    } else {
        (void)s_resend_due(self, INT64_MIN, &next_due);
    }
    if (rc != 0 && rc != AMITY_EAGAIN) {
        return rc;
    }
    if (now < self->blocked_until_ms) {
        /* a send would block (no ingest connected, or its pipe is full):
         * nothing can go out before the retry time */
        if (self->n_pending > 0 || next_due < self->blocked_until_ms) {
            next_due = self->blocked_until_ms;
        }
    }
    *wait_ms = next_due == INT64_MAX ? INT64_MAX : (next_due > now ? next_due - now : 0);
    return 0;
}

/*  ------------------------------------------------------------------
 *  The public loop
 */

bool
amity_client_stalled(const amity_client_t *self)
{
    AMITY_ASSERT(self != NULL);
    return s_in_flight(self) > 0 &&
           amity_clock_mono_ms() - self->last_heard_ms >= self->deadline_ms;
}

/*  amity_client_poll, also watching fd (>= 0) for reading: *ready is set
 *  once it is readable, at its end or in error, and the call returns after
 *  one more round of replies and sends. */
static int
s_poll(amity_client_t *self, int fd, int timeout_ms, bool *ready)
{
    zmq_pollitem_t items[2];
    int n_items = fd >= 0 ? 2 : 1;
    int64_t start = amity_clock_mono_ms();
    int64_t wait;
    int64_t left;
    int rc;

    for (;;) {
        if (self->interrupted) {
            return AMITY_ETERM;
        }
        rc = s_drain(self);
        if (rc < 0) {
            return rc;
        }
        if (rc > 0) {
            /* replies handled: let the caller refill the window */
            return s_pump(self, &wait);
        }
        rc = s_pump(self, &wait);
        if (rc != 0) {
            return rc;
        }
        if (ready != NULL && *ready) {
            return 0;
        }
        left = timeout_ms < 0 ? INT64_MAX : start + timeout_ms - amity_clock_mono_ms();
        if (left <= 0) {
            return 0;
        }
        if (wait > left) {
            wait = left;
        }
        if (wait > 100) {
            wait = 100; /* notice interrupts and the caller's deadlines */
        }
        items[0].socket = self->dealer.sock;
        items[0].fd = 0;
        items[0].events = ZMQ_POLLIN;
        items[0].revents = 0;
        items[1].socket = NULL;
        items[1].fd = fd;
        items[1].events = ZMQ_POLLIN;
        items[1].revents = 0;
        if (zmq_poll(items, n_items, (long)wait) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            if (zmq_errno() == ETERM) {
                return AMITY_ETERM;
            }
            amity_log_error("client: zmq_poll: %s", zmq_strerror(zmq_errno()));
            return AMITY_EIO;
        }
        if (n_items == 2 && items[1].revents != 0) {
            *ready = true; /* POLLIN, or POLLERR for a hangup: a read will tell */
        }
    }
}

int
amity_client_poll(amity_client_t *self, int timeout_ms)
{
    AMITY_ASSERT(self != NULL);
    return s_poll(self, -1, timeout_ms, NULL);
}

int
amity_client_poll_fd(amity_client_t *self, int fd, int timeout_ms, bool *ready)
{
    AMITY_ASSERT(self != NULL && fd >= 0 && ready != NULL);
    *ready = false;
    return s_poll(self, fd, timeout_ms, ready);
}

int
amity_client_submit(amity_client_t *self, const amity_fields_t *rec, uint64_t tag)
{
    s_slot_t *slot;
    uint32_t idx;
    int64_t now;
    int rc;

    AMITY_ASSERT(self != NULL && rec != NULL);
    while (self->n_free == 0) {
        if (amity_client_stalled(self)) {
            return AMITY_EAGAIN;
        }
        rc = amity_client_poll(self, 100);
        if (rc != 0) {
            return rc;
        }
    }
    idx = self->free_list[self->n_free - 1];
    slot = &self->slots[idx];
    amity_buf_reset(&slot->rec);
    rc = amity_fields_encode(rec, &slot->rec);
    if (rc != 0) {
        return rc == AMITY_ENOMEM ? rc : AMITY_EINVAL;
    }
    if (slot->rec.len > AMITY_CLIENT_REC_MAX) {
        amity_buf_reset(&slot->rec);
        return AMITY_EINVAL;
    }
    self->n_free--;
    slot->used = true;
    slot->tag = tag;
    slot->sent_ms = 0;
    slot->msg_req = 0;
    slot->wire_tag = self->next_wire_tag++;
    snprintf(slot->id, sizeof(slot->id), "-");
    for (size_t i = 0; i < rec->n_fields; i++) {
        const amity_field_t *f = &rec->fields[i];
        if (f->name_len == 2 && memcmp(f->name, "id", 2) == 0 && f->val.type == AMITY_VAL_STR &&
            f->val.as.s.len > 0) {
            size_t n = f->val.as.s.len < S_ID_SHOWN_MAX ? f->val.as.s.len : S_ID_SHOWN_MAX;
            memcpy(slot->id, f->val.as.s.ptr, n);
            slot->id[n] = '\0';
            for (size_t k = 0; k < n; k++) {
                if ((unsigned char)slot->id[k] < 0x20) {
                    slot->id[k] = '?';
                }
            }
            break;
        }
    }
    s_table_put(self, slot->wire_tag, idx);
    self->pending[(self->pending_head + self->n_pending) % self->window] = idx;
    self->n_pending++;
    self->stats.submitted++;
    now = amity_clock_mono_ms();
    if (s_in_flight(self) == 1) {
        /* the deadline counts from when we started waiting */
        self->last_heard_ms = now;
    }
    rc = s_send_pending(self, false, now);
    if (rc != 0 && rc != AMITY_EAGAIN) {
        return rc;
    }
    return 0;
}

/*  Settles a record the client refused before sending it: its verdict,
 *  REJECTED and local, goes to the callback at once (no slot was taken). */
static void
s_reject_local(amity_client_t *self, uint64_t tag, const char *id, const char *why)
{
    amity_verdict_info_t v;

    self->stats.rejected++;
    if (self->cb != NULL) {
        memset(&v, 0, sizeof(v));
        v.tag = tag;
        v.status = AMITY_STATUS_REJECTED;
        v.why = why;
        v.id = id;
        v.local = true;
        self->cb(self->cb_arg, &v);
    }
}

int
amity_client_submit_json(amity_client_t *self, const char *json_line, size_t len, uint64_t tag,
                         char *why, size_t why_len)
{
    char reason[AMITY_WHY_MAX];
    char id[S_ID_SHOWN_MAX + 1];
    amity_json_doc_t *doc = NULL;
    int rc;

    AMITY_ASSERT(self != NULL);
    reason[0] = '\0';
    rc = amity_json_doc_parse(&doc, json_line, len, reason, sizeof(reason));
    if (rc == 0) {
        rc = amity_client_submit(self, amity_json_doc_fields(doc), tag);
        if (rc == AMITY_EINVAL) {
            snprintf(reason, sizeof(reason),
                     "record: larger than %d bytes once encoded, or not encodable",
                     AMITY_CLIENT_REC_MAX);
        }
    }
    amity_json_doc_destroy(&doc);
    if (rc != AMITY_EINVAL) {
        return rc;
    }
    /* no record: rejected here, reported like any verdict, with the id the
     * line has (it parsed, but, say, a field holds a nested object) */
    if (why != NULL && why_len > 0) {
        snprintf(why, why_len, "%s", reason);
    }
    s_reject_local(self, tag, amity_json_id(json_line, len, id, sizeof(id)), reason);
    return 0;
}

int
amity_client_flush(amity_client_t *self, int timeout_ms)
{
    int64_t start = amity_clock_mono_ms();
    int64_t left;
    int rc;

    AMITY_ASSERT(self != NULL);
    while (s_in_flight(self) > 0) {
        if (amity_client_stalled(self)) {
            return AMITY_EAGAIN;
        }
        left = timeout_ms < 0 ? 100 : start + timeout_ms - amity_clock_mono_ms();
        if (left <= 0) {
            return AMITY_EAGAIN;
        }
        rc = amity_client_poll(self, left < 100 ? (int)left : 100);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void
amity_client_abandon(amity_client_t *self, const char *why)
{
    AMITY_ASSERT(self != NULL);
    if (why == NULL) {
        why = "no verdict before the deadline";
    }
    /* pending ones first, in order, then the sent ones by slot */
    while (self->n_pending > 0) {
        s_settle(self, self->pending[self->pending_head], AMITY_STATUS_ABANDONED, why, true);
    }
    for (size_t i = 0; i < self->window; i++) {
        if (self->slots[i].used) {
            s_settle(self, (uint32_t)i, AMITY_STATUS_ABANDONED, why, true);
        }
    }
}

void
amity_client_interrupt(amity_client_t *self)
{
    if (self != NULL) {
        self->interrupted = 1;
    }
}

void
amity_client_stats(const amity_client_t *self, amity_client_stats_t *out)
{
    AMITY_ASSERT(self != NULL && out != NULL);
    *out = self->stats;
    out->in_flight = s_in_flight(self);
}
