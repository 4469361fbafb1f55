/* two_crash.c - two threads crash at once while the report is slow
 * (review finding 18). It captures "ready" and flushes (its flusher
 * runs), prints "ready" and waits for a line on stdin (the test stops the
 * flusher meanwhile), then two threads released by a barrier write
 * through NULL. The first one's wait must follow TATTLE_CRASH_TIMEOUT_MS,
 * and the second must not end the process before the first is done.
 */
#include <pthread.h>
#include <stdio.h>

#include "tattle.h"

static pthread_barrier_t go;

static void *crash(void *a)
{
    pthread_barrier_wait(&go);
    *(volatile int *)a = 1;
    return NULL;
}

int main(void)
{
    pthread_t t1, t2;
    char line[16];
    int rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = tattle_capture("ready", NULL);
    printf("capture rc=%d flush rc=%d\n", rc, tattle_flush(2000));
    printf("ready\n");
    if (!fgets(line, sizeof line, stdin))
        return 2;
    pthread_barrier_init(&go, NULL, 2);
    pthread_create(&t1, NULL, crash, (void *)0);
    pthread_create(&t2, NULL, crash, (void *)8);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    return 0;
}
