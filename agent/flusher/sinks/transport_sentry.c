/* transport_sentry.c - Sentry's envelope endpoint (see transport_sentry.h).
 *
 * Signal context: NO.
 */
#include "transport_sentry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "delivery.h"
#include "dsn.h"
#include "sentry_event.h"

struct tattle_sentry {
    struct tattle_http *http;
    uint64_t hold_until_ms; /* a rate limit announced on an accepted request */
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

struct tattle_sentry *tattle__sentry_open(const char *dsn_text)
{
    struct tattle_dsn dsn;
    struct tattle_sentry *s;
    char auth[512];
    const char *headers[] = {"Content-Type: application/x-sentry-envelope", auth, NULL};
    if (!dsn_text || tattle__dsn_parse(dsn_text, &dsn, NULL) != 0 || !(s = calloc(1, sizeof *s)))
        return NULL;
    snprintf(auth, sizeof auth, "X-Sentry-Auth: Sentry sentry_key=%s, sentry_version=7, sentry_client=tattle/%s%s%s",
             dsn.key, TATTLE_VERSION, dsn.secret[0] ? ", sentry_secret=" : "", dsn.secret);
    s->http = tattle__http_open(dsn.url, headers);
    memset(auth, 0, sizeof auth);
    memset(&dsn, 0, sizeof dsn);
    if (!s->http) {
        free(s);
        return NULL;
    }
    return s;
}

static void close_sentry(void *p)
{
    struct tattle_sentry *s = p;
    if (!s)
        return;
    tattle__http_close(s->http);
    free(s);
}

/* One event a request (the transport says so to the delivery loop). */
static void send_sentry(void *p, const char *lines, size_t len, unsigned count, long timeout_ms,
                        struct tattle_send_result *res)
{
    struct tattle_sentry *s = p;
    char sent_at[32], *env, *body;
    size_t n = 0, line_len = strcspn(lines, "\n");
    (void)count;
    if (line_len > len)
        line_len = len;
    if (s->hold_until_ms > now_ms()) { /* held: no request before the limit expires */
        memset(res, 0, sizeof *res);
        res->outcome = TATTLE_SEND_RETRY;
        res->retry_after_ms = (long)(s->hold_until_ms - now_ms());
        snprintf(res->error, sizeof res->error, "rate limited");
        return;
    }
    tattle__http_now_iso(sent_at);
    env = tattle__sentry_envelope(lines, line_len, sent_at, &n);
    if (!env) { /* not an error event: nothing to send */
        memset(res, 0, sizeof *res);
        res->outcome = TATTLE_SENT;
        res->retry_after_ms = -1;
        return;
    }
    body = tattle__http_body(s->http, n);
    if (body)
        memcpy(body, env, n);
    free(env);
    tattle__http_post(s->http, body ? n : 0, timeout_ms, res);
    /* A 429 that names no wait: Sentry's SDKs wait 60 s. */
    if (res->status == 429 && res->retry_after_ms <= 0)
        res->retry_after_ms = 60000;
    /* X-Sentry-Rate-Limits holds what follows, whatever the status. */
    if (res->retry_after_ms > 0)
        s->hold_until_ms = now_ms() + 1 + (uint64_t)res->retry_after_ms; /* +1: now_ms() truncates */
    /* One event that does not fit is set aside, not dropped. */
    if (res->outcome == TATTLE_SEND_TOO_LARGE)
        res->outcome = TATTLE_SEND_REJECTED;
}

const struct tattle_transport tattle__sentry_transport = {"Sentry", "SENTRY_DSN", 1, send_sentry, close_sentry};
