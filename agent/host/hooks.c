/* hooks.c - assert, abort-message and C++ exception enrichment (see hooks.h).
 *
 * Signal context: PARTLY. The interposers below run in the host's context
 * and only stash pointers in thread-local storage; the SIGABRT handler reads
 * them through tattle__hooks_fill_abort().
 */
#include "hooks.h"

#include <dlfcn.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdint.h>

#include "assafe.h"
#include "selfmap.h"
#include "signals.h"

#define EXPORT __attribute__((visibility("default")))

/* glibc's struct abort_msg_s { unsigned int size; char msg[]; }. */
struct abort_msg { unsigned int size; char msg[]; };
static struct abort_msg **glibc_abort_msg;

static __thread const char *assert_expr, *assert_file, *assert_func;
static __thread unsigned int assert_line;
static __thread int assert_errnum = -1;
/* This thread has thrown or rethrown: libstdc++'s per-thread exception
 * state exists, so reading it allocates nothing (a thread's first access
 * to the TLS of a dlopened libstdc++ calls malloc, which deadlocks in a
 * handler that interrupted malloc: glibc's heap-corruption aborts). */
static __thread int eh_touched;

typedef void (*assert_fail_fn)(const char *, const char *, unsigned int, const char *);
typedef void (*assert_perror_fn)(int, const char *, unsigned int, const char *);
typedef void (*cxa_throw_fn)(void *, void *, void (*)(void *));
typedef void (*cxa_rethrow_fn)(void);
typedef const void *(*cxa_current_type_fn)(void);
/* std::current_exception(): an exception_ptr (one pointer to the thrown
 * object) returned through a hidden pointer, as its destructor is not
 * trivial. It only counts a reference: no allocation. */
typedef void *(*cxa_primary_fn)(void **out);
typedef void (*rethrow_exception_fn)(void *);

static _Atomic(cxa_throw_fn) real_cxa_throw;
static _Atomic(cxa_rethrow_fn) real_cxa_rethrow;
static _Atomic(cxa_current_type_fn) cxa_current_type;
static _Atomic(cxa_primary_fn) cxa_current_primary;
static _Atomic(rethrow_exception_fn) real_rethrow_exception;
static const void *std_exception_type; /* typeinfo for std::exception */

/* At first use, which may be the crash itself: found without dlvsym. */
void tattle__hooks_init(void)
{
    glibc_abort_msg = tattle__libc_symbol("__abort_msg");
}

EXPORT void __assert_fail(const char *expr, const char *file, unsigned int line, const char *func)
{
    static assert_fail_fn real;
    assert_expr = expr;
    assert_file = file;
    assert_line = line;
    assert_func = func;
    if (!real)
        real = (assert_fail_fn)dlsym(RTLD_NEXT, "__assert_fail");
    real(expr, file, line, func);
    __builtin_unreachable();
}

EXPORT void __assert_perror_fail(int errnum, const char *file, unsigned int line, const char *func)
{
    static assert_perror_fn real;
    assert_errnum = errnum;
    assert_file = file;
    assert_line = line;
    assert_func = func;
    if (!real)
        real = (assert_perror_fn)dlsym(RTLD_NEXT, "__assert_perror_fail");
    real(errnum, file, line, func);
    __builtin_unreachable();
}

/* Find the C++ runtime's function. RTLD_NEXT fails when libstdc++ was loaded
 * RTLD_LOCAL (a C host dlopening a C++ library): then ask the object that
 * called us, whose dependency scope holds the right runtime. */
static void *resolve_cxx(const char *name, const void *caller)
{
    Dl_info info;
    void *fn = dlsym(RTLD_NEXT, name);
    if (!fn && caller && dladdr(caller, &info) && info.dli_fname) {
        void *h = dlopen(info.dli_fname, RTLD_LAZY | RTLD_NOLOAD);
        if (h) {
            fn = dlsym(h, name);
            dlclose(h);
        }
    }
    return fn;
}

static void resolve_cxx_helpers(const void *caller)
{
    if (!atomic_load(&cxa_current_type))
        atomic_store(&cxa_current_type,
                     (cxa_current_type_fn)resolve_cxx("__cxa_current_exception_type", caller));
    if (!atomic_load(&cxa_current_primary))
        atomic_store(&cxa_current_primary, (cxa_primary_fn)resolve_cxx("_ZSt17current_exceptionv", caller));
    if (!std_exception_type)
        std_exception_type = resolve_cxx("_ZTISt9exception", caller);
}

EXPORT void __cxa_throw(void *obj, void *type, void (*dest)(void *))
{
    cxa_throw_fn real = atomic_load_explicit(&real_cxa_throw, memory_order_relaxed);
    if (!real) {
        real = (cxa_throw_fn)resolve_cxx("__cxa_throw", __builtin_return_address(0));
        resolve_cxx_helpers(__builtin_return_address(0));
        atomic_store(&real_cxa_throw, real);
    }
    eh_touched = 1;
    real(obj, type, dest);
    __builtin_unreachable();
}

EXPORT void __cxa_rethrow(void)
{
    cxa_rethrow_fn real = atomic_load_explicit(&real_cxa_rethrow, memory_order_relaxed);
    if (!real) {
        real = (cxa_rethrow_fn)resolve_cxx("__cxa_rethrow", __builtin_return_address(0));
        resolve_cxx_helpers(__builtin_return_address(0));
        atomic_store(&real_cxa_rethrow, real);
    }
    eh_touched = 1;
    real();
    __builtin_unreachable();
}

/* std::rethrow_exception(std::exception_ptr): futures and promises deliver
 * exceptions this way, without __cxa_throw. The exception_ptr is passed by
 * invisible reference (it has a non-trivial destructor). */
EXPORT void _ZSt17rethrow_exceptionNSt15__exception_ptr13exception_ptrE(void *ptr)
{
    rethrow_exception_fn real = atomic_load_explicit(&real_rethrow_exception, memory_order_relaxed);
    if (!real) {
        real = (rethrow_exception_fn)resolve_cxx("_ZSt17rethrow_exceptionNSt15__exception_ptr13exception_ptrE",
                                                 __builtin_return_address(0));
        resolve_cxx_helpers(__builtin_return_address(0));
        atomic_store(&real_rethrow_exception, real);
    }
    eh_touched = 1;
    real(ptr);
    __builtin_unreachable();
}

static void copy_host_string(char *dst, size_t cap, const char *src)
{
    size_t n;
    if (!src) {
        dst[0] = 0;
        return;
    }
    n = tattle__copy_readable(dst, (uintptr_t)src, cap - 1);
    dst[n] = 0;
}

/* Itanium ABI: a type_info is {vptr, const char *name}; its vtable slot 4 is
 * __do_catch(this, thrown_type, &obj, outer), which adjusts obj to the
 * catching subobject; std::exception's vtable slot 2 is what(). */
typedef int (*do_catch_fn)(const void *, const void *, void **, unsigned);
typedef const char *(*what_fn)(const void *);

static void fill_cxx(struct tattle_crash *c)
{
    cxa_current_type_fn current = atomic_load(&cxa_current_type);
    cxa_primary_fn primary = atomic_load(&cxa_current_primary);
    const void *type;
    const char *name;
    void *obj;
    if (!eh_touched || !current)
        return;
    if (!(type = current()))
        return;
    name = ((const char *const *)type)[1];
    if (name && name[0] == '*')
        name++;
    copy_host_string(c->cxx_type, sizeof c->cxx_type, name);
    c->abort_kind = TATTLE_ABORT_CXX;
    /* The current exception's own object (not the last one thrown: a
     * rethrown exception_ptr is another). Its reference count goes up; the
     * process is dying. */
    obj = NULL;
    if (!std_exception_type || !primary || (primary(&obj), !obj))
        return;
    /* Running the host's what() may fault: guard it. */
    if (tattle__signals_guard_begin() == 0) {
        do_catch_fn do_catch = (*(do_catch_fn *const *)std_exception_type)[4];
        if (do_catch(std_exception_type, type, &obj, 1)) {
            what_fn what = (*(what_fn *const *)obj)[2];
            copy_host_string(c->cxx_what, sizeof c->cxx_what, what(obj));
        }
    }
    tattle__signals_guard_end();
}

void tattle__hooks_fill_abort(struct tattle_crash *c)
{
    if (glibc_abort_msg && *glibc_abort_msg)
        copy_host_string(c->abort_msg, sizeof c->abort_msg, (*glibc_abort_msg)->msg);
    if (assert_file) {
        c->abort_kind = TATTLE_ABORT_ASSERT;
        copy_host_string(c->assert_expr, sizeof c->assert_expr, assert_expr);
        copy_host_string(c->assert_file, sizeof c->assert_file, assert_file);
        copy_host_string(c->assert_func, sizeof c->assert_func, assert_func);
        c->assert_line = assert_line;
        return;
    }
    fill_cxx(c);
}
