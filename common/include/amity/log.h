/*  log: one line per event on stderr: time, level, service, pid, file:line,
 *  message (key=value context by convention). Under systemd (JOURNAL_STREAM
 *  set) each line starts with the journald priority prefix "<N>". */
#ifndef AMITY_LOG_H
#define AMITY_LOG_H

#include <stdarg.h>

typedef enum {
    AMITY_LOG_ERROR = 0,
    AMITY_LOG_WARN,
    AMITY_LOG_INFO,
    AMITY_LOG_DEBUG
} amity_log_level_t;

extern amity_log_level_t amity_log_threshold;

/*  Sets the service name printed on every line (borrowed; keep it static)
 *  and checks whether stderr is the journal (JOURNAL_STREAM names its
 *  device:inode): then lines carry "<N>" priorities instead of a time. */
void amity_log_init(const char *service);
/*  Parses "error|warn|info|debug"; returns 0 or AMITY_EINVAL. */
int amity_log_set_level(const char *name);

void amity_log_write(amity_log_level_t level, const char *file, int line, int with_errno,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define AMITY_LOG_(lvl, errn, ...)                                                                 \
    do {                                                                                           \
        if ((lvl) <= amity_log_threshold) {                                                        \
            amity_log_write((lvl), __FILE__, __LINE__, (errn), __VA_ARGS__);                       \
        }                                                                                          \
    } while (0)

#define amity_log_error(...) AMITY_LOG_(AMITY_LOG_ERROR, 0, __VA_ARGS__)
#define amity_log_warn(...)  AMITY_LOG_(AMITY_LOG_WARN, 0, __VA_ARGS__)
#define amity_log_info(...)  AMITY_LOG_(AMITY_LOG_INFO, 0, __VA_ARGS__)
#define amity_log_debug(...) AMITY_LOG_(AMITY_LOG_DEBUG, 0, __VA_ARGS__)
/*  Appends ": strerror(errno)". */
#define amity_log_errno(...) AMITY_LOG_(AMITY_LOG_ERROR, 1, __VA_ARGS__)

/*  Rate-limited warning: at most one line per `per_s` seconds per call
 *  site; the line says how many were suppressed. */
#define amity_log_warn_rl(per_s, ...)                                                              \
    do {                                                                                           \
        static long long amity_rl_last_;                                                           \
        static unsigned long amity_rl_n_;                                                          \
        if (amity_log_ratelimit(&amity_rl_last_, &amity_rl_n_, (per_s))) {                         \
            AMITY_LOG_(AMITY_LOG_WARN, 0, __VA_ARGS__);                                            \
        }                                                                                          \
    } while (0)

/*  True when a line may be written now; counts suppressed ones in *n and
 *  logs their count when it allows the next. */
int amity_log_ratelimit(long long *last_ms, unsigned long *n_suppressed, int per_s);

#endif
