/* link.h - the host's side of its connection to the flusher.
 *
 * Owns: the lazily created shared region, the SOCK_SEQPACKET socket used as
 * doorbell and liveness check, and starting (or restarting) the flusher.
 * Nothing exists until the first event or crash: a host that never captures
 * anything starts no process and opens no descriptor.
 * Signal context: PARTLY. tattle__link_get(1), tattle__link_doorbell() and
 * tattle__link_wait_crash() are signal-safe; the rest are not.
 */
#ifndef TATTLE_LINK_H
#define TATTLE_LINK_H

#include "shm.h"

/* At first use: address space for the region, so that a crash with the
 * address space exhausted later can still map it (a crash that is itself
 * the first use raises a soft limit for it instead). Signal-safe. */
void tattle__link_reserve(void);

/* Once, at first use: where the flusher is and the environment it gets.
 * Signal-safe. */
void tattle__link_init(const char *flusher_path, char *const *envp);

/* The shared region with a flusher started, or NULL when that failed.
 * in_signal: do not wait for another thread that is creating it. */
struct tattle_shm *tattle__link_get(int in_signal);

/* Start a flusher that only sends the batches earlier processes left in
 * the spool, then exits. It shares nothing with this process, which keeps
 * no descriptor, region or child of it; a capture later starts the
 * process's own flusher as usual. Call it only while nothing else can
 * start a flusher (at first use, before the API is on: other threads wait
 * for the first use to end), as both use the same spawn stacks. */
void tattle__link_start_spool_sender(int lock_fd);

/* The region if it exists, without creating it. Signal-safe. */
struct tattle_shm *tattle__link_peek(void);

/* No flusher runs and the last attempt to start one failed (said once on
 * stderr, with the reason). Signal-safe; no system call while one runs. */
int tattle__link_unavailable(void);

/* After a record was put at ring position pos (nslots slots) at now_ns
 * (CLOCK_REALTIME): wake the flusher if it sleeps and would not look soon
 * enough on its own, or the ring is half full (see shm.h, TATTLE_POLL_MS).
 * Signal-safe; usually no system call. */
void tattle__link_doorbell(uint64_t pos, uint64_t nslots, uint64_t now_ns);

/* Where Yama restricts ptrace to ancestors, let our flusher read the other
 * threads' stacks while the crashing one waits: only the process that runs
 * the flusher's executable, as named by the region. Signal-safe. */
void tattle__link_allow_tracer(void);

/* After the handler marked the crash READY: wake the flusher (restarting it
 * if it is gone) and wait until it is DONE or timeout_ms passes. Returns 1
 * when the report is complete, 0 when it did not complete in time, -1 when
 * no flusher could be started. Signal-safe. */
int tattle__link_wait_crash(int timeout_ms, struct tattle_crash **crash);

/* tattle_flush: wait until every event captured so far is in the local
 * sinks (the file, the spool) and, with a server configured, until a
 * delivery attempt for it has ended. Returns 1 when it has (or nothing was
 * ever captured), 0 on timeout, -1 when no flusher could be started. Not
 * signal-safe. */
int tattle__link_flush(int timeout_ms);

/* At exit: wait until every event captured so far is in the local sinks,
 * at most timeout_ms. Not signal-safe. */
void tattle__link_wait_exit(int timeout_ms);

/* Print the flusher's latest problem on stderr, once. Signal-safe. */
void tattle__link_print_notice(int timeout_ms);

/* The crash report already told the story: count the latest problem as
 * printed. Signal-safe. */
void tattle__link_notice_seen(void);

/* In the child of fork(): forget the parent's region and flusher. */
void tattle__link_forget(void);

#endif
