"""harness.py - helpers for tattle's end-to-end tests.

Real programs run plain and under the real agent; these helpers run them
with the raw wait status kept (signal, core flag), read what the agent
wrote, and ask gdb for the backtrace of the same crash as an oracle.
Each helper is named for what it checks; failures print both sides.
"""
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build")))
AGENT = os.path.abspath(os.environ.get("TATTLE_AGENT", os.path.join(BUILD, "libtattle.so")))


class Failure(Exception):
    pass


def check(cond, what, *details):
    if not cond:
        msg = "FAILED: " + what
        for d in details:
            msg += "\n    " + str(d)
        raise Failure(msg)


def check_equal(actual, expected, what, *details):
    check(actual == expected, what, "expected: %r" % (expected,), "actual:   %r" % (actual,), *details)


class Run:
    """The outcome of one process: how it ended and what it printed."""

    def __init__(self, status, stdout, stderr, elapsed):
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed

    @property
    def signal(self):
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else 0

    @property
    def exit_code(self):
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None

    @property
    def core(self):
        return os.WIFSIGNALED(self.status) and os.WCOREDUMP(self.status)

    def describe(self):
        if os.WIFSIGNALED(self.status):
            return "killed by signal %d%s" % (self.signal, " (core dumped)" if self.core else "")
        return "exited with %s" % self.exit_code


def _limits():
    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def run(argv, env=None, cwd=None, timeout=60, stdin=subprocess.DEVNULL, preexec=None):
    """Run argv; keep the raw wait status (Popen would lose the core flag).
    preexec runs in the child before exec, after the core limit is set."""
    import time

    def setup():
        _limits()
        if preexec:
            preexec()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, stdin=stdin, preexec_fn=setup)
        deadline = t0 + timeout
        while True:
            pid, status = os.waitpid(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                p.kill()
                os.waitpid(p.pid, 0)
                p.returncode = -9
                raise Failure("TIMEOUT: %s ran past %ss" % (argv, timeout))
            time.sleep(0.005)
        p.returncode = 0
        elapsed = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return Run(status, out.read().decode(errors="replace"), err.read().decode(errors="replace"), elapsed)


class Sandbox:
    """A private directory for one test: cwd for cores, a state dir, a sink."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="tattle-%s-" % name)
        self.events_path = os.path.join(self.dir, "events.jsonl")

    def base_env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
        env["XDG_STATE_HOME"] = os.path.join(self.dir, "state")
        return env

    def agent_env(self, **extra):
        env = self.base_env()
        env["LD_PRELOAD"] = AGENT
        env["TATTLE_FILE"] = self.events_path
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def events(self, path=None):
        path = path or self.events_path
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def with_sandbox(fn):
    """A test case fn(box) with a Sandbox of its own, removed afterwards."""
    def test():
        box = Sandbox(fn.__name__[:24])
        try:
            fn(box)
        finally:
            box.cleanup()
    test.__name__ = fn.__name__
    return test


def exceptions(events):
    return [e for e in events if e.get("event") == "$exception"]


def frames_innermost_first(event):
    """The event's frames run outermost first; the oracle reads innermost first."""
    frames = event["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    return list(reversed(frames))


GDB_FRAME = re.compile(r"^#(\d+)\s+(?:0x[0-9a-f]+ in )?(<signal handler called>|[^ (]+(?: \[[^]]*\])?)")


def gdb_backtrace(argv, limit=60, cwd=None):
    """Run argv under gdb (without the agent) and parse `bt`:
    a list of (function, file, line), innermost first."""
    cmd = ["gdb", "-q", "-batch", "-nx",
           "-ex", "set pagination off", "-ex", "set width 0",
           "-ex", "handle SIGUSR1 nostop noprint pass",
           "-ex", "run", "-ex", "bt %d" % limit, "--args"] + list(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "TATTLE_"))}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=cwd)
    frames = []
    for line in r.stdout.splitlines():
        m = GDB_FRAME.match(line)
        if not m:
            continue
        loc = re.search(r" at (\S+):(\d+)$", line)
        frames.append((m.group(2), loc.group(1) if loc else None, int(loc.group(2)) if loc else None))
    check(frames, "gdb produced a backtrace", r.stdout[-2000:], r.stderr[-2000:])
    return frames


def gdb_function_lines(exe, function):
    """The source lines gdb maps any instruction of function to."""
    r = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", "disassemble /s " + function, exe],
                       capture_output=True, text=True, timeout=60)
    lines = {int(m.group(1)) for m in re.finditer(r"^(\d+)\t", r.stdout, re.M)}
    check(lines, "gdb disassembled %s" % function, r.stdout[-2000:], r.stderr[-2000:])
    return lines


def normalize_function(name):
    """Compare names as gdb prints them: no parameter list, no ABI tags."""
    if name is None:
        return None
    if name == "<signal handler called>":
        return name
    depth, out = 0, ""
    for ch in name:  # drop "(...)" parameter lists, keep template args
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0:
            out += ch
    return out.strip()


def same_symbol(a, b):
    """Aliases of one address differ in leading underscores or glibc's
    internal __GI_ prefix (__kill/kill, __clone3/clone3, __GI_raise/raise)."""
    strip = lambda n: re.sub(r"^(__GI_)?_*", "", n or "")
    return a == b or strip(a) == strip(b)


def is_subsequence(small, big):
    it = iter(big)
    return all(any(same_symbol(x, y) for y in it) for x in small)


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def proc_state(pid):
    """The state letter of pid (R, S, Z...), or None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def environ_has(pid, text):
    """Does pid's environment hold text (e.g. "TATTLE_FILE=/x\\0")?"""
    try:
        with open("/proc/%d/environ" % pid, "rb") as f:
            return text.encode() in f.read()
    except OSError:
        return False


def flusher_pids(keep=lambda pid: True, zombies=False):
    """tattle-flusher processes (zombies left out unless asked) for which
    keep(pid) is true."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % name) as f:
                if f.read().strip() != "tattle-flusher":
                    continue
        except OSError:
            continue
        pid = int(name)
        if (zombies or proc_state(pid) not in ("Z", "X", None)) and keep(pid):
            found.append(pid)
    return found


MEMCHECK_ERROR = re.compile(r"^==(\d+)== (Invalid|Conditional|Use of uninitialised|Syscall param|Mismatched|"
                            r"Source and destination|Argument|.* bytes in .* blocks are definitely lost)")


def memcheck_errors(log_text):
    """Each memcheck error report in a valgrind log: its lines up to the blank one."""
    errors, current = [], None
    for line in log_text.splitlines():
        if MEMCHECK_ERROR.match(line):
            current = [line]
            errors.append(current)
        elif current is not None:
            if re.match(r"^==\d+== ?$", line):
                current = None
            else:
                current.append(line)
    return errors


def sanitized(exe):
    """Built with a sanitizer, its runtime linked dynamically or statically."""
    out = subprocess.run(["readelf", "-dsW", exe], capture_output=True, text=True).stdout
    return re.search(r"lib(asan|tsan|ubsan)|__(asan|tsan)_init|__ubsan_handle", out) is not None


class Skip(Exception):
    """A case that cannot run here (a runtime not installed): said, not passed."""


def _work_in_scratch():
    """Crashing programs dump core in their cwd (kernel.core_pattern "core"):
    run every case from a scratch directory of its own, never the source tree."""
    import atexit
    scratch = tempfile.mkdtemp(prefix="tattle-cwd-")
    os.chdir(scratch)
    atexit.register(shutil.rmtree, scratch, True)


def main(tests):
    """Run the named test (argv[1]) or all; print a closing count line.
    Exits 77 (CTest's skip code) when every case named was skipped."""
    names = sys.argv[1:] or list(tests)
    _work_in_scratch()
    passed = failed = skipped = 0
    for name in names:
        try:
            tests[name]()
            print("ok   %s" % name)
            passed += 1
        except Skip as e:
            print("skip %s: %s" % (name, e))
            skipped += 1
        except Failure as e:
            print("FAIL %s\n%s" % (name, e))
            failed += 1
    print("%d passed, %d failed, %d skipped" % (passed, failed, skipped))
    sys.exit(1 if failed else (77 if skipped and skipped == len(names) else 0))
