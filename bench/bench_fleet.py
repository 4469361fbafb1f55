"""bench_fleet.py - what the agent costs a machine that runs it everywhere:
a pending spool's cost to every starting process, a storm of capturing
processes, a storm of crashes. Prints figures; asserts nothing.

    TATTLE_BUILD_DIR=build python3 bench/bench_fleet.py [PROCESSES]

- pending spool: bench_startup's interleaved rounds of /bin/true under a
  do-nothing preload and under the agent, with a batch waiting in the
  agent's spool and its server down (connection refused on 127.0.0.1);
- capture storm: PROCESSES (default 200) processes each capture one event
  and wait until all have; tattle's processes and their resident memory are
  sampled meanwhile; then all exit and the events are counted at a receiver
  on 127.0.0.1;
- crash storm: PROCESSES crash at once; the time until all are reaped.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_delivery import Receiver  # noqa: E402

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")
EMITTER = os.path.join(BUILD, "tests", "emitter")
CRASHER = os.path.join(BUILD, "tests", "crasher")


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
    env.update({k: str(v) for k, v in extra.items()})
    return env


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def tattle_processes():
    """(count, total VmRSS KiB) of tattle-flusher processes now."""
    n = rss = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "tattle-flusher":
                    continue
            with open("/proc/%s/status" % pid) as f:
                status = f.read()
            if "\nState:\tZ" in status:  # done: a zombie whose parent does not reap
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return n, rss


def wait_no_flushers(timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and tattle_processes()[0]:
        time.sleep(0.1)


def pending_spool(tmp):
    env = base_env(POSTHOG_API_KEY="phc_bench", POSTHOG_HOST="http://127.0.0.1:%d" % closed_port(),
                   TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"), TATTLE_STDERR=0, XDG_STATE_HOME=tmp)
    subprocess.run([EMITTER, "1", "5", "exit"], env=dict(env, LD_PRELOAD=AGENT, TATTLE_LINGER_MS="0"),
                   stdout=subprocess.DEVNULL, check=True)
    wait_no_flushers()
    out = subprocess.run([os.path.join(BUILD, "bench", "bench_startup"), AGENT,
                          os.path.join(BUILD, "bench", "libnoop_preload.so"),
                          os.path.join(BUILD, "bench", "libhandler_preload.so"), "/bin/true"],
                         env=env, capture_output=True, text=True, check=True).stdout
    print("/bin/true with a batch waiting and the server down:")
    for line in out.splitlines()[1:]:
        print("  " + line.strip())
    wait_no_flushers()


def capture_storm(tmp, n):
    rx = Receiver()
    env = base_env(LD_PRELOAD=AGENT, POSTHOG_API_KEY="phc_bench", POSTHOG_HOST=rx.url, TATTLE_STDERR=0,
                   TATTLE_SPOOL_DIR=os.path.join(tmp, "storm-spool"), XDG_STATE_HOME=tmp, TATTLE_LINGER_MS=2000)
    t0 = time.monotonic()
    procs = [subprocess.Popen([EMITTER, "1", "1", "stdin"], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) for _ in range(n)]
    peak_n = peak_rss = 0
    for p in procs:
        p.stdout.readline()  # captured
        p.stdout.readline()  # ready
        cnt, rss = tattle_processes()
        peak_n, peak_rss = max(peak_n, cnt), max(peak_rss, rss)
    for _ in range(10):
        cnt, rss = tattle_processes()
        peak_n, peak_rss = max(peak_n, cnt), max(peak_rss, rss)
        time.sleep(0.05)
    for p in procs:
        p.stdin.close()
    for p in procs:
        p.wait()
    arrived = rx.wait_events(n, timeout=60)
    elapsed = time.monotonic() - t0
    print("%d processes capturing one event each, all alive at once:" % n)
    print("  tattle processes at peak            %d" % peak_n)
    print("  their resident memory at peak       %.1f MiB" % (peak_rss / 1024.0))
    print("  events arrived                      %d of %d%s" % (rx.events, n, "" if arrived else " (timed out)"))
    print("  end to end                          %.2f s, %.0f events/s" % (elapsed, rx.events / elapsed))
    wait_no_flushers()


def crash_storm(tmp, n):
    env = base_env(LD_PRELOAD=AGENT, TATTLE_STDERR=0, TATTLE_FILE=os.path.join(tmp, "crashes.jsonl"))
    t0 = time.monotonic()
    procs = [subprocess.Popen([CRASHER, "null"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              cwd=tmp, preexec_fn=lambda: __import__("resource").setrlimit(
                                  __import__("resource").RLIMIT_CORE, (0, 0))) for _ in range(n)]
    for p in procs:
        p.wait()
    reaped = time.monotonic() - t0
    peak = tattle_processes()
    with open(os.path.join(tmp, "crashes.jsonl")) as f:
        events = sum(1 for _ in f)
    print("%d processes crashing at once:" % n)
    print("  all reaped after                    %.2f s" % reaped)
    print("  crash events written                %d (%.0f crashes reported per second)" % (events, events / reaped))
    print("  tattle processes right after        %d" % peak[0])
    wait_no_flushers()


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    tmp = tempfile.mkdtemp(prefix="tattle-fleet-")
    pending_spool(tmp)
    capture_storm(tmp, n)
    crash_storm(tmp, n)


if __name__ == "__main__":
    main()
