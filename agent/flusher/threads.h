/* threads.h - the other threads of a crashed process, stopped for a moment.
 *
 * Owns: reading the registers and the top of the stack of every thread of
 * the crashed process except the crashing one (whose record the handler
 * wrote), while the crashing thread waits in its handler. A short-lived
 * helper process does the ptrace work (PTRACE_SEIZE, PTRACE_INTERRUPT,
 * PTRACE_GETREGS, PTRACE_DETACH) with a deadline, so that a thread that does
 * not stop (stuck in the kernel) costs the deadline and nothing else: when
 * the helper exits the kernel lets go of whatever it still traced. A thread
 * leaves no trace of it: no signal is sent, none is lost (a signal it was
 * stopped for is handed back on detach).
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_THREADS_H
#define TATTLE_THREADS_H

#include <stdint.h>
#include <sys/types.h>

#include "shm.h"

#define TATTLE_MAX_THREADS 64            /* threads read besides the crashing one */
#define TATTLE_THREAD_STACK (32u * 1024u) /* stack copied from each, from its stack pointer */

struct tattle_thread {
    int32_t tid;
    int32_t stopped; /* its registers and stack were read */
    char name[16];
    uint64_t gregs[TATTLE_NGREG]; /* in ucontext's order, as the crash record's */
    uint64_t stack_start;
    uint32_t stack_len;
};

struct tattle_threads {
    uint32_t n;     /* listed (at most TATTLE_MAX_THREADS) */
    uint32_t total; /* the process's threads besides the crashing one */
    int32_t err;    /* errno of the first refusal (EPERM: ptrace not permitted), or 0 */
    struct tattle_thread t[TATTLE_MAX_THREADS];
    unsigned char stack[TATTLE_MAX_THREADS][TATTLE_THREAD_STACK];
};

struct tattle_stack;

/* The other threads' stacks, symbolized: st[i] belongs to t->t[i] (empty
 * when that thread could not be stopped). */
struct tattle_thread_stacks {
    struct tattle_threads *t;
    struct tattle_stack *st;
};

/* Read every thread of pid but skip_tid, within timeout_ms. NULL when the
 * process has no other thread or cannot be listed; free with
 * tattle__threads_free. */
struct tattle_threads *tattle__threads_capture(pid_t pid, pid_t skip_tid, int timeout_ms);
void tattle__threads_free(struct tattle_threads *t);

#endif
