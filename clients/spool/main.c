/*  amity-spool: an office spool (amity/spool.h) seen from the shell:
 *  `status DIR` (what waits, what was rejected and why, how old the
 *  oldest waiting record is), `drain DIR` (send what waits, as
 *  `amity-submit --spool DIR` without a FILE does) and `rejects DIR`
 *  (the rejected records' original text, to fix and submit again).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "amity/clock.h"
#include "amity/log.h"
#include "amity/spool.h"
#include "cli.h"

#define S_EXIT_DATAERR     65
#define S_EXIT_IOERR       74
#define S_EXIT_TEMPFAIL    75
#define S_EXIT_NOPERM      77
#define S_EXIT_INTERRUPTED 130

static const char *s_summary =
    "  amity-spool status DIR [--verbose]\n"
    "  amity-spool drain DIR [--deadline-s S] [client options]\n"
    "  amity-spool rejects DIR [--clear]\n"
    "Looks after an office spool, the directory that 'amity-submit --spool DIR' keeps\n"
    "records in until ingest has given each its verdict.\n"
    "  status   whom the spool belongs to, records pending and rejected, the age of\n"
    "           the oldest pending one;\n"
    "           --verbose adds one 'FILE:LINE: id: reason' line per rejected record\n"
    "  drain    sends what is pending until nothing is, or until ingest stays silent\n"
    "           for --deadline-s; prints each rejection, then 'accepted N, duplicate N,\n"
    "           rejected N' and 'N pending'. A spool belongs to the office (--office)\n"
    "           or key (--key) that first used it; another one is refused (exit 2)\n"
    "  rejects  writes the rejected records' original text to stdout (CSV rows under\n"
    "           their header), ready to fix and submit again; --clear then removes them\n"
    "Exit: 0 ok, 65 (drain) some rejected, 74 spool unreadable, 75 (drain) records\n"
    "left pending (ingest unreachable or silent, or another drain running), 77 ingest\n"
    "refused us, 2 usage error (also: the spool belongs to another office or key),\n"
    "130 interrupted.";

static amity_spool_t *volatile s_spool; /* for the signal handler */

static void
s_on_signal(int sig)
{
    amity_spool_t *sp = s_spool;

    (void)sig;
    if (sp != NULL) {
        amity_spool_interrupt(sp);
    }
}

/*  "3d 4h", "2h 5m", "4m 12s", "9s" */
static void
s_age(char *buf, size_t len, int64_t ms)
{
    long long s = ms > 0 ? (long long)(ms / 1000) : 0;

    if (s >= 86400) {
        (void)snprintf(buf, len, "%lldd %lldh", s / 86400, s / 3600 % 24);
    } else if (s >= 3600) {
        (void)snprintf(buf, len, "%lldh %lldm", s / 3600, s / 60 % 60);
    } else if (s >= 60) {
        (void)snprintf(buf, len, "%lldm %llds", s / 60, s % 60);
    } else {
        (void)snprintf(buf, len, "%llds", s);
    }
}

static int
s_print_rejected(void *arg, const amity_spool_entry_t *e)
{
    (void)arg;
    if (e->source[0] != '\0') {
        printf("%s: %s: %s\n", e->source, e->id, e->why);
    } else {
        printf("spool:%llu: %s: %s\n", (unsigned long long)e->seq, e->id, e->why);
    }
    return 0;
}

static int
s_status(amity_spool_t *sp, const char *dir, bool verbose)
{
    amity_spool_status_t st;
    char age[64];
    char when[64];
    int rc;

    rc = amity_spool_status(sp, &st);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-spool: %s: %s\n", dir, amity_strerror(rc));
        return S_EXIT_IOERR;
    }
    printf("spool: %s\n", dir);
    printf("belongs to: %s\n", st.owner[0] != '\0' ? st.owner : "nobody yet");
    printf("pending: %llu\n", (unsigned long long)st.pending);
    printf("rejected: %llu\n", (unsigned long long)st.rejected);
    if (st.pending > 0 && st.oldest_ms > 0) {
        time_t t = (time_t)(st.oldest_ms / 1000);
        struct tm tm;
        s_age(age, sizeof(age), amity_clock_wall_ms() - st.oldest_ms);
        if (localtime_r(&t, &tm) == NULL ||
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", &tm) == 0) {
            (void)snprintf(when, sizeof(when), "?");
        }
        printf("oldest pending: %s (spooled %s)\n", age, when);
    } else {
        printf("oldest pending: none\n");
    }
    printf("all time: %llu spooled, %llu accepted, %llu duplicate, %llu rejected\n",
           (unsigned long long)st.spooled, (unsigned long long)st.accepted,
           (unsigned long long)st.duplicate, (unsigned long long)st.rejected_ever);
    if (verbose && st.rejected > 0) {
        printf("rejected records:\n");
        (void)fflush(stdout);
        rc = amity_spool_rejected(sp, s_print_rejected, NULL);
        if (rc != 0) {
            (void)fprintf(stderr, "amity-spool: %s: %s\n", dir, amity_strerror(rc));
            return S_EXIT_IOERR;
        }
    }
    return 0;
}

static int
s_on_drained(void *arg, const amity_spool_entry_t *e)
{
    (void)arg;
    if (e->status == AMITY_STATUS_REJECTED) {
        (void)s_print_rejected(NULL, e);
    }
    return 0;
}

static int
s_drain(amity_spool_t *sp, const char *dir, const amity_client_opts_t *opts)
{
    amity_spool_drain_stats_t ds;
    amity_spool_drain_cb_t cb;
    int exit_code = 0;
    int rc;

    memset(&cb, 0, sizeof(cb));
    cb.on_verdict = s_on_drained;
    rc = amity_spool_drain(sp, opts, &cb, &ds);
    switch (rc) {
    case 0:
        break;
    case AMITY_EAGAIN:
        if (ds.busy) {
            (void)fprintf(stderr, "amity-spool: another process is draining %s\n", dir);
        } else {
            (void)fprintf(stderr, "amity-spool: %s; %llu records stay pending in %s\n",
                          ds.replies == 0 ? "ingest unreachable" : "timed out waiting for verdicts",
                          (unsigned long long)ds.pending, dir);
        }
        exit_code = S_EXIT_TEMPFAIL;
        break;
    case AMITY_EINVAL:
        if (ds.not_ours) {
            /* the wrong --office or --key for this spool: a usage error */
            (void)fprintf(stderr, "amity-spool: %s\n", ds.refused);
            return AMITY_EXIT_CONFIG;
        }
        (void)fprintf(stderr, "amity-spool: ingest refused our messages: %s\n", ds.refused);
        exit_code = S_EXIT_NOPERM;
        break;
    case AMITY_ETERM:
        (void)fprintf(stderr, "amity-spool: interrupted\n");
        exit_code = S_EXIT_INTERRUPTED;
        break;
    default:
        (void)fprintf(stderr, "amity-spool: draining %s: %s\n", dir, amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
        break;
    }
    printf("accepted %llu, duplicate %llu, rejected %llu\n", (unsigned long long)ds.accepted,
           (unsigned long long)ds.duplicate, (unsigned long long)ds.rejected);
    printf("%llu pending\n", (unsigned long long)ds.pending);
    amity_log_info("spool %s: %llu records sent, %llu resends, %llu replies", dir,
                   (unsigned long long)ds.sent, (unsigned long long)ds.resends,
                   (unsigned long long)ds.replies);
    if (exit_code == 0 && ds.rejected > 0) {
        exit_code = S_EXIT_DATAERR;
    }
    return exit_code;
}

typedef struct {
    char *header; /* the CSV header written last */
    size_t header_len;
    uint64_t last_seq; /* the last record written */
    uint64_t written;
    uint64_t textless; /* rejected records spooled without their text */
} s_rejects_t;

static int
s_write_rejected(void *arg, const amity_spool_entry_t *e)
{
    s_rejects_t *r = arg;

    if (e->raw == NULL || e->raw_len == 0) {
        r->textless++;
        r->last_seq = e->seq;
        return 0;
    }
    if (e->header != NULL && e->header_len > 0 &&
        (r->header == NULL || r->header_len != e->header_len ||
         memcmp(r->header, e->header, e->header_len) != 0)) {
        free(r->header);
        r->header = malloc(e->header_len);
        if (r->header == NULL) {
            return AMITY_ENOMEM;
        }
        memcpy(r->header, e->header, e->header_len);
        r->header_len = e->header_len;
        (void)fwrite(e->header, 1, e->header_len, stdout);
        if (e->header[e->header_len - 1] != '\n') {
            (void)fputc('\n', stdout);
        }
    }
    (void)fwrite(e->raw, 1, e->raw_len, stdout);
    if (e->raw[e->raw_len - 1] != '\n') {
        (void)fputc('\n', stdout);
    }
    r->written++;
    r->last_seq = e->seq;
    return 0;
}

static int
s_rejects(amity_spool_t *sp, const char *dir, bool clear)
{
    s_rejects_t r;
    uint64_t removed = 0;
    int rc;

    memset(&r, 0, sizeof(r));
    rc = amity_spool_rejected(sp, s_write_rejected, &r);
    free(r.header);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-spool: %s: %s\n", dir, amity_strerror(rc));
        return S_EXIT_IOERR;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        (void)fprintf(stderr, "amity-spool: writing the rejected records failed\n");
        return S_EXIT_IOERR;
    }
    if (r.textless > 0) {
        (void)fprintf(stderr,
                      "amity-spool: %llu rejected records were spooled without their text "
                      "(see 'amity-spool status --verbose %s')\n",
                      (unsigned long long)r.textless, dir);
    }
    if (clear && r.last_seq > 0) {
        /* only what was written: a rejection recorded meanwhile stays */
        rc = amity_spool_rejected_clear(sp, r.last_seq, &removed);
        if (rc != 0) {
            (void)fprintf(stderr, "amity-spool: %s: %s\n", dir, amity_strerror(rc));
            return S_EXIT_IOERR;
        }
        (void)fprintf(stderr, "amity-spool: %llu rejected records removed from %s\n",
                      (unsigned long long)removed, dir);
    }
    return 0;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    amity_spool_t *sp = NULL;
    struct sigaction sa;
    struct stat dir_st;
    bool verbose = false;
    bool clear = false;
    const char *cmd;
    const char *dir;
    char **pos;
    int n_pos;
    int out = 1;
    int exit_code;
    int rc;

    /* the program's own flags, out of argv before the [client] options */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--verbose") == 0 || strcmp(argv[i], "-v") == 0) {
            verbose = true;
        } else if (strcmp(argv[i], "--clear") == 0) {
            clear = true;
        } else {
            argv[out++] = argv[i];
        }
    }
    argc = out;
    argv[argc] = NULL;
    r = amity_cli_load("amity-spool", s_summary, "3000", &cfg, &opts, argc, argv, &pos, &n_pos);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (n_pos != 2 || (strcmp(pos[0], "status") != 0 && strcmp(pos[0], "drain") != 0 &&
                       strcmp(pos[0], "rejects") != 0)) {
        (void)fprintf(stderr, "amity-spool: expected status|drain|rejects DIR; see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    cmd = pos[0];
    dir = pos[1];
    if (stat(dir, &dir_st) != 0 || !S_ISDIR(dir_st.st_mode)) {
        /* opening would create an empty spool: say there is none instead */
        (void)fprintf(stderr, "amity-spool: no spool at %s\n", dir);
        amity_cli_free(&cfg);
        return S_EXIT_IOERR;
    }
    rc = amity_spool_open(&sp, dir);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-spool: cannot open the spool %s: %s\n", dir,
                      amity_strerror(rc));
        amity_cli_free(&cfg);
        return S_EXIT_IOERR;
    }
    s_spool = sp;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);

    if (strcmp(cmd, "status") == 0) {
        exit_code = s_status(sp, dir, verbose);
    } else if (strcmp(cmd, "drain") == 0) {
        exit_code = s_drain(sp, dir, &opts);
    } else {
        exit_code = s_rejects(sp, dir, clear);
    }
    s_spool = NULL;
    amity_spool_destroy(&sp);
    amity_cli_free(&cfg);
    return exit_code;
}
