/* entry.c - what happens when libtattle.so is loaded into a host, and when
 * the host forks or exits.
 *
 * Owns: the constructor (configuration, where the flusher is, the flusher's
 * environment, handlers, alternate stacks), the fork handler, and the
 * destructor that waits (bounded) for events to reach the local sinks.
 * Nothing here starts a process or opens a descriptor: that waits for the
 * first event or crash (link.c).
 * Signal context: NO.
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "altstack.h"
#include "assafe.h"
#include "config.h"
#include "hooks.h"
#include "link.h"
#include "signals.h"

#define FLUSHER_NAME "tattle-flusher"
#define MAX_ENV 2048

extern char **environ;

static struct tattle_config config;
static char flusher_path[PATH_MAX];
static char *flusher_env[MAX_ENV + 1];
static int loaded;

/* The flusher sits beside libtattle.so (build tree and installed tree). */
static int find_flusher(void)
{
    Dl_info info;
    char *slash;
    if (!dladdr((void *)find_flusher, &info) || !info.dli_fname || info.dli_fname[0] != '/')
        return -1;
    if (strlen(info.dli_fname) + sizeof FLUSHER_NAME >= sizeof flusher_path)
        return -1;
    strcpy(flusher_path, info.dli_fname);
    slash = strrchr(flusher_path, '/');
    strcpy(slash + 1, FLUSHER_NAME);
    return access(flusher_path, X_OK);
}

/* The host's environment without LD_PRELOAD: the flusher runs unhooked. */
static void build_flusher_env(void)
{
    size_t n = 0;
    char **e;
    for (e = environ; e && *e && n < MAX_ENV; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
            flusher_env[n++] = *e;
    flusher_env[n] = NULL;
}

static void after_fork_child(void)
{
    tattle__signals_after_fork();
    tattle__link_forget();
}

__attribute__((constructor)) static void tattle_load(void)
{
    tattle__config_load(&config, 1);
    if (config.disabled)
        return;
    if (find_flusher() != 0)
        tattle__write_str(2, "tattle: tattle-flusher not found beside libtattle.so; crashes will not be reported\n");
    build_flusher_env();
    tattle__link_init(flusher_path[0] ? flusher_path : NULL, flusher_env);
    tattle__hooks_init();
    tattle__altstack_init();
    tattle__signals_install(&config);
    pthread_atfork(NULL, NULL, after_fork_child);
    loaded = 1;
}

__attribute__((destructor)) static void tattle_unload(void)
{
    if (loaded)
        tattle__link_wait_exit(config.exit_timeout_ms);
}
