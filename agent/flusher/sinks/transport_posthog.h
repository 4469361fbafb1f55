/* transport_posthog.h - PostHog's capture API over libcurl (flusher only).
 *
 * Owns: the request (POST {host}/batch/, {"api_key","batch","sent_at"},
 * gzip, User-Agent tattle/<version>), one reused connection, and reading the
 * answer into what the delivery loop does next. Also the rules an event
 * must meet before it is batched, since one bad event makes PostHog refuse
 * the whole request (posthog-wire.md section 1).
 * Signal context: NO.
 */
#ifndef TATTLE_TRANSPORT_POSTHOG_H
#define TATTLE_TRANSPORT_POSTHOG_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "http.h"

/* PostHog's per-event limit is about 1 MB; stay clear of it. */
#define TATTLE_EVENT_MAX_BYTES (900u * 1024u)

struct tattle_posthog;

/* host: "https://us.i.posthog.com" (no trailing '/'); api_key is copied.
 * Returns NULL when libcurl cannot be set up. */
struct tattle_posthog *tattle__posthog_open(const char *host, const char *api_key);
void tattle__posthog_close(struct tattle_posthog *p);

/* Send count events (JSON objects, one a line) as one batch. */
void tattle__posthog_send(struct tattle_posthog *p, const char *lines, size_t len, unsigned count,
                          long timeout_ms, struct tattle_send_result *res);

/* The transport the delivery thread sends PostHog's queue through. */
struct tattle_transport;
extern const struct tattle_transport tattle__posthog_transport;

/* Does the event meet PostHog's rules? Returns NULL or why not. */
const char *tattle__posthog_event_problem(const cJSON *event);

#endif
