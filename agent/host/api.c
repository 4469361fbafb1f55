/* api.c - the functions tattle.h binds to: checking input, then contexts,
 * captures and breadcrumbs.
 *
 * Owns: argument validation and its one-line warnings (once per kind of
 * mistake), the per-thread re-entrancy guard, and building capture records
 * in a per-thread buffer before they go into the ring.
 * Signal context: PARTLY. tattle_capture, tattle_capture_as and
 * tattle_add_breadcrumb are async-signal-safe (no allocation, no locks);
 * the context mutators allocate and are guarded against re-entry.
 */
#include <execinfo.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TATTLE_AGENT_BUILD
#include "tattle.h"

#include "assafe.h"
#include "breadcrumbs.h"
#include "context.h"
#include "entry.h"
#include "json.h"
#include "link.h"
#include "record.h"
#include "uuid.h"

#define EXPORT __attribute__((visibility("default")))

static int agent_enabled;
static pid_t process_id;        /* refreshed in a forked child */
static __thread pid_t thread_id; /* 0 until this thread's first record */
/* The frame of the tattle call this thread is in, or 0. */
static __thread uintptr_t in_api;
/* Where this thread builds its records: mapped on the thread's first
 * capture (mmap is a plain system call, so this stays signal-safe) rather
 * than in static TLS, which every thread, and every process start, would
 * pay for. Unmapped when the thread exits. */
static __thread char *record_buf;
static pthread_key_t record_key;
static _Atomic int record_key_state; /* made with the first record buffer */
static _Atomic unsigned warned; /* one bit per TATTLE_E* kind */

/* At thread exit. A capture from a later key destructor maps a new one. */
static void record_buf_free(void *p)
{
    if (record_buf == p)
        record_buf = NULL;
    munmap(p, TATTLE_RING_MAX_RECORD);
}

static char *thread_record_buf(void)
{
    if (!record_buf) {
        void *p = mmap(NULL, TATTLE_RING_MAX_RECORD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        record_buf = p;
        if (tattle__key_once(&record_key_state, &record_key, record_buf_free))
            pthread_setspecific(record_key, p);
    }
    return record_buf;
}

/* Sentry is the only server: custom events are analytics Sentry does not
 * take, so each also becomes a breadcrumb of the errors that follow. */
static int events_as_breadcrumbs;

void tattle__api_enable(int custom_events_as_breadcrumbs)
{
    process_id = tattle__sys_getpid();
    events_as_breadcrumbs = custom_events_as_breadcrumbs;
    agent_enabled = 1;
}

void tattle__api_after_fork(void)
{
    process_id = tattle__sys_getpid();
    /* Each thread's buffer mapping was copied into the child: keep using it. */
}

/* The fork this thread last saw: after a newer one, its contexts and
 * cached thread id are the parent's (posthog-python resets contexts in a
 * forked child: so do we). Signal-safe. */
static __thread unsigned thread_fork_gen;

void tattle__api_thread_check(void)
{
    unsigned gen;
    tattle__fork_check();
    gen = atomic_load_explicit(&tattle__fork_gen, memory_order_acquire);
    if (thread_fork_gen != gen) {
        thread_fork_gen = gen;
        thread_id = 0;
        tattle__context_after_fork();
    }
}

static int warn_bit(int code)
{
    switch (code) {
    case TATTLE_EINVAL: return 0;
    case TATTLE_ETOOBIG: return 1;
    case TATTLE_EJSON: return 2;
    case TATTLE_EUTF8: return 3;
    case TATTLE_ESESSION: return 4;
    case TATTLE_ENOCONTEXT: return 5;
    case TATTLE_ETOOMANY: return 6;
    case TATTLE_EBUSY: return 7;
    default: return -1; /* EAGENT: link.c says why, once */
    }
}

/* One line on stderr the first time each kind of mistake happens. Uses
 * write(2) only, so it is signal-safe too. */
static int refuse(const char *func, int code)
{
    int bit = warn_bit(code);
    if (bit >= 0 && !(atomic_fetch_or(&warned, 1u << bit) & (1u << bit))) {
        tattle__write_str(2, "tattle: ");
        tattle__write_str(2, func);
        tattle__write_str(2, ": ");
        tattle__write_str(2, tattle_strerror(code));
        tattle__write_str(2, " (further mistakes of this kind are not reported)\n");
    }
    return code;
}

/* A string argument: present, within limit, UTF-8. */
static int check_text(const char *s, size_t limit, int allow_empty)
{
    size_t n;
    if (!s || (!allow_empty && !*s))
        return TATTLE_EINVAL;
    n = strlen(s);
    if (n > limit)
        return TATTLE_ETOOBIG;
    return tattle__utf8_check(s, n) == 0 ? 0 : TATTLE_EUTF8;
}

static int check_json(const char *s, size_t limit, int object)
{
    size_t n;
    if (!s)
        return TATTLE_EINVAL;
    n = strlen(s);
    if (n > limit)
        return TATTLE_ETOOBIG;
    /* Valid JSON is valid UTF-8 (the parser checks every string, and
     * allows nothing but ASCII outside them): UTF-8 is looked at on its
     * own only to say which of the two is wrong. */
    if ((object ? tattle__json_check_object(s, n) : tattle__json_check(s, n)) != 0)
        return tattle__utf8_check(s, n) != 0 ? TATTLE_EUTF8 : TATTLE_EJSON;
    return 0;
}

/* Is this thread inside a tattle call that the current one interrupts (a
 * signal handler's call)? A call left by siglongjmp never cleared in_api:
 * a new call from a shallower frame on the same stack cannot be nested in
 * it. A handler on the alternate stack is taken as nested. */
static __attribute__((noinline)) int api_busy(uintptr_t here)
{
    stack_t ss;
    if (!in_api)
        return 0;
    if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK))
        return 1;
    return here <= in_api;
}

#define ENTER(func)                                                                                     \
    do {                                                                                                \
        if (!agent_enabled && !tattle__agent_init(0))                                                   \
            return 0;                                                                                   \
        tattle__api_thread_check();                                                                     \
        if (in_api && api_busy((uintptr_t)__builtin_frame_address(0)))                                 \
            return refuse(func, TATTLE_EBUSY);                                                          \
        in_api = (uintptr_t)__builtin_frame_address(0);                                                 \
    } while (0)
#define LEAVE(func, r)                                                                                  \
    do {                                                                                                \
        int r_ = (r);                                                                                   \
        in_api = 0;                                                                                     \
        return r_ < 0 ? refuse(func, r_) : r_;                                                          \
    } while (0)

EXPORT int tattle_version(void) { return TATTLE_VERSION_HEX; }

EXPORT int tattle_new_context(unsigned flags)
{
    ENTER("tattle_new_context");
    LEAVE("tattle_new_context",
          flags & ~(unsigned)(TATTLE_FRESH | TATTLE_NO_CAPTURE_EXCEPTIONS) ? TATTLE_EINVAL
                                                                              : tattle__context_push(flags));
}

EXPORT void tattle_end_context(void)
{
    if ((!agent_enabled && !tattle__agent_init(0)) || (in_api && api_busy((uintptr_t)__builtin_frame_address(0))))
        return;
    tattle__api_thread_check();
    in_api = (uintptr_t)__builtin_frame_address(0);
    if (tattle__context_pop() != 0)
        refuse("tattle_end_context", TATTLE_ENOCONTEXT);
    in_api = 0;
}

static int tag_checked(const char *key, const char *json, int process)
{
    int r = check_text(key, TATTLE_LIMIT_KEY, 0);
    if (r == 0)
        r = check_json(json, TATTLE_LIMIT_TAG_VALUE, 0);
    if (r == 0)
        r = process ? tattle__process_tag(key, json) : tattle__context_tag(key, json);
    return r;
}

EXPORT int tattle_tag(const char *key, const char *json_value)
{
    ENTER("tattle_tag");
    LEAVE("tattle_tag", tag_checked(key, json_value, 0));
}

EXPORT int tattle_process_tag(const char *key, const char *json_value)
{
    ENTER("tattle_process_tag");
    LEAVE("tattle_process_tag", tag_checked(key, json_value, 1));
}

EXPORT int tattle_tag_string(const char *key, const char *value)
{
    char buf[TATTLE_LIMIT_TAG_VALUE + 1];
    struct tattle_out o = {buf, sizeof buf - 1, 0, 0};
    int r;
    ENTER("tattle_tag_string");
    r = check_text(value, TATTLE_LIMIT_TAG_VALUE, 1);
    if (r == 0) {
        tattle__out_json_string(&o, value);
        buf[o.len] = 0;
        r = o.overflow ? TATTLE_ETOOBIG : tag_checked(key, buf, 0);
    }
    LEAVE("tattle_tag_string", r);
}

static int tag_literal(const char *key, const char *json)
{
    ENTER("tattle_tag");
    LEAVE("tattle_tag", tag_checked(key, json, 0));
}

EXPORT int tattle_tag_int(const char *key, int64_t value)
{
    char buf[32];
    tattle__fmt_i64(buf, value);
    return tag_literal(key, buf);
}

EXPORT int tattle_tag_double(const char *key, double value)
{
    char buf[40];
    if (value != value || value - value != 0) /* NaN and infinities are not JSON */
        return tag_literal(key, "null");
    snprintf(buf, sizeof buf, "%.17g", value);
    return tag_literal(key, buf);
}

EXPORT int tattle_tag_bool(const char *key, int value) { return tag_literal(key, value ? "true" : "false"); }

EXPORT int tattle_identify_context(const char *distinct_id)
{
    int r;
    ENTER("tattle_identify_context");
    r = check_text(distinct_id, TATTLE_LIMIT_ID, 0);
    LEAVE("tattle_identify_context", r ? r : tattle__context_set_distinct(distinct_id));
}

EXPORT int tattle_process_identify(const char *distinct_id)
{
    int r;
    ENTER("tattle_process_identify");
    r = check_text(distinct_id, TATTLE_LIMIT_ID, 0);
    LEAVE("tattle_process_identify", r ? r : tattle__process_set_distinct(distinct_id));
}

EXPORT int tattle_set_context_session(const char *session_id)
{
    int r;
    ENTER("tattle_set_context_session");
    if (!session_id || !*session_id)
        r = TATTLE_EINVAL;
    else if (!tattle__uuid_is_v7(session_id))
        r = TATTLE_ESESSION;
    else
        r = tattle__context_set_session(session_id);
    LEAVE("tattle_set_context_session", r);
}

/* Build a record in this thread's buffer and put it in the ring.
 * Signal-safe. */
static int put_record(uint16_t kind, const char *name, const char *distinct, const char *props,
                      const char *message, void *const *pcs, int npcs)
{
    struct tattle_record rec;
    char *buf = thread_record_buf();
    struct tattle_out o = {buf, TATTLE_RING_MAX_RECORD, 0, 0};
    struct tattle_shm *shm = buf ? tattle__link_get(0) : NULL;
    size_t ctx_start, ctx_end, ctx_n;
    const char *ctx;
    int64_t pos;
    int i;
    if (!shm || tattle__link_unavailable())
        return TATTLE_EAGENT;
    memset(&rec, 0, sizeof rec);
    rec.kind = kind;
    if (!thread_id)
        thread_id = tattle__sys_gettid();
    rec.pid = process_id;
    rec.tid = thread_id;
    rec.time_ns = tattle__now_realtime_ns();
    rec.dropped_before = atomic_load_explicit(&shm->ring.dropped, memory_order_relaxed);
    tattle__out_str(&o, name);
    rec.name_len = (uint32_t)o.len;
    if (distinct)
        tattle__out_str(&o, distinct);
    rec.distinct_len = (uint32_t)o.len - rec.name_len;
    if (props)
        tattle__out_str(&o, props);
    rec.props_len = (uint32_t)o.len - rec.name_len - rec.distinct_len;
    ctx_start = o.len;
    if (kind == TATTLE_REC_EVENT && (ctx_n = tattle__context_snapshot(&ctx)) > 0)
        tattle__out_raw(&o, ctx, ctx_n); /* the context as it was written last */
    else
        tattle__context_write(&o, kind == TATTLE_REC_EXCEPTION);
    ctx_end = o.len;
    rec.context_len = (uint32_t)(ctx_end - ctx_start);
    if (message)
        tattle__out_str(&o, message);
    rec.message_len = (uint32_t)(o.len - ctx_end);
    for (i = 0; i < npcs; i++) {
        uint64_t pc = (uint64_t)(uintptr_t)pcs[i];
        tattle__out_raw(&o, (const char *)&pc, sizeof pc);
    }
    rec.npcs = (uint16_t)npcs;
    if (o.overflow || o.len + sizeof rec > TATTLE_RING_MAX_RECORD)
        return TATTLE_ETOOBIG;
    pos = tattle__ring_put(&shm->ring, &rec, sizeof rec, buf, o.len);
    if (pos < 0)
        return pos == -2 ? TATTLE_ETOOBIG : TATTLE_ENOBUFS;
    tattle__link_doorbell((uint64_t)pos, tattle__ring_slots_for(o.len + sizeof rec), rec.time_ns);
    tattle__link_print_notice(0); /* two loads unless the flusher has something to say; never waits */
    return 0;
}

static int capture(const char *event, const char *distinct, const char *props)
{
    int r = check_text(event, TATTLE_LIMIT_KEY, 0);
    if (r == 0 && distinct)
        r = check_text(distinct, TATTLE_LIMIT_ID, 0);
    if (r == 0 && props)
        r = check_json(props, TATTLE_LIMIT_PROPERTIES, 1);
    if (r == 0 && events_as_breadcrumbs)
        (void)tattle__breadcrumbs_add("event", event, tattle__now_realtime_ns());
    return r ? r : put_record(TATTLE_REC_EVENT, event, distinct, props, NULL, NULL, 0);
}

EXPORT int tattle_capture(const char *event, const char *properties_json)
{
    ENTER("tattle_capture");
    LEAVE("tattle_capture", capture(event, NULL, properties_json));
}

EXPORT int tattle_capture_as(const char *event, const char *distinct_id, const char *properties_json)
{
    ENTER("tattle_capture_as");
    if (!distinct_id || !*distinct_id)
        LEAVE("tattle_capture_as", TATTLE_EINVAL);
    LEAVE("tattle_capture_as", capture(event, distinct_id, properties_json));
}

EXPORT int tattle_capture_exception(const char *type, const char *message)
{
    void *pcs[TATTLE_REC_MAX_PCS];
    int r, n;
    ENTER("tattle_capture_exception");
    r = check_text(type, TATTLE_LIMIT_KEY, 0);
    if (r == 0 && message)
        r = check_text(message, TATTLE_LIMIT_MESSAGE, 1);
    if (r == 0) {
        n = backtrace(pcs, TATTLE_REC_MAX_PCS);
        r = put_record(TATTLE_REC_EXCEPTION, type, NULL, NULL, message, pcs, n);
    }
    LEAVE("tattle_capture_exception", r);
}

EXPORT int tattle_add_breadcrumb(const char *category, const char *message)
{
    int r;
    ENTER("tattle_add_breadcrumb");
    r = check_text(category, TATTLE_LIMIT_CRUMB_CATEGORY, 0);
    if (r == 0)
        r = check_text(message, TATTLE_LIMIT_CRUMB_MESSAGE, 1);
    if (r == 0)
        r = tattle__breadcrumbs_add(category, message, tattle__now_realtime_ns());
    LEAVE("tattle_add_breadcrumb", r);
}

EXPORT int tattle_flush(int timeout_ms)
{
    ENTER("tattle_flush");
    int r = tattle__link_flush(timeout_ms < 0 ? 0 : timeout_ms);
    LEAVE("tattle_flush", r > 0 ? 0 : r < 0 ? TATTLE_EAGENT : TATTLE_ETIMEDOUT);
}
