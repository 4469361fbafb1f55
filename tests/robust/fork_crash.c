/* fork_crash.c - fork while another thread is inside its crash report
 * (review finding 11). Thread A writes through NULL; main waits until A is
 * faulting, 5 ms more (A is then inside the agent's handler), and forks.
 * The child prints "child PID T" (T: CLOCK_MONOTONIC in ms just before
 * its fault) and writes through address 8 at once: its own crash, to be
 * reported as its own, promptly. The parent dies of A's crash.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static _Atomic int faulting;

static void *crash_a(void *a)
{
    (void)a;
    atomic_store(&faulting, 1);
    *(volatile int *)0 = 1;
    return NULL;
}

int main(void)
{
    pthread_t t;
    pid_t pid;
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_create(&t, NULL, crash_a, NULL);
    while (!atomic_load(&faulting))
        ;
    usleep(5000);
    pid = fork();
    if (pid == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("child %d %lld\n", (int)getpid(), (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
        *(volatile int *)8 = 1;
        _exit(0);
    }
    printf("forked %d\n", (int)pid);
    sleep(30);
    return 0;
}
