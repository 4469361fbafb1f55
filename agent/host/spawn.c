/* spawn.c - the signal-safe double spawn of the flusher (see spawn.h).
 *
 * Signal context: YES. Both children share the host's memory until execve
 * (CLONE_VM), so they only make raw system calls and touch nothing but
 * their own stacks and the tattle_spawn they were given.
 */
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __WCLONE
#define __WCLONE 0x80000000
#endif

static void child_exit(int code) { syscall(SYS_exit, code); }

/* Copy src above the numbers being placed (where the host's limit on
 * descriptors kept it low, it may sit on one of them). -1 stays -1. */
static int lift_fd(int src)
{
    long hi;
    if (src < 0)
        return -1;
    hi = syscall(SYS_fcntl, src, F_DUPFD, TATTLE_FLUSHER_FD_LISTEN + 1);
    return hi >= 0 ? (int)hi : src;
}

/* Put src at fd, or make sure nothing of the host's is at fd (src < 0).
 * dup2 clears close-on-exec on the copy. */
static void place_fd(int src, int fd)
{
    if (src >= 0)
        syscall(SYS_dup2, src, fd);
    else
        syscall(SYS_close, fd);
}

/* A host that lowered its soft limits on address space and heap (ulimit
 * -Sv) must not starve the flusher that reports its crash: up to the hard
 * limit, which the flusher may take. */
static void lift_soft_limits(void)
{
    static const int res[] = {RLIMIT_AS, RLIMIT_DATA};
    for (unsigned i = 0; i < sizeof res / sizeof res[0]; i++) {
        struct rlimit r;
        if (syscall(SYS_prlimit64, 0, res[i], NULL, &r) == 0 && r.rlim_cur != r.rlim_max) {
            r.rlim_cur = r.rlim_max;
            syscall(SYS_prlimit64, 0, res[i], &r, NULL);
        }
    }
}

/* In the flusher-to-be: arrange descriptors, leave the session, exec. */
static int flusher_child(void *arg)
{
    struct tattle_spawn *sp = arg;
    int nullfd;
    syscall(SYS_setsid);
    lift_soft_limits();
    /* First every source above 3-6, so that no dup2 clobbers another
     * (the host usually moved them to 700 and up, but a low limit on
     * descriptors leaves them where they were). These copies are ours
     * alone: the child shares the host's memory, not its descriptor table
     * (no CLONE_FILES), and close_range below removes them. */
    int shm = lift_fd(sp->shm_fd), sock = lift_fd(sp->sock_fd), host = lift_fd(sp->pidfd);
    int listen = lift_fd(sp->listen_fd);
    place_fd(shm, TATTLE_FLUSHER_FD_SHM);
    place_fd(sock, TATTLE_FLUSHER_FD_SOCK);
    place_fd(host, TATTLE_FLUSHER_FD_HOST);
    place_fd(listen, TATTLE_FLUSHER_FD_LISTEN);
    nullfd = (int)syscall(SYS_open, "/dev/null", O_RDWR);
    if (nullfd >= 0) {
        syscall(SYS_dup2, nullfd, 0);
        syscall(SYS_dup2, nullfd, 1);
        syscall(SYS_dup2, nullfd, 2);
        /* It took the lowest free number: one of 3-6 left empty (no pidfd
         * where pidfd_open is missing) must stay empty, or the flusher
         * takes /dev/null for its host's pidfd and thinks the host gone. */
        if (nullfd > 2)
            syscall(SYS_close, nullfd);
    }
    if (syscall(SYS_close_range, TATTLE_FLUSHER_FD_LISTEN + 1, ~0U, 0) != 0) {
        int fd;
        for (fd = TATTLE_FLUSHER_FD_LISTEN + 1; fd < 65536; fd++)
            syscall(SYS_close, fd);
    }
    syscall(SYS_execve, sp->path, sp->argv, sp->envp);
    child_exit(127);
    return 127;
}

/* In the intermediate: start the flusher and exit, orphaning it. */
static int intermediate_child(void *arg)
{
    struct tattle_spawn *sp = arg;
    char *stack_top = (char *)sp->stack + 2 * TATTLE_SPAWN_STACK;
    clone(flusher_child, stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD, sp);
    child_exit(0);
    return 0;
}

int tattle__spawn_flusher(struct tattle_spawn *sp)
{
    sigset_t all, old;
    char *stack_top = (char *)sp->stack + TATTLE_SPAWN_STACK;
    pid_t pid;
    int err = 0;
    sigfillset(&all);
    /* No host handler may run in a child that shares the host's memory. */
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof(sigset_t) > 8 ? 8 : sizeof(sigset_t));
    pid = clone(intermediate_child, stack_top, CLONE_VM | CLONE_VFORK, sp);
    if (pid < 0) {
        err = -errno;
    } else {
        /* Exit signal 0 makes it a "clone" child: reap it with __WCLONE,
         * which no host wait() ever uses. */
        while (syscall(SYS_wait4, pid, NULL, __WCLONE, NULL) < 0 && errno == EINTR)
            ;
    }
    syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, 8);
    return err;
}
