/* signals.h - fatal signal handling: install, capture, die as before.
 *
 * Owns: the table of fatal signals and the actions that were in place before
 * ours, the crash handler, the one-crash-per-process gate, the fault guard
 * used to read host memory safely, and the terminal step that restores the
 * previous action and lets the signal kill the process exactly as it would
 * have without tattle.
 * Signal context: YES for the handler and the guard; install runs at load.
 */
#ifndef TATTLE_SIGNALS_H
#define TATTLE_SIGNALS_H

#include <setjmp.h>

#include "config.h"

/* At load: install the handler for SEGV, BUS, ILL, FPE, ABRT, TRAP, SYS. */
void tattle__signals_install(void);

/* Note this process's pid as one that is no vfork child: at load, and in
 * a child forked through an interposer (forks.c). Signal-safe. */
void tattle__signals_note_child(void);

/* At first use: the configuration the handler follows. Signal-safe. */
void tattle__signals_configure(const struct tattle_config *cfg);

/* The configuration file disables the agent: the host's own actions go
 * back in place. */
void tattle__signals_uninstall(void);

/* In a child after fork(): refresh the cached process id. */
void tattle__signals_after_fork(void);

/* Fault guard for reading host memory or calling host code from the handler:
 *   if (sigsetjmp(*tattle__signals_guard_arm(), 1) == 0) { risky(); }
 *   tattle__signals_guard_end();
 * A SIGSEGV/SIGBUS inside the guarded code jumps back with 1. Signal-safe. */
sigjmp_buf *tattle__signals_guard_arm(void);
void tattle__signals_guard_end(void);
#define tattle__signals_guard_begin() sigsetjmp(*tattle__signals_guard_arm(), 1)

/* At exit: if another thread is capturing a crash, wait until the crash
 * ends the process (bounded). */
void tattle__signals_exit_wait(void);

#endif
