/*  bench_redis: the peer. The same job done the way a Redis user would:
 *  per record one EVALSHA of a Lua script that dedups with
 *  `SET rec:<office>:<id> <rev> NX`, then `HINCRBY totals <key> <delta>`
 *  for each of the record's totals keys (the same up to 48 keys as amity,
 *  amity_keys_derive), then one `PUBLISH totals` of the changed keys with
 *  their new values. A pipelined hiredis client keeps W commands in flight.
 *  The server is the caller's: redis-server on loopback with
 *  `--appendonly yes --appendfsync always` (bench/run.sh starts one).
 *
 *    amity-bench_redis [--port P(6390)] [--records N(200k)] [--window W(20480)]
 *        [--rate R(0: as fast as possible)] [--first S(0)] [--offices K(20)]
 *        [--conns C(K)] [--seed X] [--no-flush]
 *
 *  Throughput is records / time from the first command to the last reply;
 *  latency (with --rate) is per record, command written -> reply read.
 *  Prints one line starting "RESULT", with the server's peak RSS and its
 *  AOF bytes per record.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "amity/err.h"
#include "amity/keys.h"

#include "workload.h"

static const char s_script[] =
    "if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end\n"
    "local out = {}\n"
    "for i = 2, #ARGV, 2 do\n"
    "  local v = redis.call('HINCRBY', 'totals', ARGV[i], ARGV[i + 1])\n"
    "  out[#out + 1] = ARGV[i] .. '=' .. v\n"
    "end\n"
    "redis.call('PUBLISH', 'totals', table.concat(out, ' '))\n"
    "return 1\n";

#define S_ARGS_MAX (5 + 2 * AMITY_DELTAS_MAX)

typedef struct {
    amity_record_t rec;                     /* scratch */
    amity_delta_t deltas[AMITY_DELTAS_MAX]; /* scratch */
    char reckey[16 + AMITY_OFFICE_MAX + AMITY_ID_MAX];
    char rev[24];
    char vals[AMITY_DELTAS_MAX][24];
    const char *argv[S_ARGS_MAX];
    size_t lens[S_ARGS_MAX];
} s_cmd_t;

/*  Appends record serial's EVALSHA to the output buffer. */
static int
s_append(redisContext *c, const char *sha, const bench_workload_t *w, uint64_t serial,
         s_cmd_t *cmd)
{
    const char *office = bench_workload_record(w, serial, &cmd->rec);
    int n = amity_keys_derive(&cmd->rec, office, 1, cmd->deltas);
    int argc = 0;
    if (n < 0) {
        return n;
    }
    snprintf(cmd->reckey, sizeof(cmd->reckey), "rec:%s:%s", office, cmd->rec.id);
    snprintf(cmd->rev, sizeof(cmd->rev), "%llu", (unsigned long long)cmd->rec.rev);
    cmd->argv[argc++] = "EVALSHA";
    cmd->argv[argc++] = sha;
    cmd->argv[argc++] = "1";
    cmd->argv[argc++] = cmd->reckey;
    cmd->argv[argc++] = cmd->rev;
    for (int i = 0; i < n; i++) {
        snprintf(cmd->vals[i], sizeof(cmd->vals[i]), "%lld", (long long)cmd->deltas[i].delta);
        cmd->argv[argc++] = cmd->deltas[i].key;
        cmd->argv[argc++] = cmd->vals[i];
    }
    for (int i = 0; i < argc; i++) {
        cmd->lens[i] = strlen(cmd->argv[i]);
    }
    return redisAppendCommandArgv(c, argc, cmd->argv, cmd->lens) == REDIS_OK ? 0 : AMITY_EIO;
}

/*  Checks one reply: an integer (1 new, 0 duplicate). */
static int
s_check(redisReply *r, uint64_t *dups)
{
    int rc = 0;
    if (r == NULL) {
        return AMITY_EIO;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        if (r->integer == 0) {
            (*dups)++;
        }
    } else {
        fprintf(stderr, "bench_redis: unexpected reply: %s\n",
                r->type == REDIS_REPLY_ERROR ? r->str : "(not an integer)");
        rc = AMITY_EIO;
    }
    freeReplyObject(r);
    return rc;
}

/*  Value of "name:" in an INFO reply, or -1. */
static long long
s_info(redisContext *c, const char *section, const char *name)
{
    redisReply *r = redisCommand(c, "INFO %s", section);
    long long v = -1;
    if (r != NULL && r->type == REDIS_REPLY_STRING) {
        char pat[64];
        snprintf(pat, sizeof(pat), "\n%s:", name);
        const char *p = strstr(r->str, pat);
        if (p != NULL) {
            v = strtoll(p + strlen(pat), NULL, 10);
        }
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    return v;
}

typedef struct {
    redisContext *c;       /* one connection */
    uint64_t next;         /* next serial it sends (its offices' records) */
    uint64_t in_flight;    /* commands without a reply */
    uint64_t *fifo;        /* rate mode: record index of each command in flight, in order */
    uint64_t head, tail;   /* ring positions (mod fifo_cap) */
} s_conn_t;

/*  Reads every reply that has arrived on conn k; returns replies or -1. */
static long
s_read_replies(s_conn_t *k, uint64_t *dups, bench_samples_t *lat, const int64_t *sent_ns,
               uint64_t fifo_cap)
{
    long got = 0;
    if (redisBufferRead(k->c) != REDIS_OK) {
        return -1;
    }
    int64_t t = bench_now_ns();
    for (;;) {
        void *reply = NULL;
        if (redisGetReplyFromReader(k->c, &reply) != REDIS_OK) {
            return -1;
        }
        if (reply == NULL) {
            break;
        }
        if (s_check(reply, dups) != 0) {
            return -1;
        }
        if (sent_ns != NULL) {
            uint64_t idx = k->fifo[k->head++ % fifo_cap];
            (void)bench_samples_add(lat, (double)(t - sent_ns[idx]) / 1e9);
        }
        k->in_flight--;
        got++;
    }
    return got;
}

static int
s_flush(s_conn_t *k)
{
    int wdone = 0;
    while (!wdone) {
        if (redisBufferWrite(k->c, &wdone) != REDIS_OK) {
            return -1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    uint64_t port = 6390;
    uint64_t n_records = 200000;
    uint64_t window = 20480;
    uint64_t rate = 0;
    uint64_t first = 0;
    uint64_t offices = BENCH_OFFICES_DEFAULT;
    uint64_t n_conns = 0;
    uint64_t seed = BENCH_SEED_DEFAULT;
    bool flush = true;
    bench_workload_t w;
    bench_samples_t lat = { 0 };
    int64_t *sent_ns = NULL;
    s_cmd_t *cmd = calloc(1, sizeof(*cmd));
    s_conn_t *conns = NULL;
    struct pollfd *pfd = NULL;
    redisContext *c = NULL;
    redisReply *r;
    char sha[64];
    uint64_t sent = 0, done = 0, dups = 0, fifo_cap = 0;
    int exit_code = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t *dst = NULL;
        if (strcmp(a, "--no-flush") == 0) {
            flush = false;
            continue;
        }
        if (v != NULL) {
            dst = strcmp(a, "--port") == 0      ? &port
                  : strcmp(a, "--records") == 0 ? &n_records
                  : strcmp(a, "--window") == 0  ? &window
                  : strcmp(a, "--rate") == 0    ? &rate
                  : strcmp(a, "--first") == 0   ? &first
                  : strcmp(a, "--offices") == 0 ? &offices
                  : strcmp(a, "--conns") == 0   ? &n_conns
                  : strcmp(a, "--seed") == 0    ? &seed
                                                : NULL;
        }
        if (dst == NULL || !bench_parse_count(v, dst)) {
            fprintf(stderr, "usage: amity-bench_redis [--port P] [--records N] [--window W]\n"
                            "    [--rate R] [--first S] [--offices K] [--conns C(K)] [--seed X]\n"
                            "    [--no-flush]\n");
            free(cmd);
            return 2;
        }
        i++;
    }
    if (n_conns == 0) {
        n_conns = offices;
    }
    if (cmd == NULL || window == 0 || n_records == 0 || port == 0 || port > 65535 ||
        offices == 0 || offices > BENCH_OFFICES_MAX || n_conns > offices ||
        offices % n_conns != 0) {
        fprintf(stderr, "bench_redis: option out of range (conns must divide offices)\n");
        free(cmd);
        return 2;
    }
    bench_workload_init(&w, seed, (uint32_t)offices);
    (void)bench_workload_office_name(BENCH_OFFICES_MAX - 1);

    c = redisConnect("127.0.0.1", (int)port);
    if (c == NULL || c->err) {
        fprintf(stderr, "bench_redis: cannot connect to 127.0.0.1:%llu: %s\n",
                (unsigned long long)port, c ? c->errstr : "out of memory");
        goto out;
    }
    if (flush) {
        r = redisCommand(c, "FLUSHALL");
        if (r != NULL) {
            freeReplyObject(r);
        }
    }
    r = redisCommand(c, "SCRIPT LOAD %s", s_script);
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->len >= (int)sizeof(sha)) {
        fprintf(stderr, "bench_redis: SCRIPT LOAD failed: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        if (r != NULL) {
            freeReplyObject(r);
        }
        goto out;
    }
    snprintf(sha, sizeof(sha), "%s", r->str);
    freeReplyObject(r);
    long long aof0 = s_info(c, "persistence", "aof_current_size");
    long long fsync_always = -1;
    r = redisCommand(c, "CONFIG GET appendfsync");
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        fsync_always = strcmp(r->element[1]->str, "always") == 0;
    }
    if (r != NULL) {
        freeReplyObject(r);
    }

    /* one connection per office group (serial s goes to conn s % C), W/C in flight each */
    conns = calloc(n_conns, sizeof(*conns));
    pfd = calloc(n_conns, sizeof(*pfd));
    if (conns == NULL || pfd == NULL) {
        goto out;
    }
    uint64_t per_conn = window / n_conns > 0 ? window / n_conns : 1;
    fifo_cap = per_conn + 1;
    for (uint64_t i = 0; i < n_conns; i++) {
        conns[i].c = redisConnect("127.0.0.1", (int)port);
        if (conns[i].c == NULL || conns[i].c->err) {
            fprintf(stderr, "bench_redis: cannot connect\n");
            goto out;
        }
        conns[i].next = i;
        conns[i].fifo = calloc(fifo_cap, sizeof(uint64_t));
        if (conns[i].fifo == NULL) {
            goto out;
        }
        pfd[i].fd = conns[i].c->fd;
        pfd[i].events = POLLIN;
    }
    if (rate > 0) {
        sent_ns = calloc(n_records, sizeof(*sent_ns));
        if (sent_ns == NULL) {
            goto out;
        }
    }

    double t0 = bench_now();
    int64_t t0_ns = bench_now_ns();
    int64_t next_tick = t0_ns;
    while (done < n_records) {
        /* send: as fast as the windows allow, or what the rate makes due */
        uint64_t due = n_records;
        int64_t now = bench_now_ns();
        if (rate > 0) {
            due = now < next_tick ? sent
                                  : (uint64_t)((double)(now - t0_ns) * 1e-9 * (double)rate) + 1;
            due = due > n_records ? n_records : due;
            if (now >= next_tick) {
                next_tick += 1000000;
            }
        }
        while (sent < due) {
            s_conn_t *k = &conns[sent % n_conns];
            if (k->in_flight >= per_conn) {
                break;
            }
            if (s_append(k->c, sha, &w, first + sent, cmd) != 0) {
                goto out;
            }
            if (sent_ns != NULL) {
                sent_ns[sent] = now;
                k->fifo[k->tail++ % fifo_cap] = sent;
            }
            k->in_flight++;
            sent++;
        }
        for (uint64_t i = 0; i < n_conns; i++) {
            if (s_flush(&conns[i]) != 0) {
                goto out;
            }
        }
        /* receive */
        int wait = 5000;
        if (rate > 0 && sent < n_records) {
            wait = (int)((next_tick - bench_now_ns()) / 1000000);
            wait = wait < 0 ? 0 : wait;
        }
        int pr = poll(pfd, (nfds_t)n_conns, wait);
        if (pr < 0 && errno != EINTR) {
            goto out;
        }
        if (pr == 0 && wait == 5000) {
            fprintf(stderr, "bench_redis: no reply for 5 s\n");
            goto out;
        }
        for (uint64_t i = 0; i < n_conns && pr > 0; i++) {
            if (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) {
                long got = s_read_replies(&conns[i], &dups, &lat, sent_ns, fifo_cap);
                if (got < 0) {
                    fprintf(stderr, "bench_redis: %s\n", conns[i].c->errstr);
                    goto out;
                }
                done += (uint64_t)got;
            }
        }
    }
    double secs = bench_now() - t0;

    long long aof1 = s_info(c, "persistence", "aof_current_size");
    long long mem = s_info(c, "memory", "used_memory");
    long long pid = s_info(c, "server", "process_id");
    long long hlen = -1;
    r = redisCommand(c, "HLEN totals");
    if (r != NULL && r->type == REDIS_REPLY_INTEGER) {
        hlen = r->integer;
    }
    if (r != NULL) {
        freeReplyObject(r);
    }
    printf("RESULT bench=redis records=%llu done=%llu window=%llu conns=%llu rate=%llu "
           "secs=%.3f rps=%.0f dups=%llu fsync_always=%lld totals_keys=%lld "
           "aof_bytes_per_record=%.1f mem_bytes_per_record=%.1f",
           (unsigned long long)n_records, (unsigned long long)done,
           (unsigned long long)window, (unsigned long long)n_conns, (unsigned long long)rate,
           secs, (double)done / secs, (unsigned long long)dups, fsync_always, hlen,
           aof1 >= 0 && aof0 >= 0 ? (double)(aof1 - aof0) / (double)done : -1.0,
           mem >= 0 ? (double)mem / (double)done : -1.0);
    bench_print_latency("reply", &lat);
    printf(" client_rss_kib=%ld server_rss_kib=%ld\n", bench_vmhwm_kib(0),
           pid > 0 ? bench_vmhwm_kib((int)pid) : -1L);
    exit_code = done == n_records && dups == 0 ? 0 : 1;
out:
    if (conns != NULL) {
        for (uint64_t i = 0; i < n_conns; i++) {
            if (conns[i].c != NULL) {
                redisFree(conns[i].c);
            }
            free(conns[i].fifo);
        }
    }
    free(conns);
    free(pfd);
    if (c != NULL) {
        redisFree(c);
    }
    free(sent_ns);
    free(cmd);
    bench_samples_clear(&lat);
    return exit_code;
}
