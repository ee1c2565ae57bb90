"""The intake ceiling: a bare aiohttp server that reads each body and answers 200.

It stores and checks nothing, so the daemon's receiver is compared with what aiohttp itself
manages on the same machine; it gets the daemon's accept backlog so both see the same
connection storm. Run as ``python -m bench.ceiling PORT``; it prints ``ready`` once bound.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from aiohttp import web

from syncd.intake.receiver import web_site_kwargs


async def _answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(status=200)


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/{tail:.*}", _answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, **web_site_kwargs()).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
