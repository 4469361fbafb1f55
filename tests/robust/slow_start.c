/* slow_start.c - the main thread crashes while another thread is still
 * starting the flusher (review finding 21). Thread B makes the program's
 * first capture, so it creates the shared region and starts the flusher;
 * this program's own readlink() (which the agent calls while it describes
 * the host) holds B there for 500 ms, as a descheduled thread would be
 * held. Main waits until B is held (2 s at most: without the agent B
 * never gets there), then writes through NULL. The crash must be recorded
 * once B is done, not given up on ("no shared memory").
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tattle.h"

static _Atomic pid_t creator;
static _Atomic int held;

/* Exported (--export-dynamic-symbol): it comes before libc's for the agent. */
ssize_t readlink(const char *restrict path, char *restrict buf, size_t n)
{
    if (atomic_load(&creator) == gettid() && !strcmp(path, "/proc/self/exe") && !atomic_exchange(&held, 1))
        usleep(500000);
    return syscall(SYS_readlink, path, buf, n);
}

static void *start(void *a)
{
    (void)a;
    atomic_store(&creator, gettid());
    tattle_capture("starting", NULL);
    return NULL;
}

int main(void)
{
    pthread_t t;
    int i;
    pthread_create(&t, NULL, start, NULL);
    for (i = 0; i < 2000 && !atomic_load(&held); i++)
        usleep(1000);
    printf("creator held: %s\n", atomic_load(&held) ? "yes" : "no");
    fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
