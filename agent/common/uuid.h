/* uuid.h - UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, then random bits.
 *
 * Owns: making event UUIDs and checking session IDs.
 * Signal context: NO.
 */
#ifndef TATTLE_UUID_H
#define TATTLE_UUID_H

#include <stdint.h>

#define TATTLE_UUID_STR 37 /* 36 characters and a NUL */

/* Format a new UUIDv7 for time unix_ms into out. */
void tattle__uuid_v7(char out[TATTLE_UUID_STR], uint64_t unix_ms);

/* 1 when s is a well-formed UUID of version 7 with the RFC variant. */
int tattle__uuid_is_v7(const char *s);

#endif
