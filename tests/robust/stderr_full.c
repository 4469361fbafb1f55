/* stderr_full.c - a program whose stderr is a pipe nobody reads (review
 * finding 1). It makes the pipe itself, keeps the read end open and never
 * reads it, and fills it to the last byte, as a stuck log shipper or a
 * parent doing Popen(stderr=PIPE) then wait() would leave it.
 *
 *   stderr_full crash    say "crashing" on stdout, then write through NULL:
 *                        it must die by SIGSEGV as it would without the agent
 *   stderr_full capture  capture once, wait (up to 10 s) until the flusher
 *                        has a notice for stderr (TATTLE_FILE is made
 *                        unwritable by the test), then capture, capture bad
 *                        JSON (a warning) and flush, each under a watchdog:
 *                        "watchdog: PHASE has not returned after 4 s", exit 3
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "region.h"
#include "tattle.h"
#include "watchdog.h"

static void fill_stderr(void)
{
    int p[2];
    char junk[4096];
    memset(junk, 'x', sizeof junk);
    if (pipe(p) != 0 || dup2(p[1], 2) < 0)
        _exit(2);
    close(p[1]); /* p[0] stays open and unread: writes block, never EPIPE */
    fcntl(2, F_SETFL, O_NONBLOCK);
    while (write(2, junk, sizeof junk) > 0)
        ;
    while (write(2, junk, 1) > 0) /* the last partial page too */
        ;
    fcntl(2, F_SETFL, 0);
}

int main(int argc, char **argv)
{
    struct tattle_shm *shm;
    int rc, i;
    if (argc != 2)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(argv[1], "crash")) {
        fill_stderr();
        printf("crashing\n");
        *(volatile int *)0 = 1;
        return 0;
    }
    if (strcmp(argv[1], "capture") != 0)
        return 2;
    fill_stderr();
    printf("first capture rc=%d\n", tattle_capture("first", NULL));
    shm = robust_region();
    for (i = 0; shm && i < 1000 && atomic_load(&shm->notice_seq) == 0; i++)
        usleep(10000);
    printf("notice pending: %s\n", shm && atomic_load(&shm->notice_seq) ? "yes" : "no");
    robust_watch("tattle_capture", 4);
    rc = tattle_capture("second", "{\"n\": 2}");
    printf("second capture rc=%d\n", rc);
    robust_watch("tattle_capture with bad JSON", 4);
    rc = tattle_capture("third", "{not json");
    printf("bad capture rc=%d\n", rc);
    robust_watch("tattle_flush(1000)", 4);
    (void)tattle_flush(1000);
    printf("flush returned\n");
    robust_watch(NULL, 0);
    printf("exiting\n");
    return 0;
}
