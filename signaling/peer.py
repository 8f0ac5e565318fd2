"""Peer connections without STUN: host candidates from chosen addresses, offer/answer, idle watchdog."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import aioice.ice
import ifaddr
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCSessionDescription,
)
from aiortc.jitterbuffer import JitterBuffer

log = logging.getLogger("morpheus.peer")

# The addresses the current task gathers host candidates from; None = not overridden.
_HOST_ADDRESSES: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "morpheus_host_addresses", default=None
)
_original_get_host_addresses: Callable[[bool, bool], list[str]] | None = None


def _get_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """Stand-in for aioice.ice.get_host_addresses: honours the per-connection override."""
    chosen = _HOST_ADDRESSES.get()
    if chosen is None:
        assert _original_get_host_addresses is not None
        return _original_get_host_addresses(use_ipv4, use_ipv6)
    return [
        a
        for a in chosen
        if (use_ipv4 and ipaddress.ip_address(a).version == 4)
        or (use_ipv6 and ipaddress.ip_address(a).version == 6)
    ]


def install_host_address_hook() -> None:
    """Route aioice's host-address discovery through `_get_host_addresses` (idempotent).

    aioice calls the module-level `get_host_addresses` from `Connection.gather_candidates`,
    and its discovery always skips loopback. The wrapper changes nothing unless the calling
    task runs inside `gathering_addresses(...)`: the choice travels in a ContextVar, which
    asyncio copies into the tasks aiortc spawns while gathering, so it is scoped to the one
    connection being set up and other aioice users in the process are unaffected.
    """
    global _original_get_host_addresses
    if _original_get_host_addresses is None:
        _original_get_host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = _get_host_addresses


def interface_addresses() -> list[str]:
    """Every address of every interface: IPv4 (loopback included) and global IPv6."""
    found: list[str] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                found.append(ip.ip)
            elif ip.ip[2] == 0 and ip.ip[0] != "::1":  # no scoped (link-local) IPv6
                found.append(ip.ip[0])
    return list(dict.fromkeys(found))


def valid_addresses(addresses: Sequence[str]) -> list[str]:
    """The addresses that parse as IP literals; others are logged and skipped."""
    good = []
    for a in addresses:
        try:
            ipaddress.ip_address(a)
        except ValueError:
            log.warning("WEBRTC_HOST_ADDRESSES: %r is not an IP address; skipped", a)
            continue
        good.append(a)
    return good


@contextmanager
def gathering_addresses(addresses: Sequence[str] | None) -> Iterator[None]:
    """Within this block, ICE gathers host candidates from `addresses` only
    (None: every interface, loopback included, instead of aioice's choice)."""
    install_host_address_hook()
    chosen = valid_addresses(addresses) if addresses is not None else interface_addresses()
    token = _HOST_ADDRESSES.set(tuple(chosen))
    try:
        yield
    finally:
        _HOST_ADDRESSES.reset(token)


def create_peer_connection() -> RTCPeerConnection:
    """A peer connection with no ICE servers.

    With iceServers=None aiortc adds a Google STUN server and waits up to 5 s for it while
    gathering; an empty list gathers host candidates only, so loopback and LAN connect fast.
    """
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


async def answer_offer(
    pc: RTCPeerConnection,
    offer: RTCSessionDescription,
    host_addresses: Sequence[str] | None,
    local_tracks: Sequence[MediaStreamTrack] = (),
) -> RTCSessionDescription:
    """Apply a remote offer, attach `local_tracks` to its transceivers, and return the
    answer with its candidates gathered (vanilla ICE: they are in the SDP)."""
    await pc.setRemoteDescription(offer)
    for track in local_tracks:
        pc.addTrack(track)  # reuses the offer's transceiver of the same kind
    answer = await pc.createAnswer()
    with gathering_addresses(host_addresses):
        await pc.setLocalDescription(answer)
    return pc.localDescription


async def create_offer(
    pc: RTCPeerConnection, host_addresses: Sequence[str] | None
) -> RTCSessionDescription:
    """The client side: create an offer with its candidates gathered (tests, bench)."""
    offer = await pc.createOffer()
    with gathering_addresses(host_addresses):
        await pc.setLocalDescription(offer)
    return pc.localDescription


def shorten_jitter_buffer(receiver: RTCRtpReceiver, prefetch_frames: int = 1) -> bool:
    """Make an audio receiver hand frames on after `prefetch_frames` instead of aiortc's 4.

    aiortc holds every inbound audio frame until 4 later ones arrived: a constant 80 ms
    before the VAD hears the caller (aiortc#543). The mic is only listened to, never played,
    so smoothing jitter buys nothing there. aiortc has no option for it; this replaces the
    receiver's (name-mangled, private) buffer, before any packet arrived. Returns False and
    changes nothing when aiortc's internals are not what this expects.
    """
    attr = "_RTCRtpReceiver__jitter_buffer"
    current = getattr(receiver, attr, None)
    if not isinstance(current, JitterBuffer) or receiver.track is None:
        return False
    if receiver.track.kind != "audio":
        return False
    setattr(receiver, attr, JitterBuffer(capacity=current.capacity, prefetch=prefetch_frames))
    return True


class IdleWatchdog:
    """Calls `on_idle` once nothing has touched it for `timeout_s` and `busy()` is False."""

    def __init__(
        self,
        timeout_s: float,
        on_idle: Callable[[], Awaitable[Any]],
        *,
        busy: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout_s = timeout_s
        self._on_idle = on_idle
        self._busy = busy
        self._clock = clock
        self._last = clock()
        self._task: asyncio.Task[None] | None = None

    def touch(self) -> None:
        self._last = self._clock()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="webrtc-idle-watchdog")

    async def _watch(self) -> None:
        while True:
            remaining = self._last + self.timeout_s - self._clock()
            if remaining > 0:
                await asyncio.sleep(remaining)
                continue
            if self._busy():
                self.touch()
                continue
            log.info("peer idle for %.0f s; closing", self.timeout_s)
            await self._on_idle()
            return

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


__all__ = [
    "IdleWatchdog",
    "answer_offer",
    "create_offer",
    "create_peer_connection",
    "gathering_addresses",
    "install_host_address_hook",
    "shorten_jitter_buffer",
    "interface_addresses",
    "valid_addresses",
]
