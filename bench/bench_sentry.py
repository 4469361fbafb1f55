"""bench_sentry.py - delivery figures for SENTRY_DSN on loopback, beside
bench_delivery.py's for PostHog (same receiver, same measures): crash-to-
arrival latency (the crash's timestamp to the envelope's arrival) and
handled exceptions per second through the flusher to a receiver that takes
each envelope (gunzips and parses it). Prints figures; asserts nothing.

    TATTLE_BUILD_DIR=build python3 bench/bench_sentry.py
"""
import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_delivery import AGENT, Receiver, crash_to_arrival, throughput  # noqa: E402

KEY = "0123456789abcdef0123456789abcdef"


def envelope_event(body):
    """An envelope: its header, the item header, then the one event."""
    return [json.loads(body.split(b"\n")[2])]


def env_for(rx, tmp):
    dsn = rx.url.replace("http://", "http://%s@" % KEY) + "/42"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TATTLE_", "POSTHOG_", "SENTRY_", "LD_PRELOAD"))}
    env.update(LD_PRELOAD=AGENT, SENTRY_DSN=dsn, TATTLE_SPOOL_DIR=os.path.join(tmp, "spool"), TATTLE_STDERR="0",
               XDG_STATE_HOME=tmp, TATTLE_SPOOL_MAX_MB="1024")
    return env


def main():
    rx = Receiver(parse=envelope_event)
    tmp = tempfile.mkdtemp(prefix="tattle-bench-sentry-")
    try:
        med, lo, hi = crash_to_arrival(rx, tmp, env=env_for)
        rate = throughput(rx, tmp, n=5000, env=env_for, kind=("exceptions",))
        print("%-58s %s" % ("Sentry: crash-to-arrival on loopback (median of 9, min-max)",
                            "%.1f ms (%.1f-%.1f)" % (med, lo, hi)))
        print("%-58s %s" % ("Sentry: handled exceptions/s to the receiver (median of 3)",
                            "%.0f" % rate if rate else "did not finish"))
    finally:
        rx.server.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
