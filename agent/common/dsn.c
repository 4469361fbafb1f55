/* dsn.c - a Sentry DSN, parsed (see dsn.h).
 *
 * Signal context: YES (the host may parse its configuration in the crash
 * handler): plain loops only.
 */
#include "dsn.h"

#include <string.h>

#include "assafe.h"

/* Does s start with the ASCII prefix, in any case? */
static int starts_nocase(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        char c = *s >= 'A' && *s <= 'Z' ? (char)(*s + 32) : *s;
        if (c != *prefix)
            return 0;
    }
    return 1;
}

/* Append n bytes of s at *len, within cap (one byte kept for the NUL). */
static void put(char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (*len + n < cap)
        memcpy(out + *len, s, n);
    *len += n;
}

static int fail(const char **why, const char *what)
{
    if (why)
        *why = what;
    return -1;
}

/* Printable, no space, quote or backslash: it goes into a header and a URL. */
static int clean(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~' || s[i] == '"' || s[i] == '\\')
            return 0;
    return 1;
}

int tattle__dsn_parse(const char *dsn, struct tattle_dsn *d, const char **why)
{
    const char *p, *at, *host, *host_end, *path, *end, *project;
    size_t scheme_len, key_len, n;
    char port[8] = "";
    int https;
    memset(d, 0, sizeof *d);
    if (!dsn || !*dsn)
        return fail(why, "empty");
    if (starts_nocase(dsn, "https://"))
        https = 1, scheme_len = 5;
    else if (starts_nocase(dsn, "http://"))
        https = 0, scheme_len = 4;
    else
        return fail(why, "expected an http:// or https:// DSN");
    p = dsn + scheme_len + 3;
    end = p + strcspn(p, "?#");
    if (!clean(dsn, (size_t)(end - dsn)))
        return fail(why, "it holds spaces, quotes or other characters a DSN cannot");
    path = memchr(p, '/', (size_t)(end - p));
    at = memchr(p, '@', (size_t)((path ? path : end) - p));
    if (!at || at == p)
        return fail(why, "no public key before '@'");
    key_len = strcspn(p, ":@");
    if (key_len == 0)
        return fail(why, "no public key before '@'");
    if (key_len >= sizeof d->key || (size_t)(at - p) - key_len > sizeof d->secret)
        return fail(why, "the public key is too long");
    memcpy(d->key, p, key_len);
    if (p[key_len] == ':')
        memcpy(d->secret, p + key_len + 1, (size_t)(at - p) - key_len - 1);
    host = at + 1;
    if (!path)
        return fail(why, "no project id");
    host_end = host[0] == '[' ? memchr(host, ']', (size_t)(path - host)) : NULL;
    host_end = host_end ? host_end + 1 : host + strcspn(host, ":/");
    if (host_end == host || host_end > path || (*host_end != ':' && *host_end != '/'))
        return fail(why, "no host");
    if (*host_end == ':') {
        n = (size_t)(path - host_end - 1);
        if (n == 0 || n >= sizeof port || strspn(host_end + 1, "0123456789") < n)
            return fail(why, "the port is not a number");
        memcpy(port, host_end + 1, n);
    } else {
        strcpy(port, https ? "443" : "80");
    }
    while (end > path + 1 && end[-1] == '/')
        end--;
    for (project = end; project > path && project[-1] != '/'; project--)
        ;
    if (project == end || (size_t)(end - project) >= sizeof d->project)
        return fail(why, "no project id");
    memcpy(d->project, project, (size_t)(end - project));
    n = 0;
    put(d->url, sizeof d->url, &n, https ? "https://" : "http://", https ? 8 : 7);
    put(d->url, sizeof d->url, &n, host, (size_t)(host_end - host));
    put(d->url, sizeof d->url, &n, ":", 1);
    put(d->url, sizeof d->url, &n, port, strlen(port));
    put(d->url, sizeof d->url, &n, path, (size_t)(project - 1 - path));
    put(d->url, sizeof d->url, &n, "/api/", 5);
    put(d->url, sizeof d->url, &n, d->project, strlen(d->project));
    put(d->url, sizeof d->url, &n, "/envelope/", 10);
    if (n >= sizeof d->url) {
        d->url[0] = 0;
        return fail(why, "too long");
    }
    d->url[n] = 0;
    return 0;
}
