"""test_crash.py - the crash matrix: each crash run plain and under the agent.

For every case: the same death (exit status or signal, core flag) and the
same stdout as the plain run, the plain stderr still there, exactly one
$exception event with the right type and value, the frames gdb shows for
the same crash (in order, crash-site file and line equal), and the
executable's build ID in $debug_images. Usage: test_crash.py [CASE...]
"""
import os
import re
import shutil
import subprocess
import signal

import harness as h

CRASHER = os.path.join(h.BUILD, "tests", "crasher")
CRASHER_CXX = os.path.join(h.BUILD, "tests", "crasher_cxx")


def debug_id_from_build_id(hex_id):
    b = bytes.fromhex(hex_id)[:16].ljust(16, b"\0")
    g = b[3::-1] + b[5:3:-1] + b[7:5:-1] + b[8:]
    s = g.hex()
    return "%s-%s-%s-%s-%s" % (s[:8], s[8:12], s[12:16], s[16:20], s[20:])


def check_same_death(plain, agent):
    h.check_equal(agent.describe(), plain.describe(), "the process dies the same way under the agent")
    h.check_equal(agent.stdout, plain.stdout, "stdout is unchanged")
    h.check(plain.stderr in agent.stderr, "the program's own stderr is unchanged",
            "plain: %r" % plain.stderr, "agent: %r" % agent.stderr)


def check_debug_images(event, exe):
    want = h.build_id(exe)
    images = event["properties"]["$debug_images"]
    ours = [i for i in images if i.get("code_file") == os.path.realpath(exe)]
    h.check(len(ours) == 1, "the executable is in $debug_images", images)
    h.check_equal(ours[0]["code_id"], want, "its code_id is the GNU build ID")
    h.check_equal(ours[0]["debug_id"], debug_id_from_build_id(want), "its debug_id follows PostHog's rule")


def check_against_gdb(argv, event, limit=60, compare=None):
    """Our frames must name gdb's functions in gdb's order. gdb also shows
    tail-call frames it rebuilds from DWARF call sites (libc's
    __pthread_kill_internal); those are the only ones we may lack."""
    gdb = h.gdb_backtrace(argv, limit)
    ours = h.frames_innermost_first(event)
    g_names = [h.normalize_function(n) for n, _, _ in gdb]
    o_names = [h.normalize_function(f.get("function")) for f in ours]
    if compare:
        g_names, o_names = g_names[:compare], o_names[:compare]
        h.check(len(o_names) == len(g_names) and all(map(h.same_symbol, o_names, g_names)),
                "the first %d frames match gdb's" % compare, "gdb:    %s" % g_names, "tattle: %s" % o_names)
    h.check(h.same_symbol(o_names[0], g_names[0]), "the crash-site function matches gdb's",
            "gdb:    %s" % g_names[0], "tattle: %s" % o_names[0])
    g_file, g_line = gdb[0][1], gdb[0][2]
    # A stack overflow faults on whichever instruction first touches the
    # guard page (the prologue's push or store, or the call's push): where
    # that page falls moves with ASLR and with the size of the environment,
    # so gdb's run and ours may stop on different instructions of the same
    # function. Any line of that function is then a true crash site.
    lines = h.gdb_function_lines(argv[0], gdb[0][0]) if compare else {g_line}
    if g_file:
        o_file = ours[0].get("filename") or ""
        h.check(o_file.endswith(g_file.lstrip("./")) and ours[0].get("lineno") in lines,
                "the crash-site file and line match gdb's",
                "gdb:    %s:%s" % (g_file, g_line), "tattle: %s:%s" % (o_file, ours[0].get("lineno")))
    if "main" in g_names and "main" in o_names:
        o_names = o_names[: o_names.index("main") + 1]
    else:
        o_names = o_names[: len(g_names)]
    h.check(h.is_subsequence(o_names, g_names), "tattle's frames appear in gdb's backtrace, in order",
            "gdb:    %s" % g_names, "tattle: %s" % o_names)
    for (name, path, _line) in gdb:
        if path and "crasher" in os.path.basename(path):
            h.check(any(h.same_symbol(h.normalize_function(name), o) for o in o_names),
                    "gdb's frame %s is in tattle's stack" % name,
                    "tattle: %s" % o_names)


def check_report(agent, event, first_function):
    ex = event["properties"]["$exception_list"][0]
    h.check("tattle: %s: %s" % (ex["type"], ex["value"]) in agent.stderr, "the report's title is on stderr",
            agent.stderr[-3000:])
    h.check(re.search(r"#0 .* in (__)?%s \(" % re.escape(first_function), agent.stderr),
            "the report's first frame is %s" % first_function, agent.stderr[-3000:])


def crash_case(verb, exe, type_, value_re, first, gdb=True, compare=None, limit=60):
    def test():
        box = h.Sandbox(verb)
        try:
            argv = [exe] + ([verb] if verb else [])
            plain = h.run(argv, env=box.base_env(), cwd=box.dir)
            agent = h.run(argv, env=box.agent_env(), cwd=box.dir)
            check_same_death(plain, agent)
            events = h.exceptions(box.events())
            h.check_equal(len(events), 1, "exactly one $exception event")
            ev = events[0]
            ex = ev["properties"]["$exception_list"][0]
            h.check_equal(ex["type"], type_, "the exception type")
            h.check(re.fullmatch(value_re, ex["value"]), "the exception value", "want /%s/" % value_re,
                    "got  %r" % ex["value"])
            h.check_equal(ex["mechanism"]["handled"], False, "a crash is unhandled")
            h.check_equal(ev["properties"]["$exception_level"], "fatal", "a crash is fatal")
            for f in ex["stacktrace"]["frames"]:
                h.check_equal(f["platform"], "native", "every frame is native")
                h.check("libtattle" not in (f.get("module") or ""), "no frame of the agent", f)
            check_debug_images(ev, exe)
            check_report(agent, ev, first)
            if gdb:
                check_against_gdb(argv, ev, limit=limit, compare=compare)
        finally:
            box.cleanup()
    return test


GDB_THREAD = re.compile(r"^Thread \d+ \(.*LWP (\d+)\)\)?:")


def gdb_core_threads(exe, core):
    """`thread apply all bt` of a core file: {lwp: [function, ...]}, innermost first."""
    r = subprocess.run(["gdb", "-q", "-batch", "-nx", "-ex", "set pagination off", "-ex", "set width 0",
                        "-ex", "thread apply all bt 40", exe, core], capture_output=True, text=True, timeout=120)
    threads, current = {}, None
    for line in r.stdout.splitlines():
        m = GDB_THREAD.match(line)
        if m:
            current = threads.setdefault(int(m.group(1)), [])
            continue
        m = h.GDB_FRAME.match(line)
        if m and current is not None:
            current.append(h.normalize_function(m.group(2)))
    h.check(len(threads) > 1, "gdb listed the core's threads", r.stdout[-2000:], r.stderr[-2000:])
    return threads


def all_threads():
    """A crash in main while four named threads wait on a mutex, a condition
    variable, a sleep and a busy loop: the event and the report carry every
    thread's stack, each as gdb shows it in the core of the same run."""
    box = h.Sandbox("all-threads")
    try:
        argv = [CRASHER, "all-threads"]
        agent = h.run(argv, env=box.agent_env(), cwd=box.dir)
        h.check_equal(agent.signal, signal.SIGSEGV, "it died of SIGSEGV", agent.stderr[-2000:])
        h.check(agent.core, "with a core dump (RLIMIT_CORE is unlimited here)")
        ev = h.exceptions(box.events())[0]
        props = ev["properties"]
        threads = props["threads"]["values"]
        h.check_equal(sorted(t["name"] for t in threads), sorted(["crasher", "locker", "waiter", "sleeper", "spinner"]),
                      "every thread is listed, by name")
        crashed = [t for t in threads if t["crashed"]]
        h.check_equal([t["id"] for t in crashed], [props["thread_id"]], "the crashing thread is marked")
        core = [os.path.join(box.dir, n) for n in os.listdir(box.dir) if n == "core" or n.startswith("core.")]
        h.check(core, "the core file is in the scratch directory", os.listdir(box.dir))
        gdb = gdb_core_threads(CRASHER, core[0])
        h.check_equal(sorted(gdb), sorted(t["id"] for t in threads), "the same threads as gdb's, by id")
        parked = {"locker": "wait_for_lock", "waiter": "wait_for_signal", "sleeper": "nap", "spinner": "spin"}
        for t in threads:
            if t["crashed"]:
                continue
            ours = [h.normalize_function(f.get("function")) for f in reversed(t["stacktrace"]["frames"])]
            theirs = gdb[t["id"]]
            # gdb also shows frames that left by a tail call (it rebuilds them
            # from DWARF call sites); every frame of ours is one of gdb's.
            h.check(h.same_symbol(ours[0], theirs[0]), "thread %s: gdb's innermost frame" % t["name"],
                    "gdb:    %s" % theirs, "tattle: %s" % ours)
            h.check(h.is_subsequence(ours, theirs), "thread %s: gdb's frames, in gdb's order" % t["name"],
                    "gdb:    %s" % theirs, "tattle: %s" % ours)
            h.check(len(ours) >= len(theirs) - 1, "thread %s: at most one (tail-call) frame fewer than gdb" % t["name"],
                    "gdb:    %s" % theirs, "tattle: %s" % ours)
            h.check(parked[t["name"]] in ours and "parked_thread" in ours and "start_thread" in ours,
                    "thread %s: down to where it parked, from its start" % t["name"], ours)
        for name in parked:
            h.check(re.search(r'tattle: thread \d+ "%s"\n  #0 ' % name, agent.stderr),
                    "the report shows thread %s with its frames" % name, agent.stderr[-4000:])
        h.check(agent.stderr.rstrip().splitlines()[-1].startswith("tattle: event "),
                "the report still ends with where the event went", agent.stderr[-600:])
    finally:
        box.cleanup()


def all_threads_traced():
    """Under strace -f the other threads cannot be stopped by anyone else:
    the crash is still reported as before, the event and the report say
    why the other threads are missing, and the death is the same."""
    if not shutil.which("strace"):
        raise h.Skip("strace is not installed")
    box = h.Sandbox("all-threads-traced")
    try:
        argv = ["strace", "-f", "-qq", "-o", "/dev/null", CRASHER, "all-threads"]
        # LeakSanitizer cannot run under ptrace (sanitized builds only).
        lsan = {"ASAN_OPTIONS": os.environ["ASAN_OPTIONS"] + ":detect_leaks=0"} if "ASAN_OPTIONS" in os.environ else {}
        base = dict(box.base_env(), **lsan)
        plain = h.run(argv, env=base, cwd=box.dir)
        agent = h.run(argv, env=dict(box.agent_env(), **lsan), cwd=box.dir)
        check_same_death(plain, agent)
        ev = h.exceptions(box.events())[0]
        threads = ev["properties"]["threads"]
        h.check_equal(threads.get("error"), "Operation not permitted", "the event says why", threads)
        h.check(all(t["crashed"] or "stacktrace" not in t for t in threads["values"]),
                "no other thread has a stack", threads)
        h.check_equal(len(threads["values"]), 5, "every thread is still listed")
        h.check("tattle: other threads: Operation not permitted" in agent.stderr, "the report says why",
                agent.stderr[-2000:])
        h.check("written to" in agent.stderr, "the crash was reported", agent.stderr[-2000:])
    finally:
        box.cleanup()


def event_names(ev):
    """Function names of the exception's frames, innermost first (None where unknown)."""
    frames = ev["properties"]["$exception_list"][0]["stacktrace"]["frames"]
    return [h.normalize_function(f.get("function")) for f in reversed(frames)]


def null_fnptr():
    """A call through a NULL function pointer: the pc is 0, in no module. The
    caller comes from the return address the call left, as gdb finds it."""
    box = h.Sandbox("null-fnptr")
    try:
        argv = [CRASHER, "null-fnptr"]
        plain = h.run(argv, env=box.base_env(), cwd=box.dir)
        agent = h.run(argv, env=box.agent_env(), cwd=box.dir)
        check_same_death(plain, agent)
        ev = h.exceptions(box.events())[0]
        frames = list(reversed(ev["properties"]["$exception_list"][0]["stacktrace"]["frames"]))
        h.check_equal(frames[0]["instruction_addr"], "0x0", "frame #0 is the wild pc")
        gdb = [n for n, _, _ in h.gdb_backtrace(argv)]
        ours = event_names(ev)
        h.check_equal(gdb[:4], ["??", "call_back", "crash_null_fnptr", "main"], "gdb's frames (the oracle)")
        h.check_equal(ours[1:4], gdb[1:4], "the callers gdb finds, in order", "tattle: %s" % ours)
        h.check_equal(frames[1].get("lineno"), h.gdb_backtrace(argv)[1][2], "call_back's line is gdb's")
        h.check(re.search(r"#1 .* in call_back \(", agent.stderr), "the report shows the caller", agent.stderr[-2000:])
    finally:
        box.cleanup()


def deep_stack_keeps_both_ends():
    """A stack overflow tens of thousands of frames deep: the innermost
    frames, the outermost ones (main, and what called it), and the count
    elided between them, in the event and in the report."""
    box = h.Sandbox("deep-stack")
    try:
        agent = h.run([CRASHER, "stack-overflow"], env=box.agent_env(), cwd=box.dir)
        h.check_equal(agent.signal, signal.SIGSEGV, "it died of SIGSEGV")
        ev = h.exceptions(box.events())[0]
        trace = ev["properties"]["$exception_list"][0]["stacktrace"]
        names = event_names(ev)
        h.check_equal(names[0], "recurse", "the innermost frame")
        h.check("main" in names and "crash_stack_overflow" in names, "the outermost frames are kept", names[-8:])
        h.check(names.index("crash_stack_overflow") > 100, "after the innermost hundred")
        h.check(trace.get("frames_elided", 0) > 1000, "the elided frames are counted", trace.get("frames_elided"))
        gap = trace.get("frames_omitted")
        h.check(gap and gap[1] == gap[0] + 1, "and where they were", gap)
        h.check(re.search(r"\.\.\. \d+ frames elided \.\.\.", agent.stderr), "the report says how many",
                agent.stderr[-3000:])
        h.check(re.search(r"#\d+ +0x[0-9a-f]+ in main \(", agent.stderr), "the report ends with main",
                agent.stderr[-3000:])
    finally:
        box.cleanup()


def exhausted_memory():
    """The address space (soft limit, as ulimit -Sv sets it) and the heap
    are exhausted when the program crashes: the report is still complete,
    because a crash that is the agent's first use raises the soft limit
    for the region it maps (the process is dying), and the flusher it
    starts is not held to the host's soft limit."""
    box = h.Sandbox("oom")
    try:
        argv = [CRASHER, "oom"]
        plain = h.run(argv, env=box.base_env(), cwd=box.dir)
        agent = h.run(argv, env=box.agent_env(), cwd=box.dir)
        check_same_death(plain, agent)
        h.check("could not record" not in agent.stderr and "cannot create" not in agent.stderr,
                "no complaint about memory", agent.stderr[-2000:])
        ev = h.exceptions(box.events())
        h.check_equal(len(ev), 1, "the crash event was written", agent.stderr[-2000:])
        h.check_equal(event_names(ev[0])[:2], ["write_null", "level3"], "with its stack")
        h.check("written to" in agent.stderr, "the report is complete", agent.stderr[-2000:])
    finally:
        box.cleanup()


ADDR = r"0x[0-9a-f]+"
TESTS = {
    "oom": exhausted_memory,
    "null-fnptr": null_fnptr,
    "deep-stack": deep_stack_keeps_both_ends,
    "all-threads": all_threads,
    "all-threads-traced": all_threads_traced,
    "null": crash_case("null", CRASHER, "SIGSEGV", r"Segmentation fault \(SEGV_MAPERR\) at address 0x0",
                       "write_null"),
    "stack-overflow": crash_case("stack-overflow", CRASHER, "SIGSEGV",
                                 r"Segmentation fault \(SEGV_(MAPERR|ACCERR)\) at address " + ADDR, "recurse",
                                 compare=40, limit=40),
    "abort": crash_case("abort", CRASHER, "SIGABRT", r"Aborted \(SI_TKILL\)", "__pthread_kill_implementation"),
    "assert": crash_case("assert", CRASHER, "assertion",
                         r".*crasher\.c:\d+: check_config: Assertion `value > 10' failed\.",
                         "__pthread_kill_implementation"),
    "double-free": crash_case("double-free", CRASHER, "SIGABRT",
                              r"Aborted: free\(\): double free detected in tcache 2",
                              "__pthread_kill_implementation"),
    "divzero": crash_case("divzero", CRASHER, "SIGFPE",
                          r"Floating point exception \(FPE_INTDIV\) at address " + ADDR, "divide"),
    "illegal": crash_case("illegal", CRASHER, "SIGILL",
                          r"Illegal instruction \(ILL_ILLOPN\) at address " + ADDR, "do_illegal"),
    "sigbus": crash_case("sigbus", CRASHER, "SIGBUS", r"Bus error \(BUS_ADRERR\) at address " + ADDR,
                         "touch_mapping"),
    "thread": crash_case("thread", CRASHER, "SIGSEGV", r"Segmentation fault \(SEGV_MAPERR\) at address 0x0",
                         "write_null"),
    "in-handler": crash_case("in-handler", CRASHER, "SIGSEGV",
                             r"Segmentation fault \(SEGV_MAPERR\) at address 0x0", "write_null"),
    "two-threads": crash_case("two-threads", CRASHER, "SIGSEGV",
                              r"Segmentation fault \(SEGV_MAPERR\) at address 0x0", "write_null", gdb=False),
    "kill-self": crash_case("kill-self", CRASHER, "SIGSEGV", r"Segmentation fault \(SI_USER\)", "kill", gdb=False),
    "cxx-uncaught": crash_case("", CRASHER_CXX, "std::runtime_error", r"config value too small",
                               "__pthread_kill_implementation"),
    "cxx-uncaught-non-std": crash_case("throw-int", CRASHER_CXX, "NotAnException", r"uncaught exception",
                                       "__pthread_kill_implementation"),
}

if __name__ == "__main__":
    h.main(TESTS)
