/*  amity-stack: the whole pipeline on one machine, for development, demos
 *  and tests. Starts amity-aggregate x S, amity-notify, amity-validate x N
 *  and amity-ingest on loopback, waits until every endpoint accepts
 *  connections, prints the endpoints and "ready" on stdout, restarts a
 *  daemon that dies (with a backoff), and on SIGINT/SIGTERM stops them in
 *  pipeline order (ingest first, aggregate last) within 10 s.
 *
 *  The daemons' stderr (their log lines, each naming its service) passes
 *  through to ours; their stdout goes to our stderr too, so our stdout
 *  carries only the endpoints.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "amity/clock.h"
#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"

#define S_ARGS_MAX       20
#define S_STOP_BUDGET_MS 10000 /* SIGTERM to SIGKILL */
#define S_BACKOFF_MIN_MS 200
#define S_BACKOFF_MAX_MS 10000
#define S_STABLE_MS      30000 /* ran this long: the backoff starts over */
#define S_READY_WARN_MS  20000

typedef enum { S_STAGE_INGEST = 0, S_STAGE_VALIDATE, S_STAGE_NOTIFY, S_STAGE_AGGREGATE } s_stage_t;

typedef struct {
    char name[32];          /* "aggregate-0", "validate-1", "notify", "ingest" */
    char *argv[S_ARGS_MAX]; /* exec argv, NULL-terminated (owned strings) */
    s_stage_t stage;        /* shutdown order */
    pid_t pid;              /* running child, 0 when none */
    int64_t started_ms;     /* when the running child started */
    int64_t restart_ms;     /* > 0: start again at this time */
    int backoff_ms;         /* next restart delay */
    unsigned restarts;      /* restarts so far */
} s_proc_t;

typedef struct {
    char *state;        /* state directory */
    int64_t validators; /* N */
    int64_t shards;     /* S */
    char *bin_dir;      /* where the daemons are ("" = our own directory) */
    int64_t base_port;  /* P */
    bool sync;          /* false: aggregates get --no-sync */
    char *log_level;    /* ours */
} s_cfg_t;

static const amity_opt_t s_opts[] = {
    { "state", AMITY_OPT_STR, offsetof(s_cfg_t, state), NULL, 0, 0,
      "state directory (required): DIR/shard-K holds shard K's LMDB" },
    { "validators", AMITY_OPT_INT, offsetof(s_cfg_t, validators), "1", 1, 64,
      "amity-validate processes" },
    { "shards", AMITY_OPT_INT, offsetof(s_cfg_t, shards), "1", 1, 64, "aggregate shards" },
    { "bin-dir", AMITY_OPT_STR, offsetof(s_cfg_t, bin_dir), NULL, 0, 0,
      "directory of the daemons (default: this program's own)" },
    { "base-port", AMITY_OPT_INT, offsetof(s_cfg_t, base_port), "7700", 1, 64000,
      "ingest P, work P+1, notify P+2, shard K at P+10+10K..P+13+10K" },
    { "sync", AMITY_OPT_BOOL, offsetof(s_cfg_t, sync), "true", 0, 0,
      "aggregates commit durably (--no-sync: benchmarks and tests only)" },
    { "log-level", AMITY_OPT_STR, offsetof(s_cfg_t, log_level), "info", 0, 0,
      "error|warn|info|debug (this program's)" },
};

static const amity_config_spec_t s_spec = {
    "amity-stack",
    "stack",
    "Runs the whole pipeline on loopback: amity-aggregate x --shards, amity-notify,\n"
    "amity-validate x --validators, amity-ingest. Prints the endpoints and a line\n"
    "'ready' on stdout once every endpoint accepts connections; the daemons' logs\n"
    "go to stderr. Restarts a daemon that dies; SIGINT/SIGTERM stops all (ingest\n"
    "first, aggregate last; SIGKILL after 10 s) and exits 0.",
    s_opts,
    sizeof(s_opts) / sizeof(s_opts[0]),
    false,
    NULL,
};

/*  ------------------------------------------------------------------
 *  The process table
 */

static s_proc_t *s_procs;
static size_t s_n_procs;

static char *s_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
s_fmt(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    s = malloc((size_t)n + 1);
    if (s == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* Adds a process; argv items after the program are given as a NULL-ended list. */
static int
s_add(const char *bin_dir, const char *name, s_stage_t stage, const char *program, ...)
{
    s_proc_t *p = &s_procs[s_n_procs];
    va_list ap;
    const char *arg;
    int n = 0;

    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->stage = stage;
    p->backoff_ms = S_BACKOFF_MIN_MS;
    p->argv[n++] = s_fmt("%s/%s", bin_dir, program);
    va_start(ap, program);
    while ((arg = va_arg(ap, const char *)) != NULL && n < S_ARGS_MAX - 1) {
        p->argv[n++] = strdup(arg);
    }
    va_end(ap);
    p->argv[n] = NULL;
    s_n_procs++;
    for (int i = 0; i < n; i++) {
        if (p->argv[i] == NULL) {
            return AMITY_ENOMEM;
        }
    }
    return 0;
}

static void
s_free_procs(void)
{
    for (size_t i = 0; i < s_n_procs; i++) {
        for (int k = 0; k < S_ARGS_MAX && s_procs[i].argv[k] != NULL; k++) {
            free(s_procs[i].argv[k]);
        }
    }
    free(s_procs);
    s_procs = NULL;
    s_n_procs = 0;
}

static int
s_spawn(s_proc_t *p)
{
    pid_t parent = getpid();
    pid_t pid;

    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
        amity_log_errno("cannot fork for %s", p->name);
        return AMITY_EIO;
    }
    if (pid == 0) {
        sigset_t none;
        /* our own process group: a terminal's Ctrl-C reaches only the
         * stack, which stops the daemons in order; and die with us */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) {
            _exit(1);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0) {
            _exit(127);
        }
        execv(p->argv[0], p->argv);
        fprintf(stderr, "amity-stack: cannot run %s: %s\n", p->argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    p->started_ms = amity_clock_mono_ms();
    p->restart_ms = 0;
    amity_log_debug("started %s pid=%d", p->name, (int)pid);
    return 0;
}

static s_proc_t *
s_find_pid(pid_t pid)
{
    for (size_t i = 0; i < s_n_procs; i++) {
        if (s_procs[i].pid == pid) {
            return &s_procs[i];
        }
    }
    return NULL;
}

static void
s_describe(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    } else {
        snprintf(buf, len, "stopped (status 0x%x)", (unsigned)status);
    }
}

/*  Reaps every exited child. While running, schedules restarts; returns
 *  AMITY_EINVAL when a daemon reported a usage/config error (exit 2) or
 *  could not be executed (127): restarting would not help. */
static int
s_reap(bool stopping)
{
    int fatal = 0;
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        s_proc_t *p = s_find_pid(pid);
        char what[96];
        int64_t now = amity_clock_mono_ms();

        if (p == NULL) {
            continue;
        }
        p->pid = 0;
        s_describe(status, what, sizeof(what));
        if (stopping) {
            amity_log_info("%s %s", p->name, what);
            continue;
        }
        if (WIFEXITED(status) &&
            (WEXITSTATUS(status) == AMITY_EXIT_CONFIG || WEXITSTATUS(status) == 127)) {
            amity_log_error("%s %s (a usage or configuration error): not restarting it; "
                            "stopping the stack",
                            p->name, what);
            fatal = AMITY_EINVAL;
            continue;
        }
        if (now - p->started_ms >= S_STABLE_MS) {
            p->backoff_ms = S_BACKOFF_MIN_MS;
        }
        p->restart_ms = now + p->backoff_ms;
        p->restarts++;
        amity_log_warn("%s (pid %d) %s unexpectedly; restarting it in %d ms (restart %u)", p->name,
                       (int)pid, what, p->backoff_ms, p->restarts);
        p->backoff_ms *= 2;
        if (p->backoff_ms > S_BACKOFF_MAX_MS) {
            p->backoff_ms = S_BACKOFF_MAX_MS;
        }
    }
    return fatal;
}

/*  ------------------------------------------------------------------
 *  Readiness: every endpoint accepts a TCP connection
 */

static bool
s_port_open(int port)
{
    struct sockaddr_in sa;
    bool open_ = false;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        return false;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    open_ = connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return open_;
}

static bool
s_all_ready(const s_cfg_t *cfg, int *first_closed)
{
    int p = (int)cfg->base_port;

    for (int port = p; port <= p + 2; port++) {
        if (!s_port_open(port)) {
            *first_closed = port;
            return false;
        }
    }
    for (int k = 0; k < cfg->shards; k++) {
        for (int i = 0; i < 4; i++) {
            int port = p + 10 + 10 * k + i;
            if (!s_port_open(port)) {
                *first_closed = port;
                return false;
            }
        }
    }
    return true;
}

/*  ------------------------------------------------------------------
 *  Stopping
 */

static void
s_signal_stage(s_stage_t stage, int sig)
{
    for (size_t i = 0; i < s_n_procs; i++) {
        if (s_procs[i].stage == stage && s_procs[i].pid > 0) {
            kill(s_procs[i].pid, sig);
        }
    }
}

static bool
s_stage_running(s_stage_t stage)
{
    for (size_t i = 0; i < s_n_procs; i++) {
        if (s_procs[i].stage == stage && s_procs[i].pid > 0) {
            return true;
        }
    }
    return false;
}

/* Waits up to until_ms for a signal or a child; returns the signal or 0. */
static int
s_wait(const sigset_t *set, int64_t until_ms)
{
    struct timespec ts;
    int64_t left = until_ms - amity_clock_mono_ms();
    int sig;

    if (left < 0) {
        left = 0;
    }
    if (left > 100) {
        left = 100;
    }
    ts.tv_sec = (time_t)(left / 1000);
    ts.tv_nsec = (long)(left % 1000) * 1000000L;
    sig = sigtimedwait(set, NULL, &ts);
    return sig < 0 ? 0 : sig;
}

/*  Stops everything: SIGTERM stage by stage (ingest, validate, notify,
 *  aggregate), each stage waited for in turn, SIGKILL for whatever still
 *  runs after S_STOP_BUDGET_MS or at a second signal. */
static void
s_stop_all(const sigset_t *set)
{
    int64_t deadline = amity_clock_mono_ms() + S_STOP_BUDGET_MS;
    bool kill_now = false;

    for (size_t i = 0; i < s_n_procs; i++) {
        s_procs[i].restart_ms = 0;
    }
    for (int stage = S_STAGE_INGEST; stage <= S_STAGE_AGGREGATE && !kill_now; stage++) {
        s_signal_stage((s_stage_t)stage, SIGTERM);
        while (s_stage_running((s_stage_t)stage)) {
            int sig = s_wait(set, deadline);
            if (sig == SIGINT || sig == SIGTERM) {
                amity_log_warn("second signal: killing every daemon now");
                kill_now = true;
                break;
            }
            (void)s_reap(true);
            if (amity_clock_mono_ms() >= deadline) {
                kill_now = true;
                break;
            }
        }
    }
    if (kill_now) {
        for (size_t i = 0; i < s_n_procs; i++) {
            if (s_procs[i].pid > 0) {
                amity_log_warn("%s (pid %d) did not stop in time: SIGKILL", s_procs[i].name,
                               (int)s_procs[i].pid);
                kill(s_procs[i].pid, SIGKILL);
            }
        }
        for (size_t i = 0; i < s_n_procs; i++) {
            if (s_procs[i].pid > 0) {
                int status;
                if (waitpid(s_procs[i].pid, &status, 0) > 0) {
                    s_procs[i].pid = 0;
                }
            }
        }
    }
}

/*  ------------------------------------------------------------------
 *  main
 */

static int
s_self_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;

    if (n <= 0) {
        return AMITY_EIO;
    }
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (slash == NULL) {
        return AMITY_EIO;
    }
    *slash = '\0';
    return 0;
}

static int
s_build(const s_cfg_t *cfg, const char *bin)
{
    int p = (int)cfg->base_port;
    char shards[64 * 32];
    char ingest[64];
    char work[64];
    char notify[64];
    size_t used = 0;
    int rc = 0;

    s_procs = calloc((size_t)(cfg->shards + cfg->validators + 2), sizeof(*s_procs));
    if (s_procs == NULL) {
        return AMITY_ENOMEM;
    }
    shards[0] = '\0';
    for (int k = 0; k < cfg->shards; k++) {
        used += (size_t)snprintf(shards + used, sizeof(shards) - used, "%stcp://127.0.0.1:%d",
                                 k > 0 ? "," : "", p + 10 + 10 * k);
    }
    snprintf(ingest, sizeof(ingest), "tcp://127.0.0.1:%d", p);
    snprintf(work, sizeof(work), "tcp://127.0.0.1:%d", p + 1);
    snprintf(notify, sizeof(notify), "tcp://127.0.0.1:%d", p + 2);
    for (int k = 0; k < cfg->shards && rc == 0; k++) {
        char name[32];
        char index[16];
        char bind[64];
        char state[PATH_MAX];
        snprintf(name, sizeof(name), "aggregate-%d", k);
        snprintf(index, sizeof(index), "%d", k);
        snprintf(bind, sizeof(bind), "tcp://127.0.0.1:%d", p + 10 + 10 * k);
        snprintf(state, sizeof(state), "%s/shard-%d", cfg->state, k);
        if (cfg->sync) {
            rc = s_add(bin, name, S_STAGE_AGGREGATE, "amity-aggregate", "--index", index, "--bind",
                       bind, "--state", state, (const char *)NULL);
        } else {
            rc = s_add(bin, name, S_STAGE_AGGREGATE, "amity-aggregate", "--index", index, "--bind",
                       bind, "--state", state, "--no-sync", (const char *)NULL);
        }
    }
    if (rc == 0) {
        rc = s_add(bin, "notify", S_STAGE_NOTIFY, "amity-notify", "--bind", notify, "--shards",
                   shards, (const char *)NULL);
    }
    for (int i = 0; i < cfg->validators && rc == 0; i++) {
        char name[32];
        snprintf(name, sizeof(name), "validate-%d", i);
        rc = s_add(bin, name, S_STAGE_VALIDATE, "amity-validate", "--ingest", work, "--shards",
                   shards, (const char *)NULL);
    }
    if (rc == 0) {
        rc = s_add(bin, "ingest", S_STAGE_INGEST, "amity-ingest", "--bind", ingest, "--work", work,
                   "--shards", shards, (const char *)NULL);
    }
    return rc;
}

static void
s_print_endpoints(const s_cfg_t *cfg)
{
    int p = (int)cfg->base_port;

    printf("ingest tcp://127.0.0.1:%d\n", p);
    printf("work tcp://127.0.0.1:%d\n", p + 1);
    printf("notify tcp://127.0.0.1:%d\n", p + 2);
    printf("shards ");
    for (int k = 0; k < cfg->shards; k++) {
        printf("%stcp://127.0.0.1:%d", k > 0 ? "," : "", p + 10 + 10 * k);
    }
    printf("\nstate %s\nready\n", cfg->state);
    fflush(stdout);
}

int
main(int argc, char **argv)
{
    s_cfg_t cfg;
    sigset_t set;
    char self_dir[PATH_MAX];
    const char *bin;
    amity_config_result_t r;
    bool ready = false;
    bool warned = false;
    int64_t start_ms;
    int exit_code = 0;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    amity_log_init("amity-stack");
    r = amity_config_load(&s_spec, &cfg, argc, argv, NULL, NULL);
    if (r != AMITY_CONFIG_RUN) {
        return r == AMITY_CONFIG_EXIT_OK ? 0 : AMITY_EXIT_CONFIG;
    }
    if (cfg.state == NULL || cfg.state[0] == '\0') {
        fprintf(stderr, "amity-stack: --state DIR is required (see --help)\n");
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_CONFIG;
    }
    if (cfg.base_port + 10 + 10 * cfg.shards + 3 > 65535) {
        fprintf(stderr, "amity-stack: --base-port %lld leaves no room for %lld shards\n",
                (long long)cfg.base_port, (long long)cfg.shards);
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_CONFIG;
    }
    if (cfg.bin_dir != NULL && cfg.bin_dir[0] != '\0') {
        bin = cfg.bin_dir;
    } else if (s_self_dir(self_dir, sizeof(self_dir)) == 0) {
        bin = self_dir;
    } else {
        fprintf(stderr, "amity-stack: cannot find my own directory; give --bin-dir\n");
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_CONFIG;
    }
    if (mkdir(cfg.state, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "amity-stack: cannot create %s: %s\n", cfg.state, strerror(errno));
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_RUNTIME;
    }
    rc = s_build(&cfg, bin);
    if (rc != 0) {
        fprintf(stderr, "amity-stack: %s\n", amity_strerror(rc));
        s_free_procs();
        amity_config_free(&s_spec, &cfg);
        return AMITY_EXIT_RUNTIME;
    }
    for (size_t i = 0; i < s_n_procs; i++) {
        if (access(s_procs[i].argv[0], X_OK) != 0) {
            fprintf(stderr, "amity-stack: %s: %s\n", s_procs[i].argv[0], strerror(errno));
            s_free_procs();
            amity_config_free(&s_spec, &cfg);
            return AMITY_EXIT_CONFIG;
        }
    }

    /* signals and children are taken synchronously with sigtimedwait */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* in pipeline order from the state outwards: aggregate, notify, validate, ingest */
    for (size_t i = 0; i < s_n_procs; i++) {
        if (s_spawn(&s_procs[i]) != 0) {
            s_procs[i].restart_ms = amity_clock_mono_ms() + s_procs[i].backoff_ms;
        }
    }
    amity_log_info("started %zu daemons from %s (state %s)", s_n_procs, bin, cfg.state);
    start_ms = amity_clock_mono_ms();

    for (;;) {
        int sig = s_wait(&set, amity_clock_mono_ms() + 100);
        int64_t now;

        if (sig == SIGINT || sig == SIGTERM) {
            amity_log_info("%s: stopping the daemons (ingest first, aggregate last)",
                           strsignal(sig));
            break;
        }
        if (s_reap(false) != 0) {
            exit_code = AMITY_EXIT_RUNTIME;
            break;
        }
        now = amity_clock_mono_ms();
        for (size_t i = 0; i < s_n_procs; i++) {
            if (s_procs[i].pid == 0 && s_procs[i].restart_ms > 0 && now >= s_procs[i].restart_ms) {
                if (s_spawn(&s_procs[i]) != 0) {
                    s_procs[i].restart_ms = now + S_BACKOFF_MAX_MS;
                }
            }
        }
        if (!ready) {
            int closed = 0;
            if (s_all_ready(&cfg, &closed)) {
                ready = true;
                s_print_endpoints(&cfg);
                amity_log_info("ready in %lld ms", (long long)(now - start_ms));
            } else if (!warned && now - start_ms > S_READY_WARN_MS) {
                warned = true;
                amity_log_warn("not ready after %d s: nothing listens on 127.0.0.1:%d yet",
                               S_READY_WARN_MS / 1000, closed);
            }
        }
    }
    s_stop_all(&set);
    amity_log_info("stopped");
    s_free_procs();
    amity_config_free(&s_spec, &cfg);
    return exit_code;
}
