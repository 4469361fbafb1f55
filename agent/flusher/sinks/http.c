/* http.c - the transports' shared HTTP mechanics (see http.h).
 *
 * Signal context: NO.
 */
#include "http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

/* Level 1: half the CPU of the default level for 25 rather than 20 bytes
 * per typical event on the wire (bench/bench_delivery.py). */
#define GZIP_LEVEL 1
#define BODY_MAX (64u * 1024u) /* of an answer: more is cut off (the request still counts) */

struct tattle_http {
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    char *body; /* request, reused */
    size_t body_cap;
    unsigned char *gz; /* compressed request, reused */
    size_t gz_cap;
    long retry_after_ms;
    size_t body_seen; /* answer bytes of the current request */
};

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    struct tattle_http *h = arg;
    (void)p;
    h->body_seen += size * n;
    return h->body_seen > BODY_MAX ? 0 : size * n;
}

/* Does an item's category list ("a;b;c" up to the next ':' or ',') hold
 * errors? An empty list holds every category. */
static int holds_errors(const char *c)
{
    size_t n = strcspn(c, ":,");
    if (n == 0)
        return 1;
    while (n > 0) {
        size_t k = strcspn(c, ";:,");
        if ((k == 5 && !strncmp(c, "error", 5)) || (k == 7 && !strncmp(c, "default", 7)))
            return 1;
        if (k >= n)
            break;
        c += k + 1;
        n -= k + 1;
    }
    return 0;
}

/* The longest wait of the "seconds:categories:scope" items of
 * X-Sentry-Rate-Limits that hold error events (the only ones we send). */
static long rate_limits_ms(const char *v)
{
    long most = -1;
    while (*v) {
        char *end;
        double secs;
        while (*v == ' ')
            v++;
        secs = strtod(v, &end);
        if (end != v && *end == ':' && holds_errors(end + 1) && secs >= 0 && secs * 1000 > most)
            most = secs > 3600 ? 3600000 : (long)(secs * 1000);
        v = strchr(v, ',');
        if (!v)
            break;
        v++;
    }
    return most;
}

/* Retry-After in seconds (the HTTP-date form is treated as absent), and
 * Sentry's X-Sentry-Rate-Limits. */
static size_t read_header(char *p, size_t size, size_t n, void *arg)
{
    static const char retry[] = "retry-after:", limits[] = "x-sentry-rate-limits:";
    struct tattle_http *h = arg;
    size_t len = size * n;
    char buf[512];
    long ms = -1;
    if (len > sizeof retry && !strncasecmp(p, retry, sizeof retry - 1)) {
        size_t k = len - (sizeof retry - 1) < 31 ? len - (sizeof retry - 1) : 31;
        char *end;
        long secs;
        memcpy(buf, p + sizeof retry - 1, k);
        buf[k] = 0;
        secs = strtol(buf, &end, 10);
        if (end != buf && secs >= 0)
            ms = secs > 3600 ? 3600000 : secs * 1000;
    } else if (len > sizeof limits && !strncasecmp(p, limits, sizeof limits - 1)) {
        size_t k = len - (sizeof limits - 1) < sizeof buf - 1 ? len - (sizeof limits - 1) : sizeof buf - 1;
        memcpy(buf, p + sizeof limits - 1, k);
        buf[k] = 0;
        ms = rate_limits_ms(buf);
    }
    if (ms > h->retry_after_ms)
        h->retry_after_ms = ms;
    return len;
}

struct tattle_http *tattle__http_open(const char *url, const char *const *headers)
{
    struct tattle_http *h = calloc(1, sizeof *h);
    if (!h || !(h->url = strdup(url)) || !(h->curl = curl_easy_init())) {
        tattle__http_close(h);
        return NULL;
    }
    for (; headers && *headers; headers++)
        h->headers = curl_slist_append(h->headers, *headers);
    h->headers = curl_slist_append(h->headers, "Content-Encoding: gzip");
    h->headers = curl_slist_append(h->headers, "Expect:");
    curl_easy_setopt(h->curl, CURLOPT_URL, h->url);
    curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, h->headers);
    curl_easy_setopt(h->curl, CURLOPT_USERAGENT, "tattle/" TATTLE_VERSION);
    curl_easy_setopt(h->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h->curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(h->curl, CURLOPT_WRITEDATA, h);
    curl_easy_setopt(h->curl, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(h->curl, CURLOPT_HEADERDATA, h);
    /* Redirects would resend the key to wherever they point. */
    curl_easy_setopt(h->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    return h;
}

void tattle__http_close(struct tattle_http *h)
{
    if (!h)
        return;
    curl_slist_free_all(h->headers);
    if (h->curl)
        curl_easy_cleanup(h->curl);
    free(h->url);
    free(h->body);
    free(h->gz);
    free(h);
}

static int reserve(void *bufp, size_t *cap, size_t need)
{
    char **buf = bufp, *b;
    if (need <= *cap)
        return 0;
    b = realloc(*buf, need);
    if (!b)
        return -1;
    *buf = b;
    *cap = need;
    return 0;
}

char *tattle__http_body(struct tattle_http *h, size_t need)
{
    return reserve(&h->body, &h->body_cap, need) == 0 ? h->body : NULL;
}

void tattle__http_now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, ts.tv_nsec / 1000000L % 1000);
}

static size_t gzip_body(struct tattle_http *h, size_t len)
{
    z_stream z = {0};
    size_t bound;
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    bound = deflateBound(&z, (uLong)len) + 32;
    if (reserve(&h->gz, &h->gz_cap, bound) != 0) {
        deflateEnd(&z);
        return 0;
    }
    z.next_in = (Bytef *)h->body;
    z.avail_in = (uInt)len;
    z.next_out = h->gz;
    z.avail_out = (uInt)bound;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&z);
        return 0;
    }
    bound = z.total_out;
    deflateEnd(&z);
    return bound;
}

static enum tattle_send_outcome classify(long status)
{
    if (status >= 200 && status < 300)
        return TATTLE_SENT;
    if (status == 408 || status == 429 || status >= 500 || status < 100)
        return TATTLE_SEND_RETRY;
    if (status == 401 || status == 403)
        return TATTLE_SEND_AUTH;
    if (status >= 300 && status < 400)
        return TATTLE_SEND_REDIRECT;
    if (status == 413)
        return TATTLE_SEND_TOO_LARGE;
    return TATTLE_SEND_REJECTED;
}

void tattle__http_post(struct tattle_http *h, size_t len, long timeout_ms, struct tattle_send_result *res)
{
    size_t gz_len = len ? gzip_body(h, len) : 0;
    CURLcode rc;
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    if (!gz_len) {
        res->outcome = TATTLE_SEND_RETRY;
        snprintf(res->error, sizeof res->error, "out of memory building the request");
        return;
    }
    res->body_bytes = len;
    res->wire_bytes = gz_len;
    h->retry_after_ms = -1;
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDS, (char *)h->gz);
    curl_easy_setopt(h->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gz_len);
    curl_easy_setopt(h->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    h->body_seen = 0;
    rc = curl_easy_perform(h->curl);
    curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &res->status);
    /* A 2xx status means the server took the request, whatever happened to
     * the response body afterwards (cut off, timed out): sending it again
     * would duplicate its events. */
    if (rc != CURLE_OK && !(res->status >= 200 && res->status < 300)) {
        res->outcome = TATTLE_SEND_RETRY;
        snprintf(res->error, sizeof res->error, "%s", curl_easy_strerror(rc));
        return;
    }
    res->outcome = classify(res->status);
    res->retry_after_ms = h->retry_after_ms;
    if (res->outcome != TATTLE_SENT)
        snprintf(res->error, sizeof res->error, "HTTP %ld", res->status);
}
