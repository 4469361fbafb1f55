/* proctitle.c - a daemon that sets its process title the way nginx does,
 * then crashes.
 *
 *   proctitle WHERE TEXT      WHERE: home or file
 *
 * Like nginx's ngx_init_setproctitle/ngx_setproctitle: find the contiguous
 * argv+environ strings area, move environ to the heap (so the program's
 * own getenv keeps working), memset the area, then write one title string
 * at its start. The title is client text (TEXT, a path chosen by the test)
 * padded so that "TATTLE_FILE=TEXT" lands exactly where the original
 * HOME= (WHERE=home) or TATTLE_FILE= (WHERE=file) string was. Anything that
 * kept pointers into the original block now reads the title there.
 * Exits 2 if the environment the test gave does not leave room for that.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int main(int argc, char **argv)
{
    static const char prefix[] = "proctitle: worker process ";
    char *start, *end, *target = NULL, *text, title[8192];
    const char *want;
    size_t i, n, off, len;
    char **moved;
    if (argc != 3 || (strcmp(argv[1], "home") && strcmp(argv[1], "file"))) {
        fprintf(stderr, "usage: proctitle home|file TEXT\n");
        return 2;
    }
    want = !strcmp(argv[1], "home") ? "HOME=" : "TATTLE_FILE=";
    text = strdup(argv[2]);
    /* The contiguous area: argv strings, then environ strings. */
    start = argv[0];
    end = argv[0] + strlen(argv[0]) + 1;
    for (i = 1; i < (size_t)argc; i++)
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    for (n = 0; environ[n]; n++) {
        if (environ[n] == end)
            end = environ[n] + strlen(environ[n]) + 1;
        if (!target && !strncmp(environ[n], want, strlen(want)))
            target = environ[n];
    }
    if (!target || target >= end) {
        fprintf(stderr, "proctitle: no %s in the contiguous area\n", want);
        return 2;
    }
    /* environ moves to the heap, as nginx does. */
    moved = calloc(n + 1, sizeof *moved);
    for (i = 0; i < n; i++)
        moved[i] = strdup(environ[i]);
    environ = moved;
    /* The title: prefix, padding, then the text where the old string began. */
    off = (size_t)(target - start);
    len = off + strlen("TATTLE_FILE=") + strlen(text) + 1;
    if (off < sizeof prefix || len > (size_t)(end - start) || len > sizeof title) {
        fprintf(stderr, "proctitle: the title does not fit (offset %zu, %zu of %zu bytes)\n", off, len,
                (size_t)(end - start));
        return 2;
    }
    memset(title, ' ', off);
    memcpy(title, prefix, sizeof prefix - 1);
    snprintf(title + off, sizeof title - off, "TATTLE_FILE=%s", text);
    memset(start, 0, (size_t)(end - start));
    memcpy(start, title, len);
    printf("proctitle: title set over %zu bytes, TATTLE_FILE= at offset %zu (where %s was)\n",
           (size_t)(end - start), off, want);
    fflush(stdout);
    *(volatile int *)0 = 1;
    return 0;
}
