"""bench_delivery.py - delivery figures on loopback: crash-to-arrival latency,
events per second through the flusher to a PostHog stand-in, and bytes on
the wire per event with and without gzip. Prints medians; no thresholds.

    TATTLE_BUILD_DIR=build python3 bench/bench_delivery.py

The receiver here is lean (it gunzips and parses, but checks nothing) so
that it is not the bottleneck; the strict stand-in is for the tests.
"""
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "e2e"))
from posthog_standin import QuietHandler  # noqa: E402 (the stand-ins' request handler)

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")


def posthog_events(body):
    return json.loads(body)["batch"]


class Receiver:
    """Takes every request; parse(json body) gives its events (PostHog's
    batch by default; bench_sentry.py passes an envelope's one event)."""

    def __init__(self, parse=posthog_events):
        self.lock = threading.Lock()
        self.events = 0
        self.requests = []  # (arrival realtime, count, wire bytes, json bytes, first event's timestamp)
        self.first_crash_at = None
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                body = gzip.decompress(raw)
                batch = parse(body)
                with outer.lock:
                    outer.events += len(batch)
                    # Keep no parsed events: holding 100k of them makes
                    # Python's collector the bottleneck of the figure.
                    outer.requests.append((now, len(batch), len(raw), len(body), batch[0]["timestamp"]))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.events = 0
            self.requests = []

    def wait_events(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.events >= n:
                    return True
            time.sleep(0.001)
        return False


def env_for(rx, tmp, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "LD_PRELOAD"))}
    env.update(LD_PRELOAD=AGENT, POSTHOG_API_KEY="phc_bench", POSTHOG_HOST=rx.url,
               TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"), TATTLE_STDERR="0", XDG_STATE_HOME=tmp,
               TATTLE_SPOOL_MAX_MB="1024")  # 100k events are 67 MB of JSON: over the default bound
    env.update(extra)
    return env


def iso_to_epoch(ts):
    t = time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    return time.mktime(t) - time.timezone + int(ts[20:23]) / 1000.0


def crash_to_arrival(rx, tmp, reps=9, env=env_for):
    """From the crash (the event's timestamp, ms) to the request's arrival."""
    out = []
    for _ in range(reps):
        rx.reset()
        subprocess.run([os.path.join(BUILD, "tests", "crasher"), "null"], env=env(rx, tmp),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        rx.wait_events(1, 30)
        with rx.lock:
            arrived, _, _, _, timestamp = rx.requests[0]
        out.append((arrived - iso_to_epoch(timestamp)) * 1000.0)
    return statistics.median(out), min(out), max(out)


def throughput(rx, tmp, n=100000, reps=3, env=env_for, kind=()):
    """Events per second, flood.c to the receiver; kind ("exceptions",) picks
    what flood.c captures."""
    rates = []
    for _ in range(reps):
        rx.reset()
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(BUILD, "bench", "flood"), str(n)] + list(kind), env=env(rx, tmp),
                             stdout=subprocess.PIPE, text=True)
        ok = rx.wait_events(n, 300)
        elapsed = time.monotonic() - t0
        p.wait()
        if not ok:
            return None
        rates.append(n / elapsed)
    return statistics.median(rates)


def bytes_per_event(rx):
    with rx.lock:
        reqs = list(rx.requests)
    count = sum(r[1] for r in reqs)
    wire = sum(r[2] for r in reqs)
    body = sum(r[3] for r in reqs)
    return wire / count, body / count


def main():
    rx = Receiver()
    tmp = tempfile.mkdtemp(prefix="tattle-bench-")
    try:
        med, lo, hi = crash_to_arrival(rx, tmp)
        crash_wire, crash_json = bytes_per_event(rx)
        rate = throughput(rx, tmp)
        ev_wire, ev_json = bytes_per_event(rx)
        print("%-58s %s" % ("crash-to-arrival on loopback (median of 9, min-max)",
                            "%.1f ms (%.1f-%.1f)" % (med, lo, hi)))
        print("%-58s %s" % ("events/s through the flusher to the receiver (median of 3)",
                            "%.0f" % rate if rate else "did not finish"))
        print("%-58s %s" % ("bytes per custom event (5 tags): gzip on the wire / JSON", "%.0f / %.0f" % (ev_wire, ev_json)))
        print("%-58s %s" % ("bytes per crash event: gzip on the wire / JSON", "%.0f / %.0f" % (crash_wire, crash_json)))
    finally:
        rx.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
