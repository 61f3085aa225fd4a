"""``python -m adapters.cli tokens add --file F`` against a real (embedded) store: one account per line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.pool.tokens import account_id, parse_token_import
from tests.pool.conftest import fake_token

ROOT = Path(__file__).resolve().parents[2]
STORE_VARS = ("REDIS_URL", "UPSTASH_REDIS_REST_URL", "UPSTASH_REDIS_REST_TOKEN", "KV_REST_API_URL",
              "KV_REST_API_TOKEN", "APP_ENV", "STORE_PREFIX", "ENCRYPTION_KEY")


def cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in STORE_VARS}
    env["DATA_DIR"] = str(data_dir)
    return subprocess.run([sys.executable, "-m", "adapters.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def listed_ids(data_dir: Path) -> list[str]:
    result = cli(data_dir, "tokens", "list")
    assert result.returncode == 0, result.stderr
    return [json.loads(line)["id"] for line in result.stdout.splitlines() if line.strip()]


def test_file_with_one_token_per_line_imports_one_account_per_line(tmp_path: Path) -> None:
    tokens = [fake_token(n) for n in range(1, 17)]
    lines = ["# exported 2026-12-01", ""]
    for n, token in enumerate(tokens):
        lines.append(f"sso={token}" if n % 4 == 1 else f"sso={token}; sso-rw={token}" if n % 4 == 2 else token)
        if n % 5 == 0:
            lines.append("   ")
    path = tmp_path / "tokens.txt"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())  # CRLF, as saved by Windows editors

    result = cli(tmp_path / "data", "tokens", "add", "--file", str(path), "--tag", "bulk")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == 16, report
    assert sorted(listed_ids(tmp_path / "data")) == sorted(account_id(t) for t in tokens)


def test_file_as_json_and_arguments_together(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    path.write_text("\ufeff" + json.dumps({"tokens": [fake_token(1), {"token": fake_token(2), "tags": ["x"]}]}))
    result = cli(tmp_path / "data", "tokens", "add", fake_token(3), "--file", str(path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 3
    assert sorted(listed_ids(tmp_path / "data")) == sorted(account_id(fake_token(n)) for n in (1, 2, 3))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_list_entries_holding_whole_files_are_split(newline: str) -> None:
    text = newline.join(["# a comment", fake_token(1), "", f"sso={fake_token(2)}", fake_token(3)])
    items = parse_token_import([fake_token(4), text, text.encode()])
    assert [i.token for i in items] == [fake_token(n) for n in (4, 1, 2, 3, 1, 2, 3)]
    assert [i.problem for i in items[4:]] == ["duplicate within this import"] * 3


def test_absurdly_nested_json_import_is_rejected_not_crashed() -> None:
    items = parse_token_import("[" * 100_000)
    assert items and all(i.token is None for i in items)
