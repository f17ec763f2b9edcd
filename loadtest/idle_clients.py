#!/usr/bin/env python3
"""Idle keep-alive clients: what a proxy's memory does while many clients
hold a connection open after one request, and after they leave.

    python3 loadtest/idle_clients.py HOST PORT PID [--conns N] [--cycles C] [--settle S]

Each cycle opens N connections to HOST:PORT (a few hundred at a time), sends
one `GET /k/<n> HTTP/1.1` on each and reads its whole answer, then holds them
all open and idle, then closes them all. It prints one JSON line per cycle
with PID's resident set size (VmRSS, kB) before the cycle, once every client
is idle (after a settling pause), and after they closed (after the same
pause): `{"cycle", "conns", "rss_before_kb", "rss_idle_kb",
"rss_after_kb", "per_conn_bytes"}`. Standard library only.
"""

import argparse
import asyncio
import json
import time


def rss_kb(pid):
    """The resident set size of `pid`, in kB (VmRSS of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


async def one(host, port, n):
    """A connection that made one request and read its whole answer."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /k/{n} HTTP/1.1\r\nHost: idle.test\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"answer {n}: {head[:60]!r}")
    await reader.readexactly(length)
    return writer


async def cycle(args, number):
    before = rss_kb(args.pid)
    writers = []
    for start in range(0, args.conns, 200):
        batch = range(start, min(start + 200, args.conns))
        writers += await asyncio.gather(*(one(args.host, args.port, n) for n in batch))
    time.sleep(args.settle)
    idle = rss_kb(args.pid)
    for writer in writers:
        writer.close()
    await asyncio.gather(*(writer.wait_closed() for writer in writers), return_exceptions=True)
    time.sleep(args.settle)
    after = rss_kb(args.pid)
    print(json.dumps({
        "cycle": number,
        "conns": args.conns,
        "rss_before_kb": before,
        "rss_idle_kb": idle,
        "rss_after_kb": after,
        "per_conn_bytes": round((idle - before) * 1024 / args.conns),
    }), flush=True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("pid", type=int, help="the process whose RSS is read")
    parser.add_argument("--conns", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=4)
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait before reading RSS")
    args = parser.parse_args()
    for number in range(1, args.cycles + 1):
        await cycle(args, number)


if __name__ == "__main__":
    asyncio.run(main())
