"""The adapter contract, checked for every registered backend against its real local engine or
server (cases in tests/contract/, one module per backend).

For each backend: speakable text gives real audio at the rate each chunk declares, with
`is_final` exactly once, on the last chunk; punctuation-only text gives audio or a typed error,
never an empty stream; cancelling after the first chunk stops the engine within one chunk and
closes the upstream connection (counted on the server side); a refused, a silent and a garbage
upstream each raise a typed error.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from adapters import registry
from adapters.base import AudioChunk, TTSAdapter, TTSInput
from adapters.errors import (
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    MorpheusError,
    TTSError,
)
from dsp.levels import rms_dbfs
from server.config import Settings
from tests.contract import LONG_TEXT, SPEAKABLE, CaseEnv, ContractCase, discover

CASES = discover()
FAULT_ERRORS: dict[str, tuple[type[Exception], ...]] = {
    "refused": (BackendUnavailable,),
    "timed_out": (BackendTimeout,),
}
SETTLE_S = 0.5  # after a cancel, time for a runaway engine to show itself


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("contract-shared")


@pytest.fixture
def env(tmp_path: Path, shared_dir: Path) -> CaseEnv:
    return CaseEnv(tmp=tmp_path, shared=shared_dir)


def by_id(cases: list[ContractCase]) -> list[pytest.param]:  # type: ignore[valid-type]
    return [pytest.param(c, id=c.id) for c in cases]


def test_every_registered_backend_has_a_contract_case() -> None:
    covered = {c.backend for c in CASES}
    missing = sorted(set(registry.BACKENDS) - covered)
    assert not missing, (f"backends without a contract case: {missing}; add "
                         f"tests/contract/case_<backend>.py (see tests/contract/__init__.py)")
    unknown = sorted(covered - set(registry.BACKENDS))
    assert not unknown, f"contract cases for backends not in the registry: {unknown}"


@pytest.mark.parametrize("name", sorted(registry.BACKENDS))
def test_every_backend_builds_from_the_default_settings(name: str) -> None:
    """`from_options` reads every key it needs from the flat settings mapping."""
    adapter = registry.create(name, Settings().model_dump())
    assert type(adapter) is registry.load_class(name) and adapter.name == name


async def collect(adapter: TTSAdapter, text: str) -> list[AudioChunk]:
    async with aclosing(adapter.synth_stream(TTSInput(text=text))) as chunks:
        return [c async for c in chunks]


@pytest.mark.parametrize("case", by_id(CASES))
async def test_speakable_text_gives_real_audio_and_one_final_chunk(case: ContractCase,
                                                                   env: CaseEnv) -> None:
    async with case.start(env) as run:
        built = run.adapter.capabilities
        await asyncio.wait_for(run.adapter.warmup(), 120)
        chunks = await asyncio.wait_for(collect(run.adapter, SPEAKABLE), 120)
        assert chunks, "speakable text gave an empty stream"
        assert run.adapter.capabilities == built, "capabilities changed after construction"
        finals = [i for i, c in enumerate(chunks) if c.is_final]
        assert finals == [len(chunks) - 1], f"is_final on chunks {finals} of {len(chunks)}"
        rates = {c.sample_rate_hz for c in chunks if c.pcm}
        assert len(rates) == 1 and min(rates) >= 8000, rates
        rate = rates.pop()
        assert all(len(c.pcm) % 2 == 0 for c in chunks), "a chunk cut a sample in half"
        pcm = b"".join(c.pcm for c in chunks)
        seconds = len(pcm) / 2 / rate
        lo, hi = case.ms_per_char
        assert lo * len(SPEAKABLE) / 1000 <= seconds <= hi * len(SPEAKABLE) / 1000, seconds
        assert rms_dbfs(pcm) > -35, "the audio is (nearly) silent"
        if run.server_audio_ms is not None:
            # Read at the rate it declares, the audio lasts exactly what the server sent.
            sent_s = run.server_audio_ms() / 1000
            assert abs(seconds - sent_s) <= 0.01 * sent_s + 0.005, (seconds, sent_s)


@pytest.mark.parametrize("case", by_id(CASES))
async def test_punctuation_only_is_audio_or_a_typed_error(case: ContractCase,
                                                          env: CaseEnv) -> None:
    async with case.start(env) as run:
        try:
            chunks = await asyncio.wait_for(collect(run.adapter, "?! ..."), 120)
        except (TTSError, BadRequest):
            return
        assert chunks and chunks[-1].is_final and b"".join(c.pcm for c in chunks), \
            "no error and no audio: a silent empty stream"


@pytest.mark.parametrize("case", by_id(CASES))
async def test_cancel_after_the_first_chunk_stops_the_engine(case: ContractCase,
                                                             env: CaseEnv) -> None:
    async with case.start(env) as run:
        stream = run.adapter.synth_stream(TTSInput(text=LONG_TEXT))
        first = await asyncio.wait_for(stream.__anext__(), 120)
        assert first.pcm or first.is_final
        work_at_cancel = run.work_done() if run.work_done is not None else 0
        t0 = time.monotonic()
        await asyncio.wait_for(stream.aclose(), 10)
        closed_in = time.monotonic() - t0
        assert closed_in < 5, f"closing the stream took {closed_in:.1f} s"
        if run.live is not None:
            for _ in range(500):  # up to 5 s
                if not run.live():
                    break
                await asyncio.sleep(0.01)
            assert run.live() == 0, f"{run.live()} upstream connection(s)/process(es) left open"
        await asyncio.sleep(SETTLE_S)
        if run.work_done is not None:
            extra = run.work_done() - work_at_cancel
            assert extra <= 1, f"the engine made {extra} more chunks after the cancel"


FAULT_PARAMS = [pytest.param(c, name, id=f"{c.id}-{name}") for c in CASES
                for name in c.faults()]


@pytest.mark.parametrize("case,fault", FAULT_PARAMS)
async def test_upstream_faults_raise_typed_errors(case: ContractCase, fault: str,
                                                  env: CaseEnv) -> None:
    expected = FAULT_ERRORS.get(fault, case.garbage_errors)
    t0 = time.monotonic()
    async with case.faults()[fault](env) as adapter:
        with pytest.raises(MorpheusError) as info:
            await asyncio.wait_for(collect(adapter, SPEAKABLE), 60)
    assert isinstance(info.value, expected), f"{fault}: got {type(info.value).__name__}: " \
                                             f"{info.value}"
    assert time.monotonic() - t0 < 30
