"""posthog_standin.py - a strict stand-in for PostHog's capture API.

Listens on 127.0.0.1 and accepts POST /batch/ the way PostHog does
(posthog-wire.md section 1), but stricter: a body that is not gzip (by its
magic bytes), a missing api_key, an empty batch, an event without a name or
a distinct_id, an `$exception` without a typed `$exception_list`, or a frame
with an unknown platform is answered 400 and recorded as a violation. It can
be told to fail: `fail_first` requests answered `fail_status` (with an
optional Retry-After), `always` a fixed status, `slow` seconds before each
answer, `max_events` per request (413 above it), or simply not started yet
(the port is reserved: "down, then up").
"""
import gzip
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    """What every stand-in here (and bench_delivery's receiver) answers
    with: HTTP/1.1 keep-alive, no Nagle delay, no log lines."""
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass


def send_json(h, status, body, headers=()):
    """Answer request handler h with body as JSON and the extra headers."""
    data = json.dumps(body).encode()
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(data)))
    for k, v in headers:
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data)

PLATFORMS = {"python", "ruby", "web:javascript", "node:javascript", "go", "php", "hermes", "java", "dart",
             "apple", "native", "rust", "custom", "javascript"}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Violation(Exception):
    pass


def check_event(ev):
    if not isinstance(ev, dict):
        raise Violation("event is not an object")
    if not isinstance(ev.get("event"), str) or not ev["event"]:
        raise Violation("event without a name")
    props = ev.get("properties", {})
    if not isinstance(props, dict):
        raise Violation("properties is not an object")
    did = ev.get("distinct_id", props.get("distinct_id"))
    if did in (None, ""):
        raise Violation("event without a distinct_id")
    if not isinstance(ev.get("uuid"), str) or len(ev["uuid"]) != 36:
        raise Violation("event without a uuid")
    if not isinstance(ev.get("timestamp"), str) or not ev["timestamp"].endswith("Z"):
        raise Violation("event without an ISO-8601 timestamp")
    if ev["event"] == "$exception":
        lst = props.get("$exception_list")
        if not isinstance(lst, list) or not lst:
            raise Violation("$exception without $exception_list")
        for ex in lst:
            if not isinstance(ex.get("type"), str) or not ex["type"]:
                raise Violation("$exception_list entry without a type")
            st = ex.get("stacktrace")
            if st is None:
                continue
            if st.get("type") != "raw" or not isinstance(st.get("frames"), list):
                raise Violation("stacktrace is not raw with frames")
            for fr in st["frames"]:
                if fr.get("platform") not in PLATFORMS:
                    raise Violation("frame with unknown platform %r" % fr.get("platform"))


class StandIn:
    def __init__(self, fail_first=0, fail_status=503, retry_after=None, always=None, slow=0.0, max_events=None,
                 port=None, start=True):
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.always = always
        self.slow = slow
        self.max_events = max_events
        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.requests = []    # dicts: time, status, headers, count, wire_bytes, body_bytes, violation
        self.events = []      # accepted events, in arrival order
        self.connections = 0
        self.server = None
        if start:
            self.start()

    # -- lifecycle
    def start(self):
        outer = self

        class Handler(QuietHandler):
            def setup(self):
                super().setup()
                with outer.lock:
                    outer.connections += 1

            def do_POST(self):
                outer._handle(self)

            def do_GET(self):
                send_json(self, 404, {"error": "not found"})

        ThreadingHTTPServer.allow_reuse_address = True
        ThreadingHTTPServer.daemon_threads = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    # -- one request
    def _handle(self, h):
        length = int(h.headers.get("Content-Length", "0"))
        raw = h.rfile.read(length)
        rec = {"time": time.monotonic(), "headers": dict(h.headers), "path": h.path, "wire_bytes": len(raw),
               "body_bytes": 0, "count": 0, "violation": None, "status": None}
        status, reply, extra = self._decide(h, raw, rec)
        if self.slow:
            time.sleep(self.slow)
        rec["status"] = status
        rec["answered"] = time.monotonic()
        with self.lock:
            self.requests.append(rec)
        send_json(h, status, reply, extra)

    def _decide(self, h, raw, rec):
        with self.lock:
            n = len(self.requests)
        if self.always:
            return self.always, {"status": self.always, "error": "told to"}, ()
        if n < self.fail_first:
            extra = (("Retry-After", str(self.retry_after)),) if self.retry_after is not None else ()
            return self.fail_status, {"status": self.fail_status, "error": "told to"}, extra
        try:
            batch = self._validate(h, raw, rec)
        except Violation as v:
            rec["violation"] = str(v)
            return 400, {"status": 400, "error": str(v)}, ()
        if self.max_events and len(batch) > self.max_events:
            return 413, {"status": 413, "error": "too many events"}, ()
        with self.lock:
            self.events.extend(batch)
        return 200, {"status": "Ok"}, ()

    def _validate(self, h, raw, rec):
        if h.path != "/batch/":
            raise Violation("path %s" % h.path)
        if raw[:3] != b"\x1f\x8b\x08":
            raise Violation("body is not gzip")
        if h.headers.get("Content-Encoding") != "gzip":
            raise Violation("no Content-Encoding: gzip")
        if not (h.headers.get("User-Agent") or "").startswith("tattle/"):
            raise Violation("User-Agent %r" % h.headers.get("User-Agent"))
        try:
            body = gzip.decompress(raw)
            req = json.loads(body)
        except Exception as e:
            raise Violation("undecodable body: %s" % e)
        rec["body_bytes"] = len(body)
        rec["api_key"] = req.get("api_key")
        if not isinstance(req, dict) or not isinstance(req.get("api_key"), str) or not req["api_key"]:
            raise Violation("no api_key")
        if not isinstance(req.get("sent_at"), str):
            raise Violation("no sent_at")
        batch = req.get("batch")
        if not isinstance(batch, list) or not batch:
            raise Violation("empty batch")
        for ev in batch:
            check_event(ev)
        rec["count"] = len(batch)
        return batch

    # -- what the tests read
    def violations(self):
        with self.lock:
            return [r["violation"] for r in self.requests if r["violation"]]

    def accepted(self, name=None):
        with self.lock:
            return [e for e in self.events if name is None or e["event"] == name]

    def wait_for(self, predicate, timeout=15.0):
        """Poll until predicate(self) holds; returns whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def duplicates(self):
        seen, dups = set(), []
        for e in self.accepted():
            if e["uuid"] in seen:
                dups.append(e["uuid"])
            seen.add(e["uuid"])
        return dups
