/* json.h - checking and writing JSON text in the host, without allocating.
 *
 * Owns: strict validation of JSON values and UTF-8 (RFC 8259: no trailing
 * commas, no NaN, nesting at most 64 deep) for what the host passes to
 * tattle.h (and, in the flusher, the keys of explicit properties), and
 * writing escaped JSON strings into a bounded buffer.
 * Signal context: YES. Every function is a plain loop over its input.
 */
#ifndef TATTLE_JSON_H
#define TATTLE_JSON_H

#include <stddef.h>

/* 0 when text is exactly one JSON value (surrounding whitespace allowed). */
int tattle__json_check(const char *text, size_t len);
/* 0 when text is a JSON object. */
int tattle__json_check_object(const char *text, size_t len);
/* The same, calling on_key with the raw text of each top-level key
 * (escapes as written, no quotes); a non-zero return from it fails the
 * check. The flusher's text path uses it to vet explicit properties. */
typedef int (*tattle_json_key_fn)(void *arg, const char *key, size_t len);
int tattle__json_object_keys(const char *text, size_t len, tattle_json_key_fn on_key, void *arg);
/* 0 when s[0..len) is well-formed UTF-8 with no NUL. */
int tattle__utf8_check(const char *s, size_t len);

/* A bounded output buffer; once full, further writes are dropped and
 * overflow is set. */
struct tattle_out {
    char *buf;
    size_t cap, len;
    int overflow;
};
void tattle__out_raw(struct tattle_out *o, const char *s, size_t n);
void tattle__out_str(struct tattle_out *o, const char *s); /* raw, NUL-terminated */
void tattle__out_json_string(struct tattle_out *o, const char *s); /* quoted, escaped */
void tattle__out_json_string_n(struct tattle_out *o, const char *s, size_t n); /* n bytes of s */
void tattle__out_u64(struct tattle_out *o, unsigned long long v);

#endif
