"""test_hygiene.py - processes and descriptors: the host sees only its own.

Each case runs tests/compat/procs.c plain and under the agent: a host that
reaps until ECHILD reaps only its own children; children made by fork,
posix_spawn, vfork + exec and daemon() each report their own crash, once;
the descriptors the agent adds are close-on-exec and gone in a forked
child and after exec; a host that closes every descriptor (as daemons do)
keeps its events and its crash report.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

PROCS = os.path.join(h.BUILD, "tests", "procs")
CRASHER = os.path.join(h.BUILD, "tests", "crasher")
EMITTER = os.path.join(h.BUILD, "tests", "emitter")


def both(box, argv):
    plain = h.run(argv, env=box.base_env(), cwd=box.dir)
    agent = h.run(argv, env=box.agent_env(), cwd=box.dir)
    h.check_equal(agent.describe(), plain.describe(), "the host ends the same way", agent.stderr[-2000:])
    return plain, agent


with_box = h.with_sandbox


def only_crash(box, host_pid=None):
    evs = h.exceptions(box.events())
    h.check_equal(len(evs), 1, "exactly one $exception event", [e["properties"].get("pid") for e in evs])
    props = evs[0]["properties"]
    names = [f.get("function") for f in props["$exception_list"][0]["stacktrace"]["frames"]]
    h.check("write_null" in names, "the stack is the child's own", names)
    return props


@with_box
def reaping_until_echild_sees_only_its_own_children(box):
    plain, agent = both(box, [PROCS, "reap"])
    h.check_equal(plain.stdout, "reaped 3, then ECHILD\nchild 0: exited 3\nchild 1: killed by signal 11\n"
                  "child 2: exited 0\nstrangers: 0\n", "the plain run's output")
    h.check_equal(agent.stdout, plain.stdout, "under the agent the host reaps the same three children")
    only_crash(box)
    names = sorted(e["event"] for e in box.events() if e["event"] != "$exception")
    h.check_equal(names, ["child event", "reaper started"], "the parent's and the child's events")


@with_box
def posix_spawned_child_reports_its_own_crash(box):
    plain, agent = both(box, [PROCS, "spawn", CRASHER, "null"])
    h.check_equal(agent.stdout, plain.stdout, "the same status reaped")
    h.check("spawned: killed by signal 11" in agent.stdout, "the child died of SIGSEGV", agent.stdout)
    props = only_crash(box)
    h.check(props["$exception_list"][0]["type"] == "SIGSEGV", "a SIGSEGV", props["$exception_list"][0])


@with_box
def vforked_child_reports_its_own_crash(box):
    plain, agent = both(box, [PROCS, "vfork", CRASHER, "null"])
    h.check_equal(agent.stdout, plain.stdout, "the same status reaped")
    h.check("vforked: killed by signal 11" in agent.stdout, "the child died of SIGSEGV", agent.stdout)
    only_crash(box)


@with_box
def a_vfork_child_crashing_before_exec_leaves_the_parent_reported(box):
    """A vfork child shares its parent's memory: its crash (before the
    parent ever used the agent) is left alone, and the parent's own crash
    afterwards is reported as the parent's."""
    plain, agent = both(box, [PROCS, "vfork-crash"])
    h.check_equal(agent.stdout, plain.stdout, "the same status reaped")
    h.check("vforked: killed by signal 11" in agent.stdout, "the child died of SIGSEGV", agent.stdout)
    h.check_equal(agent.describe(), plain.describe(), "the parent dies as without the agent")
    evs = h.exceptions(box.events())
    h.check_equal(len(evs), 1, "one crash event: the parent's", agent.stderr[-1500:])
    h.check_equal(evs[0]["properties"].get("ppid"), os.getpid(), "it names the parent (whose parent is this test)")


def wait_for(cond, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return False


@with_box
def a_daemon_reports_its_own_crash(box):
    pid_file = os.path.join(box.dir, "daemon.pid")
    agent = h.run([PROCS, "daemon", pid_file], env=box.agent_env(), cwd=box.dir)
    h.check_equal(agent.describe(), "exited with 0", "daemon()'s parent exits at once")
    h.check(wait_for(lambda: h.exceptions(box.events())), "the daemon's crash arrives")
    with open(pid_file) as f:
        daemon_pid = int(f.read())
    props = only_crash(box)
    h.check_equal(props["pid"], daemon_pid, "the event is the daemon's")


def fd_lines(out):
    return dict(line.split(":", 1) for line in out.splitlines() if ":" in line)


@with_box
def descriptors_of_the_agent_are_close_on_exec_and_never_inherited(box):
    plain, agent = both(box, [PROCS, "fds"])
    p, a = fd_lines(plain.stdout), fd_lines(agent.stdout)
    for when in ("before", "forked child", "after exec"):
        h.check_equal(a.get(when), p.get(when), "%s: the host's descriptors only" % when)
    ours = set(a["after capture"].split()) - set(p["after capture"].split())
    h.check(all(fd.endswith("(cloexec)") for fd in ours), "every descriptor the agent added is close-on-exec", ours)
    h.check(all(int(fd.split("(")[0]) >= 700 for fd in ours), "and far above the host's", ours)
    h.check_equal(agent.stdout.splitlines()[-1], "child: exited 0", "the child ran")


def libraries_of(pid):
    with open("/proc/%d/maps" % pid) as f:
        return {line.split()[-1].rsplit("/", 1)[-1] for line in f if "/" in line}


@with_box
def a_flusher_that_writes_the_file_maps_no_libcurl(box):
    """libcurl, and the TLS libraries under it, are opened when a flusher
    first sends: one that only writes the local file never maps them."""
    import subprocess
    env = box.agent_env()
    p = subprocess.Popen([EMITTER, "1", "1", "stdin"], env=env, cwd=box.dir, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        h.check_equal(p.stdout.readline(), b"captured 1 errors 0\n", "the host captured")
        mine = lambda pid: h.environ_has(pid, "TATTLE_FILE=" + box.events_path + "\0")
        h.check(wait_for(lambda: h.flusher_pids(mine)), "its flusher runs")
        pid = h.flusher_pids(mine)[0]
        libs = libraries_of(pid)
        h.check(any(l.startswith("libdw") for l in libs), "control: the flusher's maps list its libraries", libs)
        h.check_equal(sorted(l for l in libs if l.startswith(("libcurl", "libssl", "libcrypto", "libgnutls"))), [],
                      "no libcurl, no TLS library")
    finally:
        p.communicate(b"go\n", timeout=30)


@with_box
def a_host_that_closes_every_descriptor_keeps_reporting(box):
    plain, agent = both(box, [PROCS, "closefrom-crash"])
    h.check("did not complete" not in agent.stderr, "the crash report completed", agent.stderr[-2000:])
    h.check("tattle: SIGSEGV" in agent.stderr, "the report is printed", agent.stderr[-2000:])
    names = [e["event"] for e in box.events()]
    h.check_equal(names, ["before closing", "after closing", "$exception"],
                  "events before and after closing, then the crash")


TESTS = {f.__name__: f for f in (
    reaping_until_echild_sees_only_its_own_children,
    posix_spawned_child_reports_its_own_crash,
    vforked_child_reports_its_own_crash,
    a_vfork_child_crashing_before_exec_leaves_the_parent_reported,
    a_daemon_reports_its_own_crash,
    descriptors_of_the_agent_are_close_on_exec_and_never_inherited,
    a_flusher_that_writes_the_file_maps_no_libcurl,
    a_host_that_closes_every_descriptor_keeps_reporting,
)}

if __name__ == "__main__":
    h.main(TESTS)
