"""DNS rebinding: a page whose name is re-pointed at 127.0.0.1 is refused on every route and
upgrade by the Host it names; IP literals, localhost and ALLOWED_HOSTS names are served."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from server.app_keys import SETTINGS
from server.config import Settings, ValidationError
from server.security import host_allowed
from tests.test_security import routes

REBOUND = "rebind.example"
WS_ROUTES = ("/v1/audio/speech/ws", "/v1/text-to-speech/x/stream-input",
             "/v1/text-to-speech/x/multi-stream-input", "/ws/perf")


def port_of(srv) -> int:  # noqa: ANN001
    return int(srv.url.rsplit(":", 1)[1])


async def request(srv, method: str, path: str, host: str, *, origin: str | None = None,  # noqa: ANN001
                  body: object = None) -> tuple[int, dict]:
    headers = {"Host": host, "Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    data = json.dumps(body if body is not None else {}).encode() \
        if method in ("POST", "PUT", "PATCH") else None
    async with srv.http.request(method, srv.url + path, headers=headers, data=data) as r:
        raw = await r.read()
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = {}
        return r.status, parsed if isinstance(parsed, dict) else {}


async def raw_request(srv, head: bytes) -> tuple[int, bytes]:  # noqa: ANN001
    """Send request bytes as written (a missing or empty Host cannot be sent otherwise)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(srv))
    writer.write(head)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


def refused_for_host(status: int, body: dict, name: str) -> bool:
    message = body.get("error", {}).get("message", "")
    return (status == 403 and body.get("field") == "Host" and "ALLOWED_HOSTS" in message
            and name in message)


async def test_every_route_refuses_a_rebound_name_and_serves_the_loopback_address(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    rebound = f"{REBOUND}:{port_of(srv)}"
    table = routes(srv.app)
    assert len(table) >= 15, table
    for method, path in table:
        # As the rebound page's own fetch() sends it: same-origin in the browser's eyes.
        status, body = await request(srv, method, path, rebound, origin=f"http://{rebound}")
        assert refused_for_host(status, body, rebound), (method, path, status, body)
        status, body = await request(srv, method, path, rebound)  # a GET carries no Origin
        assert refused_for_host(status, body, rebound), (method, path, status, body)
        status, _ = await request(srv, method, path, f"127.0.0.1:{port_of(srv)}")
        assert status != 403, (method, path, status)


async def test_the_reported_attack_no_longer_switches_the_backend_or_speaks(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    rebound = f"{REBOUND}:{port_of(srv)}"
    same_origin = f"http://{rebound}"
    status, body = await request(srv, "POST", "/config", rebound, origin=same_origin,
                                 body={"tts_backend": "espeak"})
    assert refused_for_host(status, body, rebound), body
    status, body = await request(srv, "GET", "/config", rebound)
    assert refused_for_host(status, body, rebound) and "tts_backend" not in body
    status, body = await request(srv, "POST", "/v1/audio/speech", rebound, origin=same_origin,
                                 body={"input": "Hello there."})
    assert refused_for_host(status, body, rebound), body
    assert srv.app[SETTINGS].current.tts_backend == "synthetic"


async def test_websocket_upgrades_and_the_webrtc_offer_refuse_a_rebound_name(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    rebound = f"{REBOUND}:{port_of(srv)}"
    ws_base = srv.url.replace("http", "ws")
    for path in WS_ROUTES:
        for headers in ({"Host": rebound, "Origin": f"http://{rebound}"}, {"Host": rebound}):
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await srv.http.ws_connect(ws_base + path, headers=headers)
            assert info.value.status == 403, (path, headers)
        # The loopback address and localhost upgrade (the check is not refusing everything).
        for host in (f"127.0.0.1:{port_of(srv)}", f"localhost:{port_of(srv)}"):
            async with srv.http.ws_connect(ws_base + path, headers={"Host": host}) as ws:
                assert not ws.closed, path
    offer = {"sdp": "", "type": "offer"}
    status, body = await request(srv, "POST", "/webrtc/offer", rebound,
                                 origin=f"http://{rebound}", body=offer)
    assert refused_for_host(status, body, rebound), body
    status, _ = await request(srv, "POST", "/webrtc/offer", f"127.0.0.1:{port_of(srv)}",
                              body=offer)
    assert status == 400  # past the Host check: the empty SDP is what is wrong


@pytest.mark.parametrize("host", [
    "127.0.0.1", "127.0.0.1:{port}", "[::1]:{port}", "[::1]", "[0:0:0:0:0:0:0:1]:{port}",
    "localhost", "localhost:{port}", "localhost.", "LocalHost.:{port}", "foo.localhost",
    "foo.localhost:{port}", "a.b.localhost.:{port}", "192.168.1.20:{port}",
])
async def test_ip_literals_and_localhost_names_are_served(serve, host: str) -> None:
    srv = await serve(tts_backend="synthetic")
    status, body = await request(srv, "GET", "/config", host.format(port=port_of(srv)))
    assert status == 200 and body["tts_backend"] == "synthetic", (host, status, body)


@pytest.mark.parametrize("host", [
    "rebind.example", "rebind.example:{port}", "rebind.example.:{port}",
    "localhost.rebind.example:{port}", "127.0.0.1.rebind.example", "localhostx:{port}",
    "::1", "[::1]x", "[not-an-ip]:{port}", "localhost:port", "localhost:",
])
async def test_other_names_and_malformed_hosts_are_refused(serve, host: str) -> None:
    srv = await serve(tts_backend="synthetic")
    status, body = await request(srv, "GET", "/config", host.format(port=port_of(srv)))
    assert status == 403 and body["field"] == "Host", (host, status, body)


@pytest.mark.parametrize("host_line", [b"Host: :{port}\r\n", b"Host: \r\n", b"",
                                       b"Host: 127.0.0.1\r\nHost: rebind.example\r\n"])
async def test_a_request_that_names_no_host_is_refused(serve, host_line: bytes) -> None:
    """Ollama's loopback check let an empty host through; aiohttp's request.host falls back to
    the socket's own address when the header is missing, which must not count either."""
    srv = await serve(tts_backend="synthetic")
    line = host_line.replace(b"{port}", str(port_of(srv)).encode())
    for http in (b"HTTP/1.1", b"HTTP/1.0"):
        status, body = await raw_request(
            srv, b"GET /config " + http + b"\r\n" + line + b"Connection: close\r\n\r\n")
        assert status in (400, 403) and b"tts_backend" not in body, (host_line, http, status)
    status, body = await raw_request(
        srv, b"GET /config HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert status == 200 and b"tts_backend" in body


async def test_the_refusal_names_the_host_sanitised(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    status, body = await raw_request(
        srv, b"GET /config HTTP/1.1\r\nHost: ev\xc3\xa9l." + b"x" * 300 +
        b".example\r\nConnection: close\r\n\r\n")
    message = json.loads(body)["error"]["message"]
    assert status == 403 and "ALLOWED_HOSTS" in message
    assert message.isascii() and message.isprintable() and "ev" in message
    assert len(message) < 400 and "..." in message


@pytest.mark.parametrize("allowed,host,ok", [
    ("tts.example.com", "tts.example.com:{port}", True),
    ("tts.example.com", "TTS.example.com.", True),
    ("tts.example.com", "other.example.com", False),
    ("tts.example.com", "tts.example.com.evil.example", False),
    ("*.corp.example", "a.corp.example:{port}", True),
    ("*.corp.example", "x.y.corp.example", True),
    ("*.corp.example", "corp.example", False),
    ("*.corp.example", "evilcorp.example", False),
    ("tts.example.com, *.corp.example", "b.corp.example", True),
    ("*", "anything.example:{port}", True),
    ("*", ":{port}", False),
    ("tts.example.com", "127.0.0.1:{port}", True),
    ("tts.example.com", "localhost", True),
])
async def test_allowed_hosts_admits_names_exact_and_wildcard(serve, allowed: str, host: str,
                                                             ok: bool) -> None:
    srv = await serve(tts_backend="synthetic", allowed_hosts=allowed)
    status, body = await request(srv, "GET", "/config", host.format(port=port_of(srv)))
    assert (status == 200) is ok and (ok or status == 403), (allowed, host, status, body)


@pytest.mark.parametrize("allowed,host,ok", [
    ("", "tts.example.com:{port}", True),  # no list: any name (API_KEY guards this case)
    ("", "rebind.example", True),
    ("", ":{port}", False),  # but a request must still name a host
    ("tts.example.com", "tts.example.com", True),
    ("tts.example.com", "rebind.example:{port}", False),
    ("tts.example.com", "10.0.0.7:{port}", True),  # IP literals cannot be rebound
])
async def test_a_server_bound_beyond_loopback_checks_allowed_hosts_only_when_set(
        serve, allowed: str, host: str, ok: bool) -> None:
    # settings.host says where it listens; the test itself still binds 127.0.0.1 only.
    srv = await serve(tts_backend="synthetic", host="0.0.0.0", allowed_hosts=allowed)
    status, body = await request(srv, "GET", "/config", host.format(port=port_of(srv)))
    assert (status == 200) is ok and (ok or status == 403), (allowed, host, status, body)


async def test_allowed_hosts_is_never_set_over_the_network(serve) -> None:
    srv = await serve(tts_backend="synthetic")
    status, body = await request(srv, "POST", "/config", f"127.0.0.1:{port_of(srv)}",
                                 body={"allowed_hosts": "*"})
    assert status == 403 and body["field"] == "allowed_hosts"
    status, _ = await request(srv, "GET", "/config", REBOUND)
    assert status == 403


@pytest.mark.parametrize("value", ["http://tts.example.com", "tts.example.com:443",
                                   "tts.*.com", "a b", "*example.com"])
def test_allowed_hosts_takes_names_only(value: str) -> None:
    with pytest.raises(ValidationError, match="allowed_hosts"):
        Settings(allowed_hosts=value)


def test_the_rules_on_their_own() -> None:
    assert host_allowed("[::1]:5005", "", loopback_only=True)
    assert not host_allowed(None, "*", loopback_only=False)
    assert not host_allowed("", "", loopback_only=False)
    assert host_allowed("Foo.Localhost.:80", "", loopback_only=True)
    assert not host_allowed("foo.localhost.evil", "", loopback_only=True)
