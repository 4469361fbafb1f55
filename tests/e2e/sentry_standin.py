"""sentry_standin.py - a strict Sentry envelope endpoint on 127.0.0.1.

It checks what ../shared/reference/sentry-wire.md requires of a request:
POST /api/<project>/envelope/, X-Sentry-Auth with sentry_key and
sentry_version=7 (and no query auth besides), gzip, the envelope framing
(header line, item header with type and length, a payload of exactly that
length), the header's event_id equal to the event's (32 hex), sent_at in
the header, the event's platform, level, timestamp, at least one exception
with frames oldest first, and frames each with an address, function or
file. A request that breaks a rule is answered 400 and recorded as a
violation. Answers on demand: a status for the first N requests (with
Retry-After and X-Sentry-Rate-Limits headers), or always.
"""
import gzip
import json
import re
import threading
import time
from http.server import ThreadingHTTPServer

from posthog_standin import QuietHandler, free_port, send_json  # noqa: F401 (test_sentry takes free_port from here too)


class Violation(Exception):
    pass


def parse_envelope(body):
    """(header, [(item_header, payload_bytes)]) or Violation."""
    nl = body.find(b"\n")
    if nl < 0:
        raise Violation("no envelope header line")
    header = json.loads(body[:nl])
    items, pos = [], nl + 1
    while pos < len(body):
        nl = body.find(b"\n", pos)
        if nl < 0:
            raise Violation("an item header without a payload")
        ih = json.loads(body[pos:nl])
        if "type" not in ih or not isinstance(ih.get("length"), int):
            raise Violation("item header without type and length: %r" % ih)
        start, end = nl + 1, nl + 1 + ih["length"]
        if end > len(body):
            raise Violation("payload shorter than its length")
        items.append((ih, body[start:end]))
        pos = end
        if pos < len(body):
            if body[pos:pos + 1] != b"\n":
                raise Violation("a payload not followed by a newline")
            pos += 1
    return header, items


def check_event(header, ev):
    if not re.fullmatch(r"[0-9a-f]{32}", ev.get("event_id", "")):
        raise Violation("event_id is not 32 hex: %r" % ev.get("event_id"))
    if header.get("event_id") != ev["event_id"]:
        raise Violation("the envelope's event_id differs from the event's")
    if not header.get("sent_at"):
        raise Violation("no sent_at in the envelope header")
    if ev.get("platform") != "native" or ev.get("level") not in ("fatal", "error", "warning", "info", "debug"):
        raise Violation("platform or level: %r %r" % (ev.get("platform"), ev.get("level")))
    if not isinstance(ev.get("timestamp"), str):
        raise Violation("no timestamp")
    values = ev.get("exception", {}).get("values")
    if not values:
        raise Violation("no exception")
    for ex in values:
        if "type" not in ex and "value" not in ex:
            raise Violation("an exception without type or value")
        for f in ex.get("stacktrace", {}).get("frames", []):
            if not any(k in f for k in ("instruction_addr", "function", "filename")):
                raise Violation("a frame with neither address, function nor file")
    for t in ev.get("threads", {}).get("values", []):
        if t.get("crashed") and "stacktrace" in t:
            raise Violation("the crashed thread carries a stacktrace (it is the exception's)")


class SentryStandIn:
    def __init__(self, key="0123456789abcdef0123456789abcdef", project="42", fail_first=0, fail_status=503,
                 headers=(), always=None, ok_headers=()):
        self.key, self.project = key, project
        self.fail_first, self.fail_status, self.fail_headers, self.always = fail_first, fail_status, headers, always
        self.ok_headers = ok_headers
        self.port = free_port()
        self.dsn = "http://%s@127.0.0.1:%d/%s" % (key, self.port, project)
        self.lock = threading.Lock()
        self.requests = []  # time, status, path, headers, violation, event
        self.events = []    # accepted events
        outer = self

        class Handler(QuietHandler):
            def do_POST(self):
                outer._handle(self)

        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def _decide(self, n):
        if self.always:
            return self.always, self.fail_headers
        if n < self.fail_first:
            return self.fail_status, self.fail_headers
        return 200, self.ok_headers

    def _handle(self, h):
        raw = h.rfile.read(int(h.headers.get("Content-Length", "0")))
        rec = {"time": time.monotonic(), "path": h.path, "headers": dict(h.headers), "violation": None,
               "event": None, "status": None}
        try:
            if h.path != "/api/%s/envelope/" % self.project:
                raise Violation("path %r" % h.path)
            auth = h.headers.get("X-Sentry-Auth", "")
            if not auth.startswith("Sentry ") or "sentry_key=%s" % self.key not in auth or \
                    "sentry_version=7" not in auth:
                raise Violation("X-Sentry-Auth %r" % auth)
            if h.headers.get("Content-Encoding") != "gzip":
                raise Violation("not gzip")
            header, items = parse_envelope(gzip.decompress(raw))
            events = [json.loads(p) for ih, p in items if ih["type"] == "event"]
            if len(events) != 1:
                raise Violation("%d event items" % len(events))
            check_event(header, events[0])
            rec["event"] = events[0]
        except (Violation, ValueError, OSError, KeyError) as e:
            rec["violation"] = str(e)
        with self.lock:
            n = len(self.requests)
            status, extra = (400, ()) if rec["violation"] else self._decide(n)
            rec["status"] = status
            self.requests.append(rec)
            if status == 200:
                self.events.append(rec["event"])
        send_json(h, status, {"id": (rec["event"] or {}).get("event_id")} if status == 200 else {"detail": "no"}, extra)

    def violations(self):
        with self.lock:
            return [r["violation"] for r in self.requests if r["violation"]]

    def wait_for(self, predicate, timeout=15.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        with self.lock:
            return predicate(self)
