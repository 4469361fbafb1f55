"""bench_memory.py - resident memory: what the agent adds to a host, and
what its flusher process uses. Prints medians of several runs.

    TATTLE_BUILD_DIR=build python3 bench/bench_memory.py

The host is tests' emitter: it captures N events (0: none), prints
"ready" and waits on stdin, so its memory can be read while it lives.
It runs under the do-nothing preloaded object and under the agent; the
difference in VmRSS is the agent's share (its code and data pages, the
ring it shares with the flusher as far as it was touched). The flusher
is read after it has sent events, and at its peak (VmHWM) after a crash
it unwound and symbolized, lingering for a server that does not answer.
"""
import os
import statistics
import subprocess
import tempfile
import time

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")
NOOP = os.path.join(BUILD, "bench", "libnoop_preload.so")
EMITTER = os.path.join(BUILD, "tests", "emitter")
CRASHER = os.path.join(BUILD, "tests", "crasher")
RUNS = 5


def status_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def env_for(preload, tmp, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
    env.update({"LD_PRELOAD": preload, "TATTLE_FILE": os.path.join(tmp, "events.jsonl"),
                "XDG_STATE_HOME": tmp})
    env.update(extra)
    return env


def find_flusher(mark, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/comm" % pid) as f:
                    if f.read().strip() != "tattle-flusher":
                        continue
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if ("TATTLE_FILE=%s/events.jsonl" % mark).encode() in f.read().split(b"\0"):
                        return int(pid)
            except OSError:
                continue
        time.sleep(0.02)
    return None


def host_rss(preload, events):
    """(host VmRSS KiB, flusher VmRSS KiB or None) with the host waiting."""
    with tempfile.TemporaryDirectory() as tmp:
        p = subprocess.Popen([EMITTER, "0", str(events), "stdin"], env=env_for(preload, tmp),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        p.stdout.readline()  # captured ...
        p.stdout.readline()  # ready
        time.sleep(0.2)
        rss = status_kib(p.pid, "VmRSS")
        flusher = find_flusher(tmp, timeout=1.0) if preload == AGENT and events else None
        flusher_rss = status_kib(flusher, "VmRSS") if flusher else None
        p.communicate(b"done\n")
        return rss, flusher_rss


def flusher_peak_after_crash():
    with tempfile.TemporaryDirectory() as tmp:
        env = env_for(AGENT, tmp, POSTHOG_API_KEY="phc_bench", POSTHOG_HOST="http://127.0.0.1:9",
                      TATTLE_LINGER_MS="3000", TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"))
        subprocess.run([CRASHER, "null"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pid = find_flusher(tmp)
        if not pid:
            return None, None
        time.sleep(0.3)
        return status_kib(pid, "VmHWM"), status_kib(pid, "VmRSS")


def main():
    rows = []
    for events in (0, 1, 1000):
        noop = [host_rss(NOOP, events)[0] for _ in range(RUNS)]
        agent = [host_rss(AGENT, events) for _ in range(RUNS)]
        added = statistics.median(a[0] for a in agent) - statistics.median(noop)
        rows.append((events, statistics.median(noop), added, [a[1] for a in agent if a[1]]))
    print("resident memory (VmRSS), median of %d runs:" % RUNS)
    for events, base, added, flusher in rows:
        line = "  host after %4d captures: %6d KiB with a do-nothing preload, %+5d KiB with the agent" % (
            events, base, added)
        if flusher:
            line += "; flusher %d KiB" % statistics.median(flusher)
        print(line)
    peaks = [flusher_peak_after_crash() for _ in range(3)]
    peaks = [p for p in peaks if p[0]]
    if peaks:
        print("  flusher after a crash (libdw used, libcurl opened for a server): peak %d KiB, then %d KiB" % (
            statistics.median(p[0] for p in peaks), statistics.median(p[1] for p in peaks)))


if __name__ == "__main__":
    main()
