/* entry.c - what happens when libtattle.so is loaded into a host, and when
 * the host forks or exits.
 *
 * Owns: the constructor (configuration, where the flusher is, the flusher's
 * environment, handlers, alternate stacks), the fork handler, and the
 * destructor that waits (bounded) for events to reach the local sinks.
 * Nothing here starts a process or opens a descriptor: that waits for the
 * first event or crash (link.c).
 * Signal context: NO.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "altstack.h"
#include "breadcrumbs.h"
#include "context.h"
#include "json.h"
#include "assafe.h"
#include "config.h"
#include "flusher_env.h"
#include "hooks.h"
#include "link.h"
#include "settings.h"
#include "signals.h"

#define FLUSHER_NAME "tattle-flusher"
#define LIBRARY_NAME "libtattle.so"
/* Defined by tattle-flusher: this copy of the agent was preloaded into the
 * flusher itself (/etc/ld.so.preload) and stays inert there. */
extern const int tattle_flusher_process __attribute__((weak, visibility("default")));

/* Loading writes the start of each: config and flusher_path pack with the
 * small statics. */
static struct tattle_config config;
static char flusher_path[PATH_MAX];
static int loaded;

/* The flusher sits beside libtattle.so (build tree and installed tree):
 * flusher_path = the directory of lib (len bytes), then FLUSHER_NAME. */
TATTLE_LOAD_PATH static int flusher_beside(const char *lib, size_t len)
{
    size_t dir = len;
    while (dir > 0 && lib[dir - 1] != '/')
        dir--;
    if (dir == 0 || dir + sizeof FLUSHER_NAME > sizeof flusher_path)
        return -1;
    memcpy(flusher_path, lib, dir);
    memcpy(flusher_path + dir, FLUSHER_NAME, sizeof FLUSHER_NAME);
    return (int)syscall(SYS_access, flusher_path, X_OK);
}

/* A relative path (resolved now, while the working directory is the one
 * the loader used) or a symlink to where the flusher is. Out of line: its
 * buffer costs a page of stack. */
static __attribute__((noinline)) int find_flusher_by_realpath(const char *lib)
{
    char self[PATH_MAX];
    if (!realpath(lib, self))
        return -1;
    return flusher_beside(self, strlen(self));
}

/* The entry of LD_PRELOAD that names this library (n bytes), or NULL when
 * LD_PRELOAD does not ask for us: /etc/ld.so.preload loaded us into every
 * process. */
TATTLE_LOAD_PATH static const char *preload_entry(size_t *len)
{
    const size_t name = sizeof LIBRARY_NAME - 1;
    const char *p = getenv("LD_PRELOAD");
    while (p && *p) {
        size_t n = strcspn(p, ": ");
        if (n >= name && !memcmp(p + n - name, LIBRARY_NAME, name) && (n == name || p[n - name - 1] == '/')) {
            *len = n;
            return p;
        }
        p += n + (p[n] != 0);
    }
    return NULL;
}

/* Beside the LD_PRELOAD entry when it is an absolute path (cheaper than
 * dladdr, which searches the loader's lists and symbols), else where the
 * loader says we are. */
TATTLE_LOAD_PATH static int find_flusher(const char *entry, size_t len)
{
    Dl_info info;
    if (entry && entry[0] == '/' && flusher_beside(entry, len) == 0)
        return 0;
    if (!dladdr((void *)find_flusher, &info) || !info.dli_fname)
        return -1;
    /* The loader names us as LD_PRELOAD did: an absolute path is used as
     * it is (no realpath, which costs a readlink per path component). */
    if (info.dli_fname[0] == '/' && flusher_beside(info.dli_fname, strlen(info.dli_fname)) == 0)
        return 0;
    return find_flusher_by_realpath(info.dli_fname);
}

/* A missing flusher is said once per user and installation until reboot,
 * not by every process: the first process to create the marker
 * /dev/shm/.tattle-no-flusher-<euid>-<hash of the agent's path> says it
 * (O_EXCL, O_NOFOLLOW: a name someone else planted only silences the
 * line). Without /dev/shm every process says it. */
static __attribute__((noinline)) void say_flusher_missing(const char *self, size_t len)
{
    char path[96], num[24];
    uint64_t h = 1469598103934665603ull;
    size_t i, n;
    int fd;
    for (i = 0; self && i < len; i++)
        h = (h ^ (unsigned char)self[i]) * 1099511628211ull;
    n = tattle__strlcpy(path, "/dev/shm/.tattle-no-flusher-", sizeof path);
    tattle__fmt_u64(num, (uint64_t)geteuid());
    n += tattle__strlcpy(path + n, num, sizeof path - n);
    n += tattle__strlcpy(path + n, "-", sizeof path - n);
    tattle__fmt_u64(num, h);
    tattle__strlcpy(path + n, num, sizeof path - n);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 && errno == EEXIST)
        return;
    if (fd >= 0)
        close(fd);
    tattle__write_str(2, "tattle: tattle-flusher not found beside libtattle.so; crashes will not be reported"
                         " (said once, until reboot)\n");
}

void tattle__api_enable(int custom_events_as_breadcrumbs);
void tattle__api_after_fork(void);

/* A process tag from the environment, as a JSON string. */
static __attribute__((noinline)) void env_string_tag(const char *var, const char *key, const char *value)
{
    char buf[1024];
    struct tattle_out o = {buf, sizeof buf - 1, 0, 0};
    tattle__out_json_string(&o, value);
    buf[o.len] = 0;
    if (o.overflow || tattle__utf8_check(value, strlen(value)) != 0 || tattle__process_tag(key, buf) != 0) {
        /* Not echoed: it may be bytes the terminal should not see. */
        if (config.stderr_report)
            fprintf(stderr, "tattle: ignoring %s: not valid UTF-8, or too long once quoted (%zu bytes)\n", var,
                sizeof buf - 2);
        return;
    }
}

/* TATTLE_TAGS='key=value,key=value'. Out of line: its buffer would make
 * every host's constructor touch another page of stack. */
static __attribute__((noinline)) void load_env_tags(const char *tags)
{
    char buf[4096], *save = NULL, *item;
    if (strlen(tags) >= sizeof buf) {
        if (config.stderr_report)
            fprintf(stderr, "tattle: ignoring TATTLE_TAGS: longer than %zu bytes\n", sizeof buf - 1);
        return;
    }
    strcpy(buf, tags);
    for (item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || eq - item > 200) {
            if (config.stderr_report)
                fprintf(stderr, "tattle: ignoring TATTLE_TAGS item \"%.64s\": expected key=value\n", item);
            continue;
        }
        *eq = 0;
        env_string_tag("TATTLE_TAGS", item, eq + 1);
    }
}

/* TATTLE_TAGS, TATTLE_RELEASE, TATTLE_ENVIRONMENT, TATTLE_DISTINCT_ID: the
 * process layer for programs that are not rebuilt. */
TATTLE_LOAD_PATH static void load_process_layer(void)
{
    const char *tags = tattle__setting("TATTLE_TAGS");
    const char *v;
    if (tags && *tags)
        load_env_tags(tags);
    if ((v = tattle__setting("TATTLE_RELEASE")) && *v)
        env_string_tag("TATTLE_RELEASE", "release", v);
    if ((v = tattle__setting("TATTLE_ENVIRONMENT")) && *v)
        env_string_tag("TATTLE_ENVIRONMENT", "environment", v);
    if (config.distinct_id[0])
        tattle__process_set_distinct(config.distinct_id);
}

static void after_fork_child(void)
{
    tattle__signals_after_fork();
    tattle__context_after_fork();
    tattle__api_after_fork();
    tattle__link_forget();
}

/* A setuid, setgid or file-capability program. Nothing of its environment
 * counts; it is reported only when the root-owned configuration file says
 * TATTLE_REPORT_PRIVILEGED=1 and its effective uid is root, so that the
 * flusher it starts runs as root where the invoking user can neither read
 * nor change it. Then it prints no report (the invoking user would learn
 * its memory layout) and keeps its state under TATTLE_SYSTEM_STATE_DIR.
 * Returns 1 when the agent stays inert. */
static int privileged_stays_inert(char *state_dir, size_t cap)
{
    const char *opt = tattle__setting("TATTLE_REPORT_PRIVILEGED");
    if (!opt || strcmp(opt, "1") != 0 || geteuid() != 0)
        return 1;
    config.stderr_report = 0;
    tattle__stderr_quiet = 1;
    return tattle__config_state_dir(state_dir, cap) != 0;
}

/* The queue's sender lock, taken here and handed to the sender we start
 * (it inherits the descriptor, and with it the lock): a process starting
 * while that sender works finds the lock held and starts none. Returns the
 * descriptor, -1 when a sender holds the lock, -2 when there is no lock to
 * be had (a sender is started anyway; the batch claims keep it safe). Out
 * of line: a page of stack. */
static __attribute__((noinline)) int take_sender_lock(const char *queue)
{
    char path[PATH_MAX];
    struct stat st;
    int fd;
    if ((size_t)snprintf(path, sizeof path, "%s/.sender.lock", queue) >= sizeof path)
        return -2;
    fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
    if (fd < 0)
        return -2;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
        close(fd);
        return -1; /* not ours: start nothing on it */
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Said once, by ordinary processes only. */
static void say_file_problem(void)
{
    const char *why = tattle__settings_file_problem();
    if (why[0])
        fprintf(stderr, "tattle: ignoring " TATTLE_CONF_PATH ": %s\n", why);
}

__attribute__((constructor)) static void tattle_load(void)
{
    char state_dir[PATH_MAX];
    const char *self;
    size_t self_len = 0;
    int secure;
    if (&tattle_flusher_process)
        return;
    secure = tattle__settings_init();
    self = preload_entry(&self_len);
    config.fleet = !self;
    tattle__config_load(&config, TATTLE_CONFIG_HOST);
    tattle__stderr_quiet = !config.stderr_report;
    if (!secure && config.stderr_report)
        say_file_problem();
    if (config.disabled || (secure && privileged_stays_inert(state_dir, sizeof state_dir)))
        return;
    if (find_flusher(self, self_len) != 0) {
        flusher_path[0] = 0;
        say_flusher_missing(self, self_len);
    }
    tattle__link_init(flusher_path[0] ? flusher_path : NULL, tattle__flusher_env_build(secure, secure ? state_dir : NULL));
    tattle__hooks_init();
    tattle__breadcrumbs_init((unsigned)config.max_breadcrumbs);
    load_process_layer();
    tattle__altstack_init();
    tattle__signals_install(&config);
    pthread_atfork(NULL, NULL, after_fork_child);
    /* Batches an earlier process could not send: start a flusher that
     * sends them and exits. With an empty spool, nothing starts. (Before
     * the API is on, so no capture races it for the spawn stacks.) */
    if (config.http_enabled && config.spool_dir[0] && tattle__dir_has_suffix(config.spool_dir, ".batch") > 0) {
        int lock = take_sender_lock(config.spool_dir);
        if (lock != -1)
            tattle__link_start_spool_sender(lock);
    } else if (config.sentry_enabled && config.sentry_spool_dir[0] &&
               tattle__dir_has_suffix(config.sentry_spool_dir, ".batch") > 0) {
        int lock = take_sender_lock(config.sentry_spool_dir);
        if (lock != -1)
            tattle__link_start_spool_sender(lock);
    }
    tattle__api_enable(config.sentry_enabled && !config.http_enabled);
    loaded = 1;
}

__attribute__((destructor)) static void tattle_unload(void)
{
    if (!loaded)
        return;
    tattle__signals_exit_wait();
    tattle__link_wait_exit(config.exit_timeout_ms);
}
