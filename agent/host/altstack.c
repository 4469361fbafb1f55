/* altstack.c - per-thread alternate signal stacks (see altstack.h).
 *
 * Signal context: NO (tattle__altstack_guard excepted). The main thread's
 * stack is static; pthread_create()
 * is interposed, its trampoline maps the new thread's stack (with a guard
 * page) before calling the host's start routine, and a pthread key
 * destructor unmaps it when the thread ends.
 */
#include "altstack.h"

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "assafe.h"
#include "entry.h"

#define EXPORT __attribute__((visibility("default")))
#define ALT_SIZE (64 * 1024)
#define GUARD 4096

static pthread_key_t alt_key;
static _Atomic int alt_key_state; /* for tattle__key_once */

static void alt_free(void *mem);

/* The key that unmaps a thread's stack when it ends, made with the first
 * thread (a host that never starts one never pays for it). */
static int alt_key_ready(void) { return tattle__key_once(&alt_key_state, &alt_key, alt_free); }

/* Map a stack with a PROT_NONE guard page below it and switch to it,
 * unless the thread already has one at least as large. */
static void *alt_setup(void)
{
    stack_t cur, ss;
    char *mem;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE) && cur.ss_size >= ALT_SIZE)
        return NULL;
    mem = mmap(NULL, ALT_SIZE + GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
               -1, 0);
    if (mem == MAP_FAILED)
        return NULL;
    mprotect(mem, GUARD, PROT_NONE);
    ss.ss_sp = mem + GUARD;
    ss.ss_size = ALT_SIZE;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(mem, ALT_SIZE + GUARD);
        return NULL;
    }
    return mem;
}

static void alt_free(void *mem)
{
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    munmap(mem, ALT_SIZE + GUARD);
}

/* The main thread's stack lives as long as the process: it is static, so
 * loading costs no mapping. Its lowest page becomes a guard page at first
 * use (an overflow then faults instead of writing over the agent's other
 * data): one system call, and one split mapping, fewer at load. */
static char main_alt_stack[GUARD + ALT_SIZE] TATTLE_LARGE_STATIC;
static int main_alt_ours TATTLE_LOAD_DATA;

TATTLE_LOAD_PATH void tattle__altstack_init(void)
{
    stack_t cur, ss = {.ss_sp = main_alt_stack + GUARD, .ss_size = ALT_SIZE, .ss_flags = 0};
    if (tattle__raw_syscall4(SYS_sigaltstack, (long)&ss, (long)&cur, 0, 0) == 0 && !(cur.ss_flags & SS_DISABLE) &&
        cur.ss_size >= ALT_SIZE)
        (void)tattle__raw_syscall4(SYS_sigaltstack, (long)&cur, 0, 0, 0); /* the host had one of its own: keep it */
    else
        main_alt_ours = 1;
}

void tattle__altstack_guard(void)
{
    if (main_alt_ours)
        (void)tattle__raw_syscall4(SYS_mprotect, (long)main_alt_stack, GUARD, PROT_NONE, 0);
}

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_trampoline(void *p)
{
    struct start s = *(struct start *)p;
    void *mem;
    free(p);
    mem = alt_setup();
    if (mem && alt_key_ready())
        pthread_setspecific(alt_key, mem);
    return s.fn(s.arg);
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    static pthread_create_fn real;
    struct start *s;
    int r;
    if (!real)
        real = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
    /* A first thread is a first use: the configuration may say the agent
     * is off, and then threads get no stack of ours. */
    s = tattle__agent_init(0) ? malloc(sizeof *s) : NULL;
    if (!s)
        return real(t, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    r = real(t, attr, thread_trampoline, s);
    if (r != 0)
        free(s);
    return r;
}
