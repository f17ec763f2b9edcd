"""WebSocket ends for proxy/tests/websocket.rs, on the `websockets` package.

    websocket.py serve NAME
        An echo server on 127.0.0.1, on a port the OS picks: prints the port
        on one line once it listens, greets each connection with NAME (so a
        test knows which instance it reached), then echoes every message.
        Runs until killed.

    websocket.py talk URL
        Connects to URL, reads the greeting, sends text and binary messages
        (one of them larger than 64 KiB) and checks each comes back
        unchanged; prints {"instance": NAME, "echoed": COUNT} as JSON, and
        exits 1 with the reason on stderr otherwise.
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def echo(websocket, name):
    await websocket.send(name)
    async for message in websocket:
        await websocket.send(message)


async def run_server(name):
    async with serve(lambda ws: echo(ws, name), "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(port, flush=True)
        await asyncio.Future()


async def talk(url):
    messages = [
        "hello",
        b"\x00\x01\x02 binary",
        "x" * (100 * 1024),
        bytes(range(256)) * 400,
        "bye",
    ]
    async with connect(url, open_timeout=10, max_size=None) as websocket:
        instance = await asyncio.wait_for(websocket.recv(), 10)
        for message in messages:
            await websocket.send(message)
            answer = await asyncio.wait_for(websocket.recv(), 10)
            if answer != message:
                print(f"{len(message)}-byte message came back changed", file=sys.stderr)
                sys.exit(1)
    print(json.dumps({"instance": instance, "echoed": len(messages)}), flush=True)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        asyncio.run(run_server(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "talk":
        asyncio.run(talk(sys.argv[2]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)


if __name__ == "__main__":
    main()
