/* event.h - PostHog events as JSON (flusher only).
 *
 * Owns: the event envelope (event, uuid, distinct_id, timestamp,
 * properties), the properties every tattle event carries ($lib, process,
 * host, OS), and the $exception payload for a crash: $exception_list with a
 * raw native stack (outermost frame first, crash site last), the fault,
 * the registers and $debug_images. Formats follow
 * shared/reference/posthog-wire.md sections 1, 2 and 5.
 * Signal context: NO.
 */
#ifndef TATTLE_EVENT_H
#define TATTLE_EVENT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "config.h"
#include "shm.h"
#include "symbolize.h"

#define TATTLE_EVENT_MAX_FRAMES 256

struct tattle_thread_stacks;

/* A new event with its uuid and timestamp. distinct_id NULL or "" makes it
 * anonymous (a random distinct_id and $process_person_profile: false). */
cJSON *tattle__event_new(const char *name, uint64_t time_ns, const char *distinct_id);

/* The properties saying who sent it ($lib, $lib_version, $is_server,
 * $geoip_disable), as tattle__event_new adds them. */
void tattle__event_add_lib(cJSON *props);

/* Properties of the process that sent it. */
void tattle__event_add_process(cJSON *event, const struct tattle_shm *shm);

/* The $exception event of a crash; others (may be NULL) adds the
 * "threads" property: every thread, the crashing one marked. */
cJSON *tattle__event_crash(const struct tattle_config *cfg, const struct tattle_shm *shm,
                           const struct tattle_crash *c, const struct tattle_stack *st,
                           struct tattle_symbolizer *sym, const struct tattle_thread_stacks *others);

#define TATTLE_EVENT_THREAD_FRAMES 32 /* frames of each other thread in the event */

/* The exception's type and readable value, as the event and report show them. */
void tattle__event_crash_title(const struct tattle_crash *c, char *type, size_t tcap, char *value, size_t vcap);

/* Frames as PostHog's raw stacktrace wants them: outermost first. */
cJSON *tattle__event_frames(const struct tattle_stack *st);

/* $debug_images: the executable (exe may be NULL), then each module a frame
 * points into. */
cJSON *tattle__event_debug_images(struct tattle_symbolizer *sym, const char *exe, const struct tattle_stack *st);

/* ISO-8601 UTC with milliseconds, e.g. 2026-01-15T10:20:30.123Z */
void tattle__event_time(uint64_t time_ns, char out[32]);

/* Was the crash a fatal signal sent by another process, not a fault? */
int tattle__event_is_kill(const struct tattle_crash *c);

#endif
