/*  config: options from an INI file < environment < command-line flags.
 *
 *  A program describes its options in a table; amity_config_load fills a
 *  struct from the table's defaults, then the INI file (--config FILE, or
 *  AMITY_CONFIG, or none), then AMITY_<SECTION>_<NAME> variables, then
 *  --name VALUE / --name=VALUE flags. It handles --help, --version and
 *  --check-config itself. Every bad line, value or flag is reported with
 *  its source ("amity.ini:12: ingest.hwm: 'x' is not an integer").
 */
#ifndef AMITY_CONFIG_H
#define AMITY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AMITY_VERSION "0.1.0"

typedef enum {
    AMITY_OPT_STR,  /**< char * (heap, freed by amity_config_free) */
    AMITY_OPT_INT,  /**< int64_t, range checked */
    AMITY_OPT_BOOL, /**< bool: true/false/yes/no/on/off/1/0 */
    AMITY_OPT_LIST, /**< amity_strlist_t: comma-separated, each trimmed */
} amity_opt_type_t;

typedef struct {
    size_t n;     /**< number of items */
    char **items; /**< heap strings */
} amity_strlist_t;

typedef struct {
    const char *name; /**< flag and key name: "bind" -> --bind, key "bind" */
    amity_opt_type_t type;
    size_t offset;    /**< offsetof(cfg struct, field) */
    const char *def;  /**< default as text (NULL: empty string / empty list / 0) */
    int64_t min, max; /**< INT range (ignored when min == max == 0) */
    const char *help; /**< one line for --help */
} amity_opt_t;

typedef struct {
    const char *program; /**< "amity-ingest" */
    const char *section; /**< INI section and env prefix: "ingest" -> [ingest], AMITY_INGEST_* */
    const char *summary; /**< one line for --help */
    const amity_opt_t *opts;
    size_t n_opts;
    bool allow_args; /**< positional arguments allowed (clients) */
    /**< the program's own checks of the loaded values (endpoints, files,
     *   combinations), run before --check-config reports OK and before the
     *   program runs; prints its errors and returns non-zero to refuse.
     *   NULL: none. */
    int (*check)(const void *cfg);
} amity_config_spec_t;

typedef enum {
    AMITY_CONFIG_RUN = 0, /**< go on */
    AMITY_CONFIG_EXIT_OK, /**< --help, --version, --check-config passed: exit 0 */
    AMITY_CONFIG_ERROR,   /**< error printed: exit 2 */
} amity_config_result_t;

/*  Loads options into cfg (a struct described by spec). Positional
 *  arguments (when allowed) are returned in *args (borrowed from argv),
 *  their count in *n_args (args and n_args may be NULL); to do so argv's
 *  entries are reordered in place. Errors are printed to stderr, --help,
 *  --version and --check-config output to stdout. Flags: --name VALUE,
 *  --name=VALUE, for BOOL also --name (true) and --no-name (false); "--"
 *  ends the options. An option named "log-level" (see AMITY_OPT_LOG_LEVEL)
 *  is checked and applied with amity_log_set_level.
 *  cfg's previous contents are ignored (not freed). Unless the result is
 *  AMITY_CONFIG_RUN, cfg is already freed when this returns (calling
 *  amity_config_free again is harmless). */
amity_config_result_t amity_config_load(const amity_config_spec_t *spec, void *cfg, int argc,
                                        char **argv, char ***args, int *n_args);

/*  The option every program has, with the name the loader recognises:
 *  { AMITY_OPT_LOG_LEVEL(my_cfg_t, log_level), ... } with a char * field. */
#define AMITY_OPT_LOG_LEVEL(type, field)                                                           \
    {                                                                                              \
        "log-level", AMITY_OPT_STR, offsetof(type, field), "info", 0, 0,                           \
            "log level: error, warn, info or debug"                                                \
    }

/*  Frees the STR and LIST fields of cfg. Idempotent. */
void amity_config_free(const amity_config_spec_t *spec, void *cfg);

/*  Exit codes shared by daemons and tools. */
#define AMITY_EXIT_OK      0
#define AMITY_EXIT_RUNTIME 1
#define AMITY_EXIT_CONFIG  2

#endif
