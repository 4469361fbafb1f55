/* curl_load.c - libcurl, loaded when a flusher first sends.
 *
 * Owns: the libcurl functions the flusher calls (http.c, flusher.c,
 * admin.c), defined here and forwarded to libcurl.so.4, which is opened
 * with dlopen on the first call. The executable does not link libcurl: a
 * flusher that only writes the local file (the default) never maps it nor
 * the TLS, Kerberos and LDAP libraries under it (some 30 objects), so it
 * starts sooner when a crash needs it, and holds megabytes less.
 * Without libcurl every call fails as libcurl itself would fail to start:
 * CURLE_FAILED_INIT, a NULL handle; delivery then says so and keeps the
 * batches.
 * Signal context: NO.
 */
/* These are the definitions: no type-checking macros over their names. */
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>

#include "http.h"

static struct {
    void *lib;
    CURLcode (*global_init)(long);
    void (*global_cleanup)(void);
    CURL *(*easy_init)(void);
    void (*easy_cleanup)(CURL *);
    CURLcode (*easy_perform)(CURL *);
    CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
    CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
    const char *(*easy_strerror)(CURLcode);
    struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
    void (*slist_free_all)(struct curl_slist *);
} fn;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define FIND(field, name) (*(void **)&fn.field = dlsym(fn.lib, name)) != NULL

static void load(void)
{
    void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!lib)
        return;
    fn.lib = lib;
    if (FIND(global_init, "curl_global_init") && FIND(global_cleanup, "curl_global_cleanup") &&
        FIND(easy_init, "curl_easy_init") && FIND(easy_cleanup, "curl_easy_cleanup") &&
        FIND(easy_perform, "curl_easy_perform") && FIND(easy_setopt, "curl_easy_setopt") &&
        FIND(easy_getinfo, "curl_easy_getinfo") && FIND(easy_strerror, "curl_easy_strerror") &&
        FIND(slist_append, "curl_slist_append") && FIND(slist_free_all, "curl_slist_free_all"))
        return;
    fn.lib = NULL; /* an incomplete libcurl: as if there were none (it stays mapped) */
}

/* libcurl, opened on the first call: 1 when it is there. */
static int curl_loaded(void)
{
    pthread_once(&once, load);
    return fn.lib != NULL;
}

CURLcode curl_global_init(long flags)
{
    return curl_loaded() ? fn.global_init(flags) : CURLE_FAILED_INIT;
}

void curl_global_cleanup(void)
{
    if (fn.lib) /* never loaded: nothing to clean up */
        fn.global_cleanup();
}

CURL *curl_easy_init(void) { return curl_loaded() ? fn.easy_init() : NULL; }

void curl_easy_cleanup(CURL *h)
{
    if (h && fn.lib)
        fn.easy_cleanup(h);
}

CURLcode curl_easy_perform(CURL *h) { return fn.lib ? fn.easy_perform(h) : CURLE_FAILED_INIT; }

/* The one argument after the option has the type the option's number
 * says (curl.h: CURLOPTTYPE_*). */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
    va_list ap;
    CURLcode r;
    if (!fn.lib)
        return CURLE_FAILED_INIT;
    va_start(ap, opt);
    if (opt < CURLOPTTYPE_OBJECTPOINT)
        r = fn.easy_setopt(h, opt, va_arg(ap, long));
    else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
        r = fn.easy_setopt(h, opt, va_arg(ap, void *));
    else if (opt < CURLOPTTYPE_OFF_T)
        r = fn.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
    else
        r = fn.easy_setopt(h, opt, va_arg(ap, curl_off_t));
    va_end(ap);
    return r;
}

/* Every CURLINFO takes a pointer to where the answer goes. */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
    va_list ap;
    CURLcode r;
    if (!fn.lib)
        return CURLE_FAILED_INIT;
    va_start(ap, info);
    r = fn.easy_getinfo(h, info, va_arg(ap, void *));
    va_end(ap);
    return r;
}

const char *curl_easy_strerror(CURLcode rc)
{
    return fn.lib ? fn.easy_strerror(rc) : "libcurl could not be loaded";
}

struct curl_slist *curl_slist_append(struct curl_slist *list, const char *s)
{
    return curl_loaded() ? fn.slist_append(list, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *list)
{
    if (list && fn.lib)
        fn.slist_free_all(list);
}
