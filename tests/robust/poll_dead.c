/* poll_dead.c - a daemon that closed its descriptors, whose flusher then
 * dies (review finding 19). It captures and flushes, closes descriptors
 * 3-1023 (the agent's doorbell socket with them; its flusher then polls),
 * captures and flushes again, prints "ready" and waits for a line on stdin
 * (the test kills the flusher meanwhile), then writes through NULL: the
 * crash must start a new flusher and be reported.
 */
#include <stdio.h>
#include <unistd.h>

#include "tattle.h"

int main(void)
{
    char line[16];
    int fd, rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = tattle_capture("one", NULL);
    printf("one rc=%d flush rc=%d\n", rc, tattle_flush(2000));
    for (fd = 3; fd < 1024; fd++)
        close(fd);
    rc = tattle_capture("two", NULL);
    printf("two rc=%d flush rc=%d\n", rc, tattle_flush(2000));
    printf("ready\n");
    if (!fgets(line, sizeof line, stdin))
        return 2;
    *(volatile int *)0 = 1;
    return 0;
}
