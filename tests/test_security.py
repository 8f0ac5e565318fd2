"""Safe by default: API key on every route, cross-site requests refused, network-set paths
confined, outputs pruning that never deletes a user's files, raw path traversal."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from unittest import mock

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request

from server.admin import post_config
from server.app import create_app
from server.app_keys import SETTINGS
from server.config import Settings
from server.security import public_path

KEY = "s3cret-key"
OPEN = {("GET", "/healthz"), ("GET", "/readyz")}


def concrete(path: str) -> str:
    """A request path for a route pattern: every {param} gets a harmless value."""
    return re.sub(r"\{[^}]+\}", "x", path)


def routes(app) -> list[tuple[str, str]]:  # noqa: ANN001
    out = set()
    for route in app.router.routes():
        info = route.get_info()
        path = info.get("path") or info.get("formatter") or (info.get("prefix", "") + "/x")
        if route.method in ("HEAD", "*"):
            continue
        out.add((route.method, concrete(path)))
    return sorted(out)


async def call(srv, method: str, path: str, headers: dict[str, str] | None = None) -> int:  # noqa: ANN001
    async with srv.http.request(method, srv.url + path, headers=headers or {},
                                data=b"{}" if method in ("POST", "PUT", "PATCH") else None) as r:
        return r.status


async def test_every_route_but_the_probes_needs_the_key(serve) -> None:
    srv = await serve(tts_backend="synthetic", api_key=KEY)
    table = routes(srv.app)
    assert len(table) >= 15, table
    for method, path in table:
        status = await call(srv, method, path, {"Content-Type": "application/json"})
        if (method, path) in OPEN:
            assert status == 200, (method, path, status)
            continue
        if public_path(method, path):  # the UI's pages and assets: they ask for the key
            assert path in ("/", "/agent") or path.startswith("/static/"), path
            assert status in (200, 404), (method, path, status)
            continue
        assert status == 401, (method, path, status)
        wrong = await call(srv, method, path, {"Authorization": "Bearer nope",
                                               "Content-Type": "application/json"})
        assert wrong == 401, (method, path, wrong)
        right = await call(srv, method, path, {"Authorization": f"Bearer {KEY}",
                                               "Content-Type": "application/json"})
        assert right != 401, (method, path, right)


async def test_401_is_json_and_never_echoes_the_key(serve) -> None:
    srv = await serve(tts_backend="synthetic", api_key=KEY)
    async with srv.http.get(srv.url + "/config", headers={"Authorization": "Bearer guess"}) as r:
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        body = await r.json()
    assert body["error"]["type"] == "authentication_error" and "guess" not in json.dumps(body)
    async with srv.http.get(srv.url + "/config", headers={"xi-api-key": KEY}) as r:
        assert r.status == 200
        cfg = await r.json()
    assert cfg["api_key"] == "***"


async def test_websocket_and_webrtc_take_the_key_as_a_query_parameter(serve) -> None:
    srv = await serve(tts_backend="synthetic", api_key=KEY)
    ws_url = srv.url.replace("http", "ws") + "/v1/audio/speech/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await srv.http.ws_connect(ws_url)
    assert info.value.status == 401
    async with srv.http.ws_connect(f"{ws_url}?api_key={KEY}") as ws:
        assert (await ws.receive_json())["type"] == "session.created"
    async with srv.http.post(srv.url + "/webrtc/offer", json={"sdp": "", "type": "offer"}) as r:
        assert r.status == 401
    async with srv.http.post(f"{srv.url}/webrtc/offer?api_key={KEY}",
                             json={"sdp": "", "type": "offer"}) as r:
        assert r.status == 400  # past the key: the empty SDP is what is wrong


async def test_the_cross_site_reconfiguration_attack_is_refused(serve, tmp_path: Path) -> None:
    victim = tmp_path / "my-music"
    victim.mkdir()
    (victim / "song.wav").write_bytes(b"RIFF")
    srv = await serve(tts_backend="synthetic")
    evil = {"Origin": "http://evil.example"}
    body = json.dumps({"outputs_dir": str(victim), "outputs_max_files": 1})
    async with srv.http.post(srv.url + "/config", data=body,
                             headers={**evil, "Content-Type": "text/plain"}) as r:
        assert r.status in (403, 415)
    async with srv.http.post(srv.url + "/config", data=body,
                             headers={**evil, "Content-Type": "application/json"}) as r:
        assert r.status == 403 and (await r.json())["field"] == "Origin"
    async with srv.http.post(srv.url + "/speak", data=json.dumps({"text": "hi"}),
                             headers={**evil, "Content-Type": "text/plain"}) as r:
        assert r.status in (403, 415)
    # Same machine, no Origin (curl): the path itself is refused without MODELS_DIR.
    async with srv.http.post(srv.url + "/config", json={"outputs_dir": str(victim)}) as r:
        assert r.status == 403 and (await r.json())["field"] == "outputs_dir"
    async with srv.http.get(srv.url + "/config") as r:
        assert (await r.json())["outputs_dir"] != str(victim)
    assert (victim / "song.wav").exists()


async def test_same_origin_and_listed_origins_pass_with_cors_only_for_listed(serve) -> None:
    srv = await serve(tts_backend="synthetic", cors_origins="http://app.example:3000")
    own = {"Origin": srv.url}
    async with srv.http.post(srv.url + "/config", json={"playback_buffer_ms": 300},
                             headers=own) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers
    listed = {"Origin": "http://app.example:3000"}
    async with srv.http.post(srv.url + "/v1/audio/speech", json={"input": "Hi there."},
                             headers=listed) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example:3000"
        assert "X-Request-ID" in r.headers["Access-Control-Expose-Headers"]
        await r.read()
    async with srv.http.options(srv.url + "/v1/audio/speech", headers={
            **listed, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization"}) as r:
        assert r.status == 204 and "Authorization" in r.headers["Access-Control-Allow-Headers"]
    async with srv.http.get(srv.url + "/v1/audio/voices",
                            headers={"Origin": "http://other.example"}) as r:
        assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


async def test_a_foreign_origin_websocket_is_refused(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    ws_url = srv.url.replace("http", "ws") + "/v1/audio/speech/ws"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await srv.http.ws_connect(ws_url, headers={"Origin": "http://evil.example"})
    assert info.value.status == 403
    async with srv.http.ws_connect(ws_url, headers={"Origin": srv.url}) as ws:
        assert (await ws.receive_json())["type"] == "session.created"


async def test_paths_over_the_network_must_stay_under_models_dir(serve, tmp_path: Path) -> None:
    models = tmp_path / "models"
    (models / "voices").mkdir(parents=True)
    srv = await serve(tts_backend="synthetic", models_dir=str(models))
    for value in ("/etc", str(tmp_path), "../", "voices/../../"):
        async with srv.http.post(srv.url + "/config", json={"piper_voices_dir": value}) as r:
            assert r.status == 403, value
            assert (await r.json())["field"] == "piper_voices_dir"
    async with srv.http.post(srv.url + "/config", json={"piper_voices_dir": "voices"}) as r:
        assert r.status == 200
        assert (await r.json())["config"]["piper_voices_dir"] == str((models / "voices").resolve())
    for key, value in (("models_dir", "/"), ("api_key", "x"), ("port", 1), ("host", "0.0.0.0"),
                       ("command_tts", "sh -c 'rm -rf ~'"), ("command_tts_voices", "a")):
        async with srv.http.post(srv.url + "/config", json={key: value}) as r:
            assert r.status == 403 and (await r.json())["field"] == key


async def test_post_config_from_another_machine_needs_an_api_key(tmp_path: Path) -> None:
    def request(app):  # noqa: ANN001, ANN202
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda k, d=None: (
            ("192.168.1.50", 40000) if k == "peername" else d)
        return make_mocked_request("POST", "/config", app=app, transport=transport,
                                   headers={"Content-Type": "application/json"})

    app = create_app(Settings(outputs_dir=tmp_path), warm=False)
    resp = await post_config(request(app))
    assert resp.status == 403 and b"API_KEY" in resp.body


async def test_pruning_deletes_only_files_morpheus_wrote(serve, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "holiday.wav"
    mine.write_bytes(b"RIFF....")
    srv = await serve(tts_backend="synthetic", outputs_dir=out, outputs_max_files=1)
    names = []
    for i in range(3):
        async with srv.http.post(srv.url + "/speak", json={"text": f"Take {i}.",
                                                           "voice": "sine"}) as r:
            assert r.status == 200
            names.append((await r.json())["output_file"].split("/")[-1])
            await asyncio.sleep(0.01)
    left = sorted(p.name for p in out.glob("*.wav"))
    assert left == sorted(["holiday.wav", names[-1]])
    async with srv.http.get(f"{srv.url}/outputs/.morpheus-outputs") as r:
        assert r.status == 404


@pytest.mark.parametrize("raw_path", [
    "/outputs/../pyproject.toml", "/outputs/%2e%2e/pyproject.toml",
    "/outputs/..%2fpyproject.toml", "/outputs/%2e%2e%2fpyproject.toml",
])
async def test_outputs_traversal_with_raw_paths(serve, raw_path: str) -> None:
    srv = await serve(tts_backend="synthetic")
    host, port = srv.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {raw_path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 404), response[:200]
    assert b"build-system" not in response


def test_every_path_or_command_setting_is_guarded() -> None:
    """A new setting that names a file, a folder or a command must be marked, or POST /config
    could point the server at anything: this catches one added without the marker."""
    from server.config import FILESYSTEM, LOCAL_ONLY, field_names, marked

    guarded = marked(FILESYSTEM) | marked(LOCAL_ONLY)
    suspicious = {n for n in field_names()
                  if n.endswith(("_dir", "_path", "_file", "_gguf", "_onnx"))
                  or n.endswith("_model") and not n.endswith("tts_model")  # a name, not a path
                  or n.startswith("command_tts") and n != "command_tts_rate"
                  or n == "piper_voice"}
    assert suspicious <= guarded, suspicious - guarded


async def test_a_network_set_upstream_address_does_not_take_the_stored_key_along(serve) -> None:
    srv = await serve(tts_backend="synthetic", elevenlabs_api_key="sk-real",
                      elevenlabs_base_url="http://127.0.0.1:9")
    async with srv.http.post(srv.url + "/config",
                             json={"elevenlabs_base_url": "http://attacker.example"}) as r:
        assert r.status == 200
        body = await r.json()
    assert body["cleared_keys"] == ["elevenlabs_api_key"]
    assert srv.app[SETTINGS].current.elevenlabs_api_key is None
    # Sending the key with the address keeps it; an unchanged address clears nothing.
    async with srv.http.post(srv.url + "/config", json={
            "elevenlabs_base_url": "http://127.0.0.1:10", "elevenlabs_api_key": "sk-new"}) as r:
        assert (await r.json())["cleared_keys"] == []
    async with srv.http.post(srv.url + "/config",
                             json={"elevenlabs_base_url": "http://127.0.0.1:10"}) as r:
        assert (await r.json())["cleared_keys"] == []
    assert srv.app[SETTINGS].current.elevenlabs_api_key == "sk-new"
