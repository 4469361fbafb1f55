"""test_delivery.py - delivery to a strict PostHog stand-in on 127.0.0.1.

Real programs run under the real agent with POSTHOG_API_KEY and
POSTHOG_HOST pointing at posthog_standin.StandIn; each case checks what
arrived (every event exactly once, in order per thread, valid by PostHog's
rules), what stayed in the spool, and that the host ended as it would have.
"""
import glob
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
from harness import AGENT, BUILD, Sandbox, Skip, check, check_equal, exceptions, main, run  # noqa: E402
from posthog_standin import StandIn  # noqa: E402

KEY = "phc_tattle_test_key_9f3a71"
EMITTER = os.path.join(BUILD, "tests", "emitter")
CRASHER = os.path.join(BUILD, "tests", "crasher")


class Case:
    """A sandbox with its own spool, and a stand-in."""

    def __init__(self, name, **standin):
        self.sb = Sandbox(name)
        self.spool = os.path.join(self.sb.dir, "spool")
        self.server = StandIn(**standin)

    def env(self, **extra):
        env = self.sb.base_env()
        env.update(LD_PRELOAD=AGENT, POSTHOG_API_KEY=KEY, POSTHOG_HOST=self.server.url, TATTLE_SPOOL_DIR=self.spool)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def batches(self, suffix=".batch"):
        return sorted(glob.glob(os.path.join(self.spool, "posthog-*", "*" + suffix)))

    def spooled_events(self):
        total = 0
        for path in self.batches():
            with open(path, "rb") as f:
                total += int(f.readline().split()[2])
        return total

    def check_valid(self):
        check_equal(self.server.violations(), [], "every request met PostHog's rules")
        check_equal(self.server.duplicates(), [], "no event arrived twice")
        for r in self.server.requests:
            if r["status"] == 200:
                check_equal(r["api_key"], KEY, "the request carries the API key")

    def wait_events(self, n, name="burst", timeout=15):
        ok = self.server.wait_for(lambda s: len(s.accepted(name)) >= n, timeout)
        check(ok, "%d %s events arrived" % (n, name), "arrived: %d" % len(self.server.accepted(name)),
              "requests: %s" % [(r["status"], r["count"], r["violation"]) for r in self.server.requests])
        return self.server.accepted(name)

    def settle(self):
        """Wait until this sandbox's flushers have exited (their linger is over)."""
        check(self.server.wait_for(lambda s: not our_flushers(self), 15), "the flushers exited", our_flushers(self))

    def close(self):
        self.server.stop()
        self.sb.cleanup()


def case(name, **standin):
    def wrap(fn):
        def run_case():
            c = Case(name, **standin)
            try:
                fn(c)
            finally:
                c.close()
        run_case.__name__ = fn.__name__
        return run_case
    return wrap


def plain(argv):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LD_PRELOAD", "TATTLE_", "POSTHOG_"))}
    return run(argv, env=env)


def check_in_order(events, threads, per_thread):
    for t in range(threads):
        seqs = [e["properties"]["seq"] for e in events if e["properties"]["thread"] == t]
        check_equal(seqs, list(range(per_thread)), "thread %d's events arrived complete and in capture order" % t)


@case("crash")
def crash_arrives(c):
    r = run([CRASHER, "null"], env=c.env())
    check_equal(r.signal, signal.SIGSEGV, "the host still dies of SIGSEGV", r.stderr)
    exc = c.wait_events(1, "$exception")
    c.check_valid()
    check_equal(len(exc), 1, "exactly one $exception")
    ex = exc[0]["properties"]["$exception_list"][0]
    check_equal(ex["type"], "SIGSEGV", "the exception type")
    names = [f.get("function") for f in ex["stacktrace"]["frames"]]
    check("write_null" in names, "the crash site is among the frames", names)
    check("queued for %s" % c.server.url in r.stderr, "the report says where the event went", r.stderr)
    check(not os.path.exists(os.path.join(c.sb.dir, "state", "tattle", "events.jsonl")),
          "no local file without TATTLE_FILE when a server is configured")
    ua = c.server.requests[0]["headers"].get("User-Agent")
    check(ua.startswith("tattle/"), "User-Agent names tattle", ua)


@case("order")
def events_arrive_in_capture_order_per_thread(c):
    r = run([EMITTER, "4", "250", "flush"], env=c.env())
    check_equal(r.stdout, "captured 1000 errors 0\nflush 0\n", "every capture succeeded, flush returned 0")
    events = c.wait_events(1000)
    c.check_valid()
    check_in_order(events, 4, 250)


@case("sigkill")
def sigkill_after_1000_captures_loses_nothing(c):
    r = run([EMITTER, "1", "1000", "kill"], env=c.env())
    check_equal(r.signal, signal.SIGKILL, "the host died of SIGKILL")
    check_equal(r.stdout, "captured 1000 errors 0\n", "1000 captures succeeded")
    events = c.wait_events(1000)
    c.check_valid()
    check_in_order(events, 1, 1000)


@case("down", start=False)
def crash_while_the_server_is_down_arrives_when_it_is_back(c):
    r = run([CRASHER, "null"], env=c.env())
    check_equal(r.signal, signal.SIGSEGV, "the host still dies of SIGSEGV")
    check_equal(len(c.batches()), 1, "the crash waits in the spool", os.listdir(c.spool))
    time.sleep(1.0)  # down for a while (the flusher keeps retrying), then up
    c.server.start()
    c.wait_events(1, "$exception")
    c.check_valid()
    check(c.server.wait_for(lambda s: not c.batches(), 5), "the spool is empty once it was sent", c.batches())


@case("503", fail_first=3)
def a_few_503s_in_a_row_cost_no_event(c):
    r = run([EMITTER, "2", "50", "exit"], env=c.env())
    check_equal(r.exit_code, 0, "the host exits 0")
    events = c.wait_events(100)
    c.check_valid()
    check_in_order(events, 2, 50)
    check(sum(1 for q in c.server.requests if q["status"] == 503) == 3, "three 503s were answered")


@case("retry-after", fail_first=1, fail_status=429, retry_after=2)
def retry_after_is_honoured(c):
    run([EMITTER, "1", "5", "exit"], env=c.env())
    c.wait_events(5)
    c.check_valid()
    first, second = c.server.requests[0], c.server.requests[1]
    check_equal(first["status"], 429, "the first answer was 429")
    check(second["time"] - first["answered"] >= 2.0, "the retry came after Retry-After (2 s)",
          "gap: %.3f s" % (second["time"] - first["answered"]))


@case("later", start=False)
def unsent_batches_go_with_a_later_process(c):
    r = run([EMITTER, "1", "10", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    check_equal(r.exit_code, 0, "the host exits 0")
    c.settle()
    batches = c.batches()
    check(batches, "the events wait in the spool")  # one batch, or more if the flusher caught up mid-way
    check_equal(os.stat(c.spool).st_mode & 0o777, 0o700, "the spool directory is private")
    check_equal({os.stat(b).st_mode & 0o777 for b in batches}, {0o600}, "the batch files are private")
    check_equal(c.spooled_events(), 10, "the spool holds the 10 events")
    c.server.start()
    # A later process that uses the agent (a thread is its first use).
    r = run([EMITTER, "1", "0", "exit"], env=c.env())
    check_equal(r.exit_code, 0, "the later process still exits 0")
    check_equal(r.stderr, "", "the later process prints nothing on stderr")
    c.wait_events(10)
    c.check_valid()
    check(c.server.wait_for(lambda s: not c.batches(), 5), "the spool is empty once it was sent", c.batches())


@case("sender", start=False)
def a_process_that_only_finds_batches_keeps_nothing_of_their_sender(c):
    run([EMITTER, "1", "10", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    check_equal(c.spooled_events(), 10, "the 10 events wait in the spool")
    c.server.start()
    # A process that uses the agent (a thread is its first use), then waits.
    p = subprocess.Popen([EMITTER, "1", "0", "stdin"], env=c.env(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    try:
        c.wait_events(10)
        check(c.server.wait_for(lambda s: not our_flushers(c), 5), "the sender exited while the process runs",
              our_flushers(c))
        fds = [os.readlink(f) for f in glob.glob("/proc/%d/fd/*" % p.pid)]
        check(not [x for x in fds if x.startswith("socket:") or "memfd" in x], "the process holds nothing of ours", fds)
        check_equal(p.poll(), None, "the process still runs")
    finally:
        p.kill()
        p.wait()
        p.wait()
    c.check_valid()


@case("one-sender", start=False)
def processes_starting_together_run_one_sender(c):
    run([EMITTER, "1", "10", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    env = c.env(TATTLE_LINGER_MS=10000)  # the server is down: a sender would retry for 10 s
    # Five processes that use the agent (a thread is their first use) and stay.
    procs = [subprocess.Popen([EMITTER, "1", "0", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
             for _ in range(5)]
    try:
        check(c.server.wait_for(lambda s: len(our_flushers(c)) == 1, 5), "one sender runs for the five processes",
              our_flushers(c))
        c.server.start()
        c.wait_events(10)
        c.check_valid()
    finally:
        for p in procs:
            p.kill()
            p.wait()


@case("401", always=401)
def a_refused_key_is_not_retried_and_events_stay(c):
    r = run([EMITTER, "1", "20", "flush"], env=c.env(TATTLE_LINGER_MS=1000))
    p = plain([EMITTER, "1", "20", "flush"])
    check_equal((r.exit_code, r.stdout), (p.exit_code, p.stdout), "the host's exit and output are unchanged")
    lines = [line for line in r.stderr.splitlines() if "refused the API key" in line]
    check_equal(len(lines), 1, "one clear line on stderr", r.stderr)
    check(KEY not in r.stderr, "the line does not show the key")
    time.sleep(2.0)  # the flusher's linger window (1 s) is over
    check_equal(len(c.server.requests), 1, "one request, no retry storm")
    check_equal(c.spooled_events(), 20, "the 20 events stay in the spool")


@case("400", always=400)
def a_refused_batch_is_kept_aside_and_not_resent(c):
    r = run([EMITTER, "1", "3", "flush"], env=c.env(TATTLE_LINGER_MS=500))
    check_equal(r.exit_code, 0, "the host exits 0")
    check("refused a batch" in r.stderr, "one line on stderr", r.stderr)
    time.sleep(1.5)
    # The three events may travel in one batch or more (the flusher takes
    # what is there when it wakes): each refused batch is sent once.
    rejected = c.batches(".rejected")
    check(1 <= len(rejected) <= 3, "the refused batches are kept aside", os.listdir(c.spool))
    check_equal(len(c.server.requests), len(rejected), "no refused batch was resent")
    check_equal(c.batches(), [], "nothing is left to resend")


@case("413", max_events=7)
def a_too_large_batch_is_split(c):
    run([EMITTER, "1", "50", "flush"], env=c.env())
    events = c.wait_events(50)
    c.check_valid()
    check_in_order(events, 1, 50)
    check(any(q["status"] == 413 for q in c.server.requests), "the server answered 413 at first")


@case("sparse")
def sparse_captures_arrive_while_the_host_runs(c):
    """Captures 30 ms apart ring no doorbell (it rings at most every 50 ms,
    or when a quarter of the ring fills): the flusher looks on its own while
    the host is active, so every event arrives while the host still waits,
    without a flush or an exit."""
    env = c.env(TATTLE_FILE=c.sb.events_path, EMITTER_GAP_MS="30")
    p = subprocess.Popen([EMITTER, "1", "12", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        check_equal(p.stdout.readline(), b"captured 12 errors 0\n", "the host captured")
        check_equal(p.stdout.readline(), b"ready\n", "the host waits")
        c.wait_events(12)
        check_equal(p.poll(), None, "the host still waits")
    finally:
        p.communicate(b"go\n", timeout=30)
    c.check_valid()


@case("key")
def the_key_appears_only_in_the_request(c):
    env = c.env(TATTLE_FILE=c.sb.events_path)
    p = subprocess.Popen([EMITTER, "1", "5", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    check_equal(p.stdout.readline(), b"captured 5 errors 0\n", "the host captured")
    check_equal(p.stdout.readline(), b"ready\n", "the host waits")
    c.wait_events(5)
    seen = []
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            with open(cmdline, "rb") as f:
                if KEY.encode() in f.read():
                    seen.append(cmdline)
        except OSError:
            pass
    out, err = p.communicate(b"go\n", timeout=30)
    check_equal(seen, [], "no process has the key on its command line")
    check(KEY.encode() not in out + err, "the key is not printed")
    for root, _, files in os.walk(c.sb.dir):
        for name in files:
            check(KEY not in name, "no file is named after the key", name)
            with open(os.path.join(root, name), "rb") as f:
                check(KEY.encode() not in f.read(), "the key is in no file", os.path.join(root, name))
    for e in c.server.accepted():
        check(KEY not in str(e), "the key is in no event")
    c.check_valid()


@case("midwrite", start=False)
def the_spool_survives_a_flusher_killed_mid_write(c):
    run([EMITTER, "1", "5", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    first = c.batches()
    check_equal(c.spooled_events(), 5, "the first run's events are spooled")
    # Hold the queue's sender lock meanwhile: a sender started by this run
    # (it finds the first run's batch) would sweep the dead writer's file
    # before we look at it.
    import fcntl
    queue = os.path.dirname(first[0])
    lock = os.open(os.path.join(queue, ".sender.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        r = run([EMITTER, "1", "5", "exit"], env=c.env(TATTLE_LINGER_MS=0, TATTLE_TEST_FAULT="spool-write-kill"))
        c.settle()
    finally:
        os.close(lock)
    check_equal((r.exit_code, r.stdout), (0, "captured 5 errors 0\n"), "the host ends as usual")
    c.settle()
    check_equal(c.batches(), first, "the half-written batch is not in the queue")
    check(glob.glob(os.path.join(c.spool, "posthog-*", ".tmp-*")), "the killed writer left its temporary file")
    c.server.start()
    run([EMITTER, "1", "0", "exit"], env=c.env())
    events = c.wait_events(5)
    c.check_valid()
    check_equal(len(events), 5, "the first run's events arrived whole")
    check(c.server.wait_for(lambda s: not glob.glob(os.path.join(c.spool, "posthog-*", ".tmp-*")), 5),
          "the dead writer's temporary file was swept")
    check_equal(c.batches(".damaged"), [], "nothing was damaged")


@case("damaged", start=False)
def a_damaged_batch_is_set_aside_not_sent(c):
    run([EMITTER, "1", "5", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    # The five events may be in one batch or more: damage each.
    paths = c.batches()
    check(paths, "setup: the events wait in the spool")
    for path in paths:
        with open(path, "r+b") as f:
            f.seek(-10, os.SEEK_END)
            f.write(b"XXXX")
    c.server.start()
    run([EMITTER, "1", "0", "exit"], env=c.env())
    check(c.server.wait_for(lambda s: len(c.batches(".damaged")) == len(paths), 10),
          "every damaged batch is set aside")
    check_equal(c.server.accepted(), [], "nothing of them was sent")


@case("slow", slow=1.5)
def a_slow_server_never_delays_the_host(c):
    r = run([EMITTER, "1", "10", "exit"], env=c.env())
    host_done = time.monotonic()
    check_equal(r.exit_code, 0, "the host exits 0")
    answered = [q for q in c.server.requests if q["answered"] <= host_done]
    check_equal(answered, [], "the host had exited before the server answered")
    c.wait_events(10)
    c.check_valid()


def our_flushers(c):
    return h.flusher_pids(lambda pid: h.environ_has(pid, "TATTLE_SPOOL_DIR=%s\0" % c.spool))


@case("exec")
def exec_gets_a_new_agent_without_leaking_the_flusher(c):
    # No linger: the flusher is there for this process only, and must
    # notice it is gone although the pid lives on in the new image.
    p = subprocess.Popen([EMITTER, "1", "5", "exec"], env=c.env(TATTLE_LINGER_MS="0"), stdout=subprocess.PIPE)
    c.wait_events(5)
    check(c.server.wait_for(lambda s: not our_flushers(c), 1.5), "the old flusher is gone while the new image runs",
          our_flushers(c))
    check_equal(p.poll(), None, "the exec'd program is still running")
    p.wait(timeout=30)
    check_equal(p.returncode, 0, "sleep exits 0")
    c.check_valid()


@case("fork")
def a_forked_child_delivers_too(c):
    r = run([EMITTER, "1", "10", "fork"], env=c.env())
    check_equal(r.exit_code, 0, "the parent exits 0")
    events = c.wait_events(20)
    c.check_valid()
    check_equal(len({e["properties"]["pid"] for e in events}), 2, "events from parent and child")


@case("rawfork")
def a_child_forked_behind_the_agents_back_delivers_its_own(c):
    """A fork no interposer sees (the raw system call): the child notices at
    its first capture (a page the kernel wiped in it) and delivers through
    a region and flusher of its own, under its own pid; the parent's events
    are whole."""
    r = run([EMITTER, "1", "10", "fork"], env=c.env(EMITTER_RAW_FORK="1"))
    check_equal(r.exit_code, 0, "the parent exits 0")
    check("child captured 10 errors 0" in r.stdout, "the child captured", r.stdout)
    events = c.wait_events(20)
    c.check_valid()
    by_pid = {}
    for e in events:
        by_pid.setdefault(e["properties"]["pid"], []).append(e["properties"]["seq"])
    check_equal(len(by_pid), 2, "events from parent and child", sorted(by_pid))
    check_equal([sorted(v) for v in by_pid.values()], [list(range(10))] * 2, "each delivered its own 10, once")
    # The region names its process (pid, ppid): through the parent's, the
    # child's events would carry the parent's parent.
    parent = [pid for pid, seqs in by_pid.items() if any(e["properties"]["pid"] == pid and
                                                          e["properties"].get("ppid") not in by_pid for e in events)]
    check_equal(len(parent), 1, "one of the two is the parent", sorted(by_pid))
    child_ppids = {e["properties"].get("ppid") for e in events if e["properties"]["pid"] != parent[0]}
    check_equal(child_ppids, {parent[0]}, "the child's events name the parent as its parent")


@case("both")
def file_and_posthog_together(c):
    run([EMITTER, "1", "10", "flush"], env=c.env(TATTLE_FILE=c.sb.events_path))
    events = c.wait_events(10)
    local = c.sb.events()
    check_equal(sorted(e["uuid"] for e in local), sorted(e["uuid"] for e in events),
                "the file and the server got the same events")


@case("sigint")
def sigint_to_the_process_group_loses_nothing(c):
    p = subprocess.Popen([EMITTER, "1", "50", "stdin"], env=c.env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         start_new_session=True)
    p.stdout.readline()
    p.stdout.readline()
    os.killpg(p.pid, signal.SIGINT)
    p.wait(timeout=30)
    check_equal(p.returncode, -signal.SIGINT, "the host died of SIGINT")
    c.wait_events(50)
    c.check_valid()


@case("shared", start=False)
def concurrent_senders_never_send_a_batch_twice(c):
    for _ in range(6):
        run([EMITTER, "1", "20", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    check_equal(c.spooled_events(), 120, "six batches wait in the spool")
    c.server.start()
    procs = [subprocess.Popen([EMITTER, "1", "0", "exit"], env=c.env(), stdout=subprocess.DEVNULL) for _ in range(4)]
    for p in procs:
        p.wait(timeout=30)
    c.wait_events(120)
    c.settle()
    c.check_valid()
    check_equal(len(c.server.accepted()), 120, "each event arrived once")


@case("bound", start=False)
def a_full_spool_drops_the_oldest_and_says_how_many(c):
    env = c.env(TATTLE_LINGER_MS=0, TATTLE_SPOOL_MAX_MB=1)
    for _ in range(2):  # about 0.5 MB each
        run([EMITTER, "1", "1000", "exit"], env=env)
        c.settle()
    oldest = c.batches()[0]
    run([EMITTER, "1", "1000", "exit"], env=env)  # over 1 MB: the oldest goes
    c.settle()
    size = sum(os.path.getsize(p) for p in c.batches())
    check(size <= 1 << 20, "the spool stays within 1 MB", size)
    check(oldest not in c.batches(), "the oldest batch was dropped first", oldest, c.batches())
    kept = c.spooled_events()
    check(0 < kept < 3000, "some events were dropped, the newest kept", kept)
    c.server.start()
    run([EMITTER, "1", "1", "flush"], env=c.env(TATTLE_SPOOL_MAX_MB=1))
    events = c.wait_events(kept + 1)
    c.check_valid()
    counted = sum(e["properties"].get("$tattle_spool_dropped_events", 0) for e in events)
    check_equal(counted, 3000 - kept, "later events say how many were dropped")


@case("idle")
def a_host_that_captures_nothing_starts_no_process(c):
    p = subprocess.Popen(["/bin/sleep", "1"], env=c.env())
    time.sleep(0.5)
    found = our_flushers(c)
    p.wait(timeout=30)
    check_equal(found, [], "no flusher runs for a host with nothing to send")
    check(not os.path.exists(c.spool), "no spool directory was created")


@case("badspool", start=False)
def a_spool_that_cannot_be_used_is_named_with_its_reason(c):
    """A spool directory others may write is refused, and the crash report
    names it and why (not a missing HOME)."""
    os.makedirs(c.spool)
    os.chmod(c.spool, 0o777)
    r = run([CRASHER, "null"], env=c.env(TATTLE_LINGER_MS=0), cwd=c.sb.dir)
    check_equal(r.signal, 11, "the crash is unchanged")
    check("cannot use the spool directory %s" % c.spool in r.stderr and "writable by group or others" in r.stderr,
          "the report names the spool and why", r.stderr[-1200:])
    check("nowhere to go" not in r.stderr, "nothing blames HOME", r.stderr[-1200:])
    check_equal(os.stat(c.spool).st_mode & 0o777, 0o777, "the directory was not chmodded")


@case("storm")
def a_storm_of_capturing_processes_loses_no_event(c):
    """Many flushers write, sweep and send one queue at once: every event
    arrives once (a sweeper must never take a live writer's file)."""
    n = 40
    env = c.env(TATTLE_LINGER_MS=3000, TATTLE_FILE=c.sb.events_path)
    procs = [subprocess.Popen([EMITTER, "1", "1", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(n)]
    try:
        for p in procs:
            check_equal(p.stdout.readline(), b"captured 1 errors 0\n", "each process captured its event")
            p.stdout.readline()
        for p in procs:
            p.stdin.close()
        errs = [p.stderr.read().decode() for p in procs]
        for p in procs:
            p.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    check_equal([e for e in errs if e], [], "no process had anything to say")
    c.wait_events(n)
    c.check_valid()


@case("pending", start=False)
def a_pending_spool_costs_starting_processes_no_sender_each(c):
    """With batches waiting and the server down, one sender works on the
    queue (holding its lock while it retries); processes that use the agent
    meanwhile (here: start a thread, their first use) start none of their
    own."""
    import shutil
    if not shutil.which("strace"):
        raise Skip("strace is not installed")
    run([EMITTER, "1", "5", "exit"], env=c.env(TATTLE_LINGER_MS=0))
    c.settle()
    check_equal(c.spooled_events(), 5, "a batch waits")
    log = os.path.join(c.sb.dir, "strace.log")
    env = c.env(TATTLE_LINGER_MS=8000)
    if "ASAN_OPTIONS" in env:  # LeakSanitizer cannot run under ptrace
        env["ASAN_OPTIONS"] += ":detect_leaks=0"
    preload = env.pop("LD_PRELOAD")  # strace itself runs without the agent; what it traces runs with it
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=execve", "-o", log, "-E", "LD_PRELOAD=" + preload,
                        "sh", "-c",
                        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do %s 1 0 exit >/dev/null;"
                        " sleep 0.05; done" % EMITTER],
                       env=env, capture_output=True, timeout=60)
    check_equal(r.returncode, 0, "the loop ran", r.stderr[-500:])
    with open(log) as f:
        senders = [line for line in f if "tattle-flusher" in line and "execve(" in line]
    check(1 <= len(senders) <= 2, "one sender for 20 processes (a second only once the first's linger is over)",
          len(senders), senders[:5])
    c.settle()


@case("destinations")
def a_batch_goes_only_where_it_was_captured_for(c):
    other = c.env(TATTLE_LINGER_MS=0, POSTHOG_API_KEY="phc_other_project", POSTHOG_HOST="http://127.0.0.1:9")
    run([EMITTER, "1", "5", "exit"], env=other)
    c.settle()
    check_equal(c.spooled_events(), 5, "the other project's events wait in the spool")
    run([EMITTER, "1", "3", "exit"], env=c.env())
    c.wait_events(3)
    time.sleep(1.0)  # a sender that took the other queue would have sent it by now
    check_equal(len(c.server.accepted("burst")), 3, "only this project's events reached this server")
    check_equal(c.spooled_events(), 5, "the other project's events still wait for their own server")
    c.check_valid()


TESTS = {f.__name__: f for f in [
    a_batch_goes_only_where_it_was_captured_for, a_pending_spool_costs_starting_processes_no_sender_each,
    a_storm_of_capturing_processes_loses_no_event, a_spool_that_cannot_be_used_is_named_with_its_reason,
    crash_arrives, events_arrive_in_capture_order_per_thread, sigkill_after_1000_captures_loses_nothing,
    crash_while_the_server_is_down_arrives_when_it_is_back, a_few_503s_in_a_row_cost_no_event,
    retry_after_is_honoured, unsent_batches_go_with_a_later_process,
    a_process_that_only_finds_batches_keeps_nothing_of_their_sender, processes_starting_together_run_one_sender,
    a_refused_key_is_not_retried_and_events_stay,
    a_refused_batch_is_kept_aside_and_not_resent, a_too_large_batch_is_split, sparse_captures_arrive_while_the_host_runs,
    the_key_appears_only_in_the_request,
    the_spool_survives_a_flusher_killed_mid_write, a_damaged_batch_is_set_aside_not_sent,
    a_slow_server_never_delays_the_host, exec_gets_a_new_agent_without_leaking_the_flusher,
    a_forked_child_delivers_too, a_child_forked_behind_the_agents_back_delivers_its_own, file_and_posthog_together, sigint_to_the_process_group_loses_nothing,
    concurrent_senders_never_send_a_batch_twice, a_host_that_captures_nothing_starts_no_process,
    a_full_spool_drops_the_oldest_and_says_how_many]}

if __name__ == "__main__":
    main(TESTS)
