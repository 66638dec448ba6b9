/*  amity-submit progress: one line on stderr, redrawn in place with \r at
 *  most 10 times a second: what is happening, a bar and a percentage when
 *  the total is known, records done, the rate, and the time left. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amity/clock.h"
#include "submit.h"

#define S_REDRAW_MS 100
#define S_BAR_WIDTH 24

struct submit_progress {
    const char *what; /* the phase ("sending") */
    uint64_t total;   /* records in the phase (0: unknown) */
    uint64_t done;    /* records done */
    int64_t start_ms; /* when the phase began */
    int64_t drawn_ms; /* last redraw */
    bool visible;     /* the line is on the terminal */
};

submit_progress_t *
submit_progress_new(bool enabled)
{
    submit_progress_t *self;

    if (!enabled) {
        return NULL;
    }
    self = calloc(1, sizeof(*self));
    if (self != NULL) {
        self->what = "";
        self->start_ms = amity_clock_mono_ms();
    }
    return self;
}

void
submit_progress_hide(submit_progress_t *self)
{
    if (self == NULL || !self->visible) {
        return;
    }
    (void)fputs("\r\033[K", stderr);
    (void)fflush(stderr);
    self->visible = false;
    self->drawn_ms = 0; /* draw again at the next set */
}

void
submit_progress_destroy(submit_progress_t **self_p)
{
    submit_progress_t *self = *self_p;

    if (self == NULL) {
        return;
    }
    submit_progress_hide(self);
    free(self);
    *self_p = NULL;
}

void
submit_progress_phase(submit_progress_t *self, const char *what, uint64_t total)
{
    if (self == NULL) {
        return;
    }
    self->what = what;
    self->total = total;
    self->done = 0;
    self->start_ms = amity_clock_mono_ms();
    self->drawn_ms = 0;
}

/* "1:02:03" or "2:03" */
static void
s_duration(char *buf, size_t len, uint64_t s)
{
    if (s >= 3600) {
        (void)snprintf(buf, len, "%llu:%02llu:%02llu", (unsigned long long)(s / 3600),
                       (unsigned long long)(s / 60 % 60), (unsigned long long)(s % 60));
    } else {
        (void)snprintf(buf, len, "%llu:%02llu", (unsigned long long)(s / 60),
                       (unsigned long long)(s % 60));
    }
}

void
submit_progress_set(submit_progress_t *self, uint64_t done)
{
    char line[256];
    char bar[S_BAR_WIDTH + 1];
    char eta[32];
    int64_t now;
    double secs;
    double rate;
    uint64_t total;
    size_t filled;

    if (self == NULL) {
        return;
    }
    self->done = done;
    now = amity_clock_mono_ms();
    if (self->drawn_ms != 0 && now - self->drawn_ms < S_REDRAW_MS) {
        return;
    }
    self->drawn_ms = now;
    secs = (double)(now - self->start_ms) / 1000.0;
    rate = secs > 0.05 ? (double)done / secs : 0.0;
    total = self->total;
    if (total > 0 && done > total) {
        total = done; /* the count of lines was an estimate */
    }
    if (total > 0) {
        filled = (size_t)((double)S_BAR_WIDTH * (double)done / (double)total);
        memset(bar, '#', filled);
        memset(bar + filled, '.', S_BAR_WIDTH - filled);
        bar[S_BAR_WIDTH] = '\0';
        if (rate > 0.0) {
            s_duration(eta, sizeof(eta), (uint64_t)((double)(total - done) / rate + 0.5));
        } else {
            (void)snprintf(eta, sizeof(eta), "?");
        }
        (void)snprintf(line, sizeof(line),
                       "\r%s [%s] %3u%% %llu/%llu records, %.0f rec/s, %s left\033[K", self->what,
                       bar, (unsigned)(100.0 * (double)done / (double)total),
                       (unsigned long long)done, (unsigned long long)total, rate, eta);
    } else {
        s_duration(eta, sizeof(eta), (uint64_t)secs);
        (void)snprintf(line, sizeof(line), "\r%s %llu records, %.0f rec/s, %s elapsed\033[K",
                       self->what, (unsigned long long)done, rate, eta);
    }
    (void)fputs(line, stderr);
    (void)fflush(stderr);
    self->visible = true;
}
