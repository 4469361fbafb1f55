/* tattle.h - contexts, events and breadcrumbs for programs run under tattle.
 *
 * Include this header; link nothing. The functions bind to libtattle.so
 * when the program starts (dlsym(RTLD_DEFAULT) from a constructor), which
 * works for PIE and -no-pie programs alike, and no call runs dlsym later. Without the agent preloaded every call does
 * nothing and returns 0, so a program built against this header runs
 * unchanged anywhere.
 *
 *   TATTLE_SCOPED(0);                          // a context until the block ends
 *   tattle_identify_context("user-42");
 *   tattle_tag("request_id", "\"req-17\"");     // values are JSON text
 *   tattle_capture("order_placed", "{\"amount\": 42.5}");
 *
 * Semantics follow PostHog's contexts: contexts nest per thread; a child
 * sees its parent's tags, distinct ID and session and may override them
 * without changing the parent; TATTLE_FRESH starts empty; a new thread
 * starts with none; a forked child starts with none. What a capture call
 * passes explicitly wins over the context. Tags merge in three levels,
 * process < outer context < inner context, and when both sides of a key are
 * JSON objects they merge deeply ({"job":{"id":1}} then {"job":{"n":2}}
 * gives {"job":{"id":1,"n":2}}). A crash carries the crashing thread's
 * context and the latest breadcrumbs, unless the innermost context was
 * opened with TATTLE_NO_CAPTURE_EXCEPTIONS.
 *
 * Return values: 0, or a negative TATTLE_E* code; bad input also prints one
 * warning line on stderr (once per kind of mistake) and changes nothing.
 * Thread safety: every function may be called from any thread. Signal
 * handlers: tattle_capture, tattle_capture_as and tattle_add_breadcrumb are
 * async-signal-safe; any other call made from a handler that interrupted a
 * tattle call on the same thread returns TATTLE_EBUSY and does nothing.
 */
#ifndef TATTLE_H
#define TATTLE_H

#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TATTLE_VERSION_MAJOR 0
#define TATTLE_VERSION_MINOR 1
#define TATTLE_VERSION_PATCH 0
#define TATTLE_VERSION_HEX ((TATTLE_VERSION_MAJOR << 16) | (TATTLE_VERSION_MINOR << 8) | TATTLE_VERSION_PATCH)

/* Flags of tattle_new_context. */
enum { TATTLE_FRESH = 1, TATTLE_NO_CAPTURE_EXCEPTIONS = 2 };

/* Limits, in bytes: longer input is refused with TATTLE_ETOOBIG. */
#define TATTLE_LIMIT_KEY 200          /* tag keys and event names */
#define TATTLE_LIMIT_ID 200           /* distinct IDs */
#define TATTLE_LIMIT_TAG_VALUE 8192   /* one tag's JSON value */
#define TATTLE_LIMIT_PROPERTIES 32768 /* a capture's properties JSON */
#define TATTLE_LIMIT_MESSAGE 4096     /* exception messages */
#define TATTLE_LIMIT_CRUMB_CATEGORY 64
#define TATTLE_LIMIT_CRUMB_MESSAGE 512
#define TATTLE_LIMIT_TAGS 256         /* tags set in one context (or the process) */

/* Error codes: name, value, message. */
#define TATTLE_ERRNO_MAP(XX)                                                                            \
    XX(EINVAL, -22, "invalid argument (NULL or empty where a value is required)")                       \
    XX(ENOMEM, -12, "out of memory")                                                                    \
    XX(EBUSY, -16, "called from a signal handler that interrupted a tattle call")                       \
    XX(ETOOBIG, -7, "value longer than its limit")                                                      \
    XX(ENOBUFS, -105, "the buffer to the flusher is full: event dropped (and counted)")                 \
    XX(ETIMEDOUT, -110, "timed out")                                                                    \
    XX(EJSON, -1001, "not valid JSON (properties must be a JSON object)")                               \
    XX(EUTF8, -1002, "not valid UTF-8")                                                                 \
    XX(ESESSION, -1003, "session ID is not a UUIDv7")                                                   \
    XX(ENOCONTEXT, -1004, "no context is open on this thread")                                          \
    XX(ETOOMANY, -1005, "too many tags or contexts")                                                    \
    XX(EAGENT, -1006, "the agent could not start its flusher")

enum {
#define TATTLE__ERR_ENUM(name, value, msg) TATTLE_##name = value,
    TATTLE_ERRNO_MAP(TATTLE__ERR_ENUM)
#undef TATTLE__ERR_ENUM
};

/* A message for a return value. Works without the agent. */
static inline const char *tattle_strerror(int code)
{
    switch (code) {
    case 0: return "success";
#define TATTLE__ERR_CASE(name, value, msg) case value: return msg;
        TATTLE_ERRNO_MAP(TATTLE__ERR_CASE)
#undef TATTLE__ERR_CASE
    default: return "unknown tattle error";
    }
}

#ifndef TATTLE_AGENT_BUILD /* the agent defines these functions itself */

/* Binding: every function below is resolved when the program starts (a
 * constructor in each file that includes this header), so that no call,
 * the first from a signal handler included, runs dlsym. A call made before
 * that constructor ran (another file's static initializer) resolves its
 * symbol then. Each call site caches what it found. */
#define TATTLE__ABSENT ((void *)1)
static const char *const tattle__names[] = {
    "tattle_version", "tattle_new_context", "tattle_end_context", "tattle_tag", "tattle_tag_string",
    "tattle_tag_int", "tattle_tag_double", "tattle_tag_bool", "tattle_identify_context",
    "tattle_set_context_session", "tattle_process_tag", "tattle_process_identify", "tattle_capture",
    "tattle_capture_as", "tattle_capture_exception", "tattle_add_breadcrumb", "tattle_flush"};
#define TATTLE__NFN (sizeof tattle__names / sizeof tattle__names[0])
static void *tattle__bound[TATTLE__NFN];
static int tattle__bound_done;

__attribute__((constructor, unused)) static void tattle__bind_all(void)
{
    size_t i;
    void *agent = dlsym(((void *)0) /* RTLD_DEFAULT */, "tattle_version");
    for (i = 0; agent && i < TATTLE__NFN; i++)
        tattle__bound[i] = dlsym(((void *)0), tattle__names[i]);
    __atomic_store_n(&tattle__bound_done, 1, __ATOMIC_RELEASE);
}

static inline int tattle__same(const char *a, const char *b)
{
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

static inline void *tattle__resolve(void **cache, const char *name)
{
    void *fn = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
    if (!fn) {
        size_t i;
        if (__atomic_load_n(&tattle__bound_done, __ATOMIC_ACQUIRE)) {
            for (i = 0; i < TATTLE__NFN; i++)
                if (tattle__same(tattle__names[i], name))
                    fn = tattle__bound[i];
        } else {
            fn = dlsym(((void *)0) /* RTLD_DEFAULT */, name);
        }
        if (!fn)
            fn = TATTLE__ABSENT;
        __atomic_store_n(cache, fn, __ATOMIC_RELEASE);
    }
    return fn == TATTLE__ABSENT ? (void *)0 : fn;
}

#define TATTLE__CALL(sym, ret_t, params, args)                                                          \
    static void *cache_;                                                                                \
    typedef ret_t(*fn_t) params;                                                                        \
    fn_t fn_ = (fn_t)tattle__resolve(&cache_, sym);                                                     \
    return fn_ ? fn_ args : 0

/* 1 when libtattle.so is preloaded into this process. */
static inline int tattle_agent_loaded(void) { TATTLE__CALL("tattle_version", int, (void), ()) != 0; }

/* The agent's version as TATTLE_VERSION_HEX, or 0 without the agent. */
static inline int tattle_version(void) { TATTLE__CALL("tattle_version", int, (void), ()); }

/* Push a context on this thread's stack. flags: TATTLE_FRESH (start empty
 * instead of inheriting), TATTLE_NO_CAPTURE_EXCEPTIONS (a crash while this is
 * the innermost context is not reported; the process still dies as before).
 * Errors: TATTLE_EINVAL (unknown flag), TATTLE_ETOOMANY (256 deep), ENOMEM. */
static inline int tattle_new_context(unsigned flags)
{
    TATTLE__CALL("tattle_new_context", int, (unsigned), (flags));
}

/* Pop the innermost context. Without one, a harmless no-op. */
static inline void tattle_end_context(void)
{
    static void *cache_;
    void (*fn_)(void) = (void (*)(void))tattle__resolve(&cache_, "tattle_end_context");
    if (fn_)
        fn_();
}

/* TATTLE_SCOPED(flags); opens a context that ends with the enclosing block. */
static inline void tattle__scope_end(int *opened)
{
    if (*opened == 0)
        tattle_end_context();
}
#define TATTLE__CAT2(a, b) a##b
#define TATTLE__CAT(a, b) TATTLE__CAT2(a, b)
#define TATTLE_SCOPED(flags)                                                                            \
    int TATTLE__CAT(tattle_scope_, __COUNTER__) __attribute__((cleanup(tattle__scope_end), unused)) =   \
        tattle_new_context(flags)

/* Set a tag in the innermost context. json_value is JSON text: "\"abc\"",
 * "2", "true", "{\"a\":1}". Copied. Errors: TATTLE_EINVAL, TATTLE_ETOOBIG,
 * TATTLE_EUTF8, TATTLE_EJSON, TATTLE_ENOCONTEXT, TATTLE_ETOOMANY. */
static inline int tattle_tag(const char *key, const char *json_value)
{
    TATTLE__CALL("tattle_tag", int, (const char *, const char *), (key, json_value));
}

/* Typed tags: the value is converted to JSON (strings are escaped). */
static inline int tattle_tag_string(const char *key, const char *value)
{
    TATTLE__CALL("tattle_tag_string", int, (const char *, const char *), (key, value));
}
static inline int tattle_tag_int(const char *key, int64_t value)
{
    TATTLE__CALL("tattle_tag_int", int, (const char *, int64_t), (key, value));
}
static inline int tattle_tag_double(const char *key, double value)
{
    TATTLE__CALL("tattle_tag_double", int, (const char *, double), (key, value));
}
static inline int tattle_tag_bool(const char *key, int value)
{
    TATTLE__CALL("tattle_tag_bool", int, (const char *, int), (key, value));
}

/* The innermost context's distinct ID (the user). Errors: TATTLE_EINVAL,
 * TATTLE_ETOOBIG, TATTLE_EUTF8, TATTLE_ENOCONTEXT. */
static inline int tattle_identify_context(const char *distinct_id)
{
    TATTLE__CALL("tattle_identify_context", int, (const char *), (distinct_id));
}

/* The innermost context's session ID, a UUIDv7 string (posthog-js's rule).
 * Errors: TATTLE_EINVAL, TATTLE_ESESSION, TATTLE_ENOCONTEXT. */
static inline int tattle_set_context_session(const char *session_id)
{
    TATTLE__CALL("tattle_set_context_session", int, (const char *), (session_id));
}

/* Process-wide tags and distinct ID: the bottom level, under every thread's
 * contexts (like TATTLE_TAGS and TATTLE_DISTINCT_ID in the environment). */
static inline int tattle_process_tag(const char *key, const char *json_value)
{
    TATTLE__CALL("tattle_process_tag", int, (const char *, const char *), (key, json_value));
}
static inline int tattle_process_identify(const char *distinct_id)
{
    TATTLE__CALL("tattle_process_identify", int, (const char *), (distinct_id));
}

/* Capture a custom event. properties_json: a JSON object, or NULL. The
 * context's tags become properties (explicit ones win), their keys go in
 * $context_tags, its distinct ID and session become distinct_id and
 * $session_id. Never waits on I/O. Async-signal-safe. Errors: TATTLE_EINVAL,
 * TATTLE_ETOOBIG, TATTLE_EUTF8, TATTLE_EJSON, TATTLE_ENOBUFS, TATTLE_EAGENT. */
static inline int tattle_capture(const char *event, const char *properties_json)
{
    TATTLE__CALL("tattle_capture", int, (const char *, const char *), (event, properties_json));
}

/* The same with an explicit distinct ID, which wins over the context's. */
static inline int tattle_capture_as(const char *event, const char *distinct_id, const char *properties_json)
{
    TATTLE__CALL("tattle_capture_as", int, (const char *, const char *, const char *),
                 (event, distinct_id, properties_json));
}

/* A handled exception: a $exception event (level "error", handled: true)
 * with the caller's symbolized stack, the context and the breadcrumbs.
 * type: e.g. "ParseError"; message may be NULL. Not async-signal-safe. */
static inline int tattle_capture_exception(const char *type, const char *message)
{
    TATTLE__CALL("tattle_capture_exception", int, (const char *, const char *), (type, message));
}

/* Remember a breadcrumb; the latest ones (TATTLE_MAX_BREADCRUMBS, default
 * 100) travel with crashes and handled exceptions. Async-signal-safe. */
static inline int tattle_add_breadcrumb(const char *category, const char *message)
{
    TATTLE__CALL("tattle_add_breadcrumb", int, (const char *, const char *), (category, message));
}

/* Wait until every event captured before the call is in the local sinks
 * (the file, or the spool on disk) and, with a server configured, until one
 * delivery attempt for it has ended (sent, or kept in the spool for a retry).
 * Errors: TATTLE_ETIMEDOUT. */
static inline int tattle_flush(int timeout_ms)
{
    TATTLE__CALL("tattle_flush", int, (int), (timeout_ms));
}

#endif /* TATTLE_AGENT_BUILD */

#ifdef __cplusplus
}
#endif

#endif /* TATTLE_H */
