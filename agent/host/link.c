/* link.c - the host's side of its connection to the flusher (see link.h).
 *
 * Signal context: PARTLY (see link.h). State changes go through one atomic
 * word so that the crash handler never waits on a lock.
 */
#include "link.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <poll.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "assafe.h"
#include "json.h"
#include "rendezvous.h"
#include "spawn.h"

enum { LINK_NONE = 0, LINK_CREATING, LINK_READY, LINK_FAILED };

static _Atomic int link_state;
static struct tattle_shm *link_shm;
static void *link_reserved; /* address space set aside at first use for the region */
static int link_shm_fd = -1;
static ino_t link_shm_ino;
static int link_sock = -1;
static ino_t link_sock_ino;
static const char *link_flusher_path;
static char *const *link_envp;
static char *link_argv[] = {"tattle-flusher", NULL};
static char *spool_sender_argv[] = {"tattle-flusher", TATTLE_FLUSHER_SEND_SPOOL, NULL};

/* Child stacks for the spawn: one pair for normal context (creation is
 * serialized by link_state), one pair for the crash path (serialized by the
 * crash gate). */
static char spawn_stacks_normal[2 * TATTLE_SPAWN_STACK] TATTLE_LARGE_STATIC;
static char spawn_stacks_crash[2 * TATTLE_SPAWN_STACK] TATTLE_LARGE_STATIC;

void tattle__link_reserve(void)
{
    link_reserved = tattle__shm_reserve();
}

void tattle__link_init(const char *flusher_path, char *const *envp)
{
    link_flusher_path = flusher_path;
    link_envp = envp;
}

/* The host may have closed or reused our descriptors (daemons close all
 * fds). Signal-safe. */
static int fd_is(int fd, ino_t ino)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && st.st_ino == ino;
}

static int sock_is_ours(void) { return fd_is(link_sock, link_sock_ino); }

/* Alive, not a zombie nobody reaped (an orphan's parent may never reap).
 * Signal-safe: raw reads of /proc; without /proc, kill() decides. */
static int process_alive(pid_t pid)
{
    char path[40], stat[128], num[24];
    const char *paren;
    size_t n;
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 0;
    tattle__fmt_u64(num, (uint64_t)pid);
    n = tattle__strlcpy(path, "/proc/", sizeof path);
    n += tattle__strlcpy(path + n, num, sizeof path - n);
    tattle__strlcpy(path + n, "/stat", sizeof path - n);
    n = tattle__read_file(path, stat, sizeof stat - 1);
    if (n == 0)
        return 1;
    stat[n] = 0;
    for (paren = NULL, n = 0; stat[n]; n++)
        if (stat[n] == ')')
            paren = stat + n;
    return !(paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X'));
}

/* The doorbell is ours, or the host closed it and the flusher (polling,
 * or about to notice) is alive. Signal-safe. */
static int flusher_reachable(void)
{
    pid_t flusher;
    if (sock_is_ours())
        return 1;
    if (!link_shm)
        return 0;
    flusher = atomic_load(&link_shm->flusher_pid);
    return flusher > 0 && process_alive(flusher);
}

static _Atomic int start_failed; /* the last attempt to start a flusher failed */

/* Say once why no flusher runs (a seccomp filter that forbids fork,
 * RLIMIT_NPROC, no descriptors left). Signal-safe: strerrordesc_np reads a
 * table. */
static void tell_start_failure(const char *what, int err)
{
    static _Atomic int told;
    char line[256];
    struct tattle_out o = {line, sizeof line, 0, 0};
    const char *why = strerrordesc_np(err);
    atomic_store(&start_failed, 1);
    if (atomic_exchange(&told, 1))
        return;
    tattle__out_str(&o, "tattle: ");
    tattle__out_str(&o, what);
    tattle__out_str(&o, " (");
    tattle__out_str(&o, why ? why : "unknown error");
    tattle__out_str(&o, "); events and crash reports are not recorded\n");
    (void)tattle__write_bounded(2, line, o.len, 200);
}

/* Start a private flusher on our region with a new socketpair: where the
 * shared one cannot be had. Returns the doorbell or -1. Signal-safe. */
static int start_private(void *stacks)
{
    int sv[2], r;
    struct tattle_spawn sp = {link_flusher_path, link_argv, link_envp, link_shm_fd, -1, -1, -1, stacks};
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        tell_start_failure("cannot start the flusher", errno);
        return -1;
    }
    sv[0] = tattle__fd_move_high(sv[0]);
    sv[1] = tattle__fd_move_high(sv[1]);
    sp.sock_fd = sv[1];
    sp.pidfd = tattle__sys_pidfd_open(tattle__sys_getpid());
    if (sp.pidfd >= 0)
        sp.pidfd = tattle__fd_move_high(sp.pidfd);
    r = tattle__spawn_flusher(&sp);
    close(sv[1]);
    if (sp.pidfd >= 0)
        close(sp.pidfd);
    if (r != 0) {
        close(sv[0]);
        tell_start_failure("cannot start the flusher", -r);
        return -1;
    }
    return sv[0];
}

/* Connect our region to a flusher: the one this user's processes share,
 * else a private one. Signal-safe. */
static int start_flusher(void *stacks)
{
    struct stat st;
    struct tattle_spawn sp = {link_flusher_path, link_argv, link_envp, -1, -1, -1, -1, stacks};
    int s;
    /* The old doorbell, if it is still ours: the host may have closed it,
     * and its number may now be anything (the new socket's, even). */
    int old_sock = sock_is_ours() ? link_sock : -1;
    if (!link_flusher_path || !fd_is(link_shm_fd, link_shm_ino))
        return -1;
    s = tattle__rendezvous_join(&sp, link_shm_fd);
    if (s == TATTLE_RV_PRIVATE) {
        s = start_private(stacks);
    } else if (s < 0) {
        tell_start_failure("cannot start the flusher", -s);
        s = -1;
    }
    if (s < 0)
        return -1;
    if (old_sock >= 0)
        close(old_sock);
    link_sock = s;
    link_sock_ino = fstat(link_sock, &st) == 0 ? st.st_ino : 0;
    atomic_store(&start_failed, 0);
    return 0;
}

void tattle__link_start_spool_sender(int lock_fd)
{
    struct tattle_spawn sp = {link_flusher_path, spool_sender_argv, link_envp, -1, -1, -1, -1, spawn_stacks_normal};
    /* The lock goes to the sender as its descriptor 3; our copy is closed
     * (the lock lives on in the sender's). A failure is said by the first
     * capture, which tries again. */
    if (lock_fd >= 0)
        sp.shm_fd = tattle__fd_move_high(lock_fd);
    if (link_flusher_path)
        (void)tattle__spawn_flusher(&sp);
    if (sp.shm_fd >= 0)
        close(sp.shm_fd);
}

/* A crashing process whose address space is at its soft limit (a program
 * that caps itself, or exhausted it, before it ever used the agent): the
 * limit is raised to the hard one, for the region alone, since the process
 * is about to die. Returns 1 when it was raised. Signal-safe. */
static int lift_address_space_limit(void)
{
    struct rlimit r;
    if (tattle__raw_syscall4(SYS_prlimit64, 0, RLIMIT_AS, 0, (long)&r) != 0 || r.rlim_cur >= r.rlim_max)
        return 0;
    r.rlim_cur = r.rlim_max;
    return tattle__raw_syscall4(SYS_prlimit64, 0, RLIMIT_AS, (long)&r, 0) == 0;
}

static struct tattle_shm *create(void *stacks, int in_signal)
{
    struct stat st;
    int fd;
    struct tattle_shm *shm = tattle__shm_create(&fd, link_reserved);
    if (!shm && in_signal && lift_address_space_limit())
        shm = tattle__shm_create(&fd, NULL);
    if (!shm) {
        /* A failed MAP_FIXED may have dropped the reservation: never map
         * there again (something else may live there by then). */
        link_reserved = NULL;
        tell_start_failure("cannot create the shared memory for the flusher", errno);
        return NULL;
    }
    link_reserved = NULL; /* it is the region now */
    tattle__shm_describe_host(shm);
    link_shm = shm;
    link_shm_fd = fd;
    link_shm_ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
    /* If no flusher starts, keep the region: the crash path tries again. */
    (void)start_flusher(stacks);
    return shm;
}

static _Atomic pid_t creator_tid; /* the thread creating the region */

struct tattle_shm *tattle__link_get(int in_signal)
{
    int st = atomic_load_explicit(&link_state, memory_order_acquire);
    int expected;
    if (st == LINK_READY)
        return link_shm;
    /* A region that could not be made before is tried again by a crash
     * (with the address-space lift create() allows it). */
    if (st == LINK_FAILED && !in_signal)
        return NULL;
    expected = st == LINK_FAILED ? LINK_FAILED : LINK_NONE;
    if (atomic_compare_exchange_strong(&link_state, &expected, LINK_CREATING)) {
        struct tattle_shm *shm;
        atomic_store(&creator_tid, tattle__sys_gettid());
        shm = create(in_signal ? spawn_stacks_crash : spawn_stacks_normal, in_signal);
        atomic_store(&creator_tid, 0);
        atomic_store_explicit(&link_state, shm ? LINK_READY : LINK_FAILED, memory_order_release);
        return shm;
    }
    /* Another thread is creating it (a crash handler waits as long as a
     * start may take: about 3 s). This very thread, interrupted while
     * creating it, would wait for itself: give up at once. */
    if (in_signal && atomic_load(&creator_tid) == tattle__sys_gettid())
        return NULL;
    for (int i = 0; i < (in_signal ? 60000 : 1000000); i++) {
        st = atomic_load_explicit(&link_state, memory_order_acquire);
        if (st != LINK_CREATING)
            return st == LINK_READY ? link_shm : NULL;
        if (in_signal) {
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

int tattle__link_unavailable(void)
{
    return atomic_load_explicit(&start_failed, memory_order_relaxed) && !flusher_reachable();
}

struct tattle_shm *tattle__link_peek(void)
{
    return atomic_load_explicit(&link_state, memory_order_acquire) == LINK_READY ? link_shm : NULL;
}

static void ring_bell(void)
{
    char b = 1;
    if (sock_is_ours()) {
        (void)send(link_sock, &b, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    } else if (link_shm && atomic_load(&link_shm->flusher_polling)) {
        atomic_fetch_add(&link_shm->bell_futex, 1);
        tattle__futex_wake((volatile uint32_t *)&link_shm->bell_futex);
    }
}

void tattle__link_doorbell(uint64_t pos, uint64_t nslots, uint64_t now_ns)
{
    struct tattle_shm *shm = tattle__link_peek();
    const uint64_t half = TATTLE_RING_SLOTS / 2;
    uint64_t look_by;
    atomic_thread_fence(memory_order_seq_cst);
    if (!shm || !atomic_load_explicit(&shm->flusher_sleeping, memory_order_relaxed))
        return;
    /* The bell (a system call and a wake-up) rings only when this record
     * begins a half of the ring, or when the flusher would not look within
     * TATTLE_POLL_MS on its own (shm.h). A clock step only makes it ring,
     * or wait for the flusher's own look. */
    look_by = atomic_load_explicit(&shm->look_by_ns, memory_order_relaxed);
    if ((pos & (half - 1)) != 0 && (pos & (half - 1)) + nslots <= half && look_by &&
        look_by <= now_ns + (uint64_t)TATTLE_POLL_MS * 1000000u)
        return;
    /* The first writer to see the flusher asleep wakes it; the others see
     * the flag cleared and make no system call. */
    if (atomic_exchange(&shm->flusher_sleeping, 0))
        ring_bell();
}

/* Wait for the crash area to reach DONE. Returns 1 when done, 0 on timeout,
 * -1 when the flusher went away. Signal-safe. */
static int await_done(struct tattle_crash *c, uint64_t deadline)
{
    for (;;) {
        uint64_t now = tattle__now_monotonic_ms();
        struct pollfd pfd = {link_sock, POLLIN, 0};
        char buf[64];
        int polled = !sock_is_ours();
        if (atomic_load_explicit(&c->state, memory_order_acquire) == TATTLE_CRASH_DONE)
            return 1;
        if (now >= deadline)
            return 0;
        if (polled && !flusher_reachable())
            return -1;
        /* Without the socket, the flusher rings no bell back: look often. */
        pfd.fd = polled ? -1 : link_sock;
        int slice = (int)(deadline - now < 50 ? deadline - now : polled ? 5 : 50);
        if (polled)
            ring_bell();
        int n = poll(&pfd, 1, slice);
        if (n > 0) {
            if (pfd.revents & (POLLHUP | POLLERR))
                return atomic_load(&c->state) == TATTLE_CRASH_DONE ? 1 : -1;
            (void)recv(link_sock, buf, sizeof buf, MSG_DONTWAIT);
        }
    }
}

/* The host closed the region's descriptor (a daemon that closes every
 * descriptor) and its flusher died: a new flusher cannot be handed the old
 * region, so make a new one holding the same crash record (what the ring
 * still held is lost). Signal-safe. */
static struct tattle_shm *relocate_region(struct tattle_shm *old)
{
    struct stat st;
    int fd;
    struct tattle_shm *shm = tattle__shm_create(&fd, NULL);
    if (!shm)
        return NULL;
    tattle__shm_describe_host(shm);
    memcpy(&shm->crash, &old->crash, sizeof shm->crash);
    atomic_store(&shm->crash.state, TATTLE_CRASH_READY);
    link_shm_fd = fd;
    link_shm_ino = fstat(fd, &st) == 0 ? st.st_ino : 0;
    link_shm = shm;
    return shm;
}

void tattle__link_allow_tracer(void)
{
    struct tattle_shm *shm = tattle__link_peek();
    char path[40], num[24], exe[PATH_MAX];
    pid_t flusher = shm ? atomic_load(&shm->flusher_pid) : 0;
    ssize_t n;
    if (flusher <= 0 || !link_flusher_path)
        return;
    tattle__fmt_u64(num, (uint64_t)flusher);
    n = (ssize_t)tattle__strlcpy(path, "/proc/", sizeof path);
    n += (ssize_t)tattle__strlcpy(path + n, num, sizeof path - (size_t)n);
    tattle__strlcpy(path + n, "/exe", sizeof path - (size_t)n);
    n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return;
    exe[n] = 0;
    if (!strcmp(exe, link_flusher_path))
        (void)prctl(PR_SET_PTRACER, (unsigned long)flusher, 0, 0, 0);
}

int tattle__link_wait_crash(int timeout_ms, struct tattle_crash **crash)
{
    struct tattle_shm *shm = tattle__link_peek();
    uint64_t deadline = tattle__now_monotonic_ms() + (uint64_t)timeout_ms;
    int restarted = 0;
    if (!shm)
        return 0;
    for (;;) {
        int r;
        tattle__link_allow_tracer();
        ring_bell();
        r = flusher_reachable() ? await_done(&shm->crash, deadline) : -1;
        if (r >= 0)
            return r;
        /* The flusher is gone (killed, or never started): start another,
         * once, and hand it the same record. */
        if (restarted || tattle__now_monotonic_ms() >= deadline)
            return 0;
        restarted = 1;
        if (atomic_load(&shm->crash.state) == TATTLE_CRASH_TAKEN)
            atomic_store(&shm->crash.state, TATTLE_CRASH_READY);
        if (!fd_is(link_shm_fd, link_shm_ino)) {
            if (!(shm = relocate_region(shm)))
                return -1;
            *crash = &shm->crash;
        }
        if (start_flusher(spawn_stacks_crash) != 0)
            return -1;
    }
}

/* Wait until the flusher has written every record claimed so far to the
 * local sinks. Returns 1 when it has, 0 on timeout or without a flusher. */
static int wait_sunk(struct tattle_shm *shm, int timeout_ms)
{
    uint64_t target = atomic_load(&shm->ring.head);
    uint64_t deadline = tattle__now_monotonic_ms() + (uint64_t)timeout_ms;
    while (atomic_load(&shm->sunk_pos) < target) {
        uint32_t seen = atomic_load(&shm->sunk_futex);
        uint64_t now = tattle__now_monotonic_ms();
        if (now >= deadline || !flusher_reachable())
            return 0;
        ring_bell();
        if (atomic_load(&shm->sunk_pos) >= target)
            break;
        tattle__futex_wait((volatile uint32_t *)&shm->sunk_futex, seen,
                           (int)(deadline - now < 100 ? deadline - now : 100));
    }
    return 1;
}

/* With a server configured: wait until the delivery thread has finished a
 * pass over the spool that includes every batch written so far (sent, or
 * known to be failing). Returns 1 when it has. */
static int wait_delivered(struct tattle_shm *shm, uint64_t deadline)
{
    uint32_t target = atomic_load(&shm->spooled_gen);
    for (;;) {
        uint32_t seen = atomic_load(&shm->delivered_gen);
        uint64_t now = tattle__now_monotonic_ms();
        if ((int32_t)(seen - target) >= 0)
            return 1;
        if (now >= deadline || !flusher_reachable())
            return 0;
        tattle__futex_wait((volatile uint32_t *)&shm->delivered_gen, seen,
                           (int)(deadline - now < 100 ? deadline - now : 100));
    }
}

static _Atomic uint32_t notice_printed;

void tattle__link_notice_seen(void)
{
    struct tattle_shm *shm = tattle__link_peek();
    if (shm)
        atomic_store(&notice_printed, atomic_load_explicit(&shm->notice_seq, memory_order_acquire));
}

void tattle__link_print_notice(int timeout_ms)
{
    struct tattle_shm *shm = tattle__link_peek();
    uint32_t seq;
    char line[sizeof shm->notice + 16];
    size_t n;
    if (!shm)
        return;
    seq = atomic_load_explicit(&shm->notice_seq, memory_order_acquire);
    if (seq == atomic_load_explicit(&notice_printed, memory_order_relaxed) ||
        atomic_exchange(&notice_printed, seq) == seq)
        return;
    n = tattle__strlcpy(line, "tattle: ", sizeof line);
    n += tattle__strlcpy(line + n, shm->notice, sizeof line - n - 1);
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    (void)tattle__write_bounded(2, line, n, timeout_ms);
}

int tattle__link_flush(int timeout_ms)
{
    struct tattle_shm *shm = tattle__link_peek();
    uint64_t deadline = tattle__now_monotonic_ms() + (uint64_t)timeout_ms;
    int r;
    if (!shm)
        return atomic_load(&start_failed) ? -1 : 1;
    if (tattle__link_unavailable())
        return -1;
    r = wait_sunk(shm, timeout_ms);
    if (r && atomic_load(&shm->http_enabled))
        r = wait_delivered(shm, deadline);
    tattle__link_print_notice(200);
    return r;
}

void tattle__link_wait_exit(int timeout_ms)
{
    struct tattle_shm *shm = tattle__link_peek();
    if (!shm)
        return;
    atomic_store(&shm->host_exiting, 1);
    if (timeout_ms > 0)
        wait_sunk(shm, timeout_ms);
    tattle__link_print_notice(200);
}

void tattle__link_forget(void)
{
    /* The parent's region becomes this process's reservation. */
    if (link_shm && mmap(link_shm, sizeof *link_shm, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED,
                         -1, 0) != MAP_FAILED)
        link_reserved = link_shm;
    else if (link_shm)
        munmap(link_shm, sizeof *link_shm);
    if (link_shm_fd >= 0)
        close(link_shm_fd);
    if (link_sock >= 0)
        close(link_sock);
    link_shm = NULL;
    link_shm_fd = link_sock = -1;
    atomic_store(&link_state, LINK_NONE);
}
