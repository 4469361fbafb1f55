"""test_sentry.py - SENTRY_DSN: crashes and handled exceptions delivered to a
strict Sentry stand-in on 127.0.0.1 (sentry_standin.py), beside PostHog or
alone; a server that is down, rate-limits or refuses the key; the key kept
out of every event, file and command line.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from posthog_standin import StandIn  # noqa: E402
from sentry_standin import SentryStandIn, free_port  # noqa: E402

TESTS_DIR = os.path.join(h.BUILD, "tests")
CRASHER = os.path.join(TESTS_DIR, "crasher")
EMITTER = os.path.join(TESTS_DIR, "emitter")


def with_sentry(**opts):
    def wrap(fn):
        def test():
            box = h.Sandbox(fn.__name__[:20])
            sentry = SentryStandIn(**opts)
            try:
                fn(box, sentry)
            finally:
                sentry.stop()
                box.cleanup()
        test.__name__ = fn.__name__
        return test
    return wrap


def env_for(box, sentry, **extra):
    settings = dict(SENTRY_DSN=sentry.dsn, TATTLE_SPOOL_DIR=os.path.join(box.dir, "spool"), TATTLE_LINGER_MS=2000)
    settings.update(extra)
    return box.agent_env(**settings)


def crash(box, env, verb="null"):
    return h.run([CRASHER, verb], env=env, cwd=box.dir)


def frames_of(ev):
    return ev["exception"]["values"][-1]["stacktrace"]["frames"]


@with_sentry()
def a_crash_arrives_as_a_sentry_event(box, sentry):
    r = crash(box, env_for(box, sentry), "all-threads")
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV", r.stderr[-1500:])
    h.check("queued for Sentry" in r.stderr, "the report says where the event went", r.stderr[-1500:])
    h.check(sentry.wait_for(lambda s: s.events, 15), "the crash reached the stand-in",
            [(q["status"], q["violation"]) for q in sentry.requests])
    h.check_equal(sentry.violations(), [], "every request met Sentry's rules")
    ev = sentry.events[0]
    ex = ev["exception"]["values"][-1]
    h.check_equal((ev["level"], ex["type"]), ("fatal", "SIGSEGV"), "a fatal SIGSEGV")
    h.check_equal((ex["mechanism"]["type"], ex["mechanism"]["handled"]), ("signalhandler", False), "its mechanism")
    h.check_equal(ex["mechanism"]["meta"]["signal"], {"name": "SIGSEGV", "number": 11, "code_name": "SEGV_MAPERR"},
                  "the signal in mechanism.meta")
    names = [f.get("function") for f in frames_of(ev)]
    h.check_equal(names[-5:], ["crash_all_threads", "level1", "level2", "level3", "write_null"],
                  "frames oldest first, the crash site last", names)
    images = ev["debug_meta"]["images"]
    exe = [i for i in images if i.get("code_file") == CRASHER]
    h.check(exe and exe[0]["type"] == "elf" and len(exe[0]["debug_id"]) == 36, "the executable's debug image", images)
    threads = ev["threads"]["values"]
    h.check_equal(len(threads), 5, "every thread")
    h.check_equal([t["crashed"] for t in threads].count(True), 1, "one crashed thread")
    h.check(all("stacktrace" in t for t in threads if not t["crashed"]), "the others with their stacks")
    h.check_equal(ev["sdk"]["name"], "tattle", "the sdk")


CTX = os.path.join(TESTS_DIR, "ctx")
S1 = "0193a3d0-0000-7000-8000-00000000abcd"


@with_sentry()
def a_handled_exception_is_an_error_with_its_breadcrumbs(box, sentry):
    r = h.run([CTX, "handled_exception"], env=env_for(box, sentry), cwd=box.dir)
    h.check_equal(r.exit_code, 0, "the program exits 0", r.stderr[-1500:])
    h.check(sentry.wait_for(lambda s: s.events, 15), "the handled exception arrived")
    h.check_equal(sentry.violations(), [], "every request met Sentry's rules")
    ev = sentry.events[0]
    ex = ev["exception"]["values"][-1]
    h.check_equal((ev["level"], ex["type"], ex["value"]), ("error", "ParseError", "line 3: unexpected '}'"),
                  "level error, the type and message given")
    h.check_equal(ex["mechanism"]["handled"], True, "handled")
    h.check("meta" not in ex["mechanism"], "no signal for a handled exception")
    h.check_equal(ev["tags"].get("file"), "config.json", "a context's string tag is a Sentry tag")
    crumbs = [b.get("message") for b in ev.get("breadcrumbs", [])]
    h.check_equal(crumbs, ["opened config.json", "reading section [server]"], "the breadcrumbs, oldest first")


@with_sentry()
def a_crash_in_a_context_carries_user_session_and_tags(box, sentry):
    r = h.run([CTX, "crash_in_context"], env=env_for(box, sentry), cwd=box.dir)
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV", r.stderr[-1500:])
    h.check(sentry.wait_for(lambda s: s.events, 15), "the crash arrived")
    ev = sentry.events[0]
    h.check_equal(ev.get("user"), {"id": "crash-user"}, "the context's distinct ID is the user")
    h.check_equal((ev["tags"].get("request_id"), ev["tags"].get("stage")), ("req-42", "render"),
                  "tags of both nested contexts")
    h.check_equal(ev["tags"].get("session_id"), S1, "the session ID as a tag")
    h.check_equal(ev["contexts"]["tattle"].get("session_id"), S1, "and in the tattle context")


@with_sentry()
def custom_events_are_not_sent_to_sentry(box, sentry):
    r = h.run([CTX, "typed_tags"], env=env_for(box, sentry), cwd=box.dir)
    h.check_equal(r.exit_code, 0, "the program exits 0", r.stderr[-1500:])
    time.sleep(0.5)
    h.check_equal(sentry.events, [], "custom events are not sent to Sentry (they are analytics)")
    h.check_equal(sentry.requests, [], "no request at all")


@with_sentry()
def with_sentry_alone_custom_events_become_breadcrumbs(box, sentry):
    r = h.run([EMITTER, "0", "3", "crash"], env=env_for(box, sentry), cwd=box.dir)
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV", r.stderr[-1500:])
    h.check(sentry.wait_for(lambda s: s.events, 15), "the crash arrived")
    crumbs = [(b.get("category"), b.get("message")) for b in sentry.events[0].get("breadcrumbs", [])]
    h.check_equal(crumbs, [("event", "burst")] * 3, "the three custom events are the crash's breadcrumbs")
    h.check_equal(len(sentry.events), 1, "and not events of their own")


@with_sentry()
def a_killed_hosts_errors_are_delivered(box, sentry):
    """Handled exceptions of a host SIGKILLed right after capturing them."""
    env = env_for(box, sentry, EMITTER_EXCEPTIONS=1)
    r = h.run([EMITTER, "0", "5", "kill"], env=env, cwd=box.dir)
    h.check_equal(r.signal, signal.SIGKILL, "it was SIGKILLed")
    h.check(sentry.wait_for(lambda s: len(s.events) >= 5, 15), "its five exceptions arrived",
            len(sentry.events))
    h.check_equal(sorted(e["exception"]["values"][-1]["type"] for e in sentry.events), ["Burst"] * 5,
                  "each once, as handled exceptions")


@with_sentry()
def both_destinations_one_down(box, sentry):
    """PostHog down, Sentry up: the crash reaches Sentry at once; PostHog's
    batch waits in its own queue."""
    env = env_for(box, sentry, POSTHOG_API_KEY="phc_tattle_sentry_test", POSTHOG_HOST="http://127.0.0.1:%d" %
                  free_port())
    r = crash(box, env)
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV")
    h.check(sentry.wait_for(lambda s: s.events, 15), "Sentry got the crash although PostHog is down")
    posthog_batches = glob.glob(os.path.join(box.dir, "spool", "posthog-*", "*.batch"))
    h.check_equal(len(posthog_batches), 1, "PostHog's batch waits in PostHog's queue",
                  os.listdir(os.path.join(box.dir, "spool")))
    # The batch file goes once the answer is read, just after the arrival.
    deadline = time.monotonic() + 10
    while glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.batch")) and time.monotonic() < deadline:
        time.sleep(0.05)
    sentry_batches = glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.batch"))
    h.check_equal(sentry_batches, [], "Sentry's queue is empty once delivered")


@with_sentry()
def both_destinations_both_get_it(box, sentry):
    posthog = StandIn()
    try:
        env = env_for(box, sentry, POSTHOG_API_KEY="phc_tattle_sentry_test", POSTHOG_HOST=posthog.url)
        r = h.run([EMITTER, "0", "3", "crash"], env=env, cwd=box.dir)
        h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV")
        h.check(sentry.wait_for(lambda s: s.events, 15), "Sentry got the crash")
        h.check(posthog.wait_for(lambda s: len(s.accepted()) >= 4, 15), "PostHog got the crash and the 3 events")
        h.check_equal([e["event"] for e in posthog.accepted()].count("burst"), 3, "custom events go to PostHog")
        h.check_equal(len(sentry.events), 1, "and not to Sentry (they are analytics, not errors)")
        uuid = [e for e in posthog.accepted() if e["event"] == "$exception"][0]["uuid"]
        h.check_equal(sentry.events[0]["event_id"], uuid.replace("-", ""), "one event id for both")
    finally:
        posthog.stop()


@with_sentry(fail_first=1, fail_status=429, headers=(("Retry-After", "1"), ("X-Sentry-Rate-Limits", "1:error:key")))
def a_rate_limit_is_honoured_then_delivered(box, sentry):
    r = crash(box, env_for(box, sentry))
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV")
    h.check(sentry.wait_for(lambda s: s.events, 20), "delivered after the limit",
            [(q["status"], q["violation"]) for q in sentry.requests])
    times = [q["time"] for q in sentry.requests]
    h.check(len(times) == 2, "one refused request, one accepted", [q["status"] for q in sentry.requests])
    h.check(times[1] - times[0] >= 0.95, "no request before the limit expired", times[1] - times[0])


@with_sentry(ok_headers=(("X-Sentry-Rate-Limits", "2:error:key"),))
def a_rate_limit_on_an_accepted_request_holds_the_next(box, sentry):
    """X-Sentry-Rate-Limits on a 200: the event is taken, and the next one
    waits until the limit expires (then arrives)."""
    env = env_for(box, sentry)
    crash(box, env)
    h.check(sentry.wait_for(lambda s: len(s.events) == 1, 15), "the first crash arrived")
    crash(box, env)
    h.check(sentry.wait_for(lambda s: len(s.events) == 2, 20), "the second arrived after the limit")
    times = [q["time"] for q in sentry.requests]
    h.check_equal(len(times), 2, "no request was refused: none was made while held")
    h.check(times[1] - times[0] >= 1.9, "the second request waited for the limit", times[1] - times[0])


@with_sentry(always=413)
def an_event_too_large_is_set_aside(box, sentry):
    r = crash(box, env_for(box, sentry))
    h.check("Sentry refused" in r.stderr or sentry.wait_for(lambda s: s.requests, 15), "the server was asked")
    ok = False
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not ok:
        ok = len(glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.rejected"))) == 1
        time.sleep(0.1)
    h.check(ok, "the event is set aside as *.rejected", os.listdir(os.path.join(box.dir, "spool")))
    time.sleep(1)
    h.check_equal(len(sentry.requests), 1, "and not resent")


@with_sentry(fail_first=1, fail_status=400)
def one_refused_event_leaves_the_others(box, sentry):
    """A 400 for one event: it is set aside; the events after it in its
    batch, never tried, still go."""
    env = env_for(box, sentry, EMITTER_EXCEPTIONS=1)
    r = h.run([EMITTER, "0", "5", "kill"], env=env, cwd=box.dir)
    h.check_equal(r.signal, signal.SIGKILL, "it was SIGKILLed")
    h.check(sentry.wait_for(lambda s: len(s.events) >= 4, 15), "the four others arrived",
            [q["status"] for q in sentry.requests])
    rejected = glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.rejected"))
    h.check_equal(len(rejected), 1, "the refused one is set aside")


@with_sentry(ok_headers=(("X-Sentry-Rate-Limits", "30:transaction;replay:organization"),))
def a_limit_on_other_categories_does_not_hold_errors(box, sentry):
    env = env_for(box, sentry)
    crash(box, env)
    h.check(sentry.wait_for(lambda s: len(s.events) == 1, 15), "the first crash arrived")
    crash(box, env)
    h.check(sentry.wait_for(lambda s: len(s.events) == 2, 10), "the second too: transactions are limited, not errors")


@with_sentry(always=503)
def a_waiting_sentry_queue_is_sent_by_the_next_process(box, sentry):
    """Sentry alone, down when a crash happened: the next process that
    starts (and captures nothing) has the waiting batch sent."""
    env = env_for(box, sentry, TATTLE_LINGER_MS=300)
    crash(box, env)
    h.check(sentry.wait_for(lambda s: s.requests, 15), "the server was asked, and failed")
    deadline = time.monotonic() + 10
    while h.flusher_pids(lambda pid: h.environ_has(pid, "SENTRY_DSN=" + sentry.dsn)) and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check(glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.batch")), "the crash waits in the queue")
    sentry.always = None
    sentry.fail_first = 0
    h.run([EMITTER, "1", "0", "exit"], env=env, cwd=box.dir)  # a later process that uses the agent
    h.check(sentry.wait_for(lambda s: s.events, 15), "delivered once the server is back",
            [q["status"] for q in sentry.requests])


@with_sentry(always=401)
def a_refused_key_keeps_the_event(box, sentry):
    r = crash(box, env_for(box, sentry))
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV")
    h.check(sentry.wait_for(lambda s: s.requests, 15), "the server was asked")
    time.sleep(1.5)
    h.check_equal(len(sentry.requests), 1, "not retried")
    batches = glob.glob(os.path.join(box.dir, "spool", "sentry-*", "*.batch"))
    h.check_equal(len(batches), 1, "the event is kept in Sentry's queue")


@with_sentry()
def the_key_is_in_no_file_or_command_line(box, sentry):
    env = env_for(box, sentry)
    p = subprocess.Popen([EMITTER, "0", "1", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.readline()
    p.stdout.readline()
    try:
        flushers = h.flusher_pids(lambda pid: h.environ_has(pid, "SENTRY_DSN=" + sentry.dsn))
        h.check(flushers, "the flusher runs")
        for pid in flushers:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                h.check(sentry.key.encode() not in f.read(), "the key is not on the flusher's command line")
    finally:
        p.stdin.write(b"x\n")
        p.stdin.flush()
        p.communicate(timeout=30)
    crash(box, env)
    h.check(sentry.wait_for(lambda s: s.events, 15), "the crash arrived")
    for path in glob.glob(os.path.join(box.dir, "**"), recursive=True):
        # A core file holds the program's own environment, SENTRY_DSN with
        # it, with or without the agent: not a file of ours.
        if os.path.isfile(path) and not os.path.basename(path).startswith("core"):
            with open(path, "rb") as f:
                h.check(sentry.key.encode() not in f.read(), "the key is not in %s" % path)
    h.check(sentry.key not in json.dumps(sentry.events), "nor in an event")


@h.with_sandbox
def a_bad_dsn_is_said_once_and_ignored(box):
    r = h.run([CRASHER, "null"], env=box.agent_env(SENTRY_DSN="ftp://nope"), cwd=box.dir)
    h.check_equal(r.signal, signal.SIGSEGV, "it died of SIGSEGV")
    lines = [line for line in r.stderr.splitlines() if "SENTRY_DSN" in line]
    h.check_equal(len(lines), 1, "one line about it", r.stderr[-1500:])
    h.check("ftp://nope" not in r.stderr, "the value is not echoed")
    h.check_equal(len(h.exceptions(box.events())), 1, "the crash went to the file as before")


TESTS = {f.__name__: f for f in [
    a_crash_arrives_as_a_sentry_event,
    a_handled_exception_is_an_error_with_its_breadcrumbs,
    a_crash_in_a_context_carries_user_session_and_tags,
    custom_events_are_not_sent_to_sentry,
    with_sentry_alone_custom_events_become_breadcrumbs,
    a_killed_hosts_errors_are_delivered,
    both_destinations_one_down,
    both_destinations_both_get_it,
    a_rate_limit_is_honoured_then_delivered,
    a_refused_key_keeps_the_event,
    one_refused_event_leaves_the_others,
    a_limit_on_other_categories_does_not_hold_errors,
    a_waiting_sentry_queue_is_sent_by_the_next_process,
    a_rate_limit_on_an_accepted_request_holds_the_next,
    an_event_too_large_is_set_aside,
    the_key_is_in_no_file_or_command_line,
    a_bad_dsn_is_said_once_and_ignored,
]}

if __name__ == "__main__":
    h.main(TESTS)
