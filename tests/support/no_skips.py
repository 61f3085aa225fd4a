"""Skip guard: tests skipped because a *dependency* is missing (redis-server, a recorded sample) are reported
at the end of every run, and fail the run when ``G2A_NO_SKIPS=1`` (``.ci/run`` sets it).

Legitimate skips (a platform-specific case, a parametrization that does not apply) are untouched: only skip
reasons matching ``MISSING_DEPENDENCY`` count. Loaded from ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import re

import pytest

MISSING_DEPENDENCY = re.compile(r"no redis-server|redis-server not found|upstream sample|samples not found", re.IGNORECASE)
_missing: list[str] = []


def _reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail") and MISSING_DEPENDENCY.search(_reason(report)):
        _missing.append(f"{report.nodeid}: {_reason(report)}")


def _strict() -> bool:
    return os.environ.get("G2A_NO_SKIPS", "").strip().lower() in ("1", "true", "yes")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _missing and _strict() and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not _missing:
        return
    verdict = "FAILED (G2A_NO_SKIPS=1)" if _strict() else "set G2A_NO_SKIPS=1 to make this an error"
    terminalreporter.section("skipped for a missing dependency", sep="=", red=_strict(), bold=True)
    for line in _missing[:20]:
        terminalreporter.write_line(line)
    if len(_missing) > 20:
        terminalreporter.write_line(f"... and {len(_missing) - 20} more")
    terminalreporter.write_line(f"{len(_missing)} test(s) skipped for a missing dependency: {verdict}")
