/* test_units.c - unit tests for the pure parts of the agent: the ring, UUIDv7,
 * PostHog's debug_id rule, config parsing. Usage: test_units [NAME]. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
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

#define TESTS(X)                                                                                        \
    X(ring_roundtrip_keeps_order_and_bytes)                                                             \
    X(ring_full_drops_and_counts)                                                                       \
    X(ring_rejects_oversized_records)                                                                   \
    X(ring_skips_a_record_its_writer_abandoned)                                                         \
    X(ring_many_writers_one_reader_loses_nothing)                                                       \
    X(uuid_v7_has_version_variant_and_time)                                                             \
    X(debug_id_follows_posthogs_example)                                                                \
    X(config_defaults_and_bad_values)

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
