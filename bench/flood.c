/* flood.c - captures N events as fast as the flusher takes them: a capture
 * refused because the ring is full (TATTLE_ENOBUFS) is retried after a
 * 50 us sleep (not a yield: on two cores a spinning producer takes the
 * flusher's CPU), so nothing is dropped and the rate is the flusher's. Each event has
 * five context tags and two properties, like a typical product event.
 *   flood N        prints "captured N in S s"
 *   flood N exceptions   the same with handled exceptions (what Sentry gets)
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tattle.h"

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 100000, i, retries = 0;
    int exceptions = argc > 2 && argv[2][0] == 'e';
    struct timespec a, b;
    char props[64];
    tattle_new_context(0);
    tattle_tag("request_id", "\"req-42\"");
    tattle_tag("tenant", "\"acme\"");
    tattle_tag("attempt", "3");
    tattle_tag("feature", "{\"name\":\"checkout\",\"on\":true}");
    tattle_tag("region", "\"eu-west-1\"");
    tattle_identify_context("user-1234");
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (i = 0; i < n; i++) {
        snprintf(props, sizeof props, "{\"seq\": %ld, \"amount\": 42.5}", i);
        while ((exceptions ? tattle_capture_exception("PaymentDeclined", props)
                           : tattle_capture("order_placed", props)) == TATTLE_ENOBUFS) {
            struct timespec pause = {0, 50000};
            retries++;
            nanosleep(&pause, NULL);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("captured %ld in %.3f s (%ld retries on a full ring)\n", n,
           (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9, retries);
    tattle_end_context();
    return 0;
}
