/* pretty_props.c - three captures, the middle one with pretty-printed
 * properties (newlines and indentation: valid JSON, accepted by the API),
 * then a flush (review finding 4). Every event must reach PostHog; one
 * event's formatting must not break the batch the others travel in.
 */
#include <stdio.h>

#include "tattle.h"

int main(void)
{
    int r1 = tattle_capture("before", "{\"n\":1}");
    int r2 = tattle_capture("pretty", "{\n  \"amount\": 42.5,\n  \"currency\": \"EUR\",\n\t\"tags\": [\r\n 1, 2 ]\n}");
    int r3 = tattle_capture("after", "{\"n\":3}");
    int f = tattle_flush(5000);
    printf("rc %d %d %d flush %d\n", r1, r2, r3, f);
    return 0;
}
