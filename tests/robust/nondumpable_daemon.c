/* nondumpable_daemon.c - a host the flusher may not inspect: it makes itself
 * non-dumpable (as privileged daemons do), captures, closes every
 * descriptor above 2 (as daemons do), captures again, flushes and crashes.
 * A flusher of the same user cannot read its /proc/PID/maps, and must
 * still serve it (by polling) until it is gone.
 */
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "tattle.h"

int main(void)
{
    int fd, r;
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    tattle_capture("before", "{}");
    for (fd = 3; fd < 4096; fd++)
        close(fd);
    tattle_capture("after", "{}");
    r = tattle_flush(3000);
    printf("flush %d\n", r);
    fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
