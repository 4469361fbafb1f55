/* sink_file.c - append events to a JSON-lines file (see sink_file.h).
 *
 * Signal context: NO.
 */
#include "sink_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include "statedir.h"

/* The file's directory, opened by the rules of statedir.h. */
static int open_parent(const char *path, const char **leaf)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (path[0] != '/' || !slash || !slash[1] || (size_t)(slash - path) >= sizeof dir)
        return -EINVAL;
    memcpy(dir, path, (size_t)(slash - path));
    dir[slash - path] = 0;
    *leaf = slash + 1;
    return tattle__statedir_open(slash == path ? "/" : dir, 1);
}

/* A short write must not leave half a line for the next event to join:
 * cut it off if nobody appended since, else end it with a newline. */
static void undo_partial(int fd, off_t before, size_t written)
{
    struct stat st;
    if (!written)
        return;
    if (fstat(fd, &st) == 0 && st.st_size == before + (off_t)written && ftruncate(fd, before) == 0)
        return;
    (void)!write(fd, "\n", 1);
}

/* Write all of line and its newline; on failure -errno (ENOSPC, EIO...). */
static int append_all(int fd, const char *line, size_t len)
{
    struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
    struct stat st;
    size_t total = len + 1, done = 0;
    off_t before = fstat(fd, &st) == 0 ? st.st_size : 0;
    while (done < total) {
        ssize_t n;
        if (done < len)
            n = writev(fd, iov, 2);
        else
            n = write(fd, "\n", 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            undo_partial(fd, before, done);
            return -e;
        }
        done += (size_t)n;
        if (done < len) { /* the rest of the line, then the newline */
            iov[0].iov_base = (char *)line + done;
            iov[0].iov_len = len - done;
        }
    }
    return 0;
}

/* Past max_bytes the file becomes <file>.1 (replacing the previous one)
 * and a new file starts: at most about twice the bound on disk. */
static int rotate_if_full(int dir, const char *leaf, int fd, long long max_bytes)
{
    char old[NAME_MAX + 3];
    struct stat st;
    if (max_bytes <= 0 || fstat(fd, &st) != 0 || st.st_size < max_bytes ||
        (size_t)snprintf(old, sizeof old, "%s.1", leaf) >= sizeof old)
        return fd;
    close(fd);
    renameat(dir, leaf, dir, old);
    return tattle__statefile_open(dir, leaf, O_APPEND);
}

int tattle__sink_file_append(const char *path, const char *line, size_t len, int sync, long long max_bytes)
{
    const char *leaf;
    int r, fd, dir = open_parent(path, &leaf);
    if (dir < 0)
        return dir;
    fd = tattle__statefile_open(dir, leaf, O_APPEND);
    if (fd >= 0)
        fd = rotate_if_full(dir, leaf, fd, max_bytes);
    close(dir);
    if (fd < 0)
        return fd;
    r = append_all(fd, line, len);
    if (r == 0 && sync)
        fdatasync(fd);
    close(fd);
    return r;
}
