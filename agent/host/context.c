/* context.c - process and per-thread contexts (see context.h).
 *
 * Signal context: PARTLY (see context.h). Each thread only ever touches its
 * own stack, so no locks are needed there; the process layer takes a mutex
 * for writers and never frees what a reader might hold.
 */
#include "context.h"

#include "assafe.h"
#include "breadcrumbs.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TATTLE_AGENT_BUILD
#include "tattle.h"

struct tag {
    const char *key, *value; /* one allocation: key NUL value NUL */
};

struct tagset {
    _Atomic(struct tag *) items;
    _Atomic unsigned count;
    unsigned cap;
};

#define INLINE_TAGS 8
#define ARENA 384
#define FREE_KEEP 16

/* A context holds its first tags and their text itself: a push, a few
 * tags and a pop allocate nothing once the thread has a popped context to
 * reuse. */
struct context {
    struct context *parent;
    unsigned flags;
    struct tagset tags;
    _Atomic(char *) distinct;
    _Atomic(char *) session;
    size_t arena_used;
    struct context *next_free;
    struct tag inline_tags[INLINE_TAGS];
    char arena[ARENA];
};

static __thread struct context *_Atomic thread_top;
static __thread int thread_depth;
/* Popped contexts kept for reuse (at most FREE_KEEP). */
static __thread struct context *free_list;
static __thread int free_count;
/* Bumped whenever this thread's contexts change, or the process layer
 * does: a capture reuses the text it last wrote while both hold. */
static __thread unsigned thread_gen;
static _Atomic unsigned process_gen;
/* Contexts a thread leaves open are freed when it exits. */
static pthread_key_t exit_key;
static _Atomic int exit_key_state;
static __thread int exit_registered;

static struct tagset process_tags;
static _Atomic(char *) process_distinct;
static pthread_mutex_t process_lock = PTHREAD_MUTEX_INITIALIZER;
/* The process layer's base from the configuration (TATTLE_TAGS,
 * TATTLE_RELEASE, TATTLE_ENVIRONMENT, TATTLE_DISTINCT_ID): written from
 * their text at every serialization, so that setting it allocates nothing
 * (the crash handler may be the first to set it). */
static const char *env_tags, *env_release, *env_environment, *env_distinct;

/* One TATTLE_TAGS item (n bytes): key=value, a key of 1 to 200 bytes, a
 * value of at most 1000, both UTF-8. 0, or what is wrong with it. */
static const char *env_item(const char *item, size_t n, size_t *key_len)
{
    const char *eq = memchr(item, '=', n);
    if (!eq || eq == item || eq - item > 200)
        return "expected key=value";
    *key_len = (size_t)(eq - item);
    if (n - *key_len - 1 > 1000 || tattle__utf8_check(item, n) != 0)
        return "not valid UTF-8, or longer than 1000 bytes";
    return NULL;
}

static int env_member(struct tattle_out *o, int first, const char *key, size_t kl, const char *value, size_t vl)
{
    if (!first)
        tattle__out_raw(o, ",", 1);
    tattle__out_json_string_n(o, key, kl);
    tattle__out_raw(o, ":", 1);
    tattle__out_json_string_n(o, value, vl);
    return 0;
}

static int env_value_ok(const char *v)
{
    size_t n = tattle__strlen(v);
    return n > 0 && n <= 1000 && tattle__utf8_check(v, n) == 0;
}

/* The members the configuration gives the process layer; returns whether
 * the next member is the first. Signal-safe. */
static int write_env_tags(struct tattle_out *o, int first)
{
    const char *p = env_tags;
    size_t kl;
    while (p && *p) {
        size_t n = 0;
        while (p[n] && p[n] != ',')
            n++;
        if (n && !env_item(p, n, &kl))
            first = env_member(o, first, p, kl, p + kl + 1, n - kl - 1);
        p += n + (p[n] == ',');
    }
    if (env_release && env_value_ok(env_release))
        first = env_member(o, first, "release", 7, env_release, tattle__strlen(env_release));
    if (env_environment && env_value_ok(env_environment))
        first = env_member(o, first, "environment", 11, env_environment, tattle__strlen(env_environment));
    return first;
}

void tattle__context_set_env_layer(const char *tags, const char *release, const char *environment,
                                   const char *distinct, int warn)
{
    const char *p = tags;
    size_t kl;
    env_tags = tags;
    env_release = release && *release ? release : NULL;
    env_environment = environment && *environment ? environment : NULL;
    env_distinct = distinct && *distinct ? distinct : NULL;
    atomic_fetch_add(&process_gen, 1);
    if (!warn)
        return;
    while (p && *p) {
        size_t n = 0;
        const char *why;
        char shown[72];
        while (p[n] && p[n] != ',')
            n++;
        if (n && (why = env_item(p, n, &kl))) {
            tattle__strlcpy(shown, p, n < 64 ? n + 1 : 65); /* not the value: it may be binary */
            tattle__say("tattle: ignoring TATTLE_TAGS item \"", tattle__utf8_check(shown, tattle__strlen(shown))
                        ? "(not UTF-8)" : shown, "\": ", why, NULL);
        }
        p += n + (p[n] == ',');
    }
    if (env_release && !env_value_ok(env_release))
        tattle__say("tattle: ignoring TATTLE_RELEASE: not valid UTF-8, or longer than 1000 bytes", 0, 0, 0, 0);
    if (env_environment && !env_value_ok(env_environment))
        tattle__say("tattle: ignoring TATTLE_ENVIRONMENT: not valid UTF-8, or longer than 1000 bytes", 0, 0, 0, 0);
}

static char *context_pair(struct context *c, const char *key, const char *value, const char **vout);

static char *dup_pair(const char *key, const char *value, const char **vout)
{
    size_t kl = strlen(key), vl = strlen(value);
    char *p = malloc(kl + vl + 2);
    if (!p)
        return NULL;
    memcpy(p, key, kl + 1);
    memcpy(p + kl + 1, value, vl + 1);
    *vout = p + kl + 1;
    return p;
}

/* Append key=value; a key set again is appended again (the later one wins
 * when read). owner: the context the set belongs to (its text goes in the
 * context's arena, a replaced array is freed: only this thread reads it),
 * or NULL for the process layer (nothing replaced is ever freed). */
static int tagset_append(struct tagset *ts, const char *key, const char *value, struct context *owner)
{
    unsigned n = atomic_load_explicit(&ts->count, memory_order_relaxed);
    struct tag *items = atomic_load_explicit(&ts->items, memory_order_relaxed);
    const char *v;
    char *k;
    if (n >= TATTLE_TAGS_MAX)
        return TATTLE_ETOOMANY;
    if (n == ts->cap) {
        unsigned cap = ts->cap ? ts->cap * 2 : 8;
        struct tag *grown = malloc(cap * sizeof *grown);
        if (!grown)
            return TATTLE_ENOMEM;
        if (n)
            memcpy(grown, items, n * sizeof *grown);
        atomic_store_explicit(&ts->items, grown, memory_order_release);
        ts->cap = cap;
        if (owner && items != owner->inline_tags)
            free(items);
        items = grown;
    }
    k = owner ? context_pair(owner, key, value, &v) : dup_pair(key, value, &v);
    if (!k)
        return TATTLE_ENOMEM;
    items[n].key = k;
    items[n].value = v;
    atomic_store_explicit(&ts->count, n + 1, memory_order_release);
    return 0;
}

static int in_arena(const struct context *c, const char *p)
{
    return p >= c->arena && p < c->arena + ARENA;
}

/* What a context allocated beyond itself, freed; the context emptied. */
static void context_clear(struct context *c)
{
    struct tag *items = atomic_load(&c->tags.items);
    unsigned i, n = atomic_load(&c->tags.count);
    for (i = 0; i < n; i++)
        if (!in_arena(c, items[i].key))
            free((char *)items[i].key);
    atomic_store(&c->tags.count, 0);
    free(atomic_exchange(&c->distinct, NULL));
    free(atomic_exchange(&c->session, NULL));
    c->arena_used = 0;
}

static void context_destroy(struct context *c)
{
    struct tag *items = atomic_load(&c->tags.items);
    context_clear(c);
    if (items != c->inline_tags)
        free(items);
    free(c);
}

/* Popped: kept for the next push, or freed. */
static void context_release(struct context *c)
{
    if (free_count >= FREE_KEEP) {
        context_destroy(c);
        return;
    }
    context_clear(c);
    c->next_free = free_list;
    free_list = c;
    free_count++;
}

static struct context *context_get(void)
{
    struct context *c = free_list;
    if (c) {
        free_list = c->next_free;
        free_count--;
        return c;
    }
    c = calloc(1, sizeof *c);
    if (c) {
        atomic_store(&c->tags.items, c->inline_tags);
        c->tags.cap = INLINE_TAGS;
    }
    return c;
}

/* key NUL value NUL, in the context's arena when it fits. */
static char *context_pair(struct context *c, const char *key, const char *value, const char **vout)
{
    size_t kl = strlen(key), vl = strlen(value), need = kl + vl + 2;
    char *p;
    if (need > ARENA - c->arena_used)
        return dup_pair(key, value, vout);
    p = c->arena + c->arena_used;
    c->arena_used += need;
    memcpy(p, key, kl + 1);
    memcpy(p + kl + 1, value, vl + 1);
    *vout = p + kl + 1;
    return p;
}

static void pop_all_at_exit(void *unused)
{
    (void)unused;
    while (tattle__context_pop() == 0)
        ;
    while (free_list) {
        struct context *c = free_list;
        free_list = c->next_free;
        context_destroy(c);
    }
    free_count = 0;
    tattle__context_snapshot_free();
    exit_registered = 0;
}

/* This thread's contexts and snapshot are freed when it exits. */
static void register_exit(void)
{
    if (!exit_registered && tattle__key_once(&exit_key_state, &exit_key, pop_all_at_exit) &&
        pthread_setspecific(exit_key, (void *)1) == 0)
        exit_registered = 1;
}

int tattle__context_push(unsigned flags)
{
    struct context *c;
    if (thread_depth >= TATTLE_MAX_DEPTH)
        return TATTLE_ETOOMANY;
    c = context_get();
    if (!c)
        return TATTLE_ENOMEM;
    register_exit();
    c->parent = atomic_load_explicit(&thread_top, memory_order_relaxed);
    c->flags = flags;
    atomic_store_explicit(&thread_top, c, memory_order_release);
    thread_depth++;
    thread_gen++;
    return 0;
}

int tattle__context_pop(void)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    if (!c)
        return -1;
    atomic_store_explicit(&thread_top, c->parent, memory_order_release);
    thread_depth--;
    thread_gen++;
    context_release(c);
    return 0;
}

int tattle__context_depth(void) { return thread_depth; }

int tattle__context_tag(const char *key, const char *json_value)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    if (!c)
        return TATTLE_ENOCONTEXT;
    thread_gen++;
    return tagset_append(&c->tags, key, json_value, c);
}

static int swap_string(_Atomic(char *) *slot, const char *value, int free_old)
{
    char *copy = strdup(value);
    char *old;
    if (!copy)
        return TATTLE_ENOMEM;
    old = atomic_exchange(slot, copy);
    if (free_old)
        free(old);
    return 0;
}

int tattle__context_set_distinct(const char *id)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    thread_gen++;
    return c ? swap_string(&c->distinct, id, 1) : TATTLE_ENOCONTEXT;
}

int tattle__context_set_session(const char *id)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    thread_gen++;
    return c ? swap_string(&c->session, id, 1) : TATTLE_ENOCONTEXT;
}

/* Other threads (and their crash handlers) may be reading the process
 * layer at any time: what it replaces is never freed. */
int tattle__process_tag(const char *key, const char *json_value)
{
    int r;
    pthread_mutex_lock(&process_lock);
    r = tagset_append(&process_tags, key, json_value, NULL);
    atomic_fetch_add(&process_gen, 1);
    pthread_mutex_unlock(&process_lock);
    return r;
}

int tattle__process_set_distinct(const char *id)
{
    int r = swap_string(&process_distinct, id, 0);
    atomic_fetch_add(&process_gen, 1);
    return r;
}

static void write_tags(struct tattle_out *o, struct tagset *ts, int with_env)
{
    /* count first: a writer publishes a grown array before the count that
     * needs it, and a newer array holds every older entry. */
    unsigned i, n = atomic_load_explicit(&ts->count, memory_order_acquire);
    struct tag *items = atomic_load_explicit(&ts->items, memory_order_acquire);
    int first = 1;
    tattle__out_raw(o, "{", 1);
    if (with_env)
        first = write_env_tags(o, first);
    for (i = 0; i < n; i++) {
        if (!first)
            tattle__out_raw(o, ",", 1);
        first = 0;
        tattle__out_json_string(o, items[i].key);
        tattle__out_raw(o, ":", 1);
        tattle__out_str(o, items[i].value);
    }
    tattle__out_raw(o, "}", 1);
}

static void write_id(struct tattle_out *o, const char *name, const char *value)
{
    if (!value)
        return;
    tattle__out_str(o, name);
    tattle__out_json_string(o, value);
}

void tattle__context_write(struct tattle_out *o, int with_breadcrumbs)
{
    struct context *chain[TATTLE_MAX_DEPTH];
    struct context *c = atomic_load_explicit(&thread_top, memory_order_acquire);
    int n = 0, i;
    /* Innermost up to (and including) the nearest fresh context. */
    for (; c && n < TATTLE_MAX_DEPTH; c = c->parent) {
        chain[n++] = c;
        if (c->flags & TATTLE_FRESH)
            break;
    }
    tattle__out_str(o, "{\"p\":{\"t\":");
    write_tags(o, &process_tags, 1);
    char *pd = atomic_load(&process_distinct);
    write_id(o, ",\"d\":", pd ? pd : env_distinct);
    tattle__out_str(o, "},\"l\":[");
    for (i = n - 1; i >= 0; i--) {
        tattle__out_str(o, i == n - 1 ? "{\"t\":" : ",{\"t\":");
        write_tags(o, &chain[i]->tags, 0);
        write_id(o, ",\"d\":", atomic_load(&chain[i]->distinct));
        write_id(o, ",\"s\":", atomic_load(&chain[i]->session));
        tattle__out_raw(o, "}", 1);
    }
    tattle__out_raw(o, "]", 1);
    if (with_breadcrumbs) {
        tattle__out_str(o, ",\"b\":");
        tattle__breadcrumbs_write(o);
    }
    tattle__out_raw(o, "}", 1);
}

/* The text tattle__context_write(o, 0) gives, kept per thread (in a
 * mapping of its own: signal-safe to make) and rewritten only when the
 * thread's contexts or the process layer changed since. */
#define SNAPSHOT_SIZE (16 * 1024)
static __thread char *snap_buf;
static __thread size_t snap_len;
static __thread unsigned snap_thread_gen, snap_process_gen;
static __thread int snap_valid;

size_t tattle__context_snapshot(const char **text)
{
    unsigned pg = atomic_load_explicit(&process_gen, memory_order_acquire);
    struct tattle_out o;
    if (snap_valid && snap_thread_gen == thread_gen && snap_process_gen == pg) {
        *text = snap_buf;
        return snap_len;
    }
    if (!snap_buf) {
        void *p = mmap(NULL, SNAPSHOT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 0;
        snap_buf = p;
        register_exit();
    }
    snap_valid = 0;
    o = (struct tattle_out){snap_buf, SNAPSHOT_SIZE, 0, 0};
    tattle__context_write(&o, 0);
    if (o.overflow)
        return 0;
    snap_len = o.len;
    snap_thread_gen = thread_gen;
    snap_process_gen = pg;
    snap_valid = 1;
    *text = snap_buf;
    return snap_len;
}

void tattle__context_snapshot_free(void)
{
    char *buf = snap_buf;
    /* Forgotten before it is unmapped: a capture from a signal handler in
     * between makes a new one instead of reading this. */
    snap_valid = 0;
    snap_buf = NULL;
    if (buf)
        munmap(buf, SNAPSHOT_SIZE);
}

int tattle__context_captures_crashes(void)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_acquire);
    return !(c && (c->flags & TATTLE_NO_CAPTURE_EXCEPTIONS));
}

void tattle__context_after_fork(void)
{
    /* posthog-python resets contexts in a forked child: so do we. The
     * parent's memory copy is left as it is (freeing it buys nothing). */
    atomic_store(&thread_top, NULL);
    thread_depth = 0;
    thread_gen++;
}
