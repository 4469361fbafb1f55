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
#include <sys/random.h>
#include <zlib.h>

#include "statedir.h"

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

/* (Re)open the directory by statedir.h's rules. */
static int open_dir(struct tattle_spool *s)
{
    int fd = tattle__statedir_open(s->dir, 1);
    if (fd < 0)
        return fd;
    if (s->dirfd >= 0)
        close(s->dirfd);
    s->dirfd = fd;
    return 0;
}

int tattle__spool_open(struct tattle_spool *s, const char *dir, long long max_bytes)
{
    const char *nosync = getenv("TATTLE_SPOOL_NOSYNC");
    memset(s, 0, sizeof *s);
    s->dirfd = -1;
    if (!dir || dir[0] != '/' || strlen(dir) >= sizeof s->dir)
        return -EINVAL;
    strcpy(s->dir, dir);
    s->max_bytes = max_bytes;
    s->sync = !(nosync && !strcmp(nosync, "1"));
    /* Names carry a random tag, not a pid: flushers in other PID
     * namespaces may share the directory. */
    if (getrandom(&s->tag, sizeof s->tag, GRND_NONBLOCK) != sizeof s->tag)
        s->tag = (uint32_t)getpid() ^ (uint32_t)time(NULL);
    return open_dir(s);
}

void tattle__spool_close(struct tattle_spool *s)
{
    if (s->dirfd >= 0)
        close(s->dirfd);
    s->dirfd = -1;
}

/* A fresh listing of the directory (its own file offset). */
static DIR *list_dir(struct tattle_spool *s)
{
    int fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d && fd >= 0)
        close(fd);
    return d;
}

int tattle__spool_lock_sender(struct tattle_spool *s)
{
    int fd = tattle__statefile_open(s->dirfd, ".sender.lock", O_RDWR);
    if (fd == -TATTLE_ESYMLINK || fd == -TATTLE_ENOTREG || fd == -TATTLE_EOWNER || fd == -TATTLE_ELINKS)
        return 0; /* planted by someone else: send nothing from here */
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

/* A new hidden temporary file, locked while it is written (the sweep
 * leaves locked ones alone). Returns a descriptor or -errno. */
static int create_tmp(struct tattle_spool *s, char *name, size_t cap)
{
    int fd;
    snprintf(name, cap, ".tmp-%08x-%08x", s->tag, atomic_fetch_add(&s->seq, 1) + 1);
    fd = openat(s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        name[0] = 0; /* not ours: never unlinked */
        return -e;
    }
    /* Blocking: a sweeper may hold it for a moment (it finds it empty and
     * leaves it); a writer without its lock could be swept mid-write. */
    while (flock(fd, LOCK_EX) != 0 && errno == EINTR)
        ;
    return fd;
}

/* Move tmp into place; never over an existing file. */
static int publish(struct tattle_spool *s, const char *tmp, const char *name, int replace)
{
    if (!replace && renameat2(s->dirfd, tmp, s->dirfd, name, RENAME_NOREPLACE) == 0)
        return 0;
    if (!replace && errno != EINVAL && errno != ENOSYS)
        return -errno;
    return renameat(s->dirfd, tmp, s->dirfd, name) == 0 ? 0 : -errno;
}

/* Write a batch to a new temporary file and move it into place as name,
 * all under the temporary file's lock (the sweep takes an unlocked one with
 * bytes in it for a dead writer's). Returns 0 or -errno. */
static int write_file(struct tattle_spool *s, const char *name, int replace, const char *body, size_t len,
                      unsigned count)
{
    char header[HEADER_MAX], tmp[64];
    int hl = snprintf(header, sizeof header, "tattle-spool 1 %u %zu %08x\n", count, len,
                      tattle__spool_crc(body, len));
    int fd = create_tmp(s, tmp, sizeof tmp);
    int r;
    if (fd < 0)
        return fd;
    r = write_all_fd(fd, header, (size_t)hl);
    if (r == 0 && fault_mid_write()) {
        (void)write_all_fd(fd, body, len / 2);
        raise(SIGKILL);
    }
    if (r == 0)
        r = write_all_fd(fd, body, len);
    if (r == 0 && s->sync && fdatasync(fd) != 0)
        r = -errno;
    if (r == 0)
        r = publish(s, tmp, name, replace);
    if (r != 0)
        unlinkat(s->dirfd, tmp, 0);
    close(fd);
    return r;
}

static void sync_dir(const struct tattle_spool *s)
{
    if (s->sync)
        fsync(s->dirfd);
}

/* n hex digits at p? */
static int hex_run(const char *p, int n)
{
    int i;
    for (i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return 0;
    return 1;
}

/* Only names the spool makes are ever read, renamed or deleted:
 *   batch     <16 hex>-<8 hex>-<8 hex>.batch
 *   rejected  <16 hex>-<8 hex>-<8 hex>.rejected
 *   damaged   <16 hex>-<8 hex>-<8 hex>.batch.damaged
 *   dropped   <8 hex>-<8 hex>.dropped
 *   temporary .tmp-<8 hex>-<8 hex> */
static int is_batch_name(const char *n, const char *suffix)
{
    return strlen(n) == 34 + strlen(suffix) && hex_run(n, 16) && n[16] == '-' && hex_run(n + 17, 8) &&
           n[25] == '-' && hex_run(n + 26, 8) && !strcmp(n + 34, suffix);
}

static int is_pair_name(const char *n, const char *prefix, const char *suffix)
{
    size_t p = strlen(prefix);
    return strlen(n) == p + 17 + strlen(suffix) && !strncmp(n, prefix, p) && hex_run(n + p, 8) &&
           n[p + 8] == '-' && hex_run(n + p + 9, 8) && !strcmp(n + p + 17, suffix);
}

static int is_kept_name(const char *n)
{
    return is_batch_name(n, TATTLE_SPOOL_SUFFIX) || is_batch_name(n, TATTLE_SPOOL_REJECTED) ||
           is_batch_name(n, TATTLE_SPOOL_SUFFIX TATTLE_SPOOL_DAMAGED);
}

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Every batch, kept or rejected, oldest first. */
static size_t list_suffixes(struct tattle_spool *s, char (*names)[96], size_t cap, int with_rejected)
{
    DIR *d = list_dir(s);
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
    DIR *d = list_dir(s);
    struct dirent *e;
    long long total = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        struct stat st;
        if (is_kept_name(e->d_name) && fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
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
        struct stat st;
        int fd = tattle__statefile_read(s->dirfd, names[i]);
        if (fd < 0)
            continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0 && fstat(fd, &st) == 0 && st.st_nlink > 0) {
            dropped += header_count(fd);
            total -= st.st_size;
            unlinkat(s->dirfd, names[i], 0);
        }
        close(fd);
    }
    free(names);
    return dropped;
}

int tattle__spool_write(struct tattle_spool *s, const char *body, size_t len, unsigned count, unsigned *dropped)
{
    char name[96];
    struct timespec ts;
    int r;
    *dropped = 0;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(name, sizeof name, "%016llx-%08x-%08x" TATTLE_SPOOL_SUFFIX,
             (unsigned long long)ts.tv_sec * 1000000000ull + (unsigned long long)ts.tv_nsec, s->tag,
             atomic_fetch_add(&s->seq, 1) + 1);
    r = write_file(s, name, 0, body, len, count);
    if (r == -ENOENT && open_dir(s) == 0) /* the directory was removed under us */
        r = write_file(s, name, 0, body, len, count);
    if (r != 0)
        return r;
    sync_dir(s);
    *dropped = enforce_bound(s);
    return 0;
}

static unsigned count_lines(const char *p, size_t n)
{
    unsigned lines = 0;
    const char *end = p + n;
    while (p < end && (p = memchr(p, '\n', (size_t)(end - p)))) {
        lines++;
        p++;
    }
    return lines;
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
    if (count_lines(nl + 1, len) != count) { /* the count is outside the CRC */
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
    struct stat st;
    int fd;
    memset(b, 0, sizeof *b);
    b->fd = -1;
    if (!is_batch_name(name, TATTLE_SPOOL_SUFFIX))
        return 0;
    fd = tattle__statefile_read(s->dirfd, name);
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
        char damaged[128];
        snprintf(damaged, sizeof damaged, "%s%s", name, TATTLE_SPOOL_DAMAGED);
        renameat(s->dirfd, name, s->dirfd, damaged);
        close(fd);
        b->fd = -1;
        return -1;
    }
    return 1;
}

void tattle__spool_done(struct tattle_spool *s, struct tattle_spool_batch *b)
{
    unlinkat(s->dirfd, b->name, 0);
    tattle__spool_release(b);
}

int tattle__spool_replace(struct tattle_spool *s, struct tattle_spool_batch *b, const char *body, size_t len,
                          unsigned count)
{
    int r = write_file(s, b->name, 1, body, len, count);
    if (r == 0)
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
    char kept[128];
    size_t n = strlen(b->name) - strlen(TATTLE_SPOOL_SUFFIX);
    snprintf(kept, sizeof kept, "%.*s%s", (int)n, b->name, TATTLE_SPOOL_REJECTED);
    renameat(s->dirfd, b->name, s->dirfd, kept);
    tattle__spool_release(b);
}

#define DROPPED_SUFFIX ".dropped"

void tattle__spool_save_dropped(struct tattle_spool *s, unsigned dropped)
{
    char tmp[64], name[64], text[16];
    int n = snprintf(text, sizeof text, "%u\n", dropped);
    int fd = create_tmp(s, tmp, sizeof tmp);
    if (fd < 0)
        return;
    snprintf(name, sizeof name, "%08x-%08x" DROPPED_SUFFIX, s->tag, atomic_fetch_add(&s->seq, 1) + 1);
    if (write_all_fd(fd, text, (size_t)n) == 0 && publish(s, tmp, name, 0) == 0) {
        close(fd);
        return;
    }
    close(fd);
    unlinkat(s->dirfd, tmp, 0);
}

unsigned tattle__spool_take_dropped(struct tattle_spool *s)
{
    DIR *d = list_dir(s);
    struct dirent *e;
    unsigned total = 0;
    if (!d)
        return 0;
    while ((e = readdir(d))) {
        char mine[64], text[16] = "";
        unsigned n = 0;
        int fd;
        if (!is_pair_name(e->d_name, "", DROPPED_SUFFIX))
            continue;
        /* Renaming it away is the claim: only one flusher succeeds. */
        snprintf(mine, sizeof mine, ".tmp-%08x-%08x", s->tag, atomic_fetch_add(&s->seq, 1) + 1);
        if (renameat(s->dirfd, e->d_name, s->dirfd, mine) != 0)
            continue;
        fd = tattle__statefile_read(s->dirfd, mine);
        if (fd >= 0) {
            if (read(fd, text, sizeof text - 1) > 0 && sscanf(text, "%u", &n) == 1 && n < 100000000u)
                total += n;
            close(fd);
        }
        unlinkat(s->dirfd, mine, 0);
    }
    closedir(d);
    return total;
}

void tattle__spool_save_status(struct tattle_spool *s, const char *msg)
{
    char tmp[64], text[512];
    int n = snprintf(text, sizeof text, "%lld %.450s\n", (long long)time(NULL), msg);
    int fd = create_tmp(s, tmp, sizeof tmp);
    if (fd < 0)
        return;
    if (write_all_fd(fd, text, (size_t)n) != 0 || publish(s, tmp, ".status", 1) != 0)
        unlinkat(s->dirfd, tmp, 0);
    close(fd);
}

void tattle__spool_read_status(struct tattle_spool *s, char *buf, size_t cap)
{
    int fd = tattle__statefile_read(s->dirfd, ".status");
    ssize_t n = fd >= 0 ? read(fd, buf, cap - 1) : 0;
    buf[n > 0 ? n : 0] = 0;
    buf[strcspn(buf, "\n")] = 0;
    if (fd >= 0)
        close(fd);
}

void tattle__spool_summary(struct tattle_spool *s, size_t *batches, long long *bytes, uint64_t *oldest_ns)
{
    enum { MAX_FILES = 4096 };
    char (*names)[96] = malloc(MAX_FILES * sizeof *names);
    size_t i, n = names ? list_suffixes(s, names, MAX_FILES, 0) : 0;
    *batches = n;
    *bytes = spool_bytes(s);
    *oldest_ns = n ? strtoull(names[0], NULL, 16) : 0;
    for (i = 0; i < n; i++) {
        uint64_t t = strtoull(names[i], NULL, 16);
        if (t < *oldest_ns)
            *oldest_ns = t;
    }
    free(names);
}

/* Temporary files whose writer died: unlocked, and not empty (a writer
 * locks its file before it writes a byte, so an unlocked file with bytes in
 * it has no writer) or over a minute old. Works across PID namespaces,
 * unlike a pid in the name. */
void tattle__spool_sweep(struct tattle_spool *s)
{
    DIR *d = list_dir(s);
    struct dirent *e;
    time_t now = time(NULL);
    if (!d)
        return;
    while ((e = readdir(d))) {
        struct stat st;
        int fd;
        if (!is_pair_name(e->d_name, ".tmp-", ""))
            continue;
        fd = openat(s->dirfd, e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_EX | LOCK_NB) == 0 &&
            fstat(fd, &st) == 0 && (st.st_size > 0 || now - st.st_mtime > 60))
            unlinkat(s->dirfd, e->d_name, 0);
        close(fd);
    }
    closedir(d);
}
