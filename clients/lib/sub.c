/*  sub: the subscriber side of notify's protocol (docs/DESIGN.md, the
 *  ZeroMQ guide's Clone pattern): `sub` -> `snap` chunks at seq S, then
 *  `upd` messages chained by `prev`; `ping` every second, answered by
 *  `pong` with the last seq sent to us. Any doubt (a gap in the chain, a
 *  pong that disagrees, a new notify instance, an error, silence) means a
 *  fresh `sub`: the caller just sees another snapshot.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/log.h"
#include "client_int.h"

#define S_PING_MS          1000 /* ping interval */
#define S_SILENCE_MS       3000 /* no message for this long: resync */
#define S_SUB_GAP_MS       250  /* at most one sub per this interval */
#define S_RETRY_MS         25   /* a sub that could not be sent is retried after this */
#define S_ERROR_BACKOFF_MS 1000 /* after an error reply, wait before asking again */

typedef enum {
    S_IDLE = 0, /* must send sub (at retry_ms) */
    S_SYNCING,  /* sub sent, assembling snap chunks */
    S_LIVE,     /* snapshot delivered, applying updates */
} s_state_t;

struct amity_sub {
    amity_dealer_t dealer; /* DEALER to notify */
    char **prefixes;       /* owned copies */
    size_t n_prefixes;     /* count */
    amity_sub_fn cb;       /* event callback */
    void *cb_arg;          /* its argument */

    s_state_t state;       /* protocol state */
    uint64_t req;          /* request id of the current sub */
    uint64_t epoch;        /* notify instance of the live subscription */
    uint64_t last_seq;     /* seq of the last snap/upd applied */
    uint64_t snap_seq;     /* syncing: seq of the chunks so far */
    uint64_t snap_epoch;   /* syncing: epoch of the chunks so far */
    bool snap_started;     /* syncing: a chunk arrived */
    amity_total_t *totals; /* snapshot being assembled / update being delivered */
    size_t n_totals;       /* used */
    size_t cap_totals;     /* allocated */

    int64_t last_rx_ms;           /* last message from notify (or last sub sent) */
    int64_t last_ping_ms;         /* last ping sent */
    int64_t last_sub_ms;          /* last sub sent */
    int64_t retry_ms;             /* IDLE: earliest time to send sub */
    bool outage_logged;           /* "cannot reach notify" said once per outage */
    int64_t unreachable_since_ms; /* first failed sub of an outage (0: none) */
    uint64_t syncs;               /* snapshots delivered */
    amity_buf_t scratch;          /* message encoding */
};

static void
s_totals_reset(amity_sub_t *self)
{
    for (size_t i = 0; i < self->n_totals; i++) {
        free((char *)(uintptr_t)self->totals[i].key);
    }
    self->n_totals = 0;
}

static int
s_totals_add(amity_sub_t *self, const amity_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *key;
        if (self->n_totals == self->cap_totals) {
            size_t cap = self->cap_totals ? self->cap_totals * 2 : 256;
            amity_total_t *t = realloc(self->totals, cap * sizeof(*t));
            if (t == NULL) {
                return AMITY_ENOMEM;
            }
            self->totals = t;
            self->cap_totals = cap;
        }
        key = malloc(kv[i].key.len + 1);
        if (key == NULL) {
            return AMITY_ENOMEM;
        }
        memcpy(key, kv[i].key.ptr, kv[i].key.len);
        key[kv[i].key.len] = '\0';
        self->totals[self->n_totals].key = key;
        self->totals[self->n_totals].value = kv[i].val;
        self->n_totals++;
    }
    return 0;
}

int
amity_sub_new(amity_sub_t **out, const amity_client_opts_t *opts, const char *const *prefixes,
              size_t n, amity_sub_fn cb, void *arg)
{
    amity_sub_t *self;
    int rc;

    AMITY_ASSERT(out != NULL);
    *out = NULL;
    if (n == 0 || n > AMITY_PREFIXES_MAX || prefixes == NULL) {
        amity_log_error("sub: between 1 and %d prefixes, not %zu", AMITY_PREFIXES_MAX, n);
        return AMITY_EINVAL;
    }
    self = calloc(1, sizeof(*self));
    if (self == NULL) {
        return AMITY_ENOMEM;
    }
    amity_buf_init(&self->scratch);
    self->cb = cb;
    self->cb_arg = arg;
    self->prefixes = calloc(n, sizeof(*self->prefixes));
    if (self->prefixes == NULL) {
        rc = AMITY_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        AMITY_ASSERT(prefixes[i] != NULL);
        if (strlen(prefixes[i]) > AMITY_STR_MAX) {
            amity_log_error("sub: prefix longer than %d bytes", AMITY_STR_MAX);
            rc = AMITY_EINVAL;
            goto fail;
        }
        self->prefixes[i] = strdup(prefixes[i]);
        if (self->prefixes[i] == NULL) {
            rc = AMITY_ENOMEM;
            goto fail;
        }
        self->n_prefixes++;
    }
    /* a short linger lets unsub leave at destroy */
    rc = amity_dealer_open(&self->dealer, amity_opts_notify(opts), 200, opts);
    if (rc != 0) {
        goto fail;
    }
    self->state = S_IDLE;
    self->retry_ms = 0;
    *out = self;
    return 0;

fail:
    amity_sub_destroy(&self);
    return rc;
}

void
amity_sub_destroy(amity_sub_t **self_p)
{
    amity_sub_t *self;
    amity_msg_t m;

    AMITY_ASSERT(self_p != NULL);
    self = *self_p;
    if (self == NULL) {
        return;
    }
    if (self->dealer.sock != NULL && self->state != S_IDLE) {
        amity_msg_init(&m);
        m.type = AMITY_MSG_UNSUB;
        m.req = self->req;
        (void)amity_dealer_send(&self->dealer, &m, &self->scratch);
    }
    amity_dealer_close(&self->dealer);
    s_totals_reset(self);
    free(self->totals);
    for (size_t i = 0; i < self->n_prefixes; i++) {
        free(self->prefixes[i]);
    }
    free(self->prefixes);
    amity_buf_clear(&self->scratch);
    free(self);
    *self_p = NULL;
}

uint64_t
amity_sub_syncs(const amity_sub_t *self)
{
    AMITY_ASSERT(self != NULL);
    return self->syncs;
}

/* Drops the current subscription state; a sub goes out at the next chance. */
static void
s_resync(amity_sub_t *self, int64_t now, int64_t backoff_ms, const char *reason)
{
    amity_log_info("sub: resync: %s", reason);
    s_totals_reset(self);
    self->state = S_IDLE;
    self->snap_started = false;
    self->retry_ms = now + backoff_ms;
    if (self->retry_ms < self->last_sub_ms + S_SUB_GAP_MS) {
        self->retry_ms = self->last_sub_ms + S_SUB_GAP_MS;
    }
}

static int
s_send_sub(amity_sub_t *self, int64_t now)
{
    amity_view_t views[AMITY_PREFIXES_MAX];
    amity_msg_t m;
    int rc;

    for (size_t i = 0; i < self->n_prefixes; i++) {
        views[i] = amity_view_str(self->prefixes[i]);
    }
    self->req = amity_random64();
    amity_msg_init(&m);
    m.type = AMITY_MSG_SUB;
    m.req = self->req;
    m.prefixes = views;
    m.n_prefixes = self->n_prefixes;
    rc = amity_dealer_send(&self->dealer, &m, &self->scratch);
    m.prefixes = NULL;
    m.n_prefixes = 0;
    self->last_sub_ms = now;
    if (rc == AMITY_EAGAIN) {
        /* not connected (yet): say so once the outage lasts */
        if (self->unreachable_since_ms == 0) {
            self->unreachable_since_ms = now;
        }
        if (!self->outage_logged && now - self->unreachable_since_ms >= S_SILENCE_MS) {
            amity_log_warn("sub: notify is not reachable; retrying");
            self->outage_logged = true;
        }
        self->retry_ms = now + S_RETRY_MS;
        return 0;
    }
    self->unreachable_since_ms = 0;
    if (rc != 0) {
        return rc;
    }
    self->state = S_SYNCING;
    self->snap_started = false;
    self->last_rx_ms = now;
    s_totals_reset(self);
    return 0;
}

static void
s_send_ping(amity_sub_t *self, int64_t now)
{
    amity_msg_t m;

    amity_msg_init(&m);
    m.type = AMITY_MSG_PING;
    (void)amity_dealer_send(&self->dealer, &m, &self->scratch);
    self->last_ping_ms = now;
}

static int
s_on_snap(amity_sub_t *self, const amity_msg_t *m, int64_t now)
{
    int rc;

    if (self->state != S_SYNCING || m->req != self->req) {
        return 0; /* an answer to an older sub */
    }
    if (self->snap_started && (m->seq != self->snap_seq || m->epoch != self->snap_epoch)) {
        s_resync(self, now, 0, "snapshot chunks disagree on seq or epoch");
        return 0;
    }
    self->snap_started = true;
    self->snap_seq = m->seq;
    self->snap_epoch = m->epoch;
    rc = s_totals_add(self, m->kv, m->n_kv);
    if (rc != 0) {
        return rc;
    }
    if (m->more) {
        return 0;
    }
    amity_totals_sort(self->totals, self->n_totals);
    self->state = S_LIVE;
    self->epoch = m->epoch;
    self->last_seq = m->seq;
    self->last_ping_ms = now;
    self->syncs++;
    if (self->outage_logged) {
        amity_log_info("sub: notify reachable again");
        self->outage_logged = false;
    }
    if (self->cb != NULL) {
        self->cb(self->cb_arg, AMITY_SUB_SNAPSHOT, m->seq, self->totals, self->n_totals);
    }
    s_totals_reset(self);
    return 0;
}

static int
s_on_upd(amity_sub_t *self, const amity_msg_t *m, int64_t now)
{
    char reason[96];
    int rc;

    if (self->state != S_LIVE) {
        return 0;
    }
    if (m->epoch != self->epoch) {
        s_resync(self, now, 0, "notify restarted (epoch changed)");
        return 0;
    }
    if (m->prev != self->last_seq) {
        snprintf(reason, sizeof(reason), "gap: update prev %llu, last seq %llu",
                 (unsigned long long)m->prev, (unsigned long long)self->last_seq);
        s_resync(self, now, 0, reason);
        return 0;
    }
    rc = s_totals_add(self, m->kv, m->n_kv);
    if (rc != 0) {
        return rc;
    }
    amity_totals_sort(self->totals, self->n_totals);
    self->last_seq = m->seq;
    if (self->cb != NULL) {
        self->cb(self->cb_arg, AMITY_SUB_UPDATE, m->seq, self->totals, self->n_totals);
    }
    s_totals_reset(self);
    return 0;
}

static void
s_on_pong(amity_sub_t *self, const amity_msg_t *m, int64_t now)
{
    char reason[96];

    if (self->state != S_LIVE) {
        return;
    }
    if (m->epoch != self->epoch) {
        s_resync(self, now, 0, "notify restarted (pong epoch changed)");
    } else if (m->seq != self->last_seq) {
        snprintf(reason, sizeof(reason), "gap: pong seq %llu, last seq %llu",
                 (unsigned long long)m->seq, (unsigned long long)self->last_seq);
        s_resync(self, now, 0, reason);
    }
}

static void
s_on_error(amity_sub_t *self, const amity_msg_t *m, int64_t now)
{
    char why[AMITY_WHY_MAX];
    char reason[AMITY_WHY_MAX + 32];

    if (self->state == S_IDLE) {
        return;
    }
    if (!amity_view_copy(m->why, why, sizeof(why))) {
        strcpy(why, "(reason too long)");
    }
    amity_log_info("sub: notify answered with an error: %s", why);
    snprintf(reason, sizeof(reason), "error from notify: %s", why);
    s_resync(self, now, S_ERROR_BACKOFF_MS, reason);
}

static int
s_drain(amity_sub_t *self)
{
    amity_rx_t rx;
    int64_t now;
    int rc;

    for (;;) {
        rc = amity_dealer_recv(&self->dealer, &rx);
        if (rc == AMITY_EPROTO) {
            continue;
        }
        if (rc <= 0) {
            return rc;
        }
        now = amity_clock_mono_ms();
        self->last_rx_ms = now;
        rc = 0;
        switch (rx.msg.type) {
        case AMITY_MSG_SNAP:
            rc = s_on_snap(self, &rx.msg, now);
            break;
        case AMITY_MSG_UPD:
            rc = s_on_upd(self, &rx.msg, now);
            break;
        case AMITY_MSG_PONG:
            s_on_pong(self, &rx.msg, now);
            break;
        case AMITY_MSG_ERROR:
            s_on_error(self, &rx.msg, now);
            break;
        default:
            amity_log_warn_rl(5, "sub: unexpected %s message ignored",
                              amity_msg_type_name(rx.msg.type));
            break;
        }
        amity_rx_clear(&rx);
        if (rc != 0) {
            return rc;
        }
    }
}

/* Runs the timers; returns the ms until the next one. */
static int
s_timers(amity_sub_t *self, int64_t now, int64_t *wait_ms)
{
    int64_t next;
    int rc;

    if (self->state != S_IDLE && now - self->last_rx_ms >= S_SILENCE_MS) {
        s_resync(self, now, 0, "no message from notify for 3 s");
    }
    if (self->state == S_IDLE && now >= self->retry_ms) {
        rc = s_send_sub(self, now);
        if (rc != 0) {
            return rc;
        }
    }
    if (self->state == S_LIVE && now - self->last_ping_ms >= S_PING_MS) {
        s_send_ping(self, now);
    }
    if (self->state == S_IDLE) {
        next = self->retry_ms;
    } else {
        next = self->last_rx_ms + S_SILENCE_MS;
        if (self->state == S_LIVE && self->last_ping_ms + S_PING_MS < next) {
            next = self->last_ping_ms + S_PING_MS;
        }
    }
    *wait_ms = next > now ? next - now : 0;
    return 0;
}

int
amity_sub_poll(amity_sub_t *self, int timeout_ms)
{
    int64_t start = amity_clock_mono_ms();
    zmq_pollitem_t item;
    int64_t wait;
    int64_t left;
    int rc;

    AMITY_ASSERT(self != NULL);
    for (;;) {
        int64_t now = amity_clock_mono_ms();
        rc = s_timers(self, now, &wait);
        if (rc != 0) {
            return rc;
        }
        left = timeout_ms < 0 ? INT64_MAX : start + timeout_ms - now;
        if (left <= 0) {
            return 0;
        }
        if (wait > left) {
            wait = left;
        }
        if (wait < 1) {
            wait = 1;
        }
        item.socket = self->dealer.sock;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;
        if (zmq_poll(&item, 1, (long)wait) < 0) {
            if (zmq_errno() == EINTR) {
                return 0; /* let the caller look at its signal flag */
            }
            if (zmq_errno() == ETERM) {
                return AMITY_ETERM;
            }
            amity_log_error("sub: zmq_poll: %s", zmq_strerror(zmq_errno()));
            return AMITY_EIO;
        }
        if (item.revents & ZMQ_POLLIN) {
            rc = s_drain(self);
            if (rc < 0) {
                return rc;
            }
        }
    }
}
