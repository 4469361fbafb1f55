"""soak.py - the soak of tests/e2e/test_soak.py, for 10 minutes, against a
given build; prints its figures (programs run, events captured and arrived,
events per second, flushers and their peak resident memory, CPU, what was
left in the spool) and every failure it saw. A bench: it asserts nothing
and exits 0 whatever it found.

    python3 bench/soak.py [--build DIR] [--seconds 600] [--valgrind] [--seed N]

  --build DIR   the build to soak (default build/; build-asan for the
                ASan+UBSan flusher: set ASAN_OPTIONS=log_path=... to have
                its reports counted)
  --valgrind    every program runs under valgrind --trace-children=yes
                (memcheck watches the hosts and their flushers; crash and
                exit waits are raised, timeouts scaled by 20); memcheck
                errors in flushers and in the agent's code are counted
  --seed N      the same mix of programs again (timings still differ)
"""
import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("TATTLE_BUILD_DIR", os.path.join(HERE, "..", "build")))
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--valgrind", action="store_true")
    ap.add_argument("--seed", type=int)
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    # harness.py reads these when imported
    os.environ["TATTLE_BUILD_DIR"] = build
    os.environ["TATTLE_AGENT"] = os.path.join(build, "libtattle.so")
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "e2e"))
    import test_soak  # noqa: E402

    t0 = time.monotonic()
    s = test_soak.soak(args.seconds, seed=args.seed, valgrind=args.valgrind)
    print("== soak for %.0f s%s" % (args.seconds, " under valgrind" if args.valgrind else ""))
    test_soak.print_figures(s)
    print("  %-72s %.1f" % ("bench time (s)", time.monotonic() - t0))
    if not s.problems:
        print("failures: none")
        return
    print("failures (%d kinds):" % len(s.problems))
    for what, details in s.problems.items():
        print("  %s: %d" % (what, len(details)))
        for d in details[:8]:
            print("    " + str(d).replace("\n", "\n      "))
        if len(details) > 8:
            print("    ... and %d more" % (len(details) - 8))


if __name__ == "__main__":
    main()
