/* dsn.h - a Sentry DSN, parsed.
 *
 * Owns: {scheme}://{public_key}[:{secret}]@{host}[:{port}]{path}/{project}
 * as sentry-native reads it (sentry-wire.md section 1): http or https only,
 * the port defaulting to 443 or 80, the project the last path segment, the
 * query and fragment ignored; and the envelope URL made from it. The key is
 * kept apart from the URL, which is safe to print.
 * Signal context: NO.
 */
#ifndef TATTLE_DSN_H
#define TATTLE_DSN_H

#include <stddef.h>

struct tattle_dsn {
    char key[128];      /* the public key: secret in our sense, never printed */
    char secret[128];   /* the deprecated secret key, "" without one */
    char url[1024];     /* {scheme}://{host}:{port}{path}/api/{project}/envelope/ */
    char project[64];
};

/* 0 when dsn is valid (d filled), else -1 and *why says what is wrong. */
int tattle__dsn_parse(const char *dsn, struct tattle_dsn *d, const char **why);

#endif
