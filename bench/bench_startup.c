/* bench_startup.c - what preloading the agent adds to a process's start.
 *
 *   bench_startup AGENT NOOP_PRELOAD HANDLER_PRELOAD PROGRAM...
 *
 * Each PROGRAM runs many times under five preloads, interleaved run by run
 * (and in a rotating order) so that the machine's drift falls on all five
 * alike: none, a do-nothing preloaded object (the loader's own price), the
 * floor for a crash agent (an object that installs the same seven handlers
 * and an alternate stack, and nothing else), the agent with
 * TATTLE_DISABLE=1, and the agent. Each round gives the median run of
 * each (robust to the runs the machine interrupts); the figures are
 * medians over rounds, and the overheads are ratios to the do-nothing
 * preload and to the floor within each round, with the lowest and highest
 * round beside them. The benchmark and its children run on one CPU.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 11
#define RUNS 200
#define MAX_ENV 512

enum { NONE, NOOP, HANDLER, DISABLED, AGENT, VARIANTS };
static const char *variant_names[VARIANTS] = {"no preload", "do-nothing preload", "handler-only preload",
                                              "agent, TATTLE_DISABLE=1", "agent"};

static char **variant_env[VARIANTS];

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* The caller's environment without any preload or tattle setting, plus
 * the given entries. */
static char **make_env(const char *a, const char *b)
{
    extern char **environ;
    char **env = calloc(MAX_ENV + 3, sizeof *env);
    size_t n = 0;
    char **e;
    for (e = environ; *e && n < MAX_ENV; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) && strncmp(*e, "TATTLE_", 7) && strncmp(*e, "POSTHOG_", 8))
            env[n++] = *e;
    if (a)
        env[n++] = (char *)a;
    if (b)
        env[n++] = (char *)b;
    return env;
}

static double run_once(char **argv, char **env, posix_spawn_file_actions_t *fa)
{
    pid_t pid;
    int status;
    double t0 = now_us();
    if (posix_spawn(&pid, argv[0], fa, NULL, argv, env) != 0) {
        perror("posix_spawn");
        exit(1);
    }
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "%s did not exit 0\n", argv[0]);
        exit(1);
    }
    return now_us() - t0;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof v[0], cmp);
    return v[n / 2];
}

static void bench_program(const char *program, posix_spawn_file_actions_t *fa)
{
    char *argv[] = {(char *)program, NULL};
    double mean[VARIANTS][ROUNDS], ratio[VARIANTS][ROUNDS], floor_ratio[VARIANTS][ROUNDS];
    int r, i, v;
    for (v = 0; v < VARIANTS; v++) /* warm the page cache */
        run_once(argv, variant_env[v], fa);
    for (r = 0; r < ROUNDS; r++) {
        static double t[VARIANTS][RUNS];
        double mid[VARIANTS];
        for (i = 0; i < RUNS; i++)
            for (v = 0; v < VARIANTS; v++) {
                int which = (v + i) % VARIANTS; /* rotate the order */
                t[which][i] = run_once(argv, variant_env[which], fa);
            }
        /* The median run of each: a run the machine interrupted (this is
         * a VM) moves a mean by whole percents, a median not at all. */
        for (v = 0; v < VARIANTS; v++)
            mid[v] = median(t[v], RUNS);
        for (v = 0; v < VARIANTS; v++) {
            mean[v][r] = mid[v];
            ratio[v][r] = mid[v] / mid[NOOP];
            floor_ratio[v][r] = mid[v] / mid[HANDLER];
        }
    }
    printf("%s: %d rounds of %d runs of each, interleaved, median run per round\n", program, ROUNDS, RUNS);
    for (v = 0; v < VARIANTS; v++) {
        double us = median(mean[v], ROUNDS), over = (median(ratio[v], ROUNDS) - 1) * 100;
        printf("  %-26s %7.0f us per run", variant_names[v], us);
        if (v != NOOP)
            printf("   %+6.1f%% vs do-nothing preload (rounds: %+.1f%% to %+.1f%%)", over,
                   (ratio[v][0] - 1) * 100, (ratio[v][ROUNDS - 1] - 1) * 100);
        if (v > HANDLER) {
            double f = (median(floor_ratio[v], ROUNDS) - 1) * 100;
            printf("   %+6.1f%% vs handler-only preload (rounds: %+.1f%% to %+.1f%%)", f,
                   (floor_ratio[v][0] - 1) * 100, (floor_ratio[v][ROUNDS - 1] - 1) * 100);
        }
        printf("\n");
    }
}

int main(int argc, char **argv)
{
    static char agent_preload[4096], noop_preload[4096], handler_preload[4096];
    posix_spawn_file_actions_t fa;
    int i;
    if (argc < 5) {
        fprintf(stderr, "usage: bench_startup AGENT NOOP_PRELOAD HANDLER_PRELOAD PROGRAM...\n");
        return 2;
    }
    snprintf(agent_preload, sizeof agent_preload, "LD_PRELOAD=%s", argv[1]);
    snprintf(noop_preload, sizeof noop_preload, "LD_PRELOAD=%s", argv[2]);
    snprintf(handler_preload, sizeof handler_preload, "LD_PRELOAD=%s", argv[3]);
    variant_env[NONE] = make_env(NULL, NULL);
    variant_env[NOOP] = make_env(noop_preload, NULL);
    variant_env[HANDLER] = make_env(handler_preload, NULL);
    variant_env[DISABLED] = make_env(agent_preload, "TATTLE_DISABLE=1");
    variant_env[AGENT] = make_env(agent_preload, NULL);
    {   /* one CPU (the last): no migration between fork and exec */
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(sysconf(_SC_NPROCESSORS_ONLN) - 1, &set);
        (void)sched_setaffinity(0, sizeof set, &set);
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    for (i = 4; i < argc; i++)
        bench_program(argv[i], &fa);
    return 0;
}
