/* breadcrumbs.c - lock-free breadcrumb ring (see breadcrumbs.h).
 *
 * Signal context: YES.
 */
#include "breadcrumbs.h"

#include <stdatomic.h>

#include "assafe.h"

struct crumb {
    _Atomic uint64_t seq; /* 2n+1 while written, 2n+2 once published for index n */
    uint64_t time_ns;
    char category[TATTLE_CRUMB_CATEGORY_MAX + 1];
    char message[TATTLE_CRUMB_MESSAGE_MAX + 1];
};

static struct crumb crumbs[TATTLE_CRUMBS_LIMIT] TATTLE_LARGE_STATIC;
static unsigned capacity = 100;
static _Atomic uint64_t next_index;

void tattle__breadcrumbs_init(unsigned cap)
{
    if (cap > TATTLE_CRUMBS_LIMIT)
        cap = TATTLE_CRUMBS_LIMIT;
    capacity = cap;
}

int tattle__breadcrumbs_add(const char *category, const char *message, uint64_t time_ns)
{
    uint64_t n;
    struct crumb *c;
    if (capacity == 0)
        return 0;
    n = atomic_fetch_add(&next_index, 1);
    c = &crumbs[n % capacity];
    atomic_store_explicit(&c->seq, 2 * n + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    c->time_ns = time_ns;
    tattle__strlcpy(c->category, category, sizeof c->category);
    tattle__strlcpy(c->message, message, sizeof c->message);
    atomic_store_explicit(&c->seq, 2 * n + 2, memory_order_release);
    return 0;
}

void tattle__breadcrumbs_write(struct tattle_out *o)
{
    uint64_t end = atomic_load(&next_index), n;
    uint64_t start = end > capacity ? end - capacity : 0;
    int first = 1;
    tattle__out_raw(o, "[", 1);
    for (n = start; n < end; n++) {
        struct crumb *c = &crumbs[n % capacity];
        struct tattle_out item;
        char buf[TATTLE_CRUMB_CATEGORY_MAX + TATTLE_CRUMB_MESSAGE_MAX + 128];
        item.buf = buf;
        item.cap = sizeof buf;
        item.len = 0;
        item.overflow = 0;
        if (atomic_load_explicit(&c->seq, memory_order_acquire) != 2 * n + 2)
            continue;
        tattle__out_str(&item, "{\"t\":");
        tattle__out_u64(&item, c->time_ns / 1000000ULL);
        tattle__out_str(&item, ",\"c\":");
        tattle__out_json_string(&item, c->category);
        tattle__out_str(&item, ",\"m\":");
        tattle__out_json_string(&item, c->message);
        tattle__out_raw(&item, "}", 1);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&c->seq, memory_order_relaxed) != 2 * n + 2 || item.overflow)
            continue; /* rewritten while we copied it */
        if (!first)
            tattle__out_raw(o, ",", 1);
        tattle__out_raw(o, item.buf, item.len);
        first = 0;
    }
    tattle__out_raw(o, "]", 1);
}
