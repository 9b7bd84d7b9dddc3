#!/usr/bin/env python3
"""WebSocket test backend for gatehouse's integration tests (python3-websockets, asyncio).

Binds 127.0.0.1 (port 0 unless --port is given) and prints the bound port as the first line on
stdout. Keep-alive pings are off, so an idle tunnel is really idle.

WebSocket paths (the query string is ignored):
  /echo                 echoes every message, text as text and binary as binary (default)
  /whoami               sends the --id value first, then echoes
  /headers              sends a JSON text message {"path", "headers": [[name, value], ...]}
                        with the handshake request as received, then echoes
  /hello                sends "hello from ID" first (a server-initiated message), then echoes
  /close-after/N        echoes N messages, then closes with code 4001, reason "bye"
  /ticks/MS             sends "tick K" every MS milliseconds (and echoes what it gets)
Plain HTTP requests (no `Connection: upgrade`) get an ordinary response and the connection is
closed: `/stats` is JSON {"id", "opened", "open", "closed", "messages"}; anything else is a
200 whose body is the --id value (also in X-Backend-Id).
"""

import argparse
import asyncio
import http
import json
import sys

import websockets


class State:
    def __init__(self, backend_id):
        self.id = backend_id
        self.opened = 0
        self.open = 0
        self.closed = 0
        self.messages = 0


def make_process_request(state):
    def process_request(path, headers):
        tokens = [t.strip().lower() for v in headers.get_all("Connection") for t in v.split(",")]
        if "upgrade" in tokens:
            return None
        if path.split("?", 1)[0] == "/stats":
            body = json.dumps({"id": state.id, "opened": state.opened, "open": state.open,
                               "closed": state.closed, "messages": state.messages}).encode()
            return (http.HTTPStatus.OK, [("Content-Type", "application/json")], body)
        return (http.HTTPStatus.OK, [("Content-Type", "text/plain"),
                                     ("X-Backend-Id", state.id)], state.id.encode())
    return process_request


def make_handler(state):
    async def echo(ws, limit=None):
        count = 0
        async for message in ws:
            state.messages += 1
            await ws.send(message)
            count += 1
            if limit is not None and count >= limit:
                return

    async def ticks(ws, period):
        k = 0
        while True:
            await asyncio.sleep(period)
            k += 1
            await ws.send("tick %d" % k)

    async def handler(ws):
        state.opened += 1
        state.open += 1
        try:
            path = ws.path.split("?", 1)[0]
            name, _, param = path[1:].partition("/")
            if name == "whoami":
                await ws.send(state.id)
            elif name == "headers":
                await ws.send(json.dumps({"path": ws.path,
                                          "headers": list(ws.request_headers.raw_items())}))
            elif name == "hello":
                await ws.send("hello from %s" % state.id)
            if name == "close-after":
                await echo(ws, int(param))
                await ws.close(4001, "bye")
            elif name == "ticks":
                task = asyncio.ensure_future(ticks(ws, int(param) / 1000))
                try:
                    await echo(ws)
                finally:
                    task.cancel()
            else:
                await echo(ws)
        except websockets.ConnectionClosed:
            pass
        finally:
            state.open -= 1
            state.closed += 1

    return handler


async def main_async(args):
    state = State(args.id)
    server = await websockets.serve(make_handler(state), "127.0.0.1", args.port,
                                    process_request=make_process_request(state),
                                    ping_interval=None, max_size=None, max_queue=None,
                                    compression=None)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    await asyncio.Future()


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--id", default="ws")
    p.add_argument("--port", type=int, default=0)
    try:
        asyncio.run(main_async(p.parse_args(argv)))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
