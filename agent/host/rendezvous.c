/* rendezvous.c - finding, or starting, the flusher shared by every process
 * of this user and configuration (see rendezvous.h).
 *
 * Signal context: YES. Raw socket calls, nanosleep and the spawn; nothing
 * allocated, nothing locked, every wait bounded by one deadline.
 */
#include "rendezvous.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "assafe.h"
#include "shm.h"

#define HANDSHAKE_MS 3000 /* a flusher busy with a crash storm answers late, not never */

static uint64_t mix(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    while (n--)
        h = (h ^ *p++) * 1099511628211ull;
    return h;
}

/* "\0tattle-flusher-<euid>-<hash>": abstract, so nothing on disk to plant
 * or follow, and gone with the socket; the uid is checked on both sides, the
 * name only keeps users and configurations apart. The hash covers the
 * flusher's path and environment and what decides what a path or pid
 * means: a process in another mount, pid or user namespace (a container
 * sharing the network) or under another root (chroot) gets a flusher of
 * its own. */
static socklen_t make_name(struct sockaddr_un *a, const char *path, char *const *envp)
{
    static const char *const ns[] = {"/proc/self/ns/mnt", "/proc/self/ns/pid", "/proc/self/ns/user", "/"};
    uint64_t h = 1469598103934665603ull;
    const char *p;
    char num[24];
    size_t n = 1;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        struct stat st;
        if (stat(ns[i], &st) == 0) {
            h = mix(h, &st.st_dev, sizeof st.st_dev);
            h = mix(h, &st.st_ino, sizeof st.st_ino);
        }
    }
    for (p = path; p && *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    for (; envp && *envp; envp++) {
        h = (h ^ '\n') * 1099511628211ull;
        for (p = *envp; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
    }
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    n += tattle__strlcpy(a->sun_path + n, "tattle-flusher-", sizeof a->sun_path - n);
    tattle__fmt_u64(num, (uint64_t)geteuid());
    n += tattle__strlcpy(a->sun_path + n, num, sizeof a->sun_path - n);
    a->sun_path[n++] = '-';
    for (int i = 60; i >= 0; i -= 4)
        a->sun_path[n++] = "0123456789abcdef"[(h >> i) & 15];
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The peer runs as our effective uid (checked where it listened). */
static int peer_is_us(int s)
{
    struct ucred cr;
    socklen_t len = sizeof cr;
    return getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) == 0 && cr.uid == geteuid();
}

/* Hand over the region and a pidfd of this process; wait for the answer.
 * 0: served; 1: refused (it cannot serve us: another pid namespace);
 * -1: no answer. */
static int greet(int s, int shm_fd, uint64_t deadline)
{
    struct tattle_hello hello = {TATTLE_SHM_MAGIC, TATTLE_SHM_VERSION};
    struct iovec iov = {&hello, sizeof hello};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(2 * sizeof(int))];
    } ctl;
    struct msghdr msg = {0};
    int fds[2] = {shm_fd, tattle__sys_pidfd_open(tattle__sys_getpid())};
    int nfds = fds[1] >= 0 ? 2 : 1;
    struct cmsghdr *c;
    ssize_t sent;
    char ack = 0;
    memset(&ctl, 0, sizeof ctl);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
    memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    sent = sendmsg(s, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (fds[1] >= 0)
        close(fds[1]);
    if (sent != (ssize_t)sizeof hello)
        return -1;
    for (;;) {
        uint64_t now = tattle__now_monotonic_ms();
        struct pollfd p = {s, POLLIN, 0};
        if (now >= deadline)
            return -1;
        if (poll(&p, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return -1;
        if (p.revents & POLLIN)
            return recv(s, &ack, 1, MSG_DONTWAIT) != 1 ? -1 : ack == TATTLE_HELLO_ACK ? 0 : 1;
        if (p.revents & (POLLHUP | POLLERR))
            return -1;
    }
}

/* Nobody serves the name: take it and start the flusher that will. 1 when
 * one was started, 0 when another process is taking the name, -errno when
 * no flusher could be started. */
static int take_name(const struct sockaddr_un *a, socklen_t alen, struct tattle_spawn *sp)
{
    int r, l = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -errno;
    if (bind(l, (const struct sockaddr *)a, alen) != 0 || listen(l, SOMAXCONN) != 0) {
        close(l);
        return 0; /* another process got there first: join it */
    }
    sp->listen_fd = tattle__fd_move_high(l);
    sp->shm_fd = sp->sock_fd = sp->pidfd = -1;
    r = tattle__spawn_flusher(sp);
    close(sp->listen_fd);
    sp->listen_fd = -1;
    return r < 0 ? r : 1;
}

int tattle__rendezvous_join(struct tattle_spawn *sp, int shm_fd)
{
    struct sockaddr_un a;
    socklen_t alen = make_name(&a, sp->path, sp->envp);
    uint64_t deadline = tattle__now_monotonic_ms() + HANDSHAKE_MS;
    int spawned = 0, bound_elsewhere = 0;
    while (tattle__now_monotonic_ms() < deadline) {
        int s = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0), r;
        if (s < 0)
            return -errno;
        if (connect(s, (const struct sockaddr *)&a, alen) == 0) {
            if (!peer_is_us(s)) {
                close(s);
                return TATTLE_RV_PRIVATE; /* another user squats the name */
            }
            r = greet(s, shm_fd, deadline);
            if (r == 0)
                return tattle__fd_move_high(s);
            close(s);
            if (r > 0)
                return TATTLE_RV_PRIVATE;
            pause_ms(1); /* it was closing down: the name is free again soon */
            continue;
        }
        r = errno;
        close(s);
        if (r == ECONNREFUSED && spawned < 2) {
            int e = take_name(&a, alen, sp);
            if (e < 0)
                return e;
            spawned += e;
            if (e)
                continue;
            /* Bound but not listening: another process of ours between
             * bind and listen (microseconds), or someone holding the name
             * to stall us: not for long. */
            if (++bound_elsewhere > 20)
                return TATTLE_RV_PRIVATE;
        } else if (r != ECONNREFUSED && r != EAGAIN) {
            return TATTLE_RV_PRIVATE;
        }
        pause_ms(1); /* being set up, or its queue is full */
    }
    return TATTLE_RV_PRIVATE;
}
