/* unwind.h - the crashed thread's call stack, rebuilt out of process.
 *
 * Owns: unwinding with libdw's CFI unwinder from the registers and stack
 * copy in the crash record. Memory outside the copy is read from the live
 * host with process_vm_readv while it still exists. No ptrace.
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

/* Unwind the thread described by c. Returns the number of frames found. */
size_t tattle__unwind_crash(struct tattle_symbolizer *s, const struct tattle_crash *c, struct tattle_pcs *out);

#endif
