/* uuid.c - UUIDv7 generation and validation (see uuid.h).
 *
 * Signal context: NO.
 */
#include "uuid.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static void fill_random(unsigned char *b, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(b + got, n - got, GRND_NONBLOCK);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got < n) { /* no entropy source: fall back to a weak but unique-enough mix */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)b;
        for (; got < n; got++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            b[got] = (unsigned char)x;
        }
    }
}

/* Random bytes from a per-thread pool: one getrandom() per 32 UUIDs. */
static void take_random(unsigned char *b, size_t n)
{
    static __thread unsigned char pool[512];
    static __thread size_t left;
    if (left < n) {
        fill_random(pool, sizeof pool);
        left = sizeof pool;
    }
    memcpy(b, pool + sizeof pool - left, n);
    memset(pool + sizeof pool - left, 0, n);
    left -= n;
}

void tattle__uuid_v7(char out[TATTLE_UUID_STR], uint64_t unix_ms)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, o = 0;
    take_random(b, sizeof b);
    for (i = 0; i < 6; i++)
        b[i] = (unsigned char)(unix_ms >> (40 - 8 * i));
    b[6] = (unsigned char)(0x70 | (b[6] & 0x0f));
    b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = 0;
}

int tattle__uuid_is_v7(const char *s)
{
    static const char lower_hex[] = "0123456789abcdefABCDEF";
    int i;
    if (!s || strlen(s) != 36)
        return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!strchr(lower_hex, s[i])) {
            return 0;
        }
    }
    return s[14] == '7' && strchr("89abAB", s[19]) != NULL;
}
