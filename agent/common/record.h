/* record.h - the records host threads put in the ring for the flusher.
 *
 * Owns: their binary layout, shared by both executables: a fixed header,
 * then the strings it counts (without NULs), in this order: name (event
 * name, or exception type), distinct ID, properties JSON, context JSON,
 * message; then npcs return addresses.
 * Signal context: n/a (a layout).
 */
#ifndef TATTLE_RECORD_H
#define TATTLE_RECORD_H

#include <stdint.h>

enum tattle_record_kind {
    TATTLE_REC_EVENT = 1,     /* tattle_capture / tattle_capture_as */
    TATTLE_REC_EXCEPTION = 2, /* tattle_capture_exception */
};

#define TATTLE_REC_MAX_PCS 64

struct tattle_record {
    uint16_t kind;
    uint16_t npcs;
    int32_t pid, tid;
    uint32_t name_len, distinct_len, props_len, context_len, message_len;
    uint64_t time_ns;
    uint64_t dropped_before; /* ring drops counted when this was written */
};

#endif
