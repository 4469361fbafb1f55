"""test_contexts.py - contexts through tattle.h, end to end: each
posthog-python scenario (shared/reference/posthog-wire.md section 3) runs in
tests/contexts/ctx.c under the agent, and the events it captured are read
back from the file sink. Usage: test_contexts.py [CASE...]
"""
import os

import harness as h

CTX = os.path.join(h.BUILD, "tests", "ctx")
CTX_NOPIE = os.path.join(h.BUILD, "tests", "ctx_nopie")
CTX_CXX = os.path.join(h.BUILD, "tests", "ctx_cxx")
S1 = "0193a3d0-0000-7000-8000-00000000abcd"
S2 = "0193a3d0-0000-7000-8000-00000000beef"
SDK_KEYS = {"arguments", "executable", "pid", "ppid", "hostname", "$os", "$os_version", "arch", "$lib",
            "$lib_version", "$is_server", "$geoip_disable", "$process_person_profile"}


def scenario(verb, exe=CTX, **env):
    box = h.Sandbox(verb)
    try:
        r = h.run([exe, verb], env=box.agent_env(**env), cwd=box.dir)
        return r, box.events()
    finally:
        box.cleanup()


def by_name(events):
    out = {}
    for e in events:
        out.setdefault(e["event"], []).append(e)
    return out


def tags(event):
    """What the context contributed: the properties beyond the SDK's own."""
    return {k: v for k, v in event["properties"].items()
            if k not in SDK_KEYS and k not in ("$context_tags", "$session_id")}


def anonymous(event):
    return event["properties"].get("$process_person_profile") is False


def run_ok(verb, exe=CTX, **env):
    r, events = scenario(verb, exe, **env)
    h.check_equal(r.describe(), "exited with 0", "the scenario program succeeds", r.stdout, r.stderr)
    return by_name(events), r


def tags_keep_types():
    ev, _ = run_ok("tags_keep_types")
    s1 = ev["s1"][0]
    h.check_equal(tags(s1), {"key1": "value1", "key2": 2}, "tags keep their JSON types")
    h.check_equal(sorted(s1["properties"]["$context_tags"]), ["key1", "key2"], "$context_tags lists the keys")


def fresh_and_siblings():
    ev, _ = run_ok("fresh_and_siblings")
    h.check_equal(tags(ev["inner_fresh_empty"][0]), {}, "a fresh inner context starts empty")
    h.check_equal(tags(ev["inner_fresh_tagged"][0]), {"inner": "value"}, "it sees only its own tags")
    h.check_equal(tags(ev["sibling"][0]), {"outer": "value"}, "a later sibling does not see the earlier one")
    h.check_equal(tags(ev["outer_after"][0]), {"outer": "value"}, "the outer context is unchanged")


def three_fresh_levels():
    ev, _ = run_ok("three_fresh_levels")
    h.check_equal(tags(ev["at3"][0]), {"level3": "value3"}, "innermost fresh level")
    h.check_equal(tags(ev["at2"][0]), {"level2": "value2"}, "after one pop")
    h.check_equal(tags(ev["at1"][0]), {"level1": "value1"}, "after two pops")


def scoped():
    ev, r = run_ok("scoped")
    h.check_equal(r.stdout, "returned 3\n", "the scoped function returns normally")
    h.check_equal(tags(ev["in_scope"][0]), {"x": 1, "y": 2}, "tags inside the scope")
    h.check_equal(tags(ev["after_scope"][0]), {}, "nothing left after the scope ends")
    h.check("$context_tags" not in ev["after_scope"][0]["properties"], "no $context_tags without tags")


def identify_and_session():
    ev, _ = run_ok("identify_and_session")
    h.check(anonymous(ev["anonymous"][0]), "no distinct ID before identify_context")
    t = ev["test_event"][0]
    h.check_equal(t["distinct_id"], "user123", "the context's distinct ID")
    h.check_equal(t["properties"]["$session_id"], S1, "the context's session")
    h.check_equal(tags(t), {"client_tag": "tag-value", "custom_prop": "value"}, "tags and explicit properties")
    h.check_equal(t["properties"]["$context_tags"], ["client_tag"], "$context_tags has the tag keys only")
    h.check(not anonymous(t), "an identified event keeps its person profile")


def nested_identity():
    ev, _ = run_ok("nested_identity")
    fresh = ev["fresh_inner"][0]
    h.check(anonymous(fresh) and "$session_id" not in fresh["properties"], "a fresh inner context has neither")
    for name in ("outer_again", "inherited", "outer_restored"):
        e = ev[name][0]
        h.check_equal((e["distinct_id"], e["properties"].get("$session_id")), ("user123", S1), name)
    o = ev["overridden"][0]
    h.check_equal((o["distinct_id"], o["properties"]["$session_id"]), ("user789", S2), "the child overrides both")


def tag_precedence():
    ev, _ = run_ok("tag_precedence")
    h.check_equal(tags(ev["child_inherits"][0]), {"shared_key": "parent_value", "parent_only": "parent"},
                  "a child sees its parent's tags")
    h.check_equal(tags(ev["child"][0]), {"shared_key": "child_value", "parent_only": "parent",
                                         "child_only": "child"}, "the child's value wins")
    h.check_equal(tags(ev["parent"][0]), {"shared_key": "parent_value", "parent_only": "parent"},
                  "the parent is unchanged")


def scoped_identity():
    ev, _ = run_ok("scoped_identity")
    s = ev["scoped_identity"][0]
    h.check_equal((s["distinct_id"], s["properties"]["$session_id"]), ("user456", S2), "inside the scope")
    a = ev["after"][0]
    h.check(anonymous(a) and "$session_id" not in a["properties"], "nothing after the scope")


def threads():
    ev, _ = run_ok("threads")
    ids = sorted(e["distinct_id"] for e in ev["thread_event"])
    h.check_equal(ids, ["user_1", "user_1", "user_2", "user_2"], "each thread's events carry its own user")
    per_thread = {}
    for e in ev["thread_event"]:
        per_thread.setdefault(e["distinct_id"], set()).add(e["properties"]["pid"])
    h.check("main-user" not in ids, "a new thread does not inherit the main thread's context")


def new_thread_starts_empty():
    ev, _ = run_ok("new_thread_starts_empty")
    h.check_equal(tags(ev["new_thread"][0]), {}, "a new thread starts with no context")


def fork_resets():
    ev, _ = run_ok("fork_resets")
    c = ev["child_ctx"][0]
    h.check_equal((c["distinct_id"], c["properties"]["$session_id"], tags(c)),
                  ("child-user", S2, {"child-tag": "child-value"}), "the child sees only its own context")
    for name in ("child_left_ctx", "child_top"):
        e = ev[name][0]
        h.check(anonymous(e) and tags(e) == {} and "$session_id" not in e["properties"],
                "%s: nothing from the parent survives the fork" % name, e["properties"])
    p = ev["parent_after_fork"][0]
    h.check_equal((p["distinct_id"], p["properties"]["$session_id"], tags(p)),
                  ("parent-user", S1, {"parent-tag": "parent-value"}), "the parent is unaffected")
    h.check(c["properties"]["pid"] != p["properties"]["pid"], "the child's events carry its own pid")


def explicit_wins():
    ev, _ = run_ok("explicit_wins")
    a = ev["as_event"][0]
    h.check_equal(a["distinct_id"], "distinct_id", "capture_as's distinct ID wins over the context's")
    h.check_equal(a["properties"]["$session_id"], S1, "the context's session is still added")
    h.check_equal(ev["same_session"][0]["properties"]["$session_id"], S1, "an equal explicit session is kept")
    o = ev["other_session"][0]["properties"]
    h.check_equal(o["$session_id"], "explicit-session-override", "an explicit session wins")
    h.check_equal(o["k"], "explicit", "an explicit property wins over a tag")


def deep_merge():
    ev, _ = run_ok("deep_merge")
    h.check_equal(tags(ev["merged"][0]), {"job": {"kind": "batch", "id": 1, "count": 2}, "list": [3]},
                  "objects merge deeply across levels; other values are replaced")


def process_level():
    ev, _ = run_ok("process_level", TATTLE_TAGS="team=core,tier=1", TATTLE_RELEASE="1.2.3",
                   TATTLE_ENVIRONMENT="staging")
    p = ev["process_only"][0]
    h.check_equal(tags(p), {"team": "core", "tier": "1", "release": "1.2.3", "environment": "staging",
                            "region": "eu"}, "process tags from the environment and the API")
    h.check_equal(p["distinct_id"], "process-user", "the process distinct ID")
    c = ev["context_overrides"][0]
    h.check_equal(tags(c)["region"], "us", "a context overrides a process tag, even a fresh one")
    h.check_equal(c["distinct_id"], "process-user", "the process level stays under fresh contexts")


def bad_input():
    ev, r = run_ok("bad_input")
    got = dict(line.rsplit(" = ", 1) for line in r.stdout.splitlines())
    want = {
        'tattle_tag("k", "1")': "-1004", 'tattle_tag(NULL, "1")': "-22", 'tattle_tag("", "1")': "-22",
        'tattle_tag("k", NULL)': "-22", 'tattle_tag("k", "{\\"a\\":}")': "-1001",
        "tattle_tag(\"k\", \"'single'\")": "-1001", 'tattle_tag("k", "[1,]")': "-1001",
        'tattle_tag("k", "\\"\\xff\\xfe\\"")': "-1002", 'tattle_tag("\\xc0\\xaf", "1")': "-1002",
        'tattle_tag("k", big)': "-7", 'tattle_identify_context("")': "-22",
        'tattle_set_context_session("session456")': "-1003",
        'tattle_set_context_session("0193a3d0-0000-4000-8000-00000000abcd")': "-1003",
        "tattle_capture(NULL, NULL)": "-22", 'tattle_capture("e", "[1,2]")': "-1001",
        'tattle_capture("e", "{\\"a\\":1")': "-1001", "tattle_new_context(99)": "-22",
        'tattle_add_breadcrumb(NULL, "m")': "-22", 'tattle_tag("ok", "{\\"still\\":\\"fine\\"}")': "0",
    }
    h.check_equal(got, want, "every bad input gets its defined code")
    lines = r.stderr.splitlines()
    h.check_equal(len(lines), len(set(lines)), "no warning is repeated", r.stderr)
    h.check(all(l.startswith("tattle: ") for l in lines) and 5 <= len(lines) <= 10,
            "one line per kind of mistake", r.stderr)
    h.check_equal(tags(ev["after_bad_input"][0]), {"ok": {"still": "fine"}}, "the context is unchanged")
    h.check_equal(tags(ev["after_unbalanced"][0]), {}, "an unbalanced end_context is harmless")
    h.check("e" not in ev, "refused captures send nothing")


def handled_exception():
    ev, _ = run_ok("handled_exception")
    e = ev["$exception"][0]
    p = e["properties"]
    ex = p["$exception_list"][0]
    h.check_equal((ex["type"], ex["value"]), ("ParseError", "line 3: unexpected '}'"), "type and message")
    h.check_equal(ex["mechanism"]["handled"], True, "a handled exception")
    h.check_equal(p["$exception_level"], "error", "level error")
    names = [f.get("function") for f in h.frames_innermost_first(e)]
    h.check(names[:3] == ["handled_exception_inner", "handled_exception", "main"],
            "the caller's symbolized stack, innermost first", names)
    h.check_equal(p["file"], "config.json", "the context's tags")
    h.check_equal([(b["category"], b["message"]) for b in p["breadcrumbs"]],
                  [("io", "opened config.json"), ("parse", "reading section [server]")], "the breadcrumbs")


def crash_in_context():
    r, events = scenario("crash_in_context")
    h.check_equal(r.signal, 11, "the program still dies by SIGSEGV")
    crashes = h.exceptions(events)
    h.check_equal(len(crashes), 1, "one crash event")
    c = crashes[0]
    p = c["properties"]
    h.check_equal(c["distinct_id"], "crash-user", "the crashing thread's user")
    h.check_equal(p["$session_id"], S1, "its session")
    h.check_equal((p["request_id"], p["stage"]), ("req-42", "render"), "its nested tags")
    h.check_equal(sorted(p["$context_tags"]), ["request_id", "stage"], "$context_tags")
    h.check_equal(p["breadcrumbs"][-1]["message"], "GET /orders/42", "the latest breadcrumb")


def crash_no_capture():
    box = h.Sandbox("nocap")
    try:
        plain = h.run([CTX, "crash_no_capture"], env=box.base_env(), cwd=box.dir)
        agent = h.run([CTX, "crash_no_capture"], env=box.agent_env(), cwd=box.dir)
        h.check_equal(agent.describe(), plain.describe(), "the death is unchanged")
        h.check_equal(agent.stderr, plain.stderr, "no report")
        h.check_equal(h.exceptions(box.events()), [], "no event")
    finally:
        box.cleanup()


def crash_nested_in_no_capture():
    r, events = scenario("crash_nested_in_no_capture")
    h.check_equal(r.signal, 11, "dies by SIGSEGV")
    h.check_equal(len(h.exceptions(events)), 1, "the innermost context captures, so it is reported")


def typed_tags():
    ev, _ = run_ok("typed_tags")
    h.check_equal(tags(ev["typed"][0]), {"s": "quote \" and \\ and \n newline", "i": -42, "d": 2.5, "b": True},
                  "typed helpers produce JSON of the right type")


def no_pie_binds_to_the_agent():
    ev, _ = run_ok("tags_keep_types", exe=CTX_NOPIE)
    h.check_equal(tags(ev["s1"][0]), {"key1": "value1", "key2": 2}, "a -no-pie program reaches the agent")


def without_agent_every_call_is_a_noop():
    for exe in (CTX, CTX_NOPIE):
        box = h.Sandbox("noagent")
        try:
            r = h.run([exe, "no_agent"], env=box.base_env(), cwd=box.dir)
            h.check_equal((r.describe(), r.stdout, r.stderr),
                          ("exited with 0", "loaded=0 tag=0 capture=0 exc=0 flush=0\n", ""),
                          "%s runs and every call returns 0" % os.path.basename(exe))
        finally:
            box.cleanup()


def header_compiles_as_cxx():
    ev, r = run_ok("", exe=CTX_CXX)
    h.check_equal(r.stdout, "capture=0\n", "the C++ program captured")
    e = ev["cxx_event"][0]
    h.check_equal((e["distinct_id"], tags(e)), ("cxx-user", {"lang": "c++", "ok": True}), "its context")


TESTS = {f.__name__: f for f in [
    tags_keep_types, fresh_and_siblings, three_fresh_levels, scoped, identify_and_session, nested_identity,
    tag_precedence, scoped_identity, threads, new_thread_starts_empty, fork_resets, explicit_wins,
    deep_merge, process_level, bad_input, handled_exception, crash_in_context, crash_no_capture,
    crash_nested_in_no_capture, typed_tags, no_pie_binds_to_the_agent, without_agent_every_call_is_a_noop,
    header_compiles_as_cxx,
]}

if __name__ == "__main__":
    h.main(TESTS)
