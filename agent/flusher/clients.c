/* clients.c - the hosts a flusher serves.
 *
 * Owns: the host that started a private flusher (descriptors 3-5), the
 * hosts that join a shared one through the rendezvous socket (descriptor 6:
 * peer uid and pid checked, greeting with the region and a pidfd, answer),
 * noticing that a host is gone (pidfd, doorbell hang-up, exec), serving a
 * host that closed its doorbell (a thread waits on the region's futex for
 * it), and forgetting hosts that are gone with nothing left to do.
 * Nothing a host sends is trusted: a greeting with the wrong size, region,
 * pid or uid is refused and the connection closed.
 * Signal context: NO.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "assafe.h"
#include "flusher.h"
#include "handoff.h"
#include "ingest_text.h"
#include "symbolize.h"

#define GREETING_MS 3000 /* a connection that says nothing is dropped after this */
#define MAX_CLIENTS 4096
#define FD_RESERVE 24 /* descriptors kept free for the sinks, the spool and libcurl */

static long fd_limit(void)
{
    static long limit;
    struct rlimit r;
    if (!limit)
        limit = getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < 1L << 30 ? (long)r.rlim_cur : 1L << 30;
    return limit;
}

/* The delivery thread walks the list under the lock: it grows under it. */
static int add(struct flusher *f, struct client *c)
{
    int r = 0;
    pthread_mutex_lock(&f->clients_mu);
    if (f->nclients == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct client **n = cap <= MAX_CLIENTS ? realloc(f->clients, cap * sizeof *n) : NULL;
        if (n) {
            f->clients = n;
            f->cap = cap;
        } else {
            r = -1;
        }
    }
    if (r == 0)
        f->clients[f->nclients++] = c;
    pthread_mutex_unlock(&f->clients_mu);
    return r;
}

static struct client *client_new(int sock, pid_t pid)
{
    struct client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->host_fd = -1;
    c->sock = sock;
    c->pid = pid;
    c->accepted_ms = tattle__now_monotonic_ms();
    return c;
}

static void stop_waker(struct client *c)
{
    if (!c->has_waker)
        return;
    atomic_store(&c->stop_waker, 1);
    atomic_fetch_add(&c->shm->bell_futex, 1);
    tattle__futex_wake((volatile uint32_t *)&c->shm->bell_futex);
    pthread_join(c->waker, NULL);
    c->has_waker = 0;
}

static void client_free(struct client *c)
{
    stop_waker(c);
    if (c->shm)
        munmap(c->shm, sizeof *c->shm);
    if (c->sock >= 0)
        close(c->sock);
    if (c->host_fd >= 0)
        close(c->host_fd);
    tattle__ingest_text_free(c->text);
    tattle__symbolizer_close(c->sym);
    free(c);
}

/* Is pid a flusher that still runs (this executable, not a zombie, not a
 * recycled pid)? A process we may not look at is not one of ours: our
 * user's flushers are ours to inspect (root's, root's). */
static int flusher_runs(pid_t pid)
{
    char path[64], exe[PATH_MAX], self[PATH_MAX];
    ssize_t n, m;
    if (pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH))
        return 0;
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    n = readlink(path, exe, sizeof exe - 1);
    if (n < 0)
        return 0;
    m = readlink("/proc/self/exe", self, sizeof self - 1);
    return m == n && !memcmp(exe, self, (size_t)n);
}

/* One flusher per region: the ring has one reader. The first to write its
 * pid serves it; a flusher that died (or never ran here) is replaced. */
static int claim(struct tattle_shm *shm)
{
    int32_t me = getpid(), cur = 0;
    int i;
    for (i = 0; i < 4; i++) {
        if (atomic_compare_exchange_strong(&shm->flusher_pid, &cur, me) || cur == me)
            return 1;
        if (flusher_runs(cur))
            return 0;
    }
    return 0;
}

static void unclaim(struct tattle_shm *shm)
{
    int32_t me = getpid();
    atomic_compare_exchange_strong(&shm->flusher_pid, &me, 0);
}

/* The region is mapped and ours: tell the host how it is served. */
static void attached(struct flusher *f, struct client *c)
{
    tattle__flusher_clamp_header(c->shm);
    atomic_store(&c->shm->spooled_gen, atomic_load(&f->spooled_gen));
    atomic_store(&c->shm->delivered_gen, atomic_load(&f->spooled_gen));
    if (f->delivery || f->sentry)
        atomic_store(&c->shm->http_enabled, 1);
    c->text = tattle__ingest_text_new(&f->cfg, c->shm);
    /* A problem that stands (the sinks are failing) was said to the hosts
     * of its time; a host that joins now hears it too. */
    if ((f->commit_failed || f->spool_err) && f->last_notice[0]) {
        snprintf(c->shm->notice, sizeof c->shm->notice, "%s", f->last_notice);
        atomic_fetch_add_explicit(&c->shm->notice_seq, 1, memory_order_release);
    }
}

static ino_t region_inode(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

int tattle__clients_inherit(struct flusher *f)
{
    struct tattle_shm *shm = tattle__shm_attach(TATTLE_FLUSHER_FD_SHM);
    struct client *c;
    if (!shm || !(c = client_new(TATTLE_FLUSHER_FD_SOCK, shm->host_pid))) {
        if (shm)
            munmap(shm, sizeof *shm);
        return -1;
    }
    if (!claim(shm)) { /* another flusher serves it */
        munmap(shm, sizeof *shm);
        free(c);
        return -1;
    }
    c->shm = shm;
    c->region_ino = region_inode(TATTLE_FLUSHER_FD_SHM);
    close(TATTLE_FLUSHER_FD_SHM); /* the mapping keeps the region */
    c->host_fd = fcntl(TATTLE_FLUSHER_FD_HOST, F_GETFD) >= 0 ? TATTLE_FLUSHER_FD_HOST : -1;
    if (add(f, c) != 0) {
        client_free(c);
        return -1;
    }
    attached(f, c);
    return 0;
}

void tattle__clients_accept(struct flusher *f)
{
    for (;;) {
        struct ucred cr;
        socklen_t len = sizeof cr;
        struct client *c;
        int s = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        /* Each host holds a socket and a pidfd; the sinks, the spool and
         * libcurl need descriptors too: a host that would leave fewer than
         * FD_RESERVE free is refused (it starts a flusher of its own). */
        if (s >= 0 && s + 2 + FD_RESERVE >= fd_limit()) {
            close(s);
            continue;
        }
        if (s < 0 && (errno == EMFILE || errno == ENFILE) && f->spare_fd >= 0) {
            /* No descriptor left: refuse the host (it starts a flusher of
             * its own) rather than leave it queued, which would wake this
             * loop forever. */
            close(f->spare_fd);
            s = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (s >= 0)
                close(s);
            f->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
            if (s < 0)
                return; /* nothing was waiting: accept says EMFILE before it looks */
            continue;
        }
        if (s < 0)
            return;
        /* Only our own effective uid: another user's events never reach
         * this flusher (nor this user's key theirs). */
        if (getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 || cr.uid != geteuid() || cr.pid <= 0 ||
            !(c = client_new(s, cr.pid))) {
            close(s);
            continue;
        }
        if (add(f, c) != 0)
            client_free(c); /* closes s */
    }
}

/* Is fd a pidfd of pid? (/proc/self/fdinfo says.) */
static int pidfd_of(int fd, pid_t pid)
{
    char path[64], buf[512], *p;
    size_t n;
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    n = tattle__read_file(path, buf, sizeof buf - 1);
    buf[n] = 0;
    p = strstr(buf, "\nPid:");
    return p && strtol(p + 5, NULL, 10) == (long)pid;
}

/* The host (pid and region) this flusher already serves, if c is it again:
 * it closed its descriptors, or gave up waiting, and joined anew. */
static struct client *served(struct flusher *f, const struct client *c, ino_t ino)
{
    for (size_t i = 0; i < f->nclients; i++)
        if (f->clients[i] != c && f->clients[i]->shm && f->clients[i]->pid == c->pid &&
            f->clients[i]->region_ino == ino && !f->clients[i]->host_gone)
            return f->clients[i];
    return NULL;
}

/* known is rung through from's socket from now on; from is forgotten. */
static void adopt_socket(struct flusher *f, struct client *known, struct client *from, int *pidfd)
{
    (void)f;
    stop_waker(known);
    if (known->sock >= 0)
        close(known->sock);
    known->sock = from->sock;
    from->sock = -1;
    if (pidfd && known->host_fd < 0) {
        known->host_fd = *pidfd;
        *pidfd = -1;
    }
    atomic_store(&known->shm->flusher_polling, 0);
    from->host_gone = 1;
}

/* The greeting: the region's memfd and a pidfd. 0 when the host is now
 * served, -1 when it was refused. */
static int greeting(struct flusher *f, struct client *c)
{
    struct tattle_hello hello;
    struct iovec iov = {&hello, sizeof hello};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(4 * sizeof(int))];
    } ctl;
    struct msghdr msg = {0};
    struct cmsghdr *cm;
    int fds[4] = {-1, -1, -1, -1}, nfds = 0, i;
    struct tattle_shm *shm = NULL;
    char answer = 'n';
    int answer_sock = c->sock; /* c's socket, even once a known host adopts it */
    ssize_t n;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl.buf;
    msg.msg_controllen = sizeof ctl.buf;
    n = recvmsg(c->sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    for (cm = CMSG_FIRSTHDR(&msg); n >= 0 && cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            for (i = 0; nfds < 4 && (size_t)i < (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                memcpy(&fds[nfds++], CMSG_DATA(cm) + (size_t)i * sizeof(int), sizeof(int));
    if (n == (ssize_t)sizeof hello && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) && nfds >= 1 &&
        hello.magic == TATTLE_SHM_MAGIC && hello.version == TATTLE_SHM_VERSION &&
        (shm = tattle__shm_attach(fds[0])) != NULL && shm->host_pid == c->pid && claim(shm)) {
        struct client *known = served(f, c, region_inode(fds[0]));
        if (known) { /* a host we serve came back through a new socket */
            munmap(shm, sizeof *shm);
            shm = NULL;
            adopt_socket(f, known, c, nfds >= 2 && pidfd_of(fds[1], c->pid) ? &fds[1] : NULL);
            answer = TATTLE_HELLO_ACK;
        } else {
            c->region_ino = region_inode(fds[0]);
            if (nfds >= 2 && pidfd_of(fds[1], c->pid)) {
                c->host_fd = fds[1];
                fds[1] = -1;
            }
            /* The delivery thread walks the hosts' regions under the lock. */
            pthread_mutex_lock(&f->clients_mu);
            c->shm = shm;
            pthread_mutex_unlock(&f->clients_mu);
            attached(f, c);
            answer = TATTLE_HELLO_ACK;
        }
    } else if (shm) {
        /* A region that names another pid (a host in another pid namespace
         * starts its own flusher), or one another flusher serves, or a lie. */
        munmap(shm, sizeof *shm);
    }
    for (i = 0; i < nfds; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (send(answer_sock, &answer, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1 && answer == TATTLE_HELLO_ACK && c->shm) {
        /* The host gave up waiting (and starts a flusher of its own on the
         * region): it must not be served twice. */
        unclaim(c->shm);
        pthread_mutex_lock(&f->clients_mu);
        munmap(c->shm, sizeof *c->shm);
        c->shm = NULL;
        pthread_mutex_unlock(&f->clients_mu);
        answer = 'n';
    }
    if (answer != TATTLE_HELLO_ACK || !c->shm)
        c->host_gone = 1;
    return c->shm ? 0 : -1;
}

/* Does the host still map our region? After an exec it does not; after
 * closing every descriptor it had (as daemons do) it still does. A host we
 * may not look at (not dumpable) is taken to, while it lives: its pidfd or
 * kill() says when it is gone. */
static int host_still_maps_region(const struct client *c)
{
    char path[64], line[512];
    unsigned long ino;
    int found = 0;
    FILE *maps;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)c->pid);
    if (!(maps = fopen(path, "re")))
        return errno == EACCES || errno == EPERM ? !(kill(c->pid, 0) != 0 && errno == ESRCH) : 0;
    while (!found && fgets(line, sizeof line, maps))
        found = sscanf(line, "%*s %*s %*s %*s %lu", &ino) == 1 && ino == (unsigned long)c->region_ino &&
                strstr(line, "/memfd:") != NULL;
    fclose(maps);
    return found;
}

/* While a host that closed its doorbell lives: sleep on its futex, and
 * wake the loop when it rings. */
static void *waker_main(void *arg)
{
    struct client *c = arg;
    while (!atomic_load(&c->stop_waker)) {
        uint32_t seen = atomic_load(&c->shm->bell_futex);
        char b = 1;
        if (atomic_load(&c->stop_waker))
            break;
        tattle__futex_wait((volatile uint32_t *)&c->shm->bell_futex, seen, 1000);
        if (atomic_load(&c->shm->bell_futex) != seen && write(c->wake_fd, &b, 1) < 0)
            continue; /* the pipe is full: the loop is awake anyway */
    }
    return NULL;
}

/* The doorbell hung up. An exec or exit means the host is gone; a host
 * that closed its descriptors is still there, and from now on it rings
 * the futex in the shared region instead (it sees flusher_polling). */
static void doorbell_closed(struct flusher *f, struct client *c)
{
    if (!host_still_maps_region(c)) {
        c->host_gone = 1;
        return;
    }
    close(c->sock);
    c->sock = -1;
    c->wake_fd = f->wake[1];
    c->has_waker = pthread_create(&c->waker, NULL, waker_main, c) == 0;
    atomic_store(&c->shm->flusher_polling, 1);
}

void tattle__clients_socket_event(struct flusher *f, struct client *c, short revents)
{
    char buf[256];
    if (!c->shm) {
        if ((revents & POLLIN) && greeting(f, c) == 0)
            return;
        c->host_gone = 1;
        return;
    }
    if (revents & POLLIN)
        while (recv(c->sock, buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
    if (revents & (POLLHUP | POLLERR))
        doorbell_closed(f, c);
}

void tattle__clients_check_alive(struct flusher *f)
{
    uint64_t now = tattle__now_monotonic_ms();
    size_t i;
    for (i = 0; i < f->nclients; i++) {
        struct client *c = f->clients[i];
        if (!c->shm && now - c->accepted_ms > GREETING_MS)
            c->host_gone = 1;
        else if (c->shm && c->host_fd < 0 && kill(c->pid, 0) != 0 && errno == ESRCH)
            c->host_gone = 1;
    }
}

void tattle__clients_reap(struct flusher *f)
{
    size_t i = 0;
    while (i < f->nclients) {
        struct client *c = f->clients[i];
        if (!c->host_gone || tattle__flusher_work_left(c)) {
            i++;
            continue;
        }
        pthread_mutex_lock(&f->clients_mu);
        f->clients[i] = f->clients[--f->nclients];
        pthread_mutex_unlock(&f->clients_mu);
        client_free(c);
    }
}

void tattle__clients_free_all(struct flusher *f)
{
    size_t i;
    for (i = 0; i < f->nclients; i++)
        client_free(f->clients[i]);
    f->nclients = 0;
    free(f->clients);
    f->clients = NULL;
}
