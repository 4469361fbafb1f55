/* config.c - environment parsing and defaults (see config.h).
 *
 * Signal context: NO.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void warn_once(int warn, const char *name, const char *value, const char *why)
{
    if (warn)
        fprintf(stderr, "tattle: ignoring %s=\"%.64s\": %s\n", name, value, why);
}

/* A boolean: 1/0, true/false, yes/no, on/off. */
static int env_bool(const char *name, int def, int warn)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    if (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"))
        return 1;
    if (!strcmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off"))
        return 0;
    warn_once(warn, name, v, def ? "expected 0 or 1; using 1" : "expected 0 or 1; using 0");
    return def;
}

static int env_int(const char *name, int def, int lo, int hi, int warn)
{
    const char *v = getenv(name);
    char *end;
    long n;
    if (!v || !*v)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n < lo || n > hi) {
        char why[96];
        snprintf(why, sizeof why, "expected an integer from %d to %d; using %d", lo, hi, def);
        warn_once(warn, name, v, why);
        return def;
    }
    return (int)n;
}

int tattle__config_state_dir(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_STATE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/tattle", xdg);
    else if (home && home[0] == '/')
        n = snprintf(buf, cap, "%s/.local/state/tattle", home);
    else
        return -1;
    return (n > 0 && (size_t)n < cap) ? 0 : -1;
}

static void load_file_path(struct tattle_config *cfg, int warn)
{
    const char *v = getenv("TATTLE_FILE");
    char dir[PATH_MAX];
    if (v && *v) {
        if (strlen(v) >= sizeof cfg->file_path) {
            warn_once(warn, "TATTLE_FILE", v, "path too long; using the default");
        } else {
            strcpy(cfg->file_path, v);
            cfg->file_explicit = 1;
            return;
        }
    }
    if (tattle__config_state_dir(dir, sizeof dir) == 0 &&
        strlen(dir) + sizeof "/events.jsonl" <= sizeof cfg->file_path)
        snprintf(cfg->file_path, sizeof cfg->file_path, "%s/events.jsonl", dir);
}

static void load_distinct_id(struct tattle_config *cfg, int warn)
{
    const char *v = getenv("TATTLE_DISTINCT_ID");
    if (!v || !*v)
        return;
    if (strlen(v) > TATTLE_DISTINCT_ID_MAX) {
        warn_once(warn, "TATTLE_DISTINCT_ID", v, "longer than 200 bytes; events stay anonymous");
        return;
    }
    strcpy(cfg->distinct_id, v);
}

void tattle__config_load(struct tattle_config *cfg, int warn)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->disabled = env_bool("TATTLE_DISABLE", 0, warn);
    if (cfg->disabled)
        return;
    cfg->stderr_report = env_bool("TATTLE_STDERR", 1, warn);
    cfg->crash_timeout_ms = env_int("TATTLE_CRASH_TIMEOUT_MS", 3000, 0, 60000, warn);
    cfg->exit_timeout_ms = env_int("TATTLE_EXIT_TIMEOUT_MS", 1000, 0, 60000, warn);
    cfg->max_breadcrumbs = env_int("TATTLE_MAX_BREADCRUMBS", 100, 0, 1000, warn);
    load_file_path(cfg, warn);
    load_distinct_id(cfg, warn);
}
