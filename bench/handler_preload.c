/* handler_preload.c - the floor for a preloaded crash agent: a constructor
 * that installs a handler for the same seven fatal signals as the agent
 * (SA_SIGINFO | SA_ONSTACK, every other signal masked except the
 * synchronous ones) and one alternate stack, and does nothing else.
 * bench_startup measures the agent against it. The handler puts the
 * default action back and returns, so the fault repeats and kills the
 * process as before. */
#include <signal.h>
#include <stddef.h>

static char alt_stack[64 * 1024];

static void on_fatal(int sig, siginfo_t *si, void *uc)
{
    (void)si;
    (void)uc;
    signal(sig, SIG_DFL);
}

__attribute__((constructor)) static void install(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof alt_stack, .ss_flags = 0};
    struct sigaction sa = {0};
    size_t i;
    sigaltstack(&ss, NULL);
    sa.sa_sigaction = on_fatal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigfillset(&sa.sa_mask);
    sigdelset(&sa.sa_mask, SIGSEGV);
    sigdelset(&sa.sa_mask, SIGBUS);
    sigdelset(&sa.sa_mask, SIGILL);
    sigdelset(&sa.sa_mask, SIGFPE);
    sigdelset(&sa.sa_mask, SIGTRAP);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
}
