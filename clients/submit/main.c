/*  amity-submit: sends an office's records (JSON Lines or CSV) to ingest
 *  and reports, per record, whether it was counted; with --spool DIR it
 *  first keeps them durably in a local spool and sends them from there.
 *
 *  stdout: one `FILE:LINE: id: reason` per rejected record, then (--spool)
 *  `N records spooled, M pending`, then `accepted N, duplicate N,
 *  rejected N`. Exit codes (sysexits): 0 all accepted or duplicate, 65
 *  some rejected, 66 input unreadable, 69 ingest unreachable (nothing
 *  answered before the deadline), 74 the spool or the rejects file cannot
 *  be written, 75 timed out (some answered; --spool: records left in the
 *  spool, safe), 77 (--spool) ingest refused us, 2 usage (also: the
 *  spool belongs to another office or key), 130 interrupted.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amity/log.h"
#include "cli.h"
#include "submit.h"

static const char *s_summary =
    "  amity-submit [OPTIONS] FILE|-\n"
    "  amity-submit --spool DIR [OPTIONS] [FILE|-]\n"
    "Submits records to ingest: JSON Lines (one object per line) or CSV (a header\n"
    "row naming the fields: id,rev,kind,date,country,<metrics>,amount,currency,\n"
    "scope,level,note,retract,x-...; an empty cell is an absent field). Prints each\n"
    "rejection as 'FILE:LINE: id: reason', then 'accepted N, duplicate N, rejected N'.\n"
    "Records without a verdict are resent after --timeout-ms; the run gives up when\n"
    "nothing at all is heard from ingest for --deadline-s. On a terminal, stderr\n"
    "shows a progress bar with the rate and the time left.\n"
    "  --format jsonl|csv   input format (default: from the extension, .csv is CSV,\n"
    "                       anything else and - are JSON Lines)\n"
    "  --rejects FILE       write the rejected records' original lines to FILE (CSV:\n"
    "                       the header, then the rows) to fix and submit again\n"
    "  --spool DIR          first write every record durably to the office spool DIR,\n"
    "                       then send from there until it is empty; without FILE, only\n"
    "                       send what DIR holds. Records that get no verdict stay in\n"
    "                       DIR, safe, for a later run or 'amity-spool drain DIR'.\n"
    "                       DIR belongs to the office (--office) or key (--key) that\n"
    "                       first used it; another one is refused (exit 2)\n"
    "  --progress/--no-progress  force the progress bar on or off\n"
    "Exit: 0 all accepted or duplicate, 65 some rejected, 66 FILE unreadable,\n"
    "69 ingest unreachable, 74 spool or rejects file not writable, 75 timed out\n"
    "(--spool: records left in DIR), 77 ingest refused us (--spool), 2 usage error\n"
    "(also: --spool DIR belongs to another office or key).";

volatile sig_atomic_t submit_interrupted;
static amity_client_t *volatile s_client; /* for the signal handler */
static amity_spool_t *volatile s_spool;   /* for the signal handler */

void
submit_watch_client(amity_client_t *client)
{
    s_client = client;
}

void
submit_watch_spool(amity_spool_t *spool)
{
    s_spool = spool;
}

static void
s_on_signal(int sig)
{
    amity_client_t *c = s_client;
    amity_spool_t *sp = s_spool;

    (void)sig;
    submit_interrupted = 1;
    if (c != NULL) {
        amity_client_interrupt(c);
    }
    if (sp != NULL) {
        amity_spool_interrupt(sp);
    }
}

/*  The program's own flags, taken out of argv before the [client]
 *  options are loaded. */
typedef struct {
    const char *format;  /* --format (NULL: from the extension) */
    const char *rejects; /* --rejects FILE */
    const char *spool;   /* --spool DIR */
    int progress;        /* --progress 1, --no-progress 0, -1: when stderr is a terminal */
} s_flags_t;

/*  Moves the flags out of argv (compacting it, *argc updated). Returns 0,
 *  or -1 after printing a usage error. */
static int
s_split_flags(int *argc, char **argv, s_flags_t *flags)
{
    int out = 1;
    bool done = false;

    for (int i = 1; i < *argc; i++) {
        const char **slot = NULL;
        const char *value = NULL;
        const char *name = NULL;

        if (!done && strcmp(argv[i], "--") == 0) {
            done = true;
        } else if (!done && strcmp(argv[i], "--progress") == 0) {
            flags->progress = 1;
            continue;
        } else if (!done && strcmp(argv[i], "--no-progress") == 0) {
            flags->progress = 0;
            continue;
        } else if (!done && amity_cli_take(*argc, argv, &i, "--format", &value)) {
            slot = &flags->format;
            name = "--format";
        } else if (!done && amity_cli_take(*argc, argv, &i, "--rejects", &value)) {
            slot = &flags->rejects;
            name = "--rejects";
        } else if (!done && amity_cli_take(*argc, argv, &i, "--spool", &value)) {
            slot = &flags->spool;
            name = "--spool";
        }
        if (slot != NULL) {
            if (value == NULL || value[0] == '\0') {
                (void)fprintf(stderr, "amity-submit: %s needs a value (see --help)\n", name);
                return -1;
            }
            *slot = value;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return 0;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    submit_args_t args;
    struct sigaction sa;
    s_flags_t flags = { NULL, NULL, NULL, -1 };
    char **pos;
    int n_pos;
    int exit_code;

    if (s_split_flags(&argc, argv, &flags) != 0) {
        return AMITY_EXIT_CONFIG;
    }
    r = amity_cli_load("amity-submit", s_summary, "3000", &cfg, &opts, argc, argv, &pos, &n_pos);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    memset(&args, 0, sizeof(args));
    args.opts = &opts;
    args.rejects = flags.rejects;
    args.spool = flags.spool;
    args.progress = flags.progress < 0 ? isatty(STDERR_FILENO) == 1 : flags.progress == 1;
    if (n_pos > 1 || (n_pos == 0 && flags.spool == NULL)) {
        (void)fprintf(stderr, "amity-submit: expected one FILE (or - for stdin); see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    args.file = n_pos == 1 ? pos[0] : NULL;
    if (flags.format == NULL) {
        args.format = submit_format_of(args.file);
    } else if (strcmp(flags.format, "csv") == 0) {
        args.format = SUBMIT_FORMAT_CSV;
    } else if (strcmp(flags.format, "jsonl") == 0 || strcmp(flags.format, "json") == 0) {
        args.format = SUBMIT_FORMAT_JSONL;
    } else {
        (void)fprintf(stderr, "amity-submit: --format: '%s' is not jsonl or csv\n", flags.format);
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);

    exit_code = args.spool != NULL ? submit_spooled(&args) : submit_direct(&args);
    amity_cli_free(&cfg);
    return exit_code;
}
