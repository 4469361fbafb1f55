/* unwind_nocfi.h - stepping up the stack where there is no CFI: code built
 * without unwind tables, or a pc in no module at all (a call through a NULL
 * or wild function pointer).
 *
 * Owns: one step from a frame to its caller the way gdb's prologue
 * analysis takes it: a function that begins with push %rbp; mov %rsp,%rbp
 * is followed through its frame pointer (at every point of its prologue);
 * one without a frame gets its return address from the stack, where the
 * word must point just after a call of this very function (or, for a wild
 * pc, after any call): a scan that finds only what a call really pushed,
 * never a stale word. libdw's unwinder takes over again at the first
 * caller that has CFI.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_UNWIND_NOCFI_H
#define TATTLE_UNWIND_NOCFI_H

#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>

/* How the step reads the process's memory (stack copy, then the live host). */
struct tattle_nocfi_mem {
    int (*read)(void *arg, uint64_t addr, void *buf, size_t n); /* 1 when all n bytes were read */
    void *arg;
};

/* Has pc unwind information (eh_frame or debug_frame)? */
int tattle__nocfi_has_cfi(Dwfl *dwfl, uint64_t pc, int activation);

/* Replace the registers g (ucontext order) with the caller's. 1 on success. */
int tattle__nocfi_step(Dwfl *dwfl, const struct tattle_nocfi_mem *mem, uint64_t *g, int activation);

#endif
