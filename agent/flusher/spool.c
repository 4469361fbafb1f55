/* spool.c - the on-disk queue of unacknowledged events (see spool.h).
 *
 * Signal context: NO.
 */
#include "spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER_MAX 96

uint32_t tattle__spool_crc(const char *p, size_t n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (n > 0) {
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, (const Bytef *)p, chunk);
        p += chunk;
        n -= chunk;
    }
    return (uint32_t)crc;
}

static int mkdir_private(const char *dir)
{
    char buf[PATH_MAX];
    char *p;
    struct stat st;
    snprintf(buf, sizeof buf, "%s", dir);
    for (p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0700);
            *p = '/';
        }
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -errno;
    if (stat(buf, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    if (st.st_uid != geteuid())
        return -EPERM;
    if ((st.st_mode & 077) && chmod(buf, 0700) != 0)
        return -errno;
    return 0;
}

int tattle__spool_open(struct tattle_spool *s, const char *dir, long long max_bytes)
{
    const char *nosync = getenv("TATTLE_SPOOL_NOSYNC");
    memset(s, 0, sizeof *s);
    if (!dir || dir[0] != '/' || strlen(dir) >= sizeof s->dir)
        return -EINVAL;
    strcpy(s->dir, dir);
    s->max_bytes = max_bytes;
    s->sync = !(nosync && !strcmp(nosync, "1"));
    return mkdir_private(dir);
}

static void path_of(const struct tattle_spool *s, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%.95s", s->dir, name);
}

int tattle__spool_lock_sender(struct tattle_spool *s)
{
    char path[PATH_MAX + 96];
    int fd;
    path_of(s, ".sender.lock", path, sizeof path);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return 1; /* no lock to be had: send anyway, claims still hold */
    if (flock(fd, LOCK_EX | LOCK_NB) == 0)
        return 1; /* the descriptor stays open, and the lock held, until exit */
    close(fd);
    return 0;
}

/* Test-only: TATTLE_TEST_FAULT=spool-write-kill dies halfway through a
 * batch, as a flusher killed mid-write would. */
static int fault_mid_write(void)
{
    const char *v = getenv("TATTLE_TEST_FAULT");
    return v && !strcmp(v, "spool-write-kill");
}

static int write_all_fd(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int write_file(struct tattle_spool *s, const char *tmp, const char *body, size_t len, unsigned count)
{
    char header[HEADER_MAX];
    int hl = snprintf(header, sizeof header, "tattle-spool 1 %u %zu %08x\n", count, len,
                      tattle__spool_crc(body, len));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    int r;
    if (fd < 0)
        return -errno;
    r = write_all_fd(fd, header, (size_t)hl);
    if (r == 0 && fault_mid_write()) {
        (void)write_all_fd(fd, body, len / 2);
        raise(SIGKILL);
    }
    if (r == 0)
        r = write_all_fd(fd, body, len);
    if (r == 0 && s->sync && fdatasync(fd) != 0)
        r = -errno;
    close(fd);
    return r;
}

static void sync_dir(const struct tattle_spool *s)
{
    int fd;
    if (!s->sync)
        return;
    fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static int is_batch_name(const char *n, const char *suffix)
{
    size_t len = strlen(n), sl = strlen(suffix);
    return n[0] != '.' && len > sl && len < 96 && !strcmp(n + len - sl, suffix);
}

static int is_kept_name(const char *n)
{
    return is_batch_name(n, TATTLE_SPOOL_SUFFIX) || is_batch_name(n, TATTLE_SPOOL_REJECTED) ||
           is_batch_name(n, TATTLE_SPOOL_DAMAGED);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Every batch, kept or rejected, oldest first. */
static size_t list_suffixes(struct tattle_spool *s, char (*names)[96], size_t cap, int with_rejected)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    size_t n = 0;
    if (!d)
        return 0;
    while ((e = readdir(d)) && n < cap) {
        if (with_rejected ? is_kept_name(e->d_name) : is_batch_name(e->d_name, TATTLE_SPOOL_SUFFIX))
            snprintf(names[n++], 96, "%.95s", e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof names[0], by_name);
    return n;
}

size_t tattle__spool_list(struct tattle_spool *s, char (*names)[96], size_t cap)
{
    return list_suffixes(s, names, cap, 0);
}

/* The event count from a batch's header, or 0. */
static unsigned header_count(int fd)
{
    char h[HEADER_MAX];
    unsigned count = 0;
    ssize_t n = pread(fd, h, sizeof h - 1, 0);
    if (n <= 0)
        return 0;
    h[n] = 0;
    if (sscanf(h, "tattle-spool 1 %u", &count) != 1)
        return 0;
    return count;
}

/* Bytes held by every kept batch: one pass, no list. */
static long long spool_bytes(struct tattle_spool *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    long long total = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        struct stat st;
        if (is_kept_name(e->d_name) && fstatat(dirfd(d), e->d_name, &st, 0) == 0)
            total += st.st_size;
    }
    closedir(d);
    return total;
}

/* Drop the oldest batches (not claimed by a sender) until under the bound.
 * The sorted list is built only when the spool is over it. */
static unsigned enforce_bound(struct tattle_spool *s)
{
    enum { MAX_FILES = 4096 };
    long long total = spool_bytes(s);
    char (*names)[96];
    unsigned dropped = 0;
    size_t n, i;
    if (total <= s->max_bytes || !(names = malloc(MAX_FILES * sizeof *names)))
        return 0;
    n = list_suffixes(s, names, MAX_FILES, 1);
    for (i = 0; i < n && total > s->max_bytes; i++) {
        char path[PATH_MAX + 96];
        struct stat st;
        int fd;
        path_of(s, names[i], path, sizeof path);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
            dropped += header_count(fd);
            total -= st.st_size;
            unlink(path);
        }
        close(fd);
    }
    free(names);
    return dropped;
}

int tattle__spool_write(struct tattle_spool *s, const char *body, size_t len, unsigned count, unsigned *dropped)
{
    char tmp[PATH_MAX + 96], path[PATH_MAX + 96], name[96];
    struct timespec ts;
    int r;
    unsigned seq = atomic_fetch_add(&s->seq, 1) + 1;
    *dropped = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(name, sizeof name, ".tmp-%d-%u", (int)getpid(), seq);
    path_of(s, name, tmp, sizeof tmp);
    snprintf(name, sizeof name, "%016llx-%08x-%08x" TATTLE_SPOOL_SUFFIX,
             (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec, (unsigned)getpid(),
             seq);
    path_of(s, name, path, sizeof path);
    r = write_file(s, tmp, body, len, count);
    if (r == -ENOENT && mkdir_private(s->dir) == 0)
        r = write_file(s, tmp, body, len, count);
    if (r == 0 && rename(tmp, path) != 0)
        r = -errno;
    if (r != 0) {
        unlink(tmp);
        return r;
    }
    sync_dir(s);
    *dropped = enforce_bound(s);
    return 0;
}

/* Read the whole file and check its header against its body. */
static int read_batch(int fd, struct tattle_spool_batch *b)
{
    struct stat st;
    char *data, *nl;
    unsigned count;
    size_t len;
    unsigned crc;
    size_t got = 0;
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || st.st_size > (64 << 20))
        return -1;
    data = malloc((size_t)st.st_size + 1);
    if (!data)
        return -1;
    while (got < (size_t)st.st_size) {
        ssize_t n = pread(fd, data + got, (size_t)st.st_size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    data[got] = 0;
    nl = memchr(data, '\n', got);
    if (!nl || sscanf(data, "tattle-spool 1 %u %zu %x", &count, &len, &crc) != 3 ||
        (size_t)(nl + 1 - data) + len != got || tattle__spool_crc(nl + 1, len) != crc || count == 0) {
        free(data);
        return -1;
    }
    memmove(data, nl + 1, len);
    data[len] = 0;
    b->body = data;
    b->len = len;
    b->count = count;
    return 0;
}

int tattle__spool_claim(struct tattle_spool *s, const char *name, struct tattle_spool_batch *b)
{
    char path[PATH_MAX + 96];
    struct stat st;
    int fd;
    memset(b, 0, sizeof *b);
    b->fd = -1;
    path_of(s, name, path, sizeof path);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    /* Holding the lock on a file that is still linked: ours alone. A file
     * unlinked after we opened it was sent by whoever held it before. */
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &st) != 0 || st.st_nlink == 0) {
        close(fd);
        return 0;
    }
    snprintf(b->name, sizeof b->name, "%s", name);
    b->fd = fd;
    if (read_batch(fd, b) != 0) {
        char damaged[PATH_MAX + 112];
        snprintf(damaged, sizeof damaged, "%s%s", path, TATTLE_SPOOL_DAMAGED);
        rename(path, damaged);
        close(fd);
        b->fd = -1;
        return -1;
    }
    return 1;
}

void tattle__spool_done(struct tattle_spool *s, struct tattle_spool_batch *b)
{
    char path[PATH_MAX + 96];
    path_of(s, b->name, path, sizeof path);
    unlink(path);
    tattle__spool_release(b);
}

int tattle__spool_replace(struct tattle_spool *s, struct tattle_spool_batch *b, const char *body, size_t len,
                          unsigned count)
{
    char tmp[PATH_MAX + 96], path[PATH_MAX + 96], name[64];
    int r;
    snprintf(name, sizeof name, ".tmp-%d-%u", (int)getpid(), atomic_fetch_add(&s->seq, 1) + 1);
    path_of(s, name, tmp, sizeof tmp);
    path_of(s, b->name, path, sizeof path);
    r = write_file(s, tmp, body, len, count);
    if (r == 0 && rename(tmp, path) != 0)
        r = -errno;
    if (r != 0)
        unlink(tmp);
    else
        sync_dir(s);
    tattle__spool_release(b);
    return r;
}

void tattle__spool_release(struct tattle_spool_batch *b)
{
    if (b->fd >= 0)
        close(b->fd);
    free(b->body);
    b->body = NULL;
    b->fd = -1;
}

void tattle__spool_reject(struct tattle_spool *s, struct tattle_spool_batch *b)
{
    char path[PATH_MAX + 96], kept[PATH_MAX + 112];
    size_t n = strlen(b->name) - strlen(TATTLE_SPOOL_SUFFIX);
    path_of(s, b->name, path, sizeof path);
    snprintf(kept, sizeof kept, "%s/%.*s%s", s->dir, (int)n, b->name, TATTLE_SPOOL_REJECTED);
    rename(path, kept);
    tattle__spool_release(b);
}

#define DROPPED_SUFFIX ".dropped"

void tattle__spool_save_dropped(struct tattle_spool *s, unsigned dropped)
{
    char tmp[PATH_MAX + 96], path[PATH_MAX + 96], name[64], text[16];
    int fd, n = snprintf(text, sizeof text, "%u\n", dropped);
    unsigned seq = atomic_fetch_add(&s->seq, 1) + 1;
    snprintf(name, sizeof name, ".tmp-%d-%u", (int)getpid(), seq);
    path_of(s, name, tmp, sizeof tmp);
    snprintf(name, sizeof name, "%d-%u" DROPPED_SUFFIX, (int)getpid(), seq);
    path_of(s, name, path, sizeof path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    if (write_all_fd(fd, text, (size_t)n) == 0 && rename(tmp, path) == 0) {
        close(fd);
        return;
    }
    close(fd);
    unlink(tmp);
}

unsigned tattle__spool_take_dropped(struct tattle_spool *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    unsigned total = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char path[PATH_MAX + 96], mine[PATH_MAX + 96], name[64], text[16] = "";
        unsigned n = 0;
        int fd;
        if (!is_batch_name(e->d_name, DROPPED_SUFFIX))
            continue;
        /* Renaming it away is the claim: only one flusher succeeds. */
        path_of(s, e->d_name, path, sizeof path);
        snprintf(name, sizeof name, ".tmp-%d-%u", (int)getpid(), atomic_fetch_add(&s->seq, 1) + 1);
        path_of(s, name, mine, sizeof mine);
        if (rename(path, mine) != 0)
            continue;
        fd = open(mine, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            if (read(fd, text, sizeof text - 1) > 0 && sscanf(text, "%u", &n) == 1)
                total += n;
            close(fd);
        }
        unlink(mine);
    }
    closedir(d);
    return total;
}

/* Dead, or a zombie nobody has reaped yet. */
static int process_gone(int pid)
{
    char path[64], stat[256];
    FILE *f;
    int gone = 0;
    if (kill(pid, 0) != 0)
        return errno == ESRCH;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fgets(stat, sizeof stat, f)) {
        char *paren = strrchr(stat, ')');
        gone = paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
    }
    fclose(f);
    return gone;
}

void tattle__spool_sweep(struct tattle_spool *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d))) {
        int pid;
        unsigned seq;
        if (sscanf(e->d_name, ".tmp-%d-%u", &pid, &seq) == 2 && pid > 0 && process_gone(pid)) {
            char path[PATH_MAX + 96];
            path_of(s, e->d_name, path, sizeof path);
            unlink(path);
        }
    }
    closedir(d);
}
