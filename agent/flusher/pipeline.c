/* pipeline.c - from a host's records to events in the sinks.
 *
 * Owns: turning a crash record into an event and a report (unwind,
 * symbolize, build, commit, then tell the waiting handler); draining each
 * host's ring into the batch; committing the batch to the local file and,
 * with a server configured, to the spool that the delivery thread sends
 * from; and the notices hosts print. Every host's region is the host's to
 * write, and a host may lie or die mid-write: what is read from it is
 * clamped in the flusher's copy.
 * Signal context: NO.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "assafe.h"
#include "delivery.h"
#include "event.h"
#include "flusher.h"
#include "ingest.h"
#include "ingest_text.h"
#include "report.h"
#include "sink_file.h"
#include "statedir.h"
#include "symbolize.h"
#include "threads.h"
#include "transport_posthog.h"
#include "unwind.h"

/* One line for the hosts' stderr: each prints it at its next flush, exit or
 * crash. Called from the delivery thread too. */
void tattle__flusher_notice(void *arg, const char *msg)
{
    struct flusher *f = arg;
    size_t i;
    pthread_mutex_lock(&f->clients_mu);
    snprintf(f->last_notice, sizeof f->last_notice, "%s", msg);
    for (i = 0; i < f->nclients; i++) {
        struct tattle_shm *shm = f->clients[i]->shm;
        if (!shm)
            continue;
        snprintf(shm->notice, sizeof shm->notice, "%s", msg);
        atomic_fetch_add_explicit(&shm->notice_seq, 1, memory_order_release);
    }
    pthread_mutex_unlock(&f->clients_mu);
}

/* Physical frames to symbolized frames. libdw flags as activations both the
 * kernel's signal trampoline and the frame it interrupted; a non-initial
 * activation followed by another is the trampoline. */
static void symbolize_pcs(struct tattle_symbolizer *sym, const struct tattle_pcs *pcs, struct tattle_stack *st)
{
    size_t i;
    for (i = 0; i < pcs->n; i++) {
        size_t before = st->n;
        if (pcs->elided && i == TATTLE_UNWIND_HEAD) {
            st->elided_at = st->n;
            st->elided = pcs->elided;
        }
        tattle__symbolize(sym, pcs->pc[i], pcs->activation[i], st);
        if (i > 0 && pcs->activation[i] && i + 1 < pcs->n && pcs->activation[i + 1] && st->n > before)
            st->frames[st->n - 1].signal_frame = 1;
    }
    if (!pcs->complete && pcs->total >= TATTLE_UNWIND_WALK)
        st->truncated = 1;
}

/* One notice per run of failed commits, not one per batch. */
static void commit_problem(struct flusher *f, const char *what, const char *where, int err)
{
    char msg[256];
    if (f->commit_failed)
        return;
    if (err)
        snprintf(msg, sizeof msg, "%s %.160s (%s)", what, where, tattle__state_strerror(-err));
    else
        snprintf(msg, sizeof msg, "%s", what);
    tattle__flusher_notice(f, msg);
}

/* A batch is in the spool: every host's next tattle_flush waits for the
 * delivery pass that includes it. */
static void spooled(struct flusher *f)
{
    uint32_t gen = atomic_fetch_add(&f->spooled_gen, 1) + 1;
    size_t i;
    for (i = 0; i < f->nclients; i++)
        if (f->clients[i]->shm)
            atomic_store(&f->clients[i]->shm->spooled_gen, gen);
}

/* The batch's error events for Sentry's queue (custom events are
 * analytics: they stay PostHog's). Returns 0 when they are safe there. */
static int commit_sentry(struct flusher *f)
{
    static const char prefix[] = "{\"event\":\"$exception\"";
    const char *line = f->batch, *end = f->batch + f->batch_len;
    size_t len = 0;
    unsigned count = 0, dropped = 0;
    int r;
    if (f->sentry_cap < f->batch_len) {
        char *b = realloc(f->sentry_batch, f->batch_len);
        if (!b)
            return -ENOMEM;
        f->sentry_batch = b;
        f->sentry_cap = f->batch_len;
    }
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t n = nl ? (size_t)(nl - line) + 1 : (size_t)(end - line);
        if (n > sizeof prefix - 1 && !memcmp(line, prefix, sizeof prefix - 1)) {
            memcpy(f->sentry_batch + len, line, n);
            len += n;
            count++;
        }
        line += n;
    }
    if (!count)
        return 0;
    r = tattle__spool_write(&f->sentry_spool, f->sentry_batch, len, count, &dropped);
    if (r == 0) {
        if (!f->delivery)
            spooled(f);
        tattle__delivery_kick(f->sentry);
    }
    return r;
}

/* Write the batch to every sink. Returns 0 when it is safe somewhere. */
static int commit(struct flusher *f, int sync)
{
    int file_r = 1, spool_r = 1; /* 1: no such sink */
    unsigned dropped = 0;
    if (!f->batch_count)
        return 0;
    if (f->cfg.file_path[0])
        file_r = tattle__sink_file_append(f->cfg.file_path, f->batch, f->batch_len - 1, sync, f->cfg.file_max_bytes);
    if (f->delivery) {
        spool_r = tattle__spool_write(&f->spool, f->batch, f->batch_len, f->batch_count, &dropped);
        if (spool_r == 0) {
            f->spool_dropped += dropped;
            spooled(f);
            tattle__delivery_kick(f->delivery);
        }
    }
    if (f->sentry) {
        int r = commit_sentry(f);
        if (r < 0)
            commit_problem(f, "cannot write the spool in", f->sentry_spool.dir, r);
        else if (spool_r > 0)
            spool_r = 0; /* Sentry's queue is where this batch's errors are safe */
    }
    if (file_r < 0)
        commit_problem(f, "cannot write", f->cfg.file_path, file_r);
    if (spool_r < 0)
        commit_problem(f, "cannot write the spool in", f->spool.dir, spool_r);
    if (file_r > 0 && spool_r > 0 && f->spool_err)
        commit_problem(f, "cannot use the spool directory", f->cfg.spool_dir, f->spool_err);
    else if (file_r > 0 && spool_r > 0)
        commit_problem(f, "events have nowhere to go: set TATTLE_FILE (neither $XDG_STATE_HOME nor $HOME is set)"
                          " or POSTHOG_API_KEY", NULL, 0);
    f->commit_failed = file_r != 0 && spool_r != 0;
    f->batch_len = 0;
    f->batch_count = 0;
    return f->commit_failed ? -1 : 0;
}

static void batch_add(struct flusher *f, const char *line, size_t n)
{
    if (f->batch_len + n + 1 > f->batch_cap) {
        size_t cap = (f->batch_len + n + 1) * 2;
        char *b = realloc(f->batch, cap);
        if (!b)
            return;
        f->batch = b;
        f->batch_cap = cap;
    }
    memcpy(f->batch + f->batch_len, line, n);
    f->batch[f->batch_len + n] = '\n';
    f->batch_len += n + 1;
    f->batch_count++;
}

/* Queue one event's JSON line, committing first if the batch is full.
 * Returns 0 when it was queued. */
static int queue_line(struct flusher *f, const char *json, size_t n)
{
    char msg[256];
    if (n > TATTLE_EVENT_MAX_BYTES) {
        snprintf(msg, sizeof msg, "dropped a %zu-byte event: PostHog takes at most about 1 MB", n);
        tattle__flusher_notice(f, msg);
        return -1;
    }
    if (f->batch_count >= TATTLE_SPOOL_BATCH_EVENTS || f->batch_len + n + 1 > TATTLE_SPOOL_BATCH_BYTES)
        commit(f, 1);
    batch_add(f, json, n);
    return 0;
}

/* Check an event against PostHog's rules, then queue it. Returns 0 when it
 * was queued. */
static int add_event(struct flusher *f, cJSON *ev)
{
    const char *problem = tattle__posthog_event_problem(ev);
    char *json;
    size_t n;
    int r;
    char msg[256];
    if (problem) {
        snprintf(msg, sizeof msg, "dropped an event PostHog would refuse: %s", problem);
        tattle__flusher_notice(f, msg);
        return -1;
    }
    if (f->spool_dropped) {
        cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
        cJSON_AddNumberToObject(props, "$tattle_spool_dropped_events", f->spool_dropped);
        f->spool_dropped = 0;
    }
    json = cJSON_PrintUnformatted(ev);
    if (!json)
        return -1;
    n = strlen(json);
    r = queue_line(f, json, n);
    free(json);
    return r;
}

/* Where the crash event went, for the report. */
static void crash_note(struct flusher *f, int r, char *note, size_t cap)
{
    int k = 0;
    note[0] = 0;
    if (r != 0) {
        snprintf(note, cap, "NOT saved: %s", f->last_notice);
        return;
    }
    if (f->cfg.file_path[0])
        k = snprintf(note, cap, "written to %.3000s", f->cfg.file_path);
    if (f->delivery && k >= 0 && (size_t)k < cap)
        k += snprintf(note + k, cap - (size_t)k, "%squeued for %.300s (spool %.300s)", k ? "; " : "",
                      f->cfg.posthog_host_shown, f->spool.dir);
    if (f->sentry && k >= 0 && (size_t)k < cap)
        snprintf(note + k, cap - (size_t)k, "%squeued for Sentry %.300s (spool %.300s)", k ? "; " : "",
                 f->cfg.sentry_url, f->sentry_spool.dir);
}

/* The shared region is the host's to write, and a host may lie or die
 * mid-write: every length is clamped to its array and every string ends
 * within its own, in the flusher's copy. */
#define TERMINATE(a) ((a)[sizeof(a) - 1] = 0)

void tattle__flusher_clamp_header(struct tattle_shm *shm)
{
    if (shm->cmdline_len > TATTLE_CMDLINE_MAX)
        shm->cmdline_len = TATTLE_CMDLINE_MAX;
    TERMINATE(shm->exe);
}

static void clamp_crash(struct tattle_crash *c)
{
    if (c->stack_len > TATTLE_STACK_COPY)
        c->stack_len = TATTLE_STACK_COPY;
    if (c->maps_len > TATTLE_MAPS_MAX)
        c->maps_len = TATTLE_MAPS_MAX;
    if (c->context_len > TATTLE_CONTEXT_MAX)
        c->context_len = TATTLE_CONTEXT_MAX;
    if (c->abort_kind > TATTLE_ABORT_CXX)
        c->abort_kind = TATTLE_ABORT_NONE;
    TERMINATE(c->thread_name);
    TERMINATE(c->abort_msg);
    TERMINATE(c->assert_expr);
    TERMINATE(c->assert_file);
    TERMINATE(c->assert_func);
    TERMINATE(c->cxx_type);
    TERMINATE(c->cxx_what);
}

/* The other threads' stacks, unwound in the crash's session with the
 * crashing thread's (pcs[0]), then symbolized. */
static void unwind_all(struct tattle_symbolizer *sym, const struct tattle_crash *c, struct tattle_pcs *pcs,
                       const struct tattle_threads *t, struct tattle_stack *stacks)
{
    struct tattle_unwind_thread in[1 + TATTLE_MAX_THREADS];
    uint32_t map[1 + TATTLE_MAX_THREADS];
    size_t n = 1, i;
    in[0] = (struct tattle_unwind_thread){c->tid, c->gregs, c->stack_start, c->stack, c->stack_len};
    for (i = 0; t && i < t->n; i++) {
        if (!t->t[i].stopped)
            continue;
        in[n] = (struct tattle_unwind_thread){t->t[i].tid, t->t[i].gregs, t->t[i].stack_start, t->stack[i],
                                              t->t[i].stack_len};
        map[n++] = (uint32_t)i;
    }
    tattle__unwind_threads(sym, c->pid, in, n, pcs);
    for (i = 1; i < n; i++)
        symbolize_pcs(sym, &pcs[i], &stacks[map[i]]);
}

void tattle__flusher_crash(struct flusher *f, struct client *host)
{
    struct tattle_crash *shared = &host->shm->crash;
    static struct tattle_crash copy;
    struct tattle_crash *c = &copy;
    struct tattle_symbolizer *sym;
    struct tattle_pcs *pcs = NULL;
    struct tattle_stack st = {0};
    struct tattle_thread_stacks others = {NULL, NULL};
    cJSON *ev = NULL;
    char note[4200] = "";
    const char *uuid = "";
    uint32_t ready = TATTLE_CRASH_READY, i;
    if (!atomic_compare_exchange_strong(&shared->state, &ready, TATTLE_CRASH_TAKEN))
        return;
    memcpy(&copy, shared, sizeof copy);
    clamp_crash(c);
    c->pid = host->pid; /* the region's word is the host's; the kernel's is ours */
    tattle__flusher_clamp_header(host->shm);
    /* The crashing thread waits in its handler; the others are stopped for
     * a moment and read, while the process is still there. */
    if (f->cfg.all_threads && !host->host_gone)
        others.t = tattle__threads_capture(c->pid, c->tid, 200);
    if (others.t)
        others.st = calloc(others.t->n ? others.t->n : 1, sizeof *others.st);
    sym = tattle__symbolizer_open(c->maps, c->maps_len, c->pid);
    pcs = calloc(1 + TATTLE_MAX_THREADS, sizeof *pcs);
    if (sym && pcs && (!others.t || others.st)) {
        unwind_all(sym, c, pcs, others.t, others.st);
        symbolize_pcs(sym, &pcs[0], &st);
        ev = tattle__event_crash(&f->cfg, host->shm, c, &st, sym, others.st ? &others : NULL);
    }
    if (ev) {
        uuid = cJSON_GetObjectItemCaseSensitive(ev, "uuid")->valuestring;
        commit(f, 1); /* what came before the crash stays before it */
        crash_note(f, add_event(f, ev) == 0 ? commit(f, 1) : -1, note, sizeof note);
    }
    shared->report_len = (uint32_t)tattle__report_format(shared->report, sizeof shared->report, host->shm, c, &st,
                                                         others.st ? &others : NULL, uuid, note);
    atomic_store_explicit(&shared->state, TATTLE_CRASH_DONE, memory_order_release);
    if (host->sock >= 0)
        (void)send(host->sock, "d", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    cJSON_Delete(ev);
    tattle__stack_free(&st);
    for (i = 0; others.st && i < others.t->n; i++)
        tattle__stack_free(&others.st[i]);
    free(others.st);
    tattle__threads_free(others.t);
    free(pcs);
    tattle__symbolizer_close(sym);
}

/* The host's module map, read while it lives (kept after it is gone). */
static struct tattle_symbolizer *host_symbolizer(void *arg)
{
    struct client *c = arg;
    static char maps[TATTLE_MAPS_MAX];
    char path[64];
    size_t n;
    if (c->sym)
        return c->sym;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)c->pid);
    n = tattle__read_file(path, maps, sizeof maps);
    if (n > 0)
        c->sym = tattle__symbolizer_open(maps, n, c->pid);
    return c->sym;
}

/* Records other than crashes arrive through the ring: captures and
 * handled exceptions, each becoming one event. */
void tattle__flusher_drain(struct flusher *f, struct client *c)
{
    static unsigned char rec[TATTLE_RING_MAX_RECORD];
    struct tattle_ring *r = &c->shm->ring;
    size_t len;
    while ((len = tattle__ring_get(r, rec, sizeof rec)) > 0) {
        const char *line;
        size_t n;
        cJSON *ev;
        /* Most records take the text path; the rest, and the one that
         * carries the spool's dropped count, are built as a tree. */
        if (c->text && !f->spool_dropped && (n = tattle__ingest_text(c->text, rec, len, &line)) > 0) {
            queue_line(f, line, n);
            continue;
        }
        ev = tattle__ingest(&f->cfg, c->shm, rec, len, host_symbolizer, c);
        if (ev)
            add_event(f, ev);
        cJSON_Delete(ev);
    }
    if (c->host_gone && tattle__ring_pending(r))
        tattle__ring_skip_abandoned(r);
    if (atomic_load(&r->tail) != c->drained)
        c->active_ms = tattle__now_monotonic_ms();
    c->drained = atomic_load(&r->tail);
}

void tattle__flusher_publish(struct flusher *f)
{
    size_t i;
    commit(f, 1);
    for (i = 0; i < f->nclients; i++) {
        struct tattle_shm *shm = f->clients[i]->shm;
        if (!shm || atomic_load(&shm->sunk_pos) == f->clients[i]->drained)
            continue;
        atomic_store(&shm->sunk_pos, f->clients[i]->drained);
        atomic_fetch_add(&shm->sunk_futex, 1);
        tattle__futex_wake((volatile uint32_t *)&shm->sunk_futex);
    }
}

int tattle__flusher_work_left(const struct client *c)
{
    uint32_t cs;
    if (!c->shm)
        return 0;
    cs = atomic_load(&c->shm->crash.state);
    if (cs == TATTLE_CRASH_READY)
        return 1;
    if (cs == TATTLE_CRASH_WRITING && !c->host_gone)
        return 1;
    return tattle__ring_pending(&c->shm->ring) && !c->host_gone;
}

