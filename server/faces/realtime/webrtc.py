"""WebRTC (POST /webrtc/offer): the route and the registry of callers.

The callers themselves (server/faces/realtime/rtc_peer.py: aiortc, PyAV, the VAD) are imported
when the first offer arrives, in a worker thread so that the loop keeps serving meanwhile; a
server that nobody calls over WebRTC never loads them (~40 MB). Peers live in a per-app registry
and are closed when the client leaves, after WEBRTC_IDLE_TIMEOUT_S without activity, or at
shutdown.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from types import ModuleType
from typing import TYPE_CHECKING

from aiohttp import web

from server.app_keys import METRICS, SETTINGS
from server.deliveries import DELIVERIES
from server.errors import MalformedBody, from_morpheus, json_error, read_json_object

if TYPE_CHECKING:
    from server.faces.realtime.rtc_peer import WebRTCPeer

_PEER_MODULE = "server.faces.realtime.rtc_peer"


async def _peer_module() -> ModuleType:
    """The callers' module, imported off the loop the first time (~0.5 s of imports)."""
    return await asyncio.to_thread(importlib.import_module, _PEER_MODULE)


class PeerRegistry:
    """The peers of one app, so shutdown can close them all."""

    def __init__(self, app: web.Application | None = None) -> None:
        self.peers: dict[str, WebRTCPeer] = {}
        self._app = app  # its deliveries hold the peers too, for the drain

    def add(self, peer: WebRTCPeer) -> None:
        self.peers[peer.id] = peer
        if self._app is not None:
            self._app[DELIVERIES].add(peer)

    def discard(self, peer: WebRTCPeer) -> None:
        self.peers.pop(peer.id, None)
        if self._app is not None:
            self._app[DELIVERIES].discard(peer)

    def get(self, pc_id: str) -> WebRTCPeer | None:
        return self.peers.get(pc_id)

    async def close_all(self) -> None:
        peers = list(self.peers.values())
        await asyncio.gather(*(p.close() for p in peers), return_exceptions=True)


PEERS = web.AppKey("webrtc_peers", PeerRegistry)


async def webrtc_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: a peer registry for the app's lifetime; every peer is closed at shutdown."""
    app[PEERS] = PeerRegistry(app)
    yield
    await app[PEERS].close_all()


async def webrtc_offer(request: web.Request) -> web.Response:
    """POST /webrtc/offer {sdp, type: "offer"} -> {sdp, type: "answer", pc_id}."""
    try:
        body = await read_json_object(request)
    except MalformedBody as e:
        return from_morpheus(e)
    sdp, kind = body.get("sdp"), body.get("type", "offer")
    if not isinstance(sdp, str) or not sdp.strip():
        return json_error(400, "`sdp` must be a non-empty string", field="sdp")
    if kind != "offer":
        return json_error(400, "`type` must be \"offer\"", field="type")
    rtc = await _peer_module()
    try:
        kinds = rtc.offer_media_kinds(sdp)
    except ValueError as e:
        return json_error(400, f"`sdp` is not a valid session description: {e}", field="sdp")
    if "audio" not in kinds:
        return json_error(400, "the offer has no audio m-line (add an audio transceiver)",
                          field="sdp")
    registry = request.app[PEERS]
    settings = request.app[SETTINGS].current
    if len(registry.peers) >= settings.webrtc_max_peers:
        request.app[METRICS].refused.labels("webrtc_peers").inc()
        return json_error(503, f"too many WebRTC peers (WEBRTC_MAX_PEERS="
                          f"{settings.webrtc_max_peers}); retry later", type_="unavailable",
                          headers={"Retry-After": "5"})
    peer = rtc.WebRTCPeer(request.app, registry)
    registry.add(peer)
    try:
        answer = await peer.answer(rtc.session_description(sdp))
    except ValueError as e:  # aiortc's verdict on a malformed or unsupported offer
        await peer.close()
        return json_error(400, f"cannot answer this offer: {e}", field="sdp")
    except BaseException:
        await peer.close()
        raise
    return web.json_response({"sdp": answer.sdp, "type": answer.type, "pc_id": peer.id})


__all__ = ["PEERS", "PeerRegistry", "webrtc_ctx", "webrtc_offer"]
