/* settings.c - the system configuration file, secure execution and the
 * environment (see settings.h).
 *
 * Signal context: YES for the host's calls (the crash handler may be the
 * first to read the configuration): system calls and plain loops.
 */
#include "settings.h"

#include "assafe.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#define CONF_MAX 16384
#define CONF_ENTRIES 64

struct conf_entry {
    const char *name, *value;
};

#define SETTINGS(X)                                                                                           \
    X(TATTLE_DISABLE) X(POSTHOG_API_KEY) X(POSTHOG_HOST) X(TATTLE_STATE_DIR) X(TATTLE_SPOOL_DIR)               \
    X(TATTLE_SPOOL_MAX_MB) X(TATTLE_LINGER_MS) X(TATTLE_FILE) X(TATTLE_FILE_MAX_MB) X(TATTLE_STDERR)            \
    X(TATTLE_DISTINCT_ID) X(TATTLE_CRASH_TIMEOUT_MS) X(TATTLE_EXIT_TIMEOUT_MS) X(TATTLE_TAGS) X(TATTLE_RELEASE) \
    X(TATTLE_ENVIRONMENT) X(TATTLE_MAX_BREADCRUMBS) X(TATTLE_REPORT_PRIVILEGED) X(TATTLE_REPORT_KILLS)         \
    X(TATTLE_SPOOL_NOSYNC) X(TATTLE_ALL_THREADS) X(SENTRY_DSN) X(TATTLE_TEST_FAULT)
/* The names' text sits with the statics loading writes (the host's copy
 * of its environment compares every entry with them): no page of its own
 * to fault in. */
#define NAME_TEXT(n) static char name_##n[] TATTLE_LOAD_DATA = #n;
#define NAME_REF(n) name_##n,
SETTINGS(NAME_TEXT)
const char *const tattle__setting_names[] = {SETTINGS(NAME_REF) NULL};

/* Zero until a file is read: a host without one touches none of it. */
static char conf_text[CONF_MAX];
static struct conf_entry conf[CONF_ENTRIES];
static int conf_count, initialized;
static char conf_problem[160];
/* Set at load by the host (on a page loading writes anyway). */
static int secure TATTLE_LOAD_DATA;
/* The host's copy of its environment as it was at load (NULL: environ). */
static char *const *env_copy TATTLE_LOAD_DATA;

/* Owned by root, not writable by group or others. */
static int trusted(const struct stat *st)
{
    return st->st_uid == 0 && !(st->st_mode & (S_IWGRP | S_IWOTH));
}

static void problem(const char *why)
{
    tattle__strlcpy(conf_problem, why, sizeof conf_problem);
}

static char *trim(char *s, char *end)
{
    while (s < end && (*s == ' ' || *s == '\t'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
        *--end = 0;
    return s;
}

/* NAME=value lines; '#' starts a comment line. Names are [A-Z0-9_]. */
static void parse(char *text)
{
    char *line = text, *next;
    for (; line && *line; line = next) {
        char *eq, *name, *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = 0;
        name = trim(line, line + strlen(line));
        if (!*name || *name == '#' || !(eq = strchr(name, '=')) || eq == name)
            continue;
        *eq = 0;
        trim(name, eq);
        if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(name) || conf_count >= CONF_ENTRIES)
            continue;
        conf[conf_count].name = name;
        conf[conf_count].value = trim(eq + 1, eq + 1 + strlen(eq + 1));
        conf_count++;
    }
}

static void read_conf(void)
{
    struct stat st, dst;
    char dir[sizeof TATTLE_CONF_PATH];
    ssize_t n;
    int fd = open(TATTLE_CONF_PATH, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ELOOP)
            problem("it is a symbolic link");
        return; /* absent or unreadable to this user: no file */
    }
    memcpy(dir, TATTLE_CONF_PATH, sizeof dir);
    *strrchr(dir, '/') = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        problem("not a regular file");
    else if (!trusted(&st))
        problem("not owned by root, or writable by group or others");
    else if (stat(dir, &dst) != 0 || !trusted(&dst))
        problem("its directory is not owned by root, or is writable by group or others");
    else if (st.st_size >= CONF_MAX)
        problem("larger than 16 KiB");
    else if ((n = read(fd, conf_text, CONF_MAX - 1)) >= 0) {
        conf_text[n] = 0;
        parse(conf_text);
    }
    close(fd);
}

TATTLE_LOAD_PATH void tattle__settings_use_env(char *const *env, int is_secure)
{
    env_copy = env;
    secure = is_secure;
}

int tattle__settings_init(void)
{
    if (initialized)
        return secure;
    initialized = 1;
    if (!env_copy)
        secure = getauxval(AT_SECURE) != 0;
    read_conf();
    return secure;
}

/* name's value in the environment copy, or in environ. */
static const char *from_env(const char *name)
{
    char *const *e;
    if (!env_copy)
        return getenv(name);
    for (e = env_copy; *e; e++) {
        const char *v = tattle__env_value(*e, name);
        if (v)
            return v;
    }
    return NULL;
}

int tattle__settings_secure(void)
{
    return secure;
}

const char *tattle__setting_from_file(const char *name)
{
    int i;
    for (i = conf_count - 1; i >= 0; i--) /* the last line wins */
        if (!strcmp(conf[i].name, name))
            return conf[i].value;
    return NULL;
}

const char *tattle__setting(const char *name)
{
    const char *v = secure ? NULL : from_env(name);
    return v ? v : tattle__setting_from_file(name);
}

const char *tattle__setting_source(const char *name)
{
    if (!secure && from_env(name))
        return "environment";
    return tattle__setting_from_file(name) ? TATTLE_CONF_PATH : NULL;
}

const char *tattle__settings_file_problem(void)
{
    return conf_problem;
}
