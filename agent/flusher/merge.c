/* merge.c - context layers to event properties (see merge.h).
 *
 * Signal context: NO.
 */
#include "merge.h"

#include <stdlib.h>
#include <string.h>

#include "event.h"

void tattle__merge_value(cJSON *obj, const char *key, const cJSON *value)
{
    cJSON *have = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsObject(have) && cJSON_IsObject(value)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, value)
        {
            tattle__merge_value(have, it->string, it);
        }
        return;
    }
    if (have)
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddItemToObject(obj, key, cJSON_Duplicate(value, 1));
}

static void take_string(char **slot, const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring[0]) {
        free(*slot);
        *slot = strdup(v->valuestring);
    }
}

static void apply_layer(struct tattle_merged *m, const cJSON *layer)
{
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(layer, "t");
    const cJSON *it;
    cJSON_ArrayForEach(it, tags)
    {
        tattle__merge_value(m->tags, it->string, it);
    }
    take_string(&m->distinct, cJSON_GetObjectItemCaseSensitive(layer, "d"));
    take_string(&m->session, cJSON_GetObjectItemCaseSensitive(layer, "s"));
}

static cJSON *breadcrumbs_json(const cJSON *raw)
{
    cJSON *out = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, raw)
    {
        cJSON *c = cJSON_CreateObject();
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "t");
        char ts[32];
        tattle__event_time((uint64_t)(cJSON_IsNumber(t) ? t->valuedouble : 0) * 1000000ULL, ts);
        cJSON_AddStringToObject(c, "timestamp", ts);
        cJSON_AddItemToObject(c, "category", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "c"), 1));
        cJSON_AddItemToObject(c, "message", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(it, "m"), 1));
        cJSON_AddItemToArray(out, c);
    }
    return out;
}

void tattle__merge_context(const char *json, size_t len, struct tattle_merged *out)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *layer;
    memset(out, 0, sizeof *out);
    out->tags = cJSON_CreateObject();
    if (!root)
        return;
    apply_layer(out, cJSON_GetObjectItemCaseSensitive(root, "p"));
    cJSON_ArrayForEach(layer, cJSON_GetObjectItemCaseSensitive(root, "l"))
    {
        apply_layer(out, layer);
    }
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "b")))
        out->breadcrumbs = breadcrumbs_json(cJSON_GetObjectItemCaseSensitive(root, "b"));
    cJSON_Delete(root);
}

void tattle__merged_free(struct tattle_merged *m)
{
    cJSON_Delete(m->tags);
    cJSON_Delete(m->breadcrumbs);
    free(m->distinct);
    free(m->session);
    memset(m, 0, sizeof *m);
}

void tattle__merged_apply(const struct tattle_merged *m, cJSON *event)
{
    cJSON *props = cJSON_GetObjectItemCaseSensitive(event, "properties");
    cJSON *keys = cJSON_CreateArray();
    const cJSON *it;
    cJSON_ArrayForEach(it, m->tags)
    {
        cJSON_AddItemToArray(keys, cJSON_CreateString(it->string));
        if (!cJSON_HasObjectItem(props, it->string))
            cJSON_AddItemToObject(props, it->string, cJSON_Duplicate(it, 1));
    }
    if (cJSON_GetArraySize(keys) > 0)
        cJSON_AddItemToObject(props, "$context_tags", keys);
    else
        cJSON_Delete(keys);
    if (m->session && !cJSON_HasObjectItem(props, "$session_id"))
        cJSON_AddStringToObject(props, "$session_id", m->session);
    if (m->breadcrumbs && cJSON_GetArraySize(m->breadcrumbs) > 0)
        cJSON_AddItemToObject(props, "breadcrumbs", cJSON_Duplicate(m->breadcrumbs, 1));
}
