/*  amity-submit internals: the input reader (JSON Lines and CSV), the
 *  progress bar, the file of rejected lines, and the two ways of sending
 *  (straight to ingest, or through an office spool). Not installed. */
#ifndef AMITY_SUBMIT_H
#define AMITY_SUBMIT_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "amity/client.h"
#include "amity/config.h"
#include "amity/spool.h"

/* sysexits(3) */
#define SUBMIT_EXIT_DATAERR     65 /* some records rejected */
#define SUBMIT_EXIT_NOINPUT     66 /* FILE unreadable */
#define SUBMIT_EXIT_UNAVAILABLE 69 /* ingest did not answer at all */
#define SUBMIT_EXIT_IOERR       74 /* the spool cannot be written */
#define SUBMIT_EXIT_TEMPFAIL    75 /* timed out; spool: records safe, not all delivered */
#define SUBMIT_EXIT_NOPERM      77 /* spool: ingest refused us (office, key) */
#define SUBMIT_EXIT_INTERRUPTED 130

#define SUBMIT_LINE_MAX 1048576 /* bytes in a JSON line; longer ones are rejected unread */

typedef enum {
    SUBMIT_FORMAT_AUTO = 0, /* from the file name's extension (JSON Lines otherwise) */
    SUBMIT_FORMAT_JSONL,
    SUBMIT_FORMAT_CSV,
} submit_format_t;

/*  What the command line asked for. */
typedef struct {
    const char *file;          /* FILE, "-" for stdin, NULL: none (spool: drain only) */
    submit_format_t format;    /* resolved (never AUTO once main is done) */
    const char *rejects;       /* --rejects FILE (NULL: none) */
    const char *spool;         /* --spool DIR (NULL: send directly) */
    bool progress;             /* draw a progress bar on stderr */
    amity_client_opts_t *opts; /* client options ([client] section) */
} submit_args_t;

/*  Set by SIGINT/SIGTERM; the handler also interrupts the registered
 *  client or spool (main.c). */
extern volatile sig_atomic_t submit_interrupted;
void submit_watch_client(amity_client_t *client);
void submit_watch_spool(amity_spool_t *spool);

/*  The two modes; each returns the process exit code. */
int submit_direct(const submit_args_t *args);
int submit_spooled(const submit_args_t *args);

/*  ------------------------------------------------------------------
 *  Input: one record at a time from a JSON Lines or CSV file
 */

typedef struct submit_input submit_input_t;

typedef struct {
    uint64_t line;                /* physical line where the record starts */
    bool ok;                      /* read; else why says what is wrong */
    const amity_fields_t *fields; /* CSV: the record */
    const char *json;             /* JSON Lines: the object's text */
    size_t json_len;
    const char *raw; /* the original text, for a rejects file */
    size_t raw_len;
    const char *why; /* "csv: ...", "record: line longer than ..." */
} submit_record_t;

/*  Waits until fd (the input) is readable, doing the caller's work
 *  meanwhile. Returns 0 to read, or a negative AMITY_E* code that stops
 *  the reading (submit_input_next then returns it). */
typedef int (*submit_wait_fn)(void *arg, int fd);

submit_format_t submit_format_of(const char *path);
/*  Opens path ("-": stdin). Returns 0, AMITY_EIO (errno set), AMITY_ENOMEM. */
int submit_input_open(submit_input_t **out, const char *path, submit_format_t format);
void submit_input_destroy(submit_input_t **self_p);
/*  Makes every read of an input that could block (not a regular file)
 *  first call fn(arg, fd) (NULL: just read). */
void submit_input_set_wait(submit_input_t *self, submit_wait_fn fn, void *arg);
/*  Returns 1 with *rec filled (lent until the next call), 0 at the end,
 *  AMITY_EIO (errno set), AMITY_ENOMEM, or the code the wait function
 *  stopped the reading with. Blank lines are skipped. */
int submit_input_next(submit_input_t *self, submit_record_t *rec);
/*  The record's id for reports, also when it was rejected before sending
 *  (a JSON object with a string "id"), else "-". */
void submit_record_id(const submit_record_t *rec, char *buf, size_t len);
/*  CSV: the header row as read (NULL before it was read, and for JSON). */
const char *submit_input_header(const submit_input_t *self, size_t *len);
/*  Records the input holds, estimated by counting lines (0 when it cannot
 *  be known cheaply: stdin, a pipe). */
uint64_t submit_input_estimate(const submit_input_t *self);

/*  ------------------------------------------------------------------
 *  Progress bar on stderr (a terminal): done/total, rate, time left
 */

typedef struct submit_progress submit_progress_t;

/*  NULL (and every call a no-op) when not enabled or out of memory. */
submit_progress_t *submit_progress_new(bool enabled);
void submit_progress_destroy(submit_progress_t **self_p); /* erases the bar */
/*  Starts a phase ("sending") of total records (0: unknown). */
void submit_progress_phase(submit_progress_t *self, const char *what, uint64_t total);
/*  done records so far; redraws at most 10 times a second. */
void submit_progress_set(submit_progress_t *self, uint64_t done);
/*  Erases the bar before other output; the next set draws it again. */
void submit_progress_hide(submit_progress_t *self);

/*  ------------------------------------------------------------------
 *  The file of rejected records, to be fixed and submitted again
 */

typedef struct {
    FILE *fp;         /* NULL: no file asked for */
    const char *path; /* for messages */
    char *header;     /* CSV: the header last written (heap) */
    size_t header_len;
    uint64_t n;  /* records written */
    bool failed; /* a write failed (reported once) */
} submit_rejects_t;

/*  Opens (truncating) path, or does nothing when path is NULL. Returns 0
 *  or -1 (reported). */
int submit_rejects_open(submit_rejects_t *r, const char *path);
/*  Writes one rejected record's original text (a line end added when it
 *  has none), preceded by header when header differs from the header last
 *  written (CSV: the header once, then the rows). */
void submit_rejects_add(submit_rejects_t *r, const char *raw, size_t raw_len, const char *header,
                        size_t header_len);
/*  Closes; returns 0 or -1 when anything could not be written (reported). */
int submit_rejects_close(submit_rejects_t *r);

#endif
