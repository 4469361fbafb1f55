/* entry.h - the agent's first use.
 *
 * Owns: nothing but the declaration; entry.c says what loading does and
 * what waits for the first use.
 * Signal context: YES (tattle__agent_init is signal-safe).
 */
#ifndef TATTLE_ENTRY_H
#define TATTLE_ENTRY_H

/* Do what loading left for the first use, once: the configuration file and
 * the settings, the flusher's path and environment, the process layer.
 * Returns 1 when the agent is active, 0 when it is disabled, inert, or
 * (in_signal) this thread interrupted its own first use. Any thread, any
 * time, signal handlers included; in_signal leaves out what is not
 * signal-safe (starting a sender for the queue earlier processes left). */
int tattle__agent_init(int in_signal);

/* Fork detection (entry.c): the page the kernel wipes in a forked child,
 * mapped at first use, and how many forks this process has taken over. */
#include <stdatomic.h>
#include <stdint.h>
extern volatile uint32_t *tattle__fork_page;
extern _Atomic unsigned tattle__fork_gen;
void tattle__fork_takeover(void);

/* api.c: take over after a fork (tattle__fork_check), and drop this
 * thread's contexts and cached thread id if it has not since that fork.
 * Signal-safe. */
void tattle__api_thread_check(void);

/* In a forked child, take over from the parent once (any thread, signal
 * handlers included). Two loads when nothing forked. */
static inline void tattle__fork_check(void)
{
    if (tattle__fork_page && __atomic_load_n(tattle__fork_page, __ATOMIC_ACQUIRE) != 1)
        tattle__fork_takeover();
}

#endif
