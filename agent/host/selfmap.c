/* selfmap.c - our path and libc's symbols from the loader's maps (see
 * selfmap.h).
 *
 * Signal context: YES. _dl_find_object() and plain reads of mapped ELF
 * tables; no lock, no allocation.
 */
#include "selfmap.h"

#include <dlfcn.h>
#include <elf.h>
#include <stdint.h>

#include "assafe.h"

/* The public head of glibc's struct map (<link.h>, which this
 * folder's link.h hides). */
struct map {
    Elf64_Addr l_addr;
    char *l_name;
    Elf64_Dyn *l_ld;
    struct map *l_next, *l_prev;
};

static struct map *own_map(void)
{
    struct dl_find_object fo;
    return _dl_find_object((void *)own_map, &fo) == 0 ? (struct map *)fo.dlfo_link_map : NULL;
}

const char *tattle__self_path(void)
{
    struct map *m = own_map();
    return m && m->l_name && m->l_name[0] ? m->l_name : NULL;
}

/* Does path's last component start with "libc.so."? */
static int is_libc(const char *path)
{
    const char *base = path;
    for (; *path; path++)
        if (*path == '/')
            base = path + 1;
    return tattle__strneq(base, "libc.so.", 8) && base[8];
}

static struct map *libc_map(void)
{
    struct map *m = own_map(), *p;
    for (p = m; p; p = p->l_prev)
        if (p->l_name && is_libc(p->l_name))
            return p;
    for (p = m; p; p = p->l_next)
        if (p->l_name && is_libc(p->l_name))
            return p;
    return NULL;
}

/* A dynamic-section address: glibc relocates most of them in place, but
 * not where the section is read-only. */
static uintptr_t dyn_addr(const struct map *m, uintptr_t v)
{
    return v < m->l_addr ? v + m->l_addr : v;
}

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

void *tattle__libc_symbol(const char *name)
{
    struct map *m = libc_map();
    const uint32_t *table = NULL, *buckets, *chain;
    const Elf64_Sym *symtab = NULL;
    const char *strtab = NULL;
    const Elf64_Dyn *d;
    uint32_t nbuckets, symoffset, bloom_size, h, i;
    if (!m || !m->l_ld)
        return NULL;
    for (d = m->l_ld; d->d_tag != DT_NULL; d++) {
        if (d->d_tag == DT_GNU_HASH)
            table = (const uint32_t *)dyn_addr(m, d->d_un.d_ptr);
        else if (d->d_tag == DT_SYMTAB)
            symtab = (const Elf64_Sym *)dyn_addr(m, d->d_un.d_ptr);
        else if (d->d_tag == DT_STRTAB)
            strtab = (const char *)dyn_addr(m, d->d_un.d_ptr);
    }
    if (!table || !symtab || !strtab)
        return NULL;
    nbuckets = table[0];
    symoffset = table[1];
    bloom_size = table[2];
    buckets = table + 4 + bloom_size * 2; /* 64-bit bloom words */
    chain = buckets + nbuckets;
    if (!nbuckets)
        return NULL;
    h = gnu_hash(name);
    i = buckets[h % nbuckets];
    if (i < symoffset)
        return NULL;
    for (;; i++) {
        uint32_t ch = chain[i - symoffset];
        const Elf64_Sym *s = &symtab[i];
        if ((ch | 1) == (h | 1) && s->st_shndx != SHN_UNDEF && tattle__streq(strtab + s->st_name, name))
            return (void *)(m->l_addr + s->st_value);
        if (ch & 1)
            return NULL;
    }
}
