/* ctx.c - the posthog-python context scenarios (shared/reference/
 * posthog-wire.md section 3), ported to tattle.h, one verb each. Each
 * scenario captures events named after its steps; the test reads what
 * arrived. Built as PIE and as -no-pie; runs with and without the agent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tattle.h"

#define S1 "0193a3d0-0000-7000-8000-00000000abcd"
#define S2 "0193a3d0-0000-7000-8000-00000000beef"

static void step(const char *name) { tattle_capture(name, NULL); }

static void tags_keep_types(void) /* 1 */
{
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("key1", "\"value1\"");
    tattle_tag("key2", "2");
    step("s1");
    tattle_end_context();
}

static void fresh_and_siblings(void) /* 2, 3 */
{
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("outer", "\"value\"");
    tattle_new_context(TATTLE_FRESH);
    step("inner_fresh_empty");
    tattle_tag("inner", "\"value\"");
    step("inner_fresh_tagged");
    tattle_end_context();
    tattle_new_context(0);
    step("sibling");
    tattle_end_context();
    step("outer_after");
    tattle_end_context();
}

static void three_fresh_levels(void) /* 4 */
{
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("level1", "\"value1\"");
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("level2", "\"value2\"");
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("level3", "\"value3\"");
    step("at3");
    tattle_end_context();
    step("at2");
    tattle_end_context();
    step("at1");
    tattle_end_context();
}

static int scoped_tags(void)
{
    TATTLE_SCOPED(0);
    tattle_tag("x", "1");
    tattle_tag("y", "2");
    step("in_scope");
    return 3;
}

static void scoped(void) /* 5 */
{
    printf("returned %d\n", scoped_tags());
    step("after_scope");
}

static void identify_and_session(void) /* 12, 13, 21 */
{
    tattle_new_context(TATTLE_FRESH);
    step("anonymous");
    tattle_identify_context("user123");
    tattle_set_context_session(S1);
    tattle_tag("client_tag", "\"tag-value\"");
    tattle_capture("test_event", "{\"custom_prop\":\"value\"}");
    tattle_end_context();
}

static void nested_identity(void) /* 14, 15 */
{
    tattle_new_context(TATTLE_FRESH);
    tattle_identify_context("user123");
    tattle_set_context_session(S1);
    tattle_new_context(TATTLE_FRESH);
    step("fresh_inner");
    tattle_end_context();
    step("outer_again");
    tattle_new_context(0);
    step("inherited");
    tattle_identify_context("user789");
    tattle_set_context_session(S2);
    step("overridden");
    tattle_end_context();
    step("outer_restored");
    tattle_end_context();
}

static void tag_precedence(void) /* 16 */
{
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("shared_key", "\"parent_value\"");
    tattle_tag("parent_only", "\"parent\"");
    tattle_new_context(0);
    step("child_inherits");
    tattle_tag("shared_key", "\"child_value\"");
    tattle_tag("child_only", "\"child\"");
    step("child");
    tattle_end_context();
    step("parent");
    tattle_end_context();
}

static void scoped_identity_inner(void)
{
    TATTLE_SCOPED(0);
    tattle_identify_context("user456");
    tattle_set_context_session(S2);
    step("scoped_identity");
}

static void scoped_identity(void) /* 17 */
{
    scoped_identity_inner();
    step("after");
}

static pthread_barrier_t barrier;

static void *identify_thread(void *arg)
{
    const char *user = arg;
    TATTLE_SCOPED(0);
    tattle_identify_context(user);
    pthread_barrier_wait(&barrier); /* both identified before either captures */
    tattle_capture("thread_event", NULL);
    pthread_barrier_wait(&barrier);
    tattle_capture("thread_event", NULL);
    return NULL;
}

static void threads(void) /* 18 */
{
    pthread_t a, b;
    pthread_barrier_init(&barrier, NULL, 2);
    tattle_new_context(0);
    tattle_identify_context("main-user");
    pthread_create(&a, NULL, identify_thread, "user_1");
    pthread_create(&b, NULL, identify_thread, "user_2");
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    tattle_end_context();
}

static void *bare_thread(void *arg)
{
    (void)arg;
    step("new_thread");
    return NULL;
}

static void new_thread_starts_empty(void)
{
    pthread_t t;
    tattle_new_context(0);
    tattle_tag("main_only", "1");
    pthread_create(&t, NULL, bare_thread, NULL);
    pthread_join(t, NULL);
    tattle_end_context();
}

static void fork_resets(void) /* 19 */
{
    pid_t pid;
    int status;
    tattle_new_context(TATTLE_FRESH);
    tattle_identify_context("parent-user");
    tattle_set_context_session(S1);
    tattle_tag("parent-tag", "\"parent-value\"");
    tattle_new_context(0);
    tattle_flush(5000);
    pid = fork();
    if (pid == 0) {
        tattle_new_context(0);
        tattle_identify_context("child-user");
        tattle_set_context_session(S2);
        tattle_tag("child-tag", "\"child-value\"");
        step("child_ctx");
        tattle_end_context();
        step("child_left_ctx");
        tattle_end_context();
        tattle_end_context();
        step("child_top");
        exit(0);
    }
    waitpid(pid, &status, 0);
    step("parent_after_fork");
    tattle_end_context();
    tattle_end_context();
}

static void explicit_wins(void) /* 20, 22 */
{
    tattle_new_context(0);
    tattle_identify_context("context-user");
    tattle_set_context_session(S1);
    tattle_tag("k", "\"from-context\"");
    tattle_capture_as("as_event", "distinct_id", "{\"custom_prop\":1}");
    tattle_capture("same_session", "{\"$session_id\":\"" S1 "\"}");
    tattle_capture("other_session", "{\"$session_id\":\"explicit-session-override\",\"k\":\"explicit\"}");
    tattle_end_context();
}

static void deep_merge(void)
{
    tattle_process_tag("job", "{\"kind\":\"batch\",\"id\":0}");
    tattle_new_context(0);
    tattle_tag("job", "{\"id\":1,\"count\":1}");
    tattle_new_context(0);
    tattle_tag("job", "{\"count\":2}");
    tattle_tag("list", "[1,2]");
    tattle_new_context(0);
    tattle_tag("list", "[3]");
    step("merged");
    tattle_end_context();
    tattle_end_context();
    tattle_end_context();
}

static void process_level(void)
{
    tattle_process_tag("region", "\"eu\"");
    tattle_process_identify("process-user");
    step("process_only");
    tattle_new_context(TATTLE_FRESH);
    tattle_tag("region", "\"us\"");
    step("context_overrides");
    tattle_end_context();
}

#define SHOW(call) printf("%s = %d\n", #call, call)

static void bad_input(void)
{
    char big[9000];
    memset(big, 'a', sizeof big);
    big[0] = '"';
    big[sizeof big - 2] = '"';
    big[sizeof big - 1] = 0;
    SHOW(tattle_tag("k", "1"));
    tattle_new_context(0);
    SHOW(tattle_tag(NULL, "1"));
    SHOW(tattle_tag("", "1"));
    SHOW(tattle_tag("k", NULL));
    SHOW(tattle_tag("k", "{\"a\":}"));
    SHOW(tattle_tag("k", "'single'"));
    SHOW(tattle_tag("k", "[1,]"));
    SHOW(tattle_tag("k", "\"\xff\xfe\""));
    SHOW(tattle_tag("\xc0\xaf", "1"));
    SHOW(tattle_tag("k", big));
    SHOW(tattle_identify_context(""));
    SHOW(tattle_set_context_session("session456"));
    SHOW(tattle_set_context_session("0193a3d0-0000-4000-8000-00000000abcd"));
    SHOW(tattle_capture(NULL, NULL));
    SHOW(tattle_capture("e", "[1,2]"));
    SHOW(tattle_capture("e", "{\"a\":1"));
    SHOW(tattle_new_context(99));
    SHOW(tattle_add_breadcrumb(NULL, "m"));
    SHOW(tattle_tag("ok", "{\"still\":\"fine\"}"));
    step("after_bad_input");
    tattle_end_context();
    tattle_end_context(); /* unbalanced: harmless */
    tattle_end_context();
    step("after_unbalanced");
}

static void handled_exception_inner(void) { tattle_capture_exception("ParseError", "line 3: unexpected '}'"); }

static void handled_exception(void)
{
    tattle_new_context(0);
    tattle_tag("file", "\"config.json\"");
    tattle_add_breadcrumb("io", "opened config.json");
    tattle_add_breadcrumb("parse", "reading section [server]");
    handled_exception_inner();
    tattle_end_context();
}

static void crash_in_context(void)
{
    tattle_new_context(0);
    tattle_identify_context("crash-user");
    tattle_set_context_session(S1);
    tattle_tag("request_id", "\"req-42\"");
    tattle_new_context(0);
    tattle_tag("stage", "\"render\"");
    tattle_add_breadcrumb("http", "GET /orders/42");
    tattle_flush(5000);
    *(volatile int *)0 = 1;
}

static void crash_no_capture(void)
{
    tattle_new_context(TATTLE_NO_CAPTURE_EXCEPTIONS);
    tattle_tag("noisy", "true");
    *(volatile int *)0 = 1;
}

static void crash_nested_in_no_capture(void)
{
    tattle_new_context(TATTLE_NO_CAPTURE_EXCEPTIONS);
    tattle_new_context(0); /* the innermost context decides */
    *(volatile int *)0 = 1;
}

/* Start the flusher with a capture, say so, wait for a line on stdin (the
 * test kills the flusher meanwhile), then crash. */
static void crash_after_flusher_killed(void)
{
    char line[16];
    tattle_capture("before", NULL);
    tattle_flush(5000);
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return;
    *(volatile int *)0 = 1;
}

static void typed_tags(void)
{
    tattle_new_context(0);
    tattle_tag_string("s", "quote \" and \\ and \n newline");
    tattle_tag_int("i", -42);
    tattle_tag_double("d", 2.5);
    tattle_tag_bool("b", 1);
    step("typed");
    tattle_end_context();
}

static void no_agent(void)
{
    TATTLE_SCOPED(TATTLE_FRESH);
    printf("loaded=%d tag=%d capture=%d exc=%d flush=%d\n", tattle_agent_loaded(), tattle_tag("k", "1"),
           tattle_capture("e", NULL), tattle_capture_exception("T", "m"), tattle_flush(100));
}

struct verb {
    const char *name;
    void (*run)(void);
};

static const struct verb verbs[] = {
    {"tags_keep_types", tags_keep_types},   {"fresh_and_siblings", fresh_and_siblings},
    {"three_fresh_levels", three_fresh_levels}, {"scoped", scoped},
    {"identify_and_session", identify_and_session}, {"nested_identity", nested_identity},
    {"tag_precedence", tag_precedence},     {"scoped_identity", scoped_identity},
    {"threads", threads},                   {"new_thread_starts_empty", new_thread_starts_empty},
    {"fork_resets", fork_resets},           {"explicit_wins", explicit_wins},
    {"deep_merge", deep_merge},             {"process_level", process_level},
    {"bad_input", bad_input},               {"handled_exception", handled_exception},
    {"crash_in_context", crash_in_context}, {"crash_no_capture", crash_no_capture},
    {"crash_nested_in_no_capture", crash_nested_in_no_capture}, {"typed_tags", typed_tags},
    {"crash_after_flusher_killed", crash_after_flusher_killed},
    {"no_agent", no_agent},
};

int main(int argc, char **argv)
{
    size_t i;
    for (i = 0; argc == 2 && i < sizeof verbs / sizeof verbs[0]; i++) {
        if (!strcmp(argv[1], verbs[i].name)) {
            verbs[i].run();
            fflush(stdout);
            return tattle_flush(5000) == 0 ? 0 : 3;
        }
    }
    fprintf(stderr, "usage: ctx SCENARIO\n");
    return 2;
}
