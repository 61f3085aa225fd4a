"""bench/mutation.py: its mutation operators on tiny sources, and one toy mutant killed (another surviving) by a
toy test in a temp dir. Never runs the real suite."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from bench import mutation

PY = textwrap.dedent(
    '''\
    """Module docstring with < and == and True."""
    import logging

    log = logging.getLogger(__name__)


    def check(x: int, items: list[int]) -> bool:
        """Docstring: x < 3 and not y."""
        log.warning("x < %d and %s", 3, True)
        if x < 3 and not items:
            raise ValueError("small")
        total = 0
        total += 2
        return x == 2 or True
    '''
)


def _by_kind(mutants: list[mutation.Mutant]) -> dict[str, list[str]]:
    kinds: dict[str, list[str]] = {}
    for m in mutants:
        kinds.setdefault(m.kind, []).append(m.mutated_line)
    return kinds


def test_python_operators() -> None:
    mutants = mutation.python_mutants("toy.py", PY)
    kinds = _by_kind(mutants)
    assert "if x <= 3 and not items:" in kinds["compare"]
    assert "return x != 2 or True" in kinds["compare"]
    assert "if x < 3 or not items:" in kinds["and/or"]
    assert "return x == 2 and True" in kinds["and/or"]
    assert kinds["not removed"] == ["if x < 3 and (items):"]
    assert kinds["bool"] == ["return x == 2 or False"]
    assert {"if x < 2 and not items:", "if x < 4 and not items:", "total += 3", "total = 1"} <= set(
        kinds["int ±1"]
    )
    assert kinds["raise removed"] == ["pass"]
    assert kinds["statement removed"] == ["pass"]
    assert kinds["return None"] == ["return None"]
    assert "if body → pass" not in kinds  # the body is the raise alone: the same mutant, listed once
    for m in mutants:  # docstrings, the log call and annotations are never touched
        assert m.line not in (1, 8, 9), m.describe()
        assert "list[" not in m.mutated_line or m.line != 7
        compile(m.apply(PY), "toy.py", "exec")
    assert len({m.key for m in mutants}) == len(mutants)
    assert next(m for m in mutants if m.kind == "raise removed").describe() == (
        'toy.py:11: `raise ValueError("small")` → `pass` (raise removed)'
    )


def test_python_multiline_if_body_and_non_ascii() -> None:
    src = 'def f(a):\n    s = "é"  # ünïcode\n    if a:\n        a = 1\n        a = 2\n    return a\n'
    mutants = mutation.python_mutants("f.py", src)
    body = [m for m in mutants if m.kind == "if body → pass"]
    assert (
        len(body) == 1
        and body[0].apply(src) == 'def f(a):\n    s = "é"  # ünïcode\n    if a:\n        pass\n    return a\n'
    )
    assert {m.apply(src).splitlines()[3] for m in mutants if m.kind == "int ±1" and m.line == 4} == {
        "        a = 0",
        "        a = 2",
    }


LUA = textwrap.dedent(
    """\
    -- a comment: a < b and true
    local ok = ARGV[1] == 'a < b'
    if n <= 0 and x > 1 then return true end
    redis.call('DEL', KEYS[1])
    local m = count + 1
    if rem ~= nil or n >= NOW then return false end
    """
)


def test_lua_operators() -> None:
    mutants = mutation.lua_mutants("x.lua", LUA)
    lines = {(m.line, m.mutated_line) for m in mutants}
    assert all(m.line != 1 for m in mutants)  # comment line
    assert (2, "local ok = ARGV[1] ~= 'a < b'") in lines
    assert not any("'a <= b'" in text for _, text in lines)  # string contents untouched
    line3 = {text for line, text in lines if line == 3}
    assert line3 == {
        "if n < 0 and x > 1 then return true end",
        "if n <= 1 and x > 1 then return true end",
        "if n <= 0 or x > 1 then return true end",
        "if n <= 0 and x >= 1 then return true end",
        "if n <= 0 and x > 0 then return true end",
        "if n <= 0 and x > 1 then return false end",
    }
    assert (4, "-- (deleted)") in lines
    assert {text for line, text in lines if line == 5} == {"local m = count - 1", "local m = count + 0"}
    assert {text for line, text in lines if line == 6} == {
        "if rem == nil or n >= NOW then return false end",
        "if rem ~= nil and n >= NOW then return false end",
        "if rem ~= nil or n > NOW then return false end",
        "if rem ~= nil or n >= NOW then return true end",
    }


TOY = "def is_adult(age):\n    return age >= 18\n"


def _toy(tmp_path: Path, test_body: str) -> Path:
    (tmp_path / "toy.py").write_text(TOY, "utf-8")
    (tmp_path / "test_toy.py").write_text("from toy import is_adult\n\n\n" + test_body, "utf-8")
    return tmp_path


def test_a_toy_mutant_is_killed_and_the_file_restored(tmp_path: Path) -> None:
    copy = _toy(tmp_path, "def test_boundary():\n    assert is_adult(18)\n    assert not is_adult(17)\n")
    assert mutation.run_tests(copy, ["test_toy.py"], timeout=60)[0] == "passed"
    boundary = next(m for m in mutation.python_mutants("toy.py", TOY) if m.kind == "compare")
    assert boundary.mutated_line == "return age > 18"
    result = mutation.evaluate(boundary, copy, ["test_toy.py"], timeout=60)
    assert result.status == "killed" and result.killed and "test_boundary" in result.detail
    assert (copy / "toy.py").read_text("utf-8") == TOY


def test_a_weak_test_lets_the_mutant_survive_and_a_broken_module_is_an_error(tmp_path: Path) -> None:
    copy = _toy(tmp_path, "def test_weak():\n    assert is_adult(30)\n")
    boundary = next(m for m in mutation.python_mutants("toy.py", TOY) if m.kind == "compare")
    assert mutation.evaluate(boundary, copy, ["test_toy.py"], timeout=60).status == "survived"
    broken = mutation.evaluate(mutation.sanity_mutant("toy.py", TOY), copy, ["test_toy.py"], timeout=60)
    assert broken.status == "error" and broken.killed


def test_a_hanging_mutant_times_out(tmp_path: Path) -> None:
    copy = _toy(tmp_path, "def test_boundary():\n    assert is_adult(18)\n")
    hang = mutation.Mutant("toy.py", 2, "hang", 0, 0, "import time\ntime.sleep(60)\n")
    result = mutation.evaluate(hang, copy, ["test_toy.py"], timeout=3)
    assert result.status == "timeout" and result.killed


def test_report_keeps_other_targets_sections(tmp_path: Path) -> None:
    def data(killed: int, survivors: list[str]) -> dict:
        return {
            "sources": ["a.py"], "tests": ["t.py"], "population": 10, "sampled": 4, "killed": killed,
            "timeout_error": 0, "seed": 0, "baseline_s": 1.0, "timeout_s": 21.0, "run_s": 60.0,
            "command": "python -m bench.mutation", "finished": "now", "tree": "abc", "survivors": survivors,
        }  # fmt: skip

    out = tmp_path / "m.md"
    mutation.write_report(out, {"chat": data(3, ["a.py:1: `x < 1` → `x <= 1` (compare)"])})
    text = mutation.write_report(out, {"pool": data(4, [])})
    assert "| chat | 4 / 10 | 3 | 0 | 1 | **75%** | 30%–95% |" in text
    assert "| pool | 4 / 10 | 4 | 0 | 0 | **100%** | 51%–100% |" in text
    assert "- a.py:1: `x < 1` → `x <= 1` (compare)" in text
    assert sys.executable  # the runner runs the toy tests with this interpreter
