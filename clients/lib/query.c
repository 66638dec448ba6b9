/*  query: the totals under a prefix, once, as one consistent snapshot from
 *  notify (`query` -> `snap` chunks, all at one seq). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/clock.h"
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
amity_query(const amity_client_opts_t *opts, const char *prefix, amity_total_fn cb, void *arg,
            uint64_t *seq, int timeout_ms)
{
    amity_dealer_t dealer;
    amity_buf_t scratch;
    s_totals_t tt = { NULL, 0, 0 };
    amity_msg_t q;
    amity_rx_t rx;
    uint64_t req = 0;
    uint64_t snap_seq = 0;
    uint64_t snap_epoch = 0;
    bool started = false; /* a chunk of the current request arrived */
    bool sent = false;    /* the current request went out */
    bool done = false;
    int64_t deadline;
    int64_t last_ms = 0; /* last send or chunk */
    int rc;

    AMITY_ASSERT(prefix != NULL);
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
        if (!sent || (now - last_ms >= S_SILENCE_MS)) {
            /* (re)send under a new request id: chunks of an older one are ignored */
            if (sent) {
                amity_log_debug("query: no answer from notify for %d ms, asking again",
                                S_SILENCE_MS);
            }
            s_totals_reset(&tt);
            started = false;
            req = amity_random64();
            amity_msg_init(&q);
            q.type = AMITY_MSG_QUERY;
            q.req = req;
            q.prefix = amity_view_str(prefix);
            rc = amity_dealer_send(&dealer, &q, &scratch);
            if (rc == 0) {
                sent = true;
                last_ms = now;
            } else if (rc != AMITY_EAGAIN) {
                goto out;
            }
        }
        wait = sent ? last_ms + S_SILENCE_MS - now : S_RETRY_MS;
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
                char why[AMITY_WHY_MAX];
                if (!amity_view_copy(rx.msg.why, why, sizeof(why))) {
                    strcpy(why, "(reason too long)");
                }
                amity_log_error("query: notify refused the query for '%s': %s", prefix, why);
                amity_rx_clear(&rx);
                rc = AMITY_EINVAL;
                goto out;
            }
            if (rx.msg.type == AMITY_MSG_SNAP && rx.msg.req == req) {
                if (started && (rx.msg.seq != snap_seq || rx.msg.epoch != snap_epoch)) {
                    /* chunks of one answer share seq and epoch: start over */
                    amity_log_warn("query: inconsistent chunks (seq %llu then %llu), asking again",
                                   (unsigned long long)snap_seq, (unsigned long long)rx.msg.seq);
                    sent = false;
                    amity_rx_clear(&rx);
                    break;
                }
                started = true;
                snap_seq = rx.msg.seq;
                snap_epoch = rx.msg.epoch;
                last_ms = amity_clock_mono_ms();
                rc = s_totals_add(&tt, rx.msg.kv, rx.msg.n_kv);
                if (rc != 0) {
                    amity_rx_clear(&rx);
                    goto out;
                }
                if (!rx.msg.more) {
                    done = true;
                }
            }
            amity_rx_clear(&rx);
        }
    }
    amity_totals_sort(tt.t, tt.n);
    if (seq != NULL) {
        *seq = snap_seq;
    }
    rc = 0;
    for (size_t i = 0; cb != NULL && i < tt.n; i++) {
        rc = cb(arg, &tt.t[i]);
        if (rc != 0) {
            break;
        }
    }

out:
    s_totals_free(&tt);
    amity_buf_clear(&scratch);
    amity_dealer_close(&dealer);
    return rc;
}
