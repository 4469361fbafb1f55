/* ring.h - the lock-free ring of records between host threads and the flusher.
 *
 * Owns: the slot layout and both cursors. Many host threads write (claiming
 * slots with a CAS on head), one flusher reads. A record spans 1..N adjacent
 * slots. All-zero memory is an empty ring, so a fresh memfd needs no setup
 * and untouched slots cost no resident memory.
 * A slot's state word says in which lap L it was last published (2L+1);
 * positions before the reader's tail are free, and a writer compares its
 * claim with the tail (as it last saw it: the reader's cursor is read again
 * only when the ring looks full), so the reader never writes into slots.
 * Signal context: PARTLY. tattle__ring_put() is signal-safe (no syscalls,
 * no locks, never waits); the reader side runs in the flusher only.
 */
#ifndef TATTLE_RING_H
#define TATTLE_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TATTLE_RING_SLOTS 1024u /* power of two */
#define TATTLE_RING_SLOT_SIZE 512u
#define TATTLE_RING_SLOT_DATA (TATTLE_RING_SLOT_SIZE - 16u)
#define TATTLE_RING_MAX_SLOTS 128u /* largest record: 128 slots, about 62 KiB */
#define TATTLE_RING_MAX_RECORD (TATTLE_RING_MAX_SLOTS * TATTLE_RING_SLOT_DATA)

enum { TATTLE_SLOT_FIRST = 1 };

struct tattle_ring_slot {
    _Atomic uint64_t state;
    uint32_t len;    /* first slot: payload bytes of the whole record */
    uint16_t nslots; /* first slot: slots in the record */
    uint16_t flags;  /* TATTLE_SLOT_FIRST on a record's first slot */
    unsigned char data[TATTLE_RING_SLOT_DATA];
};

struct tattle_ring {
    _Atomic uint64_t head; /* next position writers claim */
    uint64_t id;           /* this ring, as opposed to another at the same address (a forked child's) */
    char pad1[48];
    _Atomic uint64_t tail; /* next position the reader consumes */
    char pad2[56];
    _Atomic uint64_t dropped; /* records refused because the ring was full */
    char pad3[56];
    struct tattle_ring_slot slots[TATTLE_RING_SLOTS];
};

/* The slots a record of len payload bytes takes (at least one). */
static inline uint64_t tattle__ring_slots_for(size_t len)
{
    return len ? (len + TATTLE_RING_SLOT_DATA - 1) / TATTLE_RING_SLOT_DATA : 1;
}

/* Append a record made of two parts (header + body). Returns the position
 * claimed (>= 0), or -1 when it does not fit (the drop is counted), or -2 when
 * the record is larger than TATTLE_RING_MAX_RECORD. Signal-safe. */
int64_t tattle__ring_put(struct tattle_ring *r, const void *a, size_t alen, const void *b, size_t blen);

/* Reader: copy the next published record into buf (cap >= TATTLE_RING_MAX_RECORD)
 * and free its slots. Returns its length, 0 if none is ready. Not signal-safe. */
size_t tattle__ring_get(struct tattle_ring *r, void *buf, size_t cap);

/* Reader: true when writers claimed positions that are not yet published. */
int tattle__ring_pending(struct tattle_ring *r);

/* Reader, after the host is gone: skip a claimed but never published record
 * (its writer died). Returns the number of slots skipped. Not signal-safe. */
uint64_t tattle__ring_skip_abandoned(struct tattle_ring *r);

#endif
