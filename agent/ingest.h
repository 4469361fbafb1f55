/* ingest.h - records from the ring to PostHog events (flusher only).
 *
 * Owns: decoding a tattle_record, resolving its distinct ID (explicit >
 * context > process > anonymous), merging its context and, for handled
 * exceptions, symbolizing the captured return addresses.
 * Signal context: NO.
 */
#ifndef TATTLE_INGEST_H
#define TATTLE_INGEST_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "config.h"
#include "shm.h"
#include "symbolize.h"

/* Supplies a symbolizer for the host's modules (may return NULL). */
typedef struct tattle_symbolizer *(*tattle_symbolizer_source)(void *arg);

/* The event for one record, or NULL if the record is malformed. */
cJSON *tattle__ingest(const struct tattle_config *cfg, const struct tattle_shm *shm, const void *rec, size_t len,
                      tattle_symbolizer_source symbolizer, void *arg);

#endif
