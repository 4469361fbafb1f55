/* spool.h - the on-disk queue of events not yet acknowledged by the server.
 *
 * Owns: the spool directory (0700) and its batch files (0600). A batch is
 * written to a hidden temporary file, synced, then renamed into place, so a
 * crash or power loss mid-write leaves what was there intact and never a
 * half batch under a batch name. Each file starts with a header line
 * (count, length, CRC-32 of the body), so a damaged file is recognised and
 * set aside instead of sent. Names sort by creation time, so batches go out
 * oldest first. A sender claims a batch with flock(): two processes never
 * send the same batch, and a claim dies with its process. The directory is
 * bounded: past the limit the oldest batches are dropped and counted.
 * Signal context: NO (flusher only). The host's cheap "is anything
 * waiting?" probe is tattle__dir_has_suffix() in assafe.h.
 */
#ifndef TATTLE_SPOOL_H
#define TATTLE_SPOOL_H

#include <limits.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TATTLE_SPOOL_SUFFIX ".batch"
#define TATTLE_SPOOL_REJECTED ".rejected"
#define TATTLE_SPOOL_DAMAGED ".damaged"
/* A batch file holds at most this many events or bytes: one request. */
#define TATTLE_SPOOL_BATCH_EVENTS 1000u
#define TATTLE_SPOOL_BATCH_BYTES (4u << 20)

struct tattle_spool {
    char dir[PATH_MAX];
    int dirfd;    /* opened by statedir.h's rules; every name is relative to it */
    uint32_t tag; /* random, in every file name this process makes */
    long long max_bytes;
    _Atomic unsigned seq; /* the writer and the sender both write batches */
    int sync; /* fdatasync batches (default 1) */
};

/* One claimed batch: the lock is held until done, release or reject. */
struct tattle_spool_batch {
    char name[96];
    int fd;
    unsigned count;
    char *body; /* count JSON lines, each ending in '\n' */
    size_t len;
};

/* For a flusher that only sends the spool: take the directory's sender
 * lock (.sender.lock), held until the process exits, so that a stream of
 * processes starting with batches waiting runs one such flusher at a
 * time. Returns 1 when taken, 0 when another process holds it. */
int tattle__spool_lock_sender(struct tattle_spool *s);

/* Create (0700) or adopt the directory (statedir.h: no link followed, owned
 * by us, never chmodded). Returns 0, -errno or -TATTLE_E*. */
int tattle__spool_open(struct tattle_spool *s, const char *dir, long long max_bytes);
void tattle__spool_close(struct tattle_spool *s);

/* Write count lines (body, each ending in '\n') as one batch. Then enforce
 * the size bound; *dropped gets the number of events it dropped.
 * Returns 0 or -errno. */
int tattle__spool_write(struct tattle_spool *s, const char *body, size_t len, unsigned count, unsigned *dropped);

/* The names of waiting batches, oldest first, at most cap. Returns how many. */
size_t tattle__spool_list(struct tattle_spool *s, char (*names)[96], size_t cap);

/* Claim and read one batch. Returns 1 when claimed, 0 when someone else
 * holds it or it is gone, -1 when it was damaged (it is set aside). */
int tattle__spool_claim(struct tattle_spool *s, const char *name, struct tattle_spool_batch *b);

/* Sent: delete it. */
void tattle__spool_done(struct tattle_spool *s, struct tattle_spool_batch *b);
/* Part of it was sent: put the rest back under the same name (so it keeps
 * its place in the queue) and unlock it. */
int tattle__spool_replace(struct tattle_spool *s, struct tattle_spool_batch *b, const char *body, size_t len,
                          unsigned count);
/* Not sent, try later: unlock it. */
void tattle__spool_release(struct tattle_spool_batch *b);
/* Refused by the server for good: keep it under another name, never resend. */
void tattle__spool_reject(struct tattle_spool *s, struct tattle_spool_batch *b);

/* Events dropped for the bound that no later event of this process will
 * report: leave the count for the next flusher. */
void tattle__spool_save_dropped(struct tattle_spool *s, unsigned dropped);
/* Collect (once, whoever gets there first) the counts others left. */
unsigned tattle__spool_take_dropped(struct tattle_spool *s);

/* Remove temporary files left by writers that died. */
void tattle__spool_sweep(struct tattle_spool *s);

/* The latest delivery problem, kept in the directory (.status) with its
 * time for `tattle status`; read back into buf ("" when none). */
void tattle__spool_save_status(struct tattle_spool *s, const char *msg);
void tattle__spool_read_status(struct tattle_spool *s, char *buf, size_t cap);

/* Waiting batches, their bytes and the oldest one's creation time (ns
 * since the epoch, 0 without batches). */
void tattle__spool_summary(struct tattle_spool *s, size_t *batches, long long *bytes, uint64_t *oldest_ns);

/* CRC-32 (zlib's polynomial) of a buffer. */
uint32_t tattle__spool_crc(const char *p, size_t n);

#endif
