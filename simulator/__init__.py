"""A faithful local simulator of grok.com's private web API (REST NDJSON chat, mgw and Imagine WebSockets,
uploads, assets host, quotas) with a control API and a ledger for gateway tests. See ``simulator/README.md``."""

from simulator.app import create_app
from simulator.config import SimConfig
from simulator.runner import SimulatorServer
from simulator.state import Account, SimState

__all__ = ["Account", "SimConfig", "SimState", "SimulatorServer", "create_app"]
