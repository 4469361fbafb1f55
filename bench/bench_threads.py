"""bench_threads.py - what reading every thread at a crash costs: a
10-thread process (main and nine waiting threads) crashes, plain, under the
agent with TATTLE_ALL_THREADS=0, and under the agent with every thread read,
its events going to a PostHog receiver on 127.0.0.1. Prints the median time
from start to reaped over interleaved rounds, and the agent's part of it
(minus the plain run's) as the crash-to-report time. Asserts nothing.

    TATTLE_BUILD_DIR=build python3 bench/bench_threads.py [ROUNDS]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_delivery import Receiver  # noqa: E402

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")
CRASHER = os.path.join(BUILD, "tests", "crasher")


def run_once(env, cwd):
    t0 = time.monotonic()
    subprocess.run([CRASHER, "all-threads"], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   preexec_fn=lambda: __import__("resource").setrlimit(__import__("resource").RLIMIT_CORE, (0, 0)))
    return time.monotonic() - t0


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    tmp = tempfile.mkdtemp(prefix="tattle-bench-threads-")
    receiver = Receiver()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
    base["CRASHER_EXTRA_THREADS"] = "5"  # 4 parked + 5 sleepers + main = 10 threads
    agent = dict(base, LD_PRELOAD=AGENT, TATTLE_STDERR="0", POSTHOG_API_KEY="phc_bench_threads",
                 POSTHOG_HOST=receiver.url, TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"), XDG_STATE_HOME=tmp)
    modes = [("plain", base), ("agent, crashing thread only", dict(agent, TATTLE_ALL_THREADS="0")),
             ("agent, all 10 threads", dict(agent, TATTLE_ALL_THREADS="1"))]
    times = {name: [] for name, _ in modes}
    for _ in range(rounds):
        for name, env in modes:
            times[name].append(run_once(env, tmp))
    plain = statistics.median(times["plain"])
    print("a 10-thread process crashing, %d interleaved rounds (median start to reaped):" % rounds)
    for name, _ in modes:
        med = statistics.median(times[name])
        extra = "" if name == "plain" else "   crash to report: %.1f ms" % ((med - plain) * 1000)
        print("  %-30s %7.1f ms%s" % (name, med * 1000, extra))
    receiver.wait_events(2 * rounds, timeout=30)
    print("  events at the receiver          %d of %d" % (receiver.events, 2 * rounds))
    receiver.server.shutdown()


if __name__ == "__main__":
    main()
