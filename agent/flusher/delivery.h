/* delivery.h - the flusher's delivery thread: a spool queue to its
 * destination (PostHog, Sentry), one thread each.
 *
 * Owns: sending every batch in the spool, oldest first, through the PostHog
 * transport; backoff (capped exponential, honouring Retry-After) after
 * network errors, 408, 429 and 5xx; stopping for good after 401/403 (the
 * batches stay in the spool); setting aside batches refused with 400;
 * splitting on 413; and the linger window after the host is gone. The
 * flusher's main thread never waits on the network: it writes the spool and
 * kicks this thread.
 * Signal context: NO.
 */
#ifndef TATTLE_DELIVERY_H
#define TATTLE_DELIVERY_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "http.h"
#include "spool.h"

/* A destination: how a batch (JSON lines, one event each) goes there. */
struct tattle_transport {
    const char *name;    /* "PostHog", "Sentry": in notices */
    const char *setting; /* what names the server, for a redirect's notice */
    unsigned max_events; /* events per request, 0: any */
    void (*send)(void *handle, const char *lines, size_t len, unsigned count, long timeout_ms,
                 struct tattle_send_result *res);
    void (*close)(void *handle);
};

/* What the delivery thread tells its flusher. */
struct tattle_delivery_hooks {
    void (*notice)(void *arg, const char *msg); /* worth one line on the host's stderr */
    uint32_t (*pass_started)(void *arg);        /* a pass over the spool begins: its generation */
    void (*pass_done)(void *arg, uint32_t gen); /* ...and ended (sent, or gave up for now) */
    void *arg;
};

struct tattle_delivery_stats {
    _Atomic uint64_t requests;
    _Atomic uint64_t events_sent;
    _Atomic uint64_t body_bytes; /* uncompressed JSON of sent requests */
    _Atomic uint64_t wire_bytes; /* gzip bodies of sent requests */
    _Atomic uint32_t rounds;     /* passes over the spool, finished */
};

struct tattle_delivery;

/* Start the thread sending spool through tr (handle is the transport's,
 * now the delivery's: closed at finish, or here on failure). NULL when it
 * cannot start. */
struct tattle_delivery *tattle__delivery_start(const struct tattle_config *cfg, struct tattle_spool *spool,
                                               const struct tattle_transport *tr, void *handle,
                                               const struct tattle_delivery_hooks *hooks);

/* New batches are in the spool: send them now (unless backing off). */
void tattle__delivery_kick(struct tattle_delivery *d);

/* Nothing to send now: every batch written so far had a pass that ended
 * without a pending retry. */
int tattle__delivery_idle(struct tattle_delivery *d);

/* Counters, readable at any time. */
const struct tattle_delivery_stats *tattle__delivery_stats(const struct tattle_delivery *d);

struct tattle_delivery_totals {
    uint64_t requests, events_sent;
};

/* The host is gone: keep sending for at most linger_ms, then stop the
 * thread. What is not sent stays in the spool. totals (may be NULL) gets
 * the final counts. */
void tattle__delivery_finish(struct tattle_delivery *d, int linger_ms, struct tattle_delivery_totals *totals);

#endif
