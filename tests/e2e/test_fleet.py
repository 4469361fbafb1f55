"""test_fleet.py - the agent as a whole machine runs it: one flusher per user
and configuration, shared by all that user's processes; no stranger let in;
crash storms; no zombie; and a real mixed workload on a machine whose
/etc/ld.so.preload loads the agent.

The first cases use LD_PRELOAD in the test's own namespace. The machine
cases install the Debian package (built with cpack) in a private mount
namespace where /etc is a copy and /usr and /var are overlays with scratch
upper layers (test_admin.Installed: the real /etc, /usr and /var are never
written), enable it there with `tattle enable`, point /etc/tattle/tattle.conf
at a PostHog stand-in on 127.0.0.1, and run the workload twice: with the
agent and, after `tattle disable`, without; outputs and exit statuses must
be equal and every event must arrive.

Needs root for the cross-user and machine cases (setpriv, unshare -m,
overlayfs, dpkg, nsenter), unshare -p for the zombie case; a case that
cannot run here is skipped with the reason.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402
import test_admin as adm  # noqa: E402
from posthog_standin import StandIn  # noqa: E402

TESTS_DIR = os.path.join(h.BUILD, "tests")
EMITTER = os.path.join(TESTS_DIR, "emitter")
CRASHER = os.path.join(TESTS_DIR, "crasher")
PROCS = os.path.join(TESTS_DIR, "procs")
KEY = "phc_tattle_fleet_test_key_77c1"
USER_A, USER_B = 60901, 60902  # numeric only: setpriv needs no passwd entry
PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable  # one other users can run


def flushers_for(text):
    """Live flushers whose environment holds text (this case's settings)."""
    return h.flusher_pids(lambda pid: h.environ_has(pid, text))


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    """Samples a set of processes every 20 ms: the most at once, and the
    most resident memory they held together."""

    def __init__(self, find):
        super().__init__(daemon=True)
        self.find, self.peak_n, self.peak_kib, self.stop = find, 0, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            pids = self.find()
            self.peak_n = max(self.peak_n, len(pids))
            self.peak_kib = max(self.peak_kib, sum(rss_kib(p) for p in pids))
            time.sleep(0.02)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()


def start_waiting_emitters(n, env, wrap=()):
    """n emitters that each capture one event, say "ready" and wait for a line."""
    procs = [subprocess.Popen(list(wrap) + [EMITTER, "0", "1", "stdin"], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(n)]
    for p in procs:
        lines = [p.stdout.readline() for _ in range(2)]  # "captured 1 errors 0", then "ready"
        h.check(lines[1].strip() == b"ready", "an emitter captured and got ready", lines,
                p.stderr.read()[-800:] if not lines[1] else "")
    return procs


def release(procs):
    for p in procs:
        p.stdin.write(b"go\n")
        p.stdin.flush()
    for p in procs:
        p.wait(timeout=60)
        p.stdin.close()
        p.stdout.close()
        p.stderr.close()
    return [p.returncode for p in procs]


def need_root():
    if os.geteuid() != 0:
        raise h.Skip("needs root (runs processes as two other users)")
    if not shutil.which("setpriv"):
        raise h.Skip("setpriv (util-linux) is not installed")


def as_user(uid):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups", "--"]


def user_dir(base, uid):
    d = os.path.join(base, str(uid))
    os.mkdir(d, 0o700)
    os.chown(d, uid, uid)
    return d


# ------------------------------------------------------ one flusher per user

@h.with_sandbox
def one_flusher_serves_every_process_of_a_user(box):
    env = box.agent_env(TATTLE_LINGER_MS=300)
    n = 40
    with Sampler(lambda: flushers_for(box.events_path)) as s:
        procs = start_waiting_emitters(n, env)
        alive = flushers_for(box.events_path)
        h.check_equal(len(alive), 1, "40 capturing processes alive at once are served by one flusher", alive)
        fds = [sorted(os.listdir("/proc/%d/fd" % p.pid)) for p in procs[:3]]
        codes = release(procs)
    h.check_equal(codes, [0] * n, "every emitter exits 0")
    h.check(s.peak_n <= 2, "never more than 2 flushers at once", s.peak_n)
    events = box.events()
    h.check_equal(len(events), n, "every event is in the file")
    h.check_equal(len({e["properties"]["pid"] for e in events}), n, "one from each process")
    # The host holds its region and the doorbell, nothing of the flusher's.
    for listing in fds:
        h.check(len(listing) <= 3 + 2, "a host holds at most two descriptors of ours", listing)
    deadline = time.monotonic() + 10
    while flushers_for(box.events_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_equal(flushers_for(box.events_path), [], "the flusher exits once no process needs it")


@h.with_sandbox
def a_crash_storm_is_reported_whole(box):
    """50 crashes at once: each dies as without the agent, each with its
    report, each event in the file; one flusher serves them all."""
    env = box.agent_env(TATTLE_LINGER_MS=300)
    n = 50
    with Sampler(lambda: flushers_for(box.events_path)) as s:
        procs = [subprocess.Popen([CRASHER, "null"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  cwd=box.dir, preexec_fn=lambda: __import__("resource").setrlimit(
                                      __import__("resource").RLIMIT_CORE, (0, 0))) for _ in range(n)]
        errs = [p.communicate(timeout=60)[1].decode(errors="replace") for p in procs]
    h.check_equal([p.returncode for p in procs], [-signal.SIGSEGV] * n, "every crasher died of SIGSEGV")
    complete = [e for e in errs if "crash_null" in e and "event " in e and "written to" in e]
    h.check_equal(len(complete), n, "every crash printed its whole report", [e[-600:] for e in errs if e not in complete][:2])
    events = [e for e in box.events() if e["event"] == "$exception"]
    h.check_equal(len(events), n, "every crash event is in the file")
    h.check(s.peak_n <= 2, "at most 2 flushers at once", s.peak_n)


@h.with_sandbox
def another_users_process_is_refused_and_a_squatted_name_is_not_joined(box):
    need_root()
    os.chmod(box.dir, 0o755)
    a_dir = user_dir(box.dir, USER_A)
    a_events = os.path.join(a_dir, "events.jsonl")
    env = box.agent_env(TATTLE_FILE=a_events, TATTLE_LINGER_MS=0, XDG_STATE_HOME=a_dir, HOME=a_dir)
    procs = start_waiting_emitters(1, env, as_user(USER_A))
    names = [line.split()[-1] for line in open("/proc/net/unix") if ("@tattle-flusher-%d-" % USER_A) in line]
    names = sorted(set(n for n in names if n.startswith("@")))
    h.check_equal(len(names), 1, "user A's flusher listens on one abstract name", names)
    name = names[0][1:]  # the probes add the leading NUL of an abstract name
    # User B connects to A's flusher and offers a region: refused unheard.
    probe = ("import socket, os, sys\n"
             "s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             "s.settimeout(5)\n"
             "s.connect(b'\\0' + sys.argv[1].encode())\n"
             "fd = os.memfd_create('x')\n"
             "try:\n"
             "    s.sendmsg([b'\\x54\\x54\\x4c\\x45\\x03\\x00\\x00\\x00'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,"
             " fd.to_bytes(4, 'little'))])\n"
             "    print('answer', repr(s.recv(16)))\n"
             "except OSError as e:\n"
             "    print('answer', type(e).__name__)\n")
    r = h.run(as_user(USER_B) + [PYTHON, "-c", probe, name], env=box.base_env(), timeout=20)
    h.check(r.stdout.startswith("answer"), "user B's probe ran", r.stdout, r.stderr)
    h.check("'k'" not in r.stdout, "user B is never answered as a host", r.stdout)
    h.check("b''" in r.stdout or "Error" in r.stdout, "user B's connection is closed", r.stdout)
    h.check_equal(release(procs), [0], "user A's emitter exits 0")
    deadline = time.monotonic() + 10
    while flushers_for(a_events) and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_equal(len(box.events(a_events)), 1, "user A's event arrived, and only it")
    # User B takes the name A's processes meet at: A's next process does
    # not greet B (it checks the peer's uid first) and still reports.
    squat = ("import socket, sys, os\n"
             "l = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)\n"
             "l.bind(b'\\0' + sys.argv[1].encode()); l.listen(16)\n"
             "print('listening', flush=True)\n"
             "l.settimeout(15)\n"
             "try:\n"
             "    c, _ = l.accept()\n"
             "    c.settimeout(2)\n"
             "    try:\n"
             "        msg, anc, flags, addr = c.recvmsg(64, 64)\n"
             "    except socket.timeout:\n"
             "        msg, anc = b'', []\n"
             "    print('got', len(msg), len(anc), flush=True)\n"
             "except socket.timeout:\n"
             "    print('nobody came', flush=True)\n")
    sq = subprocess.Popen(as_user(USER_B) + [PYTHON, "-c", squat, name], env=box.base_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        h.check_equal(sq.stdout.readline().strip(), "listening", "user B holds the name", sq.stderr.read() if sq.poll() else "")
        procs = start_waiting_emitters(1, env, as_user(USER_A))
        h.check_equal(release(procs), [0], "user A's next emitter exits 0")
        out = sq.communicate(timeout=30)[0]
    finally:
        if sq.poll() is None:
            sq.kill()
            sq.wait()
    h.check("got 0 0" in out or "nobody came" in out, "the squatter got no greeting, no descriptor", out)
    deadline = time.monotonic() + 10
    while len(box.events(a_events)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_equal(len(box.events(a_events)), 2, "user A's process still reported (through a private flusher)")


@h.with_sandbox
def a_host_that_gave_up_waiting_is_served_once(box):
    """The shared flusher is stopped (a crash storm, a debugger) while a
    host joins: the host gives up after its deadline and starts a private
    flusher on its region; when the shared one resumes it must not serve
    that region too (the ring has one reader): every event once."""
    env = box.agent_env(TATTLE_LINGER_MS=300)
    a = start_waiting_emitters(1, env)
    shared = flushers_for(box.events_path)
    h.check_equal(len(shared), 1, "one shared flusher", shared)
    os.kill(shared[0], signal.SIGSTOP)
    try:
        b = subprocess.Popen([EMITTER, "0", "50", "stdin"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        lines = [b.stdout.readline() for _ in range(2)]
        h.check_equal(lines[1].strip(), b"ready", "the second host captured 50 events (after its deadline)", lines)
    finally:
        os.kill(shared[0], signal.SIGCONT)
    time.sleep(0.5)  # the resumed flusher reads the stale greeting meanwhile
    h.check_equal(release([b]) + release(a), [0, 0], "both hosts exit 0")
    deadline = time.monotonic() + 10
    while flushers_for(box.events_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    mine = [e for e in box.events() if e["properties"].get("pid") == b.pid]
    seqs = sorted(e["properties"]["seq"] for e in mine)
    h.check_equal(seqs, list(range(50)), "each of the second host's events exactly once")


@h.with_sandbox
def a_low_limit_on_descriptors_still_reports(box):
    """Hosts whose limit on descriptors is below the agent's usual numbers
    (700 and up), and a flusher that runs out of descriptors for hosts: every
    event still arrives, and no flusher spins."""
    env = box.agent_env(TATTLE_LINGER_MS=300)
    wrap = ["sh", "-c", 'ulimit -n 40 && exec "$@"', "sh"]
    procs = start_waiting_emitters(30, env, wrap)
    h.check_equal(release(procs), [0] * 30, "every emitter exits 0")
    r = h.run(wrap + [CRASHER, "null"], env=env, cwd=box.dir)
    h.check_equal(r.signal, signal.SIGSEGV, "the crash dies as before", r.stderr[-1500:])
    h.check("written to" in r.stderr, "with its whole report", r.stderr[-1500:])
    deadline = time.monotonic() + 10
    while flushers_for(box.events_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    events = box.events()
    h.check_equal(len([e for e in events if e["event"] == "burst"]), 30, "every capture arrived")
    h.check_equal(len([e for e in events if e["event"] == "$exception"]), 1, "and the crash")
    h.check_equal(flushers_for(box.events_path), [], "no flusher is left (none spins on a refused host)")


def need_unshare_pid():
    r = subprocess.run(["unshare", "-fp", "--mount-proc", "true"], capture_output=True, text=True)
    if r.returncode != 0:
        raise h.Skip("unshare -fp --mount-proc is refused here: %s" % r.stderr.strip())


PID1 = r'''
import os, subprocess, sys, time
emitter, crasher, events = sys.argv[1:4]
env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_"))}
env.update(LD_PRELOAD=sys.argv[4], TATTLE_FILE=events, TATTLE_LINGER_MS="100")
for argv in ([emitter, "0", "3", "exit"], [crasher, "null"], [emitter, "0", "2", "exit"]):
    p = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.waitpid(p.pid, 0)   # its own child only, as an application does
    time.sleep(0.5)        # longer than the linger: a flusher that would exit has
zombies = []
for pid in os.listdir("/proc"):
    if pid.isdigit() and pid != "1":
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        if st[st.rindex(")") + 2] == "Z":
            zombies.append(st[st.index("(") + 1:st.rindex(")")])
print("zombies:", " ".join(zombies))
'''


@h.with_sandbox
def no_zombie_under_a_pid1_that_never_reaps(box):
    """A container whose PID 1 is an application that never reaps what it
    did not start: no process of ours is ever left there as a zombie."""
    need_unshare_pid()
    script = os.path.join(box.dir, "pid1.py")
    with open(script, "w") as f:
        f.write(PID1)
    r = h.run(["unshare", "-fp", "--mount-proc", sys.executable, script, EMITTER, CRASHER, box.events_path, h.AGENT],
              env=box.base_env(), cwd=box.dir, timeout=60)
    h.check_equal(r.exit_code, 0, "PID 1 ran its programs", r.stderr[-1500:])
    h.check("zombies:" in r.stdout, "PID 1 looked for zombies", r.stdout)
    h.check_equal(r.stdout.split("zombies:", 1)[1].split(), [], "no zombie in the container")
    events = box.events()
    h.check_equal(sorted(e["event"] for e in events), ["$exception"] + ["burst"] * 5, "every event arrived")


# --------------------------------------------------------- a fleet machine

WORK = r'''
set -u
cd "$1"
export GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z"
git init -q repo && cd repo
echo hello > a.txt && git add a.txt
git -c user.name=fleet -c user.email=fleet@example.com commit -q -m "first" && git rev-parse HEAD
git log --format="%an %s"
cd ..
python3 -c 'import subprocess, json; r = subprocess.run(["sh", "-c", "echo child; exit 3"]); print(r.returncode, json.dumps({"a": [1, 2]}))'
perl -e 'print join(",", map { $_ * 2 } 1..5), "\n"; warn "perl warns\n"'
sh -c 'ulimit -c 0; exec "$0" null' "$2"; echo "crasher status $?"
sh -c 'kill -TERM $$'; echo "self-terminated status $?"
'''

BUILD = r'''
set -eu
mkdir -p "$1" && cd "$1"
rm -rf clone b
git clone -q "$2" clone
cmake -S clone -B b -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release >/dev/null
make -C b -j2 >/dev/null
sha256sum b/libtattle.so b/tattle-flusher | cut -d" " -f1
'''


class Fleet:
    """The package installed and configured in a namespace (see the top)."""

    def __init__(self, inst, server):
        self.inst, self.server = inst, server
        conf = os.path.join(inst.etc, "tattle", "tattle.conf")
        with open(conf) as f:
            example = f.read()
        with open(conf, "w") as f:
            f.write(example + "\nPOSTHOG_API_KEY=%s\nPOSTHOG_HOST=%s\nTATTLE_LINGER_MS=500\n" % (KEY, server.url))
        self.work = os.path.join(inst.root, "work")
        os.mkdir(self.work)
        os.chmod(self.work, 0o1777)
        self.home = os.path.join(inst.root, "home")
        os.mkdir(self.home, 0o700)

    def env(self):
        return {"PATH": adm.OUTER_PATH, "HOME": self.home, "LANG": "C"}

    def run(self, argv, user=None, **kw):
        return self.inst.run(argv, env=self.env(), user=user, **kw)

    def enabled(self):
        return "libtattle" in (adm.file_state(self.inst.preload) or {"bytes": b""})["bytes"].decode()

    def flushers(self):
        return self.inst.flushers()

    def live_flushers(self):
        return [p for p in self.flushers() if h.proc_state(p) not in ("Z", "X", None)]


def with_fleet(fn):
    def test():
        adm.need_namespace()
        adm.need_tools("dpkg", "dpkg-query", "nsenter", "git", "cmake", "make", "perl", "python3")
        pkg = adm.Package()
        try:
            inst = adm.Installed(pkg)
            server = StandIn()
            try:
                fn(Fleet(inst, server))
            finally:
                server.stop()
                inst.cleanup()
        finally:
            pkg.cleanup()
    test.__name__ = fn.__name__
    return test


def workload(fleet, tag):
    d = os.path.join(fleet.work, tag)
    os.mkdir(d)
    os.chmod(d, 0o777)
    return fleet.run(["sh", "-c", WORK, "sh", d, CRASHER], timeout=120)


def wait_no_flushers(fleet, timeout=20):
    deadline = time.monotonic() + timeout
    while fleet.live_flushers() and time.monotonic() < deadline:
        time.sleep(0.1)
    return fleet.live_flushers()


@with_fleet
def a_fleet_machine_runs_its_workload_as_without_the_agent(fleet):
    without = workload(fleet, "without")
    build_without = fleet.run(["sh", "-c", BUILD, "sh", os.path.join(fleet.work, "b0"), adm.SRC], timeout=900)
    adm.check_ok(build_without, "the build without the agent")
    adm.check_ok(fleet.run(["tattle", "enable"]), "tattle enable")
    h.check(fleet.enabled(), "the agent is in the namespace's /etc/ld.so.preload")
    with Sampler(fleet.live_flushers) as s:
        witha = workload(fleet, "with")
        build_with = fleet.run(["sh", "-c", BUILD, "sh", os.path.join(fleet.work, "b1"), adm.SRC], timeout=900)
    for what, a, b in (("the workload", witha, without), ("the build", build_with, build_without)):
        h.check_equal(a.status, b.status, "%s: the same wait status" % what)
        h.check_equal(a.stdout.replace("/with", "/X"), b.stdout.replace("/without", "/X"), "%s: the same stdout" % what)
        h.check_equal(a.stderr.replace("/with", "/X"), b.stderr.replace("/without", "/X"),
                      "%s: the same stderr" % what)
    h.check("crasher status 139" in witha.stdout, "the crash happened", witha.stdout)
    h.check(len(build_with.stdout.split()) == 2, "the build under the agent built both programs", build_with.stdout)
    arrived = fleet.server.wait_for(lambda srv: len(srv.accepted("$exception")) >= 1, 30)
    h.check(arrived, "the workload's crash reached the stand-in",
            [(q["status"], q["count"]) for q in fleet.server.requests])
    h.check_equal(len(fleet.server.accepted("$exception")), 1, "one crash, one event (the wrappers add none)")
    h.check(s.peak_n <= 2, "at most 2 flushers at once during the workload and the build", s.peak_n)
    h.check_equal(wait_no_flushers(fleet), [], "nothing of ours is left running afterwards")
    adm.check_ok(fleet.run(["tattle", "disable"]), "tattle disable")
    h.check(not fleet.enabled(), "disabled again")


@with_fleet
def a_nobody_daemon_a_storm_and_two_users_capturing_at_once(fleet):
    adm.check_ok(fleet.run(["tattle", "enable"]), "tattle enable")
    # A daemon running as nobody (no home) crashes.
    pid_file = os.path.join(fleet.work, "daemon.pid")
    r = fleet.inst.run(["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", "sh", "-c",
                        'ulimit -c 0; cd "$1" && exec "$2" daemon "$3"', "sh", fleet.work, PROCS, pid_file],
                       env={"PATH": adm.OUTER_PATH}, user=adm.NOBODY)
    h.check_equal((r.exit_code, r.stderr), (0, ""), "the daemon starts quietly")
    h.check(fleet.server.wait_for(lambda srv: len(srv.accepted("$exception")) >= 1, 30),
            "the nobody daemon's crash arrived")
    # A crash storm of 50 as root.
    storm = ('ulimit -c 0; pids=; i=0; while [ $i -lt 50 ]; do "$1" null >/dev/null & pids="$pids $!"; i=$((i+1)); '
             'done; n=0; for p in $pids; do wait $p; [ $? -eq 139 ] && n=$((n+1)); done; echo "segv $n"')
    with Sampler(fleet.live_flushers) as s:
        r = fleet.run(["bash", "-c", storm, "bash", CRASHER], timeout=120)
    h.check_equal(r.stdout.strip(), "segv 50", "all 50 died of SIGSEGV", r.stderr[-800:])
    h.check_equal([line for line in r.stderr.splitlines() if "tattle" in line], [],
                  "the agent printed nothing (quiet on a fleet; bash reports each death itself)")
    h.check(fleet.server.wait_for(lambda srv: len(srv.accepted("$exception")) >= 51, 30),
            "all 50 crash events arrived", len(fleet.server.accepted("$exception")))
    h.check(s.peak_n <= 2, "at most 2 flushers during the storm", s.peak_n)
    # 200 captures at once, 100 each from two users without a home.
    driver = ("import subprocess, sys\n"
              "ps = [subprocess.Popen([sys.argv[1], '0', '1', 'stdin'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)"
              " for _ in range(100)]\n"
              "ok = sum([p.stdout.readline(), p.stdout.readline()][1].strip() == b'ready' for p in ps)\n"
              "print('ready', ok, flush=True)\n"
              "sys.stdin.readline()\n"
              "for p in ps: p.stdin.write(b'go\\n'); p.stdin.flush()\n"
              "print('done', sum(p.wait() == 0 for p in ps), flush=True)\n")
    drivers = []
    for uid in (USER_A, adm.NOBODY):
        drivers.append(subprocess.Popen(
            ["nsenter", "-t", str(fleet.inst.holder.pid), "-m", "--"] + as_user(uid) +
            ["env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/nonexistent", PYTHON, "-c", driver,
             EMITTER], env={"PATH": adm.OUTER_PATH}, cwd=fleet.work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    for d in drivers:
        h.check_equal(d.stdout.readline().strip(), "ready 100", "100 emitters of one user ready", )
    per_user = {}
    for pid in fleet.live_flushers():
        with open("/proc/%d/status" % pid) as f:
            uid = int([line for line in f if line.startswith("Uid:")][0].split()[2])
        per_user.setdefault(uid, []).append(rss_kib(pid))
    for uid in (USER_A, adm.NOBODY):
        h.check(1 <= len(per_user.get(uid, [])) <= 2, "uid %d: 100 capturing processes, at most 2 flushers" % uid,
                per_user)
        h.check(sum(per_user.get(uid, [])) <= 40 * 1024, "uid %d: its flushers hold at most 40 MB" % uid, per_user)
    for d in drivers:
        d.stdin.write("go\n")
        d.stdin.flush()
    for d in drivers:
        out, err = d.communicate(timeout=120)
        h.check_equal(out.strip(), "done 100", "every emitter exited 0", err[-800:])
    h.check(fleet.server.wait_for(lambda srv: len(srv.accepted("burst")) >= 200, 60),
            "all 200 captures arrived", len(fleet.server.accepted("burst")))
    h.check_equal(len(fleet.server.accepted("burst")), 200, "each once")
    h.check_equal(fleet.server.violations(), [], "every request met PostHog's rules")
    for uid in (USER_A, adm.NOBODY):
        st = os.lstat(fleet.inst.in_ns("/var/lib/tattle/%d" % uid))
        h.check_equal((st.st_mode & 0o777, st.st_uid), (0o700, uid), "uid %d's state: 0700 and its own" % uid)
    h.check_equal(wait_no_flushers(fleet), [], "nothing of ours is left running afterwards")
    adm.check_ok(fleet.run(["tattle", "disable"]), "tattle disable")


TESTS = {f.__name__: f for f in [
    one_flusher_serves_every_process_of_a_user,
    a_crash_storm_is_reported_whole,
    another_users_process_is_refused_and_a_squatted_name_is_not_joined,
    no_zombie_under_a_pid1_that_never_reaps,
    a_host_that_gave_up_waiting_is_served_once,
    a_low_limit_on_descriptors_still_reports,
    a_fleet_machine_runs_its_workload_as_without_the_agent,
    a_nobody_daemon_a_storm_and_two_users_capturing_at_once,
]}

if __name__ == "__main__":
    h.main(TESTS)
