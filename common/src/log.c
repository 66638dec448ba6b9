/*  log: one line per event on stderr (time, level, service, pid, file:line,
 *  message), written with a single write(2) so lines from several processes
 *  sharing a pipe never interleave. Under systemd the time is left to the
 *  journal and each line starts with its sd-daemon priority "<N>".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "amity/err.h"
#include "amity/log.h"

/*  A write of at most PIPE_BUF (4096 on Linux) bytes to a pipe is atomic,
 *  so one line never tears even when daemons share the journal's pipe. */
#define S_LINE_MAX 4096
#define S_ELLIPSIS "..."

amity_log_level_t amity_log_threshold = AMITY_LOG_INFO;

static const char *s_service = "amity";
static int s_journal = -1; /* -1 not checked yet, 0 plain stderr, 1 journald stream */

static const char *const s_level_names[] = { "error", "warn", "info", "debug" };
static const char *const s_level_labels[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const char s_level_prio[] = { '3', '4', '6', '7' };

/*  systemd.exec(5): JOURNAL_STREAM is "DEV:INODE" of the stream connected
 *  to the journal; it is inherited by children whose stderr may be
 *  redirected, so only trust it when it names our stderr. */
static int
s_journal_detect(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    if (!env || !*env) {
        return 0;
    }
    char *end = NULL;
    errno = 0;
    unsigned long long dev = strtoull(env, &end, 10);
    if (errno || end == env || *end != ':') {
        return 0;
    }
    const char *p = end + 1;
    unsigned long long ino = strtoull(p, &end, 10);
    if (errno || end == p || *end != '\0') {
        return 0;
    }
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0) {
        return 0;
    }
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void
amity_log_init(const char *service)
{
    if (service && *service) {
        s_service = service;
    }
    s_journal = s_journal_detect();
}

int
amity_log_set_level(const char *name)
{
    if (!name) {
        return AMITY_EINVAL;
    }
    for (int i = 0; i <= (int)AMITY_LOG_DEBUG; i++) {
        if (strcasecmp(name, s_level_names[i]) == 0) {
            amity_log_threshold = (amity_log_level_t)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        amity_log_threshold = AMITY_LOG_WARN;
        return 0;
    }
    return AMITY_EINVAL;
}

/*  Line under construction: bytes [0, len) of a S_LINE_MAX buffer whose
 *  last byte is kept for the newline. */
typedef struct {
    char data[S_LINE_MAX]; /* the line */
    size_t len;            /* bytes used, excluding the final newline */
    int truncated;         /* some text did not fit */
} s_line_t;

static void s_line_printf(s_line_t *line, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_line_vprintf(s_line_t *line, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
s_line_vprintf(s_line_t *line, const char *fmt, va_list ap)
{
    size_t room = (S_LINE_MAX - 1) - line->len; /* +1 for vsnprintf's NUL, -1 newline */
    if (line->truncated || room <= 1) {
        line->truncated = 1;
        return;
    }
    int n = vsnprintf(line->data + line->len, room, fmt, ap);
    if (n < 0) {
        return;
    }
    if ((size_t)n >= room) {
        line->len += room - 1;
        line->truncated = 1;
    } else {
        line->len += (size_t)n;
    }
}

static void
s_line_printf(s_line_t *line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_line_vprintf(line, fmt, ap);
    va_end(ap);
}

/*  Keeps the message on one line: control characters (which could forge a
 *  second log line from wire input) become spaces or '?'. */
static void
s_line_sanitize(s_line_t *line, size_t from)
{
    for (size_t i = from; i < line->len; i++) {
        unsigned char c = (unsigned char)line->data[i];
        if (c == '\n' || c == '\r' || c == '\t') {
            line->data[i] = ' ';
        } else if (c < 0x20 || c == 0x7f) {
            line->data[i] = '?';
        }
    }
}

/*  Cuts a truncated line so that it ends in "..." without splitting a
 *  UTF-8 sequence. */
static void
s_line_ellipsize(s_line_t *line, size_t floor)
{
    size_t keep_max = (S_LINE_MAX - 1) - (sizeof(S_ELLIPSIS) - 1);
    size_t cut = line->len < keep_max ? line->len : keep_max;
    while (cut > floor && ((unsigned char)line->data[cut] & 0xC0) == 0x80) {
        cut--; /* data[cut] is a continuation byte: drop its whole character */
    }
    memcpy(line->data + cut, S_ELLIPSIS, sizeof(S_ELLIPSIS) - 1);
    line->len = cut + sizeof(S_ELLIPSIS) - 1;
}

static void
s_write_all(const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, data, len);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* nowhere left to report it */
        }
        data += n;
        len -= (size_t)n;
    }
}

void
amity_log_write(amity_log_level_t level, const char *file, int line, int with_errno,
                const char *fmt, ...)
{
    int saved_errno = errno;
    s_line_t out;
    out.len = 0;
    out.truncated = 0;

    if ((int)level < 0 || level > AMITY_LOG_DEBUG) {
        level = AMITY_LOG_ERROR;
    }
    if (s_journal < 0) {
        s_journal = s_journal_detect();
    }
    if (s_journal) {
        s_line_printf(&out, "<%c>", s_level_prio[level]);
    } else {
        struct timespec ts;
        struct tm tm;
        if (clock_gettime(CLOCK_REALTIME, &ts) == 0 && gmtime_r(&ts.tv_sec, &tm)) {
            s_line_printf(&out, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          (int)(ts.tv_nsec / 1000000));
        }
    }
    const char *base = file ? strrchr(file, '/') : NULL;
    base = base ? base + 1 : (file ? file : "?");
    s_line_printf(&out, "%s %s[%ld] %s:%d: ", s_level_labels[level], s_service, (long)getpid(),
                  base, line);

    size_t message_at = out.len;
    va_list ap;
    va_start(ap, fmt);
    s_line_vprintf(&out, fmt, ap);
    va_end(ap);
    if (with_errno) {
        char reason[256];
        if (strerror_r(saved_errno, reason, sizeof(reason)) != 0) {
            (void)snprintf(reason, sizeof(reason), "errno %d", saved_errno);
        }
        s_line_printf(&out, ": %s", reason);
    }
    s_line_sanitize(&out, message_at);
    if (out.truncated) {
        s_line_ellipsize(&out, message_at);
    }
    out.data[out.len++] = '\n';
    s_write_all(out.data, out.len);
    errno = saved_errno;
}

static long long
s_mono_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        return 1;
    }
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return ms > 0 ? ms : 1; /* 0 is the "never logged" mark */
}

int
amity_log_ratelimit(long long *last_ms, unsigned long *n_suppressed, int per_s)
{
    AMITY_ASSERT(last_ms && n_suppressed);
    long long now = s_mono_ms();
    if (*last_ms != 0 && per_s > 0 && now - *last_ms < (long long)per_s * 1000) {
        (*n_suppressed)++;
        return 0;
    }
    if (*n_suppressed > 0) {
        amity_log_warn("%lu similar messages suppressed in the last %lld ms", *n_suppressed,
                       now - *last_ms);
        *n_suppressed = 0;
    }
    *last_ms = now;
    return 1;
}
