/* report.h - the readable crash report a person sees on stderr.
 *
 * Owns: its text: the fault in one line, the thread, then every frame as
 * "#N  function (file:line)" like a good backtrace, and where the event went.
 * The flusher writes it into the crash area; the host's handler prints it on
 * the host's own stderr, so it appears before the shell prompt returns.
 * Signal context: NO (formatting runs in the flusher).
 */
#ifndef TATTLE_REPORT_H
#define TATTLE_REPORT_H

#include <stddef.h>

#include "shm.h"
#include "symbolize.h"

/* Format into buf; returns the length (clipped to cap - 1). */
size_t tattle__report_format(char *buf, size_t cap, const struct tattle_shm *shm, const struct tattle_crash *c,
                             const struct tattle_stack *st, const char *uuid, const char *sink_note);

#endif
