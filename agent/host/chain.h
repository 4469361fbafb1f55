/* chain.h - signal chaining: the host's own view of the fatal signals.
 *
 * Owns: the interposers of sigaction(), signal(), bsd_signal(), sysv_signal(),
 * __sysv_signal() and sigset() (exported from libtattle.so), and the table of
 * what the host asked for on each fatal signal. As OpenJDK's libjsig does,
 * the agent's handler stays installed in the kernel; the host's calls change
 * and read the table, so a host always gets back what it set (never ours),
 * in whatever order handlers are installed. Other signals pass straight to
 * libc.
 * Signal context: the interposers are as signal-safe as sigaction() itself
 * (a seqlock guards the table, no allocation); tattle__chain_get() is read
 * from the crash handler.
 */
#ifndef TATTLE_CHAIN_H
#define TATTLE_CHAIN_H

#include <signal.h>

/* The configuration disables the agent: put the host's action for sig
 * back in the kernel and answer for it no more. */
void tattle__chain_give_back(int sig);

/* Install handler for sig in the kernel; what was there becomes the
 * host's recorded action. From then on the host's calls for sig are
 * answered from the table. */
int tattle__chain_take(int sig, const struct sigaction *ours);

/* The host's current action for sig. Signal-safe. */
void tattle__chain_get(int sig, struct sigaction *out);

/* Record SIG_DFL for sig (SA_RESETHAND as the kernel would do it). */
void tattle__chain_reset(int sig);

/* libc's sigaction, bypassing the table (to put an action in the kernel). */
int tattle__chain_real_sigaction(int sig, const struct sigaction *act, struct sigaction *old);

#endif
