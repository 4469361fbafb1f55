"""test_lifecycle.py - the agent's promises around a crash: silence when
nothing crashes, configuration, where events go, and no trace of the
flusher in the host (children, pipes). Usage: test_lifecycle.py [CASE...]
"""
import os
import re
import shutil
import signal
import stat
import struct
import subprocess
import time

import harness as h

CRASHER = os.path.join(h.BUILD, "tests", "crasher")


with_box = h.with_sandbox


@with_box
def no_crash_prints_nothing(box):
    plain = h.run([CRASHER, "exit3"], env=box.base_env(), cwd=box.dir)
    agent = h.run([CRASHER, "exit3"], env=box.agent_env(), cwd=box.dir)
    h.check_equal(agent.describe(), plain.describe(), "the exit status is unchanged")
    h.check_equal(agent.stdout, plain.stdout, "stdout is unchanged")
    h.check_equal(agent.stderr, plain.stderr, "the agent prints nothing")
    h.check(not os.path.exists(box.events_path), "no event and no sink file for a clean exit")


@with_box
def disable_turns_everything_off(box):
    plain = h.run([CRASHER, "null"], env=box.base_env(), cwd=box.dir)
    agent = h.run([CRASHER, "null"], env=box.agent_env(TATTLE_DISABLE=1), cwd=box.dir)
    h.check_equal(agent.describe(), plain.describe(), "the death is unchanged")
    h.check_equal(agent.stderr, plain.stderr, "no report")
    h.check_equal(box.events(), [], "no event")


@with_box
def stderr_zero_keeps_stderr_identical(box):
    plain = h.run([CRASHER, "assert"], env=box.base_env(), cwd=box.dir)
    agent = h.run([CRASHER, "assert"], env=box.agent_env(TATTLE_STDERR=0), cwd=box.dir)
    h.check_equal(agent.describe(), plain.describe(), "the death is unchanged")
    h.check_equal(agent.stderr, plain.stderr, "stderr is byte for byte the program's")
    h.check_equal(len(h.exceptions(box.events())), 1, "the event is still written")


def check_private(path):
    h.check_equal(stat.S_IMODE(os.stat(path).st_mode), 0o600, "the sink file is private (0600)")
    h.check_equal(stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode), 0o700,
                  "its directory is private (0700)")


@with_box
def default_sink_under_xdg_state_home(box):
    env = box.agent_env()
    del env["TATTLE_FILE"]
    h.run([CRASHER, "null"], env=env, cwd=box.dir)
    path = os.path.join(box.dir, "state", "tattle", "events.jsonl")
    h.check_equal(len(h.exceptions(box.events(path))), 1, "the event is in $XDG_STATE_HOME/tattle/events.jsonl")
    check_private(path)


@with_box
def default_sink_under_home(box):
    env = box.agent_env()
    del env["TATTLE_FILE"]
    del env["XDG_STATE_HOME"]
    env["HOME"] = box.dir
    agent = h.run([CRASHER, "null"], env=env, cwd=box.dir)
    path = os.path.join(box.dir, ".local", "state", "tattle", "events.jsonl")
    h.check_equal(len(h.exceptions(box.events(path))), 1, "the event is in ~/.local/state/tattle/events.jsonl")
    h.check(path in agent.stderr, "the report says where the event went", agent.stderr[-500:])


@with_box
def without_home_the_report_says_the_event_was_not_saved(box):
    """No HOME, no XDG_STATE_HOME: the system's per-uid directory, which only
    the admin creates (here a private /var/lib without it): not saved, said once."""
    before = os.path.exists("/var/lib/tattle")
    agent = run_without_home(box, "")
    h.check_equal(agent.signal, 11, "still dies of SIGSEGV")
    lines = [l for l in agent.stderr.splitlines() if "NOT saved" in l]
    h.check_equal(len(lines), 1, "one line says why the event was not saved", agent.stderr[-800:])
    h.check("/var/lib/tattle/%d/events.jsonl" % os.geteuid() in lines[0], "it names the place it tried", lines)
    h.check_equal(os.path.exists("/var/lib/tattle"), before, "the real /var/lib was not touched")


@with_box
def without_home_events_go_to_the_system_state_dir(box):
    """Users without a usable home (nobody, HOME=/nonexistent, root with HOME=/)
    keep state in /var/lib/tattle/<uid>, made 0700 inside the admin's 1733 directory."""
    agent = run_without_home(box, "mkdir -m 1733 /var/lib/tattle && ", home="/nonexistent",
                             then="; stat -c %a /var/lib/tattle/$(id -u) >&2")
    h.check_equal(agent.signal, 0, "the shell ends as it does")
    h.check("written to /var/lib/tattle/%d/events.jsonl" % os.geteuid() in agent.stderr, "the event is saved there",
            agent.stderr[-800:])
    h.check_equal(agent.stderr.strip().splitlines()[-1], "700", "the per-uid directory is private")


def killed_from_outside(box, **env):
    p = subprocess.Popen(["/bin/sleep", "30"], env=box.agent_env(**env), cwd=box.dir, stderr=subprocess.PIPE)
    time.sleep(0.3)
    os.kill(p.pid, signal.SIGABRT)
    p.wait(timeout=30)
    return p


@with_box
def a_kill_from_outside_is_recorded_as_a_kill(box):
    """kill -ABRT from another process (a watchdog, timeout -s ABRT): the
    process dies as it would; the event says who killed it, not a fault."""
    p = killed_from_outside(box)
    h.check_equal(p.returncode, -signal.SIGABRT, "sleep dies by SIGABRT")
    events = h.exceptions(box.events())
    h.check_equal(len(events), 1, "one event")
    ex = events[0]["properties"]["$exception_list"][0]
    h.check_equal(ex["mechanism"]["type"], "kill", "its mechanism is a kill")
    h.check("sent by process %d" % os.getpid() in ex["value"], "it names the sender", ex["value"])
    h.check_equal(events[0]["properties"].get("killed"), True, "and says so as a property")


@with_box
def kills_from_outside_may_be_left_unreported(box):
    p = killed_from_outside(box, TATTLE_REPORT_KILLS=0)
    h.check_equal(p.returncode, -signal.SIGABRT, "sleep dies by SIGABRT")
    h.check_equal(h.exceptions(box.events()), [], "no event")
    h.check_equal(p.stderr.read(), b"", "nothing said")


@with_box
def the_events_file_is_bounded(box):
    """Past TATTLE_FILE_MAX_MB the file is rotated to <file>.1: about twice
    the bound on disk at most, and no event lost by the rotation itself."""
    emitter = os.path.join(h.BUILD, "tests", "emitter")
    total = 0
    for _ in range(4):
        r = h.run([emitter, "1", "1000", "exit"], env=box.agent_env(TATTLE_FILE_MAX_MB=1), cwd=box.dir)
        m = re.match(r"captured (\d+) errors", r.stdout)
        h.check(m, "the emitter captured", r.stdout)
        total += int(m.group(1))
    rotated = box.events_path + ".1"
    h.check(os.path.exists(rotated), "the file was rotated", os.listdir(os.path.dirname(box.events_path)))
    h.check(os.path.getsize(box.events_path) < (1 << 20) + (1 << 20), "the file stays near its bound",
            os.path.getsize(box.events_path))
    lines = len(box.events()) + len(box.events(rotated))
    h.check(1000 <= lines <= total, "the two files hold whole events, the latest run's all there", lines, total)


def run_without_home(box, setup, home=None, then=""):
    """The crasher without HOME (or with an unusable one), in a mount namespace
    whose /var/lib is a private tmpfs prepared by setup; then runs afterwards."""
    r = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if r.returncode != 0:
        raise h.Skip("unshare -m is refused here")
    env = box.agent_env()
    for var in ("TATTLE_FILE", "XDG_STATE_HOME", "HOME"):
        env.pop(var, None)
    if home:
        env["HOME"] = home
    crash = ("%s null%s" % (CRASHER, then)) if then else ("exec %s null" % CRASHER)
    script = "mount -t tmpfs -o mode=0755 none /var/lib && %s%s" % (setup, crash)
    return h.run(["unshare", "-m", "sh", "-c", script], env=env, cwd=box.dir)


@with_box
def malformed_config_warns_once_and_uses_defaults(box):
    env = box.agent_env(TATTLE_STDERR="perhaps", TATTLE_CRASH_TIMEOUT_MS="soon")
    plain = h.run([CRASHER, "exit3"], env=box.base_env(), cwd=box.dir)
    agent = h.run([CRASHER, "exit3"], env=env, cwd=box.dir)
    h.check_equal(agent.describe(), plain.describe(), "the exit status is unchanged")
    # The configuration is read at first use: a program that never needs
    # the agent hears nothing of it; a crash is a first use.
    h.check_equal(agent.stderr, plain.stderr, "nothing is said without a first use")
    crash = h.run([CRASHER, "null"], env=env, cwd=box.dir)
    lines = [l for l in crash.stderr.splitlines() if l.startswith("tattle: ignoring")]
    h.check_equal(len(lines), 2, "one line per malformed variable", crash.stderr)
    h.check("TATTLE_STDERR" in lines[0] and "TATTLE_CRASH_TIMEOUT_MS" in lines[1],
            "each line names its variable", crash.stderr)
    h.check("tattle: SIGSEGV" in crash.stderr, "the default (report on) applies", crash.stderr[-500:])


@with_box
def distinct_id_from_the_environment(box):
    h.run([CRASHER, "null"], env=box.agent_env(TATTLE_DISTINCT_ID="user-42"), cwd=box.dir)
    ev = h.exceptions(box.events())[0]
    h.check_equal(ev["distinct_id"], "user-42", "distinct_id comes from TATTLE_DISTINCT_ID")
    h.check("$process_person_profile" not in ev["properties"], "an identified event has a person profile")


@with_box
def anonymous_without_distinct_id(box):
    h.run([CRASHER, "null"], env=box.agent_env(), cwd=box.dir)
    ev = h.exceptions(box.events())[0]
    h.check(len(ev["distinct_id"]) == 36, "a random UUID as distinct_id", ev["distinct_id"])
    h.check_equal(ev["properties"].get("$process_person_profile"), False, "no person profile")


@with_box
def forked_child_crash_is_invisible_to_the_parents_wait(box):
    plain = h.run([CRASHER, "fork-child-crash"], env=box.base_env(), cwd=box.dir)
    agent = h.run([CRASHER, "fork-child-crash"], env=box.agent_env(), cwd=box.dir)
    h.check_equal(plain.stdout, "crasher: fork-child-crash\nreaped 2, signal 11\n", "the plain run's output")
    h.check_equal(agent.stdout, plain.stdout, "the parent reaps exactly its own two children")
    h.check_equal(agent.describe(), plain.describe(), "the parent's exit is unchanged")
    evs = h.exceptions(box.events())
    h.check_equal(len(evs), 1, "one event, from the child")
    props = evs[0]["properties"]
    h.check(props["pid"] != props["ppid"], "the event names the child's pid and its parent", props["pid"])


@with_box
def pipe_closes_when_the_host_dies(box):
    """$(host) and host | cat must not wait for the flusher: it holds no
    descriptor of the host's. A hang here would block until the timeout."""
    env = box.agent_env()
    t0 = time.monotonic()
    p = subprocess.Popen([CRASHER, "null"], env=env, cwd=box.dir, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        out, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        raise h.Failure("FAILED: the host's pipes stayed open after it died")
    h.check_equal(p.returncode, -11, "the host died by SIGSEGV")
    h.check_equal(out, b"crasher: null\n", "stdout through the pipe")


@with_box
def missing_flusher_never_hangs_or_changes_the_death(box):
    lonely = os.path.join(box.dir, "lib")
    os.mkdir(lonely)
    shutil.copy(h.AGENT, lonely)
    agent_path = os.path.join(lonely, "libtattle.so")
    env = box.agent_env(LD_PRELOAD=agent_path)
    # The marker that says it was said: FNV-1a of the agent's path.
    hsh = 1469598103934665603
    for b in agent_path.encode():
        hsh = ((hsh ^ b) * 1099511628211) % (1 << 64)
    marker = "/dev/shm/.tattle-no-flusher-%d-%d" % (os.geteuid(), hsh)
    try:
        plain = h.run([CRASHER, "null"], env=box.base_env(), cwd=box.dir)
        agent = h.run([CRASHER, "null"], env=env, cwd=box.dir, timeout=30)
        h.check_equal(agent.describe(), plain.describe(), "the death is unchanged")
        h.check("tattle-flusher not found" in agent.stderr, "one clear line says why", agent.stderr)
        if os.path.isdir("/dev/shm"):
            again = h.run([CRASHER, "null"], env=env, cwd=box.dir, timeout=30)
            h.check_equal(again.describe(), plain.describe(), "the next death is unchanged too")
            h.check("tattle-flusher not found" not in again.stderr, "the next process does not say it again",
                    again.stderr)
    finally:
        if os.path.lexists(marker):
            os.unlink(marker)


def find_flusher(token):
    """The flusher serving our host: its environment names the host's sink."""
    pids = h.flusher_pids(lambda pid: h.environ_has(pid, token), zombies=True)
    return pids[0] if pids else None


@with_box
def crash_after_the_flusher_was_killed(box):
    """A dead flusher must not turn SIGSEGV into SIGPIPE, nor lose the crash:
    the handler starts a new flusher and hands it the same record."""
    token = "TATTLE_FILE=%s\0" % box.events_path
    env = box.agent_env()
    p = subprocess.Popen([os.path.join(h.BUILD, "tests", "ctx"), "crash_after_flusher_killed"], env=env,
                         cwd=box.dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        h.check_equal(p.stdout.readline(), b"ready\n", "the host captured an event first")
        flusher = find_flusher(token)
        h.check(flusher is not None, "a flusher serves the host")
        os.kill(flusher, 9)
        for _ in range(200):
            if not os.path.exists("/proc/%d" % flusher) or open("/proc/%d/stat" % flusher).read().split()[2] == "Z":
                break
            time.sleep(0.01)
        p.stdin.write(b"go\n")
        p.stdin.close()
        p.wait(timeout=30)
        err = p.stderr.read().decode()
    finally:
        if p.poll() is None:
            p.kill()
    h.check_equal(p.returncode, -11, "the host still dies by SIGSEGV")
    h.check("tattle: SIGSEGV" in err, "the report still appears", err[-800:])
    h.check_equal(len(h.exceptions(box.events())), 1, "the crash event still arrives")


@with_box
def relative_preload_path_works(box):
    env = box.agent_env(LD_PRELOAD=os.path.relpath(h.AGENT, box.dir))
    agent = h.run([CRASHER, "null"], env=env, cwd=box.dir)
    h.check("tattle: SIGSEGV" in agent.stderr and "not found" not in agent.stderr,
            "LD_PRELOAD given as a relative path finds the flusher", agent.stderr[-600:])
    h.check_equal(len(h.exceptions(box.events())), 1, "the event arrives")


WAITER = os.path.join(h.BUILD, "tests", "waiter")


def sections(path):
    """name -> (address, size) of the object's sections (readelf -S)."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        f = line.replace("[ ", "[").split()
        if len(f) > 5 and f[0].startswith("[") and f[1].startswith("."):
            found[f[1]] = (int(f[3], 16), int(f[5], 16))
    return found


def skip_unless_the_load_path_is_laid_out():
    """The load path's layout (TATTLE_LOAD_PATH) is a property of an
    optimised build: at -O0 every struct copy is a call of libc's."""
    cache = os.path.join(h.BUILD, "CMakeCache.txt")
    build_type = ""
    if os.path.exists(cache):
        with open(cache) as f:
            build_type = next((l.split("=", 1)[1].strip() for l in f if l.startswith("CMAKE_BUILD_TYPE:")), "")
    if build_type in ("", "Debug"):
        raise h.Skip("an unoptimised build (CMAKE_BUILD_TYPE=%r) calls libc for struct copies" % build_type)
    if not shutil.which("readelf") or not shutil.which("objdump"):
        raise h.Skip("readelf and objdump (binutils) are not installed")
    found = sections(h.AGENT)
    h.check(".tattle.load" in found, "libtattle.so has a .tattle.load section", sorted(found))
    return found


# What the load path may call outside its page: paths a plain process does
# not take.
COLD_CALLEES = {
    "resolve_relative_self",      # LD_PRELOAD names us by a relative path
    "tattle__agent_init",         # a secure-execution process decides at load
    "tattle__fork_takeover",      # the destructor, after a first use
    "tattle__signals_exit_wait",  # the same
    "tattle__link_wait_exit",     # the same
    "sched_yield@plt",            # another thread writes the same handler slot
    "take_large",                 # the settings fill more than the inline copy
    "getauxval@plt",              # the auxiliary vector has no AT_SECURE
}
INSTRUCTION = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
TARGET = re.compile(r"\b([0-9a-f]+) <([^>+]+)(?:\+0x[0-9a-f]+)?>")


@with_box
def the_load_path_calls_and_reads_nothing_outside_its_page(box):
    """Every jump and call of the code loading runs stays on its page, but
    for the cold paths named above and libc through the GOT; nothing it
    addresses is in .rodata or .eh_frame."""
    found = skip_unless_the_load_path_is_laid_out()
    lo, size = found[".tattle.load"]
    h.check(size <= 4096, "the load path fits one page", size)
    constants = [found[n] for n in (".rodata", ".eh_frame", ".eh_frame_hdr") if n in found]
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-j", ".tattle.load", h.AGENT],
                         capture_output=True, text=True).stdout
    calls_out, reads, seen = [], [], 0
    for line in out.splitlines():
        m = INSTRUCTION.match(line)
        if not m:
            continue
        seen += 1
        op, rest = m.group(2), m.group(3)
        t = TARGET.search(rest)
        if not t:
            continue
        addr, name = int(t.group(1), 16), t.group(2)
        if op.startswith(("call", "jmp")) and "*" not in rest and not lo <= addr < lo + size:
            if name not in COLD_CALLEES:
                calls_out.append(line.strip())
        elif "(%rip)" in rest and any(a <= addr < a + n for a, n in constants):
            reads.append(line.strip())
    h.check(seen > 100, "objdump showed the section's code", out[:500])
    h.check_equal(calls_out, [], "no call or jump out of the load page but the cold ones")
    h.check_equal(reads, [], "no address in .rodata or .eh_frame")


def present_pages(pid, start, end):
    """Pages of [start, end) the process has mapped (/proc/PID/pagemap bit 63)."""
    fd = os.open("/proc/%d/pagemap" % pid, os.O_RDONLY)
    try:
        n = (end - start) // 4096
        data = os.pread(fd, 8 * n, start // 4096 * 8)
    finally:
        os.close(fd)
    return [start + 4096 * i for i in range(n) if struct.unpack_from("<Q", data, 8 * i)[0] >> 63]


def fault_around_bytes():
    try:
        with open("/sys/kernel/debug/fault_around_bytes") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 65536  # the kernel's default


def mapping_range(m):
    return tuple(int(x, 16) for x in m[0].split("-"))


@with_box
def loading_maps_one_window_of_code_and_no_constants(box):
    """What the agent costs a process that never uses it: the loader's pages
    and the page the constructor runs on (TATTLE_LOAD_PATH), plus what the
    kernel's fault-around brings in before it; nothing after it and no
    page of .rodata. The waiter's environment is a plain one: settings that
    do not fit the inline copy take a colder path."""
    found = skip_unless_the_load_path_is_laid_out()
    if not os.path.exists("/proc/self/pagemap"):
        raise h.Skip("no /proc/PID/pagemap here")
    load = found[".tattle.load"]
    real = os.path.realpath(h.AGENT)
    env = {"PATH": "/usr/bin:/bin", "LD_PRELOAD": h.AGENT, "TATTLE_FILE": box.events_path,
           "XDG_STATE_HOME": os.path.join(box.dir, "state")}
    waiter = subprocess.Popen([WAITER], stdin=subprocess.PIPE, env=env, cwd=box.dir)
    try:
        maps = []
        for _ in range(500):  # until it waits on its input: loading is over
            with open("/proc/%d/maps" % waiter.pid) as f:
                maps = [l.split() for l in f if l.rstrip().endswith(real)]
            if h.proc_state(waiter.pid) == "S" and maps:
                break
            time.sleep(0.01)
        h.check(maps, "the waiter maps the agent")
        base = min(mapping_range(m)[0] for m in maps)
        code = [m for m in maps if m[1].startswith("r-x")]
        h.check_equal(len(code), 1, "one code mapping", maps)
        start, end = mapping_range(code[0])
        # .rodata and .eh_frame: the mapping right after the code (later
        # read-only ones are RELRO, which the loader writes).
        after = [m for m in maps if mapping_range(m)[0] == end and m[1].startswith("r--")]
        first = [m for m in maps if mapping_range(m)[0] == base]
        page = base + load[0] // 4096 * 4096
        window = page - page % fault_around_bytes()
        mapped = present_pages(waiter.pid, start, end)
        headers = present_pages(waiter.pid, *mapping_range(first[0]))
        constants = [a for m in after for a in present_pages(waiter.pid, *mapping_range(m))]
    finally:
        waiter.stdin.close()
        waiter.wait()
    h.check(headers, "the loader's pages read as mapped (the method sees pages)", first)
    h.check(page in mapped, "the constructor's page is mapped", hex(page), [hex(a) for a in mapped])
    h.check_equal([hex(a) for a in mapped if a < window or a > page + load[1]], [],
                  "no code page outside the constructor's fault-around window")
    h.check(after, "a read-only mapping follows the code", maps)
    h.check_equal([hex(a) for a in constants], [], "no page of .rodata or .eh_frame is mapped")

TESTS = {f.__name__: f for f in [
    relative_preload_path_works,
    crash_after_the_flusher_was_killed,
    no_crash_prints_nothing, disable_turns_everything_off, stderr_zero_keeps_stderr_identical,
    default_sink_under_xdg_state_home, default_sink_under_home, malformed_config_warns_once_and_uses_defaults,
    without_home_the_report_says_the_event_was_not_saved,
    distinct_id_from_the_environment, anonymous_without_distinct_id, without_home_events_go_to_the_system_state_dir,
    the_events_file_is_bounded, a_kill_from_outside_is_recorded_as_a_kill, kills_from_outside_may_be_left_unreported,
    forked_child_crash_is_invisible_to_the_parents_wait, pipe_closes_when_the_host_dies,
    missing_flusher_never_hangs_or_changes_the_death, loading_maps_one_window_of_code_and_no_constants,
    the_load_path_calls_and_reads_nothing_outside_its_page,
]}

if __name__ == "__main__":
    h.main(TESTS)
