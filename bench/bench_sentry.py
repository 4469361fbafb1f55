"""bench_sentry.py - delivery figures for SENTRY_DSN on loopback, beside
bench_delivery.py's for PostHog: crash-to-arrival latency (the crash's
timestamp to the envelope's arrival) and handled exceptions per second
through the flusher to a receiver that takes each envelope (gunzips and
parses it). Prints figures; asserts nothing.

    TATTLE_BUILD_DIR=build python3 bench/bench_sentry.py
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_delivery import iso_to_epoch  # noqa: E402

BUILD = os.path.abspath(os.environ.get("TATTLE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "build")))
AGENT = os.path.join(BUILD, "libtattle.so")
KEY = "0123456789abcdef0123456789abcdef"


class Receiver:
    def __init__(self):
        self.lock = threading.Lock()
        self.events, self.first = 0, None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, *a):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                lines = gzip.decompress(raw).split(b"\n")
                event = json.loads(lines[2])
                with outer.lock:
                    outer.events += 1
                    if outer.first is None:
                        outer.first = (now, event["timestamp"])
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.dsn = "http://%s@127.0.0.1:%d/42" % (KEY, self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reset(self):
        with self.lock:
            self.events, self.first = 0, None

    def wait_events(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.events >= n:
                    return True
            time.sleep(0.001)
        return False


def env_for(rx, tmp):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "SENTRY_", "LD_PRELOAD"))}
    env.update(LD_PRELOAD=AGENT, SENTRY_DSN=rx.dsn, TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"), TATTLE_STDERR="0",
               XDG_STATE_HOME=tmp, TATTLE_SPOOL_MAX_MB="1024")
    return env


def crash_to_arrival(rx, tmp, reps=9):
    out = []
    for _ in range(reps):
        rx.reset()
        subprocess.run([os.path.join(BUILD, "tests", "crasher"), "null"], env=env_for(rx, tmp),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        rx.wait_events(1, 30)
        with rx.lock:
            arrived, timestamp = rx.first
        out.append((arrived - iso_to_epoch(timestamp)) * 1000.0)
    return statistics.median(out), min(out), max(out)


def throughput(rx, tmp, n=5000, reps=3):
    rates = []
    for _ in range(reps):
        rx.reset()
        t0 = time.monotonic()
        p = subprocess.Popen([os.path.join(BUILD, "bench", "flood"), str(n), "exceptions"], env=env_for(rx, tmp),
                             stdout=subprocess.PIPE, text=True)
        ok = rx.wait_events(n, 300)
        elapsed = time.monotonic() - t0
        p.wait()
        if not ok:
            return None
        rates.append(n / elapsed)
    return statistics.median(rates)


def main():
    rx = Receiver()
    tmp = tempfile.mkdtemp(prefix="tattle-bench-sentry-")
    try:
        med, lo, hi = crash_to_arrival(rx, tmp)
        rate = throughput(rx, tmp)
        print("%-58s %s" % ("Sentry: crash-to-arrival on loopback (median of 9, min-max)",
                            "%.1f ms (%.1f-%.1f)" % (med, lo, hi)))
        print("%-58s %s" % ("Sentry: handled exceptions/s to the receiver (median of 3)",
                            "%.0f" % rate if rate else "did not finish"))
    finally:
        rx.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
