/* ingest_text.h - the fast path from ring records to event text (flusher only).
 *
 * Owns: writing a plain captured event straight to its JSON line, without
 * a cJSON tree. The record's name, distinct ID and properties are copied
 * in (the properties after the same strict check the host made), and what
 * the context and the process add (tags, $context_tags, $session_id,
 * breadcrumbs, $lib, executable, pid, ...) is rendered once per distinct
 * context and reused while the context bytes stay the same, which they
 * usually do from one event to the next. The result is the object
 * tattle__ingest builds (keys may come in another order). A record this
 * path cannot write exactly so (a handled exception, an event named
 * $exception, a property that overrides one of the context's or ours, an
 * escaped or repeated property key, an over-long distinct ID) is declined
 * and goes to tattle__ingest.
 * Signal context: NO.
 */
#ifndef TATTLE_INGEST_TEXT_H
#define TATTLE_INGEST_TEXT_H

#include <stddef.h>

#include "config.h"
#include "shm.h"

struct tattle_ingest_text;

/* State for one flusher (cfg and shm must outlive it). NULL without memory. */
struct tattle_ingest_text *tattle__ingest_text_new(const struct tattle_config *cfg, const struct tattle_shm *shm);
void tattle__ingest_text_free(struct tattle_ingest_text *t);

/* The event of one record as one line of JSON (no newline) in *line, valid
 * until the next call. Returns its length, or 0 when the record is
 * declined (use tattle__ingest). */
size_t tattle__ingest_text(struct tattle_ingest_text *t, const void *rec, size_t len, const char **line);

#endif
