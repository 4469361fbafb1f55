/* ingest.c - decoding ring records into events (see ingest.h).
 *
 * Signal context: NO.
 */
#include "ingest.h"

#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "merge.h"
#include "record.h"

int tattle__record_view(const void *rec, size_t len, struct tattle_record_view *v)
{
    const struct tattle_record *h = rec;
    const char *p = (const char *)rec + sizeof *h;
    size_t need;
    if (len < sizeof *h || h->npcs > TATTLE_REC_MAX_PCS)
        return -1;
    need = sizeof *h + (size_t)h->name_len + h->distinct_len + h->props_len + h->context_len + h->message_len +
           (size_t)h->npcs * 8;
    if (need != len || h->name_len == 0)
        return -1;
    v->h = h;
    v->name = p;
    v->distinct = p += h->name_len;
    v->props = p += h->distinct_len;
    v->context = p += h->props_len;
    v->message = p += h->context_len;
    v->pcs = p + h->message_len;
    return 0;
}

struct fields {
    const struct tattle_record *h;
    char *name, *distinct, *props, *message;
    const char *context;
    uint64_t pcs[TATTLE_REC_MAX_PCS];
};

static char *copy(const char *p, uint32_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

static int decode(const void *rec, size_t len, struct fields *f)
{
    struct tattle_record_view v;
    if (tattle__record_view(rec, len, &v) != 0)
        return -1;
    f->h = v.h;
    f->name = copy(v.name, v.h->name_len);
    f->distinct = v.h->distinct_len ? copy(v.distinct, v.h->distinct_len) : NULL;
    f->props = v.h->props_len ? copy(v.props, v.h->props_len) : NULL;
    f->context = v.context;
    f->message = v.h->message_len ? copy(v.message, v.h->message_len) : NULL;
    memcpy(f->pcs, v.pcs, (size_t)v.h->npcs * 8);
    return 0;
}

static void free_fields(struct fields *f)
{
    free(f->name);
    free(f->distinct);
    free(f->props);
    free(f->message);
}

static const char *resolve_distinct(const struct fields *f, const struct tattle_merged *m,
                                    const struct tattle_config *cfg)
{
    if (f->distinct)
        return f->distinct;
    if (m->distinct)
        return m->distinct;
    return cfg->distinct_id;
}

/* The caller's explicit properties first: tags merge under them. */
static void add_explicit(cJSON *ev, const char *props_json)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
    cJSON *explicit = props_json ? cJSON_Parse(props_json) : NULL;
    cJSON *it;
    if (!cJSON_IsObject(explicit)) {
        cJSON_Delete(explicit);
        return;
    }
    while ((it = explicit->child) != NULL) {
        cJSON_DetachItemViaPointer(explicit, it);
        cJSON_DeleteItemFromObjectCaseSensitive(props, it->string);
        cJSON_AddItemToObject(props, it->string, it);
        /* AddItemToObject copies the key; the detached item keeps its own. */
    }
    cJSON_Delete(explicit);
}

/* The innermost frames may be tattle.h's inline wrappers, compiled into
 * the caller: they are ours, not the caller's. */
static void drop_header_frames(struct tattle_stack *st)
{
    size_t k = 0, i;
    while (k < st->n && st->frames[k].file && strlen(st->frames[k].file) >= 8 &&
           !strcmp(st->frames[k].file + strlen(st->frames[k].file) - 8, "tattle.h"))
        k++;
    if (!k)
        return;
    for (i = 0; i < k; i++) {
        free(st->frames[i].function);
        free(st->frames[i].file);
    }
    memmove(st->frames, st->frames + k, (st->n - k) * sizeof st->frames[0]);
    st->n -= k;
}

static void add_handled_exception(cJSON *ev, const struct fields *f, struct tattle_symbolizer *sym)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
    cJSON *list = cJSON_AddArrayToObject(props, "$exception_list");
    cJSON *ex = cJSON_CreateObject();
    cJSON *mech, *trace;
    struct tattle_stack st = {0};
    int i;
    for (i = 0; sym && i < f->h->npcs; i++)
        tattle__symbolize(sym, f->pcs[i], 0, &st);
    drop_header_frames(&st);
    cJSON_AddStringToObject(ex, "type", f->name);
    cJSON_AddStringToObject(ex, "value", f->message ? f->message : "");
    mech = cJSON_AddObjectToObject(ex, "mechanism");
    cJSON_AddStringToObject(mech, "type", "generic");
    cJSON_AddBoolToObject(mech, "handled", 1);
    cJSON_AddBoolToObject(mech, "synthetic", 0);
    cJSON_AddNumberToObject(ex, "thread_id", f->h->tid);
    trace = cJSON_AddObjectToObject(ex, "stacktrace");
    cJSON_AddStringToObject(trace, "type", "raw");
    cJSON_AddItemToObject(trace, "frames", tattle__event_frames(&st));
    cJSON_AddItemToArray(list, ex);
    cJSON_AddStringToObject(props, "$exception_level", "error");
    if (sym)
        cJSON_AddItemToObject(props, "$debug_images", tattle__event_debug_images(sym, NULL, &st));
    tattle__stack_free(&st);
}

cJSON *tattle__ingest(const struct tattle_config *cfg, const struct tattle_shm *shm, const void *rec, size_t len,
                      tattle_symbolizer_source symbolizer, void *arg)
{
    struct fields f;
    struct tattle_merged m;
    cJSON *ev;
    memset(&f, 0, sizeof f);
    if (decode(rec, len, &f) != 0) {
        free_fields(&f);
        return NULL;
    }
    tattle__merge_context(f.context, f.h->context_len, &m);
    if (f.h->kind == TATTLE_REC_EXCEPTION) {
        ev = tattle__event_new("$exception", f.h->time_ns, resolve_distinct(&f, &m, cfg));
        add_handled_exception(ev, &f, symbolizer(arg));
    } else {
        ev = tattle__event_new(f.name, f.h->time_ns, resolve_distinct(&f, &m, cfg));
        add_explicit(ev, f.props);
    }
    tattle__merged_apply(&m, ev);
    tattle__event_add_process(ev, shm);
    if (f.h->dropped_before)
        cJSON_AddNumberToObject(cJSON_GetObjectItemCaseSensitive(ev, "properties"), "$tattle_dropped_events",
                                (double)f.h->dropped_before);
    tattle__merged_free(&m);
    free_fields(&f);
    return ev;
}
