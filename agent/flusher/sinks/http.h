/* http.h - what the transports share: one reused libcurl handle, gzip,
 * POST with a deadline, and reading the answer (status, Retry-After,
 * X-Sentry-Rate-Limits) into what the delivery loop does next.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_HTTP_H
#define TATTLE_HTTP_H

#include <stddef.h>

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
    long retry_after_ms;    /* from Retry-After or a rate limit, or -1 */
    size_t body_bytes;      /* uncompressed JSON */
    size_t wire_bytes;      /* what went on the wire */
    char error[160];        /* a short description when not sent */
};

struct tattle_http;

/* A handle for POSTs to url with these extra header lines (copied). NULL
 * when libcurl cannot be set up. */
struct tattle_http *tattle__http_open(const char *url, const char *const *headers);
void tattle__http_close(struct tattle_http *h);

/* A buffer of at least need bytes for the next body, reused. */
char *tattle__http_body(struct tattle_http *h, size_t need);

/* gzip the body (len bytes of tattle__http_body's buffer) and POST it. */
void tattle__http_post(struct tattle_http *h, size_t len, long timeout_ms, struct tattle_send_result *res);

/* RFC 3339 UTC now, with milliseconds: a request's sent_at. */
void tattle__http_now_iso(char out[32]);

#endif
