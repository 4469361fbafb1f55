/* config.h - tattle's configuration: the settings parsed and checked.
 *
 * Owns: the list of TATTLE_* settings, their defaults and their validation.
 * Their text comes from the environment or /etc/tattle/tattle.conf
 * (settings.h says which counts where).
 * The host parses the few settings it needs at its first use; the flusher
 * parses the rest (paths, sinks). A malformed value gets one line on stderr (from
 * the host only) and the default.
 * Signal context: YES. A host parses it at its first use, which may be its
 * crash handler (config.c uses no stdio, allocation or locale); the parsed
 * struct is read-only afterwards.
 */
#ifndef TATTLE_CONFIG_H
#define TATTLE_CONFIG_H

#include <limits.h>
#include <stddef.h>

#define TATTLE_DISTINCT_ID_MAX 200

/* Numbers first, strings after: loading writes only the first page. */
struct tattle_config {
    int disabled;              /* TATTLE_DISABLE=1 */
    int fleet;                 /* set before loading: loaded by /etc/ld.so.preload, not asked for */
    int stderr_report;         /* TATTLE_STDERR, default 1 (0 with fleet): anything on stderr at all */
    int crash_timeout_ms;      /* TATTLE_CRASH_TIMEOUT_MS, default 3000 */
    int exit_timeout_ms;       /* TATTLE_EXIT_TIMEOUT_MS, default 1000 */
    int file_explicit;         /* TATTLE_FILE was set */
    int max_breadcrumbs;       /* TATTLE_MAX_BREADCRUMBS, default 100, 0-1000 */
    /* Delivery to PostHog. The API key itself is read by the flusher only
     * (tattle__config_api_key) and never copied into this struct. */
    int http_enabled;          /* POSTHOG_API_KEY is set and well formed */
    int linger_ms;             /* TATTLE_LINGER_MS, default 5000: delivery after the host is gone */
    long long spool_max_bytes; /* TATTLE_SPOOL_MAX_MB, default 64 */
    long long file_max_bytes;  /* TATTLE_FILE_MAX_MB, default 64: then the file is rotated to <file>.1 */
    int parsed;                /* an earlier parse is in here */
    int report_kills;          /* TATTLE_REPORT_KILLS, default 1: fatal signals sent by others */
    int all_threads;           /* TATTLE_ALL_THREADS, default 1: every thread's stack at a crash */
    int sentry_enabled;        /* SENTRY_DSN is set and valid */
    int test_die_mid_record;   /* TATTLE_TEST_FAULT=die-mid-record (tests only) */
    char distinct_id[TATTLE_DISTINCT_ID_MAX + 1]; /* TATTLE_DISTINCT_ID, may be "" */
    char posthog_host[512];    /* POSTHOG_HOST, default https://us.i.posthog.com, no trailing '/' */
    char posthog_host_shown[512]; /* the same without user:password@: what is printed */
    char file_path[PATH_MAX];  /* TATTLE_FILE, else (flusher) the default path; may be "" */
    char spool_dir[PATH_MAX];  /* TATTLE_SPOOL_DIR, else <state dir>/spool (may be "") */
    char sentry_url[1024];     /* the envelope URL of SENTRY_DSN (no key in it) */
    char sentry_spool_dir[PATH_MAX]; /* <spool>/sentry-<hash of the DSN> */
};

#define TATTLE_API_KEY_MAX 256

/* Who reads the environment: the host at its first use checks every variable
 * and warns once about each malformed one, but leaves the default file
 * path, and the default spool without a server, to the flusher (it costs
 * startup time and the host never uses them); the flusher is quiet and
 * fills in everything. */
enum tattle_config_reader { TATTLE_CONFIG_HOST, TATTLE_CONFIG_FLUSHER };

/* Parse the environment into cfg: zeroed storage, or an earlier parse. */
void tattle__config_load(struct tattle_config *cfg, enum tattle_config_reader reader);

/* POSTHOG_API_KEY if it is well formed (printable ASCII, no quote or
 * backslash, at most TATTLE_API_KEY_MAX bytes), else NULL. */
const char *tattle__config_api_key(void);

/* Where privileged programs keep state (one directory per effective uid). */
#define TATTLE_SYSTEM_STATE_DIR "/var/lib/tattle"

/* The default state directory: TATTLE_STATE_DIR, else in a secure-execution
 * process TATTLE_SYSTEM_STATE_DIR/<euid>, else $XDG_STATE_HOME/tattle or
 * ~/.local/state/tattle. Returns 0, or -1 when there is no absolute path. */
int tattle__config_state_dir(char *buf, size_t cap);

/* url without its userinfo (user:password@), for printing. */
void tattle__config_url_shown(const char *url, char *out, size_t cap);
/* Does url name 127.0.0.0/8, localhost or [::1]? */
int tattle__config_url_is_loopback(const char *url);

#endif
