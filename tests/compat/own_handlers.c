/* own_handlers.c - a program with its own fatal-signal handlers, the way
 * runtimes and servers install them after the agent is loaded. Each verb
 * prints what it observes, so a run under the agent can be compared with a
 * plain run, byte for byte.
 *   query      what sigaction/signal/sigset return before and after
 *   longjmp    a SIGSEGV handler (installed with signal()) that siglongjmps
 *   fix        a SA_SIGINFO handler that mprotects the page and returns
 *   mask       the mask a handler runs with (sa_mask, the signal itself)
 *   nodefer    the same with SA_NODEFER
 *   reraise    a crash handler that prints, resets SIG_DFL and re-raises
 *   resethand  a SA_RESETHAND handler that returns: the fault repeats
 *   abort      a crash handler that calls abort()
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf recover;
static volatile int faults;
static char *page;

__attribute__((noinline)) static void write_null_here(void)
{
    *(volatile int *)0 = 42;
}

static void say(const char *s) { (void)!write(2, s, strlen(s)); }

static void to_recover(int sig)
{
    (void)sig;
    faults++;
    siglongjmp(recover, 1);
}

static void noop_handler(int sig) { (void)sig; }

static void query(void)
{
    struct sigaction sa, old;
    printf("before: %s\n", (sigaction(SIGSEGV, NULL, &old), old.sa_handler == SIG_DFL) ? "SIG_DFL" : "other");
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = noop_handler;
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGSEGV, NULL, &old);
    printf("after: ours=%d flags=%#x usr1-in-mask=%d\n", old.sa_handler == noop_handler,
           (unsigned)(old.sa_flags & (SA_RESTART | SA_ONSTACK | SA_SIGINFO)), sigismember(&old.sa_mask, SIGUSR1));
    printf("signal returned ours=%d\n", signal(SIGSEGV, SIG_DFL) == noop_handler);
    printf("sigset returned dfl=%d\n", sigset(SIGFPE, noop_handler) == SIG_DFL);
    printf("sigset now ours=%d\n", sigset(SIGFPE, SIG_DFL) == noop_handler);
    printf("bad signal: %d\n", sigaction(12345, &sa, NULL));
}

static void longjmp_verb(void)
{
    int i;
    signal(SIGSEGV, to_recover);
    for (i = 0; i < 3; i++)
        if (sigsetjmp(recover, 1) == 0)
            write_null_here();
    printf("recovered %d\n", faults);
}

static void fix_page(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    faults++;
    if ((char *)si->si_addr >= page && (char *)si->si_addr < page + 4096)
        mprotect(page, 4096, PROT_READ | PROT_WRITE);
}

static void fix_verb(void)
{
    struct sigaction sa;
    int i;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fix_page;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &sa, NULL);
    page = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (i = 0; i < 5; i++)
        ((volatile char *)page)[i * 100] = (char)i;
    printf("wrote 5 values, %d fault(s) fixed\n", faults);
}

static void report_mask(int sig)
{
    sigset_t now;
    (void)sig;
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("in handler: segv=%d usr1=%d usr2=%d\n", sigismember(&now, SIGSEGV), sigismember(&now, SIGUSR1),
           sigismember(&now, SIGUSR2));
    siglongjmp(recover, 1);
}

static void mask_verb(int flags)
{
    struct sigaction sa;
    sigset_t now;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = report_mask;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR1);
    sigaction(SIGSEGV, &sa, NULL);
    if (sigsetjmp(recover, 1) == 0)
        write_null_here();
    sigprocmask(SIG_SETMASK, NULL, &now);
    printf("after: segv=%d usr1=%d\n", sigismember(&now, SIGSEGV), sigismember(&now, SIGUSR1));
}

static void give_up_reraise(int sig)
{
    say("own handler: fatal signal, re-raising\n");
    signal(sig, SIG_DFL);
    raise(sig);
}

static void give_up_return(int sig)
{
    (void)sig;
    say("own handler: once\n");
}

static void give_up_abort(int sig)
{
    (void)sig;
    say("own handler: aborting\n");
    abort();
}

int main(int argc, char **argv)
{
    const char *v = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(v, "query"))
        query();
    else if (!strcmp(v, "longjmp"))
        longjmp_verb();
    else if (!strcmp(v, "fix"))
        fix_verb();
    else if (!strcmp(v, "mask"))
        mask_verb(0);
    else if (!strcmp(v, "nodefer"))
        mask_verb(SA_NODEFER);
    else if (!strcmp(v, "reraise") || !strcmp(v, "resethand") || !strcmp(v, "abort")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = !strcmp(v, "reraise") ? give_up_reraise : !strcmp(v, "abort") ? give_up_abort : give_up_return;
        sa.sa_flags = !strcmp(v, "resethand") ? SA_RESETHAND : 0;
        sigaction(SIGSEGV, &sa, NULL);
        printf("crashing\n");
        write_null_here();
        printf("not reached\n");
    } else {
        fprintf(stderr, "usage: own_handlers query|longjmp|fix|mask|nodefer|reraise|resethand|abort\n");
        return 2;
    }
    return 0;
}
