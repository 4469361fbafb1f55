/* hooks.h - interposed libc and C++ runtime entry points that enrich a crash.
 *
 * Owns: __assert_fail and __assert_perror_fail (remember the assertion, then
 * call glibc's), __cxa_throw and __cxa_rethrow (remember the exception's
 * type and object, then forward), and reading glibc's __abort_msg.
 * None of them changes what the host sees: each forwards at once.
 * Signal context: PARTLY. tattle__hooks_fill_abort() runs in the SIGABRT
 * handler and is signal-safe; the interposers run in host context.
 */
#ifndef TATTLE_HOOKS_H
#define TATTLE_HOOKS_H

#include "shm.h"

/* At first use: find glibc's __abort_msg. Signal-safe. */
void tattle__hooks_init(void);

/* Copy abort message, assertion and C++ exception details into the record.
 * Calls what() on the exception under a fault guard. Signal-safe. */
void tattle__hooks_fill_abort(struct tattle_crash *c);

#endif
