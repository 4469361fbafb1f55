/* assafe.h - small helpers that are safe to call inside a signal handler.
 *
 * Owns: raw system calls glibc does not wrap (or wraps with errno side
 * effects), write-all with EINTR retry, number formatting without stdio,
 * bounded string copies, and futex waits on shared memory.
 * Signal context: YES. Every function here is async-signal-safe: no malloc,
 * no stdio, no locks (tattle__key_once excepted, as it says).
 */
#ifndef TATTLE_ASSAFE_H
#define TATTLE_ASSAFE_H

#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A system call made here, without libc: what loading needs goes through
 * no lazily bound function (the first call of each costs the process a
 * symbol lookup) and sets no errno. Returns the kernel's answer (-errno on
 * failure). x86_64. */
static inline long tattle__raw_syscall4(long nr, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return ret;
}

static inline long tattle__raw_syscall6(long nr, long a, long b, long c, long d, long e, long f)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    register long r9 __asm__("r9") = f;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(nr), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return ret;
}

pid_t tattle__sys_gettid(void);
pid_t tattle__sys_getpid(void);
int tattle__sys_tgkill(pid_t pid, pid_t tid, int sig);
int tattle__sys_tgsigqueueinfo(pid_t pid, pid_t tid, int sig, const siginfo_t *si);
int tattle__sys_pidfd_open(pid_t pid);
int tattle__sys_memfd_create(const char *name, unsigned flags);

/* Wait while *word == expected, at most timeout_ms (negative: forever).
 * Works across processes on a MAP_SHARED word. Returns 0 or -errno. */
int tattle__futex_wait(volatile uint32_t *word, uint32_t expected, int timeout_ms);
void tattle__futex_wake(volatile uint32_t *word);

/* write(2) until done; retries EINTR and short writes. Returns 0 or -errno. */
int tattle__write_all(int fd, const void *buf, size_t len);
/* Set when the agent must write nothing on the program's stderr
 * (TATTLE_STDERR=0, the default under /etc/ld.so.preload): every write to
 * fd 2 through the helpers below is then dropped. */
extern int tattle__stderr_quiet;

/* write(2) that never waits past timeout_ms for room (poll, then at most
 * PIPE_BUF bytes at a time). Returns 0 or -errno (-ETIMEDOUT). */
int tattle__write_bounded(int fd, const void *buf, size_t len, int timeout_ms);
/* Write a NUL-terminated string (a literal, or formatted by the helpers
 * below), waiting at most 200 ms for room. */
void tattle__write_str(int fd, const char *s);

/* Format into buf (at least 21 bytes for dec, 19 for hex). Return length. */
size_t tattle__fmt_u64(char *buf, uint64_t v);
size_t tattle__fmt_i64(char *buf, int64_t v);
size_t tattle__fmt_hex(char *buf, uint64_t v); /* "0x..." */

/* strlcpy: copies at most cap-1 bytes, always terminates. Returns strlen(src)
 * clipped to cap-1. NULL src gives "". */
size_t tattle__strlcpy(char *dst, const char *src, size_t cap);
size_t tattle__strlen(const char *s);
int tattle__streq(const char *a, const char *b);
/* entry is "NAME=value": the value when NAME is name, else NULL. */
const char *tattle__env_value(const char *entry, const char *name);
/* The index of the name in names (NULL-terminated) that entry sets, or -1. */
int tattle__env_name_index(const char *entry, const char *const *names);
/* ASCII only, whatever the locale. */
int tattle__caseeq(const char *a, const char *b);
/* dst = a b c (NULLs skipped), always terminated. Returns 0, or -1 when it
 * did not fit (dst then holds what fitted). */
int tattle__concat(char *dst, size_t cap, const char *a, const char *b, const char *c);
/* A decimal integer, optionally signed, and nothing else: 0, or -1. */
int tattle__parse_long(const char *s, long *out);
/* One line on stderr made of the given parts (NULLs skipped), in one
 * write; nothing under tattle__stderr_quiet. */
void tattle__say(const char *a, const char *b, const char *c, const char *d, const char *e);
int tattle__strneq(const char *a, const char *b, size_t n);

/* Move a descriptor to >= 700 with FD_CLOEXEC, out of the range hosts use
 * for themselves (0-2 and the low numbers daemons dup2 over). Returns the
 * new descriptor, or fd itself if it could not be moved. */
int tattle__fd_move_high(int fd);

/* Copy len bytes of our own memory that may be unmapped. Returns the count
 * copied before the first unreadable byte. Uses process_vm_readv on self. */
size_t tattle__copy_readable(void *dst, uintptr_t src, size_t len);

/* Read a whole small file (e.g. /proc/self/maps) into buf; returns bytes read. */
size_t tattle__read_file(const char *path, char *buf, size_t cap);

/* Milliseconds / nanoseconds from clock_gettime. */
/* Does directory dir hold an entry whose name ends in suffix (and does not
 * start with '.')? 1 yes, 0 no, -1 cannot read it. */
int tattle__dir_has_suffix(const char *dir, const char *suffix);

uint64_t tattle__now_realtime_ns(void);
uint64_t tattle__now_monotonic_ms(void);

/* Make a pthread key once, on first use (a host that never needs it never
 * pays for it at load). state starts at 0; returns 1 when the key exists.
 * Not signal-safe if the same thread is inside it (it waits). */
int tattle__key_once(_Atomic int *state, pthread_key_t *key, void (*dtor)(void *));

/* Large static buffers, page-aligned: the linker sorts .bss by alignment
 * (-fdata-sections, --sort-section=alignment), so they sit apart and the
 * small statics that loading writes share a page or two instead of each
 * costing the host a page fault of its own. */
#define TATTLE_LARGE_STATIC __attribute__((aligned(4096)))

/* Small statics the constructor writes: placed in .data, right after the
 * GOT that the loader's relocations have already dirtied, so that loading
 * writes no page of its own. Keep their sum under about 2.5 KiB (the rest
 * of that page): bench/bench_startup counts the cost. */
#define TATTLE_LOAD_DATA __attribute__((section(".data.tattle_load")))

/* Functions the constructor (and the destructor) run in every process:
 * one page of their own at the end of the code segment
 * (agent/host/load_path.ld). The kernel maps the file's pages around a
 * faulting one (fault-around, 64 KiB) but not past the end of its
 * mapping: loading maps about half the code segment fewer pages, mapped at
 * start and unmapped at exit. They call only each other and libc through
 * the GOT (no PLT page, no lazy binding), and read no .rodata (no switch
 * tables, no const arrays or string literals: TATTLE_LOAD_DATA holds their
 * constants), so no page of .rodata is mapped at all. */
#define TATTLE_LOAD_PATH __attribute__((section(".tattle.load")))

/* Constants that code reads: on the RELRO page, which the loader writes
 * (relocations) and then makes read-only, so they cost loading no page and
 * cannot be changed after it. */
#define TATTLE_LOAD_CONST __attribute__((section(".data.rel.ro.tattle_load")))

#endif
