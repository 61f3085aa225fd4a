"""The skip guard (tests/support/no_skips.py): a run that skips for a missing dependency fails under
``G2A_NO_SKIPS=1``; legitimate skips never do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TESTS = '''
import pytest

def test_ok():
    pass

def test_not_here():
    pytest.skip("{reason}")
'''


def run(tmp_path: Path, reason: str, strict: bool) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_sample.py").write_text(TESTS.format(reason=reason))
    env = {**os.environ, "G2A_NO_SKIPS": "1" if strict else ""}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.support.no_skips", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("reason", ["redis-server not found on PATH", "upstream sample x.json is not available"])
def test_missing_dependency_fails_a_strict_run(tmp_path: Path, reason: str) -> None:
    strict = run(tmp_path, reason, strict=True)
    assert strict.returncode == 1, strict.stdout
    assert "1 test(s) skipped for a missing dependency" in strict.stdout
    relaxed = run(tmp_path, reason, strict=False)
    assert relaxed.returncode == 0 and "G2A_NO_SKIPS=1" in relaxed.stdout


def test_legitimate_skips_pass(tmp_path: Path) -> None:
    result = run(tmp_path, "only on Windows", strict=True)
    assert result.returncode == 0, result.stdout
    assert "missing dependency" not in result.stdout
