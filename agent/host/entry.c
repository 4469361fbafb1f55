/* entry.c - what happens when libtattle.so is loaded into a host, the
 * first time the host needs the agent, and when it forks or exits.
 *
 * Owns: the constructor, which does no more than a crash agent must to
 * catch the first crash (copy the environment it may read, install the
 * handlers and the alternate stack); the first use (tattle__agent_init: the
 * configuration file and the settings, where the flusher is, its
 * environment, the process layer, the region's address space, fork
 * detection, the queue left by earlier processes), reached from the first
 * capture, thread, or crash; taking over in a forked child; and the
 * destructor that waits (bounded) for events to reach the local sinks.
 * Nothing here starts a process or opens a descriptor at load.
 * Signal context: PARTLY. tattle__agent_init() is signal-safe (the crash
 * handler may be the first user); the constructor and destructor are not.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

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
#include "entry.h"
#include "envcopy.h"
#include "flusher_env.h"
#include "hooks.h"
#include "link.h"
#include "selfmap.h"
#include "settings.h"
#include "signals.h"

#define FLUSHER_NAME "tattle-flusher"
#define LIBRARY_NAME "libtattle.so"
/* What crtbegin would have defined (the library links without start
 * files): the handle pthread_atfork registers this object under. */
__attribute__((visibility("hidden"))) void *__dso_handle = &__dso_handle;

/* Defined by tattle-flusher: this copy of the agent was preloaded into the
 * flusher itself (/etc/ld.so.preload) and stays inert there. */
extern const int tattle_flusher_process __attribute__((weak, visibility("default")));

/* Written at first use, not at load. */
static struct tattle_config config;
static char flusher_path[PATH_MAX];
static int loaded TATTLE_LOAD_DATA;     /* the constructor put the handlers in place */
static int secure_exec TATTLE_LOAD_DATA; /* AT_SECURE */
static int relative_self TATTLE_LOAD_DATA; /* flusher_path was resolved at load */

enum { INIT_NONE, INIT_RUNNING, INIT_DONE, INIT_INERT };
static _Atomic int init_state TATTLE_LOAD_DATA; /* read at exit: no page fault of its own */
static _Atomic pid_t init_owner;     /* the thread doing the first use... */
static _Atomic pid_t init_owner_pid; /* ...and its process: a forked child finds its parent's */

/* The flusher sits beside libtattle.so (build tree and installed tree):
 * flusher_path = the directory of lib (len bytes), then FLUSHER_NAME. */
static int flusher_beside(const char *lib, size_t len)
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
static const char library_name[] TATTLE_LOAD_CONST = LIBRARY_NAME;

/* The n bytes at p end with LIBRARY_NAME, as a whole path component. A
 * loop, not memcmp: no libc call and no literal on the load path. */
TATTLE_LOAD_PATH static int names_us(const char *p, size_t n)
{
    const size_t name = sizeof library_name - 1;
    size_t i;
    if (n < name || (n > name && p[n - name - 1] != '/'))
        return 0;
    for (i = 0; i < name; i++)
        if (p[n - name + i] != library_name[i])
            return 0;
    return 1;
}

TATTLE_LOAD_PATH static const char *preload_entry(size_t *len)
{
    const char *p = tattle__envcopy_preload();
    while (p && *p) {
        size_t n = 0;
        while (p[n] && p[n] != ':' && p[n] != ' ')
            n++;
        if (names_us(p, n)) {
            *len = n;
            return p;
        }
        p += n + (p[n] != 0);
    }
    return NULL;
}

/* Beside the LD_PRELOAD entry when it is an absolute path, else where the
 * loader says we are (an absolute path is used as it is: no realpath,
 * which costs a readlink per path component). A relative name was
 * resolved at load, while the working directory was the loader's.
 * Signal-safe. */
static int find_flusher(const char *entry, size_t len)
{
    const char *self;
    if (relative_self)
        return flusher_path[0] ? 0 : -1;
    if (entry && entry[0] == '/' && flusher_beside(entry, len) == 0)
        return 0;
    self = tattle__self_path();
    return self && self[0] == '/' ? flusher_beside(self, strlen(self)) : -1;
}

/* At load, only when LD_PRELOAD names us by a relative path (rare):
 * resolve it while the working directory is still the loader's. */
static __attribute__((noinline)) void resolve_relative_self(const char *entry, size_t len)
{
    char name[PATH_MAX];
    if (len >= sizeof name)
        return;
    memcpy(name, entry, len);
    name[len] = 0;
    relative_self = 1;
    if (find_flusher_by_realpath(name) != 0)
        flusher_path[0] = 0;
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

/* A forked child: what the parent had (its region, its flusher, a capture
 * under way) is not the child's. Each thread's own state (its contexts,
 * its cached thread id) is dropped by that thread when it next calls in
 * (tattle__fork_gen). Signal-safe. */
static void after_fork_child(void)
{
    tattle__signals_after_fork();
    tattle__api_after_fork();
    tattle__link_forget();
    atomic_fetch_add(&tattle__fork_gen, 1);
}

/* Forks are noticed without pthread_atfork (which loading would pay for
 * in every process): at first use the agent maps a page the kernel zeroes
 * in a forked child (MADV_WIPEONFORK) and writes 1 in it. A vfork child
 * shares it and still reads 1. 0: a fork child nobody took over yet;
 * 2: a thread is taking it over. */
volatile uint32_t *tattle__fork_page;
_Atomic unsigned tattle__fork_gen;

static void arm_fork_page(int in_signal)
{
    long p = tattle__raw_syscall6(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p < 0 && p > -4096)
        p = 0;
    if (p && tattle__raw_syscall4(SYS_madvise, p, 4096, MADV_WIPEONFORK, 0) != 0) {
        (void)tattle__raw_syscall4(SYS_munmap, p, 4096, 0, 0);
        p = 0;
    }
    if (p) {
        *(volatile uint32_t *)p = 1;
        tattle__fork_page = (volatile uint32_t *)p;
    } else if (!in_signal) { /* a kernel before 4.14 */
        pthread_atfork(NULL, NULL, after_fork_child);
    }
}

void tattle__fork_takeover(void)
{
    uint32_t fresh = 0;
    if (__atomic_compare_exchange_n(tattle__fork_page, &fresh, 2, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        after_fork_child();
        __atomic_store_n(tattle__fork_page, 1, __ATOMIC_RELEASE);
        return;
    }
    for (int i = 0; i < 100000 && __atomic_load_n(tattle__fork_page, __ATOMIC_ACQUIRE) == 2; i++) {
        struct timespec ts = {0, 20000};
        nanosleep(&ts, NULL);
    }
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
    if (tattle__concat(path, sizeof path, queue, "/.sender.lock", NULL) != 0)
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
        tattle__say("tattle: ignoring " TATTLE_CONF_PATH ": ", why, NULL, NULL, NULL);
}

/* TATTLE_DISABLE=1 (or true, yes, on) in the environment: nothing at all
 * is put in place. The file's TATTLE_DISABLE is read at first use. */
static const char yes_words[4][5] TATTLE_LOAD_CONST = {"1", "true", "yes", "on"};

TATTLE_LOAD_PATH static int disabled_by_environment(void)
{
    const char *v = tattle__envcopy_disable();
    size_t i;
    for (i = 0; v && i < sizeof yes_words / sizeof yes_words[0]; i++)
        if (tattle__caseeq(v, yes_words[i]))
            return 1;
    return 0;
}

/* Batches an earlier process could not send: start a flusher that sends
 * them and exits. With an empty spool, nothing starts. */
static void send_what_earlier_processes_left(void)
{
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
}

/* Everything loading left for later. Returns INIT_DONE or INIT_INERT.
 * Signal-safe; what is not (the queue's sender) waits for a first use
 * outside a signal handler. */
static int first_use(int in_signal)
{
    char state_dir[PATH_MAX];
    const char *self;
    size_t self_len = 0;
    int secure = tattle__settings_init();
    self = preload_entry(&self_len);
    config.fleet = !self;
    tattle__config_load(&config, TATTLE_CONFIG_HOST);
    tattle__stderr_quiet = !config.stderr_report;
    if (!secure && config.stderr_report)
        say_file_problem();
    if (config.disabled || (secure && privileged_stays_inert(state_dir, sizeof state_dir)))
        return INIT_INERT;
    if (find_flusher(self, self_len) != 0) {
        flusher_path[0] = 0;
        say_flusher_missing(self, self_len);
    }
    tattle__link_reserve();
    tattle__link_init(flusher_path[0] ? flusher_path : NULL, tattle__flusher_env_build(secure, secure ? state_dir : NULL));
    tattle__hooks_init();
    tattle__breadcrumbs_init((unsigned)config.max_breadcrumbs);
    tattle__context_set_env_layer(tattle__setting("TATTLE_TAGS"), tattle__setting("TATTLE_RELEASE"),
                                  tattle__setting("TATTLE_ENVIRONMENT"), config.distinct_id,
                                  config.stderr_report);
    tattle__signals_configure(&config);
    tattle__altstack_guard();
    arm_fork_page(in_signal);
    /* Before the API is on, so no capture races it for the spawn stacks. */
    if (!in_signal)
        send_what_earlier_processes_left();
    tattle__api_enable(config.sentry_enabled && !config.http_enabled);
    return INIT_DONE;
}

int tattle__agent_init(int in_signal);

/* Another thread is at the first use (it takes no lock and starts no
 * process but the queue's sender, so it ends soon): wait, at most 2 s.
 * This very thread, interrupted in it, gives up at once. A forked child
 * that finds its parent's first use under way (the thread doing it is not
 * in the child) does it again itself. */
static int wait_for_first_use(int in_signal)
{
    uint64_t deadline = tattle__now_monotonic_ms() + 2000;
    for (;;) {
        struct timespec ts = {0, 20000};
        int st = atomic_load_explicit(&init_state, memory_order_acquire), running = INIT_RUNNING;
        if (st != INIT_RUNNING)
            return st == INIT_DONE;
        if (atomic_load(&init_owner_pid) != tattle__sys_getpid()) {
            if (atomic_compare_exchange_strong(&init_state, &running, INIT_NONE))
                atomic_store(&init_owner_pid, 0);
            return tattle__agent_init(in_signal);
        }
        if (atomic_load(&init_owner) == tattle__sys_gettid() || tattle__now_monotonic_ms() >= deadline)
            return 0;
        nanosleep(&ts, NULL);
    }
}

int tattle__agent_init(int in_signal)
{
    int st = atomic_load_explicit(&init_state, memory_order_acquire);
    int expected = INIT_NONE;
    if (st == INIT_DONE || st == INIT_INERT || !loaded)
        return st == INIT_DONE;
    if (atomic_compare_exchange_strong(&init_state, &expected, INIT_RUNNING)) {
        atomic_store(&init_owner_pid, tattle__sys_getpid());
        atomic_store(&init_owner, tattle__sys_gettid());
        st = first_use(in_signal);
        atomic_store(&init_owner, 0);
        atomic_store_explicit(&init_state, st, memory_order_release);
        if (st == INIT_INERT && !in_signal)
            tattle__signals_uninstall(); /* the file disables the agent: step aside */
        return st == INIT_DONE;
    }
    return wait_for_first_use(in_signal);
}

/* glibc calls a constructor with argc, argv and the environment. */
TATTLE_LOAD_PATH __attribute__((constructor)) static void tattle_load(int argc, char **argv, char **envp)
{
    size_t self_len = 0;
    const char *self;
    (void)argc;
    (void)argv;
    if (&tattle_flusher_process)
        return;
    secure_exec = tattle__envcopy_take(envp);
    tattle__settings_use_env(tattle__envcopy(), secure_exec);
    if (!secure_exec && disabled_by_environment())
        return;
    self = preload_entry(&self_len);
    if (self && self[0] != '/')
        resolve_relative_self(self, self_len);
    tattle__altstack_init();
    tattle__signals_install();
    loaded = 1;
    /* A privileged program decides now whether it is reported at all:
     * what the configuration file says must hold before it runs. */
    if (secure_exec)
        (void)tattle__agent_init(0);
}

TATTLE_LOAD_PATH __attribute__((destructor)) static void tattle_unload(void)
{
    if (atomic_load(&init_state) != INIT_DONE)
        return;
    tattle__fork_check(); /* a forked child waits for nothing of its parent's */
    tattle__signals_exit_wait();
    tattle__link_wait_exit(config.exit_timeout_ms);
}
