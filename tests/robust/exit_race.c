/* exit_race.c - a worker crashes just before the program exits (review
 * finding 6). The worker says it is about to fault and writes through
 * NULL; main waits for that, then MS milliseconds (default 20), and
 * returns 0. Without the agent the fault kills the process at once: it
 * dies by SIGSEGV. With the agent it must too, with its crash event,
 * however long the report takes.
 *
 *   exit_race [MS]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static _Atomic int faulting;

static void *worker(void *a)
{
    (void)a;
    atomic_store(&faulting, 1);
    *(volatile int *)0 = 1;
    return NULL;
}

int main(int argc, char **argv)
{
    pthread_t t;
    int ms = argc > 1 ? atoi(argv[1]) : 20;
    pthread_create(&t, NULL, worker, NULL);
    while (!atomic_load(&faulting))
        usleep(100);
    usleep((useconds_t)ms * 1000);
    printf("main: finished its work, exiting 0\n");
    return 0;
}
