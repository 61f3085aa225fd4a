"""``python -m simulator --host 127.0.0.1 --port 8780 [--demo-token TOKEN] [--fast] [--agent-model]``"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import uvicorn

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.state import SimState


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Simulated grok.com for Grok2API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--demo-token", action="append", default=[], metavar="TOKEN",
                        help="add a super-tier account with this sso token (repeatable)")
    parser.add_argument("--tier", default="super", choices=("basic", "super", "heavy"),
                        help="tier of the --demo-token accounts")
    parser.add_argument("--fast", action="store_true", help="zero delays (tests, benchmarks)")
    parser.add_argument("--cloudflare", action="store_true", help="require a registered cf_clearance")
    parser.add_argument("--strict-statsig", action="store_true", help="require a 70-byte x-statsig-id")
    parser.add_argument("--no-gzip", action="store_true", help="never gzip chat streams")
    parser.add_argument("--agent-model", action="store_true",
                        help="answer tool / response-format instructions like a cooperative model")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)

    config = SimConfig.fast() if args.fast else SimConfig()
    config.cloudflare = args.cloudflare
    config.strict_statsig = args.strict_statsig
    config.gzip = not args.no_gzip
    config.agent_model = args.agent_model
    state = SimState(config)
    for token in args.demo_token:
        state.add_account(token, tier=args.tier)
    print(f"grok simulator on http://{args.host}:{args.port}  assets: http://{args.host}:{args.port}/__assets  "
          f"mgw: ws://{args.host}:{args.port}/ws/mgw/  control: http://{args.host}:{args.port}/__sim/", flush=True)
    uvicorn.run(create_app(state=state), host=args.host, port=args.port, log_level=args.log_level,
                lifespan="off", server_header=False, ws_ping_interval=None,
                timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
