/* assafe.c - async-signal-safe helpers (see assafe.h).
 *
 * Signal context: YES, every function. Only raw system calls and plain loops.
 */
#include "assafe.h"

#include <limits.h>
#include <poll.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

pid_t tattle__sys_gettid(void) { return (pid_t)syscall(SYS_gettid); }
pid_t tattle__sys_getpid(void) { return (pid_t)syscall(SYS_getpid); }

int tattle__sys_tgkill(pid_t pid, pid_t tid, int sig)
{
    return (int)syscall(SYS_tgkill, pid, tid, sig);
}

int tattle__sys_tgsigqueueinfo(pid_t pid, pid_t tid, int sig, const siginfo_t *si)
{
    return (int)syscall(SYS_rt_tgsigqueueinfo, pid, tid, sig, si);
}

int tattle__sys_pidfd_open(pid_t pid) { return (int)syscall(SYS_pidfd_open, pid, 0); }

int tattle__sys_memfd_create(const char *name, unsigned flags)
{
    return (int)syscall(SYS_memfd_create, name, flags);
}

int tattle__futex_wait(volatile uint32_t *word, uint32_t expected, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    /* Not FUTEX_PRIVATE: the word lives in memory shared with the flusher. */
    long r = syscall(SYS_futex, word, FUTEX_WAIT, expected, tsp, NULL, 0);
    return r == 0 ? 0 : -errno;
}

void tattle__futex_wake(volatile uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, 0x7fffffff, NULL, NULL, 0);
}

int tattle__write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Never blocks past the deadline: wait for room with poll, then write at
 * most PIPE_BUF bytes, which a pipe with room takes without blocking (a
 * stderr pipe nobody drains must not hang the host). A socket is written
 * with MSG_DONTWAIT. The descriptor's flags are never changed: they belong
 * to every process that shares it. */
int tattle__stderr_quiet;

int tattle__write_bounded(int fd, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;
    if (fd == 2 && tattle__stderr_quiet)
        return 0;
    uint64_t deadline = tattle__now_monotonic_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 0);
    while (len > 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        uint64_t now = tattle__now_monotonic_ms();
        int wait = now >= deadline ? 0 : (int)(deadline - now);
        size_t chunk = len < PIPE_BUF ? len : PIPE_BUF;
        ssize_t n;
        int r = poll(&pfd, 1, wait);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r == 0 ? -ETIMEDOUT : -errno;
        if (pfd.revents & (POLLERR | POLLNVAL))
            return -EIO;
        n = send(fd, p, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(fd, p, chunk);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void tattle__write_str(int fd, const char *s) { (void)tattle__write_bounded(fd, s, tattle__strlen(s), 200); }

size_t tattle__fmt_u64(char *buf, uint64_t v)
{
    char tmp[21];
    size_t n = 0, i;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

size_t tattle__fmt_i64(char *buf, int64_t v)
{
    if (v < 0) {
        buf[0] = '-';
        return 1 + tattle__fmt_u64(buf + 1, (uint64_t)0 - (uint64_t)v);
    }
    return tattle__fmt_u64(buf, (uint64_t)v);
}

size_t tattle__fmt_hex(char *buf, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[17];
    size_t n = 0, i;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    buf[0] = '0';
    buf[1] = 'x';
    for (i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[2 + n] = 0;
    return 2 + n;
}

TATTLE_LOAD_PATH size_t tattle__strlen(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    while (s[n])
        n++;
    return n;
}

TATTLE_LOAD_PATH size_t tattle__strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    if (src)
        while (n + 1 < cap && src[n]) {
            dst[n] = src[n];
            n++;
        }
    dst[n] = 0;
    return n;
}

int tattle__streq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    while (*a && *a == *b)
        a++, b++;
    return *a == *b;
}

TATTLE_LOAD_PATH const char *tattle__env_value(const char *entry, const char *name)
{
    while (*name && *entry == *name)
        entry++, name++;
    return !*name && *entry == '=' ? entry + 1 : NULL;
}

TATTLE_LOAD_PATH int tattle__env_name_index(const char *entry, const char *const *names)
{
    int i;
    for (i = 0; names[i]; i++) /* two bytes first: most names differ there (every name has two) */
        if (entry[0] == names[i][0] && entry[1] == names[i][1] && tattle__env_value(entry, names[i]))
            return i;
    return -1;
}

TATTLE_LOAD_PATH int tattle__caseeq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return 0;
        if (!x)
            return 1;
    }
}

int tattle__concat(char *dst, size_t cap, const char *a, const char *b, const char *c)
{
    const char *parts[3] = {a, b, c};
    size_t n = 0, want = 0;
    int i;
    for (i = 0; i < 3; i++) {
        want += tattle__strlen(parts[i]);
        if (n < cap)
            n += tattle__strlcpy(dst + n, parts[i], cap - n);
    }
    return want < cap ? 0 : -1;
}

int tattle__parse_long(const char *s, long *out)
{
    unsigned long v = 0, limit;
    int neg = 0;
    if (*s == '-' || *s == '+')
        neg = *s++ == '-';
    if (!*s)
        return -1;
    limit = neg ? (unsigned long)LONG_MAX + 1 : (unsigned long)LONG_MAX;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (limit - (unsigned long)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    *out = neg ? (long)(0 - v) : (long)v;
    return 0;
}

void tattle__say(const char *a, const char *b, const char *c, const char *d, const char *e)
{
    const char *parts[5] = {a, b, c, d, e};
    char line[640];
    size_t n = 0;
    int i;
    for (i = 0; i < 5; i++)
        n += tattle__strlcpy(line + n, parts[i], sizeof line - 1 - n);
    line[n++] = '\n';
    (void)tattle__write_bounded(2, line, n, 200);
}

int tattle__strneq(const char *a, const char *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (a[i] != b[i])
            return 0;
        if (!a[i])
            return 1;
    }
    return 1;
}

int tattle__fd_move_high(int fd)
{
    int hi = fcntl(fd, F_DUPFD_CLOEXEC, 700);
    if (hi < 0)
        return fd;
    close(fd);
    return hi;
}

size_t tattle__copy_readable(void *dst, uintptr_t src, size_t len)
{
    struct iovec local = {dst, len};
    struct iovec remote = {(void *)src, len};
    ssize_t n = syscall(SYS_process_vm_readv, tattle__sys_getpid(), &local, 1UL, &remote, 1UL, 0UL);
    if (n > 0)
        return (size_t)n;
    /* process_vm_readv stops at the first unmapped page of the remote iovec
     * but fails outright if the first byte is unmapped; retry page by page
     * so a short readable prefix is still copied. */
    size_t done = 0;
    while (done < len) {
        size_t chunk = 4096 - ((src + done) & 4095);
        if (chunk > len - done)
            chunk = len - done;
        local.iov_base = (char *)dst + done;
        local.iov_len = chunk;
        remote.iov_base = (void *)(src + done);
        remote.iov_len = chunk;
        n = syscall(SYS_process_vm_readv, tattle__sys_getpid(), &local, 1UL, &remote, 1UL, 0UL);
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    return done;
}

size_t tattle__read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;
    if (fd < 0)
        return 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return got;
}

uint64_t tattle__now_realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

uint64_t tattle__now_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000ULL + (uint64_t)ts.tv_nsec / 1000000ULL;
}

struct linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

int tattle__dir_has_suffix(const char *dir, const char *suffix)
{
    char buf[4096] __attribute__((aligned(8)));
    size_t sl = tattle__strlen(suffix);
    int found = 0;
    long n;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while (!found && (n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0) {
        long off = 0;
        while (off < n) {
            struct linux_dirent64 *e = (struct linux_dirent64 *)(buf + off);
            size_t len = tattle__strlen(e->d_name);
            if (e->d_name[0] != '.' && len > sl && tattle__streq(e->d_name + len - sl, suffix)) {
                found = 1;
                break;
            }
            off += e->d_reclen;
        }
    }
    syscall(SYS_close, fd);
    return found;
}

int tattle__key_once(_Atomic int *state, pthread_key_t *key, void (*dtor)(void *))
{
    int expected = 0; /* 0 none, 1 being made, 2 made, 3 failed */
    if (atomic_compare_exchange_strong(state, &expected, 1))
        atomic_store(state, pthread_key_create(key, dtor) == 0 ? 2 : 3);
    while (atomic_load(state) == 1)
        sched_yield();
    return atomic_load(state) == 2;
}
