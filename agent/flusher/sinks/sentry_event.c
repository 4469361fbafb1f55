/* sentry_event.c - a tattle event as a Sentry envelope (see sentry_event.h).
 *
 * Signal context: NO.
 */
#include "sentry_event.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG_MAX 200

static const struct {
    const char *name;
    int number;
} signals[] = {
    {"SIGHUP", 1},  {"SIGINT", 2},   {"SIGQUIT", 3},  {"SIGILL", 4},  {"SIGTRAP", 5},  {"SIGABRT", 6},
    {"SIGBUS", 7},  {"SIGFPE", 8},   {"SIGKILL", 9},  {"SIGUSR1", 10}, {"SIGSEGV", 11}, {"SIGUSR2", 12},
    {"SIGPIPE", 13}, {"SIGALRM", 14}, {"SIGTERM", 15}, {"SIGXCPU", 24}, {"SIGXFSZ", 25}, {"SIGSYS", 31},
};

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void copy_item(cJSON *to, const char *to_key, const cJSON *from, const char *from_key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(from, from_key);
    if (v)
        cJSON_AddItemToObject(to, to_key, cJSON_Duplicate(v, 1));
}

/* PostHog's frames (outermost first) are Sentry's order too. */
static cJSON *frames(const cJSON *stacktrace)
{
    static const char *const keys[] = {"instruction_addr", "function", "filename", "lineno", "colno",
                                       "in_app",           "symbol_addr", "image_addr", "platform"};
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(stacktrace, "frames"), *f;
    cJSON *out = cJSON_CreateArray();
    cJSON_ArrayForEach(f, list)
    {
        cJSON *frame = cJSON_CreateObject();
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            copy_item(frame, keys[i], f, keys[i]);
        copy_item(frame, "package", f, "module");
        cJSON_AddItemToArray(out, frame);
    }
    return out;
}

static cJSON *stacktrace(const cJSON *from)
{
    cJSON *st = cJSON_CreateObject();
    cJSON_AddItemToObject(st, "frames", frames(from));
    return st;
}

static void add_signal(cJSON *mechanism, const cJSON *props)
{
    const char *name = str(props, "signal"), *code = str(props, "signal_code");
    cJSON *meta, *sig;
    if (!name)
        return;
    meta = cJSON_AddObjectToObject(mechanism, "meta");
    sig = cJSON_AddObjectToObject(meta, "signal");
    cJSON_AddStringToObject(sig, "name", name);
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (!strcmp(signals[i].name, name))
            cJSON_AddNumberToObject(sig, "number", signals[i].number);
    if (code)
        cJSON_AddStringToObject(sig, "code_name", code);
}

/* $exception_list is outermost first; Sentry wants the root cause first. */
static cJSON *exceptions(const cJSON *props)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(props, "$exception_list");
    cJSON *values = cJSON_CreateArray();
    int n = cJSON_GetArraySize(list);
    for (int i = n - 1; i >= 0; i--) {
        const cJSON *ex = cJSON_GetArrayItem(list, i), *mech = cJSON_GetObjectItemCaseSensitive(ex, "mechanism");
        cJSON *out = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(out, "mechanism");
        copy_item(out, "type", ex, "type");
        copy_item(out, "value", ex, "value");
        copy_item(out, "thread_id", ex, "thread_id");
        copy_item(m, "type", mech, "type");
        copy_item(m, "handled", mech, "handled");
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(mech, "handled")))
            add_signal(m, props);
        if (cJSON_GetObjectItemCaseSensitive(ex, "stacktrace"))
            cJSON_AddItemToObject(out, "stacktrace", stacktrace(cJSON_GetObjectItemCaseSensitive(ex, "stacktrace")));
        cJSON_AddItemToArray(values, out);
    }
    return values;
}

/* Every thread; the crashed one without a stack (it is the exception's). */
static cJSON *threads(const cJSON *props)
{
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(props, "threads"), "values");
    const cJSON *t;
    cJSON *out;
    if (!list)
        return NULL;
    out = cJSON_CreateObject();
    cJSON *values = cJSON_AddArrayToObject(out, "values");
    cJSON_ArrayForEach(t, list)
    {
        cJSON *th = cJSON_CreateObject();
        copy_item(th, "id", t, "id");
        copy_item(th, "name", t, "name");
        copy_item(th, "crashed", t, "crashed");
        copy_item(th, "current", t, "crashed");
        if (cJSON_GetObjectItemCaseSensitive(t, "stacktrace"))
            cJSON_AddItemToObject(th, "stacktrace", stacktrace(cJSON_GetObjectItemCaseSensitive(t, "stacktrace")));
        cJSON_AddItemToArray(values, th);
    }
    return out;
}

/* A tag key in Sentry's charset ([a-zA-Z0-9_.:-], spaces as '-'), or 0. */
static int tag_key(const char *key, char out[TAG_MAX + 1])
{
    size_t i;
    for (i = 0; key[i] && i < TAG_MAX; i++) {
        char c = key[i] == ' ' ? '-' : key[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_.:-", c)))
            return 0;
        out[i] = c;
    }
    out[i] = 0;
    return i > 0 && !key[i];
}

/* Context tags: scalars become tags (as strings); the rest, and what does
 * not fit a tag, the "tattle" context's tags. */
static void context_tags(const cJSON *props, cJSON *tags, cJSON *tattle)
{
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(props, "$context_tags"), *k;
    cJSON *structured = NULL;
    cJSON_ArrayForEach(k, keys)
    {
        const cJSON *v = cJSON_IsString(k) ? cJSON_GetObjectItemCaseSensitive(props, k->valuestring) : NULL;
        char key[TAG_MAX + 1], num[64];
        if (!v)
            continue;
        if (tag_key(k->valuestring, key) && cJSON_IsString(v) && strlen(v->valuestring) <= TAG_MAX &&
            !strchr(v->valuestring, '\n')) {
            cJSON_AddStringToObject(tags, key, v->valuestring);
            continue;
        }
        if (tag_key(k->valuestring, key) && (cJSON_IsNumber(v) || cJSON_IsBool(v))) {
            if (cJSON_IsBool(v))
                snprintf(num, sizeof num, "%s", cJSON_IsTrue(v) ? "true" : "false");
            else
                snprintf(num, sizeof num, "%.17g", v->valuedouble);
            cJSON_AddStringToObject(tags, key, num);
        }
        if (!structured)
            structured = cJSON_AddObjectToObject(tattle, "tags");
        cJSON_AddItemToObject(structured, k->valuestring, cJSON_Duplicate(v, 1));
    }
}

static void add_contexts(cJSON *ev, const cJSON *props)
{
    cJSON *contexts = cJSON_AddObjectToObject(ev, "contexts");
    cJSON *os = cJSON_AddObjectToObject(contexts, "os"), *proc = cJSON_AddObjectToObject(contexts, "process");
    cJSON *device = cJSON_AddObjectToObject(contexts, "device");
    cJSON *tattle = cJSON_AddObjectToObject(contexts, "tattle"), *tags = cJSON_AddObjectToObject(ev, "tags");
    copy_item(os, "name", props, "$os");
    copy_item(os, "version", props, "$os_version");
    copy_item(device, "arch", props, "arch");
    copy_item(proc, "pid", props, "pid");
    copy_item(proc, "ppid", props, "ppid");
    copy_item(proc, "executable", props, "executable");
    copy_item(proc, "arguments", props, "arguments");
    copy_item(tattle, "fault_address", props, "fault_address");
    copy_item(tattle, "abort_message", props, "abort_message");
    copy_item(tattle, "thread_name", props, "thread_name");
    copy_item(tattle, "killed", props, "killed");
    copy_item(tattle, "session_id", props, "$session_id");
    copy_item(tags, "signal", props, "signal");
    copy_item(tags, "signal_code", props, "signal_code");
    copy_item(tags, "session_id", props, "$session_id");
    context_tags(props, tags, tattle);
}

static cJSON *sentry_event(const cJSON *ev)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
    const char *uuid = str(ev, "uuid"), *level = str(props, "$exception_level");
    char id[33];
    size_t i, k;
    cJSON *out, *sdk, *debug;
    if (!uuid || !props)
        return NULL;
    for (i = k = 0; uuid[i] && k < 32; i++)
        if (uuid[i] != '-')
            id[k++] = uuid[i];
    id[k] = 0;
    out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "event_id", id);
    copy_item(out, "timestamp", ev, "timestamp");
    cJSON_AddStringToObject(out, "platform", "native");
    cJSON_AddStringToObject(out, "level", level ? level : "error");
    copy_item(out, "release", props, "release");
    copy_item(out, "environment", props, "environment");
    copy_item(out, "server_name", props, "hostname");
    if (!cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(props, "$process_person_profile")))
        copy_item(cJSON_AddObjectToObject(out, "user"), "id", ev, "distinct_id");
    cJSON_AddItemToObject(cJSON_AddObjectToObject(out, "exception"), "values", exceptions(props));
    if (cJSON_GetObjectItemCaseSensitive(props, "threads"))
        cJSON_AddItemToObject(out, "threads", threads(props));
    debug = cJSON_AddObjectToObject(out, "debug_meta");
    copy_item(debug, "images", props, "$debug_images");
    copy_item(out, "breadcrumbs", props, "breadcrumbs");
    add_contexts(out, props);
    sdk = cJSON_AddObjectToObject(out, "sdk");
    cJSON_AddStringToObject(sdk, "name", "tattle");
    cJSON_AddStringToObject(sdk, "version", TATTLE_VERSION);
    return out;
}

char *tattle__sentry_envelope(const char *line, size_t n, const char *sent_at, size_t *len)
{
    cJSON *ev = cJSON_ParseWithLength(line, n), *out;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(ev, "event");
    char *payload, *env = NULL;
    size_t plen;
    int k;
    if (!ev || !cJSON_IsString(name) || strcmp(name->valuestring, "$exception") != 0 || !(out = sentry_event(ev))) {
        cJSON_Delete(ev);
        return NULL;
    }
    payload = cJSON_PrintUnformatted(out);
    if (payload) {
        plen = strlen(payload);
        k = asprintf(&env, "{\"event_id\":\"%s\",\"sent_at\":\"%s\",\"sdk\":{\"name\":\"tattle\",\"version\":\"%s\"}}\n"
                           "{\"type\":\"event\",\"length\":%zu}\n%s\n",
                     cJSON_GetObjectItemCaseSensitive(out, "event_id")->valuestring, sent_at, TATTLE_VERSION, plen,
                     payload);
        if (k < 0)
            env = NULL;
        else
            *len = (size_t)k;
    }
    free(payload);
    cJSON_Delete(out);
    cJSON_Delete(ev);
    return env;
}
