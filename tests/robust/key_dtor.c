/* key_dtor.c - a capture from a pthread key destructor that runs after the
 * agent's own (review finding 8): the thread's first capture makes the
 * agent's key, the program's key is made later, so its destructor runs
 * later, when the thread ends. The capture must work there as anywhere.
 */
#include <pthread.h>
#include <stdio.h>

#include "tattle.h"

static pthread_key_t k;

static void dtor(void *p)
{
    (void)p;
    fprintf(stderr, "dtor capture rc=%d\n", tattle_capture("thread_end", NULL));
}

static void *worker(void *a)
{
    (void)a;
    fprintf(stderr, "work capture rc=%d\n", tattle_capture("work", NULL));
    pthread_key_create(&k, dtor);
    pthread_setspecific(k, (void *)1);
    return NULL;
}

int main(void)
{
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    printf("main: joined, flush rc=%d\n", tattle_flush(2000));
    return 0;
}
