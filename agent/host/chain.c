/* chain.c - signal chaining (see chain.h).
 *
 * Signal context: PARTLY. The interposers may be called from the host's
 * signal handlers (sigaction is async-signal-safe): they take no lock that
 * could deadlock and allocate nothing. Finding libc's own functions with
 * dlsym() happens at load or on a host's first call.
 */
#include "chain.h"

#include "assafe.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Called through the GOT, bound at load: no PLT stub (a page of code
 * outside the load path) and no lazy binding. */
extern int __sigaction(int sig, const struct sigaction *act, struct sigaction *old) __attribute__((noplt));

typedef __sighandler_t (*signal_fn)(int, __sighandler_t);

/* One slot a signal: a seqlock around what the host asked for. */
struct host_action {
    _Atomic unsigned seq;
    struct sigaction sa;
};

/* Only the fatal signals are ever taken: a slot each. All zero is SIG_DFL,
 * so loading writes a slot only when the signal had another action. */
static struct host_action table[7];
/* One bit a slot: our handler is in the kernel, answer from the table. */
static _Atomic unsigned taken TATTLE_LOAD_DATA;

/* A fatal signal's slot, plus one (0: not one of ours). */
static const unsigned char slot_at[SIGSYS + 1] TATTLE_LOAD_CONST = {
    [SIGILL] = 1, [SIGTRAP] = 2, [SIGABRT] = 3, [SIGBUS] = 4, [SIGFPE] = 5, [SIGSEGV] = 6, [SIGSYS] = 7};

TATTLE_LOAD_PATH static struct host_action *slot_of(int sig)
{
    if (sig <= 0 || sig > SIGSYS || !slot_at[sig])
        return NULL;
    return &table[slot_at[sig] - 1];
}
static _Atomic int writer_busy;
static signal_fn real_signal, real_sysv_signal, real_bsd_signal, real_sigset;

int tattle__chain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    return __sigaction(sig, act, old);
}

static void find_libc(void)
{
    if (!real_signal) {
        real_sysv_signal = (signal_fn)dlsym(RTLD_NEXT, "sysv_signal");
        real_bsd_signal = (signal_fn)dlsym(RTLD_NEXT, "bsd_signal");
        real_sigset = (signal_fn)dlsym(RTLD_NEXT, "sigset");
        real_signal = (signal_fn)dlsym(RTLD_NEXT, "signal");
    }
}

static int is_taken(int sig)
{
    struct host_action *h = slot_of(sig);
    return h && (atomic_load_explicit(&taken, memory_order_acquire) & (1u << (h - table)));
}

TATTLE_LOAD_PATH static void table_write(int sig, const struct sigaction *sa)
{
    struct host_action *h = slot_of(sig);
    int spins = 0;
    if (!h)
        return;
    /* Writers are rare; one that interrupted another on the same thread
     * must not wait forever. */
    while (atomic_exchange_explicit(&writer_busy, 1, memory_order_acquire) && ++spins < 10000)
        sched_yield();
    atomic_fetch_add_explicit(&h->seq, 1, memory_order_acq_rel);
    atomic_thread_fence(memory_order_release);
    memcpy(&h->sa, sa, sizeof *sa);
    atomic_thread_fence(memory_order_release);
    atomic_fetch_add_explicit(&h->seq, 1, memory_order_release);
    atomic_store_explicit(&writer_busy, 0, memory_order_release);
}

void tattle__chain_get(int sig, struct sigaction *out)
{
    struct host_action *h = slot_of(sig);
    int tries;
    if (!h) {
        memset(out, 0, sizeof *out);
        out->sa_handler = SIG_DFL;
        return;
    }
    for (tries = 0; tries < 10000; tries++) {
        unsigned s1 = atomic_load_explicit(&h->seq, memory_order_acquire);
        if (s1 & 1)
            continue;
        memcpy(out, &h->sa, sizeof *out);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&h->seq, memory_order_relaxed) == s1)
            return;
    }
    memcpy(out, &h->sa, sizeof *out);
}

void tattle__chain_reset(int sig)
{
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    table_write(sig, &dfl);
}

/* SIG_DFL with no flags and an empty mask (the kernel's mask is its first
 * 64 bits; glibc leaves the rest of ours as it found it): the table's
 * zeroed slot already says so. */
TATTLE_LOAD_PATH static int is_default(const struct sigaction *sa)
{
    uint64_t mask;
    memcpy(&mask, &sa->sa_mask, sizeof mask);
    return sa->sa_handler == SIG_DFL && sa->sa_flags == 0 && mask == 0;
}

TATTLE_LOAD_PATH int tattle__chain_take(int sig, const struct sigaction *ours)
{
    struct sigaction old;
    struct host_action *h = slot_of(sig);
    memset(&old, 0, sizeof old);
    if (!h || __sigaction(sig, ours, &old) != 0)
        return -1;
    if (!is_default(&old))
        table_write(sig, &old);
    atomic_fetch_or_explicit(&taken, 1u << (h - table), memory_order_release);
    return 0;
}

void tattle__chain_give_back(int sig)
{
    struct host_action *h = slot_of(sig);
    struct sigaction host;
    if (!h || !is_taken(sig))
        return;
    tattle__chain_get(sig, &host);
    atomic_fetch_and_explicit(&taken, ~(1u << (h - table)), memory_order_acq_rel);
    (void)__sigaction(sig, &host, NULL);
}

/* ---- the interposers ---- */

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    struct sigaction prev;
    if (!is_taken(sig))
        return __sigaction(sig, act, old);
    tattle__chain_get(sig, &prev);
    if (act)
        table_write(sig, act);
    if (old)
        *old = prev;
    return 0;
}

/* glibc's signal()/bsd_signal(): BSD semantics. */
static __sighandler_t set_bsd(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    if (handler == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    sigemptyset(&act.sa_mask);
    sigaddset(&act.sa_mask, sig);
    act.sa_flags = SA_RESTART;
    sigaction(sig, &act, &old);
    return old.sa_handler;
}

EXPORT __sighandler_t signal(int sig, __sighandler_t handler)
{
    find_libc();
    if (!is_taken(sig))
        return real_signal ? real_signal(sig, handler) : SIG_ERR;
    return set_bsd(sig, handler);
}

EXPORT __sighandler_t bsd_signal(int sig, __sighandler_t handler)
{
    find_libc();
    if (!is_taken(sig))
        return real_bsd_signal ? real_bsd_signal(sig, handler) : SIG_ERR;
    return set_bsd(sig, handler);
}

/* System V semantics: one shot, not deferred. */
EXPORT __sighandler_t sysv_signal(int sig, __sighandler_t handler)
{
    struct sigaction act, old;
    find_libc();
    if (!is_taken(sig))
        return real_sysv_signal ? real_sysv_signal(sig, handler) : SIG_ERR;
    if (handler == SIG_ERR) {
        errno = EINVAL;
        return SIG_ERR;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = handler;
    act.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigaction(sig, &act, &old);
    return old.sa_handler;
}

EXPORT __sighandler_t __sysv_signal(int sig, __sighandler_t handler)
{
    return sysv_signal(sig, handler);
}

EXPORT __sighandler_t sigset(int sig, __sighandler_t disp)
{
    struct sigaction act, old;
    sigset_t one, was;
    find_libc();
    if (!is_taken(sig))
        return real_sigset ? real_sigset(sig, disp) : SIG_ERR;
    sigemptyset(&one);
    sigaddset(&one, sig);
    if (disp == SIG_HOLD) {
        sigprocmask(SIG_BLOCK, &one, &was);
        sigaction(sig, NULL, &old);
        return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
    }
    memset(&act, 0, sizeof act);
    act.sa_handler = disp;
    sigaction(sig, &act, &old);
    sigprocmask(SIG_UNBLOCK, &one, &was);
    return sigismember(&was, sig) ? SIG_HOLD : old.sa_handler;
}
