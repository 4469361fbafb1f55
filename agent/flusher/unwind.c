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

static int on_frame(Dwfl_Frame *state, void *arg)
{
    struct tattle_pcs *out = arg;
    Dwarf_Addr pc;
    bool activation = false;
    if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
        return DWARF_CB_ABORT;
    out->pc[out->n] = pc;
    out->activation[out->n] = activation;
    out->n++;
    return out->n < TATTLE_MAX_UNWIND ? DWARF_CB_OK : DWARF_CB_ABORT;
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
        out[i].n = 0;
        out[i].complete = 0;
        if (attached) {
            ua.current = &t[i];
            out[i].complete = dwfl_getthread_frames(dwfl, t[i].tid, on_frame, &out[i]) == 0;
        }
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
