/* raw_action.c - what the kernel holds as this process's SIGSEGV action,
 * asked with the raw system call (no interposer can answer for it), after
 * a first use of the agent (a thread), then optionally a crash.
 *
 *   raw_action [crash]
 *
 * Prints "SIGSEGV: default" or "SIGSEGV: a handler".
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct kernel_sigaction {
    void *handler;
    unsigned long flags;
    void *restorer;
    unsigned long mask;
};

static void *nothing(void *arg) { return arg; }

int main(int argc, char **argv)
{
    struct kernel_sigaction k;
    pthread_t t;
    memset(&k, 0, sizeof k);
    pthread_create(&t, NULL, nothing, NULL);
    pthread_join(t, NULL);
    if (syscall(SYS_rt_sigaction, SIGSEGV, NULL, &k, 8) != 0) {
        perror("rt_sigaction");
        return 2;
    }
    printf("SIGSEGV: %s\n", k.handler == (void *)SIG_DFL ? "default" : "a handler");
    fflush(stdout);
    if (argc > 1 && !strcmp(argv[1], "crash"))
        *(volatile int *)0 = 1;
    return 0;
}
