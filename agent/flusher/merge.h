/* merge.h - resolving a serialized context into what an event carries.
 *
 * Owns: the merge rules. Layers apply in order: process, then contexts
 * from outer to inner; a later tag replaces an earlier one, except that
 * when both values are JSON objects they merge key by key, recursively
 * (Timber's rule). The innermost distinct ID and session win. On an event,
 * explicit properties win over tags (PostHog's rule), the tag keys are
 * listed in $context_tags, and $session_id comes from the context only if
 * the caller did not pass one.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_MERGE_H
#define TATTLE_MERGE_H

#include <cjson/cJSON.h>
#include <stddef.h>

struct tattle_merged {
    cJSON *tags;        /* object */
    char *distinct;     /* NULL if none */
    char *session;      /* NULL if none */
    cJSON *breadcrumbs; /* array of {timestamp, category, message}, or NULL */
};

/* Parse the host's context JSON. An unparsable one yields an empty result. */
void tattle__merge_context(const char *json, size_t len, struct tattle_merged *out);
void tattle__merged_free(struct tattle_merged *m);

/* Put the merged tags under the event's properties, with $context_tags and
 * $session_id, and the breadcrumbs if any. */
void tattle__merged_apply(const struct tattle_merged *m, cJSON *event);

/* Deep-merge value into obj[key] (exported for tests). */
void tattle__merge_value(cJSON *obj, const char *key, const cJSON *value);

#endif
