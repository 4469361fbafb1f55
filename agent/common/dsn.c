/* dsn.c - a Sentry DSN, parsed (see dsn.h).
 *
 * Signal context: NO.
 */
#include "dsn.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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
    if (!strncasecmp(dsn, "https://", 8))
        https = 1, scheme_len = 5;
    else if (!strncasecmp(dsn, "http://", 7))
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
    n = (size_t)snprintf(d->url, sizeof d->url, "%s://%.*s:%s%.*s/api/%s/envelope/", https ? "https" : "http",
                         (int)(host_end - host), host, port, (int)(project - 1 - path), path, d->project);
    if (n >= sizeof d->url)
        return fail(why, "too long");
    return 0;
}
