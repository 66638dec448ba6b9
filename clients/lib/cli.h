/*  cli: what the amity-submit, -query and -subscribe programs share: the
 *  [client] option table (one table, so one config file serves them all),
 *  and loading it into amity_client_opts_t. Not installed. */
#ifndef AMITY_CLI_H
#define AMITY_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "amity/client.h"
#include "amity/config.h"

/*  The [client] section. */
typedef struct {
    char *ingest;       /* ingest endpoint */
    char *notify;       /* notify endpoint */
    char *office;       /* development mode office */
    int64_t window;     /* records in flight */
    int64_t batch;      /* records per message */
    int64_t timeout_ms; /* submit: resend after; query/subscribe: wait for notify */
    int64_t deadline_s; /* submit: give up after this long without an answer */
    char *key;          /* secure mode: our secret certificate */
    char *server_key;   /* secure mode: the server's public certificate */
    char *log_level;    /* error|warn|info|debug */
} amity_cli_cfg_t;

/*  Loads the [client] options for program (timeout_default: the default
 *  of --timeout-ms as text). Returns what amity_config_load returns; on
 *  RUN, *opts is filled (its strings borrow from cfg: keep cfg until done,
 *  then amity_cli_free). */
amity_config_result_t amity_cli_load(const char *program, const char *summary,
                                     const char *timeout_default, amity_cli_cfg_t *cfg,
                                     amity_client_opts_t *opts, int argc, char **argv, char ***args,
                                     int *n_args);
void amity_cli_free(amity_cli_cfg_t *cfg);

/*  For a program's own flags, taken out of argv before amity_cli_load:
 *  matches argv[*i] against --name VALUE / --name=VALUE; on a match sets
 *  *value (NULL when the value is missing) and advances *i past it. */
bool amity_cli_take(int argc, char **argv, int *i, const char *name, const char **value);

#endif
