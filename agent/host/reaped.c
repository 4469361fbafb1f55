/* reaped.c - the waitpid()/wait() interposers (see reaped.h).
 *
 * Signal context: YES.
 */
#include "reaped.h"

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "assafe.h"

#define EXPORT __attribute__((visibility("default")))
#define RECENT_MS 5000

/* libc's non-weak names of the same functions. */
extern pid_t __waitpid(pid_t pid, int *status, int options);
extern pid_t __wait(int *status);

static _Atomic int last_signal;
static _Atomic uint64_t last_at_ms;

static void note(pid_t r, int status)
{
    if (r > 0 && WIFSIGNALED(status)) {
        atomic_store(&last_at_ms, tattle__now_monotonic_ms());
        atomic_store(&last_signal, WTERMSIG(status));
    }
}

EXPORT pid_t waitpid(pid_t pid, int *status, int options)
{
    int st = 0;
    pid_t r = __waitpid(pid, &st, options);
    note(r, st);
    if (status && r > 0)
        *status = st;
    return r;
}

EXPORT pid_t wait(int *status)
{
    int st = 0;
    pid_t r = __wait(&st);
    note(r, st);
    if (status && r > 0)
        *status = st;
    return r;
}

int tattle__reaped_killed_by(int sig)
{
    uint64_t at = atomic_load(&last_at_ms);
    return at && atomic_load(&last_signal) == sig && tattle__now_monotonic_ms() - at < RECENT_MS;
}
