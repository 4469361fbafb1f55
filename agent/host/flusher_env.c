/* flusher_env.c - the flusher's environment, from the allowlisted values
 * copied at load (see flusher_env.h).
 *
 * Signal context: YES (built at first use, which may be a crash): plain
 * loops only.
 */
#include "flusher_env.h"

#include <stdint.h>
#include <string.h>

#include "assafe.h"
#include "envcopy.h"
#include "settings.h"

#define SLOTS 64
#define SPACE 16384

static char *env[SLOTS + 1];
static char space[SPACE] TATTLE_LARGE_STATIC;
static size_t used, count;

static void put_entry(const char *name, size_t n, const char *value)
{
    size_t v;
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

static void put(const char *name, const char *value)
{
    if (value)
        put_entry(name, strlen(name), value);
}

/* What the environment set at load (envcopy.c holds nothing else but
 * LD_PRELOAD, which stays behind); then what only the configuration file
 * sets. */
static void from_environment(void)
{
    uint64_t seen = 0;
    char *const *e;
    int i;
    for (e = tattle__envcopy(); *e; e++) {
        const char *v = *e;
        if ((**e == 'T' || **e == 'P' || **e == 'S') && (i = tattle__env_name_index(*e, tattle__setting_names)) >= 0)
            seen |= 1ull << i;
        else if (tattle__env_name_index(*e, tattle__passed_names) < 0 || !strncmp(*e, "LD_PRELOAD=", 11))
            continue;
        while (*v != '=')
            v++;
        put_entry(*e, (size_t)(v - *e), v + 1);
    }
    for (i = 0; tattle__setting_names[i]; i++)
        if (!(seen & (1ull << i)))
            put(tattle__setting_names[i], tattle__setting_from_file(tattle__setting_names[i]));
}

char *const *tattle__flusher_env_build(int secure, const char *state_dir)
{
    size_t i;
    if (secure) { /* the file's settings only */
        for (i = 0; tattle__setting_names[i]; i++)
            if (strcmp(tattle__setting_names[i], "TATTLE_STATE_DIR") != 0)
                put(tattle__setting_names[i], tattle__setting(tattle__setting_names[i]));
        put("TATTLE_STATE_DIR", state_dir);
        put("TATTLE_SECURE", "1");
    } else {
        from_environment();
    }
    env[count] = NULL;
    return env;
}
