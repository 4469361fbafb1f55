/* flusher_env.c - the flusher's environment, from an allowlist of values
 * copied at load (see flusher_env.h).
 *
 * Signal context: NO.
 */
#include "flusher_env.h"

#include <stdlib.h>
#include <string.h>

#include "assafe.h"
#include "settings.h"

/* What the flusher reads (config.c, spool.c), resolved by this host. */
static const char *const settings[] = {
    "TATTLE_FILE", "TATTLE_SPOOL_DIR", "TATTLE_SPOOL_MAX_MB", "TATTLE_LINGER_MS", "TATTLE_STDERR",
    "TATTLE_DISTINCT_ID", "TATTLE_CRASH_TIMEOUT_MS", "TATTLE_EXIT_TIMEOUT_MS", "TATTLE_MAX_BREADCRUMBS",
    "POSTHOG_API_KEY", "POSTHOG_HOST", "TATTLE_STATE_DIR", "TATTLE_SPOOL_NOSYNC", "TATTLE_TEST_FAULT",
};

/* Passed as they are, in ordinary processes only. */
static const char *const passed[] = {
    "HOME", "XDG_STATE_HOME", "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS",
};

#define SLOTS (sizeof settings / sizeof settings[0] + sizeof passed / sizeof passed[0] + 3)
#define SPACE 16384

static char *env[SLOTS + 1];
static char space[SPACE] TATTLE_LARGE_STATIC;
static size_t used, count;

static void put(const char *name, const char *value)
{
    size_t n = strlen(name), v;
    if (!value || count >= SLOTS)
        return;
    v = strlen(value);
    if (used + n + v + 2 > SPACE)
        return; /* the flusher then uses its default; the host warned at parse */
    env[count++] = space + used;
    memcpy(space + used, name, n);
    space[used + n] = '=';
    memcpy(space + used + n + 1, value, v + 1);
    used += n + v + 2;
}

char *const *tattle__flusher_env_build(int secure, const char *state_dir)
{
    size_t i;
    for (i = 0; i < sizeof settings / sizeof settings[0]; i++)
        if (!(secure && !strcmp(settings[i], "TATTLE_STATE_DIR")))
            put(settings[i], tattle__setting(settings[i]));
    if (secure) {
        put("TATTLE_STATE_DIR", state_dir);
        put("TATTLE_SECURE", "1");
    } else {
        for (i = 0; i < sizeof passed / sizeof passed[0]; i++)
            put(passed[i], getenv(passed[i]));
    }
    env[count] = NULL;
    return env;
}
