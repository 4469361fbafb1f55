/* altstack.h - an alternate signal stack on every thread.
 *
 * Owns: the 64 KiB (plus guard page) alternate stacks that let the crash
 * handler run after a stack overflow, for the main thread at load and for
 * each thread created later (through a pthread_create interposer), and
 * freeing them when the thread exits. A thread that already has an adequate
 * alternate stack (a runtime that set its own) keeps it.
 * Signal context: NO.
 */
#ifndef TATTLE_ALTSTACK_H
#define TATTLE_ALTSTACK_H

/* At load, on the main thread. */
void tattle__altstack_init(void);

/* At first use: the main thread's stack gets its guard page. Signal-safe. */
void tattle__altstack_guard(void);

#endif
