/* unwind.c - out-of-process unwinding with libdw (see unwind.h).
 *
 * Signal context: NO (flusher only).
 */
#include "unwind.h"

#include <elfutils/libdwfl.h>
#include <string.h>
#include <sys/uio.h>
#include <ucontext.h>

struct unwind_arg {
    pid_t pid;
    const struct tattle_unwind_thread *t, *current;
    size_t n;
};

static pid_t next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
    struct unwind_arg *ua = dwfl_arg;
    const struct tattle_unwind_thread *next = *thread_argp ? (const struct tattle_unwind_thread *)*thread_argp + 1 : ua->t;
    (void)dwfl;
    if (next >= ua->t + ua->n)
        return 0;
    *thread_argp = (void *)next;
    return next->tid;
}

/* Stack words come from the copy of the thread being unwound; anything
 * else from the host if alive. */
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
    struct unwind_arg *ua = dwfl_arg;
    const struct tattle_unwind_thread *c = ua->current;
    struct iovec local = {result, sizeof *result}, remote = {(void *)(uintptr_t)addr, sizeof *result};
    (void)dwfl;
    /* Compared as offsets: addr + 8 wraps for addresses near 2^64. */
    if (c && addr >= c->stack_start && c->stack_len >= sizeof *result &&
        addr - c->stack_start <= c->stack_len - sizeof *result) {
        memcpy(result, c->stack + (addr - c->stack_start), sizeof *result);
        return true;
    }
    return process_vm_readv(ua->pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof *result;
}

/* x86_64 DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then the
 * return address column (16) which holds rip. */
static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    const struct tattle_unwind_thread *t = thread_arg;
    const uint64_t *g = t->gregs;
    Dwarf_Word regs[17] = {
        g[REG_RAX], g[REG_RDX], g[REG_RCX], g[REG_RBX], g[REG_RSI], g[REG_RDI], g[REG_RBP], g[REG_RSP],
        g[REG_R8],  g[REG_R9],  g[REG_R10], g[REG_R11], g[REG_R12], g[REG_R13], g[REG_R14], g[REG_R15],
        g[REG_RIP],
    };
    if (!dwfl_thread_state_registers(thread, 0, 17, regs))
        return false;
    dwfl_thread_state_register_pc(thread, g[REG_RIP]);
    return true;
}

static const Dwfl_Thread_Callbacks thread_callbacks = {
    .next_thread = next_thread,
    .memory_read = memory_read,
    .set_initial_registers = set_initial_registers,
};

/* The first TATTLE_UNWIND_HEAD frames in place, the rest in a ring of the
 * last TATTLE_UNWIND_TAIL. */
static int on_frame(Dwfl_Frame *state, void *arg)
{
    struct tattle_pcs *out = arg;
    Dwarf_Addr pc;
    bool activation = false;
    size_t at;
    if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
        return DWARF_CB_ABORT;
    at = out->total < TATTLE_UNWIND_HEAD ? (size_t)out->total
                                         : TATTLE_UNWIND_HEAD + (size_t)((out->total - TATTLE_UNWIND_HEAD) %
                                                                         TATTLE_UNWIND_TAIL);
    out->pc[at] = pc;
    out->activation[at] = activation;
    out->total++;
    return out->total < TATTLE_UNWIND_WALK ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* Put the ring in order (outermost last) and count what fell out of it. */
static void settle(struct tattle_pcs *out)
{
    uint64_t pc[TATTLE_UNWIND_TAIL];
    unsigned char act[TATTLE_UNWIND_TAIL];
    size_t start, i;
    if (out->total <= TATTLE_MAX_UNWIND) {
        out->n = (size_t)out->total;
        return;
    }
    start = (size_t)((out->total - TATTLE_UNWIND_HEAD) % TATTLE_UNWIND_TAIL);
    for (i = 0; i < TATTLE_UNWIND_TAIL; i++) {
        pc[i] = out->pc[TATTLE_UNWIND_HEAD + (start + i) % TATTLE_UNWIND_TAIL];
        act[i] = out->activation[TATTLE_UNWIND_HEAD + (start + i) % TATTLE_UNWIND_TAIL];
    }
    memcpy(out->pc + TATTLE_UNWIND_HEAD, pc, sizeof pc);
    memcpy(out->activation + TATTLE_UNWIND_HEAD, act, sizeof act);
    out->n = TATTLE_MAX_UNWIND;
    out->elided = out->total - TATTLE_MAX_UNWIND;
}

/* A pc outside every module (a call through a NULL or wild function
 * pointer) has no CFI; the call that got there left its return address at
 * the stack pointer: the caller's frame, from where CFI works again. */
static int wild_pc(Dwfl *dwfl, const struct tattle_unwind_thread *t, struct unwind_arg *ua,
                   struct tattle_unwind_thread *caller, uint64_t *gregs)
{
    Dwarf_Word ret;
    if (dwfl_addrmodule(dwfl, t->gregs[REG_RIP]))
        return 0;
    ua->current = t;
    if (!memory_read(dwfl, t->gregs[REG_RSP], &ret, ua) || !dwfl_addrmodule(dwfl, ret - 1))
        return 0;
    memcpy(gregs, t->gregs, TATTLE_NGREG * sizeof *gregs);
    gregs[REG_RIP] = ret;
    gregs[REG_RSP] += 8;
    *caller = *t;
    caller->gregs = gregs;
    return 1;
}

/* Without an unwinder, or when it found nothing: the pc alone. */
static void pc_alone(const struct tattle_unwind_thread *t, struct tattle_pcs *out)
{
    out->pc[0] = t->gregs[REG_RIP];
    out->activation[0] = 1;
    out->n = 1;
}

void tattle__unwind_threads(struct tattle_symbolizer *s, pid_t pid, const struct tattle_unwind_thread *t, size_t n,
                            struct tattle_pcs *out)
{
    Dwfl *dwfl = tattle__symbolizer_dwfl(s);
    struct unwind_arg ua = {pid, t, NULL, n};
    int attached = dwfl_attach_state(dwfl, NULL, pid, &thread_callbacks, &ua);
    size_t i;
    for (i = 0; i < n; i++) {
        struct tattle_unwind_thread caller;
        uint64_t gregs[TATTLE_NGREG];
        out[i].n = 0;
        out[i].total = out[i].elided = 0;
        out[i].complete = 0;
        if (attached && wild_pc(dwfl, &t[i], &ua, &caller, gregs)) {
            /* The wild pc itself, then the walk from its caller. */
            out[i].pc[0] = t[i].gregs[REG_RIP];
            out[i].activation[0] = 1;
            out[i].total = 1;
            ua.t = &caller;
            ua.n = 1;
            ua.current = &caller;
            out[i].complete = dwfl_getthread_frames(dwfl, caller.tid, on_frame, &out[i]) == 0;
            out[i].activation[1] = 0; /* a return address, though the walk began there */
            ua.t = t;
            ua.n = n;
        } else if (attached) {
            ua.current = &t[i];
            out[i].complete = dwfl_getthread_frames(dwfl, t[i].tid, on_frame, &out[i]) == 0;
        }
        settle(&out[i]);
        if (out[i].n == 0)
            pc_alone(&t[i], &out[i]);
    }
}

size_t tattle__unwind_crash(struct tattle_symbolizer *s, const struct tattle_crash *c, struct tattle_pcs *out)
{
    struct tattle_unwind_thread t = {c->tid, c->gregs, c->stack_start, c->stack, c->stack_len};
    tattle__unwind_threads(s, c->pid, &t, 1, out);
    return out->n;
}
