"""``--fuzz-cases N``: how many schemathesis cases ``tests/e2e/test_fuzz.py`` runs in total (default 400).

Passed on through ``G2A_FUZZ_CASES`` because hypothesis settings are fixed when the test module is imported.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-cases", type=int, default=None,
                     help="schemathesis cases in total for tests/e2e/test_fuzz.py (default 400, env G2A_FUZZ_CASES)")


def pytest_configure(config: pytest.Config) -> None:
    cases = config.getoption("--fuzz-cases", default=None)
    if cases is not None:
        os.environ["G2A_FUZZ_CASES"] = str(cases)
