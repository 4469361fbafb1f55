"""test_hostile.py - hostile environments degrade to a quiet, working host.

Each case runs a program plain and under the agent in an environment that
takes something away: /proc, a writable disk, free space, the right to
fork (a seccomp filter, RLIMIT_NPROC), being an ordinary process (PID 1 of
a namespace), the loader's trust (a setuid binary), sane configuration.
The host must end the same way and print the same; the agent may add
a few lines of its own on stderr, each said once. Namespaces come from
unshare(1); where the machine refuses them the case is skipped, saying so.
"""
import json
import os
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

TESTS_DIR = os.path.join(h.BUILD, "tests")
CRASHER = os.path.join(TESTS_DIR, "crasher")
EMITTER = os.path.join(TESTS_DIR, "emitter")
NO_FORK = os.path.join(TESTS_DIR, "no_fork")
NO_PIDFD = os.path.join(TESTS_DIR, "no_pidfd")
NOBODY = 65534


with_box = h.with_sandbox


def need_unshare(*flags):
    r = subprocess.run(["unshare"] + list(flags) + ["true"], capture_output=True, text=True)
    if r.returncode != 0:
        raise h.Skip("unshare %s is refused here: %s" % (" ".join(flags), r.stderr.strip()))


def in_mount_ns(setup, argv):
    """argv in a new mount namespace, after the shell commands in setup."""
    return ["unshare", "-m", "sh", "-c", setup + ' && exec "$@"', "sh"] + argv


def agent_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("tattle: ")]


def compare(box, argv, agent_env=None, plain_env=None, preexec=None):
    """The same death and stdout, the host's own stderr intact, and each
    line of the agent's said at most once. Returns the agent's run."""
    plain = h.run(argv, env=plain_env or box.base_env(), cwd=box.dir, preexec=preexec)
    agent = h.run(argv, env=agent_env or box.agent_env(), cwd=box.dir, preexec=preexec)
    h.check_equal(agent.describe(), plain.describe(), "%s ends the same way" % argv[-1], agent.stderr[-2000:])
    h.check_equal(agent.stdout, plain.stdout, "the same stdout")
    own = [line for line in agent.stderr.splitlines() if not line.startswith(("tattle: ", "  #")) and line]
    h.check_equal(own, [line for line in plain.stderr.splitlines() if line], "the host's own stderr is intact")
    lines = agent_lines(agent.stderr)
    h.check_equal(len(lines), len(set(lines)), "each of the agent's lines is said once", lines)
    return agent


def crash_and_capture(box, wrap=lambda argv: argv, **kw):
    crash = compare(box, wrap([CRASHER, "null"]), **kw)
    capture = compare(box, wrap([EMITTER, "0", "20", "flush"]), **kw)
    return crash, capture


@with_box
def without_proc_a_crash_is_still_reported(box):
    need_unshare("-m")
    crash, _ = crash_and_capture(box, lambda argv: in_mount_ns("mount -t tmpfs none /proc", argv))
    evs = h.exceptions(box.events())
    h.check_equal(len(evs), 1, "one $exception event")
    ex = evs[0]["properties"]["$exception_list"][0]
    h.check_equal(ex["type"], "SIGSEGV", "the signal")
    # Without /proc/self/maps the modules are unknown: the frame keeps
    # its address, unsymbolized (a known limitation, in README).
    h.check(ex["stacktrace"]["frames"] and ex["stacktrace"]["frames"][-1].get("instruction_addr"),
            "the crashing frame keeps its address", ex["stacktrace"])
    h.check_equal(len([e for e in box.events() if e["event"] == "burst"]), 20, "every capture arrived")


@with_box
def a_read_only_disk_is_said_once(box):
    need_unshare("-m")
    mnt = os.path.join(box.dir, "mnt")
    os.makedirs(mnt)
    env = box.agent_env(TATTLE_FILE=os.path.join(mnt, "events.jsonl"))
    crash, capture = crash_and_capture(box, lambda argv: in_mount_ns("mount -t tmpfs -o ro,mode=0700 none " + mnt, argv),
                                       agent_env=env)
    h.check("NOT saved" in crash.stderr, "the crash report says the event was not saved", crash.stderr[-1500:])
    h.check(any("cannot write" in line and "Read-only" in line for line in agent_lines(capture.stderr)),
            "the capture run says why, once", capture.stderr)


@with_box
def a_full_disk_is_said_once(box):
    need_unshare("-m")
    mnt = os.path.join(box.dir, "mnt")
    os.makedirs(mnt)
    fill = "mount -t tmpfs -o size=64k,mode=0700 none %s && (cat /dev/zero > %s/fill 2>/dev/null; true)" % (mnt, mnt)
    env = box.agent_env(TATTLE_FILE=os.path.join(mnt, "events.jsonl"))
    crash, capture = crash_and_capture(box, lambda argv: in_mount_ns(fill, argv), agent_env=env)
    h.check("NOT saved" in crash.stderr, "the crash report says the event was not saved", crash.stderr[-1500:])
    h.check(any("No space left" in line for line in agent_lines(capture.stderr)), "the capture run says why",
            capture.stderr)


@with_box
def a_short_write_on_a_full_disk_never_glues_two_events(box):
    """A crash event that does not fit leaves no half line behind: once space
    is back, every line of the file is one whole event."""
    need_unshare("-m")
    mnt = os.path.join(box.dir, "mnt")
    os.makedirs(mnt)
    events = os.path.join(mnt, "events.jsonl")
    script = ("mount -t tmpfs -o size=16k,mode=0700 none {m} && head -c 12288 /dev/zero > {m}/fill && "
              "({crasher} null >/dev/null; true) && rm {m}/fill && {emitter} 1 3 exit >/dev/null && cat {ev}").format(
        m=mnt, crasher=CRASHER, emitter=EMITTER, ev=events)
    r = h.run(["unshare", "-m", "sh", "-c", script], env=box.agent_env(TATTLE_FILE=events), cwd=box.dir)
    h.check("NOT saved" in r.stderr and "No space left" in r.stderr, "the crash event did not fit, and it is said",
            r.stderr[-1500:])
    lines = r.stdout.splitlines()
    bad = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            bad.append(line[:120])
    h.check_equal(bad, [], "every line is a whole event")
    h.check_equal(len(lines), 3, "the three later events, each on its own line", [l[:80] for l in lines])


LATE_CAPTURES = """
import ctypes, time
tattle = ctypes.CDLL(None)
tattle.tattle_capture.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
tattle.tattle_capture(b"first", None)
time.sleep(0.5)  # the flusher is up and has looked at its host's pidfd
for i in range(20):
    tattle.tattle_capture(b"later", None)
print(tattle.tattle_flush(3000))
"""


@with_box
def without_pidfd_open_events_still_arrive(box):
    """Kernels before 5.3, valgrind, older container seccomp profiles: no
    pidfd_open. The flusher must not take its empty slot for a host gone
    (and drop every later capture)."""
    for how in ([], ["eperm"]):
        events = os.path.join(box.dir, "np%d.jsonl" % len(how))
        r = h.run([NO_PIDFD] + how + [sys.executable, "-c", LATE_CAPTURES], env=box.agent_env(TATTLE_FILE=events),
                  cwd=box.dir)
        h.check_equal(r.exit_code, 0, "the host ran", r.stderr[-800:])
        h.check_equal(len(box.events(events)), 21, "every capture arrived (%s)" % (how or "ENOSYS"), r.stdout)


def without_a_flusher(box, why, wrap=lambda argv: argv, preexec=None):
    """No process can be started: the host dies or exits as before, one
    line says why, the crash still names its fault, and the API says
    TATTLE_EAGENT (-1006) instead of pretending."""
    want = "tattle: cannot start the flusher (%s); events and crash reports are not recorded" % why
    crash = compare(box, wrap([CRASHER, "null"]), preexec=preexec)
    lines = agent_lines(crash.stderr)
    h.check(want in lines and any(l.startswith("tattle: SIGSEGV at address 0x0, pc 0x") for l in lines),
            "the crash still names the signal, address and pc", crash.stderr)
    plain = h.run(wrap([EMITTER, "0", "20", "flush"]), env=box.base_env(), cwd=box.dir, preexec=preexec)
    agent = h.run(wrap([EMITTER, "0", "20", "flush"]), env=box.agent_env(), cwd=box.dir, preexec=preexec)
    h.check_equal(plain.stdout, "captured 20 errors 0\nflush 0\n", "without the agent every call is a no-op")
    h.check_equal(agent.describe(), plain.describe(), "the host exits the same way")
    h.check_equal(agent.stdout, "captured 0 errors 20\nflush -1006\n", "the API tells the truth")
    h.check_equal(agent_lines(agent.stderr), [want], "one line says no flusher runs, and why")


@with_box
def a_seccomp_filter_that_forbids_fork(box):
    without_a_flusher(box, "Operation not permitted", wrap=lambda argv: [NO_FORK] + argv)


def as_nobody_with_one_process():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))


@with_box
def the_process_limit_reached(box):
    if os.geteuid() != 0:
        raise h.Skip("needs root: the case runs as nobody")
    os.chmod(box.dir, 0o777)
    without_a_flusher(box, "Resource temporarily unavailable", preexec=as_nobody_with_one_process)


@with_box
def as_pid_1_of_a_namespace(box):
    need_unshare("-p", "-f", "--mount-proc")
    pid1 = lambda argv: ["unshare", "-p", "-f", "--mount-proc"] + argv
    crash_and_capture(box, pid1)
    h.check_equal(len(h.exceptions(box.events())), 1, "the crash is reported")
    # The kernel drops a signal a process sends to PID 1 with no handler:
    # the program lives on, and nothing crashed.
    lives = compare(box, pid1([CRASHER, "raise-then-exit"]))
    h.check_equal(lives.stdout, "crasher: raise-then-exit\nstill running\n", "raise(SIGSEGV) was dropped")
    h.check_equal(len(h.exceptions(box.events())), 1, "and no event for it")
    compare(box, pid1([CRASHER, "abort"]))
    h.check_equal(len(h.exceptions(box.events())), 2, "abort() as PID 1 is reported where it dies")


def as_nobody():
    os.setgroups([])
    os.setgid(NOBODY)
    os.setuid(NOBODY)


@with_box
def a_setuid_binary_is_left_alone(box):
    if os.geteuid() != 0:
        raise h.Skip("making a setuid-root binary needs root")
    os.chmod(box.dir, 0o755)
    exe = os.path.join(box.dir, "crasher-setuid")
    shutil.copy(CRASHER, exe)
    os.chown(exe, 0, 0)
    os.chmod(exe, 0o4755)
    for verb in ("null", "exit3"):
        agent = compare(box, [exe, verb], preexec=as_nobody)
        h.check_equal(agent_lines(agent.stderr), [], "the loader dropped the agent: not a word from it")
    h.check_equal(box.events(), [], "and no event")


GARBAGE = {
    "TATTLE_CRASH_TIMEOUT_MS": "-5", "TATTLE_EXIT_TIMEOUT_MS": "99999999999999999999999",
    "TATTLE_LINGER_MS": "soon", "TATTLE_MAX_BREADCRUMBS": "1e9", "TATTLE_SPOOL_MAX_MB": "",
    "TATTLE_STDERR": "maybe", "TATTLE_DISABLE": "2", "TATTLE_TAGS": "{not json",
    "TATTLE_RELEASE": b"\xff\xfe\xfd", "TATTLE_ENVIRONMENT": "x" * 100000, "TATTLE_DISTINCT_ID": "\n\t\x01",
    "TATTLE_SPOOL_DIR": "/dev/null/spool", "TATTLE_TEST_FAULT": "bogus", "TATTLE_SPOOL_NOSYNC": "%n%s",
    "POSTHOG_HOST": "not a url", "POSTHOG_API_KEY": "\"s3cr3t\\key",
}


@with_box
def garbage_in_every_variable(box):
    def env_with_garbage(base):
        env = {k.encode(): v.encode() for k, v in base.items()}
        env.update({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in GARBAGE.items()})
        return env
    crash, capture = crash_and_capture(box, agent_env=env_with_garbage(box.agent_env()),
                                       plain_env=env_with_garbage(box.base_env()))
    for run in (crash, capture):
        h.check("100000" not in run.stderr and "xxxxxxxxxx" * 20 not in run.stderr,
                "a huge value is not echoed whole", run.stderr[:500])
        h.check("s3cr3t" not in run.stderr, "the API key is never echoed", run.stderr[:2000])
        h.check("\ufffd" not in run.stderr, "invalid bytes are not echoed", run.stderr[:2000])
    h.check(len(agent_lines(capture.stderr)) >= 5, "the bad values are named", capture.stderr[:3000])


TESTS = {f.__name__: f for f in [
    a_short_write_on_a_full_disk_never_glues_two_events, without_pidfd_open_events_still_arrive,
    without_proc_a_crash_is_still_reported, a_read_only_disk_is_said_once, a_full_disk_is_said_once,
    a_seccomp_filter_that_forbids_fork, the_process_limit_reached, as_pid_1_of_a_namespace,
    a_setuid_binary_is_left_alone, garbage_in_every_variable,
]}

if __name__ == "__main__":
    h.main(TESTS)
