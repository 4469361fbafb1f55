"""test_robust.py - the code review's findings (shared/reference/code-review.md),
each as a real program under the real agent, asserting what should happen:
the program dies exactly as it does without the agent, in bounded time,
with its event where one is expected; no call hangs; no flusher outlives
its host or spins. Programs are in tests/robust/ (one per finding, small
and deterministic); each case names its finding in its docstring.

Waits here are hang detectors, never performance assertions: a bound is
several times what a working agent needs, and the bug it guards against
is "forever" (or a fixed 5 s where the setting says otherwise).
Usage: test_robust.py [CASE...]
"""
import ctypes
import glob
import gzip
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from posthog_standin import StandIn, free_port  # noqa: E402

TESTS_DIR = os.path.join(h.BUILD, "tests")
SOURCE = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRASHER = os.path.join(TESTS_DIR, "crasher")
EMITTER = os.path.join(TESTS_DIR, "emitter")
KEY = "phc_tattle_robust_key_5e1c"
SPIN_TICKS = 10  # CPU ticks in 0.5 s (of 50 for a busy core): above it a flusher spins
NOBODY = 65534


def prog(name):
    return os.path.join(TESTS_DIR, "robust_" + name)


# -- the flushers of one sandbox -------------------------------------------------------------------

def flushers(box):
    """Live tattle-flusher processes whose environment names this sandbox's
    events file (TATTLE_FILE=<path>). Zombies have done their work."""
    return h.flusher_pids(lambda pid: h.environ_has(pid, "TATTLE_FILE=%s\0" % box.events_path))


proc_state = h.proc_state


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks (None once it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def cpu_use(pids, interval=0.5):
    """CPU ticks each pid used over interval (two samples)."""
    before = {p: cpu_ticks(p) for p in pids}
    time.sleep(interval)
    used = {}
    for p in pids:
        after = cpu_ticks(p)
        if before[p] is not None and after is not None:
            used[p] = after - before[p]
    return used


def wait_flushers_gone(box, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = flushers(box)
        if not left:
            return []
        time.sleep(0.05)
    return flushers(box)


LINGER_S = 5.0  # TATTLE_LINGER_MS's default: a flusher waits that long for its user's next process


def check_flushers_exit(box, timeout, after_what):
    """Every flusher of box ends within timeout past the linger window; if
    not, say whether it spins."""
    timeout += LINGER_S
    left = wait_flushers_gone(box, timeout)
    if left:
        use = cpu_use(left)
        raise h.Failure("FAILED: no flusher outlives its host: %s still running %.0f s after %s"
                        % (left, timeout, after_what) + "\n    CPU ticks in 0.5 s (50 = a whole core): %s" % use)


def check_no_spin(box, what):
    pids = flushers(box)
    use = cpu_use(pids)
    spinning = {p: t for p, t in use.items() if t > SPIN_TICKS}
    h.check(not spinning, "no flusher spins %s" % what,
            "CPU ticks in 0.5 s (50 = a whole core), spinning: %s, all: %s" % (spinning, use))
    return pids


def kill_flushers(box):
    """Leftovers of a failed case: only this sandbox's flushers, by pid."""
    for pid in flushers(box):
        for sig in (signal.SIGCONT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def robust(fn):
    """A case with a sandbox of its own; its flushers never outlive it."""
    def test():
        box = h.Sandbox(fn.__name__[:24])
        try:
            fn(box)
        finally:
            kill_flushers(box)
            box.cleanup()
    test.__name__ = fn.__name__
    test.__doc__ = fn.__doc__
    return test


# -- running ---------------------------------------------------------------------------------------

def run_bounded(argv, what, timeout=10, **kw):
    """h.run, with a hang reported as the behaviour it is."""
    try:
        return h.run(argv, timeout=timeout, **kw)
    except h.Failure as e:
        raise h.Failure("FAILED: %s within %s s (it hung)\n    %s" % (what, timeout, e))


def events(box, path=None):
    path = path or box.events_path
    if not os.path.exists(path):
        return []
    out = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise h.Failure("FAILED: every line of the events file is one JSON event\n    line %d: %r"
                                % (n, line[:200]))
    return out


def named(box, name):
    return [e for e in events(box) if e.get("event") == name]


def exception_types(box):
    return [e["properties"]["$exception_list"][0]["type"] for e in h.exceptions(events(box))]


def check_dies_as_plain(box, argv, what, env=None, timeout=10, **kw):
    """Plain run, then the same under the agent: the same death, in bounded time."""
    plain = h.run(argv, env=box.base_env(), cwd=box.dir, timeout=30, **kw)
    agent = run_bounded(argv, "%s ends" % what, env=env or box.agent_env(), cwd=box.dir, timeout=timeout, **kw)
    h.check_equal(agent.describe(), plain.describe(), "%s ends as without the agent" % what,
                  "stdout: %s" % agent.stdout[-800:], "stderr: %s" % agent.stderr[-1500:])
    return plain, agent


def read_line(stream, timeout, what):
    """One line from a pipe, or a failure naming what did not come."""
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([stream], [], [], left)[0]:
            raise h.Failure("FAILED: %s within %s s (got %r)" % (what, timeout, buf))
        ch = os.read(stream.fileno(), 1)
        if not ch:
            raise h.Failure("FAILED: %s (the pipe closed; got %r)" % (what, buf))
        buf += ch
    return buf.decode(errors="replace")


def read_until(stream, prefix, timeout, what):
    lines = []
    deadline = time.monotonic() + timeout
    while True:
        line = read_line(stream, max(0.1, deadline - time.monotonic()), what)
        lines.append(line)
        if line.startswith(prefix):
            return lines


def wait_exit(p, timeout):
    """The status of Popen p within timeout, else None (p is then killed)."""
    try:
        p.wait(timeout=timeout)
        return p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return None


class Subreaper:
    """Orphans of this test (a forked child whose parent died, a flusher)
    become our children, so their status can be read and their zombies
    reaped: the machine's PID 1 need not reap them."""

    PR_SET_CHILD_SUBREAPER = 36

    def __enter__(self):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(self.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise h.Skip("prctl(PR_SET_CHILD_SUBREAPER) refused: %s" % os.strerror(ctypes.get_errno()))
        self.libc = libc
        return self

    def wait(self, pid, timeout):
        """The wait status of pid within timeout, or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return None
            if got:
                return status
            time.sleep(0.005)
        return None

    def __exit__(self, *exc):
        self.libc.prctl(self.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        while True:  # the zombies of orphans we inherited
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        return False


# -- 1: stderr is a full pipe ----------------------------------------------------------------------

@robust
def a_crash_with_a_full_stderr_pipe_still_dies_by_its_signal(box):
    """Finding 1: the report is written to a stderr pipe nobody reads; the
    program must still die by SIGSEGV within seconds, with its event."""
    check_dies_as_plain(box, [prog("stderr_full"), "crash"], "a crash with a full stderr pipe")
    h.check_equal(exception_types(box), ["SIGSEGV"], "the crash event is written all the same")


@robust
def sigterm_ends_a_crash_stuck_on_a_full_stderr_pipe(box):
    """Finding 1: a supervisor's SIGTERM must still end a crashing program
    whose stderr is full (the handler's mask kept it pending forever)."""
    env = box.agent_env(TATTLE_CRASH_TIMEOUT_MS=30000)
    p = subprocess.Popen([prog("stderr_full"), "crash"], env=env, cwd=box.dir, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        h.check_equal(read_line(p.stdout, 10, "the program says it crashes"), "crashing\n", "the program crashes")
        time.sleep(1.0)  # inside the crash report by now
        try:
            os.kill(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        status = wait_exit(p, 5)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.check(status is not None, "SIGTERM ends a crashing program with a full stderr within 5 s",
            "it was still running 5 s after SIGTERM (killed with SIGKILL)")
    h.check(status in (-signal.SIGTERM, -signal.SIGSEGV), "it died by SIGTERM or by its own SIGSEGV",
            "returncode %r" % status)


@robust
def capture_never_blocks_on_a_full_stderr_pipe(box):
    """Finding 1: with a notice pending (the events file cannot be written)
    and stderr a full pipe, tattle_capture, a capture with bad input (its
    warning) and tattle_flush return, and the program exits."""
    blocker = os.path.join(box.dir, "not-a-directory")
    open(blocker, "w").close()
    env = box.agent_env(TATTLE_FILE=os.path.join(blocker, "events.jsonl"))
    r = run_bounded([prog("stderr_full"), "capture"], "the program exits", env=env, cwd=box.dir, timeout=15)
    out = r.stdout
    h.check("notice pending: yes" in out, "setup: the flusher has a notice for stderr", out)
    h.check("watchdog:" not in out, "no call blocks on the full stderr pipe", out)
    h.check("second capture rc=0" in out, "tattle_capture returns 0", out)
    h.check("bad capture rc=-1001" in out, "a capture with bad JSON returns TATTLE_EJSON", out)
    h.check("flush returned" in out and "exiting" in out, "tattle_flush returns and the program goes on", out)
    h.check_equal(r.describe(), "exited with 0", "the program exits normally", out)


# -- 2: SIGABRT under the arena lock with a dlopened C++ plugin ------------------------------------

@robust
def abort_in_a_c_host_with_a_dlopened_cxx_plugin_dies_by_sigabrt(box):
    """Finding 2: a C host dlopens a C++ plugin (which throws and catches),
    then glibc aborts on heap corruption while it holds the arena lock: the
    handler must not call into libstdc++ (TLS allocation, malloc): SIGABRT."""
    plain, agent = check_dies_as_plain(box, [prog("dlhost"), "plugin"], "an abort with a dlopened C++ plugin")
    h.check_equal(plain.signal, signal.SIGABRT, "setup: without the agent it dies by SIGABRT", plain.stderr)
    h.check("malloc(): corrupted top size" in agent.stderr, "glibc's message is still printed", agent.stderr[-800:])
    h.check_equal(exception_types(box), ["SIGABRT"], "the abort is reported")


# -- 3: a flusher whose host died mid-record -------------------------------------------------------

def poke_and_die(box, mode, how):
    r = run_bounded([prog("shm_poke"), mode], "the host %s" % how, env=box.agent_env(), cwd=box.dir)
    h.check("first capture rc=0 flush rc=0" in r.stdout and "poked" in r.stdout,
            "setup: the host captured, flushed and left its region as a dead writer would", r.stdout, r.stderr)
    return r


def check_flusher_ends_after(box, mode, verb, ended, why):
    """The host (shm_poke mode) dies as planned; its flusher exits and keeps
    what was captured before."""
    r = poke_and_die(box, mode, verb)
    h.check_equal(r.describe(), ended, "the host " + verb)
    check_flushers_exit(box, 5, why)
    h.check_equal(len(named(box, "first")), 1, "what the host captured before is kept")


@robust
def no_flusher_spins_after_its_host_died_mid_crash_record(box):
    """Finding 3: the host is SIGKILLed while its crash record is WRITING:
    its flusher must notice the host is gone and exit, not spin."""
    check_flusher_ends_after(box, "writing-kill", "is killed", "killed by signal 9",
                             "its host was killed mid-record")


@robust
def no_flusher_spins_after_its_host_exited_mid_crash_record(box):
    """Findings 3 and 6: the host exits (host_exiting) while a crash record
    is still WRITING: the flusher must not wait on it forever."""
    check_flusher_ends_after(box, "writing-exit", "exits", "exited with 0", "its host exited mid-record")


@robust
def no_flusher_spins_after_its_host_died_with_a_claimed_slot(box):
    """Finding 3: the host dies with a ring slot claimed and never
    published (head != tail forever): the flusher must exit."""
    check_flusher_ends_after(box, "claimed-kill", "is killed", "killed by signal 9",
                             "its host died with a claimed slot")


@robust
def a_slot_claimed_and_never_published_does_not_spin_the_flusher(box):
    """Finding 3: while the host lives with a claimed, unpublished slot,
    its flusher waits without burning a CPU, and exits after the host."""
    p = subprocess.Popen([prog("shm_poke"), "claimed-alive"], env=box.agent_env(), cwd=box.dir,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        read_until(p.stdout, "poked", 10, "setup: the host claims a slot")
        time.sleep(0.3)
        h.check(flushers(box), "setup: a flusher serves the host")
        check_no_spin(box, "while a claimed slot waits for its writer")
        p.stdin.write(b"done\n")
        p.stdin.close()
        status = wait_exit(p, 10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    h.check_equal(status, 0, "the host exits normally")
    check_flushers_exit(box, 5, "its host exited")


# -- 4: pretty-printed properties on the way to PostHog --------------------------------------------

@robust
def pretty_printed_properties_reach_posthog_in_an_accepted_batch(box):
    """Finding 4: a capture whose properties are pretty-printed JSON (valid,
    accepted) must not break the batch it travels in: PostHog (the strict
    stand-in) accepts all three events, none is set aside as rejected."""
    server = StandIn()
    try:
        r = run_bounded([prog("pretty_props")], "the program exits", env=posthog_env(box, server.url), cwd=box.dir,
                        timeout=20)
        h.check_equal(r.stdout, "rc 0 0 0 flush 0\n", "the three captures and the flush succeed", r.stderr[-600:])
        ok = server.wait_for(lambda s: len(s.accepted()) >= 3, 10)
        h.check_equal(server.violations(), [], "every request met PostHog's rules")
        h.check(ok, "the three events are accepted", [e["event"] for e in server.accepted()])
        h.check_equal([e["event"] for e in server.accepted()], ["before", "pretty", "after"], "in capture order")
        props = server.accepted("pretty")[0]["properties"]
        h.check_equal([props.get("amount"), props.get("currency"), props.get("tags")], [42.5, "EUR", [1, 2]],
                      "the pretty event's properties are intact")
        h.check_equal(spool_files(box, "*.rejected"), [], "no batch is set aside as rejected")
    finally:
        server.stop()
    h.check_equal([e["event"] for e in events(box)], ["before", "pretty", "after"],
                  "the events file holds one line per event")


# -- 5: the process layer grows while others read it -----------------------------------------------

@robust
def process_tags_grow_while_other_threads_read_them(box):
    """Finding 5 (white-box): agent/host/context.c under AddressSanitizer,
    one thread adding process tags while three write the context as every
    capture does: no read of an array entry that is not there."""
    exe = os.path.join(box.dir, "ptags_race")
    probe = os.path.join(box.dir, "probe.c")
    with open(probe, "w") as f:
        f.write("int main(void) { return 0; }\n")
    if subprocess.run(["gcc", "-fsanitize=address", probe, "-o", probe + ".out"], capture_output=True).returncode:
        raise h.Skip("gcc cannot build with -fsanitize=address here")
    cmd = ["gcc", "-O1", "-g", "-fsanitize=address", "-D_GNU_SOURCE",
           "-I", os.path.join(SOURCE, "agent", "host"), "-I", os.path.join(SOURCE, "agent", "common"),
           "-I", os.path.join(SOURCE, "include"), os.path.join(SOURCE, "tests", "robust", "ptags_race.c"),
           os.path.join(SOURCE, "agent", "host", "breadcrumbs.c"), os.path.join(SOURCE, "agent", "common", "json.c"),
           os.path.join(SOURCE, "agent", "common", "assafe.c"), "-o", exe, "-lpthread"]
    c = subprocess.run(cmd, capture_output=True, text=True)
    h.check_equal(c.returncode, 0, "the white-box harness builds against agent/host/context.c", c.stderr[-2000:])
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    r = run_bounded([exe, "6"], "the harness ends", env=env, cwd=box.dir, timeout=30)
    report = [l for l in r.stderr.splitlines() if "ERROR: AddressSanitizer" in l or l.strip().startswith("#")][:8]
    h.check(r.exit_code == 0 and "no stray read" in r.stdout,
            "readers never read past the process tags they were given", r.describe(), *report)


# -- 6: a crash just before exit -------------------------------------------------------------------

@robust
def a_worker_crash_just_before_exit_dies_by_sigsegv_with_its_event(box):
    """Finding 6: a worker faults 20 ms before main returns 0. Without the
    agent the program dies by SIGSEGV at once; under it, it must too (not
    exit 0), every time, each crash with its event."""
    argv = [prog("exit_race"), "20"]
    plain = h.run(argv, env=box.base_env(), cwd=box.dir, timeout=30)
    h.check_equal(plain.signal, signal.SIGSEGV, "setup: without the agent it dies by SIGSEGV")
    runs = 5
    for i in range(runs):
        agent = run_bounded(argv, "run %d ends" % (i + 1), env=box.agent_env(), cwd=box.dir)
        h.check_equal(agent.describe(), plain.describe(), "run %d dies as without the agent" % (i + 1),
                      agent.stdout, agent.stderr[-800:])
    h.check_equal(exception_types(box), ["SIGSEGV"] * runs, "each crash has its event")


# -- 7: host handlers on tattle's small alternate stack --------------------------------------------

def big_handler(box, mode):
    argv = [prog("big_handler")] + ([mode] if mode else [])
    plain, agent = check_dies_as_plain(box, argv, "a program whose SIGSEGV handler needs 200 KiB")
    h.check_equal(plain.stdout.count("recovered from the fault"), 2, "setup: both probes recover without the agent",
                  plain.stdout)
    h.check_equal(agent.stdout, plain.stdout, "both probes recover under the agent, and every call works after")
    evs = [e for e in h.exceptions(events(box)) if e["properties"]["$exception_list"][0]["type"] == "BigHandler"]
    h.check_equal(len(evs), 1, "the handled exception captured afterwards arrives")
    crumbs = [b.get("message") for b in evs[0]["properties"].get("breadcrumbs", [])] if evs else []
    h.check("after the big handler" in crumbs, "the agent's breadcrumbs survived the handler", crumbs)


@robust
def a_host_handler_needing_200_kib_of_stack_runs_as_without_the_agent(box):
    """Finding 7: a SIGSEGV handler installed without SA_ONSTACK runs on the
    faulting thread's stack under the kernel; under the agent it must not
    run on a 64 KiB alternate stack (overflow, or the agent's memory)."""
    big_handler(box, None)


@robust
def a_nodefer_host_handler_needing_200_kib_of_stack_runs_as_without_the_agent(box):
    """Finding 7: the same with SA_NODEFER (it looped forever)."""
    big_handler(box, "nodefer")


# -- 8: capture from a late key destructor ---------------------------------------------------------

@robust
def capture_from_a_late_key_destructor_works(box):
    """Finding 8: a pthread key destructor that runs after the agent's own
    captures; the agent's per-thread buffer must not be used after it was
    unmapped (the program segfaulted)."""
    plain, agent = check_dies_as_plain(box, [prog("key_dtor")], "a capture from a key destructor")
    h.check_equal(agent.stdout, "main: joined, flush rc=0\n", "the program goes on and flushes")
    h.check("dtor capture rc=0" in agent.stderr, "the capture from the destructor succeeds", agent.stderr[-800:])
    h.check_equal([len(named(box, "work")), len(named(box, "thread_end"))], [1, 1], "both events arrive")


# -- 9: unwinding with rbp near 2^64 ---------------------------------------------------------------

@robust
def a_crash_with_rbp_near_the_top_of_memory_is_reported(box):
    """Finding 9: a crash at a pc without CFI with rbp in [-16, -9]; the
    frame-pointer fallback's read must not wrap and kill the flusher."""
    values = ["0xfffffffffffffff0", "0xfffffffffffffff7"]
    for v in values:
        plain, agent = check_dies_as_plain(box, [prog("bad_rbp"), v], "a wild jump with rbp %s" % v)
        h.check("did not complete in time" not in agent.stderr and "tattle: SIGSEGV" in agent.stderr,
                "the report for rbp %s completes" % v, agent.stderr[-800:])
    h.check_equal(exception_types(box), ["SIGSEGV"] * len(values), "each crash has its event")


# -- 10: debuginfod --------------------------------------------------------------------------------

class SilentServer:
    """Accepts on 127.0.0.1 and never answers: counts who came."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        self.stopped = True
        for c in self.conns:
            c.close()
        self.sock.close()


@robust
def debuginfod_is_never_asked_during_a_crash(box):
    """Finding 10: DEBUGINFOD_URLS in the host's environment: the flusher
    must not send build-ids to it during a crash (and wait on it)."""
    exe = os.path.join(box.dir, "crasher-nodebug")
    r = subprocess.run(["objcopy", "--strip-debug", CRASHER, exe], capture_output=True, text=True)
    if r.returncode != 0:
        raise h.Skip("objcopy cannot strip the crasher: %s" % r.stderr.strip())
    server = SilentServer()
    try:
        env = box.agent_env(DEBUGINFOD_URLS="http://127.0.0.1:%d" % server.port,
                            DEBUGINFOD_CACHE_PATH=os.path.join(box.dir, "debuginfod-cache"))
        plain, agent = check_dies_as_plain(box, [exe, "null"], "a crash with DEBUGINFOD_URLS set", env=env)
        time.sleep(0.2)
        h.check_equal(len(server.conns), 0, "no connection to the debuginfod server")
        h.check("did not complete in time" not in agent.stderr, "the report completes", agent.stderr[-600:])
        h.check_equal(exception_types(box), ["SIGSEGV"], "the crash event is written")
    finally:
        server.close()


# -- 11: fork during a crash -----------------------------------------------------------------------

@robust
def a_child_forked_during_a_crash_reports_its_own_crash(box):
    """Finding 11: a child forked while another thread of its parent is in
    the crash handler crashes at once: it must report its own crash
    promptly, not wait on its parent's capture (5 s) and die unreported."""
    with Subreaper() as reaper:
        r = run_bounded([prog("fork_crash")], "the parent dies", env=box.agent_env(), cwd=box.dir)
        h.check_equal(r.signal, signal.SIGSEGV, "the parent dies of its thread's crash", r.stderr[-600:])
        lines = [l.split() for l in r.stdout.splitlines() if l.startswith("child ")]
        h.check(lines, "setup: the parent forked a child", r.stdout)
        child, started_ms = int(lines[0][1]), int(lines[0][2])
        status = reaper.wait(child, 10)
        lived = time.monotonic() - started_ms / 1000.0
        if status is None:
            try:
                os.kill(child, signal.SIGKILL)
            except OSError:
                pass
            reaper.wait(child, 2)
    h.check(status is not None, "the child ends within 10 s", "child %d" % child)
    h.check(os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGSEGV, "the child dies by SIGSEGV",
            "status %r" % status)
    h.check(lived < 4.0, "the child's crash does not wait on its parent's capture",
            "it died %.2f s after its crash" % lived)
    pids = [e["properties"].get("pid") for e in h.exceptions(events(box))]
    h.check(child in pids, "the child's crash is reported as its own", "crash events from pids %s" % pids)


# -- 12: std::rethrow_exception --------------------------------------------------------------------

@robust
def rethrow_exception_reports_the_exception_that_ended_the_program(box):
    """Finding 12: an uncaught exception delivered by std::rethrow_exception
    while an older one lives in an exception_ptr: the event names the one
    that terminated the program."""
    plain, agent = check_dies_as_plain(box, [prog("stale_exception")], "an uncaught rethrown exception")
    h.check("second: the real uncaught one" in plain.stderr, "setup: terminate names the second exception",
            plain.stderr)
    evs = h.exceptions(events(box))
    h.check_equal(len(evs), 1, "one crash event")
    ex = evs[0]["properties"]["$exception_list"][0]
    h.check("runtime_error" in ex["type"], "the type is std::runtime_error", ex["type"])
    h.check_equal(ex["value"], "second: the real uncaught one", "the message is the uncaught exception's what()")
    h.check("first: thrown, handled" not in agent.stderr, "the report does not name the older exception",
            agent.stderr[-800:])


# -- 14: HTTP 3xx ----------------------------------------------------------------------------------

class Redirector:
    """127.0.0.1: every request answered 301 to https on the same port."""

    def __init__(self, port):
        outer = self
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                body = b"Moved"
                self.send_response(301)
                self.send_header("Location", "https://127.0.0.1:%d%s" % (port, self.path))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def posthog_env(box, url, **extra):
    return box.agent_env(POSTHOG_API_KEY=KEY, POSTHOG_HOST=url, TATTLE_SPOOL_DIR=os.path.join(box.dir, "spool"),
                         **extra)


def spool_files(box, pattern):
    spool = os.path.join(box.dir, "spool")
    return sorted(glob.glob(os.path.join(spool, "posthog-*", pattern)) + glob.glob(os.path.join(spool, pattern)))


def queue_dir(box):
    """The queue the batches of this sandbox wait in (spool/posthog-<hash>,
    or the spool itself in a layout without queues)."""
    found = spool_files(box, "*.batch")
    h.check(found, "setup: a batch waits in the spool", os.listdir(os.path.join(box.dir, "spool")))
    return os.path.dirname(found[0])


def spooled_count(paths):
    total = 0
    for p in paths:
        with open(p, "rb") as f:
            total += int(f.readline().split()[2])
    return total


@robust
def a_redirect_from_the_server_keeps_the_batches_for_later(box):
    """Finding 14: a server answering 301 (http:// redirected to https://)
    is a configuration problem: the batches stay in the spool (not
    .rejected) and go once the server answers."""
    port = free_port()
    redirect = Redirector(port)
    url = "http://127.0.0.1:%d" % port
    try:
        r = run_bounded([EMITTER, "0", "5", "flush"], "the emitter exits", env=posthog_env(box, url, TATTLE_LINGER_MS=500),
                        cwd=box.dir, timeout=20)
        h.check_equal(r.stdout, "captured 5 errors 0\nflush 0\n", "setup: 5 captures and a flush")
        h.check(redirect.requests >= 1, "setup: the batch was offered to the redirecting server")
        check_flushers_exit(box, 10, "its host exited (linger 500 ms)")
    finally:
        redirect.stop()
    h.check_equal(spool_files(box, "*.rejected"), [], "no batch is set aside as rejected for a redirect")
    h.check_equal(spooled_count(spool_files(box, "*.batch")), 5, "the 5 events wait in the spool")
    server = StandIn(port=port)
    try:
        run_bounded([EMITTER, "0", "1", "flush"], "the second emitter exits", env=posthog_env(box, url), cwd=box.dir,
                    timeout=20)
        ok = server.wait_for(lambda s: len(s.accepted("burst")) >= 6, 10)
        h.check(ok, "once the server answers, the kept events are sent",
                "arrived: %d of 6" % len(server.accepted("burst")))
        h.check_equal(server.violations(), [], "every request met PostHog's rules")
    finally:
        server.stop()


# -- 15: contexts left open at thread exit ---------------------------------------------------------

@robust
def contexts_left_open_by_ending_threads_are_freed(box):
    """Finding 15: 2000 threads end with a context (8 tags of 1 KiB) still
    open: the heap must not keep them (about 18 MiB leaked)."""
    def growth(mode):
        r = run_bounded([prog("ctx_leak"), mode, "2000"], "%s threads end" % mode, env=box.agent_env(), cwd=box.dir,
                        timeout=30)
        h.check_equal(r.exit_code, 0, "ctx_leak %s exits 0" % mode, r.stderr[-500:])
        h.check("failed calls 0" in r.stdout, "every context call succeeded", r.stdout, r.stderr[-500:])
        return int(r.stdout.split("grew by ")[1].split()[0])
    closed = growth("closed")
    left_open = growth("open")
    h.check(left_open < 1024, "threads that end with a context open leave no heap behind",
            "heap growth: %d KiB with contexts left open, %d KiB with contexts ended" % (left_open, closed))


# -- 16, 20: what a signal handler reaches (under gdb) ---------------------------------------------

WATCH_SCRIPT = r"""
import gdb, os
hits = []
class Watch(gdb.Breakpoint):
    def stop(self):
        f, chain, inside = gdb.newest_frame().older(), [], False
        while f is not None:
            inside = inside or f.type() == gdb.SIGTRAMP_FRAME
            chain.append(f.name() or "??")
            f = f.older()
        if inside:
            hits.append(self.location + " <- " + " <- ".join(chain[:7]))
        return False
for fn in os.environ["ROBUST_BREAK"].split(","):
    Watch(fn)
"""


def calls_inside_signal_handlers(box, argv, functions, handle, agent_env):
    """Run argv under gdb (the agent preloaded into it alone) and list each
    call of one of functions made with a signal handler on the stack."""
    if not shutil.which("gdb"):
        raise h.Skip("gdb is not installed")
    script = os.path.join(box.dir, "watch.py")
    with open(script, "w") as f:
        f.write(WATCH_SCRIPT)
    cmd = ["gdb", "-q", "-batch", "-nx", "-ex", "set startup-with-shell off", "-ex", "set breakpoint pending on",
           "-ex", "set pagination off", "-ex", "handle %s nostop noprint pass" % handle]
    for k in ("LD_PRELOAD", "TATTLE_FILE"):
        cmd += ["-ex", "set environment %s=%s" % (k, agent_env[k])]
    cmd += ["-ex", "source " + script, "-ex", "run", "-ex", 'python print("ROBUST-HITS %d" % len(hits))',
            "-ex", 'python [print("ROBUST-HIT " + x) for x in hits]', "--args"] + argv
    env = dict(box.base_env(), ROBUST_BREAK=",".join(functions))
    try:
        r = subprocess.run(cmd, env=env, cwd=box.dir, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise h.Failure("FAILED: %s ends under gdb within 60 s" % argv[0])
    m = re.search(r"^ROBUST-HITS (\d+)$", r.stdout, re.M)
    h.check(m, "gdb ran the program to its end", r.stdout[-1500:], r.stderr[-1500:])
    return [l[len("ROBUST-HIT "):] for l in r.stdout.splitlines() if l.startswith("ROBUST-HIT ")], r.stdout


@robust
def the_first_tattle_call_from_a_signal_handler_runs_no_dlsym(box):
    """Finding 16: a program's first tattle calls, made from a SIGUSR1
    handler, must not bind through dlsym there (the loader's lock, malloc):
    tattle.h says they are async-signal-safe."""
    hits, out = calls_inside_signal_handlers(
        box, [prog("handler_first")], ["dlsym", "malloc", "calloc", "realloc", "free", "pthread_mutex_lock"],
        "SIGUSR1", box.agent_env())
    h.check("handler capture rc=0 breadcrumb rc=0 flush rc=0" in out, "setup: the handler's calls succeeded",
            out[-800:])
    h.check_equal(hits, [], "no dlsym, allocation or lock with the handler on the stack")
    h.check_equal(len(named(box, "from_handler")), 1, "the capture made in the handler arrives")


# -- 17: a corrupted ring --------------------------------------------------------------------------

@robust
def a_ring_slot_ahead_of_its_lap_never_hangs_a_capture(box):
    """Finding 17: the slot at head says it is free for the next lap (as if
    the reader had passed head): tattle_capture must return (its retry loop
    is bounded), and the flusher neither spins nor outlives the host."""
    r = run_bounded([prog("shm_poke"), "ring-ahead"], "the host exits", env=box.agent_env(), cwd=box.dir,
                    timeout=15)
    h.check("poked" in r.stdout, "setup: the slot was changed", r.stdout)
    h.check("watchdog:" not in r.stdout, "tattle_capture and tattle_flush return", r.stdout)
    h.check("after capture rc=0" in r.stdout or "after capture rc=-105" in r.stdout,
            "the capture returns 0 or TATTLE_ENOBUFS", r.stdout)
    h.check_equal(r.describe(), "exited with 0", "the host exits normally", r.stdout)
    check_flushers_exit(box, 5, "its host exited")


@robust
def a_record_claiming_slots_nobody_wrote_is_not_trusted(box):
    """Finding 17: a published record at head says it spans 100 slots: the
    reader must not free slots nobody claimed (tail passing head), and the
    next capture must work."""
    r = run_bounded([prog("shm_poke"), "ring-nslots"], "the host exits", env=box.agent_env(), cwd=box.dir,
                    timeout=15)
    h.check("poked" in r.stdout, "setup: the record was planted", r.stdout)
    h.check("watchdog:" not in r.stdout, "tattle_capture and tattle_flush return", r.stdout)
    h.check("after capture rc=0" in r.stdout, "the next capture succeeds", r.stdout)
    h.check_equal(r.describe(), "exited with 0", "the host exits normally", r.stdout)
    check_flushers_exit(box, 5, "its host exited")
    h.check_equal(len(named(box, "after")), 1, "the next capture's event arrives")


# -- 18: a second crashing thread ------------------------------------------------------------------

@robust
def a_second_crashing_thread_waits_as_long_as_the_crash_timeout(box):
    """Finding 18: two threads crash while the report is slow (the flusher
    is stopped) and TATTLE_CRASH_TIMEOUT_MS=6000: the second thread must not
    end the process after a hard-coded 5 s; the first one's wait runs out
    and says so."""
    env = box.agent_env(TATTLE_CRASH_TIMEOUT_MS=6000)
    err = tempfile.TemporaryFile()
    p = subprocess.Popen([prog("two_crash")], env=env, cwd=box.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=err)
    stopped = []
    try:
        read_until(p.stdout, "ready", 10, "setup: the host captured and flushed")
        pids = flushers(box)
        h.check(pids, "setup: a flusher serves the host")
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        p.stdin.write(b"go\n")
        p.stdin.close()
        status = wait_exit(p, 15)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for pid in stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    h.check_equal(status, -signal.SIGSEGV, "the process dies by SIGSEGV", stderr[-600:])
    h.check("tattle: the crash report did not complete in time" in stderr,
            "the first thread waited out TATTLE_CRASH_TIMEOUT_MS and said so", stderr[-600:] or "(stderr empty)")


# -- 19: a daemon's dead flusher -------------------------------------------------------------------

@robust
def a_daemon_whose_flusher_died_still_reports_its_crash(box):
    """Finding 19: a host that closed its descriptors (its flusher polls),
    whose flusher is then killed, crashes: a new flusher must report it."""
    err = tempfile.TemporaryFile()
    with Subreaper() as reaper:
        p = subprocess.Popen([prog("poll_dead")], env=box.agent_env(), cwd=box.dir, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=err)
        try:
            lines = read_until(p.stdout, "ready", 10, "setup: the host captured, closed its descriptors, captured")
            h.check(any(l.startswith("two rc=0") for l in lines), "setup: a capture after closing works", lines)
            pids = flushers(box)
            h.check(pids, "setup: a flusher serves the host")
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            for pid in pids:  # ours to reap: gone, not a zombie kill(2) still finds
                if reaper.wait(pid, 5) is None:
                    deadline = time.monotonic() + 5
                    while proc_state(pid) not in (None, "Z", "X") and time.monotonic() < deadline:
                        time.sleep(0.01)
            p.stdin.write(b"go\n")
            p.stdin.close()
            status = wait_exit(p, 15)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    h.check_equal(status, -signal.SIGSEGV, "the host dies by SIGSEGV", stderr[-600:])
    h.check("did not complete in time" not in stderr and "tattle: SIGSEGV: " in stderr,
            "a new flusher makes the crash report (with its stack)", stderr[-800:])
    h.check_equal(exception_types(box), ["SIGSEGV"], "the crash event is written")


# -- 21: a crash while another thread starts the flusher -------------------------------------------

@robust
def a_crash_while_another_thread_starts_the_flusher_is_recorded(box):
    """Finding 21: the main thread crashes while another thread, held for
    500 ms, is still starting the flusher: the handler must wait for it and
    record the crash (it gave up after 100 ms: "no shared memory")."""
    plain, agent = check_dies_as_plain(box, [prog("slow_start")], "a crash while the flusher starts")
    h.check("creator held: yes" in agent.stdout, "setup: the starting thread was held", agent.stdout)
    h.check("no shared memory" not in agent.stderr and "tattle: SIGSEGV: " in agent.stderr,
            "the crash report is made", agent.stderr[-800:])
    h.check_equal(exception_types(box), ["SIGSEGV"], "the crash event is written")


# -- 22: siglongjmp out of a tattle call -----------------------------------------------------------

@robust
def siglongjmp_out_of_a_tattle_call_leaves_the_api_usable(box):
    """Finding 22: a SIGALRM handler leaves tattle_flush by siglongjmp; the
    thread's later calls must work, not return TATTLE_EBUSY forever."""
    silent = SilentServer()  # the flush waits for a delivery that never ends
    try:
        env = posthog_env(box, "http://127.0.0.1:%d" % silent.port, TATTLE_LINGER_MS=0)
        r = run_bounded([prog("longjmp_out")], "the program exits", env=env, cwd=box.dir, timeout=20)
    finally:
        silent.close()
    out = r.stdout
    h.check("left tattle_flush by siglongjmp" in out, "setup: the handler jumped out of tattle_flush", out)
    h.check("captures: ok 20, EBUSY 0, other 0" in out, "every later capture succeeds", out)
    h.check("breadcrumb rc=0" in out, "a later breadcrumb succeeds", out)
    h.check("flush is not EBUSY" in out, "a later tattle_flush is not refused as re-entrant", out)
    h.check_equal(r.describe(), "exited with 0", "the program exits normally")
    h.check_equal(len(named(box, "after")), 20, "the later captures arrive")


# -- 23, 24: the sender and a hostile spool --------------------------------------------------------

def spool_with_one_batch(box, port):
    """A queue holding one real batch (captured while the server was down)."""
    env = posthog_env(box, "http://127.0.0.1:%d" % port, TATTLE_LINGER_MS=300)
    r = run_bounded([EMITTER, "0", "1", "flush"], "the first emitter exits", env=env, cwd=box.dir, timeout=20)
    h.check(r.stdout.startswith("captured 1 errors 0"), "setup: one capture", r.stdout)
    check_flushers_exit(box, 10, "setup: its host exited (linger 300 ms)")
    return queue_dir(box)


@robust
def unclaimable_batches_never_keep_a_sender_running(box):
    """Finding 24: 300 batches the flusher may not claim (another user's)
    fill every listing: a pass must still end, and the flusher exit once
    TATTLE_LINGER_MS has passed."""
    if os.geteuid() != 0:
        raise h.Skip("needs root: batches owned by another user stand for ones it cannot claim")
    server = StandIn(start=False)
    try:
        queue = spool_with_one_batch(box, server.port)
        for i in range(300):
            path = os.path.join(queue, "%016x-%08x-%08x.batch" % (i + 1, 0xabad1dea, i + 1))
            with open(path, "w") as f:
                f.write("tattle-spool 1 1 2 00000000\n{}")
            os.chown(path, NOBODY, NOBODY)
        server.start()
        env = posthog_env(box, server.url, TATTLE_LINGER_MS=1000)
        run_bounded([EMITTER, "0", "1", "flush"], "the emitter exits", env=env, cwd=box.dir, timeout=20)
        check_flushers_exit(box, 8, "its host exited (linger 1000 ms)")
    finally:
        server.stop()


@robust
def a_fifo_named_like_a_batch_never_blocks_the_sender(box):
    """Finding 24: a FIFO named like a batch in the queue: the sender must
    not block opening it; the real batches are sent and it exits."""
    server = StandIn(start=False)
    try:
        queue = spool_with_one_batch(box, server.port)
        os.mkfifo(os.path.join(queue, "%016x-%08x-%08x.batch" % (1, 0xf1f0f1f0, 1)), 0o600)
        server.start()
        env = posthog_env(box, server.url, TATTLE_LINGER_MS=1000)
        run_bounded([EMITTER, "0", "1", "flush"], "the emitter exits", env=env, cwd=box.dir, timeout=20)
        ok = server.wait_for(lambda s: len(s.accepted("burst")) >= 2, 8)
        h.check(ok, "the batches beside the FIFO are sent", "arrived: %d of 2" % len(server.accepted("burst")))
        check_flushers_exit(box, 8, "its host exited (linger 1000 ms)")
    finally:
        server.stop()


@robust
def a_spool_header_with_a_huge_count_costs_a_few_requests(box):
    """Finding 23: a batch whose header claims 4,000,000,000 events (the
    count is outside the CRC) and a server that always answers 413: the
    sender must not send thousands of requests halving a count it trusts."""
    server = StandIn(start=False)
    try:
        queue = spool_with_one_batch(box, server.port)
        real = spool_files(box, "*.batch")[0]
        with open(real, "rb") as f:
            f.readline()
            body = f.read()
        line = body.split(b"\n")[0] + b"\n"
        forged = os.path.join(queue, "%016x-%08x-%08x.batch" % (1, 0x0b16c0de, 1))
        with open(forged, "wb") as f:
            f.write(b"tattle-spool 1 4000000000 %d %08x\n" % (len(line), zlib.crc32(line)) + line)
        os.chmod(forged, 0o600)
        server.always = 413
        server.start()
        env = posthog_env(box, server.url, TATTLE_LINGER_MS=2000)
        run_bounded([EMITTER, "1", "0", "exit"], "a process that finds the batches exits", env=env, cwd=box.dir,
                    timeout=20)
        check_flushers_exit(box, 10, "its host exited (linger 2000 ms)")
        n = len(server.requests)
        h.check(1 <= n <= 20, "two one-event batches cost a few requests, not one per halving of 4e9",
                "requests: %d" % n)
    finally:
        server.stop()


# -- 25: a 2xx whose body never ends ---------------------------------------------------------------

class EndlessBody:
    """127.0.0.1: answers 200 with a body that trickles on and never ends;
    records the uuids of the events it was sent."""

    def __init__(self):
        outer = self
        self.uuids = []
        self.stopping = False

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                try:
                    batch = json.loads(gzip.decompress(raw))["batch"]
                    outer.uuids.extend(e["uuid"] for e in batch)
                except Exception:
                    pass
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                try:
                    while not outer.stopping:
                        self.wfile.write(b" " * 1024)
                        self.wfile.flush()
                        time.sleep(0.01)
                except OSError:
                    pass
                self.close_connection = True

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.stopping = True
        self.server.shutdown()
        self.server.server_close()


@robust
def a_2xx_whose_body_never_ends_counts_as_sent_once(box):
    """Finding 25: the server accepted the batch (200) but its body never
    ends: the batch must count as sent (not kept and sent again by the next
    process: duplicates)."""
    server = EndlessBody()
    try:
        env = posthog_env(box, server.url, TATTLE_LINGER_MS=1000)
        run_bounded([EMITTER, "0", "3", "flush"], "the first emitter exits", env=env, cwd=box.dir, timeout=20)
        wait_flushers_gone(box, 12)
        kill_flushers(box)
        h.check_equal(len(set(server.uuids)), 3, "setup: the server was sent the three events")
        h.check_equal(spool_files(box, "*.batch"), [], "the accepted batch is not kept in the spool")
        run_bounded([EMITTER, "0", "1", "flush"], "the second emitter exits", env=env, cwd=box.dir, timeout=20)
        wait_flushers_gone(box, 20)
    finally:
        server.stop()
    dups = sorted({u for u in server.uuids if server.uuids.count(u) > 1})
    h.check_equal(dups, [], "no event is sent twice")


@robust
def a_host_the_flusher_may_not_inspect_is_still_served(box):
    """A non-dumpable host (the flusher cannot read its /proc/PID/maps) that
    closes every descriptor keeps being served, by polling, until it is gone:
    its flush succeeds, its events and its crash arrive."""
    if os.geteuid() != 0:
        raise h.Skip("needs root (runs the host as nobody, where non-dumpable hides its maps)")
    os.chmod(box.dir, 0o755)
    home = os.path.join(box.dir, "nobody")
    os.mkdir(home, 0o700)
    os.chown(home, 65534, 65534)
    events = os.path.join(home, "events.jsonl")
    env = box.agent_env(TATTLE_FILE=events, HOME=home, XDG_STATE_HOME=home, TATTLE_LINGER_MS=300)
    r = run_bounded(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", prog("nondumpable_daemon")],
                    "the host crashes", env=env, cwd=home, timeout=30)
    h.check("flush 0" in r.stdout, "its flush succeeded", r.stdout, r.stderr[-1500:])
    h.check_equal(r.signal, signal.SIGSEGV, "it died of its crash", r.describe())
    h.check("written to" in r.stderr, "with its whole report", r.stderr[-1500:])
    got = sorted(e["event"] for e in box.events(events))
    h.check_equal(got, ["$exception", "after", "before"], "every event arrived")


TESTS = {f.__name__: f for f in [
    a_host_the_flusher_may_not_inspect_is_still_served,
    a_crash_with_a_full_stderr_pipe_still_dies_by_its_signal,
    sigterm_ends_a_crash_stuck_on_a_full_stderr_pipe,
    capture_never_blocks_on_a_full_stderr_pipe,
    abort_in_a_c_host_with_a_dlopened_cxx_plugin_dies_by_sigabrt,
    no_flusher_spins_after_its_host_died_mid_crash_record,
    no_flusher_spins_after_its_host_exited_mid_crash_record,
    no_flusher_spins_after_its_host_died_with_a_claimed_slot,
    a_slot_claimed_and_never_published_does_not_spin_the_flusher,
    pretty_printed_properties_reach_posthog_in_an_accepted_batch,
    process_tags_grow_while_other_threads_read_them,
    a_worker_crash_just_before_exit_dies_by_sigsegv_with_its_event,
    a_host_handler_needing_200_kib_of_stack_runs_as_without_the_agent,
    a_nodefer_host_handler_needing_200_kib_of_stack_runs_as_without_the_agent,
    capture_from_a_late_key_destructor_works,
    a_crash_with_rbp_near_the_top_of_memory_is_reported,
    debuginfod_is_never_asked_during_a_crash,
    a_child_forked_during_a_crash_reports_its_own_crash,
    rethrow_exception_reports_the_exception_that_ended_the_program,
    a_redirect_from_the_server_keeps_the_batches_for_later,
    contexts_left_open_by_ending_threads_are_freed,
    the_first_tattle_call_from_a_signal_handler_runs_no_dlsym,
    a_ring_slot_ahead_of_its_lap_never_hangs_a_capture,
    a_record_claiming_slots_nobody_wrote_is_not_trusted,
    a_second_crashing_thread_waits_as_long_as_the_crash_timeout,
    a_daemon_whose_flusher_died_still_reports_its_crash,
    a_crash_while_another_thread_starts_the_flusher_is_recorded,
    siglongjmp_out_of_a_tattle_call_leaves_the_api_usable,
    a_spool_header_with_a_huge_count_costs_a_few_requests,
    unclaimable_batches_never_keep_a_sender_running,
    a_fifo_named_like_a_batch_never_blocks_the_sender,
    a_2xx_whose_body_never_ends_counts_as_sent_once,
]}

if __name__ == "__main__":
    h.main(TESTS)
