/*  config: table-driven options for every amity program. Sources, lowest
 *  first: the table's defaults, the INI file (--config FILE, else
 *  $AMITY_CONFIG; only the program's [section] is read, so one file serves
 *  every program), AMITY_<SECTION>_<NAME> variables, command-line flags.
 *  Every error names its source: file:line, variable or flag.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ini.h>

#include "amity/config.h"
#include "amity/err.h"
#include "amity/log.h"

#define S_WHERE_MAX   512
#define S_HELP_COLUMN 26

/*  State of one amity_config_load call. */
typedef struct {
    const amity_config_spec_t *spec; /* the program's table */
    void *cfg;                       /* the struct being filled */
    int n_errors;                    /* errors printed so far */
} s_load_t;

/*  State of one INI file parse. */
typedef struct {
    s_load_t *load;   /* the load it belongs to */
    FILE *fp;         /* the open file */
    const char *path; /* its name, for messages */
    int line;         /* number of the line inih is working on */
    bool indented;    /* that line starts with a blank */
    bool have_prev;   /* inih remembers a previous key (continuation possible) */
} s_ini_t;

static void s_error(s_load_t *load, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
s_error(s_load_t *load, const char *fmt, ...)
{
    va_list ap;
    (void)fprintf(stderr, "%s: ", load->spec->program);
    va_start(ap, fmt);
    (void)vfprintf(stderr, fmt, ap);
    va_end(ap);
    (void)fputc('\n', stderr);
    load->n_errors++;
}

static void *
s_field(void *cfg, const amity_opt_t *opt)
{
    return (char *)cfg + opt->offset;
}

static const amity_opt_t *
s_find(const amity_config_spec_t *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n_opts; i++) {
        const char *opt_name = spec->opts[i].name;
        if (strlen(opt_name) == len && strncmp(opt_name, name, len) == 0) {
            return &spec->opts[i];
        }
    }
    return NULL;
}

static bool
s_is_log_level(const amity_opt_t *opt)
{
    return opt->type == AMITY_OPT_STR && strcmp(opt->name, "log-level") == 0;
}

static void
s_list_free(amity_strlist_t *list)
{
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i]);
    }
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

/*  Appends the comma-separated items of text, trimmed, empties dropped. */
static int
s_list_append(amity_strlist_t *list, const char *text)
{
    const char *p = text;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end) {
            end = p + strlen(p);
        }
        const char *a = p;
        const char *b = end;
        while (a < b && isspace((unsigned char)*a)) {
            a++;
        }
        while (b > a && isspace((unsigned char)b[-1])) {
            b--;
        }
        if (b > a) {
            char **items = realloc(list->items, (list->n + 1) * sizeof(*items));
            if (!items) {
                return AMITY_ENOMEM;
            }
            list->items = items;
            char *item = malloc((size_t)(b - a) + 1);
            if (!item) {
                return AMITY_ENOMEM;
            }
            memcpy(item, a, (size_t)(b - a));
            item[b - a] = '\0';
            list->items[list->n++] = item;
        }
        if (*end == '\0') {
            return 0;
        }
        p = end + 1;
    }
}

static int
s_parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "true", "yes", "on", "1" };
    static const char *const no[] = { "false", "no", "off", "0" };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return AMITY_EINVAL;
}

/*  Sets opt from text (where names the source in messages). When append
 *  is true (an INI continuation line) a LIST grows instead of being
 *  replaced. Returns 0, AMITY_EINVAL (reported) or AMITY_ENOMEM. */
static int
s_set(s_load_t *load, const amity_opt_t *opt, const char *text, const char *where, bool append)
{
    void *field = s_field(load->cfg, opt);
    switch (opt->type) {
    case AMITY_OPT_STR: {
        if (s_is_log_level(opt)) {
            amity_log_level_t saved = amity_log_threshold;
            int rc = amity_log_set_level(text);
            amity_log_threshold = saved; /* applied once everything is loaded */
            if (rc != 0) {
                s_error(load, "%s: '%s' is not a log level (error, warn, info, debug)", where,
                        text);
                return AMITY_EINVAL;
            }
        }
        char *copy = strdup(text);
        if (!copy) {
            s_error(load, "%s: out of memory", where);
            return AMITY_ENOMEM;
        }
        char **slot = field;
        free(*slot);
        *slot = copy;
        return 0;
    }
    case AMITY_OPT_INT: {
        char *end = NULL;
        if (*text == '\0' || isspace((unsigned char)*text)) {
            s_error(load, "%s: '%s' is not an integer", where, text);
            return AMITY_EINVAL;
        }
        errno = 0;
        long long v = strtoll(text, &end, 10);
        if (*end != '\0') {
            s_error(load, "%s: '%s' is not an integer", where, text);
            return AMITY_EINVAL;
        }
        if (errno == ERANGE) {
            s_error(load, "%s: %s is out of range", where, text);
            return AMITY_EINVAL;
        }
        if (opt->min != 0 || opt->max != 0) {
            if (v < opt->min) {
                s_error(load, "%s: %lld is below the minimum %lld", where, v, (long long)opt->min);
                return AMITY_EINVAL;
            }
            if (v > opt->max) {
                s_error(load, "%s: %lld is above the maximum %lld", where, v, (long long)opt->max);
                return AMITY_EINVAL;
            }
        }
        *(int64_t *)field = (int64_t)v;
        return 0;
    }
    case AMITY_OPT_BOOL: {
        bool v = false;
        if (s_parse_bool(text, &v) != 0) {
            s_error(load, "%s: '%s' is not a boolean (true/false, yes/no, on/off, 1/0)", where,
                    text);
            return AMITY_EINVAL;
        }
        *(bool *)field = v;
        return 0;
    }
    case AMITY_OPT_LIST: {
        amity_strlist_t fresh = { 0, NULL };
        amity_strlist_t *list = field;
        if (s_list_append(append ? list : &fresh, text) != 0) {
            s_list_free(&fresh);
            s_error(load, "%s: out of memory", where);
            return AMITY_ENOMEM;
        }
        if (!append) {
            s_list_free(list);
            *list = fresh;
        }
        return 0;
    }
    }
    AMITY_ASSERT(!"unknown option type");
    return AMITY_EINVAL;
}

/*  Puts every field in a freeable, empty state. */
static void
s_zero(s_load_t *load)
{
    const amity_config_spec_t *spec = load->spec;
    for (size_t i = 0; i < spec->n_opts; i++) {
        const amity_opt_t *opt = &spec->opts[i];
        void *field = s_field(load->cfg, opt);
        switch (opt->type) {
        case AMITY_OPT_STR:
            *(char **)field = NULL;
            break;
        case AMITY_OPT_INT:
            *(int64_t *)field = 0;
            break;
        case AMITY_OPT_BOOL:
            *(bool *)field = false;
            break;
        case AMITY_OPT_LIST:
            ((amity_strlist_t *)field)->n = 0;
            ((amity_strlist_t *)field)->items = NULL;
            break;
        }
    }
}

static void
s_defaults(s_load_t *load)
{
    const amity_config_spec_t *spec = load->spec;
    for (size_t i = 0; i < spec->n_opts; i++) {
        const amity_opt_t *opt = &spec->opts[i];
        char where[S_WHERE_MAX];
        (void)snprintf(where, sizeof(where), "default of %s", opt->name);
        if (opt->def) {
            s_set(load, opt, opt->def, where, false);
        } else if (opt->type == AMITY_OPT_STR) {
            s_set(load, opt, "", where, false);
        } else if (opt->type == AMITY_OPT_INT && (opt->min > 0 || opt->max < 0) &&
                   (opt->min != 0 || opt->max != 0)) {
            s_error(load, "%s: 0 is outside %lld..%lld", where, (long long)opt->min,
                    (long long)opt->max);
        }
    }
}

/* ---- INI file --------------------------------------------------------- */

/*  fgets for inih that counts lines (r55's handler gets no line number),
 *  notes whether the line is indented (a continuation) and refuses lines
 *  longer than inih's buffer instead of letting it split them. */
static char *
s_ini_reader(char *str, int num, void *stream)
{
    s_ini_t *ini = stream;
    if (!fgets(str, num, ini->fp)) {
        return NULL;
    }
    ini->line++;
    size_t len = strlen(str);
    if (len > 0 && str[len - 1] != '\n' && !feof(ini->fp)) {
        s_error(ini->load, "%s:%d: line too long (at most %d characters)", ini->path, ini->line,
                num - 3);
        int c;
        while ((c = fgetc(ini->fp)) != EOF && c != '\n') {
        }
        str[0] = '\0';
    }
    const char *p = str;
    if (ini->line == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
        (unsigned char)p[2] == 0xBF) {
        p += 3;
    }
    ini->indented = (*p == ' ' || *p == '\t');
    while (isspace((unsigned char)*p)) {
        p++;
    }
    if (*p == '[') {
        ini->have_prev = false; /* inih forgets the previous key at a section */
    }
    return str;
}

static int
s_ini_handler(void *user, const char *section, const char *name, const char *value)
{
    s_ini_t *ini = user;
    s_load_t *load = ini->load;
    /* inih passes an indented line after a key as more of that key's value */
    bool continuation = ini->indented && ini->have_prev;
    ini->have_prev = true;
    if (strcmp(section, load->spec->section) != 0) {
        return 1; /* another program's section */
    }
    const amity_opt_t *opt = s_find(load->spec, name, strlen(name));
    if (!opt) {
        if (!continuation) {
            s_error(load, "%s:%d: unknown key '%s' in section [%s]", ini->path, ini->line, name,
                    section);
        }
        return 1;
    }
    char where[S_WHERE_MAX];
    (void)snprintf(where, sizeof(where), "%s:%d: %s", ini->path, ini->line, name);
    if (continuation && opt->type != AMITY_OPT_LIST) {
        s_error(load, "%s: unexpected indented line (only lists continue on indented lines)",
                where);
        return 1;
    }
    if (continuation && strchr(value, '=')) {
        /* almost surely an indented key, which inih folds into the list */
        s_error(load, "%s: indented line '%s' would continue the list; do not indent keys", where,
                value);
        return 1;
    }
    s_set(load, opt, value, where, continuation);
    return 1; /* errors are counted here; inih's count is for syntax */
}

static void
s_load_file(s_load_t *load, const char *path)
{
    s_ini_t ini;
    memset(&ini, 0, sizeof(ini));
    ini.load = load;
    ini.path = path;
    ini.fp = fopen(path, "r");
    if (!ini.fp) {
        s_error(load, "cannot read configuration file %s: %s", path, strerror(errno));
        return;
    }
    int rc = ini_parse_stream(s_ini_reader, &ini, s_ini_handler, &ini);
    if (ferror(ini.fp)) {
        s_error(load, "cannot read configuration file %s: %s", path, strerror(errno));
    } else if (rc > 0) {
        s_error(load, "%s:%d: syntax error (expected '[section]' or 'name = value')", path, rc);
    } else if (rc < 0) {
        s_error(load, "cannot parse configuration file %s", path);
    }
    (void)fclose(ini.fp);
}

/* ---- environment ------------------------------------------------------ */

static void
s_env_name(char *out, size_t size, const char *section, const char *name)
{
    int n = snprintf(out, size, "AMITY_%s_%s", section, name);
    AMITY_ASSERT(n > 0 && (size_t)n < size);
    for (char *p = out; *p; p++) {
        *p = (char)(*p == '-' ? '_' : toupper((unsigned char)*p));
    }
}

static void
s_load_env(s_load_t *load)
{
    for (size_t i = 0; i < load->spec->n_opts; i++) {
        const amity_opt_t *opt = &load->spec->opts[i];
        char var[S_WHERE_MAX];
        s_env_name(var, sizeof(var), load->spec->section, opt->name);
        const char *value = getenv(var);
        if (value) {
            s_set(load, opt, value, var, false);
        }
    }
}

/* ---- command line ----------------------------------------------------- */

/*  What the first pass over argv found. */
typedef struct {
    bool help;          /* --help or -h */
    bool version;       /* --version */
    bool check;         /* --check-config */
    bool config_flag;   /* --config given (even without a value) */
    const char *config; /* its value */
} s_meta_t;

/*  Walks argv. With apply false it only fills meta; with apply true it
 *  sets options, reports errors and gathers positional arguments at the
 *  front of argv + 1 (returning their count). */
static int
s_walk(s_load_t *load, int argc, char **argv, bool apply, s_meta_t *meta)
{
    const amity_config_spec_t *spec = load->spec;
    int n_args = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (apply) {
                if (!spec->allow_args) {
                    s_error(load, "unexpected argument '%s' (see --help)", arg);
                } else {
                    argv[1 + n_args] = arg; /* never overtakes i: safe in place */
                }
            }
            n_args++;
            continue;
        }
        if (arg[1] != '-') {
            if (strcmp(arg, "-h") == 0) {
                meta->help = true;
            } else if (apply) {
                s_error(load, "unknown option %s (see --help)", arg);
            }
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;

        static const char *const bare[] = { "help", "version", "check-config" };
        bool is_bare = false;
        for (size_t b = 0; b < sizeof(bare) / sizeof(bare[0]); b++) {
            if (strlen(bare[b]) == name_len && strncmp(name, bare[b], name_len) == 0) {
                is_bare = true;
                if (value) {
                    if (apply) {
                        s_error(load, "--%s takes no value (see --help)", bare[b]);
                    }
                } else if (b == 0) {
                    meta->help = true;
                } else if (b == 1) {
                    meta->version = true;
                } else {
                    meta->check = true;
                }
            }
        }
        if (is_bare) {
            continue;
        }
        if (name_len == 6 && strncmp(name, "config", 6) == 0) {
            meta->config_flag = true;
            if (!value && i + 1 < argc) {
                value = argv[++i];
            }
            if (!value) {
                if (apply) {
                    s_error(load, "--config needs a file name (see --help)");
                }
            } else {
                meta->config = value;
            }
            continue;
        }

        const amity_opt_t *opt = s_find(spec, name, name_len);
        bool negated = false;
        if (!opt && !value && name_len > 3 && strncmp(name, "no-", 3) == 0) {
            const amity_opt_t *base = s_find(spec, name + 3, name_len - 3);
            if (base && base->type == AMITY_OPT_BOOL) {
                opt = base;
                negated = true;
            }
        }
        if (!opt) {
            if (apply) {
                s_error(load, "unknown option --%.*s (see --help)", (int)name_len, name);
            }
            continue;
        }
        if (opt->type == AMITY_OPT_BOOL) {
            if (negated) {
                value = "false";
            } else if (!value) {
                value = "true";
            }
        } else if (!value) {
            if (i + 1 >= argc) {
                if (apply) {
                    s_error(load, "--%s needs a value (see --help)", opt->name);
                }
                continue;
            }
            value = argv[++i];
        }
        if (apply) {
            char where[S_WHERE_MAX];
            (void)snprintf(where, sizeof(where), "--%s", opt->name);
            s_set(load, opt, value, where, false);
        }
    }
    return n_args;
}

/* ---- output ----------------------------------------------------------- */

static const char *
s_metavar(amity_opt_type_t type)
{
    switch (type) {
    case AMITY_OPT_STR:
        return " TEXT";
    case AMITY_OPT_INT:
        return " N";
    case AMITY_OPT_LIST:
        return " A,B,..";
    case AMITY_OPT_BOOL:
        break;
    }
    return "";
}

static void
s_help_line(const char *left, const char *help)
{
    int n = printf("  %s", left);
    if (n >= S_HELP_COLUMN) {
        printf("\n%*s", S_HELP_COLUMN, "");
    } else {
        printf("%*s", S_HELP_COLUMN - n, "");
    }
    printf("%s\n", help);
}

static void
s_print_help(const amity_config_spec_t *spec)
{
    char env[S_WHERE_MAX];
    s_env_name(env, sizeof(env), spec->section, "NAME");
    printf("Usage: %s [OPTION]...%s\n", spec->program, spec->allow_args ? " [ARG]..." : "");
    if (spec->summary) {
        printf("%s\n", spec->summary);
    }
    printf("\nOptions (also 'name = value' in section [%s] of the --config file, or the\n"
           "environment variable %s with dashes as underscores):\n",
           spec->section, env);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const amity_opt_t *opt = &spec->opts[i];
        char left[S_WHERE_MAX];
        char help[2 * S_WHERE_MAX];
        char range[128] = "";
        if (opt->type == AMITY_OPT_BOOL && strncmp(opt->name, "no-", 3) == 0) {
            (void)snprintf(left, sizeof(left), "--%s",
                           opt->name); /* "--[no-]no-sync" reads badly */
        } else if (opt->type == AMITY_OPT_BOOL) {
            (void)snprintf(left, sizeof(left), "--[no-]%s", opt->name);
        } else {
            (void)snprintf(left, sizeof(left), "--%s%s", opt->name, s_metavar(opt->type));
        }
        if (opt->type == AMITY_OPT_INT && (opt->min != 0 || opt->max != 0)) {
            (void)snprintf(range, sizeof(range), ", %lld..%lld", (long long)opt->min,
                           (long long)opt->max);
        }
        const char *def = opt->def;
        if (!def) {
            def = opt->type == AMITY_OPT_INT ? "0" : (opt->type == AMITY_OPT_BOOL ? "false" : "");
        }
        if (*def || *range) {
            (void)snprintf(help, sizeof(help), "%s (default: %s%s)", opt->help ? opt->help : "",
                           *def ? def : "none", range);
        } else {
            (void)snprintf(help, sizeof(help), "%s", opt->help ? opt->help : "");
        }
        s_help_line(left, help);
    }
    s_help_line("--config FILE", "read options from FILE (default: $AMITY_CONFIG, if set)");
    s_help_line("--check-config", "check the configuration, print the effective values, exit");
    s_help_line("--help", "print this help and exit");
    s_help_line("--version", "print the version and exit");
}

static void
s_print_values(const amity_config_spec_t *spec, void *cfg)
{
    printf("[%s]\n", spec->section);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const amity_opt_t *opt = &spec->opts[i];
        void *field = s_field(cfg, opt);
        printf("%s = ", opt->name);
        switch (opt->type) {
        case AMITY_OPT_STR: {
            const char *s = *(char **)field;
            printf("%s", s ? s : "");
            break;
        }
        case AMITY_OPT_INT:
            printf("%lld", (long long)*(int64_t *)field);
            break;
        case AMITY_OPT_BOOL:
            printf("%s", *(bool *)field ? "true" : "false");
            break;
        case AMITY_OPT_LIST: {
            const amity_strlist_t *list = field;
            for (size_t j = 0; j < list->n; j++) {
                printf("%s%s", j ? "," : "", list->items[j]);
            }
            break;
        }
        }
        printf("\n");
    }
}

/* ---- entry points ----------------------------------------------------- */

amity_config_result_t
amity_config_load(const amity_config_spec_t *spec, void *cfg, int argc, char **argv, char ***args,
                  int *n_args)
{
    AMITY_ASSERT(spec && spec->program && spec->section && cfg);
    AMITY_ASSERT(spec->opts || spec->n_opts == 0);
    for (size_t i = 0; i < spec->n_opts; i++) {
        const char *name = spec->opts[i].name;
        AMITY_ASSERT(name && *name && strcmp(name, "config") != 0 && strcmp(name, "help") != 0 &&
                     strcmp(name, "version") != 0 && strcmp(name, "check-config") != 0);
    }
    if (args) {
        *args = argc > 1 ? argv + 1 : argv + argc;
    }
    if (n_args) {
        *n_args = 0;
    }
    s_load_t load = { spec, cfg, 0 };
    s_zero(&load);
    s_meta_t meta;
    memset(&meta, 0, sizeof(meta));
    s_walk(&load, argc, argv, false, &meta);
    if (meta.help) {
        s_print_help(spec);
        (void)fflush(stdout);
        return AMITY_CONFIG_EXIT_OK;
    }
    if (meta.version) {
        printf("%s %s\n", spec->program, AMITY_VERSION);
        (void)fflush(stdout);
        return AMITY_CONFIG_EXIT_OK;
    }

    s_defaults(&load);
    const char *path = meta.config;
    if (!meta.config_flag) {
        path = getenv("AMITY_CONFIG");
    }
    if (path && *path) {
        s_load_file(&load, path);
    }
    s_load_env(&load);
    s_meta_t again;
    memset(&again, 0, sizeof(again));
    int n = s_walk(&load, argc, argv, true, &again);

    if (load.n_errors > 0) {
        amity_config_free(spec, cfg);
        return AMITY_CONFIG_ERROR;
    }
    for (size_t i = 0; i < spec->n_opts; i++) {
        if (s_is_log_level(&spec->opts[i])) {
            amity_log_set_level(*(char **)s_field(cfg, &spec->opts[i]));
        }
    }
    if (spec->check && spec->check(cfg) != 0) {
        amity_config_free(spec, cfg);
        return AMITY_CONFIG_ERROR;
    }
    if (meta.check) {
        printf("%s: configuration OK\n", spec->program);
        s_print_values(spec, cfg);
        (void)fflush(stdout);
        amity_config_free(spec, cfg);
        return AMITY_CONFIG_EXIT_OK;
    }
    if (args) {
        *args = argv + 1;
    }
    if (n_args) {
        *n_args = n;
    }
    return AMITY_CONFIG_RUN;
}

void
amity_config_free(const amity_config_spec_t *spec, void *cfg)
{
    if (!spec || !cfg) {
        return;
    }
    for (size_t i = 0; i < spec->n_opts; i++) {
        const amity_opt_t *opt = &spec->opts[i];
        void *field = s_field(cfg, opt);
        if (opt->type == AMITY_OPT_STR) {
            char **slot = field;
            free(*slot);
            *slot = NULL;
        } else if (opt->type == AMITY_OPT_LIST) {
            s_list_free(field);
        }
    }
}
