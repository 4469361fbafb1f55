"""test_compat.py - do no harm: real programs, plain and under the agent.

Each case runs a program without tattle and with it and requires the same
exit status or death, the same stdout, the same stderr (apart from the
agent's own report lines, which start with "tattle: " or "  #"), and the
right number of $exception events: none where nothing crashed, one where
something did. Programs that use fatal signals for their own work (a JVM's
implicit null checks, V8's WebAssembly traps, CPython's faulthandler, a C
program's own handlers) must keep working. A runtime that is not installed
is skipped with its reason printed (exit code 77), never passed silently.
"""
import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, Sandbox, Skip, check, check_equal, exceptions, main, run  # noqa: E402

OWN = os.path.join(BUILD, "tests", "own_handlers")


def need(tool, package):
    path = shutil.which(tool)
    if not path:
        raise Skip("%s is not installed (Debian package %s)" % (tool, package))
    return path


def strip_agent_lines(text):
    return "".join(line for line in text.splitlines(True)
                   if not line.startswith(("tattle: ", "  #")) and line != "\n")


def compare(argv, crashes=0, cwd=None, stdin=None, same_stderr=True, env_extra=None):
    """Run argv plain and under the agent; check they agree. Returns both."""
    sb = Sandbox("compat")
    try:
        cwd = cwd or sb.dir
        plain_env = sb.base_env()
        plain_env.update(env_extra or {})
        agent_env = sb.agent_env(**(env_extra or {}))
        p = run(argv, env=plain_env, cwd=cwd, timeout=120)
        a = run(argv, env=agent_env, cwd=cwd, timeout=120)
        check_equal(a.describe(), p.describe(), "%s ends the same way" % argv[0], a.stderr[-2000:])
        check_equal(a.stdout, p.stdout, "%s prints the same" % argv[0])
        if same_stderr:
            check_equal(strip_agent_lines(a.stderr), p.stderr, "%s's own stderr is unchanged" % argv[0])
        events = exceptions(sb.events())
        check_equal(len(events), crashes, "%d $exception event(s)" % crashes,
                    [e["properties"]["$exception_list"][0]["type"] for e in events])
        return p, a, events
    finally:
        sb.cleanup()


def frames_of(event):
    return [f.get("function") for f in event["properties"]["$exception_list"][0]["stacktrace"]["frames"]]


# -- C programs with their own handlers

def own_handlers_answer_queries_with_what_the_host_set():
    compare([OWN, "query"])


def own_handler_recovering_with_siglongjmp_is_no_crash():
    compare([OWN, "longjmp"])


def own_handler_fixing_the_fault_and_returning_is_no_crash():
    compare([OWN, "fix"])


def own_handler_runs_with_its_own_mask():
    compare([OWN, "mask"])
    compare([OWN, "nodefer"])


def own_crash_handler_that_reraises_is_reported_once():
    _, a, ev = compare([OWN, "reraise"], crashes=1)
    check_equal(a.signal, signal.SIGSEGV, "dies of SIGSEGV")
    check_equal(ev[0]["properties"]["$exception_list"][0]["type"], "SIGSEGV", "reported as the fault")
    check("write_null_here" in frames_of(ev[0]), "with the stack of the original fault", frames_of(ev[0]))


def own_resethand_handler_that_returns_is_reported_once():
    _, a, ev = compare([OWN, "resethand"], crashes=1)
    check("write_null_here" in frames_of(ev[0]), "with the stack of the original fault", frames_of(ev[0]))


def own_crash_handler_that_aborts_is_reported_once():
    _, a, ev = compare([OWN, "abort"], crashes=1)
    check_equal(a.signal, signal.SIGABRT, "dies of SIGABRT")
    check("write_null_here" in frames_of(ev[0]), "with the stack of the original fault", frames_of(ev[0]))


# -- real programs

def python_plain():
    py = need("python3", "python3")
    compare([py, "-c", "import sys; print(sum(range(1000)), sys.version_info[0])"])


def python_faulthandler():
    py = need("python3", "python3")
    compare([py, "-X", "faulthandler", "-c", "import faulthandler; print(faulthandler.is_enabled())"])


def python_multiprocessing_fork():
    py = need("python3", "python3")
    code = ("import multiprocessing as mp\n"
            "def sq(x): return x * x\n"
            "if __name__ == '__main__':\n"
            "    mp.set_start_method('fork')\n"
            "    with mp.Pool(3) as p: print(sum(p.map(sq, range(100))))\n")
    compare([py, "-c", code])


def python_subprocess():
    py = need("python3", "python3")
    compare([py, "-c", "import subprocess; print(subprocess.run(['echo', 'hi'], capture_output=True).stdout)"])


def python_ctypes_crash_keeps_faulthandler():
    py = need("python3", "python3")
    p, a, ev = compare([py, "-X", "faulthandler", "-c", "import ctypes; ctypes.string_at(0)"], crashes=1,
                       same_stderr=False)
    check("Fatal Python error: Segmentation fault" in a.stderr, "faulthandler's traceback is still printed",
          a.stderr[-1500:])
    check_equal(strip_agent_lines(a.stderr).count("Fatal Python error"), p.stderr.count("Fatal Python error"),
                "printed as often as without the agent")
    check_equal(ev[0]["properties"]["$exception_list"][0]["type"], "SIGSEGV", "one SIGSEGV event")


def java_version():
    java = need("java", "openjdk-17-jdk-headless")
    compare([java, "-version"])


JAVA_NPE = """
public class NpeLoop {
    static int len(String s) { return s.length(); }
    public static void main(String[] a) {
        int npes = 0; long sum = 0;
        for (int i = 0; i < 200000; i++) {
            try { sum += len((i % 1000 == 0) ? null : "abc"); } catch (NullPointerException e) { npes++; }
        }
        System.out.println(npes + " " + sum);
    }
}
"""

JAVA_UNSAFE = """
public class UnsafeCrash {
    public static void main(String[] a) throws Exception {
        java.lang.reflect.Field f = sun.misc.Unsafe.class.getDeclaredField("theUnsafe");
        f.setAccessible(true);
        sun.misc.Unsafe u = (sun.misc.Unsafe) f.get(null);
        System.out.println("crashing");
        u.putAddress(0, 42);
    }
}
"""


def java_source(name, text):
    java = need("java", "openjdk-17-jdk-headless")
    d = tempfile.mkdtemp(prefix="tattle-java-")
    path = os.path.join(d, name + ".java")
    with open(path, "w") as f:
        f.write(text)
    return java, d, path


def java_implicit_null_checks_in_jit_code():
    java, d, path = java_source("NpeLoop", JAVA_NPE)
    try:
        p, _, _ = compare([java, "-Xshare:auto", path], cwd=d)
        check_equal(p.stdout, "200 599400\n", "the loop ran")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def java_unsafe_crash_keeps_hs_err():
    java, d, path = java_source("UnsafeCrash", JAVA_UNSAFE)
    try:
        sb = Sandbox("jvm")
        try:
            # The JVM's default: write hs_err, then abort() (no core: ulimit -c 0).
            nocore = ["sh", "-c", 'ulimit -c 0; exec "$@"', "sh", java, "-XX:ErrorFile=%s/hs_err_%%p.log" % d]
            p = run(nocore + [path], env=sb.base_env(), cwd=d, timeout=120)
            plain_logs = [f for f in os.listdir(d) if f.startswith("hs_err")]
            for f in plain_logs:
                os.unlink(os.path.join(d, f))
            a = run(nocore + [path], env=sb.agent_env(), cwd=d, timeout=120)
            agent_logs = [f for f in os.listdir(d) if f.startswith("hs_err")]
            check_equal(a.describe(), p.describe(), "the JVM dies the same way", a.stderr[-1500:])
            hide = lambda t: re.sub(r"(pid=|tid=|pc=|hs_err_)[0-9a-fx]+", r"\1N", t)
            check_equal(hide(a.stdout), hide(p.stdout), "the JVM prints the same (pids and addresses aside)")
            check_equal((len(plain_logs), len(agent_logs)), (1, 1), "the hs_err file is written with and without")
            ev = exceptions(sb.events())
            check_equal(len(ev), 1, "one $exception event")
            check_equal(ev[0]["properties"]["$exception_list"][0]["type"], "SIGSEGV", "reported as the fault")
        finally:
            sb.cleanup()
    finally:
        shutil.rmtree(d, ignore_errors=True)


NODE_WASM = r"""
const bytes = new Uint8Array([0,97,115,109,1,0,0,0, 1,6,1,96,1,127,1,127, 3,2,1,0, 5,3,1,0,1,
  7,8,1,4,108,111,97,100,0,0, 10,9,1,7,0,32,0,40,2,0,11]);
const m = new WebAssembly.Instance(new WebAssembly.Module(bytes));
let traps = 0;
for (let i = 0; i < 2000; i++) { try { m.exports.load(70000 + i); } catch (e) { traps++; } }
console.log('traps', traps, m.exports.load(0));
"""


def node_wasm_out_of_bounds_traps():
    node = need("node", "nodejs")
    p, _, _ = compare([node, "-e", NODE_WASM])
    check_equal(p.stdout, "traps 2000 0\n", "2000 traps caught")


def perl_plain():
    perl = need("perl", "perl")
    compare([perl, "-e", 'my %h = map { $_ => $_ * 2 } 1..100; print scalar(keys %h), "\\n";'])


def tclsh_plain():
    tclsh = need("tclsh", "tcl")
    sb = Sandbox("tcl")
    script = os.path.join(sb.dir, "t.tcl")
    with open(script, "w") as f:
        f.write('puts [expr {6 * 7}]\n')
    try:
        compare([tclsh, script])
    finally:
        sb.cleanup()


def bash_pipeline_sigpipe():
    bash = need("bash", "bash")
    p, _, _ = compare([bash, "-c", "yes | head -n 2; echo ${PIPESTATUS[@]}"])
    check_equal(p.stdout, "y\ny\n141 0\n", "yes died of SIGPIPE, as usual")


def timeout_reraising_its_childs_signal_is_one_event():
    """timeout(1) dies by the signal its child died of: one crash, one event,
    the child's, and the wrapper still dies as it does without the agent."""
    timeout = need("timeout", "coreutils")
    crasher = os.path.join(BUILD, "tests", "crasher")
    _, a, events = compare([timeout, "30", crasher, "null"], crashes=1)
    check_equal(events[0]["properties"].get("executable"), crasher, "the event is the crasher's, not timeout's")
    check_equal(a.stderr.count("tattle: SIGSEGV"), 1, "one report")


def git_commands():
    git = need("git", "git")
    sb = Sandbox("git")
    try:
        compare([git, "--version"])
        compare([git, "-C", sb.dir, "init", "-q"])
        compare([git, "-C", sb.dir, "status", "--porcelain"])
        compare([git, "-C", sb.dir, "log"])  # exits 128: no commits yet
    finally:
        sb.cleanup()


TESTS = {f.__name__: f for f in [
    own_handlers_answer_queries_with_what_the_host_set, own_handler_recovering_with_siglongjmp_is_no_crash,
    own_handler_fixing_the_fault_and_returning_is_no_crash, own_handler_runs_with_its_own_mask,
    own_crash_handler_that_reraises_is_reported_once, own_resethand_handler_that_returns_is_reported_once,
    own_crash_handler_that_aborts_is_reported_once, python_plain, python_faulthandler, python_multiprocessing_fork,
    python_subprocess, python_ctypes_crash_keeps_faulthandler, java_version, java_implicit_null_checks_in_jit_code,
    java_unsafe_crash_keeps_hs_err, node_wasm_out_of_bounds_traps, perl_plain, tclsh_plain, bash_pipeline_sigpipe,
    git_commands, timeout_reraising_its_childs_signal_is_one_event]}


if __name__ == "__main__":
    main(TESTS)
