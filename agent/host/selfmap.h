/* selfmap.h - what the dynamic loader knows about us and about libc, read
 * from its maps without taking its locks.
 *
 * Owns: the path this library was loaded from (in place of dladdr, which
 * takes the loader's lock) and looking up a libc symbol in libc's own GNU
 * hash table (in place of dlsym/dlvsym, which take it too). Both start from
 * _dl_find_object(), which glibc documents as lock-free and
 * async-signal-safe. The crash handler may be the first to need either.
 * Signal context: YES.
 */
#ifndef TATTLE_SELFMAP_H
#define TATTLE_SELFMAP_H

/* The name the loader gave this library (absolute when LD_PRELOAD or
 * /etc/ld.so.preload named it so), or NULL. */
const char *tattle__self_path(void);

/* The address of libc's dynamic symbol name, or NULL. */
void *tattle__libc_symbol(const char *name);

#endif
