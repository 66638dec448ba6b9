/*  amity-submit --spool DIR: for offices on flaky links. Every record of
 *  FILE is first committed to the office spool (amity/spool.h) in batches,
 *  durably; then the spool is drained until it is empty or ingest stays
 *  silent past the deadline. Records without a verdict stay in the spool,
 *  safe, for the next `amity-submit --spool DIR` or `amity-spool drain DIR`. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "submit.h"

#define S_BATCH_RECORDS 1024                      /* records per spool transaction */
#define S_BATCH_BYTES   ((size_t)8 * 1024 * 1024) /* bytes per spool transaction */

typedef struct {
    const submit_args_t *args;
    submit_progress_t *progress;
    submit_rejects_t rejects;
    uint64_t local_rejected; /* rejected before spooling */
    uint64_t spooled;        /* records committed to the spool by this run */
    uint64_t verdicts;       /* verdicts recorded by the drain */
} s_run_t;

static void
s_local_reject(s_run_t *run, submit_input_t *in, const submit_record_t *rec, const char *why)
{
    size_t hlen = 0;
    const char *header = submit_input_header(in, &hlen);
    char id[AMITY_ID_MAX + 1];

    submit_record_id(rec, id, sizeof(id));
    submit_progress_hide(run->progress);
    printf("%s:%llu: %s: %s\n", run->args->file, (unsigned long long)rec->line, id, why);
    submit_rejects_add(&run->rejects, rec->raw, rec->raw_len, header, hlen);
    run->local_rejected++;
}

static int
s_commit(s_run_t *run, amity_spool_t *sp, amity_spool_batch_t *batch, uint64_t line)
{
    size_t n = amity_spool_batch_count(batch);
    int rc = amity_spool_commit(sp, batch, NULL);

    if (rc != 0) {
        submit_progress_hide(run->progress);
        (void)fprintf(stderr,
                      "amity-submit: cannot write to the spool %s: %s; %llu records spooled, "
                      "those before line %llu of %s\n",
                      run->args->spool, amity_strerror(rc), (unsigned long long)run->spooled,
                      (unsigned long long)line, run->args->file);
        return rc;
    }
    run->spooled += n;
    return 0;
}

/*  Spools every record of the input. Returns 0 or an exit code. */
static int
s_spool_file(s_run_t *run, amity_spool_t *sp)
{
    const submit_args_t *args = run->args;
    submit_input_t *in = NULL;
    amity_spool_batch_t *batch = NULL;
    amity_buf_t enc;
    submit_record_t rec;
    uint64_t line = 0;
    int exit_code = 0;
    int rc;

    amity_buf_init(&enc);
    if (submit_input_open(&in, args->file, args->format) != 0) {
        (void)fprintf(stderr, "amity-submit: cannot open %s: %s\n", args->file, strerror(errno));
        return SUBMIT_EXIT_NOINPUT;
    }
    if (amity_spool_batch_new(&batch) != 0) {
        exit_code = AMITY_EXIT_RUNTIME;
        goto out;
    }
    submit_progress_phase(run->progress, "spooling", submit_input_estimate(in));
    for (;;) {
        amity_spool_item_t item;
        char why[AMITY_WHY_MAX + 64];
        char source[AMITY_SPOOL_SOURCE_MAX];
        int got;

        if (submit_interrupted) {
            break;
        }
        got = submit_input_next(in, &rec);
        if (got < 0) {
            if (!submit_interrupted) {
                submit_progress_hide(run->progress);
                (void)fprintf(stderr, "amity-submit: reading %s: %s\n", args->file,
                              got == AMITY_ENOMEM ? "out of memory" : strerror(errno));
                exit_code = SUBMIT_EXIT_NOINPUT;
            }
            break;
        }
        if (got == 0) {
            break;
        }
        line = rec.line;
        if (!rec.ok) {
            s_local_reject(run, in, &rec, rec.why);
            continue;
        }
        memset(&item, 0, sizeof(item));
        if (rec.fields != NULL) {
            item.fields = rec.fields;
        } else {
            amity_buf_reset(&enc);
            why[0] = '\0';
            rc = amity_json_record(rec.json, rec.json_len, &enc, why, sizeof(why));
            if (rc == AMITY_ENOMEM) {
                exit_code = AMITY_EXIT_RUNTIME;
                break;
            }
            if (rc != 0) {
                s_local_reject(run, in, &rec, why);
                continue;
            }
            item.rec = enc.data;
            item.rec_len = enc.len;
        }
        (void)snprintf(source, sizeof(source), "%s:%llu", args->file, (unsigned long long)rec.line);
        item.source = source;
        item.raw = rec.raw;
        item.raw_len = rec.raw_len;
        item.header = submit_input_header(in, &item.header_len);
        rc = amity_spool_batch_add(batch, &item);
        if (rc == AMITY_EINVAL) {
            (void)snprintf(why, sizeof(why),
                           "record: larger than %d bytes once encoded, or not encodable",
                           AMITY_CLIENT_REC_MAX);
            s_local_reject(run, in, &rec, why);
            continue;
        }
        if (rc != 0) {
            exit_code = AMITY_EXIT_RUNTIME;
            break;
        }
        if (amity_spool_batch_count(batch) >= S_BATCH_RECORDS ||
            amity_spool_batch_bytes(batch) >= S_BATCH_BYTES) {
            if (s_commit(run, sp, batch, rec.line) != 0) {
                exit_code = SUBMIT_EXIT_IOERR;
                break;
            }
        }
        submit_progress_set(run->progress,
                            run->spooled + amity_spool_batch_count(batch) + run->local_rejected);
    }
    /* what was read is kept, even when interrupted: it is the office's */
    if (exit_code == 0 && s_commit(run, sp, batch, line + 1) != 0) {
        exit_code = SUBMIT_EXIT_IOERR;
    }
    if (exit_code == 0 && submit_interrupted) {
        submit_progress_hide(run->progress);
        (void)fprintf(stderr,
                      "amity-submit: interrupted: %llu records of %s spooled, up to line %llu\n",
                      (unsigned long long)run->spooled, args->file, (unsigned long long)line);
        exit_code = SUBMIT_EXIT_INTERRUPTED;
    }

out:
    amity_spool_batch_destroy(&batch);
    submit_input_destroy(&in);
    amity_buf_clear(&enc);
    return exit_code;
}

/* A verdict is on disk in the spool. */
static int
s_on_drained(void *arg, const amity_spool_entry_t *e)
{
    s_run_t *run = arg;

    run->verdicts++;
    if (e->status == AMITY_STATUS_REJECTED) {
        submit_progress_hide(run->progress);
        if (e->source[0] != '\0') {
            printf("%s: %s: %s\n", e->source, e->id, e->why);
        } else {
            printf("spool:%llu: %s: %s\n", (unsigned long long)e->seq, e->id, e->why);
        }
        submit_rejects_add(&run->rejects, e->raw, e->raw_len, e->header, e->header_len);
    }
    submit_progress_set(run->progress, run->verdicts);
    return 0;
}

static void
s_on_tick(void *arg, const amity_spool_drain_stats_t *st)
{
    s_run_t *run = arg;

    (void)st;
    submit_progress_set(run->progress, run->verdicts);
}

int
submit_spooled(const submit_args_t *args)
{
    amity_spool_t *sp = NULL;
    amity_spool_status_t ss;
    amity_spool_drain_stats_t ds;
    amity_spool_drain_cb_t cb;
    s_run_t run;
    char why[AMITY_WHY_MAX];
    int exit_code = 0;
    int rc;

    memset(&run, 0, sizeof(run));
    memset(&ds, 0, sizeof(ds));
    run.args = args;
    rc = amity_spool_open(&sp, args->spool);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-submit: cannot open the spool %s: %s\n", args->spool,
                      amity_strerror(rc));
        return SUBMIT_EXIT_IOERR;
    }
    /* the spool's records are sent as its own office: refuse another one
     * before reading anything (a usage error: the wrong --office, --key
     * or --spool) */
    rc = amity_spool_claim(sp, args->opts, why, sizeof(why));
    if (rc != 0) {
        if (rc == AMITY_EINVAL) {
            (void)fprintf(stderr, "amity-submit: %s\n", why);
        } else {
            (void)fprintf(stderr, "amity-submit: cannot read the spool %s: %s\n", args->spool,
                          amity_strerror(rc));
        }
        amity_spool_destroy(&sp);
        return rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : SUBMIT_EXIT_IOERR;
    }
    if (submit_rejects_open(&run.rejects, args->rejects) != 0) {
        exit_code = SUBMIT_EXIT_IOERR;
        goto out;
    }
    run.progress = submit_progress_new(args->progress);
    submit_watch_spool(sp);
    if (args->file != NULL) {
        exit_code = s_spool_file(&run, sp);
        if (exit_code != 0) {
            goto report;
        }
    }

    rc = amity_spool_status(sp, &ss);
    submit_progress_phase(run.progress, "sending", rc == 0 ? ss.pending : 0);
    cb.on_verdict = s_on_drained;
    cb.on_tick = s_on_tick;
    cb.arg = &run;
    rc = amity_spool_drain(sp, args->opts, &cb, &ds);
    submit_progress_hide(run.progress);
    switch (rc) {
    case 0:
        break;
    case AMITY_EAGAIN:
        if (ds.busy) {
            (void)fprintf(stderr,
                          "amity-submit: another process is draining %s; the records are safe "
                          "there and it will send them\n",
                          args->spool);
        } else {
            (void)fprintf(stderr,
                          "amity-submit: %s; %llu records stay in %s, safe: send them later "
                          "with 'amity-submit --spool %s' or 'amity-spool drain %s'\n",
                          ds.replies == 0 ? "ingest unreachable" : "timed out waiting for verdicts",
                          (unsigned long long)ds.pending, args->spool, args->spool, args->spool);
        }
        exit_code = SUBMIT_EXIT_TEMPFAIL;
        break;
    case AMITY_EINVAL:
        if (ds.not_ours) {
            (void)fprintf(stderr, "amity-submit: %s\n", ds.refused);
            exit_code = AMITY_EXIT_CONFIG;
            break;
        }
        (void)fprintf(stderr,
                      "amity-submit: ingest refused our messages: %s; the records stay in %s\n",
                      ds.refused, args->spool);
        exit_code = SUBMIT_EXIT_NOPERM;
        break;
    case AMITY_ETERM:
        (void)fprintf(stderr, "amity-submit: interrupted; %llu records stay in %s, safe\n",
                      (unsigned long long)ds.pending, args->spool);
        exit_code = SUBMIT_EXIT_INTERRUPTED;
        break;
    default:
        (void)fprintf(stderr, "amity-submit: draining %s: %s\n", args->spool, amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
        break;
    }

report:
    submit_progress_destroy(&run.progress);
    if (amity_spool_status(sp, &ss) == 0) {
        ds.pending = ss.pending;
    }
    printf("%llu records spooled, %llu pending\n", (unsigned long long)run.spooled,
           (unsigned long long)ds.pending);
    printf("accepted %llu, duplicate %llu, rejected %llu\n", (unsigned long long)ds.accepted,
           (unsigned long long)ds.duplicate,
           (unsigned long long)ds.rejected + (unsigned long long)run.local_rejected);
    (void)fflush(stdout);
    amity_log_info("spool %s: %llu records sent, %llu resends, %llu replies", args->spool,
                   (unsigned long long)ds.sent, (unsigned long long)ds.resends,
                   (unsigned long long)ds.replies);
    if (exit_code == 0 && ds.rejected + run.local_rejected > 0) {
        exit_code = SUBMIT_EXIT_DATAERR;
    }

out:
    submit_watch_spool(NULL);
    if (submit_rejects_close(&run.rejects) != 0 && exit_code == 0) {
        exit_code = SUBMIT_EXIT_IOERR;
    }
    submit_progress_destroy(&run.progress);
    amity_spool_destroy(&sp);
    return exit_code;
}
