/* pretty.c - pretty-printed JSON properties between two ordinary captures.
 *
 * Captures "before", then "pretty" with valid JSON properties laid out over
 * several lines (newlines, CR LF, tabs, a nested object and array), then
 * "after"; flushes and prints the four return codes. Built against
 * tattle.h alone.
 */
#include <stdio.h>

#include "tattle.h"

int main(void)
{
    const char *pretty = "{\n"
                         "  \"plan\": \"pro\",\r\n"
                         "\t\"seats\": 3,\n"
                         "  \"owner\": {\n"
                         "    \"name\": \"Ada\",\n"
                         "    \"roles\": [\n"
                         "      \"admin\",\n"
                         "      \"billing\"\n"
                         "    ]\n"
                         "  }\n"
                         "}\n";
    int a = tattle_capture("before", "{\"n\": 1}");
    int b = tattle_capture("pretty", pretty);
    int c = tattle_capture("after", "{\"n\": 2}");
    int f = tattle_flush(5000);
    printf("captures %d %d %d flush %d\n", a, b, c, f);
    return 0;
}
