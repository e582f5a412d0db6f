#!/usr/bin/env python3
"""fault_server.py: a loopback push-type endpoint that misbehaves on request.

Speaks conveyor's push-type protocol (docs/push-type-protocol.md) for a fake
fleet, and can instead answer 500s, 429s, hang, answer slowly, reset the
connection, send malformed JSON, a huge body or the wrong shape, so the http
transport's retries, limits and outcome classes can be tested. Python 3
standard library only.

    python3 test/http/fault_server.py [--host 127.0.0.1] [--port 0] [--token TOKEN]
                                      [--port-file FILE] [--units 3] [--subunits 2]

It prints "fault_server listening on HOST:PORT" and, with --port-file, writes
the port there (--port 0, the default, lets the kernel choose a free one).
SIGTERM or SIGINT stops it (exit 0). It binds loopback addresses only. Start
it with the interpreter itself (sys.executable) when you will signal its pid:
a wrapper such as a pyenv shim does not exec, and would take the signal.

Protocol endpoints (need "Authorization: Bearer TOKEN" -> else 401, and
"Conveyor-Protocol: 1" -> else 400), unless a fault is set for their path:

    GET  /v1/units        the fleet: {"protocol": 1, "units": [...]}
    POST /v1/needs-push   a unit needs a push unless all its subunits run the version, ok
                          (404 when the fleet says "needs_push": false)
    POST /v1/update       applies updates; "update_mode" "accepted" (default: the subunit
                          is "updating", then runs the version after "confirm_ms") or "done";
                          subunits listed in "refuse" are refused; a re-sent update key
                          gets the same answer and is not applied again
    POST /v1/health       a unit is unhealthy if named in "unhealthy" or if one of its
                          subunits runs a version listed in "unhealthy_versions"
    POST /v1/tasks        404 unless the fleet says "tasks": true; then at most
                          "max_allowed" candidates (default: all) are allowed per request

Control API (no token; JSON bodies):

    GET  /_stats   {"requests": {"/v1/update": 3, ...},        every request, by path
                    "requests_total": 7,
                    "faults_served": {"/v1/update": 2, ...},   requests answered by a fault
                    "idempotency_keys": {"req-1": 2, ...},     request keys, times sent
                    "update_keys": {"k1": 2, ...},             update keys, times sent
                                                               (both counted also when a fault answered)
                    "updates_applied": {"u0/1": 1, ...},       changes made to a subunit
                    "versions_applied": {"u0/1": ["v2"], ...}, the versions, in order
                    "auth_failures": 0, "protocol_failures": 0,
                    "in_flight": 0, "max_in_flight": 3}        concurrent /v1 requests
    GET  /_fleet   the fleet as it is now (with its options)
    POST /_fleet   replace the fleet: {"units": [{"name", "labels", "subunits":
                   [{"name", "version", "status"}]}], and options: "update_mode",
                   "confirm_ms", "refuse": ["unit/subunit"], "unhealthy": {"unit": "reason"},
                   "unhealthy_versions": [...], "needs_push": bool, "tasks": bool,
                   "max_allowed": N}
    POST /_fault   {"path": "/v1/update" or "*", "mode": MODE, "count": N, ...}: the next
                   N requests to that path (all /v1 paths for "*"; absent count = until
                   cleared) get MODE instead of a normal answer:
                     normal       clear the fault
                     status       answer "status" (e.g. 500, 503, 429, 401, 404) with
                                  {"error": ...}; "retry_after" adds a Retry-After header
                     500, 503, 429  shortcuts for status
                     hang         read the request, never answer; close after "ms"
                                  (default 3600000) or at shutdown
                     slow         wait "ms" (default 2000), then answer normally
                     reset        reset the connection (TCP RST) without answering
                     malformed    200 with a body that is not JSON
                     huge         200 with a valid JSON body of "bytes" bytes (default 20 MiB)
                     wrong_shape  200 with valid JSON of the wrong shape
                     empty        200 with an empty body
                     redirect     302 to "/elsewhere"
                     echo_auth    answer "status" (default 500) with {"error": "got " followed
                                  by the request's Authorization header}: an endpoint that
                                  repeats the token back; "pad" puts that many characters
                                  before it (to place it where an error text gets cut)
    POST /_reset   clear faults and statistics, and restore the default fleet
"""

import argparse
import os
import json
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_REQUEST = 64 << 20
STOP = threading.Event()


def default_fleet(nunits, nsub):
    regions = ["eu", "us", "ap"]
    return {
        "units": [
            {"name": "u%d" % i, "labels": {"region": regions[i % 3]},
             "subunits": [{"name": str(k), "version": "v1", "status": "ok"} for k in range(nsub)]}
            for i in range(nunits)
        ],
        "update_mode": "accepted", "confirm_ms": 0, "refuse": [], "unhealthy": {},
        "unhealthy_versions": [], "needs_push": True, "tasks": False, "max_allowed": None,
    }


class State:
    """Everything the handlers share, behind one lock."""

    def __init__(self, nunits, nsub):
        self.lock = threading.Lock()
        self.nunits, self.nsub = nunits, nsub
        self.reset()

    def reset(self):
        self.fleet = default_fleet(self.nunits, self.nsub)
        self.faults = {}            # path -> {"mode", "count", ...}
        self.pending = {}           # "unit/subunit" -> (version, due time)
        self.key_answers = {}       # update key -> result dict
        self.request_answers = {}   # idempotency_key -> answer body
        self.stats = {"requests": {}, "requests_total": 0, "faults_served": {},
                      "idempotency_keys": {}, "update_keys": {}, "updates_applied": {},
                      "versions_applied": {},
                      "auth_failures": 0, "protocol_failures": 0, "in_flight": 0, "max_in_flight": 0}

    def bump(self, table, key, n=1):
        t = self.stats[table]
        t[key] = t.get(key, 0) + n

    def take_fault(self, path):
        """The fault for PATH, consuming one of its count (caller holds the lock)."""
        for p in (path, "*"):
            f = self.faults.get(p)
            if f is None or (p == "*" and not path.startswith("/v1/")):
                continue
            if f.get("count") is not None:
                f["count"] -= 1
                if f["count"] <= 0:
                    del self.faults[p]
            return f
        return None

    def subunit(self, unit, sub):
        for u in self.fleet["units"]:
            if u["name"] == unit:
                for s in u["subunits"]:
                    if s["name"] == sub:
                        return s
                return None
        return None

    def settle(self):
        """Accepted updates whose confirm time has come now run their version."""
        now = time.monotonic()
        for k, (version, due) in list(self.pending.items()):
            if due <= now:
                unit, sub = k.split("/", 1)
                s = self.subunit(unit, sub)
                if s is not None:
                    s["version"], s["status"] = version, "ok"
                del self.pending[k]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fault_server/1"

    def log_message(self, fmt, *args):  # quiet: tests read /_stats instead
        pass

    # --- plumbing -------------------------------------------------------
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_REQUEST:
            raise ValueError("request too large")
        return self.rfile.read(n) if n else b""

    def send(self, code, payload, headers=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Conveyor-Protocol", "1")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def reset_connection(self):
        """Close with SO_LINGER 0: the peer sees a TCP RST, not an answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PUT(self):
        self.route("PUT")

    # --- routing --------------------------------------------------------
    def route(self, method):
        st = self.server.state
        path = self.path.split("?", 1)[0]
        try:
            raw = self.body()
        except (ValueError, OSError):
            self.send(413, {"error": "request too large"})
            return
        if path.startswith("/_"):
            self.control(method, path, raw)
            return
        with st.lock:
            st.bump("requests", path)
            st.stats["requests_total"] += 1
            st.stats["in_flight"] += 1
            st.stats["max_in_flight"] = max(st.stats["max_in_flight"], st.stats["in_flight"])
            if path == "/v1/update":
                self.count_keys(st, raw)
            fault = st.take_fault(path)
            if fault is not None and fault["mode"] != "slow":
                st.bump("faults_served", path)
        try:
            if fault is not None and self.fault(fault, path):
                return
            if fault is not None:  # slow: the delay is done, now answer normally
                with st.lock:
                    st.bump("faults_served", path)
            self.protocol(method, path, raw)
        finally:
            with st.lock:
                st.stats["in_flight"] -= 1

    @staticmethod
    def count_keys(st, raw):
        """Count the keys of every update request, faulted or not, so tests see re-sends."""
        try:
            req = json.loads(raw)
            if req.get("idempotency_key") is not None:
                st.bump("idempotency_keys", str(req["idempotency_key"]))
            for upd in req.get("updates", []):
                st.bump("update_keys", str(upd.get("key")))
        except (ValueError, AttributeError, TypeError):
            pass

    def fault(self, f, path):
        """Answer with fault F; False for 'slow', which then answers normally."""
        mode = str(f["mode"])
        if mode in ("500", "503", "429"):
            f = dict(f, status=int(mode))
            mode = "status"
        if mode == "status":
            headers = {"Retry-After": str(f["retry_after"])} if "retry_after" in f else {}
            self.send(int(f.get("status", 500)), {"error": "injected %s" % f.get("status", 500)}, headers)
        elif mode == "hang":
            STOP.wait(f.get("ms", 3600000) / 1000.0)
            self.reset_connection()
        elif mode == "slow":
            STOP.wait(f.get("ms", 2000) / 1000.0)
            return False
        elif mode == "reset":
            self.reset_connection()
        elif mode == "malformed":
            self.send(200, b'{"protocol": 1, "units": [{"name": "u0", ')
        elif mode == "huge":
            self.huge(int(f.get("bytes", 20 << 20)))
        elif mode == "wrong_shape":
            self.send(200, {"protocol": 1, "units": "not a list", "results": {"nope": 1}, "allowed": 7})
        elif mode == "empty":
            self.send(200, b"")
        elif mode == "redirect":
            self.send(302, {"error": "moved"}, {"Location": "/elsewhere"})
        elif mode == "echo_auth":
            said = "x" * int(f.get("pad", 0)) + "got " + str(self.headers.get("Authorization"))
            self.send(int(f.get("status", 500)), {"error": said})
        else:
            self.send(500, {"error": "unknown fault mode %s" % mode})
        return True

    def huge(self, size):
        head, tail = b'{"protocol": 1, "units": [], "padding": "', b'"}'
        pad = max(0, size - len(head) - len(tail))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(head) + pad + len(tail)))
        self.end_headers()
        try:
            self.wfile.write(head)
            chunk = b"x" * 65536
            while pad > 0:
                self.wfile.write(chunk[:min(pad, len(chunk))])
                pad -= min(pad, len(chunk))
            self.wfile.write(tail)
        except OSError:  # the client gave up at its size cap, as it should
            self.close_connection = True

    # --- the control API ------------------------------------------------
    def control(self, method, path, raw):
        st = self.server.state
        try:
            req = json.loads(raw) if raw else {}
        except ValueError:
            self.send(400, {"error": "invalid JSON"})
            return
        with st.lock:
            if path == "/_stats" and method == "GET":
                self.send(200, st.stats)
            elif path == "/_fleet" and method == "GET":
                st.settle()
                self.send(200, st.fleet)
            elif path == "/_fleet" and method == "POST":
                fleet = default_fleet(0, 0)
                fleet.update(req)
                st.fleet, st.pending = fleet, {}
                self.send(200, {"ok": True})
            elif path == "/_fault" and method == "POST":
                if "path" not in req or "mode" not in req:
                    self.send(400, {"error": "need path and mode"})
                elif req["mode"] == "normal":
                    st.faults.pop(req["path"], None)
                    self.send(200, {"ok": True})
                else:
                    st.faults[req["path"]] = dict(req)
                    self.send(200, {"ok": True})
            elif path == "/_reset" and method == "POST":
                st.reset()
                self.send(200, {"ok": True})
            else:
                self.send(404, {"error": "no such control endpoint"})

    # --- the protocol ---------------------------------------------------
    def protocol(self, method, path, raw):
        st = self.server.state
        if self.headers.get("Authorization") != "Bearer " + self.server.token:
            with st.lock:
                st.stats["auth_failures"] += 1
            self.send(401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"})
            return
        if self.headers.get("Conveyor-Protocol") != "1":
            with st.lock:
                st.stats["protocol_failures"] += 1
            self.send(400, {"error": "unsupported protocol"})
            return
        routes = {"/v1/units": "GET", "/v1/needs-push": "POST", "/v1/update": "POST",
                  "/v1/health": "POST", "/v1/tasks": "POST"}
        if path not in routes:
            self.send(404, {"error": "no such endpoint"})
            return
        if method != routes[path]:
            self.send(405, {"error": "use " + routes[path]}, {"Allow": routes[path]})
            return
        req = {}
        if method == "POST":
            try:
                req = json.loads(raw)
                if not isinstance(req, dict):
                    raise ValueError
            except ValueError:
                self.send(400, {"error": "the body must be a JSON object"})
                return
        with st.lock:
            st.settle()
            code, answer = getattr(self, "v1_" + path[4:].replace("-", "_"))(st, req)
        self.send(code, answer)

    def v1_units(self, st, req):
        return 200, {"protocol": 1, "units": st.fleet["units"]}

    def v1_needs_push(self, st, req):
        if not st.fleet.get("needs_push", True):
            return 404, {"error": "needs-push not implemented"}
        out = []
        for name in req.get("units", []):
            u = next((u for u in st.fleet["units"] if u["name"] == name), None)
            needs = u is None or any(s["version"] != req.get("version") or s.get("status", "ok") != "ok"
                                     for s in u["subunits"])
            out.append({"name": name, "needs_push": needs})
        return 200, {"units": out}

    def v1_update(self, st, req):
        rkey = req.get("idempotency_key")
        if rkey is not None:
            if rkey in st.request_answers:
                return 200, st.request_answers[rkey]
        results = []
        for upd in req.get("updates", []):
            unit, sub, version, key = (upd.get(k) for k in ("unit", "subunit", "version", "key"))
            if key in st.key_answers:
                results.append(st.key_answers[key])
                continue
            ref = "%s/%s" % (unit, sub)
            s = st.subunit(unit, sub)
            if s is None:
                r = {"unit": unit, "subunit": sub, "status": "refused", "error": "unknown subunit"}
            elif ref in st.fleet.get("refuse", []):
                r = {"unit": unit, "subunit": sub, "status": "refused", "error": "refused by test"}
            elif st.fleet.get("update_mode") == "done":
                s["version"], s["status"] = version, "ok"
                st.bump("updates_applied", ref)
                st.stats["versions_applied"].setdefault(ref, []).append(version)
                r = {"unit": unit, "subunit": sub, "status": "done", "error": None}
            else:
                s["version"], s["status"] = version, "updating"
                st.pending[ref] = (version, time.monotonic() + st.fleet.get("confirm_ms", 0) / 1000.0)
                st.bump("updates_applied", ref)
                st.stats["versions_applied"].setdefault(ref, []).append(version)
                r = {"unit": unit, "subunit": sub, "status": "accepted", "error": None}
            st.key_answers[key] = r
            results.append(r)
        answer = {"results": results}
        if rkey is not None:
            st.request_answers[rkey] = answer
        return 200, answer

    def v1_health(self, st, req):
        out = []
        bad_versions = set(st.fleet.get("unhealthy_versions", []))
        for name in req.get("units", []):
            u = next((u for u in st.fleet["units"] if u["name"] == name), None)
            if u is None:
                out.append({"name": name, "healthy": False, "reason": "unknown unit"})
            elif name in st.fleet.get("unhealthy", {}):
                out.append({"name": name, "healthy": False, "reason": st.fleet["unhealthy"][name]})
            elif any(s["version"] in bad_versions for s in u["subunits"]):
                out.append({"name": name, "healthy": False, "reason": "runs an unhealthy version"})
            else:
                out.append({"name": name, "healthy": True, "reason": None})
        return 200, {"units": out}

    def v1_tasks(self, st, req):
        if not st.fleet.get("tasks", False):
            return 404, {"error": "task control not implemented"}
        cands = req.get("candidates", [])
        limit = st.fleet.get("max_allowed")
        return 200, {"allowed": cands if limit is None else cands[:limit]}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token", default="test-token")
    ap.add_argument("--port-file")
    ap.add_argument("--units", type=int, default=3)
    ap.add_argument("--subunits", type=int, default=2)
    args = ap.parse_args()
    if not (args.host.startswith("127.") or args.host in ("localhost", "::1")):
        sys.exit("fault_server: binds loopback addresses only")

    srv = Server((args.host, args.port), Handler)
    srv.token = args.token
    srv.state = State(args.units, args.subunits)
    port = srv.server_address[1]

    # handlers first: whoever reads the port file may send SIGTERM at once
    def stop(signum, frame):
        STOP.set()
        threading.Thread(target=srv.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.replace(args.port_file + ".tmp", args.port_file)
    print("fault_server listening on %s:%d" % (args.host, port), flush=True)

    srv.serve_forever(poll_interval=0.2)
    srv.server_close()


if __name__ == "__main__":
    main()
