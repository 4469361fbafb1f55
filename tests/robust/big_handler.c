/* big_handler.c - a SIGSEGV handler that needs 200 KiB of stack (review
 * finding 7). Installed without SA_ONSTACK, it runs on the stack of the
 * thread that faulted, as the kernel would run it; it recovers by
 * siglongjmp. Tried on the main thread, then on a second thread.
 *
 *   big_handler            both probes; then "exit 0"
 *   big_handler nodefer    the same with SA_NODEFER
 * Then (both modes) it adds a breadcrumb and captures a handled exception
 * through tattle.h: the agent's own memory must have survived the handler.
 */
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tattle.h"

static __thread sigjmp_buf jb;
static int devnull;

static void handler(int s)
{
    char big[200 * 1024];
    (void)s;
    memset(big, 0x5a, sizeof big);
    if (write(devnull, big, sizeof big) < 0)
        _exit(4);
    siglongjmp(jb, 1);
}

static void *probe(void *a)
{
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)0 = 1;
    printf("%s: recovered from the fault\n", (const char *)a);
    fflush(stdout);
    return NULL;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    pthread_t t;
    devnull = open("/dev/null", O_WRONLY);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = handler; /* no SA_ONSTACK */
    if (argc > 1 && !strcmp(argv[1], "nodefer"))
        sa.sa_flags |= SA_NODEFER;
    sigaction(SIGSEGV, &sa, NULL);
    probe("main thread");
    pthread_create(&t, NULL, probe, "second thread");
    pthread_join(t, NULL);
    printf("breadcrumb rc=%d\n", tattle_add_breadcrumb("robust", "after the big handler"));
    printf("capture_exception rc=%d\n", tattle_capture_exception("BigHandler", "after the big handler"));
    printf("flush rc=%d\n", tattle_flush(3000));
    printf("exit 0\n");
    return 0;
}
