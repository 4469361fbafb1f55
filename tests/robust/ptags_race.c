/* ptags_race.c - white-box: the process layer's tag array grows while
 * other threads read it (review finding 5). Built by test_robust.py with
 * AddressSanitizer from agent/host/context.c itself (included below, so
 * its statics are reachable), not by CMake: no sanitizer runtime can be
 * preloaded into a host, and a reader's stray read usually yields silent
 * garbage in a black-box run instead of a crash.
 *
 * One writer appends PER_ROUND process tags per round through
 * tattle__process_tag (the array is allocated at the first tag and
 * reallocated at 8), then starts over with an empty layer; three readers
 * write the context as every capture and the crash handler do. Appends
 * and reads race as in a host; only the start-over (which no host does)
 * waits for the readers to be out. Any read of an array entry that is
 * not there is an ASan report and exit 1.
 *
 *   ptags_race SECONDS [PER_ROUND]     (rounds until SECONDS have passed)
 */
#include "context.c"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Atomic int stop;
static pthread_rwlock_t restart;

static void *reader(void *a)
{
    static __thread char buf[1 << 16];
    (void)a;
    while (!atomic_load(&stop)) {
        struct tattle_out o = {buf, sizeof buf, 0, 0};
        pthread_rwlock_rdlock(&restart);
        tattle__context_write(&o, 0);
        pthread_rwlock_unlock(&restart);
    }
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    double until = now() + (argc > 1 ? atof(argv[1]) : 5.0);
    int i, r;
    int per_round = argc > 2 ? atoi(argv[2]) : 9;
    pthread_rwlockattr_t ra;
    pthread_t t[3];
    char key[16];
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&restart, &ra);
    for (i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, reader, NULL);
    for (r = 0; (r & 1023) || now() < until; r++) {
        /* Start over, with no reader inside: what they read is leaked,
         * as the process layer never frees what a reader might hold. */
        pthread_rwlock_wrlock(&restart);
        memset(&process_tags, 0, sizeof process_tags);
        pthread_rwlock_unlock(&restart);
        for (i = 0; i < per_round; i++) {
            snprintf(key, sizeof key, "k%d", i);
            tattle__process_tag(key, "1");
        }
    }
    atomic_store(&stop, 1);
    for (i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    printf("rounds %d done, no stray read\n", r);
    return 0;
}
