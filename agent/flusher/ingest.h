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
#include "record.h"
#include "shm.h"
#include "symbolize.h"

/* A record's parts, pointing into it (strings are not NUL-terminated;
 * their lengths are in h). */
struct tattle_record_view {
    const struct tattle_record *h;
    const char *name, *distinct, *props, *context, *message;
    const void *pcs; /* h->npcs return addresses, unaligned */
};

/* Check a record's lengths and split it. 0, or -1 when malformed. */
int tattle__record_view(const void *rec, size_t len, struct tattle_record_view *v);

/* Supplies a symbolizer for the host's modules (may return NULL). */
typedef struct tattle_symbolizer *(*tattle_symbolizer_source)(void *arg);

/* The event for one record, or NULL if the record is malformed. */
cJSON *tattle__ingest(const struct tattle_config *cfg, const struct tattle_shm *shm, const void *rec, size_t len,
                      tattle_symbolizer_source symbolizer, void *arg);

#endif
