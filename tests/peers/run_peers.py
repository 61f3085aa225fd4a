#!/usr/bin/env python3
"""Run the official SDKs' own API tests (openai-python, anthropic-sdk-python; not written here) against the
gateway, with the grok.com simulator behind it, and write a summary with every failure classified.

    python3 tests/peers/run_peers.py setup          # any python3 ≥ 3.11: peer venv + the sdists (idempotent)
    .venv/bin/python tests/peers/run_peers.py run   # the project venv: start the stack, run, write results.md
    .venv/bin/python tests/peers/run_peers.py       # both

``setup`` makes ``$G2A_PEERS_DIR`` (default ``~/.cache/grok2api/peers``, outside the clone): a venv with the
SDK releases ``PINNED_VERSIONS`` (or, with ``--sdk-versions installed``, the project venv's) and their test
dependencies, and the released sdists of exactly those versions, unpacked (the sdists ship ``tests/``); ~30 s
cold, ~200 MB. ``run`` starts an embedded Redis, the simulator (agent
mode) and the gateway (model aliases for the suites' model names), runs each suite in a subprocess of the peer
venv with ``TEST_API_BASE_URL`` at the gateway, reads the JUnit XML, classifies every failure
(``tests/peers/classify.py``) and writes ``tests/peers/results.md``. Exit status: 1 when a failure is a gateway
bug or is unclassified (a new failure: look at it), 0 otherwise; ``tests/peers/test_peers.py`` runs this in
``python3 dev.py test``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RESULTS = HERE / "results.md"

# Test dependencies of the two suites (their pyproject dev groups, minus linters and type checkers).
PEER_DEPS = ("pytest>=9", "pytest-asyncio>=1.4", "pytest-xdist", "respx", "dirty-equals>=0.6", "inline-snapshot>=0.28",
             "http-snapshot[httpx]==0.1.9", "time-machine", "rich>=13.7.1", "anyio")

API_KEYS = ("My API Key", "my-anthropic-api-key")  # what the suites' conftests send
MODEL_ALIASES = {"gpt-6-astra": "grok-4.5", "model": "grok-4.5"}  # claude-* names map through CLAUDE_MODEL

SUITES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # name: (distribution, API path prefix, test paths inside its sdist)
    "openai": ("openai", "/v1", ("tests/api_resources/chat/test_completions.py",
                          "tests/api_resources/chat/completions",
                          "tests/api_resources/test_responses.py",
                          "tests/api_resources/responses",
                          "tests/api_resources/test_images.py",
                          "tests/api_resources/test_videos.py")),
    "anthropic": ("anthropic", "", ("tests/api_resources/test_messages.py",
                                "tests/api_resources/messages")),
}
# Peer test files deliberately not run, and why (written to results.md under the table).
LEFT_OUT: dict[str, dict[str, str]] = {}  # {suite: {file: reason}}
# What a file's pass count means, when part of it never reaches the gateway (written under the table).
NOTES = {
    "openai": {"tests/api_resources/test_videos.py": "of its passes, the `download_content` tests (respx-mocked; "
               "skipped with aiohttp) and the `path_params` tests (the SDK refuses an empty id itself) never reach "
               "the gateway; the two `create_and_poll` tests do (the downloads are covered by tests/e2e/test_videos.py)"},
}
SUITE_TIMEOUT = 600  # seconds per suite
PYTEST_ARGS = ("-p", "no:cacheprovider", "-o", "addopts=", "-q", "--tb=short", "-rN")


def peers_dir() -> Path:
    return Path(os.environ.get("G2A_PEERS_DIR") or "~/.cache/grok2api/peers").expanduser()


def peer_python() -> Path:
    return peers_dir() / "venv" / "bin" / "python"


# The SDK releases whose suites classify.py was checked against. Pinned so that CI does not turn red when a new
# SDK release adds tests; `--sdk-versions installed` runs the project venv's versions instead (then new tests may
# fail unclassified: classify them, then move these pins).
PINNED_VERSIONS = {"openai": "3.57.0", "anthropic": "2.15.0"}


def project_versions() -> dict[str, str]:
    """The SDK versions of the project venv (this process when it is the project venv, else ``.venv``)."""
    try:
        return {name: metadata.version(name) for name in ("openai", "anthropic")}
    except metadata.PackageNotFoundError:
        python = ROOT / ".venv" / "bin" / "python"
        code = "import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in ('openai','anthropic')}))"
        return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout)


def sdist_dir(distribution: str, version: str) -> Path:
    return peers_dir() / "sdists" / f"{distribution}-{version}"


# -- setup ---------------------------------------------------------------------------------------------------


def _run(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def setup(versions: dict[str, str] | None = None) -> dict[str, str]:
    """Make the peer venv and unpack the sdists; a no-op when the stamp says they match ``versions``."""
    versions = versions or dict(PINNED_VERSIONS)
    base = peers_dir()
    stamp = base / ".stamp"
    wanted = json.dumps({"versions": versions, "deps": PEER_DEPS}, sort_keys=True)
    if stamp.exists() and stamp.read_text() == wanted and peer_python().exists() and all(
            (sdist_dir(d, versions[d]) / "tests").is_dir() for d, _, _ in SUITES.values()):
        return versions
    started = time.monotonic()
    base.mkdir(parents=True, exist_ok=True)
    stamp.unlink(missing_ok=True)
    if not peer_python().exists():
        _run([sys.executable, "-m", "venv", str(base / "venv")])
    pins = [f"{name}[aiohttp]=={version}" for name, version in versions.items()]  # suites test aiohttp too
    _run([str(peer_python()), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins, *PEER_DEPS],
         timeout=900)
    downloads = base / "downloads"
    downloads.mkdir(exist_ok=True)
    for distribution, version in versions.items():
        target = sdist_dir(distribution, version)
        if (target / "tests").is_dir():
            continue
        archive = downloads / f"{distribution}-{version}.tar.gz"
        if not archive.exists():
            _run([str(peer_python()), "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                  "--no-binary", ":all:", f"{distribution}=={version}", "-d", str(downloads)], timeout=900)
        with tarfile.open(archive) as tar, tempfile.TemporaryDirectory(dir=base) as tmp:
            tar.extractall(tmp, filter="data")
            (target.parent).mkdir(exist_ok=True)
            shutil.rmtree(target, ignore_errors=True)
            shutil.move(str(Path(tmp) / f"{distribution}-{version}"), target)
    stamp.write_text(wanted)
    print(f"peer suites set up in {base} in {time.monotonic() - started:.1f} s ({versions})", flush=True)
    return versions


# -- the stack -----------------------------------------------------------------------------------------------


def start_stack(stack: ExitStack) -> str:
    """Embedded Redis + simulator (agent mode) + gateway, all on loopback; returns the gateway's URL."""
    sys.path.insert(0, str(ROOT))
    import httpx

    from api._app import create_app
    from core.settings import Settings
    from simulator.config import SimConfig
    from simulator.runner import SimulatorServer
    from tests.support.asgi import ThreadedServer
    from tests.support.redis_server import embedded_server

    data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="g2a-peers-")))
    redis = stack.enter_context(embedded_server(data / "store"))
    sim = stack.enter_context(SimulatorServer(SimConfig.fast(agent_model=True)))
    admin = "peers-admin-secret"
    settings = Settings(
        api_keys=API_KEYS, admin_password=admin, redis_url=redis.url, store_prefix=f"peers-{uuid.uuid4().hex[:8]}:",
        grok_base_url=sim.base_url, grok_assets_url=sim.assets_url, grok_ws_url=sim.ws_url,
        grok_imagine_ws_url=sim.imagine_ws_url, data_dir=data / "gateway",
        allow_private_urls=True, model_aliases=MODEL_ALIASES, first_byte_timeout=10.0, stream_idle_timeout=10.0,
    )
    gateway = ThreadedServer(create_app(settings)).start()
    stack.callback(gateway.stop)
    tokens = [f"peers-{i}-{uuid.uuid4().hex}" for i in range(4)]
    plenty = {"total": 100000, "remaining": 100000, "window": 7200}
    for token in tokens:
        sim.state.add_account(token, tier="heavy", quotas={m: dict(plenty) for m in ("fast", "auto", "expert", "heavy")})
    response = httpx.post(gateway.url + "/admin/tokens", json={"tokens": tokens}, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"})
    response.raise_for_status()
    return gateway.url


# -- running and reading -------------------------------------------------------------------------------------


@dataclass
class Case:
    suite: str
    file: str
    name: str
    outcome: str  # passed | failed | skipped
    message: str = ""
    details: str = ""  # the traceback
    klass: str = ""
    reason: str = ""


@dataclass
class SuiteRun:
    name: str
    version: str
    seconds: float
    cases: list[Case] = field(default_factory=list)
    error: str = ""


CHILDREN: list[subprocess.Popen] = []  # the suites' pytest processes, ended on SIGTERM


def _terminate(*_: object) -> None:
    for child in CHILDREN:
        if child.poll() is None:
            child.kill()
    sys.exit(143)


def run_suite(name: str, version: str, base_url: str, junit_dir: Path) -> SuiteRun:
    distribution, prefix, paths = SUITES[name]
    root = sdist_dir(distribution, version)
    junit = junit_dir / f"{name}.xml"
    junit_keep = os.environ.get("G2A_PEERS_JUNIT")  # a directory to keep the JUnit XML in (debugging)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PYTEST_"))}
    env.update({"TEST_API_BASE_URL": base_url + prefix, "PYTHONDONTWRITEBYTECODE": "1", "NO_COLOR": "1"})
    extra = ("-p", "tests._alias_httpx") if (root / "tests" / "_alias_httpx.py").exists() else ()
    command = [str(peer_python()), "-m", "pytest", *PYTEST_ARGS, *extra, f"--junitxml={junit}", *paths]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    CHILDREN.append(process)
    try:
        output, _ = process.communicate(timeout=SUITE_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output = f"timed out after {SUITE_TIMEOUT} s\n{process.communicate()[0]}"
    run = SuiteRun(name, version, time.monotonic() - started)
    if junit_keep and junit.exists():
        shutil.copy(junit, Path(junit_keep) / junit.name)
    if not junit.exists():
        run.error = output[-4000:]
        return run
    for testcase in ET.parse(junit).getroot().iter("testcase"):
        parts = testcase.get("classname", "").split(".")
        module = parts[:-1] if parts[-1].startswith("Test") else parts  # a module-level test has no class
        file = testcase.get("file") or "/".join(module) + ".py"
        case = Case(name, file, f"{parts[-1]}::{testcase.get('name')}", "passed")
        for child in testcase:
            if child.tag in ("failure", "error"):
                case.outcome = "failed"
                case.message = (child.get("message") or child.text or "").strip()
                case.details = (child.text or "").strip()
            elif child.tag == "skipped":
                case.outcome = "skipped"
                case.message = (child.get("message") or "").strip()
        run.cases.append(case)
    return run


def _test_names(cases: list[Case]) -> str:
    """``TestX::test_a[loose]``, ``TestAsyncX::test_a[aiohttp]``, ... → ``test_a`` (× variants)."""
    names: dict[str, int] = {}
    for case in cases:
        base = case.name.split("::")[-1].split("[")[0]
        names[base] = names.get(base, 0) + 1
    return ", ".join(f"`{name}` ×{count}" for name, count in names.items())


def write_results(runs: list[SuiteRun], path: Path, seconds: float) -> None:
    from tests.peers.classify import CLASSES

    lines = ["# Peer suites: the official SDKs' own API tests against the gateway", "",
             "Generated by `tests/peers/run_peers.py` (`python3 dev.py test` runs it through `tests/peers/test_peers.py`).",
             "Each SDK's released sdist ships the API tests its authors run against a mock server of the real API;",
             "here `TEST_API_BASE_URL` points them at the gateway, with the grok.com simulator (agent mode) behind it.",
             "Each test runs in up to five clients: sync and async, loose and strict response validation, aiohttp.",
             f"Model aliases: {', '.join(f'`{a}` → `{t}`' for a, t in MODEL_ALIASES.items())}; `claude-*` → "
             f"`CLAUDE_MODEL`. Run time: {seconds:.0f} s.", ""]
    lines += ["| suite | file | passed | failed | skipped |", "|---|---|---|---|---|"]
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for run in runs:
        by_file: dict[str, list[Case]] = {}
        for case in run.cases:
            by_file.setdefault(case.file, []).append(case)
        for file, cases in sorted(by_file.items()):
            counts = {o: sum(c.outcome == o for c in cases) for o in totals}
            for outcome, count in counts.items():
                totals[outcome] += count
            lines.append(f"| {run.name} {run.version} | `{file}` | {counts['passed']} | {counts['failed']} | "
                         f"{counts['skipped']} |")
        if run.error:
            lines.append(f"| {run.name} {run.version} | (the suite did not run) | – | – | – |")
    lines.append(f"| **total** | | **{totals['passed']}** | **{totals['failed']}** | **{totals['skipped']}** |")
    left_out = [(run, file, why) for run in runs for file, why in LEFT_OUT.get(run.name, {}).items()]
    if left_out:
        lines.append("")
        lines += [f"Not run: {run.name} {run.version} `{file}`: {why}." for run, file, why in left_out]
    notes = [(run, file, note) for run in runs for file, note in NOTES.get(run.name, {}).items()]
    if notes:
        lines.append("")
        lines += [f"Note, {run.name} `{file}`: {note}." for run, file, note in notes]
    failed = [c for run in runs for c in run.cases if c.outcome == "failed"]
    lines += ["", "## Failures by class", "", "| class | failures | meaning |", "|---|---|---|"]
    for klass, meaning in CLASSES.items():
        count = sum(c.klass == klass for c in failed)
        lines.append(f"| {klass} | {count} | {meaning} |")
    lines += ["", "## Each failure", ""]
    groups: dict[tuple[str, str, str], list[Case]] = {}
    for case in failed:
        groups.setdefault((case.klass, case.reason, case.file), []).append(case)
    order = list(CLASSES)
    for (klass, reason, file), cases in sorted(groups.items(), key=lambda g: (order.index(g[0][0]), g[0][2])):
        first = cases[0].message.splitlines()[0][:300] if cases[0].message else "(no message)"
        lines += [f"- **{klass}** ({len(cases)}), `{file}`: {reason}.", f"  Tests: {_test_names(cases)}.",
                  f"  Failure: `{first.replace('`', chr(39))}`"]
    for run in runs:
        if run.error:
            lines += ["", f"### {run.name}: the suite did not run", "", "```", run.error[-3000:], "```"]
    path.write_text("\n".join(lines) + "\n")


def run(out: Path = RESULTS, suites: list[str] | None = None, versions: dict[str, str] | None = None) -> int:
    from tests.peers.classify import BLOCKING, classify

    versions = setup(versions)
    started = time.monotonic()
    runs: list[SuiteRun] = []
    with ExitStack() as stack:
        url = start_stack(stack)
        junit_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="g2a-peers-junit-")))
        names = suites or list(SUITES)
        with ThreadPoolExecutor(len(names)) as pool:  # the suites run side by side, one process each
            runs = list(pool.map(lambda name: run_suite(name, versions[SUITES[name][0]], url, junit_dir), names))
    for suite in runs:
        for case in suite.cases:
            if case.outcome == "failed":
                case.klass, case.reason = classify(case)
    seconds = time.monotonic() - started
    write_results(runs, out, seconds)
    total = [c for r in runs for c in r.cases]
    counts = {o: sum(c.outcome == o for c in total) for o in ("passed", "failed", "skipped")}
    blocking = [c for c in total if c.outcome == "failed" and c.klass in BLOCKING]
    print(f"peer suites: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped "
          f"in {seconds:.0f} s -> {out}", flush=True)
    for case in blocking[:30]:
        print(f"  {case.klass}: {case.file}::{case.name}: {case.message.splitlines()[0][:300] if case.message else ''}")
    broken = [r.name for r in runs if r.error]
    if broken:
        print(f"  suites that did not run: {', '.join(broken)}")
    return 1 if blocking or broken else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", default="all", choices=("setup", "run", "all"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--suite", action="append", choices=list(SUITES))
    parser.add_argument("--sdk-versions", choices=("pinned", "installed"), default="pinned",
                        help=f"pinned: {PINNED_VERSIONS}; installed: the project venv's openai/anthropic")
    args = parser.parse_args(argv)
    versions = dict(PINNED_VERSIONS) if args.sdk_versions == "pinned" else project_versions()
    if args.command == "setup":
        setup(versions)
        return 0
    return run(args.out, args.suite, versions)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    # SIGTERM (a timeout in test_peers.py) unwinds the stack: the embedded redis-server is detached otherwise.
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())
