"""`morpheus serve` and `morpheus say "text" -o out.wav`, both through the same pipeline;
`morpheus snac export` writes the SNAC decoder as ONNX (for SNAC_ONNX: Orpheus without torch)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from server.config import ConfigSource, ValidationError, build_settings, describe_invalid


def _flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line: a layer above .env and the environment."""
    flags: dict[str, Any] = {}
    for flag, key in (("backend", "tts_backend"), ("host", "host"), ("port", "port")):
        if getattr(args, flag, None):  # `--port 0` is no PORT setting: serve() takes it
            flags[key] = getattr(args, flag)
    return flags


class SettingsRefused(Exception):
    """The settings cannot work together; the message names them (for the operator)."""


def _settings(args: argparse.Namespace):  # noqa: ANN202
    env_file = Path(args.env_file) if args.env_file else None
    try:
        return build_settings(ConfigSource(env_file=env_file, flags=_flags(args))), env_file
    except ValidationError as e:
        where = f"{env_file}, " if env_file is not None and env_file.exists() else ""
        raise SettingsRefused(
            f"morpheus: refusing to start, the settings would not work: {describe_invalid(e)}. "
            f"Settings come from {where}the environment and the command line "
            "(docs/configuration.md).") from None


def serve(args: argparse.Namespace) -> int:
    from server.app import create_app
    from server.lifecycle import serve_until_signalled, warn_if_exposed
    from server.logs import setup_logging

    settings, env_file = _settings(args)
    setup_logging(settings.log_level)
    app = create_app(settings, env_file=env_file, flags=_flags(args))
    warn_if_exposed(settings.host, settings.api_key)
    port = 0 if args.port == 0 else settings.port  # 0: the OS picks a free port
    print(f"Morpheus on http://{settings.host}:{port or '<any free port>'}/ "
          f"(backend: {settings.tts_backend})", file=sys.stderr, flush=True)
    port_file = Path(args.port_file) if args.port_file else None
    asyncio.run(serve_until_signalled(app, settings.host, port, port_file=port_file))
    return 0


async def _say(args: argparse.Namespace) -> int:
    from adapters.base import PIPELINE_RATE_HZ
    from adapters.errors import MorpheusError
    from dsp.encoders import make_encoder
    from server.app import create_app
    from server.app_keys import ORCHESTRATOR
    from server.core.events import AudioOut
    from server.core.stream import StreamSpec

    settings, _ = _settings(args)
    settings = settings.model_copy(update={"wyoming_uri": ""})  # `say` serves nothing
    app = create_app(settings, warm=False)
    runner = web.AppRunner(app)
    await runner.setup()  # runs the lifecycle; no socket is opened
    try:
        orch = app[ORCHESTRATOR]
        fmt = Path(args.output).suffix.lstrip(".") or "wav"
        enc = make_encoder(fmt, PIPELINE_RATE_HZ, streaming=False)
        stream = await orch.open(StreamSpec(voice=args.voice, speed=args.speed, transport="cli"))
        stream.push_text(args.text)
        stream.end_input()
        out = bytearray()
        try:
            async for ev in stream:
                if isinstance(ev, AudioOut):
                    out += enc.encode(ev.pcm)
        finally:
            await stream.aclose()
        out += enc.flush()
        await asyncio.to_thread(Path(args.output).write_bytes, bytes(out))
        print(f"{args.output}: {stream.audio_ms / 1000:.2f} s from {stream.backend}"
              f" (first audio {stream.ttft_ms or 0:.0f} ms)", file=sys.stderr)
        return 0
    except MorpheusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        await runner.cleanup()


def snac_export(args: argparse.Namespace) -> int:
    """SNAC_MODEL directory -> ONNX decoder (needs torch and snac, once)."""
    import time

    from adapters.orpheus.model import load_snac
    from adapters.orpheus.runtime import export_onnx

    t0 = time.perf_counter()
    try:
        model = load_snac(args.model, "cpu")
    except (ImportError, OSError, ValueError) as e:
        print(f"error: cannot load SNAC from {args.model}: {e}", file=sys.stderr)
        return 1
    out = export_onnx(model, args.out)
    print(f"{out}: SNAC decoder (frames [batch, T, 7] -> audio [batch, T*2048]), "
          f"{out.stat().st_size / 2**20:.1f} MB, in {time.perf_counter() - t0:.0f} s; "
          f"use it with SNAC_ONNX={out}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="morpheus", description=__doc__)
    parser.add_argument("--env-file", default=os.environ.get("MORPHEUS_ENV_FILE", ".env"))
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_serve = sub.add_parser("serve", help="run the server")
    p_serve.add_argument("--host")
    p_serve.add_argument("--port", type=int, help="0: any free port (see --port-file)")
    p_serve.add_argument("--port-file", help="once listening, write the port to this file "
                         "(with --port 0, the one the OS chose: no race for a free port)")
    p_serve.add_argument("--backend")
    p_say = sub.add_parser("say", help="speak text into a file")
    p_say.add_argument("text")
    p_say.add_argument("-o", "--output", default="out.wav")
    p_say.add_argument("--voice")
    p_say.add_argument("--speed", type=float, default=1.0)
    p_say.add_argument("--backend")
    p_snac = sub.add_parser("snac", help="SNAC decoder tools")
    snac_sub = p_snac.add_subparsers(dest="snac_cmd", required=True)
    p_export = snac_sub.add_parser("export", help="write the SNAC decoder as ONNX (SNAC_ONNX)")
    p_export.add_argument("--model", required=True, help="SNAC_MODEL directory (hub layout)")
    p_export.add_argument("--out", default="snac_decoder.onnx")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "serve":
            return serve(args)
        if args.cmd == "snac":
            return snac_export(args)
        return asyncio.run(_say(args))
    except SettingsRefused as e:
        print(e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
