/* statedir.h - opening the agent's state directories and files safely.
 *
 * Owns: the rules for every path the flusher writes under (the events
 * file, the spool). A path is walked from / one component at a time with
 * openat(O_NOFOLLOW | O_DIRECTORY): no symbolic link is followed. Each
 * directory on the way must be owned by root or the effective user and,
 * if group or others may write it, be sticky (like /tmp). The directory
 * itself must be owned by the effective user and not writable by group or
 * others. Missing directories are created 0700; one that already exists
 * is never chmodded. A file is opened O_NOFOLLOW | O_NONBLOCK and must be
 * a regular file owned by the effective user with one link. What breaks a
 * rule gets its own error code, so the notice says why.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_STATEDIR_H
#define TATTLE_STATEDIR_H

#include <stddef.h>

/* Errors beyond errno's range (returned negated, like -errno). */
enum {
    TATTLE_ESYMLINK = 4096, /* a symbolic link where a directory or file was expected */
    TATTLE_EOWNER,          /* owned by another user */
    TATTLE_EOPEN,           /* writable by group or others */
    TATTLE_ENOTREG,         /* not a regular file (a FIFO, a device, a directory) */
    TATTLE_ELINKS,          /* a file with more than one hard link */
};

/* Open (creating if create, 0700) the absolute directory path. Returns a
 * descriptor (O_DIRECTORY, close-on-exec) or -error. */
int tattle__statedir_open(const char *path, int create);

/* Open name in dirfd for writing: created 0600 if missing, then checked as
 * above. flags adds to O_WRONLY (O_APPEND) or replaces it (O_RDWR).
 * Returns a descriptor or -error. */
int tattle__statefile_open(int dirfd, const char *name, int flags);

/* Open an existing regular file of ours in dirfd for reading. Returns a
 * descriptor or -error (-ENOENT when it is gone). */
int tattle__statefile_read(int dirfd, const char *name);

/* Text for an error from the functions above, or strerror. */
const char *tattle__state_strerror(int err);

#endif
