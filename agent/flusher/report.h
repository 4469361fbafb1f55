/* report.h - the readable crash report a person sees on stderr.
 *
 * Owns: its text: the fault in one line, the thread, then every frame as
 * "#N  function (file:line)" like a good backtrace, the other threads'
 * stacks (bounded, so a server with 500 threads stays readable), and where
 * the event went.
 * The flusher writes it into the crash area; the host's handler prints it on
 * the host's own stderr, so it appears before the shell prompt returns.
 * Signal context: NO (formatting runs in the flusher).
 */
#ifndef TATTLE_REPORT_H
#define TATTLE_REPORT_H

#include <stddef.h>

#include "shm.h"
#include "symbolize.h"

struct tattle_thread_stacks;

#define TATTLE_REPORT_THREADS 16       /* other threads shown, like `thread apply all bt`... */
#define TATTLE_REPORT_THREAD_FRAMES 16 /* ...with this many frames each */

/* Format into buf; returns the length (clipped to cap - 1). others (may be
 * NULL): the other threads, shown after the crashing one. */
size_t tattle__report_format(char *buf, size_t cap, const struct tattle_shm *shm, const struct tattle_crash *c,
                             const struct tattle_stack *st, const struct tattle_thread_stacks *others,
                             const char *uuid, const char *sink_note);

#endif
