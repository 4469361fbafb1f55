/* envcopy.h - the host's environment as it was at load.
 *
 * Owns: the one pass over the environment that loading makes. It copies,
 * into storage of our own, the entries tattle may ever read: every
 * setting (settings.h), the variables passed on to the flusher
 * (flusher_env.h: HOME, XDG_STATE_HOME, proxies, sanitizer options) and
 * LD_PRELOAD. Everything else about the configuration is worked out from
 * this copy at first use (entry.c), so a program that rewrites its
 * environment block (setproctitle), clears or changes it later changes
 * nothing, and loading costs a scan of the environment and one copy.
 * Secure-execution processes copy nothing: their environment never counts.
 * Signal context: YES to read (the crash handler may be the first user).
 */
#ifndef TATTLE_ENVCOPY_H
#define TATTLE_ENVCOPY_H

/* The variables passed to the flusher as they are; NULL-terminated. */
extern const char *const tattle__passed_names[];

/* At load: copy what tattle reads from envp. Returns 1 in a secure-execution
 * process (AT_SECURE, or real and effective ids differ): then nothing is
 * kept. */
int tattle__envcopy_take(char **envp);

/* The copy: NULL-terminated "NAME=value" entries (empty when secure). */
char *const *tattle__envcopy(void);

/* LD_PRELOAD and TATTLE_DISABLE in the copy, or NULL: what loading reads. */
const char *tattle__envcopy_preload(void);
const char *tattle__envcopy_disable(void);

#endif
