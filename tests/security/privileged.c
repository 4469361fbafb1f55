/* privileged.c - the program test_security.py installs setuid-root,
 * setgid and with a file capability.
 *
 *   privileged MODE      MODE: crash (write through NULL), pause (wait to
 *                        be signalled), exit (return 0)
 *
 * It prints its ids and AT_SECURE on stdout (so the test can tell the
 * loader really ran it as a secure-execution process), one line of its
 * own on stderr, then does MODE. It installs no signal handler: a crash
 * under an agent that stays out of the way ends exactly as without one.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "exit";
    uid_t ruid, euid, suid;
    gid_t rgid, egid, sgid;
    getresuid(&ruid, &euid, &suid);
    getresgid(&rgid, &egid, &sgid);
    printf("privileged %s: ruid %d euid %d suid %d rgid %d egid %d secure %lu\n", mode, (int)ruid, (int)euid,
           (int)suid, (int)rgid, (int)egid, getauxval(AT_SECURE));
    fflush(stdout);
    fprintf(stderr, "privileged: %s\n", mode);
    if (!strcmp(mode, "crash"))
        *(volatile int *)0 = 1;
    if (!strcmp(mode, "pause"))
        for (;;)
            pause();
    return 0;
}
