/* report.c - formatting the text crash report (see report.h).
 *
 * Signal context: NO.
 */
#include "report.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "event.h"
#include "threads.h"

struct out { char *buf; size_t cap, len; };

static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (o->len + 1 >= o->cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len = o->len + (size_t)n < o->cap ? o->len + (size_t)n : o->cap - 1;
}

static void put_frame(struct out *o, size_t i, const struct tattle_frame *f)
{
    const char *mod = f->module ? strrchr(f->module, '/') : NULL;
    mod = mod ? mod + 1 : f->module;
    if (f->signal_frame) {
        put(o, "  #%-3zu 0x%016llx <signal handler called>\n", i, (unsigned long long)f->pc);
        return;
    }
    if (f->inlined)
        put(o, "  #%-3zu %18s    %s", i, "", f->function ? f->function : "??");
    else
        put(o, "  #%-3zu 0x%016llx in %s", i, (unsigned long long)f->pc, f->function ? f->function : "??");
    if (f->file)
        put(o, " (%s:%d)", f->file, f->line);
    else if (mod)
        put(o, " (%s+0x%llx)", mod, (unsigned long long)(f->pc - f->image_addr));
    put(o, "%s\n", f->inlined ? " [inlined]" : "");
}

static void put_others(struct out *o, const struct tattle_thread_stacks *others)
{
    const struct tattle_threads *t = others->t;
    uint32_t i, shown = t->n < TATTLE_REPORT_THREADS ? t->n : TATTLE_REPORT_THREADS;
    for (i = 0; i < shown; i++) {
        const struct tattle_stack *st = &others->st[i];
        size_t k, n = st->n < TATTLE_REPORT_THREAD_FRAMES ? st->n : TATTLE_REPORT_THREAD_FRAMES;
        put(o, "tattle: thread %d \"%s\"%s\n", t->t[i].tid, t->t[i].name,
            t->t[i].stopped ? "" : ": could not be stopped in time");
        for (k = 0; k < n; k++)
            put_frame(o, k, &st->frames[k]);
        if (st->n > n || st->truncated)
            put(o, "  ... more frames not shown\n");
    }
    if (t->total > shown)
        put(o, "tattle: %u more threads not shown (%u in the event)\n", t->total - shown, t->n - shown);
    if (t->err)
        put(o, "tattle: other threads: %s\n", strerror(t->err));
}

size_t tattle__report_format(char *buf, size_t cap, const struct tattle_shm *shm, const struct tattle_crash *c,
                             const struct tattle_stack *st, const struct tattle_thread_stacks *others,
                             const char *uuid, const char *sink_note)
{
    struct out o = {buf, cap, 0};
    char type[256], value[2048];
    size_t i, n;
    if (cap == 0)
        return 0;
    buf[0] = 0;
    tattle__event_crash_title(c, type, sizeof type, value, sizeof value);
    put(&o, "\ntattle: %s: %s\n", type, value);
    put(&o, "tattle: thread %d \"%s\" of process %d (%s)\n", c->tid, c->thread_name, c->pid, shm->exe);
    n = st->n < TATTLE_EVENT_MAX_FRAMES ? st->n : TATTLE_EVENT_MAX_FRAMES;
    for (i = 0; i < n; i++) {
        if (st->elided && i == st->elided_at)
            put(&o, "  ... %llu frames elided ...\n", (unsigned long long)st->elided);
        put_frame(&o, i + (st->elided && i >= st->elided_at ? (size_t)st->elided : 0), &st->frames[i]);
    }
    if (st->n > n || st->truncated)
        put(&o, "  ... more frames not shown\n");
    if (others && others->t) {
        /* The other threads never crowd out where the event went. */
        struct out lim = {buf, cap > 1024 ? cap - 1024 : cap, o.len};
        put_others(&lim, others);
        o.len = lim.len;
    }
    if (sink_note && *sink_note)
        put(&o, "tattle: event %s %s\n", uuid, sink_note);
    return o.len;
}
