/* unwind.c - out-of-process unwinding with libdw (see unwind.h).
 *
 * Signal context: NO (flusher only).
 */
#include "unwind.h"
#include "unwind_nocfi.h"

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
static void record(struct tattle_pcs *out, uint64_t pc, int activation)
{
    size_t at = out->total < TATTLE_UNWIND_HEAD ? (size_t)out->total
                                                : TATTLE_UNWIND_HEAD + (size_t)((out->total - TATTLE_UNWIND_HEAD) %
                                                                                TATTLE_UNWIND_TAIL);
    out->pc[at] = pc;
    out->activation[at] = (unsigned char)activation;
    out->total++;
}

static int on_frame(Dwfl_Frame *state, void *arg)
{
    struct tattle_pcs *out = arg;
    Dwarf_Addr pc;
    bool activation = false;
    if (!dwfl_frame_pc(state, &pc, &activation) || pc == 0)
        return DWARF_CB_ABORT;
    record(out, pc, activation);
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

/* Memory for the steps without CFI: the thread's stack copy, else the
 * live process. */
static int read_mem(void *arg, uint64_t addr, void *buf, size_t n)
{
    struct unwind_arg *ua = arg;
    const struct tattle_unwind_thread *c = ua->current;
    struct iovec local = {buf, n}, remote = {(void *)(uintptr_t)addr, n};
    if (c && addr >= c->stack_start && n <= c->stack_len && addr - c->stack_start <= c->stack_len - n) {
        memcpy(buf, c->stack + (addr - c->stack_start), n);
        return 1;
    }
    return process_vm_readv(ua->pid, &local, 1, &remote, 1, 0) == (ssize_t)n;
}

/* The innermost frames that have no CFI (code built without unwind
 * tables, a wild pc) are stepped here, as gdb would; g gets the registers
 * of the first frame that has CFI, or a pc of 0 when no step was found.
 * Returns the number of frames stepped. */
static int steps_without_cfi(Dwfl *dwfl, struct unwind_arg *ua, const struct tattle_unwind_thread *t, uint64_t *g,
                             struct tattle_pcs *out)
{
    struct tattle_nocfi_mem mem = {read_mem, ua};
    int activation = 1, steps = 0;
    memcpy(g, t->gregs, TATTLE_NGREG * sizeof *g);
    ua->current = t;
    while (steps < TATTLE_UNWIND_HEAD && !tattle__nocfi_has_cfi(dwfl, g[REG_RIP], activation)) {
        record(out, g[REG_RIP], activation);
        steps++;
        if (!tattle__nocfi_step(dwfl, &mem, g, activation) || g[REG_RIP] == 0) {
            g[REG_RIP] = 0;
            break;
        }
        activation = 0;
    }
    return steps;
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
        if (attached && steps_without_cfi(dwfl, &ua, &t[i], gregs, &out[i]) > 0) {
            /* From the first caller with CFI on, libdw walks. */
            uint64_t first = out[i].total;
            if (gregs[REG_RIP]) {
                caller = t[i];
                caller.gregs = gregs;
                ua.t = &caller;
                ua.n = 1;
                ua.current = &caller;
                out[i].complete = dwfl_getthread_frames(dwfl, caller.tid, on_frame, &out[i]) == 0;
                if (first < TATTLE_UNWIND_HEAD && out[i].total > first)
                    out[i].activation[first] = 0; /* a return address, though the walk began there */
                ua.t = t;
                ua.n = n;
            }
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
