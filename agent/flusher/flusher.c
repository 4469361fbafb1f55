/* flusher.c - the tattle-flusher process: its loop and its lifetime.
 *
 * Owns: the loop that serves hosts (clients.c) and turns their records into
 * events (pipeline.c), the delivery thread's start, and when to exit. A
 * flusher is either shared (started with the rendezvous socket as fd 6: it
 * serves every process of its user and configuration that joins, and
 * exits once none has joined for TATTLE_LINGER_MS) or private (started by
 * one host with its region, doorbell and pidfd as fds 3-5, when the shared
 * one cannot be had: it exits once that host is gone and served). Either
 * way, once nothing is left to serve, delivery gets the linger window
 * before the process exits. Started with --send-spool it has no host: it
 * only sends the batches earlier processes left, then exits (--status and
 * --flush are for the tattle command, admin.c). It runs without
 * LD_PRELOAD, in its own session, with stdio on /dev/null, never as a
 * child any host can see.
 * Signal context: NO. This is an ordinary program.
 */
#include <errno.h>
#include <malloc.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>

#include "admin.h"
#include "assafe.h"
#include "config.h"
#include "delivery.h"
#include "transport_posthog.h"
#include "transport_sentry.h"
#include "settings.h"
#include "flusher.h"
#include "handoff.h"
#include "shm.h"
#include "spool.h"
#include "statedir.h"
#include "symbolize.h"

static void detach_from_host_signals(void)
{
    sigset_t none;
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* The terminal's ^C and ^\ go to the host's process group; we left it
     * with setsid, but ignore them anyway until the work is done. */
    sigaction(SIGINT, &ign, NULL);
    sigaction(SIGQUIT, &ign, NULL);
    sigaction(SIGPIPE, &ign, NULL);
    sigaction(SIGHUP, &ign, NULL);
}

/* Its loader names this symbol to any copy of libtattle.so that
 * /etc/ld.so.preload puts into this process: that copy stays inert, so a
 * flusher never runs the agent inside itself. */
__attribute__((used, visibility("default"))) const int tattle_flusher_process = 1;

/* No core file: the API key would be in it (and the host's stack copy).
 * Started by a privileged host (TATTLE_SECURE=1, euid 0) it is also not
 * dumpable (no ptrace, /proc/PID/fd, mem or environ for the invoking user)
 * and takes the effective ids as its real ones, so that user can neither
 * signal nor inspect it. An ordinary flusher stays inspectable by its own
 * user, who can read the host's memory, key included, anyway. */
static void protect_self(void)
{
    struct rlimit none = {0, 0};
    const char *sec = getenv("TATTLE_SECURE");
    setrlimit(RLIMIT_CORE, &none);
    if (sec && !strcmp(sec, "1") && geteuid() == 0) {
        gid_t g = getegid();
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        if (setresgid(g, g, g) != 0 || setresuid(0, 0, 0) != 0)
            _exit(1);
    }
}

static uint32_t pass_started(void *arg)
{
    struct flusher *f = arg;
    return atomic_load(&f->spooled_gen);
}

/* Every host waiting in tattle_flush for a pass up to gen may go on. */
static void pass_done(void *arg, uint32_t gen)
{
    struct flusher *f = arg;
    size_t i;
    pthread_mutex_lock(&f->clients_mu);
    for (i = 0; i < f->nclients; i++) {
        struct tattle_shm *shm = f->clients[i]->shm;
        if (!shm)
            continue;
        atomic_store(&shm->delivered_gen, gen);
        tattle__futex_wake((volatile uint32_t *)&shm->delivered_gen);
    }
    pthread_mutex_unlock(&f->clients_mu);
}

/* With POSTHOG_API_KEY: the spool and the thread that sends it. */
static void start_delivery(struct flusher *f)
{
    const char *key = tattle__config_api_key();
    struct tattle_delivery_hooks hooks = {tattle__flusher_notice, pass_started, pass_done, f};
    char msg[256];
    int r;
    if (!f->cfg.http_enabled || !key)
        return;
    r = f->cfg.spool_dir[0] ? tattle__spool_open(&f->spool, f->cfg.spool_dir, f->cfg.spool_max_bytes) : -ENOENT;
    if (r != 0) {
        snprintf(msg, sizeof msg, "cannot use the spool directory %.160s (%s); nothing is sent",
                 f->cfg.spool_dir[0] ? f->cfg.spool_dir : "(set TATTLE_SPOOL_DIR)", tattle__state_strerror(-r));
        f->spool_err = r;
        tattle__flusher_notice(f, msg);
        return;
    }
    f->spool_dropped = tattle__spool_take_dropped(&f->spool);
    /* While it runs, processes that start find the queue's sender lock
     * taken and start no sender of their own. */
    (void)tattle__spool_lock_sender(&f->spool);
    f->delivery = tattle__delivery_start(&f->cfg, &f->spool, &tattle__posthog_transport,
                                         tattle__posthog_open(f->cfg.posthog_host, key), &hooks);
    if (!f->delivery)
        tattle__flusher_notice(f, "cannot start HTTP delivery (libcurl); nothing is sent");
    for (size_t i = 0; f->delivery && i < f->nclients; i++)
        atomic_store(&f->clients[i]->shm->http_enabled, 1);
}

/* With SENTRY_DSN: its queue and the thread that sends it. tattle_flush
 * waits for Sentry's passes when it is the only server. */
static void start_sentry(struct flusher *f)
{
    struct tattle_delivery_hooks hooks = {tattle__flusher_notice, NULL, NULL, f};
    char msg[256];
    int r;
    if (!f->cfg.sentry_enabled)
        return;
    if (!f->delivery) {
        hooks.pass_started = pass_started;
        hooks.pass_done = pass_done;
    }
    r = f->cfg.sentry_spool_dir[0]
            ? tattle__spool_open(&f->sentry_spool, f->cfg.sentry_spool_dir, f->cfg.spool_max_bytes)
            : -ENOENT;
    if (r != 0) {
        snprintf(msg, sizeof msg, "cannot use the spool directory %.160s (%s); nothing is sent to Sentry",
                 f->cfg.sentry_spool_dir[0] ? f->cfg.sentry_spool_dir : "(set TATTLE_SPOOL_DIR)",
                 tattle__state_strerror(-r));
        tattle__flusher_notice(f, msg);
        return;
    }
    (void)tattle__spool_lock_sender(&f->sentry_spool);
    f->sentry = tattle__delivery_start(&f->cfg, &f->sentry_spool, &tattle__sentry_transport,
                                       tattle__sentry_open(tattle__setting("SENTRY_DSN")), &hooks);
    if (!f->sentry)
        tattle__flusher_notice(f, "cannot start delivery to Sentry (libcurl); nothing is sent there");
    for (size_t i = 0; f->sentry && i < f->nclients; i++)
        atomic_store(&f->clients[i]->shm->http_enabled, 1);
}

/* Started with --send-spool by a process that found batches waiting when
 * it loaded: send them for at most the linger window, then exit. It has no
 * host to serve (no region, no doorbell), leaves the dropped-events count
 * to a flusher that has events to carry it, and runs one at a time per
 * spool. */
/* Is descriptor 3 the sender lock of this queue, handed over by our host? */
static int lock_handed(const struct tattle_spool *s)
{
    struct stat mine, handed;
    return fstat(TATTLE_FLUSHER_FD_SHM, &handed) == 0 && S_ISREG(handed.st_mode) &&
           fstatat(s->dirfd, ".sender.lock", &mine, AT_SYMLINK_NOFOLLOW) == 0 && mine.st_ino == handed.st_ino &&
           mine.st_dev == handed.st_dev;
}

static int send_spool_only(struct flusher *f)
{
    const char *key = tattle__config_api_key();
    struct tattle_delivery_hooks none = {0};
    struct tattle_delivery *d = NULL, *s = NULL;
    /* Our host took the sender lock of a queue with batches and handed it
     * over as fd 3; each other queue's we take if it is free. */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (f->cfg.http_enabled && key && f->cfg.spool_dir[0] &&
        tattle__spool_open(&f->spool, f->cfg.spool_dir, f->cfg.spool_max_bytes) == 0 &&
        (lock_handed(&f->spool) || tattle__spool_lock_sender(&f->spool)))
        d = tattle__delivery_start(&f->cfg, &f->spool, &tattle__posthog_transport,
                                   tattle__posthog_open(f->cfg.posthog_host, key), &none);
    if (f->cfg.sentry_enabled && f->cfg.sentry_spool_dir[0] &&
        tattle__spool_open(&f->sentry_spool, f->cfg.sentry_spool_dir, f->cfg.spool_max_bytes) == 0 &&
        (lock_handed(&f->sentry_spool) || tattle__spool_lock_sender(&f->sentry_spool)))
        s = tattle__delivery_start(&f->cfg, &f->sentry_spool, &tattle__sentry_transport,
                                   tattle__sentry_open(tattle__setting("SENTRY_DSN")), &none);
    if (d)
        tattle__delivery_finish(d, f->cfg.linger_ms, NULL);
    if (s)
        tattle__delivery_finish(s, d ? 0 : f->cfg.linger_ms, NULL);
    curl_global_cleanup();
    return 0;
}

/* How long the loop may sleep for this host. A record being written or a
 * ring slot not yet published is the host's to finish (it rings when it
 * has): look again soon, but never spin, and always look at the host's
 * pidfd, so that a host that dies mid-record is noticed within 10 ms. */
static int wait_ms(const struct client *c)
{
    uint32_t cs;
    if (!c->shm)
        return 100; /* its greeting is due */
    cs = atomic_load(&c->shm->crash.state);
    if (cs == TATTLE_CRASH_READY)
        return 0;
    if (cs == TATTLE_CRASH_WRITING || tattle__ring_pending(&c->shm->ring))
        return 10;
    /* A host that captured lately rings only now and then (shm.h). */
    if (c->active_ms && tattle__now_monotonic_ms() - c->active_ms < TATTLE_ACTIVE_MS)
        return TATTLE_POLL_MS;
    return 1000;
}

static void set_look_by(struct flusher *f, uint64_t when_ns)
{
    for (size_t i = 0; i < f->nclients; i++)
        if (f->clients[i]->shm)
            atomic_store(&f->clients[i]->shm->look_by_ns, when_ns);
}

static void set_sleeping(struct flusher *f, uint32_t v)
{
    for (size_t i = 0; i < f->nclients; i++)
        if (f->clients[i]->shm)
            atomic_store(&f->clients[i]->shm->flusher_sleeping, v);
    atomic_thread_fence(memory_order_seq_cst);
}

/* Sleep until a host rings, hangs up, dies or joins, at most timeout_ms. */
static void wait_for_work(struct flusher *f, int timeout_ms)
{
    static struct pollfd *p;
    static size_t cap;
    size_t n = f->nclients, i;
    char buf[64];
    if (2 * n + 2 > cap) {
        struct pollfd *q = realloc(p, (2 * n + 2) * sizeof *q);
        if (!q) {
            poll(NULL, 0, 10);
            return;
        }
        p = q;
        cap = 2 * n + 2;
    }
    p[0] = (struct pollfd){f->listen_fd, POLLIN, 0};
    p[1] = (struct pollfd){f->wake[0], POLLIN, 0};
    /* Asleep first (with no promise to look: a host that publishes now
     * rings), then look at the rings: a record published before a host
     * could see us asleep is seen here (both sides fence). */
    set_look_by(f, 0);
    set_sleeping(f, 1);
    for (i = 0; i < n; i++) {
        struct client *c = f->clients[i];
        int ms = wait_ms(c);
        if (ms < timeout_ms)
            timeout_ms = ms;
        p[2 + 2 * i] = (struct pollfd){c->sock, POLLIN, 0};
        p[3 + 2 * i] = (struct pollfd){c->host_fd, POLLIN, 0};
    }
    /* When we look again unasked: a host rings only if that is too late. */
    set_look_by(f, tattle__now_realtime_ns() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000u);
    if (poll(p, 2 * n + 2, timeout_ms) > 0) {
        while (read(f->wake[0], buf, sizeof buf) > 0)
            ;
        for (i = 0; i < n; i++) {
            if (p[2 + 2 * i].revents)
                tattle__clients_socket_event(f, f->clients[i], p[2 + 2 * i].revents);
            if (p[3 + 2 * i].revents & POLLIN)
                f->clients[i]->host_gone = 1;
        }
        if (p[0].revents & POLLIN)
            tattle__clients_accept(f);
    }
    tattle__clients_check_alive(f);
    set_sleeping(f, 0);
}

/* A host that rang has most likely begun a burst of captures: reading
 * its ring at once would chase the writer slot by slot, each cache line
 * crossing between cores over and over (a capture then costs several
 * times what it does alone). A moment's wait lets the burst finish first.
 * Not while a crash waits, a ring is a quarter full, or a host is gone. */
#define BURST_WAIT_US 250

static void let_bursts_finish(struct flusher *f)
{
    struct timespec ts = {0, BURST_WAIT_US * 1000};
    int any = 0;
    for (size_t i = 0; i < f->nclients; i++) {
        struct client *c = f->clients[i];
        uint64_t used;
        if (!c->shm)
            continue;
        if (c->host_gone || atomic_load(&c->shm->crash.state) != TATTLE_CRASH_IDLE)
            return;
        used = atomic_load(&c->shm->ring.head) - atomic_load(&c->shm->ring.tail);
        if (used > TATTLE_RING_SLOTS / 4)
            return;
        any |= used > 0;
    }
    if (any)
        nanosleep(&ts, NULL);
}

/* One round: every host's events, then its crash (events captured before
 * a crash go before it), then everything to the sinks. */
static void serve(struct flusher *f)
{
    for (size_t i = 0; i < f->nclients; i++) {
        struct client *c = f->clients[i];
        if (!c->shm)
            continue;
        tattle__flusher_drain(f, c);
        tattle__flusher_crash(f, c);
    }
    tattle__flusher_publish(f);
    tattle__clients_reap(f);
}

/* The flusher never preempts a host it wakes (SCHED_BATCH: no wake-up
 * preemption): a host that rings in the middle of a burst of captures
 * keeps its CPU, and the flusher reads the ring when a CPU is free. A
 * crashing host waits for it, so nothing competes then. Its threads
 * inherit it. */
static void yield_to_hosts(void)
{
    struct sched_param none = {0};
    (void)sched_setscheduler(0, SCHED_BATCH, &none);
}

/* Each host costs a socket and a pidfd: as many descriptors as the hard
 * limit allows, not the soft limit of whichever host started us. */
static void room_for_hosts(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < r.rlim_max) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

/* fd 6 is a listening socket: we are the shared flusher. */
static int rendezvous_fd(void)
{
    int on = 0;
    socklen_t len = sizeof on;
    if (getsockopt(TATTLE_FLUSHER_FD_LISTEN, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) != 0 || !on)
        return -1;
    fcntl(TATTLE_FLUSHER_FD_LISTEN, F_SETFD, FD_CLOEXEC);
    fcntl(TATTLE_FLUSHER_FD_LISTEN, F_SETFL, O_NONBLOCK);
    return TATTLE_FLUSHER_FD_LISTEN;
}

#define IDLE_GRACE_MS 100 /* a shared flusher with nothing to do waits this long for the next host */

/* Serve until nothing is left: a private flusher until its host is gone;
 * a shared one until no host has joined for a moment and nothing waits to
 * be sent (or the linger window has passed since its last host left). One
 * that has served nobody yet first gives the host that started it time to
 * join. A flusher with nothing to do never lingers: programs that wait for
 * every descendant (strace -f, a service manager) wait no longer than
 * without a shared flusher. */
static void run(struct flusher *f)
{
    uint64_t idle_since = 0;
    static int served;
    for (;;) {
        int idle_ms = 1000;
        serve(f);
        if (!f->nclients) {
            uint64_t now = tattle__now_monotonic_ms(), limit;
            int sending = (f->delivery && !tattle__delivery_idle(f->delivery)) ||
                          (f->sentry && !tattle__delivery_idle(f->sentry));
            if (f->listen_fd < 0)
                break;
            if (!idle_since)
                idle_since = now;
            limit = !served ? 3000 : sending ? (uint64_t)f->cfg.linger_ms
                                             : (uint64_t)(f->cfg.linger_ms < IDLE_GRACE_MS ? f->cfg.linger_ms
                                                                                           : IDLE_GRACE_MS);
            if (now - idle_since >= limit)
                break;
            idle_ms = (int)(limit - (now - idle_since));
            if (sending && idle_ms > 50)
                idle_ms = 50; /* look again whether delivery has finished */
        } else {
            idle_since = 0;
            served = 1;
        }
        wait_for_work(f, idle_ms);
        let_bursts_finish(f);
    }
}

/* Would our exit leave a zombie for good? Orphans go to PID 1 (or a
 * subreaper, which adopts in order to reap). In the first pid namespace
 * PID 1 is an init that reaps; in a container it may be the application,
 * and one that neither catches, ignores (the kernel then reaps) nor waits
 * with blocked SIGCHLD never reaps what it did not start. */
static int exit_would_leave_zombie(void)
{
    char buf[4096], *p;
    unsigned long long mask = 0;
    struct stat st;
    size_t n;
    if (getppid() != 1 || stat("/proc/self/ns/pid", &st) != 0 || st.st_ino == 0xEFFFFFFCu /* the first */)
        return 0;
    n = tattle__read_file("/proc/1/status", buf, sizeof buf - 1);
    buf[n] = 0;
    for (size_t i = 0; i < 3; i++) {
        static const char *const masks[] = {"\nSigBlk:", "\nSigIgn:", "\nSigCgt:"};
        if ((p = strstr(buf, masks[i])) != NULL)
            mask |= strtoull(p + strlen(masks[i]), NULL, 16);
    }
    return n > 0 && !(mask & (1ull << (SIGCHLD - 1)));
}

/* Under a PID 1 that never reaps: stay, idle (caches dropped) and still
 * serving whoever joins, until PID 1 exits and takes the container with
 * it. An idle process costs less than a zombie that lasts as long. */
static void outlive_a_parent_that_never_reaps(struct flusher *f)
{
    while (exit_would_leave_zombie()) {
        struct pollfd p = {f->listen_fd, POLLIN, 0};
        tattle__symbolizer_forget_files();
        malloc_trim(0);
        if (poll(&p, 1, 60000) > 0 && (p.revents & POLLIN)) {
            tattle__clients_accept(f);
            run(f);
        }
    }
}

int main(int argc, char **argv)
{
    static struct flusher f;
    int shared;
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_STATUS))
        return tattle__admin_status();
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_FLUSH))
        return tattle__admin_flush();
    protect_self();
    detach_from_host_signals();
    tattle__config_load(&f.cfg, TATTLE_CONFIG_FLUSHER);
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_SEND_SPOOL))
        return send_spool_only(&f);
    pthread_mutex_init(&f.clients_mu, NULL);
    room_for_hosts();
    yield_to_hosts();
    f.spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    f.listen_fd = rendezvous_fd();
    shared = f.listen_fd >= 0;
    if (tattle__clients_inherit(&f) != 0 && !shared)
        return 1;
    if (pipe2(f.wake, O_CLOEXEC | O_NONBLOCK) != 0)
        return 1;
    /* libcurl (and the TLS library under it, megabytes of it resident
     * once initialised) only for a flusher that sends: one that writes the
     * local file never initialises it. */
    if (f.cfg.http_enabled || f.cfg.sentry_enabled)
        curl_global_init(CURL_GLOBAL_DEFAULT);
    start_delivery(&f);
    start_sentry(&f);
    run(&f);
    outlive_a_parent_that_never_reaps(&f);
    /* No host joins any more: the name is free for the next flusher, while
     * this one delivers what it holds. */
    if (shared)
        close(f.listen_fd);
    f.listen_fd = -1;
    if (f.delivery && f.spool_dropped)
        tattle__spool_save_dropped(&f.spool, f.spool_dropped);
    {
        /* One linger window for both destinations, not one each. */
        uint64_t until = tattle__now_monotonic_ms() + (uint64_t)(shared ? 0 : f.cfg.linger_ms);
        if (f.delivery)
            tattle__delivery_finish(f.delivery, shared ? 0 : f.cfg.linger_ms, NULL);
        if (f.sentry) {
            uint64_t now = tattle__now_monotonic_ms();
            tattle__delivery_finish(f.sentry, now < until ? (int)(until - now) : 0, NULL);
        }
    }
    free(f.sentry_batch);
    tattle__clients_free_all(&f);
    tattle__symbolizer_forget_files();
    free(f.batch);
    curl_global_cleanup(); /* nothing, when libcurl was never loaded */
    return 0;
}
