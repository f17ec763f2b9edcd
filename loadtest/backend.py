#!/usr/bin/env python3
"""A backend for loadtest/soak.sh: answers every request 200 with its name.

    python3 loadtest/backend.py 127.0.0.1 9001 node1.soak.test

HTTP/1.1 with keep-alive, one thread per connection (the proxy keeps a pool
of connections to each instance). No logging: at a few hundred requests a
second the soak only cares whether requests succeed.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's
    # algorithm holds the body until the proxy's delayed ACK (40 ms).
    disable_nagle_algorithm = True

    def answer(self, with_body):
        body = (self.server.name + "\n").encode()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if with_body:
            self.wfile.write(body)

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
    request_queue_size = 256
    daemon_threads = True


def main():
    host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    server = Server((host, port), Handler)
    server.name = name
    server.serve_forever()


if __name__ == "__main__":
    main()
