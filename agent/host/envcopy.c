/* envcopy.c - the environment as it was at load (see envcopy.h).
 *
 * Signal context: YES. Plain loops; loading writes the copy into
 * TATTLE_LOAD_DATA, a page the loader has already written, and maps a
 * larger buffer only when the entries do not fit there.
 */
#include "envcopy.h"

#include <elf.h>
#include <stdint.h>
#include <sys/auxv.h>
#include <sys/mman.h>

#include "assafe.h"
#include "settings.h"

#define PASSED(X)                                                                                             \
    X(HOME) X(XDG_STATE_HOME) X(http_proxy) X(https_proxy) X(HTTPS_PROXY) X(all_proxy) X(ALL_PROXY) X(no_proxy) \
    X(NO_PROXY) X(ASAN_OPTIONS) X(UBSAN_OPTIONS) X(TSAN_OPTIONS) X(LSAN_OPTIONS) X(LD_PRELOAD)
/* Their text with the statics loading writes (as settings.c's names). */
#define NAME_TEXT(n) static char name_##n[] TATTLE_LOAD_DATA = #n;
#define NAME_REF(n) name_##n,
PASSED(NAME_TEXT)
const char *const tattle__passed_names[] = {PASSED(NAME_REF) NULL};

#define ENTRIES 48
#define INLINE_SPACE 1536

static char *entries[ENTRIES + 1] TATTLE_LOAD_DATA;
/* The two values loading itself reads (found during the copy: looking
 * them up by a literal name would fault in a page of read-only data). */
static const char *preload_value TATTLE_LOAD_DATA, *disable_value TATTLE_LOAD_DATA;

static char inline_space[INLINE_SPACE] TATTLE_LOAD_DATA;

TATTLE_LOAD_PATH static int named(const char *entry, const char *const *names)
{
    return tattle__env_name_index(entry, names) >= 0;
}

TATTLE_LOAD_PATH static int wanted(const char *e)
{
    /* Most of an environment is ruled out by its first two bytes (PATH,
     * PWD, SHELL, TERM, USER, LANG...): no name is compared with it. The
     * file is built with -fno-jump-tables: a switch's table would be read
     * from .rodata (see TATTLE_LOAD_PATH). */
    switch (e[0]) {
    case 'T': if (e[1] != 'A' && e[1] != 'S') return 0; break; /* TATTLE_*, TSAN_OPTIONS */
    case 'P': if (e[1] != 'O') return 0; break;                /* POSTHOG_* */
    case 'S': if (e[1] != 'E') return 0; break;                /* SENTRY_DSN */
    case 'H': if (e[1] != 'O' && e[1] != 'T') return 0; break; /* HOME, HTTPS_PROXY */
    case 'X': if (e[1] != 'D') return 0; break;                /* XDG_STATE_HOME */
    case 'h': if (e[1] != 't') return 0; break;                /* http(s)_proxy */
    case 'a': case 'A': if (e[1] != 'l' && e[1] != 'L' && e[1] != 'S') return 0; break;
    case 'n': case 'N': if (e[1] != 'o' && e[1] != 'O') return 0; break;
    case 'U': if (e[1] != 'B') return 0; break;                /* UBSAN_OPTIONS */
    case 'L': if (e[1] != 'S' && e[1] != 'D') return 0; break; /* LSAN_OPTIONS, LD_PRELOAD */
    default: return 0;
    }
    /* Every setting's name starts with T, P or S; of the others only
     * TSAN_OPTIONS does. */
    if (e[0] == 'P' || e[0] == 'S')
        return named(e, tattle__setting_names);
    return (e[0] == 'T' && named(e, tattle__setting_names)) || named(e, tattle__passed_names);
}

/* AT_SECURE, read from the auxiliary vector on the stack after the
 * environment (end: envp's terminating NULL). In a secure process the
 * loader has shifted out the variables it removes (TMPDIR, LD_*...),
 * leaving NULLs before the vector: they are skipped (the vector's first
 * entry is never AT_NULL). Different real and effective ids count as
 * secure too; no AT_SECURE found, libc is asked. */
TATTLE_LOAD_PATH static int secure_execution(char **end)
{
    const Elf64_auxv_t *av;
    char **p = end;
    uint64_t ids[4] = {0, 0, 0, 0}; /* uid, euid, gid, egid */
    int i, found = 0, secure = 0;
    for (i = 0; i < 256 && !*p; i++)
        p++;
    if (*p)
        for (av = (const Elf64_auxv_t *)p; av->a_type != AT_NULL; av++) {
            if (av->a_type == AT_SECURE)
                found = 1, secure = av->a_un.a_val != 0;
            else if (av->a_type == AT_UID)
                ids[0] = av->a_un.a_val;
            else if (av->a_type == AT_EUID)
                ids[1] = av->a_un.a_val;
            else if (av->a_type == AT_GID)
                ids[2] = av->a_un.a_val;
            else if (av->a_type == AT_EGID)
                ids[3] = av->a_un.a_val;
        }
    if (!found)
        return getauxval(AT_SECURE) != 0;
    return secure || ids[0] != ids[1] || ids[2] != ids[3];
}

/* Copy entry (len bytes with its NUL) into space at *used. */
TATTLE_LOAD_PATH static void put(char *space, size_t *used, size_t *n, const char *entry, size_t len)
{
    char *to = space + *used;
    tattle__strlcpy(to, entry, len);
    entries[(*n)++] = to;
    if (!preload_value)
        preload_value = tattle__env_value(to, name_LD_PRELOAD);
    if (!disable_value)
        disable_value = tattle__env_value(to, tattle__setting_names[0]); /* TATTLE_DISABLE */
    *used += len;
}

/* The rare environment whose entries do not fit the inline space: a
 * mapping of their own, and a second pass. */
static __attribute__((noinline)) void take_large(char **envp)
{
    size_t need = 0, used = 0, n = 0;
    char *space, **e;
    void *p;
    for (e = envp; *e; e++)
        if (wanted(*e))
            need += tattle__strlen(*e) + 1;
    p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return; /* nothing copied: the defaults */
    space = p;
    preload_value = disable_value = NULL;
    for (e = envp; *e && n < ENTRIES; e++) {
        size_t len;
        if (!wanted(*e))
            continue;
        len = tattle__strlen(*e) + 1;
        if (used + len > need)
            break;
        put(space, &used, &n, *e, len);
    }
    entries[n] = NULL;
}

/* One pass: what tattle reads is copied as it is met; AT_SECURE (after
 * the environment's end) says whether it counts at all. */
TATTLE_LOAD_PATH int tattle__envcopy_take(char **envp)
{
    extern char **environ;
    size_t used = 0, n = 0;
    char **e;
    int overflow = 0, from_environ = 0;
    if (!envp) { /* not called by glibc's loader: ask libc */
        if (getauxval(AT_SECURE))
            return 1;
        if (!(envp = environ))
            return 0;
        from_environ = 1;
    }
    for (e = envp; *e; e++) {
        size_t len;
        if (!wanted(*e))
            continue;
        len = tattle__strlen(*e) + 1;
        if (overflow || used + len > INLINE_SPACE || n >= ENTRIES) {
            overflow = 1;
            continue;
        }
        put(inline_space, &used, &n, *e, len);
    }
    /* Secure execution: none of it counts. */
    if (!from_environ && secure_execution(e)) {
        for (size_t i = 0; i < used; i++)
            inline_space[i] = 0;
        entries[0] = NULL;
        preload_value = disable_value = NULL;
        return 1;
    }
    entries[n] = NULL;
    if (overflow)
        take_large(envp);
    return 0;
}

TATTLE_LOAD_PATH char *const *tattle__envcopy(void) { return entries; }

TATTLE_LOAD_PATH const char *tattle__envcopy_preload(void) { return preload_value; }

TATTLE_LOAD_PATH const char *tattle__envcopy_disable(void) { return disable_value; }
