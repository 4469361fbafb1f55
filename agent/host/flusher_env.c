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


/* Passed as they are, in ordinary processes only. */
static const char *const passed[] = {
    "HOME", "XDG_STATE_HOME", "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS",
};

#define SLOTS (32 + sizeof passed / sizeof passed[0] + 3)
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
    /* Every setting this host resolved (from its environment or the file). */
    for (i = 0; tattle__setting_names[i]; i++)
        if (!(secure && !strcmp(tattle__setting_names[i], "TATTLE_STATE_DIR")))
            put(tattle__setting_names[i], tattle__setting(tattle__setting_names[i]));
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
