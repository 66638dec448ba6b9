/*  query: the totals under a prefix, once, as one consistent snapshot from
 *  notify (`query` -> `snap` chunks, all at one seq). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/clock.h"
#include "amity/keys.h"
#include "amity/log.h"
#include "client_int.h"

#define S_RETRY_MS   25   /* a send that would block is retried after this */
#define S_SILENCE_MS 2000 /* no chunk for this long: ask again */

/* Totals gathered from snap chunks (keys owned). */
typedef struct {
    amity_total_t *t; /* entries */
    size_t n;         /* used */
    size_t cap;       /* allocated */
} s_totals_t;

static void
s_totals_reset(s_totals_t *tt)
{
    for (size_t i = 0; i < tt->n; i++) {
        free((char *)(uintptr_t)tt->t[i].key);
    }
    tt->n = 0;
}

static void
s_totals_free(s_totals_t *tt)
{
    s_totals_reset(tt);
    free(tt->t);
    tt->t = NULL;
    tt->cap = 0;
}

static int
s_totals_add(s_totals_t *tt, const amity_kv_t *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *key;
        if (tt->n == tt->cap) {
            size_t cap = tt->cap ? tt->cap * 2 : 256;
            amity_total_t *t = realloc(tt->t, cap * sizeof(*t));
            if (t == NULL) {
                return AMITY_ENOMEM;
            }
            tt->t = t;
            tt->cap = cap;
        }
        key = malloc(kv[i].key.len + 1);
        if (key == NULL) {
            return AMITY_ENOMEM;
        }
        memcpy(key, kv[i].key.ptr, kv[i].key.len);
        key[kv[i].key.len] = '\0';
        tt->t[tt->n].key = key;
        tt->t[tt->n].value = kv[i].val;
        tt->n++;
    }
    return 0;
}

int
amity_request_chunks(const amity_client_opts_t *opts, const amity_chunked_t *rq, int timeout_ms)
{
    amity_dealer_t dealer;
    amity_buf_t scratch;
    amity_msg_t q;
    amity_rx_t rx;
    uint64_t req = 0;
    bool sent = false; /* the current request went out */
    bool done = false;
    int64_t deadline;
    int64_t last_ms = 0; /* last send or chunk */
    int rc;

    amity_buf_init(&scratch);
    rc = amity_dealer_open(&dealer, amity_opts_notify(opts), 0, opts);
    if (rc != 0) {
        return rc;
    }
    deadline = amity_clock_mono_ms() + (timeout_ms < 0 ? 5000 : timeout_ms);
    while (!done) {
        int64_t now = amity_clock_mono_ms();
        int64_t wait;
        zmq_pollitem_t item;

        if (now >= deadline) {
            rc = AMITY_EAGAIN;
            goto out;
        }
        if (!sent || (now - last_ms >= rq->silence_ms)) {
            /* (re)send under a new request id: chunks of an older one are ignored */
            if (sent) {
                amity_log_debug("%s: no answer from notify for %d ms, asking again", rq->what,
                                rq->silence_ms);
            }
            rq->reset(rq->arg);
            req = amity_random64();
            amity_msg_init(&q);
            rq->build(rq->arg, &q);
            q.req = req;
            rc = amity_dealer_send(&dealer, &q, &scratch);
            if (rc == 0) {
                sent = true;
                last_ms = now;
            } else if (rc != AMITY_EAGAIN) {
                goto out;
            }
        }
        wait = sent ? last_ms + rq->silence_ms - now : S_RETRY_MS;
        if (wait > deadline - now) {
            wait = deadline - now;
        }
        if (wait < 1) {
            wait = 1;
        }
        item.socket = dealer.sock;
        item.fd = 0;
        item.events = ZMQ_POLLIN;
        item.revents = 0;
        if (zmq_poll(&item, 1, (long)wait) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            rc = AMITY_EIO;
            goto out;
        }
        while (!done && (rc = amity_dealer_recv(&dealer, &rx)) != 0) {
            if (rc == AMITY_EPROTO) {
                continue;
            }
            if (rc < 0) {
                goto out;
            }
            if (rx.msg.type == AMITY_MSG_ERROR && (rx.msg.req == req || rx.msg.req == 0)) {
                char why[AMITY_WHY_MAX * 2];
                if (!amity_view_copy(rx.msg.why, why, sizeof(why))) {
                    strcpy(why, "(reason too long)");
                }
                amity_log_error("%s: notify refused it: %s", rq->what, why);
                amity_rx_clear(&rx);
                rc = AMITY_EINVAL;
                goto out;
            }
            if (rx.msg.type == rq->reply && rx.msg.req == req) {
                rc = rq->chunk(rq->arg, &rx.msg);
                if (rc < 0) {
                    amity_rx_clear(&rx);
                    goto out;
                }
                if (rc == 1) {
                    sent = false; /* start over under a new id */
                    amity_rx_clear(&rx);
                    break;
                }
                last_ms = amity_clock_mono_ms();
                if (!rx.msg.more) {
                    done = true;
                }
            }
            amity_rx_clear(&rx);
        }
    }
    rc = 0;

out:
    amity_buf_clear(&scratch);
    amity_dealer_close(&dealer);
    return rc;
}

/* A query in progress: its prefix and the chunks gathered so far. */
typedef struct {
    const char *prefix; /* asked for */
    s_totals_t tt;      /* gathered totals */
    bool started;       /* a chunk of the current request arrived */
    uint64_t seq;       /* the chunks' seq */
    uint64_t epoch;     /* and notify's epoch */
} s_query_t;

static void
s_query_build(void *arg, amity_msg_t *q)
{
    const s_query_t *self = arg;
    q->type = AMITY_MSG_QUERY;
    q->prefix = amity_view_str(self->prefix);
}

static void
s_query_reset(void *arg)
{
    s_query_t *self = arg;
    s_totals_reset(&self->tt);
    self->started = false;
}

static int
s_query_chunk(void *arg, const amity_msg_t *m)
{
    s_query_t *self = arg;
    if (self->started && (m->seq != self->seq || m->epoch != self->epoch)) {
        /* chunks of one answer share seq and epoch: start over */
        amity_log_warn("query: inconsistent chunks (seq %llu then %llu), asking again",
                       (unsigned long long)self->seq, (unsigned long long)m->seq);
        return 1;
    }
    self->started = true;
    self->seq = m->seq;
    self->epoch = m->epoch;
    return s_totals_add(&self->tt, m->kv, m->n_kv);
}

int
amity_query(const amity_client_opts_t *opts, const char *prefix, amity_total_fn cb, void *arg,
            uint64_t *seq, int timeout_ms)
{
    s_query_t self = { .prefix = prefix };
    char what[AMITY_KEY_MAX + 32];
    amity_chunked_t rq = {
        .what = what,
        .reply = AMITY_MSG_SNAP,
        .silence_ms = S_SILENCE_MS,
        .build = s_query_build,
        .reset = s_query_reset,
        .chunk = s_query_chunk,
        .arg = &self,
    };
    int rc;

    AMITY_ASSERT(prefix != NULL);
    (void)snprintf(what, sizeof(what), "query for '%.*s'", AMITY_KEY_MAX, prefix);
    rc = amity_request_chunks(opts, &rq, timeout_ms);
    if (rc == 0) {
        amity_totals_sort(self.tt.t, self.tt.n);
        if (seq != NULL) {
            *seq = self.seq;
        }
        for (size_t i = 0; cb != NULL && i < self.tt.n; i++) {
            rc = cb(arg, &self.tt.t[i]);
            if (rc != 0) {
                break;
            }
        }
    }
    s_totals_free(&self.tt);
    return rc;
}
