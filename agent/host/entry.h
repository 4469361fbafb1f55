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

#endif
