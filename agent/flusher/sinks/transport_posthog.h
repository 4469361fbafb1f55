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

/* PostHog's per-event limit is about 1 MB; stay clear of it. */
#define TATTLE_EVENT_MAX_BYTES (900u * 1024u)

enum tattle_send_outcome {
    TATTLE_SENT = 0,      /* 2xx */
    TATTLE_SEND_RETRY,    /* network error, 408, 429, 5xx: try again later */
    TATTLE_SEND_AUTH,     /* 401, 403: the key is wrong; never retried */
    TATTLE_SEND_REJECTED, /* 400 and other 4xx: this batch is refused for good */
    TATTLE_SEND_TOO_LARGE, /* 413: split the batch */
    TATTLE_SEND_REDIRECT   /* 3xx: not followed (it would carry the key elsewhere); the host is wrong */
};

struct tattle_send_result {
    enum tattle_send_outcome outcome;
    long status;            /* HTTP status, 0 on a network error */
    long retry_after_ms;    /* from Retry-After, or -1 */
    size_t body_bytes;      /* uncompressed JSON */
    size_t wire_bytes;      /* what went on the wire */
    char error[160];        /* a short description when not sent */
};

struct tattle_posthog;

/* host: "https://us.i.posthog.com" (no trailing '/'); api_key is copied.
 * Returns NULL when libcurl cannot be set up. */
struct tattle_posthog *tattle__posthog_open(const char *host, const char *api_key);
void tattle__posthog_close(struct tattle_posthog *p);

/* Send count events (JSON objects, one a line) as one batch. */
void tattle__posthog_send(struct tattle_posthog *p, const char *lines, size_t len, unsigned count,
                          long timeout_ms, struct tattle_send_result *res);

/* Does the event meet PostHog's rules? Returns NULL or why not. */
const char *tattle__posthog_event_problem(const cJSON *event);

#endif
