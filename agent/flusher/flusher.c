/* flusher.c - the tattle-flusher process: its loop and its lifetime.
 *
 * Owns: attaching to the host's shared region (fd 3), the doorbell socket
 * (fd 4) and the host's pidfd (fd 5); turning a crash record into an event
 * and a report (unwind, symbolize, build, commit, then tell the waiting
 * handler); draining the ring into batches; committing each batch to the
 * local file and, with a server configured, to the spool that the delivery
 * thread sends from; and, once the host is gone (exit, crash, kill or exec)
 * and nothing is left to do, lingering for delivery (TATTLE_LINGER_MS)
 * before exiting. A host that closed the doorbell but lives on is served
 * by polling. Started with --send-spool it has no host: it only sends the
 * batches earlier processes left, then exits (--status and --flush are
 * for the tattle command, admin.c). It runs without LD_PRELOAD,
 * in its own session, with stdio on /dev/null, never as a child the host
 * can see.
 * Signal context: NO. This is an ordinary program.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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
#include "event.h"
#include "handoff.h"
#include "ingest.h"
#include "ingest_text.h"
#include "report.h"
#include "shm.h"
#include "sink_file.h"
#include "spool.h"
#include "statedir.h"
#include "symbolize.h"
#include "transport_posthog.h"
#include "unwind.h"

struct flusher {
    struct tattle_config cfg;
    struct tattle_shm *shm;
    int sock;    /* the doorbell, or -1 once the host closed it */
    int host_fd; /* pidfd, or -1 */
    int host_gone;
    int spool_err; /* why the spool could not be used (-errno), or 0 */
    struct tattle_symbolizer *sym; /* the host's modules, for handled exceptions */
    struct tattle_ingest_text *text; /* the fast path for plain events, or NULL */
    char *batch;                   /* JSON lines not yet committed */
    size_t batch_len, batch_cap;
    unsigned batch_count;
    struct tattle_spool spool;
    struct tattle_delivery *delivery; /* NULL without a server */
    unsigned spool_dropped;           /* to report on the next event */
    int commit_failed;                /* the last commit lost events */
};

/* One line for the host's stderr: the host prints it at its next flush,
 * exit or crash. Called from the delivery thread too. */
static void notice(void *arg, const char *msg)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    struct flusher *f = arg;
    pthread_mutex_lock(&mu);
    snprintf(f->shm->notice, sizeof f->shm->notice, "%s", msg);
    atomic_fetch_add_explicit(&f->shm->notice_seq, 1, memory_order_release);
    pthread_mutex_unlock(&mu);
}

/* Physical frames to symbolized frames. libdw flags as activations both the
 * kernel's signal trampoline and the frame it interrupted; a non-initial
 * activation followed by another is the trampoline. */
static void symbolize_pcs(struct tattle_symbolizer *sym, const struct tattle_pcs *pcs, struct tattle_stack *st)
{
    size_t i;
    for (i = 0; i < pcs->n; i++) {
        size_t before = st->n;
        tattle__symbolize(sym, pcs->pc[i], pcs->activation[i], st);
        if (i > 0 && pcs->activation[i] && i + 1 < pcs->n && pcs->activation[i + 1] && st->n > before)
            st->frames[st->n - 1].signal_frame = 1;
    }
    if (!pcs->complete && pcs->n >= TATTLE_MAX_UNWIND)
        st->truncated = 1;
}

/* One notice per run of failed commits, not one per batch. */
static void commit_problem(struct flusher *f, const char *what, const char *where, int err)
{
    char msg[256];
    if (f->commit_failed)
        return;
    if (err)
        snprintf(msg, sizeof msg, "%s %.160s (%s)", what, where, tattle__state_strerror(-err));
    else
        snprintf(msg, sizeof msg, "%s", what);
    notice(f, msg);
}

/* Write the batch to every sink. Returns 0 when it is safe somewhere. */
static int commit(struct flusher *f, int sync)
{
    int file_r = 1, spool_r = 1; /* 1: no such sink */
    unsigned dropped = 0;
    if (!f->batch_count)
        return 0;
    if (f->cfg.file_path[0])
        file_r = tattle__sink_file_append(f->cfg.file_path, f->batch, f->batch_len - 1, sync, f->cfg.file_max_bytes);
    if (f->delivery) {
        spool_r = tattle__spool_write(&f->spool, f->batch, f->batch_len, f->batch_count, &dropped);
        if (spool_r == 0) {
            f->spool_dropped += dropped;
            atomic_fetch_add(&f->shm->spooled_gen, 1);
            tattle__delivery_kick(f->delivery);
        }
    }
    if (file_r < 0)
        commit_problem(f, "cannot write", f->cfg.file_path, file_r);
    if (spool_r < 0)
        commit_problem(f, "cannot write the spool in", f->spool.dir, spool_r);
    if (file_r > 0 && spool_r > 0 && f->spool_err)
        commit_problem(f, "cannot use the spool directory", f->cfg.spool_dir, f->spool_err);
    else if (file_r > 0 && spool_r > 0)
        commit_problem(f, "events have nowhere to go: set TATTLE_FILE (neither $XDG_STATE_HOME nor $HOME is set)"
                          " or POSTHOG_API_KEY", NULL, 0);
    f->commit_failed = file_r != 0 && spool_r != 0;
    f->batch_len = 0;
    f->batch_count = 0;
    return f->commit_failed ? -1 : 0;
}

static void batch_add(struct flusher *f, const char *line, size_t n)
{
    if (f->batch_len + n + 1 > f->batch_cap) {
        size_t cap = (f->batch_len + n + 1) * 2;
        char *b = realloc(f->batch, cap);
        if (!b)
            return;
        f->batch = b;
        f->batch_cap = cap;
    }
    memcpy(f->batch + f->batch_len, line, n);
    f->batch[f->batch_len + n] = '\n';
    f->batch_len += n + 1;
    f->batch_count++;
}

/* Queue one event's JSON line, committing first if the batch is full.
 * Returns 0 when it was queued. */
static int queue_line(struct flusher *f, const char *json, size_t n)
{
    char msg[256];
    if (n > TATTLE_EVENT_MAX_BYTES) {
        snprintf(msg, sizeof msg, "dropped a %zu-byte event: PostHog takes at most about 1 MB", n);
        notice(f, msg);
        return -1;
    }
    if (f->batch_count >= TATTLE_SPOOL_BATCH_EVENTS || f->batch_len + n + 1 > TATTLE_SPOOL_BATCH_BYTES)
        commit(f, 1);
    batch_add(f, json, n);
    return 0;
}

/* Check an event against PostHog's rules, then queue it. Returns 0 when it
 * was queued. */
static int add_event(struct flusher *f, cJSON *ev)
{
    const char *problem = tattle__posthog_event_problem(ev);
    char *json;
    size_t n;
    int r;
    char msg[256];
    if (problem) {
        snprintf(msg, sizeof msg, "dropped an event PostHog would refuse: %s", problem);
        notice(f, msg);
        return -1;
    }
    if (f->spool_dropped) {
        cJSON *props = cJSON_GetObjectItemCaseSensitive(ev, "properties");
        cJSON_AddNumberToObject(props, "$tattle_spool_dropped_events", f->spool_dropped);
        f->spool_dropped = 0;
    }
    json = cJSON_PrintUnformatted(ev);
    if (!json)
        return -1;
    n = strlen(json);
    r = queue_line(f, json, n);
    free(json);
    return r;
}

/* Where the crash event went, for the report. */
static void crash_note(struct flusher *f, int r, char *note, size_t cap)
{
    int k = 0;
    note[0] = 0;
    if (r != 0) {
        snprintf(note, cap, "NOT saved: %s", f->shm->notice);
        return;
    }
    if (f->cfg.file_path[0])
        k = snprintf(note, cap, "written to %.3000s", f->cfg.file_path);
    if (f->delivery && k >= 0 && (size_t)k < cap)
        snprintf(note + k, cap - (size_t)k, "%squeued for %.300s (spool %.300s)", k ? "; " : "", f->cfg.posthog_host_shown,
                 f->spool.dir);
}

/* The shared region is the host's to write, and a host may lie or die
 * mid-write: every length is clamped to its array and every string ends
 * within its own, in the flusher's copy. */
#define TERMINATE(a) ((a)[sizeof(a) - 1] = 0)

static void clamp_header(struct tattle_shm *shm)
{
    if (shm->cmdline_len > TATTLE_CMDLINE_MAX)
        shm->cmdline_len = TATTLE_CMDLINE_MAX;
    TERMINATE(shm->exe);
}

static void clamp_crash(struct tattle_crash *c)
{
    if (c->stack_len > TATTLE_STACK_COPY)
        c->stack_len = TATTLE_STACK_COPY;
    if (c->maps_len > TATTLE_MAPS_MAX)
        c->maps_len = TATTLE_MAPS_MAX;
    if (c->context_len > TATTLE_CONTEXT_MAX)
        c->context_len = TATTLE_CONTEXT_MAX;
    if (c->abort_kind > TATTLE_ABORT_CXX)
        c->abort_kind = TATTLE_ABORT_NONE;
    TERMINATE(c->thread_name);
    TERMINATE(c->abort_msg);
    TERMINATE(c->assert_expr);
    TERMINATE(c->assert_file);
    TERMINATE(c->assert_func);
    TERMINATE(c->cxx_type);
    TERMINATE(c->cxx_what);
}

static void process_crash(struct flusher *f)
{
    struct tattle_crash *shared = &f->shm->crash;
    static struct tattle_crash copy;
    struct tattle_crash *c = &copy;
    struct tattle_symbolizer *sym;
    static struct tattle_pcs pcs;
    struct tattle_stack st = {0};
    cJSON *ev = NULL;
    char note[4200] = "";
    const char *uuid = "";
    uint32_t ready = TATTLE_CRASH_READY;
    if (!atomic_compare_exchange_strong(&shared->state, &ready, TATTLE_CRASH_TAKEN))
        return;
    memcpy(&copy, shared, sizeof copy);
    clamp_crash(c);
    clamp_header(f->shm);
    sym = tattle__symbolizer_open(c->maps, c->maps_len, c->pid);
    if (sym) {
        tattle__unwind_crash(sym, c, &pcs);
        symbolize_pcs(sym, &pcs, &st);
        ev = tattle__event_crash(&f->cfg, f->shm, c, &st, sym);
    }
    if (ev) {
        uuid = cJSON_GetObjectItemCaseSensitive(ev, "uuid")->valuestring;
        commit(f, 1); /* what came before the crash stays before it */
        crash_note(f, add_event(f, ev) == 0 ? commit(f, 1) : -1, note, sizeof note);
    }
    shared->report_len = (uint32_t)tattle__report_format(shared->report, sizeof shared->report, f->shm, c, &st,
                                                         uuid, note);
    atomic_store_explicit(&shared->state, TATTLE_CRASH_DONE, memory_order_release);
    (void)send(f->sock, "d", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    cJSON_Delete(ev);
    tattle__stack_free(&st);
    tattle__symbolizer_close(sym);
}

/* The host's module map, read while it lives (kept after it is gone). */
static struct tattle_symbolizer *host_symbolizer(void *arg)
{
    struct flusher *f = arg;
    static char maps[TATTLE_MAPS_MAX];
    char path[64];
    size_t n;
    if (f->sym)
        return f->sym;
    snprintf(path, sizeof path, "/proc/%d/maps", f->shm->host_pid);
    n = tattle__read_file(path, maps, sizeof maps);
    if (n > 0)
        f->sym = tattle__symbolizer_open(maps, n, f->shm->host_pid);
    return f->sym;
}

/* Records other than crashes arrive through the ring: captures and
 * handled exceptions, each becoming one event. */
static void drain_ring(struct flusher *f)
{
    static unsigned char rec[TATTLE_RING_MAX_RECORD];
    struct tattle_ring *r = &f->shm->ring;
    size_t len;
    while ((len = tattle__ring_get(r, rec, sizeof rec)) > 0) {
        const char *line;
        size_t n;
        cJSON *ev;
        /* Most records take the text path; the rest, and the one that
         * carries the spool's dropped count, are built as a tree. */
        if (f->text && !f->spool_dropped && (n = tattle__ingest_text(f->text, rec, len, &line)) > 0) {
            queue_line(f, line, n);
            continue;
        }
        ev = tattle__ingest(&f->cfg, f->shm, rec, len, host_symbolizer, f);
        if (ev)
            add_event(f, ev);
        cJSON_Delete(ev);
    }
    commit(f, 1);
    if (f->host_gone && tattle__ring_pending(r))
        tattle__ring_skip_abandoned(r);
    atomic_store(&f->shm->sunk_pos, atomic_load(&r->tail));
    atomic_fetch_add(&f->shm->sunk_futex, 1);
    tattle__futex_wake((volatile uint32_t *)&f->shm->sunk_futex);
}

static int work_left(struct flusher *f)
{
    uint32_t cs = atomic_load(&f->shm->crash.state);
    if (cs == TATTLE_CRASH_READY)
        return 1;
    if (cs == TATTLE_CRASH_WRITING && !f->host_gone)
        return 1;
    return tattle__ring_pending(&f->shm->ring) && !f->host_gone;
}

/* Does the host still map our region? After an exec it does not; after
 * closing every descriptor it had (as daemons do) it still does. */
static int host_still_maps_region(const struct flusher *f)
{
    struct stat st;
    char path[64], line[512];
    unsigned long ino;
    int found = 0;
    FILE *maps;
    if (fstat(TATTLE_FLUSHER_FD_SHM, &st) != 0)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/maps", (int)f->shm->host_pid);
    if (!(maps = fopen(path, "r")))
        return 0;
    while (!found && fgets(line, sizeof line, maps))
        found = sscanf(line, "%*s %*s %*s %*s %lu", &ino) == 1 && ino == (unsigned long)st.st_ino &&
                strstr(line, "/memfd:") != NULL;
    fclose(maps);
    return found;
}

/* The doorbell hung up. An exec or exit means the host is gone; a host
 * that closed its descriptors is still there, and from now on it rings
 * the futex in the shared region instead (it sees flusher_polling). */
static void doorbell_closed(struct flusher *f)
{
    if (!host_still_maps_region(f)) {
        f->host_gone = 1;
        return;
    }
    close(f->sock);
    f->sock = -1;
    atomic_store(&f->shm->flusher_polling, 1);
}

/* How long to sleep before looking again. A record being written or a
 * ring slot not yet published is the host's to finish (it rings when it
 * has): look again soon, but never spin, and always look at the host's
 * pidfd, so that a host that dies mid-record is noticed within 10 ms. */
static int wait_ms(struct flusher *f)
{
    uint32_t cs = atomic_load(&f->shm->crash.state);
    if (cs == TATTLE_CRASH_READY)
        return 0;
    if (cs == TATTLE_CRASH_WRITING || tattle__ring_pending(&f->shm->ring))
        return 10;
    return 1000;
}

/* Without the socket: sleep on the futex and look at the host's pidfd in
 * between. */
static void wait_on_futex(struct flusher *f)
{
    struct pollfd host = {f->host_fd, POLLIN, 0};
    uint32_t seen = atomic_load(&f->shm->bell_futex);
    int ms;
    atomic_store(&f->shm->flusher_sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if ((ms = wait_ms(f)) > 0)
        tattle__futex_wait((volatile uint32_t *)&f->shm->bell_futex, seen, ms);
    if (f->host_fd >= 0 && poll(&host, 1, 0) > 0)
        f->host_gone = 1;
}

static void wait_on_socket(struct flusher *f)
{
    struct pollfd pfd[2] = {{f->sock, POLLIN, 0}, {f->host_fd, POLLIN, 0}};
    char buf[256];
    int n;
    atomic_store(&f->shm->flusher_sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    n = poll(pfd, 2, wait_ms(f));
    if (n > 0 && (pfd[0].revents & POLLIN))
        while (recv(f->sock, buf, sizeof buf, MSG_DONTWAIT) > 0)
            ;
    if (n > 0 && (pfd[1].revents & POLLIN))
        f->host_gone = 1;
    else if (n > 0 && (pfd[0].revents & POLLHUP))
        doorbell_closed(f);
}

static void wait_for_work(struct flusher *f)
{
    if (f->sock >= 0)
        wait_on_socket(f);
    else
        wait_on_futex(f);
    if (f->host_fd < 0 && kill(f->shm->host_pid, 0) != 0 && errno == ESRCH)
        f->host_gone = 1;
    atomic_store(&f->shm->flusher_sleeping, 0);
}

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
    return atomic_load(&f->shm->spooled_gen);
}

static void pass_done(void *arg, uint32_t gen)
{
    struct flusher *f = arg;
    atomic_store(&f->shm->delivered_gen, gen);
    tattle__futex_wake((volatile uint32_t *)&f->shm->delivered_gen);
}

/* With POSTHOG_API_KEY: the spool and the thread that sends it. */
static void start_delivery(struct flusher *f)
{
    const char *key = tattle__config_api_key();
    struct tattle_delivery_hooks hooks = {notice, pass_started, pass_done, f};
    char msg[256];
    int r;
    if (!f->cfg.http_enabled || !key)
        return;
    r = f->cfg.spool_dir[0] ? tattle__spool_open(&f->spool, f->cfg.spool_dir, f->cfg.spool_max_bytes) : -ENOENT;
    if (r != 0) {
        snprintf(msg, sizeof msg, "cannot use the spool directory %.160s (%s); nothing is sent",
                 f->cfg.spool_dir[0] ? f->cfg.spool_dir : "(set TATTLE_SPOOL_DIR)", tattle__state_strerror(-r));
        f->spool_err = r;
        notice(f, msg);
        return;
    }
    f->spool_dropped = tattle__spool_take_dropped(&f->spool);
    f->delivery = tattle__delivery_start(&f->cfg, &f->spool, key, &hooks);
    if (!f->delivery)
        notice(f, "cannot start HTTP delivery (libcurl); nothing is sent");
    else
        atomic_store(&f->shm->http_enabled, 1);
}

/* Started with --send-spool by a process that found batches waiting when
 * it loaded: send them for at most the linger window, then exit. It has no
 * host to serve (no region, no doorbell), leaves the dropped-events count
 * to a flusher that has events to carry it, and runs one at a time per
 * spool. */
static int send_spool_only(struct flusher *f)
{
    const char *key = tattle__config_api_key();
    struct tattle_delivery_hooks none = {0};
    struct tattle_delivery *d;
    struct stat st;
    /* Our host took the queue's sender lock and handed it over as fd 3. */
    int handed = fstat(TATTLE_FLUSHER_FD_SHM, &st) == 0 && S_ISREG(st.st_mode);
    if (!f->cfg.http_enabled || !key || !f->cfg.spool_dir[0] ||
        tattle__spool_open(&f->spool, f->cfg.spool_dir, f->cfg.spool_max_bytes) != 0 ||
        (!handed && !tattle__spool_lock_sender(&f->spool)))
        return 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d = tattle__delivery_start(&f->cfg, &f->spool, key, &none);
    if (d)
        tattle__delivery_finish(d, f->cfg.linger_ms, NULL);
    curl_global_cleanup();
    return 0;
}

int main(int argc, char **argv)
{
    struct flusher f = {0};
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_STATUS))
        return tattle__admin_status();
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_FLUSH))
        return tattle__admin_flush();
    protect_self();
    detach_from_host_signals();
    tattle__config_load(&f.cfg, TATTLE_CONFIG_FLUSHER);
    if (argc > 1 && !strcmp(argv[1], TATTLE_FLUSHER_SEND_SPOOL))
        return send_spool_only(&f);
    f.shm = tattle__shm_attach(TATTLE_FLUSHER_FD_SHM);
    if (!f.shm)
        return 1;
    clamp_header(f.shm);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    start_delivery(&f);
    f.sock = TATTLE_FLUSHER_FD_SOCK;
    f.host_fd = fcntl(TATTLE_FLUSHER_FD_HOST, F_GETFD) >= 0 ? TATTLE_FLUSHER_FD_HOST : -1;
    atomic_store(&f.shm->flusher_pid, getpid());
    f.text = tattle__ingest_text_new(&f.cfg, f.shm);
    for (;;) {
        /* Events captured before a crash go before it. */
        drain_ring(&f);
        process_crash(&f);
        if (f.host_gone && !work_left(&f))
            break;
        wait_for_work(&f);
    }
    drain_ring(&f);
    process_crash(&f);
    drain_ring(&f);
    if (f.delivery && f.spool_dropped)
        tattle__spool_save_dropped(&f.spool, f.spool_dropped);
    if (f.delivery)
        tattle__delivery_finish(f.delivery, f.cfg.linger_ms, NULL);
    free(f.batch);
    tattle__ingest_text_free(f.text);
    tattle__symbolizer_close(f.sym);
    curl_global_cleanup();
    return 0;
}
