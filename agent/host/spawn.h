/* spawn.h - starting the flusher process from the host.
 *
 * Owns: the double spawn that makes the flusher an orphan the host never
 * sees: the host clones an intermediate with CLONE_VM|CLONE_VFORK and exit
 * signal 0 (so no SIGCHLD, and wait()/waitpid(-1) ignore it), the
 * intermediate clones the flusher the same way and exits, and the flusher
 * (before execve) calls setsid, moves the inherited descriptors into place,
 * points stdio at /dev/null and closes everything else.
 * Signal context: YES. Only raw system calls; the caller provides argv and
 * envp prepared earlier. The host's signals stay blocked in both children.
 */
#ifndef TATTLE_SPAWN_H
#define TATTLE_SPAWN_H

#include "handoff.h"

struct tattle_spawn {
    const char *path;
    char *const *argv;
    char *const *envp;
    int shm_fd, sock_fd, pidfd; /* placed at 3, 4, 5 in the flusher (-1: none) */
    int listen_fd;              /* placed at 6: the shared flusher's rendezvous (-1: none) */
    void *stack;                /* two child stacks of TATTLE_SPAWN_STACK bytes */
};

#define TATTLE_SPAWN_STACK (16 * 1024)

/* Start the flusher. Returns 0 once it has exec'd (or failed to: the
 * caller learns that when the socket hangs up), -errno if cloning failed.
 * Signal-safe. */
int tattle__spawn_flusher(struct tattle_spawn *sp);

#endif
