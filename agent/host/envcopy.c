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

const char *const tattle__passed_names[] = {
    "HOME", "XDG_STATE_HOME", "http_proxy", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
    "no_proxy", "NO_PROXY", "ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS", "LSAN_OPTIONS", "LD_PRELOAD", NULL,
};

#define ENTRIES 48
#define INLINE_SPACE 1536

static char *entries[ENTRIES + 1] TATTLE_LOAD_DATA;
static char inline_space[INLINE_SPACE] TATTLE_LOAD_DATA;

/* Does entry ("NAME=value") set one of names? */
static int named(const char *entry, const char *const *names)
{
    size_t i;
    for (i = 0; names[i]; i++) {
        const char *a = entry, *b = names[i];
        if (*a != *b)
            continue;
        while (*b && *a == *b)
            a++, b++;
        if (!*b && *a == '=')
            return 1;
    }
    return 0;
}

static int wanted(const char *entry)
{
    switch (entry[0]) { /* most of an environment is skipped on its first byte */
    case 'T': case 'P': case 'S': case 'H': case 'X': case 'h': case 'A': case 'a': case 'N': case 'n':
    case 'U': case 'L':
        return named(entry, tattle__setting_names) || named(entry, tattle__passed_names);
    default:
        return 0;
    }
}

/* AT_SECURE from the auxiliary vector, which follows envp's NULL. */
static int secure_from_auxv(char **envp)
{
    char **e = envp;
    const Elf64_auxv_t *av;
    while (*e)
        e++;
    for (av = (const Elf64_auxv_t *)(e + 1); av->a_type != AT_NULL; av++)
        if (av->a_type == AT_SECURE)
            return av->a_un.a_val != 0;
    return 0;
}

int tattle__envcopy_take(char **envp)
{
    extern char **environ;
    size_t need = 0, used = 0, n = 0;
    char *space = inline_space, **e;
    int secure;
    if (!envp) {
        envp = environ;
        secure = getauxval(AT_SECURE) != 0;
    } else {
        secure = secure_from_auxv(envp);
    }
    if (secure || !envp)
        return secure;
    for (e = envp; *e; e++)
        if (wanted(*e))
            need += tattle__strlen(*e) + 1;
    if (need > INLINE_SPACE) { /* many or long settings: a mapping of their own */
        void *p = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 0; /* nothing copied: the defaults */
        space = p;
    }
    for (e = envp; *e && n < ENTRIES; e++) {
        size_t len;
        if (!wanted(*e))
            continue;
        len = tattle__strlen(*e) + 1;
        if (used + len > need)
            break;
        entries[n++] = space + used;
        tattle__strlcpy(space + used, *e, len);
        used += len;
    }
    return 0;
}

char *const *tattle__envcopy(void) { return entries; }

const char *tattle__envcopy_get(const char *name)
{
    char **e;
    for (e = entries; *e; e++) {
        const char *a = *e, *b = name;
        while (*b && *a == *b)
            a++, b++;
        if (!*b && *a == '=')
            return a + 1;
    }
    return NULL;
}
