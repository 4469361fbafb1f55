/* bench_symbolize.c - what the flusher spends on a crash's stack: unwinding
 * and symbolizing 30 frames, with the flusher's own code (unwind.c,
 * symbolize.c) on a crash record made from this process at depth 30.
 *
 * Each run does what the flusher does for one crash: open a symbolizer
 * from the maps (every module's ELF and DWARF loaded), unwind from the
 * registers and stack copy, symbolize every frame (function, file, line,
 * inlined calls). Prints the medians of REPEAT runs, split by phase.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "assafe.h"
#include "shm.h"
#include "symbolize.h"
#include "unwind.h"

#define DEPTH 30
#define REPEAT 15

static struct tattle_crash *record;

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* What the crash handler records, taken here by hand. */
static void __attribute__((noinline)) fill_record(void)
{
    ucontext_t uc;
    uint64_t sp;
    int i;
    getcontext(&uc);
    for (i = 0; i < TATTLE_NGREG; i++)
        record->gregs[i] = (uint64_t)uc.uc_mcontext.gregs[i];
    sp = record->gregs[REG_RSP] - 256;
    record->stack_start = sp;
    record->stack_len = (uint32_t)tattle__copy_readable(record->stack, (uintptr_t)sp, sizeof record->stack);
    record->maps_len = (uint32_t)tattle__read_file("/proc/self/maps", record->maps, sizeof record->maps - 1);
    record->pid = getpid();
    record->tid = getpid();
    record->signo = 11;
}

static int __attribute__((noinline)) descend(int depth)
{
    if (depth == 0) {
        fill_record();
        return 0;
    }
    return descend(depth - 1) + 1;
}

static size_t one_pass(struct tattle_symbolizer *sym, size_t *nframes)
{
    static struct tattle_pcs pcs;
    struct tattle_stack st = {0};
    size_t i, n = tattle__unwind_crash(sym, record, &pcs);
    for (i = 0; i < pcs.n; i++)
        tattle__symbolize(sym, pcs.pc[i], pcs.activation[i], &st);
    *nframes = st.n;
    tattle__stack_free(&st);
    return n;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void print_row(const char *what, double *v)
{
    qsort(v, REPEAT, sizeof v[0], cmp);
    printf("  %-38s %8.2f ms   (min %.2f, max %.2f)\n", what, v[REPEAT / 2] / 1000, v[0] / 1000,
           v[REPEAT - 1] / 1000);
}

int main(void)
{
    double open_us[REPEAT], walk_us[REPEAT], total_us[REPEAT];
    size_t pcs = 0, frames = 0;
    int i;
    record = calloc(1, sizeof *record);
    if (!record)
        return 1;
    descend(DEPTH);
    for (i = 0; i < REPEAT; i++) {
        double t0 = now_us(), t1, t2;
        struct tattle_symbolizer *sym = tattle__symbolizer_open(record->maps, record->maps_len, record->pid);
        t1 = now_us();
        pcs = one_pass(sym, &frames);
        t2 = now_us();
        tattle__symbolizer_close(sym);
        open_us[i] = t1 - t0;
        walk_us[i] = t2 - t1;
        total_us[i] = now_us() - t0;
    }
    printf("unwind + symbolize a crash of %zu frames (%zu return addresses), median of %d:\n", frames, pcs, REPEAT);
    print_row("load the modules (ELF, DWARF index)", open_us);
    print_row("unwind and symbolize every frame", walk_us);
    print_row("in all, as the flusher does per crash", total_us);
    free(record);
    return 0;
}
