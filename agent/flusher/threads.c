/* threads.c - the other threads of a crashed process (see threads.h).
 *
 * Signal context: NO. The helper shares the flusher's memory until it exits
 * (CLONE_VM | CLONE_VFORK: the calling thread waits for it), so it makes
 * raw system calls only and writes nothing but the capture it was given.
 */
#include "threads.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "assafe.h"

#define HELPER_STACK (64 * 1024)

/* The helper runs on a stack and in a process ThreadSanitizer knows
 * nothing of: none of its instrumentation there. */
#define HELPER __attribute__((no_sanitize("thread")))

HELPER static uint64_t helper_now_ms(void)
{
    struct timespec ts;
    syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct job {
    pid_t pid;
    int timeout_ms;
    struct tattle_threads *t;
};

HELPER static void to_gregs(const struct user_regs_struct *r, uint64_t *g)
{
    g[REG_R8] = r->r8, g[REG_R9] = r->r9, g[REG_R10] = r->r10, g[REG_R11] = r->r11;
    g[REG_R12] = r->r12, g[REG_R13] = r->r13, g[REG_R14] = r->r14, g[REG_R15] = r->r15;
    g[REG_RDI] = r->rdi, g[REG_RSI] = r->rsi, g[REG_RBP] = r->rbp, g[REG_RBX] = r->rbx;
    g[REG_RDX] = r->rdx, g[REG_RAX] = r->rax, g[REG_RCX] = r->rcx, g[REG_RSP] = r->rsp;
    g[REG_RIP] = r->rip, g[REG_EFL] = r->eflags;
}

/* A thread stopped: its registers, the top of its stack (from below the red
 * zone), then let it go, with the signal it stopped for if that is why. */
HELPER static void read_thread(struct job *j, int i, int status)
{
    struct tattle_thread *th = &j->t->t[i];
    struct user_regs_struct regs;
    int sig = (status >> 16) == PTRACE_EVENT_STOP ? 0 : WSTOPSIG(status);
    if (syscall(SYS_ptrace, PTRACE_GETREGS, th->tid, 0, &regs) == 0) {
        struct iovec local = {j->t->stack[i], TATTLE_THREAD_STACK};
        struct iovec remote = {(void *)(uintptr_t)(regs.rsp - 128), TATTLE_THREAD_STACK};
        ssize_t n = syscall(SYS_process_vm_readv, j->pid, &local, 1UL, &remote, 1UL, 0UL);
        to_gregs(&regs, th->gregs);
        th->stack_start = regs.rsp - 128;
        th->stack_len = n > 0 ? (uint32_t)n : 0;
        th->stopped = 1;
    }
    syscall(SYS_ptrace, PTRACE_DETACH, th->tid, 0, (long)sig);
}

HELPER static int helper_main(void *arg)
{
    struct job *j = arg;
    struct tattle_threads *t = j->t;
    char seized[TATTLE_MAX_THREADS] = {0};
    uint64_t deadline = helper_now_ms() + (uint64_t)j->timeout_ms;
    unsigned i, left = 0;
    /* Whatever happens, the kernel detaches us when we die. */
    syscall(SYS_alarm, (unsigned)(j->timeout_ms / 1000 + 2));
    for (i = 0; i < t->n; i++) {
        if (syscall(SYS_ptrace, PTRACE_SEIZE, t->t[i].tid, 0, 0) != 0) {
            if (!t->err && errno != ESRCH)
                t->err = errno;
            continue;
        }
        syscall(SYS_ptrace, PTRACE_INTERRUPT, t->t[i].tid, 0, 0);
        seized[i] = 1;
        left++;
    }
    while (left > 0 && helper_now_ms() < deadline) {
        struct timespec ms = {0, 1000000};
        for (i = 0; i < t->n; i++) {
            int status = 0;
            long r;
            if (!seized[i])
                continue;
            r = syscall(SYS_wait4, t->t[i].tid, &status, __WALL | WNOHANG, NULL);
            if (r == t->t[i].tid && WIFSTOPPED(status))
                read_thread(j, (int)i, status);
            if (r == t->t[i].tid || (r < 0 && errno == ECHILD)) {
                seized[i] = 0;
                left--;
            }
        }
        if (left > 0)
            syscall(SYS_nanosleep, &ms, NULL);
    }
    syscall(SYS_exit, 0);
    return 0;
}

/* The threads to read, with their names, from /proc/PID/task. */
static int list_threads(pid_t pid, pid_t skip_tid, struct tattle_threads *t)
{
    char path[64];
    struct dirent *d;
    DIR *dir;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    if (!(dir = opendir(path)))
        return -1;
    while ((d = readdir(dir)) != NULL) {
        long tid = strtol(d->d_name, NULL, 10);
        struct tattle_thread *th;
        size_t n;
        if (tid <= 0 || tid == skip_tid)
            continue;
        t->total++;
        if (t->n >= TATTLE_MAX_THREADS)
            continue;
        th = &t->t[t->n++];
        th->tid = (int32_t)tid;
        snprintf(path, sizeof path, "/proc/%d/task/%ld/comm", (int)pid, tid);
        n = tattle__read_file(path, th->name, sizeof th->name - 1);
        th->name[n] = 0;
        if (n > 0 && th->name[n - 1] == '\n')
            th->name[n - 1] = 0;
    }
    closedir(dir);
    return 0;
}

static int by_tid(const void *a, const void *b)
{
    const struct tattle_thread *x = a, *y = b;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

struct tattle_threads *tattle__threads_capture(pid_t pid, pid_t skip_tid, int timeout_ms)
{
    struct tattle_threads *t = mmap(NULL, sizeof *t, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct job j = {pid, timeout_ms, t};
    char *stack;
    pid_t helper;
    if (t == MAP_FAILED)
        return NULL;
    if (list_threads(pid, skip_tid, t) != 0 || t->total == 0) {
        tattle__threads_free(t);
        return NULL;
    }
    qsort(t->t, t->n, sizeof t->t[0], by_tid);
    stack = malloc(HELPER_STACK);
    if (!stack) {
        t->err = ENOMEM;
        return t;
    }
    /* The helper, not this process, is the tracer: when it exits, the
     * kernel detaches whatever it still holds. */
    helper = clone(helper_main, stack + HELPER_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &j);
    if (helper < 0)
        t->err = errno;
    else
        while (waitpid(helper, NULL, 0) < 0 && errno == EINTR)
            ;
    free(stack);
    return t;
}

void tattle__threads_free(struct tattle_threads *t)
{
    if (t)
        munmap(t, sizeof *t);
}
