/* flusher.c - the tattle-flusher process: its loop and its lifetime.
 *
 * Owns: attaching to the host's shared region (fd 3), the doorbell socket
 * (fd 4) and the host's pidfd (fd 5); turning a crash record into an event
 * and a report (unwind, symbolize, build, write the sinks, then tell the
 * waiting handler); draining the ring; and exiting once the host is gone and
 * nothing is left to do. It runs without LD_PRELOAD, in its own session,
 * with stdio on /dev/null, never as a child the host can see.
 * Signal context: NO. This is an ordinary program.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "assafe.h"
#include "config.h"
#include "event.h"
#include "ingest.h"
#include "report.h"
#include "shm.h"
#include "sink_file.h"
#include "spawn.h"
#include "symbolize.h"
#include "unwind.h"

struct flusher {
    struct tattle_config cfg;
    struct tattle_shm *shm;
    int sock;
    int host_fd; /* pidfd, or -1 */
    int host_gone;
    struct tattle_symbolizer *sym; /* the host's modules, for handled exceptions */
    char *batch;                   /* JSON lines waiting for the file sink */
    size_t batch_len, batch_cap;
};

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

/* Write an event to the local file sink. Returns a note for the report. */
static void sink_event(struct flusher *f, const char *json, int sync, char *note, size_t cap)
{
    int r;
    note[0] = 0;
    if (!f->cfg.file_path[0])
        return;
    r = tattle__sink_file_append(f->cfg.file_path, json, strlen(json), sync);
    if (r == 0)
        snprintf(note, cap, "written to %s", f->cfg.file_path);
    else
        snprintf(note, cap, "NOT written to %s: %s", f->cfg.file_path, strerror(-r));
}

static void process_crash(struct flusher *f)
{
    struct tattle_crash *c = &f->shm->crash;
    struct tattle_symbolizer *sym;
    static struct tattle_pcs pcs;
    struct tattle_stack st = {0};
    cJSON *ev = NULL;
    char *json = NULL;
    char note[4200] = "";
    const char *uuid = "";
    uint32_t ready = TATTLE_CRASH_READY;
    if (!atomic_compare_exchange_strong(&c->state, &ready, TATTLE_CRASH_TAKEN))
        return;
    sym = tattle__symbolizer_open(c->maps, c->maps_len, c->pid);
    if (sym) {
        tattle__unwind_crash(sym, c, &pcs);
        symbolize_pcs(sym, &pcs, &st);
        ev = tattle__event_crash(&f->cfg, f->shm, c, &st, sym);
    }
    if (ev) {
        uuid = cJSON_GetObjectItemCaseSensitive(ev, "uuid")->valuestring;
        json = cJSON_PrintUnformatted(ev);
    }
    if (json)
        sink_event(f, json, 1, note, sizeof note);
    c->report_len = (uint32_t)tattle__report_format(c->report, sizeof c->report, f->shm, c, &st, uuid, note);
    atomic_store_explicit(&c->state, TATTLE_CRASH_DONE, memory_order_release);
    (void)send(f->sock, "d", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    free(json);
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

static void batch_add(struct flusher *f, const char *line)
{
    size_t n = strlen(line);
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
}

static void batch_write(struct flusher *f)
{
    if (f->batch_len && f->cfg.file_path[0])
        tattle__sink_file_append(f->cfg.file_path, f->batch, f->batch_len - 1, 1);
    f->batch_len = 0;
}

/* Records other than crashes arrive through the ring: captures and
 * handled exceptions, each becoming one event. */
static void drain_ring(struct flusher *f)
{
    static unsigned char rec[TATTLE_RING_MAX_RECORD];
    struct tattle_ring *r = &f->shm->ring;
    size_t len;
    while ((len = tattle__ring_get(r, rec, sizeof rec)) > 0) {
        cJSON *ev = tattle__ingest(&f->cfg, f->shm, rec, len, host_symbolizer, f);
        char *json = ev ? cJSON_PrintUnformatted(ev) : NULL;
        if (json)
            batch_add(f, json);
        free(json);
        cJSON_Delete(ev);
        if (f->batch_len > (1u << 20))
            batch_write(f);
    }
    batch_write(f);
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

static void wait_for_work(struct flusher *f)
{
    struct pollfd pfd[2] = {{f->sock, POLLIN, 0}, {f->host_fd, POLLIN, 0}};
    char buf[256];
    atomic_store(&f->shm->flusher_sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst);
    if (!work_left(f)) {
        int n = poll(pfd, f->host_fd >= 0 ? 2 : 1, 1000);
        if (n > 0 && (pfd[0].revents & POLLIN))
            while (recv(f->sock, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
        if (n > 0 && (pfd[0].revents & POLLHUP) && f->host_fd < 0)
            f->host_gone = 1;
        if (f->host_fd >= 0 && (pfd[1].revents & POLLIN))
            f->host_gone = 1;
    }
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

int main(void)
{
    struct flusher f = {0};
    detach_from_host_signals();
    tattle__config_load(&f.cfg, 0);
    f.shm = tattle__shm_attach(TATTLE_FLUSHER_FD_SHM);
    if (!f.shm)
        return 1;
    f.sock = TATTLE_FLUSHER_FD_SOCK;
    f.host_fd = fcntl(TATTLE_FLUSHER_FD_HOST, F_GETFD) >= 0 ? TATTLE_FLUSHER_FD_HOST : -1;
    atomic_store(&f.shm->flusher_pid, getpid());
    for (;;) {
        process_crash(&f);
        drain_ring(&f);
        if (f.host_gone && !work_left(&f))
            break;
        wait_for_work(&f);
    }
    process_crash(&f);
    drain_ring(&f);
    return 0;
}
