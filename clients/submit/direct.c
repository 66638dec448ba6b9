/*  amity-submit, straight to ingest: streams the input through libamity,
 *  holding only the records in flight (the window), never the whole file.
 *  Each record in flight is remembered by its tag (the line it started on
 *  and, with --rejects, its text) until its verdict arrives. While a pipe
 *  keeps us waiting for input (`tail -f | amity-submit -`), the client is
 *  polled together with it: what was read is sent, verdicts are printed,
 *  resends go out and the deadline is kept, as at the end of the input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "submit.h"

#define S_INPUT_POLL_MS 100 /* client poll slice while waiting for input */

/*  A record in flight. */
typedef struct {
    uint64_t tag;  /* 0: empty slot */
    uint64_t line; /* where it starts */
    char *raw;     /* its text (--rejects only) */
    size_t raw_len;
} s_flight_t;

typedef struct {
    const submit_args_t *args;
    amity_client_t *client;
    submit_input_t *in;
    submit_progress_t *progress;
    submit_rejects_t rejects;
    s_flight_t *table;       /* tag -> record, linear probing */
    size_t mask;             /* table size - 1 */
    uint64_t local_rejected; /* rejected before sending */
    uint64_t settled;        /* verdicts so far (any) */
    int wait_rc;             /* why waiting for input ended the reading (0: it did not) */
    bool nomem;              /* the table could not keep a text */
} s_run_t;

static size_t
s_hash(uint64_t key, size_t mask)
{
    key ^= key >> 33;
    key *= UINT64_C(0xff51afd7ed558ccd);
    key ^= key >> 33;
    return (size_t)key & mask;
}

static void
s_table_put(s_run_t *run, uint64_t tag, uint64_t line, const char *raw, size_t raw_len)
{
    size_t i = s_hash(tag, run->mask);

    while (run->table[i].tag != 0) {
        i = (i + 1) & run->mask;
    }
    run->table[i].tag = tag;
    run->table[i].line = line;
    run->table[i].raw = NULL;
    run->table[i].raw_len = 0;
    if (raw != NULL && raw_len > 0) {
        run->table[i].raw = malloc(raw_len);
        if (run->table[i].raw == NULL) {
            run->nomem = true;
            return;
        }
        memcpy(run->table[i].raw, raw, raw_len);
        run->table[i].raw_len = raw_len;
    }
}

/*  Takes tag's entry out of the table into *out (out->tag 0: not found). */
static void
s_table_take(s_run_t *run, uint64_t tag, s_flight_t *out)
{
    size_t i = s_hash(tag, run->mask);
    size_t j;

    memset(out, 0, sizeof(*out));
    while (run->table[i].tag != 0 && run->table[i].tag != tag) {
        i = (i + 1) & run->mask;
    }
    if (run->table[i].tag == 0) {
        return;
    }
    *out = run->table[i];
    memset(&run->table[i], 0, sizeof(run->table[i]));
    /* backward-shift deletion keeps every probe chain unbroken */
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & run->mask;
        if (run->table[j].tag == 0) {
            return;
        }
        home = s_hash(run->table[j].tag, run->mask);
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            run->table[i] = run->table[j];
            memset(&run->table[j], 0, sizeof(run->table[j]));
            i = j;
        }
    }
}

static void
s_on_verdict(void *arg, const amity_verdict_info_t *v)
{
    s_run_t *run = arg;
    s_flight_t f;
    size_t hlen = 0;
    const char *header;

    s_table_take(run, v->tag, &f);
    run->settled++;
    if (v->status == AMITY_STATUS_REJECTED) {
        submit_progress_hide(run->progress);
        printf("%s:%llu: %s: %s\n", run->args->file, (unsigned long long)f.line, v->id, v->why);
        header = submit_input_header(run->in, &hlen);
        submit_rejects_add(&run->rejects, f.raw, f.raw_len, header, hlen);
    } else if (v->status == AMITY_STATUS_DUPLICATE) {
        amity_log_debug("%s:%llu: %s: duplicate", run->args->file, (unsigned long long)f.line,
                        v->id);
    } else if (v->status == AMITY_STATUS_ABANDONED) {
        submit_progress_hide(run->progress);
        (void)fprintf(stderr, "%s:%llu: %s: %s\n", run->args->file, (unsigned long long)f.line,
                      v->id, v->why);
    }
    free(f.raw);
}

/*  The input would block: keep the client going until it is readable
 *  (submit_wait_fn). Returns 0, AMITY_EAGAIN (the deadline passed: ingest
 *  silent with records in flight), AMITY_ETERM, AMITY_EIO. */
static int
s_wait_input(void *arg, int fd)
{
    s_run_t *run = arg;
    bool ready = false;
    int rc;

    for (;;) {
        /* what was printed is seen now, not when more input comes */
        (void)fflush(stdout);
        if (submit_interrupted) {
            run->wait_rc = AMITY_ETERM;
            return AMITY_ETERM;
        }
        if (amity_client_stalled(run->client)) {
            run->wait_rc = AMITY_EAGAIN;
            return AMITY_EAGAIN;
        }
        rc = amity_client_poll_fd(run->client, fd, S_INPUT_POLL_MS, &ready);
        submit_progress_set(run->progress, run->settled + run->local_rejected);
        if (rc != 0) {
            run->wait_rc = rc;
            return rc;
        }
        if (ready) {
            return 0;
        }
    }
}

static void
s_local_reject(s_run_t *run, const submit_record_t *rec, const char *why)
{
    size_t hlen = 0;
    const char *header = submit_input_header(run->in, &hlen);
    char id[AMITY_ID_MAX + 1];

    submit_record_id(rec, id, sizeof(id));
    submit_progress_hide(run->progress);
    printf("%s:%llu: %s: %s\n", run->args->file, (unsigned long long)rec->line, id, why);
    submit_rejects_add(&run->rejects, rec->raw, rec->raw_len, header, hlen);
    run->local_rejected++;
}

int
submit_direct(const submit_args_t *args)
{
    amity_client_stats_t st;
    amity_client_t *client = NULL;
    submit_record_t rec;
    s_run_t run;
    size_t window;
    size_t table_size = 16;
    uint64_t tag = 0;
    uint64_t last_line = 0;
    bool gave_up = false;
    int exit_code = 0;
    int rc = 0;

    memset(&run, 0, sizeof(run));
    run.args = args;
    if (args->file == NULL) {
        (void)fprintf(stderr, "amity-submit: expected one FILE (or - for stdin); see --help\n");
        return AMITY_EXIT_CONFIG;
    }
    if (submit_input_open(&run.in, args->file, args->format) != 0) {
        (void)fprintf(stderr, "amity-submit: cannot open %s: %s\n", args->file, strerror(errno));
        return SUBMIT_EXIT_NOINPUT;
    }
    window = args->opts->window ? args->opts->window : AMITY_CLIENT_WINDOW_DEFAULT;
    while (table_size < window * 2 + 2) {
        table_size *= 2;
    }
    run.mask = table_size - 1;
    run.table = calloc(table_size, sizeof(*run.table));
    if (run.table == NULL || submit_rejects_open(&run.rejects, args->rejects) != 0) {
        exit_code = run.table == NULL ? AMITY_EXIT_RUNTIME : SUBMIT_EXIT_IOERR;
        goto out;
    }
    rc = amity_client_new(&client, args->opts, s_on_verdict, &run);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-submit: cannot create the client: %s\n", amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
        goto out;
    }
    run.client = client;
    submit_input_set_wait(run.in, s_wait_input, &run);
    submit_watch_client(client);
    run.progress = submit_progress_new(args->progress);
    submit_progress_phase(run.progress, "sending", submit_input_estimate(run.in));

    for (;;) {
        char why[AMITY_WHY_MAX + 64];
        int got;

        if (submit_interrupted) {
            rc = AMITY_ETERM;
            break;
        }
        got = submit_input_next(run.in, &rec);
        if (got < 0 && (submit_interrupted || run.wait_rc == AMITY_ETERM)) {
            rc = AMITY_ETERM;
            break;
        }
        if (got < 0 && run.wait_rc == AMITY_EAGAIN) {
            /* the deadline passed while the input was quiet */
            submit_progress_hide(run.progress);
            (void)fprintf(stderr, "amity-submit: stopped reading %s after line %llu\n", args->file,
                          (unsigned long long)last_line);
            gave_up = true;
            break;
        }
        if (got < 0 && run.wait_rc != 0) {
            rc = run.wait_rc; /* the client failed while we waited for input */
            break;
        }
        if (got < 0) {
            submit_progress_hide(run.progress);
            (void)fprintf(stderr, "amity-submit: reading %s: %s\n", args->file,
                          got == AMITY_ENOMEM ? "out of memory" : strerror(errno));
            exit_code = SUBMIT_EXIT_NOINPUT;
            break;
        }
        if (got == 0) {
            break;
        }
        last_line = rec.line;
        if (!rec.ok) {
            s_local_reject(&run, &rec, rec.why);
            continue;
        }
        tag++;
        s_table_put(&run, tag, rec.line, args->rejects != NULL ? rec.raw : NULL, rec.raw_len);
        why[0] = '\0';
        if (rec.fields != NULL) {
            rc = amity_client_submit(client, rec.fields, tag);
            if (rc == AMITY_EINVAL) {
                (void)snprintf(why, sizeof(why),
                               "record: larger than %d bytes once encoded, or not encodable",
                               AMITY_CLIENT_REC_MAX);
            }
        } else {
            rc = amity_client_submit_json(client, rec.json, rec.json_len, tag, why, sizeof(why));
        }
        if (rc == AMITY_EINVAL) {
            s_flight_t f;
            s_table_take(&run, tag, &f);
            free(f.raw);
            s_local_reject(&run, &rec, why);
            rc = 0;
            continue;
        }
        if (rc == AMITY_EAGAIN) {
            submit_progress_hide(run.progress);
            (void)fprintf(stderr, "amity-submit: stopped reading %s at line %llu\n", args->file,
                          (unsigned long long)rec.line);
            gave_up = true;
            break;
        }
        if (rc != 0) {
            break;
        }
        submit_progress_set(run.progress, run.settled + run.local_rejected);
    }
    if (run.nomem) {
        (void)fprintf(stderr, "amity-submit: out of memory keeping rejected lines for %s\n",
                      args->rejects);
    }
    while (rc == 0 && !gave_up && exit_code == 0) {
        /* wait for the verdicts, redrawing the progress meanwhile */
        amity_client_stats(client, &st);
        if (st.in_flight == 0) {
            break;
        }
        rc = amity_client_flush(client, 200);
        submit_progress_set(run.progress, run.settled + run.local_rejected);
        if (rc == AMITY_EAGAIN) {
            rc = 0;
            if (amity_client_stalled(client)) {
                gave_up = true;
            }
        }
    }
    submit_progress_destroy(&run.progress);
    amity_client_stats(client, &st);
    if (gave_up || rc == AMITY_ETERM) {
        if (st.in_flight > 0) {
            (void)fprintf(stderr, "amity-submit: %s: giving up on %zu records without a verdict\n",
                          rc == AMITY_ETERM
                              ? "interrupted"
                              : (st.replies == 0 ? "ingest unreachable" : "timed out"),
                          st.in_flight);
        }
        amity_client_abandon(client, rc == AMITY_ETERM ? "no verdict: interrupted"
                                                       : "no verdict before the deadline");
    }
    printf("accepted %llu, duplicate %llu, rejected %llu\n", (unsigned long long)st.accepted,
           (unsigned long long)st.duplicate,
           (unsigned long long)st.rejected + (unsigned long long)run.local_rejected);
    (void)fflush(stdout);
    amity_log_info("submitted %llu records in %llu messages, %llu resends, %llu error replies",
                   (unsigned long long)st.submitted, (unsigned long long)st.messages,
                   (unsigned long long)st.resends, (unsigned long long)st.errors);

    if (exit_code != 0) {
        /* input error already reported */
    } else if (rc == AMITY_ETERM || submit_interrupted) {
        exit_code = SUBMIT_EXIT_INTERRUPTED;
    } else if (gave_up) {
        exit_code = st.replies == 0 ? SUBMIT_EXIT_UNAVAILABLE : SUBMIT_EXIT_TEMPFAIL;
        (void)fprintf(stderr, "amity-submit: %s\n",
                      st.replies == 0 ? "ingest did not answer before the deadline"
                                      : "timed out waiting for verdicts");
    } else if (rc != 0) {
        (void)fprintf(stderr, "amity-submit: %s\n", amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
    } else if (st.rejected + run.local_rejected > 0) {
        exit_code = SUBMIT_EXIT_DATAERR;
    }

out:
    submit_watch_client(NULL);
    amity_client_destroy(&client);
    if (submit_rejects_close(&run.rejects) != 0 && exit_code == 0) {
        exit_code = SUBMIT_EXIT_IOERR;
    }
    if (run.table != NULL) {
        for (size_t i = 0; i <= run.mask; i++) {
            if (run.table[i].tag != 0) {
                free(run.table[i].raw);
            }
        }
    }
    free(run.table);
    submit_input_destroy(&run.in);
    return exit_code;
}
