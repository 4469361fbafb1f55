/* signals.c - the crash handler and how the process dies afterwards.
 *
 * What runs where:
 *  - At load, tattle__signals_install() puts on_fatal_signal() in place for
 *    the seven fatal signals with SA_SIGINFO|SA_ONSTACK and no SA_NODEFER
 *    or SA_RESETHAND, masking every other signal except the synchronous ones
 *    (a synchronous signal that arrives blocked kills the process at once).
 *  - In the handler (signal context, everything signal-safe):
 *      on_fatal_signal()   errno saved; vfork children, re-entry and the
 *                          fault guard are sorted out first
 *      forward()           the host's own handler, if it installed one
 *                          (chain.c keeps the table), runs first, as the
 *                          kernel would have run it; when it returns or
 *                          leaves by siglongjmp, that was no crash
 *      original_fault()    a host that gave up (SIG_DFL and re-raise, or
 *                          abort) is reported with the fault it was handed
 *      gate_enter()        the first crashing thread owns the capture; the
 *                          others park (bounded) and then die
 *      capture()           stage-1 record into the shared crash area:
 *                          registers, siginfo, a copy of the stack, the
 *                          module map, abort/assert/C++ details; then the
 *                          flusher is woken (or started) and awaited, bounded
 *      print_report()      the flusher's text report, written to fd 2
 *      die_as_before()     the previous action back in place; a hardware
 *                          fault returns and faults again, anything else is
 *                          re-queued with its original siginfo
 *  - Unwinding and symbolizing never happen here: the flusher does them
 *    from the copied stack, out of process.
 */
#include "signals.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "assafe.h"
#include "chain.h"
#include "context.h"
#include "entry.h"
#include "hooks.h"
#include "json.h"
#include "link.h"
#include "reaped.h"

static const int fatal_signals[] TATTLE_LOAD_CONST = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
#define N_FATAL (sizeof fatal_signals / sizeof fatal_signals[0])

/* The most a crash report may wait for room on stderr (a pipe nobody
 * drains): then the process dies as it would have. */
#define REPORT_WRITE_MS 1000

static const struct tattle_config *config;
static pid_t process_id TATTLE_LOAD_DATA; /* getpid() of the process we serve (0 until first use) */
/* getpid() at load, or in a child forked through an interposer: before the
 * first use, a crash in any other process is a vfork child's. */
static pid_t load_pid TATTLE_LOAD_DATA;
static _Atomic pid_t crash_owner;    /* tid of the thread doing the capture */
static _Atomic uint32_t crash_over;  /* futex: the capture finished */

static __thread int in_handler;
static __thread int guard_armed;

/* The fault last handed to the host's own handler on this thread. */
struct forwarded_fault {
    uintptr_t mark;  /* address of a local of forward(): deeper means nested */
    int sig;
    uint64_t pc;
    siginfo_t si;
    ucontext_t *uc; /* valid only while nested inside forward() */
};
static __thread struct forwarded_fault forwarded;
static __thread sigjmp_buf guard_jmp;

sigjmp_buf *tattle__signals_guard_arm(void)
{
    guard_armed = 1;
    return &guard_jmp;
}

void tattle__signals_guard_end(void) { guard_armed = 0; }

/* A fault that repeats by itself when the handler returns. */
static int is_hardware_fault(int sig, const siginfo_t *si)
{
    if (sig != SIGSEGV && sig != SIGBUS && sig != SIGILL && sig != SIGFPE)
        return 0;
    return si->si_code > 0 && si->si_code != SI_KERNEL;
}

/* Put the previous action back and make the signal take its course: the
 * same death (status, core, shell message) as without us. Signal-safe. */
static void die_as_before(int sig, siginfo_t *si)
{
    struct sigaction host;
    tattle__chain_get(sig, &host);
    tattle__chain_real_sigaction(sig, &host, NULL);
    if (is_hardware_fault(sig, si))
        return; /* the instruction faults again, now under the old action */
    /* The signal is blocked while we run (no SA_NODEFER), so it stays
     * pending and is delivered as soon as we return. */
    if (tattle__sys_tgsigqueueinfo(tattle__sys_getpid(), tattle__sys_gettid(), sig, si) != 0)
        tattle__sys_tgkill(tattle__sys_getpid(), tattle__sys_gettid(), sig);
}

/* One capture per process. Returns 1 when this thread owns it. */
static int gate_enter(void)
{
    pid_t none = 0, me = tattle__sys_gettid();
    if (atomic_compare_exchange_strong(&crash_owner, &none, me))
        return 1;
    /* Another thread is capturing: wait for it as long as its capture may
     * take (the crash timeout, then the report's write), then die. */
    tattle__futex_wait((volatile uint32_t *)&crash_over, 0, config->crash_timeout_ms + REPORT_WRITE_MS + 100);
    return 0;
}

static void gate_leave(void)
{
    atomic_store(&crash_over, 1);
    tattle__futex_wake((volatile uint32_t *)&crash_over);
}

static void copy_registers(struct tattle_crash *c, const ucontext_t *uc)
{
    int i;
    for (i = 0; i < TATTLE_NGREG; i++)
        c->gregs[i] = (uint64_t)uc->uc_mcontext.gregs[i];
}

static void copy_stack(struct tattle_crash *c)
{
    /* Start below the stack pointer to keep the red zone. */
    uint64_t sp = c->gregs[REG_RSP];
    uint64_t start = sp > 256 ? sp - 256 : 0;
    c->stack_start = start;
    c->stack_len = (uint32_t)tattle__copy_readable(c->stack, (uintptr_t)start, sizeof c->stack);
}

/* The thread's context and the latest breadcrumbs, as JSON. Reading the
 * process layer while another thread rewrites it could fault: guarded. */
static void copy_context(struct tattle_crash *c)
{
    struct tattle_out o = {c->context, sizeof c->context, 0, 0};
    if (tattle__signals_guard_begin() == 0)
        tattle__context_write(&o, 1);
    tattle__signals_guard_end();
    c->context_len = o.overflow ? 0 : (uint32_t)o.len;
}

static void fill_record(struct tattle_crash *c, int sig, const siginfo_t *si, const ucontext_t *uc)
{
    c->signo = sig;
    c->si_code = si->si_code;
    c->si_errno = si->si_errno;
    c->fault_addr = (uint64_t)(uintptr_t)si->si_addr;
    if (si->si_code <= 0) { /* sent by a process: kill, tgkill, raise, abort */
        c->sender_pid = si->si_pid;
        c->sender_uid = si->si_uid;
    }
    c->pid = tattle__sys_getpid();
    c->ppid = getppid();
    c->tid = tattle__sys_gettid();
    c->time_ns = tattle__now_realtime_ns();
    prctl(PR_GET_NAME, c->thread_name, 0, 0, 0);
    copy_registers(c, uc);
    copy_stack(c);
    c->maps_len = (uint32_t)tattle__read_file("/proc/self/maps", c->maps, sizeof c->maps - 1);
    c->maps[c->maps_len] = 0;
    if (sig == SIGABRT)
        tattle__hooks_fill_abort(c);
    copy_context(c);
}

static void print_report(const struct tattle_crash *c)
{
    if (config->stderr_report && c->report_len > 0 && c->report_len <= sizeof c->report)
        (void)tattle__write_bounded(2, c->report, c->report_len, REPORT_WRITE_MS);
}

/* No flusher, so no stack or symbols: at least the fault, in one line. */
static void print_bare_fault(const struct tattle_crash *c)
{
    char line[192], addr[24], pc[24];
    struct tattle_out o = {line, sizeof line, 0, 0};
    const char *abbrev = sigabbrev_np(c->signo);
    if (!config->stderr_report)
        return;
    tattle__fmt_hex(addr, c->fault_addr);
    tattle__fmt_hex(pc, c->gregs[REG_RIP]);
    tattle__out_str(&o, "tattle: SIG");
    tattle__out_str(&o, abbrev ? abbrev : "?");
    tattle__out_str(&o, " at address ");
    tattle__out_str(&o, addr);
    tattle__out_str(&o, ", pc ");
    tattle__out_str(&o, pc);
    tattle__out_str(&o, " (no stack: the flusher could not be started)\n");
    (void)tattle__write_bounded(2, line, o.len, REPORT_WRITE_MS);
}

static void capture(int sig, siginfo_t *si, ucontext_t *uc)
{
    struct tattle_shm *shm = tattle__link_get(1);
    struct tattle_crash *c;
    uint32_t idle = TATTLE_CRASH_IDLE;
    int done;
    if (!shm) {
        tattle__write_str(2, "tattle: could not record this crash (no shared memory)\n");
        return;
    }
    c = &shm->crash;
    if (!atomic_compare_exchange_strong(&c->state, &idle, TATTLE_CRASH_WRITING))
        return;
    if (config->test_die_mid_record) /* as a process killed while its handler writes */
        tattle__sys_tgkill(tattle__sys_getpid(), tattle__sys_gettid(), SIGKILL);
    fill_record(c, sig, si, uc);
    tattle__link_allow_tracer();
    atomic_store_explicit(&c->state, TATTLE_CRASH_READY, memory_order_release);
    done = tattle__link_wait_crash(config->crash_timeout_ms, &c); /* c may move to a new region */
    if (done > 0) {
        print_report(c);
        tattle__link_notice_seen(); /* its last line says where the event went */
    } else if (done < 0) {
        print_bare_fault(c);
    } else if (config->stderr_report) {
        tattle__write_str(2, "tattle: the crash report did not complete in time\n");
    }
}

/* A host handler installed without SA_ONSTACK runs where the kernel would
 * have run it: on the interrupted stack, not on our alternate stack (a
 * handler with a large frame would overflow it). While it runs there the
 * alternate stack is disabled, so that a signal nested in the host's
 * handler is delivered on the thread's stack too instead of over our own
 * frames at the top of the alternate stack (and a stack overflow in it
 * kills the process, as without us). A host that leaves by siglongjmp
 * leaves it disabled: the next signal on this thread re-arms it. */
static __thread stack_t alt_saved;
static __thread int alt_disarmed;

struct host_call {
    int sig;
    siginfo_t *si;
    ucontext_t *uc;
    const struct sigaction *host;
    sigset_t mask, ours;
};

static void call_host(struct host_call *h)
{
    sigprocmask(SIG_SETMASK, &h->mask, &h->ours);
    if (h->host->sa_flags & SA_SIGINFO)
        h->host->sa_sigaction(h->sig, h->si, h->uc);
    else
        h->host->sa_handler(h->sig);
    sigprocmask(SIG_SETMASK, &h->ours, NULL);
}

static void call_host_disarmed(void *arg)
{
    stack_t off = {.ss_flags = SS_DISABLE};
    int disarmed = sigaltstack(&off, &alt_saved) == 0;
    alt_disarmed = disarmed;
    call_host(arg);
    if (disarmed)
        sigaltstack(&alt_saved, NULL);
    alt_disarmed = 0;
}

/* Call fn(arg) with the stack pointer at top (16-byte aligned). */
static void call_on_stack(uintptr_t top, void (*fn)(void *), void *arg)
{
    __asm__ volatile("mov %%rsp, %%rbx\n\t"
                     "mov %[top], %%rsp\n\t"
                     "call *%[fn]\n\t"
                     "mov %%rbx, %%rsp\n\t"
                     : "+D"(arg)
                     : [top] "r"(top), [fn] "r"(fn)
                     : "rbx", "rax", "rcx", "rdx", "rsi", "r8", "r9", "r10", "r11", "memory", "cc", "xmm0", "xmm1",
                       "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
                       "xmm13", "xmm14", "xmm15");
}

/* Are we on an alternate stack right now? */
static int on_alt_stack(void)
{
    stack_t ss;
    return sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK);
}

/* Where a handler without SA_ONSTACK would have started: below the
 * interrupted stack pointer and its red zone. */
static uintptr_t interrupted_stack_top(const ucontext_t *uc)
{
    return ((uintptr_t)uc->uc_mcontext.gregs[REG_RSP] - 128 - 512) & ~(uintptr_t)15;
}

/* Run the host's handler as the kernel would have: its mask (the mask at
 * the fault, plus sa_mask, plus the signal unless SA_NODEFER), SA_RESETHAND,
 * one or three arguments, its stack. It may return (the fault is handled,
 * perhaps after fixing the context) or leave by siglongjmp. */
static void forward(int sig, siginfo_t *si, ucontext_t *uc, const struct sigaction *host)
{
    volatile char here = 0;
    struct host_call h = {sig, si, uc, host, {{0}}, {{0}}};
    int elsewhere = !(host->sa_flags & SA_ONSTACK) && on_alt_stack();
    /* Host handlers nest (a JVM probes memory while it writes hs_err):
     * the outer record comes back when this one ends. */
    struct forwarded_fault outer = forwarded;
    sigorset(&h.mask, &uc->uc_sigmask, &host->sa_mask);
    if (!(host->sa_flags & SA_NODEFER))
        sigaddset(&h.mask, sig);
    if (host->sa_flags & SA_RESETHAND)
        tattle__chain_reset(sig);
    forwarded.mark = elsewhere ? interrupted_stack_top(uc) : (uintptr_t)&here;
    forwarded.sig = sig;
    forwarded.pc = (uint64_t)uc->uc_mcontext.gregs[REG_RIP];
    forwarded.si = *si;
    forwarded.uc = uc;
    if (elsewhere)
        call_on_stack(forwarded.mark, call_host_disarmed, &h);
    else
        call_host(&h);
    forwarded = outer;
    if (!outer.mark) /* keep sig, pc and si: a re-raise arrives after we return */
        forwarded = (struct forwarded_fault){0, sig, (uint64_t)uc->uc_mcontext.gregs[REG_RIP], *si, NULL};
    (void)here;
}

/* Inside forward() on this thread, below it on the same stack? A host
 * that left by siglongjmp leaves the record stale: then the saved context
 * has most likely been overwritten, and the distance is checked too. */
static int nested_in_forward(void)
{
    volatile char here = 0;
    uintptr_t at = (uintptr_t)&here;
    return forwarded.mark && forwarded.uc && at < forwarded.mark && forwarded.mark - at < (16u << 20) &&
           (uint64_t)forwarded.uc->uc_mcontext.gregs[REG_RIP] == forwarded.pc;
}

/* The host gave up on a fault it was handed: report the fault itself. A
 * re-raise from a handler that returned arrives at the fault's own context
 * with siginfo saying "sent by raise"; the original siginfo is the truth. */
static void original_fault(int *sig, siginfo_t **si, ucontext_t **uc)
{
    if (nested_in_forward()) {
        *sig = forwarded.sig;
        *si = &forwarded.si;
        *uc = forwarded.uc;
    } else if (forwarded.sig == *sig && (*si)->si_code <= 0 && (*si)->si_pid == process_id &&
               (uint64_t)(*uc)->uc_mcontext.gregs[REG_RIP] == forwarded.pc) {
        *si = &forwarded.si;
    }
}

static void on_fatal_signal(int sig, siginfo_t *si, void *ucv)
{
    int saved_errno = errno;
    struct sigaction host;
    int report_sig = sig;
    siginfo_t *report_si = si;
    ucontext_t *report_uc = ucv;
    pid_t me;
    if (guard_armed && (sig == SIGSEGV || sig == SIGBUS)) {
        guard_armed = 0;
        siglongjmp(guard_jmp, 1);
    }
    /* A host handler left by siglongjmp with our alternate stack disabled
     * (forward): arm it again, unless this signal is nested in it. */
    if (alt_disarmed && !nested_in_forward()) {
        sigaltstack(&alt_saved, NULL);
        alt_disarmed = 0;
    }
    /* A forked child takes over from its parent (the first thread to call
     * in does), and this thread drops the parent's contexts. */
    me = tattle__sys_getpid();
    tattle__api_thread_check();
    /* A vfork child shares our memory: touch nothing, just die. A crash
     * inside this handler, or a second signal on this thread: just die.
     * (Until the first use, the pid noted at load or by a fork interposer.) */
    if (me != (process_id ? process_id : load_pid) || in_handler) {
        die_as_before(sig, si);
        errno = saved_errno;
        return;
    }
    /* The host's own handler first: a signal it handles is no crash. */
    tattle__chain_get(sig, &host);
    if (host.sa_handler != SIG_DFL && host.sa_handler != SIG_IGN) {
        forward(sig, si, ucv, &host);
        errno = saved_errno;
        return;
    }
    /* PID 1 of a namespace: the kernel drops a signal a process sends it
     * while its action is SIG_DFL (only faults are forced on it). */
    if (host.sa_handler == SIG_DFL && me == 1 && si->si_code <= 0) {
        errno = saved_errno;
        return;
    }
    /* An ignored signal sent by someone stays ignored, and is no crash. */
    if (host.sa_handler == SIG_IGN && !is_hardware_fault(sig, si)) {
        errno = saved_errno;
        return;
    }
    /* The configuration, if nothing asked for the agent before: it may
     * disable it (the file's TATTLE_DISABLE), and then this dies as it
     * would have without us. */
    if (!tattle__agent_init(1)) {
        die_as_before(sig, si);
        errno = saved_errno;
        return;
    }
    /* A wrapper dying by the signal its child died of (timeout, sudo): the
     * child's report is the report, and the wrapper dies at once. So does
     * a process another one killed, with TATTLE_REPORT_KILLS=0. */
    if (si->si_code <= 0 && ((si->si_pid == process_id && tattle__reaped_killed_by(sig)) ||
                             (!config->report_kills && si->si_pid > 0 && si->si_pid != process_id))) {
        die_as_before(sig, si);
        errno = saved_errno;
        return;
    }
    in_handler = 1;
    original_fault(&report_sig, &report_si, &report_uc);
    /* TATTLE_NO_CAPTURE_EXCEPTIONS: not reported, dies all the same. */
    if (tattle__context_captures_crashes() && gate_enter()) {
        capture(report_sig, report_si, report_uc);
        gate_leave();
    }
    die_as_before(sig, si);
    in_handler = 0;
    errno = saved_errno;
}

TATTLE_LOAD_PATH void tattle__signals_note_child(void)
{
    load_pid = (pid_t)tattle__raw_syscall4(SYS_getpid, 0, 0, 0, 0);
}

void tattle__signals_configure(const struct tattle_config *cfg)
{
    config = cfg;
    process_id = tattle__sys_getpid();
}

void tattle__signals_uninstall(void)
{
    size_t i;
    for (i = 0; i < N_FATAL; i++)
        tattle__chain_give_back(fatal_signals[i]);
}

TATTLE_LOAD_PATH void tattle__signals_install(void)
{
    struct sigaction sa;
    size_t i;
    uint64_t mask = ~(uint64_t)0;
    tattle__signals_note_child(); /* the pid that is no vfork child's */
    /* A hand-made mask: no libc function is bound for it at load. */
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fatal_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    /* Every signal blocked while we run, except the synchronous ones: they
     * must stay deliverable (blocked, the kernel would kill the process
     * instead of nesting; the fault guard and a crash inside the handler
     * rely on that). The kernel reads the first 64 bits of the mask. */
    mask &= ~(1ull << (SIGSEGV - 1) | 1ull << (SIGBUS - 1) | 1ull << (SIGILL - 1) | 1ull << (SIGFPE - 1) |
              1ull << (SIGTRAP - 1));
    memcpy(&sa.sa_mask, &mask, sizeof mask);
    for (i = 0; i < N_FATAL; i++)
        tattle__chain_take(fatal_signals[i], &sa);
}

/* exit() on one thread while another captures a crash: the crash must
 * end the process (by its signal, with its report), not the exit status.
 * Once a thread owns the capture, the process dies by its signal as soon
 * as the capture ends: wait for that, bounded. */
void tattle__signals_exit_wait(void)
{
    pid_t owner = atomic_load(&crash_owner);
    struct timespec slice = {0, 10 * 1000 * 1000};
    int i;
    if (!owner || owner == tattle__sys_gettid() || !config)
        return;
    tattle__futex_wait((volatile uint32_t *)&crash_over, 0, config->crash_timeout_ms + REPORT_WRITE_MS + 100);
    for (i = 0; i < 200; i++) /* the signal is on its way */
        nanosleep(&slice, NULL);
}

/* The thread that forked is alone in the child: a capture another thread
 * of the parent had begun is not the child's. */
void tattle__signals_after_fork(void)
{
    process_id = tattle__sys_getpid();
    atomic_store(&crash_owner, 0);
    atomic_store(&crash_over, 0);
}
