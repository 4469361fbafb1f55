/* handler_first.c - the program's first tattle calls are made from a
 * signal handler (review finding 16): tattle.h's binding must not run
 * dlsym (the loader's lock, malloc) there. main raises SIGUSR1; on_usr1
 * captures and adds a breadcrumb; main then flushes.
 */
#include <signal.h>
#include <stdio.h>

#include "tattle.h"

static volatile sig_atomic_t capture_rc = 1, crumb_rc = 1;

static void on_usr1(int s)
{
    (void)s;
    capture_rc = tattle_capture("from_handler", NULL);
    crumb_rc = tattle_add_breadcrumb("robust", "from a handler");
}

int main(void)
{
    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("handler capture rc=%d breadcrumb rc=%d flush rc=%d\n", (int)capture_rc, (int)crumb_rc,
           tattle_flush(2000));
    return 0;
}
