/*  amity-submit: streams a JSON Lines file of records to ingest and
 *  reports, per record, whether it was counted. Holds only the records in
 *  flight (the window), never the whole file.
 *
 *  stdout: one `FILE:LINE: id: reason` per rejected record, then
 *  `accepted N, duplicate N, rejected N`. Exit 0 all accepted or
 *  duplicate, 65 some rejected, 69 ingest unreachable (nothing answered
 *  before the deadline), 75 timed out (some answered), 66 input unreadable,
 *  2 usage, 130 interrupted.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/log.h"
#include "cli.h"

#define S_EXIT_REJECTED    65
#define S_EXIT_NOINPUT     66
#define S_EXIT_UNREACHABLE 69
#define S_EXIT_TIMEOUT     75
#define S_EXIT_INTERRUPTED 130
#define S_LINE_MAX         (1024 * 1024) /* longer lines are rejected unread */

static const char *s_summary =
    "Submits records from a JSON Lines FILE (or - for stdin) to ingest, one\n"
    "JSON object per line (blank lines skipped), and prints each rejection as\n"
    "'FILE:LINE: id: reason', then 'accepted N, duplicate N, rejected N'.\n"
    "Records without a verdict are resent after --timeout-ms; the run gives up\n"
    "when nothing at all is heard from ingest for --deadline-s.\n"
    "Exit: 0 all accepted or duplicate, 65 some rejected, 69 ingest unreachable,\n"
    "75 timed out after some answers, 66 FILE unreadable, 2 usage error.";

typedef struct {
    const char *file;        /* name shown in reports */
    uint64_t local_rejected; /* lines rejected before sending */
} s_run_t;

static amity_client_t *volatile s_client; /* for the signal handler */
static volatile sig_atomic_t s_interrupted;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_interrupted = 1;
    if (s_client != NULL) {
        amity_client_interrupt(s_client);
    }
}

static void
s_on_verdict(void *arg, const amity_verdict_info_t *v)
{
    s_run_t *run = arg;

    if (v->status == AMITY_STATUS_REJECTED) {
        printf("%s:%llu: %s: %s\n", run->file, (unsigned long long)v->tag, v->id, v->why);
    } else if (v->status == AMITY_STATUS_DUPLICATE) {
        amity_log_debug("%s:%llu: %s: duplicate", run->file, (unsigned long long)v->tag, v->id);
    } else if (v->status == AMITY_STATUS_ABANDONED) {
        fprintf(stderr, "%s:%llu: %s: %s\n", run->file, (unsigned long long)v->tag, v->id, v->why);
    }
}

/*  Reads one line into *buf (without the newline). Returns 1 with a line,
 *  0 at end of input, -1 on a read error. A line longer than S_LINE_MAX
 *  is skipped to its end and reported with *too_long. */
static int
s_read_line(FILE *fp, char **buf, size_t *cap, size_t *len, bool *too_long)
{
    int c;

    *len = 0;
    *too_long = false;
    while ((c = getc(fp)) != EOF) {
        if (c == '\n') {
            break;
        }
        if (*too_long) {
            continue;
        }
        if (*len + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 4096;
            char *nbuf;
            if (ncap > S_LINE_MAX + 2) {
                ncap = S_LINE_MAX + 2;
            }
            if (*len + 1 >= ncap) {
                *too_long = true;
                continue;
            }
            nbuf = realloc(*buf, ncap);
            if (nbuf == NULL) {
                *too_long = true;
                continue;
            }
            *buf = nbuf;
            *cap = ncap;
        }
        (*buf)[(*len)++] = (char)c;
    }
    if (c == EOF && ferror(fp)) {
        return -1;
    }
    if (c == EOF && *len == 0 && !*too_long) {
        return 0;
    }
    if (*buf != NULL) {
        (*buf)[*len] = '\0';
    }
    return 1;
}

static bool
s_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') {
            return false;
        }
    }
    return true;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_client_stats_t st;
    amity_client_t *client = NULL;
    amity_config_result_t r;
    struct sigaction sa;
    s_run_t run;
    char **args;
    int n_args;
    FILE *fp;
    char *line = NULL;
    size_t cap = 0;
    size_t len;
    bool too_long;
    uint64_t lineno = 0;
    bool gave_up = false;
    int exit_code = 0;
    int rc = 0;

    r = amity_cli_load("amity-submit", s_summary, "3000", &cfg, &opts, argc, argv, &args, &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (n_args != 1) {
        fprintf(stderr, "amity-submit: expected one FILE (or - for stdin); see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    run.file = args[0];
    run.local_rejected = 0;
    if (strcmp(run.file, "-") == 0) {
        fp = stdin;
    } else {
        fp = fopen(run.file, "r");
        if (fp == NULL) {
            fprintf(stderr, "amity-submit: cannot open %s: %s\n", run.file, strerror(errno));
            amity_cli_free(&cfg);
            return S_EXIT_NOINPUT;
        }
    }
    rc = amity_client_new(&client, &opts, s_on_verdict, &run);
    if (rc != 0) {
        fprintf(stderr, "amity-submit: cannot create the client: %s\n", amity_strerror(rc));
        if (fp != stdin) {
            fclose(fp);
        }
        amity_cli_free(&cfg);
        return AMITY_EXIT_RUNTIME;
    }
    s_client = client;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    for (;;) {
        char why[AMITY_WHY_MAX + 64];
        int got;

        if (s_interrupted) {
            rc = AMITY_ETERM;
            break;
        }
        got = s_read_line(fp, &line, &cap, &len, &too_long);

        if (got < 0 && s_interrupted) {
            rc = AMITY_ETERM;
            break;
        }
        if (got < 0) {
            fprintf(stderr, "amity-submit: reading %s: %s\n", run.file, strerror(errno));
            exit_code = S_EXIT_NOINPUT;
            break;
        }
        if (got == 0) {
            break;
        }
        lineno++;
        if (too_long) {
            printf("%s:%llu: -: record: line longer than %d bytes\n", run.file,
                   (unsigned long long)lineno, S_LINE_MAX);
            run.local_rejected++;
            continue;
        }
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            memmove(line, line + 3, len - 2);
            len -= 3;
        }
        if (s_blank(line, len)) {
            continue;
        }
        why[0] = '\0';
        rc = amity_client_submit_json(client, line, len, lineno, why, sizeof(why));
        if (rc == AMITY_EINVAL) {
            printf("%s:%llu: -: %s\n", run.file, (unsigned long long)lineno, why);
            run.local_rejected++;
            rc = 0;
            continue;
        }
        if (rc == AMITY_EAGAIN) {
            fprintf(stderr, "amity-submit: stopped reading %s at line %llu\n", run.file,
                    (unsigned long long)lineno);
            gave_up = true;
            break;
        }
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && !gave_up && exit_code == 0) {
        rc = amity_client_flush(client, -1);
        if (rc == AMITY_EAGAIN) {
            gave_up = true;
        }
    }
    amity_client_stats(client, &st);
    if (gave_up || rc == AMITY_ETERM) {
        if (st.in_flight > 0) {
            fprintf(stderr, "amity-submit: %s: giving up on %zu records without a verdict\n",
                    rc == AMITY_ETERM ? "interrupted"
                                      : (st.replies == 0 ? "ingest unreachable" : "timed out"),
                    st.in_flight);
        }
        amity_client_abandon(client, rc == AMITY_ETERM ? "no verdict: interrupted"
                                                       : "no verdict before the deadline");
    }
    printf("accepted %llu, duplicate %llu, rejected %llu\n", (unsigned long long)st.accepted,
           (unsigned long long)st.duplicate,
           (unsigned long long)(st.rejected + run.local_rejected));
    fflush(stdout);
    amity_log_info("submitted %llu records in %llu messages, %llu resends, %llu error replies",
                   (unsigned long long)st.submitted, (unsigned long long)st.messages,
                   (unsigned long long)st.resends, (unsigned long long)st.errors);

    if (exit_code != 0) {
        /* input error already reported */
    } else if (rc == AMITY_ETERM || s_interrupted) {
        exit_code = S_EXIT_INTERRUPTED;
    } else if (gave_up) {
        exit_code = st.replies == 0 ? S_EXIT_UNREACHABLE : S_EXIT_TIMEOUT;
        fprintf(stderr, "amity-submit: %s\n",
                st.replies == 0 ? "ingest did not answer before the deadline"
                                : "timed out waiting for verdicts");
    } else if (rc != 0) {
        fprintf(stderr, "amity-submit: %s\n", amity_strerror(rc));
        exit_code = AMITY_EXIT_RUNTIME;
    } else if (st.rejected + run.local_rejected > 0) {
        exit_code = S_EXIT_REJECTED;
    }
    s_client = NULL;
    amity_client_destroy(&client);
    free(line);
    if (fp != stdin) {
        fclose(fp);
    }
    amity_cli_free(&cfg);
    return exit_code;
}
