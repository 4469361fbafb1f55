/* ring.c - lock-free multi-writer, single-reader ring (see ring.h).
 *
 * Signal context: PARTLY. tattle__ring_put() and copy_in() are signal-safe;
 * the reader functions run in the flusher.
 */
#include "ring.h"

#include <string.h>

#define MASK (TATTLE_RING_SLOTS - 1u)

static inline uint64_t lap_of(uint64_t pos) { return pos / TATTLE_RING_SLOTS; }
static inline struct tattle_ring_slot *slot_at(struct tattle_ring *r, uint64_t pos)
{
    return &r->slots[pos & MASK];
}

/* Copy a span of payload bytes into the record's slots. Signal-safe. */
static void copy_in(struct tattle_ring *r, uint64_t pos, size_t off, const void *src, size_t len)
{
    const unsigned char *s = src;
    while (len > 0) {
        struct tattle_ring_slot *sl = slot_at(r, pos + off / TATTLE_RING_SLOT_DATA);
        size_t in = off % TATTLE_RING_SLOT_DATA;
        size_t n = TATTLE_RING_SLOT_DATA - in;
        if (n > len)
            n = len;
        memcpy(sl->data + in, s, n);
        s += n;
        off += n;
        len -= n;
    }
}

/* The tail this thread saw last, for the ring it wrote to last: a writer
 * reads the reader's cursor (a cache line the reader keeps writing) only
 * when, by that stale view, the ring might be full. Within one ring a
 * stale tail is never ahead of the real one, so it only ever makes a
 * writer look again; a ring at the same address is another ring when its
 * id differs (a forked child's, a region made anew). */
static __thread struct tattle_ring *hint_ring;
static __thread uint64_t hint_id, hint_tail;

int64_t tattle__ring_put(struct tattle_ring *r, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t len = alen + blen;
    uint64_t k = tattle__ring_slots_for(len);
    uint64_t pos, i, id = r->id, tail = hint_ring == r && hint_id == id ? hint_tail : 0;
    if (len > TATTLE_RING_MAX_RECORD)
        return -2;
    pos = atomic_load_explicit(&r->head, memory_order_relaxed);
    for (unsigned tries = 0;; tries++) {
        /* Bounded: cursors damaged by a stray write must not hang the
         * host; the record is dropped and counted instead. */
        if (tries > 100000) {
            atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
            return -1;
        }
        if (pos + k - tail > TATTLE_RING_SLOTS) {
            /* Full by what this thread saw: the reader may have moved on.
             * Acquire: what it read of those slots happened before. */
            tail = atomic_load_explicit(&r->tail, memory_order_acquire);
            hint_ring = r;
            hint_id = id;
            hint_tail = tail;
            if (pos + k - tail > TATTLE_RING_SLOTS) { /* full (or cursors damaged: never trusted) */
                atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
                return -1;
            }
        }
        if (atomic_compare_exchange_weak_explicit(&r->head, &pos, pos + k, memory_order_relaxed,
                                                  memory_order_relaxed))
            break;
    }
    copy_in(r, pos, 0, a, alen);
    copy_in(r, pos, alen, b, blen);
    slot_at(r, pos)->len = (uint32_t)len;
    slot_at(r, pos)->nslots = (uint16_t)k;
    slot_at(r, pos)->flags = TATTLE_SLOT_FIRST;
    /* Publish continuation slots first, the first slot last: a reader that
     * sees the first slot published sees the whole record. */
    for (i = k; i-- > 0;) {
        uint16_t f = i ? 0 : TATTLE_SLOT_FIRST;
        if (i)
            slot_at(r, pos + i)->flags = f;
        atomic_store_explicit(&slot_at(r, pos + i)->state, 2 * lap_of(pos + i) + 1, memory_order_release);
    }
    return (int64_t)pos;
}

/* Slots before the tail are free: writers compare with the tail, and a
 * slot's state from an earlier lap never reads as published in this one,
 * so the reader writes nothing into the slots themselves (their lines stay
 * clean in the writer's cache). */
static void free_slots(struct tattle_ring *r, uint64_t pos, uint64_t k)
{
    atomic_store_explicit(&r->tail, pos + k, memory_order_release);
}

size_t tattle__ring_get(struct tattle_ring *r, void *buf, size_t cap)
{
    uint64_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    struct tattle_ring_slot *first = slot_at(r, pos);
    uint64_t st = atomic_load_explicit(&first->state, memory_order_acquire);
    size_t len, off = 0;
    uint64_t k, i;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (st != 2 * lap_of(pos) + 1 || pos >= head)
        return 0;
    len = first->len;
    k = first->nslots;
    /* A record never reaches past what writers claimed (tail must not pass
     * head), nor past its own slots. */
    if (k == 0 || k > TATTLE_RING_MAX_SLOTS || k > head - pos || len > k * TATTLE_RING_SLOT_DATA || len > cap) {
        free_slots(r, pos, 1); /* corrupt: never trust it, skip one slot */
        return 0;
    }
    for (i = 0; i < k && off < len; i++) {
        size_t n = len - off < TATTLE_RING_SLOT_DATA ? len - off : TATTLE_RING_SLOT_DATA;
        memcpy((char *)buf + off, slot_at(r, pos + i)->data, n);
        off += n;
    }
    free_slots(r, pos, k);
    return len ? len : 0;
}

int tattle__ring_pending(struct tattle_ring *r)
{
    return atomic_load_explicit(&r->head, memory_order_acquire) !=
           atomic_load_explicit(&r->tail, memory_order_relaxed);
}

uint64_t tattle__ring_skip_abandoned(struct tattle_ring *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    uint64_t p;
    /* Find the next published first slot; everything before it was claimed
     * by a writer that never finished. */
    for (p = tail + 1; p < head; p++) {
        struct tattle_ring_slot *s = slot_at(r, p);
        if (atomic_load_explicit(&s->state, memory_order_acquire) == 2 * lap_of(p) + 1 &&
            (s->flags & TATTLE_SLOT_FIRST))
            break;
    }
    free_slots(r, tail, p - tail);
    return p - tail;
}
