/* watchdog.h - a thread that ends the program when a call does not return.
 *
 *   robust_watch("tattle_capture", 4);  ...the call...  robust_watch(NULL, 0);
 * prints "watchdog: tattle_capture has not returned after 4 s" on stdout
 * and _exit(3)s when the call outlives its limit: a hang detector, so that
 * a test sees "hangs forever" as a clear line instead of its own timeout.
 */
#ifndef ROBUST_WATCHDOG_H
#define ROBUST_WATCHDOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static const char *_Atomic robust_watch_what;
static _Atomic long robust_watch_until;
static _Atomic int robust_watch_limit;

static long robust_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *robust_watchdog(void *arg)
{
    (void)arg;
    for (;;) {
        const char *w = atomic_load(&robust_watch_what);
        if (w && robust_now_ms() > atomic_load(&robust_watch_until)) {
            printf("watchdog: %s has not returned after %d s\n", w, atomic_load(&robust_watch_limit));
            fflush(stdout);
            _exit(3);
        }
        usleep(20000);
    }
    return NULL;
}

static void robust_watch(const char *what, int seconds)
{
    static int started;
    pthread_t t;
    if (!started) {
        started = 1;
        pthread_create(&t, NULL, robust_watchdog, NULL);
    }
    atomic_store(&robust_watch_limit, seconds);
    atomic_store(&robust_watch_until, robust_now_ms() + seconds * 1000L);
    atomic_store(&robust_watch_what, what);
}

#endif
