"""``python -m bench.mutation``: a small mutation tester for the pool, chat and fetch logic.

    python -m bench.mutation --target chat --limit 25          # 25 random mutants of core/chat.py + api/_openai.py
    python -m bench.mutation --target all --limit 25 --seed 0  # every target, reproducible sample
    python -m bench.mutation --target pool --list              # print the mutants, run nothing

Each mutant is one small change (a comparison flipped, ``and``/``or`` swapped, a ``not`` dropped, a constant
nudged, a ``return`` emptied, a ``raise`` or an ``if`` body replaced by ``pass``; on the pool's Lua scripts the same
kinds of change as text, plus deleting one ``redis.call(...)`` line). It is applied to a *copy* of the repository
(``git archive HEAD`` by default, ``--source worktree`` for the uncommitted working tree; never the checkout itself)
and that target's tests run against it with this interpreter (``pytest -x``, ``PYTHONPATH`` = the copy, so the
copy's ``core/`` shadows the editable install; a deliberately broken module checks this before any mutant runs).
A mutant is *killed* when the tests fail, time out (3x the baseline) or error out; it *survives* when they pass.

Writes the report to ``bench/results/mutation.md`` (one section per target; running one target keeps the others'
sections). Survivors are listed as ``file:line: original → mutant``: each is a missing test, or an equivalent mutant.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tokenize
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "bench" / "results" / "mutation.md"

# target -> (source globs, test globs); globs are relative to the repository root, missing files are ignored.
TARGETS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "pool": (("core/pool/pool.py", "core/pool/lua/*.lua"), ("tests/pool",)),
    "chat": (
        ("core/chat.py", "api/_openai.py"),
        (
            "tests/e2e/test_request_faults.py",
            "tests/e2e/test_failure_rules.py",
            "tests/e2e/test_errors.py",
            "tests/e2e/test_openai_chat.py",
        ),
    ),
    "fetch": (
        ("core/fetch.py", "core/attachments.py", "core/netguard.py"),
        ("tests/unit/test_fetch*.py", "tests/e2e/test_ssrf*.py"),
    ),
}

SMALL_FUNCTION = 25  # lines: ``return X`` -> ``return None`` only in functions this short
SMALL_INT = 10  # integer constants nudged by ±1 only up to this size (60 -> 61 seconds is rarely observable)
LOG_NAMES = {"log", "logger", "logging", "warnings", "print"}
NO_MUTATE = "pragma: no mutate"


@dataclasses.dataclass(frozen=True, slots=True)
class Mutant:
    path: str  # relative to the repository root
    line: int
    kind: str
    start: int  # character offsets of the replaced span in the file's text
    end: int
    replacement: str
    original_line: str = ""
    mutated_line: str = ""

    @property
    def key(self) -> str:
        return f"{self.path}:{self.line}:{self.start}:{self.kind}:{self.replacement}"

    def apply(self, text: str) -> str:
        return text[: self.start] + self.replacement + text[self.end :]

    def describe(self) -> str:
        return f"{self.path}:{self.line}: `{self.original_line}` → `{self.mutated_line}` ({self.kind})"


def _finish(path: str, text: str, start: int, end: int, replacement: str, kind: str) -> Mutant:
    line = text.count("\n", 0, start) + 1
    mutated = text[:start] + replacement + text[end:]
    line_start = text.rfind("\n", 0, start) + 1
    old_end = text.find("\n", end)
    new_end = mutated.find("\n", start + len(replacement))
    old = text[line_start : old_end if old_end >= 0 else len(text)]
    new = mutated[line_start : new_end if new_end >= 0 else len(mutated)]
    return Mutant(path, line, kind, start, end, replacement, _squash(old), _squash(new))


def _squash(text: str, limit: int = 160) -> str:
    """A (multi-line) span on one line, cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# --------------------------------------------------------------------------------------------------- Python


class _Offsets:
    """AST positions (line, UTF-8 byte column) and tokenize positions (line, character column) -> text offsets."""

    def __init__(self, text: str) -> None:
        self.lines = [
            line + "\n" for line in text.split("\n")
        ]  # only \n ends a line for ast (not \f, \u2028)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def ast(self, lineno: int, col: int) -> int:
        line = self.lines[lineno - 1]
        return self.starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8", "replace"))

    def tok(self, pos: tuple[int, int]) -> int:
        return self.starts[pos[0] - 1] + pos[1]

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.ast(node.lineno, node.col_offset), self.ast(node.end_lineno, node.end_col_offset)


COMPARE_FLIP = {
    ast.Lt: "<=",
    ast.LtE: "<",
    ast.Gt: ">=",
    ast.GtE: ">",
    ast.Eq: "!=",
    ast.NotEq: "==",
    ast.Is: "is not",
    ast.IsNot: "is",
    ast.In: "not in",
    ast.NotIn: "in",
}


def _is_log_call(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    while isinstance(func, ast.Attribute):
        func = func.value
    return isinstance(func, ast.Name) and func.id in LOG_NAMES


def _docstring_nodes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                found.add(id(first))
    return found


def _skipped(tree: ast.AST) -> set[int]:
    """Nodes whose mutants would be equivalent-looking or meaningless: docstrings, log calls, annotations,
    decorators, f-strings, ``__all__``, ``if TYPE_CHECKING:`` blocks. Every node below them is skipped too."""
    roots: list[ast.AST] = []
    docstrings = _docstring_nodes(tree)
    for node in ast.walk(tree):
        if id(node) in docstrings or _is_log_call(node) or isinstance(node, ast.JoinedStr):
            roots.append(node)
        elif isinstance(node, ast.Expr) and _is_log_call(node.value):
            roots.append(node)
        elif isinstance(node, (ast.AnnAssign, ast.arg)) and node.annotation is not None:
            roots.append(node.annotation)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            roots.extend(node.decorator_list)  # @dataclass(slots=True) -> False: equivalent
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            roots.append(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            roots.append(node)
    skipped: set[int] = set()
    for root in roots:
        skipped.update(id(n) for n in ast.walk(root))
    return skipped


def _tokens(text: str) -> list[tokenize.TokenInfo]:
    return [
        t
        for t in tokenize.generate_tokens(io.StringIO(text).readline)
        if t.type in (tokenize.OP, tokenize.NAME) and t.string not in "()[]{}"
    ]


def _tokens_between(
    tokens: list[tokenize.TokenInfo], off: _Offsets, start: int, end: int
) -> list[tuple[int, int]]:
    spans = []
    for t in tokens:
        a, b = off.tok(t.start), off.tok(t.end)
        if a >= start and b <= end:
            spans.append((a, b))
    return spans


def _function_spans(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """(return node, the enclosing function is small) for every ``return X``."""
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            small = (fn.end_lineno or fn.lineno) - fn.lineno + 1 <= SMALL_FUNCTION
            stack = list(fn.body)
            while stack:  # returns of this function, not of nested ones
                node = stack.pop()
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
                    continue
                if isinstance(node, ast.Return):
                    yield node, small
                stack.extend(ast.iter_child_nodes(node))


def python_mutants(path: str, text: str) -> list[Mutant]:
    tree = ast.parse(text)
    off = _Offsets(text)
    tokens = _tokens(text)
    skipped = _skipped(tree)
    raw: list[tuple[int, int, str, str]] = []  # start, end, replacement, kind
    bodies: list[tuple[int, int, str, str]] = []  # last: a one-statement body keeps its specific kind

    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for i, op in enumerate(node.ops):
                gap_start, gap_end = off.span(operands[i])[1], off.span(operands[i + 1])[0]
                spans = _tokens_between(tokens, off, gap_start, gap_end)
                if spans and type(op) in COMPARE_FLIP:
                    raw.append((spans[0][0], spans[-1][1], COMPARE_FLIP[type(op)], "compare"))
        elif isinstance(node, ast.BoolOp):
            new = "or" if isinstance(node.op, ast.And) else "and"
            for left, right in zip(node.values, node.values[1:], strict=False):
                spans = _tokens_between(tokens, off, off.span(left)[1], off.span(right)[0])
                if spans:
                    raw.append((spans[0][0], spans[-1][1], new, "and/or"))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            start, end = off.span(node)
            o_start, o_end = off.span(node.operand)
            raw.append((start, end, "(" + text[o_start:o_end] + ")", "not removed"))
        elif isinstance(node, ast.Constant) and type(node.value) is bool:
            raw.append((*off.span(node), str(not node.value), "bool"))
        elif isinstance(node, ast.Constant) and type(node.value) is int and abs(node.value) <= SMALL_INT:
            start, end = off.span(node)
            for value in (node.value + 1, node.value - 1):
                raw.append((start, end, str(value) if value >= 0 else f"({value})", "int ±1"))
        elif isinstance(node, ast.Raise):
            raw.append((*off.span(node), "pass", "raise removed"))
        elif isinstance(node, ast.Expr) and isinstance(node.value, (ast.Call, ast.Await)):
            raw.append((*off.span(node), "pass", "call removed"))
        elif isinstance(node, ast.AugAssign):
            raw.append((*off.span(node), "pass", "statement removed"))
        elif isinstance(node, ast.If):
            first, last = node.body[0], node.body[-1]
            if not (len(node.body) == 1 and isinstance(first, ast.Pass)) and id(first) not in skipped:
                bodies.append((off.span(first)[0], off.span(last)[1], "pass", "if body → pass"))
    for ret, small in _function_spans(tree):
        if small and ret.value is not None and id(ret) not in skipped:
            if not (isinstance(ret.value, ast.Constant) and ret.value.value is None):
                raw.append((*off.span(ret), "return None", "return None"))

    raw.extend(bodies)
    original = ast.dump(tree)
    mutants: dict[tuple[int, int, str], Mutant] = {}
    for start, end, replacement, kind in raw:
        if NO_MUTATE in text[text.rfind("\n", 0, start) + 1 : text.find("\n", start)]:
            continue
        mutated = text[:start] + replacement + text[end:]
        try:
            changed = ast.dump(ast.parse(mutated)) != original
        except SyntaxError:
            continue  # e.g. ``return None`` in an async generator, or a lone ``pass`` that breaks nothing else
        if changed:
            mutants.setdefault((start, end, replacement), _finish(path, text, start, end, replacement, kind))
    return sorted(mutants.values(), key=lambda m: (m.start, m.end, m.replacement))


# ------------------------------------------------------------------------------------------------------ Lua

_LUA_STRING = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_CMP = r"(?:<=|>=|==|~=|<|>)"
LUA_RULES: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [  # (kind, pattern, replacements of group 1)
    ("compare", re.compile(r"(<=)"), ("<",)),
    ("compare", re.compile(r"(?<![<=~>])(<)(?![<=])"), ("<=",)),
    ("compare", re.compile(r"(>=)"), (">",)),
    ("compare", re.compile(r"(?<![<=~>])(>)(?![>=])"), (">=",)),
    ("compare", re.compile(r"(==)"), ("~=",)),
    ("compare", re.compile(r"(~=)"), ("==",)),
    ("and/or", re.compile(r"\b(and)\b"), ("or",)),
    ("and/or", re.compile(r"\b(or)\b"), ("and",)),
    ("+ 1", re.compile(r"(\+ 1)\b(?!\.)"), ("- 1", "+ 0")),
    ("bool", re.compile(r"\b(true)\b"), ("false",)),
    ("bool", re.compile(r"\b(false)\b"), ("true",)),
    # a 0 or 1 literal compared with something: 0 <-> 1 (``x > 0``, ``n == 1``, ``0 < x``)
    ("0/1 in comparison", re.compile(rf"{_CMP}\s*(?<![\w.])([01])(?![\w.])"), ()),
    ("0/1 in comparison", re.compile(rf"(?<![\w.])([01])(?![\w.])\s*{_CMP}"), ()),
]


def _lua_code(line: str) -> str:
    """The line with string contents and the trailing comment blanked out (same length, so offsets hold)."""
    masked = _LUA_STRING.sub(lambda m: m.group(0)[0] + " " * (len(m.group(0)) - 2) + m.group(0)[-1], line)
    cut = masked.find("--")
    return masked if cut < 0 else masked[:cut] + " " * (len(masked) - cut)


def lua_mutants(path: str, text: str) -> list[Mutant]:
    mutants: list[Mutant] = []
    offset = 0
    in_block_comment = False
    for line in text.split("\n"):
        line += "\n"
        body = line[:-1]
        stripped = body.strip()
        if in_block_comment or stripped.startswith("--[["):
            in_block_comment = "]]" not in (stripped if in_block_comment else stripped[4:])
            offset += len(line)
            continue
        code = _lua_code(body)
        if NO_MUTATE not in body:
            for kind, pattern, replacements in LUA_RULES:
                for match in pattern.finditer(code):
                    found = match.group(1)
                    for rep in replacements or ("1" if found == "0" else "0",):
                        start, end = offset + match.start(1), offset + match.end(1)
                        mutants.append(_finish(path, text, start, end, rep, kind))
            # a statement line that is one redis.call(...) (balanced parentheses): delete it
            call = code.strip()
            if call.startswith("redis.call(") and call.endswith(")") and call.count("(") == call.count(")"):
                indent = len(body) - len(body.lstrip())
                start, end = offset + indent, offset + len(body)
                mutants.append(_finish(path, text, start, end, "-- (deleted)", "redis.call removed"))
        offset += len(line)
    unique = {(m.start, m.end, m.replacement): m for m in mutants}
    return sorted(unique.values(), key=lambda m: (m.start, m.end, m.replacement))


def mutants_for(path: str, text: str) -> list[Mutant]:
    return lua_mutants(path, text) if path.endswith(".lua") else python_mutants(path, text)


# ------------------------------------------------------------------------------------------------- running


@dataclasses.dataclass(slots=True)
class Result:
    mutant: Mutant
    status: str  # killed | survived | timeout | error
    seconds: float
    detail: str = ""

    @property
    def killed(self) -> bool:
        return self.status != "survived"


def expand(root: Path, globs: Iterable[str]) -> list[str]:
    found: list[str] = []
    for pattern in globs:
        matches = sorted(root.glob(pattern))
        found.extend(
            str(p.relative_to(root)) for p in matches if p.exists() and str(p.relative_to(root)) not in found
        )
    return found


def make_copy(source: str, dest: Path) -> Path:
    """A copy of the repository to mutate: ``git archive HEAD`` (committed tree) or the working tree."""
    dest.mkdir(parents=True, exist_ok=True)
    if source == "head":
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    else:
        ignore = shutil.ignore_patterns(
            ".venv", ".git", "data", "__pycache__", ".pytest_cache", ".ruff_cache"
        )
        shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True, symlinks=True)
    return dest


_live: set[subprocess.Popen[str]] = set()  # test runs in flight, ended on SIGTERM


def run_tests(copy: Path, tests: list[str], timeout: float) -> tuple[str, float, str]:
    """(status, seconds, detail): passed | failed | timeout | error (pytest could not run the tests).

    The run gets its own scratch dir (``TMPDIR`` and pytest's ``--basetemp``) next to the copy: whatever it
    leaves running there (a detached embedded redis-server of a test that never tore down) is stopped after it.
    """
    scratch = copy.with_name(copy.name + ".s")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(copy), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(scratch))
    env.pop("PYTEST_ADDOPTS", None)
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "--no-header", "-rf"]
    cmd += [f"--basetemp={scratch / 'p'}", *tests]
    began = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=copy,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    _live.add(proc)
    timed_out = False
    try:
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            with_group(proc, signal.SIGINT)  # pytest tears its fixtures down on KeyboardInterrupt
            try:
                out, _ = proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)
                out, _ = proc.communicate()
    finally:
        if proc.poll() is None:
            with_group(proc, signal.SIGKILL)
            proc.wait()
        _live.discard(proc)
        stop_strays(scratch)
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.monotonic() - began
    if timed_out:
        return "timeout", seconds, f"over {timeout:.0f} s"
    failed = [
        line[len("FAILED ") :].split(" - ")[0] for line in out.splitlines() if line.startswith("FAILED ")
    ]
    if proc.returncode == 0:
        return "passed", seconds, ""
    if proc.returncode == 1:
        return "failed", seconds, failed[0] if failed else out.strip().splitlines()[-1][:200]
    tail = [line for line in out.strip().splitlines() if line.strip()][-3:]
    return "error", seconds, f"pytest exit {proc.returncode}: " + " | ".join(tail)[:300]


def stop_strays(scratch: Path) -> list[int]:
    """Stop processes whose command line names our scratch dir (only a run of ours can have put them there)."""
    marker = str(scratch).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = []
        for pid in found:
            try:
                os.kill(pid, sig)
                alive.append(pid)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while alive and time.monotonic() < deadline:
            alive = [pid for pid in alive if Path(f"/proc/{pid}").exists() and not _zombie(pid)]
            time.sleep(0.05)
        found = alive
        if not found:
            break
    return found


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def with_group(proc: subprocess.Popen[str], sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def evaluate(mutant: Mutant, copy: Path, tests: list[str], timeout: float) -> Result:
    """Apply one mutant to the copy, run the tests, restore the file whatever happened."""
    target = copy / mutant.path
    original = target.read_text("utf-8")
    try:
        target.write_text(mutant.apply(original), "utf-8")
        status, seconds, detail = run_tests(copy, tests, timeout)
    finally:
        target.write_text(original, "utf-8")
    verdict = {"passed": "survived", "failed": "killed"}.get(status, status)
    return Result(mutant, verdict, seconds, detail)


def sanity_mutant(path: str, text: str) -> Mutant:
    """A mutant that must be killed: proves the tests import the copy's file, not the editable install's."""
    if path.endswith(".lua"):
        return Mutant(path, 1, "sanity", 0, 0, "local broken = = 1\n", "", "local broken = = 1")
    return Mutant(path, 1, "sanity", 0, 0, "raise RuntimeError('mutation sanity check')\n", "", "raise ...")


# -------------------------------------------------------------------------------------------------- report


def target_section(name: str, data: dict) -> str:
    lines = [f"<!-- target:{name} {json.dumps(data, ensure_ascii=False)} -->", f"### {name}", ""]
    lines.append(
        f"Sources: {', '.join(f'`{s}`' for s in data['sources'])}. Tests: {', '.join(f'`{t}`' for t in data['tests'])}."
    )
    lines.append(
        f"Sample: {data['sampled']} of {data['population']} mutants (seed {data['seed']}"
        + (
            f"; {data['planned']} drawn, the --budget stopped the run after {data['sampled']}"
            if data.get("planned", data["sampled"]) > data["sampled"]
            else ""
        )
        + "); baseline "
        f"{data['baseline_s']:.1f} s, timeout {data['timeout_s']:.0f} s; mutants took {data['run_s'] / 60:.1f} min, "
        f"{data.get('total_s', data['run_s']) / 60:.1f} min with baseline and sanity checks "
        f"(`{data['command']}`, {data['finished']}, tree {data['tree']})."
    )
    lines.append("")
    if data["survivors"]:
        lines.append("Survivors (a missing test, or an equivalent mutant):")
        lines.append("")
        lines.extend(f"- {s}" for s in data["survivors"])
    else:
        lines.append("No survivors.")
    lines.append(f"<!-- /target:{name} -->")
    return "\n".join(lines)


def wilson(k: int, n: int, z: float = 1.96) -> str:
    """95% Wilson score interval of a kill ratio measured on a random sample of n mutants."""
    if n == 0:
        return ""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return f"{max(0.0, centre - half):.0%}–{min(1.0, centre + half):.0%}"


def write_report(path: Path, sections: dict[str, dict]) -> str:
    existing: dict[str, dict] = {}
    if path.exists():
        for match in re.finditer(r"<!-- target:(\w+) (\{.*?\}) -->", path.read_text("utf-8")):
            existing[match.group(1)] = json.loads(match.group(2))
    existing.update(sections)
    order = [t for t in TARGETS if t in existing]
    out = [
        "# Mutation testing",
        "",
        "`python -m bench.mutation --target pool|chat|fetch|all --limit N --seed S` (see `bench/mutation.py`).",
        "Killed = the target's tests failed, errored or timed out with the mutant in place; survived = they passed.",
        "",
        "| target | mutants (sampled / all) | killed | of which timeout/error | survived | kill ratio | 95% interval |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in order:
        d = existing[name]
        ratio = d["killed"] / d["sampled"] if d["sampled"] else 0.0
        out.append(
            f"| {name} | {d['sampled']} / {d['population']} | {d['killed']} | {d['timeout_error']} | "
            f"{d['sampled'] - d['killed']} | **{ratio:.0%}** | {wilson(d['killed'], d['sampled'])} |"
        )
    total = sum(existing[n]["sampled"] for n in order)
    killed = sum(existing[n]["killed"] for n in order)
    if len(order) > 1 and total:
        out.append(
            f"| all | {total} | {killed} | | {total - killed} | **{killed / total:.0%}** | {wilson(killed, total)} |"
        )
    out.append("")
    for name in order:
        out.append(target_section(name, existing[name]))
        out.append("")
    text = "\n".join(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")
    return text


# ---------------------------------------------------------------------------------------------------- main


def run_target(name: str, args: argparse.Namespace, copies: list[Path]) -> dict | None:
    source_globs, test_globs = TARGETS[name]
    test_globs = tuple(args.tests) if args.tests else test_globs
    base = copies[0]
    target_began = time.monotonic()
    sources = expand(base, source_globs)
    tests = expand(base, test_globs)
    if not sources or not tests:
        print(f"[{name}] nothing to do: sources {sources}, tests {tests}", flush=True)
        return None
    population = [m for path in sources for m in mutants_for(path, (base / path).read_text("utf-8"))]
    rng = random.Random(f"{args.seed}:{name}")
    sample = (
        population if args.limit <= 0 or args.limit >= len(population) else rng.sample(population, args.limit)
    )
    # run in the sampled (random) order, so a run cut short by --budget is still a random sample; listed sorted
    print(f"[{name}] {len(population)} mutants in {len(sources)} files; running {len(sample)}", flush=True)
    if args.list:
        for m in sorted(sample, key=lambda m: (m.path, m.start, m.end, m.replacement)):
            print("  " + m.describe())
        return None

    status, baseline, detail = run_tests(base, tests, timeout=args.baseline_timeout)
    if status != "passed":
        sys.exit(f"[{name}] baseline tests do not pass on the unmutated copy ({status}: {detail}); stopping.")
    timeout = max(args.timeout_factor * baseline, baseline + 20)
    print(f"[{name}] baseline passed in {baseline:.1f} s; per-mutant timeout {timeout:.0f} s", flush=True)

    # every Python file, and one Lua file (common.lua is prepended to every script: it proves they are loaded)
    lua = [p for p in sources if p.endswith(".lua")]
    checks = [p for p in sources if not p.endswith(".lua")] + sorted(lua, key=lambda p: "common" not in p)[:1]
    for check in checks:
        r = evaluate(sanity_mutant(check, ""), base, tests, timeout)
        if not r.killed:
            sys.exit(f"[{name}] a broken {check} passed the tests: they do not load the copy; stopping.")
        print(f"[{name}] sanity: broken {check} is {r.status} in {r.seconds:.1f} s", flush=True)

    began = time.monotonic()
    results: list[Result] = []

    def work(item: tuple[int, Mutant]) -> Result:
        index, mutant = item
        copy = copies[_worker_slot()] if len(copies) > 1 else copies[0]
        result = evaluate(mutant, copy, tests, timeout)
        mark = "KILLED " if result.killed else "SURVIVED"
        print(
            f"[{name}] {index + 1:>3}/{len(sample)} {mark} {result.status:<8} {result.seconds:5.1f}s "
            f"{mutant.describe()}" + (f"  [{result.detail}]" if result.detail and result.killed else ""),
            flush=True,
        )
        return result

    deadline = target_began + args.budget * 60 if args.budget else None
    if len(copies) == 1:
        for item in enumerate(sample):
            if deadline is not None and time.monotonic() + timeout / args.timeout_factor > deadline:
                print(
                    f"[{name}] --budget {args.budget:g} min reached: stopping after {len(results)}",
                    flush=True,
                )
                break
            results.append(work(item))
    else:
        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            results = list(pool.map(work, enumerate(sample)))
    elapsed = time.monotonic() - began
    killed = sum(r.killed for r in results)
    data = {
        "sources": sources,
        "tests": tests,
        "population": len(population),
        "sampled": len(results),
        "killed": killed,
        "timeout_error": sum(r.status in ("timeout", "error") for r in results),
        "seed": args.seed,
        "baseline_s": baseline,
        "timeout_s": timeout,
        "run_s": elapsed,
        "total_s": time.monotonic() - target_began,
        "command": "python -m bench.mutation " + " ".join(sys.argv[1:]),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tree": args.tree_label,
        "planned": len(sample),
        "survivors": [
            r.mutant.describe()
            for r in sorted(results, key=lambda r: (r.mutant.path, r.mutant.start, r.mutant.end))
            if not r.killed
        ],
    }
    ratio = killed / len(results) if results else 0.0
    print(
        f"\n[{name}] mutants {len(results)}  killed {killed}  survived {len(results) - killed}  "
        f"kill ratio {ratio:.0%}  ({elapsed / 60:.1f} min)",
        flush=True,
    )
    for s in data["survivors"]:
        print("  survivor: " + s, flush=True)
    return data


_slots: dict[int, int] = {}
_slots_lock = threading.Lock()


def _worker_slot() -> int:
    """Each worker thread keeps its own copy of the tree."""
    with _slots_lock:
        return _slots.setdefault(threading.get_ident(), len(_slots))


def _terminate(signum: int, frame: object) -> None:
    for proc in list(_live):
        with_group(proc, signal.SIGKILL)
    raise SystemExit(128 + signum)  # finally blocks restore the mutated file, stop strays, remove the copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--limit", type=int, default=25, help="random mutants per target (0 = all)")
    parser.add_argument(
        "--tests", action="append", help="test path/glob instead of the target's (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--budget", type=float, default=0, help="minutes per target: start no mutant after that (0 = no limit)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="mutants run in parallel, each in its own copy")
    parser.add_argument(
        "--source",
        choices=["head", "worktree"],
        default="head",
        help="copy the committed tree (git archive HEAD) or the working tree as it is",
    )
    parser.add_argument("--timeout-factor", type=float, default=3.0)
    parser.add_argument("--baseline-timeout", type=float, default=600.0)
    parser.add_argument("--list", action="store_true", help="print the sampled mutants and exit")
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    targets = list(TARGETS) if args.target == "all" else [args.target]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    args.tree_label = commit.stdout.strip() + ("" if args.source == "head" else "+working tree")

    signal.signal(signal.SIGTERM, _terminate)
    tmp = Path(tempfile.mkdtemp(prefix="g2a-mut-"))
    try:
        copies = [make_copy(args.source, tmp / f"c{i}") for i in range(max(1, args.jobs))]
        sections = {}
        for name in targets:
            data = run_target(name, args, copies)
            if data:
                sections[name] = data
        if sections and not args.no_write:
            write_report(args.out, sections)
            print(f"\nreport: {args.out}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
