/* admin.c - the flusher's status and flush modes (see admin.h).
 *
 * Signal context: NO.
 */
#include "admin.h"

#include <curl/curl.h>
#include <errno.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "delivery.h"
#include "transport_posthog.h"
#include "settings.h"
#include "spool.h"
#include "statedir.h"

static void load(struct tattle_config *cfg)
{
    tattle__settings_init();
    tattle__config_load(cfg, TATTLE_CONFIG_FLUSHER);
}

/* The key: its first characters only. */
static void print_setting(const char *name)
{
    const char *v = tattle__setting(name), *src = tattle__setting_source(name);
    if (!v)
        return;
    char shown[512];
    if (!strcmp(name, "POSTHOG_API_KEY")) {
        printf("%s=%.6s... (%s)\n", name, v, src);
    } else if (!strcmp(name, "POSTHOG_HOST")) {
        tattle__config_url_shown(v, shown, sizeof shown);
        printf("%s=%s (%s)\n", name, shown, src);
    } else
        printf("%s=%s (%s)\n", name, v, src);
}

static void print_spool(const struct tattle_config *cfg)
{
    struct tattle_spool s;
    size_t batches;
    long long bytes;
    uint64_t oldest;
    char last[512];
    int r = tattle__statedir_open(cfg->spool_dir, 0); /* looking creates nothing */
    printf("spool=%s\n", cfg->spool_dir);
    if (r == -ENOENT) {
        printf("batches=0\nbytes=0\nlast-error=none\n");
        return;
    }
    if (r >= 0) {
        close(r);
        r = tattle__spool_open(&s, cfg->spool_dir, cfg->spool_max_bytes);
    }
    if (r != 0) {
        printf("spool-problem=%s\n", tattle__state_strerror(-r));
        return;
    }
    tattle__spool_summary(&s, &batches, &bytes, &oldest);
    printf("batches=%zu\nbytes=%lld\n", batches, bytes);
    if (oldest)
        printf("oldest=%lld s\n", (long long)(time(NULL) - (time_t)(oldest / 1000000000ull)));
    tattle__spool_read_status(&s, last, sizeof last);
    printf("last-error=%s\n", last[0] ? last : "none");
    tattle__spool_close(&s);
}

int tattle__admin_status(void)
{
    struct tattle_config cfg = {0};
    char dir[4096];
    size_t i;
    load(&cfg);
    if (tattle__settings_file_problem()[0])
        printf("config-file-problem=%s\n", tattle__settings_file_problem());
    for (i = 0; tattle__setting_names[i]; i++)
        print_setting(tattle__setting_names[i]);
    printf("state-dir=%s\n", tattle__config_state_dir(dir, sizeof dir) == 0 ? dir : "(none)");
    printf("file=%s\n", cfg.file_path[0] ? cfg.file_path : "(none)");
    printf("destination=%s\n", cfg.http_enabled ? cfg.posthog_host_shown : "(none)");
    if (cfg.http_enabled && cfg.spool_dir[0])
        print_spool(&cfg);
    return 0;
}

static char problem[512];
static void remember(void *arg, const char *msg)
{
    (void)arg;
    snprintf(problem, sizeof problem, "%s", msg);
}

int tattle__admin_flush(void)
{
    struct tattle_config cfg = {0};
    struct tattle_spool s;
    struct tattle_delivery_hooks hooks = {remember, NULL, NULL, NULL};
    struct tattle_delivery_totals totals = {0};
    struct tattle_delivery *d;
    const char *key;
    size_t batches;
    long long bytes;
    uint64_t oldest;
    int r;
    load(&cfg);
    key = tattle__config_api_key();
    if (!cfg.http_enabled || !key) {
        printf("nothing to send: no server is configured (POSTHOG_API_KEY)\n");
        return 2;
    }
    if ((r = tattle__spool_open(&s, cfg.spool_dir, cfg.spool_max_bytes)) != 0) {
        printf("cannot use the spool %s (%s)\n", cfg.spool_dir, tattle__state_strerror(-r));
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    d = tattle__delivery_start(&cfg, &s, &tattle__posthog_transport, tattle__posthog_open(cfg.posthog_host, key),
                               &hooks);
    if (d)
        tattle__delivery_finish(d, cfg.linger_ms, &totals);
    curl_global_cleanup();
    tattle__spool_summary(&s, &batches, &bytes, &oldest);
    printf("sent %llu events in %llu requests to %s; %zu batches wait in %s%s%s\n",
           (unsigned long long)totals.events_sent, (unsigned long long)totals.requests, cfg.posthog_host_shown,
           batches, cfg.spool_dir, problem[0] ? ": " : "", problem);
    tattle__spool_close(&s);
    return batches ? 1 : 0;
}
