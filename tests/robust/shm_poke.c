/* shm_poke.c - a host that leaves its shared region the way a writer that
 * died, or a wild write, would (review findings 3 and 17). It captures
 * "first" and flushes (a flusher runs and is idle), then:
 *
 *   writing-kill   crash area set to WRITING (a handler killed while it
 *                  fills the record), then SIGKILL itself
 *   writing-exit   the same, then return 0 from main (a crashing thread
 *                  still writing while another thread exits)
 *   claimed-kill   one ring slot claimed and never published, then SIGKILL
 *   claimed-alive  one ring slot claimed and never published; print
 *                  "poked", wait for a line on stdin, return 0
 *   ring-ahead     the slot at head marked free for the next lap (as if
 *                  the reader had run past head), then capture "after"
 *   ring-nslots    a published record at head claiming 100 slots (the
 *                  reader frees slots nobody claimed), flush, then capture
 *                  "after"
 * After a writing-* or claimed-* poke it captures once more, which wakes
 * the flusher while the region is in that state, and waits 200 ms. The
 * captures after a ring-* poke run under a 4 s watchdog (watchdog.h). It
 * prints each step and rc on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "region.h"
#include "tattle.h"
#include "watchdog.h"

#define SLOT(r, pos) (&(r)->slots[(pos) & (TATTLE_RING_SLOTS - 1u)])
#define LAP(pos) ((pos) / TATTLE_RING_SLOTS)

static void after_poke(void)
{
    int rc;
    robust_watch("tattle_capture after the poke", 4);
    rc = tattle_capture("after", "{\"n\": 2}");
    robust_watch(NULL, 0);
    printf("after capture rc=%d\n", rc);
    robust_watch("tattle_flush(2000) after the poke", 4);
    rc = tattle_flush(2000);
    robust_watch(NULL, 0);
    printf("flush rc=%d\n", rc);
}

int main(int argc, char **argv)
{
    struct tattle_shm *shm;
    struct tattle_ring *r;
    const char *mode = argc > 1 ? argv[1] : "";
    char line[16];
    uint64_t head;
    int rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    rc = tattle_capture("first", NULL);
    printf("first capture rc=%d flush rc=%d\n", rc, tattle_flush(2000));
    shm = robust_region();
    if (!shm) {
        printf("no tattle region in this process\n");
        return 2;
    }
    r = &shm->ring;
    head = atomic_load(&r->head);
    if (!strncmp(mode, "writing-", 8)) {
        atomic_store(&shm->crash.state, TATTLE_CRASH_WRITING);
    } else if (!strncmp(mode, "claimed-", 8)) {
        atomic_fetch_add(&r->head, 1);
    } else if (!strcmp(mode, "ring-ahead")) {
        atomic_store(&SLOT(r, head)->state, 2 * LAP(head) + 2);
    } else if (!strcmp(mode, "ring-nslots")) {
        struct tattle_ring_slot *s = SLOT(r, head);
        if (atomic_compare_exchange_strong(&r->head, &head, head + 1)) {
            memset(s->data, 'x', 16);
            s->len = 10;
            s->nslots = 100;
            s->flags = TATTLE_SLOT_FIRST;
            atomic_store(&s->state, 2 * LAP(head) + 1);
        }
    } else {
        return 2;
    }
    if (!strncmp(mode, "writing-", 8) || !strncmp(mode, "claimed-", 8)) {
        /* Wake the flusher (a capture rings its doorbell) and let it look
         * at the region while it is in this state. */
        rc = tattle_capture("poked", NULL);
        usleep(200000);
        printf("poked, then captured rc=%d\n", rc);
    } else {
        printf("poked\n");
    }
    if (!strcmp(mode, "writing-kill") || !strcmp(mode, "claimed-kill"))
        raise(SIGKILL);
    if (!strcmp(mode, "claimed-alive")) {
        if (!fgets(line, sizeof line, stdin))
            return 2;
    } else if (!strncmp(mode, "ring-", 5)) {
        if (!strcmp(mode, "ring-nslots")) {
            robust_watch("tattle_flush(1000) before the capture", 4);
            printf("flush rc=%d\n", tattle_flush(1000));
            robust_watch(NULL, 0);
        }
        after_poke();
    }
    printf("exiting\n");
    return 0;
}
