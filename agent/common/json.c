/* json.c - JSON validation and escaping (see json.h).
 *
 * Signal context: YES. No allocation; recursion is bounded by MAX_DEPTH.
 */
#include "json.h"

#include <stdint.h>
#include <string.h>

#include "assafe.h"

#define MAX_DEPTH 64

struct cursor {
    const char *p, *end;
};

static void skip_ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* Length of the UTF-8 sequence at p (1-4), or 0 if malformed. */
static int utf8_seq(const unsigned char *p, const unsigned char *end)
{
    int n, i;
    unsigned cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        n = 2, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        n = 3, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        n = 4, cp = p[0] & 0x07;
    else
        return 0;
    if (end - p < n)
        return 0;
    for (i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong, out of range, or a surrogate */
    return n;
}

/* 8 bytes at a time while they are ASCII without a NUL. */
static const unsigned char *skip_ascii(const unsigned char *p, const unsigned char *end)
{
    while (end - p >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* a constant size: a plain load, no call */
        if ((w & 0x8080808080808080ull) || ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull))
            break;
        p += 8;
    }
    return p;
}

int tattle__utf8_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        int n;
        p = skip_ascii(p, end);
        if (p >= end)
            break;
        if (*p == 0)
            return -1;
        n = utf8_seq(p, end);
        if (!n)
            return -1;
        p += n;
    }
    return 0;
}

static int is_hex(char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

static int parse_string(struct cursor *c)
{
    c->p++; /* opening quote */
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch < 0x80 && ch != '\\') { /* the common case, without a call */
            c->p++;
            continue;
        }
        if (ch == '\\') {
            c->p++;
            if (c->p >= c->end)
                return -1;
            if (*c->p == 'u') {
                int i;
                for (i = 1; i <= 4; i++)
                    if (c->p + i >= c->end || !is_hex(c->p[i]))
                        return -1;
                c->p += 5;
                continue;
            }
            if (!(*c->p == '"' || *c->p == '\\' || *c->p == '/' || *c->p == 'b' || *c->p == 'f' ||
                  *c->p == 'n' || *c->p == 'r' || *c->p == 't'))
                return -1;
            c->p++;
            continue;
        }
        {
            int n = utf8_seq((const unsigned char *)c->p, (const unsigned char *)c->end);
            if (!n)
                return -1;
            c->p += n;
        }
    }
    return -1;
}

static int parse_digits(struct cursor *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > start ? 0 : -1;
}

static int parse_number(struct cursor *c)
{
    if (*c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (parse_digits(c) != 0)
        return -1;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (parse_digits(c) != 0)
            return -1;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (parse_digits(c) != 0)
            return -1;
    }
    return 0;
}

static int parse_literal(struct cursor *c, const char *lit)
{
    size_t n = tattle__strlen(lit);
    if ((size_t)(c->end - c->p) < n || !tattle__strneq(c->p, lit, n))
        return -1;
    c->p += n;
    return 0;
}

static int parse_value(struct cursor *c, int depth);

/* on_key (objects only, may be NULL) sees each key's raw text, without its
 * quotes; a non-zero return stops the parse as a failure. */
static int parse_container(struct cursor *c, int depth, char close, int is_object, tattle_json_key_fn on_key,
                           void *arg)
{
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        skip_ws(c);
        if (is_object) {
            const char *key = c->p + 1;
            if (c->p >= c->end || *c->p != '"' || parse_string(c) != 0)
                return -1;
            if (on_key && on_key(arg, key, (size_t)(c->p - 1 - key)) != 0)
                return -1;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':')
                return -1;
            c->p++;
        }
        if (parse_value(c, depth + 1) != 0)
            return -1;
        skip_ws(c);
        if (c->p >= c->end)
            return -1;
        if (*c->p == close) {
            c->p++;
            return 0;
        }
        if (*c->p != ',')
            return -1;
        c->p++;
    }
}

static int parse_value(struct cursor *c, int depth)
{
    if (depth > MAX_DEPTH)
        return -1;
    skip_ws(c);
    if (c->p >= c->end)
        return -1;
    switch (*c->p) {
    case '{': return parse_container(c, depth, '}', 1, NULL, NULL);
    case '[': return parse_container(c, depth, ']', 0, NULL, NULL);
    case '"': return parse_string(c);
    case 't': return parse_literal(c, "true");
    case 'f': return parse_literal(c, "false");
    case 'n': return parse_literal(c, "null");
    default:
        if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9'))
            return parse_number(c);
        return -1;
    }
}

int tattle__json_check(const char *text, size_t len)
{
    struct cursor c = {text, text + len};
    if (parse_value(&c, 0) != 0)
        return -1;
    skip_ws(&c);
    return c.p == c.end ? 0 : -1;
}

int tattle__json_object_keys(const char *text, size_t len, tattle_json_key_fn on_key, void *arg)
{
    struct cursor c = {text, text + len};
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{' || parse_container(&c, 0, '}', 1, on_key, arg) != 0)
        return -1;
    skip_ws(&c);
    return c.p == c.end ? 0 : -1;
}

int tattle__json_check_object(const char *text, size_t len) { return tattle__json_object_keys(text, len, NULL, NULL); }

void tattle__out_raw(struct tattle_out *o, const char *s, size_t n)
{
    char *d;
    size_t i = 0;
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    d = o->buf + o->len;
    /* 8 bytes at a time: constant-size copies are plain moves, not calls
     * (this runs in the crash handler too). */
    for (; i + 8 <= n; i += 8)
        memcpy(d + i, s + i, 8);
    for (; i < n; i++)
        d[i] = s[i];
    o->len += n;
}

void tattle__out_str(struct tattle_out *o, const char *s) { tattle__out_raw(o, s, tattle__strlen(s)); }

void tattle__out_json_string(struct tattle_out *o, const char *s)
{
    tattle__out_json_string_n(o, s, tattle__strlen(s));
}

void tattle__out_json_string_n(struct tattle_out *o, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const char *end = s ? s + n : s;
    tattle__out_raw(o, "\"", 1);
    while (s < end) {
        const char *run = s;
        unsigned char ch;
        while (s < end && (unsigned char)*s >= 0x20 && *s != '"' && *s != '\\')
            s++;
        if (s > run) /* a run that needs no escape: one copy */
            tattle__out_raw(o, run, (size_t)(s - run));
        if (s >= end)
            break;
        ch = (unsigned char)*s++;
        if (ch == '"' || ch == '\\') {
            char two[2] = {'\\', (char)ch};
            tattle__out_raw(o, two, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            tattle__out_raw(o, esc, 6);
        }
    }
    tattle__out_raw(o, "\"", 1);
}

void tattle__out_u64(struct tattle_out *o, unsigned long long v)
{
    char b[24];
    tattle__out_raw(o, b, tattle__fmt_u64(b, v));
}
