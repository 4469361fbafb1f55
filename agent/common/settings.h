/* settings.h - where each setting's text comes from.
 *
 * Owns: the system configuration file (/etc/tattle/tattle.conf), the
 * secure-execution rule and the precedence between the file and the
 * environment. A setting is looked up by its environment variable's name:
 *  - ordinary process: the environment, else the file;
 *  - secure-execution process (AT_SECURE: setuid, setgid, file
 *    capabilities): the file only; the environment does not count;
 *  - the flusher: its environment only, which its host built from the
 *    values it resolved (flusher_env.c), never from the host's environ.
 * The file is honoured only if it is a regular file owned by root and not
 * writable by group or others, in a directory owned by root and not
 * writable by group or others.
 * Signal context: YES (the host's first use may be its crash). Read once;
 * the values are read-only afterwards.
 */
#ifndef TATTLE_SETTINGS_H
#define TATTLE_SETTINGS_H

#ifndef TATTLE_CONF_PATH
#define TATTLE_CONF_PATH "/etc/tattle/tattle.conf"
#endif

/* Every setting tattle reads, by its variable's name; NULL-terminated. */
extern const char *const tattle__setting_names[];

/* Host, at load: settings come from env (its environment as it was then,
 * NULL-terminated "NAME=value" entries), and is_secure says AT_SECURE. */
void tattle__settings_use_env(char *const *env, int is_secure);

/* Read the file (once) and, unless tattle__settings_use_env said it, note
 * AT_SECURE. Returns 1 when this is a secure-execution process.
 * Signal-safe. */
int tattle__settings_init(void);

/* The text of setting name (e.g. "TATTLE_FILE"), or NULL. */
const char *tattle__setting(const char *name);

/* The text the configuration file gives name, or NULL. */
const char *tattle__setting_from_file(const char *name);

/* 1 in a secure-execution process (after tattle__settings_init). */
int tattle__settings_secure(void);

/* Where the value of name came from: "environment", TATTLE_CONF_PATH or
 * NULL (unset). */
const char *tattle__setting_source(const char *name);

/* Why the file was ignored ("" when it was used or is absent). */
const char *tattle__settings_file_problem(void);

#endif
