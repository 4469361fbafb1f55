/* waiter.c - a process that does nothing but wait for its input: no signal
 * handler, no thread, no call the agent interposes. What it has mapped
 * while it waits is what loading the agent mapped
 * (test_lifecycle.loading_maps_one_window_of_code_and_no_constants).
 *
 *   waiter        exits when its standard input ends
 */
#include <unistd.h>

int main(void)
{
    char c;
    while (read(0, &c, 1) > 0)
        ;
    return 0;
}
