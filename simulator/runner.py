"""Run the simulator in a background thread — for tests, benchmarks and ``grok2api demo``.

    with SimulatorServer(SimConfig.fast()) as sim:
        sim.state.add_account("tok")
        httpx.post(sim.base_url + "/rest/app-chat/conversations/new", ...)

Also ``async with``. The port is picked by the OS; startup takes a few tens of milliseconds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from types import TracebackType

import uvicorn

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.state import SimState


class SimulatorServer:
    def __init__(self, config: SimConfig | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config or SimConfig()
        self.state = SimState(self.config)
        self.host = host
        self._requested_port = port
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def assets_url(self) -> str:
        return f"{self.base_url}/__assets"

    @property
    def imagine_public_url(self) -> str:
        return f"{self.base_url}/__imagine-public"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/mgw/"

    @property
    def imagine_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/imagine/listen"

    def start(self) -> SimulatorServer:
        if self._thread is not None:
            return self
        # proto=IPPROTO_TCP matters: event loops only set TCP_NODELAY on accepted sockets of a TCP-proto
        # listener, and without it Nagle + delayed ACK add ~40 ms to every response.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(state=self.state),
            log_level="warning",
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=0.25,  # then open (e.g. stalled) streams are cut
            ws_ping_interval=None,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=lambda: asyncio.run(server.serve(sockets=[sock])), name="grok-simulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("simulator failed to start")
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> SimulatorServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)
