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

struct context {
    struct context *parent;
    unsigned flags;
    struct tagset tags;
    _Atomic(char *) distinct;
    _Atomic(char *) session;
};

static __thread struct context *_Atomic thread_top;
static __thread int thread_depth;
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
 * when read). free_old: the replaced array may be freed (only this thread
 * reads it). */
static int tagset_append(struct tagset *ts, const char *key, const char *value, int free_old)
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
        if (free_old)
            free(items);
        items = grown;
    }
    k = dup_pair(key, value, &v);
    if (!k)
        return TATTLE_ENOMEM;
    items[n].key = k;
    items[n].value = v;
    atomic_store_explicit(&ts->count, n + 1, memory_order_release);
    return 0;
}

static void tagset_free(struct tagset *ts)
{
    struct tag *items = atomic_load(&ts->items);
    unsigned i, n = atomic_load(&ts->count);
    for (i = 0; i < n; i++)
        free((char *)items[i].key);
    free(items);
}

static void context_free(struct context *c)
{
    tagset_free(&c->tags);
    free(atomic_load(&c->distinct));
    free(atomic_load(&c->session));
    free(c);
}

static void pop_all_at_exit(void *unused)
{
    (void)unused;
    while (tattle__context_pop() == 0)
        ;
    exit_registered = 0;
}

int tattle__context_push(unsigned flags)
{
    struct context *c;
    if (thread_depth >= TATTLE_MAX_DEPTH)
        return TATTLE_ETOOMANY;
    c = calloc(1, sizeof *c);
    if (!c)
        return TATTLE_ENOMEM;
    if (!exit_registered && tattle__key_once(&exit_key_state, &exit_key, pop_all_at_exit) &&
        pthread_setspecific(exit_key, (void *)1) == 0)
        exit_registered = 1;
    c->parent = atomic_load_explicit(&thread_top, memory_order_relaxed);
    c->flags = flags;
    atomic_store_explicit(&thread_top, c, memory_order_release);
    thread_depth++;
    return 0;
}

int tattle__context_pop(void)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    if (!c)
        return -1;
    atomic_store_explicit(&thread_top, c->parent, memory_order_release);
    thread_depth--;
    context_free(c);
    return 0;
}

int tattle__context_depth(void) { return thread_depth; }

int tattle__context_tag(const char *key, const char *json_value)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    if (!c)
        return TATTLE_ENOCONTEXT;
    return tagset_append(&c->tags, key, json_value, 1);
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
    return c ? swap_string(&c->distinct, id, 1) : TATTLE_ENOCONTEXT;
}

int tattle__context_set_session(const char *id)
{
    struct context *c = atomic_load_explicit(&thread_top, memory_order_relaxed);
    return c ? swap_string(&c->session, id, 1) : TATTLE_ENOCONTEXT;
}

/* Other threads (and their crash handlers) may be reading the process
 * layer at any time: what it replaces is never freed. */
int tattle__process_tag(const char *key, const char *json_value)
{
    int r;
    pthread_mutex_lock(&process_lock);
    r = tagset_append(&process_tags, key, json_value, 0);
    pthread_mutex_unlock(&process_lock);
    return r;
}

int tattle__process_set_distinct(const char *id)
{
    return swap_string(&process_distinct, id, 0);
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
}
