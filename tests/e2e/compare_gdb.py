"""compare_gdb.py - print, for each crash kind, the first frames tattle
reports next to gdb's `bt` for the same crash (plain run, no agent).
Usage: TATTLE_BUILD_DIR=build python3 tests/e2e/compare_gdb.py [N]"""
import sys

import harness as h
import test_crash as tc

CASES = [("null", tc.CRASHER), ("stack-overflow", tc.CRASHER), ("abort", tc.CRASHER), ("assert", tc.CRASHER),
         ("double-free", tc.CRASHER), ("divzero", tc.CRASHER), ("illegal", tc.CRASHER), ("sigbus", tc.CRASHER),
         ("thread", tc.CRASHER), ("in-handler", tc.CRASHER), ("", tc.CRASHER_CXX)]


def short(path):
    return path.rsplit("/", 1)[-1] if path else "?"


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 6
    for verb, exe in CASES:
        argv = [exe] + ([verb] if verb else [])
        box = h.Sandbox("cmp")
        try:
            h.run(argv, env=box.agent_env(), cwd=box.dir)
            ev = h.exceptions(box.events())[0]
            ours = h.frames_innermost_first(ev)[:n]
            gdb = h.gdb_backtrace(argv, n)[:n]
        finally:
            box.cleanup()
        ex = ev["properties"]["$exception_list"][0]
        print("%s: %s: %s" % (verb or "cxx-uncaught", ex["type"], ex["value"]))
        for i in range(max(len(ours), len(gdb))):
            o = ours[i] if i < len(ours) else {}
            g = gdb[i] if i < len(gdb) else (None, None, None)
            left = "%s %s:%s" % (h.normalize_function(o.get("function")), short(o.get("filename")), o.get("lineno"))
            right = "%s %s:%s" % (g[0], short(g[1]), g[2]) if g[0] else ""
            print("  #%-2d %-55s | %s" % (i, left if o else "", right))
        print()


if __name__ == "__main__":
    main()
