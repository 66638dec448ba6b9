/*  amity-keygen: writes a CurveZMQ key pair as zcert certificates — NAME
 *  (public, for the server's directory) and NAME_secret (mode 0600, kept by
 *  its owner). pyzmq's zmq.auth.load_certificate reads both.
 */
#include <czmq.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "amity/config.h"
#include "amity/keys.h"
#include "amity/log.h"

typedef struct {
    char *office;   /* metadata office = ID */
    char *name;     /* metadata name = NAME (servers, subscribers) */
    char *prefixes; /* metadata prefixes = a/,b/ (subscribers) */
    bool force;     /* overwrite existing files */
} keygen_cfg_t;

static const amity_opt_t s_opts[] = {
    { "office", AMITY_OPT_STR, offsetof(keygen_cfg_t, office), NULL, 0, 0,
      "the office this key speaks for (offices' keys)" },
    { "name", AMITY_OPT_STR, offsetof(keygen_cfg_t, name), NULL, 0, 0,
      "a name for a server or subscriber key (default: NAME's file name)" },
    { "prefixes", AMITY_OPT_STR, offsetof(keygen_cfg_t, prefixes), NULL, 0, 0,
      "key prefixes a subscriber may read, comma-separated (\"*\" for all)" },
    { "force", AMITY_OPT_BOOL, offsetof(keygen_cfg_t, force), "false", 0, 0,
      "overwrite existing certificate files" },
};

static const amity_config_spec_t s_spec = {
    .program = "amity-keygen",
    .section = "keygen",
    .summary = "amity-keygen NAME [--office ID | --name N] [--prefixes P]: write NAME and "
               "NAME_secret (0600) zcert certificates",
    .opts = s_opts,
    .n_opts = sizeof s_opts / sizeof s_opts[0],
    .allow_args = true,
};

int
main(int argc, char **argv)
{
    amity_log_init("keygen");
    keygen_cfg_t cfg;
    memset(&cfg, 0, sizeof cfg);
    char **args = NULL;
    int n_args = 0;
    amity_config_result_t res = amity_config_load(&s_spec, &cfg, argc, argv, &args, &n_args);
    if (res != AMITY_CONFIG_RUN) {
        amity_config_free(&s_spec, &cfg);
        return res == AMITY_CONFIG_EXIT_OK ? AMITY_EXIT_OK : AMITY_EXIT_CONFIG;
    }
    int rc = AMITY_EXIT_CONFIG;
    zcert_t *cert = NULL;
    char secret_path[4096];
    if (n_args != 1 || !args[0][0]) {
        fprintf(stderr, "amity-keygen: give exactly one NAME (see --help)\n");
        goto out;
    }
    const char *path = args[0];
    if (cfg.office && *cfg.office && !amity_office_valid(cfg.office, strlen(cfg.office))) {
        fprintf(stderr, "amity-keygen: --office: '%s' is not an office id ([a-z0-9-]{1,64}, "
                        "not \"all\")\n", cfg.office);
        goto out;
    }
    if (snprintf(secret_path, sizeof secret_path, "%s_secret", path) >= (int) sizeof secret_path) {
        fprintf(stderr, "amity-keygen: NAME is too long\n");
        goto out;
    }
    struct stat st;
    if (!cfg.force && (stat(path, &st) == 0 || stat(secret_path, &st) == 0)) {
        fprintf(stderr, "amity-keygen: %s or %s exists; refusing to overwrite (--force)\n",
                path, secret_path);
        goto out;
    }
    rc = AMITY_EXIT_RUNTIME;
    cert = zcert_new();
    if (!cert) {
        fprintf(stderr, "amity-keygen: cannot create a key pair\n");
        goto out;
    }
    if (cfg.office && *cfg.office) {
        zcert_set_meta(cert, "office", "%s", cfg.office);
    } else {
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        zcert_set_meta(cert, "name", "%s", cfg.name && *cfg.name ? cfg.name : base);
    }
    if (cfg.prefixes && *cfg.prefixes) {
        zcert_set_meta(cert, "prefixes", "%s", cfg.prefixes);
    }
    zcert_set_meta(cert, "created-by", "amity-keygen %s", AMITY_VERSION);
    /* the secret file is created private from the start */
    mode_t old = umask(077);
    int saved = zcert_save(cert, path);
    umask(old);
    if (saved != 0 || chmod(secret_path, 0600) != 0 || chmod(path, 0644) != 0) {
        fprintf(stderr, "amity-keygen: cannot write %s: %s\n", path, strerror(errno));
        goto out;
    }
    printf("%s\n%s\npublic key: %s\n", path, secret_path, zcert_public_txt(cert));
    rc = AMITY_EXIT_OK;
out:
    zcert_destroy(&cert);
    amity_config_free(&s_spec, &cfg);
    return rc;
}
