/* sink_file.h - the local file sink: one JSON event per line.
 *
 * Owns: creating the directory (0700) and file (0600) by the rules of
 * statedir.h (no link followed, nothing of another user's written to),
 * appending whole lines with a single O_APPEND write so concurrent
 * processes never interleave, taking back a partial line after a short
 * write (a full disk), rotating the file to <file>.1 once it holds
 * max_bytes, and syncing when asked. Each line is one element of
 * a PostHog batch array.
 * Signal context: NO (flusher only).
 */
#ifndef TATTLE_SINK_FILE_H
#define TATTLE_SINK_FILE_H

#include <stddef.h>

/* Append line (without its newline) to path. Returns 0, -errno or
 * -TATTLE_E* (statedir.h). */
int tattle__sink_file_append(const char *path, const char *line, size_t len, int sync, long long max_bytes);

#endif
