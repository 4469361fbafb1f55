/* context.h - the host's contexts: process tags, per-thread nested contexts.
 *
 * Owns: each thread's stack of contexts (tags, distinct ID, session ID,
 * flags) and the process-wide layer, and their serialization as JSON text
 * for captures and crashes: {"p":{process layer},"l":[layers, outer first]}
 * where a layer is {"t":{tags},"d":distinct,"s":session}. Merging the layers
 * (inner wins, objects merge deeply) is the flusher's job.
 * Mutations are published so that a reader on the same thread (the crash
 * handler interrupting tattle_tag) always sees a complete old or new state:
 * tag arrays are append-only with a published count, pointers are swapped
 * before the old memory is freed, and a popped context is emptied only
 * once it is off the thread's stack (it is kept for reuse). Each thread
 * keeps the text of its context (tattle__context_snapshot) until its
 * contexts or the process layer change.
 * Signal context: PARTLY. tattle__context_write(), tattle__context_snapshot(),
 * tattle__context_set_env_layer() and tattle__context_captures_crashes()
 * are signal-safe; the mutators are not.
 */
#ifndef TATTLE_CONTEXT_H
#define TATTLE_CONTEXT_H

#include <stddef.h>

#include "json.h"

#define TATTLE_KEY_MAX 200
#define TATTLE_TAG_VALUE_MAX 8192
#define TATTLE_TAGS_MAX 256
#define TATTLE_ID_MAX 200
#define TATTLE_MAX_DEPTH 256

int tattle__context_push(unsigned flags);
int tattle__context_pop(void); /* -1 if none */
int tattle__context_tag(const char *key, const char *json_value); /* validated by the caller */
int tattle__context_set_distinct(const char *id);
int tattle__context_set_session(const char *id);
int tattle__context_depth(void);

/* The process layer's base from the configuration (pointers to text that
 * lives as long as the process; NULL or "" for none): TATTLE_TAGS
 * ("k=v,k=v"), TATTLE_RELEASE, TATTLE_ENVIRONMENT as string tags below
 * the program's own process tags, and TATTLE_DISTINCT_ID unless the program
 * identifies the process. Malformed items are said once when warn is set
 * and left out. Signal-safe: nothing is allocated. */
void tattle__context_set_env_layer(const char *tags, const char *release, const char *environment,
                                   const char *distinct, int warn);

int tattle__process_tag(const char *key, const char *json_value);
int tattle__process_set_distinct(const char *id);

/* Write the calling thread's context as JSON text, with the latest
 * breadcrumbs as "b" when asked. Signal-safe. */
void tattle__context_write(struct tattle_out *o, int with_breadcrumbs);

/* The calling thread's context as tattle__context_write(o, 0) writes it,
 * from a copy kept since it last changed: *text and its length, or 0 (then
 * write it). Signal-safe (the re-entrancy guard keeps a handler's capture
 * from running inside this thread's own). */
size_t tattle__context_snapshot(const char **text);
/* At thread exit: the copy's memory. */
void tattle__context_snapshot_free(void);

/* 0 when the innermost context was opened with TATTLE_NO_CAPTURE_EXCEPTIONS.
 * Signal-safe. */
int tattle__context_captures_crashes(void);

/* In the child after fork(): the thread's contexts are dropped. */
void tattle__context_after_fork(void);

#endif
