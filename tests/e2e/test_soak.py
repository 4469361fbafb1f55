"""test_soak.py - a soak: a random mix of real programs under the real agent.

For TATTLE_SOAK_SECONDS (default 20) it keeps 2 to 4 programs running at
once (the number changes every few seconds), drawn at random from: captures
then exit or flush (emitter), a shell starting 4-8 small emitters at once
(flushers starting, sweeping and writing one spool together), captures
from several threads then a crash,
captures then SIGKILL (by itself, or by the test once the host says it is
ready), a fork whose child captures too (emitter, procs reap, ctx
fork_resets), thread churn with contexts (emitter with 16-64 threads, ctx
scenarios), plain crashes (crasher null, abort, thread, two-threads), and
exec (emitter then /bin/sleep, procs vfork/posix_spawn of a crasher). All
the while one long-lived host (python3 calling the agent through ctypes)
captures ticks in a changing context, so one flusher works for the whole
run. Every process is tagged (TATTLE_TAGS soak_job=N) and sends to one
strict stand-in on 127.0.0.1, to one events file in the sandbox, or to both;
all share one spool, TATTLE_LINGER_MS is 300. A thread samples this
sandbox's flushers (found by TATTLE_SPOOL_DIR in /proc/PID/environ): their
host (the pidfd they hold), CPU time, VmRSS and VmHWM.

At the end it requires: every process ended within a bound (else it is
killed and named); each ended as its plain run does (signal or exit status,
stdout; stderr too when nothing crashed: the agent prints nothing then; a
crash's report says where its event went); every event a process captured
arrived, at each sink it was sent to, exactly once (bursts complete per
thread, SIGKILLed hosts included); nothing arrived that no process captured;
the stand-in saw no request break PostHog's rules; no batch was rejected or
damaged and the spool ends empty (what a flusher left there when its linger
ended is sent by a later process, as README says: the soak starts one); no flusher outlived its host by more than
the linger and a grace, none is left once all is over, none spun (over half
a core for 5 s); flusher memory stayed under a cap (VmHWM) and the
long-lived flusher did not keep growing; no sanitizer report was written
(when ASAN_OPTIONS/UBSAN_OPTIONS name a log_path). It prints its figures.

bench/soak.py runs the same soak for longer (soak() below) and prints them.
Usage: TATTLE_BUILD_DIR=build TATTLE_SOAK_SECONDS=20 python3 tests/e2e/test_soak.py
(TATTLE_SOAK_SEED=N draws the same mix again; a failure names its seed.)
"""
import collections
import glob
import json
import os
import random
import re
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
from posthog_standin import StandIn  # noqa: E402

KEY = "phc_tattle_soak_key_51c2e7"
TESTS = os.path.join(h.BUILD, "tests")
EMITTER = os.path.join(TESTS, "emitter")
CRASHER = os.path.join(TESTS, "crasher")
CTX = os.path.join(TESTS, "ctx")
PROCS = os.path.join(TESTS, "procs")
FLUSHER = os.path.join(h.BUILD, "tattle-flusher")
LINGER_MS = 300
CLK_TCK = os.sysconf("SC_CLK_TCK")
SPIN_WINDOW = 5.0  # seconds
SPIN_SHARE = 0.5  # of one core, sustained over SPIN_WINDOW (a busy loop gets ~60% here while the mix runs)
SAMPLE_EVERY = 0.1

# The long-lived host: python3 calling the agent through ctypes. Every
# PERIOD it opens a context tagged with the round, captures BURST "tick"
# events numbered from 0, now and then a handled exception, and closes the
# context; a line on stdin ends it, and it says what it captured.
LONG_HOST = r'''
import ctypes, select, sys
lib = ctypes.CDLL(None)
P = ctypes.c_char_p
for name, args in (("tattle_capture", [P, P]), ("tattle_new_context", [ctypes.c_uint]),
                   ("tattle_end_context", []), ("tattle_tag", [P, P]), ("tattle_capture_exception", [P, P])):
    getattr(lib, name).argtypes = args
    getattr(lib, name).restype = ctypes.c_int
burst, period = int(sys.argv[1]), float(sys.argv[2])
seq = rounds = handled = 0
failed = []
print("ready", flush=True)
while not select.select([sys.stdin], [], [], period)[0]:
    lib.tattle_new_context(0)
    lib.tattle_tag(b"round", b"%d" % rounds)
    for _ in range(burst):
        if lib.tattle_capture(b"tick", b'{"seq": %d}' % seq) != 0:
            failed.append(seq)
        seq += 1
    if rounds % 50 == 25:
        handled += lib.tattle_capture_exception(b"SoakHandled", b"round %d" % rounds) == 0
    lib.tattle_end_context()
    rounds += 1
print("ticks %d handled %d failed %s" % (seq, handled, " ".join(map(str, failed)) or "none"), flush=True)
'''

# ctx scenarios: what each captures (event name -> count).
CTX_EVENTS = {
    "threads": {"thread_event": 4},
    "new_thread_starts_empty": {"new_thread": 1},
    "nested_identity": {"fresh_inner": 1, "outer_again": 1, "inherited": 1, "overridden": 1, "outer_restored": 1},
    "deep_merge": {"merged": 1},
    "fresh_and_siblings": {"inner_fresh_empty": 1, "inner_fresh_tagged": 1, "sibling": 1, "outer_after": 1},
    "three_fresh_levels": {"at3": 1, "at2": 1, "at1": 1},
    "handled_exception": {"$exception": 1},
    "crash_in_context": {"$exception": 1},
    "fork_resets": {"child_ctx": 1, "child_left_ctx": 1, "child_top": 1, "parent_after_fork": 1},
}
CRASH_EVENT = {"$exception": 1}
# What the agent says for ctx fork_resets: its child ends the two contexts
# it inherited, which the fork dropped (README: one line per kind of mistake).
FORK_RESETS_STDERR = ("tattle: tattle_end_context: no context is open on this thread "
                      "(further mistakes of this kind are not reported)\n")
WRITE_FAILED = re.compile(r"^tattle: cannot write .*$", re.M)


def slim(ev):
    """What the checks need of an event (the stand-in keeps only this)."""
    p = ev.get("properties") or {}
    exc = (p.get("$exception_list") or [{}])[0] if ev.get("event") == "$exception" else {}
    return {"event": ev.get("event"), "uuid": ev.get("uuid"), "job": p.get("soak_job"), "pid": p.get("pid"),
            "thread": p.get("thread"), "seq": p.get("seq"), "level": p.get("$exception_level"),
            "type": exc.get("type"), "dropped": p.get("$tattle_dropped_events", 0),
            "spool_dropped": p.get("$tattle_spool_dropped_events", 0)}


class SlimStandIn(StandIn):
    """The strict stand-in, keeping each accepted event in brief (a long
    soak sends hundreds of thousands)."""

    cut = 0  # connections the client closed before the answer (a request it gave up on)

    def start(self):
        super().start()
        self.server.handle_error = self._cut

    def _cut(self, request, client_address):
        self.cut += 1

    def _validate(self, handler, raw, rec):
        return [slim(e) for e in super()._validate(handler, raw, rec)]


class Job:
    """One program of the mix and what became of it."""

    def __init__(self, jid, kind, argv, sinks, crashes=False, events=None, emitter=None, ext_kill=False,
                 plain_key=None):
        self.id = jid
        self.kind = kind
        self.argv = argv
        self.sinks = sinks            # "server", "file" or "both"
        self.crashes = crashes        # a crash report is due on stderr
        self.events = events          # fixed expectations: name -> count
        self.emitter = emitter        # (threads, per_thread, mode): expectations from its stdout
        self.ext_kill = ext_kill      # SIGKILLed by the test once it said "ready"
        self.plain_key = plain_key    # the plain run it must end like
        self.stderr_expected = None   # under the agent, when not the plain run's
        self.copies = 1               # emitters started at once by a shell
        self.pid = None
        self.start = self.end = None
        self.returncode = None
        self.stdout = self.stderr = ""
        self.hung = False
        self.error = None

    def describe(self):
        if self.kind == "long-lived":
            return "the long-lived host (python3 + ctypes)"
        if self.copies > 1:
            return "job %s (%s: %d emitters 0 %d exit started at once by sh, to %s)" % (
                self.id, self.kind, self.copies, self.emitter[1], self.sinks)
        return "job %s (%s: %s, to %s)" % (self.id, self.kind, " ".join(os.path.basename(a) if i == 0 else a
                                                                          for i, a in enumerate(self.argv)), self.sinks)


def parse_captured(stdout):
    """[(ok, errors)] from an emitter's "captured N errors M" lines (parent, then child)."""
    return [(int(a), int(b)) for a, b in re.findall(r"^(?:child )?captured (\d+) errors (\d+)$", stdout, re.M)]


def emitter_stdout(threads, per_thread, mode, counts=None):
    """What an emitter prints when every capture succeeds (or with counts)."""
    total = max(threads, 1) * per_thread
    (ok, err) = counts[0] if counts else (total, 0)
    out = "captured %d errors %d\n" % (ok, err)
    if mode == "flush":
        out += "flush 0\n"
    elif mode == "fork":
        (cok, cerr) = counts[1] if counts and len(counts) > 1 else (per_thread, 0)
        out += "child captured %d errors %d\n" % (cok, cerr)
    elif mode == "stdin":
        out += "ready\n"
    return out


class Flusher:
    def __init__(self, key, now):
        self.pid, self.starttime = key
        self.first = self.last = now
        self.jobs = set()       # the jobs its pidfds named while they ran (a shared flusher serves many)
        self.cpu = []           # (time, ticks)
        self.rss = []           # (time, VmRSS KiB)
        self.hwm = 0            # VmHWM KiB
        self.cmd = ""
        self.sender = False


class Soak:
    def __init__(self, seconds, seed=None, valgrind=False, scale=None, rss_cap_mb=None):
        self.seconds = seconds
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.valgrind = valgrind
        self.sanitized = h.sanitized(FLUSHER)
        self.scale = scale or (20 if valgrind else 3 if self.sanitized else 1)
        if rss_cap_mb is None:  # generous: README measures 29 MiB at a crash's peak
            rss_cap_mb = None if valgrind else 1536 if self.sanitized else 256
        self.rss_cap_kib = rss_cap_mb * 1024 if rss_cap_mb else None
        self.job_timeout = 30.0 * self.scale
        self.sb = h.Sandbox("soak")
        self.spool = os.path.join(self.sb.dir, "spool")
        self.marker = ("TATTLE_SPOOL_DIR=%s" % self.spool).encode()
        self.vglogs = os.path.join(self.sb.dir, "vg")
        os.mkdir(self.vglogs)
        self.server = SlimStandIn()
        self.lock = threading.Lock()
        self.scan_lock = threading.Lock()
        self.long = None
        self.started_wall = time.time()
        self.soak_seconds = seconds
        self.jobs = []
        self.live_pids = {}       # pid -> job, for naming a flusher's host
        self.flushers = {}        # (pid, starttime) -> Flusher
        self.not_ours = set()
        self.max_at_once = 0
        self.at_once_detail = ""
        self.plain = {}
        self.problems = collections.defaultdict(list)
        self.figures = collections.OrderedDict()
        self.stop_sampling = threading.Event()

    # -- environment of a job
    def env_for(self, job):
        env = self.sb.base_env()
        env.update(LD_PRELOAD=h.AGENT, TATTLE_SPOOL_DIR=self.spool, TATTLE_LINGER_MS=str(LINGER_MS),
                   TATTLE_TAGS="soak_job=%s" % job.id)
        if job.sinks in ("server", "both"):
            env.update(POSTHOG_API_KEY=KEY, POSTHOG_HOST=self.server.url)
        if job.sinks in ("file", "both"):
            # Every event must be in the file: past its bound (64 MB, a few
            # minutes of soak) the file is rotated and the oldest go.
            env.update(TATTLE_FILE=self.sb.events_path, TATTLE_FILE_MAX_MB="8192")
        if self.valgrind:
            env.update(TATTLE_CRASH_TIMEOUT_MS="60000", TATTLE_EXIT_TIMEOUT_MS="20000")
        return env

    def wrap(self, argv):
        if not self.valgrind:
            return argv
        return ["valgrind", "-q", "--trace-children=yes", "--log-file=" + os.path.join(self.vglogs, "vg.%p.log")] + argv

    # -- the mix
    def draw(self, jid):
        rng = self.rng
        sinks = rng.choices(["server", "file", "both"], [6, 2, 2])[0]
        kind = rng.choices(["capture-exit", "swarm", "threads-crash", "self-kill", "ext-kill", "fork", "churn", "crash",
                            "exec"], [20, 6, 12, 6, 8, 10, 14, 14, 8])[0]

        def emitter(threads, n, mode, **kw):
            return Job(jid, kind, [EMITTER, str(threads), str(n), mode], sinks, emitter=(threads, n, mode),
                       plain_key=("emitter", mode), **kw)
        if kind == "swarm":  # a shell starts several small hosts at once: flushers start, sweep and write together
            copies, n = rng.randint(4, 8), rng.randint(1, 50)
            job = Job(jid, kind, ["/bin/sh", "-c", 'for i in $(seq %d); do "$0" 0 %d exit & done; wait' % (copies, n),
                                  EMITTER], sinks, emitter=(0, n, "exit"), plain_key=("emitter", "exit"))
            job.copies = copies
            return job
        if kind == "capture-exit":
            threads = rng.choice([0, 1, 2, 4])
            return emitter(threads, rng.randint(1, 400 if threads < 2 else 250), rng.choice(["exit", "flush"]))
        if kind == "threads-crash":
            return emitter(rng.choice([2, 4, 8]), rng.randint(10, 120), "crash", crashes=True)
        if kind == "self-kill":
            return emitter(rng.choice([0, 1, 2, 4]), rng.randint(1, 250), "kill")
        if kind == "ext-kill":
            return emitter(rng.choice([0, 1, 2, 4]), rng.randint(1, 250), "stdin", ext_kill=True)
        if kind == "fork":
            which = rng.choices(["emitter", "reap", "fork_resets"], [5, 3, 2])[0]
            if which == "emitter":
                return emitter(rng.choice([0, 1, 2]), rng.randint(1, 200), "fork")
            if which == "reap":
                return Job(jid, kind, [PROCS, "reap"], sinks, crashes=True, plain_key=("procs", "reap"),
                           events={"reaper started": 1, "child event": 1, "$exception": 1})
            job = Job(jid, kind, [CTX, "fork_resets"], sinks, events=CTX_EVENTS["fork_resets"],
                      plain_key=("ctx", "fork_resets"))
            job.stderr_expected = FORK_RESETS_STDERR
            return job
        if kind == "churn":
            if rng.random() < 0.4:
                return emitter(rng.choice([16, 32, 64]), rng.randint(1, 15), "exit")
            verb = rng.choice([v for v in CTX_EVENTS if v != "fork_resets"])
            return Job(jid, kind, [CTX, verb], sinks, events=CTX_EVENTS[verb], crashes=verb.startswith("crash"),
                       plain_key=("ctx", verb))
        if kind == "crash":
            verb = rng.choices(["null", "abort", "thread", "two-threads"], [4, 3, 3, 1])[0]
            return Job(jid, kind, [CRASHER, verb], sinks, events=CRASH_EVENT, crashes=True,
                       plain_key=("crasher", verb))
        # exec
        which = rng.choices(["emitter", "vfork", "spawn"], [5, 2, 2])[0]
        if which == "emitter":
            return emitter(rng.choice([0, 1, 2]), rng.randint(1, 200), "exec")
        verb = rng.choice(["null", "abort"])
        return Job(jid, kind, [PROCS, which, CRASHER, verb], sinks, events=CRASH_EVENT, crashes=True,
                   plain_key=("procs", which, verb))

    def plain_runs(self):
        """How each program of the mix ends without the agent."""
        keys = {("emitter", m): [EMITTER, "2", "3", m] for m in ("exit", "flush", "crash", "kill", "fork", "exec")}
        keys.update({("crasher", v): [CRASHER, v] for v in ("null", "abort", "thread", "two-threads")})
        keys.update({("ctx", v): [CTX, v] for v in CTX_EVENTS})
        keys[("procs", "reap")] = [PROCS, "reap"]
        keys.update({("procs", w, v): [PROCS, w, CRASHER, v] for w in ("vfork", "spawn") for v in ("null", "abort")})

        def one(key):
            p = subprocess.run(keys[key], env=self.sb.base_env(), capture_output=True, text=True, timeout=60,
                               cwd=self.sb.dir)
            self.plain[key] = (p.returncode, p.stdout, p.stderr)
        threads = [threading.Thread(target=one, args=(k,)) for k in keys]
        for i in range(0, len(threads), 4):
            for t in threads[i:i + 4]:
                t.start()
            for t in threads[i:i + 4]:
                t.join()
        for m in ("exit", "flush", "crash", "kill", "fork", "exec"):
            out = self.plain[("emitter", m)][1]
            if out != emitter_stdout(2, 3, m):
                self.problems["plain runs"].append("emitter %s printed %r plain" % (m, out))

    # -- running one job
    def run_job(self, job):
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
        try:
            job.start = time.monotonic()
            deadline = job.start + self.job_timeout
            p = subprocess.Popen(self.wrap(job.argv), env=self.env_for(job), cwd=self.sb.dir,
                                 stdin=subprocess.PIPE if job.ext_kill else subprocess.DEVNULL,
                                 stdout=subprocess.PIPE if job.ext_kill else out, stderr=err, start_new_session=True)
            job.pid = p.pid
            with self.lock:
                self.live_pids[p.pid] = job
            text = ""
            if job.ext_kill:
                text = read_until(p.stdout, "ready\n", deadline)
                if text.endswith("ready\n"):
                    time.sleep(random.random() * 0.2)
                    os.kill(p.pid, signal.SIGKILL)
            while p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            if p.poll() is None:
                job.hung = True
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
            job.end = time.monotonic()
            job.returncode = p.returncode
            if job.ext_kill:
                text += p.stdout.read().decode(errors="replace")
                p.stdin.close()
                p.stdout.close()
            else:
                out.seek(0)
                text = out.read().decode(errors="replace")
            err.seek(0)
            job.stdout, job.stderr = text, err.read().decode(errors="replace")
        except Exception as e:  # noqa: BLE001 - said, not swallowed
            job.error = "%s: %s" % (type(e).__name__, e)
            job.end = job.end or time.monotonic()
        finally:
            out.close()
            err.close()

    # -- the long-lived host
    def start_long_host(self):
        job = Job("long", "long-lived", [sys.executable, "-c", LONG_HOST, "10", "0.05"], "both")
        job.start = time.monotonic()
        env = self.env_for(job)
        job.proc = subprocess.Popen(self.wrap(job.argv), env=env, cwd=self.sb.dir, stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        job.pid = job.proc.pid
        with self.lock:
            self.live_pids[job.pid] = job
        self.long = job
        first = read_until(job.proc.stdout, "ready\n", time.monotonic() + 30 * self.scale)
        if first != "ready\n":
            self.problems["the long-lived host"].append("did not start: %r" % first)

    def stop_long_host(self):
        job = self.long
        try:
            out, err = job.proc.communicate(b"stop\n", timeout=30 * self.scale)
        except subprocess.TimeoutExpired:
            job.hung = True
            os.killpg(job.pid, signal.SIGKILL)
            out, err = job.proc.communicate()
        job.end = time.monotonic()
        job.returncode = job.proc.returncode
        job.stdout, job.stderr = out.decode(errors="replace"), err.decode(errors="replace")

    # -- sampling this sandbox's flushers
    def scan(self):
        with self.scan_lock:
            return self._scan()

    def _scan(self):
        now = time.monotonic()
        alive = []
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            pid = int(name)
            try:
                with open("/proc/%d/comm" % pid) as f:
                    comm = f.read().strip()
                if comm != "tattle-flusher" and not comm.startswith("memcheck"):
                    continue
                with open("/proc/%d/stat" % pid) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                if fields[0] in "ZX":  # exited; its reaper has not caught up
                    continue
                key = (pid, int(fields[19]))
                ticks = int(fields[11]) + int(fields[12])
                if key in self.not_ours:
                    continue
                fl = self.flushers.get(key)
                if fl is None:
                    with open("/proc/%d/environ" % pid, "rb") as f:
                        ours = self.marker in f.read().split(b"\0")
                    with open("/proc/%d/cmdline" % pid, "rb") as f:
                        cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
                    if not ours or (comm != "tattle-flusher" and "tattle-flusher" not in cmd):
                        # a valgrind'd host is not ours yet: it may exec the flusher later
                        if comm == "tattle-flusher":
                            self.not_ours.add(key)
                        continue
                    fl = Flusher(key, now)
                    fl.cmd = cmd
                    fl.sender = "--send-spool" in cmd
                    self.flushers[key] = fl
                for host in pidfd_hosts(pid):
                    with self.lock:
                        job = self.live_pids.get(host)
                    if job and job.end is None:  # not a pid reused since
                        fl.jobs.add(job)
                rss, hwm = status_kib(pid, ("VmRSS", "VmHWM"))
                fl.last = now
                fl.cpu.append((now, ticks))
                fl.rss.append((now, rss))
                fl.hwm = max(fl.hwm, hwm)
                alive.append(fl)
            except (OSError, IndexError, ValueError):
                continue
        if len(alive) > self.max_at_once:
            self.max_at_once = len(alive)
            self.at_once_detail = "%d senders, %d of live hosts, %d of hosts that ended, %d of other hosts" % (
                sum(1 for f in alive if f.sender), sum(1 for f in alive if any(j.end is None for j in f.jobs)),
                sum(1 for f in alive if f.jobs and all(j.end is not None for j in f.jobs)),
                sum(1 for f in alive if not f.jobs and not f.sender))
        return alive

    def sampler(self):
        while not self.stop_sampling.is_set():
            self.scan()
            self.stop_sampling.wait(SAMPLE_EVERY)

    # -- the run
    def run(self):
        t_begin = time.monotonic()
        old_core = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, old_core[1]))  # hundreds of crashes: no cores
        sampler = threading.Thread(target=self.sampler, daemon=True)
        try:
            self.plain_runs()
            sampler.start()
            self.start_long_host()
            self.loop()
            self.stop_long_host()
            self.finish()
        finally:
            self.stop_sampling.set()
            sampler.join(5)
            resource.setrlimit(resource.RLIMIT_CORE, old_core)
            self.server.stop()
        self.figures["wall time (s)"] = round(time.monotonic() - t_begin, 1)
        return self

    def loop(self):
        running = []
        start = time.monotonic()
        end = start + self.seconds
        target, retarget = 2, start
        n = 0
        while time.monotonic() < end:
            now = time.monotonic()
            if now >= retarget:
                target, retarget = self.rng.randint(2, 4), now + self.rng.uniform(2, 5)
            running = [t for t in running if t.is_alive()]
            while len(running) < target:
                n += 1
                job = self.draw(n)
                self.jobs.append(job)
                t = threading.Thread(target=self.run_job, args=(job,), daemon=True)
                t.start()
                running.append(t)
            time.sleep(0.01)
        for t in running:
            t.join(self.job_timeout + 30)
        self.soak_seconds = time.monotonic() - start

    def settle(self, what, since, timeout):
        """Wait until timeout after since for this sandbox's flushers to exit;
        those left are sampled, named (spinning or idle) and killed."""
        deadline = max(since + timeout, time.monotonic() + 1.0)
        while time.monotonic() < deadline:
            if not self.scan():
                return
            time.sleep(0.1)
        left = self.scan()
        t0 = {fl.pid: fl.cpu[-1] for fl in left}
        time.sleep(1.0)
        for fl in self.scan():
            (ta, ca), (tb, cb) = t0.get(fl.pid, fl.cpu[-1]), fl.cpu[-1]
            share = (cb - ca) / CLK_TCK / max(tb - ta, 1e-3)
            self.problems["no flusher left running"].append(
                "%s: pid %d (%s) still ran %.1f s after the last host ended, using %.0f%% of a core%s" %
                (what, fl.pid, fl.cmd, time.monotonic() - since, 100 * share, " (SPINNING)" if share > 0.5 else ""))
            try:
                os.kill(fl.pid, signal.SIGKILL)
            except OSError:
                pass

    def expected(self, job):
        """(name -> count, burst groups or None) for what the job captured."""
        if job.events is not None:
            return collections.Counter(job.events), None
        if job.emitter is None:  # the long-lived host
            m = re.search(r"ticks (\d+) handled (\d+) failed (.*)", job.stdout)
            if not m:
                return None, None
            failed = set() if m.group(3) == "none" else {int(x) for x in m.group(3).split()}
            job.tick_seqs = set(range(int(m.group(1)))) - failed
            return collections.Counter({"tick": len(job.tick_seqs), "$exception": int(m.group(2))}), None
        threads, n, mode = job.emitter
        counts = parse_captured(job.stdout)
        if not counts:
            return None, None
        exp = collections.Counter({"burst": sum(ok for ok, _ in counts)})
        if mode == "crash":
            exp["$exception"] = 1
        groups = None
        if all(err == 0 for _, err in counts):
            groups = [n] * max(threads, 1) * job.copies + ([n] if mode == "fork" else [])
        exp += collections.Counter()  # drop zeros
        return exp, groups

    def finish(self):
        """After the last job: wait for the events, the flushers' exit, then check."""
        jobs = self.jobs + [self.long]
        last_end = max(j.end for j in jobs if j.end)
        for job in jobs:
            job.expect, job.groups = self.expected(job) if not job.hung and not job.error else (None, None)

        def want(sinks):
            return sum(sum(j.expect.values()) for j in jobs if j.expect and j.sinks in sinks)
        want_server, want_file = want(("server", "both")), want(("file", "both"))
        arrival_timeout = 30 * min(self.scale, 5)
        self.server.wait_for(lambda s: len(s.events) >= want_server, arrival_timeout)
        self.settle("after the soak", last_end, LINGER_MS / 1000 + 10 * self.scale)
        # What a flusher left in the spool at its linger's end goes with the next process.
        late = 0
        if len(self.server.accepted()) < want_server and self.batches():
            before = len(self.server.accepted())
            kick = Job("kick", "sender", [EMITTER, "1", "0", "exit"], "server")
            subprocess.run(kick.argv, env=self.env_for(kick), timeout=60, stdout=subprocess.DEVNULL)
            kicked = time.monotonic()
            self.server.wait_for(lambda s: len(s.events) >= want_server, arrival_timeout)
            self.settle("after the sender", kicked, LINGER_MS / 1000 + 10 * self.scale)
            late = len(self.server.accepted()) - before
        self.figures["events delivered only by a later sender (left in the spool after a linger)"] = late
        self.check_jobs(jobs)
        self.check_events(jobs, want_server, want_file)
        self.check_flushers(jobs)
        self.check_spool()
        self.check_sanitizer_logs()
        self.check_valgrind_logs()

    def batches(self, suffix=".batch"):
        return sorted(glob.glob(os.path.join(self.spool, "posthog-*", "*" + suffix)))

    # -- the checks; each adds to self.problems and to the figures
    def check_jobs(self, jobs):
        kinds = collections.Counter(j.kind for j in self.jobs)
        self.figures["processes started (programs of the mix)"] = len(self.jobs)
        self.figures["by kind"] = ", ".join("%s %d" % kv for kv in sorted(kinds.items()))
        self.figures["soak time (s)"] = round(self.soak_seconds, 1)
        durations = sorted(j.end - j.start for j in self.jobs if j.end and j.start)
        if durations:
            self.figures["program run time median / max (s)"] = "%.2f / %.2f" % (durations[len(durations) // 2],
                                                                                 durations[-1])
        refused = 0
        for job in jobs:
            if job.error:
                self.problems["every process ran"].append("%s: %s" % (job.describe(), job.error))
                continue
            if job.hung:
                self.problems["every process ended within %d s" % self.job_timeout].append(
                    "%s hung; killed. stdout %r stderr %r" % (job.describe(), job.stdout[-300:], job.stderr[-600:]))
                continue
            failed_writes = WRITE_FAILED.findall(job.stderr)
            if failed_writes:
                self.problems["every batch reached its sinks (no 'cannot write' from the agent)"].append(
                    "%s: %s" % (job.describe(), failed_writes))
            stderr = WRITE_FAILED.sub("", job.stderr).replace("\n\n", "\n").lstrip("\n")
            if job is self.long:
                if job.returncode != 0 or job.expect is None or stderr:
                    self.problems["the long-lived host exits 0 and says what it captured"].append(
                        "exit %s, stdout %r, stderr %r" % (job.returncode, job.stdout[-300:], job.stderr[-600:]))
                continue
            if job.ext_kill:
                rc, pout, perr = -signal.SIGKILL, None, ""
            else:
                rc, pout, perr = self.plain[job.plain_key]
            if job.returncode != rc:
                self.problems["each process ended as its plain run"].append(
                    "%s: %s, plain %s; stderr %r" % (job.describe(), how(job.returncode), how(rc), job.stderr[-600:]))
            if job.emitter:
                counts = parse_captured(job.stdout)
                refused += sum(err for _, err in counts)
                threads, n, mode = job.emitter
                total = max(threads, 1) * n
                if job.copies > 1:  # lines in any order, each whole
                    ok = len(counts) == job.copies and all(a + b == total for a, b in counts)
                    expected = "".join(emitter_stdout(threads, n, mode, [c] if ok else None) for c in counts) \
                        if ok else emitter_stdout(threads, n, mode) * job.copies
                    if ok and sorted(job.stdout.splitlines()) == sorted(expected.splitlines()):
                        expected = job.stdout
                else:
                    ok = (len(counts) == (2 if mode == "fork" else 1) and counts[0][0] + counts[0][1] == total and
                          (mode != "fork" or sum(counts[1]) == n))
                    expected = emitter_stdout(threads, n, mode, counts if ok else None)
            else:
                expected = pout
            if not self.valgrind and job.stdout != expected:
                self.problems["each process printed what its plain run prints"].append(
                    "%s: stdout %r, expected %r" % (job.describe(), job.stdout[-300:], expected[-300:]))
            if self.valgrind:
                continue
            if job.crashes:
                if "tattle: event " not in job.stderr or "NOT saved" in job.stderr or \
                        "did not complete in time" in job.stderr:
                    self.problems["each crash report says where its event went"].append(
                        "%s: stderr %r" % (job.describe(), job.stderr[-800:]))
            elif stderr != (job.stderr_expected if job.stderr_expected is not None else perr):
                self.problems["the agent prints nothing for a program that does not crash"].append(
                    "%s: stderr %r (plain %r)" % (job.describe(), job.stderr[-800:], perr[-200:]))
        self.figures["captures refused (ring full, counted: TATTLE_ENOBUFS)"] = refused

    def file_events(self):
        events = []
        if not os.path.exists(self.sb.events_path):
            return events
        with open(self.sb.events_path, "rb") as f:
            for i, line in enumerate(f, 1):
                try:
                    events.append(slim(json.loads(line)))
                except ValueError:
                    self.problems["the events file holds whole JSON lines"].append(
                        "line %d: %r" % (i, line[:200]))
        return events

    def check_events(self, jobs, want_server, want_file):
        sinks = {"server": self.server.accepted(), "file": self.file_events()}
        self.figures["requests to the stand-in (statuses)"] = ", ".join(
            "%s %d" % kv for kv in sorted(collections.Counter(r["status"] for r in self.server.requests).items()))
        for v in self.server.violations()[:10]:
            self.problems["every request met PostHog's rules"].append(v)
        self.figures["requests the flusher gave up on before the answer"] = self.server.cut
        bad = [r["status"] for r in self.server.requests if r["status"] != 200]
        if bad:
            self.problems["the stand-in answered every request 200"].append(collections.Counter(bad))
        by_job = {}
        for sink, events in sinks.items():
            for e in events:
                by_job.setdefault((sink, e["job"]), []).append(e)
            seen, dups = set(), collections.Counter()
            for e in events:
                if e["uuid"] in seen:
                    dups[e["job"]] += 1
                seen.add(e["uuid"])
            if dups:
                self.problems["no event arrived twice"].append(
                    "%s: %d duplicates, by job: %s" % (sink, sum(dups.values()), dict(dups.most_common(10))))
            dropped = sum(e["dropped"] for e in events)
            spool_dropped = sum(e["spool_dropped"] for e in events)
            self.figures["%s: $tattle_dropped_events / $tattle_spool_dropped_events" % sink] = "%d / %d" % (
                dropped, spool_dropped)
            if spool_dropped:
                self.problems["the spool dropped nothing"].append("%s: %d" % (sink, spool_dropped))
        self.figures["events captured for the server / the file"] = "%d / %d" % (want_server, want_file)
        self.figures["events arrived at the server / in the file"] = "%d / %d" % (len(sinks["server"]),
                                                                                  len(sinks["file"]))
        total = len(sinks["server"]) + len(sinks["file"])
        self.figures["events per second (both sinks, over the soak time)"] = round(total / self.soak_seconds)
        known = {str(j.id) for j in jobs}
        for (sink, jid), events in sorted(by_job.items(), key=lambda kv: str(kv[0])):
            if jid not in known:
                self.problems["nothing arrived that no process captured"].append(
                    "%s: %d events of job %r, e.g. %s" % (sink, len(events), jid, events[0]))
        for job in jobs:
            if job.expect is None:
                continue
            mine = {}
            for sink in ("server", "file"):
                if job.sinks not in (sink, "both"):
                    if by_job.get((sink, str(job.id))):
                        self.problems["each event went only to its sinks"].append(
                            "%s: %d events at the %s" % (job.describe(), len(by_job[(sink, str(job.id))]), sink))
                    continue
                events = by_job.get((sink, str(job.id)), [])
                mine[sink] = events
                got = collections.Counter(e["event"] for e in events)
                if got != job.expect:
                    missing = job.expect - got
                    extra = got - job.expect
                    self.problems["every captured event arrived, once"].append(
                        "%s at the %s: missing %s, extra %s; %s; stdout %r; stderr %r" % (
                            job.describe(), sink, dict(missing), dict(extra), how(job.returncode), job.stdout[:200],
                            job.stderr[-600:]))
                    continue
                fatal = sum(1 for e in events if e["event"] == "$exception" and e["level"] == "fatal")
                if fatal != (1 if job.crashes else 0):
                    self.problems["one fatal $exception per crash"].append("%s at the %s: %d" % (job.describe(),
                                                                                                 sink, fatal))
                if job.groups:
                    groups = collections.defaultdict(list)
                    for e in events:
                        if e["event"] == "burst":
                            groups[(e["pid"], e["thread"])].append(e["seq"])
                    sizes = sorted(len(s) for s in groups.values())
                    whole = all(sorted(s) == list(range(len(s))) for s in groups.values())
                    if sizes != sorted(job.groups) or not whole:
                        self.problems["each thread's events arrived complete"].append(
                            "%s at the %s: groups %s, expected %s" % (job.describe(), sink, sizes, job.groups))
                if job is self.long:
                    seqs = sorted(e["seq"] for e in events if e["event"] == "tick")
                    if seqs != sorted(job.tick_seqs):
                        self.problems["every tick of the long-lived host arrived"].append(
                            "at the %s: %d of %d" % (sink, len(seqs), len(job.tick_seqs)))
            if len(mine) == 2 and {e["uuid"] for e in mine["server"]} != {e["uuid"] for e in mine["file"]}:
                self.problems["the file and the server got the same events"].append(job.describe())

    def check_flushers(self, jobs):
        fls = list(self.flushers.values())
        self.figures["flushers seen (of which --send-spool senders)"] = "%d (%d)" % (
            len(fls), sum(1 for f in fls if f.sender))
        self.figures["flushers at most at once"] = "%d (%s)" % (self.max_at_once, self.at_once_detail)
        if fls:
            peak = max(fls, key=lambda f: f.hwm)
            self.figures["peak flusher RSS (VmHWM, MiB)"] = round(peak.hwm / 1024, 1)
            if self.rss_cap_kib and peak.hwm > self.rss_cap_kib:
                self.problems["flusher memory stays under %d MiB" % (self.rss_cap_kib // 1024)].append(
                    "pid %d (%s): VmHWM %.1f MiB" % (peak.pid, describe_jobs(peak), peak.hwm / 1024))
        grace = LINGER_MS / 1000 + 5 * self.scale
        worst_after, worst_share = 0.0, 0.0
        for fl in fls:
            share, when = max_share(fl.cpu, SPIN_WINDOW)
            worst_share = max(worst_share, share)
            if share > SPIN_SHARE and not self.valgrind:  # memcheck itself is busy
                self.problems["no flusher spins"].append(
                    "pid %d (%s): %.0f%% of a core over %.0f s from %.1f s into its life" % (
                        fl.pid, describe_jobs(fl), 100 * share, SPIN_WINDOW, when - fl.first))
            # A flusher exits within the linger after the last host it served.
            if fl.jobs and all(j.end and not j.hung for j in fl.jobs):
                job = max(fl.jobs, key=lambda j: j.end)
                after = fl.last - job.end
                worst_after = max(worst_after, after)
                if after > grace:
                    self.problems["each flusher exits within the linger after its host"].append(
                        "pid %d of %s: seen %.1f s after its host ended (linger %.1f s)" % (
                            fl.pid, job.describe(), after, LINGER_MS / 1000))
        self.figures["longest a flusher was seen after its host ended (s)"] = round(worst_after, 2)
        self.figures["most CPU a flusher used over %.0f s (share of a core)" % SPIN_WINDOW] = round(worst_share, 2)
        mapped = sum(1 for fl in fls if fl.jobs)
        self.figures["flushers whose hosts were named by their pidfds"] = mapped
        longs = [fl for fl in fls if self.long in fl.jobs]
        if longs:
            fl = max(longs, key=lambda f: f.last - f.first)
            rss = fl.rss
            t0 = fl.first + (fl.last - fl.first) / 4  # after a warm-up
            rss = [(t, r) for t, r in fl.rss if r > 0]  # none once it is a zombie
            warm = [r for t, r in rss if t >= t0]
            if warm:
                growth = rss[-1][1] - min(warm)
                self.figures["long-lived flusher RSS after warm-up / at the end (MiB)"] = "%.1f / %.1f" % (
                    min(warm) / 1024, rss[-1][1] / 1024)
                (ta, ca), (tb, cb) = fl.cpu[0], fl.cpu[-1]
                self.figures["long-lived flusher CPU (share of a core)"] = round((cb - ca) / CLK_TCK /
                                                                                max(tb - ta, 1e-3), 3)
                limit = 64 * 1024 * (8 if self.sanitized else 1)
                if not self.valgrind and growth > limit:
                    self.problems["the long-lived flusher does not keep growing"].append(
                        "VmRSS grew %.1f MiB after its warm-up" % (growth / 1024))
        elif not self.valgrind:
            self.problems["the long-lived host had a flusher"].append("none seen")

    def check_spool(self):
        for suffix in (".rejected", ".damaged"):
            found = self.batches(suffix)
            if found:
                self.problems["no batch was %s" % suffix[1:]].append(found[:5])
        left = self.batches()
        self.figures["batches left in the spool"] = len(left)
        if left:
            self.problems["the spool ends empty (the server was up)"].append(left[:5])

    def check_sanitizer_logs(self):
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            m = re.search(r"(?:^|:)log_path=([^:]+)", os.environ.get(var, ""))
            if not m:
                continue
            reports = [p for p in glob.glob(m.group(1) + ".*") if os.path.getmtime(p) >= self.started_wall]
            self.figures["%s reports" % var.split("_")[0].lower()] = len(reports)
            for p in reports[:5]:
                with open(p, errors="replace") as f:
                    self.problems["no sanitizer report"].append("%s:\n%s" % (p, f.read()[:3000]))

    def check_valgrind_logs(self):
        if not self.valgrind:
            return
        flusher_errors = host_errors = 0
        for path in glob.glob(os.path.join(self.vglogs, "vg.*.log")):
            with open(path, errors="replace") as f:
                text = f.read()
            errors = h.memcheck_errors(text)
            if "tattle-flusher" in text[:2000] or any("tattle-flusher" in line for e in errors for line in e):
                flusher_errors += len(errors)
                for e in errors[:2]:
                    self.problems["no memcheck error in a flusher"].append("\n".join(e[:12]))
            else:
                ours = [e for e in errors if any("libtattle" in line for line in e)]
                host_errors += len(ours)
                for e in ours[:2]:
                    self.problems["no memcheck error in the agent's code"].append("\n".join(e[:12]))
        self.figures["memcheck errors in flushers / in the agent in hosts"] = "%d / %d" % (flusher_errors,
                                                                                          host_errors)

    def cleanup(self):
        self.sb.cleanup()


def how(returncode):
    if returncode is None:
        return "did not end"
    return "killed by %s" % signal.Signals(-returncode).name if returncode < 0 else "exited %d" % returncode


def read_until(stream, suffix, deadline):
    """Read from a pipe until the text ends with suffix, EOF or the deadline."""
    fd, text = stream.fileno(), b""
    while not text.endswith(suffix.encode()):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        text += chunk
    return text.decode(errors="replace")


def describe_jobs(fl):
    jobs = sorted(fl.jobs, key=lambda j: j.id)
    return ", ".join(j.describe() for j in jobs[:3]) + (" and %d more" % (len(jobs) - 3) if len(jobs) > 3 else "")


def pidfd_hosts(pid):
    """The pids a flusher's pidfds refer to (its hosts)."""
    hosts = []
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) != "anon_inode:[pidfd]":
                    continue
                with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                    m = re.search(r"^Pid:\s*(-?\d+)", f.read(), re.M)
                if m and int(m.group(1)) > 0:
                    hosts.append(int(m.group(1)))
            except OSError:
                continue
    except OSError:
        pass
    return hosts


def status_kib(pid, fields):
    values = dict.fromkeys(fields, 0)
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            name = line.split(":", 1)[0]
            if name in values:
                values[name] = int(line.split()[1])
    return [values[k] for k in fields]


def max_share(samples, window):
    """The largest share of a core used over any stretch of at least window
    seconds between samples, and when that stretch began."""
    best, when, j = 0.0, 0.0, 0
    for i in range(len(samples)):
        if j < i:
            j = i
        while j < len(samples) and samples[j][0] - samples[i][0] < window:
            j += 1
        if j >= len(samples):
            break
        share = (samples[j][1] - samples[i][1]) / CLK_TCK / (samples[j][0] - samples[i][0])
        if share > best:
            best, when = share, samples[i][0]
    return best, when


def soak(seconds, seed=None, valgrind=False, scale=None, rss_cap_mb=None):
    """Run the soak; returns the Soak with .figures and .problems."""
    s = Soak(seconds, seed=seed, valgrind=valgrind, scale=scale, rss_cap_mb=rss_cap_mb)
    try:
        s.run()
    finally:
        s.cleanup()
    return s


def print_figures(s):
    print("soak: %s, seed %d, %s%s" % (h.BUILD, s.seed, "valgrind, " if s.valgrind else "",
                                       "sanitized flusher" if s.sanitized else "plain flusher"))
    for k, v in s.figures.items():
        print("  %-72s %s" % (k, v))


def mixed_work_under_the_agent():
    seconds = float(os.environ.get("TATTLE_SOAK_SECONDS", "20"))
    seed = int(os.environ["TATTLE_SOAK_SEED"]) if os.environ.get("TATTLE_SOAK_SEED") else None
    s = soak(seconds, seed=seed)
    print_figures(s)
    lines = []
    for what, details in s.problems.items():
        lines.append("%s: %d" % (what, len(details)))
        lines += ["  " + str(d).replace("\n", "\n      ") for d in details[:12]]
        if len(details) > 12:
            lines.append("  ... and %d more" % (len(details) - 12))
    h.check(not s.problems, "the soak ran clean (seed %d; TATTLE_SOAK_SEED=%d repeats the mix)" % (s.seed, s.seed),
            *lines)


TESTS = {f.__name__: f for f in [mixed_work_under_the_agent]}

if __name__ == "__main__":
    h.main(TESTS)
