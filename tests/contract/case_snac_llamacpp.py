"""Orpheus/SNAC against the llama.cpp-protocol test server, SNAC with seeded random weights.

The server streams one random SNAC frame (7 tokens) per two characters of the text, paced at
about twice real time, so the audio length follows the text as speech would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from adapters.base import TTSAdapter
from adapters.errors import EngineError, NoAudioError
from tests.contract import (
    FAULT_TIMEOUTS,
    CaseEnv,
    ContractCase,
    Running,
    closing_adapter,
    make_adapter,
)
from tests.extras import torch_or_skip
from tests.llama_protocol_server import LlamaProtocolServer, Script, refused_url
from tests.snac_fixture import frames_to_token_text, random_frames, write_snac_checkpoint

TOKENS_PER_S = 2 * 7 * 24000 / 2048  # two frames' worth of tokens per frame of audio time


def snac_options(env: CaseEnv, url: str, **extra: Any) -> dict[str, Any]:
    torch_or_skip()  # SNAC decodes on torch here (on 3.10 `make test` installs no torch)
    folder = env.shared / "snac"
    if not (folder / "config.json").exists():
        write_snac_checkpoint(folder)
    return {"snac_url": url, "snac_model": str(folder), "snac_device": "cpu", **extra}


def speech_script(body: dict[str, Any]) -> Script:
    text = str(body.get("prompt", ""))
    frames = max(4, len(text) // 2)
    return Script(events=frames_to_token_text(random_frames(frames, seed=len(text))),
                  tokens_per_s=TOKENS_PER_S)


@asynccontextmanager
async def start(env: CaseEnv) -> AsyncIterator[Running]:
    async with LlamaProtocolServer(speech_script) as srv:
        adapter = make_adapter("snac_llamacpp", **snac_options(env, srv.url))
        async with closing_adapter(adapter):
            yield Running(adapter, live=lambda: len(srv.open_connections()))


@asynccontextmanager
async def refused(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with closing_adapter(make_adapter(
            "snac_llamacpp", **snac_options(env, refused_url(), **FAULT_TIMEOUTS))) as a:
        yield a


@asynccontextmanager
async def timed_out(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    async with LlamaProtocolServer(Script(events=[], fail="stall")) as srv:
        async with closing_adapter(make_adapter(
                "snac_llamacpp", **snac_options(env, srv.url, orpheus_timeout_s=0.8,
                                                **FAULT_TIMEOUTS))) as a:
            yield a


@asynccontextmanager
async def garbage(env: CaseEnv) -> AsyncIterator[TTSAdapter]:
    # A chat model behind the URL: plain text, never an audio token.
    chatter = Script(events=["Sure! ", "Here is ", "a poem ", "about ", "speech."] * 80)
    async with LlamaProtocolServer(chatter) as srv:
        async with closing_adapter(make_adapter(
                "snac_llamacpp", **snac_options(env, srv.url, **FAULT_TIMEOUTS))) as a:
            yield a


CASE = ContractCase(backend="snac_llamacpp", start=start, refused=refused, timed_out=timed_out,
                    garbage=garbage, garbage_errors=(NoAudioError, EngineError),
                    ms_per_char=(25.0, 250.0))
