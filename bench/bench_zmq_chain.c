/*  bench_zmq_chain: the ZeroMQ limit. amity's path with its hop count and
 *  its bytes, and no work at all:
 *
 *    client DEALER -> ROUTER ingest-like -> PUSH/PULL validate-like x N
 *      -> PUSH/PULL aggregate-like x S -> PUB/SUB (topic) -> ingest-like
 *      -> ROUTER -> DEALER client
 *
 *  One process each (fork), TCP on loopback as amity uses. The client sends
 *  real submit messages (the workload's records, B per message) and keeps
 *  W records in flight; forwarders move frames untouched; an aggregate-like
 *  answers each message with a real verdicts message of as many verdicts
 *  (encoded once per size and cached). Frames: [hdr][payload], hdr = seq
 *  (8 bytes) + records (4) + shard (1), routing frames added as amity does.
 *
 *    amity-bench_zmq_chain [--records N(200k)] [--batch B(256)] [--window W(20480)]
 *        [--validators N(1)] [--shards S(1)] [--base-port P(7900)]
 *        [--rate R(0: as fast as possible)] [--offices K(20)] [--seed X]
 *
 *  Throughput is records / time from the first send to the last verdict;
 *  latency is per record (its message's submit -> verdict). Prints one
 *  line starting "RESULT".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <zmq.h>

#include "amity/err.h"
#include "amity/proto.h"

#include "workload.h"

#define S_HDR_LEN   13
#define S_POOL      64          /* distinct full-size submit messages, cycled */
#define S_TOPIC     "ing-00000000bench000"
#define S_PROCS_MAX 80

typedef struct {
    uint64_t n_records;
    uint64_t batch;
    uint64_t window;
    uint64_t validators;
    uint64_t shards;
    uint64_t base_port;
    uint64_t rate;
    uint64_t offices;
    uint64_t seed;
} s_cfg_t;

static pid_t s_pids[S_PROCS_MAX];
static int s_n_pids;

static void
s_endpoint(char *buf, size_t len, const char *host, uint64_t port)
{
    snprintf(buf, len, "tcp://%s:%llu", host, (unsigned long long)port);
}

static uint64_t
s_shard_port(const s_cfg_t *c, uint64_t k)
{
    return c->base_port + 10 + 10 * k;
}

/*  Moves every frame of one message from `from` to `to`. */
static int
s_forward(void *from, void *to)
{
    zmq_msg_t m;
    int more;
    do {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, 0) < 0) {
            zmq_msg_close(&m);
            return -1;
        }
        more = zmq_msg_more(&m);
        if (zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0) < 0) {
            zmq_msg_close(&m);
            return -1;
        }
    } while (more);
    return 0;
}

static void *
s_socket(void *ctx, int type)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    int hwm = 100000;
    if (s == NULL) {
        fprintf(stderr, "bench_zmq_chain: zmq_socket: %s\n", zmq_strerror(zmq_errno()));
        exit(1);
    }
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof(zero));
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    return s;
}

static void
s_bind(void *s, const char *ep)
{
    if (zmq_bind(s, ep) != 0) {
        fprintf(stderr, "bench_zmq_chain: bind %s: %s\n", ep, zmq_strerror(zmq_errno()));
        exit(1);
    }
}

static void
s_connect(void *s, const char *ep)
{
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "bench_zmq_chain: connect %s: %s\n", ep, zmq_strerror(zmq_errno()));
        exit(1);
    }
}

/*  ingest-like: ROUTER from clients -> PUSH work; SUB verdicts -> ROUTER. */
static void
s_run_ingest(const s_cfg_t *c)
{
    void *ctx = zmq_ctx_new();
    void *router = s_socket(ctx, ZMQ_ROUTER);
    void *push = s_socket(ctx, ZMQ_PUSH);
    void *sub = s_socket(ctx, ZMQ_SUB);
    char ep[64];

    s_endpoint(ep, sizeof(ep), "127.0.0.1", c->base_port);
    s_bind(router, ep);
    s_endpoint(ep, sizeof(ep), "127.0.0.1", c->base_port + 1);
    s_bind(push, ep);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, S_TOPIC, strlen(S_TOPIC));
    for (uint64_t k = 0; k < c->shards; k++) {
        s_endpoint(ep, sizeof(ep), "127.0.0.1", s_shard_port(c, k) + 1);
        s_connect(sub, ep);
    }
    zmq_pollitem_t items[2] = { { router, 0, ZMQ_POLLIN, 0 }, { sub, 0, ZMQ_POLLIN, 0 } };
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0) {
            if (zmq_errno() == EINTR) {
                continue;
            }
            break;
        }
        /* drain a bounded batch of each, as amity's loops do */
        for (int i = 0; i < 256 && (items[0].revents & ZMQ_POLLIN); i++) {
            int more = 0;
            size_t len = sizeof(more);
            zmq_getsockopt(router, ZMQ_EVENTS, &more, &len);
            if (!(more & ZMQ_POLLIN)) {
                break;
            }
            if (s_forward(router, push) != 0) {
                return;
            }
        }
        for (int i = 0; i < 256 && (items[1].revents & ZMQ_POLLIN); i++) {
            int ev = 0;
            size_t len = sizeof(ev);
            zmq_msg_t topic;
            zmq_getsockopt(sub, ZMQ_EVENTS, &ev, &len);
            if (!(ev & ZMQ_POLLIN)) {
                break;
            }
            /* [topic][conn][hdr][verdicts] -> ROUTER [conn][hdr][verdicts] */
            zmq_msg_init(&topic);
            if (zmq_msg_recv(&topic, sub, 0) < 0) {
                return;
            }
            zmq_msg_close(&topic);
            if (s_forward(sub, router) != 0) {
                return;
            }
        }
    }
}

/*  validate-like: PULL work -> PUSH to the shards (round robin). */
static void
s_run_validate(const s_cfg_t *c)
{
    void *ctx = zmq_ctx_new();
    void *pull = s_socket(ctx, ZMQ_PULL);
    void *push = s_socket(ctx, ZMQ_PUSH);
    char ep[64];

    s_endpoint(ep, sizeof(ep), "127.0.0.1", c->base_port + 1);
    s_connect(pull, ep);
    for (uint64_t k = 0; k < c->shards; k++) {
        s_endpoint(ep, sizeof(ep), "127.0.0.1", s_shard_port(c, k));
        s_connect(push, ep);
    }
    while (s_forward(pull, push) == 0) {
    }
}

/*  aggregate-like: PULL [conn][hdr][submit] -> PUB [topic][conn][hdr][verdicts]. */
static void
s_run_aggregate(const s_cfg_t *c, uint64_t index)
{
    void *ctx = zmq_ctx_new();
    void *pull = s_socket(ctx, ZMQ_PULL);
    void *pub = s_socket(ctx, ZMQ_PUB);
    amity_buf_t *cache = calloc(AMITY_ITEMS_MAX + 1, sizeof(*cache));
    amity_verdict_t *v = calloc(AMITY_ITEMS_MAX, sizeof(*v));
    char ep[64];

    if (cache == NULL || v == NULL) {
        exit(1);
    }
    for (size_t i = 0; i < AMITY_ITEMS_MAX; i++) {
        v[i].tag = i + 1;
        v[i].status = AMITY_VERDICT_ACCEPTED;
    }
    s_endpoint(ep, sizeof(ep), "127.0.0.1", s_shard_port(c, index));
    s_bind(pull, ep);
    s_endpoint(ep, sizeof(ep), "127.0.0.1", s_shard_port(c, index) + 1);
    s_bind(pub, ep);
    for (;;) {
        zmq_msg_t conn, hdr, payload;
        zmq_msg_init(&conn);
        zmq_msg_init(&hdr);
        zmq_msg_init(&payload);
        if (zmq_msg_recv(&conn, pull, 0) < 0 || zmq_msg_recv(&hdr, pull, 0) < 0 ||
            zmq_msg_recv(&payload, pull, 0) < 0 || zmq_msg_size(&hdr) != S_HDR_LEN) {
            exit(1);
        }
        zmq_msg_close(&payload);
        uint8_t *h = zmq_msg_data(&hdr);
        uint32_t n = (uint32_t)h[8] << 24 | (uint32_t)h[9] << 16 | (uint32_t)h[10] << 8 | h[11];
        h[12] = (uint8_t)index;
        if (n == 0 || n > AMITY_ITEMS_MAX) {
            exit(1);
        }
        if (cache[n].len == 0) {
            amity_msg_t m;
            amity_msg_init(&m);
            m.type = AMITY_MSG_VERDICTS;
            m.verdicts = v;
            m.n_verdicts = n;
            m.conn = amity_view_str("conn");
            if (amity_msg_encode(&m, &cache[n]) != 0) {
                exit(1);
            }
        }
        zmq_send(pub, S_TOPIC, strlen(S_TOPIC), ZMQ_SNDMORE);
        zmq_msg_send(&conn, pub, ZMQ_SNDMORE);
        zmq_msg_send(&hdr, pub, ZMQ_SNDMORE);
        zmq_send(pub, cache[n].data, cache[n].len, 0);
    }
}

static void
s_spawn(const s_cfg_t *c, int role, uint64_t index)
{
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench_zmq_chain: fork");
        exit(1);
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (role == 0) {
            s_run_ingest(c);
        } else if (role == 1) {
            s_run_validate(c);
        } else {
            s_run_aggregate(c, index);
        }
        _exit(0);
    }
    s_pids[s_n_pids++] = pid;
}

static void
s_stop_children(long *peak_kib)
{
    *peak_kib = 0;
    for (int i = 0; i < s_n_pids; i++) {
        long k = bench_vmhwm_kib(s_pids[i]);
        if (k > *peak_kib) {
            *peak_kib = k;
        }
        kill(s_pids[i], SIGTERM);
    }
    for (int i = 0; i < s_n_pids; i++) {
        int status;
        while (waitpid(s_pids[i], &status, 0) < 0 && errno == EINTR) {
        }
    }
    s_n_pids = 0;
}

/*  The client: a DEALER, W records in flight or R records/s offered. */
typedef struct {
    const s_cfg_t *c;
    void *dealer;
    amity_buf_t pool[S_POOL];        /* full-size submit messages */
    amity_buf_t *by_size;            /* rate mode: one message per record count */
    int64_t *sent_ns;                /* per message seq: send time */
    uint32_t *sent_n;                /* per message seq: records */
    uint64_t n_msgs_max;             /* capacity of sent_* */
    uint64_t next_seq;               /* next message seq */
    uint64_t sent_records;           /* records sent */
    uint64_t done_records;           /* records with a verdict */
    uint32_t shards_seen;            /* bit per shard that answered */
    bench_samples_t lat;             /* per record */
    bench_workload_t w;
} s_client_t;

static void
s_send(s_client_t *cl, const amity_buf_t *msg, uint32_t n)
{
    uint8_t hdr[S_HDR_LEN] = { 0 };
    uint64_t seq = cl->next_seq++;
    for (int i = 0; i < 8; i++) {
        hdr[i] = (uint8_t)(seq >> (56 - 8 * i));
    }
    hdr[8] = (uint8_t)(n >> 24);
    hdr[9] = (uint8_t)(n >> 16);
    hdr[10] = (uint8_t)(n >> 8);
    hdr[11] = (uint8_t)n;
    if (seq < cl->n_msgs_max) {
        cl->sent_ns[seq] = bench_now_ns();
        cl->sent_n[seq] = n;
    }
    zmq_send(cl->dealer, hdr, sizeof(hdr), ZMQ_SNDMORE);
    zmq_send(cl->dealer, msg->data, msg->len, 0);
}

/*  Receives one verdicts message (waits up to timeout_ms); returns records or 0. */
static uint32_t
s_recv(s_client_t *cl, int timeout_ms, bool measure)
{
    zmq_pollitem_t item = { cl->dealer, 0, ZMQ_POLLIN, 0 };
    uint8_t hdr[S_HDR_LEN];
    zmq_msg_t payload;

    if (zmq_poll(&item, 1, timeout_ms) <= 0) {
        return 0;
    }
    if (zmq_recv(cl->dealer, hdr, sizeof(hdr), 0) != S_HDR_LEN) {
        return 0;
    }
    zmq_msg_init(&payload);
    zmq_msg_recv(&payload, cl->dealer, 0);
    zmq_msg_close(&payload);
    int64_t now = bench_now_ns();
    uint64_t seq = 0;
    for (int i = 0; i < 8; i++) {
        seq = seq << 8 | hdr[i];
    }
    uint32_t n = (uint32_t)hdr[8] << 24 | (uint32_t)hdr[9] << 16 | (uint32_t)hdr[10] << 8 | hdr[11];
    cl->shards_seen |= 1u << (hdr[12] & 31);
    if (measure && seq < cl->n_msgs_max) {
        double lat = (double)(now - cl->sent_ns[seq]) / 1e9;
        for (uint32_t i = 0; i < n; i++) {
            (void)bench_samples_add(&cl->lat, lat);
        }
    }
    return n;
}

static const amity_buf_t *
s_msg_of_size(s_client_t *cl, uint32_t n, uint64_t serial)
{
    if (cl->by_size[n].len == 0) {
        const char *office = bench_workload_office_name(bench_workload_office_of(&cl->w, serial));
        if (bench_workload_submit_msg(&cl->w, serial, cl->w.n_offices, n, office,
                                      &cl->by_size[n]) != 0) {
            fprintf(stderr, "bench_zmq_chain: cannot encode a message\n");
            exit(1);
        }
    }
    return &cl->by_size[n];
}

int
main(int argc, char **argv)
{
    s_cfg_t c = { 200000, 256, 20480, 1, 1, 7900, 0, BENCH_OFFICES_DEFAULT, BENCH_SEED_DEFAULT };
    s_client_t cl;
    long peak_kib = 0;
    int exit_code = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = NULL;
        if (v != NULL) {
            dst = strcmp(a, "--records") == 0      ? &c.n_records
                  : strcmp(a, "--batch") == 0      ? &c.batch
                  : strcmp(a, "--window") == 0     ? &c.window
                  : strcmp(a, "--validators") == 0 ? &c.validators
                  : strcmp(a, "--shards") == 0     ? &c.shards
                  : strcmp(a, "--base-port") == 0  ? &c.base_port
                  : strcmp(a, "--rate") == 0       ? &c.rate
                  : strcmp(a, "--offices") == 0    ? &c.offices
                  : strcmp(a, "--seed") == 0       ? &c.seed
                                                   : NULL;
        }
        if (dst == NULL || !bench_parse_count(v, dst)) {
            fprintf(stderr, "usage: amity-bench_zmq_chain [--records N] [--batch B] [--window W]\n"
                            "    [--validators N] [--shards S] [--base-port P] [--rate R]\n"
                            "    [--offices K] [--seed X]\n");
            return 2;
        }
        i++;
    }
    if (c.batch == 0 || c.batch > AMITY_ITEMS_MAX || c.window < c.batch || c.validators == 0 ||
        c.shards == 0 || c.shards > 16 || c.validators + c.shards + 1 > S_PROCS_MAX ||
        c.offices == 0 || c.offices > BENCH_OFFICES_MAX || c.n_records == 0) {
        fprintf(stderr, "bench_zmq_chain: option out of range\n");
        return 2;
    }

    memset(&cl, 0, sizeof(cl));
    cl.c = &c;
    bench_workload_init(&cl.w, c.seed, (uint32_t)c.offices);
    (void)bench_workload_office_name(BENCH_OFFICES_MAX - 1);

    /* fork before any ZeroMQ context exists in this process */
    for (uint64_t k = 0; k < c.shards; k++) {
        s_spawn(&c, 2, k);
    }
    for (uint64_t i = 0; i < c.validators; i++) {
        s_spawn(&c, 1, i);
    }
    s_spawn(&c, 0, 0);

    /* the messages: records serial k, k + K, ... of office k, as offices send */
    for (int i = 0; i < S_POOL; i++) {
        uint64_t first = (uint64_t)i * c.offices * c.batch + (uint64_t)i % c.offices;
        const char *office = bench_workload_office_name((uint32_t)(i % (int)c.offices));
        amity_buf_init(&cl.pool[i]);
        if (bench_workload_submit_msg(&cl.w, first, c.offices, (size_t)c.batch, office,
                                      &cl.pool[i]) != 0) {
            fprintf(stderr, "bench_zmq_chain: cannot encode a message\n");
            goto out;
        }
    }
    cl.by_size = calloc(c.batch + 1, sizeof(*cl.by_size));
    cl.n_msgs_max = c.rate > 0 ? c.n_records + 16 : c.n_records / c.batch + 64;
    cl.sent_ns = calloc(cl.n_msgs_max, sizeof(*cl.sent_ns));
    cl.sent_n = calloc(cl.n_msgs_max, sizeof(*cl.sent_n));
    if (cl.by_size == NULL || cl.sent_ns == NULL || cl.sent_n == NULL) {
        fprintf(stderr, "bench_zmq_chain: out of memory\n");
        goto out;
    }

    void *ctx = zmq_ctx_new();
    cl.dealer = s_socket(ctx, ZMQ_DEALER);
    char ep[64];
    s_endpoint(ep, sizeof(ep), "127.0.0.1", c.base_port);
    s_connect(cl.dealer, ep);

    /* wait for the chain: every shard must answer (PUB drops until SUB joined) */
    uint32_t all = (uint32_t)((1ull << c.shards) - 1);
    double t_ready = bench_now();
    while (cl.shards_seen != all) {
        if (bench_now() - t_ready > 20) {
            fprintf(stderr, "bench_zmq_chain: the chain did not come up\n");
            zmq_close(cl.dealer);
            zmq_ctx_term(ctx);
            goto out;
        }
        s_send(&cl, s_msg_of_size(&cl, 1, 0), 1);
        while (s_recv(&cl, 20, false) > 0) {
        }
    }
    while (s_recv(&cl, 200, false) > 0) {
    }
    cl.next_seq = 0;

    double t0 = bench_now();
    int64_t t0_ns = bench_now_ns();
    if (c.rate == 0) {
        uint64_t i = 0;
        while (cl.done_records < c.n_records) {
            while (cl.sent_records < c.n_records &&
                   cl.sent_records - cl.done_records + c.batch <= c.window) {
                uint32_t n = (uint32_t)(c.n_records - cl.sent_records < c.batch
                                            ? c.n_records - cl.sent_records
                                            : c.batch);
                const amity_buf_t *m =
                    n == c.batch ? &cl.pool[i++ % S_POOL] : s_msg_of_size(&cl, n, cl.sent_records);
                s_send(&cl, m, n);
                cl.sent_records += n;
            }
            uint32_t got = s_recv(&cl, 5000, true);
            if (got == 0) {
                fprintf(stderr, "bench_zmq_chain: no verdict for 5 s\n");
                break;
            }
            cl.done_records += got;
        }
    } else {
        /* every millisecond, send what is due as one message */
        int64_t tick = 1000000;
        int64_t next = t0_ns;
        while (cl.done_records < c.n_records) {
            int64_t now = bench_now_ns();
            if (now >= next && cl.sent_records < c.n_records) {
                uint64_t due = (uint64_t)((double)(now - t0_ns) * 1e-9 * (double)c.rate) + 1;
                if (due > c.n_records) {
                    due = c.n_records;
                }
                while (cl.sent_records < due) {
                    uint64_t left = due - cl.sent_records;
                    uint32_t n = (uint32_t)(left < c.batch ? left : c.batch);
                    s_send(&cl, s_msg_of_size(&cl, n, cl.sent_records), n);
                    cl.sent_records += n;
                }
                next += tick;
            }
            int wait = cl.sent_records < c.n_records
                           ? (int)((next - bench_now_ns()) / 1000000)
                           : 5000;
            uint32_t got = s_recv(&cl, wait < 0 ? 0 : wait, true);
            if (got == 0 && cl.sent_records >= c.n_records) {
                fprintf(stderr, "bench_zmq_chain: no verdict for 5 s\n");
                break;
            }
            cl.done_records += got;
            while ((got = s_recv(&cl, 0, true)) > 0) {
                cl.done_records += got;
            }
        }
    }
    double secs = bench_now() - t0;
    zmq_close(cl.dealer);
    zmq_ctx_term(ctx);
    s_stop_children(&peak_kib);

    printf("RESULT bench=zmq_chain records=%llu done=%llu batch=%llu window=%llu validators=%llu "
           "shards=%llu rate=%llu secs=%.3f rps=%.0f",
           (unsigned long long)c.n_records, (unsigned long long)cl.done_records,
           (unsigned long long)c.batch, (unsigned long long)c.window,
           (unsigned long long)c.validators, (unsigned long long)c.shards,
           (unsigned long long)c.rate, secs, (double)cl.done_records / secs);
    bench_print_latency("verdict", &cl.lat);
    printf(" client_rss_kib=%ld chain_peak_rss_kib=%ld\n", bench_vmhwm_kib(0), peak_kib);
    exit_code = cl.done_records == c.n_records ? 0 : 1;
out:
    if (s_n_pids > 0) {
        s_stop_children(&peak_kib);
    }
    for (int i = 0; i < S_POOL; i++) {
        amity_buf_clear(&cl.pool[i]);
    }
    if (cl.by_size != NULL) {
        for (uint64_t i = 0; i <= c.batch; i++) {
            amity_buf_clear(&cl.by_size[i]);
        }
    }
    free(cl.by_size);
    free(cl.sent_ns);
    free(cl.sent_n);
    bench_samples_clear(&cl.lat);
    return exit_code;
}
