/*  bench_e2e: amity end to end, through the real daemons and libamity.
 *  One thread per office, each with its own libamity client (development
 *  mode: the client names its office), submitting that office's records of
 *  the workload (records first .. first + N - 1, record s belongs to office
 *  s % K). Verdicts come back after the durable commit that counted them.
 *
 *    amity-bench_e2e [--ingest EP] [--notify EP] [--records N(200k)]
 *        [--offices K(20)] [--window W(1024 per client)] [--batch B(256)]
 *        [--rate R(0: as fast as the windows allow)] [--warmup-ms T(1000)]
 *        [--first S(0)] [--seed X] [--timeout-ms T(60000)]
 *        [--tap EP --shards S]   commit -> subscriber latency (see below)
 *
 *  Throughput: records with a verdict / time from the first submit to the
 *  last verdict. With --rate, R records/s are offered (each thread its
 *  share, every millisecond what is due) and submit -> verdict latency is
 *  measured per record (records submitted during the warm-up left out).
 *
 *  Commit -> subscriber (--tap): a probe client (office "bench-probe")
 *  submits one probe record every 10 ms (kind activity, date 2000-01-01,
 *  activities 1, ids that hash to shard 0), so the total
 *  2000/bench-probe/activity/all/activities counts the probes. A raw SUB
 *  socket on shard 0's totals endpoint (EP = its base port + 2) sees each
 *  new value when the commit is published; an amity_sub subscription to
 *  that key through notify sees it when the subscriber gets it. The
 *  difference per value is commit -> subscriber (less the one loopback hop
 *  to the tap).
 *
 *  Prints one line starting "RESULT" with the client's peak RSS.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "amity/client.h"
#include "amity/keys.h"
#include "amity/proto.h"

#include "workload.h"

#define S_PROBE_OFFICE "bench-probe"
#define S_PROBE_KEY    "2000/bench-probe/activity/all/activities"
#define S_PROBE_EVERY_MS 10
#define S_PROBES_MAX   100000

typedef struct {
    const char *ingest;
    const char *notify;
    const char *tap;
    uint64_t n_records;
    uint64_t offices;
    uint64_t window;
    uint64_t batch;
    uint64_t rate;
    uint64_t warmup_ms;
    uint64_t first;
    uint64_t seed;
    uint64_t timeout_ms;
    uint64_t shards;
} s_cfg_t;

typedef struct {
    const s_cfg_t *cfg;
    const bench_workload_t *w;
    uint32_t office;                 /* this thread's office */
    int64_t t0_ns;                   /* common start */
    int64_t *sent_ns;                /* rate mode: submit time per record (index serial - first) */
    bench_samples_t lat;             /* rate mode: submit -> verdict */
    uint64_t accepted, duplicate, rejected, abandoned, resends, messages;
    int64_t end_ns;                  /* last verdict */
    int rc;                          /* 0 or the failing AMITY_E* */
} s_worker_t;

static atomic_int s_stop;            /* probes, tap and subscriber end */
static int64_t s_tap_ns[S_PROBES_MAX];
static int64_t s_sub_ns[S_PROBES_MAX];

static void
s_on_verdict(void *arg, const amity_verdict_info_t *v)
{
    s_worker_t *wk = arg;
    int64_t now = bench_now_ns();
    switch (v->status) {
    case AMITY_STATUS_ACCEPTED:
        wk->accepted++;
        break;
    case AMITY_STATUS_DUPLICATE:
        wk->duplicate++;
        break;
    case AMITY_STATUS_REJECTED:
        wk->rejected++;
        if (wk->rejected <= 3) {
            fprintf(stderr, "bench_e2e: record %s rejected: %s\n", v->id, v->why);
        }
        break;
    default:
        wk->abandoned++;
        break;
    }
    wk->end_ns = now;
    if (wk->sent_ns != NULL) {
        int64_t sent = wk->sent_ns[v->tag - wk->cfg->first];
        if (sent - wk->t0_ns >= (int64_t)wk->cfg->warmup_ms * 1000000) {
            (void)bench_samples_add(&wk->lat, (double)(now - sent) / 1e9);
        }
    }
}

static void
s_client_opts(const s_cfg_t *cfg, amity_client_opts_t *o, const char *office)
{
    amity_client_opts_init(o);
    o->ingest = cfg->ingest;
    o->notify = cfg->notify;
    o->office = office;
    o->window = (size_t)cfg->window;
    o->batch = (size_t)cfg->batch;
    o->timeout_ms = (int)cfg->timeout_ms;
    /* give up only well after a resend had its chance */
    o->deadline_ms = (int64_t)cfg->timeout_ms * 2 + 10000;
}

/*  Submits record serial (its canonical bytes, as fields) under tag serial. */
static int
s_submit(amity_client_t *c, const bench_workload_t *w, uint64_t serial, amity_buf_t *buf,
         amity_fields_t *fields)
{
    char why[128];
    amity_buf_reset(buf);
    int rc = bench_workload_encode(w, serial, buf, NULL);
    if (rc == 0) {
        rc = amity_fields_decode(buf->data, buf->len, fields, why, sizeof(why));
    }
    if (rc == 0) {
        rc = amity_client_submit(c, fields, serial);
    }
    return rc;
}

static void *
s_worker(void *arg)
{
    s_worker_t *wk = arg;
    const s_cfg_t *cfg = wk->cfg;
    amity_client_opts_t o;
    amity_client_t *c = NULL;
    amity_client_stats_t st;
    amity_buf_t buf;
    amity_fields_t *fields = calloc(1, sizeof(*fields));
    const uint64_t k = cfg->offices;
    uint64_t serial = cfg->first + (wk->office + k - cfg->first % k) % k;
    const uint64_t end = cfg->first + cfg->n_records;
    int rc;

    amity_buf_init(&buf);
    s_client_opts(cfg, &o, bench_workload_office_name(wk->office));
    rc = fields == NULL ? AMITY_ENOMEM : amity_client_new(&c, &o, s_on_verdict, wk);
    if (rc != 0) {
        goto out;
    }
    bench_sleep_until_ns(wk->t0_ns);
    if (cfg->rate == 0) {
        for (; serial < end && rc == 0; serial += k) {
            rc = s_submit(c, wk->w, serial, &buf, fields);
        }
    } else {
        /* this office's share of the offered rate, sent every millisecond */
        double per_s = (double)cfg->rate / (double)k;
        uint64_t mine = 0;
        int64_t next = wk->t0_ns;
        while (serial < end && rc == 0) {
            int64_t now = bench_now_ns();
            if (now >= next) {
                uint64_t due = (uint64_t)((double)(now - wk->t0_ns) * 1e-9 * per_s) + 1;
                while (mine < due && serial < end && rc == 0) {
                    wk->sent_ns[serial - cfg->first] = bench_now_ns();
                    rc = s_submit(c, wk->w, serial, &buf, fields);
                    serial += k;
                    mine++;
                }
                next += 1000000;
                if (rc == 0) {
                    rc = amity_client_poll(c, 0); /* sends the partial batch now */
                }
            }
            int64_t left_ns = next - bench_now_ns();
            if (rc == 0 && left_ns > 0) {
                rc = amity_client_poll(c, (int)((left_ns + 999999) / 1000000));
            }
        }
    }
    if (rc == 0) {
        rc = amity_client_flush(c, (int)cfg->timeout_ms * 2);
    }
    if (rc != 0) {
        amity_client_abandon(c, "bench: gave up");
    }
    amity_client_stats(c, &st);
    wk->resends = st.resends;
    wk->messages = st.messages;
out:
    wk->rc = rc;
    amity_client_destroy(&c);
    amity_buf_clear(&buf);
    free(fields);
    return NULL;
}

/*  ------------------------------------------------------------------
 *  Commit -> subscriber: probe records, the tap and the subscriber
 */

static void
s_probe_verdict(void *arg, const amity_verdict_info_t *v)
{
    uint64_t *n = arg;
    if (v->status == AMITY_STATUS_ACCEPTED) {
        (*n)++;
    }
}

static void *
s_probe(void *arg)
{
    const s_cfg_t *cfg = arg;
    static amity_record_t rec;
    amity_client_opts_t o;
    amity_client_t *c = NULL;
    amity_buf_t buf;
    amity_fields_t *fields = calloc(1, sizeof(*fields));
    char why[128];
    uint64_t accepted = 0;
    uint64_t n = 0;
    uint64_t salt = (uint64_t)bench_now_ns();

    amity_buf_init(&buf);
    s_client_opts(cfg, &o, S_PROBE_OFFICE);
    o.window = 64;
    o.batch = 1;
    if (fields == NULL || amity_client_new(&c, &o, s_probe_verdict, &accepted) != 0) {
        goto out;
    }
    while (!atomic_load(&s_stop)) {
        memset(&rec, 0, sizeof(rec));
        do {
            snprintf(rec.id, sizeof(rec.id), "probe-%llx-%llu", (unsigned long long)salt,
                     (unsigned long long)n++);
        } while (amity_shard_of(S_PROBE_OFFICE, rec.id, strlen(rec.id),
                                (uint32_t)cfg->shards) != 0);
        rec.rev = 1;
        rec.kind = AMITY_KIND_ACTIVITY;
        rec.year = 2000;
        rec.month = 1;
        rec.day = 1;
        rec.metric_mask = 1u << AMITY_METRIC_ACTIVITIES;
        rec.metrics[AMITY_METRIC_ACTIVITIES] = 1;
        amity_buf_reset(&buf);
        if (amity_record_encode(&rec, &buf) != 0 ||
            amity_fields_decode(buf.data, buf.len, fields, why, sizeof(why)) != 0 ||
            amity_client_submit(c, fields, n) != 0) {
            break;
        }
        int64_t until = bench_now_ns() + S_PROBE_EVERY_MS * 1000000;
        while (bench_now_ns() < until) {
            if (amity_client_poll(c, S_PROBE_EVERY_MS) != 0) {
                break;
            }
        }
    }
    (void)amity_client_flush(c, 5000);
out:
    amity_client_destroy(&c);
    amity_buf_clear(&buf);
    free(fields);
    return NULL;
}

/*  First occurrence of needle in hay, or NULL (memmem is not C11). */
static const uint8_t *
s_find(const uint8_t *hay, size_t hay_len, const char *needle, size_t needle_len)
{
    if (needle_len == 0 || hay_len < needle_len) {
        return NULL;
    }
    const uint8_t *end = hay + hay_len - needle_len + 1;
    for (const uint8_t *p = hay; p < end; p++) {
        p = memchr(p, needle[0], (size_t)(end - p));
        if (p == NULL) {
            return NULL;
        }
        if (memcmp(p, needle, needle_len) == 0) {
            return p;
        }
    }
    return NULL;
}

/*  The value after key in a msgpack map (key as a str), or -1. */
static int64_t
s_value_after(const uint8_t *p, const uint8_t *end)
{
    if (p >= end) {
        return -1;
    }
    uint8_t t = *p++;
    if (t <= 0x7f) {
        return t;
    }
    int n = t == 0xcc || t == 0xd0 ? 1 : t == 0xcd || t == 0xd1 ? 2 : t == 0xce || t == 0xd2 ? 4
            : t == 0xcf || t == 0xd3 ? 8 : 0;
    if (n == 0 || end - p < n) {
        return -1;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        v = v << 8 | p[i];
    }
    return v > (uint64_t)INT64_MAX ? -1 : (int64_t)v;
}

static void *
s_tap(void *arg)
{
    const s_cfg_t *cfg = arg;
    void *ctx = zmq_ctx_new();
    void *sub = zmq_socket(ctx, ZMQ_SUB);
    int zero = 0;
    const char *key = S_PROBE_KEY;
    size_t key_len = strlen(key);

    zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    if (zmq_connect(sub, cfg->tap) != 0) {
        fprintf(stderr, "bench_e2e: tap connect %s: %s\n", cfg->tap, zmq_strerror(zmq_errno()));
        goto out;
    }
    while (!atomic_load(&s_stop)) {
        zmq_pollitem_t item = { sub, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&item, 1, 100) <= 0) {
            continue;
        }
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sub, 0) >= 0) {
            int64_t now = bench_now_ns();
            const uint8_t *d = zmq_msg_data(&m);
            const uint8_t *e = d + zmq_msg_size(&m);
            const uint8_t *hit = s_find(d, zmq_msg_size(&m), key, key_len);
            if (hit != NULL) {
                int64_t v = s_value_after(hit + key_len, e);
                if (v >= 0 && v < S_PROBES_MAX && s_tap_ns[v] == 0) {
                    s_tap_ns[v] = now;
                }
            }
        }
        zmq_msg_close(&m);
    }
out:
    zmq_close(sub);
    zmq_ctx_term(ctx);
    return NULL;
}

static void
s_on_totals(void *arg, amity_sub_event_t ev, uint64_t seq, const amity_total_t *t, size_t n)
{
    int64_t now = bench_now_ns();
    (void)arg;
    (void)seq;
    if (ev != AMITY_SUB_UPDATE) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].key, S_PROBE_KEY) == 0 && t[i].value >= 0 && t[i].value < S_PROBES_MAX &&
            s_sub_ns[t[i].value] == 0) {
            s_sub_ns[t[i].value] = now;
        }
    }
}

static void *
s_subscriber(void *arg)
{
    const s_cfg_t *cfg = arg;
    amity_client_opts_t o;
    amity_sub_t *sub = NULL;
    const char *prefixes[1] = { S_PROBE_KEY };

    s_client_opts(cfg, &o, NULL);
    if (amity_sub_new(&sub, &o, prefixes, 1, s_on_totals, NULL) != 0) {
        fprintf(stderr, "bench_e2e: cannot subscribe\n");
        return NULL;
    }
    while (!atomic_load(&s_stop)) {
        if (amity_sub_poll(sub, 100) != 0) {
            break;
        }
    }
    amity_sub_destroy(&sub);
    return NULL;
}

/*  ------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
    s_cfg_t cfg = { AMITY_CLIENT_INGEST_DEFAULT, AMITY_CLIENT_NOTIFY_DEFAULT, NULL, 200000,
                    BENCH_OFFICES_DEFAULT, 1024, 256, 0, 1000, 0, BENCH_SEED_DEFAULT, 60000, 1 };
    bench_workload_t w;
    s_worker_t *wk = NULL;
    pthread_t *th = NULL;
    pthread_t probe_th, tap_th, sub_th;
    int64_t *sent_ns = NULL;
    int exit_code = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = NULL;
        bool ok = v != NULL;
        if (ok && strcmp(a, "--ingest") == 0) {
            cfg.ingest = v;
        } else if (ok && strcmp(a, "--notify") == 0) {
            cfg.notify = v;
        } else if (ok && strcmp(a, "--tap") == 0) {
            cfg.tap = v;
        } else {
            if (ok) {
                dst = strcmp(a, "--records") == 0      ? &cfg.n_records
                      : strcmp(a, "--offices") == 0    ? &cfg.offices
                      : strcmp(a, "--window") == 0     ? &cfg.window
                      : strcmp(a, "--batch") == 0      ? &cfg.batch
                      : strcmp(a, "--rate") == 0       ? &cfg.rate
                      : strcmp(a, "--warmup-ms") == 0  ? &cfg.warmup_ms
                      : strcmp(a, "--first") == 0      ? &cfg.first
                      : strcmp(a, "--seed") == 0       ? &cfg.seed
                      : strcmp(a, "--timeout-ms") == 0 ? &cfg.timeout_ms
                      : strcmp(a, "--shards") == 0     ? &cfg.shards
                                                       : NULL;
            }
            if (dst == NULL || !bench_parse_count(v, dst)) {
                fprintf(stderr,
                        "usage: amity-bench_e2e [--ingest EP] [--notify EP] [--records N]\n"
                        "    [--offices K] [--window W] [--batch B] [--rate R] [--warmup-ms T]\n"
                        "    [--first S] [--seed X] [--timeout-ms T] [--tap EP --shards S]\n");
                return 2;
            }
        }
        i++;
    }
    if (cfg.offices == 0 || cfg.offices > BENCH_OFFICES_MAX || cfg.n_records == 0 ||
        cfg.window == 0 || cfg.batch == 0 || cfg.shards == 0 || cfg.timeout_ms == 0 ||
        cfg.timeout_ms > 600000) {
        fprintf(stderr, "bench_e2e: option out of range\n");
        return 2;
    }
    bench_workload_init(&w, cfg.seed, (uint32_t)cfg.offices);
    if (bench_workload_selftest(&w) != 0) {
        return 1;
    }

    wk = calloc(cfg.offices, sizeof(*wk));
    th = calloc(cfg.offices, sizeof(*th));
    if (cfg.rate > 0) {
        sent_ns = calloc(cfg.n_records, sizeof(*sent_ns));
    }
    if (wk == NULL || th == NULL || (cfg.rate > 0 && sent_ns == NULL)) {
        fprintf(stderr, "bench_e2e: out of memory\n");
        goto out;
    }
    bool probing = cfg.tap != NULL;
    if (probing) {
        pthread_create(&tap_th, NULL, s_tap, &cfg);
        pthread_create(&sub_th, NULL, s_subscriber, &cfg);
        pthread_create(&probe_th, NULL, s_probe, &cfg);
    }
    int64_t t0_ns = bench_now_ns() + 300000000; /* let every client connect first */
    for (uint64_t k = 0; k < cfg.offices; k++) {
        wk[k].cfg = &cfg;
        wk[k].w = &w;
        wk[k].office = (uint32_t)k;
        wk[k].t0_ns = t0_ns;
        wk[k].sent_ns = sent_ns;
        pthread_create(&th[k], NULL, s_worker, &wk[k]);
    }
    uint64_t accepted = 0, duplicate = 0, rejected = 0, abandoned = 0, resends = 0, messages = 0;
    int64_t end_ns = t0_ns;
    int rc = 0;
    bench_samples_t lat = { 0 };
    for (uint64_t k = 0; k < cfg.offices; k++) {
        pthread_join(th[k], NULL);
        accepted += wk[k].accepted;
        duplicate += wk[k].duplicate;
        rejected += wk[k].rejected;
        abandoned += wk[k].abandoned;
        resends += wk[k].resends;
        messages += wk[k].messages;
        end_ns = wk[k].end_ns > end_ns ? wk[k].end_ns : end_ns;
        if (wk[k].rc != 0 && rc == 0) {
            rc = wk[k].rc;
            fprintf(stderr, "bench_e2e: office %s: %s\n", bench_workload_office_name((uint32_t)k),
                    amity_strerror(rc));
        }
        for (size_t i = 0; i < wk[k].lat.n; i++) {
            (void)bench_samples_add(&lat, wk[k].lat.v[i]);
        }
        bench_samples_clear(&wk[k].lat);
    }
    bench_samples_t csub = { 0 };
    if (probing) {
        /* let the last probes reach the subscriber */
        bench_sleep_until_ns(bench_now_ns() + 300000000);
        atomic_store(&s_stop, 1);
        pthread_join(probe_th, NULL);
        bench_sleep_until_ns(bench_now_ns() + 200000000);
        pthread_join(sub_th, NULL);
        pthread_join(tap_th, NULL);
        for (size_t v = 0; v < S_PROBES_MAX; v++) {
            if (s_tap_ns[v] != 0 && s_sub_ns[v] != 0) {
                (void)bench_samples_add(&csub, (double)(s_sub_ns[v] - s_tap_ns[v]) / 1e9);
            }
        }
    }
    double secs = (double)(end_ns - t0_ns) / 1e9;
    uint64_t done = accepted + duplicate + rejected;
    printf("RESULT bench=e2e records=%llu done=%llu accepted=%llu duplicate=%llu rejected=%llu "
           "abandoned=%llu resends=%llu messages=%llu offices=%llu window=%llu batch=%llu "
           "rate=%llu secs=%.3f rps=%.0f",
           (unsigned long long)cfg.n_records, (unsigned long long)done,
           (unsigned long long)accepted, (unsigned long long)duplicate,
           (unsigned long long)rejected, (unsigned long long)abandoned,
           (unsigned long long)resends, (unsigned long long)messages,
           (unsigned long long)cfg.offices, (unsigned long long)cfg.window,
           (unsigned long long)cfg.batch, (unsigned long long)cfg.rate, secs,
           secs > 0 ? (double)done / secs : 0);
    bench_print_latency("verdict", &lat);
    bench_print_latency("commit_sub", &csub);
    printf(" client_rss_kib=%ld\n", bench_vmhwm_kib(0));
    bench_samples_clear(&lat);
    bench_samples_clear(&csub);
    exit_code = rc == 0 && accepted == cfg.n_records ? 0 : 1;
out:
    free(wk);
    free(th);
    free(sent_ns);
    return exit_code;
}
