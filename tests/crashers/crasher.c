/* crasher.c - one program, one crash per verb, for the crash matrix.
 *
 * Usage: crasher VERB. Each verb prints a line on stdout first (flushed), so
 * the tests can check that output is unchanged under the agent, then dies.
 * Functions are noinline so gdb and tattle see the same frames.
 */
#define _GNU_SOURCE
#include <assert.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define NOINLINE __attribute__((noinline))

static volatile int sink;

NOINLINE static void write_null(int *p)
{
    *p = 42;
    sink++;
}

NOINLINE static void level3(int *p) { write_null(p); sink++; }
NOINLINE static void level2(int *p) { level3(p); sink++; }
NOINLINE static void level1(int *p) { level2(p); sink++; }

static void crash_null(void) { level1(NULL); }

NOINLINE static int recurse(int depth)
{
    volatile char pad[256];
    pad[0] = (char)depth;
    return recurse(depth + 1) + pad[0];
}

static void crash_stack_overflow(void) { sink = recurse(0); }

NOINLINE static void do_abort(void) { abort(); }

NOINLINE static void check_config(int value) { assert(value > 10); }

NOINLINE static void do_double_free(void)
{
    char *volatile p = malloc(32);
    free(p);
    free(p);
}

NOINLINE static int divide(int a, int b) { return a / b; }

static void crash_divzero(void)
{
    volatile int zero = 0;
    sink = divide(7, zero);
}

NOINLINE static void do_illegal(void) { __builtin_trap(); }

NOINLINE static void touch_mapping(volatile char *p) { sink = p[0]; }

static void crash_sigbus(void)
{
    char path[] = "/tmp/tattle-crasher-XXXXXX";
    int fd = mkstemp(path);
    char *p;
    if (fd < 0 || ftruncate(fd, 4096) != 0)
        exit(2);
    p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        exit(2);
    if (ftruncate(fd, 0) != 0) /* the mapping now extends past the file */
        exit(2);
    unlink(path);
    touch_mapping(p);
}

NOINLINE static void *thread_main(void *arg)
{
    level1(arg);
    return NULL;
}

static void crash_thread(void)
{
    pthread_t t;
    pthread_create(&t, NULL, thread_main, NULL);
    pthread_join(t, NULL);
}

NOINLINE static void on_usr1(int sig)
{
    (void)sig;
    write_null(NULL);
}

static void crash_in_handler(void)
{
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
}

static pthread_barrier_t barrier;

NOINLINE static void *racing_thread(void *arg)
{
    pthread_barrier_wait(&barrier);
    write_null(arg);
    return NULL;
}

static void crash_two_threads(void)
{
    pthread_t a, b;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&a, NULL, racing_thread, NULL);
    pthread_create(&b, NULL, racing_thread, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
}

static void crash_kill_self(void) { kill(getpid(), SIGSEGV); pause(); }

static void exit_normally(void) { exit(3); }

/* Dies, except as PID 1 of a namespace: there the kernel drops it. */
static void raise_then_exit(void)
{
    raise(SIGSEGV);
    puts("still running");
    exit(0);
}

/* Two children, one of which crashes; the parent reaps until ECHILD and
 * reports what it saw. An agent process it could see would change that. */
static void fork_child_crash(void)
{
    int reaped = 0, sig = 0, status;
    pid_t a = fork();
    if (a == 0) {
        level1(NULL);
        _exit(0);
    }
    if (fork() == 0)
        _exit(0);
    while (wait(&status) > 0) {
        reaped++;
        if (WIFSIGNALED(status))
            sig = WTERMSIG(status);
    }
    printf("reaped %d, signal %d\n", reaped, sig);
    exit(0);
}

struct verb {
    const char *name;
    void (*run)(void);
};

static void crash_abort(void) { do_abort(); }
static void crash_assert(void) { check_config(3); }
static void crash_double_free(void) { do_double_free(); }
static void crash_illegal(void) { do_illegal(); }

/* "all-threads": four named threads parked where servers' threads are
 * (a mutex, a condition variable, a sleep, a busy loop), then main crashes. */
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t cv_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t parked;

NOINLINE static void wait_for_lock(void) { pthread_mutex_lock(&held); }
NOINLINE static void wait_for_signal(void)
{
    pthread_mutex_lock(&cv_mu);
    for (;;)
        pthread_cond_wait(&never, &cv_mu);
}
NOINLINE static void nap(void) { for (;;) sleep(100); }
NOINLINE static void spin(void) { for (;;) sink++; }

static void *parked_thread(void *arg)
{
    static const char *const names[] = {"locker", "waiter", "sleeper", "spinner"};
    long i = (long)arg;
    pthread_setname_np(pthread_self(), names[i]);
    pthread_barrier_wait(&parked);
    if (i == 0)
        wait_for_lock();
    else if (i == 1)
        wait_for_signal();
    else if (i == 2)
        nap();
    else
        spin();
    return NULL;
}

static void crash_all_threads(void)
{
    pthread_t t;
    long i;
    /* CRASHER_EXTRA_THREADS more sleepers (the benchmark's 10-thread process). */
    long extra = getenv("CRASHER_EXTRA_THREADS") ? atol(getenv("CRASHER_EXTRA_THREADS")) : 0;
    pthread_mutex_lock(&held);
    pthread_barrier_init(&parked, NULL, (unsigned)(5 + extra));
    for (i = 0; i < 4 + extra; i++)
        pthread_create(&t, NULL, parked_thread, (void *)(i < 4 ? i : 2));
    pthread_barrier_wait(&parked);
    usleep(50000); /* each is where it parks */
    level1(NULL);
}

/* "null-fnptr": a call through a NULL function pointer: the pc is 0, in no
 * module; the caller is found from the return address the call pushed. */
static void (*volatile callback)(void);
NOINLINE static void call_back(void)
{
    callback();
    sink++;
}
NOINLINE static void crash_null_fnptr(void) { call_back(); sink++; }

/* "oom": lower the soft limit on address space to what the process uses
 * (as `ulimit -Sv` would), exhaust the heap, then crash. */
static void crash_oom(void)
{
    char status[4096];
    FILE *f = fopen("/proc/self/status", "r");
    size_t n = f ? fread(status, 1, sizeof status - 1, f) : 0;
    char *vm;
    struct rlimit r;
    unsigned long kib = 0;
    if (f)
        fclose(f);
    status[n] = 0;
    vm = strstr(status, "VmSize:");
    if (vm)
        kib = strtoul(vm + 7, NULL, 10);
    getrlimit(RLIMIT_AS, &r);
    r.rlim_cur = (kib + 2048) * 1024;
    setrlimit(RLIMIT_AS, &r);
    while (malloc(64 * 1024) != NULL)
        ;
    level1(NULL);
}

static const struct verb verbs[] = {
    {"oom", crash_oom},
    {"null-fnptr", crash_null_fnptr},
    {"all-threads", crash_all_threads},
    {"null", crash_null},
    {"stack-overflow", crash_stack_overflow},
    {"abort", crash_abort},
    {"assert", crash_assert},
    {"double-free", crash_double_free},
    {"divzero", crash_divzero},
    {"illegal", crash_illegal},
    {"sigbus", crash_sigbus},
    {"thread", crash_thread},
    {"in-handler", crash_in_handler},
    {"two-threads", crash_two_threads},
    {"kill-self", crash_kill_self},
    {"exit3", exit_normally},
    {"raise-then-exit", raise_then_exit},
    {"fork-child-crash", fork_child_crash},
};

int main(int argc, char **argv)
{
    size_t i;
    if (argc != 2) {
        fprintf(stderr, "usage: crasher VERB\n");
        return 2;
    }
    for (i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (!strcmp(argv[1], verbs[i].name)) {
            printf("crasher: %s\n", argv[1]);
            fflush(stdout);
            verbs[i].run();
            return 0;
        }
    }
    fprintf(stderr, "crasher: unknown verb %s\n", argv[1]);
    return 2;
}
