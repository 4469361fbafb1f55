"""run_all.py - run every benchmark, show its output, then one table of the
figures next to their budgets. scripts/bench builds and calls this.

    TATTLE_BUILD_DIR=build python3 bench/run_all.py

Figures depend on the machine: compare runs on one machine only. Nothing
here fails; the budgets are for a reader to check.
"""
import os
import platform
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(HERE, "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")


def run(title, argv, env=None):
    print("== " + title, flush=True)
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True).stdout
    sys.stdout.write(out)
    return out


def grab(pattern, text, default="?"):
    m = re.search(pattern, text, re.M)
    return m.group(1) if m else default


def machine():
    with open("/proc/cpuinfo") as f:
        cpu = grab(r"^model name\s*:\s*(.*)$", f.read())
    return "%s, %d CPUs, Linux %s" % (cpu, os.cpu_count(), platform.release())


def main():
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
    tmp = tempfile.mkdtemp(prefix="tattle-bench-")
    startup = run("startup (bench/bench_startup.c)",
                  [os.path.join(BUILD, "bench", "bench_startup"), AGENT,
                   os.path.join(BUILD, "bench", "libnoop_preload.so"),
                   os.path.join(BUILD, "bench", "libhandler_preload.so"), "/bin/true",
                   os.path.join(BUILD, "bench", "hello")], env=base)
    context = run("capture and contexts (bench/bench_context.c)", [os.path.join(BUILD, "bench", "bench_context")],
                  env=dict(base, LD_PRELOAD=AGENT, TATTLE_FILE=os.path.join(tmp, "events.jsonl")))
    symbolize = run("unwinding and symbolizing (bench/bench_symbolize.c)",
                    [os.path.join(BUILD, "bench", "bench_symbolize")], env=base)
    delivery = run("delivery on loopback (bench/bench_delivery.py, bench/flood.c)",
                   [sys.executable, os.path.join(HERE, "bench_delivery.py")], env=dict(base, TATTLE_BUILD_DIR=BUILD))
    memory = run("memory (bench/bench_memory.py)", [sys.executable, os.path.join(HERE, "bench_memory.py")],
                 env=dict(base, TATTLE_BUILD_DIR=BUILD))
    fleet = run("a fleet (bench/bench_fleet.py 200)", [sys.executable, os.path.join(HERE, "bench_fleet.py"), "200"],
                env=dict(base, TATTLE_BUILD_DIR=BUILD))
    sentry = run("delivery to Sentry on loopback (bench/bench_sentry.py)",
                 [sys.executable, os.path.join(HERE, "bench_sentry.py")], env=dict(base, TATTLE_BUILD_DIR=BUILD))
    threads = run("every thread at a crash (bench/bench_threads.py)",
                  [sys.executable, os.path.join(HERE, "bench_threads.py")], env=dict(base, TATTLE_BUILD_DIR=BUILD))

    true_part = startup.split("hello")[0]
    hello_part = startup.split("hello")[-1]
    floor = r"^  agent\s+\d+ us per run.*?preload \(rounds.*?\)\s+(\S+)% vs handler-only preload \(rounds: (\S+) to (\S+)\)"

    def vs_floor(part):
        m = re.search(floor, part, re.M)
        return "%s%% (%s..%s)" % m.groups() if m else "?"

    rows = [
        ("startup, /bin/true, vs handler-only preload", vs_floor(true_part), "<= 1%"),
        ("startup, small C program, vs handler-only preload", vs_floor(hello_part), "<= 1%"),
        ("startup, /bin/true, vs do-nothing preload", grab(r"^  agent\s+\d+ us per run\s+(\S+)%", true_part) + "%",
         "<= 5%"),
        ("  handler-only preload, vs do-nothing preload",
         grab(r"handler-only preload\s+\d+ us per run\s+(\S+)%", true_part) + "%", ""),
        ("  agent, TATTLE_DISABLE=1, vs do-nothing preload",
         grab(r"TATTLE_DISABLE=1\s+\d+ us per run\s+(\S+)%", true_part) + "%", ""),
        ("startup, small C program, vs do-nothing preload",
         grab(r"^  agent\s+\d+ us per run\s+(\S+)%", hello_part) + "%", "<= 5%"),
        ("capture, 5 tags, 1 thread", grab(r"1 thread \(bursts of \d+\)\s+(\d+ ns)", context), "<= 150 ns"),
        ("capture, 5 tags, 4 threads at once, per call", grab(r"4 threads at once.*?(\d+ ns)", context), "scales"),
        ("tight capture loop: share reaching the sink", grab(r"reached the sink: ([\d.]+%)", context),
         "drops counted"),
        ("context push + tag + pop", grab(r"push \+ tag \+ pop\s+(\d+ ns)", context), "<= 50 ns"),
        ("crash-to-arrival on loopback", grab(r"crash-to-arrival.*?\)\s+([\d.]+ ms)", delivery), "< 100 ms"),
        ("unwind + symbolize a 30-frame crash", grab(r"in all, as the flusher does per crash\s+([\d.]+ ms)", symbolize),
         ""),
        ("events/s through the flusher", grab(r"events/s.*?\)\s+(\d+)", delivery), ">= 100,000"),
        ("bytes per custom event, gzip / JSON", grab(r"custom event.*?JSON\s+(\d+ / \d+)", delivery), ""),
        ("bytes per crash event, gzip / JSON", grab(r"crash event.*?JSON\s+(\d+ / \d+)", delivery), ""),
        ("RSS added to a host, no capture", grab(r"after\s+0 captures:.*?([+-]\d+ KiB) with the agent", memory),
         "<= 2 MiB"),
        ("RSS added to a host, after 1000 captures",
         grab(r"after 1000 captures:.*?([+-]\d+ KiB) with the agent", memory), "<= 2 MiB"),
        ("flusher RSS idle (1 event, local file)", grab(r"after\s+1 captures:.*flusher (\d+ KiB)", memory),
         "reported"),
        ("flusher RSS after 1000 events", grab(r"after 1000 captures:.*flusher (\d+ KiB)", memory), "reported"),
        ("flusher RSS peak after a crash", grab(r"peak (\d+ KiB)", memory), ""),
        ("startup, /bin/true, batch waiting, server down", grab(r"^  agent\s+\d+ us per run\s+(\S+)%", fleet) + "%",
         "<= 5%"),
        ("200 processes capturing: tattle processes", grab(r"tattle processes at peak\s+(\d+)", fleet), "<= 2"),
        ("200 processes capturing: their RSS", grab(r"resident memory at peak\s+([\d.]+ MiB)", fleet), "<= 40 MB"),
        ("200 crashes at once: all reaped after", grab(r"all reaped after\s+([\d.]+ s)", fleet), "<= 2 s"),
        ("Sentry: crash-to-arrival on loopback", grab(r"Sentry: crash-to-arrival.*?\)\s+([\d.]+ ms)", sentry),
         "< 100 ms"),
        ("Sentry: handled exceptions/s", grab(r"Sentry: handled exceptions/s.*?\)\s+(\d+)", sentry),
         "one envelope each"),
        ("10-thread crash to report, every thread", grab(r"all 10 threads.*crash to report: ([\d.]+ ms)", threads),
         "< 100 ms"),
    ]
    print("\n== summary on %s" % machine())
    width = max(len(r[0]) for r in rows)
    print("%-*s  %-14s %s" % (width, "figure", "measured", "budget"))
    for name, value, budget in rows:
        print("%-*s  %-14s %s" % (width, name, value, budget))


if __name__ == "__main__":
    main()
