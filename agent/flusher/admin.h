/* admin.h - what `tattle status` and `tattle flush` ask the flusher.
 *
 * Owns: `tattle-flusher --status` (every setting in force and where it
 * came from, the key masked; the state directory, the file, the spool's
 * queue, its batches, bytes and oldest batch, the last delivery problem)
 * and `tattle-flusher --flush` (send the configured destination's queue
 * now and say what happened). Both read the configuration as an agent in an
 * ordinary process would: the environment, then /etc/tattle/tattle.conf.
 * Signal context: NO.
 */
#ifndef TATTLE_ADMIN_H
#define TATTLE_ADMIN_H

#define TATTLE_FLUSHER_STATUS "--status"
#define TATTLE_FLUSHER_FLUSH "--flush"

/* Print the status on stdout. Returns the exit status (0). */
int tattle__admin_status(void);

/* Send the spool now, print one summary line. Returns 0 when the queue is
 * empty afterwards, 1 when batches wait, 2 when nothing can be sent. */
int tattle__admin_flush(void);

#endif
