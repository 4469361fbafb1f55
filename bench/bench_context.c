/* bench_context.c - per-call costs of tattle.h under the agent: a capture
 * with five tags in the context (one thread, four threads) and a context
 * push + tag + pop. Prints medians of several repetitions; run it under the
 * agent (scripts/bench does). Without the agent it measures the no-op path.
 * The ring is warmed first (its pages are faulted in by the first lap).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tattle.h"

#define REPS 7

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return v[n / 2];
}

static void five_tags(void)
{
    tattle_tag("request_id", "\"req-42\"");
    tattle_tag("tenant", "\"acme\"");
    tattle_tag("attempt", "3");
    tattle_tag("feature", "{\"name\":\"checkout\",\"on\":true}");
    tattle_tag("region", "\"eu-west-1\"");
}

struct capture_run {
    int calls;
    int accepted;
    double ns;
};

static void *capture_loop(void *arg)
{
    struct capture_run *r = arg;
    double t0;
    int i;
    tattle_new_context(0);
    five_tags();
    tattle_capture("warmup", NULL);
    t0 = now_ns();
    for (i = 0; i < r->calls; i++)
        r->accepted += tattle_capture("bench_event", "{\"i\":1}") == 0;
    r->ns = (now_ns() - t0) / r->calls;
    tattle_end_context();
    return NULL;
}

/* Captures in bursts small enough for the ring, with pauses that let the
 * flusher drain: the cost of a capture that is accepted. */
static double capture_cost(int threads, double *accepted_share, int calls)
{
    double per[REPS];
    long acc = 0, total = 0;
    for (int rep = 0; rep < REPS; rep++) {
        pthread_t t[8];
        struct capture_run r[8];
        double sum = 0;
        memset(r, 0, sizeof r);
        for (int i = 0; i < threads; i++) {
            r[i].calls = calls;
            pthread_create(&t[i], NULL, capture_loop, &r[i]);
        }
        for (int i = 0; i < threads; i++) {
            pthread_join(t[i], NULL);
            sum += r[i].ns;
            acc += r[i].accepted;
            total += r[i].calls;
        }
        per[rep] = sum / threads;
        tattle_flush(5000);
    }
    *accepted_share = total ? (double)acc / total : 0;
    return median(per, REPS);
}

static double push_tag_pop(void)
{
    double per[REPS];
    const int n = 200000;
    for (int rep = 0; rep < REPS; rep++) {
        double t0 = now_ns();
        for (int i = 0; i < n; i++) {
            tattle_new_context(0);
            tattle_tag("request_id", "\"req-42\"");
            tattle_end_context();
        }
        per[rep] = (now_ns() - t0) / n;
    }
    return median(per, REPS);
}

/* One lap of the ring first: the first capture into each of its pages
 * faults the page in, once per process; the figures are per call after. */
static void warm_the_ring(void)
{
    tattle_new_context(0);
    for (int i = 0; i < 1100; i++) {
        tattle_capture("warmup", NULL);
        if (i % 200 == 199)
            tattle_flush(5000);
    }
    tattle_flush(5000);
    tattle_end_context();
}

int main(void)
{
    double share1, share4, share_tight;
    warm_the_ring();
    double one = capture_cost(1, &share1, 500);
    double four = capture_cost(4, &share4, 200);
    double tight = capture_cost(1, &share_tight, 100000);
    double ptp = push_tag_pop();
    printf("agent loaded: %s\n", tattle_agent_loaded() ? "yes" : "no (no-op path)");
    printf("%-52s %10.0f ns\n", "capture, 5 tags, 1 thread (bursts of 500)", one);
    printf("%-52s %10.0f ns   (accepted %.0f%%)\n", "capture, 5 tags, 4 threads at once (bursts of 200)", four,
           share4 * 100);
    printf("%-52s %10.0f ns   (reached the sink: %.1f%%, drops counted)\n",
           "capture, 5 tags, tight loop of 100000", tight, share_tight * 100);
    printf("%-52s %10.0f ns\n", "context push + tag + pop", ptp);
    return 0;
}
