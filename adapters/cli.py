"""Command line: run the gateway, run the demo, manage tokens.

    python -m adapters.cli serve [--host 0.0.0.0] [--port 8000]
    python -m adapters.cli demo                     # gateway + simulated grok.com + a demo account
    python -m adapters.cli tokens add TOKEN... | --file tokens.txt [--tag t] [--note n]
    python -m adapters.cli tokens list
    python -m adapters.cli smoke https://my-gateway.example [--key sk-...]   # check a deployed gateway
    python -m adapters.cli store stop                 # stop the embedded Redis this data dir started
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict

from core.pool import import_report
from core.settings import Settings, SettingsError

DEMO_TOKEN = "demo-session-token-0000000000000000"


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


def serve(host: str, port: int, settings: Settings | None = None, *, access_log: bool = True) -> None:
    import uvicorn

    from api._app import create_app

    app = create_app(settings or _settings())
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_keep_alive=75, access_log=access_log)


async def _with_pool(settings: Settings, action):  # action: async (TokenPool) -> object
    from core.gateway import Gateway

    gateway = Gateway.from_settings(settings)
    try:
        return await action(gateway.pool)
    finally:
        await gateway.aclose()


def tokens_add(raw: Sequence[str | bytes], tags: Sequence[str], note: str) -> int:
    settings = _settings()
    report = asyncio.run(_with_pool(settings, lambda pool: pool.add(list(raw), tags=tuple(tags), note=note)))
    print(json.dumps(import_report(report), indent=2))
    return 0


def tokens_list() -> int:
    settings = _settings()
    accounts = asyncio.run(_with_pool(settings, lambda pool: pool.list()))
    for account in accounts:
        print(json.dumps(asdict(account), ensure_ascii=False))
    if not accounts:
        print("no tokens yet: python -m adapters.cli tokens add <sso token>", file=sys.stderr)
    return 0


def store_stop() -> int:
    from core.store.embedded import EmbeddedRedis

    settings = _settings()
    server = EmbeddedRedis(settings.data_dir)
    print(f"stopped the embedded Redis at {server.url}" if server.stop()
          else f"no embedded Redis is running under {settings.data_dir}")
    return 0


def demo(port: int) -> None:
    """Start the simulator and the gateway pointed at it, add a demo account, show one streamed answer."""
    from simulator.config import SimConfig
    from simulator.runner import SimulatorServer

    sim = SimulatorServer(SimConfig(agent_model=True))  # follows tool / response-format instructions
    sim.start()
    sim.state.add_account(DEMO_TOKEN, tier="super")
    os.environ.update({
        "GROK_BASE_URL": sim.base_url,
        "GROK_ASSETS_URL": sim.assets_url,
        "GROK_WS_URL": sim.ws_url,
        "DATA_DIR": os.environ.get("DATA_DIR", "data/demo"),
    })
    settings = _settings()
    asyncio.run(_with_pool(settings, lambda pool: pool.add([DEMO_TOKEN], tags=("demo",), note="simulator")))
    url = f"http://127.0.0.1:{port}"
    threading.Thread(target=_show_demo_answer, args=(url,), daemon=True).start()
    print(f"\nGrok2API demo: gateway on {url}, simulated grok.com on {sim.base_url}\n")
    serve("127.0.0.1", port, settings, access_log=False)  # keep the demo's terminal readable


def _show_demo_answer(url: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    body = {"model": "grok-4.5-fast", "stream": True,
            "messages": [{"role": "user", "content": "Say hello to a newcomer"}]}
    print(f"\n$ curl {url}/v1/chat/completions -H 'Content-Type: application/json' "
          f"-d '{json.dumps(body)}'\n", flush=True)
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith("data: {"):
                delta = json.loads(line[6:])["choices"]
                if delta and delta[0]["delta"].get("content"):
                    print(delta[0]["delta"]["content"], end="", flush=True)
    print("\n\n(the gateway keeps running; press Ctrl+C to stop)\n", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="grok2api", description="Grok2API gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    p_serve = commands.add_parser("serve", help="run the gateway (configuration from the environment)")
    p_serve.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    p_serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    p_demo = commands.add_parser("demo", help="run the gateway against the built-in grok.com simulator")
    p_demo.add_argument("--port", type=int, default=8000)
    p_tokens = commands.add_parser("tokens", help="manage pooled session tokens")
    token_commands = p_tokens.add_subparsers(dest="action", required=True)
    p_add = token_commands.add_parser("add", help="add tokens (bare, `sso=...`, or a file with one per line)")
    p_add.add_argument("tokens", nargs="*")
    p_add.add_argument("--file", type=argparse.FileType("rb"),
                       help="text (one token per line, # comments), or JSON (a list or {\"tokens\": [...]})")
    p_add.add_argument("--tag", action="append", default=[])
    p_add.add_argument("--note", default="")
    token_commands.add_parser("list", help="list tokens (masked)")
    p_smoke = commands.add_parser("smoke", help="check a deployed gateway from outside")
    p_smoke.add_argument("url", help="the gateway's base URL, e.g. https://my-gateway.example")
    p_smoke.add_argument("--key", default=os.environ.get("GROK2API_KEY"), help="API key: also try one short chat")
    p_smoke.add_argument("--model", help="model for the chat (default: grok-4.5-fast or the first listed)")
    p_smoke.add_argument("--timeout", type=float, default=60.0)
    p_store = commands.add_parser("store", help="manage the embedded store")
    store_commands = p_store.add_subparsers(dest="action", required=True)
    store_commands.add_parser("stop", help="stop the embedded Redis server started for DATA_DIR")

    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.host, args.port)
    elif args.command == "demo":
        demo(args.port)
    elif args.command == "tokens" and args.action == "add":
        raw: list[str | bytes] = list(args.tokens)
        if args.file:
            with args.file:  # bytes: parse_token_import splits the lines (any newline style) and strips a BOM
                raw.append(args.file.read())
        if not raw:
            parser.error("give tokens as arguments or --file")
        return tokens_add(raw, args.tag, args.note)
    elif args.command == "tokens" and args.action == "list":
        return tokens_list()
    elif args.command == "smoke":
        from adapters.smoke import main as smoke

        return smoke(args.url, key=args.key, model=args.model, timeout=args.timeout)
    elif args.command == "store" and args.action == "stop":
        return store_stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
