"""The UI routes: pages and static files served offline, and /ws/perf pushing live snapshots."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import pytest

from server.web_routes import PERF_INTERVAL_S, WEB_DIR

PAGES = [("/", "Morpheus · Playground"), ("/agent", "Morpheus · Voice agent")]


@pytest.mark.parametrize("path,title", PAGES)
async def test_pages_are_served_as_html(serve, path, title):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.get(srv.url + path) as r:
        assert r.status == 200
        assert r.content_type == "text/html"
        body = await r.text()
    assert f"<title>{title}</title>" in body
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def _local_refs(html: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', html)


async def test_every_referenced_file_is_served_with_its_type_and_nothing_is_external(serve):
    srv = await serve(tts_backend="synthetic")
    refs: set[str] = set()
    for path, _ in PAGES:
        async with srv.http.get(srv.url + path) as r:
            html = await r.text()
        # Offline: no script, style or font from anywhere but Morpheus itself.
        assert not re.search(r'(?:src|href)="(?:https?:)?//', html), path
        refs.update(_local_refs(html))
    # Module imports inside the scripts, and the worklet loaded by URL.
    for js in (WEB_DIR / "js").glob("*.js"):
        text = js.read_text()
        assert "http://" not in text and "https://" not in text, js.name
        refs.update("/static/js/" + m for m in re.findall(r'from "\./([\w.-]+\.js)"', text))
        refs.update(re.findall(r'"(/static/js/[\w.-]+\.js)"', text))
    assert "/static/js/pcm-player-worklet.js" in refs and "/static/css/morpheus.css" in refs
    for ref in sorted(refs):
        async with srv.http.get(srv.url + ref) as r:
            assert r.status == 200, ref
            expected = "text/css" if ref.endswith(".css") else ("text/javascript", "application/javascript")
            assert r.content_type in expected, (ref, r.content_type)
            assert len(await r.read()) > 100


async def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET `path` byte for byte: HTTP clients normalise `..` and `%2e` before sending."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        response = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


TRAVERSALS = [
    "/static/../server/web_routes.py",
    "/static/js/../../server/web_routes.py",
    "/static/%2e%2e/server/web_routes.py",
    "/static/%2E%2E/server/web_routes.py",
    "/static/..%2fserver/web_routes.py",
    "/static/%2e%2e%2fserver%2fweb_routes.py",
    "/static/js/..%2f..%2fserver/web_routes.py",
    "/static/..%5cserver/web_routes.py",
    "/static/%252e%252e/server/web_routes.py",
]


async def test_static_does_not_escape_the_web_folder(serve):
    srv = await serve(tts_backend="synthetic")
    # The raw requests do reach the static handler: a path that climbs but stays inside web/
    # is served, and a missing file is a 404.
    status, body = await raw_get(srv.url, "/static/js/../css/morpheus.css")
    assert status == 200 and body == (WEB_DIR / "css" / "morpheus.css").read_bytes()
    assert (await raw_get(srv.url, "/static/js/nope.js"))[0] == 404
    secret = (WEB_DIR.parent / "server" / "web_routes.py").read_bytes()[:200]  # outside web/
    for path in TRAVERSALS:
        status, body = await raw_get(srv.url, path)
        assert status in (400, 403, 404), (path, status)
        assert secret not in body, path


async def _frames(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[tuple[float, dict]]:
    out = []
    for _ in range(n):
        msg = await asyncio.wait_for(ws.receive(), 3)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        out.append((time.monotonic(), msg.json()))
    return out


async def test_perf_socket_pushes_snapshots_four_times_a_second(serve):
    srv = await serve(tts_backend="synthetic")
    async with srv.http.ws_connect(srv.url + "/ws/perf") as ws:
        frames = await _frames(ws, 9)
    snap = frames[-1][1]
    for key in ("active_streams", "queued", "streams", "totals", "backend", "ts_ms"):
        assert key in snap, key
    assert snap["backend"] == "synthetic"
    assert abs(snap["ts_ms"] - time.time() * 1000) < 5000
    span = frames[-1][0] - frames[0][0]
    assert 8 * PERF_INTERVAL_S * 0.7 < span < 8 * PERF_INTERVAL_S * 1.6, span
    stamps = [f["ts_ms"] for _, f in frames]
    assert stamps == sorted(stamps)


async def test_perf_socket_shows_a_stream_from_another_client_while_it_runs(serve):
    # A slow engine (0.5x real time) keeps the HTTP stream alive long enough to be seen.
    srv = await serve(tts_backend="synthetic", synthetic_rtf=0.5)
    text = "One two three four five six seven eight nine ten. " * 4
    async with srv.http.ws_connect(srv.url + "/ws/perf") as ws:
        idle = (await _frames(ws, 1))[0][1]
        assert idle["active_streams"] == 0 and idle["streams"] == []
        async with srv.http.post(srv.url + "/v1/audio/speech",
                                 json={"input": text, "response_format": "pcm"}) as r:
            assert r.status == 200
            await r.content.read(4800)  # audio is flowing: the stream is running
            seen = None
            for _ in range(20):
                snap = (await _frames(ws, 1))[0][1]
                if snap["streams"]:
                    seen = snap
                    break
            assert seen is not None, "the running stream never showed up in /ws/perf"
            row = seen["streams"][0]
            assert seen["active_streams"] >= 1
            assert row["transport"] == "http" and row["backend"] == "synthetic"
            for key in ("id", "state", "buffer_ms", "chunk_size", "ttft_ms", "rtf",
                        "underflows", "audio_ms", "degraded", "voice"):
                assert key in row, key
        # The client hung up; the stream leaves the snapshot.
        for _ in range(40):
            snap = (await _frames(ws, 1))[0][1]
            if not snap["streams"]:
                break
        assert snap["streams"] == [] and snap["active_streams"] == 0
        assert snap["totals"]["requests"] >= 1


async def test_perf_socket_client_leaving_and_server_shutdown_end_the_pushers(serve):
    srv = await serve(tts_backend="synthetic")
    ws = await srv.http.ws_connect(srv.url + "/ws/perf")
    await _frames(ws, 1)
    await ws.close()
    # Another client is still served after the first one left.
    async with srv.http.ws_connect(srv.url + "/ws/perf") as ws2:
        await _frames(ws2, 2)
    ws3 = await srv.http.ws_connect(srv.url + "/ws/perf")
    await _frames(ws3, 1)
    # Shutdown closes open perf sockets rather than waiting on them.
    from server.web_routes import PERF_SOCKETS

    sockets = list(srv.app[PERF_SOCKETS])
    assert len(sockets) == 1
    t0 = time.monotonic()
    await srv.app.shutdown()
    msg = await asyncio.wait_for(ws3.receive(), 3)
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert time.monotonic() - t0 < 2.0
    await ws3.close()
