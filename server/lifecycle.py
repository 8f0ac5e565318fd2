"""Serving and stopping: readiness, and the graceful drain on SIGTERM.

On SIGTERM (or Ctrl-C) the server keeps listening but is no longer ready: `/readyz` answers
503 at once (a balancer or Kubernetes stops sending traffic), new streams are refused with
503, and every connection gets what it is owed (server/deliveries.py), for up to
SHUTDOWN_GRACE_S: HTTP bodies written, WebSocket responses played out by the client's reports,
ElevenLabs contexts played out by the wall clock, WebRTC tracks played out, Wyoming replies
to their `audio-stop`. A connection that owes nothing is closed at once with a reason (its
client reconnects, to another replica); whatever still runs at the end is closed with a
reason the client can read. A second signal stops at once.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

from server.app_keys import ORCHESTRATOR, SETTINGS
from server.deliveries import DELIVERIES

log = logging.getLogger("morpheus.lifecycle")


async def drain(app: web.Application, grace_s: float) -> None:
    """Refuse new streams; give every connection what it is owed for up to `grace_s`; close
    the rest with a reason and end the streams still running."""
    orch = app[ORCHESTRATOR]
    orch.draining = True
    deliveries = app[DELIVERIES]
    log.info("draining: %d stream(s) running, %d connection(s) open, up to %.0f s",
             len(orch.streams), len(deliveries), grace_s)
    await deliveries.settle(grace_s, busy=lambda: bool(orch.streams))
    if orch.streams:
        log.warning("grace period over: ending %d stream(s)", len(orch.streams))
        await orch.aclose()


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def warn_if_exposed(host: str, api_key: str | None) -> None:
    """Loudly, when the server listens beyond this machine without an API key."""
    if is_loopback(host) or api_key:
        return
    message = (f"WARNING: Morpheus listens on {host} WITHOUT an API key: anyone who can reach "
               "this address can use it. Set API_KEY (see docs/security.md) or HOST=127.0.0.1. "
               "POST /config is refused from other machines until API_KEY is set.")
    log.warning(message)
    print("\n" + "!" * 78 + f"\n{message}\n" + "!" * 78 + "\n", file=sys.stderr, flush=True)


def write_port_file(path: Path, port: int) -> None:
    """The port in `path`, whole or not at all (a reader polls for the file)."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(f"{port}\n")
    os.replace(partial, path)


async def serve_until_signalled(app: web.Application, host: str, port: int,
                                port_file: Path | None = None) -> None:
    """Run the app until SIGTERM/SIGINT, then drain and stop. Port 0: the OS picks a free one;
    `port_file` gets the port once the socket listens (the first socket's, for a host name
    that resolves to several addresses)."""
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                           access_log=None, shutdown_timeout=5)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound = int(runner.addresses[0][1])
    log.info("listening on %s:%d", host, bound)
    if port_file is not None:
        write_port_file(port_file, bound)
    loop = asyncio.get_running_loop()
    stop, now = asyncio.Event(), asyncio.Event()

    def on_signal() -> None:
        (now if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await stop.wait()
        log.info("stopping: draining for up to %.0f s", app[SETTINGS].current.shutdown_grace_s)
        drainer = asyncio.ensure_future(drain(app, app[SETTINGS].current.shutdown_grace_s))
        halt = asyncio.ensure_future(now.wait())
        await asyncio.wait({drainer, halt}, return_when=asyncio.FIRST_COMPLETED)
        for task in (drainer, halt):
            task.cancel()
    finally:
        await runner.cleanup()


__all__ = ["drain", "is_loopback", "serve_until_signalled", "warn_if_exposed"]
