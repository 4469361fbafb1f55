/* config.c - parsing settings and their defaults (see config.h; where the
 * text comes from is settings.c).
 *
 * Signal context: YES. A crash may be the first thing a host asks of the
 * agent, and the crash handler then parses the configuration: plain loops,
 * system calls and write(2) only (no stdio, no allocation, no locale).
 */
#include "config.h"
#include "dsn.h"
#include "assafe.h"
#include "json.h"
#include "settings.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void warn_once(int warn, const char *name, const char *value, const char *why)
{
    char shown[72];
    size_t n;
    if (!warn)
        return;
    n = tattle__strlcpy(shown, value, 65); /* as "%.64s" */
    tattle__strlcpy(shown + n, "\": ", sizeof shown - n);
    tattle__say("tattle: ignoring ", name, "=\"", shown, why);
}

/* A boolean: 1/0, true/false, yes/no, on/off. */
static int env_bool(const char *name, int def, int warn)
{
    const char *v = tattle__setting(name);
    if (!v || !*v)
        return def;
    if (!strcmp(v, "1") || tattle__caseeq(v, "true") || tattle__caseeq(v, "yes") || tattle__caseeq(v, "on"))
        return 1;
    if (!strcmp(v, "0") || tattle__caseeq(v, "false") || tattle__caseeq(v, "no") || tattle__caseeq(v, "off"))
        return 0;
    warn_once(warn, name, v, def ? "expected 0 or 1; using 1" : "expected 0 or 1; using 0");
    return def;
}

static int env_int(const char *name, int def, int lo, int hi, int warn)
{
    const char *v = tattle__setting(name);
    long n;
    if (!v || !*v)
        return def;
    if (tattle__parse_long(v, &n) != 0 || n < lo || n > hi) {
        char why[96], a[24], b[24], c[24];
        struct tattle_out o = {why, sizeof why - 1, 0, 0};
        tattle__fmt_i64(a, lo);
        tattle__fmt_i64(b, hi);
        tattle__fmt_i64(c, def);
        tattle__out_str(&o, "expected an integer from ");
        tattle__out_str(&o, a);
        tattle__out_str(&o, " to ");
        tattle__out_str(&o, b);
        tattle__out_str(&o, "; using ");
        tattle__out_str(&o, c);
        why[o.len] = 0;
        warn_once(warn, name, v, why);
        return def;
    }
    return (int)n;
}

/* A home to keep state in: an absolute path other than "/", a directory
 * owned by this user (not /nonexistent, not another user's home kept by
 * sudo -E). */
static int usable_home(const char *home)
{
    struct stat st;
    return home && home[0] == '/' && home[1] && stat(home, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_uid == geteuid();
}

int tattle__config_state_dir(char *buf, size_t cap)
{
    const char *own = tattle__setting("TATTLE_STATE_DIR");
    const char *xdg = tattle__setting("XDG_STATE_HOME");
    const char *home = tattle__setting("HOME");
    char uid[24];
    if (own && own[0] == '/')
        return tattle__concat(buf, cap, own, NULL, NULL);
    if (!tattle__settings_secure() && xdg && xdg[0] == '/')
        return tattle__concat(buf, cap, xdg, "/tattle", NULL);
    if (!tattle__settings_secure() && usable_home(home))
        return tattle__concat(buf, cap, home, "/.local/state/tattle", NULL);
    /* secure execution, or nobody, www-data, root with HOME=/: the
     * system's per-uid place */
    tattle__fmt_u64(uid, (uint64_t)geteuid());
    return tattle__concat(buf, cap, TATTLE_SYSTEM_STATE_DIR "/", uid, NULL);
}

/* out = <state dir><leaf>, or "" when there is none or it is too long.
 * Out of line: its buffer costs a page of stack. */
static __attribute__((noinline)) void state_path(char *out, size_t cap, const char *leaf)
{
    char dir[PATH_MAX];
    size_t d, l = strlen(leaf);
    if (tattle__config_state_dir(dir, sizeof dir) != 0 || (d = strlen(dir)) + l + 64 >= cap)
        return;
    memcpy(out, dir, d);
    memcpy(out + d, leaf, l + 1);
}

static void load_file_path(struct tattle_config *cfg, int warn, int with_default)
{
    const char *v = tattle__setting("TATTLE_FILE");
    if (v && *v) {
        if (strlen(v) >= sizeof cfg->file_path || v[0] != '/') {
            warn_once(warn, "TATTLE_FILE", v, "expected an absolute path; using the default");
        } else {
            strcpy(cfg->file_path, v);
            cfg->file_explicit = 1;
            return;
        }
    }
    if (with_default)
        state_path(cfg->file_path, sizeof cfg->file_path, "/events.jsonl");
}

static void load_distinct_id(struct tattle_config *cfg, int warn)
{
    const char *v = tattle__setting("TATTLE_DISTINCT_ID");
    if (!v || !*v)
        return;
    if (strlen(v) > TATTLE_DISTINCT_ID_MAX) {
        warn_once(warn, "TATTLE_DISTINCT_ID", v, "longer than 200 bytes; events stay anonymous");
        return;
    }
    strcpy(cfg->distinct_id, v);
}

const char *tattle__config_api_key(void)
{
    const char *v = tattle__setting("POSTHOG_API_KEY");
    size_t i;
    if (!v || !*v)
        return NULL;
    for (i = 0; v[i]; i++)
        if (i >= TATTLE_API_KEY_MAX || v[i] <= ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\')
            return NULL;
    return v;
}

/* scheme://[userinfo@]host... -> the authority's start, its end. */
static const char *authority(const char *url, const char **end)
{
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    *end = a + strcspn(a, "/?#");
    return a;
}

void tattle__config_url_shown(const char *url, char *out, size_t cap)
{
    const char *end, *a = authority(url, &end), *at = memchr(a, '@', (size_t)(end - a));
    size_t n = (size_t)(a - url);
    if (!at) {
        tattle__strlcpy(out, url, cap);
        return;
    }
    tattle__strlcpy(out, url, n + 1 < cap ? n + 1 : cap);
    if (n + 1 < cap)
        tattle__strlcpy(out + n, at + 1, cap - n);
}

int tattle__config_url_is_loopback(const char *url)
{
    const char *end, *a = authority(url, &end), *at = memchr(a, '@', (size_t)(end - a));
    size_t n;
    if (at)
        a = at + 1;
    n = strcspn(a, ":/?#");
    if (a[0] == '[') /* [::1] */
        return !strncmp(a, "[::1]", 5);
    return (n == 9 && !strncmp(a, "localhost", 9)) || !strncmp(a, "127.", 4);
}

/* The key is never echoed: not even into a warning. */
static void load_http(struct tattle_config *cfg, int warn)
{
    const char *v = tattle__setting("POSTHOG_API_KEY");
    const char *host = tattle__setting("POSTHOG_HOST");
    size_t n;
    if (!v || !*v)
        return;
    if (!tattle__config_api_key()) {
        if (warn)
            tattle__say("tattle: ignoring POSTHOG_API_KEY: not a printable token of at most 256 bytes;"
                        " events stay local", NULL, NULL, NULL, NULL);
        return;
    }
    if (!host || !*host) {
        host = "https://us.i.posthog.com";
    } else if ((strncmp(host, "https://", 8) && strncmp(host, "http://", 7)) ||
               strlen(host) >= sizeof cfg->posthog_host || strpbrk(host, " \t\r\n\"")) {
        warn_once(warn, "POSTHOG_HOST", host, "expected an http:// or https:// URL; events stay local");
        return;
    }
    strcpy(cfg->posthog_host, host);
    n = strlen(cfg->posthog_host);
    while (n > 0 && cfg->posthog_host[n - 1] == '/')
        cfg->posthog_host[--n] = 0;
    tattle__config_url_shown(cfg->posthog_host, cfg->posthog_host_shown, sizeof cfg->posthog_host_shown);
    if (warn && !strncmp(host, "http://", 7) && !tattle__config_url_is_loopback(cfg->posthog_host))
        tattle__say("tattle: POSTHOG_HOST ", cfg->posthog_host_shown,
                    " is plain http: the API key and events travel unencrypted", NULL, NULL);
    cfg->http_enabled = 1;
}

static void load_spool_base(struct tattle_config *cfg, int warn, int with_default)
{
    const char *v = tattle__setting("TATTLE_SPOOL_DIR");
    cfg->spool_max_bytes = (long long)env_int("TATTLE_SPOOL_MAX_MB", 64, 1, 1 << 20, warn) << 20;
    cfg->file_max_bytes = (long long)env_int("TATTLE_FILE_MAX_MB", 64, 1, 1 << 20, warn) << 20;
    cfg->linger_ms = env_int("TATTLE_LINGER_MS", 5000, 0, 600000, warn);
    if (v && *v) {
        if (v[0] != '/' || strlen(v) + 64 >= sizeof cfg->spool_dir)
            warn_once(warn, "TATTLE_SPOOL_DIR", v, "expected a short absolute path; using the default");
        else {
            strcpy(cfg->spool_dir, v);
            return;
        }
    }
    if (with_default)
        state_path(cfg->spool_dir, sizeof cfg->spool_dir, "/spool");
}

/* One queue per destination inside the spool directory, so that a batch
 * is only ever sent where, and with the key, it was captured for: the
 * queue's name is a 64-bit FNV-1a hash of the host and the key (the key
 * itself is never in a file name). */
/* 16 lowercase hex digits, as %016llx. */
static void hex16(char out[17], uint64_t h)
{
    static const char digits[] = "0123456789abcdef";
    int i;
    for (i = 15; i >= 0; i--, h >>= 4)
        out[i] = digits[h & 15];
    out[16] = 0;
}

static void per_destination(struct tattle_config *cfg)
{
    const char *key = tattle__config_api_key(), *p;
    uint64_t h = 1469598103934665603ull;
    size_t n = strlen(cfg->spool_dir);
    for (p = cfg->posthog_host; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
    for (p = key ? key : ""; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    if (n && n + 26 < sizeof cfg->spool_dir) {
        char hex[17];
        hex16(hex, h);
        tattle__concat(cfg->spool_dir + n, sizeof cfg->spool_dir - n, "/posthog-", hex, NULL);
    }
}

/* SENTRY_DSN: checked (never echoed); its queue beside PostHog's, named by
 * a hash of the envelope URL and the key. */
static __attribute__((noinline)) void load_sentry(struct tattle_config *cfg, int warn)
{
    const char *v = tattle__setting("SENTRY_DSN"), *why = NULL, *p;
    struct tattle_dsn dsn;
    uint64_t h = 1469598103934665603ull;
    size_t n;
    if (!v || !*v)
        return;
    if (tattle__dsn_parse(v, &dsn, &why) != 0) {
        if (warn)
            tattle__say("tattle: ignoring SENTRY_DSN: ", why, "; events are not sent to Sentry", NULL, NULL);
        return;
    }
    tattle__strlcpy(cfg->sentry_url, dsn.url, sizeof cfg->sentry_url);
    if (warn && !strncmp(dsn.url, "http://", 7) && !tattle__config_url_is_loopback(dsn.url))
        tattle__say("tattle: SENTRY_DSN is plain http: its key and events travel unencrypted", NULL, NULL, NULL,
                    NULL);
    for (p = dsn.url; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ '\n') * 1099511628211ull;
    for (p = dsn.key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    n = strlen(cfg->spool_dir);
    if (n && n + 26 < sizeof cfg->sentry_spool_dir) {
        char hex[17];
        hex16(hex, h);
        tattle__concat(cfg->sentry_spool_dir, sizeof cfg->sentry_spool_dir, cfg->spool_dir, "/sentry-", hex);
    }
    cfg->sentry_enabled = 1;
}

static void load_spool(struct tattle_config *cfg, int warn, int with_default)
{
    load_spool_base(cfg, warn, with_default);
    load_sentry(cfg, warn); /* before PostHog's queue name is appended to the base */
    if (cfg->http_enabled)
        per_destination(cfg);
}

static int has_setting(const char *name)
{
    const char *v = tattle__setting(name);
    return v && *v;
}

/* Forget an earlier parse. Not done on the first (the struct is zeroed
 * static storage): every page touched is a fault the host pays for. */
static void reset(struct tattle_config *cfg)
{
    cfg->disabled = cfg->file_explicit = cfg->http_enabled = cfg->sentry_enabled = 0;
    cfg->sentry_url[0] = cfg->sentry_spool_dir[0] = 0;
    cfg->file_path[0] = cfg->distinct_id[0] = cfg->posthog_host[0] = cfg->spool_dir[0] = 0;
    cfg->posthog_host_shown[0] = 0;
}

void tattle__config_load(struct tattle_config *cfg, enum tattle_config_reader reader)
{
    int warn = reader == TATTLE_CONFIG_HOST;
    const char *fault;
    /* An exchange writes as it reads: a page first read, then written,
     * would fault twice. */
    if (__atomic_exchange_n(&cfg->parsed, 1, __ATOMIC_RELAXED))
        reset(cfg);
    /* Whether to say anything at all comes first: under /etc/ld.so.preload
     * the program's stderr stays its own unless the configuration asks. */
    cfg->stderr_report = env_bool("TATTLE_STDERR", !cfg->fleet, warn && !cfg->fleet);
    warn = warn && cfg->stderr_report;
    cfg->disabled = env_bool("TATTLE_DISABLE", 0, warn);
    if (cfg->disabled)
        return;
    cfg->crash_timeout_ms = env_int("TATTLE_CRASH_TIMEOUT_MS", 3000, 0, 60000, warn);
    cfg->exit_timeout_ms = env_int("TATTLE_EXIT_TIMEOUT_MS", 1000, 0, 60000, warn);
    cfg->max_breadcrumbs = env_int("TATTLE_MAX_BREADCRUMBS", 100, 0, 1000, warn);
    cfg->report_kills = env_bool("TATTLE_REPORT_KILLS", 1, warn);
    cfg->all_threads = env_bool("TATTLE_ALL_THREADS", 1, warn);
    fault = tattle__setting("TATTLE_TEST_FAULT");
    cfg->test_die_mid_record = fault && !strcmp(fault, "die-mid-record");
    load_file_path(cfg, warn, reader == TATTLE_CONFIG_FLUSHER);
    load_distinct_id(cfg, warn);
    load_http(cfg, warn);
    load_spool(cfg, warn, reader == TATTLE_CONFIG_FLUSHER || cfg->http_enabled || has_setting("SENTRY_DSN"));
    /* With a server configured, the local file is opt-in (TATTLE_FILE). */
    if ((cfg->http_enabled || cfg->sentry_enabled) && !cfg->file_explicit)
        cfg->file_path[0] = 0;
}
