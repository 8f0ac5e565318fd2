"""Two Morpheus replicas behind Debian's HAProxy on 127.0.0.1: spread, then a drain on SIGTERM.

The balancer runs the shipped deploy/haproxy/haproxy.cfg (health check on /readyz, L7 retry of
a 503 on another replica). Each replica is a real `python -m server.cli serve` process on the
synthetic backend at 2x real time, so a stream takes seconds. One replica gets SIGTERM while it
is speaking: its streams finish with all their audio, /readyz on it answers 503 meanwhile and
the balancer takes it out, new streams go to the other replica, no request through the balancer
fails, and the process exits by itself. A second test sends a public name through the balancer:
the replica serves it when ALLOWED_HOSTS lists it, and the health check passes either way.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from server.app_keys import SETTINGS
from tests.audio_check import pcm_stats
from tests.ports import MorpheusPort, listening_socket, port_of

REPO = Path(__file__).resolve().parent.parent
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
# Debian puts it in /usr/sbin, which is not on a normal user's PATH.
HAPROXY = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
MS_PER_CHAR = 60.0  # the synthetic engine's audio per character of text
ENGINE_RTF = 2.0  # audio seconds made per wall second
GRACE_S = 20  # SHUTDOWN_GRACE_S given to the replicas
# 7.2 s of audio, about 3.6 s of engine time: long enough to signal a replica mid-stream.
LONG_TEXT = ("The replica that is told to stop keeps talking until every sentence it has "
             "started is spoken, and then it leaves.")
SHORT_TEXT = "A short reply from a replica."

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self) -> str:
        return f"--- {self.name} ---\n" + self.log.read_text(errors="replace")[-3000:]


@dataclass
class Result:
    """One request through the balancer."""

    status: int = 0
    served_by: str = ""
    request_id: str = ""
    pcm: bytes = b""
    first_audio: asyncio.Event = field(default_factory=asyncio.Event)
    ended_at: float | None = None
    error: str = ""


def _start(name: str, argv: list[str], env: dict[str, str], tmp: Path,
           pass_fds: tuple[int, ...] = ()) -> Proc:
    log = tmp / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(argv, env=env, cwd=tmp, stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=subprocess.STDOUT, pass_fds=pass_fds)
    return Proc(name, popen, log)


def start_replica(name: str, tmp: Path) -> tuple[Proc, MorpheusPort]:
    """A replica on a port it binds itself: `port.wait(proc.popen)` tells which."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOST": "127.0.0.1",
           "TTS_BACKEND": "synthetic", "BACKENDS": "synthetic", "FALLBACK_BACKEND": "",
           "SYNTHETIC_RTF": str(ENGINE_RTF), "WEBRTC_HOST_ADDRESSES": "127.0.0.1",
           "OUTPUTS_DIR": str(tmp / f"outputs-{name}"), "SHUTDOWN_GRACE_S": str(GRACE_S),
           "PARALLEL_STREAMS": "8", "LOG_LEVEL": "WARNING"}
    port = MorpheusPort(tmp)
    argv = [sys.executable, "-m", "server.cli", "--env-file", "", "serve",
            "--host", "127.0.0.1", *port.args]
    return _start(name, argv, env, tmp), port


class Balancer:
    """HAProxy's two listening sockets, bound here and handed over (`bind fd@N`), so no other
    process can take their ports before HAProxy listens."""

    def __init__(self) -> None:
        self.lb, self.stats = listening_socket(), listening_socket()
        self.url = f"http://127.0.0.1:{port_of(self.lb)}"
        self.stats_url = f"http://127.0.0.1:{port_of(self.stats)}/stats"

    def start(self, servers: list[str], tmp: Path) -> Proc:
        env = {**os.environ, "LB_BIND": f"fd@{self.lb.fileno()}",
               "LB_STATS_BIND": f"fd@{self.stats.fileno()}",
               "MORPHEUS_1": servers[0], "MORPHEUS_2": servers[1]}
        try:
            return _start("haproxy", [str(HAPROXY), "-db", "-f", str(HAPROXY_CFG)], env, tmp,
                          pass_fds=(self.lb.fileno(), self.stats.fileno()))
        finally:
            self.close()  # HAProxy holds them now

    def close(self) -> None:
        self.lb.close()
        self.stats.close()


def stop(proc: Proc) -> None:
    """End a process this test started, by its PID."""
    if proc.popen.poll() is None:
        proc.popen.kill()
    proc.popen.wait(timeout=10)


async def wait_for(predicate, timeout_s: float, what: str, every_s: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout_s
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(every_s)


async def get_status(http: aiohttp.ClientSession, url: str) -> int:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
            await r.read()
            return r.status
    except (aiohttp.ClientError, asyncio.TimeoutError):
        return 0


async def haproxy_stats(http: aiohttp.ClientSession, stats_url: str) -> dict[str, dict[str, str]]:
    """HAProxy's own view of the `morpheus` backend, {server name or BACKEND: CSV row}."""
    async with http.get(stats_url + ";csv") as r:
        text = await r.text()
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return {row["svname"]: row for row in rows if row["pxname"] == "morpheus"}


async def server_states(http: aiohttp.ClientSession, stats_url: str) -> dict[str, str]:
    """{server name: UP / DOWN / ...}."""
    rows = await haproxy_stats(http, stats_url)
    return {name: row["status"] for name, row in rows.items()
            if name not in ("FRONTEND", "BACKEND")}


async def speak(http: aiohttp.ClientSession, url: str, text: str, res: Result) -> Result:
    """A streamed PCM request; records who served it and when its audio started and ended."""
    body = {"input": text, "voice": "sine", "response_format": "pcm", "stream": True}
    try:
        async with http.post(url + "/v1/audio/speech", json=body) as r:
            res.status = r.status
            res.served_by = r.headers.get("X-Served-By", "")
            res.request_id = r.headers.get("X-Request-ID", "")
            pcm = bytearray()
            async for chunk in r.content.iter_any():
                pcm += chunk
                res.first_audio.set()
            res.pcm = bytes(pcm)
    except aiohttp.ClientError as e:  # a failure through the balancer is what this test forbids
        res.error = repr(e)
    finally:
        res.ended_at = time.monotonic()
        res.first_audio.set()
    return res


def assert_whole(res: Result, text: str) -> float:
    """200, no transport error, and the text's audio: real sound of about the right length
    (the chunker drops the spaces where it cuts segments). Returns the duration in seconds."""
    assert res.error == "" and res.status == 200, (res.status, res.error)
    audio = pcm_stats(res.pcm)
    expected_s = len(text) * MS_PER_CHAR / 1000
    assert abs(audio.duration_s - expected_s) < max(0.1, 0.025 * expected_s), audio.duration_s
    assert audio.rms_dbfs > -30, audio.rms_dbfs
    return audio.duration_s


def requests_served(metrics_text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("tts_requests_total{"))


async def test_replicas_share_streams_and_one_drains_on_sigterm_without_a_failed_request(
        tmp_path: Path) -> None:
    assert HAPROXY, "haproxy is missing: `make test` installs it (APT_TEST)"
    balancer = Balancer()
    lb, stats_url = balancer.url, balancer.stats_url
    procs: dict[str, Proc] = {}
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
    try:
        ports = {}
        for name in ("m1", "m2"):
            procs[name], port_file = start_replica(name, tmp_path)
            ports[name] = await asyncio.to_thread(port_file.wait, procs[name].popen)
        direct = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, url in direct.items():
            async def ready(url: str = url) -> bool:
                return await get_status(http, url + "/readyz") == 200
            await wait_for(ready, 90, f"{name} to be ready", every_s=0.2)
        procs["haproxy"] = balancer.start(
            [f"127.0.0.1:{ports['m1']}", f"127.0.0.1:{ports['m2']}"], tmp_path)

        async def both_up() -> bool:
            try:
                return set((await server_states(http, stats_url)).values()) == {"UP"}
            except aiohttp.ClientError:
                return False
        await wait_for(both_up, 20, "HAProxy to see both replicas UP", every_s=0.1)

        # 1. Requests spread over both replicas (leastconn), and each replica's own count agrees.
        spread = await asyncio.gather(*(speak(http, lb, SHORT_TEXT, Result()) for _ in range(6)))
        for res in spread:
            assert_whole(res, SHORT_TEXT)
        by_replica = {name: sum(r.served_by == name for r in spread) for name in direct}
        assert by_replica["m1"] >= 1 and by_replica["m2"] >= 1, by_replica
        assert len({r.request_id for r in spread}) == 6
        for name, url in direct.items():
            async def counted(url: str = url, name: str = name) -> bool:
                async with http.get(url + "/metrics") as r:
                    return requests_served(await r.text()) == by_replica[name]
            await wait_for(counted, 5, f"{name}'s tts_requests_total to match the balancer")

        # 2. Four long streams, two per replica; the one serving m1 is told to stop mid-speech.
        long_runs = [Result() for _ in range(4)]
        tasks = [asyncio.create_task(speak(http, lb, LONG_TEXT, res)) for res in long_runs]
        await asyncio.wait_for(asyncio.gather(*(r.first_audio.wait() for r in long_runs)), 30)
        assert all(r.status == 200 and r.ended_at is None for r in long_runs), \
            [(r.status, r.error) for r in long_runs]
        victim, survivor = "m1", "m2"
        on_victim = [r for r in long_runs if r.served_by == victim]
        assert on_victim, [r.served_by for r in long_runs]
        procs[victim].popen.send_signal(signal.SIGTERM)
        t_term = time.monotonic()

        # Draining: /readyz 503 at once (while its streams still play) and alive on /healthz.
        async def not_ready() -> bool:
            return await get_status(http, direct[victim] + "/readyz") == 503
        await wait_for(not_ready, 2, "/readyz to answer 503 after SIGTERM")
        assert any(r.ended_at is None for r in on_victim), "its streams ended before the check"
        # New streams through the balancer, most likely before its next /readyz check: the
        # draining replica refuses any that reach it (503) and HAProxy retries them on the
        # other one, so every one is whole and served there.
        picked_before = int((await haproxy_stats(http, stats_url))[victim]["lbtot"])
        during = await asyncio.gather(*(speak(http, lb, SHORT_TEXT, Result()) for _ in range(6)))
        refused = int((await haproxy_stats(http, stats_url))[victim]["lbtot"]) - picked_before
        for res in during:
            assert_whole(res, SHORT_TEXT)
            assert res.served_by == survivor
        assert await get_status(http, direct[victim] + "/healthz") == 200
        async with http.post(direct[victim] + "/v1/audio/speech",
                             json={"input": SHORT_TEXT, "response_format": "pcm"}) as r:
            assert r.status == 503, (r.status, await r.text())

        async def taken_out() -> bool:
            return (await server_states(http, stats_url))[victim].startswith("DOWN")
        await wait_for(taken_out, 5, "HAProxy's /readyz check to take the replica out")
        assert procs[victim].popen.poll() is None, "it exited before its streams finished"

        # Its streams finish with all their audio; then the process exits by itself.
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        durations = {(i, r.served_by): assert_whole(r, LONG_TEXT) for i, r in enumerate(long_runs)}
        undisturbed = [d for (_, name), d in durations.items() if name == survivor]
        for (_, name), d in durations.items():  # not one chunk short of an undisturbed stream
            assert name == survivor or abs(d - max(undisturbed)) < 0.07, durations
        last_end = max(r.ended_at or 0 for r in on_victim)
        deadline = t_term + GRACE_S + 15
        while procs[victim].popen.poll() is None and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        t_exit = time.monotonic()
        assert procs[victim].popen.poll() == 0, procs[victim].popen.poll()
        print(f"drain: SIGTERM -> last stream end {last_end - t_term:.2f} s, -> exit "
              f"{t_exit - t_term:.2f} s; {refused} of 6 new streams sent to the draining "
              f"replica were refused there and retried on {survivor}")

        # 3. With one replica gone, the balancer still answers every request.
        after = await asyncio.gather(*(speak(http, lb, SHORT_TEXT, Result()) for _ in range(3)))
        for res in after:
            assert_whole(res, SHORT_TEXT)
            assert res.served_by == survivor
    finally:
        balancer.close()
        await http.close()
        for proc in procs.values():
            stop(proc)
        for proc in procs.values():
            print(proc.tail())


async def test_a_public_name_through_haproxy_needs_allowed_hosts(serve, tmp_path: Path) -> None:
    """HAProxy forwards the client's Host: a replica serves the public name it is told about
    in ALLOWED_HOSTS (HTTP and WebSocket), refuses others with its 403, and HAProxy's own
    health check (Host: localhost) keeps it UP whatever the list says."""
    assert HAPROXY, "haproxy is missing: `make test` installs it (APT_TEST)"
    srv = await serve(tts_backend="synthetic", backends="synthetic", fallback_backend="",
                      allowed_hosts="tts.example.com")
    replica = srv.url.removeprefix("http://")
    balancer = Balancer()
    lb, stats_url = balancer.url, balancer.stats_url
    lb_port = lb.rsplit(":", 1)[1]
    proxy = balancer.start([replica, replica], tmp_path)
    http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
    try:
        async def both_up() -> bool:
            try:
                return set((await server_states(http, stats_url)).values()) == {"UP"}
            except aiohttp.ClientError:
                return False
        await wait_for(both_up, 20, "HAProxy's Host: localhost check to see the replica UP")

        public = {"Host": f"tts.example.com:{lb_port}"}
        body = {"input": SHORT_TEXT, "voice": "sine", "response_format": "pcm"}
        async with http.post(lb + "/v1/audio/speech", json=body, headers=public) as r:
            assert r.status == 200 and r.headers["X-Served-By"] in ("m1", "m2")
            assert_whole(Result(status=r.status, pcm=await r.read()), SHORT_TEXT)
        ws_url = lb.replace("http", "ws") + "/v1/audio/speech/ws"
        async with http.ws_connect(ws_url, headers={**public, "Origin": "http://tts.example.com:"
                                                    f"{lb_port}"}) as ws:
            assert (await ws.receive_json())["type"] == "session.created"
        async with http.get(lb + "/config", headers={"Host": "rebind.example"}) as r:
            assert r.status == 403 and (await r.json())["field"] == "Host"
        srv.app[SETTINGS].update({"allowed_hosts": ""})  # as an .env edit would
        async with http.get(lb + "/config", headers=public) as r:
            assert r.status == 403 and "tts.example.com" in (await r.json())["error"]["message"]
        async with http.get(lb + "/config") as r:  # the balancer's own address: an IP literal
            assert r.status == 200
    finally:
        balancer.close()
        await http.close()
        stop(proxy)
        print(proxy.tail())
