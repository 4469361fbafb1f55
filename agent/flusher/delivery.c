/* delivery.c - the delivery thread (see delivery.h).
 *
 * Signal context: NO.
 */
#include "delivery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


#define BACKOFF_FIRST_MS 250
#define BACKOFF_MAX_MS 30000
#define IDLE_RESCAN_MS 1000 /* other processes' batches appear without a kick */
#define REQUEST_TIMEOUT_MS 15000
#define FINAL_REQUEST_MS 3000
#define LIST_MAX 256

enum pass_result { PASS_EMPTY, PASS_BACKOFF, PASS_STOPPED };

struct tattle_delivery {
    const struct tattle_config *cfg;
    struct tattle_spool *spool;
    const struct tattle_transport *tr;
    void *handle;
    struct tattle_delivery_hooks hooks;
    struct tattle_delivery_stats stats;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int kicked;
    int finishing;
    uint64_t deadline_ms; /* when finishing */
    int attempts;         /* failures in a row */
    uint64_t retry_at_ms;
    int auth_failed;
    _Atomic uint32_t kicks, kicks_passed; /* kicks so far; as of the start of the last finished pass */
    _Atomic int backing_off;              /* the last pass ended in backoff: batches wait for a retry */
    char (*names)[96];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* fmt's first %s is the destination's name. */
static void notice(struct tattle_delivery *d, const char *fmt, const char *a, const char *b)
{
    char msg[400];
    snprintf(msg, sizeof msg, fmt, d->tr->name, a, b);
    tattle__spool_save_status(d->spool, msg); /* for tattle status */
    if (d->hooks.notice)
        d->hooks.notice(d->hooks.arg, msg);
}

/* Capped exponential, and never sooner than the server asked. */
static long backoff_ms(int attempts, long retry_after_ms)
{
    long ms = BACKOFF_FIRST_MS;
    int i;
    for (i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    if (retry_after_ms > ms)
        ms = retry_after_ms < BACKOFF_MAX_MS ? retry_after_ms : BACKOFF_MAX_MS;
    return ms;
}

static long request_timeout(struct tattle_delivery *d)
{
    long t = REQUEST_TIMEOUT_MS;
    pthread_mutex_lock(&d->mu);
    if (d->finishing) {
        uint64_t now = now_ms();
        t = d->deadline_ms > now ? (long)(d->deadline_ms - now) : 0;
        /* A request started near the end of the linger still gets time to
         * hear its answer: cut off, a batch the server took would be sent
         * again later (its events twice). */
        if (t < FINAL_REQUEST_MS)
            t = FINAL_REQUEST_MS;
        if (t > REQUEST_TIMEOUT_MS)
            t = REQUEST_TIMEOUT_MS;
    }
    pthread_mutex_unlock(&d->mu);
    return t;
}

/* The byte length of the first n lines of body. */
static size_t lines_len(const char *body, size_t len, unsigned n)
{
    size_t off = 0;
    while (n-- > 0 && off < len) {
        const char *nl = memchr(body + off, '\n', len - off);
        off = nl ? (size_t)(nl - body) + 1 : len;
    }
    return off;
}

static void account(struct tattle_delivery *d, const struct tattle_send_result *r, unsigned count)
{
    atomic_fetch_add(&d->stats.requests, 1);
    if (r->outcome == TATTLE_SENT) {
        atomic_fetch_add(&d->stats.events_sent, count);
        atomic_fetch_add(&d->stats.body_bytes, r->body_bytes);
        atomic_fetch_add(&d->stats.wire_bytes, r->wire_bytes);
    }
}

/* Send one claimed batch, in chunks that shrink on 413. Returns the outcome
 * of the first chunk that did not go; the batch is then released (with the
 * unsent rest put back) or rejected. */
static enum tattle_send_outcome send_batch(struct tattle_delivery *d, struct tattle_spool_batch *b,
                                           struct tattle_send_result *res)
{
    size_t off = 0;
    unsigned left = b->count, chunk = d->tr->max_events && d->tr->max_events < b->count ? d->tr->max_events : b->count;
    while (left > 0) {
        size_t n = lines_len(b->body + off, b->len - off, chunk);
        d->tr->send(d->handle, b->body + off, n, chunk, request_timeout(d), res);
        account(d, res, chunk);
        if (res->outcome == TATTLE_SENT || (res->outcome == TATTLE_SEND_TOO_LARGE && chunk == 1)) {
            if (res->outcome != TATTLE_SENT)
                notice(d, "%s refused an event as too large (HTTP 413)%s%s; it was dropped", "", "");
            off += n;
            left -= chunk;
            chunk = chunk < left ? chunk : left;
            continue;
        }
        if (res->outcome == TATTLE_SEND_TOO_LARGE) {
            chunk = (chunk + 1) / 2;
            continue;
        }
        if (res->outcome == TATTLE_SEND_REJECTED && chunk == 1 && left > 1) {
            /* One event refused, others never tried: they go back to the
             * queue as a batch of their own; this one is set aside with
             * the batch file (never resent). */
            unsigned dropped = 0;
            if (tattle__spool_write(d->spool, b->body + off + n, b->len - off - n, left - 1, &dropped) == 0) {
                tattle__spool_reject(d->spool, b);
                return res->outcome;
            }
        }
        break;
    }
    if (left == 0)
        tattle__spool_done(d->spool, b);
    else if (res->outcome == TATTLE_SEND_REJECTED && off == 0)
        tattle__spool_reject(d->spool, b);
    else if (off > 0)
        tattle__spool_replace(d->spool, b, b->body + off, b->len - off, left);
    else
        tattle__spool_release(b);
    return left == 0 ? TATTLE_SENT : res->outcome;
}

/* One pass: send batches oldest first until the spool is empty or a
 * failure calls for a pause. */
static enum pass_result send_pass(struct tattle_delivery *d)
{
    size_t n = tattle__spool_list(d->spool, d->names, LIST_MAX), i, sent = 0;
    for (i = 0; i < n; i++) {
        struct tattle_spool_batch b;
        struct tattle_send_result res;
        int claimed = tattle__spool_claim(d->spool, d->names[i], &b);
        if (claimed < 0)
            notice(d, "%s: a damaged batch in %.150s was set aside (%.60s)", d->spool->dir, d->names[i]);
        if (claimed <= 0)
            continue;
        switch (send_batch(d, &b, &res)) {
        case TATTLE_SENT:
            d->attempts = 0;
            sent++;
            break;
        case TATTLE_SEND_AUTH:
            d->auth_failed = 1;
            notice(d, "%s refused the API key (%.60s); events are kept in %.150s until it is fixed", res.error,
                   d->spool->dir);
            return PASS_STOPPED;
        case TATTLE_SEND_REDIRECT:
            d->auth_failed = 1;
            notice(d, "%s answered with a redirect (%.60s), which is not followed; events are kept in %.150s"
                      " until the configuration names the server itself", res.error, d->spool->dir);
            return PASS_STOPPED;
        case TATTLE_SEND_REJECTED:
            notice(d, "%s refused a batch (%.60s); it is kept in %.150s, not resent", res.error, d->spool->dir);
            break;
        default:
            d->attempts++;
            /* +1: now_ms() drops the part of a millisecond already past,
             * and a retry must not come before Retry-After has passed. */
            d->retry_at_ms = now_ms() + 1 + (uint64_t)backoff_ms(d->attempts, res.retry_after_ms);
            return PASS_BACKOFF;
        }
    }
    /* A full listing may hide more; look again only if this one made
     * progress (batches others hold stay where they are). */
    return n == LIST_MAX && sent > 0 ? send_pass(d) : PASS_EMPTY;
}

/* Sleep until kicked, the backoff ends, a rescan is due or the window
 * closes. Returns 0 when the thread should stop. */
static int wait_turn(struct tattle_delivery *d, enum pass_result last)
{
    int go = 1;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        uint64_t now = now_ms(), until;
        if (d->kicked && last != PASS_BACKOFF)
            break; /* new batches, or the last pass after finish */
        if (d->finishing && (now >= d->deadline_ms || last != PASS_BACKOFF)) {
            go = 0;
            break;
        }
        if (last == PASS_BACKOFF) {
            if (now >= d->retry_at_ms)
                break;
            if (d->kicked) {
                /* New batches are safe in the spool; say the pass for them
                 * is over (the server is failing) so no one waits on it. */
                d->kicked = 0;
                pthread_mutex_unlock(&d->mu);
                if (d->hooks.pass_done)
                    d->hooks.pass_done(d->hooks.arg, d->hooks.pass_started(d->hooks.arg));
                pthread_mutex_lock(&d->mu);
                continue;
            }
            until = d->retry_at_ms;
        } else {
            until = now + IDLE_RESCAN_MS;
        }
        if (d->finishing && until > d->deadline_ms)
            until = d->deadline_ms;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (until - now) * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0 && last != PASS_BACKOFF && !d->finishing)
            break; /* the periodic rescan */
    }
    d->kicked = 0;
    pthread_mutex_unlock(&d->mu);
    return go;
}

static void *delivery_main(void *arg)
{
    struct tattle_delivery *d = arg;
    enum pass_result last = PASS_EMPTY;
    tattle__spool_sweep(d->spool);
    do {
        uint32_t gen = d->hooks.pass_started ? d->hooks.pass_started(d->hooks.arg) : 0;
        uint32_t kicks = atomic_load(&d->kicks);
        last = d->auth_failed ? PASS_STOPPED : send_pass(d);
        atomic_store(&d->backing_off, last == PASS_BACKOFF);
        atomic_store(&d->kicks_passed, kicks);
        atomic_fetch_add(&d->stats.rounds, 1);
        if (d->hooks.pass_done)
            d->hooks.pass_done(d->hooks.arg, gen);
    } while (wait_turn(d, last));
    return NULL;
}

struct tattle_delivery *tattle__delivery_start(const struct tattle_config *cfg, struct tattle_spool *spool,
                                               const struct tattle_transport *tr, void *handle,
                                               const struct tattle_delivery_hooks *hooks)
{
    struct tattle_delivery *d = calloc(1, sizeof *d);
    pthread_condattr_t ca;
    if (!d || !handle) {
        if (handle)
            tr->close(handle);
        free(d);
        return NULL;
    }
    d->tr = tr;
    d->handle = handle;
    d->cfg = cfg;
    d->spool = spool;
    atomic_store(&d->kicks, 1); /* not idle before the first pass */
    d->hooks = *hooks;
    d->names = malloc(LIST_MAX * sizeof *d->names);
    if (!d->names)
        goto fail;
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&d->thread, NULL, delivery_main, d) != 0)
        goto fail;
    return d;
fail:
    tr->close(handle);
    free(d->names);
    free(d);
    return NULL;
}

int tattle__delivery_idle(struct tattle_delivery *d)
{
    return !atomic_load(&d->backing_off) && atomic_load(&d->kicks_passed) == atomic_load(&d->kicks);
}

void tattle__delivery_kick(struct tattle_delivery *d)
{
    atomic_fetch_add(&d->kicks, 1);
    pthread_mutex_lock(&d->mu);
    d->kicked = 1;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

const struct tattle_delivery_stats *tattle__delivery_stats(const struct tattle_delivery *d)
{
    return &d->stats;
}

void tattle__delivery_finish(struct tattle_delivery *d, int linger_ms, struct tattle_delivery_totals *totals)
{
    pthread_mutex_lock(&d->mu);
    d->finishing = 1;
    d->kicked = 1;
    d->deadline_ms = now_ms() + (uint64_t)(linger_ms > 0 ? linger_ms : 0);
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    if (totals) {
        totals->requests = atomic_load(&d->stats.requests);
        totals->events_sent = atomic_load(&d->stats.events_sent);
    }
    d->tr->close(d->handle);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
    free(d->names);
    free(d);
}
