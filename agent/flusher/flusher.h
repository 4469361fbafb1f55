/* flusher.h - the state of one tattle-flusher process and of each host it
 * serves, shared by its loop (flusher.c), its hosts (clients.c) and what
 * it makes of their records (pipeline.c).
 *
 * Signal context: NO.
 */
#ifndef TATTLE_FLUSHER_H
#define TATTLE_FLUSHER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "shm.h"
#include "spool.h"

struct tattle_symbolizer;
struct tattle_ingest_text;
struct tattle_delivery;

/* One host: a process whose region this flusher drains. */
struct client {
    struct tattle_shm *shm; /* NULL until its greeting arrived */
    ino_t region_ino;       /* the region's memfd inode: it names the mapping in the host's maps */
    int sock;               /* the doorbell, or -1 once the host closed it */
    int host_fd;            /* a pidfd of the host, or -1 */
    pid_t pid;              /* the host, as the kernel names it to us */
    int host_gone;
    uint64_t accepted_ms;   /* when it connected (for a greeting that never comes) */
    uint64_t drained;       /* ring position taken into the batch */
    uint64_t active_ms;     /* when records were last read from its ring */
    struct tattle_symbolizer *sym;   /* its modules, for handled exceptions */
    struct tattle_ingest_text *text; /* the fast path for plain events, or NULL */
    pthread_t waker;                 /* while it rings the futex instead of the socket */
    int has_waker;
    _Atomic int stop_waker;
    int wake_fd;
};

struct flusher {
    struct tattle_config cfg;
    struct client **clients; /* those it serves now */
    size_t nclients, cap;
    pthread_mutex_t clients_mu; /* held to change the list, and by the delivery thread to walk it */
    int listen_fd;              /* the rendezvous of a shared flusher, or -1 */
    int spare_fd;               /* closed to accept and refuse a host when descriptors run out */
    int wake[2];                /* written by the wakers of hosts that closed their doorbell */
    _Atomic uint32_t spooled_gen; /* bumped after each batch written to the spool */
    int spool_err;              /* why the spool could not be used (-errno), or 0 */
    char *batch;                /* JSON lines not yet committed */
    size_t batch_len, batch_cap;
    unsigned batch_count;
    struct tattle_spool spool;
    struct tattle_delivery *delivery; /* NULL without a server */
    struct tattle_spool sentry_spool; /* SENTRY_DSN's queue: error events only */
    struct tattle_delivery *sentry;   /* NULL without SENTRY_DSN */
    char *sentry_batch;               /* the batch's error events, for it */
    size_t sentry_cap;
    unsigned spool_dropped;           /* to report on the next event */
    int commit_failed;                /* the last commit lost events */
    char last_notice[384];
};

/* pipeline.c: records to events to the sinks. */
void tattle__flusher_notice(void *arg, const char *msg);
void tattle__flusher_drain(struct flusher *f, struct client *c);
void tattle__flusher_crash(struct flusher *f, struct client *c);
/* Commit the batch, then tell each host how far its ring is in the sinks. */
void tattle__flusher_publish(struct flusher *f);
int tattle__flusher_work_left(const struct client *c);
void tattle__flusher_clamp_header(struct tattle_shm *shm);

/* clients.c: the hosts. */
/* The host that started a private flusher, from descriptors 3-5. */
int tattle__clients_inherit(struct flusher *f);
/* Take every connection waiting on the rendezvous. */
void tattle__clients_accept(struct flusher *f);
/* Its socket is readable, or hung up (POLLHUP in revents). */
void tattle__clients_socket_event(struct flusher *f, struct client *c, short revents);
/* Forget hosts that are gone with nothing left to do. */
void tattle__clients_reap(struct flusher *f);
/* Has a host without a pidfd gone? */
void tattle__clients_check_alive(struct flusher *f);
void tattle__clients_free_all(struct flusher *f);

#endif
