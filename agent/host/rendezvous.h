/* rendezvous.h - the flusher shared by every process of one user and
 * configuration.
 *
 * Owns: the rendezvous socket's name, joining the flusher that listens on
 * it (peer uid checked, region and pidfd handed over, answer awaited), and
 * taking the name and starting that flusher when nobody listens. One
 * flusher then serves them all, so 200 capturing processes start one
 * process, not 200. The name is abstract (no file to plant or follow); a
 * name held by another uid is never joined: the caller starts a private
 * flusher instead, as before sharing existed.
 * Signal context: YES. tattle__rendezvous_join() is signal-safe; every
 * wait in it ends within 3 s.
 */
#ifndef TATTLE_RENDEZVOUS_H
#define TATTLE_RENDEZVOUS_H

#include "spawn.h"

#define TATTLE_RV_PRIVATE (-100000) /* use a private flusher */

/* Join (or start, then join) the shared flusher for sp's path and
 * environment, handing it the region shm_fd. Returns the connected doorbell
 * socket (close-on-exec), TATTLE_RV_PRIVATE, or -errno when no flusher can
 * be started at all. sp->stack must be free for the spawn. */
int tattle__rendezvous_join(struct tattle_spawn *sp, int shm_fd);

#endif
