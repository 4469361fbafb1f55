/* ctx_leak.c - threads that end with a context still open (review finding
 * 15), as C threads leaving by return or pthread_exit do: TATTLE_SCOPED
 * only closes at the end of a block. Each of N threads (one after the
 * other) opens a context and sets 8 tags of 1 KiB; with "closed" it also
 * ends the context. One malloc arena, so mallinfo2 sees every byte; it
 * prints how much more heap is in use after the threads than before.
 *
 *   ctx_leak open|closed N
 */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tattle.h"

static int close_it;
static char value[1024];

static void *worker(void *a)
{
    char key[16];
    int i;
    (void)a;
    if (tattle_new_context(0) != 0)
        return (void *)1;
    for (i = 0; i < 8; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (tattle_tag_string(key, value) != 0)
            return (void *)1;
    }
    if (close_it)
        tattle_end_context();
    return NULL;
}

static size_t in_use(void)
{
    struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd;
}

static int run(int n)
{
    int i, bad = 0;
    for (i = 0; i < n; i++) {
        pthread_t t;
        void *r;
        if (pthread_create(&t, NULL, worker, NULL) != 0)
            return -1;
        pthread_join(t, &r);
        bad += r != NULL;
    }
    return bad;
}

int main(int argc, char **argv)
{
    int n = argc > 2 ? atoi(argv[2]) : 2000, bad;
    size_t before, after;
    mallopt(M_ARENA_MAX, 1);
    close_it = argc > 1 && !strcmp(argv[1], "closed");
    memset(value, 'v', sizeof value - 1);
    run(20); /* warm up: the allocator's and the agent's first-use costs */
    malloc_trim(0);
    before = in_use();
    bad = run(n);
    malloc_trim(0);
    after = in_use();
    printf("threads %d, failed calls %d\n", n, bad);
    printf("heap in use grew by %lld KiB\n", ((long long)after - (long long)before) / 1024);
    return 0;
}
