/* handoff.h - what a host hands a flusher: the descriptor numbers a
 * flusher it starts finds its inheritance at, the argument of a flusher that
 * only sends the spool, and the greeting a host sends the shared flusher it
 * joins through the rendezvous socket.
 *
 * Signal context: constants only.
 */
#ifndef TATTLE_HANDOFF_H
#define TATTLE_HANDOFF_H

#define TATTLE_FLUSHER_FD_SHM 3
#define TATTLE_FLUSHER_FD_SOCK 4
#define TATTLE_FLUSHER_FD_HOST 5 /* a pidfd of the host */
#define TATTLE_FLUSHER_FD_LISTEN 6 /* the rendezvous socket, listening: a shared flusher */

#include <stdint.h>

/* A host joining a shared flusher connects to the rendezvous socket (an
 * abstract SOCK_SEQPACKET name made of its effective uid and a hash of the
 * flusher's environment, so only flushers of the same configuration are
 * shared), checks that the peer runs as its own effective uid, and sends
 * one greeting carrying its region's memfd and a pidfd of itself
 * (SCM_RIGHTS). The flusher checks the peer's uid and pid in turn, maps the
 * region and answers TATTLE_HELLO_ACK; from then on the connection is the
 * doorbell, exactly as the socketpair of a flusher started privately. */
struct tattle_hello {
    uint32_t magic;   /* TATTLE_SHM_MAGIC */
    uint32_t version; /* TATTLE_SHM_VERSION */
};
#define TATTLE_HELLO_ACK 'k'

/* argv[1] of a flusher started with no region: it sends the spool (the
 * batches earlier processes left) and exits. */
#define TATTLE_FLUSHER_SEND_SPOOL "--send-spool"

#endif
