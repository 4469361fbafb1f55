/* become.c - run a program as a given user with exactly the given environment.
 *
 *   become UID GID NENV NAME=VALUE... PROGRAM ARGS...
 *
 * Sets the groups to GID alone, the real, effective and saved gid to GID
 * and uid to UID, then execve()s PROGRAM (an absolute path) with the NENV
 * variables as its whole environment.
 *
 * Statically linked on purpose: test_security.py runs it in a mount
 * namespace right after binding its /etc copy (with ld.so.preload) over
 * /etc, and a static program never goes through the loader, so the agent
 * is in PROGRAM only. No wrapper with an agent of its own prints on the
 * program's stderr or starts a flusher, and PROGRAM keeps this process's
 * pid, so the test's wait status is PROGRAM's own.
 */
#define _GNU_SOURCE
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    uid_t uid;
    gid_t gid;
    int nenv, i;
    char **envp;
    if (argc < 5) {
        fprintf(stderr, "usage: become UID GID NENV NAME=VALUE... PROGRAM ARGS...\n");
        return 127;
    }
    uid = (uid_t)strtoul(argv[1], NULL, 10);
    gid = (gid_t)strtoul(argv[2], NULL, 10);
    nenv = atoi(argv[3]);
    if (nenv < 0 || 4 + nenv >= argc) {
        fprintf(stderr, "become: NENV %d leaves no program to run\n", nenv);
        return 127;
    }
    envp = calloc((size_t)nenv + 1, sizeof *envp);
    if (!envp)
        return 127;
    for (i = 0; i < nenv; i++)
        envp[i] = argv[4 + i];
    if (setgroups(1, &gid) != 0 || setresgid(gid, gid, gid) != 0 || setresuid(uid, uid, uid) != 0) {
        perror("become: cannot switch to the user");
        return 127;
    }
    execve(argv[4 + nenv], argv + 4 + nenv, envp);
    fprintf(stderr, "become: cannot run %s: ", argv[4 + nenv]);
    perror(NULL);
    return 127;
}
