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
#include <sys/uio.h>
#include <unistd.h>

/* mkdir -p of path's parent, new directories private to the user. */
static void make_parents(const char *path)
{
    char dir[PATH_MAX];
    char *p;
    if (strlen(path) >= sizeof dir)
        return;
    strcpy(dir, path);
    p = strrchr(dir, '/');
    if (!p || p == dir)
        return;
    *p = 0;
    for (p = dir + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(dir, 0700);
            *p = '/';
        }
    }
    mkdir(dir, 0700);
}

int tattle__sink_file_append(const char *path, const char *line, size_t len, int sync)
{
    struct iovec iov[2] = {{(void *)line, len}, {(void *)"\n", 1}};
    ssize_t n;
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {
        make_parents(path);
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    }
    if (fd < 0)
        return -errno;
    n = writev(fd, iov, 2);
    if (n != (ssize_t)(len + 1)) {
        int e = n < 0 ? errno : EIO;
        close(fd);
        return -e;
    }
    if (sync)
        fdatasync(fd);
    close(fd);
    return 0;
}
