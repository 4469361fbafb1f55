/* sentry_event.h - a tattle event as a Sentry envelope.
 *
 * Owns: the mapping of sentry-wire.md sections 2-3 from the event tattle
 * spools (PostHog's format): event_id (the uuid without dashes), level,
 * the exceptions root cause first with their mechanism and signal, frames
 * oldest first, every thread (the crashed one without a stack), the debug
 * images, release and environment, the distinct ID as user.id (not for
 * anonymous events), scalar context tags as tags and the rest in the
 * "tattle" context, the session ID as a tag, breadcrumbs, the OS, device
 * and process contexts; and the envelope around it (event_id, sent_at,
 * sdk; one event item with its length).
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_SENTRY_EVENT_H
#define TATTLE_SENTRY_EVENT_H

#include <stddef.h>

/* The envelope for one JSON line, or NULL when it is not for Sentry
 * (custom events are analytics, not errors) or cannot be read. sent_at:
 * RFC 3339, the moment of this attempt. Free with free(). */
char *tattle__sentry_envelope(const char *line, size_t n, const char *sent_at, size_t *len);

#endif
