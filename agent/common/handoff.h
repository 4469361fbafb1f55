/* handoff.h - what a host hands a flusher it starts: the descriptor numbers
 * the flusher finds its inheritance at, and the argument of a flusher that
 * only sends the spool.
 *
 * Signal context: constants only.
 */
#ifndef TATTLE_HANDOFF_H
#define TATTLE_HANDOFF_H

#define TATTLE_FLUSHER_FD_SHM 3
#define TATTLE_FLUSHER_FD_SOCK 4
#define TATTLE_FLUSHER_FD_HOST 5 /* a pidfd of the host */

/* argv[1] of a flusher started with no region: it sends the spool (the
 * batches earlier processes left) and exits. */
#define TATTLE_FLUSHER_SEND_SPOOL "--send-spool"

#endif
