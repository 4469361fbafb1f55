/* emitter.c - captures custom events, then ends in a chosen way.
 *
 *   emitter THREADS EVENTS THEN
 *
 * THREADS threads (released together; 0: the main thread alone) each
 * capture EVENTS events named "burst" with properties {"thread": t,
 * "seq": i}. Then, by THEN:
 *   exit    return from main            flush  tattle_flush(5000) first
 *   kill    SIGKILL itself               crash  write through NULL
 *   exec    exec /bin/sleep 2            fork   a child captures as many
 *   stdin   print "ready", wait for a line on stdin, exit
 * It prints one line: how many captures succeeded and failed. With
 * EMITTER_EXCEPTIONS=1 the captures are handled exceptions "Burst"; with
 * EMITTER_GAP_MS=N each thread waits N ms between its captures; with
 * EMITTER_RAW_FORK=1 "fork" forks with the raw system call.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tattle.h"

static int events_per_thread;
static pthread_barrier_t start;
static int ok_count, err_count;
static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;

static void capture_all(int thread)
{
    int i, ok = 0, err = 0;
    char props[96];
    const char *gap = getenv("EMITTER_GAP_MS");
    for (i = 0; i < events_per_thread; i++) {
        /* EMITTER_GAP_MS=N: N ms between captures. */
        if (gap && i > 0)
            usleep((useconds_t)atoi(gap) * 1000u);
        snprintf(props, sizeof props, "{\"thread\": %d, \"seq\": %d, \"pid\": %d}", thread, i, (int)getpid());
        /* EMITTER_EXCEPTIONS=1: handled exceptions "Burst" instead. */
        if ((getenv("EMITTER_EXCEPTIONS") ? tattle_capture_exception("Burst", props)
                                          : tattle_capture("burst", props)) == 0)
            ok++;
        else
            err++;
    }
    pthread_mutex_lock(&count_mu);
    ok_count += ok;
    err_count += err;
    pthread_mutex_unlock(&count_mu);
}

static void *thread_main(void *arg)
{
    pthread_barrier_wait(&start);
    capture_all((int)(long)arg);
    return NULL;
}

static void run_threads(int n)
{
    pthread_t t[64];
    long i;
    pthread_barrier_init(&start, NULL, (unsigned)n);
    for (i = 0; i < n; i++)
        pthread_create(&t[i], NULL, thread_main, (void *)i);
    for (i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

int main(int argc, char **argv)
{
    int threads;
    const char *then;
    if (argc != 4) {
        fprintf(stderr, "usage: emitter THREADS EVENTS exit|flush|kill|crash|exec|fork|stdin\n");
        return 2;
    }
    threads = atoi(argv[1]);
    events_per_thread = atoi(argv[2]);
    then = argv[3];
    if (threads < 0 || threads > 64)
        return 2;
    if (threads == 0) /* on the main thread alone */
        capture_all(0);
    else
        run_threads(threads);
    printf("captured %d errors %d\n", ok_count, err_count);
    fflush(stdout);
    if (!strcmp(then, "flush"))
        printf("flush %d\n", tattle_flush(5000));
    else if (!strcmp(then, "kill"))
        kill(getpid(), SIGKILL);
    else if (!strcmp(then, "crash"))
        *(volatile int *)0 = 1;
    else if (!strcmp(then, "exec"))
        execl("/bin/sleep", "sleep", "2", (char *)NULL);
    else if (!strcmp(then, "fork")) {
        /* EMITTER_RAW_FORK=1: the fork system call itself, as a library
         * that forks on its own would (no interposer sees it). */
        pid_t pid = getenv("EMITTER_RAW_FORK") ? (pid_t)syscall(SYS_fork) : fork();
        if (pid == 0) {
            ok_count = err_count = 0;
            run_threads(1);
            printf("child captured %d errors %d\n", ok_count, err_count);
            return 0;
        }
        waitpid(pid, NULL, 0);
    } else if (!strcmp(then, "stdin")) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            return 0;
    }
    return 0;
}
