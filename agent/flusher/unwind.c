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
    const struct tattle_crash *c;
    struct tattle_pcs *out;
};

static pid_t next_thread(Dwfl *dwfl, void *dwfl_arg, void **thread_argp)
{
    struct unwind_arg *ua = dwfl_arg;
    (void)dwfl;
    if (*thread_argp)
        return 0;
    *thread_argp = ua;
    return ua->c->tid;
}

/* Stack words come from the copy; anything else from the host if alive. */
static bool memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *dwfl_arg)
{
    struct unwind_arg *ua = dwfl_arg;
    const struct tattle_crash *c = ua->c;
    struct iovec local = {result, sizeof *result}, remote = {(void *)(uintptr_t)addr, sizeof *result};
    (void)dwfl;
    /* Compared as offsets: addr + 8 wraps for addresses near 2^64. */
    if (addr >= c->stack_start && c->stack_len >= sizeof *result &&
        addr - c->stack_start <= c->stack_len - sizeof *result) {
        memcpy(result, c->stack + (addr - c->stack_start), sizeof *result);
        return true;
    }
    return process_vm_readv(c->pid, &local, 1, &remote, 1, 0) == (ssize_t)sizeof *result;
}

/* x86_64 DWARF numbering: rax rdx rcx rbx rsi rdi rbp rsp r8..r15, then the
 * return address column (16) which holds rip. */
static bool set_initial_registers(Dwfl_Thread *thread, void *thread_arg)
{
    struct unwind_arg *ua = thread_arg;
    const uint64_t *g = ua->c->gregs;
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

size_t tattle__unwind_crash(struct tattle_symbolizer *s, const struct tattle_crash *c, struct tattle_pcs *out)
{
    Dwfl *dwfl = tattle__symbolizer_dwfl(s);
    struct unwind_arg ua = {c, out};
    int r;
    out->n = 0;
    out->complete = 0;
    if (!dwfl_attach_state(dwfl, NULL, c->pid, &thread_callbacks, &ua)) {
        /* No unwinder for this process: the crash site alone. */
        out->pc[0] = c->gregs[REG_RIP];
        out->activation[0] = 1;
        out->n = 1;
        return 1;
    }
    r = dwfl_getthread_frames(dwfl, c->tid, on_frame, out);
    out->complete = r == 0;
    if (out->n == 0) {
        out->pc[0] = c->gregs[REG_RIP];
        out->activation[0] = 1;
        out->n = 1;
    }
    return out->n;
}
