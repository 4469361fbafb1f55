/* transport_posthog.c - PostHog's /batch/ endpoint over libcurl
 * (see transport_posthog.h).
 *
 * Signal context: NO.
 */
#include "transport_posthog.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "config.h"

/* Level 1: half the CPU of the default level for 25 rather than 20 bytes
 * per typical event on the wire (bench/bench_delivery.py). */
#define GZIP_LEVEL 1

struct tattle_posthog {
    CURL *curl;
    struct curl_slist *headers;
    char url[600];
    char api_key[TATTLE_API_KEY_MAX + 1];
    char *body; /* request JSON, reused */
    size_t body_cap;
    unsigned char *gz; /* compressed body, reused */
    size_t gz_cap;
    long retry_after_ms;
    size_t body_seen; /* response body bytes of the current request */
};

/* The response body is not needed; a server that sends an endless one is
 * cut off after 64 KiB (the status decides, see tattle__posthog_send). */
#define BODY_MAX (64u * 1024u)
static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    struct tattle_posthog *ph = arg;
    (void)p;
    ph->body_seen += size * n;
    return ph->body_seen > BODY_MAX ? 0 : size * n;
}

/* Retry-After in seconds (the HTTP-date form is treated as absent). */
static size_t read_header(char *p, size_t size, size_t n, void *arg)
{
    struct tattle_posthog *ph = arg;
    size_t len = size * n;
    static const char name[] = "retry-after:";
    if (len > sizeof name && !strncasecmp(p, name, sizeof name - 1)) {
        char buf[32];
        size_t k = len - (sizeof name - 1) < sizeof buf - 1 ? len - (sizeof name - 1) : sizeof buf - 1;
        char *end;
        long secs;
        memcpy(buf, p + sizeof name - 1, k);
        buf[k] = 0;
        secs = strtol(buf, &end, 10);
        if (end != buf && secs >= 0)
            ph->retry_after_ms = secs > 3600 ? 3600000 : secs * 1000;
    }
    return len;
}

struct tattle_posthog *tattle__posthog_open(const char *host, const char *api_key)
{
    struct tattle_posthog *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    snprintf(p->url, sizeof p->url, "%s/batch/", host);
    snprintf(p->api_key, sizeof p->api_key, "%s", api_key);
    p->curl = curl_easy_init();
    if (!p->curl) {
        free(p);
        return NULL;
    }
    p->headers = curl_slist_append(p->headers, "Content-Type: application/json");
    p->headers = curl_slist_append(p->headers, "Content-Encoding: gzip");
    p->headers = curl_slist_append(p->headers, "Expect:");
    curl_easy_setopt(p->curl, CURLOPT_URL, p->url);
    curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(p->curl, CURLOPT_USERAGENT, "tattle/" TATTLE_VERSION);
    curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(p->curl, CURLOPT_HEADERFUNCTION, read_header);
    curl_easy_setopt(p->curl, CURLOPT_HEADERDATA, p);
    /* Redirects would resend the key to wherever they point. */
    curl_easy_setopt(p->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(p->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    return p;
}

void tattle__posthog_close(struct tattle_posthog *p)
{
    if (!p)
        return;
    curl_slist_free_all(p->headers);
    curl_easy_cleanup(p->curl);
    free(p->body);
    free(p->gz);
    free(p);
}

static int reserve(char **buf, size_t *cap, size_t need)
{
    char *b;
    if (need <= *cap)
        return 0;
    b = realloc(*buf, need);
    if (!b)
        return -1;
    *buf = b;
    *cap = need;
    return 0;
}

static void now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 32, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", (tm.tm_year + 1900) % 10000, (tm.tm_mon + 1) % 100,
             tm.tm_mday % 100, tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100, ts.tv_nsec / 1000000L % 1000);
}

/* {"api_key":K,"historical_migration":false,"sent_at":T,"batch":[l1,l2,...]}
 * The lines are JSON objects already; the key was checked to need no
 * escaping (config.c). */
static size_t build_body(struct tattle_posthog *p, const char *lines, size_t len)
{
    char sent_at[32], *o;
    const char *line = lines, *end = lines + len;
    size_t need = len + strlen(p->api_key) + 160;
    if (reserve(&p->body, &p->body_cap, need) != 0)
        return 0;
    now_iso(sent_at);
    o = p->body + sprintf(p->body, "{\"api_key\":\"%s\",\"historical_migration\":false,\"sent_at\":\"%s\",\"batch\":[",
                          p->api_key, sent_at);
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (n > 0) {
            if (o[-1] != '[')
                *o++ = ',';
            memcpy(o, line, n);
            o += n;
        }
        line += n + 1;
    }
    *o++ = ']';
    *o++ = '}';
    return (size_t)(o - p->body);
}

static size_t gzip_body(struct tattle_posthog *p, size_t len)
{
    z_stream z = {0};
    size_t bound;
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    bound = deflateBound(&z, (uLong)len) + 32;
    if (reserve((char **)&p->gz, &p->gz_cap, bound) != 0) {
        deflateEnd(&z);
        return 0;
    }
    z.next_in = (Bytef *)p->body;
    z.avail_in = (uInt)len;
    z.next_out = p->gz;
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

void tattle__posthog_send(struct tattle_posthog *p, const char *lines, size_t len, unsigned count,
                          long timeout_ms, struct tattle_send_result *res)
{
    size_t body_len, gz_len;
    CURLcode rc;
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    (void)count;
    body_len = build_body(p, lines, len);
    gz_len = body_len ? gzip_body(p, body_len) : 0;
    if (!gz_len) {
        res->outcome = TATTLE_SEND_RETRY;
        snprintf(res->error, sizeof res->error, "out of memory building the request");
        return;
    }
    res->body_bytes = body_len;
    res->wire_bytes = gz_len;
    p->retry_after_ms = -1;
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, (char *)p->gz);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)gz_len);
    curl_easy_setopt(p->curl, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    p->body_seen = 0;
    rc = curl_easy_perform(p->curl);
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &res->status);
    /* A 2xx status means the server took the batch, whatever happened to
     * the response body afterwards (cut off, timed out): sending it again
     * would duplicate its events. */
    if (rc != CURLE_OK && !(res->status >= 200 && res->status < 300)) {
        res->outcome = TATTLE_SEND_RETRY;
        snprintf(res->error, sizeof res->error, "%s", curl_easy_strerror(rc));
        return;
    }
    res->outcome = classify(res->status);
    res->retry_after_ms = p->retry_after_ms;
    if (res->outcome != TATTLE_SENT)
        snprintf(res->error, sizeof res->error, "HTTP %ld", res->status);
}

static int nonempty_string(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) && v->valuestring[0];
}

static const char *exception_problem(const cJSON *props)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(props, "$exception_list");
    const cJSON *ex;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0)
        return "$exception without a $exception_list";
    cJSON_ArrayForEach(ex, list) {
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(ex, "stacktrace");
        const cJSON *frames = cJSON_GetObjectItemCaseSensitive(st, "frames");
        const cJSON *fr;
        if (!nonempty_string(ex, "type"))
            return "$exception_list entry without a type";
        if (!st)
            continue;
        if (!nonempty_string(st, "type") || !cJSON_IsArray(frames))
            return "stacktrace without a type or frames";
        cJSON_ArrayForEach(fr, frames) {
            if (!nonempty_string(fr, "platform"))
                return "frame without a platform";
        }
    }
    return NULL;
}

const char *tattle__posthog_event_problem(const cJSON *ev)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
    const cJSON *did = cJSON_GetObjectItemCaseSensitive(ev, "distinct_id");
    if (!nonempty_string(ev, "event"))
        return "event without a name";
    if (!cJSON_IsString(did) || !did->valuestring[0] || strlen(did->valuestring) > 200)
        return "event without a distinct_id";
    if (!nonempty_string(ev, "uuid") || !nonempty_string(ev, "timestamp"))
        return "event without a uuid or timestamp";
    if (!cJSON_IsObject(props))
        return "event without properties";
    if (!strcmp(cJSON_GetObjectItemCaseSensitive(ev, "event")->valuestring, "$exception"))
        return exception_problem(props);
    return NULL;
}
