/* shm.h - the memory the host shares with its flusher.
 *
 * Owns: the layout of the shared region (a memfd mapped MAP_SHARED by both
 * processes): a header describing the host, the event ring, and the crash
 * area where the signal handler leaves its stage-1 record and the flusher
 * leaves the text report. The layout is the protocol between the two
 * executables; bump TATTLE_SHM_VERSION when it changes.
 * Signal context: PARTLY. tattle__shm_create() and tattle__shm_describe_host()
 * are signal-safe (raw system calls only); tattle__shm_attach() is flusher-only.
 */
#ifndef TATTLE_SHM_H
#define TATTLE_SHM_H

#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "ring.h"

#define TATTLE_SHM_MAGIC 0x454c5454u /* "TTLE" */
#define TATTLE_SHM_VERSION 5u

#define TATTLE_STACK_COPY (128u * 1024u)
#define TATTLE_MAPS_MAX (256u * 1024u)
#define TATTLE_REPORT_MAX (32u * 1024u)
#define TATTLE_CMDLINE_MAX 4096u
#define TATTLE_CONTEXT_MAX (64u * 1024u)

#if !defined(__x86_64__)
#error "tattle's crash record is defined for x86_64 only so far"
#endif
#define TATTLE_NGREG 23 /* NGREG of x86_64's mcontext */

/* Crash area states; the word is also a futex. */
enum tattle_crash_state {
    TATTLE_CRASH_IDLE = 0,
    TATTLE_CRASH_WRITING, /* the handler is filling the record */
    TATTLE_CRASH_READY,   /* record complete: the flusher may take it */
    TATTLE_CRASH_TAKEN,   /* the flusher is unwinding and writing sinks */
    TATTLE_CRASH_DONE,    /* sinks written, report[] filled */
};

/* What kind of abort enrichment the record carries. */
enum tattle_abort_kind { TATTLE_ABORT_NONE = 0, TATTLE_ABORT_ASSERT, TATTLE_ABORT_CXX };

struct tattle_crash {
    _Atomic uint32_t state;
    int32_t signo, si_code, si_errno;
    int32_t sender_pid; /* si_pid when the signal was sent by a process */
    uint32_t sender_uid;
    uint64_t fault_addr;
    int32_t pid, ppid, tid;
    char thread_name[16];
    uint64_t time_ns; /* CLOCK_REALTIME at the crash */
    uint64_t gregs[TATTLE_NGREG];
    uint64_t stack_start; /* address of stack[0] in the host */
    uint32_t stack_len;
    uint32_t maps_len;
    uint32_t abort_kind;
    uint32_t assert_line;
    char abort_msg[1024]; /* glibc's __abort_msg at the time of the crash */
    char assert_expr[512];
    char assert_file[256];
    char assert_func[256];
    char cxx_type[256]; /* mangled name from the std::type_info */
    char cxx_what[1024];
    uint32_t context_len;
    char context[TATTLE_CONTEXT_MAX]; /* the crashing thread's context (JSON) */
    uint32_t report_len;
    char report[TATTLE_REPORT_MAX]; /* written by the flusher */
    unsigned char stack[TATTLE_STACK_COPY];
    char maps[TATTLE_MAPS_MAX]; /* /proc/self/maps at the crash */
};

/* A flusher that read a host's records in the last TATTLE_ACTIVE_MS looks
 * at its ring again within TATTLE_POLL_MS without being woken, and says
 * when it will look next (look_by_ns). So a host rings the doorbell (a
 * system call and a wake-up, some 20 us on a VM) only when a record begins
 * the second half of the ring, or when the flusher will not look within
 * TATTLE_POLL_MS. Flushes, exits and crashes always ring. */
#define TATTLE_POLL_MS 50
#define TATTLE_ACTIVE_MS 2000

struct tattle_shm {
    uint32_t magic, version;
    uint64_t size;
    int32_t host_pid, host_ppid;
    _Atomic int32_t flusher_pid;       /* the flusher that serves it: claimed, one at a time */
    _Atomic uint32_t flusher_sleeping; /* set while the flusher waits for a doorbell */
    _Atomic uint64_t look_by_ns;       /* CLOCK_REALTIME by which a sleeping flusher looks again */
    _Atomic uint32_t flusher_polling;  /* the host closed the doorbell socket... */
    _Atomic uint32_t bell_futex;       /* ...so it rings here instead */
    _Atomic uint32_t host_exiting;
    _Atomic uint32_t sunk_futex;       /* bumped after each write to the local sinks */
    _Atomic uint64_t sunk_pos;         /* ring position written to the local sinks */
    _Atomic uint32_t http_enabled;     /* the flusher delivers to a server */
    _Atomic uint32_t spooled_gen;      /* bumped after each batch written to the spool */
    _Atomic uint32_t delivered_gen;    /* futex: spooled_gen as of the last finished pass */
    _Atomic uint32_t notice_seq;       /* bumped after notice[] changes */
    char notice[384];                  /* the flusher's latest problem, for the host's stderr */
    char exe[PATH_MAX];
    uint32_t cmdline_len;
    char cmdline[TATTLE_CMDLINE_MAX]; /* NUL-separated argv, as /proc/PID/cmdline */
    struct tattle_ring ring;
    struct tattle_crash crash;
};

/* Address space for the region, reserved (PROT_NONE, no memory committed)
 * at a host's first use, so that a process whose address space is
 * exhausted when it crashes later still gets its region: mapping over a
 * reservation needs no new address space. NULL when even that failed.
 * Signal-safe. */
void *tattle__shm_reserve(void);

/* Create the memfd and map it, over the reservation at (or anywhere when
 * at is NULL). Returns the mapping (and *fd) or NULL. Signal-safe. */
struct tattle_shm *tattle__shm_create(int *fd, void *at);

/* Fill in the header's description of the calling process. Signal-safe. */
void tattle__shm_describe_host(struct tattle_shm *shm);

/* Flusher: map an inherited memfd. Returns NULL if it is not ours. */
struct tattle_shm *tattle__shm_attach(int fd);

#endif
