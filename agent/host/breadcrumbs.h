/* breadcrumbs.h - the process-wide ring of the latest breadcrumbs.
 *
 * Owns: a fixed array of slots (TATTLE_MAX_BREADCRUMBS, default 100, at most
 * 1000) written lock-free by any thread, each slot guarded by a sequence
 * number so readers skip one that is being rewritten.
 * Signal context: YES. Adding and reading are both signal-safe.
 */
#ifndef TATTLE_BREADCRUMBS_H
#define TATTLE_BREADCRUMBS_H

#include <stdint.h>

#include "json.h"

#define TATTLE_CRUMB_CATEGORY_MAX 64
#define TATTLE_CRUMB_MESSAGE_MAX 512
#define TATTLE_CRUMBS_LIMIT 1000

void tattle__breadcrumbs_init(unsigned capacity);
int tattle__breadcrumbs_add(const char *category, const char *message, uint64_t time_ns);
/* Write the latest ones, oldest first, as a JSON array. */
void tattle__breadcrumbs_write(struct tattle_out *o);

#endif
