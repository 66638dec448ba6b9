/*  amity-subscribe: follows the totals under one or more prefixes and
 *  prints, line-buffered, {"seq":N,"snapshot":true,"totals":{...}} after
 *  every (re)sync (replace everything under the prefixes), then
 *  {"seq":N,"totals":{...}} per update (changed keys, absolute values).
 *  On a terminal (or with --table) it redraws a live table of the current
 *  totals instead, at most 10 times a second. Runs until SIGINT or SIGTERM
 *  (exit 0).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "amity/clock.h"
#include "amity/log.h"
#include "cli.h"
#include "table.h"

#define S_REDRAW_MS 100 /* at most 10 redraws a second */

static const char *s_summary =
    "  amity-subscribe [OPTIONS] [--table|--no-table] PREFIX...\n"
    "Follows the totals under each PREFIX and prints one JSON object per line:\n"
    "{\"seq\":N,\"snapshot\":true,\"totals\":{...}} after every (re)sync (replace\n"
    "everything under the prefixes), then {\"seq\":N,\"totals\":{...}} per update\n"
    "(changed keys, absolute values; money as decimal strings). On a terminal it\n"
    "shows a live table of the current totals instead (keys changed by the last\n"
    "update marked *), redrawn at most 10 times a second.\n"
    "  --table     the live table even when stdout is not a terminal\n"
    "  --no-table  JSON lines even on a terminal\n"
    "Runs until SIGINT or SIGTERM.";

static volatile sig_atomic_t s_stop;

static void
s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

/*  One key of the live table. */
typedef struct {
    char *key;     /* owned */
    int64_t value; /* current total */
    bool changed;  /* moved by the last update (or resync) */
} s_row_t;

/*  The live table's state. */
typedef struct {
    s_row_t *rows;      /* sorted by key */
    size_t n;           /* used */
    size_t cap;         /* allocated */
    bool synced;        /* a snapshot arrived */
    bool snapshot;      /* the last event was a (re)sync */
    uint64_t seq;       /* the last event's seq */
    int64_t when_ms;    /* when it arrived (wall clock) */
    size_t n_changed;   /* keys it changed */
    bool dirty;         /* to redraw */
    int64_t drawn_ms;   /* last redraw (monotonic) */
    amity_buf_t screen; /* the frame being built */
} s_view_t;

typedef struct {
    amity_buf_t line;      /* output line being built */
    bool broken;           /* stdout is gone */
    bool table;            /* live table instead of JSON lines */
    s_view_t view;         /* the table's state */
    char **prefixes;       /* for the table's heading */
    int n_prefixes;        /* their count */
    const char *notify_ep; /* for the heading while waiting */
} s_out_t;

static void
s_write(s_out_t *out, const void *p, size_t len)
{
    if (out->broken) {
        return;
    }
    if (fwrite(p, 1, len, stdout) != len || fflush(stdout) != 0) {
        out->broken = true;
    }
}

static void
s_rows_free(s_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(rows[i].key);
    }
    free(rows);
}

/*  Index of key in the sorted rows, or where it would go (*found false). */
static size_t
s_find(const s_view_t *v, const char *key, bool *found)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->rows[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

/*  A (re)sync: the picture is replaced; against an earlier one, the keys
 *  whose value moved are marked. */
static int
s_view_snapshot(s_view_t *v, const amity_total_t *t, size_t n)
{
    s_row_t *rows = calloc(n ? n : 1, sizeof(*rows));
    if (rows == NULL) {
        return AMITY_ENOMEM;
    }
    v->n_changed = 0;
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        size_t at = v->synced ? s_find(v, t[i].key, &found) : 0;
        rows[i].key = strdup(t[i].key);
        if (rows[i].key == NULL) {
            s_rows_free(rows, i);
            return AMITY_ENOMEM;
        }
        rows[i].value = t[i].value;
        rows[i].changed = v->synced && (!found || v->rows[at].value != t[i].value);
        v->n_changed += rows[i].changed ? 1 : 0;
    }
    s_rows_free(v->rows, v->n);
    v->rows = rows;
    v->n = n;
    v->cap = n ? n : 1;
    v->synced = true;
    return 0;
}

/*  An update: changed keys with their new values, inserted in order. */
static int
s_view_update(s_view_t *v, const amity_total_t *t, size_t n)
{
    for (size_t i = 0; i < v->n; i++) {
        v->rows[i].changed = false;
    }
    v->n_changed = 0;
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t at = s_find(v, t[i].key, &found);
        if (!found) {
            char *key = strdup(t[i].key);
            if (key == NULL) {
                return AMITY_ENOMEM;
            }
            if (v->n == v->cap) {
                size_t cap = v->cap ? v->cap * 2 : 64;
                s_row_t *rows = realloc(v->rows, cap * sizeof(*rows));
                if (rows == NULL) {
                    free(key);
                    return AMITY_ENOMEM;
                }
                v->rows = rows;
                v->cap = cap;
            }
            memmove(&v->rows[at + 1], &v->rows[at], (v->n - at) * sizeof(*v->rows));
            v->rows[at].key = key;
            v->rows[at].changed = false;
            v->n++;
        }
        v->rows[at].value = t[i].value;
        if (!v->rows[at].changed) {
            v->rows[at].changed = true;
            v->n_changed++;
        }
    }
    return 0;
}

/*  Rows of the terminal (0 when unknown: show every key). */
static size_t
s_term_rows(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0) {
        return ws.ws_row;
    }
    return 0;
}

/*  Clears the screen and draws the table: a heading line with the
 *  prefixes, the last event's seq and time, then key and value, the keys
 *  the last event changed marked "*". */
static void
s_draw(s_out_t *out)
{
    static const char *const head[3] = { "", "KEY", "VALUE" };
    s_view_t *v = &out->view;
    amity_table_t t;
    char line[512];
    size_t at = 0, rows, max_rows = 0;
    int rc = 0, n;

    amity_buf_reset(&v->screen);
    /* cursor home, clear screen */
    rc = amity_buf_append(&v->screen, "\x1b[H\x1b[2J", 7);
    n = snprintf(line, sizeof(line), "amity-subscribe ");
    at = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < out->n_prefixes && at < sizeof(line); i++) {
        n = snprintf(line + at, sizeof(line) - at, "%s\"%s\"", i ? ", " : "", out->prefixes[i]);
        at += n > 0 ? (size_t)n : 0;
    }
    if (at < sizeof(line) && !v->synced) {
        (void)snprintf(line + at, sizeof(line) - at, "  waiting for notify at %s ...",
                       out->notify_ep);
    } else if (at < sizeof(line)) {
        char when[32] = "";
        struct tm tm;
        time_t secs = (time_t)(v->when_ms / 1000);
        if (localtime_r(&secs, &tm) != NULL) {
            (void)strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
        }
        (void)snprintf(line + at, sizeof(line) - at,
                       "  seq %" PRIu64 " (%s) at %s  %zu keys, %zu changed (*)", v->seq,
                       v->snapshot ? "snapshot" : "update", when, v->n, v->n_changed);
    }
    if (rc == 0) {
        rc = amity_buf_append(&v->screen, line, strlen(line));
    }
    if (rc == 0) {
        rc = amity_buf_append(&v->screen, "\n\n", 2);
    }
    rows = s_term_rows();
    if (rows > 0) {
        /* heading, blank, table heading, rule, "... more" line */
        max_rows = rows > 6 ? rows - 6 : 1;
    }
    amity_table_init(&t, 3, 1u << 2);
    if (rc == 0 && v->synced) {
        rc = amity_table_row(&t, head);
        for (size_t i = 0; rc == 0 && i < v->n; i++) {
            char val[64];
            const char *row[3] = { v->rows[i].changed ? "*" : " ", v->rows[i].key, val };
            amity_table_value(v->rows[i].key, v->rows[i].value, val, sizeof(val));
            rc = amity_table_row(&t, row);
        }
        if (rc == 0) {
            rc = amity_table_render(&t, max_rows, &v->screen);
        }
    }
    amity_table_clear(&t);
    if (rc != 0) {
        amity_log_error("out of memory drawing the table");
        return;
    }
    s_write(out, v->screen.data, v->screen.len);
    v->dirty = false;
    v->drawn_ms = amity_clock_mono_ms();
}

static void
s_on_event(void *arg, amity_sub_event_t ev, uint64_t seq, const amity_total_t *t, size_t n)
{
    s_out_t *out = arg;
    char head[80];
    int len;

    if (out->broken) {
        return;
    }
    if (out->table) {
        s_view_t *v = &out->view;
        int rc = ev == AMITY_SUB_SNAPSHOT ? s_view_snapshot(v, t, n) : s_view_update(v, t, n);
        if (rc != 0) {
            amity_log_error("out of memory keeping the table");
            return;
        }
        v->snapshot = ev == AMITY_SUB_SNAPSHOT;
        v->seq = seq;
        v->when_ms = amity_clock_wall_ms();
        v->dirty = true;
        return;
    }
    amity_buf_reset(&out->line);
    len = snprintf(head, sizeof(head), "{\"seq\":%" PRIu64 "%s,\"totals\":", seq,
                   ev == AMITY_SUB_SNAPSHOT ? ",\"snapshot\":true" : "");
    if (amity_buf_append(&out->line, head, (size_t)len) != 0 ||
        amity_totals_json(t, n, false, &out->line) != 0 ||
        amity_buf_append(&out->line, "}\n", 2) != 0) {
        amity_log_error("out of memory formatting an update");
        return;
    }
    s_write(out, out->line.data, out->line.len);
}

/*  Moves --table and --no-table out of argv (compacting it); returns 1,
 *  0, or -1 when neither was given. */
static int
s_split_flags(int *argc, char **argv)
{
    int out = 1, table = -1;
    bool done = false;

    for (int i = 1; i < *argc; i++) {
        if (!done && strcmp(argv[i], "--") == 0) {
            done = true;
        } else if (!done && strcmp(argv[i], "--table") == 0) {
            table = 1;
            continue;
        } else if (!done && strcmp(argv[i], "--no-table") == 0) {
            table = 0;
            continue;
        }
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    return table;
}

int
main(int argc, char **argv)
{
    amity_cli_cfg_t cfg;
    amity_client_opts_t opts;
    amity_config_result_t r;
    amity_sub_t *sub = NULL;
    struct sigaction sa;
    s_out_t out;
    char **args;
    int n_args;
    int table;
    int rc;

    table = s_split_flags(&argc, argv);
    r = amity_cli_load("amity-subscribe", s_summary, "3000", &cfg, &opts, argc, argv, &args,
                       &n_args);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (n_args < 1) {
        (void)fprintf(stderr, "amity-subscribe: expected at least one PREFIX; see --help\n");
        amity_cli_free(&cfg);
        return AMITY_EXIT_CONFIG;
    }
    (void)setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);

    memset(&out, 0, sizeof(out));
    amity_buf_init(&out.line);
    amity_buf_init(&out.view.screen);
    out.table = table == 1 || (table == -1 && isatty(STDOUT_FILENO));
    out.prefixes = args;
    out.n_prefixes = n_args;
    out.notify_ep = opts.notify;
    rc = amity_sub_new(&sub, &opts, (const char *const *)args, (size_t)n_args, s_on_event, &out);
    if (rc != 0) {
        (void)fprintf(stderr, "amity-subscribe: %s\n", amity_strerror(rc));
        amity_buf_clear(&out.line);
        amity_buf_clear(&out.view.screen);
        amity_cli_free(&cfg);
        return rc == AMITY_EINVAL ? AMITY_EXIT_CONFIG : AMITY_EXIT_RUNTIME;
    }
    if (out.table) {
        s_draw(&out); /* "waiting for notify" until the first snapshot */
    }
    while (!s_stop && !out.broken) {
        int wait = 200;
        if (out.table && out.view.dirty) {
            int64_t due = out.view.drawn_ms + S_REDRAW_MS - amity_clock_mono_ms();
            if (due <= 0) {
                s_draw(&out);
            } else {
                wait = (int)due;
            }
        }
        rc = amity_sub_poll(sub, wait);
        if (rc != 0) {
            (void)fprintf(stderr, "amity-subscribe: %s\n", amity_strerror(rc));
            break;
        }
    }
    if (out.table && out.view.dirty && !out.broken) {
        s_draw(&out);
    }
    amity_sub_destroy(&sub);
    s_rows_free(out.view.rows, out.view.n);
    amity_buf_clear(&out.view.screen);
    amity_buf_clear(&out.line);
    amity_cli_free(&cfg);
    return rc == 0 ? 0 : AMITY_EXIT_RUNTIME;
}
