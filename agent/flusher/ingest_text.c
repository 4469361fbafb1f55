/* ingest_text.c - the fast path from ring records to event text (see
 * ingest_text.h).
 *
 * Signal context: NO.
 */
#include "ingest_text.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "ingest.h"
#include "json.h"
#include "merge.h"
#include "uuid.h"

#define MAX_ID 200        /* names and distinct IDs; PostHog's bound on the latter */
#define MAX_KEYS 32       /* explicit properties checked one by one; more are declined */
#define MAX_KEY_BYTES 255 /* of one explicit property's key */

struct growbuf {
    char *p;
    size_t len, cap;
};

struct tattle_ingest_text {
    const struct tattle_config *cfg;
    const struct tattle_shm *shm;
    struct growbuf context; /* the last context, as the host wrote it */
    int have_context;
    cJSON *props;           /* what that context and the process add to properties */
    char *fragment;         /* props printed, without its braces */
    size_t fragment_len;
    char *distinct;         /* the context's distinct ID, or NULL */
    struct growbuf line;
};

/* Names an explicit property may not take on this path: the tree path
 * adds them after the explicit ones. */
static const char *const added_later[] = {"$process_person_profile", "$tattle_dropped_events",
                                          "$tattle_spool_dropped_events"};

static int reserve(struct growbuf *b, size_t need)
{
    char *p;
    size_t cap;
    if (need <= b->cap)
        return 0;
    cap = need > 2 * b->cap ? need : 2 * b->cap;
    if (!(p = realloc(b->p, cap)))
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

struct tattle_ingest_text *tattle__ingest_text_new(const struct tattle_config *cfg, const struct tattle_shm *shm)
{
    struct tattle_ingest_text *t = calloc(1, sizeof *t);
    if (t) {
        t->cfg = cfg;
        t->shm = shm;
    }
    return t;
}

static void forget_context(struct tattle_ingest_text *t)
{
    cJSON_Delete(t->props);
    free(t->fragment);
    free(t->distinct);
    t->props = NULL;
    t->fragment = t->distinct = NULL;
    t->have_context = 0;
}

void tattle__ingest_text_free(struct tattle_ingest_text *t)
{
    if (!t)
        return;
    forget_context(t);
    free(t->context.p);
    free(t->line.p);
    free(t);
}

/* Render what a context adds, in the order tattle__ingest adds it: $lib
 * and the rest first, then the merged tags that do not clash, then the
 * process's properties that are still absent. */
static int render_context(struct tattle_ingest_text *t, const char *ctx, size_t n)
{
    struct tattle_merged m;
    cJSON *ev = cJSON_CreateObject();
    cJSON *props = cJSON_AddObjectToObject(ev, "properties");
    char *text;
    size_t len;
    forget_context(t);
    if (!props || reserve(&t->context, n) != 0) {
        cJSON_Delete(ev);
        return -1;
    }
    tattle__event_add_lib(props);
    tattle__merge_context(ctx, n, &m);
    tattle__merged_apply(&m, ev);
    tattle__event_add_process(ev, t->shm);
    t->distinct = m.distinct;
    m.distinct = NULL;
    tattle__merged_free(&m);
    text = cJSON_PrintUnformatted(props);
    t->props = cJSON_DetachItemViaPointer(ev, props);
    cJSON_Delete(ev);
    if (!text || (len = strlen(text)) < 2) {
        free(text);
        forget_context(t);
        return -1;
    }
    t->fragment_len = len - 2;
    memmove(text, text + 1, t->fragment_len);
    text[t->fragment_len] = 0;
    t->fragment = text;
    if (n)
        memcpy(t->context.p, ctx, n);
    t->context.len = n;
    t->have_context = 1;
    return 0;
}

static int same_context(const struct tattle_ingest_text *t, const char *ctx, size_t n)
{
    return t->have_context && t->context.len == n && (n == 0 || memcmp(t->context.p, ctx, n) == 0);
}

struct explicit_keys {
    const struct tattle_ingest_text *t;
    const char *key[MAX_KEYS];
    size_t len[MAX_KEYS];
    int n;
};

/* May an explicit property of this key be written as it is? Not when it
 * is escaped, too long, repeated, or one of ours. Non-zero declines. */
static int vet_key(void *arg, const char *k, size_t n)
{
    struct explicit_keys *ks = arg;
    char key[MAX_KEY_BYTES + 1];
    if (ks->n == MAX_KEYS || n > MAX_KEY_BYTES || memchr(k, '\\', n))
        return -1;
    for (int i = 0; i < ks->n; i++)
        if (ks->len[i] == n && memcmp(ks->key[i], k, n) == 0)
            return -1;
    memcpy(key, k, n);
    key[n] = 0;
    for (size_t i = 0; i < sizeof added_later / sizeof added_later[0]; i++)
        if (!strcmp(key, added_later[i]))
            return -1;
    if (cJSON_HasObjectItem(ks->t->props, key))
        return -1;
    ks->key[ks->n] = k;
    ks->len[ks->n++] = n;
    return 0;
}

/* The members of the explicit properties object, as the text between its
 * braces (empty without members). 0, or -1 to decline. */
static int explicit_members(const struct tattle_ingest_text *t, const char *p, size_t n, const char **inner,
                            size_t *inner_len)
{
    struct explicit_keys ks = {.t = t};
    const char *open, *close;
    *inner_len = 0;
    if (n == 0)
        return 0;
    if (tattle__json_object_keys(p, n, vet_key, &ks) != 0)
        return -1;
    if (ks.n == 0)
        return 0;
    open = memchr(p, '{', n);
    close = p + n - 1;
    while (*close != '}')
        close--;
    *inner = open + 1;
    *inner_len = (size_t)(close - *inner);
    return 0;
}

/* Checked JSON text without the whitespace between its tokens: an event is
 * one line, whatever the caller's formatting (raw newlines would split it
 * in the events file and make PostHog refuse the whole batch). */
static void out_compact(struct tattle_out *o, const char *p, size_t n)
{
    size_t i, from = 0;
    int in_string = 0;
    for (i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            tattle__out_raw(o, p + from, i - from);
            from = i + 1;
        }
    }
    if (from < n)
        tattle__out_raw(o, p + from, n - from);
}

/* A NUL-terminated copy of a record string that is safe to write here. */
static int plain_id(const char *s, uint32_t n, char out[MAX_ID + 1])
{
    if (n > MAX_ID || memchr(s, 0, n))
        return -1;
    memcpy(out, s, n);
    out[n] = 0;
    return 0;
}

static const char *resolve_distinct(const struct tattle_ingest_text *t, const char *own)
{
    if (own[0])
        return own;
    if (t->distinct)
        return t->distinct;
    return t->cfg->distinct_id;
}

size_t tattle__ingest_text(struct tattle_ingest_text *t, const void *rec, size_t len, const char **line)
{
    struct tattle_record_view v;
    char name[MAX_ID + 1], own[MAX_ID + 1], uuid[TATTLE_UUID_STR], anon[TATTLE_UUID_STR], ts[32];
    const char *inner = NULL, *distinct;
    size_t inner_len;
    struct tattle_out o;
    if (tattle__record_view(rec, len, &v) != 0 || v.h->kind != TATTLE_REC_EVENT ||
        plain_id(v.name, v.h->name_len, name) != 0 || plain_id(v.distinct, v.h->distinct_len, own) != 0 ||
        !strcmp(name, "$exception"))
        return 0;
    if (!same_context(t, v.context, v.h->context_len) && render_context(t, v.context, v.h->context_len) != 0)
        return 0;
    if (explicit_members(t, v.props, v.h->props_len, &inner, &inner_len) != 0)
        return 0;
    distinct = resolve_distinct(t, own);
    if (strlen(distinct) > MAX_ID)
        return 0;
    if (!distinct[0]) {
        tattle__uuid_v7(anon, v.h->time_ns / 1000000ULL);
        distinct = anon;
    }
    tattle__uuid_v7(uuid, v.h->time_ns / 1000000ULL);
    tattle__event_time(v.h->time_ns, ts);
    if (reserve(&t->line, 256 + 6 * (strlen(name) + strlen(distinct)) + inner_len + t->fragment_len) != 0)
        return 0;
    o = (struct tattle_out){t->line.p, t->line.cap, 0, 0};
    tattle__out_str(&o, "{\"event\":");
    tattle__out_json_string(&o, name);
    tattle__out_str(&o, ",\"uuid\":\"");
    tattle__out_str(&o, uuid);
    tattle__out_str(&o, "\",\"properties\":{");
    if (inner_len) {
        out_compact(&o, inner, inner_len);
        tattle__out_raw(&o, ",", 1);
    }
    tattle__out_raw(&o, t->fragment, t->fragment_len);
    if (distinct == anon)
        tattle__out_str(&o, ",\"$process_person_profile\":false");
    if (v.h->dropped_before) {
        tattle__out_str(&o, ",\"$tattle_dropped_events\":");
        tattle__out_u64(&o, v.h->dropped_before);
    }
    tattle__out_str(&o, "},\"distinct_id\":");
    tattle__out_json_string(&o, distinct);
    tattle__out_str(&o, ",\"timestamp\":\"");
    tattle__out_str(&o, ts);
    tattle__out_str(&o, "\"}");
    if (o.overflow)
        return 0;
    *line = t->line.p;
    return o.len;
}
