/* forks.c - a forked child lets go of its parent's agent at once.
 *
 * Owns: the interposers of fork(), _Fork(), daemon() and forkpty(). The
 * child they return in takes over from its parent right away
 * (tattle__fork_check: the parent's region and descriptors are let go), as
 * a pthread_atfork handler would, without registering one at load. A fork
 * made another way (a raw clone, a libc-internal fork) is noticed at the
 * child's first call into the agent, its crash, or its exit (the page the
 * kernel wipes in a forked child, entry.c).
 * Signal context: YES for fork() and _Fork() (both are async-signal-safe):
 * libc's own function, then the take-over, which is signal-safe.
 */
#include <dlfcn.h>
#include <pty.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <termios.h>
#include <unistd.h>

#include "assafe.h"
#include "entry.h"
#include "selfmap.h"
#include "signals.h"

#define EXPORT __attribute__((visibility("default")))

pid_t __fork(void); /* glibc exports fork under this name too */

/* In the child: not a vfork child of the process that loaded us (the crash
 * handler tells them apart by pid until the first use), and a child that
 * takes over from its parent. */
static void child(void)
{
    tattle__signals_note_child();
    tattle__fork_check();
}

EXPORT pid_t fork(void)
{
    pid_t pid = __fork();
    if (pid == 0)
        child();
    return pid;
}

typedef pid_t (*fork_fn)(void);
typedef int (*daemon_fn)(int, int);
typedef pid_t (*forkpty_fn)(int *, char *, const struct termios *, const struct winsize *);

/* libc's own, found on the first call with dlsym (daemon and forkpty are
 * not async-signal-safe themselves; _Fork, which is, uses selfmap.c). */
static void *next(const char *name, _Atomic(void *) *slot)
{
    void *fn = atomic_load(slot);
    if (!fn) {
        fn = dlsym(RTLD_NEXT, name);
        atomic_store(slot, fn);
    }
    return fn;
}

EXPORT pid_t _Fork(void)
{
    static _Atomic(void *) real;
    fork_fn fn = (fork_fn)atomic_load(&real);
    pid_t pid;
    if (!fn) { /* libc's own, from its symbol table: no dlsym in a handler */
        fn = (fork_fn)tattle__libc_symbol("_Fork");
        atomic_store(&real, (void *)fn);
    }
    pid = fn ? fn() : __fork();
    if (pid == 0)
        child();
    return pid;
}

EXPORT int daemon(int nochdir, int noclose)
{
    static _Atomic(void *) real;
    daemon_fn fn = (daemon_fn)next("daemon", &real);
    int r = fn ? fn(nochdir, noclose) : -1;
    if (r == 0) /* the child: its parent has exited */
        child();
    return r;
}

EXPORT pid_t forkpty(int *amaster, char *name, const struct termios *termp, const struct winsize *winp)
{
    static _Atomic(void *) real;
    forkpty_fn fn = (forkpty_fn)next("forkpty", &real);
    pid_t pid = fn ? fn(amaster, name, termp, winp) : -1;
    if (pid == 0)
        child();
    return pid;
}
