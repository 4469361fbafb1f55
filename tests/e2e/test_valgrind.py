"""test_valgrind.py - the crash matrix under valgrind's memcheck.

Each crash runs under `valgrind --trace-children=yes`, so memcheck watches
the host with the agent's handler inside it and the flusher it starts
(unwinding, symbolizing, JSON). The host must die as it does without
valgrind, one $exception event must arrive, and no memcheck error may
involve the agent: none in the flusher at all, none in the host with a
frame in libtattle.so. The program's own error (the invalid write that is
the crash) is expected. Not here: a double free (valgrind's allocator
reports it and carries on), a stack overflow (valgrind's own stack) and
an illegal instruction (valgrind's decoder). Usage: test_valgrind.py [CASE...]
"""
import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness as h  # noqa: E402

CRASHER = os.path.join(h.BUILD, "tests", "crasher")
CRASHER_CXX = os.path.join(h.BUILD, "tests", "crasher_cxx")
def crash_case(exe, verb, type_):
    def test():
        if not shutil.which("valgrind"):
            raise h.Skip("valgrind is not installed (Debian package valgrind)")
        if h.sanitized(os.path.join(h.BUILD, "tattle-flusher")):
            raise h.Skip("a sanitizer build: valgrind cannot run sanitized code")
        box = h.Sandbox("vg-" + verb)
        try:
            plain = h.run([exe, verb], env=box.base_env(), cwd=box.dir)
            logs = os.path.join(box.dir, "vg.%p.log")
            argv = ["valgrind", "-q", "--trace-children=yes", "--log-file=" + logs, exe, verb]
            # Memcheck makes the flusher many times slower: give the report
            # the longest wait there is, as a user under valgrind would.
            agent = h.run(argv, env=box.agent_env(TATTLE_CRASH_TIMEOUT_MS=60000), cwd=box.dir, timeout=180)
            h.check_equal(agent.signal, plain.signal, "the host dies by the same signal under valgrind",
                          agent.stderr[-2000:])
            events = h.exceptions(box.events())
            h.check_equal(len(events), 1, "one $exception event")
            h.check_equal(events[0]["properties"]["$exception_list"][0]["type"], type_, "the exception type")
            host_pid = events[0]["properties"]["pid"]
            for path in glob.glob(os.path.join(box.dir, "vg.*.log")):
                pid = int(path.split(".")[-2])
                with open(path) as f:
                    errors = h.memcheck_errors(f.read())
                if pid != host_pid:
                    h.check_equal(errors, [], "no memcheck error in the flusher (pid %d)" % pid)
                else:
                    ours = [e for e in errors if any("libtattle" in line for line in e)]
                    h.check_equal(ours, [], "no memcheck error in the agent's code in the host")
        finally:
            box.cleanup()
    return test


TESTS = {
    "null": crash_case(CRASHER, "null", "SIGSEGV"),
    "abort": crash_case(CRASHER, "abort", "SIGABRT"),
    "assert": crash_case(CRASHER, "assert", "assertion"),
    "divzero": crash_case(CRASHER, "divzero", "SIGFPE"),
    "sigbus": crash_case(CRASHER, "sigbus", "SIGBUS"),
    "thread": crash_case(CRASHER, "thread", "SIGSEGV"),
    "in-handler": crash_case(CRASHER, "in-handler", "SIGSEGV"),
    "cxx-uncaught": crash_case(CRASHER_CXX, "throw", "std::runtime_error"),
}

if __name__ == "__main__":
    h.main(TESTS)
