/* longjmp_out.c - a program that leaves a tattle call by siglongjmp from
 * a SIGALRM handler (review finding 22), as alarm-based timeouts do. The
 * test points POSTHOG_HOST at a 127.0.0.1 port that never answers, so
 * tattle_flush(5000) waits for delivery; alarm(1) interrupts it and the
 * handler jumps out. Later calls on this thread must work as before.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tattle.h"

static sigjmp_buf jb;

static void on_alarm(int s)
{
    (void)s;
    siglongjmp(jb, 1);
}

/* Every call on this thread after the jump. */
static void afterwards(void)
{
    int i, ok = 0, busy = 0, other = 0, rc;
    for (i = 0; i < 20; i++) {
        rc = tattle_capture("after", NULL);
        ok += rc == 0;
        busy += rc == TATTLE_EBUSY;
        other += rc != 0 && rc != TATTLE_EBUSY;
    }
    printf("captures: ok %d, EBUSY %d, other %d\n", ok, busy, other);
    printf("breadcrumb rc=%d\n", tattle_add_breadcrumb("robust", "after the jump"));
    rc = tattle_flush(100);
    printf("flush is %s\n", rc == TATTLE_EBUSY ? "EBUSY" : "not EBUSY");
}

int main(void)
{
    struct sigaction sa;
    int rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    printf("capture rc=%d\n", tattle_capture("before", NULL));
    if (sigsetjmp(jb, 1) == 0) {
        alarm(1);
        rc = tattle_flush(5000);
        alarm(0);
        printf("flush returned %d before the alarm\n", rc);
    } else {
        printf("left tattle_flush by siglongjmp\n");
    }
    afterwards();
    return 0;
}
