#!/usr/bin/env python3
"""A backend for loadtest/soak.sh and loadtest/run.sh --hot: answers every
request 200 with its name.

    python3 loadtest/backend.py 127.0.0.1 9001 node1.soak.test
    python3 loadtest/backend.py 127.0.0.1 9001 b1 --slots 8 --delay-ms 20 --hot-path /k/hot

HTTP/1.1 with keep-alive, one thread per connection (the proxy keeps a pool
of connections to each instance). No logging: at a few hundred requests a
second the soak only cares whether requests succeed. Every answer carries
`X-Backend: NAME`.

Options (all off by default, so soak.sh's backends stay as they were):
  --slots N       serve at most N requests at once; the others wait for a
                  slot (a queue, as a server with N workers has)
  --delay-ms D    each request holds its slot D ms before it is answered
                  (a fixed service time: capacity N / D requests a second)
  --hot-path P    also count the requests for path P (the hot key)

`GET /_backend/stats` is answered at once (no slot, not counted) with JSON:
{"name", "requests", "hot", "peak_in_service", "peak_waiting"}: requests
served, those for --hot-path, and the most requests at once in service
(holding a slot) and waiting for one.
"""

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS_PATH = "/_backend/stats"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
    # algorithm holds the body until the proxy's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def reply(self, body, with_body=True, content_type="text/plain"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", self.server.name)
        self.end_headers()
        if with_body:
            self.wfile.write(body)

    def answer(self, with_body):
        server = self.server
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if self.command == "GET" and self.path == STATS_PATH:
            self.reply(json.dumps(server.snapshot()).encode() + b"\n", content_type="application/json")
            return
        path = self.path.split("?", 1)[0]
        if server.slots is None:
            if server.delay:
                time.sleep(server.delay)
        else:
            server.enter("waiting")
            server.slots.acquire()
            server.leave("waiting")
            server.enter("in_service")
            try:
                if server.delay:
                    time.sleep(server.delay)
            finally:
                server.leave("in_service")
                server.slots.release()
        server.served(path == server.hot_path)
        self.reply((server.name + "\n").encode(), with_body)

    def do_GET(self):
        self.answer(True)

    def do_HEAD(self):
        self.answer(False)

    do_PUT = do_POST = do_DELETE = do_GET

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    # After a restart the proxy reconnects many connections at once: a
    # backlog of 5 (the default) would drop some of their SYNs.
    request_queue_size = 1024
    daemon_threads = True

    def setup_stats(self, name, slots, delay_ms, hot_path):
        self.name = name
        self.slots = threading.BoundedSemaphore(slots) if slots else None
        self.delay = delay_ms / 1000.0
        self.hot_path = hot_path
        self.lock = threading.Lock()
        self.counts = {"requests": 0, "hot": 0}
        self.now = {"waiting": 0, "in_service": 0}
        self.peak = {"waiting": 0, "in_service": 0}

    def enter(self, state):
        with self.lock:
            self.now[state] += 1
            self.peak[state] = max(self.peak[state], self.now[state])

    def leave(self, state):
        with self.lock:
            self.now[state] -= 1

    def served(self, hot):
        with self.lock:
            self.counts["requests"] += 1
            if hot:
                self.counts["hot"] += 1

    def snapshot(self):
        with self.lock:
            return {
                "name": self.name,
                "requests": self.counts["requests"],
                "hot": self.counts["hot"],
                "peak_in_service": self.peak["in_service"],
                "peak_waiting": self.peak["waiting"],
            }


def main():
    parser = argparse.ArgumentParser(description="A loadtest backend: answers 200 with its name.")
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("name")
    parser.add_argument("--slots", type=int, default=0, help="requests served at once (0: no limit)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="service time per request, ms")
    parser.add_argument("--hot-path", default=None, help="count the requests for this path")
    args = parser.parse_args()
    if args.slots < 0 or args.delay_ms < 0:
        parser.error("--slots and --delay-ms must not be negative")
    server = Server((args.host, args.port), Handler)
    server.setup_stats(args.name, args.slots, args.delay_ms, args.hot_path)
    server.serve_forever()


if __name__ == "__main__":
    main()
