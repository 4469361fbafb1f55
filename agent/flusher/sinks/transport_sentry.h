/* transport_sentry.h - Sentry's envelope endpoint over libcurl (flusher only).
 *
 * Owns: POST {scheme}://{host}:{port}{path}/api/{project}/envelope/ with
 * X-Sentry-Auth (sentry_key, sentry_version=7, sentry_client), one envelope
 * per event, gzip, sent_at stamped at each attempt. Lines that are not for
 * Sentry (custom events) count as sent without a request. The key comes
 * from SENTRY_DSN and goes only into that header.
 * Signal context: NO.
 */
#ifndef TATTLE_TRANSPORT_SENTRY_H
#define TATTLE_TRANSPORT_SENTRY_H

#include "http.h"

struct tattle_sentry;
struct tattle_transport;

/* From SENTRY_DSN's text; NULL when it is not valid or libcurl fails. */
struct tattle_sentry *tattle__sentry_open(const char *dsn);

extern const struct tattle_transport tattle__sentry_transport;

#endif
