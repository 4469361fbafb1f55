/* test_units.c - unit tests for the pure parts of the agent: the ring, UUIDv7,
 * PostHog's debug_id rule, config parsing, and the flusher's text path for
 * events against its tree path. Usage: test_units [NAME]. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "ingest.h"
#include "json.h"
#include "ingest_text.h"
#include "record.h"
#include "ring.h"
#include "symbolize.h"
#include "uuid.h"

static int failures;
#define CHECK(cond)                                                                                     \
    do {                                                                                                \
        if (!(cond)) {                                                                                  \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
            failures++;                                                                                 \
            return;                                                                                     \
        }                                                                                               \
    } while (0)
#define CHECK_EQ_U64(a, b)                                                                              \
    do {                                                                                                \
        unsigned long long a_ = (a), b_ = (b);                                                          \
        if (a_ != b_) {                                                                                 \
            fprintf(stderr, "%s:%d: %s == %s: %llu != %llu\n", __FILE__, __LINE__, #a, #b, a_, b_);      \
            failures++;                                                                                 \
            return;                                                                                     \
        }                                                                                               \
    } while (0)

static struct tattle_ring ring;
static unsigned char buf[TATTLE_RING_MAX_RECORD];

static void ring_roundtrip_keeps_order_and_bytes(void)
{
    memset(&ring, 0, sizeof ring);
    for (int i = 0; i < 3000; i++) {
        char rec[2000];
        size_t len = (size_t)(i * 37) % sizeof rec + 1;
        memset(rec, (char)i, len);
        CHECK(tattle__ring_put(&ring, &i, sizeof i, rec, len) >= 0);
        size_t got = tattle__ring_get(&ring, buf, sizeof buf);
        CHECK_EQ_U64(got, sizeof i + len);
        CHECK(memcmp(buf, &i, sizeof i) == 0);
        CHECK(buf[sizeof i + len - 1] == (unsigned char)i);
    }
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), 0);
}

static void ring_full_drops_and_counts(void)
{
    char rec[TATTLE_RING_SLOT_DATA];
    int accepted = 0;
    memset(&ring, 0, sizeof ring);
    memset(rec, 1, sizeof rec);
    for (unsigned i = 0; i < TATTLE_RING_SLOTS + 10; i++)
        accepted += tattle__ring_put(&ring, rec, sizeof rec, NULL, 0) >= 0;
    CHECK_EQ_U64(accepted, TATTLE_RING_SLOTS);
    CHECK_EQ_U64(atomic_load(&ring.dropped), 10);
    CHECK(tattle__ring_get(&ring, buf, sizeof buf) == sizeof rec);
    CHECK(tattle__ring_put(&ring, rec, sizeof rec, NULL, 0) >= 0); /* room again */
}

static void ring_rejects_oversized_records(void)
{
    static char big[TATTLE_RING_MAX_RECORD + 1];
    memset(&ring, 0, sizeof ring);
    CHECK(tattle__ring_put(&ring, big, sizeof big, NULL, 0) == -2);
}

static void ring_skips_a_record_its_writer_abandoned(void)
{
    memset(&ring, 0, sizeof ring);
    atomic_store(&ring.head, 2); /* a writer claimed two slots and died */
    int v = 7;
    CHECK(tattle__ring_put(&ring, &v, sizeof v, NULL, 0) == 2);
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), 0); /* stuck behind it */
    CHECK_EQ_U64(tattle__ring_skip_abandoned(&ring), 2);
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), sizeof v);
}

/* A damaged slot (a stray write in the host) neither hangs a writer nor
 * lets the reader run past what writers claimed. */
static void ring_survives_damaged_slots(void)
{
    int v = 7;
    memset(&ring, 0, sizeof ring);
    CHECK(tattle__ring_put(&ring, &v, sizeof v, NULL, 0) == 0);
    ring.slots[0].nslots = 200; /* claims slots nobody wrote */
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), 0);
    CHECK(atomic_load(&ring.tail) <= atomic_load(&ring.head));
    CHECK(tattle__ring_put(&ring, &v, sizeof v, NULL, 0) >= 0);
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), sizeof v);
    memset(&ring, 0, sizeof ring);
    atomic_store(&ring.slots[0].state, 99); /* a state from no lap: writers never read it */
    CHECK(tattle__ring_put(&ring, &v, sizeof v, NULL, 0) == 0);
    CHECK_EQ_U64(tattle__ring_get(&ring, buf, sizeof buf), sizeof v);
    memset(&ring, 0, sizeof ring);
    atomic_store(&ring.tail, 5000); /* a reader's cursor past the writers': a writer gives up within a lap */
    {
        int i;
        for (i = 0; i < 3 * TATTLE_RING_SLOTS && tattle__ring_put(&ring, &v, sizeof v, NULL, 0) >= 0; i++)
            ;
        CHECK(i <= TATTLE_RING_SLOTS);
        CHECK_EQ_U64(atomic_load(&ring.dropped), 1);
        CHECK(atomic_load(&ring.head) <= TATTLE_RING_SLOTS);
    }
}

#define WRITERS 4
#define PER_WRITER 20000
static void *writer(void *arg)
{
    uint32_t rec[2] = {(uint32_t)(uintptr_t)arg, 0};
    for (uint32_t i = 0; i < PER_WRITER;) {
        rec[1] = i;
        if (tattle__ring_put(&ring, rec, sizeof rec, NULL, 0) >= 0)
            i++;
    }
    return NULL;
}

static void ring_many_writers_one_reader_loses_nothing(void)
{
    pthread_t t[WRITERS];
    uint32_t next[WRITERS] = {0};
    unsigned long total = 0;
    memset(&ring, 0, sizeof ring);
    for (uintptr_t i = 0; i < WRITERS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    while (total < WRITERS * PER_WRITER) {
        uint32_t rec[2];
        if (tattle__ring_get(&ring, rec, sizeof rec) == sizeof rec) {
            CHECK(rec[0] < WRITERS);
            CHECK_EQ_U64(rec[1], next[rec[0]]); /* each writer's records in order */
            next[rec[0]]++;
            total++;
        }
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
}

static void uuid_v7_has_version_variant_and_time(void)
{
    char u[TATTLE_UUID_STR], v[TATTLE_UUID_STR];
    tattle__uuid_v7(u, 0x0193a3d65b2cULL);
    tattle__uuid_v7(v, 0x0193a3d65b2cULL);
    CHECK(tattle__uuid_is_v7(u));
    CHECK(strncmp(u, "0193a3d6-5b2c-7", 15) == 0);
    CHECK(strcmp(u, v) != 0);
    CHECK(!tattle__uuid_is_v7("0193a3d6-5b2c-4c1e-9a4f-2f6d8e1b0c3a")); /* v4 */
    CHECK(!tattle__uuid_is_v7("0193a3d6-5b2c-7c1e-ca4f-2f6d8e1b0c3a")); /* bad variant */
    CHECK(!tattle__uuid_is_v7("session456"));
    CHECK(!tattle__uuid_is_v7(NULL));
}

static void debug_id_follows_posthogs_example(void)
{
    /* shared/reference/posthog-wire.md: build id b5381a457906d279... */
    static const unsigned char id[] = {0xb5, 0x38, 0x1a, 0x45, 0x79, 0x06, 0xd2, 0x79, 0x07, 0x38,
                                       0x22, 0xa5, 0xce, 0xb2, 0x4c, 0x4b, 0xfe, 0xf9, 0x4d, 0xdb};
    char out[37];
    tattle__debug_id(id, sizeof id, out);
    CHECK(strcmp(out, "451a38b5-0679-79d2-0738-22a5ceb24c4b") == 0);
    tattle__debug_id(id, 8, out); /* short IDs are zero padded */
    CHECK(strcmp(out, "451a38b5-0679-79d2-0000-000000000000") == 0);
}

static void config_defaults_and_bad_values(void)
{
    static struct tattle_config c;
    setenv("XDG_STATE_HOME", "/x/state", 1);
    unsetenv("TATTLE_FILE");
    setenv("TATTLE_CRASH_TIMEOUT_MS", "99999999", 1);
    setenv("TATTLE_STDERR", "off", 1);
    tattle__config_load(&c, TATTLE_CONFIG_FLUSHER);
    CHECK(strcmp(c.file_path, "/x/state/tattle/events.jsonl") == 0);
    CHECK_EQ_U64(c.crash_timeout_ms, 3000);
    CHECK_EQ_U64(c.stderr_report, 0);
    setenv("TATTLE_DISABLE", "yes", 1);
    tattle__config_load(&c, TATTLE_CONFIG_FLUSHER);
    CHECK(c.disabled);
    unsetenv("TATTLE_DISABLE");
}

/* The text path against the tree path, record by record. */
static struct tattle_shm ingest_shm;
static struct tattle_config ingest_cfg;
static struct tattle_ingest_text *ingest_text;

static struct tattle_symbolizer *no_symbolizer(void *arg)
{
    (void)arg;
    return NULL;
}

static size_t make_record(unsigned char *out, uint16_t kind, const char *name, const char *distinct,
                          const char *props, const char *context, uint64_t dropped)
{
    struct tattle_record h = {0};
    const char *parts[] = {name, distinct, props, context};
    size_t off = sizeof h;
    h.kind = kind;
    h.time_ns = 1763719200123000000ULL;
    h.dropped_before = dropped;
    h.name_len = (uint32_t)strlen(name);
    h.distinct_len = (uint32_t)strlen(distinct);
    h.props_len = (uint32_t)strlen(props);
    h.context_len = (uint32_t)strlen(context);
    memcpy(out, &h, sizeof h);
    for (int i = 0; i < 4; i++) {
        memcpy(out + off, parts[i], strlen(parts[i]));
        off += strlen(parts[i]);
    }
    return off;
}

/* 1: the text path wrote the tree path's event; 0: it declined; -1: it
 * wrote something else. uuid and an anonymous distinct_id are random. */
static int text_matches_tree(const char *name, const char *distinct, const char *props, const char *context,
                             uint64_t dropped)
{
    const char *line;
    size_t rlen = make_record(buf, TATTLE_REC_EVENT, name, distinct, props, context, dropped);
    size_t n = tattle__ingest_text(ingest_text, buf, rlen, &line);
    cJSON *text, *tree;
    int same;
    if (n == 0)
        return 0;
    if (memchr(line, '\n', n) || memchr(line, '\r', n)) {
        fprintf(stderr, "not one line: %.*s\n", (int)n, line);
        return -1;
    }
    text = cJSON_ParseWithLength(line, n);
    tree = tattle__ingest(&ingest_cfg, &ingest_shm, buf, rlen, no_symbolizer, NULL);
    if (!text || !tree) {
        fprintf(stderr, "unparsable: %.*s\n", (int)n, line);
        cJSON_Delete(text);
        cJSON_Delete(tree);
        return -1;
    }
    cJSON_DeleteItemFromObject(text, "uuid");
    cJSON_DeleteItemFromObject(tree, "uuid");
    if (cJSON_HasObjectItem(cJSON_GetObjectItem(tree, "properties"), "$process_person_profile")) {
        cJSON_DeleteItemFromObject(text, "distinct_id");
        cJSON_DeleteItemFromObject(tree, "distinct_id");
    }
    same = cJSON_Compare(text, tree, 1);
    if (!same) {
        char *a = cJSON_PrintUnformatted(text), *b = cJSON_PrintUnformatted(tree);
        fprintf(stderr, "text: %s\ntree: %s\n", a, b);
        free(a);
        free(b);
    }
    cJSON_Delete(text);
    cJSON_Delete(tree);
    return same ? 1 : -1;
}

static void text_path_writes_what_the_tree_path_builds(void)
{
    const char *ctx = "{\"p\":{\"t\":{\"service\":\"api\",\"cfg\":{\"a\":1,\"b\":{\"c\":2}}}},"
                      "\"l\":[{\"t\":{\"tenant\":\"acme\",\"cfg\":{\"b\":{\"d\":3}}},\"d\":\"user-1\","
                      "\"s\":\"0190a4b2-6f3e-7c1d-8e2f-123456789abc\"}],"
                      "\"b\":[{\"t\":1763719200000,\"c\":\"http\",\"m\":\"GET /\"}]}";
    strcpy(ingest_shm.exe, "/usr/bin/host");
    memcpy(ingest_shm.cmdline, "host\0--flag", 12);
    ingest_shm.cmdline_len = 12;
    ingest_shm.host_pid = 42;
    ingest_shm.host_ppid = 1;
    ingest_text = tattle__ingest_text_new(&ingest_cfg, &ingest_shm);
    CHECK(ingest_text);
    CHECK(text_matches_tree("order", "", "{\"seq\":1,\"amount\":42.5}", ctx, 0) == 1);
    CHECK(text_matches_tree("order", "", "", ctx, 0) == 1);
    CHECK(text_matches_tree("order", "", "{}", ctx, 0) == 1);
    CHECK(text_matches_tree("order", "", " { \"a\" : 1 , \"b\" : [ 1 , 2 ] } ", ctx, 0) == 1);
    CHECK(text_matches_tree("order", "", "{\n  \"plan\": \"pro \\n x\",\r\n\t\"seats\": [\n 3\n ]\n}\n", ctx, 0) == 1);
    CHECK(text_matches_tree("order", "", "{\"a\":{\"b\":[1,{\"c\":\"x,}]\"}]},\"s\":\"q\\\"u}\",\"t\":true}", ctx,
                            0) == 1);
    CHECK(text_matches_tree("order", "explicit-user", "{\"x\":null}", ctx, 7) == 1);
    CHECK(text_matches_tree("quote\"and\\slash", "", "", "", 0) == 1); /* anonymous, no context */
    CHECK(text_matches_tree("order", "", "", "{\"l\":[{\"t\":{\"k\":1}}]}", 0) == 1); /* another context */
    CHECK(text_matches_tree("order", "", "", ctx, 0) == 1);                             /* and back */
    /* Declined: the tree path decides these. */
    CHECK(text_matches_tree("order", "", "{\"tenant\":\"other\"}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"Tenant\":\"other\"}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"$session_id\":\"x\"}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"pid\":1}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"\\u0024lib\":\"x\"}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"a\":1,\"a\":2}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"$tattle_dropped_events\":1}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "{\"a\":1,}", ctx, 0) == 0);
    CHECK(text_matches_tree("order", "", "[1]", ctx, 0) == 0);
    CHECK(text_matches_tree("$exception", "", "", ctx, 0) == 0);
    tattle__ingest_text_free(ingest_text);
}

/* Differential fuzz: random properties (values of every JSON type, keys
 * that may clash with the context's, whitespace of every kind between
 * tokens) under random contexts: the text path either declines or writes
 * what the tree path builds, on one line. */
static unsigned fuzz_state = 12345;
static unsigned fuzz_next(unsigned n)
{
    fuzz_state = fuzz_state * 1103515245u + 12345u;
    return (fuzz_state >> 16) % n;
}

static void fuzz_ws(char **o)
{
    static const char *const ws[] = {"", "", " ", "\n", "\t", "\r\n", "  \n  "};
    const char *w = ws[fuzz_next(7)];
    size_t n = strlen(w);
    memcpy(*o, w, n);
    *o += n;
}

static void fuzz_put(char **o, const char *t)
{
    size_t n = strlen(t);
    memcpy(*o, t, n);
    *o += n;
}

static void fuzz_value(char **o, int depth)
{
    static const char *const scalars[] = {"1", "-2.5e3", "true", "false", "null", "\"x\"", "\"q\\\"u}\"",
                                          "\"line\\nbreak\"", "\"\\u00e9t\u00e9\"", "0"};
    static const char *const keys[] = {"\"a\"", "\"b\"", "\"tenant\"", "\"cfg\"", "\"seats\"", "\"k y\""};
    unsigned kind = depth >= 3 ? 0 : fuzz_next(4), i, n, first = fuzz_next(6);
    if (kind < 2) {
        fuzz_put(o, scalars[fuzz_next(10)]);
        return;
    }
    fuzz_put(o, kind == 2 ? "[" : "{");
    n = fuzz_next(4);
    for (i = 0; i < n; i++) {
        fuzz_ws(o);
        if (i)
            fuzz_put(o, ",");
        fuzz_ws(o);
        if (kind == 3) {
            fuzz_put(o, keys[(first + i) % 6]); /* no key twice in one object */
            fuzz_ws(o);
            fuzz_put(o, ":");
            fuzz_ws(o);
        }
        fuzz_value(o, depth + 1);
    }
    fuzz_ws(o);
    fuzz_put(o, kind == 2 ? "]" : "}");
}

static void text_and_tree_agree_on_random_records(void)
{
    static const char *const contexts[] = {
        "", "{\"l\":[{\"t\":{\"k\":1}}]}",
        "{\"p\":{\"t\":{\"service\":\"api\",\"cfg\":{\"a\":1}}},\"l\":[{\"t\":{\"tenant\":\"acme\"},"
        "\"d\":\"user-1\"}]}"};
    char props[8192];
    int i, took = 0;
    strcpy(ingest_shm.exe, "/usr/bin/host");
    ingest_text = tattle__ingest_text_new(&ingest_cfg, &ingest_shm);
    CHECK(ingest_text);
    for (i = 0; i < 3000; i++) {
        char *o = props;
        int r;
        fuzz_ws(&o);
        fuzz_put(&o, "{");
        fuzz_ws(&o);
        if (fuzz_next(5)) { /* an object with members */
            o--;
            fuzz_value(&o, 2);
            if (o[-1] != '}') { /* not an object after all: make one */
                o = props;
                fuzz_put(&o, "{\"v\":");
                fuzz_value(&o, 1);
                fuzz_put(&o, "}");
            }
        } else {
            fuzz_put(&o, "}");
        }
        fuzz_ws(&o);
        *o = 0;
        if (tattle__json_check_object(props, strlen(props)) != 0)
            continue; /* the host refuses it before it is a record */
        r = text_matches_tree("order", fuzz_next(3) ? "" : "someone", props, contexts[fuzz_next(3)], 0);
        if (r < 0)
            fprintf(stderr, "props: %s\n", props);
        CHECK(r >= 0);
        took += r == 1;
        if (r < 0)
            break;
    }
    CHECK(took > 500); /* the fast path was really exercised */
    tattle__ingest_text_free(ingest_text);
}

#define TESTS(X)                                                                                        \
    X(ring_roundtrip_keeps_order_and_bytes)                                                             \
    X(ring_full_drops_and_counts)                                                                       \
    X(ring_rejects_oversized_records)                                                                   \
    X(ring_skips_a_record_its_writer_abandoned)                                                         \
    X(ring_survives_damaged_slots)                                                                      \
    X(ring_many_writers_one_reader_loses_nothing)                                                       \
    X(uuid_v7_has_version_variant_and_time)                                                             \
    X(debug_id_follows_posthogs_example)                                                                \
    X(config_defaults_and_bad_values)                                                                   \
    X(text_path_writes_what_the_tree_path_builds)                                                       \
    X(text_and_tree_agree_on_random_records)

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
#define RUN(name)                                                                                       \
    if (argc < 2 || !strcmp(argv[1], #name)) {                                                          \
        int before = failures;                                                                          \
        name();                                                                                         \
        if (failures == before) {                                                                       \
            printf("ok   %s\n", #name);                                                                 \
            passed++;                                                                                   \
        } else {                                                                                        \
            printf("FAIL %s\n", #name);                                                                 \
            failed++;                                                                                   \
        }                                                                                               \
    }
    TESTS(RUN)
    printf("%d passed, %d failed\n", passed, failed);
    return failed || !passed;
}
