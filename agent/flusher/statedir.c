/* statedir.c - walking state paths without following links (see
 * statedir.h).
 *
 * Signal context: NO.
 */
#include "statedir.h"

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

const char *tattle__state_strerror(int err)
{
    switch (err) {
    case TATTLE_ESYMLINK:
        return "a symbolic link, not followed";
    case TATTLE_EOWNER:
        return "owned by another user";
    case TATTLE_EOPEN:
        return "writable by group or others";
    case TATTLE_ENOTREG:
        return "not a regular file";
    case TATTLE_ELINKS:
        return "a file with other hard links";
    default:
        return strerror(err);
    }
}

/* Why name in dir could not be opened as a directory or file. */
static int open_error(int dir, const char *name, int err)
{
    struct stat st;
    if ((err == ELOOP || err == ENOTDIR || err == ENXIO) && fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return S_ISLNK(st.st_mode) ? -TATTLE_ESYMLINK : -TATTLE_ENOTREG;
    return -err;
}

/* A directory on the way (last: the state directory itself). */
static int check_dir(int fd, int last)
{
    struct stat st;
    uid_t me = geteuid();
    if (fstat(fd, &st) != 0)
        return -errno;
    if (last)
        return st.st_uid != me ? -TATTLE_EOWNER : (st.st_mode & (S_IWGRP | S_IWOTH)) ? -TATTLE_EOPEN : 0;
    if (st.st_uid != me && st.st_uid != 0)
        return -TATTLE_EOWNER;
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX))
        return -TATTLE_EOPEN;
    return 0;
}

/* Step from dir into name (created if create). Returns the new fd or
 * -error. A directory on the way is only searched (O_PATH: a 1733
 * directory such as /var/lib/tattle need not be readable); the state
 * directory itself is opened for reading (listing, fsync). */
static int step(int dir, const char *name, int create, int last)
{
    int flags = last ? DIR_FLAGS : (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = openat(dir, name, flags), r;
    if (fd < 0 && errno == ENOENT && create) {
        if (mkdirat(dir, name, 0700) != 0 && errno != EEXIST)
            return -errno;
        fd = openat(dir, name, flags);
    }
    if (fd < 0)
        return open_error(dir, name, errno);
    if ((r = check_dir(fd, last)) != 0) {
        close(fd);
        return r;
    }
    return fd;
}

int tattle__statedir_open(const char *path, int create)
{
    char buf[PATH_MAX], *name, *save = NULL, *keep;
    int dir, next;
    if (!path || path[0] != '/' || strlen(path) >= sizeof buf)
        return -EINVAL;
    strcpy(buf, path);
    /* The system's state directory is the admin's to make (the package
     * makes it 1733); only the per-user directories in it are ours. */
    keep = strncmp(path, TATTLE_SYSTEM_STATE_DIR "/", sizeof TATTLE_SYSTEM_STATE_DIR) == 0
               ? buf + sizeof TATTLE_SYSTEM_STATE_DIR - 1
               : buf;
    if ((dir = open("/", path[strspn(path, "/")] ? O_PATH | O_DIRECTORY | O_CLOEXEC : DIR_FLAGS)) < 0)
        return -errno;
    for (name = strtok_r(buf, "/", &save); name; name = strtok_r(NULL, "/", &save)) {
        const char *rest = save + strspn(save, "/");
        if (!strcmp(name, ".") || !strcmp(name, "..")) {
            close(dir);
            return -EINVAL;
        }
        next = step(dir, name, create && name >= keep, *rest == 0);
        close(dir);
        if (next < 0)
            return next;
        dir = next;
    }
    if (check_dir(dir, 1) != 0) { /* the path was "/" */
        close(dir);
        return -TATTLE_EOWNER;
    }
    return dir;
}

static int check_file(int fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -TATTLE_ENOTREG;
    if (st.st_uid != geteuid())
        return -TATTLE_EOWNER;
    if (st.st_nlink > 1)
        return -TATTLE_ELINKS;
    return 0;
}

static int open_checked(int dirfd, const char *name, int flags)
{
    int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600), r;
    if (fd < 0)
        return open_error(dirfd, name, errno);
    if ((r = check_file(fd)) != 0) {
        close(fd);
        return r;
    }
    return fd;
}

int tattle__statefile_open(int dirfd, const char *name, int flags)
{
    if (!(flags & O_RDWR))
        flags |= O_WRONLY;
    return open_checked(dirfd, name, flags | O_CREAT);
}

int tattle__statefile_read(int dirfd, const char *name)
{
    return open_checked(dirfd, name, O_RDONLY);
}
