/* unwind.h - the crashed thread's call stack, rebuilt out of process.
 *
 * Owns: unwinding with libdw's CFI unwinder from the registers and stack
 * copy in the crash record (and those threads.c read of the other threads).
 * Memory outside a copy is read from the live host with process_vm_readv
 * while it still exists.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_UNWIND_H
#define TATTLE_UNWIND_H

#include <stddef.h>
#include <stdint.h>

#include "shm.h"
#include "symbolize.h"

/* A deep stack keeps its innermost TATTLE_UNWIND_HEAD frames and its
 * outermost TATTLE_UNWIND_TAIL (main, the thread's start), with the number
 * elided between them; the walk itself stops after TATTLE_UNWIND_WALK. */
#define TATTLE_UNWIND_HEAD 100
#define TATTLE_UNWIND_TAIL 20
#define TATTLE_MAX_UNWIND (TATTLE_UNWIND_HEAD + TATTLE_UNWIND_TAIL)
#define TATTLE_UNWIND_WALK 100000

struct tattle_pcs {
    uint64_t pc[TATTLE_MAX_UNWIND]; /* innermost first */
    unsigned char activation[TATTLE_MAX_UNWIND]; /* pc is not a return address */
    size_t n;
    uint64_t total;   /* frames walked */
    uint64_t elided;  /* frames left out after pc[TATTLE_UNWIND_HEAD - 1] */
    int complete;     /* the unwinder reached the outermost frame */
};

/* One thread to unwind: its registers and a copy of the top of its stack. */
struct tattle_unwind_thread {
    pid_t tid;
    const uint64_t *gregs; /* ucontext order */
    uint64_t stack_start;
    const unsigned char *stack;
    uint32_t stack_len;
};

/* Unwind n threads of process pid, out[i] for t[i]. Memory outside a
 * thread's copy is read from the live process while it exists. */
void tattle__unwind_threads(struct tattle_symbolizer *s, pid_t pid, const struct tattle_unwind_thread *t, size_t n,
                            struct tattle_pcs *out);

/* Unwind the thread described by c. Returns the number of frames found. */
size_t tattle__unwind_crash(struct tattle_symbolizer *s, const struct tattle_crash *c, struct tattle_pcs *out);

#endif
