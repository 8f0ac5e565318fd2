"""The benchmark reads the server's own counters by their exposed names (a renamed or
mistyped family would read as zero forever, and a report of "0 underflows" would mean nothing)."""

from __future__ import annotations

from bench.phases import server_underflows


async def test_server_underflows_reads_what_the_server_counted(serve) -> None:  # noqa: ANN001
    slow = await serve(tts_backend="synthetic", synthetic_rtf=0.5)  # slower than real time
    assert await server_underflows(slow.http, slow.url, "synthetic") == 0
    async with slow.http.post(slow.url + "/v1/audio/speech",
                              json={"input": "Slower than real time, twice over.",
                                    "response_format": "pcm"}) as r:
        assert r.status == 200
        await r.read()
    assert await server_underflows(slow.http, slow.url, "synthetic") >= 1
    assert await server_underflows(slow.http, slow.url, "piper") == 0
