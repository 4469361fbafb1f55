/* transport_posthog.c - PostHog's /batch/ endpoint over libcurl
 * (see transport_posthog.h).
 *
 * Signal context: NO.
 */
#include "transport_posthog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "delivery.h"
#include "http.h"

struct tattle_posthog {
    struct tattle_http *http;
    char api_key[TATTLE_API_KEY_MAX + 1];
};

struct tattle_posthog *tattle__posthog_open(const char *host, const char *api_key)
{
    static const char *const headers[] = {"Content-Type: application/json", NULL};
    struct tattle_posthog *p = calloc(1, sizeof *p);
    char url[600];
    if (!p)
        return NULL;
    snprintf(url, sizeof url, "%s/batch/", host);
    snprintf(p->api_key, sizeof p->api_key, "%s", api_key);
    if (!(p->http = tattle__http_open(url, headers))) {
        free(p);
        return NULL;
    }
    return p;
}

void tattle__posthog_close(struct tattle_posthog *p)
{
    if (!p)
        return;
    tattle__http_close(p->http);
    free(p);
}

static size_t build_body(struct tattle_posthog *p, const char *lines, size_t len)
{
    char sent_at[32], *o, *body;
    const char *line = lines, *end = lines + len;
    size_t need = len + strlen(p->api_key) + 160;
    if (!(body = tattle__http_body(p->http, need)))
        return 0;
    tattle__http_now_iso(sent_at);
    o = body + sprintf(body, "{\"api_key\":\"%s\",\"historical_migration\":false,\"sent_at\":\"%s\",\"batch\":[",
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
    return (size_t)(o - body);
}

void tattle__posthog_send(struct tattle_posthog *p, const char *lines, size_t len, unsigned count,
                          long timeout_ms, struct tattle_send_result *res)
{
    (void)count;
    tattle__http_post(p->http, build_body(p, lines, len), timeout_ms, res);
}

static void send_any(void *p, const char *lines, size_t len, unsigned count, long timeout_ms,
                     struct tattle_send_result *res)
{
    tattle__posthog_send(p, lines, len, count, timeout_ms, res);
}

static void close_any(void *p) { tattle__posthog_close(p); }

const struct tattle_transport tattle__posthog_transport = {"PostHog", "POSTHOG_HOST", 0, send_any, close_any};

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
