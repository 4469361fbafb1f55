/* flusher_env.h - the environment a host hands the flusher it starts.
 *
 * Owns: the allowlist. The flusher gets the settings this host resolved
 * (from its environment as envcopy.c copied it at load, or from
 * /etc/tattle/tattle.conf): a program that rewrites its environment block
 * (setproctitle) or clears it changes nothing. Also
 * HOME and XDG_STATE_HOME (the default state directory), the proxy
 * variables libcurl reads and the sanitizers' options, except in a
 * secure-execution process, which passes its resolved settings only, plus
 * TATTLE_SECURE=1. Nothing else: no LD_PRELOAD, no DEBUGINFOD_URLS (libdw
 * would fetch debug info from a server during a crash).
 * Signal context: YES (built at first use, which may be a crash).
 */
#ifndef TATTLE_FLUSHER_ENV_H
#define TATTLE_FLUSHER_ENV_H

/* Build it once, at first use. secure: a secure-execution process. Returns the
 * NULL-terminated array (never NULL). */
char *const *tattle__flusher_env_build(int secure, const char *state_dir);

#endif
