"""gRPC ends for proxy/tests/grpc.rs, with the grpcio package and no
generated code: the service `shard.Echo` takes and gives raw bytes.

    grpc_echo.py serve NAME        serve on 127.0.0.1, an OS-chosen port,
                                   printed on the first line of stdout
    grpc_echo.py call TARGET ROOM  through TARGET (host:port), with the
                                   metadata x-room: ROOM, call Unary once
                                   and Stream once; print what came back
                                   as JSON

Unary answers "NAME:ROOM:REQUEST"; Stream answers three messages
"NAME:0" .. "NAME:2", then the trailing metadata x-served-by: NAME.
"""

import json
import sys
from concurrent import futures

import grpc

SERVICE = "shard.Echo"


def serve(name):
    def room(context):
        return dict(context.invocation_metadata()).get("x-room", "")

    def unary(request, context):
        return f"{name}:{room(context)}:".encode() + request

    def stream(request, context):
        context.set_trailing_metadata((("x-served-by", name),))
        for n in range(3):
            yield f"{name}:{n}".encode()

    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def call(target, room):
    metadata = (("x-room", room),)
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(f"/{SERVICE}/Unary")
        answer = unary(b"hello", metadata=metadata, timeout=10)
        stream = channel.unary_stream(f"/{SERVICE}/Stream")
        call = stream(b"", metadata=metadata, timeout=10)
        messages = [message.decode() for message in call]
        trailing = dict(call.trailing_metadata() or ())
        print(
            json.dumps(
                {
                    "unary": answer.decode(),
                    "stream": messages,
                    "served_by": trailing.get("x-served-by"),
                    "code": call.code().name,
                }
            )
        )


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "call":
        call(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")
