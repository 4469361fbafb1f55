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

#define TATTLE_MAX_UNWIND 1024

struct tattle_pcs {
    uint64_t pc[TATTLE_MAX_UNWIND];
    unsigned char activation[TATTLE_MAX_UNWIND]; /* pc is not a return address */
    size_t n;
    int complete; /* the unwinder reached the outermost frame */
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
